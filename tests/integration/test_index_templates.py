"""The shipped index templates install on real servers and map the flattened document typed."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import urllib3

from shipper.event import normalize

TEMPLATES = Path(__file__).resolve().parents[2] / "index-templates"
# Stack server (its fixture is `<server>_url`) -> the index-templates/ folder it installs.
FLAVOUR = {
    "opensearch": "opensearch",
    "opensearch1": "opensearch",
    "elasticsearch": "elasticsearch",
    "elasticsearch8": "elasticsearch",
}
http = urllib3.PoolManager(timeout=30.0)


def call(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    reply = http.request(method, url, body=data, headers={"Content-Type": "application/json"})
    return reply.status, json.loads(reply.data or b"null")


def install(base: str, flavour: str, variant: str = "indices") -> None:
    """Component templates plus one variant of the index template, as ``kube-events``.

    ``indices`` matches ``kube-events-*`` (dated and rollover indices), ``data_stream`` the data
    stream ``kube-events``. They are alternatives: setup installs the one its mode needs.
    """
    folder = TEMPLATES / flavour
    for path in sorted(folder.glob("component-template-*.json")):
        name = path.stem.removeprefix("component-template-")
        status, reply = call(
            "PUT", f"{base}/_component_template/{name}", json.loads(path.read_text())
        )
        assert status == 200, reply
    suffix = "-indices" if variant == "indices" else ""
    body = json.loads((folder / f"index-template-kube-events{suffix}.json").read_text())
    status, reply = call("PUT", f"{base}/_index_template/kube-events", body)
    assert status == 200, reply


EVENT = {
    "metadata": {"uid": "u-1", "resourceVersion": "12345", "name": "web-1.a", "namespace": "shop"},
    "involvedObject": {
        "kind": "Pod",
        "name": "web-1",
        "namespace": "shop",
        "uid": "p-1",
        "apiVersion": "v1",
    },
    "reason": "OOMKilling",
    "message": "Memory cgroup out of memory: Killed process 42 (web) ✓",
    "type": "Warning",
    "count": 3,
    "firstTimestamp": "2026-11-20T10:00:00Z",
    "lastTimestamp": "2026-11-20T10:05:00Z",
    "source": {"component": "kubelet", "host": "node-a"},
}


def leaf_types(properties: dict[str, Any], prefix: str = "") -> dict[str, str]:
    found = {}
    for name, spec in properties.items():
        if "properties" in spec:
            found.update(leaf_types(spec["properties"], f"{prefix}{name}."))
        else:
            found[f"{prefix}{name}"] = spec["type"]
    return found


@pytest.mark.parametrize("server", ["opensearch", "opensearch1", "elasticsearch", "elasticsearch8"])
def test_templates_install_and_type_the_document(server, request):
    base = request.getfixturevalue(f"{server}_url")
    flavour = FLAVOUR[server]
    install(base, flavour)
    install(base, flavour)  # idempotent
    status, reply = call("GET", f"{base}/_index_template/kube-events")
    assert (
        status == 200 and reply["index_templates"][0]["index_template"]["priority"] == 211
    )  # 200 + len("kube-events")
    index = f"kube-events-test-{uuid.uuid4().hex[:8]}-2026.11.20"
    document = normalize(EVENT, "ADDED", cluster="prod").document()
    # Label keys are de-dotted, so app and app.kubernetes.io/name never collide.
    document["kubernetes"]["labels"] = {"app": "web", "app_kubernetes_io/name": "web"}
    status, reply = call("PUT", f"{base}/{index}/_doc/u-1-12345?refresh=true", document)
    assert status == 201, reply

    status, reply = call("GET", f"{base}/{index}/_mapping")
    assert status == 200, reply
    types = leaf_types(reply[index]["mappings"]["properties"])
    assert types["@timestamp"] == "date"
    assert types["message"] == "text"
    assert types["kubernetes.event.count"] == "long"
    assert types["kubernetes.event.metadata.resource_version"] == "keyword"
    assert types["kubernetes.event.timestamp.last_occurrence"] == "date"
    assert types["event.created"] == "date"
    assert types["kubernetes.labels.app"] == "keyword"
    assert types["kubernetes.labels.app_kubernetes_io/name"] == "keyword"
    assert types["orchestrator.cluster.name"] == "keyword"

    # Typed fields answer typed queries: a date range and a numeric range on count.
    query = {
        "query": {
            "bool": {
                "filter": [
                    {
                        "range": {
                            "@timestamp": {
                                "gte": "2026-11-20T10:04:00Z",
                                "lte": "2026-11-20T10:06:00Z",
                            }
                        }
                    },
                    {"range": {"kubernetes.event.count": {"gte": 3}}},
                    {"term": {"kubernetes.event.reason": "OOMKilling"}},
                ]
            }
        }
    }
    status, reply = call("POST", f"{base}/{index}/_search", query)
    assert status == 200 and reply["hits"]["total"]["value"] == 1, reply


def test_policies_have_the_documented_shape():
    ilm = json.loads((TEMPLATES / "elasticsearch" / "ilm-policy-kube-events.json").read_text())
    assert ilm["policy"]["phases"]["hot"]["actions"]["rollover"]["max_age"] == "1d"
    assert ilm["policy"]["phases"]["delete"]["min_age"] == "30d"
    ism = json.loads((TEMPLATES / "opensearch" / "ism-policy-kube-events.json").read_text())
    assert ism["policy"]["ism_template"][0]["index_patterns"] == [
        "kube-events",
        ".ds-kube-events-*",
        "kube-events-*",
    ]
    states = {state["name"]: state for state in ism["policy"]["states"]}
    assert states["hot"]["transitions"][0] == {
        "state_name": "delete",
        "conditions": {"min_index_age": "30d"},
    }


@pytest.mark.parametrize("flavour", ["opensearch", "elasticsearch"])
def test_files_are_the_sink_schema_rendered(flavour):
    """index-templates/ is what `setup` installs: scripts/render-index-templates writes it."""
    from shipper.sinks.search import rendered_files

    folder = TEMPLATES / flavour
    on_disk = {path.name: json.loads(path.read_text()) for path in folder.glob("*.json")}
    assert on_disk == rendered_files(flavour), "run scripts/render-index-templates"

"""The Kibana and OpenSearch Dashboards saved objects, checked as files and run on real servers.

Files: every line parses, ids are unique, every reference resolves (and every reference name an
object uses is in its ``references``), the migration levels are the ones each product imports,
and the committed NDJSON is what ``index-templates/generate_saved_objects.py`` writes.

Servers: the shipped index templates are installed, a known set of Kubernetes Events (raw
core/v1 and events.k8s.io/v1 objects through ``normalize(...).document()``, every count update
its own document with ``_id`` = uid.count, as the sink writes them) is indexed; then every field
the objects use must be in the mapping (and aggregatable where aggregated), every saved search's
Lucene query must find exactly the events a person would file under it, and every visualization,
translated from its ``visState`` into a search request, must return the rows computed here in
Python by counting distinct event uids (a document count would count a crash loop once per
restart).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
import sys
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from shipper.event import normalize
from tests.integration.test_index_templates import (
    FLAVOUR,
    TEMPLATES,
    call,
    http,
    install,
    leaf_types,
)

# Which saved-object set goes with which server in the test stack.
SERVER_DASHBOARDS = {
    "opensearch": "opensearch-dashboards",
    "opensearch1": "opensearch-dashboards",
    "elasticsearch": "kibana",
    "elasticsearch8": "kibana",
}
DASHBOARDS = ["kibana", "opensearch-dashboards"]

UID = "kubernetes.event.metadata.uid"
TIME_FIELD = "@timestamp"
DAY = ("2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z")
AGGREGATABLE = {
    "keyword", "date", "date_nanos", "long", "integer", "short", "byte", "double", "float",
    "half_float", "scaled_float", "unsigned_long", "boolean", "ip", "constant_keyword",
}  # fmt: skip

# Migration levels: a migrationVersion newer than the importing product's newest migration for
# the type fails the import ("belongs to a more recent version of Kibana"). Kibana 7.17.0 (the
# oldest Kibana the file is for): index-pattern 7.11.0, search 7.9.3, visualization 7.17.0,
# dashboard 7.14.0 (its own migrations; 7.17.1 came later). OpenSearch Dashboards 1.x/2.x keep
# Kibana 7.10.2's set.
NEWEST_KNOWN = {
    "kibana": {
        "index-pattern": "7.11.0",
        "search": "7.9.3",
        "visualization": "7.17.0",
        "dashboard": "7.14.0",
    },
    "opensearch-dashboards": {
        "index-pattern": "7.6.0",
        "search": "7.9.3",
        "visualization": "7.10.0",
        "dashboard": "7.9.3",
    },
}


# ---------------------------------------------------------------------------------------------
# The files


def ndjson_path(dashboards: str) -> Path:
    return TEMPLATES / dashboards / "kube-events.ndjson"


def load(dashboards: str) -> list[dict[str, Any]]:
    lines = ndjson_path(dashboards).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def by_id(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {obj["id"]: obj for obj in objects}


def of_type(objects: list[dict[str, Any]], object_type: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["type"] == object_type]


def search_source(obj: dict[str, Any]) -> dict[str, Any]:
    return json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])


def vis_state(obj: dict[str, Any]) -> dict[str, Any]:
    return json.loads(obj["attributes"]["visState"])


def panels(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return json.loads(obj["attributes"]["panelsJSON"])


def reference(obj: dict[str, Any], name: str) -> dict[str, Any]:
    found = [ref for ref in obj["references"] if ref["name"] == name]
    assert len(found) == 1, f"{obj['id']}: reference {name!r} found {len(found)} times"
    return found[0]


def ref_names_used(obj: dict[str, Any]) -> list[tuple[str, str]]:
    """(reference name, the type it must point at) for every by-reference link in the object."""
    used = []
    attributes = obj["attributes"]
    if "kibanaSavedObjectMeta" in attributes:
        source = search_source(obj)
        assert "index" not in source, f"{obj['id']}: inline index id, not a reference"
        if "indexRefName" in source:
            used.append((source["indexRefName"], "index-pattern"))
        for item in source.get("filter", []):
            meta = item.get("meta", {})
            assert "index" not in meta, f"{obj['id']}: inline filter index id"
            if "indexRefName" in meta:
                used.append((meta["indexRefName"], "index-pattern"))
    if "savedSearchRefName" in attributes:
        used.append((attributes["savedSearchRefName"], "search"))
    if obj["type"] == "dashboard":
        for panel in panels(obj):
            assert "id" not in panel, f"{obj['id']}: panel {panel['panelIndex']} has an inline id"
            assert "panelRefName" in panel, f"{obj['id']}: panel {panel['panelIndex']} no ref"
            used.append((panel["panelRefName"], panel.get("type", "")))
    return used


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def lucene_fields(query: str) -> set[str]:
    """The field names a Lucene query string names (quoted phrases removed first)."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', query)
    return set(re.findall(r"([A-Za-z_@][\w.@]*)\s*:", bare))


def queries(obj: dict[str, Any]) -> list[dict[str, str]]:
    """Every query object (query string + language) the saved object carries."""
    found = []
    if "kibanaSavedObjectMeta" in obj["attributes"]:
        found.append(search_source(obj)["query"])
    if obj["type"] == "visualization":
        for agg in vis_state(obj)["aggs"]:
            if agg["type"] == "filters":
                found.extend(item["input"] for item in agg["params"]["filters"])
    return found


def load_generator() -> Any:
    path = TEMPLATES / "generate_saved_objects.py"
    spec = importlib.util.spec_from_file_location("generate_saved_objects", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


@pytest.mark.parametrize("dashboards", DASHBOARDS)
def test_committed_files_are_the_generators_output(dashboards):
    generator = load_generator()
    assert ndjson_path(dashboards).read_text(encoding="utf-8") == generator.render(dashboards), (
        "stale: run .venv/bin/python index-templates/generate_saved_objects.py"
    )


@pytest.mark.parametrize("dashboards", DASHBOARDS)
def test_every_line_is_a_saved_object_with_a_unique_id(dashboards):
    text = ndjson_path(dashboards).read_text(encoding="utf-8")
    assert text.endswith("\n")
    objects = []
    for number, line in enumerate(text.splitlines(), start=1):
        obj = json.loads(line)  # raises with the line's content if it does not parse
        assert isinstance(obj, dict), f"line {number}"
        assert {"id", "type", "attributes", "references", "migrationVersion"} <= obj.keys()
        assert obj["type"] in {"index-pattern", "search", "visualization", "dashboard"}
        assert obj["id"].startswith("kube-event-shipper-"), obj["id"]
        assert obj["attributes"]["title"], obj["id"]
        objects.append(obj)
    ids = [obj["id"] for obj in objects]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    (data_view,) = of_type(objects, "index-pattern")
    # kube-events* alone matches the audit documents (kube-events-audit*) too.
    assert data_view["attributes"]["title"] == "kube-events*,-kube-events-audit*"
    assert data_view["attributes"]["timeFieldName"] == TIME_FIELD
    assert len(of_type(objects, "dashboard")) == 1
    assert len(of_type(objects, "search")) >= 5 and len(of_type(objects, "visualization")) >= 5


@pytest.mark.parametrize("dashboards", DASHBOARDS)
def test_every_reference_resolves(dashboards):
    objects = load(dashboards)
    index = by_id(objects)
    for obj in objects:
        names = [ref["name"] for ref in obj["references"]]
        assert len(names) == len(set(names)), f"{obj['id']}: duplicate reference names"
        for ref in obj["references"]:
            assert ref["id"] in index, f"{obj['id']}: {ref['name']} -> missing {ref['id']}"
            assert index[ref["id"]]["type"] == ref["type"], f"{obj['id']}: {ref} has another type"
        used = ref_names_used(obj)
        for name, wanted_type in used:
            ref = reference(obj, name)
            assert not wanted_type or ref["type"] == wanted_type, (obj["id"], name, ref)
        assert {name for name, _ in used} == set(names), f"{obj['id']}: unused references"
        if (
            obj["type"] in {"search", "visualization"}
            and "savedSearchRefName" not in obj["attributes"]
        ):
            assert search_source(obj).get("indexRefName"), f"{obj['id']}: no data view"
    (board,) = of_type(objects, "dashboard")
    grid = [panel["gridData"] for panel in panels(board)]
    assert len({panel["panelIndex"] for panel in panels(board)}) == len(grid)
    cells: set[tuple[int, int]] = set()
    for box in grid:
        assert box["x"] >= 0 and box["x"] + box["w"] <= 48, box
        mine = {(x, y) for x in range(box["x"], box["x"] + box["w"]) for y in range(box["y"], box["y"] + box["h"])}  # fmt: skip
        assert not cells & mine, f"panel {box['i']} overlaps another"
        cells |= mine
    on_board = {reference(board, panel["panelRefName"])["id"] for panel in panels(board)}
    not_on_board = {obj["id"] for obj in objects if obj["type"] in {"search", "visualization"}}
    assert not_on_board - on_board == set(), "objects the dashboard does not show"


@pytest.mark.parametrize("dashboards", DASHBOARDS)
def test_migration_levels_and_product_conventions(dashboards):
    objects = load(dashboards)
    for obj in objects:
        assert set(obj["migrationVersion"]) == {obj["type"]}, obj["id"]
        stated = version_tuple(obj["migrationVersion"][obj["type"]])
        assert stated <= version_tuple(NEWEST_KNOWN[dashboards][obj["type"]]), obj["id"]
        for query in queries(obj):
            assert query["language"] == "lucene", obj["id"]
    kibana = dashboards == "kibana"
    for obj in objects:
        assert (
            (obj.get("coreMigrationVersion") == "7.17.0")
            if kibana
            else ("coreMigrationVersion" not in obj)
        ), obj["id"]
    (board,) = of_type(objects, "dashboard")
    for panel in panels(board):
        # A panel version below 7.3 makes the dashboard app re-run its 7.3 panel migration.
        assert version_tuple(panel["version"]) >= (7, 3), panel
        assert ("type" in panel) == kibana, panel  # 7.17 panels carry their type; 7.10's not
    for vis in of_type(objects, "visualization"):
        for agg in vis_state(vis)["aggs"]:
            if agg["type"] == "date_histogram":
                # Kibana's name of the flag and OpenSearch Dashboards' renamed one.
                wanted = "useNormalizedEsInterval" if kibana else "useNormalizedOpenSearchInterval"
                unwanted = (
                    "useNormalizedOpenSearchInterval" if kibana else "useNormalizedEsInterval"
                )
                assert wanted in agg["params"] and unwanted not in agg["params"], vis["id"]


@pytest.mark.parametrize("dashboards", DASHBOARDS)
def test_every_metric_counts_distinct_events(dashboards):
    for vis in of_type(load(dashboards), "visualization"):
        aggs = vis_state(vis)["aggs"]
        metric = {agg["id"]: agg for agg in aggs if agg["schema"] == "metric"}
        assert not [a for a in metric.values() if a["type"] == "count"], (
            f"{vis['id']} counts documents: each count update is a document; count "
            f"distinct {UID} instead"
        )
        for agg in metric.values():
            if agg["type"] == "cardinality":
                assert agg["params"]["field"] == UID, vis["id"]
        for agg in aggs:
            if agg["type"] == "terms":
                order_by = metric[agg["params"]["orderBy"]]
                assert (order_by["type"], order_by["params"]["field"]) == ("cardinality", UID)


def test_both_sets_hold_the_same_objects_and_queries():
    kibana, osd = (by_id(load(name)) for name in DASHBOARDS)
    assert kibana.keys() == osd.keys()
    for object_id, obj in kibana.items():
        other = osd[object_id]
        assert obj["type"] == other["type"] and obj["references"] == other["references"]
        assert obj["attributes"]["title"] == other["attributes"]["title"]
        assert queries(obj) == queries(other), object_id
        if obj["type"] == "visualization":
            left, right = vis_state(obj), vis_state(other)
            assert [(a["type"], a["schema"], a["params"].get("field")) for a in left["aggs"]] == [
                (a["type"], a["schema"], a["params"].get("field")) for a in right["aggs"]
            ], object_id


# ---------------------------------------------------------------------------------------------
# Known events


@dataclass(frozen=True)
class Known:
    """One Kubernetes Event as the API server holds it, seen once per count update."""

    uid: str
    tags: frozenset[str]  # what a person files it under: oom, image-pull, scheduling, crash-loop
    versions: tuple[dict[str, Any], ...]  # raw objects, one per count update shipped

    @property
    def warning(self) -> bool:
        return self.versions[0]["type"] == "Warning"


RESOURCE_VERSIONS = itertools.count(81_000)


def at(clock: str) -> str:
    return f"2026-11-20T{clock}:00Z"


def core_event(
    uid: str,
    type_: str,
    reason: str,
    message: str,
    regarding: tuple[str, str | None, str],
    source: dict[str, str],
    seen: list[tuple[int, str]],
    tags: Iterable[str] = (),
    field_path: str | None = None,
) -> Known:
    """A core/v1 Event; ``seen`` lists (count, HH:MM of lastTimestamp) for each shipped update."""
    kind, namespace, name = regarding
    involved = {
        "kind": kind,
        "name": name,
        "uid": f"uid-{kind.lower()}-{name}",
        "apiVersion": "v1" if kind in {"Pod", "Node"} else "apps/v1",
    }
    if namespace:
        involved["namespace"] = namespace
    if field_path:
        involved["fieldPath"] = field_path
    versions = []
    for count, clock in seen:
        versions.append(
            {
                "metadata": {
                    "uid": uid,
                    "resourceVersion": str(next(RESOURCE_VERSIONS)),
                    "name": f"{name}.{uid[-8:]}",
                    "namespace": namespace or "default",
                    "creationTimestamp": at(seen[0][1]),
                },
                "involvedObject": involved,
                "reason": reason,
                "message": message,
                "type": type_,
                "count": count,
                "firstTimestamp": at(seen[0][1]),
                "lastTimestamp": at(clock),
                "source": source,
            }
        )
    return Known(uid, frozenset(tags), tuple(versions))


def events_v1_event(
    uid: str, reason: str, note: str, regarding: tuple[str, str, str], seen: list[tuple[int, str]]
) -> Known:
    """An events.k8s.io/v1 Event from the newer recorder: eventTime + series, no source.host."""
    kind, namespace, name = regarding
    versions = []
    for count, clock in seen:
        raw: dict[str, Any] = {
            "metadata": {
                "uid": uid,
                "resourceVersion": str(next(RESOURCE_VERSIONS)),
                "name": f"{name}.{uid[-8:]}",
                "namespace": namespace,
                "creationTimestamp": at(seen[0][1]),
            },
            "eventTime": f"2026-11-20T{seen[0][1]}:00.250000Z",
            "regarding": {"kind": kind, "namespace": namespace, "name": name, "uid": f"uid-{name}"},
            "reason": reason,
            "note": note,
            "type": "Warning",
            "action": "Scheduling",
            "reportingController": "default-scheduler",
            "reportingInstance": "default-scheduler-cp-1",
        }
        if count > 1:
            raw["series"] = {"count": count, "lastObservedTime": f"2026-11-20T{clock}:00.500000Z"}
        versions.append(raw)
    return Known(uid, frozenset({"scheduling"}), tuple(versions))


KUBELET_A = {"component": "kubelet", "host": "node-a"}
KUBELET_B = {"component": "kubelet", "host": "node-b"}
WEB = ("Pod", "shop", "web-7d9c6b-x2k4p")
API = ("Pod", "shop", "api-5f6c8d-7hxkq")
IMAGE = "registry.example.com/shop/web:v2.1"


def once(clock: str) -> list[tuple[int, str]]:
    return [(1, clock)]


def counts(*clocks: str) -> list[tuple[int, str]]:
    return list(enumerate(clocks, start=1))


KNOWN = [
    # OOM: node-problem-detector on a Node (cluster-scoped), the kubelet's SystemOOM.
    core_event(
        "e01-oom-node-a", "Warning", "OOMKilling",
        "Memory cgroup out of memory: Killed process 4242 (java) total-vm:4194304kB, "
        "anon-rss:2097152kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:4400kB "
        "oom_score_adj:999",
        ("Node", None, "node-a"), {"component": "kernel-monitor", "host": "node-a"},
        once("08:12"), tags={"oom"},
    ),
    core_event(
        "e02-systemoom-node-b", "Warning", "SystemOOM",
        "System OOM encountered, victim process: python3, pid: 5150",
        ("Node", None, "node-b"), KUBELET_B, counts("09:05", "10:40"), tags={"oom"},
    ),
    # An image that cannot be pulled: the kubelet's whole sequence for one container.
    core_event(
        "e03-pull-failed", "Warning", "Failed",
        f'Failed to pull image "{IMAGE}": rpc error: code = NotFound desc = failed to pull and '
        f'unpack image "{IMAGE}": failed to resolve reference "{IMAGE}": {IMAGE}: not found',
        WEB, KUBELET_A, counts("09:00", "09:01", "09:03"), tags={"image-pull"},
        field_path="spec.containers{web}",
    ),
    core_event(
        "e04-errimagepull", "Warning", "Failed", "Error: ErrImagePull",
        WEB, KUBELET_A, counts("09:00", "09:01", "09:03"), tags={"image-pull"},
        field_path="spec.containers{web}",
    ),
    core_event(
        "e05-pull-backoff", "Normal", "BackOff", f'Back-off pulling image "{IMAGE}"',
        WEB, KUBELET_A, [(1, "09:02"), (4, "09:20")], tags={"image-pull"},
        field_path="spec.containers{web}",
    ),
    core_event(
        "e06-imagepullbackoff", "Warning", "Failed", "Error: ImagePullBackOff",
        WEB, KUBELET_A, [(1, "09:02"), (4, "09:20")], tags={"image-pull"},
        field_path="spec.containers{web}",
    ),
    core_event(  # not a failure, though it mentions pulling an image
        "e07-pulling", "Normal", "Pulling", f'Pulling image "{IMAGE}"',
        WEB, KUBELET_A, [(1, "09:00"), (3, "09:03")], field_path="spec.containers{web}",
    ),
    core_event(
        "e08-never-pull", "Warning", "ErrImageNeverPull",
        'Container image "report:dev" is not present with pull policy of Never',
        ("Pod", "billing", "report-6b7f-9qv2m"), KUBELET_B, once("11:15"), tags={"image-pull"},
        field_path="spec.containers{report}",
    ),
    core_event(  # InvalidImageName: the reference cannot be parsed, so nothing is pulled
        "e24-inspect-failed", "Warning", "InspectFailed",
        'Failed to apply default image tag "Shop/Web:latest": couldn\'t parse image name '
        '"Shop/Web:latest": invalid reference format: repository name must be lowercase',
        ("Pod", "shop", "web-canary"), KUBELET_A, counts("11:40", "11:45"), tags={"image-pull"},
        field_path="spec.containers{web}",
    ),
    # Scheduling: the old recorder and the events.k8s.io/v1 one (series, no source).
    core_event(
        "e09-failed-scheduling", "Warning", "FailedScheduling",
        "0/3 nodes are available: 1 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }, 2 Insufficient memory. preemption: 0/3 "
        "nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption "
        "victims found for incoming pod.",
        ("Pod", "billing", "batch-0"), {"component": "default-scheduler"},
        counts("08:20", "10:25"), tags={"scheduling"},
    ),
    events_v1_event(
        "e10-failed-scheduling-v1", "FailedScheduling",
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
        ("Pod", "billing", "batch-1"), [(1, "09:10"), (2, "09:40")],
    ),
    # A crash loop: one event, five count updates over three hours, five documents.
    core_event(
        "e11-crashloop-api", "Warning", "BackOff",
        "Back-off restarting failed container api in pod "
        "api-5f6c8d-7hxkq_shop(6f1c2b7e-3d4a-4e5f-9a8b-7c6d5e4f3a2b)",
        API, KUBELET_B, counts("09:30", "09:45", "10:10", "10:40", "11:20"),
        tags={"crash-loop"}, field_path="spec.containers{api}",
    ),
    core_event(  # the older kubelet's message
        "e12-crashloop-worker", "Warning", "BackOff", "Back-off restarting failed container",
        ("Pod", "billing", "worker-0"), KUBELET_A, counts("10:05", "10:50"),
        tags={"crash-loop"}, field_path="spec.containers{worker}",
    ),
    core_event(
        "e13-unhealthy", "Warning", "Unhealthy",
        "Readiness probe failed: HTTP probe failed with statuscode: 503",
        ("Pod", "shop", "web-1"), KUBELET_A, counts("08:30", "08:40", "08:50"),
        field_path="spec.containers{web}",
    ),
    core_event(  # memory pressure, not an OOM kill
        "e14-evicted", "Warning", "Evicted",
        "The node was low on resource: memory. Threshold quantity: 100Mi, available: 88Mi. "
        "Container cache was using 1800Mi, request is 512Mi, has larger consumption of memory.",
        ("Pod", "shop", "cache-0"), KUBELET_B, once("10:20"),
    ),
    core_event(
        "e15-killing-api", "Normal", "Killing",
        "Container api failed liveness probe, will be restarted",
        API, KUBELET_B, counts("09:29", "10:39"), field_path="spec.containers{api}",
    ),
    core_event(
        "e16-scheduled-web", "Normal", "Scheduled",
        "Successfully assigned shop/web-7d9c6b-x2k4p to node-a",
        WEB, {"component": "default-scheduler"}, once("08:58"),
    ),
    core_event(
        "e17-started-api", "Normal", "Started", "Started container api",
        API, KUBELET_B, counts("09:00", "09:31", "10:11"), field_path="spec.containers{api}",
    ),
    core_event(
        "e18-scaling", "Normal", "ScalingReplicaSet", "Scaled up replica set report-6b7f to 2",
        ("Deployment", "billing", "report"), {"component": "deployment-controller"},
        once("08:05"),
    ),
    core_event(
        "e19-created", "Normal", "SuccessfulCreate", "Created pod: report-6b7f-9qv2m",
        ("ReplicaSet", "billing", "report-6b7f"), {"component": "replicaset-controller"},
        counts("08:05", "08:06"),
    ),
    core_event(
        "e20-node-starting", "Normal", "Starting", "Starting kubelet.",
        ("Node", None, "node-b"), KUBELET_B, once("08:00"),
    ),
    core_event(
        "e21-node-ready", "Normal", "NodeReady", "Node node-b status is now: NodeReady",
        ("Node", None, "node-b"), KUBELET_B, once("08:01"),
    ),
    core_event(
        "e22-registered", "Normal", "RegisteredNode",
        "Node node-a event: Registered Node node-a in Controller",
        ("Node", None, "node-a"), {"component": "node-controller"}, once("08:02"),
    ),
    core_event(  # a quota failure that mentions memory
        "e23-failed-create", "Warning", "FailedCreate",
        'Error creating: pods "report-6b7f-7xw2q" is forbidden: exceeded quota: compute, '
        "requested: memory=2Gi, used: memory=7Gi, limited: memory=8Gi",
        ("ReplicaSet", "billing", "report-6b7f"), {"component": "replicaset-controller"},
        counts("11:00", "11:05", "11:30"),
    ),
]  # fmt: skip
KNOWN_BY_UID = {known.uid: known for known in KNOWN}


def documents() -> list[tuple[str, dict[str, Any]]]:
    """(_id, document) for every shipped version, as the sink writes them."""
    shipped = []
    for known in KNOWN:
        for number, raw in enumerate(known.versions):
            event = normalize(raw, "ADDED" if number == 0 else "MODIFIED", cluster="prod")
            shipped.append((f"{event.uid}.{event.count}", event.document()))
    return shipped


def value(document: dict[str, Any], dotted: str) -> Any:
    node: Any = document
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


# ---------------------------------------------------------------------------------------------
# Servers


@dataclass
class Loaded:
    server: str
    base: str
    index: str
    docs: list[dict[str, Any]]
    types: dict[str, str]
    objects: list[dict[str, Any]]


@pytest.fixture(scope="module", params=list(SERVER_DASHBOARDS))
def loaded(request) -> Iterator[Loaded]:
    server = request.param
    base = request.getfixturevalue(f"{server}_url")
    install(base, FLAVOUR[server])
    index = f"kube-events-t{uuid.uuid4().hex[:10]}-2026.11.20"
    shipped = documents()
    lines = []
    for doc_id, document in shipped:
        lines.append(json.dumps({"create": {"_index": index, "_id": doc_id}}))
        lines.append(json.dumps(document, ensure_ascii=False))
    reply = http.request(
        "POST",
        f"{base}/_bulk?refresh=true",
        body=("\n".join(lines) + "\n").encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    result = json.loads(reply.data)
    assert reply.status == 200 and not result["errors"], result
    assert [item["create"]["status"] for item in result["items"]] == [201] * len(shipped)
    status, count = call("GET", f"{base}/{index}/_count")
    assert status == 200 and count["count"] == len(shipped) > len(KNOWN), count
    status, mapping = call("GET", f"{base}/{index}/_mapping")
    assert status == 200, mapping
    types = leaf_types(mapping[index]["mappings"]["properties"])
    yield Loaded(
        server,
        base,
        index,
        [document for _, document in shipped],
        types,
        load(SERVER_DASHBOARDS[server]),
    )
    call("DELETE", f"{base}/{index}")


def lucene_query(query: dict[str, str]) -> dict[str, Any]:
    """What Kibana / OpenSearch Dashboards send for a Lucene query (query:queryString:options)."""
    assert query["language"] == "lucene", f"only Lucene is translated here: {query}"
    if not query["query"].strip():
        return {"match_all": {}}
    return {"query_string": {"query": query["query"], "analyze_wildcard": True}}


def source_clauses(source: dict[str, Any]) -> list[dict[str, Any]]:
    assert not source.get("filter"), "pinned filters are not translated here; add them"
    return [lucene_query(source["query"])]


def time_range() -> dict[str, Any]:
    return {"range": {TIME_FIELD: {"gte": DAY[0], "lt": DAY[1]}}}


def metric_dsl(agg: dict[str, Any]) -> dict[str, Any] | None:
    if agg["type"] == "count":
        return None  # the bucket's doc_count
    assert agg["type"] in {"cardinality", "max", "min", "sum", "avg"}, agg
    return {agg["type"]: {"field": agg["params"]["field"]}}


def bucket_dsl(agg: dict[str, Any], metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
    params = agg["params"]
    if agg["type"] == "terms":
        order_by = params["orderBy"]
        if order_by == "_key":
            order = {"_key": params["order"]}
        elif metrics[order_by]["type"] == "count":
            order = {"_count": params["order"]}
        else:
            order = {order_by: params["order"]}
        terms: dict[str, Any] = {"field": params["field"], "size": params["size"], "order": order}
        if params.get("missingBucket"):
            terms["missing"] = "__missing__"
        return {"terms": terms}
    if agg["type"] == "date_histogram":
        # "auto" depends on the time picker; for this one day of events, an hour.
        interval = "1h" if params["interval"] == "auto" else params["interval"]
        return {
            "date_histogram": {
                "field": params["field"],
                "fixed_interval": interval,
                "time_zone": "UTC",
                "min_doc_count": params.get("min_doc_count", 1),
            }
        }
    if agg["type"] == "filters":
        return {
            "filters": {
                "filters": {
                    item["label"] or item["input"]["query"]: lucene_query(item["input"])
                    for item in params["filters"]
                }
            }
        }
    raise AssertionError(f"no translation for a {agg['type']} agg: add one")


def vis_request(vis: dict[str, Any], index: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The search a Kibana / OpenSearch Dashboards visualization sends, for the aggs used here."""
    state = vis_state(vis)
    clauses = [time_range(), *source_clauses(search_source(vis))]
    attributes = vis["attributes"]
    if "savedSearchRefName" in attributes:
        saved = index[reference(vis, attributes["savedSearchRefName"])["id"]]
        clauses += source_clauses(search_source(saved))
    enabled = [agg for agg in state["aggs"] if agg.get("enabled", True)]
    metrics = {agg["id"]: agg for agg in enabled if agg["schema"] == "metric"}
    buckets = [agg for agg in enabled if agg["schema"] != "metric"]
    metric_aggs = {
        agg_id: dsl for agg_id, agg in metrics.items() if (dsl := metric_dsl(agg)) is not None
    }
    aggs: dict[str, Any] = dict(metric_aggs)
    for agg in reversed(buckets):  # metrics at every level, so any level can order by them
        aggs = {agg["id"]: {**bucket_dsl(agg, metrics), "aggs": aggs}, **metric_aggs}
    return {"size": 0, "query": {"bool": {"filter": clauses}}, "aggs": aggs}


def vis_rows(vis: dict[str, Any], reply: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The response as a data table: (bucket key..., metric value...), empty buckets left out."""
    enabled = [agg for agg in vis_state(vis)["aggs"] if agg.get("enabled", True)]
    metrics = [agg for agg in enabled if agg["schema"] == "metric"]
    buckets = [agg for agg in enabled if agg["schema"] != "metric"]

    def metric_values(node: dict[str, Any]) -> tuple[Any, ...]:
        values = []
        for agg in metrics:
            raw = node["doc_count"] if agg["type"] == "count" else node[agg["id"]]["value"]
            values.append(None if raw is None else int(raw))
        return tuple(values)

    def walk(node: dict[str, Any], level: int, keys: tuple[Any, ...]) -> Iterator[tuple]:
        if level == len(buckets):
            yield (*keys, *metric_values(node))
            return
        agg = buckets[level]
        part = node[agg["id"]]
        if agg["type"] == "filters":
            labels = [f["label"] or f["input"]["query"] for f in agg["params"]["filters"]]
            items = [(label, part["buckets"][label]) for label in labels]
        else:
            items = [(bucket["key"], bucket) for bucket in part["buckets"]]
        for key, bucket in items:
            if bucket["doc_count"]:
                yield from walk(bucket, level + 1, (*keys, key))

    return list(walk(reply["aggregations"], 0, ()))


# Expected rows, computed from the known events without looking at the saved objects.

Docs = list[dict[str, Any]]
Keys = Callable[[dict[str, Any]], list[Any]]


def distinct_events(docs: Docs) -> int:
    return len({value(doc, UID) for doc in docs})


def highest_count(docs: Docs) -> int:
    return max(value(doc, "kubernetes.event.count") for doc in docs)


def last_seen(docs: Docs) -> int:
    return max(epoch_ms(value(doc, TIME_FIELD)) for doc in docs)


def epoch_ms(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


def hour_of(doc: dict[str, Any]) -> list[int]:
    moment = datetime.fromisoformat(value(doc, TIME_FIELD).replace("Z", "+00:00"))
    return [int(moment.replace(minute=0, second=0, microsecond=0).timestamp() * 1000)]


def field(dotted: str, missing: str | None = None) -> Keys:
    """The terms key of a document: its value, the missing bucket's key, or no bucket at all."""

    def keys(doc: dict[str, Any]) -> list[Any]:
        found = value(doc, dotted)
        if found is None:
            return [] if missing is None else [missing]
        return [found]

    return keys


def table(
    docs: Docs,
    levels: list[tuple[Keys, str | list[Any], int | None]],
    metrics: list[Callable[[Docs], int]],
) -> list[tuple[Any, ...]]:
    """Rows of nested buckets. Order "rank": by the first metric, descending, ties by key (as
    Elasticsearch and OpenSearch break them); "key": ascending; a list: that order."""
    if not levels:
        return [tuple(metric(docs) for metric in metrics)]
    (keys_of, order, size), rest = levels[0], levels[1:]
    groups: dict[Any, Docs] = defaultdict(list)
    for doc in docs:
        for key in keys_of(doc):
            groups[key].append(doc)
    items = list(groups.items())
    if order == "rank":
        items.sort(key=lambda item: (-metrics[0](item[1]), item[0]))
    elif order == "key":
        items.sort(key=lambda item: item[0])
    else:
        assert isinstance(order, list)
        items.sort(key=lambda item: order.index(item[0]))
    return [(key, *row) for key, group in items[:size] for row in table(group, rest, metrics)]


def tagged(tag: str) -> Callable[[dict[str, Any]], bool]:
    return lambda doc: tag in KNOWN_BY_UID[value(doc, UID)].tags


def is_warning(doc: dict[str, Any]) -> bool:
    return KNOWN_BY_UID[value(doc, UID)].warning


FAILURES = [
    ("OOM kills", "oom"),
    ("Image pull failures", "image-pull"),
    ("Scheduling failures", "scheduling"),
    ("Crash loops", "crash-loop"),
]


def failure_kinds(doc: dict[str, Any]) -> list[str]:
    return [label for label, tag in FAILURES if tagged(tag)(doc)]


EXPECTED_ROWS: dict[str, Callable[[Docs], list[tuple[Any, ...]]]] = {
    "kube-event-shipper-vis-events-over-time": lambda docs: table(
        docs,
        [(hour_of, "key", None), (field("kubernetes.event.type"), "rank", 5)],
        [distinct_events],
    ),
    "kube-event-shipper-vis-failures-over-time": lambda docs: table(
        docs,
        [(hour_of, "key", None), (failure_kinds, [label for label, _ in FAILURES], None)],
        [distinct_events],
    ),
    "kube-event-shipper-vis-top-reasons": lambda docs: table(
        docs,
        [
            (field("kubernetes.event.reason"), "rank", 20),
            (field("kubernetes.event.type"), "rank", 5),
        ],
        [distinct_events],
    ),
    "kube-event-shipper-vis-top-namespaces": lambda docs: table(
        docs,
        [
            (field("kubernetes.namespace", "__missing__"), "rank", 20),
            (field("kubernetes.event.type"), "rank", 5),
        ],
        [distinct_events],
    ),
    "kube-event-shipper-vis-top-objects": lambda docs: table(
        docs,
        [
            (field("kubernetes.event.involved_object.kind"), "rank", 10),
            (field("kubernetes.event.involved_object.namespace", "__missing__"), "rank", 20),
            (field("kubernetes.event.involved_object.name"), "rank", 20),
        ],
        [distinct_events, highest_count, last_seen],
    ),
    "kube-event-shipper-vis-warnings-by-node": lambda docs: table(
        [doc for doc in docs if is_warning(doc)],
        [
            (field("kubernetes.event.source.host"), "rank", 20),
            (field("kubernetes.event.reason"), "rank", 10),
        ],
        [distinct_events],
    ),
}

EXPECTED_SEARCH: dict[str, Callable[[dict[str, Any]], bool]] = {
    "kube-event-shipper-search-warnings": is_warning,
    "kube-event-shipper-search-oom-kills": tagged("oom"),
    "kube-event-shipper-search-image-pull-failures": tagged("image-pull"),
    "kube-event-shipper-search-scheduling-failures": tagged("scheduling"),
    "kube-event-shipper-search-crash-loops": tagged("crash-loop"),
}


def used_fields(obj: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(fields aggregated or sorted on, every field used) by one saved object."""
    aggregated: set[str] = set()
    used: set[str] = set()
    attributes = obj["attributes"]
    if obj["type"] == "index-pattern":
        aggregated.add(attributes["timeFieldName"])
    if obj["type"] == "search":
        used.update(attributes["columns"])
        aggregated.update(name for name, _ in attributes["sort"])
    if obj["type"] == "visualization":
        for agg in vis_state(obj)["aggs"]:
            if "field" in agg["params"]:
                aggregated.add(agg["params"]["field"])
    for query in queries(obj):
        used.update(lucene_fields(query["query"]))
    return aggregated, used | aggregated


def test_every_field_is_mapped_and_aggregated_fields_aggregate(loaded):
    checked = set()
    for obj in loaded.objects:
        aggregated, used = used_fields(obj)
        for name in sorted(used):
            assert name in loaded.types, (
                f"{obj['id']} uses {name!r}, which the {loaded.server} mapping lacks"
            )
        for name in sorted(aggregated):
            assert loaded.types[name] in AGGREGATABLE, (
                f"{obj['id']} aggregates or sorts on {name!r}, a {loaded.types[name]} field"
            )
        checked |= used
    assert {UID, TIME_FIELD, "message", "kubernetes.event.reason"} <= checked


def test_saved_searches_find_the_events_they_are_named_for(loaded):
    searches = of_type(loaded.objects, "search")
    assert {obj["id"] for obj in searches} == EXPECTED_SEARCH.keys()
    for obj in searches:
        wanted = [doc for doc in loaded.docs if EXPECTED_SEARCH[obj["id"]](doc)]
        assert wanted and len(wanted) < len(loaded.docs), obj["id"]
        body = {
            "size": 1000,
            "query": {"bool": {"filter": [time_range(), *source_clauses(search_source(obj))]}},
            "sort": [{name: {"order": order}} for name, order in obj["attributes"]["sort"]],
        }
        status, reply = call("POST", f"{loaded.base}/{loaded.index}/_search", body)
        assert status == 200, reply
        hits = reply["hits"]["hits"]
        found = {value(hit["_source"], UID) for hit in hits}
        assert found == {value(doc, UID) for doc in wanted}, (
            f"{obj['id']}: missing {sorted({value(d, UID) for d in wanted} - found)}, "
            f"unwanted {sorted(found - {value(d, UID) for d in wanted})}"
        )
        assert len(hits) == len(wanted), f"{obj['id']}: every count update is a row"
        times = [epoch_ms(value(hit["_source"], TIME_FIELD)) for hit in hits]
        assert times == sorted(times, reverse=True), f"{obj['id']}: not newest first"
        for column in obj["attributes"]["columns"]:
            assert any(value(hit["_source"], column) is not None for hit in hits), column


def test_visualizations_count_each_event_once(loaded):
    visualizations = of_type(loaded.objects, "visualization")
    assert {obj["id"] for obj in visualizations} == EXPECTED_ROWS.keys()
    index = by_id(loaded.objects)
    for vis in visualizations:
        request = vis_request(vis, index)
        status, reply = call("POST", f"{loaded.base}/{loaded.index}/_search", request)
        assert status == 200, (vis["id"], request, reply)
        got = vis_rows(vis, reply)
        expected = EXPECTED_ROWS[vis["id"]](loaded.docs)
        assert len(expected) > 2, vis["id"]
        assert got == expected, f"{vis['id']} on {loaded.server}:\n got {got}\nwant {expected}"


def test_the_known_events_exercise_what_the_dashboards_promise():
    """Guards the data set itself: without count updates the distinct counts prove nothing."""
    shipped = documents()
    ids = [doc_id for doc_id, _ in shipped]
    assert len(ids) == len(set(ids))
    crash = [doc for _, doc in shipped if value(doc, UID) == "e11-crashloop-api"]
    assert [value(doc, "kubernetes.event.count") for doc in crash] == [1, 2, 3, 4, 5]
    assert len({value(doc, TIME_FIELD)[:13] for doc in crash}) == 3  # spread over three hours
    namespaces = {value(doc, "kubernetes.namespace") for _, doc in shipped}
    assert {"shop", "billing", None} <= namespaces  # None: cluster-scoped Node events
    assert any(value(doc, "kubernetes.event.reporting_controller") for _, doc in shipped)
    assert 20 <= len(KNOWN) <= 40

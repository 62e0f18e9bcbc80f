"""The elasticsearch/opensearch sinks against real servers, fed by the real kube-apiserver.

Each test writes to its own index name, so tests share the servers. What is shown, per server:
types as mapped, each event version once across restarts, re-lists after 410 and full replays,
an outage of the server that loses nothing, a document the mapping refuses dead-lettered while
its batch lands, the write modes, and ``setup``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import urllib3

from tests.support.common import ROOT, STACK, stack_up, wait_for
from tests.support.kube import bump, core_event, etcd_compact, now
from tests.support.search import search_hits

http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=2.0, read=30.0), retries=False)

#: fixture name -> (sink scheme, stack component)
SERVERS = {
    "opensearch": ("opensearch", "opensearch"),
    "opensearch1": ("opensearch", "opensearch1"),
    "elasticsearch": ("elasticsearch", "elasticsearch"),
    "elasticsearch8": ("elasticsearch", "elasticsearch8"),
}
OUTAGE_SECONDS = float(os.environ.get("KES_OUTAGE_SECONDS", "60"))


def call(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    reply = http.request(method, url, body=data, headers={"Content-Type": "application/json"})
    return reply.status, json.loads(reply.data or b"null")


def documents(base: str, target: str) -> list[dict[str, Any]]:
    """Every document in ``target`` (index, alias, data stream or pattern), refreshed first."""
    return search_hits(base, target)


def ids(hits: list[dict[str, Any]]) -> list[str]:
    return sorted(hit["_id"] for hit in hits)


def version_id(obj: dict[str, Any]) -> str:
    return f"{obj['metadata']['uid']}.{obj.get('count', 1)}"


def field_types(mapping: dict[str, Any], prefix: str = "") -> dict[str, str]:
    found: dict[str, str] = {}
    for name, spec in mapping.get("properties", {}).items():
        if "properties" in spec:
            found.update(field_types(spec, f"{prefix}{name}."))
        else:
            found[f"{prefix}{name}"] = spec.get("type", "object")
    return found


class Server:
    def __init__(self, fixture: str, url: str) -> None:
        self.fixture, self.url = fixture, url
        self.scheme, self.component = SERVERS[fixture]
        self.index = f"kube-events-t{uuid.uuid4().hex[:8]}"

    def sink(self, **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in {"index": self.index, **params}.items())
        return f"--sink={self.scheme}:{self.url}?{query}"

    def has_data_streams(self) -> bool:
        return call("GET", f"{self.url}/_data_stream")[0] == 200


@pytest.fixture(params=list(SERVERS))
def server(request) -> Server:
    return Server(request.param, request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def run(shipper_factory, kube_env, namespace, tmp_path):
    """``run(sink_arg, *flags)`` -> a started shipper for the test's namespace."""

    def start(sink: str, *flags: str, checkpoint: str | None = None) -> Any:
        args = [
            f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
            sink,
            f"--state-dir={tmp_path / 'state'}",
            "--cluster-name=stack",
            *flags,
        ]
        if checkpoint:
            args.append(f"--checkpoint={checkpoint}")
        return shipper_factory(args)

    return start


def shipped(process: Any, sink: str, outcome: str = "shipped") -> float:
    return process.metric("kube_event_shipper_sink_events_total", sink=sink, outcome=outcome)


def test_versions_arrive_typed_once_across_restarts_410_and_replays(
    server, run, kube_api, kube_env, namespace
):
    shipper = run(server.sink()).start()
    created = [core_event(kube_api, namespace, obj=f"p{i}") for i in range(3)]
    first = now()
    updates = [
        bump(
            kube_api,
            namespace,
            created[0]["metadata"]["name"],
            count,
            first + timedelta(seconds=count),
        )
        for count in (2, 3)
    ]
    versions = {version_id(e) for e in [*created, *updates]}
    wait_for(lambda: len(documents(server.url, f"{server.index}*")) == 5, what="five documents")
    hits = documents(server.url, f"{server.index}*")
    assert set(ids(hits)) == versions
    if server.has_data_streams():  # auto mode picks the data stream where there is one
        assert all(hit["_index"].startswith(f".ds-{server.index}-") for hit in hits)
    else:
        assert {hit["_index"] for hit in hits} <= {
            f"{server.index}-{now().strftime('%Y.%m.%d')}",
            f"{server.index}-{now(-60).strftime('%Y.%m.%d')}",
        }
    latest = next(h["_source"] for h in hits if h["_id"] == version_id(updates[-1]))
    assert latest["kubernetes"]["event"]["count"] == 3
    assert latest["orchestrator"]["cluster"]["name"] == "stack"

    status, mappings = call("GET", f"{server.url}/{server.index}*/_mapping")
    assert status == 200, mappings
    types = field_types(next(iter(mappings.values()))["mappings"])
    assert types["@timestamp"] == "date"
    assert types["event.created"] == "date"
    assert types["kubernetes.event.timestamp.first_occurrence"] == "date"
    assert types["kubernetes.event.count"] == "long"
    assert types["kubernetes.event.reason"] == "keyword"
    assert types["kubernetes.event.involved_object.name"] == "keyword"
    assert types["message"] == "text"
    assert shipper.stop() == 0

    # A restart after a 410: events made while stopped, a count update, etcd compacted.
    during = core_event(kube_api, namespace, obj="q0")
    later = bump(kube_api, namespace, created[1]["metadata"]["name"], 2, now(5))
    etcd_compact(kube_env["ETCD_URL"])
    shipper.start()
    versions |= {version_id(during), version_id(later)}
    wait_for(lambda: len(documents(server.url, f"{server.index}*")) == 7, what="seven documents")
    assert shipper.stop() == 0
    assert "410 Gone" in shipper.stderr(), shipper.stderr()

    # A full replay (the checkpoint forgotten): every current version is sent again and lands
    # on its own _id (409), so the count does not move.
    shipper.start("--start=all")
    wait_for(lambda: shipped(shipper, server.scheme) == 4, what="the four events re-sent")
    assert shipped(shipper, server.scheme, "dead_lettered") == 0
    assert shipper.stop() == 0
    assert set(ids(documents(server.url, f"{server.index}*"))) == versions


def stack(command: str, component: str) -> None:
    subprocess.run(
        [sys.executable, str(STACK), command, component], cwd=ROOT, check=True, capture_output=True
    )


def test_an_outage_of_the_server_loses_nothing(server, run, kube_api, namespace):
    shipper = run(server.sink(flush_interval="0.2s", max_backoff="5s")).start()
    before = [core_event(kube_api, namespace, obj=f"a{i}") for i in range(2)]
    wait_for(lambda: len(documents(server.url, f"{server.index}*")) == 2, what="two documents")

    stack("down", server.component)
    try:
        down_at = time.monotonic()
        during = [core_event(kube_api, namespace, obj=f"b{i}") for i in range(5)]
        update = bump(kube_api, namespace, before[0]["metadata"]["name"], 2, now(1))
        wait_for(
            lambda: shipper.metric("kube_event_shipper_sink_up", sink=server.scheme) == 0,
            what="the sink to notice the outage",
        )
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        assert shipper.proc.poll() is None
        assert shipped(shipper, server.scheme, "retried") > 0
    finally:
        stack_up(server.component)
    expected = {version_id(e) for e in [*before, *during, update]}
    wait_for(
        lambda: set(ids(documents(server.url, f"{server.index}*"))) == expected,
        timeout=90,
        what="every event made during the outage",
    )
    assert shipper.metric("kube_event_shipper_sink_up", sink=server.scheme) == 1
    assert shipped(shipper, server.scheme, "dead_lettered") == 0
    assert shipper.stop() == 0


def test_a_document_the_mapping_refuses_is_dead_lettered_and_its_batch_lands(
    server, run, kube_api, namespace, tmp_path
):
    day = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    target = f"{server.index}-2026.11.20"
    # Someone's existing index maps count as a byte: a count of 300 cannot be indexed there.
    status, reply = call(
        "PUT",
        f"{server.url}/{target}",
        {
            "mappings": {
                "properties": {
                    "kubernetes": {
                        "properties": {"event": {"properties": {"count": {"type": "byte"}}}}
                    }
                }
            }
        },
    )
    assert status == 200, reply
    good = [core_event(kube_api, namespace, obj=f"g{i}", at=day) for i in range(3)]
    poison = core_event(kube_api, namespace, obj="huge", count=300, at=day)
    shipper = run(server.sink(mode="dated", batch_size="10", flush_interval="1s")).start()
    wait_for(lambda: shipped(shipper, server.scheme, "dead_lettered") == 1, what="one dead letter")
    wait_for(lambda: shipped(shipper, server.scheme) == 3, what="three shipped")
    assert set(ids(documents(server.url, target))) == {version_id(e) for e in good}
    letters = (
        (tmp_path / "state" / "dead-letters" / f"{server.scheme}.jsonl").read_text().splitlines()
    )
    assert len(letters) == 1
    letter = json.loads(letters[0])
    assert json.dumps(letter).count(poison["metadata"]["uid"]) >= 1
    assert "400" in json.dumps(letter) and "byte" in json.dumps(letter)
    assert shipper.stop() == 0


def test_dated_mode_names_the_index_by_the_event_day(server, run, kube_api, namespace):
    days = [
        datetime(2026, 11, 19, 23, 59, 59, tzinfo=UTC),
        datetime(2026, 11, 20, 0, 0, 1, tzinfo=UTC),
    ]
    made = [core_event(kube_api, namespace, obj=f"d{i}", at=day) for i, day in enumerate(days)]
    shipper = run(server.sink(mode="dated")).start()
    for event, day in zip(made, ["2026.11.19", "2026.11.20"], strict=True):
        wait_for(
            lambda day=day, event=event: (
                ids(documents(server.url, f"{server.index}-{day}")) == [version_id(event)]
            ),
            what=f"the event in {server.index}-{day}",
        )
    assert shipper.stop() == 0


def test_alias_mode_writes_through_the_alias_and_follows_a_rollover(
    server, run, kube_api, namespace
):
    shipper = run(server.sink(mode="alias")).start()
    first = core_event(kube_api, namespace, obj="r0")
    wait_for(lambda: len(documents(server.url, f"{server.index}*")) == 1, what="the first document")
    assert ids(documents(server.url, f"{server.index}-000001")) == [version_id(first)]
    status, reply = call("POST", f"{server.url}/{server.index}/_rollover")
    assert status == 200 and reply["new_index"] == f"{server.index}-000002", reply
    second = core_event(kube_api, namespace, obj="r1")
    wait_for(
        lambda: len(documents(server.url, f"{server.index}*")) == 2, what="the second document"
    )
    assert ids(documents(server.url, f"{server.index}-000002")) == [version_id(second)]
    assert shipper.stop() == 0


def test_data_stream_mode_where_the_server_has_none_says_so(elasticsearch_url, run):
    """Of the stack's servers only the embedded Elasticsearch 7.17 has no data streams (they are
    x-pack's in 7.x); auto mode picks them on the others (the auto-mode test)."""
    server = Server("elasticsearch", elasticsearch_url)
    assert not server.has_data_streams()
    shipper = run(server.sink(mode="data_stream")).start()
    wait_for(lambda: "has no data streams" in shipper.stderr(), what="the explanation")
    assert shipper.metric("kube_event_shipper_sink_up", sink=server.scheme) == 0
    assert shipper.stop() == 0


def setup_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipper", "setup", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_setup_installs_idempotently_and_prints(server):
    uri = f"{server.scheme}:{server.url}?index={server.index}"
    for _ in range(2):
        done = setup_cli(uri)
        assert done.returncode == 0, done.stderr
        assert f"PUT /_index_template/{server.index}" in done.stdout
    status, reply = call("GET", f"{server.url}/_index_template/{server.index}")
    assert status == 200, reply
    template = reply["index_templates"][0]["index_template"]
    assert template["priority"] == 200 + len(server.index)
    assert template["composed_of"] == [f"{server.index}-settings", f"{server.index}-mappings"]
    assert ("data_stream" in template) == server.has_data_streams()

    printed = setup_cli("--print", f"{uri}&mode=dated")
    assert printed.returncode == 0, printed.stderr
    assert f"PUT /_component_template/{server.index}-mappings" in printed.stdout
    assert f'"{server.index}-*"' in printed.stdout


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("elasticsearch:", "no server given"),
        ("elasticsearch:ftp://es:9200", "expected a URL such as http://es:9200"),
        ("elasticsearch:http://es:9200?index=Kube", "parameter index='Kube': expected a lowercase"),
        ("elasticsearch:http://es:9200?mode=daily", "parameter mode='daily': expected one of auto"),
        ("elasticsearch:http://es:9200?apiKey=k&esUserName=u", "either api_key or username"),
        (
            "elasticsearch:http://es:9200?caFile=/nonexistent/ca.pem",
            "parameter ca_file='/nonexistent/ca.pem': cannot read it",
        ),
        ("elasticsearch:http://es:9200?indx=a", "did you mean 'index'"),
        ("opensearch:http://os:9200?apiKey=k", "OpenSearch has no API keys"),
        ("log", "setup: log needs no setup"),
    ],
)
def test_bad_uris_are_usage_errors(uri, expected):
    done = setup_cli(uri)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_sniff_writes_through_the_nodes_the_cluster_lists(server, run, kube_api, namespace):
    shipper = run(server.sink(sniff="true")).start()
    made = core_event(kube_api, namespace, obj="sniffed")
    wait_for(
        lambda: ids(documents(server.url, f"{server.index}*")) == [version_id(made)],
        what="the document",
    )
    port = server.url.rsplit(":", 1)[1]
    assert f"sniffed 1 node(s): http://127.0.0.1:{port}." in shipper.stderr()
    assert shipper.stop() == 0


def test_index_format_names_indices_like_kubernetes_event_exporter(
    server, run, kube_api, namespace
):
    day = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    made = core_event(kube_api, namespace, obj="fmt", at=day)
    shipper = run(server.sink(index_format=f"{server.index}-{{2006-01-02}}")).start()
    target = f"{server.index}-2026-11-21"
    wait_for(lambda: ids(documents(server.url, target)) == [version_id(made)], what=target)
    assert shipper.stop() == 0

"""Audit documents in the search stores: the sinks against the stack's real Elasticsearch 7.17
and 8.19 and OpenSearch 1.3 and 2.19, and the audit dashboards' saved objects on them.

Sinks: the audit documents of a batch that mixes them with events land in their own index next
to the events' (data stream, dated or alias, as the events), typed by the audit template
(``ip``, ``date``, ``long``, keywords, text with keywords, bodies kept but not indexed); each
stage of a request is one document ``<auditID>.<stage>``, so a replay, in the same sink or after
a restart, adds nothing. ``setup`` installs the audit schema too.

Saved objects (``index-templates/*/kube-events-audit.ndjson``), checked as
tests/integration/test_saved_objects.py checks the events' (the stack has no Kibana nor
OpenSearch Dashboards, so the objects are run the way those products run them: each saved
search's Lucene query and each visualization's aggregations, on the servers, over known audit
events indexed with the shipped templates): files, references, migration levels, mapped fields,
the requests each search finds and the rows each chart shows, counted as distinct requests.
The events' data view leaves the audit documents out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from shipper.audit.record import from_record
from shipper.event import normalize
from shipper.sinks.base import SinkContext, TransientError
from shipper.sinks.factory import build_sink
from shipper.sinks.search import ElasticsearchSink
from tests.integration.test_index_templates import FLAVOUR as TEMPLATE_FLAVOUR
from tests.integration.test_index_templates import TEMPLATES, call, http, leaf_types
from tests.integration.test_saved_objects import (
    AGGREGATABLE,
    NEWEST_KNOWN,
    SERVER_DASHBOARDS,
    TIME_FIELD,
    by_id,
    field,
    hour_of,
    load_generator,
    of_type,
    panels,
    queries,
    ref_names_used,
    reference,
    search_source,
    source_clauses,
    table,
    time_range,
    used_fields,
    value,
    version_tuple,
    vis_request,
    vis_rows,
    vis_state,
)
from tests.support.common import ROOT

#: stack server (its fixture is ``<server>_url``) -> the sink scheme that speaks to it
SERVERS = {
    "opensearch": "opensearch",
    "opensearch1": "opensearch",
    "elasticsearch": "elasticsearch",
    "elasticsearch8": "elasticsearch",
}
DASHBOARDS = ["kibana", "opensearch-dashboards"]
AUDIT_ID = "kubernetes.audit.audit_id"
CHANGES = {"create", "update", "patch", "delete", "deletecollection"}


#: Each stage a millisecond after the one before.
STAGE_MS = {"RequestReceived": 0, "ResponseStarted": 1}


def audit_record(
    audit_id: str,
    stage: str,
    *,
    verb: str,
    user: str,
    at: str,
    resource: str | None = None,
    subresource: str | None = None,
    namespace: str | None = None,
    name: str | None = None,
    group: str | None = None,
    code: int | None = None,
    decision: str | None = "allow",
    source_ip: str = "10.20.30.40",
    body: Any = None,
) -> dict[str, Any]:
    """An ``audit.k8s.io/v1`` Event as the kube-apiserver's webhook sends it; the answer
    (status, authorization annotations) comes with the stages after RequestReceived."""
    raw: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse" if body is not None else "Metadata",
        "auditID": audit_id,
        "stage": stage,
        "requestURI": "/api" if resource is None else f"/apis/x/{resource}",
        "verb": verb,
        "user": {"username": user, "groups": ["system:authenticated"]},
        "sourceIPs": [source_ip],
        "userAgent": "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46",
        "requestReceivedTimestamp": f"2026-11-20T{at}.000000Z",
        "stageTimestamp": f"2026-11-20T{at}.00{STAGE_MS.get(stage, 2)}000Z",
    }
    if resource:
        ref: dict[str, Any] = {"resource": resource, "apiVersion": "v1"}
        for key, val in (("subresource", subresource), ("namespace", namespace), ("name", name),
                         ("apiGroup", group)):  # fmt: skip
            if val:
                ref[key] = val
        raw["objectRef"] = ref
    if stage != "RequestReceived":
        if code is not None:
            raw["responseStatus"] = {"metadata": {}, "code": code}
        if decision:
            raw["annotations"] = {
                "authorization.k8s.io/decision": decision,
                "authorization.k8s.io/reason": "" if decision == "forbid" else "RBAC: allowed",
            }
    if body is not None:
        raw["requestObject"] = body
        raw["responseObject"] = body
    return raw


# ---------------------------------------------------------------------------------------------
# The sinks


@dataclass
class Server:
    fixture: str
    url: str
    scheme: str
    index: str

    @property
    def audit(self) -> str:
        return f"{self.index}-audit"

    def sink(self, **params: str) -> ElasticsearchSink:
        query = "&".join(f"{k}={v}" for k, v in {"index": self.index, **params}.items())
        sink, _ = build_sink(f"{self.scheme}:{self.url}?{query}", SinkContext("stack", None))
        assert isinstance(sink, ElasticsearchSink)
        return sink

    def has_data_streams(self) -> bool:
        return call("GET", f"{self.url}/_data_stream")[0] == 200


@pytest.fixture(params=list(SERVERS))
def server(request) -> Server:
    url = request.getfixturevalue(f"{request.param}_url")
    return Server(
        request.param, url, SERVERS[request.param], f"kube-events-t{uuid.uuid4().hex[:8]}"
    )


def hits(base: str, target: str, body: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    call("POST", f"{base}/{target}/_refresh")
    status, reply = call("POST", f"{base}/{target}/_search?size=1000", body or {})
    assert status == 200, reply
    return reply["hits"]["hits"]


def doc_ids(found: list[dict[str, Any]]) -> list[str]:
    return sorted(hit["_id"] for hit in found)


def field_types(mapping: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for name, spec in mapping.get("properties", {}).items():
        if "properties" in spec:
            found.update(field_types(spec, f"{prefix}{name}."))
        else:
            found[f"{prefix}{name}"] = spec
    return found


BIG = {"kind": "ConfigMap", "data": {"blob": "x" * 40_000}}  # past Lucene's 32 KiB term limit


def batch() -> tuple[list[Any], set[str], set[str]]:
    """Events and audit events mixed, as the pipeline hands them to write(); the expected _ids."""
    records = [
        audit_record("a-get", "RequestReceived", verb="get", user="alice", at="10:00:00",
                     resource="secrets", namespace="shop", name="db"),
        audit_record("a-get", "ResponseComplete", verb="get", user="bob", at="10:00:00",
                     resource="secrets", namespace="shop", name="db", code=403,
                     decision="forbid", source_ip="fd00:10::7"),
        audit_record("a-put", "ResponseComplete", verb="update", user="ci", at="10:01:00",
                     resource="configmaps", namespace="shop", name="cfg", code=200, body=BIG),
        audit_record("a-exec", "ResponseStarted", verb="create", user="mallory", at="10:02:00",
                     resource="pods", subresource="exec", namespace="shop", name="web-0",
                     code=101, source_ip="192.168.7.9"),
    ]  # fmt: skip
    audits = [from_record(r, cluster="stack") for r in records]
    core = {
        "metadata": {"uid": "ev-1", "resourceVersion": "5", "name": "web.1", "namespace": "shop"},
        "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "shop"},
        "reason": "BackOff", "message": "Back-off restarting failed container",
        "type": "Warning", "count": 2, "lastTimestamp": "2026-11-20T10:00:30Z",
    }  # fmt: skip
    event = normalize(core, "MODIFIED", cluster="stack")
    mixed = [audits[0], event, *audits[1:]]
    audit_ids = {f"{r['auditID']}.{r['stage']}" for r in records}
    return mixed, audit_ids, {"ev-1.2"}


def test_audit_documents_land_typed_in_their_own_index_and_replays_do_not_duplicate(server):
    mixed, audit_ids, event_ids = batch()
    sink = server.sink()
    sink.open()
    try:
        assert sink.write(mixed) == []
        assert sink.write(mixed) == []  # a replay: every create answers 409
        assert sink.write(list(reversed(mixed))) == []
    finally:
        sink.close()
    restarted = server.sink()
    restarted.open()  # setup again, idempotent
    try:
        assert restarted.write(mixed) == []
    finally:
        restarted.close()

    audit_hits = hits(server.url, f"{server.audit}*")
    assert doc_ids(audit_hits) == sorted(audit_ids)
    # The events' own place keeps events only (kube-events-t..* alone would match both).
    assert doc_ids(hits(server.url, f"{server.index}*,-{server.audit}*")) == sorted(event_ids)
    if server.has_data_streams():  # auto mode: a data stream for each, where there are any
        assert all(h["_index"].startswith(f".ds-{server.audit}-") for h in audit_hits)
    else:
        assert {h["_index"] for h in audit_hits} == {f"{server.audit}-2026.11.20"}
    by_id_ = {hit["_id"]: hit["_source"] for hit in audit_hits}
    complete = by_id_["a-get.ResponseComplete"]
    assert complete["kubernetes"]["audit"]["response_status"]["code"] == 403
    assert complete["orchestrator"]["cluster"]["name"] == "stack"
    body = by_id_["a-put.ResponseComplete"]["kubernetes"]["audit"]["request_object"]
    assert json.loads(body) == BIG  # kept whole, though far past what a keyword may index

    status, mappings = call("GET", f"{server.url}/{server.audit}*/_mapping")
    assert status == 200, mappings
    types = field_types(next(iter(mappings.values()))["mappings"])
    kind = {name: spec.get("type") for name, spec in types.items()}
    for name in ("source.ip", "kubernetes.audit.source_ips"):
        assert kind[name] == "ip", name
    for name in ("@timestamp", "kubernetes.audit.stage_timestamp",
                 "kubernetes.audit.request_received_timestamp", "event.created"):  # fmt: skip
        assert kind[name] == "date", name
    for name in ("kubernetes.audit.audit_id", "kubernetes.audit.stage", "kubernetes.audit.verb",
                 "kubernetes.audit.user.username", "kubernetes.audit.user.groups",
                 "kubernetes.audit.object_ref.resource", "kubernetes.audit.object_ref.namespace",
                 "kubernetes.audit.authorization.decision", "user.name", "event.outcome",
                 "kubernetes.audit.annotations.authorization_k8s_io/decision"):  # fmt: skip
        assert kind[name] == "keyword", name
    assert kind["http.response.status_code"] == kind["kubernetes.audit.response_status.code"] == "long"  # fmt: skip
    assert kind["message"] == "text" and types["message"]["fields"]["keyword"]["type"] == "keyword"
    assert types["user_agent.original"]["fields"]["text"]["type"] == "text"
    assert types["kubernetes.audit.request_object"]["index"] is False

    # Typed fields answer typed queries: a CIDR, an IPv6 address, a status range, words.
    def ids_for(query: dict[str, Any]) -> list[str]:
        return doc_ids(hits(server.url, f"{server.audit}*", {"query": query}))

    assert ids_for({"term": {"source.ip": "192.168.0.0/16"}}) == ["a-exec.ResponseStarted"]
    assert ids_for({"term": {"kubernetes.audit.source_ips": "fd00:10::7"}}) == [
        "a-get.ResponseComplete"
    ]
    assert ids_for({"range": {"http.response.status_code": {"gte": 400}}}) == [
        "a-get.ResponseComplete"
    ]
    assert ids_for({"match": {"user_agent.original.text": "kubectl"}}) == sorted(audit_ids)
    assert ids_for({"match": {"message": "secrets"}}) == [
        "a-get.RequestReceived",
        "a-get.ResponseComplete",
    ]
    # The bodies are kept in _source but not indexed: searching them is refused.
    status, reply = call(
        "POST",
        f"{server.url}/{server.audit}*/_search",
        {"query": {"term": {"kubernetes.audit.request_object": "x"}}},
    )
    assert status == 400 and "not indexed" in json.dumps(reply), reply


@pytest.mark.parametrize("mode", ["dated", "alias"])
def test_the_audit_documents_follow_the_mode(server, mode):
    mixed, audit_ids, event_ids = batch()
    sink = server.sink(mode=mode)
    sink.open()
    try:
        if mode == "alias":  # made when the first audit document comes, not before
            assert call("HEAD", f"{server.url}/_alias/{server.audit}")[0] == 404
        assert sink.write(mixed[:2]) == []
        if mode == "alias":
            assert call("HEAD", f"{server.url}/_alias/{server.audit}")[0] == 200
            status, reply = call("POST", f"{server.url}/{server.audit}/_rollover")
            assert status == 200 and reply["new_index"] == f"{server.audit}-000002", reply
        assert sink.write(mixed[2:]) == []
    finally:
        sink.close()
    if mode == "dated":
        target = f"{server.audit}-2026.11.20"
        assert doc_ids(hits(server.url, target)) == sorted(audit_ids)
        assert doc_ids(hits(server.url, f"{server.index}-2026.11.20")) == sorted(event_ids)
    else:
        assert doc_ids(hits(server.url, f"{server.audit}-000001")) == ["a-get.RequestReceived"]
        assert doc_ids(hits(server.url, f"{server.audit}-000002")) == sorted(
            audit_ids - {"a-get.RequestReceived"}
        )
        assert doc_ids(hits(server.url, f"{server.index}-000001")) == sorted(event_ids)
    status, mappings = call("GET", f"{server.url}/{server.audit}-*/_mapping")
    assert status == 200, mappings
    for index, mapping in mappings.items():  # every audit index got the audit template
        assert field_types(mapping["mappings"])["source.ip"]["type"] == "ip", index


def test_alias_mode_without_setup_says_the_audit_alias_is_missing(server):
    first = server.sink(mode="alias")
    first.open()  # installs the templates and the events' alias only
    first.close()
    sink = server.sink(mode="alias", setup="false")
    sink.open()
    try:
        mixed, _, _ = batch()
        with pytest.raises(TransientError, match=f"alias {server.audit} .* does not exist"):
            sink.write(mixed)
        assert call("HEAD", f"{server.url}/{server.audit}")[0] == 404  # no stray index made
    finally:
        sink.close()


def test_a_sink_for_audit_documents_only_needs_no_events_schema(server):
    """``documents=audit``: the audit schema and alias only; no events' template or alias."""
    sink = server.sink(mode="alias", documents="audit")
    sink.open()
    try:
        audits = [e for e in batch()[0] if e.kind == "audit"]
        assert sink.write(audits) == []
    finally:
        sink.close()
    assert doc_ids(hits(server.url, server.audit)) == sorted(batch()[1])
    assert call("GET", f"{server.url}/_index_template/{server.audit}")[0] == 200
    assert call("GET", f"{server.url}/_index_template/{server.index}")[0] == 404
    assert call("HEAD", f"{server.url}/_alias/{server.index}")[0] == 404


def setup_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipper", "setup", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_setup_installs_the_audit_schema(server):
    uri = f"{server.scheme}:{server.url}?index={server.index}&mode=alias"
    done = setup_cli(uri)
    assert done.returncode == 0, done.stderr
    assert f"PUT /_index_template/{server.audit}" in done.stdout
    status, reply = call("GET", f"{server.url}/_index_template/{server.audit}")
    assert status == 200, reply
    template = reply["index_templates"][0]["index_template"]
    assert template["composed_of"] == [f"{server.audit}-settings", f"{server.audit}-mappings"]
    assert template["priority"] == 200 + len(server.audit)
    assert call("HEAD", f"{server.url}/_alias/{server.audit}")[0] == 200  # setup makes it

    only_events = Server(server.fixture, server.url, server.scheme, server.index + "e")
    uri = f"{server.scheme}:{server.url}?index={only_events.index}&documents=events"
    done = setup_cli(uri)
    assert done.returncode == 0, done.stderr
    assert call("GET", f"{server.url}/_index_template/{only_events.index}")[0] == 200
    assert call("GET", f"{server.url}/_index_template/{only_events.audit}")[0] == 404


# ---------------------------------------------------------------------------------------------
# The audit dashboards: files


def ndjson_path(dashboards: str) -> Any:
    return TEMPLATES / dashboards / "kube-events-audit.ndjson"


def load(dashboards: str) -> list[dict[str, Any]]:
    lines = ndjson_path(dashboards).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.mark.parametrize("dashboards", DASHBOARDS)
def test_audit_files_are_the_generators_output(dashboards):
    generator = load_generator()
    wanted = generator.render(dashboards, "kube-events-audit.ndjson")
    assert ndjson_path(dashboards).read_text(encoding="utf-8") == wanted, (
        "stale: run .venv/bin/python index-templates/generate_saved_objects.py"
    )


@pytest.mark.parametrize("dashboards", DASHBOARDS)
def test_audit_objects_resolve_and_are_at_the_products_levels(dashboards):
    objects = load(dashboards)
    index = by_id(objects)
    assert len(index) == len(objects)
    assert all(obj["id"].startswith("kube-event-shipper-audit") or obj["type"] == "index-pattern"
               for obj in objects)  # fmt: skip
    (data_view,) = of_type(objects, "index-pattern")
    assert data_view["id"] == "kube-event-shipper-kube-events-audit"
    assert data_view["attributes"]["title"] == "kube-events-audit*"
    assert data_view["attributes"]["timeFieldName"] == TIME_FIELD
    for obj in objects:
        names = [ref["name"] for ref in obj["references"]]
        for ref in obj["references"]:
            assert index[ref["id"]]["type"] == ref["type"], (obj["id"], ref)
        used = ref_names_used(obj)
        for name, wanted_type in used:
            assert not wanted_type or reference(obj, name)["type"] == wanted_type
        assert {name for name, _ in used} == set(names), f"{obj['id']}: unused references"
        assert set(obj["migrationVersion"]) == {obj["type"]}
        stated = version_tuple(obj["migrationVersion"][obj["type"]])
        assert stated <= version_tuple(NEWEST_KNOWN[dashboards][obj["type"]]), obj["id"]
        assert ("coreMigrationVersion" in obj) == (dashboards == "kibana"), obj["id"]
        for query in queries(obj):
            assert query["language"] == "lucene", obj["id"]
    (board,) = of_type(objects, "dashboard")
    assert board["attributes"]["title"] == "Kubernetes audit"
    cells: set[tuple[int, int]] = set()
    for panel in panels(board):
        box = panel["gridData"]
        assert box["x"] + box["w"] <= 48 and ("type" in panel) == (dashboards == "kibana")
        mine = {(x, y) for x in range(box["x"], box["x"] + box["w"])
                for y in range(box["y"], box["y"] + box["h"])}  # fmt: skip
        assert not cells & mine, f"panel {box['i']} overlaps another"
        cells |= mine
    on_board = {reference(board, p["panelRefName"])["id"] for p in panels(board)}
    assert on_board == {o["id"] for o in objects if o["type"] in {"search", "visualization"}}


@pytest.mark.parametrize("dashboards", DASHBOARDS)
def test_every_audit_chart_counts_distinct_requests(dashboards):
    for vis in of_type(load(dashboards), "visualization"):
        aggs = vis_state(vis)["aggs"]
        metrics = [agg for agg in aggs if agg["schema"] == "metric"]
        assert [(a["type"], a["params"]["field"]) for a in metrics] == [("cardinality", AUDIT_ID)]
        for agg in aggs:
            if agg["type"] == "terms":
                assert agg["params"]["orderBy"] == metrics[0]["id"], vis["id"]


def test_both_audit_sets_hold_the_same_objects():
    kibana, osd = (by_id(load(name)) for name in DASHBOARDS)
    assert kibana.keys() == osd.keys()
    for object_id, obj in kibana.items():
        assert obj["references"] == osd[object_id]["references"]
        assert queries(obj) == queries(osd[object_id]), object_id


def test_the_events_data_view_leaves_the_audit_documents_out():
    for dashboards in DASHBOARDS:
        events = json.loads(
            (TEMPLATES / dashboards / "kube-events.ndjson").read_text().splitlines()[0]
        )
        assert events["type"] == "index-pattern"
        assert events["attributes"]["title"] == "kube-events*,-kube-events-audit*"


# ---------------------------------------------------------------------------------------------
# The audit dashboards on the servers


@dataclass(frozen=True)
class Request:
    """One API request as the audit log shows it: a document per stage."""

    audit_id: str
    tags: frozenset[str]  # changes, denied, secrets-read, exec, rbac
    stages: tuple[dict[str, Any], ...]


def request(
    audit_id: str,
    stages: tuple[str, ...],
    tags: set[str] | frozenset[str] = frozenset(),
    **kwargs: Any,
) -> Request:
    records = tuple(audit_record(audit_id, stage, **kwargs) for stage in stages)
    return Request(audit_id, frozenset(tags), records)


RR, RS, RC = "RequestReceived", "ResponseStarted", "ResponseComplete"
RBAC = "rbac.authorization.k8s.io"

KNOWN = [
    request("q01", (RC,), verb="list", user="system:kube-controller-manager", at="08:00:10",
            resource="pods", code=200),
    request("q02", (RR, RC), {"secrets-read"}, verb="get", user="alice", at="08:10:00",
            resource="secrets", namespace="shop", name="db-password", code=200),
    request("q03", (RC,), {"secrets-read"}, verb="list", user="alice", at="08:20:00",
            resource="secrets", namespace="shop", code=200),
    request("q04", (RR, RC), {"secrets-read"}, verb="get",
            user="system:serviceaccount:ci:deployer", at="09:05:00", resource="secrets",
            namespace="billing", name="stripe-key", code=200),
    request("q05", (RR, RC), {"secrets-read", "denied"}, verb="get", user="bob", at="09:10:00",
            resource="secrets", namespace="shop", name="db-password", code=403,
            decision="forbid"),
    request("q06", (RC,), {"changes", "denied"}, verb="delete", user="bob", at="09:15:00",
            resource="pods", namespace="shop", name="web-0", code=403, decision="forbid"),
    request("q07", (RC,), {"denied"}, verb="get", user="system:anonymous", at="09:20:00",
            code=401, decision=None, source_ip="203.0.113.9"),
    request("q08", (RR, RS, RC), {"exec", "changes"}, verb="create", user="mallory",
            at="10:00:00", resource="pods", subresource="exec", namespace="shop", name="web-0",
            code=101),
    request("q09", (RS, RC), {"exec"}, verb="get", user="alice", at="10:30:00",
            resource="pods", subresource="exec", namespace="billing", name="worker-0", code=101),
    request("q10", (RC,), {"exec", "changes"}, verb="create", user="alice", at="10:40:00",
            resource="pods", subresource="portforward", namespace="shop", name="db-0", code=101),
    request("q11", (RR, RC), {"exec", "changes", "denied"}, verb="create", user="bob",
            at="10:45:00", resource="pods", subresource="attach", namespace="shop",
            name="web-0", code=403, decision="forbid"),
    request("q12", (RR, RC), {"rbac", "changes"}, verb="patch", user="admin", at="11:00:00",
            resource="clusterrolebindings", name="admins", group=RBAC, code=200,
            body={"subjects": [{"kind": "User", "name": "mallory"}]}),
    request("q13", (RC,), {"rbac", "changes"}, verb="create", user="admin", at="11:05:00",
            resource="roles", namespace="shop", name="reader", group=RBAC, code=201),
    request("q14", (RC,), {"rbac", "changes"}, verb="delete",
            user="system:serviceaccount:ci:deployer", at="11:10:00",
            resource="rolebindings", namespace="billing", name="old", group=RBAC, code=200),
    request("q15", (RC,), verb="get", user="alice", at="11:15:00", resource="clusterroles",
            name="admin", group=RBAC, code=200),
    request("q16", (RC,), {"changes"}, verb="update", user="bob", at="11:20:00",
            resource="configmaps", namespace="ops", name="cfg", code=409),
    request("q17", (RR, RC), {"changes"}, verb="create",
            user="system:serviceaccount:ci:deployer", at="11:30:00", resource="deployments",
            namespace="billing", name="api", group="apps", code=201),
    request("q18", (RC,), {"denied"}, verb="get", user="eve", at="11:40:00",
            resource="configmaps", namespace="shop", name="x", code=500, decision="forbid"),
    request("q19", (RS,), {"secrets-read"}, verb="watch", user="alice", at="11:50:00",
            resource="secrets", namespace="shop", code=200),
    request("q20", (RR, RC), {"changes"}, verb="deletecollection", user="alice", at="11:55:00",
            resource="events", namespace="shop", code=200),
]  # fmt: skip
KNOWN_BY_ID = {known.audit_id: known for known in KNOWN}


def audit_documents() -> list[tuple[str, dict[str, Any]]]:
    """(_id, document) for every stage, as the sink writes them."""
    shipped = []
    for known in KNOWN:
        for raw in known.stages:
            audit = from_record(raw, cluster="prod")
            shipped.append((f"{audit.uid}.{audit.resource_version}", audit.document()))
    return shipped


Docs = list[dict[str, Any]]


def distinct_requests(docs: Docs) -> int:
    return len({value(doc, AUDIT_ID) for doc in docs})


def tagged(tag: str, *, answered: bool = False) -> Callable[[dict[str, Any]], bool]:
    """The documents of the requests a person files under ``tag``; ``answered``: only the
    stages that carry the answer (all but RequestReceived)."""

    def wanted(doc: dict[str, Any]) -> bool:
        if tag not in KNOWN_BY_ID[value(doc, AUDIT_ID)].tags:
            return False
        return not answered or value(doc, "kubernetes.audit.stage") != RR

    return wanted


USER = field("kubernetes.audit.user.username")
VERB = field("kubernetes.audit.verb")
REF = "kubernetes.audit.object_ref"
MISSING = "__missing__"

EXPECTED_SEARCH: dict[str, Callable[[dict[str, Any]], bool]] = {
    "kube-event-shipper-audit-search-changes": tagged("changes"),
    "kube-event-shipper-audit-search-denied": tagged("denied", answered=True),
    "kube-event-shipper-audit-search-secrets-read": tagged("secrets-read"),
    "kube-event-shipper-audit-search-exec": tagged("exec"),
    "kube-event-shipper-audit-search-rbac-changes": tagged("rbac"),
}


def only(tag: str, **kwargs: Any) -> Callable[[Docs], Docs]:
    return lambda docs: [doc for doc in docs if tagged(tag, **kwargs)(doc)]


def everything(docs: Docs) -> Docs:
    return docs


EXPECTED_ROWS: dict[str, tuple[Callable[[Docs], Docs], list[tuple[Any, Any, Any]]]] = {
    "kube-event-shipper-audit-vis-requests-over-time": (
        everything, [(hour_of, "key", None), (VERB, "rank", 10)],
    ),
    "kube-event-shipper-audit-vis-denied-over-time": (
        only("denied", answered=True), [(hour_of, "key", None), (USER, "rank", 10)],
    ),
    "kube-event-shipper-audit-vis-top-users": (everything, [(USER, "rank", 20), (VERB, "rank", 5)]),
    "kube-event-shipper-audit-vis-who-changed-what": (
        only("changes"),
        [(USER, "rank", 20), (VERB, "rank", 10), (field(f"{REF}.resource"), "rank", 20)],
    ),
    "kube-event-shipper-audit-vis-denied-by-user": (
        only("denied", answered=True),
        [(USER, "rank", 20), (VERB, "rank", 10), (field(f"{REF}.resource", MISSING), "rank", 20),
         (field("kubernetes.audit.response_status.code"), "rank", 5)],
    ),
    "kube-event-shipper-audit-vis-secrets-read": (
        only("secrets-read"),
        [(USER, "rank", 20), (field(f"{REF}.namespace", MISSING), "rank", 20),
         (field(f"{REF}.name", MISSING), "rank", 20)],
    ),
    "kube-event-shipper-audit-vis-exec": (
        only("exec"),
        [(USER, "rank", 20), (field(f"{REF}.subresource"), "rank", 3),
         (field(f"{REF}.namespace"), "rank", 20), (field(f"{REF}.name"), "rank", 20)],
    ),
    "kube-event-shipper-audit-vis-rbac-changes": (
        only("rbac"),
        [(USER, "rank", 20), (VERB, "rank", 10), (field(f"{REF}.resource"), "rank", 10),
         (field(f"{REF}.name", MISSING), "rank", 20)],
    ),
}  # fmt: skip


@dataclass
class Loaded:
    server: str
    base: str
    index: str
    docs: Docs
    types: dict[str, str]
    objects: list[dict[str, Any]]
    run: str


def install_audit_templates(base: str, flavour: str) -> None:
    """The shipped files: the component templates, and the audit index template's dated
    variant (``kube-events-audit-*``) under its name, ``kube-events-audit``."""
    folder = TEMPLATES / flavour
    for path in sorted(folder.glob("component-template-kube-events-audit-*.json")):
        name = path.stem.removeprefix("component-template-")
        status, reply = call("PUT", f"{base}/_component_template/{name}", json.loads(path.read_text()))  # fmt: skip
        assert status == 200, reply
    body = json.loads((folder / "index-template-kube-events-audit-indices.json").read_text())
    status, reply = call("PUT", f"{base}/_index_template/kube-events-audit", body)
    assert status == 200, reply


def bulk(base: str, index: str, shipped: list[tuple[str, dict[str, Any]]]) -> None:
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


@pytest.fixture(scope="module", params=list(SERVER_DASHBOARDS))
def loaded(request) -> Iterator[Loaded]:
    server = request.param
    base = request.getfixturevalue(f"{server}_url")
    install_audit_templates(base, TEMPLATE_FLAVOUR[server])
    run = uuid.uuid4().hex[:10]
    index = f"kube-events-audit-t{run}-2026.11.20"
    shipped = audit_documents()
    bulk(base, index, shipped)
    status, count = call("GET", f"{base}/{index}/_count")
    assert status == 200 and count["count"] == len(shipped) > len(KNOWN), count
    status, mapping = call("GET", f"{base}/{index}/_mapping")
    assert status == 200, mapping
    types = leaf_types(mapping[index]["mappings"]["properties"])
    assert types["source.ip"] == "ip"  # the audit template, not the events' kube-events-*
    yield Loaded(
        server, base, index, [doc for _, doc in shipped], types, load(SERVER_DASHBOARDS[server]), run
    )  # fmt: skip
    call("DELETE", f"{base}/{index}")


def test_every_audit_field_is_mapped_and_aggregated_fields_aggregate(loaded):
    checked: set[str] = set()
    for obj in loaded.objects:
        aggregated, used = used_fields(obj)
        for name in sorted(used):
            assert name in loaded.types, f"{obj['id']} uses {name!r}, unmapped on {loaded.server}"
        for name in sorted(aggregated):
            assert loaded.types[name] in AGGREGATABLE, (obj["id"], name, loaded.types[name])
        checked |= used
    assert {AUDIT_ID, TIME_FIELD, "kubernetes.audit.user.username", "source.ip"} <= checked


def test_audit_searches_find_the_requests_they_are_named_for(loaded):
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
        found = reply["hits"]["hits"]
        got = sorted((value(h["_source"], AUDIT_ID), value(h["_source"], "kubernetes.audit.stage")) for h in found)  # fmt: skip
        expected = sorted((value(d, AUDIT_ID), value(d, "kubernetes.audit.stage")) for d in wanted)
        assert got == expected, f"{obj['id']} on {loaded.server}"
        for column in obj["attributes"]["columns"]:
            assert any(value(h["_source"], column) is not None for h in found), column


def test_audit_visualizations_count_each_request_once(loaded):
    visualizations = of_type(loaded.objects, "visualization")
    assert {obj["id"] for obj in visualizations} == EXPECTED_ROWS.keys()
    index = by_id(loaded.objects)
    for vis in visualizations:
        request_body = vis_request(vis, index)
        status, reply = call("POST", f"{loaded.base}/{loaded.index}/_search", request_body)
        assert status == 200, (vis["id"], request_body, reply)
        got = vis_rows(vis, reply)
        select, levels = EXPECTED_ROWS[vis["id"]]
        expected = table(select(loaded.docs), levels, [distinct_requests])
        assert len(expected) >= 2, vis["id"]
        assert got == expected, f"{vis['id']} on {loaded.server}:\n got {got}\nwant {expected}"


def test_the_data_views_split_events_and_audit_on_the_server(loaded):
    """Kibana and OpenSearch Dashboards send a data view's title as the index expression."""
    events_index = f"kube-events-t{loaded.run}-2026.11.20"
    core = {
        "metadata": {"uid": f"ev-{loaded.run}", "resourceVersion": "1", "name": "n.1"},
        "involvedObject": {"kind": "Node", "name": "node-a"},
        "reason": "NodeReady", "message": "ready", "type": "Normal", "count": 1,
        "lastTimestamp": "2026-11-20T10:00:00Z",
    }  # fmt: skip
    document = normalize(core, "ADDED", cluster="prod").document()
    # Matched by _id: whether kube-events-* has a template (keyword uid) depends on which tests ran.
    bulk(loaded.base, events_index, [(f"ev-{loaded.run}.1", document)])
    try:
        ours = {"bool": {"should": [
            {"term": {AUDIT_ID: "q02"}}, {"ids": {"values": [f"ev-{loaded.run}.1"]}},
        ], "minimum_should_match": 1, "filter": [{"terms": {"_index": [events_index, loaded.index]}}]}}  # fmt: skip

        def found(title: str) -> set[str]:
            status, reply = call("POST", f"{loaded.base}/{title}/_search?size=100", {"query": ours})
            assert status == 200, reply
            return {hit["_index"] for hit in reply["hits"]["hits"]}

        events_title = load_generator().INDEX_PATTERN_TITLE
        assert found("kube-events*") == {events_index, loaded.index}  # why the exclusion
        assert found(events_title) == {events_index}
        assert found("kube-events-audit*") == {loaded.index}
    finally:
        call("DELETE", f"{loaded.base}/{events_index}")

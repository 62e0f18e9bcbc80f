"""The stores' side of audit documents, in process: the embedded sqlite store (its ``audit``
table, retention, ``query --audit``) and what the search sinks put in a _bulk body for them
(index, ``_id``, document) and install (their template). SQLite is embedded: the files in
tmp_path are the real store. The search servers themselves: tests/integration/test_audit_search.py.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from shipper.audit.record import from_record
from shipper.cli import main
from shipper.event import normalize, utc_now
from shipper.sinks.base import SinkContext
from shipper.sinks.factory import build_sink
from shipper.sinks.search import ElasticsearchSink, OpenSearchSink
from shipper.sinks.search.naming import audit_index_format
from shipper.sinks.sqlite import (
    COLUMNS,
    AuditQuery,
    Query,
    SqliteOptions,
    SqliteSink,
    run_audit_query,
    run_query,
)
from shipper.uri import Uri

NOW = "2025-06-01T12:00:00Z"
DAY = "2025-06-01"  # in the past, whatever the clock says: --since and retention see it old


def record(
    audit_id: str,
    stage: str = "ResponseComplete",
    *,
    verb: str = "get",
    user: str = "alice",
    groups: tuple[str, ...] = ("dev", "system:authenticated"),
    resource: str | None = "secrets",
    subresource: str | None = None,
    namespace: str | None = "shop",
    name: str | None = "db-password",
    api_group: str | None = None,
    code: int | None = 200,
    decision: str | None = "allow",
    reason: str | None = "RBAC: allowed by RoleBinding reader/shop",
    at: str = "10:00:00",
    source_ip: str = "10.1.2.3",
    uri: str | None = None,
) -> dict[str, Any]:
    """An ``audit.k8s.io/v1`` Event as the kube-apiserver's webhook sends it."""
    raw: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": audit_id,
        "stage": stage,
        "requestURI": uri or f"/api/v1/namespaces/{namespace}/{resource}/{name}",
        "verb": verb,
        "user": {"username": user, "uid": f"uid-{user}", "groups": list(groups)},
        "sourceIPs": [source_ip, "127.0.0.1"],
        "userAgent": "kubectl/v1.31.0 (linux/amd64) kubernetes/abc",
        "requestReceivedTimestamp": f"{DAY}T{at}.000000Z",
        "stageTimestamp": f"{DAY}T{at}.002000Z",
    }
    if resource:
        ref: dict[str, Any] = {"resource": resource, "apiVersion": "v1"}
        for key, value in (
            ("subresource", subresource),
            ("namespace", namespace),
            ("name", name),
            ("apiGroup", api_group),
        ):
            if value:
                ref[key] = value
        raw["objectRef"] = ref
    if stage != "RequestReceived" and code is not None:
        status = "Success" if code < 400 else "Failure"
        raw["responseStatus"] = {"metadata": {}, "code": code, "status": status}
        if code == 403:
            raw["responseStatus"]["reason"] = "Forbidden"
    if stage != "RequestReceived" and decision:
        raw["annotations"] = {"authorization.k8s.io/decision": decision}
        if reason:
            raw["annotations"]["authorization.k8s.io/reason"] = reason
    return raw


def audit(audit_id: str, stage: str = "ResponseComplete", **kwargs: Any):
    return from_record(record(audit_id, stage, **kwargs), cluster="c1", now=NOW)


def event(uid: str, *, last: str = f"{DAY}T10:00:00Z", count: int = 1):
    obj = {
        "metadata": {"uid": uid, "resourceVersion": "7", "name": "web.1", "namespace": "shop"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "shop"},
        "reason": "BackOff",
        "message": "Back-off restarting failed container",
        "type": "Warning",
        "count": count,
        "firstTimestamp": f"{DAY}T09:00:00Z",
        "lastTimestamp": last,
    }
    return normalize(obj, "ADDED", cluster="c1")


def open_sink(path: Path, retention: float = 10 * 365 * 86400.0) -> SqliteSink:
    sink = SqliteSink(
        Uri("sqlite", str(path)), SqliteOptions(retention=retention), [], SinkContext("c1", None)
    )
    sink.open()
    return sink


def rows(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


# ---------------------------------------------------------------------------------------------
# sqlite


def test_sqlite_and_the_search_sinks_take_audit_documents():
    assert SqliteSink.accepts_audit and ElasticsearchSink.accepts_audit
    assert OpenSearchSink.accepts_audit


def test_a_mixed_batch_puts_events_and_audit_rows_in_their_tables(tmp_path):
    path = tmp_path / "e.db"
    sink = open_sink(path)
    denied = record("a-2", verb="delete", user="bob", code=403, decision="forbid", reason="")
    batch = [event("u1"), audit("a-1"), from_record(denied, cluster="c1", now=NOW), event("u2")]
    assert sink.write(batch) == []
    assert [r[0] for r in rows(path, "SELECT uid FROM events ORDER BY uid")] == ["u1", "u2"]
    got = {
        r[0]: r[1:]
        for r in rows(
            path,
            "SELECT audit_id, stage, verb, username, groups, source_ip, user_agent, resource,"
            " subresource, namespace, name, api_group, api_version, code, decision, reason,"
            " request_uri, level, received, stage_time, cluster FROM audit",
        )
    }
    assert got["a-1"] == (
        "ResponseComplete", "get", "alice", '["dev","system:authenticated"]', "10.1.2.3",
        "kubectl/v1.31.0 (linux/amd64) kubernetes/abc", "secrets", None, "shop", "db-password",
        None, "v1", 200, "allow", "RBAC: allowed by RoleBinding reader/shop",
        "/api/v1/namespaces/shop/secrets/db-password", "Metadata",
        f"{DAY}T10:00:00.000000Z", f"{DAY}T10:00:00.002000Z", "c1",
    )  # fmt: skip
    assert got["a-2"][:3] == ("ResponseComplete", "delete", "bob")
    assert got["a-2"][12:15] == (403, "forbid", None)  # an empty reason is no reason
    # The document column is the kubernetes.audit document, as the search sinks index it.
    (document,) = rows(path, "SELECT document FROM audit WHERE audit_id = 'a-2'")[0]
    parsed = json.loads(document)
    assert parsed["event"]["dataset"] == "kubernetes.audit"
    assert parsed["kubernetes"]["audit"]["response_status"]["code"] == 403
    assert parsed["orchestrator"]["cluster"]["name"] == "c1"
    assert parsed["user"]["name"] == "bob" and parsed["source"]["ip"] == "10.1.2.3"


def test_replays_never_duplicate_and_each_stage_is_a_row(tmp_path):
    path = tmp_path / "e.db"
    sink = open_sink(path)
    received = audit("a-1", "RequestReceived")
    complete = audit("a-1", "ResponseComplete")
    sink.write([received])
    sink.write([received, complete, event("u1")])
    sink.write([complete, received, complete])  # a replay, duplicated within the batch too
    assert rows(path, "SELECT audit_id, stage FROM audit ORDER BY stage") == [
        ("a-1", "RequestReceived"),
        ("a-1", "ResponseComplete"),
    ]
    assert rows(path, "SELECT count(*) FROM events") == [(1,)]
    sink.close()
    sink = open_sink(path)  # a restart: the same rows, the same answer
    sink.write([complete])
    assert rows(path, "SELECT count(*) FROM audit") == [(2,)]


def test_the_events_table_is_untouched(tmp_path):
    with_audit, without = tmp_path / "a.db", tmp_path / "b.db"
    open_sink(with_audit).write([event("u1"), audit("a-1"), event("u1", count=2)])
    open_sink(without).write([event("u1"), event("u1", count=2)])
    columns = [r[1] for r in rows(with_audit, "PRAGMA table_info(events)")]
    assert tuple(columns) == COLUMNS
    strip = "SELECT * FROM events"
    left = [r[:22] + r[23:] for r in rows(with_audit, strip)]  # shipped_at differs
    right = [r[:22] + r[23:] for r in rows(without, strip)]
    assert left == right and len(left) == 1 and left[0][COLUMNS.index("count")] == 2
    assert [r["uid"] for r in run_query(str(with_audit), Query())] == ["u1"]


def test_the_audit_table_has_its_key_and_indices(tmp_path):
    path = tmp_path / "e.db"
    open_sink(path).close()
    indexed = {
        name: [c[2] for c in rows(path, f"PRAGMA index_info('{name}')")]
        for (name,) in rows(
            path, "SELECT name FROM sqlite_master WHERE tbl_name = 'audit' AND type = 'index'"
        )
    }
    assert sorted(indexed.values()) == sorted(
        [
            ["audit_id", "stage"],  # the primary key
            ["stage_time"],
            ["username", "stage_time"],
            ["namespace", "resource", "stage_time"],
            ["code", "stage_time"],
        ]
    )
    plan = rows(
        path,
        "EXPLAIN QUERY PLAN SELECT * FROM audit WHERE username = ? ORDER BY stage_time DESC",
        "alice",
    )
    assert "audit_username" in " ".join(str(step) for step in plan)


def test_retention_prunes_audit_rows_by_stage_time(tmp_path):
    path = tmp_path / "e.db"
    sink = open_sink(path)
    fresh = utc_now()
    recent = record("fresh", at=fresh[11:19])
    recent["requestReceivedTimestamp"] = recent["stageTimestamp"] = fresh
    sink.write([audit("old"), from_record(recent, cluster="c1"), event("u-old")])
    sink.close()
    open_sink(path, retention=86400.0).close()  # pruned at open, as events are
    assert rows(path, "SELECT audit_id FROM audit") == [("fresh",)]
    assert rows(path, "SELECT uid FROM events") == []


def fill(path: Path) -> None:
    sink = open_sink(path)
    sink.write(
        [
            audit("r1", "RequestReceived", at="10:00:00"),
            audit("r1", at="10:00:00"),
            audit("r2", verb="list", name=None, at="10:01:00", user="ci"),
            audit("r3", verb="get", user="bob", code=403, decision="forbid", reason="",
                  at="10:02:00"),
            audit("r4", verb="create", user="mallory", resource="pods", subresource="exec",
                  name="web-0", at="10:03:00", code=101),
            audit("r5", verb="patch", user="alice", resource="clusterrolebindings",
                  namespace=None, name="admins", api_group="rbac.authorization.k8s.io",
                  at="10:04:00"),
            audit("r6", verb="get", user="system:anonymous", resource=None, code=401,
                  decision=None, uri="/api", at="10:05:00"),
            audit("r7", verb="update", user="bob", resource="configmaps", namespace="ops",
                  name="cfg", code=409, at="10:06:00"),
            event("ev-1"),
        ]
    )  # fmt: skip
    sink.close()


def ids(path: Path, query: AuditQuery) -> list[str]:
    return [row["audit_id"] for row in run_audit_query(str(path), query)]


def test_audit_query_filters(tmp_path):
    path = tmp_path / "e.db"
    fill(path)
    everything = ["r1", "r2", "r3", "r4", "r5", "r6", "r7"]
    assert ids(path, AuditQuery()) == everything  # one row per request, oldest first
    first = run_audit_query(str(path), AuditQuery(limit=1))
    assert [(r["audit_id"], r["stage"]) for r in first] == [("r7", "ResponseComplete")]
    both = run_audit_query(str(path), AuditQuery(stages=True, user="alice", resource="secrets"))
    assert [(r["audit_id"], r["stage"]) for r in both] == [
        ("r1", "RequestReceived"),
        ("r1", "ResponseComplete"),
    ]
    assert ids(path, AuditQuery(user="bob")) == ["r3", "r7"]
    assert ids(path, AuditQuery(verbs=("create", "patch", "update"))) == ["r4", "r5", "r7"]
    assert ids(path, AuditQuery(resource="secrets")) == ["r1", "r2", "r3"]
    assert ids(path, AuditQuery(resource="pods/exec")) == ["r4"]
    assert ids(path, AuditQuery(resource="pods/attach")) == []
    assert ids(path, AuditQuery(namespace="")) == ["r5", "r6"]  # cluster-scoped, no object
    assert ids(path, AuditQuery(namespace="ops")) == ["r7"]
    assert ids(path, AuditQuery(name="db-password", user="alice")) == ["r1"]
    # 401 and 403 are denied; a conflict (409) is not.
    assert ids(path, AuditQuery(denied=True)) == ["r3", "r6"]
    assert ids(path, AuditQuery(limit=2)) == ["r6", "r7"]  # the newest two
    assert ids(path, AuditQuery(since=3600.0)) == []  # DAY 10:0x is not the last hour
    row = run_audit_query(str(path), AuditQuery(user="mallory"))[0]
    assert row["groups"] == ["dev", "system:authenticated"]
    assert row["document"]["kubernetes"]["audit"]["object_ref"]["subresource"] == "exec"


def test_decision_forbid_alone_is_denied(tmp_path):
    """A webhook authorizer's forbid on a request that failed otherwise (here a 500)."""
    path = tmp_path / "e.db"
    open_sink(path).write([audit("x", code=500, decision="forbid"), audit("y", code=500)])
    assert ids(path, AuditQuery(denied=True)) == ["x"]


def test_a_database_from_before_audit_answers_with_no_rows_then_gets_the_table(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE events (uid TEXT PRIMARY KEY);"
    )
    db.close()
    assert run_audit_query(str(path), AuditQuery()) == []
    with pytest.raises(FileNotFoundError):
        run_audit_query(str(tmp_path / "missing.db"), AuditQuery())


# ---------------------------------------------------------------------------------------------
# query --audit, through the command line's own main()


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["query", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_query_audit_prints_a_table(tmp_path, capsys):
    path = tmp_path / "e.db"
    fill(path)
    code, out, err = cli(capsys, f"--db={path}", "--audit", "--user=bob")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [
        "TIME", "USER", "VERB", "NAMESPACE", "RESOURCE", "NAME", "CODE", "DECISION",
    ]  # fmt: skip
    assert lines[1].split() == [
        DAY, "10:02:00", "bob", "get", "shop", "secrets", "db-password", "403", "forbid",
    ]  # fmt: skip
    assert lines[2].split() == [
        DAY, "10:06:00", "bob", "update", "ops", "configmaps", "cfg", "409", "allow",
    ]  # fmt: skip
    assert len(lines) == 3
    code, out, _ = cli(capsys, f"--db={path}", "--audit", "-n", "shop", "--resource=pods/exec")
    assert code == 0
    assert out.splitlines()[0].split()[3] == "RESOURCE"  # -n chose the namespace: no column
    assert out.splitlines()[1].split()[4:7] == ["pods/exec", "web-0", "101"]
    code, out, _ = cli(capsys, f"--db={path}", "--audit", "--user=system:anonymous", "-o", "wide")
    assert code == 0
    assert " /api " in out and "STAGE" in out and "r6" in out  # no object: the request URI


def test_query_audit_json_denied_and_since(tmp_path, capsys):
    path = tmp_path / "e.db"
    fill(path)
    code, out, err = cli(capsys, f"--db={path}", "--audit", "--denied", "-o", "json")
    assert code == 0, err
    got = json.loads(out)
    assert [(r["audit_id"], r["code"], r["username"]) for r in got] == [
        ("r3", 403, "bob"),
        ("r6", 401, "system:anonymous"),
    ]
    assert got[0]["document"]["kubernetes"]["audit"]["authorization"]["decision"] == "forbid"
    code, out, err = cli(capsys, f"--db={path}", "--audit", "--verb=get,list", "-o", "json")
    assert [r["audit_id"] for r in json.loads(out)] == ["r1", "r2", "r3", "r6"]
    code, out, err = cli(capsys, f"--db={path}", "--audit", "--since=1h")
    assert code == 0 and out == "" and "No audit events match." in err


def test_query_events_still_shows_events_only(tmp_path, capsys):
    path = tmp_path / "e.db"
    fill(path)
    code, out, err = cli(capsys, f"--db={path}", "-o", "json")
    assert code == 0, err
    assert [r["uid"] for r in json.loads(out)] == ["ev-1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user=bob"], "--user: only with --audit"),
        (["--denied"], "--denied: only with --audit"),
        (["--audit", "--kind=Pod"], "--kind: not with --audit"),
        (["--audit", "--reason=Back"], "--reason: not with --audit"),
        (["--audit", "--verb=,"], "--verb: expected a verb"),
        (["--audit", "--resource=/exec"], "--resource: expected RESOURCE"),
    ],
)
def test_query_audit_usage_errors(tmp_path, capsys, args, message):
    path = tmp_path / "e.db"
    fill(path)
    code, out, err = cli(capsys, f"--db={path}", *args)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_query_audit_on_a_missing_database_is_a_usage_error(tmp_path, capsys):
    code, _, err = cli(capsys, f"--db={tmp_path / 'none.db'}", "--audit")
    assert code == 2 and "does not exist" in err


# ---------------------------------------------------------------------------------------------
# The search sinks' _bulk body and setup, without a server


def search_sink(uri: str) -> ElasticsearchSink:
    sink, _ = build_sink(uri, SinkContext("c1", None))
    assert isinstance(sink, ElasticsearchSink)
    sink.mode = sink.planned_mode()
    return sink


def bulk(sink: ElasticsearchSink, events: list[Any]) -> list[tuple[dict, dict]]:
    lines = [orjson.loads(line) for line in sink.bulk_body(events).splitlines() if line]
    return list(zip(lines[::2], lines[1::2], strict=True))


@pytest.mark.parametrize(
    ("uri", "event_index", "audit_target"),
    [
        ("elasticsearch:http://es:9200?mode=data_stream", "kube-events", "kube-events-audit"),
        ("elasticsearch:http://es:9200?mode=alias&index=k8s", "k8s", "k8s-audit"),
        ("opensearch:http://os:9200?mode=dated", "kube-events-2025.06.01", "kube-events-audit-2025.06.01"),
        ("elasticsearch:http://es:9200?index_format=ev-{2006.01.02}", "ev-2025.06.01", "ev-audit-2025.06.01"),
        ("elasticsearch:http://es:9200?indexFormat=kube-events-{2006-01-02}", "kube-events-2025-06-01",
         "kube-events-audit-2025-06-01"),
        ("elasticsearch:http://es:9200?index_format=all-events", "all-events", "all-events-audit"),
    ],
)  # fmt: skip
def test_audit_documents_go_next_to_the_events_under_their_own_id(uri, event_index, audit_target):
    sink = search_sink(uri)
    ev = event("u-1", last=f"{DAY}T23:00:00Z", count=4)
    received, complete = audit("a-1", "RequestReceived"), audit("a-1")
    (a1, d1), (a2, d2), (a3, d3) = bulk(sink, [received, ev, complete])
    assert a1 == {"create": {"_index": audit_target, "_id": "a-1.RequestReceived"}}
    assert a2 == {"create": {"_index": event_index, "_id": "u-1.4"}}
    assert a3 == {"create": {"_index": audit_target, "_id": "a-1.ResponseComplete"}}
    assert d1 == orjson.loads(received.document_json("c1"))
    assert d3["kubernetes"]["audit"]["stage"] == "ResponseComplete"
    assert d3["event"]["dataset"] == "kubernetes.audit"
    assert d2["kubernetes"]["event"]["count"] == 4


def test_a_layout_shapes_events_only():
    layout = quote('{"msg":"{{ .Message }}"}')
    sink = search_sink(f"elasticsearch:http://es:9200?layout={layout}&cluster_name=eu-1")
    ev, one = event("u-1"), audit("a-1")
    (_, event_doc), (action, audit_doc) = bulk(sink, [ev, one])
    assert event_doc == {"msg": ev.message}
    assert action["create"]["_id"] == "a-1.ResponseComplete"
    assert audit_doc["kubernetes"]["audit"]["annotations"] == {
        "authorization_k8s_io/decision": "allow",
        "authorization_k8s_io/reason": "RBAC: allowed by RoleBinding reader/shop",
    }
    assert audit_doc["orchestrator"]["cluster"]["name"] == "eu-1"  # the sink's cluster_name


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        (None, None),
        ("kube-events-{2006-01-02}", "kube-events-audit-{2006-01-02}"),
        ("ev_{2006.01.02}-x", "ev-audit_{2006.01.02}-x"),
        ("ev{2006.01}", "ev-audit{2006.01}"),
        ("{2006.01.02}-events", "audit-{2006.01.02}-events"),
        ("everything", "everything-audit"),
    ],
)
def test_audit_index_format(layout, expected):
    assert audit_index_format(layout) == expected


def test_the_audit_schema_is_installed_next_to_the_events():
    sink = search_sink("opensearch:http://os:9200?mode=alias&index=k8s")
    events = sink.setup_requests("alias", "ism")
    audit_requests = sink.audit_setup_requests("alias", "ism", first_index=True)
    assert [path for _, path, _ in audit_requests] == [
        "_component_template/k8s-audit-settings",
        "_component_template/k8s-audit-mappings",
        "_index_template/k8s-audit",
        "_plugins/_ism/policies/k8s-audit",
        "k8s-audit-000001",
    ]
    template = audit_requests[2][2]
    event_template = next(body for _, path, body in events if path == "_index_template/k8s")
    # A longer name outranks the events' template, whose k8s-* matches k8s-audit-000001 too.
    assert template["priority"] > event_template["priority"]
    assert template["index_patterns"] == ["k8s-audit-*"]
    assert template["template"]["settings"] == {
        "plugins.index_state_management.rollover_alias": "k8s-audit"
    }
    mapping = audit_requests[1][2]["template"]["mappings"]["properties"]
    audit_fields = mapping["kubernetes"]["properties"]["audit"]["properties"]
    assert audit_fields["source_ips"]["type"] == "ip"
    assert mapping["source"]["properties"]["ip"]["type"] == "ip"
    assert audit_fields["request_object"]["index"] is False
    assert audit_fields["response_status"]["properties"]["code"]["type"] == "long"
    ism = audit_requests[3][2]["policy"]["ism_template"][0]
    assert ism["index_patterns"] == ["k8s-audit-*"]
    assert ism["priority"] == template["priority"]


def test_dated_audit_template_covers_what_index_format_names():
    sink = search_sink("elasticsearch:http://es:9200?index_format=ev-{2006.01.02}")
    requests = sink.audit_setup_requests("dated", "ilm")
    assert requests[0] == ("PUT", "_ilm/policy/kube-events-audit", requests[0][2])
    template = requests[-1][2]
    assert template["index_patterns"] == ["ev-audit-*"]
    assert template["template"]["settings"] == {"index.lifecycle.name": "kube-events-audit"}
    # A layout does not change the audit template: audit documents keep their shape.
    layout = quote('{"msg":"{{ .Message }}"}')
    with_layout = search_sink(f"elasticsearch:http://es:9200?layout={layout}")
    paths = [path for _, path, _ in with_layout.audit_setup_requests("dated", None)]
    assert "_component_template/kube-events-audit-mappings" in paths


@pytest.mark.parametrize(
    ("documents", "events", "audit_docs"),
    [("all", True, True), ("events", True, False), ("audit", False, True)],
)
def test_documents_decides_which_schemas_are_installed(documents, events, audit_docs):
    sink = search_sink(f"elasticsearch:http://es:9200?documents={documents}")
    assert (sink.takes_events, sink.takes_audit) == (events, audit_docs)

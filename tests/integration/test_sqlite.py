"""The embedded store: idempotent upserts, no roll-back by late replays, retention, query."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from shipper.event import normalize, utc_now
from shipper.sinks.base import SinkContext
from shipper.sinks.sqlite import Query, SqliteOptions, SqliteSink, run_query
from shipper.uri import Uri

ROOT = Path(__file__).resolve().parents[2]


def event(uid: str, rv: str, *, count=1, last="2026-11-20T10:00:00Z", ns="shop", kind="Pod",
          name="web-1", reason="BackOff", type_="Warning", message="Back-off restarting"):  # fmt: skip
    obj = {
        "metadata": {
            "uid": uid,
            "resourceVersion": rv,
            "name": f"{name}.x",
            "namespace": ns or "default",
        },
        "involvedObject": {"kind": kind, "name": name} | ({"namespace": ns} if ns else {}),
        "reason": reason,
        "type": type_,
        "message": message,
        "count": count,
        "firstTimestamp": "2026-11-20T09:00:00Z",
        "lastTimestamp": last,
    }
    return normalize(obj, "ADDED", cluster="c1")


def open_sink(path: Path, retention: float = 10 * 365 * 86400.0) -> SqliteSink:
    sink = SqliteSink(
        Uri("sqlite", str(path)), SqliteOptions(retention=retention), [], SinkContext("c1", None)
    )
    sink.open()
    return sink


def test_count_updates_update_one_row_and_replays_do_not_roll_back(tmp_path):
    sink = open_sink(tmp_path / "e.db")
    versions = [
        event("u1", str(10 + i), count=i, last=f"2026-11-20T10:00:{i:02d}Z") for i in range(1, 11)
    ]
    sink.write(versions[:5])
    sink.write(versions[5:])
    sink.write([versions[2], versions[9]])  # a replay, partly stale
    rows = (
        sqlite3.connect(tmp_path / "e.db")
        .execute("SELECT count, resource_version, first_seen, last_seen FROM events")
        .fetchall()
    )
    assert rows == [(10, "20", "2026-11-20T09:00:00.000000Z", "2026-11-20T10:00:10.000000Z")]


def test_retention_prunes_old_events(tmp_path):
    old = event("old", "1", last="2020-01-01T00:00:00Z")
    fresh = replace(event("new", "2"), last_timestamp=utc_now())
    sink = open_sink(tmp_path / "e.db")
    sink.write([old, fresh])
    sink.close()
    sink = open_sink(tmp_path / "e.db", retention=86400.0)  # pruned at open
    uids = [r[0] for r in sqlite3.connect(tmp_path / "e.db").execute("SELECT uid FROM events")]
    assert uids == ["new"]


def fill(path: Path) -> None:
    sink = open_sink(path)
    sink.write(
        [
            event("a", "1", ns="shop", reason="BackOff", last="2026-11-20T10:00:00Z"),
            event("b", "2", ns="shop", reason="OOMKilling", kind="Node", name="n1",
                  message="Memory cgroup out of memory: Killed process 42", last="2026-11-20T10:01:00Z"),
            event("c", "3", ns="ops", reason="Scheduled", type_="Normal", name="job-1",
                  message="Successfully assigned ops/job-1 to n1", last="2026-11-20T10:02:00Z"),
            event("d", "4", ns="", kind="Node", name="n2", reason="NodeNotReady", type_="Normal",
                  last="2026-11-20T10:03:00Z"),
        ]
    )  # fmt: skip
    sink.close()


def test_query_filters(tmp_path):
    db = tmp_path / "e.db"
    fill(db)
    uids = lambda q: [r["uid"] for r in run_query(str(db), q)]  # noqa: E731
    assert uids(Query()) == ["a", "b", "c", "d"]  # oldest first, like kubectl
    assert uids(Query(namespace="shop")) == ["a", "b"]
    assert uids(Query(namespace="")) == ["d"]
    assert uids(Query(type="Normal")) == ["c", "d"]
    assert uids(Query(reason="OOM|Back")) == ["a", "b"]
    assert uids(Query(message="OUT OF MEMORY")) == ["b"]
    assert uids(Query(kind="Node", name="n2")) == ["d"]
    assert uids(Query(limit=2)) == ["c", "d"]  # the newest two
    assert (
        uids(Query(since=3600.0)) == []
    )  # these happened on 2026-11-20 10:0x, not in the last hour


def query(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipper", "query", *args], capture_output=True, text=True, cwd=ROOT
    )


def test_query_command_table_and_json(tmp_path):
    db = tmp_path / "e.db"
    fill(db)
    table = query(f"--db={db}", "-n", "shop")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE", "COUNT"]
    assert lines[1].split()[:5] == ["2026-11-20", "10:00:00", "Warning", "BackOff", "pod/web-1"]
    assert "node/n1" in lines[2] and "Killed process 42" in lines[2]
    as_json = query(f"--db={db}", "--reason=^Node", "-o", "json")
    assert [r["name"] for r in json.loads(as_json.stdout)] == ["n2"]


def test_query_errors_are_usage_errors(tmp_path):
    missing = query(f"--db={tmp_path / 'none.db'}")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    fill(tmp_path / "e.db")
    bad = query(f"--db={tmp_path / 'e.db'}", "--reason=(")
    assert bad.returncode == 2 and "--reason: expected a regular expression" in bad.stderr


def test_labels_and_owner_are_stored_kept_and_queried(tmp_path):
    path = tmp_path / "e.db"
    sink = open_sink(path)
    first = event("u1", "10", count=1, last="2026-11-20T10:00:01Z")
    first.labels = {"app": "web", "app.kubernetes.io/name": "web"}
    first.owner = {"kind": "Deployment", "name": "web", "api_version": "apps/v1"}
    later = event("u1", "11", count=2, last="2026-11-20T10:00:02Z")  # not looked up this time
    other = event("u2", "12", name="db-0")
    sink.write([first, other])
    sink.write([later])
    rows = run_query(str(path), Query(owner="Deployment/web"))
    assert [(r["uid"], r["count"], r["labels"], r["owner_name"]) for r in rows] == [
        ("u1", 2, {"app": "web", "app.kubernetes.io/name": "web"}, "web")
    ]
    assert run_query(str(path), Query(owner="web"))[0]["uid"] == "u1"
    assert run_query(str(path), Query(owner="StatefulSet/web")) == []
    assert {r["uid"]: r["labels"] for r in run_query(str(path), Query())} == {
        "u1": {"app": "web", "app.kubernetes.io/name": "web"},
        "u2": None,
    }
    wide = query("--db", str(path), "-o", "wide")
    assert "OWNER" in wide.stdout and "deployment/web" in wide.stdout


def test_a_schema_1_database_gets_the_new_columns(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(  # the events table as version 1 made it
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('schema_version', '1');"
        "CREATE TABLE events (uid TEXT PRIMARY KEY, resource_version TEXT NOT NULL,"
        " cluster TEXT NOT NULL DEFAULT '', namespace TEXT NOT NULL DEFAULT '', kind TEXT,"
        " name TEXT, object_uid TEXT, api_version TEXT, field_path TEXT, type TEXT NOT NULL,"
        " reason TEXT NOT NULL, message TEXT NOT NULL, action TEXT, reporting_controller TEXT,"
        " reporting_instance TEXT, source_component TEXT, source_host TEXT,"
        " event_name TEXT NOT NULL, event_namespace TEXT NOT NULL, count INTEGER NOT NULL,"
        " first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, shipped_at TEXT NOT NULL);"
        "INSERT INTO events VALUES ('old', '1', 'c1', 'shop', 'Pod', 'web-1', NULL, 'v1', NULL,"
        " 'Warning', 'BackOff', 'm', NULL, NULL, NULL, 'kubelet', NULL, 'web-1.x', 'shop', 3,"
        " '2026-11-20T09:00:00.000000Z', '2026-11-20T10:00:00.000000Z',"
        " '2026-11-20T10:00:01.000000Z');"
    )
    old.close()
    sink = open_sink(path)
    new = event("new", "5")
    new.owner = {"kind": "StatefulSet", "name": "db"}
    sink.write([new])
    rows = {r["uid"]: r for r in run_query(str(path), Query())}
    assert rows["old"]["count"] == 3 and rows["old"]["owner_name"] is None
    assert rows["new"]["owner_kind"] == "StatefulSet"
    version = sqlite3.connect(path).execute("SELECT value FROM meta").fetchone()
    assert version == ("2",)


def test_each_index_serves_a_query_and_older_unusable_ones_are_dropped(tmp_path):
    from shipper.sinks.sqlite import SCHEMA, query_sql

    path = tmp_path / "e.db"
    old = sqlite3.connect(path)  # a database as an earlier version left it
    old.executescript(
        SCHEMA
        + "CREATE INDEX events_reason ON events (reason, last_seen);"
        + "CREATE INDEX events_object ON events (kind, name);"
    )
    old.close()
    sink = open_sink(path)
    sink.write([event(f"u{n}", str(n), name=f"web-{n % 7}", ns=f"ns{n % 3}") for n in range(200)])
    db = sqlite3.connect(path)
    db.create_function("regexp", 2, lambda p, v: False, deterministic=True)
    indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"events_reason", "events_object"}.isdisjoint(indexes)

    def plan(**filters) -> str:
        sql, args = query_sql(Query(**filters))
        return " ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", args))

    assert "INDEX events_namespace" in plan(namespace="ns1", since=3600)
    assert "INDEX events_name" in plan(name="web-3")
    assert "INDEX events_last_seen" in plan(since=3600, reason="Back")
    user_made = {i for i in indexes if not i.startswith("sqlite_autoindex")}
    used = {"events_namespace", "events_name", "events_last_seen", "audit_stage_time"}
    assert {i for i in user_made if i.startswith("events_")} <= used
    rows = run_query(str(path), Query(name="web-3", namespace="ns0"))
    assert sorted(r["uid"] for r in rows) == sorted(
        f"u{n}" for n in range(200) if n % 7 == 3 and n % 3 == 0
    )


def test_a_row_that_cannot_be_made_rolls_its_batch_back_and_the_next_batch_lands(tmp_path):
    sink = open_sink(tmp_path / "e.db")
    good, bad = event("u1", "1"), event("u2", "2")
    bad.labels = {"app": object()}  # not JSON: making its row fails mid-batch
    with pytest.raises(TypeError):
        sink.write([good, bad])
    db = sqlite3.connect(tmp_path / "e.db")
    assert db.execute("SELECT count(*) FROM events").fetchone() == (0,)
    sink.write([good, event("u3", "3")])
    assert db.execute("SELECT uid FROM events ORDER BY uid").fetchall() == [("u1",), ("u3",)]

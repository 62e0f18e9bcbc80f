"""The influxdb sink against real InfluxDB 1.8.10 servers, fed by the real kube-apiserver.

Every test writes to a database of its own (``t_<random>``, dropped afterwards) on the stack's
InfluxDB (no auth). Credentials are tested against a second, real influxd started here from the
stack's binary with ``auth-enabled = true`` (scripts/stack runs its own without auth): users with
and without admin and write privileges answer 401 and 403 exactly as a production 1.8 does.

What is shown: the schema (tags and field types as documented, in both withfields modes, read
back with InfluxQL), any text round-tripping through the line protocol, the point time (exact
to the second or microsecond, the rest a stable hash), two events in one second kept while a
replay overwrites itself, no duplicate across restarts, 410 re-lists and full replays, a server
stopped for a minute losing nothing, refused points (field type conflict, beyond the retention
policy) dead-lettered while their batch lands, a dropped database re-created, credentials and
privileges in one clear line, bad URIs exit 2.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shipper.event import Event, normalize
from shipper.sinks.base import SinkContext, TransientError
from shipper.sinks.factory import build_sink
from shipper.sinks.influxdb import InfluxDBSink, point_time, version_hash
from tests.support.common import ROOT, STACK, free_port, stack_up, wait_for
from tests.support.kube import bump, core_event, etcd_compact, events_v1_event, now
from tests.support.proxy import CheckingProxy, Checks, make_pki, server_tls

OUTAGE_SECONDS = float(os.environ.get("KES_OUTAGE_SECONDS", "60"))
MEASUREMENT = "kubernetes_events"

pytestmark = pytest.mark.stack("influxdb")


# -- talking to InfluxDB as a user would: InfluxQL over /query


def influxql(
    url: str, q: str, db: str | None = None, auth: str | None = None, missing_ok: bool = False
) -> dict[str, Any]:
    """One InfluxQL statement; the first result (``series`` absent when nothing matched).
    ``missing_ok``: a database not (yet) there is an empty result."""
    params = {"q": q, "epoch": "ns"} | ({"db": db} if db else {})
    request = urllib.request.Request(f"{url}/query", data=urllib.parse.urlencode(params).encode())
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    with urllib.request.urlopen(request, timeout=30) as response:
        result = json.load(response)["results"][0]
    if missing_ok and result.get("error", "").startswith("database not found"):
        return {}
    assert "error" not in result, (q, result)
    return result


def rows(url: str, db: str, q: str) -> list[dict[str, Any]]:
    """Every row of every series of ``q``, as dicts (a series' tags merged in)."""
    found = []
    for series in influxql(url, q, db, missing_ok=True).get("series", []):
        for values in series["values"]:
            found.append(
                {**series.get("tags", {}), **dict(zip(series["columns"], values, strict=True))}
            )
    return found


def write_v1(url: str, db: str, line: str) -> None:
    """Someone else's point, through the 1.x /write endpoint."""
    request = urllib.request.Request(f"{url}/write?db={db}", data=line.encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 204


def points(url: str, db: str, where: str = "") -> list[dict[str, Any]]:
    return rows(url, db, f'SELECT * FROM "{MEASUREMENT}" {where}')


def field_types(url: str, db: str) -> dict[str, str]:
    series = influxql(url, f'SHOW FIELD KEYS FROM "{MEASUREMENT}"', db).get("series", [])
    return {name: kind for series_ in series for name, kind in series_["values"]}


def tag_keys(url: str, db: str) -> set[str]:
    series = influxql(url, f'SHOW TAG KEYS FROM "{MEASUREMENT}"', db).get("series", [])
    return {value[0] for series_ in series for value in series_["values"]}


@pytest.fixture
def db(influxdb_url: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    for _attempt in range(30):  # the server may be coming back from the outage test
        try:
            influxql(influxdb_url, f'DROP DATABASE "{name}"')
            return
        except OSError:
            time.sleep(1)


def sink(uri: str, cluster: str = "") -> InfluxDBSink:
    built, _ = build_sink(uri, SinkContext(cluster=cluster, state_dir=None))
    assert isinstance(built, InfluxDBSink)
    return built


def api_event(i: int = 0, **overrides: Any) -> dict[str, Any]:
    """A core/v1 Event as the API returns it (JSON)."""
    obj: dict[str, Any] = {
        "metadata": {
            "uid": f"uid-{uuid.uuid4()}",
            "resourceVersion": str(1000 + i),
            "name": f"web-{i}.17a1b2c3d4e5f6a7",
            "namespace": "shop",
            "creationTimestamp": "2026-11-20T10:00:00Z",
        },
        "involvedObject": {"kind": "Pod", "name": f"web-{i}", "namespace": "shop",
                           "uid": f"pod-{i}", "apiVersion": "v1",
                           "fieldPath": "spec.containers{app}"},
        "reason": "BackOff",
        "message": "Back-off restarting failed container",
        "type": "Warning",
        "count": 1,
        "firstTimestamp": "2026-11-20T10:00:00Z",
        "lastTimestamp": "2026-11-20T10:00:00Z",
        "source": {"component": "kubelet", "host": "node-a"},
    }  # fmt: skip
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(obj.get(key), dict):
            obj[key] = {**obj[key], **value}
        else:
            obj[key] = value
    return obj


def ns_of(text: str) -> int:
    """An RFC 3339 UTC time (``...Z``, up to microseconds) as nanoseconds since the epoch."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    whole = int(moment.replace(microsecond=0).timestamp())
    return whole * 1_000_000_000 + moment.microsecond * 1000


# -- the schema and the line protocol, in process


def test_the_schema_with_fields_is_typed_as_documented(influxdb_url, db):
    made = [api_event(0), api_event(1, count=7, type="Normal", reason="Pulled",
                                     message='Successfully pulled image "nginx:1.27"')]  # fmt: skip
    made[1]["involvedObject"].pop("fieldPath")
    events = [normalize(obj, "ADDED") for obj in made]
    writer = sink(f"influxdb:{influxdb_url}?db={db}&withfields=true", cluster="prod-eu")
    writer.open()
    assert writer.write(events) == []
    writer.close()

    assert tag_keys(influxdb_url, db) == {
        "cluster",
        "namespace",
        "kind",
        "reason",
        "type",
        "component",
    }
    assert field_types(influxdb_url, db) == {
        "count": "integer", "message": "string", "event_name": "string", "uid": "string",
        "resource_version": "string", "object_name": "string", "object_uid": "string",
        "object_api_version": "string", "object_field_path": "string",
        "first_occurrence": "string", "last_occurrence": "string", "host": "string",
    }  # fmt: skip
    got = {p["uid"]: p for p in points(influxdb_url, db)}
    assert set(got) == {obj["metadata"]["uid"] for obj in made}
    for obj, event in zip(made, events, strict=True):
        point = got[obj["metadata"]["uid"]]
        assert point == {
            "time": point_time(event),
            "cluster": "prod-eu", "namespace": "shop", "kind": "Pod", "reason": obj["reason"],
            "type": obj["type"], "component": "kubelet",
            "count": obj["count"], "message": obj["message"],
            "event_name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"],
            "resource_version": obj["metadata"]["resourceVersion"],
            "object_name": obj["involvedObject"]["name"],
            "object_uid": obj["involvedObject"]["uid"], "object_api_version": "v1",
            "object_field_path": obj["involvedObject"].get("fieldPath"),
            "first_occurrence": "2026-11-20T10:00:00.000000Z",
            "last_occurrence": "2026-11-20T10:00:00.000000Z", "host": "node-a",
        }  # fmt: skip


def test_withfields_false_writes_kube_eventers_value_and_the_count(influxdb_url, db):
    event = normalize(api_event(0, count=3), "ADDED")
    writer = sink(f"influxdb:{influxdb_url}?db={db}")  # withfields=false: kube-eventer's default
    writer.open()
    assert writer.write([event]) == []
    assert field_types(influxdb_url, db) == {"count": "integer", "value": "string"}
    (point,) = points(influxdb_url, db)
    document = json.loads(point["value"])
    expected = event.document()
    expected["orchestrator"]["cluster"] = {"name": "default"}  # kube-eventer's default cluster
    assert document == expected
    assert point["count"] == 3 and point["cluster"] == "default" and point["reason"] == "BackOff"


def test_tags_are_chosen_and_the_others_become_fields(influxdb_url, db):
    event = normalize(api_event(0, action="Restart"), "ADDED")
    writer = sink(f"influxdb:{influxdb_url}?db={db}&withfields=true&tags=reason,host,action")
    writer.open()
    assert writer.write([event]) == []
    assert tag_keys(influxdb_url, db) == {"reason", "host", "action"}
    types = field_types(influxdb_url, db)
    for name in ("cluster", "namespace", "kind", "type", "component"):
        assert types[name] == "string"
    assert "host" not in types and "reason" not in types
    (point,) = points(influxdb_url, db)
    assert (point["namespace"], point["kind"], point["host"], point["action"]) == (
        "shop",
        "Pod",
        "node-a",
        "Restart",
    )


NASTY = [
    'quote " and backslash \\ and \\" both',
    "trailing backslash \\",
    "commas, equals= and  spaces",
    "new\nline\r\nand\ttab",
    "emoji 🔥 and ünïcödé and 中文",
    "",
    "\\",
    '"',
]


@pytest.mark.parametrize("withfields", ["true", "false"])
def test_any_text_round_trips_through_the_line_protocol(influxdb_url, db, withfields):
    made = [
        api_event(i, message=text, reason=f"R{i}{text}"[:60],
                  involvedObject={"name": f"o{i}{text}", "namespace": f"ns {text}"})
        for i, text in enumerate(NASTY)
    ]  # fmt: skip
    events = [normalize(obj, "ADDED") for obj in made]
    writer = sink(f"influxdb:{influxdb_url}?db={db}&withfields={withfields}")
    writer.open()
    assert writer.write(events) == []
    got = {p["time"]: p for p in points(influxdb_url, db)}
    assert len(got) == len(events)
    for event in events:
        point = got[point_time(event)]
        if withfields == "true":
            assert point["message"] == event.message
            assert point["object_name"] == event.object_name
        else:
            assert json.loads(point["value"])["message"] == event.message
        # Tags: exact, except what the line protocol cannot carry (documented): newlines are
        # written as \n and a trailing backslash is dropped.
        for tag, value in (("reason", event.reason), ("namespace", event.object_namespace)):
            carried = value.replace("\n", "\\n").replace("\r", "\\r").rstrip("\\")
            assert point.get(tag) == (carried or None), (tag, value)


def test_two_events_in_one_second_are_two_points_and_a_replay_overwrites(influxdb_url, db):
    # Same series (all tags equal), same second: two events, and a count update of the first.
    first = api_event(0)
    second = api_event(1, involvedObject={"name": "web-0"})  # another event about the same pod
    update = {**first, "count": 2, "metadata": {**first["metadata"], "resourceVersion": "2000"}}
    precise = api_event(2, lastTimestamp=None, eventTime="2026-11-20T10:00:00.123456Z")
    events = [normalize(obj, "ADDED") for obj in (first, second, update, precise)]
    writer = sink(f"influxdb:{influxdb_url}?db={db}&withfields=true")
    writer.open()
    assert writer.write(events) == []
    for _ in range(2):  # a replay (twice over, and in another order) adds nothing
        assert writer.write(list(reversed(events))) == []
    got = sorted((p["time"], p["uid"], p["count"]) for p in points(influxdb_url, db))
    assert got == sorted((point_time(e), e.uid, e.count) for e in events)
    assert len({time_ for time_, _, _ in got}) == 4

    second_start = ns_of("2026-11-20T10:00:00Z")
    for event in events[:3]:  # whole-second times: exact to the second, the fraction a hash
        assert point_time(event) == second_start + version_hash(event.uid, event.count) % 10**9
    # a microsecond time: exact to the microsecond, the nanoseconds a hash
    assert point_time(events[3]) == ns_of("2026-11-20T10:00:00.123456Z") + (
        version_hash(events[3].uid, events[3].count) % 1000
    )
    # the hash is stable: a new process computes the same time for the same version
    again = subprocess.run(
        [sys.executable, "-c", "import sys; from shipper.sinks.influxdb import version_hash;"
         f" print(version_hash({events[0].uid!r}, 1))"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert int(again.stdout) == version_hash(events[0].uid, 1)


def test_refused_points_are_dead_lettered_and_their_batch_lands(influxdb_url, db):
    writer = sink(f"influxdb:{influxdb_url}?db={db}&withfields=true")
    writer.open()
    # Someone else's points made object_field_path an integer in this shard: the events that
    # have a field path cannot be written there, the others can.
    stamp = ns_of("2026-11-20T09:00:00Z")
    write_v1(influxdb_url, db, f"{MEASUREMENT},cluster=x object_field_path=1i,count=1i {stamp}")
    made = [api_event(i) for i in range(10)]
    for i in (0, 1, 2, 4, 5, 7, 8, 9):
        made[i]["involvedObject"].pop("fieldPath")
    events = [normalize(obj, "ADDED") for obj in made]
    rejected = writer.write(events)
    assert sorted(r.index for r in rejected) == [3, 6]
    for r in rejected:
        assert r.reason.startswith("HTTP 400 partial write: field type conflict"), r.reason
        assert 'input field "object_field_path"' in r.reason
    landed = {p["uid"] for p in points(influxdb_url, db, "WHERE cluster = 'default'")}
    assert landed == {e.uid for i, e in enumerate(events) if i not in (3, 6)}


def test_points_beyond_the_retention_policy_are_dead_lettered(influxdb_url, db):
    influxql(influxdb_url, f'CREATE DATABASE "{db}"')
    influxql(influxdb_url, f'CREATE RETENTION POLICY "hour" ON "{db}" DURATION 1h REPLICATION 1')
    recent = now(-60).strftime("%Y-%m-%dT%H:%M:%SZ")
    made = [
        api_event(0, lastTimestamp=recent),
        api_event(1, lastTimestamp="2020-01-01T00:00:00Z"),
        api_event(2, lastTimestamp=recent),
    ]
    events = [normalize(obj, "ADDED") for obj in made]
    writer = sink(f"influxdb:{influxdb_url}?db={db}&retention_policy=hour&withfields=true")
    assert writer.bucket == f"{db}/hour"
    writer.open()
    rejected = writer.write(events)
    assert [r.index for r in rejected] == [1]
    assert "points beyond retention policy" in rejected[0].reason
    assert {p["uid"] for p in rows(influxdb_url, db, f'SELECT * FROM "hour"."{MEASUREMENT}"')} == {
        events[0].uid, events[2].uid,
    }  # fmt: skip


def test_a_missing_retention_policy_is_one_clear_transient_error(influxdb_url, db):
    writer = sink(f"influxdb:{influxdb_url}?db={db}&retention_policy=nope")
    writer.open()
    with pytest.raises(TransientError) as caught:
        writer.write([normalize(api_event(0), "ADDED")])
    assert str(caught.value) == (
        f"HTTP 500 retention policy not found: nope: create it on {db} or fix retention_policy="
    )


def test_a_database_dropped_while_running_is_created_again(influxdb_url, db):
    writer = sink(f"influxdb:{influxdb_url}?db={db}")
    writer.open()  # creates it
    assert db in str(influxql(influxdb_url, "SHOW DATABASES"))
    influxql(influxdb_url, f'DROP DATABASE "{db}"')
    event = normalize(api_event(0), "ADDED")
    assert writer.write([event]) == []
    assert [p["time"] for p in points(influxdb_url, db)] == [point_time(event)]


def test_without_create_database_a_missing_database_is_one_clear_line(influxdb_url, db):
    writer = sink(f"influxdb:{influxdb_url}?db={db}&create_database=false")
    writer.open()
    with pytest.raises(TransientError) as caught:
        writer.write([normalize(api_event(0), "ADDED")])
    assert str(caught.value) == (
        f'HTTP 404 database not found: "{db}": create it (CREATE DATABASE "{db}") or let the'
        " shipper's user create it (an admin, create_database=true)"
    )


def test_https_trusts_ca_file_refuses_an_unknown_ca_and_insecure_skips_the_check(
    influxdb_url, db, tmp_path
):
    """The stack's InfluxDB behind a TLS proxy whose certificate a test CA signed."""
    pki = make_pki(tmp_path)
    influxql(influxdb_url, f'CREATE DATABASE "{db}"')
    first, second = normalize(api_event(0), "ADDED"), normalize(api_event(1), "ADDED")
    with CheckingProxy(influxdb_url, Checks(), tls=server_tls(pki, require_client_cert=False)) as proxy:  # fmt: skip
        trusted = sink(f"influxdb:{proxy.url}?db={db}&ca_file={pki.ca}")
        trusted.open()
        assert trusted.write([first]) == []
        trusted.close()

        unknown = sink(f"influxdb:{proxy.url}?db={db}")  # the system's CAs do not know it
        with pytest.raises(TransientError, match="CERTIFICATE_VERIFY_FAILED"):
            unknown.open()
        unknown.close()

        insecure = sink(f"influxdb:{proxy.url}?db={db}&insecuressl=true")
        insecure.open()
        assert insecure.write([second]) == []
        insecure.close()
    assert sorted(p["time"] for p in points(influxdb_url, db)) == sorted(
        [point_time(first), point_time(second)]
    )
    assert sum(line.startswith("POST /api/v2/write") for line in proxy.checks.seen) == 2


# -- credentials: a real influxd with auth-enabled = true


class AuthInfluxDB:
    """influxd 1.8.10 (the stack's binary) with auth on: admin ``admin``, ``writer`` with WRITE
    on database ``events`` only, ``reader`` with READ on it only."""

    def __init__(self, workdir: Path) -> None:
        cache = Path(os.environ.get("KES_STACK_CACHE") or "~/.cache/kube-event-shipper-stack")
        self.binary = cache.expanduser() / "influxdb" / "bin" / "influxd"
        self.port, rpc = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        conf = workdir / "influxdb.conf"
        conf.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{rpc}"\n'
            f'[meta]\n  dir = "{workdir / "meta"}"\n'
            f'[data]\n  dir = "{workdir / "data"}"\n  wal-dir = "{workdir / "wal"}"\n'
            "  query-log-enabled = false\n"
            "[monitor]\n  store-enabled = false\n"
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  auth-enabled = true\n'
            "  log-enabled = false\n"
        )
        self.log = (workdir / "influxd.log").open("wb")
        self.proc = subprocess.Popen(
            [str(self.binary), "run", "-config", str(conf)], stdout=self.log, stderr=self.log
        )
        wait_for(self.up, 30, "the auth-enabled influxd")
        admin = "admin:admin-Pa55"
        # With auth on and no user yet, 1.x lets anyone create the first admin.
        influxql(self.url, "CREATE USER admin WITH PASSWORD 'admin-Pa55' WITH ALL PRIVILEGES")
        for statement in (
            'CREATE DATABASE "events"',
            "CREATE USER writer WITH PASSWORD 'writer-Pa55'",
            'GRANT WRITE ON "events" TO writer',
            "CREATE USER reader WITH PASSWORD 'reader-Pa55'",
            'GRANT READ ON "events" TO reader',
        ):
            influxql(self.url, statement, auth=admin)

    def up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"influxd exited ({self.proc.returncode})")
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=2) as response:
                return response.status == 204
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def auth_influxdb(
    influxdb_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuthInfluxDB]:
    server = AuthInfluxDB(tmp_path_factory.mktemp("influxdb-auth"))
    yield server
    server.stop()


def open_error(uri: str) -> str:
    writer = sink(uri)
    with pytest.raises(TransientError) as caught:
        writer.open()
        writer.write([normalize(api_event(0), "ADDED")])
    return str(caught.value)


@pytest.mark.parametrize(
    "params, expected",
    [
        ("db=events&user=admin&pw=wrong-Pa55", "HTTP 401 authorization failed: check user/pw (and admin's WRITE privilege on database events)"),
        ("db=events&token=admin:wrong-Pa55", "HTTP 401 authorization failed: check token (and that it may write to bucket events)"),
        ("db=events", "HTTP 401 unable to parse authentication credentials: the server wants credentials: give user/pw (1.x) or token (2.x, 3.x)"),
        ("db=events&user=reader&pw=reader-Pa55", 'HTTP 403 "reader" user is not authorized to write to database "events": check user/pw (and reader\'s WRITE privilege on database events)'),
        ("db=other&user=writer&pw=writer-Pa55&create_database=false", 'HTTP 404 database not found: "other": create it (CREATE DATABASE "other")'),
        ("db=other&user=writer&pw=writer-Pa55", 'HTTP 404 database not found: "other": create it (CREATE DATABASE "other")'),
    ],
    ids=["bad-password", "bad-token", "no-credentials", "no-write-privilege", "missing-db", "missing-db-not-admin"],
)  # fmt: skip
def test_credentials_and_privileges_are_one_clear_line(auth_influxdb, params, expected):
    message = open_error(f"influxdb:{auth_influxdb.url}?{params}")
    assert message.startswith(expected), message
    assert "\n" not in message and "Pa55" not in message


@pytest.mark.parametrize(
    "uri",
    [
        "influxdb:{url}?db=events&user=writer&pw=writer-Pa55",  # not an admin: no CREATE, writes
        "influxdb:{url}?db=events&token=writer:writer-Pa55",  # 1.8 takes user:pw as a token
        "influxdb:http://writer:writer-Pa55@{host}?db=events",  # credentials in the URL
        "influxdb:{url}?db=made_here&user=admin&pw_file={pw_file}",  # an admin creates the db
    ],
)
def test_good_credentials_write(auth_influxdb, uri, tmp_path):
    pw_file = tmp_path / "pw"
    pw_file.write_text("admin-Pa55\n")
    host = auth_influxdb.url.split("//", 1)[1]
    writer = sink(uri.format(url=auth_influxdb.url, host=host, pw_file=pw_file))
    assert "Pa55" not in writer.describe()
    writer.open()
    event = normalize(api_event(0), "ADDED")
    assert writer.write([event]) == []
    found = influxql(
        auth_influxdb.url, f'SELECT count("count") FROM "{MEASUREMENT}" WHERE time = {point_time(event)}',
        writer.db, auth="admin:admin-Pa55",
    )  # fmt: skip
    assert found["series"][0]["values"][0][1] == 1


# -- end to end: the daemon, the real kube-apiserver


@pytest.fixture
def run(shipper_factory, kube_env, namespace, tmp_path):
    """``run(sink_uri, *flags)`` -> a shipper for the test's namespace (not started yet)."""

    def make(uri: str, *flags: str) -> Any:
        args = [
            f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
            f"--sink={uri}",
            f"--state-dir={tmp_path / 'state'}",
            "--cluster-name=stack",
            *flags,
        ]
        return shipper_factory(args)

    return make


def shipped(process: Any, outcome: str = "shipped") -> float:
    return process.metric("kube_event_shipper_sink_events_total", sink="influxdb", outcome=outcome)


def versions(objs: list[dict[str, Any]]) -> set[tuple[str, int]]:
    return {(o["metadata"]["uid"], o.get("count") or 1) for o in objs}


def stored(url: str, db: str, namespace: str) -> list[tuple[int, str, int]]:
    """(time, uid, count) of every point of the namespace; a list, so duplicates would show."""
    found = points(url, db, f"WHERE namespace = '{namespace}'")
    return sorted((p["time"], uid_of(p), p["count"]) for p in found)


def uid_of(point: dict[str, Any]) -> str:
    """The event uid of a point: a field with withfields=true, in the JSON value without."""
    if point.get("uid"):
        return point["uid"]
    return json.loads(point["value"])["kubernetes"]["event"]["metadata"]["uid"]


def test_events_arrive_once_across_restarts_410_and_replays(
    influxdb_url, db, run, kube_api, kube_env, namespace
):
    shipper = run(f"influxdb:{influxdb_url}?db={db}&withfields=true").start()
    created = [core_event(kube_api, namespace, obj=f"p{i}") for i in range(3)]
    first = now()
    updates = [
        bump(kube_api, namespace, created[0]["metadata"]["name"], count, first + timedelta(seconds=count))
        for count in (2, 3)
    ]  # fmt: skip
    made = [*created, *updates]
    wait_for(lambda: len(stored(influxdb_url, db, namespace)) == 5, what="five points")
    assert {(uid, count) for _, uid, count in stored(influxdb_url, db, namespace)} == versions(made)

    # The schema, as the daemon wrote it.
    assert tag_keys(influxdb_url, db) == {
        "cluster",
        "namespace",
        "kind",
        "reason",
        "type",
        "component",
    }
    types = field_types(influxdb_url, db)
    assert types["count"] == "integer" and types["message"] == "string"
    assert types["object_name"] == types["uid"] == types["first_occurrence"] == "string"
    latest = points(
        influxdb_url, db, f"WHERE uid = '{updates[-1]['metadata']['uid']}' AND count = 3"
    )
    assert len(latest) == 1
    point, obj = latest[0], updates[-1]
    assert (point["cluster"], point["namespace"], point["kind"], point["reason"], point["type"],
            point["component"]) == ("stack", namespace, "Pod", "BackOff", "Warning", "kubelet")  # fmt: skip
    assert (point["object_name"], point["event_name"], point["resource_version"]) == (
        "p0", obj["metadata"]["name"], obj["metadata"]["resourceVersion"],
    )  # fmt: skip
    # the point's time: the occurrence (lastTimestamp) to the second, then the version's hash
    assert point["time"] // 10**9 == ns_of(obj["lastTimestamp"]) // 10**9
    assert point["time"] % 10**9 == version_hash(obj["metadata"]["uid"], 3) % 10**9
    assert point["first_occurrence"] == created[0]["firstTimestamp"].replace("Z", ".000000Z")
    assert point["last_occurrence"] == obj["lastTimestamp"].replace("Z", ".000000Z")
    assert shipper.stop() == 0
    before = stored(influxdb_url, db, namespace)

    # A restart after a 410: events made while stopped, a count update, etcd compacted.
    during = core_event(kube_api, namespace, obj="q0")
    later = bump(kube_api, namespace, created[1]["metadata"]["name"], 2, now(5))
    etcd_compact(kube_env["ETCD_URL"])
    shipper.start()
    made += [during, later]
    wait_for(lambda: len(stored(influxdb_url, db, namespace)) == 7, what="seven points")
    assert shipper.stop() == 0
    assert "410" in shipper.stderr(), shipper.stderr()
    after_410 = stored(influxdb_url, db, namespace)
    assert set(before) <= set(after_410)
    assert {(uid, count) for _, uid, count in after_410} == versions(made)

    # A full replay: the four current versions are written again, onto their own points.
    shipper.start("--start=all")
    wait_for(lambda: shipped(shipper) == 4, what="the four events re-sent")
    assert shipped(shipper, "dead_lettered") == 0
    assert shipper.stop() == 0
    assert stored(influxdb_url, db, namespace) == after_410
    assert "Traceback" not in shipper.stderr()


def test_two_events_of_one_series_in_one_second_are_both_kept(
    influxdb_url, db, run, kube_api, namespace
):
    moment = now(-30)
    made = [core_event(kube_api, namespace, obj="same-pod", at=moment) for _ in range(3)]
    made.append(events_v1_event(kube_api, namespace))  # a microsecond eventTime, another series
    shipper = run(f"influxdb:{influxdb_url}?db={db}").start()  # withfields=false, the default
    wait_for(lambda: shipped(shipper) == 4, what="four events shipped")
    found = points(influxdb_url, db, f"WHERE namespace = '{namespace}'")
    assert len(found) == 4
    same = [p for p in found if p["kind"] == "Pod"]
    assert (
        len(
            {
                (p["cluster"], p["namespace"], p["kind"], p["reason"], p["type"], p["component"])
                for p in same
            }
        )
        == 1
    )
    assert len({p["time"] for p in same}) == 3
    assert {p["time"] // 10**9 for p in same} == {int(moment.timestamp())}
    assert {json.loads(p["value"])["kubernetes"]["event"]["metadata"]["uid"] for p in same} == {
        obj["metadata"]["uid"] for obj in made[:3]
    }
    (deployment,) = [p for p in found if p["kind"] == "Deployment"]
    assert deployment["component"] == "example.com/scaler"
    # eventTime 12:34:56.123456Z: exact to the microsecond, then three digits of hash
    assert deployment["time"] // 1000 == ns_of(made[3]["eventTime"]) // 1000
    assert shipper.stop() == 0


def stack(command: str, component: str) -> None:
    subprocess.run(
        [sys.executable, str(STACK), command, component], cwd=ROOT, check=True, capture_output=True
    )


def test_an_outage_of_the_server_loses_nothing(influxdb_url, db, run, kube_api, namespace):
    shipper = run(
        f"influxdb:{influxdb_url}?db={db}&withfields=true&flush_interval=0.2s&max_backoff=5s"
    ).start()
    before = [core_event(kube_api, namespace, obj=f"a{i}") for i in range(2)]
    wait_for(lambda: len(stored(influxdb_url, db, namespace)) == 2, what="two points")

    stack("down", "influxdb")
    try:
        down_at = time.monotonic()
        during = [core_event(kube_api, namespace, obj=f"b{i}") for i in range(5)]
        update = bump(kube_api, namespace, before[0]["metadata"]["name"], 2, now(1))
        wait_for(
            lambda: shipper.metric("kube_event_shipper_sink_up", sink="influxdb") == 0,
            what="the sink to notice the outage",
        )
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        assert shipper.proc.poll() is None
        assert shipped(shipper, "retried") > 0
    finally:
        stack_up("influxdb")
    expected = versions([*before, *during, update])
    wait_for(
        lambda: {(uid, count) for _, uid, count in stored(influxdb_url, db, namespace)} == expected,
        timeout=90,
        what="every version made during the outage",
    )
    assert len(stored(influxdb_url, db, namespace)) == 8
    assert shipper.metric("kube_event_shipper_sink_up", sink="influxdb") == 1
    assert shipped(shipper, "dead_lettered") == 0
    assert shipper.stop() == 0
    assert "Traceback" not in shipper.stderr()
    retries = [
        line for line in shipper.stderr().splitlines() if "Sink influxdb could not write" in line
    ]
    assert retries and any("Connection refused" in line for line in retries), retries[:3]


def test_a_refused_event_is_dead_lettered_by_the_daemon(
    influxdb_url, db, run, kube_api, namespace, tmp_path
):
    influxql(influxdb_url, f'CREATE DATABASE "{db}"')
    influxql(
        influxdb_url, f'CREATE RETENTION POLICY "hour" ON "{db}" DURATION 1h REPLICATION 1 DEFAULT'
    )
    good = [core_event(kube_api, namespace, obj=f"g{i}") for i in range(3)]
    old = core_event(kube_api, namespace, obj="old", at=datetime(2020, 1, 1, tzinfo=UTC))
    shipper = run(f"influxdb:{influxdb_url}?db={db}&batch_size=10&flush_interval=1s").start()
    wait_for(lambda: shipped(shipper, "dead_lettered") == 1, what="one dead letter")
    wait_for(lambda: shipped(shipper) == 3, what="three shipped")
    assert {uid for _, uid, _ in stored(influxdb_url, db, namespace)} == {
        g["metadata"]["uid"] for g in good
    }
    letters = (tmp_path / "state" / "dead-letters" / "influxdb.jsonl").read_text().splitlines()
    assert len(letters) == 1
    letter = json.loads(letters[0])
    assert letter["document"]["kubernetes"]["event"]["metadata"]["uid"] == old["metadata"]["uid"]
    assert letter["reason"] == "HTTP 400 partial write: points beyond retention policy dropped=1"
    assert shipper.stop() == 0


def not_reachable_lines(process: Any) -> list[str]:
    return [
        line
        for line in process.stderr().splitlines()
        if "Sink influxdb is not reachable yet" in line
    ]


def test_bad_credentials_are_one_clear_line_from_the_daemon(auth_influxdb, run):
    shipper = run(
        f"influxdb:{auth_influxdb.url}?db=events&user=writer&pw=wrong-Pa55", "--grace-period=2s"
    ).start()
    wait_for(lambda: len(not_reachable_lines(shipper)) >= 2, what="two attempts")
    assert shipper.metric("kube_event_shipper_sink_up", sink="influxdb") == 0
    assert shipper.stop() == 0
    lines = not_reachable_lines(shipper)
    expected = (
        "(HTTP 401 authorization failed: check user/pw (and writer's WRITE privilege on"
        " database events)); retrying in"
    )
    assert all(expected in line for line in lines), lines
    assert "Traceback" not in shipper.stderr()
    assert "wrong-Pa55" not in shipper.stderr()


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("influxdb:", "--sink influxdb: no server given; expected influxdb:http://HOST:8086"),
        ("influxdb:influx:8086", "server 'influx:8086': expected a URL such as http://influxdb:8086"),
        ("influxdb:http://h:port", "server 'http://h:port': the port is not a number"),
        ("influxdb:http://h:8086?tags=uid", "parameter tags: 'uid' is unbounded (a series per object or event); it is a field"),
        ("influxdb:http://h:8086?tags=reason,object_name", "parameter tags: 'object_name' is unbounded"),
        ("influxdb:http://h:8086?tags=pod_ip", "parameter tags: unknown tag 'pod_ip'; expected some of cluster, namespace, kind, reason, type, component, host, action"),
        ("influxdb:http://h:8086?token=s3cr3t&user=u", "give either token (2.x, 3.x) or user/pw (1.x), not both"),
        ("influxdb:http://h:8086?bucket=b&db=d", "give either bucket (2.x, 3.x) or db/retention_policy (1.x), not both"),
        ("influxdb:http://h:8086?bucket=b&retention_policy=r", "give either bucket"),
        ("influxdb:http://h:8086?pw=s3cr3t", "parameter pw: given without user="),
        ("influxdb:http://u:s3cr3t@h:8086?user=v", "the user is given twice"),
        ("influxdb:http://h:8086?db=", "parameter db='': expected a name"),
        ("influxdb:http://h:8086?withfields=maybe", "parameter withfields='maybe': expected true or false"),
        ("influxdb:http://h:8086?timeout=soon", "parameter timeout='soon': expected a duration"),
        ("influxdb:http://h:8086?dbb=k8s", "unknown parameter 'dbb'; did you mean 'db'?"),
        ("influxdb:http://h:8086?ca_file=/nonexistent/ca.pem", "parameter ca_file='/nonexistent/ca.pem': cannot read it"),
        ("influxdb:http://h:8086?user=u&pw_file=/nonexistent/pw", "parameter pw_file: cannot read /nonexistent/pw"),
        ("influxdb:http://h:8086?token=$KES_UNSET_TOKEN", "environment variable KES_UNSET_TOKEN is not set"),
    ],
)  # fmt: skip
def test_bad_uris_are_one_line_and_exit_2(uri, expected, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "shipper", f"--source=kubernetes:?auth={kubeconfig}",
         f"--sink={uri}", f"--state-dir={tmp_path / 'state'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "KES_UNSET_TOKEN"},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert expected in lines[0]
    assert "s3cr3t" not in done.stderr


def test_uri_forms_resolve_bucket_org_and_credentials():
    cases = {
        "influxdb:http://influx:8086": ("http://influx:8086", "k8s", "-", None),
        "influxdb:http://influx:8086/?db=events&retention_policy=two_weeks": ("http://influx:8086", "events/two_weeks", "-", None),
        "influxdb:https://influx.example:8086?token=T&org=ops&bucket=kube-events": ("https://influx.example:8086", "kube-events", "ops", None),
        "influxdb:http://u:p%40ss@influx:8086/prefix?db=x": ("http://influx:8086/prefix", "x", "-", ("u", "p@ss")),
        "influxdb:http://influx:8086?user=u&pw=p": ("http://influx:8086", "k8s", "-", ("u", "p")),
    }  # fmt: skip
    for uri, (url, bucket, org, credentials) in cases.items():
        built = sink(uri)
        assert (built.url, built.bucket, built.org) == (url, bucket, org), uri
        assert (None if built.user is None else (built.user, built.password)) == credentials
        assert "p@ss" not in built.describe() and "%40" not in built.describe()
    assert sink("influxdb:http://i:8086", cluster="from-flag").cluster == "from-flag"
    assert sink("influxdb:http://i:8086?cluster_name=c1", cluster="from-flag").cluster == "c1"


def test_line_is_what_the_docs_say():
    """The exact bytes of one point (the docstring's schema, spelled out)."""
    event = normalize(api_event(0, message='say "hi"', reason="Back Off,x=y"), "ADDED")
    event = replace(event, uid="u-1")
    writer = sink("influxdb:http://i:8086?withfields=true&cluster_name=prod eu")
    expected_time = ns_of("2026-11-20T10:00:00Z") + version_hash("u-1", 1) % 10**9
    assert writer.line(event) == (
        r"kubernetes_events,cluster=prod\ eu,component=kubelet,kind=Pod,namespace=shop,"
        r"reason=Back\ Off\,x\=y,type=Warning "
        r'count=1i,message="say \"hi\"",event_name="web-0.17a1b2c3d4e5f6a7",uid="u-1",'
        r'resource_version="1000",object_name="web-0",object_uid="pod-0",'
        r'object_api_version="v1",object_field_path="spec.containers{app}",'
        r'first_occurrence="2026-11-20T10:00:00.000000Z",last_occurrence="2026-11-20T10:00:00.000000Z",'
        rf'host="node-a" {expected_time}'
    )
    assert re.fullmatch(r"\d{19}", str(expected_time))
    assert isinstance(event, Event)

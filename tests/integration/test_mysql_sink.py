"""The mysql sink against the stack's MariaDB, fed by the real kube-apiserver.

Every test writes to tables of its own (``t<random>``) in the stack's database, so tests share
the server; they are dropped afterwards. What is shown: the URI forms (kube-eventer's Go DSN with
``tcp(...)``, ``mysql://``, passwords from a file or the environment, never logged), the schema
(migrated idempotently, equal to the shipped ``schemas/mysql.sql``), UTC ``DATETIME(6)`` times
equal to the events', Unicode intact, count updates updating the row and adding occurrences, no
duplicate in either table across restarts, 410s and full replays, never a roll-back to an older
version, a row the server refuses dead-lettered while its batch lands, an outage of the server
that loses nothing, and one clear line for bad credentials and bad URIs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pymysql
import pytest

from shipper.event import normalize
from shipper.sinks.base import SinkContext, TransientError
from shipper.sinks.factory import build_sink
from shipper.sinks.mysql import MySQLSink, statements
from tests.support.common import ROOT, STACK, stack_up, wait_for
from tests.support.kube import bump, core_event, etcd_compact, events_v1_event, now

OUTAGE_SECONDS = float(os.environ.get("KES_OUTAGE_SECONDS", "60"))
SCHEMA_FILE = ROOT / "schemas" / "mysql.sql"

pytestmark = pytest.mark.stack("mysql")


class Db:
    """The stack's database, seen with pymysql as a DBA would see it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.host, self.port = env["MYSQL_HOST"], int(env["MYSQL_PORT"])
        self.user, self.password = env["MYSQL_USER"], env["MYSQL_PASSWORD"]
        self.database = env["MYSQL_DATABASE"]
        self.conn: Any = None

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        for attempt in range(2):  # the server may have been restarted since (outage test)
            try:
                if self.conn is None:
                    self.conn = pymysql.connect(
                        host=self.host, port=self.port, user=self.user, password=self.password,
                        database=self.database, charset="utf8mb4", autocommit=True,
                    )  # fmt: skip
                with self.conn.cursor() as cur:
                    cur.execute(sql, args or None)
                    return list(cur.fetchall())
            except pymysql.OperationalError:
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def rows(self, table: str, order: str = "uid") -> list[dict[str, Any]]:
        if not self.query("SHOW TABLES LIKE %s", table):
            return []
        self.query("SELECT 1")
        with self.conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute(f"SELECT * FROM `{table}` ORDER BY {order}")
            return list(cur.fetchall())

    def drop(self, table: str) -> None:
        self.query(f"DROP TABLE IF EXISTS `{table}`, `{table}_occurrence`")
        self.query("DELETE FROM kube_event_shipper_schema WHERE table_name = %s", table)

    def dsn(self, table: str, password: str | None = None, **params: str) -> str:
        """kube-eventer's form: ``mysql:?user:pw@tcp(host:port)/db?charset=utf8&table=...``."""
        query = "&".join(
            f"{k}={v}" for k, v in {"charset": "utf8", "table": table, **params}.items()
        )
        pw = self.password if password is None else password
        return f"mysql:?{self.user}:{pw}@tcp({self.host}:{self.port})/{self.database}?{query}"


@pytest.fixture(scope="session")
def db(mysql_env: dict[str, str]) -> Db:
    return Db(mysql_env)


@pytest.fixture
def table(db: Db) -> Iterator[str]:
    name = f"t{uuid.uuid4().hex[:10]}"
    yield name
    db.drop(name)


@pytest.fixture
def run(shipper_factory, kube_env, namespace, tmp_path):
    """``run(sink_uri, *flags)`` -> a shipper for the test's namespace (not started yet)."""

    def make(sink: str, *flags: str, env: dict[str, str] | None = None) -> Any:
        args = [
            f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
            f"--sink={sink}",
            f"--state-dir={tmp_path / 'state'}",
            "--cluster-name=stack",
            *flags,
        ]
        return shipper_factory(args, env)

    return make


def shipped(process: Any, outcome: str = "shipped") -> float:
    return process.metric("kube_event_shipper_sink_events_total", sink="mysql", outcome=outcome)


def utc(text: str) -> datetime:
    """An API time (``...Z``) as the naive UTC datetime a DATETIME(6) column gives back."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).replace(tzinfo=None)


def versions(objs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(o["metadata"]["uid"], o["metadata"]["resourceVersion"]) for o in objs}


def occurrences(db: Db, table: str) -> set[tuple[str, str]]:
    return {(r["uid"], r["resource_version"]) for r in db.rows(f"{table}_occurrence")}


# -- the URI


def sink(uri: str) -> MySQLSink:
    built, _ = build_sink(uri, SinkContext(cluster="c", state_dir=None))
    assert isinstance(built, MySQLSink)
    return built


@pytest.mark.parametrize(
    "uri, expected",
    [
        # kube-eventer's own example: the DSN's ?charset and our table share one query string
        ("mysql:?root:transwarp@tcp(172.16.180.132:3306)/kube_eventer?charset=utf8&table=k8s_event",
         dict(user="root", password="transwarp", host="172.16.180.132", port=3306, database="kube_eventer", table="k8s_event")),
        # a password holding @ : / ? & (Go reads it up to the last @ before the address)
        ("mysql:?u:p@ss:w/o?r&d@tcp(db.example:3307)/events?parseTime=true&loc=Local&table=ev",
         dict(user="u", password="p@ss:w/o?r&d", host="db.example", port=3307, database="events", table="ev")),
        # our parameters may hold / and @ too (a mounted secret's path)
        ("mysql:?u@tcp(h)/d?password_file={secret}&table=x",
         dict(user="u", password="from-file", host="h", port=3306, database="d", table="x")),
        ("mysql:u:pw@tcp([::1]:3308)/d", dict(user="u", password="pw", host="::1", port=3308, database="d", table="kube_event")),
        ("mysql:?u:pw@unix(/run/mysqld/mysqld.sock)/d", dict(user="u", password="pw", unix_socket="/run/mysqld/mysqld.sock", database="d")),
        ("mysql:?u:pw@/d", dict(user="u", password="pw", host="127.0.0.1", port=3306, database="d")),
        ("mysql://u:p%40ss%2Fx@db:3309/events?table=ev&batch_size=50",
         dict(user="u", password="p@ss/x", host="db", port=3309, database="events", table="ev")),
        ("mariadb://u@db/events?password=$KES_TEST_PW", dict(user="u", password="from-env", host="db", port=3306, database="events")),
    ],
)  # fmt: skip
def test_both_uri_forms_are_read_as_go_and_urls_read_them(uri, expected, tmp_path, monkeypatch):
    secret = tmp_path / "dir@x" / "pw"
    secret.parent.mkdir()
    secret.write_text("from-file\n")
    monkeypatch.setenv("KES_TEST_PW", "from-env")
    built = sink(uri.format(secret=secret))
    table = expected.pop("table", "kube_event")
    assert built.table == table
    assert {k: built.connect_args.get(k) for k in expected} == expected
    assert expected["password"] not in built.describe()
    assert built.describe().startswith(f"mysql {expected['user']}@")


# -- the schema


def show_create(db: Db, table: str) -> str:
    return db.query(f"SHOW CREATE TABLE `{table}`")[0][1]


def test_schema_is_migrated_idempotently_and_equals_the_shipped_file(db, table, caplog):
    first = sink(db.dsn(table))
    first.open()
    assert first.migrate(first.db) == 1  # a second run finds the current version: no DDL
    with first.db.cursor() as cur:
        cur.execute("SELECT @@session.time_zone, @@session.sql_mode, @@character_set_connection")
        zone, mode, charset = cur.fetchone()
    assert (zone, charset) == ("+00:00", "utf8mb4")
    assert "STRICT_TRANS_TABLES" in mode
    first.close()
    created = {t: show_create(db, t) for t in (table, f"{table}_occurrence")}
    assert "`last_seen` datetime(6) NOT NULL" in created[table]
    assert "utf8mb4_unicode_520_ci" in created[table]
    assert "PRIMARY KEY (`uid`,`resource_version`)" in created[f"{table}_occurrence"]
    again = sink(db.dsn(table))
    again.open()  # idempotent: the same tables, the version row untouched
    again.close()
    assert {t: show_create(db, t) for t in created} == created
    assert db.query(
        "SELECT version FROM kube_event_shipper_schema WHERE table_name = %s", table
    ) == [(1,)]

    # The shipped file, run as a DBA would (for another table name), makes the same tables and
    # records the version, so the sink then runs no DDL at all (no CREATE privilege needed).
    other = f"{table}f"
    try:
        script = re.sub(r"kube_event(?!_shipper_schema)", other, SCHEMA_FILE.read_text())
        script = "\n".join(line for line in script.splitlines() if not line.startswith("--"))
        for statement in filter(str.strip, script.split(";")):
            db.query(statement)
        for name in (other, f"{other}_occurrence"):
            assert show_create(db, name) == created[name.replace(other, table)].replace(
                f"`{table}", f"`{other}"
            )
        from_file = sink(db.dsn(other))
        caplog.clear()
        from_file.open()
        from_file.close()
        assert "migrated" not in caplog.text
        assert db.query(
            "SELECT version FROM kube_event_shipper_schema WHERE table_name = %s", other
        ) == [(1,)]
    finally:
        db.drop(other)


def test_the_longest_table_name_fits_with_its_occurrence_table(db):
    longest = f"t{uuid.uuid4().hex}".ljust(53, "x")
    try:
        sink(db.dsn(longest)).open()
        assert db.query("SHOW TABLES LIKE %s", f"{longest}_occurrence") == [
            (f"{longest}_occurrence",)
        ]
    finally:
        db.drop(longest)
    with pytest.raises(Exception, match="at most 53 characters"):
        sink(db.dsn(longest + "x"))


def test_a_table_that_is_not_ours_is_refused_not_written_into(db, table):
    # kube-eventer's documented kube_event table
    db.query(
        f"CREATE TABLE `{table}` (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
        " name VARCHAR(64) NOT NULL DEFAULT '', namespace VARCHAR(64) NOT NULL DEFAULT '',"
        " event_id VARCHAR(64) NOT NULL DEFAULT '', message TEXT NOT NULL,"
        " first_occurrence_time VARCHAR(64) NOT NULL DEFAULT '')"
    )
    with pytest.raises(
        TransientError, match=f"table {table} exists but was not made by kube-event-shipper"
    ):
        sink(db.dsn(table)).open()
    assert db.query(f"SHOW TABLES LIKE '{table}_occurrence'") == []


def test_an_older_version_never_rolls_the_row_back(db, table):
    """A late replay of count 2 after count 3 landed: the row keeps 3, both versions are kept;
    the same version again changes nothing; a tie goes to the version written last."""

    def version(rv: str, count: int, last: str, message: str = "") -> Any:
        return normalize(
            {
                "metadata": {"uid": "u-1", "resourceVersion": rv, "name": "web.1", "namespace": "ns"},
                "involvedObject": {"kind": "Pod", "name": "web", "namespace": "ns"},
                "reason": "BackOff", "type": "Warning", "message": message or f"seen {count} times",
                "count": count, "firstTimestamp": "2026-11-20T10:00:00Z", "lastTimestamp": last,
            },
            "MODIFIED",
        )  # fmt: skip

    def row(uid: str = "u-1") -> dict[str, Any]:
        return next(r for r in db.rows(table) if r["uid"] == uid)

    writer = sink(db.dsn(table))
    writer.open()
    try:
        v3, v2 = version("30", 3, "2026-11-20T10:00:30Z"), version("20", 2, "2026-11-20T10:00:20Z")
        assert writer.write([v3]) == []
        written = row()
        time.sleep(0.01)
        assert writer.write([v2, v3, v2]) == []  # late, again, and twice in one batch
        assert row() == written  # not a column moved, shipped_at included
        assert (written["count"], written["resource_version"], written["message"]) == (
            3,
            "30",
            "seen 3 times",
        )
        assert written["last_seen"] == datetime(2026, 11, 20, 10, 0, 30)
        assert written["first_seen"] == datetime(2026, 11, 20, 10, 0, 0)
        assert occurrences(db, table) == {("u-1", "30"), ("u-1", "20")}
        # The same count and time, another version (a PATCH of the message): the last one wins.
        assert writer.write([version("31", 3, "2026-11-20T10:00:30Z", "edited")]) == []
        assert (row()["resource_version"], row()["message"], row()["count"]) == ("31", "edited", 3)
        # A later version with a lower count (a recreated series) wins on time.
        assert writer.write([version("40", 1, "2026-11-20T10:01:00Z")]) == []
        assert (row()["count"], row()["resource_version"]) == (1, "40")
        assert row()["last_seen"] == datetime(2026, 11, 20, 10, 1, 0)
        assert len(db.rows(table)) == 1
        assert len(occurrences(db, table)) == 4

        node = normalize(
            {
                "metadata": {"uid": "u-2", "resourceVersion": "50", "name": "n.1", "namespace": "default"},
                "involvedObject": {"kind": "Node", "name": "node-a"},
                "reason": "NodeReady", "type": "Normal", "message": "ready",
                "lastTimestamp": "2026-11-20T10:00:40Z",
            },
            "ADDED",
        )  # fmt: skip
        assert writer.write([node]) == []
        found = row("u-2")
        assert (found["namespace"], found["kind"], found["name"], found["count"]) == (
            "",
            "Node",
            "node-a",
            1,
        )
        assert found["first_seen"] == found["last_seen"] == datetime(2026, 11, 20, 10, 0, 40)
    finally:
        writer.close()


def test_any_text_round_trips_exactly(db, table):
    """Quotes, backslashes, NUL, control characters, % (a format string to a driver), 4-byte
    UTF-8, and a batch larger than one statement: every value comes back as it went in."""
    tricky = 'it\'s "quoted" \\ back\\slash\n\r\t \x00 NUL \x1a ^Z %s %(x)s 🔥 ✓ 𝄞 контейнер'
    events = [
        normalize(
            {
                "metadata": {"uid": f"u-{i}", "resourceVersion": str(i + 1), "name": f"e.{i}", "namespace": "ns"},
                "involvedObject": {"kind": "Pod", "name": f"web-'{i}'", "namespace": "ns", "fieldPath": "spec.containers{app}"},
                "reason": "BackOff", "type": "Warning", "message": f"{tricky} {i} " + "x" * 3000,
                "count": i + 1, "lastTimestamp": "2026-11-20T10:00:00.000001Z",
                "source": {"component": "kubelet"},
            },
            "ADDED",
        )
        for i in range(600)  # ~2 MB of rows: more than one statement
    ]  # fmt: skip
    writer = sink(db.dsn(table))
    head, tail = writer._upsert
    assert len(statements(head, writer.rows(events)[0], tail)) == 2
    writer.open()
    try:
        assert writer.write(events) == []
    finally:
        writer.close()
    rows = {r["uid"]: r for r in db.rows(table)}
    assert len(rows) == 600 and len(occurrences(db, table)) == 600
    for i in (0, 299, 599):
        row = rows[f"u-{i}"]
        assert row["message"] == f"{tricky} {i} " + "x" * 3000
        assert (row["name"], row["field_path"], row["count"]) == (
            f"web-'{i}'",
            "spec.containers{app}",
            i + 1,
        )
        assert (row["object_uid"], row["action"], row["source_host"]) == (None, None, None)
        assert row["last_seen"] == datetime(2026, 11, 20, 10, 0, 0, 1)


# -- end to end, from the kube-apiserver


def test_events_arrive_in_utc_unicode_intact_once_across_restarts_410_and_replays(
    db, table, run, kube_api, kube_env, namespace
):
    shipper = run(db.dsn(table, parseTime="true", loc="Local")).start()
    emoji = "Back-off restarting 🔥 контейнер 容器 ✓ — ünïcödé 🐳"
    created = [
        core_event(kube_api, namespace, obj="p0", message=emoji),
        core_event(kube_api, namespace, obj="p1", type_="Normal", reason="Pulled"),
    ]
    micro = events_v1_event(kube_api, namespace)
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
    all_versions = versions([*created, micro, *updates])
    wait_for(lambda: occurrences(db, table) == all_versions, what="five versions")
    wait_for(lambda: len(db.rows(table)) == 3, what="three rows")
    rows = {row["uid"]: row for row in db.rows(table)}

    latest = updates[-1]
    row = rows[latest["metadata"]["uid"]]
    assert row["count"] == 3
    assert row["resource_version"] == latest["metadata"]["resourceVersion"]
    assert row["message"] == emoji
    assert row["first_seen"] == utc(created[0]["firstTimestamp"])
    assert row["last_seen"] == utc(latest["lastTimestamp"])
    assert (row["namespace"], row["kind"], row["name"]) == (namespace, "Pod", "p0")
    assert (row["type"], row["reason"], row["cluster"]) == ("Warning", "BackOff", "stack")
    assert (row["source_component"], row["source_host"]) == ("kubelet", "node-a")
    assert row["event_name"] == created[0]["metadata"]["name"]
    # events.k8s.io/v1: eventTime has microseconds, and DATETIME(6) keeps them
    v1 = rows[micro["metadata"]["uid"]]
    assert v1["first_seen"] == v1["last_seen"] == utc(micro["eventTime"])
    assert v1["first_seen"].microsecond == 123456
    assert (v1["reporting_controller"], v1["action"]) == ("example.com/scaler", "Scale")
    history = {
        (r["resource_version"], r["count"], r["occurred_at"])
        for r in db.rows(f"{table}_occurrence")
        if r["uid"] == latest["metadata"]["uid"]
    }
    assert history == {
        (o["metadata"]["resourceVersion"], o["count"], utc(o["lastTimestamp"]))
        for o in [created[0], *updates]
    }
    assert shipper.stop() == 0

    # A restart after a 410: events made while stopped, a count update, etcd compacted.
    during = core_event(kube_api, namespace, obj="q0")
    later = bump(kube_api, namespace, created[1]["metadata"]["name"], 2, now(5))
    etcd_compact(kube_env["ETCD_URL"])
    shipper.start()
    all_versions |= versions([during, later])
    wait_for(lambda: occurrences(db, table) == all_versions, what="the versions made while stopped")
    assert shipper.stop() == 0
    assert "410 Gone" in shipper.stderr(), shipper.stderr()
    before = db.rows(table)
    assert len(before) == 4
    assert {r["uid"]: r["count"] for r in before}[later["metadata"]["uid"]] == 2

    # A full replay (the checkpoint forgotten): every current version is written again and
    # changes nothing, in either table.
    shipper.start("--start=all")
    wait_for(lambda: shipped(shipper) == 4, what="the four events re-sent")
    assert shipped(shipper, "dead_lettered") == 0
    assert shipper.stop() == 0
    after = db.rows(table)
    assert [(r["uid"], r["resource_version"], r["count"], r["last_seen"]) for r in after] == [
        (r["uid"], r["resource_version"], r["count"], r["last_seen"]) for r in before
    ]
    assert occurrences(db, table) == all_versions
    assert db.query(f"SELECT COUNT(*) FROM `{table}_occurrence`") == [(len(all_versions),)]


def test_the_url_form_with_a_password_file_and_the_dsn_with_an_env_password(
    db, table, run, kube_api, namespace, tmp_path
):
    secret = tmp_path / "password"
    secret.write_text(db.password + "\n")
    url = (
        f"mysql://{db.user}@{db.host}:{db.port}/{db.database}"
        f"?table={table}&password_file={secret}&flush_interval=0.2s"
    )
    shipper = run(url).start()
    made = core_event(kube_api, namespace, obj="u0")
    wait_for(
        lambda: [r["uid"] for r in db.rows(table)] == [made["metadata"]["uid"]], what="the row"
    )
    assert shipper.stop() == 0
    assert db.password not in shipper.stderr()
    assert f"mysql {db.user}@{db.host}:{db.port}/{db.database} table={table}" in shipper.stderr()

    env_dsn = db.dsn(table, password="$KES_MYSQL_PW")
    second = run(env_dsn, "--start=all", env={"KES_MYSQL_PW": db.password}).start()
    again = core_event(kube_api, namespace, obj="u1")
    wait_for(lambda: len(db.rows(table)) == 2, what="the second row")
    assert {r["uid"] for r in db.rows(table)} == {made["metadata"]["uid"], again["metadata"]["uid"]}
    assert second.stop() == 0
    assert db.password not in second.stderr()


def test_a_row_the_server_refuses_is_dead_lettered_and_its_batch_lands(
    db, table, run, kube_api, namespace, tmp_path
):
    good = [core_event(kube_api, namespace, obj=f"g{i}") for i in range(3)]
    # core/v1 does not limit a reason's length; the column holds 255 characters (strict mode)
    poison = core_event(kube_api, namespace, obj="g9", reason="R" * 300)
    shipper = run(db.dsn(table, batch_size="10", flush_interval="1s")).start()
    wait_for(lambda: shipped(shipper, "dead_lettered") == 1, what="one dead letter")
    wait_for(lambda: shipped(shipper) == 3, what="three shipped")
    assert {r["uid"] for r in db.rows(table)} == {g["metadata"]["uid"] for g in good}
    assert occurrences(db, table) == versions(good)
    letters = (tmp_path / "state" / "dead-letters" / "mysql.jsonl").read_text().splitlines()
    assert len(letters) == 1
    letter = json.loads(letters[0])
    assert letter["document"]["kubernetes"]["event"]["metadata"]["uid"] == poison["metadata"]["uid"]
    assert "Data too long for column 'reason'" in letter["reason"] and "(1406)" in letter["reason"]
    assert shipper.stop() == 0


def stack(command: str, component: str) -> None:
    subprocess.run(
        [sys.executable, str(STACK), command, component], cwd=ROOT, check=True, capture_output=True
    )


def test_an_outage_of_the_server_loses_nothing(db, table, run, kube_api, namespace):
    shipper = run(db.dsn(table, flush_interval="0.2s", max_backoff="5s")).start()
    before = [core_event(kube_api, namespace, obj=f"a{i}") for i in range(2)]
    wait_for(lambda: len(db.rows(table)) == 2, what="two rows")

    stack("down", "mysql")
    try:
        down_at = time.monotonic()
        during = [core_event(kube_api, namespace, obj=f"b{i}") for i in range(5)]
        update = bump(kube_api, namespace, before[0]["metadata"]["name"], 2, now(1))
        wait_for(
            lambda: shipper.metric("kube_event_shipper_sink_up", sink="mysql") == 0,
            what="the sink to notice the outage",
        )
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        assert shipper.proc.poll() is None
        assert shipped(shipper, "retried") > 0
    finally:
        stack_up("mysql")
    expected = versions([*before, *during, update])
    wait_for(
        lambda: occurrences(db, table) == expected,
        timeout=90,
        what="every version made during the outage",
    )
    rows = {r["uid"]: r for r in db.rows(table)}
    assert len(rows) == 7
    assert rows[update["metadata"]["uid"]]["count"] == 2
    assert shipper.metric("kube_event_shipper_sink_up", sink="mysql") == 1
    assert shipped(shipper, "dead_lettered") == 0
    assert shipper.stop() == 0
    assert "Traceback" not in shipper.stderr()


# -- errors an operator fixes: one line each


def not_reachable_lines(process: Any) -> list[str]:
    return [
        line for line in process.stderr().splitlines() if "Sink mysql is not reachable yet" in line
    ]


@pytest.mark.parametrize(
    "make_uri, expected",
    [
        (lambda db, t: db.dsn(t, password="wrong-Pa55"),
         "Access denied for user 'shipper'@'127.0.0.1' (using password: YES) (1045): check the user and the password"),
        (lambda db, t: db.dsn(t).replace(f"/{db.database}?", "/no_such_db?"),
         # 1049 (unknown database) is for users with global privileges; the others get 1044
         "Access denied for user 'shipper'@'127.0.0.1' to database 'no_such_db' (1044): the database does not exist or the user may not use it (CREATE DATABASE `no_such_db` CHARACTER SET utf8mb4; GRANT"),
        (lambda db, t: db.dsn(t, tls="true"),
         "SSL is required but the server doesn't support it (2026): tls=true, but no TLS connection could be made"),
    ],
    ids=["bad-password", "unknown-database", "tls-required"],
)  # fmt: skip
def test_what_an_operator_must_fix_is_one_clear_line(db, table, run, make_uri, expected):
    shipper = run(make_uri(db, table), "--grace-period=2s").start()
    wait_for(lambda: len(not_reachable_lines(shipper)) >= 2, what="two attempts")
    assert shipper.metric("kube_event_shipper_sink_up", sink="mysql") == 0
    assert shipper.stop() == 0
    lines = not_reachable_lines(shipper)
    assert all(expected in line for line in lines), lines
    assert "Traceback" not in shipper.stderr()
    assert "wrong-Pa55" not in shipper.stderr() and db.password not in shipper.stderr()


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("mysql:", "--sink mysql: no server given; expected mysql:?USER:PASSWORD@tcp(HOST:3306)/DATABASE"),
        ("mysql:?table=x", "--sink mysql: no server given"),
        ("mysql:?u:s3cr3t@tcp(h:3306)", "the DSN is not USER:PASSWORD@tcp(HOST:PORT)/DATABASE"),
        ("mysql:?u:s3cr3t@tcp(h:3306)/db?table=kube-event", "parameter table='kube-event': expected a name of letters, digits and _"),
        ("mysql:?u:s3cr3t@tcp(h:3306)/db?tabel=x", "unknown parameter 'tabel'; did you mean 'table'?"),
        ("mysql:?u:s3cr3t@tcp(h:port)/db", "port 'port' is not a port number"),
        ("mysql:?u:s3cr3t@tcp(h:3306)/db?password=s3cr3t", "the password is given twice"),
        ("mysql:?u:s3cr3t@tcp(h:3306)/db?charset=latin1", "parameter charset='latin1': expected utf8mb4"),
        ("mysql:?u:s3cr3t@tcp(h:3306)/db?tls=maybe", "parameter tls='maybe': expected one of false, true"),
        ("mysql:?u:s3cr3t@tcp(h:3306)/db?timeout=soon", "parameter timeout='soon': expected a duration"),
        ("mysql:?u@tcp(h:3306)/db?password_file=/nonexistent/pw", "parameter password_file: cannot read /nonexistent/pw"),
        ("mysql:?u:$KES_UNSET_PW@tcp(h:3306)/db", "environment variable KES_UNSET_PW is not set"),
        ("mysql://u:s3cr3t@h:3306/", "--sink mysql: no database given"),
        ("mysql://:s3cr3t@h:3306/db", "--sink mysql: no user given"),
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
        env={k: v for k, v in os.environ.items() if k != "KES_UNSET_PW"},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert expected in lines[0]
    assert "s3cr3t" not in done.stderr


def test_the_shipped_schema_file_is_the_one_the_sink_makes():
    """Text check (the SHOW CREATE TABLE check above is the server's): the file holds the
    sink's DDL for kube_event, statement for statement."""
    from shipper.sinks.mysql import schema_statements

    text = SCHEMA_FILE.read_text()
    for statement in schema_statements("kube_event"):
        assert statement + ";" in text

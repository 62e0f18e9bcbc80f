#!/usr/bin/env python3
"""Throughput of the mysql sink, in process, against the stack's real MariaDB.

N realistic event versions (default 20,000: ~10% of events also come as count updates, 20% of
the messages multilingual, 50-400 characters) are built and normalized first. Per run, a sink is
built from a kube-eventer DSN exactly as the daemon builds it (``build_sink``), opened (tables
created by the migration) on fresh tables, and fed ``sink.write(batch)`` batch after batch.
Measured over the writes only: events/s (wall), this process's CPU (user+sys, per 10,000
events) and the server's (psutil on the pid in ``.stack/mysql/*.pid``, minus its idle rate),
both during the writes and including the background work (InnoDB flushing, purge) until the
server is idle again. After the writes every row is read back: a run whose tables do not hold
exactly one row per event with its latest version, and one occurrence row per version, is an
error, not a number. ``--replay`` also times writing everything a second time (a full replay:
every row already there, nothing may change). Tables are dropped at the end.

    .venv/bin/python bench/mysql.py                        # batch sizes 100 500 1000 2000, 3 runs
    .venv/bin/python bench/mysql.py --events 5000 --batch-sizes 500 --repeat 1 --replay
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/ off sys.path: its scripts' names (kafka, syslog, profile...) would shadow modules.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    BenchError,
    Column,
    build_events,
    header,
    log,
    round_robin,
    server_process,
    stack_up,
    table,
    timed,
    write_report,
)
from shipper.event import Event  # noqa: E402
from shipper.sinks.base import SinkContext  # noqa: E402
from shipper.sinks.factory import build_sink  # noqa: E402
from shipper.sinks.mysql import MySQLSink, sql_time  # noqa: E402

# -- one run


@dataclass
class Run:
    batch_size: int
    events: int
    write_s: float
    events_per_s: float
    client_cpu_per_10k: float
    server_cpu_per_10k: float  # during the writes, minus the idle rate
    server_total_per_10k: float  # including background work until idle again
    loadavg: float = 0.0  # 1-minute load average when the run started
    replay_events_per_s: float | None = None
    replay_client_per_10k: float | None = None
    replay_server_per_10k: float | None = None


def dsn(env: dict[str, str], table: str, batch_size: int) -> str:
    return (
        f"mysql:?{env['MYSQL_USER']}:{env['MYSQL_PASSWORD']}@tcp({env['MYSQL_HOST']}:{env['MYSQL_PORT']})"
        f"/{env['MYSQL_DATABASE']}?charset=utf8mb4&parseTime=true&table={table}&batch_size={batch_size}"
    )


def write_all(sink: MySQLSink, events: list[Event], size: int) -> None:
    for i in range(0, len(events), size):
        rejected = sink.write(events[i : i + size])
        if rejected:
            raise BenchError(f"{len(rejected)} rejected, first: {rejected[0].reason}")


def check(sink: MySQLSink, events: list[Event]) -> None:
    """Exactly once: one row per uid holding its latest version, one occurrence per version."""
    latest: dict[str, Event] = {}
    for event in events:
        latest[event.uid] = event  # versions come in order
    assert sink.db is not None
    with sink.db.cursor() as cur:
        cur.execute(f"SELECT uid, resource_version, `count`, last_seen FROM `{sink.table}`")
        rows = {uid: (rv, count, seen) for uid, rv, count, seen in cur.fetchall()}
        cur.execute(f"SELECT uid, resource_version FROM `{sink.table}_occurrence`")
        occurrences = set(cur.fetchall())
    sink.db.commit()
    expected = {
        uid: (e.resource_version, e.count, datetime.fromisoformat(sql_time(e.last_timestamp) or ""))
        for uid, e in latest.items()
    }
    if rows != expected:
        wrong = sum(1 for uid in expected if rows.get(uid) != expected[uid])
        raise BenchError(f"{len(rows)} rows for {len(expected)} events, {wrong} wrong")
    if occurrences != {(e.uid, e.resource_version) for e in events}:
        raise BenchError(f"{len(occurrences)} occurrence rows for {len(events)} versions")


def measure(env: dict[str, str], events: list[Event], size: int, replay: bool) -> Run:
    server = server_process("mysql")
    name = f"bench_{uuid.uuid4().hex[:10]}"
    sink, settings = build_sink(dsn(env, name, size), SinkContext(cluster="bench", state_dir=None))
    assert isinstance(sink, MySQLSink) and settings.batch_size == size
    try:
        sink.open()
        load = os.getloadavg()[0]
        timing, _ = timed(lambda: write_all(sink, events, size), server, settle=True)
        check(sink, events)
        per_10k = 10_000 / len(events)
        run = Run(
            batch_size=size,
            events=len(events),
            write_s=timing.wall,
            events_per_s=len(events) / timing.wall,
            client_cpu_per_10k=timing.client * per_10k,
            server_cpu_per_10k=timing.server * per_10k,
            server_total_per_10k=timing.settled[0] * per_10k,
            loadavg=load,
        )
        if replay:
            timing, _ = timed(lambda: write_all(sink, events, size), server)
            check(sink, events)
            run.replay_events_per_s = len(events) / timing.wall
            run.replay_client_per_10k = timing.client * per_10k
            run.replay_server_per_10k = timing.server * per_10k
        return run
    finally:
        if sink.db is not None:
            with sink.db.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS `{name}`, `{name}_occurrence`")
                cur.execute("DELETE FROM kube_event_shipper_schema WHERE table_name = %s", (name,))
            sink.db.commit()
        sink.close()


# -- the report


def report(runs: dict[int, list[Run]], args: argparse.Namespace, server_version: str) -> list[str]:
    replay = [
        Column("replay events/s", lambda r: r.replay_events_per_s, 0),
        Column("replay client / 10k", lambda r: r.replay_client_per_10k),
        Column("replay server / 10k", lambda r: r.replay_server_per_10k),
    ]
    return [
        *header(
            "mysql sink: throughput and CPU",
            f"pymysql, server {server_version} from `scripts/stack` (InnoDB buffer pool 32M,"
            " innodb_flush_log_at_trx_commit=2, no binary log), over TCP on 127.0.0.1.",
        ),
        f"{args.events:,} event versions (seed {args.seed}), in process: `sink.write(batch)` in a"
        " loop (no watch, no pipeline thread). Each batch is one transaction: a multi-row upsert"
        " into the event table and a multi-row insert into the occurrence table. Medians of"
        f" {args.repeat} run(s); every run checked before it counts (one row per event holding its"
        " latest version, one occurrence row per version). CPU-s per 10,000 events; server CPU"
        " minus its idle rate, during the writes and until the server is idle again (InnoDB"
        " flushing and purge). load: the 1-minute load average as the run started (other work on"
        " the machine shows there). Replay: the same events written a second time (a full"
        " replay: every version already there, nothing changes).",
        "",
        *table(
            [("batch size", "---:")],
            [
                Column("events/s", lambda r: r.events_per_s, 0),
                Column("client CPU-s / 10k", lambda r: r.client_cpu_per_10k),
                Column("server CPU-s / 10k (writes)", lambda r: r.server_cpu_per_10k),
                Column("server CPU-s / 10k (incl. background)", lambda r: r.server_total_per_10k),
                Column("load", lambda r: r.loadavg),
                *(replay if args.replay else []),
            ],
            runs,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 500, 1000, 2000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--replay", action="store_true", help="also time a full replay")
    parser.add_argument("--out", default="/tmp/bench-mysql.md")
    args = parser.parse_args()

    env = stack_up("mysql")
    if env is None:
        return 1
    log(f"building {args.events:,} events")
    events = build_events(args.events, args.seed)
    log("warm-up run")
    measure(env, events[:2000], 500, replay=False)
    runs, errors = round_robin(
        args.batch_sizes,
        args.repeat,
        lambda size: measure(env, events, size, args.replay),
        lambda size: f"batch {size}",
        lambda run: (
            f"{run.events_per_s:,.0f} ev/s, client {run.client_cpu_per_10k:.2f}, server"
            f" {run.server_cpu_per_10k:.2f} ({run.server_total_per_10k:.2f} incl. background)"
            " CPU-s/10k"
            + (f"; replay {run.replay_events_per_s:,.0f} ev/s" if run.replay_events_per_s else "")
        ),
    )
    sink, _ = build_sink(dsn(env, "bench_version", 1), SinkContext(cluster="", state_dir=None))
    assert isinstance(sink, MySQLSink)
    import pymysql

    conn = pymysql.connect(**sink.connect_args)
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        version = str(cur.fetchone()[0])
    conn.close()
    write_report(report(runs, args, version), args.out)
    return 1 if any(errors.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())

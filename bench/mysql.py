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
import gc
import os
import platform
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import (  # noqa: E402
    build_events,
    cpu_seconds,
    fmt,
    log,
    median,
    quiesce,
    server_process,
    stack_up,
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


class BenchError(Exception):
    """The run gives no number: rejected rows, or the tables do not hold what was written."""


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


def timed(
    sink: MySQLSink, events: list[Event], size: int, server: psutil.Process
) -> tuple[float, float, float, float]:
    """(wall s, client CPU-s, server CPU-s during, server CPU-s until idle again)."""
    idle = quiesce(server)
    gc.collect()
    wall0, client0, server0 = time.perf_counter(), time.process_time(), cpu_seconds(server)
    write_all(sink, events, size)
    wall1, client1, server1 = time.perf_counter(), time.process_time(), cpu_seconds(server)
    quiesce(server)
    wall2, server2 = time.perf_counter(), cpu_seconds(server)
    during = max(0.0, server1 - server0 - idle * (wall1 - wall0))
    total = max(0.0, server2 - server0 - idle * (wall2 - wall0))
    return wall1 - wall0, client1 - client0, during, total


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
    table = f"bench_{uuid.uuid4().hex[:10]}"
    sink, settings = build_sink(dsn(env, table, size), SinkContext(cluster="bench", state_dir=None))
    assert isinstance(sink, MySQLSink) and settings.batch_size == size
    try:
        sink.open()
        load = os.getloadavg()[0]
        wall, client, during, total = timed(sink, events, size, server)
        check(sink, events)
        per_10k = 10_000 / len(events)
        run = Run(
            batch_size=size,
            events=len(events),
            write_s=wall,
            events_per_s=len(events) / wall,
            client_cpu_per_10k=client * per_10k,
            server_cpu_per_10k=during * per_10k,
            server_total_per_10k=total * per_10k,
            loadavg=load,
        )
        if replay:
            wall, client, during, _ = timed(sink, events, size, server)
            check(sink, events)
            run.replay_events_per_s = len(events) / wall
            run.replay_client_per_10k = client * per_10k
            run.replay_server_per_10k = during * per_10k
        return run
    finally:
        if sink.db is not None:
            with sink.db.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS `{table}`, `{table}_occurrence`")
                cur.execute("DELETE FROM kube_event_shipper_schema WHERE table_name = %s", (table,))
            sink.db.commit()
        sink.close()


# -- the report


def report(runs: dict[int, list[Run]], args: argparse.Namespace, server_version: str) -> str:
    command = "bench/mysql.py " + " ".join(sys.argv[1:])
    lines = [
        "# mysql sink: throughput and CPU",
        "",
        f"`.venv/bin/python {command.strip()}` on {platform.node()}: {os.cpu_count()} cores,"
        f" Python {platform.python_version()}, pymysql, server {server_version} from"
        " `scripts/stack` (InnoDB buffer pool 32M, innodb_flush_log_at_trx_commit=2,"
        " no binary log), over TCP on 127.0.0.1.",
        "",
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
        "| batch size | events/s | client CPU-s / 10k | server CPU-s / 10k (writes)"
        " | server CPU-s / 10k (incl. background) | load |"
        + (" replay events/s | replay client / 10k | replay server / 10k |" if args.replay else ""),
        "|---:|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if args.replay else ""),
    ]
    for size, results in runs.items():
        if not results:
            lines.append(f"| {size} | error | | | | |")
            continue
        row = (
            f"| {size} | {fmt(median([r.events_per_s for r in results]), 0)}"
            f" | {fmt(median([r.client_cpu_per_10k for r in results]))}"
            f" | {fmt(median([r.server_cpu_per_10k for r in results]))}"
            f" | {fmt(median([r.server_total_per_10k for r in results]))}"
            f" | {fmt(median([r.loadavg for r in results]))} |"
        )
        if args.replay:
            row += (
                f" {fmt(median([r.replay_events_per_s for r in results]), 0)}"
                f" | {fmt(median([r.replay_client_per_10k for r in results]))}"
                f" | {fmt(median([r.replay_server_per_10k for r in results]))} |"
            )
        lines.append(row)
    lines.append("")
    return "\n".join(lines)


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
    runs: dict[int, list[Run]] = {size: [] for size in args.batch_sizes}
    errors = 0
    for round_ in range(args.repeat):
        for size in args.batch_sizes:  # round-robin: drift hits every size alike
            try:
                run = measure(env, events, size, args.replay)
            except Exception as exc:
                errors += 1
                log(f"batch {size} round {round_ + 1}: ERROR {type(exc).__name__}: {exc}")
                continue
            runs[size].append(run)
            log(
                f"batch {size} round {round_ + 1}: {run.events_per_s:,.0f} ev/s, client"
                f" {run.client_cpu_per_10k:.2f}, server {run.server_cpu_per_10k:.2f}"
                f" ({run.server_total_per_10k:.2f} incl. background) CPU-s/10k"
                + (
                    f"; replay {run.replay_events_per_s:,.0f} ev/s"
                    if run.replay_events_per_s
                    else ""
                )
            )
    sink, _ = build_sink(dsn(env, "bench_version", 1), SinkContext(cluster="", state_dir=None))
    assert isinstance(sink, MySQLSink)
    import pymysql

    conn = pymysql.connect(**sink.connect_args)
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        version = str(cur.fetchone()[0])
    conn.close()
    text = report(runs, args, version)
    Path(args.out).write_text(text)
    print(text)
    log(f"written to {args.out}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())

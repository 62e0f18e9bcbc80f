#!/usr/bin/env python3
"""Throughput of the influxdb sink, in process, against the stack's real InfluxDB 1.8.10.

N realistic event versions (default 20,000: ~10% of events also come as count updates, 20% of
the messages multilingual, 50-400 characters) are built and normalized first. Per run, a sink is
built from a URI exactly as the daemon builds it (``build_sink``), opened (``CREATE DATABASE`` of
a fresh database) and fed ``sink.write(batch)`` batch after batch: one HTTP write of
``batch size`` points each. Measured over the writes only: events/s (wall), this process's CPU
(user+sys) and the server's (psutil on the pid in ``.stack/influxdb/*.pid``, minus its idle
rate), per 10,000 events, during the writes and including the background work (WAL, cache
snapshots) until the server is idle again. After the writes, ``SELECT count("count")``: a run
whose database does not hold exactly N points (one per version: nothing lost, no two versions
on one point) is an error, not a number. ``--replay`` also times writing everything again (a
full replay: every point overwritten by itself; the count may not move).

Before the runs, the cost of building the line protocol is measured alone: the sink's own
``line()`` against the client's ``Point`` (same tags, fields and time), CPU-s per 10,000 events.

    .venv/bin/python bench/influxdb.py                      # batch sizes 100 1000 5000, 3 runs
    .venv/bin/python bench/influxdb.py --events 5000 --batch-sizes 1000 --repeat 1 --replay
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

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
    median,
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
from shipper.sinks.influxdb import STRING_FIELDS, InfluxDBSink, point_time  # noqa: E402


def influxql(url: str, q: str, db: str | None = None) -> dict[str, Any]:
    params = {"q": q} | ({"db": db} if db else {})
    request = urllib.request.Request(f"{url}/query", data=urllib.parse.urlencode(params).encode())
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)["results"][0]


# -- encoding alone: line() against the client's Point


def point_of(sink: InfluxDBSink, event: Event) -> Any:
    """The same point as ``sink.line(event)``, built with the client's Point."""
    from influxdb_client import Point

    point = Point(sink.options.measurement)
    for name in sink.tags:
        value = sink.cluster if name == "cluster" else sink._tag_getter(name)(event)
        if value:
            point.tag(name, value)
    point.field("count", event.count)
    if sink.with_fields:
        point.field("message", event.message)
        for name, getter in STRING_FIELDS:
            value = getter(event)
            if value:
                point.field(name, value)
    else:
        point.field("value", orjson.dumps(sink.document(event)).decode())
    return point.time(point_time(event))


def encode_cost(events: list[Event], withfields: str) -> tuple[float, float]:
    """CPU-s per 10,000 events: (line(), Point().to_line_protocol())."""
    sink, _ = build_sink(
        f"influxdb:http://127.0.0.1:1?withfields={withfields}",
        SinkContext(cluster="bench", state_dir=None),
    )
    assert isinstance(sink, InfluxDBSink)
    per_10k = 10_000 / len(events)
    gc.collect()
    t0 = time.process_time()
    ours = [sink.line(event) for event in events]
    t1 = time.process_time()
    theirs = [point_of(sink, event).to_line_protocol() for event in events]
    t2 = time.process_time()
    assert len(ours) == len(theirs)
    return (t1 - t0) * per_10k, (t2 - t1) * per_10k


# -- one run


@dataclass
class Run:
    withfields: str
    batch_size: int
    events: int
    bytes_per_event: float
    write_s: float
    events_per_s: float
    client_cpu_per_10k: float
    server_cpu_per_10k: float  # during the writes, minus the idle rate
    server_total_per_10k: float  # including background work until idle again
    loadavg: float = 0.0
    replay_events_per_s: float | None = None
    replay_client_per_10k: float | None = None
    replay_server_per_10k: float | None = None


def write_all(sink: InfluxDBSink, events: list[Event], size: int) -> None:
    for i in range(0, len(events), size):
        rejected = sink.write(events[i : i + size])
        if rejected:
            raise BenchError(f"{len(rejected)} refused, first: {rejected[0].reason}")


def check(url: str, db: str, events: list[Event]) -> None:
    """Exactly once: one point per version, each at the time the docs give it."""
    result = influxql(url, 'SELECT count("count") FROM "kubernetes_events"', db)
    stored = result["series"][0]["values"][0][1] if result.get("series") else 0
    if stored != len(events):
        raise BenchError(f"{stored} points for {len(events)} event versions")
    if len({point_time(e) for e in events}) != len(events):
        raise BenchError("two versions share a time")  # (then the count above could not hold)


def measure(
    url: str, events: list[Event], size: int, withfields: str, gzip: bool, replay: bool
) -> Run:
    server = server_process("influxdb")
    db = f"bench_{uuid.uuid4().hex[:10]}"
    uri = (
        f"influxdb:{url}?db={db}&withfields={withfields}&batch_size={size}&gzip={str(gzip).lower()}"
    )
    sink, settings = build_sink(uri, SinkContext(cluster="bench", state_dir=None))
    assert isinstance(sink, InfluxDBSink) and settings.batch_size == size
    try:
        sink.open()
        load = os.getloadavg()[0]
        size_bytes = sum(len(sink.line(e).encode()) + 1 for e in events)
        timing, _ = timed(lambda: write_all(sink, events, size), server, settle=True)
        check(url, db, events)
        per_10k = 10_000 / len(events)
        run = Run(
            withfields=withfields,
            batch_size=size,
            events=len(events),
            bytes_per_event=size_bytes / len(events),
            write_s=timing.wall,
            events_per_s=len(events) / timing.wall,
            client_cpu_per_10k=timing.client * per_10k,
            server_cpu_per_10k=timing.server * per_10k,
            server_total_per_10k=timing.settled[0] * per_10k,
            loadavg=load,
        )
        if replay:
            timing, _ = timed(lambda: write_all(sink, events, size), server)
            check(url, db, events)
            run.replay_events_per_s = len(events) / timing.wall
            run.replay_client_per_10k = timing.client * per_10k
            run.replay_server_per_10k = timing.server * per_10k
        return run
    finally:
        sink.close()
        influxql(url, f'DROP DATABASE "{db}"')


# -- the report


def report(
    runs: dict[tuple[str, int], list[Run]],
    encoding: dict[str, tuple[float, float]],
    args: argparse.Namespace,
    version: str,
) -> list[str]:
    replay = [
        Column("replay events/s", lambda r: r.replay_events_per_s, 0),
        Column("replay client / 10k", lambda r: r.replay_client_per_10k),
        Column("replay server / 10k", lambda r: r.replay_server_per_10k),
    ]
    lines = [
        *header(
            "influxdb sink: throughput and CPU",
            f"influxdb-client (synchronous v2 write API), InfluxDB {version} from `scripts/stack`"
            " (no auth, default settings), over HTTP on 127.0.0.1"
            + (", gzip on." if args.gzip else "."),
        ),
        f"{args.events:,} event versions (seed {args.seed}), in process: `sink.write(batch)` in a"
        " loop (no watch, no pipeline thread); each batch is one `POST /api/v2/write`. Medians of"
        f' {args.repeat} run(s); every run checked before it counts (`count("count")` equals the'
        " number of versions: nothing lost, no version overwriting another). CPU-s per 10,000"
        " events; server CPU minus its idle rate, during the writes and until the server is idle"
        " again (WAL and cache snapshots). load: the 1-minute load average as the run started."
        + (
            " Replay: the same events written again (every point overwritten by itself)."
            if args.replay
            else ""
        ),
        "",
        *table(
            [("withfields", "---"), ("batch size", "---:")],
            [
                Column("bytes/event", lambda r: r.bytes_per_event, 0),
                Column("events/s", lambda r: r.events_per_s, 0),
                Column("client CPU-s / 10k", lambda r: r.client_cpu_per_10k),
                Column("server CPU-s / 10k (writes)", lambda r: r.server_cpu_per_10k),
                Column("server CPU-s / 10k (incl. background)", lambda r: r.server_total_per_10k),
                Column("load", lambda r: r.loadavg),
                *(replay if args.replay else []),
            ],
            runs,
        ),
        "",
        "Building the line protocol alone (CPU-s per 10,000 events, part of the client CPU"
        " above): the sink's `line()` against the client's `Point(...).to_line_protocol()` with"
        " the same tags, fields and time.",
        "",
        "| withfields | `line()` | `Point` | ratio |",
        "|---|---:|---:|---:|",
    ]
    for withfields, (ours, theirs) in encoding.items():
        lines.append(f"| {withfields} | {ours:.3f} | {theirs:.3f} | {theirs / ours:.1f}x |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument(
        "--withfields", nargs="+", default=["true", "false"], choices=["true", "false"]
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--gzip", action="store_true", help="compress the writes")
    parser.add_argument("--replay", action="store_true", help="also time a full replay")
    parser.add_argument("--out", default="/tmp/bench-influxdb.md")
    args = parser.parse_args()

    stack = stack_up("influxdb")
    if stack is None:
        return 1
    url = stack["INFLUXDB_URL"]
    log(f"building {args.events:,} events")
    events = build_events(args.events, args.seed, whole_seconds=True)  # core/v1 times
    encoding = {}
    for withfields in args.withfields:
        costs = [encode_cost(events, withfields) for _ in range(3)]
        encoding[withfields] = (
            median([c[0] for c in costs]) or 0.0,
            median([c[1] for c in costs]) or 0.0,
        )
        ours, theirs = encoding[withfields]
        log(f"encoding withfields={withfields}: line() {ours:.3f}, Point {theirs:.3f} CPU-s/10k")
    log("warm-up run")
    measure(url, events[:2000], 500, "true", args.gzip, replay=False)
    runs, errors = round_robin(
        [(withfields, size) for withfields in args.withfields for size in args.batch_sizes],
        args.repeat,
        lambda config: measure(url, events, config[1], config[0], args.gzip, args.replay),
        lambda config: f"withfields={config[0]} batch {config[1]}",
        lambda run: (
            f"{run.events_per_s:,.0f} ev/s, client {run.client_cpu_per_10k:.2f}, server"
            f" {run.server_cpu_per_10k:.2f} ({run.server_total_per_10k:.2f} incl. background)"
            " CPU-s/10k"
            + (f"; replay {run.replay_events_per_s:,.0f} ev/s" if run.replay_events_per_s else "")
        ),
    )
    with urllib.request.urlopen(f"{url}/ping", timeout=10) as response:
        version = response.headers.get("X-Influxdb-Version", "?")
    write_report(report(runs, encoding, args, version), args.out)
    return 1 if any(errors.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())

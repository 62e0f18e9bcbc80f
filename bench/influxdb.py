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
import platform
import random
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shipper.app import build_sink  # noqa: E402
from shipper.event import Event, normalize  # noqa: E402
from shipper.sinks.base import SinkContext  # noqa: E402
from shipper.sinks.influxdb import STRING_FIELDS, InfluxDBSink, point_time  # noqa: E402

STACK = ROOT / "scripts" / "stack"
QUIET_CPU = 0.05  # a server below 5% of a core is taken as idle


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def read_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in (ROOT / ".stack" / "env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            env[key.strip()] = value.strip().strip("'\"")
    return env


def server_process() -> psutil.Process:
    pidfiles = sorted((ROOT / ".stack" / "influxdb").glob("*.pid"))
    if not pidfiles:
        raise SystemExit("no .stack/influxdb/*.pid: is influxdb running?")
    return psutil.Process(int(pidfiles[0].read_text().strip()))


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def quiesce(server: psutil.Process, timeout: float = 30.0, window: float = 0.5) -> float:
    """Wait until the server is idle; return its CPU rate (cores) in the last window."""
    deadline = time.monotonic() + timeout
    while True:
        before, start = cpu_seconds(server), time.monotonic()
        time.sleep(window)
        rate = (cpu_seconds(server) - before) / (time.monotonic() - start)
        if rate < QUIET_CPU or time.monotonic() > deadline:
            return rate


def influxql(url: str, q: str, db: str | None = None) -> dict[str, Any]:
    params = {"q": q} | ({"db": db} if db else {})
    request = urllib.request.Request(f"{url}/query", data=urllib.parse.urlencode(params).encode())
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)["results"][0]


# -- realistic events

TEMPLATES = (  # kind, type, reason, reporting component, message
    ("Pod", "Normal", "Scheduled", "default-scheduler", "Assigned {ns}/{name} to {node}"),
    ("Pod", "Normal", "Pulled", "kubelet", 'Pulled image "registry.example.com/{name}:1.4.2"'),
    ("Pod", "Normal", "Started", "kubelet", "Started container app"),
    ("Pod", "Warning", "BackOff", "kubelet", "Back-off restarting failed container in {name}"),
    ("Pod", "Warning", "Unhealthy", "kubelet", "Readiness probe failed: HTTP statuscode: 503"),
    ("Pod", "Warning", "FailedMount", "kubelet", 'configmap "{name}" not found'),
    ("ReplicaSet", "Normal", "SuccessfulCreate", "replicaset-controller", "Created pod: {name}-x"),
    ("Deployment", "Normal", "ScalingReplicaSet", "deployment-controller", "Scaled up {name}"),
    ("Node", "Warning", "NodeNotReady", "node-controller", "Node {node} status: NodeNotReady"),
    ("Job", "Warning", "BackoffLimitExceeded", "job-controller", "Job reached its backoff limit"),
)
NAMESPACES = ("default", "kube-system", "shop", "payments", "monitoring", "data", "team-a")
ASCII_DETAIL = (
    " body: upstream connect error or disconnect/reset before headers. reset reason: connection"
    " failure, transport failure reason: delayed connect error: 111; retries=3 path=/healthz"
)
UNICODE_DETAIL = (
    ' body: {"status":"dégradé","checks":[{"name":"база данных","detail":"接続がタイムアウト'
    'しました ⏱"},{"name":"队列","detail":"消费者延迟 12.4s ⚠ 🔥"}],"zone":"Zürich-β"}'
)


def raw_events(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    out: list[dict[str, Any]] = []
    rv = 1_000_000
    while len(out) < n:
        kind, type_, reason, component, template = rng.choice(TEMPLATES)
        ns = rng.choice(NAMESPACES)
        node = f"ip-10-0-{rng.randrange(8)}-{rng.randrange(250)}.eu-west-1.compute.internal"
        name = (
            node
            if kind == "Node"
            else f"{rng.choice(('web', 'api', 'worker'))}-{rng.randrange(400):03d}"
        )
        message = template.format(ns=ns, name=name, node=node)
        filler = UNICODE_DETAIL if rng.random() < 0.2 else ASCII_DETAIL
        length = rng.randint(50, 400)
        while len(message) < length:
            message += filler
        message = message[:length]
        uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        first = start + timedelta(seconds=rng.randrange(3600))  # whole seconds, as core/v1 has
        versions = rng.randint(2, 6) if rng.random() < 0.1 else 1
        count = 1
        for _ in range(versions):
            if len(out) >= n:
                break
            rv += 1
            last = first + timedelta(seconds=30 * (count - 1))
            out.append({
                "metadata": {"name": f"{name}.{uid[:16]}", "uid": uid, "resourceVersion": str(rv),
                             "namespace": "default" if kind == "Node" else ns},
                "involvedObject": {"kind": kind, "name": name, "apiVersion": "v1",
                                   **({} if kind == "Node" else {"namespace": ns})},
                "reason": reason, "message": message, "type": type_, "count": count,
                "firstTimestamp": first.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "lastTimestamp": last.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "source": {"component": component, **({"host": node} if kind != "Node" else {})},
            })  # fmt: skip
            count += rng.randint(1, 3)
    return out


def build_events(n: int, seed: int) -> list[Event]:
    return [normalize(raw, "ADDED", cluster="bench") for raw in raw_events(n, seed)]


# -- encoding alone: line() against the client's Point


def point_of(sink: InfluxDBSink, event: Event) -> Any:
    """The same point as ``sink.line(event)``, built with the client's Point."""
    from influxdb_client import Point

    point = Point(sink.options["measurement"])
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


class BenchError(Exception):
    """The run gives no number: refused points, or the database does not hold N points."""


def write_all(sink: InfluxDBSink, events: list[Event], size: int) -> None:
    for i in range(0, len(events), size):
        rejected = sink.write(events[i : i + size])
        if rejected:
            raise BenchError(f"{len(rejected)} refused, first: {rejected[0].reason}")


def timed(
    sink: InfluxDBSink, events: list[Event], size: int, server: psutil.Process
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
    server = server_process()
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
        wall, client, during, total = timed(sink, events, size, server)
        check(url, db, events)
        per_10k = 10_000 / len(events)
        run = Run(
            withfields=withfields,
            batch_size=size,
            events=len(events),
            bytes_per_event=size_bytes / len(events),
            write_s=wall,
            events_per_s=len(events) / wall,
            client_cpu_per_10k=client * per_10k,
            server_cpu_per_10k=during * per_10k,
            server_total_per_10k=total * per_10k,
            loadavg=load,
        )
        if replay:
            wall, client, during, _ = timed(sink, events, size, server)
            check(url, db, events)
            run.replay_events_per_s = len(events) / wall
            run.replay_client_per_10k = client * per_10k
            run.replay_server_per_10k = during * per_10k
        return run
    finally:
        sink.close()
        influxql(url, f'DROP DATABASE "{db}"')


# -- the report


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def report(
    runs: dict[tuple[str, int], list[Run]],
    encoding: dict[str, tuple[float, float]],
    args: argparse.Namespace,
    version: str,
) -> str:
    command = "bench/influxdb.py " + " ".join(sys.argv[1:])
    lines = [
        "# influxdb sink: throughput and CPU",
        "",
        f"`.venv/bin/python {command.strip()}` on {platform.node()}: {os.cpu_count()} cores,"
        f" Python {platform.python_version()}, influxdb-client (synchronous v2 write API),"
        f" InfluxDB {version} from `scripts/stack` (no auth, default settings), over HTTP on"
        f" 127.0.0.1{', gzip on' if args.gzip else ''}.",
        "",
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
        "| withfields | batch size | bytes/event | events/s | client CPU-s / 10k"
        " | server CPU-s / 10k (writes) | server CPU-s / 10k (incl. background) | load |"
        + (" replay events/s | replay client / 10k | replay server / 10k |" if args.replay else ""),
        "|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if args.replay else ""),
    ]
    for (withfields, size), results in runs.items():
        if not results:
            lines.append(f"| {withfields} | {size} | error | | | | | |")
            continue
        row = (
            f"| {withfields} | {size} | {fmt(median([r.bytes_per_event for r in results]), 0)}"
            f" | {fmt(median([r.events_per_s for r in results]), 0)}"
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
    lines += [
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
    lines.append("")
    return "\n".join(lines)


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

    up = subprocess.run(
        [sys.executable, str(STACK), "up", "influxdb"], cwd=ROOT, capture_output=True, text=True
    )
    if up.returncode != 0:
        sys.stderr.write(up.stderr[-4000:])
        return 1
    url = read_env()["INFLUXDB_URL"]
    log(f"building {args.events:,} events")
    events = build_events(args.events, args.seed)
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
    runs: dict[tuple[str, int], list[Run]] = {
        (withfields, size): [] for withfields in args.withfields for size in args.batch_sizes
    }
    errors = 0
    for round_ in range(args.repeat):
        for withfields, size in runs:  # round-robin: drift hits every configuration alike
            try:
                run = measure(url, events, size, withfields, args.gzip, args.replay)
            except Exception as exc:
                errors += 1
                where = f"withfields={withfields} batch {size} round {round_ + 1}"
                log(f"{where}: ERROR {type(exc).__name__}: {exc}")
                continue
            runs[(withfields, size)].append(run)
            log(
                f"withfields={withfields} batch {size} round {round_ + 1}:"
                f" {run.events_per_s:,.0f} ev/s,"
                f" client {run.client_cpu_per_10k:.2f}, server {run.server_cpu_per_10k:.2f}"
                f" ({run.server_total_per_10k:.2f} incl. background) CPU-s/10k"
                + (
                    f"; replay {run.replay_events_per_s:,.0f} ev/s"
                    if run.replay_events_per_s
                    else ""
                )
            )
    with urllib.request.urlopen(f"{url}/ping", timeout=10) as response:
        version = response.headers.get("X-Influxdb-Version", "?")
    text = report(runs, encoding, args, version)
    Path(args.out).write_text(text)
    print(text)
    log(f"written to {args.out}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Throughput of the loki sink, in process, against the stack's real Loki 3.x.

N realistic event versions (bench/common.py, seed 7, core/v1 whole-second times of the last
hour) are built and normalized first, and sorted by time, as a watch delivers them. Per run, a
sink is built from a URI exactly as the daemon builds it (``build_sink``), pointed at Loki
itself (LOKI_DIRECT_URL: no gateway hop) with a fresh tenant, opened, and fed
``sink.write(batch)`` batch after batch: one push request per batch. Measured over the writes
only: events/s (wall), this process's CPU (user+sys) and Loki's (psutil on
.stack/loki/loki.pid, minus its idle rate) per 10,000 events. After the writes,
``sum(count_over_time({job="kube-event-shipper"}[3h]))`` in that tenant: a run whose tenant
does not hold exactly N entries (stored, and returned by a log query) is an error, not a
number. ``--replay`` writes everything again and reports what a log query returns and what
``count_over_time`` counts afterwards: Loki's ingester drops a copy only while the original is
still in its stream's head block (about the last 256 KB of the stream) or is the stream's last
entry; older copies are stored (README: the loki sink's guarantee).

    .venv/bin/python bench/loki.py                       # protobuf and json, batch 100 1000
    .venv/bin/python bench/loki.py --events 5000 --formats protobuf --repeat 1 --replay
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import build_events, cpu_seconds, fmt, log, median, quiesce, stack_up  # noqa: E402

from shipper.event import Event  # noqa: E402
from shipper.sinks.base import SinkContext  # noqa: E402
from shipper.sinks.factory import build_sink  # noqa: E402
from shipper.sinks.influxdb import point_time  # noqa: E402
from shipper.sinks.loki import LokiSink  # noqa: E402

REPLAY_COLUMNS = (
    " replay events/s | replay client / 10k | replay: too far behind | after replay: log query"
    " | after replay: count_over_time |"
)


class BenchError(Exception):
    """The run gives no number: refused entries, or Loki does not hold N entries."""


@dataclass
class Run:
    fmt: str
    batch_size: int
    bytes_per_event: float
    events_per_s: float
    client_per_10k: float
    server_per_10k: float
    loadavg: float
    replay_events_per_s: float | None = None
    replay_client_per_10k: float | None = None
    replay_stored: int | None = None
    replay_shown: int | None = None
    replay_behind: int | None = None


def _get(env: dict[str, str], tenant: str, path: str, **params: object) -> list[dict]:
    url = f"{env['LOKI_DIRECT_URL']}{path}?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url, headers={"X-Scope-OrgID": tenant})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)["data"]["result"]


def count(env: dict[str, str], tenant: str) -> tuple[int, int]:
    """(entries a log query returns, entries count_over_time counts: the stored copies)."""
    end = time.time_ns() + 15 * 60 * 10**9  # the generator's times reach 5 min ahead
    selector = '{job="kube-event-shipper"}'
    metric = _get(env, tenant, "/loki/api/v1/query", time=end,
                  query=f"sum(count_over_time({selector}[3h]))")  # fmt: skip
    logs = _get(env, tenant, "/loki/api/v1/query_range", query=selector, limit=100_000,
                start=end - 3 * 3600 * 10**9, end=end, direction="forward")  # fmt: skip
    stored = int(float(metric[0]["value"][1])) if metric else 0
    return sum(len(stream["values"]) for stream in logs), stored


def write_all(sink: LokiSink, events: list[Event], size: int, *, replay: bool = False) -> int:
    """Every batch; returns how many entries a replay had refused as too far behind their
    stream's newest entry (Loki keeps a window of half its max_chunk_age: an hour by default).
    Any other refusal, and any refusal of a first write, is an error."""
    behind = 0
    for i in range(0, len(events), size):
        outcome = sink.write(events[i : i + size])
        if outcome.retry:
            raise BenchError(f"{len(outcome.retry)} to retry, first: {outcome.retry[0].reason}")
        for rejected in outcome.rejected:
            if not (replay and "entry too far behind" in rejected.reason):
                raise BenchError(f"{len(outcome.rejected)} refused, first: {rejected.reason}")
            behind += 1
    return behind


def timed(sink: LokiSink, events: list[Event], size: int, server: psutil.Process, replay=False):
    idle = quiesce(server)
    gc.collect()
    wall0, client0, server0 = time.perf_counter(), time.process_time(), cpu_seconds(server)
    behind = write_all(sink, events, size, replay=replay)
    wall1, client1, server1 = time.perf_counter(), time.process_time(), cpu_seconds(server)
    during = max(0.0, server1 - server0 - idle * (wall1 - wall0))
    return wall1 - wall0, client1 - client0, during, behind


def measure(env, events, size, form, replay, server) -> Run:
    tenant = f"bench-{uuid.uuid4().hex[:10]}"
    uri = f"loki:{env['LOKI_DIRECT_URL']}?tenant={tenant}&format={form}&batch_size={size}"
    sink, _ = build_sink(uri, SinkContext(cluster="bench", state_dir=None))
    assert isinstance(sink, LokiSink)
    try:
        sink.open()
        body_bytes = sum(
            len(sink.body([(0, sink.stream_of(e), 0, sink.line(e)) for e in events[i : i + size]]))
            for i in range(0, len(events), size)
        )
        load = os.getloadavg()[0]
        wall, client, during, _ = timed(sink, events, size, server)
        shown, stored = count(env, tenant)
        if shown != len(events) or stored != len(events):
            raise BenchError(f"{shown} entries ({stored} stored) for {len(events)} versions")
        per_10k = 10_000 / len(events)
        run = Run(form, size, body_bytes / len(events), len(events) / wall, client * per_10k,
                  during * per_10k, load)  # fmt: skip
        if replay:
            wall, client, _, behind = timed(sink, events, size, server, replay=True)
            run.replay_shown, run.replay_stored = count(env, tenant)
            run.replay_behind = behind
            run.replay_events_per_s = len(events) / wall
            run.replay_client_per_10k = client * per_10k
        return run
    finally:
        sink.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--formats", nargs="+", default=["protobuf", "json"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--replay", action="store_true")
    args = ap.parse_args()
    env = stack_up("loki")
    if env is None:
        return 1
    server = psutil.Process(int((ROOT / ".stack" / "loki" / "loki.pid").read_text()))
    log(f"building {args.events:,} events")
    # In time order, as a watch delivers them: Loki refuses an entry more than an hour (half
    # its max_chunk_age) behind its stream's newest one, and the generator spans an hour.
    events = sorted(build_events(args.events, args.seed, whole_seconds=True), key=point_time)
    runs: dict[tuple[str, int], list[Run]] = {}
    for form in args.formats:
        for size in args.batch_sizes:
            runs[(form, size)] = []
            for i in range(args.repeat):
                try:
                    run = measure(env, events, size, form, args.replay, server)
                except BenchError as exc:
                    log(f"{form} batch {size} run {i + 1}: {exc}")
                    continue
                log(f"{form} batch {size} run {i + 1}: {run.events_per_s:,.0f} events/s")
                runs[(form, size)].append(run)
    command = "bench/loki.py " + " ".join(sys.argv[1:])
    lines = [
        "# loki sink: throughput and CPU",
        "",
        f"`.venv/bin/python {command.strip()}` on {platform.node()}: {os.cpu_count()} cores,"
        f" Python {platform.python_version()}, Loki from `scripts/stack` (single binary,"
        " filesystem storage, WAL on), over HTTP on 127.0.0.1 straight to Loki.",
        "",
        f"{args.events:,} event versions (seed {args.seed}), in process: `sink.write(batch)` in a"
        f" loop; each batch is one push request. Medians of {args.repeat} run(s), each checked"
        " (the tenant holds exactly N entries). CPU-s per 10,000 events; Loki's CPU minus its"
        " idle rate, during the writes. bytes/event: the request body."
        + (
            " Replay: everything written again (oldest first, as `--start=all`); too far behind:"
            " replayed entries Loki refused (400) for being over an hour behind their stream's"
            " newest (dead letters in the daemon); after replay: the entries a log query returns"
            " and those count_over_time counts (N: every copy dropped; 2N: none)."
            if args.replay
            else ""
        ),
        "",
        "| format | batch size | bytes/event | events/s | client CPU-s / 10k"
        " | Loki CPU-s / 10k | load |" + (REPLAY_COLUMNS if args.replay else ""),
        "|---|---:|---:|---:|---:|---:|---:|" + ("---:|" * 5 if args.replay else ""),
    ]
    for (form, size), results in runs.items():
        if not results:
            lines.append(f"| {form} | {size} | error | | | | |")
            continue
        row = (
            f"| {form} | {size} | {fmt(median([r.bytes_per_event for r in results]), 0)}"
            f" | {fmt(median([r.events_per_s for r in results]), 0)}"
            f" | {fmt(median([r.client_per_10k for r in results]))}"
            f" | {fmt(median([r.server_per_10k for r in results]))}"
            f" | {fmt(median([r.loadavg for r in results]))} |"
        )
        if args.replay:
            row += (
                f" {fmt(median([r.replay_events_per_s for r in results]), 0)}"
                f" | {fmt(median([r.replay_client_per_10k for r in results]))}"
                f" | {fmt(median([r.replay_behind for r in results]), 0)}"
                f" | {fmt(median([r.replay_shown for r in results]), 0)}"
                f" | {fmt(median([r.replay_stored for r in results]), 0)} |"
            )
        lines.append(row)
    print("\n".join(lines))
    return 0 if all(runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

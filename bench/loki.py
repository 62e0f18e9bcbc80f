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
import json
import os
import sys
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

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
    stack_up,
    table,
    timed,
    write_report,
)
from shipper.event import Event  # noqa: E402
from shipper.sinks.base import SinkContext  # noqa: E402
from shipper.sinks.factory import build_sink  # noqa: E402
from shipper.sinks.influxdb import point_time  # noqa: E402
from shipper.sinks.loki import LokiSink  # noqa: E402


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
        timing, _ = timed(lambda: write_all(sink, events, size), server)
        shown, stored = count(env, tenant)
        if shown != len(events) or stored != len(events):
            raise BenchError(f"{shown} entries ({stored} stored) for {len(events)} versions")
        per_10k = 10_000 / len(events)
        run = Run(form, size, body_bytes / len(events), len(events) / timing.wall,
                  timing.client * per_10k, timing.server * per_10k, load)  # fmt: skip
        if replay:
            timing, behind = timed(lambda: write_all(sink, events, size, replay=True), server)
            run.replay_shown, run.replay_stored = count(env, tenant)
            run.replay_behind = behind
            run.replay_events_per_s = len(events) / timing.wall
            run.replay_client_per_10k = timing.client * per_10k
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
    ap.add_argument("--out", default="/tmp/bench-loki.md")
    args = ap.parse_args()
    env = stack_up("loki")
    if env is None:
        return 1
    server = psutil.Process(int((ROOT / ".stack" / "loki" / "loki.pid").read_text()))
    log(f"building {args.events:,} events")
    # In time order, as a watch delivers them: Loki refuses an entry more than an hour (half
    # its max_chunk_age) behind its stream's newest one, and the generator spans an hour.
    events = sorted(build_events(args.events, args.seed, whole_seconds=True), key=point_time)
    runs, errors = round_robin(
        [(form, size) for form in args.formats for size in args.batch_sizes],
        args.repeat,
        lambda config: measure(env, events, config[1], config[0], args.replay, server),
        lambda config: f"{config[0]} batch {config[1]}",
        lambda run: f"{run.events_per_s:,.0f} events/s",
    )
    replay = [
        Column("replay events/s", lambda r: r.replay_events_per_s, 0),
        Column("replay client / 10k", lambda r: r.replay_client_per_10k),
        Column("replay: too far behind", lambda r: r.replay_behind, 0),
        Column("after replay: log query", lambda r: r.replay_shown, 0),
        Column("after replay: count_over_time", lambda r: r.replay_stored, 0),
    ]
    lines = [
        *header(
            "loki sink: throughput and CPU",
            "Loki from `scripts/stack` (single binary, filesystem storage, WAL on), over HTTP on"
            " 127.0.0.1 straight to Loki.",
        ),
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
        *table(
            [("format", "---"), ("batch size", "---:")],
            [
                Column("bytes/event", lambda r: r.bytes_per_event, 0),
                Column("events/s", lambda r: r.events_per_s, 0),
                Column("client CPU-s / 10k", lambda r: r.client_per_10k),
                Column("Loki CPU-s / 10k", lambda r: r.server_per_10k),
                Column("load", lambda r: r.loadavg),
                *(replay if args.replay else []),
            ],
            runs,
        ),
    ]
    write_report(lines, args.out)
    return 1 if any(errors.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

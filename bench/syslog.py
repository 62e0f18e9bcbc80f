#!/usr/bin/env python3
"""Throughput of the syslog sink, in process, against the stack's rsyslog.

N realistic event versions (default 20,000, ``bench/common.py``'s generator) are built and
normalized first. Per run, a sink built from a URI exactly as the daemon builds it
(``build_sink``; an app-name of its own), opened, and fed ``sink.write(batch)`` batch after batch
over UDP, TCP (octet counting) or TLS. Measured over the writes only: events/s (wall) and this
process's CPU (user+sys per 10,000 events); rsyslog's CPU (psutil on its pid, minus its idle
rate). Then rsyslog's output is read back: a TCP/TLS run whose messages are not exactly one per
version (by the version in the structured data) is an error, not a number; for UDP the share
received is reported (UDP may drop; nothing tells the sender).

    .venv/bin/python bench/syslog.py                          # tcp, tls, udp; batch 500; 3 runs
    .venv/bin/python bench/syslog.py --events 5000 --transports tcp --batch-sizes 100 1000
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/ off sys.path: its scripts' names (kafka, syslog, profile...) would shadow modules.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    BenchError,
    Column,
    build_events,
    cpu_seconds,
    header,
    log,
    quiesce,
    round_robin,
    server_process,
    stack_up,
    table,
    write_report,
)
from shipper.sinks.base import SinkContext  # noqa: E402
from shipper.sinks.factory import build_sink  # noqa: E402

VERSION = re.compile(r' version="([^"]+)"')


def received(output: Path, app: str) -> list[str]:
    found = []
    with output.open(encoding="utf-8") as handle:
        for line in handle:
            if f'"app-name":"{app}"' in line or f'"app-name": "{app}"' in line:
                match = VERSION.search(json.loads(line)["structured-data"])
                found.append(match.group(1) if match else "")
    return found


def measure(env, events, transport: str, size: int) -> dict:
    app = f"bench-{uuid.uuid4().hex[:8]}"
    ca = f"&ca_file={env['SYSLOG_CA']}" if transport == "tls" else ""
    address = env[f"SYSLOG_{transport.upper()}"]
    uri = f"syslog:{transport}://{address}?app_name={app}{ca}&batch_size={size}"
    sink, _ = build_sink(uri, SinkContext(cluster="bench", state_dir=None))
    server = server_process("syslog")
    output = Path(env["SYSLOG_OUTPUT"])
    try:
        sink.open()
        idle = quiesce(server)
        gc.collect()
        wall0, client0, server0 = time.perf_counter(), time.process_time(), cpu_seconds(server)
        for i in range(0, len(events), size):
            if sink.write(events[i : i + size]):
                raise BenchError("rejected events")
        sink.close()
        wall1, client1 = time.perf_counter(), time.process_time()
    finally:
        sink.close()
    expected = sorted(f"{e.uid}.{e.count}" for e in events)
    deadline = time.monotonic() + 60
    while True:  # rsyslog writes asynchronously: wait for the file to hold them all
        got = received(output, app)
        if len(got) >= len(expected) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    server1 = cpu_seconds(server)
    settle = time.perf_counter() - wall1
    if transport != "udp" and sorted(got) != expected:
        raise BenchError(f"{transport}: {len(got)} messages for {len(expected)} versions")
    per_10k = 10_000 / len(events)
    return {
        "transport": transport,
        "batch": size,
        "events_per_s": len(events) / (wall1 - wall0),
        "client": (client1 - client0) * per_10k,
        "server": max(0.0, server1 - server0 - idle * (wall1 - wall0 + settle)) * per_10k,
        "received": len(set(got)) / len(expected),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--transports", nargs="+", default=["tcp", "tls", "udp"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[500])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="/tmp/bench-syslog.md")
    args = parser.parse_args()
    env = stack_up("syslog")
    if env is None:
        return 1
    log(f"building {args.events:,} events")
    events = build_events(args.events, args.seed)
    measure(env, events[:2000], "tcp", 500)  # warm-up
    runs, errors = round_robin(
        [(transport, size) for transport in args.transports for size in args.batch_sizes],
        args.repeat,
        lambda config: measure(env, events, *config),
        lambda config: f"{config[0]} batch {config[1]}",
        lambda run: (
            f"{run['events_per_s']:,.0f} ev/s, shipper {run['client']:.2f}, rsyslog"
            f" {run['server']:.2f} CPU-s/10k, {run['received']:.1%} received"
        ),
    )
    lines = [
        *header(
            "syslog sink: throughput and CPU",
            "rsyslog from `scripts/stack` on 127.0.0.1.",
        ),
        f"{args.events:,} event versions (seed {args.seed}), in process: `sink.write(batch)` in a"
        f" loop. Medians of {args.repeat} run(s); a TCP or TLS run counts only if rsyslog wrote"
        " exactly one message per version. CPU-s per 10,000 events: the shipper's (this"
        " process), and rsyslog's minus its idle rate. received: the share of versions rsyslog"
        " wrote.",
        "",
        *table(
            [("transport", "---"), ("batch", "---:")],
            [
                Column("events/s", lambda r: r["events_per_s"], 0),
                Column("shipper CPU-s / 10k", lambda r: r["client"]),
                Column("rsyslog CPU-s / 10k", lambda r: r["server"]),
                Column("received", lambda r: r["received"], percent=True),
            ],
            runs,
        ),
    ]
    write_report(lines, args.out)
    return 1 if any(errors.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())

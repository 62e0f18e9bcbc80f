#!/usr/bin/env python3
"""Fan-in throughput: Kafka -> aggregator(s) -> OpenSearch, against the stack's real servers.

N realistic event versions (bench/common.py's generator, default 20,000), half of cluster
``east`` and half of ``west``, are written first into a fresh topic of 6 partitions by the
kafka sink (as shippers in two clusters would). Then, per run, K aggregators
(``python -m shipper --source=kafka:?...&group=G --sink=opensearch:URL?index=I``, each a
subprocess as users run it, all in one new consumer group) read the whole topic into a new
OpenSearch index. Measured: wall time from the launch until the aggregators' metrics say all N
were shipped (start-up included: imports, joining the group, the first rebalance), events/s,
the aggregators' CPU (user+sys, summed) per 10,000 events, and the start-up alone (launch to
every /readyz). After each run the index must hold exactly N documents (one per ``_id`` =
``<uid>.<count>``) or the run is an error, not a number.

    .venv/bin/python bench/fanin.py                        # 1 and 3 aggregators, 2 runs each
    .venv/bin/python bench/fanin.py --events 5000 --aggregators 1 2 3 --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import importlib.util  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_common", ROOT / "bench" / "common.py")
assert _spec is not None and _spec.loader is not None
_c = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_c)

import psutil  # noqa: E402

from shipper.sinks.base import SinkContext  # noqa: E402
from shipper.sinks.factory import build_sink  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def shipped(port: int) -> float:
    _, body = get(f"http://127.0.0.1:{port}/metrics")
    for line in body.decode().splitlines():
        if line.startswith("kube_event_shipper_sink_events_total{") and 'outcome="shipped"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def fill_topic(bootstrap: str, events: list, partitions: int = 6) -> str:
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"bench-fanin-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, partitions, 1)], timeout_ms=30_000)
    admin.close()
    sinks = {}
    for cluster in ("east", "west"):
        sink, _ = build_sink(
            f"kafka:?brokers={bootstrap}&eventstopic={topic}", SinkContext(cluster, None)
        )
        sink.open()
        sinks[cluster] = sink
    for start in range(0, len(events), 1000):
        batch = events[start : start + 1000]
        for cluster, sink in sinks.items():
            mine = [e for i, e in enumerate(batch) if (i % 2 == 0) == (cluster == "east")]
            assert sink.write(mine) == []
    for sink in sinks.values():
        sink.close()
    return topic


def count(url: str, index: str) -> int:
    get(f"{url}/{index}/_refresh")
    request = urllib.request.Request(f"{url}/{index}/_refresh", method="POST")
    urllib.request.urlopen(request, timeout=30).read()
    status, body = get(f"{url}/{index}/_count")
    return int(json.loads(body)["count"]) if status == 200 else -1


def run(env: dict[str, str], topic: str, n: int, k: int, workdir: Path) -> dict[str, float]:
    group, index = f"bench-{uuid.uuid4().hex[:8]}", f"bench-fanin-{uuid.uuid4().hex[:8]}"
    url = env["OPENSEARCH_URL"]
    procs, ports, logs = [], [], []
    started = time.monotonic()
    for i in range(k):
        port = free_port()
        state = workdir / f"{index}-{i}"
        logs.append((workdir / f"{index}-{i}.log").open("wb"))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "shipper",
                 f"--source=kafka:?brokers={env['KAFKA_BOOTSTRAP']}&topic={topic}&group={group}",
                 f"--sink=opensearch:{url}?index={index}", f"--state-dir={state}",
                 f"--listen=127.0.0.1:{port}", "--checkpoint-interval=0.5s"],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=logs[-1],
            )
        )  # fmt: skip
        ports.append(port)
    handles = [psutil.Process(p.pid) for p in procs]
    ready_at = None
    deadline = time.monotonic() + 900
    samples: list[tuple[float, float]] = []  # (wall time, shipped so far)
    while True:
        if ready_at is None and all(get(f"http://127.0.0.1:{p}/readyz")[0] == 200 for p in ports):
            ready_at = time.monotonic() - started
        total = sum(shipped(p) for p in ports)
        samples.append((time.time(), total))
        if total >= n:
            break
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise SystemExit(f"run of {k} aggregators failed: {total} of {n} shipped")
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    cpu = sum(_c.cpu_seconds(h) for h in handles)
    for proc in procs:
        proc.terminate()
    codes = [proc.wait(timeout=60) for proc in procs]
    for handle in logs:
        handle.close()
    # After the last rebalance (each member joining stops the whole group for a while): the
    # rate of the group as it then is, from the last "Assigned" line of any member's log.
    finished = samples[-1][0]
    settled = max(assignments(workdir / f"{index}-{i}.log", finished) for i in range(k))
    before = max((t for t in samples if t[0] <= settled), default=samples[0])
    steady = (n - before[1]) / (finished - before[0]) if finished > before[0] else float("nan")
    stored = count(url, index)
    if stored != n or any(codes):
        raise SystemExit(f"{k} aggregators: {stored} documents of {n}, exit codes {codes}")
    get(f"{url}/{index}", timeout=30)
    urllib.request.urlopen(urllib.request.Request(f"{url}/_data_stream/{index}", method="DELETE"))
    return {
        "seconds": elapsed,
        "events_per_s": n / elapsed,
        "cpu_per_10k": cpu / n * 10_000,
        "startup": ready_at or float("nan"),
        "steady": steady,
    }


def assignments(path: Path, before: float) -> float:
    """Wall time of the last partition assignment in an aggregator's log before ``before``
    (the moment all events were shipped: a rebalance after it is not the run's)."""
    from datetime import datetime

    last = 0.0
    for line in path.read_text(errors="replace").splitlines():
        if " Assigned " in line:
            stamp = datetime.strptime(line[:23] + "+0000", "%Y-%m-%d %H:%M:%S.%f%z").timestamp()
            if stamp <= before:
                last = stamp
    return last


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--aggregators", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    for component in ("kafka", "opensearch"):
        if _c.stack_up(component) is None:
            return 1
    env = _c.read_env()
    events = _c.build_events(args.events, args.seed)
    _c.log(f"writing {len(events)} event versions into a topic of 6 partitions")
    topic = fill_topic(env["KAFKA_BOOTSTRAP"], events)
    results: dict[int, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k in args.aggregators:
            for r in range(args.runs):
                result = run(env, topic, len(events), k, Path(tmp))
                _c.log(
                    f"{k} aggregator(s), run {r + 1}: {result['events_per_s']:.0f} events/s,"
                    f" {result['seconds']:.1f} s, CPU {result['cpu_per_10k']:.2f} s/10k,"
                    f" start-up {result['startup']:.1f} s, after the last rebalance"
                    f" {result['steady']:.0f} events/s"
                )
                results.setdefault(k, []).append(result)
    print(f"Kafka -> OpenSearch, {len(events)} event versions, topic of 6 partitions")
    print(f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs")
    print(
        "| aggregators | events/s (median) | wall s | events/s after the last rebalance |"
        " aggregator CPU s / 10k | start-up s |"
    )
    print("|---|---|---|---|---|---|")
    for k, runs in results.items():
        med = {key: _c.median([x[key] for x in runs]) for key in runs[0]}
        print(
            f"| {k} | {med['events_per_s']:.0f} | {med['seconds']:.1f} | {med['steady']:.0f} |"
            f" {med['cpu_per_10k']:.2f} | {med['startup']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

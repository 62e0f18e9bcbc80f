#!/usr/bin/env python3
"""Throughput of the kafka sink, in process, against the stack's real Kafka 3.9 broker.

N realistic event versions (default 20,000, the generator of ``bench/mysql.py``: ~10% of events
also come as count updates, 20% of the messages multilingual, 50-400 characters) are built and
normalized first. Per run, a fresh topic (3 partitions) and a sink built from a kube-eventer URI
exactly as the daemon builds it (``build_sink``), opened, and fed ``sink.write(batch)`` batch
after batch: each write sends its batch and flushes it (acks=all, idempotent producer).
Measured over the writes only: events/s (wall), this process's CPU (user+sys of every thread,
the producer's sender thread included, per 10,000 events) and the broker's (psutil on the pid
in ``.stack/kafka/*.pid``, minus its idle rate). After the writes the topic is read back: a run
whose topic does not hold exactly one message per version, each with its version id, is an
error, not a number.

    .venv/bin/python bench/kafka.py                     # batch sizes 100 500 1000 2000, 3 runs
    .venv/bin/python bench/kafka.py --events 5000 --batch-sizes 1000 --compression none lz4 zstd
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from dataclasses import dataclass
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
from shipper.sinks.kafka import KafkaSink  # noqa: E402


@dataclass
class Run:
    batch_size: int
    compression: str
    events: int
    events_per_s: float
    client_cpu_per_10k: float
    server_cpu_per_10k: float
    kib_on_wire_per_10k: float  # the broker's log segment bytes per 10,000 events
    loadavg: float


def create_topic(bootstrap: str, partitions: int = 3) -> str:
    from kafka.admin import KafkaAdminClient, NewTopic

    name = f"bench-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)], timeout_ms=30_000)
    finally:
        admin.close()
    return name


def delete_topic(bootstrap: str, topic: str) -> None:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics([topic], timeout_ms=30_000)
    finally:
        admin.close()


def check(bootstrap: str, topic: str, events: list[Event]) -> None:
    """Exactly the versions written: one message each, its version_id header as expected."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        consumer.seek_to_beginning()
        seen: list[bytes] = []
        deadline = time.monotonic() + 60
        while len(seen) < len(events) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500, max_records=5000).values():
                seen += [dict(r.headers)["version_id"] for r in records]
    finally:
        consumer.close()
    expected = sorted(f"{e.uid}.{e.count}".encode() for e in events)
    if sorted(seen) != expected:
        raise BenchError(f"{len(seen)} messages for {len(events)} versions")


def segment_bytes(topic: str) -> int:
    data = ROOT / ".stack" / "kafka" / "data"
    return sum(p.stat().st_size for p in data.glob(f"{topic}-*/*.log"))


def write_all(sink: KafkaSink, events: list[Event], size: int) -> None:
    for i in range(0, len(events), size):
        rejected = sink.write(events[i : i + size])
        if rejected:
            raise BenchError(f"{len(rejected)} rejected, first: {rejected[0].reason}")


def measure(env: dict[str, str], events: list[Event], size: int, compression: str) -> Run:
    bootstrap = env["KAFKA_BOOTSTRAP"]
    broker = server_process("kafka")
    topic = create_topic(bootstrap)
    uri = (
        f"kafka:?brokers={bootstrap}&eventstopic={topic}&compression={compression}"
        f"&batch_size={size}"
    )
    sink, settings = build_sink(uri, SinkContext(cluster="bench", state_dir=None))
    assert isinstance(sink, KafkaSink) and settings.batch_size == size
    try:
        sink.open()
        load = os.getloadavg()[0]
        timing, _ = timed(lambda: write_all(sink, events, size), broker)
        check(bootstrap, topic, events)
        per_10k = 10_000 / len(events)
        return Run(
            batch_size=size,
            compression=compression,
            events=len(events),
            events_per_s=len(events) / timing.wall,
            client_cpu_per_10k=timing.client * per_10k,
            server_cpu_per_10k=timing.server * per_10k,
            kib_on_wire_per_10k=segment_bytes(topic) / 1024 * per_10k,
            loadavg=load,
        )
    finally:
        sink.close()
        delete_topic(bootstrap, topic)


def report(runs: dict[tuple[int, str], list[Run]], args: argparse.Namespace) -> list[str]:
    import kafka

    return [
        *header(
            "kafka sink: throughput and CPU",
            f"kafka-python {kafka.__version__}, Apache Kafka 3.9 (KRaft, one node, from"
            " `scripts/stack`) over PLAINTEXT on 127.0.0.1.",
        ),
        f"{args.events:,} event versions (seed {args.seed}), in process: `sink.write(batch)` in a"
        " loop (no watch, no pipeline thread), each write sent and flushed with acks=all by the"
        " idempotent producer (linger_ms 5, batch_bytes 256 KiB), into a topic of 3 partitions."
        f" Medians of {args.repeat} run(s); every run checked before it counts (the topic read"
        " back: one message per version, with its version id). CPU-s per 10,000 events; broker"
        " CPU minus its idle rate. KiB: the broker's log segments per 10,000 events. load: the"
        " 1-minute load average as the run started.",
        "",
        *table(
            [("batch size", "---:"), ("compression", "---")],
            [
                Column("events/s", lambda r: r.events_per_s, 0),
                Column("client CPU-s / 10k", lambda r: r.client_cpu_per_10k),
                Column("broker CPU-s / 10k", lambda r: r.server_cpu_per_10k),
                Column("KiB / 10k on disk", lambda r: r.kib_on_wire_per_10k, 0),
                Column("load", lambda r: r.loadavg),
            ],
            runs,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 500, 1000, 2000])
    parser.add_argument("--compression", nargs="+", default=["none"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="/tmp/bench-kafka.md")
    args = parser.parse_args()

    env = stack_up("kafka")
    if env is None:
        return 1
    log(f"building {args.events:,} events")
    events = build_events(args.events, args.seed)
    log("warm-up run")
    measure(env, events[:2000], 500, "none")
    configs = [(size, c) for c in args.compression for size in args.batch_sizes]
    runs, errors = round_robin(
        configs,
        args.repeat,
        lambda config: measure(env, events, *config),
        lambda config: f"batch {config[0]} {config[1]}",
        lambda run: (
            f"{run.events_per_s:,.0f} ev/s, client {run.client_cpu_per_10k:.2f}, broker"
            f" {run.server_cpu_per_10k:.2f} CPU-s/10k, {run.kib_on_wire_per_10k:,.0f} KiB/10k"
        ),
    )
    write_report(report(runs, args), args.out)
    return 1 if any(errors.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())

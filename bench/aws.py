#!/usr/bin/env python3
"""Throughput of the sqs and kinesis sinks, in process, against the stack's local AWS API
(``scripts/stack up aws``): moto directly by default, its SigV4-checking proxy with
``--via-proxy`` (the proxy opens a connection to moto per request, about 0.1 s per call here).

N realistic event versions (default 2,000, the generator of ``bench/kafka.py``) are built and
normalized first. Per run, a fresh queue (or a stream of 2 shards) and a sink built from its URI
as the daemon builds it (``build_sink``), opened, and fed ``sink.write(batch)`` batch after
batch: SQS SendMessageBatch calls of 10, Kinesis PutRecords of up to 500, each call signed
(SigV4) and sent over HTTP. Measured over the writes only: events/s (wall), this process's CPU
(user+sys, per 10,000 events: what the shipper spends), and separately the proxy's and moto's
(psutil on the pids in ``.stack/aws/``, minus their idle rate): those are the local server's, not
the shipper's, and on a 2-core machine they compete with it, so events/s is a floor. After the
writes the destination is read back: a run that does not find one message or record per
version, with its version id, is an error, not a number.

    .venv/bin/python bench/aws.py                       # sqs and kinesis, 3 runs, moto direct
    .venv/bin/python bench/aws.py --via-proxy           # through the SigV4-checking proxy
    .venv/bin/python bench/aws.py --events 2000 --sinks kinesis --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
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


@dataclass
class Run:
    sink: str
    events: int
    calls: int
    events_per_s: float
    client_cpu_per_10k: float
    proxy_cpu_per_10k: float
    moto_cpu_per_10k: float
    loadavg: float


def process(name: str) -> psutil.Process:
    return psutil.Process(int((ROOT / ".stack" / "aws" / f"{name}.pid").read_text().strip()))


def clients(env: dict[str, str]):
    import boto3

    url, region = env["AWS_ENDPOINT_URL"], env["AWS_REGION"]
    return {s: boto3.client(s, endpoint_url=url, region_name=region) for s in ("sqs", "kinesis")}


def prepare(sink: str, aws) -> tuple[str, str]:
    """A fresh destination: (its --sink URI, its name)."""
    name = f"bench-{uuid.uuid4().hex[:10]}"
    if sink == "sqs":
        aws["sqs"].create_queue(QueueName=name)
        return f"sqs:{name}", name
    aws["kinesis"].create_stream(StreamName=name, ShardCount=2)
    return f"kinesis:{name}", name


def read_back(sink: str, name: str, aws) -> list[str]:
    """The version ids the destination holds."""
    seen: list[str] = []
    if sink == "sqs":
        url = aws["sqs"].get_queue_url(QueueName=name)["QueueUrl"]
        while True:
            reply = aws["sqs"].receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["version_id"]
            )
            messages = reply.get("Messages", [])
            if not messages:
                return seen
            seen += [m["MessageAttributes"]["version_id"]["StringValue"] for m in messages]
            aws["sqs"].delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
    kinesis = aws["kinesis"]
    for shard in kinesis.list_shards(StreamName=name)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            reply = kinesis.get_records(ShardIterator=iterator, Limit=10000)
            if not reply["Records"]:
                break
            for record in reply["Records"]:
                event = json.loads(record["Data"])["kubernetes"]["event"]
                seen.append(f"{event['metadata']['uid']}.{event['count']}")
            iterator = reply.get("NextShardIterator")
    return seen


def cleanup(sink: str, name: str, aws) -> None:
    if sink == "sqs":
        aws["sqs"].delete_queue(QueueUrl=aws["sqs"].get_queue_url(QueueName=name)["QueueUrl"])
    else:
        aws["kinesis"].delete_stream(StreamName=name)


def measure(sink: str, aws, events: list[Event], batch: int) -> Run:
    proxy, moto = process("proxy"), process("moto")
    uri, name = prepare(sink, aws)
    built, _ = build_sink(f"{uri}?batch_size={batch}", SinkContext(cluster="bench", state_dir=None))

    def write_all() -> int:
        calls = 0
        for i in range(0, len(events), batch):
            part = events[i : i + batch]
            outcome = built.write(part)
            if outcome.rejected or outcome.retry:
                raise BenchError(f"{len(outcome.rejected)} refused, {len(outcome.retry)} to retry")
            calls += -(-len(part) // (10 if sink == "sqs" else 500))
        return calls

    try:
        built.open()
        load = os.getloadavg()[0]
        timing, calls = timed(write_all, proxy, moto)
        seen = read_back(sink, name, aws)
        expected = sorted(f"{e.uid}.{e.count}" for e in events)
        if sorted(seen) != expected:
            raise BenchError(f"{len(seen)} read back for {len(events)} versions")
        per_10k = 10_000 / len(events)
        return Run(
            sink=sink,
            events=len(events),
            calls=calls,
            events_per_s=len(events) / timing.wall,
            client_cpu_per_10k=timing.client * per_10k,
            proxy_cpu_per_10k=timing.servers[0] * per_10k,
            moto_cpu_per_10k=timing.servers[1] * per_10k,
            loadavg=load,
        )
    finally:
        built.close()
        cleanup(sink, name, aws)


def report(runs: dict[str, list[Run]], args: argparse.Namespace) -> list[str]:
    import boto3

    return [
        *header(
            "sqs and kinesis sinks: throughput and CPU",
            f"boto3 {boto3.__version__}, the stack's moto 5.2.5"
            + (
                " behind its SigV4-checking proxy"
                if args.via_proxy
                else " directly (not through the proxy, which adds ~0.1 s per call)"
            )
            + " on 127.0.0.1 (plain HTTP).",
        ),
        f"{args.events:,} event versions (seed {args.seed}), in process: `sink.write(batch)` of"
        f" {args.batch_size} in a loop (no watch, no pipeline thread). Medians of {args.repeat}"
        " run(s), each checked (read back: one message or record per version, with its version"
        " id). CPU-s per 10,000 events: the shipper's own (client), and the local server's"
        " separately (proxy, moto; minus their idle rates), which on this machine competes with"
        " the client for the same cores.",
        "",
        *table(
            [("sink", "---")],
            [
                Column("API calls / 10k", lambda r: r.calls * 10_000 // r.events, 0),
                Column("events/s", lambda r: r.events_per_s, 0),
                Column("client CPU-s / 10k", lambda r: r.client_cpu_per_10k),
                Column("proxy CPU-s / 10k", lambda r: r.proxy_cpu_per_10k),
                Column("moto CPU-s / 10k", lambda r: r.moto_cpu_per_10k),
                Column("load", lambda r: r.loadavg),
            ],
            runs,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2_000)
    parser.add_argument(
        "--via-proxy",
        action="store_true",
        help="through the SigV4-checking proxy (AWS_ENDPOINT_URL) instead of moto directly",
    )
    sinks = ("sqs", "kinesis")
    parser.add_argument("--sinks", nargs="+", choices=sinks, default=list(sinks))
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="/tmp/bench-aws.md")
    args = parser.parse_args()

    env = stack_up("aws")
    if env is None:
        return 1
    if not args.via_proxy:  # the proxy opens a connection to moto per request: ~0.1 s each
        moto = json.loads((ROOT / ".stack" / "aws" / "settings.json").read_text())["moto_port"]
        env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{moto}"
    for key in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ[key] = env[key]
    aws = clients(env)
    log(f"building {args.events:,} events")
    events = build_events(args.events, args.seed)
    log("warm-up run")
    for sink in args.sinks:
        measure(sink, aws, events[:500], args.batch_size)
    runs, errors = round_robin(
        args.sinks,
        args.repeat,
        lambda sink: measure(sink, aws, events, args.batch_size),
        str,
        lambda run: (
            f"{run.events_per_s:,.0f} ev/s, client {run.client_cpu_per_10k:.2f}, proxy"
            f" {run.proxy_cpu_per_10k:.2f}, moto {run.moto_cpu_per_10k:.2f} CPU-s/10k"
        ),
    )
    write_report(report(runs, args), args.out)
    return 1 if any(errors.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())

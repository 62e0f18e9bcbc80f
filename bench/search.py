#!/usr/bin/env python3
"""Bulk throughput of the Elasticsearch and OpenSearch sinks, in process, against real servers.

The servers come from ``scripts/stack`` (127.0.0.1 only): OpenSearch 2.x, Elasticsearch 7.17
and, when it starts, Elasticsearch 8.x. N realistic events (default 20,000) are built and
normalized first; then, per run, a sink is built from a URI exactly as the daemon builds it
(``build_sink``), opened (templates installed), and fed ``sink.write(batch)`` batch after
batch. Measured over the writes only: events/s (wall), this process's CPU (user+sys) and the
server's JVM CPU (psutil on the pid in ``.stack/<component>/*.pid``), per 10,000 events. After
the writes, a refresh and ``_count``: a run whose count is not exactly N is an error, not a
number. Every run gets a fresh index (``bench-<random>``); everything is deleted at the end.

    .venv/bin/python bench/search.py                       # the full sweep, 3 runs each
    .venv/bin/python bench/search.py --repeat 1 --configs 1000 --servers opensearch
    .venv/bin/python bench/search.py --profile /tmp/prof   # + cProfile of batch 1000
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import pstats
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
# bench/ off sys.path: its scripts' names (kafka, syslog, profile...) would shadow modules.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    cpu_seconds,
    log,
    quiesce,
    read_env,
    round_robin,
    server_process,
)
from shipper.event import Event, normalize  # noqa: E402
from shipper.pipeline import SinkSettings  # noqa: E402
from shipper.sinks.base import SinkContext  # noqa: E402
from shipper.sinks.factory import build_sink  # noqa: E402
from shipper.sinks.search import SETTINGS, ElasticsearchSink  # noqa: E402
from shipper.sinks.search import component as template_component  # noqa: E402

if TYPE_CHECKING:
    import cProfile  # imported where used: with bench/ on sys.path it would find bench/profile.py

STACK = ROOT / "scripts" / "stack"
MIB = 1024 * 1024
# component -> (the .stack/env variable with its URL, the sink scheme that matches it)
SERVERS = {
    "opensearch": ("OPENSEARCH_URL", "opensearch"),
    "elasticsearch": ("ELASTICSEARCH_URL", "elasticsearch"),
    "elasticsearch8": ("ELASTICSEARCH8_URL", "elasticsearch"),
}
OPTIONAL = ("elasticsearch8",)  # left out (and said so) when it does not start
# The stack's embedded Elasticsearch 8 lacks the data-streams module (not on Maven Central): it
# auto-creates data streams, but cannot delete them (its GET /_data_stream is a read-only stand
# in). The benchmark leaves nothing behind, so there it writes dated indices.
MODES = {"elasticsearch8": "dated"}
CLEANUP_ATTEMPTS = 10
QUIET_CPU = 0.10  # a search node below 10% of a core is idle (merges and refreshes done)


# -- the stack


def stack_up(components: list[str]) -> tuple[list[str], dict[str, str]]:
    """``scripts/stack up`` each component; the optional ones may fail (returned as missing)."""
    missing = []
    for component in components:
        proc = subprocess.run(
            [sys.executable, str(STACK), "up", component], cwd=ROOT, capture_output=True, text=True
        )
        if proc.returncode != 0:
            if component not in OPTIONAL:
                sys.stderr.write(proc.stderr[-4000:])
                raise SystemExit(f"scripts/stack up {component} failed ({proc.returncode})")
            log(f"scripts/stack up {component} failed ({proc.returncode}): left out")
            missing.append(component)
    return missing, read_env()


# -- realistic events

NAMESPACES = (
    "default",
    "kube-system",
    "shop",
    "shop-staging",
    "payments",
    "monitoring",
    "ingress-nginx",
    "cert-manager",
    "data",
    "ml-training",
    "team-a",
    "team-b",
)
API_VERSIONS = {
    "Pod": "v1",
    "ReplicaSet": "apps/v1",
    "Deployment": "apps/v1",
    "Node": "v1",
    "Job": "batch/v1",
    "PersistentVolumeClaim": "v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
}
# (kind, type, reason, reporting component, message template)
TEMPLATES = (
    (
        "Pod",
        "Normal",
        "Scheduled",
        "default-scheduler",
        "Successfully assigned {ns}/{name} to {node}",
    ),
    ("Pod", "Normal", "Pulling", "kubelet", 'Pulling image "{image}"'),
    (
        "Pod",
        "Normal",
        "Pulled",
        "kubelet",
        'Successfully pulled image "{image}" in 1.84s'
        " (1.84s including waiting). Image size: 48213556 bytes.",
    ),
    ("Pod", "Normal", "Created", "kubelet", "Created container: app"),
    ("Pod", "Normal", "Started", "kubelet", "Started container app"),
    ("Pod", "Normal", "Killing", "kubelet", "Stopping container app"),
    (
        "Pod",
        "Warning",
        "BackOff",
        "kubelet",
        "Back-off restarting failed container app in pod {name}_{ns}({uid})",
    ),
    (
        "Pod",
        "Warning",
        "Unhealthy",
        "kubelet",
        "Readiness probe failed: HTTP probe failed with statuscode: 503",
    ),
    (
        "Pod",
        "Warning",
        "FailedMount",
        "kubelet",
        'MountVolume.SetUp failed for volume "config" : configmap "{name}-config" not found',
    ),
    (
        "Pod",
        "Warning",
        "FailedScheduling",
        "default-scheduler",
        "0/20 nodes are available: 3 Insufficient memory, 17 node(s) didn't match pod"
        " anti-affinity rules. preemption: 0/20 nodes are available.",
    ),
    (
        "ReplicaSet",
        "Normal",
        "SuccessfulCreate",
        "replicaset-controller",
        "Created pod: {name}-x7k2p",
    ),
    (
        "ReplicaSet",
        "Normal",
        "SuccessfulDelete",
        "replicaset-controller",
        "Deleted pod: {name}-q9w4z",
    ),
    (
        "ReplicaSet",
        "Warning",
        "FailedCreate",
        "replicaset-controller",
        'Error creating: pods "{name}-" is forbidden: exceeded quota: compute, requested:'
        " cpu=500m, used: cpu=3800m, limited: cpu=4",
    ),
    (
        "Deployment",
        "Normal",
        "ScalingReplicaSet",
        "deployment-controller",
        "Scaled up replica set {name}-7c9f6b5d8 from 2 to 3",
    ),
    (
        "Deployment",
        "Normal",
        "ScalingReplicaSet",
        "deployment-controller",
        "Scaled down replica set {name}-5d8c7f9b6 from 1 to 0",
    ),
    ("Node", "Normal", "NodeReady", "kubelet", "Node {node} status is now: NodeReady"),
    (
        "Node",
        "Warning",
        "NodeNotReady",
        "node-controller",
        "Node {node} status is now: NodeNotReady",
    ),
    (
        "Node",
        "Warning",
        "EvictionThresholdMet",
        "kubelet",
        "Attempting to reclaim ephemeral-storage",
    ),
    ("Job", "Normal", "SuccessfulCreate", "job-controller", "Created pod: {name}-4vbnm"),
    ("Job", "Normal", "Completed", "job-controller", "Job completed"),
    (
        "Job",
        "Warning",
        "BackoffLimitExceeded",
        "job-controller",
        "Job has reached the specified backoff limit",
    ),
    (
        "PersistentVolumeClaim",
        "Normal",
        "ProvisioningSucceeded",
        "ebs.csi.aws.com",
        "Successfully provisioned volume pvc-{uid}",
    ),
    (
        "PersistentVolumeClaim",
        "Warning",
        "ProvisioningFailed",
        "persistentvolume-controller",
        'storageclass.storage.k8s.io "fast" not found',
    ),
    (
        "HorizontalPodAutoscaler",
        "Normal",
        "SuccessfulRescale",
        "horizontal-pod-autoscaler",
        "New size: 5; reason: cpu resource utilization (percentage of request) above target",
    ),
    (
        "HorizontalPodAutoscaler",
        "Warning",
        "FailedGetResourceMetric",
        "horizontal-pod-autoscaler",
        "failed to get cpu utilization: unable to get metrics for resource cpu: no metrics"
        " returned from resource metrics API",
    ),
)
KINDS = {kind: [t[1:] for t in TEMPLATES if t[0] == kind] for kind in API_VERSIONS}
KIND_WEIGHTS = {
    "Pod": 60,
    "ReplicaSet": 12,
    "Deployment": 8,
    "Node": 6,
    "Job": 6,
    "PersistentVolumeClaim": 4,
    "HorizontalPodAutoscaler": 4,
}
ASCII_DETAIL = (
    " body: upstream connect error or disconnect/reset before headers. reset reason: connection"
    " failure, transport failure reason: delayed connect error: 111; retries=3 backoff=1.6s"
    " path=/healthz/ready host=10.42.7.19:8080 trace=7f3a9c2e41d04b8e9a0c5d6e7f8a9b0c"
    " caller=probe.go:212 level=error component=readiness ts=2026-11-22T07:03:11.482Z"
)
UNICODE_DETAIL = (
    ' body: {"status":"dégradé","checks":[{"name":"база данных","ok":false,"detail":"接続がタイム'
    'アウトしました ⏱ after 5000ms"},{"name":"队列","ok":false,"detail":"消费者延迟 12.4s ⚠"},'
    '{"name":"Ελληνικά","ok":true}],"hint":"Überprüfen Sie die Verbindung → status ✓",'
    '"zone":"Zürich-β","message":"服务暂时不可用 请稍后重试","région":"eu-west-1"}'
)
UNICODE_SHARE = 0.2
UPDATED_SHARE = 0.1  # events that also appear as count updates (each version is a document)


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_message(rng: random.Random, base: str) -> str:
    """50-400 characters: the reason's message, lengthened with probe output (20% of the
    filler is multilingual) or cut to the drawn length."""
    length = rng.randint(50, 400)
    filler = UNICODE_DETAIL if rng.random() < UNICODE_SHARE else ASCII_DETAIL
    text = base
    while len(text) < length:
        text += filler
    return text[:length]


def raw_events(n: int, seed: int, now: datetime) -> list[dict[str, Any]]:
    """``n`` core/v1 Event versions: distinct events, plus count updates (the same uid, a higher
    count and resourceVersion, a later lastTimestamp) for ~10% of them."""
    rng = random.Random(seed)
    kinds = list(KIND_WEIGHTS)
    weights = [KIND_WEIGHTS[k] for k in kinds]
    out: list[dict[str, Any]] = []
    rv = 1_000_000
    index = 0
    while len(out) < n:
        index += 1
        kind = rng.choices(kinds, weights)[0]
        api_version = API_VERSIONS[kind]
        type_, reason, component, template = rng.choice(KINDS[kind])
        ns = rng.choice(NAMESPACES)
        node = f"ip-10-0-{rng.randrange(8)}-{rng.randrange(250)}.eu-west-1.compute.internal"
        name = (
            node
            if kind == "Node"
            else f"{rng.choice(('web', 'api', 'worker', 'db'))}-{rng.randrange(400):03d}"
        )
        uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        obj_uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        base = template.format(
            ns=ns,
            name=name,
            node=node,
            uid=obj_uid,
            image=f"registry.example.com/shop/{name.split('-')[0]}:1.{rng.randrange(40)}.{rng.randrange(10)}",
        )
        message = make_message(rng, base)
        first = now - timedelta(seconds=rng.randrange(60, 3600))
        versions = rng.randint(2, 6) if rng.random() < UPDATED_SHARE else 1
        count = 1 if versions > 1 or type_ == "Normal" else rng.randint(2, 20)
        for version in range(versions):
            if len(out) >= n:
                break
            rv += 1
            last = first + timedelta(seconds=30 * (count - 1))
            out.append(
                {
                    "metadata": {
                        "name": f"{name}.{index:016x}",
                        "namespace": "default" if kind == "Node" else ns,
                        "uid": uid,
                        "resourceVersion": str(rv),
                        "creationTimestamp": rfc3339(first),
                    },
                    "involvedObject": {
                        "kind": kind,
                        "name": name,
                        **({} if kind == "Node" else {"namespace": ns}),
                        "uid": obj_uid,
                        "apiVersion": api_version,
                        "resourceVersion": str(rng.randrange(10**7)),
                        **({"fieldPath": "spec.containers{app}"} if kind == "Pod" else {}),
                    },
                    "reason": reason,
                    "message": message,
                    "type": type_,
                    "count": count,
                    "firstTimestamp": rfc3339(first),
                    "lastTimestamp": rfc3339(last),
                    "source": {
                        "component": component,
                        **({"host": node} if kind != "Node" else {}),
                    },
                    "reportingComponent": component,
                    "reportingInstance": node,
                }
            )
            count += rng.randint(1, 3) if version < versions - 1 else 0
    return out


def build_events(n: int, seed: int) -> list[Event]:
    now = datetime.now(UTC)
    return [normalize(raw, "ADDED", cluster="bench") for raw in raw_events(n, seed, now)]


# -- one run


@dataclass(frozen=True)
class Target:
    component: str
    mode: str  # auto or dated (what the URI says)
    scheme: str
    url: str
    extra: bool = False  # the extra mode=dated target on OpenSearch: its own configs

    @property
    def label(self) -> str:
        return f"{self.component} mode={self.mode}"


@dataclass(frozen=True)
class Config:
    batch_size: int
    workers: int = 1
    codec: str | None = None  # an experiment: index.codec other than the sink's own

    @property
    def label(self) -> str:
        return (
            f"{self.batch_size}"
            + (f" x{self.workers}" if self.workers > 1 else "")
            + (f" codec={self.codec}" if self.codec else "")
        )

    @staticmethod
    def parse(text: str) -> Config:
        """``B``, ``BxW`` (W bulkWorkers), optionally ``@CODEC`` (index.codec, e.g. default)."""
        text, _, codec = text.strip().partition("@")
        size, _, workers = text.partition("x")
        return Config(int(size), int(workers or 1), codec or None)


@dataclass
class Run:
    server: str  # component
    server_name: str  # what GET / said
    mode: str  # resolved: data_stream or dated
    scheme: str
    batch_size: int
    workers: int
    index: str
    events: int
    bulk_requests: int
    body_mib: float  # the NDJSON bodies, all batches
    write_s: float  # first write() called -> last write() returned
    events_per_s: float
    client_cpu_s: float
    client_cpu_s_per_10k: float
    serialize_cpu_s_per_10k: float  # bulk_body() alone, measured separately
    server_cpu_s_raw: float
    server_idle_rate: float  # cores, just before the run
    server_cpu_s_per_10k: float  # raw minus the idle rate over the write time
    codec: str
    refresh_s: float
    server_refresh_cpu_s: float
    count: int
    loadavg: float  # 1-minute load average when the run started


class BenchError(Exception):
    """The run cannot give a number (wrong count, rejected documents, a failed request)."""


def sink_uri(target: Target, config: Config, index: str) -> str:
    return (
        f"{target.scheme}:{target.url}?index={index}&mode={target.mode}"
        f"&batch_size={config.batch_size}&bulkWorkers={config.workers}"
    )


def batches(events: list[Event], size: int) -> list[list[Event]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


def search_pattern(sink: ElasticsearchSink) -> str:
    """Where the run's documents are: the data stream, or the dated indices."""
    return sink.index if sink.mode == "data_stream" else f"{sink.index}-2*"


def create_targets(sink: ElasticsearchSink, events: list[Event]) -> None:
    """Create the data stream or the day indices before the clock starts: that happens once a
    day (or per rollover) in production, not once per 20k events. Done by the sink itself: one
    event per target is written now, and again (a 409, "already there") in the timed run."""
    first: dict[str, Event] = {}
    for event in events:
        first.setdefault(sink.target(event), event)
    rejected = sink.write(list(first.values()))
    if rejected:
        raise BenchError(f"creating the targets: {rejected[0].reason}")


def cleanup(sink: ElasticsearchSink) -> None:
    """Delete the run's data stream or indices, its templates and its lifecycle policy. Every
    step is tried; the first failure is raised at the end."""
    assert sink.http is not None and sink.server is not None
    index = sink.index
    steps: list[tuple[str, str]] = []
    if sink.mode == "data_stream":
        steps.append(("DELETE", f"_data_stream/{index}"))
    else:  # by name: wildcard deletes are refused where action.destructive_requires_name is on
        reply = sink.call("GET", f"_cat/indices/{index}-2*?format=json&h=index", ok=(404,))
        steps += [("DELETE", row["index"]) for row in reply if isinstance(reply, list)]
    steps.append(("DELETE", f"_index_template/{index}"))
    steps += [
        ("DELETE", f"_component_template/{index}-{part}") for part in ("settings", "mappings")
    ]
    if sink.server.lifecycle == "ilm":
        steps.append(("DELETE", f"_ilm/policy/{index}"))
    elif sink.server.lifecycle == "ism":
        steps.append(("DELETE", f"_plugins/_ism/policies/{index}"))
    failed: list[str] = []
    for method, path in steps:
        try:
            sink.call(method, path, ok=(404,))
        except Exception as exc:
            failed.append(str(exc))
    if failed:
        raise BenchError("; ".join(failed))


def serialize_cpu(sink: ElasticsearchSink, chunks: list[list[Event]]) -> tuple[float, int]:
    """CPU-seconds to build every bulk body (document(), orjson, join), the better of two
    passes, and the bodies' bytes."""
    best, size = float("inf"), 0
    for _ in range(2):
        started = time.process_time()
        size = sum(len(sink.bulk_body(chunk)) for chunk in chunks)
        best = min(best, time.process_time() - started)
    return best, size


@contextmanager
def opened(
    target: Target, config: Config, keep: bool
) -> Iterator[tuple[ElasticsearchSink, SinkSettings]]:
    """A sink built from its URI as the daemon builds it, opened (setup done) on a fresh index;
    the index, templates and policy are deleted afterwards unless ``keep``."""
    index = f"bench-{uuid.uuid4().hex[:10]}"
    sink, settings = build_sink(
        sink_uri(target, config, index), SinkContext(cluster="", state_dir=None)
    )
    assert isinstance(sink, ElasticsearchSink)
    try:
        sink.open()
        yield sink, settings
    finally:
        if sink.http is not None and sink.server is not None and not keep:
            for attempt in range(CLEANUP_ATTEMPTS):  # a busy server may answer 429 for a while
                try:
                    cleanup(sink)
                    break
                except Exception as exc:
                    if attempt == CLEANUP_ATTEMPTS - 1:  # report, go on: runs have own indices
                        log(f"cleanup of {index} failed, delete it by hand: {exc}")
                    time.sleep(2.0)
        sink.close()


def write_all(sink: ElasticsearchSink, chunks: list[list[Event]]) -> None:
    for chunk in chunks:
        rejected = sink.write(chunk)
        if rejected:
            raise BenchError(f"{len(rejected)} rejected, first: {rejected[0].reason}")


def measure(
    target: Target,
    config: Config,
    events: list[Event],
    keep: bool = False,
    profile: cProfile.Profile | None = None,
) -> Run:
    server = server_process(target.component)
    me = psutil.Process()
    with opened(target, config, keep) as (sink, settings):
        assert sink.server is not None
        if config.codec:  # before the targets exist: the template applies when they are made
            index_settings = {**SETTINGS["index"], "codec": config.codec}
            sink.call(
                "PUT",
                f"_component_template/{sink.index}-settings",
                template_component(settings={"index": index_settings}),
            )
        chunks = batches(events, settings.batch_size)
        serialize_s, body_bytes = serialize_cpu(sink, chunks)
        create_targets(sink, events)
        idle = quiesce(server, timeout=20.0, quiet=QUIET_CPU)
        load = os.getloadavg()[0]
        gc.collect()
        wall0, client0, server0 = time.perf_counter(), cpu_seconds(me), cpu_seconds(server)
        if profile is not None:
            profile.enable()
        try:
            write_all(sink, chunks)
        finally:
            if profile is not None:
                profile.disable()
        wall1, client1, server1 = time.perf_counter(), cpu_seconds(me), cpu_seconds(server)
        pattern = search_pattern(sink)
        sink.call("POST", f"{pattern}/_refresh")
        wall2, server2 = time.perf_counter(), cpu_seconds(server)
        count = int(sink.call("GET", f"{pattern}/_count")["count"])
        write_s = wall1 - wall0
        per_10k = 10_000 / len(events)
        server_raw = server1 - server0
        run = Run(
            server=target.component,
            server_name=sink.server.name,
            mode=sink.mode,
            scheme=target.scheme,
            batch_size=settings.batch_size,
            workers=config.workers,
            index=sink.index,
            events=len(events),
            bulk_requests=sum(
                config.workers if len(c) >= 2 * config.workers else 1 for c in chunks
            ),
            body_mib=body_bytes / MIB,
            write_s=write_s,
            events_per_s=len(events) / write_s,
            client_cpu_s=client1 - client0,
            client_cpu_s_per_10k=(client1 - client0) * per_10k,
            serialize_cpu_s_per_10k=serialize_s * per_10k,
            server_cpu_s_raw=server_raw,
            server_idle_rate=idle,
            server_cpu_s_per_10k=max(0.0, server_raw - idle * write_s) * per_10k,
            refresh_s=wall2 - wall1,
            server_refresh_cpu_s=server2 - server1,
            count=count,
            loadavg=load,
            codec=config.codec or SETTINGS["index"]["codec"],
        )
        if count != len(events):
            raise BenchError(f"{pattern} holds {count} documents, expected {len(events)}")
    return run


# -- the sweep


def plan(
    targets: list[Target], configs: list[Config], dated: list[Config]
) -> list[tuple[Target, Config]]:
    todo = []
    for target in targets:
        for config in dated if target.extra else configs:
            todo.append((target, config))
    return todo


Results = tuple[dict[tuple[Target, Config], list[Run]], dict[tuple[Target, Config], list[str]]]


def sweep(
    todo: list[tuple[Target, Config]], events: list[Event], repeat: int, keep: bool
) -> Results:
    """Every (target, config) ``repeat`` times, round-robin, so drift hits them all alike: the
    runs of each, and why each failed run failed."""
    return round_robin(
        todo,
        repeat,
        lambda key: measure(key[0], key[1], events, keep),
        lambda key: f"{key[0].label} batch {key[1].label}",
        lambda run: (
            f"{run.events_per_s:.0f} ev/s, client {run.client_cpu_s_per_10k:.2f},"
            f" server {run.server_cpu_s_per_10k:.2f} CPU-s/10k (load {os.getloadavg()[0]:.2f})"
        ),
    )


def warm_up(targets: list[Target], events: list[Event], keep: bool) -> None:
    """One unmeasured run per server, so the JIT and the caches are warm for the first round."""
    seen = set()
    for target in targets:
        if target.component in seen:
            continue
        seen.add(target.component)
        try:
            measure(target, Config(1000), events, keep)
        except Exception as exc:
            log(f"warm-up {target.component}: ERROR {type(exc).__name__}: {exc}")


def span(values: list[float], digits: int) -> str:
    if not values:
        return "-"
    med = f"{statistics.median(values):.{digits}f}"
    if len(values) == 1:
        return med
    return f"{med} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def table(results: Results) -> str:
    header = (
        "server",
        "mode",
        "batch",
        "runs",
        "events/s",
        "client CPU-s/10k",
        "of which bulk body",
        "server CPU-s/10k",
        "MiB/10k",
        "ok",
    )
    rows = [header]
    done, failed = results
    for (target, config), runs in done.items():
        errors = failed[(target, config)]

        def values(key: str, runs: list[Run] = runs) -> list[float]:
            return [getattr(run, key) for run in runs]

        rows.append(
            (
                runs[0].server_name if runs else target.component,
                runs[0].mode if runs else target.mode,
                config.label,
                str(len(runs)),
                span(values("events_per_s"), 0),
                span(values("client_cpu_s_per_10k"), 2),
                span(values("serialize_cpu_s_per_10k"), 2),
                span(values("server_cpu_s_per_10k"), 2),
                f"{statistics.median(r.body_mib * 10_000 / r.events for r in runs):.1f}"
                if runs
                else "-",
                "yes" if not errors else f"NO: {len(errors)} failed: {errors[0][:120]}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def profile_run(target: Target, events: list[Event], out: Path, top: int, keep: bool) -> str:
    """cProfile of the client side of one batch-1000 run (the writes only), timed in this
    process's CPU time: waiting for the server does not count, only what the client does."""
    import cProfile

    profile = cProfile.Profile(time.process_time)
    measure(target, Config(1000), events, keep, profile)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{target.component}-{target.mode}-1000.prof"
    profile.dump_stats(str(path))
    text = io.StringIO()
    stats = pstats.Stats(profile, stream=text).strip_dirs()
    text.write(f"== {target.label}, batch 1000: {path}\n")
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return text.getvalue()


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "shipper_commit": commit,
        "loadavg": os.getloadavg(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="example: .venv/bin/python bench/search.py --repeat 3 --json /tmp/search.json",
    )
    parser.add_argument("--events", type=int, default=20_000, help="events per run (20000)")
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help="stack components (default: %(default)s; elasticsearch8 is left out if it does"
        " not start)",
    )
    parser.add_argument(
        "--configs",
        default="100,500,1000,5000,1000x2",
        help="batch sizes, BxW for W bulkWorkers, B@CODEC to try another index.codec"
        " (default: %(default)s)",
    )
    parser.add_argument(
        "--dated",
        default="1000",
        help="configs of the extra mode=dated target on OpenSearch; empty: none (%(default)s)",
    )
    parser.add_argument(
        "--client",
        choices=("matching", "opensearch", "elasticsearch"),
        default="matching",
        help="sink scheme: matching = opensearch: for OpenSearch, elasticsearch: for"
        " Elasticsearch (default)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration (3)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the events")
    parser.add_argument("--no-warm-up", action="store_true", help="skip the unmeasured runs")
    parser.add_argument("--json", metavar="PATH", help="also write the results here as JSON")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="afterwards, cProfile the client side of a batch-1000 run per server into DIR",
    )
    parser.add_argument(
        "--profile-only", action="store_true", help="with --profile: no sweep, just the profiles"
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench indices")
    args = parser.parse_args(argv)
    if min(args.events, args.repeat) < 1:
        parser.error("--events and --repeat must be at least 1")
    if args.profile_only and not args.profile:
        parser.error("--profile-only needs --profile DIR")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    components = [c.strip() for c in args.servers.split(",") if c.strip()]
    unknown = set(components) - set(SERVERS)
    if unknown:
        raise SystemExit(f"unknown servers: {', '.join(sorted(unknown))}")
    missing, env = stack_up(components)
    targets = []
    for component in components:
        if component in missing:
            continue
        variable, scheme = SERVERS[component]
        url = env[variable]
        if not url.startswith("http://127.0.0.1:"):
            raise SystemExit(f"refusing to benchmark against {url}: not 127.0.0.1")
        if args.client != "matching":
            scheme = args.client
        targets.append(Target(component, MODES.get(component, "auto"), scheme, url))
        if component == "opensearch" and args.dated.strip():  # the extra dated run
            targets.append(Target(component, "dated", scheme, url, extra=True))
    configs = [Config.parse(text) for text in args.configs.split(",") if text.strip()]
    dated = [Config.parse(text) for text in args.dated.split(",") if text.strip()]
    log(f"building {args.events} events")
    started = time.process_time()
    events = build_events(args.events, args.seed)
    log(
        f"built and normalized in {time.process_time() - started:.2f} CPU-s;"
        f" load average {os.getloadavg()[0]:.2f}"
    )
    report: dict[str, Any] = {"machine": machine(), "config": vars(args), "missing": missing}
    status = 0
    if not args.profile_only:
        if not args.no_warm_up:
            warm_up(targets, events, args.keep)
        results = sweep(plan(targets, configs, dated), events, args.repeat, args.keep)
        print(table(results))
        if missing:
            print(f"left out (scripts/stack up failed): {', '.join(missing)}")
        done, failed = results
        report["runs"] = [
            {"target": asdict(t), "config": asdict(c), "outcome": outcome}
            for (t, c), runs in done.items()
            for outcome in [*(asdict(run) for run in runs), *failed[(t, c)]]
        ]
        status = 1 if any(failed.values()) else 0
    if args.profile:
        for target in targets:
            if not target.extra:
                print(profile_run(target, events, Path(args.profile), 25, args.keep))
    report["loadavg_end"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())

"""What the store benchmarks share: the stack's environment and server processes, CPU
accounting, and one generator of realistic events (bench/mysql.py, bench/influxdb.py and
bench/kafka.py run on the same events for a seed, so their numbers compare).

The scripts run as ``python bench/NAME.py``, which puts this folder on ``sys.path``.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shipper.event import Event, normalize  # noqa: E402

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


def stack_up(component: str) -> dict[str, str] | None:
    """``scripts/stack up COMPONENT``; the stack's environment, or None (its error on stderr)."""
    up = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "stack"), "up", component],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if up.returncode != 0:
        sys.stderr.write(up.stderr[-4000:])
        return None
    return read_env()


def server_process(component: str) -> psutil.Process:
    """The process of a running stack component (its first pid file)."""
    pidfiles = sorted((ROOT / ".stack" / component).glob("*.pid"))
    if not pidfiles:
        raise SystemExit(f"no .stack/{component}/*.pid: is {component} running?")
    return psutil.Process(int(pidfiles[0].read_text().strip()))


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def quiesce(
    server: psutil.Process, timeout: float = 30.0, window: float = 0.5, quiet: float = QUIET_CPU
) -> float:
    """Wait until the server is idle; return its CPU rate (cores) in the last window."""
    deadline = time.monotonic() + timeout
    while True:
        before, start = cpu_seconds(server), time.monotonic()
        time.sleep(window)
        rate = (cpu_seconds(server) - before) / (time.monotonic() - start)
        if rate < quiet or time.monotonic() > deadline:
            return rate


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


def raw_events(n: int, seed: int, *, whole_seconds: bool = False) -> list[dict[str, Any]]:
    """``n`` core/v1 Event versions of the last hour (about 10% of events come with 2-6 count
    updates), deterministic for a seed. ``whole_seconds``: times without a fraction, as the
    API server writes core/v1 ``lastTimestamp``."""
    rng = random.Random(seed)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    stamp = "%Y-%m-%dT%H:%M:%SZ" if whole_seconds else "%Y-%m-%dT%H:%M:%S.%fZ"
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
        micros = rng.randrange(10**6)  # drawn either way: one seed, the same events
        first = start + timedelta(seconds=rng.randrange(3600), microseconds=micros)
        if whole_seconds:
            first = first.replace(microsecond=0)
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
                "firstTimestamp": first.strftime(stamp),
                "lastTimestamp": last.strftime(stamp),
                "source": {"component": component, **({"host": node} if kind != "Node" else {})},
            })  # fmt: skip
            count += rng.randint(1, 3)
    return out


def build_events(n: int, seed: int, *, whole_seconds: bool = False) -> list[Event]:
    return [
        normalize(raw, "ADDED", cluster="bench")
        for raw in raw_events(n, seed, whole_seconds=whole_seconds)
    ]


# -- reporting


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"

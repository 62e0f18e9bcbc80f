"""What the store benchmarks share: the stack's environment and server processes, CPU
accounting (:func:`timed`), one generator of realistic events (bench/mysql.py, bench/influxdb.py,
bench/kafka.py and the others run on the same events for a seed, so their numbers compare), the
round-robin run loop (:func:`round_robin`) and the report (:func:`header`, :func:`table`,
:func:`write_report`).

The scripts run as ``python bench/NAME.py``, which puts this folder first on ``sys.path``; each
takes it off again (bench/kafka.py would shadow the ``kafka`` package, bench/syslog.py and
bench/profile.py the standard ``syslog`` and ``profile`` modules) and imports ``bench.common``
from the repository's root.
"""

from __future__ import annotations

import gc
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shipper.event import Event, normalize  # noqa: E402

QUIET_CPU = 0.05  # a server below 5% of a core is taken as idle

K = TypeVar("K")
R = TypeVar("R")
T = TypeVar("T")


class BenchError(Exception):
    """The run gives no number: the sink refused events, or the store does not hold exactly
    what was written."""


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


@dataclass(frozen=True)
class Timing:
    """What :func:`timed` measured: seconds, this process's CPU-seconds (every thread), and each
    server's CPU-seconds minus its idle rate, during the writes and (``settle=True``) until it
    was idle again (background work: flushing, compaction)."""

    wall: float
    client: float
    servers: tuple[float, ...]
    settled: tuple[float, ...] = ()

    @property
    def server(self) -> float:
        return self.servers[0]


def timed(
    write: Callable[[], T], *servers: psutil.Process, settle: bool = False
) -> tuple[Timing, T]:
    """``write()`` timed: each server first waits until idle (its idle rate is taken out of its
    CPU), the garbage collector runs before; ``write()``'s result comes back with the timing."""
    idle = [quiesce(server) for server in servers]
    gc.collect()
    wall0, client0 = time.perf_counter(), time.process_time()
    before = [cpu_seconds(server) for server in servers]
    result = write()
    wall1, client1 = time.perf_counter(), time.process_time()
    during = tuple(
        max(0.0, cpu_seconds(s) - b - rate * (wall1 - wall0))
        for s, b, rate in zip(servers, before, idle, strict=True)
    )
    settled: tuple[float, ...] = ()
    if settle:
        for server in servers:
            quiesce(server)
        wall2 = time.perf_counter()
        settled = tuple(
            max(0.0, cpu_seconds(s) - b - rate * (wall2 - wall0))
            for s, b, rate in zip(servers, before, idle, strict=True)
        )
    return Timing(wall1 - wall0, client1 - client0, during, settled), result


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


# -- running


def round_robin(
    configs: Iterable[K],
    repeat: int,
    measure: Callable[[K], R],
    name: Callable[[K], str],
    summary: Callable[[R], str],
) -> tuple[dict[K, list[R]], dict[K, list[str]]]:
    """Every configuration ``repeat`` times, round-robin, so that drift in the machine's load
    hits them all alike. A run that raises is an error: logged, not counted. Returns the runs
    of each configuration (in the order given) and its errors (why each failed run failed)."""
    runs: dict[K, list[R]] = {config: [] for config in configs}
    errors: dict[K, list[str]] = {config: [] for config in runs}
    for round_ in range(repeat):
        for config, done in runs.items():
            where = f"{name(config)} round {round_ + 1}"
            try:
                run = measure(config)
            except Exception as exc:
                errors[config].append(f"{type(exc).__name__}: {exc}")
                log(f"{where}: ERROR {errors[config][-1]}")
                continue
            done.append(run)
            log(f"{where}: {summary(run)}")
    return runs, errors


# -- reporting


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def header(title: str, setup: str) -> list[str]:
    """A report's title, and the line saying how it was made: the command as typed, the
    machine, Python and ``setup`` (the client library, the server and how it is reached)."""
    command = " ".join([f"bench/{Path(sys.argv[0]).name}", *sys.argv[1:]])
    return [
        f"# {title}",
        "",
        f"`.venv/bin/python {command}` on {platform.node()}: {os.cpu_count()} cores,"
        f" Python {platform.python_version()}, {setup}",
        "",
    ]


@dataclass(frozen=True)
class Column:
    """A table column: its title, and a run's value (the table shows the median of the runs)."""

    title: str
    value: Callable[[Any], float | None]
    digits: int = 2
    percent: bool = False

    def cell(self, runs: Sequence[Any]) -> str:
        value = median(self.value(run) for run in runs)
        if self.percent and value is not None:
            return f"{value:.1%}"
        return fmt(value, self.digits)


def table(
    keys: Sequence[tuple[str, str]], columns: Sequence[Column], runs: Mapping[Any, Sequence[Any]]
) -> list[str]:
    """A Markdown table, one row per configuration: its key cells (``keys``: a title and the
    column's alignment, ``---`` or ``---:``, per part of the configuration), then each column's
    median over the configuration's runs; ``error`` when none of them counted."""
    titles = [title for title, _ in keys] + [column.title for column in columns]
    lines = [
        "| " + " | ".join(titles) + " |",
        "|" + "|".join([align for _, align in keys] + ["---:"] * len(columns)) + "|",
    ]
    for config, results in runs.items():
        cells = [str(part) for part in (config if isinstance(config, tuple) else (config,))]
        if results:
            cells += [column.cell(results) for column in columns]
        else:
            cells += ["error"] + [""] * (len(columns) - 1)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_report(lines: list[str], out: str | None) -> None:
    """Print the report, and write it to ``out`` when given."""
    text = "\n".join([*lines, ""])
    print(text)
    if out:
        Path(out).write_text(text)
        log(f"written to {out}")

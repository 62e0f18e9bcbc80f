#!/usr/bin/env python3
"""End-to-end throughput of the shipper: a real kube-apiserver's Events into a sink.

Two modes, both against the local stack (``scripts/stack up kubernetes``, 127.0.0.1 only):

* ``list`` (default): pre-fill a fresh namespace with N core/v1 Events, then start
  ``python -m shipper --start=all`` scoped to it. It lists them page by page and ships them:
  the start-up / re-list path.
* ``watch``: start the shipper on the empty namespace first, then create the N events while
  it runs: the watch path. Reports the lag from the last write to the last event shipped.

The shipper runs as a user runs it, a subprocess; this script polls its ``/metrics``
(``kube_event_shipper_sink_events_total{outcome="shipped"}``) every 50 ms and samples its RSS
and CPU (user+sys) with psutil. Results: events/s, CPU-seconds per 10,000 events, peak RSS, as a
table on stdout and optionally as JSON. See bench/README.md.

    .venv/bin/python bench/throughput.py --events 10000
    .venv/bin/python bench/throughput.py --mode watch --events 10000 --json /tmp/watch.json
    .venv/bin/python bench/throughput.py --batch-size 100 --sink log
    .venv/bin/python bench/throughput.py --sink 'opensearch:http://127.0.0.1:29200?index=bench-{run}'
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psutil
from kubernetes import client, config
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
SINK_EVENTS = "kube_event_shipper_sink_events_total"
POLL_SECONDS = 0.05
STARTUP_POLL_SECONDS = 0.01  # until /metrics first answers: that is the start-up CPU baseline
MIB = 1024 * 1024
PROGRESS_EVERY = 1000


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- the stack


def stack_env() -> dict[str, str]:
    """The .stack/env values, with the kube-apiserver + etcd running. When .stack/env names an
    API server that answers /readyz, it is used as it is; otherwise ``scripts/stack up
    kubernetes`` starts it (which waits while another ``scripts/stack`` holds the stack's lock,
    e.g. an image build: reusing a ready server spares that wait)."""
    env = read_stack_env()
    if not api_ready(env):
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "stack"), "up", "kubernetes"],
            cwd=ROOT,
            check=True,
        )
        env = read_stack_env()
    return env


def read_stack_env() -> dict[str, str]:
    env: dict[str, str] = {}
    path = ROOT / ".stack" / "env"
    for line in path.read_text().splitlines() if path.exists() else ():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            env[key.strip()] = value.strip().strip("'\"")
    return env


def api_ready(env: dict[str, str]) -> bool:
    keys = ("KUBE_APISERVER_URL", "KUBE_CA_FILE", "KUBE_ADMIN_TOKEN")
    url, ca, token = (env.get(key) for key in keys)
    if not (url and ca and token and env.get("KUBECONFIG")):
        return False
    context = ssl.create_default_context(cafile=ca)
    request = urllib.request.Request(f"{url}/readyz", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as reply:
            return reply.status == 200
    except (OSError, ValueError):
        return False


def kube_configuration(kubeconfig: str) -> client.Configuration:
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    if not re.match(r"https?://127\.0\.0\.1[:/]", configuration.host):
        raise SystemExit(f"refusing to benchmark against {configuration.host}: not 127.0.0.1")
    return configuration


def create_namespace(configuration: client.Configuration) -> str:
    """A fresh namespace (they cannot be deleted in this stack: no controller-manager)."""
    name = f"bench-{uuid.uuid4().hex[:10]}"
    with client.ApiClient(configuration) as api:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    return name


# -- realistic Events about Pods

NORMAL = (
    ("Scheduled", "default-scheduler", "Successfully assigned {ns}/{pod} to {node}"),
    ("Pulling", "kubelet", 'Pulling image "{image}"'),
    (
        "Pulled",
        "kubelet",
        'Successfully pulled image "{image}" in 1.84s (1.84s including'
        " waiting). Image size: 48213556 bytes.",
    ),
    ("Created", "kubelet", "Created container: {container}"),
    ("Started", "kubelet", "Started container {container}"),
    ("Killing", "kubelet", "Stopping container {container}"),
)
WARNING = (
    ("BackOff", "kubelet", "Back-off restarting failed container {container} in pod {pod}_{ns}"),
    ("Unhealthy", "kubelet", "Readiness probe failed: HTTP probe failed with statuscode: 503"),
    (
        "FailedMount",
        "kubelet",
        'MountVolume.SetUp failed for volume "config" : configmap "{pod}-config" not found',
    ),
    ("Failed", "kubelet", 'Failed to pull image "{image}": rpc error: code = NotFound'),
)
# Several hundred bytes of multilingual text, as application output in probe bodies often is.
DETAIL = (
    '{"status":"dégradé","checks":[{"name":"база данных","ok":false,'
    '"detail":"接続がタイムアウトしました ⏱ after 5000ms"},{"name":"caché","ok":true},'
    '{"name":"队列","ok":false,"detail":"消费者延迟 12.4s ⚠"},{"name":"Ελληνικά","ok":true}],'
    '"hint":"Überprüfen Sie die Verbindung → https://status.example.com/ ✓",'
    '"trace":["at db.pool.acquire (pool.go:212)","at http.handler.ready (ready.go:48)",'
    '"at server.mux (mux.go:97)"],"région":"eu-west-1","zone":"Zürich-β","версия":"1.14.2",'
    '"requestId":"5f0c2a9e-1b7d-4e3f-9a61-0d2c8b4f7e15","message":"服务暂时不可用 请稍后重试"}'
)
LONG_SHARE = 0.15
WARNING_SHARE = 0.10
PODS = 200


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class EventSpec:
    """What was written for one Event, so updates and the final check know its state."""

    name: str
    count: int
    last_seen: datetime


def event_body(index: int, ns: str, now: datetime, seed: int) -> tuple[dict[str, Any], EventSpec]:
    """A core/v1 Event about a Pod, deterministic per (seed, index)."""
    rng = random.Random(seed * 1_000_003 + index)
    pod = f"web-7c9f6b5d8-p{rng.randrange(PODS):04d}"
    node = f"node-{rng.randrange(20)}"
    warning = rng.random() < WARNING_SHARE
    reason, component, template = rng.choice(WARNING if warning else NORMAL)
    message = template.format(
        ns=ns,
        pod=pod,
        node=node,
        image=f"registry.example.com/shop/web:1.{rng.randrange(40)}.{rng.randrange(10)}",
        container=rng.choice(("app", "sidecar", "init-db")),
    )
    if reason == "Unhealthy" or rng.random() < LONG_SHARE:
        message += " body: " + DETAIL[: rng.randrange(250, len(DETAIL) + 1)]
    count = rng.randint(2, 20) if warning else 1
    last = now - timedelta(seconds=rng.randrange(60, 600))
    first = last - timedelta(seconds=30 * (count - 1))
    spec = EventSpec(f"{pod}.{index:016x}", count, last)
    body = {
        "metadata": {"name": spec.name, "namespace": ns},
        "involvedObject": {
            "kind": "Pod",
            "name": pod,
            "namespace": ns,
            "uid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "apiVersion": "v1",
            "resourceVersion": str(rng.randrange(10**6)),
            "fieldPath": "spec.containers{app}",
        },
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
        "count": count,
        "firstTimestamp": rfc3339(first),
        "lastTimestamp": rfc3339(last),
        "source": {"component": component, "host": node},
        "reportingComponent": component,
        "reportingInstance": node,
    }
    return body, spec


# -- writing Events from several threads


@dataclass
class Phase:
    """One batch of API writes: how many, how long, when the last one returned."""

    what: str
    done: int = 0
    started: float = 0.0
    finished: float = 0.0

    @property
    def seconds(self) -> float:
        return self.finished - self.started

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {"writes": self.done, "seconds": self.seconds, "per_second": self.rate}


def finish(response: Any) -> None:
    """Read a raw reply to its end so its connection can serve the next request."""
    response.drain_conn()
    response.release_conn()


class Writer:
    """Creates and patches Events with the official client, one ApiClient per thread."""

    def __init__(self, configuration: client.Configuration, namespace: str, threads: int):
        self.configuration, self.namespace, self.threads = configuration, namespace, threads
        self._local = threading.local()
        self._clients: list[client.ApiClient] = []
        self._lock = threading.Lock()

    def _api(self) -> client.CoreV1Api:
        api = getattr(self._local, "api", None)
        if api is None:
            api_client = client.ApiClient(self.configuration)
            with self._lock:
                self._clients.append(api_client)
            api = self._local.api = client.CoreV1Api(api_client)
        return api

    def close(self) -> None:
        for api_client in self._clients:
            api_client.close()

    def run(self, what: str, tasks: list[Callable[[client.CoreV1Api], int]]) -> Phase:
        """Run every task on the pool; each returns how many writes it made."""
        phase = Phase(what, started=time.monotonic())

        def one(task: Callable[[client.CoreV1Api], int]) -> None:
            writes = task(self._api())
            with self._lock:
                phase.done += writes
                phase.finished = time.monotonic()
                if phase.done // PROGRESS_EVERY > (phase.done - writes) // PROGRESS_EVERY:
                    log(f"{what}: {phase.done} ({phase.rate:.0f}/s)")

        with ThreadPoolExecutor(self.threads, thread_name_prefix="writer") as pool:
            futures = [pool.submit(one, task) for task in tasks]
            try:
                for future in futures:
                    future.result()
            except BaseException:  # the first failure (or ^C) ends the benchmark
                pool.shutdown(cancel_futures=True)
                raise
        return phase

    def create(self, bodies: list[dict[str, Any]]) -> Phase:
        def task(body: dict[str, Any]) -> Callable[[client.CoreV1Api], int]:
            def call(api: client.CoreV1Api) -> int:
                response = api.create_namespaced_event(self.namespace, body, _preload_content=False)
                finish(response)
                return 1

            return call

        return self.run("created", [task(body) for body in bodies])

    def bump(self, specs: list[EventSpec], updates: int, seed: int) -> Phase:
        """``updates`` count+1 PATCHes (what client-go's recorder does for a repeat), spread
        over random events; all bumps of one event run in order on one thread."""
        rng = random.Random(seed)
        per_event = Counter(rng.randrange(len(specs)) for _ in range(updates))

        def task(spec: EventSpec, times: int) -> Callable[[client.CoreV1Api], int]:
            def call(api: client.CoreV1Api) -> int:
                for _ in range(times):
                    spec.count += 1
                    spec.last_seen += timedelta(seconds=1)
                    patch = {"count": spec.count, "lastTimestamp": rfc3339(spec.last_seen)}
                    response = api.patch_namespaced_event(
                        spec.name, self.namespace, patch, _preload_content=False
                    )
                    finish(response)
                return times

            return call

        return self.run("updated", [task(specs[i], n) for i, n in per_event.items()])


@dataclass
class Fill:
    """The namespace's content and how it was written."""

    namespace: str
    events: int
    count_sum: int
    create: Phase | None = None
    update: Phase | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "events": self.events,
            "count_sum": self.count_sum,
            "create": self.create.summary() if self.create else None,
            "update": self.update.summary() if self.update else None,
        }


@dataclass
class Plan:
    """The Events to create in one namespace, built before any timing starts."""

    namespace: str
    bodies: list[dict[str, Any]]
    specs: list[EventSpec]


def plan(namespace: str, events: int, seed: int) -> Plan:
    now = datetime.now(UTC).replace(microsecond=0)
    made = [event_body(i, namespace, now, seed) for i in range(events)]
    return Plan(namespace, [body for body, _ in made], [spec for _, spec in made])


def fill(writer: Writer, todo: Plan, updates: int, seed: int) -> Fill:
    result = Fill(todo.namespace, len(todo.bodies), 0)
    result.create = writer.create(todo.bodies)
    if updates:
        result.update = writer.bump(todo.specs, updates, seed)
    result.count_sum = sum(spec.count for spec in todo.specs)
    return result


def existing_fill(configuration: client.Configuration, namespace: str) -> Fill:
    """The Events already in ``namespace`` (``--namespace``: ship them again, no pre-fill)."""
    events = count_sum = 0
    token = None
    with client.ApiClient(configuration) as api:
        core = client.CoreV1Api(api)
        while True:
            kwargs = {"limit": 500, "_continue": token} if token else {"limit": 500}
            try:
                reply = core.list_namespaced_event(namespace, _preload_content=False, **kwargs)
            except client.exceptions.ApiException as exc:
                if exc.status != 410:
                    raise
                events = count_sum = 0  # etcd compacted under the paging: list it again
                token = None
                continue
            page = orjson.loads(reply.data)
            events += len(page["items"])
            count_sum += sum(item.get("count") or 1 for item in page["items"])
            token = page["metadata"].get("continue")
            if not token:
                return Fill(namespace, events, count_sum)


# -- the shipper under measurement


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def sink_counts(metrics_text: str) -> dict[str, float]:
    """Sink event counts by outcome, summed over sinks (the benchmark runs one)."""
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == SINK_EVENTS:
                outcome = sample.labels.get("outcome", "")
                counts[outcome] = counts.get(outcome, 0.0) + sample.value
    return counts


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def vm_hwm(pid: int) -> int:
    """The kernel's record of the peak resident set size of ``pid``, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class RssSampler(threading.Thread):
    """The highest RSS seen, sampled every 50 ms."""

    def __init__(self, process: psutil.Process) -> None:
        super().__init__(name="rss", daemon=True)
        self.process = process
        self.peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            self.stopped.wait(POLL_SECONDS)


class Progress(threading.Thread):
    """Polls /metrics every 50 ms until ``target`` event versions are shipped; notes when the
    first one was, when the last one was, and the shipper's CPU and VmHWM at that moment."""

    def __init__(self, popen: subprocess.Popen[bytes], port: int, target: int) -> None:
        super().__init__(name="progress", daemon=True)
        self.popen, self.port, self.target = popen, port, target
        self.process = psutil.Process(popen.pid)
        self.finished = threading.Event()
        self.stopped = threading.Event()
        self.counts: dict[str, float] = {}
        self.scrapes = 0
        self.cpu_at_first_scrape: float | None = None
        self.first_shipped_at: float | None = None
        self.done_at: float | None = None
        self.cpu_at_done = 0.0
        self.hwm_at_done = 0

    @property
    def shipped(self) -> int:
        return int(self.counts.get("shipped", 0))

    def run(self) -> None:
        while not self.stopped.is_set() and self.popen.poll() is None:
            tick = time.monotonic()
            self._poll()
            if self.done_at is not None:
                break
            interval = POLL_SECONDS if self.scrapes else STARTUP_POLL_SECONDS
            self.stopped.wait(max(0.0, interval - (time.monotonic() - tick)))
        self.finished.set()

    def _poll(self) -> None:
        try:
            status, text = http_get(self.port, "/metrics")
        except OSError:
            return  # not listening yet
        now = time.monotonic()
        if self.cpu_at_first_scrape is None:
            self.cpu_at_first_scrape = cpu_seconds(self.process)
        self.scrapes += 1
        if status != 200:
            return
        self.counts = sink_counts(text)
        if self.shipped and self.first_shipped_at is None:
            self.first_shipped_at = now
        if self.shipped >= self.target:
            self.done_at, self.cpu_at_done = now, cpu_seconds(self.process)
            self.hwm_at_done = vm_hwm(self.popen.pid)


def scrape_cost(process: psutil.Process, port: int, scrapes: int = 100) -> float:
    """CPU-seconds one /metrics scrape costs the shipper (our polling is part of its CPU)."""
    before = cpu_seconds(process)
    for _ in range(scrapes):
        http_get(port, "/metrics")
    return (cpu_seconds(process) - before) / scrapes


@contextmanager
def shipper_process(
    args: list[str], workdir: Path, quiet_stdout: bool, code: Path = ROOT
) -> Iterator[Any]:
    stdout = subprocess.DEVNULL if quiet_stdout else (workdir / "stdout.log").open("wb")
    env = {**os.environ, "PYTHONPATH": str(code)}
    with (workdir / "stderr.log").open("wb") as stderr:
        popen = subprocess.Popen(
            [sys.executable, "-m", "shipper", *args],
            stdout=stdout,
            stderr=stderr,
            cwd=code,
            env=env,
        )
        try:
            yield popen
        finally:
            if popen.poll() is None:
                popen.kill()
                popen.wait()
            if stdout is not subprocess.DEVNULL:
                stdout.close()


def wait_ready(popen: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"the shipper exited with {popen.returncode} before it was ready")
        try:
            if http_get(port, "/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"the shipper was not ready within {timeout:.0f} s")


def stop(popen: subprocess.Popen[bytes]) -> tuple[int, float]:
    """SIGTERM; returns the exit code and how long the shipper took to stop."""
    if popen.poll() is not None:
        return popen.returncode, 0.0
    started = time.monotonic()
    popen.send_signal(signal.SIGTERM)
    code = popen.wait(timeout=60)
    return code, time.monotonic() - started


def sink_scheme(sink: str) -> str:
    return sink.partition("?")[0].partition(":")[0]


def sqlite_path(sink: str, state_dir: Path) -> Path | None:
    """Where a ``sqlite:`` sink URI writes, or None for other sinks."""
    if sink_scheme(sink) != "sqlite":
        return None
    rest = sink.partition("?")[0].partition(":")[2]
    rest = rest[2:] if rest.startswith("//") else rest
    return Path(rest) if rest else state_dir / "events.db"


SEARCH_SCHEMES = ("elasticsearch", "es", "opensearch")


def search_docs(sink: str) -> int:
    """Documents in an elasticsearch:/opensearch: sink's index: its data stream or alias, or
    its dated indices (``INDEX-YYYY.MM.DD``, or as ``index_format`` says), refreshed first. The
    sink's own client does the asking, with the URI's credentials and TLS settings."""
    from shipper.sinks.base import SinkContext
    from shipper.sinks.factory import build_sink
    from shipper.sinks.search import ElasticsearchSink

    built, _ = build_sink(sink, SinkContext(cluster="", state_dir=None))
    assert isinstance(built, ElasticsearchSink)
    http = built.make_http()
    dated = getattr(built, "_dated", None)  # the dated name's format (index_format), if any
    days = dated.format(Y="*", m="*", d="*", H="*") if dated else f"{built.index}-2*"
    where = f"{built.index},{days}"
    lenient = "ignore_unavailable=true&allow_no_indices=true"
    try:
        http.request("POST", f"{where}/_refresh?{lenient}")
        status, reply = http.request("GET", f"{where}/_count?{lenient}")
    finally:
        http.close()
    if status != 200 or not isinstance(reply, dict):
        raise RuntimeError(f"GET /{where}/_count: HTTP {status} {reply}")
    return int(reply["count"])


def sqlite_totals(db: Path, namespace: str) -> tuple[int, int]:
    """Rows of ``namespace``'s events in the store, and their counts summed (0, 0: no store)."""
    if not db.exists():
        return 0, 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows, total = conn.execute(
            "SELECT count(*), coalesce(sum(count), 0) FROM events WHERE event_namespace = ?",
            (namespace,),
        ).fetchone()
    except sqlite3.OperationalError:  # no events table: nothing was ever written
        return 0, 0
    finally:
        conn.close()
    return int(rows), int(total)


def listed_seconds(stderr: str) -> float | None:
    match = re.search(r"Listed \d+ events in .* in ([\d.]+) s", stderr)
    return float(match.group(1)) if match else None


@dataclass
class Job:
    """One shipper run: where, what to ship, and (watch mode) how to make the events."""

    mode: str
    sink: str
    namespace: str
    events: int
    updates: int
    workdir: Path
    kubeconfig: str
    timeout: float
    feed: Callable[[], Fill] | None = None
    #: The source tree the shipper runs from (another commit's worktree, for comparisons).
    code: Path = ROOT
    #: Where py-spy writes this run's samples (collapsed stacks), or None: not profiled.
    profile: Path | None = None

    @property
    def target(self) -> int:
        """Event versions to ship: a list sees each event once, in its latest version; a
        watch sees every version (the creation and each count update)."""
        return self.events + (self.updates if self.mode == "watch" else 0)

    def shipper_args(self, port: int) -> list[str]:
        return [
            f"--source=kubernetes:?auth={self.kubeconfig}&namespaces={self.namespace}",
            f"--sink={self.sink}",
            f"--state-dir={self.workdir / 'state'}",
            f"--listen=127.0.0.1:{port}",
            "--start=all",
        ]


@dataclass
class Run:
    """One measured shipper run."""

    mode: str
    sink: str
    events: int
    updates: int
    shipped: int  # event versions
    wall_s: float  # process start -> the last event shipped
    ship_s: float  # the first event shipped -> the last
    events_per_s: float | None  # list: shipped / ship_s; watch: shipped / (first write -> last
    # shipped); None when it all went in one batch (no interval to divide by)
    end_to_end_events_per_s: float  # shipped / wall_s: start-up included
    cpu_s: float  # user+sys of the shipper when the last event was shipped
    cpu_startup_s: float  # ... when /metrics first answered (list) or /readyz did (watch)
    cpu_s_per_10k: float  # (cpu_s - cpu_startup_s - our scrapes) per 10,000 shipped versions
    cpu_s_per_10k_raw: float  # the same without taking our /metrics scrapes out
    scrapes: int
    scrape_cpu_ms: float  # what one /metrics scrape costs the shipper, measured after the run
    peak_rss_mib: float  # the larger of the 50 ms samples and VmHWM
    rss_sampled_peak_mib: float
    vm_hwm_mib: float
    exit_code: int
    shutdown_s: float  # SIGTERM -> exit
    dead_lettered: int
    lag_s: float | None = None  # watch: last write returned -> last event shipped
    write_rate: float | None = None  # watch: events created per second meanwhile
    listed_in_s: float | None = None  # list: the list's duration as the shipper logged it
    sqlite_rows: int | None = None
    sqlite_count_sum: int | None = None
    search_docs: int | None = None  # elasticsearch/opensearch: documents in the index
    workdir: str | None = None  # kept for a look (--keep, or when something went wrong)
    problems: list[str] = field(default_factory=list)


@dataclass
class Observed:
    """What ``measure`` saw, for ``summarize``."""

    progress: Progress
    rss: RssSampler
    started: float
    scrape_cpu: float = 0.0
    exit_code: int = -1
    shutdown_s: float = 0.0
    cpu_ready: float | None = None
    scrapes_before_ready: int = 1  # list mode: the baseline is taken at the first scrape
    write_start: float | None = None
    fed: Fill | None = None


def measure(job: Job) -> tuple[Run, Fill | None]:
    """Run the shipper until ``job.target`` versions are shipped; (watch) feed it meanwhile."""
    port = free_port()
    quiet = sink_scheme(job.sink) in ("log", "stdout")
    with shipper_process(job.shipper_args(port), job.workdir, quiet, job.code) as popen:
        seen = Observed(
            Progress(popen, port, job.target),
            RssSampler(psutil.Process(popen.pid)),
            started=time.monotonic(),
        )
        seen.rss.start()
        seen.progress.start()
        spy = start_profiler(popen.pid, seen.progress, job.profile) if job.profile else None
        if job.feed is not None:
            wait_ready(popen, port, 60)
            seen.scrapes_before_ready = seen.progress.scrapes
            seen.cpu_ready, seen.write_start = cpu_seconds(seen.progress.process), time.monotonic()
            seen.fed = job.feed()
        if not seen.progress.finished.wait(job.timeout):
            seen.progress.stopped.set()
        seen.progress.finished.wait()
        seen.rss.stopped.set()
        if spy is not None:
            stop_profiler(spy)
        if seen.progress.done_at is not None:
            seen.scrape_cpu = scrape_cost(seen.progress.process, port)
        elif popen.poll() is None:  # timed out: report what it had used by then
            seen.progress.cpu_at_done = cpu_seconds(seen.progress.process)
        seen.exit_code, seen.shutdown_s = stop(popen)
    run = summarize(job, seen)
    check(run, job)
    return run, seen.fed


def start_profiler(pid: int, progress: Progress, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the shipper (250 Hz, without pausing it) from the moment the CPU
    baseline is taken (the first /metrics answer), so the profile covers what the CPU-s/10k
    figure covers. ``--gil``: only the thread holding the GIL is sampled, the one running
    Python (or C code called from it, such as a JSON decoder): without it, threads waiting in
    a socket read or a lock look busy to py-spy too. Its samples go to ``out`` as collapsed
    stacks (bench/profile.py sums them up)."""
    while progress.cpu_at_first_scrape is None and not progress.finished.is_set():
        time.sleep(0.005)
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    out.parent.mkdir(parents=True, exist_ok=True)
    sampling = ["--rate", "250", "--nonblocking", "--gil", "--threads", "--format", "raw"]
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), *sampling, "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_profiler(spy: subprocess.Popen[bytes]) -> None:
    """SIGINT makes py-spy write its file and exit."""
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        spy.kill()


def summarize(job: Job, seen: Observed) -> Run:
    progress = seen.progress
    done = progress.done_at or time.monotonic()
    first = progress.first_shipped_at or done
    ship_start = seen.write_start if seen.write_start is not None else first
    cpu_base = seen.cpu_ready if seen.cpu_ready is not None else progress.cpu_at_first_scrape
    cpu_base = cpu_base or 0.0
    shipped = progress.shipped
    cpu_raw = progress.cpu_at_done - cpu_base
    cpu_net = cpu_raw - (progress.scrapes - seen.scrapes_before_ready) * seen.scrape_cpu
    per_10k = 10_000 / max(shipped, 1)
    run = Run(
        mode=job.mode,
        sink=job.sink.replace(str(job.workdir), "{tmp}"),
        events=job.events,
        updates=job.updates,
        shipped=shipped,
        wall_s=done - seen.started,
        ship_s=done - first,
        events_per_s=shipped / (done - ship_start) if done - ship_start > POLL_SECONDS else None,
        end_to_end_events_per_s=shipped / (done - seen.started),
        cpu_s=progress.cpu_at_done,
        cpu_startup_s=cpu_base,
        cpu_s_per_10k=cpu_net * per_10k,
        cpu_s_per_10k_raw=cpu_raw * per_10k,
        scrapes=progress.scrapes,
        scrape_cpu_ms=seen.scrape_cpu * 1000,
        peak_rss_mib=max(seen.rss.peak, progress.hwm_at_done) / MIB,
        rss_sampled_peak_mib=seen.rss.peak / MIB,
        vm_hwm_mib=progress.hwm_at_done / MIB,
        exit_code=seen.exit_code,
        shutdown_s=seen.shutdown_s,
        dead_lettered=int(progress.counts.get("dead_lettered", 0)),
    )
    if seen.fed is not None and seen.fed.create is not None:
        run.lag_s = done - (seen.fed.update or seen.fed.create).finished
        run.write_rate = seen.fed.create.rate
    return run


def check(run: Run, job: Job) -> None:
    """Everything shipped, a clean exit, and (sqlite) exactly one row per event, or
    (elasticsearch/opensearch) exactly one document per event version."""
    stderr = (job.workdir / "stderr.log").read_text(errors="replace")
    run.listed_in_s = listed_seconds(stderr) if job.mode == "list" else None
    if run.shipped < job.target:
        run.problems.append(f"only {run.shipped} of {job.target} shipped")
    if run.exit_code != 0:
        run.problems.append(f"exit code {run.exit_code} after SIGTERM")
    if run.dead_lettered:
        run.problems.append(f"{run.dead_lettered} dead-lettered")
    db = sqlite_path(job.sink, job.workdir / "state")
    if db is not None:
        run.sqlite_rows, run.sqlite_count_sum = sqlite_totals(db, job.namespace)
    if sink_scheme(job.sink) in SEARCH_SCHEMES:
        try:
            run.search_docs = search_docs(job.sink)
        except Exception as exc:
            run.problems.append(f"counting the documents failed: {exc}")
        else:
            if run.search_docs != job.target:  # one document per event version, exactly
                run.problems.append(
                    f"the index holds {run.search_docs} documents, not {job.target}"
                )
    if run.problems:
        log("the shipper's stderr ends with:\n" + stderr[-3000:])


def verify_rows(run: Run, expected: Fill) -> None:
    if run.sqlite_rows is None:
        return
    if run.sqlite_rows != expected.events:
        run.problems.append(f"sqlite has {run.sqlite_rows} rows, expected {expected.events}")
    if run.sqlite_count_sum != expected.count_sum:
        run.problems.append(
            f"sqlite counts sum to {run.sqlite_count_sum}, expected {expected.count_sum}"
        )


# -- the benchmark


@dataclass
class Machine:
    nproc: int
    cpu_model: str
    python: str
    kernel: str
    date: str
    shipper_commit: str


def machine() -> Machine:
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
    return Machine(
        nproc=len(os.sched_getaffinity(0)),
        cpu_model=model,
        python=platform.python_version(),
        kernel=platform.release(),
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        shipper_commit=commit,
    )


def sink_uri(args: argparse.Namespace, workdir: Path | None = None) -> str:
    uri = args.sink
    if workdir is not None:  # one run: its directory, and a fresh name for {run}
        uri = uri.replace("{tmp}", str(workdir)).replace("{run}", uuid.uuid4().hex[:8])
    if args.batch_size is not None:
        uri += ("&" if "?" in uri else "?") + f"batch_size={args.batch_size}"
    return uri


def shipper_run(
    args: argparse.Namespace,
    kubeconfig: str,
    namespace: str,
    feed: Callable[[], Fill] | None = None,
    events: int = 0,
) -> tuple[Run, Fill | None]:
    workdir = Path(tempfile.mkdtemp(prefix=f"kes-bench-{args.mode}-"))
    job = Job(
        args.mode,
        sink_uri(args, workdir),
        namespace,
        events or args.events,
        args.updates,
        workdir,
        kubeconfig,
        args.timeout,
        feed,
        Path(args.code).resolve(),
        profile_path(args),
    )
    run, fed = measure(job)
    if args.keep or run.problems:
        run.workdir = str(workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return run, fed


def profile_path(args: argparse.Namespace) -> Path | None:
    """``--profile DIR``: a fresh file per run, named after the sink and the code's tree."""
    if not args.profile:
        return None
    name = f"{sink_scheme(args.sink)}-{Path(args.code).resolve().name}-{uuid.uuid4().hex[:6]}"
    return Path(args.profile).resolve() / f"{name}.txt"


def list_runs(args: argparse.Namespace, kubeconfig: str, conf: Any) -> tuple[Fill, list[Run]]:
    """Fill once, then ship it all ``--repeat`` times, each from a fresh state directory."""
    if args.namespace:
        prefilled = existing_fill(conf, args.namespace)
        log(f"reusing namespace {args.namespace}: {prefilled.events} events")
    else:
        writer = Writer(conf, create_namespace(conf), args.threads)
        log(f"pre-filling namespace {writer.namespace} with {args.events} events")
        try:
            prefilled = fill(
                writer, plan(writer.namespace, args.events, args.seed), args.updates, args.seed
            )
        finally:
            writer.close()
        log_fill(prefilled, args.threads)
    runs = []
    for index in range(args.repeat):
        run, _ = shipper_run(args, kubeconfig, prefilled.namespace, events=prefilled.events)
        verify_rows(run, prefilled)
        runs.append(run)
        log(f"run {index + 1}: {fmt(run.events_per_s)} events/s, {run.cpu_s_per_10k:.2f} CPU-s/10k")
    return prefilled, runs


def watch_runs(args: argparse.Namespace, kubeconfig: str, conf: Any) -> tuple[Fill, list[Run]]:
    """Per run: a fresh namespace, the shipper started on it, then the events created."""
    runs, fed = [], None
    for index in range(args.repeat):
        writer = Writer(conf, create_namespace(conf), args.threads)
        todo = plan(writer.namespace, args.events, args.seed)
        log(f"watch mode: shipper first, then {args.events} events into {writer.namespace}")
        try:
            run, fed = shipper_run(
                args,
                kubeconfig,
                writer.namespace,
                feed=lambda w=writer, t=todo: fill(w, t, args.updates, args.seed),
            )
        finally:
            writer.close()
        assert fed is not None
        verify_rows(run, fed)
        runs.append(run)
        log(
            f"run {index + 1}: lag {fmt(run.lag_s, 2)} s, {run.cpu_s_per_10k:.2f} CPU-s/10k,"
            f" while creating {fmt(run.write_rate)} events/s"
        )
    assert fed is not None
    return fed, runs


def log_fill(done: Fill, threads: int) -> None:
    for phase in (done.create, done.update):
        if phase is not None:
            log(
                f"{phase.what} {phase.done} events in {phase.seconds:.1f} s"
                f" ({phase.rate:.0f}/s, {threads} threads)"
            )


# -- reporting

MEDIAN_KEYS = ("events_per_s", "end_to_end_events_per_s", "cpu_s_per_10k", "peak_rss_mib", "lag_s")


def median_run(runs: list[Run]) -> dict[str, float | None]:
    medians: dict[str, float | None] = {}
    for key in MEDIAN_KEYS:
        values = [getattr(run, key) for run in runs if getattr(run, key) is not None]
        medians[key] = statistics.median(values) if values else None
    return medians


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(runs: list[Run], prefill: Fill) -> str:
    lines = []
    for phase in (prefill.create, prefill.update):
        if phase is not None:
            lines.append(
                f"API writes: {phase.what} {phase.done} events in {phase.seconds:.1f} s"
                f" ({phase.rate:.0f}/s)"
            )
    header = (
        "mode",
        "sink",
        "versions",
        "events/s",
        "e2e ev/s",
        "CPU-s/10k",
        "peak RSS MiB",
        "lag s",
        "ok",
    )
    rows = [header]
    for run in runs:
        rows.append(
            (
                run.mode,
                run.sink,
                str(run.shipped),
                fmt(run.events_per_s),
                fmt(run.end_to_end_events_per_s),
                fmt(run.cpu_s_per_10k, 2),
                fmt(run.peak_rss_mib, 1),
                fmt(run.lag_s, 2),
                "yes" if not run.problems else "NO: " + "; ".join(run.problems),
            )
        )
    if len(runs) > 1:
        med = median_run(runs)
        rows.append(
            (
                "median",
                "",
                "",
                fmt(med["events_per_s"]),
                fmt(med["end_to_end_events_per_s"]),
                fmt(med["cpu_s_per_10k"], 2),
                fmt(med["peak_rss_mib"], 1),
                fmt(med["lag_s"], 2),
                "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


def write_json(path: str, args: argparse.Namespace, prefill: Fill, runs: list[Run]) -> None:
    report = {
        "machine": asdict(machine()),
        "config": {**vars(args), "sink": sink_uri(args)},
        "prefill": prefill.summary(),
        "runs": [asdict(run) for run in runs],
        "median": median_run(runs),
    }
    Path(path).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="example: .venv/bin/python bench/throughput.py --events 10000 --json out.json",
    )
    parser.add_argument(
        "--mode",
        choices=("list", "watch"),
        default="list",
        help="list: pre-fill, then ship (default); watch: ship while creating",
    )
    parser.add_argument("--events", type=int, default=10_000, help="events to create (10000)")
    parser.add_argument(
        "--updates", type=int, default=0, help="count-update PATCHes after the creates (default 0)"
    )
    parser.add_argument("--threads", type=int, default=16, help="threads writing events (16)")
    parser.add_argument(
        "--sink",
        default="sqlite:{tmp}/events.db",
        help="the sink URI under test; {tmp} is the run's temporary directory, {run} a fresh"
        " random name per run, e.g. index=bench-{run} (default: %(default)s); stdout of"
        " log/stdout goes to /dev/null; elasticsearch/opensearch: the documents are counted",
    )
    parser.add_argument("--batch-size", type=int, help="added to the sink URI as batch_size=")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measured runs (list mode: one pre-fill, shipped again each time)",
    )
    parser.add_argument(
        "--namespace",
        help="list mode: ship this existing namespace's events instead of pre-filling a new one",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="seconds to wait for everything to be shipped (900)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the event bodies")
    parser.add_argument("--json", metavar="PATH", help="also write the results here as JSON")
    parser.add_argument("--keep", action="store_true", help="keep each run's temporary directory")
    parser.add_argument(
        "--code",
        default=str(ROOT),
        metavar="DIR",
        help="run the shipper from this source tree (e.g. a worktree of an older commit;"
        " bench/compare.py does that); default: this one",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="sample each run with py-spy (pip install py-spy) into DIR/<sink>-<tree>-<id>.txt;"
        " read them with bench/profile.py. Sampling costs the shipper a little CPU",
    )
    args = parser.parse_args(argv)
    if args.namespace and args.mode != "list":
        parser.error("--namespace only applies to --mode list")
    if min(args.events, args.repeat, args.threads) < 1 or args.updates < 0:
        parser.error("--events, --repeat and --threads must be at least 1, --updates 0 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = stack_env()
    conf = kube_configuration(env["KUBECONFIG"])
    runner = list_runs if args.mode == "list" else watch_runs
    prefill, runs = runner(args, env["KUBECONFIG"], conf)
    print(table(runs, prefill))
    if args.json:
        write_json(args.json, args, prefill, runs)
    return 1 if any(run.problems for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())

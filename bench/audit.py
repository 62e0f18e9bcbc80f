#!/usr/bin/env python3
"""Throughput of the audit source: the webhook, its spool, and the path to a sink.

The shipper runs as a user runs it (``python -m shipper --source=audit:?... --sink=...``, a
subprocess, with certificates made by openssl in a temporary directory). N audit events
(default 40,000), realistic ``Metadata``-level ones (a user, groups, an objectRef, a response
status, the authorization annotations, about 1 KB of JSON each), are posted as the API server
posts them: ``EventList`` batches of ``--batch`` events (400, the API server's
``--audit-webhook-batch-max-size``), over ``--posters`` keep-alive HTTPS connections with a
client certificate. Measured per run:

* accepted/s: events answered 200 per second of posting (each answer waits for an fsync);
* POST p50 / p99: milliseconds per batch, as the API server waits for them;
* shipped/s: events per second from the first POST to the sink having them all (the shipper's
  ``kube_event_shipper_sink_events_total{outcome="shipped"}``);
* CPU-s/10k: the shipper's user+sys CPU per 10,000 audit events, start-up left out;
* peak RSS MiB (VmHWM).

For sqlite the run also checks that the ``audit`` table holds exactly N rows.

    .venv/bin/python bench/audit.py                       # sqlite and log, 3 rounds
    .venv/bin/python bench/audit.py --events 10000 --sinks sqlite --repeat 1
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# bench/ off sys.path: its scripts' names (kafka, syslog, profile...) would shadow modules.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import psutil  # noqa: E402

from bench.common import (  # noqa: E402
    BenchError,
    Column,
    header,
    log,
    round_robin,
    table,
    write_report,
)

USERS = [("alice", ["dev", "system:authenticated"]),
         ("system:serviceaccount:kube-system:deployment-controller",
          ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]),
         ("system:node:worker-3", ["system:nodes", "system:authenticated"])]  # fmt: skip
RESOURCES = ["pods", "deployments", "configmaps", "secrets", "leases", "replicasets"]
VERBS = ["get", "list", "watch", "update", "patch", "create", "delete"]


def audit_events(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    events = []
    for i in range(n):
        user, groups = rng.choice(USERS)
        resource, verb = rng.choice(RESOURCES), rng.choice(VERBS)
        namespace, name = f"team-{rng.randrange(40)}", f"{resource[:-1]}-{rng.randrange(5000)}"
        denied = rng.random() < 0.03
        second = f"2026-12-02T05:{i // 60000 % 60:02d}:{i // 1000 % 60:02d}.{i % 1000:03d}"
        reason = "" if denied else 'RBAC: allowed by ClusterRoleBinding "system:controller"'
        events.append({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": str(uuid.UUID(int=rng.getrandbits(128))), "stage": "ResponseComplete",
            "requestURI": f"/api/v1/namespaces/{namespace}/{resource}/{name}", "verb": verb,
            "user": {"username": user, "groups": groups},
            "sourceIPs": [f"10.0.{rng.randrange(256)}.{rng.randrange(256)}"],
            "userAgent": "kube-controller-manager/v1.34.4 (linux/amd64) kubernetes/abc1234",
            "objectRef": {"resource": resource, "namespace": namespace, "name": name,
                          "apiVersion": "v1", "resourceVersion": str(1000 + i)},
            "responseStatus": {"metadata": {}, "code": 403 if denied else 200}
            | ({"status": "Failure", "reason": "Forbidden"} if denied else {}),
            "requestReceivedTimestamp": f"{second}123Z", "stageTimestamp": f"{second}456Z",
            "annotations": {"authorization.k8s.io/decision": "forbid" if denied else "allow",
                            "authorization.k8s.io/reason": reason},
        })  # fmt: skip
    return events


def make_pki(folder: Path) -> None:
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ca",
            "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr")  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", "san.ext",
                "-out", f"{name}.crt")  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Run:
    accepted_per_s: float
    post_p50_ms: float
    post_p99_ms: float
    shipped_per_s: float
    cpu_per_10k: float
    peak_rss_mib: float


def metric(port: int, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def measure(sink: str, bodies: list[bytes], n: int, posters: int, pki: Path) -> Run:
    with tempfile.TemporaryDirectory(prefix="kes-audit-bench-") as tmp:
        state = Path(tmp) / "state"
        port, metrics_port = free_port(), free_port()
        uri = {"sqlite": f"sqlite:{tmp}/events.db", "log": "log"}[sink]
        source = (f"audit:?listen=127.0.0.1:{port}&cert={pki}/server.crt&key={pki}/server.key"
                  f"&clientCA={pki}/ca.crt&spoolSize=1Gi")  # fmt: skip
        process = subprocess.Popen(
            [sys.executable, "-m", "shipper", f"--source={source}", f"--sink={uri}",
             f"--state-dir={state}", f"--listen=127.0.0.1:{metrics_port}"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            return _drive(process, port, metrics_port, sink, bodies, n, posters, pki, Path(tmp))
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def _drive(
    process: subprocess.Popen[bytes], port: int, metrics_port: int, sink: str,
    bodies: list[bytes], n: int, posters: int, pki: Path, tmp: Path,
) -> Run:  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise BenchError(f"the shipper exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if metric(metrics_port, "kube_event_shipper_leader") == 1:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise BenchError("the shipper did not start within 60 s")
        time.sleep(0.05)
    proc = psutil.Process(process.pid)
    cpu0 = sum(proc.cpu_times()[:2])
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "client.crt"), str(pki / "client.key"))
    latencies: list[float] = []
    failures: list[str] = []
    queue = list(range(len(bodies)))
    lock = threading.Lock()

    def poster() -> None:
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=60)
        while True:
            with lock:
                if not queue:
                    break
                index = queue.pop(0)
            started = time.perf_counter()
            connection.request("POST", "/?timeout=30s", body=bodies[index],
                               headers={"Content-Type": "application/json"})  # fmt: skip
            response = connection.getresponse()
            response.read()
            latencies.append(time.perf_counter() - started)
            if response.status != 200:
                failures.append(f"HTTP {response.status}")
        connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=poster) for _ in range(posters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    posted = time.monotonic() - started
    if failures:
        raise BenchError(f"{len(failures)} batches refused: {failures[:3]}")
    while metric(metrics_port, "kube_event_shipper_sink_events_total", outcome="shipped") < n:
        if process.poll() is not None or time.monotonic() - started > 600:
            raise BenchError("the events were not all shipped")
        time.sleep(0.02)
    shipped = time.monotonic() - started
    cpu = sum(proc.cpu_times()[:2]) - cpu0
    status = Path(f"/proc/{process.pid}/status").read_text()
    hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    if sink == "sqlite":
        with sqlite3.connect(tmp / "events.db") as connection:
            (rows,) = connection.execute("SELECT count(*) FROM audit").fetchone()
        if rows != n:
            raise BenchError(f"the audit table holds {rows} rows, not {n}")
    latencies.sort()
    return Run(
        accepted_per_s=n / posted,
        post_p50_ms=latencies[len(latencies) // 2] * 1000,
        post_p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        shipped_per_s=n / shipped,
        cpu_per_10k=cpu / n * 10_000,
        peak_rss_mib=hwm / 1024,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--batch", type=int, default=400, help="events per POST (400)")
    parser.add_argument("--posters", type=int, default=4, help="concurrent connections")
    parser.add_argument("--sinks", nargs="+", default=["sqlite", "log"], choices=["sqlite", "log"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", help="also write the report here")
    args = parser.parse_args()
    events = audit_events(args.events, args.seed)
    bodies = [
        orjson.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {},
                      "items": events[i : i + args.batch]})
        for i in range(0, len(events), args.batch)
    ]  # fmt: skip
    size = sum(map(len, bodies)) / args.events
    log(f"{args.events} audit events, {len(bodies)} batches, {size:.0f} bytes per event")
    with tempfile.TemporaryDirectory(prefix="kes-audit-pki-") as pki:
        make_pki(Path(pki))
        runs, errors = round_robin(
            args.sinks,
            args.repeat,
            lambda sink: measure(sink, bodies, args.events, args.posters, Path(pki)),
            name=str,
            summary=lambda r: f"{r.accepted_per_s:,.0f} accepted/s, {r.cpu_per_10k:.2f} CPU-s/10k",
        )
    lines = header(
        "Audit source: webhook -> spool -> sink",
        f"{args.events:,} audit events ({size:.0f} bytes each) in batches of {args.batch},"
        f" {args.posters} HTTPS connections with a client certificate; median of"
        f" {args.repeat} runs.",
    )
    lines += table(
        [("sink", "---")],
        [
            Column("accepted/s", lambda r: r.accepted_per_s, 0),
            Column("POST p50 ms", lambda r: r.post_p50_ms, 1),
            Column("POST p99 ms", lambda r: r.post_p99_ms, 1),
            Column("shipped/s", lambda r: r.shipped_per_s, 0),
            Column("CPU-s/10k", lambda r: r.cpu_per_10k),
            Column("peak RSS MiB", lambda r: r.peak_rss_mib, 0),
        ],
        runs,
    )
    write_report(lines, args.out)
    for sink, errs in errors.items():
        for err in errs:
            print(f"error: {sink}: {err}", file=sys.stderr)
    return 1 if any(errors.values()) else 0


if __name__ == "__main__":
    os.environ.setdefault("KES_SELF_EVENTS", "off")
    sys.exit(main())

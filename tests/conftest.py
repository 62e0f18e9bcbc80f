"""Fixtures: real servers from scripts/stack, and the shipper run as users run it.

A test that needs a server asks for its fixture; the server is started (and built, on a fresh
machine) by ``scripts/stack up``. If it cannot start, the test fails with the server's log tail:
nothing is skipped silently.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
STACK = ROOT / "scripts" / "stack"


def read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            env[key.strip()] = value.strip().strip("'\"")
    return env


def stack_up(*components: str, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **(extra_env or {})}
    proc = subprocess.run(
        [sys.executable, str(STACK), "up", *components],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if proc.returncode != 0:
        logs = subprocess.run(
            [sys.executable, str(STACK), "logs", *components],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout
        pytest.fail(
            f"scripts/stack up {' '.join(components)} failed ({proc.returncode}):\n"
            f"{proc.stderr[-4000:]}\n--- server logs ---\n{logs[-4000:]}",
            pytrace=False,
        )
    return read_env(ROOT / ".stack" / "env")


@pytest.fixture(scope="session")
def kube_env() -> dict[str, str]:
    """The real kube-apiserver + etcd; returns the .stack/env values."""
    return stack_up("kubernetes")


@pytest.fixture(scope="session")
def opensearch_url() -> str:
    """A real single-node OpenSearch 2.x (embedded, from Maven Central jars)."""
    return stack_up("opensearch")["OPENSEARCH_URL"]


@pytest.fixture(scope="session")
def opensearch1_url() -> str:
    """A real single-node OpenSearch 1.3 (embedded, from Maven Central jars)."""
    return stack_up("opensearch1")["OPENSEARCH1_URL"]


@pytest.fixture(scope="session")
def elasticsearch_url() -> str:
    """A real single-node Elasticsearch 7.17 (embedded, from Maven Central jars)."""
    return stack_up("elasticsearch")["ELASTICSEARCH_URL"]


@pytest.fixture(scope="session")
def elasticsearch8_url() -> str:
    """A real single-node Elasticsearch 8.19 (embedded, from Maven Central jars)."""
    return stack_up("elasticsearch8")["ELASTICSEARCH8_URL"]


@pytest.fixture(scope="session")
def kafka_env() -> dict[str, str]:
    """A real single-node Apache Kafka 3.9 (KRaft, from Maven Central jars): the .stack/env
    values (KAFKA_BOOTSTRAP, and KAFKA_SASL_* for its SCRAM-SHA-512 listener)."""
    return stack_up("kafka")


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_env: dict[str, str]) -> str:
    return kafka_env["KAFKA_BOOTSTRAP"]


@pytest.fixture(scope="session")
def influxdb_url() -> str:
    """A real InfluxDB 1.8.10 (built from the Go module proxy), no auth, Flux enabled."""
    return stack_up("influxdb")["INFLUXDB_URL"]


@pytest.fixture(scope="session")
def mysql_env() -> dict[str, str]:
    """A real MariaDB (Debian's mariadb-server): MYSQL_URL, MYSQL_HOST, MYSQL_PORT, MYSQL_USER,
    MYSQL_PASSWORD and MYSQL_DATABASE of the shipper's user and database."""
    env = stack_up("mysql")
    return {k: v for k, v in env.items() if k.startswith("MYSQL_")}


@pytest.fixture(scope="session")
def promtool() -> str:
    """Prometheus's promtool (rule checks, rule and PromQL unit tests), built once per machine
    into the stack cache by scripts/build/promtool.sh (2-5 min cold)."""
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build" / "promtool.sh")],
        cwd=ROOT, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"scripts/build/promtool.sh failed:\n{done.stderr[-4000:]}", pytrace=False)
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def kube_api(kube_env: dict[str, str]) -> Any:
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=kube_env["KUBECONFIG"], client_configuration=configuration)
    return client.ApiClient(configuration)


@pytest.fixture
def namespace(kube_api: Any) -> str:
    """A fresh namespace per test (namespaces are never deleted: no controller-manager runs)."""
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:10]}"
    client.CoreV1Api(kube_api).create_namespace({"metadata": {"name": name}})
    return name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


class ShipperProcess:
    """``python -m shipper ARGS`` in the background, stdout and stderr to files."""

    def __init__(self, workdir: Path, args: list[str], env: dict[str, str] | None = None):
        self.workdir, self.args = workdir, args
        self.port = free_port()
        self.run_index = 0
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> ShipperProcess:
        self.run_index += 1
        self.stdout_path = self.workdir / f"stdout.{self.run_index}.jsonl"
        self.stderr_path = self.workdir / f"stderr.{self.run_index}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shipper", *self.args, *extra,
             f"--listen=127.0.0.1:{self.port}"],
            stdout=self.stdout_path.open("wb"),
            stderr=self.stderr_path.open("wb"),
            cwd=ROOT,
            env=self.env,
        )  # fmt: skip
        wait_for(self.ready, 60, "the shipper's /readyz")
        return self

    def get(self, path: str) -> tuple[int, str]:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the shipper exited ({self.proc.returncode}):\n{self.stderr()}")
        try:
            return self.get("/readyz")[0] == 200
        except OSError:
            return False

    def metric(self, name: str, **labels: str) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        for family in text_string_to_metric_families(self.get("/metrics")[1]):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        raise KeyError(name)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def stdout_docs(self, run: int | None = None) -> list[dict[str, Any]]:
        path = self.workdir / f"stdout.{run or self.run_index}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


@pytest.fixture
def shipper_factory(tmp_path: Path) -> Iterator[Callable[..., ShipperProcess]]:
    started: list[ShipperProcess] = []

    def make(args: list[str], env: dict[str, str] | None = None) -> ShipperProcess:
        process = ShipperProcess(tmp_path, args, env)
        started.append(process)
        return process

    yield make
    for process in started:
        if process.proc is not None and process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait()
        if process.proc is not None:  # pytest shows this only when the test failed
            print(f"--- shipper stderr, last run ---\n{process.stderr()[-4000:]}")

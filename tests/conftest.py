"""Fixtures: real servers from scripts/stack, and the shipper run as users run it.

Tests live in two tiers: ``tests/unit`` (in-process, no servers, under a minute) and
``tests/integration`` (real servers). A test that needs a server asks for its fixture; the server is started (and built, on a fresh
machine) by ``scripts/stack up``. If it cannot start, the test fails with the server's log tail:
nothing is skipped silently.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.common import ROOT, ShipperProcess, stack_up

TIERS = ("unit", "integration")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by the folder it lives in: ``pytest -m unit`` or ``pytest tests/unit``
    is the fast loop (in-process, no servers); ``integration`` tests use the real stack."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A failed test of a module that defines ``explain_failure(item)`` gets what it returns as
    a section of its report: what the servers said (a pod's status and log), which a CI log
    must show, since the servers are gone once it ends."""
    outcome = yield
    report = outcome.get_result()
    explain = getattr(item.module, "explain_failure", None)
    if report.failed and call.when == "call" and explain is not None:
        try:
            text = explain(item)
        except Exception as exc:  # the explanation must not hide the failure
            text = f"(could not ask: {exc!r})"
        if text:
            report.sections.append(("what the servers said", text))


# The shipper reports its own Events when the Downward API names its Pod (shipper/recorder/own.py).
# The test runner is not that Pod, even when CI runs in one: the shippers the tests start must
# not write Events about it into the test stack (tests that want them set these themselves).
for _name in ("POD_NAME", "POD_NAMESPACE", "POD_UID", "NODE_NAME"):
    os.environ.pop(_name, None)


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

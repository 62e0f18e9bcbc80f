"""What the tests share besides fixtures: the stack, waiting, and the shipper run as users run it.

Fixtures live in ``tests/conftest.py``; these are plain functions and classes, imported as
``from tests.support.common import wait_for``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    condition: Callable[[], Any],
    timeout: float = 30.0,
    what: str = "condition",
    every: float = 0.1,
) -> Any:
    """``condition()``'s first true value, asked every ``every`` seconds for ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def stack_image() -> None:
    """``scripts/stack image``: the base and project images, built when their inputs changed
    and imported into the node's containerd; the calling test fails with its stderr."""
    import pytest

    done = subprocess.run(
        [sys.executable, str(STACK), "image"],
        cwd=ROOT, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"scripts/stack image failed:\n{done.stderr[-6000:]}", pytrace=False)


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

"""The command line as users type it: bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipper", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    """A syntactically valid kubeconfig whose server is never contacted by these tests."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    return str(path)


BAD_INPUT = [
    (
        ["--sink=elastik:http://127.0.0.1:9200"],
        ["unknown scheme 'elastik'", "did you mean 'elasticsearch'?", "(known: ", " sqlite, "],
    ),
    (
        ["--sink=sqlite:?retension=1h"],
        ["unknown parameter 'retension'", "did you mean 'retention'"],
    ),
    (
        ["--sink=sqlite:?retention=forever"],
        ["parameter retention='forever'", "expected a duration"],
    ),
    (["--sink=log?level=Error"], ["parameter level='Error'", "expected one of Normal, Warning"]),
    (["--sink=log?name=a", "--sink=sqlite:?name=a"], ["two sinks are named 'a'"]),
    (["--sink=sqlite:$NOT_SET_ANYWHERE"], ["environment variable NOT_SET_ANYWHERE is not set"]),
    (["--source=kube:https://x"], ["--source: unknown scheme 'kube'", "known: kubernetes"]),
    (
        ["--source=kubernetes:?inClusterConfig=maybe"],
        ["inClusterConfig='maybe'", "expected true or false"],
    ),
    (
        ["--source=kubernetes:?namespace=a"],
        ["unknown parameter 'namespace'", "did you mean 'namespaces'"],
    ),
    (["--start=sometimes"], ["--start", "invalid choice: 'sometimes'"]),
    (["--listen=everywhere"], ["--listen", "expected HOST:PORT"]),
    (["--grace-period=soon"], ["--grace-period", "expected a duration"]),
    (["--checkpoint=configmap:"], ["--checkpoint: expected configmap:[NAMESPACE/]NAME"]),
    (["--checkpoint=etcd"], ["--checkpoint: 'etcd'; expected file, configmap"]),
]


@pytest.mark.parametrize(("args", "expected"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_2(args, expected, kubeconfig, tmp_path):
    state = tmp_path / "state"
    source = (
        []
        if any(a.startswith("--source") for a in args)
        else [f"--source=kubernetes:?auth={kubeconfig}"]
    )
    result = run(*source, *args, f"--state-dir={state}")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0]
    assert lines[0].startswith("kube-event-shipper: error: ")
    assert not state.exists()  # nothing started


def test_missing_kubeconfig(tmp_path):
    result = run(f"--source=kubernetes:?auth={tmp_path / 'nope'}", f"--state-dir={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"kube-event-shipper: error: --source kubernetes: kubeconfig {tmp_path / 'nope'} does not exist"
    )


def test_unreadable_kubeconfig(tmp_path):
    broken = tmp_path / "kubeconfig"
    broken.write_text("clusters: [this is not: a kubeconfig")
    result = run(f"--source=kubernetes:?auth={broken}", f"--state-dir={tmp_path / 's'}")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot load the kubeconfig" in result.stderr


def test_kubeconfig_from_environment_is_used(tmp_path):
    result = run(f"--state-dir={tmp_path}", env={"KUBECONFIG": str(tmp_path / "absent")})
    assert result.returncode == 2
    assert f"kubeconfig {tmp_path / 'absent'} does not exist" in result.stderr


def test_error_line_shows_the_value_after_env_expansion(kubeconfig, tmp_path):
    result = run(
        f"--source=kubernetes:?auth={kubeconfig}",
        "--sink=sqlite:?retention=$SECRET_DURATION",
        f"--state-dir={tmp_path / 's'}",
        env={"SECRET_DURATION": "not-a-duration"},
    )
    assert result.returncode == 2
    # Not a secret parameter, so the expanded value is shown to help; secret values are
    # redacted (tests/unit/test_uri.py::test_bad_secret_value_is_not_echoed).
    assert "retention='not-a-duration'" in result.stderr


def test_help_teaches():
    result = run("--help")
    assert result.returncode == 0
    for text in ("--source", "--sink", "--state-dir", "--start", "examples:", "query", "sqlite:"):
        assert text in result.stdout


def test_sinks_command_lists_parameters():
    result = run("sinks")
    assert result.returncode == 0
    assert "sqlite: the embedded store" in result.stdout
    assert "retention (duration" in result.stdout
    assert "log (also: stdout)" in result.stdout
    assert "batch_size (int, default —): Most events per write" in result.stdout


def test_version():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("kube-event-shipper ")

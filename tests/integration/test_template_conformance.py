"""The template engine (shipper/templates) renders as Go's text/template with sprig v3 does.

Every case is rendered twice: by Go itself (tests/gotemplate: text/template +
sprig.TxtFuncMap() over a ``*kube.EnhancedEvent``, as kubernetes-event-exporter executes its
``layout`` templates) and by the shipper's engine over the same event, read from the same
Kubernetes JSON. Outputs must be equal; where Go fails (a parse or execution error) the engine
must fail too. Cases that read the clock (``now``, ``ago``, ``date`` of a non-time) compare only
the shape: every run of digits is replaced by ``9`` on both sides.

The table lives in tests/support/template_cases.py; Go's answers are recorded in
tests/gotemplate/vectors.json so that tests/unit/test_template_vectors.py checks the engine
in-process on every fast run. Here, Go itself answers again and must agree with the recording
(``KES_RECORD_VECTORS=1`` rewrites it after the table changes), and the engine must agree with
Go's live answers.

The Go program is built once into ~/.cache/kube-event-shipper-stack/gotemplate (rebuilt when its
sources change); the first build downloads sprig from the Go module proxy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.template_cases import (
    CACHE,
    CASES,
    ENV_NAME,
    ENV_VALUE,
    SOURCE,
    VECTORS,
    payload,
    python_render,
    recorded,
    same,
)

pytestmark = pytest.mark.timeout(600)  # a cold first build downloads sprig (about a minute)


@pytest.fixture(scope="module")
def gotemplate() -> Path:
    """The Go renderer, built once (rebuilt when tests/gotemplate changes)."""
    go = shutil.which("go")
    if go is None:
        pytest.fail("the template conformance test needs Go on PATH (apt-get install golang-go)")
    sources = sorted(p for p in SOURCE.rglob("*") if p.suffix in (".go", ".mod", ".sum"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    binary = CACHE / "bin" / f"gotemplate-{digest}"
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"\n[gotemplate] building {SOURCE} -> {binary} (go build; first time downloads sprig)",
        file=sys.stderr,
    )
    started = time.monotonic()
    built = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=SOURCE,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if built.returncode != 0:
        pytest.fail(f"go build of {SOURCE} failed:\n{built.stdout}\n{built.stderr}")
    print(f"[gotemplate] built in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return binary


@pytest.fixture(scope="module")
def go_results(gotemplate: Path) -> list[dict[str, str]]:
    """Go's output or error for every case, from one run of the Go program."""
    env = {**os.environ, "TZ": "UTC", ENV_NAME: ENV_VALUE}
    done = subprocess.run(
        [str(gotemplate)],
        input=json.dumps(payload()),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert len(results) == len(CASES)
    return [{"template": c.template, **r} for c, r in zip(CASES, results, strict=True)]


def _comparable(result: dict[str, Any], shape: bool) -> dict[str, Any]:
    """Errors compare by kind (both fail); clock-reading cases by shape."""
    from tests.support.template_cases import SHAPE

    if "error" in result:
        return {"template": result["template"], "error": True}
    output = SHAPE.sub("9", result["output"]) if shape else result["output"]
    return {"template": result["template"], "output": output}


def test_go_agrees_with_the_recorded_answers(go_results: list[dict[str, str]]) -> None:
    if os.environ.get("KES_RECORD_VECTORS") == "1":
        VECTORS.write_text(json.dumps(go_results, indent=1, ensure_ascii=False) + "\n")
    live = [_comparable(r, c.shape) for r, c in zip(go_results, CASES, strict=True)]
    kept = [_comparable(r, c.shape) for r, c in zip(recorded(), CASES, strict=True)]
    differ = [f"{i:03d} {a['template'][:60]!r}: Go now {a}, recorded {b}" for i, (a, b) in enumerate(zip(live, kept, strict=True)) if a != b]  # fmt: skip
    assert not differ, "re-record with KES_RECORD_VECTORS=1:\n" + "\n".join(differ)


def test_the_engine_renders_as_go_does_now(
    go_results: list[dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_NAME, ENV_VALUE)
    differ = []
    for i, (case, expected) in enumerate(zip(CASES, go_results, strict=True)):
        problem = same(case, expected, python_render(case))
        if problem:
            differ.append(f"{i:03d} {case.template[:60]!r}: {problem}")
    assert not differ, "\n".join(differ)


def test_the_table_is_large_and_mixed(go_results: list[dict[str, str]]) -> None:
    """At least 120 cases, with both successes and errors on Go's side."""
    assert len(CASES) >= 120
    errors = sum("error" in r for r in go_results)
    assert 20 <= errors < len(CASES) - 100

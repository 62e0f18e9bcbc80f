"""Run the kubernetes-event-exporter oracle (tests/peer/exporter-oracle) from Python.

    from tests.peer import oracle
    answer = oracle.run(config_yaml, events, labels=None, now=None, env=None)

``answer`` is the oracle's JSON document (see tests/peer/README.md):
``{"loaded", "error", "effective", "receivers", "deliveries", "lost", "discarded"}``.

The binary is built once per source version (a hash of go.mod, go.sum and main.go) into
``$KES_STACK_CACHE/peer/`` (default ``~/.cache/kube-event-shipper-stack/peer/``) with the Go
toolchain from PATH; the Go module proxy supplies the libraries. Cold build about 100 s on 2 cores.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).resolve().parent / "exporter-oracle"
SOURCE_FILES = ("go.mod", "go.sum", "main.go")


def cache_dir() -> Path:
    root = os.environ.get("KES_STACK_CACHE") or "~/.cache/kube-event-shipper-stack"
    return Path(root).expanduser().absolute() / "peer"


def source_hash() -> str:
    h = hashlib.sha256()
    for name in SOURCE_FILES:
        h.update(name.encode() + b"\0" + (SOURCE / name).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def binary_path() -> Path:
    return cache_dir() / f"exporter-oracle-{source_hash()}"


def _progress(msg: str) -> None:
    print(f"[peer-oracle] {msg}", file=sys.stderr, flush=True)


def build() -> Path:
    """The oracle binary for the current sources, built if missing (with progress on stderr)."""
    target = binary_path()
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / ".build.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if target.exists():  # built by another process while we waited
                return target
            go = shutil.which("go") or "/usr/local/go/bin/go"
            if not Path(go).exists():
                raise RuntimeError("the oracle needs the Go toolchain: no `go` on PATH")
            _progress(
                f"building {target.name} from {SOURCE} (cold: about 100 s, downloads ~140 MB "
                "of modules from the Go module proxy)"
            )
            started = time.monotonic()
            tmp = target.with_name(target.name + f".tmp{os.getpid()}")
            env = {**os.environ, "CGO_ENABLED": "0"}
            cmd = [go, "build", "-trimpath", "-mod=readonly", "-o", str(tmp), "."]
            proc = subprocess.Popen(
                cmd,
                cwd=SOURCE,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            assert proc.stdout is not None
            output = []
            for line in proc.stdout:  # "go: downloading ..." lines show progress
                output.append(line)
                _progress(line.rstrip())
            if proc.wait() != 0:
                tmp.unlink(missing_ok=True)
                raise RuntimeError(f"oracle build failed ({' '.join(cmd)}):\n{''.join(output)}")
            tmp.rename(target)
            _progress(f"built in {time.monotonic() - started:.0f} s: {target}")
            return target
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_events(path: Path, events: Iterable[Mapping[str, Any]] | str | Path) -> None:
    if isinstance(events, Path):
        shutil.copyfile(events, path)
    elif isinstance(events, str):
        path.write_text(events)  # already JSON lines
    else:
        path.write_text("".join(json.dumps(e) + "\n" for e in events))


def run(
    config: str | Path,
    events: Iterable[Mapping[str, Any]] | str | Path,
    labels: Mapping[str, Any] | Path | None = None,
    now: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """What kubernetes-event-exporter v1.7 does with ``config`` and ``events``.

    config: YAML text, or a Path to a config file.
    events: core/v1 Event dicts (or watch events ``{"type", "object"}``), JSON-lines text, or a
        Path to a JSON-lines file.
    labels: ``{"Kind/namespace/name": {"labels": {...}, "annotations": {...},
        "ownerReferences": [...], "deleted": bool}}`` for the involved objects (what the exporter
        would look up from the API server), or a Path to such a JSON file.
    now: RFC3339 time; when given, events older than maxEventAgeSeconds at that time are
        discarded as the exporter's watcher does (default: no age check).
    env: the environment the exporter would see; the config's ``$VAR``/``${VAR}`` are expanded
        from it. Default: only PATH and TZ=UTC, so results do not depend on the caller.
    """
    binary = build()
    with tempfile.TemporaryDirectory(prefix="peer-oracle-") as tmp:
        d = Path(tmp)
        if isinstance(config, Path):
            config_path = config
        else:
            config_path = d / "config.yaml"
            config_path.write_text(config)
        events_path = d / "events.jsonl"
        _write_events(events_path, events)
        cmd = [str(binary), "-config", str(config_path), "-events", str(events_path)]
        if labels is not None:
            if isinstance(labels, Path):
                labels_path = labels
            else:
                labels_path = d / "labels.json"
                labels_path.write_text(json.dumps(labels))
            cmd += ["-labels", str(labels_path)]
        if now is not None:
            cmd += ["-now", now]
        run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TZ": "UTC"}
        run_env.update(env or {})
        proc = subprocess.run(
            cmd, env=run_env, capture_output=True, text=True, timeout=timeout, check=False
        )
    if proc.returncode != 0:
        raise RuntimeError(f"oracle failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def bodies(answer: Mapping[str, Any], receiver: str) -> list[str | None]:
    """The bodies one receiver got, in event order."""
    return [d["body"] for d in answer["deliveries"] if d["receiver"] == receiver]


def routed(answer: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(event_uid, receiver) for every hand-over, in event then route order."""
    return [(d["event_uid"], d["receiver"]) for d in answer["deliveries"]]

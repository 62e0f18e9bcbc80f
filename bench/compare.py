#!/usr/bin/env python3
"""Two commits side by side, in one run: the same events, the same stack, alternating runs.

::

    .venv/bin/python bench/compare.py --base 57f0b30 --sink log --sink 'sqlite:{tmp}/events.db'

makes a worktree of ``--base`` (under the stack cache), pre-fills one namespace with
``--events`` events through bench/throughput.py, then for each sink runs the base and this tree
alternately (``--repeat`` times each, so both see the same machine load), and prints the
medians of events/s, CPU-seconds per 10,000 events and peak RSS with the ratio new ÷ base.
``--new DIR`` (repeatable) runs other trees than this one, each in every round.
The JSON of every run is kept in ``--out`` (default: a temporary directory) for a look.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("KES_STACK_CACHE", Path.home() / ".cache" / "kube-event-shipper-stack"))
THROUGHPUT = ROOT / "bench" / "throughput.py"


def worktree(rev: str) -> Path:
    """A checkout of ``rev`` (reused when it is already there)."""
    sha = subprocess.run(
        ["git", "rev-parse", rev], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    path = CACHE / "bench-worktrees" / sha[:12]
    if not (path / "shipper").exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(path), sha], cwd=ROOT, check=True)
    return path


def throughput(args: list[str], out: Path) -> dict[str, Any]:
    subprocess.run(
        [sys.executable, str(THROUGHPUT), *args, "--json", str(out)], cwd=ROOT, check=True
    )
    return json.loads(out.read_text())


def prefill(events: int, sink: str, out: Path) -> str:
    """A fresh namespace with ``events`` events (one unreported run of this tree fills it)."""
    args = ["--events", str(events), "--repeat", "1", "--sink", sink]
    first = throughput(args, out / "prefill.json")
    return str(first["prefill"]["namespace"])


def median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the older commit (sha, tag, HEAD~3)")
    parser.add_argument("--sink", action="append", default=[], help="sink URIs (repeatable)")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--namespace", help="ship this already filled namespace (skips the pre-fill run)"
    )
    parser.add_argument("--out", help="directory for every run's JSON")
    parser.add_argument(
        "--new",
        action="append",
        metavar="DIR",
        help="the newer tree (default: this one; a copy lets you go on editing meanwhile);"
        " repeat it to run several trees in each round, each compared with the base",
    )
    parser.add_argument(
        "--profile", metavar="DIR", help="sample every run with py-spy into DIR (bench/profile.py)"
    )
    args = parser.parse_args(argv)
    sinks = args.sink or ["log", "sqlite:{tmp}/events.db"]
    out = Path(args.out or tempfile.mkdtemp(prefix="kes-compare-"))
    out.mkdir(parents=True, exist_ok=True)
    base = worktree(args.base)
    print(f"[compare] base {args.base} in {base}; runs in {out}", file=sys.stderr)
    namespace = args.namespace or prefill(args.events, sinks[0], out)
    common = ["--events", str(args.events), "--namespace", namespace, "--repeat", "1"]
    if args.profile:
        common += ["--profile", args.profile]
    news = [Path(d) for d in args.new or [ROOT]]
    codes = [("base", base)] + [("new" if len(news) == 1 else str(d), d) for d in news]
    rows = []
    for sink in sinks:
        results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in codes}
        for index in range(args.repeat):
            for name, code in codes:
                report = throughput(
                    [*common, "--sink", sink, "--code", str(code)],
                    out / f"{sink.split(':')[0]}-{name.replace('/', '_')}-{index}.json",
                )
                results[name] += report["runs"]
        rows.append((sink, results))
    print(table(rows, args.base))
    return 0


def table(rows: list[tuple[str, dict[str, list[dict[str, Any]]]]], base: str) -> str:
    lines = [
        f"| sink | code | events/s | CPU-s/10k | peak RSS MiB | CPU new÷{base} |",
        "|---|---|---|---|---|---|",
    ]
    for sink, results in rows:
        cpu = {name: median(runs, "cpu_s_per_10k") for name, runs in results.items()}
        for name, runs in results.items():
            rate, rss = median(runs, "events_per_s"), median(runs, "peak_rss_mib")
            ratio = None
            if name != "base" and cpu[name] and cpu["base"]:
                ratio = cpu[name] / cpu["base"]
            lines.append(
                f"| `{sink.split('?')[0]}` | {name} | {rate or 0:,.0f} | {cpu[name] or 0:.2f} |"
                f" {rss or 0:.0f} | {f'{ratio:.2f}' if ratio else ''} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

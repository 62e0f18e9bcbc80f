#!/usr/bin/env python3
"""Sum up py-spy samples (``bench/throughput.py --profile DIR`` writes them) into top frames.

::

    .venv/bin/python bench/profile.py DIR/log-main-1a2b3c.txt [--top 20]

py-spy's raw format is one line per distinct stack, ``frame;frame;...;frame COUNT``, each frame
``function (file:line)``, the first one the thread (``--threads``). Without ``--native`` a C
function's time (orjson, sqlite3, ssl) counts as the self time of the Python line calling it,
so the self table keeps line numbers: ``_list (shipper/source/kubernetes.py:252)`` is the
``orjson.loads`` of a page. Printed as Markdown tables for bench/README.md:

* per thread: its share of all samples (throughput.py samples with ``--gil``: each sample is
  the thread holding the GIL, so the shares are of the Python CPU);
* self: where the CPU is spent, by function and line;
* inclusive: by function, with everything it calls.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
THREAD = re.compile(r"^(?:thread|process) ")
#: Path prefixes cut from file names so the tables stay narrow.
CUT = re.compile(
    r"^.*?/(?=(?:shipper|bench|tests)/)|^.*?/(?:site|dist)-packages/|^.*?/lib/python3[.\d]*/"
)


def short(file: str) -> str:
    return CUT.sub("", file)


def parse(path: Path) -> tuple[Counter[str], Counter[str], Counter[str], int]:
    """(samples per thread, self samples per function:line, inclusive per function, total)."""
    threads: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for raw in path.read_text(errors="replace").splitlines():
        stack, _, count_text = raw.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        thread = frames[0] if THREAD.match(frames[0]) else "?"
        frames = frames[1:] if thread != "?" else frames
        threads[thread_name(thread)] += count
        seen = set()
        for frame in frames:
            name = function(frame)
            if name not in seen:  # a recursive function counts once per sample
                seen.add(name)
                inclusive[name] += count
        if frames:
            self_time[located(frames[-1])] += count
    return threads, self_time, inclusive, total


def thread_name(frame: str) -> str:
    """``thread (29175): watch-ns`` -> ``watch-ns``; the HTTP server's request threads are
    one row (``Thread-3 (process_request_thread)``)."""
    name = re.sub(r"^thread \(\w+\):? ?", "", frame) or frame
    return re.sub(r"^Thread-\d+ ", "Thread-N ", name)


def function(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    return f"{match['func']} ({short(match['file'])})"


def located(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    line = f":{match['line']}" if match["line"] else ""
    return f"{match['func']} ({short(match['file'])}{line})"


def table(title: str, counter: Counter[str], total: int, top: int) -> str:
    lines = [f"| {title} | samples | share |", "|---|---:|---:|"]
    for name, count in counter.most_common(top):
        lines.append(f"| `{name}` | {count} | {100 * count / total:.1f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="py-spy raw output (summed)")
    parser.add_argument("--top", type=int, default=20, help="rows per table (20)")
    args = parser.parse_args(argv)
    threads: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for path in args.files:
        t, s, i, n = parse(path)
        threads += t
        self_time += s
        inclusive += i
        total += n
    if not total:
        print("no samples", file=sys.stderr)
        return 1
    print(f"{total} samples in {len(args.files)} file(s) (throughput.py samples at 250 Hz)\n")
    print(table("thread", threads, total, args.top), end="\n\n")
    print(table("self (function, line)", self_time, total, args.top), end="\n\n")
    print(table("inclusive (function)", inclusive, total, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the machine was doing while a test ran: load, CPU (steal and iowait included) and pressure.

A test that fails because the machine stalled (a CI VM starved by its host, a disk flushing)
looks like a product bug from inside: probes time out, brokers answer late. ``MachineLog``
samples /proc every two seconds in a daemon thread and prints the last minutes as a table, so a
failure report says whether the whole machine stalled at that moment.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Sample:
    at: float  # time.time()
    load1: float
    cpu: tuple[int, ...]  # /proc/stat's first line: user nice system idle iowait irq softirq steal
    pressure: dict[str, float]  # cpu/io/memory: the "some" share of the last 10 s, in %


def read_sample(proc: Path = PROC) -> Sample:
    load1 = float((proc / "loadavg").read_text().split()[0])
    fields = (proc / "stat").read_text().splitlines()[0].split()[1:9]
    pressure = {}
    for kind in ("cpu", "io", "memory"):
        try:
            some = (proc / "pressure" / kind).read_text().splitlines()[0]
        except OSError:  # kernels without PSI
            continue
        pressure[kind] = float(some.split()[1].partition("=")[2])
    return Sample(time.time(), load1, tuple(int(f) for f in fields), pressure)


def describe(earlier: Sample, later: Sample) -> str:
    """One line: how busy the CPUs were between two samples, and the pressure at the later."""
    delta = [b - a for a, b in zip(earlier.cpu, later.cpu, strict=True)]
    total = sum(delta) or 1
    idle, iowait, steal = delta[3], delta[4], delta[7]
    busy = 100 * (total - idle - iowait - steal) / total
    psi = " ".join(f"{k} {v:.0f}" for k, v in later.pressure.items())
    return (
        f"{time.strftime('%H:%M:%S', time.gmtime(later.at))}Z load {later.load1:5.2f}"
        f"  busy {busy:3.0f}%  iowait {100 * iowait / total:3.0f}%"
        f"  steal {100 * steal / total:3.0f}%  pressure(some, 10 s) {psi or 'n/a'}"
    )


class MachineLog:
    """Samples every ``every`` seconds, keeps ``keep`` seconds of them."""

    def __init__(self, every: float = 2.0, keep: float = 600.0) -> None:
        self.every = every
        self.samples: deque[Sample] = deque(maxlen=int(keep / every) + 1)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="machine-log", daemon=True)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.samples.append(read_sample())
            except OSError:
                return  # not Linux: nothing to say
            self.stopping.wait(self.every)

    def __enter__(self) -> MachineLog:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(5)

    def table(self, seconds: float = 240.0, step: float = 10.0) -> str:
        """The last ``seconds``, one line per ``step`` seconds (the CPU shares over that step)."""
        samples = [s for s in list(self.samples) if s.at >= time.time() - seconds - step]
        lines, previous = [], None
        for sample in samples:
            if previous is None:
                previous = sample
            elif sample.at - previous.at >= step - self.every / 2 or sample is samples[-1]:
                lines.append(describe(previous, sample))
                previous = sample
        return "\n".join(lines) or "no samples"

"""tests/support/machine.py: the machine's load and CPU shares, as a failed node test prints them."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.machine import MachineLog, Sample, describe, read_sample


def fake_proc(root: Path, load: str, cpu: str, pressure: bool = True) -> Path:
    (root / "pressure").mkdir(parents=True, exist_ok=True)
    (root / "loadavg").write_text(f"{load} 0.50 0.25 2/300 1234\n")
    (root / "stat").write_text(f"cpu  {cpu} 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
    for kind, some in (("cpu", "12.50"), ("io", "3.00"), ("memory", "0.00")):
        path = root / "pressure" / kind
        if pressure:
            path.write_text(f"some avg10={some} avg60=1.00 avg300=0.50 total=99\n")
        elif path.exists():
            path.unlink()
    return root


def test_read_sample_takes_load_cpu_fields_and_pressure(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, "3.25", "100 5 50 800 20 1 2 30")
    sample = read_sample(proc)
    assert sample.load1 == 3.25
    assert sample.cpu == (100, 5, 50, 800, 20, 1, 2, 30)
    assert sample.pressure == {"cpu": 12.5, "io": 3.0, "memory": 0.0}


def test_read_sample_without_pressure_files(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, "0.10", "1 2 3 4 5 6 7 8", pressure=False)
    assert read_sample(proc).pressure == {}


def test_describe_shares_the_interval_between_busy_idle_iowait_and_steal() -> None:
    # user nice system idle iowait irq softirq steal: +200 ticks, 60 busy, 80 idle, 20 io, 40 steal
    earlier = Sample(0.0, 1.0, (100, 0, 100, 1000, 10, 0, 0, 5), {})
    later = Sample(10.0, 4.5, (140, 0, 120, 1080, 30, 0, 0, 45), {"cpu": 55.0})
    line = describe(earlier, later)
    assert line.startswith("00:00:10Z load  4.50")
    assert "busy  30%" in line and "iowait  10%" in line and "steal  20%" in line
    assert line.endswith("pressure(some, 10 s) cpu 55")


def test_table_has_one_line_per_step() -> None:
    log = MachineLog(every=2.0)
    now = time.time()
    for i in range(31):  # 60 s of samples, every 2 s, one tick of idle each
        log.samples.append(Sample(now - 60 + 2 * i, 0.5, (i, 0, 0, i, 0, 0, 0, 0), {}))
    lines = log.table(seconds=60, step=10).splitlines()
    assert len(lines) == 6, lines
    assert all("busy  50%" in line for line in lines)
    assert MachineLog().table() == "no samples"

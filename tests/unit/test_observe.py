"""Metrics and logs as operators expect them."""

from __future__ import annotations

import json
import logging
import re

from prometheus_client import generate_latest

from shipper import __version__
from shipper.cli.common import JsonFormatter, TextFormatter
from shipper.metrics import Metrics


def test_metrics_have_the_process_and_python_series_build_info_and_no_created():
    metrics = Metrics()
    metrics.sink_events.labels("log", "shipped").inc()
    text = generate_latest(metrics.registry).decode()
    for family in ("process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"):
        assert re.search(rf"^{family}\b", text, re.M), family
    assert "python_gc_objects_collected_total" in text
    assert re.search(
        rf'^kube_event_shipper_build_info\{{.*version="{re.escape(__version__)}".*\}} 1\.0$',
        text,
        re.M,
    )
    assert "_created" not in text
    # two daemons in one process (tests do that) keep their own series
    other = generate_latest(Metrics().registry).decode()
    assert 'sink="log"' in text and 'sink="log"' not in other


def _record(message: str) -> logging.LogRecord:
    record = logging.LogRecord("shipper", logging.WARNING, __file__, 1, message, (), None)
    record.created, record.msecs = 1764583200.25, 250.0  # 2025-12-01T10:00:00.250Z
    return record


def test_text_logs_are_utc_with_the_zone_and_milliseconds():
    line = TextFormatter("%(asctime)s %(levelname)-7s %(message)s").format(_record("Sink down."))
    assert line == "2025-12-01 10:00:00.250Z WARNING Sink down."


def test_json_logs_have_rfc3339_times_with_fractions():
    entry = json.loads(JsonFormatter().format(_record("Sink down.")))
    assert entry == {
        "time": "2025-12-01T10:00:00.250Z",
        "level": "warning",
        "logger": "shipper",
        "message": "Sink down.",
    }


def test_a_client_gone_before_its_answer_is_no_traceback(capfd):
    """A probe or scraper that hangs up early (or a process resumed after SIGSTOP answering
    requests whose clients left) must not print socketserver's traceback on stderr."""
    import socket
    import struct
    import time

    from shipper.health import HealthServer

    health = HealthServer(("127.0.0.1", 0), Metrics().registry, lambda: True, lambda: True)
    health.start()
    try:
        for _ in range(30):
            with socket.create_connection(("127.0.0.1", health.port)) as sock:
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                # SO_LINGER 0: close with a reset, so the server's write fails
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", health.port)) as sock:
            sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.0 200")  # it still answers
    finally:
        health.stop()
    # (other tests' receivers may still print theirs: only this server's frames count)
    assert "shipper/health.py" not in capfd.readouterr().err

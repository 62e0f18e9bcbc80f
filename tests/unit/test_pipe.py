"""The pipe sink (kubernetes-event-exporter's ``pipe`` receiver): a FIFO another process reads."""

from __future__ import annotations

import os
import threading

import orjson
import pytest

from shipper.event import normalize
from shipper.sinks.base import SinkContext, TransientError
from shipper.sinks.factory import build_sink

RAW = {
    "metadata": {"uid": "u-1", "resourceVersion": "7", "name": "web.1", "namespace": "shop"},
    "involvedObject": {"kind": "Pod", "name": "web", "namespace": "shop"},
    "reason": "BackOff", "message": "m <x>", "type": "Warning", "count": 4,
    "lastTimestamp": "2026-11-20T23:59:59Z",
}  # fmt: skip


def test_a_fifo_gets_one_line_per_event_once_a_reader_is_there(tmp_path):
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    sink, _ = build_sink(f'pipe:{fifo}?layout={{"r":"{{{{ .Reason }}}}"}}', SinkContext("", None))
    with pytest.raises(TransientError, match="no reader on the pipe yet"):
        sink.open()  # never blocks the start-up
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.extend(open(fifo, "rb")))  # noqa: SIM115
    reader.start()
    for _ in range(200):  # the reader thread opens its end
        try:
            sink.open()
            break
        except TransientError:
            threading.Event().wait(0.01)
    events = [normalize(RAW, "ADDED"), normalize({**RAW, "reason": "Pulled"}, "ADDED")]
    assert not sink.write(events)
    sink.close()
    reader.join(timeout=10)
    assert [orjson.loads(line) for line in got] == [{"r": "BackOff"}, {"r": "Pulled"}]


def test_a_path_that_does_not_exist_is_not_created(tmp_path):
    missing = tmp_path / "nope"
    sink, _ = build_sink(f"pipe:{missing}", SinkContext("", None))
    with pytest.raises(TransientError, match="No such file or directory"):
        sink.open()
    assert not missing.exists()


def test_de_dot_is_the_originals_for_the_lines_sinks(tmp_path):
    """deDot (off by default, as the original's) changes the keys a layout and the document
    see; without it the dotted keys stay."""
    event = normalize(RAW, "ADDED")
    event.labels = {"app.kubernetes.io/name": "web"}
    layout = '{"l":"{{ toJson .InvolvedObject.Labels }}"}'
    bodies = {}
    for name, extra in (("plain", ""), ("dedot", "&deDot=true")):
        for kind, params in (("layout", f"layout={layout}"), ("document", "")):
            path = tmp_path / f"{name}-{kind}.jsonl"
            sink, _ = build_sink(f"file:{path}?{params}{extra}", SinkContext("", None))
            sink.open()
            assert not sink.write([event])
            sink.close()
            bodies[name, kind] = orjson.loads(path.read_bytes())
    assert orjson.loads(bodies["plain", "layout"]["l"]) == {"app.kubernetes.io/name": "web"}
    assert orjson.loads(bodies["dedot", "layout"]["l"]) == {"app_kubernetes_io/name": "web"}
    assert bodies["plain", "document"]["kubernetes"]["labels"] == {"app.kubernetes.io/name": "web"}
    assert bodies["dedot", "document"]["kubernetes"]["labels"] == {"app_kubernetes_io/name": "web"}

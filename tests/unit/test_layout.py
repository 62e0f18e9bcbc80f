"""kubernetes-event-exporter's ``layout`` and the JSON-lines sinks that write it."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime

import orjson
import pytest

from shipper.event import normalize
from shipper.layout import Layout, parse_layout
from shipper.sinks.base import SinkContext
from shipper.sinks.factory import build_sink
from shipper.uri import UsageError

EVENT = {
    "metadata": {"uid": "u-1", "resourceVersion": "7", "name": "web.1", "namespace": "shop",
                 "creationTimestamp": "2026-12-01T10:00:00Z"},
    "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "shop", "uid": "p-1"},
    "reason": "BackOff", "message": "Back-off <restarting> & \"failed\"", "type": "Warning",
    "count": 3, "source": {"component": "kubelet", "host": "node-a"},
    "firstTimestamp": "2026-12-01T10:00:00Z", "lastTimestamp": "2026-12-01T10:05:00Z",
}  # fmt: skip


# GetTimestampMs: firstTimestamp in milliseconds since the epoch, worked out independently here.
FIRST_MS = str(int(datetime(2026, 12, 1, 10, 0, tzinfo=UTC).timestamp() * 1000)).encode()


def event(**changes):
    return normalize({**EVENT, **changes}, "ADDED")


def test_a_layout_renders_as_the_original_marshals_it():
    layout = Layout({
        "msg": "{{ .Message }}",
        "ts": "{{ .GetTimestampMs }}",
        "object": {"kind": "{{ .InvolvedObject.Kind | lower }}", "list": ["{{ .Count }}", 7]},
        "n": 1, "flag": True, "none": None,
        "a": "{{ .InvolvedObject.Labels.app }}",
    })  # fmt: skip
    body = layout.encode(event(), "prod")
    # keys sorted, compact, <>& escaped as Go escapes them, non-strings null, missing key <no value>
    assert body == (
        b'{"a":"\\u003cno value\\u003e","flag":null,"msg":"Back-off \\u003crestarting\\u003e'
        b' \\u0026 \\"failed\\"","n":null,"none":null,"object":{"kind":"pod","list":["3",null]},'
        b'"ts":"' + FIRST_MS + b'"}'
    )


def test_an_empty_layout_writes_an_empty_object_as_the_original_does():
    assert Layout({}).encode(event()) == b"{}"


def test_layout_errors_are_found_at_start_and_name_the_key():
    with pytest.raises(ValueError, match=r"layout\.m.*unknown field \.Reasn"):
        parse_layout('{"m": "{{ .Reasn }}"}')
    with pytest.raises(ValueError, match="expected a mapping"):
        parse_layout('["x"]')
    with pytest.raises(UsageError, match=r"--sink log: parameter layout=.*expected a JSON object"):
        build_sink("log?layout={not json", SinkContext("", None))


def test_a_template_failing_on_one_event_dead_letters_that_event_only(capfdbinary):
    # index with an int key fails at run time, on the events that reach it only
    sink, _ = build_sink(
        'log?layout={"r": "{{ .Reason }}{{ if eq .Reason \\"Bad\\" }}'
        '{{ index .InvolvedObject.Labels 1 }}{{ end }}"}',
        SinkContext("", None),
    )
    sink.open()
    rejected = sink.write([event(), event(reason="Bad"), event()])
    assert [r.index for r in rejected] == [1]
    assert "the layout failed" in rejected[0].reason
    assert capfdbinary.readouterr().out == b'{"r":"BackOff"}\n{"r":"BackOff"}\n'


def test_file_sink_writes_a_pipe_once_per_event():
    """/dev/stdout in a container is a pipe: no seek, no rotation, every line exactly once."""
    read_end, write_end = os.pipe()
    chunks: list[bytes] = []
    reader = threading.Thread(
        target=lambda: chunks.extend(iter(lambda: os.read(read_end, 65536), b""))
    )
    reader.start()
    sink, _ = build_sink(f"file:/proc/self/fd/{write_end}?max_size=1", SinkContext("c", None))
    sink.open()
    events = [event(metadata={**EVENT["metadata"], "uid": f"u-{i}"}) for i in range(2000)]
    for start in range(0, len(events), 500):
        assert sink.write(events[start : start + 500]) == []
    sink.close()
    os.close(write_end)
    reader.join(timeout=10)
    lines = b"".join(chunks).splitlines()
    assert [orjson.loads(line)["kubernetes"]["event"]["metadata"]["uid"] for line in lines] == [
        f"u-{i}" for i in range(2000)
    ]


def test_file_sink_with_the_bitnami_default_layout(tmp_path):
    path = tmp_path / "out.jsonl"
    sink, _ = build_sink(f"file:{path}?layout={{}}", SinkContext("c", None))
    sink.open()
    sink.write([event(), event()])
    sink.close()
    assert path.read_bytes() == b"{}\n{}\n"

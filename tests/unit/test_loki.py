"""The loki sink in-process: the wire encoding (checked with independent decoders), stream
labels, lines and timestamps, options and config-file receivers. Against the real Loki:
tests/integration/test_loki_sink.py."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper.config import load
from shipper.event import normalize
from shipper.sinks.base import SinkContext
from shipper.sinks.factory import build_sink, build_sinks
from shipper.sinks.loki import LokiSink, encode_push, label_string, snappy_block
from shipper.uri import UsageError

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "exporter"


def sink(uri: str, cluster: str = "c1") -> LokiSink:
    built, _ = build_sink(uri, SinkContext(cluster=cluster, state_dir=None))
    assert isinstance(built, LokiSink)
    return built


def api_event(uid: str = "u-1", count: int = 1, at: str = "2026-11-20T10:00:00Z", **more: Any):
    obj = {
        "metadata": {"uid": uid, "resourceVersion": str(100 + count), "name": "web-1.17a",
                     "namespace": "shop", "creationTimestamp": at},
        "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "shop", "uid": "pod-1"},
        "reason": "BackOff", "message": "Back-off restarting", "type": "Warning",
        "count": count, "firstTimestamp": at, "lastTimestamp": at,
        "source": {"component": "kubelet", "host": "node-a"},
    } | more  # fmt: skip
    return normalize(obj, "ADDED", "c1")


# -- the wire


def push_request_class() -> Any:
    """logproto.PushRequest built from its .proto definition with the protobuf runtime: an
    implementation independent of encode_push."""
    pytest.importorskip("google.protobuf")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

    pool = descriptor_pool.DescriptorPool()
    ts_file = descriptor_pb2.FileDescriptorProto()
    timestamp_pb2.DESCRIPTOR.CopyToProto(ts_file)
    pool.Add(ts_file)
    f = descriptor_pb2.FileDescriptorProto(
        name="push.proto", package="logproto", syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"],
    )  # fmt: skip
    T = descriptor_pb2.FieldDescriptorProto
    entry = f.message_type.add(name="EntryAdapter")
    entry.field.add(name="timestamp", number=1, type=T.TYPE_MESSAGE, label=T.LABEL_OPTIONAL,
                    type_name=".google.protobuf.Timestamp")  # fmt: skip
    entry.field.add(name="line", number=2, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    stream = f.message_type.add(name="StreamAdapter")
    stream.field.add(name="labels", number=1, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    stream.field.add(name="entries", number=2, type=T.TYPE_MESSAGE, label=T.LABEL_REPEATED,
                     type_name=".logproto.EntryAdapter")  # fmt: skip
    stream.field.add(name="hash", number=3, type=T.TYPE_UINT64, label=T.LABEL_OPTIONAL)
    push = f.message_type.add(name="PushRequest")
    push.field.add(name="streams", number=1, type=T.TYPE_MESSAGE, label=T.LABEL_REPEATED,
                   type_name=".logproto.StreamAdapter")  # fmt: skip
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("logproto.PushRequest"))


def test_the_push_request_decodes_with_the_protobuf_runtime():
    PushRequest = push_request_class()
    streams = [
        ('{a="1"}', [(1_700_000_000_123_456_789, 'first ✓ "q"\n'.encode()), (5, b"")]),
        ('{b="x\\"y"}', [(1_000_000_000, b"x" * 300), (0, b"zero")]),
    ]
    decoded = PushRequest.FromString(encode_push(streams))
    got = [
        (
            s.labels,
            [(e.timestamp.seconds * 10**9 + e.timestamp.nanos, e.line.encode()) for e in s.entries],
        )
        for s in decoded.streams
    ]
    assert got == streams


@pytest.mark.parametrize(
    "size", [0, 1, 59, 60, 61, 255, 256, 257, 65535, 65536, 70_000, 1 << 24 | 5]
)
def test_snappy_blocks_decode_with_and_without_cramjam(size, monkeypatch):
    cramjam = pytest.importorskip("cramjam")
    data = bytes((i * 7 + i // 251) % 256 for i in range(size))
    assert bytes(cramjam.snappy.decompress_raw(snappy_block(data))) == data
    monkeypatch.setitem(sys.modules, "cramjam", None)  # as if not installed: one literal
    stored = snappy_block(data)
    assert len(stored) <= size + 10
    assert bytes(cramjam.snappy.decompress_raw(stored)) == data


def test_labels_are_quoted_as_loki_parses_them():
    assert (
        label_string({"b": "2", "a": 'say "hi"\\\n\tx'}) == '{a="say \\"hi\\"\\\\\\n\\tx", b="2"}'
    )
    assert label_string({"k": "bell\x07"}) == '{k="bell\\x07"}'


def test_json_format_body_is_lokis_json_push():
    s = sink("loki:http://h:3100?format=json")
    event = api_event()
    labels = s.stream_of(event)
    body = orjson.loads(s.body([(0, labels, 1_234, s.line(event))]))
    assert body["streams"][0]["stream"] == {
        "cluster": "c1", "namespace": "shop", "kind": "Pod", "reason": "BackOff",
        "type": "Warning", "job": "kube-event-shipper",
    }  # fmt: skip
    assert body["streams"][0]["values"] == [["1234", s.line(event).decode()]]


# -- streams, lines, timestamps


def test_default_labels_are_bounded_and_object_names_stay_in_the_line():
    s = sink("loki:http://h:3100")
    event = api_event()
    assert s.stream_of(event) == (
        '{cluster="c1", job="kube-event-shipper", kind="Pod", namespace="shop",'
        ' reason="BackOff", type="Warning"}'
    )
    line = orjson.loads(s.line(event))
    assert line["kubernetes"]["event"]["involved_object"]["name"] == "web-1"
    assert line["kubernetes"]["event"]["metadata"]["uid"] == "u-1"
    assert line["orchestrator"]["cluster"] == {"name": "c1"}


def test_the_line_is_the_same_for_a_replay_of_a_version():
    s = sink("loki:http://h:3100")
    first, replay = api_event(), api_event()
    first.seen_at, replay.seen_at = "2026-11-20T10:00:01.000000Z", "2026-11-21T08:00:00.000000Z"
    assert "created" not in orjson.loads(s.line(first))["event"]
    assert s.line(first) == s.line(replay)
    assert s.stream_of(first) == s.stream_of(replay)


def test_timestamps_keep_one_seconds_events_apart_and_repeat_for_a_replay():
    from shipper.sinks.influxdb import point_time

    a, b = api_event("u-a"), api_event("u-b")
    a2 = api_event("u-a", count=2)
    assert point_time(a) // 10**9 == point_time(b) // 10**9 == 1_795_168_800
    assert len({point_time(a), point_time(b), point_time(a2)}) == 3
    assert point_time(api_event("u-a")) == point_time(a)


def test_labels_choose_among_bounded_names():
    s = sink("loki:http://h:3100?labels=cluster,reason,host&job=")
    assert s.stream_of(api_event()) == '{cluster="c1", host="node-a", reason="BackOff"}'
    with pytest.raises(UsageError, match="'object_name' is unbounded"):
        sink("loki:http://h:3100?labels=reason,object_name")
    with pytest.raises(UsageError, match="unknown label 'pod_ip'"):
        sink("loki:http://h:3100?labels=pod_ip")
    with pytest.raises(UsageError, match=r"'app\.kubernetes\.io' is not a label name"):
        sink("loki:http://h:3100?stream_label=app.kubernetes.io=x")


def test_templated_stream_labels_render_per_event(caplog):
    s = sink(
        "loki:http://h:3100?labels=cluster&stream_label=source=exporter"
        "&stream_label=ns={{ .InvolvedObject.Namespace }}"
        '&stream_label=team={{ index .InvolvedObject.Labels "team" }}'
        "&stream_label=empty={{ .Action }}"
    )
    event = api_event()
    event.labels = {"team": "a"}  # the involved object's labels, as enrichment finds them
    assert s.stream_of(event) == (
        '{cluster="c1", job="kube-event-shipper", ns="shop", source="exporter", team="a"}'
    )
    sink("loki:http://h:3100?stream_label=pod={{ .InvolvedObject.Name }}")
    assert "makes a stream per object or event" in caplog.text
    with pytest.raises(UsageError, match="parameter stream_label ns"):
        sink("loki:http://h:3100?stream_label=ns={{ .InvolvedObject.Nmespace }}")


def test_layout_is_the_line():
    s = sink('loki:http://h:3100?layout={"m":"{{ .Message }}","r":"{{ .Reason }}"}')
    assert s.line(api_event()) == b'{"m":"Back-off restarting","r":"BackOff"}'


# -- connection options


@pytest.mark.parametrize(
    "uri, url",
    [
        ("loki:http://loki:3100", "http://loki:3100/loki/api/v1/push"),
        ("loki:http://loki:3100/", "http://loki:3100/loki/api/v1/push"),
        ("loki:https://loki.example.com/loki/api/v1/push", "https://loki.example.com/loki/api/v1/push"),
        ("loki:http://vl:9428/insert/loki/api/v1/push", "http://vl:9428/insert/loki/api/v1/push"),
    ],
)  # fmt: skip
def test_the_push_url(uri, url):
    assert sink(uri).url == url


def test_credentials_and_tenant_become_headers():
    s = sink("loki:http://u%40x:p%3Ass@h:3100?tenant=team-a")
    assert s.headers["Authorization"] == "Basic " + base64.b64encode(b"u@x:p:ss").decode()
    assert s.headers["X-Scope-OrgID"] == "team-a"
    assert (
        sink("loki:http://h?token=s3cr3t-token").headers["Authorization"] == "Bearer s3cr3t-token"
    )
    described = sink("loki:http://h?user=u&password=s3cr3t-pw&tenant=t").describe()
    assert described == "loki http://h tenant=t"


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("loki:", "--sink loki: no URL given"),
        ("loki:loki:3100", "expected a URL such as http://loki:3100"),
        ("loki:http://h:port", "the port is not a number"),
        ("loki:http://h?password=s3cr3t", "parameter password: given without user="),
        ("loki:http://h?user=u&token=t", "give either token or user/password, not both"),
        ("loki:http://u:p@h?user=v", "the user is given twice"),
        ("loki:http://h?format=xml", "parameter format='xml'"),
        ("loki:https://h?ca_file=/nonexistent/ca.pem", "ca_file='/nonexistent/ca.pem'"),
        ("loki:http://h?header=X-Team", "parameter header='X-Team': expected NAME=VALUE"),
    ],
)  # fmt: skip
def test_bad_uris_are_one_line(uri, expected):
    with pytest.raises(UsageError) as caught:
        sink(uri)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


# -- kubernetes-event-exporter receivers


def loaded_sinks(path: Path) -> list[LokiSink]:
    built = build_sinks([], SinkContext("", None), load(str(path)))
    return [s for s, _settings in built if isinstance(s, LokiSink)]


def test_the_readme_receiver_maps_to_the_sink(tmp_path):
    config = tmp_path / "config.yaml"
    text = (CORPUS / "22-resmoio-readme-loki.yaml").read_text()
    config.write_text(text + "route:\n  routes:\n    - match:\n        - receiver: loki\n")
    (s,) = loaded_sinks(config)
    assert s.url == "http://127.0.0.1:3100/loki/api/v1/push"
    assert s.tenant == "tennantID" and s.headers["X-Scope-OrgID"] == "tennantID"
    assert s.static_labels == {"job": "kube-event-shipper", "foo": "bar"}


def test_a_layout_and_stream_labels_from_a_bitnami_values_file():
    (s,) = loaded_sinks(CORPUS / "51-paulofponciano-bitnami-loki-layout.yaml")
    event = api_event()
    assert orjson.loads(s.line(event))["message"] == "Back-off restarting"
    stream = s.stream_of(event)
    assert 'container="event-exporter"' in stream and 'source="event-exporter"' in stream


def test_sent_update_event_is_accepted_and_tls_keys_map(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "receivers:\n  - name: l\n    loki:\n      url: https://h/loki/api/v1/push\n"
        "      sentUpdateEvent: true\n      tls:\n        insecureSkipVerify: true\n"
        "        serverName: loki.internal\n"
        "      streamLabels:\n        namespace: '{{ .InvolvedObject.Namespace }}'\n"
        "route:\n  routes:\n    - match:\n        - receiver: l\n"
    )
    (s,) = loaded_sinks(config)
    assert s.options.insecure is True and s.options.server_name == "loki.internal"
    assert 'namespace="shop"' in s.stream_of(api_event())

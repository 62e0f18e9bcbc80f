"""What the search sinks put in a _bulk body: ids, targets, de-dotted keys (no server needed)."""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from urllib.parse import quote

import orjson
import pytest

from shipper.event import normalize
from shipper.sinks.base import SinkContext
from shipper.sinks.factory import build_sink

RAW = {
    "metadata": {"uid": "u-1", "resourceVersion": "7", "name": "web.1", "namespace": "shop"},
    "involvedObject": {"kind": "Pod", "name": "web", "namespace": "shop"},
    "reason": "BackOff", "message": "m", "type": "Warning", "count": 4,
    "lastTimestamp": "2026-11-20T23:59:59Z",
}  # fmt: skip


def lines(uri: str) -> list[dict]:
    sink, _ = build_sink(uri, SinkContext("prod", None))
    sink.mode = sink.options.mode if sink.options.mode != "auto" else "dated"
    if sink.options.index_format:
        sink.mode = "dated"
    event = normalize(RAW, "MODIFIED", cluster="prod")
    event.labels = {"app": "web", "app.kubernetes.io/name": "web"}
    return [orjson.loads(line) for line in sink.bulk_body([event]).splitlines() if line]


def make_event():
    event = normalize(RAW, "MODIFIED", cluster="prod")
    event.labels = {"app": "web", "app.kubernetes.io/name": "web"}
    return event


def lines_of(sink, event) -> list[dict]:
    sink.mode = sink.planned_mode()
    return [orjson.loads(line) for line in sink.bulk_body([event]).splitlines() if line]


@pytest.mark.parametrize(
    ("uri", "index"),
    [
        ("elasticsearch:http://es:9200?mode=dated", "kube-events-2026.11.20"),
        ("elasticsearch:http://es:9200?mode=data_stream&index=k8s", "k8s"),
        ("elasticsearch:http://es:9200?mode=alias&index=kubernetes-events", "kubernetes-events"),
        ("opensearch:http://os:9200?index_format=ev-{2006.01.02}", "ev-2026.11.20"),
        ("elasticsearch:http://es:9200?indexFormat=ev-{2006-01-02}-x", "ev-2026-11-20-x"),
    ],
)
def test_each_version_is_created_once_under_a_stable_id(uri, index):
    action, document = lines(uri)
    assert action == {"create": {"_index": index, "_id": "u-1.4"}}
    assert document["kubernetes"]["event"]["count"] == 4
    assert document["@timestamp"] == "2026-11-20T23:59:59.000000Z"


def test_dedot_is_on_by_default_and_can_be_turned_off():
    _, dedotted = lines("elasticsearch:http://es:9200")
    assert dedotted["kubernetes"]["labels"] == {"app": "web", "app_kubernetes_io/name": "web"}
    _, dotted = lines("elasticsearch:http://es:9200?deDot=false")
    assert dotted["kubernetes"]["labels"] == {"app": "web", "app.kubernetes.io/name": "web"}


def test_cluster_name_of_the_sink_wins():
    _, document = lines("elasticsearch:http://es:9200?cluster_name=eu-1")
    assert document["orchestrator"]["cluster"]["name"] == "eu-1"


def test_a_bad_index_format_is_a_usage_error():
    from shipper.uri import UsageError

    with pytest.raises(
        UsageError, match="parameter index_format='ev-%Y': expected a name with a Go date"
    ):
        build_sink("elasticsearch:http://es:9200?index_format=ev-%25Y", SinkContext("", None))


def test_an_index_format_without_a_date_names_one_index():
    # kubernetes-event-exporter writes indexFormat: "kube-events" to that one index, as named.
    sink, _ = build_sink(
        "elasticsearch:http://es:9200?index_format=kube-events-all", SinkContext("", None)
    )
    event = make_event()
    sink.mode = dated_mode = sink.planned_mode()
    assert dated_mode == "dated"
    assert sink.target(event) == "kube-events-all"
    [*_, (_, path, template)] = sink.setup_requests("dated", None)
    assert path == "_index_template/kube-events"
    assert template["index_patterns"] == ["kube-events-all"]
    dated, _ = build_sink(
        "elasticsearch:http://es:9200?index_format=ev-{2006.01}-x", SinkContext("", None)
    )
    dated.mode = dated.planned_mode()
    assert dated.target(event) == f"ev-{event.timestamp[:4]}.{event.timestamp[5:7]}-x"
    assert dated.setup_requests("dated", None)[-1][2]["index_patterns"] == ["ev-*"]


def test_a_cloud_id_gives_the_server():
    from shipper.sinks.search.naming import cloud_url
    from shipper.uri import UsageError

    encoded = base64.b64encode(b"eu-west-1.aws.found.io$abc123$kib456").decode()
    sink, _ = build_sink(f"elasticsearch:?cloudID=prod:{encoded}", SinkContext("", None))
    assert sink.nodes == ["https://abc123.eu-west-1.aws.found.io:443"]
    with_port = base64.b64encode(b"example.cloud.es.io:9243$es1$kb1").decode().rstrip("=")
    assert cloud_url(f"x:{with_port}") == "https://es1.example.cloud.es.io:9243"
    for bad, why in (("...", "expected NAME:BASE64"), ("x:%%%", "not base64"),
                     ("x:" + base64.b64encode(b"host-only").decode(), "HOST$ELASTICSEARCH_ID")):  # fmt: skip
        with pytest.raises(UsageError, match=re.escape(why)):
            build_sink(f"elasticsearch:?cloud_id={quote(bad)}", SinkContext("", None))


def test_a_layout_makes_the_document_and_keeps_the_id():
    layout = quote(
        '{"msg":"{{ .Message }}","app":"{{ index .InvolvedObject.Labels \\"app.kubernetes.io/name\\" }}"}'
    )
    sink, _ = build_sink(f"elasticsearch:http://es:9200?layout={layout}", SinkContext("", None))
    event = make_event()
    action, document = lines_of(sink, event)
    assert action == {"create": {"_index": sink.target(event), "_id": f"{event.uid}.{event.count}"}}
    # Not de-dotted by default under a layout (as the original), so the dotted key is found.
    assert document == {"app": "web", "msg": event.message}
    assert sink.planned_mode() == "dated"
    requests = sink.setup_requests("dated", None)
    assert [path for _, path, _ in requests] == [
        "_component_template/kube-events-settings",
        "_index_template/kube-events",
    ]
    assert requests[-1][2]["composed_of"] == ["kube-events-settings"]
    dedotted, _ = build_sink(
        f"elasticsearch:http://es:9200?de_dot=true&layout={layout}", SinkContext("", None)
    )
    assert lines_of(dedotted, event)[1] == {"app": "", "msg": event.message}


def test_an_event_the_layout_fails_on_is_rejected_alone():
    layout = quote('{"n":"{{ div 4 .Count }}"}')  # Count 0 divides by zero
    sink, _ = build_sink(f"elasticsearch:http://es:9200?layout={layout}", SinkContext("", None))
    sink.mode = sink.planned_mode()
    good, bad = make_event(), replace(make_event(), uid="u-zero", count=0, wire_count=0)
    body, sent, failed = sink.bulk_request([bad, good])
    assert sent == [1]
    assert [r.index for r in failed] == [0] and "layout" in failed[0].reason
    assert orjson.loads(body.splitlines()[1]) == {"n": "1"}


def test_one_batch_across_hours_and_days_names_each_events_own_index():
    # The action line's prefix is kept per target: it must follow every event's own timestamp.
    sink, _ = build_sink(
        "elasticsearch:http://es:9200?index_format=ev-{2006.01.02.15}", SinkContext("", None)
    )
    sink.mode = sink.planned_mode()
    stamps = ["2026-11-20T23:59:59Z", "2026-11-21T00:00:00Z", "2026-11-20T23:00:01Z",
              "2026-11-21T00:59:59Z", "2026-11-20T22:59:59Z"]  # fmt: skip
    events = []
    for n, stamp in enumerate(stamps):
        raw = {**RAW, "lastTimestamp": stamp, "count": n + 1}
        raw["metadata"] = {**RAW["metadata"], "uid": f'u-"{n}\\'}  # quotes in an id stay JSON
        events.append(normalize(raw, "MODIFIED", cluster="prod"))
    actions = [orjson.loads(line) for line in sink.bulk_body(events).splitlines()[::2]]
    assert actions == [
        {"create": {"_index": f"ev-{s[:4]}.{s[5:7]}.{s[8:10]}.{s[11:13]}", "_id": f'u-"{n}\\.{n + 1}'}}
        for n, s in enumerate(stamps)
    ]  # fmt: skip


def test_the_transport_is_imported_without_aiohttp_and_aiohttp_still_imports_after():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from shipper.sinks.search.transport import import_elastic_transport, json_serializer\n"
        "et = import_elastic_transport()\n"
        "assert 'aiohttp' not in sys.modules, 'aiohttp was imported'\n"
        "assert not et._node._http_aiohttp._AIOHTTP_AVAILABLE\n"
        "assert import_elastic_transport() is et\n"
        "assert type(json_serializer(et)).__name__ == 'OrjsonSerializer'\n"
        "import aiohttp\n"
        "print(aiohttp.__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "aiohttp"

"""What the search sinks put in a _bulk body: ids, targets, de-dotted keys (no server needed)."""

from __future__ import annotations

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

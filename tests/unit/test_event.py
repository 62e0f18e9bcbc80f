"""Normalization of both Event API shapes into one record and the flattened document."""

from shipper.event import normalize, normalize_time

CORE = {
    "metadata": {
        "name": "web-1.17a",
        "namespace": "shop",
        "uid": "u-1",
        "resourceVersion": "1234",
        "creationTimestamp": "2026-11-22T10:00:00Z",
    },
    "involvedObject": {
        "kind": "Pod",
        "name": "web-1",
        "namespace": "shop",
        "uid": "pod-uid",
        "apiVersion": "v1",
        "resourceVersion": "99",
        "fieldPath": "spec.containers{web}",
    },
    "reason": "BackOff",
    "message": 'Back-off restarting failed container "web" ✓',
    "source": {"component": "kubelet", "host": "node-a"},
    "firstTimestamp": "2026-11-22T10:00:00Z",
    "lastTimestamp": "2026-11-22T10:05:00Z",
    "count": 7,
    "type": "Warning",
    "reportingComponent": "kubelet",
    "reportingInstance": "node-a",
}

EVENTS_V1 = {
    "metadata": {
        "name": "n1.abc",
        "namespace": "default",
        "uid": "u-2",
        "resourceVersion": "77",
        "creationTimestamp": "2026-11-22T09:00:00Z",
    },
    "eventTime": "2026-11-22T09:00:00.123456Z",
    "series": {"count": 4, "lastObservedTime": "2026-11-22T09:30:00.5Z"},
    "reportingController": "example.com/controller",
    "reportingInstance": "ctrl-0",
    "action": "Reconcile",
    "reason": "NodeNotReady",
    "regarding": {"kind": "Node", "name": "node-a", "uid": "node-uid", "apiVersion": "v1"},
    "note": "Node node-a status is now: NodeNotReady",
    "type": "Normal",
}


def test_core_v1_fields():
    event = normalize(CORE, "ADDED", cluster="prod")
    assert event.key == ("u-1", "1234")
    assert (event.type, event.reason, event.count) == ("Warning", "BackOff", 7)
    assert event.message.endswith("✓")
    assert event.timestamp == "2026-11-22T10:05:00.000000Z"
    assert event.first_timestamp == "2026-11-22T10:00:00.000000Z"
    assert (event.object_kind, event.object_name, event.object_namespace) == (
        "Pod",
        "web-1",
        "shop",
    )
    assert event.object_field_path == "spec.containers{web}"
    assert (event.source_component, event.source_host) == ("kubelet", "node-a")
    assert event.reporting_controller == "kubelet"


def test_events_v1_fields_and_series_time_rule():
    event = normalize(EVENTS_V1, "MODIFIED")
    assert event.count == 4
    assert event.message.startswith("Node node-a")
    # series.lastObservedTime wins over eventTime; the first occurrence is eventTime.
    assert event.timestamp == "2026-11-22T09:30:00.500000Z"
    assert event.first_timestamp == "2026-11-22T09:00:00.123456Z"
    assert event.object_namespace is None  # cluster-scoped
    assert event.reporting_controller == "example.com/controller"
    assert event.action == "Reconcile"


def test_time_falls_back_to_creation():
    obj = {
        "metadata": {
            "uid": "u",
            "resourceVersion": "1",
            "creationTimestamp": "2026-01-01T00:00:00Z",
        }
    }
    event = normalize(obj, "ADDED")
    assert event.timestamp == "2026-01-01T00:00:00.000000Z"
    assert event.count == 1


def test_flattened_document():
    doc = normalize(CORE, "ADDED", cluster="prod").document()
    assert doc["@timestamp"] == "2026-11-22T10:05:00.000000Z"
    assert doc["log"]["level"] == "warning"
    assert doc["event"]["dataset"] == "kubernetes.event"
    assert doc["orchestrator"] == {
        "type": "kubernetes",
        "cluster": {"name": "prod"},
        "namespace": "shop",
    }
    kube = doc["kubernetes"]
    assert kube["namespace"] == "shop"
    assert kube["event"]["count"] == 7
    assert kube["event"]["metadata"]["resource_version"] == "1234"
    assert kube["event"]["involved_object"]["uid"] == "pod-uid"
    assert kube["event"]["timestamp"]["last_occurrence"] == doc["@timestamp"]


def test_node_document_has_no_namespace():
    doc = normalize(EVENTS_V1, "ADDED").document()
    assert "namespace" not in doc["kubernetes"]
    assert "namespace" not in doc["orchestrator"]


def test_time_normalization_sorts_as_text():
    a = normalize_time("2026-11-22T10:00:00Z")
    b = normalize_time("2026-11-22T10:00:00.5Z")
    c = normalize_time("2026-11-22T12:00:00+02:00")
    assert a < b
    assert c == a

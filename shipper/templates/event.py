"""The event as templates see it: kubernetes-event-exporter's ``*kube.EnhancedEvent``.

kubernetes-event-exporter executes ``layout`` templates with a pointer to this struct (its
pkg/kube/event.go): a core/v1 Event embedded (so ``.Reason``, ``.Message``, ``.Count``, ``.Type``,
``.Source.Component``, ``.FirstTimestamp``, and the ObjectMeta's ``.Name``/``.Namespace`` are
promoted), plus ``.ClusterName`` and an ``.InvolvedObject`` that carries the object's
``.Labels`` and ``.Annotations``; methods ``.GetTimestampMs`` and ``.GetTimestampISO8601``.
kube-eventer's templates (``.InvolvedObject.Namespace``, ``.LastTimestamp``) read the same.

Field types follow Go's so functions accept or refuse them as Go does: ``Count`` is an int32,
UIDs a ``types.UID``, times ``v1.Time``/``v1.MicroTime`` (zero, not missing, when absent), label
maps ``map[string]string``. Printing the whole event or encoding it (``{{ toJson . }}``) gives
Go's output for these fields. A few names are this project's own additions, readable but never
printed: ``.Metadata`` (= ``.ObjectMeta``), ``.Note``, ``.Regarding``, ``.DeprecatedSource``,
``.ReportingComponent`` (events.k8s.io/v1 names) and ``.Timestamp``.
"""

from __future__ import annotations

from typing import Any

from shipper.event import Event
from shipper.templates.gojson import encode
from shipper.templates.gotime import GoTime, go_format
from shipper.templates.values import (
    Field,
    GoSlice,
    Int32,
    Int64,
    Method,
    NamedStr,
    Struct,
    str_map,
)


def _uid(value: str | None) -> NamedStr:
    return NamedStr(value or "")


def _object_reference(event: Event) -> Struct:
    return Struct(
        "v1.ObjectReference",
        [
            Field("Kind", event.object_kind or "", "kind,omitempty"),
            Field("Namespace", event.object_namespace or "", "namespace,omitempty"),
            Field("Name", event.object_name or "", "name,omitempty"),
            Field("UID", _uid(event.object_uid), "uid,omitempty"),
            Field("APIVersion", event.object_api_version or "", "apiVersion,omitempty"),
            Field(
                "ResourceVersion", event.object_resource_version or "", "resourceVersion,omitempty"
            ),
            Field("FieldPath", event.object_field_path or "", "fieldPath,omitempty"),
        ],
    )


def _object_meta(event: Event) -> Struct:
    return Struct(
        "v1.ObjectMeta",
        [
            Field("Name", event.name, "name,omitempty"),
            Field("Namespace", event.namespace, "namespace,omitempty"),
            Field("UID", _uid(event.uid), "uid,omitempty"),
            Field("ResourceVersion", event.resource_version, "resourceVersion,omitempty"),
            Field(
                "CreationTimestamp",
                GoTime.parse(event.creation_timestamp, "metav1"),
                "creationTimestamp,omitempty",
            ),
            Field("Labels", str_map(None), "labels,omitempty"),
            Field("Annotations", str_map(None), "annotations,omitempty"),
        ],
    )


def _core_event(event: Event, involved: Struct, meta: Struct, source: Struct) -> Struct:
    """corev1.Event (the fields this project keeps of it), its count and times as the API server
    sent them: zero where the newer recorder leaves them out, as the original shows them."""
    if event.wire_count is None:  # not read from the API: the filled-in values
        count, first, last = event.count, event.first_timestamp, event.last_timestamp
    else:
        count, first, last = event.wire_count, event.wire_first, event.wire_last
    type_meta = Struct(
        "v1.TypeMeta",
        [
            Field("Kind", "Event", "kind,omitempty"),
            Field("APIVersion", "v1", "apiVersion,omitempty"),
        ],
    )
    return Struct(
        "v1.Event",
        [
            Field("TypeMeta", type_meta, ",inline", embedded=True),
            Field("ObjectMeta", meta, "metadata", embedded=True),
            Field("InvolvedObject", involved, "involvedObject"),
            Field("Reason", event.reason, "reason,omitempty"),
            Field("Message", event.message, "message,omitempty"),
            Field("Source", source, "source,omitempty"),
            Field("FirstTimestamp", GoTime.parse(first, "metav1"), "firstTimestamp,omitempty"),
            Field("LastTimestamp", GoTime.parse(last, "metav1"), "lastTimestamp,omitempty"),
            Field("Count", Int32(count), "count,omitempty"),
            Field("Type", event.type, "type,omitempty"),
            Field("EventTime", GoTime.parse(event.event_time, "micro"), "eventTime,omitempty"),
            Field("Series", _series(event), "series,omitempty"),
            Field("Action", event.action or "", "action,omitempty"),
            Field("ReportingController", event.reporting_controller or "", "reportingComponent"),
            Field("ReportingInstance", event.reporting_instance or "", "reportingInstance"),
        ],
    )


NO_OWNERS = GoSlice(elem="v1.OwnerReference", nil=True)


def event_context(event: Event, cluster: str = "") -> Struct:
    """``*kube.EnhancedEvent`` for ``event``; ``cluster`` (else the event's) is ``.ClusterName``."""
    plain_ref = _object_reference(event)
    enhanced_ref = Struct(
        "kube.EnhancedObjectReference",
        [
            Field("ObjectReference", plain_ref, ",inline", embedded=True),
            Field("Labels", str_map(event.labels), "labels,omitempty"),
            Field("Annotations", str_map(event.annotations), "annotations,omitempty"),
            Field("OwnerReferences", NO_OWNERS, "ownerReferences,omitempty"),
            # True when the object was gone at lookup; the watch never reads that: false here.
            Field("Deleted", False, "deleted"),
        ],
    )
    meta = _object_meta(event)
    source = Struct(
        "v1.EventSource",
        [
            Field("Component", event.source_component or "", "component,omitempty"),
            Field("Host", event.source_host or "", "host,omitempty"),
        ],
    )
    core = _core_event(event, _object_reference(event), meta, source)
    enhanced = Struct(
        "kube.EnhancedEvent",
        [
            Field("Event", core, ",inline", embedded=True),
            Field("ClusterName", cluster or event.cluster, "clusterName"),
            Field("InvolvedObject", enhanced_ref, "involvedObject"),
        ],
        pointer=True,
    )
    _add_methods(enhanced)
    enhanced.extras.update(
        Metadata=meta, Note=event.message, Regarding=enhanced_ref, DeprecatedSource=source,
        ReportingComponent=event.reporting_controller or "",
        Timestamp=GoTime.parse(event.timestamp, "metav1"),
    )  # fmt: skip
    return enhanced


def _series(event: Event) -> Struct | None:
    """``*v1.EventSeries``: nil unless the API server sent a series."""
    if event.wire_series is None:
        return None
    count, observed = event.wire_series
    return Struct(
        "v1.EventSeries",
        [
            Field("Count", Int32(count), "count"),
            Field("LastObservedTime", GoTime.parse(observed or None, "micro"), "lastObservedTime"),
        ],
        pointer=True,
    )


def _timestamp(event: Struct) -> GoTime:
    """kubernetes-event-exporter's choice: FirstTimestamp, else EventTime."""
    first = event.lookup("FirstTimestamp")[1]
    return first if not first.is_zero() else event.lookup("EventTime")[1]


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // b
    return q if a >= 0 else -q


def _add_methods(event: Struct) -> None:
    event.methods.update(
        GetTimestampMs=Method((), lambda: Int64(_trunc_div(_timestamp(event).unix_nano(), 10**6))),
        GetTimestampISO8601=Method(
            (), lambda: go_format(_timestamp(event).moment, "2006-01-02T15:04:05.000Z")
        ),
        ToJSON=Method((), lambda: encode(event).encode()),
        DeDot=Method((), lambda: _dedot(event)),
    )


def _dedot(event: Struct) -> Struct:
    """EnhancedEvent.DeDot: a copy whose label and annotation keys have "_" for ".";
    a value receiver, so the copy is a struct, not a pointer."""
    import copy

    clone = copy.deepcopy(event)
    clone.pointer = False
    clone.methods = {"DeDot": Method((), lambda: _dedot(clone))}  # the pointer methods are gone
    for holder in (clone.lookup("ObjectMeta")[1], clone.lookup("InvolvedObject")[1]):
        for f in holder.fields:
            if f.name in ("Labels", "Annotations") and f.value:
                f.value = str_map({k.replace(".", "_"): v for k, v in f.value.items()})
    return clone


def sample_events() -> list[Event]:
    """Events to render every template with at start-up: a Warning with hostile text and labels,
    a Normal one with most fields empty (a cluster-scoped object, no labels)."""
    base: dict[str, Any] = dict(
        uid="00000000-0000-0000-0000-000000000000", resource_version="1", name="web-1.17c",
        namespace="default", reason="BackOff", count=3,
        timestamp="2024-05-01T12:00:00.000000Z", first_timestamp="2024-05-01T11:00:00.000000Z",
        last_timestamp="2024-05-01T12:00:00.000000Z", event_time=None,
        creation_timestamp="2024-05-01T11:00:00.000000Z", action=None,
        reporting_controller="kubelet", reporting_instance="node-a", source_component="kubelet",
        source_host="node-a", object_uid="u", object_api_version="v1",
        object_resource_version="9", object_field_path=None, seen_at="2024-05-01T12:00:00.000000Z",
        watch_type="ADDED", cluster="sample",
    )  # fmt: skip
    hostile = 'Back-off "restarting" \\ C:\\x\n\t\x01 {{ .Reason }} </script> \u2028 \U0001f525'
    return [
        Event(
            **base,
            type="Warning",
            message=hostile,
            object_kind="Pod",
            object_name="web-1",
            object_namespace="shop",
            labels={"app": "web", "app.kubernetes.io/name": "x"},
            annotations={"a": "b"},
        ),
        Event(
            **{**base, "source_component": None, "source_host": None, "count": 1},
            type="Normal",
            message="",
            object_kind="Node",
            object_name="node-a",
            object_namespace=None,
        ),
    ]

"""The normalized event and its flattened document.

core/v1 Event and events.k8s.io/v1 Event are two views of one stored object. :func:`normalize`
reads either shape (the structs shipper/source/wire.py decodes the API's bytes into, or a
decoded JSON dict) into one :class:`Event`; :meth:`Event.document` gives the flattened schema
every JSON store shares (the field names of Metricbeat's ``kubernetes.event`` dataset plus a few
ECS fields), and :meth:`Event.document_json` the same as JSON, made once per event version and
shared by the sinks.

Timestamps stay strings, normalized to ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC) so they sort and
compare as text: parsing them into datetimes per event would cost more than everything else.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec

from shipper.source.wire import EventSource, ObjectRef, WireEvent, convert

LEVELS = {"Normal": "info", "Warning": "warning"}


_TIMES: dict[str, str | None] = {}  # recent API times, normalized: they repeat within an event
_TIMES_MAX = 4096  # and across a burst; emptied when full (a dict's get/set are thread-safe)


def normalize_time(value: Any) -> str | None:
    """RFC 3339 UTC from the API (``...Z``, with or without a fraction) to a fixed width form."""
    if not value or not isinstance(value, str):
        return None
    known = _TIMES.get(value, _TIMES)
    if known is not _TIMES:
        return known  # type: ignore[return-value]
    if len(_TIMES) >= _TIMES_MAX:
        _TIMES.clear()
    result = _TIMES[value] = _normalize_time(value)
    return result


def _normalize_time(value: str) -> str | None:
    if not value.endswith("Z"):
        return _normalize_offset_time(value)
    body = value[:-1]
    seconds, dot, fraction = body.partition(".")
    if len(seconds) != 19:
        return None
    return f"{seconds}.{(fraction if dot else '')[:6].ljust(6, '0')}Z"


def _normalize_offset_time(value: str) -> str | None:
    # The API always writes UTC with "Z"; an offset only comes from hand-made events or files.
    from datetime import UTC, datetime

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_now_cache: tuple[int, str] = (0, "")


def utc_now() -> str:
    """Now, as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``. The seconds part is formatted once per second
    (strftime per event showed in the profile); a stale tuple read by another thread is only
    ever the previous second's, and the check below then formats it again."""
    global _now_cache
    seconds = time.time()
    whole = int(seconds)
    cached_whole, prefix = _now_cache
    if cached_whole != whole:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _now_cache = (whole, prefix)
    return f"{prefix}.{int((seconds - whole) * 1e6):06d}Z"


@dataclass(slots=True)
class Event:
    """One occurrence of a Kubernetes Event as shipped: identity is (uid, resource_version)."""

    #: What the document is: "event" here, "audit" for shipper/audit/record.py's AuditEvent.
    kind: ClassVar[str] = "event"
    uid: str
    resource_version: str
    name: str
    namespace: str
    type: str
    reason: str
    message: str
    count: int
    timestamp: str  # the occurrence: series.lastObservedTime > lastTimestamp > eventTime > created
    first_timestamp: str
    last_timestamp: str
    event_time: str | None
    creation_timestamp: str | None
    action: str | None
    reporting_controller: str | None
    reporting_instance: str | None
    source_component: str | None
    source_host: str | None
    object_kind: str | None
    object_name: str | None
    object_namespace: str | None
    object_uid: str | None
    object_api_version: str | None
    object_resource_version: str | None
    object_field_path: str | None
    seen_at: str
    watch_type: str  # ADDED, MODIFIED, or LISTED (found by a list, not a watch)
    cluster: str = ""
    #: The involved object's labels and annotations, when enrichment looked them up.
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    #: The involved object's top controller (a Pod's Deployment): kind, name, api_version, uid
    #: and labels, when enrichment found it (shipper/enrich.py).
    owner: dict[str, Any] | None = None
    #: core/v1's count, firstTimestamp and lastTimestamp exactly as the API server sent them
    #: (0 / None when the newer recorder left them out), for templates that read them as
    #: kubernetes-event-exporter shows them; the fields above are the filled-in ones. None for
    #: an event not read from the API (a digest's stand-in): templates use the fields above.
    wire_count: int | None = None
    wire_first: str | None = None
    wire_last: str | None = None
    #: core/v1's series (count, lastObservedTime) when the API server sent one.
    wire_series: tuple[int, str] | None = None
    #: :meth:`document_json`'s last result: (cluster, bytes). Not an init field, so a copy made
    #: with dataclasses.replace (deDot changes labels) starts without it.
    _json: tuple[str, bytes] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def key(self) -> tuple[str, str]:
        return self.uid, self.resource_version

    @property
    def level(self) -> str:
        return LEVELS.get(self.type, self.type.lower() or "info")

    def describe(self) -> str:
        """``Warning BackOff pod/ns/name`` for log lines."""
        obj = "/".join(p for p in (self.object_namespace, self.object_name) if p)
        return f"{self.type} {self.reason} {(self.object_kind or '').lower()}/{obj}"

    def document(self) -> dict[str, Any]:
        """The flattened document (CONVENTIONS.md); empty values are left out. A new dict on
        every call: the caller may change it."""
        involved: dict[str, Any] = {}
        for key, value in (
            ("kind", self.object_kind),
            ("name", self.object_name),
            ("namespace", self.object_namespace),
            ("uid", self.object_uid),
            ("api_version", self.object_api_version),
            ("resource_version", self.object_resource_version),
            ("field_path", self.object_field_path),
        ):
            if value:
                involved[key] = value
        kube_event: dict[str, Any] = {"reason": self.reason} if self.reason else {}
        for key, value in (
            ("type", self.type),
            ("action", self.action),
            ("reporting_controller", self.reporting_controller),
            ("reporting_instance", self.reporting_instance),
        ):
            if value:
                kube_event[key] = value
        source = {}
        if self.source_component:
            source["component"] = self.source_component
        if self.source_host:
            source["host"] = self.source_host
        if source:
            kube_event["source"] = source
        kube_event["count"] = self.count
        kube_event["timestamp"] = {
            "first_occurrence": self.first_timestamp,
            "last_occurrence": self.last_timestamp,
        }
        metadata = {}
        for key, value in (
            ("name", self.name),
            ("namespace", self.namespace),
            ("uid", self.uid),
            ("resource_version", self.resource_version),
        ):
            if value:
                metadata[key] = value
        if metadata:
            kube_event["metadata"] = metadata
        if involved:
            kube_event["involved_object"] = involved
        kubernetes: dict[str, Any] = {"event": kube_event}
        if self.labels:
            kubernetes["labels"] = dict(self.labels)
        if self.annotations:
            kubernetes["annotations"] = dict(self.annotations)
        if self.owner:
            kubernetes["owner"] = dict(self.owner)
        orchestrator: dict[str, Any] = {"type": "kubernetes"}
        if self.cluster:
            orchestrator["cluster"] = {"name": self.cluster}
        if self.object_namespace:
            kubernetes["namespace"] = self.object_namespace
            orchestrator["namespace"] = self.object_namespace
        return {
            "@timestamp": self.timestamp,
            "message": self.message,
            "event": {
                "kind": "event",
                "dataset": "kubernetes.event",
                "module": "kubernetes",
                "created": self.seen_at,
                "start": self.first_timestamp,
                "end": self.last_timestamp,
            },
            "log": {"level": self.level},
            "orchestrator": orchestrator,
            "kubernetes": kubernetes,
        }

    def document_json(self, cluster: str = "") -> bytes:
        """:meth:`document` as JSON, with ``orchestrator.cluster`` set to ``cluster`` when one
        is given (every JSON sink does that). Encoded once per event version and cluster and
        then shared: each sink that gets the event reuses the same bytes. The event must not
        change afterwards (enrichment, the only thing that changes an event, runs before the
        sinks get it)."""
        key = cluster or self.cluster
        cached = self._json
        if cached is not None and cached[0] == key:
            return cached[1]
        encoded = _ENCODE(_document_struct(self, key))
        self._json = (key, encoded)
        return encoded


# The document as msgspec structs, for document_json: built and encoded in C, 30% less CPU
# than the dicts and orjson, the same bytes (fields in the dicts' order; None is left out, as
# document() leaves out empty values; the unit tests compare the two). The result is also the
# exact size: orjson's keeps its whole growth buffer (about 4 KiB for a 1.2 KiB document), which
# a cached document would hold while its event waits in the other sinks' queues.
_OMIT = {"omit_defaults": True, "gc": False}


class _Involved(msgspec.Struct, **_OMIT):
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    api_version: str | None = None
    resource_version: str | None = None
    field_path: str | None = None


class _Source(msgspec.Struct, **_OMIT):
    component: str | None = None
    host: str | None = None


class _Times(msgspec.Struct, **_OMIT):
    first_occurrence: str
    last_occurrence: str


class _Meta(msgspec.Struct, **_OMIT):
    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None


class _KubeEvent(msgspec.Struct, **_OMIT, kw_only=True):
    reason: str | None = None
    type: str | None = None
    action: str | None = None
    reporting_controller: str | None = None
    reporting_instance: str | None = None
    source: _Source | None = None
    count: int
    timestamp: _Times
    metadata: _Meta | None = None
    involved_object: _Involved | None = None


class _Kubernetes(msgspec.Struct, **_OMIT):
    event: _KubeEvent
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    owner: dict[str, Any] | None = None
    namespace: str | None = None


class _Cluster(msgspec.Struct, **_OMIT):
    name: str


class _Orchestrator(msgspec.Struct, **_OMIT):
    type: str
    cluster: _Cluster | None = None
    namespace: str | None = None


class _OrchestratorLate(msgspec.Struct, **_OMIT):
    """A sink's cluster name on an event without one: it comes last, as when a sink sets it in
    :meth:`Event.document`'s dict."""

    type: str
    namespace: str | None = None
    cluster: _Cluster | None = None


class _EventMeta(msgspec.Struct, **_OMIT):
    kind: str
    dataset: str
    module: str
    created: str
    start: str
    end: str


class _Log(msgspec.Struct, **_OMIT):
    level: str


class _Document(msgspec.Struct, **_OMIT):
    timestamp: str = msgspec.field(name="@timestamp")
    message: str
    event: _EventMeta
    log: _Log
    orchestrator: _Orchestrator | _OrchestratorLate
    kubernetes: _Kubernetes


_ENCODE = msgspec.json.Encoder().encode


def _document_struct(e: Event, cluster: str) -> _Document:
    """:meth:`Event.document` (with ``cluster``) as structs; empty strings left out as there."""
    involved = (
        e.object_kind, e.object_name, e.object_namespace, e.object_uid, e.object_api_version,
        e.object_resource_version, e.object_field_path,
    )  # fmt: skip
    meta = (e.name, e.namespace, e.uid, e.resource_version)
    kube_event = _KubeEvent(
        reason=e.reason or None,
        type=e.type or None,
        action=e.action or None,
        reporting_controller=e.reporting_controller or None,
        reporting_instance=e.reporting_instance or None,
        source=(
            _Source(e.source_component or None, e.source_host or None)
            if e.source_component or e.source_host
            else None
        ),
        count=e.count,
        timestamp=_Times(e.first_timestamp, e.last_timestamp),
        metadata=_Meta(*(v or None for v in meta)) if any(meta) else None,
        involved_object=_Involved(*(v or None for v in involved)) if any(involved) else None,
    )
    namespace = e.object_namespace or None
    times = (e.seen_at, e.first_timestamp, e.last_timestamp)
    return _Document(
        e.timestamp,
        e.message,
        _EventMeta("event", "kubernetes.event", "kubernetes", *times),
        _Log(e.level),
        (
            _Orchestrator("kubernetes", _Cluster(cluster) if cluster else None, namespace)
            if e.cluster or not cluster
            else _OrchestratorLate("kubernetes", namespace, _Cluster(cluster))
        ),
        _Kubernetes(
            kube_event, e.labels or None, e.annotations or None, e.owner or None, namespace
        ),
    )


class NotAnEvent(ValueError):
    """The object lacks what every Event has (metadata.uid, metadata.resourceVersion)."""


def normalize(
    obj: dict[str, Any] | WireEvent, watch_type: str, cluster: str = "", now: str | None = None
) -> Event:
    """Read a core/v1 or events.k8s.io/v1 Event into an :class:`Event`: a decoded JSON object
    (a dict), or the struct the source decodes the API's bytes into (shipper/source/wire.py).
    ``now`` (utc_now()) is when it was read: one list page is read at one moment."""
    if not isinstance(obj, WireEvent):
        try:
            obj = convert(obj)
        except ValueError as exc:
            raise NotAnEvent(f"not an Event: {exc}") from None
    return _normalize(obj, watch_type, cluster, now or utc_now())


_NO_OBJECT, _NO_SOURCE = ObjectRef(), EventSource()


def _shared(text: str | None) -> str | None:
    """One string object for the values that repeat from event to event (type, reason,
    namespace, kind, component, host...): each queued event then holds a pointer, not a copy
    (about a third of a queued event's memory). None for empty."""
    return sys.intern(text) if text else None


def _normalize(obj: WireEvent, watch_type: str, cluster: str, now: str) -> Event:
    meta = obj.metadata
    uid, rv = meta.uid, meta.resourceVersion
    if not uid or not rv:
        raise NotAnEvent("an Event without metadata.uid or metadata.resourceVersion")
    if obj.regarding is not None or obj.note is not None or obj.deprecatedSource is not None:
        # events.k8s.io/v1 names the same fields differently
        involved, message, source = obj.regarding, obj.note, obj.deprecatedSource
        legacy_count, controller = obj.deprecatedCount, obj.reportingController
        first, last = obj.deprecatedFirstTimestamp, obj.deprecatedLastTimestamp
    else:
        involved, message, source = obj.involvedObject, obj.message, obj.source
        legacy_count, controller = obj.count, obj.reportingComponent
        first, last = obj.firstTimestamp, obj.lastTimestamp
    involved, source = involved or _NO_OBJECT, source or _NO_SOURCE
    series = obj.series
    if series is not None and series.count is None and series.lastObservedTime is None:
        series = None  # "series": {} says nothing
    created = normalize_time(meta.creationTimestamp)
    event_time = normalize_time(obj.eventTime)
    first_ts = normalize_time(first)
    last_ts = normalize_time(last)
    observed = normalize_time(series.lastObservedTime) if series is not None else None
    occurred = observed or last_ts or event_time or created or now
    count = (series.count if series is not None else None) or legacy_count or 1
    # Positional, in Event's field order (with 36 keywords the call cost twice the time);
    # the names are in the comments, and the unit tests check every field by name.
    return Event(
        uid, rv, meta.name or "", _shared(meta.namespace) or "",  # name, namespace
        _shared(obj.type) or "", _shared(obj.reason) or "", message or "", int(count),
        occurred, first_ts or event_time or created or occurred, occurred,  # timestamp, first, last
        event_time, created, obj.action or None,  # event_time, creation_timestamp, action
        _shared(controller), _shared(obj.reportingInstance),  # reporting_controller, _instance
        _shared(source.component), _shared(source.host),  # source_component, source_host
        _shared(involved.kind), involved.name or None, _shared(involved.namespace),  # object_*
        involved.uid or None, _shared(involved.apiVersion), involved.resourceVersion or None,
        _shared(involved.fieldPath), now, watch_type, cluster,  # ..., seen_at, watch_type, cluster
        None, None, None,  # labels, annotations, owner: enrichment's
        int(legacy_count or 0), first_ts, last_ts,  # wire_count, wire_first, wire_last
        (int(series.count or 0), series.lastObservedTime or "") if series is not None else None,
    )  # fmt: skip

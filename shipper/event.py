"""The normalized event and its flattened document.

core/v1 Event and events.k8s.io/v1 Event are two views of one stored object. :func:`normalize`
reads either JSON shape (decoded straight from the watch stream, no client models) into one
:class:`Event`; :meth:`Event.document` gives the flattened schema every JSON store shares (the
field names of Metricbeat's ``kubernetes.event`` dataset plus a few ECS fields).

Timestamps stay strings, normalized to ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC) so they sort and
compare as text: parsing them into datetimes per event would cost more than everything else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

LEVELS = {"Normal": "info", "Warning": "warning"}


def normalize_time(value: Any) -> str | None:
    """RFC 3339 UTC from the API (``...Z``, with or without a fraction) to a fixed width form."""
    if not value or not isinstance(value, str):
        return None
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


def utc_now() -> str:
    seconds = time.time()
    whole = int(seconds)
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        + f".{int((seconds - whole) * 1e6):06d}Z"
    )


@dataclass(slots=True)
class Event:
    """One occurrence of a Kubernetes Event as shipped: identity is (uid, resource_version)."""

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
        """The flattened document (CONVENTIONS.md); empty values are left out."""
        involved = _compact(
            {
                "kind": self.object_kind,
                "name": self.object_name,
                "namespace": self.object_namespace,
                "uid": self.object_uid,
                "api_version": self.object_api_version,
                "resource_version": self.object_resource_version,
                "field_path": self.object_field_path,
            }
        )
        kube_event = _compact(
            {
                "reason": self.reason,
                "type": self.type,
                "action": self.action,
                "reporting_controller": self.reporting_controller,
                "reporting_instance": self.reporting_instance,
                "source": _compact({"component": self.source_component, "host": self.source_host}),
                "count": self.count,
                "timestamp": {
                    "first_occurrence": self.first_timestamp,
                    "last_occurrence": self.last_timestamp,
                },
                "metadata": _compact(
                    {
                        "name": self.name,
                        "namespace": self.namespace,
                        "uid": self.uid,
                        "resource_version": self.resource_version,
                    }
                ),
                "involved_object": involved,
            }
        )
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


def _compact(mapping: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if value not in (None, "", {})}


class NotAnEvent(ValueError):
    """The object lacks what every Event has (metadata.uid, metadata.resourceVersion)."""


@dataclass(frozen=True)
class _View:
    """Where one of the two views of an Event keeps the fields they name differently."""

    involved: str
    message: str
    source: str
    count: str
    first: str
    last: str
    controller: str


_CORE_V1 = _View(
    "involvedObject", "message", "source", "count", "firstTimestamp", "lastTimestamp",
    "reportingComponent",
)  # fmt: skip
_EVENTS_V1 = _View(
    "regarding", "note", "deprecatedSource", "deprecatedCount", "deprecatedFirstTimestamp",
    "deprecatedLastTimestamp", "reportingController",
)  # fmt: skip


def normalize(obj: dict[str, Any], watch_type: str, cluster: str = "") -> Event:
    """Read a core/v1 or events.k8s.io/v1 Event (a decoded JSON object) into an :class:`Event`."""
    meta = obj.get("metadata") or {}
    uid, rv = meta.get("uid"), meta.get("resourceVersion")
    if not uid or not rv:
        raise NotAnEvent("an Event without metadata.uid or metadata.resourceVersion")
    events_v1 = "regarding" in obj or "note" in obj or "deprecatedSource" in obj
    names = _EVENTS_V1 if events_v1 else _CORE_V1
    involved = obj.get(names.involved) or {}
    message = obj.get(names.message) or ""
    source = obj.get(names.source) or {}
    legacy_count = obj.get(names.count)
    first, last = obj.get(names.first), obj.get(names.last)
    controller = obj.get(names.controller)
    series = obj.get("series") or {}
    created = normalize_time(meta.get("creationTimestamp"))
    event_time = normalize_time(obj.get("eventTime"))
    first_ts = normalize_time(first)
    last_ts = normalize_time(last)
    occurred = normalize_time(series.get("lastObservedTime")) or last_ts or event_time or created
    now = utc_now()
    occurred = occurred or now
    count = series.get("count") or legacy_count or 1
    return Event(
        uid=uid,
        resource_version=rv,
        name=meta.get("name") or "",
        namespace=meta.get("namespace") or "",
        type=obj.get("type") or "",
        reason=obj.get("reason") or "",
        message=message,
        count=int(count),
        timestamp=occurred,
        first_timestamp=first_ts or event_time or created or occurred,
        last_timestamp=occurred,
        event_time=event_time,
        creation_timestamp=created,
        action=obj.get("action") or None,
        reporting_controller=controller or None,
        reporting_instance=obj.get("reportingInstance") or None,
        source_component=source.get("component") or None,
        source_host=source.get("host") or None,
        object_kind=involved.get("kind") or None,
        object_name=involved.get("name") or None,
        object_namespace=involved.get("namespace") or None,
        object_uid=involved.get("uid") or None,
        object_api_version=involved.get("apiVersion") or None,
        object_resource_version=involved.get("resourceVersion") or None,
        object_field_path=involved.get("fieldPath") or None,
        seen_at=now,
        watch_type=watch_type,
        cluster=cluster,
        wire_count=int(legacy_count or 0),
        wire_first=first_ts,
        wire_last=last_ts,
        wire_series=(
            (int(series.get("count") or 0), series.get("lastObservedTime") or "")
            if series
            else None
        ),
    )

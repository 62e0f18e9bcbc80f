"""The inverse of :meth:`shipper.event.Event.document`: an Event rebuilt from its document.

The kafka source reads what shippers in other clusters wrote with the kafka sink (the document
as JSON) and hands it to this shipper's sinks as the :class:`~shipper.event.Event` it was, so
``Event.document()`` of the result equals the document read (cluster name included). What the
document does not carry stays empty: ``event_time`` and ``creation_timestamp`` (folded into the
timestamps already), and the raw wire fields that only kubernetes-event-exporter's templates
read (``wire_count`` and friends, set from count and the timestamps here).

A message that is not such a document raises :class:`PoisonMessage` with the reason; the source
dead-letters it with its topic, partition and offset.
"""

from __future__ import annotations

from typing import Any

import orjson

from shipper.event import Event


class PoisonMessage(ValueError):
    """Not a document the kafka sink wrote (or one of a schema this version cannot read)."""


def _text(node: dict[str, Any], key: str) -> str | None:
    value = node.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PoisonMessage(f"{key} is {type(value).__name__}, not a string")
    return value or None


def _object(node: Any, path: str) -> dict[str, Any]:
    if node is None:
        return {}
    if not isinstance(node, dict):
        raise PoisonMessage(f"{path} is {type(node).__name__}, not an object")
    return node


def event_from_json(value: bytes | None, watch_type: str = "KAFKA") -> Event:
    """An Event from a kafka message's value (the JSON document)."""
    if not value:
        raise PoisonMessage("an empty message")
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise PoisonMessage(f"not JSON: {exc}") from None
    return event_from_document(document, watch_type)


def event_from_document(document: Any, watch_type: str = "KAFKA") -> Event:
    """An Event whose :meth:`~shipper.event.Event.document` is ``document``."""
    if not isinstance(document, dict):
        raise PoisonMessage(f"the value is JSON {type(document).__name__}, not an object")
    meta_event = _object(document.get("event"), "event")
    if meta_event.get("dataset") == "kubernetes.audit" and meta_event.get("kind") == "event":
        return _audit_event(document)
    if meta_event.get("dataset") != "kubernetes.event" or meta_event.get("kind") != "event":
        # kube-eventer's {"EventValue": ...} and anything else that is not our document
        raise PoisonMessage(
            "not a kube-event-shipper document (event.dataset is not kubernetes.event)"
        )
    kubernetes = _object(document.get("kubernetes"), "kubernetes")
    kube_event = _object(kubernetes.get("event"), "kubernetes.event")
    metadata = _object(kube_event.get("metadata"), "kubernetes.event.metadata")
    uid, rv = _text(metadata, "uid"), _text(metadata, "resource_version")
    if not uid or not rv:
        raise PoisonMessage("kubernetes.event.metadata lacks uid or resource_version")
    count = kube_event.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise PoisonMessage(f"kubernetes.event.count is {count!r}, not a positive integer")
    timestamps = _object(kube_event.get("timestamp"), "kubernetes.event.timestamp")
    timestamp = _text(document, "@timestamp")
    if not timestamp:
        raise PoisonMessage("no @timestamp")
    message = document.get("message")
    if not isinstance(message, str):
        raise PoisonMessage("message is not a string")
    involved = _object(kube_event.get("involved_object"), "kubernetes.event.involved_object")
    source = _object(kube_event.get("source"), "kubernetes.event.source")
    orchestrator = _object(document.get("orchestrator"), "orchestrator")
    cluster = _object(orchestrator.get("cluster"), "orchestrator.cluster")
    first = _text(timestamps, "first_occurrence") or _text(meta_event, "start") or timestamp
    last = _text(timestamps, "last_occurrence") or _text(meta_event, "end") or timestamp
    owner = kubernetes.get("owner")
    labels, annotations = kubernetes.get("labels"), kubernetes.get("annotations")
    return Event(
        uid=uid,
        resource_version=rv,
        name=_text(metadata, "name") or "",
        namespace=_text(metadata, "namespace") or "",
        type=_text(kube_event, "type") or "",
        reason=_text(kube_event, "reason") or "",
        message=message,
        count=count,
        timestamp=timestamp,
        first_timestamp=first,
        last_timestamp=last,
        event_time=None,
        creation_timestamp=None,
        action=_text(kube_event, "action"),
        reporting_controller=_text(kube_event, "reporting_controller"),
        reporting_instance=_text(kube_event, "reporting_instance"),
        source_component=_text(source, "component"),
        source_host=_text(source, "host"),
        object_kind=_text(involved, "kind"),
        object_name=_text(involved, "name"),
        object_namespace=_text(involved, "namespace"),
        object_uid=_text(involved, "uid"),
        object_api_version=_text(involved, "api_version"),
        object_resource_version=_text(involved, "resource_version"),
        object_field_path=_text(involved, "field_path"),
        seen_at=_text(meta_event, "created") or timestamp,
        watch_type=watch_type,
        cluster=_text(cluster, "name") or "",
        labels=dict(labels) if isinstance(labels, dict) and labels else None,
        annotations=dict(annotations) if isinstance(annotations, dict) and annotations else None,
        owner=dict(owner) if isinstance(owner, dict) and owner else None,
        wire_count=count,
        wire_first=first,
        wire_last=last,
    )


def _audit_event(document: dict[str, Any]) -> Event:
    """An audit document (shipper/audit/record.py) back into its AuditEvent."""
    from shipper.audit.record import NotAnAuditEvent, from_document

    try:
        return from_document(document)
    except (NotAnAuditEvent, ValueError, TypeError, AttributeError) as exc:
        raise PoisonMessage(f"not an audit document: {exc}") from None

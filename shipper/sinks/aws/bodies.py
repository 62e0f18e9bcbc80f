"""What an AWS sink sends: the event document or a layout's body, cut to a size, and the
attributes and ids that carry the event version (shipper/sinks/aws/common.py uses them)."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson

from shipper.event import Event
from shipper.templates import TemplateError

CUT_MARKER = " [message cut by kube-event-shipper: {cut} of {total} bytes left out]"


def document(event: Event, cluster: str) -> dict[str, Any]:
    doc = event.document()
    if cluster:
        doc["orchestrator"]["cluster"] = {"name": cluster}
    return doc


class TooLarge(Exception):
    """The body cannot be made to fit: the event is dead-lettered with this reason."""


def encode_body(
    event: Event, layout: Any, cluster: str, limit: int, what: str = "message"
) -> tuple[bytes, bool]:
    """The body (the event document, or the layout's), at most ``limit`` bytes; returns
    (body, cut). A document over the limit has its ``message`` field cut, the cut marked at its
    end; a layout body (whose fields we do not know), or a document still too large without its
    message (huge labels), raises :class:`TooLarge`; a layout that fails raises it too."""
    if layout is not None:
        try:
            body = layout.encode(event, cluster)
        except TemplateError as exc:
            raise TooLarge(f"the layout failed: {exc}") from None
        if len(body) > limit:
            raise TooLarge(
                f"the layout's body is {len(body)} bytes, over the {what} limit of {limit} bytes"
            )
        return body, False
    doc = document(event, cluster)
    body = orjson.dumps(doc)
    if len(body) <= limit:
        return body, False
    text = doc["message"]
    total = len(text.encode())
    best, lo, hi = None, 0, len(text)
    while lo <= hi:  # the longest head of the message that fits with the marker
        mid = (lo + hi) // 2
        head = text[:mid]
        doc["message"] = head + CUT_MARKER.format(cut=total - len(head.encode()), total=total)
        candidate = orjson.dumps(doc)
        if len(candidate) <= limit:
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    if best is None:
        raise TooLarge(
            f"the event document is {len(body)} bytes, over the {what} limit of {limit} bytes"
            " even with its message cut"
        )
    return best, True


def version_id(event: Event) -> str:
    """``<uid>.<count>``, the same for every copy of one event version."""
    return f"{event.uid}.{event.count}"


def dedup_id(event: Event) -> str:
    """SQS/SNS FIFO MessageDeduplicationId: the version id, or its SHA-256 if over 128 chars."""
    text = version_id(event)
    return text if len(text) <= 128 else hashlib.sha256(text.encode()).hexdigest()


def attributes(event: Event, cluster: str) -> dict[str, dict[str, str]]:
    """SQS/SNS message attributes (SNS subscription filter policies can match them); empty
    values are left out, as both services refuse them."""
    values = {
        "version_id": version_id(event),
        "type": event.type,
        "reason": event.reason,
        "namespace": event.object_namespace or event.namespace,
        "kind": event.object_kind or "",
        "cluster": cluster,
    }
    return {k: {"DataType": "String", "StringValue": v} for k, v in values.items() if v}


def attributes_size(attrs: dict[str, dict[str, str]]) -> int:
    """As SQS and SNS count them toward the message size: name, type and value."""
    return sum(
        len(name.encode()) + len(a["DataType"]) + len(a["StringValue"].encode())
        for name, a in attrs.items()
    )


def skip_update(event: Event, sent_update_event: bool) -> bool:
    """kubernetes-event-exporter's ``sentUpdateEvent: false``: a version that came as a
    watch MODIFIED (a count update) is not sent."""
    return not sent_update_event and event.watch_type == "MODIFIED"


def now_ms() -> int:
    return int(time.time() * 1000)

"""The API server's JSON, decoded straight into the few fields an Event needs.

A list page or a watch line is decoded by msgspec into these structs in one pass from the bytes:
the fields not named here (``managedFields``, about half of every Event's bytes, annotations,
ownerReferences) are skipped without being built, and what is built is a struct per object, not
a dict per object. orjson would build every dict of the page first (the profile in
bench/README.md: the page's dicts cost more than the rest of the list path together), and they
would stay alive until the page was done.

Decoding is lax (``strict=False``: ``"3"`` reads as the integer 3), the way :func:`int` was
before. An object that does not fit at all (a field of the wrong kind) fails the whole page or
line; the caller then falls back to orjson and :func:`convert` per object, so one odd Event is
skipped with a warning and never stops the rest.

Field names are the API's (camelCase), so the structs read as the JSON does. The structs are
not tracked by the cyclic garbage collector (``gc=False``: they hold only strings, numbers and
each other, so they cannot form cycles); a page's thousands of them no longer trigger and slow
down collections.
"""

from __future__ import annotations

from typing import Any

import msgspec


class ObjectRef(msgspec.Struct, frozen=True, gc=False):
    """``involvedObject`` (core/v1) or ``regarding`` (events.k8s.io/v1)."""

    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    apiVersion: str | None = None
    resourceVersion: str | None = None
    fieldPath: str | None = None


class EventSource(msgspec.Struct, frozen=True, gc=False):
    component: str | None = None
    host: str | None = None


class Series(msgspec.Struct, frozen=True, gc=False):
    count: int | None = None
    lastObservedTime: str | None = None


class ObjectMeta(msgspec.Struct, frozen=True, gc=False):
    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resourceVersion: str | None = None
    creationTimestamp: str | None = None


_EMPTY_META = ObjectMeta()


class WireEvent(msgspec.Struct, frozen=True, gc=False):
    """Both views of an Event (core/v1 and events.k8s.io/v1) in one struct; a watch's ERROR
    line (a Status: ``code`` and ``message``) and BOOKMARK line (metadata only) fit it too."""

    metadata: ObjectMeta = _EMPTY_META
    type: str | None = None
    reason: str | None = None
    action: str | None = None
    eventTime: str | None = None
    series: Series | None = None
    reportingInstance: str | None = None
    # core/v1's names
    involvedObject: ObjectRef | None = None
    message: str | None = None
    source: EventSource | None = None
    count: int | None = None
    firstTimestamp: str | None = None
    lastTimestamp: str | None = None
    reportingComponent: str | None = None
    # events.k8s.io/v1's names
    regarding: ObjectRef | None = None
    note: str | None = None
    deprecatedSource: EventSource | None = None
    deprecatedCount: int | None = None
    deprecatedFirstTimestamp: str | None = None
    deprecatedLastTimestamp: str | None = None
    reportingController: str | None = None
    # a Status (watch ERROR)
    code: int | None = None


class ListMeta(msgspec.Struct, frozen=True, gc=False):
    resourceVersion: str = ""
    continue_: str | None = msgspec.field(default=None, name="continue")
    remainingItemCount: int | None = None


class EventList(msgspec.Struct, frozen=True, gc=False):
    metadata: ListMeta = ListMeta()
    items: list[WireEvent] | None = None


class WatchLine(msgspec.Struct, frozen=True, gc=False):
    type: str | None = None
    object: WireEvent | None = None


_PAGE = msgspec.json.Decoder(EventList, strict=False)
_LINE = msgspec.json.Decoder(WatchLine, strict=False)

DecodeError = msgspec.DecodeError  # ValidationError is a subclass: any bytes that do not fit


def decode_page(data: bytes) -> EventList:
    return _PAGE.decode(data)


def decode_line(data: bytes) -> WatchLine:
    return _LINE.decode(data)


def convert(obj: Any) -> WireEvent:
    """A decoded JSON object (a dict) as a :class:`WireEvent`; ValueError if it does not fit."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected an object, got {type(obj).__name__}")
    try:
        return msgspec.convert(obj, WireEvent, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None

"""The ``_bulk`` request of a batch, and what its reply says per document.

Vector's sinks call this part the request builder: for each event an action line
(``{"create":{"_index":..,"_id":..}}``) and the document, newline-delimited, as one bytes body
that the transport sends as it is. Per event the cost is the document (the event's JSON, made
once and shared with every sink that sends the same document) and the action line, which is
joined from a prefix made once per target index and the ``_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from shipper.event import Event
from shipper.layout import Layout
from shipper.sinks.base import Rejected, TransientError
from shipper.sinks.dedot import dedot, dedotted
from shipper.sinks.search.transport import error_text
from shipper.templates import TemplateError

_PREFIXES_KEPT = 4096  # action prefixes per target index: a few per day in dated mode


class BulkBuilder:
    """Makes the ``_bulk`` body for a batch. ``mode`` is the sink's (known once the server is):
    ``dated`` names an index per event from its ``@timestamp``, the others one index or data
    stream for events and one for audit documents."""

    def __init__(
        self,
        *,
        index: str,
        audit_index: str,
        dated: str,
        audit_dated: str,
        layout: Layout | None,
        de_dot: bool,
        cluster: str | None,
    ) -> None:
        self.index, self.audit_index = index, audit_index
        self.mode = "data_stream"
        self._dated, self._audit_dated = dated, audit_dated
        self._layout, self._de_dot, self._cluster = layout, de_dot, cluster
        self._prefixes: dict[tuple[str, bool], bytes] = {}  # (target, audit) -> action prefix

    def request(self, events: Sequence[Event]) -> tuple[bytes, list[int], list[Rejected]]:
        """The _bulk body; the positions of the events in it; the events whose layout failed."""
        lines: list[bytes] = []
        sent: list[int] = []
        failed: list[Rejected] = []
        for position, event in enumerate(events):
            try:
                document = self.encoded(event)
            except TemplateError as exc:
                failed.append(Rejected(position, f"the layout failed: {exc}"))
                continue
            lines.append(self._action_prefix(event) + orjson.dumps(document_id(event)) + b"}}")
            lines.append(document)
            sent.append(position)
        lines.append(b"")
        return b"\n".join(lines), sent, failed

    def _action_prefix(self, event: Event) -> bytes:
        """``{"create":{"_index":"<target>","_id":`` for the event's target index."""
        audit = event.kind == "audit"
        # Dated targets change at most hourly: the timestamp's first 13 characters decide.
        key = (event.timestamp[:13] if self.mode == "dated" else "", audit)
        prefix = self._prefixes.get(key)
        if prefix is None:
            if len(self._prefixes) >= _PREFIXES_KEPT:
                self._prefixes.clear()
            target = orjson.dumps(self.target(event))
            prefix = self._prefixes[key] = b'{"create":{"_index":' + target + b',"_id":'
        return prefix

    def target(self, event: Event) -> str:
        audit = event.kind == "audit"
        if self.mode == "dated":
            ts = event.timestamp  # YYYY-MM-DDTHH:MM:SS...Z, UTC
            dated = self._audit_dated if audit else self._dated
            return dated.format(Y=ts[0:4], m=ts[5:7], d=ts[8:10], H=ts[11:13])
        return self.audit_index if audit else self.index

    def encoded(self, event: Event) -> bytes:
        """The document's JSON: the event document, or the layout rendered as the original
        renders it (Go's encoding), after de-dotting when asked. An audit event's is always its
        own document (its annotation keys de-dotted already)."""
        if event.kind == "audit":
            return event.document_json(self._cluster)
        if self._layout is None:
            if not (self._de_dot and (event.labels or event.annotations or event.owner)):
                # nothing to de-dot: the event's JSON, made once and shared with other sinks
                return event.document_json(self._cluster)
            return orjson.dumps(self.document(event))
        if self._de_dot:
            event = dedotted(event)
        return self._layout.encode(event, self._cluster)

    def document(self, event: Event) -> dict[str, Any]:
        document = event.document()
        if self._cluster:
            document["orchestrator"]["cluster"] = {"name": self._cluster}
        if self._de_dot:
            dedot(document)
        return document


def document_id(event: Event) -> str:
    """``<uid>.<count>`` for an event version, ``<auditID>.<stage>`` for an audit event."""
    if event.kind == "audit":
        return f"{event.uid}.{event.resource_version}"
    return f"{event.uid}.{event.count}"


def judge_items(reply: Any, positions: list[int]) -> list[Rejected]:
    """Per document: done, already there (409), refused for good (400), or retry all."""
    if not isinstance(reply, dict) or not reply.get("errors"):
        return []
    items = reply.get("items") or []
    count = len(positions)
    if len(items) != count:
        raise TransientError(f"_bulk: {len(items)} results for {count} documents")
    rejected: list[Rejected] = []
    retry: list[str] = []
    for position, item in zip(positions, items, strict=True):
        result = next(iter(item.values()))
        status = result.get("status", 0)
        if status < 300 or status == 409:  # 409 on create: this version is there already
            continue
        reason = f"HTTP {status} {error_text(result)}"
        if status == 400:  # the document itself: the mapping refuses it
            rejected.append(Rejected(position, reason))
        else:  # 429, 5xx, 403 read-only block, 404 missing alias: try the batch again
            retry.append(reason)
    if retry:
        # Creates are idempotent: re-sending the documents that landed only gets 409s.
        raise TransientError(f"_bulk: {len(retry)} of {count} documents: {retry[0]}")
    return rejected

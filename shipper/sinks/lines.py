"""JSON lines, as ``log`` and ``file`` write them: the event document, or a layout's body."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from shipper.event import Event
from shipper.layout import Layout
from shipper.sinks.base import Rejected
from shipper.templates import TemplateError


def encode_lines(
    events: Sequence[Event], layout: Layout | None, cluster: str
) -> tuple[bytes, list[Rejected]]:
    """One line per event; an event whose layout fails to render is refused with the reason."""
    if layout is None:
        return b"".join(orjson.dumps(event.document()) + b"\n" for event in events), []
    lines, rejected = [], []
    for index, event in enumerate(events):
        try:
            lines.append(layout.encode(event, cluster) + b"\n")
        except TemplateError as exc:
            rejected.append(Rejected(index, f"the layout failed: {exc}"))
    return b"".join(lines), rejected

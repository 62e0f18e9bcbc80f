"""JSON lines, as ``log`` and ``file`` write them: the event document, or a layout's body.

:class:`LinesSink` is their shared writer: it encodes a batch, writes it in one call and
flushes; the subclass says where (``out``), what a failed write means, and what to do after a
write (the file rotates).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from shipper.event import Event
from shipper.layout import Layout
from shipper.sinks.base import Rejected, Sink, TransientError
from shipper.sinks.dedot import dedotted
from shipper.spec import LayoutOption, SinkOptions, option
from shipper.templates import TemplateError


@dataclass(frozen=True, kw_only=True)
class LinesOptions(SinkOptions, LayoutOption):
    """What ``log``, ``file`` and ``pipe`` take besides their target."""

    de_dot: bool = option(
        False,
        "Replace dots in label and annotation keys with _, in the document and in what a layout sees (kubernetes-event-exporter's deDot).",
        aliases=("deDot",),
        exporter="deDot",
    )


def encode_lines(
    events: Sequence[Event], layout: Layout | None, cluster: str
) -> tuple[bytes, list[Rejected]]:
    """One line per event; an event whose layout fails to render is refused with the reason."""
    if layout is None:
        # Each event's JSON is made once and shared with every other sink that wants it; joined
        # as they are (no copy of each with its newline: a batch's payload is made once).
        lines = [event.document_json() for event in events]
        if lines:
            lines.append(b"")  # the last line's newline
        return b"\n".join(lines), []
    lines, rejected = [], []
    for index, event in enumerate(events):
        try:
            lines.append(layout.encode(event, cluster) + b"\n")
        except TemplateError as exc:
            rejected.append(Rejected(index, f"the layout failed: {exc}"))
    return b"".join(lines), rejected


class LinesSink(Sink):
    """Writes JSON lines to ``self.out``, set by the subclass's ``open()``."""

    accepts_audit = True  # the audit document as it is (a layout is for Events)

    out: BinaryIO | None = None

    def write(self, events: Sequence[Event]) -> Sequence[Rejected]:
        assert self.out is not None
        if getattr(self.options, "de_dot", False):
            events = [dedotted(event) for event in events]
        payload, rejected = encode_lines(
            events, getattr(self.options, "layout", None), self.ctx.cluster
        )
        try:
            self.out.write(payload)
            self.out.flush()
        except OSError as exc:
            raise TransientError(self.write_failed(exc)) from exc
        self.wrote(len(payload))
        return rejected

    def write_failed(self, exc: OSError) -> str:
        """The failed write in words, for the log and the retry."""
        return f"cannot write: {exc.strerror}"

    def wrote(self, size: int) -> None:
        """Called after each write that reached the output, with its size in bytes."""

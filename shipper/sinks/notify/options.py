"""What every notifier takes (:class:`NotifyOptions`), and a chat message's parts
(:class:`ChatOptions`); a vendor's options class derives from one and changes the defaults
with ``DEFAULTS`` (``rate``: the vendor's own limit)."""

from __future__ import annotations

from dataclasses import dataclass

from shipper.sinks.delivery import parse_rate
from shipper.spec import ClusterName, SinkOptions, Timeout, TLSTrust, option


def _kv(text: str) -> str:
    if "=" not in text:
        raise ValueError("expected NAME=VALUE")
    return text


_kv.__name__ = "NAME=TEMPLATE"


def parse_header(text: str) -> str:
    """A request header given as ``NAME=VALUE`` (kept as given; split where it is sent)."""
    name, sep, _ = text.partition("=")
    if not sep or not name.strip():
        raise ValueError("expected NAME=VALUE, e.g. header=Authorization=Bearer $TOKEN")
    return text


parse_header.__name__ = "NAME=VALUE"


@dataclass(frozen=True, kw_only=True)
class NotifyOptions(SinkOptions, TLSTrust, ClusterName, Timeout):
    """What every notifier takes; a vendor changes the defaults with ``DEFAULTS``."""

    DEFAULTS = {"timeout": 10.0}

    link_template: str | None = option(None, "A link added to every message, e.g. https://grafana/d/x?var-namespace={{ .InvolvedObject.Namespace }}.", aliases=("link",))  # fmt: skip
    rate: list[str] = option([], "Most messages per window, COUNT/DURATION (repeatable; default: the vendor's limit); past it, events fold into one digest message. 0: no limit.", parse=parse_rate)  # fmt: skip
    realert: float = option(600.0, "A count update of an event already alerted within this window is not sent again (0: send every update).")  # fmt: skip
    max_age: float = option(900.0, "Events that happened longer ago than this are not sent (first start, replays); 0: no limit.")  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class ChatOptions(NotifyOptions):
    """A chat message's parts, each a Go template over the event."""

    message: str | None = option(None, "Message text, a Go-style template ({{ .Reason }}, {{ .InvolvedObject.Namespace }}, {{ .Message }}, {{ .Count }}, {{ .ClusterName }} ...).", exporter="message")  # fmt: skip
    title: str | None = option(None, "Title template (default: [cluster] Type Reason: Kind namespace/name).", exporter="title")  # fmt: skip
    color: str | None = option(None, "Colour template (default by type: Warning red, Normal green, digest yellow).", exporter="color")  # fmt: skip
    field: list[str] = option([], "A field NAME=TEMPLATE shown beside the message (repeatable; replaces the default fields).", parse=_kv, aliases=("fields",), exporter="fields")  # fmt: skip
    label: list[str] = option([], "A line printed at the top of every message, e.g. the keyword a DingTalk robot demands (repeatable).", parse=str)  # fmt: skip

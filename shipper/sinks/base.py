"""The one base every sink stands on.

A sink only says how to write a batch. Queueing, batching, retry with backoff, dead letters and
accounting live in :mod:`shipper.pipeline` and are the same for all of them. A sink module holds
everything a reader needs about that sink: its options (declared once, see :mod:`shipper.spec`),
its schema, and what it guarantees. The registry finds it by its ``scheme``; nothing else lists it.

Example::

    @dataclass(frozen=True, kw_only=True)
    class LineOptions(SinkOptions):
        prefix: str = option("", "Printed before every line.")

    class LineSink(Sink):
        scheme = "line"
        summary = "one line per event on stdout"
        Options = LineOptions
        guarantee = "at least once; ..."

        def write(self, events):
            for event in events:
                print(self.options.prefix + event.message)
            return []
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from shipper.event import Event
from shipper.spec import SinkOptions

if TYPE_CHECKING:
    from shipper.sinks.delivery import Outcome, Pace
from shipper.uri import Uri


class TransientError(Exception):
    """The whole batch may succeed later (outage, timeout, 429, 5xx): retry with backoff."""


class PermanentError(Exception):
    """The sink can never accept the batch as it is (a bad event, a schema it rejects)."""


@dataclass(frozen=True)
class Rejected:
    """One event of a batch that the sink permanently refused; it goes to the dead letters."""

    index: int
    reason: str


@dataclass(frozen=True)
class SinkContext:
    """What every sink may need from the daemon's settings."""

    cluster: str
    state_dir: str | None
    #: The daemon's :class:`shipper.metrics.Metrics`, for sinks that count more than the
    #: pipeline does (notifiers: sent / digested / suppressed); None where nobody passes it.
    metrics: Any = None


class Sink(ABC):
    """Write batches of events to one destination."""

    scheme: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    summary: ClassVar[str] = ""
    #: The options class (:mod:`shipper.spec`); its fields are this sink's parameters.
    Options: ClassVar[type[SinkOptions]] = SinkOptions
    #: kubernetes-event-exporter's receiver type that maps to this sink (``stdout``, ...).
    receiver: ClassVar[str | None] = None
    #: The URI form shown in ``sinks`` and the docs, e.g. ``file:/path/events.jsonl``.
    usage: ClassVar[str] = ""
    #: One example ``--sink`` value, shown in ``--help`` and the docs.
    example: ClassVar[str] = ""
    #: True when ``rest`` is a vendor URL whose own query keeps the parameters we do not know.
    passthrough: ClassVar[bool] = False
    #: What a user can rely on, for ``--help`` and the README.
    guarantee: ClassVar[str] = ""
    #: True for a sink that keeps the audit source's documents (shipper/audit/record.py) as
    #: well as events: one that writes the document as JSON, or has a place for audit (an
    #: index, a table). Chats and fixed event schemas (MySQL, InfluxDB) do not.
    accepts_audit: ClassVar[bool] = False
    default_batch_size: ClassVar[int] = 500
    default_flush_interval: ClassVar[float] = 1.0

    def __init__(
        self, uri: Uri, options: Any, leftover: list[tuple[str, str]], ctx: SinkContext
    ) -> None:
        self.uri = uri
        self.options = options
        self.leftover = leftover
        self.ctx = ctx

    #: The destination's rate (:class:`shipper.sinks.delivery.Pace`) for a sink that paces its
    #: own requests (chat vendors): the pipeline reads it to know when to call :meth:`tick`.
    pace: Pace | None = None

    def open(self) -> None:  # noqa: B027 - most sinks need nothing here
        """Connect, create tables, check credentials. Raise TransientError to be retried."""

    @abstractmethod
    def write(self, events: Sequence[Event]) -> Sequence[Rejected] | Outcome:
        """Write ``events``. Return the ones refused for good, or an
        :class:`~shipper.sinks.delivery.Outcome` saying per event what is done, refused, to be
        retried or held; raise TransientError to retry the whole batch."""

    def tick(self) -> Outcome | None:
        """Send what the sink holds (a digest), now that its pace allows; only sinks that
        answer ``held`` need it."""
        raise NotImplementedError(f"{type(self).__name__} holds events but has no tick()")

    def close(self) -> None:  # noqa: B027
        """Flush and release connections."""

    def describe(self) -> str:
        """Where this sink writes, safe for logs (no secrets)."""
        return self.scheme

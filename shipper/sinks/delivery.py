"""What a sink tells the pipeline about a batch (:class:`Outcome`), and how fast it may send
(:class:`Pace`).

A sink's ``write(events)`` answers per event, by index into the batch. Every index it does
not name is done (written). The others are:

- **rejected** (:class:`~shipper.sinks.base.Rejected`): refused for good; dead-lettered with
  the reason, acknowledged;
- **retry** (:class:`Retry`): not written, try again. With a reason it failed transiently (a
  throttled SQS entry, a Kinesis record's ``ProvisionedThroughputExceeded``, a chat vendor's
  outage); without one it was not tried because the destination's pace is spent. The pipeline
  puts exactly these events at the front of its next attempt, after ``after`` seconds (the
  destination's Retry-After, or the time its pace frees) or else its backoff. So a batch that
  half succeeded never sends the done half again, and the sink needs no memory of what it did;
- **held**: taken into something the sink sends later on its own (a chat sink's digest
  message). Their tickets stay open, so the checkpoint cannot pass them: a crash before the
  later send loses nothing, they are read again after the restart. A later ``write()`` or
  ``tick()`` settles them with a :class:`Release`: the oldest ``count`` held events were sent,
  or were refused for good (one dead letter, the ``stand_in``, records what was refused).

Example, an SQS ``SendMessageBatch``::

    def write(self, events):
        reply = self.client.send_message_batch(QueueUrl=self.url, Entries=[...])
        return Outcome(
            rejected=tuple(Rejected(int(f["Id"]), f["Message"]) for f in reply.get("Failed", ()) if f["SenderFault"]),
            retry=tuple(Retry(int(f["Id"]), f["Code"]) for f in reply.get("Failed", ()) if not f["SenderFault"]),
        )

A sink that still returns a list of :class:`~shipper.sinks.base.Rejected` (or raises
:class:`~shipper.sinks.base.TransientError` for the whole batch) means the same as before:
:meth:`Outcome.of` reads it.

:class:`Pace` is a destination's rate, declared by the sink as ``self.pace`` (``rate=20/1m``:
at most 20 requests in any minute). The sink spends it, one request at a time, and never sends
past it: it holds events (a digest) or answers ``Retry(i, None, after=pace.ready_in(now))``.
The pipeline reads it to know when a sink that holds events can send again, so it calls
``tick()`` exactly then, instead of a timer thread in the sink.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from shipper.sinks.base import Rejected
from shipper.templates import TemplateError
from shipper.uri import parse_duration

if TYPE_CHECKING:
    from shipper.event import Event

T = TypeVar("T")


@dataclass(frozen=True)
class Retry:
    """One event of a batch to write again: ``reason`` None means it was not tried (the pace
    was spent), not that it failed; ``after``: seconds to wait, if the destination said."""

    index: int
    reason: str | None
    after: float | None = None


@dataclass(frozen=True)
class Release:
    """The oldest ``count`` held events are settled: sent, or refused for good (``reason``,
    dead-lettered once as ``stand_in``, an event standing for all of them)."""

    count: int
    reason: str | None = None
    stand_in: Any = None


@dataclass(frozen=True)
class Outcome:
    """What became of a batch, per index; an index named nowhere is done.

    ``release`` concerns events held by earlier calls, never the batch at hand.
    """

    rejected: tuple[Rejected, ...] = ()
    retry: tuple[Retry, ...] = ()
    held: tuple[int, ...] = ()
    release: Release | None = None

    @classmethod
    def of(cls, result: Outcome | Sequence[Rejected] | None) -> Outcome:
        """A ``write()`` result as an Outcome: a list of Rejected (the older contract) or None."""
        if isinstance(result, Outcome):
            return result
        return cls(rejected=tuple(result or ()))

    @classmethod
    def retry_all(
        cls, indices: Iterable[int], reason: str | None, after: float | None = None
    ) -> tuple[Retry, ...]:
        return tuple(Retry(i, reason, after) for i in indices)


# -- pace


_RATE = re.compile(r"\s*(\d+)\s*/\s*(\S+)\s*")


def parse_rate(text: str) -> list[str]:
    """``20/1m`` (at most 20 requests in any minute), several with commas; ``0`` or ``none``:
    no limit. Returns the normalized items (validated here, used by :class:`Pace`)."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if items in (["0"], ["none"]):
        return []
    for item in items:
        match = _RATE.fullmatch(item)
        try:
            if match is None or int(match.group(1)) < 1 or not parse_duration(match.group(2)):
                raise ValueError
        except ValueError:
            raise ValueError(
                "expected COUNT/DURATION such as 20/1m or 1/1s (commas or repeats for several),"
                " or 0 for no limit"
            ) from None
    return items


parse_rate.__name__ = "rate"


class Pace:
    """Sliding windows, all of which must allow a request, and a pause the destination asked
    for (HTTP 429 with Retry-After, a vendor's "send too fast").

    A request counts from the moment it starts; the destination counts from when it arrives,
    which can be later for the old request than for the new one. So a window frees its slot a
    little late: 5% of the period, at most a second.
    """

    def __init__(self, rates: Sequence[str] = ()) -> None:
        self.windows: list[tuple[int, float, deque[float]]] = []
        for item in rates:
            match = _RATE.fullmatch(item)
            if match is None:
                raise ValueError(f"not a rate: {item!r}")
            self.windows.append((int(match.group(1)), parse_duration(match.group(2)), deque()))
        self.paused_until = 0.0

    @staticmethod
    def _slack(period: float) -> float:
        return min(1.0, period * 0.05)

    def _prune(self, now: float) -> None:
        for _, period, sent in self.windows:
            while sent and sent[0] <= now - period - self._slack(period):
                sent.popleft()

    def ready_in(self, now: float) -> float:
        """Seconds until one more request may go; 0.0 if it may go now."""
        self._prune(now)
        wait = max(0.0, self.paused_until - now)
        for limit, period, sent in self.windows:
            if len(sent) >= limit:
                # the window frees when its oldest entries age out, as many as are over
                oldest = sent[len(sent) - limit]
                wait = max(wait, oldest + period + self._slack(period) - now)
        return wait

    def allows(self, now: float) -> bool:
        return self.ready_in(now) <= 0.0

    def room(self, now: float) -> int | None:
        """How many requests may go now; None if there is no limit."""
        self._prune(now)
        if now < self.paused_until:
            return 0
        if not self.windows:
            return None
        return max(0, min(limit - len(sent) for limit, _, sent in self.windows))

    def spend(self, now: float) -> None:
        """Count a request sent at ``now``."""
        for _, _, sent in self.windows:
            sent.append(now)

    def pause(self, seconds: float, now: float) -> None:
        """The destination asked us to wait: nothing goes for ``seconds``."""
        self.paused_until = max(self.paused_until, now + seconds)

    def describe(self) -> str:
        return ", ".join(f"{limit} per {_span(period)}" for limit, period, _ in self.windows)


def _span(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def built_or_refused(
    build: Callable[[Event], T], index: int, event: Event, rejected: list[Rejected]
) -> T | None:
    """``build(event)``, or None with the event refused for good (dead-lettered, the rest of
    the batch goes on) when its ``layout`` fails on it."""
    try:
        return build(event)
    except TemplateError as exc:
        rejected.append(Rejected(index, f"the layout failed: {exc}"))
        return None

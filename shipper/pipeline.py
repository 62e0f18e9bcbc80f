"""Per sink: a bounded queue, batches by size and age, retry with backoff, dead letters.

One :class:`SinkWorker` thread per sink. The source blocks on a full queue (back-pressure: the
watch pauses, memory stays bounded) unless the sink says ``overflow=drop``. A batch that fails
transiently is retried whole, with exponential backoff and full jitter, for as long as it takes;
events a sink refuses for good go to the dead letters with the reason, so one bad event never
blocks the rest. Every event ends in exactly one of shipped / dead_lettered / dropped, and only
then is its ticket done: the checkpoint never moves past an event that is still in a queue.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from shipper.checkpoint import Ticket
from shipper.event import Event, utc_now
from shipper.metrics import Metrics
from shipper.routing.filters import EventFilter
from shipper.sinks.base import PermanentError, Rejected, Sink, TransientError
from shipper.spec import SinkOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SinkSettings:
    name: str
    batch_size: int
    flush_interval: float
    queue_size: int
    overflow: str
    max_backoff: float
    filter: EventFilter

    @classmethod
    def from_options(cls, sink: type[Sink], options: SinkOptions) -> SinkSettings:
        return cls(
            name=options.name or sink.scheme,
            batch_size=options.batch_size or sink.default_batch_size,
            flush_interval=(
                options.flush_interval
                if options.flush_interval is not None
                else sink.default_flush_interval
            ),
            queue_size=options.queue_size,
            overflow=options.overflow,
            max_backoff=options.max_backoff,
            filter=EventFilter.from_options(options, getattr(sink, "default_level", None)),
        )


class Backoff:
    """Exponential backoff with full jitter: 0.5 s, 1 s, 2 s, ... up to ``cap``."""

    def __init__(self, cap: float, base: float = 0.5) -> None:
        self.cap, self.base, self.attempt = cap, base, 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 30)
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class DeadLetters:
    """Events a sink refused for good: a JSON line each, with the reason, per sink.

    Written to ``<state-dir>/dead-letters/<sink>.jsonl`` (rotated at ``max_bytes``) and logged.
    """

    def __init__(self, state_dir: str | None, max_bytes: int = 100 * 1024 * 1024) -> None:
        self.dir = os.path.join(state_dir, "dead-letters") if state_dir else None
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def path(self, sink: str) -> str | None:
        return os.path.join(self.dir, f"{sink}.jsonl") if self.dir else None

    def add(self, sink: str, event: Event, reason: str) -> None:
        log.warning(
            "Sink %s refused event %s (%s) for good; it is dead-lettered: %s",
            sink,
            event.uid,
            event.describe(),
            reason[:500],
        )
        path = self.path(sink)
        if path is None:
            return
        line = orjson.dumps(
            {"time": utc_now(), "sink": sink, "reason": reason, "document": event.document()}
        )
        with self._lock:
            os.makedirs(self.dir, exist_ok=True)  # type: ignore[arg-type]
            try:
                if os.path.getsize(path) > self.max_bytes:
                    os.replace(path, path + ".1")
            except FileNotFoundError:
                pass
            with open(path, "ab") as handle:
                handle.write(line + b"\n")


_Item = tuple[Event, Ticket]


class SinkWorker:
    """Feeds one sink from its bounded queue; runs in its own thread."""

    def __init__(
        self, sink: Sink, settings: SinkSettings, metrics: Metrics, dead_letters: DeadLetters
    ) -> None:
        self.sink, self.settings, self.metrics, self.dead_letters = (
            sink,
            settings,
            metrics,
            dead_letters,
        )
        self.name = settings.name
        self.queue: queue.Queue[_Item] = queue.Queue(maxsize=settings.queue_size)
        self._closing = threading.Event()  # no more events will come: drain and stop
        self._abandon = threading.Event()  # grace period over: stop even with a batch unsent
        self._in_batch = 0
        self.thread = threading.Thread(target=self._run, name=f"sink-{self.name}", daemon=True)
        metrics.register_sink(self.name, settings.queue_size)
        metrics.sink_queue.labels(self.name).set_function(self.queue.qsize)
        # Label children looked up once: the per-event path only increments.
        self._received = metrics.sink_events.labels(self.name, "received")
        self._shipped = metrics.sink_events.labels(self.name, "shipped")
        self._dead_lettered = metrics.sink_events.labels(self.name, "dead_lettered")
        self.filtered = metrics.sink_events.labels(self.name, "filtered")

    # -- the source's side

    def offer(self, event: Event, ticket: Ticket, stop: threading.Event) -> bool:
        """Queue an event; blocks while the queue is full (unless overflow=drop).

        Returns False if ``stop`` was set while waiting: the event is then not queued and its
        ticket stays open, so the checkpoint will bring it back after a restart.
        """
        self._received.inc()
        if self.settings.overflow == "drop":
            try:
                self.queue.put_nowait((event, ticket))
            except queue.Full:
                self.metrics.count(self.name, "dropped")
                ticket.done()
            return True
        while True:
            try:
                self.queue.put((event, ticket), timeout=0.2)
                return True
            except queue.Full:
                if stop.is_set():
                    return False

    # -- lifecycle

    def start(self) -> None:
        self.thread.start()

    def idle(self) -> bool:
        """Nothing queued and no batch being written."""
        return self._in_batch == 0 and self.queue.empty()

    def backlog(self) -> int:
        return self._in_batch + self.queue.qsize()

    def close(self) -> None:
        """No more events: write what is queued, then stop."""
        self._closing.set()

    def abandon(self) -> None:
        """Stop now; unsent events stay unacknowledged and are replayed after a restart."""
        self._closing.set()
        self._abandon.set()

    # -- the worker thread

    def _run(self) -> None:
        self._open_sink()
        try:
            while not self._abandon.is_set():
                batch = self._next_batch()
                if batch:
                    try:
                        self._deliver(batch)
                    finally:
                        self._in_batch = 0
                elif self._closing.is_set() and self.queue.empty():
                    break
        finally:
            try:
                self.sink.close()
            except Exception:
                log.exception("Sink %s did not close cleanly.", self.name)

    def _open_sink(self) -> None:
        backoff = Backoff(self.settings.max_backoff)
        while not self._abandon.is_set():
            try:
                self.sink.open()
                return
            except TransientError as exc:
                delay = backoff.next_delay()
                self.metrics.sink_up.labels(self.name).set(0)
                log.warning(
                    "Sink %s is not reachable yet (%s); retrying in %.1f s.", self.name, exc, delay
                )
                self._abandon.wait(delay)

    def _next_batch(self) -> list[_Item]:
        try:
            first = self.queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        self._in_batch = 1  # counted at once, so idle() never misses a batch being gathered
        deadline = time.monotonic() + self.settings.flush_interval
        while len(batch) < self.settings.batch_size:
            try:
                batch.append(self.queue.get_nowait())
                self._in_batch = len(batch)
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closing.is_set():
                break
            try:
                batch.append(self.queue.get(timeout=remaining))
                self._in_batch = len(batch)
            except queue.Empty:
                break
        return batch

    def _deliver(self, batch: list[_Item]) -> None:
        events = [event for event, _ in batch]
        rejected = self._write_with_retry(events)
        if rejected is None:  # abandoned during shutdown: leave the tickets open
            return
        refused = {r.index: r.reason for r in rejected}
        for index, reason in refused.items():
            self.dead_letters.add(self.name, batch[index][0], reason)
        self._dead_lettered.inc(len(refused))
        self._shipped.inc(len(batch) - len(refused))
        for _, ticket in batch:
            ticket.done()

    def _write_with_retry(self, events: list[Event]) -> Sequence[Rejected] | None:
        backoff = Backoff(self.settings.max_backoff)
        while not self._abandon.is_set():
            started = time.monotonic()
            try:
                rejected = self.sink.write(events)
            except TransientError as exc:
                self._note_failure(events, exc, backoff)
                continue
            except PermanentError as exc:
                return [Rejected(i, str(exc)) for i in range(len(events))]
            except Exception as exc:
                # A bug or an unforeseen reply: find the event that triggers it, if one does,
                # rather than retrying a poisoned batch forever.
                return self._isolate(events, exc, backoff)
            finally:
                self.metrics.sink_write_seconds.labels(self.name).observe(
                    time.monotonic() - started
                )
            if backoff.attempt:
                log.info("Sink %s is writing again.", self.name)
            self.metrics.sink_up.labels(self.name).set(1)
            return rejected
        return None

    def _note_failure(self, events: list[Event], exc: Exception, backoff: Backoff) -> None:
        delay = backoff.next_delay()
        self.metrics.sink_failures.labels(self.name).inc()
        self.metrics.sink_up.labels(self.name).set(0)
        self.metrics.count(self.name, "retried", len(events))
        log.warning(
            "Sink %s could not write %d events (%s); retrying in %.1f s.",
            self.name,
            len(events),
            exc,
            delay,
        )
        self._abandon.wait(delay)

    def _isolate(
        self, events: list[Event], exc: Exception, backoff: Backoff
    ) -> Sequence[Rejected] | None:
        log.error(
            "Sink %s failed unexpectedly on a batch of %d: %r; writing them one by one.",
            self.name,
            len(events),
            exc,
            exc_info=exc,
        )
        rejected: list[Rejected] = []
        for index, event in enumerate(events):
            while not self._abandon.is_set():
                try:
                    rejected.extend(Rejected(index, r.reason) for r in self.sink.write([event]))
                    break
                except TransientError as error:
                    self._note_failure([event], error, backoff)
                except Exception as error:
                    rejected.append(Rejected(index, f"{type(error).__name__}: {error}"))
                    break
            else:
                return None
        return rejected

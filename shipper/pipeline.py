"""Per sink: a bounded queue, batches by size and age, retry with backoff, dead letters.

One :class:`SinkWorker` thread per sink. The source blocks on a full queue (back-pressure: the
watch pauses, memory stays bounded) unless the sink says ``overflow=drop``.

A sink answers each batch per event (:class:`~shipper.sinks.delivery.Outcome`): done, refused
for good (dead-lettered with the reason, so one bad event never blocks the rest), to retry
(a transient failure, or the destination's pace spent), or held (taken into something the sink
sends later, such as a chat digest). Only the events to retry are written again, at the front
of the next attempt, after the destination's Retry-After or exponential backoff with full
jitter, for as long as it takes: what a batch already did is never done twice. Held events
keep their tickets open until the sink releases them; the worker calls the sink's ``tick()``
when its declared pace lets it send them, and between batches, so no sink needs a thread.

Every event ends in exactly one of shipped / dead_lettered / dropped, and only then is its
ticket done: the checkpoint never moves past an event that is still queued, retried or held.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass

import orjson

from shipper.backoff import Backoff
from shipper.checkpoint import Ticket
from shipper.event import Event, utc_now
from shipper.metrics import Metrics
from shipper.routing.filters import EventFilter
from shipper.sinks.base import PermanentError, Rejected, Sink, TransientError
from shipper.sinks.delivery import Outcome, Pace, Release, Retry
from shipper.spec import SinkOptions
from shipper.uri import UsageError

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
    #: The documents it gets: "events", "audit" or both (:mod:`shipper.routing.router`).
    documents: frozenset[str] = frozenset({"event"})

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
            documents=_documents(sink, options),
        )


def _documents(sink: type[Sink], options: SinkOptions) -> frozenset[str]:
    """What ``documents=`` asks for, as far as the sink can keep it."""
    wanted = getattr(options, "documents", "all")
    if wanted == "events" or (wanted == "all" and not sink.accepts_audit):
        return frozenset({"event"})
    if not sink.accepts_audit:
        raise UsageError(
            f"sink {options.name or sink.scheme}: parameter documents: {sink.scheme} cannot keep"
            " audit documents (stores and JSON sinks can: see `kube-event-shipper sinks`)"
        )
    return frozenset({"audit"}) if wanted == "audit" else frozenset({"event", "audit"})


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


def tune_gc() -> None:
    """Set the cyclic garbage collector for the daemon, once it is set up (before its threads
    start). What exists then (modules, clients, the checkpoint) lives as long as the process:
    ``gc.freeze`` stops the collector from scanning it again and again. And the young generation
    is collected every 10,000 net new objects instead of 700: the per-event path allocates a few
    tracked objects per event (the event, its ticket, queue entries) that die by reference
    counting, never in cycles, but with the default the collector ran every hundred events or so
    and rescanned every event waiting in a queue: 15-20% of the list path's CPU (bench/README.md).
    """
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


class EventQueue:
    """A bounded FIFO of events between the source and one sink worker.

    Unlike :class:`queue.Queue`, the worker takes a batch in one call, and it waits until the
    number of events it wants (a full batch) is there or its deadline passes: the source's
    puts wake it once per batch, not once per event. Per-event wake-ups (a thread switch and
    two lock round trips per event) were a tenth of the list path's CPU in the profile.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: deque[_Item] = deque()
        lock = threading.Lock()
        self._not_full = threading.Condition(lock)
        self._enough = threading.Condition(lock)
        self._wanted = 0  # events the waiting worker wants; 0 while it does not wait
        self._woken = False  # wake() was called: the waiting worker stops waiting once
        #: Events ever put (or refused by a full queue with overflow=drop), for the worker to
        #: add to the ``received`` counter a batch at a time (a counter's lock per event was 7%
        #: of the list path).
        self.received = 0

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def put(self, item: _Item, timeout: float | None = None, *, drop: bool = False) -> bool:
        """Append ``item``; waits while the queue is full. False if ``timeout`` ran out (with
        ``drop``, the refused event still counts as received)."""
        with self._not_full:
            if len(self._items) >= self.maxsize and not self._not_full.wait_for(
                lambda: len(self._items) < self.maxsize, timeout
            ):
                self.received += drop
                return False
            self._items.append(item)
            self.received += 1
            if self._wanted and len(self._items) >= self._wanted:
                self._enough.notify()
            return True

    def put_many(self, items: list[_Item], timeout: float) -> int:
        """Append as many of ``items`` as there is room for, waiting up to ``timeout`` for
        some room; returns how many went in (one lock round trip for a whole list page)."""
        with self._not_full:
            if len(self._items) >= self.maxsize and not self._not_full.wait_for(
                lambda: len(self._items) < self.maxsize, timeout
            ):
                return 0
            count = min(len(items), self.maxsize - len(self._items))
            self._items.extend(items[:count])
            self.received += count
            if self._wanted and len(self._items) >= self._wanted:
                self._enough.notify()
            return count

    def take_into(self, batch: list[_Item], limit: int, want: int, timeout: float) -> None:
        """Move up to ``limit`` events to ``batch``, once ``want`` are queued or ``timeout``
        seconds have passed (then whatever is there, maybe nothing). The events leave the
        queue and enter ``batch`` under the lock, so a reader adding ``qsize()`` and
        ``len(batch)`` (in that order) never misses one."""
        with self._enough:
            if len(self._items) < want and timeout > 0:
                self._wanted = want
                try:
                    self._enough.wait_for(lambda: len(self._items) >= want or self._woken, timeout)
                finally:
                    self._wanted, self._woken = 0, False
            count = min(limit, len(self._items))
            if not count:
                return
            was_full = len(self._items) >= self.maxsize
            popleft = self._items.popleft
            batch.extend([popleft() for _ in range(count)])
            if was_full:
                self._not_full.notify_all()

    def wake(self) -> None:
        """Let a waiting worker look again now (closing: no full batch will come)."""
        with self._enough:
            self._woken = self._wanted > 0
            self._enough.notify_all()


class SinkWorker:
    """Feeds one sink from its bounded queue; runs in its own thread.

    State besides the queue, all touched by the worker thread only: ``_retry``, the events of
    the last attempt the sink asked to write again (they lead the next attempt, at
    ``_retry_at``), and ``_held``, the tickets of events the sink holds to send later (a
    digest), oldest first, settled by the sink's :class:`~shipper.sinks.delivery.Release`.
    """

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
        self.queue = EventQueue(settings.queue_size)
        self._closing = threading.Event()  # no more events will come: drain and stop
        self._abandon = threading.Event()  # grace period over: stop even with a batch unsent
        self._batch: list[_Item] = []  # the batch being gathered or written
        self._retry: list[_Item] = []
        self._retry_at = 0.0
        self._held: deque[Ticket] = deque()
        self._tick_at = 0.0
        self._backoff = Backoff(settings.max_backoff)
        self.thread = threading.Thread(target=self._run, name=f"sink-{self.name}", daemon=True)
        metrics.register_sink(self.name, settings.queue_size)
        metrics.sink_queue.labels(self.name).set_function(self.queue.qsize)
        # Label children looked up once: the per-event path only increments.
        self._received = metrics.sink_events.labels(self.name, "received")
        self._received_counted = 0
        self._shipped = metrics.sink_events.labels(self.name, "shipped")
        self._dead_lettered = metrics.sink_events.labels(self.name, "dead_lettered")
        self._retried = metrics.sink_events.labels(self.name, "retried")
        self.filtered = metrics.sink_events.labels(self.name, "filtered")

    # -- the source's side

    def offer(self, event: Event, ticket: Ticket, stop: threading.Event) -> bool:
        """Queue an event; blocks while the queue is full (unless overflow=drop).

        Returns False if ``stop`` was set while waiting: the event is then not queued and its
        ticket stays open, so the checkpoint will bring it back after a restart.
        """
        if self.settings.overflow == "drop":
            if not self.queue.put((event, ticket), timeout=0, drop=True):
                self.metrics.count(self.name, "dropped")
                ticket.done()
            return True
        while not self.queue.put((event, ticket), timeout=0.2):
            if stop.is_set():
                return False
        return True

    def offer_many(self, items: list[_Item], stop: threading.Event) -> bool:
        """:meth:`offer` for a list page's events, in order; False if ``stop`` was set while
        waiting (the events not queued keep their tickets open)."""
        if self.settings.overflow == "drop":
            return all(self.offer(event, ticket, stop) for event, ticket in items)
        while items:
            count = self.queue.put_many(items, timeout=0.2)
            items = items[count:]
            if items and not count and stop.is_set():
                return False
        return True

    def _count_received(self) -> None:
        """Add what the queue took in since the last call to the ``received`` counter (before
        anything of it is counted as shipped)."""
        received = self.queue.received
        if received != self._received_counted:
            self._received.inc(received - self._received_counted)
            self._received_counted = received

    # -- lifecycle

    def start(self) -> None:
        self.thread.start()

    def idle(self) -> bool:
        """Nothing queued, none being written or waiting to be written again, none held."""
        return self.backlog() == 0

    def backlog(self) -> int:
        """Events not yet settled: queued, in the batch at hand, to retry, or held."""
        # The queue first: an event moving from it into the batch meanwhile counts twice,
        # never zero times.
        queued = self.queue.qsize()
        return queued + len(self._batch) + len(self._retry) + len(self._held)

    def held(self) -> int:
        """Events the sink holds to send later (a digest), their tickets still open."""
        return len(self._held)

    @property
    def pace(self) -> Pace | None:
        """The destination's pace, if the sink declares one: read here, spent by the sink."""
        return self.sink.pace

    def close(self) -> None:
        """No more events: write what is queued (and what the sink holds, as its pace
        allows), then stop."""
        self._closing.set()
        self.queue.wake()

    def abandon(self) -> None:
        """Stop now; unsent and held events stay unacknowledged and come back after a restart."""
        self._closing.set()
        self._abandon.set()
        self.queue.wake()

    # -- the worker thread

    def _run(self) -> None:
        self._open_sink()
        try:
            while not self._abandon.is_set():
                if self._retry:
                    delay = self._retry_at - time.monotonic()
                    if delay > 0:
                        self._abandon.wait(min(delay, 0.5))
                        continue
                    batch = self._retry_batch()
                else:
                    batch = self._next_batch()
                if batch:
                    try:
                        self._deliver(batch)
                    finally:
                        self._batch = []
                elif self._held:
                    if self._tick_due():
                        self._tick()
                elif self._closing.is_set() and self.queue.empty():
                    break
        finally:
            if self._held:
                log.warning(
                    "Sink %s stopped holding %d events unsent; they stay unacknowledged and are"
                    " sent after the restart.",
                    self.name,
                    len(self._held),
                )
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
        """Events for one write: as many as a batch holds, once they are there or the first
        one has waited ``flush_interval``."""
        batch = self._batch = []
        size = self.settings.batch_size
        self.queue.take_into(batch, size, 1, 0.2)
        self._count_received()
        if batch:
            self._fill(batch, time.monotonic() + self.settings.flush_interval)
        return batch

    def _retry_batch(self) -> list[_Item]:
        """The events to write again, first, and as many queued ones as fit beside them now."""
        batch = self._batch = self._retry  # counted before _retry empties, so idle() never lies
        self._retry = []
        self._fill(batch, 0.0)
        return batch

    def _fill(self, batch: list[_Item], deadline: float) -> None:
        size = self.settings.batch_size
        while len(batch) < size:
            room = size - len(batch)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closing.is_set():
                self.queue.take_into(batch, room, 0, 0.0)  # what is there, without waiting
                return
            self.queue.take_into(batch, room, room, remaining)

    # -- one attempt at a batch, and what became of each event

    def _deliver(self, batch: list[_Item]) -> None:
        events = [event for event, _ in batch]
        started = time.monotonic()
        try:
            outcome = Outcome.of(self.sink.write(events))
        except TransientError as exc:
            after = getattr(exc, "retry_after", None)
            outcome = Outcome(retry=Outcome.retry_all(range(len(events)), str(exc), after))
        except PermanentError as exc:
            outcome = Outcome(rejected=tuple(Rejected(i, str(exc)) for i in range(len(events))))
        except Exception as exc:
            # A bug or an unforeseen reply: find the event that triggers it, if one does,
            # rather than retrying a poisoned batch forever.
            self._observe(started)
            self._isolate(batch, exc)
            return
        self._observe(started)
        self._settle(batch, outcome)

    def _observe(self, started: float) -> None:
        self.metrics.sink_write_seconds.labels(self.name).observe(time.monotonic() - started)

    def _isolate(self, batch: list[_Item], exc: Exception) -> None:
        log.error(
            "Sink %s failed unexpectedly on a batch of %d: %r; writing them one by one.",
            self.name,
            len(batch),
            exc,
            exc_info=exc,
        )
        for item in batch:
            try:
                outcome = Outcome.of(self.sink.write([item[0]]))
            except TransientError as error:
                after = getattr(error, "retry_after", None)
                outcome = Outcome(retry=(Retry(0, str(error), after),))
            except Exception as error:
                outcome = Outcome(rejected=(Rejected(0, f"{type(error).__name__}: {error}"),))
            self._settle([item], outcome)

    def _settle(self, batch: list[_Item], outcome: Outcome) -> None:
        """Acknowledge what is done or refused, keep what is held, line up what is retried."""
        if outcome.release is not None:
            self._release(outcome.release)
        undone = set()
        finished: list[Ticket] = []
        for r in outcome.rejected:
            event, ticket = batch[r.index]
            self.dead_letters.add(self.name, event, r.reason)
            finished.append(ticket)
            undone.add(r.index)
        self._dead_lettered.inc(len(outcome.rejected))
        for index in outcome.held:
            self._held.append(batch[index][1])
            undone.add(index)
        retry = sorted(outcome.retry, key=lambda r: r.index)
        for r in retry:
            self._retry.append(batch[r.index])
            undone.add(r.index)
        if undone:
            shipped = [ticket for i, (_, ticket) in enumerate(batch) if i not in undone]
        else:
            shipped = [ticket for _, ticket in batch]
        Ticket.done_all(finished + shipped)
        self._count_received()
        self._shipped.inc(len(shipped))
        failed = [r for r in retry if r.reason is not None]
        if failed:
            self._note_failure(failed, retry)
        elif retry:  # not tried: the destination's pace is spent
            self._retry_at = time.monotonic() + max(0.05, *(r.after or 0.0 for r in retry))
        else:
            self._note_success()

    def _release(self, release: Release) -> None:
        count = min(release.count, len(self._held))
        if count != release.count:
            log.error(
                "Sink %s released %d held events but held only %d.",
                self.name,
                release.count,
                len(self._held),
            )
        tickets = [self._held.popleft() for _ in range(count)]
        if release.reason is not None:
            if release.stand_in is not None:
                self.dead_letters.add(self.name, release.stand_in, release.reason)
            self._dead_lettered.inc(count)
        else:
            self._shipped.inc(count)
        for ticket in tickets:
            ticket.done()

    def _note_success(self) -> None:
        if self._backoff.attempt:
            log.info("Sink %s is writing again.", self.name)
            self._backoff.reset()
        self.metrics.sink_up.labels(self.name).set(1)

    def _note_failure(self, failed: list[Retry], retry: list[Retry]) -> None:
        """Some events failed transiently: wait as long as the destination said, else back
        off; then they lead the next attempt."""
        waits = [r.after for r in retry if r.after is not None]
        if len(waits) < len(retry):
            waits.append(self._backoff.next_delay())
        delay = min(max(waits), max(self.settings.max_backoff, 1.0) * 10)
        self._retry_at = time.monotonic() + delay
        self.metrics.sink_failures.labels(self.name).inc()
        self.metrics.sink_up.labels(self.name).set(0)
        self._retried.inc(len(failed))
        log.warning(
            "Sink %s could not write %d events (%s); retrying in %.1f s.",
            self.name,
            len(failed),
            failed[0].reason,
            delay,
        )

    # -- what the sink holds

    def _tick_due(self) -> bool:
        now = time.monotonic()
        if now < self._tick_at:
            return False
        pace = self.pace
        return pace is None or pace.ready_in(now) <= 0.0

    def _tick(self) -> None:
        """Let the sink send what it holds (a digest), now that its pace allows."""
        started = time.monotonic()
        try:
            outcome = Outcome.of(self.sink.tick())
        except TransientError as exc:
            after = getattr(exc, "retry_after", None)
            delay = after if after is not None else self._backoff.next_delay()
            self._tick_at = time.monotonic() + delay
            self.metrics.sink_failures.labels(self.name).inc()
            self.metrics.sink_up.labels(self.name).set(0)
            log.warning(
                "Sink %s could not send the %d events it holds (%s); retrying in %.1f s.",
                self.name,
                len(self._held),
                exc,
                delay,
            )
            return
        except Exception:
            log.exception("Sink %s failed sending the events it holds.", self.name)
            self._tick_at = time.monotonic() + self._backoff.next_delay()
            return
        finally:
            self._observe(started)
        if outcome.release is not None:
            self._settle([], outcome)
        else:
            # Nothing went (the destination asked to wait): the pace says when to try again.
            self._tick_at = time.monotonic() + (0.0 if self.pace else self.settings.flush_interval)

"""The per-event path: one call per event read from the API server.

``ledger → enrich → route → hand-off``: skip a version already shipped (the checkpoint's ledger),
add the involved object's labels when enrichment is on (before routing: rules may match them),
ask the router which sinks get it, open one ticket for them all, and offer the event to each
sink's bounded queue. The ticket closes when every sink has written (or dead-lettered) it; only
then may the checkpoint pass it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from shipper.event import Event

if TYPE_CHECKING:
    from shipper.checkpoint import Ledger, Ticket
    from shipper.enrich import Enricher
    from shipper.metrics import Metrics
    from shipper.pipeline import SinkWorker
    from shipper.routing import Router


class Dispatcher:
    """Feeds the sinks' queues; called by the source, in the watch thread of each stream."""

    def __init__(
        self,
        ledger: Ledger,
        router: Router[SinkWorker],
        workers: Sequence[SinkWorker],
        metrics: Metrics,
        enricher: Enricher | None = None,
    ) -> None:
        self.ledger, self.router, self.workers = ledger, router, workers
        self.metrics, self.enricher = metrics, enricher
        #: Set when the source stops: a worker's full queue then stops blocking the hand-off.
        self.stop_event = threading.Event()

    def __call__(self, stream: str, event: Event, position: str | None) -> bool:
        """Ship ``event``; False if this version was shipped before (it is only marked)."""
        admitted = self._admit(stream, event, position)
        if admitted is None:
            return False
        targets, ticket = admitted
        for worker in self.workers:
            if worker not in targets:
                worker.filtered.inc()
            elif not worker.offer(event, ticket, self.stop_event):
                break  # stopping: the open ticket keeps the checkpoint before this event
        return True

    def page(self, stream: str, events: Sequence[Event]) -> int | None:
        """A list page's events (no position: a list is not a place to resume from), handed
        to each sink's queue in one go rather than one by one; returns how many went to the
        sinks, or None if the source stopped while a queue was full."""
        batches: dict[SinkWorker, list[tuple[Event, Ticket]]] = {w: [] for w in self.workers}
        filtered = dict.fromkeys(self.workers, 0)
        shipped = 0
        for event in events:
            admitted = self._admit(stream, event, None)
            if admitted is None:
                continue
            targets, ticket = admitted
            shipped += 1
            for worker in self.workers:
                if worker in targets:
                    batches[worker].append((event, ticket))
                else:
                    filtered[worker] += 1
        for worker, count in filtered.items():
            if count:
                worker.filtered.inc(count)
        for worker, items in batches.items():
            if items and not worker.offer_many(items, self.stop_event):
                return None  # stopping: the open tickets keep the checkpoint before them
        return shipped

    def positional(self, stream: str, items: Sequence[tuple[Event, str | None]]) -> bool:
        """Events of a stream whose position alone says what was shipped (the audit spool),
        each with the position to resume from once it and those before it are written; handed
        to each sink's queue in one go. False if the source stopped while a queue was full."""
        batches: dict[SinkWorker, list[tuple[Event, Ticket]]] = {w: [] for w in self.workers}
        for event, position in items:
            targets = self.router.targets(event)
            ticket = self.ledger.begin_positional(
                stream, event.uid, event.resource_version, position, len(targets)
            )
            for worker in self.workers:
                if worker in targets:
                    batches[worker].append((event, ticket))
                else:
                    worker.filtered.inc()
        for worker, batch in batches.items():
            if batch and not worker.offer_many(batch, self.stop_event):
                return False
        return True

    def _admit(
        self, stream: str, event: Event, position: str | None
    ) -> tuple[Sequence[SinkWorker], Ticket] | None:
        """The sinks that get ``event`` and its ticket, or None if this version was handled
        before (then it is only marked)."""
        if self.ledger.handled(event.uid, event.resource_version):
            self.metrics.duplicates_skipped.inc()
            if position is not None:
                self.ledger.mark(stream, position)
            return None
        if self.enricher is not None:
            self.enricher.enrich(event)
        targets = self.router.targets(event)
        ticket = self.ledger.begin(
            stream, event.uid, event.resource_version, position, len(targets)
        )
        return targets, ticket

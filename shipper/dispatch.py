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
    from shipper.checkpoint import Ledger
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
        if self.ledger.handled(event.uid, event.resource_version):
            self.metrics.duplicates_skipped.inc()
            if position is not None:
                self.ledger.mark(stream, position)
            return False
        if self.enricher is not None:
            self.enricher.enrich(event)
        targets = self.router.targets(event)
        ticket = self.ledger.begin(
            stream, event.uid, event.resource_version, position, len(targets)
        )
        for worker in self.workers:
            if worker not in targets:
                worker.filtered.inc()
            elif not worker.offer(event, ticket, self.stop_event):
                break  # stopping: the open ticket keeps the checkpoint before this event
        return True

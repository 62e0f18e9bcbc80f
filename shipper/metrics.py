"""Prometheus metrics: delivery accounting per sink and outcome, watch health per stream.

Labels are bounded: sink names, outcomes, watch event types. Never object names or uids.
Each daemon owns its registry (no import-time globals), so tests can run several side by side.
"""

from __future__ import annotations

import platform

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from shipper import __version__

OUTCOMES = ("received", "shipped", "retried", "dead_lettered", "dropped", "filtered")
WATCH_TYPES = ("LISTED", "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR")
RESTART_REASONS = ("timeout", "gone", "error")


class Metrics:
    def __init__(self) -> None:
        # No `_created` series: a timestamp per counter child doubles the series for nothing
        # a dashboard uses (client_python's switch is process-wide; setting it twice is fine).
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # The usual process_* and python_* series, on this daemon's own registry.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.build_info = Gauge(
            "kube_event_shipper_build_info",
            "Always 1; the labels say which build runs (join on it in dashboards and alerts).",
            ["version", "python_version", "implementation"],
            registry=r,
        )
        self.build_info.labels(
            __version__, platform.python_version(), platform.python_implementation()
        ).set(1)
        self.sink_events = Counter(
            "kube_event_shipper_sink_events",
            "Events per sink by outcome: received (queued), shipped, retried (re-sent after a"
            " transient error), dead_lettered (refused for good), dropped (by overflow policy),"
            " filtered (the sink's filter did not pass them).",
            ["sink", "outcome"],
            registry=r,
        )
        self.notify_events = Counter(
            "kube_event_shipper_notify_events",
            "Events a chat or webhook sink handled, by outcome: sent (a message of its own),"
            " digested (folded into a digest message past the rate limit), suppressed (a count"
            " update within realert, or older than max_age). All count as shipped.",
            ["sink", "outcome"],
            registry=r,
        )
        self.enrich_events = Counter(
            "kube_event_shipper_enrich_events",
            "Events by enrichment outcome: enriched, or shipped without labels because the"
            " lookup budget was spent (rate_limited), the object is gone (not_found), RBAC"
            " forbids it (forbidden), the lookup failed (error), the kind cannot be looked up"
            " (unsupported) or the event names no object (skipped).",
            ["outcome"],
            registry=r,
        )
        self.enrich_requests = Counter(
            "kube_event_shipper_enrich_requests",
            "API requests made by enrichment (object metadata and discovery), by result.",
            ["result"],
            registry=r,
        )
        self.enrich_cache_entries = Gauge(
            "kube_event_shipper_enrich_cache_entries",
            "Objects in the enrichment cache (bounded by --enrich-cache-size).",
            registry=r,
        )
        self.sink_queue = Gauge(
            "kube_event_shipper_sink_queue_length", "Events waiting per sink.", ["sink"], registry=r
        )
        self.sink_queue_capacity = Gauge(
            "kube_event_shipper_sink_queue_capacity", "Queue bound per sink.", ["sink"], registry=r
        )
        self.sink_write_seconds = Histogram(
            "kube_event_shipper_sink_write_seconds",
            "Time to write one batch, successful or not.",
            ["sink"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.sink_failures = Counter(
            "kube_event_shipper_sink_write_failures",
            "Failed batch writes per sink (each is retried).",
            ["sink"],
            registry=r,
        )
        self.sink_up = Gauge(
            "kube_event_shipper_sink_up",
            "1 while the sink's last write succeeded, 0 while it is failing.",
            ["sink"],
            registry=r,
        )
        self.watch_events = Counter(
            "kube_event_shipper_watch_events",
            "Objects read from the API server by watch type (ADDED, MODIFIED, DELETED, BOOKMARK)"
            " or LISTED.",
            ["type"],
            registry=r,
        )
        self.duplicates_skipped = Counter(
            "kube_event_shipper_duplicates_skipped",
            "Event versions seen again (resumed watch, re-list) and not shipped twice.",
            registry=r,
        )
        self.watch_restarts = Counter(
            "kube_event_shipper_watch_restarts",
            "Watch reconnects by reason: timeout (normal), gone (410, re-list), error.",
            ["reason"],
            registry=r,
        )
        self.relists = Counter(
            "kube_event_shipper_relists", "Full lists of events (start, 410 Gone).", registry=r
        )
        self.watch_ready = Gauge(
            "kube_event_shipper_watch_ready",
            "1 while every watch stream is established.",
            registry=r,
        )
        self.last_event_timestamp = Gauge(
            "kube_event_shipper_last_event_timestamp_seconds",
            "Unix time at which the newest event was read from the API server.",
            registry=r,
        )
        self.checkpoint_uids = Gauge(
            "kube_event_shipper_checkpoint_tracked_events",
            "Events whose shipped versions the checkpoint remembers.",
            registry=r,
        )
        self.inflight = Gauge(
            "kube_event_shipper_inflight_events",
            "Events read but not yet handled by every sink.",
            registry=r,
        )
        self.leader = Gauge(
            "kube_event_shipper_leader",
            "1 while this replica holds the Lease and ships (always 1 without --leader-elect).",
            registry=r,
        )
        self.checkpoint_failures = Counter(
            "kube_event_shipper_checkpoint_save_failures",
            "Failed checkpoint saves (retried on the next flush).",
            registry=r,
        )
        self.audit_batches = Counter(
            "kube_event_shipper_audit_batches",
            "Audit batches the webhook answered, by outcome: accepted (on disk, 200), full (the"
            " spool is full: 429, the API server retries), error (the spool cannot be written:"
            " 503), unauthorized (401), rejected (not an EventList: 400).",
            ["outcome"],
            registry=r,
        )
        self.audit_events_received = Counter(
            "kube_event_shipper_audit_events_received",
            "Audit events in the batches the webhook accepted.",
            registry=r,
        )
        self.audit_spool_bytes = Gauge(
            "kube_event_shipper_audit_spool_bytes",
            "Bytes in the audit spool (accepted batches whose segment is not yet all shipped).",
            registry=r,
        )
        self.audit_invalid = Counter(
            "kube_event_shipper_audit_invalid_events",
            "Items of an accepted batch that are not audit events (no auditID, stage or verb):"
            " logged and skipped.",
            registry=r,
        )
        # Known label values exist at zero from the start: rate() and alerts need a series
        # before its first increment, and a missing series is not the same as "none yet".
        for kind in WATCH_TYPES:
            self.watch_events.labels(kind)
        for reason in RESTART_REASONS:
            self.watch_restarts.labels(reason)

    def count(self, sink: str, outcome: str, n: int = 1) -> None:
        self.sink_events.labels(sink, outcome).inc(n)

    def register_sink(self, sink: str, capacity: int) -> None:
        """Create every series of a sink at zero, so dashboards see it before the first event."""
        for outcome in OUTCOMES:
            self.sink_events.labels(sink, outcome)
        self.sink_failures.labels(sink)
        self.sink_queue_capacity.labels(sink).set(capacity)
        self.sink_up.labels(sink).set(1)

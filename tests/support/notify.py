"""Events and notifier sinks for in-process tests: events as the source makes them, a sink
built from a ``--sink`` URI the way the daemon builds it, and :class:`Fed`, a sink driven by
the real pipeline. The vendors' stand-ins are in :mod:`tests.support.receivers`.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

_SEQ = iter(range(1, 1 << 30))


def event(
    reason: str = "BackOff", type_: str = "Warning", ns: str | None = "shop", *,
    message: str = "Back-off restarting failed container", kind: str = "Pod", obj: str = "web-1",
    count: int = 1, uid: str | None = None, at: str | None = None,
) -> Any:  # fmt: skip
    """An :class:`shipper.event.Event` as the source makes it (fresh uid and version)."""
    from shipper.event import Event, utc_now

    now = at or utc_now()
    return Event(
        uid=uid or str(uuid.uuid4()), resource_version=str(next(_SEQ)), name=f"{obj}.17c",
        namespace=ns or "default", type=type_, reason=reason, message=message, count=count,
        timestamp=now, first_timestamp=now, last_timestamp=now, event_time=None,
        creation_timestamp=now, action=None, reporting_controller=None, reporting_instance=None,
        source_component="kubelet", source_host="node-a", object_kind=kind, object_name=obj,
        object_namespace=ns, object_uid="u1", object_api_version="v1",
        object_resource_version="1", object_field_path=None, seen_at=now, watch_type="ADDED",
    )  # fmt: skip


def bump(e: Any, count: int) -> Any:
    """The same event, counted again (a MODIFIED with a new resourceVersion)."""
    from dataclasses import replace

    return replace(e, count=count, resource_version=str(next(_SEQ)))


def sink(uri: str, *, metrics: Any = None, cluster: str = "test", opened: bool = True) -> Any:
    """A notifier built from a ``--sink`` URI the way the daemon builds it, opened."""
    from shipper.sinks.base import SinkContext
    from shipper.sinks.factory import build_sink

    built, _ = build_sink(uri, SinkContext(cluster=cluster, state_dir=None, metrics=metrics))
    if opened:
        built.open()
    return built


def failure(outcome: Any) -> str:
    """The reason a ``write()`` answered *retry* for every event of its batch from some index
    on (a transient failure); the test fails if nothing is to be retried."""
    assert outcome.retry, f"expected events to retry, got {outcome}"
    assert len({r.reason for r in outcome.retry}) == 1, outcome
    return str(outcome.retry[0].reason)


class Fed:
    """A sink driven by the real pipeline, as the daemon drives it: a :class:`SinkWorker`
    thread, with a ledger that shows which tickets are still open (``position()`` is where the
    checkpoint stands: it never passes an event that is queued, retried or held).

        with Fed(f"dingtalk:{robot.url}/robot/send?access_token=T&rate=2/1h") as fed:
            fed.feed([event(), event(), event()])
            wait_for(lambda: fed.worker.held() == 1)
    """

    def __init__(
        self, uri: str, *, metrics: Any = None, cluster: str = "test",
        state_dir: str | None = None, flush_interval: float = 0.05, max_backoff: float = 0.2,
    ) -> None:  # fmt: skip
        from dataclasses import replace

        from shipper.checkpoint import Ledger, MemoryStore
        from shipper.metrics import Metrics
        from shipper.pipeline import DeadLetters, SinkWorker
        from shipper.sinks.base import SinkContext
        from shipper.sinks.factory import build_sink

        self.metrics = metrics or Metrics()
        ctx = SinkContext(cluster=cluster, state_dir=state_dir, metrics=self.metrics)
        self.sink, settings = build_sink(uri, ctx)
        self.settings = replace(settings, flush_interval=flush_interval, max_backoff=max_backoff)
        self.ledger = Ledger(MemoryStore())
        self.worker = SinkWorker(self.sink, self.settings, self.metrics, DeadLetters(state_dir))
        self.stop = threading.Event()
        self.worker.start()

    def __enter__(self) -> Fed:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close(grace=0.0)

    def feed(self, events: list[Any]) -> None:
        for e in events:
            ticket = self.ledger.begin("", e.uid, e.resource_version, e.resource_version, 1)
            assert self.worker.offer(e, ticket, self.stop)

    def position(self) -> str | None:
        """The resourceVersion of the last event of the done prefix."""
        return self.ledger.position("")

    def count(self, outcome: str) -> float:
        """The pipeline's count for this sink: shipped, dead_lettered, retried, received..."""
        value = self.metrics.registry.get_sample_value(
            "kube_event_shipper_sink_events_total",
            {"sink": self.settings.name, "outcome": outcome},
        )
        return value or 0.0

    def close(self, grace: float = 10.0) -> int:
        """Stop as the daemon does: drain for up to ``grace`` seconds, then abandon. Returns
        the events left unsettled (their tickets stay open)."""
        if not self.worker.thread.is_alive():
            return self.worker.backlog()
        self.worker.close()
        deadline = time.monotonic() + grace
        while not self.worker.idle() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.worker.abandon()
        self.worker.thread.join(timeout=10)
        assert not self.worker.thread.is_alive()
        return self.worker.backlog()


HOSTILE = [
    'say "hi" and \\ back\\slash',
    "line one\nline two\r\n\ttabbed",
    "control \x00\x01\x07\x1b\x7f chars",
    "emoji 🔥💥 and 中文 and \u2028\u2029 separators",
    "template {{ .Reason }} {{- end }} {{/* x */}} in the message",
    '{"json": "inside", "n": 1}',
    "</script><b>&amp;</b> <!channel> <@U123>",
    "lone surrogate-free: \U0001f600 \\u0000 \\n literal",
]

"""Per-event outcomes: the pipeline writes again exactly what a sink said to retry, holds what
a sink holds, and keeps the checkpoint and the per-sink counts right meanwhile.

The sinks here answer the way a batch API does (SQS ``SendMessageBatch`` and Kinesis
``PutRecords`` name the entries that failed, and whether the sender is at fault); the
notifiers' use of the same contract is shown against vendor receivers in test_notify_*.
"""

from __future__ import annotations

import json
import threading
import time

from shipper.checkpoint import Ledger, MemoryStore
from shipper.event import normalize
from shipper.metrics import Metrics
from shipper.pipeline import DeadLetters, SinkSettings, SinkWorker
from shipper.routing.filters import EventFilter
from shipper.sinks.base import Rejected, Sink, SinkContext
from shipper.sinks.delivery import Outcome, Pace, Release, Retry
from shipper.uri import Uri
from tests.support.common import wait_for


def make_event(i: int):
    obj = {
        "metadata": {"uid": f"u{i}", "resourceVersion": str(i), "name": f"e{i}", "namespace": "ns"},
        "involvedObject": {"kind": "Pod", "name": f"p{i}", "namespace": "ns"},
        "reason": "Test", "message": f"message {i}", "type": "Warning",
    }  # fmt: skip
    return normalize(obj, "ADDED")


class BatchApi(Sink):
    """Answers each entry from ``script``: per attempt, uid -> "throttled" (retry, with the
    service's retry-after), "invalid" (the sender's fault), or nothing (written)."""

    scheme = "batch-api"

    def __init__(self, script: list[dict[str, str]], retry_after: float | None = 0.3) -> None:
        super().__init__(Uri("batch-api", ""), {}, [], SinkContext("", None))
        self.script, self.retry_after = script, retry_after
        self.calls: list[tuple[float, list[str]]] = []
        self.written: list[str] = []

    def write(self, events):
        answers = self.script.pop(0) if self.script else {}
        self.calls.append((time.monotonic(), [e.uid for e in events]))
        rejected, retry = [], []
        for i, e in enumerate(events):
            answer = answers.get(e.uid)
            if answer == "throttled":
                retry.append(Retry(i, "ThrottlingException", self.retry_after))
            elif answer == "invalid":
                rejected.append(Rejected(i, "InvalidParameterValue"))
            else:
                self.written.append(e.uid)
        return Outcome(rejected=tuple(rejected), retry=tuple(retry))


class Aggregator(Sink):
    """Holds every event and sends them as one request when ``tick()`` is called and the
    ``gate`` is open (a digest, reduced to its bones); ``refuse`` makes that request refused."""

    scheme = "aggregator"

    def __init__(self) -> None:
        super().__init__(Uri("aggregator", ""), {}, [], SinkContext("", None))
        self.pace = Pace(["1/1h"])
        self.holding, self.sent = 0, []
        self.refuse: str | None = None

    def write(self, events):
        self.holding += len(events)
        return Outcome(held=tuple(range(len(events))))

    def tick(self):
        count, self.holding = self.holding, 0
        self.pace.spend(time.monotonic())
        if self.refuse:
            return Outcome(release=Release(count, self.refuse, make_event(999)))
        self.sent.append(count)
        return Outcome(release=Release(count))


def settings(**overrides):
    base = dict(
        name="api", batch_size=10, flush_interval=0.05, queue_size=100, overflow="block",
        max_backoff=0.05, filter=EventFilter(),
    )  # fmt: skip
    return SinkSettings(**(base | overrides))


def start(sink, tmp_path, **overrides):
    metrics, ledger = Metrics(), Ledger(MemoryStore())
    worker = SinkWorker(sink, settings(**overrides), metrics, DeadLetters(str(tmp_path)))
    worker.start()
    return worker, metrics, ledger


def feed(worker, ledger, events):
    for event in events:
        ticket = ledger.begin("", event.uid, event.resource_version, event.resource_version, 1)
        assert worker.offer(event, ticket, threading.Event())


def counted(metrics, outcome):
    return metrics.registry.get_sample_value(
        "kube_event_shipper_sink_events_total", {"sink": "api", "outcome": outcome}
    )


def stop(worker):
    worker.close()
    worker.thread.join(timeout=10)
    assert not worker.thread.is_alive()


def test_only_the_failed_entries_are_written_again_first_after_their_retry_after(tmp_path):
    events = [make_event(i) for i in range(5)]
    later = [make_event(i) for i in range(5, 8)]
    sink = BatchApi([{"u1": "throttled", "u3": "throttled", "u4": "invalid"}, {}])
    worker, metrics, ledger = start(sink, tmp_path)
    feed(worker, ledger, events)
    wait_for(lambda: len(sink.calls) == 1, what="the first attempt")
    assert ledger.position("") == "0"  # u1 is to be retried: the checkpoint waits for it
    feed(worker, ledger, later)
    stop(worker)
    (first_at, first), (second_at, second), *_ = sink.calls
    assert first == ["u0", "u1", "u2", "u3", "u4"]
    assert second[:2] == ["u1", "u3"]  # the retried lead the next attempt, new ones fill it
    assert second_at - first_at >= 0.3  # the service's retry-after, not the 0.05 s backoff
    assert sorted(sink.written) == sorted(["u0", "u2", "u1", "u3", "u5", "u6", "u7"])
    assert len(sink.written) == 7  # u0 and u2 were not written again
    assert (counted(metrics, "shipped"), counted(metrics, "dead_lettered")) == (7, 1)
    assert counted(metrics, "retried") == 2
    assert ledger.position("") == "7"
    letter = json.loads((tmp_path / "dead-letters" / "api.jsonl").read_text())
    assert letter["reason"] == "InvalidParameterValue"


def test_retries_without_retry_after_back_off_and_mark_the_sink_down_until_written(tmp_path):
    sink = BatchApi([{"u0": "throttled"}] * 3, retry_after=None)
    worker, metrics, ledger = start(sink, tmp_path, max_backoff=0.3)
    feed(worker, ledger, [make_event(0), make_event(1)])
    wait_for(lambda: len(sink.calls) >= 2, what="a retry")
    assert metrics.sink_up.labels("api")._value.get() == 0
    stop(worker)
    assert [uids for _, uids in sink.calls] == [["u0", "u1"], ["u0"], ["u0"], ["u0"]]
    assert counted(metrics, "retried") == 3 and counted(metrics, "shipped") == 2
    assert metrics.sink_up.labels("api")._value.get() == 1
    assert sink.written == ["u1", "u0"]


def test_entries_not_tried_for_the_pace_wait_without_counting_as_failures(tmp_path):
    class Paced(BatchApi):
        """Takes two entries per 0.3 s and says when to come back for the rest."""

        def __init__(self) -> None:
            super().__init__([])
            self.pace = Pace(["2/0.3s"])

        def write(self, events):
            now = time.monotonic()
            self.calls.append((now, [e.uid for e in events]))
            retry = []
            for i, e in enumerate(events):
                if self.pace.allows(now):
                    self.pace.spend(now)
                    self.written.append(e.uid)
                else:
                    retry.append(Retry(i, None, self.pace.ready_in(now)))
            return Outcome(retry=tuple(retry))

    sink = Paced()
    worker, metrics, ledger = start(sink, tmp_path)
    feed(worker, ledger, [make_event(i) for i in range(5)])
    wait_for(lambda: len(sink.written) == 5, what="all five")
    stop(worker)
    assert sink.written == ["u0", "u1", "u2", "u3", "u4"]
    assert len(sink.calls) == 3  # never called before the pace allowed: no empty attempts
    assert counted(metrics, "retried") == 0 and counted(metrics, "shipped") == 5
    assert metrics.sink_failures.labels("api")._value.get() == 0


def test_held_events_keep_their_tickets_until_released(tmp_path):
    sink = Aggregator()
    sink.pace.windows.clear()
    sink.pace.pause(3600, time.monotonic())  # nothing may go yet
    worker, metrics, ledger = start(sink, tmp_path)
    feed(worker, ledger, [make_event(i) for i in range(4)])
    wait_for(lambda: worker.held() == 4, what="four held")
    time.sleep(0.3)
    assert ledger.position("") is None and counted(metrics, "shipped") == 0
    assert not worker.idle() and worker.backlog() == 4
    sink.pace.paused_until = 0.0  # the worker ticks when the pace allows
    wait_for(lambda: ledger.position("") == "3", what="released")
    assert sink.sent == [4] and counted(metrics, "shipped") == 4 and worker.idle()
    sink.refuse = "the aggregate was refused"
    sink.pace.windows.clear()
    feed(worker, ledger, [make_event(i) for i in range(4, 6)])
    wait_for(lambda: ledger.position("") == "5", what="refused, dead-lettered, acknowledged")
    stop(worker)
    assert counted(metrics, "dead_lettered") == 2 and counted(metrics, "shipped") == 4
    letter = json.loads((tmp_path / "dead-letters" / "api.jsonl").read_text())
    assert letter["reason"] == "the aggregate was refused"
    assert letter["document"]["kubernetes"]["event"]["metadata"]["uid"] == "u999"


def test_a_list_of_rejected_still_means_the_rest_is_done():
    assert Outcome.of([Rejected(1, "x")]) == Outcome(rejected=(Rejected(1, "x"),))
    assert Outcome.of(None) == Outcome() == Outcome.of([])

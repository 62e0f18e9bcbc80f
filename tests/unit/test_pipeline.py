"""The shared pipeline: batching, retry with backoff, dead letters, back-pressure, accounting."""

import json
import threading
import time

import pytest

from shipper.checkpoint import Ledger, MemoryStore
from shipper.event import normalize
from shipper.metrics import Metrics
from shipper.pipeline import DeadLetters, SinkSettings, SinkWorker
from shipper.routing.filters import EventFilter
from shipper.sinks.base import Rejected, Sink, SinkContext, TransientError
from shipper.sinks.factory import build_sink
from shipper.uri import Uri


def make_event(i: int, type_: str = "Normal"):
    obj = {
        "metadata": {"uid": f"u{i}", "resourceVersion": str(i), "name": f"e{i}", "namespace": "ns"},
        "involvedObject": {"kind": "Pod", "name": f"p{i}", "namespace": "ns"},
        "reason": "Test",
        "message": f"message {i}",
        "type": type_,
    }
    return normalize(obj, "ADDED")


class RecordingSink(Sink):
    """Writes into a list; fails the first ``fail_times`` writes; refuses uids in ``refuse``."""

    scheme = "recording"

    def __init__(self, fail_times=0, refuse=(), explode_on=()):
        super().__init__(Uri("recording", ""), {}, [], SinkContext("", None))
        self.batches, self.fail_times = [], fail_times
        self.refuse, self.explode_on = set(refuse), set(explode_on)
        self.gate = threading.Event()
        self.gate.set()

    def write(self, events):
        self.gate.wait()
        if self.fail_times:
            self.fail_times -= 1
            raise TransientError("server said 503")
        if len(events) == 1 and events[0].uid in self.explode_on:
            raise RuntimeError("cannot encode")
        if any(e.uid in self.explode_on for e in events):
            raise RuntimeError("cannot encode")
        self.batches.append([e.uid for e in events])
        return [
            Rejected(i, "mapping conflict") for i, e in enumerate(events) if e.uid in self.refuse
        ]


def settings(**overrides):
    base = dict(
        name="rec",
        batch_size=10,
        flush_interval=0.05,
        queue_size=100,
        overflow="block",
        max_backoff=0.05,
        filter=EventFilter(),
    )
    base.update(overrides)
    return SinkSettings(**base)


def run_through(sink, events, tmp_path, **overrides):
    metrics, ledger = Metrics(), Ledger(MemoryStore())
    worker = SinkWorker(sink, settings(**overrides), metrics, DeadLetters(str(tmp_path)))
    worker.start()
    stop = threading.Event()
    for event in events:
        ticket = ledger.begin("", event.uid, event.resource_version, event.resource_version, 1)
        assert worker.offer(event, ticket, stop)
    worker.close()
    worker.thread.join(timeout=10)
    assert not worker.thread.is_alive()
    return metrics, ledger


def counted(metrics, outcome, sink="rec"):
    return metrics.registry.get_sample_value(
        "kube_event_shipper_sink_events_total", {"sink": sink, "outcome": outcome}
    )


def test_batches_by_size_and_everything_shipped(tmp_path):
    sink = RecordingSink()
    metrics, ledger = run_through(sink, [make_event(i) for i in range(25)], tmp_path)
    assert sum(len(b) for b in sink.batches) == 25
    assert max(len(b) for b in sink.batches) == 10
    assert counted(metrics, "shipped") == 25
    assert ledger.position("") == "24"


def test_transient_failures_are_retried_until_written(tmp_path):
    sink = RecordingSink(fail_times=3)
    metrics, ledger = run_through(sink, [make_event(i) for i in range(5)], tmp_path)
    assert [uid for b in sink.batches for uid in b] == [f"u{i}" for i in range(5)]
    assert counted(metrics, "retried") == 15  # 3 failed attempts of the 5-event batch
    assert counted(metrics, "shipped") == 5
    assert ledger.position("") == "4"
    assert (
        metrics.registry.get_sample_value(
            "kube_event_shipper_sink_write_failures_total", {"sink": "rec"}
        )
        == 3
    )


def test_refused_event_is_dead_lettered_and_the_rest_lands(tmp_path):
    sink = RecordingSink(refuse={"u2"})
    metrics, ledger = run_through(sink, [make_event(i) for i in range(5)], tmp_path)
    assert counted(metrics, "shipped") == 4
    assert counted(metrics, "dead_lettered") == 1
    lines = (tmp_path / "dead-letters" / "rec.jsonl").read_text().splitlines()
    letter = json.loads(lines[0])
    assert letter["reason"] == "mapping conflict"
    assert letter["document"]["kubernetes"]["event"]["metadata"]["uid"] == "u2"
    assert ledger.position("") == "4"  # the dead letter does not hold the checkpoint back


def test_poisoned_event_is_isolated(tmp_path):
    sink = RecordingSink(explode_on={"u3"})
    metrics, _ = run_through(sink, [make_event(i) for i in range(6)], tmp_path)
    assert counted(metrics, "dead_lettered") == 1
    assert sorted(uid for b in sink.batches for uid in b) == sorted(
        f"u{i}" for i in range(6) if i != 3
    )
    reason = json.loads((tmp_path / "dead-letters" / "rec.jsonl").read_text())["reason"]
    assert "RuntimeError: cannot encode" in reason


def test_full_queue_blocks_and_stop_releases(tmp_path):
    sink = RecordingSink()
    sink.gate.clear()  # the sink hangs: nothing leaves the queue
    metrics, ledger = Metrics(), Ledger(MemoryStore())
    worker = SinkWorker(sink, settings(queue_size=2, batch_size=1), metrics, DeadLetters(None))
    worker.start()
    stop = threading.Event()
    events = [make_event(i) for i in range(5)]
    results = []

    def produce():
        for event in events:
            ticket = ledger.begin("", event.uid, event.resource_version, event.resource_version, 1)
            results.append(worker.offer(event, ticket, stop))

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.5)
    # one batch taken by the hung sink + 2 queued; the producer is blocked on the 4th
    assert producer.is_alive() and results == [True, True, True]
    stop.set()
    producer.join(timeout=5)
    assert results[3] is False
    worker.abandon()
    sink.gate.set()
    worker.thread.join(timeout=5)
    # The write under way when the sink recovered counts; the queued ones were never written,
    # stay unacknowledged, and are replayed after a restart.
    assert sink.batches == [["u0"]]
    assert ledger.position("") == "0"


def test_overflow_drop_counts_and_acknowledges(tmp_path):
    sink = RecordingSink()
    sink.gate.clear()
    metrics, ledger = Metrics(), Ledger(MemoryStore())
    worker = SinkWorker(
        sink, settings(queue_size=1, batch_size=1, overflow="drop"), metrics, DeadLetters(None)
    )
    worker.start()
    stop = threading.Event()
    for event in [make_event(i) for i in range(5)]:
        ticket = ledger.begin("", event.uid, event.resource_version, event.resource_version, 1)
        assert worker.offer(event, ticket, stop)
        time.sleep(0.05)
    assert counted(metrics, "dropped") >= 3
    sink.gate.set()
    worker.close()
    worker.thread.join(timeout=5)
    assert counted(metrics, "dropped") + counted(metrics, "shipped") == 5


def test_sink_uri_builds_settings():
    sink, cfg = build_sink(
        "sqlite:/tmp/x.db?retention=48h&batch_size=50&level=Warning&namespaces=ns,b&name=store",
        SinkContext("c", None),
    )
    assert sink.options.retention == 48 * 3600
    assert cfg.name == "store" and cfg.batch_size == 50
    assert cfg.filter.level == "Warning" and cfg.filter.namespaces.exact == {"ns", "b"}
    assert cfg.filter.accepts(make_event(1, "Warning"))
    assert not cfg.filter.accepts(make_event(1, "Normal"))


def test_level_normal_means_both():
    _, cfg = build_sink("log?level=Normal", SinkContext("", None))
    assert cfg.filter.accepts(make_event(1, "Normal")) and cfg.filter.accepts(
        make_event(2, "Warning")
    )


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("elastic:http://x", "unknown scheme 'elastic'"),
        ("sqlite:?retension=1h", "did you mean 'retention'"),
        ("sqlite:?retention=soon", "parameter retention='soon': expected a duration"),
        ("log?level=Critical", "parameter level='Critical': expected one of Normal, Warning"),
        ("log?batch_size=0", "parameter batch_size='0': expected a whole number"),
    ],
)
def test_bad_sink_uris(uri, message):
    from shipper.uri import UsageError

    with pytest.raises(UsageError, match=message):
        build_sink(uri, SinkContext("", None))


def filter_event(ns: str | None, kind: str, reason: str, count: int = 1, type_: str = "Warning"):
    involved = {"kind": kind, "name": "x"} | ({"namespace": ns} if ns else {})
    obj = {
        "metadata": {"uid": "u", "resourceVersion": "1", "name": "e", "namespace": ns or "default"},
        "involvedObject": involved,
        "reason": reason,
        "message": "m",
        "type": type_,
        "count": count,
    }
    return normalize(obj, "ADDED")


@pytest.mark.parametrize(
    ("query", "event", "passes"),
    [
        ("exclude_namespaces=kube-system", filter_event("kube-system", "Pod", "BackOff"), False),
        ("exclude_namespaces=kube-system", filter_event("shop", "Pod", "BackOff"), True),
        ("exclude_namespaces=kube-system", filter_event(None, "Node", "NodeNotReady"), True),
        ("namespaces=shop", filter_event(None, "Node", "NodeNotReady"), False),
        ("exclude_kinds=Node,Lease", filter_event(None, "Node", "NodeNotReady"), False),
        ("exclude_kinds=Node,Lease", filter_event("shop", "Pod", "BackOff"), True),
        ("exclude_reasons=^(Pulled|Created)$", filter_event("shop", "Pod", "Pulled"), False),
        ("exclude_reasons=^(Pulled|Created)$", filter_event("shop", "Pod", "PulledAgain"), True),
        ("min_count=3", filter_event("shop", "Pod", "BackOff", count=2), False),
        ("min_count=3", filter_event("shop", "Pod", "BackOff", count=3), True),
        (
            "level=Warning&exclude_reasons=Unhealthy",
            filter_event("shop", "Pod", "Unhealthy"),
            False,
        ),
        (
            "level=Warning&exclude_reasons=Unhealthy",
            filter_event("shop", "Pod", "BackOff", type_="Normal"),
            False,
        ),
        ("reason=Back&exclude_reasons=BackOffPull", filter_event("shop", "Pod", "BackOff"), True),
        (
            "reason=Back&exclude_reasons=BackOffPull",
            filter_event("shop", "Pod", "BackOffPull"),
            False,
        ),
    ],
)
def test_filters_and_exclusions(query, event, passes):
    _, cfg = build_sink(f"log?{query}", SinkContext("", None))
    assert cfg.filter.accepts(event) is passes, cfg.filter.describe()


def test_bad_exclusion_regex_is_a_usage_error():
    from shipper.uri import UsageError

    with pytest.raises(
        UsageError, match=r"parameter exclude_reasons='\(Pulled': expected a regular"
    ):
        build_sink("log?exclude_reasons=(Pulled", SinkContext("", None))
    with pytest.raises(UsageError, match="parameter min_count='0': expected a whole number"):
        build_sink("log?min_count=0", SinkContext("", None))


@pytest.mark.parametrize(
    ("query", "event", "passes"),
    [
        # kube-eventer's docs: a list of levels means its lowest; namespaces may be regexes;
        # a list of reasons separated by commas
        ("level=Normal,Warning", filter_event("shop", "Pod", "Pulled", type_="Normal"), True),
        ("level=Warning", filter_event("shop", "Pod", "Pulled", type_="Normal"), False),
        ("namespaces=my-.*", filter_event("my-app", "Pod", "BackOff"), True),
        ("namespaces=my-.*", filter_event("your-my-app", "Pod", "BackOff"), False),
        ("namespaces=my-.*,shop", filter_event("shop", "Pod", "BackOff"), True),
        ("exclude_namespaces=kube-.*", filter_event("kube-system", "Pod", "BackOff"), False),
        ("exclude_reasons=Pulled,BackOff", filter_event("shop", "Pod", "BackOff"), False),
        ("exclude_reasons=Pulled,BackOff", filter_event("shop", "Pod", "Created"), True),
        ("reason=^Fail{1,2}ed$,OOM", filter_event("shop", "Pod", "Failed"), True),
        ("reason=^Fail{1,2}ed$,OOM", filter_event("shop", "Pod", "OOMKilling"), True),
        ("reason=^Fail{1,2}ed$,OOM", filter_event("shop", "Pod", "BackOff"), False),
        # Node events are recorded in default: namespace means the Event's own
        ("namespaces=default", filter_event(None, "Node", "NodeNotReady"), True),
    ],
)
def test_kube_eventer_filter_spellings(query, event, passes):
    _, cfg = build_sink(f"log?{query}", SinkContext("", None))
    assert cfg.filter.accepts(event) is passes

"""client-go's event bookkeeping (shipper/recorder/correlator.py) on a fake clock, no server.

The expected numbers are worked out from client-go's rules, not read back from the code:
burst 25 and one token per 300 s per source+object; 10 distinct messages in 600 s combine;
events.k8s.io series start at count 2 and are written on the 30 min heartbeat / 6 min finish.
"""

from __future__ import annotations

import logging
import uuid
from types import SimpleNamespace

import pytest

from shipper.metrics import Metrics
from shipper.recorder import (
    AGGREGATE_PREFIX,
    CorrelatorOptions,
    EventCorrelator,
    EventRecorder,
    ObjectReference,
    SeriesCache,
    TokenBucket,
    get_reference,
)
from shipper.recorder.correlator import LRU, event_name
from shipper.recorder.own import OwnEvents

T0 = 1_800_000_000.0


def core_event(message: str = "m", name: str = "web-1", reason: str = "BackOff") -> dict:
    return {
        "metadata": {"name": f"{name}.{uuid.uuid4().hex[:8]}", "namespace": "ns"},
        "involvedObject": {"kind": "Pod", "namespace": "ns", "name": name, "uid": f"u-{name}"},
        "reason": reason,
        "message": message,
        "type": "Warning",
        "count": 1,
        "firstTimestamp": "2027-01-15T08:00:00Z",
        "lastTimestamp": "2027-01-15T08:00:00Z",
        "source": {"component": "test"},
        "reportingComponent": "test",
        "reportingInstance": "",
    }


def v1_event(note: str = "n", action: str = "Sync") -> dict:
    return {
        "metadata": {"name": f"web.{uuid.uuid4().hex[:8]}", "namespace": "ns"},
        "type": "Normal",
        "action": action,
        "reason": "Synced",
        "reportingController": "test",
        "reportingInstance": "test-0",
        "regarding": {"kind": "Deployment", "namespace": "ns", "name": "web"},
        "note": note,
    }


def test_token_bucket_starts_full_and_refills_one_token_per_300_seconds():
    bucket = TokenBucket(1 / 300, 25)
    assert [bucket.try_accept(T0) for _ in range(26)] == [True] * 25 + [False]
    assert not bucket.try_accept(T0 + 299)  # refused requests do not move the bucket
    # client-go's QPS is a float32: 1/300 becomes 0.0033333334, a token a hair under 300 s
    assert bucket.try_accept(T0 + 299.999996)
    assert not bucket.try_accept(T0 + 300)
    # a long quiet refills at most the burst
    assert sum(bucket.try_accept(T0 + 10 * 86400) for _ in range(40)) == 25


def test_identical_events_one_create_24_patches_then_the_spam_filter_counts_silently():
    correlator = EventCorrelator()
    results = [correlator.correlate(core_event(), T0 + i * 0.001) for i in range(1000)]
    written = [r for r in results if not r.skip]
    assert len(written) == 25 and sum(r.skip for r in results) == 975
    assert written[0].patch is None and written[0].event["count"] == 1
    first_name = written[0].event["metadata"]["name"]
    assert [r.patch["count"] for r in written[1:]] == list(range(2, 26))
    assert {r.event["metadata"]["name"] for r in written} == {first_name}
    assert all(r.patch["message"] == "m" for r in written[1:])
    # one token back after 300 s: the next write carries every occurrence counted meanwhile
    later = correlator.correlate(core_event(), T0 + 1 + 300)
    assert not later.skip and later.patch["count"] == 1001
    assert correlator.correlate(core_event(), T0 + 1 + 300).skip


def test_the_spam_filter_is_per_source_and_object():
    correlator = EventCorrelator()
    for _ in range(25):
        assert not correlator.correlate(core_event(name="a"), T0).skip
    assert correlator.correlate(core_event(name="a"), T0).skip
    assert not correlator.correlate(core_event(name="b"), T0).skip
    other_source = core_event(name="a")
    other_source["source"] = {"component": "other"}
    assert not correlator.correlate(other_source, T0).skip


def test_ten_distinct_messages_in_ten_minutes_are_combined():
    correlator = EventCorrelator()
    results = [correlator.correlate(core_event(f"m{i}"), T0 + i * 0.1) for i in range(1000)]
    written = [r for r in results if not r.skip]
    assert len(written) == 25  # the spam filter counts combined writes too
    singles, combined = written[:9], written[9:]
    assert [r.event["message"] for r in singles] == [f"m{i}" for i in range(9)]
    assert all(r.patch is None for r in singles)
    assert combined[0].patch is None and combined[0].event["count"] == 1
    assert combined[0].event["message"] == AGGREGATE_PREFIX + "m9"
    name = combined[0].event["metadata"]["name"]
    assert name.startswith("web-1.") and all(r.event["metadata"]["name"] == name for r in combined)
    assert [r.patch["count"] for r in combined[1:]] == list(range(2, 17))
    assert combined[-1].patch["message"] == AGGREGATE_PREFIX + "m24"


def test_a_quiet_group_starts_over_after_the_interval():
    options = CorrelatorOptions(burst=1000)
    correlator = EventCorrelator(options)
    for i in range(9):
        assert correlator.correlate(core_event(f"m{i}"), T0).patch is None
    # 600 s is not more than the interval: still the same group, the 10th message combines
    assert (
        correlator.correlate(core_event("m9"), T0 + 600)
        .event["message"]
        .startswith(AGGREGATE_PREFIX)
    )
    fresh = correlator.correlate(core_event("m10"), T0 + 1200.001)
    assert fresh.event["message"] == "m10" and fresh.patch is None


def test_series_start_at_two_and_later_repeats_wait_for_the_heartbeat():
    cache = SeriesCache()
    first = cache.observe(v1_event(), T0)
    assert first is not None and "series" not in first
    second = cache.observe(v1_event(note="other note, same series"), T0 + 1)
    assert second["series"]["count"] == 2
    assert second["metadata"]["name"] == first["metadata"]["name"]
    assert all(cache.observe(v1_event(), T0 + 1 + i) is None for i in range(998))
    ((_, refreshed),) = cache.refresh()
    assert refreshed["series"]["count"] == 1000
    assert cache.finish(T0 + 998 + 360)[0] == []  # quiet for exactly 6 min: not yet
    ((key, final),), _ = cache.finish(T0 + 998 + 360.5)
    assert final["series"]["count"] == 1000
    cache.forget(key)
    again = cache.observe(v1_event(), T0 + 2000)
    assert again is not None and "series" not in again  # a new event after the series ended


def test_another_action_is_another_series_and_quiet_singletons_are_forgotten():
    cache = SeriesCache()
    assert cache.observe(v1_event(action="Sync"), T0) is not None
    assert cache.observe(v1_event(action="Delete"), T0) is not None
    assert len(cache) == 2
    ended, forgotten = cache.finish(T0 + 361)
    assert ended == [] and forgotten == 2 and len(cache) == 0


def test_lru_drops_the_least_recently_used():
    lru: LRU[str, int] = LRU(2)
    lru.add("a", 1)
    lru.add("b", 2)
    assert lru.get("a") == 1
    lru.add("c", 3)
    assert lru.get("b") is None and lru.get("a") == 1 and len(lru) == 2


def test_event_names_and_references():
    assert event_name("web-1", 1.5) == "web-1.59682f00"
    assert event_name("Not_Valid", 1.5) != "Not_Valid.59682f00"  # a UUID instead
    assert len(event_name("Not_Valid", 1.5)) == 36
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"}}
    assert get_reference(pod).to_dict() == {
        "apiVersion": "v1", "kind": "Pod", "namespace": "n", "name": "p"
    }  # fmt: skip
    model = SimpleNamespace(
        api_version="apps/v1",
        kind="Deployment",
        metadata=SimpleNamespace(name="d", namespace="n", uid="u", resource_version="7"),
    )
    assert get_reference(model) == ObjectReference(
        kind="Deployment", name="d", namespace="n", api_version="apps/v1", uid="u",
        resource_version="7",
    )  # fmt: skip
    with pytest.raises(ValueError, match="kind and name"):
        get_reference({"metadata": {"name": "x"}})


# -- the shipper's own events: transitions read from the daemon's metrics


class Captured(EventRecorder):
    """The recorder, not started, keeping what it is asked to record."""

    def __init__(self) -> None:
        super().__init__(None, "kube-event-shipper", start=False)
        self.calls: list[tuple[str, str, str]] = []

    def event(self, obj, type, reason, message, **kwargs):  # type: ignore[no-untyped-def]
        self.calls.append((type, reason, message))
        return True


def own_events(sinks=("es",)):  # type: ignore[no-untyped-def]
    metrics = Metrics()
    for sink in sinks:
        metrics.register_sink(sink, 10)
    recorder = Captured()
    pod = ObjectReference(kind="Pod", name="shipper-0", namespace="ns")
    return OwnEvents(recorder, pod, metrics.registry, list(sinks)), metrics, recorder


def test_a_sink_down_then_up_is_one_warning_then_one_normal():
    own, metrics, recorder = own_events()
    own.poll()
    assert recorder.calls == []
    logging.getLogger("shipper.pipeline").warning(
        "Sink %s could not write %d events (%s); retrying in %.1f s.", "es", 3, "refused", 1.0
    )
    metrics.sink_failures.labels("es").inc()
    metrics.sink_up.labels("es").set(0)
    own.poll()
    metrics.sink_failures.labels("es").inc()  # still failing: nothing new to say
    own.poll()
    assert recorder.calls == [("Warning", "SinkDown", "Sink es cannot write: refused")]
    metrics.sink_up.labels("es").set(1)
    own.poll()
    own.poll()
    assert [c[1] for c in recorder.calls] == ["SinkDown", "SinkRecovered"]
    assert recorder.calls[1][0] == "Normal"


def test_a_failure_between_two_looks_is_reported_as_down_and_up():
    own, metrics, recorder = own_events()
    metrics.sink_failures.labels("es").inc()  # failed, and wrote again before the next look
    own.poll()
    assert [c[1] for c in recorder.calls] == ["SinkDown", "SinkRecovered"]


def test_relists_and_own_dead_letters():
    own, metrics, recorder = own_events()
    metrics.watch_restarts.labels("gone").inc()
    own.poll()
    own.poll()
    assert [c[1] for c in recorder.calls] == ["WatchExpired"]
    mine = SimpleNamespace(
        object_kind="Pod", object_name="shipper-0", object_namespace="ns",
        source_component="kube-event-shipper", reporting_controller=None,
        describe=lambda: "Warning SinkDown pod/ns/shipper-0",
    )  # fmt: skip
    other = SimpleNamespace(**{**vars(mine), "object_name": "web-1", "describe": lambda: "w"})
    own.dead_letter("es", mine, "400")
    own.dead_letter("es", other, "400")
    assert [c[1] for c in recorder.calls] == ["WatchExpired", "EventDeadLettered"]
    assert recorder.calls[-1][2] == "Sink es refused an event for good (w): 400"


def test_own_events_only_in_a_pod():
    metrics = Metrics()
    assert OwnEvents.from_environment(None, metrics.registry, [], environ={}) is None
    pod_env = {"POD_NAME": "p", "POD_NAMESPACE": "n", "KES_SELF_EVENTS": "off"}
    assert OwnEvents.from_environment(None, metrics.registry, [], environ=pod_env) is None
    pod_env["KES_SELF_EVENTS"] = "events.k8s.io/v1"
    own = OwnEvents.from_environment(None, metrics.registry, [], environ=pod_env)
    assert own is not None and own.recorder.api_version == "events.k8s.io/v1"
    assert own.pod.to_dict() == {"apiVersion": "v1", "kind": "Pod", "namespace": "n", "name": "p"}
    own.close(0.1)


def test_references_from_read_only_mappings_as_kopf_passes_them():
    from types import MappingProxyType

    body = MappingProxyType(
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": MappingProxyType({"name": "p", "namespace": "n", "uid": "u"})}
    )  # fmt: skip
    assert get_reference(body).to_dict() == {
        "apiVersion": "v1", "kind": "Pod", "namespace": "n", "name": "p", "uid": "u"
    }  # fmt: skip

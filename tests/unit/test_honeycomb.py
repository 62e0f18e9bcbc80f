"""The honeycomb sink in process against a local batch events API
(tests/support/receivers/honeycomb.py checks headers and body): kube-eventer's URI, the body,
per-event statuses (202 done, 400 dead letter, 429/5xx retried alone), a wrong key, sampling."""

from __future__ import annotations

import pytest

from shipper.sinks.delivery import Outcome
from shipper.uri import UsageError
from tests.support.notify import event, sink
from tests.support.receivers.honeycomb import HoneycombReceiver

KEY = "hc-write-key-0123"


def hc(url: str, extra: str = "") -> object:
    return sink(f"honeycomb:?dataset=mydataset&writekey={KEY}&apihost={url}{extra}")


def test_kube_eventers_uri_writes_one_batch_with_its_fields():
    with HoneycombReceiver(key=KEY) as api:
        events = [event(reason="BackOff"), event(type_="Normal", reason="Pulled", count=3)]
        assert hc(api.url).write(events) == Outcome()
    assert api.problems == [] and len(api.requests) == 1
    request = api.requests[0]
    assert request.path == "/1/batch/mydataset" and request.headers["x-honeycomb-team"] == KEY
    got = api.events["mydataset"]
    assert [g["time"] for g in got] == [e.timestamp for e in events]
    assert got[1]["samplerate"] == 1
    assert got[1]["data"] | {} == {
        "namespace": "shop", "kind": "Pod", "name": "web-1", "subobject": "",
        "source.component": "kubelet", "source.host": "node-a", "count": 3, "type": "Normal",
        "reason": "Pulled", "message": events[1].message, "uid": events[1].uid,
        "resource_version": events[1].resource_version, "version_id": f"{events[1].uid}.3",
        "first_timestamp": events[1].first_timestamp, "action": "", "reporting_controller": "",
        "cluster": "test",
    }  # fmt: skip


def test_per_event_statuses_are_handled_per_event():
    with HoneycombReceiver(key=KEY) as api:
        api.per_event = [202, 400, 429, 503, 202]
        outcome = hc(api.url).write([event(obj=f"p{i}") for i in range(5)])
    assert [r.index for r in outcome.rejected] == [1]
    assert "Honeycomb refused the event (400)" in outcome.rejected[0].reason
    assert [r.index for r in outcome.retry] == [2, 3]
    assert [g["data"]["name"] for g in api.events["mydataset"]] == ["p0", "p4"]


def test_a_wrong_key_retries_the_batch_in_one_line_without_the_key():
    with HoneycombReceiver(key="another-key-42") as api:
        outcome = hc(api.url).write([event(), event()])
    assert [r.index for r in outcome.retry] == [0, 1]
    reason = outcome.retry[0].reason
    assert reason.startswith("Honeycomb refused the write key (HTTP 401: unknown API key")
    assert KEY not in reason


def test_429_for_the_request_retries_after_retry_after():
    with HoneycombReceiver(key=KEY) as api:
        api.inject.append((429, {"error": "request dropped due to rate limiting"}, {"Retry-After": "3"}))  # fmt: skip
        outcome = hc(api.url).write([event()])
    assert [(r.index, r.after) for r in outcome.retry] == [(0, 3.0)]


def test_sampling_keeps_one_in_n_with_its_samplerate(monkeypatch):
    with HoneycombReceiver(key=KEY) as api:
        events = [event() for _ in range(400)]
        assert hc(api.url, "&sample_rate=4").write(events) == Outcome()
    got = api.events["mydataset"]
    assert 60 < len(got) < 140 and {g["samplerate"] for g in got} == {4}


def test_the_key_from_the_environment_and_bad_uris(monkeypatch):
    monkeypatch.setenv("HONEYCOMB_WRITEKEY", "from-env-key")
    assert sink("honeycomb:?dataset=d", opened=False).key == "from-env-key"
    monkeypatch.delenv("HONEYCOMB_WRITEKEY")
    with pytest.raises(UsageError, match="no write key"):
        sink("honeycomb:?dataset=d", opened=False)
    with pytest.raises(UsageError, match="parameter apihost"):
        sink("honeycomb:?writekey=k&apihost=ftp://x", opened=False)
    assert "k3y" not in sink("honeycomb:?writekey=k3y-secret", opened=False).describe()

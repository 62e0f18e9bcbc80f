"""The EventRecorder (shipper/recorder/) against the real kube-apiserver, the shipper
reporting on its own Pod with it, and its correlator against client-go's own.

Expected numbers come from client-go's rules: a spam bucket of 25 tokens per source+object,
refilled one per 300 s (float32 QPS); 10 distinct messages in 600 s combine; an events.k8s.io
series is created at count 2 and its count is written on the heartbeat or when it finishes.
The last tests run client-go v0.34.4's EventCorrelator itself (a small Go program built from
the Go module proxy) over the same scenarios and require the same decisions, step by step.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from shipper.recorder import (
    AGGREGATE_PREFIX,
    EVENTS_V1,
    EventCorrelator,
    EventRecorder,
    RecorderOptions,
)
from shipper.recorder.correlator import rfc3339
from tests.support.common import wait_for
from tests.support.kube import core_event, etcd_compact
from tests.support.receivers.base import Reply, Request
from tests.support.receivers.webhook import WebhookReceiver

T0 = 1_900_000_000.0
ORACLE_CACHE = Path.home() / ".cache" / "kube-event-shipper-stack" / "recorder-oracle"


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_pod(api: Any, namespace: str, name: str = "shipper-0") -> dict[str, Any]:
    """A Pod object for events to point at. It is bound to a node that does not exist, so
    neither the stack's scheduler nor its kubelet (when the node component runs) touches it
    or reports on it."""
    body = {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "nodeName": "no-such-node",
            "containers": [{"name": "shipper", "image": "kube-event-shipper:test"}],
        },
    }
    pod = client.CoreV1Api(api).create_namespaced_pod(namespace, body)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod.metadata.name, "namespace": namespace, "uid": pod.metadata.uid},
    }


def core_events(api: Any, namespace: str, component: str = "recorder-test") -> list[Any]:
    """The namespace's core Events that ``component`` reported (by source: client-go's combined
    event carries no reportingComponent)."""
    items = client.CoreV1Api(api).list_namespaced_event(namespace).items
    return [e for e in items if e.source and e.source.component == component]


def v1_events(api: Any, namespace: str, controller: str = "recorder-test") -> list[Any]:
    items = client.EventsV1Api(api).list_namespaced_event(namespace).items
    return [e for e in items if e.reporting_controller == controller]


def test_1000_identical_core_events_become_one_event_counted_as_client_go_counts(
    kube_api: Any, namespace: str
) -> None:
    pod = make_pod(kube_api, namespace)
    clock = FakeClock()
    recorder = EventRecorder(kube_api, "recorder-test", host="node-a", clock=clock)
    for _ in range(1000):
        assert recorder.event(pod, "Warning", "BackOff", "Back-off restarting failed container")
    assert recorder.flush(120)
    (event,) = core_events(kube_api, namespace)
    # one create, 24 PATCHes (counts 2..25); the other 975 were counted but dropped by the spam
    # filter: its bucket holds 25 and the fake clock did not move
    assert event.count == 25 and event.message == "Back-off restarting failed container"
    assert (recorder.stats.created, recorder.stats.patched, recorder.stats.skipped) == (1, 24, 975)
    assert event.involved_object.uid == pod["metadata"]["uid"]
    assert (event.source.component, event.source.host) == ("recorder-test", "node-a")
    # 299 s later the bucket is still empty; at 300 s one token is back, and the write that
    # gets through carries every occurrence counted meanwhile
    # (the correlator reads the clock when the writer thread takes the event: flush first)
    clock.now = T0 + 299
    recorder.event(pod, "Warning", "BackOff", "Back-off restarting failed container")
    assert recorder.flush(60)
    clock.now = T0 + 300
    recorder.event(pod, "Warning", "BackOff", "Back-off restarting failed container")
    recorder.event(pod, "Warning", "BackOff", "Back-off restarting failed container")
    assert recorder.flush(60)
    (event,) = core_events(kube_api, namespace)
    assert event.count == 1002
    assert (recorder.stats.patched, recorder.stats.skipped) == (25, 977)
    recorder.close()


def test_distinct_messages_are_combined_and_the_spam_filter_caps_them(
    kube_api: Any, namespace: str
) -> None:
    pod = make_pod(kube_api, namespace)
    recorder = EventRecorder(kube_api, "recorder-test", clock=FakeClock())
    for i in range(1000):
        recorder.event(pod, "Warning", "Unhealthy", f"Readiness probe failed: attempt {i}")
    assert recorder.flush(120)
    events = core_events(kube_api, namespace)
    combined = [e for e in events if e.message.startswith(AGGREGATE_PREFIX)]
    singles = sorted(e.message for e in events if e not in combined)
    # messages 0..8 stand alone; from the 10th distinct message on they are combined into one
    # event; 25 writes in all (9 + 1 create + 15 PATCHes), then the spam filter drops the rest
    assert singles == sorted(f"Readiness probe failed: attempt {i}" for i in range(9))
    (aggregate,) = combined
    assert aggregate.count == 16
    assert aggregate.message == AGGREGATE_PREFIX + "Readiness probe failed: attempt 24"
    assert recorder.stats.skipped == 975
    recorder.close()


def test_1000_identical_events_k8s_io_events_become_one_series(
    kube_api: Any, namespace: str
) -> None:
    pod = make_pod(kube_api, namespace)
    clock = FakeClock()
    recorder = EventRecorder(
        kube_api, "recorder-test", api_version=EVENTS_V1, instance="recorder-test-0", clock=clock
    )
    for i in range(1000):
        clock.now = T0 + i * 0.01
        recorder.event(pod, "Normal", "Reconciled", "Reconciled the pod", action="Reconcile")
    assert recorder.flush(60)
    (event,) = v1_events(kube_api, namespace)
    # created, then PATCHed into a series of 2; the other 998 are counted in memory
    assert event.series.count == 2 and recorder.stats.counted == 998
    assert (event.reporting_controller, event.reporting_instance) == (
        "recorder-test",
        "recorder-test-0",
    )
    assert recorder.refresh_series(30)  # the 30 min heartbeat
    (event,) = v1_events(kube_api, namespace)
    assert event.series.count == 1000
    last = event.series.last_observed_time.timestamp()
    assert last == pytest.approx(T0 + 9.99, abs=1e-3)
    recorder.event(pod, "Normal", "Reconciled", "Reconciled the pod", action="Reconcile")
    assert recorder.flush(30)  # counted at T0 + 9.99, when the writer thread took it
    clock.now = T0 + 9.99 + 360  # quiet for 6 min since the last one: not finished yet
    assert recorder.finish_series(30) and len(recorder.series) == 1
    clock.now = T0 + 9.99 + 361
    assert recorder.finish_series(30) and len(recorder.series) == 0
    (event,) = v1_events(kube_api, namespace)
    assert event.series.count == 1001
    # the same event after the series ended is a new event
    recorder.event(pod, "Normal", "Reconciled", "Reconciled the pod", action="Reconcile")
    assert recorder.flush(30)
    assert len(v1_events(kube_api, namespace)) == 2
    recorder.close()


def test_a_rejected_event_is_not_retried(kube_api: Any, namespace: str) -> None:
    options = RecorderOptions(sleep_duration=0.1)
    recorder = EventRecorder(kube_api, "recorder-test", options=options)
    # the namespace does not exist: the API server answers 404 to the create, which client-go
    # gives up on at once (it retries transport errors only)
    ghost = {"kind": "Pod", "metadata": {"name": "x", "namespace": f"gone-{uuid.uuid4().hex[:6]}"}}
    recorder.event(ghost, "Normal", "Test", "m")
    assert recorder.flush(30)
    assert (recorder.stats.rejected, recorder.stats.failed, recorder.stats.created) == (1, 0, 0)
    assert not recorder.event(ghost, "Bogus", "Test", "m")  # an unknown type is refused
    recorder.close()


# -- the shipper reporting on its own Pod

BODY = (
    '{"reason": "{{ .Reason }}", "object": "{{ .InvolvedObject.Name }}",'
    ' "component": "{{ .ReportingController }}", "count": {{ .Count }}}'
)


class RefusingReceiver(WebhookReceiver):
    """A webhook that refuses every request for good (400): the shipper dead-letters it all."""

    def route(self, request: Request) -> Reply:
        self.messages.append(request.json())
        return 400, "refused", {}


class ClosingReceiver(WebhookReceiver):
    """A webhook that closes each connection after its reply: once the server is shut down,
    the sink's next request is refused (a kept-alive connection would still be served)."""

    def route(self, request: Request) -> Reply:
        status, body, headers = super().route(request)
        return status, body, {**headers, "Connection": "close"}


def restart_on(port: int) -> ClosingReceiver:
    """A new webhook receiver on ``port`` (the one a stopped receiver had): the sink comes back
    at the same URL."""
    receiver = ClosingReceiver()
    handler = receiver.server.RequestHandlerClass
    receiver.server.server_close()
    receiver.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    receiver.url = f"http://127.0.0.1:{port}"
    receiver.thread = threading.Thread(
        target=receiver.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    return receiver.__enter__()


@pytest.fixture
def shipper_in_pod(
    shipper_factory: Any, kube_env: dict[str, str], kube_api: Any, namespace: str, tmp_path: Any
) -> Any:
    """``start(sink_url, *flags, env=)``: the shipper as a Deployment runs it, its Downward API env naming a
    Pod object of the test's namespace; returns (process, pod)."""
    pod = make_pod(kube_api, namespace)
    body = tmp_path / "body.json"
    body.write_text(BODY)

    def start(
        url: str, *extra: str, env: dict[str, str] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        env = {
            **(env or {}),
            "KUBECONFIG": kube_env["KUBECONFIG"],
            "POD_NAME": pod["metadata"]["name"],
            "POD_NAMESPACE": namespace,
            "POD_UID": pod["metadata"]["uid"],
        }
        process = shipper_factory(
            [
                f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
                f"--sink=webhook:{url}/events?body_template={body}&max_backoff=1s",
                f"--state-dir={tmp_path / 'state'}",
                "--grace-period=3s",
                *extra,
            ],
            env=env,
        ).start()
        return process, pod

    return start


def own_events(api: Any, namespace: str) -> list[Any]:
    """The shipper's own events, in the core view (events.k8s.io ones too: there the
    reportingController is the reportingComponent, and series.count the count)."""
    items = client.CoreV1Api(api).list_namespaced_event(namespace).items
    return [e for e in items if e.reporting_component == "kube-event-shipper"]


def count(event: Any) -> int:
    return int(event.series.count if event.series else event.count or 1)


@pytest.mark.parametrize("api", ["v1", "events.k8s.io/v1"])
def test_a_sink_outage_is_a_warning_then_a_normal_event_on_the_shippers_pod(
    shipper_in_pod: Any, kube_api: Any, namespace: str, api: str
) -> None:
    hook = ClosingReceiver().__enter__()
    port = int(hook.url.rsplit(":", 1)[1])
    shipper, pod = shipper_in_pod(hook.url, env={"KES_SELF_EVENTS": api})
    core_event(kube_api, namespace, reason="BeforeOutage", obj="web-0")
    wait_for(lambda: any(m["reason"] == "BeforeOutage" for m in hook.messages), 30, "a delivery")
    hook.__exit__()  # the sink's server is gone: connections are refused
    core_event(kube_api, namespace, reason="DuringOutage", obj="web-1")
    (down,) = wait_for(lambda: own_events(kube_api, namespace), 30, "the SinkDown event")
    assert (down.type, down.reason) == ("Warning", "SinkDown")
    assert "Sink webhook cannot write" in down.message
    assert (down.involved_object.kind, down.involved_object.name) == ("Pod", "shipper-0")
    assert down.involved_object.uid == pod["metadata"]["uid"]
    assert not any(e.reason == "SinkRecovered" for e in own_events(kube_api, namespace))
    hook = restart_on(port)
    try:
        wait_for(
            lambda: any(e.reason == "SinkRecovered" for e in own_events(kube_api, namespace)),
            30,
            "the SinkRecovered event",
        )
        # its own events are regular Events: the shipper ships them too, once each ...
        wait_for(
            lambda: (
                {"DuringOutage", "SinkDown", "SinkRecovered"}
                <= {m["reason"] for m in hook.messages}
            ),
            30,
            "the outage's events at the restarted sink",
        )
        # ... and they cause no further events: give a loop time to show itself
        time.sleep(4)
        events = own_events(kube_api, namespace)
        assert sorted((e.reason, e.type, count(e)) for e in events) == [
            ("SinkDown", "Warning", 1),
            ("SinkRecovered", "Normal", 1),
        ]
        shipped = [m["reason"] for m in hook.messages if m["component"] == "kube-event-shipper"]
        assert sorted(shipped) == ["SinkDown", "SinkRecovered"]
        assert shipper.stop() == 0
    finally:
        hook.__exit__()


def test_a_dead_letter_is_reported_once_and_its_own_dead_letter_is_not(
    shipper_in_pod: Any, kube_api: Any, namespace: str
) -> None:
    with RefusingReceiver() as hook:
        shipper, _pod = shipper_in_pod(hook.url)
        core_event(kube_api, namespace, reason="Refused", obj="web-0")
        (report,) = wait_for(lambda: own_events(kube_api, namespace), 30, "EventDeadLettered")
        assert (report.type, report.reason) == ("Warning", "EventDeadLettered")
        assert "Sink webhook refused an event for good (Warning Refused pod/" in report.message
        # the report itself goes to the same sink and is refused too: that is not reported
        wait_for(
            lambda: any(m["reason"] == "EventDeadLettered" for m in hook.messages),
            30,
            "the report at the sink",
        )
        time.sleep(4)
        events = own_events(kube_api, namespace)
        assert [(e.reason, count(e)) for e in events] == [("EventDeadLettered", 1)]
        assert sorted(m["reason"] for m in hook.messages) == ["EventDeadLettered", "Refused"]
        assert (
            shipper.metric(
                "kube_event_shipper_sink_events_total", sink="webhook", outcome="dead_lettered"
            )
            == 2
        )
        assert shipper.stop() == 0


def test_a_watch_expiry_and_leadership_are_reported(
    shipper_in_pod: Any, kube_api: Any, kube_env: dict[str, str], namespace: str
) -> None:
    with ClosingReceiver() as hook:
        shipper, _pod = shipper_in_pod(
            hook.url,
            f"--checkpoint=configmap:{namespace}/checkpoint",
            "--leader-elect",
            f"--leader-elect-lease={namespace}/shipper",
        )
        (elected,) = wait_for(lambda: own_events(kube_api, namespace), 30, "LeaderElected")
        assert (elected.type, elected.reason) == ("Normal", "LeaderElected")
        assert f"Lease {namespace}/shipper" in elected.message
        core_event(kube_api, namespace, reason="First", obj="web-0")
        wait_for(lambda: any(m["reason"] == "First" for m in hook.messages), 30, "a delivery")
        assert shipper.stop() == 0  # a graceful stop releases the Lease: nothing to report
        core_event(kube_api, namespace, reason="WhileStopped", obj="web-1")
        # the checkpoint's resourceVersion is compacted away: the resumed watch gets 410
        etcd_compact(kube_env["ETCD_URL"])
        shipper.start()
        wait_for(
            lambda: any(e.reason == "WatchExpired" for e in own_events(kube_api, namespace)),
            30,
            "WatchExpired",
        )
        wait_for(lambda: any(m["reason"] == "WhileStopped" for m in hook.messages), 30, "relist")
        assert shipper.stop() == 0
        reasons = sorted((e.reason, e.type, count(e)) for e in own_events(kube_api, namespace))
        # the second run was elected again: a new event (client-go's counts live in the
        # process: a new recorder starts afresh)
        assert reasons == [
            ("LeaderElected", "Normal", 1),
            ("LeaderElected", "Normal", 1),
            ("WatchExpired", "Normal", 1),
        ]


# -- the correlator against client-go's own, on the same fake clock

ORACLE_GO = """\
// client-go's EventCorrelator (tools/record) over a scenario from stdin, on a fake clock.
package main

import (
	"encoding/json"
	"os"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	testclock "k8s.io/utils/clock/testing"
)

type step struct {
	At      float64 `json:"at"`
	Object  string  `json:"object"`
	Reason  string  `json:"reason"`
	Message string  `json:"message"`
}

type result struct {
	Skip    bool            `json:"skip"`
	Count   int32           `json:"count"`
	Message string          `json:"message"`
	Patch   json.RawMessage `json:"patch"`
}

func main() {
	var steps []step
	if err := json.NewDecoder(os.Stdin).Decode(&steps); err != nil {
		panic(err)
	}
	start := time.Unix(1800000000, 0)
	clock := testclock.NewFakeClock(start)
	correlator := record.NewEventCorrelatorWithOptions(record.CorrelatorOptions{Clock: clock})
	out := []result{}
	for _, s := range steps {
		clock.SetTime(start.Add(time.Duration(s.At * float64(time.Second))))
		now := metav1.NewTime(clock.Now())
		event := &v1.Event{
			ObjectMeta: metav1.ObjectMeta{Name: s.Object + ".x", Namespace: "ns"},
			InvolvedObject: v1.ObjectReference{
				Kind: "Pod", Namespace: "ns", Name: s.Object, UID: types.UID("u-" + s.Object)},
			Reason: s.Reason, Message: s.Message, Type: "Warning", Count: 1,
			FirstTimestamp: now, LastTimestamp: now, Source: v1.EventSource{Component: "test"},
			ReportingController: "test",
		}
		r, err := correlator.EventCorrelate(event)
		if err != nil {
			panic(err)
		}
		if r.Skip {
			out = append(out, result{Skip: true})
			continue
		}
		patch := json.RawMessage("null")
		if r.Patch != nil {
			patch = r.Patch
		}
		out = append(out, result{Count: r.Event.Count, Message: r.Event.Message, Patch: patch})
		correlator.UpdateState(r.Event) // as recordToSink does with the server's answer
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
"""
ORACLE_MOD = """\
module recorder-oracle

go 1.24

require (
	k8s.io/api v0.34.4
	k8s.io/apimachinery v0.34.4
	k8s.io/client-go v0.34.4
)
"""
ORACLE_START = 1_800_000_000.0


@pytest.fixture(scope="module")
def client_go_correlator() -> Path:
    """client-go v0.34.4's correlator in a small Go program, built once into the stack cache
    (the Go module proxy; about a minute cold, the modules are the kube-apiserver build's)."""
    go = shutil.which("go")
    if go is None:
        pytest.fail("the client-go comparison needs Go on PATH (apt-get install golang-go)")
    digest = hashlib.sha256((ORACLE_GO + ORACLE_MOD).encode()).hexdigest()[:16]
    source = ORACLE_CACHE / f"src-{digest}"
    binary = ORACLE_CACHE / f"correlator-{digest}"
    if binary.exists():
        return binary
    source.mkdir(parents=True, exist_ok=True)
    (source / "main.go").write_text(ORACLE_GO)
    (source / "go.mod").write_text(ORACLE_MOD)
    env = {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    print(f"\n[recorder-oracle] building client-go's correlator -> {binary}", file=sys.stderr)
    for command in ([go, "mod", "tidy"], [go, "build", "-o", str(binary), "."]):
        done = subprocess.run(
            command, cwd=source, env=env, capture_output=True, text=True, timeout=1200
        )
        if done.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return binary


def python_correlate(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same scenario through shipper.recorder's EventCorrelator."""
    correlator = EventCorrelator()
    out = []
    for step in steps:
        now = ORACLE_START + step["at"]
        stamp = rfc3339(now)
        event = {
            "metadata": {"name": step["object"] + ".x", "namespace": "ns"},
            "involvedObject": {
                "kind": "Pod", "namespace": "ns", "name": step["object"],
                "uid": "u-" + step["object"],
            },
            "reason": step["reason"], "message": step["message"], "type": "Warning",
            "count": 1, "firstTimestamp": stamp, "lastTimestamp": stamp,
            "source": {"component": "test"}, "reportingComponent": "test",
        }  # fmt: skip
        result = correlator.correlate(event, now)
        if result.skip or result.event is None:
            out.append({"skip": True, "count": 0, "message": "", "patch": None})
            continue
        out.append(
            {
                "skip": False,
                "count": result.event["count"],
                "message": result.event["message"],
                "patch": result.patch,
            }
        )
        correlator.update_state(result.event)
    return out


def scenario(*parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [step for part in parts for step in part]


def same(n: int, at: float = 0.0, step: float = 0.001, obj: str = "web-1", msg: str = "m"):  # type: ignore[no-untyped-def]
    return [
        {"at": at + i * step, "object": obj, "reason": "BackOff", "message": msg} for i in range(n)
    ]


def distinct(n: int, at: float = 0.0, step: float = 0.01, obj: str = "web-1"):  # type: ignore[no-untyped-def]
    return [
        {"at": at + i * step, "object": obj, "reason": "Unhealthy", "message": f"probe {i}"}
        for i in range(n)
    ]


SCENARIOS = {
    # 1,000 identical events, then the token bucket's refill at its boundaries: the bucket
    # was full at 0 s and refills continuously; client-go's QPS is a float32 (1/300 is
    # 0.0033333334), so the 26th token is there at 299.999996 s, a hair before 300 s
    "identical": scenario(
        same(1000),
        same(1, 299.9),
        same(1, 299.999996),
        same(2, 300.001),
        same(1, 599.9),
        same(2, 600.01),
        same(30, 86400.0),
    ),
    # 1,000 distinct messages: 9 alone, then combined, then the spam filter
    "distinct": scenario(distinct(1000)),
    # a group that goes quiet for more than 600 s starts over; other objects have their own
    # buckets and groups
    "groups": scenario(
        distinct(9),
        distinct(1, at=600.0),
        distinct(3, at=1200.5),
        distinct(30, obj="web-2"),
        same(30, obj="web-3"),
        distinct(12, at=5000.0, obj="web-2"),
    ),
}


@pytest.mark.timeout(1500)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_correlator_decides_as_client_go_does(client_go_correlator: Path, name: str) -> None:
    steps = SCENARIOS[name]
    done = subprocess.run(
        [str(client_go_correlator)], input=json.dumps(steps), capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    expected = json.loads(done.stdout)
    for result in expected:  # Go's JSON of a skipped result has no patch
        result.setdefault("patch", None)
    actual = python_correlate(steps)
    assert len(actual) == len(expected) == len(steps)
    mismatches = [
        (i, steps[i], want, got)
        for i, (want, got) in enumerate(zip(expected, actual, strict=True))
        if want != got
    ]
    assert not mismatches, mismatches[:3]
    assert sum(not r["skip"] for r in expected) < len(steps)  # the spam filter did drop some

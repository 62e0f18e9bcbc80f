"""The opsgenie and honeycomb sinks in the daemon, fed by the real kube-apiserver, writing to
local stand-ins of the vendors' APIs (tests/support/receivers/opsgenie.py, honeycomb.py: they
check the documented request and answer the documented replies).

What is shown: kubernetes-event-exporter's README opsgenie receiver and kube-eventer's honeycomb
flag deliver as written (only the API address points at 127.0.0.1); count updates fold into one
Opsgenie alert by alias; a rejection of one event dead-letters that event alone; a wrong key is
one clear line, never the key; an outage of the vendor (every request answered 503) loses
nothing; a clean restart sends nothing twice and --start=all re-sends with the same ids.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.common import ROOT, wait_for
from tests.support.kube import bump, core_event, etcd_compact, now
from tests.support.receivers.honeycomb import HoneycombReceiver
from tests.support.receivers.opsgenie import OpsgenieReceiver

OUTAGE_SECONDS = float(os.environ.get("KES_OUTAGE_SECONDS", "60"))
README_OPSGENIE = ROOT / "tests" / "corpus" / "exporter" / "02-resmoio-readme-opsgenie.yaml"
HONEYCOMB_FLAG = "honeycomb:?dataset=mydataset&writekey=secretwritekey"  # kube-eventer's docs


@pytest.fixture
def run(shipper_factory, kube_env, namespace, tmp_path):
    def make(*args: str) -> Any:
        return shipper_factory([
            f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
            *args, f"--state-dir={tmp_path / 'state'}", "--cluster-name=stack",
            "--grace-period=3s",
        ])  # fmt: skip

    return make


def metric(shipper: Any, sink: str, outcome: str) -> float:
    return shipper.metric("kube_event_shipper_sink_events_total", sink=sink, outcome=outcome)


def test_the_exporter_readme_opsgenie_receiver_delivers_and_updates_fold_by_alias(
    run, kube_api, namespace, tmp_path
):
    text = README_OPSGENIE.read_text()
    receivers = text[text.index("receivers:") :]
    with OpsgenieReceiver(key="xxx") as api:
        config = tmp_path / "config.yaml"
        config.write_text(
            "route: {routes: [{match: [{receiver: alerts}]}]}\n"
            + receivers.replace("      apiKey: xxx\n", f"      apiKey: xxx\n      URL: {api.url}\n")
        )  # the only change: the API address, 127.0.0.1 instead of api.opsgenie.com
        shipper = run(f"--config={config}").start()
        made = core_event(kube_api, namespace, reason="BackOff", obj="web-1", message="boom")
        wait_for(lambda: len(api.messages) == 1, what="the alert")
        bump(kube_api, namespace, made["metadata"]["name"], 2, now(1))  # within realert
        normal = core_event(kube_api, namespace, type_="Normal", reason="Pulled", obj="web-2")
        wait_for(lambda: len(api.messages) == 2, what="the Normal one (a route sends every type)")
        time.sleep(1.5)
        assert shipper.stop() == 0
    assert api.problems == []
    first, second = api.messages
    assert first["message"] == f"Event BackOff for {namespace}/web-1 on K8s cluster"
    assert first["alias"] == made["metadata"]["uid"] and first["priority"] == "P3"
    assert first["tags"] == ["event", "BackOff", "Pod", "web-1"]
    assert json.loads(first["description"].removeprefix("<pre>").removesuffix("</pre>"))["message"] == "boom"  # fmt: skip
    assert second["alias"] == normal["metadata"]["uid"]
    assert len(api.requests) == 2  # the count update was not re-sent within realert


def test_opsgenie_rejection_wrong_key_outage_and_restart(
    run, kube_api, kube_env, namespace, tmp_path
):
    with OpsgenieReceiver(key="og-right-key-42") as api:
        sink = f"--sink=opsgenie:?api_key=og-right-key-42&api_url={api.url}&max_backoff=3s"
        shipper = run(sink).start()
        # Opsgenie refuses one alert (422): it alone is dead-lettered
        api.inject.append((422, {"message": "Request body is not processable.",
                                 "errors": {"message": "bad"}, "took": 0, "requestId": "r"}))  # fmt: skip
        refused = core_event(kube_api, namespace, obj="r0")
        wait_for(lambda: metric(shipper, "opsgenie", "dead_lettered") == 1, what="a dead letter")
        core_event(kube_api, namespace, obj="r1")
        wait_for(lambda: len(api.messages) == 1, what="the next alert")
        api.down = True
        down_at = time.monotonic()
        during = [core_event(kube_api, namespace, obj=f"d{i}") for i in range(3)]
        wait_for(lambda: metric(shipper, "opsgenie", "retried") > 0, what="retries")
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        api.down = False
        wait_for(lambda: len(api.messages) == 4, 60, "the outage's alerts")
        assert shipper.stop() == 0
        shipper.start()  # a clean restart sends nothing again
        time.sleep(2)
        assert shipper.stop() == 0
        etcd_compact(kube_env["ETCD_URL"])
        shipper.start()  # nor does a 410 and the re-list after it
        time.sleep(3)
        assert shipper.stop() == 0
        assert len(api.messages) == 4
        letters = (tmp_path / "state" / "dead-letters" / "opsgenie.jsonl").read_text().splitlines()
        [letter] = [json.loads(x) for x in letters]
        assert letter["document"]["kubernetes"]["event"]["metadata"]["uid"] == refused["metadata"]["uid"]  # fmt: skip
        assert "Opsgenie refused the message: HTTP 422" in letter["reason"]
        assert {m["alias"].rsplit("/", 2)[1] for m in api.messages[1:]} == {
            f"d{i}" for i in range(3)
        }
        assert {m["details"]["uid"] for m in api.messages[1:]} == {
            d["metadata"]["uid"] for d in during
        }

        wrong = run(f"--sink=opsgenie:?api_key=og-WRONG-key-42&api_url={api.url}").start()
        core_event(kube_api, namespace, obj="w0")
        wait_for(lambda: "refused the API key" in wrong.stderr(), 30, "the 401")
        assert wrong.stop() == 0
    log = wrong.stderr()
    assert "Sink opsgenie could not write 1 events (Opsgenie refused the API key (HTTP 401: Could not authenticate); check api_key" in log  # fmt: skip
    assert "og-WRONG-key-42" not in log and "Traceback" not in log


def test_kube_eventers_honeycomb_flag_delivers_and_rejections_are_per_event(
    run, kube_api, kube_env, namespace, tmp_path
):
    with HoneycombReceiver(key="secretwritekey") as api:
        shipper = run(
            f"--sink={HONEYCOMB_FLAG}&apihost={api.url}&flush_interval=0.2s&max_backoff=3s"
        ).start()
        made = core_event(kube_api, namespace, obj="h0", message="héllo")
        update = bump(kube_api, namespace, made["metadata"]["name"], 2, now(1))
        wait_for(lambda: len(api.events.get("mydataset", [])) == 2, what="two events")
        api.refuse_reason = "Poison"
        poison = core_event(kube_api, namespace, reason="Poison", obj="h1")
        ok = core_event(kube_api, namespace, obj="h2")
        wait_for(lambda: metric(shipper, "honeycomb", "dead_lettered") == 1, what="one dead letter")
        wait_for(lambda: len(api.events["mydataset"]) == 3, what="the good one")
        api.down = True
        down_at = time.monotonic()
        during = [core_event(kube_api, namespace, obj=f"d{i}") for i in range(3)]
        wait_for(lambda: metric(shipper, "honeycomb", "retried") > 0, what="retries")
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        api.down = False
        wait_for(lambda: len(api.events["mydataset"]) == 6, 60, "the outage's events")
        assert shipper.stop() == 0
        etcd_compact(kube_env["ETCD_URL"])
        shipper.start()  # a 410 and a re-list: nothing is new
        time.sleep(3)
        assert metric(shipper, "honeycomb", "shipped") == 0
        assert shipper.stop() == 0
        assert len(api.events["mydataset"]) == 6
        shipper.start("--start=all")
        wait_for(lambda: metric(shipper, "honeycomb", "shipped") + metric(shipper, "honeycomb", "dead_lettered") >= 6, what="the replay")  # fmt: skip
        assert shipper.stop() == 0
    assert api.problems == [] and "secretwritekey" not in shipper.stderr()
    got = api.events["mydataset"]
    ids = [g["data"]["version_id"] for g in got]
    first = [
        f"{made['metadata']['uid']}.1",
        f"{update['metadata']['uid']}.2",
        f"{ok['metadata']['uid']}.1",
    ]
    assert ids[:3] == first
    assert set(ids[3:6]) == {f"{d['metadata']['uid']}.1" for d in during}
    assert set(ids[6:]) == set(ids[1:6])  # --start=all: the latest versions again, same ids
    assert got[0]["data"]["message"] == "héllo" and got[0]["data"]["cluster"] == "stack"
    letters = Path(tmp_path / "state" / "dead-letters" / "honeycomb.jsonl").read_text().splitlines()
    assert next(json.loads(x)["document"]["kubernetes"]["event"]["metadata"]["uid"] for x in letters) == poison["metadata"]["uid"]  # fmt: skip


def test_a_wrong_honeycomb_key_is_one_clear_line(run, kube_api, namespace):
    with HoneycombReceiver(key="the-right-one") as api:
        shipper = run(f"--sink={HONEYCOMB_FLAG}&apihost={api.url}").start()
        core_event(kube_api, namespace)
        wait_for(lambda: "refused the write key" in shipper.stderr(), 30, "the 401")
        assert shipper.stop() == 0
    log = shipper.stderr()
    assert "(Honeycomb refused the write key (HTTP 401: unknown API key - check your credentials); check writekey" in log  # fmt: skip
    assert "secretwritekey" not in log and "Traceback" not in log

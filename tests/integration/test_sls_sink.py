"""The sls sink against a local Log Service stand-in (tests/support/receivers/sls.py: PutLogs
checked as documented, the LogGroup decoded with SLS's .proto, the signature recomputed), fed
by the real kube-apiserver.

What is shown: kube-eventer's URI and environment (AccessKeyId / AccessKeySecret) deliver its
fields plus ``version_id``; a count update is a second log; a clean restart and a 410 write only
what is new, ``--start=all`` writes the retained versions again with the same version ids (at
least once, as the guarantee says); a one-minute outage of the endpoint loses nothing; a log the
service refuses is dead-lettered alone while its batch lands; a wrong secret is one clear line
that never shows the secret, and an STS key works; SLS's throttling and 5xx are retried; one
batch over 4096 logs is two PutLogs.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from shipper.event import normalize
from shipper.sinks.base import SinkContext
from shipper.sinks.factory import build_sink
from tests.support.common import wait_for
from tests.support.kube import bump, core_event, etcd_compact, now
from tests.support.receivers.sls import SlsReceiver, error

OUTAGE_SECONDS = float(os.environ.get("KES_OUTAGE_SECONDS", "60"))
KEY_ID, SECRET = "LTAI5tKubeEventer", "kube-eventer-Secret-0123456789"
#: kube-eventer's own environment names for the AccessKey (docs/en/sls-sink.md).
ENV = {"AccessKeyId": KEY_ID, "AccessKeySecret": SECRET}


def uri(sls: SlsReceiver, **extra: str) -> str:
    """kube-eventer's documented query (project, logStore, topic, label), then ours."""
    text = (
        f"sls:{sls.url}?project=k8s-log&logStore=k8s-event&topic=kube-eventer&label=ClusterId,c3da"
    )
    return text + "".join(f"&{k}={v}" for k, v in extra.items())


@pytest.fixture
def run(shipper_factory, kube_env, namespace, tmp_path):
    def make(sink: str, *flags: str, env: dict[str, str] | None = None) -> Any:
        args = [
            f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
            f"--sink={sink}",
            f"--state-dir={tmp_path / 'state'}",
            "--cluster-name=stack",
            *flags,
        ]
        return shipper_factory(args, {**ENV, **(env or {})})

    return make


def shipped(process: Any, outcome: str = "shipped") -> float:
    return process.metric("kube_event_shipper_sink_events_total", sink="sls", outcome=outcome)


def version_id(obj: dict[str, Any]) -> str:
    return f"{obj['metadata']['uid']}.{obj.get('count') or 1}"


def version_ids(sls: SlsReceiver) -> Counter[str]:
    return Counter(log["contents"]["version_id"] for log in sls.logs)


def test_versions_arrive_with_kube_eventers_fields_and_as_the_guarantee_says(
    run, kube_api, kube_env, namespace
):
    with SlsReceiver(project="k8s-log", keys={KEY_ID: SECRET}) as sls:
        shipper = run(uri(sls, flush_interval="0.2s")).start()
        emoji = 'Back-off restarting 🔥 контейнер "quoted" \\ ✓'
        first = core_event(kube_api, namespace, obj="p0", message=emoji)
        other = core_event(kube_api, namespace, obj="p1", type_="Normal", reason="Pulled")
        update = bump(kube_api, namespace, first["metadata"]["name"], 2, now() + timedelta(seconds=2))  # fmt: skip
        wait_for(lambda: len(sls.logs) >= 3, what="three logs")
        assert shipper.stop() == 0
        assert sls.problems == []
        assert set(version_ids(sls)) == {version_id(o) for o in (first, other, update)}
        for log in sls.logs:
            assert (log["topic"], log["logstore"], log["compression"]) == ("kube-eventer", "k8s-event", "lz4")  # fmt: skip
            assert log["keys"] == ["eventId", "hostname", "level", "pod_id", "pod_name", "ClusterId", "version_id", "cluster"]  # fmt: skip
        latest = next(
            log for log in sls.logs if log["contents"]["version_id"] == version_id(update)
        )
        c = latest["contents"]
        assert (c["level"], c["pod_name"], c["ClusterId"], c["cluster"]) == ("Warning", "p0", "c3da", "stack")  # fmt: skip
        v1 = json.loads(c["eventId"])  # the core/v1 Event, as kube-eventer writes it
        assert (v1["kind"], v1["message"], v1["count"], v1["reason"]) == ("Event", emoji, 2, "BackOff")  # fmt: skip
        assert v1["metadata"]["uid"] == update["metadata"]["uid"]
        assert v1["metadata"]["resourceVersion"] == update["metadata"]["resourceVersion"]
        assert v1["involvedObject"]["namespace"] == namespace
        assert latest["time"] == int(now().fromisoformat(update["lastTimestamp"].replace("Z", "+00:00")).timestamp())  # fmt: skip

        # A clean restart after a 410: only what was made while stopped.
        during = core_event(kube_api, namespace, obj="q0")
        later = bump(kube_api, namespace, other["metadata"]["name"], 2, now(5))
        etcd_compact(kube_env["ETCD_URL"])
        shipper.start()
        wait_for(lambda: shipped(shipper) == 2, what="the two versions made while stopped")
        assert shipper.stop() == 0
        assert "410 Gone" in shipper.stderr()
        assert len(sls.logs) == 5 and set(version_ids(sls).values()) == {1}
        assert {version_id(during), version_id(later)} <= set(version_ids(sls))

        # --start=all writes every retained Event again, each with the version id it had.
        shipper.start("--start=all")
        wait_for(lambda: shipped(shipper) == 3, what="the three events written again")
        assert shipper.stop() == 0
        current = {version_id(o) for o in (update, later, during)}
        assert {vid for vid, n in version_ids(sls).items() if n == 2} == current
        assert len(sls.logs) == 8
        assert sls.problems == []
    assert SECRET not in shipper.stderr()


def test_an_outage_of_the_endpoint_loses_nothing(run, kube_api, namespace):
    with SlsReceiver(keys={KEY_ID: SECRET}) as sls:
        shipper = run(uri(sls, flush_interval="0.2s", max_backoff="5s", timeout="5s")).start()
        before = [core_event(kube_api, namespace, obj=f"a{i}") for i in range(2)]
        wait_for(lambda: shipped(shipper) == 2, what="two shipped")
        sls.pause()
        down_at = time.monotonic()
        try:
            during = [core_event(kube_api, namespace, obj=f"b{i}") for i in range(5)]
            update = bump(kube_api, namespace, before[0]["metadata"]["name"], 2, now(1))
            wait_for(
                lambda: shipper.metric("kube_event_shipper_sink_up", sink="sls") == 0,
                timeout=60, what="the sink to notice the outage",
            )  # fmt: skip
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
            assert shipper.proc.poll() is None
            assert shipped(shipper, "retried") > 0
        finally:
            sls.resume()
        wait_for(lambda: shipped(shipper) == 8, timeout=60, what="every version made in the outage")  # fmt: skip
        assert set(version_ids(sls)) == {version_id(o) for o in [*before, *during, update]}
        assert shipped(shipper, "dead_lettered") == 0
        assert shipper.stop() == 0
    stderr = shipper.stderr()
    assert "Traceback" not in stderr and "Sink sls could not write" in stderr


def test_a_log_the_service_refuses_is_dead_lettered_alone(run, kube_api, namespace, tmp_path):
    with SlsReceiver(keys={KEY_ID: SECRET}, max_value=20_000) as sls:
        good = [core_event(kube_api, namespace, obj=f"g{i}") for i in range(3)]
        poison = core_event(kube_api, namespace, obj="g9", message="x" * 30_000)
        shipper = run(uri(sls, batch_size="10", flush_interval="1s")).start()
        wait_for(lambda: shipped(shipper, "dead_lettered") == 1, what="one dead letter")
        wait_for(lambda: shipped(shipper) == 3, what="three shipped")
        assert shipper.stop() == 0
        assert sls.problems == []
        assert set(version_ids(sls)) == {version_id(g) for g in good}
    letters = (tmp_path / "state" / "dead-letters" / "sls.jsonl").read_text().splitlines()
    [letter] = [json.loads(line) for line in letters]
    assert letter["document"]["kubernetes"]["event"]["metadata"]["uid"] == poison["metadata"]["uid"]
    assert "SLS refused the log: PostBodyInvalid: log value of key eventId is too large" in letter["reason"]  # fmt: skip


def test_a_wrong_secret_is_one_clear_line_and_an_sts_key_ships(run, kube_api, namespace):
    with SlsReceiver(keys={KEY_ID: SECRET, "STS.tmp": "sts-secret"}, tokens={"STS.tmp": "sts-token-42"}) as sls:  # fmt: skip
        wrong = run(uri(sls, flush_interval="0.2s"), "--grace-period=2s", env={"AccessKeySecret": "Wrong-Secret-42"}).start()  # fmt: skip
        core_event(kube_api, namespace, obj="w0")

        def lines() -> list[str]:
            return [line for line in wrong.stderr().splitlines() if "Sink sls could not write" in line]  # fmt: skip

        wait_for(lambda: len(lines()) >= 2, 60, "two attempts")
        assert wrong.stop() == 0
        stderr = wrong.stderr()
        assert "Traceback" not in stderr and "Wrong-Secret-42" not in stderr
        assert all(
            "SLS answered HTTP 401 SignatureNotMatch" in line
            and f"check the AccessKey (id {KEY_ID}) and its secret or STS token" in line
            for line in lines()
        ), lines()
        assert sls.logs == []

        # An STS key from the standard environment variables, the token sent along.
        sts = run(
            uri(sls, flush_interval="0.2s"),
            env={"ALIBABA_CLOUD_ACCESS_KEY_ID": "STS.tmp", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "sts-secret",
                 "ALIBABA_CLOUD_SECURITY_TOKEN": "sts-token-42"},
        ).start()  # fmt: skip
        wait_for(lambda: len(sls.logs) == 1, what="the event, written with the STS key")
        assert sts.stop() == 0
        assert sls.problems == []
        assert "sts-token-42" not in sts.stderr() and "sts-secret" not in sts.stderr()


# -- in-process: the write path's answers to SLS's errors


def make_events(count: int, size: int = 100) -> list[Any]:
    return [
        normalize({
            "metadata": {"uid": f"u-{i}", "resourceVersion": str(i + 1), "name": f"web.{i}", "namespace": "shop"},
            "involvedObject": {"kind": "Pod", "name": f"web-{i}", "namespace": "shop"},
            "reason": "BackOff", "type": "Warning", "count": 1, "message": "m" * size,
            "lastTimestamp": "2026-11-20T10:00:00Z",
        }, "ADDED")
        for i in range(count)
    ]  # fmt: skip


def sink(sls: SlsReceiver, **extra: str) -> Any:
    built, _ = build_sink(uri(sls, accessKeyId=KEY_ID, accessKeySecret=SECRET, **extra), SinkContext("c", None))  # fmt: skip
    built.open()
    return built


def test_throttling_and_server_errors_retry_what_was_not_written():
    with SlsReceiver(keys={KEY_ID: SECRET}) as sls:
        writer = sink(sls, max_request_bytes="60000", compression="deflate")
        events = make_events(10, size=10_000)  # about 11 KB a log: 5 to a request
        sls.inject.append(error(403, "WriteQuotaExceed", "Project write quota exceed"))
        outcome = writer.write(events)
        assert outcome.rejected == () and [r.index for r in outcome.retry] == list(range(10))
        assert "WriteQuotaExceed" in outcome.retry[0].reason
        # the first request lands, the second meets a 500: only its logs are retried
        sls.inject_at[len(sls.requests) + 2] = error(500, "InternalServerError", "internal server error")  # fmt: skip
        outcome = writer.write(events)
        assert [r.index for r in outcome.retry] == list(range(5, 10))
        assert "InternalServerError" in outcome.retry[0].reason
        assert writer.write(events[5:]).retry == ()
        writer.close()
        assert [log["contents"]["version_id"] for log in sls.logs] == [
            f"u-{i}.1" for i in range(10)
        ]
        assert {log["compression"] for log in sls.logs} == {"deflate"} and sls.problems == []


def test_over_4096_logs_is_two_requests_and_a_log_over_max_log_bytes_is_never_sent():
    with SlsReceiver(keys={KEY_ID: SECRET}) as sls:
        writer = sink(sls, max_log_bytes="5000")
        events = make_events(4100)
        events[7].message = "z" * 6000
        outcome = writer.write(events)
        writer.close()
        assert [r.index for r in outcome.rejected] == [7] and outcome.retry == ()
        assert "over max_log_bytes=5000" in outcome.rejected[0].reason
        assert sls.groups == 2 and len(sls.logs) == 4099 and sls.problems == []

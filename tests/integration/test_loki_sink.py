"""The loki sink against a real Loki 3.x (scripts/stack `loki`: multi-tenant, filesystem
storage, behind a basic-auth/bearer gateway), fed by the real kube-apiserver.

Every test writes under a tenant of its own (X-Scope-OrgID ``t-<random>``), so what Loki's own
query API (``/loki/api/v1/query_range``, asked directly with that tenant) returns is exactly what
the test wrote: counting entries, with a log query and with ``count_over_time`` (which counts
every stored copy), proves that restarts, a crash, 410 re-lists and ``--start=all`` add none
(Loki's ingester drops an entry equal in labels, timestamp and line to one still in its
stream's head block; bench/loki.py shows where that ends: older entries of a busy stream).

What is shown: lines, labels and timestamps as documented; two events of one stream in one
second kept apart; no duplicate across SIGTERM/SIGKILL restarts, a 410 and a full replay; a
Loki stopped for a minute (KES_OUTAGE_SECONDS) losing nothing; an entry older than the server's
reject_old_samples_max_age dead-lettered alone while its batch lands; wrong credentials and a
missing tenant as one clear line; TLS with a CA file and a bearer token; the JSON format; the
kubernetes-event-exporter README's loki receiver loaded as written, delivering.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shipper.event import normalize
from shipper.sinks.base import SinkContext, TransientError
from shipper.sinks.factory import build_sink
from shipper.sinks.influxdb import point_time, version_hash
from shipper.sinks.loki import LokiSink
from tests.support.common import ROOT, STACK, stack_up, wait_for
from tests.support.kube import bump, core_event, etcd_compact, now

OUTAGE_SECONDS = float(os.environ.get("KES_OUTAGE_SECONDS", "60"))
CORPUS = ROOT / "tests" / "corpus" / "exporter" / "22-resmoio-readme-loki.yaml"

# The first module to need Loki builds it from the Go module proxy: about 7 minutes on 2 idle
# cores from empty caches, more than the default per-test timeout.
pytestmark = [pytest.mark.stack("loki"), pytest.mark.timeout(1800)]


@pytest.fixture(scope="session")
def loki_env() -> dict[str, str]:
    """The real Loki (LOKI_DIRECT_URL) and its gateway (LOKI_URL, LOKI_TLS_URL) of the stack."""
    return stack_up("loki")


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


# -- reading back with Loki's own query API


def query(
    env: dict[str, str], tenant: str, logql: str, *, start: datetime | None = None,
    end: datetime | None = None, limit: int = 5000,
) -> list[dict[str, Any]]:  # fmt: skip
    """``query_range`` of a log query: [{"stream": labels, "values": [[ns, line]...]}]."""
    params = {
        "query": logql,
        "start": str(int((start or datetime.now(UTC) - timedelta(hours=23)).timestamp() * 1e9)),
        "end": str(int((end or datetime.now(UTC) + timedelta(minutes=5)).timestamp() * 1e9)),
        "limit": str(limit),
        "direction": "forward",
    }
    url = f"{env['LOKI_DIRECT_URL']}/loki/api/v1/query_range?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url, headers={"X-Scope-OrgID": tenant})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


def entries(env: dict[str, str], tenant: str, selector: str = '{job="kube-event-shipper"}'):
    """Every entry as (labels, ns, parsed line), in time order; a list, so duplicates show."""
    found = [
        (stream["stream"], int(ns), json.loads(line))
        for stream in query(env, tenant, selector)
        for ns, line in stream["values"]
    ]
    return sorted(found, key=lambda entry: entry[1])


def uid_count(line: dict[str, Any]) -> tuple[str, int]:
    event = line["kubernetes"]["event"]
    return event["metadata"]["uid"], event["count"]


def versions(objs: list[dict[str, Any]]) -> Counter[tuple[str, int]]:
    return Counter((o["metadata"]["uid"], o.get("count") or 1) for o in objs)


def stored(env: dict[str, str], tenant: str) -> Counter[tuple[str, int]]:
    return Counter(uid_count(line) for _, _, line in entries(env, tenant))


def stored_copies(env: dict[str, str], tenant: str) -> int:
    """What count_over_time counts: every entry Loki stored, copies included."""
    end = datetime.now(UTC) + timedelta(minutes=5)
    params = {
        "query": 'sum(count_over_time({job="kube-event-shipper"}[1d]))',
        "time": str(int(end.timestamp() * 1e9)),
    }
    url = f"{env['LOKI_DIRECT_URL']}/loki/api/v1/query?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url, headers={"X-Scope-OrgID": tenant})
    with urllib.request.urlopen(request, timeout=30) as response:
        result = json.load(response)["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def ns_of(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()) * 10**9


# -- the daemon, end to end


@pytest.fixture
def run(shipper_factory, kube_env, namespace, tmp_path):
    """``run(*flags)`` -> a shipper for the test's namespace (not started yet)."""

    def make(*flags: str) -> Any:
        return shipper_factory([
            f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
            *flags, f"--state-dir={tmp_path / 'state'}", "--cluster-name=stack",
        ])  # fmt: skip

    return make


def gateway_uri(env: dict[str, str], tenant: str, more: str = "") -> str:
    return (
        f"--sink=loki:{env['LOKI_URL']}?tenant={tenant}&user={env['LOKI_USER']}"
        f"&password={env['LOKI_PASSWORD']}{more}"
    )


def shipped(process: Any, outcome: str = "shipped") -> float:
    return process.metric("kube_event_shipper_sink_events_total", sink="loki", outcome=outcome)


def test_events_arrive_once_across_restarts_410_and_replays(
    loki_env, tenant, run, kube_api, kube_env, namespace
):
    shipper = run(gateway_uri(loki_env, tenant, "&flush_interval=0.2s")).start()
    created = [core_event(kube_api, namespace, obj=f"p{i}") for i in range(3)]
    first = now()
    updates = [
        bump(kube_api, namespace, created[0]["metadata"]["name"], count, first + timedelta(seconds=count))
        for count in (2, 3)
    ]  # fmt: skip
    made = [*created, *updates]
    wait_for(lambda: sum(stored(loki_env, tenant).values()) == 5, what="five entries")
    assert stored(loki_env, tenant) == versions(made)

    # Labels, line and timestamp of the latest version, as documented.
    latest = updates[-1]
    [(labels, ns, line)] = [
        e for e in entries(loki_env, tenant) if uid_count(e[2]) == (latest["metadata"]["uid"], 3)
    ]
    assert {k: labels[k] for k in ("cluster", "namespace", "kind", "reason", "type", "job")} == {
        "cluster": "stack", "namespace": namespace, "kind": "Pod", "reason": "BackOff",
        "type": "Warning", "job": "kube-event-shipper",
    }  # fmt: skip
    assert not {"object_name", "name", "uid", "pod"} & set(labels)
    assert ns // 10**9 == ns_of(latest["lastTimestamp"]) // 10**9
    assert ns % 10**9 == version_hash(latest["metadata"]["uid"], 3) % 10**9
    assert line["kubernetes"]["event"]["involved_object"]["name"] == "p0"
    assert (
        line["kubernetes"]["event"]["metadata"]["resource_version"]
        == (latest["metadata"]["resourceVersion"])
    )
    assert line["orchestrator"]["cluster"] == {"name": "stack"}
    assert "created" not in line["event"]
    assert shipper.stop() == 0
    after_first = entries(loki_env, tenant)

    # SIGKILL: whatever the checkpoint had not recorded is read and sent again.
    shipper.start()
    made.append(core_event(kube_api, namespace, obj="k0"))
    wait_for(lambda: sum(stored(loki_env, tenant).values()) == 6, what="six entries")
    shipper.stop(signal.SIGKILL)

    # A restart after a 410: events made while stopped, a count update, etcd compacted.
    during = core_event(kube_api, namespace, obj="q0")
    later = bump(kube_api, namespace, created[1]["metadata"]["name"], 2, now(5))
    etcd_compact(kube_env["ETCD_URL"])
    shipper.start()
    made += [during, later]
    wait_for(lambda: sum(stored(loki_env, tenant).values()) == 8, what="eight entries")
    assert shipper.stop() == 0
    assert "410" in shipper.stderr(), shipper.stderr()
    assert stored(loki_env, tenant) == versions(made)
    assert set(map(_key, after_first)) <= set(map(_key, entries(loki_env, tenant)))

    # A full replay: the five current versions are sent again, and Loki keeps one of each
    # (their originals are still in their streams' head blocks).
    shipper.start("--start=all")
    wait_for(lambda: shipped(shipper) == 5, what="the five events re-sent")
    assert shipped(shipper, "dead_lettered") == 0
    time.sleep(1)
    assert shipper.stop() == 0
    assert stored(loki_env, tenant) == versions(made)
    assert sum(stored(loki_env, tenant).values()) == 8
    assert stored_copies(loki_env, tenant) == 8  # not only shown once: stored once
    assert "Traceback" not in shipper.stderr()


def _key(entry: tuple[dict[str, str], int, dict[str, Any]]) -> tuple[str, int, str]:
    labels, ns, line = entry
    return json.dumps(labels, sort_keys=True), ns, json.dumps(line, sort_keys=True)


def test_two_events_of_one_stream_in_one_second_are_three_entries(
    loki_env, tenant, run, kube_api, namespace
):
    moment = now(-30)
    made = [core_event(kube_api, namespace, obj="same-pod", at=moment) for _ in range(3)]
    shipper = run(gateway_uri(loki_env, tenant, "&format=json")).start()
    wait_for(lambda: shipped(shipper) == 3, what="three events shipped")
    found = entries(loki_env, tenant)
    assert shipper.stop() == 0
    assert len(found) == 3
    assert len({json.dumps(labels, sort_keys=True) for labels, _, _ in found}) == 1  # one stream
    assert {ns // 10**9 for _, ns, _ in found} == {int(moment.timestamp())}
    assert len({ns for _, ns, _ in found}) == 3
    assert stored(loki_env, tenant) == versions(made)


def stack(command: str, component: str) -> None:
    subprocess.run(
        [sys.executable, str(STACK), command, component], cwd=ROOT, check=True, capture_output=True
    )


def test_an_outage_of_loki_loses_nothing(loki_env, tenant, run, kube_api, namespace):
    shipper = run(gateway_uri(loki_env, tenant, "&flush_interval=0.2s&max_backoff=5s")).start()
    before = [core_event(kube_api, namespace, obj=f"a{i}") for i in range(2)]
    wait_for(lambda: sum(stored(loki_env, tenant).values()) == 2, what="two entries")

    stack("down", "loki")
    try:
        down_at = time.monotonic()
        during = [core_event(kube_api, namespace, obj=f"b{i}") for i in range(5)]
        update = bump(kube_api, namespace, before[0]["metadata"]["name"], 2, now(1))
        wait_for(
            lambda: shipper.metric("kube_event_shipper_sink_up", sink="loki") == 0,
            what="the sink to notice the outage",
        )
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        assert shipper.proc.poll() is None
        assert shipped(shipper, "retried") > 0
    finally:
        stack_up("loki")
    expected = versions([*before, *during, update])

    def all_there() -> bool:
        try:
            return stored(loki_env, tenant) == expected
        except urllib.error.HTTPError as exc:  # a Loki just started may answer 5xx a moment
            assert exc.code >= 500, exc
            return False

    wait_for(
        all_there,
        timeout=120,
        what="every version made during the outage",
    )
    assert sum(stored(loki_env, tenant).values()) == 8
    assert shipper.metric("kube_event_shipper_sink_up", sink="loki") == 1
    assert shipped(shipper, "dead_lettered") == 0
    assert shipper.stop() == 0
    assert "Traceback" not in shipper.stderr()
    retries = [
        line for line in shipper.stderr().splitlines() if "Sink loki could not write" in line
    ]
    assert retries and any("cannot connect: connection refused" in line for line in retries), (
        retries[:3]
    )


def test_a_too_old_entry_is_dead_lettered_alone(
    loki_env, tenant, run, kube_api, namespace, tmp_path
):
    good = [core_event(kube_api, namespace, obj=f"g{i}") for i in range(3)]
    old = core_event(kube_api, namespace, obj="old", at=now() - timedelta(days=3))
    shipper = run(gateway_uri(loki_env, tenant, "&batch_size=10&flush_interval=1s")).start()
    wait_for(lambda: shipped(shipper, "dead_lettered") == 1, what="one dead letter")
    wait_for(lambda: shipped(shipper) == 3, what="three shipped")
    assert stored(loki_env, tenant) == versions(good)
    letters = (tmp_path / "state" / "dead-letters" / "loki.jsonl").read_text().splitlines()
    assert len(letters) == 1
    letter = json.loads(letters[0])
    assert letter["document"]["kubernetes"]["event"]["metadata"]["uid"] == old["metadata"]["uid"]
    assert letter["reason"].startswith("HTTP 400 entry for stream '{"), letter["reason"]
    assert "has timestamp too old" in letter["reason"]
    assert shipper.stop() == 0


def sink(uri: str, cluster: str = "stack") -> LokiSink:
    built, _ = build_sink(uri, SinkContext(cluster=cluster, state_dir=None))
    assert isinstance(built, LokiSink)
    return built


def api_event(i: int, at: datetime, **more: Any) -> Any:
    moment = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    obj = {
        "metadata": {"uid": f"uid-{uuid.uuid4()}", "resourceVersion": str(1000 + i),
                     "name": f"web-{i}.17a", "namespace": "shop"},
        "involvedObject": {"kind": "Pod", "name": f"web-{i}", "namespace": "shop"},
        "reason": "BackOff", "message": f"m{i}", "type": "Warning", "count": 1,
        "firstTimestamp": moment, "lastTimestamp": moment,
    } | more  # fmt: skip
    return normalize(obj, "ADDED", "stack")


def test_refused_entries_are_found_in_a_batch_and_the_rest_lands(loki_env, tenant):
    """Loki keeps the good entries of a request that also holds refused ones and answers 400:
    the sink halves the batch until each refused one is alone."""
    s = sink(f"loki:{loki_env['LOKI_DIRECT_URL']}?tenant={tenant}")
    recent, ancient = (
        datetime.now(UTC) - timedelta(minutes=5),
        datetime.now(UTC) - timedelta(days=3),
    )
    batch = [api_event(i, ancient if i in (2, 5) else recent, reason=f"R{i % 3}") for i in range(8)]
    s.open()
    outcome = s.write(batch)
    assert [r.index for r in outcome.rejected] == [2, 5] and not outcome.retry
    assert all("has timestamp too old" in r.reason for r in outcome.rejected)
    found = entries(loki_env, tenant)
    assert sorted(uid_count(line)[0] for _, _, line in found) == sorted(
        e.uid for i, e in enumerate(batch) if i not in (2, 5)
    )
    assert {ns for _, ns, _ in found} == {
        point_time(e) for i, e in enumerate(batch) if i not in (2, 5)
    }
    again = s.write(batch)  # a second write adds nothing
    assert [r.index for r in again.rejected] == [2, 5] and not again.retry
    assert len(entries(loki_env, tenant)) == 6
    s.close()


@pytest.mark.parametrize(
    "params, expected",
    [
        ("user=shipper&password=wrong-Pa55", "HTTP 401 401 Authorization Required: check user/password or token (and the tenant's access)"),
        ("token=not-the-token-123", "HTTP 401 401 Authorization Required: check user/password or token (and the tenant's access)"),
        ("", "HTTP 401 401 Authorization Required: the server wants credentials: give user/password or token"),
    ],
)  # fmt: skip
def test_wrong_credentials_are_one_clear_line(loki_env, tenant, params, expected):
    s = sink(f"loki:{loki_env['LOKI_URL']}?tenant={tenant}&{params}")
    with pytest.raises(TransientError) as caught:
        s.open()
    assert str(caught.value) == expected
    assert "wrong-Pa55" not in str(caught.value) and "not-the-token" not in str(caught.value)


def test_a_missing_tenant_is_one_clear_line(loki_env):
    with pytest.raises(TransientError) as caught:
        sink(f"loki:{loki_env['LOKI_DIRECT_URL']}").open()
    assert str(caught.value) == (
        "HTTP 401 no org id: a multi-tenant Loki: give tenant= (X-Scope-OrgID)"
    )


def test_bad_credentials_are_one_clear_line_from_the_daemon(loki_env, tenant, run):
    shipper = run(
        f"--sink=loki:{loki_env['LOKI_URL']}?tenant={tenant}&user=shipper&password=wrong-Pa55",
        "--grace-period=2s",
    ).start()

    def lines() -> list[str]:
        text = shipper.stderr().splitlines()
        return [line for line in text if "Sink loki is not reachable yet" in line]

    wait_for(lambda: len(lines()) >= 2, what="two attempts")
    assert shipper.metric("kube_event_shipper_sink_up", sink="loki") == 0
    assert shipper.stop() == 0
    expected = "(HTTP 401 401 Authorization Required: check user/password or token (and the tenant's access)); retrying in"
    assert all(expected in line for line in lines()), lines()
    assert "Traceback" not in shipper.stderr() and "wrong-Pa55" not in shipper.stderr()


def test_tls_with_a_ca_file_and_a_bearer_token(loki_env, tenant):
    at = datetime.now(UTC) - timedelta(minutes=1)
    good = sink(
        f"loki:{loki_env['LOKI_TLS_URL']}?tenant={tenant}&token={loki_env['LOKI_TOKEN']}"
        f"&ca_file={loki_env['LOKI_CA']}"
    )
    good.open()
    event = api_event(1, at)
    assert good.write([event]).rejected == ()
    [(labels, ns, line)] = entries(loki_env, tenant)
    assert ns == point_time(event) and labels["cluster"] == "stack" and line["message"] == "m1"
    untrusted = sink(
        f"loki:{loki_env['LOKI_TLS_URL']}?tenant={tenant}&token={loki_env['LOKI_TOKEN']}"
    )
    with pytest.raises(TransientError) as caught:
        untrusted.open()
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value) and "\n" not in str(caught.value)
    insecure = sink(
        f"loki:{loki_env['LOKI_TLS_URL']}?tenant={tenant}&token={loki_env['LOKI_TOKEN']}&insecure=true"
    )
    insecure.open()
    assert insecure.write([event]).rejected == ()  # the same entry again: still one
    assert len(entries(loki_env, tenant)) == 1


def test_the_exporter_readme_loki_receiver_loads_as_written_and_delivers(
    loki_env, run, kube_api, namespace, tmp_path
):
    text = CORPUS.read_text()
    receivers = text[text.index("receivers:") :]
    assert "url: http://127.0.0.1:3100/loki/api/v1/push" in receivers
    direct = loki_env["LOKI_DIRECT_URL"].removeprefix("http://")
    config = tmp_path / "config.yaml"
    config.write_text(
        "route: {routes: [{match: [{receiver: loki}]}]}\n"
        + receivers.replace("127.0.0.1:3100", direct)  # our Loki's port
    )
    shipper = run(f"--config={config}").start()
    made = core_event(kube_api, namespace, type_="Normal", reason="Started", obj="c0")
    # The README's X-Scope-OrgID header is the tenant; its streamLabels are on the stream.
    selector = f'{{foo="bar", namespace="{namespace}"}}'
    found = wait_for(lambda: entries(loki_env, "tennantID", selector), what="the entry in Loki")
    assert shipper.stop() == 0
    [(labels, _, line)] = found
    assert labels["foo"] == "bar" and labels["reason"] == "Started"
    assert uid_count(line) == (made["metadata"]["uid"], 1)
    assert "Traceback" not in shipper.stderr()


def test_the_stack_gateway_refuses_like_a_gateway(loki_env):
    """The stack's own check: a request without credentials gets 401 from the gateway, not
    Loki's answer."""
    request = urllib.request.Request(f"{loki_env['LOKI_URL']}/loki/api/v1/labels")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 401
    assert caught.value.headers["WWW-Authenticate"] == 'Basic realm="loki"'

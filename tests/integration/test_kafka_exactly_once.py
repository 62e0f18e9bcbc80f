"""exactly_once=true against the stack's Kafka 3.9 and the real kube-apiserver.

Two things are shown. First, zombie fencing, at the sink: a second producer with the same
transactional.id (a new leader) fences the first, which then never writes again, and the new
one skips what the old one committed; and the same between two processes, a leader frozen with
SIGSTOP and thawed after its standby took over. Second, the fault campaign of issue 16, with two
leader-elected replicas shipping a namespace where events are made and updated all along: the
leader SIGKILLed twice, a graceful leader handover, the broker down 20 s, the kube-apiserver
(and its etcd) stopped and started, both replicas stopped while etcd is compacted (a 410 on
resume) and a ``--start=all`` replay. A ``read_committed`` consumer then finds the final
version of every Event, and no version twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from shipper.sinks.base import SinkContext, TransientError
from shipper.sinks.factory import build_sink
from tests.integration.test_kafka_sink import make_events
from tests.support.common import ROOT, STACK, ShipperProcess, stack_up, wait_for
from tests.support.kube import bump, core_event, etcd_compact, now

pytestmark = pytest.mark.stack("kafka")

BROKER_DOWN_SECONDS = float(os.environ.get("KES_BROKER_DOWN_SECONDS", "20"))
#: events made per second while the campaign runs (each also updated now and then)
RATE = float(os.environ.get("KES_CAMPAIGN_RATE", "8"))
#: "false" runs the campaign as a control with the plain (at-least-once) sink: it then fails,
#: with the duplicates counted in its message
EXACTLY_ONCE = os.environ.get("KES_CAMPAIGN_EXACTLY_ONCE", "true")


def create_topic(bootstrap: str, partitions: int) -> str:
    from kafka.admin import KafkaAdminClient, NewTopic

    name = f"kes-eo-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)], timeout_ms=30_000)
    finally:
        admin.close()
    return name


def read_all(bootstrap: str, topic: str, isolation: str = "read_committed") -> list[Any]:
    """Every message of ``topic`` a consumer with ``isolation`` sees, up to the end offsets."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        isolation_level=isolation,
    )  # fmt: skip
    try:
        partitions = wait_for(lambda: consumer.partitions_for_topic(topic), what="the topic")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        end = consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, "reading the topic took over 60 s"
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def version_ids(records: list[Any]) -> Counter[str]:
    return Counter(dict(r.headers)["version_id"].decode() for r in records)


def stack(command: str, component: str) -> None:
    subprocess.run(
        [sys.executable, str(STACK), command, component], cwd=ROOT, check=True,
        capture_output=True, timeout=600,
    )  # fmt: skip


# -- zombie fencing, at the sink


def test_a_new_producer_fences_the_old_one_which_never_writes_again(kafka_bootstrap):
    topic = create_topic(kafka_bootstrap, 3)
    uri = f"kafka:?brokers={kafka_bootstrap}&eventstopic={topic}&exactly_once=true&timeout=10s"
    ctx = SinkContext(cluster=f"fence-{uuid.uuid4().hex[:6]}", state_dir=None)
    old, _ = build_sink(uri, ctx)
    new, _ = build_sink(uri, ctx)
    events = make_events(30)
    try:
        old.open()
        assert old.write(events[:10]) == []
        new.open()  # a new leader: same cluster, same sink, so the same transactional.id
        with pytest.raises(TransientError, match="fenced: another producer"):
            old.write(events[10:20])
        with pytest.raises(TransientError, match="fenced"):
            old.write(events[10:20])  # and it stays so: never re-initializes
        assert new.write(events[:20]) == []  # the first 10 were committed by the old one
    finally:
        old.close()
        new.close()
    ids = version_ids(read_all(kafka_bootstrap, topic))
    assert ids == Counter(f"{e.uid}.{e.count}" for e in events[:20])  # each once
    uncommitted = version_ids(read_all(kafka_bootstrap, topic, "read_uncommitted"))
    assert sum(uncommitted.values()) >= 20  # what the fenced producer sent never committed


# -- the fault campaign


class Generator(threading.Thread):
    """Makes events in the namespace and updates earlier ones (count + 1), as kubelet does,
    at about RATE per second; API errors (the API server is down) only slow it down."""

    def __init__(self, api: Any, namespace: str) -> None:
        super().__init__(daemon=True)
        self.api, self.namespace = api, namespace
        self.stop_event = threading.Event()
        self.counts: dict[str, int] = {}  # event name -> count last written
        self.created = self.updated = self.failed = 0

    def run(self) -> None:
        i = 0
        while not self.stop_event.wait(1.0 / RATE):
            i += 1
            try:
                if i % 4 == 0 and self.counts:
                    name = list(self.counts)[(i * 7) % len(self.counts)]
                    self.counts[name] += 1
                    bump(self.api, self.namespace, name, self.counts[name], now())
                    self.updated += 1
                else:
                    made = core_event(self.api, self.namespace, obj=f"p{i % 50}")
                    self.counts[made["metadata"]["name"]] = 1
                    self.created += 1
            except Exception:
                self.failed += 1
                self.stop_event.wait(0.5)

    def finish(self) -> None:
        self.stop_event.set()
        self.join(timeout=30)


def final_versions(api: Any, namespace: str) -> set[str]:
    events = client.CoreV1Api(api).list_namespaced_event(namespace).items
    return {f"{e.metadata.uid}.{e.count or 1}" for e in events}


class Fleet:
    """Two leader-elected replicas (a, b) shipping ``namespace`` to ``topic``, as two pods of
    the chart would (a shared Lease and ConfigMap checkpoint), and a kubelet's part: restart
    a replica that stopped."""

    def __init__(
        self, bootstrap: str, topic: str, kube_env: dict[str, str], namespace: str, tmp: Path
    ) -> None:
        self.sink = (
            f"kafka:?brokers={bootstrap}&eventstopic={topic}&exactly_once={EXACTLY_ONCE}"
            "&flush_interval=0.2s&timeout=10s&max_backoff=3s"
        )
        self.kube_env, self.namespace, self.tmp = kube_env, namespace, tmp
        self.replicas = {name: self.replica(name) for name in ("a", "b")}
        self.log: list[str] = []

    def replica(self, name: str) -> ShipperProcess:
        workdir = self.tmp / name
        workdir.mkdir()
        namespace = self.namespace
        args = [
            f"--source=kubernetes:?auth={self.kube_env['KUBECONFIG']}&namespaces={namespace}",
            f"--sink={self.sink}", f"--state-dir={workdir / 'state'}", "--cluster-name=campaign",
            f"--checkpoint=configmap:{namespace}/checkpoint", "--leader-elect",
            f"--leader-elect-lease={namespace}/shipper", "--leader-elect-lease-duration=6s",
            "--leader-elect-renew-deadline=4s", "--leader-elect-retry-period=1s",
            "--grace-period=5s",
        ]  # fmt: skip
        return ShipperProcess(workdir, args, {"POD_NAME": name})

    def leader(self) -> ShipperProcess | None:
        for process in self.replicas.values():
            try:
                if (
                    process.proc
                    and process.proc.poll() is None
                    and process.metric("kube_event_shipper_leader") == 1
                    and process.ready()
                ):
                    return process
            except (OSError, KeyError, AssertionError):  # stopping, or not serving yet
                continue
        return None

    def revive(self) -> None:
        """A kubelet's part: start a replica that is not running (after it stopped itself)."""
        for name, process in self.replicas.items():
            if process.proc is None or process.proc.poll() is not None:
                if process.proc is not None:
                    self.log.append(f"{name} exited {process.proc.returncode}; restarted")
                process.start()

    def settle(self, what: str, timeout: float = 90) -> ShipperProcess:
        return wait_for(lambda: (self.revive(), self.leader())[1], timeout, what)

    def handover(self, how: str) -> None:
        old = wait_for(self.leader, 60, "a leader")
        old.stop(signal.SIGKILL if how == "kill" else signal.SIGTERM)
        self.log.append(f"leader {old.env['POD_NAME']} stopped by {how}")
        wait_for(lambda: (new := self.leader()) is not None and new is not old, 60, "a new leader")
        time.sleep(3)
        self.revive()

    def stop(self) -> None:
        for process in self.replicas.values():
            if process.proc is not None and process.proc.poll() is None:
                process.stop()

    def stderr(self) -> str:
        return "\n".join(path.read_text() for path in sorted(self.tmp.glob("*/stderr.*.log")))


@pytest.mark.timeout(1200)  # about 4 minutes of faults, more on a busy machine
def test_every_final_version_once_across_the_fault_campaign(
    kafka_bootstrap, kube_env, kube_api, namespace, tmp_path
):
    topic = create_topic(kafka_bootstrap, 3)
    fleet = Fleet(kafka_bootstrap, topic, kube_env, namespace, tmp_path)
    replicas, log = fleet.replicas, fleet.log
    leader, revive, settle, handover = fleet.leader, fleet.revive, fleet.settle, fleet.handover

    generator = Generator(kube_api, namespace)
    try:
        revive()
        generator.start()
        wait_for(leader, 60, "a leader")
        time.sleep(5)
        handover("kill")  # 1st SIGKILL
        time.sleep(5)
        handover("kill")  # 2nd SIGKILL
        time.sleep(5)
        handover("term")  # a graceful leader handover

        stack("down", "kafka")  # the broker away 20 s
        time.sleep(BROKER_DOWN_SECONDS)
        stack_up("kafka")
        time.sleep(10)

        stack("down", "kubernetes")  # kube-apiserver (and etcd) stopped and started again
        try:
            time.sleep(5)
        finally:
            stack_up("kubernetes")
        settle("a leader after the API server's restart")
        time.sleep(5)

        for process in replicas.values():  # both stopped; etcd compacted meanwhile: a 410
            process.stop()
        time.sleep(3)
        compact_at = etcd_compact(kube_env["ETCD_URL"])
        log.append(f"etcd compacted at revision {compact_at}")
        time.sleep(2)
        settle("a leader after the compaction")
        time.sleep(5)

        replicas["a"].stop()  # --start=all: a replay of everything retained
        replicas["b"].stop()
        replicas["a"].start("--start=all")
        assert wait_for(leader, 60, "a to lead with --start=all") is replicas["a"]
        replicas["b"].start()
        time.sleep(5)
    finally:
        generator.finish()
        stack_up("kafka")
        stack_up("kubernetes")

    expected = final_versions(kube_api, namespace)

    def arrived() -> bool:
        revive()
        return expected <= set(version_ids(read_all(kafka_bootstrap, topic)))

    wait_for(arrived, 180, "the final version of every event")
    for process in replicas.values():
        process.stop()
    committed = read_all(kafka_bootstrap, topic)
    ids = version_ids(committed)
    uncommitted = read_all(kafka_bootstrap, topic, "read_uncommitted")
    duplicates = {vid: n for vid, n in ids.items() if n > 1}
    stderr = "\n".join(path.read_text() for path in sorted(tmp_path.glob("*/stderr.*.log")))
    summary = (
        f"{generator.created} events, {generator.updated} count updates, {len(expected)} final"
        f" versions; {len(committed)} committed messages, {len(duplicates)} duplicates;"
        f" {len(uncommitted) - len(committed)} messages of aborted transactions hidden;"
        f" faults: {'; '.join(log)}"
    )
    print(summary)
    (tmp_path / "campaign.txt").write_text(summary + "\n")
    assert generator.created > 100 and generator.updated > 30, summary
    assert expected <= set(ids), summary
    assert not duplicates, summary
    assert "410 Gone" in stderr  # the resume after the compaction had to list again
    assert "Traceback" not in stderr


@pytest.fixture(autouse=True)
def _show_campaign(tmp_path: Path):
    yield
    summary = tmp_path / "campaign.txt"
    if summary.exists():
        print(summary.read_text())


@pytest.mark.timeout(600)
def test_a_paused_leader_wakes_up_fenced_and_writes_nothing_twice(
    kafka_bootstrap, kube_env, kube_api, namespace, tmp_path
):
    """A zombie: the leader is frozen (SIGSTOP, as a long GC pause or a stalled node would),
    its Lease runs out, the standby takes over and opens its producer with the same
    transactional.id. When the old leader thaws (SIGCONT) with events still in its queue, the
    broker refuses its transaction (fenced), and it stops for its lost Lease."""
    topic = create_topic(kafka_bootstrap, 3)
    fleet = Fleet(kafka_bootstrap, topic, kube_env, namespace, tmp_path)
    generator = Generator(kube_api, namespace)
    try:
        fleet.revive()
        generator.start()
        old = fleet.settle("a leader")
        time.sleep(5)
        old.proc.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
        try:
            new = wait_for(
                lambda: (leader := fleet.leader()) is not None and leader is not old and leader,
                60, "the standby to take over",
            )  # fmt: skip
            time.sleep(5)  # it ships meanwhile
        finally:
            old.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
        assert old.proc.wait(timeout=30) != 0  # it found its Lease gone and stopped
        time.sleep(3)
    finally:
        generator.finish()
    expected = final_versions(kube_api, namespace)
    wait_for(
        lambda: expected <= set(version_ids(read_all(kafka_bootstrap, topic))),
        120, "the final version of every event",
    )  # fmt: skip
    assert fleet.leader() is new
    fleet.stop()
    ids = version_ids(read_all(kafka_bootstrap, topic))
    duplicates = {vid: n for vid, n in ids.items() if n > 1}
    zombie = old.stderr()
    print(
        f"zombie: {generator.created} events, {generator.updated} updates; {sum(ids.values())}"
        f" committed messages, {len(duplicates)} duplicates; the thawed leader"
        f" {'was fenced' if 'fenced: another producer' in zombie else 'had nothing to write'}"
    )
    assert expected <= set(ids)
    assert not duplicates, duplicates
    assert "no longer the leader" in zombie

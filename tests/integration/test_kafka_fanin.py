"""Fan-in: shippers of two clusters write one Kafka topic; aggregators in one consumer group
ship it into OpenSearch. Against the stack's Kafka 3.9, OpenSearch 2.x and kube-apiserver.

The two "clusters" are two namespaces of the stack's API server, each shipped by its own
shipper with its own ``--cluster-name`` (east with ``exactly_once=true``, west with the plain
at-least-once sink) into one topic of 6 partitions, while events are made and updated in both.
Three aggregators (``--source=kafka:...&group=G``) share the partitions; mid-stream one is
SIGKILLed and a fourth joins. OpenSearch ends with every version the shippers wrote (each
``<uid>.<count>`` once, as its ``_id``) carrying the cluster name of its shipper; a message in
kube-eventer's form, put in the topic mid-stream, is dead-lettered with its topic, partition and
offset.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.integration.test_kafka_exactly_once import create_topic, read_all, version_ids
from tests.support.common import ShipperProcess, wait_for
from tests.support.kube import bump, core_event, now
from tests.support.search import search_hits

pytestmark = pytest.mark.stack("kafka", "opensearch")


def search(base: str, index: str) -> list[dict[str, Any]]:
    return search_hits(base, index, size=10000)


class Events(threading.Thread):
    """Events made (and some updated) in each namespace, alternately, about 10 per second."""

    def __init__(self, api: Any, namespaces: list[str]) -> None:
        super().__init__(daemon=True)
        self.api, self.namespaces = api, namespaces
        self.stop_event = threading.Event()
        self.counts: dict[tuple[str, str], int] = {}
        self.made = 0

    def run(self) -> None:
        i = 0
        while not self.stop_event.wait(0.1):
            i += 1
            namespace = self.namespaces[i % len(self.namespaces)]
            if i % 3 == 0 and self.counts:
                key = list(self.counts)[(i * 5) % len(self.counts)]
                self.counts[key] += 1
                bump(self.api, key[0], key[1], self.counts[key], now())
            else:
                made = core_event(self.api, namespace, obj=f"p{i % 40}")
                self.counts[(namespace, made["metadata"]["name"])] = 1
            self.made += 1

    def finish(self) -> None:
        self.stop_event.set()
        self.join(timeout=30)


def ours(records: list[Any]) -> list[Any]:
    """The messages the shippers wrote (the kube-eventer one the test adds has no headers)."""
    return [r for r in records if "version_id" in dict(r.headers or [])]


def kube_eventer_message(bootstrap: str, topic: str) -> Any:
    """A message in kube-eventer's form, which the aggregators must dead-letter."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        value = {"EventValue": "{}", "EventTimestamp": "2026-12-02T00:00:00Z", "EventTags": {}}
        return producer.send(topic, key=b"kube-eventer", value=json.dumps(value).encode()).get(30)
    finally:
        producer.close()


def test_two_clusters_through_kafka_and_a_consumer_group_into_opensearch(
    kafka_bootstrap, kube_env, kube_api, opensearch_url, tmp_path: Path
):
    topic = create_topic(kafka_bootstrap, 6)
    index = f"kes-fanin-{uuid.uuid4().hex[:8]}"
    group = f"agg-{uuid.uuid4().hex[:8]}"
    namespaces = {}
    for cluster in ("east", "west"):
        name = f"t-{cluster}-{uuid.uuid4().hex[:8]}"
        client.CoreV1Api(kube_api).create_namespace({"metadata": {"name": name}})
        namespaces[cluster] = name

    processes: list[ShipperProcess] = []

    def process(name: str, args: list[str]) -> ShipperProcess:
        workdir = tmp_path / name
        workdir.mkdir()
        made = ShipperProcess(workdir, [*args, f"--state-dir={workdir / 'state'}"])
        processes.append(made)
        return made

    shippers = {
        cluster: process(
            cluster,
            [
                f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
                f"--sink=kafka:?brokers={kafka_bootstrap}&eventstopic={topic}&flush_interval=0.2s"
                + ("&exactly_once=true" if cluster == "east" else ""),
                f"--cluster-name={cluster}",
            ],
        )
        for cluster, namespace in namespaces.items()
    }
    source = f"kafka:?brokers={kafka_bootstrap}&topic={topic}&group={group}"

    def aggregator(name: str) -> ShipperProcess:
        return process(
            name,
            [
                f"--source={source}",
                f"--sink=opensearch:{opensearch_url}?index={index}&flush_interval=0.3s",
                "--checkpoint-interval=0.5s",
            ],
        )

    events = Events(kube_api, list(namespaces.values()))
    try:
        for shipper in shippers.values():
            shipper.start()
        aggregators = [aggregator(f"agg{i}").start() for i in range(3)]
        events.start()
        poison = kube_eventer_message(kafka_bootstrap, topic)  # not our document
        wait_for(lambda: len(search(opensearch_url, index)) >= 60, 120, "documents flowing")
        killed = aggregators[0]
        killed.stop(signal.SIGKILL)  # its partitions go to the others after the session timeout
        time.sleep(5)
        aggregators.append(aggregator("agg3").start())  # and one joins: a rebalance
        time.sleep(10)
        events.finish()
        assert events.made > 150
        # the shippers are done once what the topic holds stops changing
        previous: list[Any] = [None]

        def settled() -> bool:
            current = version_ids(ours(read_all(kafka_bootstrap, topic)))
            same, previous[0] = current == previous[0], current
            time.sleep(2)
            return same

        wait_for(settled, 120, "the shippers to have written everything")
        written = version_ids(ours(read_all(kafka_bootstrap, topic)))
        cluster_of = {}
        for record in ours(read_all(kafka_bootstrap, topic)):
            value = json.loads(record.value)
            cluster_of[dict(record.headers)["version_id"].decode()] = value["orchestrator"][
                "cluster"
            ]["name"]

        def stored() -> dict[str, str] | None:
            hits = search(opensearch_url, index)
            found = {h["_id"]: h["_source"]["orchestrator"]["cluster"]["name"] for h in hits}
            return found if set(found) >= set(written) else None

        documents = wait_for(stored, 180, "every version in OpenSearch")
        hits = search(opensearch_url, index)
    finally:
        events.finish()
        for made in processes:
            if made.proc is not None and made.proc.poll() is None:
                made.stop()

    assert len(hits) == len(written)  # once each: nothing else, no second copy
    assert documents == cluster_of  # every version with its shipper's cluster name
    namespace_cluster = {namespace: cluster for cluster, namespace in namespaces.items()}
    for hit in hits:
        source_doc = hit["_source"]
        assert (
            namespace_cluster[source_doc["kubernetes"]["event"]["metadata"]["namespace"]]
            == source_doc["orchestrator"]["cluster"]["name"]
        )
    assert {c for c in documents.values()} == {"east", "west"}
    survivors = aggregators[1:]
    assert all(a.proc is not None and a.proc.returncode == 0 for a in survivors)
    logs = "\n".join(a.stderr() for a in aggregators)
    assert "Revoked" in logs and "Assigned" in logs  # the group rebalanced
    # The poison message: dead-lettered with where it was (once, or again by the partition's
    # next owner if the aggregator that read it died before committing), never shipped.
    letters = [
        json.loads(line)
        for path in sorted(tmp_path.glob("agg*/state/dead-letters/kafka-source.jsonl"))
        for line in path.read_text().splitlines()
    ]
    assert letters, "the kube-eventer message was not dead-lettered"
    for letter in letters:
        assert (letter["topic"], letter["partition"], letter["offset"]) == (
            topic, poison.partition, poison.offset,
        )  # fmt: skip
        assert "not a kube-event-shipper document" in letter["reason"]
        assert json.loads(letter["value"])["EventValue"] == "{}"
    print(
        f"fan-in: {events.made} events made and updated, {len(written)} versions in Kafka,"
        f" {len(hits)} documents in OpenSearch, clusters {sorted(set(documents.values()))}"
    )

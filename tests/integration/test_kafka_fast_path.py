"""The kafka sink's appender (shipper/sinks/kafka_partitioner.py) against the stack's broker:
it is the path taken with the installed kafka-python, it places every key where kafka-python's
DefaultPartitioner does, it refuses exactly the messages send() refuses for their size, and it
wakes the producer's network thread once per batch, not per message."""

from __future__ import annotations

import uuid

import pytest

from shipper.event import normalize
from shipper.sinks.base import SinkContext
from shipper.sinks.factory import build_sink
from shipper.sinks.kafka_partitioner import Appender
from tests.support.common import stack_up

pytestmark = pytest.mark.stack("kafka")


@pytest.fixture(scope="module")
def bootstrap():
    return stack_up("kafka")["KAFKA_BOOTSTRAP"]


def create_topic(bootstrap, partitions=1, **configs):
    from kafka.admin import KafkaAdminClient, NewTopic

    name = f"kes-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [NewTopic(name, partitions, 1, topic_configs=configs)], timeout_ms=30_000
        )
    finally:
        admin.close()
    return name


def read_all(bootstrap, topic, expected):
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        parts = consumer.partitions_for_topic(topic)
        consumer.assign([TopicPartition(topic, p) for p in sorted(parts)])
        consumer.seek_to_beginning()
        records = []
        for _ in range(100):
            for batch in consumer.poll(timeout_ms=500).values():
                records += batch
            if len(records) >= expected:
                break
        return records
    finally:
        consumer.close()


def events(count, message="m"):
    return [
        normalize(
            {
                "metadata": {"uid": str(uuid.uuid4()), "resourceVersion": str(i + 1),
                             "name": f"web.{i}", "namespace": "shop"},
                "involvedObject": {"kind": "Pod", "name": f"web-{i}", "namespace": "shop"},
                "reason": "BackOff", "type": "Warning", "count": i % 5 + 1, "message": message,
                "lastTimestamp": "2026-11-20T10:00:00Z", "source": {"component": "kubelet"},
            },
            "ADDED",
        )
        for i in range(count)
    ]  # fmt: skip


def sink(uri):
    built, _ = build_sink(uri, SinkContext(cluster="prod", state_dir=None))
    return built


def test_the_appender_is_the_path_taken_and_keys_land_where_kafka_python_puts_them(bootstrap):
    from kafka.partitioner.default import DefaultPartitioner

    topic = create_topic(bootstrap, partitions=6)
    writer = sink(f"kafka:?brokers={bootstrap}&eventstopic={topic}")
    batch = events(600)
    writer.open()
    try:
        assert isinstance(writer._send_function(writer.producer), Appender)
        assert writer.write(batch) == []
    finally:
        writer.close()
    records = read_all(bootstrap, topic, 600)
    assert sorted(r.key for r in records) == sorted(e.uid.encode() for e in batch)
    theirs = DefaultPartitioner()

    class Cluster:
        def topics(self):
            return {topic}

        def partitions_for_topic(self, _):
            return set(range(6))

        available_partitions_for_topic = partitions_for_topic

    assert len({r.partition for r in records}) == 6
    for r in records:
        assert r.partition == theirs.partition(topic, r.key, r.key, r.value, r.value, Cluster())
    by_key = {e.uid.encode(): e for e in batch}
    for r in records:
        assert (
            dict(r.headers)["version_id"] == f"{by_key[r.key].uid}.{by_key[r.key].count}".encode()
        )


def test_the_size_limit_is_kafka_pythons_to_the_byte(bootstrap):
    """Messages around max_message_bytes: the appender refuses exactly those send() refuses
    (kafka-python's own estimate), with its error."""
    topic = create_topic(bootstrap)
    limit = 5000
    writer = sink(f"kafka:?brokers={bootstrap}&eventstopic={topic}&max_message_bytes={limit}")
    writer.open()
    try:
        producer = writer.producer
        probe = events(1)[0]
        key, value, headers = writer.message(probe)
        base = producer._estimate_size_in_bytes(key, value, headers)
        batch = []
        for extra in range(-3, 4):  # estimates limit-3 .. limit+3
            event = events(1, message="x" * (limit - base + extra + 1))[0]
            batch.append(event)
        sizes = [producer._estimate_size_in_bytes(*writer.message(e)) for e in batch]
        refused = writer.write(batch)
    finally:
        writer.close()
    assert sizes == list(range(limit - 3, limit + 4))
    assert [r.index for r in refused] == [i for i, size in enumerate(sizes) if size > limit]
    assert all("MessageSizeTooLargeError" in r.reason for r in refused)
    records = read_all(bootstrap, topic, 4)
    assert sorted(r.key for r in records) == sorted(
        e.uid.encode() for e, size in zip(batch, sizes, strict=True) if size <= limit
    )


def test_the_network_thread_is_woken_per_batch_not_per_message(bootstrap):
    topic = create_topic(bootstrap)
    writer = sink(f"kafka:?brokers={bootstrap}&eventstopic={topic}&batch_bytes=65536")
    batch = events(2000, message="y" * 500)
    writer.open()
    wakeups = 0
    sender = writer.producer._sender
    real = sender.wakeup

    def counting():
        nonlocal wakeups
        wakeups += 1
        real()

    sender.wakeup = counting
    try:
        assert writer.write(batch) == []
    finally:
        sender.wakeup = real
        writer.close()
    # the records' bytes (key, value, headers and some 12 bytes of lengths): ~2.8 MB, 43 batches
    size = sum(writer._message(e)[3] + 21 + 12 for e in batch)
    assert size // 65536 - 2 <= wakeups <= size // 65536 + 3, (wakeups, size)  # + flush()
    assert len(read_all(bootstrap, topic, 2000)) == 2000

"""The Kafka sink's partitioner: the Java client's default for keyed messages, for less CPU.

Messages are keyed by the Event's uid, so the partition is ``murmur2(key) & 0x7fffffff``
modulo the partition count, as every Kafka client computes it (a uid's versions stay in one
partition, in order, whichever client wrote them). kafka-python's own DefaultPartitioner does
that in pure Python a byte at a time and lists the cluster's topics and partitions again for
every message: it was about a tenth of the shipper's CPU on the Kafka path (bench/README.md).
This one reads the key four bytes at a time and asks only for the topic's partitions; the
result is the same partition for every key (the unit tests compare it with kafka-python's).
"""

from __future__ import annotations

import struct
from typing import Any

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``) of ``data``."""
    length = len(data)
    h = 0x9747B28C ^ length
    whole = length & ~3
    for k in struct.unpack_from(f"<{length >> 2}I", data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    extra = length & 3
    if extra >= 3:
        h ^= data[whole + 2] << 16
    if extra >= 2:
        h ^= data[whole + 1] << 8
    if extra >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def partitioner() -> Any:
    """A kafka-python Partitioner: keyed messages as above, unkeyed ones as kafka-python's
    DefaultPartitioner places them (the sink always sends a key)."""
    from kafka.partitioner.default import DefaultPartitioner

    class KeyedPartitioner(DefaultPartitioner):  # type: ignore[misc]
        def partition(
            self,
            topic: str,
            key: Any,
            serialized_key: bytes | None,
            value: Any,
            serialized_value: Any,
            cluster: Any,
        ) -> int:
            partitions = cluster.partitions_for_topic(topic) if serialized_key else None
            if not partitions:  # no key, or an unknown topic: kafka-python says what is wrong
                return super().partition(
                    topic, key, serialized_key, value, serialized_value, cluster
                )
            if len(partitions) == 1:  # one partition: every key's, no hash needed
                return next(iter(partitions))  # type: ignore[no-any-return]
            ordered = sorted(partitions)
            return ordered[(murmur2(serialized_key) & 0x7FFFFFFF) % len(ordered)]  # type: ignore[arg-type]

    return KeyedPartitioner()

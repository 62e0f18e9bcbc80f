"""The Kafka sink's way into kafka-python, for less CPU per message: the partitioner of the
Java client's default for keyed messages, and an appender that does what ``send()`` does for the
sink's own messages and nothing more.

Messages are keyed by the Event's uid, so the partition is ``murmur2(key) & 0x7fffffff``
modulo the partition count, as every Kafka client computes it (a uid's versions stay in one
partition, in order, whichever client wrote them). kafka-python's own DefaultPartitioner does
that in pure Python a byte at a time and lists the cluster's topics and partitions again for
every message: it was about a tenth of the shipper's CPU on the Kafka path (bench/README.md).
This one reads the key four bytes at a time and asks only for the topic's partitions; the
result is the same partition for every key (the unit tests compare it with kafka-python's).

:class:`Appender`: kafka-python's ``send()`` checks and converts its arguments, estimates every
message's size in full, asks the partitioner (which looks the topic up again), formats a debug
line's arguments, and wakes its network thread for *every* message while more than one batch
waits for a partition (during a 1,000-event write, that was half of the messages: a syscall and
a thread switch each). The sink's messages are always bytes with three headers, to one known
topic: the appender resolves the topic's partitions once per write, places a key as above,
checks a message's size only when it could be near the limit (with kafka-python's own estimate
and error), and appends it to the producer's record accumulator as ``send()`` does, waking the
network thread once per new batch (a full batch is then ready to go) instead of per message. The
per-message futures stay: kafka-python completes each (and re-binds them when it splits a batch
the broker found too large), so each message's outcome is still its own. It uses kafka-python's
internals (``_accumulator``, ``_sender``): :func:`appender` checks they are what it expects and
returns None otherwise, and the sink then calls ``send()``.
"""

from __future__ import annotations

import inspect
import struct
from collections.abc import Callable
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


#: Upper bound of what a record adds to its key, value and headers' values in kafka-python's
#: estimate (``DefaultRecordBatchBuilder.estimate_size_in_bytes``): the batch header (61), the
#: record overhead (21), the header names (``cluster``, ``type``, ``version_id``: 21) and at most
#: 5 bytes for each of the 9 varints (key, value, header count, 3 header names and values).
OVERHEAD = 61 + 21 + 21 + 9 * 5


class NoPartitions(Exception):
    """The topic's metadata lists no partitions (the sink then calls ``send()``)."""


class Appender:
    """``producer.send(topic, value, key, headers)`` for the sink's messages, made once per
    write (see the module's docstring). Made, it raises what ``producer.partitions_for(topic)``
    raises (``KafkaTimeoutError`` when the metadata does not come within ``max_block_ms``, as
    ``send()`` would) or :class:`NoPartitions`; called, it raises ``MessageSizeTooLargeError``
    as ``send()`` does and returns the message's future."""

    __slots__ = ("_append", "_producer", "_roomy", "_tps", "_wakeup")

    def __init__(self, producer: Any, topic: str) -> None:
        from kafka.structs import TopicPartition

        self._producer = producer
        partitions = sorted(producer.partitions_for(topic))  # waits for metadata, like send()
        if not partitions:
            raise NoPartitions(topic)
        self._tps = [TopicPartition(topic, p) for p in partitions]
        self._append = producer._accumulator.append
        self._wakeup = producer._sender.wakeup
        #: a message whose key, value and header values are at most this long fits for sure
        self._roomy = producer.config["max_request_size"] - OVERHEAD

    def __call__(
        self, key: bytes, value: bytes, headers: list[tuple[str, bytes]], size: int
    ) -> Any:
        """Append one message; ``size``: the bytes of its key, value and header values."""
        tps = self._tps
        tp = tps[0] if len(tps) == 1 else tps[(murmur2(key) & 0x7FFFFFFF) % len(tps)]
        if size > self._roomy:
            producer = self._producer  # near the limit: kafka-python's own check and error
            producer._ensure_valid_record_size(
                producer._estimate_size_in_bytes(key, value, headers)
            )
        result = self._append(tp, None, key, value, headers)
        if result[2]:  # a new batch: the one before it is full, the network thread may send it
            self._wakeup()
        return result[0]


def appender(producer: Any) -> Callable[[Any, str], Appender] | None:
    """:class:`Appender` when this producer has the kafka-python 3 internals it relies on (and
    is not transactional: ``send()`` also adds partitions to a transaction), else None."""
    accumulator = getattr(producer, "_accumulator", None)
    sender = getattr(producer, "_sender", None)
    manager = getattr(producer, "_transaction_manager", None)
    needed = ("_ensure_valid_record_size", "_estimate_size_in_bytes", "partitions_for", "config")
    if accumulator is None or sender is None or not callable(getattr(sender, "wakeup", None)):
        return None
    if not all(hasattr(producer, name) for name in needed):
        return None
    if manager is not None and manager.is_transactional():
        return None
    try:
        parameters = list(inspect.signature(accumulator.append).parameters)
    except (TypeError, ValueError):
        return None
    if parameters[:5] != ["tp", "timestamp_ms", "key", "value", "headers"]:
        return None
    return Appender

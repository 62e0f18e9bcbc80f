"""The kafka sink's ``exactly_once=true``: Kafka transactions and a record of what was shipped.

Each write is one transaction holding the batch's messages *and*, in a compacted state topic,
one record per Event uid: the last version (count) shipped. Either both commit or neither: a
``read_committed`` consumer never sees a message whose record is missing, nor the reverse. The
record is read back (``read_committed``) when the producer opens, and again after every failed
write, so a replay of any kind (restart, SIGKILL, 410 re-list, ``--start=all``, a standby
taking over) skips the versions already committed instead of sending them again. This is how
Kafka Connect's exactly-once source connectors keep their offsets.

- ``transactional.id`` is ``kube-event-shipper.<cluster>.<sink name>`` (or ``transactional_id``):
  stable per cluster and sink, the same for every replica. A replica that wins the Lease opens
  its producer with it, which fences the old leader's producer (zombie fencing): whatever the
  old one still tries to commit is refused by the broker. A fenced producer never re-initializes
  (that would fence the new leader in turn); it refuses every write until the process stops.
- The state topic (``<eventstopic>.kes-shipped`` by default, created compacted if missing) is
  shared by all shippers; each writes and reads only the partition its transactional id hashes
  to, keys prefixed with that id.
- Memory: one entry per uid shipped within ``state_retention`` (2 h; keep it at least the API
  server's ``--event-ttl``, 1 h by default, the time an Event outlives its last update). Older
  entries are dropped and tombstoned in the next transaction, so compaction removes them too.
- A version is identified as the ``version_id`` header says: ``<uid>.<count>``. A replayed
  version whose count is not above the last one committed for its uid is skipped.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from shipper.event import Event
from shipper.sinks.base import Rejected, TransientError
from shipper.sinks.delivery import built_or_refused
from shipper.sinks.kafka_errors import kafka_log as _kafka_log
from shipper.sinks.kafka_errors import text as _text
from shipper.uri import UsageError

if TYPE_CHECKING:
    from shipper.sinks.kafka import KafkaSink

log = logging.getLogger(__name__)

STATE_PARTITIONS = 3  # when the sink creates the state topic; any count works
PRUNE_EVERY = 60.0  # seconds between looks for entries past state_retention


class Fenced(Exception):
    """Another producer with our transactional.id took over; this one must not write again."""


class ExactlyOnce:
    """The transactional writer behind a :class:`~shipper.sinks.kafka.KafkaSink`."""

    def __init__(self, sink: KafkaSink) -> None:
        self.sink = sink
        options = sink.options
        where = f"--sink {sink.scheme}"
        name = options.name or sink.scheme
        if not options.transactional_id and not sink.cluster:
            # Two clusters without a name would share one transactional.id and fence each other.
            raise UsageError(
                f"{where}: exactly_once=true needs a cluster name (--cluster-name or"
                " cluster_name=) or transactional_id="
            )
        self.txn_id = options.transactional_id or f"kube-event-shipper.{sink.cluster}.{name}"
        self.state_topic = options.state_topic or f"{sink.topic}.kes-shipped"
        if self.state_topic == sink.topic:
            raise UsageError(f"{where}: state_topic must differ from eventstopic")
        self.retention = options.state_retention
        self._prefix = f"{self.txn_id}|"
        #: uid -> (last count committed, wall time of that commit): the record, in memory.
        self.shipped: dict[str, tuple[int, float]] = {}
        self._tombstones: set[str] = set()
        #: (uid, rv) the broker refused for good inside an aborted transaction: dead letters.
        self._refused: dict[tuple[str, str], str] = {}
        self.producer: Any = None
        self.reader: Any = None
        self._partition: int | None = None
        self._fenced: str | None = None
        self._pruned_at = time.monotonic()

    # -- opening: fence the predecessor, then learn what it committed

    def open(self) -> None:
        if self._fenced:
            raise TransientError(self._fenced)
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        started = time.time()
        handler = _kafka_log()
        config = self.sink.producer_config()
        config.update(transactional_id=self.txn_id, enable_idempotence=True)
        config["transaction_timeout_ms"] = max(60_000, int(self.sink.timeout * 2000))
        try:
            self._ensure_state_topic()
            producer = KafkaProducer(**config)
        except (KafkaError, OSError) as exc:
            raise TransientError(self.sink._explain(exc, handler.since(started))) from None
        try:
            producer.init_transactions()
        except Exception as exc:
            _close(producer)
            raise TransientError(self._refusal(exc, handler.since(started))) from None
        self.producer = producer
        try:
            self._catch_up()
        except Exception as exc:
            self._drop()
            raise TransientError(
                f"cannot read the state topic {self.state_topic}: {self.sink._explain(exc, [])}"
            ) from None
        log.info(
            "Sink %s: brokers %s (%s), topic %s, exactly once: transactional.id %s, state topic"
            " %s partition %d (%d uids shipped within %s).",
            self.sink.scheme, ",".join(self.sink.brokers), self.sink.security_protocol,
            self.sink.topic, self.txn_id, self.state_topic, self._partition, len(self.shipped),
            _span(self.retention),
        )  # fmt: skip

    def _refusal(self, exc: BaseException, records: list[logging.LogRecord]) -> str:
        """init_transactions failed: one line saying whether the brokers refuse transactions."""
        from kafka import errors

        where = f"brokers {','.join(self.sink.brokers)}"
        if isinstance(
            exc, errors.TransactionalIdAuthorizationFailedError | errors.AuthorizationError
        ):
            return (
                f"{where}: not authorized to use transactional.id {self.txn_id!r}"
                f" ({_text(exc)}): exactly_once=true needs WRITE and DESCRIBE on that"
                f" TransactionalId and WRITE on topics {self.sink.topic}, {self.state_topic}"
            )
        if isinstance(exc, errors.UnsupportedVersionError | errors.IncompatibleBrokerVersion):
            return (
                f"{where}: the brokers do not support transactions ({_text(exc)}):"
                " exactly_once=true needs Kafka 0.11 or later"
            )
        if isinstance(exc, errors.KafkaTimeoutError):
            return (
                f"{where}: no transaction coordinator answered for transactional.id"
                f" {self.txn_id!r} within {self.sink.timeout:.0f} s ({_text(exc)}): the"
                " brokers may refuse transactions (transaction.state.log.replication.factor"
                " larger than the brokers available) or be unreachable"
            )
        return self.sink._explain(exc, records)

    def _ensure_state_topic(self) -> None:
        """Create the compacted state topic if it is missing (like the events topic, it may
        also be made by whoever runs the brokers: then only its partition count is read)."""
        from kafka.admin import KafkaAdminClient, NewTopic
        from kafka.errors import TopicAlreadyExistsError

        config = {
            k: v
            for k, v in self.sink.producer_config().items()
            if k in KafkaAdminClient.DEFAULT_CONFIG
        }
        admin = KafkaAdminClient(**config)
        try:
            if self.state_topic not in admin.list_topics():
                topic = NewTopic(
                    self.state_topic,
                    STATE_PARTITIONS,
                    -1,  # the brokers' default.replication.factor
                    topic_configs={"cleanup.policy": "compact", "min.compaction.lag.ms": "0"},
                )
                try:
                    admin.create_topics([topic], timeout_ms=int(self.sink.timeout * 1000))
                    log.info("Sink %s: created the state topic %s.", self.sink.scheme, topic.name)
                except TopicAlreadyExistsError:
                    pass  # another replica made it meanwhile
        finally:
            admin.close()

    def _catch_up(self) -> None:
        """Read the state partition (read_committed) up to its last stable offset."""
        from kafka import KafkaConsumer, TopicPartition

        if self.reader is None:
            config = {
                k: v
                for k, v in self.sink.producer_config().items()
                if k in KafkaConsumer.DEFAULT_CONFIG and k != "client_id"
            }
            reader = KafkaConsumer(
                **config,
                group_id=None,
                enable_auto_commit=False,
                isolation_level="read_committed",
                client_id=f"{self.sink.options.client_id}-state",
            )
            partitions = sorted(reader.partitions_for_topic(self.state_topic) or ())
            if not partitions:
                _close(reader)
                raise TransientError(f"no partitions for {self.state_topic}")
            self._partition = partitions[zlib.crc32(self.txn_id.encode()) % len(partitions)]
            reader.assign([TopicPartition(self.state_topic, self._partition)])
            reader.seek_to_beginning()
            self.reader = reader
        reader, tp = self.reader, TopicPartition(self.state_topic, self._partition)
        end = reader.end_offsets([tp])[tp]
        cutoff = time.time() - self.retention
        stalled_until = time.monotonic() + max(self.sink.timeout, 10.0)
        while reader.position(tp) < end:
            batches = reader.poll(timeout_ms=500, max_records=5000)
            if not batches:
                if time.monotonic() > stalled_until:
                    raise TransientError(f"stalled at offset {reader.position(tp)} of {end}")
                continue
            stalled_until = time.monotonic() + max(self.sink.timeout, 10.0)
            for record in batches.get(tp, ()):
                self._learn(record.key, record.value, cutoff)

    def _learn(self, key: bytes | None, value: bytes | None, cutoff: float) -> None:
        text = (key or b"").decode("utf-8", "replace")
        if not text.startswith(self._prefix):
            return  # another shipper's record in the same partition
        uid = text[len(self._prefix) :]
        if value is None:
            self.shipped.pop(uid, None)
            return
        entry = orjson.loads(value)
        count, at = int(entry["count"]), float(entry["at"])
        if at < cutoff:
            self.shipped.pop(uid, None)
            self._tombstones.add(uid)
            return
        known = self.shipped.get(uid)
        if known is None or count >= known[0]:
            self.shipped[uid] = (count, at)

    # -- writing

    def write(self, events: Sequence[Event]) -> Sequence[Rejected]:
        from kafka import errors

        if self.producer is None:
            self.open()
        self._prune()
        producer, sink = self.producer, self.sink
        rejected: list[Rejected] = []
        newest: dict[str, tuple[int, str]] = {}
        sent: list[tuple[int, Event, Any]] = []
        started = time.time()
        messages: list[tuple[int, Event, bytes, bytes, list[tuple[str, bytes]]]] = []
        for index, event in enumerate(events):
            known = newest.get(event.uid) or self.shipped.get(event.uid)
            if known is not None and event.count <= known[0]:
                continue  # committed before: a replay
            refused = self._refused.pop(event.key, None)
            if refused is not None:
                rejected.append(Rejected(index, refused))
                continue
            built = built_or_refused(sink.message, index, event, rejected)
            if built is None:
                continue
            key, value, headers = built
            messages.append((index, event, key, value, headers))
            newest[event.uid] = (event.count, event.resource_version)
        tombstones = list(self._tombstones)
        if not messages and not tombstones:
            return sorted(rejected, key=lambda r: r.index)  # nothing new: no transaction
        try:
            producer.begin_transaction()
            for index, event, key, value, headers in messages:
                try:
                    future = producer.send(sink.topic, value=value, key=key, headers=headers)
                except errors.MessageSizeTooLargeError as exc:
                    rejected.append(Rejected(index, f"Kafka: {_text(exc)}"))
                    continue
                sent.append((index, event, future))
            now = time.time()
            for uid, (count, rv) in newest.items():
                record = orjson.dumps({"count": count, "rv": rv, "at": now})
                producer.send(
                    self.state_topic, key=(self._prefix + uid).encode(), value=record,
                    partition=self._partition,
                )  # fmt: skip
            for uid in tombstones:
                producer.send(
                    self.state_topic, key=(self._prefix + uid).encode(), value=None,
                    partition=self._partition,
                )  # fmt: skip
            self._commit()
        except Exception as exc:
            raise self._failed(exc, sent, started) from None
        for uid, (count, _) in newest.items():
            self.shipped[uid] = (count, now)
        self._tombstones.difference_update(tombstones)
        return sorted(rejected, key=lambda r: r.index)

    def _commit(self) -> None:
        """commit_transaction, bounded by the sink's timeout: kafka-python's own call waits
        without limit (a broker away for minutes would hold the sink thread as long)."""
        from kafka.errors import KafkaTimeoutError

        producer, timeout = self.producer, self.sink.timeout + 10
        producer.flush(timeout=timeout)
        manager, sender = getattr(producer, "_transaction_manager", None), getattr(producer, "_sender", None)  # fmt: skip
        if manager is None or sender is None or not hasattr(manager, "begin_commit"):
            producer.commit_transaction()
            return
        result = manager.begin_commit()
        sender.wakeup()
        if not result.wait(timeout_ms=timeout * 1000):
            raise KafkaTimeoutError(f"the transaction's commit took over {timeout:.0f} s")

    def _failed(
        self, exc: BaseException, sent: list[tuple[int, Event, Any]], started: float
    ) -> TransientError:
        """The transaction did not commit, or we cannot tell: drop the producer. The next
        write opens a new one with the same transactional.id, which completes or aborts this
        transaction at the coordinator, and reads back the record to see which it was."""
        from kafka import errors

        fenced = (
            isinstance(exc, errors.ProducerFencedError | errors.InvalidProducerEpochError | Fenced)
            or "fenced" in str(exc).lower()
        )
        for _, event, future in sent:
            if (
                future.is_done
                and future.failed()
                and isinstance(
                    future.exception,
                    errors.MessageSizeTooLargeError | errors.RecordListTooLargeError,
                )
            ):
                self._refused[event.key] = f"Kafka refused the message: {_text(future.exception)}"
        self._drop()
        if fenced:
            self._fenced = (
                f"fenced: another producer with transactional.id {self.txn_id!r} took over"
                " (a newer leader); this one no longer writes"
            )
            log.error("Sink %s: %s.", self.sink.scheme, self._fenced)
            return TransientError(self._fenced)
        reason = self.sink._explain(exc, _kafka_log().since(started))
        return TransientError(f"the transaction of {len(sent)} messages failed: {reason}")

    def _prune(self) -> None:
        """Forget uids last shipped before state_retention; tombstone them in the state topic."""
        now = time.monotonic()
        if now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        cutoff = time.time() - self.retention
        old = [uid for uid, (_, at) in self.shipped.items() if at < cutoff]
        for uid in old:
            del self.shipped[uid]
        self._tombstones.update(old)

    def _drop(self) -> None:
        producer, self.producer = self.producer, None
        if producer is not None:
            _close(producer)

    def close(self) -> None:
        self._drop()
        reader, self.reader = self.reader, None
        if reader is not None:
            _close(reader)


def _close(client: Any) -> None:
    try:
        client.close(timeout=0) if hasattr(client, "send") else client.close()
    except Exception as exc:  # a client that failed is closed for good anyway
        log.debug("closing a Kafka client: %r", exc)
        # kafka-python's producer.close() flushes first and, when that times out (records of
        # a failed transaction), raises before stopping its sender: its __del__ would try
        # again later and print a traceback. Stop the sender here instead.
        sender = getattr(client, "_sender", None)
        if sender is not None and sender.is_alive():
            sender.force_close()
        if hasattr(client, "_closed"):
            client._closed = True


def _span(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"

"""The ``kafka:`` source: fan-in. Ship what shippers in other clusters wrote to Kafka.

``kafka:?brokers=HOST:9092&topic=kube-events&group=kube-event-shipper-aggregator``

Every shipper in the fleet writes its cluster's events with the kafka sink (one topic; the key
is the Event's uid, so every version of one Event lands in one partition, in order). An
*aggregator* runs this source: it reads those documents back into Events, with the
``orchestrator.cluster.name`` each shipper set, and hands them to its own sinks (OpenSearch,
InfluxDB, Loki, ...) like events read from an API server.

- Scale-out is Kafka's: N aggregators in one consumer ``group`` share the partitions; a
  rebalance (one dies, one is added) moves partitions between them.
- Offsets are committed only past what every sink acknowledged (per partition: the ledger of
  shipper/checkpoint.py advances a partition's position over a done prefix only), every
  ``--checkpoint-interval`` and when a partition is taken away. A crash replays, never skips.
  Idempotent sinks (search, sqlite, MySQL, InfluxDB: keyed by ``<uid>.<count>``) turn the
  replay into no second copy; within one process, a version already shipped is skipped.
- ``read_committed``: messages of aborted transactions (``exactly_once=true`` shippers) are
  never read.
- A poison message (not JSON, not a document the kafka sink wrote: kube-eventer's
  ``EventValue`` form, a missing uid or count) is dead-lettered with its topic, partition and
  offset in ``<state-dir>/dead-letters/kafka-source.jsonl``, and passed.
- Parameters as the kafka sink's: ``brokers``, ``user``/``password``/``mechanism`` (SASL),
  ``tls``, ``ca_file``, ``cert_file``/``key_file``, ``insecure``, ``client_id``, ``timeout``;
  plus ``topic`` (repeatable), ``group``, ``offset_reset`` (earliest|latest: where a new group
  starts) and ``forget_after`` (how long a version is remembered for the in-process skip).
- Do not give the aggregator ``--cluster-name``: sinks would put it on every event instead of
  the name each document carries. ``--start`` and ``--checkpoint`` do not apply (the group's
  offsets do; ``offset_reset`` says where a new group starts), nor do ``--leader-elect`` and
  ``--enrich`` (refused).
- A rebalance: kafka-python 3 calls the listener on its IO loop, which also heartbeats, so the
  wait for a revoked partition's acknowledgements (up to 10 s) and its commit are awaited there
  rather than blocking it.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson

from shipper.backoff import Backoff
from shipper.checkpoint import Checkpoint
from shipper.errors import one_line
from shipper.event import Event, utc_now
from shipper.source.document import PoisonMessage, event_from_json
from shipper.uri import Uri, UsageError, choice, parse_duration, parse_list

log = logging.getLogger(__name__)

DEFAULT_GROUP = "kube-event-shipper-aggregator"
#: Our own parameters; every other one is the kafka sink's (SASL, TLS, brokers, timeout).
OWN = {"topic", "eventstopic", "group", "offset_reset", "forget_after"}
REVOKE_WAIT = 10.0  # seconds a partition taken away may wait for its events to be acknowledged


def is_kafka(source: str) -> bool:
    return source.partition(":")[0] == "kafka"


@dataclass(frozen=True)
class KafkaSourceSettings:
    topics: tuple[str, ...]
    group: str
    offset_reset: str
    forget_after: float
    #: the kafka client's connection settings (brokers, security), read by the kafka sink's
    #: options so that SASL and TLS are spelled and checked the same
    client: dict[str, Any]
    brokers: tuple[str, ...]

    @classmethod
    def from_uri(cls, text: str, daemon: Any = None) -> KafkaSourceSettings:
        """The settings of ``--source=kafka:...``; ``daemon`` (shipper.settings.Settings) is
        checked for what makes no sense with it."""
        from shipper.sinks.base import SinkContext
        from shipper.sinks.factory import build_sink_from
        from shipper.sinks.kafka import _TOPIC

        uri = Uri.parse(text, what="--source")
        if daemon is not None and daemon.leader_elect:
            raise UsageError(
                "--source kafka: --leader-elect: aggregators share the work through the"
                " consumer group; run them without leader election"
            )
        if daemon is not None and daemon.enrich.enabled:
            raise UsageError(
                "--source kafka: --enrich: the documents carry the labels their shipper added;"
                " enrich in the clusters"
            )
        own = [(k, v) for k, v in uri.query if k in OWN]
        rest = [(k, v) for k, v in uri.query if k not in OWN]
        topics = [t for k, v in own if k in ("topic", "eventstopic") for t in parse_list(v)]
        if not topics:
            raise UsageError("--source kafka: parameter topic: give the topic the shippers write")
        for topic in topics:
            if not _TOPIC.fullmatch(topic):
                raise UsageError(f"--source kafka: parameter topic={topic!r}: not a topic name")
        values = dict(own)
        group = values.get("group") or DEFAULT_GROUP
        try:
            reset = choice("earliest", "latest")(values.get("offset_reset") or "earliest")
            forget = parse_duration(values.get("forget_after") or "2h")
        except ValueError as exc:
            raise UsageError(f"--source kafka: {exc}") from None
        try:
            sink, _ = build_sink_from(
                Uri("kafka", uri.rest, rest), SinkContext(cluster="", state_dir=None),
                where="--source",
            )  # fmt: skip
        except UsageError as exc:
            raise UsageError(str(exc).replace("--sink kafka", "--source kafka")) from None
        config = sink.producer_config()  # type: ignore[attr-defined]
        from kafka import KafkaConsumer

        known = KafkaConsumer.DEFAULT_CONFIG
        keep = {
            "bootstrap_servers", "client_id", "security_protocol", "ssl_context",
            "sasl_mechanism", "sasl_plain_username", "sasl_plain_password",
            "reconnect_backoff_max_ms", "request_timeout_ms",
        }  # fmt: skip
        client = {k: v for k, v in config.items() if k in keep and k in known}
        return cls(
            topics=tuple(dict.fromkeys(topics)),
            group=group,
            offset_reset=reset,
            forget_after=forget,
            client=client,
            brokers=tuple(sink.brokers),  # type: ignore[attr-defined]
        )

    def describe(self) -> str:
        return (
            f"kafka topic {','.join(self.topics)} on {','.join(self.brokers)} (group {self.group})"
        )


class KafkaOffsets:
    """The ledger's store for the kafka source: positions are the next offsets to read per
    ``topic/partition``, committed to the consumer group (by the consumer's thread, which
    owns the client); the handled versions stay in memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.pending: dict[str, int] = {}

    def load(self) -> Checkpoint:
        return Checkpoint()

    def save(self, positions: dict[str, str], changed: Any) -> None:
        with self._lock:
            for stream, position in positions.items():
                self.pending[stream] = int(position)

    def take(self) -> dict[str, int]:
        with self._lock:
            pending, self.pending = self.pending, {}
            return pending

    def give_back(self, offsets: dict[str, int]) -> None:
        with self._lock:
            for stream, offset in offsets.items():
                self.pending.setdefault(stream, offset)

    def clear(self) -> None:
        pass

    def claim(self, source: str) -> None:
        pass

    def describe(self) -> str:
        return "the consumer group's committed offsets"


def wire(shipper: Any) -> tuple[Any, Any, KafkaSource]:
    """The ledger, dispatcher and source of an aggregator (``shipper.app.Shipper`` calls it
    instead of reading a checkpoint: the consumer group keeps the offsets)."""
    from shipper.checkpoint import Ledger
    from shipper.dispatch import Dispatcher

    ledger = Ledger(KafkaOffsets())  # type: ignore[arg-type]
    dispatcher = Dispatcher(ledger, shipper.router, shipper.workers, shipper.metrics, None)
    source = KafkaSource(
        shipper.source_settings, ledger, dispatcher, shipper.metrics, shipper.settings.state_dir
    )
    dispatcher.stop_event = source.stop_event
    if shipper.settings.cluster:
        log.warning(
            "--cluster-name=%s with --source=kafka: sinks put it on every event instead of the"
            " cluster name each document carries.",
            shipper.settings.cluster,
        )
    return ledger, dispatcher, source


def stream_of(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


class KafkaSource:
    """One consumer of the group feeding ``dispatch`` (a :class:`shipper.dispatch.Dispatcher`)."""

    def __init__(
        self,
        settings: KafkaSourceSettings,
        ledger: Any,
        dispatch: Any,
        metrics: Any,
        state_dir: str | None,
    ) -> None:
        self.settings, self.ledger, self.dispatch, self.metrics = (
            settings,
            ledger,
            dispatch,
            metrics,
        )
        self.store: KafkaOffsets = ledger.store
        self.streams = ["kafka"]
        self.stop_event = threading.Event()
        self.consumer: Any = None
        self._ready = False
        self._read = metrics.watch_events.labels("KAFKA")
        self._poison = metrics.watch_events.labels("POISON")
        self._dead_letters = (
            os.path.join(state_dir, "dead-letters", "kafka-source.jsonl") if state_dir else None
        )
        #: next offset handed to the sinks, and last offset committed, per assigned partition
        self._dispatched: dict[Any, int] = {}
        self._committed: dict[Any, int] = {}
        #: uid -> (stream, when last read): the ledger forgets uids not seen for forget_after
        self._seen: dict[str, tuple[str, float]] = {}
        self._forgot_at = time.monotonic()
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self._ready

    def stop(self) -> None:
        self.stop_event.set()

    # -- the consumer's thread

    def run_stream(self, stream: str) -> None:
        backoff = Backoff(cap=30.0)
        while not self.stop_event.is_set():
            try:
                if self.consumer is None:
                    self.consumer = self._connect()
                self._poll_once()
                backoff.reset()
            except InterruptedError:
                break
            except Exception as exc:
                if self.stop_event.is_set():
                    break
                self._ready = False
                self.metrics.watch_ready.set(0)
                delay = backoff.next_delay()
                log.warning(
                    "Reading %s failed (%s); retrying in %.1f s.",
                    self.settings.describe(), one_line(exc), delay,
                )  # fmt: skip
                self._close_consumer(commit=False)
                self.stop_event.wait(delay)

    def _connect(self) -> Any:
        from kafka import KafkaConsumer

        from shipper.sinks.kafka_errors import kafka_log

        kafka_log()  # the client's reconnect chatter stays out of our log, as for the sink
        consumer = KafkaConsumer(
            **self.settings.client,
            group_id=self.settings.group,
            enable_auto_commit=False,
            auto_offset_reset=self.settings.offset_reset,
            isolation_level="read_committed",
            max_poll_records=1000,
        )
        consumer.subscribe(list(self.settings.topics), listener=self._listener(consumer))
        log.info("Reading %s.", self.settings.describe())
        return consumer

    def _listener(self, consumer: Any) -> Any:
        """The rebalance listener. kafka-python 3 runs it on the consumer's IO loop, which also
        heartbeats: it must not block there. The async form waits for the acknowledgements on
        that loop's own sleep and commits with an awaited commit_async; without it (older
        kafka-python) the revoked partitions are only forgotten, and their next owner replays
        from the last periodic commit (a replay, never a gap)."""
        import kafka

        source = self
        net = getattr(consumer, "_net", None)
        if not hasattr(kafka, "AsyncConsumerRebalanceListener") or net is None:

            class Plain(kafka.ConsumerRebalanceListener):  # type: ignore[misc]
                def on_partitions_revoked(self, revoked: Any) -> None:
                    source._forget(revoked)

                def on_partitions_assigned(self, assigned: Any) -> None:
                    source._assigned(assigned)

            return Plain()

        class Listener(kafka.AsyncConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                deadline = time.monotonic() + REVOKE_WAIT
                while source._unacknowledged(revoked) and time.monotonic() < deadline:
                    if source.stop_event.is_set():
                        break
                    await net.sleep(0.05)
                offsets = source._acknowledged(revoked)
                if offsets:
                    try:
                        await consumer.commit_async(offsets)
                        source._note_committed(offsets)
                    except Exception as exc:
                        log.info("Could not commit before a rebalance (%s).", one_line(exc))
                source._forget(revoked)

            async def on_partitions_assigned(self, assigned: Any) -> None:
                source._assigned(assigned)

        return Listener()

    def _poll_once(self) -> None:
        batches = self.consumer.poll(timeout_ms=500)
        if not self._ready:
            self._ready = True
            self.metrics.watch_ready.set(1)
        for tp, records in batches.items():
            if records:
                self._ship(tp, records)
        self._commit(self.store.take())
        self._forget_old()

    def _ship(self, tp: Any, records: list[Any]) -> None:
        stream = stream_of(tp.topic, tp.partition)
        events: list[Event] = []
        now = time.monotonic()
        for record in records:
            try:
                event = event_from_json(record.value)
            except PoisonMessage as exc:
                self._dead_letter(record, str(exc))
                continue
            events.append(event)
            self._seen[event.uid] = (stream, now)
        self._read.inc(len(records))
        if events:
            self.metrics.last_event_timestamp.set(time.time())
            if self.dispatch.page(stream, events) is None or self.stop_event.is_set():
                raise InterruptedError("stopping")  # the unqueued ones stay uncommitted
        following = records[-1].offset + 1
        self._dispatched[tp] = following
        # Past this marker the position is the next offset, once every event before is done.
        self.ledger.mark(stream, str(following))

    def _dead_letter(self, record: Any, reason: str) -> None:
        self._poison.inc()
        where = f"{record.topic}/{record.partition}@{record.offset}"
        log.warning("Dead-lettered the message at %s: %s.", where, reason)
        if self._dead_letters is None:
            return
        value = record.value or b""
        try:
            shown: dict[str, str] = {"value": value.decode("utf-8")}
        except UnicodeDecodeError:
            shown = {"value_base64": base64.b64encode(value).decode()}
        line = orjson.dumps(
            {
                "time": utc_now(),
                "source": "kafka",
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "key": (record.key or b"").decode("utf-8", "replace"),
                "reason": reason,
                **shown,
            }
        )
        os.makedirs(os.path.dirname(self._dead_letters), exist_ok=True)
        with open(self._dead_letters, "ab") as handle:
            handle.write(line + b"\n")

    def _commit(self, positions: dict[str, int]) -> None:
        """Commit the positions the ledger saved, for the partitions we still own, and only
        forward (a partition given back and assigned again starts at the group's offset).
        Runs in the consumer's thread (a blocking commit is fine there, not on the IO loop)."""
        from kafka.structs import OffsetAndMetadata

        if self.consumer is None:
            return
        for tp in [tp for tp, known in self._committed.items() if known is None]:
            try:  # newly assigned: where the group stands (blocking, so not in the listener)
                committed = self.consumer.committed(tp)
            except Exception:
                continue
            self._committed[tp] = committed if committed is not None else -1
        if not positions:
            return
        offsets = {}
        for stream, offset in positions.items():
            topic, _, partition = stream.rpartition("/")
            tp = _partition(topic, int(partition))
            known = self._committed.get(tp, 0)
            if tp in self._committed and known is not None and offset > known:
                offsets[tp] = OffsetAndMetadata(offset, "", -1)
        if not offsets:
            return
        try:
            self.consumer.commit(offsets)
        except Exception as exc:  # a rebalance under way: the next owner replays from before
            log.info("Could not commit offsets (%s); they are committed later.", one_line(exc))
            back = {stream_of(tp.topic, tp.partition): o.offset for tp, o in offsets.items()}
            self.store.give_back(back)
            return
        self._note_committed(offsets)

    def _note_committed(self, offsets: dict[Any, Any]) -> None:
        for tp, meta in offsets.items():
            if tp in self._committed:
                self._committed[tp] = meta.offset

    # -- rebalances (on kafka-python's IO loop: nothing here may block)

    def _assigned(self, assigned: Any) -> None:
        for tp in assigned:
            self._committed[tp] = None  # looked up by the consumer's thread (_commit)
        log.info("Assigned %s.", _partitions(assigned))

    def _unacknowledged(self, revoked: Any) -> bool:
        """Whether events read from ``revoked`` are still on their way to the sinks."""
        return any(
            self.ledger.position(stream_of(tp.topic, tp.partition)) != str(self._dispatched[tp])
            for tp in revoked
            if tp in self._dispatched
        )

    def _acknowledged(self, revoked: Any) -> dict[Any, Any]:
        """The offsets to commit for ``revoked``: past what every sink acknowledged."""
        from kafka.structs import OffsetAndMetadata

        offsets = {}
        for tp in revoked:
            position = self.ledger.position(stream_of(tp.topic, tp.partition))
            known = self._committed.get(tp)
            if position is not None and known is not None and int(position) > known:
                offsets[tp] = OffsetAndMetadata(int(position), "", -1)
        return offsets

    def _forget(self, revoked: Any) -> None:
        for tp in revoked:
            self._committed.pop(tp, None)
            self._dispatched.pop(tp, None)
        log.info("Revoked %s.", _partitions(revoked))

    def _forget_old(self) -> None:
        """Keep the ledger's handled versions bounded: uids not read for forget_after go."""
        now = time.monotonic()
        if now - self._forgot_at < 60.0:
            return
        self._forgot_at = now
        cutoff = now - self.settings.forget_after
        old = [(uid, stream) for uid, (stream, at) in self._seen.items() if at < cutoff]
        for uid, stream in old:
            del self._seen[uid]
            self.ledger.mark(stream, None, deleted_uid=uid)

    # -- stopping

    def close(self) -> None:
        """After the sinks drained and the ledger's last flush: commit that, and leave the
        group (its partitions go to the other consumers at once)."""
        self._close_consumer(commit=True)

    def _close_consumer(self, *, commit: bool) -> None:
        consumer, self.consumer = self.consumer, None
        if consumer is None:
            return
        if commit:
            self.consumer = consumer
            self._commit(self.store.take())
            self.consumer = None
        try:
            consumer.close(autocommit=False)
        except Exception as exc:
            log.debug("closing the consumer: %r", exc)
        self._committed.clear()
        self._dispatched.clear()


def _partition(topic: str, partition: int) -> Any:
    from kafka import TopicPartition

    return TopicPartition(topic, partition)


def _partitions(tps: Any) -> str:
    return ", ".join(sorted(f"{tp.topic}/{tp.partition}" for tp in tps)) or "no partitions"

"""``kafka:?brokers=HOST:9092&eventstopic=kube-events``: one JSON message per event version.

URI: kube-eventer's form, its parameters as written, plus SCRAM, ``tls`` and ``zstd``::

    kafka:?brokers=kafka-0:9092&brokers=kafka-1:9092&eventstopic=heapster-events&compression=gzip
    kafka:?brokers=kafka:9093&user=shipper&password_file=/s/pw&mechanism=SCRAM-SHA-512&tls=true
    kafka:?brokers=kafka:9093&cacert=/s/ca.pem&cert=/s/client.pem&key=/s/client-key.pem

``brokers`` repeats or takes commas (the port defaults to 9092; ``kafka:HOST:PORT,HOST:PORT``
works too). ``user`` + ``password`` switch on SASL: ``PLAIN`` as kube-eventer spoke it, or
``mechanism=SCRAM-SHA-256|SCRAM-SHA-512`` (kubernetes-event-exporter's ``plain``, ``sha256``,
``sha512`` are read too). TLS is on with ``tls=true`` or as soon as ``ca_file``,
``cert_file``/``key_file`` or ``insecure`` is given (kube-eventer's rule, with its ``cacert``,
``cert``/``key`` and ``insecuressl``; plus ``tls=true`` for a server certificate the system's
CAs verify). kube-eventer's ``timeseriestopic`` (Heapster's metrics) is accepted and
ignored with a warning: this shipper ships events only. The password is never logged.

The message, per event version (``schemas/kafka-event.schema.json`` is its JSON Schema)::

    key       the Event's metadata.uid (UTF-8): every version of one Event goes to one
              partition, in the order the versions were made
    value     the flattened event document as ``log`` prints it (README: The event document),
              JSON (UTF-8); orchestrator.cluster.name from cluster_name or --cluster-name
    headers   cluster     the cluster name ('' when none is set)
              type        Normal or Warning
              version_id  <uid>.<count>, the Elasticsearch sink's _id: the same for every copy
                          of one version, so a consumer drops repeats by it
    timestamp when the message was produced (the occurrence is @timestamp in the value)

This is not kube-eventer's message (``{"EventValue": "<the Event as a JSON string>",
"EventTimestamp": ..., "EventTags": {...}}``): consumers written for that must read the
document instead; it carries every field, typed, with the names Elastic users know.

Writes: one pipeline batch is sent whole (the producer groups it in ``batch_bytes`` batches per
partition, waiting up to ``linger_ms``), then flushed: the write returns once the broker has
acknowledged every message with ``acks=all``. The producer is idempotent (the default of
kafka-python 3 wherever the broker is 0.11+), so its own retries inside one write never
duplicate. A message larger than ``max_message_bytes`` or than the topic's ``max.message.bytes``
is refused for good: only that event is dead-lettered, with the broker's words. Anything else
(no broker reachable, not enough in-sync replicas, no leader, a timeout after ``timeout``,
authentication or authorization failures) fails the write: the messages acknowledged so far are
remembered and the pipeline retries the rest with backoff, each failure reported in one line
(kafka-python's own log is kept quiet unless ``--log-level=debug``). After a failed write the
producer is rebuilt.

Guarantee: at least once per event version, ordered per uid. A consumer sees a version twice
only (a) after a write that timed out although the broker had stored the message (the retry
sends it again), (b) after a crash, for the versions shipped in the last checkpoint interval,
and (c) with ``--start=all``, which re-sends every retained event on purpose. A clean restart
and a 410 re-list send only the versions not shipped yet. Every copy carries the same key and
``version_id`` header: deduplicate on it (or on uid + resource_version in the value).

Exactly once (``exactly_once=true``; ``exactlyOnce: true`` in a config file): each write is
one Kafka transaction holding the messages and, in a compacted state topic (``state_topic``,
default ``<eventstopic>.kes-shipped``), the last version shipped per uid, read back at open and
after a failed write: a crash, 410, ``--start=all`` or a new leader skips what was committed, so
a ``read_committed`` consumer sees each ``version_id`` once. ``transactional.id`` =
``kube-event-shipper.<cluster>.<sink name>``: a new leader fences the old one's producer. Entries
older than ``state_retention`` (2 h, >= ``--event-ttl``) are forgotten. Brokers that refuse
transactions are one start-up line. Example: ``kafka:?brokers=k:9092&exactly_once=true``
"""

from __future__ import annotations

import logging
import re
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from shipper.event import Event
from shipper.sinks.base import Rejected, Sink, TransientError
from shipper.sinks.delivery import built_or_refused
from shipper.sinks.kafka_errors import explain, kafka_log
from shipper.sinks.kafka_errors import text as _text
from shipper.sinks.kafka_partitioner import NoPartitions, appender, partitioner
from shipper.spec import (
    ClientCert,
    ClusterName,
    LayoutOption,
    SinkOptions,
    Timeout,
    TLSTrust,
    check_readable,
    option,
)
from shipper.tls import TLSFileError, client_context
from shipper.uri import (
    UsageError,
    choice,
    parse_bool,
    parse_duration,
    parse_list,
    parse_nonnegative_int,
    parse_positive_int,
)

log = logging.getLogger(__name__)

DEFAULT_TOPIC = "heapster-events"  # kube-eventer's
DEFAULT_PORT = 9092
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
MECHANISMS = {
    "plain": "PLAIN",
    "scram-sha-256": "SCRAM-SHA-256",
    "scram-sha-512": "SCRAM-SHA-512",
    # kubernetes-event-exporter's names (sasl.mechanism)
    "sha256": "SCRAM-SHA-256",
    "sha512": "SCRAM-SHA-512",
}
#: Python packages of the codecs, for the error message when one is missing.
CODEC_PACKAGES = {"snappy": "python-snappy", "lz4": "lz4", "zstd": "zstandard"}


def parse_mechanism(text: str) -> str:
    try:
        return MECHANISMS[text.strip().lower()]
    except KeyError:
        raise ValueError("expected one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512") from None


parse_mechanism.__name__ = "PLAIN|SCRAM-SHA-256|SCRAM-SHA-512"


def parse_broker(text: str) -> str:
    """``host``, ``host:port`` or ``[v6]:port`` -> ``host:port``."""
    text = text.strip()
    host, port = text, str(DEFAULT_PORT)
    if text.startswith("["):
        inside, _, tail = text[1:].partition("]")
        host, port = f"[{inside}]", tail[1:] if tail.startswith(":") else port
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    if not host or "/" in host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return f"{host}:{port}"


@dataclass(frozen=True, kw_only=True)
class KafkaOptions(SinkOptions, TLSTrust, ClientCert, ClusterName, Timeout, LayoutOption):
    IGNORED = {
        "clientId": "the client id is client_id (kube-event-shipper by default)",
        "version": "the protocol version is negotiated with the brokers",
        "sasl.enable": "SASL is on when a user is given",
    }
    DEFAULTS = {"timeout": 30.0}

    brokers: list[str] = option(
        [],
        "Bootstrap brokers HOST:PORT (repeat or comma-separate; port 9092 by default).",
        exporter="brokers",
    )
    eventstopic: str = option(
        DEFAULT_TOPIC,
        "Topic of the events (created by the broker if it auto-creates topics).",
        aliases=("topic",),
        exporter="topic",
    )
    timeseriestopic: str | None = option(
        None, "kube-eventer's metrics topic: accepted and ignored (events only)."
    )
    compression: str = option(
        "none",
        "none, gzip, snappy, lz4 or zstd (Kafka 2.1+); snappy/lz4/zstd need the kafka extra.",
        parse=choice(*COMPRESSIONS),
        exporter="compressionCodec",
    )
    user: str | None = option(
        None,
        "SASL user; with password, switches SASL on.",
        aliases=("username",),
        exporter="sasl.username",
    )
    password: str | None = option(
        None,
        "SASL password: password_file=/path or password=$VAR.",
        secret=True,
        exporter="sasl.password",
    )
    mechanism: str | None = option(
        None,
        "SASL mechanism: PLAIN (default, kube-eventer's), SCRAM-SHA-256, SCRAM-SHA-512.",
        parse=parse_mechanism,
        aliases=("sasl_mechanism",),
        exporter="sasl.mechanism",
    )
    tls: bool | None = option(
        None,
        "TLS to the brokers; default: on when ca_file, cert_file/key_file or insecure is given.",
        parse=parse_bool,
        exporter="tls.enable",
    )
    linger_ms: int = option(
        5,
        "How long the producer waits to fill a batch (every write ends with a flush).",
        parse=parse_nonnegative_int,
    )
    batch_bytes: int = option(
        262144,
        "Producer batch size per partition, bytes (the pipeline's batch_size counts events).",
        parse=parse_positive_int,
    )
    max_message_bytes: int = option(
        1048576,
        "Largest message sent; larger events are dead-lettered (keep it <= the topic's max.message.bytes).",
        parse=parse_positive_int,
    )
    client_id: str = option("kube-event-shipper", "Client id the brokers log and apply quotas to.")
    exactly_once: bool = option(
        False,
        "Kafka transactions: each version once for read_committed consumers (Exactly once).",
        parse=parse_bool,
        exporter="exactlyOnce",
    )
    transactional_id: str | None = option(
        None, "exactly_once: the transactional.id (default kube-event-shipper.CLUSTER.NAME)."
    )
    state_topic: str | None = option(
        None,
        "exactly_once: the compacted topic of what was shipped (default EVENTSTOPIC.kes-shipped).",
    )
    state_retention: float = option(
        7200.0,
        "exactly_once: how long a shipped version is remembered (at least the API server's --event-ttl).",
        parse=parse_duration,
    )


class KafkaSink(Sink):
    accepts_audit = (
        True  # the audit document as it is, keyed by its auditID (a layout is for Events)
    )
    receiver = "kafka"
    Options = KafkaOptions
    options: KafkaOptions
    usage = "kafka:?brokers=HOST:9092&brokers=HOST:9092&eventstopic=TOPIC"
    example = "kafka:?brokers=kafka-0:9092&eventstopic=kube-events&compression=zstd"
    scheme = "kafka"
    summary = "Apache Kafka: one JSON message per event version, key = uid, acks=all"
    guarantee = (
        "at least once per event version, ordered per uid (key = uid): a write that timed out,"
        " a crash (the last checkpoint interval) and --start=all may send a version again, with"
        " the same version_id header (<uid>.<count>) to deduplicate on; exactly_once=true: once"
        " per version for read_committed consumers (transactions, a compacted state topic)"
    )
    default_batch_size = 1000
    default_flush_interval = 0.5

    producer: Any = None
    #: (producer, kafka_partitioner.Appender or None when that producer needs send())
    _fast: tuple[Any, Any] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        where = f"--sink {self.scheme}"
        options = self.options
        brokers = parse_list(self.uri.rest.removeprefix("//")) + list(options.brokers)
        try:
            self.brokers = [parse_broker(b) for b in brokers]
        except ValueError as exc:
            raise UsageError(f"{where}: parameter brokers: {exc}") from None
        if not self.brokers:
            raise UsageError(
                f"{where}: no brokers given; expected kafka:?brokers=HOST:9092&brokers=..."
            )
        self.topic = options.eventstopic
        if not _TOPIC.fullmatch(self.topic) or self.topic in (".", ".."):
            raise UsageError(
                f"{where}: parameter eventstopic={self.topic!r}: expected a topic name of"
                " letters, digits, '.', '_' and '-' (at most 249)"
            )
        if options.timeseriestopic is not None:
            log.warning(
                "Sink %s: timeseriestopic=%s is ignored: kube-event-shipper ships events only.",
                self.scheme, options.timeseriestopic,
            )  # fmt: skip
        self.compression = options.compression
        self._check_codec(where)
        user, password = options.user, options.password
        if bool(user) != (password is not None):
            raise UsageError(f"{where}: give user and password together (SASL)")
        if options.mechanism and not user:
            raise UsageError(f"{where}: parameter mechanism needs user and password")
        self.mechanism = (options.mechanism or "PLAIN") if user else None
        check_readable(options, where, "ca_file", "cert_file", "key_file")
        if bool(options.cert_file) != bool(options.key_file):
            raise UsageError(f"{where}: give cert_file and key_file together")
        implied = bool(options.ca_file or options.cert_file or options.insecure)
        if options.tls is False and implied:
            raise UsageError(f"{where}: tls=false, but ca_file, cert_file or insecure given")
        self.tls = bool(options.tls) or implied
        try:
            self._ssl = self.ssl_context()
        except TLSFileError as exc:
            raise UsageError(f"{where}: cannot use ca_file, cert_file or key_file: {exc}") from None
        self.cluster = options.cluster_name or self.ctx.cluster
        self.timeout = max(options.timeout, 1.0)
        #: (uid, resource_version) of the messages of a failed write that the broker did
        #: acknowledge: its retry (the same batch) does not send them again.
        self._acked: set[tuple[str, str]] = set()
        self._headers_cluster = self.cluster.encode()
        #: exactly_once=true: the transactional writer (shipper/sinks/kafka_txn.py) does the
        #: writes; the plain path below stays as it is.
        self._txn: Any = None
        if options.exactly_once:
            from shipper.sinks.kafka_txn import ExactlyOnce

            self._txn = ExactlyOnce(self)

    def _check_codec(self, where: str) -> None:
        if self.compression in ("none", "gzip"):
            return
        from kafka import codec

        if not getattr(codec, f"has_{self.compression}")():
            raise UsageError(
                f"{where}: parameter compression={self.compression}: the codec is not installed;"
                f" pip install {CODEC_PACKAGES[self.compression]}"
                " (or pip install 'kube-event-shipper[kafka]')"
            )

    # -- the producer

    @property
    def security_protocol(self) -> str:
        if self.mechanism:
            return "SASL_SSL" if self.tls else "SASL_PLAINTEXT"
        return "SSL" if self.tls else "PLAINTEXT"

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        o = self.options
        return client_context(o.ca_file, o.cert_file, o.key_file, o.insecure)

    def producer_config(self) -> dict[str, Any]:
        """KafkaProducer's keyword arguments (those this kafka-python knows)."""
        from kafka import KafkaProducer

        timeout_ms = int(self.timeout * 1000)
        linger = self.options.linger_ms
        config: dict[str, Any] = {
            "bootstrap_servers": self.brokers,
            "client_id": self.options.client_id,
            "acks": "all",
            "compression_type": None if self.compression == "none" else self.compression,
            "linger_ms": linger,
            "batch_size": self.options.batch_bytes,
            "max_request_size": self.options.max_message_bytes,
            # A write waits at most `timeout` for its acknowledgements, and for metadata.
            "delivery_timeout_ms": timeout_ms + linger,
            "request_timeout_ms": timeout_ms,
            "max_block_ms": timeout_ms,
            "bootstrap_timeout_ms": min(timeout_ms, 10_000),
            "reconnect_backoff_max_ms": 2_000,
            "security_protocol": self.security_protocol,
            "partitioner": partitioner(),  # the default's partitions, for less CPU per message
            # kafka-python's own sensors (per request and batch, in its network thread): the
            # shipper reads none of them, it counts what it ships itself.
            "metrics_enabled": False,
        }
        if self.tls:
            config["ssl_context"] = self._ssl
        if self.mechanism:
            config.update(
                sasl_mechanism=self.mechanism,
                sasl_plain_username=self.options.user,
                sasl_plain_password=self.options.password,
            )
        known = KafkaProducer.DEFAULT_CONFIG
        if known.get("enable_idempotence") is False:  # kafka-python 2.x: opt in
            config["enable_idempotence"] = True
        if "bootstrap_timeout_ms" not in known:  # kafka-python 2.x's name
            config["api_version_auto_timeout_ms"] = config.pop("bootstrap_timeout_ms")
        return {k: v for k, v in config.items() if k in known}

    def connect(self) -> Any:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        started = time.time()
        handler = kafka_log()
        try:
            return KafkaProducer(**self.producer_config())
        except (KafkaError, OSError, ssl.SSLError) as exc:
            raise TransientError(self._explain(exc, handler.since(started))) from None

    def _explain(self, exc: BaseException, records: list[logging.LogRecord]) -> str:
        """One line: what failed, with the client's own reason when it logged one."""
        return explain(exc, records, self.brokers, self.mechanism, self.options.user)

    def open(self) -> None:
        if self._txn is not None:
            return self._txn.open()
        if self.producer is None:
            self.producer = self.connect()
        try:
            self.producer.partitions_for(self.topic)
        except Exception as exc:
            self._drop()
            raise TransientError(
                f"no metadata for topic {self.topic} after {self.timeout:.0f} s ({_text(exc)}):"
                " the topic does not exist and the brokers do not create topics, or the user"
                " may not describe it"
            ) from None
        config = self.producer.config
        log.info(
            "Sink %s: brokers %s (%s), topic %s, compression %s, acks=all, %s producer.",
            self.scheme, ",".join(self.brokers), self.security_protocol, self.topic,
            self.compression, "an idempotent" if config.get("enable_idempotence") else "a",
        )  # fmt: skip

    def _drop(self) -> None:
        if self.producer is not None:
            producer, self.producer = self.producer, None
            try:
                producer.close(timeout=0)
            except Exception as exc:  # a producer that failed is closed for good anyway
                log.debug("Sink %s: closing the producer: %r", self.scheme, exc)

    # -- writing

    def message(self, event: Event) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        """(key, value, headers) of one event version; the value is the document, or the body
        of kubernetes-event-exporter's ``layout`` (TemplateError if it fails on this event)."""
        key, value, headers, _ = self._message(event)
        return key, value, headers

    def _message(self, event: Event) -> tuple[bytes, bytes, list[tuple[str, bytes]], int]:
        """:meth:`message`, and the bytes of its key, value and header values (the appender's
        size check)."""
        if self.options.layout is not None:
            value = self.options.layout.encode(event, self.cluster)
        else:  # encoded once per event version, shared with the other JSON sinks
            value = event.document_json(self.cluster)
        uid = event.uid.encode()
        type_ = event.type.encode()
        version_id = b"%s.%d" % (uid, event.count)
        headers = [
            ("cluster", self._headers_cluster),
            ("type", type_),
            ("version_id", version_id),
        ]
        size = len(uid) + len(value) + len(type_) + len(version_id) + len(self._headers_cluster)
        return uid, value, headers, size

    def _send_function(self, producer: Any) -> Any:
        """How this write hands a message ``(key, value, headers, size)`` to the producer: the
        appender of kafka_partitioner (send() minus what the sink's messages never need) when
        this kafka-python has what it relies on, else ``send()``."""
        from kafka import errors

        if self._fast is None or self._fast[0] is not producer:
            self._fast = (producer, appender(producer))
        make = self._fast[1]
        if make is not None:
            try:
                return make(producer, self.topic)
            except (errors.BrokerResponseError, NoPartitions):
                pass  # an error in the topic's metadata: send() fails each message with it
        return partial(_send, producer.send, self.topic)

    def write(self, events: Sequence[Event]) -> Sequence[Rejected]:
        if self._txn is not None:
            return self._txn.write(events)
        from kafka import errors

        if self.producer is None:
            self.producer = self.connect()
        producer = self.producer
        started = time.time()
        rejected: list[Rejected] = []
        sent: list[tuple[int, Event, Any]] = []
        rebuild = False
        try:
            send = self._send_function(producer)
            acked = self._acked  # usually empty: only a retried write has some
            message = self._message
            for index, event in enumerate(events):
                if acked and event.key in acked:
                    continue
                built = built_or_refused(message, index, event, rejected)
                if built is None:
                    continue
                try:
                    future = send(*built)
                except errors.MessageSizeTooLargeError as exc:
                    rejected.append(Rejected(index, f"Kafka: {_text(exc)}"))
                    continue
                sent.append((index, event, future))
            producer.flush(timeout=self.timeout + 10)
        except errors.KafkaTimeoutError as exc:
            self._note_acked(sent)
            self._drop()
            raise TransientError(
                f"{self._explain(exc, kafka_log().since(started))};"
                f" {len(self._acked)} of {len(events)} acknowledged before"
            ) from None
        except errors.KafkaError:
            # kafka-python 3 splits a batch the broker found too large and re-sends the halves,
            # but flush() then gives up on the old batch ("Future not done"): each message's
            # own future still tells. The producer is rebuilt after this write, to be safe.
            if not sent:
                raise
            rebuild = True
        deadline = time.monotonic() + self.timeout + 10
        failed: list[BaseException] = []
        for index, _, future in sent:
            if not future.is_done:
                try:
                    future.get(timeout=max(0.0, deadline - time.monotonic()))
                except Exception as exc:
                    log.debug("Sink %s: %r", self.scheme, exc)
            if not future.is_done:
                failed.append(errors.KafkaTimeoutError(f"no acknowledgement in {self.timeout} s"))
            elif (exc := future.exception) is not None:
                if isinstance(
                    exc, errors.MessageSizeTooLargeError | errors.RecordListTooLargeError
                ):
                    rejected.append(Rejected(index, f"Kafka refused the message: {_text(exc)}"))
                else:
                    failed.append(exc)
        if failed:
            self._note_acked(sent)
            self._drop()
            raise TransientError(
                f"{len(failed)} of {len(sent)} messages not acknowledged:"
                f" {self._explain(failed[0], kafka_log().since(started))}"
            )
        if rebuild:
            self._drop()
        self._acked.clear()
        return sorted(rejected, key=lambda r: r.index)

    def _note_acked(self, sent: list[tuple[int, Event, Any]]) -> None:
        for _, event, future in sent:
            if future.is_done and future.succeeded():
                self._acked.add(event.key)

    def close(self) -> None:
        if self._txn is not None:
            self._txn.close()
        if self.producer is not None:
            producer, self.producer = self.producer, None
            try:
                producer.close(timeout=min(self.timeout, 10.0))
            except Exception as exc:
                log.warning("Sink %s: closing the producer: %s", self.scheme, _text(exc))

    def describe(self) -> str:
        auth = f" {self.mechanism} user {self.options.user}" if self.mechanism else ""
        return f"kafka {','.join(self.brokers)} topic={self.topic}{auth}"


def _send(send: Any, topic: str, key: bytes, value: bytes, headers: Any, size: int) -> Any:
    return send(topic, value=value, key=key, headers=headers)

"""``rabbitmq:?host=HOST&username=U&password=P&exchange=kube-events``: one persistent AMQP 0-9-1
message per event version, each confirmed by the broker.

URI: kube-eventer's parameters as written (``host``, ``port``, ``username``, ``password``,
``eventstopic``: the exchange; its docs' ``eventtopic`` is read too), plus ``vhost``,
``routing_key`` and TLS::

    rabbitmq:?host=rabbitmq&port=5672&username=shipper&password_file=/s/pw&eventstopic=kube-events
    rabbitmq:?host=mq.example&tls=true&ca_file=/s/ca.pem&vhost=prod&routing_key={{ .InvolvedObject.Namespace }}.{{ .Reason }}

kube-eventer's ``metricsTopic`` / ``timeseriestopic`` (Heapster's metrics) is accepted and
ignored with a warning: this shipper ships events only. The password is never logged.

The exchange (``heapster-events`` by default, kube-eventer's) is declared at start as a durable
``topic`` exchange, as kube-eventer declares it (``exchange_type=`` for another type;
``declare=false`` to use an exchange as it exists, or the default exchange ``exchange=`` with
``routing_key`` = a queue's name). The routing key is ``#`` by default (kube-eventer's), or a
Go template over the event.

The message, per event version::

    body          the event document as ``log`` prints it (README: The event document), JSON,
                  or the body of ``layout``
    content_type  application/json        delivery_mode  2 (persistent)
    message_id    <uid>.<count>: the same for every copy of one version: deduplicate on it
    timestamp     the event's last occurrence (seconds)     type     Normal or Warning
    app_id        kube-event-shipper
    headers       uid, resource_version, reason, namespace, kind, name, cluster

Writes: the channel is in confirm mode and every message is published ``mandatory`` and waited
for: when ``write()`` returns, the broker has taken responsibility for every message (on a
durable queue, written it to disk). What the broker may answer instead:

- **returned** (no queue is bound for the routing key): that event is dead-lettered, with the
  exchange and the routing key in the reason, and the batch goes on. The broker's routing is
  deterministic, so retrying would only stall every other event behind it; bind a queue, then
  replay the dead letters. ``mandatory=false`` lets the broker drop such messages silently, as
  kube-eventer did.
- **nack** (the broker could not take it: a queue full with ``reject-publish``, an internal
  error): retried, that event and the rest of the batch, with backoff.
- a lost connection (a broker restart, a network failure), a closed channel, a timeout: the
  events from the one in flight on are retried on a new connection; those confirmed before are
  done. Wrong credentials, an unknown vhost or missing permissions are one line each try.

Guarantee: at least once per event version. A version is sent twice only when the connection
broke after the broker stored the message but before its confirm arrived, after a crash of the
shipper (the last checkpoint interval), and with ``--start=all``; every copy has the same
``message_id``. A broker restart loses nothing confirmed: messages are persistent (on durable
queues).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from shipper.event import Event
from shipper.sinks.base import Rejected, Sink, TransientError
from shipper.sinks.delivery import Outcome, Retry
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
from shipper.templates import TemplateError, check_template, compile_template, event_context
from shipper.uri import UsageError, choice, parse_bool, parse_positive_int

log = logging.getLogger(__name__)

DEFAULT_EXCHANGE = "heapster-events"  # kube-eventer's


def parse_port(text: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise ValueError("expected a port, 1-65535")
    return port


parse_port.__name__ = "port"


@dataclass(frozen=True, kw_only=True)
class RabbitMQOptions(SinkOptions, LayoutOption, TLSTrust, ClientCert, ClusterName, Timeout):
    DEFAULTS = {"timeout": 30.0}

    host: str = option("localhost", "Broker host.")
    port: int | None = option(None, "Broker port (5672; 5671 with TLS).", parse=parse_port)
    username: str = option("guest", "User.", aliases=("user",))
    password: str = option("guest", "Password: password_file=/path or password=$VAR.", secret=True)  # fmt: skip
    vhost: str = option("/", "Virtual host.", aliases=("virtual_host",))
    exchange: str = option(DEFAULT_EXCHANGE, "Exchange the messages go to (kube-eventer's eventstopic).", aliases=("eventstopic", "eventtopic", "topic"))  # fmt: skip
    exchange_type: str = option("topic", "Type of the exchange declared at start.", parse=choice("topic", "direct", "fanout", "headers"))  # fmt: skip
    declare: bool = option(True, "Declare the exchange (durable) at start; false: it must exist.", parse=parse_bool)  # fmt: skip
    routing_key: str = option("#", "Routing key, a Go template over the event (default #, kube-eventer's).")  # fmt: skip
    mandatory: bool = option(True, "Publish mandatory: a message no queue takes is returned and dead-lettered (false: the broker drops it).", parse=parse_bool)  # fmt: skip
    metricstopic: str | None = option(None, "kube-eventer's metrics topic: accepted and ignored (events only).", aliases=("metricsTopic", "timeseriestopic"))  # fmt: skip
    tls: bool | None = option(None, "TLS (AMQPS); default: on when ca_file, cert_file/key_file or insecure is given.", parse=parse_bool)  # fmt: skip
    heartbeat: int = option(30, "Heartbeat interval, seconds.", parse=parse_positive_int)


class RabbitMQSink(Sink):
    accepts_audit = True  # the audit document as it is (a layout is for Events)
    scheme = "rabbitmq"
    Options = RabbitMQOptions
    options: RabbitMQOptions
    summary = "RabbitMQ (AMQP 0-9-1): persistent JSON messages, publisher confirms, mandatory"
    usage = "rabbitmq:?host=HOST&port=5672&username=U&password=P&exchange=EXCHANGE"
    example = "rabbitmq:?host=rabbitmq&username=shipper&password_file=/s/pw&exchange=kube-events"
    guarantee = (
        "at least once per event version (publisher confirms, persistent messages): a confirm"
        " lost with the connection, a crash and --start=all may send a version again, with the"
        " same message_id (<uid>.<count>); a message no queue takes is dead-lettered"
    )
    default_batch_size = 500
    default_flush_interval = 0.5

    connection: Any = None
    channel: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o = self.options
        self.where = where = f"--sink {self.scheme}"
        if self.uri.rest:
            raise UsageError(
                f"{where}: unexpected {self.uri.rest!r}; expected rabbitmq:?host=HOST&port=5672..."
            )
        if o.metricstopic is not None:
            log.warning(
                "Sink %s: metricsTopic=%s is ignored: kube-event-shipper ships events only.",
                self.scheme, o.metricstopic,
            )  # fmt: skip
        check_readable(o, where, "ca_file", "cert_file", "key_file")
        if bool(o.cert_file) != bool(o.key_file):
            raise UsageError(f"{where}: give cert_file and key_file together")
        implied = bool(o.ca_file or o.cert_file or o.insecure)
        if o.tls is False and implied:
            raise UsageError(f"{where}: tls=false, but ca_file, cert_file or insecure given")
        self.tls = bool(o.tls) or implied
        self.port = o.port or (5671 if self.tls else 5672)
        self._ssl: ssl.SSLContext | None = None
        if self.tls:
            try:
                self._ssl = ssl.create_default_context(cafile=o.ca_file)
                if o.insecure:
                    self._ssl.check_hostname = False
                    self._ssl.verify_mode = ssl.CERT_NONE
                if o.cert_file:
                    self._ssl.load_cert_chain(o.cert_file, o.key_file)
            except (OSError, ssl.SSLError) as exc:
                raise UsageError(
                    f"{where}: cannot use ca_file, cert_file or key_file: {exc}"
                ) from None
        try:
            self.routing = compile_template(o.routing_key, name=f"{where}: parameter routing_key")
            check_template(self.routing)
        except TemplateError as exc:
            raise UsageError(str(exc)) from None
        self.fixed_key = o.routing_key if "{{" not in o.routing_key else None
        if len((self.fixed_key or "").encode()) > 255:
            raise UsageError(f"{where}: parameter routing_key: longer than 255 bytes")
        self.cluster = o.cluster_name or self.ctx.cluster

    def target(self) -> str:
        vhost = "" if self.options.vhost == "/" else self.options.vhost
        return f"amqp{'s' if self.tls else ''}://{self.options.host}:{self.port}/{vhost}"

    def describe(self) -> str:
        return (
            f"rabbitmq {self.target()} exchange={self.options.exchange or '(default)'}"
            f" user {self.options.username}"
        )

    # -- the connection

    def parameters(self) -> Any:
        import pika

        o = self.options
        return pika.ConnectionParameters(
            host=o.host,
            port=self.port,
            virtual_host=o.vhost,
            credentials=pika.PlainCredentials(o.username, o.password),
            ssl_options=pika.SSLOptions(self._ssl, o.host) if self._ssl else None,
            heartbeat=o.heartbeat,
            blocked_connection_timeout=o.timeout,
            socket_timeout=min(o.timeout, 10.0),
            stack_timeout=o.timeout,
            connection_attempts=1,
        )

    def open(self) -> None:
        if self.channel is not None and self.channel.is_open:
            return
        import pika

        self._drop()
        quiet_pika()
        o = self.options
        try:
            self.connection = pika.BlockingConnection(self.parameters())
            self.channel = self.connection.channel()
            if o.declare and o.exchange:
                self.channel.exchange_declare(o.exchange, o.exchange_type, durable=True)
            self.channel.confirm_delivery()
        except Exception as exc:
            self._drop()
            raise TransientError(self._explain(exc)) from None
        log.info(
            "Sink %s: connected to %s, exchange %s, publisher confirms.",
            o.name or self.scheme, self.target(), o.exchange or "(default)",
        )  # fmt: skip

    def _explain(self, exc: BaseException) -> str:
        from pika import exceptions as e

        where = f"rabbitmq {self.target()}"
        user = self.options.username
        if isinstance(exc, e.ProbableAuthenticationError | e.AuthenticationError):
            return f"{where}: authentication failed (user {user!r}): check username and password"
        if isinstance(exc, e.ProbableAccessDeniedError):
            return f"{where}: access refused to vhost {self.options.vhost!r} for user {user!r}"
        if isinstance(exc, e.ConnectionClosedByBroker | e.ChannelClosedByBroker):
            text = f"{exc.reply_code} {exc.reply_text}"
            if exc.reply_code == 406 and "exchange" in exc.reply_text:
                text += " (the exchange exists with other settings: declare=false uses it as is)"
            if exc.reply_code == 404:
                text += " (declare=true creates the exchange)"
            return f"{where}: {text}"
        if isinstance(exc, e.AMQPConnectionError) and exc.args:
            inner = exc.args[0]
            while isinstance(getattr(inner, "exception", None), BaseException):
                inner = inner.exception  # pika wraps the socket's error twice
            if isinstance(inner, BaseException):
                return f"{where}: cannot connect ({_words(inner)})"
        return f"{where}: {_words(exc)}"

    def _drop(self) -> None:
        connection, self.connection, self.channel = self.connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except Exception as exc:  # a connection that broke is gone anyway
                log.debug("Sink %s: closing: %r", self.scheme, exc)

    # -- writing

    def properties(self, event: Event) -> Any:
        import pika

        headers = {
            "uid": event.uid,
            "resource_version": event.resource_version,
            "reason": event.reason,
            "namespace": event.object_namespace or event.namespace or "",
            "kind": event.object_kind or "",
            "name": event.object_name or "",
        }
        if self.cluster:
            headers["cluster"] = self.cluster
        return pika.BasicProperties(
            content_type="application/json",
            delivery_mode=2,
            message_id=f"{event.uid}.{event.count}",
            timestamp=_seconds(event.timestamp),
            type=event.type,
            app_id="kube-event-shipper",
            headers=headers,
        )

    def body(self, event: Event) -> bytes:
        if self.options.layout is not None:
            return self.options.layout.encode(event, self.cluster)
        document = event.document()
        if self.cluster:
            document["orchestrator"]["cluster"] = {"name": self.cluster}
        return orjson.dumps(document)

    def routing_key(self, event: Event) -> str:
        if self.fixed_key is not None:
            return self.fixed_key
        key = self.routing.render(event_context(event, self.cluster))
        if len(key.encode()) > 255:
            raise TemplateError(f"routing_key rendered to {len(key.encode())} bytes (max 255)")
        return key

    def write(self, events: Sequence[Event]) -> Outcome:
        from pika import exceptions as e

        self.open()
        o = self.options
        rejected: list[Rejected] = []
        for index, event in enumerate(events):
            try:
                key = self.routing_key(event)
                body = self.body(event)
            except TemplateError as exc:
                rejected.append(Rejected(index, str(exc)))
                continue
            try:
                self.channel.basic_publish(
                    o.exchange, key, body, self.properties(event), mandatory=o.mandatory
                )
            except e.UnroutableError:
                rejected.append(Rejected(index, (
                    f"RabbitMQ returned the message: no queue is bound to exchange"
                    f" {o.exchange or '(default)'!r} for routing key {key!r}"
                )))  # fmt: skip
            except e.NackError:
                reason = f"{self.target()}: the broker refused (nack) the message; retrying"
                return Outcome(tuple(rejected), _retry(index, len(events), reason))
            except Exception as exc:  # the connection or the channel is gone
                reason = self._explain(exc)
                self._drop()
                return Outcome(tuple(rejected), _retry(index, len(events), reason))
        return Outcome(rejected=tuple(rejected))

    def close(self) -> None:
        self._drop()


def quiet_pika() -> None:
    """pika logs every connection step at INFO and each broken socket with a traceback; the
    sink reports failures itself, once per attempt (pika's own log shows with --log-level=debug)."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("pika").setLevel(logging.CRITICAL)


def _retry(start: int, end: int, reason: str) -> tuple[Retry, ...]:
    return Outcome.retry_all(range(start, end), reason)


def _seconds(timestamp: str) -> int:
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def _words(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    return (f"{name}: {text}" if text and text != name else name)[:300]

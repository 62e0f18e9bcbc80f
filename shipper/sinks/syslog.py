"""``syslog:tcp://HOST:514``: one RFC 5424 message per event version, over UDP, TCP or TLS.

URI (the transport in front of the address; ``network`` and ``address`` as separate parameters
work too, as kubernetes-event-exporter's receiver spells them)::

    syslog:udp://syslog.example:514
    syslog:tcp://syslog.example:514?facility=local3&app_name=k8s.event
    syslog:tls://syslog.example:6514?ca_file=/s/ca.pem&cert_file=/s/c.pem&key_file=/s/k.pem
    syslog:?network=tcp&address=127.0.0.1:11514&tag=k8s.event

Config file, kubernetes-event-exporter's receiver as written::

    receivers:
      - name: syslog
        syslog: {network: tcp, address: "127.0.0.1:11514", tag: k8s.event}

The message (RFC 5424; one per event version)::

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [event@32473 ...] BOM MSG

    PRI        facility * 8 + severity. facility: local0 by default (the original's); severity
               from the event's type: Warning -> 4 (warning), Normal -> 6 (informational).
               Informational, not notice (5): most Normal events are routine (Scheduled, Pulled,
               Created, Started), which is RFC 5424's "informational messages"; notice is
               "normal but significant", and a collector that keeps notice and up would be
               flooded. (The original sent every event as local0.emerg: Go's syslog.Dial with
               LOG_LOCAL0 and severity 0.)
    TIMESTAMP  when the event last happened (RFC 3339, UTC, microseconds)
    HOSTNAME   hostname=, by default this machine's (the pod's) name
    APP-NAME   app_name= (the original's tag), kube-event-shipper by default; 48 characters
    MSGID      the event's reason (32 printable ASCII characters at most; others become _)
    SD         [event@32473 version="<uid>.<count>" uid=... resourceVersion=... type=...
               namespace=... kind=... name=... count=... cluster=...]: ``version`` is the same
               for every copy of one event version: a consumer drops repeats by it. The SD-ID
               uses 32473, the enterprise number RFC 5612 reserves for examples; give your own
               with sd_id=name@<your PEN>.
    MSG        the event document as ``log`` prints it (README: The event document), or the
               body of ``layout``; UTF-8, after a BOM as RFC 5424 asks (bom=false leaves it out
               for collectors that keep it in the message text)

Framing: UDP sends one message per datagram (RFC 5426); TCP and TLS use octet counting (RFC 6587
3.4.1, RFC 5425: ``LENGTH SP MESSAGE``), so a message may hold line feeds. A message longer than
``max_size`` bytes (default 2048 on UDP, RFC 5426's safe size; 8192 on TCP and TLS, rsyslog's
default maxMessageSize) has its MSG cut on a character boundary and ends with
``...[truncated]``; the header and the structured data are never cut.

Writes: TCP and TLS keep one connection and send a batch in one write. Before and after each
batch the sink looks for the server's close (a syslog server never writes to its clients, so
anything to read is a close or a reset): a broken connection is closed, the whole batch is
retried with backoff on a new connection, and ``sink_up`` is 0 until one succeeds. A refused
connection, a TLS handshake that fails (certificate, name) or a timeout is one log line per try.
A syslog server never refuses one message (the protocol has no answer); what can refuse one
event is its ``layout``, and that event alone is dead-lettered.

Guarantee: UDP: none, at most once: a datagram lost on the way, or sent while the server is down,
is gone (nothing tells the sender). TCP and TLS: at least once for what the sink can see: a
connection refused or broken before or after a batch means the whole batch is sent again, so a
server may receive a message twice; deduplicate on ``version`` in the structured data. Syslog
over TCP has no acknowledgement: a server that dies with messages unread in its socket buffer,
after the sink's check, loses them (RELP would be needed to close that gap). A crash of the
shipper and ``--start=all`` send versions again, with the same ``version``. Every version is
sent: the original's ``sentUpdateEvent`` (it skipped count updates unless set) is accepted and
has no effect.
"""

from __future__ import annotations

import contextlib
import logging
import re
import select
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from shipper.event import Event
from shipper.sinks.base import Rejected, Sink, TransientError
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
from shipper.templates import TemplateError
from shipper.uri import UsageError, choice, parse_bool

log = logging.getLogger(__name__)

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14,
    "solaris-cron": 15, **{f"local{i}": 16 + i for i in range(8)},
}  # fmt: skip
SEVERITY = {"Warning": 4, "Normal": 6}  # warning, informational (see the module docstring)
DEFAULT_PORTS = {"udp": 514, "tcp": 514, "tls": 6514}
DEFAULT_MAX = {"udp": 2048, "tcp": 8192, "tls": 8192}
MARKER = b"...[truncated]"
BOM = "\ufeff".encode()
NETWORKS = {"udp": "udp", "udp4": "udp", "udp6": "udp", "tcp": "tcp", "tcp4": "tcp",
            "tcp6": "tcp", "tls": "tls", "tcp+tls": "tls"}  # fmt: skip
_SD_NAME = re.compile(r"[!-~]{1,32}")


def parse_facility(text: str) -> int:
    text = text.strip().lower()
    if text.isdigit() and 0 <= int(text) <= 23:
        return int(text)
    if text in FACILITIES:
        return FACILITIES[text]
    raise ValueError("expected a facility name (kern, user, daemon, local0 ... local7) or 0-23")


parse_facility.__name__ = "facility"


def parse_sd_id(text: str) -> str:
    if not _SD_NAME.fullmatch(text) or any(c in text for c in '= ]"') or "@" not in text:
        raise ValueError("expected NAME@ENTERPRISE-NUMBER, e.g. event@32473")
    return text


def parse_max_size(text: str) -> int:
    value = int(text)
    if value < 480:
        raise ValueError("expected at least 480 (RFC 5426's smallest size)")
    return value


parse_max_size.__name__ = "bytes"


def printable(text: str, limit: int) -> str:
    """RFC 5424's PRINTUSASCII field of at most ``limit`` characters, ``-`` if empty."""
    cleaned = "".join(c if "!" <= c <= "~" else "_" for c in text)[:limit]
    return cleaned or "-"


def sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


@dataclass(frozen=True, kw_only=True)
class SyslogOptions(SinkOptions, LayoutOption, TLSTrust, ClientCert, ClusterName, Timeout):
    REST = "address"
    IGNORED = {
        "sentUpdateEvent": "every event version is sent, each with its version in the structured"
        " data to deduplicate on",
    }
    DEFAULTS = {"timeout": 10.0}

    network: str | None = option(None, "udp, tcp or tls (the original's tcp/udp spellings too); default: from the address, else udp.", parse=choice(*NETWORKS), exporter="network")  # fmt: skip
    address: str | None = option(None, "HOST:PORT of the server (or give it as the URI's rest: syslog:tcp://HOST:PORT).")  # fmt: skip
    facility: int = option(16, "Facility: a name (local0 ... local7, daemon, user ...) or 0-23; local0 by default, as the original.", parse=parse_facility)  # fmt: skip
    app_name: str = option("kube-event-shipper", "APP-NAME (48 printable ASCII characters).", aliases=("tag", "appname"), exporter="tag")  # fmt: skip
    hostname: str | None = option(None, "HOSTNAME field (default: this machine's name).")
    sd_id: str = option("event@32473", "SD-ID of the structured data (NAME@YOUR-ENTERPRISE-NUMBER).", parse=parse_sd_id)  # fmt: skip
    max_size: int | None = option(None, "Longest message in bytes; longer ones have their MSG cut (default 2048 on UDP, 8192 on TCP/TLS).", parse=parse_max_size)  # fmt: skip
    bom: bool = option(True, "Start MSG with the UTF-8 BOM, as RFC 5424 asks.", parse=parse_bool)


class SyslogSink(Sink):
    accepts_audit = True  # the audit document as it is (a layout is for Events)
    scheme = "syslog"
    receiver = "syslog"
    Options = SyslogOptions
    options: SyslogOptions
    summary = "RFC 5424 syslog over UDP, TCP or TLS (octet counting); severity from the type"
    usage = "syslog:tcp://HOST:514 (or udp://, tls://HOST:6514)"
    example = "syslog:tls://syslog.example:6514?ca_file=/etc/ssl/syslog-ca.pem&facility=local3"
    guarantee = (
        "UDP: none (at most once). TCP/TLS: at least once for failures the sink sees (a refused"
        " or broken connection resends the whole batch), with version=<uid>.<count> in the"
        " structured data to deduplicate on; a server that dies with unread messages loses them"
    )
    default_batch_size = 500
    default_flush_interval = 0.5

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o = self.options
        where = f"--sink {self.scheme}"
        rest = self.uri.rest
        network = NETWORKS[o.network.lower()] if o.network else None
        if "://" in rest:
            proto, _, rest = rest.partition("://")
            if proto.lower() not in NETWORKS:
                raise UsageError(f"{where}: {proto!r}: expected udp://, tcp:// or tls://")
            if network and network != NETWORKS[proto.lower()]:
                raise UsageError(f"{where}: network={o.network} but the address says {proto}://")
            network = NETWORKS[proto.lower()]
        rest = rest.removeprefix("//").rstrip("/")
        if rest and o.address:
            raise UsageError(f"{where}: give the address once (in the URI or as address=)")
        address = rest or o.address or ""
        if o.ca_file or o.cert_file or o.insecure:
            network = network or "tls"
        self.network = network or "udp"
        if not address:
            raise UsageError(f"{where}: no address given; expected syslog:tcp://HOST:PORT")
        self.host, self.port = self._split(address, where)
        check_readable(o, where, "ca_file", "cert_file", "key_file")
        if bool(o.cert_file) != bool(o.key_file):
            raise UsageError(f"{where}: give cert_file and key_file together")
        if self.network != "tls" and (o.ca_file or o.cert_file or o.insecure):
            raise UsageError(f"{where}: ca_file, cert_file and insecure need tls")
        self._ssl: ssl.SSLContext | None = None
        if self.network == "tls":
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
        self.max_size = o.max_size or DEFAULT_MAX[self.network]
        self.cluster = o.cluster_name or self.ctx.cluster
        self.app_name = printable(o.app_name, 48)
        self.hostname = printable(o.hostname or socket.gethostname(), 255)
        self.sock: Any = None

    @staticmethod
    def _split(address: str, where: str) -> tuple[str, int]:
        host, port = address, ""
        if address.startswith("["):
            inside, _, tail = address[1:].partition("]")
            host, port = inside, tail.removeprefix(":")
        elif address.count(":") == 1:
            host, _, port = address.partition(":")
        if not host or "/" in host or (port and (not port.isdigit() or not 0 < int(port) < 65536)):
            raise UsageError(f"{where}: address {address!r}: expected HOST:PORT")
        return host, int(port) if port else 0

    @property
    def port_or_default(self) -> int:
        return self.port or DEFAULT_PORTS[self.network]

    def target(self) -> str:
        return f"{self.network}://{self.host}:{self.port_or_default}"

    def describe(self) -> str:
        return f"syslog {self.target()}"

    # -- the message

    def message(self, event: Event) -> bytes:
        """One RFC 5424 message (no framing); raises TemplateError if the layout fails."""
        pri = self.options.facility * 8 + SEVERITY.get(event.type, 6)
        params = [
            ("version", f"{event.uid}.{event.count}"),
            ("uid", event.uid),
            ("resourceVersion", event.resource_version),
            ("type", event.type),
            ("namespace", event.object_namespace or event.namespace or ""),
            ("kind", event.object_kind or ""),
            ("name", event.object_name or ""),
            ("count", str(event.count)),
        ]
        if self.cluster:
            params.append(("cluster", self.cluster))
        sd = "[" + self.options.sd_id + "".join(f' {k}="{sd_escape(v)}"' for k, v in params) + "]"
        head = (
            f"<{pri}>1 {event.timestamp} {self.hostname} {self.app_name} -"
            f" {printable(event.reason, 32)} {sd} "
        ).encode()
        if self.options.layout is not None:
            body = self.options.layout.encode(event, self.cluster)
        else:
            document = event.document()
            if self.cluster:
                document["orchestrator"]["cluster"] = {"name": self.cluster}
            body = orjson.dumps(document)
        if self.options.bom:
            body = BOM + body
        room = self.max_size - len(head)
        if len(body) > room:
            cut = body[: max(0, room - len(MARKER))]
            body = cut.decode("utf-8", errors="ignore").encode() + MARKER
        return head + body

    # -- the connection

    def open(self) -> None:
        if self.network == "udp":
            if self.sock is None:
                family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
                try:
                    self.addr = socket.getaddrinfo(
                        self.host, self.port_or_default, family, socket.SOCK_DGRAM
                    )[0][4]
                except OSError as exc:
                    raise TransientError(f"syslog {self.target()}: {_words(exc)}") from None
                self.sock = socket.socket(family, socket.SOCK_DGRAM)
            return
        if self.sock is not None:
            return
        timeout = self.options.timeout
        try:
            raw = socket.create_connection((self.host, self.port_or_default), timeout=timeout)
        except OSError as exc:
            raise TransientError(
                f"syslog {self.target()}: cannot connect ({_words(exc)})"
            ) from None
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._ssl is None:
            self.sock = raw
        else:
            try:
                self.sock = self._ssl.wrap_socket(raw, server_hostname=self.host)
            except (OSError, ssl.SSLError) as exc:
                raw.close()
                raise TransientError(
                    f"syslog {self.target()}: TLS handshake failed ({_words(exc)})"
                ) from None
        log.info("Sink %s: connected to %s.", self.options.name or self.scheme, self.target())

    def _alive(self) -> bool:
        """False if the server has closed or reset the stream (it never writes to us)."""
        sock = self.sock
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        if not readable:
            return True
        try:
            sock.setblocking(False)
            try:
                data = sock.recv(1)
            finally:
                sock.setblocking(True)
                sock.settimeout(self.options.timeout)
        except ssl.SSLWantReadError:  # a TLS record that is not data (a session ticket)
            return True
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        return bool(data)

    def _drop(self) -> None:
        if self.sock is not None:
            sock, self.sock = self.sock, None
            with contextlib.suppress(OSError):
                sock.close()

    def write(self, events: Sequence[Event]) -> Sequence[Rejected]:
        rejected: list[Rejected] = []
        messages: list[bytes] = []
        for index, event in enumerate(events):
            try:
                messages.append(self.message(event))
            except TemplateError as exc:
                rejected.append(Rejected(index, f"the layout failed: {exc}"))
        if self.network == "udp":
            self.open()
            try:
                for data in messages:
                    self.sock.sendto(data, self.addr)
            except OSError as exc:
                self._drop()
                raise TransientError(f"syslog {self.target()}: {_words(exc)}") from None
            return rejected
        if self.sock is not None and not self._alive():
            log.info("Sink %s: %s closed the connection; reconnecting.", self.options.name or self.scheme, self.target())  # fmt: skip
            self._drop()
        self.open()
        payload = b"".join(b"%d %s" % (len(m), m) for m in messages)
        try:
            self.sock.sendall(payload)
        except (OSError, ssl.SSLError) as exc:
            self._drop()
            raise TransientError(
                f"syslog {self.target()}: the connection broke ({_words(exc)}); the batch is"
                " sent again"
            ) from None
        if not self._alive():
            self._drop()
            raise TransientError(
                f"syslog {self.target()}: the server closed the connection during the batch;"
                " the batch is sent again"
            )
        return rejected

    def close(self) -> None:
        if self.sock is not None and self._ssl is not None:
            try:
                self.sock.settimeout(2.0)
                self.sock.unwrap()  # close_notify: the server reads to the end of the stream
            except (OSError, ssl.SSLError, ValueError):
                pass
        self._drop()


def _words(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror})"
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return " ".join(text.split())[:300] or type(exc).__name__

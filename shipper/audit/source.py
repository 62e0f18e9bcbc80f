"""The ``audit:`` source: the kube-apiserver's audit webhook, shipped like Events.

``--source=audit:?listen=:8443&cert=tls.crt&key=tls.key&clientCA=ca.crt[&tokenFile=token]``

Given next to the kubernetes source (``--source`` is repeatable), one process ships both. The
flow: webhook (shipper/audit/webhook.py) → spool (shipper/audit/spool.py, fsynced before the
200) → this reader → the same router, per-sink queues and sinks as Events. Each audit event is
an :class:`~shipper.audit.record.AuditEvent` (``event.dataset: kubernetes.audit``); only sinks
that keep audit documents get them (``kube-event-shipper sinks`` says which), filtered by
their own ``documents`` and filter parameters.

The checkpoint keeps the spool position of the ``audit`` stream: how far every sink has
written. A restart ships from there; segments behind it are deleted. See docs/audit.md for
the API server's flags and what it does when we ask it to retry.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson

from shipper.audit.record import NotAnAuditEvent, from_record
from shipper.audit.spool import Position, Record, Spool
from shipper.audit.webhook import AuditWebhook, TokenFile
from shipper.event import utc_now
from shipper.health import parse_listen
from shipper.tls import TLSFileError
from shipper.uri import Param, Uri, UsageError, resolve_params

log = logging.getLogger(__name__)

STREAM = "audit"
_RELEASE_EVERY = 1.0  # seconds between deletions of shipped segments


def is_audit(source: str) -> bool:
    return source.partition(":")[0] == "audit"


_SIZE_UNITS = {
    "": 1, "k": 1000, "kb": 1000, "ki": 1024, "m": 1000**2, "mb": 1000**2, "mi": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gi": 1024**3,
}  # fmt: skip


def parse_size(text: str) -> int:
    """Bytes: ``268435456``, ``256Mi``, ``1Gi``, ``500MB``."""
    stripped = text.strip()
    digits = stripped.rstrip("kKmMgGiIbB")
    unit = stripped[len(digits) :].lower()
    if not digits or unit not in _SIZE_UNITS:
        raise ValueError("expected a size such as 256Mi, 1Gi or 500MB")
    value = int(float(digits) * _SIZE_UNITS[unit])
    if value < 1024 * 1024:
        raise ValueError("expected at least 1Mi")
    return value


AUDIT_PARAMS: tuple[Param, ...] = (
    Param("listen", parse_listen, ("0.0.0.0", 8443), "Address of the webhook, HOST:PORT or :PORT."),
    Param(
        "cert",
        str,
        None,
        "The webhook's TLS certificate (PEM); required.",
        aliases=("cert_file", "tlsCert"),
    ),
    Param(
        "key",
        str,
        None,
        "Its private key (PEM; default: in the cert file).",
        aliases=("key_file", "tlsKey"),
    ),
    Param(
        "clientCA",
        str,
        None,
        "Accept API servers presenting a client certificate signed by this CA.",
        aliases=("client_ca", "clientCAFile"),
    ),
    Param(
        "tokenFile",
        str,
        None,
        "Accept API servers presenting this file's bearer token (re-read when it changes).",
        aliases=("token_file",),
    ),
    Param("path", str, "/", "URL path the API server posts to."),
    Param(
        "spoolSize",
        parse_size,
        256 * 1024**2,
        "Most bytes kept in the spool; past it the webhook asks the API server to retry (429).",
    ),
    Param("maxBatch", parse_size, 64 * 1024**2, "Largest batch body accepted (413 above)."),
)


@dataclass(frozen=True)
class AuditSourceSettings:
    listen: tuple[str, int]
    cert: str
    key: str | None
    client_ca: str | None
    token_file: str | None
    path: str
    spool_size: int
    max_batch: int

    @classmethod
    def from_uri(cls, text: str, daemon: Any = None) -> AuditSourceSettings:
        uri = Uri.parse(text, what="--source")
        where = "--source audit"
        if uri.rest:
            raise UsageError(f"{where}: unexpected {uri.rest!r}; parameters go after '?'")
        if daemon is not None and daemon.leader_elect:
            raise UsageError(
                f"{where}: --leader-elect: the API server posts to one replica, whose spool"
                " only it can ship; run the audit source in a single replica (docs/audit.md)"
            )
        if daemon is not None and not daemon.state_dir:
            raise UsageError(f"{where}: the spool needs --state-dir (a volume that survives)")
        options, _ = resolve_params(AUDIT_PARAMS, uri.query, where=where)
        if not options["cert"]:
            raise UsageError(f"{where}: parameter cert: the webhook serves TLS; give its cert")
        if not options["clientCA"] and not options["tokenFile"]:
            raise UsageError(
                f"{where}: give clientCA (client certificates) or tokenFile (a bearer token):"
                " the webhook never takes unauthenticated batches"
            )
        path = options["path"] if options["path"].startswith("/") else "/" + options["path"]
        return cls(
            listen=options["listen"],
            cert=options["cert"],
            key=options["key"],
            client_ca=options["clientCA"],
            token_file=options["tokenFile"],
            path=path,
            spool_size=options["spoolSize"],
            max_batch=min(options["maxBatch"], options["spoolSize"]),
        )

    def describe(self) -> str:
        host, port = self.listen
        auth = " or ".join(
            name
            for name, on in (("client certificates", self.client_ca), ("a token", self.token_file))
            if on
        )
        return f"kube-apiserver audit webhook on https://{host}:{port}{self.path} ({auth})"

    def server_context(self) -> ssl.SSLContext:
        """The webhook's TLS context; a file that cannot be used is a UsageError naming it."""
        where = "--source audit: parameter"
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert, self.key or None, password=_no_password)
        except TLSFileError:
            raise
        except (OSError, ssl.SSLError) as exc:
            which = "key" if self.key and not os.access(self.key, os.R_OK) else "cert"
            raise UsageError(
                f"{where} {which}: cannot load {self.cert!r} with key"
                f" {self.key or self.cert!r} ({_reason(exc)})"
            ) from None
        if self.client_ca:
            try:
                context.load_verify_locations(cafile=self.client_ca)
            except (OSError, ssl.SSLError) as exc:
                raise UsageError(
                    f"{where} clientCA: no CA certificate could be read from {self.client_ca!r}"
                    f" ({_reason(exc)})"
                ) from None
            # A token is the other way in: with one, a client may come without a certificate.
            context.verify_mode = ssl.CERT_OPTIONAL if self.token_file else ssl.CERT_REQUIRED
        return context


def _no_password() -> str:
    raise UsageError("--source audit: parameter key: the key is encrypted; give one that is not")


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return (
        text.split(" (_ssl.c:")[0]
        if isinstance(exc, ssl.SSLError)
        else (getattr(exc, "strerror", None) or text)
    )


class AuditSource:
    """Serves the webhook and ships the spool; ``run_stream(STREAM)`` is the reader thread."""

    streams = (STREAM,)

    def __init__(
        self,
        settings: AuditSourceSettings,
        state_dir: str,
        ledger: Any,
        dispatch: Any,
        metrics: Any,
        *,
        cluster: str = "",
    ) -> None:
        self.settings, self.ledger, self.dispatch = settings, ledger, dispatch
        self.metrics, self.cluster = metrics, cluster
        self.stop_event = threading.Event()
        token = None
        if settings.token_file:
            try:
                token = TokenFile(settings.token_file)
            except (OSError, ValueError) as exc:
                raise UsageError(
                    f"--source audit: parameter tokenFile: cannot read {settings.token_file!r}"
                    f" ({getattr(exc, 'strerror', None) or exc})"
                ) from None
        context = settings.server_context()
        self.spool = Spool(os.path.join(state_dir, "audit-spool"), settings.spool_size)
        try:
            self.webhook = AuditWebhook(
                settings.listen,
                context,
                self.spool,
                path=settings.path,
                token=token,
                client_certificates=bool(settings.client_ca),
                max_body=settings.max_batch,
                metrics=metrics,
            )
        except OSError as exc:
            self.spool.close()
            host, port = settings.listen
            raise UsageError(
                f"--source audit: parameter listen: cannot listen on {host}:{port} ({exc.strerror})"
            ) from None
        self._last_release = 0.0

    @property
    def ready(self) -> bool:
        return self.webhook.thread.is_alive()

    def start(self) -> None:
        """Listen: the webhook takes batches from now on, even before the sinks are up."""
        self.webhook.start()
        self._update_spool_metric()
        host, _ = self.settings.listen
        port, path = self.webhook.port, self.settings.path
        log.info("Audit webhook listening on https://%s:%d%s.", host, port, path)

    def stop(self) -> None:
        # From SIGTERM on, batches are answered 429: the API server sends them again, to the
        # replica that replaces this one (a Pod's emptyDir spool goes with the Pod).
        self.webhook.accepting = False
        self.stop_event.set()
        self.dispatch.stop_event.set()

    def close(self) -> None:
        self.webhook.stop()
        self.spool.close()

    # -- the reader

    def run_stream(self, stream: str) -> None:
        start = Position.parse(self.ledger.position(STREAM))
        for record in self.spool.read(start, self.stop_event, idle=self._release_shipped):
            if not self._ship(record, start):
                return
            self._release_shipped()
        self._release_shipped(force=True)

    def _ship(self, record: Record, start: Position | None) -> bool:
        skip = 0
        if start is not None and (record.segment, record.offset) == (start.segment, start.offset):
            skip = start.skip  # resuming inside this batch: its first events were shipped
        events = self._events(record)
        items: list[tuple[Any, str | None]] = []
        last = len(events) - 1
        for index, event in enumerate(events):
            if index < skip:
                continue
            position = (
                Position(record.segment, record.end)
                if index == last
                else Position(record.segment, record.offset, index + 1)
            )
            items.append((event, str(position)))
        if not items:
            self.ledger.mark(STREAM, str(Position(record.segment, record.end)))
            return True
        return self.dispatch.positional(STREAM, items)

    def _events(self, record: Record) -> list[Any]:
        try:
            items = orjson.loads(record.payload).get("items") or []
        except (orjson.JSONDecodeError, AttributeError):
            items = []  # the webhook spools only EventLists; a damaged one is skipped
        now = utc_now()
        events = []
        for item in items:
            try:
                events.append(from_record(item, self.cluster, now))
            except NotAnAuditEvent as exc:
                self.metrics.audit_invalid.inc()
                log.warning("Skipping an item of an audit batch: %s.", exc)
        return events

    def _release_shipped(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_release < _RELEASE_EVERY:
            return
        self._last_release = now
        self.spool.release(Position.parse(self.ledger.position(STREAM)))
        self._update_spool_metric()

    def _update_spool_metric(self) -> None:
        self.metrics.audit_spool_bytes.set(self.spool.size())

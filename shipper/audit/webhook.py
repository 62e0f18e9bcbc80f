"""The audit webhook: the kube-apiserver POSTs ``audit.k8s.io/v1`` EventLists here over TLS.

Each request is authenticated (a client certificate signed by ``clientCA``, or the bearer
token in ``tokenFile``; either one is enough when both are set), checked to be an EventList,
written to the spool and fsynced, and only then answered 200: a batch we answered is on disk.

When the spool is full (the sinks are slower than the API server, or down) or the shipper is
stopping, the answer is ``429 Too Many Requests`` with ``Retry-After``: the API server's client
retries that request after the delay, and its audit backend retries the batch with backoff
(docs/audit.md says how long; past that, the API server drops the batch and logs it).
A body that is not an EventList is answered 400 and never spooled; it would never ship.
"""

from __future__ import annotations

import hmac
import logging
import os
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

import orjson

from shipper.audit.spool import Spool, SpoolFull
from shipper.health import _Server

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "RequestEntityTooLarge",
    429: "TooManyRequests",
    503: "ServiceUnavailable",
}


class TokenFile:
    """The bearer token the API server must present, re-read when the file changes (a mounted
    Secret is replaced by a new file on rotation)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._token = b""
        self.current()  # unreadable or empty: an error at start, not at the first request

    def current(self) -> bytes:
        stat = os.stat(self.path)
        stamp = (stat.st_mtime_ns, stat.st_ino)
        if stamp != self._stamp:
            with open(self.path, "rb") as handle:
                token = handle.read().strip()
            if not token:
                raise ValueError(f"tokenFile {self.path!r} is empty")
            self._token, self._stamp = token, stamp
        return self._token

    def matches(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        try:
            expected = self.current()
        except (OSError, ValueError) as exc:
            log.warning("audit webhook: cannot read the token file (%s); refusing.", exc)
            return False
        return hmac.compare_digest(header[len("Bearer ") :].strip().encode(), expected)


class AuditWebhook:
    """An HTTPS server in its own threads; :meth:`start` returns once it listens."""

    def __init__(
        self,
        address: tuple[str, int],
        context: ssl.SSLContext,
        spool: Spool,
        *,
        path: str = "/",
        token: TokenFile | None = None,
        client_certificates: bool = False,
        max_body: int = 64 * 1024 * 1024,
        metrics: Any = None,
    ) -> None:
        self.spool, self.path, self.token = spool, path, token
        self.client_certificates, self.max_body = client_certificates, max_body
        self.metrics = metrics
        self.accepting = True
        self.httpd = _WebhookServer(address, _handler(self))
        self.httpd.webhook = self
        # The TLS handshake happens in the request's thread (do_handshake_on_connect=False),
        # so a slow or broken client never holds up accept().
        self.httpd.socket = context.wrap_socket(
            self.httpd.socket, server_side=True, do_handshake_on_connect=False
        )
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.1,), name="audit-webhook", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Stop taking batches (answer 429 to what comes meanwhile), then close."""
        self.accepting = False
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- one request

    def authenticated(self, handler: BaseHTTPRequestHandler) -> bool:
        if self.client_certificates:
            connection = handler.connection
            if isinstance(connection, ssl.SSLSocket) and connection.getpeercert():
                return True  # verified against clientCA by the handshake
        if self.token is not None:
            return self.token.matches(handler.headers.get("Authorization"))
        return False

    def accept(self, body: bytes) -> tuple[int, str]:
        """Spool one batch: (status, reason)."""
        try:
            batch = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return 400, f"not JSON: {exc}"
        if not isinstance(batch, dict) or not isinstance(batch.get("items"), list):
            return 400, "expected an audit.k8s.io/v1 EventList (an object with items)"
        if batch.get("kind", "EventList") != "EventList":
            return 400, f"expected kind EventList, not {batch.get('kind')!r}"
        if not batch["items"]:
            return 200, "empty"
        if not self.accepting:
            return 429, "the shipper is stopping"
        try:
            self.spool.append(body)
        except SpoolFull as exc:
            self._count("full")
            log.warning("audit webhook: asking the API server to retry: %s.", exc)
            return 429, str(exc)
        except OSError as exc:
            self._count("error")
            log.error("audit webhook: cannot write the spool (%s); asking for a retry.", exc)
            return 503, "the spool cannot be written"
        self._count("accepted")
        if self.metrics is not None:
            self.metrics.audit_events_received.inc(len(batch["items"]))
        return 200, "spooled"

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.audit_batches.labels(outcome=outcome).inc()


#: Handshake failures that mean a client certificate was missing or not signed by clientCA
#: (counted as unauthorized), unlike a probe that connects and hangs up.
_CERTIFICATE_REFUSED = {
    "PEER_DID_NOT_RETURN_A_CERTIFICATE",
    "CERTIFICATE_VERIFY_FAILED",
    "TLSV1_ALERT_UNKNOWN_CA",
    "SSLV3_ALERT_BAD_CERTIFICATE",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
}


class _WebhookServer(_Server):
    webhook: AuditWebhook | None = None

    def handle_error(self, request: object, client_address: object) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ssl.SSLError):  # no certificate, a wrong CA, plain HTTP
            if exc.reason in _CERTIFICATE_REFUSED and self.webhook is not None:
                self.webhook._count("unauthorized")
            log.warning(
                "audit webhook: refused %s at the TLS handshake: %s.",
                client_address[0] if isinstance(client_address, tuple) else client_address,
                str(exc).split(" (_ssl.c:")[0],
            )
            return
        super().handle_error(request, client_address)


def _handler(webhook: AuditWebhook) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # the API server keeps its connection open

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != webhook.path:
                self._drain()
                self._reply(404, f"the audit webhook is at {webhook.path}")
                return
            if not webhook.authenticated(self):
                self._drain()
                webhook._count("unauthorized")
                log.warning(
                    "audit webhook: refused a request from %s: no client certificate signed by"
                    " clientCA and no valid bearer token.",
                    self.client_address[0],
                )
                self._reply(401, "unauthorized")
                return
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self._reply(411, "Content-Length required", close=True)
                return
            if int(length) > webhook.max_body:
                self._reply(413, f"a batch over {webhook.max_body} bytes", close=True)
                return
            body = self.rfile.read(int(length))
            status, reason = webhook.accept(body)
            if status == 400:
                webhook._count("rejected")
            self._reply(status, reason)

        def do_GET(self) -> None:
            self._reply(405, "POST audit.k8s.io/v1 EventLists here")

        def _drain(self) -> None:
            length = self.headers.get("Content-Length")
            if length and length.isdigit() and int(length) <= webhook.max_body:
                self.rfile.read(int(length))
            else:
                self.close_connection = True

        def _reply(self, status: int, reason: str, *, close: bool = False) -> None:
            # A metav1.Status: client-go reads its reason and retryAfterSeconds, the same as
            # the Retry-After header, to decide that the request is worth retrying.
            status_object: dict[str, Any] = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Success" if status == 200 else "Failure",
                "message": reason,
                "code": status,
            }
            if status in _REASONS:
                status_object["reason"] = _REASONS[status]
            if status in (429, 503):
                status_object["details"] = {"retryAfterSeconds": RETRY_AFTER_SECONDS}
            body = orjson.dumps(status_object)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if status in (429, 503):
                self.send_header("Retry-After", str(RETRY_AFTER_SECONDS))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("audit webhook: " + format, *args)

    return Handler

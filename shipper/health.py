"""``/healthz``, ``/readyz`` and ``/metrics`` on one small HTTP server.

``/healthz``: the process and its threads are alive (liveness). ``/readyz``: every watch stream is
established (readiness). ``/metrics``: Prometheus text format.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``:PORT`` (all interfaces)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError("expected HOST:PORT or :PORT, such as :8080 or 127.0.0.1:8080")
    return host.strip("[]") or "0.0.0.0", int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that went away before its answer (a probe that timed out, a scraper
        restarted, a process resumed after SIGSTOP) is not an error; anything else is one log
        line, not socketserver's traceback on stderr."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError):
            log.debug("http: %s went away before its answer.", client_address)
            return
        log.warning("http: answering %s failed: %s", client_address, exc)


class HealthServer:
    def __init__(
        self,
        address: tuple[str, int],
        registry: CollectorRegistry,
        alive: Callable[[], bool],
        ready: Callable[[], bool],
    ) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, generate_latest(server.registry), CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/livez"):
                    ok = server.alive()
                    self._reply(200 if ok else 503, b"ok\n" if ok else b"a worker died\n")
                elif path == "/readyz":
                    ok = server.ready()
                    self._reply(200 if ok else 503, b"ok\n" if ok else b"watch not established\n")
                else:
                    self._reply(404, b"try /healthz, /readyz or /metrics\n")

            def _reply(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("http: " + format, *args)

        self.registry, self.alive, self.ready = registry, alive, ready
        self.httpd = _Server(address, Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.1,), name="health", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

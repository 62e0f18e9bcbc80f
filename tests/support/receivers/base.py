"""The receivers' base: a threaded HTTP(S) server on 127.0.0.1 that records requests, lets a
test inject replies, counts the vendor's own rate windows, and notes format problems."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple[int, Any, dict[str, str]]  # status, body (dict -> JSON, str -> text), headers


class Window:
    """The vendor's own count: at most ``limit`` requests in any ``period`` seconds."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit, self.period, self.times = limit, period, deque[float]()

    def hit(self, now: float) -> bool:
        """Count a request; False if it is over the limit (it is not counted then)."""
        while self.times and self.times[0] <= now - self.period:
            self.times.popleft()
        if len(self.times) >= self.limit:
            return False
        self.times.append(now)
        return True


class Receiver:
    """Base: a threaded HTTP(S) server that records requests and lets ``route`` answer."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Request] = []
        self.messages: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.inject: list[Reply | tuple[int, Any]] = []  # answered before any check, in order
        self.windows: list[Window] = []
        self.refused_rate = 0
        self.delay = 0.0  # seconds to wait before answering (a slow vendor)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall

            def log_message(self, *args: Any) -> None:
                pass

            def handle_any(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                parts = urlsplit(self.path)
                request = Request(
                    self.command,
                    parts.path,
                    dict(parse_qsl(parts.query, keep_blank_values=True)),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.time(),
                )
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver.lock:
                    receiver.requests.append(request)
                    if receiver.inject:
                        status, payload, *extra = receiver.inject.pop(0)
                        headers = extra[0] if extra else {}
                    else:
                        status, payload, headers = receiver.route(request)
                data = payload if isinstance(payload, bytes) else (
                    json.dumps(payload).encode() if isinstance(payload, dict | list)
                    else str(payload).encode()
                )  # fmt: skip
                self.send_response(status)
                ctype = "application/json" if isinstance(payload, dict | list) else "text/plain"
                self.send_header("content-type", f"{ctype}; charset=utf-8")
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )  # shutdown() waits for a poll: keep it short

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def limit(self, limit: int, period: float) -> Receiver:
        self.windows.append(Window(limit, period))
        return self

    def over_limit(self, request: Request) -> bool:
        """Every window must allow the request (checked under the lock)."""
        allowed = all(w.hit(request.at) for w in self.windows)
        if not allowed:
            self.refused_rate += 1
        return not allowed

    def problem(self, text: str) -> str:
        self.problems.append(text)
        return text

    def json_body(self, request: Request) -> dict[str, Any] | None:
        if not request.headers.get("content-type", "").startswith("application/json"):
            self.problem(f"Content-Type {request.headers.get('content-type')!r} is not JSON")
            return None
        try:
            body = request.json()
        except (ValueError, UnicodeDecodeError) as exc:
            self.problem(f"the body is not valid JSON: {exc}")
            return None
        if not isinstance(body, dict):
            self.problem("the body is not a JSON object")
            return None
        return body

    def route(self, request: Request) -> Reply:
        raise NotImplementedError


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)

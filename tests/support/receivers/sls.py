"""A local stand-in for Alibaba Cloud Log Service's PutLogs (API 0.6.0), on 127.0.0.1.

It checks a request as SLS documents it (common request headers, request signatures, PutLogs):
``POST /logstores/<logstore>/shards/lb`` to ``Host: <project>.<endpoint>``; ``x-log-apiversion``
0.6.0, ``x-log-signaturemethod`` hmac-sha1, ``Content-Type: application/x-protobuf``,
``Content-MD5`` the upper-case hex MD5 of the body, a ``Date`` within 15 minutes, the body
compressed as ``x-log-compresstype`` says (lz4 block or zlib deflate) to exactly
``x-log-bodyrawsize`` bytes; the ``Authorization: LOG <id>:<signature>`` recomputed here from
the documented string to sign, and an STS key's ``x-acs-security-token``. The body is decoded
with the documented ``LogGroup`` .proto compiled by protoc (:mod:`tests.support.protos`), never
with the sink's encoder.

Replies are SLS's: 200 with ``x-log-requestid``, else ``{"errorCode", "errorMessage"}``:
401 ``Unauthorized`` (unknown AccessKey id, missing or wrong STS token) or ``SignatureNotMatch``,
404 ``ProjectNotExist`` / ``LogStoreNotExist``, 400 ``PostBodyTooLarge`` (over ``max_raw``),
``PostBodyInvalid`` (not a LogGroup, more than 4096 logs, a value over ``max_value``),
``RequestTimeExpired``; ``inject`` (the next requests) and ``inject_at`` (the N-th) add others
(403 ``WriteQuotaExceed``, 500 ``InternalServerError``). A request that breaks the documented format is also noted in
``problems``.

    with SlsReceiver(project="k8s-log", keys={"AKID": "secret"}) as sls:
        ... --sink=sls:{sls.url}?project=k8s-log&logStore=k8s-event ...
        sls.logs   # [{"time", "time_ns", "contents": {...}, "topic", "source", "logstore"}]
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import socket
import threading
import uuid
import zlib
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.server import ThreadingHTTPServer
from typing import Any

from tests.support.protos import compile_proto
from tests.support.receivers.base import Receiver, Reply, Request

#: The LogGroup definition SLS publishes (PutLogs, "Data model: LogGroup"), proto2.
SLS_PROTO = """
syntax = "proto2";
package kes_test.sls;
message Log {
    required uint32 Time = 1;
    message Content {
        required string Key = 1;
        required string Value = 2;
    }
    repeated Content Contents = 2;
    optional fixed32 Time_ns = 4;
}
message LogTag {
    required string Key = 1;
    required string Value = 2;
}
message LogGroup {
    repeated Log Logs = 1;
    optional string Reserved = 2;
    optional string Topic = 3;
    optional string Source = 4;
    repeated LogTag LogTags = 6;
}
message LogGroupList {
    repeated LogGroup logGroupList = 1;
}
"""


def messages() -> Any:
    return compile_proto("sls_log.proto", SLS_PROTO)


def error(status: int, code: str, message: str) -> Reply:
    return status, {"errorCode": code, "errorMessage": message}, {"x-log-requestid": _rid()}


def _rid() -> str:
    return uuid.uuid4().hex.upper()[:24]


def string_to_sign(request: Request) -> str:
    """VERB, Content-MD5, Content-Type, Date, CanonicalizedLOGHeaders, CanonicalizedResource."""
    h = request.headers
    log_headers = sorted(
        (name, value.strip())
        for name, value in h.items()
        if name.startswith("x-log-") or name.startswith("x-acs-")
    )
    resource = request.path
    if request.query:
        resource += "?" + "&".join(f"{k}={v}" for k, v in sorted(request.query.items()))
    lines = [request.method, h.get("content-md5", ""), h.get("content-type", ""), h.get("date", "")]
    lines.append("\n".join(f"{name}:{value}" for name, value in log_headers))
    lines.append(resource)
    return "\n".join(lines)


class SlsReceiver(Receiver):
    def __init__(
        self,
        *,
        project: str = "k8s-log",
        logstores: tuple[str, ...] = ("k8s-event",),
        keys: dict[str, str] | None = None,
        tokens: dict[str, str] | None = None,
        max_raw: int = 10 * 1024 * 1024,
        max_value: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.project, self.logstores = project, logstores
        self.keys = dict(keys or {"test-key-id": "test-key-secret"})
        self.tokens = dict(tokens or {})  # AccessKey id -> the STS token it needs
        self.max_raw, self.max_value = max_raw, max_value
        #: The reply to the N-th request (1-based, all requests counted), instead of checking it.
        self.inject_at: dict[int, Reply] = {}
        self.logs: list[dict[str, Any]] = []
        self.groups = 0
        self.port = self.server.server_address[1]
        self.connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._track(self.server)

    # -- an outage: the port closes and open connections break, then it opens again

    def _track(self, server: ThreadingHTTPServer) -> None:
        serve = server.finish_request

        def finish_request(request: Any, client_address: Any) -> None:
            with self._connections_lock:
                self.connections.add(request)
            try:
                serve(request, client_address)
            finally:
                with self._connections_lock:
                    self.connections.discard(request)

        server.finish_request = finish_request  # type: ignore[method-assign]

    def pause(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        with self._connections_lock:
            for connection in self.connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def resume(self) -> None:
        handler = self.server.RequestHandlerClass
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._track(self.server)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    # -- PutLogs

    def route(self, request: Request) -> Reply:
        if len(self.requests) in self.inject_at:
            return self.inject_at.pop(len(self.requests))
        h = request.headers
        project = h.get("host", "").split(".", 1)[0]
        parts = request.path.strip("/").split("/")
        if request.method != "POST" or len(parts) != 4 or parts[0] != "logstores" or parts[2:] != ["shards", "lb"]:  # fmt: skip
            return error(404, "InvalidRequest", self.problem(f"not PutLogs: {request.method} {request.path}"))  # fmt: skip
        for name, expected in (
            ("x-log-apiversion", "0.6.0"),
            ("x-log-signaturemethod", "hmac-sha1"),
            ("content-type", "application/x-protobuf"),
        ):
            if h.get(name) != expected:
                return error(400, "InvalidHeader" if name != "content-type" else "InvalidContentType", self.problem(f"{name} is {h.get(name)!r}, not {expected}"))  # fmt: skip
        try:
            sent = parsedate_to_datetime(h["date"])
        except (KeyError, TypeError, ValueError):
            return error(400, "InvalidDateFormat", self.problem(f"Date {h.get('date')!r} is not RFC 1123"))  # fmt: skip
        if not h["date"].endswith(" GMT") or abs((datetime.now(UTC) - sent).total_seconds()) > 900:
            return error(400, "RequestTimeExpired", "Request time _requestTime_ has been expired while server time is _server time_.")  # fmt: skip
        if h.get("content-md5") != hashlib.md5(request.body).hexdigest().upper():
            return error(400, "InvalidMD5", self.problem("Content-MD5 is not the upper-case hex MD5 of the body"))  # fmt: skip
        if int(h.get("content-length", -1)) != len(request.body):
            return error(400, "InvalidHeader", self.problem("Content-Length is not the body's length"))  # fmt: skip

        # authentication: the documented string to sign, recomputed here
        scheme, _, credential = h.get("authorization", "").partition(" ")
        key_id, _, signature = credential.partition(":")
        if scheme != "LOG" or key_id not in self.keys:
            return error(401, "Unauthorized", f"AccessKeyId not found: {key_id}")
        if key_id in self.tokens and h.get("x-acs-security-token") != self.tokens[key_id]:
            return error(401, "Unauthorized", "The security token you provided is invalid.")
        mac = hmac.new(self.keys[key_id].encode(), string_to_sign(request).encode(), hashlib.sha1)
        if not hmac.compare_digest(base64.b64encode(mac.digest()).decode(), signature):
            return error(401, "SignatureNotMatch", f"signature {signature} not match")

        if project != self.project:
            return error(404, "ProjectNotExist", f"The Project does not exist : {project}")
        logstore = parts[1]
        if logstore not in self.logstores:
            return error(404, "LogStoreNotExist", f"logstore {logstore} does not exist")

        # the body
        try:
            raw_size = int(h["x-log-bodyrawsize"])
        except (KeyError, ValueError):
            return error(400, "InvalidHeader", self.problem("x-log-bodyrawsize is missing"))
        if raw_size > self.max_raw:
            return error(400, "PostBodyTooLarge", f"body size {raw_size} must little than {self.max_raw}")  # fmt: skip
        compress = h.get("x-log-compresstype")
        try:
            if compress == "lz4":
                import lz4.block

                raw = lz4.block.decompress(request.body, uncompressed_size=raw_size)
            elif compress == "deflate":
                raw = zlib.decompress(request.body)
            elif compress is None:
                raw = request.body
            else:
                return error(400, "InvalidCompressType", self.problem(f"compress type {compress!r}"))  # fmt: skip
        except Exception as exc:
            return error(400, "PostBodyUncompressError", self.problem(f"cannot uncompress: {exc}"))
        if len(raw) != raw_size:
            return error(400, "PostBodyUncompressError", self.problem("x-log-bodyrawsize is not the raw size"))  # fmt: skip
        group = messages().LogGroup()
        try:
            group.ParseFromString(raw)
        except Exception as exc:
            return error(400, "PostBodyInvalid", self.problem(f"not a LogGroup: {exc}"))
        if len(group.Logs) > 4096:
            return error(400, "PostBodyInvalid", self.problem(f"{len(group.Logs)} logs in one LogGroup"))  # fmt: skip
        if self.max_value is not None:
            for item in group.Logs:
                for content in item.Contents:
                    if len(content.Value.encode()) > self.max_value:
                        return error(400, "PostBodyInvalid", f"log value of key {content.Key} is too large")  # fmt: skip
        for item in group.Logs:
            self.logs.append(
                {
                    "time": item.Time,
                    "time_ns": item.Time_ns if item.HasField("Time_ns") else None,
                    "contents": {c.Key: c.Value for c in item.Contents},
                    "keys": [c.Key for c in item.Contents],
                    "topic": group.Topic,
                    "source": group.Source,
                    "tags": {t.Key: t.Value for t in group.LogTags},
                    "logstore": logstore,
                    "compression": compress,
                }
            )
        self.groups += 1
        return 200, b"", {"x-log-requestid": _rid()}

"""How the search sinks talk to the server: the official clients' transports, plain JSON.

Requests go through ``elasticsearch-py``'s or ``opensearch-py``'s transport (node pool, retries
on other nodes, TLS and auth) but not through their API layers, which send versioned media types
(``compatible-with=9``) that older servers refuse: so one sink speaks to Elasticsearch 7.x-9.x and
OpenSearch 1.x-3.x whatever version of the client library is installed. Connection failures
raise :class:`~shipper.sinks.base.TransientError`; HTTP errors come back as a status for the
sink to judge, and :func:`error_text` puts the server's own words in one short line.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import orjson

from shipper import __version__
from shipper.sinks.base import TransientError


@dataclass
class Server:
    """What ``GET /`` and a few probes said about the server."""

    flavour: str  # "elasticsearch" or "opensearch"
    version: str
    major: int
    data_streams: bool = False
    lifecycle: str | None = None  # "ilm", "ism" or None (plugin absent)
    ism_path: str = "_plugins/_ism"

    @property
    def name(self) -> str:
        return f"{'OpenSearch' if self.flavour == 'opensearch' else 'Elasticsearch'} {self.version}"


JSON = "application/json"
NDJSON = "application/x-ndjson"


class Http:
    """One request shape over either official client: ``request() -> (status, body)``.

    Requests go through the client's transport (node pool, retries on other nodes,
    TLS and auth as configured) but not through its API layer, which would send versioned media
    types (``compatible-with=9``) that older servers refuse. Connection failures raise
    TransientError; HTTP errors are returned as a status for the caller to judge.
    """

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = JSON
    ) -> tuple[int, Any]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


USER_AGENT = f"kube-event-shipper/{__version__}"


class BulkBody:
    """elastic-transport's serializer for ``application/x-ndjson`` requests: the ``_bulk`` body
    is made as bytes already (newline-terminated), and its NdjsonSerializer copied it twice."""

    mimetype = NDJSON

    def dumps(self, data: Any) -> bytes:
        if isinstance(data, bytes):
            return data
        from elastic_transport import NdjsonSerializer

        return NdjsonSerializer().dumps(data)

    def loads(self, data: bytes) -> Any:
        from elastic_transport import NdjsonSerializer

        return NdjsonSerializer().loads(data)


_HIDDEN_FROM_TRANSPORT = ("aiohttp",)
_import_lock = threading.Lock()


def import_elastic_transport() -> ModuleType:
    """``elastic_transport``, imported without the HTTP libraries the sink does not use.

    elastic-transport imports every HTTP library it finds, to offer a node class for each; the
    sink uses its urllib3 node. Without aiohttp (installed with the kubernetes client, imported
    by nothing else here) importing elastic-transport when the sink opens costs 65-110 ms of CPU
    instead of 180-240, and 9 MiB of RSS instead of 19. While elastic-transport imports, a
    library not imported yet is marked as absent in ``sys.modules``, which it takes as "not
    installed"; the mark is taken away right after, so a later ``import aiohttp`` works.
    """
    with _import_lock:
        if "elastic_transport" in sys.modules:
            return sys.modules["elastic_transport"]
        hidden = [name for name in _HIDDEN_FROM_TRANSPORT if name not in sys.modules]
        for name in hidden:
            sys.modules[name] = None  # type: ignore[assignment]
        try:
            import elastic_transport
        finally:
            for name in hidden:
                if name in sys.modules and sys.modules[name] is None:
                    del sys.modules[name]
        return elastic_transport


def json_serializer(elastic_transport: ModuleType) -> Any:
    """orjson for JSON replies where elastic-transport offers it (8.13+): the standard
    library's decoder is several times slower on the ``_bulk`` replies."""
    orjson_serializer = getattr(elastic_transport, "OrjsonSerializer", None)
    return orjson_serializer() if orjson_serializer else elastic_transport.JsonSerializer()


class ElasticsearchHttp(Http):
    """``authorization`` is sent here, with each request (the official client would add it in
    its API layer, which is not used)."""

    def __init__(
        self, transport: Any, authorization: str | None, *, max_retries: int, timeout: float
    ) -> None:
        self.transport, self.authorization = transport, authorization
        # The client passes these per request from its API layer, which we bypass; without
        # them the transport would retry 429/5xx on its own, out of our accounting.
        self.per_request = dict(
            max_retries=max_retries,
            retry_on_status=(),
            retry_on_timeout=True,
            request_timeout=timeout,
        )

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = JSON
    ) -> tuple[int, Any]:
        from elastic_transport import TransportError

        headers = {"accept": JSON}
        if body is not None:
            headers["content-type"] = content_type
        if self.authorization:
            headers["authorization"] = self.authorization
        try:
            response = self.transport.perform_request(
                method, "/" + path, headers=headers, body=body, **self.per_request
            )
        except TransportError as exc:
            raise TransientError(f"{method} /{path}: {exc}") from exc
        return response.meta.status, response.body

    def close(self) -> None:
        self.transport.close()


class OpenSearchHttp(Http):
    def __init__(self, client: Any) -> None:
        self.client = client

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = JSON
    ) -> tuple[int, Any]:
        from opensearchpy.exceptions import ConnectionError as OsConnectionError
        from opensearchpy.exceptions import SerializationError as OsSerializationError
        from opensearchpy.exceptions import TransportError

        headers = {"accept": JSON, "content-type": content_type}
        try:
            reply = self.client.transport.perform_request(
                method, "/" + path, body=body, headers=headers
            )
        except OsConnectionError as exc:  # includes timeouts and TLS failures
            raise TransientError(f"{method} /{path}: {exc.error}") from exc
        except OsSerializationError as exc:
            raise TransientError(f"{method} /{path}: unreadable reply ({exc})") from exc
        except TransportError as exc:
            status = exc.status_code if isinstance(exc.status_code, int) else 599
            return status, exc.info
        if method == "HEAD":  # opensearch-py answers HEAD with True or False
            return (200 if reply else 404), None
        return 200, reply

    def close(self) -> None:
        self.client.close()


def error_text(body: Any) -> str:
    """The server's own words for a failed request or item, short."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            cause = (error.get("root_cause") or [{}])[0]
            kind = error.get("type") or cause.get("type") or "error"
            reason = error.get("reason") or cause.get("reason") or ""
            return f"{kind}: {reason}"[:500] if reason else str(kind)
        if error is not None:
            return str(error)[:500]
        if "message" in body:  # Amazon's gateways: {"message": "..."}
            return str(body["message"])[:500]
        return orjson.dumps(body).decode()[:500]
    return str(body)[:500]


def node_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected a URL such as http://es:9200 or https://es.example:443")
    return text


def no_handler(reply: Any) -> bool:
    """True for the reply of a server that does not know the endpoint at all."""
    text = reply if isinstance(reply, str) else orjson.dumps(reply).decode() if reply else ""
    return "no handler found" in text


def split_userinfo(nodes: list[str]) -> tuple[list[str], tuple[str, str] | None]:
    """``http://user:pass@es:9200`` -> (``http://es:9200``, (user, pass)); the client and our
    logs then never see the password in a URL."""
    hosts, basic = [], None
    for node in nodes:
        parts = urlsplit(node)
        if parts.username is not None:
            basic = (parts.username, parts.password or "")
            netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
            node = parts._replace(netloc=netloc).geturl()
        hosts.append(node)
    return hosts, basic


def safe_hosts(nodes: list[str]) -> list[str]:
    return split_userinfo(nodes)[0]

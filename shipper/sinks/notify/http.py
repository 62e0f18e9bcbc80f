"""The notifiers' HTTP: one pooled client per sink, replies, and network errors in words.

Timeouts and redirects are bounded, TLS trusts ``ca_file`` (or nothing, with ``insecure``),
and a network failure becomes a :class:`~shipper.sinks.base.TransientError` whose message
names no URL (a webhook URL often holds its key), scrubbed of every secret the sink knows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from shipper.errors import one_line
from shipper.sinks.base import TransientError


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    data: bytes

    def json(self) -> Any:
        try:
            return orjson.loads(self.data)
        except orjson.JSONDecodeError:
            return None

    def text(self, limit: int = 300) -> str:
        return self.data[:limit].decode("utf-8", errors="replace").strip()

    def retry_after(self) -> float | None:
        value = self.headers.get("retry-after")
        try:
            return max(0.0, float(value)) if value is not None else None
        except ValueError:
            return None


class Http:
    """One pooled client per sink: bounded timeouts and redirects, TLS from ``ca_file``,
    network errors turned into TransientError with a message that names no URL."""

    def __init__(
        self, *, timeout: float, ca_file: str | None, insecure: bool, scrub: Callable[[str], str]
    ) -> None:
        import urllib3

        self.scrub = scrub
        kwargs: dict[str, Any] = {}
        if insecure:
            kwargs["cert_reqs"] = ssl.CERT_NONE
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        elif ca_file:
            kwargs["ca_certs"] = ca_file
        self.pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=2,
            timeout=urllib3.Timeout(connect=min(timeout, 5.0), read=timeout),
            retries=urllib3.Retry(
                total=None,
                connect=0,
                read=0,
                status=0,
                other=0,
                redirect=3,
                raise_on_redirect=True,
                respect_retry_after_header=False,
            ),
            **kwargs,
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        import urllib3

        try:
            reply = self.pool.request(method, url, body=body, headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            raise TransientError(self.scrub(network_error(exc))) from None
        return Reply(
            reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.data or b""
        )

    def close(self) -> None:
        self.pool.clear()

    def post_json(self, url: str, payload: Any, headers: dict[str, str] | None = None) -> Reply:
        return self.request(
            "POST",
            url,
            body=orjson.dumps(payload),
            headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})},
        )


def network_error(exc: Exception) -> str:
    """A network failure in words, without the URL urllib3 puts in its messages."""
    return one_line(exc)


def hmac_sha256_b64(key: str, message: str) -> str:
    digest = hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def safe_url(url: str) -> str:
    """``https://host/…``: where a sink writes, without the path or query that may hold keys."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/…"

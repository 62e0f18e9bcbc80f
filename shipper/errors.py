"""One readable line for any failure a client library raises.

Client libraries say what went wrong in their own words: urllib3 puts the whole
``HTTPSConnectionPool(host=..., port=...): Max retries exceeded with url: /path?token=...``
in its messages, the kubernetes client a multi-line dump of headers and body. Logs and retry
messages want one line that says what happened, without URLs (they may hold keys)::

    log.warning("The watch failed (%s); retrying.", one_line(exc))
    # The watch failed (cannot connect: connection refused); retrying.
"""

from __future__ import annotations

import contextlib
import json
import re
import ssl

_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
LIMIT = 300


def one_line(exc: BaseException) -> str:
    """What ``exc`` means, in one line of at most ``LIMIT`` characters, with no URL in it."""
    for describe in (_urllib3, _kubernetes):
        text = describe(exc)
        if text:
            return _cut(text)
    if isinstance(exc, ssl.SSLError):
        return _cut(f"TLS error ({exc.reason or exc})")
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "cannot connect: connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return _cut(exc.strerror)
    return _cut(str(exc) or type(exc).__name__)


def _cut(text: str) -> str:
    text = " ".join(_URL.sub("<url>", text).split())
    return text if len(text) <= LIMIT else text[: LIMIT - 3] + "..."


def _urllib3(exc: BaseException) -> str | None:
    try:
        import urllib3.exceptions as e
    except ImportError:  # pragma: no cover - urllib3 comes with every client here
        return None
    if not isinstance(exc, e.HTTPError):
        return None
    reason = getattr(exc, "reason", None) if isinstance(exc, e.MaxRetryError) else exc
    if isinstance(reason, e.NameResolutionError):
        return "cannot resolve the host name"
    if isinstance(reason, e.NewConnectionError):
        detail = str(reason).rpartition("Failed to establish a new connection: ")[2]
        detail = re.sub(r"^\[Errno -?\d+\] ", "", detail).lower()
        return f"cannot connect: {detail or 'refused'}"
    # after NewConnectionError, which urllib3 2 makes a subclass of both
    if isinstance(reason, e.ConnectTimeoutError):
        return "timed out connecting"
    if isinstance(reason, e.ReadTimeoutError | e.TimeoutError | TimeoutError):
        return "timed out waiting for the reply"
    if isinstance(reason, e.SSLError):
        return f"TLS error ({str(reason).split(' (_ssl')[0][-200:]})"
    if isinstance(reason, e.ResponseError) or "redirect" in str(reason).lower():
        return "too many redirects"
    if isinstance(reason, e.ProtocolError):
        return "the connection broke"
    return f"request failed ({type(reason).__name__})"


def _kubernetes(exc: BaseException) -> str | None:
    status = getattr(exc, "status", None)
    if type(exc).__name__ != "ApiException" or status is None:
        return None
    message = ""
    with contextlib.suppress(ValueError, AttributeError):
        message = json.loads(getattr(exc, "body", "") or "{}").get("message") or ""
    return f"{status} {getattr(exc, 'reason', '') or ''}{': ' + message if message else ''}".strip()

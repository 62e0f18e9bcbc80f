"""Raw calls to the API server through the official client's auth, without model decoding.

The official client authenticates (tokens, exec plugins, client certificates, token refresh in a
pod); we only use it to send requests and read the JSON ourselves, which is several times
faster than building models and is the only way to stream a watch line by line.
"""

from __future__ import annotations

from typing import Any

import orjson


def request(
    api: Any,
    method: str,
    path: str,
    *,
    query: list[tuple[str, Any]] | None = None,
    body: Any = None,
    content_type: str = "application/json",
    accept: str = "application/json",
    read_timeout: float = 30.0,
    connect_timeout: float = 10.0,
) -> Any:
    """Send one request; returns the urllib3 response, unread (status not checked)."""
    headers = {"Accept": accept}
    if body is not None:
        headers["Content-Type"] = content_type  # the client serializes the dict itself
    method, url, headers, body, post = api.param_serialize(
        method,
        path,
        query_params=query or [],
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )
    return api.call_api(
        method, url, headers, body, post, _request_timeout=(connect_timeout, read_timeout)
    ).response


def status_message(data: bytes) -> str:
    """The ``message`` of a Status reply, or the start of whatever came back."""
    try:
        status = orjson.loads(data)
        return str(status.get("message") or status)
    except (orjson.JSONDecodeError, AttributeError):
        return data[:300].decode("utf-8", "replace")

"""Client failures in one line, without the URLs client libraries put in their messages."""

from __future__ import annotations

import socket

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from shipper.errors import one_line


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_connection_through_urllib3():
    pool = urllib3.PoolManager(retries=urllib3.Retry(0))
    with pytest.raises(urllib3.exceptions.HTTPError) as caught:
        pool.request("GET", f"http://127.0.0.1:{_free_port()}/api?token=s3cret")
    text = one_line(caught.value)
    assert text.startswith("cannot connect: ") and "refused" in text
    assert "s3cret" not in text and "HTTPConnectionPool" not in text and "127.0.0.1" not in text


def test_a_kubernetes_api_error_says_status_and_message():
    exc = ApiException(status=403, reason="Forbidden")
    exc.body = '{"kind":"Status","message":"events is forbidden: User \\"x\\" cannot list"}'
    assert one_line(exc) == '403 Forbidden: events is forbidden: User "x" cannot list'


def test_anything_else_is_one_short_line_without_urls():
    text = one_line(
        RuntimeError("failed at https://user:pw@host/x?key=1\nsecond line " + "y" * 500)
    )
    assert "\n" not in text and "pw@" not in text and "<url>" in text and len(text) <= 300

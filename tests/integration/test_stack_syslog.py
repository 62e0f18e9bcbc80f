"""The test stack's rsyslog: one RFC 5424 message over UDP, TCP and TLS (RFC 6587 / RFC 5425
octet counting) with the standard library, read back field by field from its JSON output."""

from __future__ import annotations

import json
import socket
import ssl
import uuid
from pathlib import Path

import pytest

from tests.support.common import stack_up, wait_for


def address(value: str) -> tuple[str, int]:
    host, port = value.rsplit(":", 1)
    return host, int(port)


def send(env: dict[str, str], transport: str, message: bytes) -> None:
    if transport == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(message, address(env["SYSLOG_UDP"]))
        return
    framed = f"{len(message)} ".encode() + message  # octet counting: "MSG-LEN SP SYSLOG-MSG"
    if transport == "tcp":
        with socket.create_connection(address(env["SYSLOG_TCP"]), timeout=10) as sock:
            sock.sendall(framed)
        return
    context = ssl.create_default_context(cafile=env["SYSLOG_CA"])  # verifies 127.0.0.1 too
    host, port = address(env["SYSLOG_TLS"])
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as sock,
    ):
        sock.sendall(framed)
        sock.unwrap()  # close_notify, so rsyslog reads to the end of the stream


def received(output: Path, msgid: str) -> list[dict]:
    if not output.exists():
        return []
    lines = output.read_text(encoding="utf-8").splitlines()
    return [d for d in map(json.loads, lines) if d.get("msgid") == msgid]


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_rfc5424_message_arrives_with_its_fields(transport: str) -> None:
    env = stack_up("syslog")
    msgid = f"ID{uuid.uuid4().hex[:12]}"
    sd = '[kes@32473 reason="BackOff" namespace="default"][origin ip="127.0.0.1"]'
    text = "Back-off restarting failed container app in pod web-1 (ü)"
    message = (
        f"<165>1 2026-05-01T12:34:56.789+02:00 node-1.example kube-event-shipper 4242 {msgid} "
        f"{sd} \ufeff{text}"
    ).encode()
    send(env, transport, message)
    output = Path(env["SYSLOG_OUTPUT"])
    (got,) = wait_for(lambda: received(output, msgid), 15, f"{msgid} in {output}")
    assert got == {
        "transport": transport,
        "pri": "165",
        "facility": "20",  # local4
        "severity": "5",  # notice
        "version": "1",
        "timestamp": "2026-05-01T12:34:56.789+02:00",
        "hostname": "node-1.example",
        "app-name": "kube-event-shipper",
        "procid": "4242",
        "msgid": msgid,
        "structured-data": sd,
        "msg": "\ufeff" + text,
        "fromhost-ip": "127.0.0.1",
        "raw": message.decode(),
    }


def test_octet_counting_frames_messages_not_newlines() -> None:
    """Two frames in one TCP write, the first with a line feed inside: octet counting keeps it
    one message (newline framing would split it in two)."""
    env = stack_up("syslog")
    msgids = [f"ID{uuid.uuid4().hex[:12]}" for _ in range(2)]
    messages = [f"<14>1 - host app - {m} - line one\nline two".encode() for m in msgids]
    with socket.create_connection(address(env["SYSLOG_TCP"]), timeout=10) as sock:
        sock.sendall(b"".join(f"{len(m)} ".encode() + m for m in messages))
    output = Path(env["SYSLOG_OUTPUT"])
    for msgid in msgids:
        (got,) = wait_for(lambda m=msgid: received(output, m), 15, f"{msgid} in {output}")
        assert (got["msg"], got["severity"], got["procid"]) == ("line one\nline two", "6", "-")

"""Loki's push API on the wire: ``logproto.PushRequest`` in protobuf, snappy's block format,
label strings and Loki's error bodies, written by hand (three small messages) rather than from
generated code, so no protobuf runtime is pinned. tests/unit/test_loki.py decodes what this
writes with the protobuf runtime from an independently built descriptor.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import orjson

from shipper.uri import split_http_url


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _timestamp(ns: int) -> bytes:
    """google.protobuf.Timestamp: seconds (1), nanos (2); zero values are left out."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    out = b""
    if seconds:
        out += b"\x08" + _varint(seconds)
    if nanos:
        out += b"\x10" + _varint(nanos)
    return out


def encode_push(streams: Sequence[tuple[str, Sequence[tuple[int, bytes]]]]) -> bytes:
    """``logproto.PushRequest``: streams (1) of StreamAdapter {labels (1), entries (2) of
    EntryAdapter {timestamp (1), line (2)}}. ``streams``: (label string, [(ns, line)])."""
    parts = []
    for labels, entries in streams:
        body = [_field(1, labels.encode())]
        for ns, line in entries:
            body.append(_field(2, _field(1, _timestamp(ns)) + _field(2, line)))
        parts.append(_field(1, b"".join(body)))
    return b"".join(parts)


def snappy_block(data: bytes) -> bytes:
    """Snappy's block format (what Loki decodes), by cramjam if installed; else one literal:
    valid snappy, not compressed."""
    try:
        import cramjam
    except ImportError:
        n = len(data)
        if n == 0:
            return b"\x00"
        size = n - 1
        if size < 60:
            tag = bytes([size << 2])
        else:
            width = (size.bit_length() + 7) // 8
            tag = bytes([(59 + width) << 2]) + size.to_bytes(width, "little")
        return _varint(n) + tag + data
    return bytes(cramjam.snappy.compress_raw(data))


_LABEL_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def label_value(value: str) -> str:
    """A label value inside double quotes, escaped as Loki's (PromQL's) parser reads it."""
    text = value.translate(_LABEL_ESCAPES)
    if _CONTROL.search(text):
        text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text


def label_string(labels: dict[str, str]) -> str:
    """``{a="1", b="2"}``, sorted by name (Loki's own order)."""
    return "{" + ", ".join(f'{k}="{label_value(v)}"' for k, v in sorted(labels.items())) + "}"


def error_text(data: bytes, limit: int = 500) -> str:
    """Loki's reply on one line (it answers text/plain, or JSON from some gateways)."""
    text = data.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            parsed = orjson.loads(text)
            if isinstance(parsed, dict):
                text = str(parsed.get("message") or parsed.get("error") or text)
        except orjson.JSONDecodeError:
            pass
    if text.startswith("<"):  # an HTML error page of a gateway: its title is enough
        match = re.search(r"<title>(.*?)</title>", text, re.S | re.I)
        text = match.group(1) if match else re.sub(r"<[^>]+>", " ", text)
    return " ".join(text.split())[:limit]


PUSH_PATH = "/loki/api/v1/push"


def push_url(text: str) -> tuple[str, str | None, str | None]:
    """``http(s)://[user:pw@]host[:port][/path]`` -> (the push URL, user, password)."""
    parts, user, password = split_http_url(text, "http://loki:3100 or https://loki.example.com")
    path = parts.path if parts.path not in ("", "/") else PUSH_PATH
    return parts._replace(path=path, fragment="").geturl(), user, password


def retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None

"""Go's encoding/json as sprig's ``toJson`` family uses it.

Differences from Python's ``json`` that users see: compact output (``{"a":1}``), map keys
sorted, ``<``, ``>``, ``&`` written as ``\\u003c`` ``\\u003e`` ``\\u0026`` (except ``toRawJson``),
floats as Go writes them (``1e+21``, ``100``), structs by their JSON tags, nil maps and slices
as ``null``, ``[]byte`` as base64, times as RFC 3339. ``fromJson`` reads every number as a
float64, as Go does when decoding into ``interface{}``.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from shipper.templates.gofmt import _digits, _exp_form, _fixed_form
from shipper.templates.gotime import GoTime
from shipper.templates.values import GoError, GoMap, GoSlice, Struct, is_int

_HTML = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
            "\t": "\\t", "\u2028": "\\u2028", "\u2029": "\\u2029"}  # fmt: skip


def encode_string(text: str, escape_html: bool = True) -> str:
    """A JSON string as encoding/json writes it."""
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif escape_html and ch in _HTML:
            out.append(_HTML[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            out.append("\\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def encode_float(f: float) -> str:
    """encoding/json's float64: fixed notation from 1e-6 up to 1e21, exponent outside."""
    if math.isnan(f) or math.isinf(f):
        raise GoError(f"json: unsupported value: {f}")
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    digits, dp = _digits(f)
    neg = f < 0
    if abs(f) < 1e-6 or abs(f) >= 1e21:
        text = _exp_form(neg, digits, dp)
        mant, _, exp = text.partition("e")
        sign, number = exp[0], exp[1:].lstrip("0") or "0"
        return f"{mant}e{sign}{number}"
    return _fixed_form(neg, digits, dp)


def encode(value: Any, escape_html: bool = True) -> str:
    """json.Marshal; GoError for what Go cannot encode (NaN, a function)."""
    return "".join(_encode(value, escape_html))


def _encode(value: Any, html: bool) -> list[str]:
    if value is None:
        return ["null"]
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if is_int(value):
        return [str(int(value))]
    if isinstance(value, float):
        return [encode_float(value)]
    if isinstance(value, str):
        return [encode_string(str(value), html)]
    if isinstance(value, bytes):
        return [encode_string(base64.b64encode(value).decode())]
    if isinstance(value, GoTime):
        text = value.json()
        return ["null" if text is None else encode_string(text, html)]
    if isinstance(value, list):
        if isinstance(value, GoSlice) and value.nil:
            return ["null"]
        out = ["["]
        for i, item in enumerate(value):
            if i:
                out.append(",")
            out += _encode(item, html)
        return [*out, "]"]
    if isinstance(value, dict):
        if isinstance(value, GoMap) and value.nil:
            return ["null"]
        return _object(sorted((str(k), v) for k, v in value.items()), html)
    if isinstance(value, Struct):
        return _object(struct_members(value), html)
    raise GoError(f"json: unsupported type: {type(value).__name__}")


def _object(members: list[tuple[str, Any]], html: bool) -> list[str]:
    out = ["{"]
    for i, (key, item) in enumerate(members):
        if i:
            out.append(",")
        out += [encode_string(key, html), ":", *_encode(item, html)]
    return [*out, "}"]


def struct_members(struct: Struct) -> list[tuple[str, Any]]:
    """A struct's JSON members in field order; embedded structs without a name are flattened
    and a shallower field hides a deeper one of the same name (Go's dominance rule)."""
    found: list[tuple[str, Any, int, int]] = []
    _collect(struct, 0, found, [0])
    best: dict[str, tuple[str, Any, int, int]] = {}
    for member in found:
        name, _, depth, _ = member
        if name not in best or depth < best[name][2]:
            best[name] = member
    members = sorted(best.values(), key=lambda m: m[3])
    return [(m[0], m[1]) for m in members if m[1] is not _OMITTED]


_OMITTED = object()


def _collect(
    struct: Struct, depth: int, found: list[tuple[str, Any, int, int]], order: list[int]
) -> None:
    for f in struct.fields:
        tag = f.json if f.json is not None else f.name
        name, _, options = tag.partition(",")
        if name == "-":
            continue
        if f.embedded and not name and isinstance(f.value, Struct):
            _collect(f.value, depth + 1, found, order)
            continue
        omitted = "omitempty" in options.split(",") and _empty(f.value)
        found.append((name or f.name, _OMITTED if omitted else f.value, depth, order[0]))
        order[0] += 1


def _empty(value: Any) -> bool:
    """omitempty: false, 0, "", nil, and empty maps and slices (never a struct)."""
    if value is None:
        return True
    if isinstance(value, str | bytes | list | dict | bool | int | float):
        return not value
    return False


def indent(compact: str, prefix: str = "", step: str = "  ") -> str:
    """json.Indent of compact JSON (what MarshalIndent does after Marshal)."""
    out: list[str] = []
    level, in_string, escaped, need_indent = 0, False, False, False
    for ch in compact:
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if need_indent and ch not in "]}":
            need_indent = False
            level += 1
            out.append("\n" + prefix + step * level)
        if ch == '"':
            in_string = True
            out.append(ch)
        elif ch in "[{":
            out.append(ch)
            need_indent = True
        elif ch == ",":
            out.append(",\n" + prefix + step * level)
        elif ch == ":":
            out.append(": ")
        elif ch in "]}":
            if need_indent:
                need_indent = False
            else:
                level -= 1
                out.append("\n" + prefix + step * level)
            out.append(ch)
        else:
            out.append(ch)
    return "".join(out)


def decode(text: str) -> Any:
    """json.Unmarshal into interface{}: numbers are float64; GoError for invalid JSON."""

    def refuse(name: str) -> Any:
        raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")

    try:
        return json.loads(text, parse_int=float, parse_constant=refuse)
    except (ValueError, RecursionError) as exc:
        raise GoError(str(exc).split(":")[0]) from None

"""sprig v3's math, date, dict, encoding, regex, reflection, path and URL functions.

Quirks kept from sprig: integer math is int64 (``div 7 2`` is 3, ``add "3" 1`` is 4), ``addf``
and friends go through decimal arithmetic, ``date`` formats *now* unless given a ``time.Time``
or Unix seconds (an Event's ``.LastTimestamp`` is a ``v1.Time``: use ``.LastTimestamp.Time``),
``duration`` reads only an ``int64`` or a string, ``keys`` and ``values`` come in Go's random map
order (sort them: ``keys $m | sortAlpha``), ``regexFind`` with a bad pattern fails the template.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import math
import os
import posixpath
import re
import uuid
import zlib
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from shipper.templates import gojson
from shipper.templates.functions import alias, register
from shipper.templates.gotime import (
    GoTime,
    format_duration,
    go_format,
    go_parse,
    load_location,
    parse_duration,
    to_time,
)
from shipper.templates.sprig import strval, to_float64, to_int64
from shipper.templates.values import GoError, GoMap, GoSlice, Int64, JsonText, go_kind, go_type

# -- integer and float math


def _wrap(value: int) -> Int64:
    """int64 arithmetic wraps around, as Go's does."""
    return Int64((value + 2**63) % 2**64 - 2**63)


def _div(a: int, b: int) -> int:
    if b == 0:
        raise GoError("runtime error: integer divide by zero")
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


register("add1", "any")(lambda v: _wrap(to_int64(v) + 1))
register("add", variadic="any")(lambda *v: _wrap(sum(to_int64(x) for x in v)))
register("sub", "any", "any")(lambda a, b: _wrap(to_int64(a) - to_int64(b)))
register("div", "any", "any")(lambda a, b: _wrap(_div(to_int64(a), to_int64(b))))
register("mod", "any", "any")(
    lambda a, b: _wrap(to_int64(a) - to_int64(b) * _div(to_int64(a), to_int64(b)))
)
register("max", "any", variadic="any")(lambda a, *v: Int64(max(map(to_int64, (a, *v)))))
register("min", "any", variadic="any")(lambda a, *v: Int64(min(map(to_int64, (a, *v)))))
register("maxf", "any", variadic="any")(lambda a, *v: max(map(to_float64, (a, *v))))
register("minf", "any", variadic="any")(lambda a, *v: min(map(to_float64, (a, *v))))
register("floor", "any")(lambda a: float(math.floor(to_float64(a))))
register("ceil", "any")(lambda a: float(math.ceil(to_float64(a))))
alias("max", "biggest")


@register("mul", "any", variadic="any")
def mul(first: Any, *others: Any) -> Int64:
    value = to_int64(first)
    for other in others:
        value = _wrap(value * to_int64(other))
    return _wrap(value)


@register("round", "any", "int", variadic="float64")
def round_(value: Any, places: int, *round_on: float) -> float:
    threshold = round_on[0] if round_on else 0.5
    pow10 = math.pow(10, places)
    digit = pow10 * to_float64(value)
    frac = math.modf(digit)[0]
    return (math.ceil(digit) if frac >= threshold else math.floor(digit)) / pow10


def _decimal_op(first: Any, others: tuple[Any, ...], op: str) -> float:
    """shopspring/decimal arithmetic as sprig's addf/subf/mulf/divf use it."""
    result = Decimal(repr(to_float64(first)))
    for other in others:
        d = Decimal(repr(to_float64(other)))
        if op == "+":
            result += d
        elif op == "-":
            result -= d
        elif op == "*":
            result *= d
        else:
            if d == 0:
                raise GoError("decimal division by 0")
            result = (result / d).quantize(Decimal("1e-16"), rounding=ROUND_HALF_UP)
    return float(result)


register("addf", variadic="any")(lambda *v: _decimal_op(0.0, v, "+"))
register("add1f", "any")(lambda v: _decimal_op(v, (1,), "+"))
register("subf", "any", variadic="any")(lambda a, *v: _decimal_op(a, v, "-"))
register("mulf", "any", variadic="any")(lambda a, *v: _decimal_op(a, v, "*"))
register("divf", "any", variadic="any")(lambda a, *v: _decimal_op(a, v, "/"))

# -- dates


@register("now")
def now() -> GoTime:
    return GoTime.now()


@register("dateInZone", "string", "any", "string")
def date_in_zone(layout: str, value: Any, zone: str) -> str:
    moment = to_time(value) or GoTime.now()
    try:
        location = load_location(zone)
    except GoError:
        location = load_location("UTC")
    return go_format(moment.moment.astimezone(location), layout)


register("date", "string", "any")(lambda layout, value: date_in_zone(layout, value, "Local"))
register("htmlDate", "any")(lambda value: date_in_zone("2006-01-02", value, "Local"))
register("htmlDateInZone", "any", "string")(lambda v, z: date_in_zone("2006-01-02", v, z))
register("unixEpoch", "time")(lambda t: str(t.unix()))
alias("dateInZone", "date_in_zone")


@register("mustDateModify", "string", "time")
def must_date_modify(change: str, moment: GoTime) -> GoTime:
    nanos = parse_duration(change)
    return GoTime(moment.moment + timedelta(microseconds=nanos // 1000), "time")


@register("dateModify", "string", "time")
def date_modify(change: str, moment: GoTime) -> GoTime:
    try:
        return must_date_modify(change, moment)
    except GoError:
        return moment


alias("dateModify", "date_modify")
alias("mustDateModify", "must_date_modify")


@register("mustToDate", "string", "string")
def must_to_date(layout: str, text: str) -> GoTime:
    return go_parse(layout, text)


@register("toDate", "string", "string")
def to_date(layout: str, text: str) -> GoTime:
    try:
        return go_parse(layout, text)
    except GoError:
        from shipper.templates.gotime import ZERO

        return GoTime(ZERO, "time")


@register("ago", "any")
def ago(value: Any) -> str:
    moment = value if isinstance(value, GoTime) and value.kind == "time" else None
    if moment is None and type(value).__name__ in ("int", "Int64"):
        moment = to_time(value)
    start = moment or GoTime.now()
    nanos = (GoTime.now().moment - start.moment) // timedelta(microseconds=1) * 1000
    half = 5 * 10**8
    seconds = (nanos + half) // 10**9 if nanos >= 0 else -((-nanos + half) // 10**9)
    return format_duration(seconds * 10**9)


@register("duration", "any")
def duration(seconds: Any) -> str:
    if isinstance(seconds, str):
        try:
            n = int(seconds, 10) if seconds.lstrip("+-").isdigit() else 0
        except ValueError:
            n = 0
    elif isinstance(seconds, Int64):
        n = int(seconds)
    else:
        n = 0
    return format_duration(n * 10**9)


@register("durationRound", "any")
def duration_round(value: Any) -> str:
    if isinstance(value, str):
        try:
            nanos = parse_duration(value)
        except GoError:
            nanos = 0
    elif isinstance(value, Int64):
        nanos = int(value)
    elif isinstance(value, GoTime) and value.kind == "time":
        nanos = (GoTime.now().moment - value.moment) // timedelta(microseconds=1) * 1000
    else:
        nanos = 0
    u, hour = abs(nanos), 3600 * 10**9
    for size, unit in ((hour * 24 * 365, "y"), (hour * 24 * 30, "mo"), (hour * 24, "d"),
                       (hour, "h"), (60 * 10**9, "m"), (10**9, "s")):  # fmt: skip
        if u > size:
            return f"{u // size}{unit}"
    return "0s"


# -- dicts


def _dict_or_nil(d: Any) -> dict[str, Any]:
    return {} if d is None else d


register("dict", variadic="any")(
    lambda *v: {strval(v[i]): (v[i + 1] if i + 1 < len(v) else "") for i in range(0, len(v), 2)}
)
register("get", "map", "string")(lambda d, k: _dict_or_nil(d).get(k, ""))
register("hasKey", "map", "string")(lambda d, k: k in _dict_or_nil(d))
register("pluck", "string", variadic="map")(lambda k, *ds: [d[k] for d in ds if d and k in d])
register("keys", variadic="map")(lambda *ds: GoSlice([k for d in ds if d for k in d], "string"))
register("values", "map")(lambda d: list(_dict_or_nil(d).values()))
register("pick", "map", variadic="string")(lambda d, *ks: {k: d[k] for k in ks if d and k in d})
register("omit", "map", variadic="string")(
    lambda d, *ks: {k: v for k, v in _dict_or_nil(d).items() if k not in ks}
)


@register("set", "map", "string", "any")
def set_(d: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    if d is None or getattr(d, "nil", False):
        raise GoError("assignment to entry in nil map")
    d[key] = value
    return d


@register("unset", "map", "string")
def unset(d: dict[str, Any], key: str) -> dict[str, Any]:
    if d is not None:
        d.pop(key, None)
    return d


def _merge(dst: dict[str, Any], src: dict[str, Any], overwrite: bool) -> None:
    """mergo.Merge: fills what dst lacks (or has empty), deep into nested maps."""
    from shipper.templates.values import is_empty

    for key, value in (src or {}).items():
        if isinstance(dst.get(key), dict) and isinstance(value, dict):
            _merge(dst[key], value, overwrite)
        elif key not in dst or is_empty(dst[key]) or (overwrite and not is_empty(value)):
            dst[key] = copy.copy(value)


@register("merge", "map", variadic="map")
def merge(dst: dict[str, Any], *srcs: dict[str, Any]) -> Any:
    for src in srcs:
        _merge(dst, src, overwrite=False)
    return dst


@register("mergeOverwrite", "map", variadic="map")
def merge_overwrite(dst: dict[str, Any], *srcs: dict[str, Any]) -> Any:
    for src in srcs:
        _merge(dst, src, overwrite=True)
    return dst


alias("merge", "mustMerge")
alias("mergeOverwrite", "mustMergeOverwrite")


@register("dig", variadic="any")
def dig(*args: Any) -> Any:
    if len(args) < 3:
        raise GoError("dig needs at least three arguments")
    current, fallback, keys = args[-1], args[-2], args[:-2]
    for i, key in enumerate(keys):
        if not isinstance(current, dict) or type(current) is GoMap:
            raise GoError(
                f"interface conversion: interface {{}} is {go_type(current)},"
                " not map[string]interface {}"
            )
        if not isinstance(key, str):
            raise GoError(f"interface conversion: interface {{}} is {go_type(key)}, not string")
        if key not in current:
            return fallback
        current = current[key]
        if i == len(keys) - 1:
            return current
    return current


# -- encoding, hashing, JSON


def _b64decode(text: str, decode: Any) -> str:
    try:
        return decode(text.encode(), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return f"illegal base64 data at input byte {_first_bad(text)}"


def _first_bad(text: str) -> int:
    for i, ch in enumerate(text):
        if not (ch.isalnum() or ch in "+/="):
            return i
    return len(text) - len(text) % 4 if len(text) % 4 else len(text)


register("b64enc", "string")(lambda s: base64.b64encode(s.encode()).decode())
register("b64dec", "string")(lambda s: _b64decode(s, base64.b64decode))
register("b32enc", "string")(lambda s: base64.b32encode(s.encode()).decode())
register("b32dec", "string")(lambda s: _b32decode(s))
register("sha1sum", "string")(lambda s: hashlib.sha1(s.encode()).hexdigest())
register("sha256sum", "string")(lambda s: hashlib.sha256(s.encode()).hexdigest())
register("sha512sum", "string")(lambda s: hashlib.sha512(s.encode()).hexdigest())
register("adler32sum", "string")(lambda s: str(zlib.adler32(s.encode())))
register("uuidv4")(lambda: str(uuid.uuid4()))


def _b32decode(text: str) -> str:
    try:
        return base64.b32decode(text.encode()).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return f"illegal base32 data at input byte {_first_bad(text)}"


def _to_json(value: Any) -> JsonText:
    try:
        return JsonText(gojson.encode(value))
    except GoError:
        return JsonText("")


register("toJson", "any")(_to_json)
register("mustToJson", "any")(lambda v: JsonText(gojson.encode(v)))
register("toPrettyJson", "any")(lambda v: JsonText(gojson.indent(_to_json(v))))
register("mustToPrettyJson", "any")(lambda v: JsonText(gojson.indent(gojson.encode(v))))
register("toRawJson", "any")(lambda v: JsonText(gojson.encode(v, escape_html=False)))
alias("toRawJson", "mustToRawJson")
register("mustFromJson", "string")(gojson.decode)


@register("fromJson", "string")
def from_json(text: str) -> Any:
    try:
        return gojson.decode(text)
    except GoError:
        return None


# -- regular expressions (Go's RE2 syntax is, for what templates use, Python's)


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise GoError(f"error parsing regexp: {exc}: `{pattern}`") from None


def _matches(rx: re.Pattern[str], text: str, n: int = -1) -> list[re.Match[str]]:
    """Go's FindAll: an empty match right after the previous match is skipped."""
    found: list[re.Match[str]] = []
    prev_end = -1
    for m in rx.finditer(text):
        if m.start() == m.end() == prev_end:
            continue
        found.append(m)
        prev_end = m.end()
        if 0 <= n == len(found):
            break
    return found


def _expand(match: re.Match[str], template: str) -> str:
    """regexp.Expand: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(2)
        try:
            return match.group(int(name) if name.isdigit() else name) or ""
        except IndexError:
            return ""

    return re.sub(r"\$\$|\$\{(\w+)\}|\$(\w+)", one, template)


def _replace_all(pattern: str, text: str, repl: Any) -> str:
    out, pos = [], 0
    for m in _matches(_compile(pattern), text):
        out += [text[pos : m.start()], repl(m)]
        pos = m.end()
    return "".join(out) + text[pos:]


def _split_regex(pattern: str, text: str, n: int) -> GoSlice:
    if n == 0:
        return GoSlice([], "string", nil=True)
    rx = _compile(pattern)
    if pattern and not text:
        return GoSlice([""], "string")
    parts: list[str] = []
    beg = end = 0
    for m in _matches(rx, text, n):
        if n > 0 and len(parts) == n - 1:
            break
        end = m.start()
        if m.end() != 0:
            parts.append(text[beg:end])
        beg = m.end()
    if end != len(text):
        parts.append(text[beg:])
    return GoSlice(parts, "string")


def _find_all(pattern: str, text: str, n: int) -> GoSlice:
    found = [m.group(0) for m in _matches(_compile(pattern), text, n)]
    return GoSlice(found, "string", nil=not found)


def _regex_match(pattern: str, text: str) -> bool:
    try:
        return _compile(pattern).search(text) is not None
    except GoError:
        return False


register("regexMatch", "string", "string")(_regex_match)
register("mustRegexMatch", "string", "string")(lambda p, s: _compile(p).search(s) is not None)
register("regexFind", "string", "string")(
    lambda p, s: m.group(0) if (m := _compile(p).search(s)) else ""
)
register("regexFindAll", "string", "string", "int")(_find_all)
register("regexReplaceAll", "string", "string", "string")(
    lambda p, s, repl: _replace_all(p, s, lambda m: _expand(m, repl))
)
register("regexReplaceAllLiteral", "string", "string", "string")(
    lambda p, s, repl: _replace_all(p, s, lambda m: repl)
)
register("regexSplit", "string", "string", "int")(_split_regex)
register("regexQuoteMeta", "string")(lambda s: re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", s))
for _name in (
    "regexFind",
    "regexFindAll",
    "regexReplaceAll",
    "regexReplaceAllLiteral",
    "regexSplit",
):
    alias(_name, "must" + _name[0].upper() + _name[1:])

# -- reflection, environment, paths, URLs

register("typeOf", "any")(go_type)
register("typeIs", "string", "any")(lambda t, v: t == go_type(v))
register("typeIsLike", "string", "any")(lambda t, v: go_type(v) in (t, "*" + t))
register("kindOf", "any")(go_kind)
register("kindIs", "string", "any")(lambda k, v: k == go_kind(v))
register("env", "string")(lambda name: os.environ.get(name, ""))
register("expandenv", "string")(
    lambda s: re.sub(
        r"\$\{(\w+)\}|\$(\w+)", lambda m: os.environ.get(m.group(1) or m.group(2), ""), s
    )
)


def clean_path(path: str) -> str:
    """path.Clean (Go's: one leading slash kept, never two)."""
    if not path:
        return "."
    cleaned = posixpath.normpath(path)
    return cleaned[1:] if cleaned.startswith("//") else cleaned


def base_path(path: str) -> str:
    if not path:
        return "."
    path = path.rstrip("/")
    return path.rsplit("/", 1)[-1] if path else "/"


def ext_path(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    return name[dot:] if dot >= 0 else ""


register("base", "string")(base_path)
register("dir", "string")(lambda p: clean_path(p.rsplit("/", 1)[0] + "/" if "/" in p else ""))
register("clean", "string")(clean_path)
register("ext", "string")(ext_path)
register("isAbs", "string")(lambda p: p.startswith("/"))
for _name in ("base", "dir", "clean", "ext", "isAbs"):
    alias(_name, "os" + _name[0].upper() + _name[1:])


@register("urlParse", "string")
def url_parse(text: str) -> dict[str, Any]:
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise GoError(f"unable to parse url: {exc}") from None
    user = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    host = parts.netloc.rpartition("@")[2]
    path, opaque = parts.path, ""
    if parts.scheme and not parts.netloc and not path.startswith("/"):
        path, opaque = "", path  # Go: "mailto:x@y" is opaque
    return {"scheme": parts.scheme, "host": host, "hostname": parts.hostname or "",
            "path": path, "query": parts.query, "opaque": opaque, "fragment": parts.fragment,
            "userinfo": user}  # fmt: skip


@register("urlJoin", "map")
def url_join(d: dict[str, Any]) -> str:
    def get(key: str) -> str:
        value = (d or {}).get(key, "")
        if not isinstance(value, str):
            raise GoError(
                f"unable to parse {key} key, must be of type string, but {go_kind(value)} found"
            )
        return value

    netloc = (get("userinfo") + "@" if get("userinfo") else "") + get("host")
    path = quote(get("path"), safe="$&+,/:;=@")
    if netloc and path and not path.startswith("/"):
        path = "/" + path
    fragment = quote(get("fragment"), safe="$&+,/:;=@!()*?")
    return urlunsplit((get("scheme"), netloc, path, get("query"), fragment))

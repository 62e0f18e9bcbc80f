"""sprig v3's string, conversion, list, dict and default functions (Masterminds/sprig).

Ported from sprig's source with its quirks kept, since configs written for
kubernetes-event-exporter rely on them: ``trunc`` and ``substr`` count bytes, ``title`` is Go's
``strings.Title``, ``int``/``int64`` read strings with ``strconv.ParseInt(s, 0)`` and give 0 for
anything else, ``get`` of a missing key is ``""``, ``first`` of an empty list is nil, ``keys``
takes only ``map[string]interface{}`` (so not an Event's ``map[string]string`` label map).
"""

from __future__ import annotations

import copy
import math
import random
import string
from typing import Any

from shipper.templates.functions import alias, register
from shipper.templates.gofmt import go_quote, go_str, sprintf
from shipper.templates.gotime import GoTime
from shipper.templates.strcase import (
    GO_SPACE,
    camel_case,
    go_lower,
    go_title,
    go_upper,
    kebab_case,
    snake_case,
    swap_case,
)
from shipper.templates.values import (
    GoError,
    GoMap,
    GoSlice,
    Int64,
    Month,
    Weekday,
    go_kind,
    go_type,
    is_empty,
    is_int,
)

# -- conversions (sprig's strval, strslice; spf13/cast)


def strval(value: Any) -> str:
    """A value as text: strings as they are, Stringers by String(), the rest by %v."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, GoTime | Month | Weekday):
        return str(value)
    return go_str(value)


def strslice(value: Any) -> GoSlice:
    if isinstance(value, GoSlice) and value.elem == "string":
        return value
    if isinstance(value, list | bytes):
        items = value if isinstance(value, list) else list(value)
        return GoSlice([strval(v) for v in items if v is not None], "string")
    return GoSlice([] if value is None else [strval(value)], "string")


def _trim_zero_decimal(text: str) -> str:
    found_zero = False
    for i in range(len(text), 0, -1):
        ch = text[i - 1]
        if ch == "." and found_zero:
            return text[: i - 1]
        if ch == "0":
            found_zero = True
        elif ch != ".":
            return text
    return text


def parse_int(text: str, base: int = 0) -> int:
    """strconv.ParseInt(s, base, 64); ValueError if Go would refuse."""
    body = text[1:] if text[:1] in "+-" else text
    if base == 0 and len(body) > 1 and body[0] == "0" and body[1] in "01234567_":
        base, text = 8, text.replace("0", "", 1) if body[1] != "_" else text
    if not body or " " in text or (base != 0 and "_" in text):
        raise ValueError(text)
    value = int(text, base)
    if not -(2**63) <= value < 2**63:
        raise ValueError(text)
    return value


def to_int64(value: Any) -> int:
    """cast.ToInt64, errors read as 0 (sprig ignores them)."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if is_int(value):
        return int(value)
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else -(2**63)
    if isinstance(value, str):
        try:
            return parse_int(_trim_zero_decimal(value))
        except ValueError:
            return 0
    return 0


def to_float64(value: Any) -> float:
    """cast.ToFloat64, errors read as 0."""
    if value is None:
        return 0.0
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value) if "_" not in value and value.strip() == value else 0.0
        except ValueError:
            return 0.0
    return 0.0


register("toString", "any")(strval)
register("toStrings", "any")(strslice)
register("int64", "any")(lambda v: Int64(to_int64(v)))
register("int", "any")(to_int64)
register("float64", "any")(to_float64)


@register("atoi", "string")
def atoi(text: str) -> int:
    try:
        body = text[1:] if text[:1] in "+-" else text
        return int(text, 10) if body.isdigit() and body.isascii() else 0
    except ValueError:
        return 0


@register("toDecimal", "any")
def to_decimal(value: Any) -> Int64:
    try:
        return Int64(parse_int(go_str(value), 8))
    except ValueError:
        return Int64(0)


# -- strings


def _bytes_slice(text: str, start: int, end: int | None = None) -> str:
    return text.encode()[start:end].decode("utf-8", "replace")


def _go_slice_check(size: int, start: int, end: int) -> None:
    if not 0 <= start <= end <= size:
        raise GoError(f"runtime error: slice bounds out of range [{start}:{end}]")


register("trim", "string")(lambda s: s.strip(GO_SPACE))
register("upper", "string")(go_upper)
register("lower", "string")(go_lower)
register("title", "string")(go_title)
register("snakecase", "string")(snake_case)
register("camelcase", "string")(camel_case)
register("kebabcase", "string")(kebab_case)
register("swapcase", "string")(swap_case)
register("trimAll", "string", "string")(lambda cut, s: s.strip(cut))
register("trimPrefix", "string", "string")(lambda p, s: s[len(p) :] if s.startswith(p) else s)
register("trimSuffix", "string", "string")(lambda x, s: s[: -len(x)] if x and s.endswith(x) else s)
register("contains", "string", "string")(lambda sub, s: sub in s)
register("hasPrefix", "string", "string")(lambda p, s: s.startswith(p))
register("hasSuffix", "string", "string")(lambda x, s: s.endswith(x))
register("replace", "string", "string", "string")(lambda old, new, s: _replace(s, old, new))
register("indent", "int", "string")(lambda n, s: _indent(n, s))
register("nindent", "int", "string")(lambda n, s: "\n" + _indent(n, s))
register("plural", "string", "string", "int")(lambda one, many, n: one if n == 1 else many)
register("hello")(lambda: "Hello!")
alias("trimAll", "trimall")


def _replace(text: str, old: str, new: str) -> str:
    if old == "":  # Go inserts the new text before every rune and at the end
        return new + "".join(ch + new for ch in text)
    return text.replace(old, new)


def _indent(spaces: int, text: str) -> str:
    if spaces < 0:
        raise GoError("strings: negative Repeat count")
    pad = " " * spaces
    return pad + text.replace("\n", "\n" + pad)


@register("untitle", "string")
def untitle(text: str) -> str:
    out, lower_next = [], True
    for ch in text:
        if ch in GO_SPACE:
            lower_next = True
        elif lower_next:
            ch, lower_next = go_lower(ch), False
        out.append(ch)
    return "".join(out)


@register("trunc", "int", "string")
def trunc(length: int, text: str) -> str:
    size = len(text.encode())
    if length < 0 and size + length > 0:
        return _bytes_slice(text, size + length)
    if length >= 0 and size > length:
        return _bytes_slice(text, 0, length)
    return text


@register("substr", "int", "int", "string")
def substr(start: int, end: int, text: str) -> str:
    size = len(text.encode())
    if start < 0:
        _go_slice_check(size, 0, end)
        return _bytes_slice(text, 0, end)
    if end < 0 or end > size:
        _go_slice_check(size, start, size)
        return _bytes_slice(text, start)
    _go_slice_check(size, start, end)
    return _bytes_slice(text, start, end)


@register("repeat", "int", "string")
def repeat(count: int, text: str) -> str:
    if count < 0:
        raise GoError("strings: negative Repeat count")
    return text * count


def _latin1_bytes(text: str) -> list[str]:
    """goutils walks a string byte by byte and writes each byte back as a rune."""
    return [chr(b) for b in text.encode()]


@register("nospace", "string")
def nospace(text: str) -> str:
    chars = _latin1_bytes(text)
    kept = [c for c in chars if c not in GO_SPACE]
    return text if len(kept) == len(chars) else "".join(kept)


@register("initials", "string")
def initials(text: str) -> str:
    out, gap = [], True
    for ch in _latin1_bytes(text):
        if ch in GO_SPACE:
            gap = True
        elif gap:
            out.append(ch)
            gap = False
    return "".join(out)


@register("abbrev", "int", "string")
def abbrev(width: int, text: str) -> str:
    if width < 4:
        return text
    return _abbreviate(text, 0, width)


@register("abbrevboth", "int", "int", "string")
def abbrevboth(left: int, right: int, text: str) -> str:
    if right < 4 or (left > 0 and right < 7):
        return text
    return _abbreviate(text, left, right)


def _abbreviate(text: str, offset: int, width: int) -> str:
    data = text.encode()
    if not data or len(data) <= width:
        return text
    offset = min(offset, len(data))
    if len(data) - offset < width - 3:
        offset = len(data) - (width - 3)
    if offset <= 4:
        return _bytes_slice(text, 0, width - 3) + "..."
    if offset + width - 3 < len(data):
        return "..." + _abbreviate(_bytes_slice(text, offset), 0, width - 3)
    return "..." + _bytes_slice(text, len(data) - (width - 3))


@register("wrap", "int", "string")
def wrap(width: int, text: str) -> str:
    return _wrap(width, "\n", text, long_words=False)


@register("wrapWith", "int", "string", "string")
def wrap_with(width: int, newline: str, text: str) -> str:
    return _wrap(width, newline, text, long_words=True)


def _wrap(width: int, newline: str, text: str, long_words: bool) -> str:
    """goutils.WrapCustom (byte offsets, as goutils counts); ``wrap`` leaves long words whole."""
    data = text.encode()
    if not data:
        return ""
    nl, width, out, offset = newline.encode() or b"\n", max(width, 1), bytearray(), 0
    while len(data) - offset > width:
        if data[offset : offset + 1] == b" ":
            offset += 1
            continue
        space = data.rfind(b" ", offset, width + offset + 1)
        if space >= offset:
            out += data[offset:space] + nl
            offset = space + 1
        elif long_words:
            out += data[offset : offset + width] + nl
            offset += width
        else:
            after = data.find(b" ", offset + width)
            if after < 0:
                out += data[offset:]
                offset = len(data)
            else:
                out += data[offset:after] + nl
                offset = after + 1
    out += data[offset:]
    return out.decode("utf-8", "replace")


@register("quote", variadic="any")
def quote(*values: Any) -> str:
    return " ".join(go_quote(strval(v)) for v in values if v is not None)


@register("squote", variadic="any")
def squote(*values: Any) -> str:
    return " ".join(f"'{go_str(v)}'" for v in values if v is not None)


@register("cat", variadic="any")
def cat(*values: Any) -> str:
    kept = [v for v in values if v is not None]
    return sprintf(" ".join(["%v"] * len(kept)), *kept)


def _split(text: str, sep: str, n: int = -1) -> list[str]:
    if n == 0:
        return []
    if sep == "":
        chars = list(text)
        return chars if n < 0 or n >= len(chars) else [*chars[: n - 1], "".join(chars[n - 1 :])]
    return text.split(sep, n - 1 if n > 0 else -1)


register("splitList", "string", "string")(lambda sep, s: GoSlice(_split(s, sep), "string"))
register("split", "string", "string")(
    lambda sep, s: GoMap({f"_{i}": p for i, p in enumerate(_split(s, sep))})
)
register("splitn", "string", "int", "string")(
    lambda sep, n, s: GoMap({f"_{i}": p for i, p in enumerate(_split(s, sep, n))})
)
register("join", "string", "any")(lambda sep, v: sep.join(strslice(v)))
register("sortAlpha", "any")(
    lambda v: (
        GoSlice(sorted(strslice(v)), "string")
        if isinstance(v, list | bytes)
        else GoSlice([strval(v)], "string")
    )
)


@register("randAlphaNum", "int")
def rand_alnum(count: int) -> str:
    return _random(count, string.ascii_letters + string.digits)


register("randAlpha", "int")(lambda n: _random(n, string.ascii_letters))
register("randNumeric", "int")(lambda n: _random(n, string.digits))
register("randAscii", "int")(lambda n: _random(n, "".join(map(chr, range(32, 127)))))
register("shuffle", "string")(lambda s: "".join(random.sample(s, len(s))))
register("randInt", "int", "int")(lambda lo, hi: _rand_int(lo, hi))


def _rand_int(low: int, high: int) -> int:
    if high <= low:
        raise GoError("invalid argument to Intn")
    return random.randrange(low, high)


@register("randBytes", "int")
def rand_bytes(count: int) -> str:
    import base64
    import os

    if count < 0:
        raise GoError("runtime error: makeslice: len out of range")
    return base64.b64encode(os.urandom(count)).decode()


def _random(count: int, alphabet: str) -> str:
    if count < 0:
        raise GoError(f"count {count} is not allowed")
    return "".join(random.SystemRandom().choice(alphabet) for _ in range(count))


# -- defaults


@register("default", "any", variadic="any")
def default(fallback: Any, *given: Any) -> Any:
    if not given or is_empty(given[0]):
        return fallback
    return given[0]


register("empty", "any")(is_empty)
register("coalesce", variadic="any")(lambda *v: next((x for x in v if not is_empty(x)), None))
register("all", variadic="any")(lambda *v: all(not is_empty(x) for x in v))
register("any", variadic="any")(lambda *v: any(not is_empty(x) for x in v))
register("ternary", "any", "any", "bool")(lambda yes, no, cond: yes if cond else no)


@register("fail", "string")
def fail(message: str) -> str:
    raise GoError(message)


register("deepCopy", "any")(copy.deepcopy)
alias("deepCopy", "mustDeepCopy")

# -- lists


def _items(value: Any, what: str) -> list[Any]:
    """The elements of a slice; GoError (sprig's "Cannot <what> on type") for anything else."""
    if isinstance(value, list):
        return list(value)
    if isinstance(value, bytes):
        return list(value)
    if value is None:
        raise GoError("runtime error: invalid memory address or nil pointer dereference")
    raise GoError(f"Cannot {what} on type {go_kind(value)}")


def _nil_list() -> GoSlice:
    return GoSlice([], nil=True)


register("list", variadic="any")(lambda *v: list(v))
alias("list", "tuple")
register("append", "any", "any")(lambda lst, v: [*_items(lst, "push"), v])
register("prepend", "any", "any")(lambda lst, v: [v, *_items(lst, "prepend")])
register("first", "any")(lambda lst: (_items(lst, "find first") or [None])[0])
register("last", "any")(lambda lst: (_items(lst, "find last") or [None])[-1])
register("rest", "any")(
    lambda lst: _items(lst, "find rest")[1:] if _items(lst, "find rest") else _nil_list()
)
register("initial", "any")(
    lambda lst: _items(lst, "find initial")[:-1] if _items(lst, "find initial") else _nil_list()
)
register("reverse", "any")(lambda lst: _items(lst, "find reverse")[::-1])
register("compact", "any")(lambda lst: [v for v in _items(lst, "compact") if not is_empty(v)])
register("has", "any", "any")(
    lambda needle, hay: (
        hay is not None and any(deep_equal(needle, v) for v in _items(hay, "find has"))
    )
)
register("without", "any", variadic="any")(
    lambda lst, *omit: [
        v for v in _items(lst, "find without") if not any(deep_equal(v, o) for o in omit)
    ]
)
alias("append", "push", "mustAppend", "mustPush")
for _name in (
    "prepend",
    "first",
    "last",
    "rest",
    "initial",
    "reverse",
    "compact",
    "has",
    "without",
):
    alias(_name, "must" + _name[0].upper() + _name[1:])


@register("uniq", "any")
def uniq(lst: Any) -> list[Any]:
    out: list[Any] = []
    for item in _items(lst, "find uniq"):
        if not any(deep_equal(item, seen) for seen in out):
            out.append(item)
    return out


alias("uniq", "mustUniq")


@register("slice", "any", variadic="any")
def slice_(lst: Any, *indexes: Any) -> Any:
    if not isinstance(lst, list | bytes):
        if lst is None:
            raise GoError("runtime error: invalid memory address or nil pointer dereference")
        raise GoError(f"list should be type of slice or array but {go_kind(lst)}")
    if not lst:
        return None
    start = to_int64(indexes[0]) if indexes else 0
    end = to_int64(indexes[1]) if len(indexes) > 1 else len(lst)
    if not 0 <= start <= end <= len(lst):
        raise GoError(f"reflect: slice index out of range [{start}:{end}]")
    part = lst[start:end]
    return GoSlice(part, lst.elem) if isinstance(lst, GoSlice) else part


alias("slice", "mustSlice")


@register("concat", variadic="any")
def concat(*lists: Any) -> Any:
    out: list[Any] = []
    for lst in lists:
        if not isinstance(lst, list | bytes):
            raise GoError(f"Cannot concat type {go_kind(lst)} as list")
        out += list(lst)
    return out if out else _nil_list()


@register("chunk", "int", "any")
def chunk(size: int, lst: Any) -> list[Any]:
    items = _items(lst, "chunk")
    if size <= 0:
        raise GoError("runtime error: integer divide by zero")
    return [items[i : i + size] for i in range(0, len(items), size)]


alias("chunk", "mustChunk")


@register("until", "int")
def until(count: int) -> GoSlice:
    return until_step(0, count, 1 if count >= 0 else -1)


@register("untilStep", "int", "int", "int")
def until_step(start: int, stop: int, step: int) -> GoSlice:
    if (stop < start and step >= 0) or (stop >= start and step <= 0):
        return GoSlice([], "int")
    return GoSlice(range(start, stop, step), "int")


@register("seq", variadic="int")
def seq(*params: int) -> str:
    if len(params) == 1:
        start, end, step = 1, params[0], 1 if params[0] >= 1 else -1
    elif len(params) == 2:
        start, end = params
        step = 1 if end >= start else -1
    elif len(params) == 3:
        start, step, end = params
        if end < start and step > 0:
            return ""
    else:
        return ""
    increment = -1 if end < start else 1
    return " ".join(map(str, until_step(start, end + increment, step)))


def deep_equal(a: Any, b: Any) -> bool:
    """reflect.DeepEqual: types must match too (an int is not an int64, 1 is not 1.0)."""
    if go_type(a) != go_type(b):
        return False
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(deep_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(deep_equal(a[k], b[k]) for k in a)
    return a == b


register("deepEqual", "any", "any")(deep_equal)

"""Go's fmt package for template values: how ``{{ x }}``, ``print`` and ``printf`` write them.

Kept faithful because users see it: floats print as ``1e+06`` (shortest digits, exponent from
1e6 on), maps as ``map[a:1 b:2]`` sorted by key, nil inside a container as ``<nil>``, a verb that
does not fit its value as ``%!d(string=abc)``.
"""

from __future__ import annotations

import math
import unicodedata
from decimal import Decimal
from typing import Any

from shipper.templates.values import Month, Struct, Weekday, go_type, is_int


def _digits(f: float) -> tuple[str, int]:
    """Shortest decimal digits of ``abs(f)`` (no trailing zeros) and the decimal point position:
    the value is ``0.<digits> * 10**dp`` (strconv's decimalSlice)."""
    _, digits, exponent = Decimal(repr(abs(f))).as_tuple()
    text = "".join(map(str, digits))
    if text.strip("0") == "":
        return "0", 1
    dp = len(text) + int(exponent)
    stripped = text.lstrip("0")
    dp -= len(text) - len(stripped)
    return stripped.rstrip("0"), dp


def _exp_form(neg: bool, digits: str, dp: int, upper: bool = False) -> str:
    exp = dp - 1
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    sign = "-" if exp < 0 else "+"
    return ("-" if neg else "") + mant + ("E" if upper else "e") + sign + f"{abs(exp):02d}"


def _fixed_form(neg: bool, digits: str, dp: int) -> str:
    if dp <= 0:
        text = "0." + "0" * -dp + digits
    elif dp >= len(digits):
        text = digits + "0" * (dp - len(digits))
    else:
        text = digits[:dp] + "." + digits[dp:]
    return ("-" if neg else "") + text


def format_float(f: float, verb: str = "g", prec: int | None = None) -> str:
    """strconv.FormatFloat for the verbs templates use; ``g`` without precision is ``%v``
    (shortest digits; exponent form below 1e-4 and from 1e6 on, as Go's eprec 6)."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    neg = math.copysign(1.0, f) < 0
    if verb in "gG" and prec is None:
        digits, dp = _digits(f)
        if digits == "0":
            return "-0" if neg else "0"
        if dp - 1 < -4 or dp - 1 >= 6:
            return _exp_form(neg, digits, dp, verb == "G")
        return _fixed_form(neg, digits, dp)
    if verb in "gG":
        return format(f, f".{prec or 1}{verb}")
    if verb in "eE":
        return format(f, f".{6 if prec is None else prec}{verb}")
    return format(f, f".{6 if prec is None else prec}f")


def go_quote(text: str, ascii_only: bool = False) -> str:
    """strconv.Quote (QuoteToASCII with ``ascii_only``): printable runes kept, others escaped."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif _printable(ch) and not (ascii_only and code >= 0x80):
            out.append(ch)
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_SIMPLE_ESCAPES = {
    "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
}  # fmt: skip


def _printable(ch: str) -> bool:
    """unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space."""
    return ch == " " or unicodedata.category(ch)[0] in "LMNPS"


def go_str(value: Any, depth: int = 0) -> str:
    """``fmt.Sprint(value)`` (the ``%v`` verb)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Month | Weekday):
        return str(value)
    if is_int(value):
        return int.__repr__(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bytes):
        return "[" + " ".join(str(b) for b in value) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_str(v, depth + 1) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: map_key_order(kv[0]))
        return "map[" + " ".join(f"{go_str(k, 1)}:{go_str(v, 1)}" for k, v in items) + "]"
    if isinstance(value, Struct):
        inner = "{" + " ".join(go_str(f.value, depth + 1) for f in value.fields) + "}"
        return ("&" if value.pointer and depth == 0 else "") + inner
    return str(value)


def map_key_order(key: Any) -> Any:
    """fmtsort's order: numbers by value, strings by bytes (= code points)."""
    return (0, key, "") if isinstance(key, int | float) else (1, 0, str(key))


def sprint(*args: Any) -> str:
    """fmt.Sprint: a space between two operands when neither is a string."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if i > 0 and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_str(arg))
    return "".join(out)


def sprintln(*args: Any) -> str:
    """fmt.Sprintln: spaces between all operands and a newline."""
    return " ".join(go_str(a) for a in args) + "\n"


def _arg_index(fmt: str, i: int) -> tuple[int | None, int]:
    """An explicit argument index ``[n]`` at ``i``: (0-based index or None, position after)."""
    if i < len(fmt) and fmt[i] == "[":
        close = fmt.find("]", i)
        if close > i + 1 and fmt[i + 1 : close].isdigit():
            return int(fmt[i + 1 : close]) - 1, close + 1
    return None, i


def _number(fmt: str, i: int) -> tuple[int | None, int]:
    start = i
    while i < len(fmt) and fmt[i].isdigit():
        i += 1
    return (int(fmt[start:i]) if i > start else None), i


class _Args:
    """The arguments of a Sprintf call and which one comes next (``%[2]d`` moves it)."""

    def __init__(self, args: tuple[Any, ...]) -> None:
        self.args, self.next, self.reordered = args, 0, False

    def take(self) -> tuple[bool, Any]:
        if self.next >= len(self.args):
            return False, None
        self.next += 1
        return True, self.args[self.next - 1]

    def star(self) -> int | None:
        ok, value = self.take()
        return int(value) if ok and is_int(value) else None

    def index_then_number(self, fmt: str, i: int) -> tuple[int | None, int]:
        """An optional ``[n]`` (the next argument), then ``*`` (taken from the arguments) or
        digits: a width or a precision."""
        index, i = _arg_index(fmt, i)
        if index is not None:
            self.next, self.reordered = index, True
        if fmt[i : i + 1] == "*":
            return self.star(), i + 1
        return _number(fmt, i)


def sprintf(fmt: str, *args: Any) -> str:
    """fmt.Sprintf for the verbs templates use, with Go's %!verb(type=value) for misfits."""
    out: list[str] = []
    state = _Args(args)
    i = 0
    while i < len(fmt):
        pct = fmt.find("%", i)
        if pct < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:pct])
        i = pct + 1
        start = i
        while i < len(fmt) and fmt[i] in "-+# 0":
            i += 1
        flags = fmt[start:i]
        width, i = state.index_then_number(fmt, i)
        prec = None
        if fmt[i : i + 1] == ".":
            prec, i = state.index_then_number(fmt, i + 1)
            if fmt[i - 1 : i] != "*" and prec is None:
                prec = 0  # "%.f": precision 0
        index, i = _arg_index(fmt, i)
        if index is not None:
            state.next, state.reordered = index, True
        if i >= len(fmt):
            out.append("%!(NOVERB)")
            break
        verb, i = fmt[i], i + 1
        if verb == "%":
            out.append("%")
            continue
        ok, value = state.take()
        out.append(format_verb(value, verb, flags, width, prec) if ok else f"%!{verb}(MISSING)")
    if not state.reordered and state.next < len(args):
        extra = ", ".join(_bad_value(a) for a in args[state.next :])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _bad_value(value: Any) -> str:
    return "<nil>" if value is None else f"{go_type(value)}={go_str(value)}"


def _pad(text: str, flags: str, width: int | None, numeric: bool = False) -> str:
    if width is None or len(text) >= width:
        return text
    if "-" in flags:
        return text + " " * (width - len(text))
    if "0" in flags and numeric:
        sign = text[0] if text[:1] in "+- " else ""
        body = text[len(sign) :]
        return sign + "0" * (width - len(text)) + body
    return " " * (width - len(text)) + text


def _sign(text: str, flags: str) -> str:
    if text.startswith("-"):
        return text
    if "+" in flags:
        return "+" + text
    if " " in flags:
        return " " + text
    return text


def format_verb(
    value: Any, verb: str, flags: str = "", width: int | None = None, prec: int | None = None
) -> str:
    """One ``%verb`` applied to one value."""
    from shipper.templates.gotime import GoTime

    if value is None:
        return _pad("<nil>", flags, width) if verb in "vT" else f"%!{verb}(<nil>)"
    if verb == "T":
        return _pad(go_type(value), flags, width)
    if isinstance(value, GoTime) and verb in "vsq":
        value = str(value)
    if verb == "v" and isinstance(value, Struct) and "+" in flags:
        inner = " ".join(f"{f.name}:{go_str(f.value, 1)}" for f in value.fields)
        return _pad(
            ("&" if value.pointer else "") + "{" + inner + "}", flags.replace("+", ""), width
        )
    if isinstance(value, bool):
        if verb in "vt":
            return _pad("true" if value else "false", flags, width)
        return f"%!{verb}(bool={go_str(value)})"
    if is_int(value):
        return _format_int(value, verb, flags, width, prec)
    if isinstance(value, float):
        return _format_float_verb(value, verb, flags, width, prec)
    if isinstance(value, str):
        return _format_str(value, verb, flags, width, prec)
    if isinstance(value, list | bytes) and verb != "v":
        if isinstance(value, bytes) and verb in "sqxX":
            return _format_str(value.decode("utf-8", "replace"), verb, flags, width, prec)
        return "[" + " ".join(format_verb(v, verb, flags, width, prec) for v in value) + "]"
    if isinstance(value, list | dict | Struct | bytes):
        return _pad(go_str(value), flags, width)
    return f"%!{verb}({_bad_value(value)})"


def _format_int(value: int, verb: str, flags: str, width: int | None, prec: int | None) -> str:
    n = int(value)
    if verb == "v" and isinstance(value, Month | Weekday):
        return _pad(str(value), flags, width)
    if verb in "vd":
        text = str(abs(n))
    elif verb in "xX":
        text = format(abs(n), verb) if verb == "x" else format(abs(n), "X")
        if "#" in flags:
            text = ("0x" if verb == "x" else "0X") + text
    elif verb == "o":
        text = ("0" if "#" in flags else "") + format(abs(n), "o")
    elif verb == "O":
        text = "0o" + format(abs(n), "o")
    elif verb == "b":
        text = format(abs(n), "b")
    elif verb == "c":
        return _pad(chr(n) if 0 <= n <= 0x10FFFF else "\ufffd", flags, width)
    elif verb == "q":
        return _pad(
            "'" + go_quote(chr(n))[1:-1].replace("'", "\\'").replace('\\"', '"') + "'", flags, width
        )
    elif verb == "U":
        shown = f" '{chr(n)}'" if "#" in flags and 0 <= n <= 0x10FFFF and _printable(chr(n)) else ""
        return _pad(f"U+{n:04X}{shown}", flags, width)
    elif verb in "eEfFgG":
        return f"%!{verb}({go_type(value)}={n})"
    else:
        return f"%!{verb}({go_type(value)}={n})"
    if prec is not None:
        text = text.rjust(prec, "0")
    text = ("-" if n < 0 else "") + text
    return _pad(_sign(text, flags), flags, width, numeric=prec is None)


def _format_float_verb(
    value: float, verb: str, flags: str, width: int | None, prec: int | None
) -> str:
    if verb == "v":
        verb = "g"
    if verb not in "eEfFgGxX":
        return f"%!{verb}(float64={format_float(value)})"
    if verb in "xX":
        return _pad(_sign(_hex_float(value, verb == "X"), flags), flags, width, numeric=True)
    text = format_float(value, verb.lower() if verb == "F" else verb, prec)
    return _pad(_sign(text, flags), flags, width, numeric=True)


def _hex_float(value: float, upper: bool) -> str:
    """%x of a float: ``0x1.cp+01`` (shortest hex mantissa, a two-digit exponent)."""
    if math.isnan(value) or math.isinf(value):
        return format_float(value)
    text = value.hex()  # -0x1.c000000000000p+1
    sign, _, body = text.rpartition("0x")
    mantissa, _, exp = body.partition("p")
    mantissa = mantissa.rstrip("0").rstrip(".")
    exp_sign, digits = ("-", exp[1:]) if exp.startswith("-") else ("+", exp.lstrip("+"))
    out = f"{sign}0x{mantissa}p{exp_sign}{int(digits):02d}"
    return out.upper().replace("0X", "0X") if upper else out


def _format_str(value: str, verb: str, flags: str, width: int | None, prec: int | None) -> str:
    if prec is not None and verb in "svq":
        value = value[:prec]
    if verb in "vs":
        return _pad(str.__str__(value), flags, width)
    if verb == "q":
        if "#" in flags and "`" not in value and all(_printable(c) for c in value):
            return _pad("`" + value + "`", flags, width)
        return _pad(go_quote(value, ascii_only="+" in flags), flags, width)
    if verb in "xX":
        data = value.encode()
        sep = " " if " " in flags else ""
        text = sep.join(format(b, "02x" if verb == "x" else "02X") for b in data)
        return _pad(text, flags, width)
    return f"%!{verb}(string={value})"

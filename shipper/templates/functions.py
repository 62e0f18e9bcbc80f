"""text/template's builtin functions, and the table of every function a template may call.

Each function is registered with its Go parameter types, because text/template converts and
checks arguments by them: ``"string"``, ``"int"``, ``"int64"``, ``"float64"``, ``"bool"``,
``"time"`` (time.Time), ``"map"`` (map[string]interface{}), ``"any"`` (interface{}) and
``"value"`` (reflect.Value, the builtins'). A constant must fit the type (``trunc "5" x`` is an
error), a value must have exactly that type (``trunc .Count x`` is an error: Count is an int32).
What a Go function returns as an error, or panics with, is raised as :class:`GoError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

from shipper.templates.gofmt import go_str, sprint, sprintf, sprintln
from shipper.templates.values import (
    GoError,
    GoMap,
    Method,
    NamedStr,
    basic_kind,
    go_type,
    is_int,
    truth,
)

FUNCTIONS: dict[str, Method] = {}
#: The builtins text/template evaluates itself (short-circuit ``and``/``or``, ``call``).
SPECIAL = frozenset(("and", "or", "call"))


def register(name: str, *params: str, variadic: str | None = None) -> Callable[[Any], Any]:
    """Add a function under ``name`` (and return it unchanged, to stack aliases)."""

    def add(fn: Any) -> Any:
        FUNCTIONS[name] = Method(params, fn, variadic)
        return fn

    return add


def alias(name: str, *others: str) -> None:
    for other in others:
        FUNCTIONS[other] = FUNCTIONS[name]


# -- comparisons (funcs.go)


def _is_nil(value: Any) -> bool:
    return value is None or getattr(value, "nil", False)


def _comparable(value: Any) -> bool:
    return not isinstance(value, list | dict | bytes)


@register("eq", "value", variadic="value")
def eq(first: Any, *others: Any) -> bool:
    """``eq a b c``: a equals b or c; incompatible kinds are an error, as in Go."""
    if not others:
        raise GoError("missing argument for comparison")
    k1 = basic_kind(first)
    for other in others:
        k2 = basic_kind(other)
        if k1 != k2:
            if first is not None and other is not None:
                raise GoError(
                    f"incompatible types for comparison: {go_type(first)} and {go_type(other)}"
                )
            same = False
        elif k1 != "invalid":
            same = first == other
        elif _is_nil(first) or _is_nil(other):
            same = _is_nil(first) == _is_nil(other)
        elif not _comparable(other) or not _comparable(first):
            raise GoError(f"non-comparable type {go_str(other)}: {go_type(other)}")
        else:
            same = type(first) is type(other) and first == other
        if same:
            return True
    return False


@register("ne", "value", "value")
def ne(a: Any, b: Any) -> bool:
    return not eq(a, b)


@register("lt", "value", "value")
def lt(a: Any, b: Any) -> bool:
    k1, k2 = basic_kind(a), basic_kind(b)
    if "invalid" in (k1, k2):
        raise GoError("invalid type for comparison")
    if k1 != k2:
        raise GoError(f"incompatible types for comparison: {go_type(a)} and {go_type(b)}")
    if k1 == "bool":
        raise GoError("invalid type for comparison")
    return a < b


@register("le", "value", "value")
def le(a: Any, b: Any) -> bool:
    return lt(a, b) or eq(a, b)


@register("gt", "value", "value")
def gt(a: Any, b: Any) -> bool:
    return not le(a, b)


@register("ge", "value", "value")
def ge(a: Any, b: Any) -> bool:
    return not lt(a, b)


@register("not", "value")
def not_(value: Any) -> bool:
    return not truth(value)


# -- containers


@register("len", "value")
def length(item: Any) -> int:
    if isinstance(item, str):
        return len(item.encode())
    if isinstance(item, list | dict | bytes):
        return len(item)
    if item is None:
        raise GoError("len of nil pointer")
    raise GoError(f"len of type {go_type(item)}")


def _index_arg(index: Any, size: int) -> int:
    if index is None:
        raise GoError("cannot index slice/array with nil")
    if not is_int(index):
        raise GoError(f"cannot index slice/array with type {go_type(index)}")
    if index < 0 or index > size:
        raise GoError(f"index out of range: {index}")
    return int(index)


@register("index", "value", variadic="value")
def index(item: Any, *keys: Any) -> Any:
    """``index .Labels "app.kubernetes.io/name"``, ``index .list 0``; a missing map key gives
    the zero value of the map's element type ("" for the event's label maps, nil otherwise)."""
    if item is None:
        raise GoError("index of untyped nil")
    for key in keys:
        if isinstance(item, str | bytes | list):
            sequence = item.encode() if isinstance(item, str) else item
            position = _index_arg(key, len(sequence))
            if position >= len(sequence):
                raise GoError(f"reflect: slice index out of range: {position}")
            item = sequence[position]
        elif isinstance(item, dict):
            if key is None:
                raise GoError("value is nil; should be of type string")
            if not isinstance(key, str) or isinstance(key, NamedStr):
                raise GoError(f"value has type {go_type(key)}; should be string")
            zero = "" if isinstance(item, GoMap) and item.elem == "string" else None
            item = item.get(key, zero)
        else:
            raise GoError(f"can't index item of type {go_type(item)}")
    return item


# -- printing and escaping


def _eval_args(args: tuple[Any, ...]) -> str:
    """text/template's evalArgs: one string as is, else fmt.Sprint of the values."""
    if len(args) == 1 and isinstance(args[0], str):
        return str.__str__(args[0])
    return sprint(*("<no value>" if a is None else a for a in args))


register("print", variadic="any")(sprint)
register("println", variadic="any")(sprintln)
register("printf", "string", variadic="any")(sprintf)


@register("html", variadic="any")
def html(*args: Any) -> str:
    table = {"\0": "\ufffd", '"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;"}
    return "".join(table.get(ch, ch) for ch in _eval_args(args))


_JS = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026",
       "=": "\\u003D"}  # fmt: skip


@register("js", variadic="any")
def js(*args: Any) -> str:
    out = []
    for ch in _eval_args(args):
        if ch in _JS:
            out.append(_JS[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u00{ord(ch):02X}")
        elif ord(ch) >= 0x80 and not ch.isprintable():
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


@register("urlquery", variadic="any")
def urlquery(*args: Any) -> str:
    return quote_plus(_eval_args(args), safe="")


# -- evaluated by the executor itself; registered for their signatures


@register("and", "value", variadic="value")
def and_(*args: Any) -> Any:
    raise AssertionError("evaluated by the executor")


@register("or", "value", variadic="value")
def or_(*args: Any) -> Any:
    raise AssertionError("evaluated by the executor")


@register("call", "value", variadic="value")
def call(fn: Any, *args: Any) -> Any:
    """No template data here holds a function value, so ``call`` always fails as Go would."""
    if fn is None:
        raise GoError("call of nil")
    raise GoError(f"non-function of type {go_type(fn)}")


def _load_sprig() -> None:
    from shipper.templates import sprig, sprig_more  # noqa: F401  (they register themselves)


_load_sprig()

"""Go values as Python values, with just enough of Go's types kept to behave as Go does.

A template's output depends on Go types in places users notice: ``{{ .Count }}`` of an
``int32`` may not be passed where an ``int`` is expected (``trunc .Count``), a missing key of a
``map[string]string`` is ``""`` through ``index`` but ``<no value>`` through ``.key``, sprig's
``duration`` ignores an ``int`` but reads an ``int64``, and a nil map is ``null`` in JSON but
``{}`` when empty. So:

- ``str``, ``bool``, ``float`` (float64), ``int`` (Go ``int``) are themselves; :class:`Int64`,
  :class:`Int32`, :class:`Month`, :class:`Weekday` tag the other integer types;
  :class:`NamedStr` a named string type (``types.UID``);
- ``None`` is Go's nil interface and the "no value" of a missing key;
- ``list`` is ``[]interface{}``, ``dict`` is ``map[string]interface{}``; :class:`GoSlice` and
  :class:`GoMap` carry another element type or nil-ness;
- :class:`Struct` is a struct with Go field names, JSON tags, embedded structs and methods;
- ``bytes`` is ``[]byte``; times are :class:`shipper.templates.gotime.GoTime`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class TemplateError(ValueError):
    """A template that cannot be compiled or rendered; the message says where and why."""


class GoError(Exception):
    """What a Go function returns as its error, or panics with: becomes "error calling f: ..."."""


class Int64(int):
    """A Go ``int64`` (sprig's arithmetic results, ``Unix()``, ``GetTimestampMs``)."""

    go_type = "int64"


class Int32(int):
    """A Go ``int32`` (an Event's ``Count``)."""

    go_type = "int32"


_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


class Month(int):
    """``time.Month``: prints its name, compares as an integer."""

    go_type = "time.Month"

    def __str__(self) -> str:
        return _MONTHS[self - 1] if 1 <= self <= 12 else f"%!Month({int(self)})"


class Weekday(int):
    """``time.Weekday``: prints its name."""

    go_type = "time.Weekday"

    def __str__(self) -> str:
        return _DAYS[self] if 0 <= self <= 6 else f"%!Weekday({int(self)})"


class JsonText(str):
    """A string that is JSON (``toJson``'s result): a JSON body writes it as is where it stands
    alone. For everything else it is a plain Go string."""


class NamedStr(str):
    """A named string type such as ``types.UID``: not assignable to a ``string`` parameter."""

    go_type = "types.UID"


class GoSlice(list):
    """A slice whose element type is not ``interface{}``, or a nil slice (``null`` in JSON)."""

    def __init__(self, items: Any = (), elem: str = "interface {}", nil: bool = False) -> None:
        super().__init__(items)
        self.elem = elem
        self.nil = nil and not self


class GoMap(dict):
    """A map whose element type is not ``interface{}`` (``map[string]string``), or nil."""

    def __init__(self, items: Any = (), elem: str = "string", nil: bool = False) -> None:
        super().__init__(items)
        self.elem = elem
        self.nil = nil and not self


def str_map(items: dict[str, str] | None) -> GoMap:
    """A ``map[string]string`` from a Python dict; ``None`` is the nil map."""
    return GoMap(items or {}, "string", nil=items is None or not items)


@dataclass
class Method:
    """A method a template can call: Go parameter types (see functions.py) and the callable."""

    params: tuple[str, ...]
    fn: Callable[..., Any]
    variadic: str | None = None


@dataclass
class Field:
    """One field of a struct: Go name, value, JSON tag (``None``: the Go name), embedded or not."""

    name: str
    value: Any
    json: str | None = None
    embedded: bool = False


@dataclass
class Struct:
    """A Go struct value (or a pointer to one, ``pointer=True``): fields in declaration order.

    ``extras`` are names this project adds for convenience (``.Metadata``, ``.Note``): readable by
    templates, never printed or encoded, since the Go struct has no such field.
    """

    type_name: str
    fields: list[Field]
    methods: dict[str, Method] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    pointer: bool = False

    def lookup(self, name: str) -> tuple[bool, Any]:
        """Go's field selection: own fields first, then embedded ones, breadth first."""
        level: list[Struct] = [self]
        while level:
            for struct in level:
                for f in struct.fields:
                    if f.name == name:
                        return True, f.value
            level = [f.value for s in level for f in s.fields if f.embedded]
        if name in self.extras:
            return True, self.extras[name]
        return False, None

    def method(self, name: str) -> Method | None:
        """A method of the struct or one promoted from an embedded struct."""
        if name in self.methods:
            return self.methods[name]
        for f in self.fields:
            if f.embedded and isinstance(f.value, Struct):
                found = f.value.method(name)
                if found is not None:
                    return found
        return None

    def names(self) -> list[str]:
        """Every name a template may select here (for "did you mean")."""
        out = [f.name for f in self.fields] + list(self.methods) + list(self.extras)
        for f in self.fields:
            if f.embedded and isinstance(f.value, Struct):
                out += f.value.names()
        return out

    @property
    def go_type(self) -> str:
        return ("*" if self.pointer else "") + self.type_name


def go_type(value: Any) -> str:
    """The Go type name of a value, as ``%T`` and error messages print it."""
    if value is None:
        return "<nil>"
    explicit = getattr(value, "go_type", None)
    if isinstance(explicit, str):
        return explicit
    if isinstance(value, GoSlice):
        return f"[]{value.elem}"
    if isinstance(value, GoMap):
        return f"map[string]{value.elem}"
    return _first_match(value, _GO_TYPES, type(value).__name__)


def go_kind(value: Any) -> str:
    """reflect.Kind's name (sprig's ``kindOf``)."""
    if value is None:
        return "invalid"
    if isinstance(value, Struct):
        return "ptr" if value.pointer else "struct"
    return _first_match(value, _GO_KINDS, "struct")


def _first_match(value: Any, table: tuple[tuple[Any, str], ...], default: str) -> str:
    """The name beside the first type in ``table`` that ``value`` is (order matters: a bool
    is an int to Python, an Int32 is an int)."""
    return next((name for kind, name in table if isinstance(value, kind)), default)


_GO_TYPES = (
    (bool, "bool"), (int, "int"), (float, "float64"), (str, "string"), (bytes, "[]uint8"),
    (list, "[]interface {}"), (dict, "map[string]interface {}"),
)  # fmt: skip


def is_int(value: Any) -> bool:
    """An integer of any Go integer type (not a bool, which Python counts as an int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def basic_kind(value: Any) -> str:
    """text/template's comparison kinds: bool, int, float, string, or invalid."""
    if isinstance(value, bool):
        return "bool"
    if is_int(value):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "invalid"


def truth(value: Any) -> bool:
    """text/template's truth: empty strings, maps, slices, zero numbers, false and nil are false;
    structs (and times) always true."""
    if value is None:
        return False
    if isinstance(value, str | bytes | list | dict | bool | int | float):
        return bool(value)
    return True


def is_empty(value: Any) -> bool:
    """sprig's ``empty``: like falsehood, but a struct is never empty and neither is a time."""
    return not truth(value)


_GO_KINDS = (
    (bool, "bool"), (Month | Weekday, "int"), (Int64, "int64"), (Int32, "int32"), (int, "int"),
    (float, "float64"), (str, "string"), (bytes | list, "slice"), (dict, "map"),
)  # fmt: skip

"""Go-template-style rendering in a sandbox: the strings users paste from kube-eventer and
kubernetes-event-exporter configs (``{{ .Reason }}``, ``{{ .InvolvedObject.Namespace }}``).

Example::

    t = compile_template("{{ .Reason }} in {{ .InvolvedObject.Namespace | upper }}", name="message")
    t.render(event_context(event))           # "BackOff in SHOP"
    compile_template('{"n": {{ .Count }}, "m": "{{ .Message }}"}', name="body").render_json(data)

A small parser and evaluator, not ``eval``: an event's text is data and is never run. What a
template may do is the common subset of Go's ``text/template`` (with a few sprig functions):

- fields ``.Reason``, nested ``.InvolvedObject.Kind``, ``.Source.Component``, ``.Metadata.Name``,
  label maps ``.InvolvedObject.Labels.app`` or
  ``index .InvolvedObject.Labels "app.kubernetes.io/name"``;
  ``$`` is the event wherever ``.`` has moved;
- pipelines ``{{ .Message | trunc 200 | quote }}``, parentheses, ``$x := ...`` variables;
- ``if`` / ``else if`` / ``else`` / ``end``, ``with``, ``range $k, $v := .InvolvedObject.Labels``;
- trim markers ``{{-`` / ``-}}`` and comments ``{{/* ... */}}``;
- the functions in :data:`FUNCTIONS`; times print as Go prints them
  (``2024-05-01 12:00:00 +0000 UTC``) and have ``.Format "2006-01-02T15:04:05Z07:00"`` and
  ``.Unix``.

Everything that can be checked before the first event is checked by :func:`compile_template`:
syntax, unknown functions, unknown fields (``.Reasn``: "unknown field .Reasn; did you mean
.Reason?"). What can only go wrong at run time (a function given the wrong type) is found by
rendering sample events at start-up (:func:`check_template`).

``render_json`` writes JSON bodies that are always valid, whatever the event says: a value
that lands inside a JSON string of the template is JSON-escaped there (quotes, backslashes,
newlines, control characters, ``{{`` in a message are just text), a value that stands alone is
written as a JSON value of its type (``{{ .Count }}`` -> ``3``, ``{{ .Reason }}`` -> ``"BackOff"``,
``{{ toJson .InvolvedObject.Labels }}`` -> the object itself). The result is parsed before it is
returned, so a template whose own structure is broken is reported, never sent.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from shipper.event import Event


class TemplateError(ValueError):
    """A template that cannot be compiled or rendered; the message says where and why."""


# -- values


class Struct(dict):
    """A Go struct: only its own fields exist (a typo is an error, unlike a map key)."""


class JsonText(str):
    """Text that already is JSON (from ``toJson``): written as-is where a JSON value stands."""


class GoTime:
    """A timestamp that prints like Go's ``time.Time`` and has ``Format`` and ``Unix``."""

    __slots__ = ("moment",)
    methods = ("Format", "Unix", "UTC", "String")

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    @classmethod
    def parse(cls, text: str | None) -> GoTime | None:
        if not text:
            return None
        try:
            return cls(datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC))
        except ValueError:
            return None

    def __str__(self) -> str:
        return self.moment.strftime("%Y-%m-%d %H:%M:%S +0000 UTC")

    def rfc3339(self) -> str:
        return self.moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    def call(self, name: str, args: list[Any]) -> Any:
        if name == "Format":
            if len(args) != 1 or not isinstance(args[0], str):
                raise TemplateError('Format expects one layout, e.g. "2006-01-02 15:04:05"')
            return go_time_format(self.moment, args[0])
        if args:
            raise TemplateError(f"{name} takes no arguments")
        if name == "Unix":
            return int(self.moment.timestamp())
        return self  # UTC, String


_GO_LAYOUT = re.compile(
    r"January|Jan|Monday|Mon|2006|MST|Z07:00|-07:00|-0700|\.000000|\.000|PM|pm|01|02|03|04|05|06|15|_2|1|2|3|4|5"
)


def go_time_format(moment: datetime, layout: str) -> str:
    """Go's reference-time layouts (``2006-01-02 15:04:05``) for a UTC moment."""

    def token(match: re.Match[str]) -> str:
        t = match.group(0)
        values = {
            "January": moment.strftime("%B"), "Jan": moment.strftime("%b"),
            "Monday": moment.strftime("%A"), "Mon": moment.strftime("%a"),
            "2006": f"{moment.year:04d}", "06": f"{moment.year % 100:02d}",
            "01": f"{moment.month:02d}", "1": str(moment.month),
            "02": f"{moment.day:02d}", "_2": f"{moment.day:2d}", "2": str(moment.day),
            "15": f"{moment.hour:02d}", "03": f"{(moment.hour % 12) or 12:02d}",
            "3": str((moment.hour % 12) or 12), "04": f"{moment.minute:02d}",
            "4": str(moment.minute), "05": f"{moment.second:02d}", "5": str(moment.second),
            "PM": "PM" if moment.hour >= 12 else "AM", "pm": "pm" if moment.hour >= 12 else "am",
            "MST": "UTC", "Z07:00": "Z", "-07:00": "+00:00", "-0700": "+0000",
            ".000": f".{moment.microsecond // 1000:03d}", ".000000": f".{moment.microsecond:06d}",
        }  # fmt: skip
        return values[t]

    return _GO_LAYOUT.sub(token, layout)


def go_str(value: Any) -> str:
    """How Go's fmt prints a value (``{{ .Count }}``, ``print``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else str(int(value))
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_str(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    return str(value)


def truthy(value: Any) -> bool:
    """Go's truth: false, 0, nil and empty strings, maps and lists are false."""
    if isinstance(value, GoTime):
        return True
    return bool(value)


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, GoTime):
        return value.rfc3339()
    if isinstance(value, JsonText):
        return json.loads(value)
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_jsonable(v) for v in value]
    return value


def to_json(value: Any, indent: int | None = None) -> JsonText:
    return JsonText(json.dumps(_to_jsonable(value), ensure_ascii=False, indent=indent))


# -- the event as templates see it


def event_context(event: Event, cluster: str = "") -> Struct:
    """The event with the field names of client-go's ``v1.Event`` (kube-eventer) and
    kubernetes-event-exporter's ``EnhancedEvent`` (``.ClusterName``, ``.InvolvedObject.Labels``)."""
    involved = Struct(
        Kind=event.object_kind or "",
        Name=event.object_name or "",
        Namespace=event.object_namespace or "",
        UID=event.object_uid or "",
        APIVersion=event.object_api_version or "",
        ResourceVersion=event.object_resource_version or "",
        FieldPath=event.object_field_path or "",
        Labels=dict(event.labels or {}),
        Annotations=dict(event.annotations or {}),
    )
    created = GoTime.parse(event.creation_timestamp)
    metadata = Struct(
        Name=event.name,
        Namespace=event.namespace,
        UID=event.uid,
        ResourceVersion=event.resource_version,
        CreationTimestamp=created,
        Labels={},
        Annotations={},
    )
    source = Struct(Component=event.source_component or "", Host=event.source_host or "")
    last = GoTime.parse(event.last_timestamp)
    return Struct(
        Type=event.type,
        Reason=event.reason,
        Message=event.message,
        Note=event.message,
        Count=event.count,
        Action=event.action or "",
        ReportingController=event.reporting_controller or "",
        ReportingComponent=event.reporting_controller or "",
        ReportingInstance=event.reporting_instance or "",
        FirstTimestamp=GoTime.parse(event.first_timestamp),
        LastTimestamp=last,
        EventTime=GoTime.parse(event.event_time),
        Timestamp=GoTime.parse(event.timestamp),
        Series=Struct(Count=event.count, LastObservedTime=last),
        Name=event.name,
        Namespace=event.namespace,
        UID=event.uid,
        ResourceVersion=event.resource_version,
        CreationTimestamp=created,
        Labels={},
        Annotations={},
        Metadata=metadata,
        ObjectMeta=metadata,
        InvolvedObject=involved,
        Regarding=involved,
        Source=source,
        DeprecatedSource=source,
        ClusterName=cluster or event.cluster,
    )


def sample_events() -> list[Event]:
    """Events to render every template with at start-up: a Warning with hostile text and labels,
    a Normal one with most fields empty (a cluster-scoped object, no labels)."""
    base = dict(
        uid="00000000-0000-0000-0000-000000000000", resource_version="1", name="web-1.17c",
        namespace="default", reason="BackOff", count=3,
        timestamp="2024-05-01T12:00:00.000000Z", first_timestamp="2024-05-01T11:00:00.000000Z",
        last_timestamp="2024-05-01T12:00:00.000000Z", event_time=None,
        creation_timestamp="2024-05-01T11:00:00.000000Z", action=None,
        reporting_controller="kubelet", reporting_instance="node-a", source_component="kubelet",
        source_host="node-a", object_uid="u", object_api_version="v1",
        object_resource_version="9", object_field_path=None, seen_at="2024-05-01T12:00:00.000000Z",
        watch_type="ADDED", cluster="sample",
    )  # fmt: skip
    hostile = 'Back-off "restarting" \\ C:\\x\n\t\x01 {{ .Reason }} </script> \u2028 \U0001f525'
    return [
        Event(
            **base,
            type="Warning",
            message=hostile,
            object_kind="Pod",
            object_name="web-1",
            object_namespace="shop",
            labels={"app": "web", "app.kubernetes.io/name": "x"},
            annotations={"a": "b"},
        ),
        Event(
            **{**base, "source_component": None, "source_host": None, "count": 1},
            type="Normal",
            message="",
            object_kind="Node",
            object_name="node-a",
            object_namespace=None,
        ),
    ]


# -- functions: Go's builtins and the sprig functions configs use


def _eq(a: Any, *others: Any) -> bool:
    if not others:
        raise TemplateError("eq expects at least two arguments")
    return any(_norm(a) == _norm(o) for o in others)


def _norm(value: Any) -> Any:
    return str(value) if isinstance(value, GoTime) else value


def _cmp(name: str, op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        try:
            return op(_norm(a), _norm(b))
        except TypeError:
            raise TemplateError(f"{name}: cannot compare {go_type(a)} and {go_type(b)}") from None

    return compare


def _index(container: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(container, dict):
            container = container.get(key)
        elif isinstance(container, list | str) and isinstance(key, int):
            try:
                container = container[key]
            except IndexError:
                raise TemplateError(f"index {key} out of range") from None
        elif container is None:
            return None
        else:
            raise TemplateError(f"cannot index {go_type(container)}")
    return container


def _len(value: Any) -> int:
    if isinstance(value, str | list | tuple | dict):
        return len(value)
    raise TemplateError(f"len of {go_type(value)}")


def _default(default: Any, *given: Any) -> Any:
    return given[0] if given and truthy(given[0]) else default


def _trunc(length: Any, text: Any) -> str:
    text = go_str(text)
    n = int(length)
    return text[:n] if n >= 0 else text[n:]


def _go_quote(value: Any) -> str:
    return json.dumps(go_str(value), ensure_ascii=False)


_PRINTF_VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?([vsdqfgeExXtTbco%])")


def _printf(fmt: Any, *args: Any) -> str:
    """Go's fmt.Sprintf for the verbs templates use: %s %v %d %q %f %g %e %x %t %%."""
    fmt = go_str(fmt)
    values = list(args)
    out: list[str] = []
    pos = 0
    used = 0
    for match in _PRINTF_VERB.finditer(fmt):
        out.append(fmt[pos : match.start()])
        pos = match.end()
        flags, width, precision, verb = match.groups()
        if verb == "%":
            out.append("%")
            continue
        if used >= len(values):
            out.append(f"%!{verb}(MISSING)")
            continue
        value = values[used]
        used += 1
        spec = flags.replace("#", "") + (width or "")
        try:
            if verb in "vs":
                text = go_str(value)
                if precision is not None:
                    text = text[: int(precision)]
                out.append(format(text, (">" if "-" not in flags else "<") + (width or "")))
            elif verb == "q":
                out.append(_go_quote(value))
            elif verb == "d":
                out.append(format(int(value), spec + "d"))
            elif verb in "fgeE":
                prec = f".{precision}" if precision is not None else (".6" if verb == "f" else "")
                out.append(format(float(value), spec + prec + verb))
            elif verb in "xXobc":
                out.append(
                    format(ord(value) if isinstance(value, str) else int(value), spec + verb)
                    if verb != "c"
                    else chr(int(value))
                )
            elif verb == "t":
                out.append("true" if value else "false")
            else:  # T
                out.append(go_type(value))
        except (TypeError, ValueError):
            out.append(f"%!{verb}({go_type(value)}={go_str(value)})")
    out.append(fmt[pos:])
    if used < len(values):
        out.append("%!(EXTRA " + ", ".join(go_str(v) for v in values[used:]) + ")")
    return "".join(out)


def _date(layout: Any, moment: Any) -> str:
    if isinstance(moment, GoTime):
        return go_time_format(moment.moment, go_str(layout))
    if moment is None:
        return ""
    raise TemplateError(f"date expects a time, not {go_type(moment)}")


FUNCTIONS: dict[str, Callable[..., Any]] = {
    # Go's builtins
    "and": lambda *a: next((v for v in a if not truthy(v)), a[-1] if a else None),
    "or": lambda *a: next((v for v in a if truthy(v)), a[-1] if a else None),
    "not": lambda v: not truthy(v),
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _cmp("lt", lambda a, b: a < b),
    "le": _cmp("le", lambda a, b: a <= b),
    "gt": _cmp("gt", lambda a, b: a > b),
    "ge": _cmp("ge", lambda a, b: a >= b),
    "len": _len,
    "index": _index,
    "print": lambda *a: "".join(go_str(v) for v in a),
    "println": lambda *a: " ".join(go_str(v) for v in a) + "\n",
    "printf": _printf,
    "urlquery": lambda *a: quote_plus("".join(go_str(v) for v in a)),
    # sprig
    "toJson": lambda v: to_json(v),
    "json": lambda v: to_json(v),
    "toPrettyJson": lambda v: to_json(v, indent=2),
    "upper": lambda v: go_str(v).upper(),
    "lower": lambda v: go_str(v).lower(),
    "title": lambda v: go_str(v).title(),
    "trim": lambda v: go_str(v).strip(),
    "quote": lambda *a: " ".join(_go_quote(v) for v in a),
    "squote": lambda *a: " ".join(f"'{go_str(v)}'" for v in a),
    "default": _default,
    "empty": lambda v: not truthy(v),
    "trunc": _trunc,
    "replace": lambda old, new, s: go_str(s).replace(go_str(old), go_str(new)),
    "contains": lambda sub, s: go_str(sub) in go_str(s),
    "hasPrefix": lambda pre, s: go_str(s).startswith(go_str(pre)),
    "hasSuffix": lambda suf, s: go_str(s).endswith(go_str(suf)),
    "join": lambda sep, items: go_str(sep).join(go_str(i) for i in (items or [])),
    "date": _date,
}


def go_type(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, GoTime):
        return "time.Time"
    if isinstance(value, Struct):
        return "struct"
    if isinstance(value, dict):
        return "map[string]string"
    return "slice"


# -- lexing


@dataclass
class _Tok:
    kind: str  # field var ident string number bool nil pipe ( ) := = ,
    value: Any
    pos: int
    spaced: bool  # whitespace before it


_NUMBER = re.compile(r"[-+]?(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+)")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CHAIN = re.compile(r"(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def _lex_action(text: str, i: int, where: Callable[[int], str]) -> tuple[list[_Tok], int, bool]:
    """Tokens of the action starting at ``i`` (after ``{{``); returns (tokens, end, trim_right)."""
    tokens: list[_Tok] = []
    spaced = True
    while True:
        if i >= len(text):
            raise TemplateError(f"{where(i)}: unclosed action (no closing }}}})")
        ch = text[i]
        if ch in " \t\r\n":
            if text.startswith("-}}", i + 1) and ch in " \t\r\n":
                return tokens, i + 4, True
            i += 1
            spaced = True
            continue
        if text.startswith("}}", i):
            return tokens, i + 2, False
        start = i
        if ch == '"':
            j = i + 1
            while j < len(text) and text[j] != '"':
                if text[j] == "\\":
                    j += 1
                if j >= len(text) or text[j] == "\n":
                    raise TemplateError(f"{where(i)}: newline in a string")
                j += 1
            if j >= len(text):
                raise TemplateError(f"{where(i)}: unterminated string")
            try:
                value = json.loads(text[i : j + 1])
            except json.JSONDecodeError:
                value = text[i + 1 : j].encode().decode("unicode_escape", errors="replace")
            tokens.append(_Tok("string", value, start, spaced))
            i = j + 1
        elif ch == "`":
            j = text.find("`", i + 1)
            if j < 0:
                raise TemplateError(f"{where(i)}: unterminated raw string")
            tokens.append(_Tok("string", text[i + 1 : j], start, spaced))
            i = j + 1
        elif ch == "." and (m := _CHAIN.match(text, i)):
            names = tuple(m.group(0)[1:].split("."))
            tokens.append(_Tok("field", names, start, spaced))
            i = m.end()
        elif ch == "." and not (i + 1 < len(text) and text[i + 1].isdigit()):
            tokens.append(_Tok("field", (), start, spaced))
            i += 1
        elif ch == "$":
            m = _IDENT.match(text, i + 1)
            name = "$" + (m.group(0) if m else "")
            i = m.end() if m else i + 1
            chain: tuple[str, ...] = ()
            if (c := _CHAIN.match(text, i)) is not None:
                chain = tuple(c.group(0)[1:].split("."))
                i = c.end()
            tokens.append(_Tok("var", (name, chain), start, spaced))
        elif ch == "|":
            tokens.append(_Tok("pipe", "|", start, spaced))
            i += 1
        elif ch in "(),":
            tokens.append(_Tok(ch, ch, start, spaced))
            i += 1
        elif text.startswith(":=", i):
            tokens.append(_Tok(":=", ":=", start, spaced))
            i += 2
        elif ch == "=":
            tokens.append(_Tok("=", "=", start, spaced))
            i += 1
        elif (m := _NUMBER.match(text, i)) and (ch.isdigit() or ch in "+-."):
            raw = m.group(0)
            value = (
                int(raw, 0) if re.fullmatch(r"[-+]?(0[xX][0-9a-fA-F]+|\d+)", raw) else float(raw)
            )
            tokens.append(_Tok("number", value, start, spaced))
            i = m.end()
        elif m := _IDENT.match(text, i):
            word = m.group(0)
            kind = "bool" if word in ("true", "false") else "nil" if word == "nil" else "ident"
            value = word == "true" if kind == "bool" else word
            tokens.append(_Tok(kind, value, start, spaced))
            i = m.end()
        else:
            raise TemplateError(f"{where(i)}: unexpected {ch!r} in action")
        spaced = False


# -- the tree


@dataclass
class _Cmd:
    #: ("field", chain) ("var", name, chain) ("lit", v) ("func", name) ("pipe", _Pipe, chain)
    args: list[Any]
    pos: int


@dataclass
class _Pipe:
    cmds: list[_Cmd]
    decl: list[str] = field(default_factory=list)
    pos: int = 0


@dataclass
class _Node:
    kind: str  # text, out, if, range, with, set
    pos: int = 0
    text: str = ""
    pipe: _Pipe | None = None
    branches: list[tuple[_Pipe, list[_Node]]] = field(default_factory=list)
    body: list[_Node] = field(default_factory=list)
    otherwise: list[_Node] = field(default_factory=list)


_KEYWORDS = {
    "if",
    "else",
    "end",
    "range",
    "with",
    "define",
    "template",
    "block",
    "break",
    "continue",
}


class _Parser:
    def __init__(self, text: str, name: str) -> None:
        self.text, self.name = text, name

    def where(self, pos: int) -> str:
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        return f"{self.name}: line {line}, col {col}"

    def items(self) -> list[tuple[str, Any, int]]:
        """Flat list of ("text", str, pos) and ("action", tokens, pos), trim markers applied."""
        out: list[tuple[str, Any, int]] = []
        text, i = self.text, 0
        trim_next = False
        while i < len(text):
            j = text.find("{{", i)
            chunk = text[i : j if j >= 0 else len(text)]
            if trim_next:
                chunk = chunk.lstrip(" \t\r\n")
            if j < 0:
                if chunk:
                    out.append(("text", chunk, i))
                break
            k = j + 2
            trim_left = (
                text.startswith("- ", k) or text.startswith("-\t", k) or text.startswith("-\n", k)
            )
            if trim_left:
                chunk = chunk.rstrip(" \t\r\n")
                k += 1
            if chunk:
                out.append(("text", chunk, i))
            rest = text[k:].lstrip(" \t\r\n")
            if rest.startswith("/*"):
                end = text.find("*/", k)
                if end < 0:
                    raise TemplateError(f"{self.where(j)}: unclosed comment")
                close = re.compile(r"[ \t\r\n]*(-?)[ \t\r\n]*\}\}").match(text, end + 2)
                if close is None:
                    raise TemplateError(f"{self.where(end)}: comment must end with */}}}}")
                trim_next = bool(close.group(1))
                i = close.end()
                continue
            tokens, i, trim_next = _lex_action(text, k, self.where)
            if not tokens:
                raise TemplateError(f"{self.where(j)}: empty action {{{{}}}}")
            out.append(("action", tokens, j))
        return out

    def parse(self) -> list[_Node]:
        self.stream = self.items()
        self.at = 0
        body, stop = self.block(())
        if stop is not None:
            raise TemplateError(f"{self.where(stop[2])}: unexpected {{{{{stop[1][0].value}}}}}")
        return body

    def block(
        self, stops: tuple[str, ...]
    ) -> tuple[list[_Node], tuple[str, list[_Tok], int] | None]:
        nodes: list[_Node] = []
        while self.at < len(self.stream):
            kind, payload, pos = self.stream[self.at]
            self.at += 1
            if kind == "text":
                nodes.append(_Node("text", pos, text=payload))
                continue
            tokens: list[_Tok] = payload
            head = tokens[0]
            word = head.value if head.kind == "ident" else None
            if word in ("end", "else"):
                if word not in stops:
                    raise TemplateError(f"{self.where(pos)}: unexpected {{{{{word}}}}}")
                return nodes, (word, tokens, pos)
            if word in ("if", "with", "range"):
                nodes.append(self.control(word, tokens[1:], pos))
            elif word in _KEYWORDS:
                raise TemplateError(f"{self.where(pos)}: {{{{{word}}}}} is not supported")
            else:
                pipe = self.pipeline(tokens, pos, allow_decl=True)
                nodes.append(_Node("set" if pipe.decl else "out", pos, pipe=pipe))
        if stops:
            raise TemplateError(f"{self.where(len(self.text))}: missing {{{{end}}}}")
        return nodes, None

    def control(self, word: str, tokens: list[_Tok], pos: int) -> _Node:
        if not tokens:
            raise TemplateError(f"{self.where(pos)}: missing value for {word}")
        node = _Node(word, pos)
        pipe = self.pipeline(tokens, pos, allow_decl=True, max_vars=2 if word == "range" else 1)
        while True:
            body, stop = self.block(("end", "else"))
            node.branches.append((pipe, body))
            assert stop is not None
            if stop[0] == "end":
                return node
            rest = stop[1][1:]
            if rest and rest[0].kind == "ident" and rest[0].value == word and word != "range":
                pipe = self.pipeline(rest[1:], stop[2], allow_decl=True)
                continue
            if rest:
                raise TemplateError(f"{self.where(stop[2])}: unexpected words after else")
            node.otherwise, stop = self.block(("end",))
            return node

    def pipeline(
        self, tokens: list[_Tok], pos: int, *, allow_decl: bool = False, max_vars: int = 1
    ) -> _Pipe:
        decl: list[str] = []
        for n in range(1, max_vars + 1):
            names = tokens[: 2 * n - 1 : 2]
            if (
                allow_decl
                and len(tokens) > 2 * n
                and all(t.kind == "var" and not t.value[1] for t in names)
                and all(t.kind == "," for t in tokens[1 : 2 * n - 1 : 2])
                and tokens[2 * n - 1].kind in (":=", "=")
            ):
                decl = [t.value[0] for t in names]
                tokens = tokens[2 * n :]
                break
        self.toks, self.i = tokens, 0
        pipe = self.parse_pipe(pos)
        if self.i != len(self.toks):
            tok = self.toks[self.i]
            raise TemplateError(f"{self.where(tok.pos)}: unexpected {tok.value!r}")
        pipe.decl = decl
        return pipe

    def parse_pipe(self, pos: int) -> _Pipe:
        cmds: list[_Cmd] = []
        while True:
            args: list[Any] = []
            start = self.toks[self.i].pos if self.i < len(self.toks) else pos
            while self.i < len(self.toks) and self.toks[self.i].kind not in ("pipe", ")"):
                args.append(self.operand())
            if not args:
                raise TemplateError(f"{self.where(start)}: missing command in pipeline")
            if args[0][0] not in ("func", "field", "var", "pipe") and len(args) > 1:
                raise TemplateError(
                    f"{self.where(start)}: can't give an argument to a non-function"
                )
            cmds.append(_Cmd(args, start))
            if self.i < len(self.toks) and self.toks[self.i].kind == "pipe":
                self.i += 1
                continue
            return _Pipe(cmds, pos=pos)

    def operand(self) -> Any:
        tok = self.toks[self.i]
        self.i += 1
        if tok.kind == "field":
            return ("field", tok.value, tok.pos)
        if tok.kind == "var":
            return ("var", tok.value[0], tok.value[1], tok.pos)
        if tok.kind in ("string", "number", "bool"):
            return ("lit", tok.value, tok.pos)
        if tok.kind == "nil":
            return ("lit", None, tok.pos)
        if tok.kind == "ident":
            if tok.value not in FUNCTIONS:
                close = difflib.get_close_matches(tok.value, list(FUNCTIONS), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise TemplateError(
                    f"{self.where(tok.pos)}: unknown function {tok.value!r}{hint}"
                    f" (known: {', '.join(sorted(FUNCTIONS))})"
                )
            return ("func", tok.value, tok.pos)
        if tok.kind == "(":
            inner = self.parse_pipe(tok.pos)
            if self.i >= len(self.toks) or self.toks[self.i].kind != ")":
                raise TemplateError(f"{self.where(tok.pos)}: unclosed parenthesis")
            self.i += 1
            chain: tuple[str, ...] = ()
            if (
                self.i < len(self.toks)
                and self.toks[self.i].kind == "field"
                and not self.toks[self.i].spaced
            ):
                chain = self.toks[self.i].value
                self.i += 1
            return ("pipe", inner, chain, tok.pos)
        raise TemplateError(f"{self.where(tok.pos)}: unexpected {tok.value!r}")


# -- evaluation


class _Scope:
    __slots__ = ("vars",)

    def __init__(self, vars_: dict[str, Any]) -> None:
        self.vars = vars_


def _field(value: Any, name: str) -> Any:
    if isinstance(value, Struct):
        if name in value:
            return value[name]
        raise TemplateError(f"unknown field .{name}")
    if isinstance(value, dict):
        return value.get(name)
    if isinstance(value, GoTime) and name in GoTime.methods:
        return _Method(value, name)
    if value is None:
        return None
    raise TemplateError(f"can't evaluate field {name} in type {go_type(value)}")


@dataclass
class _Method:
    target: GoTime
    name: str


class _Writer:
    """Plain output; ``escape`` (if any) is applied to every value, never to template text."""

    def __init__(self, escape: Callable[[str], str] | None) -> None:
        self.parts: list[str] = []
        self.escape = escape

    def text(self, s: str) -> None:
        self.parts.append(s)

    def value(self, v: Any) -> None:
        s = go_str(v)
        self.parts.append(self.escape(s) if self.escape else s)

    def result(self) -> str:
        return "".join(self.parts)


class _JsonWriter(_Writer):
    """Knows whether the output is inside a JSON string; escapes values to fit where they land."""

    _SPECIAL = re.compile(r'["\\]')

    def __init__(self) -> None:
        super().__init__(None)
        self.in_string = False
        self.after_backslash = False

    def text(self, s: str) -> None:
        self.parts.append(s)
        i, n = 0, len(s)
        if self.after_backslash and s:
            self.after_backslash, i = False, 1  # the first character is escaped
        while (m := self._SPECIAL.search(s, i)) is not None:
            p = m.start()
            if m.group(0) == "\\":
                if self.in_string and p + 1 >= n:
                    self.after_backslash = True
                i = p + 2 if self.in_string else p + 1
                continue
            self.in_string = not self.in_string
            i = p + 1

    def value(self, v: Any) -> None:
        if self.in_string:
            if isinstance(v, JsonText):
                v = str(v)
            self.parts.append(json.dumps(go_str(v), ensure_ascii=False)[1:-1])
            self.after_backslash = False
        elif isinstance(v, JsonText):
            self.parts.append(str(v))
        elif v is None or isinstance(v, bool | int | float | dict | list):
            self.parts.append(json.dumps(_to_jsonable(v), ensure_ascii=False))
        else:
            self.parts.append(json.dumps(go_str(v), ensure_ascii=False))


class Template:
    """A compiled template; see the module docstring."""

    def __init__(self, text: str, name: str, nodes: list[_Node]) -> None:
        self.text, self.name, self.nodes = text, name, nodes

    def render(self, data: Any, escape: Callable[[str], str] | None = None) -> str:
        writer = _Writer(escape)
        self._run(data, writer)
        return writer.result()

    def render_json(self, data: Any) -> str:
        """Render a JSON body; TemplateError if the result is not valid JSON."""
        writer = _JsonWriter()
        self._run(data, writer)
        body = writer.result()
        try:
            json.loads(body)
        except json.JSONDecodeError as exc:
            raise TemplateError(
                f"{self.name}: the rendered body is not valid JSON: {exc}"
            ) from None
        return body

    def _run(self, data: Any, writer: _Writer) -> None:
        try:
            self._exec(self.nodes, data, _Scope({"$": data}), writer)
        except TemplateError as exc:
            text = str(exc)
            raise TemplateError(
                text if text.startswith(self.name) else f"{self.name}: {text}"
            ) from None
        except RecursionError:
            raise TemplateError(f"{self.name}: nested too deeply") from None

    def _exec(self, nodes: list[_Node], dot: Any, scope: _Scope, out: _Writer) -> None:
        for node in nodes:
            if node.kind == "text":
                out.text(node.text)
            elif node.kind == "out":
                assert node.pipe is not None
                value = self._pipe(node.pipe, dot, scope)
                if isinstance(value, _Method):
                    value = value.target.call(value.name, [])
                out.value(value)
            elif node.kind == "set":
                assert node.pipe is not None
                scope.vars[node.pipe.decl[0]] = self._pipe(node.pipe, dot, scope)
            elif node.kind == "if":
                for pipe, body in node.branches:
                    value = self._pipe(pipe, dot, scope)
                    if truthy(value):
                        inner = _Scope(dict(scope.vars))
                        if pipe.decl:
                            inner.vars[pipe.decl[0]] = value
                        self._exec(body, dot, inner, out)
                        break
                else:
                    self._exec(node.otherwise, dot, _Scope(dict(scope.vars)), out)
            elif node.kind == "with":
                for pipe, body in node.branches:
                    value = self._pipe(pipe, dot, scope)
                    if truthy(value):
                        inner = _Scope(dict(scope.vars))
                        if pipe.decl:
                            inner.vars[pipe.decl[0]] = value
                        self._exec(body, value, inner, out)
                        break
                else:
                    self._exec(node.otherwise, dot, _Scope(dict(scope.vars)), out)
            else:  # range
                pipe, body = node.branches[0]
                value = self._pipe(pipe, dot, scope)
                if isinstance(value, dict):
                    items: Iterable[tuple[Any, Any]] = sorted(value.items())
                elif isinstance(value, list | tuple):
                    items = enumerate(value)
                elif isinstance(value, int) and not isinstance(value, bool):
                    items = ((i, i) for i in range(value))
                elif value is None:
                    items = ()
                else:
                    raise TemplateError(f"range can't iterate over {go_type(value)}")
                ran = False
                for key, element in items:
                    ran = True
                    inner = _Scope(dict(scope.vars))
                    if len(pipe.decl) == 1:
                        inner.vars[pipe.decl[0]] = element
                    elif len(pipe.decl) == 2:
                        inner.vars[pipe.decl[0]], inner.vars[pipe.decl[1]] = key, element
                    self._exec(body, element, inner, out)
                if not ran:
                    self._exec(node.otherwise, dot, _Scope(dict(scope.vars)), out)

    def _pipe(self, pipe: _Pipe, dot: Any, scope: _Scope) -> Any:
        value: Any = _NOTHING
        for cmd in pipe.cmds:
            value = self._cmd(cmd, dot, scope, value)
        return value

    def _cmd(self, cmd: _Cmd, dot: Any, scope: _Scope, piped: Any) -> Any:
        first = cmd.args[0]
        if first[0] == "func":
            args = [self._arg(a, dot, scope) for a in cmd.args[1:]]
            if piped is not _NOTHING:
                args.append(piped)
            args = [a.target.call(a.name, []) if isinstance(a, _Method) else a for a in args]
            try:
                return FUNCTIONS[first[1]](*args)
            except TemplateError as exc:
                raise TemplateError(f"{first[1]}: {exc}") from None
            except (TypeError, ValueError) as exc:
                raise TemplateError(f"{first[1]}: wrong arguments ({exc})") from None
        value = self._arg(first, dot, scope)
        args = [self._arg(a, dot, scope) for a in cmd.args[1:]]
        if piped is not _NOTHING:
            args.append(piped)
        if isinstance(value, _Method):
            return value.target.call(value.name, args)
        if args:
            raise TemplateError(f"can't give an argument to a non-function ({go_type(value)})")
        return value

    def _arg(self, arg: Any, dot: Any, scope: _Scope) -> Any:
        kind = arg[0]
        if kind == "lit":
            return arg[1]
        if kind == "field":
            value = dot
            for name in arg[1]:
                value = _field(value, name)
            return value
        if kind == "var":
            if arg[1] not in scope.vars:
                raise TemplateError(f"undefined variable {arg[1]}")
            value = scope.vars[arg[1]]
            for name in arg[2]:
                value = _field(value, name)
            return value
        if kind == "pipe":
            value = self._pipe(arg[1], dot, scope)
            for name in arg[2]:
                value = _field(value, name)
            return value
        raise TemplateError(f"function {arg[1]} used as a value; call it with parentheses")


_NOTHING = object()


def _check_fields(nodes: list[_Node], dot: Any, parser: _Parser, root: Any) -> None:
    """Static check of field paths where the type of ``.`` is known (the event, or a struct
    ``with`` moved to); unknown fields are start-up errors naming the field."""

    def path(value: Any, names: tuple[str, ...], pos: int) -> Any:
        for name in names:
            if isinstance(value, Struct):
                if name not in value:
                    close = difflib.get_close_matches(name, list(value), n=1)
                    hint = f"; did you mean .{close[0]}?" if close else ""
                    raise TemplateError(f"{parser.where(pos)}: unknown field .{name}{hint}")
                value = value[name]
            elif isinstance(value, GoTime):
                if name not in GoTime.methods:
                    raise TemplateError(
                        f"{parser.where(pos)}: a time has no field .{name}"
                        f" (it has {', '.join(GoTime.methods)})"
                    )
                return _UNKNOWN
            elif isinstance(value, str | int):
                raise TemplateError(
                    f"{parser.where(pos)}: can't evaluate field .{name} in type {go_type(value)}"
                )
            else:
                return _UNKNOWN
        return value

    def pipe_type(pipe: _Pipe, dot: Any) -> Any:
        result: Any = _UNKNOWN
        for cmd in pipe.cmds:
            for arg in cmd.args:
                if arg[0] == "field" and dot is not _UNKNOWN:
                    result = path(dot, arg[1], arg[2])
                elif arg[0] == "var" and arg[1] == "$":
                    result = path(root, arg[2], arg[3])
                elif arg[0] == "pipe":
                    pipe_type(arg[1], dot)
                    result = _UNKNOWN
                else:
                    result = _UNKNOWN
            if len(cmd.args) > 1 or cmd.args[0][0] == "func":
                result = _UNKNOWN
        return result if len(pipe.cmds) == 1 else _UNKNOWN

    for node in nodes:
        if node.pipe is not None:
            pipe_type(node.pipe, dot)
        for pipe, body in node.branches:
            moved = pipe_type(pipe, dot)
            inner = (
                (moved if isinstance(moved, Struct) else _UNKNOWN) if node.kind == "with" else dot
            )
            if node.kind == "range":
                inner = _UNKNOWN
            _check_fields(body, inner, parser, root)
        _check_fields(node.otherwise, dot, parser, root)


_UNKNOWN = object()


def compile_template(text: str, *, name: str, data: Any | None = None) -> Template:
    """Parse ``text``; TemplateError naming the problem and where it is. Field paths are checked
    against ``data`` (default: the event as :func:`event_context` shows it)."""
    parser = _Parser(text, name)
    nodes = parser.parse()
    sample = data if data is not None else event_context(sample_events()[0])
    _check_fields(nodes, sample, parser, sample)
    return Template(text, name, nodes)


def check_template(template: Template, *, json_body: bool = False) -> None:
    """Render the sample events once (start-up): errors that only show when run, such as a
    function given the wrong type or a JSON body whose own structure is broken."""
    for event in sample_events():
        data = event_context(event)
        if json_body:
            template.render_json(data)
        else:
            template.render(data)

"""Compiled templates: rendering as text, or as a JSON body that is always valid.

``render`` writes what Go's ``Execute`` writes; an ``escape`` (Slack's ``&``, ``<``, ``>``) is
applied to every value a template inserts, never to the template's own text.

``render_json`` is this project's addition for webhook bodies, whatever the event says: a value
that lands inside a JSON string of the template is JSON-escaped there (quotes, backslashes,
newlines, ``{{`` in a message are just text), a value that stands alone is written as a JSON
value of its type (``{{ .Count }}`` -> ``3``, ``{{ .Reason }}`` -> ``"BackOff"``,
``{{ toJson .InvolvedObject.Labels }}`` -> the object itself, a missing key -> ``null``). The
result is parsed before it is returned, so a template whose own structure is broken is
reported, never sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from shipper.templates import gojson
from shipper.templates.checks import FieldChecker
from shipper.templates.event import event_context, sample_events
from shipper.templates.exec import State
from shipper.templates.functions import FUNCTIONS
from shipper.templates.gofmt import go_str
from shipper.templates.gotime import GoTime
from shipper.templates.parser import Node, Parser
from shipper.templates.values import JsonText, Struct, TemplateError


def printable(value: Any) -> str:
    """What ``{{ value }}`` writes: ``<no value>`` for nil, a pointer's struct without ``&``."""
    if value is None:
        return "<no value>"
    if isinstance(value, Struct) and value.pointer:
        return go_str(value, depth=1)
    return go_str(value)


class _Writer:
    """Plain output; ``escape`` (if any) is applied to every value, never to template text."""

    def __init__(self, escape: Callable[[str], str] | None) -> None:
        self.parts: list[str] = []
        self.escape = escape

    def text(self, s: str) -> None:
        self.parts.append(s)

    def value(self, v: Any) -> None:
        s = printable(v)
        self.parts.append(self.escape(s) if self.escape else s)

    def result(self) -> str:
        return "".join(self.parts)


class _JsonWriter(_Writer):
    """Knows whether the output is inside a JSON string; writes values to fit where they land."""

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
            self.parts.append(json.dumps(printable(v), ensure_ascii=False)[1:-1])
            self.after_backslash = False
        elif isinstance(v, JsonText):
            self.parts.append(str.__str__(v))
        elif v is None or isinstance(v, bool | int | float | dict | list | Struct):
            self.parts.append(gojson.encode(v, escape_html=False))
        elif isinstance(v, GoTime):
            self.parts.append(json.dumps(str(v), ensure_ascii=False))
        else:
            self.parts.append(json.dumps(printable(v), ensure_ascii=False))


class Template:
    """A compiled template (the main one and every ``define``/``block`` in its text)."""

    def __init__(
        self, text: str, name: str, trees: dict[str, list[Node]], where: Callable[[int], str]
    ) -> None:
        self.text, self.name, self.trees, self.where = text, name, trees, where

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
            State(self.trees, self.where, writer).run(self.name, data)
        except RecursionError:
            raise TemplateError(f"{self.name}: nested too deeply") from None


def compile_template(text: str, *, name: str, data: Any | None = None) -> Template:
    """Parse ``text``; TemplateError naming the problem and where it is. Field paths are checked
    against ``data`` (default: the event as :func:`event_context` shows it)."""
    parser = Parser(text, name, FUNCTIONS)
    trees = parser.parse()
    sample = data if data is not None else event_context(sample_events()[0])
    FieldChecker(sample, parser.where).check(trees[name], sample)
    return Template(text, name, trees, parser.where)


def check_template(template: Template, *, json_body: bool = False) -> None:
    """Render the sample events once (start-up): errors that only show when run, such as a
    function given the wrong type or a JSON body whose own structure is broken."""
    for event in sample_events():
        data = event_context(event)
        if json_body:
            template.render_json(data)
        else:
            template.render(data)

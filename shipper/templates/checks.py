"""Start-up checks of field names, where Go would only fail when the line runs.

Go reports ``.Reasn`` when the template executes; a notifier would then fail on its first
event, maybe hours later. Wherever the type of ``.`` is known (the event, or a struct ``with``
moved to), a field that does not exist is reported at start-up with a suggestion:
``line 1, col 4: unknown field .Reasn; did you mean .Reason?``. Inside ``range`` and
``define`` the type of ``.`` is not known and nothing is checked.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from shipper.templates.gotime import _METHODS, GoTime
from shipper.templates.parser import Action, Branch, Chain, Dot, FieldRef, Node, Pipe, Variable
from shipper.templates.values import Struct, TemplateError, go_type

UNKNOWN = object()


class FieldChecker:
    """Walks the main template with the sample data as the type of ``.`` and ``$``."""

    def __init__(self, root: Any, where: Callable[[int], str]) -> None:
        self.root, self.where = root, where

    def check(self, nodes: list[Node], dot: Any) -> None:
        for node in nodes:
            if isinstance(node, Action):
                self.pipe_type(node.pipe, dot)
            elif isinstance(node, Branch):
                moved = self.pipe_type(node.pipe, dot)
                inner = dot
                if node.kind == "with":
                    inner = moved if isinstance(moved, Struct | GoTime) else UNKNOWN
                elif node.kind == "range":
                    inner = UNKNOWN
                self.check(node.body, inner)
                if node.else_body is not None:
                    self.check(node.else_body, dot)

    def pipe_type(self, pipe: Pipe, dot: Any) -> Any:
        """Check every field path in the pipeline; the pipeline's type if it is one path."""
        result: Any = UNKNOWN
        for cmd in pipe.cmds:
            for arg in cmd.args:
                result = self.arg_type(arg, dot)
            if len(cmd.args) > 1:
                result = UNKNOWN
        return result if len(pipe.cmds) == 1 else UNKNOWN

    def arg_type(self, arg: Node, dot: Any) -> Any:
        if isinstance(arg, Dot):
            return dot
        if isinstance(arg, FieldRef):
            return self.path(dot, arg.names, arg.pos)
        if isinstance(arg, Variable) and arg.name == "$":
            return self.path(self.root, arg.names, arg.pos)
        if isinstance(arg, Pipe):
            self.pipe_type(arg, dot)
        elif isinstance(arg, Chain) and isinstance(arg.node, Pipe):
            self.pipe_type(arg.node, dot)
        return UNKNOWN

    def path(self, value: Any, names: tuple[str, ...], pos: int) -> Any:
        for name in names:
            if value is UNKNOWN:
                return UNKNOWN
            value = self.step(value, name, pos)
        return value

    def step(self, value: Any, name: str, pos: int) -> Any:
        if isinstance(value, Struct):
            if value.method(name) is not None:
                return UNKNOWN
            found, field = value.lookup(name)
            if not found:
                raise self.unknown(name, value.names(), pos)
            return field
        if isinstance(value, GoTime):
            if name in _METHODS:
                return UNKNOWN
            if name == "Time" and value.kind != "time":
                return value.as_time()
            raise self.unknown(
                name, [*_METHODS, "Time"], pos, f" (a {value.go_type} has no such field or method)"
            )
        if isinstance(value, str | int | float | bool):
            raise TemplateError(
                f"{self.where(pos)}: can't evaluate field .{name} in type {go_type(value)}"
            )
        return UNKNOWN

    def unknown(self, name: str, known: list[str], pos: int, extra: str = "") -> TemplateError:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean .{close[0]}?" if close else ""
        return TemplateError(f"{self.where(pos)}: unknown field .{name}{hint}{extra}")

"""Executing a parsed template as text/template/exec.go does.

The rules users meet: ``.`` moves with ``with`` and ``range``, ``$`` is the data; a variable
lives until the ``{{end}}`` of its block and ``$x = ...`` changes an outer one; ``and``/``or``
stop at the first deciding argument; arguments are converted to the function's Go parameter
types (see functions.py); a missing map key is "no value" (printed ``<no value>``); ``range``
walks maps in key order; ``{{template "x" .}}`` runs a ``define`` with its own variables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from shipper.templates.functions import FUNCTIONS, SPECIAL
from shipper.templates.gofmt import go_str
from shipper.templates.gotime import GoTime
from shipper.templates.parser import (
    Action,
    Bool,
    Branch,
    Break,
    Chain,
    Command,
    Continue,
    Dot,
    FieldRef,
    Identifier,
    Nil,
    Node,
    Number,
    Pipe,
    String,
    TemplateCall,
    Text,
    Variable,
)
from shipper.templates.values import (
    GoError,
    GoMap,
    Int64,
    Method,
    NamedStr,
    Struct,
    TemplateError,
    go_type,
    is_int,
    truth,
)

MISSING = object()  # no piped value (text/template's missingVal)
_GO_NAMES = {"map": "map[string]interface {}", "time": "time.Time", "any": "interface {}",
             "value": "reflect.Value"}  # fmt: skip
_NILLABLE = ("any", "value", "map")


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class ExecError(TemplateError):
    """An error while executing, already carrying its position."""


_CHECKS: dict[str, Callable[[Any], bool]] = {
    "any": lambda v: True,
    "value": lambda v: True,
    "string": lambda v: isinstance(v, str) and not isinstance(v, NamedStr),
    "int": lambda v: type(v) is int,
    "int64": lambda v: type(v) is Int64,
    "float64": lambda v: type(v) is float,
    "bool": lambda v: type(v) is bool,
    "time": lambda v: isinstance(v, GoTime) and v.kind == "time",
    "map": lambda v: type(v) is dict or (type(v) is GoMap and v.elem == "interface {}"),
}


def _exact(value: Any, typ: str) -> bool:
    """Is a value assignable to a parameter of this Go type?"""
    return _CHECKS[typ](value)


class State:
    """One execution: the templates, the output, the variable stack."""

    def __init__(self, trees: dict[str, list[Node]], where: Callable[[int], str], out: Any):
        self.trees, self.where, self.out = trees, where, out
        self.vars: list[list[Any]] = []
        self.node: Node | None = None
        self.name = ""

    # -- errors and variables

    def fail(self, message: str, node: Node | None = None) -> ExecError:
        node = node or self.node
        if node is None:
            return ExecError(f"{self.where(0)}: {message}")
        return ExecError(f"{self.where(node.pos)}: executing {self.name!r} at <{node}>: {message}")

    def var(self, name: str) -> Any:
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry[1]
        raise self.fail(f"undefined variable: {name}")

    def set_var(self, name: str, value: Any) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                return
        raise self.fail(f"undefined variable: {name}")

    # -- walking the tree

    def run(self, name: str, dot: Any) -> None:
        saved = (self.vars, self.name)
        self.vars, self.name = [["$", dot]], name
        try:
            self.walk_list(self.trees[name], dot)
        finally:
            self.vars, self.name = saved

    def walk_list(self, nodes: list[Node], dot: Any) -> None:
        for node in nodes:
            self.walk(node, dot)

    def walk(self, node: Node, dot: Any) -> None:
        self.node = node
        if isinstance(node, Text):
            self.out.text(node.text)
        elif isinstance(node, Action):
            value = self.pipeline(node.pipe, dot)
            if not node.pipe.decl:
                self.out.value(value)
        elif isinstance(node, Branch):
            self.walk_range(node, dot) if node.kind == "range" else self.walk_if(node, dot)
        elif isinstance(node, TemplateCall):
            self.walk_template(node, dot)
        elif isinstance(node, Break):
            raise _Break
        elif isinstance(node, Continue):
            raise _Continue

    def walk_if(self, node: Branch, dot: Any) -> None:
        mark = len(self.vars)
        try:
            value = self.pipeline(node.pipe, dot)
            if truth(value):
                self.walk_list(node.body, value if node.kind == "with" else dot)
            elif node.else_body is not None:
                self.walk_list(node.else_body, dot)
        finally:
            del self.vars[mark:]

    def walk_range(self, node: Branch, dot: Any) -> None:
        mark = len(self.vars)
        try:
            value = self.pipeline(node.pipe, dot)
            ran = False
            for key, elem in self.iterate(value, node):
                ran = True
                if self.iteration(node, key, elem):
                    break
            if not ran and node.else_body is not None:
                self.walk_list(node.else_body, dot)
        finally:
            del self.vars[mark:]

    def iterate(self, value: Any, node: Branch) -> Iterable[tuple[Any, Any]]:
        from shipper.templates.gofmt import map_key_order

        if isinstance(value, dict):
            return ((k, value[k]) for k in sorted(value, key=map_key_order))
        if isinstance(value, list | bytes):
            return enumerate(value)
        if is_int(value) and not isinstance(value, bool):
            if len(node.pipe.decl) > 1:
                raise self.fail(f"can't use {go_str(value)} to iterate over more than one variable")
            return ((None, type(value)(i)) for i in range(int(value)))
        if value is None:
            return ()
        raise self.fail(f"range can't iterate over {go_str(value)}")

    def iteration(self, node: Branch, key: Any, elem: Any) -> bool:
        """One pass of a range body; True on ``{{break}}``."""
        decl = node.pipe.decl
        if decl:
            if node.pipe.is_assign:
                self.set_var(decl[0], key if len(decl) > 1 else elem)
                if len(decl) > 1:
                    self.set_var(decl[1], elem)
            else:
                self.vars[-1][1] = elem
                if len(decl) > 1:
                    self.vars[-2][1] = key
        mark = len(self.vars)
        try:
            self.walk_list(node.body, elem)
        except _Continue:
            pass
        except _Break:
            return True
        finally:
            del self.vars[mark:]
        return False

    def walk_template(self, node: TemplateCall, dot: Any) -> None:
        if node.name not in self.trees:
            raise self.fail(f'template "{node.name}" not defined')
        value = self.pipeline(node.pipe, dot) if node.pipe is not None else None
        try:
            self.run(node.name, value)
        except RecursionError:
            raise self.fail("exceeded maximum template depth", node) from None

    # -- pipelines and commands

    def pipeline(self, pipe: Pipe, dot: Any) -> Any:
        self.node = pipe
        value: Any = MISSING
        for cmd in pipe.cmds:
            value = self.command(cmd, dot, value)
        for name in pipe.decl:
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.vars.append([name, value])
        return value

    def not_a_function(self, args: list[Node], final: Any) -> None:
        if len(args) > 1 or final is not MISSING:
            raise self.fail(f"can't give argument to non-function {args[0]}", args[0])

    def command(self, cmd: Command, dot: Any, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, FieldRef):
            self.node = first
            return self.field_chain(dot, dot, first.names, cmd.args, final, first)
        if isinstance(first, Chain):
            receiver = self.arg(first.node, None, dot)
            return self.field_chain(dot, receiver, first.names, cmd.args, final, first)
        if isinstance(first, Identifier):
            return self.function(first, cmd.args, final, dot, cmd)
        if isinstance(first, Variable):
            value = self.var(first.name)
            if not first.names:
                self.not_a_function(cmd.args, final)
                return value
            return self.field_chain(dot, value, first.names, cmd.args, final, first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, Pipe):
            return self.pipeline(first, dot)
        if isinstance(first, Nil):
            raise self.fail("nil is not a command", first)
        return self.constant(first, dot)

    def constant(self, node: Node, dot: Any) -> Any:
        if isinstance(node, Bool):
            return node.value
        if isinstance(node, String):
            return node.value
        if isinstance(node, Number):
            return self.ideal(node)
        return dot  # Dot

    def ideal(self, node: Number) -> Any:
        text = node.text
        is_hex_int = text.lower().startswith(("0x", "-0x", "+0x")) and "p" not in text.lower()
        if (
            node.is_float
            and not is_hex_int
            and not text.startswith("'")
            and any(c in text for c in ".eEpP")
        ):
            return node.float_value
        if node.is_int:
            return node.int_value
        raise self.fail(f"{text} overflows int", node)

    def field_chain(
        self,
        dot: Any,
        receiver: Any,
        names: tuple[str, ...],
        args: list[Node],
        final: Any,
        node: Node,
    ) -> Any:
        for name in names[:-1]:
            receiver = self.field(dot, name, node, [node], MISSING, receiver)
        return self.field(dot, names[-1], node, args, final, receiver)

    def field(
        self, dot: Any, name: str, node: Node, args: list[Node], final: Any, receiver: Any
    ) -> Any:
        """``.Name`` on a value: a method, a struct field or a map key."""
        if receiver is None:
            return None
        has_args = len(args) > 1 or final is not MISSING
        method = receiver.method(name) if isinstance(receiver, Struct | GoTime) else None
        if method is not None:
            return self.call(method, name, args, final, dot, node)
        if isinstance(receiver, Struct):
            found, value = receiver.lookup(name)
            if found:
                if has_args:
                    raise self.fail(f"{name} has arguments but cannot be invoked as function", node)
                return value
        elif isinstance(receiver, GoTime) and name == "Time" and receiver.kind != "time":
            if has_args:
                raise self.fail(f"{name} has arguments but cannot be invoked as function", node)
            return receiver.as_time()
        elif isinstance(receiver, dict):
            if has_args:
                raise self.fail(f"{name} is not a method but has arguments", node)
            return receiver.get(name)
        raise self.fail(f"can't evaluate field {name} in type {go_type(receiver)}", node)

    def function(
        self, node: Identifier, args: list[Node], final: Any, dot: Any, cmd: Node | None = None
    ) -> Any:
        self.node = node
        fn = FUNCTIONS.get(node.name)
        if fn is None:
            raise self.fail(f"{node.name!r} is not a defined function", node)
        return self.call(fn, node.name, args, final, dot, cmd or node)

    def call(
        self, fn: Method, name: str, args: list[Node], final: Any, dot: Any, node: Node
    ) -> Any:
        """Convert the arguments to the parameter types, call, and turn errors into Go's."""
        args = args[1:]
        count = len(args) + (final is not MISSING)
        fixed = len(fn.params)
        if fn.variadic is not None and count < fixed:
            raise self.fail(
                f"wrong number of args for {name}: want at least {fixed} got {len(args)}", node
            )
        if fn.variadic is None and count != fixed:
            raise self.fail(f"wrong number of args for {name}: want {fixed} got {count}", node)
        if name in SPECIAL and fn is FUNCTIONS.get(name) and name != "call":
            return self.and_or(name, args, final, dot)
        types = [*fn.params, *[fn.variadic] * (count - fixed)]
        argv = [self.arg(a, t, dot) for a, t in zip(args, types, strict=False)]
        if final is not MISSING:
            argv.append(self.validate(final, types[count - 1], node))
        try:
            return fn.fn(*argv)
        except (TemplateError, RecursionError):
            raise
        except GoError as exc:
            raise self.fail(f"error calling {name}: {exc}", node) from None
        except Exception as exc:  # a Go panic in the function: text/template reports it too
            raise self.fail(f"error calling {name}: {exc}", node) from None

    def and_or(self, name: str, args: list[Node], final: Any, dot: Any) -> Any:
        value: Any = None
        for node in args:
            value = self.arg(node, "value", dot)
            if truth(value) == (name == "or"):
                return value
        if final is not MISSING:
            value = final
        return value

    # -- arguments

    def validate(self, value: Any, typ: str | None, node: Node) -> Any:
        """text/template's validateType: nil only where Go allows it, exact types elsewhere."""
        if typ is None:
            return value
        if value is None:
            if typ in _NILLABLE:
                return GoMap({}, "interface {}", nil=True) if typ == "map" else None
            raise self.fail(f"invalid value; expected {_GO_NAMES.get(typ, typ)}", node)
        if not _exact(value, typ):
            expected = _GO_NAMES.get(typ, typ)
            raise self.fail(
                f"wrong type for value; expected {expected}; got {go_type(value)}", node
            )
        return value

    def arg(self, node: Node, typ: str | None, dot: Any) -> Any:
        self.node = node
        if isinstance(node, Dot):
            return self.validate(dot, typ, node)
        if isinstance(node, Nil):
            if typ in _NILLABLE:
                return GoMap({}, "interface {}", nil=True) if typ == "map" else None
            raise self.fail(f"cannot assign nil to {_GO_NAMES.get(typ or '', typ)}", node)
        if isinstance(node, FieldRef):
            return self.validate(
                self.field_chain(dot, dot, node.names, [node], MISSING, node), typ, node
            )
        if isinstance(node, Variable):
            value = self.var(node.name)
            if node.names:
                value = self.field_chain(dot, value, node.names, [node], MISSING, node)
            return self.validate(value, typ, node)
        if isinstance(node, Pipe):
            return self.validate(self.pipeline(node, dot), typ, node)
        if isinstance(node, Identifier):
            return self.validate(self.function(node, [node], MISSING, dot), typ, node)
        if isinstance(node, Chain):
            receiver = self.arg(node.node, None, dot)
            return self.validate(
                self.field_chain(dot, receiver, node.names, [node], MISSING, node), typ, node
            )
        return self.literal(node, typ)

    def literal(self, node: Node, typ: str | None) -> Any:
        """A constant given to a parameter: it must fit the parameter's type."""
        if typ in ("any", "value", None):
            return self.constant(node, None)
        if typ == "bool" and isinstance(node, Bool):
            return node.value
        if typ == "string" and isinstance(node, String):
            return node.value
        if typ in ("int", "int64") and isinstance(node, Number) and node.is_int:
            return node.int_value if typ == "int" else Int64(node.int_value)
        if typ == "float64" and isinstance(node, Number) and node.is_float:
            return node.float_value
        if typ in ("bool", "string", "int", "int64", "float64"):
            wanted = {"int64": "integer", "int": "integer", "float64": "float"}.get(typ, typ)
            raise self.fail(f"expected {wanted}; found {node}", node)
        raise self.fail(f"can't handle {node} for arg of type {_GO_NAMES.get(typ, typ)}", node)

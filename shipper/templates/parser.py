"""The parse tree of a Go template, built as text/template/parse/parse.go builds it.

Checked here, before any event, as Go checks at parse time: unknown functions, undefined
variables (a variable lives until the ``{{end}}`` of the block that declared it), ``{{break}}``
outside ``{{range}}``, a constant in a later pipeline stage (``{{ .A | "x" }}``), ``{{define}}``
only at the top level, a second definition of a template.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from shipper.templates.lexer import Token, lex
from shipper.templates.values import TemplateError


@dataclass
class Node:
    pos: int


@dataclass
class Text(Node):
    text: str


@dataclass
class Dot(Node):
    def __str__(self) -> str:
        return "."


@dataclass
class Nil(Node):
    def __str__(self) -> str:
        return "nil"


@dataclass
class Bool(Node):
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass
class String(Node):
    quoted: str
    value: str

    def __str__(self) -> str:
        return self.quoted


@dataclass
class Number(Node):
    """A constant: ``is_int``/``is_float`` say which Go types it may become (``5.0`` is both)."""

    text: str
    is_int: bool = False
    is_float: bool = False
    int_value: int = 0
    float_value: float = 0.0

    def __str__(self) -> str:
        return self.text


@dataclass
class FieldRef(Node):
    names: tuple[str, ...]

    def __str__(self) -> str:
        return "." + ".".join(self.names)


@dataclass
class Variable(Node):
    name: str
    names: tuple[str, ...] = ()

    def __str__(self) -> str:
        return ".".join((self.name, *self.names))


@dataclass
class Identifier(Node):
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass
class Chain(Node):
    node: Node
    names: tuple[str, ...]

    def __str__(self) -> str:
        inner = f"({self.node})" if isinstance(self.node, Pipe) else str(self.node)
        return inner + "." + ".".join(self.names)


@dataclass
class Command(Node):
    args: list[Node] = field(default_factory=list)

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, Pipe) else str(a) for a in self.args)


@dataclass
class Pipe(Node):
    decl: list[str] = field(default_factory=list)
    is_assign: bool = False
    cmds: list[Command] = field(default_factory=list)

    def __str__(self) -> str:
        head = (", ".join(self.decl) + (" = " if self.is_assign else " := ")) if self.decl else ""
        return head + " | ".join(str(c) for c in self.cmds)


@dataclass
class Action(Node):
    pipe: Pipe


@dataclass
class Branch(Node):
    """``if``, ``with`` or ``range``: ``else_body`` holds a nested node for ``else if``."""

    kind: str
    pipe: Pipe
    body: list[Node]
    else_body: list[Node] | None = None


@dataclass
class TemplateCall(Node):
    name: str
    pipe: Pipe | None

    def __str__(self) -> str:
        return f"{{{{template {self.name!r}" + (f" {self.pipe}" if self.pipe else "") + "}}"


@dataclass
class Break(Node):
    pass


@dataclass
class Continue(Node):
    pass


_TERMS = {
    "bool",
    "charconst",
    "number",
    "dot",
    "field",
    "ident",
    "nil",
    "raw",
    "string",
    "var",
    "(",
}


class Parser:
    """One parse of one text into ``trees`` (the main template and every ``define``/``block``)."""

    def __init__(self, text: str, name: str, functions: Collection[str]) -> None:
        self.text, self.name, self.functions = text, name, functions
        self.tokens = lex(text, self.where)
        self.i = 0
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.trees: dict[str, list[Node]] = {}

    def where(self, pos: int) -> str:
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        return f"{self.name}: line {line}, col {col}"

    def fail(self, pos: int, message: str) -> TemplateError:
        return TemplateError(f"{self.where(pos)}: {message}")

    # -- tokens

    def next(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next_non_space(self) -> Token:
        tok = self.next()
        while tok.kind == "space":
            tok = self.next()
        return tok

    def peek_non_space(self) -> Token:
        tok = self.next_non_space()
        self.i -= 1
        return tok

    def unexpected(self, tok: Token, context: str) -> TemplateError:
        what = "EOF" if tok.kind == "eof" else f"{tok.value!r}"
        if tok.kind == "right":
            what = "}}"
        return self.fail(tok.pos, f"unexpected {what} in {context}")

    # -- structure

    def parse(self) -> dict[str, list[Node]]:
        root: list[Node] = []
        while self.peek().kind != "eof":
            if self.peek().kind == "left":
                mark = self.i
                self.next()
                if self.next_non_space().kind == "define":
                    self.parse_definition()
                    continue
                self.i = mark
            node = self.text_or_action()
            if isinstance(node, _End | _Else):
                raise self.fail(node.pos, f"unexpected {{{{{node.word}}}}}")
            root.append(node)
        self.add(self.name, root, self.tokens[0].pos)
        return self.trees

    def add(self, name: str, body: list[Node], pos: int) -> None:
        old = self.trees.get(name)
        if old is None or _is_empty(old):
            self.trees[name] = body
        elif not _is_empty(body):
            raise self.fail(pos, f"multiple definition of template {name!r}")

    def parse_definition(self) -> None:
        tok = self.next_non_space()
        if tok.kind not in ("string", "raw"):
            raise self.unexpected(tok, "define clause")
        name = _unquote(tok.value)
        if self.next_non_space().kind != "right":
            raise self.fail(tok.pos, "unexpected words after the name in define clause")
        saved, self.vars = self.vars, ["$"]
        body, end = self.item_list()
        self.vars = saved
        if not isinstance(end, _End):
            raise self.fail(end.pos, "unexpected {{else}} in define clause")
        self.add(name, body, tok.pos)

    def item_list(self) -> tuple[list[Node], _End | _Else]:
        nodes: list[Node] = []
        while self.peek_non_space().kind != "eof":
            node = self.text_or_action()
            if isinstance(node, _End | _Else):
                return nodes, node
            nodes.append(node)
        raise self.fail(len(self.text), "unexpected EOF: missing {{end}}")

    def text_or_action(self) -> Node:
        tok = self.next_non_space()
        if tok.kind == "text":
            return Text(tok.pos, tok.value)
        if tok.kind == "left":
            return self.action(tok.pos)
        raise self.unexpected(tok, "input")

    def action(self, pos: int) -> Node:
        tok = self.next_non_space()
        handlers: dict[str, Callable[[Token], Node]] = {
            "block": self.block_control, "break": self.loop_control,
            "continue": self.loop_control, "else": self.else_control, "end": self.end_control,
            "if": self.branch, "range": self.branch, "template": self.template_control,
            "with": self.branch,
        }  # fmt: skip
        if tok.kind in handlers:
            return handlers[tok.kind](tok)
        if tok.kind == "right":
            raise self.fail(pos, "empty action {{}}: missing value for command")
        self.i -= 1
        return Action(pos, self.pipeline("command", "right"))

    def loop_control(self, tok: Token) -> Node:
        end = self.next_non_space()
        if end.kind != "right":
            raise self.unexpected(end, f"{{{{{tok.kind}}}}}")
        if not self.range_depth:
            raise self.fail(tok.pos, f"{{{{{tok.kind}}}}} outside {{{{range}}}}")
        return Break(tok.pos) if tok.kind == "break" else Continue(tok.pos)

    def end_control(self, tok: Token) -> Node:
        end = self.next_non_space()
        if end.kind != "right":
            raise self.unexpected(end, "end")
        return _End(tok.pos, "end")

    def else_control(self, tok: Token) -> Node:
        after = self.peek_non_space()
        if after.kind in ("if", "with"):
            return _Else(tok.pos, "else", chained=True)
        end = self.next_non_space()
        if end.kind != "right":
            raise self.fail(end.pos, "unexpected words after {{else}}")
        return _Else(tok.pos, "else")

    def branch(self, tok: Token) -> Node:
        """``if``/``with``/``range`` up to its ``{{end}}``; ``{{else if}}`` nests another one."""
        kind, mark = tok.kind, len(self.vars)
        pipe = self.pipeline(kind, "right")
        self.range_depth += kind == "range"
        body, end = self.item_list()
        self.range_depth -= kind == "range"
        node = Branch(tok.pos, kind, pipe, body)
        if isinstance(end, _Else):
            if end.chained and self.peek_non_space().kind == kind and kind != "range":
                node.else_body = [self.branch(self.next_non_space())]
            elif end.chained:
                raise self.fail(end.pos, f"{{{{else {self.peek_non_space().kind}}}}} inside {kind}")
            else:
                node.else_body, end = self.item_list()
                if not isinstance(end, _End):
                    raise self.fail(end.pos, "expected {{end}}; found {{else}}")
        del self.vars[mark:]
        return node

    def block_control(self, tok: Token) -> Node:
        name_tok = self.next_non_space()
        if name_tok.kind not in ("string", "raw"):
            raise self.unexpected(name_tok, "block clause")
        name = _unquote(name_tok.value)
        pipe = self.pipeline("block clause", "right")
        saved, self.vars, depth = self.vars, ["$"], self.range_depth
        self.range_depth = 0
        body, end = self.item_list()
        self.vars, self.range_depth = saved, depth
        if not isinstance(end, _End):
            raise self.fail(end.pos, "unexpected {{else}} in block clause")
        self.add(name, body, name_tok.pos)
        return TemplateCall(tok.pos, name, pipe)

    def template_control(self, tok: Token) -> Node:
        name_tok = self.next_non_space()
        if name_tok.kind not in ("string", "raw"):
            raise self.unexpected(name_tok, "template clause")
        pipe = None
        if self.next_non_space().kind != "right":
            self.i -= 1
            pipe = self.pipeline("template clause", "right")
        return TemplateCall(tok.pos, _unquote(name_tok.value), pipe)

    # -- pipelines

    def pipeline(self, context: str, end: str) -> Pipe:
        pipe = Pipe(self.peek_non_space().pos)
        self.declarations(pipe, context)
        while True:
            tok = self.next_non_space()
            if tok.kind == end:
                break
            if tok.kind not in _TERMS:
                raise self.unexpected(tok, context)
            self.i -= 1
            pipe.cmds.append(self.command())
        if not pipe.cmds:
            raise self.fail(pipe.pos, f"missing value for {context}")
        for n, cmd in enumerate(pipe.cmds[1:], start=2):
            if isinstance(cmd.args[0], Bool | Dot | Nil | Number | String):
                raise self.fail(cmd.pos, f"non executable command in pipeline stage {n}")
        return pipe

    def declarations(self, pipe: Pipe, context: str) -> None:
        """``$x :=``, ``$x =`` and ``range $i, $v :=``."""
        while self.peek_non_space().kind == "var":
            mark = self.i
            var = self.next_non_space()
            after = self.peek_non_space()
            if after.kind in (":=", "="):
                self.next_non_space()
                pipe.is_assign = after.kind == "="
                if pipe.is_assign:
                    self.use_var(var)
                pipe.decl.append(var.value)
                self.vars.append(var.value)
                return
            if after.kind == "char" and after.value == ",":
                self.next_non_space()
                pipe.decl.append(var.value)
                self.vars.append(var.value)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().kind in ("var", "right", ")"):
                        continue
                    raise self.fail(after.pos, "range can only initialize variables")
                raise self.fail(after.pos, f"too many declarations in {context}")
            self.i = mark
            return

    def command(self) -> Command:
        cmd = Command(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            tok = self.next()
            if tok.kind == "space":
                continue
            if tok.kind in ("right", ")"):
                self.i -= 1
            elif tok.kind != "pipe":
                raise self.unexpected(tok, "operand")
            break
        if not cmd.args:
            raise self.fail(cmd.pos, "empty command")
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None or self.peek().kind != "field":
            return node
        names: list[str] = []
        while self.peek().kind == "field":
            names.append(self.next().value[1:])
        if isinstance(node, FieldRef):
            return FieldRef(node.pos, (*node.names, *names))
        if isinstance(node, Variable):
            return Variable(node.pos, node.name, (*node.names, *names))
        if isinstance(node, Bool | String | Number | Nil | Dot):
            raise self.fail(node.pos, f"unexpected . after term {str(node)!r}")
        return Chain(node.pos, node, tuple(names))

    def term(self) -> Node | None:
        tok = self.next_non_space()
        kind = tok.kind
        if kind == "ident":
            if tok.value not in self.functions:
                raise self.fail(tok.pos, _unknown_function(tok.value, self.functions))
            return Identifier(tok.pos, tok.value)
        if kind in ("dot", "nil"):
            return Dot(tok.pos) if kind == "dot" else Nil(tok.pos)
        if kind == "var":
            return self.use_var(tok)
        if kind == "field":
            return FieldRef(tok.pos, (tok.value[1:],))
        if kind == "bool":
            return Bool(tok.pos, tok.value == "true")
        if kind in ("number", "charconst"):
            return self.number(tok)
        if kind == "(":
            return self.pipeline("parenthesized pipeline", ")")
        if kind in ("string", "raw"):
            return String(tok.pos, tok.value, _unquote(tok.value))
        self.i -= 1
        return None

    def use_var(self, tok: Token) -> Variable:
        if tok.value not in self.vars:
            raise self.fail(tok.pos, f"undefined variable {tok.value!r}")
        return Variable(tok.pos, tok.value)

    def number(self, tok: Token) -> Number:
        try:
            return make_number(tok.pos, tok.value)
        except ValueError as exc:
            raise self.fail(tok.pos, str(exc)) from None


@dataclass
class _End(Node):
    word: str


@dataclass
class _Else(Node):
    word: str
    chained: bool = False


def _is_empty(body: list[Node]) -> bool:
    return all(isinstance(n, Text) and not n.text.strip() for n in body)


_ESCAPE = re.compile(
    r"\\(?:([abfnrtv\\'\"])|x([0-9a-fA-F]{2})|([0-7]{3})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|(.?))",
    re.S,
)
_SIMPLE = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, "'": 39, '"': 34}


def _unquote(quoted: str) -> str:
    """strconv.Unquote for "..." and `...`: Go's escapes (\\x and octal are bytes)."""
    if quoted.startswith("`"):
        return quoted[1:-1]
    out = bytearray()
    body, pos = quoted[1:-1], 0
    for m in _ESCAPE.finditer(body):
        out += body[pos : m.start()].encode()
        pos = m.end()
        simple, hex2, octal, u4, u8, bad = m.groups()
        if bad is not None or (simple == "'" and quoted[0] == '"'):
            raise ValueError(f"invalid syntax: {quoted}")
        if simple:
            out.append(_SIMPLE[simple])
        elif hex2 or octal:
            out.append(int(hex2, 16) if hex2 else int(octal, 8) & 0xFF)
        else:
            out += chr(int(u4 or u8, 16)).encode("utf-8", "replace")
    out += body[pos:].encode()
    return out.decode("utf-8", "replace")


def make_number(pos: int, text: str) -> Number:
    """The constant's Go readings, as parse.newNumber computes them."""
    node = Number(pos, text)
    if text.startswith("'"):
        value = _unquote('"' + text[1:-1].replace('"', '\\"').replace("\\'", "'") + '"')
        if len(value) != 1:
            raise ValueError(f"malformed character constant: {text}")
        node.is_int = node.is_float = True
        node.int_value, node.float_value = ord(value), float(ord(value))
        return node
    clean = text.replace("_", "")
    try:
        body = clean.lstrip("+-")
        base = 8 if len(body) > 1 and body[0] == "0" and body[1].isdigit() else 0
        node.int_value = int(clean, base) if base else int(clean, 0)
        if not -(2**63) <= node.int_value < 2**63:
            raise ValueError(f"integer overflow: {text!r}")
        node.is_int = node.is_float = True
        node.float_value = float(node.int_value)
        return node
    except ValueError:
        pass
    try:
        value = float.fromhex(clean) if "x" in clean.lower() else float(clean)
    except ValueError:
        raise ValueError(f"illegal number syntax: {text!r}") from None
    if not any(c in text for c in ".eEpP") or ("x" in clean.lower() and "p" not in clean.lower()):
        raise ValueError(f"integer overflow: {text!r}")
    node.is_float, node.float_value = True, value
    if value == int(value) and abs(value) < 2**63:
        node.is_int, node.int_value = True, int(value)
    return node


_HELM_ONLY = frozenset(("include", "lookup", "required", "toToml", "toYaml", "fromYaml", "tpl"))


def _unknown_function(name: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    if name in _HELM_ONLY:
        hint = f"; {name} is one of Helm's functions, not sprig's"
    return f"unknown function {name!r}{hint} (function {name!r} not defined)"


def parse(text: str, name: str, functions: Collection[str]) -> dict[str, list[Node]]:
    """The templates of ``text`` by name (``name`` is the main one)."""
    return Parser(text, name, functions).parse()

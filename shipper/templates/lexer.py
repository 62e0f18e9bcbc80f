"""Tokens of a Go template, as text/template/parse/lex.go cuts them.

Kept to Go's rules because they decide what a template means: ``{{-`` and ``-}}`` trim only
when a space follows/precedes the dash (``{{-3}}`` is the number -3), a comment must touch its
delimiters (``{{/* x */}}``), ``.A.B`` is two field tokens the parser joins while ``.A .B`` are
two arguments, and spaces are tokens (they separate arguments).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from shipper.templates.values import TemplateError

KEYWORDS = frozenset(
    ("block", "break", "continue", "define", "else", "end", "if", "range", "template", "with")
)
_SPACE = " \t\r\n"


@dataclass(slots=True)
class Token:
    """One lexeme: ``kind`` (text, left, right, space, ident, field, var, dot, string, raw,
    charconst, number, bool, nil, pipe, ``(``, ``)``, ``:=``, ``=``, char, a keyword, eof)."""

    kind: str
    value: str
    pos: int


def _alnum(ch: str) -> bool:
    return ch == "_" or ch.isalpha() or unicodedata.category(ch) == "Nd"


class Lexer:
    """Cuts the whole text into tokens up front; errors name the position (see ``where``)."""

    def __init__(self, text: str, where: object) -> None:
        self.text = text
        self.where = where  # callable: pos -> "name: line L, col C"
        self.tokens: list[Token] = []

    def fail(self, pos: int, message: str) -> TemplateError:
        return TemplateError(f"{self.where(pos)}: {message}")  # type: ignore[operator]

    def run(self) -> list[Token]:
        pos = 0
        while pos < len(self.text):
            pos = self.lex_text(pos)
        self.tokens.append(Token("eof", "", len(self.text)))
        return self.tokens

    def lex_text(self, pos: int) -> int:
        """Text up to the next ``{{`` (trimmed when the action starts with ``{{- ``)."""
        text = self.text
        start = text.find("{{", pos)
        if start < 0:
            self.tokens.append(Token("text", text[pos:], pos))
            return len(text)
        chunk = text[pos:start]
        if _left_trim(text, start + 2):
            chunk = chunk.rstrip(_SPACE)
        if chunk:
            self.tokens.append(Token("text", chunk, pos))
        return self.lex_left(start)

    def lex_left(self, start: int) -> int:
        text = self.text
        pos = start + 2
        trim = _left_trim(text, pos)
        after = pos + (2 if trim else 0)
        if text.startswith("/*", after):
            return self.lex_comment(start, after)
        self.tokens.append(Token("left", "{{", start))
        return self.lex_action(after)

    def lex_comment(self, start: int, pos: int) -> int:
        text = self.text
        end = text.find("*/", pos + 2)
        if end < 0:
            raise self.fail(start, "unclosed comment")
        pos = end + 2
        delim, trim = self.at_right(pos)
        if not delim:
            raise self.fail(start, "comment ends before closing delimiter")
        pos += (2 if trim else 0) + 2
        if trim:
            pos = _skip_space(text, pos)
        return pos

    def at_right(self, pos: int) -> tuple[bool, bool]:
        """At ``}}`` (False) or `` -}}`` (True)?"""
        text = self.text
        if _right_trim(text, pos) and text.startswith("}}", pos + 2):
            return True, True
        return text.startswith("}}", pos), False

    def lex_action(self, pos: int) -> int:
        text, depth = self.text, 0
        while True:
            delim, trim = self.at_right(pos)
            if delim:
                if depth:
                    raise self.fail(pos, "unclosed left paren")
                end = pos + (2 if trim else 0)
                self.tokens.append(Token("right", "}}", end))
                end += 2
                return _skip_space(text, end) if trim else end
            if pos >= len(text):
                raise self.fail(pos, "unclosed action (no closing }})")
            ch = text[pos]
            if ch in _SPACE:
                pos = self.lex_space(pos)
            elif ch == "(" or ch == ")":
                depth += 1 if ch == "(" else -1
                if depth < 0:
                    raise self.fail(pos, "unexpected right paren")
                self.tokens.append(Token(ch, ch, pos))
                pos += 1
            else:
                pos = self.lex_word(pos, ch)

    def lex_space(self, pos: int) -> int:
        start, text = pos, self.text
        while pos < len(text) and text[pos] in _SPACE:
            pos += 1
        if _right_trim(text, pos - 1) and text.startswith("}}", pos + 1):
            pos -= 1  # the space before " -}}" belongs to the delimiter
            if pos == start:
                return pos
        self.tokens.append(Token("space", text[start:pos], start))
        return pos

    def lex_word(self, pos: int, ch: str) -> int:
        text = self.text
        simple = {"|": "pipe", "=": "=", ",": "char"}
        if ch in simple:
            self.tokens.append(Token(simple[ch], ch, pos))
            return pos + 1
        if ch == ":":
            if not text.startswith(":=", pos):
                raise self.fail(pos, "expected :=")
            self.tokens.append(Token(":=", ":=", pos))
            return pos + 2
        if ch in "\"`'":
            return self.lex_quoted(pos, ch)
        if ch == "$":
            return self.lex_name(pos, "var")
        if ch == "." and not (pos + 1 < len(text) and text[pos + 1].isdigit()):
            return self.lex_name(pos, "field")
        if ch in "+-." or ch.isdigit():
            return self.lex_number(pos)
        if _alnum(ch):
            return self.lex_identifier(pos)
        if ch.isascii() and ch.isprintable():
            self.tokens.append(Token("char", ch, pos))
            return pos + 1
        raise self.fail(pos, f"unrecognized character in action: {ch!r}")

    def at_terminator(self, pos: int) -> bool:
        text = self.text
        if pos >= len(text) or text[pos] in _SPACE or text[pos] in ".,|:)(":
            return True
        return text.startswith("}}", pos)

    def lex_name(self, pos: int, kind: str) -> int:
        """``$``, ``$x``, ``.`` or ``.Field``."""
        start = pos
        pos += 1
        if self.at_terminator(pos):
            self.tokens.append(Token(kind if kind == "var" else "dot", self.text[start:pos], start))
            return pos
        while pos < len(self.text) and _alnum(self.text[pos]):
            pos += 1
        if not self.at_terminator(pos):
            raise self.fail(pos, f"bad character {self.text[pos]!r}")
        self.tokens.append(Token(kind, self.text[start:pos], start))
        return pos

    def lex_identifier(self, pos: int) -> int:
        start, text = pos, self.text
        while pos < len(text) and _alnum(text[pos]):
            pos += 1
        if not self.at_terminator(pos):
            raise self.fail(pos, f"bad character {text[pos]!r}")
        word = text[start:pos]
        kind = word if word in KEYWORDS else "ident"
        if word in ("true", "false"):
            kind = "bool"
        elif word == "nil":
            kind = "nil"
        self.tokens.append(Token(kind, word, start))
        return pos

    def lex_quoted(self, pos: int, quote: str) -> int:
        text, start = self.text, pos
        pos += 1
        while True:
            if pos >= len(text) or (quote != "`" and text[pos] == "\n"):
                what = {"`": "raw string", "'": "character constant"}.get(quote, "string")
                raise self.fail(start, f"unterminated {what}")
            ch = text[pos]
            if ch == "\\" and quote != "`":
                pos += 2
                continue
            pos += 1
            if ch == quote:
                break
        kind = {"`": "raw", "'": "charconst"}.get(quote, "string")
        self.tokens.append(Token(kind, text[start:pos], start))
        return pos

    def lex_number(self, pos: int) -> int:
        """Go's number syntax: signs, 0x/0o/0b, underscores, fractions, exponents."""
        text, start = self.text, pos
        if pos < len(text) and text[pos] in "+-":
            pos += 1
        digits = "0123456789_"
        if text.startswith(("0x", "0X"), pos):
            digits, pos = "0123456789abcdefABCDEF_", pos + 2
        elif text.startswith(("0o", "0O", "0b", "0B"), pos):
            digits = "01234567_" if text[pos + 1] in "oO" else "01_"
            pos += 2
        while pos < len(text) and text[pos] in digits:
            pos += 1
        if pos < len(text) and text[pos] == ".":
            pos += 1
            while pos < len(text) and text[pos] in digits:
                pos += 1
        exp = "eE" if len(digits) == 11 else "pP" if len(digits) == 23 else ""
        if exp and pos < len(text) and text[pos] in exp:
            pos += 1
            if pos < len(text) and text[pos] in "+-":
                pos += 1
            while pos < len(text) and text[pos] in "0123456789_":
                pos += 1
        if pos < len(text) and (_alnum(text[pos]) or text[pos] in "+-"):
            raise self.fail(start, f"bad number syntax: {text[start : pos + 1]!r}")
        self.tokens.append(Token("number", text[start:pos], start))
        return pos


def _left_trim(text: str, pos: int) -> bool:
    return text.startswith("-", pos) and pos + 1 < len(text) and text[pos + 1] in _SPACE


def _right_trim(text: str, pos: int) -> bool:
    return pos >= 0 and text[pos : pos + 1] in tuple(_SPACE) and text.startswith("-", pos + 1)


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _SPACE:
        pos += 1
    return pos


def lex(text: str, where: object) -> list[Token]:
    """All tokens of ``text``; ``where(pos)`` names a position for error messages."""
    return Lexer(text, where).run()

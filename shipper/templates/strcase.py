"""Go's rune-by-rune case functions and huandu/xstrings' camel/snake/kebab case, ported.

Python's own ``str.upper`` and ``str.title`` differ from Go's (``"ß".upper()`` is ``"SS"`` in
Python, ``"ß"`` in Go; ``"back_off".title()`` is ``"Back_Off"`` in Python, ``"Back_off"`` with
Go's ``strings.Title``), and sprig's ``camelcase``/``snakecase``/``kebabcase`` split words by
xstrings' own rules; users compare these outputs with what kubernetes-event-exporter sent.
"""

from __future__ import annotations

import unicodedata

#: unicode.IsSpace.
GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"  # noqa: E501


def _one(mapped: str, original: str) -> str:
    """Go maps rune to rune: a mapping that would give several characters keeps the rune."""
    return mapped if len(mapped) == 1 else original


def go_upper(text: str) -> str:
    return "".join(_one(c.upper(), c) for c in text)


def go_lower(text: str) -> str:
    return "".join(_one(c.lower(), c) for c in text)


def _is_upper(ch: str) -> bool:
    return unicodedata.category(ch) == "Lu"


def _is_lower(ch: str) -> bool:
    return unicodedata.category(ch) == "Ll"


def _is_letter(ch: str) -> bool:
    return unicodedata.category(ch)[0] == "L"


def _is_number(ch: str) -> bool:
    return unicodedata.category(ch)[0] == "N"


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch)[0] == "P"


def _is_separator(ch: str) -> bool:
    """strings.Title's word boundary."""
    if ord(ch) <= 0x7F:
        return not (ch.isalnum() or ch == "_")
    if _is_letter(ch) or unicodedata.category(ch) == "Nd":
        return False
    return ch in GO_SPACE


def go_title(text: str) -> str:
    """strings.Title: the first letter of each word in title case."""
    out, prev = [], " "
    for ch in text:
        out.append(_one(ch.title(), ch) if _is_separator(prev) else ch)
        prev = ch
    return "".join(out)


def swap_case(text: str) -> str:
    out = []
    for ch in text:
        if _is_upper(ch):
            ch = _one(ch.lower(), ch)
        elif _is_lower(ch):
            ch = _one(ch.upper(), ch)
        out.append(ch)
    return "".join(out)


def _connector(ch: str) -> bool:
    return ch in "-_" or ch in GO_SPACE


def camel_case(text: str) -> str:
    """xstrings.ToPascalCase (sprig's ``camelcase``): ``kube_event-shipper`` is
    ``KubeEventShipper``."""
    if not text:
        return ""
    out: list[str] = []
    chars = list(text)
    i, first_upper, r0 = 0, False, ""
    while i < len(chars):
        r0 = chars[i]
        i += 1
        if not _connector(r0):
            first_upper = _is_upper(r0)
            r0 = _one(r0.upper(), r0)
            break
        out.append(r0)
    else:
        return "".join(out)
    while i < len(chars):
        r1, r0 = r0, chars[i]
        i += 1
        if _connector(r0) and _connector(r1):
            out.append(r1)
            continue
        if _connector(r1):
            first_upper = _is_upper(r0)
            r0 = _one(r0.upper(), r0)
        else:
            if first_upper:
                if _is_upper(r0):
                    r0 = _one(r0.lower(), r0)
                else:
                    first_upper = False
            out.append(r1)
    out.append(r0)
    return "".join(out)


def _word_kind(ch: str) -> str:
    if _connector(ch):
        return "connector"
    if _is_punct(ch):
        return "punct"
    if _is_upper(ch):
        return "upper"
    if _is_letter(ch):
        return "alpha"
    if _is_number(ch):
        return "number"
    return "other"


def _next_word(text: str) -> tuple[str, str, str]:
    """xstrings.nextWord: (kind, word, rest)."""
    if not text:
        return "invalid", "", ""
    kind, n = _word_kind(text[0]), 1
    if kind in ("connector", "punct", "number"):
        while n < len(text) and _word_kind(text[n]) == kind:
            n += 1
    elif kind == "upper":
        if n < len(text) and _is_upper(text[n]):
            while n < len(text) and _is_upper(text[n]):
                n += 1
            if n < len(text) and _is_letter(text[n]):
                n -= 1
        elif n < len(text) and _is_letter(text[n]):
            while n < len(text) and _is_letter(text[n]) and not _is_upper(text[n]):
                n += 1
    elif kind == "alpha":
        while n < len(text) and _is_letter(text[n]) and not _is_upper(text[n]):
            n += 1
    else:
        while n < len(text) and _word_kind(text[n]) == "other":
            n += 1
    return ("alpha" if kind == "alpha" else kind), text[:n], text[n:]


def _lower_word(out: list[str], kind: str, word: str, connector: str) -> None:
    if kind not in ("upper", "connector"):
        out.append(word)
        return
    for ch in word:
        out.append(connector if _connector(ch) else _one(ch.lower(), ch) if _is_upper(ch) else ch)


def _to_lower_case(text: str, connector: str) -> str:
    """xstrings.camelCaseToLowerCase (snake and kebab case)."""
    if not text:
        return ""
    out: list[str] = []
    kind, word, rest = _next_word(text)
    while rest:
        if kind != "connector":
            _lower_word(out, kind, word, connector)
        prev, last = kind, word
        kind, word, rest = _next_word(rest)
        if prev == "number":
            while kind in ("alpha", "number"):
                _lower_word(out, kind, word, connector)
                kind, word, rest = _next_word(rest)
            if kind not in ("invalid", "punct", "connector"):
                out.append(connector)
        elif prev == "connector":
            _lower_word(out, prev, last, connector)
        elif prev == "punct":
            pass
        elif kind != "number":
            if kind not in ("connector", "punct"):
                out.append(connector)
        elif rest:
            last = word
            kind, word, rest = _next_word(rest)
            if kind != "alpha":
                _lower_word(out, "number", last, connector)
                if kind not in ("connector", "punct"):
                    out.append(connector)
            else:
                out.append(connector)
                _lower_word(out, "number", last, connector)
                while kind in ("alpha", "number"):
                    _lower_word(out, kind, word, connector)
                    kind, word, rest = _next_word(rest)
                if kind not in ("invalid", "connector", "punct"):
                    out.append(connector)
    _lower_word(out, kind, word, connector)
    return "".join(out)


def snake_case(text: str) -> str:
    return _to_lower_case(text, "_")


def kebab_case(text: str) -> str:
    return _to_lower_case(text, "-")

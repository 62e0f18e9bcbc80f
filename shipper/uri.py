"""The Heapster / kube-eventer URI grammar and declared parameters.

A source or sink is written ``scheme[:rest][?params]``, for example::

    kubernetes:https://kubernetes.default?inClusterConfig=false
    sqlite:/var/lib/kube-event-shipper/events.db?retention=720h
    dingtalk:https://oapi.dingtalk.com/robot/send?access_token=T&level=Warning

``rest`` may itself be a URL with a query of its own. Every source and sink declares its
parameters once (:class:`Param`); the declared ones are taken from the query and validated, and
for sinks that talk to a vendor URL the others stay on that URL (``access_token`` above).

``$VAR`` and ``${VAR}`` expand from the environment in ``rest`` and in every value (``$$`` is a
literal ``$``). A secret parameter ``p`` may instead be given as ``p_file=/path`` so tokens come
from a mounted Secret and never sit in the Deployment's args.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

log = logging.getLogger(__name__)


class UsageError(Exception):
    """Bad input from the command line or a config file: one line for stderr, exit code 2."""


# -- value parsers: each takes the raw string and returns the typed value or raises ValueError


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Go-style durations (``720h``, ``1h30m``, ``500ms``) or plain seconds; returns seconds."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if seconds < 0:
            raise ValueError("expected a duration that is not negative")
        return seconds
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError("expected a duration such as 30s, 15m, 720h or 1h30m")
    return total


def parse_positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("expected a whole number of at least 1")
    return value


def parse_nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("expected a whole number, 0 or more")
    return value


def parse_list(text: str) -> list[str]:
    """Comma-separated values; empty items are ignored."""
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_regex(text: str) -> re.Pattern[str]:
    """A regular expression; commas outside brackets separate alternatives, as kube-eventer's
    docs write lists (``exclude_reasons=Pulled,BackOff``): no reason contains a comma."""
    parts = _top_level_split(text)
    source = parts[0] if len(parts) == 1 else "|".join(f"(?:{part})" for part in parts)
    try:
        return re.compile(source)
    except re.error as exc:
        raise ValueError(f"expected a regular expression ({exc})") from exc


def _top_level_split(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [part for part in parts if part] or [""]


def choice(*options: str, case_insensitive: bool = True) -> Callable[[str], str]:
    def parse(text: str) -> str:
        for option in options:
            if text == option or (case_insensitive and text.lower() == option.lower()):
                return option
        raise ValueError("expected one of " + ", ".join(options))

    parse.__name__ = "one of " + "|".join(options)
    return parse


_TYPE_NAMES: dict[Callable[..., Any], str] = {
    str: "text",
    parse_bool: "bool",
    parse_duration: "duration",
    parse_positive_int: "int",
    parse_nonnegative_int: "int",
    int: "int",
    parse_list: "list",
    parse_regex: "regex",
}


@dataclass(frozen=True)
class Param:
    """One declared parameter of a source or sink.

    ``Param("retention", parse_duration, 30 * 86400.0, "How long events are kept.")`` declares
    ``?retention=720h``. ``repeat`` collects every occurrence into a list (``?nodes=a&nodes=b``);
    list-typed parameters also accept commas. ``secret`` values are redacted in logs and may be
    read from ``<name>_file``.
    """

    name: str
    parse: Callable[[str], Any]
    default: Any
    doc: str
    secret: bool = False
    repeat: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES.get(self.parse, getattr(self.parse, "__name__", "text"))


@dataclass
class Uri:
    """A split ``scheme[:rest][?query]``; ``query`` keeps every pair in order."""

    scheme: str
    rest: str
    query: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str, *, what: str) -> Uri:
        text = text.strip()
        if not text:
            raise UsageError(f"{what}: empty value; expected scheme[:rest][?params]")
        head, sep, query = text.partition("?")
        scheme, _, rest = head.partition(":")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.+-]*", scheme):
            raise UsageError(f"{what}: {scheme!r} is not a scheme; expected scheme[:rest][?params]")
        pairs = parse_qsl(query, keep_blank_values=True) if sep else []
        rest = expand_env(rest, where=f"{what} {scheme}")
        return cls(scheme.lower(), rest, pairs)


_ENV_REF = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*)|(\$))")


def expand_env(text: str, *, where: str, environ: dict[str, str] | None = None) -> str:
    """Expand ``$VAR`` / ``${VAR}``; an unset variable is an error, ``$$`` a literal ``$``."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        if match.group(3):
            return "$"
        name = match.group(1) or match.group(2)
        if name not in env:
            raise UsageError(f"{where}: environment variable {name} is not set")
        return env[name]

    return _ENV_REF.sub(substitute, text)


def _read_secret_file(path: str, *, where: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().rstrip("\r\n")
    except OSError as exc:
        raise UsageError(f"{where}: cannot read {path}: {exc.strerror}") from exc


def resolve_params(
    declared: Sequence[Param],
    pairs: Iterable[tuple[str, str]],
    *,
    where: str,
    passthrough: bool = False,
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Validate ``pairs`` against ``declared``; return (values by name, pairs left for the URL).

    Unknown names are an error with the closest known name suggested, unless ``passthrough``
    (the sink's rest is a vendor URL whose own query they belong to).
    """
    by_name: dict[str, Param] = {}
    for param in declared:
        for name in (param.name, *param.aliases):
            by_name[name] = param
    raw: dict[str, list[str]] = {}
    leftover: list[tuple[str, str]] = []
    for key, value in pairs:
        param = by_name.get(key)
        from_file = False
        if param is None and key.endswith("_file"):
            candidate = by_name.get(key[: -len("_file")])
            if candidate is not None and candidate.secret:
                param, from_file = candidate, True
        if param is None:
            if passthrough:
                leftover.append((key, expand_env(value, where=f"{where} parameter {key}")))
                continue
            raise UsageError(_unknown_param_message(key, by_name, where))
        value = expand_env(value, where=f"{where} parameter {key}")
        if from_file:
            value = _read_secret_file(value, where=f"{where} parameter {key}")
        if param.name in raw and not param.repeat:
            # kube-eventer reads url.Values.Get: the first one counts. Say so, keep going.
            log.warning(
                "%s: parameter %r is given more than once; the first one counts.", where, param.name
            )
            continue
        raw.setdefault(param.name, []).append(value)
    values: dict[str, Any] = {}
    for param in declared:
        if param.name not in raw:
            values[param.name] = param.default
            continue
        values[param.name] = _parse_values(param, raw[param.name], where)
    return values, leftover


def _parse_values(param: Param, texts: list[str], where: str) -> Any:
    try:
        if param.repeat:
            parsed: list[Any] = []
            for text in texts:
                item = param.parse(text)
                parsed.extend(item if isinstance(item, list) else [item])
            return parsed
        return param.parse(texts[0])
    except ValueError as exc:
        shown = "***" if param.secret else repr(texts[0])
        raise UsageError(f"{where}: parameter {param.name}={shown}: {exc}") from None


def _unknown_param_message(key: str, known: dict[str, Param], where: str) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if not close:
        close = [name for name in known if name.lower() == key.lower()]
    hint = f"; did you mean {close[0]!r}?" if close else ""
    names = ", ".join(sorted({param.name for param in known.values()}))
    return f"{where}: unknown parameter {key!r}{hint} (known: {names})"


def unknown_scheme_message(scheme: str, known: Iterable[str], what: str) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(scheme, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{what}: unknown scheme {scheme!r}{hint} (known: {', '.join(known)})"


_SECRET_KEYS = re.compile(r"(token|secret|sign|password|passwd|pw|key|auth)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """A URL safe for logs: userinfo passwords and secret-looking query values become ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{quote(user)}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = [
        (key, "***" if _SECRET_KEYS.search(key) else value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="*"), ""))


def split_http_url(text: str, example: str) -> tuple[SplitResult, str | None, str | None]:
    """``http(s)://[user:pw@]host[:port][/path]``: its parts without the credentials, and the
    credentials, percent-decoded, so that neither a client nor a log line sees them in a URL.
    ValueError (naming ``example``) for anything else."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected a URL such as {example}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port is not a number") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return parts._replace(netloc=host + (f":{port}" if port else "")), user, password

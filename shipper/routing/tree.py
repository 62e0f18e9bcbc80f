"""kubernetes-event-exporter's route tree: rules that drop or send events to receivers.

Route semantics are theirs (pkg/exporter/route.go): in a route, any matching ``drop`` rule ends
the route and its subtree; every matching ``match`` rule with a ``receiver`` sends the event
there; the child ``routes`` run only if every ``match`` rule matched. Within a rule the fields
AND; several rules OR. Values are unanchored regular expressions over the event's fields:
``message, apiVersion, kind, namespace, reason, type, component, host`` plus ``labels`` /
``annotations`` (the involved object's) and ``minCount``. ``namespace`` is the Event's own
namespace, the one meaning of namespace everywhere (:mod:`shipper.routing.filters`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipper.event import Event

if TYPE_CHECKING:
    from shipper.config import Where

RULE_FIELDS = {
    # their field -> how to read it from our Event
    "message": lambda e: e.message,
    "apiVersion": lambda e: e.object_api_version or "",
    "kind": lambda e: e.object_kind or "",
    "namespace": lambda e: e.namespace,  # the Event object's namespace, as theirs
    "reason": lambda e: e.reason,
    "type": lambda e: e.type,
    "component": lambda e: e.source_component or e.reporting_controller or "",
    "host": lambda e: e.source_host or "",
}
RULE_KEYS = {*RULE_FIELDS, "labels", "annotations", "minCount", "receiver"}
ROUTE_KEYS = {"drop", "match", "routes"}
# -- rules and routes


@dataclass
class Rule:
    fields: dict[str, re.Pattern[str] | _Glob | _Never] = field(default_factory=dict)
    labels: dict[str, re.Pattern[str] | _Glob | _Never] = field(default_factory=dict)
    annotations: dict[str, re.Pattern[str] | _Glob | _Never] = field(default_factory=dict)
    min_count: int | None = None
    receiver: str | None = None
    line: int = 0

    def matches(self, event: Event) -> bool:
        for name, pattern in self.fields.items():
            if not pattern.search(RULE_FIELDS[name](event)):
                return False
        for wanted, have in ((self.labels, event.labels), (self.annotations, event.annotations)):
            for key, pattern in wanted.items():
                value = (have or {}).get(key)
                if value is None or not pattern.search(value):
                    return False
        return self.min_count is None or event.count >= self.min_count

    def describe(self) -> str:
        parts = [f"{k}~{p.pattern}" for k, p in self.fields.items()]
        parts += [f"labels.{k}~{p.pattern}" for k, p in self.labels.items()]
        parts += [f"annotations.{k}~{p.pattern}" for k, p in self.annotations.items()]
        if self.min_count is not None:
            parts.append(f"count>={self.min_count}")
        return " ".join(parts) or "every event"


@dataclass
class Route:
    drop: list[Rule] = field(default_factory=list)
    match: list[Rule] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)

    def receivers(self, event: Event, found: list[str]) -> None:
        """Append, in order, every receiver this route sends ``event`` to."""
        if any(rule.matches(event) for rule in self.drop):
            return
        matches_all = True
        for rule in self.match:
            if rule.matches(event):
                if rule.receiver and rule.receiver not in found:
                    found.append(rule.receiver)
            else:
                matches_all = False
        if matches_all:
            for child in self.routes:
                child.receivers(event, found)

    def all_rules(self) -> Iterable[Rule]:
        yield from self.drop
        yield from self.match
        for child in self.routes:
            yield from child.all_rules()

    def tree(self, indent: str = "") -> list[str]:
        """The route as readable lines, for ``kube-event-shipper check``."""
        lines = []
        for rule in self.drop:
            lines.append(f"{indent}drop if {rule.describe()}")
        for rule in self.match:
            target = f" -> {rule.receiver}" if rule.receiver else ""
            lines.append(f"{indent}match {rule.describe()}{target}")
        for number, child in enumerate(self.routes, 1):
            condition = "if every match above matched" if self.match else "always"
            lines.append(f"{indent}route {number} ({condition}):")
            lines.extend(child.tree(indent + "  "))
        return lines


class _Never:
    """An invalid regular expression: matches nothing, as in the original."""

    def __init__(self, text: str) -> None:
        self.pattern = f"invalid:{text}"

    def search(self, value: str) -> None:
        return None


class _Glob:
    """A value that was meant as a glob (``*test*``): matches like one, shows as one."""

    def __init__(self, text: str) -> None:
        self.pattern = f"glob:{text}"
        self._regex = re.compile(fnmatch.translate(text))

    def search(self, value: str) -> re.Match[str] | None:
        return self._regex.match(value)


def _pattern(value: Any, where: Where, line: int, name: str) -> re.Pattern[str] | _Glob | _Never:
    text = str(value)
    try:
        return re.compile(text)
    except re.error as exc:
        if any(c in text for c in "*?") and not re.search(r"[()\\[\]{}|^$+]", text):
            where.warn(
                line,
                f"{name}: {text!r} is not a regular expression; read as the glob it looks like",
            )
            return _Glob(text)
        # Theirs compiles it, fails, and the rule never matches: the same here, said aloud.
        where.lenient(
            line, f"{name}: {text!r} is not a valid regular expression ({exc}); it never matches"
        )
        return _Never(text)


def _rule(raw: Any, where: Where, line: int) -> Rule:
    if not isinstance(raw, dict):
        raise where.error(line, f"a rule must be a mapping of fields, not {type(raw).__name__}")
    rule = Rule(line=getattr(raw, "line", line))
    for key, value in raw.items():
        at = getattr(raw, "lines", {}).get(key, line)
        if key not in RULE_KEYS:
            where.lenient(
                at, f"unknown rule field {key!r} is ignored (known: {', '.join(sorted(RULE_KEYS))})"
            )
            continue
        if key in RULE_FIELDS:
            if value not in (None, ""):
                rule.fields[key] = _pattern(value, where, at, key)
        elif key in ("labels", "annotations"):
            if not isinstance(value, dict):
                raise where.error(at, f"{key}: expected a mapping of key: regex")
            getattr(rule, key).update(
                {str(k): _pattern(v, where, at, f"{key}.{k}") for k, v in value.items()}
            )
        elif key == "minCount":
            if not isinstance(value, int) or value < 0:
                raise where.error(at, f"minCount: expected a whole number, got {value!r}")
            rule.min_count = value
        elif key == "receiver":
            rule.receiver = str(value) if value else None
    return rule


def _route(raw: Any, where: Where, line: int) -> Route:
    if raw is None:
        return Route()
    if not isinstance(raw, dict):
        raise where.error(line, "route: expected a mapping with drop, match and routes")
    route = Route()
    for key, value in raw.items():
        at = raw.lines.get(key, line)
        if key not in ROUTE_KEYS:
            where.lenient(at, f"unknown route key {key!r} is ignored (known: drop, match, routes)")
            continue
        if not isinstance(value, list):
            raise where.error(at, f"{key}: expected a list")
        if key == "routes":
            route.routes = [_route(child, where, getattr(child, "line", at)) for child in value]
        else:
            setattr(route, key, [_rule(rule, where, getattr(rule, "line", at)) for rule in value])
    return route

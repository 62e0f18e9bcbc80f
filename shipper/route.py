"""Which events a sink gets: kube-eventer's filter parameters, for every sink.

``level=Warning`` passes Warnings only; ``level=Normal`` passes both (kube-eventer's meaning: a
threshold, not an equality). ``namespaces`` and ``kinds`` are lists of exact names, ``reason`` is
an unanchored regular expression. The exclusions ``exclude_namespaces``, ``exclude_kinds`` and
``exclude_reasons`` (regex) drop what they match, and ``min_count`` passes an event once it has
happened that often. The involved object's namespace is what the namespace filters look at;
cluster-scoped objects (Nodes, PersistentVolumes) have none, so a ``namespaces`` filter keeps them
out (give Node events a sink of their own with ``kinds=Node``) and ``exclude_namespaces`` never
drops them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shipper.event import Event
from shipper.uri import Param, choice, parse_list, parse_positive_int, parse_regex

LEVEL_RANK = {"Normal": 0, "Warning": 1}

FILTER_PARAMS: tuple[Param, ...] = (
    Param(
        "level",
        choice("Normal", "Warning"),
        None,
        "Lowest event type to pass: Warning (Warnings only) or Normal (both).",
    ),
    Param(
        "namespaces", parse_list, [], "Only events about objects in these namespaces.", repeat=True
    ),
    Param("kinds", parse_list, [], "Only events about these kinds (Pod, Node, ...).", repeat=True),
    Param("reason", parse_regex, None, "Only events whose reason matches this regex."),
    Param(
        "exclude_namespaces",
        parse_list,
        [],
        "Drop events about objects in these namespaces.",
        repeat=True,
    ),
    Param("exclude_kinds", parse_list, [], "Drop events about these kinds.", repeat=True),
    Param(
        "exclude_reasons",
        parse_regex,
        None,
        "Drop events whose reason matches this regex, e.g. ^(Pulled|Created|Started)$.",
    ),
    Param("min_count", parse_positive_int, None, "Only events that happened this often (count)."),
)


@dataclass(frozen=True)
class EventFilter:
    level: str | None = None
    namespaces: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    reason: re.Pattern[str] | None = None
    exclude_namespaces: frozenset[str] = frozenset()
    exclude_kinds: frozenset[str] = frozenset()
    exclude_reasons: re.Pattern[str] | None = None
    min_count: int | None = None

    @classmethod
    def from_options(cls, options: dict, default_level: str | None = None) -> EventFilter:
        return cls(
            level=options.get("level") or default_level,
            namespaces=frozenset(options.get("namespaces") or ()),
            kinds=frozenset(options.get("kinds") or ()),
            reason=options.get("reason"),
            exclude_namespaces=frozenset(options.get("exclude_namespaces") or ()),
            exclude_kinds=frozenset(options.get("exclude_kinds") or ()),
            exclude_reasons=options.get("exclude_reasons"),
            min_count=options.get("min_count"),
        )

    def accepts(self, event: Event) -> bool:
        if self.level is not None and LEVEL_RANK.get(event.type, 0) < LEVEL_RANK[self.level]:
            return False
        if self.namespaces and (event.object_namespace or "") not in self.namespaces:
            return False
        if self.kinds and (event.object_kind or "") not in self.kinds:
            return False
        if self.reason is not None and not self.reason.search(event.reason):
            return False
        if self.exclude_namespaces and event.object_namespace in self.exclude_namespaces:
            return False
        if self.exclude_kinds and (event.object_kind or "") in self.exclude_kinds:
            return False
        if self.exclude_reasons is not None and self.exclude_reasons.search(event.reason):
            return False
        return self.min_count is None or event.count >= self.min_count

    def describe(self) -> str:
        parts = []
        if self.level:
            parts.append(f"level>={self.level}")
        if self.namespaces:
            parts.append("namespaces=" + ",".join(sorted(self.namespaces)))
        if self.kinds:
            parts.append("kinds=" + ",".join(sorted(self.kinds)))
        if self.reason is not None:
            parts.append(f"reason~{self.reason.pattern}")
        if self.exclude_namespaces:
            parts.append("namespaces!=" + ",".join(sorted(self.exclude_namespaces)))
        if self.exclude_kinds:
            parts.append("kinds!=" + ",".join(sorted(self.exclude_kinds)))
        if self.exclude_reasons is not None:
            parts.append(f"reason!~{self.exclude_reasons.pattern}")
        if self.min_count is not None:
            parts.append(f"count>={self.min_count}")
        return " ".join(parts) or "all events"

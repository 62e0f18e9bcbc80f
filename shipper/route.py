"""Which events a sink gets: kube-eventer's filter parameters, for every sink.

``level=Warning`` passes Warnings only; ``level=Normal`` passes both (kube-eventer's meaning: a
threshold, not an equality). ``namespaces`` and ``kinds`` are lists of exact names, ``reason`` is
an unanchored regular expression. The involved object's namespace is what ``namespaces`` looks at;
cluster-scoped objects (Nodes, PersistentVolumes) have none, so a ``namespaces`` filter keeps them
out: give Node events a sink of their own with ``kinds=Node``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shipper.event import Event
from shipper.uri import Param, choice, parse_list, parse_regex

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
)


@dataclass(frozen=True)
class EventFilter:
    level: str | None = None
    namespaces: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    reason: re.Pattern[str] | None = None

    @classmethod
    def from_options(cls, options: dict, default_level: str | None = None) -> EventFilter:
        return cls(
            level=options.get("level") or default_level,
            namespaces=frozenset(options.get("namespaces") or ()),
            kinds=frozenset(options.get("kinds") or ()),
            reason=options.get("reason"),
        )

    def accepts(self, event: Event) -> bool:
        if self.level is not None and LEVEL_RANK.get(event.type, 0) < LEVEL_RANK[self.level]:
            return False
        if self.namespaces and (event.object_namespace or "") not in self.namespaces:
            return False
        if self.kinds and (event.object_kind or "") not in self.kinds:
            return False
        return not (self.reason is not None and not self.reason.search(event.reason))

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
        return " ".join(parts) or "all events"

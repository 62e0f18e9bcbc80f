"""Which events a sink gets: kube-eventer's filter parameters (declared in
:class:`shipper.spec.SinkOptions`), for every sink.

``level=Warning`` passes Warnings only; ``level=Normal`` passes both (kube-eventer's meaning: a
threshold, not an equality; ``Normal,Warning`` is read as Normal). ``kinds`` is a list of exact
names, ``namespaces`` a list of names or regular expressions matched whole (``my-.*``), ``reason``
an unanchored regular expression (commas separate alternatives: ``Pulled,BackOff``). The
exclusions ``exclude_namespaces``, ``exclude_kinds`` and ``exclude_reasons`` (regex) drop what
they match, and ``min_count`` passes an event once it has happened that often.

"Namespace" means the Event's own namespace (``metadata.namespace``), here and in config-file
routes (:mod:`shipper.routing.tree`), as ``kubectl get events -n NS`` and kubernetes-event-exporter
read it. For a namespaced object that is the object's namespace; events about cluster-scoped
objects (Nodes, PersistentVolumes) are recorded in ``default``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shipper.event import Event
from shipper.spec import SinkOptions

LEVEL_RANK = {"Normal": 0, "Warning": 1}


_REGEX_CHARS = re.compile(r"[.*+?^$()\[\]{}|\\]")


@dataclass(frozen=True)
class Names:
    """Namespace names, exact or as regular expressions matched whole (``my-.*``), as
    kube-eventer's docs promise for ``namespaces``."""

    exact: frozenset[str] = frozenset()
    patterns: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def of(cls, items: list[str]) -> Names:
        exact, patterns = set(), []
        for item in items:
            if _REGEX_CHARS.search(item):
                try:
                    patterns.append(re.compile(item))
                    continue
                except re.error:
                    pass  # not a regex after all: a name
            exact.add(item)
        return cls(frozenset(exact), tuple(patterns))

    def __bool__(self) -> bool:
        return bool(self.exact or self.patterns)

    def __contains__(self, name: object) -> bool:
        if name in self.exact:
            return True
        return isinstance(name, str) and any(p.fullmatch(name) for p in self.patterns)

    def describe(self) -> str:
        return ",".join(sorted(self.exact) + [p.pattern for p in self.patterns])


@dataclass(frozen=True)
class EventFilter:
    level: str | None = None
    namespaces: Names = Names()
    kinds: frozenset[str] = frozenset()
    reason: re.Pattern[str] | None = None
    exclude_namespaces: Names = Names()
    exclude_kinds: frozenset[str] = frozenset()
    exclude_reasons: re.Pattern[str] | None = None
    min_count: int | None = None

    @classmethod
    def from_options(cls, options: SinkOptions, default_level: str | None = None) -> EventFilter:
        return cls(
            level=options.level or default_level,
            namespaces=Names.of(options.namespaces),
            kinds=frozenset(options.kinds),
            reason=options.reason,
            exclude_namespaces=Names.of(options.exclude_namespaces),
            exclude_kinds=frozenset(options.exclude_kinds),
            exclude_reasons=options.exclude_reasons,
            min_count=options.min_count,
        )

    @property
    def passes_all(self) -> bool:
        """No parameter set: every event passes (the router then skips asking per event)."""
        return self == _PASS_ALL

    def accepts(self, event: Event) -> bool:
        if self.level is not None and LEVEL_RANK.get(event.type, 0) < LEVEL_RANK[self.level]:
            return False
        if self.namespaces and event.namespace not in self.namespaces:
            return False
        if self.kinds and (event.object_kind or "") not in self.kinds:
            return False
        if self.reason is not None and not self.reason.search(event.reason):
            return False
        if self.exclude_namespaces and event.namespace in self.exclude_namespaces:
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
            parts.append("namespaces=" + self.namespaces.describe())
        if self.kinds:
            parts.append("kinds=" + ",".join(sorted(self.kinds)))
        if self.reason is not None:
            parts.append(f"reason~{self.reason.pattern}")
        if self.exclude_namespaces:
            parts.append("namespaces!=" + self.exclude_namespaces.describe())
        if self.exclude_kinds:
            parts.append("kinds!=" + ",".join(sorted(self.exclude_kinds)))
        if self.exclude_reasons is not None:
            parts.append(f"reason!~{self.exclude_reasons.pattern}")
        if self.min_count is not None:
            parts.append(f"count>={self.min_count}")
        return " ".join(parts) or "all events"


_PASS_ALL = EventFilter()

"""Which sinks get an event: the URI filters and the config file's route tree, in one place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from shipper.event import Event

if TYPE_CHECKING:
    from shipper.config import Config
    from shipper.pipeline import SinkSettings


class _Routable(Protocol):
    name: str
    settings: SinkSettings


W = TypeVar("W", bound=_Routable)


class Router(Generic[W]):
    """Which sinks get an event: a ``--sink`` by its own filter; a config file's receiver when
    the file's route sends the event there (and its own filter, if any, passes it).

    An audit event (shipper/audit/) goes to the sinks whose ``documents`` take audit, by their
    own filter; a config file's route tree, written for events, is not asked."""

    def __init__(self, sinks: Sequence[W], config: Config | None) -> None:
        receivers = set(config.used_receivers) if config else set()
        self.config = config
        events = [s for s in sinks if "event" in s.settings.documents]
        self.by_filter = [s for s in events if s.name not in receivers]
        self.by_route = {s.name: s for s in events if s.name in receivers}
        self.for_audit = [s for s in sinks if "audit" in s.settings.documents]
        #: Without a config file and with no filter set, every event goes to every sink: the
        #: same list each time, without a call per sink and event.
        self.everything = (
            list(self.by_filter)
            if config is None and all(s.settings.filter.passes_all for s in self.by_filter)
            else None
        )

    def targets(self, event: Event) -> list[W]:
        """The sinks that get ``event`` (the caller must not change the list)."""
        if event.kind == "audit":
            return [s for s in self.for_audit if s.settings.filter.accepts(event)]
        if self.everything is not None:
            return self.everything
        chosen = [s for s in self.by_filter if s.settings.filter.accepts(event)]
        if self.config is not None:
            for name in self.config.receivers_for(event):
                sink = self.by_route.get(name)  # None: a receiver the file does not define
                if sink is not None and sink.settings.filter.accepts(event):
                    chosen.append(sink)
        return chosen

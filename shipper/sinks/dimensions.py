"""An event's bounded dimensions: what the stores that key series or streams on an event
(InfluxDB tags, Loki stream labels) may key on, and the names that would make one series or
stream per object or per event, which both refuse with the reason."""

from __future__ import annotations

from collections.abc import Callable

from shipper.event import Event


def _component(event: Event) -> str | None:
    return event.reporting_controller or event.source_component


#: dimension name -> its value for an event (a sink puts its own cluster name in ``cluster``)
DIMENSIONS: dict[str, Callable[[Event], str | None]] = {
    "cluster": lambda event: event.cluster,
    "namespace": lambda event: event.object_namespace,
    "kind": lambda event: event.object_kind,
    "reason": lambda event: event.reason,
    "type": lambda event: event.type,
    "component": _component,
    "host": lambda event: event.source_host,
    "action": lambda event: event.action,
}

#: Names someone may try whose values are unbounded: one series or stream per object or event.
UNBOUNDED = (
    "uid", "name", "event_name", "object_name", "object_uid", "message", "resource_version",
    "count", "first_occurrence", "last_occurrence", "object_field_path", "reporting_instance",
    "pod", "pod_name", "object",
)  # fmt: skip

"""Routing: which sinks get an event.

- :mod:`shipper.routing.filters`: kube-eventer's per-sink filters (``level``, ``namespaces``...);
- :mod:`shipper.routing.tree`: kubernetes-event-exporter's route tree of drop/match rules;
- :mod:`shipper.routing.router`: both together, the one answer the dispatcher asks for.

"Namespace" means the Event's own namespace in all three (see filters).
"""

from shipper.routing.filters import EventFilter
from shipper.routing.router import Router

__all__ = ["EventFilter", "Router"]

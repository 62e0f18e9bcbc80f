"""kube-event-shipper: watch Kubernetes Events and ship every one of them, once.

The public surface is small: the daemon (:class:`Shipper` with :class:`Settings`), the event
(:class:`Event`), and the base every sink stands on (:class:`Sink`).
"""

__version__ = "0.1.0"

__all__ = ["Event", "Settings", "Shipper", "Sink", "__version__"]


def __getattr__(name: str):  # imported lazily: `kube-event-shipper --help` stays fast
    if name in ("Settings", "Shipper"):
        from shipper import app

        return getattr(app, name)
    if name == "Event":
        from shipper.event import Event

        return Event
    if name == "Sink":
        from shipper.sinks.base import Sink

        return Sink
    raise AttributeError(name)

"""Sinks: one module each, found by :mod:`shipper.sinks.registry`."""

from shipper.sinks.registry import register, registry, schemes, sink_class

__all__ = ["register", "registry", "schemes", "sink_class"]

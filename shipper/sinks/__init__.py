"""The sink registry: URI scheme -> the class that writes there.

Classes are named, not imported, so a sink's client library (elasticsearch, kafka, ...) is only
imported when a ``--sink`` uses it. Adding a sink is one module and one line here.
"""

from __future__ import annotations

import importlib

from shipper.sinks.base import Sink

REGISTRY: dict[str, str] = {
    "log": "shipper.sinks.log:LogSink",
    "stdout": "shipper.sinks.log:LogSink",
    "sqlite": "shipper.sinks.sqlite:SqliteSink",
    "file": "shipper.sinks.file:FileSink",
    "elasticsearch": "shipper.sinks.elasticsearch:ElasticsearchSink",
    "es": "shipper.sinks.elasticsearch:ElasticsearchSink",
    "opensearch": "shipper.sinks.opensearch:OpenSearchSink",
    "mysql": "shipper.sinks.mysql:MySQLSink",
    "mariadb": "shipper.sinks.mysql:MySQLSink",
}


def sink_class(scheme: str) -> type[Sink]:
    """The class for ``scheme``; KeyError if there is none."""
    module, _, name = REGISTRY[scheme].partition(":")
    cls: type[Sink] = getattr(importlib.import_module(module), name)
    return cls

"""The search sinks, ``elasticsearch:`` and ``opensearch:``: one schema, one bulk writer.

- :mod:`~shipper.sinks.search.sink`: :class:`ElasticsearchSink` and its options (the user's
  documentation of both sinks is that module's docstring)
- :mod:`~shipper.sinks.search.opensearch`: :class:`OpenSearchSink` (opensearch-py, ISM, SigV4)
- :mod:`~shipper.sinks.search.schema`: the mapping, settings, lifecycle policies, templates
- :mod:`~shipper.sinks.search.setup`: the requests that install them, the ``setup`` subcommand,
  the files of ``index-templates/``
- :mod:`~shipper.sinks.search.transport`: the clients' transports, plain JSON, errors in words
"""

from shipper.sinks.dedot import dedot
from shipper.sinks.search.opensearch import OpenSearchOptions, OpenSearchSink
from shipper.sinks.search.options import SearchOptions
from shipper.sinks.search.schema import ILM_POLICY, MAPPING, SETTINGS, component, ism_policy
from shipper.sinks.search.setup import SetupReport, render_setup, rendered_files, run_setup
from shipper.sinks.search.sink import ElasticsearchSink

__all__ = [
    "ILM_POLICY",
    "MAPPING",
    "SETTINGS",
    "ElasticsearchSink",
    "OpenSearchOptions",
    "OpenSearchSink",
    "SearchOptions",
    "SetupReport",
    "component",
    "dedot",
    "ism_policy",
    "render_setup",
    "rendered_files",
    "run_setup",
]

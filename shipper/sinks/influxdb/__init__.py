"""The ``influxdb:`` sink (InfluxDB 1.8+, 2.x, 3.x).

- :mod:`~shipper.sinks.influxdb.sink`: :class:`InfluxDBSink` and its options (the user's
  documentation is that module's docstring)
- :mod:`~shipper.sinks.influxdb.line`: the point's tags, fields and time; the line protocol
"""

from shipper.sinks.influxdb.line import (
    DEFAULT_DB,
    DEFAULT_TAGS,
    MEASUREMENT,
    STRING_FIELDS,
    TAG_SOURCES,
    point_time,
    version_hash,
)
from shipper.sinks.influxdb.sink import InfluxDBOptions, InfluxDBSink

__all__ = [
    "DEFAULT_DB",
    "DEFAULT_TAGS",
    "MEASUREMENT",
    "STRING_FIELDS",
    "TAG_SOURCES",
    "InfluxDBOptions",
    "InfluxDBSink",
    "point_time",
    "version_hash",
]

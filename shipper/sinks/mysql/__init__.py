"""The ``mysql:`` sink (MySQL 5.7+/8.x, MariaDB 10.3+).

- :mod:`~shipper.sinks.mysql.sink`: :class:`MySQLSink` and its options (the user's
  documentation is that module's docstring)
- :mod:`~shipper.sinks.mysql.dsn`: kube-eventer's Go DSN and the URL form
- :mod:`~shipper.sinks.mysql.schema`: the tables, their migrations, the upserts
"""

from shipper.sinks.mysql.schema import schema_statements, sql_time, statements, values
from shipper.sinks.mysql.sink import MySQLOptions, MySQLSink

__all__ = ["MySQLOptions", "MySQLSink", "schema_statements", "sql_time", "statements", "values"]

"""The mysql sink's schema and SQL: the tables (version 1), their migrations, the idempotent
upserts, and the statements built from rows.

``schemas/mysql.sql`` holds the same DDL for a DBA to run by hand (a test keeps the two equal).
What the tables mean, their collations and indexes: the sink's documentation
(:mod:`shipper.sinks.mysql.sink`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

SCHEMA_VERSION = 1
VERSION_TABLE = "kube_event_shipper_schema"
DEFAULT_TABLE = "kube_event"
#: Table names the sink takes: 64 characters at most with "_occurrence".
TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,52}")
SQL_MODE = (
    "STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
    "NO_ENGINE_SUBSTITUTION"
)

# -- the schema: version 1

VERSION_DDL = f"""CREATE TABLE IF NOT EXISTS `{VERSION_TABLE}` (
  `table_name` VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  `version` INT NOT NULL,
  `migrated_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`table_name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='kube-event-shipper schema versions'"""

_EVENT_DDL = """CREATE TABLE IF NOT EXISTS `{table}` (
  `uid` VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'metadata.uid of the Event',
  `resource_version` VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'of the version in this row',
  `cluster` VARCHAR(253) NOT NULL DEFAULT '',
  `namespace` VARCHAR(63) NOT NULL DEFAULT '' COMMENT 'involved object (empty for cluster-scoped ones)',
  `kind` VARCHAR(253) NOT NULL DEFAULT '' COMMENT 'involved object',
  `name` VARCHAR(253) NOT NULL DEFAULT '' COMMENT 'involved object',
  `object_uid` VARCHAR(253) DEFAULT NULL,
  `api_version` VARCHAR(253) DEFAULT NULL,
  `field_path` VARCHAR(1024) DEFAULT NULL,
  `type` VARCHAR(64) NOT NULL COMMENT 'Normal or Warning',
  `reason` VARCHAR(255) NOT NULL,
  `message` MEDIUMTEXT COLLATE utf8mb4_unicode_520_ci NOT NULL,
  `action` VARCHAR(255) DEFAULT NULL,
  `reporting_controller` VARCHAR(255) DEFAULT NULL,
  `reporting_instance` VARCHAR(255) DEFAULT NULL,
  `source_component` VARCHAR(255) DEFAULT NULL,
  `source_host` VARCHAR(255) DEFAULT NULL,
  `event_name` VARCHAR(253) NOT NULL,
  `event_namespace` VARCHAR(63) NOT NULL,
  `count` INT UNSIGNED NOT NULL,
  `first_seen` DATETIME(6) NOT NULL COMMENT 'UTC',
  `last_seen` DATETIME(6) NOT NULL COMMENT 'UTC, the latest occurrence',
  `shipped_at` DATETIME(6) NOT NULL COMMENT 'UTC',
  PRIMARY KEY (`uid`),
  KEY `last_seen` (`last_seen`),
  KEY `type_last_seen` (`type`, `last_seen`),
  KEY `namespace_last_seen` (`namespace`, `last_seen`),
  KEY `object_last_seen` (`kind`, `name`, `namespace`, `last_seen`),
  KEY `reason_last_seen` (`reason`, `last_seen`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='Kubernetes events, one row per event (kube-event-shipper)'"""

_OCCURRENCE_DDL = """CREATE TABLE IF NOT EXISTS `{table}_occurrence` (
  `uid` VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  `resource_version` VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  `count` INT UNSIGNED NOT NULL,
  `occurred_at` DATETIME(6) NOT NULL COMMENT 'UTC, this occurrence (last_seen of the version)',
  `shipped_at` DATETIME(6) NOT NULL COMMENT 'UTC',
  PRIMARY KEY (`uid`, `resource_version`),
  KEY `occurred_at` (`occurred_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='Kubernetes event versions (kube-event-shipper)'"""

#: MIGRATIONS[v] takes a table from schema version v to v + 1 (0: nothing there yet).
#: Later steps must be safe to re-run after a crash half-way (MySQL has no ADD COLUMN IF NOT
#: EXISTS: check information_schema first).
MIGRATIONS: list[list[str]] = [[_EVENT_DDL, _OCCURRENCE_DDL]]

COLUMNS = (
    "uid", "resource_version", "cluster", "namespace", "kind", "name", "object_uid",
    "api_version", "field_path", "type", "reason", "message", "action", "reporting_controller",
    "reporting_instance", "source_component", "source_host", "event_name", "event_namespace",
    "count", "first_seen", "last_seen", "shipped_at",
)  # fmt: skip
OCCURRENCE_COLUMNS = ("uid", "resource_version", "count", "occurred_at", "shipped_at")

# A version replaces the row's only if it is newer: a later last_seen, or the same and a higher
# count, or both the same and another resource_version (the last written wins a tie, as in the
# sqlite sink). The same version again (a replay) leaves the row untouched, shipped_at included.
# MySQL applies the assignments left to right, each seeing the ones before: count, last_seen and
# resource_version come last, in that order, so each condition still gives the answer it gave
# for the row as it was (a version's count and time never differ without its resource_version).
_NEWER = (
    "(VALUES(`last_seen`) > `last_seen` OR (VALUES(`last_seen`) = `last_seen` AND"
    " (VALUES(`count`) > `count` OR (VALUES(`count`) = `count` AND"
    " VALUES(`resource_version`) <> `resource_version`))))"
)
_LAST = ("count", "last_seen", "resource_version")
_TAKEN = [c for c in COLUMNS if c not in ("uid", "first_seen", *_LAST)]


def schema_statements(table: str) -> list[str]:
    """The DDL of the current version for ``table``, in order (what schemas/mysql.sql holds)."""
    return [VERSION_DDL] + [ddl.format(table=table) for step in MIGRATIONS for ddl in step]


def upsert_sql(table: str) -> tuple[str, str]:
    """The multi-row upsert into ``table``: (text before the rows, text after them)."""
    updates = [f"`{c}` = IF({_NEWER}, VALUES(`{c}`), `{c}`)" for c in _TAKEN]
    updates.append("`first_seen` = LEAST(`first_seen`, VALUES(`first_seen`))")
    updates += [f"`{c}` = IF({_NEWER}, VALUES(`{c}`), `{c}`)" for c in _LAST]
    return (
        f"INSERT INTO `{table}` ({', '.join(f'`{c}`' for c in COLUMNS)}) VALUES ",
        f" ON DUPLICATE KEY UPDATE {', '.join(updates)}",
    )


def occurrence_sql(table: str) -> tuple[str, str]:
    columns = ", ".join(f"`{c}`" for c in OCCURRENCE_COLUMNS)
    return (
        f"INSERT INTO `{table}_occurrence` ({columns}) VALUES ",
        " ON DUPLICATE KEY UPDATE `uid` = `uid`",
    )


#: Longest statement sent (pymysql's own default); every server takes at least 4 MiB (MySQL
#: 5.7; 16 MiB MariaDB, 64 MiB MySQL 8). A single larger row is sent alone.
MAX_STATEMENT = 1_024_000


#: MySQL's string escapes, as pymysql's table: a list is a faster str.translate table than a
#: dict, and characters past its end are kept. The session's sql_mode keeps backslash escapes on.
_ESCAPES = [chr(x) for x in range(128)]
for _char, _escaped in {
    "\0": "\\0",
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\x1a": "\\Z",
    "'": "\\'",
    '"': '\\"',
}.items():
    _ESCAPES[ord(_char)] = _escaped


def values(row: tuple[Any, ...]) -> bytes:
    """``('a', 1, None)`` -> ``b"('a',1,NULL)"``. Done here rather than by pymysql's
    ``executemany``, which costs three times the CPU per value."""
    return (
        "("
        + ",".join(
            [
                "NULL"
                if v is None
                else str(v)
                if type(v) is int
                else "'" + v.translate(_ESCAPES) + "'"
                for v in row
            ]
        )
        + ")"
    ).encode("utf-8", "replace")


def statements(head: str, rows: Sequence[bytes], tail: str) -> list[bytes]:
    """Multi-row statements of at most MAX_STATEMENT bytes (a larger row goes alone)."""
    prefix, suffix = head.encode(), tail.encode()
    out: list[bytes] = []
    chunk: list[bytes] = []
    size = len(prefix) + len(suffix)
    for row in rows:
        if chunk and size + len(row) + 1 > MAX_STATEMENT:
            out.append(prefix + b",".join(chunk) + suffix)
            chunk, size = [], len(prefix) + len(suffix)
        chunk.append(row)
        size += len(row) + 1
    if chunk:
        out.append(prefix + b",".join(chunk) + suffix)
    return out


def sql_time(ts: str | None) -> str | None:
    """``2026-11-20T10:00:00.123456Z`` -> ``2026-11-20 10:00:00.123456`` (a DATETIME(6), UTC)."""
    return f"{ts[:10]} {ts[11:26]}" if ts else None

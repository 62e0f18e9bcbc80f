"""The influxdb sink's point: its tags and fields, its time, and the line protocol's escaping.

What each tag and field holds, why object names are never tags, and how the time is made unique
per event version: the sink's documentation (:mod:`shipper.sinks.influxdb.sink`).
"""

from __future__ import annotations

import calendar
import functools
import hashlib
from collections.abc import Callable

from shipper.event import Event
from shipper.sinks.dimensions import DIMENSIONS

MEASUREMENT = "kubernetes_events"
DEFAULT_DB = "k8s"
DEFAULT_CLUSTER = "default"


#: tag name -> its value for an event (the cluster tag is the sink's own, see ``_tag_getters``)
TAG_SOURCES = DIMENSIONS
DEFAULT_TAGS = ("cluster", "namespace", "kind", "reason", "type", "component")

#: string fields of withfields=true, after count and message: field name -> value
STRING_FIELDS: tuple[tuple[str, Callable[[Event], str | None]], ...] = (
    ("event_name", lambda event: event.name),
    ("uid", lambda event: event.uid),
    ("resource_version", lambda event: event.resource_version),
    ("object_name", lambda event: event.object_name),
    ("object_uid", lambda event: event.object_uid),
    ("object_api_version", lambda event: event.object_api_version),
    ("object_field_path", lambda event: event.object_field_path),
    ("first_occurrence", lambda event: event.first_timestamp),
    ("last_occurrence", lambda event: event.last_timestamp),
    ("reporting_instance", lambda event: event.reporting_instance),
)


# -- line protocol

TAG_ESCAPES = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n", "\r": "\\r"})
KEY_ESCAPES = TAG_ESCAPES
MEASUREMENT_ESCAPES = str.maketrans({",": "\\,", " ": "\\ ", "\n": "\\n", "\r": "\\r"})


def escape_tag(value: str) -> str:
    """A tag key or value for the line protocol; '' when nothing representable is left."""
    return value.translate(TAG_ESCAPES).rstrip("\\")


def escape_string(value: str) -> str:
    """A string field value, quotes included."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@functools.lru_cache(maxsize=8192)
def _epoch_seconds(prefix: str) -> int:
    """``YYYY-MM-DDTHH:MM:SS`` (UTC) -> seconds since the epoch; events come in bursts of the
    same few seconds, hence the cache."""
    return calendar.timegm(
        (int(prefix[0:4]), int(prefix[5:7]), int(prefix[8:10]),
         int(prefix[11:13]), int(prefix[14:16]), int(prefix[17:19]), 0, 0, 0)
    )  # fmt: skip


def version_hash(uid: str, count: int) -> int:
    """A stable 64-bit hash of an event version (the same in every process and run)."""
    digest = hashlib.blake2b(f"{uid}\x00{count}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def point_time(event: Event) -> int:
    """Nanoseconds since the epoch: the occurrence time plus the version's stable offset."""
    ts = event.timestamp  # YYYY-MM-DDTHH:MM:SS.ffffffZ
    seconds = _epoch_seconds(ts[:19])
    micros = int(ts[20:26])
    offset = version_hash(event.uid, event.count)
    if micros:  # exact to the microsecond; the nanoseconds are the hash
        return seconds * 1_000_000_000 + micros * 1000 + offset % 1000
    # a whole second (core/v1 times): the fraction is the hash
    return seconds * 1_000_000_000 + offset % 1_000_000_000

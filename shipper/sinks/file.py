"""``file:/var/log/kube-events.jsonl?max_size=100&max_backups=3``: JSON lines in a file.

One document per line, the schema of :meth:`shipper.event.Event.document` (as ``log`` prints).
kubernetes-event-exporter's ``file`` receiver maps here (``path``, ``maxsize``, ``maxbackups``).
When the file passes ``max_size`` MiB it is renamed ``PATH.1`` (older ones shift to ``.2``...,
``max_backups`` are kept) and a new one is started.

Guarantee: as ``log``: each event version once across graceful restarts; after a crash, the
versions shipped in the last checkpoint interval may be written again (deduplicate on
``kubernetes.event.metadata.uid`` + ``resource_version``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

import orjson

from shipper.event import Event
from shipper.sinks.base import Rejected, Sink, TransientError
from shipper.spec import SinkOptions, option
from shipper.uri import UsageError, parse_nonnegative_int, parse_positive_int


@dataclass(frozen=True, kw_only=True)
class FileOptions(SinkOptions):
    REST = "path"
    IGNORED = {
        "maxage": "rotated files are kept by count (max_backups), not by age",
        "deDot": "the document always has de-dotted label keys",
    }

    max_size: int = option(
        100,
        "Rotate when the file passes this many MiB.",
        parse=parse_positive_int,
        aliases=("maxsize",),
        exporter="maxsize",
    )
    max_backups: int = option(
        3,
        "Rotated files to keep (PATH.1 ...).",
        parse=parse_nonnegative_int,
        aliases=("maxbackups",),
        exporter="maxbackups",
    )


class FileSink(Sink):
    scheme = "file"
    receiver = "file"
    summary = "JSON lines appended to a file, rotated by size"
    usage = "file:/path/events.jsonl"
    example = "file:/var/log/kube-events.jsonl?max_size=100&max_backups=3"
    Options = FileOptions
    options: FileOptions
    guarantee = (
        "each event version once across graceful restarts; after a crash, the last checkpoint"
        " interval may be written again (deduplicate on uid + resource_version)"
    )
    default_batch_size = 1000
    default_flush_interval = 0.2

    out: IO[bytes] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.path = self.uri.rest.removeprefix("//")
        if not self.path:
            raise UsageError("--sink file: no path given; expected file:/path/to/events.jsonl")

    def open(self) -> None:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self.out = open(self.path, "ab")  # noqa: SIM115 - kept open for the sink's life
        except OSError as exc:
            raise TransientError(f"cannot open {self.path}: {exc.strerror}") from exc

    def write(self, events: Sequence[Event]) -> Sequence[Rejected]:
        assert self.out is not None
        payload = b"".join(orjson.dumps(event.document()) + b"\n" for event in events)
        try:
            self.out.write(payload)
            self.out.flush()
            if self.out.tell() > self.options.max_size * 1024 * 1024:
                self._rotate()
        except OSError as exc:
            raise TransientError(f"cannot write {self.path}: {exc.strerror}") from exc
        return []

    def _rotate(self) -> None:
        assert self.out is not None
        self.out.close()
        keep = self.options.max_backups
        for number in range(keep, 0, -1):
            older = f"{self.path}.{number}"
            if number == keep and os.path.exists(older):
                os.remove(older)
            elif os.path.exists(older):
                os.replace(older, f"{self.path}.{number + 1}")
        if keep:
            os.replace(self.path, f"{self.path}.1")
        else:
            os.remove(self.path)
        self.out = open(self.path, "ab")  # noqa: SIM115

    def close(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None

    def describe(self) -> str:
        return f"file {self.path}"

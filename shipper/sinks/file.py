"""``file:/var/log/kube-events.jsonl?max_size=100&max_backups=3``: JSON lines in a file.

One document per line, the schema of :meth:`shipper.event.Event.document` (as ``log`` prints).
kubernetes-event-exporter's ``file`` receiver maps here (``path``, ``maxsize``, ``maxbackups``).
When the file passes ``max_size`` MiB it is renamed ``PATH.1`` (older ones shift to ``.2``...,
``max_backups`` are kept) and a new one is started. A pipe or terminal (``/dev/stdout`` in a
container, the bitnami chart's default) is written to and never rotated. With ``layout``
(kubernetes-event-exporter's, :mod:`shipper.layout`) each line is that body instead.

Guarantee: as ``log``: each event version once across graceful restarts; after a crash, the
versions shipped in the last checkpoint interval may be written again (deduplicate on
``kubernetes.event.metadata.uid`` + ``resource_version``).
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from typing import Any

from shipper.sinks.base import TransientError
from shipper.sinks.lines import LinesOptions, LinesSink
from shipper.spec import option
from shipper.uri import UsageError, parse_nonnegative_int, parse_positive_int

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class FileOptions(LinesOptions):
    REST = "path"
    IGNORED = {
        "maxage": "rotated files are kept by count (max_backups), not by age",
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


class FileSink(LinesSink):
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

    #: Bytes in the file, for rotation; None for a pipe or a terminal, which never rotate.
    size: int | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.path = self.uri.rest.removeprefix("//")
        if not self.path:
            raise UsageError("--sink file: no path given; expected file:/path/to/events.jsonl")

    def open(self) -> None:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self.out = open(self.path, "ab")  # noqa: SIM115 - kept open for the sink's life
            info = os.fstat(self.out.fileno())
        except OSError as exc:
            raise TransientError(f"cannot open {self.path}: {exc.strerror}") from exc
        # A pipe or a terminal (/dev/stdout in a container) cannot seek, be measured or be
        # rotated: it is written to, once per line, and never asked where it is.
        self.size = info.st_size if stat.S_ISREG(info.st_mode) else None

    def write_failed(self, exc: OSError) -> str:
        return f"cannot write {self.path}: {exc.strerror}"

    def wrote(self, size: int) -> None:
        if self.size is not None:
            self.size += size
            if self.size > self.options.max_size * 1024 * 1024:
                self._rotate_safely()

    def _rotate_safely(self) -> None:
        """Rotate after a write that is already done: a failure here must not make the
        pipeline write the batch again, so it is logged and tried after the next write."""
        try:
            self._rotate()
            self.size = 0
        except OSError as exc:
            log.warning("Could not rotate %s (%s); will try again.", self.path, exc.strerror)

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

"""``pipe:/dev/stdout``: JSON lines into a pipe or device that exists already; never created.

kubernetes-event-exporter's ``pipe`` receiver maps here (``path``, ``layout``): like the
original, it opens the path for writing without creating it, which suits a named pipe (FIFO)
another process reads, or ``/dev/stdout``. A FIFO with no reader yet is retried with backoff
rather than blocking the start-up. Each line is the event document (as ``log`` prints it) or,
with ``layout``, that body. For a file of your own, rotated by size, use ``file:``.

Guarantee: as ``file``: each event version once across graceful restarts; after a crash, the
versions shipped in the last checkpoint interval may be written again.
"""

from __future__ import annotations

import errno
import fcntl
import os
from dataclasses import dataclass
from typing import Any

from shipper.sinks.base import TransientError
from shipper.sinks.lines import LinesOptions, LinesSink
from shipper.uri import UsageError


@dataclass(frozen=True, kw_only=True)
class PipeOptions(LinesOptions):
    REST = "path"


class PipeSink(LinesSink):
    scheme = "pipe"
    receiver = "pipe"
    summary = "JSON lines into an existing named pipe or device (/dev/stdout), never created"
    usage = "pipe:/path/to/fifo"
    example = "pipe:/var/run/events.fifo"
    Options = PipeOptions
    options: PipeOptions
    guarantee = (
        "each event version once across graceful restarts; after a crash, the last checkpoint"
        " interval may be written again"
    )
    default_batch_size = 1000
    default_flush_interval = 0.2

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.path = self.uri.rest.removeprefix("//")
        if not self.path:
            raise UsageError("--sink pipe: no path given; expected pipe:/path/to/fifo")

    def open(self) -> None:
        # O_NONBLOCK: opening a FIFO nobody reads yet fails (ENXIO) instead of hanging the
        # start-up; the pipeline retries it. Writes block again once it is open.
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)
        except OSError as exc:
            why = "no reader on the pipe yet" if exc.errno == errno.ENXIO else exc.strerror
            raise TransientError(f"cannot open {self.path}: {why}") from exc
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        self.out = os.fdopen(fd, "ab")

    def write_failed(self, exc: OSError) -> str:
        return f"cannot write {self.path}: {exc.strerror}"

    def close(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None

    def describe(self) -> str:
        return f"pipe {self.path}"

"""The audit source's durable queue: what the webhook accepted, on disk before it says 200.

The kube-apiserver posts a batch and forgets it once we answer 200, so a batch must be on disk
first: :meth:`Spool.append` writes it and fsyncs it, and only then does the webhook answer.
The reader (shipper/audit/source.py) ships from the spool at its own pace, and the ledger's
position for the ``audit`` stream says how far every sink has written; whole segments behind
that position are deleted. A restart resumes from the checkpointed position, so a batch is
shipped after any crash, and what was shipped again lands on the same ``<auditID>.<stage>``.

Layout: ``<state-dir>/audit-spool/<segment>.spool``, segments numbered upwards, each a run of
records ``[length: 4 bytes][crc32: 4 bytes][payload]``. A record cut short by a crash (the
webhook had not answered, so the API server sends the batch again) is cut off at start. A
new segment is begun at every start and whenever the current one passes ``segment_bytes``.

A position is ``<segment>:<offset>:<skip>``: resume at the record at ``offset`` of
``segment``, after its first ``skip`` audit events.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">II")  # payload length, crc32 of the payload
SUFFIX = ".spool"


@dataclass(frozen=True, order=True)
class Position:
    segment: int
    offset: int
    skip: int = 0

    def __str__(self) -> str:
        return f"{self.segment}:{self.offset}:{self.skip}"

    @classmethod
    def parse(cls, text: str | None) -> Position | None:
        if not text:
            return None
        try:
            segment, offset, skip = (int(part) for part in text.split(":"))
        except ValueError:
            log.warning("Ignoring an audit spool position that is not one: %r.", text)
            return None
        return cls(segment, offset, skip)


@dataclass(frozen=True)
class Record:
    """One accepted batch: where it is, where the next one starts, and its bytes."""

    segment: int
    offset: int
    end: int
    payload: bytes


class SpoolFull(Exception):
    """The spool holds ``max_bytes`` not yet shipped: the webhook asks the API server to wait."""


class Spool:
    """Append-only segment files; thread-safe (the webhook's threads append, one reader)."""

    def __init__(
        self, directory: str, max_bytes: int, segment_bytes: int = 16 * 1024 * 1024
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        # Only whole segments are deleted: keep a segment small next to the limit.
        self.segment_bytes = max(64 * 1024, min(segment_bytes, max_bytes // 8))
        os.makedirs(directory, exist_ok=True)
        self._lock = threading.Lock()
        self._grown = threading.Condition(self._lock)
        self._sizes: dict[int, int] = {}  # segment -> bytes, every segment on disk
        for segment in self._segments_on_disk():
            self._sizes[segment] = self._recover(segment)
        self._current = max(self._sizes, default=0) + 1
        self._sizes[self._current] = 0
        self._handle = open(self._path(self._current), "ab")  # noqa: SIM115 - kept open
        self._fsync_directory()
        self._closed = False
        #: records found damaged while reading (skipped with the rest of their segment)
        self.damaged = 0

    # -- the webhook's side

    def append(self, payload: bytes) -> Record:
        """Write one batch and fsync it; SpoolFull if that would pass ``max_bytes``."""
        header = _HEADER.pack(len(payload), zlib.crc32(payload))
        with self._lock:
            if self._closed:
                raise SpoolFull("the shipper is stopping")
            if self.size() + len(header) + len(payload) > self.max_bytes and self.size() > 0:
                raise SpoolFull(f"{self.size()} bytes wait to be shipped (spoolSize)")
            if self._sizes[self._current] >= self.segment_bytes:
                self._roll()
            offset = self._sizes[self._current]
            self._handle.write(header + payload)
            self._handle.flush()
            os.fsync(self._handle.fileno())
            end = offset + len(header) + len(payload)
            self._sizes[self._current] = end
            self._grown.notify_all()
            return Record(self._current, offset, end, payload)

    def size(self) -> int:
        """Bytes in the spool, shipped or not, until their segments are released."""
        return sum(self._sizes.values())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._handle.close()
            self._grown.notify_all()

    # -- the reader's side

    def first(self) -> Position:
        with self._lock:
            return Position(min(self._sizes), 0)

    def read(
        self,
        start: Position | None,
        stop: threading.Event,
        idle: Callable[[], object] | None = None,
    ) -> Iterator[Record]:
        """Every record from ``start`` on (the oldest segment if None or gone), waiting for new
        ones until ``stop`` is set; ``idle`` is called about twice a second while waiting."""
        position = self._valid(start)
        while not stop.is_set():
            record = self._next(position)
            if record is None:
                if idle is not None:
                    idle()
                with self._lock:
                    if self._closed:
                        return
                    if not self._has_more(position):
                        self._grown.wait(0.5)
                continue
            if record.payload:
                yield record
            position = Position(record.segment, record.end)

    def release(self, before: Position | None) -> int:
        """Delete the segments wholly behind ``before`` (everything in them shipped)."""
        if before is None:
            return 0
        with self._lock:
            gone = [s for s in self._sizes if s < before.segment and s != self._current]
            for segment in gone:
                del self._sizes[segment]
        for segment in gone:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(segment))
        return len(gone)

    def _valid(self, start: Position | None) -> Position:
        with self._lock:
            oldest = min(self._sizes)
            if start is None or start.segment < oldest:
                return Position(oldest, 0)
            if start.segment not in self._sizes:
                # Released after the position was saved, or a spool emptied by hand.
                newer = [s for s in self._sizes if s > start.segment]
                return Position(min(newer) if newer else self._current, 0)
            return start

    def _has_more(self, position: Position) -> bool:
        size = self._sizes.get(position.segment)
        if size is None:
            return True
        return position.offset < size or position.segment < self._current

    def _next(self, position: Position) -> Record | None:
        """The record at ``position``, an empty one that moves to the next segment at a
        segment's end, or None when nothing new is there yet."""
        with self._lock:
            size = self._sizes.get(position.segment)
            later = [s for s in self._sizes if s > position.segment]
        if size is None or position.offset >= size:
            if size is not None and position.segment == self._current:
                return None
            if not later:
                return None
            return Record(min(later), 0, 0, b"")
        with open(self._path(position.segment), "rb") as handle:
            handle.seek(position.offset)
            header = handle.read(_HEADER.size)
            length, crc = _HEADER.unpack(header) if len(header) == _HEADER.size else (0, 0)
            payload = handle.read(length) if length <= size - position.offset else b""
        if len(header) < _HEADER.size or len(payload) != length or zlib.crc32(payload) != crc:
            # Not a torn tail (cut off at start): the disk changed under us. Stopping here for
            # good would stop every later batch too; skip the rest of this segment, loudly.
            log.error(
                "Audit spool %s: the record at byte %d is damaged; skipping the rest of the"
                " segment (%d bytes).",
                self._path(position.segment),
                position.offset,
                size - position.offset,
            )
            self.damaged += 1
            return Record(position.segment, position.offset, size, b"")
        return Record(position.segment, position.offset, position.offset + 8 + length, payload)

    # -- files

    def _path(self, segment: int) -> str:
        return os.path.join(self.directory, f"{segment:012d}{SUFFIX}")

    def _segments_on_disk(self) -> list[int]:
        found = []
        for name in os.listdir(self.directory):
            stem = name.removesuffix(SUFFIX)
            if name.endswith(SUFFIX) and stem.isdigit():
                found.append(int(stem))
        return sorted(found)

    def _recover(self, segment: int) -> int:
        """The segment's size up to its last whole record; a torn tail (a crash while a batch
        was written, before the webhook answered) is cut off."""
        path = self._path(segment)
        good = 0
        with open(path, "rb") as handle:
            while True:
                header = handle.read(_HEADER.size)
                if len(header) < _HEADER.size:
                    break
                length, crc = _HEADER.unpack(header)
                payload = handle.read(length)
                if len(payload) != length or zlib.crc32(payload) != crc:
                    break
                good += _HEADER.size + length
        if good != os.path.getsize(path):
            log.warning(
                "Audit spool %s: cutting off %d bytes of a batch cut short (it was never"
                " acknowledged; the API server sent it again).",
                path,
                os.path.getsize(path) - good,
            )
            with open(path, "r+b") as handle:
                handle.truncate(good)
                os.fsync(handle.fileno())
        return good

    def _roll(self) -> None:
        self._handle.close()
        self._current += 1
        self._sizes[self._current] = 0
        self._handle = open(self._path(self._current), "ab")  # noqa: SIM115 - kept open
        self._fsync_directory()

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

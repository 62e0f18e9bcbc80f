"""The ledger's record of the handled versions (shipper/checkpoint.py), in little memory.

A start against 100,000 retained events keeps one entry per event for as long as the events
exist, so the entry's size is the daemon's memory: uid -> (stream, {resourceVersion: sequence
number when handled}) as a tuple holding a dict took about 450 bytes per event; here about 130.
"""

from __future__ import annotations

import re
from typing import Any

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").fullmatch
_SEQ, _STREAM = 40, 8  # bits of a packed entry: the sequence number, the stream's index


def uid_key(uid: str) -> int | str:  # a UUID in the canonical form as its 128-bit number
    return int(uid.replace("-", ""), 16) if _UUID(uid) else uid


def _uid(key: int | str) -> str:
    if isinstance(key, str):
        return key
    h = f"{key:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _rv(rv: str) -> int | str:  # a number only if it turns back into the same text (opaque)
    return int(rv) if rv.isdigit() and rv.isascii() and (rv == "0" or rv[0] != "0") else rv


class Versions:
    """uid -> (stream, {rv: seq}). A uid is kept as a number (uid_key: the caller makes it once
    per event); one numeric version is one integer, ``(rv << 40 | seq) << 8 | stream``, else a
    (stream, rv, seq) tuple or (stream, {rv: seq}). None of these objects is one the decoder
    made: they would keep its pages' memory from being reused."""

    def __init__(self, loaded: dict[str, tuple[str, dict[str, int]]]) -> None:
        self._entries: dict[int | str, Any] = {}
        self._streams: list[str] = []  # index -> stream, and back, for packed entries
        self._stream_ids: dict[str, int] = {}
        for uid, (stream, rvs) in loaded.items():
            for rv, seq in rvs.items():
                self.add(stream, uid_key(uid), rv, seq)

    def __len__(self) -> int:
        return len(self._entries)

    def has(self, key: int | str, rv: str) -> bool:
        entry = self._entries.get(key)
        if entry is None:
            return False
        if isinstance(entry, int):
            return entry >> (_SEQ + _STREAM) == _rv(rv)
        return entry[1] == _rv(rv) if len(entry) == 3 else _rv(rv) in entry[1]

    def add(self, stream: str, key: int | str, rv: str, seq: int) -> None:
        entry = self._entries.get(key)
        stream, rvs = (stream, {}) if entry is None else self._unpack(entry)
        rvs[_rv(rv)] = seq
        self._entries[key] = self._pack(stream, rvs)

    def forget_older(self, key: int | str, seq: int) -> bool:
        """Keep only the versions handled at or after ``seq``; True if any went."""
        entry = self._entries.get(key)
        if entry is None or isinstance(entry, int) or len(entry) == 3:
            return False
        kept = {rv: s for rv, s in entry[1].items() if s >= seq}
        self._entries[key] = self._pack(entry[0], kept)
        return len(kept) != len(entry[1])

    def drop(self, key: int | str) -> bool:
        return self._entries.pop(key, None) is not None

    def missing(self, stream: str, present: set[str]) -> dict[int | str, str]:
        return {
            key: uid
            for key, entry in self._entries.items()
            if self._unpack(entry)[0] == stream and (uid := _uid(key)) not in present
        }

    def max_seq(self) -> int:
        return max((max(self._unpack(e)[1].values()) for e in self._entries.values()), default=0)

    def expanded(self, key: int | str) -> tuple[str, dict[str, int]] | None:
        """The entry as the stores keep it (None: forgotten)."""
        entry = self._entries.get(key)
        if isinstance(entry, int):  # the usual entry, unpacked here without a dict in between
            rv, seq = entry >> (_SEQ + _STREAM), (entry >> _STREAM) & ((1 << _SEQ) - 1)
            return self._streams[entry & ((1 << _STREAM) - 1)], {str(rv): seq}
        if entry is None:
            return None
        stream, rvs = self._unpack(entry)
        return stream, {str(rv): seq for rv, seq in rvs.items()}

    def clear(self) -> None:
        self._entries.clear()

    def _pack(self, stream: str, rvs: dict[int | str, int]) -> Any:
        if len(rvs) != 1:
            return (stream, rvs)
        ((rv, seq),) = rvs.items()
        index = self._stream_ids.get(stream)
        if index is None and len(self._streams) < 1 << _STREAM:
            index = self._stream_ids[stream] = len(self._streams)
            self._streams.append(stream)
        if isinstance(rv, int) and seq < 1 << _SEQ and index is not None:
            return ((rv << _SEQ | seq) << _STREAM) | index
        return (stream, rv, seq)

    def _unpack(self, entry: Any) -> tuple[str, dict[int | str, int]]:
        """(stream, a new {rv: seq} dict) of any entry."""
        if isinstance(entry, int):
            stream = self._streams[entry & ((1 << _STREAM) - 1)]
            return stream, {entry >> (_SEQ + _STREAM): (entry >> _STREAM) & ((1 << _SEQ) - 1)}
        if len(entry) == 3:
            return entry[0], {entry[1]: entry[2]}
        return entry[0], dict(entry[1])

"""What has been shipped, and where to resume: the ledger and its persistent store.

Exactly-once hinges on two facts kept here:

* ``positions``: per watch stream, a resourceVersion such that every event before it has been
  fully handled by every sink (shipped, dead-lettered or filtered out). A restart watches from
  there. It only moves over a done *prefix* of the stream, so a slow sink never lets it skip.
* ``versions``: the (uid, resourceVersion) pairs handled. A resumed watch or a re-list after
  410 Gone skips exactly those, so nothing is shipped twice, while a version not yet handled
  (a count update made while we were down) is shipped. resourceVersion is only ever compared for
  equality: it is opaque.

A uid's older versions are forgotten once a newer one is behind the position (no replay can reach
them any more); a uid is forgotten entirely when its Event is deleted (TTL) or missing from a
full re-list.
"""

from __future__ import annotations

import base64
import logging
import os
import sqlite3
import threading
import zlib
from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

import orjson

from shipper.versions import Versions, uid_key

log = logging.getLogger(__name__)


@dataclass
class Checkpoint:
    positions: dict[str, str] = field(default_factory=dict)
    # uid -> (stream, {resourceVersion: sequence number when handled})
    versions: dict[str, tuple[str, dict[str, int]]] = field(default_factory=dict)
    # Which API server (and view) the positions belong to: resourceVersions mean nothing elsewhere.
    source: str | None = None

    def copy(self) -> Checkpoint:
        return Checkpoint(dict(self.positions), dict(self.versions), self.source)

    def apply(
        self, positions: dict[str, str], changed: dict[str, tuple[str, dict[str, int]] | None]
    ) -> None:
        """Apply what a :meth:`Ledger.flush` hands to ``CheckpointStore.save``."""
        self.positions.update(positions)
        for uid, entry in changed.items():
            if entry is None:
                self.versions.pop(uid, None)
            else:
                self.versions[uid] = entry


class CheckpointStore(Protocol):
    """Where the ledger persists itself. ``save`` gets only what changed since the last call;
    a store with a ``save_part`` attribute gets it in parts of that many entries, the positions
    with the last part (a store whose every save rewrites it all, the ConfigMap, has none)."""

    def load(self) -> Checkpoint: ...

    def save(
        self,
        positions: dict[str, str],
        changed: dict[str, tuple[str, dict[str, int]] | None],
    ) -> None: ...

    def clear(self) -> None: ...

    def claim(self, source: str) -> None: ...

    def describe(self) -> str: ...


class MemoryStore:
    """Keeps nothing across restarts (``--state-dir=`` empty); used by tests and dry runs."""

    def __init__(self) -> None:
        self.checkpoint = Checkpoint()

    def load(self) -> Checkpoint:
        return self.checkpoint.copy()

    def save(self, positions, changed) -> None:  # type: ignore[no-untyped-def]
        self.checkpoint.apply(positions, changed)

    def clear(self) -> None:
        self.checkpoint = Checkpoint()

    def claim(self, source: str) -> None:
        self.checkpoint.source = source

    def describe(self) -> str:
        return "memory (not persisted)"


class SqliteStore:
    """A checkpoint file in ``--state-dir`` (``checkpoint.db``): incremental, crash-safe (WAL)."""

    #: Entries per ``save`` (the ledger flushes in parts of this size): a list of 100,000
    #: events dirties 10,000-40,000 entries a second, a dict and a tuple each until saved.
    save_part = 2000

    def __init__(self, path: str) -> None:
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as exc:  # e.g. a read-only filesystem: one line, not a traceback
            writable = "writable" if os.access(directory, os.W_OK) else "not writable"
            raise OSError(
                f"cannot open the checkpoint {path}: {exc} (the state directory {directory} is "
                f"{writable} by UID {os.getuid()}; mount a writable volume there or set "
                "--state-dir)"
            ) from exc
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS positions (stream TEXT PRIMARY KEY, rv TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS versions (
              uid TEXT NOT NULL, rv TEXT NOT NULL, stream TEXT NOT NULL, seq INTEGER NOT NULL,
              PRIMARY KEY (uid, rv)
            ) WITHOUT ROWID;
            """
        )
        self._lock = threading.Lock()

    def load(self) -> Checkpoint:
        with self._lock:
            checkpoint = Checkpoint(dict(self._db.execute("SELECT stream, rv FROM positions")))
            meta = dict(self._db.execute("SELECT key, value FROM meta"))
            checkpoint.source = meta.get("source")
            for uid, rv, stream, seq in self._db.execute(
                "SELECT uid, rv, stream, seq FROM versions"
            ):
                checkpoint.versions.setdefault(uid, (stream, {}))[1][rv] = seq
        return checkpoint

    def save(
        self,
        positions: dict[str, str],
        changed: dict[str, tuple[str, dict[str, int]] | None],
    ) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO positions (stream, rv) VALUES (?, ?)"
                    " ON CONFLICT(stream) DO UPDATE SET rv = excluded.rv",
                    positions.items(),
                )
                self._db.executemany("DELETE FROM versions WHERE uid = ?", ((u,) for u in changed))
                self._db.executemany(
                    "INSERT INTO versions (uid, rv, stream, seq) VALUES (?, ?, ?, ?)",
                    (
                        (uid, rv, entry[0], seq)
                        for uid, entry in changed.items()
                        if entry is not None
                        for rv, seq in entry[1].items()
                    ),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def clear(self) -> None:
        with self._lock:
            self._db.executescript("DELETE FROM positions; DELETE FROM versions; DELETE FROM meta;")

    def claim(self, source: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('source', ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (source,),
            )

    def describe(self) -> str:
        return f"file {self.path}"


class ConfigMapStore:
    """The checkpoint in a ConfigMap, for pods without a persistent volume (``--checkpoint``).

    The whole checkpoint is rewritten on each save as zlib-compressed JSON in ``binaryData``
    (optimistic concurrency on the ConfigMap's resourceVersion). A ConfigMap holds at most 1 MiB:
    if the checkpoint grows past ``max_bytes`` compressed, the uids handled longest ago are left
    out (a re-list after a restart would ship those again: at-least-once for them), and a
    warning says so. About 40,000 tracked events fit.
    """

    KEY = "checkpoint.json.z"

    def __init__(self, api: Any, namespace: str, name: str, max_bytes: int = 900_000) -> None:
        self.api, self.namespace, self.name, self.max_bytes = api, namespace, name, max_bytes
        self.path = f"/api/v1/namespaces/{namespace}/configmaps/{name}"
        self._mirror = Checkpoint()
        self._resource_version: str | None = None
        #: labels, annotations and owners of the ConfigMap as last read: a PUT keeps them, so a
        #: ConfigMap made by Helm keeps its ownership and GitOps tools see no drift.
        self._kept_metadata: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _remember(self, obj: dict[str, Any]) -> None:
        metadata = obj["metadata"]
        self._resource_version = metadata["resourceVersion"]
        self._kept_metadata = {
            key: metadata[key]
            for key in ("labels", "annotations", "ownerReferences")
            if metadata.get(key)
        }

    def load(self) -> Checkpoint:
        from shipper import kube

        response = kube.request(self.api, "GET", self.path)
        if response.status == 404:
            self._resource_version = None
            self._mirror = Checkpoint()
            return Checkpoint()
        if response.status != 200:
            raise OSError(f"cannot read {self.describe()}: {kube.status_message(response.data)}")
        obj = orjson.loads(response.data)
        self._remember(obj)
        blob = (obj.get("binaryData") or {}).get(self.KEY)
        data = orjson.loads(zlib.decompress(base64.b64decode(blob))) if blob else {}
        self._mirror = Checkpoint(
            positions=dict(data.get("positions") or {}),
            versions={
                uid: (entry[0], dict(entry[1]))
                for uid, entry in (data.get("versions") or {}).items()
            },
            source=data.get("source"),
        )
        return self._mirror.copy()

    def save(self, positions, changed) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            self._mirror.apply(positions, changed)
            self._write()

    def clear(self) -> None:
        with self._lock:
            self._mirror = Checkpoint()
            self._write()

    def claim(self, source: str) -> None:
        with self._lock:
            self._mirror.source = source
            self._write()

    def describe(self) -> str:
        return f"ConfigMap {self.namespace}/{self.name}"

    def _snapshot(self) -> bytes:
        versions = self._mirror.versions
        while True:
            payload = {
                "version": 1,
                "source": self._mirror.source,
                "positions": self._mirror.positions,
                "versions": versions,
            }
            blob = zlib.compress(orjson.dumps(payload), 6)
            if len(blob) <= self.max_bytes or not versions:
                return blob
            # Keep the most recently handled half; the rest may be shipped twice after a restart.
            newest = sorted(versions, key=lambda u: max(versions[u][1].values()), reverse=True)
            log.warning(
                "The checkpoint is too big for a ConfigMap (%d bytes); it keeps the %d most"
                " recent of %d events.",
                len(blob),
                len(newest) // 2,
                len(newest),
            )
            versions = {uid: versions[uid] for uid in newest[: len(newest) // 2]}

    def _write(self) -> None:
        from shipper import kube

        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/managed-by": "kube-event-shipper"},
                **self._kept_metadata,
            },
            "binaryData": {self.KEY: base64.b64encode(self._snapshot()).decode()},
        }
        if self._resource_version is None:
            response = kube.request(
                self.api, "POST", f"/api/v1/namespaces/{self.namespace}/configmaps", body=body
            )
        else:
            body["metadata"]["resourceVersion"] = self._resource_version
            response = kube.request(self.api, "PUT", self.path, body=body)
        if response.status == 409:
            # Someone else wrote it (a former leader): take their version number and write ours.
            current = kube.request(self.api, "GET", self.path)
            if current.status == 200:
                self._remember(orjson.loads(current.data))
            else:
                self._resource_version = None
            raise OSError(f"{self.describe()} changed underneath; will retry")
        if response.status not in (200, 201):
            raise OSError(f"cannot write {self.describe()}: {kube.status_message(response.data)}")
        self._remember(orjson.loads(response.data))


class Ticket:
    """One event's passage through the sinks; the ledger learns when every sink is done."""

    __slots__ = ("_ledger", "_pending", "key", "position", "rv", "seq", "stream", "uid")

    def __init__(self, ledger: Ledger, stream: str, uid: str, rv: str, position: str | None):
        self._ledger = ledger
        self.stream, self.uid, self.rv, self.position = stream, uid, rv, position
        self._pending, self.seq = 0, 0
        #: the ledger's compact form of the uid; None when only the position counts
        self.key: int | str | None = uid

    def done(self) -> None:
        """Called once per sink that finished with the event (shipped, dead-lettered, filtered)."""
        self._ledger._sink_done(self)

    @staticmethod
    def done_all(tickets: list[Ticket]) -> None:
        """:meth:`done` for each of one sink's batch, taking the ledger's lock once."""
        if tickets:
            tickets[0]._ledger._sinks_done(tickets)


class _Marker:
    """A stream entry that is done at once: a bookmark, a list's end, or a deletion."""

    __slots__ = ("deleted_uid", "position")

    def __init__(self, position: str | None, deleted_uid: str | None = None):
        self.position, self.deleted_uid = position, deleted_uid


class Ledger:
    """Tracks in-flight events per stream and the handled versions; thread-safe."""

    def __init__(self, store: CheckpointStore, source: str = "") -> None:
        self.store, self.source = store, source
        loaded = store.load()
        if source and loaded.source not in (None, source):
            log.warning(
                "The checkpoint in %s belongs to %s, not %s; starting without it.",
                store.describe(),
                loaded.source,
                source,
            )
            store.clear()
            loaded = Checkpoint()
        if source:
            store.claim(source)
        self._positions = loaded.positions
        self._versions = Versions(loaded.versions)
        self._seq = self._versions.max_seq()
        self._inflight: dict[str, deque[Ticket | _Marker]] = {}
        self._done: set[int] = set()  # id() of done tickets still queued behind others
        self._sending: set[tuple[str, str]] = set()  # (uid, rv) handed to sinks, not yet done
        self._dirty_positions: dict[str, str] = {}
        self._dirty_versions: dict[int | str, str] = {}  # changed since the flush: key -> uid
        self._last_key: tuple[str, int | str] = ("", "")  # handled()'s, for begin() to reuse
        self._lock = threading.Lock()

    # -- queries

    def position(self, stream: str) -> str | None:
        with self._lock:
            return self._positions.get(stream)

    def handled(self, uid: str, rv: str) -> bool:
        """True if this version was shipped already, or is on its way to the sinks."""
        with self._lock:
            key = uid_key(uid)
            self._last_key = (uid, key)
            return (uid, rv) in self._sending or self._versions.has(key, rv)

    def tracked_uids(self) -> int:
        with self._lock:
            return len(self._versions)

    def inflight(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._inflight.values())

    # -- the source's side

    def begin(self, stream: str, uid: str, rv: str, position: str | None, sinks: int) -> Ticket:
        """Register an event about to go to ``sinks`` sinks; ``position`` is where a watch
        would resume after it (its rv for watch events, None for list items)."""
        ticket = Ticket(self, stream, uid, rv, position)
        ticket._pending = sinks
        with self._lock:
            last_uid, last_key = self._last_key
            ticket.key = last_key if last_uid is uid else uid_key(uid)
            self._inflight.setdefault(stream, deque()).append(ticket)
            self._sending.add((uid, rv))
            if sinks == 0:
                self._complete(ticket)
        return ticket

    def begin_positional(
        self, stream: str, uid: str, rv: str, position: str | None, sinks: int
    ) -> Ticket:
        """:meth:`begin` for a stream whose position alone says what was shipped (the audit
        spool: shipper/audit/): nothing is remembered per uid, so the ledger does not grow
        with every request the API server ever audited."""
        ticket = Ticket(self, stream, uid, rv, position)
        ticket._pending = sinks
        ticket.key = None
        with self._lock:
            self._inflight.setdefault(stream, deque()).append(ticket)
            if sinks == 0:
                self._complete(ticket)
        return ticket

    def mark(self, stream: str, position: str | None, deleted_uid: str | None = None) -> None:
        """A bookmark / list end (new position) or a deleted Event (forget its uid)."""
        with self._lock:
            self._inflight.setdefault(stream, deque()).append(_Marker(position, deleted_uid))
            self._advance(stream)

    def forget_missing(self, stream: str, present: set[str]) -> int:
        """After a full re-list: forget uids of ``stream`` that no longer exist."""
        with self._lock:
            gone = self._versions.missing(stream, present)
            for key in gone:
                self._versions.drop(key)
            self._dirty_versions.update(gone)
            return len(gone)

    def reset(self) -> None:
        """Forget what was shipped (``--start=all``)."""
        with self._lock:
            self.store.clear()
            if self.source:
                self.store.claim(self.source)
            self._positions.clear()
            self._versions.clear()
            self._dirty_positions.clear()
            self._dirty_versions.clear()

    # -- the sinks' side

    def _sink_done(self, ticket: Ticket) -> None:
        with self._lock:
            ticket._pending -= 1
            if ticket._pending == 0:
                self._complete(ticket)

    def _sinks_done(self, tickets: list[Ticket]) -> None:
        with self._lock:
            for ticket in tickets:
                ticket._pending -= 1
                if ticket._pending == 0:
                    self._complete(ticket)

    def _complete(self, ticket: Ticket) -> None:
        if ticket.key is None:  # positional (begin_positional)
            self._done.add(id(ticket))
            self._advance(ticket.stream)
            return
        self._sending.discard((ticket.uid, ticket.rv))
        self._seq += 1
        ticket.seq = self._seq
        self._versions.add(ticket.stream, ticket.key, ticket.rv, ticket.seq)
        self._dirty_versions[ticket.key] = ticket.uid
        self._done.add(id(ticket))
        self._advance(ticket.stream)

    def _advance(self, stream: str) -> None:
        queue = self._inflight.get(stream)
        while queue:
            head = queue[0]
            if isinstance(head, Ticket):
                if id(head) not in self._done:
                    break
                self._done.discard(id(head))
                if head.key is not None:
                    self._forget_older(head)
            elif head.deleted_uid is not None and self._versions.drop(uid_key(head.deleted_uid)):
                self._dirty_versions[uid_key(head.deleted_uid)] = head.deleted_uid
            queue.popleft()
            if head.position is not None:
                self._positions[stream] = head.position
                self._dirty_positions[stream] = head.position

    def _forget_older(self, ticket: Ticket) -> None:
        # Once the position is past this version, no replay can bring an older one back.
        if self._versions.forget_older(ticket.key, ticket.seq):
            self._dirty_versions[ticket.key] = ticket.uid

    # -- persistence

    def flush(self) -> None:
        """Persist what changed; cheap when nothing did."""
        with self._lock:
            if not self._dirty_positions and not self._dirty_versions:
                return
            positions, self._dirty_positions = self._dirty_positions, {}
            dirty, self._dirty_versions = self._dirty_versions, {}
        try:
            # In parts, the positions with the last one: a crash in between leaves versions
            # saved ahead of their position, which a restart only skips again. The entries of
            # one part, expanded as the store takes them, are all the memory a flush needs.
            size = getattr(self.store, "save_part", None) or len(dirty) or 1
            items = iter(dirty.items())
            for left in range(len(dirty) or 1, 0, -size):
                with self._lock:
                    changed = {
                        uid: self._versions.expanded(key) for key, uid in islice(items, size)
                    }
                self.store.save(positions if left <= size else {}, changed)
        except Exception:
            # Put it back so the next flush retries; the ledger in memory is still right.
            with self._lock:
                for stream, rv in positions.items():
                    self._dirty_positions.setdefault(stream, rv)
                for key, uid in dirty.items():
                    self._dirty_versions.setdefault(key, uid)
            raise

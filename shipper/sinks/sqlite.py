"""``sqlite:PATH?retention=720h``: the embedded store, and the default sink.

One row per Event (``uid`` is the key). A count update (MODIFIED, same uid, new resourceVersion)
updates that row in place: an event repeated ten times is one row with ``count`` 10, its first
and last occurrence. An older version arriving late (a replay) never rolls a row back. Rows whose
last occurrence is older than ``retention`` are pruned at start and every ten minutes.

Guarantee: exactly once per event (idempotent upsert by uid), across restarts, 410s and crashes.

Schema (all times UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, so they sort as text)::

    events(uid PK, resource_version, cluster, namespace, kind, name, object_uid, api_version,
           field_path, type, reason, message, action, reporting_controller, reporting_instance,
           source_component, source_host, event_name, event_namespace, count,
           first_seen, last_seen, shipped_at, labels, owner_kind, owner_name)

``labels`` (the involved object's, a JSON object) and ``owner_kind``/``owner_name`` (its top
controller, e.g. the Deployment behind a Pod) are filled with ``--enrich``; a later version
looked up without them (past the lookup budget) keeps what an earlier one found. Schema 1
databases get these columns added at start.

Indexes: ``last_seen`` (the order of every query, and pruning), ``(namespace, last_seen)``
and ``(name, last_seen)`` (``query -n`` and ``--name``). ``query --reason`` is a regex and
``--kind`` case-insensitive: an index cannot serve them, so none is kept for them (each index is
written with every row).

``namespace``/``kind``/``name`` are the involved object's; ``namespace`` is ``''`` for
cluster-scoped objects such as Nodes. Read it with ``kube-event-shipper query``, or any SQLite
client: ``sqlite3 events.db "select last_seen, reason, name from events order by last_seen"``.

Audit documents: with an audit source (``--source=audit:``, docs/audit.md) the same file keeps
the API server's audit events in a table of their own, next to ``events`` (which does not
change); ``documents=events`` keeps them out, ``documents=audit`` keeps only them. One row per
request *stage*, keyed by ``(audit_id, stage)``, so a replayed batch never adds a row::

    audit(audit_id, stage, verb, username, groups, source_ip, user_agent, resource, subresource,
          namespace, name, api_group, api_version, code, decision, reason, request_uri, level,
          received, stage_time, cluster, document)

``groups`` is a JSON array, ``source_ip`` the first of ``sourceIPs``, ``code`` the response's
HTTP status, ``decision``/``reason`` the authorizer's (``allow``/``forbid`` and why),
``received``/``stage_time`` the request's and the stage's time, and ``document`` the whole
``kubernetes.audit`` document as JSON (request and response bodies included, at the levels
that record them). The view ``audit_requests`` shows each request once, at its last stage.
``retention`` prunes audit rows by ``stage_time`` as it prunes events. Read them with
``kube-event-shipper query --audit`` (``--user``, ``--verb``, ``--resource``, ``--denied``, ...)
or ``sqlite3 events.db "select stage_time, username, verb, resource, name, code from audit"``.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from shipper.event import Event, utc_now
from shipper.sinks.base import Rejected, Sink, TransientError
from shipper.spec import SinkOptions, option

SCHEMA_VERSION = 2
PRUNE_EVERY = 600.0
#: The order of an audit event's stages (shipper/audit/record.py: STAGES), as SQL.
STAGE_RANK = (
    "CASE {stage} WHEN 'RequestReceived' THEN 0 WHEN 'ResponseStarted' THEN 1"
    " WHEN 'ResponseComplete' THEN 2 WHEN 'Panic' THEN 3 ELSE 1 END"
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  uid TEXT PRIMARY KEY,
  resource_version TEXT NOT NULL,
  cluster TEXT NOT NULL DEFAULT '',
  namespace TEXT NOT NULL DEFAULT '',
  kind TEXT, name TEXT, object_uid TEXT, api_version TEXT, field_path TEXT,
  type TEXT NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL, action TEXT,
  reporting_controller TEXT, reporting_instance TEXT, source_component TEXT, source_host TEXT,
  event_name TEXT NOT NULL, event_namespace TEXT NOT NULL,
  count INTEGER NOT NULL,
  first_seen TEXT NOT NULL,
  last_seen TEXT NOT NULL,
  shipped_at TEXT NOT NULL,
  labels TEXT, owner_kind TEXT, owner_name TEXT
);
CREATE INDEX IF NOT EXISTS events_last_seen ON events (last_seen);
CREATE INDEX IF NOT EXISTS events_namespace ON events (namespace, last_seen);
CREATE INDEX IF NOT EXISTS events_name ON events (name, last_seen);
CREATE TABLE IF NOT EXISTS audit (
  audit_id TEXT NOT NULL,
  stage TEXT NOT NULL,
  verb TEXT NOT NULL,
  username TEXT NOT NULL DEFAULT '',
  groups TEXT, source_ip TEXT, user_agent TEXT,
  resource TEXT, subresource TEXT,
  namespace TEXT NOT NULL DEFAULT '',
  name TEXT, api_group TEXT, api_version TEXT,
  code INTEGER, decision TEXT, reason TEXT, request_uri TEXT, level TEXT,
  received TEXT NOT NULL,
  stage_time TEXT NOT NULL,
  cluster TEXT NOT NULL DEFAULT '',
  document TEXT NOT NULL,
  PRIMARY KEY (audit_id, stage)
);
CREATE INDEX IF NOT EXISTS audit_stage_time ON audit (stage_time);
CREATE INDEX IF NOT EXISTS audit_username ON audit (username, stage_time);
CREATE INDEX IF NOT EXISTS audit_namespace ON audit (namespace, resource, stage_time);
CREATE INDEX IF NOT EXISTS audit_code ON audit (code, stage_time);
CREATE VIEW IF NOT EXISTS audit_requests AS
  SELECT * FROM audit AS a WHERE NOT EXISTS (
    SELECT 1 FROM audit AS b WHERE b.audit_id = a.audit_id
    AND ({later}) > ({this})
  );
""".format(later=STAGE_RANK.format(stage="b.stage"), this=STAGE_RANK.format(stage="a.stage"))
#: Indexes of earlier versions that no query could use (``reason`` is matched by a regex, and
#: ``kind`` case-insensitively), dropped at start: each index is a B-tree more to write per row.
DROPPED_INDEXES = ("events_reason", "events_object")
#: Columns added after schema 1, for databases made by an older version.
ADDED_COLUMNS = (("labels", "TEXT"), ("owner_kind", "TEXT"), ("owner_name", "TEXT"))
#: Kept from an earlier version when a later one comes without them (not looked up).
KEPT = ("labels", "owner_kind", "owner_name")

COLUMNS = (
    "uid", "resource_version", "cluster", "namespace", "kind", "name", "object_uid",
    "api_version", "field_path", "type", "reason", "message", "action", "reporting_controller",
    "reporting_instance", "source_component", "source_host", "event_name", "event_namespace",
    "count", "first_seen", "last_seen", "shipped_at", "labels", "owner_kind", "owner_name",
)  # fmt: skip

_UPDATED = [c for c in COLUMNS if c not in ("uid", "first_seen", *KEPT)]
UPSERT = (
    f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    " ON CONFLICT(uid) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _UPDATED)
    + "".join(f", {c} = coalesce(excluded.{c}, events.{c})" for c in KEPT)
    + ", first_seen = min(events.first_seen, excluded.first_seen)"
    # A late replay of an older version must not roll the row back.
    " WHERE excluded.last_seen > events.last_seen"
    " OR (excluded.last_seen = events.last_seen AND excluded.count >= events.count)"
)


AUDIT_COLUMNS = (
    "audit_id", "stage", "verb", "username", "groups", "source_ip", "user_agent", "resource",
    "subresource", "namespace", "name", "api_group", "api_version", "code", "decision", "reason",
    "request_uri", "level", "received", "stage_time", "cluster", "document",
)  # fmt: skip
#: A stage of a request never changes: the first write wins, a replay is a no-op.
AUDIT_INSERT = (
    f"INSERT INTO audit ({', '.join(AUDIT_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(AUDIT_COLUMNS))})"
    " ON CONFLICT(audit_id, stage) DO NOTHING"
)


def default_path(state_dir: str | None) -> str:
    return os.path.join(state_dir or ".", "events.db")


def connect(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=10000")
    # 16 MiB of page cache (default 2 MiB): index upserts stay fast as the table grows.
    db.execute("PRAGMA cache_size=-16384")
    return db


def migrate(db: sqlite3.Connection) -> None:
    db.executescript(SCHEMA)
    for index in DROPPED_INDEXES:
        db.execute(f"DROP INDEX IF EXISTS {index}")
    have = {row[1] for row in db.execute("PRAGMA table_info(events)")}
    for column, kind in ADDED_COLUMNS:
        if column not in have:
            db.execute(f"ALTER TABLE events ADD COLUMN {column} {kind}")
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (str(SCHEMA_VERSION),),
    )


def _row(event: Event, shipped_at: str) -> tuple[Any, ...]:
    return (
        event.uid, event.resource_version, event.cluster, event.object_namespace or "",
        event.object_kind, event.object_name, event.object_uid, event.object_api_version,
        event.object_field_path, event.type, event.reason, event.message, event.action,
        event.reporting_controller, event.reporting_instance, event.source_component,
        event.source_host, event.name, event.namespace, event.count,
        event.first_timestamp, event.last_timestamp, shipped_at,
        orjson.dumps(event.labels).decode() if event.labels else None,
        event.owner.get("kind") if event.owner else None,
        event.owner.get("name") if event.owner else None,
    )  # fmt: skip


def _audit_row(event: Any) -> tuple[Any, ...]:
    """The ``audit`` row of a :class:`shipper.audit.record.AuditEvent`."""
    encoded = event.document_json(event.cluster)  # made once, shared with the other sinks
    audit = orjson.loads(encoded)["kubernetes"]["audit"]
    user = audit.get("user") or {}
    ref = audit.get("object_ref") or {}
    authorization = audit.get("authorization") or {}
    ips = audit.get("source_ips") or ()
    groups = user.get("groups")
    return (
        event.uid, event.resource_version, event.reason, user.get("username") or "",
        orjson.dumps(groups).decode() if groups else None, ips[0] if ips else None,
        audit.get("user_agent"), ref.get("resource"), ref.get("subresource"),
        ref.get("namespace") or "", ref.get("name"), ref.get("api_group"),
        ref.get("api_version"), event.status_code, authorization.get("decision"),
        authorization.get("reason"), audit.get("request_uri"), audit.get("level"),
        event.first_timestamp, event.last_timestamp, event.cluster, encoded.decode(),
    )  # fmt: skip


def cutoff(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time() - seconds))


@dataclass(frozen=True, kw_only=True)
class SqliteOptions(SinkOptions):
    retention: float = option(720 * 3600.0, "Prune events last seen longer ago (e.g. 168h).")


class SqliteSink(Sink):
    scheme = "sqlite"
    summary = "the embedded store (default): one row per event, updated in place"
    usage = "sqlite:[PATH] (default events.db in the state dir)"
    example = "sqlite:/data/events.db?retention=168h"
    Options = SqliteOptions
    options: SqliteOptions
    guarantee = (
        "exactly once per event: an upsert by uid; count updates update the row (audit: once"
        " per request stage, keyed by audit_id and stage)"
    )
    accepts_audit = True
    # One transaction per batch: the indexes' hot pages are written once per transaction, so
    # 5,000 rows cost about a fifth less CPU than five batches of 1,000 (bench/README.md).
    default_batch_size = 5000
    default_flush_interval = 0.2

    db: sqlite3.Connection | None = None
    _last_prune = 0.0

    @property
    def path(self) -> str:
        rest = self.uri.rest
        if rest.startswith("//"):  # sqlite:///abs/path
            rest = rest[2:]
        return rest or default_path(self.ctx.state_dir)

    def open(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, exist_ok=True)
            self.db = connect(self.path)
            migrate(self.db)
        except (OSError, sqlite3.Error) as exc:
            raise TransientError(f"cannot open {self.path}: {exc}") from exc
        self.prune()

    def write(self, events: Sequence[Event]) -> Sequence[Rejected]:
        assert self.db is not None
        now = utc_now()
        # Rows are made as sqlite takes them, not as a list first: a batch of 5,000 audit
        # events (documents with request and response bodies) is then never held twice.
        rows = (_row(event, now) for event in events if event.kind != "audit")
        audit = (_audit_row(event) for event in events if event.kind == "audit")
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(UPSERT, rows)
            self.db.executemany(AUDIT_INSERT, audit)
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._roll_back()
            raise TransientError(f"{self.path}: {exc}") from exc
        except BaseException:  # a row that could not be made: nothing of the batch stays
            self._roll_back()
            raise
        if time.monotonic() - self._last_prune > PRUNE_EVERY:
            self.prune()
        return []

    def _roll_back(self) -> None:
        assert self.db is not None
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def prune(self) -> int:
        assert self.db is not None
        self._last_prune = time.monotonic()
        oldest = cutoff(self.options.retention)
        deleted = self.db.execute("DELETE FROM events WHERE last_seen < ?", (oldest,)).rowcount
        deleted += self.db.execute("DELETE FROM audit WHERE stage_time < ?", (oldest,)).rowcount
        return deleted

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def describe(self) -> str:
        return f"sqlite {self.path}"


@dataclass
class Query:
    """Filters of ``kube-event-shipper query``; every one is optional."""

    since: float | None = None  # seconds back from now
    namespace: str | None = None
    kind: str | None = None
    name: str | None = None
    type: str | None = None
    reason: str | None = None  # regex, unanchored
    message: str | None = None  # substring, case-insensitive
    owner: str | None = None  # the top owner: NAME or KIND/NAME (enrichment)
    limit: int = 500


def run_query(path: str, query: Query) -> list[dict[str, Any]]:
    """Rows matching ``query``, newest first (then shown oldest first, as kubectl does)."""
    sql, args = query_sql(query)
    with _read_only(path) as db:
        db.create_function("regexp", 2, _regexp, deterministic=True)
        rows = [_decoded(dict(row)) for row in db.execute(sql, args)]
    rows.reverse()
    return rows


def query_sql(query: Query) -> tuple[str, list[Any]]:
    """The SELECT for ``query`` and its arguments."""
    where = _Where()
    where.since("last_seen", query.since)
    where.equal(query, "namespace", "name")
    for column in ("kind", "type"):  # kubectl takes pod, Pod and POD alike
        value = getattr(query, column)
        if value is not None:
            where.add(f"lower({column}) = lower(?)", value)
    if query.reason is not None:
        where.add("regexp(?, reason)", query.reason)
    if query.message is not None:
        where.add("instr(lower(message), lower(?)) > 0", query.message)
    if query.owner is not None:
        kind, _, name = query.owner.rpartition("/")
        where.add("owner_name = ?", name)
        if kind:
            where.add("lower(owner_kind) = lower(?)", kind)
    return f"SELECT * FROM events{where} ORDER BY last_seen DESC LIMIT ?", [
        *where.args,
        query.limit,
    ]


class _Where:
    """A WHERE clause built one filter at a time, with its arguments."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.args: list[Any] = []

    def add(self, clause: str, *args: Any) -> None:
        self.clauses.append(clause)
        self.args.extend(args)

    def since(self, column: str, seconds: float | None) -> None:
        if seconds is not None:
            self.add(f"{column} >= ?", cutoff(seconds))

    def equal(self, query: Any, *columns: str) -> None:
        for column in columns:
            value = getattr(query, column)
            if value is not None:
                self.add(f"{column} = ?", value)

    def __str__(self) -> str:
        return " WHERE " + " AND ".join(self.clauses) if self.clauses else ""


@contextmanager
def _read_only(path: str) -> Iterator[sqlite3.Connection]:
    """The database opened read-only, rows as :class:`sqlite3.Row`; FileNotFoundError if the
    shipper has not made it yet."""
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        yield db
    finally:
        db.close()


@dataclass
class AuditQuery:
    """Filters of ``kube-event-shipper query --audit``; every one is optional."""

    since: float | None = None  # seconds back from now, by the stage's time
    namespace: str | None = None
    user: str | None = None  # the username, exactly
    verbs: tuple[str, ...] = ()  # any of them (get, list, create, ...)
    resource: str | None = None  # RESOURCE or RESOURCE/SUBRESOURCE (secrets, pods/exec)
    name: str | None = None
    denied: bool = False  # HTTP 401/403, or the authorizer said forbid
    stages: bool = False  # every stage of a request, not only its last
    limit: int = 500


DENIED = "(code IN (401, 403) OR decision = 'forbid')"


def run_audit_query(path: str, query: AuditQuery) -> list[dict[str, Any]]:
    """Audit rows matching ``query``, newest first (then shown oldest first); one per request
    (the ``audit_requests`` view: its last stage) unless ``stages`` asks for every stage."""
    where = _Where()
    where.since("stage_time", query.since)
    where.equal(query, "namespace", "name")
    if query.user is not None:
        where.add("username = ?", query.user)
    if query.verbs:
        where.add(f"verb IN ({', '.join('?' * len(query.verbs))})", *query.verbs)
    if query.resource is not None:
        resource, slash, subresource = query.resource.partition("/")
        where.add("lower(resource) = lower(?)", resource)
        if slash:
            where.add("lower(subresource) = lower(?)", subresource)
    if query.denied:
        where.add(DENIED)
    source = "audit" if query.stages else "audit_requests"
    rank = STAGE_RANK.format(stage="stage")
    sql = (
        f"SELECT * FROM {source}{where}"
        f" ORDER BY stage_time DESC, audit_id DESC, {rank} DESC LIMIT ?"
    )
    with _read_only(path) as db:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'audit'").fetchone():
            return []  # a database written before audit documents existed
        rows = [dict(row) for row in db.execute(sql, [*where.args, query.limit])]
    for row in rows:
        row["groups"] = orjson.loads(row["groups"]) if row["groups"] else []
        row["document"] = orjson.loads(row["document"])
    rows.reverse()
    return rows


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    row["labels"] = orjson.loads(row["labels"]) if row.get("labels") else None
    return row


_REGEX_CACHE: dict[str, re.Pattern[str]] = {}


def _regexp(pattern: str, value: str | None) -> bool:
    compiled = _REGEX_CACHE.get(pattern)
    if compiled is None:
        compiled = _REGEX_CACHE[pattern] = re.compile(pattern)
    return value is not None and compiled.search(value) is not None

"""``mysql:?user:pw@tcp(host:3306)/db?table=kube_event``: MySQL 5.7+/8.x and MariaDB 10.3+.

URI: kube-eventer's form, a Go (go-sql-driver) DSN after ``mysql:?``, or a URL::

    mysql:?shipper:$MYSQL_PASSWORD@tcp(mysql.db:3306)/kube_events?charset=utf8mb4&table=kube_event
    mysql:?shipper@tcp(10.0.0.5:3306)/kube_events?parseTime=true&loc=Local&password_file=/s/pw
    mysql:?shipper@unix(/run/mysqld/mysqld.sock)/kube_events
    mysql://shipper:p%40ss@mysql.db:3306/kube_events?table=k8s_event&tls=true&tls_ca=/s/ca.pem

The DSN is read as go-sql-driver reads it: the user up to the first ``:``, the password up to
the last ``@`` before the address (so it may hold ``@ : / ?``), ``tcp(HOST:PORT)`` or
``unix(PATH)``, ``/DATABASE``, then one query string that holds the driver's options and ours
together (kube-eventer's ``table=`` included). In the URL form the password is percent-encoded.
``$VAR`` expands in every part (``$$`` is a literal ``$``); ``password_file=/path`` or
``password=$VAR`` keep the password out of the Deployment's args. The password is never logged.
Go driver options with no meaning here (``parseTime``, ``loc``, ``collation``, ...) are
accepted so a kube-eventer DSN works unchanged; ``timeout``, ``readTimeout``, ``writeTimeout``
and ``tls`` (``true``, ``skip-verify``, ``preferred``, ``false``) mean what they mean in Go.

Schema (``schemas/mysql.sql`` is the same DDL for a DBA to run by hand). Every time is UTC in a
``DATETIME(6)`` column (the session's ``time_zone`` is ``+00:00``; kube-eventer wrote local-time
strings), text is ``utf8mb4`` (emoji and any Unicode intact)::

    <table>             one row per Event (PRIMARY KEY uid), updated in place by count updates:
                        uid, resource_version, cluster, namespace, kind, name (the involved
                        object's; namespace '' for cluster-scoped ones), object_uid, api_version,
                        field_path, type, reason, message, action, reporting_controller,
                        reporting_instance, source_component, source_host, event_name,
                        event_namespace, count, first_seen, last_seen, shipped_at
    <table>_occurrence  one row per Event version, PRIMARY KEY (uid, resource_version):
                        uid, resource_version, count, occurred_at, shipped_at
    kube_event_shipper_schema   (table_name, version, migrated_at): the schema version per table

Collations: ``utf8mb4_bin`` (exact, as Kubernetes compares names and reasons, and no surprise
equalities) except ``message``, ``utf8mb4_unicode_520_ci``, so ``message LIKE '%timeout%'``
ignores case (unlike ``utf8mb4_unicode_ci`` it tells emoji apart). Indexes serve the queries in
the README: recent warnings (type, last_seen), a namespace by time (namespace, last_seen), an
object's history (kind, name, namespace, last_seen), a reason by time (reason, last_seen).

Migration: at start, under ``GET_LOCK``, the tables are created if missing (``CREATE TABLE IF
NOT EXISTS``) and the version recorded; later versions add ``ALTER TABLE`` steps. Where the
version row is current nothing is run, so tables made from ``schemas/mysql.sql`` need no CREATE
privilege (SELECT, INSERT, UPDATE suffice). A table of that name that is not ours (kube-eventer's
own ``kube_event``) is refused with a clear message rather than written into.

Writes: a batch is one transaction: a multi-row ``INSERT ... ON DUPLICATE KEY UPDATE`` of the
rows, which takes a version only if it is newer than the row's (a later ``last_seen``, or the
same and a higher count), so a late replay never rolls a row back, then the
occurrences (``ON DUPLICATE KEY UPDATE`` no-op). A replay of a version already written changes
nothing, ``shipped_at`` included. A row the server refuses (strict mode: a value
too long for its column, a bad date) fails its batch; the batch is then written row by row and
only that event is dead-lettered, with the server's message. A lost connection or a server that
went away: reconnect, and the batch is retried (TransientError), as are access denied (1045),
unknown database (1049) and every other server error, each reported in one line.

Guarantee: exactly once per event and per event version, across restarts, 410s, full replays
and outages: the rows are keyed by uid and by (uid, resource_version), and written idempotently.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shipper.event import Event, utc_now
from shipper.sinks.base import Rejected, Sink, TransientError
from shipper.sinks.mysql.dsn import GO_DRIVER_OPTIONS, connect_args, parse_charset, split_uri
from shipper.sinks.mysql.schema import (
    COLUMNS,
    DEFAULT_TABLE,
    MIGRATIONS,
    OCCURRENCE_COLUMNS,
    SCHEMA_VERSION,
    SQL_MODE,
    TABLE_NAME,
    VERSION_DDL,
    VERSION_TABLE,
    occurrence_sql,
    sql_time,
    statements,
    upsert_sql,
    values,
)
from shipper.spec import (
    ClientCert,
    ClusterName,
    SinkOptions,
    Timeout,
    TLSTrust,
    check_readable,
    option,
)
from shipper.tls import TLSFileError, client_context
from shipper.uri import Uri, UsageError, choice

log = logging.getLogger(__name__)

#: Reconnect-free writes: a connection idle longer than this is pinged before it is used.
PING_AFTER = 30.0


# -- server errors, by number

#: The server refused this row's values (strict mode); the event is dead-lettered. 1153: the
#: row is larger than max_allowed_packet (the server then drops the connection).
ROW_ERRORS = frozenset(
    {1048, 1153, 1263, 1264, 1265, 1292, 1300, 1366, 1367, 1406, 1411, 1452, 1690, 3819, 4025}
)
ACCESS_DENIED, NO_SUCH_DATABASE, DB_ACCESS_DENIED, NO_SUCH_TABLE = 1045, 1049, 1044, 1146


def error_code(exc: BaseException) -> int:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else 0


def error_text(exc: BaseException) -> str:
    """The server's or the driver's words, one line: ``Access denied for user ... (1045)``."""
    code = error_code(exc)
    args = getattr(exc, "args", ())
    if code:
        message = str(args[1]) if len(args) > 1 else str(exc)
    elif args and args[0] == 0:  # pymysql's InterfaceError(0, ''): a closed connection
        message = "the connection is closed"
    else:
        message = str(exc) or type(exc).__name__
    message = " ".join(message.split())
    return f"{message} ({code})" if code else message


@dataclass(frozen=True, kw_only=True)
class MySQLOptions(SinkOptions, TLSTrust, ClientCert, ClusterName, Timeout):
    DEFAULTS = {"timeout": 10.0}

    table: str = option(
        DEFAULT_TABLE,
        "Table of events (one row per Event); versions go to <table>_occurrence. Letters, digits, _.",
    )
    user: str | None = option(None, "User, where the DSN or URL has none.", aliases=("username",))
    password: str | None = option(
        None,
        "Password, where the DSN or URL has none: password_file=/path or password=$VAR.",
        secret=True,
    )
    tls: str | None = option(
        None,
        "TLS as in Go: true (verify the certificate and host name), skip-verify, preferred (TLS if offered, unverified), false. Default false, true when a TLS file is given; insecure=true means skip-verify.",
        parse=choice("false", "true", "skip-verify", "preferred"),
    )
    read_timeout: float = option(
        60.0, "Timeout of one read from the server.", aliases=("readTimeout",)
    )
    write_timeout: float = option(
        60.0, "Timeout of one write to the server.", aliases=("writeTimeout",)
    )
    charset: str = option(
        "utf8mb4",
        "utf8mb4 (utf8 is read as utf8mb4: a 3-byte utf8 connection would refuse emoji).",
        parse=parse_charset,
    )
    go_driver_options: list[str] = option(
        [],
        "Go driver options (parseTime, "
        + ", ".join(GO_DRIVER_OPTIONS)
        + "): accepted so that a kube-eventer DSN works unchanged; no effect (times are always UTC).",
        parse=str,
        aliases=("parseTime", *GO_DRIVER_OPTIONS),
    )


class MySQLSink(Sink):
    scheme = "mysql"
    aliases = ("mariadb",)
    summary = "MySQL 5.7+/8.x or MariaDB: one row per event updated in place, plus every version"
    Options = MySQLOptions
    options: MySQLOptions
    usage = "mysql:?USER:PW@tcp(HOST:3306)/DB?charset=utf8mb4&table=kube_event or mysql://USER@HOST:3306/DB"
    example = "mysql:?shipper:$MYSQL_PASSWORD@tcp(mysql:3306)/kube?table=kube_event"
    guarantee = (
        "exactly once: one row per event (upsert by uid, never rolled back to an older version)"
        " and one row per event version (uid, resource_version)"
    )
    default_batch_size = 1000
    default_flush_interval = 0.5

    db: Any = None
    server_version: str = ""
    _used = 0.0

    # -- the URI
    @classmethod
    def parse_uri(cls, text: str, *, where: str) -> Uri:
        """Split the whole ``--sink`` text (:func:`shipper.sinks.mysql.dsn.split_uri`): the
        DSN's own ``?`` is not the first one."""
        return split_uri(text, where=where)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        where = f"--sink {self.scheme}"
        self.table = self.options.table
        if not TABLE_NAME.fullmatch(self.table) or self.table == VERSION_TABLE:
            raise UsageError(
                f"{where}: parameter table={self.table!r}: expected a name of letters, digits and"
                " _ that does not start with a digit, at most 53 characters"
            )
        self.connect_args = connect_args(
            self.uri.rest, self.options.user, self.options.password, where=where
        )
        self.cluster = self.options.cluster_name or self.ctx.cluster
        o = self.options
        self.tls = o.tls or (
            "skip-verify" if o.insecure else "true" if o.ca_file or o.cert_file else "false"
        )
        check_readable(o, where, "ca_file", "cert_file", "key_file")
        if bool(o.cert_file) != bool(o.key_file):
            raise UsageError(f"{where}: give cert_file and key_file together")
        if self.tls == "false" and (o.ca_file or o.cert_file):
            raise UsageError(f"{where}: tls=false, but ca_file/cert_file given")
        try:  # made once, here: a TLS file that cannot be used is a usage error at start
            self._ssl = (
                None
                if self.tls == "false"
                else client_context(o.ca_file, o.cert_file, o.key_file, self.tls != "true")
            )
        except TLSFileError as exc:
            raise UsageError(f"{where}: {exc}") from None
        self._upsert = upsert_sql(self.table)
        self._occurrence = occurrence_sql(self.table)

    # -- connecting

    def _ssl_args(self) -> dict[str, Any]:
        if self.tls == "false":
            return {"ssl_disabled": True}
        if self.tls == "preferred":  # pymysql: TLS when the server offers it, else plain
            return {}
        return {"ssl": self._ssl}

    def connect(self) -> Any:
        """A new connection with the session set up and the schema migrated."""
        import pymysql

        options = self.options
        try:
            db = pymysql.connect(
                **self.connect_args,
                charset="utf8mb4",
                autocommit=False,
                connect_timeout=max(1, round(options.timeout)),
                read_timeout=options.read_timeout or None,
                write_timeout=options.write_timeout or None,
                **self._ssl_args(),
            )
        except pymysql.MySQLError as exc:
            raise TransientError(self._connect_error(exc)) from None
        except RuntimeError as exc:  # pymysql: "'cryptography' package is required ..."
            raise TransientError(
                f"{exc}: the user authenticates with caching_sha2_password or sha256_password;"
                " install cryptography (pip install 'pymysql[rsa]') or use tls=true"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise TransientError(f"cannot connect to {self.where()}: {exc}") from None
        try:
            with db.cursor() as cur:
                cur.execute(f"SET time_zone = '+00:00', sql_mode = '{SQL_MODE}'")
                cur.execute("SELECT VERSION()")
                self.server_version = str(cur.fetchone()[0])
            self.migrate(db)
        except pymysql.MySQLError as exc:
            _close_quietly(db)
            raise TransientError(f"{self.where()}: {error_text(exc)}") from None
        except BaseException:
            _close_quietly(db)
            raise
        return db

    def _connect_error(self, exc: BaseException) -> str:
        code, text = error_code(exc), error_text(exc)
        if code == ACCESS_DENIED:
            return f"{text}: check the user and the password (password_file=, $VAR)"
        if code == NO_SUCH_DATABASE:
            database = self.connect_args["database"]
            return (
                f"{text}: create it (CREATE DATABASE `{database}` CHARACTER SET utf8mb4)"
                " or fix the database in the URI"
            )
        if code == DB_ACCESS_DENIED:  # what a user without global privileges gets for both
            database = self.connect_args["database"]
            return (
                f"{text}: the database does not exist or the user may not use it"
                f" (CREATE DATABASE `{database}` CHARACTER SET utf8mb4;"
                f" GRANT SELECT, INSERT, UPDATE, CREATE ON `{database}`.* TO the user)"
            )
        if code == 2026:  # CR_SSL_CONNECTION_ERROR
            return f"{text}: tls={self.tls}, but no TLS connection could be made"
        return text

    def migrate(self, db: Any) -> int:
        """Bring ``table`` to SCHEMA_VERSION; return the version found. Idempotent."""
        found = self._version(db)
        if found >= SCHEMA_VERSION:
            if found > SCHEMA_VERSION:
                log.warning(
                    "Sink %s: table %s has schema version %d, newer than this shipper's %d;"
                    " writing the columns it knows.",
                    self.scheme, self.table, found, SCHEMA_VERSION,
                )  # fmt: skip
            return found
        lock = f"kes.{self.table}"  # MySQL: lock names of at most 64 characters
        with db.cursor() as cur:
            cur.execute("SELECT GET_LOCK(%s, 60)", (lock,))
            if cur.fetchone()[0] != 1:
                raise TransientError(f"another migration of {self.table} holds the lock {lock}")
            try:
                cur.execute(VERSION_DDL)
                found = self._version(db)
                if found == 0:
                    self._check_not_foreign(cur)
                for version in range(found, SCHEMA_VERSION):
                    for statement in MIGRATIONS[version]:
                        cur.execute(statement.format(table=self.table))
                    cur.execute(
                        f"INSERT INTO `{VERSION_TABLE}` (`table_name`, `version`, `migrated_at`)"
                        " VALUES (%s, %s, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE"
                        " `version` = VALUES(`version`), `migrated_at` = VALUES(`migrated_at`)",
                        (self.table, version + 1),
                    )
                    db.commit()
                    log.info(
                        "Sink %s: table %s migrated to schema version %d.",
                        self.scheme, self.table, version + 1,
                    )  # fmt: skip
            finally:
                cur.execute("SELECT RELEASE_LOCK(%s)", (lock,))
                cur.fetchall()
        return found

    def _version(self, db: Any) -> int:
        import pymysql

        try:
            with db.cursor() as cur:
                cur.execute(
                    f"SELECT `version` FROM `{VERSION_TABLE}` WHERE `table_name` = %s",
                    (self.table,),
                )
                row = cur.fetchone()
        except pymysql.MySQLError as exc:
            if error_code(exc) == NO_SUCH_TABLE:
                return 0
            raise
        db.commit()
        return int(row[0]) if row else 0

    def _check_not_foreign(self, cur: Any) -> None:
        """Tables of our names without our version row: ours if they have our columns (a crash
        between CREATE and the version row), else someone else's (kube-eventer's kube_event)."""
        for table, columns in (
            (self.table, COLUMNS),
            (f"{self.table}_occurrence", OCCURRENCE_COLUMNS),
        ):
            cur.execute(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS"
                " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
                (table,),
            )
            existing = {str(row[0]).lower() for row in cur.fetchall()}
            if existing and not set(columns) <= existing:
                raise TransientError(
                    f"table {table} exists but was not made by kube-event-shipper (kube-eventer's"
                    f" own?); give another table=... or rename it"
                )

    def where(self) -> str:
        args = self.connect_args
        address = args.get("unix_socket") or f"{args['host']}:{args['port']}"
        return f"{args['user']}@{address}/{args['database']}"

    def open(self) -> None:
        if self.db is None:
            self.db = self.connect()
            self._used = time.monotonic()
        log.info(
            "Sink %s: %s at %s, table %s and %s_occurrence (schema version %d).",
            self.scheme, self.server_version, self.where(), self.table, self.table, SCHEMA_VERSION,
        )  # fmt: skip

    def _connection(self) -> Any:
        if self.db is not None and time.monotonic() - self._used > PING_AFTER:
            try:  # the server may have closed an idle connection (wait_timeout)
                self.db.ping(reconnect=False)
            except Exception:
                self._drop()
        if self.db is None:
            self.db = self.connect()
        self._used = time.monotonic()
        return self.db

    def _drop(self) -> None:
        if self.db is not None:
            _close_quietly(self.db)
            self.db = None

    # -- writing

    def rows(self, events: Sequence[Event]) -> tuple[list[bytes], list[bytes]]:
        """Each event's row and occurrence row, as SQL value lists."""
        shipped_at = sql_time(utc_now())
        cluster = self.cluster
        rows, occurrences = [], []
        for e in events:
            last_seen = sql_time(e.last_timestamp)
            rows.append(values((
                e.uid, e.resource_version, cluster, e.object_namespace or "", e.object_kind or "",
                e.object_name or "", e.object_uid, e.object_api_version, e.object_field_path,
                e.type, e.reason, e.message, e.action, e.reporting_controller,
                e.reporting_instance, e.source_component, e.source_host, e.name, e.namespace,
                int(e.count), sql_time(e.first_timestamp), last_seen, shipped_at,
            )))  # fmt: skip
            occurrences.append(
                values((e.uid, e.resource_version, int(e.count), last_seen, shipped_at))
            )
        return rows, occurrences

    def write(self, events: Sequence[Event]) -> Sequence[Rejected]:
        import pymysql

        rows, occurrences = self.rows(events)
        try:
            self._transaction(rows, occurrences)
            return []
        except pymysql.MySQLError as exc:
            if error_code(exc) not in ROW_ERRORS:
                raise self._transient(exc) from None
            if len(events) == 1:
                return [Rejected(0, self._refused(exc))]
            log.info(
                "Sink %s: the server refused a row of a batch of %d (%s); writing them one by one.",
                self.scheme, len(events), error_text(exc),
            )  # fmt: skip
        rejected = []
        for index in range(len(events)):
            try:
                self._transaction(rows[index : index + 1], occurrences[index : index + 1])
            except pymysql.MySQLError as exc:
                if error_code(exc) not in ROW_ERRORS:
                    raise self._transient(exc) from None
                rejected.append(Rejected(index, self._refused(exc)))
        return rejected

    def _transaction(self, rows: list[bytes], occurrences: list[bytes]) -> None:
        """One transaction: the rows' upsert, then their occurrences."""
        db = self._connection()
        try:
            with db.cursor() as cur:
                for statement in [
                    *statements(self._upsert[0], rows, self._upsert[1]),
                    *statements(self._occurrence[0], occurrences, self._occurrence[1]),
                ]:
                    cur.execute(statement)
            db.commit()
        except BaseException:
            try:
                db.rollback()
            except Exception:
                self._drop()
            raise

    def _refused(self, exc: BaseException) -> str:
        if error_code(exc) == 1153:  # the server closes the connection after this one
            self._drop()
        return f"MySQL refused the row: {error_text(exc)}"

    def _transient(self, exc: BaseException) -> TransientError:
        """Any other failure: reconnect on the next write (the connection may be gone, the table
        dropped, a lock timed out; reconnecting costs one handshake) and retry the batch."""
        self._drop()
        return TransientError(f"{self.where()}: {error_text(exc)}")

    def close(self) -> None:
        self._drop()

    def describe(self) -> str:
        return f"mysql {self.where()} table={self.table}"


def _close_quietly(db: Any) -> None:
    try:
        db.close()
    except Exception:
        with contextlib.suppress(Exception):
            db._force_close()

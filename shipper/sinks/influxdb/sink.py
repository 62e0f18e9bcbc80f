"""``influxdb:http://HOST:8086?db=k8s``: InfluxDB 1.8+, 2.x and 3.x, one point per event version.

URI (kube-eventer's parameters are accepted as written)::

    influxdb:http://influxdb.monitoring:8086                                  (1.8, no auth, db k8s)
    influxdb:http://influxdb:8086?user=shipper&pw_file=/secrets/pw&db=k8s&withfields=true
    influxdb:http://influxdb:8086?db=k8s&retention_policy=two_weeks&cluster_name=prod-eu
    influxdb:https://influx.example.com:8086?token=$INFLUX_TOKEN&org=ops&bucket=kube-events
    influxdb:https://eu-central-1-1.aws.cloud2.influxdata.com?token_file=/s/token&org=ops&bucket=k8s
    influxdb:http://influxdb3:8181?token=$INFLUX_TOKEN&bucket=kube_events     (3.x: bucket = database)

Every server is written through the v2 write API (``POST /api/v2/write``, the
``influxdb-client`` package's synchronous write): InfluxDB 1.8+ serves it with bucket
``db/retention_policy`` and token ``user:pw``, 2.x natively, 3.x with bucket = database. One
batch of the pipeline is one HTTP write (``batch_size`` points; the client's own background
batching is not used). ``user``/``pw`` are for 1.x (sent as the token ``user:pw``); ``token`` is
for 2.x and 3.x (and 1.8, as ``user:pw``); credentials in the URL (``http://u:p@host``) count as
``user``/``pw``. kube-eventer defaulted to ``root``/``root``; here no credentials are sent unless
given.

Schema: measurement ``kubernetes_events`` (``measurement=``). One point per event version
(every count update is a new point). Tags, all of bounded cardinality (``tags=`` chooses among
them; the default is the first six):

- ``cluster``: ``cluster_name``, else ``--cluster-name``, else ``default`` (kube-eventer's)
- ``namespace``: the involved object's (absent for cluster-scoped objects such as Nodes)
- ``kind``: the involved object's kind; ``reason``; ``type`` (Normal, Warning)
- ``component``: the reporting controller, else the source component (``kubelet``, ...)
- ``host`` (the source host, a node name) and ``action``: optional

Object names, uids, messages and counts are fields, never tags: one series per pod or per event
would grow the index without end. A candidate tag left out of ``tags=`` becomes a string field.

Fields with ``withfields=true``: ``count`` (integer), ``message``, ``event_name``, ``uid``,
``resource_version``, ``object_name``, ``object_uid``, ``object_api_version``,
``object_field_path``, ``first_occurrence`` and ``last_occurrence`` (RFC 3339 UTC strings),
``reporting_instance``, and every candidate tag that ``tags=`` leaves out (by default ``host``
and ``action``), all strings; a field whose value is empty is left out, ``message`` never.
With ``withfields=false`` (kube-eventer's default, and ours): ``value``, the whole event as the
JSON document every JSON store gets (as kube-eventer's ``value``, which held the Event's JSON),
plus ``count`` (integer), which kube-eventer did not write and which lets InfluxQL count events
without parsing JSON. The shipped Grafana dashboards (``grafana/``) count ``count`` and so
work with either; their warnings table shows ``message`` and ``object_name`` with
``withfields=true``, the JSON ``value`` with ``withfields=false``.

Point time: the occurrence time (``series.lastObservedTime``, else ``lastTimestamp``, else
``eventTime``), at nanosecond precision, plus a stable offset so that two events of one series
in one second are two points while a replay of one version overwrites itself. The offset is a
hash of (uid, count): where the occurrence time has a fraction (``eventTime`` and series times
are microseconds), the time is exact to the microsecond and its last three digits (the
nanoseconds) are the hash; where it is a whole second (``lastTimestamp`` of core/v1 Events is),
the time is exact to the second and its fraction is the hash (0-999,999,999 ns). Two versions
of one series collide only with the same time and the same hash: about 1 in 1,000,000,000 for
two events in one second, 1 in 1,000 for two in one microsecond.

Guarantee: each event version once. A version is the point (series, time), and a replay
(restart, 410 re-list, ``--start=all``) writes it again with the same tags and the same time,
which InfluxDB takes as an overwrite, not a second point. A metadata-only update (same count,
same time) overwrites its version's point too. What can make a second point: changing
``cluster_name``, ``tags``, ``measurement`` or the database between two runs (the replay then
lands in another series), or a hash collision (above).

Errors: 401/403 (credentials, privileges) are retried with backoff, forever, and said in one line;
a database that does not exist (404) is created on 1.x with ``CREATE DATABASE`` where the user may
(``create_database=true``, as kube-eventer does), else said in one line (a 2.x/3.x bucket must
exist); points the server refuses (400/422: a field type conflict, points beyond the retention
policy) are found by halving the batch and dead-lettered one by one, the rest of the batch lands
(the server keeps the good points of a partial write, and re-sending them overwrites them); 413
halves the batch; 429, 5xx, timeouts and refused connections are retried with backoff, forever.

Line protocol is built here (``line()``, with ``shipper/sinks/influxdb/line.py``), not with the
client's ``Point``: six to seven times
cheaper per event (``bench/influxdb.py``), with the escaping of the 1.x/2.x parser. Tag values
escape ``,`` ``=`` and space; a backslash before anything else is literal, so it is left as it
is; a tag value's trailing backslashes are dropped (the line protocol cannot carry them) and a
newline in one becomes ``\\n``. String fields escape ``\\`` and ``"`` (and may hold newlines).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from shipper.event import Event
from shipper.sinks.base import Rejected, Sink, TransientError
from shipper.sinks.dimensions import UNBOUNDED
from shipper.sinks.influxdb.line import (
    DEFAULT_CLUSTER,
    DEFAULT_DB,
    DEFAULT_TAGS,
    KEY_ESCAPES,
    MEASUREMENT,
    MEASUREMENT_ESCAPES,
    STRING_FIELDS,
    TAG_SOURCES,
    escape_string,
    escape_tag,
    point_time,
)
from shipper.spec import ClusterName, SinkOptions, Timeout, TLSTrust, check_readable, option
from shipper.tls import TLSFileError, client_context
from shipper.uri import UsageError, split_http_url

log = logging.getLogger(__name__)


def error_text(body: Any) -> str:
    """The server's own words: 1.x ``{"error"}``, 2.x ``{"code","message"}``, 3.x ``{"error",
    "data"}``; short, one line."""
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    text = str(body or "").strip()
    try:
        parsed = orjson.loads(text) if text.startswith("{") else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        message = parsed.get("error") or parsed.get("message") or text
        data = parsed.get("data")
        if isinstance(data, list) and data and isinstance(data[0], dict):  # 3.x line errors
            first = data[0]
            message = f"{message}: line {first.get('line_number')}: {first.get('error_message')}"
        text = str(message)
    return " ".join(text.split())[:500]


def _server_url(text: str) -> tuple[str, str | None, str | None]:
    """``http(s)://[user:pw@]host[:port][/path]`` -> (the URL without userinfo, user, pw)."""
    parts, user, password = split_http_url(
        text, "http://influxdb:8086 or https://influx.example:8086"
    )
    return parts._replace(query="", fragment="").geturl().rstrip("/"), user, password


@dataclass(frozen=True, kw_only=True)
class InfluxDBOptions(SinkOptions, TLSTrust, ClusterName, Timeout):
    db: str | None = option(
        None,
        "Database (1.x; kube-eventer's default k8s); the bucket is db or db/retention_policy.",
        aliases=("database",),
    )
    retention_policy: str | None = option(
        None,
        "Retention policy of db to write to (1.x; default: the database's default policy).",
        aliases=("rp",),
    )
    user: str | None = option(None, "1.x user (sent as the token user:pw).", aliases=("username",))
    pw: str | None = option(None, "1.x password.", secret=True, aliases=("password",))
    token: str | None = option(None, "API token (2.x, 3.x; 1.8 also takes user:pw).", secret=True)
    org: str | None = option(None, "Organization (2.x; ignored by 1.8 and 3.x).")
    bucket: str | None = option(
        None, "Bucket (2.x) or database (3.x); instead of db/retention_policy."
    )
    measurement: str = option(MEASUREMENT, "Measurement name.")
    tags: list[str] = option(
        list(DEFAULT_TAGS),
        f"Tags, of {', '.join(TAG_SOURCES)} (bounded cardinality); the others become fields.",
    )
    withfields: bool = option(
        False,
        "true: the event's own fields (message, object_name, uid, ...); false: kube-eventer's value field (the event as JSON) and count.",
    )
    create_database: bool = option(
        True,
        "1.x: CREATE DATABASE db at start and when a write finds it missing (needs admin; a user without it is told once).",
    )
    gzip: bool = option(False, "Compress writes (saves bandwidth, costs client CPU).")


class InfluxDBSink(Sink):
    Options = InfluxDBOptions
    options: InfluxDBOptions
    usage = "influxdb:http(s)://HOST:8086"
    example = "influxdb:http://influxdb:8086?db=k8s&user=shipper&pw_file=/secrets/influx"
    scheme = "influxdb"
    summary = "InfluxDB 1.8+, 2.x, 3.x: a point per event version through the v2 write API"
    guarantee = (
        "each event version once: one point per (uid, count) at its occurrence time (plus a"
        " stable sub-second hash), so a replay overwrites its own point; a second copy only if"
        " cluster_name, tags or measurement change between runs"
    )
    default_batch_size = 1000
    default_flush_interval = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        where = f"--sink {self.scheme}"
        options = self.options
        if not self.uri.rest:
            raise UsageError(f"{where}: no server given; expected {self.scheme}:http://HOST:8086")
        try:
            self.url, url_user, url_pw = _server_url(self.uri.rest)
        except ValueError as exc:
            raise UsageError(f"{where}: server {self.uri.rest!r}: {exc}") from None
        if url_user is not None and (options.user or options.pw is not None):
            raise UsageError(f"{where}: the user is given twice (in the URL and as user=/pw=)")
        self.user = options.user or url_user
        self.password = options.pw if options.pw is not None else url_pw
        if self.password is not None and not self.user:
            raise UsageError(f"{where}: parameter pw: given without user=")
        if options.token and self.user:
            raise UsageError(f"{where}: give either token (2.x, 3.x) or user/pw (1.x), not both")
        if options.bucket and (options.db or options.retention_policy):
            raise UsageError(
                f"{where}: give either bucket (2.x, 3.x) or db/retention_policy (1.x), not both"
            )
        for name in ("db", "retention_policy", "bucket", "measurement"):
            if getattr(options, name) is not None and not getattr(options, name).strip():
                raise UsageError(f"{where}: parameter {name}='': expected a name")
        self.db = options.db or DEFAULT_DB
        self.bucket = options.bucket or (
            f"{self.db}/{options.retention_policy}" if options.retention_policy else self.db
        )
        self.org = options.org or "-"  # 1.8 and 3.x ignore it; the client wants one
        self.tags = self._parse_tags(options.tags, where)
        check_readable(options, where, "ca_file")
        try:  # made once, here: a CA file that cannot be used is a usage error at start
            self._ssl = (
                client_context(options.ca_file, insecure=options.insecure)
                if self.url.startswith("https:")
                else None
            )
        except TLSFileError as exc:
            raise UsageError(f"{where}: {exc}") from None
        self.cluster = options.cluster_name or self.ctx.cluster or DEFAULT_CLUSTER
        self.with_fields = options.withfields
        self._measurement = options.measurement.translate(MEASUREMENT_ESCAPES)
        self._tag_getters = [
            (f",{escape_tag(name)}=", self._tag_getter(name)) for name in sorted(self.tags)
        ]
        self._field_tags = [
            (f",{name.translate(KEY_ESCAPES)}=", self._tag_getter(name))
            for name in TAG_SOURCES
            if name not in self.tags
        ]
        self._escaped: dict[str, str] = {}
        self._client: Any = None
        self._write_api: Any = None
        self.version = "unknown"
        self._v1 = False
        self._may_create = options.create_database and not options.bucket

    @staticmethod
    def _parse_tags(names: list[str], where: str) -> list[str]:
        chosen: list[str] = []
        for name in names:
            if name in UNBOUNDED:
                raise UsageError(
                    f"{where}: parameter tags: {name!r} is unbounded (a series per object or"
                    f" event); it is a field. Tags may be: {', '.join(TAG_SOURCES)}"
                )
            if name not in TAG_SOURCES:
                raise UsageError(
                    f"{where}: parameter tags: unknown tag {name!r}; expected some of"
                    f" {', '.join(TAG_SOURCES)}"
                )
            if name not in chosen:
                chosen.append(name)
        return chosen

    def _tag_getter(self, name: str) -> Callable[[Event], str | None]:
        if name == "cluster":
            cluster = self.cluster
            return lambda event: cluster
        return TAG_SOURCES[name]

    # -- connecting

    def make_client(self) -> Any:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        token = self.options.token
        if token is None and self.user:
            token = f"{self.user}:{self.password or ''}"
        kwargs: dict[str, Any] = dict(
            url=self.url,
            token=token or "",
            org=self.org,
            timeout=int(self.options.timeout * 1000),
            enable_gzip=self.options.gzip,
            retries=False,  # the pipeline retries, with backoff, and counts
            verify_ssl=not self.options.insecure,
        )
        if self._ssl is not None:
            kwargs["ssl_context"] = self._ssl
        if self.options.insecure and self.url.startswith("https:"):
            warnings.filterwarnings("ignore", message="Unverified HTTPS request")
            log.warning("Sink %s: insecure=true, the certificate is not verified.", self.scheme)
        client = InfluxDBClient(**kwargs)
        self._write_api = client.write_api(write_options=SYNCHRONOUS)
        return client

    def _request(self, method: str, path: str, **params: str) -> tuple[int, Any, str]:
        """(status, headers, body text) of a request other than a write, with our credentials."""
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError

        try:
            response = self._client.api_client.call_api(
                path, method, query_params=list(params.items()), _preload_content=False,
                _return_http_data_only=True,
            )  # fmt: skip
            return response.status, response.headers, response.data.decode("utf-8", "replace")
        except ApiException as exc:
            if exc.status == 0:  # the client's own wrapping of a TLS failure
                raise TransientError(f"{method} {self.url}{path}: {_tls_error(exc)}") from None
            return exc.status, exc.headers or {}, error_text(exc.body)
        except (HTTPError, OSError) as exc:
            raise TransientError(f"{method} {self.url}{path}: {_connection_error(exc)}") from None

    def open(self) -> None:
        if self._client is None:
            self._client = self.make_client()
        status, headers, body = self._request("GET", "/ping")
        if status in (401, 403):
            raise TransientError(self._auth_error(status, error_text(body)))
        if status >= 300:
            raise TransientError(
                f"GET {self.url}/ping: HTTP {status} {error_text(body)}: is this InfluxDB?"
            )
        self.version = headers.get("X-Influxdb-Version") or "unknown"
        if self.version.startswith("1."):  # 1.8's version has no "v"; 2.x says v2.x.y
            self._v1 = True
            major_minor = tuple(int(p) for p in self.version.split(".")[:2] if p.isdigit())
            if major_minor < (1, 8):
                raise TransientError(
                    f"InfluxDB {self.version} has no /api/v2/write; 1.8 or newer is needed"
                )
            if self._may_create:
                self.create_database()
            else:  # any user may list the databases it can use: a check of the credentials
                status, _, body = self._request("POST", "/query", q="SHOW DATABASES")
                if status in (401, 403):
                    raise TransientError(self._auth_error(status, error_text(body)))
        log.info(
            "Sink %s: InfluxDB %s at %s, bucket %s, measurement %s, withfields=%s, tags %s.",
            self.scheme, self.version, self.url, self.bucket, self.options.measurement,
            str(self.with_fields).lower(), ",".join(self.tags),
        )  # fmt: skip

    def create_database(self) -> bool:
        """1.x: ``CREATE DATABASE`` (a no-op where it exists). False when the user may not (not
        an admin): the database must then exist already."""
        statement = f'CREATE DATABASE "{_influxql_ident(self.db)}"'
        status, _, body = self._request("POST", "/query", q=statement)
        if status in (401,):
            raise TransientError(self._auth_error(status, error_text(body)))
        if status == 403:
            if self._may_create:
                log.info(
                    "Sink %s: %s refused (%s); database %s must exist.",
                    self.scheme, statement, error_text(body), self.db,
                )  # fmt: skip
            self._may_create = False
            return False
        if status >= 300:
            raise TransientError(f"{statement}: HTTP {status} {error_text(body)}")
        try:
            results = orjson.loads(body).get("results") or [{}]
        except (orjson.JSONDecodeError, AttributeError):
            results = [{}]
        if results[0].get("error"):
            raise TransientError(f"{statement}: {results[0]['error']}")
        return True

    def _auth_error(self, status: int, message: str) -> str:
        if self.options.token:
            hint = f"check token (and that it may write to bucket {self.bucket})"
        elif self.user:
            hint = f"check user/pw (and {self.user}'s WRITE privilege on database {self.db})"
        else:
            hint = "the server wants credentials: give user/pw (1.x) or token (2.x, 3.x)"
        return f"HTTP {status} {message}: {hint}"

    # -- writing

    def write(self, events: Sequence[Event]) -> Sequence[Rejected]:
        if self._client is None:
            self.open()
        lines = [self.line(event) for event in events]
        return self._send(lines, 0, created=False)

    def _send(self, lines: list[str], offset: int, *, created: bool) -> list[Rejected]:
        status, message = self._post("\n".join(lines).encode())
        if status < 300:
            return []
        if status in (400, 422):  # points refused; the others of a partial write landed
            if len(lines) == 1:
                return [Rejected(offset, f"HTTP {status} {message}")]
            return self._halves(lines, offset)
        if status == 413:
            if len(lines) == 1:
                return [Rejected(offset, f"HTTP 413 {message}: the point is too large")]
            return self._halves(lines, offset)
        if status in (401, 403):
            raise TransientError(self._auth_error(status, message))
        if status == 404 and self._v1 and "database not found" in message:
            if self._may_create and not created and self.create_database():
                log.info("Sink %s: created database %s.", self.scheme, self.db)
                return self._send(lines, offset, created=True)
            raise TransientError(
                f'HTTP 404 {message}: create it (CREATE DATABASE "{self.db}") or let the'
                " shipper's user create it (an admin, create_database=true)"
            )
        if status == 404:
            raise TransientError(
                f"HTTP 404 {message}: check bucket={self.bucket} and org={self.org}"
                " (a 2.x bucket or 3.x database must exist)"
            )
        if "retention policy not found" in message:
            raise TransientError(
                f"HTTP {status} {message}: create it on {self.db} or fix retention_policy="
            )
        raise TransientError(f"HTTP {status} {message}")

    def _halves(self, lines: list[str], offset: int) -> list[Rejected]:
        half = len(lines) // 2
        return self._send(lines[:half], offset, created=False) + self._send(
            lines[half:], offset + half, created=False
        )

    def _post(self, body: bytes) -> tuple[int, str]:
        """One write; (status, the server's message). Connection failures: TransientError."""
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError

        try:
            self._write_api.write(bucket=self.bucket, org=self.org, record=body)
        except ApiException as exc:
            if exc.status == 0:  # the client's own wrapping of a TLS failure
                raise TransientError(f"POST {self.url}/api/v2/write: {_tls_error(exc)}") from None
            return exc.status, error_text(exc.body)
        except (HTTPError, OSError) as exc:
            raise TransientError(
                f"POST {self.url}/api/v2/write: {_connection_error(exc)}"
            ) from None
        return 204, ""

    def line(self, event: Event) -> str:
        """The event's point in line protocol."""
        escaped = self._escaped
        parts = [self._measurement]
        for key, getter in self._tag_getters:
            value = getter(event)
            if value:
                tag = escaped.get(value)
                if tag is None:
                    if len(escaped) > 50_000:
                        escaped.clear()
                    tag = escaped[value] = escape_tag(value)
                if tag:
                    parts.append(key)
                    parts.append(tag)
        parts.append(f" count={event.count}i")
        if self.with_fields:
            parts.append(",message=")
            parts.append(escape_string(event.message))
            for name, getter in STRING_FIELDS:
                value = getter(event)
                if value:
                    parts.append(f",{name}=")
                    parts.append(escape_string(value))
            for key, getter in self._field_tags:
                value = getter(event)
                if value:
                    parts.append(key)
                    parts.append(escape_string(value))
        else:
            parts.append(",value=")
            parts.append(escape_string(orjson.dumps(self.document(event)).decode()))
        parts.append(f" {point_time(event)}")
        return "".join(parts)

    def document(self, event: Event) -> dict[str, Any]:
        document = event.document()
        document["orchestrator"]["cluster"] = {"name": self.cluster}
        return document

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None
                self._write_api = None

    def describe(self) -> str:
        return f"{self.scheme} {self.url} bucket={self.bucket}"


def _influxql_ident(name: str) -> str:
    """The inside of a double-quoted InfluxQL identifier."""
    return name.replace("\\", "\\\\").replace('"', '\\"')


def _connection_error(exc: BaseException) -> str:
    """urllib3's errors say the host twice and the cause last: keep the cause."""
    reason = getattr(exc, "reason", None)
    text = str(reason if reason is not None else exc)
    return " ".join(text.split(": ", 1)[-1].split())[:300] or type(exc).__name__


def _tls_error(exc: BaseException) -> str:
    """The client wraps a TLS failure as ``ApiException(status=0, reason="SSLError\n<text>")``:
    keep the text, on one line."""
    kind, _, text = str(getattr(exc, "reason", "") or "").partition("\n")
    return " ".join((text or kind).split())[:300] or "TLS error"

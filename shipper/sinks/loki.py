"""``loki:http://loki:3100``: Grafana Loki (and Loki-compatible stores), one log line per event version.

URI::

    loki:http://loki-gateway.monitoring                                   (push to /loki/api/v1/push)
    loki:http://loki:3100?tenant=team-a&cluster_name=prod-eu               (multi-tenant Loki)
    loki:https://logs-prod-eu-west-0.grafana.net?user=123456&password_file=/secrets/loki
    loki:https://loki.example.com?token=$LOKI_TOKEN&ca_file=/etc/ssl/loki-ca.pem
    loki:http://victorialogs:9428/insert/loki/api/v1/push?format=json     (another path: as given)

Config file (a kubernetes-event-exporter ``loki`` receiver loads unchanged)::

    receivers:
      - name: loki
        loki:
          url: http://loki-gateway.monitoring/loki/api/v1/push
          headers:
            X-Scope-OrgID: team-a
          streamLabels:
            source: kubernetes-event-exporter
            team: "{{ index .InvolvedObject.Labels \\"team\\" }}"
          tls:
            caFile: /etc/ssl/loki-ca.pem

What it writes: every event version (each count update too) is one entry, pushed with Loki's
push API (``POST /loki/api/v1/push``): by default the snappy-compressed protobuf
``logproto.PushRequest`` that Promtail and Alloy send; ``format=json`` sends the JSON form
(``{"streams":[{"stream":{...},"values":[["<ns>","<line>"]]}]}``) for servers that only take
that. A URL without a path (or ``/``) gets ``/loki/api/v1/push``; any other path is used as
given (VictoriaLogs: ``/insert/loki/api/v1/push``). One pipeline batch is one request.

Stream labels, all of bounded cardinality (``labels=`` chooses among them; the default is the
first five): ``cluster`` (``cluster_name``, else ``--cluster-name``, else ``default``),
``namespace`` (the involved object's; absent for cluster-scoped objects such as Nodes),
``kind``, ``reason``, ``type`` (Normal, Warning), and optionally ``component`` (the reporting
controller, else the source component), ``host`` (the source host, a node name) and
``action``; plus ``job`` (``kube-event-shipper``; Loki derives ``service_name`` from it) and the
``stream_label=NAME=VALUE`` pairs (the exporter's ``streamLabels``), whose values may be
templates (``{{ .InvolvedObject.Namespace }}``; the original sent them unrendered). A label
whose value comes out empty is left out. Object names, uids and messages are never labels: one
stream per pod would grow Loki's index without end (a template that puts one there is warned
about at start); they are in the line, where LogQL's ``| json`` reads them.

The line: the event as the JSON document every JSON store gets (CONVENTIONS.md), without
``event.created`` (the moment the shipper saw it, which differs on every replay), with
``orchestrator.cluster.name`` set to the cluster label; or what ``layout`` renders. Query it
with ``{cluster="prod", reason="BackOff"} | json | kubernetes_event_involved_object_name="web-1"``.

The entry's timestamp: the occurrence time (``series.lastObservedTime``, else
``lastTimestamp``, else ``eventTime``), at nanosecond precision, plus a stable offset: where the
time is a whole second (core/v1 ``lastTimestamp``), its fraction is a hash of (uid, count)
(0-999,999,999 ns); where it has microseconds (``eventTime``), the last three digits are. So two
events of one stream in one second are two entries, and a replay of a version has the same
timestamp as its first write.

Guarantee: each event version once across graceful restarts and 410s (the checkpoint sends no
version twice) and across a crash, whose last checkpoint interval is sent again: a re-sent
entry has the same stream, timestamp and line, and Loki's ingester drops an entry equal to the
stream's last one or to one still in the stream's head block (the newest ~256 KB of the stream's
lines, ``chunk_block_size``), which recent entries are. ``--start=all`` sends every retained
event again: copies of entries still in their head block are dropped the same way, copies of
older ones (in a busy stream) are stored a second time, so there it is at least once (LogQL can
count distinct ``kubernetes.event.metadata.uid`` + ``count`` from the line); replayed entries
more than half of Loki's ``max_chunk_age`` (1 h by default) behind their stream's newest entry
are refused by Loki ("entry too far behind") and dead-lettered, though the first write of them
landed. What also makes a second entry: changing ``labels``, ``stream_label``, ``job``,
``cluster_name`` or ``layout`` between runs, a layout that renders something that changes (the
time of sending), enrichment labels of the object changing between two runs, or a hash
collision (as for InfluxDB: about 1 in a billion for two events of one stream in one second).

Errors: Loki answers 400 when it refuses entries (older than ``reject_old_samples_max_age``,
too far behind the stream's newest entry, too new, a line too long, bad labels), naming them;
it keeps the rest of the request. Such a batch is halved until each refused entry is alone,
and that entry is dead-lettered with Loki's reason (the accepted ones, re-sent at once, are
normally still in their head block: dropped, above). 413 halves the batch too. 429 (rate limits) and 5xx are retried, after Retry-After
where given; 401/403 (credentials, ``X-Scope-OrgID``) and 404 (the URL's path) are retried
with backoff and said in one line; so are timeouts and refused connections.

Credentials: ``user``/``password`` (basic auth, as Grafana Cloud's user id and API key),
``token`` (``Authorization: Bearer``), or credentials in the URL (``https://user:pw@host``);
``tenant`` sends ``X-Scope-OrgID`` (a multi-tenant Loki refuses requests without it);
``header=NAME=VALUE`` (the exporter's ``headers``, values may be templates) adds any other.
TLS: ``ca_file``, ``cert_file``/``key_file`` (mutual TLS), ``insecure``, ``server_name``.

Why no client library: the push request is three small protobuf messages, encoded here in a few
lines (``encode_push``) rather than through generated code and the protobuf runtime; snappy
comes from ``cramjam`` (the ``loki`` extra; kafka's snappy codec brings it too). Without
cramjam the request is still valid snappy, stored uncompressed.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from shipper.errors import one_line
from shipper.event import Event
from shipper.sinks.base import Rejected, Sink, TransientError
from shipper.sinks.delivery import Outcome, Retry
from shipper.sinks.dimensions import DIMENSIONS, UNBOUNDED
from shipper.sinks.influxdb import point_time
from shipper.sinks.loki_wire import (
    PUSH_PATH,
    encode_push,
    error_text,
    label_string,
    push_url,
    retry_after,
    snappy_block,
)
from shipper.spec import (
    ClientCert,
    ClusterName,
    LayoutOption,
    SinkOptions,
    Timeout,
    TLSTrust,
    option,
)
from shipper.uri import UsageError, choice

log = logging.getLogger(__name__)

DEFAULT_CLUSTER = "default"
DEFAULT_JOB = "kube-event-shipper"


#: label name -> its value for an event (``cluster`` is the sink's own, see LokiSink.__init__)
LABEL_SOURCES = DIMENSIONS
DEFAULT_LABELS = ("cluster", "namespace", "kind", "reason", "type")
#: Template fields that make a stream per object or per event when used in a stream label.
_UNBOUNDED_FIELDS = re.compile(r"\.(InvolvedObject\.(Name|UID)|Name|UID|Message|ResourceVersion)\b")
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# -- options


def _pair(text: str) -> str:
    name, sep, _ = text.partition("=")
    if not sep or not name.strip():
        raise ValueError("expected NAME=VALUE")
    return text


_pair.__name__ = "NAME=VALUE"


def _label_names(text: str) -> list[str]:
    names = [item.strip() for item in text.split(",") if item.strip()]
    for name in names:
        if name in LABEL_SOURCES:
            continue
        if name in UNBOUNDED:
            raise ValueError(
                f"{name!r} is unbounded (a stream per object or event); it is in the line"
            )
        raise ValueError(f"unknown label {name!r}; expected some of {', '.join(LABEL_SOURCES)}")
    return names


_label_names.__name__ = "labels"


@dataclass(frozen=True, kw_only=True)
class LokiOptions(SinkOptions, TLSTrust, ClientCert, ClusterName, Timeout, LayoutOption):
    REST = "url"
    IGNORED = {
        "sentUpdateEvent": "every event version, count updates included, is an entry (the original skipped updates unless true)",
    }
    DEFAULTS = {"timeout": 30.0}

    tenant: str | None = option(
        None,
        "Tenant (X-Scope-OrgID) of a multi-tenant Loki.",
        aliases=("tenant_id", "org_id", "orgid"),
        exporter="tenantID",
    )
    user: str | None = option(
        None,
        "Basic auth user (Grafana Cloud: the numeric user id).",
        aliases=("username",),
        exporter="username",
    )
    password: str | None = option(
        None,
        "Basic auth password (Grafana Cloud: an API token).",
        secret=True,
        aliases=("pw",),
        exporter="password",
    )
    token: str | None = option(
        None,
        "Bearer token (Authorization: Bearer).",
        secret=True,
        aliases=("bearer_token",),
        exporter="bearerToken",
    )
    header: list[str] = option(
        [],
        "An extra request header NAME=VALUE (repeatable); the value may be a template.",
        parse=_pair,
        aliases=("headers",),
        exporter="headers",
    )
    labels: list[str] = option(
        list(DEFAULT_LABELS),
        f"Stream labels, of {', '.join(LABEL_SOURCES)} (bounded cardinality).",
        parse=_label_names,
    )
    stream_label: list[str] = option(
        [],
        "A static stream label NAME=VALUE (repeatable); the value may be a template.",
        parse=_pair,
        aliases=("streamLabels",),
        exporter="streamLabels",
    )
    job: str = option(
        DEFAULT_JOB, "The job label (Loki derives service_name from it); empty: none."
    )
    format: str = option(
        "protobuf",
        "protobuf (snappy-compressed, as Promtail sends) or json.",
        parse=choice("protobuf", "json"),
    )
    server_name: str | None = option(
        None,
        "TLS server name to verify (default: the URL's host).",
        aliases=("serverName",),
        exporter="tls.serverName",
        group="tls",
    )


class LokiSink(Sink):
    accepts_audit = True  # the audit document as it is (a layout is for Events)
    scheme = "loki"
    receiver = "loki"
    summary = "Grafana Loki push API (snappy protobuf or JSON), an entry per event version"
    Options = LokiOptions
    options: LokiOptions
    usage = "loki:http(s)://HOST[:3100][/loki/api/v1/push]"
    example = (
        "loki:http://loki-gateway.monitoring?tenant=ops&user=shipper&password_file=/secrets/loki"
    )
    guarantee = (
        "each event version once across restarts, 410s and crashes: an entry per (uid, count) at"
        " its occurrence time (plus a stable sub-second hash) with the same line every time, and"
        " Loki's ingester drops a re-sent copy of a recent entry (its stream's head block);"
        " --start=all may store copies of older entries (at least once there)"
    )
    default_batch_size = 1000
    default_flush_interval = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.where = f"--sink {self.scheme}"
        o = self.options
        if not self.uri.rest:
            raise UsageError(f"{self.where}: no URL given; expected loki:http://HOST:3100")
        try:
            self.url, url_user, url_password = push_url(self.uri.rest)
        except ValueError as exc:
            raise UsageError(f"{self.where}: URL {self.uri.rest!r}: {exc}") from None
        if url_user is not None and (o.user or o.password is not None):
            raise UsageError(f"{self.where}: the user is given twice (in the URL and as user=)")
        user = o.user or url_user
        password = o.password if o.password is not None else url_password
        if password is not None and not user:
            raise UsageError(f"{self.where}: parameter password: given without user=")
        if o.token and user:
            raise UsageError(f"{self.where}: give either token or user/password, not both")
        self.cluster = o.cluster_name or self.ctx.cluster or DEFAULT_CLUSTER
        self._secrets = [s for s in (password, o.token) if s]
        self.headers: dict[str, str] = {}
        if user:
            basic = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self.headers["Authorization"] = f"Basic {basic}"
        if o.token:
            self.headers["Authorization"] = f"Bearer {o.token}"
        if o.tenant:
            self.headers["X-Scope-OrgID"] = o.tenant
        self.header_ts: list[tuple[str, Any]] = []
        for item in o.header:
            name, _, value = item.partition("=")
            name = name.strip()
            self.headers[name] = value
            if name.lower() in ("authorization", "proxy-authorization"):
                self._secrets += [value, value.partition(" ")[2]]
            if "{{" in value:
                self.header_ts.append((name, self._template(f"header {name}", value)))
        self.tenant = self.headers.get("X-Scope-OrgID") or next(
            (v for k, v in self.headers.items() if k.lower() == "x-scope-orgid"), None
        )
        self.label_getters = [
            (name, (lambda _e: self.cluster) if name == "cluster" else LABEL_SOURCES[name])
            for name in dict.fromkeys(o.labels)
        ]
        self.static_labels: dict[str, str] = {"job": o.job} if o.job else {}
        self.label_ts: list[tuple[str, Any]] = []
        for item in o.stream_label:
            name, _, value = item.partition("=")
            name = name.strip()
            if not _LABEL_NAME.fullmatch(name):
                raise UsageError(
                    f"{self.where}: parameter stream_label: {name!r} is not a label name"
                    " (letters, digits and _, not starting with a digit)"
                )
            if "{{" in value:
                self.label_ts.append((name, self._template(f"stream_label {name}", value)))
                if _UNBOUNDED_FIELDS.search(value):
                    log.warning(
                        "Sink %s: stream label %s=%s makes a stream per object or event; Loki"
                        " indexes every stream: keep such values in the line.",
                        self.scheme, name, value,
                    )  # fmt: skip
            elif value:
                self.static_labels[name] = value
        self._label_cache: dict[tuple[str | None, ...], str] = {}
        self._label_dicts: dict[str, dict[str, str]] = {}  # label string -> labels (json)
        self.json = o.format == "json"
        self.tls_context = None
        if self.url.startswith("https:"):
            from shipper.tls import TLSFileError, client_context

            try:
                self.tls_context = client_context(o.ca_file, o.cert_file, o.key_file, o.insecure)
            except TLSFileError as exc:
                raise UsageError(f"{self.where}: {exc}") from None
        self._pool: Any = None

    def _template(self, param: str, text: str) -> Any:
        from shipper.templates import TemplateError, check_template, compile_template

        try:
            compiled = compile_template(text, name=f"{self.where}: parameter {param}")
            check_template(compiled)
        except TemplateError as exc:
            raise UsageError(str(exc)) from None
        return compiled

    # -- connection

    def _make_pool(self) -> Any:
        import urllib3

        kwargs: dict[str, Any] = dict(
            num_pools=2, maxsize=2, retries=False, timeout=urllib3.Timeout(self.options.timeout)
        )
        if self.tls_context is not None:
            kwargs["ssl_context"] = self.tls_context
            if self.options.server_name:
                kwargs["server_hostname"] = self.options.server_name
            if self.options.insecure:
                urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        return urllib3.PoolManager(**kwargs)

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        import urllib3

        if self._pool is None:
            self._pool = self._make_pool()
        try:
            reply = self._pool.request("POST", self.url, body=body, headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            raise TransientError(f"POST {self.url}: {self._scrub(one_line(exc))}") from None
        except OSError as exc:
            raise TransientError(f"POST {self.url}: {self._scrub(str(exc))}") from None
        return reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.data

    def _scrub(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text

    def open(self) -> None:
        """An empty push: checks the URL, the credentials and the tenant, writes nothing."""
        headers = {**self.headers, "Content-Type": "application/json"}
        status, _, data = self._post(b'{"streams":[]}', headers)
        if status in (401, 403, 404) or status >= 500:
            raise TransientError(self._status_error(status, data))
        log.info(
            "Sink %s: %s (%s), tenant %s, labels %s.",
            self.scheme, self.url, "json" if self.json else "snappy protobuf",
            self.tenant or "-", ",".join(self.label_names()),
        )  # fmt: skip

    def label_names(self) -> list[str]:
        names = [name for name, _ in self.label_getters]
        return names + list(self.static_labels) + [name for name, _ in self.label_ts]

    def _status_error(self, status: int, data: bytes) -> str:
        text = self._scrub(error_text(data))
        if status == 401 and "no org id" in text:
            hint = "a multi-tenant Loki: give tenant= (X-Scope-OrgID)"
        elif status in (401, 403):
            if "Authorization" in self.headers:
                hint = "check user/password or token (and the tenant's access)"
            else:
                hint = "the server wants credentials: give user/password or token"
        elif status == 404:
            hint = f"check the URL's path (Loki's push API is {PUSH_PATH})"
        else:
            hint = ""
        return f"HTTP {status} {text}" + (f": {hint}" if hint else "")

    # -- writing

    def write(self, events: Sequence[Event]) -> Outcome:
        entries: list[tuple[int, str, int, bytes]] = []  # (index, labels, ns, line)
        rejected: list[Rejected] = []
        for index, event in enumerate(events):
            try:
                labels, line = self.stream_of(event), self.line(event)
            except _RenderError as exc:
                rejected.append(Rejected(index, str(exc)))
                continue
            entries.append((index, labels, point_time(event), line))
        if not entries:
            return Outcome(rejected=tuple(rejected))
        headers = self._headers(events[entries[0][0]])
        done = self._send(entries, headers, first=True)
        return Outcome(rejected=(*rejected, *done.rejected), retry=done.retry)

    def _send(
        self, entries: list[tuple[int, str, int, bytes]], headers: dict[str, str], *, first: bool
    ) -> Outcome:
        try:
            status, reply_headers, data = self._post(self.body(entries), headers)
        except TransientError as exc:
            if first:
                raise
            return Outcome(retry=Outcome.retry_all((e[0] for e in entries), str(exc)))
        if status < 300:
            return Outcome()
        if status in (400, 413) and len(entries) == 1:
            reason = f"HTTP {status} {self._scrub(error_text(data))}"
            return Outcome(rejected=(Rejected(entries[0][0], reason),))
        if status in (400, 413):  # some entries refused (the others landed): find them
            half = len(entries) // 2
            a = self._send(entries[:half], headers, first=False)
            b = self._send(entries[half:], headers, first=False)
            return Outcome(rejected=a.rejected + b.rejected, retry=a.retry + b.retry)
        message = self._status_error(status, data)
        after = retry_after(reply_headers.get("retry-after"))
        if first:
            error = TransientError(message)
            error.retry_after = after  # type: ignore[attr-defined]
            raise error
        return Outcome(retry=tuple(Retry(e[0], message, after) for e in entries))

    def body(self, entries: Sequence[tuple[int, str, int, bytes]]) -> bytes:
        """The request body for ``entries`` (index, label string, ns, line)."""
        streams: dict[str, list[tuple[int, bytes]]] = {}
        for _, labels, ns, line in entries:
            streams.setdefault(labels, []).append((ns, line))
        for values in streams.values():
            values.sort(key=lambda value: value[0])
        if self.json:
            return orjson.dumps(
                {
                    "streams": [
                        {
                            "stream": self._label_dicts[labels],
                            "values": [[str(ns), line.decode()] for ns, line in values],
                        }
                        for labels, values in streams.items()
                    ]
                }
            )
        return snappy_block(encode_push(list(streams.items())))

    def _headers(self, event: Event) -> dict[str, str]:
        content_type = "application/json" if self.json else "application/x-protobuf"
        headers = {**self.headers, "Content-Type": content_type}
        if self.header_ts:
            from shipper.templates import TemplateError, event_context

            data = event_context(event, self.cluster)
            for name, template in self.header_ts:
                # the original sends the raw value when the template fails
                with contextlib.suppress(TemplateError):
                    headers[name] = template.render(data)
        return headers

    def stream_of(self, event: Event) -> str:
        """The event's stream: its label string (``{cluster="prod", kind="Pod", ...}``)."""
        values = tuple(getter(event) for _, getter in self.label_getters)
        rendered: tuple[str | None, ...] = ()
        if self.label_ts:
            from shipper.templates import TemplateError, event_context

            data = event_context(event, self.cluster)
            try:
                rendered = tuple(template.render(data) for _, template in self.label_ts)
            except TemplateError as exc:
                raise _RenderError(str(exc)) from None
        key = values + rendered
        text = self._label_cache.get(key)
        if text is None:
            labels = {}  # the built-in labels, then the user's (theirs win a shared name)
            for (name, _), value in zip(self.label_getters, values, strict=True):
                if value:
                    labels[name] = value
            labels.update(self.static_labels)
            for (name, _), value in zip(self.label_ts, rendered, strict=True):
                if value:
                    labels[name] = value
            if not labels:
                labels["job"] = DEFAULT_JOB  # Loki refuses a stream without labels
            if len(self._label_cache) > 50_000:
                self._label_cache.clear()
                self._label_dicts.clear()
            text = self._label_cache[key] = label_string(labels)
            self._label_dicts[text] = labels
        return text

    def line(self, event: Event) -> bytes:
        """The entry's line: the layout's rendering, else the event document (stable: no
        ``event.created``)."""
        layout = self.options.layout
        if layout is not None:
            from shipper.templates import TemplateError

            try:
                return layout.encode(event, self.cluster)
            except TemplateError as exc:
                raise _RenderError(str(exc)) from None
        document = event.document()
        document["event"].pop("created", None)
        document["orchestrator"]["cluster"] = {"name": self.cluster}
        return orjson.dumps(document)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.clear()
            self._pool = None

    def describe(self) -> str:
        parts = urlsplit(self.url)
        return f"{self.scheme} {parts.scheme}://{parts.netloc}" + (
            f" tenant={self.tenant}" if self.tenant else ""
        )


class _RenderError(Exception):
    """A template (layout, stream label) failed on this event."""

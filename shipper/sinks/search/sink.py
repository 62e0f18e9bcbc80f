"""``elasticsearch:http(s)://HOST:9200?index=kube-events`` (and ``opensearch:``): bulk indexing.

URI (kube-eventer's parameters are accepted as written: ``esUserName`` for ``username``, ...)::

    elasticsearch:https://es:9200?index=kube-events&esUserName=shipper&esUserSecret_file=/s/pw
    elasticsearch:?nodes=http://es-0:9200&nodes=http://es-1:9200&mode=dated&api_key=$ES_API_KEY
    opensearch:https://search-x.eu-west-1.es.amazonaws.com?aws_region=eu-west-1   (SigV4)

Where documents go (``mode``):

- ``data_stream`` (the default wherever the server has data streams: Elasticsearch >= 7.9 with
  its default distribution, OpenSearch >= 1.0): op ``create`` into the data stream ``index``;
  the server rolls it over under the lifecycle policy.
- ``dated``: op ``create`` into ``INDEX-YYYY.MM.DD`` by the event's ``@timestamp`` (UTC).
- ``alias``: op ``create`` into the write index behind the alias ``index``; ``setup`` makes the
  first index ``INDEX-000001`` and the policy rolls it over.

Ids and count updates: every event *version* is one document, ``_id = <event uid>.<count>``.
A count update (the same Event, count 3 -> 4) is a new document that supersedes the previous
one; a replay of a version already written (restart, 410 re-list) hits the same ``_id`` and the
server answers 409, which counts as shipped. So documents are append-only, which data streams
require, and every ``create`` is idempotent. The shipped dashboards count events as the unique
count of ``kubernetes.event.metadata.uid``, so an event updated ten times counts once, and
``max(kubernetes.event.count)`` is its number of occurrences.

Guarantee: each event version once per index. A replay that straddles a rollover (a crash
between a write and the next checkpoint, then a rollover, then the restart) can leave a second
copy in the newer backing index; unique counts on the uid still count it once. ``dated`` mode is
exact (a version always maps to the same day).

A ``layout`` (kubernetes-event-exporter's) makes each document the layout rendered for the
event, as the original indexes it (de-dotted only with ``de_dot=true``). The event document's
mapping is then not installed (settings and lifecycle are), ``mode=auto`` means dated indices (a
data stream needs an ``@timestamp`` a layout need not give) and the ``_id`` stays
``<uid>.<count>``; an event the layout fails on is dead-lettered. ``index_format`` without a date
in braces writes to the one index it names; ``cloud_id`` (``cloudID``) gives the server.

Audit documents: with an audit source (``--source=audit:``, docs/audit.md) the API server's
audit events go to their own place next to the events', in the same mode: the data stream or
alias ``INDEX-audit`` (``kube-events-audit``), or the dated ``kube-events-audit-2026.12.02``
(``index_format=kube-events-{2006-01-02}`` gives ``kube-events-audit-2026-12-02``).
``setup`` installs their own template (``kube-events-audit``: keywords for ids, users, verbs,
resources, namespaces and decisions, ``ip`` for the source addresses, dates, text and keyword
for the message and user agent; the request and response bodies are kept in ``_source`` as
JSON text, not indexed; annotations are keywords), policy and, in alias mode, first index
(made when the first audit document comes). Their template outranks the events' (a longer
name), so ``kube-events-*`` never maps an audit index. ``_id = <auditID>.<stage>``: each stage
of a request is one document, and a replay lands on its own ``_id`` (409, counted as shipped).
A ``layout`` shapes events only: audit documents are written as the ``kubernetes.audit``
document whatever the layout, always de-dotted (their annotation keys). ``documents=events``
keeps them out; ``documents=audit`` sends only them (and installs only their schema). Their
Kibana and OpenSearch Dashboards objects: ``index-templates/*/kube-events-audit.ndjson``.

Errors: 429 and 5xx (whole request or any item), connection errors, 401/403 and read-only blocks
are retried with backoff, forever; a document the mapping rejects (item status 400) goes to the
dead-letter log and the rest of its batch is kept. The server is detected at start (``GET /``):
Elasticsearch 7.x, 8.x, 9.x and OpenSearch 1.x, 2.x, 3.x are spoken to with plain JSON media
types, which all of them accept, whatever version of the client library is installed.

The schema (mapping, settings, lifecycle policies) is ``shipper/sinks/search/schema.py``;
``setup`` installs it; ``index-templates/`` holds the same bodies rendered to files for curl
users (``scripts/render-index-templates`` writes them; a test keeps them equal).
"""

from __future__ import annotations

import base64
import logging
import ssl
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar
from urllib.parse import quote

import orjson

from shipper.event import Event
from shipper.sinks.base import Rejected, Sink, TransientError
from shipper.sinks.search.bulk import BulkBuilder, judge_items
from shipper.sinks.search.naming import (
    audit_index,
    audit_index_format,
    cloud_url,
    dated_format,
    dated_patterns,
    sniffed_nodes,
)
from shipper.sinks.search.options import SearchOptions
from shipper.sinks.search.setup import (
    bootstrap_audit_alias,
    install,
    render_audit_setup,
    render_setup,
)
from shipper.sinks.search.transport import (
    JSON,
    NDJSON,
    USER_AGENT,
    BulkBody,
    ElasticsearchHttp,
    Http,
    Server,
    error_text,
    import_elastic_transport,
    json_serializer,
    no_handler,
    node_url,
    safe_hosts,
    split_userinfo,
)
from shipper.spec import (
    check_readable,
)
from shipper.templates import TemplateError
from shipper.tls import TLSFileError, client_context
from shipper.uri import (
    UsageError,
)

log = logging.getLogger(__name__)


class ElasticsearchSink(Sink):
    scheme = "elasticsearch"
    aliases = ("es",)
    summary = "Elasticsearch 7.x-9.x (OpenSearch too): _bulk into a data stream, dated indices or an alias"
    receiver = "elasticsearch"
    usage = "elasticsearch:http(s)://HOST:9200 or elasticsearch:?nodes=URL&nodes=URL"
    example = "elasticsearch:https://es:9200?username=shipper&password_file=/secrets/es"
    Options: type[SearchOptions] = SearchOptions
    options: SearchOptions
    guarantee = (
        "each event version once: _id <uid>.<count>, op create (409 = already there); count"
        " updates are new documents, dashboards count unique uids. A replay across a rollover"
        " may add a copy to the newer index. Audit: each request stage once, _id"
        " <auditID>.<stage>"
    )
    accepts_audit = True
    default_batch_size = 1000
    default_flush_interval = 1.0
    #: The flavour this scheme expects; the server's own answer decides.
    expects: ClassVar[str] = "elasticsearch"

    http: Http | None = None
    server: Server | None = None
    _pool: ThreadPoolExecutor | None = None
    #: Alias mode: the audit alias exists (made or checked when the first audit document came).
    _audit_alias_ready = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.nodes = self._nodes()
        self.index = self.options.index
        if (
            not self.index
            or self.index != self.index.lower()
            or self.index.startswith(("-", "_", "+"))
        ):
            raise UsageError(
                f"--sink {self.scheme}: parameter index={self.index!r}: expected a lowercase"
                " name that does not start with -, _ or +"
            )
        check_readable(self.options, f"--sink {self.scheme}", "ca_file", "cert_file", "key_file")
        if self.options.api_key and self.options.username:
            raise UsageError(
                f"--sink {self.scheme}: give either api_key or username/password, not both"
            )
        self._ssl = self._ssl_context()
        self._bulk_path = "_bulk?filter_path=errors,items.*.status,items.*.error"
        if self.options.pipeline:
            self._bulk_path += f"&pipeline={quote(self.options.pipeline, safe='')}"
        #: The audit documents' data stream, alias or dated prefix, next to the events'.
        self.audit_index = audit_index(self.index)
        self._audit_format = audit_index_format(self.options.index_format)
        self._layout = self.options.layout
        # The original de-dots only when asked; the event document always needs it (its mapping).
        de_dot = self.options.de_dot
        self.bulk = BulkBuilder(
            index=self.index,
            audit_index=self.audit_index,
            dated=dated_format(self.options.index_format, self.index, self.scheme),
            audit_dated=dated_format(self._audit_format, self.audit_index, self.scheme),
            layout=self._layout,
            de_dot=de_dot if de_dot is not None else self._layout is None,
            cluster=self.options.cluster_name,
        )
        self._lock = threading.Lock()

    @property
    def mode(self) -> str:
        """data_stream, dated or alias: known once the server is (``resolve_mode``)."""
        return self.bulk.mode

    @mode.setter
    def mode(self, mode: str) -> None:
        self.bulk.mode = mode

    def _nodes(self) -> list[str]:
        rest = self.uri.rest
        nodes = ([rest] if rest else []) + list(self.options.nodes)
        if self.options.cloud_id:
            try:
                nodes.append(cloud_url(self.options.cloud_id))
            except ValueError as exc:
                raise UsageError(
                    f"--sink {self.scheme}: parameter cloud_id={self.options.cloud_id!r}: {exc}"
                ) from None
        if not nodes:
            raise UsageError(
                f"--sink {self.scheme}: no server given; expected {self.scheme}:http://HOST:9200"
                " or ?nodes=http://HOST:9200"
            )
        # kube-eventer's docs write nodes=host:9200: a server without a scheme is plain HTTP.
        nodes = [node if "://" in node else f"http://{node}" for node in nodes]
        for node in nodes:
            try:
                node_url(node)
            except ValueError as exc:
                raise UsageError(f"--sink {self.scheme}: server {node!r}: {exc}") from None
        return nodes

    # -- connecting

    def make_http(self, nodes: list[str] | None = None) -> Http:
        """The official client's transport (elastic-transport: node pool, retries on other
        nodes, TLS), configured from the parameters as ``Elasticsearch(...)`` configures it.
        Not the client itself: its API layer is never used (transport.py says why), and
        importing the ``elasticsearch`` package (some 400 API modules) cost a sixth of the
        shipper's CPU in a 20,000-event benchmark (bench/README.md)."""
        elastic_transport = import_elastic_transport()
        url_to_node_config = elastic_transport.client_utils.url_to_node_config
        hosts, basic = split_userinfo(nodes or self.nodes)
        options: dict[str, Any] = {
            "request_timeout": self.options.timeout,
            "headers": {"user-agent": USER_AGENT},
        }
        tls = self._tls_kwargs()
        if tls:  # elastic-transport also applies its own verify flag over the context
            options.update(tls, verify_certs=not self.options.insecure, ssl_show_warn=False)
        try:
            configs = [url_to_node_config(host).replace(**options) for host in hosts]
        except ValueError as exc:
            raise UsageError(f"--sink {self.scheme}: {exc}") from None
        transport = elastic_transport.Transport(
            configs,
            max_retries=self.options.max_retries,
            retry_on_timeout=True,
            retry_on_status=(),  # statuses are judged here; the pipeline backs off
            meta_header=False,
            serializers={NDJSON: BulkBody(), JSON: json_serializer(elastic_transport)},
        )
        return ElasticsearchHttp(
            transport,
            self._authorization(basic),
            max_retries=self.options.max_retries,
            timeout=self.options.timeout,
        )

    def _authorization(self, basic: tuple[str, str] | None) -> str | None:
        if self.options.api_key:
            return f"ApiKey {self.options.api_key}"
        user, password = self.options.username, self.options.password
        if user:
            basic = (user, password or "")
        if basic is None:
            return None
        return "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()

    def _ssl_context(self) -> ssl.SSLContext | None:
        """An SSLContext of our own (:func:`shipper.tls.client_context`): the clients drop the
        client certificate when verification is off, and each spells CA and certificate options
        differently. Made once, here, so that a TLS file that cannot be used is a usage error."""
        if not any(node.startswith("https:") for node in self.nodes):
            return None
        o = self.options
        try:
            return client_context(o.ca_file, o.cert_file, o.key_file, o.insecure)
        except TLSFileError as exc:
            raise UsageError(f"--sink {self.scheme}: {exc}") from None

    def _tls_kwargs(self) -> dict[str, Any]:
        if self._ssl is None:
            return {}
        if self.options.insecure:
            warnings.filterwarnings("ignore", message="Unverified HTTPS request")
            log.warning(
                "Sink %s: insecure=true, the server's certificate is not verified.", self.scheme
            )
        return {"ssl_context": self._ssl}

    def open(self) -> None:
        if self.http is None:
            self.http = self.make_http()
        if self.options.sniff:
            self.sniff()
        self.server = self.detect()
        if self.options.health_check:
            self.check_health()
        self.mode = self.resolve_mode()
        if self.options.setup:
            self.install()
        self.check_target()
        if self.options.bulk_workers > 1 and self._pool is None:
            self._pool = ThreadPoolExecutor(
                self.options.bulk_workers, thread_name_prefix=f"{self.scheme}-bulk"
            )
        log.info(
            "Sink %s: %s at %s, mode %s, index %s.",
            self.scheme, self.server.name, ", ".join(safe_hosts(self.nodes)), self.mode, self.index,
        )  # fmt: skip

    def sniff(self) -> None:
        """Use every node with HTTP that the cluster lists (:func:`sniffed_nodes`)."""
        found = sniffed_nodes(self.call("GET", "_nodes/_all/http"), self.nodes)
        if not found:
            log.warning("Sink %s: sniffing found no HTTP nodes; using the given ones.", self.scheme)
            return
        log.info("Sink %s: sniffed %d node(s): %s.", self.scheme, len(found), ", ".join(found))
        assert self.http is not None
        self.http.close()
        self.http = self.make_http(found)

    def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = ()) -> Any:
        """A JSON request that must succeed (2xx or a status in ``ok``)."""
        assert self.http is not None
        payload = orjson.dumps(body) if body is not None else None
        status, reply = self.http.request(method, path, payload)
        if 200 <= status < 300 or status in ok:
            return reply
        raise TransientError(f"{method} /{path}: HTTP {status} {error_text(reply)}")

    def detect(self) -> Server:
        assert self.http is not None
        status, reply = self.http.request("GET", "")
        if status in (401, 403):
            raise TransientError(
                f"GET /: HTTP {status} {error_text(reply)}: check the credentials"
                " (username/password, api_key, client certificate or AWS)"
            )
        if status != 200 or not isinstance(reply, dict) or "version" not in reply:
            raise TransientError(
                f"GET /: HTTP {status} {error_text(reply)}: is this Elasticsearch?"
            )
        version = reply["version"]
        flavour = "opensearch" if version.get("distribution") == "opensearch" else "elasticsearch"
        number = str(version.get("number", "0"))
        server = Server(flavour=flavour, version=number, major=int(number.split(".")[0] or 0))
        if server.flavour == "elasticsearch" and server.major < 7:
            log.warning("Sink %s: %s is older than 7.x; trying anyway.", self.scheme, server.name)
        wanted = self.options.ver
        if wanted and int(wanted) != server.major:
            log.warning(
                "Sink %s: ver=%s given, but the server is %s; speaking to what it is.",
                self.scheme,
                wanted,
                server.name,
            )
        if flavour != self.expects:
            log.info("Sink %s: the server is %s; speaking its dialect.", self.scheme, server.name)
        server.data_streams = self._probe(f"_data_stream/{self.index}") is not None
        server.lifecycle = self._detect_lifecycle(server)
        return server

    def _probe(self, path: str) -> int | None:
        """The status of GET ``path`` when the server knows the endpoint, None when it does not."""
        assert self.http is not None
        status, reply = self.http.request("GET", path)
        if status in (200, 404) and not no_handler(reply):
            return status
        return None

    def _detect_lifecycle(self, server: Server) -> str | None:
        if server.flavour == "elasticsearch":
            return "ilm" if self._probe("_ilm/status") == 200 else None
        if self._probe(f"_plugins/_ism/policies/{self.index}") is not None:
            return "ism"
        return None

    def check_health(self) -> None:
        timeout = max(1, round(self.options.startup_healthcheck_timeout))
        reply = self.call(
            "GET", f"_cluster/health?wait_for_status=yellow&timeout={timeout}s", ok=(408,)
        )
        if reply.get("status") not in ("green", "yellow"):
            raise TransientError(
                f"cluster health is {reply.get('status')!r} after {timeout} s, not yet yellow"
            )

    def resolve_mode(self) -> str:
        assert self.server is not None
        mode = self.options.mode
        if self.options.index_format:
            return "dated"
        if mode == "auto":
            # A layout's documents need not carry the @timestamp a data stream requires.
            usable = self.server.data_streams and self._layout is None
            return "data_stream" if usable else "dated"
        if mode == "data_stream" and not self.server.data_streams:
            raise TransientError(
                f"mode=data_stream: {self.server.name} has no data streams here; use mode=dated or mode=alias"
            )
        return mode

    def install(self) -> list[str]:
        """Put templates and policy (and the first index behind an alias); return what was done."""
        return install(self)

    def setup_requests(
        self, mode: str, lifecycle: str | None, *, first_index: bool = False
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """What ``setup`` sends for this sink: the event document's mapping unless a layout
        writes documents of the user's shape, for the indices ``index_format`` names."""
        dated = mode == "dated"
        return render_setup(
            self.expects if self.server is None else self.server.flavour,
            self.index,
            mode,
            lifecycle,
            first_index=first_index,
            patterns=dated_patterns(self.index, self.options.index_format) if dated else None,
            mappings=self._layout is None,
        )

    @property
    def takes_events(self) -> bool:
        return getattr(self.options, "documents", "all") != "audit"

    @property
    def takes_audit(self) -> bool:
        return getattr(self.options, "documents", "all") != "events"

    def audit_setup_requests(
        self, mode: str, lifecycle: str | None, *, first_index: bool = False
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """What ``setup`` sends for the audit documents: their own policy, templates (with
        :data:`~shipper.sinks.search.schema.AUDIT_MAPPING`, layout or not) and first index."""
        dated = mode == "dated"
        return render_audit_setup(
            self.expects if self.server is None else self.server.flavour,
            self.index,
            mode,
            lifecycle,
            first_index=first_index,
            patterns=dated_patterns(self.audit_index, self._audit_format) if dated else None,
        )

    def planned_mode(self) -> str:
        """The mode before the server is asked (``setup --print``)."""
        if self.options.index_format or (self._layout is not None and self.options.mode == "auto"):
            return "dated"
        return "data_stream" if self.options.mode == "auto" else self.options.mode

    def check_target(self) -> None:
        """Refuse to write where a mistake would be silent: a missing alias, a missing pipeline."""
        assert self.http is not None
        if self.mode == "alias" and self.takes_events:  # the audit alias: at its first document
            status, _ = self.http.request("HEAD", f"_alias/{self.index}")
            if status != 200:
                raise TransientError(
                    f"alias {self.index} does not exist; run setup or set setup=true"
                )
        if self.options.pipeline:
            status, _ = self.http.request(
                "GET", f"_ingest/pipeline/{quote(self.options.pipeline, safe='')}"
            )
            if status != 200:
                raise TransientError(f"ingest pipeline {self.options.pipeline!r} does not exist")

    # -- writing

    def write(self, events: Sequence[Event]) -> Sequence[Rejected]:
        alias = self.mode == "alias" and not self._audit_alias_ready
        if alias and any(event.kind == "audit" for event in events):
            bootstrap_audit_alias(self)
            self._audit_alias_ready = True
        workers = self.options.bulk_workers
        if workers == 1 or len(events) < 2 * workers or self._pool is None:
            return self._write_chunk(events, 0)
        size = -(-len(events) // workers)
        chunks = [(events[i : i + size], i) for i in range(0, len(events), size)]
        rejected: list[Rejected] = []
        for result in self._pool.map(lambda chunk: self._write_chunk(*chunk), chunks):
            rejected.extend(result)
        return rejected

    def _write_chunk(self, events: Sequence[Event], offset: int) -> list[Rejected]:
        assert self.http is not None
        body, sent, failed = self.bulk.request(events)
        if not sent:  # every layout failed: nothing to send
            return [Rejected(offset + r.index, r.reason) for r in failed]
        status, reply = self.http.request("POST", self._bulk_path, body, NDJSON)
        if status == 413 and len(events) > 1:  # the request is too large: halve it
            half = len(events) // 2
            return self._write_chunk(events[:half], offset) + self._write_chunk(
                events[half:], offset + half
            )
        if status != 200:
            raise TransientError(f"_bulk: HTTP {status} {error_text(reply)}")
        rejected = [Rejected(offset + r.index, r.reason) for r in failed]
        return rejected + judge_items(reply, [offset + p for p in sent])

    def bulk_body(self, events: Sequence[Event]) -> bytes:
        body, _, failed = self.bulk.request(events)
        if failed:
            raise TemplateError(failed[0].reason)
        return body

    def bulk_request(self, events: Sequence[Event]) -> tuple[bytes, list[int], list[Rejected]]:
        return self.bulk.request(events)

    def target(self, event: Event) -> str:
        return self.bulk.target(event)

    def document(self, event: Event) -> dict[str, Any]:
        return self.bulk.document(event)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
        if self.http is not None:
            self.http.close()
            self.http = None

    def describe(self) -> str:
        return f"{self.scheme} {', '.join(safe_hosts(self.nodes))} index={self.index}"

"""The search sinks' parameters, declared once: the URI, the config file's ``elasticsearch:``
and ``opensearch:`` receivers, ``sinks`` and docs/sinks/ are derived from them."""

from __future__ import annotations

from dataclasses import dataclass

from shipper.sinks.search.schema import MODES
from shipper.spec import (
    ClientCert,
    ClusterName,
    LayoutOption,
    SinkOptions,
    Timeout,
    TLSTrust,
    option,
)
from shipper.uri import choice, parse_bool, parse_nonnegative_int, parse_positive_int


@dataclass(frozen=True, kw_only=True)
class SearchOptions(SinkOptions, LayoutOption, TLSTrust, ClientCert, ClusterName, Timeout):
    REST = None  # the receiver's hosts list gives the nodes
    IGNORED = {
        "useEventID": "the _id is always <uid>.<count>, so a replay never adds a copy",
        "type": "mapping types are gone since Elasticsearch 7",
    }

    nodes: list[str] = option(
        [],
        "Server URLs (repeat or comma-separate); the URI's own URL counts as one.",
        exporter="hosts",
    )
    cloud_id: str | None = option(
        None,
        "Elastic Cloud deployment id (NAME:BASE64, from the console); gives the server URL.",
        aliases=("cloudID", "cloudId"),
        exporter="cloudID",
    )
    index: str = option(
        "kube-events", "Data stream, alias, or prefix of the dated indices.", exporter="index"
    )
    mode: str = option(
        "auto",
        "Where documents go: auto (data_stream where the server has them, else dated), data_stream, dated, alias.",
        parse=choice("auto", *MODES),
    )
    index_format: str | None = option(
        None,
        "Dated index names as kubernetes-event-exporter's indexFormat, e.g. kube-events-{2006-01-02} (Go layout in braces); implies mode=dated.",
        aliases=("indexFormat",),
        exporter="indexFormat",
    )
    setup: bool = option(
        True,
        "Install templates, policy and first index at start (idempotent; needs manage_index_templates, manage_ilm).",
    )
    username: str | None = option(
        None, "Basic-auth user.", aliases=("esUserName", "user"), exporter="username"
    )
    password: str | None = option(
        None, "Basic-auth password.", secret=True, aliases=("esUserSecret",), exporter="password"
    )
    api_key: str | None = option(
        None,
        "Elasticsearch API key (the base64 'id:key' form).",
        secret=True,
        aliases=("apiKey",),
        exporter="apiKey",
    )
    pipeline: str | None = option(None, "Ingest pipeline for every document (must exist).")
    de_dot: bool | None = option(
        None,
        "Replace dots in label and annotation keys with _ (app.kubernetes.io/name -> app_kubernetes_io/name). Default: true for the event document (its mapping needs it), false under a layout (as kubernetes-event-exporter).",
        parse=parse_bool,
        aliases=("deDot",),
        exporter="deDot",
    )
    bulk_workers: int = option(
        2,
        "Concurrent _bulk requests per batch (2 measured 30-40% faster than 1; bench/README.md).",
        parse=parse_positive_int,
        aliases=("bulkWorkers",),
    )
    max_retries: int = option(
        3,
        "Quick retries of one request on another node; after them the batch is retried with backoff, forever.",
        parse=parse_nonnegative_int,
        aliases=("maxRetries",),
    )
    health_check: bool = option(
        True, "Wait for the cluster to be at least yellow at start.", aliases=("healthCheck",)
    )
    startup_healthcheck_timeout: float = option(
        10.0,
        "How long the start-up health check waits (e.g. 30s).",
        aliases=("startupHealthcheckTimeout",),
    )
    sniff: bool = option(False, "Discover the cluster's other nodes (not behind a load balancer).")
    ver: str | None = option(
        None,
        "Server major version (kube-eventer); detected anyway, a mismatch is logged.",
        parse=choice("5", "6", "7", "8", "9", "1", "2", "3"),
    )

#!/usr/bin/env python3
"""Write the Kibana and OpenSearch Dashboards saved objects for the ``kube-events*`` indices
(``kube-events.ndjson``) and for the audit documents' ``kube-events-audit*``
(``kube-events-audit.ndjson``).

One definition of each data view, the saved searches, the visualizations and the dashboard below
(a :class:`Board` each); two renderings, because the two products stopped being interchangeable
after Kibana 7.10:

- ``kibana/kube-events.ndjson``: written at the Kibana 7.17.0 migration level
  (``coreMigrationVersion`` 7.17.0, per-type ``migrationVersion`` no newer than 7.17.0 knows), so
  Kibana 7.17 imports it as is and 8.x / 9.x migrate it on import.
- ``opensearch-dashboards/kube-events.ndjson``: OpenSearch Dashboards 1.x / 2.x, forked from
  Kibana 7.10.2: its own migration versions, no ``coreMigrationVersion``, its parameter names
  (``useNormalizedOpenSearchInterval``), panels without ``type``.

Every count is the unique count of ``kubernetes.event.metadata.uid``: each count update of an
event is its own document (``_id`` = uid.count), so a document count would count a crash-looping
pod once per restart. The audit board counts requests, the unique count of
``kubernetes.audit.audit_id``, for the same reason: each stage of a request (RequestReceived,
ResponseComplete, ...) is its own document (``_id`` = auditID.stage). The events' data view leaves
the audit documents out (``kube-events*,-kube-events-audit*``): ``kube-events*`` alone matches
them too. Queries are Lucene (``query_string``), the one language both products and both servers
run the same way.

    .venv/bin/python index-templates/generate_saved_objects.py          # write both files
    .venv/bin/python index-templates/generate_saved_objects.py --check  # exit 1 if they differ

tests/test_saved_objects.py fails when the committed files differ from this script's output.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

INDEX_PATTERN_ID = "kube-event-shipper-kube-events"
# The audit documents (kube-events-audit, kube-events-audit-2026.12.02, ...) match kube-events*.
INDEX_PATTERN_TITLE = "kube-events*,-kube-events-audit*"
TIME_FIELD = "@timestamp"
UID = "kubernetes.event.metadata.uid"
SEARCH_INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"

# Lucene queries (Elasticsearch/OpenSearch query_string). Reasons are keywords (exact, case
# sensitive); `message` is analyzed text, so phrases match whatever the punctuation around them.
QUERY_WARNINGS = "kubernetes.event.type:Warning"
# node-problem-detector's OOMKilling ("Memory cgroup out of memory: Killed process ..."), the
# kubelet's SystemOOM ("System OOM encountered, victim process: ..."), OOMKilled from tools that
# report container terminations as events, and any other message that says so.
QUERY_OOM = (
    "kubernetes.event.reason:(OOMKilling OR OOMKilled OR SystemOOM)"
    ' OR message:(OOM OR OOMKilled OR OOMKilling OR "out of memory")'
)
# The kubelet's image events: reason Failed with 'Failed to pull image "x": ...',
# "Error: ErrImagePull" and "Error: ImagePullBackOff"; reason BackOff (type Normal!) with
# 'Back-off pulling image "x"'; ErrImageNeverPull; InspectFailed (bad image reference).
QUERY_IMAGE_PULL = (
    "kubernetes.event.reason:(ErrImagePull OR ImagePullBackOff OR ErrImageNeverPull"
    " OR InspectFailed) OR (kubernetes.event.reason:(Failed OR BackOff)"
    ' AND message:("pull image" OR "pulling image" OR ErrImagePull OR ImagePullBackOff))'
)
QUERY_SCHEDULING = "kubernetes.event.reason:FailedScheduling"
# The kubelet's crash loop: reason BackOff, "Back-off restarting failed container [name in pod
# ...]" (the same reason as an image pull back-off, told apart by the message).
QUERY_CRASH_LOOP = (
    'kubernetes.event.reason:BackOff AND message:"Back-off restarting failed container"'
)

OBJECT = "kubernetes.event.involved_object"
SORT_NEWEST = [[TIME_FIELD, "desc"]]


@dataclass(frozen=True)
class Search:
    id: str
    title: str
    description: str
    query: str
    columns: list[str]


@dataclass(frozen=True)
class Vis:
    id: str
    title: str
    description: str
    type: str  # histogram | horizontal_bar | table
    aggs: list[dict[str, Any]]
    search: str | None = None  # the id of the saved search it is built on
    value_axis_title: str = "Events"


@dataclass(frozen=True)
class Panel:
    ref: Search | Vis
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class Board:
    """One file of saved objects: a data view, its saved searches and visualizations, and the
    dashboard that shows them all."""

    file: str
    data_view_id: str
    data_view_title: str
    searches: list[Search]
    visualizations: list[Vis]
    panels: list[Panel]
    dashboard_id: str
    dashboard_title: str
    dashboard_description: str
    metric_label: str


def events(agg_id: str = "1") -> dict[str, Any]:
    """The metric of every chart: distinct events, not documents (one per count update)."""
    return agg(agg_id, "cardinality", "metric", field=UID, customLabel="Events")


def agg(agg_id: str, agg_type: str, schema: str, **params: Any) -> dict[str, Any]:
    return {"id": agg_id, "enabled": True, "type": agg_type, "params": params, "schema": schema}


def terms(
    agg_id: str,
    field_name: str,
    schema: str,
    size: int,
    label: str,
    missing: str | None = None,
) -> dict[str, Any]:
    """Buckets ordered by the first metric (agg "1"), highest first."""
    return agg(
        agg_id,
        "terms",
        schema,
        field=field_name,
        orderBy="1",
        order="desc",
        size=size,
        otherBucket=False,
        otherBucketLabel="Other",
        missingBucket=missing is not None,
        missingBucketLabel=missing or "Missing",
        customLabel=label,
    )


def over_time(agg_id: str) -> dict[str, Any]:
    # The flavour adds its name of the "normalized interval" flag.
    return agg(
        agg_id,
        "date_histogram",
        "segment",
        field=TIME_FIELD,
        timeRange={"from": "now-24h", "to": "now"},
        scaleMetricValues=False,
        interval="auto",
        drop_partials=False,
        min_doc_count=1,
        extended_bounds={},
        customLabel="Time",
    )


def failure_filters(agg_id: str) -> dict[str, Any]:
    return agg(
        agg_id,
        "filters",
        "group",
        filters=[
            {"input": {"query": query, "language": "lucene"}, "label": label}
            for label, query in FAILURE_KINDS
        ],
    )


SEARCHES = [
    Search(
        "kube-event-shipper-search-warnings",
        "Kubernetes events: warnings",
        "Every Warning event, newest first. Each count update of an event is its own row.",
        QUERY_WARNINGS,
        [
            "kubernetes.event.reason",
            f"{OBJECT}.kind",
            f"{OBJECT}.namespace",
            f"{OBJECT}.name",
            "message",
            "kubernetes.event.count",
        ],
    ),
    Search(
        "kube-event-shipper-search-oom-kills",
        "Kubernetes events: OOM kills",
        "Processes killed for lack of memory (node-problem-detector OOMKilling, kubelet "
        "SystemOOM, OOMKilled), which a restarted container hides.",
        QUERY_OOM,
        [
            "kubernetes.event.source.host",
            f"{OBJECT}.kind",
            f"{OBJECT}.name",
            "kubernetes.event.reason",
            "message",
        ],
    ),
    Search(
        "kube-event-shipper-search-image-pull-failures",
        "Kubernetes events: image pull failures",
        "Failed to pull image, ErrImagePull, ImagePullBackOff, back-off pulling image, "
        "ErrImageNeverPull, InspectFailed.",
        QUERY_IMAGE_PULL,
        [
            f"{OBJECT}.namespace",
            f"{OBJECT}.name",
            "kubernetes.event.reason",
            "message",
            "kubernetes.event.count",
        ],
    ),
    Search(
        "kube-event-shipper-search-scheduling-failures",
        "Kubernetes events: scheduling failures",
        "Pods the scheduler could not place (FailedScheduling), with its reasons.",
        QUERY_SCHEDULING,
        [f"{OBJECT}.namespace", f"{OBJECT}.name", "message", "kubernetes.event.count"],
    ),
    Search(
        "kube-event-shipper-search-crash-loops",
        "Kubernetes events: crash loops",
        "Back-off restarting failed container: containers in CrashLoopBackOff.",
        QUERY_CRASH_LOOP,
        [
            f"{OBJECT}.namespace",
            f"{OBJECT}.name",
            "kubernetes.event.source.host",
            "message",
            "kubernetes.event.count",
        ],
    ),
]
SEARCH = {search.id: search for search in SEARCHES}

# The failures that self-healing hides, as the buckets of one chart: the saved searches' queries.
FAILURE_KINDS = [
    ("OOM kills", QUERY_OOM),
    ("Image pull failures", QUERY_IMAGE_PULL),
    ("Scheduling failures", QUERY_SCHEDULING),
    ("Crash loops", QUERY_CRASH_LOOP),
]

VISUALIZATIONS = [
    Vis(
        "kube-event-shipper-vis-events-over-time",
        "Kubernetes events over time by type",
        "Distinct events (unique metadata.uid) per interval, Normal and Warning.",
        "histogram",
        [
            events(),
            over_time("2"),
            terms("3", "kubernetes.event.type", "group", 5, "Type"),
        ],
    ),
    Vis(
        "kube-event-shipper-vis-failures-over-time",
        "Kubernetes failures hidden by self-healing",
        "OOM kills, image pull failures, scheduling failures and crash loops over time "
        "(distinct events; the queries of the saved searches).",
        "histogram",
        [events(), over_time("2"), failure_filters("3")],
    ),
    Vis(
        "kube-event-shipper-vis-top-reasons",
        "Kubernetes events: top reasons",
        "The most frequent reasons, in distinct events, split by type.",
        "horizontal_bar",
        [
            events(),
            terms("2", "kubernetes.event.reason", "segment", 20, "Reason"),
            terms("3", "kubernetes.event.type", "group", 5, "Type"),
        ],
    ),
    Vis(
        "kube-event-shipper-vis-top-namespaces",
        "Kubernetes events: top namespaces",
        "Distinct events per namespace of the involved object; cluster-scoped objects "
        "(nodes, ...) have none.",
        "table",
        [
            events(),
            terms(
                "2", "kubernetes.namespace", "bucket", 20, "Namespace", missing="(cluster-scoped)"
            ),
            terms("3", "kubernetes.event.type", "bucket", 5, "Type"),
        ],
    ),
    Vis(
        "kube-event-shipper-vis-top-objects",
        "Kubernetes events: top involved objects",
        "The objects with the most distinct events, their highest occurrence count and "
        "when they were last seen.",
        "table",
        [
            events(),
            agg("2", "max", "metric", field="kubernetes.event.count", customLabel="Occurrences"),
            agg("3", "max", "metric", field=TIME_FIELD, customLabel="Last seen"),
            terms("4", f"{OBJECT}.kind", "bucket", 10, "Kind"),
            terms("5", f"{OBJECT}.namespace", "bucket", 20, "Namespace", missing="-"),
            terms("6", f"{OBJECT}.name", "bucket", 20, "Name"),
        ],
    ),
    Vis(
        "kube-event-shipper-vis-warnings-by-node",
        "Kubernetes warnings by node",
        "Distinct Warning events per reporting node (source.host), split by reason.",
        "horizontal_bar",
        [
            events(),
            terms("2", "kubernetes.event.source.host", "segment", 20, "Node"),
            terms("3", "kubernetes.event.reason", "group", 10, "Reason"),
        ],
        search="kube-event-shipper-search-warnings",
    ),
]
VIS = {vis.id: vis for vis in VISUALIZATIONS}

DASHBOARD_ID = "kube-event-shipper-dashboard"
DASHBOARD_TITLE = "Kubernetes events"
DASHBOARD_DESCRIPTION = (
    "Kubernetes Events shipped by kube-event-shipper. Charts count distinct events (unique "
    "metadata.uid): each count update is its own document, listed in the saved searches."
)
PANELS = [
    Panel(VIS["kube-event-shipper-vis-events-over-time"], 0, 0, 24, 13),
    Panel(VIS["kube-event-shipper-vis-failures-over-time"], 24, 0, 24, 13),
    Panel(VIS["kube-event-shipper-vis-top-reasons"], 0, 13, 16, 15),
    Panel(VIS["kube-event-shipper-vis-warnings-by-node"], 16, 13, 16, 15),
    Panel(VIS["kube-event-shipper-vis-top-namespaces"], 32, 13, 16, 15),
    Panel(SEARCH["kube-event-shipper-search-warnings"], 0, 28, 24, 16),
    Panel(VIS["kube-event-shipper-vis-top-objects"], 24, 28, 24, 16),
    Panel(SEARCH["kube-event-shipper-search-oom-kills"], 0, 44, 24, 13),
    Panel(SEARCH["kube-event-shipper-search-crash-loops"], 24, 44, 24, 13),
    Panel(SEARCH["kube-event-shipper-search-image-pull-failures"], 0, 57, 24, 13),
    Panel(SEARCH["kube-event-shipper-search-scheduling-failures"], 24, 57, 24, 13),
]

EVENTS = Board(
    file="kube-events.ndjson",
    data_view_id=INDEX_PATTERN_ID,
    data_view_title=INDEX_PATTERN_TITLE,
    searches=SEARCHES,
    visualizations=VISUALIZATIONS,
    panels=PANELS,
    dashboard_id=DASHBOARD_ID,
    dashboard_title=DASHBOARD_TITLE,
    dashboard_description=DASHBOARD_DESCRIPTION,
    metric_label="Events",
)

# ---------------------------------------------------------------------------------------------
# The audit documents (shipper/audit/record.py): who did what, denied requests, secrets read,
# exec/attach/port-forward into pods, RBAC changes.

AUDIT = "kubernetes.audit"
AUDIT_ID = f"{AUDIT}.audit_id"
AUDIT_USER = f"{AUDIT}.user.username"
AUDIT_VERB = f"{AUDIT}.verb"
AUDIT_REF = f"{AUDIT}.object_ref"
AUDIT_CODE = f"{AUDIT}.response_status.code"

CHANGE_VERBS = "(create OR update OR patch OR delete OR deletecollection)"
# Refused: by authentication (401) or authorization (403), or the authorizer's own word (a
# webhook authorizer's forbid on a request that then failed otherwise still says forbid).
QUERY_AUDIT_DENIED = f"{AUDIT_CODE}:(401 OR 403) OR {AUDIT}.authorization.decision:forbid"
QUERY_AUDIT_CHANGES = f"{AUDIT_VERB}:{CHANGE_VERBS}"
QUERY_AUDIT_SECRETS_READ = f"{AUDIT_REF}.resource:secrets AND {AUDIT_VERB}:(get OR list OR watch)"
QUERY_AUDIT_EXEC = (
    f"{AUDIT_REF}.resource:pods AND {AUDIT_REF}.subresource:(exec OR attach OR portforward)"
)
QUERY_AUDIT_RBAC = (
    f'{AUDIT_REF}.api_group:"rbac.authorization.k8s.io" AND {AUDIT_VERB}:{CHANGE_VERBS}'
)


def requests_metric(agg_id: str = "1") -> dict[str, Any]:
    """The audit charts' metric: distinct requests, not documents (one per stage)."""
    return agg(agg_id, "cardinality", "metric", field=AUDIT_ID, customLabel="Requests")


AUDIT_SEARCHES = [
    Search(
        "kube-event-shipper-audit-search-changes",
        "Kubernetes audit: changes",
        "Who created, updated, patched or deleted what. Each stage of a request is its own row.",
        QUERY_AUDIT_CHANGES,
        [AUDIT_USER, AUDIT_VERB, f"{AUDIT_REF}.resource", f"{AUDIT_REF}.namespace",
         f"{AUDIT_REF}.name", AUDIT_CODE, "source.ip"],
    ),
    Search(
        "kube-event-shipper-audit-search-denied",
        "Kubernetes audit: denied requests",
        "Requests refused with 401 or 403, or that the authorizer forbade.",
        QUERY_AUDIT_DENIED,
        [AUDIT_USER, AUDIT_VERB, f"{AUDIT_REF}.resource", f"{AUDIT_REF}.namespace",
         f"{AUDIT_REF}.name", AUDIT_CODE, "source.ip", "user_agent.original"],
    ),
    Search(
        "kube-event-shipper-audit-search-secrets-read",
        "Kubernetes audit: secrets read",
        "get, list and watch of Secrets: who read which secret, and the answer.",
        QUERY_AUDIT_SECRETS_READ,
        [AUDIT_USER, AUDIT_VERB, f"{AUDIT_REF}.namespace", f"{AUDIT_REF}.name", AUDIT_CODE,
         "user_agent.original"],
    ),
    Search(
        "kube-event-shipper-audit-search-exec",
        "Kubernetes audit: exec, attach and port-forward into pods",
        "Interactive access to containers: pods/exec, pods/attach, pods/portforward.",
        QUERY_AUDIT_EXEC,
        [AUDIT_USER, f"{AUDIT_REF}.subresource", f"{AUDIT_REF}.namespace",
         f"{AUDIT_REF}.name", AUDIT_CODE, "source.ip"],
    ),
    Search(
        "kube-event-shipper-audit-search-rbac-changes",
        "Kubernetes audit: RBAC changes",
        "Roles, ClusterRoles and their bindings created, changed or deleted.",
        QUERY_AUDIT_RBAC,
        [AUDIT_USER, AUDIT_VERB, f"{AUDIT_REF}.resource", f"{AUDIT_REF}.namespace",
         f"{AUDIT_REF}.name", AUDIT_CODE],
    ),
]  # fmt: skip
AUDIT_SEARCH = {search.id: search for search in AUDIT_SEARCHES}

AUDIT_VISUALIZATIONS = [
    Vis(
        "kube-event-shipper-audit-vis-requests-over-time",
        "Kubernetes audit: requests over time by verb",
        "Distinct requests (unique audit_id) per interval, by verb.",
        "histogram",
        [requests_metric(), over_time("2"), terms("3", AUDIT_VERB, "group", 10, "Verb")],
        value_axis_title="Requests",
    ),
    Vis(
        "kube-event-shipper-audit-vis-denied-over-time",
        "Kubernetes audit: denied requests over time by user",
        "Requests refused with 401 or 403, or forbidden by the authorizer, per interval.",
        "histogram",
        [requests_metric(), over_time("2"), terms("3", AUDIT_USER, "group", 10, "User")],
        search="kube-event-shipper-audit-search-denied",
        value_axis_title="Requests",
    ),
    Vis(
        "kube-event-shipper-audit-vis-top-users",
        "Kubernetes audit: top users",
        "The users with the most requests, split by verb.",
        "horizontal_bar",
        [
            requests_metric(),
            terms("2", AUDIT_USER, "segment", 20, "User"),
            terms("3", AUDIT_VERB, "group", 5, "Verb"),
        ],
        value_axis_title="Requests",
    ),
    Vis(
        "kube-event-shipper-audit-vis-who-changed-what",
        "Kubernetes audit: who changed what",
        "Creates, updates, patches and deletes by user, verb and resource.",
        "table",
        [
            requests_metric(),
            terms("2", AUDIT_USER, "bucket", 20, "User"),
            terms("3", AUDIT_VERB, "bucket", 10, "Verb"),
            terms("4", f"{AUDIT_REF}.resource", "bucket", 20, "Resource"),
        ],
        search="kube-event-shipper-audit-search-changes",
    ),
    Vis(
        "kube-event-shipper-audit-vis-denied-by-user",
        "Kubernetes audit: denied requests by user",
        "Who was refused what: user, verb, resource and the HTTP status.",
        "table",
        [
            requests_metric(),
            terms("2", AUDIT_USER, "bucket", 20, "User"),
            terms("3", AUDIT_VERB, "bucket", 10, "Verb"),
            terms("4", f"{AUDIT_REF}.resource", "bucket", 20, "Resource", missing="-"),
            terms("5", AUDIT_CODE, "bucket", 5, "Code"),  # a number: no missing bucket
        ],
        search="kube-event-shipper-audit-search-denied",
    ),
    Vis(
        "kube-event-shipper-audit-vis-secrets-read",
        "Kubernetes audit: secrets read by user",
        "Who read which Secret (get, list, watch), and how often.",
        "table",
        [
            requests_metric(),
            terms("2", AUDIT_USER, "bucket", 20, "User"),
            terms("3", f"{AUDIT_REF}.namespace", "bucket", 20, "Namespace", missing="-"),
            terms("4", f"{AUDIT_REF}.name", "bucket", 20, "Secret", missing="(list/watch)"),
        ],
        search="kube-event-shipper-audit-search-secrets-read",
    ),
    Vis(
        "kube-event-shipper-audit-vis-exec",
        "Kubernetes audit: exec, attach and port-forward by user",
        "Who opened a shell, attached or forwarded a port into which pod.",
        "table",
        [
            requests_metric(),
            terms("2", AUDIT_USER, "bucket", 20, "User"),
            terms("3", f"{AUDIT_REF}.subresource", "bucket", 3, "Access"),
            terms("4", f"{AUDIT_REF}.namespace", "bucket", 20, "Namespace"),
            terms("5", f"{AUDIT_REF}.name", "bucket", 20, "Pod"),
        ],
        search="kube-event-shipper-audit-search-exec",
    ),
    Vis(
        "kube-event-shipper-audit-vis-rbac-changes",
        "Kubernetes audit: RBAC changes by user",
        "Roles, ClusterRoles and bindings changed, by user, verb, kind and name.",
        "table",
        [
            requests_metric(),
            terms("2", AUDIT_USER, "bucket", 20, "User"),
            terms("3", AUDIT_VERB, "bucket", 10, "Verb"),
            terms("4", f"{AUDIT_REF}.resource", "bucket", 10, "Resource"),
            terms("5", f"{AUDIT_REF}.name", "bucket", 20, "Name", missing="-"),
        ],
        search="kube-event-shipper-audit-search-rbac-changes",
    ),
]
AUDIT_VIS = {vis.id: vis for vis in AUDIT_VISUALIZATIONS}

AUDIT_PANELS = [
    Panel(AUDIT_VIS["kube-event-shipper-audit-vis-requests-over-time"], 0, 0, 24, 13),
    Panel(AUDIT_VIS["kube-event-shipper-audit-vis-denied-over-time"], 24, 0, 24, 13),
    Panel(AUDIT_VIS["kube-event-shipper-audit-vis-top-users"], 0, 13, 16, 15),
    Panel(AUDIT_VIS["kube-event-shipper-audit-vis-who-changed-what"], 16, 13, 32, 15),
    Panel(AUDIT_VIS["kube-event-shipper-audit-vis-denied-by-user"], 0, 28, 24, 15),
    Panel(AUDIT_VIS["kube-event-shipper-audit-vis-secrets-read"], 24, 28, 24, 15),
    Panel(AUDIT_VIS["kube-event-shipper-audit-vis-exec"], 0, 43, 24, 15),
    Panel(AUDIT_VIS["kube-event-shipper-audit-vis-rbac-changes"], 24, 43, 24, 15),
    Panel(AUDIT_SEARCH["kube-event-shipper-audit-search-denied"], 0, 58, 24, 15),
    Panel(AUDIT_SEARCH["kube-event-shipper-audit-search-changes"], 24, 58, 24, 15),
    Panel(AUDIT_SEARCH["kube-event-shipper-audit-search-secrets-read"], 0, 73, 16, 15),
    Panel(AUDIT_SEARCH["kube-event-shipper-audit-search-exec"], 16, 73, 16, 15),
    Panel(AUDIT_SEARCH["kube-event-shipper-audit-search-rbac-changes"], 32, 73, 16, 15),
]

AUDIT_BOARD = Board(
    file="kube-events-audit.ndjson",
    data_view_id="kube-event-shipper-kube-events-audit",
    data_view_title="kube-events-audit*",
    searches=AUDIT_SEARCHES,
    visualizations=AUDIT_VISUALIZATIONS,
    panels=AUDIT_PANELS,
    dashboard_id="kube-event-shipper-audit-dashboard",
    dashboard_title="Kubernetes audit",
    dashboard_description=(
        "The kube-apiserver's audit events shipped by kube-event-shipper: who did what, denied "
        "requests, secrets read, exec/attach/port-forward into pods, RBAC changes. Charts count "
        "distinct requests (unique audit_id): each stage of a request is its own document."
    ),
    metric_label="Requests",
)

BOARDS = {board.file: board for board in (EVENTS, AUDIT_BOARD)}


@dataclass(frozen=True)
class Flavour:
    name: str
    path: Path  # the events' file; a board's is HERE / name / board.file
    migration_version: dict[str, str]
    core_migration_version: str | None
    panel_version: str
    panel_has_type: bool
    embeddable_config: dict[str, Any]
    normalized_interval_param: str
    chart_params: dict[str, Any] = field(default_factory=dict)
    table_params: dict[str, Any] = field(default_factory=dict)
    dashboard_options: dict[str, Any] = field(default_factory=dict)
    index_pattern_attributes: dict[str, Any] = field(default_factory=dict)


KIBANA = Flavour(
    name="kibana",
    path=HERE / "kibana" / "kube-events.ndjson",
    # Per type, the newest migration Kibana 7.17.0 has (dashboard: the newest of its own; the
    # embeddable ones it merges in only touch by-value panels). Newer Kibanas run their later
    # migrations on import; everything up to the stated version is already in the objects.
    migration_version={
        "index-pattern": "7.11.0",
        "search": "7.9.3",
        "visualization": "7.17.0",
        "dashboard": "7.14.0",
    },
    core_migration_version="7.17.0",
    panel_version="7.17.0",
    panel_has_type=True,
    embeddable_config={"enhancements": {}},
    normalized_interval_param="useNormalizedEsInterval",
    # What Kibana 7.12's vislib-to-xy migration adds to bar/line/area charts.
    chart_params={
        "palette": {"type": "palette", "name": "kibana_palette"},
        "isVislibVis": True,
        "detailedTooltip": True,
    },
    table_params={"showToolbar": True},  # added by Kibana 7.11's table migration
    dashboard_options={"useMargins": True, "syncColors": False, "hidePanelTitles": False},
    index_pattern_attributes={"fieldAttrs": "{}", "runtimeFieldMap": "{}", "typeMeta": "{}"},
)

OPENSEARCH_DASHBOARDS = Flavour(
    name="opensearch-dashboards",
    path=HERE / "opensearch-dashboards" / "kube-events.ndjson",
    # OpenSearch Dashboards 1.x/2.x know these and nothing newer (Kibana 7.10.2's set).
    migration_version={
        "index-pattern": "7.6.0",
        "search": "7.9.3",
        "visualization": "7.10.0",
        "dashboard": "7.9.3",
    },
    core_migration_version=None,
    # A panel version below 7.3 would send the dashboard app's pre-7.3 panel migration over it.
    panel_version="7.10.2",
    panel_has_type=False,
    embeddable_config={},
    normalized_interval_param="useNormalizedOpenSearchInterval",
    dashboard_options={"useMargins": True, "hidePanelTitles": False},
)

FLAVOURS = {flavour.name: flavour for flavour in (KIBANA, OPENSEARCH_DASHBOARDS)}


def compact(value: Any) -> str:
    """The JSON-in-a-string attributes (visState, searchSourceJSON, ...)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def saved_object(
    flavour: Flavour,
    object_type: str,
    object_id: str,
    attributes: dict[str, Any],
    references: list[dict[str, str]],
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "attributes": attributes,
        "id": object_id,
        "migrationVersion": {object_type: flavour.migration_version[object_type]},
        "references": references,
        "type": object_type,
    }
    if flavour.core_migration_version:
        obj["coreMigrationVersion"] = flavour.core_migration_version
    return obj


def lucene(query: str) -> dict[str, str]:
    return {"query": query, "language": "lucene"}


def index_pattern(flavour: Flavour, board: Board = EVENTS) -> dict[str, Any]:
    attributes = {
        "fields": "[]",  # fetched from the mapping when the data view is first loaded
        "timeFieldName": TIME_FIELD,
        "title": board.data_view_title,
        **flavour.index_pattern_attributes,
    }
    return saved_object(flavour, "index-pattern", board.data_view_id, attributes, [])


def index_reference(board: Board = EVENTS) -> dict[str, str]:
    return {"id": board.data_view_id, "name": SEARCH_INDEX_REF, "type": "index-pattern"}


def search(flavour: Flavour, spec: Search, board: Board = EVENTS) -> dict[str, Any]:
    source = {
        "highlightAll": True,
        "version": True,
        "query": lucene(spec.query),
        "filter": [],
        "indexRefName": SEARCH_INDEX_REF,
    }
    attributes = {
        "columns": spec.columns,
        "description": spec.description,
        "hits": 0,
        "kibanaSavedObjectMeta": {"searchSourceJSON": compact(source)},
        "sort": SORT_NEWEST,
        "title": spec.title,
        "version": 1,
    }
    return saved_object(flavour, "search", spec.id, attributes, [index_reference(board)])


def vis_aggs(flavour: Flavour, spec: Vis) -> list[dict[str, Any]]:
    aggs = json.loads(json.dumps(spec.aggs))
    for item in aggs:
        if item["type"] == "date_histogram":
            params = item["params"]
            item["params"] = {
                "field": params.pop("field"),
                "timeRange": params.pop("timeRange"),
                flavour.normalized_interval_param: True,
                **params,
            }
    return aggs


def chart_params(flavour: Flavour, spec: Vis, board: Board = EVENTS) -> dict[str, Any]:
    horizontal = spec.type == "horizontal_bar"
    category_axis = {
        "id": "CategoryAxis-1",
        "type": "category",
        "position": "left" if horizontal else "bottom",
        "show": True,
        "style": {},
        "scale": {"type": "linear"},
        "labels": {"show": True, "rotate": 0, "filter": not horizontal, "truncate": 200},
        "title": {},
    }
    value_axis = {
        "id": "ValueAxis-1",
        "name": "BottomAxis-1" if horizontal else "LeftAxis-1",
        "type": "value",
        "position": "bottom" if horizontal else "left",
        "show": True,
        "style": {},
        "scale": {"type": "linear", "mode": "normal"},
        "labels": {"show": True, "rotate": 0, "filter": horizontal, "truncate": 100},
        "title": {"text": spec.value_axis_title},
    }
    return {
        "type": "histogram",
        "grid": {"categoryLines": False},
        "categoryAxes": [category_axis],
        "valueAxes": [value_axis],
        "seriesParams": [
            {
                "show": True,
                "type": "histogram",
                "mode": "stacked",
                "data": {"label": board.metric_label, "id": "1"},
                "valueAxis": "ValueAxis-1",
                "drawLinesBetweenPoints": True,
                "lineWidth": 2,
                "showCircles": True,
            }
        ],
        "addTooltip": True,
        "addLegend": True,
        "legendPosition": "right",
        "times": [],
        "addTimeMarker": False,
        "labels": {"show": False},
        "thresholdLine": {
            "show": False,
            "value": 10,
            "width": 1,
            "style": "full",
            "color": "#E7664C",
        },
        **flavour.chart_params,
    }


def table_params(flavour: Flavour) -> dict[str, Any]:
    return {
        "perPage": 20,
        "showPartialRows": False,
        "showMetricsAtAllLevels": False,
        "sort": {"columnIndex": None, "direction": None},
        "showTotal": False,
        "totalFunc": "sum",
        "percentageCol": "",
        **flavour.table_params,
    }


def visualization(flavour: Flavour, spec: Vis, board: Board = EVENTS) -> dict[str, Any]:
    table = spec.type == "table"
    params = table_params(flavour) if table else chart_params(flavour, spec, board)
    vis_state = {
        "title": spec.title,
        "type": spec.type,
        "aggs": vis_aggs(flavour, spec),
        "params": params,
    }
    source: dict[str, Any] = {"query": lucene(""), "filter": []}
    attributes: dict[str, Any] = {
        "description": spec.description,
        "kibanaSavedObjectMeta": {},
        "title": spec.title,
        "uiStateJSON": "{}",
        "version": 1,
        "visState": compact(vis_state),
    }
    if spec.search:
        attributes["savedSearchRefName"] = "search_0"
        references = [{"id": spec.search, "name": "search_0", "type": "search"}]
    else:
        source["indexRefName"] = SEARCH_INDEX_REF
        references = [index_reference(board)]
    attributes["kibanaSavedObjectMeta"]["searchSourceJSON"] = compact(source)
    return saved_object(flavour, "visualization", spec.id, attributes, references)


def dashboard(flavour: Flavour, board: Board = EVENTS) -> dict[str, Any]:
    panels, references = [], []
    for number, panel in enumerate(board.panels):
        ref_name = f"panel_{number}"
        object_type = "search" if isinstance(panel.ref, Search) else "visualization"
        index = str(number + 1)
        entry: dict[str, Any] = {"version": flavour.panel_version}
        if flavour.panel_has_type:
            entry["type"] = object_type
        entry.update(
            gridData={"x": panel.x, "y": panel.y, "w": panel.w, "h": panel.h, "i": index},
            panelIndex=index,
            embeddableConfig=flavour.embeddable_config,
            panelRefName=ref_name,
        )
        panels.append(entry)
        references.append({"id": panel.ref.id, "name": ref_name, "type": object_type})
    attributes = {
        "description": board.dashboard_description,
        "hits": 0,
        "kibanaSavedObjectMeta": {
            "searchSourceJSON": compact({"query": lucene(""), "filter": []}),
        },
        "optionsJSON": compact(flavour.dashboard_options),
        "panelsJSON": compact(panels),
        "refreshInterval": {"pause": True, "value": 0},
        "timeFrom": "now-24h",
        "timeRestore": True,
        "timeTo": "now",
        "title": board.dashboard_title,
        "version": 1,
    }
    return saved_object(flavour, "dashboard", board.dashboard_id, attributes, references)


def objects(flavour: Flavour, board: Board = EVENTS) -> list[dict[str, Any]]:
    """Referenced objects first, as Kibana's own exports order them."""
    return [
        index_pattern(flavour, board),
        *(search(flavour, spec, board) for spec in board.searches),
        *(visualization(flavour, spec, board) for spec in board.visualizations),
        dashboard(flavour, board),
    ]


def render(flavour_name: str, board: str = EVENTS.file) -> str:
    """The NDJSON of one board (``kube-events.ndjson``, ``kube-events-audit.ndjson``)."""
    flavour = FLAVOURS[flavour_name]
    return "".join(
        json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"
        for obj in objects(flavour, BOARDS[board])
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is stale")
    args = parser.parse_args(argv)
    stale = 0
    for name in FLAVOURS:
        for board in BOARDS:
            path = HERE / name / board
            text = render(name, board)
            current = path.read_text(encoding="utf-8") if path.exists() else None
            shown = path.relative_to(HERE.parent)
            if args.check:
                if current != text:
                    print(f"{shown} differs from the generator's output", file=sys.stderr)
                    stale += 1
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {shown}")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The Grafana dashboards of grafana/ against the real InfluxDB 1.8 of scripts/stack.

A known set of events (two clusters, three namespaces, Nodes without a namespace, count
updates, events before and after the time range) is written through the influxdb sink's own
``write()``, in both ``withfields`` modes. Then every panel's query and every template
variable's query is run the way Grafana runs it: variables substituted by Grafana's rules for
the InfluxDB data source (a multi-value selection becomes ``(a|b)`` with regex escaping, "All"
the custom all value ``.*`` unescaped, ``$timeFilter`` ``time >= <from>ms and time <= <to>ms``,
``$__interval`` the interval, ``epoch=ms``), and the result is compared with what Python computes
from the same events independently. A mutation test shows that a query which ignores a variable
fails this comparison. The JSON itself is checked for what Grafana needs to import it (through
the UI with ``__inputs``, or by file provisioning through the ``$datasource`` variable).
"""

from __future__ import annotations

import json
import random
import re
import urllib.parse
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipper.event import normalize
from shipper.sinks.base import SinkContext
from shipper.sinks.factory import build_sink
from shipper.sinks.influxdb import DEFAULT_DB, DEFAULT_TAGS, MEASUREMENT
from tests.support.common import ROOT

GRAFANA = ROOT / "grafana"
DASHBOARDS = sorted(
    (GRAFANA / "dashboards").glob("*-influxdb.json")
)  # tests/integration/test_grafana_prometheus.py: the other
DATASOURCE_REF = {"type": "influxdb", "uid": "${datasource}"}
FROM = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)
TO = datetime(2026, 11, 20, 11, 0, 0, tzinfo=UTC)
INTERVAL = "5m"
BUCKET_MS = 300_000
ALL = "$__all"


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside rows included."""
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return [panel for panel in found if panel["type"] != "row"]


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {var["name"]: var for var in dashboard["templating"]["list"]}


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# -- Grafana's substitutions for the InfluxDB data source (public/app/plugins/datasource/influxdb)


def escape_regex(value: str) -> str:
    """Grafana's escapeRegex for values put into /.../ regular expressions."""
    return re.sub(r"[\\^$*+?.()|\[\]{}/]", lambda m: "\\" + m.group(0), value)


def format_value(var: dict[str, Any], value: str | list[str]) -> str:
    if value == ALL or value == [ALL]:
        # A custom all value is put in as it is (templateSrv skips formatting it).
        return var["allValue"]
    if isinstance(value, list):
        escaped = [escape_regex(v) for v in value]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    return escape_regex(value) if var.get("multi") or var.get("includeAll") else value


def interpolate(query: str, dashboard: dict[str, Any], selection: dict[str, Any]) -> str:
    text = query.replace("$timeFilter", f"time >= {ms(FROM)}ms and time <= {ms(TO)}ms")
    text = text.replace("$__interval", INTERVAL)
    declared = variables(dashboard)

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in declared or name not in selection:
            raise AssertionError(f"{query!r} uses ${name}, which this test does not substitute")
        return format_value(declared[name], selection[name])

    text = re.sub(r"\$\{(\w+)\}|\$(\w+)", substitute, text)
    assert not re.search(r"\$[\w{]", text), text
    return text


# -- the known events


@dataclass(frozen=True)
class Spec:
    """One event version as written (what the expectations are computed from)."""

    uid: str
    cluster: str
    namespace: str | None  # None: a cluster-scoped object (a Node)
    kind: str
    obj: str
    reason: str
    type: str
    message: str
    count: int
    second: int  # the occurrence, whole seconds since the epoch

    def api_object(self) -> dict[str, Any]:
        moment = datetime.fromtimestamp(self.second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        involved = {"kind": self.kind, "name": self.obj, "uid": f"obj-{self.obj}"}
        if self.namespace:
            involved["namespace"] = self.namespace
        return {
            "metadata": {"uid": self.uid, "resourceVersion": str(self.second) + str(self.count),
                         "name": f"{self.obj}.{self.uid[:8]}", "namespace": self.namespace or "default"},
            "involvedObject": involved, "reason": self.reason, "type": self.type,
            "message": self.message, "count": self.count,
            "firstTimestamp": moment, "lastTimestamp": moment,
            "source": {"component": "kubelet", "host": "node-1"},
        }  # fmt: skip


WARNINGS = [  # (reason, kind, weight): weights distinct, so the top ten is telling
    ("BackOff", "Pod", 30), ("Unhealthy", "Pod", 24), ("FailedMount", "Pod", 19),
    ("FailedScheduling", "Pod", 15), ("OOMKilling", "Pod", 12), ("CrashLoopBackOff", "Pod", 10),
    ("Evicted", "Pod", 8), ("FailedCreatePodSandBox", "Pod", 6), ("NodeNotReady", "Node", 5),
    ("SystemOOM", "Node", 4), ("FailedAttachVolume", "Pod", 3), ("DNSConfigForming", "Pod", 2),
    ("ProbeWarning", "Pod", 1),
]  # fmt: skip
NORMALS = [("Scheduled", "Pod", 20), ("Pulled", "Pod", 20), ("Started", "Pod", 18),
           ("Killing", "Pod", 8), ("ScalingReplicaSet", "Deployment", 6), ("Starting", "Node", 2)]  # fmt: skip
NAMESPACES = ["shop", "payments", "kube-system"]
CLUSTERS = ["c1", "c2"]


def make_specs() -> list[Spec]:
    rng = random.Random(20261120)
    reasons = [(r, k, "Warning", w) for r, k, w in WARNINGS] + [
        (r, k, "Normal", w) for r, k, w in NORMALS
    ]
    used: set[int] = set()

    def free_second(low: int, high: int) -> int:
        while True:  # one version per second: "newest first" is then well defined
            second = rng.randrange(low, high)
            if second not in used:
                used.add(second)
                return second

    start, end = int(FROM.timestamp()), int(TO.timestamp())
    specs: list[Spec] = []
    for i in range(420):
        reason, kind, type_, _ = rng.choices(reasons, weights=[w for *_, w in reasons])[0]
        if i < 360:  # inside the range (not on its last second: the point's time is after it)
            second = free_second(start + 1, end - 1)
        else:  # before and after it: $timeFilter must leave them out
            second = (
                free_second(start - 1800, start - 1) if i % 2 else free_second(end + 1, end + 1800)
            )
        cluster = CLUSTERS[rng.random() < 0.4]
        namespace = None if kind == "Node" else rng.choice(NAMESPACES)
        obj = f"{kind.lower()}-{rng.randrange(40)}"
        uid = str(uuid.UUID(int=rng.getrandbits(128)))
        message = f'{reason} of {obj}: "quoted", back\\slash, {rng.randrange(10**6)}'
        specs.append(Spec(uid, cluster, namespace, kind, obj, reason, type_, message, 1, second))
        if rng.random() < 0.15 and second < end - 120:  # a count update, a later version
            later = free_second(second + 1, min(second + 600, end - 1))
            specs.append(Spec(uid, cluster, namespace, kind, obj, reason, type_, message, 2, later))
    return specs


SPECS = make_specs()


def influxql(url: str, q: str, db: str | None = None) -> list[dict[str, Any]]:
    """As Grafana sends it: POST /query, epoch=ms; the series of the first result."""
    params = {"q": q, "epoch": "ms"} | ({"db": db} if db else {})
    request = urllib.request.Request(f"{url}/query", data=urllib.parse.urlencode(params).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        result = json.load(response)["results"][0]
    assert "error" not in result, (q, result)
    return result.get("series", [])


@pytest.fixture(scope="module", params=["true", "false"], ids=["withfields", "kube-eventer-value"])
def events_db(request, influxdb_url: str) -> Iterator[tuple[str, str, str]]:
    """(url, database, withfields): SPECS written by the sink, one sink per cluster."""
    db = f"g_{uuid.uuid4().hex[:10]}"
    withfields = request.param
    for cluster in CLUSTERS:
        sink, _ = build_sink(
            f"influxdb:{influxdb_url}?db={db}&withfields={withfields}&cluster_name={cluster}",
            SinkContext(cluster="", state_dir=None),
        )
        sink.open()
        events = [normalize(s.api_object(), "ADDED") for s in SPECS if s.cluster == cluster]
        assert sink.write(events) == []
        sink.close()
    yield influxdb_url, db, withfields
    influxql(influxdb_url, f'DROP DATABASE "{db}"')


# -- what every panel must show, computed from SPECS


SELECTIONS = {
    "all": {"cluster": [ALL], "namespace": [ALL]},
    "cluster c1": {"cluster": ["c1"], "namespace": [ALL]},
    "two namespaces": {"cluster": [ALL], "namespace": ["shop", "payments"]},
    "c2 kube-system": {"cluster": ["c2"], "namespace": ["kube-system"]},
}


def selected(
    selection: dict[str, list[str]], *, where: Callable[[Spec], bool] = lambda s: True
) -> list[Spec]:
    start, end = int(FROM.timestamp()), int(TO.timestamp())
    clusters, namespaces = selection["cluster"], selection["namespace"]
    return [
        s for s in SPECS
        if start <= s.second < end
        and (clusters == [ALL] or s.cluster in clusters)
        and (namespaces == [ALL] or s.namespace in namespaces)
        and where(s)
    ]  # fmt: skip


def buckets(specs: list[Spec], key: Callable[[Spec], str]) -> dict[str, list[list[int]]]:
    """GROUP BY time(5m), tag fill(0) over [FROM, TO]: every bucket, 0 where there is nothing."""
    grid = range(ms(FROM) // BUCKET_MS * BUCKET_MS, ms(TO) // BUCKET_MS * BUCKET_MS + 1, BUCKET_MS)
    counts: dict[str, Counter[int]] = defaultdict(Counter)
    for s in specs:
        counts[key(s)][s.second * 1000 // BUCKET_MS * BUCKET_MS] += 1
    return {tag: [[t, per[t]] for t in grid] for tag, per in counts.items()}


def is_oom(s: Spec) -> bool:
    return "OOM" in s.reason


def is_restart(s: Spec) -> bool:
    return s.reason in ("BackOff", "CrashLoopBackOff")


def is_warning(s: Spec) -> bool:
    return s.type == "Warning"


def time_series(series: list[dict[str, Any]], tag: str) -> dict[str, list[list[int]]]:
    return {s.get("tags", {}).get(tag, ""): s["values"] for s in series}


def single_value(series: list[dict[str, Any]]) -> int:
    if not series:
        return 0
    ((_, value),) = series[0]["values"]
    return value


def check_rate(tag: str, where: Callable[[Spec], bool] = lambda s: True) -> Callable[..., None]:
    def check(
        series: list[dict[str, Any]], selection: dict[str, list[str]], withfields: str
    ) -> None:
        expected = buckets(selected(selection, where=where), lambda s: getattr(s, tag) or "")
        assert time_series(series, tag) == expected

    return check


def check_count(where: Callable[[Spec], bool] = lambda s: True) -> Callable[..., None]:
    def check(
        series: list[dict[str, Any]], selection: dict[str, list[str]], withfields: str
    ) -> None:
        assert single_value(series) == len(selected(selection, where=where))

    return check


def check_top_warning_reasons(series, selection, withfields) -> None:
    counts = Counter(s.reason for s in selected(selection, where=is_warning))
    top = sorted(counts.values(), reverse=True)[:10]
    if not series:
        assert not counts
        return
    assert series[0]["columns"] == ["time", "events", "reason"]
    rows = series[0]["values"]
    got = {reason: events for _, events, reason in rows}
    assert len(rows) == len(got) == len(top)
    assert sorted(got.values(), reverse=True) == top  # the ten largest (a tie may pick either)
    assert all(counts[reason] == events for reason, events in got.items())


def check_recent_warnings(series, selection, withfields) -> None:
    newest = sorted(selected(selection, where=is_warning), key=lambda s: -s.second)[:100]
    rows = (
        [dict(zip(series[0]["columns"], values, strict=True)) for values in series[0]["values"]]
        if series
        else []
    )
    assert len(rows) == len(newest)
    for row, spec in zip(rows, newest, strict=True):
        assert row["time"] // 1000 == spec.second  # newest first
        assert (row["cluster"], row["namespace"], row["kind"], row["reason"], row["count"]) == (
            spec.cluster, spec.namespace, spec.kind, spec.reason, spec.count,
        )  # fmt: skip
        if withfields == "true":
            assert (row["object_name"], row["message"], row["value"]) == (
                spec.obj,
                spec.message,
                None,
            )
        else:
            assert row["object_name"] is None and row["message"] is None
            document = json.loads(row["value"])
            assert document["message"] == spec.message
            assert document["kubernetes"]["event"]["involved_object"]["name"] == spec.obj


#: panel title -> how to check its result; a panel without one fails the test
EXPECTED: dict[str, Callable[..., None]] = {
    "Events": check_count(),
    "Warnings": check_count(is_warning),
    "OOM events": check_count(is_oom),
    "Restarts (BackOff, CrashLoopBackOff)": check_count(is_restart),
    "Event rate by type": check_rate("type"),
    "Event rate by namespace": check_rate("namespace"),
    "Event rate by reason": check_rate("reason"),
    "Top warning reasons": check_top_warning_reasons,
    "OOM timeline": check_rate("reason", is_oom),
    "Restart timeline: BackOff and CrashLoopBackOff": check_rate("namespace", is_restart),
    "Recent warnings": check_recent_warnings,
}


def expectation(panel: dict[str, Any]) -> Callable[..., None]:
    assert panel["title"] in EXPECTED, f"panel {panel['title']!r} has no expectation in this test"
    return EXPECTED[panel["title"]]


def run_panel(
    url: str,
    db: str,
    dashboard: dict[str, Any],
    panel: dict[str, Any],
    selection: dict[str, Any],
    query: str | None = None,
) -> list[dict[str, Any]]:
    (target,) = panel["targets"]
    return influxql(url, interpolate(query or target["query"], dashboard, selection), db)


@pytest.mark.stack("influxdb")
@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
@pytest.mark.parametrize("selection", list(SELECTIONS))
def test_every_panel_shows_what_the_events_say(events_db, path, selection):
    url, db, withfields = events_db
    dashboard = load(path)
    chosen = SELECTIONS[selection]
    for panel in panels(dashboard):
        check = expectation(panel)
        series = run_panel(url, db, dashboard, panel, chosen)
        try:
            check(series, chosen, withfields)
        except AssertionError as exc:
            raise AssertionError(f"panel {panel['title']!r}, selection {selection}: {exc}") from exc


@pytest.mark.stack("influxdb")
@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_template_variables_list_what_was_shipped(events_db, path):
    url, db, _ = events_db
    dashboard = load(path)
    declared = variables(dashboard)

    def values(name: str, selection: dict[str, Any]) -> set[str]:
        series = influxql(url, interpolate(declared[name]["query"], dashboard, selection), db)
        return {value for s in series for _, value in s["values"]}

    # SHOW TAG VALUES has no time range: every value ever written is listed.
    assert values("cluster", {}) == set(CLUSTERS)
    assert values("namespace", {"cluster": [ALL]}) == {s.namespace for s in SPECS if s.namespace}
    for cluster in CLUSTERS:
        assert values("namespace", {"cluster": [cluster]}) == {
            s.namespace for s in SPECS if s.namespace and s.cluster == cluster
        }


@pytest.mark.stack("influxdb")
@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_a_query_that_ignores_a_variable_fails_the_comparison(events_db, path):
    """The comparison is sharp: each panel, with its cluster or namespace filter taken out of
    its query, disagrees with the expectation for some selection."""
    url, db, withfields = events_db
    dashboard = load(path)
    mutations = {
        "no cluster filter": ('"cluster" =~ /^$cluster$/ AND ', "cluster c1"),
        "no namespace filter": ('"namespace" =~ /^$namespace$/ AND ', "two namespaces"),
    }
    for panel in panels(dashboard):
        query = panel["targets"][0]["query"]
        for name, (clause, selection) in mutations.items():
            assert clause in query, (panel["title"], name)
            broken = query.replace(clause, "")
            chosen = SELECTIONS[selection]
            with pytest.raises(AssertionError):
                expectation(panel)(
                    run_panel(url, db, dashboard, panel, chosen, broken), chosen, withfields
                )


# -- the JSON: what Grafana needs to import it, through the UI or by provisioning


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_the_dashboard_is_importable_grafana_json(path):
    dashboard = load(path)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"])
    assert dashboard["title"] and dashboard["id"] is None
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard["time"]["from"] and dashboard["time"]["to"]
    every = panels(dashboard)
    assert every
    assert len({p["id"] for p in every}) == len(every)
    assert len({p["title"] for p in every}) == len(every)
    cells: set[tuple[int, int]] = set()
    for panel in every:
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in "xywh"), panel["title"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["refId"] and target["rawQuery"] is True and target["query"].strip()
            assert target["datasource"] == DATASOURCE_REF
        assert panel["datasource"] == DATASOURCE_REF
    required = {(r["type"], r["id"]) for r in dashboard["__requires"]}
    assert {("panel", p["type"]) for p in every} <= required
    assert {("grafana", "grafana"), ("datasource", "influxdb")} <= required

    # UI import: one datasource input, used only to preselect the $datasource variable.
    (ds_input,) = dashboard["__inputs"]
    assert ds_input | {"label": None, "description": None} == {
        "name": "DS_INFLUXDB", "label": None, "description": None, "type": "datasource",
        "pluginId": "influxdb", "pluginName": "InfluxDB",
    }  # fmt: skip
    declared = variables(dashboard)
    datasource = declared["datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "influxdb")
    assert datasource["current"]["value"] == "${DS_INFLUXDB}"
    uses = [p for p, v in walk(dashboard) if isinstance(v, str) and "DS_INFLUXDB" in v]
    assert sorted(uses) == [
        ".__inputs[0].name",
        ".templating.list[0].current.text",
        ".templating.list[0].current.value",
    ]
    # Provisioning: every data source reference is the variable (or Grafana's own annotations).
    for where, value in walk(dashboard):
        if where.endswith(".datasource") and not where.startswith(".annotations"):
            assert value == DATASOURCE_REF, where
    for name in ("cluster", "namespace"):
        var = declared[name]
        assert (var["type"], var["multi"], var["includeAll"], var["allValue"]) == (
            "query",
            True,
            True,
            ".*",
        )
        assert var["datasource"] == DATASOURCE_REF


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_queries_use_the_sinks_schema(path):
    """Measurement, tags and fields in the queries are the ones the sink writes."""
    dashboard = load(path)
    queries = [t["query"] for p in panels(dashboard) for t in p["targets"]]
    queries += [v["query"] for v in variables(dashboard).values() if v["type"] == "query"]
    fields = {"count", "message", "object_name", "value"}
    for query in queries:
        assert re.findall(r'FROM ("\w+"|\()', query)[0] in (f'"{MEASUREMENT}"', "(")
        for name in re.findall(r'"(\w+)"', query):
            assert name in {MEASUREMENT, "events", *DEFAULT_TAGS, *fields}, (name, query)


def test_provisioning_examples():
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards.yaml").read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasource-influxdb.yaml").read_text())
    (source,) = sources["datasources"]
    assert (source["type"], source["access"]) == ("influxdb", "proxy")
    assert source["database"] == source["jsonData"]["dbName"] == DEFAULT_DB
    assert source["url"].startswith("http")


def test_the_time_range_and_data_are_what_the_checks_assume():
    """The checks assume one version per second and both clusters and every reason present."""
    assert len({s.second for s in SPECS}) == len(SPECS)
    inside = selected(SELECTIONS["all"])
    assert len(inside) > 100  # so LIMIT 100 of the warnings table matters for "all"
    assert len([s for s in inside if is_warning(s)]) > 100
    assert {s.cluster for s in inside} == set(CLUSTERS)
    assert {s.reason for s in inside} >= {r for r, _, _ in WARNINGS[:11]}
    assert any(s.count == 2 for s in inside) and any(s.namespace is None for s in inside)
    assert len(SPECS) > len(inside)  # some outside the range

"""The Loki dashboard (grafana/dashboards/kubernetes-events-loki.json) against the real Loki of
scripts/stack, as tests/integration/test_grafana.py does for the InfluxDB one.

A known set of events (three clusters, one of whose names holds a regex metacharacter, three
namespaces, Nodes without a namespace, count updates, events before and after the time range)
is written through the loki sink's own ``write()`` under a tenant of this run. Then every
panel's LogQL and every template variable's query is run the way Grafana's Loki data source runs
it: variables substituted by its rules (a multi-value selection becomes ``(a|b)`` with each value
regex-escaped for a LogQL string, one value escaped alone, "All" the custom all value ``.*``
unescaped; ``$__range`` the range in seconds, ``$__interval`` the interval), instant queries
(stat, bar gauge) at the range's end, range queries (time series) with the interval as step,
the logs panel backwards with its line limit. Each result is compared with what Python computes
from the same events independently. A mutation test shows that a query which ignores a variable
fails the comparison.
"""

from __future__ import annotations

import json
import random
import re
import urllib.parse
import urllib.request
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shipper.event import normalize
from shipper.sinks.base import SinkContext
from shipper.sinks.factory import build_sink
from shipper.sinks.influxdb import point_time
from tests.support.common import ROOT, stack_up

DASHBOARD = ROOT / "grafana" / "dashboards" / "kubernetes-events-loki.json"
CHART_COPY = ROOT / "helm" / "kube-event-shipper" / "dashboards" / "kubernetes-events-loki.json"
DATASOURCE_REF = {"type": "loki", "uid": "${datasource}"}
STEP = 300  # $__interval: 5m
ALL = "$__all"

# The first module to need Loki builds it from the Go module proxy: about 7 minutes on 2 idle
# cores from empty caches, more than the default per-test timeout.
pytestmark = [pytest.mark.stack("loki"), pytest.mark.timeout(1800)]


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return [panel for panel in found if panel["type"] != "row"]


# -- Grafana's substitutions for the Loki data source (public/app/plugins/datasource/loki)


def loki_special_regex_escape(value: str) -> str:
    """lokiSpecialRegexEscape: a value for a regex inside a LogQL string literal."""
    value = value.replace("\\", "\\\\\\\\")
    return re.sub(r"[$^*{}\[\]+?.()|]", lambda m: "\\\\" + m.group(0), value)


def format_value(var: dict[str, Any], value: str | list[str]) -> str:
    """interpolateQueryExpr for a multi/includeAll variable; "All" is the custom allValue."""
    values = value if isinstance(value, list) else [value]
    if values == [ALL]:
        return var["allValue"]
    escaped = [loki_special_regex_escape(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def interpolate(
    expr: str, dashboard: dict[str, Any], selection: dict[str, Any], range_s: int
) -> str:
    variables = {var["name"]: var for var in dashboard["templating"]["list"]}
    expr = expr.replace("$__range", f"{range_s}s").replace("$__interval", f"{STEP // 60}m")

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return format_value(variables[name], selection[name])

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", substitute, expr)


# -- the known events


@dataclass(frozen=True)
class Spec:
    cluster: str
    namespace: str | None
    kind: str
    obj: str
    reason: str
    type: str
    count: int
    uid: str
    at: datetime
    message: str

    def event(self) -> Any:
        moment = self.at.strftime("%Y-%m-%dT%H:%M:%SZ")
        involved = {"kind": self.kind, "name": self.obj} | (
            {"namespace": self.namespace} if self.namespace else {}
        )
        obj = {
            "metadata": {"uid": self.uid, "resourceVersion": str(random.randint(1, 10**9)),
                         "name": f"{self.obj}.{self.uid[:8]}", "namespace": self.namespace or "default"},
            "involvedObject": involved, "reason": self.reason, "message": self.message,
            "type": self.type, "count": self.count, "firstTimestamp": moment, "lastTimestamp": moment,
            "source": {"component": "kubelet", "host": "node-a"},
        }  # fmt: skip
        return normalize(obj, "ADDED", self.cluster)


CLUSTERS = ("prod.eu", "prodXeu", "dev")
NAMESPACES = ("shop", "db", "kube-system", None)  # None: a Node, cluster-scoped
REASONS = (
    ("BackOff", "Warning"), ("CrashLoopBackOff", "Warning"), ("OOMKilling", "Warning"),
    ("SystemOOM", "Warning"), ("FailedScheduling", "Warning"), ("Pulled", "Normal"),
    ("Scheduled", "Normal"), ("Started", "Normal"),
)  # fmt: skip


def make_specs(start: datetime, end: datetime) -> list[Spec]:
    rng = random.Random(20261120)
    specs = []
    span = int((end - start).total_seconds())
    for i in range(120):
        cluster = rng.choice(CLUSTERS)
        namespace = rng.choice(NAMESPACES)
        reason, type_ = rng.choice(REASONS)
        kind = "Node" if namespace is None else "Pod"
        uid = str(uuid.UUID(int=rng.getrandbits(128)))
        # a few before the range and after it; the rest inside
        offset = rng.randint(-1200, span + 300) if i % 10 == 0 else rng.randint(1, span - 1)
        at = start + timedelta(seconds=offset)
        for count in range(1, rng.choice((1, 1, 1, 2, 3)) + 1):  # count updates: later versions
            when = at + timedelta(seconds=(count - 1) * 40)
            specs.append(Spec(cluster, namespace, kind, f"obj-{i}", reason, type_, count, uid,
                              when, f"message {i} #{count}"))  # fmt: skip
    return specs


@pytest.fixture(scope="module")
def written() -> tuple[dict[str, str], str, datetime, datetime, list[Spec]]:
    env = stack_up("loki")
    tenant = f"dash-{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC).replace(microsecond=0)
    end = now - timedelta(minutes=10)
    end -= timedelta(seconds=end.timestamp() % STEP)  # the range ends on a step
    start = end - timedelta(hours=1)
    specs = make_specs(start, end)
    sink, _ = build_sink(
        f"loki:{env['LOKI_DIRECT_URL']}?tenant={tenant}", SinkContext(cluster="", state_dir=None)
    )
    sink.cluster = ""  # every event keeps its own cluster (the label comes from the sink's)
    by_cluster: dict[str, list[Spec]] = defaultdict(list)
    for spec in specs:
        by_cluster[spec.cluster].append(spec)
    for cluster, group in by_cluster.items():
        sink.cluster = cluster
        sink._label_cache.clear()
        outcome = sink.write([spec.event() for spec in group])
        assert not outcome.rejected and not outcome.retry, outcome
    sink.close()
    return env, tenant, start, end, specs


def ns(spec: Spec) -> int:
    return point_time(spec.event())


def loki_get(env: dict[str, str], tenant: str, path: str, **params: Any) -> Any:
    url = f"{env['LOKI_DIRECT_URL']}{path}?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url, headers={"X-Scope-OrgID": tenant})
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


# -- what each panel should show, computed from the specs


def selected(specs: list[Spec], selection: dict[str, Any]) -> list[Spec]:
    def ok(value: str | None, chosen: str | list[str]) -> bool:
        chosen = chosen if isinstance(chosen, list) else [chosen]
        return chosen == [ALL] or (value or "") in chosen

    return [
        s
        for s in specs
        if ok(s.cluster, selection["cluster"]) and ok(s.namespace, selection["namespace"])
    ]


def in_range(specs: list[Spec], start: datetime, end: datetime) -> list[Spec]:
    lo, hi = int(start.timestamp()) * 10**9, int(end.timestamp()) * 10**9
    return [s for s in specs if lo < ns(s) <= hi]


PREDICATES = {
    "": lambda s: True,
    'type="Warning"': lambda s: s.type == "Warning",
    'reason=~".*OOM.*"': lambda s: "OOM" in s.reason,
    'reason=~"BackOff|CrashLoopBackOff"': lambda s: s.reason in ("BackOff", "CrashLoopBackOff"),
}


def predicate(expr: str):
    extra = [key for key in PREDICATES if key and key in expr]
    assert len(extra) <= 1, expr
    return PREDICATES[extra[0] if extra else ""]


def expected_matrix(
    specs: list[Spec], start: datetime, end: datetime, by: str
) -> dict[str, dict[int, int]]:
    """{label value: {step time (s): count in (t - step, t]}}, empty buckets left out."""
    series: dict[str, dict[int, int]] = defaultdict(dict)
    t0, t1 = int(start.timestamp()), int(end.timestamp())
    for t in range(t0, t1 + 1, STEP):
        counts = Counter(
            getattr(s, by) or "" for s in specs if (t - STEP) * 10**9 < ns(s) <= t * 10**9
        )
        for value, n in counts.items():
            series[value][t] = n
    return dict(series)


def run_panel(panel, dashboard, env, tenant, start, end, selection) -> Any:
    range_s = int((end - start).total_seconds())
    [target] = panel["targets"]
    expr = interpolate(target["expr"], dashboard, selection, range_s)
    t_end = int(end.timestamp()) * 10**9
    if panel["type"] == "logs":
        data = loki_get(env, tenant, "/loki/api/v1/query_range", query=expr,
                        start=int(start.timestamp()) * 10**9, end=t_end,
                        limit=target["maxLines"], direction="backward")  # fmt: skip
        return [(int(ts), line) for stream in data["result"] for ts, line in stream["values"]]
    if target["queryType"] == "instant":
        data = loki_get(env, tenant, "/loki/api/v1/query", query=expr, time=t_end)
        return {
            json.dumps(r["metric"], sort_keys=True): int(float(r["value"][1]))
            for r in data["result"]
        }
    data = loki_get(env, tenant, "/loki/api/v1/query_range", query=expr,
                    start=int(start.timestamp()), end=int(end.timestamp()), step=STEP)  # fmt: skip
    return {
        json.dumps(r["metric"], sort_keys=True): {
            int(float(t)): int(float(v)) for t, v in r["values"] if float(v)
        }
        for r in data["result"]
    }


def expected(panel: dict[str, Any], specs: list[Spec], start, end, selection) -> Any:
    [target] = panel["targets"]
    expr = target["expr"]
    mine = [s for s in selected(specs, selection) if predicate(expr)(s)]
    if panel["type"] == "logs":
        newest = sorted(in_range(mine, start, end), key=ns, reverse=True)[: target["maxLines"]]
        return [(ns(s), f"{s.kind}/{s.obj} ({s.reason} x{s.count}): {s.message}") for s in newest]
    by = re.search(r"sum by \((\w+)\)", expr)
    if target["queryType"] == "instant":
        found = in_range(mine, start, end)
        if not by:
            return {"{}": len(found)} if found else {}
        counts = Counter(getattr(s, by.group(1)) or "" for s in found)
        if expr.startswith("topk(10,"):
            counts = Counter(dict(counts.most_common(10)))
        return {
            json.dumps({by.group(1): k} if k else {}, sort_keys=True): n for k, n in counts.items()
        }
    assert by, expr
    return {
        json.dumps({by.group(1): k} if k else {}, sort_keys=True): points
        for k, points in expected_matrix(mine, start, end, by.group(1)).items()
    }


SELECTIONS = [
    {"cluster": ALL, "namespace": ALL},
    {"cluster": ["prod.eu"], "namespace": ALL},
    {"cluster": ["prod.eu", "dev"], "namespace": ["shop", "db"]},
]


@pytest.mark.parametrize("selection", SELECTIONS, ids=["all", "one-cluster", "two-and-two"])
def test_every_panel_shows_what_the_events_say(written, selection):
    env, tenant, start, end, specs = written
    dashboard = load()
    assert len(panels(dashboard)) == 11
    for panel in panels(dashboard):
        got = run_panel(panel, dashboard, env, tenant, start, end, selection)
        want = expected(panel, specs, start, end, selection)
        assert want, (panel["title"], "the data must exercise every panel")
        if panel["type"] == "logs":
            assert sorted(got, reverse=True) == want, panel["title"]
        else:
            assert got == want, panel["title"]


def test_template_variables_list_what_was_shipped(written):
    env, tenant, start, end, specs = written
    dashboard = load()
    variables = {var["name"]: var for var in dashboard["templating"]["list"]}
    window = {"start": int((start - timedelta(minutes=30)).timestamp()) * 10**9,
              "end": int((end + timedelta(minutes=10)).timestamp()) * 10**9}  # fmt: skip

    def values(name: str, selection: dict[str, Any]) -> set[str]:
        query = variables[name]["query"]
        stream = interpolate(query["stream"], dashboard, selection, 3600)
        assert variables[name]["definition"] == f"label_values({query['stream']}, {query['label']})"
        return set(
            loki_get(
                env, tenant, f"/loki/api/v1/label/{query['label']}/values", query=stream, **window
            )
            or []
        )

    assert values("cluster", {}) == set(CLUSTERS)
    assert values("namespace", {"cluster": ALL}) == {s.namespace for s in specs if s.namespace}
    assert values("namespace", {"cluster": ["prod.eu"]}) == {
        s.namespace for s in specs if s.namespace and s.cluster == "prod.eu"
    }


def test_a_query_that_ignores_a_variable_fails_the_comparison(written):
    env, tenant, start, end, specs = written
    dashboard = load()
    panel = next(p for p in panels(dashboard) if p["title"] == "Events")
    broken = json.loads(json.dumps(panel))
    broken["targets"][0]["expr"] = broken["targets"][0]["expr"].replace(
        ', namespace=~"$namespace"', ""
    )
    selection = SELECTIONS[2]
    want = expected(panel, specs, start, end, selection)
    assert run_panel(panel, dashboard, env, tenant, start, end, selection) == want
    assert run_panel(broken, dashboard, env, tenant, start, end, selection) != want


def test_the_dashboard_is_importable_and_shipped_in_the_chart():
    dashboard = load()
    assert CHART_COPY.read_text() == DASHBOARD.read_text()
    assert [i["pluginId"] for i in dashboard["__inputs"]] == ["loki"]
    assert dashboard["uid"] == "kube-events-loki" and dashboard["id"] is None
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        assert panel["datasource"] == DATASOURCE_REF, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE_REF
            assert target["expr"].count('job="kube-event-shipper"') == 1
    for var in dashboard["templating"]["list"][1:]:
        assert var["datasource"] == DATASOURCE_REF

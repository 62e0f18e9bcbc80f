"""The shipper's own dashboard (grafana/dashboards/kube-event-shipper-prometheus.json).

Every panel's PromQL, with its variables substituted the way Grafana does (``$namespace`` the
selected namespace, ``$pod`` All = ``.*``, ``$__rate_interval`` and ``$__range``), is run by
Prometheus's own engine (``promtool test rules``, ``promql_expr_test``) over synthetic series of
the shipper's metrics, and must return exactly the samples written below by hand. The series
include another namespace's shipper, so a query that ignores ``$namespace`` returns other
numbers and fails (shown by a mutation test). Every metric a panel reads must be one the
daemon serves, and every panel must have expected samples here.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support.common import ROOT

DASHBOARD = ROOT / "grafana" / "dashboards" / "kube-event-shipper-prometheus.json"
CHOSEN = {"$namespace": "mon", "$pod": ".*", "$__rate_interval": "5m", "$__range": "1h"}
EVAL_TIME = "60m"

OURS = 'namespace="mon", pod="a"'
STANDBY = 'namespace="mon", pod="b"'
OTHER = 'namespace="other", pod="x"'  # another team's shipper: never in the results
SERIES = [  # (series, values at 1m steps from 0m to 60m)
    (f'kube_event_shipper_sink_events_total{{{OURS}, sink="es", outcome="shipped"}}', "0+600x60"),
    (f'kube_event_shipper_sink_events_total{{{OURS}, sink="log", outcome="shipped"}}', "0+300x60"),
    (f'kube_event_shipper_sink_events_total{{{OURS}, sink="es", outcome="dead_lettered"}}', "0x30 4x30"),
    (f'kube_event_shipper_sink_events_total{{{OTHER}, sink="es", outcome="shipped"}}', "0+6000x60"),
    (f'kube_event_shipper_sink_events_total{{{OTHER}, sink="es", outcome="dead_lettered"}}', "0+1x60"),
    (f"kube_event_shipper_leader{{{OURS}}}", "1x60"),
    (f"kube_event_shipper_leader{{{STANDBY}}}", "0x60"),
    (f"kube_event_shipper_leader{{{OTHER}}}", "1x60"),
    (f"kube_event_shipper_watch_ready{{{OURS}}}", "1x60"),
    (f"kube_event_shipper_watch_ready{{{STANDBY}}}", "1x60"),
    (f"kube_event_shipper_watch_ready{{{OTHER}}}", "0x60"),
    (f'kube_event_shipper_sink_up{{{OURS}, sink="es"}}', "0x60"),
    (f'kube_event_shipper_sink_up{{{OURS}, sink="log"}}', "1x60"),
    (f'kube_event_shipper_sink_up{{{OTHER}, sink="es"}}', "0x60"),
    (f"kube_event_shipper_last_event_timestamp_seconds{{{OURS}}}", "3540x60"),
    (f"kube_event_shipper_last_event_timestamp_seconds{{{OTHER}}}", "3599x60"),
    (f'kube_event_shipper_sink_queue_length{{{OURS}, sink="es"}}', "500x60"),
    (f'kube_event_shipper_sink_queue_capacity{{{OURS}, sink="es"}}', "1000x60"),
    (f'kube_event_shipper_sink_queue_length{{{OURS}, sink="log"}}', "100x60"),
    (f'kube_event_shipper_sink_queue_capacity{{{OURS}, sink="log"}}', "1000x60"),
    (f'kube_event_shipper_sink_queue_length{{{OTHER}, sink="es"}}', "1000x60"),
    (f'kube_event_shipper_sink_queue_capacity{{{OTHER}, sink="es"}}', "1000x60"),
    (f'kube_event_shipper_sink_write_seconds_bucket{{{OURS}, sink="es", le="0.1"}}', "0x60"),
    (f'kube_event_shipper_sink_write_seconds_bucket{{{OURS}, sink="es", le="0.5"}}', "0+10x60"),
    (f'kube_event_shipper_sink_write_seconds_bucket{{{OURS}, sink="es", le="+Inf"}}', "0+10x60"),
    (f'kube_event_shipper_sink_write_seconds_bucket{{{OTHER}, sink="es", le="0.1"}}', "0+1000x60"),
    (f'kube_event_shipper_sink_write_seconds_bucket{{{OTHER}, sink="es", le="0.5"}}', "0+1000x60"),
    (f'kube_event_shipper_sink_write_seconds_bucket{{{OTHER}, sink="es", le="+Inf"}}', "0+1000x60"),
    (f'kube_event_shipper_notify_events_total{{{OURS}, sink="slack", outcome="sent"}}', "0+6x60"),
    (f'kube_event_shipper_notify_events_total{{{OURS}, sink="slack", outcome="digested"}}', "0+60x60"),
    (f'kube_event_shipper_watch_events_total{{{OURS}, type="ADDED"}}', "0+60x60"),
    (f'kube_event_shipper_watch_events_total{{{OURS}, type="MODIFIED"}}', "0+120x60"),
    (f'kube_event_shipper_watch_events_total{{{OTHER}, type="ADDED"}}', "0+600x60"),
    (f'kube_event_shipper_watch_restarts_total{{{OURS}, reason="timeout"}}', "0+1x60"),
    (f'kube_event_shipper_enrich_events_total{{{OURS}, outcome="enriched"}}', "0+120x60"),
    (f'kube_event_shipper_enrich_events_total{{{OURS}, outcome="rate_limited"}}', "0+30x60"),
    (f"kube_event_shipper_inflight_events{{{OURS}}}", "3x60"),
    (f"kube_event_shipper_checkpoint_tracked_events{{{OURS}}}", "1500x60"),
    (f"kube_event_shipper_checkpoint_tracked_events{{{OTHER}}}", "99x60"),
]  # fmt: skip

#: (panel title, refId) -> the samples Prometheus must return at EVAL_TIME: {labels: value}.
#: Worked out by hand from SERIES: a counter going up by 600 a minute is 10/s.
EXPECTED: dict[tuple[str, str], dict[str, float]] = {
    ("Shipped / s", "A"): {"{}": 15},  # es 10/s + log 5/s
    ("Leader", "A"): {'{pod="a"}': 1},
    ("Leader watching", "A"): {"{}": 1},  # the standby's watch_ready counts for nothing
    ("Sinks failing", "A"): {"{}": 1},  # es
    ("Since the last event", "A"): {"{}": 60},  # time() 3600 - 3540
    ("Dead letters", "A"): {"{}": 4},
    ("Events by sink and outcome", "A"): {
        '{sink="es", outcome="shipped"}': 10,
        '{sink="log", outcome="shipped"}': 5,
        '{sink="es", outcome="dead_lettered"}': 0,  # no dead letter in the last 5 minutes
    },
    ("Queue fill by sink", "A"): {'{sink="es"}': 0.5, '{sink="log"}': 0.1},
    # every write took 0.1-0.5 s: the 95th percentile interpolates to 0.1 + 0.4 * 0.95
    ("Write latency p95 by sink", "A"): {'{sink="es"}': 0.48},
    ("Notifications by sink and outcome", "A"): {
        '{sink="slack", outcome="sent"}': 0.1,
        '{sink="slack", outcome="digested"}': 1,
    },
    ("Watch events by type", "A"): {'{type="ADDED"}': 1, '{type="MODIFIED"}': 2},
    ("Watch restarts by reason", "A"): {'{reason="timeout"}': 5},  # one a minute, 5m window
    ("Enrichment by outcome", "A"): {'{outcome="enriched"}': 2, '{outcome="rate_limited"}': 0.5},
    ("In flight and checkpoint", "A"): {"{}": 3},
    ("In flight and checkpoint", "B"): {"{}": 1500},
}


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def queries(dashboard: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {
        (panel["title"], target["refId"]): target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    }


def substitute(expr: str, chosen: dict[str, str]) -> str:
    for name in sorted(chosen, key=len, reverse=True):  # $__range before $__rate_interval...
        expr = expr.replace(name, chosen[name])
    assert "$" not in expr, f"a variable is left: {expr}"
    return expr


def run_promtool(promtool: str, tmp_path: Path, exprs: dict[tuple[str, str], str]) -> Any:
    tests = [
        {
            "expr": expr,
            "eval_time": EVAL_TIME,
            "exp_samples": [
                {"labels": labels, "value": value} for labels, value in EXPECTED[key].items()
            ],
        }
        for key, expr in exprs.items()
    ]
    spec = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in SERIES],
                "promql_expr_test": tests,
            }
        ],
    }
    path = tmp_path / "panels-test.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=120
    )


def test_every_panel_query_returns_what_the_series_say(promtool, tmp_path):
    found = queries(load())
    assert set(found) == set(EXPECTED), "every panel needs its expected samples, and only those"
    exprs = {key: substitute(expr, CHOSEN) for key, expr in found.items()}
    ran = run_promtool(promtool, tmp_path, exprs)
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_a_query_that_ignores_the_namespace_fails_the_comparison(promtool, tmp_path):
    exprs = {key: substitute(expr, CHOSEN) for key, expr in queries(load()).items()}
    key = ("Shipped / s", "A")
    exprs = {key: exprs[key].replace('namespace=~"mon"', 'namespace=~".*"')}
    ran = run_promtool(promtool, tmp_path, exprs)
    assert ran.returncode != 0
    assert "got: {} 1.15E+02" in ran.stdout + ran.stderr  # 15 + the other namespace's 100/s


def test_panels_read_metrics_the_shipper_serves():
    from prometheus_client import generate_latest

    from shipper.metrics import Metrics

    text = generate_latest(Metrics().registry).decode()
    families = {line.split(" ")[2] for line in text.splitlines() if line.startswith("# TYPE")}
    served = families | {f"{n}_total" for n in families} | {f"{n}_bucket" for n in families}
    used = {
        name
        for expr in queries(load()).values()
        for name in re.findall(r"\b(kube_event_shipper_\w+)\{", expr)
    }
    assert used and used <= served, used - served
    variables = [v for v in load()["templating"]["list"] if v["type"] == "query"]
    for variable in variables:
        (metric,) = re.findall(r"label_values\((\w+)", variable["definition"])
        assert metric in served


def test_the_dashboard_is_importable_and_provisionable():
    """Through the UI (``__inputs`` names the Prometheus data source) or by file provisioning
    (every panel and target uses the ``$datasource`` variable)."""
    dashboard = load()
    assert dashboard["uid"] == "kube-event-shipper" and dashboard["title"]
    assert dashboard["__inputs"][0]["pluginId"] == "prometheus"
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert names == ["datasource", "namespace", "pod"]
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))

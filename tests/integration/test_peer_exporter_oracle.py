"""The kubernetes-event-exporter oracle (tests/peer) answers as the exporter does.

These tests check the oracle itself on small inline configs, so that a comparison of the shipper
against it can be trusted: route semantics, label rules, load refusals, default and layout bodies.
Expected values are worked out here in Python from the inputs, not copied from the oracle's output.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.peer import oracle

pytestmark = pytest.mark.timeout(600)  # the first call may build the oracle (about 100 s cold)


def event(
    uid: str,
    *,
    namespace: str = "default",
    kind: str = "Pod",
    name: str = "web-1",
    reason: str = "BackOff",
    message: str = "Back-off restarting failed container",
    type_: str = "Warning",
    count: int = 1,
    first: str = "2024-05-01T10:00:00Z",
    last: str | None = "2024-05-01T10:00:03Z",
    event_time: str | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{name}.{uid}",
            "namespace": namespace,
            "uid": uid,
            "managedFields": [{"manager": "kubelet", "operation": "Update"}],
        },
        "involvedObject": {
            "kind": kind,
            "namespace": namespace,
            "name": name,
            "apiVersion": "v1",
            "uid": f"obj-{uid}",
        },
        "reason": reason,
        "message": message,
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": first,
        "lastTimestamp": last,
        "eventTime": event_time,
        "count": count,
        "type": type_,
    }


def receivers(*names: str) -> str:
    return "receivers:\n" + "".join(f"  - name: {n}\n    stdout: {{}}\n" for n in names)


def test_drop_ends_only_its_own_route_and_its_subroutes():
    config = (
        receivers("a", "b", "c")
        + """
route:
  routes:
    - drop:
        - namespace: "^kube-system$"
      match:
        - receiver: a
      routes:
        - match:
            - receiver: c
    - match:
        - receiver: b
"""
    )
    answer = oracle.run(config, [event("e1"), event("e2", namespace="kube-system")])
    assert answer["loaded"], answer["error"]
    assert oracle.routed(answer) == [("e1", "a"), ("e1", "c"), ("e1", "b"), ("e2", "b")]


def test_subroutes_run_only_when_every_match_rule_matches():
    config = (
        receivers("pods", "busy", "deep")
        + """
route:
  routes:
    - match:
        - kind: "^Pod$"
          receiver: pods
      routes:
        - match:
            - receiver: deep
    - match:
        - receiver: busy
          minCount: 5
        - type: "Normal"
      routes:
        - match:
            - receiver: deep
"""
    )
    events = [
        event("pod-warning", count=7),  # 1st route: pods, deep; 2nd: busy, but not Normal
        event("node", kind="Node", type_="Normal", count=1),  # 1st: not a Pod; 2nd: count < 5
        event("pod-normal", type_="Normal", count=9),  # both routes, both sub-routes
    ]
    answer = oracle.run(config, events)
    assert oracle.routed(answer) == [
        ("pod-warning", "pods"),
        ("pod-warning", "deep"),
        ("pod-warning", "busy"),
        ("pod-normal", "pods"),
        ("pod-normal", "deep"),
        ("pod-normal", "busy"),
        ("pod-normal", "deep"),
    ]
    # A match rule that names only a receiver matches every event.
    answer = oracle.run(receivers("all") + "route: {match: [{receiver: all}]}\n", events)
    assert [uid for uid, _ in oracle.routed(answer)] == ["pod-warning", "node", "pod-normal"]


def test_label_rules_read_the_involved_objects_labels():
    config = (
        receivers("web", "blue")
        + """
route:
  routes:
    - match:
        - receiver: web
          labels:
            app: "^web$"
        - receiver: blue
          annotations:
            team.example.com/owner: "blu"
"""
    )
    labels = {
        "Pod/default/web-1": {
            "labels": {"app": "web"},
            "annotations": {"team.example.com/owner": "blue"},
        },
        "Pod/default/web-2": {"labels": {"app": "webshop"}},
    }
    events = [event("one", name="web-1"), event("two", name="web-2"), event("three", name="web-3")]
    answer = oracle.run(config, events, labels=labels)
    assert oracle.routed(answer) == [("one", "web"), ("one", "blue")]
    # Without the lookup (omitLookup) there are no labels, so no label rule matches.
    answer = oracle.run("omitLookup: true\n" + config, events, labels=labels)
    assert oracle.routed(answer) == []


def test_layout_renders_go_templates_with_sprig():
    ev = event("tpl", message="Back-off <restarting> & failing", count=3)
    config = """
receivers:
  - name: hook
    webhook:
      endpoint: "http://127.0.0.1:9/unused"
      headers:
        X-Reason: "{{ .Reason | lower }}"
      layout:
        upper: "{{ .Message | upper }}"
        trunc: "{{ .Reason | trunc 4 }}"
        sha: "{{ sha256sum .Message }}"
        b64: "{{ b64enc .InvolvedObject.Name }}"
        next: "{{ add .Count 1 }}"
        ms: "{{ .GetTimestampMs }}"
        labels: "{{ toJson .InvolvedObject.Labels }}"
        missing: "{{ index .InvolvedObject.Labels \\"nope\\" }}"
        missing_field: "{{ .InvolvedObject.Labels.nope }}"
        number: 7
        nested:
          list: ["{{ .Type }}", true]
route:
  routes:
    - match:
        - receiver: hook
"""
    labels = {"Pod/default/web-1": {"labels": {"b": "2", "a": "1"}}}
    answer = oracle.run(config, [ev], labels=labels)
    [delivery] = answer["deliveries"]
    assert "error" not in delivery
    first_ms = int(datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC).timestamp() * 1000)
    expected = {
        "upper": ev["message"].upper(),
        "trunc": ev["reason"][:4],
        "sha": hashlib.sha256(ev["message"].encode()).hexdigest(),
        "b64": base64.b64encode(b"web-1").decode(),
        "next": "4",
        "ms": str(first_ms),
        "labels": json.dumps({"a": "1", "b": "2"}, separators=(",", ":")),
        "missing": "",  # index on a map[string]string: the zero value
        "missing_field": "<no value>",  # field syntax on a missing key
        "number": None,  # non-string layout values become null
        "nested": {"list": ["Warning", None]},
    }
    body = delivery["body"]
    assert json.loads(body) == expected
    # Go's encoding/json: sorted keys, no spaces, HTML characters escaped, no trailing newline.
    assert body == json.dumps(expected, sort_keys=True, separators=(",", ":")).replace(
        "<", "\\u003c"
    ).replace(">", "\\u003e").replace("&", "\\u0026")
    assert delivery["headers"] == {"X-Reason": "backoff"}


def test_default_body_is_the_enhanced_event():
    config = """
clusterName: prod-eu
receivers:
  - name: out
    file:
      path: /dev/stdout
  - name: dedot
    stdout:
      deDot: true
route:
  routes:
    - match:
        - receiver: out
        - receiver: dedot
"""
    ev = event("plain", message="a <b> & c")
    labels = {"Pod/default/web-1": {"labels": {"app.kubernetes.io/name": "web"}}}
    answer = oracle.run(config, [ev], labels=labels)
    out, dedot = oracle.bodies(answer, "out")[0], oracle.bodies(answer, "dedot")[0]
    assert out.endswith("\n") and out.count("\n") == 1  # json.Encoder: one line per event
    assert "\\u003cb\\u003e \\u0026 c" in out
    doc = json.loads(out)
    assert doc["clusterName"] == "prod-eu"
    assert "managedFields" not in doc["metadata"]
    assert doc["metadata"]["uid"] == "plain"
    assert doc["involvedObject"]["labels"] == {"app.kubernetes.io/name": "web"}
    assert doc["involvedObject"]["deleted"] is False
    assert doc["eventTime"] is None
    assert json.loads(dedot)["involvedObject"]["labels"] == {"app_kubernetes_io/name": "web"}
    assert list(doc)[-2:] == ["clusterName", "involvedObject"]


def test_empty_layout_writes_an_empty_object():
    # The bitnami chart's default receiver.
    config = """
receivers:
  - name: dump
    file:
      path: /dev/stdout
      layout: {}
  - name: hook
    webhook:
      endpoint: "http://127.0.0.1:9/unused"
      layout: {}
route:
  routes:
    - match:
        - receiver: dump
        - receiver: hook
"""
    answer = oracle.run(config, [event("x"), event("y")])
    assert oracle.bodies(answer, "dump") == ["{}\n", "{}\n"]
    assert oracle.bodies(answer, "hook") == ["{}", "{}"]


def test_a_receiver_named_but_not_defined_gets_nothing():
    config = receivers("a") + "route:\n  routes:\n    - match:\n        - receiver: ghost\n"
    answer = oracle.run(config, [event("e")])
    assert answer["loaded"]
    assert answer["deliveries"] == []
    assert [(x["event_uid"], x["receiver"]) for x in answer["lost"]] == [("e", "ghost")]


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ("receivers:\n  - name: a\n    webhok: {endpoint: x}\n", "unknown sink"),
        ("throttlePeriod: 5\nmaxEventAgeSeconds: 10\n", "validateMaxEventAgeSeconds"),
        ("logLevel: verbose\n", "Invalid log level"),
        ("logFormat: text\n", "Unknown log format"),
        ("metricsNamePrefix: bad-prefix\n", "validateMetricsNamePrefix"),
        ("logLevel: {{info}}\n", "Need to wrap values with special characters in quotes"),
        ("maxEventAgeSeconds: ten\n", "cannot unmarshal string"),
        # goccy/go-yaml v1.11.0 panics on an empty value in a flow mapping: the exporter dies.
        ("receivers: [{name: a, file: {path: /dev/null, layout: }}]\n", "panic"),
    ],
)
def test_configs_the_exporter_refuses(config: str, error: str):
    answer = oracle.run(config, [])
    assert not answer["loaded"]
    assert error in answer["error"]


def test_defaults_and_unknown_keys():
    answer = oracle.run("noSuchKey: 1\nroute: {}\n", [])
    assert answer["loaded"], answer["error"]
    eff = answer["effective"]
    assert (eff["maxEventAgeSeconds"], eff["cacheSize"], eff["kubeQPS"], eff["kubeBurst"]) == (
        5,
        1024,
        5,
        10,
    )
    assert oracle.run("throttlePeriod: 30\n", [])["effective"]["maxEventAgeSeconds"] == 30
    # Keys are case-sensitive: a misspelt rule key is ignored, so the rule matches every event.
    config = receivers("a") + "route: {match: [{receiver: a, Kind: Node, mincount: 9}]}\n"
    answer = oracle.run(config, [event("pod", count=1)])
    assert oracle.routed(answer) == [("pod", "a")]


def test_environment_is_expanded_before_parsing():
    route = "route:\n  routes:\n    - match:\n        - receiver: a\n"
    plain = receivers("a").replace("stdout: {}", 'stdout: {layout: {who: "${WHO}"}}') + route
    answer = oracle.run(plain, [event("e")], env={"WHO": "ops"})
    assert json.loads(oracle.bodies(answer, "a")[0]) == {"who": "ops"}
    # `$x` is an (empty) environment variable too, so this template no longer parses.
    variable = receivers("a").replace(
        "stdout: {}", 'stdout: {layout: {r: "{{ $x := .Reason }}{{ $x }}"}}'
    )
    [delivery] = oracle.run(variable + route, [event("e")])["deliveries"]
    assert delivery["body"] is None
    assert "template" in delivery["error"]


def test_max_event_age_uses_last_timestamp_then_event_time():
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

    def ago(seconds: int, micro: bool = False) -> str:
        t = now - timedelta(seconds=seconds)
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")

    events = [
        event("fresh", last=ago(3)),
        event("stale", last=ago(30)),
        event("series", first=None, last=None, event_time=ago(2, micro=True)),
        event("no-time", first=None, last=None),
    ]
    config = "maxEventAgeSeconds: 10\n" + receivers("a") + "route: {match: [{receiver: a}]}\n"
    answer = oracle.run(config, events, now=now.isoformat())
    assert [uid for uid, _ in oracle.routed(answer)] == ["fresh", "series"]
    assert sorted(x["event_uid"] for x in answer["discarded"]) == ["no-time", "stale"]


def test_the_oracle_still_gives_the_recorded_answers_for_the_corpus():
    """tests/unit/test_dropin.py compares this project with these answers in process; here the
    oracle (the original's libraries at its versions) gives them again."""
    from tests.unit.test_corpus import CONFIGS, CORPUS, ENV

    answers = CORPUS / "oracle-answers.json.gz"
    live = {
        path.name: oracle.run(
            path, CORPUS / "events.jsonl", labels=CORPUS / "object-labels.json", env=ENV
        )
        for path in CONFIGS
    }
    if os.environ.get("KES_RECORD_ORACLE") == "1":
        text = json.dumps(live, indent=1, sort_keys=True) + "\n"
        answers.write_bytes(gzip.compress(text.encode(), mtime=0))
    kept = json.loads(gzip.decompress(answers.read_bytes()))
    differ = sorted(name for name in live if live[name] != kept.get(name))
    assert not differ, (
        f"the oracle answers differently for {differ}; re-record with KES_RECORD_ORACLE=1"
    )

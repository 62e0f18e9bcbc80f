"""kubernetes-event-exporter config files: route semantics, start-up errors, and end to end."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shipper.config import load
from shipper.event import normalize
from shipper.uri import UsageError
from tests.support.common import ROOT, wait_for
from tests.support.kube import core_event

README_CONFIG = """\
logLevel: error
logFormat: json
maxEventAgeSeconds: 5
clusterName: prod
kubeQPS: 5
kubeBurst: 10
route:
  routes:
    - match:
        - receiver: dump
    - drop:
        - namespace: "*test*"
        - type: Normal
      match:
        - kind: "Pod|Deployment|ReplicaSet"
          labels: {version: dev}
          receiver: alerts
receivers:
  - name: dump
    stdout: {}
  - name: alerts
    file:
      path: /tmp/alerts.jsonl
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def event(ns="shop", kind="Pod", type_="Warning", reason="BackOff", message="m", count=1,
          component="kubelet", host="node-a", labels=None, api="v1"):  # fmt: skip
    obj = {
        "metadata": {"uid": f"u-{ns}-{kind}-{reason}", "resourceVersion": "1", "name": "e", "namespace": ns},
        "involvedObject": {"kind": kind, "name": "x", "namespace": ns, "apiVersion": api},
        "reason": reason, "message": message, "type": type_, "count": count,
        "source": {"component": component, "host": host},
    }  # fmt: skip
    made = normalize(obj, "ADDED")
    made.labels = labels
    return made


@pytest.mark.parametrize(
    ("ev", "receivers"),
    [
        (event(ns="shop", labels={"version": "dev"}), ["dump", "alerts"]),
        (event(ns="shop", labels={"version": "prod"}), ["dump"]),
        (event(ns="shop"), ["dump"]),  # no labels known: a labels rule does not match
        (event(ns="my-test-ns", labels={"version": "dev"}), ["dump"]),  # the glob drops it
        (event(ns="shop", type_="Normal", labels={"version": "dev"}), ["dump"]),
        (event(ns="shop", kind="Deployment", labels={"version": "dev"}), ["dump", "alerts"]),
        (event(ns="shop", kind="Node", labels={"version": "dev"}), ["dump"]),
    ],
)
def test_the_readme_config_routes_as_its_authors_meant(tmp_path, ev, receivers):
    config = load(write(tmp_path, README_CONFIG))
    assert config.receivers_for(ev) == receivers
    assert config.cluster_name == "prod" and config.log_level == "error"


NESTED = """\
route:
  drop:
    - reason: "^(NodeSysctlChange|KubeletStart|ContainerdStart|DockerStart|IngressGCE_RemoveNodes|Sync)$"
  match:
    - receiver: everything
  routes:
    - match:
        - type: Warning
          receiver: warnings
        - namespace: "^prod-"
          receiver: prod
      routes:
        - match:
            - minCount: 5
              receiver: loud
    - match:
        - component: "^kubelet$"
          host: "node-a"
          message: "OOM"
          receiver: oom
        - reason: OOMKilling
          receiver: oom
receivers:
  - {name: everything, stdout: {}}
  - {name: warnings, stdout: {}}
  - {name: prod, stdout: {}}
  - {name: loud, stdout: {}}
  - {name: oom, stdout: {}}
"""


@pytest.mark.parametrize(
    ("ev", "receivers"),
    [
        (event(reason="Sync"), []),  # a drop ends the route and its whole subtree
        (event(reason="Syncing"), ["everything", "warnings"]),  # anchored by its author
        # both rules of the child route must match for its own children to run
        (event(ns="prod-a", count=5), ["everything", "warnings", "prod", "loud"]),
        (event(ns="shop", count=5), ["everything", "warnings"]),
        (event(ns="prod-a", type_="Normal", count=9), ["everything", "prod"]),
        # fields AND within a rule, rules OR; a receiver gets an event once
        (event(message="OOM killed", reason="OOMKilling"), ["everything", "warnings", "oom"]),
        (event(message="OOM killed", host="node-b"), ["everything", "warnings"]),
        (event(message="fine", reason="OOMKilling", type_="Normal"), ["everything", "oom"]),
    ],
)
def test_route_semantics(tmp_path, ev, receivers):
    assert load(write(tmp_path, NESTED)).receivers_for(ev) == receivers


LENIENT = [
    # What the original loads silently: a warning naming the line here, an error with --strict.
    (
        "route: {match: [{namespace: '(unclosed', receiver: a}]}\nreceivers: [{name: a, stdout: {}}]\n",
        r"config.yaml:1: namespace: '\(unclosed' is not a valid regular expression .*; it never matches",
    ),
    (
        "route:\n  match:\n    - nmespace: x\n      receiver: a\nreceivers: [{name: a, stdout: {}}]\n",
        r"config.yaml:3: unknown rule field 'nmespace' is ignored",
    ),
    (
        "route: {match: [{receiver: nowhere}]}\nreceivers: [{name: a, stdout: {}}]\n",
        r"config.yaml:1: receiver 'nowhere' is not defined \(receivers: a\); its events go nowhere",
    ),
    ("rout: {}\n", r"config.yaml:1: unknown key 'rout' is ignored"),
    (
        "route: {match: [{receiver: a}]}\nreceivers:\n  - name: a\n    elasticsearch: {hosts: [http://x:9200], indx: a}\n",
        r"config.yaml:4: receiver 'a': unknown elasticsearch option 'indx' is ignored",
    ),
    (
        "route: {match: [{receiver: a}]}\nreceivers:\n  - name: a\n    file: {path: /tmp/x}\n    layout: {m: x}\n",
        r"config.yaml:5: receiver 'a': 'layout' beside 'file' is ignored",
    ),
]


@pytest.mark.parametrize(("text", "message"), LENIENT)
def test_what_the_original_ignores_is_a_warning_and_an_error_with_strict(
    tmp_path, caplog, text, message
):
    from shipper.sinks.base import SinkContext
    from shipper.sinks.factory import build_sinks

    path = write(tmp_path, text)
    with pytest.raises(UsageError, match=message + r".*\(--strict\)"):
        build_sinks([], SinkContext("", None), load(path, strict=True))
    caplog.clear()
    build_sinks([], SinkContext("", None), load(path))
    assert re.search(message, caplog.text), caplog.text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "route: {match: [{receiver: a}]}\nreceivers:\n  - name: a\n    bigquery: {project: x}\n",
            r"config.yaml:3: receiver 'a': type 'bigquery' is not supported",
        ),
        (
            "route: {match: [{receiver: a}]}\nreceivers:\n  - name: a\n    stdout: {layout: {m: '{{ .Reasn }}'}}\n",
            r"config.yaml:3 receiver a: log: parameter layout=.*layout.m.*\.Reasn",
        ),
        ("route:\n  match: [\n", r"config.yaml:\d+: not valid YAML"),
        (
            # the opsgenie README's unquoted template: `{{ x }}` is a mapping used as a key
            "receivers:\n  - name: k\n    kafka:\n      brokers:\n        - {{ brokers }}\n      topic: t\n",
            r"config.yaml:5: not valid YAML: a key here is itself a mapping",
        ),
        (
            "maxEventAgeSeconds: 5\nthrottlePeriod: 5\n",
            r"config.yaml:2: throttlePeriod is the old name of maxEventAgeSeconds",
        ),
        (
            "route: {match: [{receiver: a}]}\nreceivers:\n  - name: a\n    elasticsearch: {hosts: [ftp://x]}\n",
            r"config.yaml:3 receiver a: elasticsearch: server 'ftp://x': expected a URL",
        ),
    ],
)
def test_start_up_errors_name_file_and_line(tmp_path, text, message):
    path = write(tmp_path, text)
    from shipper.sinks.base import SinkContext
    from shipper.sinks.factory import build_sinks

    with pytest.raises(UsageError, match=message):
        build_sinks([], SinkContext("", None), load(path))


def test_receivers_become_sinks_with_their_options(tmp_path):
    from shipper.sinks.base import SinkContext
    from shipper.sinks.factory import build_sinks

    path = write(tmp_path, """\
        route: {match: [{receiver: es}, {receiver: out}]}
        receivers:
          - name: es
            elasticsearch:
              hosts: [http://127.0.0.1:9200, http://127.0.0.1:9201]
              index: kube-events
              username: elastic
              password: secret
              deDot: true
              useEventID: true
              tls: {insecureSkipVerify: true}
          - name: out
            file: {path: /tmp/x/out.jsonl, maxsize: 5, maxbackups: 2}
    """)  # fmt: skip
    built = {
        settings.name: sink for sink, settings in build_sinks([], SinkContext("", None), load(path))
    }
    es = built["es"]
    assert es.nodes == ["http://127.0.0.1:9200", "http://127.0.0.1:9201"]
    assert es.options.username == "elastic" and es.options.password == "secret"
    assert es.options.insecure is True and es.options.index == "kube-events"
    assert built["out"].path == "/tmp/x/out.jsonl" and built["out"].options.max_size == 5


PRODUCTION = """\
clusterName: stack
route:
  routes:
    - match:
        - receiver: dump
    - drop:
        - type: Normal
        - reason: "NodeSysctlChange|KubeletStart|ContainerdStart|DockerStart|IngressGCE_RemoveNodes|Sync"
      match:
        - receiver: warnings
receivers:
  - name: dump
    stdout: {}
  - name: warnings
    file:
      path: WARNINGS
"""


def test_a_production_config_routes_end_to_end(
    shipper_factory, kube_env, kube_api, namespace, tmp_path
):
    warnings = tmp_path / "warnings.jsonl"
    path = write(tmp_path, PRODUCTION.replace("WARNINGS", str(warnings)))
    shipper = shipper_factory([
        f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
        f"--config={path}", f"--state-dir={tmp_path / 'state'}",
    ]).start()  # fmt: skip
    made = {
        "normal": core_event(kube_api, namespace, type_="Normal", reason="Pulled", obj="a"),
        "backoff": core_event(kube_api, namespace, reason="BackOff", obj="b"),
        "sync": core_event(kube_api, namespace, reason="Sync", obj="c"),
        "oom": core_event(kube_api, namespace, reason="OOMKilling", obj="d"),
    }
    uid = {k: v["metadata"]["uid"] for k, v in made.items()}

    def uids(lines: list[dict]) -> set[str]:
        return {d["kubernetes"]["event"]["metadata"]["uid"] for d in lines}

    wait_for(lambda: uids(shipper.stdout_docs()) == set(uid.values()), what="everything on stdout")
    wait_for(
        lambda: warnings.exists() and len(warnings.read_text().splitlines()) == 2,
        what="two warnings",
    )
    filed = [json.loads(line) for line in warnings.read_text().splitlines()]
    assert uids(filed) == {uid["backoff"], uid["oom"]}
    assert {d["orchestrator"]["cluster"]["name"] for d in filed} == {"stack"}  # clusterName
    assert (
        shipper.metric("kube_event_shipper_sink_events_total", sink="warnings", outcome="filtered")
        == 2
    )
    assert shipper.stop() == 0


def test_check_prints_the_routing_and_dry_runs_events(tmp_path):
    path = write(tmp_path, README_CONFIG)
    events = tmp_path / "events.json"
    events.write_text(json.dumps({"kind": "EventList", "items": [
        {"metadata": {"uid": "1", "resourceVersion": "1", "name": "a", "namespace": "shop"},
         "involvedObject": {"kind": "Pod", "name": "web", "namespace": "shop"},
         "reason": "BackOff", "message": "m", "type": "Warning"},
        {"metadata": {"uid": "2", "resourceVersion": "1", "name": "b", "namespace": "ci-test-1"},
         "involvedObject": {"kind": "Pod", "name": "job", "namespace": "ci-test-1"},
         "reason": "Pulled", "message": "m", "type": "Normal"},
    ]}))  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "shipper", "check", f"--config={path}", "--sink=log", f"--events={events}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "drop if namespace~glob:*test*" in done.stdout
    assert "match kind~Pod|Deployment|ReplicaSet labels.version~dev -> alerts" in done.stdout
    assert "enrichment: on (rules match labels or annotations" in done.stdout
    assert "BackOff" in done.stdout and "pod/shop/web -> log, dump" in done.stdout
    assert "pod/ci-test-1/job -> log, dump" in done.stdout
    assert "read as the glob it looks like" in done.stderr

    broken = write(tmp_path, "route: {match: [{receiver: nowhere}]}\n")
    done = subprocess.run(
        [sys.executable, "-m", "shipper", "check", "--strict", f"--config={broken}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert "config.yaml:1: receiver 'nowhere' is not defined" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "shipper", "check", f"--config={broken}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and "OK" in done.stdout
    assert "config.yaml:1: receiver 'nowhere' is not defined" in done.stderr


SLACK_PRODUCTION = """\
clusterName: stack
route:
  routes:
    - match:
        - receiver: dump
    - drop:
        - type: Normal
        - reason: "NodeSysctlChange|KubeletStart|ContainerdStart|DockerStart|IngressGCE_RemoveNodes|Sync"
      match:
        - receiver: slack
receivers:
  - name: dump
    stdout: {}
  - name: slack
    slack:
      token: xoxb-1-2-abc
      channel: C123
      message: "{{ .Reason }} on {{ .InvolvedObject.Name }}"
      fields:
        namespace: "{{ .InvolvedObject.Namespace }}"
        object: "{{ .InvolvedObject.Name }}"
      api_url: API_URL
"""


def test_warnings_to_slack_end_to_end(shipper_factory, kube_env, kube_api, namespace, tmp_path):
    from tests.support.receivers import SlackReceiver

    with SlackReceiver() as slack:
        path = write(tmp_path, SLACK_PRODUCTION.replace("API_URL", f"{slack.url}/api"))
        shipper = shipper_factory([
            f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
            f"--config={path}", f"--state-dir={tmp_path / 'state'}",
        ]).start()  # fmt: skip
        core_event(kube_api, namespace, type_="Normal", reason="Pulled", obj="a")
        core_event(kube_api, namespace, reason="BackOff", obj="b")
        core_event(kube_api, namespace, reason="Sync", obj="c")
        core_event(kube_api, namespace, reason="OOMKilling", obj="d")
        wait_for(lambda: len(shipper.stdout_docs()) == 4, what="everything on stdout")
        wait_for(lambda: len(slack.messages) == 2, timeout=30, what="two Slack messages")
        texts = sorted(json.dumps(m) for m in slack.messages)
        assert "BackOff on b" in texts[0] and "OOMKilling on d" in texts[1]
        assert all(namespace in text for text in texts)
        assert slack.problems == []
        assert shipper.stop() == 0
        assert "xoxb-1-2-abc" not in shipper.stderr()


def test_kube_qps_and_burst_size_enrichment_unless_the_command_line_did(tmp_path):
    from types import SimpleNamespace

    from shipper.app import Settings, Shipper
    from shipper.config import load
    from shipper.enrich import EnrichSettings

    path = write(tmp_path, "kubeQPS: 5\nkubeBurst: 10\nroute: {}\nreceivers: []\n")
    config = load(path)
    plain = SimpleNamespace(settings=Settings(config=path))
    Shipper._apply_config(plain, config)  # type: ignore[arg-type]
    assert (plain.settings.enrich.qps, plain.settings.enrich.burst) == (5, 10)
    assert not plain.settings.enrich.enabled  # no rule on labels: sizes only
    flagged = SimpleNamespace(settings=Settings(config=path, enrich=EnrichSettings(qps=100)))
    Shipper._apply_config(flagged, config)  # type: ignore[arg-type]
    assert (flagged.settings.enrich.qps, flagged.settings.enrich.burst) == (100, 10)

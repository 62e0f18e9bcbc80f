"""The Helm chart: lint, render, the real API server's verdict, and the shipper on the chart's RBAC.

helm itself is built from the Go module proxy by ``scripts/build/helm.sh`` (cached outside the
tree) through the ``helm`` fixture. Rendering tests read the manifests ``helm template`` prints;
the cluster tests apply them to the test stack's kube-apiserver (server-side apply, dry run and
strict field validation, like ``kubectl apply --dry-run=server``), then apply the chart's
ServiceAccount and RBAC for real, mint a token for that ServiceAccount with the TokenRequest API
and run the shipper with the Deployment's own arguments and nothing but that token.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson
import pytest
import yaml
from kubernetes import client

from shipper import kube, spec
from shipper.cli import run_parser
from shipper.sinks import registry
from shipper.uri import Uri
from tests.support.common import ROOT, wait_for
from tests.support.kube import core_event, ensure_service_account, now, rfc3339

CHART = ROOT / "helm" / "kube-event-shipper"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
VALUE_SETS = [None, *CI_VALUES]  # None: the chart's defaults
IDS = ["default", *(p.name.removesuffix("-values.yaml") for p in CI_VALUES)]


# -- helm and rendering


@pytest.fixture(scope="session")
def helm() -> str:
    """helm v3, built once per machine into the stack cache (1-3 min cold)."""
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build" / "helm.sh")],
        cwd=ROOT, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"scripts/build/helm.sh failed:\n{done.stderr[-4000:]}", pytrace=False)
    return done.stdout.strip().splitlines()[-1]


class Rendered:
    """The manifests of one ``helm template``, with the questions the tests ask of them."""

    def __init__(self, docs: list[dict[str, Any]], namespace: str, release: str) -> None:
        # `helm test`'s hooks (templates/tests/) are made and removed by `helm test` alone:
        # the questions below are about the release's own objects.
        self.docs = [
            d for d in docs if "helm.sh/hook" not in (d["metadata"].get("annotations") or {})
        ]
        self.namespace, self.release = namespace, release

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [d for d in self.all(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"{len(found)} {kind} named {name}: {self.kinds()}"
        return found[0]

    def kinds(self) -> list[str]:
        return sorted(f"{d['kind']}/{d['metadata']['name']}" for d in self.docs)

    @property
    def pod(self) -> dict[str, Any]:
        return self.one("Deployment")["spec"]["template"]

    @property
    def container(self) -> dict[str, Any]:
        """The shipper's container (sidecars may stand beside it)."""
        containers = self.pod["spec"]["containers"]
        (container,) = [c for c in containers if c["name"] == "kube-event-shipper"]
        return container

    @property
    def args(self) -> list[str]:
        return list(self.container["args"])

    def flag(self, name: str) -> list[str]:
        return [a.split("=", 1)[1] for a in self.args if a.startswith(f"--{name}=")]

    def rules(self, kind: str, name: str | None = None) -> list[dict[str, Any]]:
        return self.one(kind, name)["rules"]

    def config_file(self) -> str | None:
        maps = [d for d in self.all("ConfigMap") if "config.yaml" in (d.get("data") or {})]
        return maps[0]["data"]["config.yaml"] if maps else None


#: The Role the chart always has: the shipper's Events about its own Pod (create, then patch
#: as their counts grow), in its own namespace.
OWN_EVENT_RULES = [
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]}
]


def helm_template(
    helm: str, values: dict[str, Any] | Path | None = None, *, release: str = "kes",
    namespace: str = "monitoring", check: bool = True,
) -> Rendered | subprocess.CompletedProcess[str]:  # fmt: skip
    argv = [helm, "template", release, str(CHART), "--namespace", namespace]
    stdin = None
    if isinstance(values, Path):
        argv += ["--values", str(values)]
    elif values is not None:
        argv += ["--values", "-"]
        stdin = json.dumps(values)  # JSON is YAML
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60)
    if not check:
        return done
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    return Rendered(docs, namespace, release)


def render(helm: str, values: dict[str, Any] | Path | None = None, **kw: Any) -> Rendered:
    rendered = helm_template(helm, values, **kw)
    assert isinstance(rendered, Rendered)
    return rendered


def refused(helm: str, values: dict[str, Any]) -> str:
    done = helm_template(helm, values, check=False)
    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode != 0, f"rendered, but should not have:\n{done.stdout[:2000]}"
    return done.stderr


EVENT_RULES = [
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["get", "list", "watch"]},
]


# -- helm lint and helm template, every value set


@pytest.mark.parametrize("values", VALUE_SETS, ids=IDS)
def test_lint_strict_and_template_pass(helm, values):
    argv = [helm, "lint", "--strict", str(CHART)] + (["--values", str(values)] if values else [])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout

    rendered = render(helm, values)
    assert rendered.one("Deployment")["metadata"]["name"] == "kes-kube-event-shipper"
    assert rendered.one("ServiceAccount")["metadata"]["name"] == "kes-kube-event-shipper"
    for doc in rendered.docs:  # the app.kubernetes.io labels of _helpers.tpl, everywhere
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "kube-event-shipper", doc["kind"]
        assert labels["app.kubernetes.io/instance"] == "kes", doc["kind"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm", doc["kind"]


# -- the Deployment's arguments


def test_defaults_ship_to_the_embedded_store_with_the_checkpoint_beside_it(helm):
    """The embedded store alone: the checkpoint is a file next to it, so the two live and die
    together (a checkpoint in a ConfigMap would outlive an emptyDir's store and claim that the
    retained events are stored when they are gone). No state Role is needed."""
    rendered = render(helm)
    assert rendered.args == [
        "--source=kubernetes:",
        "--state-dir=/var/lib/kube-event-shipper",
        "--checkpoint=file",
        "--listen=:8080",
        "--grace-period=25s",
    ]
    image = rendered.container["image"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert image == f"ghcr.io/kube-event-shipper/kube-event-shipper:{chart['appVersion']}"
    from shipper import __version__

    assert chart["appVersion"] == __version__  # the image tag is the package's version
    assert not rendered.all("ConfigMap")
    # The one Role: writing the shipper's own Events about its Pod (shipper/recorder/own.py).
    assert [r["rules"] for r in rendered.all("Role")] == [OWN_EVENT_RULES]
    assert rendered.rules("ClusterRole") == EVENT_RULES
    assert not rendered.all("PodDisruptionBudget")
    assert not rendered.all("Service") and not rendered.all("ServiceMonitor")


@pytest.mark.parametrize(
    "values",
    [{"sinks": ["log"]}, {"config": {"route": {}}}, {"replicas": 2}],
    ids=["a-sink", "a-config-file", "replicas"],
)
def test_sinks_outside_the_pod_or_replicas_keep_the_checkpoint_in_a_configmap(helm, values):
    rendered = render(helm, values)
    assert rendered.flag("checkpoint") == ["configmap:monitoring/kes-kube-event-shipper-checkpoint"]
    assert rendered.one("ConfigMap", "kes-kube-event-shipper-checkpoint")
    assert {
        "apiGroups": [""], "resources": ["configmaps"],
        "resourceNames": ["kes-kube-event-shipper-checkpoint"], "verbs": ["get", "update", "patch"],
    } in rendered.rules("Role", "kes-kube-event-shipper-state")  # fmt: skip


def test_an_explicit_checkpoint_type_wins(helm):
    assert render(helm, {"checkpoint": {"type": "configmap"}}).flag("checkpoint") == [
        "configmap:monitoring/kes-kube-event-shipper-checkpoint"
    ]
    assert render(helm, {"sinks": ["log"], "checkpoint": {"type": "none"}}).flag("checkpoint") == [
        "none"
    ]


def test_sinks_become_repeated_sink_flags_in_order(helm):
    sinks = [
        "log?level=Warning",
        "sqlite:/var/lib/kube-event-shipper/events.db?retention=168h",
        "webhook:https://hooks.example.com/k8s?level=Warning&header=Authorization=Bearer ${HOOK_TOKEN}",
    ]
    rendered = render(
        helm, {"sinks": sinks, "clusterName": "prod-eu-1", "extraArgs": ["--start=new"]}
    )
    assert rendered.flag("sink") == sinks
    assert rendered.flag("cluster-name") == ["prod-eu-1"]
    assert rendered.args[-1] == "--start=new"  # extraArgs come last, so they win
    parsed = run_parser().parse_args(rendered.args)  # the shipper's own parser takes them all
    assert parsed.sink == sinks and parsed.start == "new" and parsed.cluster_name == "prod-eu-1"


def test_leader_election_with_more_than_one_replica(helm):
    single = render(helm, {"replicas": 1, "sinks": ["log"]})  # a ConfigMap checkpoint, no Lease
    assert "--leader-elect" not in single.args
    assert not single.all("PodDisruptionBudget")
    assert all(
        r["resources"] != ["leases"] for r in single.rules("Role", "kes-kube-event-shipper-state")
    )

    rendered = render(helm, {"replicas": 3}, namespace="team-a")
    assert rendered.one("Deployment")["spec"]["replicas"] == 3
    args = rendered.args
    assert "--leader-elect" in args
    assert rendered.flag("leader-elect-lease") == ["team-a/kes-kube-event-shipper"]
    assert rendered.flag("checkpoint") == ["configmap:team-a/kes-kube-event-shipper-checkpoint"]
    parsed = run_parser().parse_args(args)
    assert parsed.leader_elect and parsed.leader_elect_lease == "team-a/kes-kube-event-shipper"
    pdb = rendered.one("PodDisruptionBudget")
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": {"app.kubernetes.io/name": "kube-event-shipper",
                                     "app.kubernetes.io/instance": "kes"}},
    }  # fmt: skip
    # get/update/patch limited to the two names; create cannot be limited to a name (RBAC
    # authorizes a create before the object has one), so it is a rule of its own, for Leases only.
    state = rendered.one("Role", "kes-kube-event-shipper-state")
    assert state["metadata"]["namespace"] == "team-a"
    assert state["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"],
         "resourceNames": ["kes-kube-event-shipper-checkpoint"], "verbs": ["get", "update", "patch"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "resourceNames": ["kes-kube-event-shipper"], "verbs": ["get", "update", "patch"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    ]  # fmt: skip
    timings = render(
        helm, {"replicas": 2, "leaderElection": {"lease": "shipper", "retryPeriod": "1s"}}
    )
    assert timings.flag("leader-elect-lease") == ["monitoring/shipper"]
    assert timings.flag("leader-elect-retry-period") == ["1s"]


def test_leader_election_needs_the_configmap_checkpoint(helm):
    stderr = refused(helm, {"replicas": 2, "checkpoint": {"type": "file"}})
    assert "leader election (replicas=2" in stderr and "needs checkpoint.type=configmap" in stderr


def test_a_checkpoint_configmap_the_chart_does_not_create_needs_create(helm):
    rendered = render(helm, {"checkpoint": {"type": "configmap", "name": "cp", "create": False}})
    assert not [d for d in rendered.all("ConfigMap") if d["metadata"]["name"] == "cp"]
    assert rendered.flag("checkpoint") == ["configmap:monitoring/cp"]
    assert rendered.rules("Role", "kes-kube-event-shipper-state") == [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cp"],
         "verbs": ["get", "update", "patch"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
    ]  # fmt: skip
    file = render(helm, {"checkpoint": {"type": "file"}})
    assert file.flag("checkpoint") == ["file"]
    # no state in the API server, no rules for it: only the Role for the shipper's own Events
    assert [r["rules"] for r in file.all("Role")] == [OWN_EVENT_RULES]


def test_enrichment_flag_and_rules_only_when_enabled(helm):
    off = render(helm)
    assert not [a for a in off.args if a.startswith("--enrich")]
    assert off.rules("ClusterRole") == EVENT_RULES

    on = render(helm, {"enrichment": {"enabled": True}})
    assert "--enrich" in on.args
    assert run_parser().parse_args(on.args).enrich is True
    rules = on.rules("ClusterRole")
    assert rules[:2] == EVENT_RULES
    granted = {(g, r) for rule in rules[2:] for g in rule["apiGroups"] for r in rule["resources"]}
    assert {
        ("", "pods"),
        ("apps", "replicasets"),
        ("apps", "deployments"),
        ("", "nodes"),
    } <= granted
    assert all(rule["verbs"] == ["get"] for rule in rules[2:])  # no list, no watch
    assert not {r for _, r in granted} & {"secrets", "configmaps"}

    custom = [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}]
    mine = render(
        helm, {"enrichment": {"enabled": True, "rules": custom}, "rbac": {"namespaced": True}}
    )
    assert mine.rules("Role", "kes-kube-event-shipper") == EVENT_RULES + custom
    assert "--enrich" in mine.args


def test_namespaced_mode_is_a_role_and_a_namespace_restricted_source(helm):
    rendered = render(helm, CHART / "ci" / "namespaced-values.yaml", namespace="team-a")
    assert not rendered.all("ClusterRole") and not rendered.all("ClusterRoleBinding")
    assert rendered.flag("source") == ["kubernetes:?namespaces=team-a"]
    role = rendered.one("Role", "kes-kube-event-shipper")
    assert role["metadata"]["namespace"] == "team-a" and role["rules"] == EVENT_RULES
    binding = rendered.one("RoleBinding", "kes-kube-event-shipper")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "kes-kube-event-shipper"}  # fmt: skip
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kes-kube-event-shipper", "namespace": "team-a"}
    ]
    several = render(
        helm,
        {"rbac": {"namespaced": True}, "source": {"namespaces": ["a", "b"]}, "sinks": ["log"]},
    )  # events Roles in a and b; the checkpoint's and the own-Events Roles in the release's
    assert several.flag("source") == ["kubernetes:?namespaces=a,b"]
    assert sorted(r["metadata"]["namespace"] for r in several.all("Role")) == [
        "a",
        "b",
        "monitoring",
        "monitoring",
    ]


# -- secrets


SECRETISH = re.compile(r"(token|secret|password|passwd|^pw$|apikey|sign)", re.IGNORECASE)


def leaked_secrets(sinks: list[str], config: str | None) -> list[str]:
    """Secret values written out in sink URIs or a config file: every parameter a sink declares
    secret (and anything named like one, and userinfo passwords) must be a $VAR / ${VAR}
    reference or a p_file=/path."""
    leaks = []
    for text in sinks:
        uri = Uri.parse(text.replace("$", "$$"), what="--sink")  # parse, do not expand
        declared = set()
        cls = registry().by_scheme.get(uri.scheme)
        if cls is not None:
            declared = {p.name for p in spec.params(cls.Options) if p.secret}
            declared |= {a for p in spec.params(cls.Options) if p.secret for a in p.aliases}
        query = text.rpartition("?")[2] if "?" in text else ""
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key.endswith("_file"):
                continue
            secret = key in declared or SECRETISH.search(key) or "authorization=" in value.lower()
            if secret and "$" not in value:
                leaks.append(f"{uri.scheme}: {key}={value}")
        for userinfo in re.findall(r"[:?/]([^:/?@&=]+):([^@/?&]+)@", text):
            if not userinfo[1].startswith("$"):
                leaks.append(f"{uri.scheme}: password of {userinfo[0]}")

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str) and SECRETISH.search(str(key)) and "$" not in value:
                    leaks.append(f"config {path}{key}")
                walk(value, f"{path}{key}.")
        elif isinstance(node, list):
            for item in node:
                walk(item, path)

    if config:
        walk(yaml.safe_load(config), "")
    return leaks


def test_the_secret_check_finds_written_out_secrets():
    assert leaked_secrets(["elasticsearch:https://es:9200?esUserName=u&esUserSecret=hunter2"], None)
    assert leaked_secrets(["mysql:?u:hunter2@tcp(db:3306)/k8s?charset=utf8mb4"], None)
    assert leaked_secrets(["webhook:https://h?header=Authorization=Bearer abc"], None)
    assert leaked_secrets([], "receivers:\n- name: k\n  kafka:\n    sasl:\n      password: x\n")
    assert not leaked_secrets(
        ["slack:?token_file=/s/t&channel=C1", "influxdb:http://i?pw=$PW"], None
    )


@pytest.mark.parametrize("values", CI_VALUES, ids=IDS[1:])
def test_secrets_come_from_the_existing_secret_never_args_or_configmaps(helm, values):
    rendered = render(helm, values)
    assert not rendered.all("Secret")  # the chart never holds one
    data = " ".join(json.dumps(d.get("data") or {}) for d in rendered.all("ConfigMap"))
    assert leaked_secrets(rendered.flag("sink"), rendered.config_file()) == []
    spec = yaml.safe_load(values.read_text())
    for env in rendered.container["env"]:
        assert "value" not in env or not SECRETISH.search(env["name"]), env
    from_secret = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in rendered.container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    expected = {
        name: {"name": spec["existingSecret"], "key": key}
        for name, key in (spec.get("secretEnv") or {}).items()
    }
    assert from_secret == expected
    for name in from_secret:  # the args and config refer to the variable, never its value
        assert (
            f"${name}" in " ".join(rendered.args) + data
            or f"${{{name}}}" in " ".join(rendered.args) + data
        )
    if spec.get("secretMountPath"):
        volume = next(v for v in rendered.pod["spec"]["volumes"] if v["name"] == "secrets")
        assert volume["secret"] == {"secretName": spec["existingSecret"], "defaultMode": 0o440}


def test_secret_env_without_an_existing_secret_is_refused(helm):
    stderr = refused(helm, {"secretEnv": {"ES_PASSWORD": "es-password"}})
    assert "set existingSecret to the name of your Secret" in stderr


# -- the arguments are the shipper's: its parser and its `check` accept every value set


@pytest.mark.parametrize("values", VALUE_SETS, ids=IDS)
def test_rendered_arguments_pass_the_shippers_check(helm, values, tmp_path):
    rendered = render(helm, values)
    parsed = run_parser().parse_args(rendered.args)  # unknown flags would exit 2 here
    assert parsed.listen == ("0.0.0.0", rendered.container["ports"][0]["containerPort"])
    # Files the pod would have mounted (Secrets, CA bundles) are made up under tmp_path, and the
    # secret environment variables get made-up values: check reads and validates them all.
    mounts = {m["mountPath"]: tmp_path / m["name"] for m in rendered.container["volumeMounts"]}
    import certifi

    def local(text: str) -> str:
        for mount, there in mounts.items():
            if mount.startswith("/etc/"):
                text = text.replace(mount, str(there))
        return text

    argv = [local(f"--sink={s}") for s in rendered.flag("sink")]
    for path in re.findall(r"=(/[^&?]+)", " ".join(argv)):
        if path.startswith(str(tmp_path)):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(
                Path(certifi.where()).read_text() if path.endswith(".crt") else "s3cr3t"
            )
    if rendered.config_file():
        config = tmp_path / "config.yaml"
        config.write_text(local(rendered.config_file()))
        assert rendered.flag("config") == ["/etc/kube-event-shipper/config.yaml"]
        argv.append(f"--config={config}")
    env = {e["name"]: "made-up" for e in rendered.container["env"] if "valueFrom" in e}
    done = subprocess.run(
        [sys.executable, "-m", "shipper", "check", *argv],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("OK")
    assert "s3cr3t" not in done.stdout + done.stderr and "made-up" not in done.stdout + done.stderr


# -- the pod


def test_restricted_pod_security_probes_and_writable_tmp(helm):
    rendered = render(helm, {"containerPort": 9090})
    pod, container = rendered.pod["spec"], rendered.container
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532  # the Dockerfile's USER
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    }  # fmt: skip
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert "emptyDir" in volumes[mounts["/var/lib/kube-event-shipper"]]
    assert rendered.flag("listen") == [":9090"]
    assert container["ports"] == [{"name": "http", "containerPort": 9090, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["resources"]["requests"] == {"cpu": "50m", "memory": "128Mi"}
    assert container["resources"]["limits"] == {"memory": "384Mi"}
    placed = render(helm, {
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
        "image": {"repository": "registry.example/kes", "tag": "0.2.0", "pullPolicy": "Always"},
    })  # fmt: skip
    assert placed.pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert placed.pod["spec"]["tolerations"][0]["key"] == "dedicated"
    assert {"name": "TZ", "value": "UTC"} in placed.container["env"]
    assert placed.container["image"] == "registry.example/kes:0.2.0"
    assert placed.container["imagePullPolicy"] == "Always"


def test_checksum_config_follows_the_config_file(helm):
    def checksum(values: dict[str, Any]) -> str:
        return render(helm, values).pod["metadata"]["annotations"]["checksum/config"]

    one = {"config": {"route": {"routes": [{"match": [{"receiver": "out"}]}]},
                      "receivers": [{"name": "out", "stdout": {}}]}}  # fmt: skip
    two = json.loads(json.dumps(one))
    two["config"]["route"]["routes"][0]["match"][0]["type"] = "Warning"
    assert checksum(one) != checksum(two)
    assert checksum(one) == checksum({**one, "sinks": ["log"]})  # args restart pods themselves
    rendered = render(helm, one)
    assert rendered.flag("config") == ["/etc/kube-event-shipper/config.yaml"]
    assert yaml.safe_load(rendered.config_file()) == one["config"]


def test_service_monitor_and_dashboards_only_behind_their_flags(helm):
    rendered = render(helm, CHART / "ci" / "monitoring-values.yaml")
    pod_labels = rendered.pod["metadata"]["labels"]
    service = rendered.one("Service")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    monitor = rendered.one("ServiceMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    dashboards = rendered.all("ConfigMap")
    dashboards = [d for d in dashboards if d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    files = sorted((CHART / "dashboards").glob("*.json"))
    assert files and len(dashboards) == len(files)
    for path, cm in zip(
        files, sorted(dashboards, key=lambda d: d["metadata"]["name"]), strict=True
    ):
        assert cm["data"] == {path.name: path.read_text().rstrip("\n")}
        assert json.loads(cm["data"][path.name])["panels"]
        assert cm["metadata"]["annotations"] == {"grafana_folder": "Kubernetes"}
    plain = render(helm)
    assert not [d for d in plain.all("ConfigMap") if "grafana_dashboard" in d["metadata"]["labels"]]


def test_the_charts_dashboards_are_the_repositorys():
    """helm cannot read grafana/dashboards (outside the chart), so the chart keeps a copy."""
    source = ROOT / "grafana" / "dashboards"
    copy = CHART / "dashboards"
    assert not copy.is_symlink()
    theirs = {p.name: p.read_bytes() for p in source.glob("*.json")}
    ours = {p.name: p.read_bytes() for p in copy.glob("*.json")}
    assert theirs, f"no dashboards in {source}"
    assert ours == theirs, f"copy them: cp {source}/*.json {copy}/"


def test_the_schema_refuses_typos_and_bad_values(helm):
    assert "additional properties 'sink' not allowed" in refused(helm, {"sink": ["log"]}).replace(
        '"', "'"
    )
    assert "replicas" in refused(helm, {"replicas": "two"})
    assert "source" in refused(helm, {"source": {"api": "v2"}})
    assert "extraArgs" in refused(helm, {"extraArgs": ["start=new"]})


# -- the real kube-apiserver


@pytest.fixture(scope="module")
def dry_run_namespace(kube_api) -> str:
    name = f"helm-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(kube_api).create_namespace({"metadata": {"name": name}})
    return name


RESOURCES = {  # (apiVersion, kind) -> (path prefix, plural, namespaced)
    ("v1", "ServiceAccount"): ("/api/v1", "serviceaccounts", True),
    ("v1", "ConfigMap"): ("/api/v1", "configmaps", True),
    ("v1", "Service"): ("/api/v1", "services", True),
    ("v1", "PersistentVolumeClaim"): ("/api/v1", "persistentvolumeclaims", True),
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments", True),
    ("policy/v1", "PodDisruptionBudget"): ("/apis/policy/v1", "poddisruptionbudgets", True),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("/apis/networking.k8s.io/v1", "networkpolicies", True),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    ("rbac.authorization.k8s.io/v1", "Role"): ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
}  # fmt: skip
RESOURCES |= {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ("/apis/monitoring.coreos.com/v1", "servicemonitors", True),
    ("monitoring.coreos.com/v1", "PrometheusRule"): ("/apis/monitoring.coreos.com/v1", "prometheusrules", True),
}  # fmt: skip
#: prometheus-operator's CRDs, from its Go module (the module proxy serves the repository's
#: example/prometheus-operator-crd/ with it): the API server then validates ServiceMonitor and
#: PrometheusRule against the operator's own schemas.
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
MONITORING_CRDS = ("servicemonitors", "prometheusrules")


@pytest.fixture(scope="session")
def monitoring_crds(kube_api) -> None:
    done = subprocess.run(
        ["go", "mod", "download", "-json", PROMETHEUS_OPERATOR],
        capture_output=True, text=True, timeout=600, cwd="/",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    folder = Path(json.loads(done.stdout)["Dir"]) / "example" / "prometheus-operator-crd"
    for plural in MONITORING_CRDS:
        crd = yaml.safe_load((folder / f"monitoring.coreos.com_{plural}.yaml").read_text())
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
        reply = kube.request(
            kube_api, "PATCH", path, body=json.dumps(crd),
            query=[("fieldManager", "kes-test-helm"), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )  # fmt: skip
        assert reply.status in (200, 201), reply.data[:500]

    def served() -> bool:
        reply = kube.request(kube_api, "GET", "/apis/monitoring.coreos.com/v1")
        if reply.status != 200:  # 404 page not found, until the CRDs are established
            return False
        names = {r["name"] for r in orjson.loads(reply.data).get("resources", [])}
        return set(MONITORING_CRDS) <= names

    wait_for(served, 60, "the monitoring.coreos.com/v1 API")


def object_path(doc: dict[str, Any]) -> str:
    prefix, plural, namespaced = RESOURCES[(doc["apiVersion"], doc["kind"])]
    name = doc["metadata"]["name"]
    if namespaced:
        return f"{prefix}/namespaces/{doc['metadata']['namespace']}/{plural}/{name}"
    return f"{prefix}/{plural}/{name}"


def apply(api: Any, doc: dict[str, Any], *, dry_run: bool) -> Any:
    """``kubectl apply --server-side [--dry-run=server]`` with strict field validation."""
    query = [("fieldManager", "kes-test-helm"), ("fieldValidation", "Strict"), ("force", "true")]
    if dry_run:
        query.append(("dryRun", "All"))
    return kube.request(
        api, "PATCH", object_path(doc), query=query, body=json.dumps(doc),
        content_type="application/apply-patch+yaml",
    )  # fmt: skip


@pytest.mark.parametrize(
    "values", [*VALUE_SETS, "conventions"], ids=[*IDS, "conventions"]
)  # "conventions": CONVENTIONS, every value borrowed from other charts' conventions at once
def test_the_api_server_accepts_every_manifest(
    helm, kube_api, dry_run_namespace, monitoring_crds, values
):
    if values == "conventions":
        values = conventions(namespace=None)
    rendered = render(helm, values, namespace=dry_run_namespace)
    for doc in rendered.docs:
        key = (doc["apiVersion"], doc["kind"])
        assert key in RESOURCES, f"the test does not know {key}: add it to RESOURCES"
        reply = apply(kube_api, doc, dry_run=True)
        assert reply.status in (200, 201), (
            f"{doc['kind']}/{doc['metadata']['name']}: {reply.data!r}"
        )
        echoed = orjson.loads(reply.data)
        assert echoed["metadata"]["name"] == doc["metadata"]["name"]
        assert echoed["kind"] == doc["kind"]
    if isinstance(values, Path) and "monitoring" in values.name:  # the CRD kinds were checked
        assert {"ServiceMonitor", "PrometheusRule"} <= {d["kind"] for d in rendered.docs}
    if isinstance(values, dict):  # the conventions: the NetworkPolicy and extraObjects too
        kinds = {d["kind"] for d in rendered.docs}
        assert {"NetworkPolicy", "ServiceMonitor", "PrometheusRule", "Role"} <= kinds
        names = {d["metadata"]["name"] for d in rendered.all("ConfigMap")}
        assert {"kes-kube-event-shipper-extra", "kes-from-a-string"} <= names
        assert [c["name"] for c in rendered.pod["spec"]["initContainers"]] == ["wait-for-es"]


class Installed:
    """The chart's ServiceAccount, RBAC and checkpoint ConfigMap applied for real, a token for
    the ServiceAccount, and a kubeconfig holding nothing but that token."""

    def __init__(self, admin: Any, rendered: Rendered, kubeconfig: Path, tmp: Path) -> None:
        self.admin, self.rendered = admin, rendered
        self.applied: list[dict[str, Any]] = []
        for doc in rendered.docs:
            if doc["kind"] in ("Deployment", "Service", "ServiceMonitor", "PodDisruptionBudget"):
                continue
            reply = apply(admin, doc, dry_run=False)
            assert reply.status in (200, 201), reply.data
            self.applied.append(doc)
        sa = rendered.one("ServiceAccount")["metadata"]
        reply = kube.request(
            admin, "POST",
            f"/api/v1/namespaces/{sa['namespace']}/serviceaccounts/{sa['name']}/token",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                  "spec": {"expirationSeconds": 3600}},
        )  # fmt: skip
        assert reply.status == 201, reply.data
        token = orjson.loads(reply.data)["status"]["token"]
        config = yaml.safe_load(kubeconfig.read_text())
        config["users"] = [{"name": "chart", "user": {"token": token}}]
        config["contexts"] = [
            {
                "name": "chart",
                "context": {"cluster": config["clusters"][0]["name"], "user": "chart"},
            }
        ]
        config["current-context"] = "chart"
        self.kubeconfig = tmp / "chart-kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)
        from kubernetes import config as kconfig

        configuration = client.Configuration()
        kconfig.load_kube_config(
            config_file=str(self.kubeconfig), client_configuration=configuration
        )
        self.api = client.ApiClient(configuration)

    def args(self, state_dir: Path, sinks: list[str]) -> list[str]:
        """The Deployment's arguments, outside a pod: the source reads the token's kubeconfig
        (instead of the pod's ServiceAccount files), the sinks and state directory are local,
        and the test harness picks the listen address."""
        out = []
        for arg in self.rendered.args:
            if arg.startswith("--source="):
                source = arg.removeprefix("--source=")
                assert source.startswith("kubernetes:"), source
                out.append(
                    f"--source={source}{'&' if '?' in source else '?'}auth={self.kubeconfig}"
                )
            elif not arg.startswith(("--sink=", "--state-dir=", "--listen=")):
                out.append(arg)
        return [*out, f"--state-dir={state_dir}", *(f"--sink={s}" for s in sinks)]

    def can(self, verb: str, resource: str, namespace: str | None = None, *, group: str = "",
            name: str | None = None) -> bool:  # fmt: skip
        attributes = {"verb": verb, "resource": resource, "group": group}
        if namespace:
            attributes["namespace"] = namespace
        if name:
            attributes["name"] = name
        reply = kube.request(
            self.api, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            body={"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                  "spec": {"resourceAttributes": attributes}},
        )  # fmt: skip
        assert reply.status == 201, reply.data
        return bool(orjson.loads(reply.data)["status"].get("allowed"))

    def status_of(self, path: str) -> int:
        return int(kube.request(self.api, "GET", path).status)

    def remove_cluster_objects(self) -> None:
        for doc in self.applied:
            if doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                kube.request(self.admin, "DELETE", object_path(doc))


@pytest.fixture
def install(helm, kube_api, kube_env, tmp_path) -> Iterator[Any]:
    installed: list[Installed] = []

    def make(values: dict[str, Any] | Path, namespace: str) -> Installed:
        release = f"kes-{uuid.uuid4().hex[:6]}"  # ClusterRole names are unique per test
        rendered = render(helm, values, release=release, namespace=namespace)
        done = Installed(kube_api, rendered, Path(kube_env["KUBECONFIG"]), tmp_path)
        installed.append(done)
        return done

    yield make
    for done in installed:
        done.remove_cluster_objects()


def checkpoint_uids(admin: Any, namespace: str, name: str) -> set[str]:
    import zlib

    reply = kube.request(admin, "GET", f"/api/v1/namespaces/{namespace}/configmaps/{name}")
    assert reply.status == 200, reply.data
    blob = (orjson.loads(reply.data).get("binaryData") or {}).get("checkpoint.json.z")
    return set(orjson.loads(zlib.decompress(base64.b64decode(blob)))["versions"]) if blob else set()


def pod_chain(admin: Any, ns: str) -> Any:
    """Deployment -> ReplicaSet -> Pod, as a rollout makes them. Without a controller-manager
    the test makes the Pod itself; with one (the stack's node component is up) the ReplicaSet's
    own Pod is the chain's, and the Deployment is paused so that it keeps this ReplicaSet
    instead of rolling out one of its own and scaling this one, and its Pod, away."""
    apps, core = client.AppsV1Api(admin), client.CoreV1Api(admin)
    selector = {"matchLabels": {"app": "web"}}
    template = {"metadata": {"labels": {"app": "web", "pod-template-hash": "5d8f"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}  # fmt: skip

    def owner(obj: Any, kind: str) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": kind, "name": obj.metadata.name,
                "uid": obj.metadata.uid, "controller": True}  # fmt: skip

    deployment = apps.create_namespaced_deployment(ns, {
        "metadata": {"name": "web", "labels": {"app": "web", "team": "payments"}},
        "spec": {"replicas": 1, "selector": selector, "template": template, "paused": True},
    })  # fmt: skip
    replica_set = apps.create_namespaced_replica_set(ns, {
        "metadata": {"name": "web-5d8f", "labels": {"app": "web"},
                     "ownerReferences": [owner(deployment, "Deployment")]},
        "spec": {"replicas": 1, "selector": selector, "template": template},
    })  # fmt: skip
    ensure_service_account(core, ns)

    def made_by_the_replica_set() -> Any:
        for pod in core.list_namespaced_pod(ns, label_selector="app=web").items:
            if any(
                ref.uid == replica_set.metadata.uid for ref in pod.metadata.owner_references or []
            ):
                return pod
        return None

    try:
        return wait_for(made_by_the_replica_set, 5, "a controller-manager to make the Pod")
    except AssertionError:  # none runs: make the Pod as the ReplicaSet would
        pass
    return core.create_namespaced_pod(ns, {
        "metadata": {"name": "web-5d8f-x2k", "labels": {"app": "web", "pod-template-hash": "5d8f"},
                     "ownerReferences": [owner(replica_set, "ReplicaSet")]},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
    })  # fmt: skip


def event_about_pod(admin: Any, ns: str, pod: Any) -> dict[str, Any]:
    moment = rfc3339(now())
    body = {
        "metadata": {"name": f"{pod.metadata.name}.{uuid.uuid4().hex[:10]}", "namespace": ns},
        "involvedObject": {"kind": "Pod", "name": pod.metadata.name, "namespace": ns,
                           "uid": pod.metadata.uid, "apiVersion": "v1"},
        "reason": "BackOff", "message": "Back-off restarting failed container web",
        "type": "Warning", "count": 1, "firstTimestamp": moment, "lastTimestamp": moment,
        "source": {"component": "kubelet", "host": "node-a"},
    }  # fmt: skip
    reply = client.CoreV1Api(admin).create_namespaced_event(ns, body, _preload_content=False)
    return orjson.loads(reply.data)


def test_the_shipper_ships_with_the_charts_service_account_and_nothing_more(
    install, shipper_factory, kube_api, namespace, tmp_path
):
    other = f"t-{uuid.uuid4().hex[:10]}"
    client.CoreV1Api(kube_api).create_namespace({"metadata": {"name": other}})
    chart = install(
        {"enrichment": {"enabled": True}, "source": {"namespaces": [namespace]}, "sinks": ["log"]},
        namespace,
    )
    checkpoint = f"{chart.rendered.release}-kube-event-shipper-checkpoint"
    assert chart.rendered.all("ClusterRole")  # cluster mode, the watch kept to one namespace

    pod = pod_chain(kube_api, namespace)
    about_pod = event_about_pod(kube_api, namespace, pod)
    plain = core_event(kube_api, namespace, reason="FailedMount", obj="gone-pod")
    shipper = shipper_factory(chart.args(tmp_path / "state", ["log"])).start()
    mine = {about_pod["metadata"]["uid"], plain["metadata"]["uid"]}

    def shipped() -> dict[str, Any]:  # with a node up, its controllers and kubelet add events
        docs = shipper.stdout_docs()
        return {d["kubernetes"]["event"]["metadata"]["uid"]: d for d in docs}

    by_uid = wait_for(lambda: mine <= set(shipped()) and shipped(), what="the two events")
    by_uid = {uid: doc for uid, doc in by_uid.items() if uid in mine}
    assert set(by_uid) == mine
    enriched = by_uid[about_pod["metadata"]["uid"]]["kubernetes"]
    # The chart's enrichment rules are enough for the whole chain: Pod, ReplicaSet, Deployment.
    assert enriched["labels"] == {"app": "web", "pod-template-hash": "5d8f"}
    assert (enriched["owner"]["kind"], enriched["owner"]["name"]) == ("Deployment", "web")
    assert enriched["owner"]["labels"] == {"app": "web", "team": "payments"}
    # The checkpoint went into the chart's ConfigMap: get + update by name, no create.
    wait_for(lambda: set(by_uid) <= checkpoint_uids(kube_api, namespace, checkpoint),
             what="the checkpoint in the chart's ConfigMap")  # fmt: skip
    assert shipper.stop() == 0

    # What the token may do: read events anywhere; look up (get) the objects events are about.
    assert chart.can("list", "events", other) and chart.can("watch", "events")
    assert chart.can("list", "events", group="events.k8s.io")
    assert chart.status_of("/api/v1/events?limit=1") == 200
    assert chart.can("get", "pods", other) and chart.can("get", "deployments", other, group="apps")
    assert chart.can("update", "configmaps", namespace, name=checkpoint)
    # ... and nothing else: no Secrets, no listing pods, no other ConfigMaps, no writes.
    assert not chart.can("get", "secrets", namespace) and not chart.can("list", "secrets")
    assert chart.status_of(f"/api/v1/namespaces/{namespace}/secrets") == 403
    assert not chart.can("list", "pods", namespace)
    assert chart.status_of(f"/api/v1/namespaces/{namespace}/pods") == 403
    assert not chart.can("get", "configmaps", namespace, name="kube-root-ca.crt")
    assert not chart.can("create", "configmaps", namespace)
    # Events: created and patched about its own Pod, in its own namespace only; never deleted.
    assert chart.can("create", "events", namespace) and chart.can("patch", "events", namespace)
    assert not chart.can("create", "events", other) and not chart.can("delete", "events", namespace)
    assert not chart.can("update", "events", namespace)
    assert not chart.can("create", "leases", namespace, group="coordination.k8s.io")  # one replica


def test_namespaced_mode_ships_its_namespace_and_cannot_read_others(
    install, shipper_factory, kube_api, namespace, tmp_path
):
    chart = install(CHART / "ci" / "namespaced-values.yaml", namespace)
    assert not chart.rendered.all("ClusterRole")
    assert chart.rendered.flag("sink") == ["log?level=Warning"]
    other = f"t-{uuid.uuid4().hex[:10]}"
    client.CoreV1Api(kube_api).create_namespace({"metadata": {"name": other}})
    mine = core_event(kube_api, namespace, obj="p1")
    core_event(kube_api, other, obj="p2")
    shipper = shipper_factory(chart.args(tmp_path / "state", ["log?level=Warning"])).start()
    wait_for(lambda: shipper.stdout_docs(), what="the event in the team's namespace")
    later = core_event(kube_api, namespace, obj="p3")
    docs = wait_for(
        lambda: len(shipper.stdout_docs()) >= 2 and shipper.stdout_docs(), what="a second event"
    )
    uids = [d["kubernetes"]["event"]["metadata"]["uid"] for d in docs]
    assert uids == [mine["metadata"]["uid"], later["metadata"]["uid"]]
    assert shipper.stop() == 0

    assert chart.can("list", "events", namespace) and chart.can("watch", "events", namespace)
    assert not chart.can("list", "events") and not chart.can("list", "events", other)
    assert chart.status_of("/api/v1/events") == 403
    assert chart.status_of(f"/api/v1/namespaces/{other}/events") == 403
    assert not chart.can("get", "pods", namespace)  # no enrichment asked for


def test_leader_election_on_the_charts_lease_rules(
    install, shipper_factory, kube_api, namespace, tmp_path
):
    values = {
        "replicas": 2,
        "source": {"namespaces": [namespace]},
        "leaderElection": {"leaseDuration": "6s", "renewDeadline": "4s", "retryPeriod": "1s"},
    }
    chart = install(values, namespace)
    lease = chart.rendered.release + "-kube-event-shipper"
    lease_path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{lease}"
    db = tmp_path / "events.db"

    def replica(name: str) -> Any:
        return shipper_factory(
            chart.args(tmp_path / name, [f"sqlite:{db}"]), env={"POD_NAME": name}
        )

    def leader(process: Any) -> float:
        return process.metric("kube_event_shipper_leader")

    def holder() -> str:
        reply = kube.request(kube_api, "GET", lease_path)
        return (
            orjson.loads(reply.data)["spec"].get("holderIdentity") or ""
            if reply.status == 200
            else ""
        )

    a = replica("a").start()
    wait_for(lambda: leader(a) == 1, what="a to create and take the Lease")
    b = replica("b").start()
    assert leader(b) == 0 and holder().startswith("a_")
    first = core_event(kube_api, namespace, obj="p1")
    wait_for(lambda: first["metadata"]["uid"] in checkpoint_uids(kube_api, namespace, f"{lease}-checkpoint"),
             what="a's checkpoint")  # fmt: skip
    assert a.stop() == 0  # releases the Lease (an update by name)
    wait_for(lambda: leader(b) == 1, timeout=10, what="b to take over")
    assert holder().startswith("b_")
    second = core_event(kube_api, namespace, obj="p2")
    wait_for(lambda: second["metadata"]["uid"] in checkpoint_uids(kube_api, namespace, f"{lease}-checkpoint"),
             what="b's checkpoint")  # fmt: skip
    assert b.metric("kube_event_shipper_sink_events_total", sink="sqlite", outcome="shipped") == 1
    b.stop(signal.SIGTERM)

    assert chart.can("update", "leases", namespace, group="coordination.k8s.io", name=lease)
    assert not chart.can(
        "update", "leases", namespace, group="coordination.k8s.io", name="kube-scheduler"
    )
    assert chart.can("create", "leases", namespace, group="coordination.k8s.io")
    assert not chart.can("create", "leases", "kube-system", group="coordination.k8s.io")


def test_notes_say_how_to_see_it_working(helm, kube_env):
    # A release name of its own: the stack's API server is shared, and helm refuses to install
    # over a ClusterRole that another release (e.g. one installed on the node) owns.
    release = f"kes-{uuid.uuid4().hex[:6]}"
    deploy = f"deployment/{release}-kube-event-shipper"
    done = subprocess.run(
        [helm, "install", release, str(CHART), "--namespace", "monitoring", "--dry-run=client",
         "--kubeconfig", kube_env["KUBECONFIG"], "--values", str(CHART / "ci" / "leader-election-values.yaml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    notes = done.stdout.partition("NOTES:")[2]
    assert f"kubectl -n monitoring rollout status {deploy}" in notes
    assert f"kubectl -n monitoring logs {deploy} -f" in notes
    assert "kube_event_shipper_(sink_events_total|watch_ready|leader)" in notes
    assert "get lease kube-event-shipper-leader" in notes
    default = subprocess.run(
        [helm, "install", release, str(CHART), "--namespace", "monitoring", "--dry-run=client",
         "--kubeconfig", kube_env["KUBECONFIG"]],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert default.returncode == 0, default.stderr
    assert f"exec {deploy} -- kube-event-shipper query --since=1h" in default.stdout


# -- the image the chart runs


def test_the_dockerfile_builds_what_the_chart_expects():
    """No image can be built here; what can be checked without a Docker engine is."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    bases = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert len(bases) == 1 and re.fullmatch(r"python:3\.11\.\d+-slim-\w+", bases[0]), bases
    assert re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE) == [
        "${PYTHON_IMAGE}",
        "${PYTHON_IMAGE}",
    ]  # two stages, one pinned base
    user = values["podSecurityContext"]["runAsUser"]
    assert f"USER {user}:{values['podSecurityContext']['runAsGroup']}" in dockerfile
    assert 'ENTRYPOINT ["kube-event-shipper"]' in dockerfile
    assert f"EXPOSE {values['containerPort']}" in dockerfile
    assert "pip wheel" in dockerfile and "--no-index --find-links /wheels" in dockerfile
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") :][:4] == ["*", "!pyproject.toml", "!README.md", "!shipper/"]
    # The default image is documented where users look for it.
    image = f"{values['image']['registry']}/{values['image']['repository']}:{chart['appVersion']}"
    assert image in (ROOT / "README.md").read_text()
    assert values["image"]["repository"] in (CHART / "README.md").read_text()
    assert f"`{chart['appVersion']}`" in (CHART / "README.md").read_text()


# -- the alerts (PrometheusRule), checked and unit-tested by promtool


ALERT_TESTS = ROOT / "tests" / "alerts" / "prometheusrule-tests.yaml"


def rule_files(helm: str, tmp_path: Path, release: str = "kes") -> tuple[Path, Path]:
    """The chart's PrometheusRule as a Prometheus rules file, and the unit tests pointed at it
    (rendered in namespace mon with two replicas, as the tests expect)."""
    values = {"replicas": 2, "prometheusRule": {"enabled": True}}
    rule = render(helm, values, release=release, namespace="mon").one("PrometheusRule")
    rules = tmp_path / f"rules-{release}.yaml"
    rules.write_text(yaml.safe_dump(rule["spec"]))
    tests = tmp_path / f"tests-{release}.yaml"
    runbooks = yaml.safe_load((CHART / "values.yaml").read_text())["prometheusRule"]["runbookUrl"]
    text = ALERT_TESTS.read_text().replace("[RULES]", f"[{rules}]")
    tests.write_text(text.replace("[RUNBOOKS]", runbooks))
    return rules, tests


def test_the_alerts_are_valid_rules_and_fire_as_their_tests_say(helm, promtool, tmp_path):
    rules, tests = rule_files(helm, tmp_path)
    checked = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True,
                             text=True, timeout=60)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 10 rules found" in checked.stdout + checked.stderr
    ran = subprocess.run([promtool, "test", "rules", str(tests)], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_the_alert_tests_fail_for_another_releases_rules(helm, promtool, tmp_path):
    """The selectors matter: rules rendered for another release do not see the test's series,
    so "down" fires while ours is up, and the sink alerts stay silent."""
    _, tests = rule_files(helm, tmp_path, release="other-release")
    ran = subprocess.run([promtool, "test", "rules", str(tests)], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert ran.returncode != 0
    assert "KubeEventShipperSinkDown" in ran.stdout + ran.stderr


def test_the_alerts_use_metrics_the_shipper_exports(helm):
    """Every metric an alert reads is one the daemon's registry serves (counters with _total)."""
    from prometheus_client import generate_latest

    from shipper.metrics import Metrics

    served = {
        line.split("{")[0].split(" ")[0]
        for line in generate_latest(Metrics().registry).decode().splitlines()
        if line and not line.startswith("#")
    }
    served |= {
        line.split(" ")[2]
        for line in generate_latest(Metrics().registry).decode().splitlines()
        if line.startswith("# TYPE")
    }
    rule = render(helm, {"replicas": 2, "prometheusRule": {"enabled": True}}).one("PrometheusRule")
    used = {
        name
        for item in rule["spec"]["groups"][0]["rules"]
        for name in re.findall(r"\b(kube_event_shipper_\w+)\{", item["expr"])
    }
    assert len(used) == 8 and used <= {*served, *(f"{n}_total" for n in served)}, used - served


# -- the conventions of the charts users already run (prometheus-community, Bitnami)


def conventions(namespace: str | None) -> dict[str, Any]:
    """Every value borrowed from other charts' conventions at once, with the features whose
    objects they touch (monitoring, leader election, persistence, a config file, a NetworkPolicy).
    ``namespace``: namespaceOverride (None: none)."""
    values: dict[str, Any] = {
        "global": {"imageRegistry": "mirror.example.com", "imagePullSecrets": ["mirror-pull"]},
        "imagePullSecrets": [{"name": "team-pull"}, "mirror-pull"],
        "commonLabels": {"team": "platform", "cost-center": "{{ .Release.Name }}-cc"},
        "replicas": 2,
        "persistence": {"enabled": True, "accessModes": ["ReadWriteMany"]},
        "service": {"enabled": True},
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {"enabled": True},
        "grafanaDashboards": {"enabled": True},
        "sinks": ["elasticsearch:https://es.logging:9200?index=kube-events", "log"],
        "config": {"receivers": [{"name": "k", "kafka": {"brokers": ["kafka-0.kafka:9092"]}}]},
        "networkPolicy": {
            "enabled": True,
            "metricsFrom": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                    }
                }
            ],
            "egress": {"apiServerCIDRs": ["10.0.0.1/32"], "sinkPorts": [8443, "1514/UDP"]},
            "extraEgress": [
                {
                    "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
                    "ports": [{"port": 5044, "protocol": "TCP"}],
                }
            ],
        },
        "initContainers": [
            {
                "name": "wait-for-es",
                "image": "busybox:1.36",
                "command": ["sh", "-c", "until nc -z es.logging 9200; do sleep 2; done"],
                "securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
            }
        ],
        "sidecars": [
            {
                "name": "proxy",
                "image": "{{ .Values.global.imageRegistry }}/egress-proxy:1.0",
                "args": ["--cluster={{ .Release.Name }}"],
            }
        ],
        "extraObjects": [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": '{{ include "kes.fullname" . }}-extra',
                    "namespace": '{{ include "kes.namespace" . }}',
                },
                "data": {"release": "{{ .Release.Name }}"},
            },
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-from-a-string\n"
            '  namespace: {{ include "kes.namespace" . }}\ndata:\n  replicas: "{{ .Values.replicas }}"\n',
        ],
    }
    if namespace:
        values["namespaceOverride"] = namespace
    return values


def pod_containers(rendered: Rendered) -> list[dict[str, Any]]:
    return list(rendered.pod["spec"]["containers"])


def test_lint_strict_with_every_convention(helm, tmp_path):
    values = tmp_path / "conventions.yaml"
    values.write_text(json.dumps(conventions("shippers")))
    done = subprocess.run([helm, "lint", "--strict", str(CHART), "--values", str(values)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout


def test_image_registry_global_registry_and_pull_secrets(helm):
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    version = chart["appVersion"]

    def image(values: dict[str, Any]) -> str:
        return str(render(helm, values).container["image"])

    assert image({}) == f"ghcr.io/kube-event-shipper/kube-event-shipper:{version}"
    assert (
        image({"image": {"registry": "registry.example.com"}})
        == f"registry.example.com/kube-event-shipper/kube-event-shipper:{version}"
    )
    # global.imageRegistry (a parent chart's, a mirror's) wins over image.registry
    assert (
        image({"global": {"imageRegistry": "mirror.example.com:5000"},
               "image": {"registry": "registry.example.com", "tag": "0.2.0"}})
        == "mirror.example.com:5000/kube-event-shipper/kube-event-shipper:0.2.0"
    )  # fmt: skip
    assert image({"image": {"registry": "", "repository": "kes"}}) == f"kes:{version}"
    # a repository that names its registry itself is used as it is (the node's dev image)
    assert (
        image({"image": {"repository": "localhost/kube-event-shipper", "tag": "dev"}})
        == "localhost/kube-event-shipper:dev"
    )
    assert (
        image({"global": {"imageRegistry": "mirror.example.com"},
               "image": {"repository": "registry.example.com:5000/kes"}})
        == f"registry.example.com:5000/kes:{version}"
    )  # fmt: skip
    digest = "sha256:" + "ab" * 32
    assert image({"image": {"digest": digest}}).endswith(f"kube-event-shipper:{version}@{digest}")

    assert "imagePullSecrets" not in render(helm).pod["spec"]
    secrets = render(helm, {
        "global": {"imagePullSecrets": ["mirror", {"name": "shared"}]},
        "imagePullSecrets": ["team", {"name": "mirror"}],
    }).pod["spec"]["imagePullSecrets"]  # fmt: skip
    assert secrets == [{"name": "mirror"}, {"name": "shared"}, {"name": "team"}]  # once each


def test_common_labels_on_every_object_and_the_pods(helm):
    values = conventions(namespace=None)
    values["commonLabels"]["app.kubernetes.io/name"] = "not-this"  # the chart's own win
    values["podLabels"] = {"team": "events"}  # an object's own labels win over commonLabels
    values["service"]["labels"] = {"team": "metrics"}
    rendered = render(helm, values)
    assert len(rendered.docs) >= 15, rendered.kinds()
    extra = {"kes-from-a-string", "kes-kube-event-shipper-extra"}  # extraObjects: as written
    owned = [d for d in rendered.docs if d["metadata"]["name"] not in extra]
    for doc in owned:
        labels = doc["metadata"]["labels"]
        assert labels["cost-center"] == "kes-cc", doc["kind"]  # rendered with tpl
        assert labels["app.kubernetes.io/name"] == "kube-event-shipper", doc["kind"]
        expected = "metrics" if doc["kind"] == "Service" else "platform"
        assert labels["team"] == expected, (doc["kind"], labels)
    pod = rendered.pod["metadata"]["labels"]
    assert pod["team"] == "events" and pod["cost-center"] == "kes-cc"
    selector = rendered.one("Deployment")["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": "kube-event-shipper",
                        "app.kubernetes.io/instance": "kes"}  # fmt: skip
    assert selector.items() <= pod.items()
    plain = render(helm)
    assert all("team" not in d["metadata"]["labels"] for d in plain.docs)


NAMESPACED_KINDS = {kind for (_, kind), (_, _, namespaced) in RESOURCES.items() if namespaced}


def test_namespace_override_moves_every_namespaced_object(helm):
    rendered = render(helm, conventions("shippers"), namespace="monitoring")
    namespaced = [d for d in rendered.docs if d["kind"] in NAMESPACED_KINDS]
    assert {"Deployment", "ServiceAccount", "ConfigMap", "Role", "RoleBinding", "Service",
            "ServiceMonitor", "PrometheusRule", "NetworkPolicy", "PodDisruptionBudget",
            "PersistentVolumeClaim"} <= {d["kind"] for d in namespaced}  # fmt: skip
    for doc in namespaced:
        assert doc["metadata"]["namespace"] == "shippers", (doc["kind"], doc["metadata"])
    assert rendered.flag("checkpoint") == ["configmap:shippers/kes-kube-event-shipper-checkpoint"]
    assert rendered.flag("leader-elect-lease") == ["shippers/kes-kube-event-shipper"]
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        for binding in rendered.all(kind):
            assert binding["subjects"][0]["namespace"] == "shippers"
    monitor = rendered.one("ServiceMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["shippers"]}
    rules = rendered.one("PrometheusRule")["spec"]["groups"][0]["rules"]
    assert all('namespace="shippers"' in r["expr"] for r in rules)
    text = json.dumps([d for d in rendered.docs if d["kind"] != "NetworkPolicy"])  # metricsFrom
    leftover = text.replace("monitoring.coreos.com", "").replace("kube-prometheus-stack", "")
    assert "monitoring" not in leftover  # the release's namespace is nowhere
    # namespaced RBAC watches the override namespace by default
    team = render(helm, {"namespaceOverride": "team-a", "rbac": {"namespaced": True}},
                  namespace="default")  # fmt: skip
    assert team.flag("source") == ["kubernetes:?namespaces=team-a"]
    assert {r["metadata"]["namespace"] for r in team.all("Role")} == {"team-a"}


def test_the_api_server_accepts_the_namespace_override(
    helm, kube_api, dry_run_namespace, monitoring_crds
):
    """The release's namespace does not exist: had any namespaced object stayed there instead of
    namespaceOverride's, the API server would refuse it (namespace not found)."""
    absent = f"absent-{uuid.uuid4().hex[:8]}"
    rendered = render(helm, conventions(dry_run_namespace), namespace=absent)
    for doc in rendered.docs:
        reply = apply(kube_api, doc, dry_run=True)
        assert reply.status in (200, 201), (
            f"{doc['kind']}/{doc['metadata']['name']}: {reply.data!r}"
        )
    # ... and the check can fail: the same objects in the absent namespace are refused
    deployment = rendered.one("Deployment")
    deployment["metadata"]["namespace"] = absent
    reply = apply(kube_api, deployment, dry_run=True)
    assert reply.status == 404 and b"not found" in reply.data, reply.data


def test_extra_objects_are_rendered_with_tpl(helm):
    rendered = render(helm, conventions("shippers"))
    extra = rendered.one("ConfigMap", "kes-kube-event-shipper-extra")
    assert extra["metadata"]["namespace"] == "shippers"
    assert extra["data"] == {"release": "kes"}
    from_string = rendered.one("ConfigMap", "kes-from-a-string")
    assert from_string["data"] == {"replicas": "2"}
    assert not [d for d in render(helm).docs if d["metadata"]["name"].endswith("-extra")]
    stderr = refused(helm, {"extraObjects": [{"kind": "ConfigMap", "metadata": {"name": "x"}}]})
    assert "extraObjects" in stderr


def test_init_containers_and_sidecars_join_the_pod(helm):
    rendered = render(helm, conventions(namespace=None))
    containers = pod_containers(rendered)
    assert [c["name"] for c in containers] == ["kube-event-shipper", "proxy"]  # the shipper first
    proxy = containers[1]
    assert proxy["image"] == "mirror.example.com/egress-proxy:1.0"  # tpl
    assert proxy["args"] == ["--cluster=kes"]
    (init,) = rendered.pod["spec"]["initContainers"]
    assert init["name"] == "wait-for-es" and init["image"] == "busybox:1.36"
    assert (
        containers[0]["args"]
        == render(
            helm,
            {k: v for k, v in conventions(None).items() if k not in ("initContainers", "sidecars")},
        ).args
    )  # the shipper's own container is untouched
    default = render(helm)
    assert "initContainers" not in default.pod["spec"]
    assert [c["name"] for c in pod_containers(default)] == ["kube-event-shipper"]
    assert "sidecars" in refused(helm, {"sidecars": [{"name": "no-image"}]})
    assert "initContainers" in refused(helm, {"initContainers": [{"image": "no-name"}]})


# -- the NetworkPolicy


def policy(rendered: Rendered) -> dict[str, Any]:
    return rendered.one("NetworkPolicy")["spec"]


def port_set(rule: dict[str, Any]) -> set[str]:
    return {f"{p['port']}/{p['protocol']}" for p in rule.get("ports", [])}


def sink_ports(helm: str, values: dict[str, Any] | Path) -> set[str]:
    """The ports the NetworkPolicy opens for the sinks: its egress rules other than DNS (53) and
    the API server's (443 and 6443 with no sink, see the default policy below)."""
    if isinstance(values, Path):
        values = yaml.safe_load(values.read_text())
    rendered = render(helm, {**values, "networkPolicy": {"enabled": True}})
    rules = policy(rendered)["egress"]
    assert port_set(rules[0]) == {"53/UDP", "53/TCP"} and "to" not in rules[0]
    assert port_set(rules[1]) == {"443/TCP", "6443/TCP"}  # the API server
    assert len(rules) <= 3, rules
    return port_set(rules[2]) if len(rules) == 3 else set()


def test_no_network_policy_unless_enabled_and_what_the_default_allows(helm):
    assert not render(helm).all("NetworkPolicy")
    rendered = render(helm, {"networkPolicy": {"enabled": True}, "containerPort": 9090})
    spec_ = policy(rendered)
    assert spec_["podSelector"]["matchLabels"].items() <= rendered.pod["metadata"]["labels"].items()
    assert spec_["policyTypes"] == ["Ingress", "Egress"]
    assert spec_["ingress"] == [{"ports": [{"port": 9090, "protocol": "TCP"}]}]  # from anyone
    assert [port_set(r) for r in spec_["egress"]] == [{"53/UDP", "53/TCP"}, {"443/TCP", "6443/TCP"}]
    assert all("to" not in r for r in spec_["egress"])  # the embedded store: no sink egress


def test_network_policy_values(helm):
    rendered = render(helm, conventions(namespace=None))
    spec_ = policy(rendered)
    assert spec_["ingress"] == [{
        "ports": [{"port": 8080, "protocol": "TCP"}],
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
    }]  # fmt: skip
    dns, api, sinks, extra = spec_["egress"]
    assert port_set(dns) == {"53/UDP", "53/TCP"}
    assert api["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]
    # elasticsearch :9200 (a sink), kafka :9092 (a receiver of the config file), log nothing,
    # plus sinkPorts
    assert port_set(sinks) == {"9200/TCP", "9092/TCP", "8443/TCP", "1514/UDP"}
    assert [p["port"] for p in sinks["ports"]] == [1514, 8443, 9092, 9200]  # in port order
    assert extra == {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
                     "ports": [{"port": 5044, "protocol": "TCP"}]}  # fmt: skip
    no_dns = render(helm, {"networkPolicy": {"enabled": True, "egress": {"dns": False}}})
    assert [port_set(r) for r in policy(no_dns)["egress"]] == [{"443/TCP", "6443/TCP"}]
    templated = render(helm, {"networkPolicy": {"enabled": True, "extraIngress": [
        {"ports": [{"port": "{{ .Values.containerPort }}", "protocol": "TCP"}],
         "from": [{"podSelector": {"matchLabels": {"app": "{{ .Release.Name }}-probe"}}}]}]}})  # fmt: skip
    assert policy(templated)["ingress"][1]["from"][0]["podSelector"]["matchLabels"] == {
        "app": "kes-probe"
    }
    assert "networkPolicy" in refused(helm, {"networkPolicy": {"egress": {"sinkPorts": ["http"]}}})
    assert "networkPolicy" in refused(helm, {"networkPolicy": {"enable": True}})


CI_SINK_PORTS = {  # the example value sets: the ports their sinks talk to
    "elasticsearch": {"9200/TCP"},
    "opensearch": {"9200/TCP"},
    "influxdb": {"8086/TCP"},
    "kafka": {"9092/TCP"},  # the config file's receiver; the sqlite sink needs nothing
    "mysql": {"3306/TCP"},
    "notify": {"443/TCP"},  # slack (no URL: its API) and a https webhook; log nothing
    "enrichment": set(),  # a stdout receiver
    "leader-election": set(),
    "monitoring": set(),
    "namespaced": set(),
    "sqlite": set(),
}


@pytest.mark.parametrize("values", CI_VALUES, ids=IDS[1:])
def test_network_policy_opens_the_ports_of_the_example_sinks(helm, values):
    assert sink_ports(helm, values) == CI_SINK_PORTS[values.name.removesuffix("-values.yaml")]


@pytest.mark.parametrize(
    ("sink", "ports"),
    [
        ("elasticsearch:https://es.logging:9200?index=k", {"9200/TCP"}),
        ("elasticsearch:https://search.example.com?index=k", {"443/TCP"}),
        ("elasticsearch:?nodes=http://es-0:9200,http://es-1:9201", {"9200/TCP", "9201/TCP"}),
        ("influxdb:http://influxdb.monitoring", {"80/TCP"}),
        ("loki:http://loki.monitoring:3100", {"3100/TCP"}),
        ("kafka:?brokers=k0.kafka:9093&brokers=k1.kafka:9094", {"9093/TCP", "9094/TCP"}),
        ("kafka:?brokers=kafka-bootstrap", {"9092/TCP"}),
        ("mysql:?u:$P@tcp(db.mysql:3307)/k8s", {"3307/TCP"}),
        ("mysql:?u:$P@tcp(db.mysql)/k8s", {"3306/TCP"}),
        ("mysql://u@db.mysql/k8s", {"3306/TCP"}),
        ("rabbitmq:?host=rabbit&port=5673&exchange=x", {"5673/TCP"}),
        ("rabbitmq:?host=rabbit&exchange=x", {"5672/TCP"}),
        ("syslog:udp://syslog.logging", {"514/UDP"}),
        ("syslog:udp://syslog.logging:1514", {"1514/UDP"}),
        ("syslog:tcp://syslog.logging", {"514/TCP"}),
        ("syslog:tls://syslog.logging", {"6514/TCP"}),
        ("sns:arn:aws:sns:eu-west-1:123456789012:kube-events", {"443/TCP"}),
        ("sqs:kube-events?region=eu-west-1", {"443/TCP"}),
        ("slack:?token=$SLACK_TOKEN&channel=C0123456789", {"443/TCP"}),
        ("webhook:https://hooks.example.com/k8s?header=Authorization=Bearer ${T}", {"443/TCP"}),
        ("webhook:http://[fd00::1]:8081/hook", {"8081/TCP"}),
        ("log", set()),
        ("stdout", set()),
        ("sqlite:?retention=24h", set()),
        ("file:/var/lib/kube-event-shipper/events.jsonl", set()),
    ],
)
def test_network_policy_sink_ports_from_the_uri(helm, sink, ports):
    assert sink_ports(helm, {"sinks": [sink]}) == ports


def test_network_policy_sink_ports_from_the_config_file(helm):
    config = {
        "route": {"routes": [{"match": [{"receiver": "es"}]}]},
        "receivers": [
            {"name": "es", "elasticsearch": {"hosts": ["https://es.logging:9243"]}},
            {"name": "queue", "sqs": {"queueName": "kube-events", "region": "eu-west-1"}},
            {"name": "out", "stdout": {}},
            {"name": "hook", "webhook": {"endpoint": "http://hooks.internal/k8s"}},
        ],
    }
    assert sink_ports(helm, {"config": config}) == {"9243/TCP", "443/TCP", "80/TCP"}
    as_text = sink_ports(helm, {"config": yaml.safe_dump(config)})  # a config given as a string
    assert as_text == {"9243/TCP", "443/TCP", "80/TCP"}


# -- the alerts' runbooks


RUNBOOKS = ROOT / "docs" / "runbooks.md"


def github_anchors(markdown: str) -> dict[str, str]:
    """Heading anchors as GitHub makes them: lower case, punctuation dropped, spaces to dashes.
    Returns anchor -> the section's text (up to the next heading of the same or higher level)."""
    sections: dict[str, str] = {}
    lines = markdown.splitlines()
    fence = False
    heads: list[tuple[int, int, str]] = []
    for i, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            fence = not fence
        match = None if fence else re.match(r"^(#{1,6}) (.+?)\s*$", line)
        if match:
            heads.append((i, len(match.group(1)), match.group(2)))
    for n, (i, level, title) in enumerate(heads):
        end = next((j for j, lv, _ in heads[n + 1 :] if lv <= level), len(lines))
        anchor = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        sections[anchor] = "\n".join(lines[i + 1 : end])
    return sections


def test_the_anchor_check_finds_missing_sections():
    text = "# T\n\n## KubeEventShipperDown\n\nx\n\n```sh\n## not a heading\n```\n## Two words!\n"
    anchors = github_anchors(text)
    assert set(anchors) == {"t", "kubeeventshipperdown", "two-words"}
    assert "not-a-heading" not in anchors and "## not a heading" in anchors["kubeeventshipperdown"]


def test_every_alert_has_a_runbook_url_to_a_section_that_exists(helm):
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    base = values["prometheusRule"]["runbookUrl"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    # the default points at this repository's docs/runbooks.md
    assert base == f"{chart['home']}/blob/main/{RUNBOOKS.relative_to(ROOT).as_posix()}"
    sections = github_anchors(RUNBOOKS.read_text())
    rendered = render(helm, {"replicas": 2, "prometheusRule": {"enabled": True}})
    alerts = rendered.one("PrometheusRule")["spec"]["groups"][0]["rules"]
    assert len(alerts) == 10  # all of them, KubeEventShipperNoLeader too (leader election)
    for alert in alerts:
        url = alert["annotations"].get("runbook_url")
        assert url == f"{base}#{alert['alert'].lower()}", alert["alert"]
        section = sections.get(url.partition("#")[2])
        assert section is not None, f"docs/runbooks.md has no section for {alert['alert']}"
        # what it means, what to check, and commands to copy
        assert "**Means:**" in section and "**Check:**" in section, alert["alert"]
        assert "```sh\n" in section and "kubectl" in section, alert["alert"]
    # ... and no runbook for an alert that is gone
    documented = {a for a in sections if a.startswith("kubeeventshipper")}
    assert documented == {a["alert"].lower() for a in alerts}
    mine = render(helm, {"prometheusRule": {"enabled": True,
                                            "runbookUrl": "https://wiki.example.com/kes"}})  # fmt: skip
    urls = [r["annotations"]["runbook_url"] for r in
            mine.one("PrometheusRule")["spec"]["groups"][0]["rules"]]  # fmt: skip
    assert urls[0] == "https://wiki.example.com/kes#kubeeventshipperdown"
    assert "runbookUrl" in refused(helm, {"prometheusRule": {"runbookUrl": "docs/runbooks.md"}})


# -- the chart's icon and README


def test_the_chart_has_an_icon_from_the_repository(helm):
    import xml.etree.ElementTree as ET

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    owner_repo = chart["home"].removeprefix("https://github.com/")
    prefix = f"https://raw.githubusercontent.com/{owner_repo}/main/"
    assert chart["icon"].startswith(prefix), chart["icon"]
    icon = ROOT / chart["icon"].removeprefix(prefix)
    assert icon.is_file(), f"{icon} is not in the repository"
    root = ET.fromstring(icon.read_text())
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("viewBox")
    done = subprocess.run([helm, "lint", str(CHART)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "icon is recommended" not in done.stdout, done.stdout


@pytest.fixture(scope="session")
def helm_docs() -> str:
    """helm-docs, built once per machine into the stack cache (about 30 s cold)."""
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build" / "helm-docs.sh")],
        cwd=ROOT, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"scripts/build/helm-docs.sh failed:\n{done.stderr[-4000:]}", pytrace=False)
    return done.stdout.strip().splitlines()[-1]


def render_readme(chart: Path) -> str:
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "render-chart-readme"), "--print"],
        cwd=ROOT, env={**os.environ, "CHART": str(chart)}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_readme_is_what_helm_docs_makes_of_values_yaml(helm_docs):
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "render-chart-readme"), "--check"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, (
        f"run scripts/render-chart-readme and commit the README:\n{done.stdout[-6000:]}"
        f"{done.stderr[-2000:]}"
    )


def test_the_readme_values_table_comes_from_the_values_comments(helm_docs, tmp_path):
    """A changed `# --` comment changes the README, so the check above can fail."""
    import shutil

    copy = tmp_path / "kube-event-shipper"
    shutil.copytree(CHART, copy)
    assert render_readme(copy) == (CHART / "README.md").read_text()
    values = copy / "values.yaml"
    text = values.read_text()
    old = "# -- Create the NetworkPolicy."
    assert text.count(old) == 1
    values.write_text(text.replace(old, "# -- A changed description."))
    changed = render_readme(copy)
    assert changed != (CHART / "README.md").read_text()
    assert "| networkPolicy.enabled | bool | `false` | A changed description. |" in changed


def readme_rows() -> dict[str, list[str]]:
    text = (CHART / "README.md").read_text()
    table = text.partition("\n## Values\n")[2].partition("\n## ")[0]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| ") and cells[0] not in ("Key",):
            rows[cells[0]] = cells
    return rows


def test_every_value_is_in_the_readme_with_a_description():
    rows = readme_rows()
    assert len(rows) > 100, len(rows)
    undescribed = [key for key, cells in rows.items() if len(cells) < 4 or not cells[3]]
    assert undescribed == [], f"give these a `# --` comment in values.yaml: {undescribed}"
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def covered(path: str) -> bool:  # documented itself, or a part of a documented value
        return any(path == key or path.startswith(f"{key}.") for key in rows)

    def leaves(node: Any, path: str) -> Iterator[str]:
        if isinstance(node, dict) and node and not covered(path):
            for key, value in node.items():
                yield from leaves(value, f"{path}.{key}" if path else key)
        else:
            yield path

    missing = [path for path in leaves(values, "") if not covered(path)]
    assert missing == [], f"not in the README's values table: {missing}"


def test_the_schema_knows_every_value_and_every_new_value_is_strict(helm):
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(node: dict[str, Any], props: dict[str, Any], path: str) -> Iterator[str]:
        for key, value in node.items():
            sub = props.get("properties", {}).get(key)
            if sub is None:
                yield f"{path}{key}"
            elif isinstance(value, dict) and "properties" in sub:
                yield from walk(value, sub, f"{path}{key}.")

    assert list(walk(values, schema, "")) == []
    assert set(schema["properties"]) - set(values) == set()  # every key has a default to show
    for bad, where in [
        ({"namespaceOverride": "Not_A_Namespace"}, "namespaceOverride"),
        ({"commonLabels": {"bad key!": "x"}}, "'bad key!' does not match pattern"),
        ({"commonLabels": {"replicas": 2}}, "commonLabels"),
        ({"imagePullSecrets": [{"nam": "x"}]}, "imagePullSecrets"),
        ({"global": {"imageRegistry": "not a registry"}}, "imageRegistry"),
        ({"image": {"registry": "https://ghcr.io"}}, "registry"),
        ({"networkPolicy": {"egress": {"apiServerCIDRs": ["10.0.0.1"]}}}, "apiServerCIDRs"),
        ({"extraObjects": ["", {"apiVersion": "v1"}]}, "extraObjects"),
    ]:
        assert where in refused(helm, bad), bad
    # a parent chart's own globals are its business
    assert render(helm, {"global": {"storageClass": "fast", "imageRegistry": ""}}).docs

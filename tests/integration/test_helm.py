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
        self.docs, self.namespace, self.release = docs, namespace, release

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
        (container,) = self.pod["spec"]["containers"]
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
    assert not rendered.all("ConfigMap") and not rendered.all("Role")
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
    assert not file.all("Role")  # no state in the API server, no rules for it


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
    )  # events Roles in a and b, the checkpoint's Role in the release namespace
    assert several.flag("source") == ["kubernetes:?namespaces=a,b"]
    assert sorted(r["metadata"]["namespace"] for r in several.all("Role")) == [
        "a",
        "b",
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


@pytest.mark.parametrize("values", VALUE_SETS, ids=IDS)
def test_the_api_server_accepts_every_manifest(
    helm, kube_api, dry_run_namespace, monitoring_crds, values
):
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
    if values is not None and "monitoring" in values.name:  # the CRD-backed kinds were checked
        assert {"ServiceMonitor", "PrometheusRule"} <= {d["kind"] for d in rendered.docs}


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
    """Deployment -> ReplicaSet -> Pod, as a rollout makes them (no controller-manager here)."""
    apps, core = client.AppsV1Api(admin), client.CoreV1Api(admin)
    selector = {"matchLabels": {"app": "web"}}
    template = {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}  # fmt: skip

    def owner(obj: Any, kind: str) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": kind, "name": obj.metadata.name,
                "uid": obj.metadata.uid, "controller": True}  # fmt: skip

    deployment = apps.create_namespaced_deployment(ns, {
        "metadata": {"name": "web", "labels": {"app": "web", "team": "payments"}},
        "spec": {"replicas": 1, "selector": selector, "template": template},
    })  # fmt: skip
    replica_set = apps.create_namespaced_replica_set(ns, {
        "metadata": {"name": "web-5d8f", "labels": {"app": "web"},
                     "ownerReferences": [owner(deployment, "Deployment")]},
        "spec": {"replicas": 1, "selector": selector, "template": template},
    })  # fmt: skip
    ensure_service_account(core, ns)
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
    docs = wait_for(
        lambda: len(shipper.stdout_docs()) == 2 and shipper.stdout_docs(), what="two events"
    )
    by_uid = {d["kubernetes"]["event"]["metadata"]["uid"]: d for d in docs}
    assert set(by_uid) == {about_pod["metadata"]["uid"], plain["metadata"]["uid"]}
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
    assert not chart.can("create", "events", namespace) and not chart.can(
        "delete", "events", namespace
    )
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
    done = subprocess.run(
        [helm, "install", "kes", str(CHART), "--namespace", "monitoring", "--dry-run=client",
         "--kubeconfig", kube_env["KUBECONFIG"], "--values", str(CHART / "ci" / "leader-election-values.yaml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    notes = done.stdout.partition("NOTES:")[2]
    assert "kubectl -n monitoring rollout status deployment/kes-kube-event-shipper" in notes
    assert "kubectl -n monitoring logs deployment/kes-kube-event-shipper -f" in notes
    assert "kube_event_shipper_(sink_events_total|watch_ready|leader)" in notes
    assert "get lease kube-event-shipper-leader" in notes
    default = subprocess.run(
        [helm, "install", "kes", str(CHART), "--namespace", "monitoring", "--dry-run=client",
         "--kubeconfig", kube_env["KUBECONFIG"]],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (
        "exec deployment/kes-kube-event-shipper -- kube-event-shipper query --since=1h"
        in default.stdout
    )


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
    image = f"{values['image']['repository']}:{chart['appVersion']}"
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
    tests.write_text(ALERT_TESTS.read_text().replace("[RULES]", f"[{rules}]"))
    return rules, tests


def test_the_alerts_are_valid_rules_and_fire_as_their_tests_say(helm, promtool, tmp_path):
    rules, tests = rule_files(helm, tmp_path)
    checked = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True,
                             text=True, timeout=60)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout + checked.stderr
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
    assert len(used) == 7 and used <= {*served, *(f"{n}_total" for n in served)}, used - served

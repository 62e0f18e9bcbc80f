"""The chart's audit webhook (values: audit; docs/audit.md): a second `--source=audit:...` beside
the kubernetes source, the TLS and token Secrets projected at /etc/kes-audit, a container port, a
Service the API server's webhook kubeconfig can point at by address, and the NetworkPolicy's
ingress to it. Rendered with the real helm, refused when the values cannot work, accepted by the
stack's kube-apiserver (server-side dry run, strict fields); and the example audit policy ships
inside the chart."""

from __future__ import annotations

import subprocess
import tarfile
import uuid
from typing import Any

import orjson
import pytest
import yaml
from kubernetes import client

from tests.integration.test_helm import CHART, apply, helm, refused, render  # noqa: F401
from tests.support.common import ROOT

AUDIT = {"audit": {"enabled": True, "tlsSecret": "kes-audit-tls"}}
DIR = "/etc/kes-audit"
SOURCE = f"audit:?listen=:8443&cert={DIR}/tls.crt&key={DIR}/tls.key&clientCA={DIR}/ca.crt"


def doc_block(marker: str) -> str:
    """The fenced block after <!-- marker --> in docs/audit.md."""
    doc = (ROOT / "docs" / "audit.md").read_text()
    after = doc.split(f"<!-- {marker} -->", 1)[1]
    return after.split("```", 2)[1].split("\n", 1)[1]


def with_audit(**audit: Any) -> dict[str, Any]:
    return {"audit": {**AUDIT["audit"], **audit}}


def audit_volume(rendered: Any) -> dict[str, Any]:
    [volume] = [v for v in rendered.pod["spec"]["volumes"] if v["name"] == "audit"]
    return volume


def test_off_by_default(helm):  # noqa: F811
    rendered = render(helm)
    assert rendered.flag("source") == ["kubernetes:"]
    assert [p["name"] for p in rendered.container["ports"]] == ["http"]
    assert "audit" not in {m["name"] for m in rendered.container["volumeMounts"]}
    assert "audit" not in {v["name"] for v in rendered.pod["spec"]["volumes"]}
    assert not rendered.all("Service")
    # Nothing of the audit block is looked at while it is off: not even a missing tlsSecret.
    assert render(helm, {"audit": {"enabled": False, "clientCA": False}}).flag("source") == [
        "kubernetes:"
    ]


def test_enabled_adds_the_source_the_secrets_the_port_and_the_service(helm):  # noqa: F811
    rendered = render(helm, with_audit(tokenSecret="kes-audit-token"))
    # The audit source comes right after the kubernetes one; everything else is unchanged.
    assert rendered.args[:2] == ["--source=kubernetes:", f"--source={SOURCE}&tokenFile={DIR}/token"]
    assert rendered.args[2:] == render(helm).args[1:]
    assert rendered.container["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},  # still first: the probes'
        {"name": "audit", "containerPort": 8443, "protocol": "TCP"},
    ]
    [mount] = [m for m in rendered.container["volumeMounts"] if m["name"] == "audit"]
    assert mount == {"name": "audit", "mountPath": DIR, "readOnly": True}
    projected = audit_volume(rendered)["projected"]
    assert projected["defaultMode"] == 0o440  # group-readable: the pod's fsGroup
    assert projected["sources"] == [
        {"secret": {"name": "kes-audit-tls", "items": [
            {"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"},
            {"key": "ca.crt", "path": "ca.crt"}]}},
        {"secret": {"name": "kes-audit-token", "items": [{"key": "token", "path": "token"}]}},
    ]  # fmt: skip
    # Every file the source names is in the mount.
    files = {f"{DIR}/{i['path']}" for s in projected["sources"] for i in s["secret"]["items"]}
    named = {p.split("=", 1)[1] for p in rendered.flag("source")[1].split("?", 1)[1].split("&")}
    assert {n for n in named if n.startswith("/")} == files

    service = rendered.one("Service", "kes-kube-event-shipper-audit")
    assert service["metadata"]["namespace"] == "monitoring"
    assert service["spec"]["type"] == "ClusterIP"
    assert "clusterIP" not in service["spec"]  # assigned, unless fixed
    assert service["spec"]["ports"] == [
        {"name": "audit", "port": 443, "targetPort": "audit", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"].items() <= rendered.pod["metadata"]["labels"].items()
    assert not [d for d in rendered.all("Service") if d is not service]  # no metrics Service


def test_the_values_in_the_docs_render_what_the_docs_say(helm):  # noqa: F811
    values = yaml.safe_load(doc_block("audit-values"))
    rendered = render(helm, values)
    assert rendered.flag("source")[1] == f"{SOURCE}&tokenFile={DIR}/token"
    service = rendered.one("Service", "kes-kube-event-shipper-audit")
    assert service["spec"]["clusterIP"] == values["audit"]["service"]["clusterIP"]
    assert service["spec"]["ports"][0]["port"] == 443
    # The docs' webhook kubeconfig points at that Service.
    kubeconfig = yaml.safe_load(doc_block("audit-webhook-kubeconfig"))
    server = kubeconfig["clusters"][0]["cluster"]["server"]
    assert server == f"https://{values['audit']['service']['clusterIP']}:443/"


def test_token_only_or_certificate_only(helm):  # noqa: F811
    token_only = render(helm, with_audit(clientCA=False, tokenSecret="tok", tokenSecretKey="t"))
    assert token_only.flag("source")[1] == (
        f"audit:?listen=:8443&cert={DIR}/tls.crt&key={DIR}/tls.key&tokenFile={DIR}/token"
    )
    sources = audit_volume(token_only)["projected"]["sources"]
    assert [i["key"] for i in sources[0]["secret"]["items"]] == ["tls.crt", "tls.key"]
    assert sources[1]["secret"] == {"name": "tok", "items": [{"key": "t", "path": "token"}]}
    cert_only = render(helm, AUDIT)
    assert cert_only.flag("source")[1] == SOURCE
    assert len(audit_volume(cert_only)["projected"]["sources"]) == 1


def test_port_params_fixed_cluster_ip_and_node_port(helm):  # noqa: F811
    rendered = render(helm, with_audit(
        port=9443, params={"path": "/audit"},
        service={"clusterIP": "10.96.0.50", "port": 8443, "annotations": {"a": "b"},
                 "labels": {"team": "sec"}},
    ))  # fmt: skip
    assert rendered.flag("source")[1] == (
        f"audit:?listen=:9443&cert={DIR}/tls.crt&key={DIR}/tls.key&clientCA={DIR}/ca.crt"
        "&path=/audit"
    )
    assert rendered.container["ports"][1]["containerPort"] == 9443
    service = rendered.one("Service")
    assert service["spec"]["clusterIP"] == "10.96.0.50"
    assert service["spec"]["ports"][0]["port"] == 8443
    assert service["metadata"]["annotations"] == {"a": "b"}
    assert service["metadata"]["labels"]["team"] == "sec"
    node = render(helm, with_audit(service={"type": "NodePort", "nodePort": 31443})).one("Service")
    assert node["spec"]["type"] == "NodePort"
    assert node["spec"]["ports"][0]["nodePort"] == 31443


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"audit": {"enabled": True}}, "audit.enabled needs audit.tlsSecret"),
        (with_audit(clientCA=False), "audit.clientCA=false needs audit.tokenSecret"),
        (with_audit(port=8080), "audit.port 8080 is containerPort's"),
        (with_audit(service={"nodePort": 31443}), "nodePort needs audit.service.type=NodePort"),
        ({**with_audit(), "replicas": 2}, "audit.enabled with leader election"),
        ({**with_audit(), "leaderElection": {"enabled": True}}, "run the audit webhook with"),
    ],
    ids=[
        "no-tls-secret",
        "no-authentication",
        "port-clash",
        "node-port-without-type",
        "replicas",
        "leader-election",
    ],
)
def test_values_that_cannot_work_are_refused(helm, values, message):  # noqa: F811
    assert message in refused(helm, values)


def test_the_schema_refuses_typos_and_bad_values(helm):  # noqa: F811
    assert "tlssecret" in refused(helm, {"audit": {"tlssecret": "x"}})
    assert "type" in refused(helm, with_audit(service={"type": "LoadBalancer"}))
    assert "clusterIP" in refused(helm, with_audit(service={"clusterIP": "kes.example"}))
    # The source's own parameters come from the values above, not from params.
    assert "invalid propertyName 'listen'" in refused(helm, with_audit(params={"listen": ":1"}))


def test_network_policy_lets_the_api_server_in(helm):  # noqa: F811
    peer = {"ipBlock": {"cidr": "192.0.2.0/28"}}
    rendered = render(helm, {**AUDIT, "networkPolicy": {"enabled": True}})
    ingress = rendered.one("NetworkPolicy")["spec"]["ingress"]
    assert ingress == [
        {"ports": [{"port": 8080, "protocol": "TCP"}]},
        {"ports": [{"port": 8443, "protocol": "TCP"}]},
    ]
    limited = render(helm, {"audit": {**AUDIT["audit"], "from": [peer]},
                            "networkPolicy": {"enabled": True}})  # fmt: skip
    assert limited.one("NetworkPolicy")["spec"]["ingress"][1] == {
        "ports": [{"port": 8443, "protocol": "TCP"}], "from": [peer],
    }  # fmt: skip
    plain = render(helm, {"networkPolicy": {"enabled": True}})
    assert len(plain.one("NetworkPolicy")["spec"]["ingress"]) == 1


def test_lint_strict_with_audit(helm):  # noqa: F811
    values = {**with_audit(tokenSecret="t"), "networkPolicy": {"enabled": True}}
    done = subprocess.run(
        [helm, "lint", "--strict", str(CHART), "--values", "-"],
        input=orjson.dumps(values).decode(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout


def test_the_example_policy_ships_inside_the_chart(helm, tmp_path):  # noqa: F811
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    policy_path = CHART / values["audit"]["policy"]
    policy = yaml.safe_load(policy_path.read_text())
    assert (policy["apiVersion"], policy["kind"]) == ("audit.k8s.io/v1", "Policy")
    assert policy["omitStages"] == ["RequestReceived"]
    assert policy["rules"][-1] == {"level": "Metadata"}  # everything else
    done = subprocess.run(
        [helm, "package", str(CHART), "--destination", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [package] = tmp_path.glob("*.tgz")
    with tarfile.open(package) as tar:
        member = tar.extractfile(f"kube-event-shipper/{values['audit']['policy']}")
        assert member is not None and member.read() == policy_path.read_bytes()
    # Documentation only: nothing the chart renders carries it.
    rendered = render(helm, with_audit(tokenSecret="t"))
    assert not [d for d in rendered.docs if "omitStages" in yaml.safe_dump(d)]


@pytest.fixture(scope="module")
def audit_namespace(kube_api) -> str:
    name = f"helm-audit-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(kube_api).create_namespace({"metadata": {"name": name}})
    return name


@pytest.mark.parametrize(
    "values",
    [
        {**with_audit(tokenSecret="t", service={"clusterIP": "10.0.0.77"}),
         "networkPolicy": {"enabled": True}},
        with_audit(clientCA=False, tokenSecret="t", service={"type": "NodePort",
                                                               "nodePort": 31443}),
    ],
    ids=["cluster-ip", "node-port"],
)  # fmt: skip
def test_the_api_server_accepts_the_audit_manifests(helm, kube_api, audit_namespace, values):  # noqa: F811
    """Server-side dry run with strict field validation (the stack's Service CIDR is
    10.0.0.0/24, so the fixed clusterIP is one of it)."""
    rendered = render(helm, values, namespace=audit_namespace)
    kinds = {d["kind"] for d in rendered.docs}
    assert {"Deployment", "Service"} <= kinds
    for doc in rendered.docs:
        if doc["kind"] not in ("Deployment", "Service", "NetworkPolicy"):
            continue
        reply = apply(kube_api, doc, dry_run=True)
        assert reply.status in (200, 201), (
            f"{doc['kind']}/{doc['metadata']['name']}: {reply.data!r}"
        )
        echoed = orjson.loads(reply.data)
        if doc["kind"] == "Service":
            assert echoed["spec"]["ports"][0]["targetPort"] == "audit"
            want = values["audit"].get("service", {})
            if "clusterIP" in want:
                assert echoed["spec"]["clusterIP"] == want["clusterIP"]
            if "nodePort" in want:
                assert echoed["spec"]["ports"][0]["nodePort"] == want["nodePort"]
        if doc["kind"] == "Deployment":
            volumes = echoed["spec"]["template"]["spec"]["volumes"]
            assert next(v for v in volumes if v["name"] == "audit")["projected"]["sources"]

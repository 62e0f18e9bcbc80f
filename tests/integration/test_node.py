"""The test stack's real node: kubelet + containerd + runc + CNI bridge, scheduler, controller-manager.

``scripts/stack up node`` joins a node to the stack's kube-apiserver; ``scripts/stack image``
builds the stand-in base image (Debian bookworm + Python 3.11, laid out like python:3.11-slim)
and the project's image from its Dockerfile, and imports both into the node's containerd. These
tests run real Pods there and read what the kubelet reports through the API server: the events
the shipper exists to ship.
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import pytest
from kubernetes import client

from tests.support.common import ROOT, STACK, read_env, stack_image, stack_up, wait_for

# The first test's setup may build the node (kubelet & co. 4-5 min after kube-apiserver's build,
# helm about 2 min) and the images (debootstrap about 2 min, podman build about 2 min).
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def node_env() -> Iterator[dict[str, str]]:
    """The node up, and the images in its containerd (built on first use: a few minutes).
    Brought down afterwards: while it runs, Deployments get real pods and their events, which
    the other modules (written for an API server without controllers) do not expect."""
    stack_up("node")
    try:
        stack_image()
        yield read_env(ROOT / ".stack" / "env")
    finally:
        subprocess.run(
            [sys.executable, str(STACK), "down", "node"],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip


@pytest.fixture(scope="module")
def api(node_env: dict[str, str]) -> Any:
    from kubernetes import config

    configuration = client.Configuration()
    config.load_kube_config(config_file=node_env["KUBECONFIG"], client_configuration=configuration)
    return client.ApiClient(configuration)


@pytest.fixture
def ns(api: Any) -> Iterator[str]:
    """A namespace of its own, deleted afterwards (the controller-manager runs: it goes away)."""
    core = client.CoreV1Api(api)
    name = f"node-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name, grace_period_seconds=0)


def pod(name: str, image: str, command: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {"name": "main", "image": image, "imagePullPolicy": "Never", "command": command}
            ],
            **spec,
        },
    }


def events(api: Any, ns: str, name: str) -> list[Any]:
    selector = f"involvedObject.name={name}"
    return client.CoreV1Api(api).list_namespaced_event(ns, field_selector=selector).items


def test_node_is_ready_and_schedulable(api: Any, node_env: dict[str, str]) -> None:
    node = client.CoreV1Api(api).read_node(node_env["KUBE_NODE_NAME"])
    ready = {c.type: c.status for c in node.status.conditions}
    assert ready["Ready"] == "True"
    # The kubelet is the kube-apiserver's version, built the same way.
    server = client.VersionApi(api).get_code().git_version
    assert node.status.node_info.kubelet_version == server
    assert node.status.node_info.container_runtime_version.startswith("containerd://")
    # The controller-manager's node lifecycle controller lifted the not-ready taint.
    assert not [t for t in node.spec.taints or [] if t.key.startswith("node.kubernetes.io/")]
    addresses = {a.type: a.address for a in node.status.addresses}
    assert addresses["InternalIP"] == node_env["KUBE_POD_GATEWAY"]


def test_pod_runs_on_the_pod_network(api: Any, node_env: dict[str, str], ns: str) -> None:
    core = client.CoreV1Api(api)
    marker = uuid.uuid4().hex
    script = f"import time; print('{marker}', flush=True); time.sleep(3600)"
    core.create_namespaced_pod(
        ns, pod("runs", node_env["KES_BASE_IMAGE"], ["python3", "-c", script])
    )

    def running() -> Any:
        p = core.read_namespaced_pod("runs", ns)
        return p if p.status.phase == "Running" else None

    p = wait_for(running, timeout=60, what="the pod to run")
    # An address from the node's pod range, on the kubelet's node.
    address = ipaddress.ip_address(p.status.pod_ip)
    assert address in ipaddress.ip_network(node_env["KUBE_POD_CIDR"])
    assert str(address) != node_env["KUBE_POD_GATEWAY"]
    assert p.spec.node_name == node_env["KUBE_NODE_NAME"]
    # Logs come from the kubelet through the API server.
    wait_for(lambda: marker in core.read_namespaced_pod_log("runs", ns), timeout=30, what="log")

    # The scheduler's (events.k8s.io: reportingController) and the kubelet's (core: source).
    def reasons() -> set[tuple[str, str]]:
        return {
            (e.source.component or e.reporting_component, e.reason) for e in events(api, ns, "runs")
        }

    wait_for(
        lambda: reasons() >= {("default-scheduler", "Scheduled"), ("kubelet", "Started")},
        timeout=30,
        what="Scheduled and Started events",
    )
    assert {("kubelet", "Pulled"), ("kubelet", "Created")} <= reasons()


def test_crashing_container_backs_off_with_rising_count(
    api: Any, node_env: dict[str, str], ns: str
) -> None:
    core = client.CoreV1Api(api)
    command = ["python3", "-c", "import sys; print('failing on purpose'); sys.exit(1)"]
    core.create_namespaced_pod(ns, pod("crashes", node_env["KES_BASE_IMAGE"], command))

    def backoff() -> Any:
        found = [e for e in events(api, ns, "crashes") if e.reason == "BackOff"]
        return found[0] if found else None

    first = wait_for(backoff, timeout=90, what="a BackOff event")
    assert first.type == "Warning" and first.source.component == "kubelet"
    assert first.involved_object.kind == "Pod" and first.source.host == node_env["KUBE_NODE_NAME"]
    # The kubelet keeps reporting the back-off: the same event, its count going up.
    later = wait_for(
        lambda: (e := backoff()) is not None and (e.count or 0) > (first.count or 0) and e,
        timeout=90,
        what="the BackOff event's count to rise",
    )
    assert later.metadata.uid == first.metadata.uid
    assert later.last_timestamp >= first.last_timestamp
    status = core.read_namespaced_pod("crashes", ns).status.container_statuses[0]
    assert status.restart_count >= 1
    terminated = status.last_state.terminated or status.state.terminated
    assert terminated.exit_code == 1


def test_project_image_runs_in_the_node(api: Any, node_env: dict[str, str], ns: str) -> None:
    """The image built from the Dockerfile (on the stand-in base) runs as the chart runs it."""
    assert node_env["KES_IMAGE"] == "localhost/kube-event-shipper:dev"
    core = client.CoreV1Api(api)
    body = pod("shipper", node_env["KES_IMAGE"], ["kube-event-shipper", "--version"])
    body["spec"]["restartPolicy"] = "Never"
    body["spec"]["containers"][0]["securityContext"] = {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    core.create_namespaced_pod(ns, body)
    deadline = time.monotonic() + 60
    while (phase := core.read_namespaced_pod("shipper", ns).status.phase) not in (
        "Succeeded",
        "Failed",
    ):
        assert time.monotonic() < deadline, f"pod still {phase}"
        time.sleep(0.5)
    out = core.read_namespaced_pod_log("shipper", ns)
    assert phase == "Succeeded", out
    assert out.split() == ["kube-event-shipper", version("kube-event-shipper")]

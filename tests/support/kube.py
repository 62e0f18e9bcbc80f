"""Kubernetes-side helpers for end-to-end tests: make events the way kubelet and client-go do."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import urllib3
from kubernetes import client


def now(offset: float = 0) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=offset)


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def core_event(
    api: Any, ns: str, *, reason: str = "BackOff", type_: str = "Warning", message: str = "m",
    kind: str = "Pod", obj: str = "web-1", count: int = 1, at: datetime | None = None,
) -> dict[str, Any]:  # fmt: skip
    moment = rfc3339(at or now())
    body = {
        "metadata": {"name": f"{obj}.{uuid.uuid4().hex[:12]}", "namespace": ns},
        "involvedObject": {"kind": kind, "name": obj, "apiVersion": "v1"}
        | ({"namespace": ns} if kind != "Node" else {}),
        "reason": reason,
        "message": message,
        "type": type_,
        "count": count,
        "firstTimestamp": moment,
        "lastTimestamp": moment,
        "source": {"component": "kubelet", "host": "node-a"},
    }
    response = client.CoreV1Api(api).create_namespaced_event(ns, body, _preload_content=False)
    return orjson.loads(response.data)


def bump(api: Any, ns: str, name: str, count: int, at: datetime) -> dict[str, Any]:
    """What client-go's recorder does for a repeat: PATCH count+1 and lastTimestamp."""
    response = client.CoreV1Api(api).patch_namespaced_event(
        name, ns, {"count": count, "lastTimestamp": rfc3339(at)}, _preload_content=False
    )
    return orjson.loads(response.data)


def events_v1_event(api: Any, ns: str, *, note: str = "scaled") -> dict[str, Any]:
    body = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": f"deploy.{uuid.uuid4().hex[:12]}", "namespace": ns},
        "eventTime": now().strftime("%Y-%m-%dT%H:%M:%S.123456Z"),
        "reportingController": "example.com/scaler",
        "reportingInstance": "scaler-0",
        "action": "Scale",
        "reason": "ScalingReplicaSet",
        "note": note,
        "type": "Normal",
        "regarding": {
            "kind": "Deployment",
            "name": "web",
            "namespace": ns,
            "apiVersion": "apps/v1",
        },
    }
    response = client.EventsV1Api(api).create_namespaced_event(ns, body, _preload_content=False)
    return orjson.loads(response.data)


def key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["metadata"]["uid"], obj["metadata"]["resourceVersion"]


def etcd_compact(etcd_url: str) -> int:
    http = urllib3.PoolManager()
    head = http.request("POST", f"{etcd_url}/v3/kv/range", body=b'{"key":"Lw=="}')
    revision = int(orjson.loads(head.data)["header"]["revision"])
    reply = http.request(
        "POST",
        f"{etcd_url}/v3/kv/compaction",
        body=orjson.dumps({"revision": revision, "physical": True}),
    )
    assert reply.status == 200, reply.data
    return revision


def ensure_service_account(core: Any, namespace: str, name: str = "default") -> None:
    """Create a ServiceAccount unless it exists: with the stack's node up, kube-controller-manager
    makes each namespace's ``default`` one itself, moments after the namespace."""
    from kubernetes.client.exceptions import ApiException

    try:
        core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    except ApiException as exc:
        if exc.status != 409:
            raise

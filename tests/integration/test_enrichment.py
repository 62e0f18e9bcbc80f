"""Enrichment: labels, annotations and the top owner of the involved object.

The bucket and the cache are tested with a hand-driven clock; everything else against the real
kube-apiserver: a Pod -> ReplicaSet -> Deployment chain, config rules on labels, objects that
are gone or may not be looked up, and 1,000 events about 1,000 objects, where the API calls made
are counted by the API server itself.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from kubernetes import client

from shipper import kube
from shipper.enrich import TokenBucket, TTLCache, _meta
from tests.support.common import wait_for
from tests.support.kube import core_event, ensure_service_account, now, rfc3339


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_never_waits_and_refills_at_its_rate():
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    started = time.monotonic()
    assert [bucket.take() for _ in range(5)] == [True, True, True, False, False]
    assert time.monotonic() - started < 0.05  # refusing is immediate
    clock.now += 0.5  # one token back at 2/s
    assert [bucket.take(), bucket.take()] == [True, False]
    clock.now += 60  # a quiet minute saves at most the burst
    assert sum(bucket.take() for _ in range(10)) == 3


def test_the_cache_is_bounded_and_expires():
    clock = Clock()
    cache = TTLCache(size=2, ttl=10, clock=clock)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recently used
    cache.put("c", 3)  # evicts b, the least recently used
    assert (cache.get("a"), cache.get("b"), cache.get("c"), len(cache)) == (1, None, 3, 2)
    cache.put("short", 4, ttl=1)
    clock.now += 1
    assert cache.get("short") is None
    clock.now += 9
    assert cache.get("c") is None


def test_the_controller_reference_is_the_owner():
    meta = _meta({
        "uid": "u1", "labels": {"app": "web"},
        "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "other"},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "controller": True},
        ],
    })  # fmt: skip
    assert meta.owner == ("apps/v1", "ReplicaSet", "web-1")
    assert meta.labels == {"app": "web"} and meta.annotations == {}
    assert _meta({"uid": "u2"}).owner is None


# -- against the real kube-apiserver


def _owner_ref(obj: Any, kind: str, api_version: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version, "kind": kind, "name": obj.metadata.name,
        "uid": obj.metadata.uid, "controller": True,
    }  # fmt: skip


def _pod_chain(kube_api: Any, ns: str) -> Any:
    """Deployment web -> ReplicaSet web-5d8f -> Pod web-5d8f-x2k, made by hand (no
    controller-manager runs in the test stack), with the labels a real rollout gives them."""
    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    selector = {"matchLabels": {"app": "web"}}
    template = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
    }
    deployment = apps.create_namespaced_deployment(ns, {
        "metadata": {"name": "web", "labels": {"app": "web", "team": "payments",
                                               "app.kubernetes.io/part-of": "shop"}},
        "spec": {"replicas": 1, "selector": selector, "template": template},
    })  # fmt: skip
    replica_set = apps.create_namespaced_replica_set(ns, {
        "metadata": {"name": "web-5d8f", "labels": {"app": "web", "pod-template-hash": "5d8f"},
                     "ownerReferences": [_owner_ref(deployment, "Deployment", "apps/v1")]},
        "spec": {"replicas": 1, "selector": selector, "template": template},
    })  # fmt: skip
    ensure_service_account(core, ns)
    return core.create_namespaced_pod(ns, {
        "metadata": {"name": "web-5d8f-x2k",
                     "labels": {"app": "web", "pod-template-hash": "5d8f"},
                     "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-12-01T10:00:00Z"},
                     "ownerReferences": [_owner_ref(replica_set, "ReplicaSet", "apps/v1")]},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
    })  # fmt: skip


def _event_about(kube_api: Any, ns: str, obj: Any, kind: str, api_version: str, **kw: Any) -> Any:
    moment = rfc3339(now())
    body = {
        "metadata": {"name": f"{obj.metadata.name}.{uuid.uuid4().hex[:10]}", "namespace": ns},
        "involvedObject": {"kind": kind, "name": obj.metadata.name, "namespace": ns,
                           "uid": obj.metadata.uid, "apiVersion": api_version},
        "reason": kw.get("reason", "BackOff"), "message": kw.get("message", "Back-off"),
        "type": kw.get("type_", "Warning"), "count": 1,
        "firstTimestamp": moment, "lastTimestamp": moment,
        "source": {"component": "kubelet", "host": "node-a"},
    }  # fmt: skip
    return client.CoreV1Api(kube_api).create_namespaced_event(ns, body)


def _by_reason(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["kubernetes"]["event"]["reason"]: d for d in docs}


def test_a_pods_labels_and_its_deployment_arrive_with_the_event(
    shipper_factory, kube_env, kube_api, namespace, tmp_path
):
    pod = _pod_chain(kube_api, namespace)
    _event_about(kube_api, namespace, pod, "Pod", "v1", reason="BackOff")
    core_event(kube_api, namespace, reason="FailedMount", obj="gone-pod")  # no such pod
    core_event(kube_api, namespace, reason="Rotated", kind="Secret", obj="tls")  # never looked up
    shipper = shipper_factory([
        f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
        "--sink=log", "--enrich", f"--state-dir={tmp_path / 'state'}",
    ]).start()  # fmt: skip
    docs = wait_for(
        lambda: len(shipper.stdout_docs()) == 3 and _by_reason(shipper.stdout_docs()),
        what="three events",
    )
    kube = docs["BackOff"]["kubernetes"]
    assert kube["labels"] == {"app": "web", "pod-template-hash": "5d8f"}
    assert kube["annotations"] == {"kubectl.kubernetes.io/restartedAt": "2026-12-01T10:00:00Z"}
    deployment = client.AppsV1Api(kube_api).read_namespaced_deployment("web", namespace)
    assert kube["owner"] == {
        "api_version": "apps/v1", "kind": "Deployment", "name": "web",
        "uid": deployment.metadata.uid,
        "labels": {"app": "web", "team": "payments", "app.kubernetes.io/part-of": "shop"},
    }  # fmt: skip
    for quiet in ("FailedMount", "Rotated"):  # shipped as they are, without labels
        assert not {"labels", "annotations", "owner"} & set(docs[quiet]["kubernetes"])
    metric = "kube_event_shipper_enrich_events_total"
    assert shipper.metric(metric, outcome="enriched") == 1
    assert shipper.metric(metric, outcome="not_found") == 1
    assert shipper.metric(metric, outcome="unsupported") == 1
    # pod, replicaset, deployment and the missing pod: 4 requests, none for the Secret
    assert shipper.metric("kube_event_shipper_enrich_requests_total", result="ok") == 3
    assert shipper.metric("kube_event_shipper_enrich_requests_total", result="not_found") == 1
    assert "Secret" not in shipper.stderr() and "Traceback" not in shipper.stderr()
    assert shipper.stop() == 0


CONFIG = """\
route:
  routes:
    - match:
        - labels:
            app: ^web$
          receiver: web
        - labels:
            team: payments
          receiver: payments
receivers:
  - name: web
    file:
      path: WEB
  - name: payments
    file:
      path: PAYMENTS
"""


def test_config_rules_on_labels_route_and_turn_enrichment_on(
    shipper_factory, kube_env, kube_api, namespace, tmp_path
):
    """As in kubernetes-event-exporter, rules read the involved object's labels: a Pod carries
    its template's app: web, so that rule matches; team: payments is the Deployment's own label
    (kubernetes.owner.labels), not the Pod's, so that rule matches nothing."""
    web, payments = tmp_path / "web.jsonl", tmp_path / "payments.jsonl"
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.replace("WEB", str(web)).replace("PAYMENTS", str(payments)))
    pod = _pod_chain(kube_api, namespace)
    _event_about(kube_api, namespace, pod, "Pod", "v1", reason="BackOff")
    core_event(kube_api, namespace, reason="Other", obj="unlabelled")
    shipper = shipper_factory([
        f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
        f"--config={config}", f"--state-dir={tmp_path / 'state'}",
    ]).start()  # fmt: skip
    wait_for(lambda: web.exists() and web.read_text().strip(), what="the web receiver's file")
    wait_for(
        lambda: shipper.metric(
            "kube_event_shipper_enrich_events_total", outcome="not_found"
        ) == 1,
        what="the unlabelled event looked up",
    )  # fmt: skip
    shipper.stop()
    filed = [json.loads(line) for line in web.read_text().splitlines() if line]
    assert [d["kubernetes"]["event"]["reason"] for d in filed] == ["BackOff"]
    assert filed[0]["kubernetes"]["owner"]["labels"]["team"] == "payments"
    assert not payments.exists() or not payments.read_text().strip()
    assert "enrichment is on" in shipper.stderr()


@pytest.mark.timeout(300)
def test_a_thousand_objects_do_not_make_events_late_or_burst_the_api(
    shipper_factory, kube_env, kube_api, namespace, tmp_path
):
    """1,000 events about 1,000 ConfigMaps, all listed at once at start-up. With a budget of 20
    lookups/s (burst 20), waiting for the budget would take 50 s; the events must all ship in a
    fraction of that, with no more lookups than the budget allows, as the API server counts."""
    core = client.CoreV1Api(kube_api)
    total = 1000
    for i in range(total):
        cm = core.create_namespaced_config_map(
            namespace, {"metadata": {"name": f"cm-{i}", "labels": {"i": str(i)}}}
        )
        _event_about(kube_api, namespace, cm, "ConfigMap", "v1", reason=f"R{i}")
    gets_before = _apiserver_gets(kube_api, "configmaps")
    shipper = shipper_factory([
        f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
        "--sink=log", "--enrich", "--enrich-qps=20", "--enrich-burst=20",
        f"--state-dir={tmp_path / 'state'}",
    ])  # fmt: skip
    started = time.monotonic()
    shipper.start()
    wait_for(lambda: len(shipper.stdout_docs()) == total, timeout=40, what="1,000 events")
    elapsed = time.monotonic() - started
    docs = shipper.stdout_docs()
    enriched = [d for d in docs if "labels" in d["kubernetes"]]
    for doc in enriched:  # each has its own object's labels, not a neighbour's
        name = doc["kubernetes"]["event"]["involved_object"]["name"]
        assert name == f"cm-{doc['kubernetes']['labels']['i']}"
    requests = shipper.metric("kube_event_shipper_enrich_requests_total", result="ok")
    allowed = 20 + 20 * elapsed
    print(f"elapsed {elapsed:.2f} s, enriched {len(enriched)}, requests {requests}")
    assert elapsed < 25, f"shipping took {elapsed:.1f} s: lookups held events back"
    assert len(enriched) == requests <= allowed
    assert len(enriched) >= 20  # the burst, at least
    metric = "kube_event_shipper_enrich_events_total"
    assert shipper.metric(metric, outcome="rate_limited") == total - len(enriched)
    server_counted = _apiserver_gets(kube_api, "configmaps") - gets_before
    assert requests <= server_counted <= allowed + 5  # +5: anyone else's GETs meanwhile
    assert shipper.stop() == 0


def _apiserver_gets(kube_api: Any, resource: str) -> float:
    """The API server's own count of GETs of one object of ``resource`` (its /metrics)."""
    from prometheus_client.parser import text_string_to_metric_families

    response = kube.request(kube_api, "GET", "/metrics", accept="text/plain")
    assert response.status == 200, response.data[:300]
    text = response.data.decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "apiserver_request_total"
                and labels.get("verb") == "GET"
                and labels.get("resource") == resource
                and labels.get("scope") == "resource"
            ):
                total += sample.value
    return total


def _token_kubeconfig(kube_api: Any, kube_env: dict[str, str], ns: str, path: Any) -> str:
    """A kubeconfig for a ServiceAccount that may read Events in ``ns`` and nothing else."""
    import yaml

    rbac = client.RbacAuthorizationV1Api(kube_api)
    client.CoreV1Api(kube_api).create_namespaced_service_account(
        ns, {"metadata": {"name": "events-only"}}
    )
    rbac.create_namespaced_role(ns, {
        "metadata": {"name": "events-only"},
        "rules": [{"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]}],
    })  # fmt: skip
    rbac.create_namespaced_role_binding(ns, {
        "metadata": {"name": "events-only"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "events-only"},
        "subjects": [{"kind": "ServiceAccount", "name": "events-only", "namespace": ns}],
    })  # fmt: skip
    reply = kube.request(
        kube_api, "POST", f"/api/v1/namespaces/{ns}/serviceaccounts/events-only/token",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
              "spec": {"expirationSeconds": 3600}},
    )  # fmt: skip
    assert reply.status == 201, reply.data
    with open(kube_env["KUBECONFIG"]) as handle:
        config = yaml.safe_load(handle)
    config["users"] = [{"name": "sa", "user": {"token": json.loads(reply.data)["status"]["token"]}}]
    config["contexts"] = [{"name": "sa", "context": {"cluster": config["clusters"][0]["name"],
                                                     "user": "sa"}}]  # fmt: skip
    config["current-context"] = "sa"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_objects_rbac_forbids_are_one_request_and_one_log_line(
    shipper_factory, kube_env, kube_api, namespace, tmp_path
):
    kubeconfig = _token_kubeconfig(kube_api, kube_env, namespace, tmp_path / "sa-kubeconfig")
    made = [core_event(kube_api, namespace, reason=f"R{i}", obj=f"pod-{i}") for i in range(3)]
    shipper = shipper_factory([
        f"--source=kubernetes:?auth={kubeconfig}&namespaces={namespace}",
        "--sink=log", "--enrich", f"--state-dir={tmp_path / 'state'}",
    ]).start()  # fmt: skip
    wait_for(lambda: len(shipper.stdout_docs()) == 3, what="three events, shipped without labels")
    assert {d["kubernetes"]["event"]["metadata"]["uid"] for d in shipper.stdout_docs()} == {
        e["metadata"]["uid"] for e in made
    }
    assert all("labels" not in d["kubernetes"] for d in shipper.stdout_docs())
    assert shipper.metric("kube_event_shipper_enrich_events_total", outcome="forbidden") == 3
    # the first 403 is remembered for the resource: one request, one log line
    assert shipper.metric("kube_event_shipper_enrich_requests_total", result="forbidden") == 1
    assert shipper.stop() == 0
    said = [line for line in shipper.stderr().splitlines() if "may not get pods" in line]
    assert len(said) == 1, shipper.stderr()


def test_a_failing_api_server_pauses_lookups_instead_of_stalling_the_watch():
    """Lookups against a server that answers 503: the first fails, the next events are not
    looked up at all until the pause ends, and the pause doubles while failures go on."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from shipper.enrich import Enricher, EnrichSettings
    from shipper.event import normalize
    from shipper.metrics import Metrics

    seen: list[str] = []

    class Failing(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        configuration = client.Configuration()
        configuration.host = f"http://127.0.0.1:{server.server_port}"
        metrics = Metrics()
        enricher = Enricher(
            client.ApiClient(configuration), metrics, EnrichSettings(qps=1000, burst=1000)
        )

        def event(i: int) -> Any:
            return normalize({
                "metadata": {"uid": f"u{i}", "resourceVersion": "1", "namespace": "shop"},
                "involvedObject": {"kind": "Pod", "name": f"web-{i}", "namespace": "shop",
                                   "apiVersion": "v1"},
            }, "ADDED")  # fmt: skip

        def outcomes() -> dict[str, float]:
            return {
                s.labels["outcome"]: s.value
                for s in metrics.enrich_events.collect()[0].samples
                if s.name.endswith("_total") and s.value
            }

        started = time.monotonic()
        for i in range(100):
            enricher.enrich(event(i))
        assert time.monotonic() - started < 1.0
        assert outcomes() == {"error": 1, "backoff": 99}
        assert seen == ["/api/v1/namespaces/shop/pods/web-0"]
        time.sleep(1.1)  # the first pause (1 s) is over: one more try, then a 2 s pause
        for i in range(100, 110):
            enricher.enrich(event(i))
        assert len(seen) == 2 and outcomes() == {"error": 2, "backoff": 108}
        time.sleep(1.1)  # still inside the doubled pause
        enricher.enrich(event(200))
        assert len(seen) == 2
    finally:
        server.shutdown()

"""The chart's aggregator mode (values: aggregator): Kafka consumers in one group, no RBAC on
events, no leader election, an HPA on consumer lag behind a flag. Rendered with the real helm,
accepted by the stack's kube-apiserver (server-side dry run, strict fields), and the rendered
arguments run as the container would run them against the stack's Kafka."""

from __future__ import annotations

import uuid

import orjson

from tests.integration.test_helm import RESOURCES, apply, helm, refused, render  # noqa: F401
from tests.support.common import ShipperProcess, wait_for

AGGREGATOR = {
    "aggregator": {"enabled": True, "brokers": ["kafka-0:9092", "kafka-1:9093"],
                   "topic": "kube-events", "params": {"user": "agg", "mechanism": "SCRAM-SHA-512",
                                                      "password": "$KAFKA_PASSWORD"}},
    "replicas": 3,
    "sinks": ["opensearch:http://opensearch:9200"],
}  # fmt: skip


def test_aggregators_are_consumers_in_one_group_without_rbac_on_events(helm):  # noqa: F811
    rendered = render(helm, AGGREGATOR)
    [source] = rendered.flag("source")
    assert source == (
        "kafka:?brokers=kafka-0:9092,kafka-1:9093&topic=kube-events&group=kes-kube-event-shipper"
        "&mechanism=SCRAM-SHA-512&password=$KAFKA_PASSWORD&user=agg"
    )
    assert rendered.one("Deployment")["spec"]["replicas"] == 3
    assert rendered.flag("checkpoint") == ["none"]
    assert not any(a.startswith("--leader-elect") for a in rendered.args)  # 3 replicas, no Lease
    kinds = rendered.kinds()
    assert not [k for k in kinds if k.split("/")[0] in ("ClusterRole", "ClusterRoleBinding")]
    chart_roles = [d for d in rendered.all("Role") if not d["metadata"]["name"].endswith("-test")]
    assert chart_roles == []  # reads Kafka, writes nothing to the API server
    assert "PodDisruptionBudget/kes-kube-event-shipper" in kinds
    assert not rendered.all("HorizontalPodAutoscaler")  # only behind its flag
    group = render(helm, {**AGGREGATOR, "aggregator": {**AGGREGATOR["aggregator"], "group": "g"}})
    assert "&group=g&" in group.flag("source")[0]


def test_the_lag_autoscaler_replaces_the_fixed_replica_count(helm):  # noqa: F811
    values = {**AGGREGATOR, "aggregator": {**AGGREGATOR["aggregator"],
                                          "autoscaling": {"enabled": True, "maxReplicas": 12}}}  # fmt: skip
    rendered = render(helm, values)
    assert "replicas" not in rendered.one("Deployment")["spec"]
    hpa = rendered.one("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "kes-kube-event-shipper",
    }  # fmt: skip
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 12)
    [metric] = hpa["metrics"]
    assert metric["external"]["metric"] == {
        "name": "kafka_consumergroup_lag",
        "selector": {"matchLabels": {"consumergroup": "kes-kube-event-shipper",
                                     "topic": "kube-events"}},
    }  # fmt: skip
    assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": "5000"}


def test_what_does_not_go_with_an_aggregator_is_refused(helm):  # noqa: F811
    assert "aggregator.enabled needs aggregator.brokers" in refused(
        helm, {"aggregator": {"enabled": True}}
    )
    assert "enrich in the clusters' shippers" in refused(
        helm, {**AGGREGATOR, "enrichment": {"enabled": True}}
    )
    assert "aggregator" in refused(helm, {"aggregator": {"enabled": True, "brokerz": ["k:1"]}})
    assert "topic" in refused(helm, {"aggregator": {"topic": "kube/events"}})


def test_the_api_server_accepts_the_aggregator_manifests(helm, kube_api):  # noqa: F811
    from kubernetes import client

    namespace = f"helm-agg-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(kube_api).create_namespace({"metadata": {"name": namespace}})
    RESOURCES.setdefault(
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("/apis/autoscaling/v2", "horizontalpodautoscalers", True),
    )
    values = {**AGGREGATOR, "aggregator": {**AGGREGATOR["aggregator"],
                                          "autoscaling": {"enabled": True}}}  # fmt: skip
    rendered = render(helm, values, namespace=namespace)
    assert rendered.all("HorizontalPodAutoscaler")
    for doc in rendered.docs:
        if "helm.sh/hook" in (doc["metadata"].get("annotations") or {}):
            continue  # `helm test`'s objects: not the release's
        reply = apply(kube_api, doc, dry_run=True)
        assert reply.status in (200, 201), (
            f"{doc['kind']}/{doc['metadata']['name']}: {reply.data!r}"
        )
        assert orjson.loads(reply.data)["kind"] == doc["kind"]


def test_the_rendered_arguments_aggregate_from_the_stacks_kafka(helm, kafka_bootstrap, tmp_path):  # noqa: F811
    from kafka.admin import KafkaAdminClient, NewTopic

    from shipper.sinks.base import SinkContext
    from shipper.sinks.factory import build_sink
    from tests.integration.test_kafka_sink import make_events

    topic = f"kes-helm-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 2, 1)], timeout_ms=30_000)
    admin.close()
    writer, _ = build_sink(
        f"kafka:?brokers={kafka_bootstrap}&eventstopic={topic}", SinkContext("far", None)
    )
    writer.open()
    events = make_events(20)
    assert writer.write(events) == []
    writer.close()
    rendered = render(helm, {"aggregator": {"enabled": True, "brokers": [kafka_bootstrap],
                                            "topic": topic}, "sinks": ["log"]})  # fmt: skip
    process = ShipperProcess(tmp_path, [*rendered.args, f"--state-dir={tmp_path / 'state'}"])
    process.start()  # --listen is appended after the chart's: it wins
    try:
        wait_for(lambda: len(process.stdout_docs()) >= 20, 60, "the 20 events on stdout")
    finally:
        assert process.stop() == 0
    docs = process.stdout_docs()
    assert sorted(d["kubernetes"]["event"]["metadata"]["uid"] for d in docs) == sorted(
        e.uid for e in events
    )
    assert {d["orchestrator"]["cluster"]["name"] for d in docs} == {"far"}


def test_the_network_policy_lets_the_aggregators_reach_their_brokers(helm):  # noqa: F811
    rendered = render(helm, {**AGGREGATOR, "networkPolicy": {"enabled": True}})
    egress = rendered.one("NetworkPolicy")["spec"]["egress"]
    ports = {(p["port"], p["protocol"]) for rule in egress for p in rule.get("ports", [])}
    assert {(9092, "TCP"), (9093, "TCP"), (9200, "TCP")} <= ports  # brokers, and the sink

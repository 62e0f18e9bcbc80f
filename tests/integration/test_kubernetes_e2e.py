"""End to end against the real kube-apiserver: both APIs, count updates, restarts, 410, scoping.

Each test gets its own namespace and runs the shipper as a user would (``python -m shipper``),
scoped to that namespace, writing to stdout and to an sqlite store.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.support.common import wait_for
from tests.support.kube import bump, core_event, etcd_compact, events_v1_event, key, now, rfc3339


def rows(db: Path) -> dict[str, dict[str, Any]]:
    if not db.exists():
        return {}
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return {row["uid"]: dict(row) for row in conn.execute("SELECT * FROM events")}
    except sqlite3.OperationalError:
        return {}
    finally:
        conn.close()


@pytest.fixture
def shipper(shipper_factory, kube_env, namespace, tmp_path):
    """A shipper scoped to the test's namespace, to stdout and sqlite."""
    db = tmp_path / "events.db"
    process = shipper_factory(
        [
            f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
            "--sink=log",
            f"--sink=sqlite:{db}",
            f"--state-dir={tmp_path / 'state'}",
            "--cluster-name=stack",
        ]
    )
    process.db = db
    return process


def shipped_keys(docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (
            d["kubernetes"]["event"]["metadata"]["uid"],
            d["kubernetes"]["event"]["metadata"]["resource_version"],
        )
        for d in docs
    ]


def test_both_apis_arrive_with_correct_fields(
    shipper_factory, kube_env, kube_api, namespace, tmp_path
):
    # Events about cluster-scoped objects (Nodes) must live in "default": watch it too.
    shipper = shipper_factory(
        [
            f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace},default",
            "--sink=log",
            f"--sink=sqlite:{tmp_path / 'events.db'}",
            f"--state-dir={tmp_path / 'state'}",
            "--cluster-name=stack",
        ]
    ).start()
    shipper.db = tmp_path / "events.db"
    pod = core_event(kube_api, namespace, message='Back-off "web" ✓\nline two')
    node = core_event(
        kube_api, "default", kind="Node", obj="node-a", type_="Normal", reason="NodeReady"
    )
    scaled = events_v1_event(kube_api, namespace, note="Scaled up replica set web-1 to 3")
    uids = {e["metadata"]["uid"] for e in (pod, node, scaled)}
    wait_for(lambda: uids <= set(rows(shipper.db)), what="the three events in sqlite")
    stored = rows(shipper.db)

    pod_row = stored[pod["metadata"]["uid"]]
    assert pod_row["message"] == 'Back-off "web" ✓\nline two'
    assert (pod_row["type"], pod_row["reason"], pod_row["kind"]) == ("Warning", "BackOff", "Pod")
    assert (pod_row["namespace"], pod_row["name"], pod_row["count"]) == (namespace, "web-1", 1)
    assert pod_row["cluster"] == "stack"
    assert pod_row["last_seen"] == pod["lastTimestamp"].replace("Z", ".000000Z")

    node_row = stored[node["metadata"]["uid"]]
    assert (node_row["kind"], node_row["namespace"], node_row["event_namespace"]) == (
        "Node",
        "",
        "default",
    )

    scaled_row = stored[scaled["metadata"]["uid"]]
    assert scaled_row["message"] == "Scaled up replica set web-1 to 3"
    assert scaled_row["reporting_controller"] == "example.com/scaler"
    assert scaled_row["action"] == "Scale"
    assert scaled_row["last_seen"] == scaled["eventTime"]  # no lastTimestamp: eventTime
    assert scaled_row["kind"] == "Deployment"

    def shipped_by_uid():
        docs = {d["kubernetes"]["event"]["metadata"]["uid"]: d for d in shipper.stdout_docs()}
        return docs if uids <= set(docs) else None

    by_uid = wait_for(shipped_by_uid, what="the three events on stdout")
    doc = by_uid[pod["metadata"]["uid"]]
    assert doc["message"] == 'Back-off "web" ✓\nline two'
    assert doc["log"]["level"] == "warning"
    assert doc["orchestrator"] == {
        "type": "kubernetes",
        "cluster": {"name": "stack"},
        "namespace": namespace,
    }
    assert doc["kubernetes"]["event"]["source"] == {"component": "kubelet", "host": "node-a"}
    assert (
        doc["kubernetes"]["event"]["metadata"]["resource_version"]
        == pod["metadata"]["resourceVersion"]
    )
    assert "namespace" not in by_uid[node["metadata"]["uid"]]["kubernetes"]
    assert shipper.stop() == 0


def test_count_updates_are_one_stored_event_and_each_version_shipped_once(
    shipper, kube_api, namespace
):
    shipper.start()
    created = core_event(kube_api, namespace, reason="BackOff")
    name, first = created["metadata"]["name"], now()
    versions = [key(created)]
    for count in range(2, 11):
        versions.append(
            key(bump(kube_api, namespace, name, count, first + timedelta(seconds=count)))
        )
    uid = created["metadata"]["uid"]
    wait_for(lambda: rows(shipper.db).get(uid, {}).get("count") == 10, what="count 10")
    row = rows(shipper.db)[uid]
    assert len(rows(shipper.db)) == 1
    assert row["first_seen"] == created["firstTimestamp"].replace("Z", ".000000Z")
    assert row["last_seen"] == rfc3339(first + timedelta(seconds=10)).replace("Z", ".000000Z")
    assert row["resource_version"] == versions[-1][1]
    wait_for(lambda: len(shipper.stdout_docs()) >= 10, what="ten stdout lines")
    assert shipper.stop() == 0
    assert shipped_keys(shipper.stdout_docs()) == versions
    assert [d["kubernetes"]["event"]["count"] for d in shipper.stdout_docs()] == list(range(1, 11))


def test_events_made_while_stopped_arrive_once_after_restart(shipper, kube_api, namespace):
    shipper.start()
    before = [core_event(kube_api, namespace, obj=f"p{i}") for i in range(5)]
    wait_for(lambda: len(rows(shipper.db)) == 5, what="five rows")
    assert shipper.stop() == 0
    assert sorted(shipped_keys(shipper.stdout_docs(1))) == sorted(key(e) for e in before)

    during = [core_event(kube_api, namespace, obj=f"q{i}") for i in range(5)]
    updated = bump(kube_api, namespace, before[0]["metadata"]["name"], 2, now(1))
    shipper.start()
    wait_for(lambda: len(rows(shipper.db)) == 10, what="ten rows")
    wait_for(lambda: rows(shipper.db)[updated["metadata"]["uid"]]["count"] == 2, what="count 2")
    wait_for(lambda: len(shipper.stdout_docs(2)) >= 6, what="six lines in the second run")
    assert shipper.stop() == 0
    second = shipped_keys(shipper.stdout_docs(2))
    assert sorted(second) == sorted([*(key(e) for e in during), key(updated)])
    assert "Resuming" in shipper.stderr()


def test_forced_410_ships_nothing_twice(shipper, kube_api, kube_env, namespace):
    shipper.start()
    before = [core_event(kube_api, namespace, obj=f"p{i}") for i in range(3)]
    wait_for(lambda: len(rows(shipper.db)) == 3, what="three rows")
    assert shipper.stop() == 0

    during = [core_event(kube_api, namespace, obj=f"q{i}") for i in range(3)]
    updated = bump(kube_api, namespace, before[1]["metadata"]["name"], 5, now(2))
    # Events are never in the API server's watch cache (v1.34 sizes it 0 for them), so once etcd
    # compacts, the checkpoint's resourceVersion is gone: the resumed watch gets 410 Expired.
    etcd_compact(kube_env["ETCD_URL"])

    shipper.start()
    wait_for(lambda: len(rows(shipper.db)) == 6, what="six rows")
    wait_for(lambda: len(shipper.stdout_docs(2)) >= 4, what="four lines in the second run")
    assert shipper.stop() == 0
    assert "410 Gone" in shipper.stderr(), shipper.stderr()
    second = shipped_keys(shipper.stdout_docs(2))
    assert sorted(second) == sorted([*(key(e) for e in during), key(updated)])
    assert rows(shipper.db)[updated["metadata"]["uid"]]["count"] == 5


def test_namespace_scoping(shipper_factory, kube_env, kube_api, namespace, tmp_path):
    other = f"{namespace}-other"
    client.CoreV1Api(kube_api).create_namespace({"metadata": {"name": other}})
    process = shipper_factory(
        [
            f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
            "--sink=log",
            f"--state-dir={tmp_path / 'state'}",
        ]
    ).start()
    outside = core_event(kube_api, other, obj="elsewhere")
    inside = core_event(kube_api, namespace, obj="here")
    wait_for(lambda: len(process.stdout_docs()) >= 1, what="the event in scope")
    # Outside was created first: had it passed the scope it would have been shipped before.
    assert process.stop() == 0
    assert shipped_keys(process.stdout_docs()) == [key(inside)]
    assert key(outside) not in shipped_keys(process.stdout_docs())


def test_metrics_and_health(shipper, kube_api, namespace):
    shipper.start()
    assert shipper.get("/healthz") == (200, "ok\n")
    for i in range(4):
        core_event(kube_api, namespace, obj=f"m{i}")
    wait_for(
        lambda: (
            shipper.metric("kube_event_shipper_sink_events_total", sink="sqlite", outcome="shipped")
            == 4
        ),
        what="4 shipped to sqlite in /metrics",
    )
    assert (
        shipper.metric("kube_event_shipper_sink_events_total", sink="log", outcome="shipped") == 4
    )
    assert (
        shipper.metric("kube_event_shipper_sink_events_total", sink="log", outcome="received") == 4
    )
    assert (
        shipper.metric("kube_event_shipper_sink_events_total", sink="log", outcome="dead_lettered")
        == 0
    )
    assert shipper.metric("kube_event_shipper_watch_ready") == 1
    assert shipper.stop() == 0


def test_configmap_checkpoint_survives_losing_the_state_dir(
    shipper_factory, kube_env, kube_api, namespace, tmp_path
):
    """In a pod without a volume the state dir is an emptyDir: the ConfigMap carries the checkpoint."""

    process = shipper_factory(
        [
            f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
            "--sink=log",
            f"--checkpoint=configmap:{namespace}/kes-checkpoint",
        ]
    )
    process.start(f"--state-dir={tmp_path / 'empty-dir-1'}")
    before = [core_event(kube_api, namespace, obj=f"p{i}") for i in range(3)]
    wait_for(lambda: len(process.stdout_docs()) == 3, what="three lines")
    assert process.stop() == 0
    stored = client.CoreV1Api(kube_api).read_namespaced_config_map("kes-checkpoint", namespace)
    assert "checkpoint.json.z" in stored.binary_data

    during = [core_event(kube_api, namespace, obj=f"q{i}") for i in range(2)]
    process.start(f"--state-dir={tmp_path / 'empty-dir-2'}")  # the first state dir is gone
    wait_for(lambda: len(process.stdout_docs(2)) >= 2, what="two lines in the second run")
    assert process.stop() == 0
    assert sorted(shipped_keys(process.stdout_docs(2))) == sorted(key(e) for e in during)
    assert sorted(shipped_keys(process.stdout_docs(1))) == sorted(key(e) for e in before)


def test_start_modes(shipper, kube_api, namespace):
    old = [core_event(kube_api, namespace, obj=f"old{i}") for i in range(2)]
    shipper.start("--start=new")
    fresh = core_event(kube_api, namespace, obj="fresh")
    wait_for(lambda: len(shipper.stdout_docs()) >= 1, what="the new event")
    assert shipper.stop() == 0
    assert shipped_keys(shipper.stdout_docs(1)) == [key(fresh)]  # retained ones skipped

    shipper.start("--start=all")
    wait_for(lambda: len(shipper.stdout_docs(2)) >= 3, what="everything retained")
    assert shipper.stop() == 0
    assert sorted(shipped_keys(shipper.stdout_docs(2))) == sorted(key(e) for e in [*old, fresh])

    shipper.start()  # from the checkpoint: nothing new, nothing again
    core_marker = core_event(kube_api, namespace, obj="marker")
    wait_for(lambda: len(shipper.stdout_docs(3)) >= 1, what="the marker event")
    assert shipper.stop() == 0
    assert shipped_keys(shipper.stdout_docs(3)) == [key(core_marker)]


def test_crash_loses_nothing_and_the_store_holds_no_duplicate(shipper, kube_api, namespace):
    import signal

    shipper.start()
    first = [core_event(kube_api, namespace, obj=f"a{i}") for i in range(20)]
    wait_for(lambda: len(rows(shipper.db)) == 20, what="twenty rows")
    assert shipper.stop(signal.SIGKILL) == -signal.SIGKILL
    after = [core_event(kube_api, namespace, obj=f"b{i}") for i in range(5)]
    shipper.start()
    wait_for(lambda: len(rows(shipper.db)) == 25, what="twenty-five rows")
    assert shipper.stop() == 0
    shipped = shipped_keys(shipper.stdout_docs(1)) + shipped_keys(shipper.stdout_docs(2))
    # Nothing lost; the stdout sink may repeat what was shipped in the last checkpoint interval
    # before the SIGKILL (the README says so), the sqlite store holds each event once.
    assert set(shipped) == {key(e) for e in [*first, *after]}
    assert {key(e) for e in after} <= set(shipped_keys(shipper.stdout_docs(2)))
    assert len(rows(shipper.db)) == 25


def test_deleted_events_are_not_shipped(shipper, kube_api, namespace):
    """DELETED is what TTL expiry looks like on the watch: nothing to ship, nothing lost."""
    shipper.start()
    doomed = core_event(kube_api, namespace, obj="doomed")
    wait_for(lambda: len(shipper.stdout_docs()) == 1, what="the event")
    client.CoreV1Api(kube_api).delete_namespaced_event(doomed["metadata"]["name"], namespace)
    wait_for(
        lambda: shipper.metric("kube_event_shipper_watch_events_total", type="DELETED") >= 1,
        what="the DELETED watch event",
    )
    after = core_event(kube_api, namespace, obj="after")
    wait_for(lambda: len(shipper.stdout_docs()) == 2, what="the next event")
    assert shipper.stop() == 0
    assert shipped_keys(shipper.stdout_docs()) == [key(doomed), key(after)]
    assert len(rows(shipper.db)) == 2  # the store keeps the history the API server dropped


def test_a_configmap_made_by_helm_keeps_its_labels_and_annotations(
    shipper_factory, kube_env, kube_api, namespace, tmp_path
):
    """The chart creates the checkpoint ConfigMap; saving into it must not drop Helm's
    ownership labels and annotations (helm upgrade, Argo CD and Flux read them)."""
    metadata = {
        "name": "kes-checkpoint",
        "labels": {"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/name": "kes"},
        "annotations": {"meta.helm.sh/release-name": "kes"},
    }
    client.CoreV1Api(kube_api).create_namespaced_config_map(namespace, {"metadata": metadata})
    process = shipper_factory([
        f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
        "--sink=log", f"--checkpoint=configmap:{namespace}/kes-checkpoint",
        f"--state-dir={tmp_path / 'state'}",
    ]).start()  # fmt: skip
    core_event(kube_api, namespace, obj="p0")
    wait_for(lambda: len(process.stdout_docs()) == 1, what="one line")
    assert process.stop() == 0
    stored = client.CoreV1Api(kube_api).read_namespaced_config_map("kes-checkpoint", namespace)
    assert "checkpoint.json.z" in stored.binary_data
    assert stored.metadata.labels == metadata["labels"]
    assert stored.metadata.annotations == metadata["annotations"]

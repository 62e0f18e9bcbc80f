"""The per-event path's cheaper parts (issue 18) give the same results as what they replace:
decoding the API's bytes into structs, the shared document JSON, the batch hand-off queue, the
compact ledger, the Kafka partitioner and the light API client."""

from __future__ import annotations

import base64
import random
import threading
import time
import uuid
from dataclasses import replace

import orjson
import pytest

from shipper.checkpoint import Ledger, MemoryStore, SqliteStore
from shipper.event import normalize
from shipper.pipeline import EventQueue
from shipper.source import client as light
from shipper.source import wire
from tests.unit.test_event import CORE, EVENTS_V1


def page_bytes(items: list[dict]) -> bytes:
    return orjson.dumps(
        {
            "kind": "EventList",
            "metadata": {"resourceVersion": "77", "continue": "tok"},
            "items": items,
        }
    )


def with_noise(obj: dict) -> dict:
    """An Event as the API server sends it: managedFields and other fields nobody reads."""
    noisy = orjson.loads(orjson.dumps(obj))
    noisy["metadata"]["managedFields"] = [{"manager": "kubelet", "fieldsV1": {"f:count": {}}}]
    noisy["metadata"]["annotations"] = {"a": "b"}
    noisy["apiVersion"], noisy["kind"] = "v1", "Event"
    return noisy


@pytest.mark.parametrize("obj", [CORE, EVENTS_V1], ids=["core/v1", "events.k8s.io/v1"])
def test_decoded_structs_normalize_as_the_dicts_do(obj):
    page = wire.decode_page(page_bytes([with_noise(obj)]))
    assert (page.metadata.resourceVersion, page.metadata.continue_) == ("77", "tok")
    from_struct = normalize(page.items[0], "LISTED", "c")
    from_dict = normalize(orjson.loads(orjson.dumps(obj)), "LISTED", "c")
    for e in (from_struct, from_dict):
        e.seen_at = "x"  # the moment of reading differs, nothing else may
    assert from_struct == from_dict
    assert from_struct.document() == from_dict.document()


def test_a_page_that_does_not_fit_the_structs_is_refused_as_a_whole():
    odd = with_noise(CORE)
    odd["count"] = {"not": "a number"}
    with pytest.raises(wire.DecodeError):
        wire.decode_page(page_bytes([with_noise(CORE), odd]))
    with pytest.raises(ValueError):
        wire.convert(odd)  # the fallback then skips this item alone (NotAnEvent)


def test_lax_numbers_and_watch_lines():
    line = orjson.dumps({"type": "MODIFIED", "object": {**with_noise(CORE), "count": "9"}})
    decoded = wire.decode_line(line)
    assert decoded.type == "MODIFIED" and normalize(decoded.object, "MODIFIED").count == 9
    status = {"kind": "Status", "status": "Failure", "message": "too old", "code": 410}
    error = wire.decode_line(orjson.dumps({"type": "ERROR", "object": status}))
    assert (error.object.code, error.object.message) == (410, "too old")


@pytest.mark.parametrize("cluster", ["", "prod"])
@pytest.mark.parametrize(
    "obj", [CORE, EVENTS_V1, {"metadata": {"uid": "u", "resourceVersion": "1"}}]
)
def test_document_json_is_the_documents_bytes_made_once(obj, cluster):
    event = normalize(obj, "ADDED", cluster=cluster)
    if obj is CORE:
        event.labels, event.annotations = {"app.kubernetes.io/name": "web"}, {"a": "b"}
        event.owner = {"kind": "Deployment", "name": "web", "labels": {"app": "web"}}
    for sink_cluster in ("", "other", cluster):
        document = event.document()
        if sink_cluster:  # what the JSON sinks did with the dict: the same bytes, key order too
            document["orchestrator"]["cluster"] = {"name": sink_cluster}
        event._json = None
        assert event.document_json(sink_cluster) == orjson.dumps(document)
    encoded = event.document_json("other")
    assert event.document_json("other") is encoded  # shared by every sink that asks
    assert replace(event, labels={"app_kubernetes_io/name": "web"})._json is None


def test_queue_hands_over_a_batch_once_enough_are_there_or_the_time_is_up():
    queue = EventQueue(maxsize=10)
    got: list = []
    started = time.monotonic()
    queue.take_into(got, 5, 5, 0.2)  # nothing comes: waits out the timeout
    assert got == [] and time.monotonic() - started >= 0.19
    feeder = threading.Thread(target=lambda: [queue.put((i, None)) for i in range(7)])
    feeder.start()
    queue.take_into(got, 5, 5, 5.0)
    feeder.join()
    assert [i for i, _ in got] == [0, 1, 2, 3, 4] and queue.qsize() == 2
    assert queue.received == 7


def test_queue_bounds_puts_and_put_many():
    queue = EventQueue(maxsize=3)
    assert queue.put_many([(i, None) for i in range(5)], timeout=0.01) == 3
    assert not queue.put((9, None), timeout=0.01)
    assert queue.put_many([(9, None)], timeout=0.01) == 0
    got: list = []
    queue.take_into(got, 2, 0, 0.0)
    assert queue.put_many([(3, None), (4, None)], timeout=0.01) == 2
    queue.take_into(got, 10, 0, 0.0)
    assert [i for i, _ in got] == [0, 1, 2, 3, 4]


def test_wake_ends_a_wait_once():
    queue = EventQueue(maxsize=10)
    threading.Timer(0.05, queue.wake).start()
    started = time.monotonic()
    queue.take_into([], 5, 5, 5.0)
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    "uid, rv",
    [
        (str(uuid.uuid4()), "12345"),
        (str(uuid.uuid4()).upper(), "12345"),  # not the canonical form: kept as text
        ("not-a-uuid", "007"),  # a leading zero: kept as text, so it reads back the same
        (str(uuid.uuid4()), "opaque-rv"),
    ],
)
def test_compact_ledger_reads_back_exactly(tmp_path, uid, rv):
    ledger = Ledger(SqliteStore(str(tmp_path / "cp.db")))
    ledger.begin("ns", uid, rv, rv, sinks=1).done()
    assert ledger.handled(uid, rv) and not ledger.handled(uid, rv + "1")
    ledger.flush()
    again = Ledger(SqliteStore(str(tmp_path / "cp.db")))
    assert again.handled(uid, rv) and again.tracked_uids() == 1
    assert SqliteStore(str(tmp_path / "cp.db")).load().versions[uid] == ("ns", {rv: 1})
    assert again.forget_missing("ns", present=set()) == 1


def test_compact_ledger_with_more_streams_than_it_packs():
    ledger = Ledger(MemoryStore())
    for n in range(300):
        ledger.begin(f"ns{n}", f"u{n}", "5", "5", sinks=1).done()
    assert all(ledger.handled(f"u{n}", "5") for n in range(300))
    assert ledger.forget_missing("ns299", present=set()) == 1
    assert ledger.forget_missing("ns3", present={"u3"}) == 0


def test_partitioner_places_keys_as_kafka_python_does():
    from kafka.partitioner.default import DefaultPartitioner, murmur2

    from shipper.sinks import kafka_partitioner

    class Cluster:
        def topics(self):
            return {"t"}

        def partitions_for_topic(self, topic):
            return {0, 1, 2, 3, 4, 5, 6}

        def available_partitions_for_topic(self, topic):
            return {0, 1, 2, 3, 4, 5, 6}

    rnd = random.Random(7)
    ours, theirs = kafka_partitioner.partitioner(), DefaultPartitioner()
    for size in [*range(12), 36, 100]:
        for _ in range(50):
            key = bytes(rnd.randrange(256) for _ in range(size))
            assert kafka_partitioner.murmur2(key) == murmur2(key)
            args = ("t", key, key, b"v", b"v", Cluster())
            assert ours.partition(*args) == theirs.partition(*args)


def kubeconfig(tmp_path, user: dict, cluster: dict | None = None) -> str:
    import yaml

    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                "clusters": [
                    {"name": "k", "cluster": cluster or {"server": "https://127.0.0.1:6443"}}
                ],
                "users": [{"name": "u", "user": user}],
            }
        )
    )
    return str(path)


def test_light_client_takes_the_usual_credentials_and_leaves_the_rest(tmp_path):
    token = light.from_kubeconfig(kubeconfig(tmp_path, {"token": "abc"}))
    assert token is not None and token.configuration.host == "https://127.0.0.1:6443"
    _, url, headers, body, _ = token.param_serialize(
        "GET",
        "/api/v1/events",
        query_params=[("limit", 500), ("continue", "eyJ2Ijo+/=="), ("watch", True)],
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    assert headers["Authorization"] == "Bearer abc" and body is None
    assert (
        url
        == "https://127.0.0.1:6443/api/v1/events?limit=500&continue=eyJ2Ijo%2B/%3D%3D&watch=true"
    )
    exec_user = {"exec": {"command": "aws", "apiVersion": "client.authentication.k8s.io/v1"}}
    assert light.from_kubeconfig(kubeconfig(tmp_path, exec_user)) is None
    assert light.from_kubeconfig(str(tmp_path / "missing")) is None
    bad_ca = {"server": "https://x", "certificate-authority-data": base64.b64encode(b"no").decode()}
    assert light.from_kubeconfig(kubeconfig(tmp_path, {"token": "t"}, bad_ca)) is None


def test_light_client_url_is_the_official_clients(tmp_path):
    from kubernetes import client

    official = client.ApiClient(client.Configuration(host="https://127.0.0.1:6443"))
    ours = light.from_kubeconfig(kubeconfig(tmp_path, {"token": "abc"}))
    query = [("limit", 500), ("continue", "a+b/c=="), ("watch", True), ("timeoutSeconds", 290)]
    args = ("GET", "/api/v1/namespaces/ns/events")
    kwargs = {"query_params": query, "header_params": {}, "body": None, "auth_settings": []}
    assert ours.param_serialize(*args, **kwargs)[1] == official.param_serialize(*args, **kwargs)[1]


def test_every_field_lands_where_it_belongs():
    """normalize builds the Event positionally: each field checked by name."""
    event = normalize(CORE, "ADDED", cluster="prod", now="2026-11-22T11:00:00.000000Z")
    expected = {
        "uid": "u-1", "resource_version": "1234", "name": "web-1.17a", "namespace": "shop",
        "type": "Warning", "reason": "BackOff", "count": 7,
        "timestamp": "2026-11-22T10:05:00.000000Z", "first_timestamp": "2026-11-22T10:00:00.000000Z",
        "last_timestamp": "2026-11-22T10:05:00.000000Z", "event_time": None,
        "creation_timestamp": "2026-11-22T10:00:00.000000Z", "action": None,
        "reporting_controller": "kubelet", "reporting_instance": "node-a",
        "source_component": "kubelet", "source_host": "node-a", "object_kind": "Pod",
        "object_name": "web-1", "object_namespace": "shop", "object_uid": "pod-uid",
        "object_api_version": "v1", "object_resource_version": "99",
        "object_field_path": "spec.containers{web}", "seen_at": "2026-11-22T11:00:00.000000Z",
        "watch_type": "ADDED", "cluster": "prod", "labels": None, "annotations": None,
        "owner": None, "wire_count": 7, "wire_first": "2026-11-22T10:00:00.000000Z",
        "wire_last": "2026-11-22T10:05:00.000000Z", "wire_series": None,
    }  # fmt: skip
    assert {name: getattr(event, name) for name in expected} == expected
    assert event.message.startswith("Back-off")
    v1 = normalize(EVENTS_V1, "MODIFIED")
    assert v1.wire_series == (4, "2026-11-22T09:30:00.5Z") and v1.wire_count == 0
    assert (v1.reporting_instance, v1.object_uid, v1.object_api_version) == (
        "ctrl-0",
        "node-uid",
        "v1",
    )

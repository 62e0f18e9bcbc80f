"""The kafka sink against the stack's Apache Kafka 3.9, fed by the real kube-apiserver.

Every test writes to topics of its own (``kes-<random>``), read back with kafka-python's
consumer from the beginning of every partition. What is shown: kube-eventer's URI and
kubernetes-event-exporter's receiver read into the producer's settings; the message (key = uid,
the documented JSON value, valid against ``schemas/kafka-event.schema.json`` with no field left
undocumented, the cluster / type / version_id headers); a count update as a second message with
the same key in the same partition; nothing sent twice across a clean restart and a 410, and
``--start=all`` re-sending with identical version ids; a one-minute broker outage that loses
nothing; SCRAM with the right and a wrong password (one clear line, no traceback); each codec
as the broker stores it; a message the topic refuses dead-lettered while its batch lands; and
one line with exit code 2 for every bad URI.
"""

from __future__ import annotations

import copy
import json
import os
import struct
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import certifi
import jsonschema
import pytest

from shipper.event import normalize
from shipper.sinks.base import SinkContext
from shipper.sinks.factory import build_sink
from shipper.sinks.kafka import KafkaSink
from tests.support.common import ROOT, STACK, stack_up, wait_for
from tests.support.kube import bump, core_event, etcd_compact, events_v1_event, now

OUTAGE_SECONDS = float(os.environ.get("KES_OUTAGE_SECONDS", "60"))
SCHEMA = json.loads((ROOT / "schemas" / "kafka-event.schema.json").read_text())

pytestmark = pytest.mark.stack("kafka")


def strict(schema: Any) -> Any:
    """The schema with ``additionalProperties: false`` on every object that lists its
    properties: a value valid against it has no field the schema does not document. (The
    published schema stays open, so that consumers survive fields added later.)"""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


VALIDATOR = jsonschema.Draft202012Validator(
    strict(SCHEMA), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


class Broker:
    """The stack's broker, seen with kafka-python's admin client and consumer."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.bootstrap = env["KAFKA_BOOTSTRAP"]

    def create_topic(self, partitions: int = 1, **configs: str) -> str:
        from kafka.admin import KafkaAdminClient, NewTopic

        name = f"kes-{uuid.uuid4().hex[:10]}"
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.create_topics(
                [NewTopic(name, partitions, 1, topic_configs=configs)], timeout_ms=30_000
            )
        finally:
            admin.close()
        return name

    def uri(self, topic: str, **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"kafka:?brokers={self.bootstrap}&eventstopic={topic}" + (
            f"&{query}" if query else ""
        )

    def reader(self, topic: str) -> Reader:
        return Reader(self.bootstrap, topic)


class Reader:
    """Every message of a topic, from offset 0 of each partition, kept as it arrives."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
        )
        partitions = wait_for(
            lambda: self.consumer.partitions_for_topic(topic), what=f"topic {topic}"
        )
        self.consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        self.consumer.seek_to_beginning()
        self.records: list[Any] = []

    def poll(self) -> list[Any]:
        for batch in self.consumer.poll(timeout_ms=300).values():
            self.records.extend(batch)
        return self.records

    def wait(self, count: int, timeout: float = 60) -> list[Any]:
        """At least ``count`` messages; then a short look for more than expected."""
        wait_for(lambda: len(self.poll()) >= count, timeout, f"{count} messages")
        self.poll()
        return self.records

    def close(self) -> None:
        self.consumer.close()


def headers(record: Any) -> dict[str, bytes]:
    return dict(record.headers)


def version_ids(records: list[Any]) -> Counter[str]:
    return Counter(headers(r)["version_id"].decode() for r in records)


def version_id(obj: dict[str, Any]) -> str:
    return f"{obj['metadata']['uid']}.{obj.get('count') or 1}"


@pytest.fixture(scope="session")
def broker(kafka_env: dict[str, str]) -> Broker:
    return Broker(kafka_env)


@pytest.fixture
def run(shipper_factory, kube_env, namespace, tmp_path):
    """``run(sink_uri, *flags)`` -> a shipper for the test's namespace (not started yet)."""

    def make(sink: str, *flags: str, env: dict[str, str] | None = None) -> Any:
        args = [
            f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
            f"--sink={sink}",
            f"--state-dir={tmp_path / 'state'}",
            "--cluster-name=stack",
            *flags,
        ]
        return shipper_factory(args, env)

    return make


def shipped(process: Any, outcome: str = "shipped") -> float:
    return process.metric("kube_event_shipper_sink_events_total", sink="kafka", outcome=outcome)


# -- the URI and the config file


def sink(uri: str, cluster: str = "c") -> KafkaSink:
    built, _ = build_sink(uri, SinkContext(cluster=cluster, state_dir=None))
    assert isinstance(built, KafkaSink)
    return built


def test_kube_eventer_uris_become_producer_settings(tmp_path, monkeypatch):
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    ca = certifi.where()  # a CA bundle
    monkeypatch.setenv("KES_KAFKA_USER", "shipper")

    plain = sink("kafka:?brokers=k0:9092&brokers=k1,[::1]:9095&eventstopic=events&compression=gzip")
    config = plain.producer_config()
    assert config["bootstrap_servers"] == ["k0:9092", "k1:9092", "[::1]:9095"]
    assert (plain.topic, config["compression_type"], config["security_protocol"]) == (
        "events",
        "gzip",
        "PLAINTEXT",
    )
    assert (
        config["acks"],
        config["max_request_size"],
        config["batch_size"],
        config["linger_ms"],
    ) == ("all", 1048576, 262144, 5)
    assert (config["delivery_timeout_ms"], config["request_timeout_ms"]) == (30_005, 30_000)
    assert "sasl_mechanism" not in config and "ssl_context" not in config
    assert sink("kafka:?brokers=k0").topic == "heapster-events"  # kube-eventer's default
    assert sink("kafka:k0:9093,k1?compression=none").producer_config()["bootstrap_servers"] == [
        "k0:9093",
        "k1:9092",
    ]

    # kube-eventer's SASL (PLAIN) with the password from a mounted Secret
    sasl = sink(f"kafka:?brokers=k0:9092&user=$KES_KAFKA_USER&password_file={secret}")
    config = sasl.producer_config()
    assert (config["security_protocol"], config["sasl_mechanism"]) == ("SASL_PLAINTEXT", "PLAIN")
    assert (config["sasl_plain_username"], config["sasl_plain_password"]) == (
        "shipper",
        "from-file",
    )
    assert "from-file" not in sasl.describe()
    assert sasl.describe() == "kafka k0:9092 topic=heapster-events PLAIN user shipper"

    # SCRAM over TLS; kubernetes-event-exporter's mechanism names read too
    for mechanism, expected in (
        ("SCRAM-SHA-512", "SCRAM-SHA-512"),
        ("sha256", "SCRAM-SHA-256"),
        ("scram-sha-256", "SCRAM-SHA-256"),
    ):
        config = sink(
            f"kafka:?brokers=k0&user=u&password=p&mechanism={mechanism}&tls=true"
        ).producer_config()
        assert (config["security_protocol"], config["sasl_mechanism"]) == ("SASL_SSL", expected)
        assert config["ssl_context"].verify_mode.name == "CERT_REQUIRED"

    # kube-eventer turns TLS on with cacert / insecuressl
    insecure = sink("kafka:?brokers=k0&insecuressl=true").producer_config()
    assert insecure["security_protocol"] == "SSL"
    assert (insecure["ssl_context"].verify_mode.name, insecure["ssl_context"].check_hostname) == (
        "CERT_NONE",
        False,
    )
    assert sink(f"kafka:?brokers=k0&cacert={ca}").producer_config()["security_protocol"] == "SSL"


def test_timeseriestopic_is_accepted_and_ignored_with_a_warning(caplog):
    built = sink("kafka:?brokers=k0&eventstopic=ev&timeseriestopic=heapster-metrics")
    assert built.topic == "ev"
    assert "timeseriestopic=heapster-metrics is ignored" in caplog.text


def test_kubernetes_event_exporter_kafka_receiver_becomes_the_sink(tmp_path):
    from shipper.config import load
    from shipper.sinks.factory import build_sinks

    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent("""\
        route: {match: [{receiver: kafka}]}
        receivers:
          - name: kafka
            kafka:
              clientId: kubernetes
              topic: kube-events
              brokers: [kafka-0:9093, kafka-1:9093]
              compressionCodec: snappy
              tls: {enable: true, insecureSkipVerify: true}
              sasl: {enable: true, username: shipper, password: s3cr3t, mechanism: sha512}
    """))  # fmt: skip
    [(built, settings)] = build_sinks([], SinkContext("prod", None), load(str(path)))
    assert isinstance(built, KafkaSink) and settings.name == "kafka"
    config = built.producer_config()
    assert (built.topic, config["bootstrap_servers"], config["compression_type"]) == (
        "kube-events", ["kafka-0:9093", "kafka-1:9093"], "snappy",
    )  # fmt: skip
    assert (config["security_protocol"], config["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (config["sasl_plain_username"], config["sasl_plain_password"]) == ("shipper", "s3cr3t")
    assert config["ssl_context"].verify_mode.name == "CERT_NONE"


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("kafka:", "--sink kafka: no brokers given; expected kafka:?brokers=HOST:9092"),
        ("kafka:?eventstopic=events", "--sink kafka: no brokers given"),
        ("kafka:?brokers=k0:port", "parameter brokers: 'k0:port' is not HOST:PORT"),
        ("kafka:?brokers=k0&compression=brotli", "parameter compression='brotli': expected one of none, gzip, snappy, lz4, zstd"),
        ("kafka:?brokers=k0&user=u&password=s3cr3t&mechanism=GSSAPI", "parameter mechanism='GSSAPI': expected one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
        ("kafka:?brokers=k0&user=u", "give user and password together"),
        ("kafka:?brokers=k0&password=s3cr3t", "give user and password together"),
        ("kafka:?brokers=k0&mechanism=PLAIN", "parameter mechanism needs user and password"),
        ("kafka:?brokers=k0&eventstopic=kube/events", "parameter eventstopic='kube/events': expected a topic name"),
        ("kafka:?brokers=k0&cert=/nonexistent/c.pem", "parameter cert_file='/nonexistent/c.pem': cannot read it"),
        ("kafka:?brokers=k0&cacert=/etc/hostname", "cannot use ca_file, cert_file or key_file: "),
        ("kafka:?brokers=k0&tls=false&insecuressl=true", "tls=false, but ca_file, cert_file or insecure given"),
        ("kafka:?brokers=k0&user=u&password_file=/nonexistent/pw", "parameter password_file: cannot read /nonexistent/pw"),
        ("kafka:?brokers=k0&topik=x", "unknown parameter 'topik'; did you mean 'topic'?"),
    ],
)  # fmt: skip
def test_bad_uris_are_one_line_and_exit_2(uri, expected, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "shipper", f"--source=kubernetes:?auth={kubeconfig}",
         f"--sink={uri}", f"--state-dir={tmp_path / 'state'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert expected in lines[0]
    assert "s3cr3t" not in done.stderr


# -- end to end, from the kube-apiserver


def test_versions_arrive_keyed_documented_and_once_across_restarts_410_and_replays(
    broker, run, kube_api, kube_env, namespace
):
    topic = broker.create_topic(partitions=3)
    reader = broker.reader(topic)
    shipper = run(broker.uri(topic, flush_interval="0.2s")).start()
    emoji = 'Back-off restarting 🔥 контейнер 容器 "quoted" \\ ✓'
    created = [
        core_event(kube_api, namespace, obj="p0", message=emoji),
        core_event(kube_api, namespace, obj="p1", type_="Normal", reason="Pulled"),
    ]
    micro = events_v1_event(kube_api, namespace)
    first = now()
    name = created[0]["metadata"]["name"]
    updates = [bump(kube_api, namespace, name, c, first + timedelta(seconds=c)) for c in (2, 3)]
    records = reader.wait(5)
    assert len(records) == 5

    for record in records:
        value = json.loads(record.value)
        VALIDATOR.validate(value)  # raises with the path of the first undocumented field
        uid = value["kubernetes"]["event"]["metadata"]["uid"]
        assert record.key == uid.encode()
        assert headers(record) == {
            "cluster": b"stack",
            "type": value["kubernetes"]["event"]["type"].encode(),
            "version_id": f"{uid}.{value['kubernetes']['event']['count']}".encode(),
        }
        assert value["orchestrator"]["cluster"] == {"name": "stack"}
    assert set(version_ids(records)) == {version_id(o) for o in [*created, micro, *updates]}

    # The count updates: the same key, the same partition, in the order they were made.
    uid = created[0]["metadata"]["uid"]
    history = [r for r in records if r.key == uid.encode()]
    assert len({r.partition for r in history}) == 1
    assert [r.offset for r in history] == sorted(r.offset for r in history)
    values = [json.loads(r.value) for r in history]
    assert [v["kubernetes"]["event"]["count"] for v in values] == [1, 2, 3]
    assert [v["kubernetes"]["event"]["metadata"]["resource_version"] for v in values] == [
        o["metadata"]["resourceVersion"] for o in [created[0], *updates]
    ]
    latest = values[-1]
    assert latest["message"] == emoji
    assert latest["@timestamp"] == updates[-1]["lastTimestamp"].replace("Z", ".000000Z")
    assert latest["kubernetes"]["event"]["timestamp"]["first_occurrence"] == created[0][
        "firstTimestamp"
    ].replace("Z", ".000000Z")
    assert latest["kubernetes"]["event"]["involved_object"] == {
        "kind": "Pod", "name": "p0", "namespace": namespace, "api_version": "v1",
    }  # fmt: skip
    assert (latest["log"]["level"], latest["kubernetes"]["event"]["reason"]) == (
        "warning",
        "BackOff",
    )
    v1 = next(json.loads(r.value) for r in records if r.key == micro["metadata"]["uid"].encode())
    assert v1["@timestamp"].endswith(".123456Z")
    assert (v1["kubernetes"]["event"]["action"], v1["kubernetes"]["event"]["reporting_controller"]) == (
        "Scale", "example.com/scaler",
    )  # fmt: skip
    assert shipper.stop() == 0

    # A clean restart after a 410: only what was made while stopped is sent.
    during = core_event(kube_api, namespace, obj="q0")
    later = bump(kube_api, namespace, created[1]["metadata"]["name"], 2, now(5))
    etcd_compact(kube_env["ETCD_URL"])
    shipper.start()
    records = reader.wait(7)
    wait_for(lambda: shipped(shipper) == 2, what="the two versions made while stopped")
    assert shipper.stop() == 0
    assert "410 Gone" in shipper.stderr(), shipper.stderr()
    records = reader.wait(7)
    assert len(records) == 7
    assert set(version_ids(records).values()) == {1}
    assert {version_id(during), version_id(later)} <= set(version_ids(records))

    # --start=all re-sends every retained event, each with the version id it had.
    shipper.start("--start=all")
    wait_for(lambda: shipped(shipper) == 4, what="the four events re-sent")
    assert shipper.stop() == 0
    records = reader.wait(11)
    assert len(records) == 11
    current = {version_id(o) for o in (updates[-1], later, micro, during)}
    assert version_ids(records) == Counter(
        {vid: 2 if vid in current else 1 for vid in version_ids(records)}
    )
    assert {vid for vid, n in version_ids(records).items() if n == 2} == current
    for again in records[7:]:
        first_copy = next(r for r in records[:7] if headers(r) == headers(again))
        assert (again.key, again.partition) == (first_copy.key, first_copy.partition)
        old, new = json.loads(first_copy.value), json.loads(again.value)
        old["event"].pop("created"), new["event"].pop("created")
        assert new == old
    reader.close()


def test_scram_with_the_right_password_ships_and_a_wrong_one_is_one_clear_line(
    broker, kafka_env, run, kube_api, namespace, tmp_path
):
    topic = broker.create_topic()
    reader = broker.reader(topic)
    secret = tmp_path / "password"
    secret.write_text(kafka_env["KAFKA_SASL_PASSWORD"] + "\n")
    sasl = (
        f"kafka:?brokers={kafka_env['KAFKA_SASL_BOOTSTRAP']}&eventstopic={topic}"
        f"&user={kafka_env['KAFKA_SASL_USERNAME']}&mechanism=SCRAM-SHA-512"
    )
    shipper = run(f"{sasl}&password_file={secret}&flush_interval=0.2s").start()
    made = core_event(kube_api, namespace, obj="s0")
    [record] = reader.wait(1)
    assert record.key == made["metadata"]["uid"].encode()
    assert shipper.stop() == 0
    assert kafka_env["KAFKA_SASL_PASSWORD"] not in shipper.stderr()
    assert "(SASL_PLAINTEXT)" in shipper.stderr() and "an idempotent producer" in shipper.stderr()
    reader.close()

    wrong = run(f"{sasl}&password=wrong-Pa55&timeout=3s", "--grace-period=2s").start()

    def attempts() -> list[str]:
        return [
            line
            for line in wrong.stderr().splitlines()
            if "Sink kafka is not reachable yet" in line
        ]

    wait_for(lambda: len(attempts()) >= 2, 60, "two attempts")
    assert wrong.metric("kube_event_shipper_sink_up", sink="kafka") == 0
    assert wrong.stop() == 0
    lines = attempts()
    expected = (
        f"brokers {kafka_env['KAFKA_SASL_BOOTSTRAP']}: authentication failed (SCRAM-SHA-512, user"
        " 'shipper'): "
    )
    assert all(
        expected in line and "check user, password and mechanism" in line for line in lines
    ), lines
    stderr = wrong.stderr()
    assert "Traceback" not in stderr and "wrong-Pa55" not in stderr
    assert len(stderr.splitlines()) <= len(lines) + 8, stderr  # start, stop, and the attempts


def stack(command: str, component: str) -> None:
    subprocess.run(
        [sys.executable, str(STACK), command, component], cwd=ROOT, check=True, capture_output=True
    )


def test_an_outage_of_the_broker_loses_nothing(broker, run, kube_api, namespace):
    topic = broker.create_topic(partitions=2)
    shipper = run(broker.uri(topic, flush_interval="0.2s", max_backoff="5s", timeout="10s")).start()
    before = [core_event(kube_api, namespace, obj=f"a{i}") for i in range(2)]
    wait_for(lambda: shipped(shipper) == 2, what="two shipped")

    stack("down", "kafka")
    try:
        down_at = time.monotonic()
        during = [core_event(kube_api, namespace, obj=f"b{i}") for i in range(5)]
        update = bump(kube_api, namespace, before[0]["metadata"]["name"], 2, now(1))
        wait_for(
            lambda: shipper.metric("kube_event_shipper_sink_up", sink="kafka") == 0,
            timeout=60,
            what="the sink to notice the outage",
        )
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        assert shipper.proc.poll() is None
        assert shipped(shipper, "retried") > 0
    finally:
        stack_up("kafka")
    wait_for(
        lambda: shipped(shipper) == 8, timeout=120, what="every version made during the outage"
    )
    reader = broker.reader(topic)
    records = reader.wait(8)
    reader.close()
    expected = {version_id(o) for o in [*before, *during, update]}
    assert set(version_ids(records)) == expected  # each at least once, nothing else
    assert shipper.metric("kube_event_shipper_sink_up", sink="kafka") == 1
    assert shipped(shipper, "dead_lettered") == 0
    assert shipper.stop() == 0
    stderr = shipper.stderr()
    assert "Traceback" not in stderr
    assert "Sink kafka could not write" in stderr or "Sink kafka is not reachable yet" in stderr


def test_a_message_the_topic_refuses_is_dead_lettered_and_its_batch_lands(
    broker, run, kube_api, namespace, tmp_path
):
    topic = broker.create_topic(**{"max.message.bytes": "20000"})
    good = [core_event(kube_api, namespace, obj=f"g{i}") for i in range(3)]
    poison = core_event(kube_api, namespace, obj="g9", message="x" * 30_000)
    shipper = run(broker.uri(topic, batch_size="10", flush_interval="1s")).start()
    wait_for(lambda: shipped(shipper, "dead_lettered") == 1, what="one dead letter")
    wait_for(lambda: shipped(shipper) == 3, what="three shipped")
    assert shipper.stop() == 0
    reader = broker.reader(topic)
    records = reader.wait(3)
    reader.close()
    assert sorted(r.key for r in records) == sorted(g["metadata"]["uid"].encode() for g in good)
    letters = (tmp_path / "state" / "dead-letters" / "kafka.jsonl").read_text().splitlines()
    assert len(letters) == 1
    letter = json.loads(letters[0])
    assert letter["document"]["kubernetes"]["event"]["metadata"]["uid"] == poison["metadata"]["uid"]
    assert "Kafka refused the message: MessageSizeTooLargeError" in letter["reason"], letter


# -- compression, as the broker stores it

#: The codec in a v2 record batch's attributes (bits 0-2).
CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def stored_codecs(topic: str) -> set[int]:
    """The codec of every record batch in the broker's log segment of partition 0."""
    data = (ROOT / ".stack" / "kafka" / "data" / f"{topic}-0").glob("*.log")
    codecs, [segment] = set(), [p.read_bytes() for p in data]
    position = 0
    while position + 23 <= len(segment):
        (length,) = struct.unpack_from(">i", segment, position + 8)
        magic = segment[position + 16]
        (attributes,) = struct.unpack_from(">h", segment, position + 21)
        assert magic == 2
        codecs.add(attributes & 0x07)
        position += 12 + length
    return codecs


def make_events(count: int) -> list[Any]:
    return [
        normalize(
            {
                "metadata": {"uid": f"u-{i}-{uuid.uuid4().hex[:6]}", "resourceVersion": str(i + 1), "name": f"web.{i}", "namespace": "shop"},
                "involvedObject": {"kind": "Pod", "name": f"web-{i}", "namespace": "shop"},
                "reason": "BackOff", "type": "Warning", "count": i % 5 + 1,
                "message": f"Back-off restarting failed container web in pod web-{i} 🔥 " * 4,
                "lastTimestamp": "2026-11-20T10:00:00Z", "source": {"component": "kubelet"},
            },
            "ADDED",
        )
        for i in range(count)
    ]  # fmt: skip


@pytest.mark.parametrize("codec", list(CODECS))
def test_each_codec_round_trips_and_is_what_the_broker_stores(broker, codec):
    topic = broker.create_topic()
    writer = sink(broker.uri(topic, compression=codec), cluster="prod")
    events = make_events(200)
    writer.open()
    try:
        assert writer.write(events) == []
    finally:
        writer.close()
    reader = broker.reader(topic)
    records = reader.wait(200)
    reader.close()
    assert [r.key for r in records] == [e.uid.encode() for e in events]
    assert [json.loads(r.value) for r in records] == [
        json.loads(writer.message(e)[1]) for e in events
    ]
    assert all(headers(r)["cluster"] == b"prod" for r in records)
    assert stored_codecs(topic) == {CODECS[codec]}


def test_a_message_over_max_message_bytes_is_refused_before_sending(broker):
    topic = broker.create_topic()
    writer = sink(broker.uri(topic, max_message_bytes="5000"))
    events = make_events(3)
    events[1].message = "y" * 6000
    writer.open()
    try:
        [refused] = writer.write(events)
    finally:
        writer.close()
    assert refused.index == 1 and "MessageSizeTooLargeError" in refused.reason
    reader = broker.reader(topic)
    records = reader.wait(2)
    reader.close()
    assert [r.key for r in records] == [events[0].uid.encode(), events[2].uid.encode()]


@pytest.mark.parametrize("exactly_once", [False, True])
def test_an_event_its_layout_fails_on_is_refused_alone(broker, exactly_once):
    topic = broker.create_topic()
    layout = quote(
        '{"r":"{{ if eq .Reason \\"Bad\\" }}{{ fail \\"bad\\" }}{{ end }}{{ .Reason }}"}'
    )
    uri = broker.uri(topic) + f"&layout={layout}" + ("&exactly_once=true" if exactly_once else "")
    writer = sink(uri, cluster="prod")
    events = make_events(3)
    events[1].reason = "Bad"
    writer.open()
    try:
        [refused] = writer.write(events)
    finally:
        writer.close()
    assert refused.index == 1 and "the layout failed" in refused.reason
    reader = broker.reader(topic)
    records = reader.wait(2)
    reader.close()
    assert [r.key for r in records] == [events[0].uid.encode(), events[2].uid.encode()]
    assert [json.loads(r.value) for r in records] == [{"r": "BackOff"}, {"r": "BackOff"}]


def test_the_schema_file_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    # and it refuses what it must: a count of 0, a time without microseconds, a field it lacks
    event = make_events(1)[0]
    event.labels, event.annotations = {"app": "web"}, {"example.com/team": "payments"}
    document = event.document()
    VALIDATOR.validate(document)
    for broken in (
        lambda d: d["kubernetes"]["event"].update(count=0),
        lambda d: d.update({"@timestamp": "2026-11-20T10:00:00Z"}),
        lambda d: d["kubernetes"]["event"].update(extra="x"),
    ):
        bad = copy.deepcopy(document)
        broken(bad)
        assert not VALIDATOR.is_valid(bad)


def test_an_unreachable_broker_is_transient_with_one_line(tmp_path: Path):
    from shipper.sinks.base import TransientError

    writer = sink("kafka:?brokers=127.0.0.1:1&timeout=2s")
    started = time.monotonic()
    with pytest.raises(TransientError) as failed:
        writer.open()
    assert time.monotonic() - started < 15
    message = str(failed.value)
    assert message.startswith("brokers 127.0.0.1:1: ") and "\n" not in message
    assert "KafkaTimeoutError" in message or "NoBrokersAvailable" in message, message

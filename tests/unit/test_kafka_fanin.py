"""Fan-in without servers: the document read back into the Event it was, poison messages, the
kafka source's URI, and its offsets moving only past what every sink acknowledged."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import orjson
import pytest
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from shipper.checkpoint import Ledger
from shipper.event import normalize
from shipper.metrics import Metrics
from shipper.settings import Settings
from shipper.source.document import PoisonMessage, event_from_document, event_from_json
from shipper.source.kafka import KafkaOffsets, KafkaSource, KafkaSourceSettings
from shipper.uri import UsageError


def core(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"uid": f"00000000-0000-0000-0000-{i:012d}", "resourceVersion": str(100 + i),
                     "name": f"web.{i}", "namespace": "shop",
                     "creationTimestamp": "2026-11-20T09:59:59Z"},
        "involvedObject": {"kind": "Pod", "name": f"web-{i}", "namespace": "shop",
                           "uid": "p-uid", "apiVersion": "v1", "fieldPath": "spec.containers{web}"},
        "reason": "BackOff", "type": "Warning", "count": i + 1, "message": f"m {i} 🔥",
        "firstTimestamp": "2026-11-20T10:00:00Z", "lastTimestamp": "2026-11-20T10:00:05Z",
        "source": {"component": "kubelet", "host": "node-a"}, **extra,
    }  # fmt: skip


EVENTS_V1 = {
    "apiVersion": "events.k8s.io/v1", "kind": "Event",
    "metadata": {"uid": "u-v1", "resourceVersion": "7", "name": "d.1", "namespace": "shop"},
    "eventTime": "2026-11-20T10:00:00.123456Z", "reportingController": "example.com/scaler",
    "reportingInstance": "scaler-0", "action": "Scale", "reason": "ScalingReplicaSet",
    "note": "scaled", "type": "Normal",
    "regarding": {"kind": "Deployment", "name": "web", "namespace": "shop", "apiVersion": "apps/v1"},
}  # fmt: skip


@pytest.mark.parametrize("obj", [core(0), core(3), EVENTS_V1, core(5, type="Custom", count=None)])
def test_the_document_reads_back_into_the_event_it_was(obj):
    event = normalize(obj, "ADDED", "east")
    event.labels, event.annotations = {"app": "web"}, {"example.com/team": "pay"}
    event.owner = {"kind": "Deployment", "name": "web", "api_version": "apps/v1"}
    sent = event.document_json()
    back = event_from_json(sent)
    assert back.document() == orjson.loads(sent)
    assert back.document_json() == sent  # byte for byte what the kafka sink wrote
    assert (back.uid, back.resource_version, back.count, back.cluster) == (
        event.uid, event.resource_version, event.count, "east",
    )  # fmt: skip
    assert back.key == event.key and back.level == event.level


def test_a_document_without_a_cluster_name_stays_without_one():
    event = normalize(core(1), "ADDED")
    back = event_from_json(event.document_json())
    assert back.cluster == "" and "cluster" not in back.document()["orchestrator"]


@pytest.mark.parametrize(
    "value, reason",
    [
        (b"", "an empty message"),
        (b"\xff\x00", "not JSON"),
        (b"[1, 2]", "JSON list, not an object"),
        (json.dumps({"EventValue": "{}", "EventTimestamp": "x"}).encode(), "not a kube-event-shipper document"),
        (b'{"event": {"kind": "event", "dataset": "kubernetes.event"}, "kubernetes": {"event": {}}}', "lacks uid or resource_version"),
    ],
)  # fmt: skip
def test_poison_messages_say_why(value, reason):
    with pytest.raises(PoisonMessage, match=reason):
        event_from_json(value)


def test_a_document_with_a_field_of_the_wrong_type_is_poison():
    document = normalize(core(2), "ADDED").document()
    for path, bad in (("count", 0), ("count", "3"), ("reason", 5)):
        broken = json.loads(json.dumps(document))
        broken["kubernetes"]["event"][path] = bad
        with pytest.raises(PoisonMessage):
            event_from_document(broken)


def test_the_source_uri_takes_the_kafka_sinks_sasl_and_tls(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cr3t\n")
    settings = KafkaSourceSettings.from_uri(
        f"kafka:?brokers=k0:9093,k1&topic=events&group=agg&user=u&password_file={secret}"
        "&mechanism=SCRAM-SHA-512&tls=true"
    )
    assert settings.topics == ("events",) and settings.group == "agg"
    assert settings.brokers == ("k0:9093", "k1:9092")
    client = settings.client
    assert (client["security_protocol"], client["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (client["sasl_plain_username"], client["sasl_plain_password"]) == ("u", "s3cr3t")
    assert "s3cr3t" not in settings.describe()
    default = KafkaSourceSettings.from_uri("kafka:?brokers=k0&topic=a,b")
    assert default.topics == ("a", "b") and default.group == "kube-event-shipper-aggregator"
    assert (default.offset_reset, default.client["security_protocol"]) == ("earliest", "PLAINTEXT")


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("kafka:?brokers=k0", "--source kafka: parameter topic: give the topic"),
        ("kafka:?topic=e", "--source kafka: no brokers given"),
        ("kafka:?brokers=k0&topic=e&user=u", "--source kafka: give user and password together"),
        ("kafka:?brokers=k0&topic=e&offset_reset=middle", "expected one of earliest, latest"),
        ("kafka:?brokers=k0&topic=e/x", "parameter topic='e/x': not a topic name"),
    ],
)
def test_bad_source_uris_are_one_line(uri, expected):
    with pytest.raises(UsageError) as failed:
        KafkaSourceSettings.from_uri(uri)
    assert expected in str(failed.value) and "\n" not in str(failed.value)


def test_leader_election_and_enrichment_are_refused_with_the_kafka_source():
    with pytest.raises(UsageError, match="consumer group"):
        KafkaSourceSettings.from_uri("kafka:?brokers=k0&topic=e", Settings(leader_elect=True))
    enriching = Settings()
    enriching.enrich = replace(enriching.enrich, enabled=True)
    with pytest.raises(UsageError, match="enrich in the clusters"):
        KafkaSourceSettings.from_uri("kafka:?brokers=k0&topic=e", enriching)


class Holding:
    """A dispatcher stand-in that keeps each event's ticket, as a sink worker would while the
    write is under way: the test decides when a sink acknowledged it."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger, self.tickets = ledger, []

    def page(self, stream, events):
        for event in events:
            if not self.ledger.handled(event.uid, event.resource_version):
                self.tickets.append(
                    self.ledger.begin(stream, event.uid, event.resource_version, None, 1)
                )
        return len(events)


def record(offset: int, value: bytes, partition: int = 0) -> ConsumerRecord:
    return ConsumerRecord(
        "events", partition, None, offset, 0, 0, b"k", value, [], None, len(value), -1, -1
    )


def test_offsets_move_only_past_acknowledged_events_and_poison_is_dead_lettered(tmp_path):
    ledger = Ledger(KafkaOffsets())  # type: ignore[arg-type]
    holding = Holding(ledger)
    settings = KafkaSourceSettings.from_uri("kafka:?brokers=k0&topic=events")
    source = KafkaSource(settings, ledger, holding, Metrics(), str(tmp_path))
    docs = [normalize(core(i), "ADDED", "east").document_json() for i in range(3)]
    source._ship(TopicPartition("events", 0), [
        record(10, docs[0]), record(11, b'{"EventValue": "x"}'), record(12, docs[1]),
    ])  # fmt: skip
    assert ledger.position("events/0") is None  # nothing acknowledged yet
    holding.tickets[1].done()
    assert ledger.position("events/0") is None  # the first is still on its way
    holding.tickets[0].done()
    assert ledger.position("events/0") == "13"  # past the poison message too
    source._ship(TopicPartition("events", 0), [record(13, docs[1]), record(14, docs[2])])
    assert len(holding.tickets) == 3  # the repeated version was skipped, not shipped again
    ledger.flush()
    assert source.store.take() == {"events/0": 13}
    holding.tickets[2].done()
    ledger.flush()
    assert source.store.take() == {"events/0": 15}
    [letter] = (tmp_path / "dead-letters" / "kafka-source.jsonl").read_text().splitlines()
    letter = json.loads(letter)
    assert (letter["topic"], letter["partition"], letter["offset"]) == ("events", 0, 11)
    assert "not a kube-event-shipper document" in letter["reason"]
    assert letter["value"] == '{"EventValue": "x"}'


def test_a_revoked_partition_commits_only_what_was_acknowledged(tmp_path):
    ledger = Ledger(KafkaOffsets())  # type: ignore[arg-type]
    holding = Holding(ledger)
    settings = KafkaSourceSettings.from_uri("kafka:?brokers=k0&topic=events")
    source = KafkaSource(settings, ledger, holding, Metrics(), str(tmp_path))
    tp, other = TopicPartition("events", 0), TopicPartition("events", 1)
    source._assigned({tp, other})
    source._committed[tp] = 10  # what the consumer's thread found the group had committed
    docs = [normalize(core(i), "ADDED", "east").document_json() for i in range(2)]
    source._ship(tp, [record(10, docs[0]), record(11, docs[1])])
    assert source._unacknowledged({tp})  # the sinks have not written them yet
    assert source._acknowledged({tp}) == {}
    holding.tickets[0].done()
    assert source._unacknowledged({tp})
    assert source._acknowledged({tp}) == {}  # a polled batch's offsets move when all of it is
    holding.tickets[1].done()
    assert not source._unacknowledged({tp})
    assert {t: m.offset for t, m in source._acknowledged({tp}).items()} == {tp: 12}
    source._forget({tp})
    assert tp not in source._committed and other in source._committed

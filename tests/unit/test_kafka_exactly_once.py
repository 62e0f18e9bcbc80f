"""exactly_once=true without a broker: the options, the transactional.id, and how the record
of what was shipped is read back (only our own keys, tombstones, entries past retention)."""

from __future__ import annotations

import textwrap
import time

import orjson
import pytest

from shipper.sinks.base import SinkContext
from shipper.sinks.factory import build_sink, build_sinks
from shipper.sinks.kafka import KafkaSink
from shipper.sinks.kafka_txn import ExactlyOnce
from shipper.uri import UsageError


def sink(uri: str, cluster: str = "east") -> KafkaSink:
    built, _ = build_sink(uri, SinkContext(cluster=cluster, state_dir=None))
    assert isinstance(built, KafkaSink)
    return built


def test_the_transactional_id_is_stable_per_cluster_and_sink_name():
    plain = sink("kafka:?brokers=k0&eventstopic=ev")
    assert plain._txn is None
    txn = sink("kafka:?brokers=k0&eventstopic=ev&exactly_once=true")._txn
    assert isinstance(txn, ExactlyOnce)
    assert (txn.txn_id, txn.state_topic, txn.retention) == (
        "kube-event-shipper.east.kafka", "ev.kes-shipped", 7200.0,
    )  # fmt: skip
    named = sink("kafka:?brokers=k0&exactly_once=true&name=audit&state_retention=3h")._txn
    assert (named.txn_id, named.retention) == ("kube-event-shipper.east.audit", 10800.0)
    own = sink(
        "kafka:?brokers=k0&exactly_once=true&transactional_id=t1&state_topic=st", cluster=""
    )._txn
    assert (own.txn_id, own.state_topic) == ("t1", "st")


def test_without_a_cluster_name_two_clusters_would_fence_each_other_so_it_is_refused():
    with pytest.raises(UsageError, match="exactly_once=true needs a cluster name"):
        sink("kafka:?brokers=k0&exactly_once=true", cluster="")
    with pytest.raises(UsageError, match="state_topic must differ"):
        sink("kafka:?brokers=k0&eventstopic=a&exactly_once=true&state_topic=a")


def test_the_config_file_key_is_exactly_once(tmp_path):
    from shipper.config import load

    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent("""\
        clusterName: west
        route: {match: [{receiver: kafka}]}
        receivers:
          - name: kafka
            kafka: {brokers: [k0:9092], topic: kube-events, exactlyOnce: true}
    """))  # fmt: skip
    [(built, _)] = build_sinks([], SinkContext("west", None), load(str(path)))
    assert isinstance(built, KafkaSink) and built._txn is not None
    assert built._txn.txn_id == "kube-event-shipper.west.kafka"


def test_the_record_reads_only_its_own_keys_and_forgets_what_is_past_retention():
    txn = sink("kafka:?brokers=k0&exactly_once=true&state_retention=1h")._txn
    now = time.time()
    cutoff = now - txn.retention

    def value(count: int, at: float) -> bytes:
        return orjson.dumps({"count": count, "rv": str(count), "at": at})

    mine = txn._prefix.encode()
    txn._learn(mine + b"u1", value(3, now), cutoff)
    txn._learn(mine + b"u1", value(2, now), cutoff)  # an older version never lowers it
    txn._learn(b"kube-event-shipper.west.kafka|u2", value(9, now), cutoff)  # another cluster's
    txn._learn(mine + b"u3", value(1, now - 4000), cutoff)  # shipped before the retention
    txn._learn(mine + b"u4", value(1, now), cutoff)
    txn._learn(mine + b"u4", None, cutoff)  # a tombstone
    assert {uid: count for uid, (count, _) in txn.shipped.items()} == {"u1": 3}
    assert txn._tombstones == {"u3"}  # compaction will drop it from the topic too

    txn.shipped["u5"] = (1, now - 3700)
    txn._pruned_at = 0.0
    txn._prune()
    assert set(txn.shipped) == {"u1"} and txn._tombstones == {"u3", "u5"}


def test_brokers_that_refuse_transactions_are_one_line_naming_why():
    from kafka import errors

    txn = sink("kafka:?brokers=k0:9092&eventstopic=ev&exactly_once=true&timeout=5s")._txn
    denied = txn._refusal(errors.TransactionalIdAuthorizationFailedError("denied"), [])
    assert denied.startswith("brokers k0:9092: not authorized to use transactional.id")
    assert "'kube-event-shipper.east.kafka'" in denied and "WRITE and DESCRIBE" in denied
    old = txn._refusal(errors.UnsupportedVersionError("InitProducerId"), [])
    assert "do not support transactions" in old and "Kafka 0.11 or later" in old
    silent = txn._refusal(errors.KafkaTimeoutError("Timeout expired"), [])
    assert "no transaction coordinator answered" in silent and "within 5 s" in silent
    assert all("\n" not in line for line in (denied, old, silent))

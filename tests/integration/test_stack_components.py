"""The test stack's Kafka, InfluxDB and MariaDB: one real round trip each, with the real clients."""

from __future__ import annotations

import json
import logging
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.common import ROOT, wait_for


def kafka_round_trip(topic: str, messages: list[bytes], **client: object) -> list[tuple]:
    from kafka import KafkaConsumer, KafkaProducer

    producer = KafkaProducer(acks="all", **client)
    try:
        for i, value in enumerate(messages):
            producer.send(topic, key=f"k{i}".encode(), value=value).get(timeout=60)
    finally:
        producer.close()
    consumer = KafkaConsumer(
        topic,
        group_id=f"g-{uuid.uuid4().hex[:10]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=30_000,
        **client,
    )
    got = []
    try:
        for record in consumer:
            got.append((record.key, record.value, record.offset))
            if len(got) == len(messages):
                break
    finally:
        consumer.close()
    return got


@pytest.mark.stack("kafka")
def test_kafka_produce_consume(kafka_bootstrap: str) -> None:
    topic = f"t-{uuid.uuid4().hex[:10]}"  # auto-created on first produce
    messages = [json.dumps({"reason": r, "count": i}).encode() for i, r in
                enumerate(["Scheduled", "Pulled", "BackOff"])]  # fmt: skip
    got = kafka_round_trip(topic, messages, bootstrap_servers=kafka_bootstrap)
    assert got == [(b"k0", messages[0], 0), (b"k1", messages[1], 1), (b"k2", messages[2], 2)]


@pytest.mark.stack("kafka")
def test_kafka_sasl_scram(kafka_env: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    sasl = {
        "bootstrap_servers": kafka_env["KAFKA_SASL_BOOTSTRAP"],
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": kafka_env["KAFKA_SASL_MECHANISM"],
        "sasl_plain_username": kafka_env["KAFKA_SASL_USERNAME"],
    }
    assert sasl["sasl_mechanism"] == "SCRAM-SHA-512"
    topic = f"t-{uuid.uuid4().hex[:10]}"
    got = kafka_round_trip(
        topic, [b"scram"], sasl_plain_password=kafka_env["KAFKA_SASL_PASSWORD"], **sasl
    )
    assert got == [(b"k0", b"scram", 0)]
    # A wrong password: the client cannot bootstrap, and the broker's own log says why. (The
    # client sees either SaslAuthenticationFailed or, at times, only the connection the broker
    # closed: kafka-python 3 races the error reply against the close. The broker's verdict is
    # the same every time.)
    refused = "invalid credentials with SASL mechanism SCRAM-SHA-512"
    broker_log = ROOT / ".stack" / "kafka" / "kafka.log"
    before = broker_log.read_text(errors="replace").count(refused)
    caplog.set_level(logging.WARNING, logger="kafka")
    with pytest.raises(KafkaError):
        KafkaProducer(sasl_plain_password="wrong", bootstrap_timeout_ms=3_000, **sasl).close()
    wait_for(
        lambda: broker_log.read_text(errors="replace").count(refused) > before,
        10,
        "the broker to log the refused login",
    )


def influxql(url: str, q: str, db: str | None = None) -> dict:
    params = {"q": q} | ({"db": db} if db else {})
    req = urllib.request.Request(f"{url}/query", data=urllib.parse.urlencode(params).encode())
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


@pytest.mark.stack("influxdb")
def test_influxdb_write_and_query(influxdb_url: str) -> None:
    from influxdb_client import InfluxDBClient, Point
    from influxdb_client.client.write_api import SYNCHRONOUS

    db = f"t_{uuid.uuid4().hex[:10]}"
    influxql(influxdb_url, f'CREATE DATABASE "{db}"')
    start = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)
    points = [
        Point("kube_event")
        .tag("reason", reason)
        .field("count", i + 1)
        .time(start + timedelta(seconds=i))
        for i, reason in enumerate(["Scheduled", "Pulled", "BackOff"])
    ]
    # 1.8's v2-compatible API: bucket "database/retention-policy", any token (auth is off).
    with InfluxDBClient(url=influxdb_url, token="", org="-") as client:
        client.write_api(write_options=SYNCHRONOUS).write(bucket=f"{db}/autogen", record=points)
        tables = client.query_api().query(
            f'from(bucket: "{db}/autogen") |> range(start: 2026-11-20T00:00:00Z) '
            '|> filter(fn: (r) => r._measurement == "kube_event" and r._field == "count")'
        )
    flux = sorted(
        (r.get_time(), r.values["reason"], r.get_value()) for t in tables for r in t.records
    )
    assert flux == [
        (start, "Scheduled", 1),
        (start + timedelta(seconds=1), "Pulled", 2),
        (start + timedelta(seconds=2), "BackOff", 3),
    ]
    series = influxql(influxdb_url, 'SELECT "count", "reason" FROM kube_event', db)
    assert series["results"][0]["series"][0]["values"] == [
        ["2026-11-20T10:00:00Z", 1, "Scheduled"],
        ["2026-11-20T10:00:01Z", 2, "Pulled"],
        ["2026-11-20T10:00:02Z", 3, "BackOff"],
    ]
    influxql(influxdb_url, f'DROP DATABASE "{db}"')


@pytest.mark.stack("mysql")
def test_mysql_create_insert_select(mysql_env: dict[str, str]) -> None:
    import pymysql

    url = urllib.parse.urlsplit(mysql_env["MYSQL_URL"])
    assert (url.hostname, url.port, url.username, url.password, url.path) == (
        mysql_env["MYSQL_HOST"],
        int(mysql_env["MYSQL_PORT"]),
        mysql_env["MYSQL_USER"],
        mysql_env["MYSQL_PASSWORD"],
        f"/{mysql_env['MYSQL_DATABASE']}",
    )
    conn = pymysql.connect(
        host=url.hostname,
        port=url.port,
        user=url.username,
        password=url.password,
        database=url.path.lstrip("/"),
        charset="utf8mb4",
        autocommit=True,
    )
    table = f"t_{uuid.uuid4().hex[:10]}"
    rows = [(1, "Scheduled", "assigned shop/web-1 to node-1"), (2, "Pulled", "image \u2714 pulled"),
            (3, "BackOff", "Back-off restarting \U0001f525")]  # fmt: skip
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"CREATE TABLE {table} (id INT PRIMARY KEY, reason VARCHAR(64) NOT NULL, "
                "message TEXT NOT NULL)"
            )
            cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s)", rows)
            cur.execute(f"SELECT id, reason, message FROM {table} ORDER BY id")
            assert cur.fetchall() == tuple(rows)
            cur.execute(f"DROP TABLE {table}")
    finally:
        conn.close()
    # root exists only behind the unix socket
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(
            host=url.hostname, port=url.port, user="root", password="", connect_timeout=5
        )

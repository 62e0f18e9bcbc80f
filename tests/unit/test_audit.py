"""The audit source in-process: the record's document, the spool, the webhook over real TLS
(certificates made by openssl), and the daemon shipping the spool once across restarts.

The real kube-apiserver posting to it is tests/integration/test_audit_source.py."""

from __future__ import annotations

import http.client
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper.app import Shipper
from shipper.audit.record import NotAnAuditEvent, from_record
from shipper.audit.spool import Position, Spool, SpoolFull
from shipper.audit.webhook import AuditWebhook, TokenFile
from shipper.checkpoint import Ledger, MemoryStore
from shipper.metrics import Metrics
from shipper.settings import Settings
from tests.support.common import free_port, wait_for
from tests.support.proxy import Pki, make_pki


def record(audit_id: str, stage: str = "ResponseComplete", **extra: Any) -> dict[str, Any]:
    base = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": audit_id,
        "stage": stage,
        "requestURI": "/api/v1/namespaces/prod/secrets/db",
        "verb": "get",
        "user": {"username": "alice", "uid": "u-1", "groups": ["dev", "system:authenticated"]},
        "sourceIPs": ["10.1.2.3", "10.0.0.1"],
        "userAgent": "kubectl/v1.31.0",
        "objectRef": {"resource": "secrets", "namespace": "prod", "name": "db", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403},
        "requestReceivedTimestamp": "2026-12-02T05:00:00.123456Z",
        "stageTimestamp": "2026-12-02T05:00:00.2Z",
        "annotations": {
            "authorization.k8s.io/decision": "forbid",
            "authorization.k8s.io/reason": "no RBAC policy matched",
        },
    }
    base.update(extra)
    return base


def event_list(*items: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": list(items)}
    )


# -- the record


def test_a_denied_request_becomes_a_flattened_warning_document() -> None:
    event = from_record(record("a-1"), cluster="c1", now="2026-12-02T05:00:01.000000Z")
    assert (event.uid, event.resource_version, event.kind) == ("a-1", "ResponseComplete", "audit")
    assert event.type == "Warning" and event.reason == "get"
    assert event.message == "alice get secrets prod/db: 403 Forbidden"
    doc = event.document()
    assert doc["event"]["dataset"] == "kubernetes.audit"
    assert doc["event"]["outcome"] == "failure" and doc["event"]["action"] == "get"
    assert doc["user"] == {"name": "alice", "id": "u-1"}
    assert doc["source"] == {"ip": "10.1.2.3"}
    assert doc["http"]["response"]["status_code"] == 403
    audit = doc["kubernetes"]["audit"]
    assert audit["user"]["groups"] == ["dev", "system:authenticated"]
    assert audit["object_ref"] == {
        "resource": "secrets", "namespace": "prod", "name": "db", "api_version": "v1"
    }  # fmt: skip
    assert audit["authorization"] == {"decision": "forbid", "reason": "no RBAC policy matched"}
    assert audit["annotations"]["authorization_k8s_io/decision"] == "forbid"
    assert audit["stage_timestamp"] == "2026-12-02T05:00:00.200000Z"
    assert doc["@timestamp"] == "2026-12-02T05:00:00.200000Z"
    assert doc["orchestrator"]["cluster"] == {"name": "c1"}


def test_bodies_are_kept_as_json_text_and_an_allowed_request_is_normal() -> None:
    body = {"kind": "RoleBinding", "metadata": {"name": "x"}}
    event = from_record(
        record(
            "a-2",
            verb="create",
            level="RequestResponse",
            objectRef={"resource": "rolebindings", "namespace": "prod", "apiGroup":
                       "rbac.authorization.k8s.io", "apiVersion": "v1"},
            requestObject=body,
            responseStatus={"metadata": {}, "code": 201},
            annotations={"authorization.k8s.io/decision": "allow"},
        )
    )  # fmt: skip
    doc = event.document()
    assert event.type == "Normal" and doc["event"]["outcome"] == "success"
    assert orjson.loads(doc["kubernetes"]["audit"]["request_object"]) == body
    assert event.object_api_version == "rbac.authorization.k8s.io/v1"
    assert event.message == "alice create rolebindings prod: 201"


def test_document_json_is_the_document_with_the_sinks_cluster() -> None:
    event = from_record(record("a-3"))
    expected = event.document()
    expected["orchestrator"]["cluster"] = {"name": "east"}
    assert orjson.loads(event.document_json("east")) == expected
    assert "cluster" not in orjson.loads(event.document_json())["orchestrator"]


@pytest.mark.parametrize(
    "raw",
    [
        record("a-4"),
        record(
            "a-5",
            level="RequestResponse",
            requestObject={"subjects": [{"name": "alice"}]},
            responseObject={"kind": "RoleBinding"},
            impersonatedUser={"username": "bob", "groups": ["ops"]},
            annotations={
                "authorization.k8s.io/decision": "allow",
                "authorization.k8s.io/reason": "",
                "pod-security.kubernetes.io/enforce-policy": "restricted:latest",
            },
        ),
    ],
)
def test_an_aggregator_reads_an_audit_document_back_into_the_same_document(raw: dict) -> None:
    """What a cluster's kafka sink wrote, read by --source=kafka: (shipper/source/document.py)."""
    from shipper.source.document import event_from_json

    written = from_record(raw, cluster="east")
    read = event_from_json(written.document_json())
    assert read.kind == "audit" and read.cluster == "east"
    assert (read.uid, read.resource_version) == (written.uid, written.resource_version)
    before, after = written.document(), read.document()
    before["event"].pop("created")
    after["event"].pop("created")
    assert after == before


@pytest.mark.parametrize("broken", [{"stage": "ResponseComplete", "verb": "get"}, {"auditID": "x"}])
def test_an_item_without_audit_id_stage_or_verb_is_not_an_audit_event(broken: dict) -> None:
    with pytest.raises(NotAnAuditEvent):
        from_record(broken)


# -- the spool


def read_all(spool: Spool, start: Position | None = None) -> list[tuple[int, int, bytes]]:
    stop = threading.Event()
    found: list[tuple[int, int, bytes]] = []

    def idle() -> None:
        stop.set()  # caught up

    for rec in spool.read(start, stop, idle=idle):
        found.append((rec.segment, rec.offset, rec.payload))
    return found


def test_the_spool_reads_back_every_batch_in_order_across_segments(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), max_bytes=8 * 1024 * 1024, segment_bytes=64 * 1024)
    payloads = [os.urandom(20_000) for _ in range(10)]
    records = [spool.append(p) for p in payloads]
    assert len({r.segment for r in records}) > 1  # it rolled over to new segments
    assert [p for _, _, p in read_all(spool)] == payloads
    # resuming at the fourth record's position reads from there
    fourth = records[3]
    assert [p for _, _, p in read_all(spool, Position(fourth.segment, fourth.offset))] == (
        payloads[3:]
    )
    spool.close()


def test_a_batch_cut_short_by_a_crash_is_cut_off_at_the_next_start(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), max_bytes=8 * 1024 * 1024)
    whole = spool.append(b"first batch")
    spool.close()
    path = tmp_path / f"{whole.segment:012d}.spool"
    with open(path, "ab") as handle:  # what a kill in the middle of a write leaves
        handle.write(b"\x00\x00\x01\x00\x12\x34")
    again = Spool(str(tmp_path), max_bytes=8 * 1024 * 1024)
    assert path.stat().st_size == whole.end
    again.append(b"second batch")
    assert [p for _, _, p in read_all(again)] == [b"first batch", b"second batch"]
    again.close()


def test_a_damaged_record_skips_the_rest_of_its_segment_not_every_later_one(
    tmp_path: Path,
) -> None:
    spool = Spool(str(tmp_path), max_bytes=8 * 1024 * 1024)
    first = spool.append(b"first")
    spool.append(b"second")  # damaged below, and with it the rest of the segment
    spool.close()
    path = tmp_path / f"{first.segment:012d}.spool"
    data = bytearray(path.read_bytes())
    data[first.end + 9] ^= 0xFF  # a byte of the second payload: its CRC no longer matches
    path.write_bytes(bytes(data))
    again = Spool(str(tmp_path), max_bytes=8 * 1024 * 1024)
    # a start keeps only whole records: the damaged one is now the segment's cut-off tail
    assert path.stat().st_size == first.end
    data = bytearray(path.read_bytes())
    data[9] ^= 0xFF  # damage the first record too, after the start this time
    path.write_bytes(bytes(data))
    again.append(b"third")
    assert [p for _, _, p in read_all(again)] == [b"third"]
    assert again.damaged == 1
    again.close()


def test_a_full_spool_refuses_until_shipped_segments_are_released(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), max_bytes=1024 * 1024)  # segments of 128 KiB
    written = []
    with pytest.raises(SpoolFull):
        for _ in range(20):
            written.append(spool.append(os.urandom(100_000)))
    assert spool.size() <= 1024 * 1024
    # everything before the last record was shipped: its segments go, room comes back
    last = written[-1]
    assert spool.release(Position(last.segment, last.offset)) > 0
    assert spool.size() < 1024 * 1024
    assert not any(
        (tmp_path / f"{r.segment:012d}.spool").exists() for r in written if r.segment < last.segment
    )
    spool.append(os.urandom(100_000))
    spool.close()


def test_positional_tickets_move_the_position_in_order_and_remember_no_uid() -> None:
    ledger = Ledger(MemoryStore())
    first = ledger.begin_positional("audit", "a", "ResponseComplete", "1:0:1", 1)
    second = ledger.begin_positional("audit", "b", "ResponseComplete", "1:90:0", 1)
    second.done()
    assert ledger.position("audit") is None  # the first is not written yet
    first.done()
    assert ledger.position("audit") == "1:90:0"
    assert ledger.tracked_uids() == 0 and ledger.inflight() == 0


# -- the webhook over TLS


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def client_context(pki: Pki, *, certificate: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if certificate:
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return context


def post(
    port: int, body: bytes, context: ssl.SSLContext, token: str | None = None
) -> tuple[int, dict[str, str], dict[str, Any]]:
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        connection.request("POST", "/", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.headers), orjson.loads(response.read())
    finally:
        connection.close()


def server_context(pki: Pki, *, require: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    context.load_verify_locations(str(pki.ca))
    context.verify_mode = ssl.CERT_REQUIRED if require else ssl.CERT_OPTIONAL
    return context


@pytest.fixture
def webhook(tmp_path: Path, pki: Pki) -> Iterator[AuditWebhook]:
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    spool = Spool(str(tmp_path / "spool"), max_bytes=1024 * 1024)
    hook = AuditWebhook(
        ("127.0.0.1", 0),
        server_context(pki, require=False),
        spool,
        token=TokenFile(str(token)),
        client_certificates=True,
        metrics=Metrics(),
    )
    hook.start()
    yield hook
    hook.stop()
    spool.close()


def test_a_client_certificate_or_the_token_is_let_in_and_nothing_else(
    webhook: AuditWebhook, pki: Pki
) -> None:
    batch = event_list(record("a-1"))
    with_cert = client_context(pki, certificate=True)
    without = client_context(pki, certificate=False)
    assert post(webhook.port, batch, with_cert)[0] == 200
    assert post(webhook.port, batch, without, token="s3cret-token")[0] == 200
    status, _, answer = post(webhook.port, batch, without, token="wrong")
    assert status == 401 and answer["reason"] == "Unauthorized"
    assert post(webhook.port, batch, without)[0] == 401
    assert len(read_all(webhook.spool)) == 2  # only what was let in
    assert batches(webhook, "accepted") == 2 and batches(webhook, "unauthorized") == 2


def batches(webhook: AuditWebhook, outcome: str) -> float:
    return webhook.metrics.audit_batches.labels(outcome=outcome)._value.get()


def test_no_client_certificate_is_refused_at_the_handshake_and_counted(
    tmp_path: Path, pki: Pki
) -> None:
    spool = Spool(str(tmp_path), max_bytes=1024 * 1024)
    hook = AuditWebhook(
        ("127.0.0.1", 0), server_context(pki, require=True), spool,
        client_certificates=True, metrics=Metrics(),
    )  # fmt: skip
    hook.start()
    try:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            post(hook.port, event_list(record("a")), client_context(pki, certificate=False))
        wait_for(lambda: batches(hook, "unauthorized") == 1, 10, "the refusal counted")
        assert (
            post(hook.port, event_list(record("a")), client_context(pki, certificate=True))[0]
            == 200
        )
    finally:
        hook.stop()
        spool.close()


def test_a_full_spool_asks_the_api_server_to_retry_later(webhook: AuditWebhook, pki: Pki) -> None:
    context = client_context(pki, certificate=True)
    big = event_list(*(record(f"a-{i}", userAgent="x" * 2000) for i in range(100)))
    statuses = [post(webhook.port, big, context) for _ in range(6)]
    assert statuses[0][0] == 200
    refused = [s for s in statuses if s[0] != 200]
    assert refused, "a 1 MiB spool took 6 batches of 200 KiB"
    status, headers, answer = refused[0]
    # what client-go retries: 429, with Retry-After and the Status's retryAfterSeconds
    assert status == 429 and headers["Retry-After"] == "5"
    assert answer["reason"] == "TooManyRequests" and answer["details"]["retryAfterSeconds"] == 5


@pytest.mark.parametrize(
    "body", [b"not json", b'{"kind": "Status"}', b'{"kind": "Pod", "items": []}']
)
def test_what_is_not_an_event_list_is_refused_and_never_spooled(
    webhook: AuditWebhook, pki: Pki, body: bytes
) -> None:
    status, _, _ = post(webhook.port, body, client_context(pki, certificate=True))
    assert status == 400
    assert read_all(webhook.spool) == []
    assert batches(webhook, "rejected") == 1


# -- the daemon


class Daemon:
    def __init__(self, tmp_path: Path, pki: Pki, port: int) -> None:
        self.out = tmp_path / "audit.jsonl"
        self.settings = Settings(
            source="",
            audit_source=(
                f"audit:?listen=127.0.0.1:{port}&cert={pki.server_cert}&key={pki.server_key}"
                f"&clientCA={pki.ca}"
            ),
            sinks=[f"file:{self.out}?flush_interval=0.05"],
            state_dir=str(tmp_path / "state"),
            listen=None,
            checkpoint_interval=0.1,
        )
        self.shipper = Shipper(self.settings)
        self.thread = threading.Thread(target=self.shipper.run, daemon=True)

    def __enter__(self) -> Daemon:
        self.thread.start()
        wait_for(self.shipper.ready, what="the audit webhook")
        return self

    def __exit__(self, *exc: object) -> None:
        self.shipper.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()

    def lines(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [orjson.loads(line) for line in self.out.read_bytes().splitlines()]


def test_the_daemon_ships_every_audit_event_once_across_restarts(tmp_path: Path, pki: Pki) -> None:
    port = free_port()
    context = client_context(pki, certificate=True)
    ids = iter(range(1000))

    def batch(n: int) -> bytes:
        return event_list(*(record(f"id-{next(ids)}") for _ in range(n)))

    with Daemon(tmp_path, pki, port) as daemon:
        for size in (3, 1, 5):
            assert post(port, batch(size), context)[0] == 200
        wait_for(lambda: len(daemon.lines()) == 9, what="9 audit documents")
    # batches taken while nothing ships (the spool as the webhook left it) ship at the start
    spool = Spool(str(tmp_path / "state" / "audit-spool"), max_bytes=1024**3)
    spool.append(batch(2))
    spool.close()
    with Daemon(tmp_path, pki, port) as daemon:
        assert post(port, batch(4), context)[0] == 200
        wait_for(lambda: len(daemon.lines()) == 15, what="15 audit documents")
        lines = daemon.lines()
    ids_shipped = [line["kubernetes"]["audit"]["audit_id"] for line in lines]
    assert sorted(ids_shipped, key=lambda i: int(i[3:])) == [f"id-{i}" for i in range(15)]
    assert all(line["event"]["dataset"] == "kubernetes.audit" for line in lines)
    # shipped segments are deleted once the position is past them
    segments = list((tmp_path / "state" / "audit-spool").glob("*.spool"))
    assert len(segments) <= 2


def test_bad_audit_source_arguments_are_one_line_and_exit_2(tmp_path: Path, pki: Pki) -> None:
    base = [sys.executable, "-m", "shipper", f"--state-dir={tmp_path}", "--listen=127.0.0.1:0"]
    cases = {
        "parameter cert": ["--source=audit:?listen=127.0.0.1:0&clientCA=/x", "--sink=log:"],
        "give clientCA (client certificates) or tokenFile": [
            f"--source=audit:?cert={pki.server_cert}&key={pki.server_key}", "--sink=log:"
        ],
        "2 event sources given (kubernetes:, kafka:)": [
            "--source=kubernetes:", "--source=kafka:?brokers=127.0.0.1:1&topic=t"
        ],
        "no sink keeps audit documents": [
            f"--source=audit:?cert={pki.server_cert}&key={pki.server_key}&clientCA={pki.ca}",
            "--sink=slack:https://hooks.slack.com/services/T/B/X",
        ],
        "parameter clientCA: no CA certificate": [
            f"--source=audit:?cert={pki.server_cert}&key={pki.server_key}&clientCA={pki.server_key}",
            "--sink=log:",
        ],
    }  # fmt: skip
    for expected, args in cases.items():
        result = subprocess.run([*base, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, (args, result.stderr)
        assert expected in result.stderr, (expected, result.stderr)
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr

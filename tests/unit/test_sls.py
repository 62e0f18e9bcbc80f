"""The sls sink without a server: kube-eventer's URIs read into endpoints and credentials, the
LogGroup it encodes decoded with SLS's published .proto (compiled by protoc, not the sink's
code), the signature recomputed from the documented string to sign, the request limits, ACK's
token file."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import astuple
from datetime import datetime

import pytest

from shipper.event import normalize
from shipper.sinks.base import SinkContext
from shipper.sinks.factory import build_sink
from shipper.sinks.sls import MAX_LOGS_PER_GROUP, SlsSink, encode_log, encode_log_group, sign
from shipper.uri import UsageError
from tests.support.receivers.base import Request
from tests.support.receivers.sls import messages, string_to_sign

ENV_NAMES = (
    "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN",
    "AccessKeyId", "AccessKeySecret", "RegionId", "ALIBABA_CLOUD_REGION_ID",
)  # fmt: skip


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def sink(uri: str, cluster: str = "") -> SlsSink:
    built, _ = build_sink(uri, SinkContext(cluster, None))
    assert isinstance(built, SlsSink)
    return built


KEYS = "&accessKeyId=AK&accessKeySecret=SK"


@pytest.mark.parametrize(
    "uri, base, host",
    [
        ("sls:https://cn-hangzhou.log.aliyuncs.com?project=p-1&logStore=l" + KEYS,
         "https://p-1.cn-hangzhou.log.aliyuncs.com", "p-1.cn-hangzhou.log.aliyuncs.com"),
        ("sls:https://cn-beijing-intranet.log.aliyuncs.com?project=k8s-log&logStore=k8s-event" + KEYS,
         "https://k8s-log.cn-beijing-intranet.log.aliyuncs.com", "k8s-log.cn-beijing-intranet.log.aliyuncs.com"),
        ("sls:cn-shanghai.log.aliyuncs.com?project=abc&logStore=l" + KEYS,
         "https://abc.cn-shanghai.log.aliyuncs.com", "abc.cn-shanghai.log.aliyuncs.com"),
        # kube-eventer's stand-in host: the region's endpoint, intranet by default as there
        ("sls:https://sls.aliyuncs.com?project=abc&logStore=l&regionId=cn-hangzhou" + KEYS,
         "https://abc.cn-hangzhou-intranet.log.aliyuncs.com", "abc.cn-hangzhou-intranet.log.aliyuncs.com"),
        ("sls:https://sls.aliyuncs.com?project=abc&logStore=l&regionId=cn-hangzhou&internal=false" + KEYS,
         "https://abc.cn-hangzhou.log.aliyuncs.com", "abc.cn-hangzhou.log.aliyuncs.com"),
        # an address (a proxy, a test receiver): connected to as is, the project in Host
        ("sls:http://127.0.0.1:8080?project=abc&logStore=l" + KEYS,
         "http://127.0.0.1:8080", "abc.127.0.0.1:8080"),
    ],
)  # fmt: skip
def test_kube_eventer_uris_become_endpoints(uri, base, host):
    built = sink(uri)
    assert (built.base, built.host) == (base, host)
    assert built.path == f"/logstores/{built.logstore}/shards/lb"
    assert "SK" not in built.describe()


def test_the_region_comes_from_kube_eventers_environment(monkeypatch):
    monkeypatch.setenv("RegionId", "cn-shenzhen")
    built = sink("sls:https://sls.aliyuncs.com?project=abc&logStore=l" + KEYS)
    assert built.host == "abc.cn-shenzhen-intranet.log.aliyuncs.com"


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("sls:https://cn-hangzhou.log.aliyuncs.com?logStore=l" + KEYS, "--sink sls: parameter project is missing"),
        ("sls:https://cn-hangzhou.log.aliyuncs.com?project=abc" + KEYS, "--sink sls: parameter logStore is missing"),
        ("sls:https://sls.aliyuncs.com?project=abc&logStore=l" + KEYS, "no endpoint: give the region's"),
        ("sls:ftp://x?project=abc&logStore=l" + KEYS, "is not an endpoint"),
        ("sls:https://cn-hangzhou.log.aliyuncs.com?project=Abc&logStore=l" + KEYS, "parameter project='Abc'"),
        ("sls:https://cn-hangzhou.log.aliyuncs.com?project=abc&logStore=l&label=novalue" + KEYS, "parameter label='novalue': expected KEY,VALUE"),
        ("sls:https://cn-hangzhou.log.aliyuncs.com?project=abc&logStore=l&accessKeyId=AK", "give access_key_id and access_key_secret together"),
        ("sls:https://cn-hangzhou.log.aliyuncs.com?project=abc&logStore=l&token_config=/nonexistent", "no AccessKey: give access_key_id"),
        ("sls:https://cn-hangzhou.log.aliyuncs.com?project=abc&logStore=l&logstor=x" + KEYS, "did you mean 'logstore'"),
    ],
)  # fmt: skip
def test_bad_uris_are_one_line(uri, expected):
    with pytest.raises(UsageError) as caught:
        sink(uri)
    assert expected in str(caught.value) and "\n" not in str(caught.value)
    assert "SK" not in str(caught.value)


def test_credentials_in_kube_eventers_order(monkeypatch, tmp_path):
    uri = (
        "sls:https://cn-hangzhou.log.aliyuncs.com?project=abc&logStore=l&token_config=/nonexistent"
    )
    monkeypatch.setenv("AccessKeyId", "kube-eventer-id")
    monkeypatch.setenv("AccessKeySecret", "kube-eventer-secret")
    assert astuple(sink(uri).credentials()) == ("kube-eventer-id", "kube-eventer-secret", None)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "std-id")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "std-secret")
    monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "sts-token")
    assert astuple(sink(uri).credentials()) == ("std-id", "std-secret", "sts-token")
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    built = sink(f"{uri}&accessKeyId=uri-id&accessKeySecret_file={secret}&securityToken=t2")
    assert astuple(built.credentials()) == ("uri-id", "from-file", "t2")
    monkeypatch.delenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    with pytest.raises(UsageError, match="ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET go together"):  # fmt: skip
        sink(uri)


def _encrypt(plain: str, keyring: bytes) -> str:
    """AES-CBC with a random IV and PKCS#7 padding, as ACK writes its add-on token file."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    data = padder.update(plain.encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(keyring), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(data) + encryptor.finalize()).decode()


def write_token_config(path, key_id: str, secret: str, token: str) -> None:
    keyring = os.urandom(8).hex()  # 16 ASCII characters: an AES-128 key, as ACK's
    path.write_text(json.dumps({
        "access.key.id": _encrypt(key_id, keyring.encode()),
        "access.key.secret": _encrypt(secret, keyring.encode()),
        "security.token": _encrypt(token, keyring.encode()),
        "expiration": "2099-01-01T00:00:00Z",
        "keyring": keyring,
    }))  # fmt: skip


def test_acks_token_file_is_read_and_read_again_when_it_rotates(tmp_path):
    path = tmp_path / "token-config"
    write_token_config(path, "STS.first", "secret-1", "token-1")
    built = sink(
        f"sls:https://cn-hangzhou.log.aliyuncs.com?project=abc&logStore=l&token_config={path}"
    )
    assert astuple(built.credentials()) == ("STS.first", "secret-1", "token-1")
    write_token_config(path, "STS.second", "secret-2", "token-2")
    os.utime(path, (1, 1))  # a different mtime, as a rewrite makes
    assert astuple(built.credentials()) == ("STS.second", "secret-2", "token-2")


def test_a_log_group_decodes_with_the_published_proto():
    pb = messages()
    logs = [
        encode_log(
            1714564800, [("eventId", "{}"), ("level", "Warning"), ("k", "🔥 " * 100)], 123456000
        ),
        encode_log(2**32 - 1, [("empty", "")]),
    ]
    group = pb.LogGroup()
    group.ParseFromString(encode_log_group(logs, "topic-a", "host-1", [("__tag__", "x")]))
    assert (group.Topic, group.Source) == ("topic-a", "host-1")
    assert [(t.Key, t.Value) for t in group.LogTags] == [("__tag__", "x")]
    first, second = group.Logs
    assert (first.Time, first.Time_ns) == (1714564800, 123456000)
    assert [(c.Key, c.Value) for c in first.Contents] == [("eventId", "{}"), ("level", "Warning"), ("k", "🔥 " * 100)]  # fmt: skip
    assert second.Time == 2**32 - 1 and not second.HasField("Time_ns")
    assert [(c.Key, c.Value) for c in second.Contents] == [("empty", "")]


def test_the_signature_is_the_documented_one():
    headers = {
        "Content-Type": "application/x-protobuf",
        "Content-MD5": "49DFDD54B01CBCD2D2AB5E9E5EE6B9B9",
        "Date": "Tue, 23 Aug 2022 12:12:03 GMT",
        "x-log-apiversion": "0.6.0",
        "x-log-signaturemethod": "hmac-sha1",
        "x-log-bodyrawsize": "18",
        "x-acs-security-token": "tok",
        "Host": "p.cn-hangzhou.log.aliyuncs.com",
    }
    import hashlib
    import hmac

    request = Request("POST", "/logstores/l/shards/lb", {}, {k.lower(): v for k, v in headers.items()}, b"", 0.0)  # fmt: skip
    text = string_to_sign(request)
    assert text.splitlines()[:4] == ["POST", headers["Content-MD5"], "application/x-protobuf", headers["Date"]]  # fmt: skip
    expected = base64.b64encode(hmac.new(b"secret", text.encode(), hashlib.sha1).digest()).decode()
    assert sign("secret", "POST", "/logstores/l/shards/lb", headers) == expected
    headers["x-log-bodyrawsize"] = "19"
    assert sign("secret", "POST", "/logstores/l/shards/lb", headers) != expected


def event(
    i: int, kind: str = "Pod", message: str = "Back-off restarting failed container"
) -> object:
    return normalize({
        "metadata": {"uid": f"uid-{i}", "resourceVersion": str(100 + i), "name": f"web.{i}", "namespace": "shop",
                     "creationTimestamp": "2026-11-20T09:59:59Z"},
        "involvedObject": {"kind": kind, "name": f"web-{i}", "namespace": "shop", "uid": f"obj-{i}", "apiVersion": "v1"},
        "reason": "BackOff", "type": "Warning", "count": 2, "message": message,
        "firstTimestamp": "2026-11-20T10:00:00Z", "lastTimestamp": "2026-11-20T10:00:05Z",
        "source": {"component": "kubelet", "host": "node-a"},
    }, "ADDED")  # fmt: skip


def test_the_contents_are_kube_eventers_plus_the_version_id():
    built = sink("sls:https://cn-hangzhou.log.aliyuncs.com?project=abc&logStore=l&label=ClusterId,c1&label=env,prod" + KEYS, cluster="prod")  # fmt: skip
    pod = dict(built.contents(event(1)))
    assert list(pod) == ["eventId", "hostname", "level", "pod_id", "pod_name", "ClusterId", "env", "version_id", "cluster"]  # fmt: skip
    assert (pod["hostname"], pod["level"], pod["pod_id"], pod["pod_name"]) == ("node-a", "Warning", "obj-1", "web-1")  # fmt: skip
    assert (pod["ClusterId"], pod["env"], pod["version_id"], pod["cluster"]) == ("c1", "prod", "uid-1.2", "prod")  # fmt: skip
    v1 = json.loads(pod["eventId"])
    assert pod["eventId"].startswith(
        '{\n "kind": "Event",\n "apiVersion": "v1",\n "metadata": {\n  "name"'
    )
    assert v1["metadata"] == {"name": "web.1", "namespace": "shop", "uid": "uid-1", "resourceVersion": "101", "creationTimestamp": "2026-11-20T09:59:59Z"}  # fmt: skip
    assert (v1["reason"], v1["count"], v1["lastTimestamp"], v1["involvedObject"]["uid"]) == ("BackOff", 2, "2026-11-20T10:00:05Z", "obj-1")  # fmt: skip
    node = dict(built.contents(event(2, kind="Node")))
    assert "pod_id" not in node and "pod_name" not in node
    pb = messages()
    log = pb.Log()
    log.ParseFromString(built.encode_log(event(1)))
    assert log.Time == int(datetime.fromisoformat("2026-11-20T10:00:05+00:00").timestamp())


def test_batches_are_cut_at_4096_logs_and_the_request_size():
    built = sink("sls:https://cn-hangzhou.log.aliyuncs.com?project=abc&logStore=l&max_request_bytes=100000" + KEYS)  # fmt: skip
    small = [(i, b"x" * 10) for i in range(MAX_LOGS_PER_GROUP + 5)]
    assert [len(g) for g in built.groups(small)] == [MAX_LOGS_PER_GROUP, 5]
    big = [(i, b"y" * 30_000) for i in range(7)]
    groups = built.groups(big)
    assert [len(g) for g in groups] == [3, 3, 1]
    assert [i for g in groups for i, _ in g] == list(range(7))
    assert all(sum(len(b) + 6 for _, b in g) <= 100_000 - 1024 for g in groups)

"""kube-eventer's sink flags as its docs and users write them, each read as kube-eventer reads it."""

from __future__ import annotations

import pytest

from shipper.sinks.base import SinkContext
from shipper.sinks.factory import build_sink

CTX = SinkContext("c1", None)


def test_a_dingtalk_url_with_a_copied_timestamp_and_signature_signs_each_request(caplog):
    sink, _ = build_sink(
        "dingtalk:https://oapi.dingtalk.com/robot/send?access_token=T"
        "&timestamp=1577262236757&sign=c2lnbg%3D%3D&label=c1",
        CTX,
    )
    assert "timestamp" not in sink.url and "sign=" not in sink.url
    assert sink.options.sign is None  # the stale signature is not a secret
    assert "expires within an hour; dropped" in caplog.text and "c2lnbg" not in caplog.text
    signed, _ = build_sink(
        "dingtalk:https://oapi.dingtalk.com/robot/send?access_token=T&timestamp=1&sign=SECabc",
        CTX,
    )
    assert signed.options.sign == "SECabc" and "timestamp" not in signed.url


def test_wechat_with_kube_eventers_placeholder_host_uses_the_application_api():
    sink, settings = build_sink(
        "wechat:https://wechat?corp_id=ww1&corp_secret=s3cret&agent_id=1000002&to_user=a,b"
        "&label=c1&level=Normal",
        CTX,
    )
    assert not sink.robot and sink.options.to_user == ["a", "b"]
    assert settings.filter.level == "Normal"


def test_a_webhook_with_a_configmap_body_builds_without_a_cluster(monkeypatch):
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    sink, _ = build_sink(
        "webhook:https://oapi.dingtalk.com/robot/send?access_token=token&level=Normal&kinds=Pod"
        "&header=Content-Type=application/json&custom_body_configmap=custom-body"
        "&custom_body_configmap_namespace=kube-system&method=POST",
        CTX,
    )
    assert sink._configmap_pending  # read by open(), at start, with the pod's credentials
    assert ("access_token", "token") in sink.leftover


@pytest.mark.parametrize(
    ("query", "level"),
    [("level=Normal,Warning", "Normal"), ("level=Warning", "Warning"), ("", "Warning")],
)
def test_chat_level_as_kube_eventer_reads_it(query, level):
    _, settings = build_sink(
        f"dingtalk:https://oapi.dingtalk.com/robot/send?access_token=T&{query}", CTX
    )
    assert settings.filter.level == level


def test_elasticsearch_nodes_without_a_scheme_are_http():
    sink, _ = build_sink("elasticsearch:?nodes=es-0:9200&nodes=https://es-1:9200&index=x", CTX)
    assert sink.nodes == ["http://es-0:9200", "https://es-1:9200"]

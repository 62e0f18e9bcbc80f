"""The rabbitmq sink's settings from kube-eventer's URIs, and its message properties, in
process (the broker itself: tests/integration/test_rabbitmq_sink.py)."""

from __future__ import annotations

import logging

import orjson
import pytest

from shipper.sinks.base import SinkContext
from shipper.sinks.factory import build_sink
from shipper.uri import UsageError
from tests.support.notify import event


def sink(uri: str):
    return build_sink(uri, SinkContext(cluster="prod", state_dir=None))[0]


def test_kube_eventers_parameters(caplog):
    caplog.set_level(logging.WARNING)
    s = sink("rabbitmq:?host=mq&port=5673&username=u&password=s3cr3t&eventtopic=testtopic")
    params = s.parameters()
    assert (params.host, params.port, params.virtual_host) == ("mq", 5673, "/")
    assert (params.credentials.username, params.credentials.password) == ("u", "s3cr3t")
    assert s.options.exchange == "testtopic" and params.ssl_options is None
    assert "s3cr3t" not in s.describe()
    assert sink("rabbitmq:?host=mq&eventstopic=e2").options.exchange == "e2"
    metrics = sink("rabbitmq:?host=mq&metricsTopic=testtopic")
    assert metrics.options.exchange == "heapster-events"  # kube-eventer's default
    assert "metricsTopic=testtopic is ignored" in caplog.text


def test_tls_from_kube_eventers_insecuressl_and_the_port():
    s = sink("rabbitmq:?host=mq&insecuressl=true&vhost=prod")
    params = s.parameters()
    assert params.port == 5671 and params.ssl_options is not None
    assert s.target() == "amqps://mq:5671/prod"


def test_message_properties_and_a_templated_routing_key():
    s = sink("rabbitmq:?host=mq&routing_key={{ .InvolvedObject.Namespace }}.{{ .Reason }}")
    e = event(count=4)
    props = s.properties(e)
    assert (props.content_type, props.delivery_mode, props.message_id, props.type) == (
        "application/json", 2, f"{e.uid}.4", "Warning",
    )  # fmt: skip
    assert props.headers["cluster"] == "prod" and props.headers["uid"] == e.uid
    assert s.routing_key(e) == "shop.BackOff"
    assert orjson.loads(s.body(e))["kubernetes"]["event"]["count"] == 4


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("rabbitmq:?host=mq&port=0", "parameter port='0'"),
        ("rabbitmq:?host=mq&tls=false&insecuressl=true", "tls=false, but"),
        ("rabbitmq:?host=mq&routing_key={{ .Nope | shout }}", "parameter routing_key"),
        ("rabbitmq:amqp://mq", "unexpected 'amqp://mq'"),
        ("rabbitmq:?host=mq&exchange_type=x", "parameter exchange_type='x'"),
    ],
)
def test_bad_uris(uri, expected):
    with pytest.raises(UsageError) as caught:
        sink(uri)
    assert expected in str(caught.value)

"""The pubsub sink without a server: URIs and kubernetes-event-exporter's receiver read into the
topic and options, and the message (data, attributes, ordering key) it publishes."""

from __future__ import annotations

import json
import textwrap

import pytest

from shipper.config import load
from shipper.event import normalize
from shipper.sinks.base import SinkContext
from shipper.sinks.factory import build_sink, build_sinks
from shipper.sinks.pubsub import PubsubSink
from shipper.uri import UsageError
from tests.unit.test_corpus import CORPUS


def sink(uri: str, cluster: str = "") -> PubsubSink:
    built, _ = build_sink(uri, SinkContext(cluster, None))
    assert isinstance(built, PubsubSink)
    return built


def test_uri_forms_name_one_topic():
    assert sink("pubsub:projects/my-project/topics/kube-events").topic == "projects/my-project/topics/kube-events"  # fmt: skip
    assert sink("pubsub:?project=my-project&topic=kube-events").topic == "projects/my-project/topics/kube-events"  # fmt: skip
    assert sink("pubsub:?gcloud_project_id=p-123&topic=projects/p-123/topics/t.1").topic == "projects/p-123/topics/t.1"  # fmt: skip
    built = sink("pubsub:projects/my-project/topics/kube-events?create_topic=true&ordering=false")
    assert (built.options.create_topic, built.options.ordering) == (True, False)
    assert built.describe() == "pubsub projects/my-project/topics/kube-events"


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("pubsub:", "parameter project (gcloud_project_id) is missing"),
        ("pubsub:?project=my-project", "parameter topic is missing"),
        ("pubsub:kube-events", "'kube-events' is not a topic path"),
        ("pubsub:?project=my-project&topic=x", "parameter topic='x': expected 3 to 255"),
        ("pubsub:?project=my-project&topic=googevents", "not with goog"),
        ("pubsub:projects/a-proj/topics/t-1?project=b-proj", "project 'b-proj' and the topic's path"),
        ("pubsub:projects/a-proj/topics/t-1?credentials_file=/nonexistent/sa.json", "credentials_file='/nonexistent/sa.json': cannot read it"),
        ("pubsub:projects/a-proj/topics/t-1?format=avro", "parameter format='avro'"),
    ],
)  # fmt: skip
def test_bad_uris_are_one_line(uri, expected):
    with pytest.raises(UsageError) as caught:
        sink(uri)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_a_credentials_file_must_be_a_service_account_key(tmp_path):
    path = tmp_path / "adc.json"
    path.write_text(json.dumps({"type": "authorized_user", "client_id": "x"}))
    with pytest.raises(UsageError, match="not a service account key"):
        sink(f"pubsub:projects/a-proj/topics/t-1?credentials_file={path}")
    path.write_text("{not json")
    with pytest.raises(UsageError, match="not JSON"):
        sink(f"pubsub:projects/a-proj/topics/t-1?credentials_file={path}")


def test_the_exporters_readme_receiver_becomes_the_sink(tmp_path):
    readme = (CORPUS / "exporter" / "16-resmoio-readme-pubsub.yaml").read_text()
    path = tmp_path / "config.yaml"
    path.write_text("route: {match: [{receiver: pubsub}]}\n" + readme)
    [(built, settings)] = build_sinks([], SinkContext("prod", None), load(str(path)))
    assert isinstance(built, PubsubSink) and settings.name == "pubsub"
    assert built.topic == "projects/my-project/topics/kube-event"
    assert (built.options.create_topic, built.options.sent_update_event) == (False, True)
    path.write_text(textwrap.dedent("""\
        route: {match: [{receiver: ps}]}
        receivers:
          - name: ps
            pubsub: {gcloud_project_id: p-1, topic: t-1, create_topic: true, sentUpdateEvent: false}
    """))  # fmt: skip
    [(built, _)] = build_sinks([], SinkContext("prod", None), load(str(path)))
    assert (built.options.create_topic, built.options.sent_update_event) == (True, False)


def event() -> object:
    return normalize({
        "metadata": {"uid": "uid-1", "resourceVersion": "7", "name": "web.1", "namespace": "shop"},
        "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "shop"},
        "reason": "BackOff", "type": "Warning", "count": 3, "message": "Back-off 🔥",
        "lastTimestamp": "2026-11-20T10:00:05Z", "source": {"component": "kubelet"},
    }, "MODIFIED")  # fmt: skip


def test_the_message_is_the_document_with_the_version_id():
    built = sink("pubsub:projects/a-proj/topics/t-1", cluster="prod")
    data, attributes = built.message(event())
    assert attributes == {"cluster": "prod", "type": "Warning", "version_id": "uid-1.3"}
    document = json.loads(data)
    assert document["kubernetes"]["event"]["metadata"]["uid"] == "uid-1"
    assert (document["message"], document["orchestrator"]["cluster"]) == ("Back-off 🔥", {"name": "prod"})  # fmt: skip


def test_format_exporter_is_the_originals_body():
    built = sink("pubsub:projects/a-proj/topics/t-1?format=exporter", cluster="prod")
    data, _ = built.message(event())
    body = json.loads(data)
    assert (body["clusterName"], body["reason"], body["count"], body["involvedObject"]["name"]) == ("prod", "BackOff", 3, "web-1")  # fmt: skip
    assert body["metadata"]["uid"] == "uid-1" and body["message"] == "Back-off 🔥"

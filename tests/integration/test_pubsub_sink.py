"""The pubsub sink, Google's own client, against a local Pub/Sub Publisher service
(tests/support/receivers/pubsub.py, built from the published pubsub.proto and reached through
``PUBSUB_EMULATOR_HOST`` as the emulator is), fed by the real kube-apiserver.

What is shown: kubernetes-event-exporter's README receiver, unchanged, delivers (data the
documented event document, ordering key = uid, the version_id attribute, the versions of one
Event in order); a clean restart and a 410 publish only what is new, ``--start=all`` publishes
the retained versions again with the same version ids; ``create_topic`` creates the topic; a
one-minute outage loses nothing; a message the service refuses is dead-lettered alone; refused
credentials are one clear line, and the events flow once they are accepted; a bad credentials
file is one line and exit 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import grpc
import pytest

from tests.support.common import ROOT, wait_for
from tests.support.kube import bump, core_event, etcd_compact, now
from tests.support.receivers.pubsub import PubsubServer
from tests.unit.test_corpus import CORPUS

OUTAGE_SECONDS = float(os.environ.get("KES_OUTAGE_SECONDS", "60"))
TOPIC = "projects/my-project/topics/kube-event"  # the README's


@pytest.fixture
def run(shipper_factory, kube_env, namespace, tmp_path):
    def make(server: PubsubServer, *args: str) -> Any:
        argv = [
            f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
            *args,
            f"--state-dir={tmp_path / 'state'}",
            "--cluster-name=stack",
        ]
        return shipper_factory(argv, {"PUBSUB_EMULATOR_HOST": server.host})

    return make


def readme_config(tmp_path) -> str:
    """The exporter README's pubsub receiver as published, behind a route that uses it."""
    path = tmp_path / "config.yaml"
    readme = (CORPUS / "exporter" / "16-resmoio-readme-pubsub.yaml").read_text()
    path.write_text("route:\n  routes:\n    - match:\n        - receiver: pubsub\n" + readme)
    return str(path)


def shipped(process: Any, outcome: str = "shipped", sink: str = "pubsub") -> float:
    return process.metric("kube_event_shipper_sink_events_total", sink=sink, outcome=outcome)


def version_id(obj: dict[str, Any]) -> str:
    return f"{obj['metadata']['uid']}.{obj.get('count') or 1}"


def version_ids(messages: list[dict[str, Any]]) -> Counter[str]:
    return Counter(m["attributes"]["version_id"] for m in messages)


def test_the_exporters_readme_config_delivers_as_the_guarantee_says(
    run, kube_api, kube_env, namespace, tmp_path
):
    with PubsubServer(topics=[TOPIC]) as server:
        shipper = run(server, f"--config={readme_config(tmp_path)}").start()
        first = core_event(kube_api, namespace, obj="p0", message='Back-off 🔥 "quoted"')
        other = core_event(kube_api, namespace, obj="p1", type_="Normal", reason="Pulled")
        name = first["metadata"]["name"]
        updates = [bump(kube_api, namespace, name, c, now(c)) for c in (2, 3)]
        wait_for(lambda: len(server.on(TOPIC)) >= 4, what="four messages")
        assert shipper.stop() == 0
        messages = server.on(TOPIC)
        assert set(version_ids(messages)) == {version_id(o) for o in (first, other, *updates)}
        for message in messages:
            document = json.loads(message["data"])
            uid = document["kubernetes"]["event"]["metadata"]["uid"]
            assert message["ordering_key"] == uid
            assert message["attributes"] == {
                "cluster": "stack",
                "type": document["kubernetes"]["event"]["type"],
                "version_id": f"{uid}.{document['kubernetes']['event']['count']}",
            }
        history = [json.loads(m["data"]) for m in messages if m["ordering_key"] == first["metadata"]["uid"]]  # fmt: skip
        assert [d["kubernetes"]["event"]["count"] for d in history] == [1, 2, 3]  # in order
        assert history[-1]["message"] == 'Back-off 🔥 "quoted"'

        during = core_event(kube_api, namespace, obj="q0")
        later = bump(kube_api, namespace, other["metadata"]["name"], 2, now(5))
        etcd_compact(kube_env["ETCD_URL"])
        shipper.start()
        wait_for(lambda: shipped(shipper) == 2, what="the two versions made while stopped")
        assert shipper.stop() == 0
        assert "410 Gone" in shipper.stderr()
        messages = server.on(TOPIC)
        assert len(messages) == 6 and set(version_ids(messages).values()) == {1}

        shipper.start("--start=all")
        wait_for(lambda: shipped(shipper) == 3, what="the three events published again")
        assert shipper.stop() == 0
        counts = version_ids(server.on(TOPIC))
        assert {vid for vid, n in counts.items() if n == 2} == {
            version_id(o) for o in (updates[-1], later, during)
        }
        assert sum(counts.values()) == 9
    assert "Traceback" not in shipper.stderr()


def test_create_topic_creates_it_and_format_exporter_is_the_originals_body(
    run, kube_api, namespace
):
    topic = "projects/p-2/topics/created-here"
    with PubsubServer() as server:
        shipper = run(
            server, f"--sink=pubsub:{topic}?create_topic=true&format=exporter&flush_interval=0.2s"
        ).start()
        made = core_event(kube_api, namespace, obj="c0")
        wait_for(lambda: server.on(topic), what="the message on the created topic")
        assert shipper.stop() == 0
    assert topic in server.topics and ("CreateTopic", 0) in server.requests
    [message] = server.on(topic)
    body = json.loads(message["data"])
    assert (body["clusterName"], body["metadata"]["uid"]) == ("stack", made["metadata"]["uid"])
    assert body["involvedObject"]["name"] == "c0"


def test_an_outage_of_the_service_loses_nothing(run, kube_api, namespace):
    with PubsubServer(topics=[TOPIC]) as server:
        shipper = run(
            server, f"--sink=pubsub:{TOPIC}?flush_interval=0.2s&max_backoff=5s&timeout=5s"
        ).start()
        before = [core_event(kube_api, namespace, obj=f"a{i}") for i in range(2)]
        wait_for(lambda: shipped(shipper) == 2, what="two shipped")
        server.pause()
        down_at = time.monotonic()
        try:
            during = [core_event(kube_api, namespace, obj=f"b{i}") for i in range(5)]
            update = bump(kube_api, namespace, before[0]["metadata"]["name"], 2, now(1))
            wait_for(lambda: shipped(shipper, "retried") > 0, 60, "the sink to retry")
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
            assert shipper.proc.poll() is None
        finally:
            server.resume()
        wait_for(lambda: shipped(shipper) == 8, 60, "every version made during the outage")
        assert set(version_ids(server.on(TOPIC))) == {
            version_id(o) for o in [*before, *during, update]
        }
        history = [m for m in server.on(TOPIC) if m["ordering_key"] == before[0]["metadata"]["uid"]]  # fmt: skip
        assert [m["attributes"]["version_id"] for m in history][-1] == version_id(update)
        assert shipped(shipper, "dead_lettered") == 0
        assert shipper.stop() == 0
    stderr = shipper.stderr()
    assert "Traceback" not in stderr and "Sink pubsub could not write" in stderr


def test_a_message_the_service_refuses_is_dead_lettered_alone(run, kube_api, namespace, tmp_path):
    with PubsubServer(topics=[TOPIC], max_message_bytes=20_000) as server:
        good = [core_event(kube_api, namespace, obj=f"g{i}") for i in range(3)]
        poison = core_event(kube_api, namespace, obj="g9", message="x" * 30_000)
        shipper = run(server, f"--sink=pubsub:{TOPIC}?batch_size=10&flush_interval=1s").start()
        wait_for(lambda: shipped(shipper, "dead_lettered") == 1, what="one dead letter")
        wait_for(lambda: shipped(shipper) == 3, what="three shipped")
        assert shipper.stop() == 0
        assert set(version_ids(server.on(TOPIC))) == {version_id(g) for g in good}
    [letter] = [
        json.loads(line)
        for line in (tmp_path / "state" / "dead-letters" / "pubsub.jsonl").read_text().splitlines()
    ]
    assert letter["document"]["kubernetes"]["event"]["metadata"]["uid"] == poison["metadata"]["uid"]
    assert "Pub/Sub refused the message: 400 InvalidArgument: Request payload size exceeds" in letter["reason"]  # fmt: skip


def test_refused_credentials_are_one_clear_line_then_the_events_flow(run, kube_api, namespace):
    with PubsubServer(topics=[TOPIC]) as server:
        refusal = (grpc.StatusCode.UNAUTHENTICATED, "Request had invalid authentication credentials.")  # fmt: skip
        server.inject.extend([refusal] * 3)
        shipper = run(server, f"--sink=pubsub:{TOPIC}?flush_interval=0.2s&max_backoff=1s").start()
        made = core_event(kube_api, namespace, obj="w0")
        wait_for(lambda: server.on(TOPIC), 60, "the message, once the credentials are accepted")
        assert shipper.stop() == 0
    assert version_ids(server.on(TOPIC)) == Counter({version_id(made): 1})
    lines = [line for line in shipper.stderr().splitlines() if "Sink pubsub could not write" in line]  # fmt: skip
    assert len(lines) == 3, shipper.stderr()
    assert all(
        "401 Unauthenticated: Request had invalid authentication credentials.; Pub/Sub refused"
        " the credentials; check credentials_file or GOOGLE_APPLICATION_CREDENTIALS" in line
        for line in lines
    ), lines
    assert "Traceback" not in shipper.stderr()


def test_a_bad_credentials_file_is_one_line_and_exit_2(tmp_path):
    key = tmp_path / "key.json"
    key.write_text('{"type": "authorized_user"}')
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "shipper", f"--source=kubernetes:?auth={kubeconfig}",
         f"--sink=pubsub:{TOPIC}?credentials_file={key}", f"--state-dir={tmp_path / 'state'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert f"--sink pubsub: parameter credentials_file='{key}': not a service account key" in line

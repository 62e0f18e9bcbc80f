"""The rabbitmq sink against the stack's RabbitMQ, fed by the real kube-apiserver.

Each test binds a queue of its own to an exchange of its own and reads it back with pika. What
is shown: kube-eventer's URI delivers persistent JSON messages with message_id <uid>.<count>
and the documented properties; a message no queue takes is dead-lettered alone while the rest
land; a broker restart in the middle of a burst loses nothing; a wrong password is one clear
line; --start=all re-sends with the same message ids.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from tests.support.common import ROOT, STACK, stack_up, wait_for
from tests.support.kube import bump, core_event, etcd_compact, now


@pytest.fixture(scope="session")
def mq() -> dict[str, str]:
    return stack_up("rabbitmq")


class Queue:
    """A durable queue bound to ``exchange`` (declared like the sink declares it)."""

    def __init__(self, env: dict[str, str], exchange: str, *bindings: str) -> None:
        import pika

        self.env, self.name = env, f"q-{uuid.uuid4().hex[:10]}"
        self.got: list[tuple[Any, bytes]] = []
        connection = pika.BlockingConnection(pika.URLParameters(env["RABBITMQ_URL"]))
        channel = connection.channel()
        channel.exchange_declare(exchange, "topic", durable=True)
        channel.queue_declare(self.name, durable=True)
        for key in bindings or ("#",):
            channel.queue_bind(self.name, exchange, key)
        connection.close()

    def read(self) -> list[tuple[Any, bytes]]:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(self.env["RABBITMQ_URL"]))
        channel = connection.channel()
        while (message := channel.basic_get(self.name, auto_ack=True))[0] is not None:
            self.got.append((message[1], message[2]))
        connection.close()
        return self.got

    def ids(self) -> Counter[str]:
        return Counter(props.message_id for props, _ in self.read())


def uri(env: dict[str, str], exchange: str, extra: str = "") -> str:
    return (
        f"rabbitmq:?host={env['RABBITMQ_HOST']}&port={env['RABBITMQ_PORT']}"
        f"&username={env['RABBITMQ_USER']}&password={env['RABBITMQ_PASSWORD']}"
        f"&eventtopic={exchange}&flush_interval=0.2s{extra}"
    )


def version_id(obj: dict[str, Any]) -> str:
    return f"{obj['metadata']['uid']}.{obj.get('count') or 1}"


@pytest.fixture
def run(shipper_factory, kube_env, namespace, tmp_path):
    def make(*args: str) -> Any:
        return shipper_factory([
            f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
            *args, f"--state-dir={tmp_path / 'state'}", "--cluster-name=stack",
        ])  # fmt: skip

    return make


def shipped(shipper: Any, outcome: str = "shipped") -> float:
    return shipper.metric("kube_event_shipper_sink_events_total", sink="rabbitmq", outcome=outcome)


def test_kube_eventers_uri_delivers_persistent_confirmed_messages(
    mq, run, kube_api, kube_env, namespace
):
    exchange = f"x-{uuid.uuid4().hex[:8]}"
    queue = Queue(mq, exchange)
    shipper = run(f"--sink={uri(mq, exchange)}").start()
    made = core_event(kube_api, namespace, obj="web-1", message='ünï "q"')
    update = bump(kube_api, namespace, made["metadata"]["name"], 2, now(1))
    wait_for(lambda: len(queue.read()) == 2, what="two messages")
    assert shipper.stop() == 0
    assert mq["RABBITMQ_PASSWORD"] not in shipper.stderr()
    (p1, _), (p2, b2) = queue.got
    assert [p1.message_id, p2.message_id] == [version_id(made), version_id(update)]
    assert (p1.delivery_mode, p1.content_type, p1.type, p1.app_id) == (
        2, "application/json", "Warning", "kube-event-shipper",
    )  # fmt: skip
    assert p1.headers["cluster"] == "stack" and p1.headers["namespace"] == namespace
    document = json.loads(b2)
    assert document["message"] == 'ünï "q"' and document["kubernetes"]["event"]["count"] == 2

    etcd_compact(kube_env["ETCD_URL"])
    shipper.start()  # a restart into a 410 and a re-list: nothing is sent again
    time.sleep(3)
    assert shipped(shipper) == 0
    assert shipper.stop() == 0
    shipper.start("--start=all")
    wait_for(lambda: shipped(shipper) == 1, what="the retained event re-sent")
    assert shipper.stop() == 0
    assert queue.ids() == Counter({version_id(made): 1, version_id(update): 2})


def test_an_unroutable_message_is_dead_lettered_alone(mq, run, kube_api, namespace, tmp_path):
    exchange = f"x-{uuid.uuid4().hex[:8]}"
    queue = Queue(mq, exchange, "BackOff", "Pulled")
    shipper = run(f"--sink={uri(mq, exchange, '&routing_key={{ .Reason }}')}").start()
    good = [core_event(kube_api, namespace, reason=r, obj=f"g{i}") for i, r in enumerate(
        ["BackOff", "Nowhere", "Pulled"])]  # fmt: skip
    wait_for(lambda: shipped(shipper, "dead_lettered") == 1 and shipped(shipper) == 2,
             what="two shipped, one dead letter")  # fmt: skip
    assert shipper.stop() == 0
    assert set(queue.ids()) == {version_id(good[0]), version_id(good[2])}
    [letter] = (tmp_path / "state" / "dead-letters" / "rabbitmq.jsonl").read_text().splitlines()
    letter = json.loads(letter)
    assert letter["document"]["kubernetes"]["event"]["reason"] == "Nowhere"
    assert (
        f"no queue is bound to exchange '{exchange}' for routing key 'Nowhere'" in letter["reason"]
    )


def stack(command: str) -> None:
    subprocess.run([sys.executable, str(STACK), command, "rabbitmq"], cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip


def test_a_broker_restart_during_a_burst_loses_nothing(mq, run, kube_api, namespace):
    exchange = f"x-{uuid.uuid4().hex[:8]}"
    queue = Queue(mq, exchange)
    shipper = run(f"--sink={uri(mq, exchange, '&max_backoff=3s&timeout=5s')}").start()
    made = [core_event(kube_api, namespace, obj=f"a{i}") for i in range(20)]
    stack("down")
    try:
        made += [core_event(kube_api, namespace, obj=f"b{i}") for i in range(20)]
        wait_for(lambda: shipper.metric("kube_event_shipper_sink_up", sink="rabbitmq") == 0,
                 60, "the sink to notice")  # fmt: skip
    finally:
        stack_up("rabbitmq")
    made += [core_event(kube_api, namespace, obj=f"c{i}") for i in range(20)]
    expected = {version_id(o) for o in made}
    wait_for(lambda: set(queue.ids()) >= expected, 120, "all 60 after the restart")
    assert set(queue.ids()) == expected  # each at least once, nothing else
    assert shipper.stop() == 0
    assert "Traceback" not in shipper.stderr()


def test_a_wrong_password_is_one_clear_line(mq, run, kube_api, namespace):
    bad = uri(mq, "x-none").replace(mq["RABBITMQ_PASSWORD"], "wrong-Pa55")
    shipper = run(f"--sink={bad}", "--grace-period=2s").start()
    core_event(kube_api, namespace)
    wait_for(lambda: "authentication failed" in shipper.stderr(), 60, "the refusal")
    assert shipper.stop() == 0
    stderr = shipper.stderr()
    line = next(x for x in stderr.splitlines() if "authentication failed" in x)
    assert (
        f"rabbitmq amqp://{mq['RABBITMQ_HOST']}:{mq['RABBITMQ_PORT']}/: authentication failed"
        f" (user '{mq['RABBITMQ_USER']}'): check username and password" in line
    )
    assert "Traceback" not in stderr and "wrong-Pa55" not in stderr

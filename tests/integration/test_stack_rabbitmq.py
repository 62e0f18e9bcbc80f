"""The test stack's RabbitMQ (Debian's rabbitmq-server): publish with confirms and read back with
pika; a wrong password is refused by the broker."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.support.common import stack_up


def test_publish_with_confirms_and_read_back() -> None:
    import pika

    env = stack_up("rabbitmq")
    connection = pika.BlockingConnection(pika.URLParameters(env["RABBITMQ_URL"]))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        queue = f"t-{uuid.uuid4().hex[:10]}"
        channel.queue_declare(queue, durable=True)
        bodies = [json.dumps({"reason": r}).encode() for r in ("Scheduled", "BackOff")]
        for body in bodies:
            # mandatory: an unroutable message raises UnroutableError instead of vanishing;
            # with confirms on, basic_publish returns once the broker has acked it.
            channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2),
                                  mandatory=True)  # fmt: skip
        with pytest.raises(pika.exceptions.UnroutableError):
            channel.basic_publish("", f"{queue}-nowhere", b"x", mandatory=True)
        got = []
        while (message := channel.basic_get(queue, auto_ack=True))[0] is not None:
            got.append(message[2])
        assert got == bodies
    finally:
        connection.close()


def test_wrong_password_is_refused() -> None:
    import pika

    env = stack_up("rabbitmq")
    credentials = pika.PlainCredentials(env["RABBITMQ_USER"], env["RABBITMQ_PASSWORD"] + "x")
    params = pika.ConnectionParameters(
        env["RABBITMQ_HOST"], int(env["RABBITMQ_PORT"]), credentials=credentials,
        connection_attempts=1,
    )  # fmt: skip
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as caught:
        pika.BlockingConnection(params)
    assert "ACCESS_REFUSED" in str(caught.value)

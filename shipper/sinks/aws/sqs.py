"""``sqs:QUEUE``: one Amazon SQS message per event version (SendMessageBatch).

``QUEUE`` is a queue name (``kube-events``, ``kube-events.fifo``), its URL
(``https://sqs.eu-west-1.amazonaws.com/123456789012/kube-events``) or its ARN
(``arn:aws:sqs:eu-west-1:123456789012:kube-events``, another account's queue too)::

    sqs:kube-events?region=eu-west-1
    sqs:kube-events.fifo?region=eu-west-1&role_arn=arn:aws:iam::123456789012:role/events
    sqs:kube-events?layout={"reason":"{{ .Reason }}","msg":"{{ .Message }}"}

kubernetes-event-exporter's receiver is read as it reads it (``queueName``, ``region``,
``layout``, ``sentUpdateEvent``)::

    receivers:
      - name: sqs
        sqs:
          queueName: kube-events
          region: eu-west-1
          layout: {reason: "{{ .Reason }}", message: "{{ .Message }}"}   # optional

Credentials: the AWS default chain only (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` from a
Secret, IRSA, EKS Pod Identity, the instance role), optionally ``role_arn`` to assume; never a
key in a parameter. The identity needs ``sqs:GetQueueUrl`` and ``sqs:SendMessage`` (plus
``kms:GenerateDataKey`` on an encrypted queue). ``endpoint=`` or ``AWS_ENDPOINT_URL_SQS`` point
it at a VPC endpoint.

The message, per event version::

    body        the event document as ``log`` prints it (README: The event document), JSON;
                or the layout's body
    attributes  version_id  <uid>.<count>, the same for every copy of one version
                type, reason, namespace, kind, cluster (String; empty ones left out)
    FIFO queue  MessageGroupId = the Event's uid (``message_group_id`` sets one group for all),
                MessageDeduplicationId = <uid>.<count> (its SHA-256 if over 128 characters)

Writes: SendMessageBatch with up to 10 messages and 256 KiB in all (body plus attributes), at
most one version of an Event per call. A message over ``max_message_bytes`` (256 KiB, SQS's
limit until 2025; raise it to 1048576 where the queue's MaximumMessageSize allows) has its
``message`` field cut, with ``[message cut by kube-event-shipper: N of M bytes left out]`` at its
end; a layout body over it is dead-lettered. An entry SQS refuses for good (``SenderFault``) is
dead-lettered; one it failed on its side, or throttled, is retried alone, and the rest of the
batch waits for it. An outage, throttling of the whole call, bad credentials or a missing queue
are retried with backoff, one log line each.

Guarantee: FIFO queues deduplicate: each event version once within SQS's 5-minute deduplication
interval, in order per Event (a restart, a 410 and ``--start=all`` within 5 minutes of the first
send add no copy). Standard queues: at least once; a version is sent again only after a crash
(the last checkpoint interval), with ``--start=all``, or when a call timed out after SQS stored
it; every copy has the same ``version_id`` attribute to deduplicate on (SQS itself may also
deliver a message twice). kubernetes-event-exporter's ``sentUpdateEvent: false`` (its default)
skips count updates; here every version is sent unless it is set to false.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from shipper.event import Event
from shipper.sinks.aws.common import (
    ARN,
    AwsSink,
    Entry,
    Tally,
    attributes,
    attributes_size,
    chunks,
    dedup_id,
    retryable_entry,
    skip_update,
)
from shipper.spec import AWSOptions, ClusterName, LayoutOption, SinkOptions, Timeout, option
from shipper.uri import UsageError, parse_positive_int

NAME = re.compile(r"[A-Za-z0-9_-]{1,80}|[A-Za-z0-9_-]{1,75}\.fifo")
URL = re.compile(r"https?://[^/\s]+/(\d+)/([A-Za-z0-9_.-]+)")
LIMIT = 262_144  # SendMessageBatch's total, and the message size, in bytes


@dataclass(frozen=True, kw_only=True)
class SqsOptions(SinkOptions, AWSOptions, LayoutOption, ClusterName, Timeout):
    REST = "queueName"

    message_group_id: str | None = option(None, "FIFO queues: one MessageGroupId for every message (default: the Event's uid, ordered per Event).", aliases=("MessageGroupId",), exporter="MessageGroupId")  # fmt: skip
    sent_update_event: bool = option(True, "Send count updates too; false skips versions that came as a watch update (kubernetes-event-exporter's default).", aliases=("sentUpdateEvent",), exporter="sentUpdateEvent")  # fmt: skip
    max_message_bytes: int = option(LIMIT, "Largest message (body + attributes); above it the message field is cut (a layout body is dead-lettered).", parse=parse_positive_int)  # fmt: skip


class SqsSink(AwsSink):
    scheme = "sqs"
    receiver = "sqs"
    summary = "Amazon SQS: one message per event version (FIFO: deduplicated, ordered per Event)"
    usage = "sqs:QUEUE?region=REGION (QUEUE: a name, URL or ARN)"
    example = "sqs:kube-events.fifo?region=eu-west-1"
    guarantee = (
        "FIFO queue: each event version once within SQS's 5-minute deduplication interval"
        " (MessageDeduplicationId <uid>.<count>), ordered per Event; standard queue: at least"
        " once, a crash, --start=all or a timed-out call may send a version again with the same"
        " version_id attribute"
    )
    Options = SqsOptions
    options: SqsOptions
    service = "sqs"
    action = "SendMessageBatch"
    max_entries = 10
    max_request_bytes = LIMIT
    max_entry_bytes = LIMIT
    default_batch_size = 100
    default_flush_interval = 0.5

    queue_url: str | None = None

    def setup(self) -> None:
        queue = self.uri.rest.removeprefix("//")
        if not queue:
            raise UsageError(f"{self.where}: no queue given; expected sqs:QUEUE_NAME?region=...")
        self.queue = queue
        self.account: str | None = None
        self._region: str | None = None
        if URL.fullmatch(queue):
            self.queue_url = queue
            self.account, self.name = URL.fullmatch(queue).groups()  # type: ignore[union-attr]
            host = re.match(r"https?://sqs\.([a-z0-9-]+)\.", queue)
            self._region = host.group(1) if host else None
        elif (arn := ARN.fullmatch(queue)) and arn.group(2) == "sqs":
            self._region, self.account, self.name = arn.group(3), arn.group(4), arn.group(5)
        else:
            self.name = queue
        if not NAME.fullmatch(self.name):
            raise UsageError(
                f"{self.where}: queue {queue!r} is not an SQS queue name (letters, digits, - and"
                " _, at most 80; FIFO names end in .fifo), URL or ARN"
            )
        self.fifo = self.name.endswith(".fifo")
        self.limit = min(self.options.max_message_bytes, 1_048_576)

    def resource_region(self) -> str | None:
        return self._region

    def target(self) -> str:
        return f"queue {self.name}"

    def check(self) -> None:
        if self.queue_url is None:
            args: dict[str, Any] = {"QueueName": self.name}
            if self.account:
                args["QueueOwnerAWSAccountId"] = self.account
            self.queue_url = self.client.get_queue_url(**args)["QueueUrl"]
        else:
            self.client.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])

    def entry(self, index: int, event: Event) -> Entry | None:
        if skip_update(event, self.options.sent_update_event):
            return None
        attrs = attributes(event, self.cluster)
        extra = attributes_size(attrs)
        body = self.body(event, self.limit - extra)
        item: dict[str, Any] = {
            "Id": str(index),
            "MessageBody": body.decode(),
            "MessageAttributes": attrs,
        }
        if self.fifo:
            item["MessageGroupId"] = self.options.message_group_id or event.uid
            item["MessageDeduplicationId"] = dedup_id(event)
        elif self.options.message_group_id:
            item["MessageGroupId"] = self.options.message_group_id  # fair queues
        return Entry(index, item, len(body) + extra, event.uid)

    def requests(self, entries: list[Entry]) -> list[list[Entry]]:
        # the batch total counts as the message limit does; a raised limit raises both
        return chunks(entries, self.max_entries, max(self.limit, LIMIT), ordered=True)

    def send(self, request: list[Entry], tally: Tally) -> None:
        reply = self.client.send_message_batch(
            QueueUrl=self.queue_url, Entries=[e.item for e in request]
        )
        for failed in reply.get("Failed") or ():
            index = int(failed["Id"])
            reason = f"SQS {failed.get('Code')}: {failed.get('Message') or ''}".strip()
            if retryable_entry(failed.get("Code") or "", bool(failed.get("SenderFault"))):
                tally.again(index, reason)
            else:
                tally.reject(index, reason)

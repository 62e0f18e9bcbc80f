"""``sns:TOPIC_ARN``: one Amazon SNS message per event version (PublishBatch).

::

    sns:arn:aws:sns:eu-west-1:123456789012:kube-events
    sns:arn:aws:sns:eu-west-1:123456789012:kube-events.fifo?role_arn=arn:aws:iam::123456789012:role/events

The topic's region is the one in its ARN (AWS serves a topic only there); ``region`` is used
only if the ARN has none, and a different one is overridden with a warning.
kubernetes-event-exporter's receiver is read as it reads it (``topicARN``, ``region``,
``MessageGroupId``, ``layout``)::

    receivers:
      - name: sns
        sns:
          topicARN: arn:aws:sns:eu-west-1:123456789012:kube-events
          region: eu-west-1
          layout: {reason: "{{ .Reason }}", message: "{{ .Message }}"}   # optional

Credentials: the AWS default chain only (env from a Secret, IRSA, EKS Pod Identity, the instance
role), optionally ``role_arn``; never a key in a parameter. The identity needs ``sns:Publish``
(and ``sns:GetTopicAttributes`` for the start-up check, which is skipped with a warning if
denied). ``endpoint=`` or ``AWS_ENDPOINT_URL_SNS`` point it at a VPC endpoint.

The message, per event version::

    Message     the event document as ``log`` prints it (README: The event document), JSON;
                or the layout's body
    attributes  version_id (<uid>.<count>), type, reason, namespace, kind, cluster (String;
                empty ones left out): subscription filter policies can match them, e.g.
                {"type": ["Warning"]}
    FIFO topic  MessageGroupId = the Event's uid (or ``MessageGroupId`` / ``message_group_id``),
                MessageDeduplicationId = <uid>.<count> (its SHA-256 if over 128 characters)

Writes: PublishBatch with up to 10 messages and 256 KiB in all, at most one version of an Event
per call. A message over 256 KiB (``max_message_bytes``) has its ``message`` field cut, marked
``[message cut by kube-event-shipper: N of M bytes left out]``; a layout body over it is
dead-lettered. An entry SNS refuses for good (``SenderFault``) is dead-lettered, one throttled or
failed on SNS's side is retried alone. Outages, throttling, bad credentials and a missing topic
are retried with backoff, one log line each.

Guarantee: FIFO topics deduplicate: each event version once within SNS's 5-minute deduplication
interval, ordered per Event (restarts, 410s and ``--start=all`` within it add no copy; a FIFO
SQS queue subscribed to it deduplicates the same way). Standard topics: at least once; a crash
(the last checkpoint interval), ``--start=all`` or a call that timed out after SNS took it may
publish a version again, with the same ``version_id`` attribute to deduplicate on.
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
    arn_region,
    attributes,
    attributes_size,
    dedup_id,
    retryable_entry,
)
from shipper.spec import AWSOptions, ClusterName, LayoutOption, SinkOptions, Timeout, option
from shipper.uri import UsageError, parse_positive_int

LIMIT = 262_144  # one message, and a PublishBatch in all
TOPIC = re.compile(r"[A-Za-z0-9_-]{1,256}|[A-Za-z0-9_-]{1,251}\.fifo")


@dataclass(frozen=True, kw_only=True)
class SnsOptions(SinkOptions, AWSOptions, LayoutOption, ClusterName, Timeout):
    REST = "topicARN"

    message_group_id: str | None = option(None, "FIFO topics: one MessageGroupId for every message (default: the Event's uid, ordered per Event).", aliases=("MessageGroupId",), exporter="MessageGroupId")  # fmt: skip
    max_message_bytes: int = option(LIMIT, "Largest message (body + attributes); above it the message field is cut (a layout body is dead-lettered).", parse=parse_positive_int)  # fmt: skip


class SnsSink(AwsSink):
    scheme = "sns"
    receiver = "sns"
    summary = "Amazon SNS: one message per event version, with attributes for filter policies"
    usage = "sns:TOPIC_ARN"
    example = "sns:arn:aws:sns:eu-west-1:123456789012:kube-events"
    guarantee = (
        "FIFO topic: each event version once within SNS's 5-minute deduplication interval"
        " (MessageDeduplicationId <uid>.<count>), ordered per Event; standard topic: at least"
        " once, a crash, --start=all or a timed-out call may publish a version again with the"
        " same version_id attribute"
    )
    Options = SnsOptions
    options: SnsOptions
    service = "sns"
    action = "PublishBatch"
    max_entries = 10
    max_request_bytes = LIMIT
    max_entry_bytes = LIMIT
    default_batch_size = 100
    default_flush_interval = 0.5

    def setup(self) -> None:
        arn = self.uri.rest
        match = ARN.fullmatch(arn)
        if not arn:
            raise UsageError(f"{self.where}: no topic given; expected sns:TOPIC_ARN")
        if match is None or match.group(2) != "sns" or not TOPIC.fullmatch(match.group(5)):
            raise UsageError(
                f"{self.where}: topic {arn!r} is not an SNS topic ARN"
                " (arn:aws:sns:REGION:ACCOUNT:NAME)"
            )
        self.arn, self.name = arn, match.group(5)
        self.fifo = self.name.endswith(".fifo")
        self.limit = min(self.options.max_message_bytes, LIMIT)

    def resource_region(self) -> str | None:
        return arn_region(self.arn)

    def target(self) -> str:
        return f"topic {self.arn}"

    def check(self) -> None:
        self.client.get_topic_attributes(TopicArn=self.arn)

    def entry(self, index: int, event: Event) -> Entry:
        attrs = attributes(event, self.cluster)
        extra = attributes_size(attrs)
        body = self.body(event, self.limit - extra)
        item: dict[str, Any] = {"Id": str(index), "Message": body.decode(), "MessageAttributes": attrs}  # fmt: skip
        if self.fifo:
            item["MessageGroupId"] = self.options.message_group_id or event.uid
            item["MessageDeduplicationId"] = dedup_id(event)
        return Entry(index, item, len(body) + extra, event.uid)

    def send(self, request: list[Entry], tally: Tally) -> None:
        reply = self.client.publish_batch(
            TopicArn=self.arn, PublishBatchRequestEntries=[e.item for e in request]
        )
        for failed in reply.get("Failed") or ():
            index = int(failed["Id"])
            reason = f"SNS {failed.get('Code')}: {failed.get('Message') or ''}".strip()
            if retryable_entry(failed.get("Code") or "", bool(failed.get("SenderFault"))):
                tally.again(index, reason)
            else:
                tally.reject(index, reason)

"""``kinesis:STREAM``: one Amazon Kinesis Data Streams record per event version (PutRecords).

``STREAM`` is a stream name or its ARN::

    kinesis:kube-events?region=eu-west-1
    kinesis:arn:aws:kinesis:eu-west-1:123456789012:stream/kube-events

kubernetes-event-exporter's receiver is read as it reads it (``streamName``, ``region``,
``layout``, ``sentUpdateEvent``)::

    receivers:
      - name: kinesis
        kinesis:
          streamName: kube-events
          region: eu-west-1
          layout:                                   # optional
            message: "{{ .Message }}"
            reason: "{{ .Reason }}"

Credentials: the AWS default chain only (env from a Secret, IRSA, EKS Pod Identity, the instance
role), optionally ``role_arn``; never a key in a parameter. The identity needs
``kinesis:PutRecords`` and ``kinesis:DescribeStreamSummary`` (the start-up check, skipped with a
warning if denied). ``endpoint=`` or ``AWS_ENDPOINT_URL_KINESIS`` point it at a VPC endpoint.

The record, per event version::

    PartitionKey  the Event's metadata.uid: every version of one Event goes to one shard, in
                  the order the versions were made
    Data          the event document as ``log`` prints it (README: The event document), JSON;
                  or the layout's body (kubernetes-event-exporter's: the same bytes)

Writes: PutRecords with up to 500 records and 5 MiB (data plus partition keys), at most one
version of an Event per call. A record over 1 MiB (``max_record_bytes``) has its ``message``
field cut, marked ``[message cut by kube-event-shipper: N of M bytes left out]``; a layout body
over it is dead-lettered. Records that fail (``ProvisionedThroughputExceededException``,
``InternalFailure``, KMS errors: ``FailedRecordCount`` and each record's ``ErrorCode``) are
retried alone, after backoff, and the rest of the batch waits for them, so a later version of
an Event never overtakes an earlier one. Throttling of the whole call, outages, bad credentials
and a missing stream are retried with backoff, one log line each.

Guarantee: at least once per event version, ordered per Event (partition key = uid). A version
is written twice only after a crash (the last checkpoint interval), with ``--start=all``, or
when a call timed out after Kinesis stored it: consumers deduplicate on
``kubernetes.event.metadata.uid`` + ``kubernetes.event.count`` in the document (the version id
``<uid>.<count>``; a layout should carry ``{{ .UID }}`` and ``{{ .Count }}`` for that). Kinesis
has no deduplication of its own. kubernetes-event-exporter's ``sentUpdateEvent: false`` (its
default) skips count updates; here every version is sent unless it is set to false.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shipper.event import Event
from shipper.sinks.aws.common import ARN, AwsSink, Entry, Tally, arn_region, skip_update
from shipper.spec import AWSOptions, ClusterName, LayoutOption, SinkOptions, Timeout, option
from shipper.uri import UsageError, parse_positive_int

RECORD = 1_048_576  # data + partition key
NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")


@dataclass(frozen=True, kw_only=True)
class KinesisOptions(SinkOptions, AWSOptions, LayoutOption, ClusterName, Timeout):
    REST = "streamName"

    sent_update_event: bool = option(True, "Send count updates too; false skips versions that came as a watch update (kubernetes-event-exporter's default).", aliases=("sentUpdateEvent",), exporter="sentUpdateEvent")  # fmt: skip
    max_record_bytes: int = option(RECORD, "Largest record (data + partition key); above it the message field is cut (a layout body is dead-lettered).", parse=parse_positive_int)  # fmt: skip


class KinesisSink(AwsSink):
    scheme = "kinesis"
    receiver = "kinesis"
    summary = "Amazon Kinesis Data Streams: one record per event version, partition key = uid"
    usage = "kinesis:STREAM?region=REGION (STREAM: a name or ARN)"
    example = "kinesis:kube-events?region=eu-west-1"
    guarantee = (
        "at least once per event version, ordered per Event (partition key = uid); a crash,"
        " --start=all or a timed-out call may write a version again: deduplicate on uid + count"
        " in the document"
    )
    Options = KinesisOptions
    options: KinesisOptions
    service = "kinesis"
    action = "PutRecords"
    max_entries = 500
    max_request_bytes = 5 * 1_048_576
    max_entry_bytes = RECORD
    default_batch_size = 500
    default_flush_interval = 0.5

    def setup(self) -> None:
        stream = self.uri.rest.removeprefix("//")
        match = ARN.fullmatch(stream)
        if match and match.group(2) == "kinesis" and match.group(5).startswith("stream/"):
            self.stream, self.name = {"StreamARN": stream}, match.group(5)[len("stream/") :]
            self._region = arn_region(stream)
        else:
            self.stream, self.name, self._region = {"StreamName": stream}, stream, None
        if not NAME.fullmatch(self.name):
            raise UsageError(
                f"{self.where}: stream {stream!r} is not a Kinesis stream name (letters,"
                " digits, _ . -, at most 128) or ARN; expected kinesis:STREAM?region=..."
            )
        self.limit = min(self.options.max_record_bytes, RECORD)

    def resource_region(self) -> str | None:
        return self._region

    def target(self) -> str:
        return f"stream {self.name}"

    def check(self) -> None:
        self.client.describe_stream_summary(**self.stream)

    def entry(self, index: int, event: Event) -> Entry | None:
        if skip_update(event, self.options.sent_update_event):
            return None
        key = event.uid or event.name or "-"
        data = self.body(event, self.limit - len(key.encode()))
        return Entry(index, {"Data": data, "PartitionKey": key}, len(data) + len(key), key)

    def send(self, request: list[Entry], tally: Tally) -> None:
        reply = self.client.put_records(Records=[e.item for e in request], **self.stream)
        if not reply.get("FailedRecordCount"):
            return
        for entry, result in zip(request, reply.get("Records") or (), strict=False):
            code = result.get("ErrorCode")
            if code:
                tally.again(entry.index, f"Kinesis {code}: {result.get('ErrorMessage') or ''}".strip())  # fmt: skip

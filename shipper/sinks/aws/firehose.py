"""``firehose:DELIVERY_STREAM``: one Amazon Data Firehose record per event version
(PutRecordBatch), one JSON line each, for S3, OpenSearch, Redshift, Splunk and the rest.

::

    firehose:kube-events?region=eu-west-1
    firehose:kube-events?region=eu-west-1&newline=false

kubernetes-event-exporter's receiver is read as it reads it (``deliveryStreamName``, ``region``,
``layout``; ``deDot`` is accepted: the document's label keys are always de-dotted)::

    receivers:
      - name: firehose
        firehose:
          deliveryStreamName: kube-events
          region: eu-west-1
          layout: {reason: "{{ .Reason }}", message: "{{ .Message }}"}   # optional

Credentials: the AWS default chain only (env from a Secret, IRSA, EKS Pod Identity, the instance
role), optionally ``role_arn``; never a key in a parameter. The identity needs
``firehose:PutRecordBatch`` and ``firehose:DescribeDeliveryStream`` (the start-up check, skipped
with a warning if denied). ``endpoint=`` or ``AWS_ENDPOINT_URL_FIREHOSE`` point it at a VPC
endpoint.

The record, per event version: the event document as ``log`` prints it (README: The event
document), or the layout's body, followed by a newline, so that an S3 object of concatenated
records is JSON Lines (Athena, ``jq``, OpenSearch ingest read it as it is).
kubernetes-event-exporter wrote no newline: ``newline=false`` writes its bytes.

Writes: PutRecordBatch with up to 500 records and 4 MiB. A record over 1,000 KiB
(``max_record_bytes``) has its ``message`` field cut, marked ``[message cut by
kube-event-shipper: N of M bytes left out]``; a layout body over it is dead-lettered. Records
that fail (``FailedPutCount`` and each record's ``ErrorCode``: ``ServiceUnavailableException``,
``InternalFailure``, KMS errors) are retried alone after backoff. Throttling of the whole call,
outages, bad credentials and a missing stream are retried with backoff, one log line each.

Guarantee: at least once per event version. Firehose has no deduplication: a crash (the last
checkpoint interval), ``--start=all``, a call that timed out after Firehose took it, and
Firehose's own retries to its destination may deliver a version twice; deduplicate downstream
on ``kubernetes.event.metadata.uid`` + ``kubernetes.event.count`` (the version id
``<uid>.<count>``; a layout should carry ``{{ .UID }}`` and ``{{ .Count }}``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shipper.event import Event
from shipper.sinks.aws.common import ARN, AwsSink, Entry, Tally
from shipper.spec import AWSOptions, ClusterName, LayoutOption, SinkOptions, Timeout, option
from shipper.uri import UsageError, parse_positive_int

RECORD = 1_024_000  # 1,000 KiB, before base64
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True, kw_only=True)
class FirehoseOptions(SinkOptions, AWSOptions, LayoutOption, ClusterName, Timeout):
    REST = "deliveryStreamName"
    IGNORED = {"deDot": "the document always has de-dotted label keys"}

    newline: bool = option(True, "End every record with a newline (JSON Lines in S3); false writes kubernetes-event-exporter's bytes.")  # fmt: skip
    max_record_bytes: int = option(RECORD, "Largest record; above it the message field is cut (a layout body is dead-lettered).", parse=parse_positive_int)  # fmt: skip


class FirehoseSink(AwsSink):
    scheme = "firehose"
    receiver = "firehose"
    summary = "Amazon Data Firehose: one JSON line per event version (to S3, OpenSearch, ...)"
    usage = "firehose:DELIVERY_STREAM?region=REGION"
    example = "firehose:kube-events?region=eu-west-1"
    guarantee = (
        "at least once per event version; a crash, --start=all, a timed-out call or Firehose's"
        " own retries may deliver a version again: deduplicate on uid + count in the document"
    )
    Options = FirehoseOptions
    options: FirehoseOptions
    service = "firehose"
    action = "PutRecordBatch"
    max_entries = 500
    max_request_bytes = 4 * 1_048_576
    max_entry_bytes = RECORD
    ordered = False  # Firehose keeps no order anyway
    default_batch_size = 500
    default_flush_interval = 1.0

    def setup(self) -> None:
        stream = self.uri.rest.removeprefix("//")
        match = ARN.fullmatch(stream)
        if match and match.group(2) == "firehose" and match.group(5).startswith("deliverystream/"):  # fmt: skip
            stream = match.group(5).split("/", 1)[1]
        if not NAME.fullmatch(stream):
            raise UsageError(
                f"{self.where}: delivery stream {stream!r} is not a Firehose stream name"
                " (letters, digits, _ . -, at most 64); expected firehose:STREAM?region=..."
            )
        self.name = stream
        self._region = match.group(3) if match else None
        self.suffix = b"\n" if self.options.newline else b""
        self.limit = min(self.options.max_record_bytes, RECORD) - len(self.suffix)

    def resource_region(self) -> str | None:
        return self._region

    def target(self) -> str:
        return f"delivery stream {self.name}"

    def check(self) -> None:
        self.client.describe_delivery_stream(DeliveryStreamName=self.name, Limit=1)

    def entry(self, index: int, event: Event) -> Entry:
        data = self.body(event, self.limit) + self.suffix
        return Entry(index, {"Data": data}, len(data), None)

    def send(self, request: list[Entry], tally: Tally) -> None:
        reply = self.client.put_record_batch(
            DeliveryStreamName=self.name, Records=[e.item for e in request]
        )
        if not reply.get("FailedPutCount"):
            return
        for entry, result in zip(request, reply.get("RequestResponses") or (), strict=False):
            code = result.get("ErrorCode")
            if code:
                tally.again(entry.index, f"Firehose {code}: {result.get('ErrorMessage') or ''}".strip())  # fmt: skip

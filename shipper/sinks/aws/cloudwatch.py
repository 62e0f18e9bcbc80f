"""``cloudwatch:LOG_GROUP``: one Amazon CloudWatch Logs event per event version (PutLogEvents),
one log stream per involved object by default.

::

    cloudwatch:/kubernetes/events?region=eu-west-1
    cloudwatch:/kubernetes/prod/events?region=eu-west-1&log_stream={{ .InvolvedObject.Namespace }}&retention_days=30

kubernetes-event-exporter has no CloudWatch Logs receiver; this one's keys follow its others'
(``region``, ``layout``) and the API's names::

    receivers:
      - name: cloudwatch
        cloudwatch:                   # also: cloudwatchlogs
          logGroupName: /kubernetes/events
          logStreamName: "{{ .InvolvedObject.Namespace }}"   # optional, a Go template
          createLogGroup: true        # optional
          retentionInDays: 30         # optional, for a group it creates
          region: eu-west-1
          layout: {reason: "{{ .Reason }}", message: "{{ .Message }}"}   # optional

Credentials: the AWS default chain only (env from a Secret, IRSA, EKS Pod Identity, the instance
role), optionally ``role_arn``; never a key in a parameter. The identity needs
``logs:PutLogEvents``, ``logs:CreateLogStream`` and, unless ``create_group=false``,
``logs:CreateLogGroup`` (and ``logs:PutRetentionPolicy`` with ``retention_days``).
``endpoint=`` or ``AWS_ENDPOINT_URL_CLOUDWATCH_LOGS`` point it at a VPC endpoint.

The log event, per event version::

    timestamp   the occurrence (the document's @timestamp), in milliseconds
    message     the event document as ``log`` prints it (README: The event document), one line
                of JSON, so Logs Insights discovers its fields (``fields kubernetes.event.reason``);
                or the layout's body

Log streams: ``log_stream`` is a Go template over the event (as layouts are); the default,
``<namespace>/<kind>/<name>`` of the involved object (``_cluster/Node/node-a`` for cluster-scoped
ones), is one stream per pod (or Deployment, Node, ...). Why per object and not per namespace:
it is how Container Insights and Fluent Bit already name pod streams, so one object's history
reads in order with ``aws logs tail GROUP --log-stream-name-prefix shop/Pod/web-``; streams cost
nothing; and a busy namespace does not become one hot stream. ``log_stream={{
.InvolvedObject.Namespace }}`` gives one per namespace. ``:`` and ``*`` (not allowed in stream
names) become ``_``. The group is created at start (``create_group``, with ``retention_days``
if given) and a stream when the first event for it comes.

Writes: PutLogEvents per stream, each call at most 10,000 events and 1 MiB (each event's UTF-8
message plus 26 bytes), in time order and within 24 hours. An event over 256 KiB
(``max_event_bytes``) has its ``message`` field cut, marked ``[message cut by
kube-event-shipper: N of M bytes left out]``; a layout body over it is dead-lettered. CloudWatch
refuses events older than 14 days (or than the group's retention) or more than 2 hours ahead:
those are dead-lettered, before sending when the clock already says so, else from the reply's
``rejectedLogEventsInfo``. Throttling, outages, bad credentials are retried with backoff, one log
line each.

Guarantee: at least once per event version, in time order per stream. CloudWatch Logs has no
deduplication: a crash (the last checkpoint interval), ``--start=all``, or a call that timed out
after CloudWatch stored it may write a version again; Logs Insights deduplicates with ``dedup
kubernetes.event.metadata.uid, kubernetes.event.count`` (the version id ``<uid>.<count>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shipper.event import Event
from shipper.sinks.aws.common import (
    AwsSink,
    Entry,
    Tally,
    TooLarge,
    error_code,
    now_ms,
    send_all,
)
from shipper.sinks.delivery import Outcome
from shipper.spec import AWSOptions, ClusterName, LayoutOption, SinkOptions, Timeout, option
from shipper.templates import TemplateError
from shipper.templates.event import event_context
from shipper.uri import UsageError, parse_positive_int

OVERHEAD = 26  # bytes PutLogEvents counts per event
BATCH = 1_048_576
EVENT = 262_144
DAY_MS = 86_400_000
TOO_OLD_MS = 14 * DAY_MS
TOO_NEW_MS = 2 * 3_600_000
DEFAULT_STREAM = (
    "{{ with .InvolvedObject.Namespace }}{{ . }}{{ else }}_cluster{{ end }}"
    "/{{ .InvolvedObject.Kind }}/{{ .InvolvedObject.Name }}"
)
GROUP = re.compile(r"[A-Za-z0-9_./#-]{1,512}")
RETENTION = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)  # fmt: skip


def parse_stream_template(text: str) -> Any:
    from shipper.templates import compile_template

    try:
        return compile_template(text, name="log_stream")
    except TemplateError as exc:
        raise ValueError(str(exc)) from None


parse_stream_template.__name__ = "template"


def parse_retention(text: str) -> int:
    days = int(text)
    if days not in RETENTION:
        raise ValueError(f"expected one of CloudWatch's retention periods: {', '.join(map(str, RETENTION))}")  # fmt: skip
    return days


@dataclass(frozen=True, kw_only=True)
class CloudWatchOptions(SinkOptions, AWSOptions, LayoutOption, ClusterName, Timeout):
    REST = "logGroupName"

    log_stream: Any = option(None, "Log stream name, a Go template over the event (default: <namespace>/<kind>/<name> of the involved object, one stream per pod).", parse=parse_stream_template, aliases=("logStreamName", "stream"), exporter="logStreamName")  # fmt: skip
    create_group: bool = option(True, "Create the log group at start if it does not exist.", aliases=("createLogGroup",), exporter="createLogGroup")  # fmt: skip
    retention_days: int | None = option(None, "Retention of a log group this sink creates, in days (default: never expire).", parse=parse_retention, aliases=("retentionInDays",), exporter="retentionInDays")  # fmt: skip
    max_event_bytes: int = option(EVENT, "Largest log event (message + 26 bytes); above it the message field is cut (a layout body is dead-lettered).", parse=parse_positive_int)  # fmt: skip


class CloudWatchSink(AwsSink):
    scheme = "cloudwatch"
    aliases = ("cloudwatchlogs",)
    receiver = "cloudwatch"
    summary = "Amazon CloudWatch Logs: one log event per event version, a stream per object"
    usage = "cloudwatch:LOG_GROUP?region=REGION&log_stream=TEMPLATE"
    example = "cloudwatch:/kubernetes/events?region=eu-west-1&retention_days=30"
    guarantee = (
        "at least once per event version, in time order per stream; a crash, --start=all or a"
        " timed-out call may write a version again (Logs Insights: dedup uid, count); events"
        " CloudWatch refuses (older than 14 days, 2 h ahead) are dead-lettered"
    )
    Options = CloudWatchOptions
    options: CloudWatchOptions
    service = "logs"
    action = "PutLogEvents"
    max_entries = 10_000
    max_request_bytes = BATCH
    max_entry_bytes = EVENT
    ordered = False
    default_batch_size = 1000
    default_flush_interval = 1.0

    def setup(self) -> None:
        group = self.uri.rest or "/kubernetes/events"
        if not GROUP.fullmatch(group) or group.startswith("aws/"):
            raise UsageError(
                f"{self.where}: log group {group!r} is not a log group name (letters, digits,"
                " _ - / . #, at most 512)"
            )
        self.group = group
        self.stream_template = self.options.log_stream or parse_stream_template(DEFAULT_STREAM)
        self.limit = min(self.options.max_event_bytes, EVENT) - OVERHEAD
        self.streams: set[str] = set()

    def target(self) -> str:
        return f"log group {self.group}"

    def check(self) -> None:
        if self.options.create_group:
            self.create_group()
        else:
            found = self.client.describe_log_groups(logGroupNamePrefix=self.group, limit=1)
            if not any(g["logGroupName"] == self.group for g in found.get("logGroups") or ()):
                from botocore.exceptions import ClientError

                missing = "The specified log group does not exist (create_group=false)."
                error = {"Code": "ResourceNotFoundException", "Message": missing}
                raise ClientError({"Error": error}, "DescribeLogGroups")

    def create_group(self) -> None:
        try:
            self.client.create_log_group(logGroupName=self.group)
        except Exception as exc:
            if error_code(exc) != "ResourceAlreadyExistsException":
                raise
            return
        if self.options.retention_days:
            self.client.put_retention_policy(
                logGroupName=self.group, retentionInDays=self.options.retention_days
            )

    def stream_name(self, event: Event) -> str:
        try:
            name = self.stream_template.render(event_context(event, self.cluster))
        except TemplateError as exc:
            raise TooLarge(f"the log_stream template failed: {exc}") from None
        name = re.sub(r"[:*]", "_", name).strip()[:512]
        return name or "_"

    def write(self, events: list[Event]) -> Outcome:  # type: ignore[override]
        if self.client is None:
            self.open()
        tally = Tally()
        now = now_ms()
        streams: dict[str, list[Entry]] = {}
        for index, event in enumerate(events):
            try:
                stream = self.stream_name(event)
                when = _ms(event.timestamp)
                if when < now - TOO_OLD_MS:
                    raise TooLarge("CloudWatch Logs refuses events older than 14 days")
                if when > now + TOO_NEW_MS:
                    raise TooLarge("CloudWatch Logs refuses events more than 2 hours ahead")
                body = self.body(event, self.limit)
            except TooLarge as exc:
                tally.reject(index, f"{self.scheme}: {exc}")
                continue
            item = {"timestamp": when, "message": body.decode()}
            streams.setdefault(stream, []).append(Entry(index, item, len(body) + OVERHEAD, None, stream))  # fmt: skip
        for entries in streams.values():
            if tally.stopped:
                tally.wait(entries)
                continue
            entries.sort(key=lambda e: e.item["timestamp"])  # stable: versions keep their order
            send_all(self.calls(entries), self.send, tally, self.explain)
        return tally.outcome()

    def calls(self, entries: list[Entry]) -> list[list[Entry]]:
        """At most 10,000 events and 1 MiB, spanning at most 24 hours, per call."""
        out: list[list[Entry]] = []
        for part in _spans(entries):
            out += super().requests(part)
        return out

    def send(self, request: list[Entry], tally: Tally) -> None:
        stream = request[0].extra
        args = {"logGroupName": self.group, "logStreamName": stream, "logEvents": [e.item for e in request]}  # fmt: skip
        if stream not in self.streams:
            self.create_stream(stream)
        try:
            reply = self.client.put_log_events(**args)
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            self.streams.discard(stream)  # deleted meanwhile: make it again, once
            if self.options.create_group and "group" in str(exc).lower():
                self.create_group()
            self.create_stream(stream)
            reply = self.client.put_log_events(**args)
        info = reply.get("rejectedLogEventsInfo") or {}
        last = len(request) - 1
        refused: dict[int, str] = {}
        if "tooNewLogEventStartIndex" in info:
            for i in range(info["tooNewLogEventStartIndex"], last + 1):
                refused[i] = "CloudWatch Logs refused it: more than 2 hours ahead"
        if "tooOldLogEventEndIndex" in info:
            for i in range(0, min(info["tooOldLogEventEndIndex"], last) + 1):
                refused[i] = "CloudWatch Logs refused it: older than 14 days"
        if "expiredLogEventEndIndex" in info:
            for i in range(0, min(info["expiredLogEventEndIndex"], last) + 1):
                refused[i] = "CloudWatch Logs refused it: older than the log group's retention"
        for i, reason in sorted(refused.items()):
            tally.reject(request[i].index, reason)

    def create_stream(self, stream: str) -> None:
        try:
            self.client.create_log_stream(logGroupName=self.group, logStreamName=stream)
        except Exception as exc:
            if error_code(exc) != "ResourceAlreadyExistsException":
                raise
        self.streams.add(stream)


def _ms(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


def _spans(entries: list[Entry]) -> list[list[Entry]]:
    """Time-ordered entries in runs that span less than 24 hours each."""
    out: list[list[Entry]] = []
    for entry in entries:
        if out and entry.item["timestamp"] - out[-1][0].item["timestamp"] < DAY_MS:
            out[-1].append(entry)
        else:
            out.append([entry])
    return out

"""``eventbridge:BUS``: one Amazon EventBridge event per event version (PutEvents).

``BUS`` is the event bus's name or ARN (``default`` when left out)::

    eventbridge:?region=eu-west-1
    eventbridge:kube-events?region=eu-west-1&source=k8s.prod&detail_type=Kubernetes%20Event

kubernetes-event-exporter's receiver is read as it reads it (``eventBusName``, ``source``,
``detailType``, ``region``, ``details``: the Detail as a layout, ``sentUpdateEvent``)::

    receivers:
      - name: eventbridge
        eventbridge:
          eventBusName: default
          source: k8s.prod
          detailType: Kubernetes Event
          region: eu-west-1
          details:                                  # optional; default: the event document
            message: "{{ .Message }}"
            reason: "{{ .Reason }}"

Credentials: the AWS default chain only (env from a Secret, IRSA, EKS Pod Identity, the instance
role), optionally ``role_arn``; never a key in a parameter. The identity needs
``events:PutEvents`` and ``events:DescribeEventBus`` (the start-up check, skipped with a warning
if denied). ``endpoint=`` or ``AWS_ENDPOINT_URL_EVENTBRIDGE`` point it at a VPC endpoint.

The event, per event version::

    Source        ``source`` (default kube-event-shipper; AWS reserves aws.*)
    DetailType    ``detail_type`` / ``detailType`` (default "Kubernetes Event")
    Detail        the event document as ``log`` prints it (README: The event document), a JSON
                  object; or the ``details`` layout's body
    Time          the occurrence (the document's @timestamp); the original sent the time of
                  sending
    EventBusName  the bus

A rule matches on any of it, e.g. ``{"source": ["k8s.prod"], "detail": {"log": {"level":
["warning"]}}}``.

Writes: PutEvents with up to 10 entries and 256 KiB in all (EventBridge counts Time, Source,
DetailType, Detail and Resources), at most one version of an Event per call. An entry over
256 KiB has its Detail's ``message`` field cut, marked ``[message cut by kube-event-shipper: N
of M bytes left out]``; a layout Detail over it is dead-lettered. Entries that fail
(``FailedEntryCount`` and each entry's ``ErrorCode``) are retried alone when EventBridge failed
or throttled (``InternalFailure``, ``ThrottlingException``) and dead-lettered when the entry is
at fault (``MalformedDetail``, ``InvalidArgument``, ...). Throttling of the whole call, outages,
bad credentials and a missing bus are retried with backoff, one log line each.

Guarantee: at least once per event version. EventBridge has no deduplication: a crash (the
last checkpoint interval), ``--start=all``, or a call that timed out after EventBridge took it
may put a version twice; targets deduplicate on ``detail.kubernetes.event.metadata.uid`` +
``detail.kubernetes.event.count`` (the version id ``<uid>.<count>``; a ``details`` layout should
carry ``{{ .UID }}`` and ``{{ .Count }}``), e.g. as the MessageDeduplicationId of a FIFO SQS
target. kubernetes-event-exporter's ``sentUpdateEvent: false`` (its default) skips count
updates; here every version is sent unless it is set to false.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shipper.event import Event
from shipper.layout import parse_layout
from shipper.sinks.aws.common import (
    ARN,
    AwsSink,
    Entry,
    Tally,
    arn_region,
    retryable_entry,
    skip_update,
)
from shipper.spec import AWSOptions, ClusterName, SinkOptions, Timeout, option
from shipper.uri import UsageError

LIMIT = 262_144
BUS = re.compile(r"[A-Za-z0-9/._-]{1,256}")


@dataclass(frozen=True, kw_only=True)
class EventBridgeOptions(SinkOptions, AWSOptions, ClusterName, Timeout):
    REST = "eventBusName"

    source: str = option("kube-event-shipper", "The events' Source (rules match on it; aws.* is AWS's).", exporter="source")  # fmt: skip
    detail_type: str = option("Kubernetes Event", "The events' DetailType.", aliases=("detailType",), exporter="detailType")  # fmt: skip
    layout: Any = option(None, 'The Detail as a tree of Go templates, as kubernetes-event-exporter\'s details (JSON in a URI: layout={"msg":"{{ .Message }}"}); default: the documented event document.', parse=parse_layout, aliases=("details",), exporter="details", whole=True, group="encoding")  # fmt: skip
    sent_update_event: bool = option(True, "Send count updates too; false skips versions that came as a watch update (kubernetes-event-exporter's default).", aliases=("sentUpdateEvent",), exporter="sentUpdateEvent")  # fmt: skip


class EventBridgeSink(AwsSink):
    scheme = "eventbridge"
    receiver = "eventbridge"
    summary = "Amazon EventBridge: one event per event version on a bus, for rules to route"
    usage = "eventbridge:BUS?region=REGION&source=SOURCE&detail_type=TYPE"
    example = "eventbridge:default?region=eu-west-1&source=k8s.prod"
    guarantee = (
        "at least once per event version; a crash, --start=all or a timed-out call may put a"
        " version again: targets deduplicate on detail uid + count"
    )
    Options = EventBridgeOptions
    options: EventBridgeOptions
    service = "events"
    action = "PutEvents"
    max_entries = 10
    max_request_bytes = LIMIT
    max_entry_bytes = LIMIT
    default_batch_size = 100
    default_flush_interval = 0.5

    def setup(self) -> None:
        bus = self.uri.rest.removeprefix("//") or "default"
        match = ARN.fullmatch(bus)
        if match and match.group(2) == "events" and match.group(5).startswith("event-bus/"):
            self._region, self.name = arn_region(bus), match.group(5)[len("event-bus/") :]
        elif BUS.fullmatch(bus):
            self._region, self.name = None, bus
        else:
            raise UsageError(f"{self.where}: event bus {bus!r} is not a bus name or ARN")
        self.bus = bus
        if not self.options.source or not self.options.detail_type:
            raise UsageError(f"{self.where}: source and detail_type must not be empty")
        fixed = 14 + len(self.options.source.encode()) + len(self.options.detail_type.encode())
        self.limit = LIMIT - fixed

    def resource_region(self) -> str | None:
        return self._region

    def target(self) -> str:
        return f"event bus {self.name}"

    def check(self) -> None:
        self.client.describe_event_bus(Name=self.bus)

    def entry(self, index: int, event: Event) -> Entry | None:
        if skip_update(event, self.options.sent_update_event):
            return None
        detail = self.body(event, self.limit)
        item = {
            "Source": self.options.source,
            "DetailType": self.options.detail_type,
            "Detail": detail.decode(),
            "EventBusName": self.bus,
            "Time": datetime.fromisoformat(event.timestamp.replace("Z", "+00:00")),
        }
        return Entry(index, item, LIMIT - self.limit + len(detail), event.uid)

    def send(self, request: list[Entry], tally: Tally) -> None:
        reply = self.client.put_events(Entries=[e.item for e in request])
        if not reply.get("FailedEntryCount"):
            return
        for entry, result in zip(request, reply.get("Entries") or (), strict=False):
            code = result.get("ErrorCode")
            if not code:
                continue
            reason = f"EventBridge {code}: {result.get('ErrorMessage') or ''}".strip()
            if retryable_entry(code, sender_fault=True):
                tally.again(entry.index, reason)
            else:
                tally.reject(entry.index, reason)

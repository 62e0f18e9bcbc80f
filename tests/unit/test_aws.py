"""The AWS sinks without a server: batching to the APIs' limits, cutting and refusing bodies,
the mapping of per-entry and whole-request failures to the pipeline's Outcome, and the URIs and
kubernetes-event-exporter receivers read into options. The calls themselves are tested against
the stack's AWS API in tests/integration/test_aws_sinks.py."""

from __future__ import annotations

import logging
import textwrap
from dataclasses import replace

import orjson
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from shipper.config import load
from shipper.layout import parse_layout
from shipper.sinks.aws import common
from shipper.sinks.aws.cloudwatch import CloudWatchSink, _spans
from shipper.sinks.aws.common import Entry, Tally, chunks, encode_body, send_all
from shipper.sinks.aws.eventbridge import EventBridgeSink
from shipper.sinks.aws.kinesis import KinesisSink
from shipper.sinks.aws.sns import SnsSink
from shipper.sinks.aws.sqs import SqsSink
from shipper.sinks.base import SinkContext
from shipper.sinks.delivery import Retry
from shipper.sinks.factory import build_sink, build_sinks
from shipper.templates.event import sample_events
from shipper.uri import UsageError


@pytest.fixture(autouse=True)
def aws_env(monkeypatch, tmp_path):
    """A region and nothing else: no shared files, no endpoint from the machine."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))


def sink(uri: str, cluster: str = "c"):
    built, _ = build_sink(uri, SinkContext(cluster, None))
    return built


def event(**changes):
    return replace(sample_events()[0], **changes)


def client_error(code: str, status: int = 400, message: str = "words") -> ClientError:
    meta = {"HTTPStatusCode": status, "HTTPHeaders": {}}
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": meta}, "Op"
    )


# -- batching


def entries(sizes, orders=None):
    orders = orders or [None] * len(sizes)
    return [
        Entry(i, {}, size, order) for i, (size, order) in enumerate(zip(sizes, orders, strict=True))
    ]


def test_chunks_keep_to_the_count_and_byte_limits():
    requests = chunks(entries([1] * 25), 10, 1000)
    assert [len(r) for r in requests] == [10, 10, 5]
    assert [e.index for r in requests for e in r] == list(range(25))
    by_bytes = chunks(entries([400, 400, 400, 100, 900]), 10, 1000)
    assert [[e.index for e in r] for r in by_bytes] == [[0, 1, 3], [2], [4]]  # first fit
    assert all(sum(e.size for e in r) <= 1000 for r in by_bytes)


def test_chunks_put_one_version_of_an_event_per_request_when_ordered():
    orders = ["a", "a", "b", "a", "c"]
    ordered = chunks(entries([1] * 5, orders), 10, 1000)
    assert [[e.index for e in r] for r in ordered] == [[0, 2, 4], [1], [3]]
    unordered = chunks(entries([1] * 5, orders), 10, 1000, ordered=False)
    assert len(unordered) == 1
    # a busy Event's versions do not cut the batch into small calls
    busy = chunks(entries([1] * 30, ["a", "a", "a"] + [str(i) for i in range(27)]), 10, 1000)
    assert [len(r) for r in busy] == [10, 10, 10]
    assert [next(i for i, r in enumerate(busy) if any(e.index == k for e in r)) for k in (0, 1, 2)] == [0, 1, 2]  # fmt: skip


def test_cloudwatch_calls_span_under_24_hours():
    day = 86_400_000
    items = [Entry(i, {"timestamp": t}, 1) for i, t in enumerate([0, 1000, day - 1, day, 3 * day])]
    assert [[e.index for e in run] for run in _spans(items)] == [[0, 1, 2], [3], [4]]


# -- bodies


def test_a_document_over_the_limit_has_its_message_cut_with_a_marker():
    big = event(message="é" * 50_000 + "TAIL")
    body, cut = encode_body(big, None, "c", 20_000)
    assert cut and len(body) <= 20_000 and len(body) > 19_000
    doc = orjson.loads(body)
    assert doc["message"].startswith("éé") and "TAIL" not in doc["message"]
    total = len(big.message.encode())
    kept = len(doc["message"].split(" [message cut")[0].encode())
    assert doc["message"].endswith(f" [message cut by kube-event-shipper: {total - kept} of {total} bytes left out]")  # fmt: skip
    assert doc["kubernetes"]["event"]["metadata"]["uid"] == big.uid  # the rest is whole
    small, cut = encode_body(event(), None, "c", 20_000)
    assert not cut and orjson.loads(small)["message"] == event().message


def test_a_body_that_cannot_fit_is_refused():
    layout = parse_layout('{"m": "{{ .Message }}"}')
    with pytest.raises(common.TooLarge, match=r"the layout's body is .* over the message limit of 100 bytes"):  # fmt: skip
        encode_body(event(message="x" * 200), layout, "c", 100)
    labels = event(labels={f"k{i}": "v" * 100 for i in range(100)})
    with pytest.raises(common.TooLarge, match="even with its message cut"):
        encode_body(labels, None, "c", 2000)


def test_fifo_dedup_id_is_the_version_id_or_its_hash():
    assert common.dedup_id(event(uid="u-1", count=3)) == "u-1.3"
    long = common.dedup_id(event(uid="u" * 200, count=3))
    assert len(long) == 64 and long == common.dedup_id(event(uid="u" * 200, count=3))


# -- outcomes


def test_per_entry_failures_retry_only_those_and_the_rest_waits():
    calls = []

    def send(request, tally):
        calls.append([e.index for e in request])
        if len(calls) == 1:
            tally.again(request[1].index, "Throttled")
            tally.reject(request[2].index, "InvalidParameterValue")

    tally = Tally()
    send_all(chunks(entries([1] * 15), 10, 1000), send, tally, str)
    outcome = tally.outcome()
    assert calls == [list(range(10))]  # the second request waits for the retried entry
    assert [r.index for r in outcome.rejected] == [2]
    assert outcome.retry[0] == Retry(1, "Throttled")
    assert [(r.index, r.reason) for r in outcome.retry[1:]] == [(i, None) for i in range(10, 15)]


def test_a_throttled_or_failed_request_is_retried_whole_with_the_rest():
    for exc in (
        client_error("ProvisionedThroughputExceededException"),
        client_error("InternalError", 500),
        client_error("SignatureDoesNotMatch", 403),
        client_error("AWS.SimpleQueueService.NonExistentQueue"),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    ):
        done: list = []

        def send(request, tally, exc=exc, done=done):
            if done:
                raise exc
            done.append(request)

        tally = Tally()
        send_all(chunks(entries([1] * 25), 10, 1000), send, tally, lambda e: "why")
        outcome = tally.outcome()
        assert not outcome.rejected
        assert [(r.index, r.reason) for r in outcome.retry] == [
            (i, "why" if i < 20 else None) for i in range(10, 25)
        ]


def test_an_invalid_request_is_split_so_only_the_entry_at_fault_is_refused():
    def send(request, tally):
        if any(e.index == 3 for e in request):
            raise client_error("InvalidParameterValue", 400, "bad entry")

    tally = Tally()
    send_all(chunks(entries([1] * 6), 10, 1000), send, tally, lambda e: common.explain(e, "Send"))
    outcome = tally.outcome()
    assert [r.index for r in outcome.rejected] == [3] and not outcome.retry
    assert outcome.rejected[0].reason == "Send: InvalidParameterValue (HTTP 400): bad entry"


def test_entry_codes_and_request_errors_are_classified():
    assert common.retryable_entry("InternalError", sender_fault=False)
    assert common.retryable_entry("ThrottlingException", sender_fault=True)
    assert common.retryable_entry("KMSThrottlingException", sender_fault=True)
    assert not common.retryable_entry("InvalidParameterValue", sender_fault=True)
    assert not common.retryable_entry("MalformedDetail", sender_fault=True)
    assert not common.retryable_entry("InvalidParameterValue", sender_fault=False)
    assert common.whole_request_kind(client_error("ThrottlingException")) == "retry"
    assert common.whole_request_kind(client_error("ServiceUnavailable", 503)) == "retry"
    assert common.whole_request_kind(client_error("AccessDeniedException", 400)) == "retry"
    assert common.whole_request_kind(client_error("ValidationException", 400)) == "refused"


def test_errors_are_one_line_with_what_to_check():
    text = common.explain(client_error("SignatureDoesNotMatch", 403, "The request\nsignature..."), "SendMessageBatch to queue q", "eu-west-1")  # fmt: skip
    assert text == (
        "SendMessageBatch to queue q (eu-west-1): SignatureDoesNotMatch (HTTP 403): The request"
        " signature...; the signature does not match: check AWS_SECRET_ACCESS_KEY (it does not"
        " belong to the access key)"
    )
    assert "check AWS_ACCESS_KEY_ID" in common.explain(client_error("InvalidClientTokenId", 403), "x")  # fmt: skip
    assert "IRSA" in common.explain(common.NoCredentials(), "x")


# -- URIs and receivers


def test_uris_become_targets():
    assert (sink("sqs:kube-events").name, sink("sqs:kube-events").fifo) == ("kube-events", False)
    fifo = sink("sqs:arn:aws:sqs:us-east-2:123456789012:ev.fifo")
    assert (fifo.name, fifo.account, fifo.fifo, fifo.access.region) == ("ev.fifo", "123456789012", True, "us-east-2")  # fmt: skip
    url = sink("sqs:https://sqs.ap-south-1.amazonaws.com/123456789012/q1")
    assert (url.queue_url, url.access.region) == ("https://sqs.ap-south-1.amazonaws.com/123456789012/q1", "ap-south-1")  # fmt: skip
    stream = sink("kinesis:arn:aws:kinesis:us-east-2:123456789012:stream/s1")
    assert (stream.stream, stream.access.region) == ({"StreamARN": "arn:aws:kinesis:us-east-2:123456789012:stream/s1"}, "us-east-2")  # fmt: skip
    assert sink("eventbridge:").bus == "default"
    assert sink("cloudwatchlogs:").group == "/kubernetes/events"
    assert sink("sqs:q?endpoint=http://127.0.0.1:4566").describe() == "sqs queue q (eu-west-1, http://127.0.0.1:4566)"  # fmt: skip


def test_the_topic_arn_s_region_wins(caplog):
    caplog.set_level(logging.WARNING)
    built = sink("sns:arn:aws:sns:us-east-1:123456789012:t.fifo?region=us-west-2")
    assert isinstance(built, SnsSink) and built.access.region == "us-east-1" and built.fifo
    assert "region us-west-2 differs from the region in the ARN (us-east-1)" in caplog.text


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("sqs:", "no queue given"),
        ("sqs:/tmp/dump", "queue '/tmp/dump' is not an SQS queue name"),
        ("sns:mytopic", "topic 'mytopic' is not an SNS topic ARN"),
        ("kinesis:a b", "stream 'a b' is not a Kinesis stream name"),
        ("firehose:" + "x" * 70, "is not a Firehose stream name"),
        ("cloudwatch:/k?retention_days=8", "parameter retention_days='8': expected one of CloudWatch's retention periods"),
        ("cloudwatch:/k?log_stream={{ .Nope }}", "parameter log_stream="),
        ("sqs:q?external_id=x", "parameter external_id needs role_arn"),
        ("sqs:q?role_arn=admin", "parameter role_arn='admin': expected an ARN"),
        ("sqs:q?endpoint=localhost:4566", "parameter endpoint='localhost:4566': expected a URL"),
        ("sqs:q?aws_secret_access_key=x", "unknown parameter 'aws_secret_access_key'"),
    ],
)  # fmt: skip
def test_bad_uris_are_one_line(uri, expected):
    with pytest.raises(UsageError) as caught:
        sink(uri)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_no_region_is_one_line(monkeypatch):
    monkeypatch.delenv("AWS_REGION")
    with pytest.raises(UsageError, match=r"no AWS region: give region=\.\.\. or set AWS_REGION"):
        sink("kinesis:s")
    assert sink("sns:arn:aws:sns:us-east-1:123456789012:t").access.region == "us-east-1"


def test_exporter_receivers_are_read_with_their_keys(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent("""\
        route: {routes: [{match: [{receiver: k}, {receiver: e}, {receiver: s}, {receiver: n}, {receiver: w}]}]}
        receivers:
          - name: k
            kinesis: {streamName: events, region: us-west-2, sentUpdateEvent: false, layout: {m: "{{ .Message }}"}}
          - name: e
            eventbridge:
              detailType: deployment
              source: cd
              eventBusName: default
              region: ap-southeast-1
              details: {message: "{{ .Message }}"}
          - name: s
            sqs: {queueName: q.fifo, region: us-west-2}
          - name: n
            sns: {topicARN: "arn:aws:sns:us-east-1:123456789012:t.fifo", MessageGroupId: g1, region: us-west-2}
          - name: w
            cloudwatch: {logGroupName: /k8s/events, logStreamName: "{{ .Namespace }}", retentionInDays: 30, region: eu-north-1}
    """))  # fmt: skip
    built = {s.options.name: s for s, _ in build_sinks([], SinkContext("c", None), load(str(path)))}
    kinesis, bridge, sqs, sns, logs = (built[n] for n in "kesnw")
    assert isinstance(kinesis, KinesisSink) and kinesis.name == "events"
    assert (kinesis.access.region, kinesis.options.sent_update_event) == ("us-west-2", False)
    assert kinesis.options.layout.tree == {"m": "{{ .Message }}"}
    assert isinstance(bridge, EventBridgeSink) and bridge.access.region == "ap-southeast-1"
    assert (bridge.options.source, bridge.options.detail_type, bridge.bus) == ("cd", "deployment", "default")  # fmt: skip
    assert bridge.options.layout.tree == {"message": "{{ .Message }}"}
    assert isinstance(sqs, SqsSink) and sqs.fifo and sqs.options.sent_update_event
    assert (sns.options.message_group_id, sns.access.region) == ("g1", "us-east-1")
    assert isinstance(logs, CloudWatchSink) and logs.group == "/k8s/events"
    assert (logs.options.retention_days, logs.access.region) == (30, "eu-north-1")
    assert logs.stream_name(sample_events()[0]) == "default"  # the Event's own namespace


def test_entries_carry_what_the_services_need():
    ev = event(uid="u-1", count=4, watch_type="MODIFIED")
    fifo = sink("sqs:q.fifo", cluster="prod").entry(0, ev)
    assert (fifo.item["MessageGroupId"], fifo.item["MessageDeduplicationId"]) == ("u-1", "u-1.4")
    assert fifo.item["MessageAttributes"]["version_id"] == {"DataType": "String", "StringValue": "u-1.4"}  # fmt: skip
    assert orjson.loads(fifo.item["MessageBody"])["orchestrator"]["cluster"] == {"name": "prod"}
    assert "MessageGroupId" not in sink("sqs:q").entry(0, ev).item
    assert sink("sqs:q?sent_update_event=false").entry(0, ev) is None
    assert sink("sqs:q?sent_update_event=false").entry(0, replace(ev, watch_type="ADDED"))
    record = sink("kinesis:s").entry(0, ev)
    assert record.item["PartitionKey"] == "u-1" and record.order == "u-1"
    assert sink("firehose:f").entry(0, ev).item["Data"].endswith(b"}\n")
    assert sink("firehose:f?newline=false").entry(0, ev).item["Data"].endswith(b"}")
    bridge = sink("eventbridge:?source=k8s").entry(0, ev).item
    assert (bridge["Source"], bridge["DetailType"], bridge["Time"].isoformat()) == (
        "k8s", "Kubernetes Event", "2024-05-01T12:00:00+00:00",
    )  # fmt: skip
    assert sink("cloudwatch:/g").stream_name(ev) == "shop/Pod/web-1"
    node = sample_events()[1]
    assert sink("cloudwatch:/g").stream_name(node) == "_cluster/Node/node-a"
    assert sink("cloudwatch:/g?log_stream=a:{{ .Reason }}*").stream_name(ev) == f"a_{ev.reason}_"


def test_cloudwatch_refuses_events_aws_would_refuse_before_sending():
    logs = sink("cloudwatch:/g")
    logs.client = object()  # never called: every event is refused before a request is made
    outcome = logs.write([sample_events()[0]])  # from 2024: older than 14 days
    assert [r.reason for r in outcome.rejected] == ["cloudwatch: CloudWatch Logs refuses events older than 14 days"]  # fmt: skip

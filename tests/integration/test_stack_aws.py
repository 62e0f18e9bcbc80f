"""The test stack's AWS API: moto behind scripts/stack_aws_proxy.py, which checks SigV4.

One call and a read back for each service the sinks use, with botocore (the client boto3 wraps),
then what the proxy adds: refusals in each protocol's error shape, and injected faults.
"""

from __future__ import annotations

import functools
import json
import time
import urllib.request
import uuid
from typing import Any

import pytest

from tests.support.common import stack_up


@functools.cache
def aws_env() -> dict[str, str]:
    return stack_up("aws")


def client(
    service: str, *, secret: str = "", key: str = "", attempts: int = 1, unsigned: bool = False
):
    import botocore
    import botocore.session
    from botocore.config import Config

    env = aws_env()
    config = Config(retries={"mode": "standard", "total_max_attempts": attempts})
    if unsigned:
        config = config.merge(Config(signature_version=botocore.UNSIGNED))
    return botocore.session.Session().create_client(
        service,
        region_name=env["AWS_REGION"],
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=key or env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret or env["AWS_SECRET_ACCESS_KEY"],
        config=config,
    )


def admin(method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(aws_env()["AWS_STACK_ADMIN_URL"] + path, data, method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def name(suffix: str = "") -> str:
    return f"t-{uuid.uuid4().hex[:10]}{suffix}"


def receive_all(queue_url: str, count: int) -> list[dict]:
    """The queue's messages (deleted once read): `count` of them, then whatever else arrives
    within a second."""
    sqs, got = client("sqs"), []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        wait = 1 if len(got) >= count else 5
        reply = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait
        )
        for message in reply.get("Messages", []):
            got.append(message)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        if not reply.get("Messages") and len(got) >= count:
            break
    return got


def fifo_queue(**attributes: str) -> tuple[str, str]:
    sqs = client("sqs")
    attributes["FifoQueue"] = "true"
    url = sqs.create_queue(QueueName=name(".fifo"), Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return url, arn["QueueArn"]


def test_sqs_fifo_send_message_batch_and_receive() -> None:
    url, _ = fifo_queue()
    entries = [
        {"Id": f"e{i}", "MessageBody": f"event {i}", "MessageGroupId": "ns-a",
         "MessageDeduplicationId": f"uid-{i}"}
        for i in range(3)
    ]  # fmt: skip
    reply = client("sqs").send_message_batch(QueueUrl=url, Entries=entries)
    assert [e["Id"] for e in reply["Successful"]] == ["e0", "e1", "e2"] and not reply.get("Failed")
    again = client("sqs").send_message_batch(QueueUrl=url, Entries=entries[:1])  # same dedup id
    assert [e["Id"] for e in again["Successful"]] == ["e0"]
    assert [m["Body"] for m in receive_all(url, 3)] == ["event 0", "event 1", "event 2"]


def test_sns_fifo_publish_batch_to_a_subscribed_queue() -> None:
    sns = client("sns")
    topic = sns.create_topic(Name=name(".fifo"), Attributes={"FifoTopic": "true"})["TopicArn"]
    url, arn = fifo_queue()
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn,
                  Attributes={"RawMessageDelivery": "true"})  # fmt: skip
    reply = sns.publish_batch(
        TopicArn=topic,
        PublishBatchRequestEntries=[
            {"Id": f"e{i}", "Message": f"event {i}", "MessageGroupId": "ns-a",
             "MessageDeduplicationId": f"uid-{i}"}
            for i in range(2)
        ],
    )  # fmt: skip
    assert [e["Id"] for e in reply["Successful"]] == ["e0", "e1"] and reply["Failed"] == []
    assert [m["Body"] for m in receive_all(url, 2)] == ["event 0", "event 1"]


def test_kinesis_put_records_and_get_records() -> None:
    kinesis, stream = client("kinesis"), name()
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    reply = kinesis.put_records(
        StreamName=stream,
        Records=[{"Data": f"event {i}".encode(), "PartitionKey": "uid"} for i in range(2)],
    )
    assert reply["FailedRecordCount"] == 0 and all("SequenceNumber" in r for r in reply["Records"])
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator)["Records"]
    assert [r["Data"] for r in records] == [b"event 0", b"event 1"]


def test_firehose_put_record_batch_lands_in_s3() -> None:
    s3, firehose, bucket, stream = client("s3"), client("firehose"), name(), name()
    s3.create_bucket(Bucket=bucket)
    firehose.create_delivery_stream(
        DeliveryStreamName=stream,
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": "events/",
        },
    )
    reply = firehose.put_record_batch(
        DeliveryStreamName=stream, Records=[{"Data": b"event 0\n"}, {"Data": b"event 1\n"}]
    )
    assert reply["FailedPutCount"] == 0 and len(reply["RequestResponses"]) == 2
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert len(keys) == 1 and keys[0].startswith("events/")
    assert s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read() == b"event 0\nevent 1\n"


def test_eventbridge_put_events_reach_a_rule_target_queue() -> None:
    events, rule, source = client("events"), name(), f"kes.{uuid.uuid4().hex[:8]}"
    url, arn = fifo_queue(ContentBasedDeduplication="true")  # as AWS requires for EventBridge
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": [source]}))
    events.put_targets(
        Rule=rule, Targets=[{"Id": "q", "Arn": arn, "SqsParameters": {"MessageGroupId": "g"}}]
    )
    reply = events.put_events(
        Entries=[{"Source": source, "DetailType": "Kubernetes Event",
                  "Detail": json.dumps({"reason": "BackOff"})}]
    )  # fmt: skip
    assert reply["FailedEntryCount"] == 0
    (message,) = receive_all(url, 1)
    body = json.loads(message["Body"])
    assert (body["source"], body["detail-type"], body["detail"]) == (
        source, "Kubernetes Event", {"reason": "BackOff"}
    )  # fmt: skip


def test_cloudwatch_logs_put_and_get_log_events() -> None:
    logs, group = client("logs"), f"/kes/{name()}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    now = int(time.time() * 1000)
    events = [{"timestamp": now + i, "message": f"event {i}"} for i in range(2)]
    reply = logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=events)
    assert "rejectedLogEventsInfo" not in reply
    got = logs.get_log_events(logGroupName=group, logStreamName="s", startFromHead=True)
    assert [(e["timestamp"], e["message"]) for e in got["events"]] == [
        (e["timestamp"], e["message"]) for e in events
    ]


JSON_REFUSALS = (
    "InvalidSignatureException",
    "UnrecognizedClientException",
    "MissingAuthenticationTokenException",
)
QUERY_REFUSALS = ("SignatureDoesNotMatch", "InvalidClientTokenId", "MissingAuthenticationToken")
LIST_CALLS = {  # a call, and the codes for: a wrong secret, an unknown key, no signature
    "sqs": ("list_queues", *QUERY_REFUSALS),
    "sns": ("list_topics", *QUERY_REFUSALS),
    "kinesis": ("list_streams", *JSON_REFUSALS),
    "firehose": ("list_delivery_streams", *JSON_REFUSALS),
    "events": ("list_event_buses", *JSON_REFUSALS),
    "logs": ("describe_log_groups", *JSON_REFUSALS),
    "s3": ("list_buckets", "SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"),
}  # fmt: skip


@pytest.mark.parametrize("service", sorted(LIST_CALLS))
def test_wrong_secret_or_key_or_no_signature_is_refused_with_403(service: str) -> None:
    from botocore.exceptions import ClientError

    call, *codes = LIST_CALLS[service]
    getattr(client(service), call)()  # the right keys work
    secret = aws_env()["AWS_SECRET_ACCESS_KEY"][::-1]
    wrong = [{"secret": secret}, {"key": "KESWRONGTESTKEYID000"}, {"unsigned": True}]
    for kwargs, code in zip(wrong, codes, strict=True):
        with pytest.raises(ClientError) as caught:
            getattr(client(service, **kwargs), call)()
        error = caught.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert error["Error"]["Code"] == code, error


def test_fault_fails_one_entry_of_an_sqs_batch() -> None:
    sqs = client("sqs")
    queue = name()
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    admin("POST", "/_fault", {"service": "sqs", "action": "SendMessageBatch", "match": queue,
                              "fail_entries": [1], "error_code": "InternalError"})  # fmt: skip
    entries = [{"Id": f"e{i}", "MessageBody": f"event {i}"} for i in range(3)]
    reply = sqs.send_message_batch(QueueUrl=url, Entries=entries)
    assert sorted(e["Id"] for e in reply["Successful"]) == ["e0", "e2"]
    assert [(f["Id"], f["Code"], f["SenderFault"]) for f in reply["Failed"]] == [
        ("e1", "InternalError", False)
    ]
    assert sorted(m["Body"] for m in receive_all(url, 2)) == ["event 0", "event 2"]
    # The fault was for one request: the retry of the failed entry goes through.
    retry = sqs.send_message_batch(QueueUrl=url, Entries=entries[1:2])
    assert [e["Id"] for e in retry["Successful"]] == ["e1"] and not retry.get("Failed")


def test_fault_fails_one_entry_in_each_batch_api_shape() -> None:
    stream, topic_name, group = name(), name(), f"/kes/{name()}"
    client("kinesis").create_stream(StreamName=stream, ShardCount=1)
    topic = client("sns").create_topic(Name=topic_name)["TopicArn"]
    client("logs").create_log_group(logGroupName=group)
    client("logs").create_log_stream(logGroupName=group, logStreamName="s")
    for service, action, match, code in (
        ("kinesis", "PutRecords", stream, "ProvisionedThroughputExceededException"),
        ("sns", "PublishBatch", topic_name, "Throttled"),
        ("logs", "PutLogEvents", group, "tooNewLogEventStartIndex"),
    ):
        admin("POST", "/_fault", {"service": service, "action": action, "match": match,
                                  "fail_entries": [1], "error_code": code})  # fmt: skip
    kinesis = client("kinesis").put_records(
        StreamName=stream, Records=[{"Data": b"x", "PartitionKey": "k"} for _ in range(3)]
    )
    assert kinesis["FailedRecordCount"] == 1
    assert ["ErrorCode" in r for r in kinesis["Records"]] == [False, True, False]
    assert kinesis["Records"][1]["ErrorCode"] == "ProvisionedThroughputExceededException"
    sns = client("sns").publish_batch(
        TopicArn=topic,
        PublishBatchRequestEntries=[{"Id": f"e{i}", "Message": "x"} for i in range(3)],
    )
    assert sorted(e["Id"] for e in sns["Successful"]) == ["e0", "e2"]
    assert [(f["Id"], f["Code"]) for f in sns["Failed"]] == [("e1", "Throttled")]
    now = int(time.time() * 1000)
    logs = client("logs").put_log_events(
        logGroupName=group, logStreamName="s",
        logEvents=[{"timestamp": now + i, "message": f"event {i}"} for i in range(3)],
    )  # fmt: skip
    assert logs["rejectedLogEventsInfo"] == {"tooNewLogEventStartIndex": 1}
    got = client("logs").get_log_events(logGroupName=group, logStreamName="s")["events"]
    assert [e["message"] for e in got] == ["event 0"]


def test_fault_throttles_a_whole_request_once() -> None:
    from botocore.exceptions import ClientError

    stream = name()
    client("kinesis").create_stream(StreamName=stream, ShardCount=1)
    record = {"StreamName": stream, "Records": [{"Data": b"x", "PartitionKey": "k"}]}
    fault = {"service": "kinesis", "action": "PutRecords", "match": stream,
             "error_code": "ProvisionedThroughputExceededException", "times": 1}  # fmt: skip
    admin("POST", "/_fault", fault)
    with pytest.raises(ClientError) as caught:
        client("kinesis").put_records(**record)
    assert caught.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # botocore's standard retry mode retries throttling: with a second attempt it gets through.
    admin("POST", "/_fault", fault)
    reply = client("kinesis", attempts=2).put_records(**record)
    assert reply["FailedRecordCount"] == 0 and reply["ResponseMetadata"]["RetryAttempts"] == 1
    assert not [f for f in admin("GET", "/_fault") if f.get("match") == stream]

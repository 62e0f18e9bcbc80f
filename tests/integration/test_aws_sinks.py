"""The AWS sinks against the stack's AWS API (moto behind the SigV4-checking proxy), fed by the
real kube-apiserver.

Every test makes its own queues, topics, streams and groups (``t-<random>``) and reads them back
with botocore as a consumer would: SQS ReceiveMessage, SNS through a subscribed SQS queue,
Kinesis GetRecords, Firehose through its S3 destination, EventBridge through a rule's SQS
target, CloudWatch GetLogEvents. What is shown: the body is the documented event document (or
the layout's) with the attributes each sink documents; FIFO queues and topics keep one copy of
each version across a restart, a 410 and ``--start=all``, while Kinesis gets exactly the
documented copies; one entry failed by the proxy is the only one sent again (its /_requests);
an over-limit message is cut or dead-lettered; a wrong secret is one clear line; and
kubernetes-event-exporter's README configs deliver as written, with only AWS_ENDPOINT_URL,
the region's credentials in the environment, and a route added (the README snippets have none).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_stack_aws import admin, aws_env, client, fifo_queue, name
from tests.support.common import ROOT, free_port, wait_for
from tests.support.kube import bump, core_event, etcd_compact, now

CORPUS = ROOT / "tests" / "corpus" / "exporter"


@pytest.fixture
def run(shipper_factory, kube_env, namespace, tmp_path):
    """``run(sink_uri, *flags, env=...)`` -> a shipper for the test's namespace (not started)."""

    def make(sink: str | None, *flags: str, env: dict[str, str] | None = None) -> Any:
        args = [
            f"--source=kubernetes:?auth={kube_env['KUBECONFIG']}&namespaces={namespace}",
            f"--state-dir={tmp_path / 'state'}",
            "--cluster-name=stack",
            *([f"--sink={sink}"] if sink else []),
            *flags,
        ]
        return shipper_factory(args, {**aws_env(), **(env or {})})

    return make


def shipped(process: Any, sink: str, outcome: str = "shipped") -> float:
    return process.metric("kube_event_shipper_sink_events_total", sink=sink, outcome=outcome)


def version_id(obj: dict[str, Any]) -> str:
    return f"{obj['metadata']['uid']}.{obj.get('count') or 1}"


def doc_version(doc: dict[str, Any]) -> str:
    event = doc["kubernetes"]["event"]
    return f"{event['metadata']['uid']}.{event['count']}"


def peek_all(queue_url: str, count: int, sqs: Any = None) -> list[dict]:
    """Every message in the queue, left there (visibility 0 would return them again: each is
    received once, then hidden for the rest of the test)."""
    sqs = sqs or client("sqs")
    got: dict[str, dict] = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        reply = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
            VisibilityTimeout=300, MessageAttributeNames=["All"], AttributeNames=["All"],
        )  # fmt: skip
        for message in reply.get("Messages", []):
            got[message["MessageId"]] = message
        if not reply.get("Messages") and len(got) >= count:
            break
    return list(got.values())


def queue() -> str:
    return client("sqs").create_queue(QueueName=name())["QueueUrl"]


def queue_arn(url: str, sqs: Any = None) -> str:
    sqs = sqs or client("sqs")
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]  # fmt: skip


def requests(action: str) -> list[dict]:
    return [r for r in admin("GET", "/_requests") if r["action"] == action]


def kinesis_records(stream: str, kinesis: Any = None) -> list[dict]:
    kinesis = kinesis or client("kinesis")
    out = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            reply = kinesis.get_records(ShardIterator=iterator, Limit=10000)
            out += reply["Records"]
            if not reply["Records"]:
                break
            iterator = reply.get("NextShardIterator")
    return out


def check_document(doc: dict[str, Any], obj: dict[str, Any], namespace: str) -> None:
    event = doc["kubernetes"]["event"]
    assert event["metadata"]["uid"] == obj["metadata"]["uid"]
    assert event["metadata"]["resource_version"] == obj["metadata"]["resourceVersion"]
    assert (event["reason"], event["type"], doc["message"]) == (obj["reason"], obj["type"], obj["message"])  # fmt: skip
    assert event["involved_object"]["namespace"] == namespace
    assert doc["orchestrator"]["cluster"] == {"name": "stack"}
    assert doc["event"]["dataset"] == "kubernetes.event"


# -- SQS and SNS: FIFO deduplicates


def test_sqs_fifo_one_copy_per_version_across_restart_410_and_start_all(
    run, kube_api, kube_env, namespace
):
    url, _ = fifo_queue()
    queue_name = url.rsplit("/", 1)[1]
    shipper = run(f"sqs:{queue_name}?flush_interval=0.2s").start()
    made = [core_event(kube_api, namespace, obj=f"p{i}", message=f"m{i} 🔥") for i in range(2)]
    first = made[0]["metadata"]["name"]
    updates = [bump(kube_api, namespace, first, c, now(c)) for c in (2, 3)]
    wait_for(lambda: shipped(shipper, "sqs") == 4, what="four versions")
    assert shipper.stop() == 0

    during = core_event(kube_api, namespace, obj="q0")
    etcd_compact(kube_env["ETCD_URL"])
    shipper.start()
    wait_for(lambda: shipped(shipper, "sqs") == 1, what="the version made while stopped")
    assert shipper.stop() == 0
    # (a 410 when the API server's watch cache no longer holds the checkpoint's version; it
    # may still hold it right after the compaction, and then the watch resumes without one)
    shipper.start("--start=all")  # re-sends every retained event: SQS drops them as duplicates
    wait_for(lambda: shipped(shipper, "sqs") == 3, what="the three events re-sent")
    assert shipper.stop() == 0

    messages = peek_all(url, 5)
    versions = Counter(m["MessageAttributes"]["version_id"]["StringValue"] for m in messages)
    assert versions == Counter({version_id(o): 1 for o in [*made, *updates, during]})
    for message in messages:
        doc = json.loads(message["Body"])
        vid = doc_version(doc)
        assert message["MessageAttributes"]["version_id"]["StringValue"] == vid
        assert message["Attributes"]["MessageGroupId"] == doc["kubernetes"]["event"]["metadata"]["uid"]  # fmt: skip
        assert message["Attributes"]["MessageDeduplicationId"] == vid
        attrs = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
        assert attrs == {"version_id": vid, "type": "Warning", "reason": "BackOff",
                         "namespace": namespace, "kind": "Pod", "cluster": "stack"}  # fmt: skip
    latest = next(json.loads(m["Body"]) for m in messages if json.loads(m["Body"])["kubernetes"]["event"]["count"] == 3)  # fmt: skip
    check_document(latest, updates[-1], namespace)
    assert latest["message"] == "m0 🔥"
    # in order per Event: a FIFO group (the uid) hands its versions out in the order sent
    counts = [json.loads(m["Body"])["kubernetes"]["event"]["count"] for m in messages
              if m["Attributes"]["MessageGroupId"] == made[0]["metadata"]["uid"]]  # fmt: skip
    assert counts == [1, 2, 3]


def test_sns_fifo_topic_to_a_fifo_queue_one_copy_per_version(run, kube_api, namespace):
    sns = client("sns")
    topic = sns.create_topic(Name=name(".fifo"), Attributes={"FifoTopic": "true"})["TopicArn"]
    url, arn = fifo_queue()
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn,
                  Attributes={"RawMessageDelivery": "true"})  # fmt: skip
    shipper = run(f"sns:{topic}?flush_interval=0.2s").start()
    made = [core_event(kube_api, namespace, obj=f"s{i}", type_="Normal", reason="Pulled") for i in range(3)]  # fmt: skip
    wait_for(lambda: shipped(shipper, "sns") == 3, what="three published")
    assert shipper.stop() == 0
    shipper.start("--start=all")
    wait_for(lambda: shipped(shipper, "sns") == 3, what="three published again")
    assert shipper.stop() == 0
    messages = peek_all(url, 3)
    assert sorted(m["MessageAttributes"]["version_id"]["StringValue"] for m in messages) == sorted(
        version_id(o) for o in made
    )
    for message in messages:
        doc = json.loads(message["Body"])
        obj = next(o for o in made if o["metadata"]["uid"] == doc["kubernetes"]["event"]["metadata"]["uid"])  # fmt: skip
        check_document(doc, obj, namespace)
        assert message["MessageAttributes"]["type"]["StringValue"] == "Normal"


def test_sns_standard_topic_with_a_layout(run, kube_api, namespace):
    sns = client("sns")
    topic = sns.create_topic(Name=name())["TopicArn"]
    url = queue()
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn(url),
                  Attributes={"RawMessageDelivery": "true"})  # fmt: skip
    layout = '{"reason":"{{ .Reason }}","msg":"{{ .Message }}","uid":"{{ .UID }}"}'
    shipper = run(f"sns:{topic}?flush_interval=0.2s&layout={layout}").start()
    made = core_event(kube_api, namespace, obj="l0", message="<b>&</b>")
    [message] = peek_all(url, 1)
    assert json.loads(message["Body"]) == {"msg": "<b>&</b>", "reason": "BackOff", "uid": made["metadata"]["uid"]}  # fmt: skip
    assert "\\u003cb\\u003e" in message["Body"]  # Go's JSON escaping, as the original
    assert shipper.stop() == 0


# -- Kinesis: at least once, the documented copies


def test_kinesis_records_keyed_by_uid_and_only_documented_copies(run, kube_api, kube_env, namespace):  # fmt: skip
    stream = name()
    client("kinesis").create_stream(StreamName=stream, ShardCount=2)
    shipper = run(f"kinesis:{stream}?flush_interval=0.2s").start()
    made = [core_event(kube_api, namespace, obj=f"k{i}") for i in range(3)]
    update = bump(kube_api, namespace, made[0]["metadata"]["name"], 2, now(2))
    wait_for(lambda: shipped(shipper, "kinesis") == 4, what="four records")
    assert shipper.stop() == 0
    etcd_compact(kube_env["ETCD_URL"])
    shipper.start()  # a 410: nothing is new, nothing is sent
    time.sleep(2)
    assert shipped(shipper, "kinesis") == 0
    assert shipper.stop() == 0
    shipper.start("--start=all")  # the documented copies: the current version of each event
    wait_for(lambda: shipped(shipper, "kinesis") == 3, what="three re-sent")
    assert shipper.stop() == 0

    records = kinesis_records(stream)
    docs = [json.loads(r["Data"]) for r in records]
    for record, doc in zip(records, docs, strict=True):
        assert record["PartitionKey"] == doc["kubernetes"]["event"]["metadata"]["uid"]
    current = {version_id(o) for o in (update, made[1], made[2])}
    assert Counter(doc_version(d) for d in docs) == Counter(
        {version_id(made[0]): 1, **{v: 2 for v in current}}
    )
    mine = [d["kubernetes"]["event"]["count"] for d in docs
            if d["kubernetes"]["event"]["metadata"]["uid"] == made[0]["metadata"]["uid"]]  # fmt: skip
    assert mine == [1, 2, 2]  # one shard, in the order sent
    check_document(docs[[doc_version(d) for d in docs].index(version_id(update))], update, namespace)  # fmt: skip


def cloudwatch_target() -> tuple[str, Any]:
    group = f"/kes/{name()}"

    def read(n: int) -> list[dict]:
        logs = client("logs")
        streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
        return [json.loads(e["message"]) for s in streams
                for e in logs.get_log_events(logGroupName=group, logStreamName=s["logStreamName"], startFromHead=True)["events"]]  # fmt: skip

    return f"cloudwatch:{group}", read


@pytest.mark.parametrize("sink", ["sns", "sqs", "firehose", "eventbridge", "cloudwatch"])
def test_restart_410_and_start_all_add_only_the_documented_copies(sink, run, kube_api, kube_env, namespace):  # fmt: skip
    """Services without deduplication: a restart and a 410 re-list send nothing again; only
    ``--start=all`` re-sends, once, the current version of each event (as the README says)."""
    uri, read = cloudwatch_target() if sink == "cloudwatch" else target(sink)[::2]
    shipper = run(f"{uri}{'&' if '?' in uri else '?'}flush_interval=0.2s").start()
    made = [core_event(kube_api, namespace, obj=f"r{i}") for i in range(3)]
    update = bump(kube_api, namespace, made[0]["metadata"]["name"], 2, now(2))
    wait_for(lambda: shipped(shipper, sink) == 4, what="four versions")
    assert shipper.stop() == 0
    shipper.start()  # a restart: nothing is new
    time.sleep(2)
    assert shipped(shipper, sink) == 0
    assert shipper.stop() == 0
    etcd_compact(kube_env["ETCD_URL"])
    shipper.start()  # a 410 and a re-list: nothing is new
    time.sleep(2)
    assert shipped(shipper, sink) == 0
    assert shipper.stop() == 0
    shipper.start("--start=all")
    wait_for(lambda: shipped(shipper, sink) == 3, what="three re-sent")
    assert shipper.stop() == 0
    current = {version_id(o) for o in (update, made[1], made[2])}
    expected = Counter({version_id(made[0]): 1, **{v: 2 for v in current}})
    wait_for(lambda: Counter(doc_version(d) for d in read(7)) == expected, timeout=30,
             what=f"{dict(expected)} in the service")  # fmt: skip


# -- Firehose, EventBridge, CloudWatch Logs


def test_firehose_records_land_in_s3_as_json_lines(run, kube_api, namespace):
    s3, bucket, stream = client("s3"), name(), name()
    s3.create_bucket(Bucket=bucket)
    client("firehose").create_delivery_stream(
        DeliveryStreamName=stream,
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{bucket}", "Prefix": "events/",
        },
    )  # fmt: skip
    made = [core_event(kube_api, namespace, obj=f"f{i}") for i in range(3)]
    shipper = run(f"firehose:{stream}").start()
    wait_for(lambda: shipped(shipper, "firehose") == 3, what="three records")
    assert shipper.stop() == 0
    body = b"".join(
        s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        for o in s3.list_objects_v2(Bucket=bucket)["Contents"]
    )
    lines = body.decode().splitlines()
    assert body.endswith(b"\n") and len(lines) == 3
    docs = {json.loads(line)["kubernetes"]["event"]["metadata"]["uid"]: json.loads(line) for line in lines}  # fmt: skip
    for obj in made:
        check_document(docs[obj["metadata"]["uid"]], obj, namespace)


def test_eventbridge_events_reach_a_rule_s_queue(run, kube_api, namespace):
    events, rule, source = client("events"), name(), f"kes.{uuid.uuid4().hex[:8]}"
    url = queue()
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": [source], "detail": {"log": {"level": ["warning"]}}}))  # fmt: skip
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": queue_arn(url)}])
    warning = core_event(kube_api, namespace, obj="e0", at=now(-30))
    core_event(kube_api, namespace, obj="e1", type_="Normal", reason="Pulled")  # the rule drops it
    shipper = run(f"eventbridge:default?source={source}&detail_type=K8s%20Event").start()
    wait_for(lambda: shipped(shipper, "eventbridge") == 2, what="two put")
    assert shipper.stop() == 0
    [message] = peek_all(url, 1)
    envelope = json.loads(message["Body"])
    assert (envelope["source"], envelope["detail-type"]) == (source, "K8s Event")
    assert envelope["time"] == warning["lastTimestamp"]  # the occurrence, not the send
    check_document(envelope["detail"], warning, namespace)


def test_cloudwatch_one_stream_per_pod_in_time_order(run, kube_api, namespace):
    group = f"/kes/{name()}"
    web = [core_event(kube_api, namespace, obj="web-1", at=now(-60 + i), message=f"w{i}") for i in range(3)]  # fmt: skip
    db = core_event(kube_api, namespace, obj="db-0", at=now(-90))
    shipper = run(f"cloudwatch:{group}?retention_days=7").start()
    wait_for(lambda: shipped(shipper, "cloudwatch") == 4, what="four log events")
    assert shipper.stop() == 0
    logs = client("logs")
    [described] = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert described.get("retentionInDays") == 7
    streams = sorted(s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"])  # fmt: skip
    assert streams == sorted([f"{namespace}/Pod/web-1", f"{namespace}/Pod/db-0"])
    got = logs.get_log_events(logGroupName=group, logStreamName=f"{namespace}/Pod/web-1", startFromHead=True)["events"]  # fmt: skip
    assert [json.loads(e["message"])["message"] for e in got] == ["w0", "w1", "w2"]
    for event, obj in zip(got, web, strict=True):
        check_document(json.loads(event["message"]), obj, namespace)
        assert event["timestamp"] == int(time.mktime(time.strptime(obj["lastTimestamp"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone) * 1000  # fmt: skip
    [other] = logs.get_log_events(logGroupName=group, logStreamName=f"{namespace}/Pod/db-0")["events"]  # fmt: skip
    check_document(json.loads(other["message"]), db, namespace)


# -- one failed entry is the only one sent again


FAULTS = {  # sink -> (service, action, error code of one failed entry)
    "sqs": ("sqs", "SendMessageBatch", "InternalError"),
    "sns": ("sns", "PublishBatch", "Throttled"),
    "kinesis": ("kinesis", "PutRecords", "ProvisionedThroughputExceededException"),
    "firehose": ("firehose", "PutRecordBatch", "ServiceUnavailableException"),
    "eventbridge": ("events", "PutEvents", "ThrottlingException"),
}


def target(sink: str) -> tuple[str, str, Any]:
    """(the --sink URI, the name the proxy matches on, a reader of what arrived: docs)."""
    resource = name()
    if sink == "sqs":
        url = client("sqs").create_queue(QueueName=resource)["QueueUrl"]
        return f"sqs:{resource}", resource, lambda n: [json.loads(m["Body"]) for m in peek_all(url, n)]  # fmt: skip
    if sink == "sns":
        topic = client("sns").create_topic(Name=resource)["TopicArn"]
        url = queue()
        client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn(url),
                                Attributes={"RawMessageDelivery": "true"})  # fmt: skip
        return f"sns:{topic}", resource, lambda n: [json.loads(m["Body"]) for m in peek_all(url, n)]  # fmt: skip
    if sink == "kinesis":
        client("kinesis").create_stream(StreamName=resource, ShardCount=1)
        return f"kinesis:{resource}", resource, lambda n: [json.loads(r["Data"]) for r in kinesis_records(resource)]  # fmt: skip
    if sink == "firehose":
        client("s3").create_bucket(Bucket=resource)
        client("firehose").create_delivery_stream(
            DeliveryStreamName=resource,
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                "BucketARN": f"arn:aws:s3:::{resource}",
            },
        )

        def read(n: int) -> list[dict]:
            s3 = client("s3")
            objects = s3.list_objects_v2(Bucket=resource).get("Contents", [])
            body = b"".join(s3.get_object(Bucket=resource, Key=o["Key"])["Body"].read() for o in objects)  # fmt: skip
            return [json.loads(line) for line in body.splitlines()]

        return f"firehose:{resource}", resource, read
    source = f"kes.{resource}"
    url = queue()
    client("events").put_rule(Name=resource, EventPattern=json.dumps({"source": [source]}))
    client("events").put_targets(Rule=resource, Targets=[{"Id": "q", "Arn": queue_arn(url)}])
    return f"eventbridge:?source={source}", source, lambda n: [json.loads(m["Body"])["detail"] for m in peek_all(url, n)]  # fmt: skip


@pytest.mark.parametrize("sink", sorted(FAULTS))
def test_one_failed_entry_is_the_only_one_sent_again(sink, run, kube_api, namespace):
    uri, match, read = target(sink)
    service, action, code = FAULTS[sink]
    made = [core_event(kube_api, namespace, obj=f"x{i}") for i in range(3)]
    admin("DELETE", "/_requests")
    admin("POST", "/_fault", {"service": service, "action": action, "match": match,
                              "fail_entries": [1], "error_code": code})  # fmt: skip
    shipper = run(f"{uri}&flush_interval=1s&max_backoff=1s" if "?" in uri else f"{uri}?flush_interval=1s&max_backoff=1s").start()  # fmt: skip
    wait_for(lambda: shipped(shipper, sink) == 3, what="three shipped")
    assert shipped(shipper, sink, "retried") == 1
    assert shipped(shipper, sink, "dead_lettered") == 0
    assert shipper.stop() == 0
    calls = requests(action)
    assert [c["fault"] for c in calls] == [True, False], calls  # the batch, then the one entry
    docs = read(3)
    assert sorted(doc_version(d) for d in docs) == sorted(version_id(o) for o in made)  # once each
    line = next(line for line in shipper.stderr().splitlines() if "could not write" in line)
    assert f"Sink {sink} could not write 1 events (" in line and code in line, line


def test_cloudwatch_events_it_rejects_are_dead_lettered(run, kube_api, namespace, tmp_path):
    group = f"/kes/{name()}"
    made = [core_event(kube_api, namespace, obj="c0", at=now(-10 + i), message=f"c{i}") for i in range(3)]  # fmt: skip
    admin("POST", "/_fault", {"service": "logs", "action": "PutLogEvents", "match": group,
                              "fail_entries": [0], "error_code": "tooOldLogEventEndIndex"})  # fmt: skip
    shipper = run(f"cloudwatch:{group}?log_stream=all").start()
    wait_for(lambda: shipped(shipper, "cloudwatch") == 2, what="two written")
    assert shipped(shipper, "cloudwatch", "dead_lettered") == 1
    assert shipper.stop() == 0
    got = client("logs").get_log_events(logGroupName=group, logStreamName="all", startFromHead=True)["events"]  # fmt: skip
    assert [json.loads(e["message"])["message"] for e in got] == ["c1", "c2"]
    [letter] = (tmp_path / "state" / "dead-letters" / "cloudwatch.jsonl").read_text().splitlines()
    letter = json.loads(letter)
    assert letter["document"]["message"] == "c0" and "older than 14 days" in letter["reason"]
    assert made


# -- over the limit, wrong secrets


def test_an_sqs_message_over_256_kib_is_cut_and_a_layout_body_dead_lettered(run, kube_api, namespace, tmp_path):  # fmt: skip
    url = queue()
    big = core_event(
        kube_api, namespace, obj="big", message="é" * 150_000 + "TAIL"
    )  # 300,004 bytes
    small = core_event(kube_api, namespace, obj="small")
    shipper = run(f"sqs:{url.rsplit('/', 1)[1]}").start()
    wait_for(lambda: shipped(shipper, "sqs") == 2, what="two sent")
    assert shipper.stop() == 0
    messages = {json.loads(m["Body"])["kubernetes"]["event"]["metadata"]["uid"]: m for m in peek_all(url, 2)}  # fmt: skip
    cut = messages[big["metadata"]["uid"]]
    assert len(cut["Body"].encode()) <= 262_144
    text = json.loads(cut["Body"])["message"]
    assert text.startswith("éé") and "TAIL" not in text
    assert text.endswith(" bytes left out]") and "[message cut by kube-event-shipper: " in text
    assert small["metadata"]["uid"] in messages

    layout = run(f"sqs:{url.rsplit('/', 1)[1]}?name=sqs2&layout=" + '{"m":"{{ .Message }}"}', "--start=all").start()  # fmt: skip
    wait_for(lambda: shipped(layout, "sqs2", "dead_lettered") == 1, what="one dead letter")
    wait_for(lambda: shipped(layout, "sqs2") == 1, what="the small one")
    assert layout.stop() == 0
    [letter] = (tmp_path / "state" / "dead-letters" / "sqs2.jsonl").read_text().splitlines()
    assert "the layout's body is" in json.loads(letter)["reason"]


def test_a_wrong_secret_is_one_clear_line(run, kube_api, namespace):
    url = queue()
    secret = "wrong-" + aws_env()["AWS_SECRET_ACCESS_KEY"][::-1]
    core_event(kube_api, namespace, obj="w0")
    wrong = run(f"sqs:{url.rsplit('/', 1)[1]}", "--grace-period=2s", env={"AWS_SECRET_ACCESS_KEY": secret}).start()  # fmt: skip

    def attempts() -> list[str]:
        return [line for line in wrong.stderr().splitlines() if "Sink sqs is not reachable yet" in line]  # fmt: skip

    wait_for(lambda: len(attempts()) >= 2, 60, "two attempts")
    assert wrong.stop() == 0
    expected = (
        "SignatureDoesNotMatch (HTTP 403): The request signature we calculated does not match"
    )
    for line in attempts():
        assert expected in line and "check AWS_SECRET_ACCESS_KEY" in line, line
    stderr = wrong.stderr()
    assert "Traceback" not in stderr and secret not in stderr and secret[6:] not in stderr
    assert len(stderr.splitlines()) <= len(attempts()) + 8, stderr


# -- kubernetes-event-exporter's README configs, as written


@pytest.fixture(scope="module")
def regions():
    """A SigV4-checking proxy per extra region, in front of the stack's moto: the README configs
    name us-west-2 and ap-southeast-1, and the stack's proxy accepts only its own region."""
    env = aws_env()
    moto = f"http://127.0.0.1:{os.environ.get('KES_AWS_MOTO_PORT', '24567')}"
    started, urls = [], {}
    for region in ("us-west-2", "ap-southeast-1"):
        port, admin_port = free_port(), free_port()
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "stack_aws_proxy.py"), f"--port={port}",
             f"--admin-port={admin_port}", f"--upstream={moto}", f"--region={region}",
             f"--access-key={env['AWS_ACCESS_KEY_ID']}", f"--secret-key={env['AWS_SECRET_ACCESS_KEY']}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        started.append(proc)
        urls[region] = f"http://127.0.0.1:{port}"
        wait_for(lambda p=admin_port: _health(p), 30, f"the {region} proxy")
    yield urls
    for proc in started:
        proc.terminate()
        proc.wait(10)


def _health(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def regional(service: str, endpoint: str, region: str, account: str | None = None) -> Any:
    import botocore.session

    env = aws_env()
    made = botocore.session.Session().create_client(
        service, region_name=region, endpoint_url=endpoint,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )  # fmt: skip
    if account:  # moto keeps each account apart; this header chooses one (the proxy passes it)
        made.meta.events.register("before-sign.*", lambda request, **_: request.headers.__setitem__("x-moto-account-id", account))  # fmt: skip
    return made


def exporter_config(tmp_path: Path, corpus: str, receiver: str) -> Path:
    """The README snippet unchanged, with a route to its receiver (the snippets have none)."""
    text = (CORPUS / corpus).read_text()
    path = tmp_path / corpus
    path.write_text(text + f"\nroute:\n  routes:\n    - match:\n        - receiver: {receiver}\n")
    return path


def ignore_exists(call: Any, **kwargs: Any) -> None:
    from botocore.exceptions import ClientError

    try:
        call(**kwargs)
    except ClientError as exc:
        if "Exists" not in exc.response["Error"]["Code"] and "InUse" not in exc.response["Error"]["Code"]:  # fmt: skip
            raise


def test_readme_kinesis_configs_deliver(run, kube_api, namespace, tmp_path, regions):
    kinesis = regional("kinesis", regions["us-west-2"], "us-west-2")
    for stream in ("events-pipeline", "event-pipeline"):
        ignore_exists(kinesis.create_stream, StreamName=stream, ShardCount=1)
    made = core_event(kube_api, namespace, obj="r7", message="from the README")
    env = {"AWS_ENDPOINT_URL": regions["us-west-2"]}
    for corpus, receiver, stream in (
        ("07-resmoio-readme-kinesis.yaml", "kinesis", "events-pipeline"),
        ("15-resmoio-readme-kinesis-layout.yaml", "pipe", "event-pipeline"),
    ):
        shipper = run(None, f"--config={exporter_config(tmp_path, corpus, receiver)}", env=env).start()  # fmt: skip
        wait_for(lambda s=shipper, r=receiver: shipped(s, r) == 1, what=f"{corpus} delivered")
        assert shipper.stop() == 0
        records = [r for r in kinesis_records(stream, kinesis) if r["PartitionKey"] == made["metadata"]["uid"]]  # fmt: skip
        assert len(records) == 1
        body = json.loads(records[0]["Data"])
        if receiver == "kinesis":  # layout: with no value: the document
            check_document(body, made, namespace)
        else:
            assert body["region"] == "us-west-2" and body["eventType"] == "kubernetes-event"
            assert body["details"]["message"] == "from the README"
            assert (body["details"]["kind"], body["details"]["namespace"]) == ("Pod", namespace)
        (tmp_path / "state").rename(tmp_path / f"state-{receiver}")


def test_readme_firehose_config_delivers(run, kube_api, namespace, tmp_path, regions):
    url = regions["us-west-2"]
    s3, firehose = regional("s3", url, "us-west-2"), regional("firehose", url, "us-west-2")
    bucket = name()
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    with contextlib.suppress(Exception):  # from an earlier run against the same moto
        firehose.delete_delivery_stream(DeliveryStreamName="events-pipeline")
    firehose.create_delivery_stream(
        DeliveryStreamName="events-pipeline",
        ExtendedS3DestinationConfiguration={"RoleARN": "arn:aws:iam::123456789012:role/f",
                                            "BucketARN": f"arn:aws:s3:::{bucket}"},
    )  # fmt: skip
    made = core_event(kube_api, namespace, obj="r8")
    config = exporter_config(tmp_path, "08-resmoio-readme-firehose.yaml", "firehose")
    shipper = run(None, f"--config={config}", env={"AWS_ENDPOINT_URL": url}).start()
    wait_for(lambda: shipped(shipper, "firehose") == 1, what="delivered")
    assert shipper.stop() == 0
    [obj] = s3.list_objects_v2(Bucket=bucket)["Contents"]
    check_document(json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()), made, namespace)  # fmt: skip


def test_readme_sns_config_delivers(run, kube_api, namespace, tmp_path):
    """topicARN names us-east-1 and account 1234567890123456; region says us-west-2: the
    topic's region wins, so the stack's own (us-east-1) endpoint serves it."""
    endpoint, account = aws_env()["AWS_ENDPOINT_URL"], "1234567890123456"
    sns = regional("sns", endpoint, "us-east-1", account)
    sqs = regional("sqs", endpoint, "us-east-1", account)
    topic = sns.create_topic(Name="mytopic")["TopicArn"]
    assert topic == "arn:aws:sns:us-east-1:1234567890123456:mytopic"
    url = sqs.create_queue(QueueName=name())["QueueUrl"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn(url, sqs),
                  Attributes={"RawMessageDelivery": "true"})  # fmt: skip
    made = core_event(kube_api, namespace, obj="r9")
    config = exporter_config(tmp_path, "09-resmoio-readme-sns.yaml", "sns")
    shipper = run(None, f"--config={config}").start()
    wait_for(lambda: shipped(shipper, "sns") == 1, what="published")
    assert shipper.stop() == 0
    assert "region us-west-2 differs from the region in the ARN (us-east-1)" in shipper.stderr()
    [message] = peek_all(url, 1, sqs)
    check_document(json.loads(message["Body"]), made, namespace)


def test_readme_sqs_config_names_a_placeholder_queue_in_one_line(run, tmp_path):
    config = exporter_config(tmp_path, "10-resmoio-readme-sqs.yaml", "sqs")
    done = subprocess.run(
        [sys.executable, "-m", "shipper", "check", f"--config={config}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, **aws_env()},
    )  # fmt: skip
    assert done.returncode != 0
    assert "queue '/tmp/dump' is not an SQS queue name" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_readme_sqs_receiver_keys_deliver(run, kube_api, namespace, tmp_path, regions):
    """The same receiver with a real queue name in place of the placeholder."""
    sqs = regional("sqs", regions["us-west-2"], "us-west-2")
    queue_name = name()
    url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    text = (CORPUS / "10-resmoio-readme-sqs.yaml").read_text().replace('"/tmp/dump"', queue_name)
    config = tmp_path / "sqs.yaml"
    config.write_text(text + "\nroute:\n  routes:\n    - match:\n        - receiver: sqs\n")
    made = core_event(kube_api, namespace, obj="r10")
    shipper = run(None, f"--config={config}", env={"AWS_ENDPOINT_URL": regions["us-west-2"]}).start()  # fmt: skip
    wait_for(lambda: shipped(shipper, "sqs") == 1, what="sent")
    assert shipper.stop() == 0
    [message] = peek_all(url, 1, sqs)
    check_document(json.loads(message["Body"]), made, namespace)


def test_readme_eventbridge_config_delivers(run, kube_api, namespace, tmp_path, regions):
    url = regions["ap-southeast-1"]
    events, sqs = regional("events", url, "ap-southeast-1"), regional("sqs", url, "ap-southeast-1")
    queue_url = sqs.create_queue(QueueName=name())["QueueUrl"]
    rule = name()
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["cd"], "detail": {"namespace": [namespace]}}))  # fmt: skip
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": queue_arn(queue_url, sqs)}])
    made = core_event(kube_api, namespace, obj="r21", message="deployed")
    config = exporter_config(tmp_path, "21-resmoio-readme-eventbridge.yaml", "eventbridge")
    shipper = run(None, f"--config={config}", env={"AWS_ENDPOINT_URL": url}).start()
    wait_for(lambda: shipped(shipper, "eventbridge") == 1, what="put")
    assert shipper.stop() == 0
    [message] = peek_all(queue_url, 1, sqs)
    envelope = json.loads(message["Body"])
    assert (envelope["source"], envelope["detail-type"], envelope["region"]) == ("cd", "deployment", "ap-southeast-1")  # fmt: skip
    assert envelope["detail"] == {"message": "deployed", "namespace": namespace,
                                  "object": namespace, "reason": made["reason"]}  # fmt: skip
    assert made


# -- role_arn: STS AssumeRole on top of the default chain


def test_role_arn_assumes_the_role_and_writes_as_it(monkeypatch):
    """Against moto directly (the stack's proxy knows only the stack's long-term key, so it
    refuses temporary credentials): moto's STS hands out credentials that moto then maps to the
    role's account, so the message lands in that account's queue only if the sink really
    assumed the role."""
    from shipper.sinks.base import SinkContext
    from shipper.sinks.factory import build_sink
    from shipper.templates.event import sample_events

    env = aws_env()
    moto = f"http://127.0.0.1:{os.environ.get('KES_AWS_MOTO_PORT', '24567')}"
    for key in ("AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)  # STS and SQS alike
    account, queue_name = "111122223333", name()
    sqs = regional("sqs", moto, env["AWS_REGION"], account)
    url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    role = f"arn:aws:iam::{account}:role/kes-writer"
    uri = f"sqs:{queue_name}?role_arn={role}&external_id=ext-1&session_name=kes-test"
    sink, _ = build_sink(uri, SinkContext("stack", None))
    sink.open()
    try:
        credentials = sink.client._request_signer._credentials.get_frozen_credentials()
        assert credentials.access_key.startswith("ASIA") and credentials.token  # temporary
        assert sink.write(sample_events()[:1]).retry == ()
    finally:
        sink.close()
    [message] = peek_all(url, 1, sqs)
    assert json.loads(message["Body"])["kubernetes"]["event"]["reason"] == sample_events()[0].reason
    # without the role the queue is not found: it is in the role's account only
    plain, _ = build_sink(f"sqs:{queue_name}", SinkContext("stack", None))
    from shipper.sinks.base import TransientError

    with pytest.raises(TransientError, match=r"NonExistentQueue|QueueDoesNotExist"):
        plain.open()

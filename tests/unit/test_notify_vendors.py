# ruff: noqa: RUF001 - digests count with the multiplication sign, as the issue writes them
"""Each notifier against a local stand-in of its vendor's API (tests/support/receivers.py).

The receivers check requests as the vendors document them (signatures recomputed on their
side) and answer with the vendors' own reply shapes and error codes. What is shown, per
vendor: the documented payload arrives; a 200 that carries an error code is a failure, retried
(TransientError) when an operator or the vendor can fix it, dead-lettered (Rejected, with the
vendor's words) when the message itself is refused, held for the digest when it says "slow
down"; a retried batch sends nothing twice (the pipeline writes again only what was not done);
no secret appears in an error message.
"""

from __future__ import annotations

import json
import time

import pytest

from shipper.sinks.base import TransientError
from shipper.sinks.delivery import Outcome
from shipper.uri import UsageError
from tests.support.common import wait_for
from tests.support.proxy import make_pki, server_tls
from tests.support.receivers import (
    DingTalkReceiver,
    Fed,
    LarkReceiver,
    SlackReceiver,
    TeamsReceiver,
    WebhookReceiver,
    WeComReceiver,
    bump,
    event,
    failure,
    sink,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


# -- DingTalk


def test_dingtalk_text_with_labels_mentions_and_signature_over_https(pki):
    secret = "SEC2f1c0ffee0123456789abcdef0123456789abcdef0123456789abcdef0123"
    with DingTalkReceiver(
        token="T0K3N",
        secret=secret,
        keyword="prod-cluster",
        tls=server_tls(pki, require_client_cert=False),
    ) as robot:
        s = sink(
            f"dingtalk:{robot.url}/robot/send?access_token=T0K3N&sign={secret}&label=prod-cluster"
            f"&label=team-a&at_mobiles=13800000000&ca_file={pki.ca}"
        )
        e = event(message='Back-off "restarting"\nfailed', count=4)
        assert s.write([e]) == Outcome()
        s.close()
    assert robot.problems == []
    [message] = robot.messages
    content = message["text"]["content"]
    assert content.splitlines()[:2] == ["prod-cluster", "team-a"]
    for line in (
        "Level: Warning",
        "Kind: Pod",
        "Namespace: shop",
        "Name: web-1",
        "Reason: BackOff",
        "Count: 4",
    ):
        assert line in content
    assert 'Message: Back-off "restarting"\nfailed' in content
    assert content.endswith("@13800000000")
    assert message["at"] == {"atMobiles": ["13800000000"], "atUserIds": [], "isAtAll": False}
    assert message["msgUuid"] == f"{e.uid}.{e.resource_version}"


def test_dingtalk_signature_is_url_encoded(monkeypatch):
    """A base64 signature with '+' must reach DingTalk as %2B, not as a space."""
    from shipper.sinks.notify import dingtalk

    secret = "SECabc"
    stamp = next(
        t
        for t in range(1_700_000_000_000, 1_700_000_100_000)
        if "+" in DingTalkReceiver.expected_sign(str(t), secret)
    )
    monkeypatch.setattr(dingtalk.time, "time", lambda: stamp / 1000)
    with DingTalkReceiver(token="T", secret=secret) as robot:
        robot.limit(1000, 1.0)
        s = sink(f"dingtalk:{robot.url}/robot/send?access_token=T&sign={secret}&max_age=0")
        assert s.write([event()]) == Outcome()
    assert len(robot.messages) == 1, robot.requests[-1].query


def test_dingtalk_markdown_has_title_and_lines():
    with DingTalkReceiver(token="T") as robot:
        s = sink(
            f"dingtalk:{robot.url}/robot/send?access_token=T&msg_type=markdown&at_all=true&link_template=https://grafana/d/x?var-ns={{{{ .InvolvedObject.Namespace }}}}"
        )
        s.write([event(reason="OOMKilling", kind="Node", ns=None, obj="node-a")])
    [message] = robot.messages
    assert message["msgtype"] == "markdown"
    assert message["markdown"]["title"] == "[test] Warning OOMKilling: Node node-a"
    assert "Reason: OOMKilling" in message["markdown"]["text"]
    assert "[Open](https://grafana/d/x?var-ns=)" in message["markdown"]["text"]
    assert message["at"]["isAtAll"] is True


def test_dingtalk_errors_an_operator_fixes_are_retried_and_name_no_secret():
    with DingTalkReceiver(token="T", secret="SECright", keyword="kube") as robot:
        wrong_sign = sink(
            f"dingtalk:{robot.url}/robot/send?access_token=T&sign=SECwrong&label=kube"
        )
        reason = failure(wrong_sign.write([event()]))
        assert "errcode 310000: sign not match" in reason
        assert "SECwrong" not in reason and "SECright" not in reason
        no_keyword = sink(f"dingtalk:{robot.url}/robot/send?access_token=T&sign=SECright")
        assert "keywords not in content" in failure(no_keyword.write([event()]))
        bad_token = sink(
            f"dingtalk:{robot.url}/robot/send?access_token=NOPE&sign=SECright&label=kube"
        )
        reason = failure(bad_token.write([event()]))
        assert "300001: token is not exist" in reason and "NOPE" not in reason
        assert robot.messages == []


def test_dingtalk_refusing_a_message_dead_letters_it_with_dingtalks_words():
    with DingTalkReceiver(token="T") as robot:
        s = sink(f"dingtalk:{robot.url}/robot/send?access_token=T")
        robot.inject.append(
            (200, {"errcode": 460101, "errmsg": "message too long, exceed 20000 bytes"})
        )
        rejected = s.write([event(obj="a"), event(obj="b")]).rejected
    assert [r.index for r in rejected] == [0]
    assert (
        rejected[0].reason
        == "DingTalk refused the message: errcode 460101: message too long, exceed 20000 bytes"
    )
    assert len(robot.messages) == 1


def test_a_failure_mid_batch_answers_done_refused_and_retry_per_event():
    with DingTalkReceiver(token="T") as robot:
        s = sink(f"dingtalk:{robot.url}/robot/send?access_token=T")
        batch = [event(obj=f"p{i}") for i in range(4)]
        robot.inject += [
            (200, {"errcode": 0, "errmsg": "ok"}),
            (200, {"errcode": 460101, "errmsg": "too long"}),
            (503, "Service Unavailable"),
        ]
        out = s.write(batch)  # p0 "sent" (injected ok), p1 refused, p2 hits the outage
    assert [r.index for r in out.rejected] == [1] and out.held == ()
    assert [r.index for r in out.retry] == [2, 3]  # p3 was not tried: it follows p2
    assert failure(out) == "DingTalk answered HTTP 503: Service Unavailable"
    assert len(robot.requests) == 3


def test_a_retried_batch_never_sends_its_done_part_again(tmp_path):
    """Through the pipeline: only the events answered *retry* are written again."""
    with (
        DingTalkReceiver(token="T") as robot,
        Fed(f"dingtalk:{robot.url}/robot/send?access_token=T", state_dir=str(tmp_path), flush_interval=0.5) as fed,
    ):  # fmt: skip
        batch = [event(obj=f"p{i}") for i in range(4)]
        robot.inject += [
            (200, {"errcode": 0, "errmsg": "ok"}),
            (200, {"errcode": 460101, "errmsg": "too long"}),
            (503, "Service Unavailable"),
        ]
        fed.feed(batch)
        wait_for(lambda: fed.position() == batch[-1].resource_version, what="all four settled")
        assert (fed.count("shipped"), fed.count("dead_lettered"), fed.count("retried")) == (3, 1, 2)
    shown = [json.loads(r.body)["text"]["content"] for r in robot.requests]
    # p0 and p1 once each, p2 twice (the outage, then sent), p3 once: it was never tried in the
    # failed attempt, and the retry was p2 and p3 alone.
    assert [sum(f"Name: p{i}\n" in c for c in shown) for i in range(4)] == [1, 1, 2, 1]
    assert len(robot.requests) == 5
    [letter] = [json.loads(line) for line in (tmp_path / "dead-letters" / "dingtalk.jsonl").open()]
    assert letter["reason"] == "DingTalk refused the message: errcode 460101: too long"
    assert letter["document"]["kubernetes"]["event"]["involved_object"]["name"] == "p1"


def test_dingtalk_send_too_fast_holds_events_for_a_digest():
    with DingTalkReceiver(token="T") as robot, Fed(f"dingtalk:{robot.url}/robot/send?access_token=T") as fed:  # fmt: skip
        fed.sink.rate_limit_pause = 1.0  # DingTalk names no Retry-After; the default is 60 s
        robot.inject.append(
            (200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"})
        )
        fed.feed([event(obj="a"), event(obj="b", reason="FailedMount")])
        wait_for(lambda: fed.worker.held() == 2, what="both folded")
        assert robot.messages == [] and fed.sink.counts["digested"] == 2
        wait_for(lambda: robot.messages, timeout=10, what="the digest after the pause")
        assert fed.close() == 0
    [digest] = robot.messages
    assert digest["text"]["content"].startswith("2 more: ")
    assert "BackOff ×1 in ns/shop" in digest["text"]["content"]
    assert "FailedMount ×1 in ns/shop" in digest["text"]["content"]


# -- WeCom


def test_wecom_application_api_caches_the_access_token():
    with WeComReceiver(corp_id="ww1", secret="S3cret", agent_id=1000002) as wecom:
        s = sink(
            f"wechat:?corp_id=ww1&corp_secret=S3cret&agent_id=1000002&to_user=alice,bob&api_url={wecom.url}&label=prod"
        )
        for i in range(5):
            assert s.write([event(obj=f"p{i}")]) == Outcome()
        assert wecom.gettoken_calls == 1  # one token for every message
        wecom.expire_tokens()  # WeCom answers 40014 now: fetched again, message still sent
        assert s.write([event(obj="p5")]) == Outcome()
        s.close()
    assert wecom.problems == []
    assert wecom.gettoken_calls == 2
    assert len(wecom.messages) == 6
    first = wecom.messages[0]
    assert (
        first["touser"] == "alice|bob"
        and first["agentid"] == 1000002
        and first["msgtype"] == "text"
    )
    assert first["text"]["content"].startswith("prod\nLevel: Warning\n")


def test_wecom_bad_secret_is_one_clear_error_at_start_without_the_secret():
    with WeComReceiver(corp_id="ww1", secret="right") as wecom:
        s = sink(
            f"wecom:?corp_id=ww1&corp_secret=wrongSecret&agent_id=1000002&api_url={wecom.url}",
            opened=False,
        )
        with pytest.raises(TransientError) as caught:
            s.open()
    text = str(caught.value)
    assert (
        text
        == "WeCom gettoken failed for corp_id ww1 (errcode 40001: invalid credential, hint: [1700000000_1_x]); check corp_id and corp_secret"
    )
    assert "wrongSecret" not in text


def test_wecom_group_robot_markdown_and_mentions():
    with WeComReceiver(robot_key="KEY123") as wecom:
        s = sink(f"wecom:{wecom.url}/cgi-bin/webhook/send?key=KEY123&at_user_ids=alice&at_all=true")
        s.write([event(message="x" * 5000)])  # cut to WeCom's 2048 bytes, not refused
        md = sink(f"wechat:{wecom.url}/cgi-bin/webhook/send?key=KEY123&msg_type=markdown")
        md.write([event()])
        bad = sink(f"wechat:{wecom.url}/cgi-bin/webhook/send?key=WRONGKEY")
        reason = failure(bad.write([event()]))
        assert "93000: invalid webhook url" in reason and "WRONGKEY" not in reason
    assert wecom.problems == []
    text, markdown = wecom.messages
    assert text["text"]["mentioned_list"] == ["alice", "@all"]
    assert len(text["text"]["content"].encode()) <= 2048
    assert markdown["markdown"]["content"].startswith("### [test] Warning BackOff: Pod shop/web-1")


# -- Slack


def test_slack_chat_post_message_block_kit():
    with SlackReceiver(token="xoxb-9-9-sek", channels=("C123",)) as slack:
        fed = Fed(
            f"slack:?token=xoxb-9-9-sek&channel=C123&api_url={slack.url}/api"
            "&message={{ .Message }}&field=namespace={{ .InvolvedObject.Namespace }}"
            "&field=object={{ .InvolvedObject.Name }}&footer=cluster {{ .ClusterName }}"
            "&link_template=https://grafana.example/d/x?var-namespace={{ .InvolvedObject.Namespace }}"
        )
        fed.feed([event(message="<!channel> pod & <b>oom</b>")])
        fed.feed([event(type_="Normal", reason="Pulled", message="ok")])  # after 1 s: 1/s
        assert fed.close() == 0
    assert slack.problems == []
    warning, normal = slack.messages
    assert warning["channel"] == "C123"
    attachment = warning["attachments"][0]
    assert attachment["color"] == "#E01E5A" and normal["attachments"][0]["color"] == "#2EB67D"
    title, text, fields, actions, footer = attachment["blocks"]
    assert title["text"]["text"] == "*[test] Warning BackOff: Pod shop/web-1*"
    assert (
        text["text"]["text"] == "&lt;!channel&gt; pod &amp; &lt;b&gt;oom&lt;/b&gt;"
    )  # cannot ping or forge links
    assert [f["text"] for f in fields["fields"]] == ["*namespace*\nshop", "*object*\nweb-1"]
    assert actions["elements"][0]["url"] == "https://grafana.example/d/x?var-namespace=shop"
    assert footer["elements"][0]["text"] == "cluster test"
    assert [r.path for r in slack.requests] == [
        "/api/auth.test",
        "/api/chat.postMessage",
        "/api/chat.postMessage",
    ]


def test_slack_channel_is_a_template_as_in_kubernetes_event_exporter():
    with SlackReceiver(token="xoxb-1-2-abc", channels=("shop-alerts", "kube-alerts")) as slack:
        fed = Fed(
            f"slack:?token=xoxb-1-2-abc&api_url={slack.url}/api"
            "&channel={{ .InvolvedObject.Namespace }}-alerts&rate=0"
        )
        fed.feed([event(), event(ns="kube", obj="dns-1")])
        assert fed.close() == 0
    assert slack.problems == []
    assert [m["channel"] for m in slack.messages] == ["shop-alerts", "kube-alerts"]


def test_slack_incoming_webhook_with_kubernetes_event_exporter_attachment():
    with SlackReceiver() as slack:
        s = sink(
            f"slack:{slack.url}{slack.hook_path}?format=attachments&title={{{{ .Reason }}}}&author_name=kube&field=ns={{{{ .InvolvedObject.Namespace }}}}&link=https://x/{{{{ .Reason }}}}"
        )
        s.write([event()])
    [message] = slack.messages
    assert "channel" not in message
    assert message["attachments"][0] | {"mrkdwn_in": None} == {
        "color": "#E01E5A", "title": "BackOff", "fallback": "BackOff", "title_link": "https://x/BackOff",
        "fields": [{"title": "ns", "value": "shop", "short": False}], "author_name": "kube", "mrkdwn_in": None,
    }  # fmt: skip
    assert s.describe() == f"slack {slack.url}/…"  # the webhook path is a secret


def test_slack_errors():
    with SlackReceiver(token="xoxb-good", channels=("C1",)) as slack:
        bad_token = sink(
            f"slack:?token=xoxb-bad-token&channel=C1&api_url={slack.url}/api", opened=False
        )
        with pytest.raises(
            TransientError, match=r"Slack refused the bot token \(invalid_auth\); check token"
        ) as caught:
            bad_token.open()
        assert "xoxb-bad-token" not in str(caught.value)
        missing = sink(f"slack:?token=xoxb-good&channel=C404&api_url={slack.url}/api")
        assert "channel_not_found" in failure(missing.write([event()]))
        s = sink(f"slack:?token=xoxb-good&channel=C1&api_url={slack.url}/api")
        slack.inject.append((200, {"ok": False, "error": "msg_too_long"}))
        assert [r.reason for r in s.write([event()]).rejected] == [
            "Slack refused the message: msg_too_long"
        ]
        slack.inject.append((429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}))
        started = time.monotonic()
        assert s.write([event(obj="held")]) == Outcome(held=(0,))  # for as long as Slack asked
        assert s.counts["digested"] == 1
        # the pipeline's tick between batches, until the pace allows
        wait_for(lambda: s.tick().release, timeout=10, what="the held message")
        assert time.monotonic() - started >= 1.0
        s.close()
    assert (
        "Pod shop/held" in slack.messages[0]["text"]
    )  # a digest of one is the event's own message
    hook = SlackReceiver()
    with hook:
        gone = sink(f"slack:{hook.url}/services/T000/B000/REVOKED")
        reason = failure(gone.write([event()]))
        assert "HTTP 404: no_service" in reason and "REVOKED" not in reason


# -- Lark / Feishu


def test_lark_interactive_card_signed():
    with LarkReceiver(hook="hook-1234", secret="lark-secret", keyword="prod") as lark:
        s = sink(
            f"feishu:{lark.url}/open-apis/bot/v2/hook/hook-1234?sign=lark-secret&label=prod&at_all=true&link=https://x/y"
        )
        s.write([event(type_="Warning"), event(type_="Normal", reason="Scheduled")])
        s.close()
    assert lark.problems == []
    warning, normal = lark.messages
    card = warning["card"]
    assert card["header"] == {
        "title": {"tag": "plain_text", "content": "[test] Warning BackOff: Pod shop/web-1"},
        "template": "red",
    }
    assert normal["card"]["header"]["template"] == "green"
    assert card["elements"][0]["text"]["content"].startswith("prod\nBack-off restarting")
    assert card["elements"][0]["text"]["content"].endswith("<at id=all></at>")
    assert card["elements"][2]["actions"][0]["url"] == "https://x/y"
    assert set(warning) == {"timestamp", "sign", "msg_type", "card"}


def test_lark_text_and_errors():
    with LarkReceiver(hook="h-1", secret="right", keyword="kw") as lark:
        s = sink(f"lark:{lark.url}/open-apis/bot/v2/hook/h-1?sign=right&msg_type=text&label=kw")
        s.write([event()])
        assert lark.messages[0]["content"]["text"].startswith(
            "[test] Warning BackOff: Pod shop/web-1\nkw\n"
        )
        reason = failure(
            sink(f"lark:{lark.url}/open-apis/bot/v2/hook/h-1?sign=wrong&label=kw").write([event()])
        )
        assert "19021: sign match fail" in reason
        assert "wrong" not in reason.replace("sign match fail", "")
        reason = failure(
            sink(f"lark:{lark.url}/open-apis/bot/v2/hook/h-1?sign=right").write([event()])
        )
        assert "19024: Key Words Not Found" in reason
        reason = failure(
            sink(f"lark:{lark.url}/open-apis/bot/v2/hook/other-hook?sign=right&label=kw").write(
                [event()]
            )
        )
        assert "19001" in reason and "other-hook" not in reason


# -- Teams


def test_teams_connector_message_card_and_workflow_adaptive_card():
    with TeamsReceiver(sig="SIGvalue123") as teams:
        connector = sink(
            f"teams:{teams.url}{teams.CONNECTOR}?field=Node={{{{ .Source.Host }}}}&format=messagecard"
        )
        connector.write([event()])
        workflow = sink(f"teams:{teams.workflow_url()}&link_template=https://x/{{{{ .Reason }}}}")
        workflow.write([event(type_="Normal", reason="Started")])
    assert teams.problems == []
    card, message = teams.messages
    assert card["@type"] == "MessageCard" and card["themeColor"] == "E01E5A"
    assert card["sections"] == [{"facts": [{"name": "Node", "value": "node-a"}]}]
    adaptive = message["attachments"][0]["content"]
    assert adaptive["type"] == "AdaptiveCard" and adaptive["body"][0]["color"] == "Good"
    assert adaptive["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open", "url": "https://x/Started"}
    ]
    assert workflow.describe() == f"teams {teams.url}/…"


def test_teams_errors():
    with TeamsReceiver(sig="RIGHTSIG") as teams:
        wrong = sink(
            f"teams:{teams.url}{teams.WORKFLOW}?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=WRONGSIG"
        )
        reason = failure(wrong.write([event()]))
        assert "HTTP 401: DirectApiAuthorizationRequired" in reason and "WRONGSIG" not in reason
        s = sink(f"teams:{teams.url}{teams.CONNECTOR}?format=messagecard")
        s.rate_limit_pause = 0.5
        teams.inject.append(
            (200, "Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0")
        )
        out = s.write([event()])  # a 200 that says 429
        assert out == Outcome(held=(0,)) and s.counts["digested"] == 1
        teams.inject.append((400, "Summary or Text is required."))
        release = wait_for(lambda: s.tick().release, what="the digest tried after the pause")
        assert release.count == 1 and teams.messages == [] and not teams.inject
        assert release.reason == "Teams refused the digest: HTTP 400: Summary or Text is required."
        assert release.stand_in.reason == "EventDigest"
        s.close()


# -- generic webhook


def test_webhook_method_headers_and_errors(tmp_path):
    body = tmp_path / "body.json"
    body.write_text(
        '{"reason": "{{ .Reason }}", "count": {{ .Count }}, "labels": {{ toJson .InvolvedObject.Labels }}}'
    )
    with WebhookReceiver() as hook:
        s = sink(
            f"webhook:{hook.url}/in?x=1&method=PUT&header=Authorization=Bearer tok-123&header=X-Env=prod&body_template={body}"
        )
        e = event(count=5)
        e.labels = {"app": "web"}
        assert s.write([e]) == Outcome()
        hook.inject += [(400, "field count must be a string"), (503, "down")]
        assert [r.reason for r in s.write([event(obj="a")]).rejected] == [
            "The webhook refused the message: HTTP 400: field count must be a string"
        ]
        assert failure(s.write([event(obj="b")])) == "The webhook answered HTTP 503: down"
        hook.inject.append((200, {"errcode": 40035, "errmsg": "missing param"}))
        assert [r.reason for r in s.write([event(obj="c")]).rejected] == [
            "The webhook refused the message: errcode 40035: missing param"
        ]
    request = hook.requests[0]
    assert (request.method, request.path, request.query) == ("PUT", "/in", {"x": "1"})
    assert (
        request.headers["authorization"] == "Bearer tok-123" and request.headers["x-env"] == "prod"
    )
    assert hook.messages[0] == {"reason": "BackOff", "count": 5, "labels": {"app": "web"}}


def test_webhook_default_body_is_kube_eventers_made_valid():
    with WebhookReceiver() as hook:
        s = sink(f"webhook:{hook.url}/")
        s.write([event(message='a "quoted"\nmessage', count=2)])
    assert hook.messages == [{
        "EventType": "Warning", "EventKind": "Pod", "EventObject": "web-1", "EventNamespace": "shop",
        "EventReason": "BackOff", "EventTime": hook.messages[0]["EventTime"], "EventCount": 2,
        "EventMessage": 'a "quoted"\nmessage', "ClusterName": "test",
    }]  # fmt: skip
    assert hook.messages[0]["EventTime"].endswith(" +0000 UTC")


def test_webhook_passes_every_update_by_default_unlike_chat():
    with WebhookReceiver() as hook:
        s = sink(f"webhook:{hook.url}/")
        first = event()
        s.write([first, bump(first, 2), bump(first, 3)])
    assert [m["EventCount"] for m in hook.messages] == [1, 2, 3]


BAD_URIS = [
    (
        "dingtalk:https://oapi.dingtalk.com/robot/send",
        "--sink dingtalk: you must provide the robot's access_token",
    ),
    (
        "dingtalk:https://oapi.dingtalk.com/robot/send?access_token=T&msgtype=markdown",
        "unknown parameter 'msgtype'; did you mean 'msg_type'?",
    ),
    (
        "dingtalk:https://x/robot/send?access_token=T&msg_type=card",
        "parameter msg_type='card': expected one of text, markdown",
    ),
    ("wechat:?corp_id=a&corp_secret=b", "you must provide agent_id"),
    ("wechat:?corp_id=a&corp_secret=b&agent_id=x", "parameter agent_id='x'"),
    ("slack:?channel=C1", "expected token=...&channel=..."),
    (
        "slack:?token=x&channel=c&message={{ .Reasn }}",
        "parameter message: line 1, col 4: unknown field .Reasn; did you mean .Reason?",
    ),
    ("slack:?token=x&channel=c&field=ns", "parameter field='ns': expected NAME=VALUE"),
    ("slack:?token=x&channel=c&rate=20/min", "parameter rate='20/min': expected COUNT/DURATION"),
    ("lark:?sign=x", "expected lark:https://open.feishu.cn/open-apis/bot/v2/hook/TOKEN"),
    ("teams:https://x.webhook.office.com/w?format=card", "parameter format='card'"),
    ("webhook:https://x/y?method=DELETE", "parameter method='DELETE'"),
    ("webhook:https://x/y?header=NoEquals", "parameter header='NoEquals': expected NAME=VALUE"),
    ("webhook:https://x/y?link_template={{ .Reason | shout }}", "unknown function 'shout'"),
]


@pytest.mark.parametrize(("uri", "message"), BAD_URIS, ids=[u for u, _ in BAD_URIS])
def test_bad_uris_are_usage_errors_naming_the_parameter(uri, message):
    with pytest.raises(UsageError) as caught:
        sink(uri, opened=False)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_webhook_body_template_that_is_not_json_is_a_start_up_error(tmp_path):
    body = tmp_path / "body.json"
    body.write_text('{"EventType": "{{ .Type }}"\n "EventReason": "{{ .Reason }}"}')
    with pytest.raises(
        UsageError,
        match=r"parameter body_template \(.*body.json\): the rendered body is not valid JSON",
    ):
        sink(f"webhook:http://127.0.0.1:1/?body_template={body}", opened=False)


def test_redirects_and_timeouts_are_bounded():
    with WebhookReceiver() as hook:
        s = sink(f"webhook:{hook.url}/loop?timeout=1s")
        hook.inject += [(302, "", {"Location": f"{hook.url}/loop"})] * 10
        assert failure(s.write([event()])) == "too many redirects"
        assert len(hook.requests) == 4  # the request and 3 redirects
        hook.inject.clear()
        hook.inject.append((307, "", {"Location": f"{hook.url}/moved"}))
        assert s.write([event()]) == Outcome()  # a redirect or two is followed, as it was
        assert (
            hook.requests[-1].path == "/moved"
            and hook.requests[-1].method == "POST"
            and hook.messages
        )
        hook.delay = 2.0
        started = time.monotonic()
        assert failure(s.write([event()])) == "timed out waiting for the reply"
        assert time.monotonic() - started < 1.9

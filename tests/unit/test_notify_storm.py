# ruff: noqa: RUF001 - digests count with the multiplication sign, as the issue writes them
"""Storm control: a burst never floods the chat, never trips the vendor's block, never waits.

The receivers enforce the vendors' limits themselves (DingTalk answers 130101 past its window,
Slack 429), so "no refusals" below means the sink stayed under the vendor's count on its own.
Windows are shortened (``rate=20/3s``) to keep the tests quick; the defaults are pinned too.
"""

from __future__ import annotations

import itertools
import time

import pytest

from shipper.metrics import Metrics
from tests.support.common import wait_for
from tests.support.receivers import (
    DingTalkReceiver,
    SlackReceiver,
    WebhookReceiver,
    bump,
    event,
    sink,
)


def test_a_burst_of_500_is_20_messages_and_one_digest():
    metrics = Metrics()
    with DingTalkReceiver(token="T", keyword="prod") as robot:
        robot.windows.clear()
        robot.limit(20, 3.0)  # DingTalk's rule, with a 3 s window instead of a minute
        s = sink(
            f"dingtalk:{robot.url}/robot/send?access_token=T&label=prod&rate=20/3s&name=ding",
            metrics=metrics,
        )
        burst = [event(reason="BackOff", ns="a", obj=f"web-{i}") for i in range(300)]
        burst += [event(reason="FailedMount", ns="b", obj=f"db-{i}") for i in range(200)]
        started = time.monotonic()
        for start in range(0, 500, 100):  # the pipeline's batches
            assert s.write(burst[start : start + 100]) == []
        assert time.monotonic() - started < 5, "write() must never wait for the rate limit"
        assert len(robot.messages) == 20
        wait_for(
            lambda: len(robot.messages) == 21,
            timeout=10,
            what="the digest, sent by the sink's timer",
        )
        s.close()
    assert robot.refused_rate == 0 and robot.problems == []
    digest = robot.messages[-1]["text"]["content"]
    assert digest.startswith(
        "prod\n480 more: FailedMount ×200 in ns/b, BackOff ×280 in ns/a"
    ) or digest.startswith("prod\n480 more: BackOff ×280 in ns/a, FailedMount ×200 in ns/b")
    assert "Held back by the rate limit (20 per 3s)" in digest
    assert s.counts == {"sent": 20, "digested": 480}
    count = metrics.notify_events.labels("ding", "digested")._value.get()
    assert (count, metrics.notify_events.labels("ding", "sent")._value.get()) == (480, 20)


def test_the_default_rates_are_the_vendors():
    assert (
        sink("dingtalk:https://x/robot/send?access_token=T", opened=False).limiter.describe()
        == "20 per 1m"
    )
    assert (
        sink("wechat:https://x/cgi-bin/webhook/send?key=K", opened=False).limiter.describe()
        == "20 per 1m"
    )
    assert sink("slack:?token=t&channel=c", opened=False).limiter.describe() == "1 per 1s"
    assert (
        sink("lark:https://x/open-apis/bot/v2/hook/h", opened=False).limiter.describe()
        == "100 per 1m, 5 per 1s"
    )
    assert (
        sink("teams:https://x.webhook.office.com/w", opened=False).limiter.describe()
        == "4 per 1s, 60 per 30s, 100 per 1h"
    )
    assert sink("webhook:https://x/", opened=False).limiter.windows == []
    chat = sink("slack:?token=t&channel=c", opened=False)
    assert (chat.realert, chat.max_age) == (600.0, 900.0)


def test_slack_one_per_second_per_channel_is_respected():
    def delivered() -> int:
        """Events shown: one per message of its own, N per "N more: ..." digest."""
        return sum(
            int(m["text"].split(" more:")[0].split()[-1]) if " more:" in m["text"] else 1
            for m in slack.messages
        )

    with SlackReceiver(token="xoxb-1", channels=("C1",)) as slack:
        s = sink(f"slack:?token=xoxb-1&channel=C1&api_url={slack.url}/api")
        for i in range(8):
            s.write([event(obj=f"p{i}")])
            time.sleep(0.25)
        wait_for(lambda: delivered() == 8, timeout=10, what="all 8 events shown")
        s.close()
    assert slack.refused_rate == 0 and slack.problems == []
    assert 2 <= len(slack.messages) <= 4  # about one a second, not eight
    times = [r.at for r in slack.requests if r.path.endswith("postMessage")]
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(times))


def test_count_updates_do_not_realert_within_the_window():
    with DingTalkReceiver(token="T") as robot:
        s = sink(f"dingtalk:{robot.url}/robot/send?access_token=T&realert=2s")
        first = event()
        s.write([first])
        s.write([bump(first, 2), bump(first, 3), event(obj="other")])
        assert len(robot.messages) == 2 and s.counts["suppressed"] == 2
        time.sleep(2.1)
        s.write([bump(first, 4)])
        s.close()
    assert [m["text"]["content"].split("Count: ")[1][0] for m in robot.messages] == ["1", "1", "4"]


def test_realert_0_sends_every_update():
    with DingTalkReceiver(token="T") as robot:
        s = sink(f"dingtalk:{robot.url}/robot/send?access_token=T&realert=0")
        first = event()
        s.write([first, bump(first, 2)])
    assert len(robot.messages) == 2


def test_old_events_are_not_posted():
    with DingTalkReceiver(token="T") as robot:
        s = sink(f"dingtalk:{robot.url}/robot/send?access_token=T&max_age=10m")
        s.write([event(obj="old", at="2020-01-01T00:00:00.000000Z"), event(obj="new")])
    assert len(robot.messages) == 1 and "Name: new" in robot.messages[0]["text"]["content"]
    assert s.counts["suppressed"] == 1


def test_close_sends_the_pending_digest():
    with WebhookReceiver() as hook:
        s = sink(f"webhook:{hook.url}/?rate=2/1h")
        s.write([event(obj=f"p{i}") for i in range(5)])
        assert len(hook.messages) == 2
        s.limiter.windows.clear()  # the hour has passed, say
        s.close()
    digest = hook.messages[-1]
    assert digest["EventReason"] == "EventDigest" and digest["EventCount"] == 3
    assert digest["EventMessage"] == "3 more: BackOff ×3 in ns/shop"


@pytest.mark.parametrize("status", [429])
def test_a_webhook_without_rate_retries_a_429(status):
    from shipper.sinks.base import TransientError

    with WebhookReceiver() as hook:
        s = sink(f"webhook:{hook.url}/")
        hook.inject.append((status, "slow down", {"Retry-After": "3"}))
        with pytest.raises(TransientError, match="HTTP 429"):
            s.write([event()])
        assert s.write([event()]) == []


def test_a_failing_vendor_holds_events_in_the_pipeline_never_in_the_digest():
    from shipper.sinks.base import TransientError
    from shipper.sinks.notify import RateLimiter

    with SlackReceiver(token="xoxb-1", channels=("C1",)) as slack:
        s = sink(f"slack:?token=xoxb-1&channel=C404&api_url={slack.url}/api")
        batch = [event(obj="a")]
        for _ in range(3):  # the pipeline's retries, quicker than Slack's 1/s window
            with pytest.raises(TransientError, match="channel_not_found"):
                s.write(batch)
        assert s.counts["digested"] == 0  # a refused request is not a message: no window used

        # A digest that fails makes the next write fail too, instead of folding more into it.
        # (not opened: no timer thread, so each try of the digest below is the test's own)
        ok = sink(f"slack:?token=xoxb-1&channel=C1&api_url={slack.url}/api&rate=1/1h", opened=False)
        ok.write([event(obj="b"), event(obj="c")])  # b sent, c held for the digest
        ok.limiter = RateLimiter(["100/1s"])  # an hour later, say
        time.sleep(1.1)  # Slack's own 1/s per channel (the receiver counts it too)
        slack.inject += [(200, {"ok": False, "error": "internal_error"})] * 2
        ok._flush_digest(time.monotonic(), quiet=True)  # the timer's try: fails
        with pytest.raises(
            TransientError,
            match="the digest of 1 events failed: Slack refused the request: internal_error",
        ):
            ok.write([event(obj="d")])
        time.sleep(1.1)
        assert ok.write([event(obj="d")]) == []  # Slack is back: the digest (c), then d
        ok.close()  # d was held by Slack's 429 (Retry-After: 1); close() waits and sends it
    assert [m["text"].split("\n")[0] for m in slack.messages[-3:]] == [
        "[test] Warning BackOff: Pod shop/b", "[test] Warning BackOff: Pod shop/c", "[test] Warning BackOff: Pod shop/d",
    ]  # fmt: skip

# ruff: noqa: RUF001 - digests count with the multiplication sign, as the issue writes them
"""Storm control: a burst never floods the chat, never trips the vendor's block, never waits,
and an event folded into a digest stays unacknowledged until the digest is sent.

The receivers enforce the vendors' limits themselves (DingTalk answers 130101 past its window,
Slack 429), so "no refusals" below means the sink stayed under the vendor's count on its own.
Windows are shortened (``rate=20/3s``) to keep the tests quick; the defaults are pinned too.
Sinks run under the real pipeline (:class:`tests.support.receivers.Fed`) where the timing of
the digest matters: the worker sends it when the sink's pace allows, no thread of the sink's.
"""

from __future__ import annotations

import itertools
import logging
import time

from shipper.metrics import Metrics
from shipper.sinks.delivery import Outcome, Pace, Release
from shipper.sinks.notify.base import NotifierSink
from tests.support.common import wait_for
from tests.support.receivers import (
    DingTalkReceiver,
    Fed,
    SlackReceiver,
    WebhookReceiver,
    bump,
    event,
    failure,
    sink,
)


def test_a_burst_of_500_is_20_messages_and_one_digest():
    metrics = Metrics()
    with DingTalkReceiver(token="T", keyword="prod") as robot:
        robot.windows.clear()
        robot.limit(20, 3.0)  # DingTalk's rule, with a 3 s window instead of a minute
        uri = f"dingtalk:{robot.url}/robot/send?access_token=T&label=prod&rate=20/3s&name=ding"
        burst = [event(reason="BackOff", ns="a", obj=f"web-{i}") for i in range(300)]
        burst += [event(reason="FailedMount", ns="b", obj=f"db-{i}") for i in range(200)]
        with Fed(uri, metrics=metrics, flush_interval=1.0) as fed:
            started = time.monotonic()
            fed.feed(burst)  # five batches of 100, the notifiers' batch size
            wait_for(lambda: fed.worker.held() == 480, timeout=5, what="480 events folded")
            assert time.monotonic() - started < 2.9, "write() must never wait for the 3 s window"
            assert len(robot.messages) == 20
            # The folded events' tickets are open: the checkpoint stands after the 20th event.
            assert fed.position() == burst[19].resource_version
            assert fed.count("shipped") == 20
            wait_for(lambda: len(robot.messages) == 21, timeout=10, what="the digest")
            wait_for(lambda: fed.position() == burst[-1].resource_version, what="all acknowledged")
            assert fed.count("shipped") == 500 and fed.worker.idle()
            assert fed.close() == 0
    assert robot.refused_rate == 0 and robot.problems == []
    digest = robot.messages[-1]["text"]["content"]
    assert digest.startswith(
        "prod\n480 more: FailedMount ×200 in ns/b, BackOff ×280 in ns/a"
    ) or digest.startswith("prod\n480 more: BackOff ×280 in ns/a, FailedMount ×200 in ns/b")
    assert "Held back by the rate limit (20 per 3s)" in digest
    assert "• Warning FailedMount pod/b/db-199 ×1" in digest  # the latest, not the first
    assert fed.sink.counts == {"sent": 20, "digested": 480}
    count = metrics.notify_events.labels("ding", "digested")._value.get()
    assert (count, metrics.notify_events.labels("ding", "sent")._value.get()) == (480, 20)


def test_the_default_rates_are_the_vendors():
    def rate(uri: str) -> str:
        return sink(uri, opened=False).pace.describe()

    assert rate("dingtalk:https://x/robot/send?access_token=T") == "20 per 1m"
    assert rate("wechat:https://x/cgi-bin/webhook/send?key=K") == "20 per 1m"
    assert rate("slack:?token=t&channel=c") == "1 per 1s"
    assert rate("lark:https://x/open-apis/bot/v2/hook/h") == "100 per 1m, 5 per 1s"
    assert rate("teams:https://x.webhook.office.com/w") == "4 per 1s, 60 per 30s, 100 per 1h"
    assert sink("webhook:https://x/", opened=False).pace.windows == []
    chat = sink("slack:?token=t&channel=c", opened=False)
    assert (chat.realert, chat.max_age) == (600.0, 900.0)


def test_pace_windows():
    pace = Pace(["2/10s", "3/1m"])
    assert (pace.ready_in(0.0), pace.room(0.0)) == (0.0, 2)
    pace.spend(0.0)
    pace.spend(1.0)
    assert pace.ready_in(2.0) == 10.5 - 2.0  # the oldest ages out at 10 s, plus 5% slack
    assert (pace.room(2.0), pace.room(10.5), pace.room(11.5)) == (0, 1, 1)
    pace.spend(11.0)
    assert pace.ready_in(11.0) == 61.0 - 11.0  # now the minute's window is full
    assert pace.room(30.0) == 0
    pace.pause(100.0, now=11.0)
    assert pace.ready_in(12.0) == 99.0 and pace.room(12.0) == 0
    assert Pace([]).room(0.0) is None and Pace([]).ready_in(0.0) == 0.0


def test_slack_one_per_second_per_channel_is_respected():
    def delivered() -> int:
        """Events shown: one per message of its own, N per "N more: ..." digest."""
        return sum(
            int(m["text"].split(" more:")[0].split()[-1]) if " more:" in m["text"] else 1
            for m in slack.messages
        )

    with (
        SlackReceiver(token="xoxb-1", channels=("C1",)) as slack,
        Fed(f"slack:?token=xoxb-1&channel=C1&api_url={slack.url}/api") as fed,
    ):
        for i in range(8):
            fed.feed([event(obj=f"p{i}")])
            time.sleep(0.25)
        wait_for(lambda: delivered() == 8, timeout=10, what="all 8 events shown")
        assert fed.close() == 0
    assert slack.refused_rate == 0 and slack.problems == []
    assert 2 <= len(slack.messages) <= 4  # about one a second, not eight
    times = [r.at for r in slack.requests if r.path.endswith("postMessage")]
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(times))


def test_count_updates_do_not_realert_within_the_window():
    with DingTalkReceiver(token="T") as robot:
        s = sink(f"dingtalk:{robot.url}/robot/send?access_token=T&realert=2s")
        first = event()
        assert s.write([first]) == Outcome()
        assert s.write([bump(first, 2), bump(first, 3), event(obj="other")]) == Outcome()
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


def test_held_events_keep_the_checkpoint_until_the_digest_is_sent_then_closing_sends_it():
    with WebhookReceiver() as hook, Fed(f"webhook:{hook.url}/?rate=2/1s") as fed:
        events = [event(obj=f"p{i}") for i in range(5)]
        fed.feed(events)
        wait_for(lambda: fed.worker.held() == 3, what="3 events folded")
        assert len(hook.messages) == 2 and fed.position() == events[1].resource_version
        assert fed.close(grace=10) == 0  # the worker waits for the window, then sends it
        assert fed.position() == events[-1].resource_version
        assert (fed.count("shipped"), fed.count("dead_lettered")) == (5, 0)
    digest = hook.messages[-1]
    assert digest["EventReason"] == "EventDigest" and digest["EventCount"] == 3
    assert digest["EventMessage"] == "3 more: BackOff ×3 in ns/shop"


def test_a_digest_that_cannot_go_before_the_grace_ends_stays_unacknowledged(caplog):
    with WebhookReceiver() as hook, Fed(f"webhook:{hook.url}/?rate=2/1h") as fed:
        events = [event(obj=f"p{i}") for i in range(5)]
        fed.feed(events)
        wait_for(lambda: fed.worker.held() == 3, what="3 events folded")
        with caplog.at_level(logging.WARNING, logger="shipper.pipeline"):
            assert fed.close(grace=0.5) == 3
        assert len(hook.messages) == 2 and fed.position() == events[1].resource_version
        assert fed.count("shipped") == 2  # the 3 held are neither shipped nor lost
    assert "stopped holding 3 events unsent" in caplog.text


def test_a_refused_digest_is_one_dead_letter_and_releases_its_events(tmp_path):
    import json

    with WebhookReceiver() as hook, Fed(f"webhook:{hook.url}/?rate=1/1s", state_dir=str(tmp_path)) as fed:  # fmt: skip
        events = [event(obj=f"p{i}") for i in range(4)]
        hook.inject += [(200, {"ok": 1}), (400, "digest too large")]
        fed.feed(events)
        wait_for(lambda: fed.position() == events[-1].resource_version, what="all settled")
        assert (fed.count("shipped"), fed.count("dead_lettered")) == (1, 3)
    [letter] = [json.loads(line) for line in (tmp_path / "dead-letters" / "webhook.jsonl").open()]
    assert letter["reason"] == "The webhook refused the digest: HTTP 400: digest too large"
    assert letter["document"]["message"] == "3 more: BackOff ×3 in ns/shop"


def test_a_webhook_without_rate_retries_a_429_after_its_retry_after():
    with WebhookReceiver() as hook:
        s = sink(f"webhook:{hook.url}/")
        hook.inject.append((429, "slow down", {"Retry-After": "3"}))
        first, second = event(obj="a"), event(obj="b")
        out = s.write([first, second])
        assert out.retry[0].after == 3.0 and [r.index for r in out.retry] == [0, 1]
        assert failure(out) == "HTTP 429 slow down" and s.counts["digested"] == 0
        assert s.write([first, second]) == Outcome()
        with Fed(f"webhook:{hook.url}/") as fed:
            hook.inject.append((429, "slow down", {"Retry-After": "1"}))
            started = time.monotonic()
            fed.feed([event(obj="c")])
            wait_for(lambda: fed.count("shipped") == 1, what="c after the 429")
            assert time.monotonic() - started >= 1.0 and fed.count("retried") == 1


def test_a_failing_vendor_holds_events_in_the_pipeline_never_in_the_digest():
    from shipper.sinks.base import TransientError

    with SlackReceiver(token="xoxb-1", channels=("C1",)) as slack:
        s = sink(f"slack:?token=xoxb-1&channel=C404&api_url={slack.url}/api")
        batch = [event(obj="a")]
        for _ in range(3):  # the pipeline's retries, quicker than Slack's 1/s window
            assert "channel_not_found" in failure(s.write(batch))
        assert s.counts["digested"] == 0  # a refused request is not a message: no window used

        # A digest that fails makes the next write fail too, instead of folding more into it.
        ok: NotifierSink = sink(f"slack:?token=xoxb-1&channel=C1&api_url={slack.url}/api&rate=1/1h")
        assert ok.write([event(obj="b"), event(obj="c")]) == Outcome(held=(1,))  # b sent, c held
        ok.pace = Pace(["100/1s"])  # an hour later, say
        time.sleep(1.1)  # Slack's own 1/s per channel (the receiver counts it too)
        slack.inject += [(200, {"ok": False, "error": "internal_error"})] * 2
        try:
            ok.tick()  # the worker's try between batches: fails
            raise AssertionError("the digest should have failed")
        except TransientError as exc:
            assert str(exc) == "Slack refused the request: internal_error"
        assert failure(ok.write([event(obj="d")])) == (
            "the digest of 1 events failed: Slack refused the request: internal_error"
        )
        time.sleep(1.1)
        # Slack is back: the digest (c) goes first, then d meets Slack's own 1/s (429) and is
        # held for as long as Slack asked (Retry-After: 1).
        assert ok.write([event(obj="d")]) == Outcome(held=(0,), release=Release(1))
        assert ok.tick() == Outcome()  # not yet: Slack asked for a second
        time.sleep(1.1)
        assert ok.tick() == Outcome(release=Release(1))
    assert [m["text"].split("\n")[0] for m in slack.messages[-3:]] == [
        "[test] Warning BackOff: Pod shop/b", "[test] Warning BackOff: Pod shop/c", "[test] Warning BackOff: Pod shop/d",
    ]  # fmt: skip

"""The opsgenie sink in process against a local Alert API v2 (tests/support/receivers/opsgenie.py,
which checks the documented request and limits): the body, the alias that folds count updates
into one alert, the limits, the US/EU hosts, and each error shape (401, 422, 429)."""

from __future__ import annotations

import pytest

from shipper.sinks.delivery import Outcome
from shipper.uri import UsageError
from tests.support.notify import bump, event, failure, sink
from tests.support.receivers.opsgenie import OpsgenieReceiver

KEY = "og-key-0123456789"


def og(url: str, extra: str = "") -> object:
    return sink(f"opsgenie:?api_key={KEY}&api_url={url}{extra}")


def test_an_alert_has_the_documented_shape_and_count_updates_share_its_alias():
    with OpsgenieReceiver(key=KEY) as api:
        s = og(api.url, "&realert=0&tags=k8s,{{ .Reason }},{{ .Reason }}&responders=team:platform"
                        "&responders=user:ops@example.com&visible_to=team:sre&priority=P2")  # fmt: skip
        first = event(reason="BackOff", obj="web-1")
        assert (
            s.write([first, bump(first, 2), event(reason="OOMKilling", obj="web-1")]) == Outcome()
        )
    assert api.problems == []
    assert [r.headers["authorization"] for r in api.requests] == [f"GenieKey {KEY}"] * 3
    body = api.messages[0]
    assert body["message"] == "[test] Warning BackOff: Pod shop/web-1"
    assert body["alias"] == "test/shop/Pod/web-1/BackOff"
    assert body["priority"] == "P2" and body["tags"] == ["k8s", "BackOff"]
    assert body["responders"] == [
        {"type": "team", "name": "platform"}, {"type": "user", "username": "ops@example.com"},
    ]  # fmt: skip
    assert body["visibleTo"] == [{"type": "team", "name": "sre"}]
    assert body["details"]["uid"] == first.uid and body["details"]["count"] == "1"
    assert "Reason: BackOff" in body["description"]
    assert {alias: a["count"] for alias, a in api.alerts.items()} == {
        "test/shop/Pod/web-1/BackOff": 2, "test/shop/Pod/web-1/OOMKilling": 1,
    }  # fmt: skip


def test_the_exporter_readme_templates_render_and_limits_hold():
    with OpsgenieReceiver(key=KEY) as api:
        s = og(api.url, "&alias={{ .UID }}&description=<pre>{{ toPrettyJson . }}</pre>"
                        "&message=Event {{ .Reason }} for {{ .InvolvedObject.Namespace }}/"
                        "{{ .InvolvedObject.Name }} on K8s cluster {{ .Message }}")  # fmt: skip
        e = event(message="m" * 20000, obj="x" * 200)
        assert s.write([e]) == Outcome()
    assert api.problems == []  # every limit kept: message 130, description 15000, details 8000
    [body] = api.messages
    assert body["alias"] == e.uid
    assert len(body["message"]) == 130 and body["message"].startswith("Event BackOff for shop/x")
    assert body["description"].startswith('<pre>{\n  "kind": "Event"')
    assert len(body["description"]) == 15000


def test_hosts_by_region_and_the_originals_url_key():
    assert sink(f"opsgenie:?api_key={KEY}", opened=False).api == "https://api.opsgenie.com"
    assert sink(f"opsgenie:?api_key={KEY}&region=eu", opened=False).api == "https://api.eu.opsgenie.com"  # fmt: skip
    assert sink(f"opsgenie:?api_key={KEY}&URL=api.eu.opsgenie.com", opened=False).api == "https://api.eu.opsgenie.com"  # fmt: skip
    assert KEY not in sink(f"opsgenie:?api_key={KEY}", opened=False).describe()


def test_a_wrong_key_is_retried_in_one_line_without_the_key():
    with OpsgenieReceiver(key="the-right-key-42") as api:
        reason = failure(og(api.url).write([event()]))
    assert reason == (
        "Opsgenie refused the API key (HTTP 401: Could not authenticate); check api_key and that"
        " its integration may create alerts"
    )
    assert KEY not in reason


def test_422_dead_letters_that_event_alone_and_429_retries_after_retry_after():
    with OpsgenieReceiver(key=KEY) as api:
        s = og(api.url)
        api.inject.append((422, {"message": "Request body is not processable. Please check the errors.",
                                 "errors": {"message": "Message can not be empty."}, "took": 0.0,
                                 "requestId": "r1"}))  # fmt: skip
        outcome = s.write([event(obj="a"), event(obj="b")])
        assert [r.index for r in outcome.rejected] == [0] and not outcome.retry
        assert "Message can not be empty." in outcome.rejected[0].reason
        api.inject.append((429, {"message": "You are making too many requests!"}, {"Retry-After": "7"}))  # fmt: skip
        outcome = s.write([event(obj="c"), event(obj="d")])
        assert [(r.index, r.after) for r in outcome.retry] == [(0, 7.0), (1, 7.0)]
    assert [m["alias"].rsplit("/", 2)[1] for m in api.messages] == ["b"]


def test_bad_uris():
    for uri, expected in [
        ("opsgenie:", "no API key"),
        (f"opsgenie:?api_key={KEY}&priority=P9", "parameter priority='P9'"),
        (f"opsgenie:?api_key={KEY}&responders=group:x", "expected TYPE:NAME"),
        (f"opsgenie:?api_key={KEY}&alias={{{{ .Nope | shout }}}}", "parameter alias"),
    ]:
        with pytest.raises(UsageError) as caught:
            sink(uri, opened=False)
        assert expected in str(caught.value), caught.value

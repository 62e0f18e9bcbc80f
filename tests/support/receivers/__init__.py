"""Local stand-ins for the chat vendors' APIs, on 127.0.0.1 (HTTP or HTTPS).

DingTalk, WeCom, Slack, Lark/Feishu and Teams cannot be reached from the test machines, so
each receiver here checks a request the way the vendor documents it (path, query, headers,
body shape, size limits, signatures computed independently of the sink's code) and answers
with the vendor's own reply shapes, error codes included: a 200 with ``errcode`` 310000 for a
bad DingTalk signature, 130101 past 20 messages a minute, Slack's ``{"ok": false}`` and
HTTP 429 with Retry-After, and so on. A request that breaks the documented format is
recorded in ``problems`` (a test asserts there are none) and refused as the vendor would.

    with DingTalkReceiver(token="T", secret="SEC1") as robot:
        ... --sink=dingtalk:{robot.url}/robot/send?access_token=T&sign=SEC1 ...
        robot.messages        # the accepted message bodies, in order
        robot.inject.append((200, {"errcode": 130101, "errmsg": "send too fast"}))

One module per vendor, as in :mod:`shipper.sinks.notify`; the in-process helpers (events,
sinks built from URIs, :class:`~tests.support.notify.Fed`) are in :mod:`tests.support.notify`
and importable from here too.
"""

from tests.support.notify import HOSTILE, Fed, bump, event, failure, sink
from tests.support.receivers.base import Receiver, Reply, Request, Window
from tests.support.receivers.dingtalk import DingTalkReceiver
from tests.support.receivers.lark import LarkReceiver
from tests.support.receivers.slack import SlackReceiver
from tests.support.receivers.teams import TeamsReceiver
from tests.support.receivers.webhook import WebhookReceiver
from tests.support.receivers.wecom import WeComReceiver

__all__ = [
    "HOSTILE", "DingTalkReceiver", "Fed", "LarkReceiver", "Receiver", "Reply", "Request",
    "SlackReceiver", "TeamsReceiver", "WeComReceiver", "WebhookReceiver", "Window", "bump",
    "event", "failure", "sink",
]  # fmt: skip

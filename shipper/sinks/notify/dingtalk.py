"""``dingtalk:https://oapi.dingtalk.com/robot/send?access_token=T``: a DingTalk group robot.

URI (kube-eventer's parameters work as written)::

    dingtalk:https://oapi.dingtalk.com/robot/send?access_token=$DINGTALK_TOKEN&label=prod&level=Warning
    dingtalk:https://oapi.dingtalk.com/robot/send?access_token=T&sign_file=/secrets/sign&msg_type=markdown&at_mobiles=13800000000
    dingtalk:https://oapi.dingtalk.com/robot/send?access_token=T&namespaces=shop,payments&kinds=Pod&at_all=true

``access_token`` stays on the robot's URL (its query is passed through). ``sign`` is the robot's
"加签" secret (``SEC...``): every request carries ``timestamp`` (ms) and ``sign`` =
URL-encoded base64 of HMAC-SHA256(key=secret, message=timestamp + "\\n" + secret).
``label`` lines head every message: a robot with a keyword check needs its keyword there.
``msg_type=text`` prints kube-eventer's layout (Level, Kind, Namespace, Name, Reason, Count,
Timestamp, Message); ``markdown`` a title and the same lines. ``at_mobiles`` / ``at_user_ids``
/ ``at_all`` mention people (their @ is added to the text, as DingTalk requires). Default
level: Warning (kube-eventer's); every filter of the pipeline applies (``namespaces``, ``kinds``,
``reason``, ``exclude_*``).

Schema: ``{"msgtype": "text", "text": {"content": ...}, "at": {...}, "msgUuid": ...}`` or
``{"msgtype": "markdown", "markdown": {"title": ..., "text": ...}, "at": {...}}``. ``msgUuid``
is the event version, so DingTalk drops a message resent after a timeout.

Replies: ``{"errcode": 0}`` is success. 130101 / 130102 / 660026 (send too fast) hold events in
a digest; 310000 (sign, keyword, IP allow-list, timestamp), 300001 / 300005 / 400101 / 400102
(token, robot stopped) and -1 (busy) are retried with backoff (an operator must fix them, or
DingTalk recover); anything else (message too long, bad parameter) dead-letters that message
with DingTalk's own words. Rate: 20 messages per minute per robot, DingTalk's limit.

Guarantee: at least once per alert; a count update within ``realert`` is not re-sent; events
past the rate limit arrive as one digest message. After a crash, messages of the last
checkpoint interval may be sent again (``msgUuid`` lets DingTalk drop them).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote_plus

from shipper.sinks.base import TransientError
from shipper.sinks.notify import (
    KUBE_EVENTER_MESSAGE,
    ChatOptions,
    Notification,
    NotifierSink,
    RateLimited,
    Refused,
    hmac_sha256_b64,
)
from shipper.spec import option
from shipper.uri import choice

log = logging.getLogger(__name__)
RATE_LIMITED = {130101, 130102, 660026}
OPERATOR = {310000, 300001, 300005, 400101, 400102, 410100, -1}


@dataclass(frozen=True, kw_only=True)
class DingTalkOptions(ChatOptions):
    DEFAULTS = {**ChatOptions.DEFAULTS, **{"rate": ["20/1m"]}}

    sign: str | None = option(None, "The robot's signing secret (SEC...): adds timestamp and sign to every request.", secret=True, aliases=("secret",))  # fmt: skip
    msg_type: str = option("text", "Message type.", parse=choice("text", "markdown"))
    at_mobiles: list[str] = option([], "Mobile numbers to @mention (repeatable or comma-separated).")  # fmt: skip
    at_user_ids: list[str] = option([], "DingTalk user ids to @mention.")
    at_all: bool = option(False, "@everyone in the group.")
    region: str | None = option(None, "Accepted for kube-eventer compatibility; unused.")


class DingTalkSink(NotifierSink):
    scheme = "dingtalk"
    summary = "DingTalk group robot (text or markdown, signed, @mentions, digests past 20/min)"
    vendor = "DingTalk"
    url_keys = ("access_token", "timestamp")
    max_text = 18000
    default_message = KUBE_EVENTER_MESSAGE
    default_fields = ()
    Options = DingTalkOptions
    options: DingTalkOptions
    usage = "dingtalk:https://oapi.dingtalk.com/robot/send?access_token=TOKEN"
    example = "dingtalk:https://oapi.dingtalk.com/robot/send?access_token=$DINGTALK_TOKEN&sign_file=/secrets/sign&label=prod&level=Warning"
    guarantee = (
        "at least once per alert (msgUuid lets DingTalk drop a resend); count updates within"
        " realert are not re-sent; events past 20/min arrive as one digest message"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.require(
            "://" in self.uri.rest,
            "expected dingtalk:https://oapi.dingtalk.com/robot/send?access_token=TOKEN",
        )
        self.require(dict(self.leftover).get("access_token"), "you must provide the robot's access_token")  # fmt: skip
        self._drop_precomputed_signature()
        self.url = self.vendor_url()

    def _drop_precomputed_signature(self) -> None:
        """A robot URL copied with ``timestamp=...&sign=...`` carries a signature DingTalk
        refuses an hour later: drop it, and sign each request when the secret (SEC...) is
        known. A ``sign`` that is not the secret is that stale signature, not the secret."""
        if "timestamp" not in dict(self.leftover):
            return
        self.leftover = [(k, v) for k, v in self.leftover if k != "timestamp"]
        if self.options.sign and not self.options.sign.startswith("SEC"):
            self.options = replace(self.options, sign=None)
        log.warning(
            "%s: the URL's timestamp and sign are a signature that expires within an hour;"
            " dropped. %s",
            self.where,
            "Each request is signed with sign=SEC..."
            if self.options.sign
            else "Give the robot's secret as sign=SEC... (or sign_file=) to sign each request.",
        )

    def payload(self, n: Notification) -> dict[str, Any]:
        o = self.options
        mentions = [f"@{m}" for m in (*o.at_mobiles, *o.at_user_ids)]
        at = {"atMobiles": o.at_mobiles, "atUserIds": o.at_user_ids, "isAtAll": o.at_all}
        if o.msg_type == "markdown":
            lines = [f"#### {n.title}", *n.labels, *n.text.split("\n")]
            lines += [f"**{name}**: {value}" for name, value in n.fields if value]
            if n.link:
                lines.append(f"[Open]({n.link})")
            if mentions:
                lines.append(" ".join(mentions))
            body = {"title": n.title, "text": "\n\n".join(line for line in lines if line)}
            message: dict[str, Any] = {"msgtype": "markdown", "markdown": body}
        else:
            content = n.lines() + ("\n" + " ".join(mentions) if mentions else "")
            message = {"msgtype": "text", "text": {"content": content}}
        return {**message, "at": at, "msgUuid": n.key}

    def deliver(self, n: Notification) -> None:
        url = self.url
        if self.options.sign:
            stamp = str(int(time.time() * 1000))
            sign = hmac_sha256_b64(self.options.sign, f"{stamp}\n{self.options.sign}")
            url += f"&timestamp={stamp}&sign={quote_plus(sign)}"
        reply = self.http.post_json(url, self.payload(n))
        body = reply.json()
        if isinstance(body, dict) and body.get("errcode") not in (None, 0):
            code, text = body["errcode"], str(body.get("errmsg", ""))[:300]
            if code in RATE_LIMITED:
                raise RateLimited(f"errcode {code}: {text}", reply.retry_after())
            if code in OPERATOR:
                raise TransientError(
                    f"DingTalk refused the robot's request: errcode {code}: {text}"
                )
            raise Refused(f"errcode {code}: {text}")
        self.status_error(reply)

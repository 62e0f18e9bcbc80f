"""``wechat:?corp_id=&corp_secret=&agent_id=`` (``wecom:`` too): WeCom (企业微信) messages.

Two ways in, chosen by the URI::

    wechat:?corp_id=ww123&corp_secret_file=/secrets/wecom&agent_id=1000002&to_user=@all
    wechat:?corp_id=ww123&corp_secret=$WECOM_SECRET&agent_id=1000002&to_user=alice,bob&msg_type=markdown
    wecom:https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=$WECOM_ROBOT_KEY&at_all=true

The first is kube-eventer's form, the application message API: ``GET /cgi-bin/gettoken``
(corp_id + corp_secret) gives an access token that is cached until shortly before its
``expires_in`` runs out (one token for all messages, never one per message; fetched again at
once if WeCom says it expired, 40014 / 42001 / 41001), then ``POST /cgi-bin/message/send``
with ``touser`` (kube-eventer's comma-separated ``to_user`` is sent as WeCom's ``a|b``),
``toparty``, ``totag``, ``agentid``. The second is a group robot's webhook URL (its ``key``
stays on the URL); ``at_user_ids`` / ``at_mobiles`` / ``at_all`` fill ``mentioned_list`` /
``mentioned_mobile_list`` (text messages). ``api_url`` points the application API elsewhere
(a proxy in front of qyapi.weixin.qq.com).

Schema: ``{"msgtype": "text", "text": {"content": ...}}`` (or ``markdown`` /
``{"content": ...}``), plus ``touser``/``agentid``... for the application API. Text is cut at
WeCom's 2048 bytes (markdown 4096).

Replies: ``errcode`` 0 is success. 45009 / 45033 (API frequency / concurrency limits) hold
events in a digest; -1 (busy), 40001 / 40013 / 40091 (corp_id or secret), 40056 (agent_id),
60020 (IP not allowed), 81013 (no valid recipient), 93000 (robot key) are retried with
backoff for an operator to fix; anything else dead-letters that message with WeCom's words.
Rate: 20 messages per minute, the robot's limit (WeCom's application API allows 30 per
minute per member). Default level: Warning (kube-eventer's).

Guarantee: at least once per alert; count updates within ``realert`` are not re-sent; events
past the rate limit arrive as one digest message.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from shipper.sinks.base import TransientError
from shipper.sinks.notify import (
    KUBE_EVENTER_MESSAGE,
    ChatOptions,
    Notification,
    NotifierSink,
    RateLimited,
    Refused,
    Reply,
)
from shipper.spec import option
from shipper.uri import UsageError, choice

log = logging.getLogger(__name__)

RATE_LIMITED = {45009, 45033}
TOKEN_EXPIRED = {40014, 42001, 41001}
OPERATOR = {-1, 40001, 40013, 40091, 40056, 60020, 81013, 93000, 48002}


@dataclass(frozen=True, kw_only=True)
class WeChatOptions(ChatOptions):
    DEFAULTS = {**ChatOptions.DEFAULTS, **{"rate": ["20/1m"]}}

    corp_id: str | None = option(None, "Corp ID (application API).")
    corp_secret: str | None = option(None, "The application's secret.", secret=True)
    agent_id: int | None = option(None, "The application's AgentId.", parse=int)
    to_user: list[str] = option(["@all"], "Recipients: user ids (comma-separated) or @all.")
    to_party: list[str] = option([], "Department ids.")
    to_tag: list[str] = option([], "Tag ids.")
    msg_type: str = option("text", "Message type.", parse=choice("text", "markdown"))
    at_user_ids: list[str] = option([], "Robot: user ids to @mention (mentioned_list).")
    at_mobiles: list[str] = option([], "Robot: mobile numbers to @mention.")
    at_all: bool = option(False, "Robot: @all.")
    api_url: str = option("https://qyapi.weixin.qq.com", "Base URL of the application API.")


class WeChatSink(NotifierSink):
    scheme = "wechat"
    aliases = ("wecom",)
    summary = "WeCom application messages (cached access token) or a WeCom group robot"
    vendor = "WeCom"
    url_keys = ("key",)
    max_text = 2048
    default_message = KUBE_EVENTER_MESSAGE
    default_fields = ()
    Options = WeChatOptions
    options: WeChatOptions
    usage = "wechat:?corp_id=ID&corp_secret=SECRET&agent_id=ID or wecom:https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY"
    example = "wechat:?corp_id=ww1&corp_secret_file=/secrets/wecom&agent_id=1000002&to_user=@all"
    guarantee = (
        "at least once per alert; count updates within realert are not re-sent; events past"
        " 20/min arrive as one digest message"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o = self.options
        # kube-eventer's docs write wechat:https://wechat?corp_id=...: with the application's
        # parameters the URL is a placeholder it never calls, and so is it here.
        self.robot = "://" in self.uri.rest and not o.corp_id
        if self.robot:
            self.require(dict(self.leftover).get("key"), "a group robot URL needs its key=...")
            self.url = self.vendor_url()
        else:
            if self.leftover:
                raise UsageError(f"{self.where}: unknown parameter {self.leftover[0][0]!r}")
            for name in ("corp_id", "corp_secret", "agent_id"):
                if getattr(o, name) in (None, ""):
                    raise UsageError(
                        f"{self.where}: you must provide {name} (or give a group robot URL:"
                        " wechat:https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY)"
                    )
            self.api = o.api_url.rstrip("/")
        self.max_text = 4096 if o.msg_type == "markdown" else 2048
        self._token: str | None = None
        self._token_expires = 0.0
        self.token_fetches = 0

    def target(self) -> str:
        return super().target() if self.robot else f"{self.api} agent {self.options.agent_id}"

    def open(self) -> None:
        if not self.robot:
            self._access_token()  # credentials are checked at start: one clear line if wrong
        super().open()

    def _access_token(self, refresh: bool = False) -> str:
        if self._token and not refresh and time.monotonic() < self._token_expires:
            return self._token
        o = self.options
        query = urlencode({"corpid": o.corp_id, "corpsecret": o.corp_secret})
        reply = self.http.request("GET", f"{self.api}/cgi-bin/gettoken?{query}")
        body = reply.json()
        if (
            not isinstance(body, dict)
            or body.get("errcode", 0) != 0
            or not body.get("access_token")
        ):
            detail = (
                f"errcode {body.get('errcode')}: {str(body.get('errmsg', ''))[:200]}"
                if isinstance(body, dict)
                else f"HTTP {reply.status}"
            )
            raise TransientError(
                f"WeCom gettoken failed for corp_id {o.corp_id} ({detail}); check corp_id and"
                " corp_secret"
            )
        self.token_fetches += 1
        self._token = str(body["access_token"])
        self.add_secret(self._token)
        expires = float(body.get("expires_in") or 7200)
        self._token_expires = time.monotonic() + max(60.0, expires - 300.0)
        return self._token

    def payload(self, n: Notification) -> dict[str, Any]:
        o = self.options
        text = n.lines() if o.msg_type == "text" else self.markdown(n)
        message: dict[str, Any] = {"msgtype": o.msg_type, o.msg_type: {"content": text}}
        if self.robot:
            if o.msg_type == "text":
                mentioned = [*o.at_user_ids, *(["@all"] if o.at_all else [])]
                if mentioned:
                    message["text"]["mentioned_list"] = mentioned
                if o.at_mobiles:
                    message["text"]["mentioned_mobile_list"] = o.at_mobiles
            return message
        return {
            "touser": "|".join(o.to_user),
            "toparty": "|".join(o.to_party),
            "totag": "|".join(o.to_tag),
            "agentid": o.agent_id,
            **message,
            "safe": 0,
        }

    def markdown(self, n: Notification) -> str:
        lines = [f"### {n.title}", *n.labels, n.text]
        lines += [f"**{name}**: {value}" for name, value in n.fields if value]
        if n.link:
            lines.append(f"[Open]({n.link})")
        return "\n".join(line for line in lines if line)

    def deliver(self, n: Notification) -> None:
        payload = self.payload(n)
        if self.robot:
            self._check(self.http.post_json(self.url, payload))
            return
        for attempt in (1, 2):
            token = self._access_token(refresh=attempt == 2)
            reply = self.http.post_json(
                f"{self.api}/cgi-bin/message/send?access_token={token}", payload
            )
            body = reply.json()
            if attempt == 1 and isinstance(body, dict) and body.get("errcode") in TOKEN_EXPIRED:
                continue
            self._check(reply)
            if isinstance(body, dict) and (body.get("invaliduser") or body.get("invalidparty")):
                log.warning(
                    "Sink %s: WeCom did not deliver to invalid recipients (invaliduser=%s,"
                    " invalidparty=%s).", self.name, body.get("invaliduser"), body.get("invalidparty"),
                )  # fmt: skip
            return

    def _check(self, reply: Reply) -> None:
        body = reply.json()
        if isinstance(body, dict) and body.get("errcode") not in (None, 0):
            code, text = body["errcode"], str(body.get("errmsg", ""))[:300]
            if code in RATE_LIMITED:
                raise RateLimited(f"errcode {code}: {text}", reply.retry_after())
            if code in OPERATOR or code in TOKEN_EXPIRED:
                raise TransientError(f"WeCom refused the request: errcode {code}: {text}")
            raise Refused(f"errcode {code}: {text}")
        self.status_error(reply)

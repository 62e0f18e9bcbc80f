"""``lark:`` / ``feishu:``: a Lark (Feishu, 飞书) group custom bot's webhook.

URI::

    feishu:https://open.feishu.cn/open-apis/bot/v2/hook/$FEISHU_HOOK?sign_file=/secrets/feishu-sign
    lark:https://open.larksuite.com/open-apis/bot/v2/hook/UUID?msg_type=text&at_all=true
    feishu:https://open.feishu.cn/open-apis/bot/v2/hook/UUID?label=prod&link_template=https://grafana/d/x?var-ns={{ .InvolvedObject.Namespace }}

``sign`` is the bot's signature secret: every body carries ``timestamp`` (Unix seconds, as a
string) and ``sign`` = base64 of HMAC-SHA256 with *key* ``timestamp + "\\n" + secret`` over an
empty message (Lark's algorithm; DingTalk's differs: its key is the secret and the message
is that string, and it signs the URL, not the body). ``label`` lines head every message, for
bots with a keyword check.

``msg_type=interactive`` (default, as kube-eventer's feishu sink): a card with a header whose
colour follows the event type (red Warning, green Normal, yellow digest), the message in
``lark_md``, the fields two by two, an Open button for ``link_template``. ``msg_type=text``:
plain lines. ``at_all`` / ``at_user_ids`` (open_id or user_id) add ``<at>`` mentions.

Replies: ``{"code": 0}`` (or the older ``{"StatusCode": 0}``) is success. 11232 and 230020
(frequency limits) and HTTP 429 hold events in a digest; 19021 (signature or timestamp),
19022 (IP not allowed), 19024 (keyword missing), 19001 (hook token) and 5xx are retried with
backoff for an operator to fix; anything else (9499 bad request, a card Lark rejects)
dead-letters that message with Lark's words. Rate: 100 per minute and 5 per second, Lark's
custom-bot limits. Default level: Warning.

Guarantee: at least once per alert; count updates within ``realert`` are not re-sent; events
past the rate limit arrive as one digest message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from shipper.sinks.base import TransientError
from shipper.sinks.notify import (
    ChatOptions,
    Notification,
    NotifierSink,
    RateLimited,
    Refused,
    hmac_sha256_b64,
)
from shipper.spec import option
from shipper.uri import choice

RATE_LIMITED = {11232, 230020, 99991400}
OPERATOR = {19021, 19022, 19024, 19001, 19002}
TEMPLATES = {"#E01E5A": "red", "#2EB67D": "green", "#ECB22E": "yellow"}


@dataclass(frozen=True, kw_only=True)
class LarkOptions(ChatOptions):
    DEFAULTS = {**ChatOptions.DEFAULTS, **{"rate": ["100/1m", "5/1s"]}}

    sign: str | None = option(None, "The bot's signature secret: adds timestamp and sign to every body.", secret=True, aliases=("secret",))  # fmt: skip
    msg_type: str = option("interactive", "Message type.", parse=choice("interactive", "text"))
    at_all: bool = option(False, "@all.")
    at_user_ids: list[str] = option([], "open_id or user_id values to @mention.")
    region: str | None = option(None, "Accepted for kube-eventer compatibility; unused.")


class LarkSink(NotifierSink):
    scheme = "lark"
    aliases = ("feishu",)
    summary = "Lark / Feishu custom bot (interactive card or text, signed)"
    vendor = "Lark"
    max_text = 20000
    Options = LarkOptions
    options: LarkOptions
    usage = "lark:https://open.feishu.cn/open-apis/bot/v2/hook/TOKEN"
    example = "lark:https://open.feishu.cn/open-apis/bot/v2/hook/$LARK_HOOK&sign_file=/secrets/lark"
    guarantee = (
        "at least once per alert; count updates within realert are not re-sent; events past"
        " 100/min or 5/s arrive as one digest message"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.require("://" in self.uri.rest, f"expected {self.scheme}:https://open.feishu.cn/open-apis/bot/v2/hook/TOKEN")  # fmt: skip
        self.url = self.vendor_url()
        self.add_secret(self.uri.rest, self.uri.rest.rstrip("/").rpartition("/")[2])

    def mentions(self, card: bool) -> str:
        o = self.options
        ids = [*(["all"] if o.at_all else []), *o.at_user_ids]
        if card:
            return " ".join(f"<at id={i}></at>" for i in ids)
        return " ".join(f'<at user_id="{i}">{"所有人" if i == "all" else ""}</at>' for i in ids)

    def payload(self, n: Notification) -> dict[str, Any]:
        if self.options.msg_type == "text":
            text = "\n".join(p for p in (n.title, n.lines(), self.mentions(False)) if p)
            message: dict[str, Any] = {"msg_type": "text", "content": {"text": text}}
        else:
            body = "\n".join(p for p in (*n.labels, n.text, self.mentions(True)) if p)
            elements: list[dict[str, Any]] = [
                {"tag": "div", "text": {"tag": "lark_md", "content": body}}
            ]
            fields = [(k, v) for k, v in n.fields if v]
            if fields:
                elements.append({"tag": "div", "fields": [
                    {"is_short": True, "text": {"tag": "lark_md", "content": f"**{k}**\n{v}"}} for k, v in fields
                ]})  # fmt: skip
            if n.link:
                elements.append({"tag": "action", "actions": [{
                    "tag": "button", "text": {"tag": "plain_text", "content": "Open"},
                    "url": n.link, "type": "default",
                }]})  # fmt: skip
            message = {"msg_type": "interactive", "card": {
                "config": {"wide_screen_mode": True, "enable_forward": True},
                "header": {"title": {"tag": "plain_text", "content": n.title},
                           "template": TEMPLATES.get(n.color.upper(), "blue")},
                "elements": elements,
            }}  # fmt: skip
        secret = self.options.sign
        if secret:
            stamp = str(int(time.time()))
            message = {
                "timestamp": stamp,
                "sign": hmac_sha256_b64(f"{stamp}\n{secret}", ""),
                **message,
            }
        return message

    def deliver(self, n: Notification) -> None:
        reply = self.http.post_json(self.url, self.payload(n))
        body = reply.json()
        if isinstance(body, dict):
            code = body.get("code", body.get("StatusCode", 0))
            text = str(body.get("msg", body.get("StatusMessage", "")))[:300]
            if code in RATE_LIMITED or reply.status == 429:
                raise RateLimited(f"code {code}: {text}", reply.retry_after())
            if code in OPERATOR:
                raise TransientError(f"Lark refused the bot's request: code {code}: {text}")
            if code not in (0, None):
                if reply.status >= 500:
                    raise TransientError(f"Lark answered HTTP {reply.status}: code {code}: {text}")
                raise Refused(f"code {code}: {text}")
        self.status_error(reply)

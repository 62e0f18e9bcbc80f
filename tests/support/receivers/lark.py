"""Lark / Feishu custom bot: POST /open-apis/bot/v2/hook/TOKEN."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from tests.support.receivers.base import Receiver, Reply, Request, _is_str


class LarkReceiver(Receiver):
    """https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot"""

    def __init__(
        self, hook: str = "6b1f2c1e-aaaa-bbbb-cccc-0123456789ab", secret: str | None = None,
        keyword: str | None = None, **kw: Any,
    ) -> None:  # fmt: skip
        super().__init__(**kw)
        self.hook, self.secret, self.keyword = hook, secret, keyword
        self.limit(100, 60.0).limit(5, 1.0)

    @staticmethod
    def expected_sign(timestamp: str, secret: str) -> str:
        key = f"{timestamp}\n{secret}".encode()
        return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()

    def route(self, request: Request) -> Reply:
        def err(code: int, msg: str, status: int = 200) -> Reply:
            return status, {"code": code, "data": {}, "msg": msg}, {}

        if request.path != f"/open-apis/bot/v2/hook/{self.hook}":
            return err(19001, "param invalid: incoming webhook access token invalid")
        body = self.json_body(request)
        if body is None:
            return err(9499, "Bad Request", 400)
        if self.secret is not None:
            stamp, sign = body.get("timestamp"), body.get("sign")
            if not (_is_str(stamp) and stamp.isdigit()) or abs(time.time() - int(stamp)) > 3600:
                return err(
                    19021, "sign match fail or timestamp is not within one hour from current time"
                )
            if sign != self.expected_sign(stamp, self.secret):
                return err(
                    19021, "sign match fail or timestamp is not within one hour from current time"
                )
        kind = body.get("msg_type")
        if kind == "text":
            text = (body.get("content") or {}).get("text")
            if not _is_str(text) or not text:
                return err(9499, self.problem("content.text is required"), 400)
            shown = text
        elif kind == "interactive":
            card = body.get("card") or {}
            title = (card.get("header") or {}).get("title") or {}
            if title.get("tag") != "plain_text" or not _is_str(title.get("content")):
                return err(9499, self.problem("card.header.title must be plain_text"), 400)
            if (card.get("header") or {}).get("template") not in (
                None,
                "blue",
                "wathet",
                "turquoise",
                "green",
                "yellow",
                "orange",
                "red",
                "carmine",
                "violet",
                "purple",
                "indigo",
                "grey",
            ):
                return err(9499, self.problem("card.header.template is not a Lark colour"), 400)
            elements = card.get("elements")
            if not isinstance(elements, list) or not elements:
                return err(9499, self.problem("card.elements is required"), 400)
            for element in elements:
                if element.get("tag") not in ("div", "hr", "action", "note", "markdown", "img"):
                    return err(
                        9499, self.problem(f"unknown card element {element.get('tag')!r}"), 400
                    )
            shown = json.dumps(card, ensure_ascii=False)
        else:
            return err(9499, self.problem(f"unsupported msg_type {kind!r}"), 400)
        if self.keyword and self.keyword not in shown:
            return err(19024, "Key Words Not Found")
        if self.over_limit(request):
            return err(11232, "frequency limited psm[lark.oapi.app_platform_runtime]appID[1]")
        self.messages.append(body)
        return (
            200,
            {"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"},
            {},
        )

"""DingTalk custom robot: POST /robot/send?access_token=T[&timestamp=&sign=]."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from tests.support.receivers.base import Receiver, Reply, Request, _is_str, _str_list


class DingTalkReceiver(Receiver):
    """https://open.dingtalk.com/document/orgapp/custom-robots-send-group-messages"""

    def __init__(
        self, token: str, secret: str | None = None, keyword: str | None = None, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.token, self.secret, self.keyword = token, secret, keyword
        self.uuids: set[str] = set()
        self.limit(20, 60.0)

    @staticmethod
    def expected_sign(timestamp: str, secret: str) -> str:
        string_to_sign = f"{timestamp}\n{secret}"
        digest = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256)
        return base64.b64encode(digest.digest()).decode()

    def route(self, request: Request) -> Reply:
        def err(code: int, msg: str) -> Reply:
            return 200, {"errcode": code, "errmsg": msg}, {}

        if request.method != "POST" or request.path != "/robot/send":
            return 404, "Not Found", {}
        if request.query.get("access_token") != self.token:
            return err(300001, "token is not exist")
        if self.secret is not None:
            stamp, sign = request.query.get("timestamp", ""), request.query.get("sign")
            if not stamp.isdigit() or abs(time.time() * 1000 - int(stamp)) > 3600_000:
                return err(
                    310000,
                    "invalid timestamp, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]",
                )
            # parse_qsl already URL-decoded the sign: compare with the raw base64
            if sign != self.expected_sign(stamp, self.secret):
                return err(
                    310000,
                    "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]",
                )
        if len(request.body) > 20000:
            return err(460101, "message too long, exceed 20000 bytes")
        body = self.json_body(request)
        if body is None:
            return err(40035, "缺少参数 json")
        kind = body.get("msgtype")
        if kind == "text":
            content = (body.get("text") or {}).get("content")
            if not _is_str(content) or not content:
                return err(40035, self.problem("text.content is missing"))
        elif kind == "markdown":
            md = body.get("markdown") or {}
            if not (_is_str(md.get("title")) and _is_str(md.get("text")) and md["text"]):
                return err(40035, self.problem("markdown.title and markdown.text are required"))
            content = md["text"]
        else:
            return err(40008, self.problem(f"unsupported msgtype {kind!r}"))
        at = body.get("at", {})
        if (
            not isinstance(at, dict)
            or not _str_list(at.get("atMobiles", []))
            or not isinstance(at.get("isAtAll", False), bool)
        ):
            return err(40035, self.problem(f"bad at: {at!r}"))
        for mobile in at.get("atMobiles", []):
            if f"@{mobile}" not in content:
                self.problem(f"@{mobile} is in at.atMobiles but not in the content")
        if self.keyword and self.keyword not in content:
            return err(
                310000,
                "keywords not in content, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]",
            )
        if self.over_limit(request):
            return err(130101, "send too fast, exceed 20 times per minute")
        if body.get("msgUuid") in self.uuids:
            return err(0, "ok")  # idempotent: already shown
        if body.get("msgUuid"):
            self.uuids.add(body["msgUuid"])
        self.messages.append(body)
        return err(0, "ok")

"""WeCom: application API (gettoken + message/send) and group robot (webhook/send?key=)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.support.receivers.base import Receiver, Reply, Request, _is_str, _str_list


class WeComReceiver(Receiver):
    """https://developer.work.weixin.qq.com/document/path/91039 (gettoken),
    /90236 (message/send), /91770 (group robot)."""

    def __init__(
        self, corp_id: str = "ww1", secret: str = "S", agent_id: int = 1000002,
        robot_key: str = "K", expires_in: int = 7200, **kw: Any,
    ) -> None:  # fmt: skip
        super().__init__(**kw)
        self.corp_id, self.secret, self.agent_id = corp_id, secret, agent_id
        self.robot_key, self.expires_in = robot_key, expires_in
        self.tokens: dict[str, float] = {}
        self.gettoken_calls = 0
        self.limit(20, 60.0)

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def route(self, request: Request) -> Reply:
        def err(code: int, msg: str, **extra: Any) -> Reply:
            return 200, {"errcode": code, "errmsg": msg, **extra}, {}

        if request.path == "/cgi-bin/gettoken" and request.method == "GET":
            self.gettoken_calls += 1
            if request.query.get("corpid") != self.corp_id:
                return err(40013, "invalid corpid")
            if request.query.get("corpsecret") != self.secret:
                return err(40001, "invalid credential, hint: [1700000000_1_x]")
            token = uuid.uuid4().hex
            self.tokens[token] = time.time() + self.expires_in
            return err(0, "ok", access_token=token, expires_in=self.expires_in)
        if request.path == "/cgi-bin/message/send" and request.method == "POST":
            token = request.query.get("access_token", "")
            if token not in self.tokens:
                return err(40014, "invalid access_token")
            if self.tokens[token] < time.time():
                return err(42001, "access_token expired")
            body = self.json_body(request)
            if body is None:
                return err(40058, "invalid json")
            if body.get("agentid") != self.agent_id:
                return err(40056, "invalid agentid")
            if not any(
                _is_str(body.get(k)) and body.get(k) for k in ("touser", "toparty", "totag")
            ):
                return err(40035, self.problem("no recipient"))
            if "," in body.get("touser", ""):
                self.problem("touser must separate users with |, not commas")
            problem = self._content(body)
            if problem:
                return err(problem[0], problem[1])
            if self.over_limit(request):
                return err(45009, "api freq out of limit")
            self.messages.append(body)
            return err(
                0, "ok", invaliduser="", invalidparty="", invalidtag="", msgid=uuid.uuid4().hex
            )
        if request.path == "/cgi-bin/webhook/send" and request.method == "POST":
            if request.query.get("key") != self.robot_key:
                return err(93000, "invalid webhook url, hint: [1700000000_1_x]")
            body = self.json_body(request)
            if body is None:
                return err(40058, "invalid json")
            problem = self._content(body)
            if problem:
                return err(problem[0], problem[1])
            text = body.get("text", {})
            for key in ("mentioned_list", "mentioned_mobile_list"):
                if key in text and not _str_list(text[key]):
                    return err(40058, self.problem(f"{key} must be a list of strings"))
            if self.over_limit(request):
                return err(45009, "api freq out of limit")
            self.messages.append(body)
            return err(0, "ok")
        return 404, "not found", {}

    def _content(self, body: dict[str, Any]) -> tuple[int, str] | None:
        kind = body.get("msgtype")
        if kind not in ("text", "markdown"):
            return 40008, self.problem(f"invalid message type {kind!r}")
        content = (body.get(kind) or {}).get("content")
        if not _is_str(content) or not content:
            return 44004, self.problem("empty content")
        limit = 2048 if kind == "text" else 4096
        if len(content.encode()) > limit:
            return 45002, self.problem(
                f"content size out of limit ({len(content.encode())} > {limit})"
            )
        return None

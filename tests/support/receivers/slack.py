"""Slack: Web API (auth.test, chat.postMessage) and incoming webhooks."""

from __future__ import annotations

import time
from typing import Any

from tests.support.receivers.base import Receiver, Reply, Request, Window, _is_str

BLOCK_TYPES = {"section", "context", "actions", "divider", "header", "image", "rich_text"}


class SlackReceiver(Receiver):
    """https://api.slack.com/methods/chat.postMessage, /block-kit, /messaging/webhooks"""

    def __init__(
        self, token: str = "xoxb-1-2-abc", channels: tuple[str, ...] = ("C123",),
        hook_path: str = "/services/T000/B000/XXXXSECRET", **kw: Any,
    ) -> None:  # fmt: skip
        super().__init__(**kw)
        self.token, self.channels, self.hook_path = token, channels, hook_path
        self.channel_windows: dict[str, Window] = {}

    def route(self, request: Request) -> Reply:
        def fail(error: str, status: int = 200, **headers: str) -> Reply:
            return status, {"ok": False, "error": error}, headers

        if request.path == self.hook_path:
            return self._webhook(request)
        if request.path.startswith("/services/"):
            return 404, "no_service", {}
        if not request.path.startswith("/api/"):
            return 404, "not found", {}
        auth = request.headers.get("authorization", "")
        if not auth:
            return fail("not_authed")
        if auth != f"Bearer {self.token}":
            return fail("invalid_auth")
        if request.path == "/api/auth.test":
            return (
                200,
                {
                    "ok": True,
                    "url": "https://example.slack.com/",
                    "team": "T",
                    "user": "bot",
                    "team_id": "T1",
                    "user_id": "U1",
                    "bot_id": "B1",
                },
                {},
            )
        if request.path != "/api/chat.postMessage" or request.method != "POST":
            return fail("unknown_method", 404)
        body = self.json_body(request)
        if body is None:
            return fail("invalid_json")
        channel = body.get("channel")
        if channel not in self.channels:
            return fail("channel_not_found")
        problem = self._message(body)
        if problem:
            return fail(problem)
        window = self.channel_windows.setdefault(channel, Window(1, 1.0))
        if not window.hit(request.at):
            self.refused_rate += 1
            return fail("ratelimited", 429, **{"Retry-After": "1"})
        self.messages.append(body)
        return (
            200,
            {
                "ok": True,
                "channel": channel,
                "ts": f"{time.time():.6f}",
                "message": {"text": body.get("text", "")},
            },
            {},
        )

    def _webhook(self, request: Request) -> Reply:
        if request.method != "POST":
            return 405, "invalid_method", {}
        body = self.json_body(request)
        if body is None:
            return 400, "invalid_payload", {}
        problem = self._message(body)
        if problem:
            return 400, problem, {}
        window = self.channel_windows.setdefault("hook", Window(1, 1.0))
        if not window.hit(request.at):
            self.refused_rate += 1
            return 429, "rate_limited", {"Retry-After": "1"}
        self.messages.append(body)
        return 200, "ok", {}

    def _message(self, body: dict[str, Any]) -> str | None:
        if not (body.get("text") or body.get("blocks") or body.get("attachments")):
            return self.problem("no_text")
        if len(str(body.get("text", ""))) > 40000:
            return self.problem("msg_too_long")
        for attachment in body.get("attachments") or []:
            color = attachment.get("color", "#000000")
            if not (
                color in ("good", "warning", "danger")
                or (color.startswith("#") and len(color) == 7)
            ):
                return self.problem(f"invalid_attachments (color {color!r})")
            for item in attachment.get("fields", []):
                if not (_is_str(item.get("title")) and _is_str(item.get("value"))):
                    return self.problem("invalid_attachments (fields need title and value)")
            problem = self._blocks(attachment.get("blocks", []))
            if problem:
                return problem
        return self._blocks(body.get("blocks", []))

    def _blocks(self, blocks: list[Any]) -> str | None:
        if len(blocks) > 50:
            return self.problem("invalid_blocks (more than 50)")
        for block in blocks:
            kind = block.get("type")
            if kind not in BLOCK_TYPES:
                return self.problem(f"invalid_blocks (type {kind!r})")
            if kind == "section":
                text, fields = block.get("text"), block.get("fields")
                if text is None and not fields:
                    return self.problem("invalid_blocks (a section needs text or fields)")
                if text is not None and (
                    text.get("type") not in ("mrkdwn", "plain_text")
                    or not 0 < len(text.get("text", "")) <= 3000
                ):
                    return self.problem("invalid_blocks (section text must be 1-3000 characters)")
                if fields and (
                    len(fields) > 10 or any(len(f.get("text", "")) > 2000 for f in fields)
                ):
                    return self.problem("invalid_blocks (at most 10 fields of 2000 characters)")
            if kind == "actions":
                for element in block.get("elements", []):
                    if element.get("type") == "button" and not str(
                        element.get("url", "")
                    ).startswith("http"):
                        return self.problem("invalid_blocks (a button url must be http(s))")
        return None

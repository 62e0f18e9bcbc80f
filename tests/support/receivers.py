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
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple[int, Any, dict[str, str]]  # status, body (dict -> JSON, str -> text), headers


class Window:
    """The vendor's own count: at most ``limit`` requests in any ``period`` seconds."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit, self.period, self.times = limit, period, deque[float]()

    def hit(self, now: float) -> bool:
        """Count a request; False if it is over the limit (it is not counted then)."""
        while self.times and self.times[0] <= now - self.period:
            self.times.popleft()
        if len(self.times) >= self.limit:
            return False
        self.times.append(now)
        return True


class Receiver:
    """Base: a threaded HTTP(S) server that records requests and lets ``route`` answer."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Request] = []
        self.messages: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.inject: list[Reply | tuple[int, Any]] = []  # answered before any check, in order
        self.windows: list[Window] = []
        self.refused_rate = 0
        self.delay = 0.0  # seconds to wait before answering (a slow vendor)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall

            def log_message(self, *args: Any) -> None:
                pass

            def handle_any(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                parts = urlsplit(self.path)
                request = Request(
                    self.command,
                    parts.path,
                    dict(parse_qsl(parts.query, keep_blank_values=True)),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.time(),
                )
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver.lock:
                    receiver.requests.append(request)
                    if receiver.inject:
                        status, payload, *extra = receiver.inject.pop(0)
                        headers = extra[0] if extra else {}
                    else:
                        status, payload, headers = receiver.route(request)
                data = payload if isinstance(payload, bytes) else (
                    json.dumps(payload).encode() if isinstance(payload, dict | list)
                    else str(payload).encode()
                )  # fmt: skip
                self.send_response(status)
                ctype = "application/json" if isinstance(payload, dict | list) else "text/plain"
                self.send_header("content-type", f"{ctype}; charset=utf-8")
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def limit(self, limit: int, period: float) -> Receiver:
        self.windows.append(Window(limit, period))
        return self

    def over_limit(self, request: Request) -> bool:
        """Every window must allow the request (checked under the lock)."""
        allowed = all(w.hit(request.at) for w in self.windows)
        if not allowed:
            self.refused_rate += 1
        return not allowed

    def problem(self, text: str) -> str:
        self.problems.append(text)
        return text

    def json_body(self, request: Request) -> dict[str, Any] | None:
        if not request.headers.get("content-type", "").startswith("application/json"):
            self.problem(f"Content-Type {request.headers.get('content-type')!r} is not JSON")
            return None
        try:
            body = request.json()
        except (ValueError, UnicodeDecodeError) as exc:
            self.problem(f"the body is not valid JSON: {exc}")
            return None
        if not isinstance(body, dict):
            self.problem("the body is not a JSON object")
            return None
        return body

    def route(self, request: Request) -> Reply:
        raise NotImplementedError


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


# -- DingTalk custom robot: POST /robot/send?access_token=T[&timestamp=&sign=]


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


# -- WeCom: application API (gettoken + message/send) and group robot (webhook/send?key=)


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


# -- Slack: Web API (auth.test, chat.postMessage) and incoming webhooks


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


# -- Lark / Feishu custom bot: POST /open-apis/bot/v2/hook/TOKEN


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


# -- Teams: Office 365 connector (MessageCard) and Workflows (Adaptive Card)


class TeamsReceiver(Receiver):
    """https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using
    and the Workflows "When a Teams webhook request is received" trigger."""

    CONNECTOR = (
        "/webhookb2/11111111-2222@33333333-4444/IncomingWebhook/abcdef0123456789/55555555-6666"
    )
    WORKFLOW = "/workflows/0123abcd/triggers/manual/paths/invoke"

    def __init__(self, sig: str = "SiGnAtUrE0123456789", **kw: Any) -> None:
        super().__init__(**kw)
        self.sig = sig
        self.limit(4, 1.0).limit(60, 30.0)

    def workflow_url(self) -> str:
        return f"{self.url}{self.WORKFLOW}?api-version=2016-06-01&sp={quote_plus('/triggers/manual/run')}&sv=1.0&sig={self.sig}"

    def route(self, request: Request) -> Reply:
        if request.path == self.CONNECTOR:
            body = self.json_body(request)
            if body is None or body.get("@type") != "MessageCard":
                return 400, "Bad payload received by generic incoming webhook.", {}
            if not (body.get("summary") or body.get("text")):
                return 400, "Summary or Text is required.", {}
            color = body.get("themeColor", "")
            if color and (len(color) != 6 or any(c not in "0123456789abcdefABCDEF" for c in color)):
                self.problem(f"themeColor {color!r} is not 6 hex digits")
            for section in body.get("sections", []):
                for fact in section.get("facts", []):
                    if not (_is_str(fact.get("name")) and _is_str(fact.get("value"))):
                        return 400, self.problem("facts need name and value"), {}
            if self.over_limit(request):
                return (
                    200,
                    "Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0,server=msgapi-canary-eus2-0,cv=x.",
                    {},
                )
            self.messages.append(body)
            return 200, "1", {}
        if request.path == self.WORKFLOW:
            q = request.query
            if (
                q.get("sig") != self.sig
                or q.get("sv") != "1.0"
                or not q.get("api-version")
                or not q.get("sp")
            ):
                return (
                    401,
                    {
                        "error": {
                            "code": "DirectApiAuthorizationRequired",
                            "message": "The request must be authenticated only by Shared Access scheme.",
                        }
                    },
                    {},
                )
            body = self.json_body(request)
            attachments = body.get("attachments") if body else None
            ok = (
                body is not None and body.get("type") == "message" and isinstance(attachments, list)
                and attachments and attachments[0].get("contentType") == "application/vnd.microsoft.card.adaptive"
            )  # fmt: skip
            card = attachments[0].get("content", {}) if ok else {}
            if (
                not ok
                or card.get("type") != "AdaptiveCard"
                or not card.get("version")
                or not isinstance(card.get("body"), list)
            ):
                return (
                    400,
                    {
                        "error": {
                            "code": "InvalidRequestContent",
                            "message": self.problem(
                                "expected a message with an Adaptive Card attachment"
                            ),
                        }
                    },
                    {},
                )
            for element in card["body"]:
                if element.get("type") not in ("TextBlock", "FactSet", "Container", "ColumnSet"):
                    return (
                        400,
                        {
                            "error": {
                                "code": "InvalidRequestContent",
                                "message": self.problem(f"unknown element {element.get('type')!r}"),
                            }
                        },
                        {},
                    )
            if self.over_limit(request):
                return (
                    429,
                    {
                        "error": {
                            "code": "WorkflowTriggeredTooManyTimes",
                            "message": "Rate limit is exceeded.",
                        }
                    },
                    {"Retry-After": "2"},
                )
            self.messages.append(body)
            return 202, b"", {}
        return 404, "Not Found", {}


# -- any webhook


class WebhookReceiver(Receiver):
    """Records every request; ``statuses`` (popped in order) answer before anything else."""

    def route(self, request: Request) -> Reply:
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                self.messages.append(request.json())
            except ValueError as exc:
                self.problem(f"the body is not valid JSON: {exc}: {request.body[:200]!r}")
                return 400, "bad json", {}
        else:
            self.messages.append({"text": request.body.decode("utf-8", errors="replace")})
        if self.windows and self.over_limit(request):
            return 429, "slow down", {"Retry-After": "1"}
        return 200, {"received": True}, {}


# -- events and sinks for in-process tests


_SEQ = iter(range(1, 1 << 30))


def event(
    reason: str = "BackOff", type_: str = "Warning", ns: str | None = "shop", *,
    message: str = "Back-off restarting failed container", kind: str = "Pod", obj: str = "web-1",
    count: int = 1, uid: str | None = None, at: str | None = None,
) -> Any:  # fmt: skip
    """An :class:`shipper.event.Event` as the source makes it (fresh uid and version)."""
    from shipper.event import Event, utc_now

    now = at or utc_now()
    return Event(
        uid=uid or str(uuid.uuid4()), resource_version=str(next(_SEQ)), name=f"{obj}.17c",
        namespace=ns or "default", type=type_, reason=reason, message=message, count=count,
        timestamp=now, first_timestamp=now, last_timestamp=now, event_time=None,
        creation_timestamp=now, action=None, reporting_controller=None, reporting_instance=None,
        source_component="kubelet", source_host="node-a", object_kind=kind, object_name=obj,
        object_namespace=ns, object_uid="u1", object_api_version="v1",
        object_resource_version="1", object_field_path=None, seen_at=now, watch_type="ADDED",
    )  # fmt: skip


def bump(e: Any, count: int) -> Any:
    """The same event, counted again (a MODIFIED with a new resourceVersion)."""
    from dataclasses import replace

    return replace(e, count=count, resource_version=str(next(_SEQ)))


def sink(uri: str, *, metrics: Any = None, cluster: str = "test", opened: bool = True) -> Any:
    """A notifier built from a ``--sink`` URI the way the daemon builds it, opened."""
    from shipper.sinks.base import SinkContext
    from shipper.sinks.factory import build_sink

    built, _ = build_sink(uri, SinkContext(cluster=cluster, state_dir=None, metrics=metrics))
    if opened:
        built.open()
    return built


HOSTILE = [
    'say "hi" and \\ back\\slash',
    "line one\nline two\r\n\ttabbed",
    "control \x00\x01\x07\x1b\x7f chars",
    "emoji 🔥💥 and 中文 and \u2028\u2029 separators",
    "template {{ .Reason }} {{- end }} {{/* x */}} in the message",
    '{"json": "inside", "n": 1}',
    "</script><b>&amp;</b> <!channel> <@U123>",
    "lone surrogate-free: \U0001f600 \\u0000 \\n literal",
]

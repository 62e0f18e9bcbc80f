"""``slack:?token=xoxb-...&channel=C123`` or ``slack:https://hooks.slack.com/services/...``.

URI::

    slack:?token_file=/secrets/slack-bot-token&channel=C0123456789
    slack:?token=$SLACK_TOKEN&channel=C0123456789&message={{ .Reason }}: {{ .Message }}&field=namespace={{ .InvolvedObject.Namespace }}
    slack:https://hooks.slack.com/services/T000/B000/XXXX?format=attachments&footer=prod

With a bot token (``xoxb-...``, scope ``chat:write``) messages go through ``chat.postMessage``
(``Authorization: Bearer``) to ``channel``; the token is checked with ``auth.test`` at start.
With an incoming-webhook URL they go to the webhook's channel. kubernetes-event-exporter's
slack receiver options carry over: ``message``, ``title``, ``color``, ``footer``,
``author_name``, ``fields`` (here ``field=NAME=TEMPLATE``, repeatable), all Go templates.

``format=blocks`` (default): ``text`` (the notification fallback) and one attachment whose
colour follows the event type (Warning red, Normal green, digest yellow) holding Block Kit
blocks: the title, the message, up to 10 fields, an Open button for ``link_template``, the
footer. ``format=attachments``: the classic attachment as kubernetes-event-exporter sends it
(``title``, ``title_link``, ``fields`` with ``short``, ``footer``, ``author_name``, ``color``).
Event text is escaped for Slack's mrkdwn (``&``, ``<``, ``>``), so a message cannot ping
``<!channel>`` or forge a link.

Replies: ``{"ok": false, "error": ...}`` in a 200 is a failure. HTTP 429 (Retry-After) and
``ratelimited`` hold events in a digest for as long as Slack asked; ``invalid_auth``,
``not_authed``, ``token_revoked``, ``channel_not_found``, ``not_in_channel``, ``is_archived``,
``missing_scope``, 5xx and ``internal_error`` are retried with backoff for an operator (or Slack)
to fix; anything else (``msg_too_long``, ``invalid_blocks``, ``no_text``) dead-letters that
message with Slack's word for it. Incoming webhooks answer in plain text (``invalid_payload``,
``no_service``, ``channel_is_archived``): read the same way. Rate: 1 message per second, Slack's
limit per channel. Default level: Warning.

Guarantee: at least once per alert; count updates within ``realert`` are not re-sent; events
past the rate limit arrive as one digest message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipper.sinks.base import TransientError
from shipper.sinks.notify import (
    ChatOptions,
    Notification,
    NotifierSink,
    RateLimited,
    Refused,
    Reply,
)
from shipper.spec import option
from shipper.uri import UsageError, choice

RATE_LIMITED = {"ratelimited", "rate_limited"}
OPERATOR = {
    "not_authed", "invalid_auth", "account_inactive", "token_revoked", "token_expired",
    "no_permission", "missing_scope", "org_login_required", "ekm_access_denied",
    "team_access_not_granted", "channel_not_found", "not_in_channel", "is_archived",
    "restricted_action", "access_denied", "fatal_error", "internal_error",
    "service_unavailable", "request_timeout", "team_not_found",
}  # fmt: skip


def mrkdwn_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True, kw_only=True)
class SlackOptions(ChatOptions):
    DEFAULTS = {**ChatOptions.DEFAULTS, **{"rate": ["1/1s"]}}

    token: str | None = option(None, "Bot token (xoxb-...) with chat:write; sends with chat.postMessage.", secret=True, exporter="token")  # fmt: skip
    channel: str | None = option(None, "Channel id or name (with token); a template, as in kubernetes-event-exporter (channel: \"{{ .InvolvedObject.Namespace }}-alerts\").", exporter="channel")  # fmt: skip
    format: str = option("blocks", "blocks: Block Kit in a coloured attachment; attachments: the classic attachment.", parse=choice("blocks", "attachments"))  # fmt: skip
    footer: str | None = option(None, "Footer template.", exporter="footer")
    author_name: str | None = option(None, "Author template (attachments).", exporter="author_name")  # fmt: skip
    api_url: str = option("https://slack.com/api", "Base URL of the Web API (Mattermost, a proxy).", exporter="api_url")  # fmt: skip


class SlackSink(NotifierSink):
    scheme = "slack"
    receiver = "slack"
    summary = "Slack chat.postMessage (bot token) or an incoming webhook; Block Kit or attachments"
    vendor = "Slack"
    max_text = 2900  # a section block's text holds 3000 characters
    escape = staticmethod(mrkdwn_escape)
    Options = SlackOptions
    options: SlackOptions
    usage = "slack:https://hooks.slack.com/services/T/B/X or slack:?token=xoxb-...&channel=C123"
    example = "slack:?token_file=/secrets/slack&channel=C0123456"
    guarantee = (
        "at least once per alert; count updates within realert are not re-sent; events past"
        " 1/s arrive as one digest message"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o = self.options
        self.webhook = "://" in self.uri.rest
        if self.webhook:
            self.add_secret(self.uri.rest, self.uri.rest.rstrip("/").rpartition("/")[2])
        elif not (o.token and o.channel):
            raise UsageError(
                f"{self.where}: expected token=...&channel=... (chat.postMessage) or an incoming"
                " webhook URL: slack:https://hooks.slack.com/services/..."
            )
        # The exporter renders channel per event: #team-{{ .Namespace }} routes by namespace.
        self.channel_t = (
            self.template("channel", o.channel) if o.channel and "{{" in o.channel else None
        )
        self.footer_t = self.template("footer", o.footer) if o.footer else None
        self.author_t = self.template("author_name", o.author_name) if o.author_name else None
        self.api = o.api_url.rstrip("/")

    def target(self) -> str:
        return super().target() if self.webhook else f"{self.api} channel {self.options.channel}"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.options.token}"}

    def open(self) -> None:
        if not self.webhook:
            reply = self.http.post_json(f"{self.api}/auth.test", {}, self._headers())
            body = reply.json()
            if not isinstance(body, dict) or not body.get("ok"):
                error = body.get("error") if isinstance(body, dict) else f"HTTP {reply.status}"
                raise TransientError(f"Slack refused the bot token ({error}); check token")
        super().open()

    def payload(self, n: Notification) -> dict[str, Any]:
        footer = self.footer_t.render(n.data, mrkdwn_escape) if self.footer_t else ""
        text = "\n".join([*map(mrkdwn_escape, n.labels), n.text]).strip()
        fields = [(name, value) for name, value in n.fields if value][:10]
        if self.options.format == "attachments":
            attachment: dict[str, Any] = {
                "color": n.color, "title": n.title, "fallback": n.title,
                "fields": [{"title": k, "value": v, "short": False} for k, v in fields],
                "mrkdwn_in": ["text", "fields", "pretext"],
            }  # fmt: skip
            if n.link:
                attachment["title_link"] = n.link
            if footer:
                attachment["footer"] = footer
            if self.author_t:
                attachment["author_name"] = self.author_t.render(n.data, mrkdwn_escape)
            message = {"text": text, "attachments": [attachment]}
        else:
            blocks: list[dict[str, Any]] = [
                {"type": "section", "text": {"type": "mrkdwn", "text": f"*{n.title}*"[:3000]}},
            ]
            if text:
                blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
            if fields:
                blocks.append({"type": "section", "fields": [
                    {"type": "mrkdwn", "text": f"*{k}*\n{v}"[:2000]} for k, v in fields
                ]})  # fmt: skip
            if n.link:
                blocks.append({"type": "actions", "elements": [{
                    "type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": n.link,
                }]})  # fmt: skip
            if footer:
                blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]})
            message = {
                "text": f"{n.title}\n{text}"[:3000],
                "attachments": [{"color": n.color, "blocks": blocks}],
            }
        if not self.webhook:
            channel = self.channel_t.render(n.data) if self.channel_t else self.options.channel
            message["channel"] = channel
        return message

    def deliver(self, n: Notification) -> None:
        if self.webhook:
            self._check(self.http.post_json(self.uri.rest, self.payload(n)))
        else:
            url = f"{self.api}/chat.postMessage"
            self._check(self.http.post_json(url, self.payload(n), self._headers()))

    def _check(self, reply: Reply) -> None:
        body = reply.json()
        error = body.get("error") if isinstance(body, dict) and not body.get("ok") else None
        if error is None and not isinstance(body, dict) and not 200 <= reply.status < 300:
            error = reply.text(100)
        if reply.status == 429 or error in RATE_LIMITED:
            raise RateLimited(f"{error or 'HTTP 429'}", reply.retry_after())
        if error in OPERATOR or reply.status >= 500:
            raise TransientError(f"Slack refused the request: {error or reply.status}")
        if error:
            if reply.status in (401, 403, 404, 410):
                raise TransientError(f"Slack answered HTTP {reply.status}: {error}")
            raise Refused(str(error))
        self.status_error(reply)

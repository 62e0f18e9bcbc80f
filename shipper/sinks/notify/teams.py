"""``teams:URL``: a Microsoft Teams incoming webhook or a Workflows (Power Automate) URL.

URI (the URL's own query, ``api-version``, ``sp``, ``sv``, ``sig``, stays on it)::

    teams:https://example.webhook.office.com/webhookb2/GROUP@TENANT/IncomingWebhook/ID/OWNER
    teams:https://prod-00.westeurope.logic.azure.com:443/workflows/ID/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=$TEAMS_SIG
    teams:$TEAMS_WEBHOOK_URL?format=adaptivecard&field=Node={{ .Source.Host }}

``format=auto`` (default) sends an Office 365 connector ``MessageCard`` to ``*.webhook.office.com``
/ ``outlook.office.com`` URLs, and to any other URL (Workflows: ``*.logic.azure.com``,
``*.powerplatform.com``) the message a Workflow's "When a Teams webhook request is received"
trigger expects: ``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": {AdaptiveCard 1.4}}]}``. Either card has
the title (coloured by event type), the message, the fields as facts and an Open action for
``link_template``.

A kubernetes-event-exporter ``teams`` receiver maps here (``endpoint``, ``headers``,
``layout``). With a ``layout`` the body is the original's, byte for byte: ``{"summary": "event",
"text": "Event: M \nStatus: R \nMetadata: D"}``, where M, R and D are the layout's ``message``,
``reason`` and ``metadata`` as Go's ``%s`` prints them; without one, the card below.

Replies: 2xx is success (connectors answer 200 "1", Workflows 202). A connector's "Microsoft
Teams endpoint returned HTTP error 429" (even in a 200) and HTTP 429 hold events in a digest;
401/403/404 (a removed connector, a bad ``sig``) and 5xx are retried with backoff; 400 (a card
Teams rejects) dead-letters that message with Teams' words. Rate: 4 per second, 60 per 30
seconds, 100 per hour: the connectors' documented limits. Default level: Warning.

Guarantee: at least once per alert; count updates within ``realert`` are not re-sent; events
past the rate limit arrive as one digest message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shipper.sinks.base import TransientError
from shipper.sinks.notify import ChatOptions, Notification, NotifierSink, RateLimited, Refused
from shipper.sinks.notify.options import parse_header
from shipper.spec import LayoutOption, option
from shipper.templates.gofmt import sprintf
from shipper.templates.gojson import encode
from shipper.uri import choice

CONNECTOR_HOSTS = ("webhook.office.com", "outlook.office.com", "outlook.office365.com")
#: kubernetes-event-exporter's text for a layout (pkg/sinks/teams.go), spaces before the newlines.
EXPORTER_TEXT = "Event: %s \nStatus: %s \nMetadata: %s"
ACCENTS = {"#E01E5A": "Attention", "#2EB67D": "Good", "#ECB22E": "Warning"}


@dataclass(frozen=True, kw_only=True)
class TeamsOptions(ChatOptions, LayoutOption):
    REST = "endpoint"
    DEFAULTS = {**ChatOptions.DEFAULTS, **{"rate": ["4/1s", "60/30s", "100/1h"]}}

    format: str = option("auto", "Card type: auto picks by the URL's host.", parse=choice("auto", "messagecard", "adaptivecard"))  # fmt: skip
    header: list[str] = option([], "A request header NAME=VALUE (repeatable).", parse=parse_header, secret=True, aliases=("headers",), exporter="headers")  # fmt: skip


class TeamsSink(NotifierSink):
    scheme = "teams"
    receiver = "teams"
    summary = "Microsoft Teams incoming webhook (MessageCard) or Workflows URL (Adaptive Card)"
    vendor = "Teams"
    url_keys = ("api-version", "sp", "sv", "sig")
    max_text = 18000
    Options = TeamsOptions
    options: TeamsOptions
    usage = "teams:https://HOST/workflows/..."
    example = "teams:https://prod-00.westus.logic.azure.com/workflows/ID/triggers/manual/paths/invoke?sig=$SIG"
    guarantee = (
        "at least once per alert; count updates within realert are not re-sent; events past"
        " the connector limits arrive as one digest message"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.require(
            "://" in self.uri.rest, "expected teams:https://... (incoming webhook or Workflows URL)"
        )
        self.url = self.vendor_url()
        self.add_secret(self.uri.rest, *urlsplit(self.uri.rest).path.split("/"))
        fmt = self.options.format
        if fmt == "auto":
            host = urlsplit(self.uri.rest).hostname or ""
            fmt = "messagecard" if host.endswith(CONNECTOR_HOSTS) else "adaptivecard"
        self.format = fmt
        self.headers = dict(item.split("=", 1) for item in self.options.header)

    def payload(self, n: Notification) -> dict[str, Any]:
        if self.options.layout is not None:
            return exporter_body(self.options.layout.render_context(n.data))
        text = "\n\n".join(p for p in (*n.labels, n.text) if p)
        facts = [(k, v) for k, v in n.fields if v]
        if self.format == "messagecard":
            card: dict[str, Any] = {
                "@type": "MessageCard", "@context": "https://schema.org/extensions",
                "summary": n.title[:200], "themeColor": n.color.lstrip("#"), "title": n.title,
                "text": text or n.title,
            }  # fmt: skip
            if facts:
                card["sections"] = [{"facts": [{"name": k, "value": v} for k, v in facts]}]
            if n.link:
                card["potentialAction"] = [
                    {
                        "@type": "OpenUri",
                        "name": "Open",
                        "targets": [{"os": "default", "uri": n.link}],
                    }
                ]
            return card
        body: list[dict[str, Any]] = [
            {"type": "TextBlock", "text": n.title, "weight": "Bolder", "size": "Medium",
             "wrap": True, "color": ACCENTS.get(n.color.upper(), "Default")},
        ]  # fmt: skip
        if text:
            body.append({"type": "TextBlock", "text": text, "wrap": True})
        if facts:
            body.append({"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts]})
        content: dict[str, Any] = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard", "version": "1.4", "body": body,
        }  # fmt: skip
        if n.link:
            content["actions"] = [{"type": "Action.OpenUrl", "title": "Open", "url": n.link}]
        return {"type": "message", "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
            "content": content,
        }]}  # fmt: skip

    def deliver(self, n: Notification) -> None:
        body = self.payload(n)
        if self.options.layout is not None:  # the original's bytes: Go's encoding/json
            reply = self.http.request(
                "POST",
                self.url,
                body=encode(body).encode(),
                headers={"Content-Type": "application/json", **self.headers},
            )
        else:
            reply = self.http.post_json(self.url, body, self.headers)
        text = reply.text()
        if "returned HTTP error 429" in text:
            raise RateLimited(text[:200], reply.retry_after())
        body = reply.json()
        if isinstance(body, dict) and isinstance(body.get("error"), dict) and reply.status >= 400:
            error = body["error"]
            detail = f"{error.get('code', '')}: {str(error.get('message', ''))[:200]}"
            if reply.status == 429:
                raise RateLimited(detail, reply.retry_after())
            if reply.status in (401, 403, 404) or reply.status >= 500:
                raise TransientError(f"Teams answered HTTP {reply.status}: {detail}")
            raise Refused(f"HTTP {reply.status}: {detail}")
        self.status_error(reply)


def exporter_body(rendered: Any) -> dict[str, str]:
    """kubernetes-event-exporter's Teams body for a layout: three of its keys printed with %s."""
    values = rendered if isinstance(rendered, dict) else {}
    parts = (values.get(key) for key in ("message", "reason", "metadata"))
    return {"summary": "event", "text": sprintf(EXPORTER_TEXT, *parts)}

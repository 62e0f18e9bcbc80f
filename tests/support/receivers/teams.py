"""Teams: Office 365 connector (MessageCard) and Workflows (Adaptive Card)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote_plus

from tests.support.receivers.base import Receiver, Reply, Request, _is_str


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
            # A MessageCard, or the simple {"text": ...} message the connectors' docs show.
            if body is None or body.get("@type", "MessageCard") != "MessageCard":
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

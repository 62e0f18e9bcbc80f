"""Opsgenie's Alert API v2 (create alert), checked as documented.

https://docs.opsgenie.com/docs/alert-api (Create Alert): ``POST /v2/alerts`` with
``Authorization: GenieKey <key>`` and a JSON body; ``message`` is required, at most 130
characters; ``alias`` 512; ``description`` 15,000; ``tags`` at most 20, each 50; ``details`` a
map of strings, 8,000 characters in all; ``entity`` 512; ``source`` 100; ``priority`` P1-P5;
``responders`` and ``visibleTo`` lists of ``{type, id|name|username}``, 50 at most. The answer is
202 with ``{"result": "Request will be processed", "took": ..., "requestId": ...}``; a wrong key
is 401, a body that breaks the rules 422 with ``errors``, too many requests 429.

Like Opsgenie, the receiver keeps one open alert per alias and counts repeats into it
(``alerts[alias]["count"]``).
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.receivers.base import Receiver, Reply, Request

LIMITS = {"message": 130, "alias": 512, "description": 15000, "entity": 512, "source": 100,
          "user": 100, "note": 25000}  # fmt: skip
FIELDS = {*LIMITS, "tags", "details", "responders", "visibleTo", "actions", "priority"}
RESPONDERS = {"team", "user", "escalation", "schedule"}


class OpsgenieReceiver(Receiver):
    def __init__(self, key: str = "og-key-0123456789", **kw: Any) -> None:
        super().__init__(**kw)
        self.down = False
        self.key = key
        self.alerts: dict[str, dict[str, Any]] = {}

    @staticmethod
    def answer(status: int, message: str, **extra: Any) -> Reply:
        body = {"message": message, **extra, "took": 0.001, "requestId": str(uuid.uuid4())}
        return status, body, {}

    def check(self, body: dict[str, Any]) -> dict[str, str]:
        """The documented rules; returns the errors as Opsgenie names them."""
        errors: dict[str, str] = {}
        for key in body:
            if key not in FIELDS:
                errors[key] = "unknown field"
        message = body.get("message")
        if not isinstance(message, str) or not message.strip():
            errors["message"] = "Message can not be empty."
        for key, limit in LIMITS.items():
            value = body.get(key)
            if value is not None and (not isinstance(value, str) or len(value) > limit):
                errors[key] = f"{key} must be a string of at most {limit} characters"
        tags = body.get("tags", [])
        if (
            not isinstance(tags, list)
            or len(tags) > 20
            or any(not isinstance(t, str) or not t or len(t) > 50 for t in tags)
        ):
            errors["tags"] = "at most 20 tags, each a string of 1-50 characters"
        details = body.get("details", {})
        if not isinstance(details, dict) or any(
            not isinstance(k, str) or not isinstance(v, str) for k, v in details.items()
        ):
            errors["details"] = "details must map strings to strings"
        elif sum(len(k) + len(v) for k, v in details.items()) > 8000:
            errors["details"] = "details may hold 8000 characters"
        if body.get("priority", "P3") not in ("P1", "P2", "P3", "P4", "P5"):
            errors["priority"] = "Priority should be one of [P1, P2, P3, P4, P5]"
        for key, kinds in (("responders", RESPONDERS), ("visibleTo", {"team", "user"})):
            items = body.get(key, [])
            if not isinstance(items, list) or len(items) > 50:
                errors[key] = "at most 50"
                continue
            for item in items:
                names = {"id", "name", "username"} & set(item if isinstance(item, dict) else ())
                if (
                    not isinstance(item, dict) or item.get("type") not in kinds
                    or len(names) != 1 or set(item) - {"type", "id", "name", "username"}
                    or ("username" in names and item["type"] != "user")
                ):  # fmt: skip
                    errors[key] = f"{item!r} is not a {key[:-1]} (type and one of id/name/username)"
        return errors

    def route(self, request: Request) -> Reply:
        if self.down:  # an outage: the service answers 503 to everything
            return 503, {"message": "Service Unavailable", "error": "unavailable"}, {}
        if request.path != "/v2/alerts" or request.method != "POST":
            return self.answer(404, "Not Found")
        auth = request.headers.get("authorization", "")
        if auth != f"GenieKey {self.key}":
            if not auth.startswith("GenieKey "):
                self.problem(f"Authorization {auth[:20]!r} is not 'GenieKey <key>'")
            return self.answer(401, "Could not authenticate")
        body = self.json_body(request)
        if body is None:
            return self.answer(400, "Request body is not processable.")
        errors = self.check(body)
        if errors:
            self.problem(f"422: {errors}")
            return self.answer(
                422, "Request body is not processable. Please check the errors.", errors=errors
            )
        if self.over_limit(request):
            return 429, {"message": "You are making too many requests!", "took": 0.0,
                         "requestId": str(uuid.uuid4())}, {"Retry-After": "1"}  # fmt: skip
        self.messages.append(body)
        alert = self.alerts.setdefault(body.get("alias") or str(uuid.uuid4()), {"count": 0})
        alert["count"] += 1
        alert["last"] = body
        return 202, {"result": "Request will be processed", "took": 0.002,
                     "requestId": str(uuid.uuid4())}, {}  # fmt: skip

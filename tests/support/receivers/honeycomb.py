"""Honeycomb's batch events API, checked as documented.

https://docs.honeycomb.io/api/tag/Events#operation/createEvents: ``POST /1/batch/<dataset>``
with ``X-Honeycomb-Team: <key>`` and ``Content-Type: application/json``; the body is a JSON
array of ``{"data": {...}, "time": "<RFC 3339>", "samplerate": <int>}`` (``data`` required).
A 200 answers one ``{"status": 202}`` per event, in order; an event refused alone gets
``{"status": 400, "error": "..."}``. A wrong key is a 401 for the whole request
(``{"error": "unknown API key - check your credentials"}``), too many 429.

``per_event`` lets a test answer chosen statuses for the next events (``[400, 429]``);
``refuse_reason`` refuses every event with that reason (400), as Honeycomb refuses an event it
cannot take.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from tests.support.receivers.base import Receiver, Reply, Request

_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


class HoneycombReceiver(Receiver):
    def __init__(self, key: str = "hc-write-key-0123", **kw: Any) -> None:
        super().__init__(**kw)
        self.down = False
        self.key = key
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.per_event: list[int] = []
        self.refuse_reason: str | None = None

    def element_problem(self, item: Any) -> str | None:
        if not isinstance(item, dict) or not isinstance(item.get("data"), dict):
            return "an event must be an object with a data object"
        if set(item) - {"data", "time", "samplerate"}:
            return f"unknown keys {sorted(set(item) - {'data', 'time', 'samplerate'})}"
        time = item.get("time")
        if time is not None:
            if not isinstance(time, str) or not _TIME.fullmatch(time):
                return f"time {time!r} is not RFC 3339"
            datetime.fromisoformat(time.replace("Z", "+00:00"))
        rate = item.get("samplerate", 1)
        if not isinstance(rate, int) or isinstance(rate, bool) or rate < 1:
            return f"samplerate {rate!r} is not a positive integer"
        return None

    def route(self, request: Request) -> Reply:
        if self.down:  # an outage: the service answers 503 to everything
            return 503, {"message": "Service Unavailable", "error": "unavailable"}, {}
        match = re.fullmatch(r"/1/batch/([^/]+)", request.path)
        if match is None or request.method != "POST":
            return 404, {"error": "not found"}, {}
        if request.headers.get("x-honeycomb-team") != self.key:
            return 401, {"error": "unknown API key - check your credentials"}, {}
        if not request.headers.get("content-type", "").startswith("application/json"):
            self.problem(f"Content-Type {request.headers.get('content-type')!r}")
            return 400, {"error": "request body should be JSON"}, {}
        try:
            batch = request.json()
        except ValueError:
            return 400, {"error": self.problem("the body is not JSON")}, {}
        if not isinstance(batch, list):
            return 400, {"error": self.problem("the body is not a JSON array")}, {}
        if self.over_limit(request):
            return 429, {"error": "request dropped due to rate limiting"}, {"Retry-After": "1"}
        answers = []
        from urllib.parse import unquote

        dataset = unquote(match.group(1))
        for item in batch:
            wrong = self.element_problem(item)
            if wrong:
                self.problem(wrong)
                answers.append({"status": 400, "error": wrong})
                continue
            status = self.per_event.pop(0) if self.per_event else 202
            if self.refuse_reason and item["data"].get("reason") == self.refuse_reason:
                status = 400
            if status == 202:
                self.events.setdefault(dataset, []).append(item)
                answers.append({"status": 202})
            else:
                answers.append({"status": status, "error": f"event refused ({status})"})
        return 200, answers, {}

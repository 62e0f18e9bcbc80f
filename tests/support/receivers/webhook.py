"""Any webhook: records every request, JSON or text, and answers 200 (429 past its windows)."""

from __future__ import annotations

from tests.support.receivers.base import Receiver, Reply, Request


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

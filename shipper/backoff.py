"""The one backoff of the daemon: exponential, with jitter, capped.

Used wherever something is retried (a sink's batch, a watch that broke, a sink that will not
open yet). ``Backoff(cap=60).next_delay()`` gives 0.25-0.5 s, then 0.5-1 s, 1-2 s, ... up to
``cap``: the jitter keeps many shippers from retrying in step after a shared outage.
"""

from __future__ import annotations

import random


class Backoff:
    """Exponential backoff with jitter: each delay in [ceiling/2, ceiling], ceiling doubling
    from ``base`` up to ``cap``; :meth:`reset` after a success."""

    def __init__(self, cap: float, base: float = 0.5) -> None:
        self.cap, self.base, self.attempt = cap, base, 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 30)
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0

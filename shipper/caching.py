"""The one cache of the daemon: bounded (least recently used out), entries expiring.

A thin, thread-safe wrapper over ``cachetools.TLRUCache`` that lets one entry carry a shorter
life than the default (a "not found" answer is kept briefly, a found object longer)::

    cache = TTLCache(size=10_000, ttl=600)
    cache.put(("Pod", "shop", "web-1"), labels)
    cache.put(("Pod", "shop", "gone"), None, ttl=30)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from cachetools import TLRUCache

_MISSING = object()


class TTLCache:
    """At most ``size`` entries; each expires ``ttl`` seconds (or its own) after it was put."""

    def __init__(self, size: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        # The value is stored with its own lifetime, which ttu reads when the entry is set.
        self._entries: TLRUCache[Any, tuple[float, Any]] = TLRUCache(
            maxsize=max(1, size), ttu=lambda _key, entry, now: now + entry[0], timer=clock
        )
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        """The value, or None if absent or expired."""
        with self._lock:
            entry = self._entries.get(key, _MISSING)
        return None if entry is _MISSING else entry[1]  # type: ignore[index]

    def put(self, key: Any, value: Any, ttl: float | None = None) -> None:
        with self._lock:
            self._entries[key] = (self.ttl if ttl is None else ttl, value)

    def __contains__(self, key: Any) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            self._entries.expire()
            return len(self._entries)

"""client-go's event bookkeeping, without I/O: what to write, and whether to write at all.

Two families, as in client-go:

* core/v1 (``k8s.io/client-go/tools/record/events_cache.go``): :class:`EventCorrelator` =
  :class:`EventAggregator` (similar events, differing only in message, seen ``max_events``
  (10) times within ``max_interval`` (600 s) are combined into one event whose message starts
  with ``"(combined from similar events): "``), then :class:`EventLogger` (an event seen before
  becomes a PATCH of ``count``, ``lastTimestamp`` and ``message`` on the first one's name),
  then :class:`SpamFilter` (a token bucket per source + involved object: burst 25, refilled
  with one token every 300 s). The order matters and is client-go's: the logger counts an
  event *before* the spam filter may drop it, so the next event that gets through carries
  the full count.
* events.k8s.io/v1 (``k8s.io/client-go/tools/events/event_broadcaster.go``):
  :class:`SeriesCache`. The first event of an isomorphic kind is created; the second turns it
  into a series (``count: 2``) and is written as a PATCH; later ones only bump the cached
  ``series.count`` and ``lastObservedTime``. The count reaches the API server on the
  heartbeat (:meth:`SeriesCache.refresh`, every 30 min) and when the series ends
  (:meth:`SeriesCache.finish`: no occurrence for 6 min, checked every 6 min).

Everything here takes the time as an argument (seconds since the epoch), so tests drive it
with a fake clock. Events are the JSON dicts the API server takes.
"""

from __future__ import annotations

import copy
import re
import struct
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

Event = dict[str, Any]

# client-go's defaults (tools/record/events_cache.go, tools/events/event_broadcaster.go).
LRU_CACHE_SIZE = 4096
AGGREGATE_MAX_EVENTS = 10
AGGREGATE_INTERVAL = 600.0
SPAM_BURST = 25
SPAM_QPS = 1.0 / 300.0
AGGREGATE_PREFIX = "(combined from similar events): "
SERIES_FINISH_TIME = 6 * 60.0
SERIES_REFRESH_TIME = 30 * 60.0

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def float32(value: float) -> float:
    """``value`` rounded as Go's ``float32`` rounds it: client-go keeps the spam QPS in a float32,
    so 1/300 is 0.0033333334 and a token is back a hair before 300 s have passed."""
    return float(struct.unpack("f", struct.pack("f", value))[0])


class LRU(Generic[K, V]):
    """groupcache's ``lru.Cache``: ``get`` and ``add`` make an entry the newest; past
    ``max_entries`` the oldest goes."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def add(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class TokenBucket:
    """``golang.org/x/time/rate.Limiter`` as client-go's passive rate limiter uses it
    (``AllowN(now, 1)``): it starts full, refills ``qps`` tokens a second up to ``burst``, and
    a refused request changes nothing."""

    def __init__(self, qps: float, burst: int) -> None:
        self.qps, self.burst = float32(qps), burst
        self.tokens = 0.0
        self.last: float | None = None  # Go's zero time: the bucket is full on first use

    def available(self, now: float) -> float:
        if self.last is None:
            return float(self.burst)
        elapsed = max(0.0, now - self.last)  # a clock that went back refills nothing
        return min(float(self.burst), self.tokens + elapsed * self.qps)

    def try_accept(self, now: float) -> bool:
        tokens = self.available(now) - 1.0
        if tokens < 0:
            return False
        self.tokens, self.last = tokens, now
        return True


# -- core/v1: keys (client-go joins the fields into one string; a tuple groups the same way
# without the collisions a plain concatenation allows).


def _source(event: Event) -> tuple[str, str]:
    source = event.get("source") or {}
    return source.get("component") or "", source.get("host") or ""


def _involved(event: Event, *fields: str) -> tuple[str, ...]:
    obj = event.get("involvedObject") or {}
    return tuple(str(obj.get(name) or "") for name in fields)


_OBJECT = ("kind", "namespace", "name")
_OBJECT_ID = ("uid", "apiVersion")


def event_key(event: Event) -> tuple[str, ...]:
    """``getEventKey``: everything that makes two core/v1 events the same event."""
    return (
        *_source(event),
        *_involved(event, *_OBJECT, "fieldPath", *_OBJECT_ID),
        event.get("type") or "",
        event.get("reason") or "",
        event.get("message") or "",
    )


def spam_key(event: Event) -> tuple[str, ...]:
    """``getSpamKey``: the source and the involved object; one token bucket each."""
    return (*_source(event), *_involved(event, *_OBJECT, *_OBJECT_ID))


def aggregate_key(event: Event) -> tuple[tuple[str, ...], str]:
    """``EventAggregatorByReasonFunc``: (the group of similar events, the local key: message)."""
    group = (
        *_source(event),
        *_involved(event, *_OBJECT, *_OBJECT_ID),
        event.get("type") or "",
        event.get("reason") or "",
        event.get("reportingComponent") or "",
        event.get("reportingInstance") or "",
    )
    return group, event.get("message") or ""


def aggregate_message(event: Event) -> str:
    """``EventAggregatorByReasonMessageFunc``."""
    return AGGREGATE_PREFIX + (event.get("message") or "")


# -- time formats


def rfc3339(moment: float) -> str:
    """metav1.Time as JSON: whole seconds."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(moment: float) -> str:
    """metav1.MicroTime as JSON: microseconds."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def event_name(object_name: str, moment: float | int) -> str:
    """``util.GenerateEventName``: ``<object>.<unix nanoseconds in hex>``, or a UUID when that
    is not a valid object name (kubernetes/kubernetes#127594). ``moment``: seconds (float) or
    nanoseconds (int)."""
    nanos = moment if isinstance(moment, int) else int(moment * 1e9)
    name = f"{object_name}.{nanos:x}"
    if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        return str(uuid.uuid4())
    return name


class EventNamer:
    """:func:`event_name` that never repeats itself: two events named in the same nanosecond
    (a coarse clock, or a test's clock that stands still) would collide, and the second create
    would be refused as AlreadyExists (client-go loses that event); here the second gets the
    next nanosecond instead."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self, object_name: str, moment: float) -> str:
        with self._lock:
            nanos = max(int(moment * 1e9), self._last + 1)
            self._last = nanos
        return event_name(object_name, nanos)


# -- core/v1: the correlator


@dataclass(frozen=True)
class CorrelatorOptions:
    """client-go's ``CorrelatorOptions``; every default is client-go's."""

    lru_cache_size: int = LRU_CACHE_SIZE
    """Entries in each of the three caches (aggregation, counts, spam buckets)."""
    burst: int = SPAM_BURST
    """Events a source may write about one object before the spam filter drops them."""
    qps: float = SPAM_QPS
    """Refill of that bucket, tokens per second (one every 5 minutes)."""
    max_events: int = AGGREGATE_MAX_EVENTS
    """Distinct messages of similar events within ``max_interval`` before they are combined."""
    max_interval: float = AGGREGATE_INTERVAL
    """Seconds without a similar event after which the group starts over."""
    key_func: Callable[[Event], tuple[Hashable, str]] = aggregate_key
    """(group, local key) of an event for aggregation."""
    message_func: Callable[[Event], str] = aggregate_message
    """The message of a combined event."""
    spam_key_func: Callable[[Event], Hashable] = spam_key
    """The token bucket an event draws from."""


@dataclass
class _AggregateRecord:
    local_keys: set[str] = field(default_factory=set)
    last: float = float("-inf")


class EventAggregator:
    """``EventAggregator.EventAggregate``."""

    def __init__(
        self, options: CorrelatorOptions, namer: Callable[[str, float], str] | None = None
    ) -> None:
        self.options = options
        self.namer = namer or EventNamer()
        self.cache: LRU[Hashable, _AggregateRecord] = LRU(options.lru_cache_size)

    def aggregate(self, event: Event, now: float) -> tuple[Event, Hashable]:
        """The event to write and its cache key: the event itself under its full key, or a
        combined event under the group's key (so later ones update that one)."""
        group, local = self.options.key_func(event)
        record = self.cache.get(group)
        if record is None or now - record.last > self.options.max_interval:
            record = _AggregateRecord()
        record.local_keys.add(local)
        record.last = now
        self.cache.add(group, record)
        if len(record.local_keys) < self.options.max_events:
            return event, event_key(event)
        record.local_keys.pop()  # Go's PopAny: keep the set at the threshold
        stamp = rfc3339(now)
        combined: Event = {
            "metadata": {
                # client-go formats this name itself (no UUID fallback): the same format
                "name": self.namer(event["involvedObject"].get("name", ""), now),
                "namespace": event["metadata"].get("namespace"),
            },
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "involvedObject": event["involvedObject"],
            "message": self.options.message_func(event),
            "type": event.get("type"),
            "reason": event.get("reason"),
            "source": event.get("source") or {},
        }
        return combined, group


@dataclass(frozen=True)
class _EventLog:
    count: int
    first_timestamp: str | None
    name: str
    resource_version: str | None


class EventLogger:
    """``eventLogger``: turns a repeat into a PATCH of the first occurrence."""

    def __init__(self, options: CorrelatorOptions) -> None:
        self.cache: LRU[Hashable, _EventLog] = LRU(options.lru_cache_size)

    def observe(self, new: Event, key: Hashable) -> tuple[Event, dict[str, Any] | None]:
        event = copy.deepcopy(new)
        last = self.cache.get(key)
        patch = None
        if last is not None and last.count > 0:
            meta = event["metadata"]
            meta["name"] = last.name
            if last.resource_version:
                meta["resourceVersion"] = last.resource_version
            else:
                meta.pop("resourceVersion", None)
            event["firstTimestamp"] = last.first_timestamp
            event["count"] = last.count + 1
            # CreateTwoWayMergePatch(old with count 0, lastTimestamp at the epoch and no
            # message, new): exactly these three fields differ.
            patch = {"count": event["count"], "lastTimestamp": event.get("lastTimestamp")}
            if event.get("message"):
                patch["message"] = event["message"]
        self._remember(key, event)
        return event, patch

    def update_state(self, server_event: Event) -> None:
        """What the API server answered (its name and resourceVersion), under the event's full
        key, as client-go does: so a combined event's key is not updated, on purpose there."""
        self._remember(event_key(server_event), server_event)

    def _remember(self, key: Hashable, event: Event) -> None:
        meta = event.get("metadata") or {}
        self.cache.add(
            key,
            _EventLog(
                count=int(event.get("count") or 0),
                first_timestamp=event.get("firstTimestamp"),
                name=meta.get("name") or "",
                resource_version=meta.get("resourceVersion"),
            ),
        )


class SpamFilter:
    """``EventSourceObjectSpamFilter``: True means drop the event."""

    def __init__(self, options: CorrelatorOptions) -> None:
        self.options = options
        self.cache: LRU[Hashable, TokenBucket] = LRU(options.lru_cache_size)

    def filter(self, event: Event, now: float) -> bool:
        key = self.options.spam_key_func(event)
        bucket = self.cache.get(key)
        if bucket is None:
            bucket = TokenBucket(self.options.qps, self.options.burst)
        dropped = not bucket.try_accept(now)
        self.cache.add(key, bucket)
        return dropped


@dataclass(frozen=True)
class CorrelateResult:
    """``EventCorrelateResult``: the event to write, the PATCH body if it is a repeat (else
    create it), or ``skip`` when the spam filter dropped it."""

    event: Event | None
    patch: dict[str, Any] | None = None
    skip: bool = False


class EventCorrelator:
    """``EventCorrelator``: aggregate, then count, then filter (client-go's order)."""

    def __init__(
        self,
        options: CorrelatorOptions | None = None,
        namer: Callable[[str, float], str] | None = None,
    ) -> None:
        self.options = options or CorrelatorOptions()
        self.aggregator = EventAggregator(self.options, namer)
        self.logger = EventLogger(self.options)
        self.spam = SpamFilter(self.options)

    def correlate(self, event: Event, now: float) -> CorrelateResult:
        aggregated, key = self.aggregator.aggregate(event, now)
        observed, patch = self.logger.observe(aggregated, key)
        if self.spam.filter(observed, now):
            return CorrelateResult(None, skip=True)
        return CorrelateResult(observed, patch)

    def update_state(self, server_event: Event) -> None:
        self.logger.update_state(server_event)


# -- events.k8s.io/v1: series


def _reference(ref: dict[str, Any] | None) -> tuple[str, ...]:
    ref = ref or {}
    fields = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
    return tuple(str(ref.get(name) or "") for name in fields)


def isomorphic_key(event: Event) -> tuple[Any, ...]:
    """``getKey``: type, action, reason, reportingController, reportingInstance, regarding and
    related. The note is not in it: events differing only in their note make one series."""
    return (
        event.get("type") or "",
        event.get("action") or "",
        event.get("reason") or "",
        event.get("reportingController") or "",
        event.get("reportingInstance") or "",
        _reference(event.get("regarding")),
        _reference(event.get("related")),
    )


@dataclass
class SeriesEntry:
    """One cached event: the event as first created, when it happened, and its series so far
    (count 0 while it is a singleton)."""

    event: Event
    event_time: float
    count: int = 0
    last_observed: float = 0.0

    def to_record(self) -> Event:
        """The event to write: a copy, with ``series`` once there is one."""
        event = copy.deepcopy(self.event)
        if self.count:
            event["series"] = {
                "count": self.count,
                "lastObservedTime": micro_time(self.last_observed),
            }
        return event


class SeriesCache:
    """The events.k8s.io/v1 broadcaster's ``eventCache`` (not bounded in client-go either; the
    finish pass empties it of anything quiet for ``finish_time``)."""

    def __init__(
        self, finish_time: float = SERIES_FINISH_TIME, refresh_time: float = SERIES_REFRESH_TIME
    ) -> None:
        self.finish_time, self.refresh_time = finish_time, refresh_time
        self.entries: dict[tuple[Any, ...], SeriesEntry] = {}

    def observe(self, event: Event, now: float) -> Event | None:
        """``recordToSink``: the event to write now (a create, or the PATCH that starts a
        series), or None when an existing series only counted it."""
        key = isomorphic_key(event)
        entry = self.entries.get(key)
        if entry is None:
            self.entries[key] = SeriesEntry(copy.deepcopy(event), now)
            return copy.deepcopy(event)
        entry.count = entry.count + 1 if entry.count else 2
        entry.last_observed = now
        return entry.to_record() if entry.count == 2 else None

    def refresh(self) -> list[tuple[tuple[Any, ...], Event]]:
        """``refreshExistingEventSeries`` (the heartbeat): every series, to write again."""
        return [(key, entry.to_record()) for key, entry in self.entries.items() if entry.count]

    def finish(self, now: float) -> tuple[list[tuple[tuple[Any, ...], Event]], int]:
        """``finishSeries``: the series quiet for ``finish_time`` (to write one last time, then
        :meth:`forget`), and how many quiet singletons were forgotten now."""
        ended, forgotten = [], 0
        for key, entry in list(self.entries.items()):
            if entry.count:
                if entry.last_observed < now - self.finish_time:
                    ended.append((key, entry.to_record()))
            elif entry.event_time < now - self.finish_time:
                del self.entries[key]
                forgotten += 1
        return ended, forgotten

    def forget(self, key: tuple[Any, ...]) -> None:
        self.entries.pop(key, None)

    def __len__(self) -> int:
        return len(self.entries)

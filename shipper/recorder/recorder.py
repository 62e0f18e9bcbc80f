"""The recorder: build an Event, queue it, and write it from one background thread the way
client-go's broadcaster does (``tools/record/event.go``, ``tools/events/event_broadcaster.go``).

The queue holds ``queue_size`` (1000) events; past that a new event is dropped and logged, so
recording never blocks the caller. The writer thread correlates each event
(:mod:`shipper.recorder.correlator`) and tries to write it up to ``max_tries`` (12) times,
``sleep_duration`` (10 s) apart, on transport errors; an answer from the API server that is an
error (400, 403, 409, 422 ...) is final, as in client-go: the event is abandoned and logged.
A 429 or 5xx with ``Retry-After`` is tried again, as client-go's REST client would.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from shipper import kube
from shipper.recorder.correlator import (
    SERIES_FINISH_TIME,
    SERIES_REFRESH_TIME,
    CorrelatorOptions,
    Event,
    EventCorrelator,
    EventNamer,
    SeriesCache,
    micro_time,
    rfc3339,
)
from shipper.recorder.reference import get_reference

log = logging.getLogger(__name__)

CORE = "v1"
EVENTS_V1 = "events.k8s.io/v1"
APIS = {CORE: "/api/v1", EVENTS_V1: "/apis/events.k8s.io/v1"}
TYPES = ("Normal", "Warning")
STRATEGIC = "application/strategic-merge-patch+json"
JSON = "application/json"


@dataclass(frozen=True)
class RecorderOptions:
    """How the recorder queues, retries and keeps series; every default is client-go's."""

    correlator: CorrelatorOptions = field(default_factory=CorrelatorOptions)
    """core/v1 only: aggregation, counting and the spam filter."""
    queue_size: int = 1000
    """Events waiting to be written (``maxQueuedEvents``); past it new ones are dropped."""
    max_tries: int = 12
    """Attempts per event on transport errors (``maxTriesPerEvent``)."""
    sleep_duration: float = 10.0
    """Seconds between attempts (core/v1: the first sleep is a random part of it; events.k8s.io:
    jittered by up to 25 %)."""
    finish_time: float = SERIES_FINISH_TIME
    """events.k8s.io/v1: a series quiet this long is written a last time and forgotten; the
    check runs this often too."""
    refresh_time: float = SERIES_REFRESH_TIME
    """events.k8s.io/v1: the heartbeat that writes every open series' count."""
    request_timeout: float = 10.0
    """Seconds to wait for the API server per request."""


@dataclass
class RecorderStats:
    """What became of the events given to the recorder (read them in tests and metrics)."""

    queued: int = 0
    dropped: int = 0  # the queue was full
    created: int = 0
    patched: int = 0
    skipped: int = 0  # core/v1: the spam filter dropped it (counted in the next write)
    counted: int = 0  # events.k8s.io/v1: only counted in an open series (sent on the heartbeat)
    rejected: int = 0  # the API server refused it: not retried
    failed: int = 0  # transport errors max_tries times in a row, or stopped while retrying


class _Command:
    def __init__(self, run: Callable[[], None]) -> None:
        self.run, self.done = run, threading.Event()


_STOP = object()


class EventRecorder:
    """Records Events about objects, with client-go's semantics, from one background thread.

    ``api`` is an ``ApiClient`` of the official ``kubernetes`` package (or anything with its
    ``param_serialize``/``call_api``). ``api_version`` picks the family: ``"v1"`` (core Events,
    like ``record.EventRecorder``: aggregation, counts, spam filter) or
    ``"events.k8s.io/v1"`` (like ``events.EventRecorder``: series). ``component`` is the
    ``source.component`` / ``reportingController``; ``host`` the core ``source.host`` (a node
    name, often empty), ``instance`` the events.k8s.io ``reportingInstance`` (default:
    ``<component>-<hostname>``, as client-go). ``clock`` returns seconds since the epoch;
    ``start=False`` leaves the writer thread unstarted (events then only queue up)::

        recorder = EventRecorder(kubernetes.client.ApiClient(), "my-operator")
        recorder.event(pod, "Warning", "BackOff", "Back-off restarting failed container")
        recorder.close()
    """

    def __init__(
        self,
        api: Any,
        component: str,
        *,
        api_version: str = CORE,
        host: str = "",
        instance: str | None = None,
        options: RecorderOptions | None = None,
        clock: Callable[[], float] = time.time,
        start: bool = True,
    ) -> None:
        if api_version not in APIS:
            raise ValueError(f"api_version: expected one of {', '.join(APIS)}")
        if not component:
            raise ValueError("component: a recorder needs a name to report as")
        self.api, self.component, self.api_version = api, component, api_version
        self.host = host
        self.instance = instance or f"{component}-{socket.gethostname()}"
        self.options = options or RecorderOptions()
        self.clock = clock
        self.stats = RecorderStats()  # the writer thread counts the rest: no lock needed there
        self._count_lock = threading.Lock()
        self._name = EventNamer()
        self.correlator = EventCorrelator(self.options.correlator, self._name)
        self.series = SeriesCache(self.options.finish_time, self.options.refresh_time)
        self._queue: queue.Queue[Any] = queue.Queue(self.options.queue_size)
        self._stopping = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="event-recorder", daemon=True)
        if start:
            self._thread.start()

    # -- the caller's side

    def event(
        self,
        obj: Any,
        type: str,
        reason: str,
        message: str,
        *,
        action: str = "",
        related: Any = None,
        annotations: dict[str, str] | None = None,
        field_path: str = "",
    ) -> bool:
        """Queue an Event about ``obj`` (a dict, an official client model, or an
        :class:`ObjectReference`). Never blocks; False if it was not queued (an unknown type, an
        object without kind or name, a full queue, a closed recorder), with the reason logged.

        ``action`` is events.k8s.io's (required there: it defaults to ``reason``); ``related``
        a second object (events.k8s.io only); ``annotations`` go on a core Event's metadata.
        """
        if type not in TYPES:
            log.error("Unsupported event type %r; the event %s is not recorded.", type, reason)
            return False
        try:
            ref = get_reference(obj, field_path).to_dict()
            related_ref = get_reference(related).to_dict() if related is not None else None
        except ValueError as exc:
            log.error("Could not make a reference (%s); the event %s is not recorded.", exc, reason)
            return False
        if self.api_version == CORE:
            event = self._core_event(ref, type, reason, message, annotations)
        else:
            event = self._v1_event(ref, related_ref, type, reason, message, action or reason)
        if self._closed:
            log.error("The recorder is closed; the event %s is not recorded.", reason)
            return False
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            with self._count_lock:  # callers may record from many threads at once
                self.stats.dropped += 1
            log.error("Too many queued events; dropped the event %s %s.", type, reason)
            return False
        with self._count_lock:
            self.stats.queued += 1
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far was written (or given up); False on timeout."""
        return self._call(lambda: None, timeout)

    def refresh_series(self, timeout: float | None = None) -> bool:
        """Run the heartbeat now (events.k8s.io/v1): write every open series' count."""
        return self._call(self._refresh, timeout)

    def finish_series(self, timeout: float | None = None) -> bool:
        """Run the finish pass now (events.k8s.io/v1): write and forget quiet series."""
        return self._call(self._finish, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued within ``timeout``, then stop; retries still waiting are given
        up. Open series are not written again: as in client-go, their last count is the one the
        API server has."""
        if self._closed:
            return
        self._closed = True
        if not self._thread.is_alive():
            return
        deadline = time.monotonic() + timeout
        with contextlib.suppress(queue.Full):  # then the join below times out, and we stop
            self._queue.put(_STOP, timeout=timeout)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            self._stopping.set()
            self._thread.join(1.0)

    def _call(self, run: Callable[[], None], timeout: float | None) -> bool:
        command = _Command(run)
        if not self._thread.is_alive():
            run()  # not started (tests drive it by hand) or already stopped
            return True
        try:
            self._queue.put(command, timeout=timeout)
        except queue.Full:
            return False
        return command.done.wait(timeout)

    # -- building events (makeEvent)

    def _core_event(
        self,
        ref: dict[str, str],
        type: str,
        reason: str,
        message: str,
        annotations: dict[str, str] | None,
    ) -> Event:
        now = self.clock()
        meta: dict[str, Any] = {
            "name": self._name(ref["name"], now),
            "namespace": ref.get("namespace") or "default",
        }
        if annotations:
            meta["annotations"] = dict(annotations)
        source = {"component": self.component} | ({"host": self.host} if self.host else {})
        return {
            "metadata": meta,
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "firstTimestamp": rfc3339(now),
            "lastTimestamp": rfc3339(now),
            "count": 1,
            "type": type,
            "source": source,
            "reportingComponent": self.component,
            "reportingInstance": self.host,
        }

    def _v1_event(
        self,
        ref: dict[str, str],
        related: dict[str, str] | None,
        type: str,
        reason: str,
        note: str,
        action: str,
    ) -> Event:
        now = self.clock()
        event: Event = {
            "apiVersion": EVENTS_V1,
            "kind": "Event",
            "metadata": {
                "name": self._name(ref["name"], now),
                "namespace": ref.get("namespace") or "default",
            },
            "eventTime": micro_time(now),
            "reportingController": self.component,
            "reportingInstance": self.instance,
            "action": action,
            "reason": reason,
            "regarding": ref,
            "note": note,
            "type": type,
        }
        if related:
            event["related"] = related
        return event

    # -- the writer thread

    def _run(self) -> None:
        periodic = self.api_version == EVENTS_V1
        # wait.Until runs its function at once, then every period.
        next_finish = next_refresh = time.monotonic()
        while True:
            if periodic:
                now = time.monotonic()
                if now >= next_finish:
                    self._guarded(self._finish)
                    next_finish = now + self.options.finish_time
                if now >= next_refresh:
                    self._guarded(self._refresh)
                    next_refresh = now + self.options.refresh_time
                wait = max(0.0, min(next_finish, next_refresh) - time.monotonic())
            else:
                wait = None
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                continue
            if item is _STOP:
                return
            if isinstance(item, _Command):
                self._guarded(item.run)
                item.done.set()
            elif self.api_version == CORE:
                self._guarded(lambda event=item: self._record_core(event))
            else:
                self._guarded(lambda event=item: self._record_v1(event))

    def _guarded(self, run: Callable[[], None]) -> None:
        try:
            run()
        except Exception:  # the recorder must outlive a bug in one event
            log.exception("The event recorder failed on one event; it goes on.")

    def _events_path(self, namespace: str, name: str | None = None) -> str:
        path = f"{APIS[self.api_version]}/namespaces/{namespace}/events"
        return f"{path}/{name}" if name else path

    def _send(self, method: str, path: str, body: Any, content_type: str) -> tuple[int, Any]:
        """(status, decoded body or the reply's message); transport errors raise."""
        response = kube.request(
            self.api,
            method,
            path,
            body=body,
            content_type=content_type,
            read_timeout=self.options.request_timeout,
        )
        data = response.data
        if 200 <= response.status < 300:
            return response.status, orjson.loads(data)
        retry_after = (response.headers or {}).get("Retry-After")
        if retry_after and (response.status == 429 or response.status >= 500):
            raise ConnectionError(f"HTTP {response.status}, Retry-After {retry_after}")
        return response.status, kube.status_message(data)

    def _sleep(self, delay: float) -> bool:
        """Wait ``delay`` seconds; False if the recorder is stopping meanwhile."""
        return not self._stopping.wait(delay)

    # core/v1: recordToSink

    def _record_core(self, event: Event) -> None:
        result = self.correlator.correlate(event, self.clock())
        if result.skip or result.event is None:
            self.stats.skipped += 1
            return
        tries = 0
        while not self._write_core(result.event, result.patch):
            tries += 1
            if tries >= self.options.max_tries:
                self.stats.failed += 1
                log.error("Unable to write event %s (retry limit exceeded!).", _brief(event))
                return
            delay = self.options.sleep_duration
            if tries == 1:  # randomize the first sleep so that clients do not retry in step
                delay *= random.random()
            if not self._sleep(delay):
                self.stats.failed += 1
                log.error("Unable to write event %s (the recorder stopped).", _brief(event))
                return

    def _write_core(self, event: Event, patch: dict[str, Any] | None) -> bool:
        """recordEvent: True when written or abandoned, False to try again."""
        meta = event["metadata"]
        namespace = meta.get("namespace") or "default"
        update = int(event.get("count") or 1) > 1 and patch is not None
        try:
            status = 0
            if update:
                path = self._events_path(namespace, meta["name"])
                status, body = self._send("PATCH", path, patch, STRATEGIC)
            if not update or status == 404:  # the first one expired or was deleted: create
                meta.pop("resourceVersion", None)
                status, body = self._send("POST", self._events_path(namespace), event, JSON)
        except Exception as exc:
            log.warning("Unable to write event %s (%s); may retry.", _brief(event), exc)
            return False
        if 200 <= status < 300:
            self.correlator.update_state(body)
            if update and status == 200:
                self.stats.patched += 1
            else:
                self.stats.created += 1
            return True
        self._rejected(event, status, body)
        return True

    def _rejected(self, event: Event, status: int, message: Any) -> None:
        self.stats.rejected += 1
        level = logging.DEBUG if status == 409 else logging.ERROR
        hint = ""
        if status == 403:
            namespace = event["metadata"].get("namespace")
            hint = f" (RBAC: the recorder needs create and patch on events in {namespace})"
        log.log(level, "The API server rejected event %s: HTTP %d: %s%s (will not retry).",
                _brief(event), status, str(message)[:300], hint)  # fmt: skip

    # events.k8s.io/v1: recordToSink, attemptRecording, refreshExistingEventSeries, finishSeries

    def _record_v1(self, event: Event) -> None:
        to_record = self.series.observe(event, self.clock())
        if to_record is None:
            self.stats.counted += 1
            return
        tries = 0
        while self._write_v1(to_record)[1]:
            tries += 1
            if tries >= self.options.max_tries:
                self.stats.failed += 1
                log.error("Unable to write event %s (retry limit exceeded!).", _brief(event))
                return
            if not self._sleep(self.options.sleep_duration * (1 + random.random() * 0.25)):
                self.stats.failed += 1
                return

    def _write_v1(self, event: Event) -> tuple[Event | None, bool]:
        """recordEvent: (the server's event, whether to try again)."""
        meta = event["metadata"]
        namespace = meta.get("namespace") or "default"
        series = event.get("series")
        try:
            status = 0
            if series is not None:
                # CreateTwoWayMergePatch(the event without series, with it): only the series.
                path = self._events_path(namespace, meta["name"])
                status, body = self._send("PATCH", path, {"series": series}, STRATEGIC)
            if series is None or status == 404:
                meta.pop("resourceVersion", None)
                status, body = self._send("POST", self._events_path(namespace), event, JSON)
        except Exception as exc:
            log.warning("Unable to write event %s (%s); may retry.", _brief(event), exc)
            return None, True
        if 200 <= status < 300:
            if series is not None and status == 200:
                self.stats.patched += 1
            else:
                self.stats.created += 1
            return body, False
        if status == 409 and series is not None:
            # The create after a 404 met an event made meanwhile: patching it now works.
            return None, True
        self._rejected(event, status, body)
        return None, False

    def _refresh(self) -> None:
        for _key, event in self.series.refresh():
            self._write_v1(event)

    def _finish(self) -> None:
        ended, _ = self.series.finish(self.clock())
        for key, event in ended:
            if not self._write_v1(event)[1]:
                self.series.forget(key)


def _brief(event: Event) -> str:
    ref = event.get("involvedObject") or event.get("regarding") or {}
    return (
        f"{event.get('type')} {event.get('reason')} on {str(ref.get('kind', '')).lower()}/"
        f"{'/'.join(p for p in (ref.get('namespace'), ref.get('name')) if p)}"
    )

"""Kubernetes Events from Python, with client-go's semantics: an ``EventRecorder``.

A controller reports what it does as Events on the objects it handles. client-go's recorders
keep that from flooding the API server; this package does the same, with the same rules and
defaults, for Python controllers that use the official ``kubernetes`` client::

    from kubernetes import client, config
    from shipper.recorder import EventRecorder

    config.load_kube_config()  # or load_incluster_config() in a pod
    recorder = EventRecorder(client.ApiClient(), "my-operator")
    pod = client.CoreV1Api().read_namespaced_pod("web-1", "default")
    pod.kind = "Pod"  # models read with get/list do not carry it; dicts usually do
    recorder.event(pod, "Warning", "BackOff", "Back-off restarting failed container")
    ...
    recorder.close()  # on shutdown: writes what is still queued (5 s at most)

``recorder.event`` never blocks: the event is queued (up to 1,000) and written by the
recorder's own thread, retried on network errors (12 times, 10 s apart). What it writes:

* ``api_version="v1"`` (the default; client-go's ``tools/record``): core/v1 Events. The same
  event again PATCHes the first one's ``count`` and ``lastTimestamp``. Ten or more *similar*
  events (same object, type and reason, different messages) within 10 minutes become one
  event whose message starts with ``(combined from similar events): ``. A spam filter lets one
  source write 25 events about one object, then one more every 5 minutes (a token bucket); a
  dropped event still counts, so the next write carries the whole count.
* ``api_version="events.k8s.io/v1"`` (client-go's ``tools/events``): the first event is
  created; the same event again (same type, action, reason, object, reporter) turns it into a
  ``series`` (``count: 2``); further repeats are counted in memory and written on the
  heartbeat (every 30 minutes) and when the series ends (6 minutes without a repeat).

``post_event(obj, type, reason, message)`` is the one-line form (after kopf's): it uses the
recorder given to :func:`set_default_recorder`, or makes one from the in-cluster config or
the kubeconfig on first use. ``info`` and ``warn`` are shorter still.

Everything takes its client-go default from :class:`RecorderOptions` and
:class:`CorrelatorOptions`; ``clock=`` takes a function returning epoch seconds (tests).
docs/event-recorder.md has more examples.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from shipper.recorder.correlator import (
    AGGREGATE_PREFIX,
    CorrelateResult,
    CorrelatorOptions,
    EventCorrelator,
    SeriesCache,
    TokenBucket,
)
from shipper.recorder.recorder import (
    CORE,
    EVENTS_V1,
    EventRecorder,
    RecorderOptions,
    RecorderStats,
)
from shipper.recorder.reference import ObjectReference, get_reference

__all__ = [
    "AGGREGATE_PREFIX",
    "CORE",
    "EVENTS_V1",
    "CorrelateResult",
    "CorrelatorOptions",
    "EventCorrelator",
    "EventRecorder",
    "ObjectReference",
    "RecorderOptions",
    "RecorderStats",
    "SeriesCache",
    "TokenBucket",
    "get_reference",
    "info",
    "post_event",
    "set_default_recorder",
    "warn",
]

_default: EventRecorder | None = None
_lock = threading.Lock()


def set_default_recorder(recorder: EventRecorder | None) -> None:
    """The recorder :func:`post_event` uses (None: make one again on the next call)."""
    global _default
    with _lock:
        _default = recorder


def _default_recorder() -> EventRecorder:
    global _default
    with _lock:
        if _default is None:
            from kubernetes import client, config

            configuration = client.Configuration()
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException:
                config.load_kube_config(client_configuration=configuration)
            component = os.environ.get("EVENT_REPORTING_COMPONENT") or os.path.basename(
                sys.argv[0] or "python"
            )
            _default = EventRecorder(client.ApiClient(configuration), component)
        return _default


def post_event(obj: Any, type: str, reason: str, message: str = "", **kwargs: Any) -> bool:
    """Record an Event about ``obj`` with the default recorder (see :func:`set_default_recorder`);
    keywords go to :meth:`EventRecorder.event`. False if it was not queued."""
    return _default_recorder().event(obj, type, reason, message, **kwargs)


def info(obj: Any, reason: str, message: str = "", **kwargs: Any) -> bool:
    """A Normal event (kopf's ``kopf.info``)."""
    return post_event(obj, "Normal", reason, message, **kwargs)


def warn(obj: Any, reason: str, message: str = "", **kwargs: Any) -> bool:
    """A Warning event (kopf's ``kopf.warn``)."""
    return post_event(obj, "Warning", reason, message, **kwargs)

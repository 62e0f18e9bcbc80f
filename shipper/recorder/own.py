"""The shipper's own Events, on its own Pod: what an operator looks for with
``kubectl describe pod`` (and what the shipper then ships like any other event).

Reported (reason, type):

* ``SinkDown`` (Warning) when a sink's writes start failing, ``SinkRecovered`` (Normal) when
  it writes again;
* ``EventDeadLettered`` (Warning) when a sink refuses an event for good;
* ``WatchExpired`` (Normal) when a watch's resourceVersion was compacted away (410 Gone) and
  the events were listed again;
* ``LeaderElected`` (Normal) and ``LeadershipLost`` (Warning) with ``--leader-elect``;
* ``CheckpointSaveFailed`` (Warning) when the checkpoint cannot be saved.

Where: the Pod named by ``POD_NAME`` and ``POD_NAMESPACE`` (the Downward API; ``POD_UID`` and
``NODE_NAME`` too when given). Outside a Pod (no ``POD_NAME``) nothing is reported.
``KES_SELF_EVENTS=off`` turns it off; ``KES_SELF_EVENTS=events.k8s.io/v1`` writes
events.k8s.io Events (series) instead of core/v1 ones (the default, whose spam filter bounds
what a stuck shipper can write: 25 events, then one per 5 minutes).

No loops: the shipper ships these events too, and none of them may cause another one. State
changes are reported on the transition only (a sink that stays down is one ``SinkDown``, and
the events about it waiting for that sink change nothing), and a dead letter of one of the
shipper's own events is not reported.

Sink health and relists are read from the daemon's metrics (the registry's public samples)
once a second: the pipeline and the source need no hooks for them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from shipper.pipeline import DeadLetters
from shipper.recorder.recorder import CORE, EVENTS_V1, EventRecorder
from shipper.recorder.reference import ObjectReference

log = logging.getLogger(__name__)

COMPONENT = "kube-event-shipper"
MESSAGE_LIMIT = 1000  # events.k8s.io refuses a note over 1 kB; core messages stay readable


def _cut(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


class _LastWarning(logging.Handler):
    """The last error per sink name (from the pipeline's warnings, whose first argument is the
    sink's name): the detail a SinkDown event quotes."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(logging.WARNING)
        self.names = set(names)
        self.last: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if args and args[0] in self.names:
            # the pipeline's messages name the sink, then give the error among numbers:
            # "Sink %s could not write %d events (%s); retrying in %.1f s."
            errors = [a for a in args[1:] if not isinstance(a, int | float)]
            with contextlib.suppress(Exception):  # a malformed log call must not break logging
                self.last[str(args[0])] = str(errors[0]) if errors else record.getMessage()


class OwnEvents:
    """Reports the shipper's state changes as Events on its Pod (see the module docstring)."""

    def __init__(
        self,
        recorder: EventRecorder,
        pod: ObjectReference,
        registry: Any,
        sinks: Sequence[str],
        *,
        interval: float = 1.0,
    ) -> None:
        self.recorder, self.pod, self.registry = recorder, pod, registry
        self.sinks, self.interval = list(sinks), interval
        self._down: dict[str, float] = {}  # sink -> when it went down (monotonic)
        self._failures = {
            sink: self._sample("sink_write_failures_total", sink=sink) for sink in sinks
        }
        self._gone = self._sample("watch_restarts_total", reason="gone")
        self._warnings = _LastWarning(self.sinks)
        logging.getLogger("shipper.pipeline").addHandler(self._warnings)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_environment(
        cls,
        api: Any,
        registry: Any,
        sinks: Sequence[str],
        environ: Mapping[str, str] = os.environ,
        **kwargs: Any,
    ) -> OwnEvents | None:
        """The reporter for the Pod the Downward API names, or None (said in the log)."""
        mode = (environ.get("KES_SELF_EVENTS") or "").strip()
        if mode == "off":
            log.debug("KES_SELF_EVENTS=off: the shipper reports no Events of its own.")
            return None
        name, namespace = environ.get("POD_NAME"), environ.get("POD_NAMESPACE")
        if not name or not namespace:  # debug: this is said before the input is checked
            log.debug(
                "Not in a Pod (no POD_NAME and POD_NAMESPACE from the Downward API): the"
                " shipper reports no Events of its own."
            )
            return None
        api_version = {"": CORE, "on": CORE, "v1": CORE, EVENTS_V1: EVENTS_V1}.get(mode)
        if api_version is None:
            log.warning("KES_SELF_EVENTS=%s: expected off, v1 or %s; using v1.", mode, EVENTS_V1)
            api_version = CORE
        pod = ObjectReference(
            kind="Pod", name=name, namespace=namespace, api_version="v1",
            uid=environ.get("POD_UID") or "",
        )  # fmt: skip
        recorder = EventRecorder(
            api,
            COMPONENT,
            api_version=api_version,
            host=environ.get("NODE_NAME") or "",
            instance=name,
        )
        log.info("Reporting the shipper's own Events on pod %s/%s (%s).", namespace, name,
                 api_version)  # fmt: skip
        return cls(recorder, pod, registry, sinks, **kwargs)

    # -- lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="own-events", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 2.0) -> None:
        """Report what changed since the last look, write what is queued, stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.poll()
        logging.getLogger("shipper.pipeline").removeHandler(self._warnings)
        self.recorder.close(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:
                log.exception("Could not check the shipper's state for its own Events.")

    # -- what is reported

    def is_own(self, event: Any) -> bool:
        """An event this reporter wrote (about this Pod, from this component)."""
        return (
            event.object_kind == "Pod"
            and event.object_name == self.pod.name
            and event.object_namespace == self.pod.namespace
            and COMPONENT in (event.source_component, event.reporting_controller)
        )

    def dead_letter(self, sink: str, event: Any, reason: str) -> None:
        if self.is_own(event):
            return  # reporting it would make another event for the same sink to refuse
        self._report(
            "Warning",
            "EventDeadLettered",
            f"Sink {sink} refused an event for good ({event.describe()}): {reason}",
            action="DeadLetter",
        )

    def leader_elected(self, lease: str) -> None:
        self._report("Normal", "LeaderElected", f"Became the leader ({lease}); shipping.",
                     action="AcquireLease")  # fmt: skip

    def leadership_lost(self, lease: str, seconds: float) -> None:
        self._report(
            "Warning",
            "LeadershipLost",
            f"Could not renew {lease} for {seconds:.0f} s: no longer the leader; stopping.",
            action="RenewLease",
        )

    def checkpoint_failed(self, store: str, error: BaseException | str) -> None:
        self._report("Warning", "CheckpointSaveFailed",
                     f"Could not save the checkpoint in {store} ({error}); will retry.",
                     action="SaveCheckpoint")  # fmt: skip

    def poll(self) -> None:
        """Compare the metrics with the last look: sinks that went down or came back, relists."""
        for sink in self.sinks:
            up = self._sample("sink_up", sink=sink) == 1.0
            failures = self._sample("sink_write_failures_total", sink=sink)
            failed_since = failures > self._failures.get(sink, 0.0)
            self._failures[sink] = failures
            if sink not in self._down and (not up or failed_since):
                self._down[sink] = time.monotonic()
                detail = self._warnings.last.get(sink) or "its writes fail"
                self._report("Warning", "SinkDown", f"Sink {sink} cannot write: {detail}",
                             action="Write")  # fmt: skip
            if sink in self._down and up:
                # (a blip between two looks is reported as down, then recovered at once)
                took = time.monotonic() - self._down.pop(sink)
                self._report("Normal", "SinkRecovered",
                             f"Sink {sink} is writing again (down for about {took:.0f} s).",
                             action="Write")  # fmt: skip
        gone = self._sample("watch_restarts_total", reason="gone")
        if gone > self._gone:
            self._report("Normal", "WatchExpired",
                         "The watch's resourceVersion expired (410 Gone); listed the events"
                         " again and shipped the ones not shipped yet.", action="List")  # fmt: skip
        self._gone = gone

    def _report(self, type: str, reason: str, message: str, *, action: str) -> None:
        self.recorder.event(self.pod, type, reason, _cut(message), action=action)

    def _sample(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(f"kube_event_shipper_{name}", labels)
        return float(value or 0.0)


class ReportingDeadLetters(DeadLetters):
    """:class:`~shipper.pipeline.DeadLetters` that also reports each dead letter as an Event
    (the pipeline needs no hook: the daemon hands its workers this one)."""

    def __init__(self, state_dir: str | None, own: OwnEvents, **kwargs: Any) -> None:
        super().__init__(state_dir, **kwargs)
        self.own = own

    def add(self, sink: str, event: Any, reason: str) -> None:
        super().add(sink, event, reason)
        try:
            self.own.dead_letter(sink, event, reason)
        except Exception:  # reporting must never cost the dead letter itself
            log.exception("Could not report a dead letter as an Event.")

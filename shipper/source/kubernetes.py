"""The ``kubernetes:`` source: list, then watch Events as raw JSON, resuming without loss.

``kubernetes:[MASTER][?inClusterConfig=&insecure=&useServiceAccount=&auth=KUBECONFIG&namespaces=a,b]``

The flow per stream (all namespaces, or one stream per listed namespace), after kopf:

1. Resume: watch from the checkpoint's resourceVersion. Only what happened since comes back.
2. If that version is gone (410, etcd compacted it) or there is none: list every retained
   Event in pages and ship the versions the ledger has not seen (count updates made while we
   were away included), then watch from the list's resourceVersion.
3. Keep the newest version from every event and bookmark; reconnect from it when the server
   ends the watch (timeoutSeconds) or the connection drops; re-list only on 410.

Lines are decoded with orjson into plain dicts: no client models per event. Back-pressure from
the sinks simply pauses the reading.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from shipper import kube
from shipper.backoff import Backoff
from shipper.errors import one_line
from shipper.event import NotAnEvent, normalize
from shipper.uri import Param, Uri, UsageError, parse_bool, parse_list, resolve_params

log = logging.getLogger(__name__)

EVENT_APIS = {"v1": "/api/v1", "events.k8s.io/v1": "/apis/events.k8s.io/v1"}

SOURCE_PARAMS: tuple[Param, ...] = (
    Param(
        "inClusterConfig",
        parse_bool,
        None,
        "Use the pod's ServiceAccount (default: when running in a pod, else the kubeconfig).",
    ),
    Param("useServiceAccount", parse_bool, None, "Same as inClusterConfig (kube-eventer)."),
    Param("insecure", parse_bool, False, "Skip verifying the API server's certificate."),
    Param("auth", str, None, "Path of a kubeconfig file (default: $KUBECONFIG, ~/.kube/config)."),
    Param("namespaces", parse_list, [], "Only these namespaces (one watch each).", repeat=True),
    Param(
        "api",
        lambda text: _pick_api(text),
        "v1",
        "Which view to watch: v1 (core) or events.k8s.io/v1; both see every event.",
    ),
    Param("page_size", int, 500, "Events per page when listing."),
)


def _pick_api(text: str) -> str:
    if text in EVENT_APIS:
        return text
    if text in ("core", "core/v1"):
        return "v1"
    raise ValueError("expected v1 or events.k8s.io/v1")


class Gone(Exception):
    """410: the resourceVersion we asked for was compacted away."""


class ApiError(Exception):
    """A non-2xx reply, with the status and the server's message (cut for logs)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message[:300]}")
        self.status = status


@dataclass(frozen=True)
class SourceSettings:
    master: str | None
    in_cluster: bool | None
    insecure: bool
    kubeconfig: str | None
    namespaces: tuple[str, ...]
    api: str
    page_size: int

    @classmethod
    def from_uri(cls, text: str) -> SourceSettings:
        uri = Uri.parse(text, what="--source")
        if uri.scheme != "kubernetes":
            raise UsageError(f"--source: unknown scheme {uri.scheme!r} (known: kubernetes)")
        options, _ = resolve_params(SOURCE_PARAMS, uri.query, where="--source kubernetes")
        in_cluster = options["inClusterConfig"]
        if in_cluster is None:
            in_cluster = options["useServiceAccount"]
        if options["page_size"] < 1:
            raise UsageError("--source kubernetes: parameter page_size: expected at least 1")
        return cls(
            master=uri.rest or None,
            in_cluster=in_cluster,
            insecure=options["insecure"],
            kubeconfig=options["auth"],
            namespaces=tuple(dict.fromkeys(options["namespaces"])),
            api=options["api"],
            page_size=options["page_size"],
        )

    def describe(self) -> str:
        scope = ",".join(self.namespaces) if self.namespaces else "all namespaces"
        return f"kubernetes {self.api} events in {scope}"


def build_api_client(settings: SourceSettings) -> Any:
    """An authenticated ``kubernetes.client.ApiClient``, or UsageError naming what is wrong."""
    from kubernetes import client, config

    configuration = client.Configuration()
    in_cluster = settings.in_cluster
    if in_cluster is None:
        in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and settings.kubeconfig is None
    try:
        if in_cluster:
            config.load_incluster_config(client_configuration=configuration)
        else:
            path = settings.kubeconfig or os.environ.get("KUBECONFIG") or None
            shown = path or "~/.kube/config"
            if path and not os.path.isfile(path.split(os.pathsep)[0]):
                raise UsageError(f"--source kubernetes: kubeconfig {shown} does not exist")
            config.load_kube_config(config_file=path, client_configuration=configuration)
    except UsageError:
        raise
    except Exception as exc:  # ConfigException, YAML errors, bad certificates: all start-up input
        where = "in-cluster config" if in_cluster else "kubeconfig"
        raise UsageError(f"--source kubernetes: cannot load the {where}: {exc}") from None
    if settings.master:
        configuration.host = settings.master.rstrip("/")
    if settings.insecure:
        configuration.verify_ssl = False
    return client.ApiClient(configuration)


# Everything the source needs from the daemon, as plain callables (no imports of app code).
# (stream, event, position) -> True if the event went to the sinks, False if already handled.
Dispatch = Callable[[str, Any, "str | None"], bool]


class KubernetesSource:
    """Streams of Events from one API server into ``dispatch``."""

    watch_timeout = 290  # server-side; jittered so replicas do not reconnect in step
    read_timeout = 330.0  # bookmarks come about every minute, so silence this long is a dead link

    def __init__(
        self,
        settings: SourceSettings,
        api_client: Any,
        ledger: Any,
        dispatch: Dispatch,
        metrics: Any,
        *,
        cluster: str = "",
        start: str = "checkpoint",
    ) -> None:
        self.settings, self.api, self.ledger = settings, api_client, ledger
        self.dispatch, self.metrics, self.cluster, self.start = dispatch, metrics, cluster, start
        self.streams = list(settings.namespaces) or [""]
        self.stop_event = threading.Event()
        self._ready: dict[str, bool] = {stream: False for stream in self.streams}
        self._listed = metrics.watch_events.labels("LISTED")
        self._responses: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- readiness and stopping

    @property
    def ready(self) -> bool:
        return all(self._ready.values())

    def _set_ready(self, stream: str, value: bool) -> None:
        self._ready[stream] = value
        self.metrics.watch_ready.set(1 if self.ready else 0)

    def stop(self) -> None:
        """Stop reading; an open watch connection is shut so the reader wakes up at once."""
        self.stop_event.set()
        with self._lock:
            responses = list(self._responses.values())
        for response in responses:
            _shutdown(response)

    # -- the loop per stream

    def run_stream(self, stream: str) -> None:
        mode = self.start
        resume = None if mode in ("all", "new") else self.ledger.position(stream)
        if resume is not None:
            log.info("Resuming %s from resourceVersion %s.", _stream_name(stream), resume)
        backoff = Backoff(cap=30.0)
        while not self.stop_event.is_set():
            try:
                if resume is None:
                    resume = self._list(stream, ship=mode != "new")
                    mode = "checkpoint"  # later re-lists (410) ship what is missing
                resume = self._watch(stream, resume)
                backoff.reset()
            except Gone:
                log.info("The watch of %s expired (410 Gone); listing again.", _stream_name(stream))
                self.metrics.watch_restarts.labels("gone").inc()
                resume = None
            except Exception as exc:
                if self.stop_event.is_set():
                    break
                self._set_ready(stream, False)
                self.metrics.watch_restarts.labels("error").inc()
                delay = backoff.next_delay()
                log.warning(
                    "The watch of %s failed (%s); retrying in %.1f s.",
                    _stream_name(stream),
                    _brief(exc),
                    delay,
                )
                self.stop_event.wait(delay)

    def _path(self, stream: str) -> str:
        base = EVENT_APIS[self.settings.api]
        return f"{base}/namespaces/{stream}/events" if stream else f"{base}/events"

    def _request(self, stream: str, query: list[tuple[str, Any]], read_timeout: float) -> Any:
        response = kube.request(
            self.api, "GET", self._path(stream), query=query, read_timeout=read_timeout
        )
        if response.status == 410:
            response.release_conn()
            raise Gone()
        if not 200 <= response.status < 300:
            raise ApiError(response.status, kube.status_message(response.data))
        return response

    def _list(self, stream: str, *, ship: bool) -> str:
        """List every retained Event page by page; returns the list's resourceVersion."""
        self.metrics.relists.inc()
        started, shipped, present = time.monotonic(), 0, set()
        next_progress = started + 10.0
        token: str | None = None
        while True:
            query: list[tuple[str, Any]] = [("limit", self.settings.page_size if ship else 1)]
            if token:
                query.append(("continue", token))
            try:
                page = orjson.loads(self._request(stream, query, 60.0).data)
            except Gone:
                # The continue token outlived etcd's compaction: start the list over. The ledger
                # skips what this pass already handed to the sinks.
                log.info("A paged list of %s expired; starting it over.", _stream_name(stream))
                token, present = None, set()
                continue
            list_rv = page["metadata"]["resourceVersion"]
            for obj in page.get("items") or ():
                if not ship:
                    break
                self._listed.inc()
                present.add(obj["metadata"]["uid"])
                if self._offer(stream, obj, "LISTED", position=None):
                    shipped += 1
                if self.stop_event.is_set():
                    raise InterruptedError("stopping")
            token = (page["metadata"].get("continue") or None) if ship else None
            if not token:
                break
            if time.monotonic() > next_progress:  # big clusters: say that the list moves on
                next_progress = time.monotonic() + 10.0
                remaining = page["metadata"].get("remainingItemCount")
                log.info(
                    "Listing %s: %d events so far%s, %d of them to ship.",
                    _stream_name(stream),
                    len(present),
                    f", about {remaining} to go" if remaining is not None else "",
                    shipped,
                )
        if ship:
            forgotten = self.ledger.forget_missing(stream, present)
            log.info(
                "Listed %d events in %s in %.1f s: %d to ship, %d already shipped%s.",
                len(present),
                _stream_name(stream),
                time.monotonic() - started,
                shipped,
                len(present) - shipped,
                f", {forgotten} expired ones forgotten" if forgotten else "",
            )
        self.ledger.mark(stream, list_rv)
        return str(list_rv)

    def _watch(self, stream: str, resource_version: str) -> str:
        """Watch from ``resource_version`` until the server ends it; returns where to go on."""
        timeout = int(self.watch_timeout * random.uniform(0.9, 1.0))
        query = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", timeout),
        ]
        response = self._request(stream, query, self.read_timeout)
        with self._lock:
            self._responses[stream] = response
        self._set_ready(stream, True)
        try:
            for line in _lines(response):
                if self.stop_event.is_set():
                    break
                resource_version = self._handle_line(stream, line) or resource_version
        finally:
            with self._lock:
                self._responses.pop(stream, None)
            response.release_conn()
        self.metrics.watch_restarts.labels("timeout").inc()
        return resource_version

    def _handle_line(self, stream: str, line: bytes) -> str | None:
        item = orjson.loads(line)
        kind, obj = item.get("type"), item.get("object") or {}
        self.metrics.watch_events.labels(kind or "UNKNOWN").inc()
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise ApiError(int(obj.get("code") or 0), obj.get("message") or str(obj))
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            self.ledger.mark(stream, rv)
        elif kind == "DELETED":
            # TTL expiry: nothing to ship; the ledger forgets the uid in order.
            self.ledger.mark(stream, rv, deleted_uid=obj["metadata"].get("uid"))
        elif kind in ("ADDED", "MODIFIED"):
            self._offer(stream, obj, kind, position=rv)
        return rv

    def _offer(self, stream: str, obj: dict[str, Any], kind: str, position: str | None) -> bool:
        try:
            event = normalize(obj, kind, self.cluster)
        except NotAnEvent as exc:
            log.warning("Skipped an object in %s: %s.", _stream_name(stream), exc)
            return False
        self.metrics.last_event_timestamp.set(time.time())
        return self.dispatch(stream, event, position)


def _lines(response: Any) -> Iterator[bytes]:
    """Split a chunked watch response into JSON lines as they arrive."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=True):
        pending += chunk
        if b"\n" not in pending:
            continue
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line.strip():
                yield line
    if pending.strip():
        yield pending


def _shutdown(response: Any) -> None:
    try:
        if hasattr(response, "shutdown"):
            response.shutdown()
        else:
            response.close()
    except Exception:
        pass


def _brief(exc: BaseException) -> str:
    return one_line(exc)


def _stream_name(stream: str) -> str:
    return f"namespace {stream}" if stream else "all namespaces"

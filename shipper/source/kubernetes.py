"""The ``kubernetes:`` source: list, then watch Events as raw JSON, resuming without loss.

``kubernetes:[MASTER][?inClusterConfig=&insecure=&useServiceAccount=&auth=KUBECONFIG&namespaces=a,b]``

The flow per stream (all namespaces, or one stream per listed namespace), after kopf:

1. Resume: watch from the checkpoint's resourceVersion. Only what happened since comes back.
2. If that version is gone (410, etcd compacted it) or there is none: list every retained
   Event in pages and ship the versions the ledger has not seen (count updates made while we
   were away included), then watch from the list's resourceVersion.
3. Keep the newest version from every event and bookmark; reconnect from it when the server
   ends the watch (timeoutSeconds) or the connection drops; re-list only on 410.

Pages and lines are decoded by msgspec straight from the bytes into small structs holding only
the fields an Event needs (shipper/source/wire.py): no client models, no dict per object. One
page is held at a time. Back-pressure from the sinks simply pauses the reading.
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
from shipper.event import Event, NotAnEvent, normalize, utc_now
from shipper.source import client as lightweight
from shipper.source import wire
from shipper.source.client import LightClient
from shipper.source.wire import ListMeta
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
    """An authenticated client for :func:`shipper.kube.request`, or UsageError naming what is
    wrong: the light one of shipper/source/client.py for the usual credentials (it spares the
    official package's 27 MiB of models), else the official ``kubernetes.client.ApiClient``."""
    in_cluster = settings.in_cluster
    if in_cluster is None:
        in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and settings.kubeconfig is None
    light = _light_client(settings, in_cluster)
    if light is not None:
        return light
    from kubernetes import client, config

    configuration = client.Configuration()
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


def _light_client(settings: SourceSettings, in_cluster: bool) -> LightClient | None:
    if settings.insecure:
        return None  # rare: the official client's handling of it stays the reference
    if in_cluster:
        light = lightweight.in_cluster()
    else:
        path = settings.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        if os.pathsep in path:  # several files to merge: the official loader does that
            return None
        light = lightweight.from_kubeconfig(os.path.expanduser(path))
    if light is not None and settings.master:
        light.configuration.host = settings.master.rstrip("/")
    return light


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
        self._watched, self._seen = metrics.watch_events, dict[str, Any]()  # type -> counter
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
        """List every retained Event page by page; returns the list's resourceVersion.

        Only one page is held at a time: its items are handed to the sinks (whose queues are
        bounded) before the next page is asked for, so memory does not grow with the cluster's
        retained Events. What grows is the ledger, and ``present``, the uids seen, to forget at
        the end those the ledger knew that are gone; with an empty ledger (a first start,
        ``--start=all``) there is nothing to forget, and only their number is kept.
        """
        self.metrics.relists.inc()
        started, shipped, present = time.monotonic(), 0, _Seen(self.ledger.tracked_uids() > 0)
        next_progress = started + 10.0
        token: str | None = None
        while True:
            query: list[tuple[str, Any]] = [("limit", self.settings.page_size if ship else 1)]
            if token:
                query.append(("continue", token))
            try:
                meta, items = self._page(stream, query)
            except Gone:
                # The continue token outlived etcd's compaction: start the list over. The ledger
                # skips what this pass already handed to the sinks.
                log.info("A paged list of %s expired; starting it over.", _stream_name(stream))
                token, present = None, _Seen(self.ledger.tracked_uids() > 0)
                continue
            if ship and items:
                shipped += self._ship_page(stream, items, present)
            token = (meta.continue_ or None) if ship else None
            if not token:
                break
            if time.monotonic() > next_progress:  # big clusters: say that the list moves on
                next_progress = time.monotonic() + 10.0
                remaining = meta.remainingItemCount
                log.info(
                    "Listing %s: %d events so far%s, %d of them to ship.",
                    _stream_name(stream),
                    len(present),
                    f", about {remaining} to go" if remaining is not None else "",
                    shipped,
                )
        if ship:
            forgotten = self.ledger.forget_missing(stream, present.uids) if present.keep else 0
            log.info(
                "Listed %d events in %s in %.1f s: %d to ship, %d already shipped%s.",
                len(present),
                _stream_name(stream),
                time.monotonic() - started,
                shipped,
                len(present) - shipped,
                f", {forgotten} expired ones forgotten" if forgotten else "",
            )
        self.ledger.mark(stream, meta.resourceVersion)
        return str(meta.resourceVersion)

    def _page(self, stream: str, query: list[tuple[str, Any]]) -> tuple[ListMeta, list[Any]]:
        """One page of the list: its metadata and its items, decoded straight from the bytes
        (shipper/source/wire.py); the odd page that does not fit the structs is read as dicts,
        and each item is then converted on its own (so one odd item is skipped, not the page).
        """
        data = self._request(stream, query, 60.0).data
        try:
            page = wire.decode_page(data)
            return page.metadata, page.items or []
        except wire.DecodeError:
            loose = orjson.loads(data)
            meta = wire.ListMeta(
                resourceVersion=str(loose["metadata"]["resourceVersion"]),
                continue_=loose["metadata"].get("continue") or None,
                remainingItemCount=loose["metadata"].get("remainingItemCount"),
            )
            return meta, loose.get("items") or []

    def _ship_page(self, stream: str, items: list[Any], present: _Seen) -> int:
        """Offer a page's items; returns how many went to the sinks. Metrics are counted once
        per page, and a dispatcher that takes a page (:meth:`Dispatcher.page`) gets it whole."""
        self._listed.inc(len(items))
        self.metrics.last_event_timestamp.set(time.time())
        events, now = [], utc_now()
        for obj in items:
            event = self._normalize(stream, obj, "LISTED", now)
            if event is not None:
                present.add(event.uid)
                events.append(event)
        page = getattr(self.dispatch, "page", None)
        if page is not None:
            shipped = page(stream, events)
            if shipped is None or self.stop_event.is_set():
                raise InterruptedError("stopping")
            return int(shipped)
        shipped = 0
        for event in events:
            if self.dispatch(stream, event, None):
                shipped += 1
            if self.stop_event.is_set():
                raise InterruptedError("stopping")
        return shipped

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
        try:
            item = wire.decode_line(line)
            kind, obj = item.type, item.object or wire.WireEvent()
        except wire.DecodeError:
            loose = orjson.loads(line)  # a line the structs do not fit: read it loosely
            kind, obj = loose.get("type"), loose.get("object") or {}
            if kind == "ERROR":
                obj = wire.WireEvent(code=obj.get("code"), message=obj.get("message") or str(obj))
        kind = kind or "UNKNOWN"
        seen = self._seen.get(kind) or self._seen.setdefault(kind, self._watched.labels(kind))
        seen.inc()
        if kind == "ERROR":
            if obj.code == 410:
                raise Gone()
            raise ApiError(int(obj.code or 0), obj.message or str(obj))
        rv = _resource_version(obj)
        if kind == "BOOKMARK":
            self.ledger.mark(stream, rv)
        elif kind == "DELETED":
            # TTL expiry: nothing to ship; the ledger forgets the uid in order.
            self.ledger.mark(stream, rv, deleted_uid=_uid(obj))
        elif kind in ("ADDED", "MODIFIED"):
            event = self._normalize(stream, obj, kind)
            if event is not None:
                self.metrics.last_event_timestamp.set(time.time())
                self.dispatch(stream, event, rv)
        return rv

    def _normalize(self, stream: str, obj: Any, kind: str, now: str | None = None) -> Event | None:
        try:
            return normalize(obj, kind, self.cluster, now)
        except NotAnEvent as exc:
            log.warning("Skipped an object in %s: %s.", _stream_name(stream), exc)
            return None


class _Seen:
    """The uids a list found: kept only when the ledger knew some before (to forget those that
    are gone), else only counted."""

    def __init__(self, keep: bool) -> None:
        self.keep, self.count = keep, 0
        self.uids: set[str] = set()

    def add(self, uid: str) -> None:
        self.count += 1
        if self.keep:
            self.uids.add(uid)

    def __len__(self) -> int:
        return len(self.uids) if self.keep else self.count


def _resource_version(obj: Any) -> str | None:
    if isinstance(obj, dict):
        return (obj.get("metadata") or {}).get("resourceVersion")
    return obj.metadata.resourceVersion


def _uid(obj: Any) -> str | None:
    if isinstance(obj, dict):
        return (obj.get("metadata") or {}).get("uid")
    return obj.metadata.uid


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

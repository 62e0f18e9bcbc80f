"""Enrichment: the involved object's labels, annotations and top owner, added to each event.

kubernetes-event-exporter looks the object up for every event through a client-side throttled
client, so a burst of events waits for the throttle, arrives late and is then dropped as "too
old" (its issues #184, #118, #16). Here:

- **Never late.** Lookups take tokens from a bucket (``--enrich-qps``, ``--enrich-burst``) that is
  never waited on: with no token left the event ships at once without the labels, and
  ``kube_event_shipper_enrich_events_total{outcome="rate_limited"}`` counts it. A lookup that
  fails or times out (``--enrich-timeout``) ships the event without labels too, and pauses
  lookups for 1 s, doubling to 30 s while failures go on (``outcome="backoff"``): a struggling
  API server never stalls the watch thread lookup by lookup.
- **Bounded.** A least-recently-used cache of object metadata with a TTL (``--enrich-cache-size``,
  ``--enrich-cache-ttl``); objects that do not exist or may not be read are cached as such, so
  a deleted Pod's 50 events cost one request. A cached entry for another object of the same name
  (a new uid) is not used.
- **No discovery per event.** Built-in kinds map to their resource by a table; other kinds are
  found by one discovery request per group/version, cached with the objects' TTL.
- **Metadata only.** Requests ask for ``PartialObjectMetadata``: a Pod's spec and status never
  travel. Secrets are never looked up.
- **Quiet.** 403 (RBAC) and 404 (deleted) are counted by outcome, never logged per event; a
  resource the shipper may not read is logged once and then remembered for the cache TTL.

The owner is followed through controller ownerReferences (Pod -> ReplicaSet -> Deployment, Job ->
CronJob) to the top, at most ``MAX_OWNER_DEPTH`` steps, each a cached lookup under the same
bucket. The event gets ``kubernetes.owner.{kind,name,uid,api_version,labels}`` of the top owner.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from shipper import kube
from shipper.caching import TTLCache
from shipper.event import Event

log = logging.getLogger(__name__)

MAX_OWNER_DEPTH = 4
#: What happened to an event: enriched, or why not.
OUTCOMES = (
    "enriched", "rate_limited", "backoff", "not_found", "forbidden", "error", "unsupported",
    "skipped",
)  # fmt: skip
#: After a failed lookup (timeout, 5xx, 429) no lookup is tried for this long, doubling while
#: they keep failing: a struggling API server must not stall the watch thread lookup by lookup.
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0
#: What an API request (a lookup or a discovery) returned.
RESULTS = ("ok", "not_found", "forbidden", "error")
#: Negative answers are kept shorter: a missing object may be created under that name soon.
NEGATIVE_TTL = 60.0
#: Ask for metadata only; a server that cannot (an aggregated API) falls back to the object.
ACCEPT_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"

#: (apiVersion, kind) -> (resource, namespaced) for built-in kinds events are about.
BUILTIN: dict[tuple[str, str], tuple[str, bool]] = {
    ("v1", "Pod"): ("pods", True),
    ("v1", "Node"): ("nodes", False),
    ("v1", "Service"): ("services", True),
    ("v1", "Endpoints"): ("endpoints", True),
    ("v1", "PersistentVolumeClaim"): ("persistentvolumeclaims", True),
    ("v1", "PersistentVolume"): ("persistentvolumes", False),
    ("v1", "Namespace"): ("namespaces", False),
    ("v1", "ConfigMap"): ("configmaps", True),
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    ("v1", "ReplicationController"): ("replicationcontrollers", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("apps/v1", "ReplicaSet"): ("replicasets", True),
    ("apps/v1", "StatefulSet"): ("statefulsets", True),
    ("apps/v1", "DaemonSet"): ("daemonsets", True),
    ("batch/v1", "Job"): ("jobs", True),
    ("batch/v1", "CronJob"): ("cronjobs", True),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): ("horizontalpodautoscalers", True),
    ("autoscaling/v1", "HorizontalPodAutoscaler"): ("horizontalpodautoscalers", True),
    ("networking.k8s.io/v1", "Ingress"): ("ingresses", True),
    ("policy/v1", "PodDisruptionBudget"): ("poddisruptionbudgets", True),
}
#: Kinds never looked up, whatever RBAC allows: reading a Secret's metadata needs `get secrets`.
NEVER = {"Secret"}


@dataclass(frozen=True, slots=True)
class Meta:
    """What enrichment keeps of an object: small, and shared by all its events."""

    uid: str
    labels: dict[str, str]
    annotations: dict[str, str]
    #: (apiVersion, kind, name) of the controller ownerReference (else the first one), if any.
    owner: tuple[str, str, str] | None


#: A lookup's answer: the metadata, or the outcome that explains why there is none.
Found = Meta | str


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved; ``take`` never waits."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst, self.clock = rate, max(1, burst), clock
        self.tokens = float(self.burst)
        self.stamp = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens < 1.0:
                return False
            self.tokens -= 1.0
            return True


@dataclass(frozen=True)
class EnrichSettings:
    enabled: bool = True
    qps: float = 20.0
    burst: int = 50
    cache_size: int = 10_000
    cache_ttl: float = 600.0
    timeout: float = 2.0
    owners: bool = True


class Enricher:
    """Adds labels, annotations and the top owner of the involved object to events."""

    def __init__(self, api_client: Any, metrics: Any, settings: EnrichSettings) -> None:
        self.api, self.metrics, self.settings = api_client, metrics, settings
        self.bucket = TokenBucket(settings.qps, settings.burst)
        self.objects = TTLCache(settings.cache_size, settings.cache_ttl)
        #: (apiVersion, kind) -> (resource, namespaced) | outcome; discovery and RBAC denials
        self.resources = TTLCache(1000, settings.cache_ttl)
        self._outcomes = {name: metrics.enrich_events.labels(name) for name in OUTCOMES}
        self._results = {name: metrics.enrich_requests.labels(name) for name in RESULTS}
        self._paused_until = 0.0
        self._backoff = BACKOFF_FIRST
        metrics.enrich_cache_entries.set_function(lambda: len(self.objects))

    def enrich(self, event: Event) -> None:
        """Fill ``event.labels``/``annotations``/``owner`` where they can be had without waiting."""
        if not event.object_kind or not event.object_name:
            self._outcomes["skipped"].inc()
            return
        found = self._lookup(
            event.object_api_version or "v1",
            event.object_kind,
            event.object_namespace or "",
            event.object_name,
            event.object_uid,
        )
        if isinstance(found, str):
            self._outcomes[found].inc()
            return
        self._outcomes["enriched"].inc()
        event.labels = found.labels or None
        event.annotations = found.annotations or None
        if self.settings.owners and found.owner is not None:
            event.owner = self._top_owner(found.owner, event.object_namespace or "")

    def _top_owner(self, owner: tuple[str, str, str], namespace: str) -> dict[str, Any]:
        """The last owner we could look up, following controllers upwards."""
        top: dict[str, Any] = {"api_version": owner[0], "kind": owner[1], "name": owner[2]}
        for _ in range(MAX_OWNER_DEPTH):
            found = self._lookup(owner[0], owner[1], namespace, owner[2], None)
            if isinstance(found, str):
                break
            top = {"api_version": owner[0], "kind": owner[1], "name": owner[2], "uid": found.uid}
            if found.labels:
                top["labels"] = found.labels
            if found.owner is None:
                break
            owner = found.owner
            top = {"api_version": owner[0], "kind": owner[1], "name": owner[2]}
        return top

    # -- lookups

    def _lookup(
        self, api_version: str, kind: str, namespace: str, name: str, uid: str | None
    ) -> Found:
        if kind in NEVER:
            return "unsupported"
        key = (api_version, kind, namespace, name)
        cached = self.objects.get(key)
        if cached is not None and (isinstance(cached, str) or not uid or cached.uid == uid):
            return cached  # another uid under this name: the object was re-created; fetch it
        resource = self._resource(api_version, kind)
        if isinstance(resource, str):
            return resource
        if time.monotonic() < self._paused_until:
            return "backoff"
        if not self.bucket.take():
            return "rate_limited"
        found = self._fetch(api_version, resource, namespace, name)
        if isinstance(found, Meta):
            self.objects.put(key, found)
        elif found == "forbidden":
            self._forbid(api_version, kind, resource[0])
        elif found == "not_found":
            self.objects.put(key, found, ttl=min(NEGATIVE_TTL, self.settings.cache_ttl))
        return found

    def _forbid(self, api_version: str, kind: str, resource: str) -> None:
        if self.resources.get((api_version, kind)) != "forbidden":
            log.warning(
                "Enrichment: may not get %s (%s); events about them ship without labels for %.0f s"
                " (grant get on %s, or turn enrichment off).",
                resource, api_version, self.settings.cache_ttl, resource,
            )  # fmt: skip
        self.resources.put((api_version, kind), "forbidden", ttl=self.settings.cache_ttl)

    def _resource(self, api_version: str, kind: str) -> tuple[str, bool] | str:
        known = self.resources.get((api_version, kind)) or BUILTIN.get((api_version, kind))
        if known is not None:  # a remembered denial comes first, built-in kinds included
            return known
        if time.monotonic() < self._paused_until:
            return "backoff"
        if not self.bucket.take():
            return "rate_limited"
        found = self._discover(api_version, kind)
        if found != "error":  # a failed discovery is tried again after the backoff
            self.resources.put((api_version, kind), found)
        return found

    def _discover(self, api_version: str, kind: str) -> tuple[str, bool] | str:
        """One discovery request per group/version: its kinds go into the cache together."""
        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        status, body = self._get(path, accept="application/json")
        if status != 200:
            return _outcome(status)
        wanted: tuple[str, bool] | str = "unsupported"
        for item in body.get("resources") or ():
            name = str(item.get("name") or "")
            if "/" in name or "get" not in (item.get("verbs") or ()):
                continue  # subresources (pods/log) and resources without get
            resource = (name, bool(item.get("namespaced")))
            self.resources.put((api_version, item.get("kind")), resource)
            if item.get("kind") == kind:
                wanted = resource
        return wanted

    def _fetch(
        self, api_version: str, resource: tuple[str, bool], namespace: str, name: str
    ) -> Found:
        plural, namespaced = resource
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if namespaced:
            if not namespace:
                return "unsupported"
            path = f"{base}/namespaces/{namespace}/{plural}/{name}"
        else:
            path = f"{base}/{plural}/{name}"
        status, body = self._get(path, accept=ACCEPT_METADATA)
        if status != 200:
            return _outcome(status)
        return _meta(body.get("metadata") or {})

    def _get(self, path: str, *, accept: str) -> tuple[int, dict[str, Any]]:
        try:
            response = kube.request(
                self.api, "GET", path, accept=accept, read_timeout=self.settings.timeout,
                connect_timeout=self.settings.timeout,
            )  # fmt: skip
            status, why = response.status, f"HTTP {response.status}"
            body = orjson.loads(response.data) if status == 200 else {}
        except Exception as exc:  # timeouts, resets: the event ships without labels
            status, body, why = 0, {}, " ".join(str(exc).split())[:200] or type(exc).__name__
        result = "ok" if status == 200 else _outcome(status)
        self._results[result].inc()
        if result == "error":
            self._paused_until = time.monotonic() + self._backoff
            log.warning(
                "Enrichment: GET %s failed (%s); no lookups for %.0f s, events ship without"
                " labels meanwhile.",
                path, why, self._backoff,
            )  # fmt: skip
            self._backoff = min(BACKOFF_MAX, self._backoff * 2)
        else:
            self._backoff = BACKOFF_FIRST
        return status, body


def _outcome(status: int) -> str:
    if status == 404:
        return "not_found"
    if status in (401, 403):
        return "forbidden"
    return "error"


def _meta(metadata: dict[str, Any]) -> Meta:
    owner = None
    references = metadata.get("ownerReferences") or ()
    chosen = next((r for r in references if r.get("controller")), None) or next(
        iter(references), None
    )
    if chosen and chosen.get("kind") and chosen.get("name"):
        owner = (str(chosen.get("apiVersion") or "v1"), str(chosen["kind"]), str(chosen["name"]))
    return Meta(
        uid=str(metadata.get("uid") or ""),
        labels=dict(metadata.get("labels") or {}),
        annotations=dict(metadata.get("annotations") or {}),
        owner=owner,
    )

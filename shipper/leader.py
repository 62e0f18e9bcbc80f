"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's rules.

Only the leader watches and ships; standbys wait. The timing is client-go's (and the flags are
named like kube-controller-manager's):

- a standby takes the Lease when its holder has not renewed it for ``lease_duration`` (15 s),
  measured on the standby's own clock from the moment it *saw* the last change, so clocks
  need not agree;
- the leader renews every ``retry_period`` (2 s) and gives up leadership, stopping at once,
  when it could not renew for ``renew_deadline`` (10 s): always before a standby may take over;
- on a graceful stop the leader releases the Lease, so a standby takes over within one retry
  period instead of a lease duration.

After the leader is SIGKILLed a standby therefore ships again within about lease_duration +
retry_period (17 s), resuming from the shared checkpoint (``--checkpoint=configmap:...``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from shipper import kube

log = logging.getLogger(__name__)


def default_identity() -> str:
    """The pod's name (``POD_NAME`` from the downward API, else the hostname) plus a suffix,
    so a restarted container never mistakes its predecessor's Lease for its own."""
    name = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{name}_{uuid.uuid4().hex[:8]}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        api: Any,
        namespace: str,
        name: str,
        *,
        identity: str | None = None,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
    ) -> None:
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("expected retry period < renew deadline < lease duration")
        self.api, self.namespace, self.name = api, namespace, name
        self.identity = identity or default_identity()
        self.lease_duration, self.renew_deadline = lease_duration, renew_deadline
        self.retry_period = retry_period
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        self.is_leader = False
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0

    def describe(self) -> str:
        return f"Lease {self.namespace}/{self.name} as {self.identity}"

    # -- the loops

    def acquire(self, stop: threading.Event) -> bool:
        """Block until this process holds the Lease (True) or ``stop`` is set (False)."""
        waiting_since = time.monotonic()
        holder_logged = None
        while not stop.is_set():
            if self._try():
                log.info(
                    "Became the leader (%s) after %.1f s.",
                    self.describe(),
                    time.monotonic() - waiting_since,
                )
                return True
            holder = self._observed[0] if self._observed else None
            if holder != holder_logged:
                log.info("Standing by: %s is the leader.", holder or "nobody yet")
                holder_logged = holder
            stop.wait(self.retry_period)
        return False

    def keep(self, stop: threading.Event, lost: Callable[[], None]) -> None:
        """Renew until ``stop``; call ``lost`` (once) if renewing fails for renew_deadline."""
        renewed = time.monotonic()
        while not stop.wait(self.retry_period):
            if self._try():
                renewed = time.monotonic()
            elif time.monotonic() - renewed > self.renew_deadline:
                self.is_leader = False
                lost()
                return

    def release(self) -> None:
        """Hand the Lease back so a standby need not wait for it to expire."""
        if not self.is_leader:
            return
        self.is_leader = False
        try:
            response = kube.request(self.api, "GET", self.path)
            if response.status != 200:
                return
            lease = orjson.loads(response.data)
            if lease["spec"].get("holderIdentity") != self.identity:
                return
            lease["spec"].update(holderIdentity="", leaseDurationSeconds=1, renewTime=_now())
            response = kube.request(self.api, "PUT", self.path, body=lease)
            if response.status == 200:
                log.info("Released %s.", self.describe())
        except Exception as exc:  # the process is stopping; the Lease will just expire
            log.warning("Could not release %s: %s", self.describe(), exc)

    # -- one attempt

    def _try(self) -> bool:
        try:
            held = self._try_acquire_or_renew()
        except Exception as exc:
            log.warning("Lease %s/%s: %s", self.namespace, self.name, exc)
            held = False
        self.is_leader = held
        return held

    def _try_acquire_or_renew(self) -> bool:
        response = kube.request(self.api, "GET", self.path)
        if response.status == 404:
            return self._create()
        if response.status != 200:
            raise OSError(f"cannot read the Lease: {kube.status_message(response.data)}")
        lease = orjson.loads(response.data)
        spec = lease.setdefault("spec", {})
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
        if record != self._observed:  # a change: the holder is alive (or a new one came)
            self._observed, self._observed_at = record, time.monotonic()
        duration = spec.get("leaseDurationSeconds") or self.lease_duration
        if holder and holder != self.identity and time.monotonic() < self._observed_at + duration:
            return False
        now = _now()
        if holder != self.identity:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=round(self.lease_duration),
            renewTime=now,
        )
        response = kube.request(self.api, "PUT", self.path, body=lease)
        if response.status == 409:  # someone else wrote it first: theirs wins
            return False
        if response.status != 200:
            raise OSError(f"cannot update the Lease: {kube.status_message(response.data)}")
        spec = orjson.loads(response.data)["spec"]
        self._observed = (self.identity, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
        self._observed_at = time.monotonic()
        return True

    def _create(self) -> bool:
        now = _now()
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": round(self.lease_duration),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        path = f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"
        response = kube.request(self.api, "POST", path, body=body)
        if response.status == 409:
            return False
        if response.status != 201:
            raise OSError(f"cannot create the Lease: {kube.status_message(response.data)}")
        return True

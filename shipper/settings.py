"""The daemon's settings: each default lives here once; the command line and its help read it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from shipper.enrich import EnrichSettings


def pod_namespace() -> str:
    """The namespace this pod runs in (its ServiceAccount's), else ``default``."""
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as handle:
            return handle.read().strip() or "default"
    except OSError:
        return "default"


def default_state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "kube-event-shipper")


@dataclass
class Settings:
    """Daemon settings; every default is what ``kube-event-shipper`` does with no flags."""

    source: str = "kubernetes:"
    """Where events come from (a kube-eventer source URI); empty: only the audit source."""
    audit_source: str | None = None
    """``audit:?listen=...``: also serve the API server's audit webhook (shipper/audit/)."""
    sinks: list[str] = field(default_factory=list)
    """Sink URIs; none means the embedded store, ``sqlite:`` in the state directory."""
    state_dir: str | None = field(default_factory=default_state_dir)
    """Checkpoint, dead letters and the default store live here; None keeps nothing."""
    start: str = "checkpoint"
    """checkpoint: resume where the last run stopped (everything retained on a first run);
    all: ship every retained event again; new: only events from now on."""
    cluster: str = ""
    """Cluster name put on every event (orchestrator.cluster.name)."""
    listen: tuple[str, int] | None = ("0.0.0.0", 8080)
    """Address of /healthz, /readyz and /metrics; None turns them off."""
    grace_period: float = 25.0
    """On SIGTERM, how long sinks may drain (keep it under terminationGracePeriodSeconds)."""
    checkpoint_interval: float = 1.0
    """How often the checkpoint is saved; after a crash, at most this much is shipped again."""
    checkpoint: str = "file"
    """file: checkpoint.db in the state directory; configmap:[NAMESPACE/]NAME: a ConfigMap
    (pods without a volume); none: keep nothing (every start ships everything retained)."""
    config: str | None = None
    """A kubernetes-event-exporter config file (routes and receivers), see shipper/config.py."""
    strict: bool = False
    """Refuse what the original accepts silently in a config file (unknown keys, a route to a
    receiver that is not defined, an invalid regex) instead of warning about it."""
    leader_elect: bool = False
    """Run as one of several replicas: only the holder of the Lease ships (shipper/leader.py)."""
    leader_lease: str = "kube-event-shipper"
    """[NAMESPACE/]NAME of the Lease; the namespace defaults to the pod's."""
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    enrich: EnrichSettings = field(default_factory=lambda: EnrichSettings(enabled=False))
    """Look up the involved object's labels, annotations and owner (shipper/enrich.py); on by
    itself when a config file's rules match labels or annotations."""

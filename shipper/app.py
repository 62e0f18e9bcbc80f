"""The daemon: source -> normalize -> filter -> per-sink queue -> batch -> write, wired once.

Every long-running piece is a named thread started here; if one dies unexpectedly the whole
process stops (non-zero), rather than limping on without a watch or a sink. SIGTERM stops the
watch, lets the sinks drain within the grace period, saves the checkpoint and exits 0. Whatever
could not be written in time stays unacknowledged and is shipped after the restart.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import replace
from typing import Any

from shipper.audit.source import AuditSource, AuditSourceSettings
from shipper.checkpoint import (
    CheckpointStore,
    ConfigMapStore,
    Ledger,
    MemoryStore,
    SqliteStore,
)
from shipper.config import Config
from shipper.config import load as load_config
from shipper.dispatch import Dispatcher
from shipper.enrich import Enricher, EnrichSettings
from shipper.health import HealthServer
from shipper.leader import LeaderElector
from shipper.metrics import Metrics
from shipper.pipeline import DeadLetters, SinkWorker, tune_gc
from shipper.recorder.own import OwnEvents, ReportingDeadLetters
from shipper.routing import Router
from shipper.settings import Settings, pod_namespace
from shipper.sinks.base import SinkContext
from shipper.sinks.factory import build_sinks
from shipper.source import kafka as kafka_source
from shipper.source.kubernetes import KubernetesSource, SourceSettings, build_api_client
from shipper.uri import UsageError

log = logging.getLogger(__name__)


class Shipper:
    """The daemon: ``Shipper(settings).run()`` blocks until stopped, returns an exit code."""

    def __init__(self, settings: Settings, *, api_client: Any = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        ctx = SinkContext(
            cluster=settings.cluster, state_dir=settings.state_dir, metrics=self.metrics
        )
        # Everything that can be wrong with the input is found here, before anything starts.
        self.config = (
            load_config(settings.config, strict=settings.strict) if settings.config else None
        )
        if self.config is not None:
            self._apply_config(self.config)
            ctx = SinkContext(
                cluster=settings.cluster, state_dir=settings.state_dir, metrics=self.metrics
            )
        #: fan-in: --source=kafka: reads what other clusters' shippers wrote (an aggregator)
        self.fan_in = kafka_source.is_kafka(settings.source)
        self.source_settings: Any = (
            kafka_source.KafkaSourceSettings.from_uri(settings.source, settings)
            if self.fan_in
            else SourceSettings.from_uri(settings.source)
            if settings.source
            else None  # only the audit source
        )
        #: --source=audit: the API server's audit webhook (shipper/audit/)
        self.audit_settings = (
            AuditSourceSettings.from_uri(settings.audit_source, settings)
            if settings.audit_source
            else None
        )
        if self.audit_settings is not None and self.fan_in:
            raise UsageError(
                "--source audit: not with --source kafka; run it in the clusters' shippers"
            )
        sinks = build_sinks(settings.sinks, ctx, self.config)
        _check_store_directories(sinks)
        self.api_client = (
            None
            if self.fan_in or self.source_settings is None
            else api_client or build_api_client(self.source_settings)
        )
        self.enricher = (
            Enricher(self.api_client, self.metrics, settings.enrich)
            if settings.enrich.enabled and self.api_client is not None
            else None
        )
        # The shipper's own Events on its Pod (shipper/recorder/own.py); none outside a Pod.
        self.own = (
            OwnEvents.from_environment(
                self.api_client, self.metrics.registry, [cfg.name for _, cfg in sinks]
            )
            if self.api_client is not None
            else None
        )
        dead_letters = (
            DeadLetters(settings.state_dir)
            if self.own is None
            else ReportingDeadLetters(settings.state_dir, self.own)
        )
        self.workers = [SinkWorker(s, cfg, self.metrics, dead_letters) for s, cfg in sinks]
        self.router = Router(self.workers, self.config)
        if self.audit_settings is not None and not self.router.for_audit:
            raise UsageError(
                "--source audit: no sink keeps audit documents (stores and JSON sinks do, chats"
                " do not; a sink with documents=events does not): add one, such as --sink=sqlite:"
            )
        self.elector = self._leader_elector() if settings.leader_elect else None
        self.ledger: Ledger | None = None
        self.source: KubernetesSource | kafka_source.KafkaSource | None = None
        self.audit: AuditSource | None = None
        if self.elector is None:
            self.metrics.leader.set(1)
            self._load_checkpoint()
        else:
            self._checkpoint_store()  # its errors are usage errors: find them now
        self.stopping = threading.Event()
        self.health: HealthServer | None = None
        self._threads: list[threading.Thread] = []
        self._failed: str | None = None
        self._grace_override: float | None = None

    def _apply_config(self, config: Config) -> None:
        """The config file's top-level settings, where the command line left the default."""
        settings = self.settings
        if config.cluster_name and not settings.cluster:
            settings.cluster = config.cluster_name
        if config.namespace and settings.source and "namespaces=" not in settings.source:
            glue = "&" if "?" in settings.source else "?"
            settings.source = f"{settings.source}{glue}namespaces={config.namespace}"
        if config.cache_size:
            settings.enrich = replace(settings.enrich, cache_size=config.cache_size)
        if config.omit_lookup:
            if settings.enrich.enabled:
                log.info("--config %s: omitLookup is true: enrichment is off.", config.path)
            settings.enrich = replace(settings.enrich, enabled=False)
        elif config.uses_labels() and not settings.enrich.enabled:
            settings.enrich = replace(settings.enrich, enabled=True)
            log.info(
                "--config %s: rules match labels or annotations; enrichment is on.", config.path
            )
        # Their kubeQPS/kubeBurst throttled these lookups; here they size the bucket, unless
        # --enrich-qps/--enrich-burst said otherwise.
        default = EnrichSettings()
        if config.kube_qps and settings.enrich.qps == default.qps:
            settings.enrich = replace(settings.enrich, qps=config.kube_qps)
        if config.kube_burst and settings.enrich.burst == default.burst:
            settings.enrich = replace(settings.enrich, burst=config.kube_burst)
        if config.leader_election and not settings.leader_elect:
            settings.leader_elect = True
            name = config.leader_election_id or "kube-event-shipper"
            settings.leader_lease = name
            if settings.checkpoint == "file":
                settings.checkpoint = f"configmap:{name}-checkpoint"
                log.info(
                    "leaderElection in %s: checkpoint in ConfigMap %s-checkpoint.",
                    config.path,
                    name,
                )

    def _load_checkpoint(self) -> None:
        """The ledger (read from the checkpoint) and the source that feeds it. A standby does
        this only when it becomes the leader: the checkpoint is the last leader's by then."""
        if self.fan_in:  # the consumer group keeps the offsets: shipper/source/kafka.py
            self.ledger, self.dispatcher, self.source = kafka_source.wire(self)
            return
        self.ledger = Ledger(self._checkpoint_store(), source=self._source_identity())
        if self.settings.start == "all":
            self.ledger.reset()
        self.dispatcher = Dispatcher(
            self.ledger, self.router, self.workers, self.metrics, self.enricher
        )
        if self.audit_settings is not None:
            assert self.settings.state_dir is not None  # AuditSourceSettings checked it
            self.audit = AuditSource(
                self.audit_settings,
                self.settings.state_dir,
                self.ledger,
                self.dispatcher,
                self.metrics,
                cluster=self.settings.cluster,
            )
        if self.source_settings is None:
            return
        self.source = KubernetesSource(
            self.source_settings,
            self.api_client,
            self.ledger,
            self.dispatcher,
            self.metrics,
            cluster=self.settings.cluster,
            start=self.settings.start,
        )
        self.dispatcher.stop_event = self.source.stop_event

    def _leader_elector(self) -> LeaderElector:
        kind = self.settings.checkpoint.partition(":")[0]
        if kind != "configmap":
            raise UsageError(
                "--leader-elect: replicas must share the checkpoint; add"
                " --checkpoint=configmap:[NAMESPACE/]NAME"
            )
        namespace, _, name = self.settings.leader_lease.rpartition("/")
        if not name:
            raise UsageError("--leader-elect-lease: expected [NAMESPACE/]NAME")
        try:
            return LeaderElector(
                self.api_client,
                namespace or pod_namespace(),
                name,
                lease_duration=self.settings.lease_duration,
                renew_deadline=self.settings.renew_deadline,
                retry_period=self.settings.retry_period,
            )
        except ValueError as exc:
            raise UsageError(
                f"--leader-elect-retry-period < --leader-elect-renew-deadline <"
                f" --leader-elect-lease-duration: {exc}"
            ) from None

    def _source_identity(self) -> str:
        if self.api_client is None:
            return "audit"
        return f"{self.api_client.configuration.host} {self.source_settings.api}"

    def _checkpoint_store(self) -> CheckpointStore:
        kind, _, where = self.settings.checkpoint.partition(":")
        if kind == "configmap":
            if self.api_client is None:
                raise UsageError("--checkpoint=configmap: needs the kubernetes source")
            namespace, _, name = where.rpartition("/")
            if not name:
                raise UsageError("--checkpoint: expected configmap:[NAMESPACE/]NAME")
            return ConfigMapStore(self.api_client, namespace or pod_namespace(), name)
        if kind == "none" or not self.settings.state_dir:
            return MemoryStore()
        if kind != "file" or where:
            raise UsageError(
                f"--checkpoint: {self.settings.checkpoint!r}; expected file,"
                " configmap:[NAMESPACE/]NAME or none"
            )
        return SqliteStore(os.path.join(self.settings.state_dir, "checkpoint.db"))

    # -- lifecycle

    def alive(self) -> bool:
        return self._failed is None

    def ready(self) -> bool:
        """Every watch established; a standby is ready too (it is doing its job: waiting)."""
        if self.elector is not None and not self.elector.is_leader:
            return not self.stopping.is_set()
        sources = self._sources()
        return bool(sources) and all(source.ready for source in sources)

    def _sources(self) -> list[Any]:
        return [source for source in (self.source, self.audit) if source is not None]

    def run(self) -> int:
        if self.own is not None:
            self.own.start()
        try:
            return self._run()
        finally:
            if self.own is not None:  # after the Lease's release: LeadershipLost is written
                self.own.close()

    def _run(self) -> int:
        self._start_health()
        if self.elector is not None and not self._become_leader():
            self._stop_health()
            return 0
        self._start()
        try:
            while not self.stopping.wait(0.5):
                self._check_threads()
        finally:
            self._shutdown()
            if self.elector is not None:
                self.elector.release()
                self.metrics.leader.set(0)
            self._stop_health()
        return 1 if self._failed else 0

    def _become_leader(self) -> bool:
        assert self.elector is not None
        log.info("Waiting for %s.", self.elector.describe())
        if not self.elector.acquire(self.stopping):
            log.info("Stopped while standing by.")
            return False
        self.metrics.leader.set(1)
        if self.own is not None:
            self.own.leader_elected(self.elector.describe())
        self._load_checkpoint()
        self._spawn("leader-lease", self.elector.keep, self.stopping, self._lost_leadership)
        return True

    def _lost_leadership(self) -> None:
        # Another replica may take the Lease once it expires: stop shipping now, without
        # draining, so two never ship at once. Unsent events stay unacknowledged.
        log.error(
            "Could not renew %s for %.0f s: no longer the leader; stopping.",
            self.elector.describe() if self.elector else "the Lease",
            self.settings.renew_deadline,
        )
        self.metrics.leader.set(0)
        if self.own is not None:
            self.own.leadership_lost(
                self.elector.describe() if self.elector else "the Lease",
                self.settings.renew_deadline,
            )
        self._failed = "leader-lease"
        self._grace_override = 0.0
        self.stopping.set()

    def stop(self) -> None:
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        def handle(signum: int, _frame: Any) -> None:
            log.info("Received %s; stopping.", signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def _start_health(self) -> None:
        if self.settings.listen is None:
            return
        self.health = HealthServer(
            self.settings.listen, self.metrics.registry, alive=self.alive, ready=self.ready
        )
        self.health.start()
        log.info(
            "Serving /healthz, /readyz and /metrics on %s:%d.",
            self.settings.listen[0],
            self.health.port,
        )

    def _stop_health(self) -> None:
        if self.health is not None:
            self.health.stop()
            self.health = None

    def _start(self) -> None:
        assert self.ledger is not None and self._sources()
        tune_gc()  # everything is set up: see shipper/pipeline.py
        store = self.ledger.store.describe()
        if self.enricher is not None:
            enrich = self.enricher.settings
            log.info(
                "Enrichment on: at most %g lookups/s (burst %d), never waited on; cache %d"
                " objects for %.0f s.",
                enrich.qps, enrich.burst, enrich.cache_size, enrich.cache_ttl,
            )  # fmt: skip
        log.info(
            "Shipping %s to %s (checkpoint: %s, start: %s).",
            " and ".join(
                settings.describe()
                for settings in (self.source_settings, self.audit_settings)
                if settings is not None
            ),
            ", ".join(
                f"{w.sink.describe()} [{w.settings.filter.describe()}]" for w in self.workers
            ),
            store,
            self.settings.start,
        )
        for worker in self.workers:
            worker.start()
        if self.audit is not None:
            self.audit.start()
        for source in self._sources():
            for stream in source.streams:
                self._spawn(f"watch-{stream or 'all'}", source.run_stream, stream)
        self._spawn("checkpoint", self._save_checkpoints)

    def _spawn(self, name: str, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _check_threads(self) -> None:
        dead = [t.name for t in self._threads if not t.is_alive()]
        dead += [w.thread.name for w in self.workers if not w.thread.is_alive()]
        if dead and not self.stopping.is_set():
            self._failed = ", ".join(dead)
            log.error("Thread(s) %s stopped unexpectedly; the shipper stops too.", self._failed)
            self.stopping.set()

    def _save_checkpoints(self) -> None:
        while not self.stopping.wait(self.settings.checkpoint_interval):
            self._flush_checkpoint()

    def _flush_checkpoint(self) -> None:
        assert self.ledger is not None
        try:
            self.ledger.flush()
        except Exception as exc:
            self.metrics.checkpoint_failures.inc()
            log.warning("Could not save the checkpoint (%s); will retry.", exc)
            if self.own is not None:
                self.own.checkpoint_failed(self.ledger.store.describe(), exc)
        self.metrics.checkpoint_uids.set(self.ledger.tracked_uids())
        self.metrics.inflight.set(self.ledger.inflight())

    def _shutdown(self) -> None:
        grace = self.settings.grace_period if self._grace_override is None else self._grace_override
        deadline = time.monotonic() + grace
        for source in self._sources():
            source.stop()
        for thread in self._threads:
            if thread.name.startswith("watch-"):
                thread.join(timeout=max(0.1, deadline - time.monotonic()))
        for worker in self.workers:
            worker.close()
        while not all(w.idle() for w in self.workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        unsent = sum(w.backlog() for w in self.workers)
        if unsent:
            log.warning(
                "The grace period ended with %d events unsent; they will be shipped after the"
                " restart.",
                unsent,
            )
        for worker in self.workers:
            worker.abandon()
            worker.thread.join(timeout=5)
        self._flush_checkpoint()
        for source in self._sources():
            # the kafka source commits its last offsets, leaves its group; the audit webhook
            # takes batches until here (they are on disk), then closes its spool
            close = getattr(source, "close", None)
            if close is not None:
                close()
        log.info("Stopped.")


def _check_store_directories(sinks: list[Any]) -> None:
    """An embedded store in a directory that cannot be written (a read-only root filesystem, a
    volume owned by another user) never works: say so at start, in one line, instead of retrying
    to open it for ever."""
    from shipper.sinks.sqlite import SqliteSink

    for sink, _ in sinks:
        if not isinstance(sink, SqliteSink):
            continue
        directory = os.path.dirname(os.path.abspath(sink.path))
        if os.path.isdir(directory) and not os.access(directory, os.W_OK):
            raise OSError(
                f"the embedded store {sink.path} cannot be written: the directory {directory} is"
                f" not writable by UID {os.getuid()}; mount a writable volume there or set"
                " --state-dir"
            )

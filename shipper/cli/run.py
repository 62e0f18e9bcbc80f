"""``kube-event-shipper [run]``: watch and ship. The flags are kube-eventer's, so a Deployment's
args carry over unchanged; every default is read from :class:`shipper.settings.Settings`."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from shipper import __version__
from shipper.cli.common import (
    LOG_LEVELS,
    PROG,
    add_logging,
    duration,
    listen,
    positive,
    setup_logging,
)
from shipper.enrich import EnrichSettings
from shipper.settings import Settings
from shipper.uri import UsageError

DEFAULTS = Settings()
ENRICH = EnrichSettings()


def seconds(value: float) -> str:
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if value >= size and value % size == 0:
            return f"{int(value // size)}{unit}"
    return f"{value:g}s"


EXAMPLES = """\
examples:
  # ship everything into the embedded store (the state directory), using ~/.kube/config
  kube-event-shipper
  # kube-eventer style, as a Deployment's args
  kube-event-shipper --source=kubernetes:https://kubernetes.default \\
      --sink=log --sink='sqlite:/var/lib/kube-event-shipper/events.db?retention=168h'
  # look at what was shipped, like kubectl get events
  kube-event-shipper query --since=1h --type=Warning

commands:
  run      watch and ship (the default when no command is given)
  query    read events from the embedded sqlite store
  sinks    list every sink scheme with its parameters
  setup    install index templates and lifecycle policy: setup elasticsearch:http://es:9200
  check    validate --sink URIs and a --config file, print the routing, dry-run events

Every sink also takes: name, batch_size, flush_interval, queue_size, overflow, max_backoff,
level, namespaces, kinds, reason. Secrets: any secret parameter p may be given as p_file=/path;
$VAR and ${VAR} expand from the environment.
"""


def add_parser(commands: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "run",
        prog=PROG,
        help="watch and ship (the default when no command is given)",
        description="Watch Kubernetes Events and ship every one of them, once, to the stores"
        " and chats you already run.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--source",
        action="append",
        metavar="URI",
        help="kubernetes:[MASTER][?inClusterConfig=&insecure=&auth=KUBECONFIG&namespaces=a,b]"
        " (default: kubernetes: = in-cluster config in a pod, else $KUBECONFIG or ~/.kube/config);"
        " or, to aggregate what shippers of other clusters wrote with the kafka sink,"
        " kafka:?brokers=HOST:9092&topic=TOPIC&group=GROUP (SASL/TLS parameters as the sink's)."
        " Repeat it to add the API server's audit webhook:"
        " audit:?listen=:8443&cert=tls.crt&key=tls.key&clientCA=ca.crt (docs/audit.md)",
    )
    parser.add_argument(
        "--config",
        default=os.environ.get("KES_CONFIG") or None,
        metavar="FILE",
        help="a kubernetes-event-exporter config.yaml (route, receivers, clusterName, ...);"
        " combines with --sink. Check it with 'kube-event-shipper check --config FILE'.",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        default=DEFAULTS.strict,
        help="refuse what kubernetes-event-exporter accepts silently in --config (unknown keys,"
        " a route to an undefined receiver, an invalid regex) instead of warning",
    )
    parser.add_argument(
        "--sink",
        action="append",
        default=[],
        metavar="URI",
        help="where to ship, repeatable: scheme[:rest][?params] (default: sqlite: in the state"
        " directory). See 'kube-event-shipper sinks'.",
    )
    parser.add_argument(
        "--state-dir",
        default=os.environ.get("KES_STATE_DIR", DEFAULTS.state_dir),
        metavar="DIR",
        help="checkpoint, dead letters and the default store (default: %(default)s;"
        " empty: keep nothing)",
    )
    parser.add_argument(
        "--start",
        choices=("checkpoint", "all", "new"),
        default=DEFAULTS.start,
        help="checkpoint: resume where the last run stopped, everything retained on the first"
        " run (default); all: ship every retained event again; new: only events from now on",
    )
    parser.add_argument(
        "--cluster-name",
        default=os.environ.get("KES_CLUSTER_NAME", DEFAULTS.cluster),
        metavar="NAME",
        help="put on every event as orchestrator.cluster.name",
    )
    parser.add_argument(
        "--listen",
        type=listen,
        default=DEFAULTS.listen,
        metavar="HOST:PORT",
        help="address of /healthz, /readyz and /metrics (default: :8080; 'off' to disable)",
    )
    parser.add_argument(
        "--grace-period",
        type=duration,
        default=DEFAULTS.grace_period,
        metavar="DURATION",
        help=f"on SIGTERM, how long the sinks may drain (default: {seconds(DEFAULTS.grace_period)})",
    )
    parser.add_argument(
        "--checkpoint",
        default=os.environ.get("KES_CHECKPOINT", DEFAULTS.checkpoint),
        metavar="WHERE",
        help="where the checkpoint lives: file (checkpoint.db in --state-dir, default),"
        " configmap:[NAMESPACE/]NAME (for pods without a volume; needs get/create/update on"
        " that ConfigMap), none",
    )
    election = parser.add_argument_group(
        "leader election",
        "Run several replicas; only the holder of a coordination.k8s.io Lease ships, a standby"
        " takes over (from the shared ConfigMap checkpoint) within about lease duration + retry"
        " period of the leader's death, or one retry period after a graceful stop.",
    )
    election.add_argument(
        "--leader-elect", action="store_true", help="take part in leader election"
    )
    election.add_argument(
        "--leader-elect-lease",
        default=DEFAULTS.leader_lease,
        metavar="[NAMESPACE/]NAME",
        help="the Lease (default: kube-event-shipper in the pod's namespace); needs get,"
        " create, update on it",
    )
    election.add_argument(
        "--leader-elect-lease-duration", type=duration, default=DEFAULTS.lease_duration, metavar="DURATION",
        help=f"how long a standby waits after the last renewal it saw (default: {seconds(DEFAULTS.lease_duration)})",
    )  # fmt: skip
    election.add_argument(
        "--leader-elect-renew-deadline", type=duration, default=DEFAULTS.renew_deadline, metavar="DURATION",
        help=f"the leader stops when it could not renew for this long (default: {seconds(DEFAULTS.renew_deadline)})",
    )  # fmt: skip
    election.add_argument(
        "--leader-elect-retry-period", type=duration, default=DEFAULTS.retry_period, metavar="DURATION",
        help=f"how often to try to take or renew the Lease (default: {seconds(DEFAULTS.retry_period)})",
    )  # fmt: skip
    enrich = parser.add_argument_group(
        "enrichment",
        "Add the involved object's labels, annotations and top owner (a Pod's Deployment) to"
        " each event, so stores show them and config rules can match labels. Needs get on"
        " those objects (the chart's enrichment.rules). Lookups never delay an event: past the"
        " budget, or on an error, it ships without them (metric"
        " kube_event_shipper_enrich_events_total). On by itself when --config rules match"
        " labels or annotations.",
    )
    enrich.add_argument("--enrich", action="store_true", help="turn enrichment on")
    enrich.add_argument(
        "--enrich-qps", type=positive(float), default=ENRICH.qps, metavar="N",
        help=f"lookups per second, on average (default: {ENRICH.qps:g}; a config file's kubeQPS too)",
    )  # fmt: skip
    enrich.add_argument(
        "--enrich-burst", type=positive(int), default=ENRICH.burst, metavar="N",
        help=f"lookups allowed at once after a quiet time (default: {ENRICH.burst}; kubeBurst too)",
    )  # fmt: skip
    enrich.add_argument(
        "--enrich-cache-size", type=positive(int), default=ENRICH.cache_size, metavar="N",
        help=f"objects kept (default: {ENRICH.cache_size}; about 1 KiB each)",
    )  # fmt: skip
    enrich.add_argument(
        "--enrich-cache-ttl", type=duration, default=ENRICH.cache_ttl, metavar="DURATION",
        help=f"how long labels are trusted before they are looked up again (default: {seconds(ENRICH.cache_ttl)})",
    )  # fmt: skip
    enrich.add_argument(
        "--enrich-timeout", type=duration, default=ENRICH.timeout, metavar="DURATION",
        help="a lookup slower than this is abandoned; the event ships without labels"
        f" (default: {seconds(ENRICH.timeout)})",
    )  # fmt: skip
    enrich.add_argument(
        "--enrich-owners", action=argparse.BooleanOptionalAction, default=ENRICH.owners,
        help="follow controller ownerReferences to the top owner (default: on)",
    )  # fmt: skip
    parser.add_argument(
        "--checkpoint-interval",
        type=duration,
        default=DEFAULTS.checkpoint_interval,
        metavar="DURATION",
        help=f"how often the checkpoint is saved (default: {seconds(DEFAULTS.checkpoint_interval)})",
    )
    add_logging(parser)
    parser.set_defaults(func=run)
    return parser


def _enrich_settings(args: argparse.Namespace) -> Any:
    """The --enrich* flags; off without --enrich (a config file may still turn it on)."""
    from shipper.enrich import EnrichSettings

    return EnrichSettings(
        enabled=args.enrich,
        qps=args.enrich_qps,
        burst=args.enrich_burst,
        cache_size=args.enrich_cache_size,
        cache_ttl=args.enrich_cache_ttl,
        timeout=args.enrich_timeout,
        owners=args.enrich_owners,
    )


def run(args: argparse.Namespace) -> int:
    from shipper.app import Settings, Shipper

    level, fmt = _log_settings(args)
    setup_logging(level, fmt)
    settings = Settings(
        config=args.config,
        strict=args.strict,
        **_sources(args.source or [os.environ.get("KES_SOURCE") or DEFAULTS.source]),
        sinks=args.sink,
        state_dir=args.state_dir or None,
        start=args.start,
        cluster=args.cluster_name,
        listen=args.listen,
        grace_period=args.grace_period,
        checkpoint_interval=args.checkpoint_interval,
        checkpoint=args.checkpoint,
        leader_elect=args.leader_elect,
        leader_lease=args.leader_elect_lease,
        lease_duration=args.leader_elect_lease_duration,
        renew_deadline=args.leader_elect_renew_deadline,
        retry_period=args.leader_elect_retry_period,
        enrich=_enrich_settings(args),
    )
    try:
        shipper = Shipper(settings)
    except OSError as exc:  # the checkpoint could not be read: not a usage error, and no traceback
        logging.getLogger("shipper").error("Cannot start: %s", exc)
        return 1
    shipper.install_signal_handlers()
    return shipper.run()


def _sources(given: list[str]) -> dict[str, Any]:
    """The repeated --source: at most one kubernetes: or kafka: source, at most one audit:."""
    from shipper.audit.source import is_audit

    audit = [source for source in given if is_audit(source)]
    main = [source for source in given if not is_audit(source)]
    for source in main:
        scheme = source.partition(":")[0]
        if scheme not in ("kubernetes", "kafka"):
            raise UsageError(
                f"--source: unknown scheme {scheme!r} (known: kubernetes, kafka, audit)"
            )
    if len(main) > 1:
        raise UsageError(
            f"--source: {len(main)} event sources given ({', '.join(_scheme(s) for s in main)});"
            " one kubernetes: or kafka: source, plus an audit: source if you want one"
        )
    if len(audit) > 1:
        raise UsageError("--source: more than one audit: source; one webhook takes every batch")
    return {"source": main[0] if main else "", "audit_source": audit[0] if audit else None}


def _scheme(source: str) -> str:
    return source.partition(":")[0] + ":"


def _log_settings(args: argparse.Namespace) -> tuple[str, str]:
    """--log-level/--log-format, else the config file's logLevel/logFormat, else info/text."""
    level, fmt = args.log_level, args.log_format
    if args.config and (level is None or fmt is None):
        from shipper.config import load

        config = load(args.config, strict=args.strict)
        level = level or LOG_LEVELS.get(str(config.log_level or "").lower())
        fmt = fmt or ("json" if str(config.log_format or "").lower() == "json" else None)
    return level or "info", fmt or "text"

"""Command line: ``kube-event-shipper [run] --source=URI --sink=URI ...`` and ``query``.

The run flags are kube-eventer's, so a Deployment's args carry over unchanged. Bad input ends
with one line on stderr and exit code 2, before anything starts.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

from shipper import __version__
from shipper.uri import UsageError, parse_duration

PROG = "kube-event-shipper"
COMMANDS = ("run", "query", "sinks", "setup", "check")

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


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _listen(text: str) -> tuple[str, int] | None:
    from shipper.health import parse_listen

    if text in ("", "off", "none"):
        return None
    try:
        return parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        self.exit(2, f"{self.prog}: error: {message}\n")


def run_parser() -> argparse.ArgumentParser:
    from shipper.app import default_state_dir

    parser = _Parser(
        prog=PROG,
        description="Watch Kubernetes Events and ship every one of them, once, to the stores"
        " and chats you already run.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--source",
        default=os.environ.get("KES_SOURCE", "kubernetes:"),
        metavar="URI",
        help="kubernetes:[MASTER][?inClusterConfig=&insecure=&auth=KUBECONFIG&namespaces=a,b]"
        " (default: kubernetes: = in-cluster config in a pod, else $KUBECONFIG or ~/.kube/config)",
    )
    parser.add_argument(
        "--config",
        default=os.environ.get("KES_CONFIG") or None,
        metavar="FILE",
        help="a kubernetes-event-exporter config.yaml (route, receivers, clusterName, ...);"
        " combines with --sink. Check it with 'kube-event-shipper check --config FILE'.",
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
        default=os.environ.get("KES_STATE_DIR", default_state_dir()),
        metavar="DIR",
        help="checkpoint, dead letters and the default store (default: %(default)s;"
        " empty: keep nothing)",
    )
    parser.add_argument(
        "--start",
        choices=("checkpoint", "all", "new"),
        default="checkpoint",
        help="checkpoint: resume where the last run stopped, everything retained on the first"
        " run (default); all: ship every retained event again; new: only events from now on",
    )
    parser.add_argument(
        "--cluster-name",
        default=os.environ.get("KES_CLUSTER_NAME", ""),
        metavar="NAME",
        help="put on every event as orchestrator.cluster.name",
    )
    parser.add_argument(
        "--listen",
        type=_listen,
        default=("0.0.0.0", 8080),
        metavar="HOST:PORT",
        help="address of /healthz, /readyz and /metrics (default: :8080; 'off' to disable)",
    )
    parser.add_argument(
        "--grace-period",
        type=_duration,
        default=25.0,
        metavar="DURATION",
        help="on SIGTERM, how long the sinks may drain (default: 25s)",
    )
    parser.add_argument(
        "--checkpoint",
        default=os.environ.get("KES_CHECKPOINT", "file"),
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
        default="kube-event-shipper",
        metavar="[NAMESPACE/]NAME",
        help="the Lease (default: kube-event-shipper in the pod's namespace); needs get,"
        " create, update on it",
    )
    election.add_argument(
        "--leader-elect-lease-duration", type=_duration, default=15.0, metavar="DURATION",
        help="how long a standby waits after the last renewal it saw (default: 15s)",
    )  # fmt: skip
    election.add_argument(
        "--leader-elect-renew-deadline", type=_duration, default=10.0, metavar="DURATION",
        help="the leader stops when it could not renew for this long (default: 10s)",
    )  # fmt: skip
    election.add_argument(
        "--leader-elect-retry-period", type=_duration, default=2.0, metavar="DURATION",
        help="how often to try to take or renew the Lease (default: 2s)",
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
        "--enrich-qps", type=_positive(float), default=20.0, metavar="N",
        help="lookups per second, on average (default: 20; a config file's kubeQPS too)",
    )  # fmt: skip
    enrich.add_argument(
        "--enrich-burst", type=_positive(int), default=50, metavar="N",
        help="lookups allowed at once after a quiet time (default: 50; kubeBurst too)",
    )  # fmt: skip
    enrich.add_argument(
        "--enrich-cache-size", type=_positive(int), default=10_000, metavar="N",
        help="objects kept (default: 10000; about 1 KiB each)",
    )  # fmt: skip
    enrich.add_argument(
        "--enrich-cache-ttl", type=_duration, default=600.0, metavar="DURATION",
        help="how long labels are trusted before they are looked up again (default: 10m)",
    )  # fmt: skip
    enrich.add_argument(
        "--enrich-timeout", type=_duration, default=2.0, metavar="DURATION",
        help="a lookup slower than this is abandoned; the event ships without labels"
        " (default: 2s)",
    )  # fmt: skip
    enrich.add_argument(
        "--enrich-owners", action=argparse.BooleanOptionalAction, default=True,
        help="follow controller ownerReferences to the top owner (default: on)",
    )  # fmt: skip
    parser.add_argument(
        "--checkpoint-interval",
        type=_duration,
        default=1.0,
        metavar="DURATION",
        help="how often the checkpoint is saved (default: 1s)",
    )
    _add_logging(parser)
    return parser


def _add_logging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=os.environ.get("KES_LOG_LEVEL"),
        help="default: info, or the config file's logLevel",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=None,
        help="default: text, or the config file's logFormat",
    )


def query_parser() -> argparse.ArgumentParser:
    from shipper.app import default_state_dir

    parser = _Parser(
        prog=f"{PROG} query",
        description="Show events from the embedded sqlite store, like kubectl get events.",
        epilog="example:\n  kube-event-shipper query --since=2h -n default --reason='BackOff|OOM'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        help="the sqlite file (default: events.db in --state-dir)",
    )
    parser.add_argument(
        "--state-dir", default=os.environ.get("KES_STATE_DIR", default_state_dir()), metavar="DIR"
    )
    parser.add_argument("--since", type=_duration, metavar="DURATION", help="e.g. 30m, 2h, 7d")
    parser.add_argument("-n", "--namespace", help="the involved object's namespace")
    parser.add_argument("--kind", help="the involved object's kind, e.g. Pod")
    parser.add_argument("--name", help="the involved object's name")
    parser.add_argument("--type", choices=("Normal", "Warning"))
    parser.add_argument("--reason", metavar="REGEX", help="regular expression on the reason")
    parser.add_argument("--message", metavar="TEXT", help="text in the message (any case)")
    parser.add_argument(
        "--owner",
        metavar="[KIND/]NAME",
        help="the involved object's top owner, e.g. Deployment/web (needs --enrich)",
    )
    parser.add_argument("--limit", type=int, default=500, help="newest N events (default 500)")
    parser.add_argument("-o", "--output", choices=("table", "wide", "json"), default="table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args.pop(0) if args and args[0] in COMMANDS else "run"
    try:
        if command == "query":
            return _query(query_parser().parse_args(args))
        if command == "sinks":
            return _list_sinks()
        if command == "setup":
            return _setup(setup_parser().parse_args(args))
        if command == "check":
            return _check(check_parser().parse_args(args))
        return _run(run_parser().parse_args(args))
    except BrokenPipeError:  # `query | head`: the reader is done, so are we
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except UsageError as exc:
        one_line = " ".join(str(exc).split())  # YAML and TLS errors come in several lines
        print(f"{PROG}: error: {one_line}", file=sys.stderr)
        return 2


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


def _run(args: argparse.Namespace) -> int:
    from shipper.app import Settings, Shipper

    level, fmt = _log_settings(args)
    _setup_logging(level, fmt)
    settings = Settings(
        config=args.config,
        source=args.source,
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


_THEIR_LEVELS = {
    "trace": "debug", "debug": "debug", "info": "info", "warn": "warning",
    "warning": "warning", "error": "error", "fatal": "error", "panic": "error",
}  # fmt: skip


def _log_settings(args: argparse.Namespace) -> tuple[str, str]:
    """--log-level/--log-format, else the config file's logLevel/logFormat, else info/text."""
    level, fmt = args.log_level, args.log_format
    if args.config and (level is None or fmt is None):
        from shipper.config import load

        config = load(args.config)
        level = level or _THEIR_LEVELS.get(str(config.log_level or "").lower())
        fmt = fmt or ("json" if str(config.log_format or "").lower() == "json" else None)
    return level or "info", fmt or "text"


def check_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=f"{PROG} check",
        description="Validate --sink URIs and a --config file without connecting to anything;"
        " print every sink and the routing tree; with --events, show which sink each event"
        " would go to. Exit 2 on any error, with the file and line.",
        epilog="example:\n"
        f"  {PROG} check --config config.yaml --sink=sqlite: \\\n"
        "      --events <(kubectl get events -A -o json)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE", default=os.environ.get("KES_CONFIG") or None)
    parser.add_argument("--sink", action="append", default=[], metavar="URI")
    parser.add_argument(
        "--events",
        metavar="FILE",
        help="recorded events: JSON lines of Event objects, or a List (kubectl get events -o json)",
    )
    return parser


def _check(args: argparse.Namespace) -> int:
    from shipper.app import Router, build_sinks
    from shipper.config import load
    from shipper.sinks.base import SinkContext

    _setup_logging("warning", "text")
    config = load(args.config) if args.config else None
    ctx = SinkContext(cluster=(config.cluster_name if config else "") or "", state_dir=None)
    built = build_sinks(args.sink, ctx, config)
    routed = set(config.used_receivers) if config else set()
    print("sinks:")
    for sink, settings in built:
        how = f"receiver of {config.path}" if config and settings.name in routed else "--sink"
        filters = settings.filter.describe()
        print(f"  {settings.name}: {sink.describe()}  [{how}; filter: {filters}]")
    if config is not None:
        print(f"route ({config.path}):")
        for line in config.route.tree("  ") or ["  (empty: nothing is routed)"]:
            print(line)
        if config.uses_labels():
            print(
                "enrichment: on (rules match labels or annotations; the shipper looks up the"
                " involved objects, which needs get on them)"
            )
    if args.events:
        router = Router([_Checked(s.name, s) for _, s in built], config)
        for event in _recorded_events(args.events):
            names = [c.name for c in router.targets(event)]
            targets = ", ".join(names) or "(none)"
            print(f"{event.type:<8} {event.reason:<24} {event.describe()} -> {targets}")
    print("OK")
    return 0


class _Checked:
    def __init__(self, name: str, settings: Any) -> None:
        self.name, self.settings = name, settings


def _recorded_events(path: str) -> list[Any]:
    from shipper.event import normalize

    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise UsageError(f"--events {path}: cannot read it: {exc.strerror}") from None
    import orjson

    try:
        whole = orjson.loads(data)
        objects = whole.get("items", []) if isinstance(whole, dict) else whole
    except orjson.JSONDecodeError:
        try:
            objects = [orjson.loads(line) for line in data.splitlines() if line.strip()]
        except orjson.JSONDecodeError as exc:
            raise UsageError(
                f"--events {path}: neither a JSON document nor JSON lines: {exc}"
            ) from None
    return [normalize(obj, "LISTED") for obj in objects if isinstance(obj, dict)]


def _query(args: argparse.Namespace) -> int:
    from shipper.sinks.sqlite import Query, default_path, run_query
    from shipper.uri import parse_regex

    path = args.db or default_path(args.state_dir)
    if args.reason is not None:
        try:
            parse_regex(args.reason)
        except ValueError as exc:
            raise UsageError(f"--reason: {exc}") from None
    query = Query(
        since=args.since,
        namespace=args.namespace,
        kind=args.kind,
        name=args.name,
        type=args.type,
        reason=args.reason,
        message=args.message,
        owner=args.owner,
        limit=args.limit,
    )
    try:
        rows = run_query(path, query)
    except FileNotFoundError:
        raise UsageError(f"--db: {path} does not exist; has the shipper run yet?") from None
    if args.output == "json":
        json.dump(rows, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        _print_table(rows, wide=args.output == "wide")
    return 0


def _print_table(rows: list[dict[str, Any]], *, wide: bool) -> None:
    if not rows:
        print("No events match.", file=sys.stderr)
        return
    headers = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE", "COUNT"]
    if wide:
        headers[4:4] = ["NAMESPACE", "OWNER", "SOURCE", "FIRST SEEN"]
    table = [headers]
    for row in rows:
        obj = f"{(row['kind'] or '').lower()}/{row['name'] or ''}"
        line = [
            row["last_seen"][:19].replace("T", " "),
            row["type"],
            row["reason"],
            obj,
            " ".join(row["message"].split()),
            str(row["count"]),
        ]
        if wide:
            source = row["reporting_controller"] or row["source_component"] or ""
            owner = (
                f"{(row['owner_kind'] or '').lower()}/{row['owner_name']}"
                if row["owner_name"]
                else ""
            )
            line[4:4] = [
                row["namespace"], owner, source, row["first_seen"][:19].replace("T", " ")
            ]  # fmt: skip
        table.append(line)
    message_col = headers.index("MESSAGE")
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    limit = max(20, 160 - sum(w + 2 for i, w in enumerate(widths) if i != message_col))
    for line in table:
        cells = [
            textwrap.shorten(c, limit, placeholder="...")
            if i == message_col
            else c.ljust(widths[i])
            for i, c in enumerate(line)
        ]
        if message_col < len(cells) - 1:
            cells[message_col] = cells[message_col].ljust(min(widths[message_col], limit))
        print("  ".join(cells).rstrip())


def setup_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=f"{PROG} setup",
        description="Install what a store needs before events arrive, idempotently: for"
        " elasticsearch/opensearch, component and index templates, the ILM or ISM policy (when"
        " the server has it) and, in alias mode, the first index. Takes the same URI as --sink,"
        " so the mode and index match what the sink will write. The sink also does this at"
        " start unless setup=false; run this where the shipper's own credentials may not"
        " manage templates.",
        epilog="examples:\n"
        f"  {PROG} setup 'elasticsearch:http://127.0.0.1:9200?index=kube-events'\n"
        f"  {PROG} setup 'opensearch:https://os:9200?mode=alias&index=kubernetes-events"
        "&esUserName=admin&esUserSecret_file=/secrets/pw'\n"
        f"  {PROG} setup --print 'elasticsearch:http://es:9200?mode=dated'   # show, don't send",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sink", metavar="URI", help="a --sink URI (elasticsearch:, opensearch:)")
    parser.add_argument(
        "--print",
        dest="print_only",
        action="store_true",
        help="print the requests (method, path, JSON body) for the given mode, send nothing;"
        " mode=auto prints the data stream variant",
    )
    parser.add_argument(
        "--lifecycle",
        choices=("ilm", "ism", "none"),
        default=None,
        help="with --print: which lifecycle policy to include (default: ilm for elasticsearch,"
        " ism for opensearch)",
    )
    parser.add_argument("--log-level", default="warning", help=argparse.SUPPRESS)
    return parser


def _setup(args: argparse.Namespace) -> int:
    from shipper.app import build_sink
    from shipper.sinks.base import SinkContext, TransientError
    from shipper.sinks.elasticsearch import ElasticsearchSink, render_setup, run_setup

    _setup_logging(args.log_level, "text")
    sink, _ = build_sink(args.sink, SinkContext(cluster="", state_dir=None))
    if not isinstance(sink, ElasticsearchSink):
        raise UsageError(f"setup: {sink.scheme} needs no setup (elasticsearch and opensearch do)")
    if args.print_only:
        mode = sink.options["mode"] if sink.options["mode"] != "auto" else "data_stream"
        default = "ism" if sink.expects == "opensearch" else "ilm"
        lifecycle = args.lifecycle or default
        for method, path, body in render_setup(
            sink.expects, sink.index, mode, None if lifecycle == "none" else lifecycle
        ):
            print(f"{method} /{path}")
            print(json.dumps(body, indent=2))
        return 0
    try:
        report = run_setup(sink, print)
    except TransientError as exc:
        print(f"{PROG} setup: failed: {exc}", file=sys.stderr)
        return 1
    print(f"done: {report.server}, mode {report.mode}, index {sink.index}")
    return 0


def _list_sinks() -> int:
    from shipper.pipeline import PIPELINE_PARAMS
    from shipper.sinks import REGISTRY, sink_class

    for scheme in sorted(REGISTRY):
        cls = sink_class(scheme)
        if cls.scheme != scheme:
            continue
        aliases = f" (also: {', '.join(cls.aliases)})" if cls.aliases else ""
        print(f"{scheme}{aliases}: {cls.summary}")
        print(f"  guarantee: {cls.guarantee}")
        for param in cls.params:
            secret = ", secret" if param.secret else ""
            default = f"default {param.default!r}"
            print(f"  {param.name} ({param.type_name}{secret}, {default}): {param.doc}")
        print()
    print("every sink:")
    for param in PIPELINE_PARAMS:
        print(f"  {param.name} ({param.type_name}): {param.doc}")
    return 0


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # urllib3 logs every retry at WARNING with the full URL; ours say it once, in a sentence.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    # The search clients log every request at INFO and every retry with a traceback; the sink
    # reports failures itself, once per attempt, without credentials.
    for name in ("elastic_transport", "elasticsearch", "opensearch"):
        logging.getLogger(name).setLevel(logging.ERROR)

"""``kube-event-shipper check``: validate sinks and a config file without connecting to anything."""

from __future__ import annotations

import argparse
import os
from typing import Any

from shipper.cli.common import PROG, setup_logging
from shipper.settings import Settings
from shipper.uri import UsageError


def add_parser(commands: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "check",
        prog=f"{PROG} check",
        help="validate --sink URIs and a --config file, print the routing, dry-run events",
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
        "--strict",
        action="store_true",
        help="refuse unknown keys, undefined receivers and invalid regexes instead of warning",
    )
    parser.add_argument(
        "--events",
        metavar="FILE",
        help="recorded events: JSON lines of Event objects, or a List (kubectl get events -o json)",
    )
    parser.add_argument(
        "--state-dir",
        default=os.environ.get("KES_STATE_DIR", Settings().state_dir),
        metavar="DIR",
        help="as for run: where the default store and dead letters would be",
    )
    parser.set_defaults(func=check)
    return parser


def check(args: argparse.Namespace) -> int:
    from shipper.config import load
    from shipper.routing import Router
    from shipper.sinks.base import SinkContext
    from shipper.sinks.factory import build_sinks

    setup_logging("warning", "text")
    config = load(args.config, strict=args.strict) if args.config else None
    ctx = SinkContext(
        cluster=(config.cluster_name if config else "") or "", state_dir=args.state_dir or None
    )
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
    """Events from a file: ``kubectl get events -o json`` (a List), JSON lines of Events (the
    watch's objects or ``{"type", "object"}`` watch events), or ``query -o json`` rows. Anything
    else is one line naming the item: OK is never said about what is not an event."""
    import orjson

    from shipper.event import NotAnEvent, normalize

    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise UsageError(f"--events {path}: cannot read it: {exc.strerror}") from None
    try:
        whole = orjson.loads(data)
        objects = whole.get("items", [whole]) if isinstance(whole, dict) else whole
        where = "item"
    except orjson.JSONDecodeError:
        try:
            objects = [orjson.loads(line) for line in data.splitlines() if line.strip()]
        except orjson.JSONDecodeError as exc:
            raise UsageError(
                f"--events {path}: neither a JSON document nor JSON lines: {exc}"
            ) from None
        where = "line"
    if not isinstance(objects, list):
        raise UsageError(f"--events {path}: expected a List of Events or JSON lines")
    events = []
    for number, obj in enumerate(objects, 1):
        try:
            if not isinstance(obj, dict):
                raise NotAnEvent(f"a {type(obj).__name__}, not an object")
            events.append(normalize(_as_event(obj), "LISTED"))
        except NotAnEvent as exc:
            raise UsageError(f"--events {path}: {where} {number} is not an Event: {exc}") from None
    return events


def _as_event(obj: dict[str, Any]) -> dict[str, Any]:
    """A watch event's object, or a ``query -o json`` row turned back into an Event."""
    if isinstance(obj.get("object"), dict) and "type" in obj:
        return obj["object"]
    if "metadata" in obj or "uid" not in obj or "last_seen" not in obj:
        return obj
    return {
        "metadata": {"uid": obj["uid"], "resourceVersion": obj.get("resource_version"),
                     "name": obj.get("event_name"), "namespace": obj.get("event_namespace")},
        "involvedObject": {"kind": obj.get("kind"), "name": obj.get("name"),
                           "namespace": obj.get("namespace") or None, "uid": obj.get("object_uid")},
        "reason": obj.get("reason"), "message": obj.get("message"), "type": obj.get("type"),
        "count": obj.get("count"), "firstTimestamp": obj.get("first_seen"),
        "lastTimestamp": obj.get("last_seen"),
        "reportingComponent": obj.get("reporting_controller"),
        "source": {"component": obj.get("source_component"), "host": obj.get("source_host")},
    }  # fmt: skip

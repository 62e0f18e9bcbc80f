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

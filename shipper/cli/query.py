"""``kube-event-shipper query``: events from the embedded sqlite store, like kubectl get events."""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from typing import Any

from shipper.cli.common import PROG, duration
from shipper.settings import Settings
from shipper.uri import UsageError


def add_parser(commands: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "query",
        prog=f"{PROG} query",
        help="read events from the embedded sqlite store, like kubectl get events",
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
        "--state-dir", default=os.environ.get("KES_STATE_DIR", Settings().state_dir), metavar="DIR"
    )
    parser.add_argument("--since", type=duration, metavar="DURATION", help="e.g. 30m, 2h, 7d")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("-n", "--namespace", help="the involved object's namespace")
    where.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="every namespace (the default without -n), as kubectl -A",
    )
    parser.add_argument("--kind", help="the involved object's kind, e.g. pod or Pod (any case)")
    parser.add_argument("--name", help="the involved object's name")
    parser.add_argument(
        "--type", type=_event_type, metavar="TYPE", help="Normal or Warning (any case)"
    )
    parser.add_argument("--reason", metavar="REGEX", help="regular expression on the reason")
    parser.add_argument("--message", metavar="TEXT", help="text in the message (any case)")
    parser.add_argument(
        "--owner",
        metavar="[KIND/]NAME",
        help="the involved object's top owner, e.g. Deployment/web (needs --enrich)",
    )
    parser.add_argument("--limit", type=int, default=500, help="newest N events (default 500)")
    parser.add_argument(
        "-o", "--output", choices=("table", "wide", "json", "yaml"), default="table"
    )
    parser.set_defaults(func=query)
    return parser


def query(args: argparse.Namespace) -> int:
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
    elif args.output == "yaml":
        import yaml

        yaml.safe_dump(rows, sys.stdout, allow_unicode=True, sort_keys=False)
    else:
        _print_table(rows, wide=args.output == "wide", namespaces=args.namespace is None)
    return 0


def _event_type(text: str) -> str:
    for name in ("Normal", "Warning"):
        if text.lower() == name.lower():
            return name
    raise argparse.ArgumentTypeError(f"expected Normal or Warning, got {text!r}")


def _print_table(rows: list[dict[str, Any]], *, wide: bool, namespaces: bool) -> None:
    """kubectl get events' table; with the NAMESPACE column first unless -n chose one."""
    if not rows:
        print("No events match.", file=sys.stderr)
        return
    headers = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE", "COUNT"]
    if wide:
        headers[4:4] = ["OWNER", "SOURCE", "FIRST SEEN"]
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
            line[4:4] = [owner, source, row["first_seen"][:19].replace("T", " ")]
        table.append(line)
    if namespaces:
        table = [["NAMESPACE", *table[0]]] + [
            [row["namespace"] or "", *line] for row, line in zip(rows, table[1:], strict=True)
        ]
        headers = table[0]
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

"""``kube-event-shipper query``: events from the embedded sqlite store, like kubectl get events;
``query --audit``: the API server's audit events kept there (shipper/sinks/sqlite.py)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Callable
from typing import Any

from shipper.cli.common import PROG, duration
from shipper.settings import Settings
from shipper.uri import UsageError


def add_parser(commands: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "query",
        prog=f"{PROG} query",
        help="read events from the embedded sqlite store, like kubectl get events",
        description="Show events from the embedded sqlite store, like kubectl get events;"
        " with --audit, the API server's audit events kept there.",
        epilog="examples:\n"
        "  kube-event-shipper query --since=2h -n default --reason='BackOff|OOM'\n"
        "  kube-event-shipper query --audit --since=1d --denied\n"
        "  kube-event-shipper query --audit --resource=pods/exec --user=alice",
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
    audit = parser.add_argument_group(
        "audit", "the API server's audit events (an audit source): one row per request"
    )
    audit.add_argument(
        "--audit",
        action="store_true",
        help="show audit events instead of events (-n, --name, --since and --limit apply too)",
    )
    audit.add_argument("--user", metavar="NAME", help="the requesting username, exactly")
    audit.add_argument(
        "--verb", metavar="VERB[,VERB]", help="get, list, watch, create, update, patch, delete..."
    )
    audit.add_argument(
        "--resource",
        metavar="RESOURCE[/SUB]",
        help="the resource, with a subresource: secrets, pods/exec, deployments/scale",
    )
    audit.add_argument(
        "--denied",
        action="store_true",
        help="refused requests only: HTTP 401 or 403, or the authorizer's decision forbid",
    )
    audit.add_argument(
        "--stages",
        action="store_true",
        help="every stage of a request (RequestReceived, ResponseComplete, ...), not its last",
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
    if args.audit:
        return query_audit(args, path)
    for flag in AUDIT_ONLY:
        if getattr(args, flag):
            raise UsageError(f"--{flag}: only with --audit")
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
    return _show(args, _rows(lambda: run_query(path, query), path), _print_table)


#: Flags of the events' query that audit rows do not have, and the audit-only ones.
EVENTS_ONLY = ("kind", "type", "reason", "message", "owner")
AUDIT_ONLY = ("user", "verb", "resource", "denied", "stages")


def query_audit(args: argparse.Namespace, path: str) -> int:
    from shipper.sinks.sqlite import AuditQuery, run_audit_query

    for flag in EVENTS_ONLY:
        if getattr(args, flag) is not None:
            raise UsageError(f"--{flag}: not with --audit (audit rows have no {flag})")
    verbs = tuple(v.strip() for v in (args.verb or "").split(",") if v.strip())
    if args.verb is not None and not verbs:
        raise UsageError("--verb: expected a verb such as get or delete")
    if args.resource is not None and not args.resource.partition("/")[0]:
        raise UsageError("--resource: expected RESOURCE or RESOURCE/SUBRESOURCE, e.g. pods/exec")
    query = AuditQuery(
        since=args.since,
        namespace=args.namespace,
        user=args.user,
        verbs=verbs,
        resource=args.resource,
        name=args.name,
        denied=args.denied,
        stages=args.stages,
        limit=args.limit,
    )
    return _show(args, _rows(lambda: run_audit_query(path, query), path), _print_audit_table)


def _rows(run: Callable[[], list[dict[str, Any]]], path: str) -> list[dict[str, Any]]:
    try:
        return run()
    except FileNotFoundError:
        raise UsageError(f"--db: {path} does not exist; has the shipper run yet?") from None


def _show(
    args: argparse.Namespace, rows: list[dict[str, Any]], print_table: Callable[..., None]
) -> int:
    """The rows as -o asks: json, yaml, or the table (wide: more columns)."""
    if args.output == "json":
        json.dump(rows, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    elif args.output == "yaml":
        import yaml

        yaml.safe_dump(rows, sys.stdout, allow_unicode=True, sort_keys=False)
    else:
        print_table(rows, wide=args.output == "wide", namespaces=args.namespace is None)
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


def _print_audit_table(rows: list[dict[str, Any]], *, wide: bool, namespaces: bool) -> None:
    """One line per request: when, who, what, on which object, and the answer."""
    if not rows:
        print("No audit events match.", file=sys.stderr)
        return
    headers = ["TIME", "USER", "VERB", "RESOURCE", "NAME", "CODE", "DECISION"]
    if namespaces:
        headers.insert(3, "NAMESPACE")
    if wide:
        headers += ["STAGE", "SOURCE IP", "USER AGENT", "AUDIT ID"]
    table = [headers]
    for row in rows:
        what = row["resource"] or ""
        if row["subresource"]:
            what = f"{what}/{row['subresource']}"
        line = [
            row["stage_time"][:19].replace("T", " "),
            row["username"] or "",
            row["verb"],
            what or row["request_uri"] or "",
            row["name"] or "",
            "" if row["code"] is None else str(row["code"]),
            row["decision"] or "",
        ]
        if namespaces:
            line.insert(3, row["namespace"] or "")
        if wide:
            line += [row["stage"], row["source_ip"] or "", row["user_agent"] or "", row["audit_id"]]
        table.append(line)
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    for line in table:
        print("  ".join(c.ljust(widths[i]) for i, c in enumerate(line)).rstrip())

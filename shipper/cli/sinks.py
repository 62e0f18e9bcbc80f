"""``kube-event-shipper sinks [SCHEME]``: every sink, or one, with its parameters, from the code."""

from __future__ import annotations

import argparse
from typing import Any

from shipper.cli.common import PROG
from shipper.uri import UsageError, unknown_scheme_message


def add_parser(commands: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "sinks",
        prog=f"{PROG} sinks",
        help="list every sink scheme with its parameters (or one: sinks kafka)",
        description="Every sink with its URI form, its config-file receiver type, what it"
        " guarantees and its parameters; with a scheme, that one sink in full (the peers'"
        " spellings of each parameter and an example).",
        epilog=f"examples:\n  {PROG} sinks\n  {PROG} sinks kafka",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("scheme", nargs="?", help="one sink's scheme (or alias)")
    parser.set_defaults(func=list_sinks)
    return parser


def list_sinks(args: argparse.Namespace) -> int:
    from shipper.sinks import describe, registry

    if args.scheme is not None:
        cls = registry().by_scheme.get(args.scheme.lower())
        if cls is None:
            raise UsageError(unknown_scheme_message(args.scheme, registry().by_scheme, "sinks"))
        print(describe.sink_text(cls, verbose=True))
        return 0
    for cls in registry().classes():
        print(describe.sink_text(cls))
        print()
    print(describe.common_text())
    return 0

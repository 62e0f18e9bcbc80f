"""Command line: ``kube-event-shipper [COMMAND] ...``, one module per subcommand.

``run`` is the default, so kube-eventer's ``--source=... --sink=...`` args work unchanged. Bad
input ends with one line on stderr and exit code 2, before anything starts.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from shipper.cli import check, query, run, setup, sinks
from shipper.cli.common import PROG, Parser
from shipper.uri import UsageError

COMMANDS = {"run": run, "query": query, "sinks": sinks, "setup": setup, "check": check}


def parser() -> Parser:
    top = Parser(prog=PROG, add_help=False)
    commands = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in COMMANDS.values():
        module.add_parser(commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        args.insert(0, "run")  # kube-eventer's flags come without a command
    try:
        try:
            parsed = parser().parse_args(args)
        except SystemExit as done:  # --help, --version, or a bad flag (already said, one line)
            return done.code if isinstance(done.code, int) else 2
        return int(parsed.func(parsed))
    except BrokenPipeError:  # `query | head`: the reader is done, so are we
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except UsageError as exc:
        one_line = " ".join(str(exc).split())  # YAML and TLS errors come in several lines
        print(f"{PROG}: error: {one_line}", file=sys.stderr)
        return 2


def run_parser() -> Parser:
    """The ``run`` command's parser (for tests and docs that read its flags)."""
    top = Parser(prog=PROG, add_help=False)
    commands = top.add_subparsers(parser_class=Parser)
    return run.add_parser(commands)

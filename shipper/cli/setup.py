"""``kube-event-shipper setup``: install what a search store needs before events arrive."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from shipper.cli.common import PROG, setup_logging
from shipper.uri import UsageError


def add_parser(commands: Any) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "setup",
        prog=f"{PROG} setup",
        help="install index templates and lifecycle policy: setup elasticsearch:http://es:9200",
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
    parser.set_defaults(func=setup)
    return parser


def setup(args: argparse.Namespace) -> int:
    from shipper.sinks.base import SinkContext, TransientError
    from shipper.sinks.factory import build_sink
    from shipper.sinks.search import ElasticsearchSink, run_setup

    setup_logging(args.log_level, "text")
    sink, _ = build_sink(args.sink, SinkContext(cluster="", state_dir=None))
    if not isinstance(sink, ElasticsearchSink):
        raise UsageError(f"setup: {sink.scheme} needs no setup (elasticsearch and opensearch do)")
    if args.print_only:
        default = "ism" if sink.expects == "opensearch" else "ilm"
        lifecycle = args.lifecycle or default
        mode, policy = sink.planned_mode(), None if lifecycle == "none" else lifecycle
        requests = []
        if sink.takes_events:
            requests += sink.setup_requests(mode, policy, first_index=True)
        if sink.takes_audit:  # the audit documents' own index (docs/audit.md)
            requests += sink.audit_setup_requests(mode, policy, first_index=True)
        for method, path, body in requests:
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

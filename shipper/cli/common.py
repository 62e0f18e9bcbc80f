"""What the subcommands share: the parser class, argument types, logging set-up."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any

from shipper.uri import parse_duration

PROG = "kube-event-shipper"


class Parser(argparse.ArgumentParser):
    """Errors are one line and exit code 2 (argparse would print the usage too)."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive(kind: type) -> Any:
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


def duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def listen(text: str) -> tuple[str, int] | None:
    from shipper.health import parse_listen

    if text in ("", "off", "none"):
        return None
    try:
        return parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: kubernetes-event-exporter's and zerolog's level names, and ours.
LOG_LEVELS = {
    "trace": "debug", "debug": "debug", "info": "info", "warn": "warning",
    "warning": "warning", "error": "error", "fatal": "error", "panic": "error",
}  # fmt: skip


def log_level(text: str) -> str:
    try:
        return LOG_LEVELS[text.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"expected one of debug, info, warn(ing), error; got {text!r}"
        ) from None


log_level.__name__ = "log level"


def add_logging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        type=log_level,
        default=os.environ.get("KES_LOG_LEVEL"),
        metavar="LEVEL",
        help="debug, info, warn(ing) or error (default: info, or the config file's logLevel)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=None,
        help="default: text, or the config file's logFormat",
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``time`` is RFC 3339 in UTC with milliseconds."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``2026-12-01 23:41:07.123Z INFO    message``: UTC, with the zone and milliseconds."""

    converter = time.gmtime

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


def rfc3339(created: float) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{stamp}.{int(created * 1000) % 1000:03d}Z"


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)-7s %(message)s"))
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

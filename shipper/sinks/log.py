"""``log`` / ``stdout``: one JSON document per line on standard output.

The document is the flattened schema of :meth:`shipper.event.Event.document`, the same one the
JSON stores get, so ``kube-event-shipper | jq`` shows exactly what Elasticsearch would index;
with ``layout`` (kubernetes-event-exporter's, :mod:`shipper.layout`) each line is that body.
Diagnostics go to standard error, never mixed in.

Guarantee: every event version once per line on a graceful stop and restart; after a crash
(SIGKILL, OOM) the versions shipped in the last checkpoint interval (1 s by default) are printed
again. A consumer can deduplicate on ``kubernetes.event.metadata.uid`` + ``resource_version``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from shipper.sinks.lines import LinesOptions, LinesSink


@dataclass(frozen=True, kw_only=True)
class LogOptions(LinesOptions):
    """``log`` takes the lines sinks' options only."""


class LogSink(LinesSink):
    scheme = "log"
    aliases = ("stdout",)
    receiver = "stdout"
    summary = "one JSON document per line on stdout"
    usage = "log"
    example = "log?level=Warning&namespaces=prod,payments"
    Options = LogOptions
    options: LogOptions
    guarantee = (
        "each event version printed once across graceful restarts; after a crash, the last"
        " checkpoint interval may be printed again (deduplicate on uid + resource_version)"
    )
    default_batch_size = 1000
    default_flush_interval = 0.05

    def open(self) -> None:
        self.out = sys.stdout.buffer

    def write_failed(self, exc: OSError) -> str:
        if isinstance(exc, BrokenPipeError):
            return "standard output is closed"
        return f"cannot write to standard output: {exc.strerror}"

    def describe(self) -> str:
        return "log (stdout, JSON lines)"

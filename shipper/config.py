"""``--config=config.yaml``: a kubernetes-event-exporter config file, as its users wrote it.

The route tree and its rules are :mod:`shipper.routing.tree`; their semantics are the
original's. Each receiver's section is read through its sink's declared ``exporter`` keys
(:mod:`shipper.spec`).

A file the original loads loads here too. Where theirs goes on silently, this one says so at
start-up with a warning naming the file and line, and ``--strict`` turns each warning into an
error (exit 2):

- an unknown key (anywhere: a misspelt ``trottlePeriod``, a fork's ``cacheTTL``, a rule's
  ``name``, a key beside the receiver type) is ignored, as theirs ignores it;
- a route naming a receiver the file does not define sends its events nowhere, as theirs;
- a value that is no valid regex but plainly a glob (their README's ``namespace: "*test*"``) is
  read as the glob its author meant; any other invalid regex never matches, as in theirs;
- ``maxEventAgeSeconds`` / ``throttlePeriod`` are accepted and not applied: the checkpoint
  already prevents replays on restart, and dropping late events is how theirs lost events under
  API throttling; setting both is refused, as theirs refuses it;
- ``metricsNamePrefix`` is accepted and not applied: the shipped dashboards and alerts read the
  fixed ``kube_event_shipper_*`` names;
- ``cacheSize`` sizes the enrichment cache, ``omitLookup: true`` turns enrichment off;
- an event goes to a receiver once even if several rules send it there (theirs sends it once per
  rule);
- ``component`` matches ``source.component``, or ``reportingController`` for events from the newer
  recorder, which leaves ``source`` empty (theirs sees an empty string there).

Bad YAML is always one line with the file and line; an empty value (``username:   # optional``)
means "not set".
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from shipper.event import Event
from shipper.routing.tree import Route, _route
from shipper.uri import UsageError

log = logging.getLogger(__name__)

TOP_KEYS = {
    "route", "receivers", "clusterName", "logLevel", "logFormat", "maxEventAgeSeconds",
    "leaderElection", "kubeQPS", "kubeBurst", "namespace", "throttlePeriod",
    "metricsNamePrefix", "cacheSize", "omitLookup",
}  # fmt: skip


# -- YAML with line numbers


class _Map(dict):  # type: ignore[type-arg]
    """A mapping that remembers the line of each key (1-based)."""

    line: int = 0
    lines: dict[str, int]


class _Loader(yaml.SafeLoader):
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> _Map:
    result = _Map()
    result.line, result.lines = node.start_mark.line + 1, {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            # `- kafka:` followed by `brokers: [..]` one level too deep: a mapping as a key
            raise yaml.constructor.ConstructorError(
                None, None, "a key here is itself a mapping or a list (quote a template such as \"{{ .Reason }}\"; or check the indentation)",
                key_node.start_mark,
            )  # fmt: skip
        key = loader.construct_object(key_node, deep=True)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = key_node.start_mark.line + 1
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


class ConfigError(UsageError):
    pass


@dataclass
class Where:
    """Where in the file, for messages; ``strict`` makes :meth:`lenient` raise."""

    path: str
    strict: bool = False

    def error(self, line: int, message: str) -> ConfigError:
        return ConfigError(f"--config {self.path}:{line}: {message}")

    def warn(self, line: int, message: str) -> None:
        log.warning("--config %s:%d: %s", self.path, line, message)

    def lenient(self, line: int, message: str) -> None:
        """What the original accepts silently: a warning, or an error with --strict."""
        if self.strict:
            raise self.error(line, f"{message} (--strict)")
        self.warn(line, message)


# -- the file


#: The original's receiver types (pkg/sinks, pkg/exporter/config.go), ours or not.
THEIR_TYPES = {
    "elasticsearch", "opensearch", "kafka", "webhook", "slack", "teams", "opsgenie", "loki",
    "syslog", "file", "stdout", "pubsub", "kinesis", "firehose", "sns", "sqs", "eventbridge",
    "bigquery", "pipe", "inMemory", "opscenter", "prometheus",
}  # fmt: skip


def receiver_types() -> set[str]:
    """kubernetes-event-exporter's receiver types that some sink here reads."""
    from shipper.sinks.registry import registry

    return set(registry().by_receiver)


@dataclass
class Receiver:
    name: str
    kind: str  # their receiver type: stdout, elasticsearch, kafka, webhook, ...
    options: dict[str, Any]
    line: int


@dataclass
class Config:
    path: str
    route: Route
    receivers: dict[str, Receiver]
    cluster_name: str | None = None
    log_level: str | None = None
    log_format: str | None = None
    namespace: str | None = None
    leader_election: bool = False
    leader_election_id: str | None = None
    used_receivers: list[str] = field(default_factory=list)
    #: Warnings about what the original ignores are errors (--strict).
    strict: bool = False
    #: Their client-side throttle of label lookups; ours is the enrichment bucket, never waited on.
    kube_qps: float | None = None
    kube_burst: int | None = None
    #: Their label cache's size; ours is the enrichment cache.
    cache_size: int | None = None
    #: Their switch to skip label lookups: enrichment stays off.
    omit_lookup: bool = False

    def receivers_for(self, event: Event) -> list[str]:
        found: list[str] = []
        self.route.receivers(event, found)
        return found

    def uses_labels(self) -> bool:
        return any(rule.labels or rule.annotations for rule in self.route.all_rules())


def load(path: str, *, strict: bool = False) -> Config:
    where = Where(path, strict)
    raw = _read(path, where)
    for key in raw:
        if key not in TOP_KEYS:
            where.lenient(raw.lines[key], f"unknown key {key!r} is ignored (known: {', '.join(sorted(TOP_KEYS))})")  # fmt: skip
    receivers = _receivers(raw.get("receivers") or [], where, raw.lines.get("receivers", 1))
    route = _route(raw.get("route"), where, raw.lines.get("route", 1))
    used = _used_receivers(route, receivers, where)
    _not_applied(raw, where)
    election = raw.get("leaderElection") or {}
    return Config(
        path=path,
        route=route,
        receivers=receivers,
        cluster_name=raw.get("clusterName") or None,
        log_level=raw.get("logLevel"),
        log_format=raw.get("logFormat"),
        namespace=raw.get("namespace") or None,
        leader_election=bool(election.get("enabled")),
        leader_election_id=election.get("leaderElectionID") or None,
        used_receivers=used,
        kube_qps=_number(raw, "kubeQPS", float, where),
        kube_burst=_number(raw, "kubeBurst", int, where),
        cache_size=_number(raw, "cacheSize", int, where),
        omit_lookup=bool(raw.get("omitLookup")),
        strict=strict,
    )


def _read(path: str, where: Where) -> _Map:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read it: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--config {path}: not UTF-8 text") from None
    # Go's YAML parser takes tabs in trailing whitespace (configs pasted from issues have them);
    # PyYAML does not. Trailing whitespace carries no meaning, so it goes.
    text = _TRAILING_TABS.sub("", text)
    try:
        raw = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        problem = getattr(exc, "problem", None) or str(exc)
        raise where.error(line, f"not valid YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise where.error(1, "expected a mapping with route and receivers")
    return raw


_TRAILING_TABS = re.compile(r"[ \t]*\t[ \t]*$", re.MULTILINE)


def _used_receivers(route: Route, receivers: dict[str, Receiver], where: Where) -> list[str]:
    """The receivers some rule sends to, in order; a name no receiver has sends nowhere."""
    used: list[str] = []
    for rule in route.all_rules():
        if rule.receiver is None or rule.receiver in used:
            continue
        if rule.receiver not in receivers:
            known = ", ".join(receivers) or "none"
            where.lenient(
                rule.line,
                f"receiver {rule.receiver!r} is not defined (receivers: {known}); its events go"
                " nowhere",
            )
            continue
        used.append(rule.receiver)
    for name, receiver in receivers.items():
        if name not in used:
            where.warn(receiver.line, f"receiver {name!r} is defined but no rule sends to it")
    return used


def _not_applied(raw: _Map, where: Where) -> None:
    """Top-level keys accepted and not applied, each said once with the reason."""
    if raw.get("maxEventAgeSeconds") and raw.get("throttlePeriod"):
        raise where.error(
            raw.lines["throttlePeriod"],
            "throttlePeriod is the old name of maxEventAgeSeconds: give one of them (the"
            " original refuses both too)",
        )
    for key in ("maxEventAgeSeconds", "throttlePeriod"):
        if key in raw:
            log.info(
                "--config %s:%d: %s is not applied: the checkpoint prevents replays, and late"
                " events are shipped, not dropped.",
                where.path, raw.lines[key], key,
            )  # fmt: skip
    if raw.get("metricsNamePrefix"):
        log.info(
            "--config %s:%d: metricsNamePrefix is not applied: the metrics keep their"
            " kube_event_shipper_* names, which the shipped dashboards and alerts read.",
            where.path, raw.lines["metricsNamePrefix"],
        )  # fmt: skip


def _number(raw: Any, key: str, kind: type, where: Where) -> Any:
    if raw.get(key) is None:
        return None
    try:
        value = kind(raw[key])
    except (TypeError, ValueError):
        value = 0
    if value <= 0 or isinstance(raw[key], bool):
        raise where.error(raw.lines[key], f"{key}: expected a positive number, got {raw[key]!r}")
    return value


def _receivers(raw: Any, where: Where, line: int) -> dict[str, Receiver]:
    if not isinstance(raw, list):
        raise where.error(line, "receivers: expected a list")
    found: dict[str, Receiver] = {}
    for item in raw:
        at = getattr(item, "line", line)
        if not isinstance(item, dict) or "name" not in item:
            raise where.error(at, "a receiver needs a name and one receiver type")
        name = str(item["name"])
        kinds = [k for k in item if k != "name" and k in (THEIR_TYPES | receiver_types())]
        others = [k for k in item if k != "name" and k not in kinds]
        if len(kinds) != 1:
            found = kinds or others or "none"
            raise where.error(
                at,
                f"receiver {name!r}: expected exactly one receiver type, got {found}"
                f" (types: {', '.join(sorted(receiver_types()))})",
            )
        for key in others:
            where.lenient(
                item.lines.get(key, at),
                f"receiver {name!r}: {key!r} beside {kinds[0]!r} is ignored (indent it under"
                f" {kinds[0]!r} if it belongs there)",
            )
        if name in found:
            raise where.error(at, f"receiver {name!r} is defined twice")
        options = item[kinds[0]] or {}
        if not isinstance(options, dict):
            raise where.error(at, f"receiver {name!r}: {kinds[0]}: expected a mapping of options")
        found[name] = Receiver(name, kinds[0], options, at)
    return found

"""``--config=config.yaml``: a kubernetes-event-exporter config file, as its users wrote it.

The route tree and its rules are :mod:`shipper.routing.tree`; their semantics are the
original's. Each receiver's section is read through its sink's declared ``exporter`` keys
(:mod:`shipper.spec`).

Where theirs fails silently, this one says so at start-up, with the file and line:

- a value that is no valid regex but plainly a glob (their README's ``namespace: "*test*"``) is
  read as the glob its author meant, with a warning; any other invalid regex is an error;
- an unknown key, an unknown receiver, or a receiver type we do not ship is an error;
- ``layout`` is refused at start-up on every receiver (stores write the documented schema;
  a webhook takes a body template file, ``body_template``, given with ``--sink``);
- an event goes to a receiver once even if several rules send it there (theirs sends it once per
  rule);
- ``maxEventAgeSeconds`` is accepted and not applied: the checkpoint already prevents replays on
  restart, and dropping late events is how theirs lost events under API throttling;
- ``component`` matches ``source.component``, or ``reportingController`` for events from the newer
  recorder, which leaves ``source`` empty (theirs sees an empty string there).
"""

from __future__ import annotations

import logging
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
        key = loader.construct_object(key_node, deep=True)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = key_node.start_mark.line + 1
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


class ConfigError(UsageError):
    pass


@dataclass
class Where:
    path: str

    def error(self, line: int, message: str) -> ConfigError:
        return ConfigError(f"--config {self.path}:{line}: {message}")

    def warn(self, line: int, message: str) -> None:
        log.warning("--config %s:%d: %s", self.path, line, message)


# -- the file


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
    #: Their client-side throttle of label lookups; ours is the enrichment bucket, never waited on.
    kube_qps: float | None = None
    kube_burst: int | None = None

    def receivers_for(self, event: Event) -> list[str]:
        found: list[str] = []
        self.route.receivers(event, found)
        return found

    def uses_labels(self) -> bool:
        return any(rule.labels or rule.annotations for rule in self.route.all_rules())


def load(path: str) -> Config:
    where = Where(path)
    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.load(handle, Loader=_Loader)
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read it: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        raise where.error(line, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise where.error(1, "expected a mapping with route and receivers")
    for key in raw:
        if key not in TOP_KEYS:
            raise where.error(
                raw.lines[key], f"unknown key {key!r} (known: {', '.join(sorted(TOP_KEYS))})"
            )
    receivers = _receivers(raw.get("receivers") or [], where, raw.lines.get("receivers", 1))
    route = _route(raw.get("route"), where, raw.lines.get("route", 1))
    used: list[str] = []
    for rule in route.all_rules():
        if rule.receiver is None:
            continue
        if rule.receiver not in receivers:
            known = ", ".join(receivers) or "none"
            raise where.error(
                rule.line, f"receiver {rule.receiver!r} is not defined (receivers: {known})"
            )
        if rule.receiver not in used:
            used.append(rule.receiver)
    for name, receiver in receivers.items():
        if name not in used:
            where.warn(receiver.line, f"receiver {name!r} is defined but no rule sends to it")
    if "maxEventAgeSeconds" in raw:
        log.info(
            "--config %s: maxEventAgeSeconds is not applied: the checkpoint prevents replays, and"
            " late events are shipped, not dropped.",
            path,
        )
    election = raw.get("leaderElection") or {}
    config = Config(
        path=path,
        route=route,
        receivers=receivers,
        cluster_name=raw.get("clusterName"),
        log_level=raw.get("logLevel"),
        log_format=raw.get("logFormat"),
        namespace=raw.get("namespace") or None,
        leader_election=bool(election.get("enabled")),
        leader_election_id=election.get("leaderElectionID"),
        used_receivers=used,
        kube_qps=_number(raw, "kubeQPS", float, where),
        kube_burst=_number(raw, "kubeBurst", int, where),
    )
    return config


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
        kinds = [k for k in item if k != "name"]
        if len(kinds) != 1:
            raise where.error(
                at, f"receiver {name!r}: expected exactly one receiver type, got {kinds or 'none'}"
            )
        if name in found:
            raise where.error(at, f"receiver {name!r} is defined twice")
        options = item[kinds[0]] or {}
        if not isinstance(options, dict):
            raise where.error(at, f"receiver {name!r}: {kinds[0]}: expected a mapping of options")
        found[name] = Receiver(name, kinds[0], options, at)
    return found

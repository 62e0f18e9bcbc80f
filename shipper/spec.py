"""A sink's options, declared once: typed fields that carry their own docs and spellings.

Every sink module declares one options class, a frozen dataclass whose fields are made with
:func:`option`::

    @dataclass(frozen=True, kw_only=True)
    class FileOptions(SinkOptions):
        REST = "path"  # the receiver key that stands where a URI has its rest (file:/PATH)

        max_size: int = option(100, "Rotate when the file passes this many MiB.",
                               parse=parse_positive_int, aliases=("maxsize",), exporter="maxsize")

From that one declaration come the ``?max_size=`` URI parameter with its validation and "did you
mean", the ``exporter`` key a kubernetes-event-exporter ``config.yaml`` receiver uses for it, the
``sinks`` command's output, the README's sink table and the per-sink pages under ``docs/sinks/``.
The sink gets an instance (``self.options.max_size``), never a dict.

Why dataclasses rather than pydantic: the values arrive as text from a URI (or as YAML scalars
rendered to text), so the work is one parser per field, which a dataclass field's ``metadata``
holds as well as a validator would; the standard library keeps start-up fast and the dependency
list short, and frozen instances make options that cannot drift after validation.

Shared groups (:class:`TLSTrust`, :class:`ClientCert`, :class:`ClusterName`, :class:`Timeout`,
:class:`LayoutOption`, :class:`AWSOptions`) are declared here once, with one canonical name
each and the peers' spellings as aliases (``ca_file`` is also kube-eventer's ``cacert`` and the
exporter's ``tls.caFile``).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from shipper.layout import parse_layout
from shipper.uri import (
    Param,
    UsageError,
    choice,
    parse_bool,
    parse_duration,
    parse_list,
    parse_positive_int,
    parse_regex,
    resolve_params,
)

#: Groups, in the order docs list them: the sink's own options first, the pipeline's last.
GROUPS = ("sink", "encoding", "tls", "cluster", "http", "aws", "pipeline", "filter")


@dataclass(frozen=True)
class Meta:
    """What a field declares besides its type and default."""

    doc: str
    parse: Callable[[str], Any]
    secret: bool = False
    #: Other spellings in URIs (kube-eventer's, Heapster's, older names of ours).
    aliases: tuple[str, ...] = ()
    #: kubernetes-event-exporter receiver keys; a dot descends (``tls.caFile``).
    exporter: tuple[str, ...] = ()
    #: Every occurrence is collected (``?nodes=a&nodes=b``); list-typed fields also take commas.
    repeat: bool = False
    group: str = "sink"
    #: A config file gives the value as a YAML tree (``layout:``): it reaches ``parse`` as JSON.
    whole: bool = False


def option(
    default: Any,
    doc: str,
    *,
    parse: Callable[[str], Any] | None = None,
    secret: bool = False,
    aliases: Sequence[str] = (),
    exporter: str | Sequence[str] = (),
    repeat: bool | None = None,
    group: str = "sink",
    whole: bool = False,
) -> Any:
    """A declared option (a dataclass field). ``parse`` defaults from the default's type: bool,
    int, float, list (comma-separated and repeatable), else text."""
    if parse is None:
        parse = _parser_for(default)
    if repeat is None:
        repeat = isinstance(default, list)
    meta = Meta(
        doc=doc,
        parse=parse,
        secret=secret,
        aliases=tuple(aliases),
        exporter=(exporter,) if isinstance(exporter, str) else tuple(exporter),
        repeat=repeat,
        group=group,
        whole=whole,
    )
    if isinstance(default, list | dict):
        return field(default_factory=functools.partial(type(default), default), metadata={"spec": meta})  # fmt: skip
    return field(default=default, metadata={"spec": meta})


def parse_level(text: str) -> str:
    """kube-eventer's level: a threshold; a list (``Normal,Warning``) means its lowest."""
    levels = [choice("Normal", "Warning")(item) for item in parse_list(text)]
    if not levels:
        raise ValueError("expected Normal or Warning")
    return "Normal" if "Normal" in levels else "Warning"


parse_level.__name__ = "Normal|Warning"


def _parser_for(default: Any) -> Callable[[str], Any]:
    if isinstance(default, bool):
        return parse_bool
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return parse_duration
    if isinstance(default, list):
        return parse_list
    return str


# -- the options every sink has: the pipeline's, and kube-eventer's filters


@dataclass(frozen=True, kw_only=True)
class SinkOptions:
    """Base of every sink's options: the pipeline's parameters and the event filters."""

    #: The exporter receiver key that stands where a URI has its rest (``endpoint``, ``path``).
    REST: ClassVar[str | None] = None
    #: Receiver keys the original accepts that change nothing here, with the reason.
    IGNORED: ClassVar[Mapping[str, str]] = {}
    #: Defaults this sink changes from a shared group's (``{"timeout": 10.0}``).
    DEFAULTS: ClassVar[Mapping[str, Any]] = {}

    name: str | None = option(None, "Name in metrics and logs (default: the scheme; must be unique).", group="pipeline")  # fmt: skip
    batch_size: int | None = option(None, "Most events per write (default: the sink's).", parse=parse_positive_int, group="pipeline")  # fmt: skip
    flush_interval: float | None = option(None, "Longest wait to fill a batch, e.g. 1s (default: the sink's).", parse=parse_duration, group="pipeline")  # fmt: skip
    queue_size: int = option(10000, "Events held in memory for this sink.", parse=parse_positive_int, group="pipeline")  # fmt: skip
    overflow: str = option("block", "When the queue is full: block (pause the watch, lose nothing) or drop (count and skip).", parse=choice("block", "drop"), group="pipeline")  # fmt: skip
    max_backoff: float = option(60.0, "Longest pause between retries of a failing batch.", group="pipeline")  # fmt: skip
    documents: str = option("all", "With an audit source (--source=audit:): which documents this sink gets: all, events or audit (sinks that cannot keep audit documents get events only).", parse=choice("all", "events", "audit"), group="pipeline")  # fmt: skip

    level: str | None = option(None, "Lowest event type to pass: Warning (Warnings only) or Normal (both; also Normal,Warning).", parse=parse_level, group="filter")  # fmt: skip
    namespaces: list[str] = option([], "Only events in these namespaces (names, or regular expressions such as my-.*, matched whole).", group="filter")  # fmt: skip
    kinds: list[str] = option([], "Only events about these kinds (Pod, Node, ...).", group="filter")  # fmt: skip
    reason: Any = option(None, "Only events whose reason matches this regex (commas separate alternatives).", parse=parse_regex, group="filter")  # fmt: skip
    exclude_namespaces: list[str] = option([], "Drop events in these namespaces (names or regular expressions, matched whole).", group="filter")  # fmt: skip
    exclude_kinds: list[str] = option([], "Drop events about these kinds.", group="filter")
    exclude_reasons: Any = option(None, "Drop events whose reason matches this regex, e.g. ^(Pulled|Created|Started)$ or Pulled,Created.", parse=parse_regex, group="filter")  # fmt: skip
    min_count: int | None = option(None, "Only events that happened this often (count).", parse=parse_positive_int, group="filter")  # fmt: skip


# -- shared groups: declared once, reused by every sink that needs them


@dataclass(frozen=True, kw_only=True)
class TLSTrust:
    """Which server certificates to trust."""

    ca_file: str | None = option(None, "CA bundle that signed the server's certificate (default: the system's).", aliases=("caFile", "cacert", "ca", "tls_ca", "ssl_ca"), exporter="tls.caFile", group="tls")  # fmt: skip
    insecure: bool = option(False, "Skip verifying the server's certificate.", aliases=("insecuressl", "insecureSkipVerify"), exporter="tls.insecureSkipVerify", group="tls")  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class ClientCert:
    """A client certificate (mutual TLS)."""

    cert_file: str | None = option(None, "Client certificate (mutual TLS).", aliases=("certFile", "cert", "tls_cert", "ssl_cert"), exporter="tls.certFile", group="tls")  # fmt: skip
    key_file: str | None = option(None, "Client key (mutual TLS).", aliases=("keyFile", "key", "tls_key", "ssl_key"), exporter="tls.keyFile", group="tls")  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class ClusterName:
    cluster_name: str | None = option(None, "The cluster name this sink writes (default --cluster-name).", aliases=("cluster_id", "cluster"), group="cluster")  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Timeout:
    timeout: float = option(30.0, "Timeout of one request.", group="http")


@dataclass(frozen=True, kw_only=True)
class AWSOptions:
    """Where an AWS sink sends and as whom (shipper/sinks/aws/common.py). Credentials come from
    the AWS default chain only (env, shared files, IRSA web identity, EKS Pod Identity, instance
    role), never from a parameter; ``role_arn`` assumes a role on top of them."""

    region: str | None = option(None, "AWS region (default: AWS_REGION / AWS_DEFAULT_REGION, the profile's, or the ARN's).", aliases=("aws_region",), exporter="region", group="aws")  # fmt: skip
    endpoint: str | None = option(None, "API endpoint URL (a VPC endpoint, a local test server); default: AWS_ENDPOINT_URL_<SERVICE>, AWS_ENDPOINT_URL, else the region's.", aliases=("endpoint_url",), exporter="endpoint", group="aws")  # fmt: skip
    role_arn: str | None = option(None, "Role to assume with STS AssumeRole, on top of the default credentials (refreshed before they expire).", aliases=("roleArn",), exporter="roleArn", group="aws")  # fmt: skip
    external_id: str | None = option(None, "ExternalId for AssumeRole (the role's trust policy may require it).", aliases=("externalId",), exporter="externalId", group="aws")  # fmt: skip
    session_name: str = option("kube-event-shipper", "RoleSessionName for AssumeRole (CloudTrail shows it).", aliases=("role_session_name", "roleSessionName"), exporter="roleSessionName", group="aws")  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class LayoutOption:
    """kubernetes-event-exporter's ``layout`` (:mod:`shipper.layout`), for sinks that write a body."""

    layout: Any = option(
        None,
        'The body as a tree of Go templates, as kubernetes-event-exporter\'s layout (JSON in a URI: layout={"msg":"{{ .Message }}"}); default: the documented event document.',
        parse=parse_layout,
        exporter="layout",
        whole=True,
        group="encoding",
    )


# -- reading a declaration


@dataclass(frozen=True)
class Declared:
    """One field of an options class, as the rest of the code sees it."""

    name: str
    default: Any
    meta: Meta

    @property
    def param(self) -> Param:
        m = self.meta
        return Param(self.name, m.parse, self.default, m.doc, m.secret, m.repeat, m.aliases)


@functools.cache
def declared(cls: type[SinkOptions]) -> tuple[Declared, ...]:
    """The fields of ``cls`` in docs order: the sink's own (the most derived class's first),
    then the shared groups, then the pipeline's and the filters."""
    found = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("spec")
        if meta is None:
            continue
        if f.name in cls.DEFAULTS:
            default = cls.DEFAULTS[f.name]
        elif f.default is not dataclasses.MISSING:
            default = f.default
        else:
            default = f.default_factory()  # type: ignore[misc]
        found.append(Declared(f.name, default, meta))
    mro = [inspect.get_annotations(c) for c in cls.__mro__]

    def depth(name: str) -> int:
        return next(i for i, own in enumerate(mro) if name in own)

    return tuple(sorted(found, key=lambda d: (GROUPS.index(d.meta.group), depth(d.name))))


def params(cls: type[SinkOptions]) -> tuple[Param, ...]:
    return tuple(d.param for d in declared(cls))


def build(
    cls: type[SinkOptions],
    pairs: Iterable[tuple[str, str]],
    *,
    where: str,
    passthrough: bool = False,
) -> tuple[Any, list[tuple[str, str]]]:
    """Validate ``pairs`` (a URI's query) and make the options; returns (options, the pairs
    left for a vendor URL when ``passthrough``). Bad input raises UsageError naming it."""
    values, leftover = resolve_params(params(cls), pairs, where=where, passthrough=passthrough)
    return cls(**values), leftover


# -- config-file receivers


def receiver_pairs(
    cls: type[SinkOptions], section: Mapping[str, Any], *, where: str
) -> tuple[str, list[tuple[str, str]], list[str]]:
    """A kubernetes-event-exporter receiver's section as (rest, URI pairs, unknown keys).

    Each key is looked up among the fields' ``exporter`` keys; a mapping that no field takes
    whole (``tls:``, ``sasl:``) is descended with dotted keys. Empty values (``username:`` with
    nothing after it) mean "not set", as in the original. Values become the text a URI would
    carry, so one parser validates both.
    """
    by_key: dict[str, Declared] = {}
    for d in declared(cls):
        for key in d.meta.exporter:
            by_key[key] = d
    rest, pairs, unknown = "", [], []

    def visit(prefix: str, mapping: Mapping[str, Any]) -> None:
        nonlocal rest
        for key, value in mapping.items():
            path = f"{prefix}{key}"
            if value is None or value == "":
                continue  # an empty value means "not set", as in the original
            if path == cls.REST:
                rest = str(value)
            elif path in by_key and by_key[path].meta.whole:
                pairs.append((by_key[path].name, orjson.dumps(value, default=str).decode()))
            elif path in by_key:
                pairs.extend((by_key[path].name, text) for text in _texts(value))
            elif isinstance(value, Mapping) and any(k.startswith(path + ".") for k in by_key):
                visit(path + ".", value)
            elif path not in cls.IGNORED:
                unknown.append(path)

    visit("", section)
    return rest, pairs, unknown


def _texts(value: Any) -> list[str]:
    """A YAML value as URI text: lists give one pair each, mappings NAME=VALUE each."""
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, list):
        return [t for item in value for t in _texts(item)]
    if isinstance(value, Mapping):
        return [f"{k}={v}" for k, v in value.items()]
    return [str(value)]


def exporter_keys(cls: type[SinkOptions]) -> list[str]:
    keys = [cls.REST] if cls.REST else []
    keys += [k for d in declared(cls) for k in d.meta.exporter]
    return keys + list(cls.IGNORED)


def check_readable(options: Any, where: str, *names: str) -> None:
    """Files named by options must be readable now, not at the first write."""
    import os

    for name in names:
        path = getattr(options, name)
        if path and not os.access(path, os.R_OK):
            raise UsageError(f"{where}: parameter {name}={path!r}: cannot read it")

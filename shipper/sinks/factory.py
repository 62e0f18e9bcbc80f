"""Sinks from ``--sink`` URIs and config-file receivers: parse, validate, build.

Everything that can be wrong with a sink's input is found here, before anything starts, and said
in one line naming the flag or the file and line.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from shipper import spec
from shipper.config import Config, Receiver, Where
from shipper.pipeline import SinkSettings
from shipper.routing.filters import EventFilter
from shipper.sinks.base import Sink, SinkContext
from shipper.sinks.registry import registry, schemes, sink_class
from shipper.uri import Uri, UsageError, unknown_scheme_message

log = logging.getLogger(__name__)

#: With no --sink and no config file: the embedded store in the state directory.
DEFAULT_SINK = "sqlite:"


def build_sink(text: str, ctx: SinkContext) -> tuple[Sink, SinkSettings]:
    """Parse and validate one ``--sink`` URI; UsageError if anything is wrong with it."""
    return build_sink_from(Uri.parse(text, what="--sink"), ctx, where="--sink", text=text)


def build_sink_from(
    uri: Uri, ctx: SinkContext, *, where: str, text: str | None = None
) -> tuple[Sink, SinkSettings]:
    """A sink from a parsed URI (``--sink``) or a config file's receiver (``where`` says which,
    for error messages). ``text`` is the ``--sink`` value as typed: a sink class with a
    ``parse_uri(text, where=...) -> Uri`` classmethod splits it itself (mysql's Go DSN has a
    ``?`` of its own before the query it shares with our parameters)."""
    try:
        cls = sink_class(uri.scheme)
    except KeyError:
        raise UsageError(unknown_scheme_message(uri.scheme, schemes(), where)) from None
    where = f"{where} {uri.scheme}"
    parse_uri = getattr(cls, "parse_uri", None)
    if parse_uri is not None and text is not None:
        uri = parse_uri(text, where=where)
    options, leftover = spec.build(cls.Options, uri.query, where=where, passthrough=cls.passthrough)
    try:
        sink = cls(uri, options, leftover, ctx)
    except UsageError as exc:  # sinks word their errors for --sink; say where it really was
        text = str(exc)
        if not where.startswith("--sink "):
            text = text.replace(f"--sink {uri.scheme}", where, 1)
        raise UsageError(text) from None
    return sink, SinkSettings.from_options(cls, options)


def build_receivers(config: Config, ctx: SinkContext) -> list[tuple[Sink, SinkSettings]]:
    """The sinks behind the receivers a config file's route sends to, each read through its
    sink's declared ``exporter`` keys (:func:`shipper.spec.receiver_pairs`)."""
    built = []
    for name in config.used_receivers:
        receiver = config.receivers[name]
        where = f"--config {config.path}:{receiver.line} receiver {name}:"
        uri = receiver_uri(receiver, Where(config.path, config.strict))
        sink, settings = build_sink_from(uri, ctx, where=where)
        # In a config file the route decides: a chat sink's default level=Warning is for
        # --sink URIs only (a route may send it Normal events); its own parameters still count.
        chosen = EventFilter.from_options(sink.options, default_level=None)
        built.append((sink, replace(settings, filter=chosen)))
    return built


def receiver_uri(receiver: Receiver, where: Where) -> Uri:
    """The ``--sink`` URI that stands for a config file's receiver."""
    cls = registry().by_receiver.get(receiver.kind)
    if cls is None:
        supported = ", ".join(sorted(registry().by_receiver))
        raise where.error(
            receiver.line,
            f"receiver {receiver.name!r}: type {receiver.kind!r} is not supported"
            f" (supported: {supported})",
        )
    rest, pairs, unknown = spec.receiver_pairs(cls.Options, receiver.options, where=where.path)
    known = ", ".join(sorted(spec.exporter_keys(cls.Options)))
    lines = getattr(receiver.options, "lines", {})
    for key in unknown:
        where.lenient(
            lines.get(key.split(".")[0], receiver.line),
            f"receiver {receiver.name!r}: unknown {receiver.kind} option {key!r} is ignored"
            f" (known: {known})",
        )
    return Uri(cls.scheme, rest, [("name", receiver.name), *pairs])


def build_sinks(
    texts: list[str], ctx: SinkContext, config: Config | None = None
) -> list[tuple[Sink, SinkSettings]]:
    """Every sink: the ``--sink`` URIs, then the config file's receivers; with neither (no
    --sink and no config file), the embedded store."""
    built = [build_sink(text, ctx) for text in texts]
    if config is not None:
        built += build_receivers(config, ctx)
    if not built and config is None:
        built = [build_sink(DEFAULT_SINK, ctx)]
    elif not built:
        # As the original: a file whose route reaches no receiver exports nothing.
        log.warning("--config %s: no route reaches a receiver; nothing will be shipped.", config.path)  # fmt: skip
    seen: set[str] = set()
    for _, settings in built:
        if settings.name in seen:
            raise UsageError(
                f"--sink: two sinks are named {settings.name!r}; give one a name=... parameter"
            )
        seen.add(settings.name)
    return built

"""The sink registry, built from the sink classes themselves (as Patroni finds its DCS modules).

Every module under ``shipper/sinks/`` is imported once, the first time a sink is looked up, and
each :class:`~shipper.sinks.base.Sink` subclass that names a ``scheme`` is registered under it,
its ``aliases`` and its kubernetes-event-exporter ``receiver`` type. There is no second list to
keep in step: a new sink module is found by being there. Client libraries (elasticsearch,
kafka-python, boto3) are imported inside the sinks' methods, so scanning stays cheap.

A sink that lives outside the package (a plugin, a test's throwaway class) is added with
:func:`register`, used as a class decorator.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass

from shipper.sinks.base import Sink


@dataclass(frozen=True)
class Registry:
    by_scheme: dict[str, type[Sink]]
    by_receiver: dict[str, type[Sink]]

    def classes(self) -> list[type[Sink]]:
        """Each sink class once, in the order of their schemes."""
        seen: dict[type[Sink], None] = {}
        for scheme in sorted(self.by_scheme):
            seen.setdefault(self.by_scheme[scheme], None)
        return sorted(seen, key=lambda cls: cls.scheme)


def _modules(package: str) -> list[str]:
    root = importlib.import_module(package)
    return [m.name for m in pkgutil.walk_packages(root.__path__, prefix=f"{package}.")]


_EXTRA: list[type[Sink]] = []


def register(cls: type[Sink]) -> type[Sink]:
    """Add a sink class defined outside ``shipper.sinks``."""
    _EXTRA.append(cls)
    registry.cache_clear()
    return cls


def unregister(cls: type[Sink]) -> None:
    _EXTRA.remove(cls)
    registry.cache_clear()


def scan(package: str = "shipper.sinks") -> Registry:
    """Import every module of ``package`` and register the sink classes defined there."""
    for name in _modules(package):
        importlib.import_module(name)
    ours = [c for c in _subclasses(Sink) if c.__module__.startswith(f"{package}.")]
    by_scheme: dict[str, type[Sink]] = {}
    by_receiver: dict[str, type[Sink]] = {}
    for cls in (*ours, *_EXTRA):
        scheme = cls.__dict__.get("scheme")
        if scheme is None:
            continue  # a shared base, such as the notifiers'
        for name in (scheme, *cls.aliases):
            other = by_scheme.setdefault(name, cls)
            if other is not cls:
                raise RuntimeError(f"sink scheme {name!r} is claimed by {other} and {cls}")
        if cls.__dict__.get("receiver"):
            by_receiver[cls.receiver] = cls  # type: ignore[index]
    return Registry(by_scheme, by_receiver)


def _subclasses(cls: type[Sink]) -> list[type[Sink]]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


@functools.cache
def registry() -> Registry:
    return scan()


def sink_class(scheme: str) -> type[Sink]:
    """The class for ``scheme``; KeyError if there is none."""
    return registry().by_scheme[scheme]


def schemes() -> list[str]:
    return sorted(registry().by_scheme)

"""Drop-in, measured against the original: the corpus's configs, the recorded events, the oracle.

For every config in tests/corpus/exporter that both kubernetes-event-exporter (the peer oracle,
tests/peer, built from the Go module proxy) and this project load, each recorded event goes to
the same receivers here as there, and a receiver with a ``layout`` gets the same body, byte for
byte. The oracle's answers are recorded in tests/corpus/oracle-answers.json.gz, so this runs in
process; tests/integration/test_peer_exporter_oracle.py checks on every full run that the oracle
still gives exactly those answers (``KES_RECORD_ORACLE=1`` re-records them). The differences that remain on purpose are the README's migration section; the ones
checked here are excluded with their reason:

- the original v1.7 exports a repeated event once (updates are ignored); here each count update
  is shipped, so the oracle's view of an update is not compared;
- the original drops events older than maxEventAgeSeconds (5 s by default); the oracle is run
  without a clock, so nothing is dropped on either side.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from shipper.config import load
from shipper.event import normalize
from shipper.routing import Router
from shipper.sinks.base import SinkContext
from shipper.sinks.factory import build_sinks
from shipper.uri import UsageError
from tests.unit.test_corpus import CONFIGS, CORPUS, ENV, REFUSED

#: Where the routing differs on purpose: the README's migration section says the same.
ROUTING_DIFFERS = {
    "55-issue-113-es-hosts-as-string.yaml": "`hosts:` given as one string: the original cannot"
    " read the receiver and routes its events nowhere; here it is read as a list of one host",
}
EVENTS = CORPUS / "events.jsonl"
LABELS = CORPUS / "object-labels.json"


def _our_events() -> list[Any]:
    labels = json.loads(LABELS.read_text())
    found = []
    for line in EVENTS.read_text().splitlines():
        obj = json.loads(line)
        event = normalize(obj, "ADDED")
        involved = obj.get("involvedObject") or {}
        key = f"{involved.get('kind')}/{involved.get('namespace') or ''}/{involved.get('name')}"
        meta = labels.get(key) or {}
        found.append(replace(event, labels=meta.get("labels"), annotations=meta.get("annotations")))
    return found


class _Target:
    def __init__(self, sink: Any, settings: Any) -> None:
        self.sink, self.settings, self.name = sink, settings, settings.name


def _ours(path: Path) -> tuple[Router[_Target], dict[str, _Target], str] | None:
    try:
        config = load(str(path))
        built = build_sinks([], SinkContext(config.cluster_name or "", None), config)
    except UsageError:
        return None
    targets = [_Target(s, cfg) for s, cfg in built]
    return Router(targets, config), {t.name: t for t in targets}, config.cluster_name or ""


ANSWERS = CORPUS / "oracle-answers.json.gz"
RECORDED: dict[str, dict[str, Any]] = json.loads(gzip.decompress(ANSWERS.read_bytes()))
#: Loaded by both: the original (as recorded) and this project (tests/unit/test_corpus.py
#: refuses the rest, each with its reason).
BOTH = [p for p in CONFIGS if RECORDED[p.name]["loaded"] and p.name not in REFUSED]
ROUTED = [p for p in BOTH if p.name not in ROUTING_DIFFERS]


def _writes_a_layout(path: Path) -> bool:
    """Some receiver of this config renders a layout here (checked at collection)."""
    saved = {name: os.environ.get(name) for name in ENV}
    os.environ.update(ENV)
    try:
        logging.disable(logging.WARNING)
        ours = _ours(path)
    finally:
        logging.disable(logging.NOTSET)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return ours is not None and any(
        getattr(t.sink.options, "layout", None) is not None for t in ours[1].values()
    )


@pytest.fixture(scope="module")
def theirs() -> dict[str, dict[str, Any]]:
    """The oracle's answer for every corpus config, as recorded."""
    return RECORDED


def _comparable(path: Path, theirs: dict[str, dict[str, Any]], monkeypatch: Any) -> Any:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    answer = theirs[path.name]
    ours = _ours(path)
    assert answer["loaded"] and ours is not None
    return answer, ours


WITH_LAYOUT = [p for p in BOTH if RECORDED[p.name]["deliveries"] and _writes_a_layout(p)]


def test_most_configs_are_compared():
    assert len(BOTH) >= 40 and len(WITH_LAYOUT) >= 5


@pytest.mark.parametrize("path", ROUTED, ids=[p.name[:40] for p in ROUTED])
def test_each_event_goes_to_the_receivers_the_original_sends_it_to(
    path, theirs, monkeypatch, caplog
):
    caplog.set_level(logging.ERROR)
    answer, (router, _, _) = _comparable(path, theirs, monkeypatch)
    events = _our_events()
    skipped = {d["event_index"] for d in answer.get("discarded", [])}
    their_routes: dict[int, set[str]] = {}
    for delivery in answer["deliveries"]:
        their_routes.setdefault(delivery["event_index"], set()).add(delivery["receiver"])
    for index, event in enumerate(events):
        if index in skipped:
            continue
        ours = {t.name for t in router.targets(event)}
        assert ours == their_routes.get(index, set()), (index, event.describe())


@pytest.mark.parametrize("path", WITH_LAYOUT, ids=[p.name[:40] for p in WITH_LAYOUT])
def test_each_layout_body_is_the_originals(path, theirs, monkeypatch, caplog):
    caplog.set_level(logging.ERROR)
    answer, (_, by_name, cluster) = _comparable(path, theirs, monkeypatch)
    events = _our_events()
    compared = 0
    for delivery in answer["deliveries"]:
        target = by_name.get(delivery["receiver"])
        layout = getattr(target.sink.options, "layout", None) if target else None
        if layout is None or delivery["body"] is None:
            continue
        ours = layout.encode(events[delivery["event_index"]], cluster).decode()
        assert ours == delivery["body"].rstrip("\n"), delivery["receiver"]
        compared += 1
    assert compared, path.name

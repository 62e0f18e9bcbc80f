"""Installing the schema: the requests ``setup`` sends, the ``setup`` subcommand, and the
files of ``index-templates/``.

:func:`render_setup` turns the schema (:mod:`shipper.sinks.search.schema`) into the requests for
one index and mode, in order and all idempotent; the sink sends them at start (``setup=true``)
and ``kube-event-shipper setup`` sends or prints them. :func:`rendered_files` gives the same
bodies for ``index-templates/`` (``scripts/render-index-templates``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipper.sinks.search.schema import (
    ILM_POLICY,
    MAPPING,
    SETTINGS,
    component,
    index_template,
    ism_policy,
)

if TYPE_CHECKING:
    from shipper.sinks.search.sink import ElasticsearchSink


def render_setup(
    flavour: str,
    index: str,
    mode: str,
    lifecycle: str | None,
    *,
    first_index: bool = False,
    patterns: list[str] | None = None,
    mappings: bool = True,
) -> list[tuple[str, str, dict[str, Any]]]:
    """The requests that install the schema: (method, path, body), in order, all idempotent.
    ``first_index``: in alias mode, also the first index behind the alias (the sink makes it
    itself at start, only when the alias does not exist yet; ``setup --print`` shows it).
    ``patterns``: the indices the template covers, when ``index_format`` names them rather than
    ``index``. ``mappings=False`` (a ``layout`` writes documents of the user's own shape): the
    settings and lifecycle only, and the server maps the fields as it sees them."""
    template_settings: dict[str, Any] = {}
    if lifecycle == "ilm":
        template_settings["index.lifecycle.name"] = index
        if mode == "alias":
            template_settings["index.lifecycle.rollover_alias"] = index
    elif lifecycle == "ism" and mode == "alias":
        template_settings["plugins.index_state_management.rollover_alias"] = index
    requests: list[tuple[str, str, dict[str, Any]]] = []
    if lifecycle == "ilm":
        requests.append(("PUT", f"_ilm/policy/{index}", ILM_POLICY))
    requests.append(("PUT", f"_component_template/{index}-settings", component(settings=SETTINGS)))
    if mappings:
        requests.append(
            ("PUT", f"_component_template/{index}-mappings", component(mappings=MAPPING))
        )
    template = index_template(index, mode, template_settings, patterns, mappings=mappings)
    requests.append(("PUT", f"_index_template/{index}", template))
    if lifecycle == "ism":
        managed = [index, f".ds-{index}-*"] if mode == "data_stream" else template["index_patterns"]
        requests.append(("PUT", f"_plugins/_ism/policies/{index}", ism_policy(managed, index)))
    if mode == "alias" and first_index:
        requests.append(("PUT", f"{index}-000001", {"aliases": {index: {"is_write_index": True}}}))
    return requests


@dataclass
class SetupReport:
    """What ``kube-event-shipper setup`` did, for its output."""

    server: str
    mode: str
    actions: list[str] = field(default_factory=list)


def install(sink: ElasticsearchSink) -> list[str]:
    """Put templates and policy (and the first index behind an alias); return what was done."""
    assert sink.server is not None
    done = []
    for method, path, body in sink.setup_requests(sink.mode, sink.server.lifecycle):
        if path.startswith("_plugins/_ism/policies/"):
            _put_ism_policy(sink, path, body)
        else:
            sink.call(method, path, body)
        done.append(f"{method} /{path}")
    if sink.mode == "alias" and _bootstrap_alias(sink):
        done.append(f"PUT /{sink.index}-000001 (write index of alias {sink.index})")
    return done


def _put_ism_policy(sink: ElasticsearchSink, path: str, body: dict[str, Any]) -> None:
    """ISM policies are versioned: an update needs the current seq_no and primary_term."""
    assert sink.http is not None
    status, current = sink.http.request("GET", path)
    if status == 200:
        if current.get("policy", {}).get("states") == body["policy"]["states"]:
            return
        path += f"?if_seq_no={current['_seq_no']}&if_primary_term={current['_primary_term']}"
    sink.call("PUT", path, body)


def _bootstrap_alias(sink: ElasticsearchSink) -> bool:
    assert sink.http is not None
    status, _ = sink.http.request("HEAD", f"_alias/{sink.index}")
    if status == 200:
        return False
    first = {"aliases": {sink.index: {"is_write_index": True}}}
    sink.call("PUT", f"{sink.index}-000001", first, ok=(400,))  # 400: it exists already
    return True


def run_setup(sink: ElasticsearchSink, say: Callable[[str], None]) -> SetupReport:
    """Connect, detect, install, verify: the ``setup`` subcommand."""
    sink.http = sink.make_http()
    try:
        sink.server = sink.detect()
        say(f"{sink.describe()}: {sink.server.name}")
        sink.mode = sink.resolve_mode()
        actions = sink.install()
        for action in actions:
            say(f"  {action}")
        sink.check_target()
        if sink.server.lifecycle is None:
            say("  (no ILM/ISM on this server: lifecycle policy not installed)")
        return SetupReport(sink.server.name, sink.mode, actions)
    finally:
        sink.close()


def rendered_files(flavour: str) -> dict[str, Any]:
    """The bodies of ``index-templates/<flavour>/`` (default index name, every mode)."""
    index = "kube-events"
    files: dict[str, Any] = {}
    for mode, suffix in (("data_stream", ""), ("dated", "-indices")):
        # Without the lifecycle setting, so that they install on any server; ``setup`` adds it.
        for _, path, body in render_setup(flavour, index, mode, None):
            kind, _, name = path.partition("/")
            if kind == "_index_template":
                files[f"index-template-{name}{suffix}.json"] = body
            elif kind == "_component_template":
                files[f"component-template-{name}.json"] = body
    files[
        "ilm-policy-kube-events.json"
        if flavour == "elasticsearch"
        else "ism-policy-kube-events.json"
    ] = (
        ILM_POLICY
        if flavour == "elasticsearch"
        else ism_policy([index, f".ds-{index}-*", f"{index}-*"], index)
    )
    return copy.deepcopy(files)

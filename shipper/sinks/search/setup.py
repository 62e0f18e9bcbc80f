"""Installing the schema: the requests ``setup`` sends, the ``setup`` subcommand, and the
files of ``index-templates/``.

:func:`render_setup` turns the schema (:mod:`shipper.sinks.search.schema`) into the requests for
one index and mode, in order and all idempotent; the sink sends them at start (``setup=true``)
and ``kube-event-shipper setup`` sends or prints them. :func:`rendered_files` gives the same
bodies for ``index-templates/`` (``scripts/render-index-templates``).

The audit documents (shipper/audit/) get the same set under the audit name (``kube-events-audit``:
:func:`shipper.sinks.search.naming.audit_index`) with :data:`AUDIT_MAPPING`: their own policy,
templates and, in alias mode, first index. Its template's priority is higher than the events'
(a longer name), so ``kube-events-audit-2026.12.02`` takes the audit template although the
events' ``kube-events-*`` matches it too.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipper.sinks.base import TransientError
from shipper.sinks.search.naming import audit_index
from shipper.sinks.search.schema import (
    AUDIT_MAPPING,
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
    mapping: dict[str, Any] | None = None,
    description: str | None = None,
) -> list[tuple[str, str, dict[str, Any]]]:
    """The requests that install the schema: (method, path, body), in order, all idempotent.
    ``first_index``: in alias mode, also the first index behind the alias (the sink makes it
    itself at start, only when the alias does not exist yet; ``setup --print`` shows it).
    ``patterns``: the indices the template covers, when ``index_format`` names them rather than
    ``index``. ``mappings=False`` (a ``layout`` writes documents of the user's own shape): the
    settings and lifecycle only, and the server maps the fields as it sees them. ``mapping``
    and ``description``: another document's (the audit documents', :data:`AUDIT_MAPPING`)."""
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
            (
                "PUT",
                f"_component_template/{index}-mappings",
                component(mappings=MAPPING if mapping is None else mapping),
            )
        )
    described = {"description": description} if description else {}
    template = index_template(
        index, mode, template_settings, patterns, mappings=mappings, **described
    )
    requests.append(("PUT", f"_index_template/{index}", template))
    if lifecycle == "ism":
        managed = [index, f".ds-{index}-*"] if mode == "data_stream" else template["index_patterns"]
        requests.append(("PUT", f"_plugins/_ism/policies/{index}", ism_policy(managed, index)))
    if mode == "alias" and first_index:
        requests.append(("PUT", f"{index}-000001", {"aliases": {index: {"is_write_index": True}}}))
    return requests


AUDIT_DESCRIPTION = "Kubernetes audit events shipped by kube-event-shipper"


def render_audit_setup(
    flavour: str,
    index: str,
    mode: str,
    lifecycle: str | None,
    *,
    first_index: bool = False,
    patterns: list[str] | None = None,
) -> list[tuple[str, str, dict[str, Any]]]:
    """:func:`render_setup` for the audit documents of the sink whose events go to ``index``
    (``patterns``: the audit indices' own, when ``index_format`` names them)."""
    return render_setup(
        flavour,
        audit_index(index),
        mode,
        lifecycle,
        first_index=first_index,
        patterns=patterns,
        mapping=AUDIT_MAPPING,
        description=AUDIT_DESCRIPTION,
    )


@dataclass
class SetupReport:
    """What ``kube-event-shipper setup`` did, for its output."""

    server: str
    mode: str
    actions: list[str] = field(default_factory=list)


def install(sink: ElasticsearchSink, *, audit_alias: bool = False) -> list[str]:
    """Put templates and policies (and the first index behind an alias); return what was done.

    The events' schema unless the sink takes audit documents only (``documents=audit``), the
    audit documents' unless it takes events only. The audit alias's first index is made here
    only with ``audit_alias`` (the ``setup`` command); the sink makes it when the first audit
    document comes (:func:`bootstrap_audit_alias`), so that a cluster without an audit source
    gets no empty index rolled over every day."""
    assert sink.server is not None
    done = []
    requests = []
    if sink.takes_events:
        requests += sink.setup_requests(sink.mode, sink.server.lifecycle)
    if sink.takes_audit:
        requests += sink.audit_setup_requests(sink.mode, sink.server.lifecycle)
    for method, path, body in requests:
        if path.startswith("_plugins/_ism/policies/"):
            _put_ism_policy(sink, path, body)
        else:
            sink.call(method, path, body)
        done.append(f"{method} /{path}")
    if sink.mode == "alias" and sink.takes_events and _bootstrap_alias(sink, sink.index):
        done.append(f"PUT /{sink.index}-000001 (write index of alias {sink.index})")
    audit = sink.audit_index
    if audit_alias and sink.mode == "alias" and sink.takes_audit and _bootstrap_alias(sink, audit):
        done.append(f"PUT /{audit}-000001 (write index of alias {audit})")
    return done


def bootstrap_audit_alias(sink: ElasticsearchSink) -> None:
    """Before the first audit document in alias mode: the alias and its first index, made
    with ``setup=true``; with ``setup=false`` they must exist (a write to a missing alias would
    make an index of that name, which no rollover follows)."""
    if sink.options.setup:
        _bootstrap_alias(sink, sink.audit_index)
        return
    assert sink.http is not None
    status, _ = sink.http.request("HEAD", f"_alias/{sink.audit_index}")
    if status != 200:
        raise TransientError(
            f"alias {sink.audit_index} (audit documents) does not exist; run setup or set"
            " setup=true"
        )


def _put_ism_policy(sink: ElasticsearchSink, path: str, body: dict[str, Any]) -> None:
    """ISM policies are versioned: an update needs the current seq_no and primary_term."""
    assert sink.http is not None
    status, current = sink.http.request("GET", path)
    if status == 200:
        if current.get("policy", {}).get("states") == body["policy"]["states"]:
            return
        path += f"?if_seq_no={current['_seq_no']}&if_primary_term={current['_primary_term']}"
    sink.call("PUT", path, body)


def _bootstrap_alias(sink: ElasticsearchSink, alias: str) -> bool:
    assert sink.http is not None
    status, _ = sink.http.request("HEAD", f"_alias/{alias}")
    if status == 200:
        return False
    first = {"aliases": {alias: {"is_write_index": True}}}
    sink.call("PUT", f"{alias}-000001", first, ok=(400,))  # 400: it exists already
    return True


def run_setup(sink: ElasticsearchSink, say: Callable[[str], None]) -> SetupReport:
    """Connect, detect, install, verify: the ``setup`` subcommand."""
    sink.http = sink.make_http()
    try:
        sink.server = sink.detect()
        say(f"{sink.describe()}: {sink.server.name}")
        sink.mode = sink.resolve_mode()
        actions = install(sink, audit_alias=True)
        for action in actions:
            say(f"  {action}")
        sink.check_target()
        if sink.server.lifecycle is None:
            say("  (no ILM/ISM on this server: lifecycle policy not installed)")
        return SetupReport(sink.server.name, sink.mode, actions)
    finally:
        sink.close()


def rendered_files(flavour: str) -> dict[str, Any]:
    """The bodies of ``index-templates/<flavour>/`` (default index name, every mode): the
    events' (``kube-events``) and the audit documents' (``kube-events-audit``)."""
    files: dict[str, Any] = {}
    for render in (render_setup, render_audit_setup):
        index = "kube-events" if render is render_setup else audit_index("kube-events")
        for mode, suffix in (("data_stream", ""), ("dated", "-indices")):
            # Without the lifecycle setting, so that they install on any server; ``setup``
            # adds it.
            for _, path, body in render(flavour, "kube-events", mode, None):
                kind, _, name = path.partition("/")
                if kind == "_index_template":
                    files[f"index-template-{name}{suffix}.json"] = body
                elif kind == "_component_template":
                    files[f"component-template-{name}.json"] = body
        if flavour == "elasticsearch":
            files[f"ilm-policy-{index}.json"] = ILM_POLICY
        else:
            files[f"ism-policy-{index}.json"] = ism_policy(
                [index, f".ds-{index}-*", f"{index}-*"], index
            )
    return copy.deepcopy(files)

"""kubernetes-event-exporter's ``layout``: the body as a YAML tree whose strings are templates.

::

    layout:
      message: "{{ .Message }}"
      ts: "{{ .GetTimestampMs }}"
      object: {kind: "{{ .InvolvedObject.Kind }}", name: "{{ .InvolvedObject.Name }}"}

renders, for each event, to the JSON ``{"message":"...","object":{...},"ts":"..."}``, as the
original renders it (pkg/sinks/tmpl.go): every string is a Go template over the event, mappings
and lists are walked, any other value (a number, a boolean, null) becomes ``null``, keys come out
sorted, and the JSON is Go's (compact, ``<``, ``>`` and ``&`` escaped). ``layout: {}`` renders
``{}`` for every event, exactly as the original does (its issue #90). Every template is compiled
at start-up, so a typo is one line naming the key; an event on which a template fails at run
time is dead-lettered for that sink with the reason (the original drops it silently).
"""

from __future__ import annotations

from typing import Any

import orjson

from shipper.event import Event
from shipper.templates import Template, TemplateError, compile_template, event_context
from shipper.templates.gojson import encode


class Layout:
    """A compiled layout tree; :meth:`encode` gives the body for one event."""

    def __init__(self, tree: dict[str, Any], *, name: str = "layout") -> None:
        if not isinstance(tree, dict):
            raise ValueError("expected a mapping of keys to templates")
        self.tree = tree
        self._compiled = _compile(tree, name)

    def render(self, event: Event, cluster: str = "") -> Any:
        """The rendered tree (dicts, lists, strings and None). A layout is written for Events:
        an audit event (shipper/audit/) is its own document instead."""
        if event.kind == "audit":
            return orjson.loads(event.document_json(cluster))
        return _render(self._compiled, event_context(event, cluster))

    def render_context(self, data: Any) -> Any:
        """:meth:`render` for an event already made into template data (a notifier has it)."""
        return _render(self._compiled, data)

    def encode(self, event: Event, cluster: str = "") -> bytes:
        """The body as the original marshals it; TemplateError if a template fails. An audit
        event's is its own document (see :meth:`render`)."""
        if event.kind == "audit":
            return event.document_json(cluster)
        return self.encode_context(event_context(event, cluster))

    def encode_context(self, data: Any) -> bytes:
        """:meth:`encode` for an event already made into template data (a notifier has it)."""
        return encode(_render(self._compiled, data)).encode()

    def __repr__(self) -> str:
        return f"Layout({orjson.dumps(self.tree).decode()})"


def _compile(node: Any, path: str) -> Any:
    if isinstance(node, str):
        return compile_template(node, name=path)
    if isinstance(node, dict):
        return {str(key): _compile(value, f"{path}.{key}") for key, value in node.items()}
    if isinstance(node, list):
        return [_compile(item, f"{path}[{i}]") for i, item in enumerate(node)]
    return None  # numbers, booleans and null render as null, as in the original


def _render(node: Any, data: Any) -> Any:
    if isinstance(node, Template):
        return node.render(data)
    if isinstance(node, dict):
        return {key: _render(value, data) for key, value in node.items()}
    if isinstance(node, list):
        return [_render(item, data) for item in node]
    return None


def parse_layout(text: str) -> Layout:
    """A layout given as JSON text (``?layout={"m":"{{ .Message }}"}``, or a config file's
    ``layout:`` mapping, which the config reader passes as JSON)."""
    try:
        tree = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"expected a JSON object of templates ({exc})") from None
    try:
        return Layout(tree)
    except TemplateError as exc:
        raise ValueError(str(exc)) from None


parse_layout.__name__ = "layout"

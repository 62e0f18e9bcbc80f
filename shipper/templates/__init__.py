"""Go templates (text/template with the sprig v3 functions), rendered in a sandbox.

The strings users paste from kubernetes-event-exporter and kube-eventer configs
(``{{ .Reason }}``, ``{{ .InvolvedObject.Labels | toJson }}``, ``{{ .Message | trunc 200 }}``)
render here as Go renders them; tests/integration/test_template_conformance.py runs the same
templates through Go itself. Example::

    t = compile_template("{{ .Reason }} in {{ .InvolvedObject.Namespace | upper }}", name="message")
    t.render(event_context(event))           # "BackOff in SHOP"
    compile_template('{"n": {{ .Count }}, "m": "{{ .Message }}"}', name="body").render_json(data)

A parser and evaluator, not ``eval``: an event's text is data and is never run. The modules
follow Go's packages: lexer/parser (text/template/parse), exec and functions (text/template),
gofmt (fmt), gojson (encoding/json), gotime (time), sprig and sprig_more (sprig v3), and event
(kubernetes-event-exporter's EnhancedEvent).

Everything that can be checked before the first event is checked by :func:`compile_template`:
syntax, unknown functions and variables, and unknown fields where the type of ``.`` is known
(``.Reasn``: "unknown field .Reasn; did you mean .Reason?"). What can only go wrong at run time
(a function given the wrong type) is found by rendering sample events at start-up
(:func:`check_template`).

Not supported, deliberately: complex numbers; sprig's crypto and certificate functions
(``genCA``, ``bcrypt``, ``encryptAES``...), ``semver``, ``getHostByName`` (unknown functions
at start-up); function-valued fields for ``call`` (event data has none).
"""

from shipper.templates.event import event_context, sample_events
from shipper.templates.functions import FUNCTIONS
from shipper.templates.gofmt import go_str
from shipper.templates.gotime import GoTime
from shipper.templates.template import Template, check_template, compile_template
from shipper.templates.values import Struct, TemplateError

__all__ = [
    "FUNCTIONS",
    "GoTime",
    "Struct",
    "Template",
    "TemplateError",
    "check_template",
    "compile_template",
    "event_context",
    "go_str",
    "sample_events",
]

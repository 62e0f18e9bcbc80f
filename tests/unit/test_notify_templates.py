"""shipper/templates: the Go templates users paste, rendered in a sandbox.

What is shown: the field paths and functions of kube-eventer and kubernetes-event-exporter
configs render as Go renders them; every mistake that can be found before the first event is
a start-up error naming it; an event's text is data (``{{`` in a message is not run); JSON
bodies stay valid JSON whatever the text holds, with typed values where a value stands alone.
"""

from __future__ import annotations

import json

import pytest

from shipper.templates import TemplateError, check_template, compile_template, event_context
from tests.support.receivers import HOSTILE, event


def render(text: str, **kw) -> str:
    e = kw.pop("e", None) or event(message="Back-off restarting", ns="shop", obj="web-1", count=3)
    e.labels = {"app": "web", "app.kubernetes.io/name": "shop-web"}
    return compile_template(text, name="t").render(event_context(e, "prod"), **kw)


CASES = [
    ("{{ .Reason }}", "BackOff"),
    (
        "{{ .InvolvedObject.Namespace }}/{{ .InvolvedObject.Name }} ({{ .InvolvedObject.Kind }})",
        "shop/web-1 (Pod)",
    ),
    ("{{ .Message }} x{{ .Count }} [{{ .ClusterName }}]", "Back-off restarting x3 [prod]"),
    ("{{ .Source.Component }}@{{ .Source.Host }} {{ .Metadata.Name }}", "kubelet@node-a web-1.17c"),
    ("{{ .Type | upper }} {{ .Reason | lower }} {{ quote .Reason }}", 'WARNING backoff "BackOff"'),
    ('{{ .Action | default "none" }} {{ default "x" .Reason }}', "none BackOff"),
    (
        '{{ printf "%s/%s x%d %q %%" .InvolvedObject.Namespace .Reason .Count .Type }}',
        'shop/BackOff x3 "Warning" %',
    ),
    ('{{ if eq .Type "Warning" }}W{{ else if .Count }}C{{ else }}N{{ end }}', "W"),
    ("{{ if gt .Count 5 }}many{{ else }}few{{ end }}", "few"),
    (
        "{{ range $k, $v := .InvolvedObject.Labels }}{{ $k }}={{ $v }};{{ end }}",
        "app=web;app.kubernetes.io/name=shop-web;",
    ),
    (
        '{{ index .InvolvedObject.Labels "app.kubernetes.io/name" }} {{ .InvolvedObject.Labels.app }} [{{ .InvolvedObject.Labels.missing }}]',
        "shop-web web [<no value>]",  # Go prints a missing map key as <no value>
    ),
    (
        "{{ with .Source }}{{ .Component }}{{ end }}|{{ with .Action }}x{{ else }}no action{{ end }}",
        "kubelet|no action",
    ),
    (
        "{{ $r := .Reason }}{{ range .InvolvedObject.Labels }}{{ $r }}{{ $.Count }} {{ end }}",
        "BackOff3 BackOff3 ",
    ),
    ("a  {{- .Reason -}}  b {{/* comment */}}c", "aBackOffb c"),
    ("{{ toJson .InvolvedObject.Labels }}", '{"app":"web","app.kubernetes.io/name":"shop-web"}'),
    (
        '{{ .Message | trunc 4 }} {{ len .Reason }} {{ replace "-" "_" .Message | title }}',
        "Back 7 Back_off Restarting",  # Go's strings.Title: "_" does not start a word
    ),
    ('{{ urlquery "a b&c" }} {{ join "," (list) | default "-" }}', "a+b%26c -"),
    ('{{ (printf "%s!" .Reason) | lower }}', "backoff!"),
    (
        '{{ contains "off" .Message }} {{ hasPrefix "Back" .Reason }} {{ not true }} {{ and 1 0 }} {{ or 0 "y" }}',
        "true true false 0 y",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:40] for c in CASES])
def test_go_template_subset_renders_as_go_does(text, expected):
    assert render(text) == expected


def test_times_print_as_go_prints_them_and_format_with_go_layouts():
    e = event(at="2024-05-01T12:03:04.500000Z")
    data = event_context(e)
    assert (
        compile_template("{{ .LastTimestamp }}", name="t").render(data)
        == "2024-05-01 12:03:04.5 +0000 UTC"  # Go's Time.String shows a fraction of a second
    )
    layout = '{{ .LastTimestamp.Format "2006-01-02T15:04:05Z07:00" }} {{ .LastTimestamp.Format "Jan _2 03:04PM .000" }}'
    assert (
        compile_template(layout, name="t").render(data)
        == "2024-05-01T12:03:04Z May  1 12:03PM .500"
    )
    assert (
        compile_template(
            '{{ date "2006" .LastTimestamp.Time }} {{ .LastTimestamp.Unix }}', name="t"
        ).render(data)
        == "2024 1714564984"
    )


ERRORS = [
    ("{{ .Reasn }}", "line 1, col 4: unknown field .Reasn; did you mean .Reason?"),
    (
        "x\n  {{ .InvolvedObject.Kindd }}",
        "line 2, col 6: unknown field .Kindd; did you mean .Kind?",
    ),
    ("{{ .Source.Compnent }}", "unknown field .Compnent; did you mean .Component?"),
    ("{{ with .Source }}{{ .Hots }}{{ end }}", "unknown field .Hots; did you mean .Host?"),
    ("{{ $.Resaon }}", "unknown field .Resaon"),
    ("{{ .Reason | uppr }}", "unknown function 'uppr'; did you mean 'upper'?"),
    ("{{ sprig_exec .Message }}", "unknown function 'sprig_exec'"),
    ("{{ .Count.Value }}", "can't evaluate field .Value in type int"),
    ("{{ .LastTimestamp.Yeer }}", "unknown field .Yeer; did you mean .Year?"),
    ("{{ if .Reason }}x", "missing {{end}}"),
    ("{{ end }}", "unexpected {{end}}"),
    ("{{ .Reason ", "unclosed action"),
    ("{{ }}", "empty action"),
    ('{{ "unterminated }}', "unterminated string"),
    ('{{ template "x" }}', 'template "x" not defined'),
    ('{{ .Reason "arg" }}', None),  # found by rendering the samples, not by the parser
]


@pytest.mark.parametrize(("text", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_mistakes_are_start_up_errors_that_name_them(text, message):
    with pytest.raises(TemplateError) as caught:
        check_template(compile_template(text, name="--sink x: parameter message"))
    assert str(caught.value).startswith("--sink x: parameter message")
    if message is not None:
        assert message in str(caught.value)
    else:
        assert "Reason has arguments but cannot be invoked as function" in str(caught.value)


@pytest.mark.parametrize("text", HOSTILE)
def test_event_text_is_data_never_code(text):
    e = event(message=text)
    out = compile_template("[{{ .Message }}]", name="t").render(event_context(e))
    assert out == f"[{text}]"  # printed as is: "{{ .Reason }}" in a message is not evaluated


BODY = """{
  "text": "{{ .Reason }}: {{ .Message }}",
  "quoted": "say \\"{{ .Message }}\\" \\\\ ok",
  "count": {{ .Count }},
  "reason": {{ .Reason }},
  "labels": {{ toJson .InvolvedObject.Labels }},
  "bare_labels": {{ .InvolvedObject.Labels }},
  "missing": {{ .InvolvedObject.Labels.nope }},
  "flag": {{ eq .Type "Warning" }},
  "when": "{{ .LastTimestamp }}",
  "list": [{{ range $i, $v := .InvolvedObject.Labels }}{{ if $i }}{{ end }}"{{ $v }}",{{ end }} "end"]
}"""


@pytest.mark.parametrize("text", HOSTILE)
def test_json_bodies_are_valid_whatever_the_event_says(text):
    template = compile_template(BODY, name="body")
    check_template(template, json_body=True)
    e = event(message=text, count=7)
    e.labels = {"a": text, "b": "x"}
    body = json.loads(template.render_json(event_context(e)))
    assert body["text"] == f"BackOff: {text}"
    assert body["quoted"] == f'say "{text}" \\ ok'
    assert body["count"] == 7 and body["reason"] == "BackOff" and body["flag"] is True
    assert body["labels"] == {"a": text, "b": "x"} == body["bare_labels"]
    assert body["missing"] is None
    assert body["list"] == [text, "x", "end"]


def test_a_json_body_whose_own_structure_is_broken_is_refused_not_sent():
    broken = compile_template(
        '{"a": "{{ .Reason }}" "b": 1}', name="--sink webhook: parameter body"
    )
    with pytest.raises(TemplateError, match="the rendered body is not valid JSON"):
        check_template(broken, json_body=True)
    # kube-eventer's own default body (a missing comma) would have been caught at start-up
    kube_eventer_default = '{"EventType": "{{ .Type }}", "EventKind": "{{ .InvolvedObject.Kind }}"\n "EventReason": "{{ .Reason }}"}'
    with pytest.raises(TemplateError, match="not valid JSON"):
        check_template(compile_template(kube_eventer_default, name="body"), json_body=True)


def test_escape_applies_to_values_not_to_the_template_text():
    out = render(
        "<{{ .Message }}>",
        e=event(message="<!channel> & <b>"),
        escape=lambda s: s.replace("<", "&lt;"),
    )
    assert out == "<&lt;!channel> & &lt;b>>"

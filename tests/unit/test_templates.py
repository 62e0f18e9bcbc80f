"""shipper/templates without Go: behaviours users rely on, and errors that say where.

The conformance test (tests/integration/test_template_conformance.py) compares the engine with
Go itself; these are the fast checks of the same rules, with the expected text written out,
plus what only this project adds (start-up checks, JSON bodies, positions in messages).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shipper.templates import (
    TemplateError,
    check_template,
    compile_template,
    event_context,
    sample_events,
)
from tests.support.receivers import event


def render(text: str, data: object | None = None) -> str:
    if data is None:
        e = event(message="Back-off <restarting> & more", ns="shop", obj="web-1", count=3)
        e.labels = {"app": "web", "app.kubernetes.io/name": "shop-web"}
        data = event_context(e, "prod")
    return compile_template(text, name="t").render(data)


def fails(text: str, data: object | None = None) -> str:
    with pytest.raises(TemplateError) as caught:
        render(text, data)
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ .InvolvedObject.Labels.missing }}", "<no value>"),
        ('[{{ index .InvolvedObject.Labels "missing" }}]', "[]"),
        ('[{{ index (dict "a" 1) "missing" }}]', "[<no value>]"),
        (
            "{{ toJson .InvolvedObject.Labels }}",
            '{"app":"web","app.kubernetes.io/name":"shop-web"}',
        ),
        ("{{ toJson .Message }}", '"Back-off \\u003crestarting\\u003e \\u0026 more"'),
        ("{{ toRawJson .Message }}", '"Back-off <restarting> & more"'),
        ('{{ toPrettyJson (dict "a" (list 1 2)) }}', '{\n  "a": [\n    1,\n    2\n  ]\n}'),
        ("{{ 1e6 }} {{ 123456.0 }} {{ 0.00001 }} {{ 2.50 }}", "1e+06 123456 1e-05 2.5"),
        ('{{ print 1 2 "a" 3 }}|{{ println 1 "b" }}', "1 2a3|1 b\n"),
        (
            '{{ printf "%d %s" "x" 1 }} {{ printf "%d" }} {{ printf "%d" 1 2 }}',
            "%!d(string=x) %!s(int=1) %!d(MISSING) 1%!(EXTRA int=2)",
        ),
        ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", "2"),
        ('{{ range $i, $v := list "a" "b" }}{{ $i }}{{ $v }}{{ end }}', "0a1b"),
        (
            "{{ range list 1 2 3 4 }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ if eq . 4 }}{{ break }}{{ end }}{{ . }}{{ end }}",
            "13",
        ),
        ('{{ range $k, $v := dict "b" 2 "a" 1 }}{{ $k }}{{ $v }}{{ end }}', "a1b2"),
        ("{{ range 3 }}{{ . }}{{ end }}|{{ range .Labels }}x{{ else }}none{{ end }}", "012|none"),
        (
            '{{ define "o" }}{{ .Kind }}/{{ .Name }}{{ end }}{{ template "o" .InvolvedObject }}',
            "Pod/web-1",
        ),
        ('{{ block "b" .Reason }}[{{ . }}]{{ end }}', "[BackOff]"),
        ("{{ with .Action }}{{ . }}{{ else with .Reason }}<{{ . }}>{{ end }}", "<BackOff>"),
        ("{{ toString .Count | trunc 2 }}|{{ .Message | trunc (int .Count) }}", "3|Bac"),
        (
            '{{ add 1 2 }} {{ div 7 2 }} {{ mod -7 3 }} {{ add "0x10" 1 }} {{ mul 2 2.9 }}',
            "3 3 -1 17 4",
        ),
        (
            '{{ title "back_off restarting" }} {{ "KubeEventShipper" | snakecase }}',
            "Back_off Restarting kube_event_shipper",
        ),
        (
            "{{ typeOf .Count }} {{ typeOf .InvolvedObject.UID }} {{ typeOf . }}",
            "int32 types.UID *kube.EnhancedEvent",
        ),
        ('{{ .LastTimestamp.Time | date "2006-01-02 15:04" }}', "2024-05-01 12:03"),
        ('{{ .LastTimestamp.Format "Jan _2 03:04:05PM .000 MST" }}', "May  1 12:03:04PM .500 UTC"),
        (
            "{{ .GetTimestampMs }} {{ .GetTimestampISO8601 }}",
            "1714564984500 2024-05-01T12:03:04.500Z",
        ),
        ("{{ duration 90 }} {{ duration (int64 90) }}", "0s 1m30s"),
    ],
)
def test_renders_as_go_with_sprig_does(text: str, expected: str) -> None:
    e = event(message="Back-off <restarting> & more", ns="shop", obj="web-1", count=3, at="2024-05-01T12:03:04.500000Z")  # fmt: skip
    e.labels = {"app": "web", "app.kubernetes.io/name": "shop-web"}
    assert render(text, event_context(e, "prod")) == expected


def test_sprig_date_of_an_event_time_formats_now_as_in_go() -> None:
    """An Event's timestamps are v1.Time, not time.Time: sprig's date then formats the clock."""
    before = datetime.now(UTC).year
    year = render('{{ date "2006" .LastTimestamp }}')
    assert year in (str(before), str(datetime.now(UTC).year))
    assert render('{{ date "2006" .LastTimestamp.Time }}') == render("{{ .LastTimestamp.Year }}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "{{ trunc .Count .Message }}",
            "line 1, col 10: executing 't' at <.Count>: wrong type for value; expected int; got int32",
        ),
        ("{{ upper .InvolvedObject.Labels.missing }}", "invalid value; expected string"),
        (
            "x\n{{ keys .InvolvedObject.Labels }}",
            "line 2, col 9: executing 't' at <.InvolvedObject.Labels>: wrong type for value; expected map[string]interface {}; got map[string]string",
        ),
        (
            "{{ eq .Count 3.0 }}",
            "error calling eq: incompatible types for comparison: int32 and float64",
        ),
        ("{{ div 1 0 }}", "error calling div: runtime error: integer divide by zero"),
        ('{{ template "nope" }}', 'template "nope" not defined'),
        ("{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}", "line 1, col 39: undefined variable '$y'"),
        ("{{ break }}", "{{break}} outside {{range}}"),
        ('{{ .Reason | "x" }}', "non executable command in pipeline stage 2"),
        ("ab\n  {{ 1.5.2 }}", "line 2, col 9: unexpected '.2' in operand"),
        (
            '{{ define "a" }}1{{ end }}{{ define "a" }}2{{ end }}',
            "multiple definition of template 'a'",
        ),
        ('{{ regexFind "(" .Reason }}', "error calling regexFind: error parsing regexp"),
        ("{{ toUpper .Reason }}", "unknown function 'toUpper'; did you mean 'upper'?"),
        ("{{ .Source.Hots }}", "line 1, col 4: unknown field .Hots; did you mean .Host?"),
        ("{{ .LastTimestamp.Yeer }}", "unknown field .Yeer; did you mean .Year?"),
        ("{{ (.Source).Component.x }}", "can't evaluate field x in type string"),
    ],
)
def test_errors_say_what_and_where(text: str, message: str) -> None:
    text_of_error = fails(text)
    assert text_of_error.startswith("t: "), text_of_error
    assert message in text_of_error


def test_a_field_in_a_branch_never_taken_is_still_checked_at_start_up() -> None:
    """Go would only fail on the event that takes the branch; the engine says so at start-up."""
    with pytest.raises(TemplateError, match=r"unknown field \.Reasn"):
        compile_template('{{ if eq .Type "Never" }}{{ .Reasn }}{{ end }}', name="t")


def test_endless_template_recursion_is_an_error_not_a_crash() -> None:
    template = compile_template('{{ define "r" }}{{ template "r" . }}{{ end }}{{ template "r" . }}', name="t")  # fmt: skip
    with pytest.raises(TemplateError, match="t: "):
        template.render(event_context(sample_events()[0]))


def test_json_bodies_place_sprig_results_as_json_values() -> None:
    body = compile_template(
        '{"labels": {{ toJson .InvolvedObject.Labels }}, "n": {{ add .Count 1 }}, "missing":'
        ' {{ .InvolvedObject.Labels.nope }}, "src": {{ .Source }}, "t": "{{ .LastTimestamp }}",'
        ' "list": {{ list 1 "a" }}}',
        name="body",
    )
    check_template(body, json_body=True)
    e = event(count=2, at="2024-05-01T12:03:04Z")
    e.labels = {"a": "<b>"}
    parsed = json.loads(body.render_json(event_context(e)))
    assert parsed == {
        "labels": {"a": "<b>"}, "n": 3, "missing": None,
        "src": {"component": "kubelet", "host": "node-a"},
        "t": "2024-05-01 12:03:04 +0000 UTC", "list": [1, "a"],
    }  # fmt: skip


def test_the_whole_event_prints_and_encodes_as_the_go_struct_does() -> None:
    e = sample_events()[1]
    data = event_context(e)
    encoded = json.loads(render("{{ toJson . }}", data))
    assert list(encoded) == [
        "kind", "apiVersion", "metadata", "reason", "source", "firstTimestamp", "lastTimestamp",
        "count", "type", "eventTime", "reportingComponent", "reportingInstance", "clusterName",
        "involvedObject",
    ]  # fmt: skip
    assert encoded["eventTime"] is None and "labels" not in encoded["involvedObject"]
    assert encoded["involvedObject"] == {"kind": "Node", "name": "node-a", "uid": "u", "apiVersion": "v1", "resourceVersion": "9", "deleted": False}  # fmt: skip
    printed = render("{{ .InvolvedObject }}", data)
    assert printed == "{{Node  node-a u v1 9 } map[] map[] [] false}"


def test_project_extensions_read_but_are_not_go_fields() -> None:
    """.Metadata, .Note, .Regarding: this project's names, absent from Go's struct and output."""
    assert render("{{ .Metadata.Name }} {{ .Note }} {{ .Regarding.Kind }}") == (
        "web-1.17c Back-off <restarting> & more Pod"
    )
    assert "Metadata" not in render('{{ printf "%+v" . }}')

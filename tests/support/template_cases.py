"""The template conformance table: templates, the events they run on, and how to render them.

Shared by tests/unit/test_template_vectors.py (the engine against Go's recorded answers, in
process) and tests/integration/test_template_conformance.py (Go itself, built from
tests/gotemplate, gives those answers: the recording is checked against it on every run).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipper.event import normalize
from shipper.templates import TemplateError, compile_template, event_context

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "tests" / "gotemplate"
CACHE = (
    Path(os.environ.get("KES_STACK_CACHE", Path.home() / ".cache" / "kube-event-shipper-stack"))
    / "gotemplate"
)
ENV_NAME, ENV_VALUE = "KES_TEMPLATE_TEST", "from-the-environment"

MESSAGE = 'Back-off restarting failed container "web" <x> & more\ttab é 🔥'
EVENT = {
    "kind": "Event", "apiVersion": "v1",
    "metadata": {"name": "web-1.17c8a", "namespace": "shop", "uid": "e-uid-1", "resourceVersion": "4711", "creationTimestamp": "2024-05-01T11:00:00Z"},
    "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "web-1", "uid": "pod-uid-1", "apiVersion": "v1", "resourceVersion": "99", "fieldPath": "spec.containers{web}",
                       "labels": {"app": "web", "app.kubernetes.io/name": "shop-web", "owner": "team-a"}, "annotations": {"note": "<b>&"}},
    "reason": "BackOff", "message": MESSAGE, "source": {"component": "kubelet", "host": "node-a"},
    "firstTimestamp": "2024-05-01T11:00:00Z", "lastTimestamp": "2024-05-01T12:03:04Z", "count": 3, "type": "Warning",
    "eventTime": None, "reportingComponent": "kubelet", "reportingInstance": "node-a", "clusterName": "prod",
}  # fmt: skip
NODE_EVENT = {
    "kind": "Event", "apiVersion": "v1",
    "metadata": {"name": "node-a.17c9", "namespace": "default", "uid": "e-uid-2", "resourceVersion": "12", "creationTimestamp": "2024-02-29T23:59:59Z"},
    "involvedObject": {"kind": "Node", "name": "node-a", "uid": "node-a", "apiVersion": "v1"},
    "reason": "NodeReady", "message": "", "source": {"component": "kubelet"}, "action": "Ready",
    "firstTimestamp": "2024-02-29T23:59:59Z", "lastTimestamp": "2024-02-29T23:59:59Z", "count": 1, "type": "Normal",
    "eventTime": "2024-02-29T23:59:58.123456Z", "reportingComponent": "", "reportingInstance": "",
}  # fmt: skip


@dataclass(frozen=True)
class Case:
    template: str
    event: dict[str, Any] | None = None
    data: Any = None
    shape: bool = False


def E(template: str, event: dict[str, Any] = EVENT) -> Case:
    return Case(template, event=event)


def N(template: str) -> Case:
    return Case(template, event=NODE_EVENT)


def D(template: str, data: Any) -> Case:
    return Case(template, data=data)


def S(template: str) -> Case:
    return Case(template, event=EVENT, shape=True)


# fmt: off
CASES = [
    # fields of the event, as kubernetes-event-exporter exposes them
    E("{{ .Reason }}"),
    E("{{ .Message }}"),
    E("{{ .Type }} {{ .Count }} {{ .ClusterName }}"),
    E("{{ .InvolvedObject.Kind }}/{{ .InvolvedObject.Namespace }}/{{ .InvolvedObject.Name }}"),
    E("{{ .InvolvedObject.UID }} {{ .InvolvedObject.APIVersion }} {{ .InvolvedObject.ResourceVersion }} {{ .InvolvedObject.FieldPath }}"),
    E("{{ .Source.Component }}@{{ .Source.Host }}"),
    E("{{ .Name }} {{ .Namespace }} {{ .UID }} {{ .ResourceVersion }}"),
    E("{{ .ObjectMeta.Name }} {{ .ObjectMeta.CreationTimestamp }} {{ .Kind }} {{ .APIVersion }}"),
    E("{{ .ReportingController }} {{ .ReportingInstance }} [{{ .Action }}]"),
    E("{{ .FirstTimestamp }} | {{ .LastTimestamp }} | {{ .EventTime }}"),
    N("{{ .EventTime }} {{ .Action }} [{{ .InvolvedObject.Namespace }}] {{ .InvolvedObject.Labels }} {{ .Source }}"),
    E("{{ .InvolvedObject.Labels }} {{ .InvolvedObject.Annotations }}"),
    E("{{ .InvolvedObject.Labels.app }} [{{ .InvolvedObject.Labels.missing }}] {{ .InvolvedObject.Labels.missing.deeper }}"),
    E('{{ index .InvolvedObject.Labels "app.kubernetes.io/name" }} [{{ index .InvolvedObject.Labels "missing" }}]'),
    E("{{ .Source }} {{ .InvolvedObject }}"),
    E("{{ . }}"),
    N("{{ . }}"),
    E("{{ .Labels }} {{ .Annotations }} {{ .Event.Reason }}"),
    E("{{ .Reasn }}"),
    E("{{ .Reason.Foo }}"),
    E("{{ .InvolvedObject.Labels.app.x }}"),
    # methods
    E("{{ .GetTimestampMs }} {{ .GetTimestampISO8601 }}"),
    N("{{ .GetTimestampMs }} {{ .GetTimestampISO8601 }}"),
    E('{{ .LastTimestamp.Format "2006-01-02T15:04:05Z07:00" }} {{ .LastTimestamp.Format "Jan _2 03:04:05PM .000 MST Monday 06 002" }}'),
    N('{{ .EventTime.Format "2006-01-02 15:04:05.000000 -07:00" }} {{ .EventTime.Format "15:04:05.999" }}'),
    E("{{ .LastTimestamp.Unix }} {{ .LastTimestamp.UnixMilli }} {{ .LastTimestamp.Year }} {{ .LastTimestamp.Month }} {{ .LastTimestamp.Day }}"),
    E("{{ .LastTimestamp.Weekday }} {{ .LastTimestamp.YearDay }} {{ .LastTimestamp.Hour }}:{{ .LastTimestamp.Minute }}:{{ .LastTimestamp.Second }}"),
    E("{{ .EventTime.IsZero }} {{ .LastTimestamp.IsZero }} {{ .LastTimestamp.UTC }} {{ .LastTimestamp.Time }}"),
    E("{{ .DeDot.InvolvedObject.Labels }} {{ .InvolvedObject.Labels }}"),
    E("{{ .ToJSON | toString }}"),
    E("{{ .LastTimestamp.Yeer }}"),
    E('{{ .Reason.Format "x" }}'),
    # JSON
    E("{{ toJson . }}"),
    N("{{ toJson . }}"),
    E("{{ toJson .InvolvedObject }} {{ toJson .Source }} {{ toJson .Labels }}"),
    E("{{ toPrettyJson .InvolvedObject.Labels }}"),
    E("{{ toJson .Message }} {{ toRawJson .Message }} {{ mustToJson .Count }}"),
    E("{{ toJson .LastTimestamp }} {{ toJson .EventTime }} {{ toJson .LastTimestamp.Time }}"),
    D('{{ toJson (dict "a" 1 "b" (list 1.5 "x" nil true) "c" "<&>") }}', None),
    D('{{ toPrettyJson (dict "a" 1 "b" (list) "c" (dict) "d" (list 1 (dict "e" nil))) }}', None),
    D("{{ toJson (list 1e21 1e20 0.000001 0.0000001 100.0 1.5 -0.0) }}", None),
    D('{{ fromJson "{\\"a\\":[1,2,{\\"b\\":null}],\\"c\\":\\"x\\"}" }}', None),
    D('{{ (fromJson "{\\"n\\": 3}").n }} {{ add (fromJson "{\\"n\\": 3}").n 1 }} [{{ fromJson "not json" }}]', None),
    D('{{ mustFromJson "not json" }}', None),
    # pipelines, variables, parentheses
    E('{{ .Reason | printf "%s!" | upper }}'),
    E("{{ $r := .Reason }}{{ $r }}-{{ $r | lower }}"),
    E("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ $y := 3 }}{{ end }}{{ $x }}"),
    E("{{ if true }}{{ $y := 3 }}{{ end }}{{ $y }}"),
    E("{{ with $s := .Source }}{{ $s.Host }}{{ end }}"),
    E('{{ (printf "%s/%s" .InvolvedObject.Namespace .InvolvedObject.Name) | quote }} {{ (.Source).Component }}'),
    E("{{ $.Reason }}{{ with .Source }}{{ $.Count }}{{ .Component }}{{ end }}"),
    E("{{ $x }}"),
    E('{{ .Reason "arg" }}'),
    E('{{ .Reason | "x" }}'),
    E("{{ nil }}"),
    E("{{ }}"),
    E("{{ .Reason "),
    E('{{ "unterminated }}'),
    E("{{ 3 | printf }}"),
    # control structures
    E('{{ if eq .Type "Warning" }}W{{ else if eq .Type "Normal" }}N{{ else }}?{{ end }}'),
    N('{{ if eq .Type "Warning" }}W{{ else if eq .Type "Normal" }}N{{ else }}?{{ end }}'),
    E("{{ if and .Count (gt .Count 2) }}many{{ end }} {{ if or .Action .Reason }}{{ or .Action .Reason }}{{ end }} {{ if not .Action }}no action{{ end }}"),
    E("{{ with .Action }}{{ . }}{{ else }}none{{ end }} {{ with .Action }}a{{ else with .Reason }}{{ . }}{{ end }}"),
    E("{{ range $k, $v := .InvolvedObject.Labels }}{{ $k }}={{ $v }};{{ end }}"),
    E("{{ range .InvolvedObject.Labels }}[{{ . }}]{{ end }} {{ range .Labels }}x{{ else }}no labels{{ end }}"),
    E('{{ range $i, $e := list "a" "b" "c" }}{{ $i }}{{ $e }}{{ end }} {{ range $v := list 1 2 }}{{ $v }}{{ end }}'),
    E("{{ range $i := 3 }}{{ $i }}{{ end }} {{ range .Count }}<{{ . }}>{{ end }} {{ range 0 }}x{{ else }}empty{{ end }}"),
    E("{{ range list 1 2 3 4 5 }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ if eq . 4 }}{{ break }}{{ end }}{{ . }}{{ end }}"),
    E("{{ $n := 0 }}{{ range list 1 2 3 }}{{ $n = add $n . }}{{ end }}{{ $n }}"),
    E('{{ range $i, $v := dict "b" 2 "a" 1 }}{{ $i }}{{ $v }}{{ end }}'),
    E("{{ range $i, $v := 3 }}{{ $v }}{{ end }}"),
    E('{{ range "abc" }}{{ . }}{{ end }}'),
    E("{{ break }}"),
    E("{{ if }}{{ end }}"),
    E("{{ if .Reason }}x"),
    E("{{ end }}"),
    E("{{ else }}"),
    E('{{ define "obj" }}{{ .Kind }}/{{ .Name }}{{ end }}{{ template "obj" .InvolvedObject }}'),
    E('{{ block "title" . }}[{{ .Reason }}]{{ end }} done'),
    E('{{ define "x" }}<{{ . }}>{{ end }}{{ template "x" }}{{ template "x" 42 }}'),
    E('{{ define "rec" }}{{ if gt . 0 }}{{ . }}{{ template "rec" sub . 1 }}{{ end }}{{ end }}{{ template "rec" 3 }}'),
    E('{{ template "missing" }}'),
    E('{{ define "a" }}1{{ end }}{{ define "a" }}2{{ end }}'),
    E('{{ if true }}{{ define "x" }}{{ end }}{{ end }}'),
    # whitespace trimming and comments
    E("a  {{- .Reason -}}  b\n{{- .Count }}"),
    E("a {{/* comment */}} b {{- /* trimmed */ -}} c {{- /* multi\nline */}}"),
    E("{{ -3 }} {{- 5 }} {{-3}}"),
    E("{{ /* not a comment */ }}"),
    # constants
    E("{{ 1.5 }} {{ 1e6 }} {{ 0x1F }} {{ 'a' }} {{ 1_000 }} {{ 3.0 }} {{ 0o17 }} {{ 0b101 }} {{ 017 }}"),
    E('{{ "a\\tb\\u00e9" }} {{ `raw\\n` }} {{ true }} {{ false }}'),
    E("{{ 100000.0 }} {{ 1234567.0 }} {{ 0.0001 }} {{ 0.00001 }} {{ -2.5 }} {{ 1e100 }}"),
    E("{{ 99999999999999999999 }}"),
    E("{{ 1.5.2 }}"),
    # comparisons across types
    E("{{ eq .Count 3 }} {{ ne .Count 3 }} {{ lt .Count 5 }} {{ le .Count 3 }} {{ gt .Count 3 }} {{ ge .Count 3 }}"),
    E('{{ eq .Reason "BackOff" "Failed" }} {{ eq .Reason "x" "y" }} {{ eq .InvolvedObject.UID "pod-uid-1" }} {{ eq nil nil }}'),
    E("{{ eq .Count 3.0 }}"),
    E('{{ lt "a" "b" }} {{ lt 1.5 2.5 }} {{ eq 1.0 1.0 }} {{ eq (int64 3) 3 }} {{ eq .Count (add 1 2) }}'),
    E("{{ lt true false }}"),
    E('{{ lt 1 "a" }}'),
    E("{{ eq .InvolvedObject.Labels .InvolvedObject.Labels }}"),
    E('{{ eq .InvolvedObject.Labels.missing "x" }} {{ eq .InvolvedObject.Labels.missing nil }}'),
    E("{{ eq 1 }}"),
    # sprig: strings
    E("{{ .Message | trunc 10 }} | {{ trunc -5 .Message }} | {{ trunc 100 .Reason }}"),
    E('{{ .Reason | upper }} {{ .Reason | lower }} {{ "hello world-wide web_x" | title }} {{ "Hello World" | untitle }}'),
    E('{{ replace "-" "_" .InvolvedObject.Name }} {{ replace "" "." "ab" }}'),
    E('{{ "  x  " | trim }}|{{ trimPrefix "Back" .Reason }}|{{ trimSuffix "Off" .Reason }}|{{ trimAll "Bf" .Reason }}'),
    E('{{ contains "Off" .Reason }} {{ hasPrefix "Back" .Reason }} {{ hasSuffix "x" .Reason }}'),
    E('{{ repeat 3 "ab" }} {{ substr 0 4 .Reason }} {{ substr 2 -1 .Reason }} {{ nospace "a b\\tc" }}'),
    E('{{ "KubeEventShipper" | snakecase }} {{ "kube_event-shipper" | camelcase }} {{ "KubeEventShipper" | kebabcase }} {{ "HTTPServer2Go" | snakecase }} {{ "pod CrashLoop backOff" | camelcase }}'),
    E('{{ quote .Reason .Count nil }} {{ squote .Reason 1.5 }} {{ cat "a" 1 nil "b" }} {{ quote .Message }}'),
    E('{{ indent 2 "a\\nb" }}|{{ nindent 4 .Reason }}'),
    E('{{ join "," (list "a" "b" 3) }} {{ splitList "-" .InvolvedObject.Name }} {{ (split "-" .InvolvedObject.Name)._0 }} {{ splitn "." 2 "a.b.c" }}'),
    E('{{ toString .Count }} {{ toStrings (list 1 "a" nil) }} {{ toString .LastTimestamp.Month }} {{ sortAlpha (list "b" "a" "C") }}'),
    E('{{ plural "pod" "pods" 1 }} {{ plural "pod" "pods" (int .Count) }}'),
    E('{{ plural "pod" "pods" .Count }}'),
    E('{{ abbrev 8 .Message }} {{ abbrevboth 5 10 "1234567890abcdefgh" }} {{ initials "kube event shipper" }} {{ swapcase "AbC" }}'),
    E('{{ wrap 10 "the quick brown fox jumps over" }}|{{ wrapWith 5 "<br>" "ab cdefghij k" }}'),
    E('{{ .Message | b64enc }} {{ "aGVsbG8=" | b64dec }} {{ "bad!" | b64dec }} {{ b32enc "hi" }} {{ b32dec "NBUQ====" }}'),
    E('{{ sha256sum .Reason }} {{ sha1sum "x" }} {{ sha512sum "" | trunc 16 }} {{ adler32sum "x" }}'),
    E('{{ regexMatch "^Back" .Reason }} {{ regexFind "[0-9]+" "abc123def45" }} {{ regexReplaceAll "o(f+)" .Reason "0${1}x" }}'),
    E('{{ regexSplit "-" .InvolvedObject.Name -1 }} {{ regexFindAll "[a-z]" "a1b2c3" 2 }} {{ regexReplaceAllLiteral "f" .Reason "$1" }} {{ regexQuoteMeta "a.b*c" }}'),
    E('{{ regexReplaceAll "x*" "abc" "-" }} {{ regexSplit "" "abc" -1 }} {{ regexMatch "(" "x" }} {{ regexReplaceAll "(?P<first>\\\\w+) (\\\\w+)" "hello world" "$2 ${first}" }}'),
    E('{{ regexFind "(" "x" }}'),
    E("{{ trunc .Count .Message }}"),
    E("{{ upper .Count }}"),
    E("{{ .InvolvedObject.Labels.missing | upper }}"),
    E('{{ trunc "5" .Message }}'),
    E('{{ repeat -1 "x" }}'),
    E('{{ substr 5 2 "abcdef" }}'),
    # sprig: defaults and flow
    E('{{ .Action | default "none" }} {{ default "x" .Reason }} {{ default 5 0 }} {{ default "d" .InvolvedObject.Labels.missing }}'),
    E("{{ empty .Action }} {{ empty .Reason }} {{ empty 0 }} {{ empty (list) }} {{ empty .Source }} {{ empty .LastTimestamp }} {{ empty nil }}"),
    E('{{ coalesce .Action "" .Reason }} {{ ternary "yes" "no" (eq .Type "Warning") }} {{ all 1 "a" }} {{ any 0 "" }} {{ coalesce 0 "" }}'),
    E('{{ fail "stop here" }}'),
    E('{{ hello }} {{ env "KES_TEMPLATE_TEST" }} {{ expandenv "x-$KES_TEMPLATE_TEST-${KES_TEMPLATE_TEST}" }}'),
    # sprig: math
    E("{{ add 1 2 3 }} {{ add1 .Count }} {{ sub 10 .Count }} {{ mul 2 3 4 }} {{ div 7 2 }} {{ mod 7 3 }} {{ div -7 2 }} {{ mod -7 3 }}"),
    E('{{ max 1 5 3 }} {{ min 4 2 8 }} {{ add "3" 1 }} {{ add 1.9 1 }} {{ add "0x10" "010" "1.0" "1.5" true nil }} {{ biggest 2 9 }}'),
    E("{{ div 1 0 }}"),
    E('{{ floor 1.7 }} {{ ceil 1.2 }} {{ round 3.14159 2 }} {{ round 2.5 0 }} {{ round 2.4 0 }} {{ round -1.5 0 }} {{ floor "2.5" }}'),
    E("{{ addf 1.5 2.25 }} {{ subf 10 0.1 }} {{ mulf 1.1 3 }} {{ divf 10 3 }} {{ maxf 1 2.5 }} {{ minf 1 2.5 }} {{ add1f 1.5 }} {{ addf 0.1 0.2 }}"),
    E('{{ int "42" }} {{ int64 "0x1F" }} {{ float64 "1.5" }} {{ atoi "12" }} {{ int 3.9 }} {{ int "abc" }} {{ atoi "1.5" }} {{ int64 "5.00" }} {{ toDecimal "0777" }}'),
    E("{{ until 3 }} {{ untilStep 0 10 3 }} {{ untilStep 5 0 -2 }} {{ seq 5 }} {{ seq 1 2 7 }} {{ seq 3 1 }} {{ until -2 }}"),
    E('{{ mul .Count 1000 }} {{ div .GetTimestampMs 1000 }} {{ printf "%.2f" (divf .Count 7) }} {{ len (until 4) }}'),
    E("{{ divf 1 0 }}"),
    # sprig: lists and dicts
    E('{{ list 1 "a" nil 2.5 true }} {{ tuple 1 2 }}'),
    E("{{ first (list 1 2 3) }} {{ last (list 1 2 3) }} {{ rest (list 1 2 3) }} {{ initial (list 1 2 3) }} {{ first (list) }} {{ rest (list) }} {{ toJson (rest (list)) }}"),
    E('{{ append (list 1 2) 3 }} {{ prepend (list 1 2) 0 }} {{ reverse (list 1 2 3) }} {{ uniq (list 1 1 2 "1") }} {{ compact (list 0 1 "" "a" nil) }}'),
    E('{{ has 2 (list 1 2) }} {{ has "2" (list 1 2) }} {{ without (list 1 2 3 2) 2 }} {{ slice (list 1 2 3 4) 1 3 }} {{ slice (list 1 2 3) 1 }} {{ concat (list 1) (list 2 3) }}'),
    E('{{ $d := dict "b" 2 "a" 1 }}{{ $d }} {{ get $d "a" }} [{{ get $d "z" }}] {{ hasKey $d "b" }} {{ keys $d | sortAlpha }} {{ values (dict "x" 1) }}'),
    E('{{ $d := dict "a" 1 "b" 2 "c" 3 }}{{ pick $d "a" "c" }} {{ omit $d "a" }} {{ set $d "d" 4 }} {{ unset $d "a" }} {{ $d }} {{ dict "odd" }}'),
    E('{{ merge (dict "a" 1 "n" (dict "x" 1)) (dict "a" 2 "b" 3 "n" (dict "y" 2)) }} {{ mergeOverwrite (dict "a" 1) (dict "a" 2 "b" 3) }}'),
    E('{{ dig "a" "b" "none" (dict "a" (dict "b" "found")) }} {{ dig "a" "x" "none" (dict "a" (dict "b" 1)) }} {{ pluck "a" (dict "a" 1) (dict "b" 2) (dict "a" 3) }}'),
    E("{{ chunk 2 (list 1 2 3 4 5) }} {{ deepEqual (list 1 2) (list 1 2) }} {{ deepEqual 1 (int64 1) }}"),
    E('{{ index (list 1 2 3) 1 }} {{ index (dict "a" (list 5 6)) "a" 1 }} {{ index "abc" 1 }} [{{ index (dict) "x" }}]'),
    E("{{ len .Message }} {{ len .InvolvedObject.Labels }} {{ len (list 1 2) }} {{ len .Labels }}"),
    E("{{ index (list 1 2) 5 }}"),
    E("{{ len .Count }}"),
    E("{{ keys .InvolvedObject.Labels }}"),
    E('{{ hasKey .InvolvedObject.Labels "app" }}'),
    E("{{ first .Reason }}"),
    E("{{ slice .Reason 1 3 }}"),
    E("{{ index .InvolvedObject.Labels 1 }}"),
    # reflection
    E("{{ typeOf .Count }} {{ typeOf .Reason }} {{ typeOf .LastTimestamp }} {{ typeOf .EventTime }} {{ typeOf (list) }} {{ typeOf (dict) }} {{ typeOf 1.5 }} {{ typeOf 1 }}"),
    E('{{ typeOf .InvolvedObject.Labels }} {{ typeOf .InvolvedObject.UID }} {{ typeOf . }} {{ typeOf .Source }} {{ typeOf nil }} {{ typeOf (add 1 1) }} {{ typeOf (splitList "," "a") }}'),
    E('{{ kindOf .Count }} {{ kindOf . }} {{ kindOf .Source }} {{ kindOf (list) }} {{ kindIs "string" .Reason }} {{ typeIs "int32" .Count }} {{ typeIsLike "kube.EnhancedEvent" . }}'),
    # dates (Go formats; sprig's date reads only time.Time and Unix seconds)
    E('{{ date "2006-01-02" .LastTimestamp.Time }} {{ .LastTimestamp.Time | date "15:04" }} {{ htmlDate .LastTimestamp.Time }}'),
    E('{{ dateInZone "2006-01-02 15:04 MST -0700" .LastTimestamp.Time "America/New_York" }} {{ dateInZone "15:04 MST" .LastTimestamp.Time "Nope/Zone" }} {{ htmlDateInZone .LastTimestamp.Time "Asia/Tokyo" }}'),
    E('{{ date "2006-01-02T15:04:05Z07:00" 0 }} {{ date "2006" (int64 1700000000) }} {{ date "2006-01-02" 1714565000 }}'),
    E('{{ unixEpoch .LastTimestamp.Time }} {{ toDate "2006-01-02" "2024-02-29" }} {{ toDate "2006-01-02" "bad" }} {{ toDate "02/01/2006 15:04" "31/12/2023 23:59" | date "Mon Jan 2" }}'),
    E('{{ dateModify "1h30m" .LastTimestamp.Time }} {{ dateModify "bad" .LastTimestamp.Time }} {{ mustDateModify "-24h" .LastTimestamp.Time | date "2006-01-02" }}'),
    E('{{ duration 90 }} {{ duration (int64 3725) }} {{ duration "59" }} {{ durationRound "2h10m" }} {{ durationRound (int64 90000000000) }} {{ durationRound "bad" }}'),
    E('{{ mustToDate "2006-01-02" "nope" }}'),
    E("{{ unixEpoch .LastTimestamp }}"),
    E('{{ .LastTimestamp.Time.Format "Monday, 02-Jan-06 15:04:05 MST" }} {{ (toDate "2006-01-02T15:04:05Z07:00" "2024-05-01T12:00:00+02:00").UTC }}'),
    S("{{ now }}"),
    S('{{ now | date "2006-01-02T15:04:05" }} {{ now | unixEpoch }} {{ now.Year }}'),
    S('{{ date "2006-01-02" .LastTimestamp }} {{ .FirstTimestamp | date "2006-01-02T15:04:05Z" }}'),
    S("{{ ago .LastTimestamp.Time }} {{ durationRound .LastTimestamp.Time }}"),
    E('{{ len uuidv4 }} {{ len (randAlphaNum 8) }} {{ len (randAlpha 3) }} {{ len (randNumeric 4) }} {{ len (shuffle "abc") }}'),
    # paths and URLs
    E('{{ base "/a/b.txt" }} {{ dir "/a/b.txt" }} {{ ext "x.tar.gz" }} {{ clean "a//b/../c/" }} {{ isAbs "/x" }} {{ base "" }} {{ dir "x" }}'),
    E('{{ $u := urlParse "https://user:pw@example.com:8443/p/a?x=1#frag" }}{{ $u.scheme }} {{ $u.host }} {{ $u.hostname }} {{ $u.path }} {{ $u.query }} {{ $u.fragment }} {{ $u.userinfo }}'),
    E('{{ urlJoin (dict "scheme" "https" "host" "example.com" "path" "/a b" "query" "x=1") }}'),
    # fmt
    E('{{ printf "%d|%5d|%-5d|%05d|%x|%X|%o|%b|%c|%q|%v|%T" 42 42 42 -42 255 255 8 5 65 "hi" .Count .Count }}'),
    E('{{ printf "%s %10s|%-10s|%.3s %q" .Reason .Reason .Reason .Reason .Message }}'),
    E('{{ printf "%f %.2f %e %g %v %6.2f %+d %x" 3.14159 3.14159 1234.5678 0.000012 1e21 2.5 5 "hi" }}'),
    E('{{ printf "%d %s" "x" 1 }} {{ printf "%d" }} {{ printf "%d" 1 2 }} {{ printf "100%%" }} {{ printf "%z" 3 }}'),
    E('{{ printf "%v %+v %s" .Source .Source .LastTimestamp }} {{ printf "%t %v %s" true nil nil }}'),
    E('{{ print 1 2 "a" "b" 3 nil }} {{ println "x" 1 }} {{ print }}'),
    E('{{ html "<a href=\\"x\\">&\'</a>" }} {{ js "it\'s <b> \\"q\\" =" }} {{ urlquery "a b&c/é" }} {{ html .Count "<" }}'),
    E('{{ printf "%x % x %X %q" "hi" "hi" "hi" 97 }} {{ printf "%5t|%-6v|%3c" true 1.5 120 }}'),
    # real templates from kubernetes-event-exporter's README and issues
    E("Event {{ .Reason }} for {{ .InvolvedObject.Namespace }}/{{ .InvolvedObject.Name }} on K8s cluster"),
    E("{{ .UID }}"),
    E("<pre>{{ toPrettyJson . }}</pre>"),
    E("@{{ .InvolvedObject.Labels.owner }} @{{ .InvolvedObject.Labels.nobody }}"),
    E("kube-events-{{ .InvolvedObject.Namespace }}-{2006-01-02}"),
    E("{{ .GetTimestampISO8601 }}"),
    E("{{ toJson .InvolvedObject.Labels}}"),
    E('{"kind": "{{ .InvolvedObject.Kind }}", "createdAt": "{{ .GetTimestampMs }}", "count": "{{ .Count }}", "labels": "{{ toJson .InvolvedObject.Labels}}"}'),
    N("{{ .InvolvedObject.Labels.owner }}|{{ toJson .InvolvedObject.Labels }}|{{ .Source.Host }}"),
    E("{{- range $key, $value := .InvolvedObject.Labels }}\n{{ $key }}: {{ $value | quote }}\n{{- end }}"),
    E('{{ .Message | replace "\t" " " | abbrev 30 }} {{ .Reason | lower | replace "backoff" "back off" }}'),
    E('{{ if contains "Back" .Reason }}restart loop{{ end }} {{ if hasPrefix "OOM" .Reason }}oom{{ end }}'),
    E('{{ printf "%s" .InvolvedObject.UID }} {{ .Count | printf "%d times" }} {{ .Count | add 1 }} {{ len .InvolvedObject.Labels | printf "%d labels" }}'),
    E('{{ .LastTimestamp | toString }} {{ .Count | toString | len }} {{ "x" | eq "x" }} {{ .InvolvedObject.Labels | len }}'),
    E("{{ .InvolvedObject.Labels | toJson | b64enc }} {{ default \"unknown\" .InvolvedObject.Labels.team | upper }}"),
    E('{{ toYaml .InvolvedObject.Labels }}'),
    E('{{ include "x" . }}'),
    E('{{ .InvolvedObject.Kind | lower }}/{{ .InvolvedObject.Name }}{{ with .InvolvedObject.FieldPath }} ({{ . }}){{ end }}'),
    E('{{ $ns := .InvolvedObject.Namespace | default "cluster" }}{{ $ns }}: {{ .Reason }}{{ if gt (int .Count) 1 }} (x{{ .Count }}){{ end }}'),
    N('{{ $ns := .InvolvedObject.Namespace | default "cluster" }}{{ $ns }}: {{ .Reason }}{{ if gt (int .Count) 1 }} (x{{ .Count }}){{ end }}'),
    E('{{ .Type | eq "Warning" | ternary ":warning:" ":information_source:" }} {{ coalesce .InvolvedObject.Labels.team .InvolvedObject.Labels.owner "nobody" }}'),
    E("{{ len (randBytes 6) }} {{ randInt 5 6 }}"),
    E('{{ dict "cluster" .ClusterName "reason" .Reason "count" .Count "labels" .InvolvedObject.Labels | toJson }}'),
    E('{{ list .Reason .Type .Count | join "/" }} {{ .InvolvedObject.Name | splitList "-" | last }} {{ regexReplaceAll "-[0-9]+$" .InvolvedObject.Name "" }}'),
    S("{{ .FirstTimestamp.Time | ago }} {{ now | htmlDate }} {{ dateInZone \"2006\" (now) \"UTC\" }}"),
    # edge cases: fmt verbs, literals, sprig quirks
    E('{{ printf "%v %v %v" (list 1 "a") (dict "k" (list 1)) .Source }}'),
    E('{{ range $i, $x := list }}{{ $i }}{{ else }}empty{{ end }}{{ range $k, $v := dict }}x{{ else }}none{{ end }}'),
    E('{{ with dict "a" 1 }}{{ .a }}{{ end }} {{ with list }}x{{ else }}y{{ end }}'),
    E('{{ and 1 "" 3 }} {{ and 1 2 }} {{ or 0 "" }} {{ or (list) "x" }} {{ not .Source }} {{ and }}'),
    E('{{ .5 }} {{ +5 }} {{ -0 }} {{ 1e-7 }} {{ "\\U0001F525" }} {{ "\\x41" }} {{ \'\\n\' }} {{ printf "%c" \'é\' }}'),
    E('{{ len "é" }} {{ index "é" 0 }} {{ printf "%5.2q" "abc" }} {{ printf "%08.3f" -3.14159 }} {{ printf "%+.1e" 12345.0 }}'),
    E('{{ printf "%x" 3.5 }}'),
    E('{{ printf "%s" (list "a" "b") }} {{ printf "%d" (list 1 2) }} {{ printf "%q" (list "a") }} {{ printf "%v" (dict) }}'),
    E('{{ printf "%v" .InvolvedObject.Labels }} {{ printf "%s" .InvolvedObject.Labels }} {{ printf "%d" .Count }} {{ printf "%5v|" .Count }}'),
    E('{{ printf "%T %T %T %T" (list) (dict) nil .LastTimestamp.Time }}'),
    E('{{ printf "%6.2f|%-8.3s|%x" 1.0 "abcdef" -255 }}'),
    E('{{ $x := list 1 2 }}{{ $x = append $x 3 }}{{ $x }} {{ $d := dict }}{{ $_ := set $d "k" "v" }}{{ $d.k }}'),
    E('{{ range $i, $c := .InvolvedObject.Name }}{{ $c }}{{ end }}'),
    E('{{ index .InvolvedObject "Kind" }}'),
    E('{{ .InvolvedObject.Labels.app | len }} {{ .Message | len }}'),
    E('{{ "abc" | printf "%s-%s" "x" }}'),
    E('{{ printf "%[2]d %[1]d" 1 2 }}'),
    E('{{ printf "%*d|%-*d|" 5 42 4 7 }}'),
    E('{{ 0x1p-2 }} {{ 1.0e3 }} {{ 0X1F }} {{ 1E3 }}'),
    E("{{ 'ab' }}"),
    E('{{ with .Source }}{{ with .Host }}{{ . }}{{ $.Reason }}{{ end }}{{ end }}'),
    E('{{ $a := 1 }}{{ range list 1 2 }}{{ $b := . }}{{ $a = $b }}{{ end }}{{ $a }}'),
    E('{{ default (list 1) (list) }} {{ default (dict "a" 1) nil }} {{ default 0 false }} {{ default "x" .Source }}'),
    E('{{ toString nil }} {{ toString (list 1 nil) }} {{ quote nil }} {{ squote nil 1 }} {{ cat }}'),
    E('{{ title "hello   world\\tfoo-bar" }} {{ upper "straße" }} {{ lower "ÀÉ" }} {{ title "élan vital" }}'),
    E('{{ snakecase "simpleTest" }} {{ snakecase "ID" }} {{ snakecase "a1b2" }} {{ snakecase "PodSandboxChanged" }} {{ kebabcase "FailedScheduling" }} {{ camelcase "failed_scheduling" }} {{ camelcase "_a__b" }} {{ snakecase "already_snake" }}'),
    E('{{ abbrev 3 "abcdef" }} {{ abbrev 5 "abcdef" }} {{ trunc 0 "abc" }} {{ trunc -10 "abc" }} {{ substr -1 2 "abcdef" }} {{ substr 1 100 "abc" }}'),
    E('{{ split "" "abc" }} {{ splitList "," "" }} {{ splitn "," 0 "a,b" }} {{ splitn "," -1 "a,b,c" }} {{ join "-" "abc" }} {{ join "-" nil }}'),
    E('{{ int64 " 5" }} {{ int "1e3" }} {{ float64 "1e3" }} {{ float64 "abc" }} {{ int true }} {{ int nil }} {{ float64 "0x10" }} {{ int64 "-0x10" }} {{ int "08" }}'),
    E('{{ add 9223372036854775807 1 }} {{ mul 4294967296 4294967296 }} {{ max }}'),
    E('{{ round 1.005 2 }} {{ round 1234.5678 -2 }} {{ round 0.5 0 0.6 }} {{ ceil "x" }} {{ floor -0.5 }}'),
    E('{{ divf 2 3 }} {{ mulf 0.1 0.2 }} {{ subf 1 0.9 }} {{ addf }} {{ divf 1 3 3 }}'),
    E('{{ until 0 }} {{ untilStep 1 1 1 }} {{ seq 0 }} {{ seq 2 -1 }} {{ seq 5 -2 1 }} {{ seq }}'),
    E('{{ first "x" }}'),
    E('{{ uniq (list (list 1) (list 1)) }} {{ has (list 1) (list (list 1)) }} {{ without (list "a" 1) "a" }}'),
    E('{{ chunk 3 (list) }} {{ reverse (list) }} {{ compact (list) }} {{ concat }} {{ initial (list 1) }}'),
    E('{{ dict 1 2 }} {{ dict nil 1 }} {{ get (dict "a" nil) "a" }} {{ pluck "a" }} {{ keys }} {{ merge (dict) }}'),
    E('{{ regexFindAll "a*" "baaab" -1 }} {{ regexSplit "a*" "baaab" -1 }} {{ regexReplaceAll "a|" "baab" "-" }} {{ regexSplit "," "a,b,c" 2 }}'),
    E('{{ regexReplaceAll "(a)(b)?" "ab a" "[$1|$2|$3|$$|${1}x|$1x]" }}'),
    E('{{ b64dec "aGVsbG8" }} {{ b64dec "!!!" }} {{ b32dec "x" }}'),
    E('{{ toJson 1.0 }} {{ toJson 1e-7 }} {{ toJson "\\u2028<" }} {{ toJson (list "\\x01") }} {{ toRawJson (dict "a" "<>") }} {{ toPrettyJson (list) }} {{ toPrettyJson "x" }}'),
    E('{{ fromJson "[1, 2.5, \\"x\\", true, null]" }} {{ fromJson "12345678901234567890" }} {{ fromJson "{\\"b\\":1,\\"a\\":2}" }} {{ fromJson "" }}'),
    E('{{ typeOf (fromJson "[1]") }} {{ typeOf (until 2) }} {{ typeOf (toDate "2006" "2020") }} {{ typeOf now }} {{ typeOf (int64 1) }} {{ typeOf (int 1) }} {{ typeOf (float64 1) }} {{ typeOf .LastTimestamp.Month }} {{ typeOf .ToJSON }} {{ typeOf (split "," "a") }}'),
    E('{{ kindOf nil }} {{ kindOf .ToJSON }} {{ kindOf (int64 1) }} {{ kindOf .LastTimestamp }} {{ kindOf "x" }} {{ kindOf true }} {{ kindOf .InvolvedObject.Labels }}'),
    E('{{ date "Mon Jan _2 15:04:05 2006" .LastTimestamp.Time }} {{ date "3:04:05 pm" .LastTimestamp.Time }} {{ date ".999 ,000 .9" .LastTimestamp.Time }} {{ date "Z07 -07 -0700 Z0700 Z07:00:00" .LastTimestamp.Time }}'),
    E('{{ dateInZone "2006-01-02T15:04:05Z07:00 MST" .LastTimestamp.Time "Asia/Kolkata" }} {{ dateInZone "MST" .LastTimestamp.Time "Europe/Berlin" }} {{ dateInZone "2006" 0 "" }}'),
    E('{{ toDate "2006-01-02 15:04:05" "2024-13-01 00:00:00" }} {{ toDate "Jan 2, 2006 at 3:04pm (MST)" "Feb 3, 2013 at 7:54pm (PST)" }} {{ toDate "2006-01-02T15:04:05.000Z" "2024-05-01T12:00:00.123Z" }}'),
    E('{{ dateModify "-1.5h" .LastTimestamp.Time }} {{ dateModify "90m" .LastTimestamp.Time | date "15:04" }} {{ dateModify "1d" .LastTimestamp.Time }}'),
    E('{{ duration "3600" }} {{ duration "-61" }} {{ duration (int64 0) }} {{ duration (int64 86400) }} {{ duration 1.5 }} {{ durationRound "1.5s" }} {{ durationRound "-3h" }} {{ durationRound "800ms" }} {{ durationRound "30d" }}'),
    E('{{ .LastTimestamp.Add 3600000000000 }} {{ .LastTimestamp.AddDate 0 1 30 }} {{ .LastTimestamp.Time.Local }} {{ .LastTimestamp.Nanosecond }} {{ .LastTimestamp.UnixNano }} {{ .EventTime.Unix }} {{ .EventTime.UnixMilli }}'),
    E('{{ html "a\\x00b" }} {{ js "\\x01\\u2028é<" }} {{ urlquery "~-._ !*\'()" }} {{ js 1 "x" }} {{ html nil }} {{ urlquery nil 1 }}'),
    E('{{ base "/a/b/" }} {{ base "/" }} {{ dir "/a/b/" }} {{ dir "" }} {{ dir "/" }} {{ clean "//a/./b/../.." }} {{ ext ".bashrc" }} {{ ext "a/b" }} {{ clean "" }} {{ isAbs "" }}'),
    E('{{ urlParse "mailto:x@y" }} {{ urlParse "/just/path?q=1" }}'),
    E('{{ wrap 5 "abcdefghijkl mnop" }}|{{ wrap 0 "a b" }}|{{ wrapWith 3 "" "a b c d" }}'),
    E('{{ indent 0 "a" }}|{{ nindent 2 "" }}|{{ indent 2 "a\\n\\nb\\n" }}'),
    E('{{ nospace "é x" }} {{ initials "ébc déf" }} {{ swapcase "ßÀé" }} {{ untitle "ÀB cD" }}'),
    # edge cases: parsing, scoping, methods, builtins
    E('{{ .DeDot.GetTimestampMs }}'),
    E('{{ .DeDot.DeDot.Reason }} {{ .DeDot.InvolvedObject.Annotations }}'),
    E('{{ "a" }}{{- "b" -}}   {{ "c" }} {{- /* c */ -}} d'),
    E('{{- /* lead */ -}}   x'),
    E('{{ (index .InvolvedObject.Labels "app") }} {{ (dict "a" (dict "b" 1)).a.b }} {{ $x := dict "a" (dict "b" 2) }}{{ $x.a.b }}'),
    E('{{ range $v := .InvolvedObject.Labels }}{{ $v }},{{ end }} {{ $i := 0 }}{{ $v := "" }}{{ range $i, $v = list "p" "q" }}{{ end }}{{ $i }}{{ $v }}'),
    E('{{ $i, $v := list 1 }}'),
    E('{{ range $i, $v, $w := list 1 }}{{ end }}'),
    E('{{ "2006" | .LastTimestamp.Format }} {{ .LastTimestamp.Format "2006" | printf "%s!" }}'),
    E('{{ .LastTimestamp.Format }}'),
    E('{{ .GetTimestampMs 1 }}'),
    E('{{ .Source.Component.x }}'),
    E('{{ printf "%v" .LastTimestamp }} {{ printf "%s|%v" .EventTime .LastTimestamp.Month }} {{ printf "%d" .LastTimestamp.Month }}'),
    E('{{ print .LastTimestamp .Count }} {{ print . | len }}'),
    E('{{ .InvolvedObject.Labels.app | printf "%q" }} {{ index . "Reason" }}'),
    E('{{ with .InvolvedObject.Labels }}{{ .app }}{{ index . "app.kubernetes.io/name" }}{{ end }}'),
    E('{{ range .InvolvedObject.Labels }}{{ $.Reason }}{{ end }}'),
    E('{{ if and (eq .Type "Warning") (or (eq .Reason "BackOff") (eq .Reason "Failed")) }}alert{{ else }}skip{{ end }}'),
    E('{{ if eq .InvolvedObject.Kind "Pod" "Deployment" }}workload{{ end }}{{ if ne .InvolvedObject.Namespace "kube-system" }} user{{ end }}'),
    E('{{ template "t" }}'),
    E('{{ define "t" }}x{{ end }}y'),
    E('{{ define "template" }}override{{ end }}y'),
    E('{{ block "b" . }}{{ .Reason }}{{ end }}{{ define "b" }}<{{ .Count }}>{{ end }}'),
    E('{{ define "b" }}<{{ .Count }}>{{ end }}{{ block "b" . }}{{ .Reason }}{{ end }}'),
    E('{{ printf "%s" }}{{ printf "%!" }}{{ printf "%" }}{{ printf "%-" }}'),
    E('{{ printf "%v %v" 1 }} {{ printf "%.f|%.0f|%.3g" 2.5 3.5 1234.5678 }} {{ printf "%e" 0.0 }} {{ printf "%g" 100000000.0 }}'),
    E('{{ printf "%+q %#v %#x" "é" 1 255 }}'),
    E('{{ printf "%U %#U %c %q" 9731 9731 9731 9731 }}'),
    E('{{ 1 }}{{ 2 | print }}{{ "x" | print 3 }}'),
    E('{{ (1) }} {{ ("a") }} {{ (.Reason) }} {{ ((.Count)) }}'),
    E('{{ .InvolvedObject.Labels.app.Foo }}'),
    E('{{ $ }}'),
    E('{{ $.InvolvedObject.Kind }} {{ $.GetTimestampMs }}'),
    E('{{ .Count | eq 3 }} {{ .Count | lt 2 }} {{ .Reason | ne "x" }}'),
    E('{{ not }}'),
    E('{{ not 0 1 }}'),
    E('{{ len }}'),
    E('{{ index }}'),
    E('{{ index .InvolvedObject.Labels }}'),
    E('{{ index nil 1 }}'),
    E('{{ index (list 1 2) -1 }}'),
    E('{{ index (list 1 2) 2 }}'),
    E('{{ index (list (list 1 2)) 0 1 }} {{ index (dict "a" (dict "b" "c")) "a" "b" }}'),
    E('{{ html "<script>" | js }} {{ "a&b" | html | urlquery }}'),
    E('{{ "x" | printf "%s %s" "y" }} {{ printf "%d%%" 50 }}'),
]
# fmt: on

SHAPE = re.compile(r"\d+")
#: Go's answers for CASES, in order, recorded by the integration test (KES_RECORD_VECTORS=1).
VECTORS = SOURCE / "vectors.json"


def payload() -> list[dict[str, Any]]:
    """CASES as the Go program reads them."""
    return [
        {"template": c.template, **({"event": c.event} if c.event else {"data": c.data})}
        for c in CASES
    ]


def recorded() -> list[dict[str, Any]]:
    """The recording: [{"template": ..., "output"|"error": ...}, ...] in CASES order."""
    return json.loads(VECTORS.read_text())


def python_render(case: Case) -> dict[str, str]:
    """The shipper's engine on the same input: {"output": ...} or {"error": ...}."""
    if case.event is not None:
        event = normalize(case.event, "ADDED", case.event.get("clusterName", ""))
        event.labels = case.event["involvedObject"].get("labels")
        event.annotations = case.event["involvedObject"].get("annotations")
        data: Any = event_context(event)
    else:
        data = json.loads(json.dumps(case.data), parse_int=float)
    try:
        template = compile_template(
            case.template, name="template", data=data if data is not None else {}
        )
        return {"output": template.render(data)}
    except TemplateError as exc:
        return {"error": str(exc)}


def same(case: Case, expected: dict[str, str], got: dict[str, str]) -> str | None:
    """None if the engine's answer is Go's; else what differs, in words."""
    if "error" in expected:
        if "error" not in got:
            return f"Go fails with {expected['error']!r}, the engine renders {got.get('output')!r}"
        return None
    if "output" not in got:
        return f"Go renders {expected['output']!r}, the engine fails: {got['error']}"
    if case.shape:
        ok = SHAPE.sub("9", got["output"]) == SHAPE.sub("9", expected["output"])
    else:
        ok = got["output"] == expected["output"]
    return None if ok else f"Go renders {expected['output']!r}, the engine {got['output']!r}"

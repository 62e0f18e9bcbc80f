{{/* Names. */}}
{{- define "kes.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kes.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kes.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The namespace of every namespaced object: namespaceOverride, else the release's. */}}
{{- define "kes.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels: app.kubernetes.io/* on everything; the selector is the stable subset. */}}
{{- define "kes.ownLabels" -}}
helm.sh/chart: {{ include "kes.chart" . }}
{{ include "kes.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kube-event-shipper
{{- end }}

{{- define "kes.labels" -}}
{{- include "kes.labelsWith" (dict "ctx" . "extra" dict) }}
{{- end }}

{{/* The chart's labels, then `extra` (an object's own labels from values, e.g. service.labels),
  then commonLabels (values rendered with tpl), merged so that a key appears once: the chart's
  own (the selector among them) win, then extra, then commonLabels. */}}
{{- define "kes.labelsWith" -}}
{{- $labels := include "kes.ownLabels" .ctx | fromYaml }}
{{- $common := dict }}
{{- with .ctx.Values.commonLabels }}
{{- $common = tpl (toYaml .) $.ctx | fromYaml }}
{{- end }}
{{- toYaml (merge $labels (.extra | default dict) $common) }}
{{- end }}

{{- define "kes.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kes.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kes.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kes.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* REGISTRY/REPOSITORY:TAG[@DIGEST]: global.imageRegistry (a parent chart's, or a mirror's
  for every chart) wins over image.registry; an empty registry leaves the repository as it is,
  and so does a repository that names its registry itself (its first part has a dot or a colon or
  is localhost, which is how Docker and containerd tell a registry from a path). */}}
{{- define "kes.image" -}}
{{- $registry := .Values.image.registry -}}
{{- with .Values.global }}{{ with .imageRegistry }}{{ $registry = . }}{{ end }}{{ end -}}
{{- $repository := .Values.image.repository -}}
{{- $first := first (splitList "/" $repository) -}}
{{- $named := and (contains "/" $repository) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- if and $registry (not $named) }}{{ $repository = printf "%s/%s" (trimSuffix "/" $registry) $repository }}{{ end -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" $repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}
{{- end }}

{{/* global.imagePullSecrets then imagePullSecrets, each a name or {name: ...}, once each, as a
  list of {name: ...} in YAML ("" when there are none). */}}
{{- define "kes.imagePullSecrets" -}}
{{- $names := list }}
{{- $global := list }}
{{- with .Values.global }}{{ $global = .imagePullSecrets | default list }}{{ end }}
{{- range concat $global (.Values.imagePullSecrets | default list) }}
{{- if kindIs "string" . }}{{ $names = append $names . }}{{ else }}{{ $names = append $names .name }}{{ end }}
{{- end }}
{{- range $names | uniq }}
- name: {{ . }}
{{- end }}
{{- end }}

{{/* A value as the user wrote it, rendered with tpl: a string as it is, anything else as YAML.
  dict "value" V "ctx" $ */}}
{{- define "kes.render" -}}
{{- if kindIs "string" .value }}
{{- tpl .value .ctx }}
{{- else }}
{{- tpl (toYaml .value) .ctx }}
{{- end }}
{{- end }}

{{/* Leader election: asked for, or implied by more than one replica. "true" or "". */}}
{{- define "kes.leaderElection" -}}
{{- if and (not .Values.aggregator.enabled) (or .Values.leaderElection.enabled (gt (int .Values.replicas) 1)) }}true{{ end }}
{{- end }}

{{- define "kes.leaseName" -}}
{{- default (include "kes.fullname" .) .Values.leaderElection.lease }}
{{- end }}

{{- define "kes.checkpointName" -}}
{{- default (printf "%s-checkpoint" (include "kes.fullname" .) | trunc 63 | trimSuffix "-") .Values.checkpoint.name }}
{{- end }}

{{/* The namespaces watched: source.namespaces, else in namespaced mode the release's. JSON list. */}}
{{- define "kes.watchNamespaces" -}}
{{- if .Values.source.namespaces }}
{{- toJson .Values.source.namespaces }}
{{- else if .Values.rbac.namespaced }}
{{- toJson (list (include "kes.namespace" .)) }}
{{- else }}
{{- toJson (list) }}
{{- end }}
{{- end }}

{{/* The --source URI. */}}
{{- define "kes.source" -}}
{{- if .Values.aggregator.enabled }}
{{- include "kes.aggregatorSource" . }}
{{- else if .Values.source.uri }}
{{- .Values.source.uri }}
{{- else }}
{{- $params := list }}
{{- $namespaces := include "kes.watchNamespaces" . | fromJsonArray }}
{{- if $namespaces }}
{{- $params = append $params (printf "namespaces=%s" (join "," $namespaces)) }}
{{- end }}
{{- if and .Values.source.api (ne .Values.source.api "v1") }}
{{- $params = append $params (printf "api=%s" .Values.source.api) }}
{{- end }}
{{- range $key, $value := .Values.source.params }}
{{- $params = append $params (printf "%s=%v" $key $value) }}
{{- end }}
{{- if $params }}
{{- printf "kubernetes:?%s" (join "&" $params) }}
{{- else }}
{{- print "kubernetes:" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The config file, as text ("" when there is none). */}}
{{- define "kes.configFile" -}}
{{- if kindIs "string" .Values.config }}
{{- .Values.config }}
{{- else if .Values.config }}
{{- toYaml .Values.config }}
{{- end }}
{{- end }}

{{/* The checkpoint's kind: checkpoint.type, else (empty, the default) file when the embedded
  store is the only sink and one replica runs, so the checkpoint lives and dies with the store it
  describes (a new emptyDir starts both afresh and the retained events are stored again; a
  checkpoint kept in a ConfigMap would say they are there already), else configmap. */}}
{{- define "kes.checkpointType" -}}
{{- if .Values.aggregator.enabled }}none
{{- else if .Values.checkpoint.type }}{{ .Values.checkpoint.type }}
{{- else if and (not .Values.sinks) (not (include "kes.configFile" .)) (not (include "kes.leaderElection" .)) }}file
{{- else }}configmap{{ end }}
{{- end }}

{{/* Values that do not go together: fail at render time with a sentence that says why. */}}
{{- define "kes.validate" -}}
{{- if and (include "kes.leaderElection" .) (ne (include "kes.checkpointType" .) "configmap") }}
{{- fail (printf "leader election (replicas=%v, leaderElection.enabled=%v) needs checkpoint.type=configmap: the replicas share the checkpoint" .Values.replicas .Values.leaderElection.enabled) }}
{{- end }}
{{- if and (or .Values.secretEnv .Values.secretMountPath) (not .Values.existingSecret) }}
{{- fail "secretEnv and secretMountPath read from existingSecret: set existingSecret to the name of your Secret" }}
{{- end }}
{{- if and .Values.persistence.enabled (gt (int .Values.replicas) 1) (has "ReadWriteOnce" .Values.persistence.accessModes) (not .Values.persistence.existingClaim) }}
{{- fail "persistence with replicas > 1 needs a ReadWriteMany volume (persistence.accessModes), or use sinks outside the pod and no persistence" }}
{{- end }}
{{- end }}

{{/* The NetworkPolicy's egress ports for the sinks: a JSON list of "PORT/PROTOCOL", from every
  --sink and every receiver of the config file, plus networkPolicy.egress.sinkPorts. For each:
  the port of every URL (scheme://host:port), else the URL scheme's (http 80, https 443, udp 514
  UDP, tcp 514, tls 6514, amqp 5672, amqps 5671, mysql 3306); every other host:port and port=N;
  and when none is found the sink's own default (mysql 3306, kafka 9092, rabbitmq 5672, syslog
  514/UDP; log, stdout, sqlite, file and pipe none; the cloud and chat APIs 443). */}}
{{- define "kes.sinkPorts" -}}
{{- $items := list }}
{{- range .Values.sinks }}
{{- $items = append $items (dict "kind" (regexFind "^[a-z][a-z0-9_]*" .) "text" .) }}
{{- end }}
{{- if .Values.aggregator.enabled }}{{- /* an aggregator's source: its Kafka brokers */}}
{{- $items = append $items (dict "kind" "kafka" "text" (include "kes.aggregatorSource" .)) }}
{{- end }}
{{- $config := include "kes.configFile" . }}
{{- if $config }}
{{- $parsed := $config | fromYaml }}
{{- range $receiver := ($parsed.receivers | default list) }}
{{- if kindIs "map" $receiver }}
{{- range $kind, $options := $receiver }}
{{- if ne $kind "name" }}
{{- $items = append $items (dict "kind" $kind "text" (toYaml $options)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $schemePorts := dict "http" "80/TCP" "https" "443/TCP" "udp" "514/UDP" "tcp" "514/TCP" "tls" "6514/TCP" "amqp" "5672/TCP" "amqps" "5671/TCP" "mysql" "3306/TCP" }}
{{- $kindPorts := dict "mysql" "3306/TCP" "mariadb" "3306/TCP" "kafka" "9092/TCP" "rabbitmq" "5672/TCP" "syslog" "514/UDP" "log" "" "stdout" "" "sqlite" "" "file" "" "pipe" "" }}
{{- $ports := list }}
{{- range $items }}
{{- $found := list }}
{{- $text := .text }}
{{- range regexFindAll `[a-z][a-z0-9+.-]*://(\[[0-9a-fA-F:.]*\]|[^/?&#\s"',\[\]:]+)(:[0-9]{1,5})?` $text -1 }}
{{- $scheme := regexFind `^[a-z][a-z0-9+.-]*` . }}
{{- $port := regexFind `:[0-9]{1,5}$` . | trimPrefix ":" }}
{{- if $port }}
{{- $found = append $found (printf "%s/%s" $port (ternary "UDP" "TCP" (eq $scheme "udp"))) }}
{{- else if hasKey $schemePorts $scheme }}
{{- $found = append $found (get $schemePorts $scheme) }}
{{- end }}
{{- end }}
{{- $rest := regexReplaceAll `[a-z][a-z0-9+.-]*://(\[[0-9a-fA-F:.]*\]|[^/?&#\s"',\[\]:]+)(:[0-9]{1,5})?` $text " " }}
{{- range regexFindAll `[A-Za-z0-9_.\-\]]:[0-9]{1,5}\b` $rest -1 }}
{{- $found = append $found (printf "%s/TCP" (regexFind `[0-9]+$` .)) }}
{{- end }}
{{- range regexFindAll `\bport["']?\s*[=:]\s*[0-9]{1,5}\b` $rest -1 }}
{{- $found = append $found (printf "%s/TCP" (regexFind `[0-9]+$` .)) }}
{{- end }}
{{- if and (not $found) (hasKey $kindPorts .kind) }}
{{- with get $kindPorts .kind }}{{ $found = append $found . }}{{ end }}
{{- else if not $found }}
{{- $found = append $found "443/TCP" }}
{{- end }}
{{- $ports = concat $ports $found }}
{{- end }}
{{- range .Values.networkPolicy.egress.sinkPorts }}
{{- $ports = append $ports (ternary (printf "%v/TCP" .) (toString .) (not (contains "/" (toString .)))) }}
{{- end }}
{{- /* in the order of the port numbers: sort zero-padded, then drop the padding */}}
{{- $padded := list }}
{{- range $ports | uniq }}
{{- $padded = append $padded (printf "%05d/%s" (first (splitList "/" .) | atoi) (last (splitList "/" .))) }}
{{- end }}
{{- $sorted := list }}
{{- range $padded | sortAlpha }}
{{- $sorted = append $sorted (printf "%d/%s" (first (splitList "/" .) | atoi) (last (splitList "/" .))) }}
{{- end }}
{{- $sorted | toJson }}
{{- end }}

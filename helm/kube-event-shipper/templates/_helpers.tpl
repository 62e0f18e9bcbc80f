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

{{/* Labels: app.kubernetes.io/* on everything; the selector is the stable subset. */}}
{{- define "kes.labels" -}}
helm.sh/chart: {{ include "kes.chart" . }}
{{ include "kes.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kube-event-shipper
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

{{- define "kes.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end }}

{{/* Leader election: asked for, or implied by more than one replica. "true" or "". */}}
{{- define "kes.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) }}true{{ end }}
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
{{- toJson (list .Release.Namespace) }}
{{- else }}
{{- toJson (list) }}
{{- end }}
{{- end }}

{{/* The --source URI. */}}
{{- define "kes.source" -}}
{{- if .Values.source.uri }}
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
{{- if .Values.checkpoint.type }}{{ .Values.checkpoint.type }}
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

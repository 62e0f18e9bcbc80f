{{- /*
Sidecar mode: the shipper as one more container in another chart's Pod (next to a log agent,
say), shipping the Events of that Pod's namespace (or of the namespaces you list) with that Pod's
ServiceAccount. This file is self-contained (it uses none of this chart's other templates): copy
it into your chart's templates/ (or depend on this chart; Helm shares named templates with the
parent), then in your chart:

values.yaml (the documented snippet; docs/sidecar.md has the whole example):

  # -- kube-event-shipper as a sidecar (helm/kube-event-shipper/templates/_sidecar.tpl)
  eventShipper:
    enabled: true
    image: ghcr.io/kube-event-shipper/kube-event-shipper:0.1.0
    imagePullPolicy: IfNotPresent
    # -- --sink URIs; empty: the embedded sqlite store in the sidecar's state volume
    sinks: []
    # -- the namespaces watched; empty: the Pod's own namespace
    namespaces: []
    # -- port of /healthz, /readyz and /metrics (must differ from the other containers')
    port: 8081
    extraArgs: []
    resources:
      requests: {cpu: 20m, memory: 96Mi}
      limits: {memory: 256Mi}

your Deployment's pod spec:

  containers:
    - name: log-agent
      ...
    {{- include "kube-event-shipper.sidecar" (dict "values" .Values.eventShipper "ctx" .) | nindent 4 }}
  volumes:
    {{- include "kube-event-shipper.sidecarVolumes" (dict "values" .Values.eventShipper) | nindent 4 }}

and a Role (bound to the Pod's ServiceAccount) in each watched namespace:

  rules:
    {{- include "kube-event-shipper.sidecarRules" . | nindent 4 }}

With `enabled: false` all three render nothing. The checkpoint is a file in the sidecar's
state volume (an emptyDir: with the Pod it starts again from the events the API server still
retains, which the embedded store upserts by uid); leader election is off: every replica of the
Pod ships, so run the sidecar in a Pod with one replica (or give it sinks that drop repeats by
id, as the search and sqlite sinks do).
*/}}

{{- define "kube-event-shipper.sidecar" -}}
{{- $v := .values | default dict -}}
{{- if $v.enabled }}
{{- $port := $v.port | default 8081 }}
{{- $namespaces := $v.namespaces | default list }}
- name: {{ $v.name | default "kube-event-shipper" }}
  image: {{ required "eventShipper.image is required" $v.image | quote }}
  imagePullPolicy: {{ $v.imagePullPolicy | default "IfNotPresent" }}
  args:
    {{- if $namespaces }}
    - {{ printf "--source=kubernetes:?namespaces=%s" (join "," $namespaces) | quote }}
    {{- else }}
    - "--source=kubernetes:?namespaces=$(POD_NAMESPACE)"
    {{- end }}
    {{- range $v.sinks }}
    - {{ printf "--sink=%s" . | quote }}
    {{- end }}
    - "--state-dir=/var/lib/kube-event-shipper"
    - "--checkpoint=file"
    - {{ printf "--listen=:%v" $port | quote }}
    {{- range $v.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: POD_NAMESPACE
      valueFrom:
        fieldRef:
          fieldPath: metadata.namespace
    - name: KES_STATE_DIR
      value: /var/lib/kube-event-shipper
  ports:
    - name: kes-http
      containerPort: {{ $port }}
      protocol: TCP
  startupProbe:
    httpGet:
      path: /healthz
      port: {{ $port }}
    periodSeconds: 2
    failureThreshold: 30
  livenessProbe:
    httpGet:
      path: /healthz
      port: {{ $port }}
    periodSeconds: 10
    timeoutSeconds: 5
  readinessProbe:
    httpGet:
      path: /readyz
      port: {{ $port }}
    periodSeconds: 5
    timeoutSeconds: 5
  resources:
    {{- toYaml ($v.resources | default (dict "requests" (dict "cpu" "20m" "memory" "96Mi") "limits" (dict "memory" "256Mi"))) | nindent 4 }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    capabilities:
      drop: [ALL]
    seccompProfile:
      type: RuntimeDefault
  volumeMounts:
    - name: {{ $v.volumeName | default "kube-event-shipper-state" }}
      mountPath: /var/lib/kube-event-shipper
    - name: {{ printf "%s-tmp" ($v.volumeName | default "kube-event-shipper-state") }}
      mountPath: /tmp
{{- end }}
{{- end }}

{{- define "kube-event-shipper.sidecarVolumes" -}}
{{- $v := .values | default dict -}}
{{- if $v.enabled }}
- name: {{ $v.volumeName | default "kube-event-shipper-state" }}
  emptyDir:
    sizeLimit: {{ $v.stateSizeLimit | default "256Mi" }}
- name: {{ printf "%s-tmp" ($v.volumeName | default "kube-event-shipper-state") }}
  emptyDir:
    sizeLimit: 64Mi
{{- end }}
{{- end }}

{{- /* The rules the sidecar's ServiceAccount needs in each namespace it watches. */}}
{{- define "kube-event-shipper.sidecarRules" -}}
- apiGroups: [""]
  resources: [events]
  verbs: [get, list, watch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [get, list, watch]
{{- end }}

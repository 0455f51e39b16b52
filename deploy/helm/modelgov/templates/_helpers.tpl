{{- define "modelgov.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelgov.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "modelgov.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "modelgov.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "modelgov.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelgov.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "modelgov.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "modelgov.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "modelgov.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* preStop pause + SHUTDOWN_GRACE_MS + the 5 s of closing (+ slack), in whole seconds. */}}
{{- define "modelgov.terminationGracePeriodSeconds" -}}
{{- $s := .Values.shutdown -}}
{{- add (int $s.preStopSeconds) (div (add (int $s.graceMs) 999) 1000) (int $s.closeAllowanceSeconds) (int $s.extraGraceSeconds) -}}
{{- end -}}

{{/* Environment shared by the API and the worker: plain settings, then secrets by reference. */}}
{{- define "modelgov.env" -}}
- name: NODE_ENV
  value: production
- name: DATA_DIR
  value: {{ .Values.dataDir.path | quote }}
- name: SECRETS_DIR
  value: {{ printf "%s/.secrets" .Values.dataDir.path | quote }}
- name: SHUTDOWN_GRACE_MS
  value: {{ .Values.shutdown.graceMs | int | toString | quote }}
- name: WORKERS_IN_PROCESS
  value: {{ ternary "false" "true" .Values.worker.enabled | quote }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- range $name, $key := .Values.secrets.keys }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.secrets.existingSecret }}
      key: {{ $key }}
      {{- if has $name ($.Values.secrets.optionalKeys | default list) }}
      optional: true
      {{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "modelgov.volumes" -}}
- name: data
{{- if .Values.dataDir.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .Values.dataDir.existingClaim }}
{{- else }}
  emptyDir:
    {{- toYaml .Values.dataDir.emptyDir | nindent 4 }}
{{- end }}
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "modelgov.volumeMounts" -}}
- name: data
  mountPath: {{ .Values.dataDir.path }}
- name: tmp
  mountPath: /tmp
{{- end -}}

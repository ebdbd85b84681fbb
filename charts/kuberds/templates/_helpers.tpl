{{- define "kuberds.name" -}}kuberds{{- end }}

{{- define "kuberds.fullname" -}}
{{- if contains "kuberds" .Release.Name }}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}{{ printf "%s-kuberds" .Release.Name | trunc 63 | trimSuffix "-" }}{{ end }}
{{- end }}

{{- define "kuberds.selectorLabels" -}}
app.kubernetes.io/name: kuberds
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "kuberds.labels" -}}
{{ include "kuberds.selectorLabels" . }}
app.kubernetes.io/part-of: kuberds
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- /* Rules across values, which values.schema.json cannot express; fails the install. */ -}}
{{- define "kuberds.validateValues" -}}
{{- if eq (int .Values.metrics.port) (int .Values.healthPort) }}
{{- fail (printf "metrics.port and healthPort must differ (both are %d): the operator serves metrics and health on separate ports" (int .Values.healthPort)) }}
{{- end }}
{{- end }}

{{/* The chart's name, or nameOverride. */}}
{{- define "parley.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: fullnameOverride, or RELEASE-parley (RELEASE alone when it contains the name). */}}
{{- define "parley.fullname" -}}
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

{{- define "parley.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "parley.selectorLabels" -}}
app.kubernetes.io/name: {{ include "parley.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "parley.labels" -}}
helm.sh/chart: {{ include "parley.chart" . }}
{{ include "parley.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "parley.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "parley.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret that holds the database URL: the one given, or the chart's own. */}}
{{- define "parley.databaseSecretName" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecret }}
{{- else }}
{{- printf "%s-database" (include "parley.fullname" .) }}
{{- end }}
{{- end }}

{{- define "parley.claimName" -}}
{{- default (printf "%s-data" (include "parley.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/*
parley.toml from .Values.settings and .Values.engines. Every value is written with toJson: a JSON string,
number, boolean or array of them is the same TOML value.
*/}}
{{- define "parley.toml" -}}
# parley.toml, rendered by the {{ include "parley.fullname" . }} chart from its values (settings, engines).
{{- range $key, $value := .Values.settings }}
{{ $key }} = {{ toJson $value }}
{{- end }}
{{- range $engine := .Values.engines }}

[[engines]]
{{- range $key, $value := $engine }}
{{- if ne $key "replicas" }}
{{ $key }} = {{ toJson $value }}
{{- end }}
{{- end }}
{{- range $replica := $engine.replicas }}

[[engines.replicas]]
{{- range $key, $value := $replica }}
{{ $key }} = {{ toJson $value }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

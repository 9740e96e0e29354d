{{/* Names and labels shared by every template of the chart. */}}

{{- define "modeldeploy-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modeldeploy-operator.fullname" -}}
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

{{- define "modeldeploy-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modeldeploy-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "modeldeploy-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "modeldeploy-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modeldeploy
{{- end }}

{{- define "modeldeploy-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modeldeploy-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository[:tag][@digest]; tag defaults to the chart's appVersion. */}}
{{- define "modeldeploy-operator.imageRef" -}}
{{- $img := index . 0 -}}
{{- $ctx := index . 1 -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default $ctx.Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end }}

{{/* Namespaces served with rbac.scope=namespace (default: the release namespace). */}}
{{- define "modeldeploy-operator.watchNamespaces" -}}
{{- if .Values.watchNamespaces }}
{{- join "," (uniq .Values.watchNamespaces) }}
{{- else }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}

{{/* The rules of config/rbac/role.yaml (copied verbatim into files/rbac/role.yaml). */}}
{{- define "modeldeploy-operator.rules" -}}
{{- $role := .Files.Get "files/rbac/role.yaml" | fromYaml }}
{{- if not $role.rules }}
{{- fail "files/rbac/role.yaml has no rules: run scripts/sync_chart.sh" }}
{{- end }}
{{- toYaml $role.rules }}
{{- end }}

{{- define "wif.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "wif.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "wif.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "wif.webhook.name" -}}{{ include "wif.fullname" . }}-webhook{{- end -}}
{{- define "wif.serve.name" -}}{{ include "wif.fullname" . }}-serve{{- end -}}

{{- define "wif.authorityHost" -}}
{{- if .Values.webhook.authorityHost -}}
{{ .Values.webhook.authorityHost }}
{{- else if .Values.serve.enabled -}}
{{ required "serve.publicURL is required" .Values.serve.publicURL }}
{{- else -}}
https://login.microsoftonline.com/
{{- end -}}
{{- end -}}

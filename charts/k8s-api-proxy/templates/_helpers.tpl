{{/* Resource name: the release name, or release-chart when the release name lacks the chart name. */}}
{{- define "k8s-api-proxy.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "k8s-api-proxy.selectorLabels" -}}
app.kubernetes.io/name: {{ default .Chart.Name .Values.nameOverride }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "k8s-api-proxy.labels" -}}
{{ include "k8s-api-proxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "k8s-api-proxy.serviceAccountName" -}}
{{- default (include "k8s-api-proxy.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "k8s-api-proxy.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "k8s-api-proxy.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}

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

{{/*
Name of a cluster-scoped object (ClusterRole, ClusterRoleBinding): <fullname>-<namespace>.
Namespaced names only have to be unique in their namespace; cluster-scoped ones are shared
by every install, so two releases of the same name in two namespaces must not collide (nor
silently rebind each other's ClusterRoleBinding with `helm template | kubectl apply`).
Append a suffix for further objects, e.g. printf "%s-viewer" (include "k8s-api-proxy.clusterScopedName" .).
At most 63 + 1 + 63 characters, well within the 253 a cluster-scoped name may have.
*/}}
{{- define "k8s-api-proxy.clusterScopedName" -}}
{{- printf "%s-%s" (include "k8s-api-proxy.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/*
Selector labels. Fixed for the life of a release: a Deployment's selector is immutable, so
they depend on neither nameOverride nor any value (changing those must not break `helm upgrade`).
*/}}
{{- define "k8s-api-proxy.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels the chart itself sets; commonLabels and podLabels may not repeat these keys. */}}
{{- define "k8s-api-proxy.chartLabels" -}}
{{ include "k8s-api-proxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "k8s-api-proxy.labels" -}}
{{ include "k8s-api-proxy.chartLabels" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Pod template labels: the labels above plus podLabels. */}}
{{- define "k8s-api-proxy.podLabels" -}}
{{ include "k8s-api-proxy.labels" . }}
{{- with .Values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "k8s-api-proxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "k8s-api-proxy.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "k8s-api-proxy.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "k8s-api-proxy.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}

{{- define "k8s-api-proxy.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/*
Ingress classes whose controllers can pass TLS through to the pod untouched, and the
annotations that ask them to. Any other class would terminate TLS and strip the client
certificate, so the chart refuses to render an Ingress for it.
*/}}
{{- define "k8s-api-proxy.passthroughIngressClasses" -}}
nginx:
  # ingress-nginx, started with --enable-ssl-passthrough (retired upstream in March 2026).
  nginx.ingress.kubernetes.io/ssl-passthrough: "true"
  nginx.ingress.kubernetes.io/backend-protocol: "HTTPS"
haproxy:
  # HAProxy Kubernetes Ingress Controller (haproxytech) and HAProxy Ingress (jcmoraisjr):
  # each reads its own annotation and ignores the other's.
  haproxy.org/ssl-passthrough: "true"
  haproxy-ingress.github.io/ssl-passthrough: "true"
{{- end -}}

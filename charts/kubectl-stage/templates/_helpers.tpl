{{- define "kubectl-stage.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubectl-stage.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kubectl-stage.webhookName" -}}
{{- printf "%s-webhook" (include "kubectl-stage.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubectl-stage.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubectl-stage.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "kubectl-stage.labels" -}}
{{ include "kubectl-stage.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "kubectl-stage.tlsSecret" -}}
{{- printf "%s-tls" (include "kubectl-stage.webhookName" .) -}}
{{- end -}}

{{/* The namespaces the webhook never sees. */}}
{{- define "kubectl-stage.excludedNamespaces" -}}
{{- $ns := list "kube-system" .Release.Namespace -}}
{{- range .Values.webhook.excludeNamespaces }}{{ $ns = append $ns . }}{{ end -}}
{{- toJson (uniq $ns) -}}
{{- end -}}

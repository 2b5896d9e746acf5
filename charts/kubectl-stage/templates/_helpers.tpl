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

{{- define "kubectl-stage.rolloutSelectorLabels" -}}
app.kubernetes.io/name: {{ include "kubectl-stage.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: rollout-controller
{{- end -}}

{{- define "kubectl-stage.rolloutLabels" -}}
{{ include "kubectl-stage.rolloutSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
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

{{/* The webhook's ServiceAccount: created by the chart or brought by the user. */}}
{{- define "kubectl-stage.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kubectl-stage.webhookName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false: name the existing ServiceAccount the webhook runs as" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The serving certificate's names: the Service's DNS names, and the host
     of webhook.url when the webhook is served from outside the cluster. */}}
{{- define "kubectl-stage.certificateNames" -}}
{{- $svc := include "kubectl-stage.webhookName" . -}}
{{- $ns := .Release.Namespace -}}
{{- $dnsNames := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) -}}
{{- $ips := list -}}
{{- with .Values.webhook.url -}}
{{- $host := (urlParse .).hostname -}}
{{- if regexMatch "^[0-9.]+$|:" $host -}}{{- $ips = append $ips $host -}}{{- else -}}{{- $dnsNames = append $dnsNames $host -}}{{- end -}}
{{- end -}}
{{- toJson (dict "dnsNames" $dnsNames "ipAddresses" $ips) -}}
{{- end -}}

{{/* Refuses values that the schema cannot check: ports that collide. */}}
{{- define "kubectl-stage.validate" -}}
{{- $ports := dict -}}
{{- $named := dict "webhook.port" .Values.webhook.port "metrics.port" .Values.metrics.port "health.port" .Values.health.port -}}
{{- if .Values.seeds.enabled -}}{{- $_ := set $named "seeds.port" .Values.seeds.port -}}{{- end -}}
{{- /* The agent pods serve their metrics on the nodes' network, as webhook pods do with hostNetwork. */ -}}
{{- if and .Values.netAgent.enabled .Values.hostNetwork -}}{{- $_ := set $named "netAgent.metricsPort" .Values.netAgent.metricsPort -}}{{- end -}}
{{- range $name, $port := $named -}}
{{- $key := toString $port -}}
{{- if hasKey $ports $key -}}
{{- fail (printf "%s and %s are both %s: give each endpoint its own port" (get $ports $key) $name $key) -}}
{{- end -}}
{{- $_ := set $ports $key $name -}}
{{- end -}}
{{- if and .Values.podDisruptionBudget.minAvailable .Values.podDisruptionBudget.maxUnavailable -}}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both (set the other to null)" -}}
{{- end -}}
{{- end -}}

{{- define "kubectl-stage.seedsName" -}}
{{- printf "%s-seeds" (include "kubectl-stage.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The URL peers reach the seed endpoint at: seeds.url, or the seeds Service. */}}
{{- define "kubectl-stage.seedURL" -}}
{{- .Values.seeds.url | default (printf "http://%s.%s.svc:%v" (include "kubectl-stage.seedsName" .) .Release.Namespace .Values.seeds.port) | trimSuffix "/" -}}
{{- end -}}

{{- define "kubectl-stage.netAgentSelectorLabels" -}}
app.kubernetes.io/name: {{ include "kubectl-stage.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: net-agent
{{- end -}}

{{- define "kubectl-stage.netAgentLabels" -}}
{{ include "kubectl-stage.netAgentSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

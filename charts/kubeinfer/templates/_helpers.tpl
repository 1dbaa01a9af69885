{{/* Chart name, truncated to the 63 characters a label allows. */}}
{{- define "kubeinfer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: the release name, with the chart name appended unless the release name already contains it. */}}
{{- define "kubeinfer.fullname" -}}
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

{{- define "kubeinfer.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "kubeinfer.labels" -}}
helm.sh/chart: {{ include "kubeinfer.chart" . }}
{{ include "kubeinfer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubeinfer
{{- end -}}

{{- define "kubeinfer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubeinfer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels and selector labels of one component: (dict "ctx" $ "component" "operator"). */}}
{{- define "kubeinfer.componentLabels" -}}
{{ include "kubeinfer.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "kubeinfer.componentSelectorLabels" -}}
{{ include "kubeinfer.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "kubeinfer.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "kubeinfer.watchNamespace" -}}
{{- default .Release.Namespace .Values.operator.watchNamespace -}}
{{- end -}}

{{- define "kubeinfer.operatorServiceAccount" -}}
{{- default (printf "%s-operator" (include "kubeinfer.fullname" .)) .Values.operator.serviceAccount.name -}}
{{- end -}}

{{- define "kubeinfer.runnerServiceAccount" -}}
{{- default (printf "%s-runner" (include "kubeinfer.fullname" .)) .Values.runner.serviceAccount.name -}}
{{- end -}}

{{- define "kubeinfer.gatewayServiceAccount" -}}
{{- default (include "kubeinfer.gatewayName" .) .Values.gateway.serviceAccount.name -}}
{{- end -}}

{{/* The chart's ModelInstall. */}}
{{- define "kubeinfer.modelServerName" -}}
{{- printf "%s-model-server" (include "kubeinfer.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The Service the operator creates for it: kubeinfer.resources.names.service_name, a slug of its name. */}}
{{- define "kubeinfer.modelServiceName" -}}
{{- regexReplaceAll "[^a-z0-9]+" (include "kubeinfer.modelServerName" . | lower) "-" | trimAll "-" | trunc 63 -}}
{{- end -}}

{{- define "kubeinfer.gatewayName" -}}
{{- printf "%s-gateway" (include "kubeinfer.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubeinfer.apiKeysSecret" -}}
{{- default (printf "%s-api-keys" (include "kubeinfer.gatewayName" .)) .Values.gateway.apiKeys.existingSecret -}}
{{- end -}}

{{/* The gateway's model: gateway.model, else the chart's ModelInstall's. */}}
{{- define "kubeinfer.gatewayModel" -}}
{{- if .Values.gateway.model -}}
{{- .Values.gateway.model -}}
{{- else if .Values.modelServer.enabled -}}
{{- .Values.modelServer.model -}}
{{- else -}}
{{- fail "gateway.model is required when modelServer.enabled is false" -}}
{{- end -}}
{{- end -}}

{{/* gateway.engineUrl, else the Service the operator creates for the chart's ModelInstall (port 8080, named as it). */}}
{{- define "kubeinfer.engineUrl" -}}
{{- if .Values.gateway.engineUrl -}}
{{- .Values.gateway.engineUrl -}}
{{- else if .Values.modelServer.enabled -}}
{{- printf "http://%s.%s:8080" (include "kubeinfer.modelServiceName" .) (include "kubeinfer.watchNamespace" .) -}}
{{- else -}}
{{- fail "gateway.engineUrl is required when modelServer.enabled is false" -}}
{{- end -}}
{{- end -}}

{{/* Pod-level settings shared by every pod of the chart: pull secrets and security context. */}}
{{- define "kubeinfer.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/* nodeSelector, tolerations and affinity: (dict "own" .Values.operator "pool" .Values.pools.cpu). */}}
{{- define "kubeinfer.placement" -}}
{{- with (default .pool.nodeSelector .own.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default .pool.tolerations .own.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .own.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

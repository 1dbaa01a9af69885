{{/* KUBEINFER_STORAGE__* of the gateway and the operator (docs/storage.md); fails on a broken storage value. */}}
{{- define "kubeinfer.storageEnv" -}}
{{- $s := .Values.storage -}}
{{- if not (has $s.backend (list "local" "s3")) -}}
{{- fail (printf "storage.backend must be local or s3, got %q" (toString $s.backend)) -}}
{{- end -}}
{{- if eq $s.backend "s3" -}}
{{- if not $s.s3.bucket -}}
{{- fail "storage.s3.bucket is required when storage.backend is s3" -}}
{{- end }}
- name: KUBEINFER_STORAGE__BACKEND
  value: s3
- name: KUBEINFER_STORAGE__BUCKET
  value: {{ $s.s3.bucket | quote }}
- name: KUBEINFER_STORAGE__PREFIX
  value: {{ $s.s3.prefix | quote }}
{{- with $s.s3.endpointUrl }}
- name: KUBEINFER_STORAGE__ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with $s.s3.region }}
- name: KUBEINFER_STORAGE__REGION
  value: {{ . | quote }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* The gateway's AWS credentials from storage.s3.credentialsSecret (the operator passes the name on to batch pods). */}}
{{- define "kubeinfer.storageCredentialsEnv" -}}
{{- $secret := .Values.storage.s3.credentialsSecret -}}
{{- if and (eq .Values.storage.backend "s3") $secret -}}
{{- range list "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" "AWS_SESSION_TOKEN" }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret | quote }}
      key: {{ . }}
      optional: {{ eq . "AWS_SESSION_TOKEN" }}
{{- end }}
{{- end -}}
{{- end -}}

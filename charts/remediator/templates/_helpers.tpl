{{/* The chart's name, at most 63 characters. */}}
{{- define "remediator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the name of every object the chart creates. */}}
{{- define "remediator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "remediator.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "remediator.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "remediator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "remediator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the pod. */}}
{{- define "remediator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "remediator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "remediator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "remediator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the webhook's bearer token. */}}
{{- define "remediator.webhookSecretName" -}}
{{- default (printf "%s-webhook" (include "remediator.fullname" .)) .Values.webhook.existingSecret }}
{{- end }}

{{- define "remediator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "remediator.scheme" -}}
{{- if .Values.tls.enabled }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}

{{/* PromQL matchers naming this installation's series. */}}
{{- define "remediator.selector" -}}
{{- default (printf "job=%q,namespace=%q" (include "remediator.fullname" .) .Release.Namespace) .Values.prometheusRule.selector }}
{{- end }}

{{/* Where the pod finds what the chart mounts. The main configuration names everything
     else relative to its own folder, so that `remediator check` can run on a copy. */}}
{{- define "remediator.configDir" -}}/etc/remediator/config{{- end }}
{{- define "remediator.storageDir" -}}/var/lib/remediator{{- end }}

{{/* Refuses values the chart cannot honour, with a message saying why. The schema
     catches most; these hold even when it is skipped. */}}
{{- define "remediator.validate" -}}
{{- if gt (int .Values.replicaCount) 1 }}
{{- fail (printf "replicaCount: %d is refused: remediator keeps its guards in a local state store that one process holds at a time, so it runs one replica until a shared state store exists" (int .Values.replicaCount)) }}
{{- end }}
{{- if not (has .Values.mode (list "dry-run" "live")) }}
{{- fail (printf "mode: must be dry-run or live, not %q" .Values.mode) }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.secretName: required when tls.enabled is true" }}
{{- end }}
{{- if hasKey .Values.policies.files "remediator.yml" }}
{{- fail "policies.files: remediator.yml is the main configuration's name; choose another" }}
{{- end }}
{{- end }}

{{/*
Helpers of the mooring chart. Every action stays on one line: tests/chart.rs reads the
templates line by line.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "mooring.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name of the release's resources: fullnameOverride, or RELEASE-NAME (just RELEASE when it already contains the name). */}}
{{- define "mooring.fullname" -}}
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

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "mooring.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "mooring.labels" -}}
helm.sh/chart: {{ include "mooring.chart" . }}
{{ include "mooring.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the pods. */}}
{{- define "mooring.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mooring.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount's name. */}}
{{- define "mooring.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mooring.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: repository@digest, or repository:tag (tag defaults to appVersion). */}}
{{- define "mooring.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Environment variable names of the secrets; the operator config refers to them. Argument: the sink's index. */}}
{{- define "mooring.alertWebhookEnv" -}}
{{- printf "MOORING_ALERT_WEBHOOK_URL_%d" . }}
{{- end }}

{{- define "mooring.slackWebhookEnv" -}}
{{- printf "MOORING_SLACK_WEBHOOK_URL_%d" . }}
{{- end }}

{{/*
The operator config file (MOORING_CONFIG): sinks and the webhook secret refer to environment
variables only; the deployment fills those from secretKeyRefs. Built as a dict and printed
with toYaml, so the YAML is well formed whatever the values.
*/}}
{{- define "mooring.operatorConfig" -}}
{{- $webhooks := list }}
{{- range $i, $sink := .Values.alerts.webhooks }}
{{- $webhooks = append $webhooks (dict "url" (dict "env" (include "mooring.alertWebhookEnv" $i))) }}
{{- end }}
{{- $slack := list }}
{{- range $i, $sink := .Values.alerts.slack }}
{{- $slack = append $slack (dict "webhookUrl" (dict "env" (include "mooring.slackWebhookEnv" $i))) }}
{{- end }}
{{- $sns := list }}
{{- range .Values.alerts.sns }}
{{- $sns = append $sns (dict "topicArn" .topicArn) }}
{{- end }}
{{- $config := dict "alerts" (dict "webhooks" $webhooks "slack" $slack "sns" $sns) }}
{{- if .Values.webhook.enabled }}
{{- $_ := set $config "webhook" (dict "secret" (dict "env" "MOORING_WEBHOOK_SECRET")) }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* Checks of the values the schema cannot make (it must accept the defaults). Renders nothing. */}}
{{- define "mooring.validate" -}}
{{- $_ := required "aws.region is required (e.g. --set aws.region=eu-west-1)" .Values.aws.region }}
{{- if and (eq .Values.source.type "directory") (not .Values.source.directory.existingConfigMap) (not .Values.manifests) }}
{{- fail "the directory source needs manifests: set `manifests` (file name -> YAML) or source.directory.existingConfigMap, or use source.type=git" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled=true: two replicas would reconcile at the same time" }}
{{- end }}
{{- end }}

{{/*
Names and labels.
*/}}
{{- define "sentinel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sentinel.fullname" -}}
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

{{- define "sentinel.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sentinel.labels" -}}
helm.sh/chart: {{ include "sentinel.chart" . }}
app.kubernetes.io/name: {{ include "sentinel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sentinel
{{- end }}

{{/*
Selector of the server pods. The component label keeps the migration Job's
pod out of the Service, the PodDisruptionBudget and the autoscaler.
*/}}
{{- define "sentinel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sentinel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "sentinel.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sentinel.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sentinel.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "sentinel.createdSecretName" -}}
{{- printf "%s-secrets" (include "sentinel.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sentinel.clustered" -}}
{{- if eq .Values.mode "clustered" }}true{{ end }}
{{- end }}

{{/*
The migration Job owns migrations only in clustered mode; embedded mode
migrates the SQLite file on start.
*/}}
{{- define "sentinel.migrationJob" -}}
{{- if and (include "sentinel.clustered" .) .Values.migrations.job.enabled }}true{{ end }}
{{- end }}

{{/*
Refuse to render configurations that would lose data or not start. Included
by every server-side template so no subset of the chart renders either.
*/}}
{{- define "sentinel.validate" -}}
{{- if eq .Values.mode "embedded" }}
{{- if gt (int .Values.replicaCount) 1 }}
{{- fail (printf "mode=embedded keeps its data in one SQLite file and runs exactly one replica, but replicaCount is %d. Set replicaCount: 1, or use mode: clustered (PostgreSQL + Redis) to run several replicas." (int .Values.replicaCount)) }}
{{- end }}
{{- if .Values.autoscaling.enabled }}
{{- fail "mode=embedded keeps its data in one SQLite file and runs exactly one replica, so autoscaling.enabled must be false. Use mode: clustered (PostgreSQL + Redis) to autoscale." }}
{{- end }}
{{- if or .Values.database.existingSecret .Values.redis.existingSecret .Values.createSecret.databaseUrl .Values.createSecret.redisUrl }}
{{- fail "a database or Redis URL is configured but mode is embedded, which uses SQLite and an in-process cache. Set mode: clustered, or remove the database/redis settings." }}
{{- end }}
{{- else }}
{{- if not (or .Values.database.existingSecret (and .Values.createSecret.enabled .Values.createSecret.databaseUrl)) }}
{{- fail "mode=clustered needs the PostgreSQL URL: set database.existingSecret to a Secret holding it under the key database.existingSecretKey (default \"database-url\")." }}
{{- end }}
{{- if not (or .Values.redis.existingSecret (and .Values.createSecret.enabled .Values.createSecret.redisUrl)) }}
{{- fail "mode=clustered needs the Redis URL: set redis.existingSecret to a Secret holding it under the key redis.existingSecretKey (default \"redis-url\")." }}
{{- end }}
{{- if not (or .Values.kek.existingSecret (and .Values.createSecret.enabled .Values.createSecret.kek)) }}
{{- fail "mode=clustered needs a key-encryption key (Sentinel refuses to start on PostgreSQL without one): set kek.existingSecret to a Secret holding `openssl rand -base64 32` under the key kek.existingSecretKey (default \"kek\")." }}
{{- end }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) }}
{{- fail "podDisruptionBudget: set only one of maxUnavailable and minAvailable (set the other to null)." }}
{{- end }}
{{- end }}

{{/*
Non-secret configuration as SENTINEL_* variables: the ConfigMap's data, and
inlined into the migration Job, which runs before the ConfigMap exists.
*/}}
{{- define "sentinel.config" -}}
SENTINEL_LISTEN: "0.0.0.0:8080"
SENTINEL_DATA_DIR: "/var/lib/sentinel"
SENTINEL_LOG: {{ .Values.config.log | quote }}
SENTINEL_LOG_FORMAT: {{ .Values.config.logFormat | quote }}
SENTINEL_MIGRATE_ON_START: {{ ternary "false" "true" (eq (include "sentinel.migrationJob" .) "true") | quote }}
{{- with .Values.config.issuer }}
SENTINEL_ISSUER: {{ . | quote }}
{{- end }}
{{- with .Values.config.corsOrigins }}
SENTINEL_CORS_ORIGINS: {{ join "," . | quote }}
{{- end }}
SENTINEL_RATE_LIMIT__TRUST_FORWARDED_FOR: {{ .Values.config.trustForwardedFor | toString | quote }}
{{- with .Values.login.adminEmails }}
SENTINEL_ADMIN_EMAILS: {{ join "," . | quote }}
{{- end }}
{{- end }}

{{/*
sentinel.toml with the identity providers (no secrets: client_secret_file points at the
mounted Secret).
*/}}
{{- define "sentinel.providersToml" -}}
{{- range $id, $p := .Values.login.providers }}
[providers.{{ $id }}]
kind = {{ $p.kind | quote }}
client_id = {{ $p.clientId | quote }}
{{- with $p.clientSecretKey }}
client_secret_file = {{ printf "/etc/sentinel/secrets/%s" . | quote }}
{{- end }}
{{- with $p.displayName }}
display_name = {{ . | quote }}
{{- end }}
{{- with $p.issuer }}
issuer = {{ . | quote }}
{{- end }}
{{- with $p.tenant }}
tenant = {{ . | quote }}
{{- end }}
{{- with $p.scopes }}
scopes = {{ toJson . }}
{{- end }}
{{- with $p.audiences }}
audiences = {{ toJson . }}
{{- end }}
{{- with $p.authorizeUrl }}
authorize_url = {{ . | quote }}
{{- end }}
{{- with $p.tokenUrl }}
token_url = {{ . | quote }}
{{- end }}
{{- with $p.apiUrl }}
api_url = {{ . | quote }}
{{- end }}
{{ end }}
{{- end }}

{{/*
One secretKeyRef env var. Args: env, existing, existingKey, created (bool),
createdName, createdKey.
*/}}
{{- define "sentinel.secretEnvVar" -}}
{{- if .existing }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .existing | quote }}
      key: {{ .existingKey | quote }}
{{- else if .created }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .createdName | quote }}
      key: {{ .createdKey | quote }}
{{- end }}
{{- end }}

{{/*
Secret-backed environment: database and Redis URLs (clustered only) and the KEK.
*/}}
{{- define "sentinel.secretEnv" -}}
{{- $created := include "sentinel.createdSecretName" . }}
{{- $c := .Values.createSecret }}
{{- if include "sentinel.clustered" . }}
{{- include "sentinel.secretEnvVar" (dict "env" "SENTINEL_DATABASE_URL" "existing" .Values.database.existingSecret "existingKey" .Values.database.existingSecretKey "created" (and $c.enabled $c.databaseUrl) "createdName" $created "createdKey" "database-url") }}
{{- include "sentinel.secretEnvVar" (dict "env" "SENTINEL_REDIS_URL" "existing" .Values.redis.existingSecret "existingKey" .Values.redis.existingSecretKey "created" (and $c.enabled $c.redisUrl) "createdName" $created "createdKey" "redis-url") }}
{{- end }}
{{- include "sentinel.secretEnvVar" (dict "env" "SENTINEL_KEK" "existing" .Values.kek.existingSecret "existingKey" .Values.kek.existingSecretKey "created" (and $c.enabled $c.kek) "createdName" $created "createdKey" "kek") }}
{{- end }}

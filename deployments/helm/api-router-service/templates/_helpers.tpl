{{/* Names, labels and the values several templates derive from the router config. */}}

{{- define "api-router.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "api-router.fullname" -}}
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

{{- define "api-router.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "api-router.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component: include with (list $ "gateway"). */}}
{{- define "api-router.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "api-router.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "api-router.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "api-router.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "api-router.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "api-router.secretName" -}}
{{- default (printf "%s-secrets" (include "api-router.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{- define "api-router.policiesConfigMap" -}}
{{- default (printf "%s-policies" (include "api-router.fullname" .)) .Values.policies.existingConfigMap }}
{{- end }}

{{/* Where the pod mounts things; router.yaml points into these. */}}
{{- define "api-router.configDir" -}}/etc/api-router/config{{- end }}
{{- define "api-router.policiesDir" -}}/etc/api-router/policies{{- end }}
{{- define "api-router.dataDir" -}}/var/lib/api-router{{- end }}

{{- define "api-router.port" -}}
{{- dig "server" "port" 8080 .Values.config | int }}
{{- end }}

{{/*
router.yaml: the user's config with the settings that must match the pod put on top.
*/}}
{{- define "api-router.routerConfig" -}}
{{- $owned := dict
  "server" (dict "host" "0.0.0.0" "port" (include "api-router.port" . | int))
  "usage" (dict "spool_dir" (printf "%s/usage-spool" (include "api-router.dataDir" .)))
  "last_known_good" (dict "path" (printf "%s/last-known-good.sqlite" (include "api-router.dataDir" .))) }}
{{- if .Values.policies.enabled }}
{{- $_ := set $owned "limits" (dict "policies_file" (printf "%s/policies.yaml" (include "api-router.policiesDir" .))) }}
{{- end }}
{{- mergeOverwrite (deepCopy .Values.config) $owned | toYaml }}
{{- end }}

{{/*
Seconds a gateway needs to stop: the preStop pause, the request drain, the usage spool
flush, and 10 s for closing clients.
*/}}
{{- define "api-router.gatewayTerminationGrace" -}}
{{- $drain := dig "server" "graceful_shutdown_s" 30.0 .Values.config | ceil | int }}
{{- $flush := dig "usage" "shutdown_flush_s" 5.0 .Values.config | ceil | int }}
{{- add .Values.gateway.preStopSleepSeconds $drain $flush 10 }}
{{- end }}

{{/* The environment of every api-router container: secrets as API_ROUTER__* overrides
(the standalone URL, and the passwords of a cluster's nodes or of a Sentinel setup). */}}
{{- define "api-router.redisUrlEnv" -}}
{{- if .Values.redisUrlSecret.name }}
- name: API_ROUTER__REDIS__URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redisUrlSecret.name }}
      key: {{ .Values.redisUrlSecret.key }}
{{- end }}
{{- with .Values.redisPasswordSecret }}
{{- if .name }}
- name: API_ROUTER__REDIS__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .passwordKey }}
{{- if .sentinelPasswordKey }}
- name: API_ROUTER__REDIS__SENTINEL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .sentinelPasswordKey }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
audit.database_url from a Secret (gateways read the audit trail, the sink writes it).
*/}}
{{- define "api-router.auditDatabaseUrlEnv" -}}
{{- if .Values.auditDatabaseUrlSecret.name }}
- name: API_ROUTER__AUDIT__DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.auditDatabaseUrlSecret.name }}
      key: {{ .Values.auditDatabaseUrlSecret.key }}
{{- end }}
{{- end }}

{{/*
Pod annotations that roll the pods when what they read at start changes (the policies
file is re-read while running, so it is not here; generated secrets never change).
*/}}
{{- define "api-router.checksums" -}}
checksum/config: {{ include "api-router.routerConfig" . | sha256sum }}
{{- if and (not .Values.secrets.existingSecret) (or .Values.secrets.pepper .Values.secrets.kek) }}
checksum/secret: {{ print .Values.secrets.pepper "/" .Values.secrets.kek | sha256sum }}
{{- end }}
{{- end }}

{{/* Egress rules when networkPolicy.egress is set: DNS, then what it lists. */}}
{{- define "api-router.egressRules" -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{ toYaml .Values.networkPolicy.egress }}
{{- end }}

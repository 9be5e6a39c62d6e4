{{/* The chart name, or nameOverride. */}}
{{- define "alert-domains.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name: fullnameOverride, the release name when it contains the chart name, or release-chart. */}}
{{- define "alert-domains.fullname" -}}
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

{{- define "alert-domains.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "alert-domains.selectorLabels" -}}
app.kubernetes.io/name: {{ include "alert-domains.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The image: repository@digest when a digest is set, else repository:tag. */}}
{{- define "alert-domains.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{- define "alert-domains.labels" -}}
helm.sh/chart: {{ include "alert-domains.chart" . }}
{{ include "alert-domains.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: consumer
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "alert-domains.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "alert-domains.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "alert-domains.azureSecretName" -}}
{{- default (printf "%s-azure" (include "alert-domains.fullname" .)) .Values.azure.secretName }}
{{- end }}

{{/*
The one Azure credential the values enable: clientSecret, certificate,
workloadIdentity, or tenantsFile (a tenants file of the user's). Rendering
fails when none or more than one is enabled.
*/}}
{{- define "alert-domains.credential" -}}
{{- $forms := list }}
{{- range $form := list "clientSecret" "certificate" "workloadIdentity" }}
{{- if (get $.Values.azure $form).enabled }}
{{- $forms = append $forms $form }}
{{- end }}
{{- end }}
{{- with .Values.tenantsFile }}
{{- if and .configMapName .secretName }}
{{- fail "tenantsFile: set configMapName or secretName, not both" }}
{{- end }}
{{- if or .configMapName .secretName }}
{{- $forms = append $forms "tenantsFile" }}
{{- end }}
{{- end }}
{{- if eq (len $forms) 0 }}
{{- fail "azure: no credential is enabled; enable exactly one of azure.clientSecret, azure.certificate, azure.workloadIdentity, or give tenantsFile" }}
{{- else if gt (len $forms) 1 }}
{{- fail (printf "azure: %d credentials are enabled (%s); enable exactly one of azure.clientSecret, azure.certificate, azure.workloadIdentity, tenantsFile and set enabled: false on the others" (len $forms) (join ", " (sortAlpha $forms))) }}
{{- end }}
{{- $form := first $forms }}
{{- if and (eq $form "workloadIdentity") (not .Values.azure.clientId) }}
{{- fail "azure.workloadIdentity needs azure.clientId: the service account is annotated with it" }}
{{- end }}
{{- if and (has $form (list "clientSecret" "certificate")) (not (and .Values.azure.tenantId .Values.azure.clientId)) }}
{{- fail (printf "azure.%s needs azure.tenantId and azure.clientId: the chart writes them into the tenants file (they are not secrets)" $form) }}
{{- end }}
{{- if and (eq $form "tenantsFile") (or .Values.azure.tenantId .Values.azure.clientId) }}
{{- fail "tenantsFile: unset azure.tenantId and azure.clientId; the tenants file names every tenant's app registration" }}
{{- end }}
{{- $form }}
{{- end }}

{{/* Whether the service reads a TENANTS_FILE: the chart's or the user's. */}}
{{- define "alert-domains.usesTenantsFile" -}}
{{- if has (include "alert-domains.credential" .) (list "clientSecret" "certificate" "tenantsFile") }}true{{ end }}
{{- end }}

{{/* The key of the tenants file in its ConfigMap or Secret: the user's, or the chart's tenants.yaml. */}}
{{- define "alert-domains.tenantsKey" -}}
{{- if eq (include "alert-domains.credential" .) "tenantsFile" }}{{ .Values.tenantsFile.key }}{{ else }}tenants.yaml{{ end }}
{{- end }}

{{/* TENANTS_FILE: the key, in the mounted directory. */}}
{{- define "alert-domains.tenantsFile" -}}
{{- include "alert-domains.tenantsDir" . }}/{{ include "alert-domains.tenantsKey" . }}
{{- end }}

{{/* OTEL_RESOURCE_ATTRIBUTES from a map: key=value, sorted by key, comma separated. */}}
{{- define "alert-domains.resourceAttributes" -}}
{{- $pairs := list }}
{{- range $k, $v := . }}
{{- $pairs = append $pairs (printf "%s=%v" $k $v) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{/*
The service's NATS credential: creds or nkey (one of them), or none when
nats.allowAnonymous is set.
*/}}
{{- define "alert-domains.natsAuth" -}}
{{- $creds := .Values.nats.creds.secretName }}
{{- $nkey := .Values.nats.nkey.secretName }}
{{- if and $creds $nkey }}
{{- fail "nats: set nats.creds.secretName or nats.nkey.secretName, not both" }}
{{- else if $creds }}creds
{{- else if $nkey }}nkey
{{- else if not .Values.nats.allowAnonymous }}
{{- fail "nats: no credential for the service's NATS user; set nats.creds.secretName or nats.nkey.secretName (see deploy/nats/permissions.conf: only that user may publish results), or nats.allowAnonymous=true" }}
{{- end }}
{{- end }}

{{/* The TCP ports of the NATS servers: each URL's port, 4222 when it names none. */}}
{{- define "alert-domains.natsPorts" -}}
{{- $ports := list }}
{{- range .Values.nats.servers }}
{{- $hostport := regexReplaceAll "^[a-z]+://([^@/]*@)?" . "" }}
{{- $port := regexFind ":[0-9]+$" $hostport | trimPrefix ":" | default "4222" }}
{{- $ports = append $ports (int $port) }}
{{- end }}
{{- toJson (uniq $ports) }}
{{- end }}

{{/* The port of the OpenTelemetry endpoint: its own, else the scheme's. */}}
{{- define "alert-domains.otelPort" -}}
{{- $u := urlParse .Values.otel.endpoint }}
{{- $port := regexFind ":[0-9]+$" $u.host | trimPrefix ":" }}
{{- $port | default (ternary "443" "80" (eq $u.scheme "https")) }}
{{- end }}

{{/* SHUTDOWN_TIMEOUT plus the margin: the pod's grace period. */}}
{{- define "alert-domains.terminationGracePeriodSeconds" -}}
{{- add (int .Values.processing.shutdownTimeoutSeconds) (int .Values.terminationGraceMarginSeconds) }}
{{- end }}

{{- define "alert-domains.natsURL" -}}
{{- if not .Values.nats.servers }}
{{- fail "nats.servers: list the NATS cluster's servers (NATS_URL); the service's embedded server is not for Kubernetes" }}
{{- end }}
{{- join "," .Values.nats.servers }}
{{- end }}

{{/* Where the mounted secrets live inside the container. */}}
{{- define "alert-domains.natsCredsDir" -}}/etc/alert-domains/nats-credential{{- end }}
{{- define "alert-domains.natsTLSDir" -}}/etc/alert-domains/nats-tls{{- end }}
{{- define "alert-domains.azureDir" -}}/etc/alert-domains/azure{{- end }}
{{- define "alert-domains.tenantsDir" -}}/etc/alert-domains/tenants{{- end }}
{{- define "alert-domains.tenantSecretsDir" -}}/etc/alert-domains/secrets{{- end }}

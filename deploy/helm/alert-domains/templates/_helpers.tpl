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
The one Azure credential the values enable: clientSecret, certificate or
workloadIdentity. Rendering fails when none or more than one is enabled.
*/}}
{{- define "alert-domains.credential" -}}
{{- $forms := list }}
{{- range $form := list "clientSecret" "certificate" "workloadIdentity" }}
{{- if (get $.Values.azure $form).enabled }}
{{- $forms = append $forms $form }}
{{- end }}
{{- end }}
{{- if eq (len $forms) 0 }}
{{- fail "azure: no credential is enabled; enable exactly one of azure.clientSecret, azure.certificate, azure.workloadIdentity" }}
{{- else if gt (len $forms) 1 }}
{{- fail (printf "azure: %d credentials are enabled (%s); enable exactly one of azure.clientSecret, azure.certificate, azure.workloadIdentity and set enabled: false on the others" (len $forms) (join ", " (sortAlpha $forms))) }}
{{- end }}
{{- if and (eq (first $forms) "workloadIdentity") (not .Values.azure.clientId) }}
{{- fail "azure.workloadIdentity needs azure.clientId: the service account is annotated with it" }}
{{- end }}
{{- first $forms }}
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
{{- define "alert-domains.natsCredsDir" -}}/etc/alert-domains/nats-creds{{- end }}
{{- define "alert-domains.natsTLSDir" -}}/etc/alert-domains/nats-tls{{- end }}
{{- define "alert-domains.azureCertDir" -}}/etc/alert-domains/azure{{- end }}

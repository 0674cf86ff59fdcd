{{/* Names and labels shared by every template. */}}

{{- define "courier.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "courier.fullname" -}}
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

{{- define "courier.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "courier.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: api, worker or migrate. */}}
{{- define "courier.selectorLabels" -}}
app.kubernetes.io/name: {{ include "courier.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "courier.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "courier.secretName" -}}
{{- default (include "courier.fullname" .) .Values.secret.existingSecret -}}
{{- end -}}

{{/* The environment every courier container gets: the Secret's keys and the plain settings. */}}
{{- define "courier.env" -}}
- name: COURIER_DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ include "courier.secretName" . }}, key: COURIER_DATABASE_URL}
- name: COURIER_SECRET_KEY
  valueFrom:
    secretKeyRef: {name: {{ include "courier.secretName" . }}, key: COURIER_SECRET_KEY}
{{- if .Values.metrics.tokenEnabled }}
- name: COURIER_METRICS_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ include "courier.secretName" . }}, key: COURIER_METRICS_TOKEN}
{{- end }}
- name: COURIER_LOG_FORMAT
  value: {{ .Values.config.logFormat | quote }}
- name: COURIER_ALLOW_PRIVATE_DESTINATIONS
  value: {{ .Values.config.allowPrivateDestinations | toString | quote }}
{{- range $name, $value := .Values.config.extraEnv }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by the Deployments and the Job. */}}
{{- define "courier.podSpecCommon" -}}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* A writable /tmp under the read-only root filesystem. */}}
{{- define "courier.tmpVolume" -}}
volumes:
  - name: tmp
    emptyDir: {sizeLimit: 64Mi}
{{- end -}}

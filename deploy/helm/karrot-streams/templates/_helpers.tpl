{{- define "karrot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "karrot.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "karrot.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "karrot.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The roles deployed, one StatefulSet each: [all], or [pipeline aggregates] when split. */}}
{{- define "karrot.roles" -}}
{{- if .Values.roles.split -}}pipeline aggregates{{- else -}}all{{- end -}}
{{- end -}}

{{/* A role's StatefulSet name; also its pods' name prefix. Pod names (and so group instance ids
     and DNS labels) are <this>-<ordinal>: 52 characters leave room for the ordinal and the
     controller-revision label. */}}
{{- define "karrot.workload" -}}
{{- $root := index . 0 -}}{{- $role := index . 1 -}}
{{- if eq $role "all" -}}{{- include "karrot.fullname" $root | trunc 52 | trimSuffix "-" -}}
{{- else -}}{{- printf "%s-%s" (include "karrot.fullname" $root | trunc 40 | trimSuffix "-") $role -}}
{{- end -}}
{{- end -}}

{{- define "karrot.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "karrot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "karrot.selector" -}}
app.kubernetes.io/name: {{ include "karrot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "karrot.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "karrot.serviceAccount" -}}
{{- if .Values.serviceAccount.create -}}{{ default (include "karrot.fullname" .) .Values.serviceAccount.name }}
{{- else -}}{{ default "default" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}

{{/* Where the data volume is mounted: KARROT_DATA_DIR, the image's only writable path. */}}
{{- define "karrot.dataDir" -}}/var/lib/karrot-streams{{- end -}}

{{- define "karrot.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
# Only when the volume's root is not already the group's: a recursive chown of a large RocksDB
# directory at every start would delay each restart.
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "karrot.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "karrot.secretEnv" -}}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ index . 1 }}
      key: {{ index . 2 }}
{{- end -}}

{{/* The settings every container of the release shares (worker and init): connections,
     secrets from Secret references only, and TLS files from mounted Secrets. */}}
{{- define "karrot.env" -}}
{{- $v := .Values -}}
- name: KARROT_APP_ID
  value: {{ $v.appId | quote }}
- name: KARROT_KAFKA_BOOTSTRAP
  value: {{ $v.kafka.bootstrap | quote }}
- name: KARROT_KAFKA_SECURITY_PROTOCOL
  value: {{ $v.kafka.securityProtocol | quote }}
{{- if hasPrefix "SASL_" $v.kafka.securityProtocol }}
{{- if not (and $v.kafka.sasl.mechanism $v.kafka.sasl.secretName) }}
{{- fail "kafka.securityProtocol SASL_* needs kafka.sasl.mechanism and kafka.sasl.secretName" }}
{{- end }}
- name: KARROT_KAFKA_SASL_MECHANISM
  value: {{ $v.kafka.sasl.mechanism | quote }}
{{ include "karrot.secretEnv" (list "KARROT_KAFKA_SASL_USERNAME" $v.kafka.sasl.secretName $v.kafka.sasl.usernameKey) }}
{{ include "karrot.secretEnv" (list "KARROT_KAFKA_SASL_PASSWORD" $v.kafka.sasl.secretName $v.kafka.sasl.passwordKey) }}
{{- end }}
{{- if $v.kafka.tls.secretName }}
{{- if $v.kafka.tls.caKey }}
- name: KARROT_KAFKA_SSL_CAFILE
  value: /etc/karrot-streams/kafka-tls/{{ $v.kafka.tls.caKey }}
{{- end }}
{{- if $v.kafka.tls.certKey }}
- name: KARROT_KAFKA_SSL_CERTFILE
  value: /etc/karrot-streams/kafka-tls/{{ $v.kafka.tls.certKey }}
- name: KARROT_KAFKA_SSL_KEYFILE
  value: /etc/karrot-streams/kafka-tls/{{ $v.kafka.tls.keyKey }}
{{- end }}
{{- end }}
- name: KARROT_KAFKA_SSL_CHECK_HOSTNAME
  value: {{ $v.kafka.tls.checkHostname | quote }}
- name: KARROT_SCHEMA_REGISTRY_URL
  value: {{ $v.schemaRegistry.url | quote }}
{{- if $v.schemaRegistry.secretName }}
{{ include "karrot.secretEnv" (list "KARROT_SCHEMA_REGISTRY_USERNAME" $v.schemaRegistry.secretName $v.schemaRegistry.usernameKey) }}
{{ include "karrot.secretEnv" (list "KARROT_SCHEMA_REGISTRY_PASSWORD" $v.schemaRegistry.secretName $v.schemaRegistry.passwordKey) }}
{{- end }}
{{- if $v.schemaRegistry.tls.secretName }}
{{- if $v.schemaRegistry.tls.caKey }}
- name: KARROT_SCHEMA_REGISTRY_CA_FILE
  value: /etc/karrot-streams/registry-tls/{{ $v.schemaRegistry.tls.caKey }}
{{- end }}
{{- if $v.schemaRegistry.tls.certKey }}
- name: KARROT_SCHEMA_REGISTRY_CERT_FILE
  value: /etc/karrot-streams/registry-tls/{{ $v.schemaRegistry.tls.certKey }}
- name: KARROT_SCHEMA_REGISTRY_KEY_FILE
  value: /etc/karrot-streams/registry-tls/{{ $v.schemaRegistry.tls.keyKey }}
{{- end }}
{{- end }}
{{ include "karrot.secretEnv" (list "KARROT_DATABASE_URL" $v.database.secretName $v.database.urlKey) }}
{{ include "karrot.secretEnv" (list "KARROT_API_TOKENS" $v.auth.secretName $v.auth.apiTokensKey) }}
{{ include "karrot.secretEnv" (list "KARROT_ADMIN_TOKENS" $v.auth.secretName $v.auth.adminTokensKey) }}
{{ include "karrot.secretEnv" (list "KARROT_PEER_SECRET" $v.auth.secretName $v.auth.peerSecretKey) }}
- name: KARROT_TOPIC_PARTITIONS
  value: {{ $v.kafka.topicPartitions | quote }}
- name: KARROT_TOPIC_REPLICATION
  value: {{ $v.kafka.topicReplication | quote }}
- name: KARROT_PROCESSING_GUARANTEE
  value: {{ $v.processingGuarantee | quote }}
- name: KARROT_LOG_FORMAT
  value: {{ $v.logFormat | quote }}
- name: KARROT_DATA_DIR
  value: {{ include "karrot.dataDir" . }}
{{- range $name, $value := $v.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{- define "karrot.tlsVolumeMounts" -}}
{{- if .Values.kafka.tls.secretName }}
- name: kafka-tls
  mountPath: /etc/karrot-streams/kafka-tls
  readOnly: true
{{- end }}
{{- if .Values.schemaRegistry.tls.secretName }}
- name: registry-tls
  mountPath: /etc/karrot-streams/registry-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "karrot.tlsVolumes" -}}
{{- if .Values.kafka.tls.secretName }}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafka.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- if .Values.schemaRegistry.tls.secretName }}
- name: registry-tls
  secret:
    secretName: {{ .Values.schemaRegistry.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- end -}}

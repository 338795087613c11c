{{/* Names and labels. */}}
{{- define "imgdup.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "imgdup.fullname" -}}
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

{{- define "imgdup.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "imgdup.labels" -}}
helm.sh/chart: {{ include "imgdup.chart" . }}
{{ include "imgdup.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "imgdup.selectorLabels" -}}
app.kubernetes.io/name: {{ include "imgdup.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "imgdup.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Name of the Secret with DATABASE_URL, the API's IMGDUP_API_TOKEN (and optionally the Qdrant key and the Kafka SASL password). */}}
{{- define "imgdup.secretName" -}}
{{- default (include "imgdup.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* The pods' ServiceAccount: no token mounted and no Role bound (imgdup calls no Kubernetes API). */}}
{{- define "imgdup.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "imgdup.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Checks that fail the render early with a readable message. */}}
{{- define "imgdup.validate" -}}
{{- if not .Values.kafka.bootstrapServers }}
{{- fail "kafka.bootstrapServers is required" }}
{{- end }}
{{- if not .Values.qdrant.url }}
{{- fail "qdrant.url is required (the embedded vector store is single-process)" }}
{{- end }}
{{- if not .Values.blobStore.bucket }}
{{- fail "blobStore.bucket is required (the stored copies and features live there)" }}
{{- end }}
{{- /*
Without existingSecret the chart creates the Secret from values: DATABASE_URL for every pod, and
IMGDUP_API_TOKEN for the API, which every release runs and which refuses to start in production
(IMGDUP_ENVIRONMENT=production) without a real token. Workers and the migrate Job need no token.
*/}}
{{- if not .Values.secrets.existingSecret }}
{{- if not .Values.secrets.databaseUrl }}
{{- fail "set secrets.existingSecret, or secrets.databaseUrl and secrets.apiToken" }}
{{- end }}
{{- if not .Values.secrets.apiToken }}
{{- fail "set secrets.existingSecret, or secrets.databaseUrl and secrets.apiToken (the API's token)" }}
{{- end }}
{{- if lt (len .Values.secrets.apiToken) 16 }}
{{- fail "secrets.apiToken must be 16+ characters: the API refuses a shorter token in production" }}
{{- end }}
{{- end }}
{{- range $key, $value := .Values.settings }}
{{- if regexMatch "(?i)(DATABASE_URL|TOKEN|PASSWORD|SECRET|API_KEY)" $key }}
{{- fail (printf "settings.%s looks like a secret: put it in the Secret (secrets.*), not the ConfigMap" $key) }}
{{- end }}
{{- if eq $key "IMGDUP_TOPIC_REPLICATION_FACTOR" "IMGDUP_REJECTED_PAIR_RETENTION_DAYS" "IMGDUP_CLUSTER_CHANGES_RETENTION_DAYS" }}
{{- fail (printf "settings.%s: set it with kafka.topicReplicationFactor or prune.*RetentionDays" $key) }}
{{- end }}
{{- if regexMatch "^IMGDUP_(BLOB_|S3_)" $key }}
{{- fail (printf "settings.%s: set the blob store with blobStore.*, its credentials with secrets.s3*" $key) }}
{{- end }}
{{- if regexMatch "^(IMGDUP_)?KAFKA_(SECURITY|SASL|SSL)_" $key }}
{{- fail (printf "settings.%s: set Kafka security with kafka.security.*, not settings" $key) }}
{{- end }}
{{- end }}
{{- include "imgdup.validateKafkaSecurity" . }}
{{- if .Values.networkPolicy.enabled }}
{{- range $service := list "kafka" "postgres" "qdrant" }}
{{- if not (index $.Values.networkPolicy $service).to }}
{{- fail (printf "networkPolicy.%s.to is required with networkPolicy.enabled: the pods reach no private address but the peers named there (pod/namespace selectors or ipBlock CIDRs)" $service) }}
{{- end }}
{{- end }}
{{- end }}
{{- with .Values.api.ingress.certManager }}
{{- if and .issuer .clusterIssuer }}
{{- fail "api.ingress.certManager: set issuer or clusterIssuer, not both" }}
{{- end }}
{{- end }}
{{- if hasKey .Values.clusterer "replicas" }}
{{- if ne (int .Values.clusterer.replicas) 1 }}
{{- fail "clusterer.replicas must be 1: the clusterer is the single writer of clusters" }}
{{- end }}
{{- end }}
{{- $partitions := int (default "4" .Values.settings.IMGDUP_TOPIC_PARTITIONS) }}
{{- range $role := list "worker" "verifier" }}
{{- $v := index $.Values $role }}
{{- $most := ternary $v.autoscaling.maxReplicas $v.replicas $v.autoscaling.enabled | int }}
{{- if gt $most $partitions }}
{{- fail (printf "%s: %d pods but only %d partitions (settings.IMGDUP_TOPIC_PARTITIONS); the extra pods would idle" $role $most $partitions) }}
{{- end }}
{{- end }}
{{- end }}

{{/* kafka.security: the same consistency rules as imgdup/settings.py, at render time. */}}
{{- define "imgdup.validateKafkaSecurity" -}}
{{- $sec := .Values.kafka.security }}
{{- if not (has $sec.protocol (list "PLAINTEXT" "SSL" "SASL_PLAINTEXT" "SASL_SSL")) }}
{{- fail (printf "kafka.security.protocol must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, not %q" $sec.protocol) }}
{{- end }}
{{- if hasPrefix "SASL_" $sec.protocol }}
{{- if not (has $sec.sasl.mechanism (list "PLAIN" "SCRAM-SHA-256" "SCRAM-SHA-512")) }}
{{- fail (printf "kafka.security.sasl.mechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 with %s" $sec.protocol) }}
{{- end }}
{{- if not $sec.sasl.username }}
{{- fail (printf "kafka.security.sasl.username is required with %s" $sec.protocol) }}
{{- end }}
{{- if and (not .Values.secrets.existingSecret) (not .Values.secrets.kafkaSaslPassword) }}
{{- fail (printf "%s needs a password: secrets.kafkaSaslPassword, or the %s key of secrets.existingSecret" $sec.protocol .Values.secrets.keys.kafkaSaslPassword) }}
{{- end }}
{{- else if or $sec.sasl.mechanism $sec.sasl.username .Values.secrets.kafkaSaslPassword }}
{{- fail (printf "kafka.security.sasl.* or secrets.kafkaSaslPassword set, but protocol %s uses no SASL login (SASL_SSL or SASL_PLAINTEXT does)" $sec.protocol) }}
{{- end }}
{{- if $sec.tls.secretName }}
{{- if not (hasSuffix "SSL" $sec.protocol) }}
{{- fail (printf "kafka.security.tls.secretName set, but protocol %s uses no TLS (SSL or SASL_SSL does)" $sec.protocol) }}
{{- end }}
{{- if ne (empty $sec.tls.certKey) (empty $sec.tls.keyKey) }}
{{- fail "kafka.security.tls.certKey and keyKey go together (a client certificate and its key)" }}
{{- end }}
{{- if and (empty $sec.tls.caKey) (empty $sec.tls.certKey) }}
{{- fail "kafka.security.tls.secretName needs caKey, or certKey and keyKey" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Where the Kafka TLS Secret's files are mounted; imgdup reads them through KAFKA_SSL_*FILE. */}}
{{- define "imgdup.kafkaTlsDir" -}}
/etc/imgdup/kafka-tls
{{- end }}

{{/*
Non-secret environment, the same for every role. The ConfigMap holds it for the Deployments;
the migration hook Job, which runs before the ConfigMap exists, gets it inline.
*/}}
{{- define "imgdup.settings" -}}
KAFKA_BOOTSTRAP_SERVERS: {{ .Values.kafka.bootstrapServers | quote }}
{{- $sec := .Values.kafka.security }}
KAFKA_SECURITY_PROTOCOL: {{ $sec.protocol | quote }}
{{- if hasPrefix "SASL_" $sec.protocol }}
KAFKA_SASL_MECHANISM: {{ $sec.sasl.mechanism | quote }}
KAFKA_SASL_USERNAME: {{ $sec.sasl.username | quote }}
{{- end }}
{{- if $sec.tls.secretName }}
{{- if $sec.tls.caKey }}
KAFKA_SSL_CAFILE: {{ printf "%s/ca.crt" (include "imgdup.kafkaTlsDir" .) | quote }}
{{- end }}
{{- if $sec.tls.certKey }}
KAFKA_SSL_CERTFILE: {{ printf "%s/client.crt" (include "imgdup.kafkaTlsDir" .) | quote }}
KAFKA_SSL_KEYFILE: {{ printf "%s/client.key" (include "imgdup.kafkaTlsDir" .) | quote }}
{{- end }}
{{- end }}
QDRANT_URL: {{ .Values.qdrant.url | quote }}
IMGDUP_API_HOST: "0.0.0.0"
IMGDUP_API_PORT: {{ .Values.api.port | quote }}
IMGDUP_WORKER_METRICS_PORT: {{ .Values.metrics.workerPort | quote }}
IMGDUP_TOPIC_REPLICATION_FACTOR: {{ .Values.kafka.topicReplicationFactor | quote }}
IMGDUP_REJECTED_PAIR_RETENTION_DAYS: {{ .Values.prune.rejectedPairRetentionDays | quote }}
IMGDUP_CLUSTER_CHANGES_RETENTION_DAYS: {{ .Values.prune.clusterChangesRetentionDays | quote }}
IMGDUP_BLOB_STORE: "s3"
{{- with .Values.blobStore.endpoint }}
IMGDUP_S3_ENDPOINT: {{ . | quote }}
{{- end }}
IMGDUP_S3_BUCKET: {{ .Values.blobStore.bucket | quote }}
IMGDUP_S3_PREFIX: {{ .Values.blobStore.prefix | quote }}
IMGDUP_S3_REGION: {{ .Values.blobStore.region | quote }}
IMGDUP_BLOB_ORPHAN_GRACE_HOURS: {{ .Values.blobStore.orphanGraceHours | quote }}
IMGDUP_VERIFIER_VERSION: {{ .Values.verifierModels.version | quote }}
{{- if .Values.verifierModels.claimName }}
IMGDUP_VERIFIER_MODELS_DIR: {{ include "imgdup.modelsDir" . | quote }}
{{- end }}
{{- range $key, $value := .Values.settings }}
{{ $key }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/*
Secret environment: references into a Secret, never values. Called with
(dict "root" $ "secret" NAME "apiToken" BOOL). Only the API passes "apiToken" true: it is the only
process that reads IMGDUP_API_TOKEN and the optional IMGDUP_API_CREDENTIALS (every route but the
probes needs one of them, and in production it refuses to start without a real token). Workers serve no authenticated routes; they, `imgdup health` and the
migrate Job need no token and do not get it.
*/}}
{{- define "imgdup.secretEnv" -}}
{{- $keys := .root.Values.secrets.keys -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $keys.databaseUrl }}
{{- if .apiToken }}
- name: IMGDUP_API_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $keys.apiToken }}
- name: IMGDUP_API_CREDENTIALS
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $keys.apiCredentials | default "IMGDUP_API_CREDENTIALS" }}
      optional: true
{{- end }}
- name: IMGDUP_QDRANT_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $keys.qdrantApiKey }}
      optional: true
- name: IMGDUP_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $keys.s3AccessKeyId | default "IMGDUP_S3_ACCESS_KEY_ID" }}
      optional: true
- name: IMGDUP_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $keys.s3SecretAccessKey | default "IMGDUP_S3_SECRET_ACCESS_KEY" }}
      optional: true
{{- if hasPrefix "SASL_" .root.Values.kafka.security.protocol }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $keys.kafkaSaslPassword }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by every Deployment and the Job. */}}
{{- define "imgdup.podCommon" -}}
serviceAccountName: {{ include "imgdup.serviceAccountName" . }}
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
{{- end }}

{{/*
Writable folders under a read-only root: the working directory (Faust's data) and /tmp; and the
Kafka TLS files when kafka.security.tls.secretName names a Secret (fixed names: ca.crt, client.crt,
client.key; readable by the pod's group, fsGroup).
*/}}
{{/* Where retrained verifier models live (`imgdup retrain` writes, workers read). */}}
{{- define "imgdup.modelsDir" -}}
/var/lib/imgdup-models
{{- end }}

{{- define "imgdup.volumes" -}}
volumes:
  - name: work
    emptyDir: {}
  - name: tmp
    emptyDir: {}
{{- if .Values.verifierModels.claimName }}
  - name: models
    persistentVolumeClaim:
      claimName: {{ .Values.verifierModels.claimName }}
{{- end }}
{{- with .Values.kafka.security.tls }}
{{- if .secretName }}
  - name: kafka-tls
    secret:
      secretName: {{ .secretName }}
      defaultMode: 0440
      items:
        {{- if .caKey }}
        - key: {{ .caKey }}
          path: ca.crt
        {{- end }}
        {{- if .certKey }}
        - key: {{ .certKey }}
          path: client.crt
        - key: {{ .keyKey }}
          path: client.key
        {{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- define "imgdup.volumeMounts" -}}
volumeMounts:
  - name: work
    mountPath: /var/lib/imgdup
  - name: tmp
    mountPath: /tmp
{{- if .Values.verifierModels.claimName }}
  - name: models
    mountPath: {{ include "imgdup.modelsDir" . }}
    readOnly: true
{{- end }}
{{- if .Values.kafka.security.tls.secretName }}
  - name: kafka-tls
    mountPath: {{ include "imgdup.kafkaTlsDir" . }}
    readOnly: true
{{- end }}
{{- end }}

{{/* Prometheus scrape annotations for a pod serving /metrics on `port`. */}}
{{- define "imgdup.scrapeAnnotations" -}}
{{- if .root.Values.metrics.podAnnotations -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{/*
A worker Deployment. Called with (dict "root" $ "component" "worker" "role" "images" "values" .Values.worker).
The clusterer passes "single" true: one replica, Recreate, and no HPA.
*/}}
{{- define "imgdup.workerDeployment" -}}
{{- $root := .root -}}
{{- $v := .values -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "imgdup.fullname" $root }}-{{ .component }}
  labels:
    {{- include "imgdup.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
    imgdup.io/role: {{ .role }}
spec:
  {{- if .single }}
  replicas: 1
  strategy:
    type: Recreate
  {{- else if not $v.autoscaling.enabled }}
  replicas: {{ $v.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "imgdup.selectorLabels" $root | nindent 6 }}
      app.kubernetes.io/component: {{ .component }}
  template:
    metadata:
      labels:
        {{- include "imgdup.selectorLabels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ .component }}
        imgdup.io/role: {{ .role }}
      annotations:
        checksum/config: {{ include "imgdup.settings" $root | sha256sum }}
        {{- include "imgdup.scrapeAnnotations" (dict "root" $root "port" $root.Values.metrics.workerPort) | nindent 8 }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- include "imgdup.podCommon" $root | nindent 6 }}
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      containers:
        - name: {{ .component }}
          image: {{ include "imgdup.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args: ["worker", "--roles", {{ .role | quote }}]
          envFrom:
            - configMapRef:
                name: {{ include "imgdup.fullname" $root }}
          env:
            {{- include "imgdup.secretEnv" (dict "root" $root "secret" (include "imgdup.secretName" $root)) | nindent 12 }}
          ports:
            - name: metrics
              containerPort: {{ $root.Values.metrics.workerPort }}
              protocol: TCP
          # `imgdup health` reads the worker's heartbeat file: it fails while the worker has not
          # started its agents yet (startup: up to 5 min for the model and the group join), when
          # the event loop is stuck, or when messages arrive but offsets stop being committed.
          startupProbe:
            exec:
              command: ["imgdup", "health", "--roles", {{ .role | quote }}]
            periodSeconds: 10
            timeoutSeconds: 10
            failureThreshold: 30
          livenessProbe:
            exec:
              command: ["imgdup", "health", "--roles", {{ .role | quote }}]
            periodSeconds: 30
            timeoutSeconds: 10
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: /metrics
              port: metrics
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 3
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          {{- include "imgdup.volumeMounts" $root | nindent 10 }}
      {{- include "imgdup.volumes" $root | nindent 6 }}
{{- end }}

{{/* A CPU HorizontalPodAutoscaler for the Deployment named by `component`. */}}
{{- define "imgdup.hpa" -}}
{{- $root := .root -}}
{{- $a := .values.autoscaling -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "imgdup.fullname" $root }}-{{ .component }}
  labels:
    {{- include "imgdup.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "imgdup.fullname" $root }}-{{ .component }}
  minReplicas: {{ $a.minReplicas }}
  maxReplicas: {{ $a.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $a.targetCPUUtilizationPercentage }}
{{- end }}

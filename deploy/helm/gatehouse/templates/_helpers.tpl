{{/* Names and labels. */}}
{{- define "gatehouse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gatehouse.fullname" -}}
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

{{- define "gatehouse.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "gatehouse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* gatehouse.selector: selector labels of one component (gateway | worker). */}}
{{- define "gatehouse.selector" -}}
app.kubernetes.io/name: {{ include "gatehouse.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "gatehouse.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "gatehouse.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "gatehouse.image" -}}
{{- $flavour := .Values.image.flavour | default (ternary "slim" "full" (ne (include "gatehouse.auditBackend" .) "embedded")) -}}
{{- $tag := .Values.image.tag | default (printf "%s-%s" .Chart.AppVersion $flavour) -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}

{{/* Which backends are external. */}}
{{- define "gatehouse.externalDatabase" -}}
{{- if or .Values.database.url .Values.database.existingSecret.name }}true{{ end -}}
{{- end -}}

{{- define "gatehouse.auditBackend" -}}
{{- if .Values.audit.backend -}}{{ .Values.audit.backend }}{{- else if .Values.clickhouse.addr -}}clickhouse{{- else -}}embedded{{- end -}}
{{- end -}}

{{/* gatehouse.multi: "true" when more than one gateway replica can run. */}}
{{- define "gatehouse.multi" -}}
{{- if or (gt (int .Values.replicaCount) 1) (and .Values.autoscaling.enabled (gt (int .Values.autoscaling.maxReplicas) 1)) }}true{{ end -}}
{{- end -}}

{{/*
gatehouse.validate fails the render on configurations that would run but
lose data or split state. Included by every workload template.
*/}}
{{- define "gatehouse.validate" -}}
{{- $db := include "gatehouse.externalDatabase" . -}}
{{- $audit := include "gatehouse.auditBackend" . -}}
{{- if include "gatehouse.multi" . -}}
{{- if not $db -}}
{{- fail "gatehouse: more than one replica (replicaCount > 1 or autoscaling) needs an external PostgreSQL config store shared by all of them: set database.url or database.existingSecret. With the default SQLite store each replica would have its own configuration." -}}
{{- end -}}
{{- if not .Values.temporal.address -}}
{{- fail "gatehouse: replicas on a shared PostgreSQL store must share one external Temporal: set temporal.address (host:port of the frontend). With the embedded Temporal each replica holds its own approvals, and an approval started on one replica cannot be decided through another." -}}
{{- end -}}
{{- if eq $audit "embedded" -}}
{{- fail "gatehouse: more than one replica needs one ClickHouse for the audit trail: set clickhouse.addr (or audit.backend=off). With the embedded engine each replica keeps its own trail, and audit queries would see one replica's events only." -}}
{{- end -}}
{{- end -}}
{{- if and (not .Values.persistence.enabled) (not $db) -}}
{{- fail "gatehouse: persistence.enabled=false keeps the data directory in an emptyDir, which would lose the SQLite config store: set database.url or database.existingSecret (PostgreSQL), or enable persistence." -}}
{{- end -}}
{{- if and (not .Values.persistence.enabled) (not .Values.temporal.address) .Values.approvals.enabled -}}
{{- fail "gatehouse: persistence.enabled=false would lose the embedded Temporal's pending approvals on every restart: set temporal.address, or enable persistence." -}}
{{- end -}}
{{- if and .Values.worker.enabled (not .Values.temporal.address) -}}
{{- fail "gatehouse: worker.enabled needs temporal.address: `gatehouse worker` runs workflows on an external Temporal only (the embedded server serves the gateway process that runs it)." -}}
{{- end -}}
{{- if and .Values.worker.enabled (not $db) -}}
{{- fail "gatehouse: worker.enabled needs the gateways' PostgreSQL config store (database.url or database.existingSecret): workers read the configuration from it." -}}
{{- end -}}
{{- if and .Values.worker.exclusive (not .Values.worker.enabled) -}}
{{- fail "gatehouse: worker.exclusive leaves approval workflows to dedicated workers: enable worker.enabled too." -}}
{{- end -}}
{{- if and (eq $audit "clickhouse") (not .Values.clickhouse.addr) -}}
{{- fail "gatehouse: audit.backend=clickhouse needs clickhouse.addr." -}}
{{- end -}}
{{- if not (has $audit (list "embedded" "clickhouse" "off")) -}}
{{- fail (printf "gatehouse: audit.backend %q: want embedded, clickhouse or off" $audit) -}}
{{- end -}}
{{- if and .Values.vault.addr (not (has .Values.vault.auth (list "kubernetes" "token" "approle" "jwt"))) -}}
{{- fail (printf "gatehouse: vault.auth %q: want kubernetes, token, approle or jwt" .Values.vault.auth) -}}
{{- end -}}
{{- if and .Values.vault.addr (eq .Values.vault.auth "token") (not .Values.vault.tokenSecret.name) -}}
{{- fail "gatehouse: vault.auth=token needs vault.tokenSecret.name" -}}
{{- end -}}
{{- if and .Values.vault.addr (eq .Values.vault.auth "approle") (or (not .Values.vault.approle.roleId) (not .Values.vault.approle.secretIdSecret.name)) -}}
{{- fail "gatehouse: vault.auth=approle needs vault.approle.roleId and vault.approle.secretIdSecret.name" -}}
{{- end -}}
{{- if and .Values.vault.addr (eq .Values.vault.auth "jwt") (not .Values.vault.jwtSecret.name) -}}
{{- fail "gatehouse: vault.auth=jwt needs vault.jwtSecret.name" -}}
{{- end -}}
{{- if and .Values.ingress.enabled (not (has .Values.ingress.sessionAffinity (list "clientIP" "cookie" "none"))) -}}
{{- fail (printf "gatehouse: ingress.sessionAffinity %q: want clientIP, cookie or none (hashing on the Mcp-Session-Id header cannot work: see values.yaml)" .Values.ingress.sessionAffinity) -}}
{{- end -}}
{{- end -}}

{{/* Secret paths inside the pod. */}}
{{- define "gatehouse.secretsDir" -}}/etc/gatehouse/secrets{{- end -}}

{{/*
gatehouse.databaseURL: the URL given in values, with passfile=… appended
when the password comes from a mounted pgpass Secret.
*/}}
{{- define "gatehouse.databaseURL" -}}
{{- $u := .Values.database.url -}}
{{- if .Values.database.passwordSecret.name -}}
{{- $sep := ternary "&" "?" (contains "?" $u) -}}
{{- printf "%s%spassfile=%s/pgpass" $u $sep (include "gatehouse.secretsDir" .) -}}
{{- else -}}
{{- $u -}}
{{- end -}}
{{- end -}}

{{/*
gatehouse.commonFlags: flags shared by serve and worker (Temporal, Vault,
audit). Argument: the root context.
*/}}
{{- define "gatehouse.commonFlags" -}}
{{- $s := include "gatehouse.secretsDir" . -}}
{{- with .Values.temporal }}
- --temporal-namespace={{ .namespace }}
{{- if .taskQueue }}
- --temporal-task-queue={{ .taskQueue }}
{{- end }}
{{- if .tls.enabled }}
- --temporal-tls
{{- if .tls.secretName }}
- --temporal-tls-ca={{ $s }}/temporal/ca.crt
{{- if .tls.clientCert }}
- --temporal-tls-cert={{ $s }}/temporal/tls.crt
- --temporal-tls-key={{ $s }}/temporal/tls.key
{{- end }}
{{- end }}
{{- if .tls.serverName }}
- --temporal-tls-server-name={{ .tls.serverName }}
{{- end }}
{{- end }}
{{- if .apiKeySecret.name }}
- --temporal-api-key-file={{ $s }}/temporal-api-key/{{ .apiKeySecret.key }}
{{- end }}
{{- end }}
{{- $audit := include "gatehouse.auditBackend" . }}
- --audit={{ $audit }}
{{- if ne $audit "off" }}
- --audit-fsync={{ .Values.audit.fsync }}
- --audit-spool-budget={{ .Values.audit.spoolBudget }}
- --audit-on-full={{ .Values.audit.onFull }}
- --audit-retention-days={{ .Values.audit.retentionDays }}
{{- end }}
{{- if eq $audit "clickhouse" }}
{{- with .Values.clickhouse }}
{{- if .database }}
- --clickhouse-database={{ .database }}
{{- end }}
{{- if .user }}
- --clickhouse-user={{ .user }}
{{- end }}
{{- if .passwordSecret.name }}
- --clickhouse-password-file={{ $s }}/clickhouse/{{ .passwordSecret.key }}
{{- end }}
{{- if .cluster }}
- --clickhouse-cluster={{ .cluster }}
{{- end }}
{{- if .tls.enabled }}
- --clickhouse-tls
{{- if .tls.caSecret.name }}
- --clickhouse-ca={{ $s }}/clickhouse-ca/{{ .tls.caSecret.key }}
{{- end }}
{{- if .tls.serverName }}
- --clickhouse-tls-server-name={{ .tls.serverName }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- with .Values.vault }}
{{- if .addr }}
- --vault-auth={{ .auth }}
{{- if .namespace }}
- --vault-namespace={{ .namespace }}
{{- end }}
{{- if .authMount }}
- --vault-auth-mount={{ .authMount }}
{{- end }}
{{- if .caSecret.name }}
- --vault-ca-cert={{ $s }}/vault-ca/{{ .caSecret.key }}
{{- end }}
{{- if .tlsServerName }}
- --vault-tls-server-name={{ .tlsServerName }}
{{- end }}
{{- if has .auth (list "kubernetes" "jwt") }}
- --vault-role={{ .role }}
{{- end }}
{{- if eq .auth "token" }}
- --vault-token-file={{ $s }}/vault-token/{{ .tokenSecret.key }}
{{- end }}
{{- if eq .auth "approle" }}
- --vault-role-id={{ .approle.roleId }}
- --vault-secret-id-file={{ $s }}/vault-secret-id/{{ .approle.secretIdSecret.key }}
{{- end }}
{{- if eq .auth "jwt" }}
- --vault-jwt-file={{ $s }}/vault-jwt/{{ .jwtSecret.key }}
{{- end }}
- --vault-kv-cache-ttl={{ .kvCacheTTL }}
- --vault-timeout={{ .timeout }}
{{- end }}
{{- end }}
{{- end -}}

{{/* gatehouse.env: environment shared by serve and worker. */}}
{{- define "gatehouse.env" -}}
- name: GATEHOUSE_CONFIG
  value: /etc/gatehouse/gatehouse.yaml
- name: GATEHOUSE_LISTEN
  value: "0.0.0.0:8080"
- name: GATEHOUSE_DATA_DIR
  value: /var/lib/gatehouse
{{- if .Values.database.existingSecret.name }}
- name: GATEHOUSE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret.name }}
      key: {{ .Values.database.existingSecret.key }}
{{- else if .Values.database.url }}
- name: GATEHOUSE_DATABASE_URL
  value: {{ include "gatehouse.databaseURL" . | quote }}
{{- end }}
{{- if .Values.temporal.address }}
- name: GATEHOUSE_TEMPORAL_ADDRESS
  value: {{ .Values.temporal.address | quote }}
{{- end }}
{{- if eq (include "gatehouse.auditBackend" .) "clickhouse" }}
- name: GATEHOUSE_CLICKHOUSE_ADDR
  value: {{ .Values.clickhouse.addr | quote }}
{{- end }}
{{- if .Values.vault.addr }}
- name: GATEHOUSE_VAULT_ADDR
  value: {{ .Values.vault.addr | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* gatehouse.secretMounts / gatehouse.secretVolumes: the Secrets the flags name. */}}
{{- define "gatehouse.secretList" -}}
{{- $l := list -}}
{{- if .Values.database.passwordSecret.name -}}{{- $l = append $l (dict "vol" "pgpass" "name" .Values.database.passwordSecret.name "items" (list (dict "key" .Values.database.passwordSecret.key "path" "pgpass")) "mount" "" "subPath" "pgpass") -}}{{- end -}}
{{- if and .Values.temporal.tls.enabled .Values.temporal.tls.secretName -}}{{- $l = append $l (dict "vol" "temporal-tls" "name" .Values.temporal.tls.secretName "mount" "temporal") -}}{{- end -}}
{{- if .Values.temporal.apiKeySecret.name -}}{{- $l = append $l (dict "vol" "temporal-api-key" "name" .Values.temporal.apiKeySecret.name "mount" "temporal-api-key") -}}{{- end -}}
{{- if and (eq (include "gatehouse.auditBackend" .) "clickhouse") .Values.clickhouse.passwordSecret.name -}}{{- $l = append $l (dict "vol" "clickhouse" "name" .Values.clickhouse.passwordSecret.name "mount" "clickhouse") -}}{{- end -}}
{{- if and (eq (include "gatehouse.auditBackend" .) "clickhouse") .Values.clickhouse.tls.enabled .Values.clickhouse.tls.caSecret.name -}}{{- $l = append $l (dict "vol" "clickhouse-ca" "name" .Values.clickhouse.tls.caSecret.name "mount" "clickhouse-ca") -}}{{- end -}}
{{- if .Values.vault.addr -}}
{{- if .Values.vault.caSecret.name -}}{{- $l = append $l (dict "vol" "vault-ca" "name" .Values.vault.caSecret.name "mount" "vault-ca") -}}{{- end -}}
{{- if eq .Values.vault.auth "token" -}}{{- $l = append $l (dict "vol" "vault-token" "name" .Values.vault.tokenSecret.name "mount" "vault-token") -}}{{- end -}}
{{- if eq .Values.vault.auth "approle" -}}{{- $l = append $l (dict "vol" "vault-secret-id" "name" .Values.vault.approle.secretIdSecret.name "mount" "vault-secret-id") -}}{{- end -}}
{{- if eq .Values.vault.auth "jwt" -}}{{- $l = append $l (dict "vol" "vault-jwt" "name" .Values.vault.jwtSecret.name "mount" "vault-jwt") -}}{{- end -}}
{{- end -}}
{{- toJson $l -}}
{{- end -}}

{{- define "gatehouse.secretVolumes" -}}
{{- range (include "gatehouse.secretList" . | fromJsonArray) }}
- name: secret-{{ .vol }}
  secret:
    secretName: {{ .name }}
    defaultMode: 0440
    {{- with .items }}
    items:
      {{- toYaml . | nindent 6 }}
    {{- end }}
{{- end }}
{{- end -}}

{{- define "gatehouse.secretMounts" -}}
{{- $s := include "gatehouse.secretsDir" . -}}
{{- range (include "gatehouse.secretList" . | fromJsonArray) }}
- name: secret-{{ .vol }}
  {{- if .subPath }}
  mountPath: {{ $s }}/{{ .subPath }}
  subPath: {{ .subPath }}
  {{- else }}
  mountPath: {{ $s }}/{{ .mount }}
  {{- end }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* gatehouse.podSpec: pod-level settings shared by gateway and worker pods. */}}
{{- define "gatehouse.podSpec" -}}
{{- $root := .root -}}
serviceAccountName: {{ include "gatehouse.serviceAccountName" $root }}
automountServiceAccountToken: {{ if and $root.Values.vault.addr (eq $root.Values.vault.auth "kubernetes") }}true{{ else }}false{{ end }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
enableServiceLinks: false
{{- with $root.Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $root.Values.affinity }}
affinity:
  {{- toYaml $root.Values.affinity | nindent 2 }}
{{- else }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "gatehouse.selector" . | nindent 14 }}
{{- end }}
{{- with $root.Values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

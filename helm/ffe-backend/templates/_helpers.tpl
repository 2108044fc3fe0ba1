{{/* Chart name (nameOverride wins). */}}
{{- define "ffe-backend.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name. fullnameOverride wins; a release whose name is contained in the chart name's first word
(release "ffe" for chart "ffe-backend", the seed's command) gets the chart name, so the seed's
`kubectl rollout status deployment/ffe-backend -n ffe` works; otherwise "<release>-<name>".
*/}}
{{- define "ffe-backend.fullname" -}}
{{- $name := include "ffe-backend.name" . }}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else if hasPrefix (printf "%s-" .Release.Name) $name }}
{{- $name }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "ffe-backend.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ffe-backend.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ffe-backend.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ffe-backend.labels" -}}
helm.sh/chart: {{ include "ffe-backend.chart" . }}
{{ include "ffe-backend.selectorLabels" . }}
app.kubernetes.io/version: {{ include "ffe-backend.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: backend
app.kubernetes.io/part-of: finance-feedback-engine
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ffe-backend.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ffe-backend.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ffe-backend.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "ffe-backend.image" -}}
{{- if contains "@sha256:" .Values.image.repository }}
{{- .Values.image.repository }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "ffe-backend.imageTag" .) }}
{{- end }}
{{- end }}

{{/* HPA floor: replicaCount raises autoscaling.minReplicas, never lowers it. */}}
{{- define "ffe-backend.hpaMin" -}}
{{- max (int .Values.autoscaling.minReplicas) (int .Values.replicaCount) }}
{{- end }}

{{/*
Deployment replicas.
- autoscaling off: replicaCount.
- autoscaling on: the live count (the HPA's choice, read with `lookup`; empty in `helm template`),
  clamped into [HPA floor, maxReplicas]. So an upgrade never scales the HPA's pods down, and a new
  floor (`--set replicaCount=5`) is reached at once.
*/}}
{{- define "ffe-backend.replicas" -}}
{{- if .Values.autoscaling.enabled }}
{{- $min := int (include "ffe-backend.hpaMin" .) }}
{{- $live := 0 }}
{{- $current := lookup "apps/v1" "Deployment" .Release.Namespace (include "ffe-backend.fullname" .) }}
{{- if and $current $current.spec }}
{{- $live = int (default 0 $current.spec.replicas) }}
{{- end }}
{{- min (max $min $live) (int .Values.autoscaling.maxReplicas) }}
{{- else }}
{{- int .Values.replicaCount }}
{{- end }}
{{- end }}

{{/* Smallest pod count the chart can run at (for the PDB check). */}}
{{- define "ffe-backend.minPods" -}}
{{- if .Values.autoscaling.enabled }}{{ include "ffe-backend.hpaMin" . }}{{ else }}{{ int .Values.replicaCount }}{{ end }}
{{- end }}

{{- define "ffe-backend.secretName" -}}
{{- if .Values.secrets.create }}{{ include "ffe-backend.fullname" . }}{{ else }}{{ .Values.secrets.existingSecret }}{{ end }}
{{- end }}

{{- define "ffe-backend.vaultFile" -}}
/vault/secrets/{{ .Values.vault.secretName }}
{{- end }}

{{/* postgresql URL for PgBouncer without credentials: host:port/db?sslmode=[&sslrootcert=] */}}
{{- define "ffe-backend.pgbouncerTarget" -}}
{{- printf "%s:%d/%s?sslmode=%s" .Values.database.host (int .Values.database.port) .Values.database.name .Values.database.sslmode }}
{{- with .Values.database.sslrootcert }}{{ printf "&sslrootcert=%s" . }}{{ end }}
{{- end }}

{{/*
Default Vault agent template: every key of the secret as `export KEY='value'`, then DATABASE_URL for
PgBouncer from the credential keys (unless database.external, where Vault or database.url holds it).
*/}}
{{- define "ffe-backend.vaultTemplate" -}}
{{- if .Values.vault.agentInjectTemplate }}
{{- .Values.vault.agentInjectTemplate }}
{{- else }}
{{- $v := .Values }}
{{- printf "{{- with secret %q -}}\n" $v.vault.secretPath }}
{{- "{{- range $k, $v := .Data.data }}\nexport {{ $k }}='{{ $v }}'\n{{- end }}\n" }}
{{- if not $v.database.external }}
{{- printf "export DATABASE_URL='postgresql://{{ index .Data.data %q | urlquery }}:{{ index .Data.data %q | urlquery }}@%s'\n" $v.database.usernameKey $v.database.passwordKey (include "ffe-backend.pgbouncerTarget" .) }}
{{- end }}
{{- "{{- end }}\n" }}
{{- end }}
{{- end }}

{{/* Render-time checks: bad input fails `helm template/install` with a message naming the value. */}}
{{- define "ffe-backend.validate" -}}
{{- $minPods := int (include "ffe-backend.minPods" .) }}
{{- if and .Values.autoscaling.enabled (gt (int (include "ffe-backend.hpaMin" .)) (int .Values.autoscaling.maxReplicas)) }}
{{- fail (printf "replicaCount/autoscaling.minReplicas (%s) is above autoscaling.maxReplicas (%d): raise autoscaling.maxReplicas too" (include "ffe-backend.hpaMin" .) (int .Values.autoscaling.maxReplicas)) }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "string" .Values.podDisruptionBudget.minAvailable)) (ge (int .Values.podDisruptionBudget.minAvailable) $minPods) }}
{{- fail (printf "podDisruptionBudget.minAvailable (%d) must be below the replica count (%d), else node drains block forever" (int .Values.podDisruptionBudget.minAvailable) $minPods) }}
{{- end }}
{{- if and .Values.persistence.enabled (not .Values.persistence.perPod) (ne .Values.persistence.accessMode "ReadWriteMany") (gt $minPods 1) }}
{{- fail "persistence: one ReadWriteOnce/ReadWriteOncePod claim cannot be shared by several replicas on several nodes; use persistence.accessMode=ReadWriteMany (NFS) or persistence.perPod=true" }}
{{- end }}
{{- if le (int .Values.terminationGracePeriodSeconds) (int .Values.lifecycle.preStopSleepSeconds) }}
{{- fail "terminationGracePeriodSeconds must be longer than lifecycle.preStopSleepSeconds (the app needs time to finish requests after the pre-stop delay)" }}
{{- end }}
{{- if and .Values.database.external (not .Values.database.url) (not .Values.vault.enabled) }}
{{- fail "database.external=true needs database.url (or Vault providing DATABASE_URL)" }}
{{- end }}
{{- if and (not .Values.vault.enabled) (not .Values.database.external) (not (include "ffe-backend.secretName" .)) }}
{{- fail "without Vault the DB credentials come from a Secret: set secrets.create=true with secrets.data, or secrets.existingSecret" }}
{{- end }}
{{- if and (has .Values.database.sslmode (list "verify-ca" "verify-full")) (not .Values.database.sslrootcert) }}
{{- fail (printf "database.sslmode=%s needs database.sslrootcert (the CA file that signed the server certificate; mount it with database.caSecret)" .Values.database.sslmode) }}
{{- end }}
{{- if and .Values.database.caSecret.name (not .Values.database.sslrootcert) }}
{{- fail "database.caSecret.name is set but database.sslrootcert is empty: set the path the CA is mounted at, e.g. /etc/ffe/db-ca/ca.crt" }}
{{- end }}
{{- if and .Values.httpRoute.enabled (not .Values.httpRoute.parentRefs) }}
{{- fail "httpRoute.enabled needs httpRoute.parentRefs (the platform's Gateway)" }}
{{- end }}
{{- end }}

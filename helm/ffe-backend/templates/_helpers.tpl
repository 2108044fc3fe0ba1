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

{{/*
Upstream's ingress.* block (README, "Upstream values files"):
- ingressToRoute "true": ingress.enabled, httpRoute.enabled and ingress.mode gateway -> the block's
  hosts and paths go onto the HTTPRoute, no Ingress;
- renderIngress "true": ingress.enabled and (ingress.mode ingress, or no HTTPRoute to map onto).
*/}}
{{- define "ffe-backend.ingressToRoute" -}}
{{- and .Values.ingress.enabled .Values.httpRoute.enabled (ne (default "gateway" .Values.ingress.mode) "ingress") }}
{{- end }}

{{- define "ffe-backend.renderIngress" -}}
{{- and .Values.ingress.enabled (or (eq (default "gateway" .Values.ingress.mode) "ingress") (not .Values.httpRoute.enabled)) }}
{{- end }}

{{/*
HTTPRoute hostnames and path matches as JSON {"hostnames": [...], "matches": [...]}: from
httpRoute.hostnames/pathPrefix, or from ingress.hosts[] (ingressToRoute). Gateway API hostnames are
per route, so the matches are the union of every host's paths (first appearance order).
pathType Prefix/ImplementationSpecific -> PathPrefix, Exact -> Exact; a host without paths -> "/".
*/}}
{{- define "ffe-backend.routeSpec" -}}
{{- $hostnames := .Values.httpRoute.hostnames | default list }}
{{- $matches := list (dict "path" (dict "type" "PathPrefix" "value" .Values.httpRoute.pathPrefix)) }}
{{- if and (eq (include "ffe-backend.ingressToRoute" .) "true") .Values.ingress.hosts }}
{{- $hostnames = list }}
{{- $matches = list }}
{{- range .Values.ingress.hosts }}
{{- if not (has .host $hostnames) }}
{{- $hostnames = append $hostnames .host }}
{{- end }}
{{- range (.paths | default (list (dict "path" "/"))) }}
{{- $type := ternary "Exact" "PathPrefix" (eq (default "Prefix" .pathType) "Exact") }}
{{- $m := dict "path" (dict "type" $type "value" .path) }}
{{- if not (has $m $matches) }}
{{- $matches = append $matches $m }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- dict "hostnames" $hostnames "matches" $matches | toJson }}
{{- end }}

{{/* An env value as a string: whole numbers without exponent or decimals (1e+06 -> 1000000). */}}
{{- define "ffe-backend.envString" -}}
{{- if and (kindIs "float64" .) (eq . (float64 (int64 .))) }}
{{- int64 . }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/*
"true" when the database CA Secret is mounted: database.caSecret.name set, and PgBouncer
(external=false), or caSecret.mount=always, or database.url asks for verification
(sslmode=verify-ca|verify-full). An external database without that never waits for the Secret.
*/}}
{{- define "ffe-backend.dbCaMounted" -}}
{{- $db := .Values.database }}
{{- and $db.caSecret.name (or (not $db.external) (eq (default "auto" $db.caSecret.mount) "always") (regexMatch "[?&]sslmode=verify-(ca|full)(&|$)" (default "" $db.url))) }}
{{- end }}

{{/* "true" when DATABASE_URL comes from key DATABASE_URL of the credentials Secret. */}}
{{- define "ffe-backend.dbUrlFromSecret" -}}
{{- and .Values.database.external (not .Values.database.url) (not .Values.vault.enabled) }}
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
{{- if and (eq (include "ffe-backend.dbUrlFromSecret" .) "true") (not (include "ffe-backend.secretName" .)) }}
{{- fail "database.external=true without database.url and without Vault reads DATABASE_URL from the credentials Secret: set secrets.existingSecret (a Secret with key DATABASE_URL) or secrets.create=true, or pass database.url" }}
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
{{- /* The message never repeats the URL: it holds a password. */}}
{{- if regexMatch "(?i)://[^@/?#[:space:]]*:[^@[:space:]]*@|[?&]password=" (default "" .Values.database.url) }}
{{- fail (printf "database.url holds credentials (user:password@ or password=): the chart would write them into the Deployment as a plain env value (readable by anyone who may read Deployments, and kept in every Helm release revision). Put the whole URL into a Secret instead: kubectl -n %s create secret generic ffe-backend-env --from-literal=DATABASE_URL='postgresql://USER:PASSWORD@HOST:5432/ffe?sslmode=...', then set secrets.existingSecret=ffe-backend-env and database.external=true and leave database.url empty (docs/app.md, Install)" .Release.Namespace) }}
{{- end }}
{{- end }}

{{/*
"true" when a host name (route side) and a listener host name intersect, as Gateway API attaches
routes: a listener without host name takes every name; "*.example.com" (either side) covers
"a.example.com" and "b.a.example.com" but not "example.com".
Input: dict "hostname" "listener".
*/}}
{{- define "ffe-backend.hostnameMatches" -}}
{{- $h := .hostname }}
{{- $l := .listener }}
{{- if or (not $l) (eq $h $l) (and (hasPrefix "*." $l) (hasSuffix (trimPrefix "*" $l) $h)) (and (hasPrefix "*." $h) (hasSuffix (trimPrefix "*" $h) $l)) }}true{{ end }}
{{- end }}

{{/*
The route host names that match none of the listener host names, as a JSON list.
Input: dict "hostnames" (list) "listeners" (list; "" = a listener without host name).
*/}}
{{- define "ffe-backend.unmatchedHostnames" -}}
{{- $listeners := .listeners }}
{{- $out := list }}
{{- range $h := .hostnames }}
{{- $hit := false }}
{{- range $l := $listeners }}
{{- if include "ffe-backend.hostnameMatches" (dict "hostname" $h "listener" $l) }}
{{- $hit = true }}
{{- end }}
{{- end }}
{{- if not $hit }}
{{- $out = append $out $h }}
{{- end }}
{{- end }}
{{- $out | toJson }}
{{- end }}

{{/*
The route's host names must be served by the Gateway: a name no listener covers gets 404 (the route
does not attach for it). The listeners come from httpRoute.gatewayListenerHostnames when set, else
from the live Gateways of httpRoute.parentRefs (`lookup`; only the listener named by sectionName,
if given). Nothing to compare (helm template, no cluster, Gateway not there yet, a route without
host names): no check.
*/}}
{{- define "ffe-backend.checkRouteHostnames" -}}
{{- $hostnames := (include "ffe-backend.routeSpec" . | fromJson).hostnames | default list }}
{{- $listeners := list }}
{{- $source := "" }}
{{- if .Values.httpRoute.gatewayListenerHostnames }}
{{- $listeners = .Values.httpRoute.gatewayListenerHostnames }}
{{- $source = "httpRoute.gatewayListenerHostnames" }}
{{- else }}
{{- $gateways := list }}
{{- range .Values.httpRoute.parentRefs }}
{{- if and (eq (default "Gateway" .kind) "Gateway") (eq (default "gateway.networking.k8s.io" .group) "gateway.networking.k8s.io") }}
{{- $ns := default $.Release.Namespace .namespace }}
{{- $gw := lookup "gateway.networking.k8s.io/v1" "Gateway" $ns .name }}
{{- if and $gw $gw.spec }}
{{- $gateways = append $gateways (printf "%s/%s" $ns .name) }}
{{- $section := .sectionName }}
{{- range $gw.spec.listeners }}
{{- /* Only listeners that admit routes from the release namespace count (Gateway API's default is
       "Same": the Gateway's own namespace), e.g. not the edge's port-80 listener for its own
       redirect and ACME routes, which has no host name and would otherwise cover every name. */}}
{{- $from := default "Same" (dig "allowedRoutes" "namespaces" "from" "" .) }}
{{- $admits := or (eq $from "All") (eq $from "Selector") (eq $ns $.Release.Namespace) }}
{{- if and $admits (or (not $section) (eq .name $section)) }}
{{- $listeners = append $listeners (default "" .hostname) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $source = printf "Gateway %s" (join ", " $gateways) }}
{{- end }}
{{- if and $hostnames $listeners }}
{{- $missing := include "ffe-backend.unmatchedHostnames" (dict "hostnames" $hostnames "listeners" $listeners) | fromJsonArray }}
{{- if $missing }}
{{- fail (printf "HTTPRoute host name(s) %s match no listener host name of %s: %s. The route does not attach for them and requests get 404. Fix: set httpRoute.hostnames in your values file (ffe-values.yaml, docs/app.md) to your terraform domain_names, or add the name to domain_names so the Gateway gets a listener for it" (join ", " $missing) $source (join ", " $listeners)) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
"true" when the Prometheus operator's kind (input: dict "ctx" . "kind" "ServiceMonitor") is
rendered: metrics.requireCrds, or the cluster serves monitoring.coreos.com/v1/<kind> (helm
install/upgrade ask the cluster; helm template knows only --api-versions).
*/}}
{{- define "ffe-backend.monitoringApi" -}}
{{- if or .ctx.Values.metrics.requireCrds (.ctx.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" .kind)) }}true{{ end }}
{{- end }}

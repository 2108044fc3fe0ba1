# The FFE backend (issue 4, optional): with deploy_app = true, one `terraform apply` also installs
# the app. The chart is packaged from this repository (`make app-chart` writes charts/ffe-backend.tgz,
# git-ignored; Terraform cannot run `helm package`) and handed to k3s's helm-controller as a
# HelmChart with spec.chartContent, so nothing is pulled from a chart repository.
#
# The Helm CLI path of the seed (Day 4, `helm install ffe helm/ffe-backend ...`) keeps working;
# use ONE of the two for a cluster: helm-controller re-applies its HelmChart and would undo manual
# `helm upgrade`s of the same release. Runbook: docs/app.md.
#
# values-production.yaml expects Vault (agent injection) and PgBouncer in ffe-data. With the Postgres
# layer on (postgres.tf), the release is pointed at its PgBouncer Service (local.app_database_set);
# the app role's credentials reach it through Vault when the Vault layer is on (vault.tf: the
# credentials job writes them into the app's secret), else through a copied Secret.
# check "app_dependencies" below says which.

variable "deploy_app" {
  description = "Install the ffe-backend chart (release \"ffe\" in namespace \"ffe\") through k3s's helm-controller. Needs `make app-chart` first."
  type        = bool
  default     = false
  nullable    = false
}

variable "app_values_file" {
  description = "Values file for the app release, relative to the repository root or absolute. null = helm/ffe-backend/values-production.yaml."
  type        = string
  default     = null
}

variable "app_set" {
  description = "Helm --set overrides for the app release, applied after app_values_file, e.g. { replicaCount = 5, \"image.tag\" = \"1.4.2\" }. Keep numbers unquoted."
  type        = any
  default     = {}
  nullable    = false

  validation {
    condition     = can(keys(var.app_set))
    error_message = "app_set = ${jsonencode(var.app_set)} is not a map: write Helm value paths to values, e.g. { replicaCount = 5, \"image.tag\" = \"1.4.2\" }."
  }

  # Secrets never travel in the HelmChart: it is shown in the plan and kept in the state (and on
  # every server). The message does not repeat the value.
  validation {
    condition     = alltrue([for k, v in try({ for k, v in var.app_set : k => v }, {}) : !can(regex("(?i)://[^@/?#[:space:]]*:[^@[:space:]]*@|[?&]password=", try(tostring(v), "")))])
    error_message = "app_set: a value holds a URL with credentials (user:password@...), which would be written into the HelmChart, the plan output and the Terraform state. Put it in a Secret instead (kubectl -n ffe create secret generic ffe-backend-env --from-literal=DATABASE_URL=...) and set \"secrets.existingSecret\" = \"ffe-backend-env\" (docs/app.md)."
  }
}

locals {
  # The Postgres layer's PgBouncer and the operator-generated credentials of role ffe-user (Secret
  # ffe-data/ffe-pg-pguser-ffe-user, keys user and password). A pod reads Secrets of its own
  # namespace only, so modules/postgres's credentials job brings them to the app every 5 minutes:
  #   - with Vault: into the app's kv-v2 secret (keys DB_USERNAME/DB_PASSWORD, the chart's
  #     usernameKey/passwordKey), which the Vault agent renders into the pod (vault.enabled);
  #   - without Vault: as a copy of the Secret in the app's namespace (secrets.existingSecret).
  # The cluster CA (Secret ffe-db-ca, key ca.crt, values-production.yaml's name) is copied either
  # way. Nothing here holds a password. app_set (applied after) overrides all of these.
  app_database_set = local.postgres_enabled ? merge({
    "database.external"      = false
    "database.host"          = split(":", module.postgres[0].endpoints.pgbouncer)[0]
    "database.port"          = tonumber(split(":", module.postgres[0].endpoints.pgbouncer)[1])
    "database.name"          = module.postgres[0].names.database
    "database.sslmode"       = "verify-full" # PgBouncer's certificate names the Service and chains to the cluster CA
    "database.caSecret.name" = "ffe-db-ca"   # values-production.yaml's name
    "database.caSecret.key"  = "ca.crt"
    }, local.vault_enabled ? {
    "vault.enabled"        = true
    "vault.role"           = "ffe-backend"
    "vault.secretPath"     = local.vault_app_secret_api_path
    "vault.address"        = module.vault[0].active_address
    "database.usernameKey" = local.vault_app_secret.username_key
    "database.passwordKey" = local.vault_app_secret.password_key
    } : {
    "database.usernameKey"   = "user"
    "database.passwordKey"   = "password"
    "secrets.existingSecret" = module.postgres[0].names.user_secret
    "vault.enabled"          = false
  }) : {}

  # The route's host names follow domain_names (the edge Gateway has one HTTPS listener per name),
  # unless app_set sets them itself.
  app_sets_hostnames  = anytrue([for k in keys(var.app_set) : startswith(k, "httpRoute.hostnames")])
  app_route_hostnames = local.app_sets_hostnames ? [] : var.domain_names
  app_repo_root       = "${path.module}/../../.."
  app_values_path     = var.app_values_file == null ? "${local.app_repo_root}/helm/ffe-backend/values-production.yaml" : (startswith(var.app_values_file, "/") ? var.app_values_file : "${local.app_repo_root}/${var.app_values_file}")
}

# Renders the HelmChart (release "ffe" = the seed's, so the Deployment is ffe-backend in namespace
# ffe either way). With deploy_app = false it renders nothing and reads no file; with true, a missing
# charts/ffe-backend.tgz fails the plan with "run `make app-chart`".
module "app" {
  source = "../../modules/app"

  enabled         = var.deploy_app
  chart_path      = "${path.module}/charts/ffe-backend.tgz"
  values_file     = local.app_values_path
  set             = merge(local.app_database_set, var.app_set)
  route_hostnames = local.app_route_hostnames
  namespace       = module.namespaces.names["ffe"] # PSA restricted, edge routes allowed
}

# Written after the platform and monitoring bundles, so the namespace, the Gateway and the
# ServiceMonitor/PrometheusRule CRDs exist first, and after Vault is configured: the agent injector
# is running (ffe_manifests.vault waits for it; its webhook ignores failures, so a pod created
# before it would start without its secrets) and role ffe-backend exists. PgBouncer is NOT part of
# this release: see check "app_dependencies".
resource "ffe_manifests" "app" {
  count = var.deploy_app ? 1 : 0

  bundle     = "app"
  servers    = ffe_k3s_cluster.this.servers
  manifests  = module.app.manifests
  depends_on = [ffe_manifests.platform, ffe_manifests.monitoring, ffe_vault_config.this]
}

# Host names set by hand must be served by the edge: a route to a name without a listener answers 404.
check "app_hostnames_have_listeners" {
  assert {
    # "httpRoute.hostnames[0]" = "a.example.com", or the whole list "httpRoute.hostnames" = "{a,b}".
    condition = !var.deploy_app || alltrue(flatten([
      for k, v in var.app_set : [for name in split(",", trim(tostring(v), "{} ")) : contains(var.domain_names, trimspace(name))] if startswith(k, "httpRoute.hostnames")
    ]))
    error_message = "app_set sets httpRoute.hostnames to names that are not in domain_names = ${jsonencode(var.domain_names)}: the edge Gateway has no listener for them, so those routes answer 404. Fix: add the names to domain_names, or drop the httpRoute.hostnames keys from app_set (they then follow domain_names)."
  }
}

# Where the app's secrets come from, said at every plan with deploy_app (the production values need
# Vault and PgBouncer).
check "app_dependencies" {
  assert {
    condition     = !var.deploy_app
    error_message = "deploy_app = true: ${!local.postgres_enabled ? "the production values need Vault and PgBouncer, and this release deploys no PgBouncer without the Postgres layer (postgres_primary_ip = null); set app_set/app_values_file accordingly (vault.enabled=false, database.url) or deploy it first" : local.vault_enabled ? "the app is pointed at PgBouncer (ffe-pg-pgbouncer.ffe-data.svc); CronJob ffe-data/ffe-pg-credentials-sync writes role ffe-user's credentials into Vault secret ${local.vault_app_secret_api_path} (keys ${local.vault_app_secret.username_key}/${local.vault_app_secret.password_key}) and copies the cluster CA into Secret ffe/ffe-db-ca within 5 minutes of the cluster being ready; the Vault agent of each pod waits for them. Put the app's other secrets into the same Vault secret (docs/vault.md)" : "the app is pointed at PgBouncer (ffe-pg-pgbouncer.ffe-data.svc) with role ffe-user's operator-generated credentials (Secret ffe/ffe-pg-pguser-ffe-user) and the cluster CA (Secret ffe/ffe-db-ca), which CronJob ffe-data/ffe-pg-credentials-sync copies from ffe-data within 5 minutes of the cluster being ready (the app pods wait for them until then). Without the Vault layer (vault_cluster_ips = []) vault.enabled is false and the app's other secrets must come from app_set/app_values_file"}. See docs/app.md."
  }
}

# Vault HA (issue 14): HashiCorp Vault or OpenBao (vault_distribution) as a Raft cluster in namespace
# vault, rendered by modules/vault (Raft timing, Shamir numbers and snapshot schedule from its
# vault-settings.yaml), initialised, unsealed and configured by Terraform. Deployed iff
# vault_cluster_ips is not empty: 3 members with vault_ha_enabled, else 1. Runbook: docs/vault.md.
#
# Ordering (no apply that only works on a retry):
#   1. ffe_manifests.vault after the platform bundles (namespace vault and its network policies,
#      the storage classes, cert-manager in `edge`) and monitoring (prometheus-operator CRDs); it
#      waits until cert-manager has issued the CA Secret vault-ca and the server certificate;
#   2. ffe_vault_init reads the CA from Secret vault/vault-ca over SSH on a server, waits for the
#      members at vault_cluster_ips (ready while sealed), initialises once and unseals every member.
#      The keys are written to keys_file before anything else, and deleted once the state holds them;
#   3. ffe_vault_config: kv-v2, audit device, Kubernetes auth, the policies and roles below.

variable "vault_distribution" {
  description = "Which server the Vault layer runs: \"vault\" = HashiCorp Vault (chart vault, image hashicorp/vault:<vault_version>) or \"openbao\" = OpenBao (chart openbao, its pinned appVersion; vault_version is then ignored). Same configuration, same names."
  type        = string
  default     = "vault"
  nullable    = false

  validation {
    condition     = contains(["vault", "openbao"], var.vault_distribution)
    error_message = "vault_distribution = \"${var.vault_distribution}\" is not supported: use \"vault\" (HashiCorp Vault) or \"openbao\" (OpenBao)."
  }
}

locals {
  vault_enabled = length(var.vault_cluster_ips) > 0
  vault_chart   = var.vault_distribution # chart name = distribution
  # Vault: X.Y.Z as given, X.Y through pins.tf vault_image_tags; OpenBao: its chart's appVersion pin.
  vault_image_tag = var.vault_distribution == "openbao" ? local.openbao_image_tag : (
    can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", local.vault_version)) ? local.vault_version : lookup(local.vault_image_tags, local.vault_version, "")
  )
  # The app's release (app.tf) runs as ServiceAccount ffe-backend (helm/ffe-backend: fullname of
  # release "ffe") and reads this kv-v2 path (values vault.secretPath).
  vault_app_policy = <<-HCL
    path "secret/data/production/app" {
      capabilities = ["read"]
    }
  HCL
}

module "vault" {
  source = "../../modules/vault"
  count  = local.vault_enabled ? 1 : 0

  distribution           = var.vault_distribution
  chart_version          = local.chart_versions[local.vault_chart]
  chart_repo             = local.chart_repos[local.vault_chart]
  image_tag              = local.vault_image_tag
  namespace              = module.namespaces.names["vault"]
  cert_manager_namespace = module.namespaces.names["cert-manager"]
  # Secret vault-ca (ca.crt) for Vault's clients: the app (values-production.yaml vault.tls.secretName).
  ca_namespaces = [module.namespaces.names["ffe"]]
  member_ips    = var.vault_cluster_ips
  # Retain: a deleted claim (or a re-created StatefulSet) leaves the Raft data on the node
  data_storage_class      = module.storage.class_names.fast_retain
  backup_storage_class    = module.storage.class_names.backup
  loadbalancer_annotation = module.vip.loadbalancer_annotation
  backup_retention_days   = var.backup_retention_days
}

resource "ffe_manifests" "vault" {
  count = local.vault_enabled ? 1 : 0

  bundle     = "vault"
  servers    = ffe_k3s_cluster.this.servers
  manifests  = module.vault[0].manifests
  wait_for   = module.vault[0].wait_for
  depends_on = [ffe_manifests.platform, ffe_manifests.monitoring]
}

resource "ffe_vault_init" "this" {
  count = local.vault_enabled ? 1 : 0

  member_addresses = module.vault[0].member_addresses
  ca_secret        = module.vault[0].ca_secret
  servers          = ffe_k3s_cluster.this.servers
  secret_shares    = module.vault[0].shamir.secret_shares
  secret_threshold = module.vault[0].shamir.secret_threshold
  # Written (0600) the moment Vault answers the init call, deleted once the state holds the keys:
  # an interrupted apply never loses them (gitignored).
  keys_file = "${path.root}/vault-init.pending.json"

  depends_on = [ffe_manifests.vault]
}

resource "ffe_vault_config" "this" {
  count = local.vault_enabled ? 1 : 0

  member_addresses = module.vault[0].member_addresses
  ca_secret        = module.vault[0].ca_secret
  servers          = ffe_k3s_cluster.this.servers
  token            = ffe_vault_init.this[0].root_token
  kv_mount         = "secret"
  audit_file_path  = module.vault[0].audit_file_path
  kubernetes_auth  = { mount = "kubernetes", kubernetes_host = "https://kubernetes.default.svc:443" }
  policies = {
    "ffe-backend"                   = local.vault_app_policy
    (module.vault[0].snapshot.role) = module.vault[0].snapshot.policy
  }
  kubernetes_roles = [
    { name = "ffe-backend", service_account_names = ["ffe-backend"], namespaces = [module.namespaces.names["ffe"]], policies = ["ffe-backend"], ttl = "1h" },
    # the daily snapshot: one login, one snapshot
    { name = module.vault[0].snapshot.role, service_account_names = [module.vault[0].snapshot.service_account], namespaces = [module.vault[0].snapshot.namespace], policies = [module.vault[0].snapshot.role], ttl = "15m" },
  ]
}

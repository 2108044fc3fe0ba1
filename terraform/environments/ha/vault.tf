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

variable "vault_unseal_pgp_keys" {
  description = "PGP public keys of the unseal key holders, one per key share (as many as modules/vault/vault-settings.yaml shamir.secret_shares, 5), each the base64 of a binary export (`gpg --export <key-id> | base64 -w0`). Set: Vault encrypts share i to key i, the state and output vault_unseal_keys hold only encrypted shares, and Terraform cannot unseal (each holder decrypts a share and unseals by hand: docs/vault.md). null: plain shares in the (encrypted) state, and Terraform unseals. Read only when Vault is first initialised."
  type        = list(string)
  default     = null

  validation {
    condition     = var.vault_unseal_pgp_keys == null || alltrue([for k in coalesce(var.vault_unseal_pgp_keys, []) : can(regex("^[A-Za-z0-9+/]{100,}={0,2}$", k)) && length(k) % 4 == 0])
    error_message = "vault_unseal_pgp_keys: every entry must be the base64 of a binary public key export, one line (gpg --export <key-id> | base64 -w0); an ASCII-armored key (-----BEGIN PGP PUBLIC KEY BLOCK-----) or a key id is not accepted."
  }
}

locals {
  vault_enabled = length(var.vault_cluster_ips) > 0
  vault_chart   = var.vault_distribution # chart name = distribution
  # Vault: X.Y.Z as given, X.Y through pins.tf vault_image_tags; OpenBao: its chart's appVersion pin.
  vault_image_tag = var.vault_distribution == "openbao" ? local.openbao_image_tag : (
    can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", local.vault_version)) ? local.vault_version : lookup(local.vault_image_tags, local.vault_version, "")
  )
  # The app's secret: kv-v2 secret production/app under mount secret/ (values vault.secretPath =
  # secret/data/production/app). The app's release (app.tf) reads it as ServiceAccount ffe-backend
  # (helm/ffe-backend: fullname of release "ffe"); with the Postgres layer, its credentials job
  # (modules/postgres app_vault) writes the database keys into it (the chart's usernameKey and
  # passwordKey defaults), the operator adds the rest (docs/vault.md).
  vault_app_secret = {
    kv_mount     = "secret"
    secret_path  = "production/app"
    auth_mount   = "kubernetes"
    username_key = "DB_USERNAME"
    password_key = "DB_PASSWORD"
  }
  vault_app_secret_api_path = "${local.vault_app_secret.kv_mount}/data/${local.vault_app_secret.secret_path}"
  vault_app_policy          = <<-HCL
    path "${local.vault_app_secret_api_path}" {
      capabilities = ["read"]
    }
  HCL
  # the Postgres credentials job's role and policy (null without the Postgres layer)
  vault_db_writer = local.postgres_enabled ? module.postgres[0].app_vault_writer : null
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
  # Secret vault-ca (ca.crt) for Vault's clients: the app (values-production.yaml vault.tls.secretName)
  # and the Postgres credentials job.
  ca_namespaces = concat([module.namespaces.names["ffe"]], local.postgres_enabled ? [module.namespaces.names["ffe-data"]] : [])
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
  pgp_keys         = var.vault_unseal_pgp_keys
  # Written (0600) the moment Vault answers the init call, deleted once the state holds the keys:
  # an interrupted apply never loses them (gitignored).
  keys_file = "${path.root}/vault-init.pending.json"

  depends_on = [ffe_manifests.vault]

  lifecycle {
    precondition {
      condition     = var.vault_unseal_pgp_keys == null || length(coalesce(var.vault_unseal_pgp_keys, [])) == module.vault[0].shamir.secret_shares
      error_message = "vault_unseal_pgp_keys holds ${length(coalesce(var.vault_unseal_pgp_keys, []))} keys, but Vault is split into ${module.vault[0].shamir.secret_shares} unseal key shares (modules/vault/vault-settings.yaml): give exactly one key per share, or null for plain shares."
    }
  }
}

resource "ffe_vault_config" "this" {
  count = local.vault_enabled ? 1 : 0

  member_addresses = module.vault[0].member_addresses
  ca_secret        = module.vault[0].ca_secret
  servers          = ffe_k3s_cluster.this.servers
  token            = ffe_vault_init.this[0].root_token
  kv_mount         = local.vault_app_secret.kv_mount
  audit_file_path  = module.vault[0].audit_file_path
  kubernetes_auth  = { mount = local.vault_app_secret.auth_mount, kubernetes_host = "https://kubernetes.default.svc:443" }
  policies = merge({
    "ffe-backend"                   = local.vault_app_policy
    (module.vault[0].snapshot.role) = module.vault[0].snapshot.policy
  }, local.vault_db_writer == null ? {} : { (local.vault_db_writer.role) = local.vault_db_writer.policy })
  kubernetes_roles = concat([
    { name = "ffe-backend", service_account_names = ["ffe-backend"], namespaces = [module.namespaces.names["ffe"]], policies = ["ffe-backend"], ttl = "1h" },
    # the daily snapshot: one login, one snapshot
    { name = module.vault[0].snapshot.role, service_account_names = [module.vault[0].snapshot.service_account], namespaces = [module.vault[0].snapshot.namespace], policies = [module.vault[0].snapshot.role], ttl = "15m" },
    ], local.vault_db_writer == null ? [] : [
    # the Postgres credentials job (every 5 minutes): one login, two writes
    { name = local.vault_db_writer.role, service_account_names = [local.vault_db_writer.service_account], namespaces = [local.vault_db_writer.namespace], policies = [local.vault_db_writer.role], ttl = "5m" },
  ])
}

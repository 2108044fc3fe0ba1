# Outputs of the HA environment: the seed's master IPs and kubeconfig, plus the API endpoint, the
# edge address (ingress_ip), the DNS records to create and the Postgres endpoints (null when the
# Postgres layer is off: postgres_primary_ip = null) and the Vault addresses, unseal keys and root
# token (null when the Vault layer is off: vault_cluster_ips = []).

output "master_ips" {
  description = "IPv4 addresses of the masters (k3s servers), in bootstrap order."
  value       = ffe_host.master[*].address
}

output "worker_ips" {
  description = "IPv4 addresses of the workers (k3s agents)."
  value       = ffe_host.worker[*].address
}

output "master_names" {
  description = "Kubernetes node names of the masters."
  value       = ffe_host.master[*].name
}

output "worker_names" {
  description = "Kubernetes node names of the workers."
  value       = ffe_host.worker[*].name
}

output "kubeconfig_path" {
  description = "Absolute path of the admin kubeconfig written after apply (mode 0600): export KUBECONFIG=$(terraform output -raw kubeconfig_path), from any directory."
  value       = ffe_k3s_cluster.this.kubeconfig_path
}

output "api_endpoint" {
  description = "URL of the Kubernetes API: https://<api_vip or first master>:6443."
  value       = ffe_k3s_cluster.this.api_endpoint
}

output "etcd_snapshot_retention" {
  description = "Number of etcd snapshots kept (snapshots per day x backup_retention_days unless overridden)."
  value       = ffe_k3s_cluster.this.etcd_snapshot_retention
}

output "kubeconfig" {
  description = "Admin kubeconfig content (secret: grants cluster-admin)."
  value       = ffe_k3s_cluster.this.kubeconfig
  sensitive   = true
}

output "k3s_token" {
  description = "k3s join token (secret: lets a machine join the cluster as a node)."
  value       = ffe_k3s_cluster.this.token
  sensitive   = true
}

output "ingress_ip" {
  description = "IP of the edge (Gateway, ports 80/443), announced by kube-vip: point the DNS names in dns_records here. null = not pinned (see docs/networking.md)."
  value       = var.ingress_ip
}

output "dns_records" {
  description = "DNS A records to create: each of domain_names -> ingress_ip, and each DNS name in extra_tls_sans (API names) -> api_vip."
  value       = local.dns_records
}

# Postgres endpoints: addresses only. The app role's password never leaves the cluster (the operator
# generates it into Secret ffe-data/ffe-pg-pguser-ffe-user), so no output can show it.
output "postgres_primary_endpoint" {
  description = "host:port of the Postgres primary for clients on the node network: postgres_primary_ip, announced by kube-vip, follows the Patroni leader (read-write, TLS required). null = no Postgres layer."
  value       = local.postgres_enabled ? module.postgres[0].endpoints.primary : null
}

output "postgres_replica_endpoint" {
  description = "host:port of the read-only replicas Service inside the cluster (all streaming replicas, TLS required). null = no Postgres layer."
  value       = local.postgres_enabled ? module.postgres[0].endpoints.replica : null
}

output "pgbouncer_endpoint" {
  description = "host:port of the PgBouncer Service inside the cluster (transaction pooling to the primary, TLS required): what the app connects to. null = no Postgres layer."
  value       = local.postgres_enabled ? module.postgres[0].endpoints.pgbouncer : null
}

output "vault_address" {
  description = "In-cluster address that always reaches the active Vault member (Service vault-active; Service vault also routes to sealed members, which answer 503); its certificate chains to Secret vault/vault-ca (ca.crt). null without the Vault layer."
  value       = local.vault_enabled ? module.vault[0].active_address : null
}

output "vault_member_addresses" {
  description = "https://<vault_cluster_ips[i]>:8200, one per member (kube-vip LoadBalancer), in member order. null without the Vault layer."
  value       = local.vault_enabled ? module.vault[0].member_addresses : null
}

output "vault_unseal_keys" {
  description = "Vault's Shamir unseal key shares (base64; PGP-encrypted when PGP keys were given), kept in the state: use an encrypted state backend (docs/vault.md). null without the Vault layer."
  value       = local.vault_enabled ? ffe_vault_init.this[0].unseal_keys : null
  sensitive   = true
}

output "vault_root_token" {
  description = "Vault's initial root token, kept in the state (revoke it once ffe_vault_config's own token exists; docs/vault.md). null without the Vault layer."
  value       = local.vault_enabled ? ffe_vault_init.this[0].root_token : null
  sensitive   = true
}

# What the ffe-ha CLI reads (`ffe-ha preflight --tf-dir .`): how to reach each node and what to
# check on it. No secret: the CLI never needs one of the sensitive outputs for these checks.
output "ops_inventory" {
  description = "Inventory for the ffe-ha operations CLI (schema 1, no secrets): SSH settings exactly as the provider uses them, every node with its role, the API and edge addresses, the backup mount and the network options that decide which ports a node needs."
  value = {
    schema       = 1
    cluster_name = var.cluster_name
    ssh = {
      user                      = var.ssh_user
      port                      = var.ssh_port
      private_key_path          = local.ssh_private_key_path
      known_hosts_file          = local.ssh_known_hosts_file
      insecure_ignore_host_keys = var.ssh_insecure_ignore_host_keys
      connect_timeout_seconds   = var.ssh_connect_timeout_seconds
    }
    nodes = concat(
      [for h in ffe_host.master : { name = h.name, address = h.address, role = "server" }],
      [for h in ffe_host.worker : { name = h.name, address = h.address, role = "agent" }],
    )
    api_vip         = var.api_vip
    ingress_ip      = var.ingress_ip
    kubeconfig_path = local.kubeconfig_path
    backup_mount    = local.backup_mount
    network = {
      wireguard_enabled = var.calico_wireguard_enabled
    }
    # What `ffe-ha verify` reads through the API (kubeconfig_path) and the backup share.
    postgres = local.postgres_enabled ? {
      namespace         = module.postgres[0].names.namespace
      cluster           = module.postgres[0].names.cluster
      instances         = var.postgres_replicas + 1
      synchronous       = var.postgres_synchronous_replication && local.postgres_ha_settings.patroni.synchronous_mode
      max_lag_bytes     = local.postgres_ha_settings.patroni.maximum_lag_on_failover
      patroni_port      = module.postgres[0].names.patroni_port
      primary_endpoint  = module.postgres[0].endpoints.primary
      pgbouncer_service = module.postgres[0].names.pgbouncer_service
      # `ffe-ha backup verify` runs a Job from this CronJob's jobTemplate and reads its log.
      restore_check_cronjob = module.postgres[0].names.restore_check_cronjob
    } : null
    vault = local.vault_enabled ? {
      member_addresses = module.vault[0].member_addresses
      namespace        = module.vault[0].member_pods.namespace
      member_pods      = module.vault[0].member_pods.names
      ca_secret        = module.vault[0].ca_secret
    } : null
    # Each backup kind: its directory on the share (relative to backup_mount), which files count,
    # and the age limit of its alert (monitoring/rules/backups.yaml).
    backups = concat(
      [{ kind = "etcd", dir = "etcd-snapshots", per_server = true, files = "etcd-snapshot-*", max_age_seconds = local.etcd_snapshot_max_age_seconds, max_full_age_seconds = null }],
      local.postgres_enabled ? [
        { kind = "pgbackrest", dir = module.postgres[0].pgbackrest_dir, per_server = false, files = "backup/db/backup.info", max_age_seconds = module.backup_age.postgres_max_age_seconds.any, max_full_age_seconds = module.backup_age.postgres_max_age_seconds.full },
        # PgDumpBackupTooOld: one interval + 1 h; the interval is known here for a daily schedule only
        { kind = "pg_dump", dir = module.storage.claim_dirs["${module.postgres[0].names.namespace}/${module.postgres[0].names.dump_claim}"], per_server = false, files = "ffe-*.dump",
        max_age_seconds = can(regex("^[0-9]+ [0-9]+ \\* \\* \\*$", module.postgres[0].names.dump_schedule)) ? 86400 + 3600 : null, max_full_age_seconds = null },
      ] : [],
      local.vault_enabled ? [
        # VaultSnapshotTooOld: one interval + 1 h; the interval is known here for a daily schedule only
        { kind = "vault", dir = module.storage.claim_dirs["${module.vault[0].snapshot.namespace}/${module.vault[0].snapshot.claim}"], per_server = false, files = "raft-*.snap",
        max_age_seconds = can(regex("^[0-9]+ [0-9]+ \\* \\* \\*$", module.vault[0].snapshot.schedule)) ? 86400 + 3600 : null, max_full_age_seconds = null },
      ] : [],
    )
  }
}

output "secrets_export" {
  # Without a recipient the plan says so here (not as a check block: the tests keep warnings for
  # what can break a cluster, and a missing export is a deliberate operator's choice to review).
  description = "The daily Secrets/ConfigMaps export: status (\"NOT EXPORTED: ...\" when secrets_export_age_recipient is unset), CronJob, schedule, directory on the backup share (relative to backup_nfs_mount) and file pattern (null when not exported)."
  value = {
    status   = local.secrets_export == null ? "NOT EXPORTED: Secrets and ConfigMaps are not backed up; set secrets_export_age_recipient (docs/disaster-recovery.md)" : "exported daily, age-encrypted to secrets_export_age_recipient"
    cronjob  = try("${local.secrets_export.namespace}/${local.secrets_export.cronjob}", null)
    schedule = try(local.secrets_export.schedule, null)
    dir      = try(module.storage.claim_dirs["${local.secrets_export.namespace}/${local.secrets_export.claim}"], null)
    files    = try(local.secrets_export.files, null)
  }
}

# Postgres HA (issue 13): the Percona Operator for PostgreSQL and the PerconaPGCluster `ffe-pg` in
# ffe-data, rendered by modules/postgres (Patroni timings and pgBackRest settings from its
# ha-settings.yaml). postgres_primary_ip = null means "no Postgres layer": no CRDs, no bundle,
# Postgres outputs null (docs/deploy.md).
#
# Ordering (no apply that only works on a retry):
#   1. ffe_manifests.postgres_crds writes Percona's CRDs and waits until the API server reports every
#      one of them Established (wait_for). Its own bundle, not `crds`: with the Gateway API CRDs the
#      `crds` bundle would exceed what the provider's plan messages carry (gRPC 4 MiB);
#   2. ffe_manifests.platform writes the namespace ffe-data, its network policies and the storage
#      classes;
#   3. ffe_manifests.postgres depends on both (and on monitoring, whose CRDs the exporters'
#      PodMonitors/rules use), so the PerconaPGCluster reaches the API only once its CRD is served.
#      The operator HelmChart is in the same bundle: a cluster CR that exists before the operator
#      runs is reconciled when the operator starts. Helm skips the chart's crds/ when they exist.

locals {
  postgres_enabled = var.postgres_primary_ip != null
}

module "postgres" {
  source = "../../modules/postgres"
  count  = local.postgres_enabled ? 1 : 0

  namespace               = module.namespaces.names["ffe-data"]
  postgres_version        = local.postgres_version
  images                  = local.postgres_images[local.postgres_version]
  operator_chart_version  = local.chart_versions["pg-operator"]
  operator_chart_repo     = local.chart_repos["pg-operator"]
  operator_crd_version    = trimprefix(local.component_versions.pg_operator, "v")
  replicas                = var.postgres_replicas
  synchronous_replication = var.postgres_synchronous_replication
  primary_ip              = var.postgres_primary_ip
  loadbalancer_annotation = module.vip.loadbalancer_annotation
  # Retain: a deleted claim (or a re-created cluster) leaves the database files on the node
  data_storage_class    = module.storage.class_names.fast_retain
  backup_storage_class  = module.storage.class_names.backup
  backup_storage_mode   = module.storage.mode
  backup_mount          = local.backup_mount
  backup_retention_days = var.backup_retention_days
  # The cluster CA is copied where the app runs; role ffe-user's credentials go into the app's
  # Vault secret with the Vault layer (vault.tf), else the Secret is copied too (modules/postgres).
  app_namespace = module.namespaces.names["ffe"]
  app_ca_secret = "ffe-db-ca" # values-production.yaml database.caSecret.name
  app_vault = local.vault_enabled ? merge(local.vault_app_secret, {
    address   = module.vault[0].active_address
    ca_secret = module.vault[0].ca_secret.name # the same name in every ca_namespaces
    role      = "ffe-db-credentials"
  }) : null
}

# The pgBackRest age limits of the backup alerts, for `ffe-ha verify` too (ops_inventory).
module "backup_age" {
  source = "../../modules/backup-age"

  postgres_backup_schedules        = local.postgres_ha_settings.pgbackrest.schedules
  postgres_backup_age_margin_hours = local.postgres_ha_settings.pgbackrest.backup_age_margin_hours
}

resource "ffe_manifests" "postgres_crds" {
  count = local.postgres_enabled ? 1 : 0

  bundle    = "postgres-crds"
  servers   = ffe_k3s_cluster.this.servers
  manifests = module.postgres[0].crd_manifests
  wait_for = [for crd in module.postgres[0].crd_names : {
    kind      = "customresourcedefinition"
    name      = crd
    namespace = null
    condition = "Established"
  }]
  depends_on = [ffe_manifests.crds]
}

resource "ffe_manifests" "postgres" {
  count = local.postgres_enabled ? 1 : 0

  bundle     = "postgres"
  servers    = ffe_k3s_cluster.this.servers
  manifests  = module.postgres[0].manifests
  depends_on = [ffe_manifests.postgres_crds, ffe_manifests.platform, ffe_manifests.monitoring]
}

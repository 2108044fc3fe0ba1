# Cluster backups of no layer (issue 16): the daily age-encrypted export of every Secret and
# ConfigMap, and the optional off-site copy of the backup share, rendered by
# modules/cluster-backup into namespace monitoring (modules/storage already binds the share's
# static volume "cluster-exports" to claim monitoring/backup-cluster). Runbook:
# docs/disaster-recovery.md. Alerts: SecretsExportFailed / SecretsExportTooOld
# (monitoring/rules/backups.yaml).

module "cluster_backup" {
  source = "../../modules/cluster-backup"

  namespace             = module.namespaces.names["monitoring"]
  backup_storage_class  = module.storage.class_names.backup
  backup_retention_days = var.backup_retention_days
  age_recipient         = var.secrets_export_age_recipient
  export_schedule       = var.secrets_export_schedule
  export_image          = local.backup_job_images.secrets_export
  backup_mount          = local.backup_mount
  offsite               = var.backup_offsite
  offsite_image         = local.backup_job_images.offsite
}

# After the platform bundles: namespace monitoring and its policies, the backup class and its PVs.
resource "ffe_manifests" "backups" {
  count = length(module.cluster_backup.manifests) > 0 ? 1 : 0

  bundle     = "backups"
  servers    = ffe_k3s_cluster.this.servers
  manifests  = module.cluster_backup.manifests
  depends_on = [ffe_manifests.platform]
}

locals {
  secrets_export = module.cluster_backup.secrets_export
}

output "manifests" {
  description = "File name => multi-document YAML; empty when neither the export nor the off-site copy is configured."
  value = merge(
    length(local.export_docs) == 0 ? {} : { "secrets-export.yaml" = join("---\n", local.export_docs) },
    length(local.offsite_docs) == 0 ? {} : { "backup-offsite.yaml" = join("---\n", local.offsite_docs) },
  )
}

output "secrets_export" {
  description = "The export's CronJob, claim and file pattern (null without age_recipient)."
  value = var.age_recipient == null ? null : {
    namespace = var.namespace
    cronjob   = local.export_name
    claim     = var.claim.name
    files     = local.export_files
    schedule  = var.export_schedule
  }
}

output "offsite_cronjob" {
  description = "\"namespace/name\" of the off-site copy's CronJob (null without offsite)."
  value       = var.offsite == null ? null : "${var.namespace}/${local.offsite_name}"
}

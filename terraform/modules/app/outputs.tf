output "manifests" {
  description = "File name -> YAML for the \"app\" ffe_manifests bundle: helmchart.yaml, or nothing when enabled = false."
  value       = var.enabled ? { "helmchart.yaml" = yamlencode(local.helmchart) } : {}
  # The HelmChart is shown in the plan and kept in the state: no credentials in the values file.
  precondition {
    condition     = !var.enabled || var.values_file == null || !can(regex("(?i)://[^@/?#[:space:]]*:[^@[:space:]]*@|[?&]password=", try(file(var.values_file), "")))
    error_message = "The app values file ${coalesce(var.values_file, "(none)")} holds a URL with credentials (user:password@...), which would be written into the HelmChart, the plan output and the Terraform state. Put it in a Secret (DATABASE_URL in secrets.existingSecret, docs/app.md) and leave it out of the file."
  }
}

output "release" {
  description = "Helm release (namespace/name) that helm-controller installs, for helm status/rollback."
  value       = "${var.namespace}/${var.release_name}"
}

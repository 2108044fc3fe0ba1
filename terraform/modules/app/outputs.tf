output "manifests" {
  description = "File name -> YAML for the \"app\" ffe_manifests bundle: helmchart.yaml, or nothing when enabled = false."
  value       = var.enabled ? { "helmchart.yaml" = yamlencode(local.helmchart) } : {}
}

output "release" {
  description = "Helm release (namespace/name) that helm-controller installs, for helm status/rollback."
  value       = "${var.namespace}/${var.release_name}"
}

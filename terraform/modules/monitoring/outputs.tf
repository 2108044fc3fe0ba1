output "manifests" {
  description = "File name -> YAML of every object of the monitoring stack (for an ffe_manifests bundle)."
  value       = { for name, obj in local.objects : name => yamlencode(obj) }
  precondition {
    condition     = length(local.rule_files) > 0 && length(local.dashboard_files) > 0
    error_message = "No rule files in ${local.rules_dir} or no dashboards in ${local.dashboards_dir}: set rules_dir/dashboards_dir (a module copied by `terraform init` from a non-relative source cannot find the repository's monitoring/ directory)."
  }
}

output "addon_manifests" {
  description = "File name -> YAML of the optional logging/tracing add-ons (empty when both are off): a second ffe_manifests bundle, applied after `manifests`."
  value       = { for name, obj in local.addon_objects : name => yamlencode(obj) }
}

output "namespace" {
  description = "Namespace of Prometheus, Alertmanager and Grafana."
  value       = var.namespace
}

output "grafana_admin_secret" {
  description = "Secret holding the Grafana admin credentials (keys admin-user, admin-password)."
  value       = coalesce(var.grafana_admin_existing_secret, "${local.release}-grafana")
}

output "grafana_service" {
  description = "Grafana Service (port 80), for kubectl port-forward."
  value       = "${var.namespace}/${local.release}-grafana"
}

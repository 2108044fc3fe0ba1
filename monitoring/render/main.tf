# Test fixture: renders terraform/modules/monitoring with every optional part on (the Postgres and
# Vault layers included), so `make test-monitoring` can validate the output offline
# (mk/50-monitoring.mk). Not deployed. What this release deploys (both layers off) is asserted by
# terraform/environments/ha/tests/example.tftest.hcl.
terraform {
  required_version = ">= 1.9.0"
}

module "monitoring" {
  source = "../../terraform/modules/monitoring"

  chart_version         = "88.5.3"
  server_ips            = ["10.210.0.11", "10.210.0.12", "10.210.0.13"]
  prometheus_retention  = "15d"
  logging_enabled       = true
  tracing_enabled       = true
  tracing_otlp_endpoint = "jaeger-collector.tracing.svc:4317"
  runbook_base_url      = "https://git.example.com/ffe-ha/blob/main/"
  postgres_enabled      = true
  vault_enabled         = true
  # the schedules and margin the Postgres layer runs with, as terraform/environments/ha passes them
  postgres_backup_schedules        = local.postgres_ha_settings.pgbackrest.schedules
  postgres_backup_age_margin_hours = local.postgres_ha_settings.pgbackrest.backup_age_margin_hours

  chart_versions = { loki = "18.11.0", fluent_bit = "0.58.1", opentelemetry_collector = "0.170.0" }

  grafana_admin_existing_secret = "grafana-admin"
  # the chart's default route sends Watchdog to the "null" receiver: keep it (docs/examples/alertmanager.tfvars)
  alertmanager_config = {
    route = {
      receiver = "ops"
      group_by = ["alertname", "namespace"]
      routes   = [{ receiver = "null", matchers = ["alertname = \"Watchdog\""] }]
    }
    receivers = [{ name = "null" }, { name = "ops", webhook_configs = [{ url = "http://alert-relay.monitoring.svc:8080/hook" }] }]
  }
}

locals {
  postgres_ha_settings = yamldecode(file("${path.module}/../../terraform/modules/postgres/ha-settings.yaml"))
  files                = merge(module.monitoring.manifests, module.monitoring.addon_manifests)
}

output "bundle" {
  description = "Every rendered file as one multi-document YAML stream."
  value       = join("\n---\n", [for name in sort(keys(local.files)) : "# ${name}\n${local.files[name]}"])
}

output "files" {
  value = sort(keys(local.files))
}

# Observability (issue 5): kube-prometheus-stack, the alert rules of monitoring/rules, the Grafana
# dashboards of monitoring/dashboards and the scrape config for every component, rendered by
# modules/monitoring and written by one ffe_manifests bundle. Runbook: docs/monitoring.md.
# etcd metrics come from k3s `etcd-expose-metrics: true`, which ffe_k3s_cluster writes into every
# server's /etc/rancher/k3s/config.yaml.

variable "monitoring_enabled" {
  description = "Deploy the monitoring stack (Prometheus x2, Alertmanager x3, Grafana, exporters, alert rules, dashboards)."
  type        = bool
  default     = true
  nullable    = false
}

variable "prometheus_retention" {
  description = "How long Prometheus keeps samples (Prometheus duration such as \"15d\")."
  type        = string
  default     = "15d"
  nullable    = false
  validation {
    condition     = can(regex("^[0-9]+(h|d|w|y)$", var.prometheus_retention))
    error_message = "prometheus_retention = \"${var.prometheus_retention}\" is not a duration in hours, days, weeks or years: use e.g. \"15d\" or \"12h\"."
  }
}

variable "prometheus_storage_size" {
  description = "PVC size of each Prometheus replica (whole Gi)."
  type        = string
  default     = "50Gi"
  nullable    = false
  validation {
    condition     = can(regex("^[1-9][0-9]*Gi$", var.prometheus_storage_size))
    error_message = "prometheus_storage_size = \"${var.prometheus_storage_size}\" is not whole gibibytes: use e.g. \"50Gi\"."
  }
}

variable "logging_enabled" {
  description = "Deploy log collection: Loki (single binary) + Fluent Bit on every node. Off by default."
  type        = bool
  default     = false
  nullable    = false
}

variable "tracing_enabled" {
  description = "Deploy an OpenTelemetry Collector for traces. Off by default."
  type        = bool
  default     = false
  nullable    = false
}

variable "tracing_otlp_endpoint" {
  description = "OTLP gRPC endpoint (host:port, e.g. \"tempo.tracing.svc:4317\") the collector forwards traces to; null = count and drop."
  type        = string
  default     = null
  validation {
    condition     = var.tracing_otlp_endpoint == null || try(can(regex("^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?:[0-9]{1,5}$", var.tracing_otlp_endpoint)) && tonumber(split(":", var.tracing_otlp_endpoint)[1]) >= 1 && tonumber(split(":", var.tracing_otlp_endpoint)[1]) <= 65535, false)
    error_message = "tracing_otlp_endpoint = \"${coalesce(var.tracing_otlp_endpoint, "null")}\" is not host:port: use e.g. \"tempo.tracing.svc:4317\" (no scheme, no path, port 1-65535), or null to only count spans."
  }
}

variable "monitoring_alertmanager_config" {
  description = "Alertmanager configuration (route, receivers) as an object; null = alerts are only visible in the UI (plan warns)."
  type        = any
  default     = null
  validation {
    condition     = var.monitoring_alertmanager_config == null || can(keys(var.monitoring_alertmanager_config))
    error_message = "monitoring_alertmanager_config = ${jsonencode(var.monitoring_alertmanager_config)} is not an object: write it as HCL, e.g. { route = { receiver = \"ops\" }, receivers = [{ name = \"ops\", webhook_configs = [{ url = \"https://...\" }] }] }, not a YAML/JSON string."
  }
}

variable "monitoring_runbook_base_url" {
  description = "Prefix for alert runbook links (they are relative to the repository root), e.g. \"https://git.example.com/ffe-ha/blob/main/\"."
  type        = string
  default     = ""
  nullable    = false
  validation {
    condition     = var.monitoring_runbook_base_url == "" || can(regex("^https?://[^[:space:]]+/$", var.monitoring_runbook_base_url))
    error_message = "monitoring_runbook_base_url = \"${var.monitoring_runbook_base_url}\" must be \"\" or an http(s) URL ending in '/', e.g. \"https://git.example.com/ffe-ha/blob/main/\" (the links append docs/monitoring.md#...)."
  }
}

locals {
  postgres_ha_settings = yamldecode(file("${path.module}/../../modules/postgres/ha-settings.yaml"))
}

module "monitoring" {
  source = "../../modules/monitoring"
  count  = var.monitoring_enabled ? 1 : 0

  chart_version    = local.component_versions.kube_prometheus_stack
  namespace        = module.namespaces.names["monitoring"]
  create_namespace = false # modules/namespaces owns it (PSS privileged for node-exporter)
  server_ips       = var.master_ips
  # Retain: deleting a claim (or the release) keeps the metrics, alert silences and dashboards
  storage_class = module.storage.class_names.fast_retain
  chart_versions = {
    loki                    = local.component_versions.loki
    fluent_bit              = local.component_versions.fluent_bit
    opentelemetry_collector = local.component_versions.opentelemetry_collector
  }

  prometheus_retention    = var.prometheus_retention
  prometheus_storage_size = var.prometheus_storage_size
  alertmanager_config     = var.monitoring_alertmanager_config
  runbook_base_url        = var.monitoring_runbook_base_url

  # The Postgres layer's rules (absent() alerts would fire forever without it), monitors and
  # dashboard are rendered only when it is deployed (postgres.tf); the same for Vault (vault.tf:
  # TLS on its listener, so https). The backup-age alerts take their periods from the schedules the
  # cluster runs and the margin next to them (modules/postgres/ha-settings.yaml, the module's one source).
  postgres_enabled                 = local.postgres_enabled
  vault_enabled                    = local.vault_enabled
  vault_scheme                     = "https"
  vault_members                    = local.vault_enabled ? length(var.vault_cluster_ips) : 3
  postgres_replicas                = var.postgres_replicas
  postgres_backup_schedules        = local.postgres_ha_settings.pgbackrest.schedules
  postgres_backup_age_margin_hours = local.postgres_ha_settings.pgbackrest.backup_age_margin_hours
  etcd_snapshot_max_age_seconds    = local.etcd_snapshot_max_age_seconds

  namespaces = {
    cert_manager = module.namespaces.names["cert-manager"]
    vault        = module.namespaces.names["vault"]
    postgres     = module.namespaces.names["ffe-data"]
    edge         = module.namespaces.names["nginx-gateway"]
  }

  logging_enabled       = var.logging_enabled
  tracing_enabled       = var.tracing_enabled
  tracing_otlp_endpoint = var.tracing_otlp_endpoint
}

# Without a receiver Alertmanager keeps alerts in its UI only: nobody is paged.
check "alerts_routed" {
  assert {
    condition     = !var.monitoring_enabled || var.monitoring_alertmanager_config != null
    error_message = "alerts go nowhere: set monitoring_alertmanager_config (route + receivers, see docs/monitoring.md). It is null, so Alertmanager only shows alerts in its own UI."
  }
}

# Written to every server after the platform bundles (namespaces, storage classes) exist. Waits
# until the prometheus-operator CRDs are served, so the add-ons and the app can use them.
resource "ffe_manifests" "monitoring" {
  count = var.monitoring_enabled ? 1 : 0

  bundle    = "monitoring"
  servers   = ffe_k3s_cluster.this.servers
  manifests = module.monitoring[0].manifests
  wait_for = [for crd in ["servicemonitors", "podmonitors", "prometheusrules"] : {
    kind      = "customresourcedefinition"
    name      = "${crd}.monitoring.coreos.com"
    namespace = null
    condition = "Established"
  }]
  depends_on = [ffe_manifests.platform]
}

# Logging (Loki, Fluent Bit) and tracing (OpenTelemetry Collector), after the monitoring CRDs.
resource "ffe_manifests" "observability" {
  count = var.monitoring_enabled && (var.logging_enabled || var.tracing_enabled) ? 1 : 0

  bundle     = "observability"
  servers    = ffe_k3s_cluster.this.servers
  manifests  = module.monitoring[0].addon_manifests
  depends_on = [ffe_manifests.monitoring]
}

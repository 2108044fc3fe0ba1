variable "chart_version" {
  description = "kube-prometheus-stack chart version (pinned in the environment's pins.tf)."
  type        = string
  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.chart_version))
    error_message = "chart_version must be an exact chart version such as \"88.5.3\", not a range."
  }
}

variable "chart_repo" {
  description = "Helm repository of kube-prometheus-stack (set to an internal mirror for air-gapped installs)."
  type        = string
  default     = "https://prometheus-community.github.io/helm-charts"
}

variable "namespace" {
  description = "Namespace for Prometheus, Alertmanager, Grafana and the exporters."
  type        = string
  default     = "monitoring"
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS-1123 label (lower-case letters, digits, '-')."
  }
}

variable "create_namespace" {
  description = "Render the Namespace object (false when another bundle, e.g. modules/namespaces, owns it)."
  type        = bool
  default     = true
}

variable "server_ips" {
  description = "IPv4 addresses of the k3s servers: etcd metrics are scraped at <ip>:2381 (k3s etcd-expose-metrics)."
  type        = list(string)
  validation {
    condition     = length(var.server_ips) > 0 && alltrue([for ip in var.server_ips : can(cidrhost("${ip}/32", 0))])
    error_message = "server_ips must list at least one IPv4 address (the k3s servers)."
  }
}

variable "prometheus_replicas" {
  description = "Prometheus replicas (each scrapes everything; Alertmanager de-duplicates their alerts)."
  type        = number
  default     = 2
  validation {
    condition     = var.prometheus_replicas >= 1 && floor(var.prometheus_replicas) == var.prometheus_replicas
    error_message = "prometheus_replicas must be a whole number >= 1 (2 for HA)."
  }
}

variable "alertmanager_replicas" {
  description = "Alertmanager replicas (gossip cluster; 3 survives one loss)."
  type        = number
  default     = 3
  validation {
    condition     = var.alertmanager_replicas >= 1 && floor(var.alertmanager_replicas) == var.alertmanager_replicas
    error_message = "alertmanager_replicas must be a whole number >= 1 (3 for HA)."
  }
}

variable "prometheus_retention" {
  description = "How long Prometheus keeps samples (Prometheus duration: 15d, 12h, 4w)."
  type        = string
  default     = "15d"
  validation {
    condition     = can(regex("^[0-9]+(ms|s|m|h|d|w|y)$", var.prometheus_retention))
    error_message = "prometheus_retention must be a Prometheus duration such as \"15d\" or \"12h\"."
  }
}

variable "prometheus_storage_size" {
  description = "PVC size of each Prometheus replica. Retention by size is set to 90% of it."
  type        = string
  default     = "50Gi"
  validation {
    condition     = can(regex("^[0-9]+Gi$", var.prometheus_storage_size))
    error_message = "prometheus_storage_size must be whole gibibytes such as \"50Gi\"."
  }
}

variable "storage_class" {
  description = "StorageClass for the Prometheus, Alertmanager, Grafana and Loki claims: a class with reclaimPolicy Retain, so deleting a claim (or the release) keeps the data."
  type        = string
  default     = "fast-local-retain"
}

variable "grafana_storage_size" {
  description = "Grafana PVC size (dashboards, users, preferences)."
  type        = string
  default     = "10Gi"
}

variable "grafana_admin_existing_secret" {
  description = "Existing Secret (keys admin-user, admin-password) for the Grafana admin. null: the chart generates a random password once into Secret <namespace>/kube-prometheus-stack-grafana and keeps it across upgrades."
  type        = string
  default     = null
}

variable "alertmanager_config" {
  description = "Alertmanager configuration (route, receivers) as an object; null keeps the chart default (alerts visible in the UI, sent nowhere)."
  type        = any
  default     = null
  validation {
    condition     = var.alertmanager_config == null || can(keys(var.alertmanager_config))
    error_message = "alertmanager_config must be an object such as { route = {...}, receivers = [...] } or null, not ${jsonencode(var.alertmanager_config)}."
  }
}

variable "runbook_base_url" {
  description = "Prefix for the rules' runbook_url (which are relative to the repository root, e.g. docs/monitoring.md#kubeapidown). Example: https://git.example.com/ffe-ha/blob/main/"
  type        = string
  default     = ""
  nullable    = false
  validation {
    condition     = var.runbook_base_url == "" || can(regex("^https?://[^[:space:]]+/$", var.runbook_base_url))
    error_message = "runbook_base_url = \"${var.runbook_base_url}\" must be empty or an http(s) URL ending in '/'."
  }
}

variable "postgres_enabled" {
  description = "Set when the Postgres layer is deployed: adds the Postgres and pgBackRest/pg_dump alert groups (rule groups whose name contains \"postgres\"), the Patroni, postgres_exporter and pgbouncer_exporter PodMonitors, the PerconaPGBackup metrics and the Postgres dashboard. Off: nothing alerts on a Postgres that is not there."
  type        = bool
  default     = false
  nullable    = false
}

variable "vault_enabled" {
  description = "Set when the Vault layer is deployed: adds the Vault and Vault-snapshot alert groups (rule groups whose name contains \"vault\"), the Vault ServiceMonitor and the Vault dashboard. Off: nothing alerts on a Vault that is not there."
  type        = bool
  default     = false
  nullable    = false
}

variable "vault_members" {
  description = "Vault members the Vault layer deploys (3, or 1 with vault_ha_enabled = false): VaultRaftPeersMissing fires when the active member counts fewer healthy Raft peers. Used only with vault_enabled."
  type        = number
  default     = 3
  nullable    = false
  validation {
    condition     = contains([1, 3, 5], var.vault_members)
    error_message = "vault_members = ${var.vault_members} must be 1, 3 or 5 (a Raft cluster has an odd number of voters; the environment deploys 3, or 1 with vault_ha_enabled = false)."
  }
}

variable "postgres_replicas" {
  description = "Configured Postgres replicas: PostgresReplicaMissing fires below this number."
  type        = number
  default     = 2
}

variable "etcd_snapshot_max_age_seconds" {
  description = "EtcdSnapshotTooOld fires when a server's newest snapshot is older than this (one schedule interval + grace)."
  type        = number
  default     = 25200
}

variable "namespaces" {
  description = "Namespaces of the scraped components."
  type = object({
    cert_manager = optional(string, "cert-manager")
    vault        = optional(string, "vault")
    postgres     = optional(string, "ffe-data")
    edge         = optional(string, "ffe-edge")
  })
  default = {}
}

variable "vault_scheme" {
  description = "Scheme of the Vault listener that serves /v1/sys/metrics (https when Vault TLS is on)."
  type        = string
  default     = "https"
  validation {
    condition     = contains(["http", "https"], var.vault_scheme)
    error_message = "vault_scheme must be \"http\" or \"https\"."
  }
}

variable "logging_enabled" {
  description = "Deploy log collection (Loki single-binary on a PVC + Fluent Bit on every node)."
  type        = bool
  default     = false
}

variable "tracing_enabled" {
  description = "Deploy an OpenTelemetry Collector (OTLP gRPC 4317 / HTTP 4318) for distributed traces."
  type        = bool
  default     = false
}

variable "tracing_otlp_endpoint" {
  description = "Where the collector forwards traces (OTLP gRPC, e.g. a Jaeger or Tempo collector at host:4317). null: traces are only counted and logged (debug exporter)."
  type        = string
  default     = null
  validation {
    condition     = var.tracing_otlp_endpoint == null || can(regex("^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?:[0-9]{1,5}$", var.tracing_otlp_endpoint))
    error_message = "tracing_otlp_endpoint = \"${coalesce(var.tracing_otlp_endpoint, "null")}\" must be host:port such as \"tempo.tracing.svc:4317\" (no scheme, no path)."
  }
}

variable "chart_versions" {
  description = "Exact chart versions of the optional add-ons (pinned in the environment's pins.tf; each must be vendored under upstream/charts/)."
  type = object({
    loki                    = string
    fluent_bit              = string
    opentelemetry_collector = string
  })
}

variable "rules_dir" {
  description = "Directory of the Prometheus rule files (plain rule-file format)."
  type        = string
  default     = null
}

variable "dashboards_dir" {
  description = "Directory of the Grafana dashboard JSON files."
  type        = string
  default     = null
}

variable "postgres_backup_schedules" {
  description = "pgBackRest backup schedules of the Postgres layer (type -> cron \"m h * * dow\", as in the PerconaPGCluster's repos[].schedules): their periods set PgBackRestFullBackupTooOld (key full) and PgBackRestBackupTooOld (all together)."
  type        = map(string)
  default     = { full = "0 1 * * 0", differential = "0 1 * * 1-6" }
  nullable    = false
  validation {
    condition = contains(keys(var.postgres_backup_schedules), "full") && alltrue([for cron in values(var.postgres_backup_schedules) :
      can(regex("^([0-9]|[1-5][0-9]) ([0-9]|1[0-9]|2[0-3]) \\* \\* (\\*|[0-7](-[0-7])?)(,[0-7](-[0-7])?)*$", cron))
    ])
    error_message = "postgres_backup_schedules = ${jsonencode(var.postgres_backup_schedules)}: each schedule must be a cron \"minute hour * * day-of-week\" with plain numbers (day of week: *, n, n-m or a comma list of those), e.g. \"0 1 * * 0\", and key full must be one of them; the backup-age alerts derive their periods from them."
  }
}

variable "postgres_backup_age_margin_hours" {
  description = "Hours a pgBackRest backup may be late before PgBackRestFullBackupTooOld / PgBackRestBackupTooOld fire (added to the schedule's period)."
  type        = number
  default     = 6
  nullable    = false
  validation {
    condition     = var.postgres_backup_age_margin_hours >= 1 && var.postgres_backup_age_margin_hours <= 72
    error_message = "postgres_backup_age_margin_hours = ${var.postgres_backup_age_margin_hours} must be between 1 and 72 (a backup runs for a while; more than 3 days late is no longer a margin)."
  }
}

variable "patroni_port" {
  description = "Patroni REST API port of the Postgres pods (PerconaPGCluster spec.patroni.port; the operator's default is 8008): the Patroni PodMonitor scrapes /metrics there."
  type        = number
  default     = 8008
  nullable    = false
  validation {
    condition     = var.patroni_port >= 1024 && var.patroni_port <= 65535 && floor(var.patroni_port) == var.patroni_port
    error_message = "patroni_port = ${var.patroni_port} must be a whole port number 1024-65535 (the operator's CRD range for spec.patroni.port)."
  }
}

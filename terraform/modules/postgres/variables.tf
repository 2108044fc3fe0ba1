# Inputs of the Postgres HA layer (Percona Operator for PostgreSQL + one PerconaPGCluster).
# Patroni timings and pgBackRest settings are NOT inputs: they are read from ha-settings.yaml,
# the one source the lab test reads too.

variable "namespace" {
  description = "Namespace of the operator, the PerconaPGCluster and the pg_dump CronJob (the operator watches its own release namespace)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS-1123 label (lower-case letters, digits, '-')."
  }
}

variable "postgres_version" {
  description = "PostgreSQL major version (a key of images_by_major), e.g. \"17\"."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^1[2-8]$", var.postgres_version))
    error_message = "postgres_version = \"${var.postgres_version}\" is outside what the PerconaPGCluster CRD of Percona operator 3.0.0 accepts (spec.postgresVersion 12..18)."
  }
}

variable "images" {
  description = "Images the PerconaPGCluster runs (Percona operator 3.0.0 sets no RELATED_IMAGE_* defaults, so each must be named): postgres (also runs the pg_dump and restore-check CronJobs), pgbouncer, pgbackrest."
  type = object({
    postgres   = string
    pgbouncer  = string
    pgbackrest = string
  })
  nullable = false

  validation {
    condition     = alltrue([for i in values(var.images) : can(regex("^[a-z0-9.-]+(/[a-z0-9._-]+)+:[A-Za-z0-9._-]+$", i))])
    error_message = "images: every image must be a repository with an explicit tag (no latest-by-default): ${jsonencode(var.images)}."
  }
}

variable "operator_chart_version" {
  description = "pg-operator chart version (vendored under upstream/charts/pg-operator/<version>/)."
  type        = string
  nullable    = false
}

variable "operator_chart_repo" {
  description = "Helm repository of the pg-operator chart."
  type        = string
  nullable    = false
}

variable "operator_crd_version" {
  description = "Operator version the PerconaPGCluster is written for (spec.crVersion; the CRDs are labelled pgv2.percona.com/version: v<this>)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.operator_crd_version))
    error_message = "operator_crd_version must be x.y.z (without a leading v), e.g. \"3.0.0\"."
  }

  validation {
    condition     = fileexists("${path.module}/../../../upstream/crds/percona-pg-operator/v${var.operator_crd_version}/crd.yaml")
    error_message = "operator_crd_version = \"${var.operator_crd_version}\": its CRDs are not vendored (upstream/crds/percona-pg-operator/v${var.operator_crd_version}/crd.yaml is missing; see upstream/README.md)."
  }
}

variable "replicas" {
  description = "Streaming replicas besides the primary; the instance set runs replicas + 1 pods."
  type        = number
  nullable    = false

  validation {
    condition     = floor(var.replicas) == var.replicas && var.replicas >= 1 && var.replicas <= 5
    error_message = "replicas must be a whole number from 1 to 5."
  }
}

variable "synchronous_replication" {
  description = "Patroni synchronous_mode (one synchronous standby): true = a primary crash loses no acknowledged commit; false = asynchronous (lower write latency, RPO = replication lag)."
  type        = bool
  nullable    = false
}

variable "primary_ip" {
  description = "Fixed IPv4 kube-vip announces for the primary (the Patroni leader Service <cluster>-ha, type LoadBalancer)."
  type        = string
  nullable    = false
}

variable "loadbalancer_annotation" {
  description = "Service annotation that pins a LoadBalancer IP announced by kube-vip (modules/vip output)."
  type        = string
  nullable    = false
}

variable "data_storage_class" {
  description = "StorageClass of the database volumes: node-local and Retain (modules/storage fast_retain)."
  type        = string
  nullable    = false
}

variable "data_size" {
  description = "Size of each instance's data volume (whole Gi)."
  type        = string
  default     = "50Gi"
  nullable    = false

  validation {
    condition     = can(regex("^[1-9][0-9]*Gi$", var.data_size))
    error_message = "data_size must be whole gibibytes, e.g. \"50Gi\"."
  }
}

variable "backup_storage_class" {
  description = "RWX StorageClass on the NFS backup share (modules/storage backup): the pgBackRest repository and the pg_dump files."
  type        = string
  nullable    = false
}

variable "backup_storage_mode" {
  description = "modules/storage mode: \"csi-nfs\" (claims are provisioned dynamically) or \"hostpath\" (only pre-bound PVs exist: this module renders the one for the pgBackRest repository)."
  type        = string
  nullable    = false

  validation {
    condition     = contains(["csi-nfs", "hostpath"], var.backup_storage_mode)
    error_message = "backup_storage_mode must be \"csi-nfs\" or \"hostpath\" (modules/storage output mode)."
  }
}

variable "backup_mount" {
  description = "Where the NFS backup share is mounted on every node (hostpath mode: the repository PV lives below <backup_mount>/k8s/)."
  type        = string
  nullable    = false
}

variable "repo_size" {
  description = "Size of the pgBackRest repository claim (whole Gi). In hostpath mode it is the capacity of the pre-bound PV."
  type        = string
  default     = "200Gi"
  nullable    = false

  validation {
    condition     = can(regex("^[1-9][0-9]*Gi$", var.repo_size))
    error_message = "repo_size must be whole gibibytes, e.g. \"200Gi\"."
  }
}

variable "dump_claim" {
  description = "The pg_dump claim on the backup class. Its name must match the PV modules/storage pre-binds in hostpath mode (static_volumes \"postgres-dumps\": ffe-data/backup-postgres, 100Gi); size at most that PV's."
  type = object({
    name = string
    size = string
  })
  default  = { name = "backup-postgres", size = "100Gi" }
  nullable = false
}

variable "backup_retention_days" {
  description = "Days to keep backups: pgBackRest full backups younger than this (with the WAL they need) and pg_dump files younger than this."
  type        = number
  nullable    = false

  validation {
    condition     = floor(var.backup_retention_days) == var.backup_retention_days && var.backup_retention_days >= 1
    error_message = "backup_retention_days must be a whole number >= 1."
  }
}

variable "dump_schedule" {
  description = "Cron schedule (UTC) of the daily logical pg_dump."
  type        = string
  default     = "30 2 * * *"
  nullable    = false

  validation {
    condition     = length(split(" ", var.dump_schedule)) == 5
    error_message = "dump_schedule must be a 5-field cron schedule, e.g. \"30 2 * * *\"."
  }
}

variable "app_namespace" {
  description = "Namespace of the app: role ffe-user's Secret (keys user, password) and the cluster CA (key ca.crt) are copied there by a CronJob, since a pod reads Secrets of its own namespace only. null = no copy."
  type        = string
  default     = null

  validation {
    condition     = var.app_namespace == null || can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", coalesce(var.app_namespace, "-")))
    error_message = "app_namespace must be a DNS-1123 label or null."
  }
}

variable "app_ca_secret" {
  description = "Name of the Secret in app_namespace that receives the cluster CA (key ca.crt): the app chart's database.caSecret.name."
  type        = string
  default     = "ffe-db-ca"
  nullable    = false
}

variable "app_vault" {
  description = "Where the app reads its secrets when the Vault layer is deployed (null = no Vault: the credentials job copies the password Secret into app_namespace instead). The job logs in with its ServiceAccount through Vault's Kubernetes auth (mount auth_mount, role `role`) and patches keys username_key/password_key of kv-v2 secret `secret_path` under mount kv_mount; Vault's CA comes from Secret ca_secret (key ca.crt) in this module's namespace."
  type = object({
    address      = string
    ca_secret    = string
    auth_mount   = string
    role         = string
    kv_mount     = string
    secret_path  = string
    username_key = string
    password_key = string
  })
  default = null

  validation {
    condition     = var.app_vault == null || startswith(try(var.app_vault.address, ""), "https://")
    error_message = "app_vault.address must be an https:// URL (Vault's API is TLS-only here)."
  }
  validation {
    condition     = var.app_vault == null || alltrue([for k in ["ca_secret", "auth_mount", "role", "kv_mount", "secret_path", "username_key", "password_key"] : try(length(var.app_vault[k]) > 0, false)])
    error_message = "app_vault: every field must be a non-empty string."
  }
}

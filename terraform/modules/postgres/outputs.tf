output "crd_manifests" {
  description = "File name => the operator's CRDs (all of the chart's crds/crd.yaml, as compact JSON documents), for a bundle applied and waited for before `manifests`."
  value       = { "crds.yaml" = join("\n---\n", [for d in local.crd_docs : jsonencode(d)]) }
}

output "crd_names" {
  description = "Names of the delivered CRDs, to wait for (condition Established) before the cluster is written."
  value       = [for d in local.crd_docs : d.metadata.name]
}

output "manifests" {
  description = "File name => YAML for the postgres bundle: the operator HelmChart, the PerconaPGCluster, the pg_dump CronJob and its claim, the restore-check CronJob, the repository PV (hostpath mode) and the monitoring objects."
  value = merge(local.extra_files, {
    "pg-operator.yaml"      = yamlencode(local.operator_chart)
    "cluster.yaml"          = yamlencode(local.cluster_cr)
    "pg-dump.yaml"          = join("---\n", [yamlencode(local.dump_claim), yamlencode(local.dump_cronjob)])
    "pg-restore-check.yaml" = yamlencode(local.restore_check_cronjob)
    }, length(local.sync_docs) == 0 ? {} : {
    "credentials-sync.yaml" = join("---\n", local.sync_docs)
    }, var.backup_storage_mode == "hostpath" ? {
    "repo-volume.yaml" = yamlencode(local.repo_volume)
  } : {})
}

output "cluster" {
  description = "The PerconaPGCluster object as rendered (for tests and for readers of the plan)."
  value       = local.cluster_cr
}

output "names" {
  description = "Names of what the operator creates: cluster, instance set, app role, database, the role's password Secret, the CA-bearing certificate Secret, the Services, and the pg_dump and restore-check CronJobs."
  value = {
    cluster           = local.cluster
    namespace         = var.namespace
    instance_set      = local.instance_set
    user              = local.user
    database          = local.database
    user_secret       = local.user_secret
    cluster_cert      = local.cluster_cert
    primary_service   = "${local.cluster}-ha"
    replica_service   = local.replica_service
    pgbouncer_service = local.pgbouncer_svc
    dump_cronjob      = local.dump_cronjob.metadata.name
    dump_claim        = var.dump_claim.name
    dump_schedule     = var.dump_schedule
    # The weekly restore check; `ffe-ha backup verify` runs a Job from its jobTemplate.
    restore_check_cronjob  = local.restore_check_cronjob.metadata.name
    restore_check_schedule = local.restore_check_cronjob.spec.schedule
    # Not set in the PerconaPGCluster: the operator's CRD default (spec.patroni.port, 8008).
    patroni_port = 8008
  }
}

output "endpoints" {
  description = "host:port of the primary (primary_ip, follows the Patroni leader), the read-only replicas Service and the PgBouncer Service."
  value = {
    primary   = "${var.primary_ip}:${local.port}"
    replica   = "${local.replica_service}.${local.namespace_suffix}:${local.port}"
    pgbouncer = "${local.pgbouncer_svc}.${local.namespace_suffix}:${local.port}"
  }
}

output "app_vault_writer" {
  description = "With app_vault set: the Vault Kubernetes-auth role the credentials job logs in as (role, service_account, namespace) and the policy that role needs (create and patch on the app's kv-v2 secret, never read; read and patch on its metadata). null without app_vault."
  value = local.sync_vault == null ? null : {
    role            = var.app_vault.role
    service_account = local.sync_name
    namespace       = var.namespace
    policy          = <<-HCL
      # The credentials job of modules/postgres: create the app's secret once, then patch its two
      # database keys. It cannot read the secret back, nor touch any other path.
      path "${var.app_vault.kv_mount}/data/${var.app_vault.secret_path}" {
        capabilities = ["create", "patch"]
      }
      # What it last wrote (custom metadata: a digest and a version number), to skip unchanged
      # writes; it may not change the secret's other settings (max_versions, cas_required, ...).
      path "${var.app_vault.kv_mount}/metadata/${var.app_vault.secret_path}" {
        capabilities = ["read", "patch"]
        allowed_parameters = {
          "custom_metadata" = []
        }
      }
    HCL
  }
}

output "pgbackrest_dir" {
  description = "Directory of the pgBackRest repository (repo1, stanza db: backup/db/backup.info inside) relative to the backup share: this module's hostPath PV, or the NFS CSI driver's subDir for claim <namespace>-<cluster>-repo1."
  value       = local.repo_dir
}

# Renders the observability stack as k3s auto-deploy manifests:
#   - kube-prometheus-stack as a helm.cattle.io HelmChart (Prometheus x2, Alertmanager x3, Grafana with a PVC,
#     kube-state-metrics, node-exporter), configured for k3s (one process runs apiserver, scheduler,
#     controller-manager and kubelet, so each family is scraped once; etcd via etcd-expose-metrics on :2381);
#   - PrometheusRules from monitoring/rules/*.yaml, Grafana dashboards from monitoring/dashboards/*.json;
#   - ServiceMonitors/PodMonitors for cert-manager and NGINX Gateway Fabric, plus Vault (vault_enabled) and
#     Patroni/postgres_exporter/pgbouncer_exporter (postgres_enabled) (the app's ServiceMonitor ships with helm/ffe-backend);
#   - the Postgres and Vault parts (rules, monitors, dashboards, PerconaPGBackup metrics) only when their
#     layer is deployed (postgres_enabled / vault_enabled), so absent() alerts do not fire forever;
#   - optional logging (Loki + Fluent Bit) and tracing (OpenTelemetry Collector).
locals {
  rules_dir      = coalesce(var.rules_dir, "${path.module}/../../../monitoring/rules")
  dashboards_dir = coalesce(var.dashboards_dir, "${path.module}/../../../monitoring/dashboards")
  release        = "kube-prometheus-stack"

  common_labels = {
    "app.kubernetes.io/part-of"    = "ffe-monitoring"
    "app.kubernetes.io/managed-by" = "ffe-terraform"
  }

  # k3s: servers carry CriticalAddonsOnly=true:NoExecute, so these run on workers; node-exporter must
  # run everywhere and tolerates every taint.
  tolerate_all = [{ operator = "Exists" }]

  # One registry per k3s process: the kubelet endpoint also serves apiserver/etcd/scheduler/controller
  # families. Those are kept from job="apiserver" only; drop them from job="kubelet".
  kubelet_drop_regex = "(apiserver|etcd|scheduler|workqueue|aggregator|authentication|authorization|node_authorizer|watch_cache|apiextensions|admission|kube_apiserver|cronjob_controller|endpoint_slice|replicaset_controller|job_controller|node_collector|garbage_collector|leader_election|ttl_after_finished)_.*"

  # kube-state-metrics: k3s etcd snapshots (ETCDSnapshotFile) and, with postgres_enabled, Percona
  # backups (PerconaPGBackup) as metrics, so backup alerts read real objects (see
  # monitoring/rules/backups.yaml).
  custom_resource_state = {
    spec = {
      resources = concat([local.ksm_etcd_snapshots], var.postgres_enabled ? [local.ksm_percona_backups] : [])
    }
  }
  ksm_rbac_rules = concat(
    [{ apiGroups = ["k3s.cattle.io"], resources = ["etcdsnapshotfiles"], verbs = ["list", "watch"] }],
    var.postgres_enabled ? [{ apiGroups = ["pgv2.percona.com"], resources = ["perconapgbackups"], verbs = ["list", "watch"] }] : [],
  )

  ksm_etcd_snapshots = {
    groupVersionKind = { group = "k3s.cattle.io", version = "v1", kind = "ETCDSnapshotFile" }
    metricNamePrefix = "ffe"
    labelsFromPath = {
      snapshot = ["metadata", "name"]
      node     = ["spec", "nodeName"]
    }
    metrics = [
      {
        name = "etcd_snapshot_creation_timestamp_seconds"
        help = "Unix time the etcd snapshot was taken (status.creationTime)."
        each = { type = "Gauge", gauge = { path = ["status", "creationTime"], nilIsZero = true } }
      },
      {
        name = "etcd_snapshot_ready"
        help = "1 when the snapshot can be restored (status.readyToUse)."
        each = { type = "Gauge", gauge = { path = ["status", "readyToUse"], nilIsZero = true } }
      },
      {
        name = "etcd_snapshot_error_timestamp_seconds"
        help = "Unix time of the last snapshot error (status.error.time), 0 if none."
        each = { type = "Gauge", gauge = { path = ["status", "error", "time"], nilIsZero = true } }
      },
    ]
  }
  ksm_percona_backups = {
    groupVersionKind = { group = "pgv2.percona.com", version = "v2", kind = "PerconaPGBackup" }
    metricNamePrefix = "ffe"
    # Field paths checked against the vendored CRD (upstream/crds/percona-pg-operator/v3.0.0):
    # status.state (Starting|Running|Succeeded|Failed), status.completed (date-time),
    # status.backupType (pgBackRest's own type: full|diff|incr, copied from `pgbackrest info` once
    # the backup exists; pg-operator 3.0.0: percona/controller/pgbackup/controller.go:527; the strings
    # are pgBackRest's, release/2.58.0 src/info/infoBackup.h:19-21 via src/command/info/info.c:456).
    labelsFromPath = {
      namespace = ["metadata", "namespace"]
      name      = ["metadata", "name"]
      cluster   = ["spec", "pgCluster"]
      type      = ["status", "backupType"]
    }
    metrics = [
      {
        name = "pgbackup_created_timestamp_seconds"
        help = "Unix time the PerconaPGBackup was created."
        each = { type = "Gauge", gauge = { path = ["metadata", "creationTimestamp"] } }
      },
      {
        name = "pgbackup_completed_timestamp_seconds"
        help = "Unix time the backup completed (status.completed), 0 while not completed."
        each = { type = "Gauge", gauge = { path = ["status", "completed"], nilIsZero = true } }
      },
      {
        name = "pgbackup_state"
        help = "Backup state (status.state), one series per state."
        each = { type = "StateSet", stateSet = { path = ["status", "state"], labelName = "state", list = ["New", "Starting", "Running", "Succeeded", "Failed"] } }
      },
    ]
  }
}

locals {
  prometheus_storage_gib = tonumber(trimsuffix(var.prometheus_storage_size, "Gi"))

  values = {
    fullnameOverride = local.release
    # Rules for components k3s does not run separately (their jobs do not exist) or that
    # monitoring/rules/ replaces (etcd) are off; the rest of the upstream rules stay.
    defaultRules = {
      rules = {
        etcd                   = false
        kubeControllerManager  = false
        kubeSchedulerAlerting  = false
        kubeSchedulerRecording = false
        kubeProxy              = false
      }
    }
    kubeApiServer = { enabled = true }
    kubelet = {
      enabled = true
      serviceMonitor = {
        metricRelabelings = [
          { action = "drop", sourceLabels = ["__name__"], regex = local.kubelet_drop_regex },
          { action = "drop", sourceLabels = ["__name__", "le"], regex = "(csi_operations|storage_operation_duration)_seconds_bucket;(0.25|2.5|15|25|120|600)(\\.0)?" },
        ]
      }
    }
    kubeControllerManager = { enabled = false }
    kubeScheduler         = { enabled = false }
    kubeProxy             = { enabled = false }
    coreDns               = { enabled = true }
    kubeEtcd = {
      enabled   = true
      endpoints = var.server_ips
      service   = { enabled = true, port = 2381, targetPort = 2381 }
      serviceMonitor = {
        scheme = "http"
        # Only etcd's own families: the rest of the k3s registry is scraped as job="apiserver".
        metricRelabelings = [
          { action = "keep", sourceLabels = ["__name__"], regex = "(etcd_.*|grpc_server_.*|process_.*|up)" },
        ]
      }
    }
    prometheusOperator = {
      tolerations = []
    }
    prometheus = {
      prometheusSpec = {
        replicas           = var.prometheus_replicas
        podAntiAffinity    = "hard"
        retention          = var.prometheus_retention
        retentionSize      = "${floor(local.prometheus_storage_gib * 0.9)}GB"
        scrapeInterval     = "30s"
        evaluationInterval = "30s"
        # Select every ServiceMonitor/PodMonitor/PrometheusRule in the cluster, not only this release's:
        # the app chart and the other add-ons ship their own.
        ruleSelectorNilUsesHelmValues           = false
        serviceMonitorSelectorNilUsesHelmValues = false
        podMonitorSelectorNilUsesHelmValues     = false
        probeSelectorNilUsesHelmValues          = false
        storageSpec = {
          volumeClaimTemplate = {
            spec = {
              storageClassName = var.storage_class
              accessModes      = ["ReadWriteOnce"]
              resources        = { requests = { storage = var.prometheus_storage_size } }
            }
          }
        }
        resources = {
          requests = { cpu = "200m", memory = "1Gi" }
          limits   = { memory = "3Gi" }
        }
      }
    }
    alertmanager = merge({
      alertmanagerSpec = {
        replicas        = var.alertmanager_replicas
        podAntiAffinity = "soft"
        storage = {
          volumeClaimTemplate = {
            spec = {
              storageClassName = var.storage_class
              accessModes      = ["ReadWriteOnce"]
              resources        = { requests = { storage = "2Gi" } }
            }
          }
        }
        resources = {
          requests = { cpu = "20m", memory = "64Mi" }
          limits   = { memory = "256Mi" }
        }
      }
    }, { for k, v in { config = var.alertmanager_config } : k => v if v != null })
    grafana = merge({
      replicas = 1
      persistence = {
        enabled          = true
        type             = "pvc"
        storageClassName = var.storage_class
        accessModes      = ["ReadWriteOnce"]
        size             = var.grafana_storage_size
      }
      # Recreate: the RWO volume cannot be attached to two pods during a rolling update.
      deploymentStrategy = { type = "Recreate" }
      sidecar = {
        dashboards = {
          enabled          = true
          label            = "grafana_dashboard"
          labelValue       = "1"
          searchNamespace  = "ALL"
          folderAnnotation = "grafana_folder"
          provider         = { foldersFromFilesStructure = true }
        }
      }
      }, {
      for k, v in {
        admin = { existingSecret = coalesce(var.grafana_admin_existing_secret, "unset"), userKey = "admin-user", passwordKey = "admin-password" }
      } : k => v if var.grafana_admin_existing_secret != null
    })
    kube-state-metrics = {
      customResourceState = {
        enabled = true
        config  = local.custom_resource_state
      }
      rbac = {
        extraRules = local.ksm_rbac_rules
      }
    }
    prometheus-node-exporter = {
      tolerations = local.tolerate_all
      prometheus = {
        monitor = {
          # `node` = the Kubernetes node name, so node alerts and dashboards join with kube-state-metrics.
          relabelings = [
            { action = "replace", sourceLabels = ["__meta_kubernetes_pod_node_name"], targetLabel = "node" },
          ]
        }
      }
    }
  }
}

# How old the newest pgBackRest backups may be: computed from the schedules in one module, which
# `ffe-ha verify` (the environment's ops_inventory) uses too, so the alert and the CLI agree.
module "backup_age" {
  source = "../backup-age"

  postgres_backup_schedules        = var.postgres_backup_schedules
  postgres_backup_age_margin_hours = var.postgres_backup_age_margin_hours
}

locals {
  pg_backup_max_age_seconds = module.backup_age.postgres_max_age_seconds
}

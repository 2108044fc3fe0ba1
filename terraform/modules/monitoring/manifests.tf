# The rendered objects, one YAML file each (file name -> YAML), ready for an ffe_manifests bundle.
locals {
  rule_files = sort([for f in fileset(local.rules_dir, "*.yaml") : f if f != "expected.yaml"])

  # Layers this release may not deploy: a rule group or dashboard whose name contains "postgres" /
  # "vault" is rendered only with postgres_enabled / vault_enabled (their absent() alerts would
  # otherwise fire forever). crates/ffe-validate/tests/dashboards.rs checks that every rule reading a
  # Postgres or Vault metric sits in such a group.
  layer_enabled = {
    postgres = var.postgres_enabled
    vault    = var.vault_enabled
  }
  # name (rule group or dashboard file) -> rendered?
  layer_wanted = { for name in distinct(concat(local.rule_group_names, local.all_dashboard_files)) : name => alltrue([
    for layer, enabled in local.layer_enabled : enabled || !strcontains(lower(name), layer)
  ]) }
  rule_file_groups = { for f in local.rule_files : trimsuffix(f, ".yaml") => yamldecode(file("${local.rules_dir}/${f}")).groups }
  rule_group_names = flatten([for groups in values(local.rule_file_groups) : [for g in groups : g.name]])

  # runbook_url in the rule files is relative to the repository root; prefix it when a base is set.
  # A file whose groups are all left out renders no PrometheusRule at all.
  rule_groups = { for name, groups in {
    for f, file_groups in local.rule_file_groups : f => [
      for g in file_groups : merge(g, {
        rules = [
          for r in g.rules : can(r.annotations.runbook_url) ? merge(r, {
            annotations = merge(r.annotations, { runbook_url = "${var.runbook_base_url}${r.annotations.runbook_url}" })
          }) : r
        ]
      }) if local.layer_wanted[g.name]
    ]
  } : name => groups if length(groups) > 0 }

  # Same records as monitoring/rules/expected.yaml, with this environment's values.
  expected_group = {
    name = "ffe-expected"
    rules = concat(
      var.postgres_enabled ? [
        { record = "ffe:postgres_replicas:expected", expr = "vector(${var.postgres_replicas})" },
        { record = "ffe:postgres_full_backup_max_age_seconds:expected", expr = "vector(${local.pg_backup_max_age_seconds.full})" },
        { record = "ffe:postgres_backup_max_age_seconds:expected", expr = "vector(${local.pg_backup_max_age_seconds.any})" },
      ] : [],
      [{ record = "ffe:etcd_snapshot_max_age_seconds:expected", expr = "vector(${var.etcd_snapshot_max_age_seconds})" }],
      var.vault_enabled ? [
        { record = "ffe:vault_raft_peers:expected", expr = "vector(${var.vault_members})" },
      ] : [],
    )
  }

  all_dashboard_files = sort(fileset(local.dashboards_dir, "*.json"))
  dashboard_files     = [for f in local.all_dashboard_files : f if local.layer_wanted[f]]

  namespace_manifest = {
    apiVersion = "v1"
    kind       = "Namespace"
    metadata = {
      name = var.namespace
      # node-exporter needs host PID/network and hostPath mounts.
      labels = merge(local.common_labels, {
        "pod-security.kubernetes.io/enforce" = "privileged"
        "pod-security.kubernetes.io/audit"   = "baseline"
        "pod-security.kubernetes.io/warn"    = "baseline"
      })
    }
  }

  helm_chart = {
    apiVersion = "helm.cattle.io/v1"
    kind       = "HelmChart"
    metadata   = { name = local.release, namespace = "kube-system", labels = local.common_labels }
    spec = {
      repo            = var.chart_repo
      chart           = "kube-prometheus-stack"
      version         = var.chart_version
      targetNamespace = var.namespace
      valuesContent   = yamlencode(local.values)
    }
  }

  prometheus_rules = merge(
    {
      for name, groups in local.rule_groups : "prometheusrule-${name}.yaml" => {
        apiVersion = "monitoring.coreos.com/v1"
        kind       = "PrometheusRule"
        metadata   = { name = "ffe-${name}", namespace = var.namespace, labels = local.common_labels }
        spec       = { groups = groups }
      }
    },
    {
      "prometheusrule-expected.yaml" = {
        apiVersion = "monitoring.coreos.com/v1"
        kind       = "PrometheusRule"
        metadata   = { name = "ffe-expected", namespace = var.namespace, labels = local.common_labels }
        spec       = { groups = [local.expected_group] }
      }
    }
  )

  dashboards = {
    for f in local.dashboard_files : "dashboard-${trimsuffix(f, ".json")}.yaml" => {
      apiVersion = "v1"
      kind       = "ConfigMap"
      metadata = {
        name        = "ffe-dashboard-${trimsuffix(f, ".json")}"
        namespace   = var.namespace
        labels      = merge(local.common_labels, { grafana_dashboard = "1" })
        annotations = { grafana_folder = "FFE" }
      }
      data = { (f) = file("${local.dashboards_dir}/${f}") }
    }
  }

  monitors = merge(
    local.core_monitors,
    { for name, obj in local.postgres_monitors : name => obj if var.postgres_enabled },
    { for name, obj in local.vault_monitors : name => obj if var.vault_enabled },
  )

  core_monitors = {
    "servicemonitor-cert-manager.yaml" = {
      apiVersion = "monitoring.coreos.com/v1"
      kind       = "ServiceMonitor"
      metadata   = { name = "cert-manager", namespace = var.namespace, labels = local.common_labels }
      spec = {
        jobLabel          = "app.kubernetes.io/name"
        namespaceSelector = { matchNames = [var.namespaces.cert_manager] }
        selector = { matchLabels = {
          "app.kubernetes.io/name"      = "cert-manager"
          "app.kubernetes.io/component" = "controller"
        } }
        endpoints = [{ port = "tcp-prometheus-servicemonitor", path = "/metrics", interval = "60s" }]
      }
    }
    "podmonitor-nginx-gateway.yaml" = {
      apiVersion = "monitoring.coreos.com/v1"
      kind       = "PodMonitor"
      metadata   = { name = "nginx-gateway", namespace = var.namespace, labels = local.common_labels }
      spec = {
        namespaceSelector = { matchNames = [var.namespaces.edge] }
        selector          = { matchLabels = { "app.kubernetes.io/name" = "nginx-gateway-fabric" } }
        podMetricsEndpoints = [{
          port     = "metrics"
          path     = "/metrics"
          interval = "30s"
          relabelings = [
            { action = "replace", targetLabel = "job", replacement = "nginx-gateway" },
          ]
        }]
      }
    }
  }

  vault_monitors = {
    "servicemonitor-vault.yaml" = {
      apiVersion = "monitoring.coreos.com/v1"
      kind       = "ServiceMonitor"
      metadata   = { name = "vault", namespace = var.namespace, labels = local.common_labels }
      spec = {
        # Selects the headless Service "vault-metrics" of modules/vault (labelled for this selector,
        # port "http" = 8200 whatever the scheme): it lists every member, sealed ones included, for
        # both distributions (the charts' own headless Services differ in label and port name).
        namespaceSelector = { matchNames = [var.namespaces.vault] }
        selector = { matchLabels = {
          "app.kubernetes.io/name" = "vault"
          "vault-internal"         = "true"
        } }
        endpoints = [{
          port      = "http"
          path      = "/v1/sys/metrics"
          params    = { format = ["prometheus"] }
          scheme    = var.vault_scheme
          tlsConfig = var.vault_scheme == "https" ? { insecureSkipVerify = true } : null
          interval  = "30s"
          relabelings = [
            { action = "replace", targetLabel = "job", replacement = "vault" },
          ]
        }]
      }
    }
  }

  # The Postgres layer (terraform/modules/postgres, Percona pg-operator 3.0.0). Pod labels are the
  # operator's (internal/controller/postgrescluster/instance.go:1300-1331, pgbouncer.go:363-366); the
  # exporter port names are the sidecars' (modules/postgres/monitoring.tf).
  postgres_pod_labels = {
    database  = { "postgres-operator.crunchydata.com/data" = "postgres" }
    pgbouncer = { "postgres-operator.crunchydata.com/role" = "pgbouncer" }
  }
  postgres_monitors = merge({
    # Patroni serves /metrics on its REST API port, which no container declares (the database
    # container declares only `postgres`, internal/postgres/reconcile.go:188-192). So the monitor
    # selects the declared `postgres` port (one per pod) and rewrites the address to <pod IP>:<patroni
    # port>, as the PodMonitor CRD's portNumber field documents for undeclared ports.
    # TLS: the REST API serves the cluster certificate of the operator's own CA, for the pod's DNS
    # names; Prometheus scrapes by IP, so the name cannot match and verification is skipped.
    # verify_client is "optional" (internal/patroni/config.go:116-134): GET /metrics needs no client
    # certificate.
    "podmonitor-patroni.yaml" = {
      apiVersion = "monitoring.coreos.com/v1"
      kind       = "PodMonitor"
      metadata   = { name = "patroni", namespace = var.namespace, labels = local.common_labels }
      spec = {
        namespaceSelector = { matchNames = [var.namespaces.postgres] }
        selector          = { matchLabels = local.postgres_pod_labels.database }
        podMetricsEndpoints = [{
          port      = "postgres"
          path      = "/metrics"
          scheme    = "https"
          tlsConfig = { insecureSkipVerify = true }
          interval  = "30s"
          relabelings = [
            { action = "replace", sourceLabels = ["__meta_kubernetes_pod_ip"], regex = "(.+)", replacement = "$1:${var.patroni_port}", targetLabel = "__address__" },
            { action = "replace", targetLabel = "job", replacement = "patroni" },
          ]
        }]
      }
    }
    }, {
    # The exporter sidecars (terraform/modules/postgres/monitoring.tf): same shape, own pods and port.
    for name, m in {
      "postgres-exporter"  = { pods = local.postgres_pod_labels.database, port = "pg-exporter" }
      "pgbouncer-exporter" = { pods = local.postgres_pod_labels.pgbouncer, port = "pgb-exporter" }
      } : "podmonitor-${name}.yaml" => {
      apiVersion = "monitoring.coreos.com/v1"
      kind       = "PodMonitor"
      metadata   = { name = name, namespace = var.namespace, labels = local.common_labels }
      spec = {
        namespaceSelector = { matchNames = [var.namespaces.postgres] }
        selector          = { matchLabels = m.pods }
        podMetricsEndpoints = [{
          port        = m.port
          path        = "/metrics"
          interval    = "30s"
          relabelings = [{ action = "replace", targetLabel = "job", replacement = name }]
        }]
      }
    }
  })

  logging = { for name, obj in {
    "helmchart-loki.yaml" = {
      apiVersion = "helm.cattle.io/v1"
      kind       = "HelmChart"
      metadata   = { name = "loki", namespace = "kube-system", labels = local.common_labels }
      spec = {
        # The open-source chart moved to grafana-community in 2026 (grafana.github.io now serves the
        # Enterprise Logs chart under the same name).
        repo            = "https://grafana-community.github.io/helm-charts"
        chart           = "loki"
        version         = var.chart_versions.loki
        targetNamespace = var.namespace
        valuesContent = yamlencode({
          # one pod, filesystem storage: the chart refuses more than one replica without object storage
          deploymentMode = "Monolithic"
          loki = {
            auth_enabled  = false
            commonConfig  = { replication_factor = 1 }
            storage       = { type = "filesystem" }
            schemaConfig  = { configs = [{ from = "2024-01-01", store = "tsdb", object_store = "filesystem", schema = "v13", index = { prefix = "index_", period = "24h" } }] }
            limits_config = { retention_period = "168h" }
            compactor     = { retention_enabled = true, delete_request_store = "filesystem" }
          }
          singleBinary = {
            replicas    = 1
            persistence = { enabled = true, storageClass = var.storage_class, size = "50Gi" }
          }
          read         = { replicas = 0 }
          write        = { replicas = 0 }
          backend      = { replicas = 0 }
          chunksCache  = { enabled = false }
          resultsCache = { enabled = false }
          gateway      = { enabled = false }
          test         = { enabled = false }
          lokiCanary   = { enabled = false }
        })
      }
    }
    "helmchart-fluent-bit.yaml" = {
      apiVersion = "helm.cattle.io/v1"
      kind       = "HelmChart"
      metadata   = { name = "fluent-bit", namespace = "kube-system", labels = local.common_labels }
      spec = {
        repo            = "https://fluent.github.io/helm-charts"
        chart           = "fluent-bit"
        version         = var.chart_versions.fluent_bit
        targetNamespace = var.namespace
        valuesContent = yamlencode({
          tolerations    = local.tolerate_all
          serviceMonitor = { enabled = true }
          config = {
            outputs = join("\n", [
              "[OUTPUT]",
              "    Name        loki",
              "    Match       kube.*",
              "    Host        loki.${var.namespace}.svc",
              "    Port        3100",
              "    Labels      job=fluent-bit",
              "    Label_keys  $kubernetes['namespace_name'],$kubernetes['pod_name'],$kubernetes['container_name']",
              "    Remove_keys kubernetes,stream",
              "    Line_format json",
            ])
          }
        })
      }
    }
    "grafana-datasource-loki.yaml" = {
      apiVersion = "v1"
      kind       = "ConfigMap"
      metadata = {
        name      = "ffe-datasource-loki"
        namespace = var.namespace
        labels    = merge(local.common_labels, { grafana_datasource = "1" })
      }
      data = {
        "loki.yaml" = yamlencode({
          apiVersion  = 1
          datasources = [{ name = "Loki", type = "loki", uid = "loki", access = "proxy", url = "http://loki.${var.namespace}.svc:3100" }]
        })
      }
    }
  } : name => obj if var.logging_enabled }

  tracing = { for name, obj in {
    "helmchart-opentelemetry-collector.yaml" = {
      apiVersion = "helm.cattle.io/v1"
      kind       = "HelmChart"
      metadata   = { name = "opentelemetry-collector", namespace = "kube-system", labels = local.common_labels }
      spec = {
        repo            = "https://open-telemetry.github.io/opentelemetry-helm-charts"
        chart           = "opentelemetry-collector"
        version         = var.chart_versions.opentelemetry_collector
        targetNamespace = var.namespace
        valuesContent = yamlencode({
          mode           = "deployment"
          replicaCount   = 2
          image          = { repository = "otel/opentelemetry-collector-k8s" }
          serviceMonitor = { enabled = true }
          # traces over OTLP only: the chart's Jaeger/Zipkin ports stay closed
          ports = {
            metrics          = { enabled = true }
            "jaeger-compact" = { enabled = false }
            "jaeger-thrift"  = { enabled = false }
            "jaeger-grpc"    = { enabled = false }
            zipkin           = { enabled = false }
          }
          config = {
            # The chart's default config also runs logs and metrics pipelines and the Jaeger, Zipkin
            # and Prometheus receivers; Helm merges maps, so each is removed with null here.
            # otlp = {}: kept with the chart's defaults (gRPC 4317, HTTP 4318 on the pod IP).
            receivers = { otlp = {}, jaeger = null, zipkin = null, prometheus = null }
            exporters = {
              for name, cfg in {
                debug = { verbosity = "basic" }
                otlp  = { endpoint = coalesce(var.tracing_otlp_endpoint, "unset:4317"), tls = { insecure = true } }
              } : name => cfg if(name == "otlp") == (var.tracing_otlp_endpoint != null)
            }
            service = {
              pipelines = {
                logs    = null
                metrics = null
                traces = {
                  receivers  = ["otlp"]
                  processors = ["memory_limiter", "batch"]
                  exporters  = [var.tracing_otlp_endpoint == null ? "debug" : "otlp"]
                }
              }
            }
          }
        })
      }
    }
  } : name => obj if var.tracing_enabled }

  objects = merge(
    { for name, obj in { "namespace.yaml" = local.namespace_manifest } : name => obj if var.create_namespace },
    { "helmchart-kube-prometheus-stack.yaml" = local.helm_chart },
    local.prometheus_rules,
    local.dashboards,
    local.monitors,
  )
  # Optional add-ons: a bundle of their own, applied after this one, so the ServiceMonitor CRD
  # exists when they install (fluent-bit renders its ServiceMonitor only when the API exists).
  addon_objects = merge(local.logging, local.tracing)
}

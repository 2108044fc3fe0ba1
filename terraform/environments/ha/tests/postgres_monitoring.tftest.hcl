# The Postgres layer and its monitoring are written by two modules (modules/postgres renders the
# exporter sidecars, modules/monitoring the PodMonitors and alert rules that read them): what one
# names, the other must find. Run from the environment directory:
#   terraform test -var-file=terraform.tfvars.example -filter=tests/postgres_monitoring.tftest.hcl

run "monitors_find_the_exporter_sidecars" {
  command = plan

  # The example with its warnings silenced (as in example.tftest.hcl); postgres_primary_ip is set.
  variables {
    kubernetes_version   = "v1.36"
    vault_version        = "1.21"
    ssh_known_hosts_file = "tests/fixtures/known_hosts"
    nfs_server           = "10.0.5.10"
    nfs_export           = "/export/ffe-backups"
    monitoring_alertmanager_config = {
      route     = { receiver = "ops" }
      receivers = [{ name = "ops", webhook_configs = [{ url = "http://alert-relay.monitoring.svc:8080/hook" }] }]
    }
  }

  # postgres_exporter: the PodMonitor's port is a port of every instance pod's sidecars.
  assert {
    condition = contains(
      flatten([for c in module.postgres[0].cluster.spec.instances[0].sidecars : [for p in c.ports : p.name]]),
      yamldecode(ffe_manifests.monitoring[0].manifests["podmonitor-postgres-exporter.yaml"]).spec.podMetricsEndpoints[0].port,
    )
    error_message = "podmonitor-postgres-exporter selects a port no instance sidecar declares"
  }
  # pgbouncer_exporter: the same for the PgBouncer pods.
  assert {
    condition = contains(
      flatten([for c in module.postgres[0].cluster.spec.proxy.pgBouncer.sidecars : [for p in c.ports : p.name]]),
      yamldecode(ffe_manifests.monitoring[0].manifests["podmonitor-pgbouncer-exporter.yaml"]).spec.podMetricsEndpoints[0].port,
    )
    error_message = "podmonitor-pgbouncer-exporter selects a port no PgBouncer sidecar declares"
  }
  # PgBouncer admits the exporter's user to its admin console only when it is a stats user.
  assert {
    condition = strcontains(
      one([for e in module.postgres[0].cluster.spec.proxy.pgBouncer.sidecars[0].env : e.value if e.name == "PGBOUNCER_EXPORTER_CONNECTION_STRING"]),
      "//${module.postgres[0].cluster.spec.proxy.pgBouncer.config.global.stats_users}@",
    )
    error_message = "the pgbouncer_exporter logs in as a user that is not PgBouncer's stats_users"
  }
  # The Patroni monitor scrapes the port the cluster runs Patroni on (the operator's default: the
  # cluster sets no spec.patroni.port).
  assert {
    condition     = !can(module.postgres[0].cluster.spec.patroni.port) && strcontains(ffe_manifests.monitoring[0].manifests["podmonitor-patroni.yaml"], "$1:8008")
    error_message = "Patroni's port and the Patroni PodMonitor's address disagree"
  }
  # The Postgres rules are deployed, and the backup-age limits follow ha-settings.yaml
  # (weekly full + daily differential, 6 h margin: 174 h and 30 h).
  assert {
    condition = alltrue([
      contains(keys(ffe_manifests.monitoring[0].manifests), "prometheusrule-postgres.yaml"),
      strcontains(ffe_manifests.monitoring[0].manifests["prometheusrule-expected.yaml"], "vector(626400)"),
      strcontains(ffe_manifests.monitoring[0].manifests["prometheusrule-expected.yaml"], "vector(108000)"),
    ])
    error_message = "Postgres rules or backup-age records missing: ${ffe_manifests.monitoring[0].manifests["prometheusrule-expected.yaml"]}"
  }
}

# Metrics of the Postgres layer (issue 13 item 3). terraform/modules/monitoring scrapes three sources
# with PodMonitors in this namespace (docs/monitoring.md, "Postgres metrics"):
#   - Patroni's REST API /metrics (port 8008, TLS) in every database pod: role, liveness, streaming;
#   - postgres_exporter, a sidecar of every database pod (port name pg-exporter, 9187): replication
#     lag, connections, transaction rate, WAL archiving (pg_stat_archiver);
#   - pgbouncer_exporter, a sidecar of every PgBouncer pod (port name pgb-exporter, 9127).
# The port names are the monitoring module's PodMonitor ports: change them together.
#
# Sidecars are PerconaPGCluster spec.instances[].sidecars and spec.proxy.pgBouncer.sidecars
# (pg-operator 3.0.0: pkg/apis/pgv2.percona.com/v2/perconapgcluster_types.go:979,1180). The operator adds
# them only with its InstanceSidecars / PGBouncerSidecars feature gates, which v3.0.0 turns on by
# default (cmd/postgres-operator/main.go:89-91). It mounts its /tmp emptyDir into every container of
# an instance pod, sidecars included (internal/controller/postgrescluster/util.go:182-207), so no
# volume is declared here; a second /tmp mount would make the pod invalid.
#
# Neither exporter has a readiness or liveness probe: a failing exporter must not take a database or
# PgBouncer pod out of its Service. A dead exporter shows as up == 0 / pg_up == 0 and alerts instead.

locals {
  # Images: exact tags whose env/flags are vendored in upstream/images/<name>/<tag>/ (checked by
  # make test-manifests). quay.io is where the projects publish their release images.
  postgres_exporter_image  = "quay.io/prometheuscommunity/postgres-exporter:v0.20.1"
  pgbouncer_exporter_image = "quay.io/prometheuscommunity/pgbouncer-exporter:v0.12.1"

  # Pod Security "restricted": no privilege, no capabilities, read-only image (neither exporter writes
  # files: postgres_exporter only warns that postgres_exporter.yml is missing).
  exporter_security_context = {
    runAsNonRoot             = true
    allowPrivilegeEscalation = false
    privileged               = false
    readOnlyRootFilesystem   = true
    capabilities             = { drop = ["ALL"] }
    seccompProfile           = { type = "RuntimeDefault" }
  }
  exporter_resources = {
    requests = { cpu = "10m", memory = "32Mi" }
    limits   = { cpu = "200m", memory = "128Mi" }
  }

  # postgres_exporter authenticates as `postgres` over the instance's Unix socket with peer
  # authentication, so no password exists for it anywhere:
  #   - the operator always writes `local all "postgres" peer` as a mandatory pg_hba rule
  #     (internal/postgres/hba.go:18-20; tlsOnly only rewrites host rules, hba.go:185-191);
  #   - the socket is in /tmp/postgres (internal/postgres/config.go:75-76), on the pod's shared /tmp;
  #   - peer auth maps the client's uid to a name in the database container, which runs as uid 26
  #     = postgres (the image's `USER 26`, percona/percona-docker
  #     percona-distribution-postgresql-17/Dockerfile at 03c45803a114; the operator runs its own
  #     extension containers as uid 26 to match, percona/extensions/containers.go:125-130), so the
  #     exporter runs as uid/gid 26 too.
  # Superuser, but only reachable from inside the pod, and the exporter's queries only read catalog
  # and statistics views. A `monitor` role is not used: Percona reserves that name for PMM
  # (perconapgcluster_types.go:444-448) and users[].options cannot grant pg_monitor.
  # Port: the socket file is named after it (.s.PGSQL.<port>).
  postgres_exporter_dsn = "host=/tmp/postgres port=${local.port} user=postgres dbname=postgres sslmode=disable"

  instance_sidecars = [{
    name  = "postgres-exporter"
    image = local.postgres_exporter_image
    args = [
      "--web.listen-address=:9187",
      # Per-table statistics of the `postgres` database only (the exporter's connection): noise.
      "--no-collector.stat_user_tables",
      "--no-collector.statio_user_tables",
    ]
    env             = [{ name = "DATA_SOURCE_NAME", value = local.postgres_exporter_dsn }]
    ports           = [{ name = "pg-exporter", containerPort = 9187, protocol = "TCP" }]
    securityContext = merge(local.exporter_security_context, { runAsUser = 26, runAsGroup = 26 })
    resources       = local.exporter_resources
  }]

  # pgbouncer_exporter reads PgBouncer's admin console (database "pgbouncer": SHOW STATS/POOLS/...).
  # PgBouncer has no Unix socket here (the operator sets unix_socket_dir = "",
  # internal/pgbouncer/config.go:190) and requires TLS from clients (client_tls_sslmode=require), so
  # the exporter connects over TCP to localhost with sslmode=require as the operator's own
  # `_crunchypgbouncer` user (internal/pgbouncer/postgres.go:26), the only user in PgBouncer's
  # auth_file (config.go:68-80). Its password is key pgbouncer-password of Secret <cluster>-pgbouncer
  # (config.go:34, internal/naming/names.go:218), passed as PGPASSWORD, which lib/pq reads.
  # PgBouncer lets that user in only when it is listed in stats_users: main.tf sets
  # proxy.pgBouncer.config.global.stats_users (local.pgbouncer_stats_users).
  pgbouncer_stats_users = "_crunchypgbouncer"

  pgbouncer_sidecars = [{
    name  = "pgbouncer-exporter"
    image = local.pgbouncer_exporter_image
    args  = ["--web.listen-address=:9127"]
    env = [
      { name = "PGBOUNCER_EXPORTER_CONNECTION_STRING", value = "postgres://${local.pgbouncer_stats_users}@localhost:${local.port}/pgbouncer?sslmode=require" },
      { name = "PGPASSWORD", valueFrom = { secretKeyRef = { name = "${local.cluster}-pgbouncer", key = "pgbouncer-password" } } },
    ]
    ports = [{ name = "pgb-exporter", containerPort = 9127, protocol = "TCP" }]
    # The image's own user (nobody): nothing here depends on the uid.
    securityContext = merge(local.exporter_security_context, { runAsUser = 65534, runAsGroup = 65534 })
    resources       = local.exporter_resources
  }]

  # No extra objects: both exporters are configured by flags and env alone.
  monitoring_manifests = {}
}

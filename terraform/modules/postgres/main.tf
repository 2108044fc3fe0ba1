# The Postgres HA layer: the Percona Operator for PostgreSQL (chart pg-operator, a k3s HelmChart in
# var.namespace; it watches only its release namespace) and one PerconaPGCluster `ffe-pg`:
#   - one instance set `db` of replicas + 1 pods, never two on one node (required anti-affinity),
#     data on the node-local Retain class; Patroni timings from ha-settings.yaml;
#   - synchronous replication to one standby (Patroni synchronous_mode, not strict) unless
#     synchronous_replication = false;
#   - PgBouncer (2 pods on different nodes, transaction pooling) and the operator's TLS (always on:
#     clients over hostssl + SCRAM, replication with client certificates);
#   - the Patroni leader Service `ffe-pg-ha` as a kube-vip LoadBalancer on primary_ip: Patroni
#     writes its Endpoints, so the address follows the primary;
#   - pgBackRest repo1 on the NFS backup class (continuous WAL archiving, weekly full + daily
#     differential, time-based retention) and a daily pg_dump CronJob to the same share;
#   - a weekly restore-check CronJob: the newest backup + WAL restored into a throw-away instance.
# The operator's CRDs are a separate output (crd_manifests): the environment writes them as their own
# bundle, waits until they are Established, and only then writes `manifests` (environments/ha/postgres.tf).

locals {
  # Percona's CRDs as vendored (the chart's crds/crd.yaml at the pinned version, unchanged), re-encoded
  # as compact JSON (a YAML subset; 1.5 MB of YAML -> 0.55 MB): the provider's plan messages carry a
  # bundle up to three times and gRPC stops at 4 MiB. Terraform's yamldecode takes one document.
  crd_file = file("${path.module}/../../../upstream/crds/percona-pg-operator/v${var.operator_crd_version}/crd.yaml")
  crd_docs = [for d in split("\n---\n", local.crd_file) : yamldecode(d) if trimspace(d) != ""]

  # The one source of Patroni timings and pgBackRest settings (the lab test reads it too).
  settings = yamldecode(file("${path.module}/ha-settings.yaml"))
  patroni  = local.settings.patroni

  cluster      = "ffe-pg"
  instance_set = "db"
  user         = "ffe-user" # users[].name must match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$: no underscore at 3.0.0
  database     = "ffe"
  port         = 5432

  labels = { "app.kubernetes.io/part-of" = "ffe-ha", "app.kubernetes.io/component" = "postgres" }

  # Pod labels the operator sets (internal/controller/postgrescluster/instance.go, pgbouncer.go).
  label_cluster = "postgres-operator.crunchydata.com/cluster"
  label_set     = "postgres-operator.crunchydata.com/instance-set"
  label_role    = "postgres-operator.crunchydata.com/role"

  # Object names the operator derives from the cluster name (internal/naming/names.go).
  user_secret      = "${local.cluster}-pguser-${local.user}"
  cluster_cert     = "${local.cluster}-cluster-cert" # server certificate; key ca.crt = the cluster CA
  primary_service  = "${local.cluster}-primary"      # headless, points at ffe-pg-ha's ClusterIP
  replica_service  = "${local.cluster}-replicas"
  pgbouncer_svc    = "${local.cluster}-pgbouncer"
  repo_claim       = "${local.cluster}-repo1" # <cluster>-<repoName> (names.go)
  namespace_suffix = "${var.namespace}.svc"

  # Patroni's dynamic configuration: ttl/loop_wait come from the two CR fields (the operator writes
  # them over dynamicConfiguration); the rest passes through to the DCS unchanged.
  dynamic_configuration = {
    retry_timeout           = local.patroni.retry_timeout
    maximum_lag_on_failover = local.patroni.maximum_lag_on_failover
    synchronous_mode        = var.synchronous_replication && local.patroni.synchronous_mode
    synchronous_node_count  = local.patroni.synchronous_node_count
    synchronous_mode_strict = local.patroni.synchronous_mode_strict
    failsafe_mode           = local.patroni.failsafe_mode
    postgresql              = { parameters = local.settings.postgresql_parameters }
  }

  # pgBackRest [global] options: every repoN-* key of ha-settings.yaml, plus the retention in days.
  # repo1-retention-full-type: time + repo1-retention-full: N keeps the full backups needed to
  # restore to any point of the last N days (and the WAL and differentials that go with them).
  pgbackrest_global = merge(
    { for k, v in local.settings.pgbackrest : k => tostring(v) if can(regex("^repo[0-9]+-", k)) },
    { "repo1-retention-full" = tostring(var.backup_retention_days) },
  )

  anti_affinity = {
    podAntiAffinity = {
      requiredDuringSchedulingIgnoredDuringExecution = [{
        topologyKey   = "kubernetes.io/hostname"
        labelSelector = { matchLabels = { (local.label_cluster) = local.cluster, (local.label_set) = local.instance_set } }
      }]
    }
  }

  pgbouncer_anti_affinity = {
    podAntiAffinity = {
      requiredDuringSchedulingIgnoredDuringExecution = [{
        topologyKey   = "kubernetes.io/hostname"
        labelSelector = { matchLabels = { (local.label_cluster) = local.cluster, (local.label_role) = "pgbouncer" } }
      }]
    }
  }

  operator_chart = {
    apiVersion = "helm.cattle.io/v1"
    kind       = "HelmChart"
    metadata   = { name = "pg-operator", namespace = "kube-system", labels = local.labels }
    spec = {
      chart           = "pg-operator"
      repo            = var.operator_chart_repo
      version         = var.operator_chart_version
      targetNamespace = var.namespace
      createNamespace = false # modules/namespaces owns it (PSA, network policies)
      # The chart's crds/ are applied by Helm on first install only, and skipped when present: the
      # `crds` bundle delivers (and upgrades) them before this HelmChart is written.
      valuesContent = yamlencode({
        # On-prem: the operator must not report to Percona's telemetry endpoint.
        disableTelemetry = true
        # The image is pinned (chart appVersion); restarts must not depend on the registry.
        imagePullPolicy = "IfNotPresent"
      })
    }
  }

  cluster_cr = {
    apiVersion = "pgv2.percona.com/v2"
    kind       = "PerconaPGCluster"
    metadata   = { name = local.cluster, namespace = var.namespace, labels = local.labels }
    spec = {
      crVersion       = var.operator_crd_version
      postgresVersion = tonumber(var.postgres_version)
      image           = var.images.postgres
      imagePullPolicy = "IfNotPresent"
      port            = local.port
      # Every pg_hba rule is hostssl: no client or replica connects without TLS.
      tlsOnly = true

      instances = [merge({
        name                = local.instance_set
        replicas            = var.replicas + 1
        affinity            = local.anti_affinity
        dataVolumeClaimSpec = { storageClassName = var.data_storage_class, accessModes = ["ReadWriteOnce"], resources = { requests = { storage = var.data_size } } }
      }, length(local.instance_sidecars) == 0 ? {} : { sidecars = local.instance_sidecars })]

      patroni = {
        leaderLeaseDurationSeconds = local.patroni.ttl
        syncPeriodSeconds          = local.patroni.loop_wait
        dynamicConfiguration       = local.dynamic_configuration
      }

      # ffe-pg-ha (the Patroni leader Service: no selector, Patroni keeps its Endpoints on the
      # primary) becomes a LoadBalancer on primary_ip, announced by kube-vip.
      expose         = { type = "LoadBalancer", annotations = { (var.loadbalancer_annotation) = var.primary_ip } }
      exposeReplicas = { type = "ClusterIP" }

      proxy = {
        pgBouncer = merge({
          replicas = 2
          image    = var.images.pgbouncer
          port     = local.port
          affinity = local.pgbouncer_anti_affinity
          expose   = { type = "ClusterIP" }
          # ha-settings.yaml's pgbouncer section: pool_mode (the operator leaves it unset, and
          # PgBouncer's default is session) and the TCP settings that make it let go of a dead
          # primary. stats_users: the pgbouncer_exporter sidecar's login to the admin console
          # (monitoring.tf).
          config = { global = merge({ for k, v in local.settings.pgbouncer : k => tostring(v) }, { stats_users = local.pgbouncer_stats_users }) }
        }, length(local.pgbouncer_sidecars) == 0 ? {} : { sidecars = local.pgbouncer_sidecars })
      }

      # The app's role and database. The operator generates the password into Secret
      # ffe-pg-pguser-ffe-user (AlphaNumeric: the app builds its URL from it without escaping).
      users = [{ name = local.user, databases = [local.database], password = { type = "AlphaNumeric" } }]

      backups = {
        pgbackrest = {
          image  = var.images.pgbackrest
          global = local.pgbackrest_global
          repos = [{
            name      = "repo1"
            schedules = { full = local.settings.pgbackrest.schedules.full, differential = local.settings.pgbackrest.schedules.differential }
            volume = {
              volumeClaimSpec = {
                storageClassName = var.backup_storage_class
                accessModes      = ["ReadWriteMany"] # the class's PVs (hostpath mode) offer RWX only
                resources        = { requests = { storage = var.repo_size } }
              }
            }
          }]
        }
      }
    }
  }

  # hostpath mode: the backup class has no provisioner, so the repository claim needs a PV bound to
  # it in advance, on the NFS share every node mounts (as modules/storage does for its claims).
  repo_dir = var.backup_storage_mode == "hostpath" ? "k8s/postgres-pgbackrest" : "k8s/${var.namespace}-${local.repo_claim}"
  repo_volume = {
    apiVersion = "v1"
    kind       = "PersistentVolume"
    metadata   = { name = "backup-postgres-pgbackrest", labels = merge(local.labels, { "ffe-ha/backup-volume" = "postgres-pgbackrest" }) }
    spec = {
      capacity                      = { storage = var.repo_size }
      accessModes                   = ["ReadWriteMany"]
      persistentVolumeReclaimPolicy = "Retain"
      storageClassName              = var.backup_storage_class
      claimRef                      = { namespace = var.namespace, name = local.repo_claim }
      hostPath                      = { path = "${trimsuffix(var.backup_mount, "/")}/${local.repo_dir}", type = "DirectoryOrCreate" }
    }
  }

  dump_claim = {
    apiVersion = "v1"
    kind       = "PersistentVolumeClaim"
    metadata   = { name = var.dump_claim.name, namespace = var.namespace, labels = local.labels }
    spec = {
      storageClassName = var.backup_storage_class
      accessModes      = ["ReadWriteMany"]
      resources        = { requests = { storage = var.dump_claim.size } }
    }
  }

  # checkov skips shared by the three CronJobs, each with its reason (read by checkov from the
  # manifest; docs/security.md).
  checkov_pinning = {
    "checkov.io/skip1" = "CKV_K8S_15=IfNotPresent on purpose: a backup, restore check or credentials copy must run while the registry is unreachable"
    "checkov.io/skip2" = "CKV_K8S_43=pinned by tag in environments/ha/pins.tf; no digest could be read on the build machine"
  }

  # Daily logical dump of database ffe, as the app's own role (it owns the app's objects; no
  # superuser password is handed to a CronJob), straight to the primary (not PgBouncer: pg_dump
  # needs one session for its snapshot), TLS verified against the cluster CA. Written as
  # <name>.partial and renamed when complete, so a failed run never leaves a truncated dump that
  # looks good; dumps older than backup_retention_days are deleted after a successful one.
  dump_script = <<-SH
    set -euo pipefail
    export PATH="/usr/pgsql-${var.postgres_version}/bin:$PATH"
    out="/backups/ffe-$(date -u +%Y%m%dT%H%M%SZ).dump"
    # The role and its password from the mounted Secret: the password is in pg_dump's environment
    # only (libpq reads PGPASSWORD), not in the pod spec's or this shell's exported environment.
    PGUSER="$(cat /etc/ffe-pg-user/user)"
    export PGUSER
    password="$(cat /etc/ffe-pg-user/password)"
    # Schema pgbouncer (the operator's auth_query function, in every database) is owned by
    # postgres and not the app's: a dump with it could not be restored as the app's role.
    PGPASSWORD="$password" pg_dump --format=custom --no-password --exclude-schema=pgbouncer --file="$out.partial"
    mv "$out.partial" "$out"
    echo "pg_dump: wrote $out ($(stat -c %s "$out") bytes)"
    find /backups -maxdepth 1 -type f \( -name 'ffe-*.dump' -o -name 'ffe-*.dump.partial' \) \
      -mmin +${var.backup_retention_days * 1440} -print -delete
  SH

  dump_cronjob = {
    apiVersion = "batch/v1"
    kind       = "CronJob"
    metadata = {
      name      = "${local.cluster}-dump"
      namespace = var.namespace
      labels    = merge(local.labels, { "app.kubernetes.io/name" = "pg-dump" })
      annotations = merge(local.checkov_pinning, {
        "checkov.io/skip3" = "CKV_K8S_40=uid 26 is the Percona image's postgres user; the dumps already on the share belong to it and retention deletes them as that owner"
      })
    }
    spec = {
      schedule                   = var.dump_schedule
      timeZone                   = "Etc/UTC"
      concurrencyPolicy          = "Forbid"
      startingDeadlineSeconds    = 3600
      successfulJobsHistoryLimit = 3
      failedJobsHistoryLimit     = 3
      jobTemplate = {
        metadata = { labels = merge(local.labels, { "app.kubernetes.io/name" = "pg-dump" }) }
        spec = {
          backoffLimit          = 2
          activeDeadlineSeconds = 21600
          template = {
            metadata = { labels = merge(local.labels, { "app.kubernetes.io/name" = "pg-dump" }) }
            spec = {
              restartPolicy                = "Never"
              automountServiceAccountToken = false
              securityContext = {
                runAsNonRoot   = true
                runAsUser      = 26 # postgres in the Percona images
                runAsGroup     = 26
                fsGroup        = 26
                seccompProfile = { type = "RuntimeDefault" }
              }
              containers = [{
                name            = "pg-dump"
                image           = var.images.postgres
                imagePullPolicy = "IfNotPresent"
                command         = ["/bin/bash", "-c", local.dump_script]
                env = [
                  { name = "PGHOST", value = "${local.primary_service}.${local.namespace_suffix}" },
                  { name = "PGPORT", value = tostring(local.port) },
                  { name = "PGDATABASE", value = local.database },
                  { name = "PGSSLMODE", value = "verify-full" },
                  { name = "PGSSLROOTCERT", value = "/etc/ffe-pg-ca/ca.crt" },
                ]
                securityContext = {
                  allowPrivilegeEscalation = false
                  readOnlyRootFilesystem   = true
                  capabilities             = { drop = ["ALL"] }
                }
                resources = { requests = { cpu = "100m", memory = "256Mi" }, limits = { cpu = "2", memory = "1Gi" } }
                volumeMounts = [
                  { name = "backups", mountPath = "/backups" },
                  { name = "credentials", mountPath = "/etc/ffe-pg-user", readOnly = true },
                  { name = "ca", mountPath = "/etc/ffe-pg-ca", readOnly = true },
                  { name = "tmp", mountPath = "/tmp" },
                ]
              }]
              volumes = [
                { name = "backups", persistentVolumeClaim = { claimName = var.dump_claim.name } },
                # The role's name and password as files (0440, group fsGroup 26), not env references.
                { name = "credentials", secret = { secretName = local.user_secret, defaultMode = 288, items = [{ key = "user", path = "user" }, { key = "password", path = "password" }] } },
                # Only the CA of the cluster certificate Secret (its key stays out of the pod).
                { name = "ca", secret = { secretName = local.cluster_cert, items = [{ key = "ca.crt", path = "ca.crt" }] } },
                { name = "tmp", emptyDir = {} },
              ]
            }
          }
        }
      }
    }
  }

  # Weekly restore check (and `ffe-ha backup verify`, which runs a Job from this jobTemplate and reads
  # its `ffe-restore-check ` lines): the newest backup set plus every archived WAL segment after it,
  # restored into the pod's emptyDir and started as a throw-away instance with our own configuration;
  # it prints the pgBackRest info, the replay point and the databases, runs pg_amcheck on every
  # database and stops. Any failure exits non-zero and fails the Job (backoffLimit 0: no retry).
  restore_check_script = <<-SH
    set -euo pipefail
    export PATH="/usr/pgsql-${var.postgres_version}/bin:$PATH"
    for tool in pgbackrest pg_ctl pg_isready psql pg_amcheck; do
      command -v "$tool" >/dev/null || { echo "ffe-restore-check: $tool is not in this image" >&2; exit 1; }
    done
    # Everything is written under /tmp (an emptyDir): the root filesystem and the repository are
    # read-only here, and the restored instance never archives (archive_mode off).
    work=/tmp/restore-check
    mkdir -p "$work/pgbackrest" "$work/run"
    : > "$work/pgbackrest/pgbackrest.conf"
    export PGBACKREST_CONFIG="$work/pgbackrest/pgbackrest.conf" PGBACKREST_STANZA=db \
      PGBACKREST_REPO1_PATH=/pgbackrest/repo1 PGBACKREST_PG1_PATH="$work/data" \
      PGBACKREST_LOCK_PATH="$work/pgbackrest" PGBACKREST_LOG_PATH="$work/pgbackrest" \
      PGBACKREST_LOG_LEVEL_FILE=off PGBACKREST_LOG_LEVEL_CONSOLE=warn
    info=$(pgbackrest info --output=json)
    echo "ffe-restore-check info $(printf '%s' "$info" | tr -d '\n')"
    # The newest backup set, then every archived WAL segment after it; then promoted.
    pgbackrest restore --archive-mode=off
    # Our own configuration: the backup's postgresql.conf names the cluster pods' paths and certificates.
    printf '%s\n' "listen_addresses = ''" "unix_socket_directories = '$work/run'" \
      "hba_file = '$work/pg_hba.conf'" "ident_file = '$work/pg_ident.conf'" \
      "archive_mode = off" "hot_standby = off" > "$work/postgresql.conf"
    echo 'local all all trust' > "$work/pg_hba.conf"
    : > "$work/pg_ident.conf"
    trap 'pg_ctl -D "$work/data" -m immediate stop >/dev/null 2>&1 || true' EXIT
    pg_ctl -D "$work/data" -o "-c config_file=$work/postgresql.conf" -l "$work/postgres.log" -w -t 21000 start \
      || { tail -n 40 "$work/postgres.log"; exit 1; }
    export PGHOST="$work/run" PGUSER=postgres PGDATABASE=postgres
    # pg_ctl -w returns once recovery has begun: with hot_standby off, connections wait for the promotion.
    until pg_isready -q; do
      pg_ctl -D "$work/data" status >/dev/null || { tail -n 40 "$work/postgres.log"; exit 1; }
      sleep 2
    done
    psql -XAtq -c "SELECT 'ffe-restore-check replayed ' || coalesce(extract(epoch FROM pg_last_xact_replay_timestamp())::bigint::text, 'none')"
    # How far replay got: a gap in the archive ends recovery early (ffe-ha compares with the archive's newest).
    psql -XAtq -c "SELECT 'ffe-restore-check replayed_wal ' || pg_walfile_name(pg_last_wal_replay_lsn())"
    psql -XAtq -c "SELECT 'ffe-restore-check databases ' || string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE datallowconn"
    pg_amcheck --all --install-missing
    echo "ffe-restore-check amcheck ok"
    pg_ctl -D "$work/data" -m fast -w stop
    echo "ffe-restore-check done"
  SH

  restore_check_labels = merge(local.labels, { "app.kubernetes.io/name" = "pg-restore-check" })
  restore_check_cronjob = {
    apiVersion = "batch/v1"
    kind       = "CronJob"
    metadata = {
      name      = "${local.cluster}-restore-check"
      namespace = var.namespace
      labels    = local.restore_check_labels
      annotations = merge(local.checkov_pinning, {
        "checkov.io/skip3" = "CKV_K8S_40=uid 26 is the Percona image's postgres user: owner of the pgBackRest repository files it reads, and PostgreSQL will not start for a uid without a passwd entry"
      })
    }
    spec = {
      schedule                   = local.settings.pgbackrest.restore_check_schedule
      timeZone                   = "Etc/UTC"
      concurrencyPolicy          = "Forbid"
      startingDeadlineSeconds    = 3600
      successfulJobsHistoryLimit = 3
      failedJobsHistoryLimit     = 3
      jobTemplate = {
        metadata = { labels = local.restore_check_labels }
        spec = {
          backoffLimit          = 0 # a failed restore check must fail, not be retried into a pass
          activeDeadlineSeconds = 21600
          template = {
            metadata = { labels = local.restore_check_labels }
            spec = {
              restartPolicy                = "Never"
              automountServiceAccountToken = false
              securityContext = {
                runAsNonRoot   = true
                runAsUser      = 26 # postgres in the Percona images (owner of the repository's files)
                runAsGroup     = 26
                fsGroup        = 26
                seccompProfile = { type = "RuntimeDefault" }
              }
              containers = [{
                name            = "restore-check"
                image           = var.images.postgres # PostgreSQL (/usr/pgsql-<major>/bin) and /usr/bin/pgbackrest
                imagePullPolicy = "IfNotPresent"
                command         = ["/bin/bash", "-c", local.restore_check_script]
                securityContext = {
                  allowPrivilegeEscalation = false
                  readOnlyRootFilesystem   = true
                  capabilities             = { drop = ["ALL"] }
                }
                resources = { requests = { cpu = "250m", memory = "512Mi" }, limits = { cpu = "2", memory = "2Gi" } }
                volumeMounts = [
                  { name = "repo", mountPath = "/pgbackrest/repo1", readOnly = true },
                  { name = "scratch", mountPath = "/tmp" },
                ]
              }]
              volumes = [
                # The repository is read-only to this pod (the claim too: no fsGroup change of its
                # files either), so nothing here can archive into it or alter a backup.
                { name = "repo", persistentVolumeClaim = { claimName = local.repo_claim, readOnly = true } },
                # The restored data directory lives here, on the node's disk: the node needs free
                # space for the whole database.
                { name = "scratch", emptyDir = {} },
              ]
            }
          }
        }
      }
    }
  }

  # ---- credentials for the app ---------------------------------------------------------------
  # The operator writes role ffe-user's password into Secret ffe-data/ffe-pg-pguser-ffe-user; the app
  # runs in another namespace and a pod reads Secrets of its own namespace only. This CronJob runs
  # every 5 minutes (a new or rotated password reaches the app's source within 5 minutes; restart the
  # app after a rotation) and
  #   - copies the cluster CA (ca.crt) into app_namespace (not secret: the app verifies PgBouncer);
  #   - without Vault (app_vault = null): copies the two keys the app needs (user, password) too;
  #   - with Vault: patches them into the app's kv-v2 secret instead (Vault Kubernetes auth, role
  #     app_vault.role, whose policy may only create/patch that one path), so no password Secret
  #     exists in the app's namespace (ADR 0010: Vault replaces the copy).
  # The password never passes through Terraform: the plan only names the Secrets and the path.
  # RBAC: read exactly the source Secrets, patch exactly the copies. The copies are created empty
  # by this bundle, so the job needs no `create` right in the app namespace.
  sync_name = "${local.cluster}-credentials-sync"
  sync_copies = var.app_namespace == null ? [] : concat(
    var.app_vault != null ? [] : [{ name = local.user_secret, from = local.user_secret, keys = tolist(["user", "password"]) }],
    [{ name = var.app_ca_secret, from = local.cluster_cert, keys = tolist(["ca.crt"]) }],
  )
  # Vault target of the credentials (null without Vault); Vault's CA is mounted beside the
  # service-account files.
  sync_vault_ca_dir = "/var/run/secrets/ffe/vault-ca"
  sync_vault = var.app_namespace == null || var.app_vault == null ? null : {
    address   = trimsuffix(var.app_vault.address, "/")
    login     = "/v1/auth/${var.app_vault.auth_mount}/login"
    role      = var.app_vault.role
    data      = "/v1/${var.app_vault.kv_mount}/data/${var.app_vault.secret_path}"
    metadata  = "/v1/${var.app_vault.kv_mount}/metadata/${var.app_vault.secret_path}"
    cli_path  = "${var.app_vault.kv_mount}/${var.app_vault.secret_path}"
    from      = local.user_secret
    keys      = { (var.app_vault.username_key) = "user", (var.app_vault.password_key) = "password" }
    ca_secret = var.app_vault.ca_secret
  }
  sync_script = <<-PY
    import base64, hashlib, json, os, ssl, urllib.error, urllib.request
    sa = "/var/run/secrets/kubernetes.io/serviceaccount"
    token = open(sa + "/token").read().strip()
    ctx = ssl.create_default_context(cafile=sa + "/ca.crt")
    # the API server's address as the kubelet gives it to every pod (in-cluster client convention)
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    api = "https://%s:%s" % ("[%s]" % host if ":" in host else host, os.environ["KUBERNETES_SERVICE_PORT"])
    def call(method, path, body=None, ctype="application/json", base=api, auth=None, context=ctx):
        req = urllib.request.Request(base + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers=dict({"Content-Type": ctype, "Accept": "application/json"}, **(auth if auth is not None else {"Authorization": "Bearer " + token})))
        with urllib.request.urlopen(req, context=context, timeout=30) as r:
            raw = r.read()
            return json.loads(raw) if raw else {}
    def secret(name, keys):
        data = call("GET", "/api/v1/namespaces/${var.namespace}/secrets/" + name).get("data", {})
        missing = [k for k in keys if k not in data]
        if missing:
            raise SystemExit("secret %s has no %s yet (cluster not ready?)" % (name, missing))
        return data
    for copy in json.loads(${jsonencode(jsonencode(local.sync_copies))}):
        data = secret(copy["from"], copy["keys"])
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": copy["name"], "namespace": "${coalesce(var.app_namespace, "-")}"},
                "data": {k: data[k] for k in copy["keys"]}}
        call("PATCH", "/api/v1/namespaces/${coalesce(var.app_namespace, "-")}/secrets/" + copy["name"]
             + "?fieldManager=${local.sync_name}&force=true", body, "application/apply-patch+yaml")
        print("copied %s/%s %s -> %s/%s" % ("${var.namespace}", copy["from"], copy["keys"], "${coalesce(var.app_namespace, "-")}", copy["name"]))
    vault = json.loads(${jsonencode(jsonencode(local.sync_vault))})
    if vault:
        data = secret(vault["from"], list(vault["keys"].values()))
        values = {k: base64.b64decode(data[src]).decode() for k, src in vault["keys"].items()}
        # What this job last wrote, kept in the secret's kv-v2 custom metadata (the job may read
        # metadata, never the data): a digest of path + values and the version it wrote. A write
        # only when either differs, so an unchanged password adds no version every 5 minutes.
        digest = hashlib.sha256(json.dumps([vault["data"], values], sort_keys=True).encode()).hexdigest()
        vctx = ssl.create_default_context(cafile="${local.sync_vault_ca_dir}/ca.crt")
        login = call("POST", vault["login"], {"role": vault["role"], "jwt": token}, base=vault["address"], auth={}, context=vctx)
        auth = {"X-Vault-Token": login["auth"]["client_token"]}
        def v(method, path, body=None, ctype="application/json"):
            return call(method, path, body, ctype, vault["address"], auth, vctx)
        try:
            meta = v("GET", vault["metadata"]).get("data") or {}
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise
            meta = {}
        current = meta.get("current_version") or 0
        newest = (meta.get("versions") or {}).get(str(current)) or {}
        mark = meta.get("custom_metadata") or {}
        if current and (newest.get("deletion_time") or newest.get("destroyed")):
            raise SystemExit("vault %s: its newest version %d is deleted; this job never writes over deleted data. "
                             "Undelete it (vault kv undelete -versions=%d %s) or remove the secret for good "
                             "(vault kv metadata delete %s), then run the job again"
                             % (vault["cli_path"], current, current, vault["cli_path"], vault["cli_path"]))
        if current and mark.get("ffe-credentials-sha256") == digest and mark.get("ffe-credentials-version") == str(current):
            print("unchanged: vault %s version %d holds %s" % (vault["cli_path"], current, sorted(values)))
        else:
            if current:  # merge into the app's secret, keeping its other keys
                out = v("PATCH", vault["data"], {"data": values}, "application/merge-patch+json")
            else:  # first write: create it, but never overwrite one created meanwhile (cas=0)
                out = v("POST", vault["data"], {"options": {"cas": 0}, "data": values})
            written = out["data"]["version"]
            v("PATCH", vault["metadata"], {"custom_metadata": {"ffe-credentials-sha256": digest, "ffe-credentials-version": str(written)}},
              "application/merge-patch+json")
            print("wrote %s/%s %s -> vault %s version %d" % ("${var.namespace}", vault["from"], sorted(values), vault["cli_path"], written))
  PY

  sync_docs = var.app_namespace == null ? [] : [for d in concat(
    [{ apiVersion = "v1", kind = "ServiceAccount", metadata = { name = local.sync_name, namespace = var.namespace, labels = local.labels } }],
    # get of the sources in var.namespace, patch (server-side apply onto the pre-created copies) in
    # app_namespace: the only two calls the script makes
    [for ns, names in { (var.namespace) = distinct(concat([for c in local.sync_copies : c.from], local.sync_vault == null ? [] : [local.sync_vault.from])), (var.app_namespace) = [for c in local.sync_copies : c.name] } : {
      apiVersion                        = "rbac.authorization.k8s.io/v1"
      kind                              = "Role"
      metadata                          = { name = local.sync_name, namespace = ns, labels = local.labels }
      rules                             = [{ apiGroups = [""], resources = ["secrets"], resourceNames = names, verbs = ns == var.namespace ? ["get"] : ["patch"] }]
    }],
    [for ns in [var.namespace, var.app_namespace] : {
      apiVersion = "rbac.authorization.k8s.io/v1"
      kind       = "RoleBinding"
      metadata   = { name = local.sync_name, namespace = ns, labels = local.labels }
      roleRef    = { apiGroup = "rbac.authorization.k8s.io", kind = "Role", name = local.sync_name }
      subjects   = [{ kind = "ServiceAccount", name = local.sync_name, namespace = var.namespace }]
    }],
    # The copies, empty until the job fills them (k3s re-applies only these fields, never `data`).
    [for c in local.sync_copies : { apiVersion = "v1", kind = "Secret", type = "Opaque", metadata = { name = c.name, namespace = var.app_namespace, labels = local.labels } }],
    [{
      apiVersion = "batch/v1"
      kind       = "CronJob"
      metadata = {
        name      = local.sync_name
        namespace = var.namespace
        labels    = local.labels
        annotations = merge(local.checkov_pinning, {
          "checkov.io/skip3" = "CKV_K8S_38=the job's only work is reading and patching the named Secrets through the API with its own token (Roles above)"
        })
      }
      spec = {
        schedule                   = "*/5 * * * *"
        concurrencyPolicy          = "Forbid"
        successfulJobsHistoryLimit = 1
        failedJobsHistoryLimit     = 3
        jobTemplate = {
          spec = {
            backoffLimit          = 1
            activeDeadlineSeconds = 240
            template = {
              metadata = { labels = local.labels }
              spec = {
                serviceAccountName = local.sync_name
                restartPolicy      = "Never"
                # any uid: the job reads only its token and the CA, owns no file
                securityContext = { runAsNonRoot = true, runAsUser = 65532, runAsGroup = 65532, seccompProfile = { type = "RuntimeDefault" } }
                containers = [{
                  name            = "copy"
                  image           = var.images.postgres # python3 is in it (Patroni)
                  imagePullPolicy = "IfNotPresent"
                  command         = ["python3", "-c", local.sync_script]
                  securityContext = { allowPrivilegeEscalation = false, readOnlyRootFilesystem = true, capabilities = { drop = ["ALL"] } }
                  resources       = { requests = { cpu = "10m", memory = "32Mi" }, limits = { cpu = "500m", memory = "128Mi" } }
                  volumeMounts    = local.sync_vault == null ? [] : [{ name = "vault-ca", mountPath = local.sync_vault_ca_dir, readOnly = true }]
                }]
                volumes = local.sync_vault == null ? [] : [{ name = "vault-ca", secret = { secretName = local.sync_vault.ca_secret, items = [{ key = "ca.crt", path = "ca.crt" }] } }]
              }
            }
          }
        }
      }
    }],
  ) : yamlencode(d)]

  extra_files = { for f, doc in local.monitoring_manifests : f => (can(tostring(doc)) ? tostring(doc) : yamlencode(doc)) }
}

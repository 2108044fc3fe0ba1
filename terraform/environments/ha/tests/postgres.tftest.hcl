# The Postgres HA layer (issue 13): bad input fails the plan naming the variable; the planned
# PerconaPGCluster, pg_dump CronJob and outputs carry what the issue asks for; the layer is absent
# with postgres_primary_ip = null; no password reaches the plan.
#
# Run from the environment directory:
#   terraform test -var-file=terraform.tfvars.example -filter=tests/postgres.tftest.hcl

# Quiet every warning (check block) so only what a run names can fail it.
variables {
  kubernetes_version   = "v1.36"
  vault_version        = "1.21"
  postgres_version     = "17"
  ssh_known_hosts_file = "tests/fixtures/known_hosts"
  nfs_server           = "10.0.5.10"
  nfs_export           = "/export/ffe-backups"
  monitoring_alertmanager_config = {
    route     = { receiver = "ops" }
    receivers = [{ name = "ops", webhook_configs = [{ url = "http://alert-relay.monitoring.svc:8080/hook" }] }]
  }
}

# ---- bad input: plan-time errors naming the variable --------------------------------------------

# Operator 3.0.0 has images for 14..18 only; 13 is a valid major number but cannot run.
run "postgres_version_without_operator_images" {
  command = plan
  variables {
    postgres_version = "13"
  }
  expect_failures = [var.postgres_version]
}

run "postgres_version_newer_than_the_operator" {
  command = plan
  variables {
    postgres_version = "19"
  }
  expect_failures = [var.postgres_version]
}

run "backup_retention_days_zero" {
  command = plan
  variables {
    backup_retention_days = 0
  }
  expect_failures = [var.backup_retention_days]
}

run "postgres_replicas_zero" {
  command = plan
  variables {
    postgres_replicas = 0
  }
  expect_failures = [var.postgres_replicas]
}

run "postgres_primary_ip_outside_network_cidr" {
  command = plan
  variables {
    postgres_primary_ip = "10.1.3.10"
  }
  expect_failures = [var.postgres_primary_ip]
}

run "postgres_primary_ip_is_a_worker_ip" {
  command = plan
  variables {
    postgres_primary_ip = "10.0.2.12"
  }
  expect_failures = [var.postgres_primary_ip]
}

# A VIP collision is reported on the VIP declared later in the chain (variables.tf header); its
# message names postgres_primary_ip.
run "postgres_primary_ip_is_the_api_vip" {
  command = plan
  variables {
    postgres_primary_ip = "10.0.1.5"
  }
  expect_failures = [var.api_vip]
}

run "postgres_primary_ip_is_the_ingress_ip" {
  command = plan
  variables {
    postgres_primary_ip = "10.0.2.5"
  }
  expect_failures = [var.ingress_ip]
}

# ---- the rendered cluster ----------------------------------------------------------------------

run "cluster_as_the_issue_asks" {
  command = plan

  variables {
    backup_retention_days = 21
  }

  assert {
    condition     = yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).kind == "PerconaPGCluster" && yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).metadata.name == "ffe-pg" && yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).metadata.namespace == "ffe-data"
    error_message = "PerconaPGCluster ffe-data/ffe-pg expected"
  }
  assert {
    condition     = yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.postgresVersion == 17 && strcontains(yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.image, "percona-distribution-postgresql:17.")
    error_message = "postgres_version 17 must select the PostgreSQL 17 image: ${yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.image}"
  }
  assert {
    condition     = length(yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.instances) == 1 && yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.instances[0].replicas == 3
    error_message = "one instance set of postgres_replicas + 1 = 3 pods"
  }
  assert {
    condition = anytrue([
      for t in yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.instances[0].affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution :
      t.topologyKey == "kubernetes.io/hostname" && t.labelSelector.matchLabels == { "postgres-operator.crunchydata.com/cluster" = "ffe-pg", "postgres-operator.crunchydata.com/instance-set" = "db" }
    ])
    error_message = "instances need REQUIRED anti-affinity by hostname on their own cluster + instance-set labels"
  }
  # The data class must be one the storage bundle creates with reclaimPolicy Retain.
  assert {
    condition = anytrue([
      for d in split("---\n", ffe_manifests.platform["storage"].manifests["storage-classes.yaml"]) :
      try(yamldecode(d).metadata.name == yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.instances[0].dataVolumeClaimSpec.storageClassName && yamldecode(d).reclaimPolicy == "Retain", false)
    ])
    error_message = "the data volumes must use a Retain StorageClass of the storage bundle"
  }
  # Patroni timings come from ha-settings.yaml (the lab reads the same file) and obey Patroni's rules.
  assert {
    condition = (
      yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.patroni.leaderLeaseDurationSeconds == yamldecode(file("../../modules/postgres/ha-settings.yaml")).patroni.ttl &&
      yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.patroni.syncPeriodSeconds == yamldecode(file("../../modules/postgres/ha-settings.yaml")).patroni.loop_wait &&
      yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.patroni.dynamicConfiguration.retry_timeout == yamldecode(file("../../modules/postgres/ha-settings.yaml")).patroni.retry_timeout
    )
    error_message = "Patroni ttl/loop_wait/retry_timeout must be ha-settings.yaml's"
  }
  assert {
    condition = (
      yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.patroni.leaderLeaseDurationSeconds >= 20 &&
      yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.patroni.syncPeriodSeconds + 2 * yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.patroni.dynamicConfiguration.retry_timeout <= yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.patroni.leaderLeaseDurationSeconds
    )
    error_message = "Patroni rewrites ttl < 20 and needs loop_wait + 2 * retry_timeout <= ttl"
  }
  assert {
    condition = (
      yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.patroni.dynamicConfiguration.synchronous_mode == true &&
      yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.patroni.dynamicConfiguration.synchronous_node_count >= 1 &&
      yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.patroni.dynamicConfiguration.synchronous_mode_strict == false &&
      yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.patroni.dynamicConfiguration.failsafe_mode == true
    )
    error_message = "default: synchronous replication to >= 1 standby, not strict (a lost standby is replaced, writes go on)"
  }
  assert {
    condition     = tonumber(trimsuffix(yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.patroni.dynamicConfiguration.postgresql.parameters.archive_timeout, "s")) <= 60
    error_message = "archive_timeout must be <= 60 s"
  }
  # The primary at postgres_primary_ip: the Patroni leader Service as a kube-vip LoadBalancer.
  assert {
    condition     = yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.expose.type == "LoadBalancer" && yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.expose.annotations["kube-vip.io/loadbalancerIPs"] == "10.0.3.10"
    error_message = "spec.expose must be a LoadBalancer pinned to postgres_primary_ip by kube-vip"
  }
  assert {
    condition = (
      yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.proxy.pgBouncer.replicas >= 2 &&
      yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.proxy.pgBouncer.config.global.pool_mode == "transaction" &&
      anytrue([for t in yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.proxy.pgBouncer.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution : t.topologyKey == "kubernetes.io/hostname" && t.labelSelector.matchLabels["postgres-operator.crunchydata.com/role"] == "pgbouncer"])
    )
    error_message = "PgBouncer: >= 2 replicas on different nodes, transaction pooling"
  }
  assert {
    condition     = yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.tlsOnly == true
    error_message = "every pg_hba rule must be hostssl"
  }
  assert {
    condition     = yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.users == [{ name = "ffe-user", databases = ["ffe"], password = { type = "AlphaNumeric" } }]
    error_message = "user ffe-user (underscores are refused by the CRD) owning database ffe, operator-generated password"
  }
  # pgBackRest: repo1 on the NFS backup class, weekly full + daily differential, time retention.
  assert {
    condition = (
      yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.backups.pgbackrest.repos[0].name == "repo1" &&
      yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.backups.pgbackrest.repos[0].volume.volumeClaimSpec.storageClassName == "backup-nfs" &&
      yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.backups.pgbackrest.repos[0].schedules == yamldecode(file("../../modules/postgres/ha-settings.yaml")).pgbackrest.schedules
    )
    error_message = "repo1 on backup-nfs with ha-settings.yaml's backup schedules"
  }
  assert {
    condition     = yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.backups.pgbackrest.global == { "repo1-retention-full-type" = "time", "repo1-retention-full" = "21" }
    error_message = "pgBackRest keeps full backups younger than backup_retention_days = 21: ${jsonencode(yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.backups.pgbackrest.global)}"
  }
  # The daily pg_dump: name contains pg-dump (the alert rules look for it), same retention.
  assert {
    condition     = strcontains(yamldecode(split("---\n", ffe_manifests.postgres[0].manifests["pg-dump.yaml"])[1]).metadata.name, "pg-dump") && yamldecode(split("---\n", ffe_manifests.postgres[0].manifests["pg-dump.yaml"])[1]).kind == "CronJob"
    error_message = "a CronJob named *pg-dump* is expected"
  }
  assert {
    condition     = strcontains(yamldecode(split("---\n", ffe_manifests.postgres[0].manifests["pg-dump.yaml"])[1]).spec.jobTemplate.spec.template.spec.containers[0].command[2], "-mmin +${21 * 1440} ")
    error_message = "pg_dump files older than backup_retention_days (21 days = 30240 minutes) must be deleted"
  }
  # The weekly restore check: ha-settings.yaml's schedule, no retry, the repository read-only, the
  # restore in an emptyDir; its name reaches `ffe-ha backup verify` through ops_inventory.
  assert {
    condition = (
      yamldecode(ffe_manifests.postgres[0].manifests["pg-restore-check.yaml"]).kind == "CronJob" &&
      yamldecode(ffe_manifests.postgres[0].manifests["pg-restore-check.yaml"]).metadata.name == "ffe-pg-restore-check" &&
      yamldecode(ffe_manifests.postgres[0].manifests["pg-restore-check.yaml"]).spec.schedule == yamldecode(file("../../modules/postgres/ha-settings.yaml")).pgbackrest.restore_check_schedule &&
      yamldecode(ffe_manifests.postgres[0].manifests["pg-restore-check.yaml"]).spec.jobTemplate.spec.backoffLimit == 0 &&
      yamldecode(ffe_manifests.postgres[0].manifests["pg-restore-check.yaml"]).spec.jobTemplate.spec.template.spec.volumes == [
        { name = "repo", persistentVolumeClaim = { claimName = "ffe-pg-repo1", readOnly = true } },
        { name = "scratch", emptyDir = {} },
      ] &&
      alltrue([for m in yamldecode(ffe_manifests.postgres[0].manifests["pg-restore-check.yaml"]).spec.jobTemplate.spec.template.spec.containers[0].volumeMounts : m.readOnly if m.name == "repo"]) &&
      startswith(yamldecode(ffe_manifests.postgres[0].manifests["pg-restore-check.yaml"]).spec.jobTemplate.spec.template.spec.containers[0].command[2], "set -euo pipefail\nexport PATH=\"/usr/pgsql-17/bin:$PATH\"\n") &&
      output.ops_inventory.postgres.restore_check_cronjob == "ffe-pg-restore-check"
    )
    error_message = "restore check: CronJob ffe-pg-restore-check on ha-settings.yaml's schedule, backoffLimit 0, repo1 read-only + emptyDir, PostgreSQL 17's binaries, named in ops_inventory"
  }
  # The operator's CRDs: own bundle, waited for until Established.
  assert {
    condition     = contains([for w in ffe_manifests.postgres_crds[0].wait_for : w.name if w.condition == "Established"], "perconapgclusters.pgv2.percona.com")
    error_message = "the PerconaPGCluster CRD must be waited for before the cluster bundle"
  }
  assert {
    condition     = strcontains(ffe_manifests.postgres[0].manifests["pg-operator.yaml"], "disableTelemetry") && yamldecode(yamldecode(ffe_manifests.postgres[0].manifests["pg-operator.yaml"]).spec.valuesContent).disableTelemetry == true && yamldecode(ffe_manifests.postgres[0].manifests["pg-operator.yaml"]).spec.targetNamespace == "ffe-data"
    error_message = "the operator installs into ffe-data with telemetry off"
  }
  # Outputs.
  assert {
    condition     = output.postgres_primary_endpoint == "10.0.3.10:5432" && output.postgres_replica_endpoint == "ffe-pg-replicas.ffe-data.svc:5432" && output.pgbouncer_endpoint == "ffe-pg-pgbouncer.ffe-data.svc:5432"
    error_message = "endpoints: ${jsonencode([output.postgres_primary_endpoint, output.postgres_replica_endpoint, output.pgbouncer_endpoint])}"
  }
}

# More replicas -> more instances (5 workers so the spread check stays quiet).
run "five_replicas_six_instances" {
  command = plan
  variables {
    postgres_replicas = 5
    worker_count      = 5
    worker_ips        = ["10.0.2.10", "10.0.2.11", "10.0.2.12", "10.0.2.13", "10.0.2.14"]
    server_taints     = []
  }
  assert {
    condition     = yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.instances[0].replicas == 6
    error_message = "postgres_replicas = 5 -> 6 instances"
  }
}

run "asynchronous_replication" {
  command = plan
  variables {
    postgres_synchronous_replication = false
  }
  assert {
    condition     = yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.patroni.dynamicConfiguration.synchronous_mode == false
    error_message = "postgres_synchronous_replication = false must switch Patroni synchronous_mode off"
  }
}

# Instances need one node each among the nodes that take application pods (masters are tainted).
run "postgres_spread_counts_schedulable_nodes" {
  command = plan
  variables {
    postgres_replicas = 3
  }
  expect_failures = [check.postgres_spread]
}

run "postgres_spread_counts_untainted_masters" {
  command = plan
  variables {
    postgres_replicas = 5
    server_taints     = []
  }
}

# postgres_primary_ip = null: no Postgres layer at all.
run "layer_off_without_primary_ip" {
  command = plan
  variables {
    postgres_primary_ip = null
    postgres_replicas   = 5 # would warn (postgres_spread) if the layer were on
  }
  assert {
    condition     = length(ffe_manifests.postgres) == 0 && length(ffe_manifests.postgres_crds) == 0
    error_message = "no Postgres bundles without postgres_primary_ip"
  }
  assert {
    condition     = output.postgres_primary_endpoint == null && output.postgres_replica_endpoint == null && output.pgbouncer_endpoint == null
    error_message = "Postgres outputs must be null when the layer is off"
  }
}

# No password anywhere Terraform shows: outputs, the Postgres bundles, the app's HelmChart.
run "no_password_in_plan" {
  command = plan
  variables {
    deploy_app = true
    app_set    = { "image.tag" = "1.4.2" }
  }
  expect_failures = [check.app_dependencies]

  assert {
    condition = alltrue([for o in [output.postgres_primary_endpoint, output.postgres_replica_endpoint, output.pgbouncer_endpoint, jsonencode(output.dns_records)] :
    !can(regex("(?i)password|://[^/@]*:[^@]*@", o))])
    error_message = "an output carries a password or credentials"
  }
  # A value after "password=" is a literal unless it is a shell expansion ($...): scripts read
  # the password from a mounted file into a variable.
  assert {
    condition = alltrue([for f, y in ffe_manifests.postgres[0].manifests :
    !can(regex("(?i)(password|passwd)[\"']?[ \\t]*[:=][ \\t]*[\"']?[^\"'\\s{$]|://[^/@\\s]*:[^@\\s]*@|(?m)^\"(data|stringData)\":", y))])
    error_message = "a Postgres manifest carries a password value or Secret data"
  }
  # With the Vault layer (the example's vault_cluster_ips) the credentials reach the app through
  # Vault: the CronJob may read exactly the two source Secrets in ffe-data and patch only the CA
  # copy in ffe (created empty here); no copy of the password Secret exists.
  assert {
    condition = (
      length([for d in split("---\n", ffe_manifests.postgres[0].manifests["credentials-sync.yaml"]) : d if yamldecode(d).kind == "CronJob"]) == 1 &&
      toset([for d in split("---\n", ffe_manifests.postgres[0].manifests["credentials-sync.yaml"]) : "${yamldecode(d).metadata.namespace}:${join(",", yamldecode(d).rules[0].resourceNames)}:${join(",", yamldecode(d).rules[0].verbs)}" if yamldecode(d).kind == "Role"]) == toset(["ffe-data:ffe-pg-cluster-cert,ffe-pg-pguser-ffe-user:get", "ffe:ffe-db-ca:patch"]) &&
      toset([for d in split("---\n", ffe_manifests.postgres[0].manifests["credentials-sync.yaml"]) : "${yamldecode(d).metadata.namespace}/${yamldecode(d).metadata.name}" if yamldecode(d).kind == "Secret"]) == toset(["ffe/ffe-db-ca"])
    )
    error_message = "the credentials job with Vault: one CronJob, Roles limited to the named Secrets (get in ffe-data, patch of the CA copy in ffe), one empty copy ffe/ffe-db-ca"
  }
  # It logs in to Vault as role ffe-db-credentials (its ServiceAccount only) and may create and
  # patch the app's secret (never read it) and read/patch its metadata, nothing else; Vault's CA is
  # issued into ffe-data for it.
  assert {
    condition = (
      one([for r in ffe_vault_config.this[0].kubernetes_roles : r if r.name == "ffe-db-credentials"]).service_account_names == tolist(["ffe-pg-credentials-sync"]) &&
      one([for r in ffe_vault_config.this[0].kubernetes_roles : r if r.name == "ffe-db-credentials"]).namespaces == tolist(["ffe-data"]) &&
      one([for r in ffe_vault_config.this[0].kubernetes_roles : r if r.name == "ffe-db-credentials"]).policies == tolist(["ffe-db-credentials"]) &&
      length(regexall("path \"secret/data/production/app\" \\{\\s*capabilities = \\[\"create\", \"patch\"\\]", ffe_vault_config.this[0].policies["ffe-db-credentials"])) == 1 &&
      length(regexall("path \"secret/metadata/production/app\" \\{\\s*capabilities = \\[\"read\", \"patch\"\\]", ffe_vault_config.this[0].policies["ffe-db-credentials"])) == 1 &&
      length(regexall("path ", ffe_vault_config.this[0].policies["ffe-db-credentials"])) == 2 &&
      strcontains(ffe_manifests.postgres[0].manifests["credentials-sync.yaml"], "https://vault-active.vault.svc:8200") &&
      one([for d in split("---\n", ffe_manifests.postgres[0].manifests["credentials-sync.yaml"]) : yamldecode(d).spec.jobTemplate.spec.template.spec.volumes[0].secret.secretName if yamldecode(d).kind == "CronJob"]) == "vault-ca" &&
      contains([for d in split("---\n", ffe_manifests.vault[0].manifests["vault-tls.yaml"]) : "${yamldecode(d).metadata.namespace}/${yamldecode(d).spec.secretName}" if yamldecode(d).kind == "Certificate"], "ffe-data/vault-ca")
    )
    error_message = "role ffe-db-credentials: ${jsonencode([for r in ffe_vault_config.this[0].kubernetes_roles : r if r.name == "ffe-db-credentials"])}, policy ${ffe_vault_config.this[0].policies["ffe-db-credentials"]}"
  }
  # The app reads its database credentials from Vault (agent), by path and key names only.
  assert {
    condition = (
      yamldecode(ffe_manifests.app[0].manifests["helmchart.yaml"]).spec.set["database.host"] == "ffe-pg-pgbouncer.ffe-data.svc" &&
      yamldecode(ffe_manifests.app[0].manifests["helmchart.yaml"]).spec.set["vault.enabled"] == "true" &&
      yamldecode(ffe_manifests.app[0].manifests["helmchart.yaml"]).spec.set["vault.secretPath"] == "secret/data/production/app" &&
      yamldecode(ffe_manifests.app[0].manifests["helmchart.yaml"]).spec.set["database.usernameKey"] == "DB_USERNAME" &&
      yamldecode(ffe_manifests.app[0].manifests["helmchart.yaml"]).spec.set["database.passwordKey"] == "DB_PASSWORD" &&
      !contains(keys(yamldecode(ffe_manifests.app[0].manifests["helmchart.yaml"]).spec.set), "secrets.existingSecret") &&
      yamldecode(ffe_manifests.app[0].manifests["helmchart.yaml"]).spec.set["database.caSecret.name"] == "ffe-db-ca" &&
      yamldecode(ffe_manifests.app[0].manifests["helmchart.yaml"]).spec.set["image.tag"] == "1.4.2"
    )
    error_message = "app: ${jsonencode(yamldecode(ffe_manifests.app[0].manifests["helmchart.yaml"]).spec.set)}"
  }
  assert {
    condition     = !can(regex("(?i)://[^/@\\s]*:[^@\\s]*@", jsonencode(yamldecode(ffe_manifests.app[0].manifests["helmchart.yaml"]).spec.set)))
    error_message = "the app HelmChart carries credentials"
  }
}

# Without the Vault layer the credentials job copies the password Secret into the app's namespace
# instead, and the app reads it from there (vault.enabled = false).
run "no_vault_copies_the_password_secret" {
  command = plan
  variables {
    vault_cluster_ips = []
    deploy_app        = true
  }
  expect_failures = [check.app_dependencies]

  assert {
    condition = (
      alltrue([for d in split("---\n", ffe_manifests.postgres[0].manifests["credentials-sync.yaml"]) : alltrue([for r in yamldecode(d).rules : length(r.resourceNames) == 2 && length(setsubtract(r.verbs, ["get", "patch"])) == 0]) if yamldecode(d).kind == "Role"]) &&
      toset([for d in split("---\n", ffe_manifests.postgres[0].manifests["credentials-sync.yaml"]) : "${yamldecode(d).metadata.namespace}/${yamldecode(d).metadata.name}" if yamldecode(d).kind == "Secret"]) == toset(["ffe/ffe-pg-pguser-ffe-user", "ffe/ffe-db-ca"]) &&
      one([for d in split("---\n", ffe_manifests.postgres[0].manifests["credentials-sync.yaml"]) : length(yamldecode(d).spec.jobTemplate.spec.template.spec.volumes) if yamldecode(d).kind == "CronJob"]) == 0
    )
    error_message = "without Vault: Roles limited to two named Secrets and get/patch, empty copies ffe/ffe-pg-pguser-ffe-user and ffe/ffe-db-ca, no Vault CA mounted"
  }
  assert {
    condition = (
      yamldecode(ffe_manifests.app[0].manifests["helmchart.yaml"]).spec.set["secrets.existingSecret"] == "ffe-pg-pguser-ffe-user" &&
      yamldecode(ffe_manifests.app[0].manifests["helmchart.yaml"]).spec.set["database.passwordKey"] == "password" &&
      yamldecode(ffe_manifests.app[0].manifests["helmchart.yaml"]).spec.set["vault.enabled"] == "false"
    )
    error_message = "app: ${jsonencode(yamldecode(ffe_manifests.app[0].manifests["helmchart.yaml"]).spec.set)}"
  }
}

# Without nfs_server the backup class has no provisioner (hostPath PVs on backup_nfs_mount): the
# pgBackRest repository claim ffe-pg-repo1 gets a PV bound to it in advance, on the share.
run "hostpath_backup_mode_prebinds_the_repository" {
  command = plan
  variables {
    nfs_server = null
    nfs_export = null
  }
  expect_failures = [check.backup_storage]
  assert {
    condition = (
      yamldecode(ffe_manifests.postgres[0].manifests["repo-volume.yaml"]).spec.claimRef == { namespace = "ffe-data", name = "ffe-pg-repo1" } &&
      yamldecode(ffe_manifests.postgres[0].manifests["repo-volume.yaml"]).spec.storageClassName == yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.backups.pgbackrest.repos[0].volume.volumeClaimSpec.storageClassName &&
      yamldecode(ffe_manifests.postgres[0].manifests["repo-volume.yaml"]).spec.capacity.storage == yamldecode(ffe_manifests.postgres[0].manifests["cluster.yaml"]).spec.backups.pgbackrest.repos[0].volume.volumeClaimSpec.resources.requests.storage &&
      startswith(yamldecode(ffe_manifests.postgres[0].manifests["repo-volume.yaml"]).spec.hostPath.path, "/mnt/backups/")
    )
    error_message = "hostpath mode: a Retain PV on backup_nfs_mount pre-bound to ffe-data/ffe-pg-repo1 with the claim's class and size"
  }
  # The dump claim is the one modules/storage pre-binds (static_volumes postgres-dumps).
  assert {
    condition     = strcontains(ffe_manifests.platform["storage"].manifests["storage-classes.yaml"], "\"name\": \"${yamldecode(split("---\n", ffe_manifests.postgres[0].manifests["pg-dump.yaml"])[0]).metadata.name}\"\n    \"namespace\": \"ffe-data\"")
    error_message = "the pg_dump claim must be the one the storage bundle pre-binds a PV to"
  }
}

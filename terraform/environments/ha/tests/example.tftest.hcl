# Plans of the example (terraform.tfvars.example, passed with -var-file) and of variations of it,
# asserting the planned values and exactly which warnings (check blocks) fire.
#
# Run from the environment directory:
#   terraform test -var-file=terraform.tfvars.example -filter=tests/example.tftest.hcl

# The example as shipped: the seed's block plus api_vip/ingress_ip. The seed's past-EOL versions
# and the unmanaged NFS mount must each produce a warning (the missing known_hosts file is
# warned about by the provider itself; tests/offline-plan.sh checks that one).
run "example_plans_six_hosts_and_the_cluster" {
  command = plan

  expect_failures = [
    check.kubernetes_version_supported,
    check.vault_version_supported,
    check.backup_storage,
    check.alerts_routed,
  ]

  assert {
    condition     = jsonencode(ffe_host.master[*].name) == jsonencode(["ffe-prod-master-0", "ffe-prod-master-1", "ffe-prod-master-2"])
    error_message = "master names: ${jsonencode(ffe_host.master[*].name)}"
  }
  assert {
    condition     = jsonencode(ffe_host.worker[*].name) == jsonencode(["ffe-prod-worker-0", "ffe-prod-worker-1", "ffe-prod-worker-2"])
    error_message = "worker names: ${jsonencode(ffe_host.worker[*].name)}"
  }
  assert {
    condition     = jsonencode(ffe_host.master[*].address) == jsonencode(["10.0.1.10", "10.0.1.11", "10.0.1.12"])
    error_message = "master addresses: ${jsonencode(ffe_host.master[*].address)}"
  }
  assert {
    condition     = jsonencode(ffe_host.worker[*].address) == jsonencode(["10.0.2.10", "10.0.2.11", "10.0.2.12"])
    error_message = "worker addresses: ${jsonencode(ffe_host.worker[*].address)}"
  }
  assert {
    condition     = alltrue([for h in ffe_host.master : h.role == "server"]) && alltrue([for h in ffe_host.worker : h.role == "agent"])
    error_message = "masters must be role server, workers role agent"
  }
  assert {
    condition     = alltrue([for h in concat(ffe_host.master, ffe_host.worker) : h.backup_mount == "/mnt/backups" && h.nfs_server == null && h.nfs_export == null])
    error_message = "every host mounts /mnt/backups, with no NFS source in the seed"
  }
  assert {
    condition     = jsonencode(ffe_k3s_cluster.this.servers) == jsonencode([{ address = "10.0.1.10", name = "ffe-prod-master-0", ssh_port = null }, { address = "10.0.1.11", name = "ffe-prod-master-1", ssh_port = null }, { address = "10.0.1.12", name = "ffe-prod-master-2", ssh_port = null }])
    error_message = "cluster servers: ${jsonencode(ffe_k3s_cluster.this.servers)}"
  }
  assert {
    condition     = jsonencode(ffe_k3s_cluster.this.agents) == jsonencode([{ address = "10.0.2.10", name = "ffe-prod-worker-0", ssh_port = null }, { address = "10.0.2.11", name = "ffe-prod-worker-1", ssh_port = null }, { address = "10.0.2.12", name = "ffe-prod-worker-2", ssh_port = null }])
    error_message = "cluster agents: ${jsonencode(ffe_k3s_cluster.this.agents)}"
  }
  assert {
    condition     = ffe_k3s_cluster.this.cluster_name == "ffe-prod" && ffe_k3s_cluster.this.kubernetes_version == "v1.29"
    error_message = "the seed's cluster name and version pass through unchanged"
  }
  assert {
    condition     = alltrue([for ip in ["10.0.1.10", "10.0.1.11", "10.0.1.12", "10.0.1.5"] : contains(ffe_k3s_cluster.this.tls_san, ip)])
    error_message = "tls_san must hold every server IP and the VIP: ${jsonencode(ffe_k3s_cluster.this.tls_san)}"
  }
  assert {
    condition     = ffe_k3s_cluster.this.api_vip == "10.0.1.5"
    error_message = "api_vip: ${coalesce(ffe_k3s_cluster.this.api_vip, "null")}"
  }
  assert {
    condition     = ffe_k3s_cluster.this.cluster_cidr == "10.42.0.0/16" && ffe_k3s_cluster.this.service_cidr == "10.43.0.0/16"
    error_message = "pod/service CIDRs: ${ffe_k3s_cluster.this.cluster_cidr} ${ffe_k3s_cluster.this.service_cidr}"
  }
  assert {
    condition     = ffe_k3s_cluster.this.etcd_snapshot_dir == "/mnt/backups/etcd-snapshots" && ffe_k3s_cluster.this.etcd_snapshot_schedule == "0 */6 * * *"
    error_message = "etcd snapshots go to <backup_nfs_mount>/etcd-snapshots every 6 hours"
  }
  assert {
    condition     = ffe_k3s_cluster.this.etcd_snapshot_retention == 120
    error_message = "4 snapshots a day x 30 days = 120, got ${ffe_k3s_cluster.this.etcd_snapshot_retention}"
  }
  assert {
    condition     = ffe_k3s_cluster.this.install_mode == "online" && ffe_k3s_cluster.this.airgap_k3s_binary_path == null
    error_message = "online install without airgap files"
  }
  assert {
    condition     = output.api_endpoint == "https://10.0.1.5:6443"
    error_message = "api_endpoint must use the VIP: ${output.api_endpoint}"
  }
  assert {
    # Absolute (issue 12: a relative path broke every kubectl/helm step run from elsewhere).
    condition     = startswith(output.kubeconfig_path, "/") && endswith(output.kubeconfig_path, "/terraform/environments/ha/kubeconfig-ffe-prod.yaml")
    error_message = "kubeconfig_path: ${output.kubeconfig_path}"
  }
  assert {
    condition     = jsonencode(output.master_ips) == jsonencode(["10.0.1.10", "10.0.1.11", "10.0.1.12"])
    error_message = "output master_ips: ${jsonencode(output.master_ips)}"
  }
  assert {
    condition     = jsonencode(output.worker_ips) == jsonencode(["10.0.2.10", "10.0.2.11", "10.0.2.12"])
    error_message = "output worker_ips: ${jsonencode(output.worker_ips)}"
  }
  # The CLI's inventory: known at plan, every node with its role, SSH as the provider gets it.
  assert {
    condition = jsonencode(output.ops_inventory.nodes) == jsonencode([
      { name = "ffe-prod-master-0", address = "10.0.1.10", role = "server" },
      { name = "ffe-prod-master-1", address = "10.0.1.11", role = "server" },
      { name = "ffe-prod-master-2", address = "10.0.1.12", role = "server" },
      { name = "ffe-prod-worker-0", address = "10.0.2.10", role = "agent" },
      { name = "ffe-prod-worker-1", address = "10.0.2.11", role = "agent" },
      { name = "ffe-prod-worker-2", address = "10.0.2.12", role = "agent" },
    ])
    error_message = "ops_inventory.nodes: ${jsonencode(output.ops_inventory.nodes)}"
  }
  assert {
    condition     = output.ops_inventory.schema == 1 && output.ops_inventory.ssh.user == "root" && output.ops_inventory.ssh.port == 22 && output.ops_inventory.ssh.known_hosts_file == null && output.ops_inventory.backup_mount == "/mnt/backups" && output.ops_inventory.api_vip == "10.0.1.5" && startswith(output.ops_inventory.kubeconfig_path, "/") && output.ops_inventory.network.wireguard_enabled == true && output.ops_inventory.ssh.insecure_ignore_host_keys == false
    error_message = "ops_inventory: ${jsonencode(output.ops_inventory)}"
  }
  # The Patroni port verify reads is the operator's CRD default (spec.patroni.port, vendored v3.0.0).
  assert {
    condition = one([for d in split("\n---\n", module.postgres[0].crd_manifests["crds.yaml"]) : jsondecode(d).spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.patroni.properties.port.default
    if jsondecode(d).spec.names.kind == "PerconaPGCluster"]) == output.ops_inventory.postgres.patroni_port
    error_message = "ops_inventory.postgres.patroni_port is not the PerconaPGCluster CRD's default"
  }
  # What verify reads: the operator's names (v3.0.0), Patroni's lag limit, the Vault CA Secret.
  assert {
    condition     = output.ops_inventory.postgres.namespace == "ffe-data" && output.ops_inventory.postgres.cluster == "ffe-pg" && output.ops_inventory.postgres.instances == 3 && output.ops_inventory.postgres.synchronous && output.ops_inventory.postgres.max_lag_bytes == 1048576 && output.ops_inventory.postgres.patroni_port == 8008 && output.ops_inventory.postgres.primary_endpoint == "10.0.3.10:5432" && output.ops_inventory.postgres.pgbouncer_service == "ffe-pg-pgbouncer"
    error_message = "ops_inventory.postgres: ${jsonencode(output.ops_inventory.postgres)}"
  }
  assert {
    condition     = output.ops_inventory.vault.member_addresses == ["https://10.0.4.10:8200", "https://10.0.4.11:8200", "https://10.0.4.12:8200"] && output.ops_inventory.vault.member_pods == ["vault-0", "vault-1", "vault-2"] && output.ops_inventory.vault.namespace == "vault" && output.ops_inventory.vault.ca_secret == { namespace = "vault", name = "vault-ca", key = "ca.crt" }
    error_message = "ops_inventory.vault: ${jsonencode(output.ops_inventory.vault)}"
  }
  # hostpath mode (no nfs_server): each backup kind in its PV's directory; the alerts' limits.
  assert {
    condition = jsonencode([for b in output.ops_inventory.backups : [b.kind, b.dir, b.files, b.max_age_seconds]]) == jsonencode([
      ["etcd", "etcd-snapshots", "etcd-snapshot-*", 25200],
      ["pgbackrest", "k8s/postgres-pgbackrest", "backup/db/backup.info", 108000],
      ["pg_dump", "k8s/postgres-dumps", "ffe-*.dump", 90000],
      ["vault", "k8s/vault-snapshots", "raft-*.snap", 90000],
    ])
    error_message = "ops_inventory.backups: ${jsonencode(output.ops_inventory.backups)}"
  }
  assert {
    condition     = output.ops_inventory.backups[1].max_full_age_seconds == 626400
    error_message = "pgbackrest: the full backup's limit is PgBackRestFullBackupTooOld's (7 d + 6 h)"
  }
}

# The seed's block alone (our added section removed): plans too, and warns that the API has no VIP.
run "seed_block_alone_plans_and_warns_about_the_missing_vip" {
  command = plan

  variables {
    api_vip    = null
    ingress_ip = null
  }

  expect_failures = [
    check.kubernetes_version_supported,
    check.vault_version_supported,
    check.backup_storage,
    check.api_vip_set,
    check.ingress_ip_set,
    check.alerts_routed,
  ]

  assert {
    condition     = length(ffe_host.master) == 3 && length(ffe_host.worker) == 3 && ffe_k3s_cluster.this.api_vip == null
    error_message = "3 masters, 3 workers, no VIP"
  }
  assert {
    condition     = output.api_endpoint == "https://10.0.1.10:6443"
    error_message = "without a VIP the API endpoint is the first master: ${output.api_endpoint}"
  }
  assert {
    condition     = alltrue([for ip in ["10.0.1.10", "10.0.1.11", "10.0.1.12"] : contains(ffe_k3s_cluster.this.tls_san, ip)]) && !contains(ffe_k3s_cluster.this.tls_san, "10.0.1.5")
    error_message = "tls_san: ${jsonencode(ffe_k3s_cluster.this.tls_san)}"
  }
}

# Supported versions, host keys pinned and NFS configured: no warning at all (any check failing
# would fail this run).
run "supported_settings_plan_without_warnings" {
  command = plan

  variables {
    kubernetes_version   = "v1.36.2+k3s1"
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

  assert {
    condition     = ffe_k3s_cluster.this.kubernetes_version == "v1.36.2+k3s1"
    error_message = "exact k3s release passes through"
  }
  assert {
    condition     = alltrue([for h in concat(ffe_host.master, ffe_host.worker) : h.nfs_server == "10.0.5.10" && h.nfs_export == "/export/ffe-backups"])
    error_message = "every host mounts the NFS export"
  }
  # NFS CSI mode: the driver's subDir k8s/<namespace>-<claim> (modules/storage).
  assert {
    condition     = jsonencode([for b in output.ops_inventory.backups : b.dir]) == jsonencode(["etcd-snapshots", "k8s/ffe-data-ffe-pg-repo1", "k8s/ffe-data-backup-postgres", "k8s/vault-backup-vault"])
    error_message = "ops_inventory.backups: ${jsonencode(output.ops_inventory.backups)}"
  }
}

# A Kubernetes minor newer than the supported list warns too (not only past-EOL ones).
run "untested_newer_kubernetes_warns" {
  command = plan

  variables {
    kubernetes_version   = "v1.40"
    vault_version        = "1.20"
    ssh_known_hosts_file = "tests/fixtures/known_hosts"
    nfs_server           = "nas.example.com"
    nfs_export           = "/export/ffe"
  }

  expect_failures = [check.kubernetes_version_supported, check.alerts_routed]
}

# 14 is past end of life but the pinned operator still has images for it: a warning, not an error
# (13 and older have no images: tests/postgres.tftest.hcl).
run "past_eol_postgres_warns" {
  command = plan

  variables {
    kubernetes_version   = "v1.35"
    vault_version        = "1.21"
    postgres_version     = "14"
    ssh_known_hosts_file = "tests/fixtures/known_hosts"
    nfs_server           = "10.0.5.10"
    nfs_export           = "/export/ffe-backups"
  }

  expect_failures = [check.postgres_version_supported, check.alerts_routed]
}

# worker_count_max lets the lab/bench run 10 agents.
run "ten_workers_with_raised_maximum" {
  command = plan

  expect_failures = [check.alerts_routed] # no Alertmanager receiver in the example

  variables {
    kubernetes_version   = "v1.37"
    vault_version        = "1.21"
    ssh_known_hosts_file = "tests/fixtures/known_hosts"
    nfs_server           = "10.0.5.10"
    nfs_export           = "/export/ffe-backups"
    worker_count_max     = 10
    worker_count         = 10
    worker_ips           = [for i in range(10) : "10.0.2.${10 + i}"]
  }

  assert {
    condition     = length(ffe_host.worker) == 10 && length(ffe_k3s_cluster.this.agents) == 10
    error_message = "10 workers planned"
  }
  assert {
    condition     = ffe_host.worker[9].name == "ffe-prod-worker-9" && ffe_host.worker[9].address == "10.0.2.19"
    error_message = "last worker: ${ffe_host.worker[9].name} ${ffe_host.worker[9].address}"
  }
}

# cluster_size = "single": one master and no workers is valid; Postgres replicas then share nodes.
run "single_master_lab_cluster" {
  command = plan

  variables {
    kubernetes_version   = "v1.36"
    vault_version        = "1.21"
    ssh_known_hosts_file = "tests/fixtures/known_hosts"
    nfs_server           = "10.0.5.10"
    nfs_export           = "/export/ffe-backups"
    environment          = "lab"
    cluster_size         = "single"
    master_count         = 1
    master_ips           = ["10.0.1.10"]
    worker_count         = 0
    worker_ips           = []
    vault_ha_enabled     = false
    vault_cluster_ips    = ["10.0.4.10"]
  }

  expect_failures = [check.postgres_spread, check.alerts_routed]

  assert {
    condition     = length(ffe_host.master) == 1 && length(ffe_host.worker) == 0 && length(ffe_k3s_cluster.this.agents) == 0
    error_message = "one server, no agents"
  }
}

run "airgap_install_passes_the_three_files" {
  command = plan

  expect_failures = [check.alerts_routed] # no Alertmanager receiver in the example

  variables {
    kubernetes_version     = "v1.36.2+k3s1"
    vault_version          = "1.21"
    ssh_known_hosts_file   = "tests/fixtures/known_hosts"
    nfs_server             = "10.0.5.10"
    nfs_export             = "/export/ffe-backups"
    install_mode           = "airgap"
    installer_url          = "https://mirror.example.com/k3s-install.sh"
    airgap_k3s_binary_path = "tests/fixtures/airgap/k3s"
    airgap_images_path     = "tests/fixtures/airgap/k3s-airgap-images-amd64.tar.zst"
    airgap_installer_path  = "tests/fixtures/airgap/install.sh"
  }

  assert {
    condition     = ffe_k3s_cluster.this.install_mode == "airgap" && ffe_k3s_cluster.this.airgap_k3s_binary_path == "tests/fixtures/airgap/k3s" && ffe_k3s_cluster.this.airgap_images_path == "tests/fixtures/airgap/k3s-airgap-images-amd64.tar.zst" && ffe_k3s_cluster.this.airgap_installer_path == "tests/fixtures/airgap/install.sh"
    error_message = "airgap files are passed to the cluster"
  }
  assert {
    condition     = ffe_k3s_cluster.this.installer_url == null || ffe_k3s_cluster.this.installer_url != "https://mirror.example.com/k3s-install.sh"
    error_message = "the online installer URL is not used in airgap mode"
  }
}

# Retention = snapshots per day x backup_retention_days, from the cron schedule; or the override.
run "retention_from_a_range_schedule" {
  command = plan

  expect_failures = [check.alerts_routed] # no Alertmanager receiver in the example

  variables {
    kubernetes_version     = "v1.36"
    vault_version          = "1.21"
    ssh_known_hosts_file   = "tests/fixtures/known_hosts"
    nfs_server             = "10.0.5.10"
    nfs_export             = "/export/ffe-backups"
    etcd_snapshot_schedule = "0,30 0-5 * * *"
    backup_retention_days  = 7
  }

  assert {
    condition     = ffe_k3s_cluster.this.etcd_snapshot_retention == 84
    error_message = "2 per hour x 6 hours x 7 days = 84, got ${ffe_k3s_cluster.this.etcd_snapshot_retention}"
  }
}

run "retention_from_a_daily_schedule" {
  command = plan

  expect_failures = [check.alerts_routed] # no Alertmanager receiver in the example

  variables {
    kubernetes_version     = "v1.36"
    vault_version          = "1.21"
    ssh_known_hosts_file   = "tests/fixtures/known_hosts"
    nfs_server             = "10.0.5.10"
    nfs_export             = "/export/ffe-backups"
    etcd_snapshot_schedule = "15 3 * * *"
  }

  assert {
    condition     = ffe_k3s_cluster.this.etcd_snapshot_retention == 30
    error_message = "1 per day x 30 days = 30, got ${ffe_k3s_cluster.this.etcd_snapshot_retention}"
  }
}

run "retention_override_and_custom_paths" {
  command = plan

  expect_failures = [check.alerts_routed] # no Alertmanager receiver in the example

  variables {
    kubernetes_version      = "v1.36"
    vault_version           = "1.21"
    ssh_known_hosts_file    = "tests/fixtures/known_hosts"
    nfs_server              = "10.0.5.10"
    nfs_export              = "/export/ffe-backups"
    etcd_snapshot_retention = 10
    backup_nfs_mount        = "/srv/backups/"
    kubeconfig_path         = "/tmp/ffe-test-kubeconfig.yaml"
    extra_tls_sans          = ["k8s.ffe.three-rivers-tech.com"]
  }

  assert {
    condition     = ffe_k3s_cluster.this.etcd_snapshot_retention == 10
    error_message = "override wins: got ${ffe_k3s_cluster.this.etcd_snapshot_retention}"
  }
  assert {
    condition     = ffe_k3s_cluster.this.etcd_snapshot_dir == "/srv/backups/etcd-snapshots" && ffe_host.master[0].backup_mount == "/srv/backups"
    error_message = "trailing slash of backup_nfs_mount is dropped: ${ffe_k3s_cluster.this.etcd_snapshot_dir}"
  }
  assert {
    condition     = output.kubeconfig_path == "/tmp/ffe-test-kubeconfig.yaml" && contains(ffe_k3s_cluster.this.tls_san, "k8s.ffe.three-rivers-tech.com")
    error_message = "custom kubeconfig path and extra SAN"
  }
}

run "acme_off_without_domains_warns" {
  command = plan

  variables {
    kubernetes_version   = "v1.36"
    vault_version        = "1.21"
    ssh_known_hosts_file = "tests/fixtures/known_hosts"
    nfs_server           = "10.0.5.10"
    nfs_export           = "/export/ffe-backups"
    acme_enabled         = false
    acme_email           = null
    domain_names         = []
  }

  expect_failures = [check.acme_settings, check.alerts_routed]
}

run "acme_staging_warns" {
  command = plan

  variables {
    kubernetes_version   = "v1.36"
    vault_version        = "1.21"
    ssh_known_hosts_file = "tests/fixtures/known_hosts"
    nfs_server           = "10.0.5.10"
    nfs_export           = "/export/ffe-backups"
    acme_staging         = true
  }

  expect_failures = [check.acme_settings, check.alerts_routed]
}

run "component_version_override" {
  command = plan

  expect_failures = [check.alerts_routed] # no Alertmanager receiver in the example

  variables {
    kubernetes_version   = "v1.36"
    vault_version        = "1.21"
    ssh_known_hosts_file = "tests/fixtures/known_hosts"
    nfs_server           = "10.0.5.10"
    nfs_export           = "/export/ffe-backups"
    component_versions   = { cert_manager = "v1.21.2" }
  }

  assert {
    condition     = local.component_versions.cert_manager == "v1.21.2" && local.component_versions.calico == "v3.32.0"
    error_message = "an override replaces one pin and keeps the others"
  }
}

# Without the Postgres layer (postgres_primary_ip = null) and without Vault (vault_cluster_ips = []),
# the monitoring bundle must carry none of their rules, monitors, dashboards or metrics
# (their absent() alerts would fire forever), and keep the rest (etcd backups included). A
# receiver is set, so no warning fires.
run "monitoring_leaves_out_postgres_and_vault" {
  command = plan

  variables {
    postgres_primary_ip  = null
    vault_cluster_ips    = []
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

  assert {
    condition = length(setintersection(keys(ffe_manifests.monitoring[0].manifests), [
      "prometheusrule-postgres.yaml", "prometheusrule-vault.yaml", "servicemonitor-vault.yaml",
      "podmonitor-patroni.yaml", "podmonitor-postgres-exporter.yaml", "podmonitor-pgbouncer-exporter.yaml", "dashboard-postgres-ha.yaml", "dashboard-vault.yaml",
    ])) == 0
    error_message = "Postgres/Vault files in the monitoring bundle: ${jsonencode(sort(keys(ffe_manifests.monitoring[0].manifests)))}"
  }
  assert {
    condition = alltrue([for name, yaml in ffe_manifests.monitoring[0].manifests : alltrue([
      for word in ["PostgresPrimaryMissing", "PostgresReplicaMissing", "VaultNoActiveMember", "PgBackRest", "PgDump", "VaultSnapshot", "PerconaPGBackup", "patroni", "ffe:postgres_replicas"] :
      !strcontains(yaml, word)
    ])])
    error_message = "a monitoring manifest still mentions a Postgres/Vault alert, monitor or metric"
  }
  assert {
    condition     = strcontains(ffe_manifests.monitoring[0].manifests["prometheusrule-backups.yaml"], "EtcdSnapshotTooOld") && contains(keys(ffe_manifests.monitoring[0].manifests), "prometheusrule-etcd.yaml") && strcontains(ffe_manifests.monitoring[0].manifests["prometheusrule-expected.yaml"], "ffe:etcd_snapshot_max_age_seconds:expected")
    error_message = "the etcd and backup rules of the platform must stay"
  }
  assert {
    condition     = strcontains(ffe_manifests.monitoring[0].manifests["helmchart-kube-prometheus-stack.yaml"], "alert-relay.monitoring.svc")
    error_message = "monitoring_alertmanager_config must reach the chart values"
  }
}

# No Alertmanager receiver: alerts are only visible in the UI, and the plan says so.
run "alerts_without_a_receiver_warn" {
  command = plan

  variables {
    kubernetes_version   = "v1.36"
    vault_version        = "1.21"
    ssh_known_hosts_file = "tests/fixtures/known_hosts"
    nfs_server           = "10.0.5.10"
    nfs_export           = "/export/ffe-backups"
  }

  expect_failures = [check.alerts_routed]
}

# Monitoring off: nothing to route, no warning, no bundle.
run "monitoring_off_needs_no_receiver" {
  command = plan

  variables {
    kubernetes_version   = "v1.36"
    vault_version        = "1.21"
    ssh_known_hosts_file = "tests/fixtures/known_hosts"
    nfs_server           = "10.0.5.10"
    nfs_export           = "/export/ffe-backups"
    monitoring_enabled   = false
  }

  assert {
    condition     = length(ffe_manifests.monitoring) == 0
    error_message = "monitoring_enabled = false must write no monitoring bundle"
  }
}

# deploy_app = true with the production values: Vault and PgBouncer are not part of this release,
# so the plan warns. (module.app is overridden: this run needs no `make app-chart` package.)
run "deploy_app_warns_about_vault_and_pgbouncer" {
  command = plan

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
    deploy_app = true
  }

  override_module {
    target = module.app
    outputs = {
      manifests = { "helmchart.yaml" = "apiVersion: helm.cattle.io/v1\nkind: HelmChart\nmetadata:\n  name: ffe\n  namespace: kube-system\n" }
      release   = "ffe/ffe"
    }
  }

  expect_failures = [check.app_dependencies]

  assert {
    condition     = length(ffe_manifests.app) == 1
    error_message = "deploy_app = true still writes the app bundle (the warning does not block)"
  }
}

# The app's route follows the operator's domain_names (issue 12 defect 3), not the seed's domains
# in values-production.yaml; host names set by hand that no listener serves are warned about.
run "app_route_hostnames_follow_domain_names" {
  command = plan

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
    domain_names = ["trading.example.org", "api.trading.example.org"]
    deploy_app   = true
  }

  override_module {
    target  = module.app
    outputs = { manifests = {}, release = "ffe/ffe" }
  }

  expect_failures = [check.app_dependencies]

  assert {
    condition     = jsonencode(local.app_route_hostnames) == jsonencode(["trading.example.org", "api.trading.example.org"])
    error_message = "the app's httpRoute.hostnames must be the operator's domain_names, got ${jsonencode(local.app_route_hostnames)}"
  }
}

run "app_hostnames_without_a_listener_warn" {
  command = plan

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
    domain_names = ["trading.example.org"]
    deploy_app   = true
    app_set      = { "httpRoute.hostnames[0]" = "ffe.three-rivers-tech.com" }
  }

  override_module {
    target  = module.app
    outputs = { manifests = {}, release = "ffe/ffe" }
  }

  expect_failures = [check.app_dependencies, check.app_hostnames_have_listeners]

  assert {
    condition     = length(local.app_route_hostnames) == 0
    error_message = "host names set in app_set must not be overridden by domain_names"
  }
}

# The seed's minimum (2 workers) with tainted masters: the app's spread cannot be met, the plan
# says so; letting the masters take workloads (server_taints = []) clears it (issue 12 defect 7).
run "two_workers_warn_about_the_app_spread" {
  command = plan
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
    worker_count      = 2
    worker_ips        = ["10.0.2.10", "10.0.2.11"]
    postgres_replicas = 1
  }
  expect_failures = [check.app_spread]

  assert {
    condition     = !local.app_spread_ok
    error_message = "2 workers and tainted masters cannot spread the app's 3 replicas"
  }
}

run "two_workers_and_untainted_masters_spread_the_app" {
  command = plan
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
    worker_count      = 2
    worker_ips        = ["10.0.2.10", "10.0.2.11"]
    postgres_replicas = 1
    server_taints     = []
  }
  assert {
    condition     = local.app_schedulable_nodes == 5 && local.app_spread_ok
    error_message = "untainted masters take application pods: 2 workers + 3 masters"
  }
}

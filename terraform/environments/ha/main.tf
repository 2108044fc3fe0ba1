# The HA environment: one ffe_host per master and per worker (packages, sysctls, backup mount),
# then the k3s cluster over those hosts. In-cluster add-ons are added by later layers (platform.tf).
#
# Planning from empty state dials nothing: every address below is only passed to the provider;
# the provider connects during apply (and refresh of existing resources) only.

provider "ffe" {
  ssh_user                      = var.ssh_user
  ssh_port                      = var.ssh_port
  ssh_private_key_path          = local.ssh_private_key_path
  ssh_known_hosts_file          = local.ssh_known_hosts_file
  ssh_insecure_ignore_host_keys = var.ssh_insecure_ignore_host_keys
  ssh_connect_timeout_seconds   = var.ssh_connect_timeout_seconds
}

locals {
  # Absolute, so the provider and the ffe-ha CLI (output ops_inventory) read the same files.
  ssh_private_key_path = var.ssh_private_key_path == null ? null : abspath(pathexpand(var.ssh_private_key_path))
  ssh_known_hosts_file = var.ssh_known_hosts_file == null ? null : abspath(pathexpand(var.ssh_known_hosts_file))

  backup_mount      = trimsuffix(var.backup_nfs_mount, "/")
  etcd_snapshot_dir = "${local.backup_mount}/etcd-snapshots"
  # Absolute, so `terraform output -raw kubeconfig_path` works from any directory.
  kubeconfig_path = abspath(pathexpand(coalesce(var.kubeconfig_path, "${path.root}/kubeconfig-${var.cluster_name}.yaml")))

  # The API certificate covers every server IP and the VIP, so the kubeconfig works through any of them.
  tls_san = distinct(concat(var.master_ips, compact([var.api_vip]), var.extra_tls_sans))

  # etcd snapshot retention = snapshots per day x backup_retention_days. Snapshots per day =
  # (minutes selected per hour) x (hours selected per day) from the cron schedule; the day-of-month,
  # month and weekday fields are ignored, which can only over-count (keeps at least the days asked).
  cron_fields = split(" ", var.etcd_snapshot_schedule)
  cron_selected = [for i, size in [60, 24] : max(1, sum([
    for e in split(",", local.cron_fields[i]) :
    can(regex("^\\*", e)) ? ceil(size / try(tonumber(split("/", e)[1]), 1)) : (
      can(regex("^[0-9]+-[0-9]+$", e)) ? max(1, tonumber(split("-", e)[1]) - tonumber(split("-", e)[0]) + 1) : 1
    )
  ]))]
  etcd_snapshots_per_day  = local.cron_selected[0] * local.cron_selected[1]
  etcd_snapshot_retention = coalesce(var.etcd_snapshot_retention, local.etcd_snapshots_per_day * var.backup_retention_days)
  # A server's newest snapshot may be one interval + 1 h old (EtcdSnapshotTooOld and ffe-ha verify).
  etcd_snapshot_max_age_seconds = floor(86400 / local.etcd_snapshots_per_day) + 3600

  airgap = var.install_mode == "airgap"

  # Masters take application pods unless a taint keeps them off (NoSchedule/NoExecute).
  masters_take_workloads = alltrue([for t in var.server_taints : endswith(t, ":PreferNoSchedule")])
  app_schedulable_nodes  = var.worker_count + (local.masters_take_workloads ? var.master_count : 0)
  app_spread_ok          = var.cluster_size != "ha" || local.app_schedulable_nodes >= 3

  # Host firewall inputs (docs/security.md). The service VIPs are open to everyone: kube-proxy
  # forwards their traffic to pods before the input hook in iptables mode; in IPVS mode it
  # reaches the hosts' input hook.
  firewall_admin_cidrs = coalesce(var.firewall_admin_cidrs, [var.network_cidr])
  firewall_service_endpoints = concat(
    var.ingress_ip == null ? [] : ["${var.ingress_ip}:80", "${var.ingress_ip}:443"],
    var.postgres_primary_ip == null ? [] : ["${var.postgres_primary_ip}:5432"],
    [for ip in var.vault_cluster_ips : "${ip}:8200"],
  )
}

resource "ffe_host" "master" {
  count = var.master_count

  name         = "${var.cluster_name}-master-${count.index}"
  address      = var.master_ips[count.index]
  role         = "server"
  backup_mount = local.backup_mount
  nfs_server   = var.nfs_server
  nfs_export   = var.nfs_export

  packages                = var.host_packages
  kernel_modules          = var.host_kernel_modules
  sysctls                 = var.host_sysctls
  protect_kernel_defaults = var.cis_profile

  firewall_enabled           = var.host_firewall_enabled
  firewall_admin_cidrs       = local.firewall_admin_cidrs
  firewall_node_cidrs        = [var.network_cidr]
  firewall_servers           = var.master_ips
  firewall_pod_cidr          = var.pod_cidr
  firewall_service_endpoints = local.firewall_service_endpoints
}

resource "ffe_host" "worker" {
  count = var.worker_count

  name         = "${var.cluster_name}-worker-${count.index}"
  address      = var.worker_ips[count.index]
  role         = "agent"
  backup_mount = local.backup_mount
  nfs_server   = var.nfs_server
  nfs_export   = var.nfs_export

  packages                = var.host_packages
  kernel_modules          = var.host_kernel_modules
  sysctls                 = var.host_sysctls
  protect_kernel_defaults = var.cis_profile

  firewall_enabled           = var.host_firewall_enabled
  firewall_admin_cidrs       = local.firewall_admin_cidrs
  firewall_node_cidrs        = [var.network_cidr]
  firewall_servers           = var.master_ips
  firewall_pod_cidr          = var.pod_cidr
  firewall_service_endpoints = local.firewall_service_endpoints
}

resource "ffe_k3s_cluster" "this" {
  cluster_name = var.cluster_name

  # Built from the hosts' attributes, so the cluster waits for every host to be prepared.
  servers = [for h in ffe_host.master : { name = h.name, address = h.address, ssh_port = h.ssh_port }]
  agents  = [for h in ffe_host.worker : { name = h.name, address = h.address, ssh_port = h.ssh_port }]

  kubernetes_version = local.kubernetes_version
  api_vip            = var.api_vip
  tls_san            = local.tls_san
  cluster_cidr       = var.pod_cidr
  service_cidr       = var.service_cidr

  install_mode           = var.install_mode
  installer_url          = local.airgap ? null : var.installer_url
  airgap_k3s_binary_path = local.airgap ? pathexpand(var.airgap_k3s_binary_path) : null
  airgap_images_path     = local.airgap ? pathexpand(var.airgap_images_path) : null
  airgap_installer_path  = local.airgap ? pathexpand(var.airgap_installer_path) : null

  etcd_snapshot_dir       = local.etcd_snapshot_dir
  etcd_snapshot_schedule  = var.etcd_snapshot_schedule
  etcd_snapshot_retention = local.etcd_snapshot_retention

  server_taints           = var.server_taints
  node_labels             = var.node_labels
  agent_parallelism       = var.agent_parallelism
  cis_profile             = var.cis_profile
  token_rotation          = var.k3s_token_rotation
  certificate_rotation    = var.k3s_certificate_rotation
  encryption_key_rotation = var.k3s_encryption_key_rotation
  restore_from_snapshot   = var.k3s_restore_from_snapshot
  kubeconfig_path         = local.kubeconfig_path
}

# ---------------------------------------------------------------------------------------------
# Plan-time warnings (check blocks never stop a plan). Version support checks are in pins.tf.
# ---------------------------------------------------------------------------------------------

check "api_vip_set" {
  assert {
    condition     = var.api_vip != null || var.cluster_size != "ha"
    error_message = "api_vip is not set: the kubeconfig points at the first master (${try(var.master_ips[0], "?")}) only, so the API is unreachable when that master is down. Fix: set api_vip to a free IP inside network_cidr = \"${var.network_cidr}\"."
  }
}

check "backup_storage" {
  assert {
    condition     = var.nfs_server != null || var.nfs_export != null # one alone is a validation error
    error_message = "nfs_server/nfs_export are not set: backup_nfs_mount = \"${var.backup_nfs_mount}\" is NOT mounted by Terraform. Mount shared NFS there on every node yourself, otherwise etcd snapshots stay on each master's local disk and die with it. Fix: set nfs_server and nfs_export."
  }
}

check "acme_settings" {
  assert {
    condition     = var.acme_enabled || length(var.domain_names) > 0
    error_message = "acme_enabled = false and domain_names is empty: the edge serves no host name and issues no certificate. Set domain_names (and acme_enabled = true for Let's Encrypt certificates)."
  }

  assert {
    condition     = !(var.acme_enabled && var.acme_staging)
    error_message = "acme_staging = true: certificates come from the Let's Encrypt STAGING CA and browsers will not trust them. Set acme_staging = false for production."
  }
}

# The app runs 3 replicas spread over nodes with a PDB of minAvailable 2 (values-production.yaml):
# that needs 3 nodes that take application pods. Masters take them only without a hard taint.
check "app_spread" {
  assert {
    condition     = local.app_spread_ok
    error_message = "Only ${local.app_schedulable_nodes} nodes take application pods (${var.worker_count} workers${local.masters_take_workloads ? " + ${var.master_count} masters" : "; the masters are tainted by server_taints"}): the app's 3 replicas share nodes, so one node loss takes 2 of them (below the PDB's minAvailable 2) and Postgres' instances share nodes too. Fix: add workers (worker_count >= 3), or on a small cluster let the masters run workloads with server_taints = [] (they then share CPU and memory with etcd: size them for both, docs/deploy.md)."
  }
}

# Each Postgres instance needs its own node (required anti-affinity by hostname in the
# PerconaPGCluster), and only nodes that take application pods count: the instances carry no
# toleration for the masters' taints.
check "postgres_spread" {
  assert {
    condition     = !local.postgres_enabled || var.postgres_replicas + 1 <= local.app_schedulable_nodes
    error_message = "postgres_replicas = ${var.postgres_replicas} asks for ${var.postgres_replicas + 1} Postgres instances (primary + replicas), each on its own node, but only ${local.app_schedulable_nodes} nodes take them (${var.worker_count} workers${local.masters_take_workloads ? " + ${var.master_count} masters" : "; the masters are tainted by server_taints"}): ${max(0, var.postgres_replicas + 1 - local.app_schedulable_nodes)} instance(s) stay Pending forever and the cluster runs with fewer replicas than asked. Fix: add workers (worker_count >= ${var.postgres_replicas + 1}), lower postgres_replicas, or on a small cluster let the masters run workloads with server_taints = [] (docs/deploy.md)."
  }
}

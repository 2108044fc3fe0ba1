# One run per validation rule: each run changes the example (terraform.tfvars.example, passed with
# -var-file) in ONE way and expects exactly the named variables to fail. A run also fails if any
# other error appears, so a rule that fires too often is caught as well as one that never fires.
#
# Run from the environment directory:
#   terraform test -var-file=terraform.tfvars.example -filter=tests/validation.tftest.hcl

# Quiet every warning (check block) so only the variable rules speak here; example.tftest.hcl
# covers the warnings.
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

# The quieted example itself must plan cleanly, or every run below proves nothing.
run "baseline_plans_without_errors_or_warnings" {
  command = plan
}

# environment outside the allowed set
run "environment_unknown" {
  command = plan
  variables {
    environment = "prod"
  }
  expect_failures = [var.environment]
}

# cluster_name is not a DNS label
run "cluster_name_uppercase" {
  command = plan
  variables {
    cluster_name = "FFE_prod"
  }
  expect_failures = [var.cluster_name]
}

# cluster_name longer than 40 characters
run "cluster_name_too_long" {
  command = plan
  variables {
    cluster_name = "a23456789012345678901234567890123456789012"
  }
  expect_failures = [var.cluster_name]
}

# cluster_size outside ha/single
run "cluster_size_unknown" {
  command = plan
  variables {
    cluster_size = "large"
  }
  expect_failures = [var.cluster_size]
}

# even master_count (4) for ha, with matching IPs
run "master_count_even" {
  command = plan
  variables {
    master_count = 4
    master_ips   = ["10.0.1.10", "10.0.1.11", "10.0.1.12", "10.0.1.13"]
  }
  expect_failures = [var.master_count]
}

# master_count 1 is not ha
run "master_count_one_for_ha" {
  command = plan
  variables {
    master_count = 1
    master_ips   = ["10.0.1.10"]
  }
  expect_failures = [var.master_count]
}

# master_count above 7
run "master_count_nine" {
  command = plan
  variables {
    master_count = 9
    master_ips   = [for i in range(9) : "10.0.1.${10 + i}"]
  }
  expect_failures = [var.master_count]
}

# cluster_size single needs exactly one master
run "master_count_three_for_single" {
  command = plan
  variables {
    cluster_size = "single"
  }
  expect_failures = [var.master_count]
}

# master_ips shorter than master_count
run "master_ips_fewer_than_count" {
  command = plan
  variables {
    master_ips = ["10.0.1.10", "10.0.1.11"]
  }
  expect_failures = [var.master_ips]
}

# a master IP that is not an IPv4 address
run "master_ips_not_ipv4" {
  command = plan
  variables {
    master_ips = ["10.0.1.10", "10.0.1.300", "10.0.1.12"]
  }
  expect_failures = [var.master_ips]
}

# a master IP outside network_cidr
run "master_ips_outside_network" {
  command = plan
  variables {
    master_ips = ["10.0.1.10", "10.1.1.11", "10.0.1.12"]
  }
  expect_failures = [var.master_ips]
}

# the network address of network_cidr is not a host
run "master_ips_network_address" {
  command = plan
  variables {
    master_ips = ["10.0.0.0", "10.0.1.11", "10.0.1.12"]
  }
  expect_failures = [var.master_ips]
}

# the same IP twice in master_ips
run "master_ips_duplicate" {
  command = plan
  variables {
    master_ips = ["10.0.1.10", "10.0.1.11", "10.0.1.10"]
  }
  expect_failures = [var.master_ips]
}

# worker_count 6 > worker_count_max 5
run "worker_count_above_max" {
  command = plan
  variables {
    worker_count = 6
    worker_ips   = [for i in range(6) : "10.0.2.${10 + i}"]
  }
  expect_failures = [var.worker_count]
}

# worker_count 1 for ha
run "worker_count_below_two" {
  command = plan
  variables {
    worker_count = 1
    worker_ips   = ["10.0.2.10"]
  }
  expect_failures = [var.worker_count]
}

# worker_count must be whole
run "worker_count_fraction" {
  command = plan
  variables {
    worker_count = 2.5
  }
  expect_failures = [var.worker_count]
}

# worker_count_max below 2
run "worker_count_max_too_small" {
  command = plan
  variables {
    worker_count_max = 1
  }
  expect_failures = [var.worker_count_max]
}

# worker_ips shorter than worker_count
run "worker_ips_fewer_than_count" {
  command = plan
  variables {
    worker_ips = ["10.0.2.10", "10.0.2.11"]
  }
  expect_failures = [var.worker_ips]
}

# a worker IP that is not an IPv4 address
run "worker_ips_not_ipv4" {
  command = plan
  variables {
    worker_ips = ["10.0.2.10", "10.0.2", "10.0.2.12"]
  }
  expect_failures = [var.worker_ips]
}

# a worker IP outside network_cidr
run "worker_ips_outside_network" {
  command = plan
  variables {
    worker_ips = ["10.0.2.10", "192.168.2.11", "10.0.2.12"]
  }
  expect_failures = [var.worker_ips]
}

# the same IP twice in worker_ips
run "worker_ips_duplicate" {
  command = plan
  variables {
    worker_ips = ["10.0.2.10", "10.0.2.10", "10.0.2.12"]
  }
  expect_failures = [var.worker_ips]
}

# a worker IP that is a master IP (duplicate across roles)
run "worker_ip_reuses_master_ip" {
  command = plan
  variables {
    worker_ips = ["10.0.2.10", "10.0.1.11", "10.0.2.12"]
  }
  expect_failures = [var.worker_ips]
}

# postgres_primary_ip collides with a worker
run "postgres_primary_ip_is_a_node" {
  command = plan
  variables {
    postgres_primary_ip = "10.0.2.11"
  }
  expect_failures = [var.postgres_primary_ip]
}

# postgres_primary_ip outside network_cidr
run "postgres_primary_ip_outside_network" {
  command = plan
  variables {
    postgres_primary_ip = "172.16.3.10"
  }
  expect_failures = [var.postgres_primary_ip]
}

# postgres_replicas 0
run "postgres_replicas_zero" {
  command = plan
  variables {
    postgres_replicas = 0
  }
  expect_failures = [var.postgres_replicas]
}

# postgres_replicas above the supported maximum (issue 13)
run "postgres_replicas_six" {
  command = plan
  variables {
    postgres_replicas = 6
  }
  expect_failures = [var.postgres_replicas]
}

# vault_ha_enabled needs exactly 3 vault_cluster_ips
run "vault_ips_two_for_ha" {
  command = plan
  variables {
    vault_cluster_ips = ["10.0.4.10", "10.0.4.11"]
  }
  expect_failures = [var.vault_cluster_ips]
}

# single Vault allows at most one IP
run "vault_ips_two_without_ha" {
  command = plan
  variables {
    vault_ha_enabled  = false
    vault_cluster_ips = ["10.0.4.10", "10.0.4.11"]
  }
  expect_failures = [var.vault_cluster_ips]
}

# a Vault IP outside network_cidr
run "vault_ip_outside_network" {
  command = plan
  variables {
    vault_cluster_ips = ["10.0.4.10", "10.0.4.11", "10.9.4.12"]
  }
  expect_failures = [var.vault_cluster_ips]
}

# a Vault IP equal to postgres_primary_ip
run "vault_ip_is_postgres_ip" {
  command = plan
  variables {
    vault_cluster_ips = ["10.0.4.10", "10.0.3.10", "10.0.4.12"]
  }
  expect_failures = [var.vault_cluster_ips]
}

# a Vault IP equal to a master IP
run "vault_ip_is_master_ip" {
  command = plan
  variables {
    vault_cluster_ips = ["10.0.1.12", "10.0.4.11", "10.0.4.12"]
  }
  expect_failures = [var.vault_cluster_ips]
}

# api_vip outside network_cidr
run "api_vip_outside_network" {
  command = plan
  variables {
    api_vip = "10.1.1.5"
  }
  expect_failures = [var.api_vip]
}

# api_vip collides with a master
run "api_vip_is_master_ip" {
  command = plan
  variables {
    api_vip = "10.0.1.10"
  }
  expect_failures = [var.api_vip]
}

# api_vip collides with a Vault member
run "api_vip_is_vault_ip" {
  command = plan
  variables {
    api_vip = "10.0.4.11"
  }
  expect_failures = [var.api_vip]
}

# api_vip is a name, not an IPv4
run "api_vip_not_ipv4" {
  command = plan
  variables {
    api_vip = "k8s.example.com"
  }
  expect_failures = [var.api_vip]
}

# ingress_ip collides with a worker node
run "ingress_ip_is_worker_ip" {
  command = plan
  variables {
    ingress_ip = "10.0.2.12"
  }
  expect_failures = [var.ingress_ip]
}

# ingress_ip equals api_vip
run "ingress_ip_is_api_vip" {
  command = plan
  variables {
    ingress_ip = "10.0.1.5"
  }
  expect_failures = [var.ingress_ip]
}

# ingress_ip equals postgres_primary_ip
run "ingress_ip_is_postgres_ip" {
  command = plan
  variables {
    ingress_ip = "10.0.3.10"
  }
  expect_failures = [var.ingress_ip]
}

# ingress_ip outside network_cidr
run "ingress_ip_outside_network" {
  command = plan
  variables {
    ingress_ip = "10.10.2.5"
  }
  expect_failures = [var.ingress_ip]
}

# network_cidr with host bits set
run "network_cidr_not_canonical" {
  command = plan
  variables {
    network_cidr = "10.0.1.0/16"
  }
  expect_failures = [var.network_cidr]
}

# network_cidr that is not a CIDR at all (IP rules stay quiet)
run "network_cidr_garbage" {
  command = plan
  variables {
    network_cidr = "10.0.0.0"
  }
  expect_failures = [var.network_cidr]
}

# narrowing network_cidr puts the workers outside it
run "network_cidr_too_small" {
  command = plan
  variables {
    network_cidr = "10.0.1.0/24"
  }
  expect_failures = [var.worker_ips] # later rules depend on worker_ips and are skipped
}

# pod_cidr inside network_cidr
run "pod_cidr_overlaps_network" {
  command = plan
  variables {
    pod_cidr = "10.0.128.0/17"
  }
  expect_failures = [var.pod_cidr]
}

# pod_cidr containing network_cidr
run "pod_cidr_contains_network" {
  command = plan
  variables {
    pod_cidr = "10.0.0.0/8"
  }
  expect_failures = [var.pod_cidr]
}

# pod_cidr without one /24 per node
run "pod_cidr_too_small" {
  command = plan
  variables {
    pod_cidr = "10.42.0.0/23"
  }
  expect_failures = [var.pod_cidr]
}

# pod_cidr with host bits set
run "pod_cidr_not_canonical" {
  command = plan
  variables {
    pod_cidr = "10.42.1.0/16"
  }
  expect_failures = [var.pod_cidr]
}

# service_cidr overlapping pod_cidr
run "service_cidr_overlaps_pod" {
  command = plan
  variables {
    service_cidr = "10.42.128.0/17"
  }
  expect_failures = [var.service_cidr]
}

# service_cidr overlapping network_cidr
run "service_cidr_overlaps_network" {
  command = plan
  variables {
    service_cidr = "10.0.64.0/18"
  }
  expect_failures = [var.service_cidr]
}

# service_cidr shorter than /12
run "service_cidr_too_large" {
  command = plan
  variables {
    service_cidr = "172.0.0.0/8"
  }
  expect_failures = [var.service_cidr]
}

# a domain name with an underscore
run "domain_invalid" {
  command = plan
  variables {
    domain_names = ["ffe.three-rivers-tech.com", "bad_name.example.com"]
  }
  expect_failures = [var.domain_names]
}

# a wildcard name (HTTP-01 cannot issue it)
run "domain_wildcard" {
  command = plan
  variables {
    domain_names = ["*.ffe.three-rivers-tech.com"]
  }
  expect_failures = [var.domain_names]
}

# uppercase names
run "domain_uppercase" {
  command = plan
  variables {
    domain_names = ["FFE.three-rivers-tech.com"]
  }
  expect_failures = [var.domain_names]
}

# a name without a dot
run "domain_single_label" {
  command = plan
  variables {
    domain_names = ["localhost"]
  }
  expect_failures = [var.domain_names]
}

# a name listed twice
run "domain_duplicate" {
  command = plan
  variables {
    domain_names = ["ffe.three-rivers-tech.com", "ffe.three-rivers-tech.com"]
  }
  expect_failures = [var.domain_names]
}

# acme_enabled with no domain names
run "acme_without_domains" {
  command = plan
  variables {
    domain_names = []
  }
  expect_failures = [var.domain_names]
}

# an e-mail without a domain
run "acme_email_invalid" {
  command = plan
  variables {
    acme_email = "cpenrod@"
  }
  expect_failures = [var.acme_email]
}

# an e-mail with a display name
run "acme_email_display_name" {
  command = plan
  variables {
    acme_email = "C Penrod <cpenrod@three-rivers-tech.com>"
  }
  expect_failures = [var.acme_email]
}

# acme_enabled without acme_email
run "acme_email_missing" {
  command = plan
  variables {
    acme_email = null
  }
  expect_failures = [var.acme_email]
}

# backup_retention_days 0
run "retention_zero" {
  command = plan
  variables {
    backup_retention_days = 0
  }
  expect_failures = [var.backup_retention_days]
}

# backup_retention_days 1.5
run "retention_fraction" {
  command = plan
  variables {
    backup_retention_days = 1.5
  }
  expect_failures = [var.backup_retention_days]
}

# backup_nfs_mount not absolute
run "backup_mount_relative" {
  command = plan
  variables {
    backup_nfs_mount = "mnt/backups"
  }
  expect_failures = [var.backup_nfs_mount]
}

# backup_nfs_mount with ..
run "backup_mount_dotdot" {
  command = plan
  variables {
    backup_nfs_mount = "/mnt/../etc"
  }
  expect_failures = [var.backup_nfs_mount]
}

# nfs_server set, nfs_export not
run "nfs_server_without_export" {
  command = plan
  variables {
    nfs_export = null
  }
  expect_failures = [var.nfs_export]
}

# nfs_export set, nfs_server not
run "nfs_export_without_server" {
  command = plan
  variables {
    nfs_server = null
  }
  expect_failures = [var.nfs_export]
}

# nfs_export not absolute
run "nfs_export_relative" {
  command = plan
  variables {
    nfs_export = "export/ffe"
  }
  expect_failures = [var.nfs_export]
}

# nfs_server with a scheme
run "nfs_server_invalid" {
  command = plan
  variables {
    nfs_server = "nfs://nas"
  }
  expect_failures = [var.nfs_server]
}

# airgap mode without the three files
run "airgap_without_files" {
  command = plan
  variables {
    install_mode = "airgap"
  }
  expect_failures = [var.airgap_k3s_binary_path, var.airgap_images_path, var.airgap_installer_path]
}

# airgap mode with a file that does not exist
run "airgap_missing_file" {
  command = plan
  variables {
    install_mode           = "airgap"
    airgap_k3s_binary_path = "tests/fixtures/airgap/k3s"
    airgap_images_path     = "tests/fixtures/airgap/no-such-file.tar.zst"
    airgap_installer_path  = "tests/fixtures/airgap/install.sh"
  }
  expect_failures = [var.airgap_images_path]
}

# install_mode outside online/airgap
run "install_mode_unknown" {
  command = plan
  variables {
    install_mode = "offline"
  }
  expect_failures = [var.install_mode]
}

# installer_url over plain http
run "installer_url_http" {
  command = plan
  variables {
    installer_url = "http://get.k3s.io"
  }
  expect_failures = [var.installer_url]
}

# ssh_user with a space
run "ssh_user_invalid" {
  command = plan
  variables {
    ssh_user = "ffe admin"
  }
  expect_failures = [var.ssh_user]
}

# ssh_port 0
run "ssh_port_zero" {
  command = plan
  variables {
    ssh_port = 0
  }
  expect_failures = [var.ssh_port]
}

# ssh_port 70000
run "ssh_port_too_high" {
  command = plan
  variables {
    ssh_port = 70000
  }
  expect_failures = [var.ssh_port]
}

# ssh_private_key_path that does not exist
run "ssh_key_missing" {
  command = plan
  variables {
    ssh_private_key_path = "tests/fixtures/no-such-key"
  }
  expect_failures = [var.ssh_private_key_path]
}

# ssh_known_hosts_file that does not exist
run "known_hosts_missing" {
  command = plan
  variables {
    ssh_known_hosts_file = "tests/fixtures/no-such-known-hosts"
  }
  expect_failures = [var.ssh_known_hosts_file]
}

# ssh_connect_timeout_seconds 0
run "ssh_timeout_zero" {
  command = plan
  variables {
    ssh_connect_timeout_seconds = 0
  }
  expect_failures = [var.ssh_connect_timeout_seconds]
}

# kubernetes_version without the leading v
run "kubernetes_version_without_v" {
  command = plan
  variables {
    kubernetes_version = "1.36"
  }
  expect_failures = [var.kubernetes_version]
}

# kubernetes_version release without +k3sN
run "kubernetes_version_bad_release" {
  command = plan
  variables {
    kubernetes_version = "v1.36.2"
  }
  expect_failures = [var.kubernetes_version]
}

# vault_version latest
run "vault_version_word" {
  command = plan
  variables {
    vault_version = "latest"
  }
  expect_failures = [var.vault_version]
}

# postgres_version with a minor
run "postgres_version_minor" {
  command = plan
  variables {
    postgres_version = "16.2"
  }
  expect_failures = [var.postgres_version]
}

# etcd_snapshot_schedule not cron
run "snapshot_schedule_invalid" {
  command = plan
  variables {
    etcd_snapshot_schedule = "every 6 hours"
  }
  expect_failures = [var.etcd_snapshot_schedule]
}

# etcd_snapshot_schedule with 4 fields
run "snapshot_schedule_four_fields" {
  command = plan
  variables {
    etcd_snapshot_schedule = "0 */6 * *"
  }
  expect_failures = [var.etcd_snapshot_schedule]
}

# etcd_snapshot_retention 0
run "snapshot_retention_zero" {
  command = plan
  variables {
    etcd_snapshot_retention = 0
  }
  expect_failures = [var.etcd_snapshot_retention]
}

# a taint with an unknown effect
run "server_taint_bad_effect" {
  command = plan
  variables {
    server_taints = ["CriticalAddonsOnly=true:Evict"]
  }
  expect_failures = [var.server_taints]
}

# a fraction of a rotation
run "certificate_rotation_fraction" {
  command = plan
  variables {
    k3s_certificate_rotation = 0.5
  }
  expect_failures = [var.k3s_certificate_rotation]
}

# a path instead of a snapshot's file name
run "restore_from_snapshot_path" {
  command = plan
  variables {
    k3s_restore_from_snapshot = "../../etc/passwd"
  }
  expect_failures = [var.k3s_restore_from_snapshot]
}

# agent_parallelism 0
run "agent_parallelism_zero" {
  command = plan
  variables {
    agent_parallelism = 0
  }
  expect_failures = [var.agent_parallelism]
}

# an override for a component that is not pinned
run "component_versions_unknown" {
  command = plan
  variables {
    component_versions = { ingress_nginx = "v1.12.0" }
  }
  expect_failures = [var.component_versions]
}

# an extra SAN with a scheme
run "extra_tls_sans_invalid" {
  command = plan
  variables {
    extra_tls_sans = ["https://k8s.example.com"]
  }
  expect_failures = [var.extra_tls_sans]
}

# kubeconfig_path blank
run "kubeconfig_path_blank" {
  command = plan
  variables {
    kubeconfig_path = "  "
  }
  expect_failures = [var.kubeconfig_path]
}

# a host package name with a space
run "host_packages_invalid" {
  command = plan
  variables {
    host_packages = ["nfs-common", "Open SSH"]
  }
  expect_failures = [var.host_packages]
}

# a kernel module name with a space
run "host_kernel_modules_invalid" {
  command = plan
  variables {
    host_kernel_modules = ["overlay", "br netfilter"]
  }
  expect_failures = [var.host_kernel_modules]
}

# a sysctl with an empty value
run "host_sysctls_empty_value" {
  command = plan
  variables {
    host_sysctls = { "net.ipv4.ip_forward" = "" }
  }
  expect_failures = [var.host_sysctls]
}

# a node label key with a space
run "node_labels_invalid_key" {
  command = plan
  variables {
    node_labels = { "ffe tier" = "backend" }
  }
  expect_failures = [var.node_labels]
}

# a reserved label key the kubelet refuses (issue 11 A.9)
run "node_labels_reserved_key" {
  command = plan
  variables {
    node_labels = { "node-role.kubernetes.io/worker" = "true" }
  }
  expect_failures = [var.node_labels]
}

run "node_labels_cordon_mark" {
  command = plan
  variables {
    node_labels = { "ffe.io/cordoned-by-apply" = "true" }
  }
  expect_failures = [var.node_labels]
}

# prometheus_retention in minutes
run "prometheus_retention_minutes" {
  command = plan
  variables {
    prometheus_retention = "90m"
  }
  expect_failures = [var.prometheus_retention]
}

# prometheus_storage_size in decimal gigabytes
run "prometheus_storage_size_not_gi" {
  command = plan
  variables {
    prometheus_storage_size = "50G"
  }
  expect_failures = [var.prometheus_storage_size]
}

# tracing_otlp_endpoint given as a URL instead of host:port
run "tracing_otlp_endpoint_url" {
  command = plan
  variables {
    tracing_otlp_endpoint = "http://tempo.tracing.svc:4317"
  }
  expect_failures = [var.tracing_otlp_endpoint]
}

# monitoring_runbook_base_url without the trailing '/'
run "runbook_base_url_without_slash" {
  command = plan
  variables {
    monitoring_runbook_base_url = "https://git.example.com/ffe-ha/blob/main"
  }
  expect_failures = [var.monitoring_runbook_base_url]
}

# monitoring_alertmanager_config given as a YAML string
run "alertmanager_config_string" {
  command = plan
  variables {
    monitoring_alertmanager_config = "route: {receiver: ops}"
  }
  expect_failures = [var.monitoring_alertmanager_config]
}

# a database URL with its password in app_set (issue 11 B.5: secrets stay out of the HelmChart)
run "app_set_with_credentials" {
  command = plan
  variables {
    app_set = { "database.url" = "postgresql://ffe:s3cret@pgbouncer.ffe-data.svc:5432/ffe" }
  }
  expect_failures = [var.app_set]
}

# the password as a URL parameter, in upper case
run "app_set_with_a_password_parameter" {
  command = plan
  variables {
    app_set = { "database.url" = "postgresql://ffe@pgbouncer.ffe-data.svc:5432/ffe?PASSWORD=s3cret" }
  }
  expect_failures = [var.app_set]
}

# app_set given as a --set string
run "app_set_not_a_map" {
  command = plan
  variables {
    app_set = "replicaCount=5"
  }
  expect_failures = [var.app_set]
}

# vip_interface that is not an interface name
run "vip_interface_not_a_name" {
  command = plan
  variables {
    vip_interface = "eth0 eth1"
  }
  expect_failures = [var.vip_interface]
}

# a firewall admin network that is not canonical (host bits set)
run "firewall_admin_cidrs_not_canonical" {
  command = plan
  variables {
    firewall_admin_cidrs = ["10.0.0.7/24"]
  }
  expect_failures = [var.firewall_admin_cidrs]
}

# an empty firewall admin list would lock everyone out
run "firewall_admin_cidrs_empty" {
  command = plan
  variables {
    firewall_admin_cidrs = []
  }
  expect_failures = [var.firewall_admin_cidrs]
}

# the mesh on a Kubernetes older than Istio 1.30 supports (the seed's v1.29)
run "service_mesh_on_kubernetes_too_old" {
  command = plan
  variables {
    kubernetes_version   = "v1.29"
    service_mesh_enabled = true
  }
  # v1.29 also draws the support warning (pins.tf)
  expect_failures = [var.service_mesh_enabled, check.kubernetes_version_supported]
}

# The Vault HA layer (issue 14): bad input fails the plan naming the variable; the planned chart
# values, server configuration, certificates, per-member Services, snapshot CronJob, Terraform
# initialisation/configuration and outputs carry what the issue asks for, for both distributions;
# 1 member without HA; no Vault layer with vault_cluster_ips = [].
#
# Run from the environment directory:
#   terraform test -var-file=terraform.tfvars.example -filter=tests/vault.tftest.hcl

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

run "vault_cluster_ips_two_with_ha" {
  command = plan
  variables {
    vault_cluster_ips = ["10.0.4.10", "10.0.4.11"]
  }
  expect_failures = [var.vault_cluster_ips]
}

run "vault_cluster_ips_four_with_ha" {
  command = plan
  variables {
    vault_cluster_ips = ["10.0.4.10", "10.0.4.11", "10.0.4.12", "10.0.4.13"]
  }
  expect_failures = [var.vault_cluster_ips]
}

run "vault_cluster_ips_three_without_ha" {
  command = plan
  variables {
    vault_ha_enabled = false
  }
  expect_failures = [var.vault_cluster_ips]
}

run "vault_cluster_ips_outside_network_cidr" {
  command = plan
  variables {
    vault_cluster_ips = ["10.0.4.10", "10.1.4.11", "10.0.4.12"]
  }
  expect_failures = [var.vault_cluster_ips]
}

run "vault_cluster_ips_network_address" {
  command = plan
  variables {
    vault_cluster_ips = ["10.0.4.10", "10.0.0.0", "10.0.4.12"]
  }
  expect_failures = [var.vault_cluster_ips]
}

run "vault_cluster_ips_duplicated" {
  command = plan
  variables {
    vault_cluster_ips = ["10.0.4.10", "10.0.4.11", "10.0.4.10"]
  }
  expect_failures = [var.vault_cluster_ips]
}

run "vault_cluster_ips_a_worker_ip" {
  command = plan
  variables {
    vault_cluster_ips = ["10.0.4.10", "10.0.2.11", "10.0.4.12"]
  }
  expect_failures = [var.vault_cluster_ips]
}

run "vault_cluster_ips_the_postgres_primary_ip" {
  command = plan
  variables {
    vault_cluster_ips = ["10.0.4.10", "10.0.4.11", "10.0.3.10"]
  }
  expect_failures = [var.vault_cluster_ips]
}

# A VIP collision is reported on the VIP declared later in the chain (variables.tf header); its
# message names vault_cluster_ips.
run "vault_cluster_ips_the_api_vip" {
  command = plan
  variables {
    vault_cluster_ips = ["10.0.1.5", "10.0.4.11", "10.0.4.12"]
  }
  expect_failures = [var.api_vip]
}

run "vault_cluster_ips_the_ingress_ip" {
  command = plan
  variables {
    vault_cluster_ips = ["10.0.4.10", "10.0.2.5", "10.0.4.12"]
  }
  expect_failures = [var.ingress_ip]
}

run "vault_distribution_unknown" {
  command = plan
  variables {
    vault_distribution = "hashicorp"
  }
  expect_failures = [var.vault_distribution]
}

# PGP keys of the unseal key holders: base64 of a binary export, one per share.
run "vault_unseal_pgp_keys_armored" {
  command = plan
  variables {
    vault_unseal_pgp_keys = ["-----BEGIN PGP PUBLIC KEY BLOCK-----"]
  }
  expect_failures = [var.vault_unseal_pgp_keys]
}

run "vault_unseal_pgp_keys_fewer_than_the_shares" {
  command = plan
  variables {
    vault_unseal_pgp_keys = [for i in range(2) : join("", [for j in range(124) : "A"])]
  }
  expect_failures = [ffe_vault_init.this]
}

run "vault_unseal_pgp_keys_reach_the_init" {
  command = plan
  variables {
    vault_unseal_pgp_keys = [for i in range(5) : join("", [for j in range(124) : substr("ABCDE", i, 1)])]
  }
  assert {
    condition     = length(ffe_vault_init.this[0].pgp_keys) == 5 && startswith(ffe_vault_init.this[0].pgp_keys[4], "EEEE")
    error_message = "the holders' keys must reach ffe_vault_init in order"
  }
}

# A minor without a pinned patch cannot name an image.
run "vault_version_minor_without_image" {
  command = plan
  variables {
    vault_version = "1.16"
  }
  expect_failures = [var.vault_version]
}

# ---- the seed's example: 3 members -------------------------------------------------------------

run "seed_example_three_members" {
  command = plan

  variables {
    vault_version         = "1.17" # the seed's: past EOL, warned, still a real image
    backup_retention_days = 21
  }
  expect_failures = [check.vault_version_supported]

  # The chart: HashiCorp's vault at the pin, through helm-controller into namespace vault.
  assert {
    condition = (
      yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).kind == "HelmChart" &&
      yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.chart == "vault" &&
      yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.version == "0.32.0" &&
      yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.repo == "https://helm.releases.hashicorp.com" &&
      yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.targetNamespace == "vault"
    )
    error_message = "HelmChart vault 0.32.0 from helm.releases.hashicorp.com into namespace vault expected"
  }
  # vault_version "1.17" -> the appVersion of vault-helm v0.28.1.
  assert {
    condition     = yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.image == { repository = "hashicorp/vault", tag = "1.17.2" }
    error_message = "server image for vault_version 1.17 must be hashicorp/vault:1.17.2"
  }
  assert {
    condition = (
      yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.ha.enabled == true &&
      yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.ha.replicas == 3 &&
      yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.ha.raft.enabled == true &&
      yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).global.tlsDisable == false &&
      yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).injector.enabled == true
    )
    error_message = "3 Raft members, TLS on, injector on"
  }
  assert {
    condition = anytrue([
      for t in yamldecode(yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.affinity).podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution :
      t.topologyKey == "kubernetes.io/hostname" && t.labelSelector.matchLabels == { "app.kubernetes.io/instance" = "vault", component = "server" }
    ])
    error_message = "members need REQUIRED anti-affinity by hostname on the server pods' labels"
  }
  # The data class must be one the storage bundle creates with reclaimPolicy Retain.
  assert {
    condition = anytrue([
      for d in split("---\n", ffe_manifests.platform["storage"].manifests["storage-classes.yaml"]) :
      try(yamldecode(d).metadata.name == yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.dataStorage.storageClass && yamldecode(d).reclaimPolicy == "Retain" && yamldecode(d).provisioner == "rancher.io/local-path", false)
    ])
    error_message = "the Raft data must use the node-local Retain StorageClass of the storage bundle"
  }
  # Sealed (503) and uninitialised (501) members stay ready, so Terraform reaches them; no liveness.
  assert {
    condition = (
      strcontains(yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.readinessProbe.path, "sealedcode=204") &&
      strcontains(yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.readinessProbe.path, "uninitcode=204") &&
      yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.livenessProbe.enabled == false
    )
    error_message = "readiness must count sealed/uninitialised members as ready, and no liveness probe may restart them"
  }
  # The server configuration: Raft timing from vault-settings.yaml, retry_join to every member over
  # TLS, TLS listener, metrics without a token.
  assert {
    condition     = strcontains(yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.ha.raft.config, "performance_multiplier = ${yamldecode(file("../../modules/vault/vault-settings.yaml")).raft.performance_multiplier}\n")
    error_message = "storage raft performance_multiplier must be vault-settings.yaml's"
  }
  assert {
    condition = alltrue([for i in range(3) : strcontains(
      yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.ha.raft.config,
      "leader_api_addr     = \"https://vault-${i}.vault-internal:8200\"\n    leader_ca_cert_file = \"/vault/userconfig/vault-server-tls/ca.crt\""
    )]) && length(regexall("retry_join \\{", yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.ha.raft.config)) == 3
    error_message = "one retry_join per member, each verifying the leader with the CA"
  }
  assert {
    condition = alltrue([for s in [
      "tls_cert_file   = \"/vault/userconfig/vault-server-tls/tls.crt\"",
      "unauthenticated_metrics_access = true",
      "disable_hostname          = true",
      "prometheus_retention_time = ",
      "service_registration \"kubernetes\"",
      ] : strcontains(yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.ha.raft.config, s)
    ]) && !strcontains(yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.ha.raft.config, "tls_disable") && !strcontains(yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.ha.raft.config, "audit \"")
    error_message = "TLS listener with the cert-manager Secret, unauthenticated metrics, telemetry for Prometheus"
  }
  # The chart sed-replaces these words in the configuration (vault-helm templates/_helpers.tpl vault.args).
  assert {
    condition     = length(regexall("HOST_IP|POD_IP|HOSTNAME|API_ADDR|TRANSIT_ADDR|RAFT_ADDR|\\{\\{", yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.ha.raft.config)) == 0
    error_message = "the configuration must not contain words the chart rewrites, nor template braces"
  }
  # TLS: the server certificate covers every name and address clients use.
  assert {
    condition = anytrue([
      for d in split("---\n", ffe_manifests.vault[0].manifests["vault-tls.yaml"]) :
      try(
        yamldecode(d).kind == "Certificate" && yamldecode(d).spec.secretName == "vault-server-tls" &&
        length(setsubtract(["10.0.4.10", "10.0.4.11", "10.0.4.12", "127.0.0.1"], yamldecode(d).spec.ipAddresses)) == 0 &&
        length(setsubtract(["vault.vault.svc", "vault-active.vault.svc", "*.vault-internal"], yamldecode(d).spec.dnsNames)) == 0 &&
        yamldecode(d).spec.issuerRef == { group = "cert-manager.io", kind = "ClusterIssuer", name = "vault-ca" },
      false)
    ])
    error_message = "Certificate vault-server-tls from ClusterIssuer vault-ca with every member IP, 127.0.0.1 and the Service names"
  }
  # The ClusterIssuer's CA Secret is in cert-manager's namespace (where a ClusterIssuer reads it).
  assert {
    condition = anytrue([
      for d in split("---\n", ffe_manifests.vault[0].manifests["vault-tls.yaml"]) :
      try(yamldecode(d).kind == "ClusterIssuer" && yamldecode(d).metadata.name == "vault-ca" && anytrue([
        for c in split("---\n", ffe_manifests.vault[0].manifests["vault-tls.yaml"]) :
        try(yamldecode(c).kind == "Certificate" && yamldecode(c).spec.isCA == true && yamldecode(c).metadata.namespace == "cert-manager" && yamldecode(c).spec.secretName == yamldecode(d).spec.ca.secretName, false)
      ]), false)
    ])
    error_message = "ClusterIssuer vault-ca must sign with a CA Certificate's Secret in namespace cert-manager"
  }
  assert {
    condition = length([
      for d in split("---\n", ffe_manifests.vault[0].manifests["vault-tls.yaml"]) : d
      if try(yamldecode(d).kind == "Certificate" && yamldecode(d).spec.secretName == "vault-ca" && contains(["vault", "ffe", "ffe-data"], yamldecode(d).metadata.namespace) && yamldecode(d).spec.issuerRef.name == "vault-ca", false)
    ]) == 3
    error_message = "Secret vault-ca (ca.crt) must be issued in namespace vault (ffe_vault_init), ffe (the app chart) and ffe-data (the Postgres credentials job)"
  }
  # The app's pods are created only once the injector runs (its webhook ignores failures).
  assert {
    condition     = anytrue([for w in ffe_manifests.vault[0].wait_for : w.kind == "deployment.apps" && w.name == "vault-agent-injector" && w.namespace == "vault" && w.condition == "Available"])
    error_message = "the bundle must wait for the agent injector Available: ${jsonencode(ffe_manifests.vault[0].wait_for)}"
  }
  assert {
    condition     = anytrue([for w in ffe_manifests.vault[0].wait_for : w.kind == "certificate.cert-manager.io" && w.name == "vault-ca" && w.namespace == "vault" && w.condition == "Ready"])
    error_message = "the bundle must wait for the CA Certificate Ready: ${jsonencode(ffe_manifests.vault[0].wait_for)}"
  }
  # One kube-vip LoadBalancer per member at its IP.
  assert {
    condition = alltrue([for i, ip in ["10.0.4.10", "10.0.4.11", "10.0.4.12"] : anytrue([
      for d in split("---\n", ffe_manifests.vault[0].manifests["vault-services.yaml"]) :
      try(
        yamldecode(d).metadata.name == "vault-member-${i}" && yamldecode(d).spec.type == "LoadBalancer" &&
        yamldecode(d).metadata.annotations["kube-vip.io/loadbalancerIPs"] == ip &&
        yamldecode(d).spec.selector == { "statefulset.kubernetes.io/pod-name" = "vault-${i}" } &&
        yamldecode(d).spec.publishNotReadyAddresses == true && yamldecode(d).spec.ports[0].port == 8200,
      false)
    ])])
    error_message = "Service vault-member-<i> (LoadBalancer, kube-vip at vault_cluster_ips[i], pod vault-<i>, port 8200) expected per member"
  }
  # The monitoring module's ServiceMonitor finds the metrics Service (labels and port name).
  assert {
    condition = anytrue([
      for d in split("---\n", ffe_manifests.vault[0].manifests["vault-services.yaml"]) :
      try(
        yamldecode(d).metadata.namespace == yamldecode(ffe_manifests.monitoring[0].manifests["servicemonitor-vault.yaml"]).spec.namespaceSelector.matchNames[0] &&
        alltrue([for k, v in yamldecode(ffe_manifests.monitoring[0].manifests["servicemonitor-vault.yaml"]).spec.selector.matchLabels : lookup(yamldecode(d).metadata.labels, k, null) == v]) &&
        contains([for p in yamldecode(d).spec.ports : p.name], yamldecode(ffe_manifests.monitoring[0].manifests["servicemonitor-vault.yaml"]).spec.endpoints[0].port) &&
        yamldecode(ffe_manifests.monitoring[0].manifests["servicemonitor-vault.yaml"]).spec.endpoints[0].scheme == "https",
      false)
    ])
    error_message = "ServiceMonitor vault (https) must select a Service of the vault bundle by its labels and port name"
  }
  # Daily snapshot: schedule from vault-settings.yaml, the server image's CLI, Kubernetes auth login,
  # the backup claim, retention backup_retention_days.
  assert {
    condition = anytrue([
      for d in split("---\n", ffe_manifests.vault[0].manifests["vault-snapshots.yaml"]) :
      try(
        yamldecode(d).kind == "CronJob" && yamldecode(d).metadata.name == "vault-snapshot" &&
        yamldecode(d).spec.schedule == yamldecode(file("../../modules/vault/vault-settings.yaml")).snapshots.schedule &&
        yamldecode(d).spec.jobTemplate.spec.template.spec.serviceAccountName == "vault-snapshot" &&
        yamldecode(d).spec.jobTemplate.spec.template.spec.containers[0].image == "docker.io/hashicorp/vault:1.17.2" &&
        strcontains(yamldecode(d).spec.jobTemplate.spec.template.spec.containers[0].command[2], "vault write -field=token auth/kubernetes/login role=vault-snapshot") &&
        strcontains(yamldecode(d).spec.jobTemplate.spec.template.spec.containers[0].command[2], "vault operator raft snapshot save") &&
        strcontains(yamldecode(d).spec.jobTemplate.spec.template.spec.containers[0].command[2], "-mmin +${21 * 1440} ") &&
        contains([for v in yamldecode(d).spec.jobTemplate.spec.template.spec.volumes : try(v.persistentVolumeClaim.claimName, "")], "backup-vault"),
      false)
    ])
    error_message = "CronJob vault-snapshot: settings' schedule, the server image, role vault-snapshot, claim backup-vault, snapshots older than 21 days deleted"
  }
  # Terraform initialises and unseals through the members' addresses, with the CA from the cluster.
  assert {
    condition = (
      jsonencode(ffe_vault_init.this[0].member_addresses) == jsonencode(["https://10.0.4.10:8200", "https://10.0.4.11:8200", "https://10.0.4.12:8200"]) &&
      ffe_vault_init.this[0].ca_secret.name == "vault-ca" && ffe_vault_init.this[0].ca_secret.namespace == "vault" && ffe_vault_init.this[0].ca_secret.key == "ca.crt" &&
      ffe_vault_init.this[0].secret_shares == yamldecode(file("../../modules/vault/vault-settings.yaml")).shamir.secret_shares &&
      ffe_vault_init.this[0].secret_threshold == yamldecode(file("../../modules/vault/vault-settings.yaml")).shamir.secret_threshold &&
      endswith(ffe_vault_init.this[0].keys_file, "/vault-init.pending.json")
    )
    error_message = "ffe_vault_init: the members in order, CA Secret vault/vault-ca, Shamir numbers of vault-settings.yaml, keys_file vault-init.pending.json"
  }
  assert {
    condition = (
      anytrue([for r in ffe_vault_config.this[0].kubernetes_roles : r.name == "ffe-backend" && jsonencode(r.service_account_names) == jsonencode(["ffe-backend"]) && jsonencode(r.namespaces) == jsonencode(["ffe"]) && jsonencode(r.policies) == jsonencode(["ffe-backend"])]) &&
      anytrue([for r in ffe_vault_config.this[0].kubernetes_roles : r.name == "vault-snapshot" && jsonencode(r.service_account_names) == jsonencode(["vault-snapshot"]) && jsonencode(r.namespaces) == jsonencode(["vault"]) && jsonencode(r.policies) == jsonencode(["vault-snapshot"])]) &&
      strcontains(ffe_vault_config.this[0].policies["ffe-backend"], "path \"secret/data/production/app\"") &&
      strcontains(ffe_vault_config.this[0].policies["vault-snapshot"], "path \"sys/storage/raft/snapshot\"")
    )
    error_message = "roles ffe-backend (ffe/ffe-backend reads secret/data/production/app) and vault-snapshot (vault/vault-snapshot reads the Raft snapshot)"
  }
  assert {
    condition     = output.vault_address == "https://vault-active.vault.svc:8200" && jsonencode(output.vault_member_addresses) == jsonencode(["https://10.0.4.10:8200", "https://10.0.4.11:8200", "https://10.0.4.12:8200"])
    error_message = "outputs vault_address / vault_member_addresses"
  }
  assert {
    condition     = contains(keys(ffe_manifests.monitoring[0].manifests), "servicemonitor-vault.yaml") && contains(keys(ffe_manifests.monitoring[0].manifests), "prometheusrule-vault.yaml")
    error_message = "with Vault deployed the monitoring bundle carries its ServiceMonitor and rules"
  }
}

# The same values on OpenBao's chart: same names, OpenBao's image, CLI and variables.
run "openbao_three_members" {
  command = plan

  variables {
    vault_distribution = "openbao"
    vault_version      = "1.17" # ignored with OpenBao: no warning
  }

  assert {
    condition = (
      yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.chart == "openbao" &&
      yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.version == "0.29.2" &&
      yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.repo == "https://openbao.github.io/openbao-helm"
    )
    error_message = "HelmChart openbao 0.29.2 from openbao.github.io/openbao-helm expected"
  }
  assert {
    condition = (
      yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).fullnameOverride == "vault" &&
      yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.image == { registry = "quay.io", repository = "openbao/openbao", tag = "2.6.2" } &&
      yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.ha.replicas == 3 &&
      strcontains(yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.ha.raft.config, "path                   = \"/openbao/data\"") &&
      yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.extraEnvironmentVars == { BAO_CACERT = "/openbao/userconfig/vault-server-tls/ca.crt" }
    )
    error_message = "OpenBao: objects named vault-*, image quay.io/openbao/openbao:2.6.2, data under /openbao, BAO_CACERT"
  }
  assert {
    condition = anytrue([
      for d in split("---\n", ffe_manifests.vault[0].manifests["vault-snapshots.yaml"]) :
      try(
        yamldecode(d).kind == "CronJob" &&
        yamldecode(d).spec.jobTemplate.spec.template.spec.containers[0].image == "quay.io/openbao/openbao:2.6.2" &&
        strcontains(yamldecode(d).spec.jobTemplate.spec.template.spec.containers[0].command[2], "bao operator raft snapshot save") &&
        [for e in yamldecode(d).spec.jobTemplate.spec.template.spec.containers[0].env : e.name] == ["BAO_ADDR", "BAO_CACERT"],
      false)
    ])
    error_message = "the snapshot CronJob runs OpenBao's image and `bao` with BAO_* variables"
  }
  assert {
    condition     = length(ffe_vault_init.this[0].member_addresses) == 3
    error_message = "ffe_vault_init is the same for OpenBao"
  }
  # OpenBao refuses API-created audit devices: the configuration declares the one ffe_vault_config expects.
  assert {
    condition     = strcontains(yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.ha.raft.config, "audit \"file\" \"file\" {") && strcontains(yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.ha.raft.config, "file_path = \"${ffe_vault_config.this[0].audit_file_path}\"")
    error_message = "OpenBao's configuration must declare audit \"file\" \"file\" with ffe_vault_config's audit_file_path"
  }
}

# An exact release is used as given.
run "vault_version_exact_release" {
  command = plan

  variables {
    vault_version = "1.21.1"
  }

  assert {
    condition     = yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.image.tag == "1.21.1" && yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).injector.agentImage.tag == "1.21.1"
    error_message = "vault_version X.Y.Z must be the server and agent image tag"
  }
}

# ---- one member without HA ---------------------------------------------------------------------

run "ha_off_one_member" {
  command = plan

  variables {
    vault_ha_enabled  = false
    vault_cluster_ips = ["10.0.4.10"]
  }

  assert {
    condition = (
      yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.ha.replicas == 1 &&
      length(regexall("retry_join \\{", yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.ha.raft.config)) == 1 &&
      yamldecode(yamldecode(ffe_manifests.vault[0].manifests["vault-chart.yaml"]).spec.valuesContent).server.ha.disruptionBudget.enabled == false
    )
    error_message = "vault_ha_enabled = false: one Raft member, no disruption budget"
  }
  assert {
    condition     = length([for d in split("---\n", ffe_manifests.vault[0].manifests["vault-services.yaml"]) : d if try(yamldecode(d).spec.type == "LoadBalancer", false)]) == 1
    error_message = "one LoadBalancer Service for the single member"
  }
  assert {
    condition     = jsonencode(ffe_vault_init.this[0].member_addresses) == jsonencode(["https://10.0.4.10:8200"]) && jsonencode(output.vault_member_addresses) == jsonencode(["https://10.0.4.10:8200"])
    error_message = "one member address"
  }
}

# ---- no Vault layer ----------------------------------------------------------------------------

run "no_vault_without_addresses" {
  command = plan

  variables {
    vault_cluster_ips = []
  }

  assert {
    condition     = length(module.vault) == 0 && length(ffe_manifests.vault) == 0 && length(ffe_vault_init.this) == 0 && length(ffe_vault_config.this) == 0
    error_message = "vault_cluster_ips = []: nothing of the Vault layer may be planned"
  }
  assert {
    condition     = output.vault_address == null && output.vault_member_addresses == null && output.vault_unseal_keys == null && output.vault_root_token == null
    error_message = "the Vault outputs must be null without the Vault layer"
  }
  assert {
    condition     = length(setintersection(keys(ffe_manifests.monitoring[0].manifests), ["servicemonitor-vault.yaml", "prometheusrule-vault.yaml", "dashboard-vault.yaml"])) == 0
    error_message = "no Vault monitors, rules or dashboard without Vault"
  }
}

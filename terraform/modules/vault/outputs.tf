output "manifests" {
  description = "File name => YAML for the vault bundle: the chart's HelmChart, the cert-manager objects, the per-member LoadBalancer Services and the metrics Service, and the snapshot CronJob with its claim and ServiceAccount."
  value = {
    "vault-chart.yaml"     = yamlencode(local.helm_chart)
    "vault-tls.yaml"       = join("---\n", [for d in local.tls_docs : yamlencode(d)])
    "vault-services.yaml"  = join("---\n", [for d in concat(local.member_services, [local.metrics_service]) : yamlencode(d)])
    "vault-snapshots.yaml" = join("---\n", [for d in local.snapshot_docs : yamlencode(d)])
  }
}

output "chart_values" {
  description = "The chart values as rendered into the HelmChart (for tests and for readers of the plan)."
  value       = local.chart_values
}

output "server_config" {
  description = "The server configuration (HCL) the chart writes into its ConfigMap."
  value       = local.server_hcl
}

output "member_addresses" {
  description = "https://<member_ips[i]>:8200, in member order (vault-0 first): the per-member LoadBalancer addresses ffe_vault_init unseals through."
  value       = local.member_addresses
}

output "member_pods" {
  description = "The members' namespace and pod names, in member_addresses order (the StatefulSet's <release>-<i>): what `ffe-ha drill vault-leader` deletes."
  value       = { namespace = var.namespace, names = local.member_names }
}

output "active_address" {
  description = "In-cluster address that reaches the active member only (the chart's `<release>-active` Service, selected by the label the active member sets through service_registration \"kubernetes\"). For clients: the `vault` Service also routes to sealed members (the charts publish not-ready addresses, and sealed members count as ready here so they can be unsealed), whose answer is 503."
  value       = "https://${local.active_service}.${local.svc}:8200"
}

output "wait_for" {
  description = "Conditions to wait for after the bundle is written: the Certificates whose Secrets ffe_vault_init (CA) and the members (server TLS) need, and the agent injector (its webhook ignores failures: a pod created before it runs would start without its secrets)."
  value = concat([for name in [local.ca_secret, local.server_tls_secret] : {
    kind      = "certificate.cert-manager.io"
    name      = name
    namespace = var.namespace
    condition = "Ready"
    }], [{
    kind      = "deployment.apps"
    name      = "${local.release}-agent-injector" # both charts: <fullname>-agent-injector
    namespace = var.namespace
    condition = "Available"
  }])
}

output "ca_secret" {
  description = "Secret holding the CA (key ca.crt) in the release namespace, as ffe_vault_init's ca_secret takes it."
  value       = { namespace = var.namespace, name = local.ca_secret, key = "ca.crt" }
}

output "shamir" {
  description = "Unseal key shares and threshold from vault-settings.yaml, for ffe_vault_init."
  value       = { secret_shares = local.settings.shamir.secret_shares, secret_threshold = local.settings.shamir.secret_threshold }
}

output "snapshot" {
  description = "The snapshot CronJob's identity (Kubernetes auth role, ServiceAccount, namespace) and the Vault policy it needs."
  value = {
    role            = local.snapshot_name
    service_account = local.snapshot_name
    namespace       = var.namespace
    policy          = "path \"sys/storage/raft/snapshot\" {\n  capabilities = [\"read\"]\n}\n"
    cronjob         = local.snapshot_name
    schedule        = local.settings.snapshots.schedule
    claim           = var.snapshot_claim.name
  }
}

output "audit_file_path" {
  description = "file_path of the audit device \"file\" at file/ (stdout: the pod log); OpenBao's server configuration declares it, ffe_vault_config must use the same."
  value       = local.audit_file_path
}

output "image" {
  description = "The server image (also the agent sidecars' and the snapshot CronJob's)."
  value       = local.image
}

# Operator access (docs/security.md, "RBAC"): two Groups, never a ServiceAccount.
#   - ClusterRole ffe-readonly (get/list/watch; never Secrets), bound to var.readonly_group.
#   - ClusterRoleBinding ffe-break-glass: cluster-admin for var.break_glass_group (null = none).
# People get into a group with a short-lived client certificate whose Organization (O=) is the
# group, issued through the CSR API (signer kubernetes.io/kube-apiserver-client) and approved by an
# administrator. A ServiceAccount token can never carry these groups.
#
# Why ffe-readonly lists its groups and resources instead of aggregating the built-in `view`:
# aggregation takes the rules of every ClusterRole labelled aggregate-to-view, from any chart now
# or after an upgrade, so a chart could widen the operators' role without this module changing;
# and `view` leaves out what operators read most on this platform: nodes, persistent volumes,
# storage classes, CRDs, HelmCharts, webhooks. Core ("") resources are named one by one, because
# "*" there includes Secrets; every other group is read whole ("*"), none of them holds a Secret.
# ffe-validate (`make test-manifests`) fails when a group the plan serves is missing here.

variable "readonly_group" {
  description = "Group (client certificate O=) bound to the read-only ClusterRole ffe-readonly."
  type        = string
  default     = "ffe:readonly"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9:._-]*$", var.readonly_group)) && !startswith(var.readonly_group, "system:")
    error_message = "readonly_group: lowercase letters, digits, ':', '.', '_', '-'; not a system: group (those belong to Kubernetes)."
  }
}

variable "break_glass_group" {
  description = "Group (client certificate O=) bound to cluster-admin by ClusterRoleBinding ffe-break-glass; null = no break-glass binding."
  type        = string
  default     = "ffe:break-glass"

  validation {
    condition     = var.break_glass_group == null || (can(regex("^[a-z0-9][a-z0-9:._-]*$", coalesce(var.break_glass_group, "-"))) && !startswith(coalesce(var.break_glass_group, "-"), "system:"))
    error_message = "break_glass_group: null, or lowercase letters, digits, ':', '.', '_', '-'; not a system: group (those belong to Kubernetes)."
  }
}

locals {
  rbac_labels = { "app.kubernetes.io/part-of" = "ffe-ha", "app.kubernetes.io/component" = "operator-access" }

  # Core resources an operator reads. Not: secrets, and no subresource that connects into a
  # workload or hands out a credential (pods/exec|attach|portforward|proxy, nodes/proxy,
  # services/proxy, serviceaccounts/token).
  readonly_core = [
    "componentstatuses", "configmaps", "endpoints", "events", "limitranges", "namespaces",
    "namespaces/status", "nodes", "nodes/status", "persistentvolumeclaims",
    "persistentvolumeclaims/status", "persistentvolumes", "persistentvolumes/status", "pods",
    "pods/log", "pods/status", "podtemplates", "replicationcontrollers",
    "replicationcontrollers/scale", "replicationcontrollers/status", "resourcequotas",
    "resourcequotas/status", "serviceaccounts", "services", "services/status",
  ]

  # Every other API group the platform serves: Kubernetes' own (authentication and authorization
  # only create reviews), k3s's, metrics-server's, and each group a delivered CRD defines.
  readonly_groups = [
    "admissionregistration.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io", "apps",
    "autoscaling", "batch", "certificates.k8s.io", "coordination.k8s.io", "discovery.k8s.io",
    "events.k8s.io", "flowcontrol.apiserver.k8s.io", "internal.apiserver.k8s.io",
    "networking.k8s.io", "node.k8s.io", "policy", "rbac.authorization.k8s.io", "resource.k8s.io",
    "scheduling.k8s.io", "storage.k8s.io", "storagemigration.k8s.io",
    "helm.cattle.io", "k3s.cattle.io", "metrics.k8s.io",
    "crd.projectcalico.org", "operator.tigera.io", "policy.networking.k8s.io",
    "gateway.networking.k8s.io", "gateway.nginx.org", "cert-manager.io", "acme.cert-manager.io",
    "monitoring.coreos.com", "pgv2.percona.com", "upstream.pgv2.percona.com",
    "snapshot.storage.k8s.io", "rollout-operator.grafana.com",
    "extensions.istio.io", "networking.istio.io", "security.istio.io", "telemetry.istio.io",
  ]

  readonly_docs = [
    {
      apiVersion = "rbac.authorization.k8s.io/v1"
      kind       = "ClusterRole"
      metadata   = { name = "ffe-readonly", labels = local.rbac_labels }
      rules = [
        { apiGroups = [""], resources = local.readonly_core, verbs = ["get", "list", "watch"] },
        { apiGroups = local.readonly_groups, resources = ["*"], verbs = ["get", "list", "watch"] },
      ]
    },
    {
      apiVersion = "rbac.authorization.k8s.io/v1"
      kind       = "ClusterRoleBinding"
      metadata   = { name = "ffe-readonly", labels = local.rbac_labels }
      roleRef    = { apiGroup = "rbac.authorization.k8s.io", kind = "ClusterRole", name = "ffe-readonly" }
      subjects   = [{ apiGroup = "rbac.authorization.k8s.io", kind = "Group", name = var.readonly_group }]
    },
  ]

  # Its own file: deleting the binding by hand (cutting off every break-glass certificate at once)
  # lasts until this file changes, not until any other RBAC or NetworkPolicy edit.
  break_glass_docs = var.break_glass_group == null ? [] : [
    {
      apiVersion = "rbac.authorization.k8s.io/v1"
      kind       = "ClusterRoleBinding"
      metadata = {
        name   = "ffe-break-glass"
        labels = local.rbac_labels
        annotations = {
          "ffe-ha/purpose" = "emergency cluster-admin for people holding a short-lived client certificate with O=${var.break_glass_group} (docs/security.md, RBAC)"
        }
      }
      roleRef  = { apiGroup = "rbac.authorization.k8s.io", kind = "ClusterRole", name = "cluster-admin" }
      subjects = [{ apiGroup = "rbac.authorization.k8s.io", kind = "Group", name = var.break_glass_group }]
    },
  ]

  rbac_manifests = merge(
    { "20-rbac-readonly.yaml" = join("---\n", [for d in local.readonly_docs : yamlencode(d)]) },
    var.break_glass_group == null ? {} : { "21-rbac-break-glass.yaml" = join("---\n", [for d in local.break_glass_docs : yamlencode(d)]) },
  )
}

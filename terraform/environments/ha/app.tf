# The FFE backend (issue 4, optional): with deploy_app = true, one `terraform apply` also installs
# the app. The chart is packaged from this repository (`make app-chart` writes charts/ffe-backend.tgz,
# git-ignored; Terraform cannot run `helm package`) and handed to k3s's helm-controller as a
# HelmChart with spec.chartContent, so nothing is pulled from a chart repository.
#
# The Helm CLI path of the seed (Day 4, `helm install ffe helm/ffe-backend ...`) keeps working;
# use ONE of the two for a cluster: helm-controller re-applies its HelmChart and would undo manual
# `helm upgrade`s of the same release. Runbook: docs/app.md.

variable "deploy_app" {
  description = "Install the ffe-backend chart (release \"ffe\" in namespace \"ffe\") through k3s's helm-controller. Needs `make app-chart` first."
  type        = bool
  default     = false

  validation {
    condition     = !var.deploy_app || fileexists("${path.module}/charts/ffe-backend.tgz")
    error_message = "deploy_app = true but charts/ffe-backend.tgz is missing in the environment directory. Fix: run `make app-chart` in the repository root (packages helm/ffe-backend), then plan again."
  }
}

variable "app_values_file" {
  description = "Values file for the app release, relative to the repository root or absolute. null = helm/ffe-backend/values-production.yaml."
  type        = string
  default     = null

}

variable "app_set" {
  description = "Helm --set overrides for the app release, applied after app_values_file, e.g. { replicaCount = 5, \"image.tag\" = \"1.4.2\" }. Keep numbers unquoted."
  type        = any
  default     = {}

  validation {
    condition     = can(keys(var.app_set))
    error_message = "app_set must be a map of Helm value paths to values, e.g. { replicaCount = 5 }."
  }
}

locals {
  repo_root       = "${path.module}/../../.."
  app_chart_path  = "${path.module}/charts/ffe-backend.tgz"
  app_values_path = var.app_values_file == null ? "${local.repo_root}/helm/ffe-backend/values-production.yaml" : (startswith(var.app_values_file, "/") ? var.app_values_file : "${local.repo_root}/${var.app_values_file}")

  # The HelmChart object; metadata.name is the Helm release name ("ffe", as in the seed), so the
  # Deployment is ffe-backend in namespace ffe either way.
  app_helmchart = {
    apiVersion = "helm.cattle.io/v1"
    kind       = "HelmChart"
    metadata = {
      name      = "ffe"
      namespace = "kube-system"
      labels    = { "app.kubernetes.io/part-of" = "ffe-ha", "app.kubernetes.io/component" = "app" }
    }
    spec = {
      # spec.chart names the chart (offline validation finds its values.schema.json);
      # chartContent is what helm-controller installs.
      chart           = "ffe-backend"
      chartContent    = var.deploy_app ? filebase64(local.app_chart_path) : ""
      targetNamespace = "ffe" # created by modules/namespaces (PSA restricted, edge routes allowed)
      createNamespace = false
      valuesContent   = file(local.app_values_path)
      set             = var.app_set
      timeout         = "600s"
      # A failed upgrade stays failed (helm rollback, docs/app.md) instead of uninstall + reinstall,
      # which would take every replica down.
      failurePolicy = "abort"
    }
  }

  app_bundle = var.deploy_app ? { "ffe-app-helmchart.yaml" = yamlencode(local.app_helmchart) } : {}
}

# Enable when the provider ships ffe_manifests (issue 3); until then `terraform validate` would fail
# on an unknown resource type. Same servers list as ffe_k3s_cluster.this; written after the platform
# so the namespace, Gateway, Vault and PgBouncer exist first.
# resource "ffe_manifests" "app" {
#   count = var.deploy_app ? 1 : 0
#
#   bundle    = "app"
#   servers   = [for h in ffe_host.master : { name = h.name, address = h.address }]
#   manifests = local.app_bundle
#
#   lifecycle {
#     precondition {
#       condition     = fileexists(local.app_chart_path)
#       error_message = "charts/ffe-backend.tgz is missing: run `make app-chart` in the repository root."
#     }
#   }
# }

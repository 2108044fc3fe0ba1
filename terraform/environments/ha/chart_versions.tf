# Helm charts (and images) of the platform bundles: chart name -> exact version, as k3s's
# helm-controller needs it. The version NUMBERS come from pins.tf (the one place for version
# facts, overridable with `component_versions`); this file only maps them to each chart's own
# version format and repository. `chart_version_overrides` wins over both, per chart name.

variable "chart_version_overrides" {
  description = "Exact chart versions that override the pinned ones, by chart name, e.g. { \"cert-manager\" = \"v1.21.2\" }. Prefer component_versions; use this only when a chart's version differs from its app version."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition     = length(setsubtract(keys(var.chart_version_overrides), ["tigera-operator", "cert-manager", "nginx-gateway-fabric", "csi-driver-nfs"])) == 0
    error_message = "chart_version_overrides has unknown chart names ${jsonencode(setsubtract(keys(var.chart_version_overrides), ["tigera-operator", "cert-manager", "nginx-gateway-fabric", "csi-driver-nfs"]))}. Known charts: tigera-operator, cert-manager, nginx-gateway-fabric, csi-driver-nfs."
  }

  validation {
    condition     = alltrue([for v in values(var.chart_version_overrides) : can(regex("^v?[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.-]+)?$", v))])
    error_message = "chart_version_overrides values must be exact chart versions such as \"v1.21.2\" or \"2.6.8\" (no ranges: the platform must not change under you)."
  }
}

locals {
  chart_versions = merge({
    # tigera-operator chart is versioned like Calico (v3.32.0 ships operator v1.43.0)
    "tigera-operator" = local.component_versions.calico
    # jetstack charts keep the leading "v"
    "cert-manager" = local.component_versions.cert_manager
    # NGF and csi-driver-nfs chart versions have no leading "v"
    "nginx-gateway-fabric" = trimprefix(local.component_versions.nginx_gateway_fabric, "v")
    "csi-driver-nfs"       = trimprefix(local.component_versions.csi_driver_nfs, "v")
  }, var.chart_version_overrides)

  chart_repos = {
    "tigera-operator"      = "https://docs.tigera.io/calico/charts"
    "cert-manager"         = "https://charts.jetstack.io"
    "nginx-gateway-fabric" = "oci://ghcr.io/nginx/charts/nginx-gateway-fabric" # OCI: chart = this URL
    "csi-driver-nfs"       = "https://raw.githubusercontent.com/kubernetes-csi/csi-driver-nfs/master/charts"
  }

  # Images rendered directly (no chart).
  platform_images = {
    kube_vip = "ghcr.io/kube-vip/kube-vip:${local.component_versions.kube_vip}"
    # installs the Gateway API CRDs (NGF does not ship them); kubectl matches the k8s minor
    kubectl = "registry.k8s.io/kubectl:${local.kubectl_version}"
  }
  gateway_api_crds_url = "https://github.com/kubernetes-sigs/gateway-api/releases/download/${local.component_versions.gateway_api}/standard-install.yaml"

  # registry.k8s.io/kubectl has no "latest patch" tag: channel vX.Y maps to vX.Y.0.
  kubectl_version = can(regex("^v[0-9]+\\.[0-9]+$", local.kubernetes_version)) ? "${local.kubernetes_version}.0" : split("+", local.kubernetes_version)[0]
}

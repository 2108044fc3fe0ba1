# Helm charts (and images) of the platform bundles: chart name -> exact version, as k3s's
# helm-controller needs it. The version NUMBERS come from pins.tf (the one place for version
# facts; override them there with `component_versions`); this file only maps them to each chart's
# own version format and repository. Every (chart, version, repository) here is checked against
# upstream/charts/<chart>/ by `make test-manifests`.

locals {
  chart_versions = {
    # Calico's charts are versioned like Calico, with the leading "v"
    "crd.projectcalico.org.v1" = local.component_versions.calico
    "tigera-operator"          = local.component_versions.calico
    # jetstack charts keep the leading "v"
    "cert-manager" = local.component_versions.cert_manager
    # NGF and csi-driver-nfs chart versions have no leading "v"
    "nginx-gateway-fabric" = trimprefix(local.component_versions.nginx_gateway_fabric, "v")
    "csi-driver-nfs"       = trimprefix(local.component_versions.csi_driver_nfs, "v")
    # Percona's chart versions have no leading "v"
    "pg-operator" = trimprefix(local.component_versions.pg_operator, "v")
    # HashiCorp's and OpenBao's chart versions have no leading "v"
    "vault"   = trimprefix(local.component_versions.vault_helm, "v")
    "openbao" = trimprefix(local.component_versions.openbao_helm, "v")
    # Istio's four charts are released together, versioned like Istio, without a "v"
    "base"    = trimprefix(local.component_versions.istio, "v")
    "istiod"  = trimprefix(local.component_versions.istio, "v")
    "cni"     = trimprefix(local.component_versions.istio, "v")
    "ztunnel" = trimprefix(local.component_versions.istio, "v")
  }

  chart_repos = {
    "tigera-operator"      = "https://docs.tigera.io/calico/charts"
    "cert-manager"         = "https://charts.jetstack.io"
    "nginx-gateway-fabric" = "oci://ghcr.io/nginx/charts/nginx-gateway-fabric" # OCI: chart = this URL
    "pg-operator"          = "https://percona.github.io/percona-helm-charts/"
    "vault"                = "https://helm.releases.hashicorp.com"
    "openbao"              = "https://openbao.github.io/openbao-helm"
    "istio"                = "https://istio-release.storage.googleapis.com/charts" # base, istiod, cni, ztunnel
    # Archive URL: chart = this URL (k3s accepts an https .tgz as spec.chart). It is the chart
    # archive committed under the release TAG, so the bytes cannot change. Not the repo's
    # charts/index.yaml: even the index at a tag links its archives on a mutable release branch.
    "csi-driver-nfs" = "https://raw.githubusercontent.com/kubernetes-csi/csi-driver-nfs/${local.csi_nfs_tag}/charts/${local.csi_nfs_tag}/csi-driver-nfs-${local.chart_versions["csi-driver-nfs"]}.tgz"
  }

  # csi-driver-nfs release tags (and chart directories) carry the leading "v"
  csi_nfs_tag = "v${trimprefix(local.component_versions.csi_driver_nfs, "v")}"

  # Images rendered directly (no chart).
  platform_images = {
    kube_vip = "ghcr.io/kube-vip/kube-vip:${local.component_versions.kube_vip}"
  }
}

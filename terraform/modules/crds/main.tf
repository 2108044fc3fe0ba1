# CustomResourceDefinitions the platform's add-ons need before they are installed, delivered as the
# first bundle (`crds`), which the environment applies and waits for before every other bundle:
#   - Gateway API (standard channel) at the version NGINX Gateway Fabric pins, as the upstream CRD
#     files vendored under upstream/crds/gateway-api/<version>/. cert-manager (Gateway API support
#     on) exits at start while they are missing, and NGF watches them, so they must exist first.
#   - Calico's CRDs (operator.tigera.io Installation & co., crd.projectcalico.org FelixConfiguration
#     & co.) through upstream's `crd.projectcalico.org.v1` chart: since Calico v3.32.0 the
#     tigera-operator chart ships none, and Helm refuses to install a chart whose resources have no
#     CRD yet. Upstream's Helm guide installs this chart first, then tigera-operator.
# `make test-manifests` checks both against upstream (crates/ffe-validate, conformance).

terraform {
  required_version = ">= 1.9.0"
}

variable "gateway_api_version" {
  description = "Gateway API release whose standard CRDs are delivered (a directory under upstream/crds/gateway-api/)."
  type        = string

  validation {
    condition     = length(fileset("${path.module}/../../../upstream/crds/gateway-api/${var.gateway_api_version}", "*.yaml")) > 0
    error_message = "gateway_api_version = \"${var.gateway_api_version}\" is not vendored: upstream/crds/gateway-api/${var.gateway_api_version}/ has no CRD files. Use a vendored version (see upstream/README.md)."
  }
}

variable "calico_version" {
  description = "Calico release (= version of the crd.projectcalico.org.v1 and tigera-operator charts)."
  type        = string
}

variable "calico_chart_repo" {
  description = "Helm repository publishing Calico's charts."
  type        = string
}

locals {
  labels          = { "app.kubernetes.io/part-of" = "ffe-ha" }
  gateway_api_dir = "${path.module}/../../../upstream/crds/gateway-api/${var.gateway_api_version}"
  # k3s names a file's Addon after the part before its first '.': upstream's file names
  # (gateway.networking.k8s.io_<kind>.yaml) would all share one, so each gets its own stem.
  gateway_api_files = {
    for f in fileset(local.gateway_api_dir, "*.yaml") :
    "gateway-api-${replace(trimsuffix(trimprefix(f, "gateway.networking.k8s.io_"), ".yaml"), "_", "-")}.yaml" => file("${local.gateway_api_dir}/${f}")
  }

  calico_crds = {
    apiVersion = "helm.cattle.io/v1"
    kind       = "HelmChart"
    metadata   = { name = "calico-crds", namespace = "kube-system", labels = local.labels }
    spec = {
      chart           = "crd.projectcalico.org.v1"
      repo            = var.calico_chart_repo
      version         = var.calico_version
      targetNamespace = "kube-system"
    }
  }
}

output "manifests" {
  description = "File name => YAML: the Gateway API CRD files unchanged, and the Calico CRD chart."
  value       = merge(local.gateway_api_files, { "calico-crds.yaml" = yamlencode(local.calico_crds) })
}

output "established" {
  description = "CRDs to wait for (condition Established) before the other bundles are applied."
  value = concat(
    [for k in ["gatewayclasses", "gateways", "httproutes", "referencegrants"] : "${k}.gateway.networking.k8s.io"],
    ["installations.operator.tigera.io", "felixconfigurations.crd.projectcalico.org"],
  )
}

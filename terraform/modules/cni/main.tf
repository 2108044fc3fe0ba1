# Calico CNI through the tigera-operator Helm chart, installed by k3s's helm-controller.
# Matches the k3s server flags written by the provider: flannel-backend: none,
# disable-network-policy: true (Calico enforces NetworkPolicy), cluster-cidr = pod_cidr.
# `bootstrap: true` lets the chart install before any CNI exists (host network, tolerates taints).

terraform {
  required_version = ">= 1.9.0"
}

variable "pod_cidr" {
  description = "k3s cluster-cidr; becomes Calico's only IP pool."
  type        = string
}

variable "chart_version" {
  description = "tigera-operator chart version (= Calico version, e.g. v3.32.0)."
  type        = string
}

variable "chart_repo" {
  description = "Helm repository of the tigera-operator chart."
  type        = string
}

variable "encapsulation" {
  description = "Pod traffic between nodes: VXLAN works on any routed or switched node network without BGP."
  type        = string
  default     = "VXLAN"

  validation {
    condition     = contains(["VXLAN", "VXLANCrossSubnet", "IPIP", "IPIPCrossSubnet", "None"], var.encapsulation)
    error_message = "encapsulation must be one of VXLAN, VXLANCrossSubnet, IPIP, IPIPCrossSubnet, None."
  }
}

locals {
  values = {
    installation = {
      enabled = true
      cni     = { type = "Calico" }
      calicoNetwork = {
        bgp                   = var.encapsulation == "VXLAN" || var.encapsulation == "VXLANCrossSubnet" ? "Disabled" : "Enabled"
        containerIPForwarding = "Enabled"
        ipPools = [{
          name          = "default-ipv4-ippool"
          cidr          = var.pod_cidr
          blockSize     = 26
          encapsulation = var.encapsulation
          natOutgoing   = "Enabled"
          nodeSelector  = "all()"
        }]
      }
    }
    # The Calico API server (projectcalico.org/v3 via kubectl) and the flow UI are not needed.
    apiServer = { enabled = false }
    goldmane  = { enabled = false }
    whisker   = { enabled = false }
  }

  helmchart = {
    apiVersion = "helm.cattle.io/v1"
    kind       = "HelmChart"
    metadata   = { name = "tigera-operator", namespace = "kube-system", labels = { "app.kubernetes.io/part-of" = "ffe-ha" } }
    spec = {
      chart           = "tigera-operator"
      repo            = var.chart_repo
      version         = var.chart_version
      targetNamespace = "tigera-operator"
      createNamespace = true
      bootstrap       = true
      valuesContent   = yamlencode(local.values)
    }
  }
}

output "manifests" {
  description = "File name => YAML."
  value       = { "calico.yaml" = yamlencode(local.helmchart) }
}

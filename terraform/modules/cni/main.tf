# Calico CNI through the tigera-operator Helm chart, installed by k3s's helm-controller.
# Matches the k3s server flags written by the provider: flannel-backend: none,
# disable-network-policy: true (Calico enforces NetworkPolicy), cluster-cidr = pod_cidr.
# `bootstrap: true` lets the chart install before any CNI exists (host network, tolerates taints).
#
# WireGuard: the Installation API (operator.tigera.io) has no WireGuard field; Calico turns it on
# in the cluster-wide FelixConfiguration `default` (`wireguardEnabled`). The tigera-operator chart
# renders that object from its `defaultFelixConfiguration` values (apiVersion
# crd.projectcalico.org/v1, or projectcalico.org/v3 when those CRDs exist), so it is set here, in
# the same HelmChart, and Helm owns it from the first install. Felix then creates the
# `wireguard.cali` interface on every node and encrypts pod traffic between nodes (UDP 51820);
# the operator lowers the pod MTU for the WireGuard overhead itself.

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

variable "wireguard_enabled" {
  description = "Encrypt pod-to-pod traffic between nodes with WireGuard (FelixConfiguration wireguardEnabled). Nodes need the wireguard kernel module and UDP 51820 open between them."
  type        = bool
  default     = true
  nullable    = false
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
    # Rendered by the chart as FelixConfiguration `default` (see the header). Always rendered, with
    # an explicit true/false, so switching WireGuard off is an ordinary chart upgrade.
    defaultFelixConfiguration = {
      enabled          = true
      wireguardEnabled = var.wireguard_enabled
    }
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

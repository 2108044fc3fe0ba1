# Optional service mesh: Istio in ambient mode (no sidecars), installed by k3s's helm-controller
# from Istio's four charts, in the order and with the profile Istio's Helm install guide gives:
# base (CRDs, default validator), istiod (profile ambient), cni (profile ambient: the node agent that
# redirects enrolled pods' traffic, chained after Calico), ztunnel (the per-node L4 proxy).
# Pure rendering: variables in, manifests out. The environment writes `crd_manifests` (the base
# chart) as the `mesh-crds` bundle and waits for `crd_names`, then writes `manifests` (the other
# three charts, STRICT mutual TLS and the allowed callers of the app namespace) as `mesh`: istiod's
# README asks for base's CRDs first, and the policies are custom resources of those CRDs.
#
# What else the mesh needs lives where that thing is owned: the istio-system namespace (Pod Security
# privileged: ztunnel adds NET_ADMIN/SYS_ADMIN, istio-cni mounts host paths), the enrolment label
# and the NetworkPolicies for HBONE and probes (modules/namespaces). Calico's
# `workloadSourceSpoofing` stays Disabled: istio-cni's README still asks for `Any`, but since
# in-pod redirection (Istio 1.21, istio/istio fb9179422d2) nothing in the 1.30.3 charts sets the
# `cni.projectcalico.org/allowedSourcePrefixes` annotation it would serve; ztunnel sends from the
# pod's own address inside the pod's network namespace.

terraform {
  required_version = ">= 1.9.0"
}

variable "chart_versions" {
  description = "Chart versions by chart name (base, istiod, cni, ztunnel); all four are one Istio release."
  type        = map(string)

  validation {
    condition     = alltrue([for c in ["base", "istiod", "cni", "ztunnel"] : contains(keys(var.chart_versions), c)])
    error_message = "chart_versions must name the four Istio charts: base, istiod, cni, ztunnel."
  }
}

variable "chart_repo" {
  description = "Helm repository of Istio's charts."
  type        = string
}

variable "namespace" {
  description = "Namespace of the Istio control plane and node agents (created, Pod Security privileged, by modules/namespaces)."
  type        = string
}

variable "app_namespace" {
  description = "The application namespace: enrolled, and served over mutual TLS only (PeerAuthentication STRICT)."
  type        = string
}

variable "app_port" {
  description = "Container port of the FFE backend that the edge may reach (the NetworkPolicy allow, kept as an Istio policy once traffic is tunnelled)."
  type        = number
}

variable "edge_namespace" {
  description = "Namespace of the edge Gateway's data plane, which calls the app on app_port."
  type        = string
}

variable "monitoring_namespace" {
  description = "Namespace of Prometheus, which scrapes the app."
  type        = string
}

locals {
  labels = { "app.kubernetes.io/part-of" = "ffe-ha", "app.kubernetes.io/component" = "service-mesh" }

  # chart => values. Keys are the charts' own (Istio's charts keep their defaults under
  # `_internal_defaults_do_not_set`; users set them without the prefix). `profile` is read by each
  # chart's templates/zzz_profile.yaml from files/profile-<name>.yaml.
  chart_values = {
    base = {}
    istiod = {
      profile = "ambient"
      # Two replicas at least (the HorizontalPodAutoscaler the chart renders owns the count; the
      # chart's PodDisruptionBudget keeps one through a drain), preferably on different nodes
      # (a preference: with one schedulable node both still run).
      autoscaleMin = 2
      topologySpreadConstraints = [{
        maxSkew           = 1
        topologyKey       = "kubernetes.io/hostname"
        whenUnsatisfiable = "ScheduleAnyway"
        labelSelector     = { matchLabels = { app = "istiod" } }
      }]
    }
    cni = {
      profile = "ambient"
      # Calico (flannel-backend: none) writes its CNI config to the containerd defaults, so these are
      # the chart's defaults; `platform: k3s` would point at k3s's bundled-flannel directories
      # instead. Written out because a wrong pair silently leaves every pod unredirected.
      cniConfDir = "/etc/cni/net.d"
      cniBinDir  = "/opt/cni/bin"
    }
    ztunnel = {}
  }

  # Install order of Istio's guide; helm-controller installs each HelmChart on its own and retries
  # until what it needs is there.
  charts = ["base", "istiod", "cni", "ztunnel"]

  helmcharts = { for chart in local.charts : chart => {
    apiVersion = "helm.cattle.io/v1"
    kind       = "HelmChart"
    metadata   = { name = "istio-${chart}", namespace = "kube-system", labels = local.labels }
    spec = merge({
      chart           = chart
      repo            = var.chart_repo
      version         = var.chart_versions[chart]
      targetNamespace = var.namespace
      }, length(local.chart_values[chart]) == 0 ? {} : {
      valuesContent = yamlencode(local.chart_values[chart])
    })
  } }

  # The CRDs of the `mesh` bundle's policies (the base chart renders them as templates, with 13 more
  # that one `helm install` creates at the same time).
  crd_names = ["peerauthentications.security.istio.io", "authorizationpolicies.security.istio.io"]

  # Only mutual TLS into the app namespace: a plaintext connection to an app pod is refused.
  peer_authentication = {
    apiVersion = "security.istio.io/v1"
    kind       = "PeerAuthentication"
    metadata   = { name = "default", namespace = var.app_namespace, labels = local.labels }
    spec       = { mtls = { mode = "STRICT" } }
  }

  # Once callers are enrolled, their connections reach app pods tunnelled on HBONE port 15008, so
  # a NetworkPolicy can no longer see the app port. This ALLOW policy (enforced by ztunnel on the
  # peer identity the mTLS proves) keeps what the NetworkPolicies allowed: the app namespace itself,
  # the edge on app_port only, and Prometheus. Anything else is denied.
  authorization_policy = {
    apiVersion = "security.istio.io/v1"
    kind       = "AuthorizationPolicy"
    metadata   = { name = "allowed-callers", namespace = var.app_namespace, labels = local.labels }
    spec = {
      action = "ALLOW"
      rules = [
        { from = [{ source = { namespaces = [var.app_namespace] } }] },
        { from = [{ source = { namespaces = [var.edge_namespace] } }], to = [{ operation = { ports = [tostring(var.app_port)] } }] },
        { from = [{ source = { namespaces = [var.monitoring_namespace] } }] },
      ]
    }
  }
}

output "crd_manifests" {
  description = "File name => YAML for the `mesh-crds` bundle: the HelmChart of Istio's base chart (its CRDs and default validator)."
  value       = { "istio-base.yaml" = yamlencode(local.helmcharts["base"]) }
}

output "crd_names" {
  description = "CRDs (from the base chart) to wait for, condition Established, before the `mesh` bundle is written."
  value       = local.crd_names
}

output "manifests" {
  description = "File name => YAML for the `mesh` bundle: the istiod, cni and ztunnel HelmCharts (numbered in install order), STRICT mutual TLS and the allowed callers of the app namespace."
  value = merge(
    { for i, chart in slice(local.charts, 1, length(local.charts)) : format("%02d-istio-%s.yaml", (i + 1) * 10, chart) => yamlencode(local.helmcharts[chart]) },
    {
      "50-peer-authentication.yaml"  = yamlencode(local.peer_authentication)
      "50-authorization-policy.yaml" = yamlencode(local.authorization_policy)
    },
  )
}

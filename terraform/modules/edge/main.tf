# The edge: NGINX Gateway Fabric (Gateway API) at ingress_ip on 80/443, cert-manager issuing the
# certificate for domain_names with ACME HTTP-01 through the Gateway, and an HTTP->HTTPS redirect.
#
# The redirect is an HTTPRoute matching PathPrefix "/" on the `http` listener. cert-manager's
# HTTP-01 solver attaches its own HTTPRoute to that same listener with an Exact path match on
# /.well-known/acme-challenge/<token>; Gateway API gives Exact matches precedence over prefixes,
# so challenges are answered over plain HTTP while everything else is redirected.

terraform {
  required_version = ">= 1.9.0"
}

variable "ingress_ip" {
  description = "Fixed IP of the edge Service (announced by kube-vip); null = whatever the LB assigns."
  type        = string
  default     = null
}

variable "domain_names" {
  description = "Host names served over HTTPS; empty = HTTP listener only."
  type        = list(string)
}

variable "acme_enabled" {
  description = "Certificates from Let's Encrypt (HTTP-01); false = self-signed certificate."
  type        = bool
}

variable "acme_staging" {
  description = "Use the Let's Encrypt staging issuer for the Certificate."
  type        = bool
}

variable "acme_email" {
  description = "ACME account e-mail."
  type        = string
  default     = null
}

variable "namespace" {
  description = "Namespace of the Gateway, its data plane, the Certificate and the HTTP-01 solvers."
  type        = string
  default     = "ffe-edge"
}

variable "controller_namespace" {
  description = "Namespace of the NGINX Gateway Fabric control plane."
  type        = string
  default     = "nginx-gateway"
}

variable "cert_manager_namespace" {
  description = "Namespace of cert-manager."
  type        = string
  default     = "cert-manager"
}

variable "route_namespace_label" {
  description = "Namespaces with this label set to \"true\" may attach HTTPRoutes to the HTTPS listeners."
  type        = string
}

variable "chart_versions" {
  description = "Chart versions by chart name (cert-manager, nginx-gateway-fabric)."
  type        = map(string)
}

variable "chart_repos" {
  description = "Chart repositories by chart name (cert-manager, nginx-gateway-fabric)."
  type        = map(string)
}

variable "external_traffic_policy" {
  description = "externalTrafficPolicy of the edge Service. Cluster (default) works with this platform's kube-vip: it announces ingress_ip from a server node, which has no NGINX pod (servers are tainted) and forwards to one on a worker. Local would drop that traffic; it needs kube-vip on the workers with per-Service leader election (svc_election) first."
  type        = string
  default     = "Cluster"
  nullable    = false

  validation {
    condition     = contains(["Cluster", "Local"], var.external_traffic_policy)
    error_message = "external_traffic_policy must be \"Cluster\" or \"Local\"."
  }
}

variable "loadbalancer_annotation" {
  description = "Service annotation kube-vip reads for a fixed LoadBalancer IP."
  type        = string
  default     = "kube-vip.io/loadbalancerIPs"
}

locals {
  labels      = { "app.kubernetes.io/part-of" = "ffe-ha" }
  gateway     = "ffe-edge"
  tls_secret  = "ffe-edge-tls"
  https       = length(var.domain_names) > 0
  issuers     = { production = "https://acme-v02.api.letsencrypt.org/directory", staging = "https://acme-staging-v02.api.letsencrypt.org/directory" }
  cert_issuer = var.acme_enabled ? (var.acme_staging ? "letsencrypt-staging" : "letsencrypt-production") : "ffe-selfsigned"

  # The edge Service, identical in the chart's global NginxProxy and in the Gateway's own.
  edge_service = merge({ type = "LoadBalancer", externalTrafficPolicy = var.external_traffic_policy }, var.ingress_ip == null ? tomap({}) : tomap({ loadBalancerIP = var.ingress_ip }))

  # Two replicas of the controller and of the data plane, never both on one node: hard spread over
  # hostnames. nodeTaintsPolicy Honor: tainted nodes (servers with CriticalAddonsOnly, cordoned or
  # unreachable nodes) are not counted as empty domains, so with one schedulable worker left (or a
  # rollout surge on two) pods still schedule instead of hanging Pending; matchLabelKeys compares
  # only pods of the same revision.
  spread = {
    maxSkew            = 1
    topologyKey        = "kubernetes.io/hostname"
    whenUnsatisfiable  = "DoNotSchedule"
    nodeAffinityPolicy = "Honor"
    nodeTaintsPolicy   = "Honor"
    matchLabelKeys     = ["pod-template-hash"]
  }
  # control plane pods carry the chart's selector labels (release = HelmChart name)
  controller_spread = [merge(local.spread, { labelSelector = { matchLabels = { "app.kubernetes.io/name" = "nginx-gateway-fabric", "app.kubernetes.io/instance" = "nginx-gateway-fabric" } } })]
  # data plane pods of a Gateway carry gateway.networking.k8s.io/gateway-name (set by NGF's provisioner)
  dataplane_spread = [merge(local.spread, { labelSelector = { matchLabels = { "gateway.networking.k8s.io/gateway-name" = local.gateway } } })]

  cert_manager = {
    apiVersion = "helm.cattle.io/v1"
    kind       = "HelmChart"
    metadata   = { name = "cert-manager", namespace = "kube-system", labels = local.labels }
    spec = {
      chart           = "cert-manager"
      repo            = var.chart_repos["cert-manager"]
      version         = var.chart_versions["cert-manager"]
      targetNamespace = var.cert_manager_namespace
      valuesContent = yamlencode({
        crds                = { enabled = true, keep = true }
        replicaCount        = 2
        podDisruptionBudget = { enabled = true, minAvailable = 1 }
        webhook             = { replicaCount = 2, podDisruptionBudget = { enabled = true, minAvailable = 1 } }
        cainjector          = { replicaCount = 2, podDisruptionBudget = { enabled = true, minAvailable = 1 } }
        # Gateway API support (HTTP-01 through the Gateway). The controller exits at start while the
        # Gateway API CRDs are missing: the `crds` bundle delivers them before this one.
        config = {
          apiVersion = "controller.config.cert-manager.io/v1alpha1"
          kind       = "ControllerConfiguration"
          gatewayAPI = { enabled = true }
        }
      })
    }
  }

  acme_issuers = [for name, server in local.issuers : {
    apiVersion = "cert-manager.io/v1"
    kind       = "ClusterIssuer"
    metadata   = { name = "letsencrypt-${name}", labels = local.labels }
    spec = {
      acme = {
        email               = var.acme_email
        server              = server
        privateKeySecretRef = { name = "letsencrypt-${name}-account" }
        solvers = [{
          http01 = {
            gatewayHTTPRoute = {
              parentRefs = [{ group = "gateway.networking.k8s.io", kind = "Gateway", name = local.gateway, namespace = var.namespace, sectionName = "http" }]
            }
          }
        }]
      }
    }
  }]

  selfsigned_issuer = {
    apiVersion = "cert-manager.io/v1"
    kind       = "ClusterIssuer"
    metadata   = { name = "ffe-selfsigned", labels = local.labels }
    spec       = { selfSigned = {} }
  }

  certificate = {
    apiVersion = "cert-manager.io/v1"
    kind       = "Certificate"
    metadata   = { name = local.tls_secret, namespace = var.namespace, labels = local.labels }
    spec = {
      secretName = local.tls_secret
      dnsNames   = var.domain_names
      issuerRef  = { group = "cert-manager.io", kind = "ClusterIssuer", name = local.cert_issuer }
      privateKey = { algorithm = "ECDSA", size = 256, rotationPolicy = "Always" }
      # Let's Encrypt certificates live 90 days (soon less): renew when 1/3 of the lifetime is left
      renewBeforePercentage = 33
    }
  }

  ngf = {
    apiVersion = "helm.cattle.io/v1"
    kind       = "HelmChart"
    metadata   = { name = "nginx-gateway-fabric", namespace = "kube-system", labels = local.labels }
    spec = {
      chart           = var.chart_repos["nginx-gateway-fabric"]
      version         = var.chart_versions["nginx-gateway-fabric"]
      targetNamespace = var.controller_namespace
      valuesContent = yamlencode({
        nginxGateway = {
          gatewayClassName          = "nginx"
          replicas                  = 2
          productTelemetry          = { enable = false }
          topologySpreadConstraints = local.controller_spread
        }
        nginx = {
          replicas = 2
          pod      = { topologySpreadConstraints = local.dataplane_spread }
          service  = local.edge_service
        }
      })
    }
  }

  nginx_proxy = {
    apiVersion = "gateway.nginx.org/v1alpha2"
    kind       = "NginxProxy"
    metadata   = { name = "ffe-edge-proxy", namespace = var.namespace, labels = local.labels }
    spec = {
      kubernetes = {
        deployment = { replicas = 2, pod = { topologySpreadConstraints = local.dataplane_spread } }
        service    = local.edge_service
      }
    }
  }

  gateway_doc = {
    apiVersion = "gateway.networking.k8s.io/v1"
    kind       = "Gateway"
    metadata   = { name = local.gateway, namespace = var.namespace, labels = local.labels }
    spec = {
      gatewayClassName = "nginx"
      infrastructure = {
        annotations   = var.ingress_ip == null ? tomap({}) : tomap({ (var.loadbalancer_annotation) = var.ingress_ip })
        parametersRef = { group = "gateway.nginx.org", kind = "NginxProxy", name = "ffe-edge-proxy" }
      }
      listeners = concat(
        # port 80: the HTTPS redirect and the ACME HTTP-01 solver routes (same namespace only)
        [{ name = "http", protocol = "HTTP", port = 80, allowedRoutes = { namespaces = { from = "Same" } } }],
        [for i, d in var.domain_names : {
          name     = "https-${i}"
          hostname = d
          protocol = "HTTPS"
          port     = 443
          tls      = { mode = "Terminate", certificateRefs = [{ group = "", kind = "Secret", name = local.tls_secret }] }
          allowedRoutes = {
            namespaces = { from = "Selector", selector = { matchLabels = { (var.route_namespace_label) = "true" } } }
          }
        }],
      )
    }
  }

  redirect = {
    apiVersion = "gateway.networking.k8s.io/v1"
    kind       = "HTTPRoute"
    metadata   = { name = "https-redirect", namespace = var.namespace, labels = local.labels }
    spec = {
      parentRefs = [{ group = "gateway.networking.k8s.io", kind = "Gateway", name = local.gateway, sectionName = "http" }]
      hostnames  = var.domain_names
      rules = [{
        matches = [{ path = { type = "PathPrefix", value = "/" } }]
        filters = [{ type = "RequestRedirect", requestRedirect = { scheme = "https", statusCode = 301 } }]
      }]
    }
  }

  # YAML strings, so the conditionals below pick between lists of one type
  cert_docs = concat(
    var.acme_enabled ? [for d in local.acme_issuers : yamlencode(d)] : [yamlencode(local.selfsigned_issuer)],
    local.https ? [yamlencode(local.certificate)] : [],
  )
  gateway_docs = concat([yamlencode(local.nginx_proxy), yamlencode(local.gateway_doc)], local.https ? [yamlencode(local.redirect)] : [])
}

output "manifests" {
  description = "File name => multi-document YAML."
  value = {
    "cert-manager.yaml"         = yamlencode(local.cert_manager)
    "cert-issuers.yaml"         = join("---\n", local.cert_docs)
    "nginx-gateway-fabric.yaml" = yamlencode(local.ngf)
    "gateway.yaml"              = join("---\n", local.gateway_docs)
  }
}

output "gateway" {
  description = "The Gateway that application HTTPRoutes attach to."
  value       = { name = local.gateway, namespace = var.namespace, https_listeners = [for i, d in var.domain_names : "https-${i}"] }
}

output "tls_secret" {
  description = "Secret holding the edge certificate (in the Gateway namespace)."
  value       = local.tls_secret
}

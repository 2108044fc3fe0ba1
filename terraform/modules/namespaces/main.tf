# Namespaces of the platform with Pod Security Admission labels, a default-deny NetworkPolicy in
# each, and the allows every component needs, and (rbac.tf) the operators' read-only and break-glass
# ClusterRole/bindings. Pure rendering: variables in, `manifests` out.
#
# Calico enforces these after kube-proxy's DNAT, so traffic to the API server is matched on the
# servers' real addresses and port 6443 (plus the VIP), not on the `kubernetes` Service IP.

terraform {
  required_version = ">= 1.9.0"
}

variable "network_cidr" {
  description = "Node network (ingress to the edge arrives from there after SNAT; webhooks are called from the servers)."
  type        = string
}

variable "pod_cidr" {
  description = "Pod network (excluded from the 'external' egress allows)."
  type        = string
}

variable "service_cidr" {
  description = "Service network (excluded from the 'external' egress allows)."
  type        = string
}

variable "api_server_ips" {
  description = "Addresses the API server answers on: every server IP and the API VIP."
  type        = list(string)
}

variable "app_port" {
  description = "Container port of the FFE backend that the edge may reach."
  type        = number
  default     = 8000
}

variable "mesh_namespace" {
  description = "Namespace of the Istio ambient mesh (istio-system), created Pod Security privileged; null when the mesh is off."
  type        = string
  default     = null
}

variable "mesh_enrolled" {
  description = "Namespaces whose pods join the ambient mesh: labelled istio.io/dataplane-mode=ambient, allowed HBONE (15008) from and to the enrolled namespaces their policies already let them call, and the probes' SNAT address."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = length(var.mesh_enrolled) == 0 || var.mesh_namespace != null
    error_message = "mesh_enrolled needs mesh_namespace: enrolled pods without Istio's node agents would have no mesh to join."
  }
}

variable "edge_route_label" {
  description = "Namespace label that lets HTTPRoutes of a namespace attach to the edge Gateway."
  type        = string
  default     = "ffe-ha/edge-routes"
}

locals {
  # name => PSA level and whether HTTPRoutes from it may attach to the edge Gateway.
  # restricted for application namespaces; baseline where upstream charts are not (yet) restricted-clean;
  # privileged only where node agents need host access (node-exporter).
  # istio-system only with the mesh: privileged because ztunnel adds NET_ADMIN/SYS_ADMIN and the
  # istio-cni node agent mounts host paths.
  namespaces = merge({
    "ffe"           = { pss = "restricted", routes = true, component = "app" }
    "ffe-data"      = { pss = "baseline", routes = false, component = "postgres" }
    "vault"         = { pss = "baseline", routes = false, component = "vault" }
    "monitoring"    = { pss = "privileged", routes = true, component = "monitoring" }
    "cert-manager"  = { pss = "restricted", routes = false, component = "cert-manager" }
    "nginx-gateway" = { pss = "baseline", routes = false, component = "gateway-controller" }
    "ffe-edge"      = { pss = "baseline", routes = false, component = "edge" }
    }, var.mesh_namespace == null ? {} : {
    (var.mesh_namespace) = { pss = "privileged", routes = false, component = "service-mesh" }
  })

  # Istio ambient (docs "Ambient and Kubernetes NetworkPolicy"): an enrolled pod's connections to
  # other enrolled pods leave as HBONE tunnels to port 15008 of the destination pod, and kubelet
  # probes reach enrolled pods from the SNAT address 169.254.7.127. HBONE is allowed only where the
  # policies below already let one enrolled namespace call the other (namespace => its callers);
  # the app port the edge may use is kept inside the tunnel by modules/mesh's AuthorizationPolicy.
  mesh_callers = {
    "ffe"        = ["ffe-edge", "monitoring"] # allow-edge-to-app, allow-monitoring-scrape
    "ffe-edge"   = ["monitoring"]             # allow-monitoring-scrape
    "monitoring" = ["ffe-edge"]               # allow-edge-to-grafana
  }
  hbone = { protocol = "TCP", port = 15008 }
  mesh_policies = { for ns in var.mesh_enrolled : ns => merge(
    {
      "allow-mesh-probes" = {
        podSelector = {}
        policyTypes = ["Ingress"]
        ingress     = [{ from = [{ ipBlock = { cidr = "169.254.7.127/32" } }] }]
      }
    },
    { for name, spec in {
      "allow-mesh-hbone-in" = {
        podSelector = {}
        policyTypes = ["Ingress"]
        ingress     = [{ from = [for c in local.mesh_from[ns] : local.ns_peer[c]], ports = [local.hbone] }]
      }
    } : name => spec if length(local.mesh_from[ns]) > 0 },
    { for name, spec in {
      "allow-mesh-hbone-out" = {
        podSelector = {}
        policyTypes = ["Egress"]
        egress      = [{ to = [for d in local.mesh_to[ns] : local.ns_peer[d]], ports = [local.hbone] }]
      }
    } : name => spec if length(local.mesh_to[ns]) > 0 },
  ) }
  # enrolled callers of each enrolled namespace, and the enrolled namespaces each one calls
  mesh_from = { for ns in var.mesh_enrolled : ns => [for c in lookup(local.mesh_callers, ns, []) : c if contains(var.mesh_enrolled, c)] }
  mesh_to   = { for ns in var.mesh_enrolled : ns => [for d in var.mesh_enrolled : d if contains(lookup(local.mesh_callers, d, []), ns)] }

  api_peers = [for ip in var.api_server_ips : { ipBlock = { cidr = "${ip}/32" } }]
  api_ports = [{ protocol = "TCP", port = 6443 }, { protocol = "TCP", port = 443 }]
  external  = [{ ipBlock = { cidr = "0.0.0.0/0", except = [var.pod_cidr, var.service_cidr] } }]
  ns_peer   = { for n, _ in local.namespaces : n => { namespaceSelector = { matchLabels = { "kubernetes.io/metadata.name" = n } } } }
  tcp       = { for p in [53, 80, 443, 5432, 6432, 8000, 8008, 8080, 8200, 8201, 8443, 9090, 9093, 10250] : p => { protocol = "TCP", port = p } }

  # Policies every namespace gets.
  common = {
    "default-deny" = { podSelector = {}, policyTypes = ["Ingress", "Egress"] }
    "allow-dns" = {
      podSelector = {}
      policyTypes = ["Egress"]
      egress = [{
        to    = [{ namespaceSelector = { matchLabels = { "kubernetes.io/metadata.name" = "kube-system" } }, podSelector = { matchLabels = { "k8s-app" = "kube-dns" } } }]
        ports = [{ protocol = "UDP", port = 53 }, { protocol = "TCP", port = 53 }]
      }]
    }
    "allow-same-namespace" = {
      podSelector = {}
      policyTypes = ["Ingress", "Egress"]
      ingress     = [{ from = [{ podSelector = {} }] }]
      egress      = [{ to = [{ podSelector = {} }] }]
    }
    "allow-monitoring-scrape" = {
      podSelector = {}
      policyTypes = ["Ingress"]
      ingress     = [{ from = [local.ns_peer["monitoring"]] }]
    }
  }

  # Component allows: namespace => policy name => spec.
  specific = merge(local.component_policies, { for ns, policies in {
    (coalesce(var.mesh_namespace, "-")) = {
      # ztunnel (same namespace) fetches its configuration and certificates from istiod (15012);
      # the API server calls istiod's webhooks (15017) from the servers' addresses
      "allow-webhook" = {
        podSelector = {}
        policyTypes = ["Ingress"]
        ingress     = [{ from = [{ ipBlock = { cidr = var.network_cidr } }], ports = [{ protocol = "TCP", port = 15017 }] }]
      }
      "allow-api-server" = { podSelector = {}, policyTypes = ["Egress"], egress = [{ to = local.api_peers, ports = local.api_ports }] }
    }
  } : ns => policies if var.mesh_namespace != null })

  component_policies = {
    "ffe" = {
      "allow-edge-to-app" = {
        podSelector = {}
        policyTypes = ["Ingress"]
        ingress     = [{ from = [local.ns_peer["ffe-edge"]], ports = [{ protocol = "TCP", port = var.app_port }] }]
      }
      "allow-app-egress" = {
        podSelector = {}
        policyTypes = ["Egress"]
        egress = [
          { to = [local.ns_peer["ffe-data"]], ports = [local.tcp[5432], local.tcp[6432]] },
          { to = [local.ns_peer["vault"]], ports = [local.tcp[8200]] },
          { to = local.external, ports = [local.tcp[443]] },
        ]
      }
    }
    "ffe-data" = {
      "allow-app-to-postgres" = {
        podSelector = {}
        policyTypes = ["Ingress"]
        ingress     = [{ from = [local.ns_peer["ffe"]], ports = [local.tcp[5432], local.tcp[6432]] }]
      }
      # postgres_primary_ip (kube-vip LoadBalancer) for clients outside the cluster
      "allow-external-postgres" = {
        podSelector = {}
        policyTypes = ["Ingress"]
        ingress     = [{ from = [{ ipBlock = { cidr = var.network_cidr } }], ports = [local.tcp[5432], local.tcp[6432]] }]
      }
      "allow-api-server" = { podSelector = {}, policyTypes = ["Egress"], egress = [{ to = local.api_peers, ports = local.api_ports }] }
      # the credentials job writes the app role's password into Vault (modules/postgres app_vault)
      "allow-vault-api" = { podSelector = {}, policyTypes = ["Egress"], egress = [{ to = [local.ns_peer["vault"]], ports = [local.tcp[8200]] }] }
    }
    "vault" = {
      # clients in the cluster, and Terraform/operators unsealing via vault_cluster_ips
      "allow-vault-api" = {
        podSelector = {}
        policyTypes = ["Ingress"]
        ingress     = [{ ports = [local.tcp[8200]] }]
      }
      # agent-injector webhook, called by the API server from the servers' addresses
      "allow-webhook" = {
        podSelector = {}
        policyTypes = ["Ingress"]
        ingress     = [{ from = [{ ipBlock = { cidr = var.network_cidr } }], ports = [local.tcp[8080]] }]
      }
      "allow-api-server" = { podSelector = {}, policyTypes = ["Egress"], egress = [{ to = local.api_peers, ports = local.api_ports }] }
    }
    "monitoring" = {
      "allow-scrape-everything" = {
        podSelector = {}
        policyTypes = ["Egress"]
        egress      = [{ to = [{ namespaceSelector = {} }, { ipBlock = { cidr = var.network_cidr } }] }]
      }
      "allow-edge-to-grafana" = {
        podSelector = {}
        policyTypes = ["Ingress"]
        ingress     = [{ from = [local.ns_peer["ffe-edge"]] }]
      }
      "allow-alert-delivery" = { podSelector = {}, policyTypes = ["Egress"], egress = [{ to = local.external, ports = [local.tcp[443]] }] }
    }
    "cert-manager" = {
      "allow-webhook" = {
        podSelector = {}
        policyTypes = ["Ingress"]
        ingress     = [{ from = [{ ipBlock = { cidr = var.network_cidr } }], ports = [local.tcp[10250]] }]
      }
      "allow-api-server" = { podSelector = {}, policyTypes = ["Egress"], egress = [{ to = local.api_peers, ports = local.api_ports }] }
      # ACME directory (443) and the HTTP-01 self-check against our own edge (80)
      "allow-acme" = {
        podSelector = {}
        policyTypes = ["Egress"]
        egress      = [{ to = local.external, ports = [local.tcp[80], local.tcp[443]] }, { to = [local.ns_peer["ffe-edge"]], ports = [local.tcp[80]] }]
      }
    }
    "nginx-gateway" = {
      "allow-api-server" = { podSelector = {}, policyTypes = ["Egress"], egress = [{ to = local.api_peers, ports = local.api_ports }] }
      # the NGINX data plane (in ffe-edge) connects to the control plane
      "allow-data-plane" = {
        podSelector = {}
        policyTypes = ["Ingress"]
        ingress     = [{ from = [local.ns_peer["ffe-edge"]], ports = [local.tcp[8443]] }]
      }
    }
    "ffe-edge" = {
      "allow-web" = {
        podSelector = {}
        policyTypes = ["Ingress"]
        ingress     = [{ ports = [local.tcp[80], local.tcp[443]] }]
      }
      "allow-backends" = {
        podSelector = {}
        policyTypes = ["Egress"]
        egress = [
          { to = [local.ns_peer["ffe"]], ports = [{ protocol = "TCP", port = var.app_port }] },
          { to = [local.ns_peer["monitoring"]] },
          { to = [local.ns_peer["nginx-gateway"]], ports = [local.tcp[8443]] },
        ]
      }
      "allow-cert-manager-self-check" = {
        podSelector = {}
        policyTypes = ["Ingress"]
        ingress     = [{ from = [local.ns_peer["cert-manager"]], ports = [local.tcp[80]] }]
      }
    }
  }

  namespace_docs = [for name, ns in local.namespaces : yamlencode({
    apiVersion = "v1"
    kind       = "Namespace"
    metadata = {
      name = name
      labels = merge({
        "app.kubernetes.io/part-of"                  = "ffe-ha"
        "app.kubernetes.io/component"                = ns.component
        "pod-security.kubernetes.io/enforce"         = ns.pss
        "pod-security.kubernetes.io/enforce-version" = "latest"
        "pod-security.kubernetes.io/audit"           = "restricted"
        "pod-security.kubernetes.io/warn"            = "restricted"
      }, ns.routes ? { (var.edge_route_label) = "true" } : {}, contains(var.mesh_enrolled, name) ? { "istio.io/dataplane-mode" = "ambient" } : {})
    }
  })]

  policy_docs = flatten([for ns, _ in local.namespaces : [
    for name, spec in merge(local.common, lookup(local.specific, ns, {}), lookup(local.mesh_policies, ns, {})) : yamlencode({
      apiVersion = "networking.k8s.io/v1"
      kind       = "NetworkPolicy"
      metadata   = { name = name, namespace = ns, labels = { "app.kubernetes.io/part-of" = "ffe-ha" } }
      spec       = spec
    })
  ]])
}

output "manifests" {
  description = "File name => multi-document YAML."
  value = merge({
    "00-namespaces.yaml"       = join("---\n", local.namespace_docs)
    "10-network-policies.yaml" = join("---\n", local.policy_docs)
  }, local.rbac_manifests) # rbac.tf: operators' read-only and break-glass access
}

output "names" {
  description = "Namespace names, for the other bundles."
  value       = { for n, _ in local.namespaces : n => n }
}

output "app_port" {
  description = "Container port of the FFE backend that the edge may reach (the one its NetworkPolicies allow)."
  value       = var.app_port
}

output "edge_route_label" {
  description = "Namespace label that allows HTTPRoutes to attach to the edge Gateway."
  value       = var.edge_route_label
}

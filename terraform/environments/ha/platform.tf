# In-cluster platform: pure rendering modules (variables in, manifests out) composed into
# bundles, each written by one `ffe_manifests` resource into /var/lib/rancher/k3s/server/manifests/
# on every server, where k3s applies them (HelmChart objects are installed by k3s's helm-controller).
# Every rendered document is validated offline by `make test-manifests` (crates/ffe-validate).

# CRDs the add-ons need before they install (Gateway API, Calico): the first bundle, waited for.
module "crds" {
  source = "../../modules/crds"

  gateway_api_version = local.component_versions.gateway_api
  calico_version      = local.chart_versions["crd.projectcalico.org.v1"]
  calico_chart_repo   = local.chart_repos["tigera-operator"]
}

locals {
  # The mesh (service_mesh_enabled): Istio's namespace, and the namespaces that join it: the app,
  # served over mutual TLS only, and its callers (the edge's data plane, Prometheus), which must be
  # in the mesh for the app to accept them.
  mesh_namespace = "istio-system"
  mesh_enrolled  = ["ffe", "ffe-edge", "monitoring"]
}

module "namespaces" {
  source = "../../modules/namespaces"

  network_cidr      = var.network_cidr
  pod_cidr          = var.pod_cidr
  service_cidr      = var.service_cidr
  api_server_ips    = distinct(concat(var.master_ips, compact([var.api_vip])))
  break_glass_group = var.break_glass_group
  mesh_namespace    = var.service_mesh_enabled ? local.mesh_namespace : null
  mesh_enrolled     = var.service_mesh_enabled ? local.mesh_enrolled : []
}

module "cni" {
  source = "../../modules/cni"

  pod_cidr          = var.pod_cidr
  chart_version     = local.chart_versions["tigera-operator"]
  chart_repo        = local.chart_repos["tigera-operator"]
  wireguard_enabled = var.calico_wireguard_enabled
}

module "vip" {
  source = "../../modules/vip"

  api_vip   = var.api_vip
  interface = var.vip_interface
  image     = local.platform_images.kube_vip
}

module "storage" {
  source = "../../modules/storage"

  nfs_server        = var.nfs_server
  nfs_export        = var.nfs_export
  backup_mount      = local.backup_mount
  csi_chart         = local.chart_repos["csi-driver-nfs"]
  csi_chart_version = local.chart_versions["csi-driver-nfs"]
}

module "edge" {
  source = "../../modules/edge"

  ingress_ip              = var.ingress_ip
  domain_names            = var.domain_names
  acme_enabled            = var.acme_enabled
  acme_staging            = var.acme_staging
  acme_email              = var.acme_email
  namespace               = module.namespaces.names["ffe-edge"]
  controller_namespace    = module.namespaces.names["nginx-gateway"]
  cert_manager_namespace  = module.namespaces.names["cert-manager"]
  route_namespace_label   = module.namespaces.edge_route_label
  chart_versions          = local.chart_versions
  chart_repos             = local.chart_repos
  loadbalancer_annotation = module.vip.loadbalancer_annotation
}

locals {
  # bundle name => { file name => YAML }. The provider prefixes each file with its bundle on the
  # servers (ffe-<bundle>--<file>), because k3s's manifests directory is flat and shared.
  platform_bundles = {
    "namespaces" = module.namespaces.manifests
    "cni"        = module.cni.manifests
    "vip"        = module.vip.manifests
    "storage"    = module.storage.manifests
    "edge"       = module.edge.manifests
  }

  # Names that need DNS A records: the edge names -> ingress_ip; DNS names among extra_tls_sans
  # (API names) -> api_vip.
  api_dns_names = [for s in var.extra_tls_sans : s if !can(regex(local.ipv4_re, s))]
  dns_records = concat(
    var.ingress_ip == null ? [] : [for d in var.domain_names : { name = d, type = "A", value = var.ingress_ip }],
    var.api_vip == null ? [] : [for d in local.api_dns_names : { name = d, type = "A", value = var.api_vip }],
  )
}

# Domain names without ingress_ip: the edge Service asks kube-vip for an address, but kube-vip
# only announces pinned IPs (no address pool), so it stays <pending>: no HTTPS, no ACME HTTP-01,
# and dns_records lists no edge names. Plans still work (an HTTP-only lab needs no edge IP).
check "ingress_ip_set" {
  assert {
    condition     = var.ingress_ip != null || length(var.domain_names) == 0
    error_message = "ingress_ip is not set but domain_names = ${jsonencode(var.domain_names)}: kube-vip has no address pool, so the edge Gateway Service never gets an address, Let's Encrypt HTTP-01 challenges fail and dns_records lists none of these names. Fix: set ingress_ip to a free IP inside network_cidr = \"${var.network_cidr}\" and point the names' DNS A records at it."
  }
}

# The CRDs first, and wait until the API server serves them: cert-manager exits at start without
# the Gateway API CRDs, and Helm refuses tigera-operator until Installation/FelixConfiguration exist.
resource "ffe_manifests" "crds" {
  bundle    = "crds"
  servers   = ffe_k3s_cluster.this.servers
  manifests = module.crds.manifests
  wait_for = [for crd in module.crds.established : {
    kind      = "customresourcedefinition"
    name      = crd
    namespace = null
    condition = "Established"
  }]
}

# One bundle per add-on, written to every server once the cluster exists (servers come from the
# cluster resource, so Terraform orders these after it) and the CRDs are established.
resource "ffe_manifests" "platform" {
  for_each = local.platform_bundles

  bundle     = each.key
  servers    = ffe_k3s_cluster.this.servers
  manifests  = each.value
  depends_on = [ffe_manifests.crds]
}

# The Istio ambient mesh (service_mesh_enabled): Istio's base chart (CRDs) once the platform
# bundles (the istio-system namespace, the CNI) are written, waited for until its CRDs are
# established; then istiod, the node agents and the app namespace's STRICT mutual TLS policies.
module "mesh" {
  source = "../../modules/mesh"

  chart_versions       = { for c in ["base", "istiod", "cni", "ztunnel"] : c => local.chart_versions[c] }
  chart_repo           = local.chart_repos["istio"]
  namespace            = local.mesh_namespace
  app_namespace        = module.namespaces.names["ffe"]
  app_port             = module.namespaces.app_port
  edge_namespace       = module.namespaces.names["ffe-edge"]
  monitoring_namespace = module.namespaces.names["monitoring"]
}

resource "ffe_manifests" "mesh_crds" {
  count = var.service_mesh_enabled ? 1 : 0

  bundle    = "mesh-crds"
  servers   = ffe_k3s_cluster.this.servers
  manifests = module.mesh.crd_manifests
  wait_for = [for crd in module.mesh.crd_names : {
    kind      = "customresourcedefinition"
    name      = crd
    namespace = null
    condition = "Established"
  }]
  depends_on = [ffe_manifests.platform]
}

resource "ffe_manifests" "mesh" {
  count = var.service_mesh_enabled ? 1 : 0

  bundle     = "mesh"
  servers    = ffe_k3s_cluster.this.servers
  manifests  = module.mesh.manifests
  depends_on = [ffe_manifests.mesh_crds]
}

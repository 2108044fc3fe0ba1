# Platform bundles (platform.tf, modules/*): what the example renders, and bad input that must
# stop the plan with an error naming the variable. Each bad-input run changes the example in ONE
# way; a run also fails if any other error appears.
#
# Run from the environment directory:
#   terraform test -var-file=terraform.tfvars.example -filter=tests/platform.tftest.hcl

variables {
  kubernetes_version   = "v1.36"
  vault_version        = "1.21"
  ssh_known_hosts_file = "tests/fixtures/known_hosts"
  extra_tls_sans       = ["k8s.ffe.three-rivers-tech.com"]
  nfs_server           = "10.0.5.10"
  nfs_export           = "/export/ffe-backups"
  monitoring_alertmanager_config = {
    route     = { receiver = "ops" }
    receivers = [{ name = "ops", webhook_configs = [{ url = "http://alert-relay.monitoring.svc:8080/hook" }] }]
  }
}

run "example_renders_every_bundle" {
  command = plan

  assert {
    condition     = output.ingress_ip == "10.0.2.5"
    error_message = "ingress_ip output must be the ingress_ip variable."
  }
  assert {
    condition = toset([for r in output.dns_records : "${r.name} A ${r.value}"]) == toset([
      "ffe.three-rivers-tech.com A 10.0.2.5",
      "api.ffe.three-rivers-tech.com A 10.0.2.5",
      "k8s.ffe.three-rivers-tech.com A 10.0.1.5",
    ])
    error_message = "dns_records must map every domain name to ingress_ip and the API name to api_vip: ${jsonencode(output.dns_records)}"
  }
  assert {
    condition     = strcontains(module.cni.manifests["calico.yaml"], "\"cidr\": \"10.42.0.0/16\"") && strcontains(module.cni.manifests["calico.yaml"], "\"bootstrap\": true")
    error_message = "Calico's IP pool must be pod_cidr and the chart must bootstrap."
  }
  assert {
    condition     = strcontains(module.vip.manifests["kube-vip.yaml"], "\"value\": \"10.0.1.5\"") && strcontains(module.vip.manifests["kube-vip.yaml"], "CriticalAddonsOnly")
    error_message = "kube-vip must announce api_vip and tolerate the server taint."
  }
  assert {
    condition     = strcontains(module.edge.manifests["gateway.yaml"], "\"kube-vip.io/loadbalancerIPs\": \"10.0.2.5\"") && strcontains(module.edge.manifests["gateway.yaml"], "\"hostname\": \"api.ffe.three-rivers-tech.com\"")
    error_message = "the Gateway must be pinned to ingress_ip and listen for every domain name."
  }
  assert {
    condition     = strcontains(module.edge.manifests["cert-issuers.yaml"], "\"name\": \"letsencrypt-production\"") && strcontains(module.edge.manifests["cert-issuers.yaml"], "cpenrod@three-rivers-tech.com")
    error_message = "the Certificate must use the production Let's Encrypt issuer with acme_email."
  }
  assert {
    condition     = module.storage.mode == "csi-nfs" && strcontains(module.storage.manifests["csi-driver-nfs.yaml"], "\"version\": \"4.13.4\"")
    error_message = "with nfs_server/nfs_export, the backup class must use csi-driver-nfs at the pinned chart version."
  }
  assert {
    condition     = yamldecode(module.storage.manifests["csi-driver-nfs.yaml"]).spec.chart == "https://raw.githubusercontent.com/kubernetes-csi/csi-driver-nfs/v4.13.4/charts/v4.13.4/csi-driver-nfs-4.13.4.tgz" && !can(yamldecode(module.storage.manifests["csi-driver-nfs.yaml"]).spec.repo)
    error_message = "csi-driver-nfs must come from the chart archive under the pinned release tag (never a branch): ${yamldecode(module.storage.manifests["csi-driver-nfs.yaml"]).spec.chart}"
  }
  assert {
    condition = {
      for d in split("---\n", module.storage.manifests["storage-classes.yaml"]) : yamldecode(d).metadata.name => yamldecode(d).reclaimPolicy
      if yamldecode(d).kind == "StorageClass"
      } == {
      "fast-local"        = "Delete"
      "fast-local-retain" = "Retain"
      "backup-nfs"        = "Retain"
    }
    error_message = "storage classes: fast-local (Delete) stays as is, fast-local-retain (Retain) is added for databases, backup-nfs retains."
  }
  assert {
    condition     = yamldecode(yamldecode(module.cni.manifests["calico.yaml"]).spec.valuesContent).defaultFelixConfiguration == { enabled = true, wireguardEnabled = true }
    error_message = "calico_wireguard_enabled defaults to true: the chart's FelixConfiguration default must set wireguardEnabled = true."
  }
  assert {
    condition = alltrue([for c in concat(
      yamldecode(yamldecode(module.edge.manifests["nginx-gateway-fabric.yaml"]).spec.valuesContent).nginxGateway.topologySpreadConstraints,
      yamldecode(yamldecode(module.edge.manifests["nginx-gateway-fabric.yaml"]).spec.valuesContent).nginx.pod.topologySpreadConstraints,
      yamldecode(split("---\n", module.edge.manifests["gateway.yaml"])[0]).spec.kubernetes.deployment.pod.topologySpreadConstraints,
    ) : c.topologyKey == "kubernetes.io/hostname" && c.whenUnsatisfiable == "DoNotSchedule" && c.maxSkew == 1 && c.nodeTaintsPolicy == "Honor" && length(c.labelSelector.matchLabels) > 0])
    error_message = "NGINX Gateway Fabric controller and data plane (chart values and the Gateway's NginxProxy) must spread hard over hostnames."
  }
  assert {
    condition     = yamldecode(split("---\n", module.edge.manifests["gateway.yaml"])[0]).spec.kubernetes.deployment.pod.topologySpreadConstraints[0].labelSelector.matchLabels == { "gateway.networking.k8s.io/gateway-name" = yamldecode(split("---\n", module.edge.manifests["gateway.yaml"])[1]).metadata.name }
    error_message = "the data plane spread must select the pods of the ffe-edge Gateway."
  }
  assert {
    condition     = yamldecode(split("---\n", module.edge.manifests["gateway.yaml"])[0]).spec.kubernetes.service.externalTrafficPolicy == "Cluster" && yamldecode(yamldecode(module.edge.manifests["nginx-gateway-fabric.yaml"]).spec.valuesContent).nginx.service.externalTrafficPolicy == "Cluster"
    error_message = "the edge Service keeps externalTrafficPolicy Cluster: kube-vip announces ingress_ip from servers, which run no NGINX pod."
  }
}

# The CRDs come first (ADR 0008): Gateway API files as vendored, Calico's CRD chart at the Calico pin,
# and the apply waits until the API server serves them.
run "crds_bundle_comes_first" {
  command = plan

  assert {
    condition     = length([for f in keys(module.crds.manifests) : f if startswith(f, "gateway-api-")]) == length(fileset("../../../upstream/crds/gateway-api/v1.5.1", "*.yaml")) && contains(keys(module.crds.manifests), "gateway-api-httproutes.yaml")
    error_message = "the crds bundle must carry every vendored Gateway API v1.5.1 file."
  }
  assert {
    condition     = yamldecode(module.crds.manifests["calico-crds.yaml"]).spec.chart == "crd.projectcalico.org.v1" && yamldecode(module.crds.manifests["calico-crds.yaml"]).spec.version == yamldecode(module.cni.manifests["calico.yaml"]).spec.version
    error_message = "Calico's CRD chart must be delivered at the same version as tigera-operator."
  }
  assert {
    condition     = contains([for w in ffe_manifests.crds.wait_for : w.name], "installations.operator.tigera.io") && contains([for w in ffe_manifests.crds.wait_for : w.name], "gateways.gateway.networking.k8s.io") && alltrue([for w in ffe_manifests.crds.wait_for : w.condition == "Established"])
    error_message = "the apply must wait for the Calico and Gateway API CRDs to be Established."
  }
  assert {
    condition     = yamldecode(yamldecode(module.edge.manifests["cert-manager.yaml"]).spec.valuesContent).config.gatewayAPI.enabled == true && !can(yamldecode(yamldecode(module.edge.manifests["cert-manager.yaml"]).spec.valuesContent).config.enableGatewayAPI)
    error_message = "cert-manager must use config.gatewayAPI.enabled (enableGatewayAPI is deprecated)."
  }
  assert {
    condition     = !contains(keys(module.edge.manifests), "gateway-api-crds.yaml")
    error_message = "the Gateway API CRDs are delivered by the crds bundle, not by a Job in the edge bundle."
  }
}

run "calico_wireguard_can_be_turned_off" {
  command = plan
  variables {
    calico_wireguard_enabled = false
  }
  assert {
    condition     = yamldecode(yamldecode(module.cni.manifests["calico.yaml"]).spec.valuesContent).defaultFelixConfiguration == { enabled = true, wireguardEnabled = false }
    error_message = "calico_wireguard_enabled = false must render wireguardEnabled = false explicitly (so turning it off is an upgrade)."
  }
}

# the mesh is off by default: no Istio bundle, no istio-system namespace, no enrolment label
run "service_mesh_off_by_default" {
  command = plan
  assert {
    condition     = length(ffe_manifests.mesh_crds) == 0 && length(ffe_manifests.mesh) == 0
    error_message = "service_mesh_enabled defaults to false: no mesh-crds or mesh bundle."
  }
  assert {
    condition     = !strcontains(module.namespaces.manifests["00-namespaces.yaml"], "istio") && !strcontains(module.namespaces.manifests["10-network-policies.yaml"], "15008")
    error_message = "Without the mesh no namespace is istio-system or enrolled, and no NetworkPolicy opens HBONE."
  }
}

# the mesh on: Istio's four charts in install order, the CRDs waited for, then STRICT mTLS for the
# app; istio-system privileged; the app and its callers enrolled with HBONE allowed; Calico lets
# pods spoof their source as istio-cni requires
run "service_mesh_enabled_installs_istio_ambient" {
  command = plan
  variables {
    service_mesh_enabled = true
  }
  assert {
    condition = [for f in concat(keys(ffe_manifests.mesh_crds[0].manifests), sort(keys(ffe_manifests.mesh[0].manifests))) :
    yamldecode(f == "istio-base.yaml" ? ffe_manifests.mesh_crds[0].manifests[f] : ffe_manifests.mesh[0].manifests[f]).spec.chart if strcontains(f, "istio-")] == ["base", "istiod", "cni", "ztunnel"]
    error_message = "The mesh-crds bundle must hold Istio's base chart, the mesh bundle istiod, cni, ztunnel, in that order."
  }
  assert {
    condition     = alltrue([for f, y in merge(ffe_manifests.mesh_crds[0].manifests, ffe_manifests.mesh[0].manifests) : yamldecode(y).spec.version == "1.30.3" && yamldecode(y).spec.targetNamespace == "istio-system" if strcontains(f, "istio-")])
    error_message = "Every Istio chart is the pinned 1.30.3 and installs into istio-system."
  }
  assert {
    condition     = yamldecode(yamldecode(ffe_manifests.mesh[0].manifests["10-istio-istiod.yaml"]).spec.valuesContent).profile == "ambient" && yamldecode(yamldecode(ffe_manifests.mesh[0].manifests["20-istio-cni.yaml"]).spec.valuesContent).profile == "ambient"
    error_message = "istiod and cni must use Istio's ambient profile."
  }
  assert {
    condition     = toset([for w in ffe_manifests.mesh_crds[0].wait_for : w.name]) == toset(["peerauthentications.security.istio.io", "authorizationpolicies.security.istio.io"])
    error_message = "The mesh-crds bundle must wait for the CRDs of the mesh bundle's policies."
  }
  assert {
    condition     = yamldecode(ffe_manifests.mesh[0].manifests["50-peer-authentication.yaml"]).spec.mtls.mode == "STRICT" && yamldecode(ffe_manifests.mesh[0].manifests["50-peer-authentication.yaml"]).metadata.namespace == "ffe"
    error_message = "The app namespace must take mutual TLS only (PeerAuthentication STRICT in ffe)."
  }
  assert {
    condition = {
      for d in split("---\n", module.namespaces.manifests["00-namespaces.yaml"]) : yamldecode(d).metadata.name => lookup(yamldecode(d).metadata.labels, "istio.io/dataplane-mode", "")
      } == {
      "ffe"          = "ambient", "ffe-edge" = "ambient", "monitoring" = "ambient", "ffe-data" = "", "vault" = "",
      "cert-manager" = "", "nginx-gateway" = "", "istio-system" = ""
    }
    error_message = "Exactly the app, the edge and monitoring are enrolled in the ambient mesh; istio-system exists."
  }
  assert {
    condition = one([
      for d in split("---\n", module.namespaces.manifests["00-namespaces.yaml"]) : yamldecode(d).metadata.labels["pod-security.kubernetes.io/enforce"]
      if yamldecode(d).metadata.name == "istio-system"
    ]) == "privileged"
    error_message = "istio-system must be Pod Security privileged (ztunnel's capabilities, istio-cni's host paths)."
  }
  assert {
    condition = {
      for d in split("---\n", module.namespaces.manifests["10-network-policies.yaml"]) : "${yamldecode(d).metadata.namespace}/${yamldecode(d).metadata.name}" => yamldecode(d).spec
      if strcontains(yamldecode(d).metadata.name, "mesh-hbone")
      } == {
      "ffe/allow-mesh-hbone-in"         = { podSelector = {}, policyTypes = ["Ingress"], ingress = [{ from = [for n in ["ffe-edge", "monitoring"] : { namespaceSelector = { matchLabels = { "kubernetes.io/metadata.name" = n } } }], ports = [{ protocol = "TCP", port = 15008 }] }] }
      "ffe-edge/allow-mesh-hbone-in"    = { podSelector = {}, policyTypes = ["Ingress"], ingress = [{ from = [{ namespaceSelector = { matchLabels = { "kubernetes.io/metadata.name" = "monitoring" } } }], ports = [{ protocol = "TCP", port = 15008 }] }] }
      "ffe-edge/allow-mesh-hbone-out"   = { podSelector = {}, policyTypes = ["Egress"], egress = [{ to = [for n in ["ffe", "monitoring"] : { namespaceSelector = { matchLabels = { "kubernetes.io/metadata.name" = n } } }], ports = [{ protocol = "TCP", port = 15008 }] }] }
      "monitoring/allow-mesh-hbone-in"  = { podSelector = {}, policyTypes = ["Ingress"], ingress = [{ from = [{ namespaceSelector = { matchLabels = { "kubernetes.io/metadata.name" = "ffe-edge" } } }], ports = [{ protocol = "TCP", port = 15008 }] }] }
      "monitoring/allow-mesh-hbone-out" = { podSelector = {}, policyTypes = ["Egress"], egress = [{ to = [for n in ["ffe", "ffe-edge"] : { namespaceSelector = { matchLabels = { "kubernetes.io/metadata.name" = n } } }], ports = [{ protocol = "TCP", port = 15008 }] }] }
    }
    error_message = "HBONE (15008) is allowed only along the calls the NetworkPolicies already allowed: edge and monitoring into ffe, monitoring into the edge, the edge into monitoring; the app calls no enrolled namespace."
  }
  assert {
    condition = toset([
      for d in split("---\n", module.namespaces.manifests["10-network-policies.yaml"]) : yamldecode(d).metadata.namespace
      if yamldecode(d).metadata.name == "allow-mesh-probes" && try(yamldecode(d).spec.ingress, null) == [{ from = [{ ipBlock = { cidr = "169.254.7.127/32" } }] }]
    ]) == toset(["ffe", "ffe-edge", "monitoring"])
    error_message = "Each enrolled namespace admits kubelet probes from ambient's SNAT address 169.254.7.127."
  }
  assert {
    condition = one([
      for d in split("---\n", module.namespaces.manifests["10-network-policies.yaml"]) : yamldecode(d).spec.ingress
      if yamldecode(d).metadata.namespace == "istio-system" && yamldecode(d).metadata.name == "allow-webhook"
    ]) == [{ from = [{ ipBlock = { cidr = "10.0.0.0/16" } }], ports = [{ protocol = "TCP", port = 15017 }] }]
    error_message = "istio-system admits the API server (node network) on istiod's webhook port 15017."
  }
  assert {
    condition = alltrue(flatten([
      for r in yamldecode(ffe_manifests.mesh[0].manifests["50-authorization-policy.yaml"]).spec.rules : [
        length(setsubtract(keys(r), ["from", "to"])) == 0,
        alltrue([for f in r.from : keys(f) == ["source"] && keys(f.source) == ["namespaces"]]),
        alltrue([for t in try(r.to, []) : keys(t) == ["operation"] && keys(t.operation) == ["ports"]]),
      ]
    ]))
    error_message = "allowed-callers must use only L4 fields ztunnel enforces (source namespaces, destination ports): a rule with an L7 field is dropped from an ALLOW policy in ambient, locking callers out."
  }
  assert {
    condition = [
      for r in yamldecode(ffe_manifests.mesh[0].manifests["50-authorization-policy.yaml"]).spec.rules : [r.from[0].source.namespaces[0], try(r.to[0].operation.ports, ["any"])]
    ] == [["ffe", ["any"]], ["ffe-edge", ["8000"]], ["monitoring", ["any"]]]
    error_message = "allowed-callers: the app namespace and monitoring on any port, the edge on the app port only."
  }
  assert {
    condition     = yamldecode(yamldecode(module.cni.manifests["calico.yaml"]).spec.valuesContent).defaultFelixConfiguration == { enabled = true, wireguardEnabled = true }
    error_message = "The mesh must not turn on Calico's workload source spoofing (Istio 1.30's in-pod ztunnel sends from the pod's own address)."
  }
}

# domain names but no edge IP: plans, with a warning naming ingress_ip; no edge DNS records
run "domain_names_without_ingress_ip_warns" {
  command = plan
  variables {
    ingress_ip = null
  }
  expect_failures = [check.ingress_ip_set]
  assert {
    condition     = length([for r in output.dns_records : r if contains(["ffe.three-rivers-tech.com", "api.ffe.three-rivers-tech.com"], r.name)]) == 0 && !strcontains(module.edge.manifests["gateway.yaml"], "loadBalancerIP")
    error_message = "ingress_ip = null: no edge DNS records and no pinned edge address."
  }
}

# the example as given (no NFS server): hostPath PVs on the shared mount; main.tf warns
run "no_nfs_server_uses_hostpath_volumes" {
  command = plan
  variables {
    nfs_server = null
    nfs_export = null
  }
  expect_failures = [check.backup_storage]
  assert {
    condition     = module.storage.mode == "hostpath" && strcontains(module.storage.manifests["storage-classes.yaml"], "/mnt/backups/k8s/")
    error_message = "without nfs_server/nfs_export, backup volumes are hostPath PVs under backup_nfs_mount."
  }
}

run "api_vip_unset_announces_services_only" {
  command = plan
  variables {
    api_vip = null
  }
  expect_failures = [check.api_vip_set]
  assert {
    condition     = contains([for e in yamldecode(split("---\n", module.vip.manifests["kube-vip.yaml"])[3]).spec.template.spec.containers[0].env : "${e.name}=${e.value}"], "cp_enable=false") && !strcontains(module.vip.manifests["kube-vip.yaml"], "\"address\"") && length([for r in output.dns_records : r if r.value == "10.0.1.5"]) == 0
    error_message = "api_vip = null: kube-vip must not announce a control-plane VIP, and no API DNS record is output."
  }
}

run "acme_off_uses_a_self_signed_issuer" {
  command = plan
  variables {
    acme_enabled = false
    acme_email   = null
  }
  assert {
    condition     = strcontains(module.edge.manifests["cert-issuers.yaml"], "ffe-selfsigned") && !strcontains(module.edge.manifests["cert-issuers.yaml"], "letsencrypt")
    error_message = "acme_enabled = false must issue from the self-signed ClusterIssuer only."
  }
}

run "acme_staging_switches_the_issuer" {
  command = plan
  variables {
    acme_staging = true
  }
  expect_failures = [check.acme_settings]
  assert {
    condition     = strcontains(module.edge.manifests["cert-issuers.yaml"], "\"name\": \"letsencrypt-staging\"\n")
    error_message = "acme_staging = true must make the Certificate use letsencrypt-staging."
  }
}

run "component_version_override_reaches_the_chart" {
  command = plan
  variables {
    component_versions = { cert_manager = "v1.21.9" }
  }
  assert {
    condition     = strcontains(module.edge.manifests["cert-manager.yaml"], "\"version\": \"v1.21.9\"")
    error_message = "component_versions must override the pinned chart version."
  }
}

run "ingress_ip_outside_network" {
  command = plan
  variables {
    ingress_ip = "192.168.1.5"
  }
  expect_failures = [var.ingress_ip]
}

run "ingress_ip_is_a_node_ip" {
  command = plan
  variables {
    ingress_ip = "10.0.2.10"
  }
  expect_failures = [var.ingress_ip]
}

run "api_vip_outside_network" {
  command = plan
  variables {
    api_vip = "10.1.0.5"
  }
  expect_failures = [var.api_vip]
}

run "api_vip_is_a_node_ip" {
  command = plan
  variables {
    api_vip = "10.0.1.11"
  }
  expect_failures = [var.api_vip]
}

run "postgres_primary_ip_outside_network" {
  command = plan
  variables {
    postgres_primary_ip = "172.16.3.10"
  }
  expect_failures = [var.postgres_primary_ip]
}

run "postgres_primary_ip_is_a_node_ip" {
  command = plan
  variables {
    postgres_primary_ip = "10.0.1.12"
  }
  expect_failures = [var.postgres_primary_ip]
}

run "domain_names_empty_with_acme" {
  command = plan
  variables {
    domain_names = []
  }
  expect_failures = [var.domain_names]
}

run "acme_email_invalid" {
  command = plan
  variables {
    acme_email = "cpenrod at three-rivers-tech"
  }
  expect_failures = [var.acme_email]
}

run "pod_cidr_overlaps_network" {
  command = plan
  variables {
    pod_cidr = "10.0.128.0/17"
  }
  expect_failures = [var.pod_cidr]
}

run "component_version_not_exact" {
  command = plan
  variables {
    component_versions = { cert_manager = "latest" }
  }
  expect_failures = [var.component_versions]
}

# vip_interface reaches kube-vip as vip_interface (issue 12 defect 8: multi-NIC masters)
run "vip_interface_is_passed_to_kube_vip" {
  command = plan
  variables {
    vip_interface = "ens19"
  }
  assert {
    condition     = contains([for e in yamldecode(split("---\n", module.vip.manifests["kube-vip.yaml"])[3]).spec.template.spec.containers[0].env : "${e.name}=${e.value}"], "vip_interface=ens19")
    error_message = "vip_interface must be set on the kube-vip container"
  }
}

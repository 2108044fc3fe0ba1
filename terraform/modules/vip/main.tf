# kube-vip on the servers: ARP announcement with leader election of the Kubernetes API VIP
# (api_vip:6443), and of LoadBalancer Services pinned with the `kube-vip.io/loadbalancerIPs`
# annotation (edge ingress_ip, postgres_primary_ip, vault_cluster_ips). k3s's own servicelb is
# disabled by the provider, so kube-vip is the only load-balancer implementation.

terraform {
  required_version = ">= 1.9.0"
}

variable "api_vip" {
  description = "Kubernetes API VIP; null = only Services are announced."
  type        = string
  default     = null
}

variable "image" {
  description = "kube-vip image with pinned tag."
  type        = string
}

variable "interface" {
  description = "Node interface to announce on; null = kube-vip picks the interface of the default route."
  type        = string
  default     = null
}

locals {
  name   = "kube-vip"
  ns     = "kube-system"
  labels = { "app.kubernetes.io/name" = "kube-vip", "app.kubernetes.io/part-of" = "ffe-ha" }

  base_env = {
    vip_arp            = "true"
    vip_leaderelection = "true"
    vip_leasename      = "plndr-cp-lock"
    vip_leaseduration  = "5"
    vip_renewdeadline  = "3"
    vip_retryperiod    = "1"
    cp_namespace       = local.ns
    svc_enable         = "true"
    svc_leasename      = "plndr-svc-lock"
    prometheus_server  = ":2112"
  }
  api_env = var.api_vip == null ? tomap({ cp_enable = "false" }) : tomap({
    cp_enable  = "true"
    address    = var.api_vip
    port       = "6443"
    vip_subnet = "32" # the API VIP alone (the older vip_cidr is no longer read)
  })
  interface_env = var.interface == null ? tomap({}) : tomap({ vip_interface = var.interface })
  env           = merge(local.base_env, local.api_env, local.interface_env)

  docs = [
    { apiVersion = "v1", kind = "ServiceAccount", metadata = { name = local.name, namespace = local.ns, labels = local.labels } },
    {
      apiVersion = "rbac.authorization.k8s.io/v1"
      kind       = "ClusterRole"
      metadata   = { name = "system:kube-vip-role", labels = local.labels }
      rules = [
        { apiGroups = [""], resources = ["services/status"], verbs = ["update"] },
        { apiGroups = [""], resources = ["services", "endpoints"], verbs = ["list", "get", "watch", "update"] },
        { apiGroups = [""], resources = ["nodes"], verbs = ["list", "get", "watch", "update", "patch"] },
        { apiGroups = ["coordination.k8s.io"], resources = ["leases"], verbs = ["list", "get", "watch", "update", "create"] },
        { apiGroups = ["discovery.k8s.io"], resources = ["endpointslices"], verbs = ["list", "get", "watch", "update"] },
        { apiGroups = [""], resources = ["pods"], verbs = ["list"] },
      ]
    },
    {
      apiVersion = "rbac.authorization.k8s.io/v1"
      kind       = "ClusterRoleBinding"
      metadata   = { name = "system:kube-vip-binding", labels = local.labels }
      roleRef    = { apiGroup = "rbac.authorization.k8s.io", kind = "ClusterRole", name = "system:kube-vip-role" }
      subjects   = [{ kind = "ServiceAccount", name = local.name, namespace = local.ns }]
    },
    {
      apiVersion = "apps/v1"
      kind       = "DaemonSet"
      metadata   = { name = local.name, namespace = local.ns, labels = local.labels }
      spec = {
        selector       = { matchLabels = { "app.kubernetes.io/name" = "kube-vip" } }
        updateStrategy = { type = "RollingUpdate", rollingUpdate = { maxUnavailable = 1 } }
        template = {
          metadata = { labels = local.labels }
          spec = {
            serviceAccountName = local.name
            hostNetwork        = true
            priorityClassName  = "system-node-critical"
            # servers only (k3s labels them control-plane=true)
            nodeSelector = { "node-role.kubernetes.io/control-plane" = "true" }
            tolerations = [
              { key = "CriticalAddonsOnly", operator = "Exists" },
              { effect = "NoSchedule", operator = "Exists" },
              { effect = "NoExecute", operator = "Exists" },
            ]
            containers = [{
              name            = "kube-vip"
              image           = var.image
              imagePullPolicy = "IfNotPresent"
              args            = ["manager"]
              env             = [for k, v in local.env : { name = k, value = v }]
              securityContext = { capabilities = { add = ["NET_ADMIN", "NET_RAW"], drop = ["ALL"] } }
              resources       = { requests = { cpu = "20m", memory = "32Mi" }, limits = { memory = "128Mi" } }
              ports           = [{ name = "metrics", containerPort = 2112, protocol = "TCP" }]
            }]
          }
        }
      }
    },
  ]
}

output "manifests" {
  description = "File name => multi-document YAML."
  value       = { "kube-vip.yaml" = join("---\n", [for d in local.docs : yamlencode(d)]) }
}

output "loadbalancer_annotation" {
  description = "Annotation that pins a LoadBalancer Service to a fixed IP announced by kube-vip."
  value       = "kube-vip.io/loadbalancerIPs"
}

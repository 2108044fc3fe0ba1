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
      metadata = {
        name      = local.name
        namespace = local.ns
        labels    = local.labels
        # checkov skips, each with its reason (read by checkov from the manifest; docs/security.md)
        annotations = {
          "checkov.io/skip1" = "CKV_K8S_19=announcing the VIPs by ARP on the node's own interface needs the host network namespace"
          "checkov.io/skip2" = "CKV_K8S_25=NET_ADMIN (add the VIP address to the node interface) and NET_RAW (send gratuitous ARP) only; all others dropped"
          "checkov.io/skip3" = "CKV_K8S_23=root: the added NET_ADMIN and NET_RAW take effect only for uid 0 (no ambient capabilities for other users)"
          "checkov.io/skip4" = "CKV_K8S_40=runs as root, see CKV_K8S_23"
          "checkov.io/skip5" = "CKV_K8S_38=kube-vip watches Services and holds its leader Leases through the API with this token (ClusterRole system:kube-vip-role)"
          "checkov.io/skip6" = "CKV_K8S_8=kube-vip has no health signal (its optional /healthz answers OK whatever the VIP state); a leader that stops renewing its Lease loses the VIP to another server, and a probe restart would move the VIP for nothing"
          "checkov.io/skip7" = "CKV_K8S_9=no readiness signal either (see CKV_K8S_8); no Service sends traffic to these pods"
          "checkov.io/skip8" = "CKV_K8S_15=IfNotPresent on purpose: after a reboot the servers must bring the API VIP back before any registry is reachable"
          "checkov.io/skip9" = "CKV_K8S_43=pinned by tag in environments/ha/pins.tf; no digest could be read on the build machine"
        }
      }
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
            # root (the image's user): see the CKV_K8S_23 skip above
            securityContext = { runAsNonRoot = false, runAsUser = 0, runAsGroup = 0, seccompProfile = { type = "RuntimeDefault" } }
            containers = [{
              name            = "kube-vip"
              image           = var.image
              imagePullPolicy = "IfNotPresent"
              args            = ["manager"]
              env             = [for k, v in local.env : { name = k, value = v }]
              # kube-vip writes no file here: ARP and addresses go through netlink and raw sockets
              # (only egress and service security, both off, use iptables and its lock under /run)
              securityContext = { allowPrivilegeEscalation = false, readOnlyRootFilesystem = true, capabilities = { add = ["NET_ADMIN", "NET_RAW"], drop = ["ALL"] } }
              # the CPU limit bounds a runaway kube-vip to a quarter of a 4 vCPU server
              resources = { requests = { cpu = "20m", memory = "32Mi" }, limits = { cpu = "1", memory = "128Mi" } }
              ports     = [{ name = "metrics", containerPort = 2112, protocol = "TCP" }]
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

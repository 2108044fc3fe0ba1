# Storage classes:
# - fast-local (Delete): k3s's bundled local-path provisioner (node-local disk, RWO). The volume's
#   directory is DELETED with its claim: caches, scratch, data that can be rebuilt;
# - fast-local-retain (Retain): the same disk, but the directory and the PV survive when the claim
#   is deleted (by mistake, by a Helm uninstall, by an operator re-creating its cluster). Use it for
#   every database and other stateful data (Postgres, Vault Raft, Prometheus/Loki if kept);
#   reclaim or clean up by hand: `kubectl get pv | grep Released`;
# See README.md in this directory.
# - backup (RWX): csi-driver-nfs dynamic provisioning on nfs_server:nfs_export when both are set,
#   otherwise statically provisioned hostPath PVs on backup_nfs_mount, which the ffe_host
#   resources (or the operator) mount from the same NFS share on every node.

terraform {
  required_version = ">= 1.9.0"
}

variable "fast_class_name" {
  description = "Name of the fast local StorageClass."
  type        = string
  default     = "fast-local"
}

variable "fast_retain_class_name" {
  description = "Name of the fast local StorageClass that keeps volumes when their claim is deleted (databases)."
  type        = string
  default     = "fast-local-retain"
}

variable "backup_class_name" {
  description = "Name of the RWX backup StorageClass."
  type        = string
  default     = "backup-nfs"
}

variable "nfs_server" {
  description = "NFS server; null (with nfs_export null) = hostPath PVs on backup_mount."
  type        = string
  default     = null
}

variable "nfs_export" {
  description = "NFS export path on nfs_server."
  type        = string
  default     = null
}

variable "backup_mount" {
  description = "Where the backup share is mounted on every node (backup_nfs_mount)."
  type        = string
}

variable "csi_chart" {
  description = "csi-driver-nfs chart: an https URL of the chart archive (.tgz), pinned to a release tag; or a chart name in csi_chart_repo."
  type        = string
}

variable "csi_chart_version" {
  description = "csi-driver-nfs chart version."
  type        = string
}

variable "csi_chart_repo" {
  description = "Helm repository of csi-driver-nfs when csi_chart is a chart name; null when csi_chart is an archive URL."
  type        = string
  default     = null
}

variable "static_volumes" {
  description = "hostPath mode only: one pre-bound PV per backup claim (name => namespace, claim name, size). Each gets its own directory <backup_mount>/k8s/<name>."
  type = map(object({
    namespace = string
    claim     = string
    size      = string
  }))
  default = {
    "postgres-dumps"  = { namespace = "ffe-data", claim = "backup-postgres", size = "100Gi" }
    "vault-snapshots" = { namespace = "vault", claim = "backup-vault", size = "10Gi" }
    "cluster-exports" = { namespace = "monitoring", claim = "backup-cluster", size = "10Gi" }
  }
}

locals {
  use_csi = var.nfs_server != null && var.nfs_export != null
  labels  = { "app.kubernetes.io/part-of" = "ffe-ha" }

  fast = {
    apiVersion           = "storage.k8s.io/v1"
    kind                 = "StorageClass"
    metadata             = { name = var.fast_class_name, labels = local.labels }
    provisioner          = "rancher.io/local-path"
    reclaimPolicy        = "Delete"
    volumeBindingMode    = "WaitForFirstConsumer"
    allowVolumeExpansion = false
  }

  # Same provisioner and disk; only the reclaim policy differs (StorageClass fields are immutable,
  # hence a second class rather than a change to fast-local).
  fast_retain = merge(local.fast, {
    metadata      = { name = var.fast_retain_class_name, labels = local.labels }
    reclaimPolicy = "Retain"
  })

  csi_chart = {
    apiVersion = "helm.cattle.io/v1"
    kind       = "HelmChart"
    metadata   = { name = "csi-driver-nfs", namespace = "kube-system", labels = local.labels }
    spec = merge({
      chart           = var.csi_chart
      version         = var.csi_chart_version
      targetNamespace = "kube-system"
      valuesContent = yamlencode({
        # Two controllers (leader-elected) on the host network: never on one node, or both bind the
        # liveness port 29652. The chart renders controller.affinity only when it contains
        # nodeSelectorTerms (templates/csi-nfs-controller.yaml), hence the node term (Linux nodes).
        controller = {
          replicas          = 2
          runOnControlPlane = false
          affinity = {
            nodeAffinity = {
              requiredDuringSchedulingIgnoredDuringExecution = {
                nodeSelectorTerms = [{ matchExpressions = [{ key = "kubernetes.io/os", operator = "In", values = ["linux"] }] }]
              }
            }
            podAntiAffinity = {
              requiredDuringSchedulingIgnoredDuringExecution = [{
                topologyKey   = "kubernetes.io/hostname"
                labelSelector = { matchLabels = { app = "csi-nfs-controller" } }
              }]
            }
          }
        }
        # the bundled snapshot CRDs/controller are not used
        externalSnapshotter = { enabled = false }
      })
    }, var.csi_chart_repo == null ? {} : { repo = var.csi_chart_repo })
  }

  backup_csi = {
    apiVersion    = "storage.k8s.io/v1"
    kind          = "StorageClass"
    metadata      = { name = var.backup_class_name, labels = local.labels }
    provisioner   = "nfs.csi.k8s.io"
    reclaimPolicy = "Retain"
    # backups must survive their claim
    volumeBindingMode = "Immediate"
    parameters        = { server = coalesce(var.nfs_server, "-"), share = coalesce(var.nfs_export, "-"), subDir = "k8s/$${pvc.metadata.namespace}-$${pvc.metadata.name}" }
    mountOptions      = ["nfsvers=4.1", "hard"]
  }

  backup_static = {
    apiVersion        = "storage.k8s.io/v1"
    kind              = "StorageClass"
    metadata          = { name = var.backup_class_name, labels = local.labels }
    provisioner       = "kubernetes.io/no-provisioner"
    reclaimPolicy     = "Retain"
    volumeBindingMode = "Immediate"
  }

  static_pvs = [for name, v in var.static_volumes : {
    apiVersion = "v1"
    kind       = "PersistentVolume"
    metadata   = { name = "backup-${name}", labels = merge(local.labels, { "ffe-ha/backup-volume" = name }) }
    spec = {
      capacity                      = { storage = v.size }
      accessModes                   = ["ReadWriteMany"]
      persistentVolumeReclaimPolicy = "Retain"
      storageClassName              = var.backup_class_name
      claimRef                      = { namespace = v.namespace, name = v.claim }
      hostPath                      = { path = "${trimsuffix(var.backup_mount, "/")}/k8s/${name}", type = "DirectoryOrCreate" }
    }
  }]
}

output "manifests" {
  description = "File name => multi-document YAML."
  value = local.use_csi ? {
    "storage-classes.yaml" = join("---\n", [yamlencode(local.fast), yamlencode(local.fast_retain), yamlencode(local.backup_csi)])
    "csi-driver-nfs.yaml"  = yamlencode(local.csi_chart)
    } : {
    "storage-classes.yaml" = join("---\n", concat([yamlencode(local.fast), yamlencode(local.fast_retain), yamlencode(local.backup_static)], [for pv in local.static_pvs : yamlencode(pv)]))
  }
}

output "class_names" {
  description = "StorageClass names: fast (local, Delete: rebuildable data), fast_retain (local, Retain: databases) and backup (RWX)."
  value       = { fast = var.fast_class_name, fast_retain = var.fast_retain_class_name, backup = var.backup_class_name }
}

output "mode" {
  description = "\"csi-nfs\" or \"hostpath\"."
  value       = local.use_csi ? "csi-nfs" : "hostpath"
}

output "claim_dirs" {
  description = "Backup claim \"namespace/claim\" => its directory relative to the backup share (backup_mount on every node), for the claims of static_volumes: k8s/<volume name> (hostpath PVs) or k8s/<namespace>-<claim> (the NFS CSI driver's subDir). ffe-ha verify reads backup ages there."
  value       = { for name, v in var.static_volumes : "${v.namespace}/${v.claim}" => local.use_csi ? "k8s/${v.namespace}-${v.claim}" : "k8s/${name}" }
}

# Inputs of the Vault HA layer (HashiCorp Vault or OpenBao, Raft storage, TLS from cert-manager).
# Raft timing, Shamir numbers and the snapshot schedule are NOT inputs: they are read from
# vault-settings.yaml, the one source the lab test reads too.

variable "distribution" {
  description = "\"vault\" = HashiCorp's chart `vault` and image hashicorp/vault; \"openbao\" = OpenBao's chart `openbao` and image quay.io/openbao/openbao. Same values, same object names."
  type        = string
  nullable    = false

  validation {
    condition     = contains(["vault", "openbao"], var.distribution)
    error_message = "distribution must be \"vault\" or \"openbao\"."
  }
}

variable "chart_version" {
  description = "Version of the chart named by distribution (vendored under upstream/charts/<chart>/<version>/)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.chart_version))
    error_message = "chart_version must be x.y.z, e.g. \"0.32.0\"."
  }
}

variable "chart_repo" {
  description = "Helm repository of the chart named by distribution."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^https://", var.chart_repo))
    error_message = "chart_repo must be an https:// Helm repository URL."
  }
}

variable "image_tag" {
  description = "Server image tag (x.y.z, no leading v): hashicorp/vault:<tag> or quay.io/openbao/openbao:<tag>. Also runs the agent sidecars and the snapshot CronJob."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.image_tag))
    error_message = "image_tag must be x.y.z without a leading v, e.g. \"1.21.2\"."
  }
}

variable "namespace" {
  description = "Namespace of the release (modules/namespaces creates it with its network policies)."
  type        = string
  default     = "vault"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS-1123 label."
  }
}

variable "cert_manager_namespace" {
  description = "cert-manager's namespace: a ClusterIssuer reads its CA Secret from there (cert-manager's default cluster resource namespace), so the CA lives there."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.cert_manager_namespace))
    error_message = "cert_manager_namespace must be a DNS-1123 label."
  }
}

variable "ca_namespaces" {
  description = "Namespaces that get Secret vault-ca (key ca.crt = the CA Vault's certificate chains to), issued by ClusterIssuer vault-ca, for clients that verify Vault (the app chart reads it in ffe)."
  type        = list(string)
  default     = ["ffe"]
  nullable    = false

  validation {
    condition     = alltrue([for n in var.ca_namespaces : can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", n))]) && length(distinct(var.ca_namespaces)) == length(var.ca_namespaces)
    error_message = "ca_namespaces must be distinct DNS-1123 labels."
  }
}

variable "member_ips" {
  description = "One fixed IPv4 per Raft member (its length is the member count: 1, 3 or 5). Member i gets LoadBalancer Service vault-member-<i> at member_ips[i], announced by kube-vip, and the address is in the server certificate."
  type        = list(string)
  nullable    = false

  validation {
    condition     = contains([1, 3, 5], length(var.member_ips)) && alltrue([for ip in var.member_ips : can(cidrhost("${ip}/32", 0))]) && length(distinct(var.member_ips)) == length(var.member_ips)
    error_message = "member_ips must hold 1, 3 or 5 distinct IPv4 addresses (an odd Raft quorum)."
  }
}

variable "loadbalancer_annotation" {
  description = "Service annotation that pins a LoadBalancer IP announced by kube-vip (modules/vip output)."
  type        = string
  nullable    = false

  validation {
    condition     = length(var.loadbalancer_annotation) > 0
    error_message = "loadbalancer_annotation must not be empty."
  }
}

variable "data_storage_class" {
  description = "StorageClass of the Raft data volumes: node-local and Retain (modules/storage fast_retain)."
  type        = string
  nullable    = false

  validation {
    condition     = length(var.data_storage_class) > 0
    error_message = "data_storage_class must not be empty."
  }
}

variable "data_size" {
  description = "Size of each member's Raft data volume (whole Gi)."
  type        = string
  default     = "10Gi"
  nullable    = false

  validation {
    condition     = can(regex("^[1-9][0-9]*Gi$", var.data_size))
    error_message = "data_size must be whole gibibytes, e.g. \"10Gi\"."
  }
}

variable "backup_storage_class" {
  description = "RWX StorageClass on the NFS backup share (modules/storage backup) for the snapshot claim."
  type        = string
  nullable    = false

  validation {
    condition     = length(var.backup_storage_class) > 0
    error_message = "backup_storage_class must not be empty."
  }
}

variable "snapshot_claim" {
  description = "The snapshot claim on the backup class. Its name must match the PV modules/storage pre-binds in hostpath mode (static_volumes \"vault-snapshots\": vault/backup-vault, 10Gi); size at most that PV's."
  type = object({
    name = string
    size = string
  })
  default  = { name = "backup-vault", size = "10Gi" }
  nullable = false

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.snapshot_claim.name)) && can(regex("^[1-9][0-9]*Gi$", var.snapshot_claim.size))
    error_message = "snapshot_claim: name must be a DNS-1123 name and size whole gibibytes."
  }
}

variable "backup_retention_days" {
  description = "Days to keep Raft snapshots on the backup share; older ones are deleted after a successful snapshot."
  type        = number
  nullable    = false

  validation {
    condition     = floor(var.backup_retention_days) == var.backup_retention_days && var.backup_retention_days >= 1
    error_message = "backup_retention_days must be a whole number >= 1."
  }
}

variable "tls_reload_check_seconds" {
  description = "How often the tls-reload sidecar compares the mounted server certificate with the one the server was last signalled for (a renewed certificate is served within this many seconds after the kubelet updates the Secret volume, itself up to about a minute after cert-manager renews)."
  type        = number
  default     = 60
  nullable    = false

  validation {
    condition     = var.tls_reload_check_seconds >= 1 && var.tls_reload_check_seconds <= 3600 && floor(var.tls_reload_check_seconds) == var.tls_reload_check_seconds
    error_message = "tls_reload_check_seconds must be a whole number of seconds from 1 to 3600."
  }
}

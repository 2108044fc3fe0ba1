# Inputs of the cluster backups that are not a layer's own: the encrypted daily export of every
# Secret and ConfigMap, and the optional off-site copy of the whole backup share.

variable "namespace" {
  description = "Namespace of both CronJobs and of the export's claim (modules/namespaces owns it; modules/storage's static volume \"cluster-exports\" is bound to claim `claim.name` there)."
  type        = string
  nullable    = false
}

variable "backup_storage_class" {
  description = "The RWX backup StorageClass (modules/storage class_names.backup)."
  type        = string
  nullable    = false
}

variable "claim" {
  description = "The export's claim on the backup share: name and size (modules/storage static_volumes \"cluster-exports\" pre-binds a PV to it in hostpath mode, so keep both equal)."
  type        = object({ name = string, size = string })
  default     = { name = "backup-cluster", size = "10Gi" }
  nullable    = false
}

variable "backup_retention_days" {
  description = "Exports older than this many days are deleted after a successful export."
  type        = number
  nullable    = false

  validation {
    condition     = floor(var.backup_retention_days) == var.backup_retention_days && var.backup_retention_days >= 1
    error_message = "backup_retention_days must be a whole number >= 1."
  }
}

variable "age_recipient" {
  description = "age X25519 recipient (public key, `age1...`) the export is encrypted to. Its private key never enters the cluster. null = no export is rendered."
  type        = string
  default     = null

  validation {
    condition     = var.age_recipient == null || can(regex("^age1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{58}$", coalesce(var.age_recipient, "-")))
    error_message = "age_recipient must be an age X25519 public key: \"age1\" and 58 lower-case bech32 characters (age-keygen -y KEYFILE prints it)."
  }
}

variable "export_schedule" {
  description = "Cron schedule (5 fields, UTC) of the secrets export."
  type        = string
  default     = "15 2 * * *"
  nullable    = false

  validation {
    condition     = length(split(" ", var.export_schedule)) == 5
    error_message = "export_schedule must be a 5-field cron schedule, e.g. \"15 2 * * *\"."
  }
}

variable "export_image" {
  description = "Image of the export job: bash, coreutils, findutils, GNU tar, jq, kubectl and age (environments/ha/pins.tf)."
  type        = string
  nullable    = false
}

variable "backup_mount" {
  description = "Where the backup share is mounted on every node (backup_nfs_mount): the off-site copy reads it, read-only, as a hostPath."
  type        = string
  nullable    = false
}

variable "offsite" {
  description = "Off-site copy of the whole backup share with rsync over SSH; null = none. target = user@host:path, known_hosts = the host's known_hosts line, ssh_key_secret = Secret in `namespace` whose key ssh-privatekey holds the private key (type kubernetes.io/ssh-auth)."
  type = object({
    target         = string
    known_hosts    = string
    ssh_key_secret = string
    ssh_port       = optional(number, 22)
    schedule       = optional(string, "0 5 * * *")
  })
  default = null

  validation {
    condition     = var.offsite == null || can(regex("^[a-z_][a-z0-9_.-]*@[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?:[A-Za-z0-9._/~-]+$", var.offsite.target))
    error_message = "offsite.target must be user@host:path (no spaces, no quotes), e.g. \"ffe-backup@backup.example.com:/srv/ffe-offsite\"."
  }

  validation {
    condition     = var.offsite == null || can(regex("^(\\S+) (ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,2}( [^\\n]*)?$", var.offsite.known_hosts))
    error_message = "offsite.known_hosts must be one known_hosts line: HOST KEYTYPE BASE64KEY (ssh-keyscan -t ed25519 HOST prints it)."
  }

  # ssh with StrictHostKeyChecking only accepts a line naming the host (port 22) or [host]:port;
  # hashed names (|1|...) cannot be compared here.
  validation {
    condition = var.offsite == null || try(
      startswith(split(" ", var.offsite.known_hosts)[0], "|1|") ||
      contains(split(",", split(" ", var.offsite.known_hosts)[0]), var.offsite.ssh_port == 22 ? regex("@([^:]+):", var.offsite.target)[0] : "[${regex("@([^:]+):", var.offsite.target)[0]}]:${var.offsite.ssh_port}"),
    false)
    error_message = "offsite.known_hosts does not name the target's host (as \"HOST\" for port 22, \"[HOST]:PORT\" otherwise): ssh would refuse the connection. Use the line ssh-keyscan -p PORT HOST prints."
  }

  validation {
    condition     = var.offsite == null || can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.offsite.ssh_key_secret))
    error_message = "offsite.ssh_key_secret must be the name of a Secret (DNS subdomain)."
  }

  validation {
    condition     = var.offsite == null || try(var.offsite.ssh_port >= 1 && var.offsite.ssh_port <= 65535 && floor(var.offsite.ssh_port) == var.offsite.ssh_port, false)
    error_message = "offsite.ssh_port must be a port number 1-65535."
  }

  validation {
    condition     = var.offsite == null || try(length(split(" ", var.offsite.schedule)) == 5, false)
    error_message = "offsite.schedule must be a 5-field cron schedule, e.g. \"0 5 * * *\"."
  }
}

variable "offsite_image" {
  description = "Image of the off-site copy: bash, coreutils, OpenSSH client and rsync (environments/ha/pins.tf)."
  type        = string
  nullable    = false
}

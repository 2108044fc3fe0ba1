# Input variables of the HA environment.
#
# The first section holds every variable of the seed's terraform.tfvars (the user's contract);
# the second holds what this environment adds. Every added variable has a safe default, so the
# seed's block on its own plans.
#
# Validation rules: each rule belongs to ONE variable, and its message names that variable and
# says how to fix it. Cross-variable rules (Terraform >= 1.9) always sit on the variable declared
# later in the chain below, so a collision is reported once and the rules have no cycle:
#   network_cidr -> master_ips -> worker_ips -> postgres_primary_ip -> vault_cluster_ips
#   -> api_vip -> ingress_ip;  network_cidr -> pod_cidr -> service_cidr.
# Note: Terraform evaluates error_message even when the condition holds, so every message is
# written to evaluate on any input (try()).

# ---------------------------------------------------------------------------------------------
# Seed variables
# ---------------------------------------------------------------------------------------------

variable "environment" {
  description = "Deployment stage, used in labels and names: one of production, staging, development, lab."
  type        = string
  default     = "production"
  nullable    = false

  validation {
    condition     = contains(["production", "staging", "development", "lab"], var.environment)
    error_message = "environment = \"${var.environment}\" is not allowed. Use one of: production, staging, development, lab."
  }
}

variable "cluster_name" {
  description = "Cluster name; node names are <cluster_name>-master-<i> and <cluster_name>-worker-<i>. Lowercase DNS label, at most 40 characters."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$", var.cluster_name))
    error_message = "cluster_name = \"${var.cluster_name}\" is invalid: use 1-40 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-' (node names add '-worker-NN' and must stay a DNS label), e.g. \"ffe-prod\"."
  }
}

variable "cluster_size" {
  description = "\"ha\": odd master_count >= 3 (etcd quorum) and 2..worker_count_max workers. \"single\": one master, 0..worker_count_max workers (labs, not production)."
  type        = string
  default     = "ha"
  nullable    = false

  validation {
    condition     = contains(["ha", "single"], var.cluster_size)
    error_message = "cluster_size = \"${var.cluster_size}\" is not allowed. Use \"ha\" (production) or \"single\" (one master, for labs)."
  }
}

variable "master_count" {
  description = "Number of k3s servers (control plane + embedded etcd). cluster_size \"ha\": odd, 3..7. \"single\": 1."
  type        = number
  default     = 3
  nullable    = false

  validation {
    condition     = floor(var.master_count) == var.master_count && (var.cluster_size == "ha" ? (var.master_count >= 3 && var.master_count <= 7 && var.master_count % 2 == 1) : var.master_count == 1)
    error_message = "master_count = ${var.master_count} is invalid for cluster_size = \"${var.cluster_size}\". For \"ha\" use an odd number from 3 to 7 (etcd needs a majority: 3 survives one failure, 5 survives two); for \"single\" use 1."
  }
}

variable "worker_count" {
  description = "Number of k3s agents. cluster_size \"ha\": 2..worker_count_max; \"single\": 0..worker_count_max."
  type        = number
  default     = 3
  nullable    = false

  validation {
    condition     = floor(var.worker_count) == var.worker_count && var.worker_count >= (var.cluster_size == "ha" ? 2 : 0) && var.worker_count <= var.worker_count_max
    error_message = "worker_count = ${var.worker_count} is out of range for cluster_size = \"${var.cluster_size}\": use a whole number from ${var.cluster_size == "ha" ? 2 : 0} to worker_count_max = ${var.worker_count_max} (raise worker_count_max to run more agents)."
  }
}

variable "kubernetes_version" {
  description = "k3s version: a channel \"vX.Y\" (latest patch of that minor) or an exact release \"vX.Y.Z+k3sN\". null = the default in pins.tf. Versions outside the supported list in pins.tf plan with a warning."
  type        = string
  default     = null

  validation {
    condition     = var.kubernetes_version == null || can(regex("^v1\\.[0-9]{1,2}(\\.[0-9]{1,2}\\+k3s[0-9]+)?$", var.kubernetes_version))
    error_message = "kubernetes_version = \"${coalesce(var.kubernetes_version, "null")}\" is not a k3s version. Use a channel like \"v1.36\" or an exact release like \"v1.36.2+k3s1\"."
  }
}

variable "postgres_version" {
  description = "PostgreSQL major version for the Postgres HA cluster, e.g. \"17\": one the pinned Percona operator has images for (pins.tf postgres_images: 14 to 18). null = the default in pins.tf. Majors past end of life plan with a warning."
  type        = string
  default     = null

  validation {
    condition     = var.postgres_version == null || can(regex("^[1-9][0-9]$", var.postgres_version))
    error_message = "postgres_version = \"${coalesce(var.postgres_version, "null")}\" is not a PostgreSQL major version. Use a two-digit major such as \"17\" (quoted)."
  }

  # The Percona operator has no default images: a major without pinned images cannot run at all.
  validation {
    condition     = var.postgres_version == null || !can(regex("^[1-9][0-9]$", var.postgres_version)) || contains(keys(local.postgres_images), coalesce(var.postgres_version, "-"))
    error_message = "postgres_version = \"${coalesce(var.postgres_version, "null")}\" is not supported: the pinned Percona operator ${local.pinned_component_versions.pg_operator} has PostgreSQL images for majors ${join(", ", sort(keys(local.postgres_images)))} only (pins.tf postgres_images). Use one of them, e.g. postgres_version = \"${local.default_versions.postgres}\"."
  }
}

variable "vault_version" {
  description = "Vault version, \"X.Y\" or \"X.Y.Z\". null = the default in pins.tf. Versions outside the supported list plan with a warning."
  type        = string
  default     = null

  validation {
    condition     = var.vault_version == null || can(regex("^[1-9][0-9]*\\.[0-9]+(\\.[0-9]+)?$", var.vault_version))
    error_message = "vault_version = \"${coalesce(var.vault_version, "null")}\" is not a Vault version. Use \"X.Y\" or \"X.Y.Z\", e.g. \"1.21\"."
  }

  # "X.Y" needs a patch to pull (pins.tf vault_image_tags); "X.Y.Z" is used as given.
  validation {
    condition     = var.vault_version == null || !can(regex("^[1-9][0-9]*\\.[0-9]+$", var.vault_version)) || contains(keys(local.vault_image_tags), coalesce(var.vault_version, "-"))
    error_message = "vault_version = \"${coalesce(var.vault_version, "null")}\" has no pinned image: a minor must be one of ${join(", ", sort(keys(local.vault_image_tags)))} (pins.tf vault_image_tags), or give the exact release, e.g. \"${coalesce(var.vault_version, "1.21")}.0\"."
  }
}

variable "domain_names" {
  description = "Public DNS names served by the edge (TLS via ACME when acme_enabled). Lowercase, no wildcards (HTTP-01 cannot issue them). Required (non-empty) when acme_enabled."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for d in var.domain_names : length(d) <= 253 && can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", d))])
    error_message = "domain_names contains invalid DNS names: ${jsonencode([for d in var.domain_names : d if !(length(d) <= 253 && can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", d)))])}. Use lowercase fully qualified names such as \"ffe.example.com\" (no wildcard, no trailing dot, no scheme)."
  }

  validation {
    condition     = length(distinct(var.domain_names)) == length(var.domain_names)
    error_message = "domain_names lists a name more than once. Remove the duplicates."
  }

  validation {
    condition     = !var.acme_enabled || length(var.domain_names) > 0
    error_message = "domain_names is empty but acme_enabled = true: ACME needs at least one name to certify. Add your names, e.g. domain_names = [\"ffe.example.com\"], or set acme_enabled = false."
  }
}

variable "acme_email" {
  description = "Contact e-mail for the ACME (Let's Encrypt) account. Required when acme_enabled."
  type        = string
  default     = null

  validation {
    condition     = var.acme_email == null ? !var.acme_enabled : can(regex("^[A-Za-z0-9._%+-]+@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]{2,63}$", var.acme_email))
    error_message = "acme_email = \"${coalesce(var.acme_email, "null")}\" is not usable: ${var.acme_email == null ? "it is required while acme_enabled = true; set acme_email = \"ops@example.com\" or acme_enabled = false" : "it must be a plain address like \"ops@example.com\" (no name, no angle brackets)"}."
  }
}

variable "network_cidr" {
  description = "IPv4 network of the nodes, e.g. \"10.0.0.0/16\". Every node IP, VIP and service IP must be inside it."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[0-9.]+/[0-9]+$", var.network_cidr)) && try(cidrhost(var.network_cidr, 0) == split("/", var.network_cidr)[0] && tonumber(split("/", var.network_cidr)[1]) >= 8 && tonumber(split("/", var.network_cidr)[1]) <= 30, false)
    error_message = "network_cidr = \"${var.network_cidr}\" is not an IPv4 network in canonical form with a prefix from /8 to /30. Write the network address, e.g. \"10.0.0.0/16\"${try(" (did you mean \"${cidrhost(var.network_cidr, 0)}/${split("/", var.network_cidr)[1]}\"?)", "")}."
  }
}

variable "master_ips" {
  description = "IPv4 addresses of the masters (k3s servers), one per master_count, inside network_cidr. The first one bootstraps the cluster."
  type        = list(string)
  nullable    = false

  validation {
    condition     = length(var.master_ips) == var.master_count
    error_message = "master_ips has ${length(var.master_ips)} addresses but master_count = ${var.master_count}. List exactly one IP per master."
  }

  validation {
    condition     = alltrue([for ip in var.master_ips : can(regex(local.ipv4_re, ip))])
    error_message = "master_ips contains values that are not IPv4 addresses: ${jsonencode([for ip in var.master_ips : ip if !can(regex(local.ipv4_re, ip))])}. Use dotted quads like \"10.0.1.10\"."
  }

  validation {
    condition     = local.network == null || alltrue([for ip in var.master_ips : !can(regex(local.ipv4_re, ip)) || try(cidrhost("${ip}/${local.network.prefix}", 0) == local.network.first && !contains([local.network.first, local.network.last], ip), false)])
    error_message = "master_ips ${jsonencode([for ip in var.master_ips : ip if can(regex(local.ipv4_re, ip)) && !try(cidrhost("${ip}/${local.network.prefix}", 0) == local.network.first && !contains([local.network.first, local.network.last], ip), false)])} are outside network_cidr = \"${var.network_cidr}\" (or are its network/broadcast address). Fix the IPs or widen network_cidr."
  }

  validation {
    condition     = length(distinct(var.master_ips)) == length(var.master_ips)
    error_message = "master_ips lists an address more than once: ${jsonencode(distinct([for ip in var.master_ips : ip if length([for x in var.master_ips : x if x == ip]) > 1]))}. Give every master its own IP."
  }
}

variable "worker_ips" {
  description = "IPv4 addresses of the workers (k3s agents), one per worker_count, inside network_cidr, not used by any master."
  type        = list(string)
  nullable    = false

  validation {
    condition     = length(var.worker_ips) == var.worker_count
    error_message = "worker_ips has ${length(var.worker_ips)} addresses but worker_count = ${var.worker_count}. List exactly one IP per worker (to scale, change both together)."
  }

  validation {
    condition     = alltrue([for ip in var.worker_ips : can(regex(local.ipv4_re, ip))])
    error_message = "worker_ips contains values that are not IPv4 addresses: ${jsonencode([for ip in var.worker_ips : ip if !can(regex(local.ipv4_re, ip))])}. Use dotted quads like \"10.0.2.10\"."
  }

  validation {
    condition     = local.network == null || alltrue([for ip in var.worker_ips : !can(regex(local.ipv4_re, ip)) || try(cidrhost("${ip}/${local.network.prefix}", 0) == local.network.first && !contains([local.network.first, local.network.last], ip), false)])
    error_message = "worker_ips ${jsonencode([for ip in var.worker_ips : ip if can(regex(local.ipv4_re, ip)) && !try(cidrhost("${ip}/${local.network.prefix}", 0) == local.network.first && !contains([local.network.first, local.network.last], ip), false)])} are outside network_cidr = \"${var.network_cidr}\" (or are its network/broadcast address). Fix the IPs or widen network_cidr."
  }

  validation {
    condition     = length(distinct(var.worker_ips)) == length(var.worker_ips) && length(setintersection(var.worker_ips, var.master_ips)) == 0
    error_message = "worker_ips reuses addresses ${jsonencode(sort(distinct(concat([for ip in var.worker_ips : ip if length([for x in var.worker_ips : x if x == ip]) > 1], tolist(setintersection(var.worker_ips, var.master_ips))))))} (repeated in worker_ips or already in master_ips). Every node needs its own IP."
  }
}

variable "postgres_replicas" {
  description = "Postgres streaming replicas besides the primary (1..5)."
  type        = number
  default     = 2
  nullable    = false

  validation {
    condition     = floor(var.postgres_replicas) == var.postgres_replicas && var.postgres_replicas >= 1 && var.postgres_replicas <= 5
    error_message = "postgres_replicas = ${var.postgres_replicas} is out of range: use a whole number from 1 to 5 (HA needs at least one replica to fail over to; more than 5 only adds replication load on the primary)."
  }
}

variable "postgres_primary_ip" {
  description = "Fixed IPv4 (inside network_cidr, not a node IP or VIP) where the Postgres primary is exposed (a LoadBalancer IP announced by kube-vip that follows the Patroni leader). null = no Postgres layer is deployed (no operator, no cluster, Postgres outputs null)."
  type        = string
  default     = null

  validation {
    condition     = var.postgres_primary_ip == null || (can(regex(local.ipv4_re, var.postgres_primary_ip)) && (local.network == null || try(cidrhost("${var.postgres_primary_ip}/${local.network.prefix}", 0) == local.network.first && !contains([local.network.first, local.network.last], var.postgres_primary_ip), false)))
    error_message = "postgres_primary_ip = \"${coalesce(var.postgres_primary_ip, "null")}\" must be an IPv4 address inside network_cidr = \"${var.network_cidr}\" (not its network/broadcast address). Pick a free address in the node network."
  }

  validation {
    condition     = var.postgres_primary_ip == null || !contains(concat(var.master_ips, var.worker_ips), coalesce(var.postgres_primary_ip, "-"))
    error_message = "postgres_primary_ip = \"${coalesce(var.postgres_primary_ip, "null")}\" is already a node IP (master_ips/worker_ips). Pick a free address: a service IP must not be a node's own address."
  }
}

variable "postgres_synchronous_replication" {
  description = "Postgres commits wait for one synchronous standby (Patroni synchronous_mode, not strict): a primary crash loses no acknowledged commit. false = asynchronous replication: lower write latency, but a primary crash can lose the commits the promoted replica had not received (up to maximum_lag_on_failover in ha-settings.yaml, typically under a second of writes)."
  type        = bool
  default     = true
  nullable    = false
}

variable "vault_ha_enabled" {
  description = "Run Vault as a 3-member Raft cluster (true) or as a single member (false)."
  type        = bool
  default     = true
  nullable    = false
}

variable "vault_cluster_ips" {
  description = "Fixed IPv4 per Vault member (3 when vault_ha_enabled, 1 otherwise), inside network_cidr, not used by nodes or Postgres. Each member gets a kube-vip LoadBalancer there, through which Terraform unseals it. [] = no Vault layer (nothing deployed, Vault outputs null)."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = length(var.vault_cluster_ips) == 0 || length(var.vault_cluster_ips) == (var.vault_ha_enabled ? 3 : 1)
    error_message = "vault_cluster_ips has ${length(var.vault_cluster_ips)} addresses: ${var.vault_ha_enabled ? "vault_ha_enabled = true needs exactly 3 (one per Raft member)" : "vault_ha_enabled = false needs exactly 1"}, or [] for no Vault layer."
  }

  validation {
    condition     = alltrue([for ip in var.vault_cluster_ips : can(regex(local.ipv4_re, ip)) && (local.network == null || try(cidrhost("${ip}/${local.network.prefix}", 0) == local.network.first && !contains([local.network.first, local.network.last], ip), false))])
    error_message = "vault_cluster_ips ${jsonencode([for ip in var.vault_cluster_ips : ip if !(can(regex(local.ipv4_re, ip)) && (local.network == null || try(cidrhost("${ip}/${local.network.prefix}", 0) == local.network.first && !contains([local.network.first, local.network.last], ip), false)))])} are not IPv4 addresses inside network_cidr = \"${var.network_cidr}\". Pick free addresses in the node network."
  }

  validation {
    condition     = length(distinct(var.vault_cluster_ips)) == length(var.vault_cluster_ips) && length(setintersection(var.vault_cluster_ips, concat(var.master_ips, var.worker_ips, compact([var.postgres_primary_ip])))) == 0
    error_message = "vault_cluster_ips reuses addresses ${jsonencode(sort(distinct(concat([for ip in var.vault_cluster_ips : ip if length([for x in var.vault_cluster_ips : x if x == ip]) > 1], tolist(setintersection(var.vault_cluster_ips, concat(var.master_ips, var.worker_ips, compact([var.postgres_primary_ip]))))))))} (repeated, or already used by master_ips, worker_ips or postgres_primary_ip). Every Vault member needs its own free IP."
  }
}

variable "backup_nfs_mount" {
  description = "Absolute path where the shared backup storage (NFS) is mounted on every node. etcd snapshots go to <backup_nfs_mount>/etcd-snapshots."
  type        = string
  default     = "/mnt/backups"
  nullable    = false

  validation {
    condition     = can(regex("^(/[A-Za-z0-9._-]+)+/?$", var.backup_nfs_mount)) && !can(regex("(^|/)\\.\\.?(/|$)", var.backup_nfs_mount))
    error_message = "backup_nfs_mount = \"${var.backup_nfs_mount}\" must be an absolute path below / made of letters, digits, '.', '_' and '-' (no spaces, no '..'), e.g. \"/mnt/backups\"."
  }
}

variable "backup_retention_days" {
  description = "Days to keep backups: etcd snapshots (snapshots per day x days), Postgres pgBackRest backups (full backups younger than this, with their WAL: point-in-time restore over these days) and the daily pg_dump files; Vault backups in a later layer."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = floor(var.backup_retention_days) == var.backup_retention_days && var.backup_retention_days >= 1 && var.backup_retention_days <= 3650
    error_message = "backup_retention_days = ${var.backup_retention_days} is out of range: use a whole number of days from 1 to 3650."
  }
}

# ---------------------------------------------------------------------------------------------
# Added by ffe-ha: SSH access
# ---------------------------------------------------------------------------------------------

variable "ssh_user" {
  description = "SSH user on every node. Non-root users need passwordless sudo (the provider runs `sudo -n`)."
  type        = string
  default     = "root"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.ssh_user))
    error_message = "ssh_user = \"${var.ssh_user}\" is not a valid Linux user name: use up to 32 characters of a-z, 0-9, '_' and '-', starting with a letter or '_'."
  }
}

variable "ssh_port" {
  description = "SSH port on every node."
  type        = number
  default     = 22
  nullable    = false

  validation {
    condition     = floor(var.ssh_port) == var.ssh_port && var.ssh_port >= 1 && var.ssh_port <= 65535
    error_message = "ssh_port = ${var.ssh_port} is not a TCP port: use a whole number from 1 to 65535."
  }
}

variable "ssh_private_key_path" {
  description = "Private key file for SSH (\"~\" is expanded). null = use ssh-agent / the default identities."
  type        = string
  default     = null

  validation {
    condition     = var.ssh_private_key_path == null || try(fileexists(pathexpand(var.ssh_private_key_path)), false)
    error_message = "ssh_private_key_path = \"${coalesce(var.ssh_private_key_path, "null")}\" does not exist on this machine. Point it at your key file (e.g. \"~/.ssh/id_ed25519\") or remove it to use ssh-agent."
  }
}

variable "ssh_known_hosts_file" {
  description = "known_hosts file with every node's host key (\"~\" is expanded). Required to apply unless ssh_insecure_ignore_host_keys = true (planning works without it, with a warning)."
  type        = string
  default     = null

  validation {
    condition     = var.ssh_known_hosts_file == null || try(fileexists(pathexpand(var.ssh_known_hosts_file)), false)
    error_message = "ssh_known_hosts_file = \"${coalesce(var.ssh_known_hosts_file, "null")}\" does not exist on this machine. Create it (`ssh-keyscan -p <ssh_port> -t ed25519 <node IPs> > known_hosts`, then verify the fingerprints, docs/deploy.md) or remove the setting."
  }
}

variable "ssh_insecure_ignore_host_keys" {
  description = "Connect without checking host keys when ssh_known_hosts_file is unset. Off by default: without pinning, a machine impersonating a node receives the cluster token. Only for throw-away labs."
  type        = bool
  default     = false
  nullable    = false
}

variable "ssh_connect_timeout_seconds" {
  description = "Timeout for each SSH connection attempt, in seconds."
  type        = number
  default     = 10
  nullable    = false

  validation {
    condition     = floor(var.ssh_connect_timeout_seconds) == var.ssh_connect_timeout_seconds && var.ssh_connect_timeout_seconds >= 1 && var.ssh_connect_timeout_seconds <= 300
    error_message = "ssh_connect_timeout_seconds = ${var.ssh_connect_timeout_seconds} is out of range: use 1 to 300."
  }
}

# ---------------------------------------------------------------------------------------------
# Added by ffe-ha: sizing, addresses, networks
# ---------------------------------------------------------------------------------------------

variable "worker_count_max" {
  description = "Upper bound for worker_count (default 5, the seed's 2-5 workers). Raise it deliberately for bigger clusters or benches."
  type        = number
  default     = 5
  nullable    = false

  validation {
    condition     = floor(var.worker_count_max) == var.worker_count_max && var.worker_count_max >= 2 && var.worker_count_max <= 100
    error_message = "worker_count_max = ${var.worker_count_max} is out of range: use a whole number from 2 to 100."
  }
}

variable "api_vip" {
  description = "Virtual IPv4 for the Kubernetes API (kube-vip, ARP), inside network_cidr and not used by anything else. Added to the API certificate and used in the kubeconfig. null = kubeconfig points at the first master (plan warns: not HA)."
  type        = string
  default     = null

  validation {
    condition     = var.api_vip == null || (can(regex(local.ipv4_re, var.api_vip)) && (local.network == null || try(cidrhost("${var.api_vip}/${local.network.prefix}", 0) == local.network.first && !contains([local.network.first, local.network.last], var.api_vip), false)))
    error_message = "api_vip = \"${coalesce(var.api_vip, "null")}\" must be an IPv4 address inside network_cidr = \"${var.network_cidr}\" (not its network/broadcast address): kube-vip announces it by ARP on the node network. Pick a free address there."
  }

  validation {
    condition     = var.api_vip == null || !contains(concat(var.master_ips, var.worker_ips, compact([var.postgres_primary_ip]), var.vault_cluster_ips), coalesce(var.api_vip, "-"))
    error_message = "api_vip = \"${coalesce(var.api_vip, "null")}\" is already used by master_ips, worker_ips, postgres_primary_ip or vault_cluster_ips. The VIP must be a free address."
  }
}

variable "vip_interface" {
  description = "Node network interface kube-vip announces api_vip and the LoadBalancer addresses on (ARP), e.g. \"ens18\". Must exist on every master with the same name and carry network_cidr. null = kube-vip uses the interface of the default route (wrong on multi-NIC hosts whose default route is not on network_cidr; fails on hosts without a default route)."
  type        = string
  default     = null

  validation {
    condition     = var.vip_interface == null || can(regex("^[A-Za-z0-9_.-]{1,15}$", coalesce(var.vip_interface, "-")))
    error_message = "vip_interface = \"${coalesce(var.vip_interface, "null")}\" is not a Linux interface name (1-15 letters, digits, '.', '_', '-'). Use the name `ip -br addr` shows on the masters for the address in network_cidr, or null."
  }
}

variable "ingress_ip" {
  description = "Fixed IPv4 of the edge (Gateway on 80/443; point your DNS names here), inside network_cidr and not used by anything else. null = no fixed edge IP."
  type        = string
  default     = null

  validation {
    condition     = var.ingress_ip == null || (can(regex(local.ipv4_re, var.ingress_ip)) && (local.network == null || try(cidrhost("${var.ingress_ip}/${local.network.prefix}", 0) == local.network.first && !contains([local.network.first, local.network.last], var.ingress_ip), false)))
    error_message = "ingress_ip = \"${coalesce(var.ingress_ip, "null")}\" must be an IPv4 address inside network_cidr = \"${var.network_cidr}\" (not its network/broadcast address). Pick a free address there."
  }

  validation {
    condition     = var.ingress_ip == null || !contains(concat(var.master_ips, var.worker_ips, compact([var.postgres_primary_ip, var.api_vip]), var.vault_cluster_ips), coalesce(var.ingress_ip, "-"))
    error_message = "ingress_ip = \"${coalesce(var.ingress_ip, "null")}\" is already used by master_ips, worker_ips, postgres_primary_ip, vault_cluster_ips or api_vip. Pick a free address."
  }
}

variable "pod_cidr" {
  description = "IPv4 range for pods (k3s cluster-cidr; each node gets a /24). Must not overlap network_cidr or service_cidr."
  type        = string
  default     = "10.42.0.0/16"
  nullable    = false

  validation {
    condition     = can(regex("^[0-9.]+/[0-9]+$", var.pod_cidr)) && try(cidrhost(var.pod_cidr, 0) == split("/", var.pod_cidr)[0] && pow(2, 24 - tonumber(split("/", var.pod_cidr)[1])) >= var.master_count + var.worker_count, false)
    error_message = "pod_cidr = \"${var.pod_cidr}\" must be a canonical IPv4 network (e.g. \"10.42.0.0/16\") large enough for one /24 per node (${var.master_count + var.worker_count} nodes)."
  }

  validation {
    condition     = local.network == null || try(cidrhost("${cidrhost(var.pod_cidr, 0)}/${min(local.network.prefix, tonumber(split("/", var.pod_cidr)[1]))}", 0) != cidrhost("${local.network.first}/${min(local.network.prefix, tonumber(split("/", var.pod_cidr)[1]))}", 0), true)
    error_message = "pod_cidr = \"${var.pod_cidr}\" overlaps network_cidr = \"${var.network_cidr}\": pods would shadow node addresses. Pick a range outside the node network, e.g. \"10.42.0.0/16\" or \"172.16.0.0/16\"."
  }
}

variable "service_cidr" {
  description = "IPv4 range for ClusterIP services (k3s service-cidr, prefix /12 or longer). Must not overlap network_cidr or pod_cidr."
  type        = string
  default     = "10.43.0.0/16"
  nullable    = false

  validation {
    condition     = can(regex("^[0-9.]+/[0-9]+$", var.service_cidr)) && try(cidrhost(var.service_cidr, 0) == split("/", var.service_cidr)[0] && tonumber(split("/", var.service_cidr)[1]) >= 12 && tonumber(split("/", var.service_cidr)[1]) <= 24, false)
    error_message = "service_cidr = \"${var.service_cidr}\" must be a canonical IPv4 network with a prefix from /12 to /24, e.g. \"10.43.0.0/16\"."
  }

  validation {
    condition     = try(alltrue([for r in compact([local.network == null ? "" : var.network_cidr, local.pod == null ? "" : var.pod_cidr]) : cidrhost("${cidrhost(var.service_cidr, 0)}/${min(tonumber(split("/", r)[1]), tonumber(split("/", var.service_cidr)[1]))}", 0) != cidrhost("${cidrhost(r, 0)}/${min(tonumber(split("/", r)[1]), tonumber(split("/", var.service_cidr)[1]))}", 0)]), true)
    error_message = "service_cidr = \"${var.service_cidr}\" overlaps network_cidr = \"${var.network_cidr}\" or pod_cidr = \"${var.pod_cidr}\". The three ranges must be disjoint, e.g. service_cidr = \"10.43.0.0/16\" with pod_cidr = \"10.42.0.0/16\"."
  }
}

variable "extra_tls_sans" {
  description = "Extra names/IPs for the Kubernetes API certificate (the master IPs and api_vip are always included)."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for s in var.extra_tls_sans : can(regex(local.ipv4_re, s)) || can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", s))])
    error_message = "extra_tls_sans contains entries that are neither IPv4 addresses nor lowercase DNS names: ${jsonencode([for s in var.extra_tls_sans : s if !(can(regex(local.ipv4_re, s)) || can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", s)))])}."
  }
}

# ---------------------------------------------------------------------------------------------
# Added by ffe-ha: TLS at the edge, backup storage
# ---------------------------------------------------------------------------------------------

variable "acme_enabled" {
  description = "Issue certificates for domain_names with ACME HTTP-01 (cert-manager, Let's Encrypt). Needs domain_names and acme_email."
  type        = bool
  default     = true
  nullable    = false
}

variable "acme_staging" {
  description = "Use the Let's Encrypt staging CA (untrusted certificates, generous rate limits) for a first rehearsal."
  type        = bool
  default     = false
  nullable    = false
}

variable "nfs_server" {
  description = "NFS server (IPv4 or DNS name) exporting the backup share. Set together with nfs_export; null = backup_nfs_mount is provided by the operator on every node."
  type        = string
  default     = null

  validation {
    condition     = var.nfs_server == null || can(regex(local.ipv4_re, var.nfs_server)) || can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", coalesce(var.nfs_server, "-")))
    error_message = "nfs_server = \"${coalesce(var.nfs_server, "null")}\" must be an IPv4 address or a lowercase DNS name, e.g. \"10.0.5.10\" or \"nas.example.com\"."
  }
}

variable "nfs_export" {
  description = "Exported path on nfs_server (absolute, e.g. \"/export/ffe-backups\"). Set together with nfs_server."
  type        = string
  default     = null

  validation {
    condition     = (var.nfs_server == null) == (var.nfs_export == null)
    error_message = "nfs_server and nfs_export must be set together (both or neither): nfs_server = ${var.nfs_server == null ? "null" : "\"${var.nfs_server}\""}, nfs_export = ${var.nfs_export == null ? "null" : "\"${var.nfs_export}\""}."
  }

  validation {
    condition     = var.nfs_export == null || can(regex("^(/[A-Za-z0-9._-]+)+/?$", coalesce(var.nfs_export, "-")))
    error_message = "nfs_export = \"${coalesce(var.nfs_export, "null")}\" must be an absolute path like \"/export/ffe-backups\" (no spaces)."
  }
}

variable "etcd_snapshot_schedule" {
  description = "Cron schedule (5 fields) of k3s etcd snapshots. Minute and hour fields accept *, */N, N, N-M and comma lists."
  type        = string
  default     = "0 */6 * * *"
  nullable    = false

  validation {
    condition     = can(regex("^(\\*(/[0-9]+)?|[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*) (\\*(/[0-9]+)?|[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*) [0-9*/,-]+ [0-9*/,-]+ [0-9*/,-]+$", var.etcd_snapshot_schedule))
    error_message = "etcd_snapshot_schedule = \"${var.etcd_snapshot_schedule}\" is not a 5-field cron schedule this environment understands. Use e.g. \"0 */6 * * *\" (every 6 hours); minute and hour accept *, */N, N, N-M and comma lists."
  }
}

variable "etcd_snapshot_retention" {
  description = "Number of etcd snapshots to keep. null = snapshots per day (from etcd_snapshot_schedule) x backup_retention_days."
  type        = number
  default     = null

  validation {
    condition     = var.etcd_snapshot_retention == null || try(floor(var.etcd_snapshot_retention) == var.etcd_snapshot_retention && var.etcd_snapshot_retention >= 1, false)
    error_message = "etcd_snapshot_retention must be a whole number >= 1, or null to derive it from etcd_snapshot_schedule and backup_retention_days."
  }
}

# Secrets/ConfigMaps export and off-site copy (backups.tf, modules/cluster-backup; runbook
# docs/disaster-recovery.md).

variable "secrets_export_age_recipient" {
  description = "age public key (\"age1...\", `age-keygen -y KEYFILE`) the daily export of every Secret and ConfigMap is encrypted to; only its private key, kept OFF the cluster, can read the export. null = no export (output secrets_export then says NOT EXPORTED)."
  type        = string
  default     = null

  validation {
    condition     = var.secrets_export_age_recipient == null || can(regex("^age1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{58}$", coalesce(var.secrets_export_age_recipient, "-")))
    error_message = "secrets_export_age_recipient is not an age X25519 public key (its value is not repeated here, in case it is a private key): it must be \"age1\" followed by 58 lower-case bech32 characters, as `age-keygen -y KEYFILE` prints it. Never put the private key (AGE-SECRET-KEY-1...) here."
  }
}

variable "secrets_export_schedule" {
  description = "Cron schedule (5 fields, UTC) of the Secrets/ConfigMaps export (default daily 02:15)."
  type        = string
  default     = "15 2 * * *"
  nullable    = false

  validation {
    condition     = can(regex("^[0-9*/,-]+ [0-9*/,-]+ [0-9*/,-]+ [0-9*/,-]+ [0-9*/,-]+$", var.secrets_export_schedule))
    error_message = "secrets_export_schedule = \"${var.secrets_export_schedule}\" is not a 5-field cron schedule: use e.g. \"15 2 * * *\" (daily at 02:15 UTC)."
  }
}

variable "backup_offsite" {
  description = "Off-site copy of the whole backup share (rsync over SSH, nothing deleted on the target), or null (default) for none. target = \"user@host:path\"; known_hosts = the target's line from `ssh-keyscan` (the host is verified); ssh_key_secret = a Secret you create in namespace monitoring, key ssh-privatekey (type kubernetes.io/ssh-auth); ssh_port (22) and schedule (\"0 5 * * *\", UTC, after the nightly backups) are optional."
  type = object({
    target         = string
    known_hosts    = string
    ssh_key_secret = string
    ssh_port       = optional(number, 22)
    schedule       = optional(string, "0 5 * * *")
  })
  default = null

  validation {
    condition     = var.backup_offsite == null || can(regex("^[a-z_][a-z0-9_.-]*@[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?:[A-Za-z0-9._/~-]+$", var.backup_offsite.target))
    error_message = "backup_offsite.target = \"${try(var.backup_offsite.target, "")}\" is not user@host:path (no spaces, no quotes, no port: set ssh_port), e.g. \"ffe-backup@backup.example.com:/srv/ffe-offsite\"."
  }

  validation {
    condition     = var.backup_offsite == null || can(regex("^(\\S+) (ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,2}( [^\\n]*)?$", var.backup_offsite.known_hosts))
    error_message = "backup_offsite.known_hosts is not one known_hosts line (HOST KEYTYPE BASE64KEY): use the line `ssh-keyscan -t ed25519 HOST` prints, after checking its fingerprint."
  }

  validation {
    condition = var.backup_offsite == null || try(
      startswith(split(" ", var.backup_offsite.known_hosts)[0], "|1|") ||
      contains(split(",", split(" ", var.backup_offsite.known_hosts)[0]), var.backup_offsite.ssh_port == 22 ? regex("@([^:]+):", var.backup_offsite.target)[0] : "[${regex("@([^:]+):", var.backup_offsite.target)[0]}]:${var.backup_offsite.ssh_port}"),
    false)
    error_message = "backup_offsite.known_hosts does not name the target's host (\"HOST\" for port 22, \"[HOST]:PORT\" otherwise): ssh would refuse to connect. Use `ssh-keyscan -p PORT HOST`."
  }

  validation {
    condition     = var.backup_offsite == null || can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.backup_offsite.ssh_key_secret))
    error_message = "backup_offsite.ssh_key_secret = \"${try(var.backup_offsite.ssh_key_secret, "")}\" is not a Secret name (lower-case DNS subdomain, e.g. \"ffe-backup-offsite-ssh\")."
  }

  validation {
    condition     = var.backup_offsite == null || try(var.backup_offsite.ssh_port >= 1 && var.backup_offsite.ssh_port <= 65535 && floor(var.backup_offsite.ssh_port) == var.backup_offsite.ssh_port, false)
    error_message = "backup_offsite.ssh_port must be a whole number 1..65535."
  }

  validation {
    condition     = var.backup_offsite == null || can(regex("^[0-9*/,-]+ [0-9*/,-]+ [0-9*/,-]+ [0-9*/,-]+ [0-9*/,-]+$", var.backup_offsite.schedule))
    error_message = "backup_offsite.schedule is not a 5-field cron schedule: use e.g. \"0 5 * * *\" (daily at 05:00 UTC, after the nightly backups)."
  }
}

# ---------------------------------------------------------------------------------------------
# Added by ffe-ha: k3s installation
# ---------------------------------------------------------------------------------------------

variable "install_mode" {
  description = "\"online\": nodes download k3s with the official installer. \"airgap\": the three airgap_* files are uploaded from this machine."
  type        = string
  default     = "online"
  nullable    = false

  validation {
    condition     = contains(["online", "airgap"], var.install_mode)
    error_message = "install_mode = \"${var.install_mode}\" is not allowed. Use \"online\" or \"airgap\"."
  }
}

variable "installer_url" {
  description = "URL of the k3s install script in online mode (a local mirror, for instance). null = the provider's default (https://get.k3s.io)."
  type        = string
  default     = null

  validation {
    condition     = var.installer_url == null || can(regex("^https://[^\\s]+$", coalesce(var.installer_url, "-")))
    error_message = "installer_url = \"${coalesce(var.installer_url, "null")}\" must be an https:// URL."
  }
}

variable "airgap_k3s_binary_path" {
  description = "Local path of the k3s binary (airgap mode; required there)."
  type        = string
  default     = null

  validation {
    condition     = var.install_mode != "airgap" || try(fileexists(pathexpand(var.airgap_k3s_binary_path)), false)
    error_message = "airgap_k3s_binary_path = \"${coalesce(var.airgap_k3s_binary_path, "null")}\" must name an existing file when install_mode = \"airgap\". Download k3s for your version on a connected machine and set its path."
  }
}

variable "airgap_images_path" {
  description = "Local path of the k3s airgap images tarball, e.g. k3s-airgap-images-amd64.tar.zst (airgap mode; required there)."
  type        = string
  default     = null

  validation {
    condition     = var.install_mode != "airgap" || try(fileexists(pathexpand(var.airgap_images_path)), false)
    error_message = "airgap_images_path = \"${coalesce(var.airgap_images_path, "null")}\" must name an existing file when install_mode = \"airgap\". Set it to the k3s-airgap-images tarball matching kubernetes_version."
  }
}

variable "airgap_installer_path" {
  description = "Local path of the k3s install.sh script (airgap mode; required there)."
  type        = string
  default     = null

  validation {
    condition     = var.install_mode != "airgap" || try(fileexists(pathexpand(var.airgap_installer_path)), false)
    error_message = "airgap_installer_path = \"${coalesce(var.airgap_installer_path, "null")}\" must name an existing file when install_mode = \"airgap\". Save https://get.k3s.io as install.sh on a connected machine and set its path."
  }
}

variable "kubeconfig_path" {
  description = "Where the admin kubeconfig is written (mode 0600) after the cluster is created. null = kubeconfig-<cluster_name>.yaml in this directory. A relative path is taken from the directory terraform runs in; the output is always absolute."
  type        = string
  default     = null

  validation {
    condition     = var.kubeconfig_path == null || length(trimspace(coalesce(var.kubeconfig_path, " "))) > 0
    error_message = "kubeconfig_path must be a file path, or null for kubeconfig-<cluster_name>.yaml in this directory."
  }
}

variable "server_taints" {
  description = "Taints on the masters (key=value:Effect). The default keeps application pods off the control plane."
  type        = list(string)
  default     = ["CriticalAddonsOnly=true:NoExecute"]
  nullable    = false

  validation {
    condition     = alltrue([for t in var.server_taints : can(regex("^[A-Za-z0-9./_-]+(=[A-Za-z0-9._-]*)?:(NoSchedule|PreferNoSchedule|NoExecute)$", t))])
    error_message = "server_taints entries must look like \"key=value:NoSchedule\" (effect NoSchedule, PreferNoSchedule or NoExecute); invalid: ${jsonencode([for t in var.server_taints : t if !can(regex("^[A-Za-z0-9./_-]+(=[A-Za-z0-9._-]*)?:(NoSchedule|PreferNoSchedule|NoExecute)$", t))])}."
  }
}

variable "node_labels" {
  description = "Extra Kubernetes labels for every node."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition = alltrue([for k, v in var.node_labels :
      can(regex("^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$", k)) &&
      can(regex("^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$", v))
    ])
    error_message = "node_labels must use Kubernetes label syntax: keys like \"example.com/tier\" (name part at most 63 characters), values at most 63 characters of letters, digits, '-', '_', '.'. Fix the offending entries in ${jsonencode(var.node_labels)}."
  }

  # The kubelet exits at start on --node-labels in the kubernetes.io/k8s.io domains other than the
  # ones it may set on itself (k8s.io/kubelet well_known_labels.go); ffe-core checks the same list.
  validation {
    condition = alltrue([for k, v in var.node_labels :
      !can(regex("^(([^/]*\\.)?(kubernetes\\.io|k8s\\.io))/", k)) ||
      contains(["kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch", "beta.kubernetes.io/os", "beta.kubernetes.io/arch", "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type", "topology.kubernetes.io/zone", "topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region"], k) ||
      can(regex("^([^/]*\\.)?(kubelet|node)\\.kubernetes\\.io/", k))
    ])
    error_message = "node_labels: keys under kubernetes.io or k8s.io make the kubelet refuse to start, except topology.kubernetes.io/zone|region, kubernetes.io/os|arch|hostname, node.kubernetes.io/* and kubelet.kubernetes.io/*. Use your own prefix (e.g. \"example.com/role\"); set node-role.kubernetes.io/* with kubectl after the node joined. Got ${jsonencode(keys(var.node_labels))}."
  }

  # A roll-out marks the nodes it cordons with this label and uncordons marked nodes at the next
  # apply (docs/upgrade.md): on every node it would be uncordoned at every apply.
  validation {
    condition     = !contains(keys(var.node_labels), "ffe.io/cordoned-by-apply")
    error_message = "node_labels: ffe.io/cordoned-by-apply is the mark a roll-out puts on the nodes it cordons (it uncordons marked nodes at the next apply). Remove it from node_labels."
  }
}

variable "agent_parallelism" {
  description = "How many agents join (or upgrade) at the same time."
  type        = number
  default     = 5
  nullable    = false

  validation {
    condition     = floor(var.agent_parallelism) == var.agent_parallelism && var.agent_parallelism >= 1 && var.agent_parallelism <= 20
    error_message = "agent_parallelism = ${var.agent_parallelism} is out of range: use 1 to 20."
  }
}

variable "k3s_token_rotation" {
  description = "Raise by one to rotate the k3s server join token: `k3s token rotate` on a live server, then every server restarts with the new token, one at a time (docs/upgrade.md, Rotating the join token). Never lower it."
  type        = number
  default     = 0
  nullable    = false

  validation {
    condition     = floor(var.k3s_token_rotation) == var.k3s_token_rotation && var.k3s_token_rotation >= 0
    error_message = "k3s_token_rotation = ${var.k3s_token_rotation} must be a whole number >= 0: raise it by one to rotate the k3s join token."
  }
}

variable "k3s_certificate_rotation" {
  description = "Raise by one to rotate every node's k3s certificates now: `k3s certificate rotate` with k3s stopped, servers one at a time, then agents in batches; the admin kubeconfig is read again (docs/upgrade.md, Rotating the certificates). k3s also renews them by itself at any start within 120 days of expiry. Never lower it."
  type        = number
  default     = 0
  nullable    = false

  validation {
    condition     = floor(var.k3s_certificate_rotation) == var.k3s_certificate_rotation && var.k3s_certificate_rotation >= 0
    error_message = "k3s_certificate_rotation = ${var.k3s_certificate_rotation} must be a whole number >= 0: raise it by one to rotate the k3s certificates."
  }
}

variable "k3s_encryption_key_rotation" {
  description = "Raise by one to rotate the key k3s encrypts Secrets in etcd with: `k3s secrets-encrypt rotate-keys` on a live server, wait until every Secret is re-encrypted, then every server restarts one at a time (docs/security.md, Rotating the secrets-encryption key). Never lower it."
  type        = number
  default     = 0
  nullable    = false

  validation {
    condition     = floor(var.k3s_encryption_key_rotation) == var.k3s_encryption_key_rotation && var.k3s_encryption_key_rotation >= 0
    error_message = "k3s_encryption_key_rotation = ${var.k3s_encryption_key_rotation} must be a whole number >= 0: raise it by one to rotate the secrets-encryption key."
  }
}

variable "k3s_restore_from_snapshot" {
  description = "File name of an etcd snapshot on the backup share (<backup_nfs_mount>/etcd-snapshots/<server>/) to restore the cluster from, e.g. after every server lost its data or onto new hosts (give their addresses in master_ips in the same apply). Set to a name not restored before; the apply runs k3s's cluster-reset sequence, then converges the rest. Everything written to the cluster after the snapshot is lost (docs/disaster-recovery.md, Restoring etcd). null: no restore."
  type        = string
  default     = null

  validation {
    condition     = var.k3s_restore_from_snapshot == null || can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$", var.k3s_restore_from_snapshot))
    error_message = "k3s_restore_from_snapshot must be a snapshot's file name as it lies on the backup share (letters, digits, '.', '_', '-'; no path), e.g. \"etcd-snapshot-m0-1764806400\". List them with `ffe-ha etcd snapshots`."
  }
}

variable "component_versions" {
  description = "Overrides for the pinned in-cluster component versions in pins.tf, one exact version per component (the version must be vendored under upstream/charts/, see upstream/README.md)."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition     = length(setsubtract(keys(var.component_versions), keys(local.pinned_component_versions))) == 0
    error_message = "component_versions has unknown keys ${jsonencode(setsubtract(keys(var.component_versions), keys(local.pinned_component_versions)))}. Known components: ${join(", ", keys(local.pinned_component_versions))}."
  }

  validation {
    condition     = alltrue([for v in values(var.component_versions) : can(regex("^v?[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.-]+)?$", v))])
    error_message = "component_versions values must be exact versions such as \"v1.21.2\" or \"3.0.0\" (no ranges or \"latest\": the platform must not change under you)."
  }
}

# ---------------------------------------------------------------------------------------------
# Helpers for the rules above. A rule may only use helpers built from variables EARLIER in the
# chain (see the top of this file), otherwise Terraform reports a cycle.
# ---------------------------------------------------------------------------------------------

locals {
  ipv4_octet_re = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
  ipv4_re       = "^${local.ipv4_octet_re}(\\.${local.ipv4_octet_re}){3}$"

  # null when network_cidr is invalid (its own rule reports that; IP rules then stay quiet).
  network = try({
    first  = cidrhost(var.network_cidr, 0)
    last   = cidrhost(var.network_cidr, -1)
    prefix = tonumber(split("/", var.network_cidr)[1])
  }, null)

  pod = try(cidrhost(var.pod_cidr, 0), null)
}

variable "host_packages" {
  description = "Debian packages every node gets when missing. null = the provider's default (nfs-common, chrony, curl, ca-certificates)."
  type        = list(string)
  default     = null

  validation {
    condition     = var.host_packages == null || alltrue([for p in coalesce(var.host_packages, []) : can(regex("^[a-z0-9][a-z0-9+.-]+$", p))])
    error_message = "host_packages: every entry must be a Debian package name (lowercase letters, digits, '+', '-', '.'). Fix the list or set it to null for the defaults."
  }
}

variable "host_kernel_modules" {
  description = "Kernel modules loaded on every node now and at boot. null = the provider's default (overlay, br_netfilter)."
  type        = list(string)
  default     = null

  validation {
    condition     = var.host_kernel_modules == null || alltrue([for m in coalesce(var.host_kernel_modules, []) : can(regex("^[a-z0-9_-]+$", m))])
    error_message = "host_kernel_modules: every entry must be a module name like \"br_netfilter\". Fix the list or set it to null for the defaults."
  }
}

variable "host_sysctls" {
  description = "Kernel settings applied on every node now and at boot. null = the provider's default (IP forwarding, bridge netfilter, inotify limits)."
  type        = map(string)
  default     = null

  validation {
    condition     = var.host_sysctls == null || alltrue([for k, v in coalesce(var.host_sysctls, {}) : can(regex("^[a-z0-9_.-]+$", k)) && length(v) > 0])
    error_message = "host_sysctls: keys must be sysctl names like \"net.ipv4.ip_forward\" and values non-empty. Fix the map or set it to null for the defaults."
  }
}

variable "cis_profile" {
  description = "The k3s CIS hardening profile (docs/security.md): protect-kernel-defaults with the kubelet's sysctls set on every host, Pod Security restricted by default, EventRateLimit, an API audit log under /var/lib/rancher/k3s/server/logs, kubelet and API server flags from the k3s hardening guide. Switching it restarts every node, one at a time."
  type        = bool
  default     = true
  nullable    = false
}

variable "host_firewall_enabled" {
  description = "An nftables inbound firewall on every node (table inet ffe_host): only the ports the node's role needs, everything else dropped (docs/security.md). false for sites whose firewalls are managed centrally; false also removes one loaded before."
  type        = bool
  default     = true
  nullable    = false
}

variable "firewall_admin_cidrs" {
  description = "Networks operators and Terraform connect from: SSH and the Kubernetes API are open to these only when host_firewall_enabled. null = network_cidr. The apply refuses rules that would not let its own SSH client back in."
  type        = list(string)
  default     = null

  validation {
    condition     = var.firewall_admin_cidrs == null || (length(coalesce(var.firewall_admin_cidrs, [])) > 0 && alltrue([for c in coalesce(var.firewall_admin_cidrs, []) : can(cidrhost(c, 0)) && can(regex("^[0-9.]+/[0-9]+$", c)) && try(cidrhost(c, 0) == split("/", c)[0], false)]))
    error_message = "firewall_admin_cidrs: every entry must be an IPv4 network in canonical form (\"10.0.0.0/24\", or \"10.0.0.5/32\" for one workstation) and the list must not be empty. Set null for network_cidr."
  }
}

variable "break_glass_group" {
  description = "Kubernetes group bound to cluster-admin for emergencies (ClusterRoleBinding ffe-break-glass; docs/security.md, Break-glass). null removes the binding for good: the lasting way to cut off every break-glass certificate."
  type        = string
  default     = "ffe:break-glass"

  validation {
    condition     = var.break_glass_group == null || (can(regex("^[a-z0-9][a-z0-9:._-]*$", coalesce(var.break_glass_group, "-"))) && !startswith(coalesce(var.break_glass_group, "-"), "system:"))
    error_message = "break_glass_group = \"${coalesce(var.break_glass_group, "null")}\": use lowercase letters, digits, ':', '.', '_', '-' and not a system: group (those belong to Kubernetes), or null for no break-glass binding."
  }
}

variable "service_mesh_enabled" {
  description = "Install the Istio ambient service mesh (pins.tf: istio): ztunnel and the istio-cni agent on every node, istiod twice; the app namespace then takes only mutual-TLS connections (PeerAuthentication STRICT) from its allowed callers (edge, monitoring), which join the mesh too. Costs per node about 612 MiB of memory requests (ztunnel 512Mi, istio-cni 100Mi) plus 2 GiB per istiod replica; docs/security.md. Off by default."
  type        = bool
  default     = false
  nullable    = false

  # Istio 1.30's own minimum (istioctl precheck, MinK8SVersion = 32 at 1.30.3); null = pins.tf's default (v1.36).
  validation {
    condition     = !var.service_mesh_enabled || var.kubernetes_version == null || try(tonumber(regex("^v1\\.([0-9]+)", var.kubernetes_version)[0]) >= 32, true)
    error_message = "service_mesh_enabled = true needs Kubernetes 1.32 or newer (Istio 1.30's minimum), but kubernetes_version = \"${coalesce(var.kubernetes_version, "null")}\". Fix: set kubernetes_version to a supported minor (pins.tf: v1.35, v1.36 or v1.37) before turning the mesh on, or leave service_mesh_enabled = false."
  }
}

variable "calico_wireguard_enabled" {
  description = "Encrypt pod-to-pod traffic between nodes with WireGuard (Calico). On by default: database passwords and tokens cross nodes. Needs the wireguard kernel module (Ubuntu 22.04/24.04 kernels have it)."
  type        = bool
  default     = true
  nullable    = false
}


//! Which nodes to check and how to reach them.
//!
//! The source of truth is the `ha` environment's non-sensitive `ops_inventory` output
//! (`terraform output -json ops_inventory`), so the CLI reaches nodes exactly as the provider
//! does: same SSH user, key, known_hosts pinning and timeouts (one validation path,
//! [`SshSettings::from_options`]). A file with the same schema works without Terraform.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ffe_core::ssh::{SshOptions, SshSettings, Target};
use serde::{Deserialize, Serialize};

/// The only schema this release reads.
pub const SCHEMA: u32 = 1;
/// How long `terraform output`/`show` may take (they read the state or a plan file).
const TERRAFORM_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("--tf-dir {dir}: no such directory. Pass the environment directory where you ran `terraform apply` (e.g. --tf-dir terraform/environments/ha), or --inventory FILE")]
    NoDir { dir: String },
    #[error("--tf-dir {dir}: no output ops_inventory in its Terraform state. Run `terraform apply` in {dir} first (a state written before this release gains the output on the next apply), or pass --inventory FILE")]
    NoState { dir: String },
    #[error("terraform could not be run ({reason}): install Terraform, or pass --inventory FILE")]
    NoTerraform { reason: String },
    #[error("terraform in {dir} failed: {stderr}")]
    Terraform { dir: String, stderr: String },
    #[error(
        "terraform in {dir} did not finish within {secs} s (a locked or remote state backend?)"
    )]
    TerraformTimeout { dir: String, secs: u64 },
    #[error("inventory file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("inventory from {source_name}: {reason}")]
    Invalid { source_name: String, reason: String },
    #[error("{flag}: {message}")]
    Setting { flag: String, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// k3s server (a master: control plane + etcd member).
    Server,
    /// k3s agent (a worker).
    Agent,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::Server => "master",
            Role::Agent => "worker",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: String,
    pub address: String,
    pub role: Role,
}

impl Node {
    pub fn target(&self) -> Target {
        Target::new(&self.name, &self.address)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// Calico WireGuard on: every node needs UDP 51820.
    #[serde(default)]
    pub wireguard_enabled: bool,
}

/// Per-role minimum hardware and network limits. The default is the seed's Prerequisites
/// section; an inventory file may lower them (a lab), and every check's evidence says which
/// set it used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirements {
    pub server: Hardware,
    pub agent: Hardware,
    /// Sum of the nodes' root disks (seed: "100+ GB total").
    pub total_disk_gb: u64,
    /// Round trip between any two nodes (seed: "fast interconnect (<5ms latency)").
    pub max_rtt_ms: f64,
    /// Clock difference from this machine above which a node fails (etcd and TLS need agreeing
    /// clocks; the seed asks for nothing looser than NTP-synchronised nodes).
    pub max_clock_skew_ms: f64,
    /// Set when these are not the seed's numbers.
    #[serde(default)]
    pub overridden: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hardware {
    pub cpus: u32,
    pub memory_gb: u32,
}

impl Default for Requirements {
    /// The seed: "3 master @ 4vCPU/8GB RAM, 2+ workers @ 2vCPU/4GB RAM", "100+ GB total",
    /// "<5ms latency".
    fn default() -> Self {
        Self {
            server: Hardware {
                cpus: 4,
                memory_gb: 8,
            },
            agent: Hardware {
                cpus: 2,
                memory_gb: 4,
            },
            total_disk_gb: 100,
            max_rtt_ms: 5.0,
            max_clock_skew_ms: 1000.0,
            overridden: false,
        }
    }
}

impl Requirements {
    pub fn for_role(&self, role: Role) -> Hardware {
        match role {
            Role::Server => self.server,
            Role::Agent => self.agent,
        }
    }

    /// Where the numbers come from, for evidence.
    pub fn origin(&self) -> &'static str {
        if self.overridden {
            "inventory requirements"
        } else {
            "seed prerequisites"
        }
    }
}

/// The Postgres layer as `verify` reads it (names from modules/postgres).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSection {
    pub namespace: String,
    /// The PerconaPGCluster's name (label `postgres-operator.crunchydata.com/cluster`).
    pub cluster: String,
    /// Primary + replicas.
    pub instances: u32,
    /// Patroni synchronous_mode: one replica must be a synchronous standby.
    pub synchronous: bool,
    /// Patroni maximum_lag_on_failover: a replica further behind is not promoted.
    pub max_lag_bytes: u64,
    pub patroni_port: u16,
    /// `https` in the Percona pods (a lab's Patroni may serve `http`).
    #[serde(default = "https")]
    pub patroni_scheme: String,
    /// `postgres_primary_ip:5432`, reachable from the node network.
    pub primary_endpoint: String,
    /// The PgBouncer Service (ClusterIP) in `namespace`.
    pub pgbouncer_service: String,
    /// The CronJob in `namespace` that restores the newest pgBackRest backup into scratch space
    /// and checks it (`ffe-ha backup verify` runs a Job from it); absent in older states.
    #[serde(default)]
    pub restore_check_cronjob: Option<String>,
}

fn https() -> String {
    "https".into()
}

/// The Vault layer as `verify` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSection {
    /// `https://<ip>:8200`, one per member.
    pub member_addresses: Vec<String>,
    /// The members' namespace and pods, in `member_addresses` order (`drill` deletes one).
    pub namespace: String,
    pub member_pods: Vec<String>,
    /// The Secret holding the CA the members' certificates chain to (public, read via the API).
    pub ca_secret: SecretRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
    pub key: String,
}

/// One backup kind on the shared backup mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupKind {
    /// `etcd`, `pgbackrest`, `pg_dump`, `vault`.
    pub kind: String,
    /// Directory relative to `backup_mount`.
    pub dir: String,
    /// One subdirectory per server (k3s etcd snapshots), each judged on its own.
    #[serde(default)]
    pub per_server: bool,
    /// Which files count: a glob of file names, or (pgBackRest) the path of `backup.info`.
    pub files: String,
    /// The age limit of the kind's alert; `null` when the schedule's period is not known.
    pub max_age_seconds: Option<u64>,
    /// pgBackRest: the age limit of the newest *full* backup (PgBackRestFullBackupTooOld).
    #[serde(default)]
    pub max_full_age_seconds: Option<u64>,
}

/// The inventory as written: `ops_inventory` (schema 1), or a file of the same shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryDoc {
    pub schema: u32,
    pub cluster_name: String,
    #[serde(default)]
    pub ssh: SshOptions,
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub api_vip: Option<String>,
    #[serde(default)]
    pub ingress_ip: Option<String>,
    #[serde(default)]
    pub kubeconfig_path: Option<String>,
    pub backup_mount: String,
    #[serde(default)]
    pub network: NetworkSection,
    #[serde(default)]
    pub postgres: Option<PostgresSection>,
    #[serde(default)]
    pub vault: Option<VaultSection>,
    #[serde(default)]
    pub backups: Vec<BackupKind>,
    /// Not in `ops_inventory`: only an inventory file may lower the seed's minimums.
    #[serde(default)]
    pub requirements: Option<Requirements>,
}

/// Where the inventory came from, for messages and the JSON report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InventorySource {
    Terraform { dir: String },
    Plan { file: String },
    File { path: String },
}

impl std::fmt::Display for InventorySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InventorySource::Terraform { dir } => write!(f, "terraform output of {dir}"),
            InventorySource::Plan { file } => write!(f, "terraform plan {file}"),
            InventorySource::File { path } => write!(f, "{path}"),
        }
    }
}

/// Run `terraform -chdir=dir ARGS` (bounded; stdin closed, so it can never prompt).
async fn terraform(dir: &Path, args: &[&str]) -> Result<std::process::Output, InventoryError> {
    let shown = dir.display().to_string();
    if !dir.is_dir() {
        return Err(InventoryError::NoDir { dir: shown });
    }
    let mut cmd = tokio::process::Command::new("terraform");
    cmd.arg(format!("-chdir={}", dir.display()))
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    tokio::time::timeout(TERRAFORM_LIMIT, cmd.output())
        .await
        .map_err(|_| InventoryError::TerraformTimeout {
            dir: shown,
            secs: TERRAFORM_LIMIT.as_secs(),
        })?
        .map_err(|e| InventoryError::NoTerraform {
            reason: e.to_string(),
        })
}

/// Vault's unseal key shares from the state of `dir` (`terraform output -json
/// vault_unseal_keys`, a sensitive output): held in memory only, never printed. `None`: the
/// environment has no Vault.
pub async fn unseal_keys_from_terraform(dir: &Path) -> Result<Option<Vec<String>>, InventoryError> {
    let shown = dir.display().to_string();
    let out = terraform(dir, &["output", "-no-color", "-json", "vault_unseal_keys"]).await?;
    if !out.status.success() {
        return Err(InventoryError::Terraform {
            dir: shown,
            stderr: collapse(&String::from_utf8_lossy(&out.stderr)),
        });
    }
    serde_json::from_slice::<Option<Vec<String>>>(&out.stdout).map_err(|_| {
        InventoryError::Invalid {
            source_name: format!("terraform output vault_unseal_keys of {shown}"),
            reason: "is not a list of strings".into(),
        }
    })
}

/// Vault's unseal key shares from a file: a JSON list of base64 shares, readable by its owner
/// only (mode 0600 or stricter), as every secret file this project writes.
pub fn unseal_keys_from_file(path: &Path) -> Result<Vec<String>, InventoryError> {
    use std::os::unix::fs::PermissionsExt;
    let source_name = path.display().to_string();
    let bad = |reason: String| InventoryError::Invalid {
        source_name: source_name.clone(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot be read ({e})")))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(bad(format!(
            "holds unseal keys but has mode {mode:o}: `chmod 600 {source_name}` first"
        )));
    }
    let text = std::fs::read(path).map_err(|e| bad(format!("cannot be read ({e})")))?;
    // The parse error is not shown: it could quote a key.
    let keys: Vec<String> = serde_json::from_slice(&text)
        .map_err(|_| bad("is not a JSON list of unseal key shares (`terraform output -json vault_unseal_keys` writes one)".into()))?;
    if keys.is_empty() {
        return Err(bad("lists no unseal key".into()));
    }
    Ok(keys)
}

/// Command-line SSH overrides (flags win over the inventory).
#[derive(Debug, Clone, Default)]
pub struct SshOverrides {
    pub user: Option<String>,
    pub port: Option<i64>,
    pub private_key_path: Option<String>,
    pub known_hosts_file: Option<String>,
    pub connect_timeout_seconds: Option<i64>,
}

/// A validated inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub source: InventorySource,
    pub cluster_name: String,
    pub ssh: SshSettings,
    pub nodes: Vec<Node>,
    pub api_vip: Option<String>,
    pub ingress_ip: Option<String>,
    pub kubeconfig_path: Option<PathBuf>,
    pub backup_mount: String,
    pub network: NetworkSection,
    pub postgres: Option<PostgresSection>,
    pub vault: Option<VaultSection>,
    pub backups: Vec<BackupKind>,
    pub requirements: Requirements,
}

impl Inventory {
    /// Read `ops_inventory` from the Terraform state of `dir` (`terraform output`, which reads
    /// only that one non-sensitive output).
    pub async fn from_terraform(
        dir: &Path,
        overrides: &SshOverrides,
    ) -> Result<Inventory, InventoryError> {
        let shown = dir.display().to_string();
        let out = terraform(dir, &["output", "-no-color", "-json", "ops_inventory"]).await?;
        if !out.status.success() {
            let stderr = collapse(&String::from_utf8_lossy(&out.stderr));
            if stderr.contains("Output \"ops_inventory\" not found") {
                return Err(InventoryError::NoState { dir: shown });
            }
            return Err(InventoryError::Terraform { dir: shown, stderr });
        }
        let doc: InventoryDoc =
            serde_json::from_slice(&out.stdout).map_err(|e| InventoryError::Invalid {
                source_name: format!("terraform output of {shown}"),
                reason: e.to_string(),
            })?;
        Self::validate(doc, InventorySource::Terraform { dir: shown }, overrides)
    }

    /// Read `ops_inventory` from a saved plan (`terraform plan -out=FILE` in `dir`): before the
    /// first apply there is no state, but the plan already knows every value of the inventory.
    /// Only that output is kept from `terraform show -json`.
    pub async fn from_plan(
        dir: &Path,
        plan: &Path,
        overrides: &SshOverrides,
    ) -> Result<Inventory, InventoryError> {
        let shown = plan.display().to_string();
        // `terraform -chdir` resolves the plan path from `dir`; the operator wrote it from here.
        let plan_abs = std::path::absolute(plan).map_err(|e| InventoryError::File {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        if !plan_abs.is_file() {
            return Err(InventoryError::File {
                path: shown,
                reason: "no such plan file: run `terraform plan -out=tfplan` in the environment directory first".into(),
            });
        }
        let plan_arg = plan_abs.display().to_string();
        let out = terraform(dir, &["show", "-no-color", "-json", &plan_arg]).await?;
        if !out.status.success() {
            return Err(InventoryError::Terraform {
                dir: dir.display().to_string(),
                stderr: collapse(&String::from_utf8_lossy(&out.stderr)),
            });
        }
        let source = InventorySource::Plan {
            file: shown.clone(),
        };
        let invalid = |reason: String| InventoryError::Invalid {
            source_name: source.to_string(),
            reason,
        };
        let mut plan: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| invalid(e.to_string()))?;
        let value = plan
            .pointer_mut("/planned_values/outputs/ops_inventory/value")
            .map(serde_json::Value::take)
            .filter(|v| !v.is_null())
            .ok_or_else(|| {
                invalid("the plan has no known ops_inventory output: plan again with this release's environment".into())
            })?;
        drop(plan);
        let doc: InventoryDoc =
            serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        Self::validate(doc, source, overrides)
    }

    /// Read an inventory file (JSON or YAML, the `ops_inventory` schema).
    pub fn from_file(path: &Path, overrides: &SshOverrides) -> Result<Inventory, InventoryError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| InventoryError::File {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        let doc: InventoryDoc =
            serde_yaml_ng::from_str(&text).map_err(|e| InventoryError::File {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        Self::validate(doc, InventorySource::File { path: shown }, overrides)
    }

    pub fn validate(
        doc: InventoryDoc,
        source: InventorySource,
        overrides: &SshOverrides,
    ) -> Result<Inventory, InventoryError> {
        let invalid = |reason: String| InventoryError::Invalid {
            source_name: source.to_string(),
            reason,
        };
        if doc.schema != SCHEMA {
            return Err(invalid(format!(
                "schema {} is not the one this ffe-ha reads ({SCHEMA}); use the ffe-ha built from the same release as the environment",
                doc.schema
            )));
        }
        if doc.nodes.is_empty() {
            return Err(invalid("nodes is empty".into()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for n in &doc.nodes {
            if n.name.is_empty() || n.address.is_empty() {
                return Err(invalid(format!(
                    "node {:?} at {:?}: name and address must not be empty",
                    n.name, n.address
                )));
            }
            // Names reach shell scripts and file names on the nodes: DNS names only, as the
            // environment makes them (`<cluster_name>-master-<i>`).
            if !is_dns_name(&n.name) {
                return Err(invalid(format!(
                    "node name {:?} is not a DNS name (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters)",
                    n.name
                )));
            }
            if !is_host(&n.address) {
                return Err(invalid(format!(
                    "node {} address {:?} is not an IPv4 address or host name",
                    n.name, n.address
                )));
            }
            if !seen.insert(&n.name) {
                return Err(invalid(format!("node name {} appears twice", n.name)));
            }
        }
        if !doc.backup_mount.starts_with('/') {
            return Err(invalid(format!(
                "backup_mount {:?} must be an absolute path",
                doc.backup_mount
            )));
        }
        if let Some(pg) = &doc.postgres {
            if pg.patroni_scheme != "https" && pg.patroni_scheme != "http" {
                return Err(invalid(format!(
                    "postgres.patroni_scheme {:?} must be https or http",
                    pg.patroni_scheme
                )));
            }
        }
        if let Some(v) = &doc.vault {
            if v.member_pods.len() != v.member_addresses.len() {
                return Err(invalid(format!(
                    "vault.member_pods lists {} pods for {} member_addresses: one pod per member, in the same order",
                    v.member_pods.len(),
                    v.member_addresses.len()
                )));
            }
        }
        // Backup paths and patterns reach shell scripts on a node: plain relative paths only.
        for b in &doc.backups {
            let plain = |t: &str| {
                !t.is_empty()
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_./*".contains(c))
                    && !t.starts_with('/')
                    && !t.split('/').any(|p| p == "..")
            };
            if !plain(&b.dir) || !plain(&b.files) {
                return Err(invalid(format!(
                    "backups {}: dir {:?} and files {:?} must be relative paths of letters, digits, '-', '_', '.', '/' and '*' (no '..')",
                    b.kind, b.dir, b.files
                )));
            }
        }
        let s = doc.ssh;
        let options = SshOptions {
            user: overrides.user.clone().or(s.user),
            port: overrides.port.or(s.port),
            private_key_path: overrides.private_key_path.clone().or(s.private_key_path),
            known_hosts_file: overrides.known_hosts_file.clone().or(s.known_hosts_file),
            insecure_ignore_host_keys: s.insecure_ignore_host_keys,
            connect_timeout_seconds: overrides
                .connect_timeout_seconds
                .or(s.connect_timeout_seconds),
        };
        let ssh = SshSettings::from_options(&options).map_err(|e| InventoryError::Setting {
            flag: flag_for(e.attribute).into(),
            message: e.message,
        })?;
        let requirements = match doc.requirements {
            Some(mut r) => {
                r.overridden = true;
                r
            }
            None => Requirements::default(),
        };
        Ok(Inventory {
            source,
            cluster_name: doc.cluster_name,
            ssh,
            nodes: doc.nodes,
            api_vip: doc.api_vip,
            ingress_ip: doc.ingress_ip,
            kubeconfig_path: doc.kubeconfig_path.map(PathBuf::from),
            backup_mount: doc.backup_mount.trim_end_matches('/').to_string(),
            network: doc.network,
            postgres: doc.postgres,
            vault: doc.vault,
            backups: doc.backups,
            requirements,
        })
    }
}

/// An RFC 1123 name as Kubernetes node names are: lowercase alphanumerics, '-' and '.'.
fn is_dns_name(s: &str) -> bool {
    let ok_end = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && ok_end(s.chars().next())
        && ok_end(s.chars().last())
}

/// An IPv4 address or a host name (letters, digits, '-', '.'; not starting with '-').
fn is_host(s: &str) -> bool {
    s.parse::<std::net::Ipv4Addr>().is_ok()
        || (!s.is_empty()
            && !s.starts_with('-')
            && s.len() <= 253
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
}

/// The CLI flag that sets a provider SSH attribute (messages name what the operator can change).
fn flag_for(attribute: &str) -> &'static str {
    match attribute {
        "ssh_port" => "--ssh-port (or ssh.port / ssh_port)",
        "ssh_connect_timeout_seconds" => {
            "--connect-timeout (or ssh.connect_timeout_seconds / ssh_connect_timeout_seconds)"
        }
        "ssh_user" => "--ssh-user (or ssh.user / ssh_user)",
        "ssh_private_key_path" => "--ssh-key (or ssh.private_key_path / ssh_private_key_path)",
        "ssh_known_hosts_file" => "--known-hosts (or ssh.known_hosts_file / ssh_known_hosts_file)",
        _ => "ssh settings",
    }
}

/// Terraform's boxed diagnostics on one line.
fn collapse(s: &str) -> String {
    s.lines()
        .map(|l| l.trim_matches(|c: char| c.is_whitespace() || "│╷╵".contains(c)))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(extra: &str) -> String {
        format!(
            r#"{{"schema":1,"cluster_name":"c","ssh":{{"user":"root","port":22,"known_hosts_file":"/k","connect_timeout_seconds":5}},
               "nodes":[{{"name":"a","address":"10.210.0.11","role":"server"}}],"backup_mount":"/mnt/backups/"{extra}}}"#
        )
    }

    fn parse(text: &str) -> Result<Inventory, InventoryError> {
        let d: InventoryDoc = serde_json::from_str(text).unwrap();
        Inventory::validate(
            d,
            InventorySource::File { path: "f".into() },
            &SshOverrides::default(),
        )
    }

    #[test]
    fn unseal_keys_need_a_private_file_and_are_never_quoted() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("ffe-ops-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("keys.json");
        std::fs::write(&f, r#"["c2VjcmV0LXNoYXJl"]"#).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = unseal_keys_from_file(&f).unwrap_err().to_string();
        assert!(e.contains("mode 644") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(unseal_keys_from_file(&f).unwrap(), ["c2VjcmV0LXNoYXJl"]);
        std::fs::write(&f, r#"{"c2VjcmV0LXNoYXJl": 1}"#).unwrap();
        let e = unseal_keys_from_file(&f).unwrap_err().to_string();
        assert!(!e.contains("c2VjcmV0"), "the error quotes a key: {e}");
        std::fs::write(&f, "[]").unwrap();
        assert!(unseal_keys_from_file(&f)
            .unwrap_err()
            .to_string()
            .contains("no unseal key"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn seed_requirements_unless_the_file_overrides_them() {
        let inv = parse(&doc("")).unwrap();
        assert_eq!(inv.requirements, Requirements::default());
        assert_eq!(inv.requirements.origin(), "seed prerequisites");
        assert_eq!(inv.backup_mount, "/mnt/backups");
        let inv = parse(&doc(r#","requirements":{"server":{"cpus":1,"memory_gb":1},"agent":{"cpus":1,"memory_gb":1},"total_disk_gb":1,"max_rtt_ms":5,"max_clock_skew_ms":1000}"#)).unwrap();
        assert_eq!(inv.requirements.server.cpus, 1);
        assert_eq!(inv.requirements.origin(), "inventory requirements");
    }

    #[test]
    fn bad_input_names_what_to_fix() {
        let e = parse(&doc("").replace("\"schema\":1", "\"schema\":2")).unwrap_err();
        assert!(e.to_string().contains("schema 2"), "{e}");
        let e = parse(&doc("").replace("\"port\":22", "\"port\":70000")).unwrap_err();
        assert!(e.to_string().contains("--ssh-port"), "{e}");
        let e = parse(&doc("").replace("\"/mnt/backups/\"", "\"mnt\"")).unwrap_err();
        assert!(e.to_string().contains("backup_mount"), "{e}");
        let two = doc("").replace(
            r#"[{"name":"a","address":"10.210.0.11","role":"server"}]"#,
            r#"[{"name":"a","address":"10.210.0.11","role":"server"},{"name":"a","address":"10.210.0.12","role":"agent"}]"#,
        );
        let e = parse(&two).unwrap_err();
        assert!(e.to_string().contains("appears twice"), "{e}");
        // Names reach shell scripts on the nodes: anything but a DNS name is refused.
        for bad in ["x$(touch /tmp/p)", "a b", "A", "-a", "a/b", "a'"] {
            let e = parse(&doc("").replace("\"name\":\"a\"", &format!("\"name\":{bad:?}")))
                .unwrap_err();
            assert!(e.to_string().contains("is not a DNS name"), "{bad}: {e}");
        }
        let e = parse(&doc("").replace("10.210.0.11", "-oProxyCommand=x")).unwrap_err();
        assert!(
            e.to_string()
                .contains("is not an IPv4 address or host name"),
            "{e}"
        );
        assert!(serde_json::from_str::<InventoryDoc>(&doc(r#","extra":1"#)).is_err());
    }

    #[test]
    fn flags_override_the_inventory() {
        let d: InventoryDoc = serde_json::from_str(&doc("")).unwrap();
        let inv = Inventory::validate(
            d,
            InventorySource::File { path: "f".into() },
            &SshOverrides {
                user: Some("ops".into()),
                known_hosts_file: Some("/other".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(inv.ssh.user, "ops");
        assert_eq!(inv.ssh.known_hosts_file, Some(PathBuf::from("/other")));
        assert_eq!(inv.ssh.connect_timeout, Duration::from_secs(5));
    }

    #[test]
    fn terraform_boxes_collapse_to_one_line() {
        assert_eq!(
            collapse("╷\n│ Error: Output \"x\" not found\n│\n│ The output\n╵\n"),
            "Error: Output \"x\" not found The output"
        );
    }
}

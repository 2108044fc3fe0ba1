//! The k3s **stand-in**: a small multi-call program that plays k3s's observable interface
//! (installer, `systemctl` units, `k3s kubectl`, uninstall/killall scripts) and records every
//! invocation, so the provider can be driven for real over SSH in the lab.
//!
//! It is NOT k3s. Nothing it reports is a measured property of k3s. All logic lives here so it
//! can be unit-tested against a temporary root directory (no namespaces needed); the binary
//! `k3s-standin` is a thin wrapper around [`run`].
//!
//! Files it touches are always `HostEnv::root` + an absolute k3s path. Every mutating action first
//! checks that the root is a lab host (the lab writes [`LAB_MARKER`] into each host's own
//! `/var/lib/rancher`), so the stand-in refuses to touch the real filesystem outside a lab.

mod certs;
mod config;
mod datastore;
pub mod deploy;
mod encrypt;
mod error;
pub mod flags;
pub mod hardening;
mod installer;
mod kubectl;
pub(crate) mod lock;
mod record;
mod settings;
mod snapshot;
mod units;
mod version;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

pub use config::{K3sConfig, Taint};
pub use datastore::{ClusterState, Datastore, JoinMarker, NodeState, PodState, Role};
pub use error::StandinError;
pub use record::{append_record, read_records, sanitize_env, StandinRecord};
pub use settings::Settings;
pub use units::{host_booted, host_crashed, UnitState, UnitsState};
pub use version::{embedded_version, file_version, write_with_version};

/// Path (inside a host) of the lab marker + settings fallback written by the lab.
pub const LAB_MARKER: &str = "/var/lib/rancher/k3s-standin/standin.json";
/// Directory (inside a host) holding the stand-in's per-host state (units, registered node).
pub const STATE_DIR: &str = "/var/lib/rancher/k3s-standin";
/// The k3s binary path the installer and the units require.
pub const K3S_BIN: &str = "/usr/local/bin/k3s";
/// The k3s config file read when a service starts.
pub const CONFIG_YAML: &str = "/etc/rancher/k3s/config.yaml";
/// The kubeconfig written by a server start.
pub const KUBECONFIG: &str = "/etc/rancher/k3s/k3s.yaml";

/// Default hold time of the join-in-progress (learner) marker.
pub const DEFAULT_JOIN_HOLD_MS: u64 = 300;

/// Default time a join retries an unreachable server (see [`Settings::join_retry_ms`]).
pub const DEFAULT_JOIN_RETRY_MS: u64 = 20_000;

/// The host a stand-in invocation runs on.
#[derive(Debug, Clone)]
pub struct HostEnv {
    /// Prefix for every absolute path (`/` inside a lab host, a temp dir in unit tests).
    pub root: PathBuf,
    /// The host name (UTS namespace) — names the records file and is the default node name.
    pub hostname: String,
    /// The host's own IPv4 address (default node address when `node-ip` is not set).
    pub address: Option<String>,
    pub settings: Settings,
}

impl HostEnv {
    /// `abs` (an absolute path as seen on the host) mapped under [`HostEnv::root`].
    pub fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    pub fn datastore(&self) -> Datastore {
        Datastore::new(&self.settings.datastore_dir)
    }

    /// Refuse to mutate anything unless this root is a lab host.
    pub fn ensure_lab_host(&self) -> Result<(), StandinError> {
        let marker = self.path(LAB_MARKER);
        if marker.is_file() {
            Ok(())
        } else {
            Err(StandinError::failed(
                1,
                format!(
                    "k3s stand-in: {} not found: this is not an ffe-lab host, refusing to touch the filesystem",
                    marker.display()
                ),
            ))
        }
    }
}

/// One invocation of the multi-call program.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// Basename of argv[0].
    pub program: String,
    /// argv[1..].
    pub args: Vec<String>,
    /// The full environment (only `INSTALL_K3S_*`/`K3S_*` minus secrets is ever recorded).
    pub env: BTreeMap<String, String>,
}

/// What an invocation printed and what gets recorded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Short text for the record.
    pub message: String,
    /// `/etc/rancher/k3s/config.yaml` as read when a service started.
    pub config_yaml: Option<String>,
    /// Manifest text read from stdin (`kubectl apply -f -`).
    pub stdin: Option<String>,
    /// Manifest files read (`kubectl apply -f FILE`), path → content.
    pub files: BTreeMap<String, String>,
    /// Warnings real k3s would log (e.g. an unknown config key it skipped). The lab fails a test
    /// on any: a setting k3s drops is a setting we believe is active and is not.
    pub warnings: Vec<String>,
}

impl Outcome {
    pub fn ok(message: impl Into<String>) -> Self {
        let message = message.into();
        Outcome {
            stdout: if message.is_empty() {
                String::new()
            } else {
                format!("{message}\n")
            },
            message,
            ..Outcome::default()
        }
    }

    pub fn fail(code: i32, message: impl Into<String>) -> Self {
        let message = message.into();
        Outcome {
            exit_code: code,
            stderr: format!("{message}\n"),
            message,
            ..Outcome::default()
        }
    }

    /// Turn `self` into a failure carrying `err`, keeping what was read (config, manifests).
    pub fn with_error(mut self, err: &StandinError) -> Self {
        self.exit_code = err.exit_code();
        self.message = err.to_string();
        self.stderr.push_str(&format!("{}\n", self.message));
        self
    }

    fn from_err(err: StandinError) -> Self {
        Outcome::fail(err.exit_code(), err.to_string())
    }
}

/// Version string printed by `k3s --version`.
pub fn version_line(settings: &Settings) -> String {
    format!(
        "k3s version {} (stand-in)\nffe-lab k3s stand-in: not k3s, records what it is asked to do",
        settings.version
    )
}

const HELP: &str = "k3s-standin — ffe-lab's k3s STAND-IN (not k3s).
Multi-call by argv[0]: k3s, kubectl, systemctl, *install.sh, k3s-uninstall.sh,
k3s-agent-uninstall.sh, k3s-killall.sh. Every call is recorded as one JSON line.
  k3s --version | k3s kubectl ... | k3s token rotate | k3s certificate rotate | k3s etcd-snapshot save [--name N]
  k3s secrets-encrypt status|rotate-keys
  k3s server --cluster-reset [--cluster-reset-restore-path=P] | kubectl get nodes -o json | kubectl get --raw /readyz
  kubectl cordon|uncordon|drain NODE | kubectl delete node NODE | kubectl apply|delete -f FILE|-
  systemctl start|restart|stop|enable|disable|is-active|is-enabled|status|daemon-reload UNIT";

/// Run one invocation. Never panics; failures become a non-zero [`Outcome`].
pub fn run(inv: &Invocation, host: &HostEnv, stdin: &mut dyn Read) -> Outcome {
    let program = inv.program.as_str();
    let result = match program {
        "k3s-uninstall.sh" => installer::uninstall(host, installer::Flavor::Server),
        "k3s-agent-uninstall.sh" => installer::uninstall(host, installer::Flavor::Agent),
        "k3s-killall.sh" => units::killall(host),
        p if p.ends_with("install.sh") => installer::install(inv, host),
        "systemctl" => units::systemctl(&inv.args, host),
        "kubectl" => kubectl::kubectl(&inv.args, host, stdin),
        _ if inv.args.first().map(String::as_str) == Some("token") => {
            token(&inv.args[1..], &inv.env, host)
        }
        _ if inv.args.first().map(String::as_str) == Some("certificate") => {
            certs::rotate(&inv.args[1..], host)
        }
        _ if inv.args.first().map(String::as_str) == Some("secrets-encrypt") => {
            encrypt::secrets_encrypt(&inv.args[1..], host)
        }
        _ if inv.args.first().map(String::as_str) == Some("etcd-snapshot") => {
            snapshot::save(&inv.args[1..], host)
        }
        _ if inv.args.first().map(String::as_str) == Some("server")
            && inv.args.iter().any(|a| a == "--cluster-reset") =>
        {
            snapshot::cluster_reset(&inv.args[1..], &inv.env, host)
        }
        _ => k3s(&inv.args, host, stdin),
    };
    result.unwrap_or_else(Outcome::from_err)
}

fn k3s(args: &[String], host: &HostEnv, stdin: &mut dyn Read) -> Result<Outcome, StandinError> {
    match args.first().map(String::as_str) {
        Some("--version") | Some("-v") | Some("version") => {
            Ok(Outcome::ok(version_line(&host.settings)))
        }
        Some("kubectl") => kubectl::kubectl(&args[1..], host, stdin),
        None | Some("--help") | Some("-h") | Some("help") => Ok(Outcome::ok(HELP)),
        Some(sub @ ("server" | "agent")) => Err(StandinError::failed(
            1,
            format!(
                "k3s stand-in: `k3s {sub}` does not run in the foreground; start the unit with systemctl"
            ),
        )),
        Some(other) => Err(StandinError::failed(
            1,
            format!("k3s stand-in: subcommand {other:?} is not modelled by the stand-in"),
        )),
    }
}

/// `k3s token rotate` (k3s >= 1.28.3; docs.k3s.io cli/token): on a running server, replaces the
/// server token given with `--token`/`-t` (or `K3S_TOKEN`) by `--new-token`. Servers started
/// afterwards with the old token in their config fail, as in k3s ("bootstrap data already found
/// and encrypted with different token"). Other `k3s token` subcommands are not modelled.
fn token(
    args: &[String],
    env: &BTreeMap<String, String>,
    host: &HostEnv,
) -> Result<Outcome, StandinError> {
    host.ensure_lab_host()?;
    if args.first().map(String::as_str) != Some("rotate") {
        return Err(StandinError::failed(
            1,
            format!(
                "k3s stand-in: `k3s token {}` is not modelled",
                args.join(" ")
            ),
        ));
    }
    let flag = |names: &[&str]| -> Option<String> {
        let mut it = args.iter().skip(1);
        while let Some(a) = it.next() {
            for n in names {
                if a == n {
                    return it.next().cloned();
                }
                if let Some(v) = a.strip_prefix(&format!("{n}=")) {
                    return Some(v.to_string());
                }
            }
        }
        None
    };
    let old = flag(&["--token", "-t"])
        .or_else(|| env.get("K3S_TOKEN").cloned())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            StandinError::failed(
                1,
                "k3s stand-in: token rotate needs the current token (--token or K3S_TOKEN)",
            )
        })?;
    let new = flag(&["--new-token"])
        .filter(|t| !t.is_empty())
        .ok_or_else(|| StandinError::failed(1, "k3s stand-in: token rotate needs --new-token"))?;
    if !units::UnitsState::load(host)?.get("k3s").active {
        return Err(StandinError::failed(
            1,
            "failed to rotate token: Post \"https://127.0.0.1:6443/v1-k3s/token\": dial tcp 127.0.0.1:6443: connect: connection refused (k3s stand-in: no server runs on this host)",
        ));
    }
    host.datastore().update(|s| {
        let st = s
            .as_mut()
            .ok_or_else(|| StandinError::failed(1, "k3s stand-in: no cluster"))?;
        if !st.token_matches(&old) {
            return Err(StandinError::failed(
                1,
                "failed to rotate token: the current token does not match the cluster (k3s stand-in)",
            ));
        }
        st.token = datastore::token_secret(&new).to_string();
        Ok(())
    })?;
    Ok(Outcome::ok(
        "Token rotated, restart k3s nodes with new token",
    ))
}

/// Read the host name of the current UTS namespace.
pub fn current_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// First global-scope IPv4 address of the current network namespace (via `ip`).
pub fn current_address() -> Option<String> {
    let out = std::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        while let Some(f) = fields.next() {
            if f == "inet" {
                return fields
                    .next()
                    .and_then(|cidr| cidr.split('/').next())
                    .map(str::to_string);
            }
        }
        None
    })
}

/// Write `content` to `path` (creating parents) with the given mode.
pub(crate) fn write_file(path: &Path, content: &[u8], mode: u32) -> Result<(), StandinError> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| StandinError::io(parent, e))?;
    }
    let tmp = path.with_extension(format!("standin-tmp-{}", std::process::id()));
    std::fs::write(&tmp, content).map_err(|e| StandinError::io(&tmp, e))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .map_err(|e| StandinError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| StandinError::io(path, e))
}

pub(crate) fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    /// A lab-like host under a temp dir, sharing `shared` as datastore/records dir.
    pub fn host(shared: &Path, name: &str, ip: &str) -> HostEnv {
        let root = shared.join("hosts").join(name);
        let settings = Settings {
            datastore_dir: shared.join("datastore"),
            records_dir: shared.join("records"),
            version: "v1.33.5+k3s1".into(),
            join_hold_ms: 0,
            join_retry_ms: 0,
        };
        let host = HostEnv {
            root,
            hostname: name.into(),
            address: Some(ip.into()),
            settings,
        };
        let marker = host.path(LAB_MARKER);
        std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
        std::fs::write(&marker, serde_json::to_vec(&host.settings).unwrap()).unwrap();
        // the "uploaded k3s binary"
        write_file(&host.path(K3S_BIN), b"#!/bin/true\n", 0o755).unwrap();
        host
    }

    pub fn inv(program: &str, args: &[&str], env: &[(&str, &str)]) -> Invocation {
        Invocation {
            program: program.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    pub fn call(host: &HostEnv, program: &str, args: &[&str]) -> Outcome {
        run(&inv(program, args, &[]), host, &mut std::io::empty())
    }

    pub fn write_config(host: &HostEnv, yaml: &str) {
        write_file(&host.path(CONFIG_YAML), yaml.as_bytes(), 0o600).unwrap();
    }

    /// The installer as the provider runs it (always restarting; see ffe-core `install_env`).
    pub fn install(host: &HostEnv, exec: &str) -> Outcome {
        run(
            &inv(
                "install.sh",
                &[],
                &[
                    ("INSTALL_K3S_SKIP_DOWNLOAD", "true"),
                    ("INSTALL_K3S_EXEC", exec),
                    ("INSTALL_K3S_FORCE_RESTART", "true"),
                ],
            ),
            host,
            &mut std::io::empty(),
        )
    }
}

#[cfg(test)]
mod tests;

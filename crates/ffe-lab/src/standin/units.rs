//! `systemctl` and the k3s units: what happens when `k3s` / `k3s-agent` start and stop.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::K3sConfig;
use super::datastore::{token_secret, ClusterState, JoinMarker, NodeState, Role};
use super::lock::FileLock;
use super::record::{append_record, StandinRecord};
use super::{
    now_ns, write_file, HostEnv, Outcome, Settings, StandinError, CONFIG_YAML, K3S_BIN, KUBECONFIG,
    STATE_DIR,
};

/// Active/enabled state of one unit on one host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitState {
    pub active: bool,
    pub enabled: bool,
}

/// The node this host registered (name + role), for stop/uninstall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredNode {
    pub name: String,
    pub role: Role,
}

/// Per-host unit state: `/var/lib/rancher/k3s-standin/units.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UnitsState {
    #[serde(default)]
    pub units: BTreeMap<String, UnitState>,
    #[serde(default)]
    pub node: Option<RegisteredNode>,
}

impl UnitsState {
    fn file(host: &HostEnv) -> std::path::PathBuf {
        host.path(&format!("{STATE_DIR}/units.json"))
    }

    pub fn load(host: &HostEnv) -> Result<Self, StandinError> {
        let path = Self::file(host);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| StandinError::json(&path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(StandinError::io(&path, e)),
        }
    }

    pub fn save(&self, host: &HostEnv) -> Result<(), StandinError> {
        let path = Self::file(host);
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| StandinError::json(&path, e))?;
        write_file(&path, &bytes, 0o644)
    }

    pub fn get(&self, unit: &str) -> UnitState {
        self.units.get(unit).copied().unwrap_or_default()
    }

    fn entry(&mut self, unit: &str) -> &mut UnitState {
        self.units.entry(unit.to_string()).or_default()
    }
}

/// Lock, load, modify, save the host's unit state.
pub(crate) fn with_units<T>(
    host: &HostEnv,
    f: impl FnOnce(&mut UnitsState) -> Result<T, StandinError>,
) -> Result<T, StandinError> {
    let _lock = FileLock::exclusive(&host.path(&format!("{STATE_DIR}/units.lock")))?;
    let mut st = UnitsState::load(host)?;
    let out = f(&mut st);
    st.save(host)?;
    out
}

/// The k3s unit name of a flavour.
pub fn unit_name(role: Role) -> &'static str {
    match role {
        Role::Server => "k3s",
        Role::Agent => "k3s-agent",
    }
}

fn k3s_unit(unit: &str) -> Option<Role> {
    match unit {
        "k3s" => Some(Role::Server),
        "k3s-agent" => Some(Role::Agent),
        _ => None,
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn failed(msg: impl Into<String>) -> StandinError {
    StandinError::failed(1, msg)
}

/// Inside a server's data dir: which cluster (its CA hash) the host's etcd data belongs to.
pub const ETCD_DATA_MARKER: &str = "/var/lib/rancher/k3s/server/db/etcd/ffe-standin-cluster";

/// The full token k3s writes to `server/token` (`user` = `server`) and `server/agent-token`
/// (`user` = `node`).
fn full_token(ca_hash: &str, user: &str, secret: &str) -> String {
    format!("K10{ca_hash}::{user}:{secret}")
}

/// What k3s logs when a node joins with a token that carries no CA hash.
pub const UNPINNED_JOIN_WARNING: &str = "level=warning msg=\"Cluster CA certificate is not trusted by the host CA bundle, but the token does not include a CA hash. Use the full token from the server's node-token file to enable Cluster CA validation.\"";

fn random_secret() -> String {
    let mut buf = [0u8; 16];
    if let Ok(bytes) = std::fs::read("/proc/sys/kernel/random/uuid") {
        buf.iter_mut().zip(bytes.iter()).for_each(|(b, v)| *b = *v);
    }
    let mut h = Sha256::new();
    h.update(buf);
    h.update(now_ns().to_le_bytes());
    hex::encode(&h.finalize()[..16])
}

fn parse_server_url(url: &str) -> Result<(String, u16), StandinError> {
    let rest = url.strip_prefix("https://").ok_or_else(|| {
        failed(format!(
            "k3s stand-in: server {url:?} must be an https:// URL, e.g. https://10.210.1.11:6443"
        ))
    })?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| failed(format!("k3s stand-in: bad port in server URL {url:?}")))?,
        ),
        None => (rest, 443),
    };
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// The address must be an active, ready server and the token must be valid for `role`.
/// Returns whether the token pinned the cluster CA.
fn check_join(
    state: &Option<ClusterState>,
    url: &str,
    token: &str,
    role: Role,
) -> Result<bool, StandinError> {
    let (addr, port) = parse_server_url(url)?;
    let reachable = port == 6443
        && state
            .as_ref()
            .is_some_and(|s| s.active_server(&addr).is_some());
    if !reachable {
        return Err(failed(format!(
            "failed to get CA certs: Get \"https://{addr}:{port}/cacerts\": dial tcp {addr}:{port}: connect: connection refused"
        )));
    }
    let st = state.as_ref().ok_or_else(|| failed("no cluster"))?;
    st.check_join_token(token, role)
        .map_err(|m| failed(format!("{m} (joining {url})")))
}

/// Register `node`, or start an already registered one. Like k3s: `node-taint` counts only when
/// the Node is created (a restart keeps the Node's taints), and `node-label` only adds (labels
/// set earlier stay, whatever the config says now).
fn upsert(st: &mut ClusterState, name: &str, mut node: NodeState) -> Result<(), StandinError> {
    if let Some(old) = st.nodes.get(name) {
        if old.ready && !old.host.is_empty() && old.host != node.host {
            return Err(failed(format!(
                "Node password rejected, duplicate hostname: node {name} is already registered by host {}",
                old.host
            )));
        }
        node.unschedulable = old.unschedulable;
        node.taints = old.taints.clone();
        let mut labels = old.labels.clone();
        labels.extend(node.labels);
        node.labels = labels;
    }
    st.nodes.insert(name.to_string(), node);
    Ok(())
}

enum Join {
    Done,
    Pending,
}

/// Register this host's node for `role` according to `cfg`; returns (node name, cluster token).
fn register(
    host: &HostEnv,
    role: Role,
    cfg: &K3sConfig,
    text: &str,
    warnings: &mut Vec<String>,
) -> Result<(String, String), StandinError> {
    let name = cfg
        .node_name
        .clone()
        .unwrap_or_else(|| host.hostname.clone());
    let address = cfg
        .node_ip
        .clone()
        .or_else(|| host.address.clone())
        .ok_or_else(|| failed("k3s stand-in: no node address: set node-ip in config.yaml"))?;
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), "amd64".to_string()),
        (
            "node.kubernetes.io/instance-type".to_string(),
            "k3s".to_string(),
        ),
    ]);
    if role == Role::Server {
        labels.insert(
            "node-role.kubernetes.io/control-plane".into(),
            "true".into(),
        );
        labels.insert("node-role.kubernetes.io/etcd".into(), "true".into());
    }
    labels.extend(cfg.node_labels.clone());
    let node = NodeState {
        role,
        address,
        version: super::version::file_version(&host.path(K3S_BIN))
            .unwrap_or_else(|| host.settings.version.clone()),
        labels,
        taints: cfg.node_taints.clone(),
        ready: true,
        unschedulable: false,
        config_sha256: hex::encode(Sha256::digest(text.as_bytes())),
        host: host.hostname.clone(),
    };
    let ds = host.datastore();
    if role == Role::Server {
        if let (Some(given), Some(c)) = (&cfg.agent_token, ds.read()?) {
            // k3s keeps the agent password in its bootstrap data: a server started with another
            // agent-token gets out of sync with it ("passwd newer than datastore").
            let current = c
                .agent_token
                .clone()
                .unwrap_or_else(|| token_secret(&c.token).to_string());
            if !c.etcd_members.is_empty() && *given != current {
                return Err(failed(
                    "k3s stand-in: agent-token differs from the agent password in the datastore: real k3s gets out of sync (\"passwd newer than datastore\"); change it only with `k3s token rotate`",
                ));
            }
        }
    }
    let token_of =
        |s: &Option<ClusterState>| s.as_ref().map(|c| c.token.clone()).unwrap_or_default();
    if role == Role::Server {
        // Like k3s: a server with etcd data of this cluster starts from that data and reads
        // neither `server` nor `cluster-init`; a server whose member was removed must not reuse
        // its data (k3s-io/k3s #13498: "data-dir used by this member must be removed"); and a
        // fresh server under the name of a member that was never removed would add a second
        // member for one node (the stand-in refuses; real k3s's outcome depends on the address).
        let own_data = std::fs::read_to_string(host.path(ETCD_DATA_MARKER)).ok();
        let restarted = ds.update(|s| {
            let Some(st) = s.as_mut() else {
                return Ok(None);
            };
            let own = own_data.as_deref().map(str::trim) == Some(st.ca_hash.as_str())
                && !st.ca_hash.is_empty();
            match (own, st.is_member(&name)) {
                (true, true) => {
                    if cfg.token.as_deref().is_some_and(|t| !st.token_matches(t)) {
                        return Err(failed(
                            "bootstrap data already found and encrypted with different token (k3s stand-in)",
                        ));
                    }
                    upsert(st, &name, node.clone())?;
                    Ok(Some(st.token.clone()))
                }
                (true, false) if !st.etcd_members.is_empty() => Err(failed(format!(
                    "etcdserver: the member has been permanently removed from the cluster; data-dir used by this member must be removed (node {name}; k3s-uninstall.sh removes it)"
                ))),
                (false, true) if cfg.server.is_some() => Err(failed(format!(
                    "k3s stand-in: etcd still has a member for node {name} (its Node was never deleted) while this host joins with empty data: the cluster would count a dead member toward quorum. Delete the Node first (`kubectl delete node {name}` removes its member)"
                ))),
                _ => Ok(None),
            }
        })?;
        if let Some(token) = restarted {
            return Ok((name, token));
        }
    }
    match (role, &cfg.server) {
        (Role::Agent, None) => Err(failed(
            "k3s stand-in: --server is required for an agent: set `server: https://SERVER:6443` in config.yaml",
        )),
        (_, Some(url)) => {
            let token = cfg.token.as_deref().ok_or_else(|| {
                failed("k3s stand-in: --token is required to join a cluster: set `token:` in config.yaml")
            })?;
            let hold = Duration::from_millis(host.settings.join_hold_ms);
            // k3s keeps retrying a join server that does not answer (the unit's start blocks
            // meanwhile): wait for it to come back, up to join_retry_ms.
            let deadline =
                std::time::Instant::now() + Duration::from_millis(host.settings.join_retry_ms);
            while std::time::Instant::now() < deadline {
                let (addr, port) = parse_server_url(url)?;
                let up = port == 6443
                    && ds
                        .read()?
                        .is_some_and(|s| s.active_server(&addr).is_some());
                if up {
                    break;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            let step = ds.update(|s| {
                if !check_join(s, url, token, role)? {
                    warnings.push(UNPINNED_JOIN_WARNING.to_string());
                }
                let st = s.as_mut().ok_or_else(|| failed("no cluster"))?;
                if role == Role::Agent || st.is_member(&name) {
                    upsert(st, &name, node.clone())?;
                    return Ok(Join::Done);
                }
                let others = st.other_learners(&name, now_ns());
                if !others.is_empty() {
                    return Err(failed(format!(
                        "ETCD join failed: etcdserver: too many learner members in cluster (learner in progress: {})",
                        others.join(", ")
                    )));
                }
                st.join_in_progress.insert(
                    name.clone(),
                    JoinMarker {
                        host: host.hostname.clone(),
                        since_ns: now_ns(),
                    },
                );
                Ok(Join::Pending)
            })?;
            if let Join::Pending = step {
                std::thread::sleep(hold);
                ds.update(|s| {
                    let st = s
                        .as_mut()
                        .ok_or_else(|| failed("k3s stand-in: cluster vanished during the join"))?;
                    st.join_in_progress.remove(&name);
                    if !st.is_member(&name) {
                        st.etcd_members.push(name.clone());
                    }
                    upsert(st, &name, node.clone())
                })?;
            }
            Ok((name.clone(), token_of(&ds.read()?)))
        }
        (Role::Server, None) if cfg.cluster_init => {
            let data_marker = host.path(ETCD_DATA_MARKER);
            let own_data = std::fs::read_to_string(&data_marker).ok();
            let token = ds.update(|s| {
                let fresh = s.as_ref().is_none_or(|c| c.etcd_members.is_empty());
                if let (false, Some(c)) = (fresh, s.as_ref()) {
                    // Real k3s with `cluster-init` and an empty data dir bootstraps a new etcd
                    // cluster, whatever else exists: a second, separate cluster (split brain).
                    // The shared datastore cannot hold two clusters, so the stand-in refuses.
                    if own_data.as_deref().map(str::trim) != Some(c.ca_hash.as_str()) {
                        return Err(failed(format!(
                            "k3s stand-in: cluster-init with an empty data dir on {} while the cluster of {} exists: real k3s would start a second, separate cluster here (split brain)",
                            host.hostname,
                            c.etcd_members.join(", ")
                        )));
                    }
                }
                if fresh {
                    let secret = cfg.token.clone().unwrap_or_else(random_secret);
                    *s = Some(ClusterState {
                        token: secret,
                        ca_hash: format!("{}{}", random_secret(), random_secret()),
                        agent_token: cfg.agent_token.clone(),
                        cni_required: cfg
                            .other
                            .get("flannel-backend")
                            .and_then(|v| v.as_str())
                            == Some("none"),
                        ..ClusterState::default()
                    });
                } else if let (Some(given), Some(c)) = (&cfg.token, s.as_ref()) {
                    if !c.token_matches(given) {
                        return Err(failed(
                            "bootstrap data already found and encrypted with different token (k3s stand-in)",
                        ));
                    }
                }
                let st = s.as_mut().ok_or_else(|| failed("no cluster"))?;
                if !st.is_member(&name) {
                    st.etcd_members.push(name.clone());
                }
                upsert(st, &name, node.clone())?;
                Ok(st.token.clone())
            })?;
            Ok((name, token))
        }
        (Role::Server, None) => Err(failed(
            "k3s stand-in: a server needs `cluster-init: true` or `server:` in config.yaml (only embedded etcd is modelled)",
        )),
    }
}

fn kubeconfig() -> String {
    // Obviously fake, base64 of "k3s stand-in fake ... : not a certificate/key".
    "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: azNzIHN0YW5kLWluIGZha2UgQ0EgZGF0YTogbm90IGEgY2VydGlmaWNhdGU=\n    server: https://127.0.0.1:6443\n  name: default\ncontexts:\n- context:\n    cluster: default\n    user: default\n  name: default\ncurrent-context: default\npreferences: {}\nusers:\n- name: default\n  user:\n    client-certificate-data: azNzIHN0YW5kLWluIGZha2UgY2xpZW50IGNlcnRpZmljYXRlOiBub3QgYSBjZXJ0aWZpY2F0ZQ==\n    client-key-data: azNzIHN0YW5kLWluIGZha2UgY2xpZW50IGtleTogbm90IGEga2V5\n".to_string()
}

/// Start (or restart) a k3s unit: the core of the stand-in. `out.config_yaml` gets the config read.
pub(crate) fn start_unit(
    host: &HostEnv,
    role: Role,
    st: &mut UnitsState,
    out: &mut Outcome,
) -> Result<(), StandinError> {
    let unit = unit_name(role);
    if !host
        .path(&format!("/etc/systemd/system/{unit}.service"))
        .is_file()
    {
        return Err(StandinError::failed(
            5,
            format!("Failed to start {unit}.service: Unit {unit}.service not found."),
        ));
    }
    let result = (|| {
        if !is_executable(&host.path(K3S_BIN)) {
            return Err(failed(format!(
                "{unit}.service: Failed to locate executable {K3S_BIN}: No such file or directory"
            )));
        }
        let cfg_path = host.path(CONFIG_YAML);
        let text = match std::fs::read_to_string(&cfg_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(StandinError::io(&cfg_path, e)),
        };
        out.config_yaml = Some(text.clone());
        let cfg = K3sConfig::parse(&text)?;
        // Real k3s: a server skips unknown keys with a warning, an agent refuses to start.
        out.warnings.extend(super::flags::check_config_keys(
            role,
            cfg.keys.iter().map(String::as_str),
        )?);
        super::hardening::check(host, role, &cfg)?;
        let (name, _) = register(host, role, &cfg, &text, &mut out.warnings)?;
        if role == Role::Server
            && matches!(
                cfg.other.get("secrets-encryption"),
                Some(serde_yaml_ng::Value::Bool(true))
            )
        {
            super::encrypt::on_server_start(host, &name)?;
        }
        if role == Role::Server {
            write_file(&host.path(KUBECONFIG), kubeconfig().as_bytes(), 0o600)?;
            let st = host
                .datastore()
                .read()?
                .ok_or_else(|| failed("k3s stand-in: cluster vanished after registering"))?;
            // This host's etcd data now belongs to that cluster (k3s-uninstall.sh removes it).
            write_file(&host.path(ETCD_DATA_MARKER), st.ca_hash.as_bytes(), 0o600)?;
            let full = full_token(&st.ca_hash, "server", token_secret(&st.token));
            for f in ["token", "node-token"] {
                write_file(
                    &host.path(&format!("/var/lib/rancher/k3s/server/{f}")),
                    format!("{full}\n").as_bytes(),
                    0o600,
                )?;
            }
            if let Some(agent) = &st.agent_token {
                write_file(
                    &host.path("/var/lib/rancher/k3s/server/agent-token"),
                    format!("{}\n", full_token(&st.ca_hash, "node", agent)).as_bytes(),
                    0o600,
                )?;
            }
        }
        Ok(name)
    })();
    match result {
        Ok(name) => {
            // Like k3s at start: certificates a rotation removed are issued again.
            super::certs::reissue(host)?;
            st.entry(unit).active = true;
            st.node = Some(RegisteredNode { name, role });
            Ok(())
        }
        Err(e) => {
            st.entry(unit).active = false;
            Err(StandinError::failed(
                1,
                format!(
                    "Job for {unit}.service failed because the control process exited with error code.\n{e}"
                ),
            ))
        }
    }
}

/// Stop a unit: inactive, and this host's node goes NotReady.
pub(crate) fn stop_unit(
    host: &HostEnv,
    unit: &str,
    st: &mut UnitsState,
) -> Result<(), StandinError> {
    st.entry(unit).active = false;
    let Some(role) = k3s_unit(unit) else {
        return Ok(());
    };
    if let Some(node) = st.node.clone().filter(|n| n.role == role) {
        mark_not_ready(host, &node.name)?;
    }
    Ok(())
}

pub(crate) fn mark_not_ready(host: &HostEnv, name: &str) -> Result<(), StandinError> {
    host.datastore().update(|s| {
        if let Some(n) = s.as_mut().and_then(|c| c.nodes.get_mut(name)) {
            if n.host == host.hostname || n.host.is_empty() {
                n.ready = false;
            }
        }
        Ok(())
    })
}

fn normalize_unit(u: &str) -> String {
    u.strip_suffix(".service").unwrap_or(u).to_string()
}

/// `systemctl VERB [flags] UNIT...`.
pub(crate) fn systemctl(args: &[String], host: &HostEnv) -> Result<Outcome, StandinError> {
    let quiet = args.iter().any(|a| a == "-q" || a == "--quiet");
    let now = args.iter().any(|a| a == "--now");
    let mut positional = args.iter().filter(|a| !a.starts_with('-'));
    let verb = positional
        .next()
        .map(String::as_str)
        .unwrap_or("list-units");
    let units: Vec<String> = positional.map(|u| normalize_unit(u)).collect();
    let touches_k3s = units.iter().any(|u| k3s_unit(u).is_some());
    let mutating = !matches!(verb, "is-active" | "is-enabled" | "status" | "show" | "cat");
    if touches_k3s && mutating {
        host.ensure_lab_host()?;
    }
    with_units(host, |st| {
        let mut out = Outcome::default();
        let mut lines = Vec::new();
        let mut code = 0;
        for unit in &units {
            let role = k3s_unit(unit);
            let exists = role.is_none()
                || host
                    .path(&format!("/etc/systemd/system/{unit}.service"))
                    .is_file();
            match (verb, role) {
                ("is-active", Some(_)) => {
                    let a = st.get(unit).active && exists;
                    lines.push(if a { "active" } else { "inactive" }.to_string());
                    if !a {
                        code = 3;
                    }
                }
                ("is-enabled", Some(_)) => {
                    let e = st.get(unit).enabled && exists;
                    lines.push(if e { "enabled" } else { "disabled" }.to_string());
                    if !e {
                        code = 1;
                    }
                }
                ("status", Some(_)) => {
                    if !exists {
                        lines.push(format!("Unit {unit}.service could not be found."));
                        code = 4;
                    } else {
                        let a = st.get(unit).active;
                        lines.push(format!(
                            "* {unit}.service - Lightweight Kubernetes (k3s stand-in)\n     Active: {}",
                            if a { "active (running)" } else { "inactive (dead)" }
                        ));
                        if !a {
                            code = 3;
                        }
                    }
                }
                ("start", Some(r)) if st.get(unit).active && exists => {
                    let _ = r;
                    lines.push(format!("{unit} already active"));
                }
                ("start" | "restart" | "try-restart" | "reload-or-restart" | "reload", Some(r)) => {
                    if let Err(e) = start_unit(host, r, st, &mut out) {
                        return Ok(out.with_error(&e));
                    }
                    lines.push(format!("{unit} started"));
                }
                ("stop", Some(_)) => {
                    stop_unit(host, unit, st)?;
                    lines.push(format!("{unit} stopped"));
                }
                ("enable" | "disable", Some(r)) => {
                    if !exists {
                        return Err(StandinError::failed(
                            1,
                            format!(
                                "Failed to {verb} unit: Unit file {unit}.service does not exist."
                            ),
                        ));
                    }
                    st.entry(unit).enabled = verb == "enable";
                    if now && verb == "enable" && !st.get(unit).active {
                        if let Err(e) = start_unit(host, r, st, &mut out) {
                            return Ok(out.with_error(&e));
                        }
                    }
                    if now && verb == "disable" {
                        stop_unit(host, unit, st)?;
                    }
                    lines.push(format!("{unit} {verb}d"));
                }
                (_, None) => {
                    // Any other unit (chrony, ...): recorded and succeeds.
                    if verb == "is-active" {
                        lines.push("active".into());
                    } else if verb == "is-enabled" {
                        lines.push("enabled".into());
                    }
                }
                (_, Some(_)) => lines.push(format!("{verb} {unit}: ok")),
            }
        }
        out.exit_code = code;
        out.message = format!("systemctl {verb} {}: exit {code}", units.join(" "));
        if !quiet && matches!(verb, "is-active" | "is-enabled" | "status") {
            out.stdout = lines.iter().map(|l| format!("{l}\n")).collect();
        }
        Ok(out)
    })
}

/// `k3s-killall.sh`: stop every k3s unit on the host.
pub(crate) fn killall(host: &HostEnv) -> Result<Outcome, StandinError> {
    host.ensure_lab_host()?;
    with_units(host, |st| {
        for unit in ["k3s", "k3s-agent"] {
            stop_unit(host, unit, st)?;
        }
        Ok(Outcome::ok("k3s stand-in: k3s units stopped"))
    })
}

fn lab_host(root: &Path, hostname: &str, address: Option<String>, settings: &Settings) -> HostEnv {
    HostEnv {
        root: root.to_path_buf(),
        hostname: hostname.to_string(),
        address,
        settings: settings.clone(),
    }
}

/// Lab hook: the host died. Every unit becomes inactive (enabled flags are kept) and its node
/// NotReady in the datastore.
pub fn host_crashed(root: &Path, hostname: &str, settings: &Settings) -> Result<(), StandinError> {
    let host = lab_host(root, hostname, None, settings);
    host.ensure_lab_host()?;
    with_units(&host, |st| {
        let units: Vec<String> = st.units.keys().cloned().collect();
        for unit in units {
            stop_unit(&host, &unit, st)?;
        }
        Ok(())
    })
}

/// Lab hook: the host booted. Every enabled k3s unit is started as systemd would; each start is
/// recorded with program `boot`. Returns the outcomes (a failed start is not an error here).
pub fn host_booted(
    root: &Path,
    hostname: &str,
    address: Option<String>,
    settings: &Settings,
) -> Result<Vec<Outcome>, StandinError> {
    let host = lab_host(root, hostname, address, settings);
    host.ensure_lab_host()?;
    let enabled: Vec<Role> = UnitsState::load(&host)?
        .units
        .iter()
        .filter(|(_, s)| s.enabled)
        .filter_map(|(u, _)| k3s_unit(u))
        .collect();
    let mut outcomes = Vec::new();
    for role in enabled {
        let ts_ns = now_ns();
        let outcome = with_units(&host, |st| {
            let mut out = Outcome::default();
            match start_unit(&host, role, st, &mut out) {
                Ok(()) => out.message = format!("{} started at boot", unit_name(role)),
                Err(e) => {
                    out.exit_code = e.exit_code();
                    out.message = e.to_string();
                }
            }
            Ok(out)
        })?;
        append_record(
            &settings.records_dir,
            &StandinRecord {
                ts_ns,
                host: hostname.to_string(),
                program: "boot".into(),
                argv: vec!["start".into(), unit_name(role).into()],
                env: BTreeMap::new(),
                config_yaml: outcome.config_yaml.clone(),
                exit_code: outcome.exit_code,
                message: outcome.message.clone(),
                stdin: None,
                files: BTreeMap::new(),
                warnings: outcome.warnings.clone(),
            },
        )?;
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

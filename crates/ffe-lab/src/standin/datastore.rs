//! The lab-wide "cluster" shared by all hosts: `<datastore_dir>/cluster.json` under an flock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::Taint;
use super::lock::FileLock;
use super::{write_file, StandinError};

/// A marker older than this is left over from a crashed join and ignored.
pub const STALE_JOIN_NS: u64 = 30_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Server,
    Agent,
}

/// A registered node (what `kubectl get nodes` shows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    pub role: Role,
    pub address: String,
    pub version: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub taints: Vec<Taint>,
    pub ready: bool,
    #[serde(default)]
    pub unschedulable: bool,
    /// sha256 (hex) of config.yaml at the last service start.
    pub config_sha256: String,
    /// Host name of the machine that registered the node.
    #[serde(default)]
    pub host: String,
}

/// A pod a test placed on a node (the stand-in runs no workloads): what `kubectl drain` must
/// evict and `kubectl get pods` lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodState {
    pub namespace: String,
    pub name: String,
    pub node: String,
    /// Kind of the controller owning it (`DaemonSet` pods are not evicted by a drain).
    #[serde(default)]
    pub owner_kind: Option<String>,
    /// A PodDisruptionBudget allows no disruption: eviction is refused (HTTP 429).
    #[serde(default)]
    pub protected_by_pdb: bool,
}

/// A server join in progress (etcd admits one learner at a time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinMarker {
    pub host: String,
    pub since_ns: u64,
}

/// `cluster.json`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ClusterState {
    pub token: String,
    /// sha256 (hex) of the cluster CA certificate, as k3s puts into `K10<hash>::` tokens. The
    /// stand-in has no CA: it is a random 256-bit value fixed at `cluster-init`, real length.
    #[serde(default)]
    pub ca_hash: String,
    /// `flannel-backend: none` at cluster-init: nodes stay NotReady until a CNI is installed.
    #[serde(default)]
    pub cni_required: bool,
    /// The `agent-token` secret the bootstrap server was given, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_token: Option<String>,
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeState>,
    /// Node names of the embedded-etcd members (servers), in join order.
    #[serde(default)]
    pub etcd_members: Vec<String>,
    #[serde(default)]
    pub join_in_progress: BTreeMap<String, JoinMarker>,
    /// `kube-system` Addon objects of k3s's deploy controller, by name (see `deploy`).
    #[serde(default)]
    pub addons: BTreeMap<String, super::deploy::AddonState>,
    /// Pods placed by tests, by `namespace/name`.
    #[serde(default)]
    pub pods: BTreeMap<String, PodState>,
    /// Secrets-encryption keys (`secrets-encryption: true`), the active one first.
    #[serde(default)]
    pub encryption_keys: Vec<String>,
    /// `k3s secrets-encrypt status`'s "Current Rotation Stage".
    #[serde(default)]
    pub encryption_stage: String,
    /// Per server: the keys it loaded when it last started (its "encryption hash").
    #[serde(default)]
    pub server_key_hashes: BTreeMap<String, String>,
}

/// The secret part of a k3s token: `K10<hash>::<user>:<secret>` or the bare secret.
pub fn token_secret(token: &str) -> &str {
    if token.starts_with("K10") {
        if let Some((_, rest)) = token.split_once("::") {
            return rest.rsplit_once(':').map(|(_, s)| s).unwrap_or(rest);
        }
    }
    token
}

impl ClusterState {
    pub fn token_matches(&self, given: &str) -> bool {
        !given.is_empty() && token_secret(&self.token) == token_secret(given)
    }

    /// Validate a join token as k3s does for `role`. A full token (`K10<ca hash>::<user>:<secret>`)
    /// must carry this cluster's CA hash; `server` tokens join servers and agents, `node` (agent)
    /// tokens join agents only. Returns whether the joiner pinned the cluster CA.
    pub fn check_join_token(&self, given: &str, role: Role) -> Result<bool, String> {
        let (pinned, user, secret) = match given.strip_prefix("K10") {
            Some(rest) => {
                let (hash, creds) = rest
                    .split_once("::")
                    .ok_or_else(|| "failed to parse token: invalid token format".to_string())?;
                if hash != self.ca_hash {
                    return Err(format!(
                        "token CA hash does not match the Cluster CA certificate hash: {hash} != {}",
                        self.ca_hash
                    ));
                }
                let (user, secret) = creds
                    .split_once(':')
                    .ok_or_else(|| "failed to parse token: invalid token format".to_string())?;
                (true, Some(user), secret)
            }
            None => (false, None, given),
        };
        let server_ok = !secret.is_empty()
            && secret == token_secret(&self.token)
            && user.is_none_or(|u| u == "server");
        let agent_ok = self.agent_token.as_deref().is_some_and(|a| a == secret)
            && user.is_none_or(|u| u == "node");
        match (role, server_ok, agent_ok) {
            (_, true, _) | (Role::Agent, _, true) => Ok(pinned),
            (Role::Server, _, true) => Err(
                "failed to validate token: the agent token cannot join a server; use the server token"
                    .into(),
            ),
            _ => Err("failed to validate token: the token does not match the cluster".into()),
        }
    }

    /// An etcd member server that is ready and answers at `addr` (its address or node name).
    pub fn active_server(&self, addr: &str) -> Option<(&String, &NodeState)> {
        self.nodes.iter().find(|(name, n)| {
            n.role == Role::Server
                && n.ready
                && self.etcd_members.contains(name)
                && (n.address == addr || name.as_str() == addr)
        })
    }

    /// Join markers of other nodes that are not stale.
    pub fn other_learners(&self, me: &str, now_ns: u64) -> Vec<String> {
        self.join_in_progress
            .iter()
            .filter(|(name, m)| {
                name.as_str() != me && now_ns.saturating_sub(m.since_ns) < STALE_JOIN_NS
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub fn is_member(&self, name: &str) -> bool {
        self.etcd_members.iter().any(|m| m == name)
    }

    /// Drop a server from the etcd member set (and any join marker of it).
    pub fn remove_member(&mut self, name: &str) {
        self.etcd_members.retain(|m| m != name);
        self.join_in_progress.remove(name);
    }

    /// Servers that are etcd members and ready.
    pub fn healthy_members(&self) -> usize {
        self.etcd_members
            .iter()
            .filter(|m| self.nodes.get(*m).is_some_and(|n| n.ready))
            .count()
    }
}

/// Handle on `<dir>/cluster.json`.
#[derive(Debug, Clone)]
pub struct Datastore {
    dir: PathBuf,
}

impl Datastore {
    pub fn new(dir: &Path) -> Self {
        Datastore {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("cluster.json")
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join("cluster.json.lock")
    }

    fn load_unlocked(&self) -> Result<Option<ClusterState>, StandinError> {
        let path = self.path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StandinError::json(&path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StandinError::io(&path, e)),
        }
    }

    /// Read the cluster under a shared lock (`None` before any cluster-init).
    pub fn read(&self) -> Result<Option<ClusterState>, StandinError> {
        let _lock = FileLock::shared(&self.lock_path())?;
        self.load_unlocked()
    }

    /// Read-modify-write under the exclusive lock. The state is saved only when `f` succeeds.
    pub fn update<T>(
        &self,
        f: impl FnOnce(&mut Option<ClusterState>) -> Result<T, StandinError>,
    ) -> Result<T, StandinError> {
        let _lock = FileLock::exclusive(&self.lock_path())?;
        let mut state = self.load_unlocked()?;
        let before = state.clone();
        let out = f(&mut state)?;
        if state != before {
            if let Some(s) = &state {
                let path = self.path();
                let bytes =
                    serde_json::to_vec_pretty(s).map_err(|e| StandinError::json(&path, e))?;
                write_file(&path, &bytes, 0o600)?;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(role: Role, addr: &str, ready: bool) -> NodeState {
        NodeState {
            role,
            address: addr.into(),
            version: "v1".into(),
            labels: BTreeMap::new(),
            taints: vec![],
            ready,
            unschedulable: false,
            config_sha256: String::new(),
            host: String::new(),
        }
    }

    #[test]
    fn token_forms() {
        assert_eq!(token_secret("K10abcdef::server:s3cret"), "s3cret");
        assert_eq!(token_secret("plain"), "plain");
        let st = ClusterState {
            token: "s3cret".into(),
            ..Default::default()
        };
        assert!(st.token_matches("K10ff::server:s3cret"));
        assert!(!st.token_matches("other"));
        assert!(!st.token_matches(""));
    }

    #[test]
    fn active_server_needs_ready_member_server() {
        let mut st = ClusterState::default();
        st.nodes
            .insert("s1".into(), node(Role::Server, "10.0.0.1", true));
        st.nodes
            .insert("s2".into(), node(Role::Server, "10.0.0.2", false));
        st.nodes
            .insert("a1".into(), node(Role::Agent, "10.0.0.3", true));
        st.etcd_members = vec!["s2".into()];
        assert!(st.active_server("10.0.0.1").is_none(), "not a member");
        st.etcd_members.push("s1".into());
        assert!(st.active_server("10.0.0.1").is_some());
        assert!(st.active_server("s1").is_some());
        assert!(st.active_server("10.0.0.2").is_none(), "not ready");
        assert!(st.active_server("10.0.0.3").is_none(), "agent");
        assert_eq!(st.healthy_members(), 1);
    }

    #[test]
    fn stale_learners_are_ignored() {
        let mut st = ClusterState::default();
        st.join_in_progress.insert(
            "s2".into(),
            JoinMarker {
                host: "s2".into(),
                since_ns: 1_000,
            },
        );
        assert_eq!(st.other_learners("s3", 2_000), vec!["s2".to_string()]);
        assert!(st.other_learners("s2", 2_000).is_empty());
        assert!(st.other_learners("s3", 1_000 + STALE_JOIN_NS).is_empty());
    }

    #[test]
    fn update_saves_only_on_success() {
        let dir = tempfile::tempdir().unwrap();
        let ds = Datastore::new(dir.path());
        assert_eq!(ds.read().unwrap(), None);
        ds.update(|s| {
            *s = Some(ClusterState {
                token: "t".into(),
                ..Default::default()
            });
            Ok(())
        })
        .unwrap();
        let r: Result<(), _> = ds.update(|s| {
            if let Some(s) = s {
                s.token = "changed".into();
            }
            Err(StandinError::failed(1, "no"))
        });
        assert!(r.is_err());
        assert_eq!(ds.read().unwrap().unwrap().token, "t");
    }
}

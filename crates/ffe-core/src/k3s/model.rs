//! What the operator asked for: the desired HA k3s cluster.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ssh::Target;

/// A node of the cluster, as named in Terraform.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub address: String,
    /// This node's SSH port; `None`: the provider's `ssh_port`.
    #[serde(default)]
    pub ssh_port: Option<u16>,
}

impl Node {
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            address: address.into(),
            ssh_port: None,
        }
    }

    pub fn with_ssh_port(mut self, port: Option<u16>) -> Self {
        self.ssh_port = port;
        self
    }

    pub fn target(&self) -> Target {
        let mut t = Target::new(&self.name, &self.address);
        t.port = self.ssh_port;
        t
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Server,
    Agent,
}

impl Role {
    /// The systemd unit the k3s installer creates for this role.
    pub fn unit(self) -> &'static str {
        match self {
            Role::Server => "k3s",
            Role::Agent => "k3s-agent",
        }
    }

    pub fn uninstall_script(self) -> &'static str {
        match self {
            Role::Server => "/usr/local/bin/k3s-uninstall.sh",
            Role::Agent => "/usr/local/bin/k3s-agent-uninstall.sh",
        }
    }
}

/// `kubernetes_version`: a release channel (`v1.33`) or an exact k3s release (`v1.33.5+k3s1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSpec {
    Channel(String),
    Exact(String),
}

impl VersionSpec {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "kubernetes_version {s:?} is neither a channel like \"v1.33\" nor a k3s release like \"v1.33.5+k3s1\""
            )
        };
        let rest = s.strip_prefix('v').ok_or_else(bad)?;
        let (core, suffix) = match rest.split_once('+') {
            Some((c, sfx)) => (c, Some(sfx)),
            None => (rest, None),
        };
        let parts: Vec<&str> = core.split('.').collect();
        if parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(bad());
        }
        match (parts.len(), suffix) {
            (2, None) => Ok(VersionSpec::Channel(s.to_string())),
            (3, Some(sfx)) if sfx.starts_with("k3s") && sfx.len() > 3 => {
                Ok(VersionSpec::Exact(s.to_string()))
            }
            _ => Err(bad()),
        }
    }

    /// Does an installed version (`v1.33.5+k3s1`) satisfy this spec?
    pub fn matches(&self, installed: &str) -> bool {
        match self {
            VersionSpec::Exact(v) => v == installed,
            VersionSpec::Channel(c) => installed
                .strip_prefix(c.as_str())
                .is_some_and(|rest| rest.starts_with('.')),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            VersionSpec::Channel(s) | VersionSpec::Exact(s) => s,
        }
    }

    /// `(major, minor, patch)`; a channel has no patch.
    pub fn numbers(&self) -> (u64, u64, Option<u64>) {
        let core = self
            .as_str()
            .trim_start_matches('v')
            .split('+')
            .next()
            .unwrap_or("");
        let mut parts = core.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
        let major = parts.next().unwrap_or(0);
        let minor = parts.next().unwrap_or(0);
        (major, minor, parts.next())
    }
}

/// Where k3s comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallSource {
    /// The official installer script, downloaded by each node.
    Online { installer_url: String },
    /// Files the operator supplies; uploaded to every node, nothing is downloaded.
    Airgap {
        k3s_binary: PathBuf,
        images: Option<PathBuf>,
        installer: PathBuf,
    },
}

/// The whole desired cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    pub cluster_name: String,
    pub servers: Vec<Node>,
    pub agents: Vec<Node>,
    pub version: VersionSpec,
    pub api_vip: Option<String>,
    pub tls_san: Vec<String>,
    pub cluster_cidr: String,
    pub service_cidr: String,
    pub install: InstallSource,
    pub etcd_snapshot_dir: String,
    pub etcd_snapshot_schedule: String,
    pub etcd_snapshot_retention: u32,
    pub server_taints: Vec<String>,
    pub node_labels: BTreeMap<String, String>,
    pub agent_parallelism: usize,
    /// The k3s CIS hardening settings (protect-kernel-defaults, admission and audit policies,
    /// kubelet and API server flags; docs/security.md).
    pub cis_profile: bool,
}

impl ClusterSpec {
    /// The address nodes register through: the first server. The VIP is served by kube-vip, which
    /// runs inside the cluster and so cannot exist while the cluster is being formed; k3s agents
    /// learn every server's address after the first contact, so this only matters for joining.
    pub fn join_address(&self) -> Option<&str> {
        self.servers.first().map(|n| n.address.as_str())
    }

    /// `https://VIP:6443` when a VIP is set, else the first server.
    pub fn api_endpoint(&self) -> String {
        let host = self
            .api_vip
            .as_deref()
            .or(self.join_address())
            .unwrap_or("127.0.0.1");
        format!("https://{host}:6443")
    }

    pub fn role_of(&self, name: &str) -> Option<Role> {
        if self.servers.iter().any(|n| n.name == name) {
            Some(Role::Server)
        } else if self.agents.iter().any(|n| n.name == name) {
            Some(Role::Agent)
        } else {
            None
        }
    }

    pub fn all_nodes(&self) -> impl Iterator<Item = (&Node, Role)> {
        self.servers
            .iter()
            .map(|n| (n, Role::Server))
            .chain(self.agents.iter().map(|n| (n, Role::Agent)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_match() {
        let ch = VersionSpec::parse("v1.29").unwrap();
        assert_eq!(ch, VersionSpec::Channel("v1.29".into()));
        assert!(ch.matches("v1.29.4+k3s1"));
        assert!(!ch.matches("v1.2.9+k3s1"));
        assert!(!ch.matches("v1.290.1+k3s1"));
        let ex = VersionSpec::parse("v1.33.5+k3s1").unwrap();
        assert!(ex.matches("v1.33.5+k3s1"));
        assert!(!ex.matches("v1.33.5+k3s2"));
        for bad in [
            "1.29",
            "v1",
            "v1.29.1",
            "v1.x",
            "latest",
            "v1.29+k3s1",
            "v1.29.1+rke2",
        ] {
            assert!(VersionSpec::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}

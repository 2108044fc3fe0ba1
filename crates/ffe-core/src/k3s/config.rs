//! Rendering `/etc/rancher/k3s/config.yaml` for each node.
//!
//! Everything k3s is told goes through this file (never CLI flags), so one hash per node tells
//! whether a node runs what Terraform asked for.

use serde_yaml_ng::{Mapping, Value};
use sha2::{Digest, Sha256};

use super::model::{ClusterSpec, Node, Role};
use super::token::JoinSecrets;

pub const CONFIG_PATH: &str = "/etc/rancher/k3s/config.yaml";

fn strs<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Value {
    Value::Sequence(items.into_iter().map(|s| Value::String(s.into())).collect())
}

/// Subject alternative names of the API certificate: the VIP, every server address, extras.
pub fn tls_sans(spec: &ClusterSpec) -> Vec<String> {
    let mut sans: Vec<String> = Vec::new();
    let candidates = spec
        .api_vip
        .iter()
        .cloned()
        .chain(spec.servers.iter().map(|s| s.address.clone()))
        .chain(spec.tls_san.iter().cloned());
    for s in candidates {
        if !sans.contains(&s) {
            sans.push(s);
        }
    }
    sans
}

/// The server's own etcd snapshot directory on the backup share. k3s creates only its default
/// directory; one given with `etcd-snapshot-dir` must exist, or every snapshot fails.
pub fn snapshot_dir(spec: &ClusterSpec, node: &Node) -> String {
    format!(
        "{}/{}",
        spec.etcd_snapshot_dir.trim_end_matches('/'),
        node.name
    )
}

/// The config file for `node` in `role`.
///
/// The bootstrap server defines both secrets; joining servers get the server token and agents
/// the agent token, each in the secure `K10<CA hash>::` form once the CA hash is known, so they
/// verify the cluster CA before trusting the server they join.
pub fn render(spec: &ClusterSpec, node: &Node, role: Role, secrets: &JoinSecrets) -> String {
    let mut m = Mapping::new();
    let mut put = |k: &str, v: Value| {
        m.insert(Value::String(k.into()), v);
    };
    let is_bootstrap = role == Role::Server && spec.servers.first() == Some(node);
    match role {
        Role::Server if is_bootstrap => put("token", secrets.server.clone().into()),
        Role::Server => put("token", secrets.server_join_token().into()),
        Role::Agent => put("token", secrets.agent_join_token().into()),
    }
    if role == Role::Server && secrets.has_agent_token() {
        put("agent-token", secrets.agent.clone().into());
    }
    if is_bootstrap {
        put("cluster-init", true.into());
    } else if let Some(addr) = spec.join_address() {
        put("server", format!("https://{addr}:6443").into());
    }
    put("node-name", node.name.clone().into());
    put("node-ip", node.address.clone().into());
    let labels: Vec<String> = spec
        .node_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !labels.is_empty() {
        put("node-label", strs(labels));
    }
    if role == Role::Server {
        put("tls-san", strs(tls_sans(spec)));
        put("cluster-cidr", spec.cluster_cidr.clone().into());
        put("service-cidr", spec.service_cidr.clone().into());
        // Calico (rendered by the platform bundles) replaces flannel and enforces NetworkPolicy.
        put("flannel-backend", "none".into());
        put("disable-network-policy", true.into());
        // The edge is NGINX Gateway Fabric and Service IPs come from kube-vip.
        put("disable", strs(["traefik", "servicelb"]));
        put("secrets-encryption", true.into());
        put("write-kubeconfig-mode", "0600".into());
        put("etcd-expose-metrics", true.into());
        put(
            "etcd-snapshot-schedule-cron",
            spec.etcd_snapshot_schedule.clone().into(),
        );
        put(
            "etcd-snapshot-retention",
            Value::Number(spec.etcd_snapshot_retention.into()),
        );
        // One directory per server: retention prunes a directory's oldest snapshots, so servers
        // sharing one would prune each other's and keep fewer days than asked.
        put("etcd-snapshot-dir", snapshot_dir(spec, node).into());
        if !spec.server_taints.is_empty() {
            put("node-taint", strs(spec.server_taints.clone()));
        }
    }
    // A mapping of strings, numbers and booleans always serializes.
    serde_yaml_ng::to_string(&Value::Mapping(m)).unwrap_or_default()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k3s::model::{InstallSource, VersionSpec};
    use std::collections::BTreeMap;

    pub(crate) fn spec() -> ClusterSpec {
        ClusterSpec {
            cluster_name: "ffe-prod".into(),
            servers: (0..3)
                .map(|i| Node::new(format!("m{i}"), format!("10.210.1.{}", 10 + i)))
                .collect(),
            agents: (0..3)
                .map(|i| Node::new(format!("w{i}"), format!("10.210.1.{}", 20 + i)))
                .collect(),
            version: VersionSpec::parse("v1.33").unwrap(),
            api_vip: Some("10.210.1.5".into()),
            tls_san: vec!["api.example.com".into(), "10.210.1.10".into()],
            cluster_cidr: "10.42.0.0/16".into(),
            service_cidr: "10.43.0.0/16".into(),
            install: InstallSource::Online {
                installer_url: "https://get.k3s.io".into(),
            },
            etcd_snapshot_dir: "/mnt/backups/etcd-snapshots".into(),
            etcd_snapshot_schedule: "0 */6 * * *".into(),
            etcd_snapshot_retention: 120,
            server_taints: vec!["CriticalAddonsOnly=true:NoExecute".into()],
            node_labels: BTreeMap::from([("ffe.io/cluster".into(), "ffe-prod".into())]),
            agent_parallelism: 5,
        }
    }

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    pub(crate) fn secrets(server: &str) -> JoinSecrets {
        JoinSecrets {
            server: server.into(),
            agent: "agentsecret".into(),
            ca_hash: Some(HASH.into()),
        }
    }

    fn parse(s: &str) -> serde_yaml_ng::Value {
        serde_yaml_ng::from_str(s).unwrap()
    }

    #[test]
    fn bootstrap_server_inits_the_cluster() {
        let s = spec();
        let y = parse(&render(&s, &s.servers[0], Role::Server, &secrets("sekret")));
        assert_eq!(y["cluster-init"], Value::Bool(true));
        assert!(y.get("server").is_none());
        // The bootstrap server defines the secrets themselves.
        assert_eq!(y["token"], Value::from("sekret"));
        assert_eq!(y["agent-token"], Value::from("agentsecret"));
        assert_eq!(y["flannel-backend"], Value::from("none"));
        assert_eq!(y["disable-network-policy"], Value::Bool(true));
        assert_eq!(y["disable"], strs(["traefik", "servicelb"]));
        assert_eq!(y["secrets-encryption"], Value::Bool(true));
        // Each server its own directory, so retention never prunes another server's snapshots.
        assert_eq!(
            y["etcd-snapshot-dir"],
            Value::from("/mnt/backups/etcd-snapshots/m0")
        );
        assert_eq!(y["etcd-snapshot-retention"], Value::from(120));
        assert_eq!(y["node-taint"], strs(["CriticalAddonsOnly=true:NoExecute"]));
        assert_eq!(y["node-label"], strs(["ffe.io/cluster=ffe-prod"]));
    }

    #[test]
    fn a_cluster_without_an_agent_token_gets_none_added() {
        let s = spec();
        let mut legacy = JoinSecrets::from_state(&format!("K10{HASH}::server:srv"), None);
        legacy.fill_missing();
        let first = parse(&render(&s, &s.servers[0], Role::Server, &legacy));
        assert!(first.get("agent-token").is_none());
        let agent = parse(&render(&s, &s.agents[0], Role::Agent, &legacy));
        assert_eq!(agent["token"], Value::from(format!("K10{HASH}::node:srv")));
    }

    #[test]
    fn tls_san_holds_vip_and_every_server_once() {
        let s = spec();
        let y = parse(&render(&s, &s.servers[1], Role::Server, &secrets("t")));
        assert_eq!(
            y["tls-san"],
            strs([
                "10.210.1.5",
                "10.210.1.10",
                "10.210.1.11",
                "10.210.1.12",
                "api.example.com"
            ])
        );
    }

    #[test]
    fn joining_servers_and_agents_point_at_the_first_server() {
        let s = spec();
        let joiner = parse(&render(&s, &s.servers[2], Role::Server, &secrets("t")));
        assert_eq!(joiner["server"], Value::from("https://10.210.1.10:6443"));
        assert!(joiner.get("cluster-init").is_none());
        let agent = parse(&render(&s, &s.agents[0], Role::Agent, &secrets("t")));
        assert_eq!(agent["server"], Value::from("https://10.210.1.10:6443"));
        // Joiners pin the cluster CA; agents never see the server secret.
        assert_eq!(joiner["token"], Value::from(format!("K10{HASH}::server:t")));
        assert_eq!(
            agent["token"],
            Value::from(format!("K10{HASH}::node:agentsecret"))
        );
        assert_eq!(agent["node-ip"], Value::from("10.210.1.20"));
        // Server-only settings never reach agents (k3s agents reject unknown server flags).
        for key in [
            "tls-san",
            "cluster-init",
            "disable",
            "node-taint",
            "etcd-snapshot-dir",
            "agent-token",
        ] {
            assert!(
                agent.get(key).is_none(),
                "{key} leaked into an agent config"
            );
        }
    }

    #[test]
    fn rendering_is_deterministic_and_hash_tracks_content() {
        let s = spec();
        let a = render(&s, &s.agents[1], Role::Agent, &secrets("t"));
        assert_eq!(a, render(&s, &s.agents[1], Role::Agent, &secrets("t")));
        // An agent's config follows the agent token, not the server secret it never sees.
        assert_eq!(a, render(&s, &s.agents[1], Role::Agent, &secrets("u")));
        let mut other_agent = secrets("t");
        other_agent.agent = "changed".into();
        assert_ne!(
            sha256_hex(a.as_bytes()),
            sha256_hex(render(&s, &s.agents[1], Role::Agent, &other_agent).as_bytes())
        );
        let srv = render(&s, &s.servers[1], Role::Server, &secrets("t"));
        assert_ne!(srv, render(&s, &s.servers[1], Role::Server, &secrets("u")));
    }
}

//! The cluster's state as Terraform records it: what each node should run (planned) and what
//! it runs (observed), in the same shape so that drift is a plain diff.

use std::collections::BTreeMap;

use super::config::{drift_sha256, render, Join};
use super::model::ClusterSpec;
use super::planner::LiveCluster;
use super::token::JoinSecrets;

/// Value recorded for a node that does not run k3s (or is not a member).
pub const ABSENT: &str = "absent";

/// The drift hash ([`drift_sha256`]) of each node's rendered config, by node name. How a node
/// joins is not part of it, so any [`Join`] gives the same hash.
pub fn wanted_config_sha256(spec: &ClusterSpec, secrets: &JoinSecrets) -> BTreeMap<String, String> {
    spec.all_nodes()
        .map(|(n, role)| {
            (
                n.name.clone(),
                drift_sha256(&render(spec, n, role, secrets, &Join::Init)),
            )
        })
        .collect()
}

/// Every node name of the spec, sorted: the members a converged cluster has.
pub fn member_names(spec: &ClusterSpec) -> Vec<String> {
    let mut names: Vec<String> = spec.all_nodes().map(|(n, _)| n.name.clone()).collect();
    names.sort();
    names
}

/// What the nodes of `spec` run, as read over SSH.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub config_sha256: BTreeMap<String, String>,
    pub versions: BTreeMap<String, String>,
    /// Registered members that belong to the spec, sorted.
    pub members: Vec<String>,
    /// Members of the spec an interrupted roll-out left cordoned, sorted.
    pub left_cordoned: Vec<String>,
}

pub fn observe(spec: &ClusterSpec, live: &LiveCluster) -> Observed {
    let mut o = Observed::default();
    for (n, _) in spec.all_nodes() {
        let l = live.nodes.get(&n.name).cloned().unwrap_or_default();
        let member = l.active && live.members.contains(&n.name);
        let or_absent = |v: Option<String>| v.filter(|_| member).unwrap_or_else(|| ABSENT.into());
        let mut config = or_absent(l.config_sha256);
        // The join line is not part of the hash (how a node joined is not drift), but one naming
        // an address that is no server of the spec is: the apply points it at a live server.
        if let Some(addr) = l
            .join_address
            .as_ref()
            .filter(|a| member && !spec.servers.iter().any(|s| &s.address == *a))
        {
            config.push_str(&format!(" (joins through {addr}, which is no server)"));
        }
        o.config_sha256.insert(n.name.clone(), config);
        o.versions.insert(n.name.clone(), or_absent(l.version));
    }
    // Sets iterate sorted.
    let of_spec = |names: &std::collections::BTreeSet<String>| -> Vec<String> {
        names
            .iter()
            .filter(|m| spec.role_of(m).is_some())
            .cloned()
            .collect()
    };
    o.members = of_spec(&live.members);
    o.left_cordoned = of_spec(&live.left_cordoned);
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k3s::planner::LiveNode;
    use crate::k3s::{InstallSource, Node, VersionSpec};

    fn spec() -> ClusterSpec {
        ClusterSpec {
            cluster_name: "c".into(),
            servers: vec![Node::new("m0", "10.210.1.10")],
            agents: vec![Node::new("w0", "10.210.1.20")],
            version: VersionSpec::parse("v1.33").unwrap(),
            api_vip: None,
            tls_san: vec![],
            cluster_cidr: "10.42.0.0/16".into(),
            service_cidr: "10.43.0.0/16".into(),
            install: InstallSource::Online {
                installer_url: "https://get.k3s.io".into(),
            },
            etcd_snapshot_dir: "/mnt/backups/etcd".into(),
            etcd_snapshot_schedule: "0 */6 * * *".into(),
            etcd_snapshot_retention: 10,
            server_taints: vec![],
            node_labels: Default::default(),
            agent_parallelism: 2,
            cis_profile: true,
        }
    }

    #[test]
    fn non_members_and_inactive_nodes_read_as_absent() {
        let s = spec();
        let mut live = LiveCluster::default();
        live.nodes.insert(
            "m0".into(),
            LiveNode {
                version: Some("v1.33.5+k3s1".into()),
                config_sha256: Some("abc".into()),
                active: true,
                ..LiveNode::default()
            },
        );
        live.nodes.insert(
            "w0".into(),
            LiveNode {
                version: Some("v1.33.5+k3s1".into()),
                config_sha256: Some("def".into()),
                active: false,
                ..LiveNode::default()
            },
        );
        live.members.insert("m0".into());
        live.members.insert("w0".into());
        live.members.insert("stranger".into());
        let o = observe(&s, &live);
        assert_eq!(o.config_sha256["m0"], "abc");
        assert_eq!(o.config_sha256["w0"], ABSENT);
        assert_eq!(o.versions["w0"], ABSENT);
        assert_eq!(o.members, vec!["m0".to_string(), "w0".to_string()]);
    }

    #[test]
    fn secrets_are_fresh_distinct_256_bit_hex() {
        let a = JoinSecrets::generate();
        assert_eq!(a.server.len(), 64);
        assert!(a.server.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a.server, a.agent);
        assert_ne!(a.server, JoinSecrets::generate().server);
    }

    #[test]
    fn wanted_hashes_cover_every_node() {
        let s = spec();
        let w = wanted_config_sha256(&s, &JoinSecrets::from_state("t", Some("a")));
        assert_eq!(w.keys().cloned().collect::<Vec<_>>(), member_names(&s));
    }

    #[test]
    fn a_join_line_naming_no_server_shows_on_that_node_only() {
        let spec = spec();
        let mut live = LiveCluster::default();
        for (n, _) in spec.all_nodes() {
            live.members.insert(n.name.clone());
            live.nodes.insert(
                n.name.clone(),
                LiveNode {
                    version: Some("v1.33.5+k3s1".into()),
                    config_sha256: Some("abc".into()),
                    active: true,
                    join_address: Some(spec.servers[0].address.clone()),
                    ..Default::default()
                },
            );
        }
        let agent = spec.agents[0].name.clone();
        if let Some(l) = live.nodes.get_mut(&agent) {
            l.join_address = Some("10.9.9.9".into());
        }
        let o = observe(&spec, &live);
        for (name, sha) in &o.config_sha256 {
            if *name == agent {
                assert_eq!(sha, "abc (joins through 10.9.9.9, which is no server)");
            } else {
                assert_eq!(sha, "abc", "{name}");
            }
        }
    }
}

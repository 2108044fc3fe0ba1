//! The step planner: which node does what, in which order, and what is refused outright.
//!
//! Rules (each is a test below):
//! - create: the first server initialises etcd; the other servers join strictly one at a time
//!   (etcd admits one learner at a time); agents join in parallel, bounded by `agent_parallelism`.
//! - nodes that already run the wanted version and config are left alone (a re-apply restarts
//!   nothing, and an interrupted apply converges on retry);
//! - server changes that could cost etcd quorum are refused before anything runs.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{ClusterSpec, Node, Role, VersionSpec};

/// What one node currently runs, as read over SSH.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveNode {
    /// `k3s --version`, `None` when k3s is not installed.
    pub version: Option<String>,
    /// sha256 of `/etc/rancher/k3s/config.yaml`, `None` when absent.
    pub config_sha256: Option<String>,
    /// The node's k3s unit is active.
    pub active: bool,
}

/// The live cluster: per-node facts plus the Node objects the API server knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveCluster {
    pub nodes: BTreeMap<String, LiveNode>,
    /// Names of the Node objects the API server knows (registered). Not "Ready": with
    /// `flannel-backend: none` nodes stay NotReady until the CNI bundle runs, after the cluster.
    pub members: BTreeSet<String>,
    /// Why `members` could not be read although some server runs k3s (no server answered the
    /// node list). Then `members` is empty because it is unknown, not because nobody is a member.
    pub members_unknown: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write config, install k3s as a server, wait until it is Ready.
    InstallServer(Node),
    /// Write config, install k3s as an agent, wait until it is Ready.
    InstallAgent(Node),
    /// Installed at the wrong version: re-run the installer at the wanted one, wait Ready.
    Upgrade(Node, Role),
    /// Config drifted: rewrite it, restart the unit, wait Ready.
    Reconfigure(Node, Role),
    /// Cordon + drain, delete the Node object, uninstall k3s.
    Remove(Node, Role),
    /// Read the admin kubeconfig from the first server and write it locally.
    FetchKubeconfig,
}

impl Action {
    pub fn node(&self) -> Option<&Node> {
        match self {
            Action::InstallServer(n)
            | Action::InstallAgent(n)
            | Action::Upgrade(n, _)
            | Action::Reconfigure(n, _)
            | Action::Remove(n, _) => Some(n),
            Action::FetchKubeconfig => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    Serial(Action),
    Parallel { actions: Vec<Action>, limit: usize },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("servers: at least one server is required")]
    NoServers,
    #[error("servers: {count} servers is an even number; etcd needs an odd count (1, 3, 5, ...) to tolerate failures. Set master_count to an odd number")]
    EvenServers { count: usize },
    #[error("servers: removing {count} servers ({names}) would leave fewer than a majority of the current etcd members, losing quorum. Remove fewer servers per apply and check the cluster between applies")]
    TooManyServerRemovals { count: usize, names: String },
    #[error("servers: removing {name}, the first server, is not supported: every node registers through its address. Keep it first in master_ips")]
    BootstrapServerRemoved { name: String },
    #[error("{role}: node {name} changed address from {old} to {new}; a node cannot move. Remove it in one apply and add the new one under a new name in the next")]
    AddressChanged {
        role: &'static str,
        name: String,
        old: String,
        new: String,
    },
    #[error("node {name} is listed both as a server and as an agent")]
    DuplicateNode { name: String },
    #[error(
        "node name {name:?} must be a DNS-1123 label (lowercase letters, digits, '-', at most 63)"
    )]
    BadName { name: String },
    #[error("node {name}: address {address:?} must be an IPv4 address or a host name")]
    BadAddress { name: String, address: String },
    #[error("servers: {new} would become the first server instead of {old}; the first server initialised etcd and every node registers through it. Keep {old} first in master_ips")]
    BootstrapServerMoved { old: String, new: String },
    #[error("node {name} cannot move between servers and agents; remove it in one apply and add it back under a new name in the next")]
    RoleChanged { name: String },
    #[error("node_labels: the kubelet refuses to start with label {key:?}: keys under kubernetes.io or k8s.io are reserved, except the ones a kubelet may set on itself ({allowed}, and any key under kubelet.kubernetes.io/ or node.kubernetes.io/). Use your own prefix, e.g. \"example.com/role\"; set reserved labels such as node-role.kubernetes.io/* with kubectl after the node joined")]
    RestrictedNodeLabel { key: String, allowed: String },
    #[error("kubernetes_version: {from} -> {to} is a downgrade. Kubernetes and etcd do not support going back; restore from an etcd snapshot instead (docs/deploy.md), or keep {from}")]
    Downgrade { from: String, to: String },
    #[error("kubernetes_version: {from} -> {to} skips a minor version. Kubernetes upgrades one minor at a time: apply v{major}.{next} first, then {to}")]
    MinorSkipped {
        from: String,
        to: String,
        major: u64,
        next: u64,
    },
    #[error("cluster membership is unknown: k3s runs on {active} but no server answered the node list ({reason}). Refusing to change the cluster: an unknown membership is not an empty one, and planning from it would reinstall every node. Check the API servers (`systemctl status k3s`, `journalctl -u k3s` on the servers), then apply again")]
    MembershipUnknown { active: String, reason: String },
    #[error("servers: {name}, the first server, no longer runs k3s while {live} still hold the cluster. Installing it again as the first server would start a second, empty etcd cluster. Recover it as described in docs/deploy.md (\"The first server lost its data\")")]
    BootstrapLost { name: String, live: String },
}

fn names(nodes: &[&Node]) -> String {
    nodes
        .iter()
        .map(|n| n.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Labels under kubernetes.io / k8s.io that a kubelet may set on its own Node
/// (k8s.io/kubelet/pkg/apis/well_known_labels.go: kubeletLabels); any other key in those domains
/// makes the kubelet exit at start (`--node-labels`), except under the kubelet.kubernetes.io and
/// node.kubernetes.io namespaces (kubeletLabelNamespaces).
const KUBELET_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
];

/// Whether a kubelet accepts `key` in `--node-labels` (issue 11 A.9).
pub fn kubelet_may_set(key: &str) -> bool {
    let Some((domain, _)) = key.split_once('/') else {
        return true; // no prefix: not a Kubernetes domain
    };
    let in_domain = |d: &str, root: &str| d == root || d.ends_with(&format!(".{root}"));
    if !in_domain(domain, "kubernetes.io") && !in_domain(domain, "k8s.io") {
        return true;
    }
    KUBELET_LABELS.contains(&key)
        || in_domain(domain, "kubelet.kubernetes.io")
        || in_domain(domain, "node.kubernetes.io")
}

/// Checks that hold for any desired cluster.
pub fn check_spec(spec: &ClusterSpec) -> Result<(), PlanError> {
    if spec.servers.is_empty() {
        return Err(PlanError::NoServers);
    }
    if spec.servers.len().is_multiple_of(2) {
        return Err(PlanError::EvenServers {
            count: spec.servers.len(),
        });
    }
    for key in spec.node_labels.keys() {
        if !kubelet_may_set(key) {
            return Err(PlanError::RestrictedNodeLabel {
                key: key.clone(),
                allowed: KUBELET_LABELS.join(", "),
            });
        }
    }
    let mut seen = BTreeSet::new();
    for (n, _) in spec.all_nodes() {
        if !seen.insert(n.name.as_str()) {
            return Err(PlanError::DuplicateNode {
                name: n.name.clone(),
            });
        }
        if !is_dns_label(&n.name) {
            return Err(PlanError::BadName {
                name: n.name.clone(),
            });
        }
        if !is_host_address(&n.address) {
            return Err(PlanError::BadAddress {
                name: n.name.clone(),
                address: n.address.clone(),
            });
        }
    }
    Ok(())
}

/// A Kubernetes node name: DNS-1123 label.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// An IPv4 address or a DNS host name (never something ssh could read as an option).
pub fn is_host_address(s: &str) -> bool {
    s.parse::<std::net::Ipv4Addr>().is_ok()
        || (!s.is_empty()
            && s.len() <= 253
            && s.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !l.starts_with('-')
            }))
}

/// Quorum rules for changing the server set from `prior` to `desired`.
pub fn check_change(prior: &ClusterSpec, desired: &ClusterSpec) -> Result<(), PlanError> {
    check_spec(desired)?;
    check_version_step(&prior.version, &desired.version)?;
    for (role, old_list, new_list) in [
        ("servers", &prior.servers, &desired.servers),
        ("agents", &prior.agents, &desired.agents),
    ] {
        for n in new_list {
            if let Some(old) = old_list.iter().find(|o| o.name == n.name) {
                if old.address != n.address {
                    return Err(PlanError::AddressChanged {
                        role,
                        name: n.name.clone(),
                        old: old.address.clone(),
                        new: n.address.clone(),
                    });
                }
            }
        }
    }
    for n in &desired.servers {
        if prior.agents.iter().any(|a| a.name == n.name) {
            return Err(PlanError::RoleChanged {
                name: n.name.clone(),
            });
        }
    }
    for n in &desired.agents {
        if prior.servers.iter().any(|a| a.name == n.name) {
            return Err(PlanError::RoleChanged {
                name: n.name.clone(),
            });
        }
    }
    let removed: Vec<&Node> = prior
        .servers
        .iter()
        .filter(|p| !desired.servers.iter().any(|d| d.name == p.name))
        .collect();
    // Removals run one at a time; the servers that stay must still be a majority of the
    // membership we start from, so etcd keeps quorum even if a removal goes wrong.
    let remaining = prior.servers.len() - removed.len();
    if !removed.is_empty() && remaining < prior.servers.len() / 2 + 1 {
        return Err(PlanError::TooManyServerRemovals {
            count: removed.len(),
            names: names(&removed),
        });
    }
    if let Some(first) = prior.servers.first() {
        if removed.iter().any(|r| r.name == first.name) {
            return Err(PlanError::BootstrapServerRemoved {
                name: first.name.clone(),
            });
        }
        if let Some(new_first) = desired.servers.first() {
            if new_first.name != first.name {
                return Err(PlanError::BootstrapServerMoved {
                    old: first.name.clone(),
                    new: new_first.name.clone(),
                });
            }
        }
    }
    Ok(())
}

/// A version change is an upgrade of at most one minor (issue 11 A.8): never a downgrade, never a
/// skipped minor. Within one minor, exact releases may only move forward.
fn check_version_step(from: &VersionSpec, to: &VersionSpec) -> Result<(), PlanError> {
    let (fmaj, fmin, fpatch) = from.numbers();
    let (tmaj, tmin, tpatch) = to.numbers();
    let err_down = || PlanError::Downgrade {
        from: from.as_str().into(),
        to: to.as_str().into(),
    };
    if (tmaj, tmin) < (fmaj, fmin) {
        return Err(err_down());
    }
    if tmaj != fmaj || tmin > fmin + 1 {
        return Err(PlanError::MinorSkipped {
            from: from.as_str().into(),
            to: to.as_str().into(),
            major: fmaj,
            next: fmin + 1,
        });
    }
    if let (Some(f), Some(t)) = (fpatch, tpatch) {
        if (tmaj, tmin) == (fmaj, fmin) && t < f {
            return Err(err_down());
        }
    }
    Ok(())
}

/// What must happen to bring `node` to the desired state, if anything.
fn converge(
    spec: &ClusterSpec,
    live: &LiveCluster,
    node: &Node,
    role: Role,
    wanted_sha: &BTreeMap<String, String>,
) -> Option<Action> {
    let l = live.nodes.get(&node.name).cloned().unwrap_or_default();
    let installed = match &l.version {
        Some(v) if l.active && live.members.contains(&node.name) => v,
        _ => {
            return Some(match role {
                Role::Server => Action::InstallServer(node.clone()),
                Role::Agent => Action::InstallAgent(node.clone()),
            })
        }
    };
    if !spec.version.matches(installed) {
        return Some(Action::Upgrade(node.clone(), role));
    }
    if l.config_sha256.as_ref() != wanted_sha.get(&node.name) {
        return Some(Action::Reconfigure(node.clone(), role));
    }
    None
}

/// The ordered stages that take the live cluster to `desired`. With `prior = None` this is a
/// create; otherwise `prior` is the cluster Terraform last applied. `wanted_sha` maps each node
/// to the sha256 of the config it should have.
pub fn plan(
    prior: Option<&ClusterSpec>,
    desired: &ClusterSpec,
    live: &LiveCluster,
    wanted_sha: &BTreeMap<String, String>,
) -> Result<Vec<Stage>, PlanError> {
    match prior {
        Some(p) => check_change(p, desired)?,
        None => check_spec(desired)?,
    }
    if let Some(reason) = &live.members_unknown {
        let active: Vec<&Node> = desired
            .all_nodes()
            .map(|(n, _)| n)
            .filter(|n| live.nodes.get(&n.name).is_some_and(|l| l.active))
            .collect();
        if !active.is_empty() {
            return Err(PlanError::MembershipUnknown {
                active: names(&active),
                reason: reason.clone(),
            });
        }
    }
    // The first server is only ever the bootstrap server. If it lost k3s while others still hold
    // the cluster, reinstalling it with cluster-init would split the cluster: refuse.
    if let Some(first) = desired.servers.first() {
        let lost = matches!(
            converge(desired, live, first, Role::Server, wanted_sha),
            Some(Action::InstallServer(_))
        );
        let live_servers: Vec<&Node> = desired.servers[1..]
            .iter()
            .filter(|s| live.members.contains(&s.name))
            .collect();
        if lost && !live_servers.is_empty() {
            return Err(PlanError::BootstrapLost {
                name: first.name.clone(),
                live: names(&live_servers),
            });
        }
    }
    let mut stages = Vec::new();
    // Servers strictly one at a time, in order: the first initialises etcd.
    for s in &desired.servers {
        if let Some(a) = converge(desired, live, s, Role::Server, wanted_sha) {
            stages.push(Stage::Serial(a));
        }
    }
    let kubeconfig_needed = prior.is_none()
        || stages
            .iter()
            .any(|st| matches!(st, Stage::Serial(Action::InstallServer(n)) if Some(n) == desired.servers.first()));
    if kubeconfig_needed {
        stages.push(Stage::Serial(Action::FetchKubeconfig));
    }
    let limit = desired.agent_parallelism.max(1);
    let mut joins = Vec::new();
    let mut upgrades = Vec::new();
    for a in &desired.agents {
        match converge(desired, live, a, Role::Agent, wanted_sha) {
            Some(act @ Action::Upgrade(..)) => upgrades.push(act),
            Some(act) => joins.push(act),
            None => {}
        }
    }
    if !joins.is_empty() {
        stages.push(Stage::Parallel {
            actions: joins,
            limit,
        });
    }
    if !upgrades.is_empty() {
        // Upgrades drain nodes: keep at least two thirds of the agents serving. One stage per
        // batch: a batch with a failure stops the roll-out before the next batch starts.
        let batch = (desired.agents.len() / 3).clamp(1, limit);
        for chunk in upgrades.chunks(batch) {
            stages.push(Stage::Parallel {
                actions: chunk.to_vec(),
                limit: batch,
            });
        }
    }
    if let Some(p) = prior {
        // Removals last, one at a time, so capacity is added before it is taken away.
        for (old, role) in p.all_nodes() {
            if desired.role_of(&old.name).is_none() {
                stages.push(Stage::Serial(Action::Remove(old.clone(), role)));
            }
        }
    }
    Ok(stages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k3s::model::InstallSource;

    fn spec(servers: usize, agents: usize) -> ClusterSpec {
        ClusterSpec {
            cluster_name: "c".into(),
            servers: (0..servers)
                .map(|i| Node::new(format!("m{i}"), format!("10.210.1.{}", 10 + i)))
                .collect(),
            agents: (0..agents)
                .map(|i| Node::new(format!("w{i}"), format!("10.210.1.{}", 100 + i)))
                .collect(),
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
        }
    }

    fn shas(spec: &ClusterSpec) -> BTreeMap<String, String> {
        spec.all_nodes()
            .map(|(n, _)| (n.name.clone(), format!("sha-{}", n.name)))
            .collect()
    }

    /// A live cluster in which every node of `spec` runs exactly what it should.
    fn converged(spec: &ClusterSpec) -> LiveCluster {
        let mut live = LiveCluster::default();
        for (n, _) in spec.all_nodes() {
            live.nodes.insert(
                n.name.clone(),
                LiveNode {
                    version: Some("v1.33.5+k3s1".into()),
                    config_sha256: Some(format!("sha-{}", n.name)),
                    active: true,
                },
            );
            live.members.insert(n.name.clone());
        }
        live
    }

    #[test]
    fn create_orders_servers_serially_then_agents_in_bounded_parallel() {
        let s = spec(3, 3);
        let stages = plan(None, &s, &LiveCluster::default(), &shas(&s)).unwrap();
        assert_eq!(
            stages,
            vec![
                Stage::Serial(Action::InstallServer(s.servers[0].clone())),
                Stage::Serial(Action::InstallServer(s.servers[1].clone())),
                Stage::Serial(Action::InstallServer(s.servers[2].clone())),
                Stage::Serial(Action::FetchKubeconfig),
                Stage::Parallel {
                    actions: s.agents.iter().cloned().map(Action::InstallAgent).collect(),
                    limit: 2
                },
            ]
        );
    }

    #[test]
    fn agent_upgrades_run_in_separate_batches_so_a_failure_stops_the_roll_out() {
        let old = spec(3, 6);
        let mut new = old.clone();
        new.version = VersionSpec::parse("v1.34").unwrap();
        let stages = plan(Some(&old), &new, &converged(&old), &shas(&new)).unwrap();
        let agent_batches: Vec<Vec<String>> = stages
            .iter()
            .filter_map(|st| match st {
                Stage::Parallel { actions, .. } => Some(
                    actions
                        .iter()
                        .map(|a| match a {
                            Action::Upgrade(n, Role::Agent) => n.name.clone(),
                            other => panic!("unexpected {other:?}"),
                        })
                        .collect(),
                ),
                _ => None,
            })
            .collect();
        // 6 agents, a third at a time: three stages of two, never one stage of six.
        assert_eq!(
            agent_batches,
            vec![vec!["w0", "w1"], vec!["w2", "w3"], vec!["w4", "w5"]]
        );
    }

    #[test]
    fn converged_cluster_plans_nothing() {
        let s = spec(3, 3);
        assert_eq!(
            plan(Some(&s), &s, &converged(&s), &shas(&s)).unwrap(),
            vec![]
        );
    }

    #[test]
    fn interrupted_create_resumes_where_it_stopped() {
        let s = spec(3, 2);
        let mut live = converged(&s);
        // Server 3 and agent 2 never made it.
        live.nodes.remove("m2");
        live.members.remove("m2");
        live.nodes.remove("w1");
        live.members.remove("w1");
        let stages = plan(None, &s, &live, &shas(&s)).unwrap();
        assert_eq!(
            stages,
            vec![
                Stage::Serial(Action::InstallServer(s.servers[2].clone())),
                Stage::Serial(Action::FetchKubeconfig),
                Stage::Parallel {
                    actions: vec![Action::InstallAgent(s.agents[1].clone())],
                    limit: 2
                },
            ]
        );
    }

    #[test]
    fn adding_agents_touches_only_the_new_ones() {
        let prior = spec(3, 3);
        let desired = spec(3, 5);
        let stages = plan(Some(&prior), &desired, &converged(&prior), &shas(&desired)).unwrap();
        assert_eq!(
            stages,
            vec![Stage::Parallel {
                actions: vec![
                    Action::InstallAgent(desired.agents[3].clone()),
                    Action::InstallAgent(desired.agents[4].clone())
                ],
                limit: 2
            }]
        );
    }

    #[test]
    fn removing_an_agent_removes_only_it() {
        let prior = spec(3, 5);
        let desired = spec(3, 4);
        let stages = plan(Some(&prior), &desired, &converged(&prior), &shas(&desired)).unwrap();
        assert_eq!(
            stages,
            vec![Stage::Serial(Action::Remove(
                prior.agents[4].clone(),
                Role::Agent
            ))]
        );
    }

    #[test]
    fn drift_is_repaired_per_node() {
        let s = spec(3, 2);
        let mut live = converged(&s);
        live.nodes.get_mut("m1").unwrap().config_sha256 = Some("edited-by-hand".into());
        live.nodes.get_mut("w0").unwrap().version = Some("v1.32.9+k3s1".into());
        let stages = plan(Some(&s), &s, &live, &shas(&s)).unwrap();
        assert_eq!(
            stages,
            vec![
                Stage::Serial(Action::Reconfigure(s.servers[1].clone(), Role::Server)),
                Stage::Parallel {
                    actions: vec![Action::Upgrade(s.agents[0].clone(), Role::Agent)],
                    limit: 1
                },
            ]
        );
    }

    #[test]
    fn quorum_rules_refuse_dangerous_server_changes() {
        let three = spec(3, 2);
        let five = spec(5, 2);
        // 5 -> 3 keeps a majority of the 5 members: allowed, removed one at a time.
        assert!(check_change(&five, &three).is_ok());
        let stages = plan(Some(&five), &three, &converged(&five), &shas(&three)).unwrap();
        assert_eq!(
            stages,
            vec![
                Stage::Serial(Action::Remove(five.servers[3].clone(), Role::Server)),
                Stage::Serial(Action::Remove(five.servers[4].clone(), Role::Server)),
            ]
        );
        // 5 -> 1 would leave 1 of 5: refused.
        let mut one_of_five = spec(1, 2);
        one_of_five.servers[0] = five.servers[0].clone();
        assert!(matches!(
            check_change(&five, &one_of_five),
            Err(PlanError::TooManyServerRemovals { count: 4, .. })
        ));
        assert!(matches!(
            check_spec(&spec(2, 2)),
            Err(PlanError::EvenServers { count: 2 })
        ));
        assert!(matches!(check_spec(&spec(0, 2)), Err(PlanError::NoServers)));
        let mut one = spec(1, 2);
        one.servers[0] = three.servers[0].clone();
        assert!(matches!(
            check_change(&three, &one),
            Err(PlanError::TooManyServerRemovals { .. })
        ));
        let mut without_first = five.clone();
        without_first.servers.remove(0);
        without_first.servers.push(Node::new("m9", "10.210.1.99"));
        assert!(matches!(
            check_change(&five, &without_first),
            Err(PlanError::BootstrapServerRemoved { .. })
        ));
        let mut reordered = three.clone();
        reordered.servers.swap(0, 1);
        assert!(matches!(
            check_change(&three, &reordered),
            Err(PlanError::BootstrapServerMoved { .. })
        ));
        let mut promoted = three.clone();
        let agent = promoted.agents.remove(0);
        promoted.servers.push(agent);
        promoted.servers.push(Node::new("m8", "10.210.1.98"));
        assert!(matches!(
            check_change(&three, &promoted),
            Err(PlanError::RoleChanged { .. })
        ));
        let mut moved = three.clone();
        moved.agents[0].address = "10.210.1.200".into();
        assert!(matches!(
            check_change(&three, &moved),
            Err(PlanError::AddressChanged { .. })
        ));
        // Growing 3 -> 5 is fine and joins one at a time.
        assert!(check_change(&three, &five).is_ok());
        let stages = plan(Some(&three), &five, &converged(&three), &shas(&five)).unwrap();
        assert_eq!(
            stages,
            vec![
                Stage::Serial(Action::InstallServer(five.servers[3].clone())),
                Stage::Serial(Action::InstallServer(five.servers[4].clone())),
            ]
        );
    }

    #[test]
    fn a_refused_change_plans_nothing() {
        let three = spec(3, 2);
        let mut one = spec(1, 2);
        one.servers[0] = three.servers[0].clone();
        assert!(plan(Some(&three), &one, &converged(&three), &shas(&one)).is_err());
    }

    #[test]
    fn a_lost_first_server_is_never_reinstalled_as_bootstrap() {
        let s = spec(3, 2);
        let mut live = converged(&s);
        live.nodes.remove("m0");
        live.members.remove("m0");
        assert!(matches!(
            plan(Some(&s), &s, &live, &shas(&s)),
            Err(PlanError::BootstrapLost { .. })
        ));
        // With no server left at all it is a fresh bootstrap again.
        let empty = LiveCluster::default();
        assert!(plan(None, &s, &empty, &shas(&s)).is_ok());
    }

    // Issue 11 A.9: reserved node-label keys made the kubelet refuse to start.
    #[test]
    fn reserved_node_labels_are_refused() {
        for ok in [
            "example.com/tier",
            "tier",
            "topology.kubernetes.io/zone",
            "node.kubernetes.io/pool",
            "team.node.kubernetes.io/x",
            "kubelet.kubernetes.io/y",
        ] {
            assert!(kubelet_may_set(ok), "{ok}");
        }
        for bad in [
            "node-role.kubernetes.io/worker",
            "kubernetes.io/role",
            "example.k8s.io/x",
            "k8s.io/x",
        ] {
            assert!(!kubelet_may_set(bad), "{bad}");
        }
        let mut s = spec(3, 2);
        s.node_labels
            .insert("node-role.kubernetes.io/worker".into(), "true".into());
        assert!(matches!(
            check_spec(&s),
            Err(PlanError::RestrictedNodeLabel { .. })
        ));
    }

    // Issue 11 A.8: version skips and downgrades were rolled out as upgrades.
    #[test]
    fn version_changes_move_one_minor_forward_at_most() {
        let v = |s: &str| VersionSpec::parse(s).unwrap();
        assert!(check_version_step(&v("v1.35"), &v("v1.36")).is_ok());
        assert!(check_version_step(&v("v1.35"), &v("v1.35.4+k3s1")).is_ok());
        assert!(check_version_step(&v("v1.35.2+k3s1"), &v("v1.35.4+k3s1")).is_ok());
        assert!(check_version_step(&v("v1.35.4+k3s1"), &v("v1.36")).is_ok());
        assert!(matches!(
            check_version_step(&v("v1.35"), &v("v1.37")),
            Err(PlanError::MinorSkipped { next: 36, .. })
        ));
        assert!(matches!(
            check_version_step(&v("v1.36"), &v("v1.35")),
            Err(PlanError::Downgrade { .. })
        ));
        assert!(matches!(
            check_version_step(&v("v1.35.4+k3s1"), &v("v1.35.2+k3s1")),
            Err(PlanError::Downgrade { .. })
        ));
        let mut from = spec(3, 2);
        from.version = v("v1.34");
        let mut to = from.clone();
        to.version = v("v1.36");
        assert!(matches!(
            plan(Some(&from), &to, &converged(&from), &shas(&to)),
            Err(PlanError::MinorSkipped { .. })
        ));
    }

    // Issue 11 B.1: no server answering the node list used to read as "nobody is a member", and
    // the plan reinstalled every node (the first one with cluster-init).
    #[test]
    fn unknown_membership_is_refused_not_read_as_empty() {
        let s = spec(3, 2);
        let mut live = converged(&s);
        live.members.clear();
        live.members_unknown = Some("no server answered: connection refused".into());
        let err = plan(Some(&s), &s, &live, &shas(&s)).unwrap_err();
        assert!(matches!(err, PlanError::MembershipUnknown { .. }), "{err}");
        assert!(err.to_string().contains("m0, m1, m2, w0, w1"), "{err}");
        // The same read with the list known and empty is a cluster to (re)build.
        let mut known_empty = converged(&s);
        known_empty.members.clear();
        assert!(!matches!(
            plan(Some(&s), &s, &known_empty, &shas(&s)),
            Err(PlanError::MembershipUnknown { .. })
        ));
        // Nothing runs k3s: nothing could have answered, so unknown means a fresh create.
        let nothing = LiveCluster {
            members_unknown: Some("no server".into()),
            ..LiveCluster::default()
        };
        assert!(plan(None, &s, &nothing, &shas(&s)).is_ok());
    }

    #[test]
    fn names_and_addresses_are_checked() {
        let mut bad = spec(3, 2);
        bad.agents[0].address = "-oProxyCommand=touch /tmp/x".into();
        assert!(matches!(
            check_spec(&bad),
            Err(PlanError::BadAddress { .. })
        ));
        let mut bad = spec(3, 2);
        bad.servers[1].name = "Master_1".into();
        assert!(matches!(check_spec(&bad), Err(PlanError::BadName { .. })));
        assert!(is_host_address("node-1.example.com") && is_host_address("10.0.1.10"));
    }
}

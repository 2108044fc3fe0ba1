//! The step planner: which node does what, in which order, and what is refused outright.
//!
//! Rules (each is a test below):
//! - create: the first server initialises etcd; the other servers join strictly one at a time
//!   (etcd admits one learner at a time); agents join in parallel, bounded by `agent_parallelism`,
//!   beside those server joins (through the first server, which serves by then), so the apply
//!   takes the first server plus the longer of the server joins and the agent joins, not their
//!   sum.
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
    /// The k3s certificate that expires first on the node and its seconds left by the node's
    /// clock (`None`: no certificate found).
    pub earliest_cert: Option<(String, i64)>,
    /// The server its config joins through (`server: https://ADDR:6443`), `None` without one.
    pub join_address: Option<String>,
}

/// The live cluster: per-node facts plus the Node objects the API server knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveCluster {
    pub nodes: BTreeMap<String, LiveNode>,
    /// Names of the Node objects the API server knows (registered). Not "Ready": with
    /// `flannel-backend: none` nodes stay NotReady until the CNI bundle runs, after the cluster.
    pub members: BTreeSet<String>,
    /// Members still carrying the label a roll-out puts on a node it cordons
    /// ([`super::ops::CORDONED_BY_APPLY`]): an earlier apply drained them and could not
    /// uncordon them (the API failed after the drain).
    pub left_cordoned: BTreeSet<String>,
    /// Why `members` could not be read although some server runs k3s (no server answered the
    /// node list). Then `members` is empty because it is unknown, not because nobody is a member.
    pub members_unknown: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write config with `cluster-init`, install k3s as a server: the first server of a new
    /// cluster. Planned only when no server of the cluster is registered.
    InitCluster(Node),
    /// Write config, install k3s as a server joining through a live server, wait until it serves.
    InstallServer(Node),
    /// Write config, install k3s as an agent, wait until it is Ready.
    InstallAgent(Node),
    /// Installed at the wrong version: re-run the installer at the wanted one, wait Ready.
    Upgrade(Node, Role),
    /// Config drifted: rewrite it, restart the unit, wait Ready.
    Reconfigure(Node, Role),
    /// Cordon + drain, delete the Node object (k3s then removes a server's etcd member),
    /// uninstall k3s.
    Remove(Node, Role),
    /// Read the admin kubeconfig from the first server and write it locally.
    FetchKubeconfig,
    /// Uncordon a node an earlier roll-out cordoned and could not uncordon, and drop its mark.
    Uncordon(Node),
}

impl Action {
    pub fn node(&self) -> Option<&Node> {
        match self {
            Action::InitCluster(n)
            | Action::InstallServer(n)
            | Action::InstallAgent(n)
            | Action::Upgrade(n, _)
            | Action::Reconfigure(n, _)
            | Action::Remove(n, _)
            | Action::Uncordon(n) => Some(n),
            Action::FetchKubeconfig => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    Serial(Action),
    Parallel {
        actions: Vec<Action>,
        limit: usize,
    },
    /// Lanes run side by side, each its stages in order; a failing lane stops at its failure, the
    /// others run to their end, and then the stage fails.
    Lanes(Vec<Vec<Stage>>),
}

impl Stage {
    /// Every action of the stage, in stage order (lanes one after another).
    pub fn actions(&self) -> Vec<&Action> {
        match self {
            Stage::Serial(a) => vec![a],
            Stage::Parallel { actions, .. } => actions.iter().collect(),
            Stage::Lanes(lanes) => lanes.iter().flatten().flat_map(Stage::actions).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("servers: at least one server is required")]
    NoServers,
    #[error("servers: {count} servers is an even number; etcd needs an odd count (1, 3, 5, ...) to tolerate failures. Set master_count to an odd number")]
    EvenServers { count: usize },
    #[error("servers: this change takes {count} of the {members} etcd members out at once ({names}), but {members} members keep quorum through at most {tolerance} missing. Should a replacement fail to join mid-way, etcd would lose quorum and the API would stop. Safe sequence, one `terraform apply` each, `ffe-ha verify` between them: {sequence}")]
    TooManyServersAtOnce {
        count: usize,
        members: usize,
        tolerance: usize,
        names: String,
        sequence: String,
    },
    #[error("{role}: address {address} moves from node {old} to node {new}. One host cannot leave under one name and join under another in the same apply: remove {old} in one apply, then add {new} in the next")]
    AddressReused {
        role: &'static str,
        address: String,
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
    #[error("node {name} cannot move between servers and agents; remove it in one apply and add it back under a new name in the next")]
    RoleChanged { name: String },
    #[error("node_labels: the kubelet refuses to start with label {key:?}: keys under kubernetes.io or k8s.io are reserved, except the ones a kubelet may set on itself ({allowed}, and any key under kubelet.kubernetes.io/ or node.kubernetes.io/). Use your own prefix, e.g. \"example.com/role\"; set reserved labels such as node-role.kubernetes.io/* with kubectl after the node joined")]
    RestrictedNodeLabel { key: String, allowed: String },
    #[error("node_labels: {} is the mark a roll-out puts on the nodes it cordons (the next apply uncordons marked nodes). Remove it from node_labels", super::ops::CORDONED_BY_APPLY)]
    CordonMarkLabel,
    #[error("kubernetes_version: {from} -> {to} is a downgrade. Kubernetes and etcd do not support going back; restore from an etcd snapshot instead (docs/deploy.md), or keep {from}")]
    Downgrade { from: String, to: String },
    #[error("kubernetes_version: {from} -> {to} skips a minor version. Kubernetes upgrades one minor at a time: apply v{major}.{next} first, then {to}")]
    MinorSkipped {
        from: String,
        to: String,
        major: u64,
        next: u64,
    },
    #[error("no server of the cluster is registered: none answered with a node list ({servers}). Refusing to initialise a new cluster over the one Terraform created: that would be a second, empty cluster. Bring a server back (`systemctl status k3s`, `journalctl -u k3s` on the servers), then apply again; if every server lost its data, restore from an etcd snapshot")]
    ClusterGone { servers: String },
    #[error("cluster membership is unknown: k3s runs on {active} but no server answered the node list ({reason}). Refusing to change the cluster: an unknown membership is not an empty one, and planning from it would reinstall every node. Check the API servers (`systemctl status k3s`, `journalctl -u k3s` on the servers), then apply again")]
    MembershipUnknown { active: String, reason: String },
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
    if spec.node_labels.contains_key(super::ops::CORDONED_BY_APPLY) {
        return Err(PlanError::CordonMarkLabel);
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

/// A node of `prior` that `desired` keeps under the same name at another address: a new host
/// takes over the node (its Node and, for a server, its etcd member are removed first).
fn replaced<'a>(prior: &'a [Node], desired: &[Node]) -> Vec<(&'a Node, Node)> {
    prior
        .iter()
        .filter_map(|p| {
            desired
                .iter()
                .find(|d| d.name == p.name && d.address != p.address)
                .map(|d| (p, d.clone()))
        })
        .collect()
}

/// Quorum rules for changing the server set from `prior` to `desired`.
pub fn check_change(prior: &ClusterSpec, desired: &ClusterSpec) -> Result<(), PlanError> {
    check_spec(desired)?;
    check_version_step(&prior.version, &desired.version)?;
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
    // A host that leaves under one name cannot join under another in the same apply: the join
    // would run while the old name still holds the host.
    for (old, role) in prior.all_nodes() {
        for (new, _) in desired.all_nodes() {
            if new.address == old.address && new.name != old.name {
                return Err(PlanError::AddressReused {
                    role: match role {
                        Role::Server => "servers",
                        Role::Agent => "agents",
                    },
                    address: old.address.clone(),
                    old: old.name.clone(),
                    new: new.name.clone(),
                });
            }
        }
    }
    // Servers leaving etcd in this apply: removed ones and replaced ones (a replacement removes
    // the old member before the new host joins). Each step runs alone, but should one fail the
    // cluster is left without them, so at most as many as the old membership tolerates.
    let removed: Vec<&Node> = prior
        .servers
        .iter()
        .filter(|p| !desired.servers.iter().any(|d| d.name == p.name))
        .collect();
    let swapped = replaced(&prior.servers, &desired.servers);
    let count = removed.len() + swapped.len();
    let members = prior.servers.len();
    let tolerance = members.saturating_sub(1) / 2;
    if count > tolerance {
        let mut steps: Vec<String> = removed
            .iter()
            .map(|n| format!("remove {}", n.name))
            .collect();
        steps.extend(
            swapped
                .iter()
                .map(|(o, n)| format!("replace {} ({} -> {})", o.name, o.address, n.address)),
        );
        let mut names: Vec<&str> = removed.iter().map(|n| n.name.as_str()).collect();
        names.extend(swapped.iter().map(|(o, _)| o.name.as_str()));
        let sequence = if tolerance == 0 {
            format!(
                "a {members}-server cluster tolerates no missing member: first grow to 3 servers (master_count = 3, new addresses), then {} one apply at a time",
                steps.join(", then ")
            )
        } else {
            // Each apply may take out as many as the membership left by the previous one
            // tolerates, and must leave an odd count: removals go in even numbers, replacements
            // (which keep the count) fill up to the tolerance.
            let removals: Vec<&String> = steps[..removed.len()].iter().collect();
            let swaps: Vec<&String> = steps[removed.len()..].iter().collect();
            let push_apply = |applies: &mut Vec<String>, chunk: &[&String]| {
                let steps: Vec<&str> = chunk.iter().map(|s| s.as_str()).collect();
                applies.push(format!(
                    "apply {}: {}",
                    applies.len() + 1,
                    steps.join(" and ")
                ));
            };
            let mut left = members;
            let mut applies: Vec<String> = vec![];
            let mut r = 0;
            while r < removals.len() {
                let per_apply = (left.saturating_sub(1) / 2) & !1;
                if per_apply == 0 {
                    applies.push(format!(
                        "{left} servers cannot lose {} more and keep an odd, quorate membership: going below {left} means rebuilding the cluster",
                        removals.len() - r
                    ));
                    break;
                }
                let chunk = &removals[r..(r + per_apply).min(removals.len())];
                r += chunk.len();
                left -= chunk.len();
                push_apply(&mut applies, chunk);
            }
            let per_apply = (left.saturating_sub(1) / 2).max(1);
            for chunk in swaps.chunks(per_apply) {
                push_apply(&mut applies, chunk);
            }
            applies.join("; ")
        };
        return Err(PlanError::TooManyServersAtOnce {
            count,
            members,
            tolerance,
            names: names.join(", "),
            sequence,
        });
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

/// How many agents upgrade at once: at least two thirds keep serving, and never more than
/// `agent_parallelism`. Each batch is its own stage, so a failure stops the roll-out.
pub fn agent_upgrade_batch(desired: &ClusterSpec) -> usize {
    (desired.agents.len() / 3).clamp(1, desired.agent_parallelism.max(1))
}

/// The order in which a change reaches the nodes, for the plan (none when nothing moves):
/// version roll-out, replacements and removals, as [`plan`] and the executor carry them out.
pub fn change_order(prior: &ClusterSpec, desired: &ClusterSpec) -> Option<String> {
    let mut lines = Vec::new();
    for (old, new) in replaced(&prior.servers, &desired.servers) {
        lines.push(format!(
            "server {}: {} leaves (drain, delete its Node, which removes its etcd member; uninstall if reachable), then {} joins through a live server",
            old.name, old.address, new.address
        ));
    }
    if prior.version != desired.version {
        let server_drain = !desired
            .server_taints
            .iter()
            .any(|t| t.ends_with(":NoSchedule") || t.ends_with(":NoExecute"))
            && desired.servers.len() > 1;
        let kept = |list: &[Node]| -> Vec<String> {
            list.iter()
                .filter(|n| {
                    prior
                        .all_nodes()
                        .any(|(p, _)| p.name == n.name && p.address == n.address)
                })
                .map(|n| n.name.clone())
                .collect()
        };
        let servers = kept(&desired.servers);
        if !servers.is_empty() {
            lines.push(format!(
                "upgrade {} -> {}: servers one at a time, every other server healthy before and after each{}: {}",
                prior.version.as_str(),
                desired.version.as_str(),
                if server_drain { ", each drained then uncordoned" } else { "" },
                servers.join(", then ")
            ));
        }
        let agents = kept(&desired.agents);
        if !agents.is_empty() {
            let batch = agent_upgrade_batch(desired);
            let batches: Vec<String> = agents
                .chunks(batch)
                .map(|c| format!("[{}]", c.join(", ")))
                .collect();
            lines.push(format!(
                "then agents in batches of {batch}, each drained then uncordoned; a failed batch stops the roll-out: {}",
                batches.join(", then ")
            ));
        }
    }
    for (old, role) in prior.all_nodes() {
        if desired.role_of(&old.name).is_none() {
            lines.push(format!(
                "remove {} {} (last, one at a time): drain, delete its Node{}, uninstall",
                match role {
                    Role::Server => "server",
                    Role::Agent => "agent",
                },
                old.name,
                if role == Role::Server {
                    " (removes its etcd member)"
                } else {
                    ""
                }
            ));
        }
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// A server that is reachable and runs k3s without a Node, or has a Node but no k3s, lost its
/// place in etcd or its data: k3s would refuse to start it (a removed member must not reuse its
/// data) or would add a second member for it. It leaves the cluster and joins again.
fn runs_as_member(live: &LiveCluster, node: &Node) -> bool {
    live.nodes
        .get(&node.name)
        .is_some_and(|l| l.version.is_some() && l.active)
        && live.members.contains(&node.name)
}

fn must_rejoin(live: &LiveCluster, node: &Node) -> bool {
    let Some(l) = live.nodes.get(&node.name) else {
        return false; // unreachable: not known to be gone; the install step reports it
    };
    l.version.is_some() != live.members.contains(&node.name)
}

/// The ordered stages that take the live cluster to `desired`. With `prior = None` this is a
/// create; otherwise `prior` is the cluster Terraform last applied. `wanted_sha` maps each node
/// to the drift hash of the config it should have.
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
    // Only a cluster nobody is registered in is initialised; every other server joins through a
    // live one, whichever place it has in master_ips (ADR 0015).
    let cluster_exists = !live.members.is_empty();
    // A cluster Terraform created but of which nobody is registered now is unreachable or gone,
    // not absent: initialising would create a second one.
    if let (Some(p), false) = (prior, cluster_exists) {
        if !p.servers.is_empty() {
            return Err(PlanError::ClusterGone {
                servers: names(&desired.servers.iter().collect::<Vec<_>>()),
            });
        }
    }
    let no_prior = ClusterSpec {
        servers: vec![],
        agents: vec![],
        ..desired.clone()
    };
    let prior_spec = prior.unwrap_or(&no_prior);
    let swapped_servers = replaced(&prior_spec.servers, &desired.servers);
    let swapped_agents: Vec<(&Node, Node)> = replaced(&prior_spec.agents, &desired.agents)
        .into_iter()
        .filter(|(_, new)| !runs_as_member(live, new))
        .collect();
    let mut stages = Vec::new();
    // First, back into service what an interrupted roll-out left cordoned (a node it upgrades
    // again below is cordoned again by its own drain).
    let left: Vec<Action> = desired
        .all_nodes()
        .filter(|(n, _)| live.left_cordoned.contains(&n.name))
        .map(|(n, _)| Action::Uncordon(n.clone()))
        .collect();
    if !left.is_empty() {
        stages.push(Stage::Parallel {
            actions: left,
            limit: desired.agent_parallelism.max(1),
        });
    }
    let mut first_installed = false;
    // Servers strictly one at a time, in order: first every server that (re)joins, so the
    // membership is whole again, then the restarts of the others (a restart checks that every
    // other member serves, the new ones included).
    let mut restarts = Vec::new();
    for (i, s) in desired.servers.iter().enumerate() {
        // A replacement whose new host already runs as the member (an earlier apply got that
        // far) is done: removing "the old one" now would delete the new member.
        let swapped = swapped_servers
            .iter()
            .find(|(o, _)| o.name == s.name)
            .filter(|_| cluster_exists && !runs_as_member(live, s));
        let install = if let Some((old, _)) = swapped {
            stages.push(Stage::Serial(Action::Remove((*old).clone(), Role::Server)));
            Some(Action::InstallServer(s.clone()))
        } else if desired
            .servers
            .iter()
            .any(|o| o.name != s.name && live.members.contains(&o.name))
            && must_rejoin(live, s)
        {
            stages.push(Stage::Serial(Action::Remove(s.clone(), Role::Server)));
            Some(Action::InstallServer(s.clone()))
        } else {
            converge(desired, live, s, Role::Server, wanted_sha).map(|a| match a {
                Action::InstallServer(n) if i == 0 && !cluster_exists => Action::InitCluster(n),
                other => other,
            })
        };
        match install {
            Some(a @ (Action::InitCluster(_) | Action::InstallServer(_))) => {
                first_installed |= i == 0;
                stages.push(Stage::Serial(a));
            }
            Some(a) => restarts.push(Stage::Serial(a)),
            None => {}
        }
    }
    stages.extend(restarts);
    if prior.is_none() || first_installed {
        stages.push(Stage::Serial(Action::FetchKubeconfig));
    }
    // Agents that move to a new host leave first: the new host registers under the same name.
    for (old, _) in &swapped_agents {
        stages.push(Stage::Serial(Action::Remove((*old).clone(), Role::Agent)));
    }
    let limit = desired.agent_parallelism.max(1);
    let mut joins = Vec::new();
    let mut upgrades = Vec::new();
    for a in &desired.agents {
        if swapped_agents.iter().any(|(o, _)| o.name == a.name) {
            joins.push(Action::InstallAgent(a.clone()));
            continue;
        }
        match converge(desired, live, a, Role::Agent, wanted_sha) {
            Some(act @ Action::Upgrade(..)) => upgrades.push(act),
            Some(act) => joins.push(act),
            None => {}
        }
    }
    if !joins.is_empty() {
        let agents = Stage::Parallel {
            actions: joins,
            limit,
        };
        // A new cluster: once the first server serves, the agents join through it while the
        // other servers join one by one (a join needs one live server, not all of them).
        if !cluster_exists
            && swapped_agents.is_empty()
            && matches!(stages.first(), Some(Stage::Serial(Action::InitCluster(_))))
        {
            let servers = stages.split_off(1);
            stages.push(Stage::Lanes(vec![servers, vec![agents]]));
        } else {
            stages.push(agents);
        }
    }
    let batch = agent_upgrade_batch(desired);
    for chunk in upgrades.chunks(batch) {
        stages.push(Stage::Parallel {
            actions: chunk.to_vec(),
            limit: batch,
        });
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
            cis_profile: true,
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
                    ..LiveNode::default()
                },
            );
            live.members.insert(n.name.clone());
        }
        live
    }

    #[test]
    fn create_joins_servers_serially_and_agents_in_bounded_parallel_beside_them() {
        let s = spec(3, 3);
        let stages = plan(None, &s, &LiveCluster::default(), &shas(&s)).unwrap();
        assert_eq!(
            stages,
            vec![
                Stage::Serial(Action::InitCluster(s.servers[0].clone())),
                Stage::Lanes(vec![
                    vec![
                        Stage::Serial(Action::InstallServer(s.servers[1].clone())),
                        Stage::Serial(Action::InstallServer(s.servers[2].clone())),
                        Stage::Serial(Action::FetchKubeconfig),
                    ],
                    vec![Stage::Parallel {
                        actions: s.agents.iter().cloned().map(Action::InstallAgent).collect(),
                        limit: 2
                    }],
                ]),
            ]
        );
    }

    #[test]
    fn agents_added_to_an_existing_cluster_join_after_the_server_changes() {
        let old = spec(3, 1);
        let mut new = spec(3, 3);
        new.servers[2].address = "10.0.0.99".into();
        let stages = plan(Some(&old), &new, &converged(&old), &shas(&new)).unwrap();
        assert!(
            !stages.iter().any(|st| matches!(st, Stage::Lanes(_))),
            "{stages:?}"
        );
        assert!(matches!(
            stages.last(),
            Some(Stage::Parallel { actions, .. }) if actions.iter().all(|a| matches!(a, Action::InstallAgent(_)))
        ));
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
        // 5 -> 1 would take 4 of 5 out: refused, with the sequence that is safe.
        let mut one_of_five = spec(1, 2);
        one_of_five.servers[0] = five.servers[0].clone();
        let err = check_change(&five, &one_of_five).unwrap_err();
        assert!(
            matches!(
                err,
                PlanError::TooManyServersAtOnce {
                    count: 4,
                    tolerance: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains(
                "apply 1: remove m1 and remove m2; 3 servers cannot lose 2 more and keep an odd, quorate membership"
            ),
            "{err}"
        );
        assert!(matches!(
            check_spec(&spec(2, 2)),
            Err(PlanError::EvenServers { count: 2 })
        ));
        assert!(matches!(check_spec(&spec(0, 2)), Err(PlanError::NoServers)));
        let mut one = spec(1, 2);
        one.servers[0] = three.servers[0].clone();
        assert!(matches!(
            check_change(&three, &one),
            Err(PlanError::TooManyServersAtOnce { count: 2, .. })
        ));
        // The first server is a server like the others: it may go, and the order may change.
        let mut without_first = five.clone();
        without_first.servers.remove(0);
        without_first.servers.push(Node::new("m9", "10.210.1.99"));
        assert!(check_change(&five, &without_first).is_ok());
        let mut reordered = three.clone();
        reordered.servers.swap(0, 1);
        assert!(check_change(&three, &reordered).is_ok());
        let mut promoted = three.clone();
        let agent = promoted.agents.remove(0);
        promoted.servers.push(agent);
        promoted.servers.push(Node::new("m8", "10.210.1.98"));
        assert!(matches!(
            check_change(&three, &promoted),
            Err(PlanError::RoleChanged { .. })
        ));
        let mut renamed = three.clone();
        renamed.agents[0].name = "w9".into();
        assert!(matches!(
            check_change(&three, &renamed),
            Err(PlanError::AddressReused { .. })
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
    fn a_replaced_server_leaves_etcd_before_its_successor_joins_the_first_one_too() {
        let prior = spec(3, 2);
        let mut desired = prior.clone();
        desired.servers[0].address = "10.210.1.50".into();
        let mut live = converged(&prior);
        live.nodes.remove("m0"); // the old host is gone
        let stages = plan(Some(&prior), &desired, &live, &shas(&desired)).unwrap();
        assert_eq!(
            stages,
            vec![
                Stage::Serial(Action::Remove(prior.servers[0].clone(), Role::Server)),
                Stage::Serial(Action::InstallServer(desired.servers[0].clone())),
                Stage::Serial(Action::FetchKubeconfig),
            ]
        );
        // A live server replaced while the others need a restart (their certificate names the
        // new address): the replacement first, so the restarts find every member serving.
        let mut second = prior.clone();
        second.servers[1].address = "10.210.1.51".into();
        let mut live = converged(&prior);
        live.nodes.get_mut("m0").unwrap().config_sha256 = Some("old-tls-san".into());
        live.nodes.insert("m1".into(), LiveNode::default()); // the new host: nothing yet
        let stages = plan(Some(&prior), &second, &live, &shas(&second)).unwrap();
        assert_eq!(
            stages,
            vec![
                Stage::Serial(Action::Remove(prior.servers[1].clone(), Role::Server)),
                Stage::Serial(Action::InstallServer(second.servers[1].clone())),
                Stage::Serial(Action::Reconfigure(second.servers[0].clone(), Role::Server)),
            ]
        );
        let mut live = converged(&prior);
        live.nodes.remove("m0");
        // Two of three at once: refused, and told to do one per apply.
        desired.servers[1].address = "10.210.1.51".into();
        let err = plan(Some(&prior), &desired, &live, &shas(&desired)).unwrap_err();
        assert!(
            err.to_string().contains(
                "apply 1: replace m0 (10.210.1.10 -> 10.210.1.50); apply 2: replace m1 (10.210.1.11 -> 10.210.1.51)"
            ),
            "{err}"
        );
        // A single server has nothing to keep quorum with while it is replaced.
        let single = spec(1, 2);
        let mut moved = single.clone();
        moved.servers[0].address = "10.210.1.50".into();
        let err = check_change(&single, &moved).unwrap_err();
        assert!(err.to_string().contains("first grow to 3 servers"), "{err}");
        // An agent on a new host: the old one leaves before the new one registers the name.
        let mut agent_moved = prior.clone();
        agent_moved.agents[1].address = "10.210.1.60".into();
        let mut live = converged(&prior);
        live.nodes.insert("w1".into(), LiveNode::default()); // the new host: nothing yet
        let stages = plan(Some(&prior), &agent_moved, &live, &shas(&prior)).unwrap();
        assert_eq!(
            stages,
            vec![
                Stage::Serial(Action::Remove(prior.agents[1].clone(), Role::Agent)),
                Stage::Parallel {
                    actions: vec![Action::InstallAgent(agent_moved.agents[1].clone())],
                    limit: 2
                },
            ]
        );
    }

    #[test]
    fn a_replacement_an_earlier_apply_finished_is_not_removed_again() {
        let prior = spec(3, 2);
        let mut desired = prior.clone();
        desired.servers[0].address = "10.210.1.50".into();
        // The new host already runs as member m0 (the earlier apply failed later on): no Remove.
        let live = converged(&desired);
        assert_eq!(
            plan(Some(&prior), &desired, &live, &shas(&desired)).unwrap(),
            vec![]
        );
        // Nobody registered although Terraform created the cluster: never a second cluster.
        let mut gone = converged(&prior);
        gone.members.clear();
        let err = plan(Some(&prior), &desired, &gone, &shas(&desired)).unwrap_err();
        assert!(matches!(err, PlanError::ClusterGone { .. }), "{err}");
    }

    #[test]
    fn a_server_that_lost_its_data_or_its_member_rejoins_through_a_live_one() {
        let s = spec(3, 2);
        // The first server's host was reinstalled: reachable, no k3s, its Node still there.
        let mut live = converged(&s);
        live.nodes.insert("m0".into(), LiveNode::default());
        let stages = plan(Some(&s), &s, &live, &shas(&s)).unwrap();
        assert_eq!(
            stages,
            vec![
                Stage::Serial(Action::Remove(s.servers[0].clone(), Role::Server)),
                Stage::Serial(Action::InstallServer(s.servers[0].clone())),
                Stage::Serial(Action::FetchKubeconfig),
            ]
        );
        // k3s installed but its Node (and so its etcd member) deleted: it must not reuse its data.
        let mut live = converged(&s);
        live.members.remove("m1");
        let stages = plan(Some(&s), &s, &live, &shas(&s)).unwrap();
        assert_eq!(
            stages,
            vec![
                Stage::Serial(Action::Remove(s.servers[1].clone(), Role::Server)),
                Stage::Serial(Action::InstallServer(s.servers[1].clone())),
            ]
        );
        // Unreachable is not gone: nothing is removed, the install step reports the host.
        let mut live = converged(&s);
        live.nodes.remove("m2");
        let stages = plan(Some(&s), &s, &live, &shas(&s)).unwrap();
        assert_eq!(
            stages,
            vec![Stage::Serial(Action::InstallServer(s.servers[2].clone()))]
        );
        // With nobody registered it is a fresh cluster: the first server initialises it.
        let empty = LiveCluster::default();
        assert!(matches!(
            plan(None, &s, &empty, &shas(&s)).unwrap()[0],
            Stage::Serial(Action::InitCluster(_))
        ));
    }

    #[test]
    fn the_plan_names_the_roll_out_order() {
        let old = spec(3, 3);
        let mut new = old.clone();
        new.version = VersionSpec::parse("v1.34").unwrap();
        let text = change_order(&old, &new).unwrap();
        assert!(text.contains("m0, then m1, then m2"), "{text}");
        assert!(text.contains("each drained then uncordoned"), "{text}");
        assert!(
            text.contains("batches of 1") && text.contains("[w0], then [w1], then [w2]"),
            "{text}"
        );
        new.server_taints = vec!["CriticalAddonsOnly=true:NoExecute".into()];
        new.servers[0].address = "10.210.1.50".into();
        new.agents.pop();
        let text = change_order(&old, &new).unwrap();
        assert!(text.contains("server m0: 10.210.1.10 leaves"), "{text}");
        assert!(
            text.contains("m1, then m2:") || text.contains(": m1, then m2"),
            "{text}"
        );
        assert!(!text.contains("servers one at a time, every other server healthy before and after each, each drained"), "{text}");
        assert!(text.contains("remove agent w2"), "{text}");
        assert_eq!(change_order(&old, &old), None);
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
        let mut s = spec(3, 2);
        s.node_labels
            .insert(crate::k3s::ops::CORDONED_BY_APPLY.into(), "true".into());
        assert_eq!(check_spec(&s), Err(PlanError::CordonMarkLabel));
    }

    #[test]
    fn nodes_an_interrupted_roll_out_left_cordoned_are_uncordoned_first() {
        let s = spec(3, 3);
        let mut live = converged(&s);
        live.left_cordoned.insert("w1".into());
        live.left_cordoned.insert("m2".into());
        // a node no longer in the spec is removed (drained and deleted), not uncordoned
        live.left_cordoned.insert("gone".into());
        let stages = plan(Some(&s), &s, &live, &shas(&s)).unwrap();
        assert_eq!(
            stages,
            vec![Stage::Parallel {
                actions: vec![
                    Action::Uncordon(s.servers[2].clone()),
                    Action::Uncordon(s.agents[1].clone())
                ],
                limit: 2
            }]
        );
        // ... also before the upgrade that cordons it again
        let mut new = s.clone();
        new.version = VersionSpec::parse("v1.34").unwrap();
        let stages = plan(Some(&s), &new, &live, &shas(&new)).unwrap();
        assert!(matches!(&stages[0], Stage::Parallel { actions, .. } if actions.len() == 2));
        assert!(stages[1..]
            .iter()
            .flat_map(Stage::actions)
            .all(|a| matches!(a, Action::Upgrade(..))));
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
        // The same read with the list known and empty is not "membership unknown" (it is a
        // cluster Terraform created of which nobody is registered: ClusterGone).
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

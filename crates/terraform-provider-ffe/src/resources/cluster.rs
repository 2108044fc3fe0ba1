//! `ffe_k3s_cluster`: HA k3s with embedded etcd across the servers, agents joined in parallel.
//!
//! Plan-time: quorum rules refuse dangerous server changes, and drift read over SSH shows as a
//! diff of `node_config_sha256` / `node_versions` / `members`. Apply: ffe-core's planner orders
//! the steps against the live cluster, so re-applies restart nothing and an interrupted apply
//! converges when run again.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ffe_core::k3s::config::Join;
use ffe_core::k3s::ops::{self, Executor};
use ffe_core::k3s::restore;
use ffe_core::k3s::{
    planner, state, ClusterSpec, InstallSource, JoinSecrets, LiveCluster, Node, VersionSpec,
};
use ffe_core::kubeconfig;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{
    AttributeConstraint::{Computed, Optional, OptionalComputed, Required},
    AttributeType, Block, Description, Schema,
};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{map, AttributePath, Diagnostics, Resource};

use crate::provider::Ctx;
use crate::schema::{attr, node_list, secret, str_list, str_map};
use crate::values::{
    expand_home, list, list_unknown, map as to_btree, opt_str, str_or, to_list, to_map, Num, Str,
    StrList, StrMap,
};

pub struct ClusterResource {
    pub ctx: Arc<Ctx>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeObj {
    pub name: Str,
    pub address: Str,
    /// null: the provider's ssh_port.
    #[serde(default)]
    pub ssh_port: Num,
}

pub type NodeList = Value<Vec<Value<NodeObj>>>;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterState {
    pub id: Str,
    pub cluster_name: Str,
    pub servers: NodeList,
    pub agents: NodeList,
    pub kubernetes_version: Str,
    pub api_vip: Str,
    pub tls_san: StrList,
    pub cluster_cidr: Str,
    pub service_cidr: Str,
    pub install_mode: Str,
    pub installer_url: Str,
    pub airgap_k3s_binary_path: Str,
    pub airgap_images_path: Str,
    pub airgap_installer_path: Str,
    pub etcd_snapshot_dir: Str,
    pub etcd_snapshot_schedule: Str,
    pub etcd_snapshot_retention: Num,
    pub server_taints: StrList,
    pub node_labels: StrMap,
    pub agent_parallelism: Num,
    pub cis_profile: Value<bool>,
    pub ready_timeout_seconds: Num,
    pub token_rotation: Num,
    pub certificate_rotation: Num,
    pub encryption_key_rotation: Num,
    pub restore_from_snapshot: Str,
    pub kubeconfig_path: Str,
    pub token: Str,
    pub agent_token: Str,
    pub kubeconfig: Str,
    pub api_endpoint: Str,
    pub node_config_sha256: StrMap,
    pub node_versions: StrMap,
    pub members: StrList,
    pub left_cordoned: StrList,
}

const DEFAULT_INSTALLER_URL: &str = "https://get.k3s.io";
// Defaults for optional attributes: filled into the plan, and used when state predates them.
const DEFAULT_CLUSTER_CIDR: &str = "10.42.0.0/16";
const DEFAULT_SERVICE_CIDR: &str = "10.43.0.0/16";
const DEFAULT_SNAPSHOT_SCHEDULE: &str = "0 */6 * * *";
const DEFAULT_SNAPSHOT_RETENTION: i64 = 28;
const DEFAULT_AGENT_PARALLELISM: i64 = 5;
const DEFAULT_READY_TIMEOUT: i64 = 300;

pub fn nodes(v: &NodeList) -> Vec<Node> {
    v.as_ref_option()
        .map(|l| {
            l.iter()
                .filter_map(|n| n.as_ref_option())
                .map(|n| {
                    Node::new(
                        opt_str(&n.name).unwrap_or_default(),
                        opt_str(&n.address).unwrap_or_default(),
                    )
                    .with_ssh_port(
                        n.ssh_port
                            .as_ref_option()
                            .and_then(|p| u16::try_from(*p).ok()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A node's `ssh_port`, when set, must be a TCP port (never silently replaced by the default).
pub fn bad_port(v: &NodeList) -> Result<(), String> {
    for n in v.as_ref_option().into_iter().flatten() {
        let Some(o) = n.as_ref_option() else { continue };
        if let Some(p) = o.ssh_port.as_ref_option() {
            if !(1..=65535).contains(p) {
                return Err(format!(
                    "node {}: ssh_port {p} is not a TCP port: use 1-65535, or null for the provider's ssh_port",
                    opt_str(&o.name).unwrap_or_default()
                ));
            }
        }
    }
    Ok(())
}

pub fn nodes_unknown(v: &NodeList) -> bool {
    match v {
        Value::Unknown => true,
        Value::Value(l) => l.iter().any(|n| match n {
            Value::Unknown => true,
            Value::Value(o) => {
                matches!(o.name, Value::Unknown) || matches!(o.address, Value::Unknown)
            }
            Value::Null => false,
        }),
        Value::Null => false,
    }
}

impl ClusterState {
    fn fill_defaults(&mut self) {
        let set_str = |v: &mut Str, d: &str| {
            if matches!(v, Value::Null) {
                *v = Value::Value(d.to_string());
            }
        };
        set_str(&mut self.cluster_cidr, DEFAULT_CLUSTER_CIDR);
        set_str(&mut self.service_cidr, DEFAULT_SERVICE_CIDR);
        set_str(&mut self.install_mode, "online");
        set_str(&mut self.installer_url, DEFAULT_INSTALLER_URL);
        set_str(&mut self.etcd_snapshot_schedule, DEFAULT_SNAPSHOT_SCHEDULE);
        let set_num = |v: &mut Num, d: i64| {
            if matches!(v, Value::Null) {
                *v = Value::Value(d);
            }
        };
        set_num(
            &mut self.etcd_snapshot_retention,
            DEFAULT_SNAPSHOT_RETENTION,
        );
        set_num(&mut self.agent_parallelism, DEFAULT_AGENT_PARALLELISM);
        set_num(&mut self.ready_timeout_seconds, DEFAULT_READY_TIMEOUT);
        set_num(&mut self.token_rotation, 0);
        set_num(&mut self.certificate_rotation, 0);
        set_num(&mut self.encryption_key_rotation, 0);
        if matches!(self.agents, Value::Null) {
            self.agents = Value::Value(vec![]);
        }
        if matches!(self.tls_san, Value::Null) {
            self.tls_san = to_list(vec![]);
        }
        if matches!(self.server_taints, Value::Null) {
            self.server_taints = to_list(vec!["CriticalAddonsOnly=true:NoExecute".to_string()]);
        }
        if matches!(self.node_labels, Value::Null) {
            self.node_labels = to_map(vec![]);
        }
        if matches!(self.cis_profile, Value::Null) {
            self.cis_profile = Value::Value(true);
        }
    }

    /// Everything needed to build the spec is known (not waiting on other resources).
    /// Every input the rendered node configs depend on is known (not waiting on other
    /// resources), so the planned config hashes equal what apply will write.
    fn spec_known(&self) -> bool {
        let labels_unknown = match &self.node_labels {
            Value::Unknown => true,
            Value::Value(m) => m.values().any(|v| matches!(v, Value::Unknown)),
            Value::Null => false,
        };
        !nodes_unknown(&self.servers)
            && !nodes_unknown(&self.agents)
            && !list_unknown(&self.tls_san)
            && !list_unknown(&self.server_taints)
            && !labels_unknown
            && !matches!(self.etcd_snapshot_retention, Value::Unknown)
            && !matches!(self.cis_profile, Value::Unknown)
            && ![
                &self.cluster_name,
                &self.kubernetes_version,
                &self.api_vip,
                &self.etcd_snapshot_dir,
                &self.etcd_snapshot_schedule,
                &self.cluster_cidr,
                &self.service_cidr,
                &self.install_mode,
            ]
            .iter()
            .any(|v| matches!(v, Value::Unknown))
    }

    fn spec(&self) -> Result<ClusterSpec, (String, &'static str)> {
        for (list, attr) in [(&self.servers, "servers"), (&self.agents, "agents")] {
            bad_port(list).map_err(|m| (m, attr))?;
        }
        let version = VersionSpec::parse(&opt_str(&self.kubernetes_version).unwrap_or_default())
            .map_err(|e| (e, "kubernetes_version"))?;
        let install = match str_or(&self.install_mode, "online").as_str() {
            "online" => InstallSource::Online {
                installer_url: str_or(&self.installer_url, DEFAULT_INSTALLER_URL),
            },
            "airgap" => {
                let need = |v: &Str, attr: &'static str| {
                    opt_str(v).map(|p| expand_home(&p)).ok_or((
                        format!("install_mode = \"airgap\" needs {attr}: the path of the file on this machine"),
                        attr,
                    ))
                };
                InstallSource::Airgap {
                    k3s_binary: need(&self.airgap_k3s_binary_path, "airgap_k3s_binary_path")?,
                    installer: need(&self.airgap_installer_path, "airgap_installer_path")?,
                    images: opt_str(&self.airgap_images_path).map(|p| expand_home(&p)),
                }
            }
            other => {
                return Err((
                    format!("install_mode {other:?} must be \"online\" or \"airgap\""),
                    "install_mode",
                ))
            }
        };
        let parallelism = self
            .agent_parallelism
            .as_ref_option()
            .copied()
            .unwrap_or(DEFAULT_AGENT_PARALLELISM);
        if !(1..=20).contains(&parallelism) {
            return Err((
                "agent_parallelism must be between 1 and 20".into(),
                "agent_parallelism",
            ));
        }
        let retention = self
            .etcd_snapshot_retention
            .as_ref_option()
            .copied()
            .unwrap_or(DEFAULT_SNAPSHOT_RETENTION);
        if retention < 1 {
            return Err((
                "etcd_snapshot_retention must be at least 1".into(),
                "etcd_snapshot_retention",
            ));
        }
        Ok(ClusterSpec {
            cluster_name: opt_str(&self.cluster_name).unwrap_or_default(),
            servers: nodes(&self.servers),
            agents: nodes(&self.agents),
            version,
            api_vip: opt_str(&self.api_vip),
            tls_san: list(&self.tls_san),
            cluster_cidr: str_or(&self.cluster_cidr, DEFAULT_CLUSTER_CIDR),
            service_cidr: str_or(&self.service_cidr, DEFAULT_SERVICE_CIDR),
            install,
            etcd_snapshot_dir: opt_str(&self.etcd_snapshot_dir).unwrap_or_default(),
            etcd_snapshot_schedule: str_or(&self.etcd_snapshot_schedule, DEFAULT_SNAPSHOT_SCHEDULE),
            etcd_snapshot_retention: retention as u32,
            server_taints: list(&self.server_taints),
            node_labels: to_btree(&self.node_labels),
            agent_parallelism: parallelism as usize,
            cis_profile: self.cis_profile != Value::Value(false),
        })
    }

    fn ready_timeout(&self) -> Duration {
        Duration::from_secs(
            self.ready_timeout_seconds
                .as_ref_option()
                .copied()
                .unwrap_or(DEFAULT_READY_TIMEOUT)
                .max(1) as u64,
        )
    }

    fn kubeconfig_file(&self) -> Option<PathBuf> {
        opt_str(&self.kubeconfig_path).map(|p| expand_home(&p))
    }
}

fn spec_or_diag(state: &ClusterState, diags: &mut Diagnostics) -> Option<ClusterSpec> {
    match state.spec() {
        Ok(s) => Some(s),
        Err((msg, attr)) => {
            diags.error_short(msg, AttributePath::new(attr));
            None
        }
    }
}

/// `token_rotation` as a number (0 when unset).
fn rotation(s: &ClusterState) -> i64 {
    match &s.token_rotation {
        Value::Value(n) => *n,
        _ => 0,
    }
}

/// `certificate_rotation` as a number (0 when unset).
fn certificate_rotation(s: &ClusterState) -> i64 {
    match &s.certificate_rotation {
        Value::Value(n) => *n,
        _ => 0,
    }
}

/// `encryption_key_rotation` as a number (0 when unset).
fn encryption_key_rotation(s: &ClusterState) -> i64 {
    match &s.encryption_key_rotation {
        Value::Value(n) => *n,
        _ => 0,
    }
}

/// The snapshot this apply must restore: set, and not the one already restored.
fn restore_wanted(prior: &ClusterState, planned: &ClusterState) -> Option<String> {
    opt_str(&planned.restore_from_snapshot)
        .filter(|name| opt_str(&prior.restore_from_snapshot).as_deref() != Some(name.as_str()))
}

/// The cluster as a restore leaves it: etcd's membership is rebuilt from the servers listed.
fn after_restore(prior: &ClusterSpec, desired: &ClusterSpec) -> ClusterSpec {
    ClusterSpec {
        servers: desired.servers.clone(),
        ..prior.clone()
    }
}

/// The prior state once a restore reset etcd: the restore and the servers it ran on are
/// recorded, so a failure after the reset is finished by the next apply, never restored again.
fn restore_recorded(prior: &ClusterState, planned: &ClusterState) -> ClusterState {
    let mut s = prior.clone();
    s.restore_from_snapshot = planned.restore_from_snapshot.clone();
    s.servers = planned.servers.clone();
    s
}

/// The join secrets kept in state (either token form).
fn prior_secrets(s: &ClusterState) -> JoinSecrets {
    JoinSecrets::from_state(
        &opt_str(&s.token).unwrap_or_default(),
        opt_str(&s.agent_token).as_deref(),
    )
}

/// Observed state as Terraform values: (config hashes, versions, members, left cordoned).
fn live_maps(spec: &ClusterSpec, live: &LiveCluster) -> (StrMap, StrMap, StrList, StrList) {
    let o = state::observe(spec, live);
    (
        to_map(o.config_sha256),
        to_map(o.versions),
        to_list(o.members),
        to_list(o.left_cordoned),
    )
}

impl ClusterResource {
    /// Restore etcd from snapshot `name`: servers without k3s (new hosts) are installed first,
    /// stopped; then k3s's cluster-reset sequence (ffe-core `restore::cluster_reset`).
    #[allow(clippy::too_many_arguments)]
    async fn restore(
        &self,
        pool: &ffe_core::ssh::SshPool,
        spec: &ClusterSpec,
        departed: &[Node],
        secrets: &JoinSecrets,
        name: &str,
        timeout: Duration,
        diags: &mut Diagnostics,
    ) -> Result<restore::RestoreReport, restore::RestoreError> {
        let not_yet = |source| restore::RestoreError {
            reset_done: false,
            source,
        };
        let path = restore::find_snapshot(pool, &spec.servers, &spec.etcd_snapshot_dir, name)
            .await
            .map_err(not_yet)?;
        let (live, _) = ops::read_live(pool, spec).await;
        let Some(first) = spec.servers.first() else {
            return Err(not_yet(ops::OpsError::NoServer("no servers listed".into())));
        };
        let mut exec = Executor::new(pool, spec, secrets.clone());
        exec.ready_timeout = timeout;
        for (i, s) in spec.servers.iter().enumerate() {
            match live.nodes.get(&s.name) {
                None => {
                    return Err(not_yet(ops::OpsError::Step {
                        host: s.target().to_string(),
                        step: "check the server can be restored".into(),
                        message: "it does not answer over SSH. Nothing was stopped. A restore runs on every server listed: bring it back, or give a new host's address in its place in the same apply".into(),
                    }))
                }
                Some(l) if l.version.is_none() => {
                    let join = if i == 0 {
                        Join::Init
                    } else {
                        Join::Via(first.address.clone())
                    };
                    exec.install_stopped(s, &join).await.map_err(not_yet)?;
                }
                Some(_) => {}
            }
        }
        // Servers of the old list that are not in the new one: if they still run, they are the
        // old cluster (and would hold the API address). Stopped and disabled, data kept.
        for d in departed {
            match pool
                .run_within(
                    &d.target(),
                    "stop the old server",
                    "if [ -f /etc/systemd/system/k3s.service ]; then systemctl disable --now k3s; fi",
                    ops::READ_STEP,
                )
                .await
            {
                Ok(_) => diags.root_warning(
                    "k3s cluster: a server left out of the restore was stopped",
                    format!("{} ({}): k3s stopped and disabled, its data kept; uninstall it (`k3s-uninstall.sh`) once the restored cluster serves", d.name, d.address),
                ),
                Err(e) if e.is_unreachable() => {}
                Err(e) => {
                    return Err(not_yet(ops::OpsError::Step {
                        host: d.target().to_string(),
                        step: "stop the old server".into(),
                        message: format!("{e}\nNothing was reset: a server of the old cluster that still runs would go on beside the restored one. Stop it (`systemctl disable --now k3s` there), then apply again"),
                    }))
                }
            }
        }
        restore::cluster_reset(pool, &spec.servers, &path, timeout).await
    }

    /// Plan against the live cluster and carry it out. Returns the applied state.
    async fn apply(
        &self,
        diags: &mut Diagnostics,
        prior: Option<&ClusterState>,
        planned: ClusterState,
    ) -> Option<ClusterState> {
        let pool = self.ctx.pool(diags)?;
        let spec = spec_or_diag(&planned, diags)?;
        let prior_spec = match prior {
            Some(p) => Some(spec_or_diag(p, diags)?),
            None => None,
        };
        let mut secrets = match prior.filter(|p| opt_str(&p.token).is_some()) {
            Some(p) => prior_secrets(p),
            // A create that was interrupted left k3s on the first server: keep its secrets.
            None => match ops::existing_secrets(&pool, &spec).await {
                Ok(Some(s)) => s,
                Ok(None) => JoinSecrets::generate(),
                Err(e) => {
                    diags.root_error(
                        "cannot read the join token of the first server",
                        format!("{e}\nA new token would lock out the nodes that already joined, so nothing was changed. Fix the access to the first server, then run terraform apply again."),
                    );
                    return None;
                }
            },
        };
        secrets.fill_missing();
        let restoring = prior.and_then(|p| restore_wanted(p, &planned));
        // The CA hash joiners pin. Read on every apply: a first server now holding another CA
        // was re-initialised outside Terraform, and nothing may be joined to it (a restore
        // brings the known one back).
        if let Some(first) = spec.servers.first() {
            match ops::read_ca_hash(&pool, first).await {
                Ok(Some(_)) if restoring.is_some() => {}
                Ok(Some(read)) => match &secrets.ca_hash {
                    Some(known) if *known != read => {
                        diags.root_error(
                            "the cluster CA of the first server changed",
                            format!("{}: Terraform state pins the cluster CA {known}, the server now has {read}: it was re-initialised outside Terraform. Nothing was changed. If that was a mistake, restore the cluster from an etcd snapshot on the backup share (`ffe-ha etcd restore`, or k3s_restore_from_snapshot; docs/disaster-recovery.md) before applying again.", first.name),
                        );
                        return None;
                    }
                    _ => secrets.ca_hash = Some(read),
                },
                Ok(None) => {}
                // Known from state: a first server that cannot be read does not block the rest.
                Err(e) => tracing::warn!("reading the cluster CA hash: {e}"),
            }
        }
        // A restore first: it rebuilds etcd from the snapshot on the servers listed, and the plan
        // below then starts from them.
        let mut reset_done = false;
        if let Some(name) = &restoring {
            let departed: Vec<Node> = prior_spec
                .as_ref()
                .map(|p| {
                    p.servers
                        .iter()
                        .filter(|o| !spec.servers.iter().any(|n| n.address == o.address))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let outcome = self
                .restore(
                    &pool,
                    &spec,
                    &departed,
                    &secrets,
                    name,
                    planned.ready_timeout(),
                    diags,
                )
                .await;
            match outcome {
                Ok(report) => {
                    reset_done = true;
                    diags.root_warning(
                        "k3s cluster: etcd restored",
                        format!(
                            "{} restored on {}; previous etcd data kept at: {}{}",
                            report.snapshot,
                            report.restored_on,
                            report.kept_data(),
                            if report.removed_nodes.is_empty() {
                                String::new()
                            } else {
                                format!(
                                    "; Nodes of servers no longer listed deleted: {}",
                                    report.removed_nodes.join(", ")
                                )
                            }
                        ),
                    );
                }
                Err(e) => {
                    reset_done = e.reset_done;
                    diags.root_error(
                        "restoring etcd from the snapshot failed",
                        if e.reset_done {
                            format!("{e}\nThe snapshot is restored on {}; the state records the restore, so the next `terraform apply` does not restore again: it joins the servers still missing through the restored one.", spec.servers.first().map(|n| n.name.as_str()).unwrap_or("-"))
                        } else {
                            format!("{e}\nThe cluster was not reset. Fix the cause and run `terraform apply` again.")
                        },
                    );
                    // Rotation and restore never share an apply (refused at plan).
                    return prior
                        .filter(|_| reset_done)
                        .map(|p| restore_recorded(p, &planned));
                }
            }
        }
        let (live, read_warnings) = ops::read_live(&pool, &spec).await;
        for w in read_warnings {
            diags.root_warning("k3s cluster: a node could not be read before applying", w);
        }
        // Token rotation first: once `k3s token rotate` succeeded the old token is gone, so from
        // here on a failure still records the new one (see `failed` below).
        let rotated = match prior {
            Some(p) if rotation(&planned) > rotation(p) => {
                if !secrets.has_agent_token() {
                    // Its agents join with the server secret, and k3s keeps that as the agent
                    // password: rotating it would need the agents' configs changed too.
                    diags.root_error(
                        "token_rotation: this cluster has no separate agent token",
                        "It was created before agent tokens existed, so its agents join with the server token. Rotating the server token is not supported for it; keep token_rotation at its current value.",
                    );
                    return None;
                }
                let new_secret = JoinSecrets::generate().server;
                if let Err(e) =
                    ops::rotate_server_token(&pool, &spec, &secrets.server, &new_secret).await
                {
                    diags.root_error(
                        "rotating the k3s server token failed",
                        format!("{e}\nNothing else was changed. If the message says the SSH connection broke, k3s may have rotated the token before it broke (docs/upgrade.md, Rotating the join token); otherwise the token was not rotated: fix the cause and run `terraform apply` again."),
                    );
                    return None;
                }
                secrets.server = new_secret;
                true
            }
            _ => false,
        };
        // After a rotation, a failure returns the prior state with the new secrets (Terraform
        // keeps it) and the error: the next apply restarts the servers still on the old token.
        // After a reset, it returns the restore and the servers it ran on: the next apply must
        // not restore again over what was written since.
        let planned_rotation = planned.token_rotation;
        let after_reset = prior.map(|p| restore_recorded(p, &planned));
        let failed = |secrets: &JoinSecrets| -> Option<ClusterState> {
            if reset_done {
                return after_reset.clone();
            }
            let p = prior.filter(|_| rotated)?;
            let mut s = p.clone();
            s.token = Value::Value(secrets.server_join_token());
            s.agent_token = Value::Value(secrets.agent_join_token());
            s.token_rotation = planned_rotation;
            Some(s)
        };
        let shas = state::wanted_config_sha256(&spec, &secrets);
        // After a restore the servers listed are the membership; agents still follow the prior.
        let plan_from = match (&prior_spec, reset_done) {
            (Some(p), true) => Some(after_restore(p, &spec)),
            (p, _) => p.clone(),
        };
        let stages = match planner::plan(plan_from.as_ref(), &spec, &live, &shas) {
            Ok(s) => s,
            Err(e) => {
                diags.root_error("refused cluster change", e.to_string());
                return failed(&secrets);
            }
        };
        let mut exec = Executor::new(&pool, &spec, secrets);
        exec.ready_timeout = planned.ready_timeout();
        exec.prior = prior_spec.clone();
        exec.note_stale_joins(&live);
        let result = exec.run(&stages).await;
        for w in exec.warnings.lock().map(|w| w.clone()).unwrap_or_default() {
            diags.root_warning("k3s cluster", w);
        }
        if let Err(e) = result {
            diags.root_error(
                "k3s cluster change failed",
                format!("{e}\nNothing that finished is undone; fix the cause and run `terraform apply` again: it continues from where it stopped."),
            );
            return failed(&exec.secrets());
        }
        let rotate_certs =
            prior.is_some_and(|p| certificate_rotation(&planned) > certificate_rotation(p));
        if rotate_certs {
            if let Err(e) = exec.rotate_certificates().await {
                diags.root_error(
                    "rotating the k3s certificates failed",
                    format!("{e}\nNodes before the failing one have new certificates; the CAs did not change, so old and new ones work together. Fix the cause and run `terraform apply` again: it rotates every node once more."),
                );
                return failed(&exec.secrets());
            }
        }
        let rotate_key =
            prior.is_some_and(|p| encryption_key_rotation(&planned) > encryption_key_rotation(p));
        if rotate_key {
            if let Err(e) = exec.rotate_encryption_key().await {
                diags.root_error(
                    "rotating the secrets-encryption key failed",
                    format!("{e}\nIf the key was rotated (`k3s secrets-encrypt status` on a server lists a new active key), every Secret is still readable: servers not yet restarted keep the old key until they restart. Fix the cause and run `terraform apply` again: it rotates once more (one more key, harmless) and restarts every server."),
                );
                return failed(&exec.secrets());
            }
        }
        let fetched = exec.kubeconfig.lock().ok().and_then(|mut k| k.take());
        let kubeconfig = match (fetched, prior.and_then(|p| opt_str(&p.kubeconfig))) {
            (Some(k), _) => k,
            (None, Some(k))
                if prior.and_then(|p| opt_str(&p.api_endpoint)) == Some(spec.api_endpoint())
                    && prior.and_then(|p| opt_str(&p.cluster_name)).as_deref()
                        == Some(spec.cluster_name.as_str()) =>
            {
                k
            }
            _ => match exec.fetch_kubeconfig().await {
                Ok(k) => k,
                Err(e) => {
                    diags.root_error("reading the admin kubeconfig failed", e.to_string());
                    return failed(&exec.secrets());
                }
            },
        };
        if let Some(path) = planned.kubeconfig_file() {
            if let Err(e) = kubeconfig::write_private(&path, &kubeconfig) {
                diags.error_short(e.to_string(), AttributePath::new("kubeconfig_path"));
                return failed(&exec.secrets());
            }
        }
        // Versions planned as known stay as planned (Terraform requires it); unknown ones are
        // read back from the nodes.
        let versions = match &planned.node_versions {
            Value::Value(_) => planned.node_versions.clone(),
            _ => {
                let (live_after, _) = ops::read_live(&pool, &spec).await;
                live_maps(&spec, &live_after).1
            }
        };
        let mut s = planned;
        s.id = Value::Value(spec.cluster_name.clone());
        let secrets = exec.secrets();
        s.token = Value::Value(secrets.server_join_token());
        s.agent_token = Value::Value(secrets.agent_join_token());
        s.kubeconfig = Value::Value(kubeconfig);
        s.api_endpoint = Value::Value(spec.api_endpoint());
        // Hashes of what was written: the CA hash may have been learnt during the run.
        s.node_config_sha256 = to_map(state::wanted_config_sha256(&spec, &secrets));
        s.node_versions = versions;
        s.members = to_list(state::member_names(&spec));
        // Planned unknown when the spec was (create, or an unknown node list): known now.
        if matches!(s.left_cordoned, Value::Unknown) {
            s.left_cordoned = to_list(vec![]);
        }
        Some(s)
    }
}

#[async_trait]
impl Resource for ClusterResource {
    type State<'a> = ClusterState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 1,
            block: Block {
                version: 1,
                description: Description::plain("An HA k3s cluster with embedded etcd: the first server initialises etcd, the others join one at a time, agents join in parallel."),
                attributes: map! {
                    "id" => attr(AttributeType::String, Computed, "The cluster name."),
                    "cluster_name" => attr(AttributeType::String, Required, "Cluster name; names the kubeconfig's cluster, user and context."),
                    "servers" => attr(node_list(), Required, "Control-plane + etcd nodes, in join order (odd count). The first initialises the cluster."),
                    "agents" => attr(node_list(), OptionalComputed, "Worker nodes."),
                    "kubernetes_version" => attr(AttributeType::String, Required, "k3s channel (\"v1.33\") or release (\"v1.33.5+k3s1\")."),
                    "api_vip" => attr(AttributeType::String, Optional, "Virtual IP of the API server (served by kube-vip); added to the certificate and used in the kubeconfig."),
                    "tls_san" => attr(str_list(), OptionalComputed, "Extra names/addresses for the API certificate."),
                    "cluster_cidr" => attr(AttributeType::String, OptionalComputed, "Pod network (default 10.42.0.0/16)."),
                    "service_cidr" => attr(AttributeType::String, OptionalComputed, "Service network (default 10.43.0.0/16)."),
                    "install_mode" => attr(AttributeType::String, OptionalComputed, "\"online\" (official installer) or \"airgap\" (files uploaded from this machine)."),
                    "installer_url" => attr(AttributeType::String, OptionalComputed, "Installer script URL for online mode."),
                    "airgap_k3s_binary_path" => attr(AttributeType::String, Optional, "Air-gap: local path of the k3s binary."),
                    "airgap_images_path" => attr(AttributeType::String, Optional, "Air-gap: local path of the images tarball."),
                    "airgap_installer_path" => attr(AttributeType::String, Optional, "Air-gap: local path of the k3s install.sh."),
                    "etcd_snapshot_dir" => attr(AttributeType::String, Required, "Where servers write etcd snapshots (on the backup share)."),
                    "etcd_snapshot_schedule" => attr(AttributeType::String, OptionalComputed, "Cron schedule of etcd snapshots."),
                    "etcd_snapshot_retention" => attr(AttributeType::Number, OptionalComputed, "Snapshots kept per server."),
                    "server_taints" => attr(str_list(), OptionalComputed, "Taints on servers (default CriticalAddonsOnly=true:NoExecute keeps workloads on agents)."),
                    "node_labels" => attr(str_map(), OptionalComputed, "Labels on every node."),
                    "agent_parallelism" => attr(AttributeType::Number, OptionalComputed, "Agents joined at once (1-20, default 5)."),
                    "cis_profile" => attr(AttributeType::Bool, OptionalComputed, "The k3s CIS hardening settings (default true): protect-kernel-defaults (the hosts must set the kubelet's sysctls: ffe_host protect_kernel_defaults), Pod Security restricted by default, EventRateLimit, an API audit log, kubelet and API server flags from the k3s hardening guide. Changing it restarts every node, one at a time."),
                    "ready_timeout_seconds" => attr(AttributeType::Number, OptionalComputed, "How long a node may take to become Ready (default 300)."),
                    "token_rotation" => attr(AttributeType::Number, OptionalComputed, "Raise by one to rotate the server join token (`k3s token rotate`, then every server restarts with the new token, one at a time). Never lowered (default 0)."),
                    "encryption_key_rotation" => attr(AttributeType::Number, OptionalComputed, "Raise by one to rotate the key that encrypts Secrets in etcd (`k3s secrets-encrypt rotate-keys` on a live server, wait until every Secret is re-encrypted, then every server restarts one at a time to load the new key). Never lowered (default 0)."),
                    "certificate_rotation" => attr(AttributeType::Number, OptionalComputed, "Raise by one to rotate every node's k3s certificates (`k3s certificate rotate`: servers one at a time, then agents in batches; the admin kubeconfig is read again). Never lowered (default 0)."),
                    "restore_from_snapshot" => attr(AttributeType::String, Optional, "File name of an etcd snapshot on the backup share (under etcd_snapshot_dir/<server>/). Set to a name not restored before: the apply restores it with k3s's cluster-reset sequence onto the servers listed (new hosts are installed first), then converges the rest. Everything written to the cluster after the snapshot is lost. Clearing it changes nothing on the hosts."),
                    "kubeconfig_path" => attr(AttributeType::String, Optional, "Local file the admin kubeconfig is written to (mode 0600)."),
                    "token" => secret(AttributeType::String, Computed, "Server join token, in k3s's secure form K10<cluster CA sha256>::server:<secret> (joining nodes verify the cluster CA with it)."),
                    "agent_token" => secret(AttributeType::String, Computed, "Agent join token (K10<cluster CA sha256>::node:<secret>): joins agents only, never servers."),
                    "kubeconfig" => secret(AttributeType::String, Computed, "Admin kubeconfig, server = api_endpoint."),
                    "api_endpoint" => attr(AttributeType::String, Computed, "https://<api_vip or first server>:6443"),
                    "node_config_sha256" => attr(str_map(), Computed, "sha256 of each node's k3s config without its join lines (`server`, `cluster-init`) and with the token reduced to its secret (\"absent\" when k3s is not running there). How a node joined is chosen at apply time and is not drift, except a join line naming an address that is no server: then \" (joins through ADDR, which is no server)\" follows the hash, and the apply points the line at a live server."),
                    "node_versions" => attr(str_map(), Computed, "k3s version installed on each node."),
                    "members" => attr(str_list(), Computed, "Nodes that are Ready members of the cluster."),
                    "left_cordoned" => attr(str_list(), Computed, "Nodes an interrupted roll-out cordoned and could not uncordon (they carry the label ffe.io/cordoned-by-apply); the next apply uncordons them. Empty normally.")
                },
                ..Default::default()
            },
        })
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, c: Self::State<'a>) -> Option<()> {
        if let Value::Value(v) = &c.kubernetes_version {
            if let Err(e) = VersionSpec::parse(v) {
                diags.error_short(e, AttributePath::new("kubernetes_version"));
            }
        }
        if let Value::Value(p) = &c.agent_parallelism {
            if !(1..=20).contains(p) {
                diags.error_short(
                    "agent_parallelism must be between 1 and 20",
                    AttributePath::new("agent_parallelism"),
                );
            }
        }
        if let Value::Value(m) = &c.install_mode {
            if m == "airgap" {
                for (v, name) in [
                    (&c.airgap_k3s_binary_path, "airgap_k3s_binary_path"),
                    (&c.airgap_installer_path, "airgap_installer_path"),
                ] {
                    if matches!(v, Value::Null) {
                        diags.error_short(
                            format!("install_mode = \"airgap\" needs {name}"),
                            AttributePath::new(name),
                        );
                    }
                }
            } else if m != "online" {
                diags.error_short(
                    "install_mode must be \"online\" or \"airgap\"",
                    AttributePath::new("install_mode"),
                );
            }
        }
        if let Value::Value(name) = &c.restore_from_snapshot {
            if !restore::valid_snapshot_name(name) {
                diags.error_short(
                    format!("restore_from_snapshot = {name:?} must be a snapshot's file name as it lies on the backup share (letters, digits, '.', '_', '-'; no path), e.g. \"etcd-snapshot-m0-1764806400\". List them with `ffe-ha etcd snapshots`"),
                    AttributePath::new("restore_from_snapshot"),
                );
            }
        }
        if !nodes_unknown(&c.servers) && !nodes_unknown(&c.agents) {
            let mut probe = c.clone();
            probe.fill_defaults();
            if let Ok(spec) = probe.spec() {
                if let Err(e) = planner::check_spec(&spec) {
                    diags.error_short(e.to_string(), AttributePath::new("servers"));
                }
            }
        }
        if diags.errors.is_empty() {
            Some(())
        } else {
            None
        }
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        mut state: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let pool = self.ctx.pool(diags)?;
        let spec = spec_or_diag(&state, diags)?;
        let (live, warnings) = ops::read_live(&pool, &spec).await;
        for w in warnings {
            diags.root_warning("k3s cluster: a node could not be read", w);
        }
        for w in ops::cert_warnings(&live) {
            diags.root_warning("k3s cluster: a certificate expires soon", w);
        }
        let (shas, versions, members, left_cordoned) = live_maps(&spec, &live);
        state.node_config_sha256 = shas;
        state.node_versions = versions;
        state.members = members;
        state.left_cordoned = left_cordoned;
        Some((state, private))
    }

    async fn plan_create<'a>(
        &self,
        diags: &mut Diagnostics,
        proposed: Self::State<'a>,
        _config: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let mut s = proposed;
        s.fill_defaults();
        if !matches!(s.restore_from_snapshot, Value::Null) {
            diags.error_short(
                "restore_from_snapshot: a cluster this Terraform state does not hold cannot be restored. The snapshot is encrypted with the server token of the cluster that took it, and only that cluster's state holds it: apply with that state (or, without Terraform, `ffe-ha etcd restore` on hosts that still run the cluster). Remove restore_from_snapshot to create a new cluster",
                AttributePath::new("restore_from_snapshot"),
            );
            return None;
        }
        if s.spec_known() {
            let spec = spec_or_diag(&s, diags)?;
            if let Err(e) = planner::check_spec(&spec) {
                diags.error_short(e.to_string(), AttributePath::new("servers"));
                return None;
            }
            s.api_endpoint = Value::Value(spec.api_endpoint());
            s.members = to_list(state::member_names(&spec));
            s.left_cordoned = to_list(vec![]);
        } else {
            s.api_endpoint = Value::Unknown;
            s.members = Value::Unknown;
            s.left_cordoned = Value::Unknown;
        }
        s.id = Value::Unknown;
        s.token = Value::Unknown;
        s.agent_token = Value::Unknown;
        s.kubeconfig = Value::Unknown;
        s.node_config_sha256 = Value::Unknown;
        s.node_versions = Value::Unknown;
        Some((s, ValueEmpty::default()))
    }

    async fn plan_update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: Self::State<'a>,
        proposed: Self::State<'a>,
        _config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>, Vec<AttributePath>)> {
        let mut s = proposed;
        s.fill_defaults();
        if !prior_secrets(&prior).is_complete() {
            // State from before agent tokens / the CA hash: the apply completes the secrets
            // (reading the CA hash from the first server), so both tokens may change.
            s.token = Value::Unknown;
            s.agent_token = Value::Unknown;
        }
        if !s.spec_known() {
            s.node_config_sha256 = Value::Unknown;
            s.node_versions = Value::Unknown;
            s.members = Value::Unknown;
            s.left_cordoned = Value::Unknown;
            s.api_endpoint = Value::Unknown;
            s.kubeconfig = Value::Unknown;
            return Some((s, private, vec![]));
        }
        let spec = spec_or_diag(&s, diags)?;
        let prior_spec = spec_or_diag(&prior, diags)?;
        let restoring = restore_wanted(&prior, &s);
        // Quorum rules: refuse before anything runs. A restore rebuilds etcd's membership from
        // one server, so the servers it lists are what the rules start from.
        let quorum_base = match &restoring {
            Some(_) => after_restore(&prior_spec, &spec),
            None => prior_spec.clone(),
        };
        if let Err(e) = planner::check_change(&quorum_base, &spec) {
            diags.error_short(e.to_string(), AttributePath::new("servers"));
            return None;
        }
        // Shown in the plan so the operator sees the roll-out before approving it.
        if let Some(name) = &restoring {
            diags.root_warning(
                "k3s cluster: etcd will be restored from a snapshot",
                format!("Snapshot {name}: k3s stops on every server; {first} restores the snapshot (`k3s server --cluster-reset --cluster-reset-restore-path=...`) and starts; then {others} move their etcd data aside (kept as {db}.before-restore-<time>) and join it one at a time. Servers not yet running k3s are installed first. The cluster returns to the snapshot's state: everything written to it after the snapshot is lost. Agents keep running.",
                    first = spec.servers.first().map(|n| n.name.as_str()).unwrap_or("-"),
                    others = if spec.servers.len() > 1 { spec.servers[1..].iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ") } else { "no other server".into() },
                    db = restore::DB_DIR),
            );
        } else if let Some(order) = planner::change_order(&prior_spec, &spec) {
            diags.root_warning("k3s cluster: the order this change takes", order);
        }
        let (was, wanted) = (rotation(&prior), rotation(&s));
        if wanted < was {
            diags.error_short(
                format!("token_rotation: {was} -> {wanted} goes back; a rotated token cannot be taken back. Keep {was} (or raise it by one to rotate again)"),
                AttributePath::new("token_rotation"),
            );
            return None;
        }
        let (certs_were, certs_wanted) = (certificate_rotation(&prior), certificate_rotation(&s));
        if certs_wanted < certs_were {
            diags.error_short(
                format!("certificate_rotation: {certs_were} -> {certs_wanted} goes back; keep {certs_were} (or raise it by one to rotate again)"),
                AttributePath::new("certificate_rotation"),
            );
            return None;
        }
        let (keys_were, keys_wanted) =
            (encryption_key_rotation(&prior), encryption_key_rotation(&s));
        if keys_wanted < keys_were {
            diags.error_short(
                format!("encryption_key_rotation: {keys_were} -> {keys_wanted} goes back; a rotated key cannot be taken back. Keep {keys_were} (or raise it by one to rotate again)"),
                AttributePath::new("encryption_key_rotation"),
            );
            return None;
        }
        if keys_wanted > keys_were {
            if restoring.is_some() {
                diags.error_short(
                    "encryption_key_rotation and restore_from_snapshot change in the same apply: restore first, then raise encryption_key_rotation in the next apply",
                    AttributePath::new("encryption_key_rotation"),
                );
                return None;
            }
            diags.root_warning(
                "k3s cluster: the secrets-encryption key will be rotated",
                "`k3s secrets-encrypt rotate-keys` on a live server; k3s re-encrypts every Secret with the new key (about 5 per second); then every server restarts, one at a time, each only while the others are healthy.",
            );
        }
        let rotating_certs = certs_wanted > certs_were;
        if rotating_certs {
            diags.root_warning(
                "k3s cluster: every node's certificates will be rotated",
                "`k3s certificate rotate` with k3s stopped, then started: servers one at a time (each only while the others serve), then agents in batches; containers keep running. The certificate authorities stay. The admin kubeconfig gets a new client certificate: copies of the old one keep working until they expire.",
            );
        }
        let rotating = wanted > was;
        if rotating && restoring.is_some() {
            diags.error_short(
                "token_rotation and restore_from_snapshot change in the same apply: restore first (the snapshot needs the token it was taken under), then raise token_rotation in the next apply",
                AttributePath::new("token_rotation"),
            );
            return None;
        }
        if rotating {
            diags.root_warning(
                "k3s cluster: the server token will be rotated",
                "`k3s token rotate` on a live server, then every server restarts with the new token, one at a time, each only while the others are healthy. etcd snapshots taken before the rotation can only be restored with the old token: keep the previous state version (it holds the old token) as long as you keep those snapshots.",
            );
        }
        let secrets = prior_secrets(&prior);
        if secrets.is_complete() {
            s.node_config_sha256 = to_map(state::wanted_config_sha256(&spec, &secrets));
        } else {
            // Incomplete secrets (see above): the node configs are rewritten too.
            s.node_config_sha256 = Value::Unknown;
        }
        s.members = to_list(state::member_names(&spec));
        // State from before this attribute holds null until a refresh reads it: a plan without
        // refresh must not turn that into a change.
        s.left_cordoned = match &prior.left_cordoned {
            Value::Null => Value::Null,
            _ => to_list(vec![]),
        };
        s.api_endpoint = Value::Value(spec.api_endpoint());
        let prior_versions = to_btree(&prior.node_versions);
        let versions_ok = spec.all_nodes().all(|(n, _)| {
            prior_versions
                .get(&n.name)
                .is_some_and(|v| spec.version.matches(v))
        });
        // New hosts of a restore install the channel's current release, whatever was recorded.
        s.node_versions = if versions_ok && restoring.is_none() {
            to_map(spec.all_nodes().map(|(n, _)| {
                (
                    n.name.clone(),
                    prior_versions.get(&n.name).cloned().unwrap_or_default(),
                )
            }))
        } else {
            Value::Unknown
        };
        // A kubeconfig file deleted locally is written again by the next apply; a first server
        // that must be installed again hands out a new one.
        let file_missing = s.kubeconfig_file().is_some_and(|p| !p.exists());
        let first_absent = spec.servers.first().is_some_and(|f| {
            to_btree(&prior.node_config_sha256)
                .get(&f.name)
                .map(String::as_str)
                == Some(state::ABSENT)
        });
        // A new host as the first server hands out its own admin client certificate.
        let first_moved = spec.servers.first().map(|f| (&f.name, &f.address))
            != prior_spec.servers.first().map(|f| (&f.name, &f.address));
        if rotating {
            // A new server secret is minted at apply: every server's config changes.
            s.token = Value::Unknown;
            s.node_config_sha256 = Value::Unknown;
        }
        if spec.api_endpoint() != opt_str(&prior.api_endpoint).unwrap_or_default()
            || rotating_certs
            || spec.cluster_name != opt_str(&prior.cluster_name).unwrap_or_default()
            || file_missing
            || first_absent
            || first_moved
        {
            s.kubeconfig = Value::Unknown;
        }
        Some((s, private, vec![]))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<Self::PrivateState<'a>> {
        Some(private)
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned: Self::State<'a>,
        _config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        self.apply(diags, None, planned).await.map(|s| (s, private))
    }

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: Self::State<'a>,
        planned: Self::State<'a>,
        _config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        self.apply(diags, Some(&prior), planned)
            .await
            .map(|s| (s, private))
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        state: Self::State<'a>,
        _private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<()> {
        let pool = self.ctx.pool(diags)?;
        let spec = spec_or_diag(&state, diags)?;
        let exec = Executor::new(&pool, &spec, prior_secrets(&state));
        let result = exec.destroy().await;
        for w in exec.warnings.lock().map(|w| w.clone()).unwrap_or_default() {
            diags.root_warning("k3s cluster", w);
        }
        if let Err(e) = result {
            diags.root_error(
                "uninstalling k3s failed",
                format!("{e}\nFix the cause and run `terraform destroy` again."),
            );
            return None;
        }
        if let Some(path) = state.kubeconfig_file() {
            let _ = std::fs::remove_file(path);
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_port_reaches_ssh() {
        let list: NodeList = Value::Value(vec![
            Value::Value(NodeObj {
                name: Value::Value("m0".into()),
                address: Value::Value("10.210.1.10".into()),
                ssh_port: Value::Value(2222),
            }),
            Value::Value(NodeObj {
                name: Value::Value("m1".into()),
                address: Value::Value("10.210.1.11".into()),
                ssh_port: Value::Null,
            }),
        ]);
        let n = nodes(&list);
        assert_eq!(n[0].target().port, Some(2222));
        assert_eq!(n[1].target().port, None, "null: the provider's ssh_port");
        assert!(bad_port(&list).is_ok());
        let bad: NodeList = Value::Value(vec![Value::Value(NodeObj {
            name: Value::Value("m0".into()),
            address: Value::Value("10.210.1.10".into()),
            ssh_port: Value::Value(70000),
        })]);
        assert!(bad_port(&bad).unwrap_err().contains("ssh_port 70000"));
    }
}

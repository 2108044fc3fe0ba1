//! `ffe-ha drill`: a controlled failure of one component while the user-facing endpoints are
//! probed every `probe_interval` (≤ 250 ms), the restoration the component needs, and the
//! downtime and recovery time measured against the seed's RTO table.
//!
//! A data service fails the way Kubernetes fails it: its pod is deleted through the API
//! (graceful, as `kubectl delete pod`) and its StatefulSet creates it again. A node fails the way
//! k3s stops one: `k3s-killall.sh` on it (k3s and every container it runs, killed), and after
//! `down_for` k3s is started again. A drill refuses to start, touching nothing, when `verify`
//! finds the cluster unhealthy, when losing the target would leave no replica or no quorum, or
//! when the drill could not restore what it breaks (a Vault member comes back sealed: no unseal
//! keys, no drill).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ffe_core::kube::KubeApi;
use ffe_core::ssh::SshPool;
use ffe_core::vault::Member;
use futures::future::join_all;
use serde::Serialize;

use crate::check::{Check, ExitCode, Status};
use crate::inventory::{Inventory, Role};
use crate::verify::VerifyOptions;

/// The longest probe interval the drill accepts (issue: "probe interval ≤ 250 ms").
pub const MAX_PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// Seed, "Recovery Time Objective (RTO)": "Master node down: < 10 minutes (auto-failover)". The
/// seed lists node failures only; a data service's failover is the auto-failover it names.
pub const SEED_RTO_AUTO_FAILOVER: Duration = Duration::from_secs(600);
const SEED_RTO_AUTO_FAILOVER_LINE: &str = "Master node down: < 10 minutes (auto-failover)";
/// Seed, the same table: "Worker node down: < 2 minutes (pod rescheduling)".
pub const SEED_RTO_WORKER: Duration = Duration::from_secs(120);
const SEED_RTO_WORKER_LINE: &str = "Worker node down: < 2 minutes (pod rescheduling)";
/// How often the component's own health is read while waiting for it to recover.
const HEALTH_POLL: Duration = Duration::from_millis(100);
/// Probes kept running after recovery, so a relapse shows in the report.
const TAIL: Duration = Duration::from_secs(1);
/// Probes before the failure: the drilled endpoint must answer in all of them.
const BASELINE: Duration = Duration::from_secs(1);

/// What a drill fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DrillKind {
    /// The Patroni leader's pod: a replica takes over, the pod comes back as a replica.
    PostgresPrimary,
    /// The active Vault member's pod: a standby takes over; the pod comes back sealed and the
    /// drill unseals it.
    VaultLeader,
    /// A master: k3s and its pods stopped (`k3s-killall.sh`), started again after `down_for`.
    Server,
    /// A worker, likewise (`k3s-agent`).
    Worker,
}

impl DrillKind {
    pub fn name(self) -> &'static str {
        match self {
            DrillKind::PostgresPrimary => "postgres-primary",
            DrillKind::VaultLeader => "vault-leader",
            DrillKind::Server => "server",
            DrillKind::Worker => "worker",
        }
    }

    /// The endpoint whose downtime the drill is about (`None`: every endpoint, a node drill).
    fn endpoint(self) -> Option<&'static str> {
        match self {
            DrillKind::PostgresPrimary => Some("postgres"),
            DrillKind::VaultLeader => Some("vault"),
            DrillKind::Server | DrillKind::Worker => None,
        }
    }

    /// The seed's RTO line this drill is judged against.
    fn rto(self) -> Rto {
        let (limit, seed) = match self {
            DrillKind::Worker => (SEED_RTO_WORKER, SEED_RTO_WORKER_LINE),
            _ => (SEED_RTO_AUTO_FAILOVER, SEED_RTO_AUTO_FAILOVER_LINE),
        };
        Rto {
            limit_s: limit.as_secs_f64(),
            seed,
        }
    }
}

/// Where k3s's install.sh writes `k3s-killall.sh` (`${BIN_DIR}/k3s-killall.sh`; BIN_DIR is
/// /usr/local/bin, or /opt/bin where root cannot write /usr/local/bin: upstream/k3s/
/// install-paths.txt), in the order the drill looks. It stops the k3s units and kills every
/// container k3s started on the node.
pub const K3S_KILLALL_CANDIDATES: &[&str] =
    &["/usr/local/bin/k3s-killall.sh", "/opt/bin/k3s-killall.sh"];

/// How a drill runs.
pub struct DrillOptions {
    pub verify: VerifyOptions,
    /// Every endpoint is probed this often (at most [`MAX_PROBE_INTERVAL`]).
    pub probe_interval: Duration,
    /// Give up waiting for recovery after this long (the seed RTO by default).
    pub recovery_timeout: Duration,
    /// Vault's unseal keys (base64 shares): the deleted member comes back sealed. Never printed.
    pub vault_unseal_keys: Option<Vec<String>>,
    /// Node drills: the node to stop (default: the inventory's last node of that role).
    pub node: Option<String>,
    /// Node drills: how long the node stays down before k3s is started again.
    pub down_for: Duration,
    /// Told each event as it happens (the CLI's progress line).
    pub notify: Option<Notify>,
}

/// One probe of one endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the drill started probing (when the probe was sent).
    pub at_s: f64,
    pub ok: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// A run of failed probes: from the first failed one to the first good one after it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outage {
    /// Seconds since the failure was made (negative: before it).
    pub from_s: f64,
    /// `None`: still failing when the drill stopped.
    pub to_s: Option<f64>,
    pub first_error: String,
}

/// What the probes of one endpoint saw.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointReport {
    pub name: &'static str,
    pub target: String,
    pub probes: usize,
    pub failed: usize,
    pub outages: Vec<Outage>,
    /// Sum of the outages (an open one counts to the last probe).
    pub downtime_s: f64,
}

/// Something that happened, in seconds since the failure was made.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub at_s: f64,
    pub what: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The component recovered within the seed's RTO.
    Recovered,
    /// It recovered, but later than the seed's RTO.
    RecoveredLate,
    /// Not recovered within the timeout (or the failure could not be made).
    NotRecovered,
    /// Nothing was touched: the cluster is not healthy or the drill would break quorum.
    Refused,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rto {
    pub limit_s: f64,
    pub seed: &'static str,
}

/// The drill's result.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub kind: DrillKind,
    pub outcome: Outcome,
    /// Why it was refused or did not recover.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// What was failed: `pod NS/NAME (...)` or `node NAME (...)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// When the failure was made (Unix time, milliseconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub injected_at_unix_ms: Option<u64>,
    pub probe_interval_ms: u64,
    pub events: Vec<Event>,
    pub endpoints: Vec<EndpointReport>,
    /// The drilled endpoint answering again, seconds after the failure (0: it never stopped).
    pub service_restored_s: Option<f64>,
    /// Back to full redundancy (every member healthy again), seconds after the failure.
    pub recovered_s: Option<f64>,
    pub rto: Rto,
    /// The precheck's rows that were not a pass.
    pub precheck: Vec<Check>,
}

impl DrillReport {
    pub fn exit_code(&self) -> ExitCode {
        match self.outcome {
            Outcome::Recovered => ExitCode::Ok,
            Outcome::Refused => ExitCode::Refused,
            Outcome::RecoveredLate | Outcome::NotRecovered => ExitCode::Failed,
        }
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// One endpoint's probe: `Ok` when it answers as it should.
#[derive(Clone)]
enum Probe {
    /// `/readyz` through the kubeconfig's server (the API VIP).
    Api(KubeApi),
    /// The primary endpoint accepts sessions (a StartupMessage, no credentials).
    Postgres(String),
    /// Some member active (clients of the active Service get an answer).
    Vault(Vec<Member>),
}

impl Probe {
    async fn once(&self, limit: Duration) -> Result<(), String> {
        match self {
            Probe::Api(api) => match tokio::time::timeout(limit, api.get_raw("/readyz")).await {
                Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
                Ok(Err(e)) => Err(e.to_string()),
                Ok(Ok(a)) if a.status == 200 => Ok(()),
                Ok(Ok(a)) => Err(format!("HTTP {}", a.status)),
            },
            Probe::Postgres(addr) => ffe_core::pg::accepts_connections(addr, limit).await,
            Probe::Vault(members) => {
                let answers = join_all(
                    members
                        .iter()
                        .map(|m| tokio::time::timeout(limit, m.health())),
                )
                .await;
                let active = answers
                    .iter()
                    .any(|a| matches!(a, Ok(Ok(h)) if h.initialized && !h.sealed && !h.standby));
                if active {
                    Ok(())
                } else {
                    Err("no member is active".into())
                }
            }
        }
    }
}

struct Prober {
    name: &'static str,
    target: String,
    samples: Arc<Mutex<Vec<Sample>>>,
}

/// Probe every endpoint every `interval` until `stop`; samples are timed from `t0`.
fn start_probes(
    probes: Vec<(&'static str, String, Probe)>,
    interval: Duration,
    t0: Instant,
    stop: Arc<AtomicBool>,
) -> (Vec<Prober>, Vec<tokio::task::JoinHandle<()>>) {
    let mut probers = vec![];
    let mut tasks = vec![];
    for (name, target, probe) in probes {
        let samples = Arc::new(Mutex::new(Vec::new()));
        probers.push(Prober {
            name,
            target,
            samples: samples.clone(),
        });
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let at = t0.elapsed();
                let r = probe.once(interval).await;
                let s = Sample {
                    at_s: at.as_secs_f64(),
                    ok: r.is_ok(),
                    detail: r.err().unwrap_or_default(),
                };
                samples.lock().unwrap_or_else(|p| p.into_inner()).push(s);
            }
        }));
    }
    (probers, tasks)
}

fn samples_of(p: &Prober) -> Vec<Sample> {
    p.samples.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The outages in `samples` (in probe order), with times shifted by `-inject_s`.
pub fn outages(samples: &[Sample], inject_s: f64) -> Vec<Outage> {
    let mut out: Vec<Outage> = vec![];
    let mut open: Option<Outage> = None;
    for s in samples {
        match (&mut open, s.ok) {
            (None, false) => {
                open = Some(Outage {
                    from_s: s.at_s - inject_s,
                    to_s: None,
                    first_error: s.detail.clone(),
                })
            }
            (Some(o), true) => {
                o.to_s = Some(s.at_s - inject_s);
                out.extend(open.take());
            }
            _ => {}
        }
    }
    out.extend(open);
    out
}

/// Sum of the outages; an open one counts to `last` (the last probe).
pub fn downtime(outages: &[Outage], last: f64) -> f64 {
    outages
        .iter()
        .map(|o| o.to_s.unwrap_or(last) - o.from_s)
        // fold from +0.0: an empty f64 sum is -0.0, printed "-0.00 s"
        .fold(0.0, |a, b| a + b)
}

fn endpoint_report(p: &Prober, inject_s: f64) -> EndpointReport {
    let samples = samples_of(p);
    let outages = outages(&samples, inject_s);
    let last = samples.last().map_or(0.0, |s| s.at_s - inject_s);
    EndpointReport {
        name: p.name,
        target: p.target.clone(),
        probes: samples.len(),
        failed: samples.iter().filter(|s| !s.ok).count(),
        downtime_s: downtime(&outages, last),
        outages,
    }
}

/// The rows of a `verify` run that forbid a drill: any failure or unevaluated check, except a
/// backup's age (a stale backup does not make a failover unsafe).
pub fn blocking(checks: &[Check]) -> Vec<&Check> {
    checks
        .iter()
        .filter(|c| matches!(c.status, Status::Fail | Status::Error) && c.id != "backups.fresh")
        .collect()
}

fn refused(
    kind: DrillKind,
    opts: &DrillOptions,
    reasons: Vec<String>,
    precheck: Vec<Check>,
) -> DrillReport {
    DrillReport {
        kind,
        outcome: Outcome::Refused,
        reasons,
        target: None,
        injected_at_unix_ms: None,
        probe_interval_ms: opts.probe_interval.as_millis() as u64,
        events: vec![],
        endpoints: vec![],
        service_restored_s: None,
        recovered_s: None,
        rto: kind.rto(),
        precheck,
    }
}

/// What the drill fails and how it tells the component is whole again.
enum Target {
    Postgres {
        namespace: String,
        pod: String,
        /// The pod's uid before the deletion: a new one means the StatefulSet replaced it.
        uid: String,
    },
    Vault {
        namespace: String,
        pod: String,
        index: usize,
        members: Vec<Member>,
        keys: Vec<String>,
        uid: String,
    },
    Node {
        node: crate::inventory::Node,
        /// `k3s` or `k3s-agent`.
        unit: &'static str,
        /// The node's `k3s-killall.sh` (one of [`K3S_KILLALL_CANDIDATES`]).
        killall: String,
        /// Vault's members and keys, when Vault runs: its pods on the node come back sealed.
        vault: Option<(Vec<Member>, Vec<String>)>,
    },
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Target::Postgres { namespace, pod, .. } => {
                format!("pod {namespace}/{pod} (the Patroni leader)")
            }
            Target::Vault {
                namespace,
                pod,
                members,
                index,
                ..
            } => format!(
                "pod {namespace}/{pod} (the active Vault member, {})",
                members[*index].address
            ),
            Target::Node { node, .. } => {
                format!(
                    "node {} ({}, {})",
                    node.name,
                    node.role.label(),
                    node.address
                )
            }
        }
    }
}

/// Choose the target from the live cluster and check that losing it is safe.
/// Failing the Postgres leader needs a replica to take over.
fn postgres_refusal(leader: &str, streaming_replicas: usize) -> Option<String> {
    (streaming_replicas == 0).then(|| {
        format!("no replica is streaming: failing the leader {leader} would be an outage, not a failover")
    })
}

/// Deleting the active Vault member needs a Raft quorum among the unsealed members left.
fn vault_refusal(unsealed: usize, members: usize) -> Option<String> {
    let quorum = members / 2 + 1;
    (unsealed < quorum + 1).then(|| {
        format!("{unsealed} of {members} members are unsealed: losing one leaves fewer than the {quorum} Raft needs to elect a leader")
    })
}

/// Stopping one node of `role` among `count`: etcd keeps a quorum of n/2+1 voting members (one
/// per master); the workloads need another worker.
fn node_refusal(role: Role, count: usize) -> Option<String> {
    if role == Role::Server {
        let (left, quorum) = (count.saturating_sub(1), count / 2 + 1);
        (left < quorum).then(|| {
            format!("{count} master(s): with one stopped, etcd has {left} of the {quorum} members it needs for a quorum; the API would stop")
        })
    } else {
        (count < 2).then(|| {
            "one worker: stopping it stops every workload; that is an outage, not a drill"
                .to_string()
        })
    }
}

async fn choose(
    kind: DrillKind,
    inv: &Inventory,
    api: &KubeApi,
    pool: &SshPool,
    opts: &DrillOptions,
    vault_ca: Option<&str>,
) -> Result<Target, Vec<String>> {
    match kind {
        DrillKind::PostgresPrimary => {
            let pg = inv.postgres.as_ref().ok_or_else(|| {
                vec!["the inventory has no postgres section: Postgres is not deployed".to_string()]
            })?;
            let (_, read) = crate::postgres::patroni_view(api, pool, inv, pg)
                .await
                .map_err(|e| vec![format!("Patroni could not be read: {e}")])?;
            let leader = read
                .members
                .iter()
                .find(|m| m.is_leader() && m.state == "running")
                .ok_or_else(|| vec!["Patroni reports no running leader".to_string()])?;
            let candidates = read
                .members
                .iter()
                .filter(|m| !m.is_leader() && (m.state == "streaming" || m.state == "running"))
                .count();
            if let Some(why) = postgres_refusal(&leader.name, candidates) {
                return Err(vec![why]);
            }
            let uid = pod_uid(api, &pg.namespace, &leader.name)
                .await
                .and_then(|u| u.ok_or_else(|| "no such pod".into()))
                .map_err(|e| vec![format!("pod {}/{}: {e}", pg.namespace, leader.name)])?;
            Ok(Target::Postgres {
                namespace: pg.namespace.clone(),
                pod: leader.name.clone(),
                uid,
            })
        }
        DrillKind::VaultLeader => {
            let v = inv.vault.as_ref().ok_or_else(|| {
                vec!["the inventory has no vault section: Vault is not deployed".to_string()]
            })?;
            let keys = opts
                .vault_unseal_keys
                .clone()
                .filter(|k| !k.is_empty())
                .ok_or_else(|| vec!["no unseal keys: the deleted member comes back sealed and the drill must unseal it. Run from the environment directory (terraform output vault_unseal_keys) or pass --vault-unseal-keys FILE".to_string()])?;
            let ca = vault_ca.ok_or_else(|| vec!["the Vault CA could not be read".to_string()])?;
            let members = Member::all(&v.member_addresses, ca).map_err(|e| vec![e.to_string()])?;
            let health: Vec<Option<ffe_core::vault::Health>> =
                vault_health(&members, CHOOSE_HEALTH_LIMIT)
                    .await
                    .into_iter()
                    .map(|(_, h)| h.ok())
                    .collect();
            let unsealed = health
                .iter()
                .filter(|h| h.as_ref().is_some_and(|h| h.initialized && !h.sealed))
                .count();
            if let Some(why) = vault_refusal(unsealed, members.len()) {
                return Err(vec![why]);
            }
            let index = health
                .iter()
                .position(|h| {
                    h.as_ref()
                        .is_some_and(|h| h.initialized && !h.sealed && !h.standby)
                })
                .ok_or_else(|| vec!["no Vault member is active".to_string()])?;
            check_keys(&members, &keys).await.map_err(|e| vec![e])?;
            let pod = v.member_pods[index].clone();
            let uid = pod_uid(api, &v.namespace, &pod)
                .await
                .and_then(|u| u.ok_or_else(|| "no such pod".into()))
                .map_err(|e| vec![format!("pod {}/{pod}: {e}", v.namespace)])?;
            Ok(Target::Vault {
                namespace: v.namespace.clone(),
                pod,
                index,
                members,
                keys,
                uid,
            })
        }
        DrillKind::Server | DrillKind::Worker => {
            let role = if kind == DrillKind::Server {
                Role::Server
            } else {
                Role::Agent
            };
            let of_role: Vec<&crate::inventory::Node> =
                inv.nodes.iter().filter(|n| n.role == role).collect();
            let node = match &opts.node {
                Some(name) => of_role
                    .iter()
                    .find(|n| &n.name == name)
                    .copied()
                    .ok_or_else(|| {
                        vec![format!(
                            "--node {name} is not a {} of the inventory ({})",
                            role.label(),
                            of_role
                                .iter()
                                .map(|n| n.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )]
                    })?,
                None => *of_role
                    .last()
                    .ok_or_else(|| vec![format!("the inventory has no {}", role.label())])?,
            };
            if let Some(why) = node_refusal(role, of_role.len()) {
                return Err(vec![why]);
            }
            let vault = match &inv.vault {
                None => None,
                Some(v) => {
                    let keys = opts.vault_unseal_keys.clone().filter(|k| !k.is_empty()).ok_or_else(|| {
                        vec!["no unseal keys: a Vault member on the stopped node comes back sealed and the drill must unseal it. Run from the environment directory (terraform output vault_unseal_keys) or pass --vault-unseal-keys FILE".to_string()]
                    })?;
                    let ca = vault_ca
                        .ok_or_else(|| vec!["the Vault CA could not be read".to_string()])?;
                    let members =
                        Member::all(&v.member_addresses, ca).map_err(|e| vec![e.to_string()])?;
                    check_keys(&members, &keys).await.map_err(|e| vec![e])?;
                    Some((members, keys))
                }
            };
            // The script must be there (k3s's install.sh puts it there); asking also opens the SSH
            // connection, so the failure is made without the connection's set-up delay.
            let probe = format!(
                "for p in {}; do if [ -x \"$p\" ]; then echo \"$p\"; exit 0; fi; done; exit 1",
                K3S_KILLALL_CANDIDATES.join(" ")
            );
            let killall = match pool
                .run_status_within(&node.target(), "find k3s-killall.sh", &probe, None, Duration::from_secs(10))
                .await
            {
                // Only a path we asked about is run as root later (not login noise or worse).
                Ok(o) if o.code == 0 && K3S_KILLALL_CANDIDATES.contains(&o.stdout.trim()) => {
                    o.stdout.trim().to_string()
                }
                Ok(_) => {
                    return Err(vec![format!(
                        "no k3s-killall.sh on {} ({}): k3s was not installed by its install.sh there, so the drill cannot stop it",
                        node.name,
                        K3S_KILLALL_CANDIDATES.join(", ")
                    )])
                }
                Err(e) => return Err(vec![format!("{} cannot be reached: {e}", node.name)]),
            };
            Ok(Target::Node {
                node: node.clone(),
                killall,
                unit: if role == Role::Server {
                    "k3s"
                } else {
                    "k3s-agent"
                },
                vault,
            })
        }
    }
}

/// The uid of pod `ns/name`; `None` when it does not exist (deleted, not yet recreated).
async fn pod_uid(api: &KubeApi, ns: &str, name: &str) -> Result<Option<String>, String> {
    let a = api
        .get_raw(&format!("/api/v1/namespaces/{ns}/pods/{name}"))
        .await
        .map_err(|e| e.to_string())?;
    match a.status {
        404 => Ok(None),
        200 => serde_json::from_str::<serde_json::Value>(&a.body)
            .ok()
            .and_then(|v| v["metadata"]["uid"].as_str().map(str::to_string))
            .map(Some)
            .ok_or_else(|| "the pod has no metadata.uid".into()),
        s => Err(format!(
            "HTTP {s}: {}",
            ffe_core::kube::status_message(&a.body)
        )),
    }
}

/// When the node's kubelet last renewed its Lease (`kube-node-lease`, every 10 s while it runs).
async fn lease_renewed(api: &KubeApi, node: &str) -> Result<SystemTime, String> {
    let body = api
        .get(&format!(
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}"
        ))
        .await
        .map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    let t = v["spec"]["renewTime"]
        .as_str()
        .ok_or("the Lease has no spec.renewTime")?;
    chrono::DateTime::parse_from_rfc3339(t)
        .map(SystemTime::from)
        .map_err(|e| format!("renewTime {t:?}: {e}"))
}

/// Where recovery stands at one read.
enum Progress {
    /// The failure is not visible yet (the pod is still terminating).
    Intact,
    Disrupted(String),
    Recovered(String),
}

/// Read the component once. `disrupted`: a failure was already seen (so "healthy" now means
/// "recovered", not "not failed yet").
#[allow(clippy::too_many_arguments)]
async fn read_progress(
    t: &Target,
    inv: &Inventory,
    api: &KubeApi,
    pool: &SshPool,
    etcd_endpoint: &crate::verify::Endpoint,
    disrupted: bool,
    tl: &mut Timeline<'_>,
) -> Progress {
    match t {
        Target::Postgres { pod, .. } => {
            let Some(pg) = &inv.postgres else {
                return Progress::Disrupted("no postgres section".into());
            };
            match crate::postgres::patroni_view(api, pool, inv, pg).await {
                Err(e) => Progress::Disrupted(e),
                Ok((asked, read)) => {
                    let leader = read
                        .members
                        .iter()
                        .find(|m| m.is_leader() && m.state == "running");
                    let verdicts = crate::postgres::judge_patroni(pg, &asked, &read);
                    let bad: Vec<String> = verdicts
                        .iter()
                        .filter(|c| c.status != Status::Pass)
                        .map(|c| c.evidence.clone())
                        .collect();
                    let still_leader = leader.is_some_and(|l| &l.name == pod);
                    if !disrupted && still_leader && bad.is_empty() {
                        // The pod is still terminating: nothing failed yet.
                        return Progress::Intact;
                    }
                    if let Some(l) = leader.filter(|l| &l.name != pod) {
                        tl.push(format!("Patroni leader is now {}", l.name));
                    }
                    // Whole again: every verdict passes and the deleted member is back in the list.
                    if bad.is_empty() && read.members.iter().any(|m| &m.name == pod) {
                        Progress::Recovered(
                            verdicts
                                .iter()
                                .map(|c| c.evidence.as_str())
                                .collect::<Vec<_>>()
                                .join("; "),
                        )
                    } else {
                        Progress::Disrupted(bad.join("; "))
                    }
                }
            }
        }
        Target::Vault {
            index,
            members,
            keys,
            ..
        } => {
            let health = vault_health(members, POLL_HEALTH_LIMIT).await;
            let target_active =
                matches!(&health[*index].1, Ok(h) if h.initialized && !h.sealed && !h.standby);
            if !disrupted && target_active {
                return Progress::Intact;
            }
            if let Some(why) = unseal_returned(members, &health, keys, tl).await {
                return Progress::Disrupted(why);
            }
            let checks = crate::verify::judge_vault(&health);
            let bad: Vec<String> = checks
                .iter()
                .filter(|c| c.status != Status::Pass)
                .map(|c| format!("{}: {}", c.subject, c.evidence))
                .collect();
            if bad.is_empty() {
                Progress::Recovered(
                    checks
                        .iter()
                        .filter(|c| c.subject == "cluster")
                        .map(|c| c.evidence.clone())
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            } else {
                Progress::Disrupted(bad.join("; "))
            }
        }
        Target::Node { node, vault, .. } => {
            let _ = disrupted;
            let mut bad: Vec<String> = vec![];
            if let Some((members, keys)) = vault {
                let health = vault_health(members, POLL_HEALTH_LIMIT).await;
                if let Some(why) = unseal_returned(members, &health, keys, tl).await {
                    bad.push(why);
                } else {
                    bad.extend(failing(&crate::verify::judge_vault(&health)));
                }
            }
            let (kube, etcd, pg) = futures::join!(
                crate::verify::kubernetes(api, inv),
                crate::verify::etcd(pool, inv, etcd_endpoint),
                async {
                    match &inv.postgres {
                        Some(pg) => crate::postgres::postgres(api, pool, inv, pg).await,
                        None => vec![],
                    }
                }
            );
            bad.extend(failing(&kube));
            bad.extend(failing(&etcd));
            bad.extend(failing(&pg));
            // Patroni's list may still show the node's members as they were before the stop
            // (until their key expires): their own Patroni must answer.
            if let Some(pgs) = &inv.postgres {
                match crate::postgres::patroni_back_on(api, pool, inv, pgs, &node.name).await {
                    Ok(None) => {}
                    Ok(Some(why)) => bad.push(format!("Patroni on {} not back: {why}", node.name)),
                    Err(e) => bad.push(e),
                }
            }
            if bad.is_empty() {
                Progress::Recovered(format!(
                    "{} Ready, etcd, Postgres and Vault whole again",
                    node.name
                ))
            } else {
                Progress::Disrupted(bad.join("; "))
            }
        }
    }
}

/// Rows that are a failure or not evaluated (a warning, such as Postgres without TLS, is whole).
fn failing(checks: &[Check]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| matches!(c.status, Status::Fail | Status::Error))
        .map(|c| format!("{} {}: {}", c.id, c.subject, c.evidence))
        .collect()
}

/// Each member's `sys/health` within `limit`.
async fn vault_health(
    members: &[Member],
    limit: Duration,
) -> Vec<(String, Result<ffe_core::vault::Health, String>)> {
    join_all(members.iter().map(|m| async move {
        (
            m.address.clone(),
            tokio::time::timeout(limit, m.health())
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {} s", limit.as_secs()))),
        )
    }))
    .await
}

/// Choosing the target: a slow member must not count as sealed (the drill would be refused).
const CHOOSE_HEALTH_LIMIT: Duration = Duration::from_secs(3);
/// Polling during recovery: a reading per probe round.
const POLL_HEALTH_LIMIT: Duration = Duration::from_secs(2);

/// Unseal every member that answers sealed (a restarted pod); `Some(what)` while one was.
async fn unseal_returned(
    members: &[Member],
    health: &[(String, Result<ffe_core::vault::Health, String>)],
    keys: &[String],
    tl: &mut Timeline<'_>,
) -> Option<String> {
    let sealed: Vec<&Member> = members
        .iter()
        .zip(health)
        .filter(|(_, (_, h))| matches!(h, Ok(h) if h.initialized && h.sealed))
        .map(|(m, _)| m)
        .collect();
    if sealed.is_empty() {
        return None;
    }
    let mut outcome = vec![];
    for m in sealed {
        tl.push(format!("{} is back, sealed: unsealing it", m.address));
        match ffe_core::vault::init::unseal_member(m, keys, Duration::from_secs(60)).await {
            Ok(()) => {
                tl.push(format!("{} unsealed", m.address));
                outcome.push(format!("{} unsealed; waiting for it to rejoin", m.address));
            }
            Err(e) => outcome.push(format!("unsealing {} failed: {e}", m.address)),
        }
    }
    Some(outcome.join("; "))
}

/// Called with each event as it happens (seconds since the failure, what): the CLI's progress
/// line. Never given a secret.
pub type Notify = Box<dyn Fn(f64, &str) + Send + Sync>;

/// The drill's events, told to `notify` as they happen.
struct Timeline<'a> {
    events: Vec<Event>,
    since: Instant,
    notify: Option<&'a Notify>,
}

impl Timeline<'_> {
    /// Record `what` now, once (a repeated reading is not a new event).
    fn push(&mut self, what: String) {
        let at = self.since.elapsed().as_secs_f64();
        self.push_at(at, what);
    }

    fn push_at(&mut self, at_s: f64, what: String) {
        if self.events.iter().any(|e| e.what == what) {
            return;
        }
        if let Some(n) = self.notify {
            n(at_s, &what);
        }
        self.events.push(Event { at_s, what });
    }
}

/// Make the failure: delete the pod; or stop the node's k3s and its containers, wait `down_for`
/// (probes running), start k3s again. `Err`: what could not be done (and what to do).
async fn inject(
    target: &Target,
    api: &KubeApi,
    pool: &SshPool,
    opts: &DrillOptions,
    tl: &mut Timeline<'_>,
) -> Result<(), String> {
    match target {
        Target::Postgres { namespace, pod, .. } | Target::Vault { namespace, pod, .. } => {
            tracing::info!(%namespace, %pod, "drill: deleting the pod");
            api.delete_pod(namespace, pod)
                .await
                .map_err(|e| format!("the pod could not be deleted: {e}"))?;
            tl.push(format!("pod {namespace}/{pod} deleted"));
            Ok(())
        }
        Target::Node {
            node,
            unit,
            killall,
            ..
        } => {
            let t = node.target();
            tracing::info!(node = %node.name, "drill: stopping k3s and its containers");
            let stop = pool
                .run_status_within(
                    &t,
                    "stop k3s (drill)",
                    killall,
                    None,
                    Duration::from_secs(120),
                )
                .await;
            match &stop {
                // Not sent (no SSH): nothing was stopped.
                Err(e) if e.is_unreachable() => {
                    return Err(format!("{killall} on {}: {e}", node.name))
                }
                Ok(out) if out.code == 0 => tl.push(format!(
                    "{killall} on {}: k3s and its containers stopped",
                    node.name
                )),
                // Sent, but it failed part-way (its exit code is its last command's): k3s may
                // be stopped all the same, so it is started again whatever happens next.
                Ok(out) => tl.push(format!(
                    "{killall} on {} exited {}: {}",
                    node.name,
                    out.code,
                    out.stderr.trim().lines().last().unwrap_or("")
                )),
                Err(e) => tl.push(format!("{killall} on {}: {e}", node.name)),
            }
            let interrupted = tokio::select! {
                _ = tokio::time::sleep(opts.down_for) => false,
                _ = interrupted() => true,
            };
            if interrupted {
                tl.push("interrupted: starting k3s again now".into());
            }
            let start = format!("systemctl start {unit}");
            let out = pool
                .run_status_within(
                    &t,
                    "start k3s (drill)",
                    &start,
                    None,
                    Duration::from_secs(120),
                )
                .await
                .map_err(|e| {
                    format!(
                        "`{start}` on {}: {e}. THE NODE STAYS DOWN: run `{start}` on it",
                        node.name
                    )
                })?;
            if out.code != 0 {
                return Err(format!(
                    "`{start}` on {} exited {}: {}. THE NODE STAYS DOWN: `journalctl -u {unit}` on it, then `{start}`",
                    node.name,
                    out.code,
                    out.stderr.trim()
                ));
            }
            tl.push(format!("{start} on {}", node.name));
            if interrupted {
                return Err(format!(
                    "interrupted during --down-for: k3s was started again on {}, recovery was not awaited (`ffe-ha verify`; a Vault member that restarted may be sealed: `terraform apply` unseals it)",
                    node.name
                ));
            }
            Ok(())
        }
    }
}

/// Ctrl-C or SIGTERM: the drill stops waiting and restores what it broke.
pub(crate) async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Every share decodes to a Shamir share (33 bytes: 32 and the x coordinate) and there are at
/// least the threshold of them (`sys/seal-status` of a member): checked before anything is
/// touched, so a drill never breaks what it cannot unseal (PGP-encrypted shares are refused).
async fn check_keys(members: &[Member], keys: &[String]) -> Result<(), String> {
    check_share_format(keys)?;
    for m in members {
        if let Ok(Ok(st)) = tokio::time::timeout(Duration::from_secs(3), m.seal_status()).await {
            if (keys.len() as u64) < st.threshold {
                return Err(format!(
                    "{} unseal key shares given, {} needed: the drill could not unseal a member that restarts",
                    keys.len(),
                    st.threshold
                ));
            }
            return Ok(());
        }
    }
    Err("no Vault member told its unseal threshold (sys/seal-status)".into())
}

/// Each share decodes to 33 bytes (a Shamir share of a 32-byte key, with its x coordinate), or
/// to the 32-byte key itself when Vault was initialised with a single share (no split).
fn check_share_format(keys: &[String]) -> Result<(), String> {
    use base64::Engine;
    for (i, k) in keys.iter().enumerate() {
        let len = base64::engine::general_purpose::STANDARD
            .decode(k.trim())
            .map(|b| b.len())
            .unwrap_or(0);
        if len != 33 && !(len == 32 && keys.len() == 1) {
            return Err(format!(
                "unseal key share {} is not a base64 Shamir share (PGP-encrypted shares must be decrypted first: docs/vault.md): the drill could not unseal a member that restarts",
                i + 1
            ));
        }
    }
    Ok(())
}

/// Run one drill: precheck, choose the target, probe, fail it, restore, measure.
pub async fn run(kind: DrillKind, inv: &Inventory, opts: &DrillOptions) -> DrillReport {
    let interval = opts.probe_interval.min(MAX_PROBE_INTERVAL);
    // 1. The cluster must be healthy: every verify row but the backups' ages.
    let verified = crate::verify::run(inv, &opts.verify).await;
    let not_passing: Vec<Check> = verified
        .checks
        .iter()
        .filter(|c| c.status != Status::Pass)
        .cloned()
        .collect();
    let blockers: Vec<String> = blocking(&verified.checks)
        .iter()
        .map(|c| {
            format!(
                "{} {}: {} ({})",
                c.id,
                c.subject,
                c.evidence,
                c.status.label()
            )
        })
        .collect();
    if !blockers.is_empty() {
        let mut reasons = vec!["the cluster is not healthy (`ffe-ha verify`):".to_string()];
        reasons.extend(blockers);
        return refused(kind, opts, reasons, not_passing);
    }
    // Two clients: one for the drill's reads and writes, one for the probes, each request of
    // which is bounded by the probe interval.
    let clients =
        crate::verify::kube_api(inv, &opts.verify, Duration::from_secs(3)).and_then(|api| {
            crate::verify::kube_api(inv, &opts.verify, interval).map(|probe| (api, probe))
        });
    let (api, probe_api) = match clients {
        Ok(c) => c,
        Err(e) => return refused(kind, opts, vec![e], not_passing),
    };
    let vault_ca = match &inv.vault {
        Some(v) => crate::verify::vault_ca(Ok(&api), &opts.verify, v)
            .await
            .ok(),
        None => None,
    };
    let pool = SshPool::new(inv.ssh.clone());
    // 2. The target, and whether losing it is safe.
    let target = match choose(kind, inv, &api, &pool, opts, vault_ca.as_deref()).await {
        Ok(t) => t,
        Err(reasons) => {
            pool.close_all().await;
            return refused(kind, opts, reasons, not_passing);
        }
    };
    // 3. Probe every user-facing endpoint from now on.
    let mut probes = vec![("api", api.server().to_string(), Probe::Api(probe_api))];
    if let Some(pg) = &inv.postgres {
        probes.push((
            "postgres",
            format!("primary endpoint {}", pg.primary_endpoint),
            Probe::Postgres(pg.primary_endpoint.clone()),
        ));
    }
    if let (Some(v), Some(ca)) = (&inv.vault, vault_ca.as_deref()) {
        if let Ok(members) = Member::all(&v.member_addresses, ca) {
            probes.push((
                "vault",
                format!("{} members, any active", members.len()),
                Probe::Vault(members),
            ));
        }
    }
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let (probers, tasks) = start_probes(probes, interval, t0, stop.clone());
    let finish = |stop: Arc<AtomicBool>, tasks: Vec<tokio::task::JoinHandle<()>>| async move {
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
    };
    tokio::time::sleep(BASELINE).await;
    for p in probers
        .iter()
        .filter(|p| kind.endpoint().is_none_or(|e| e == p.name))
    {
        // The newest baseline probe must have answered: the first one may also pay for the
        // connection's set-up (TLS) within the probe interval.
        let baseline = samples_of(p);
        if let Some(bad) = baseline.last().filter(|s| !s.ok) {
            finish(stop, tasks).await;
            pool.close_all().await;
            return refused(
                kind,
                opts,
                vec![format!(
                    "{} did not answer before the drill ({}): nothing to measure a failover against",
                    p.target, bad.detail
                )],
                not_passing,
            );
        }
    }
    // 4. The failure (and, for a node, its return after down_for).
    let inject_s = t0.elapsed().as_secs_f64();
    let injected_at = SystemTime::now();
    let since = Instant::now();
    let mut tl = Timeline {
        events: vec![],
        since,
        notify: opts.notify.as_ref(),
    };
    let mut reasons = vec![];
    let mut recovered_s = None;
    match inject(&target, &api, &pool, opts, &mut tl).await {
        Err(e) => reasons.push(e),
        Ok(()) => {
            // 5. Wait for the component to be whole again (restoring what it needs). The
            // timeout counts from here: a node's down time is not part of it.
            let restored_at = SystemTime::now();
            let deadline = Instant::now() + opts.recovery_timeout;
            let mut disrupted = false;
            // Evidence that the failure really happened, not only a bad reading: the pod was
            // replaced (a new uid), or the node's kubelet renewed its Lease after the restart.
            let mut replaced = false;
            let mut last = String::new();
            let stop_waiting = interrupted();
            tokio::pin!(stop_waiting);
            loop {
                let read_at = since.elapsed();
                if !replaced {
                    match &target {
                        Target::Postgres {
                            namespace,
                            pod,
                            uid,
                        }
                        | Target::Vault {
                            namespace,
                            pod,
                            uid,
                            ..
                        } => match pod_uid(&api, namespace, pod).await {
                            Ok(Some(u)) if &u != uid => {
                                tl.push(format!("pod {namespace}/{pod} replaced (a new uid)"));
                                replaced = true;
                            }
                            Ok(None) => tl.push(format!("pod {namespace}/{pod} gone")),
                            _ => {}
                        },
                        Target::Node { node, .. } => {
                            if lease_renewed(&api, &node.name)
                                .await
                                .is_ok_and(|t| t > restored_at)
                            {
                                tl.push(format!("the kubelet of {} renewed its Lease", node.name));
                                replaced = true;
                            }
                        }
                    }
                }
                match read_progress(
                    &target,
                    inv,
                    &api,
                    &pool,
                    &opts.verify.etcd,
                    disrupted,
                    &mut tl,
                )
                .await
                {
                    Progress::Intact => {}
                    Progress::Disrupted(why) => {
                        if !disrupted {
                            // A node drill reads only after the restart: its first reading is
                            // the node coming back, not the failure becoming visible.
                            let what = match &target {
                                Target::Node { .. } => "first reading after the restart",
                                _ => "failure visible",
                            };
                            tl.push(format!("{what}: {why}"));
                        }
                        disrupted = true;
                        last = why;
                    }
                    Progress::Recovered(how) if !replaced => {
                        last = format!("{how}; but the failure is not confirmed yet (the pod not replaced, the kubelet not back)");
                    }
                    Progress::Recovered(how) => {
                        // The drilled endpoint (a node drill: every endpoint) must answer too.
                        let answering = probers
                            .iter()
                            .filter(|p| kind.endpoint().is_none_or(|e| e == p.name))
                            .all(|p| samples_of(p).last().is_some_and(|s| s.ok));
                        if answering {
                            recovered_s = Some(read_at.as_secs_f64());
                            tl.push_at(read_at.as_secs_f64(), format!("recovered: {how}"));
                            break;
                        }
                        last = format!("{how}; but the endpoint does not answer yet");
                    }
                }
                if Instant::now() >= deadline {
                    reasons.push(format!(
                        "not recovered within {} s: {last}",
                        opts.recovery_timeout.as_secs()
                    ));
                    break;
                }
                let stop = tokio::select! {
                    _ = tokio::time::sleep(HEALTH_POLL) => false,
                    _ = &mut stop_waiting => true,
                };
                if stop {
                    reasons.push(format!("interrupted before recovery: {last} (the pod comes back by itself; `ffe-ha verify`; a Vault member that restarted may be sealed: `terraform apply` unseals it)"));
                    break;
                }
            }
        }
    }
    tokio::time::sleep(TAIL).await;
    finish(stop, tasks).await;
    pool.close_all().await;
    // 6. The measures.
    let endpoints: Vec<EndpointReport> = probers
        .iter()
        .map(|p| endpoint_report(p, inject_s))
        .collect();
    // The drilled endpoint (a node drill: every endpoint) answering again: the end of the last
    // outage that began with the failure; 0 when no probe failed; None when one never ended.
    let since_failure = -interval.as_secs_f64();
    let service_restored_s = endpoints
        .iter()
        .filter(|e| kind.endpoint().is_none_or(|d| d == e.name))
        .map(
            |e| match e.outages.iter().rev().find(|o| o.from_s >= since_failure) {
                None => Some(0.0),
                Some(o) => o.to_s,
            },
        )
        .try_fold(0.0_f64, |acc, r| r.map(|r| acc.max(r)));
    let rto = kind.rto();
    // The RTO is about clients: the service restored within it; full recovery is reported beside.
    let outcome = match (recovered_s, service_restored_s) {
        (Some(_), Some(s)) if s <= rto.limit_s => Outcome::Recovered,
        (Some(_), _) => Outcome::RecoveredLate,
        (None, _) => Outcome::NotRecovered,
    };
    DrillReport {
        kind,
        outcome,
        reasons,
        target: Some(target.describe()),
        injected_at_unix_ms: Some(unix_ms(injected_at)),
        probe_interval_ms: interval.as_millis() as u64,
        events: tl.events,
        endpoints,
        service_restored_s,
        recovered_s,
        rto,
        precheck: not_passing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at_s: f64, ok: bool) -> Sample {
        Sample {
            at_s,
            ok,
            detail: if ok {
                String::new()
            } else {
                format!("down at {at_s}")
            },
        }
    }

    #[test]
    fn outages_run_from_the_first_failed_probe_to_the_first_good_one() {
        let samples = [
            s(0.0, true),
            s(0.25, true),
            s(0.5, false),
            s(0.75, false),
            s(1.0, true),
            s(1.25, false),
        ];
        let o = outages(&samples, 0.25);
        assert_eq!(
            o,
            vec![
                Outage {
                    from_s: 0.25,
                    to_s: Some(0.75),
                    first_error: "down at 0.5".into()
                },
                Outage {
                    from_s: 1.0,
                    to_s: None,
                    first_error: "down at 1.25".into()
                }
            ]
        );
        assert!(outages(&[s(0.0, true), s(0.25, true)], 0.0).is_empty());
        assert_eq!(downtime(&o, 2.0), 0.5 + 1.0);
        let none = downtime(&[], 2.0);
        assert!(none == 0.0 && none.is_sign_positive(), "{none}");
    }

    #[test]
    fn only_plain_shamir_shares_pass_as_unseal_keys() {
        use base64::Engine;
        let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
        assert!(check_share_format(&[b64(33), b64(33)]).is_ok());
        // One share: the key itself, not split.
        assert!(check_share_format(&[b64(32)]).is_ok());
        assert!(check_share_format(&[b64(32), b64(33)]).is_err());
        // A PGP-encrypted share is far longer; a hex share is not base64 of 33 bytes.
        let e = check_share_format(&[b64(33), b64(600)]).unwrap_err();
        assert!(e.contains("share 2") && e.contains("PGP"), "{e}");
        assert!(check_share_format(&["0".repeat(66)]).is_err());
        assert!(!e.contains(&b64(600)), "the error quotes the key");
    }

    #[test]
    fn a_stale_backup_does_not_block_a_drill_but_a_sealed_member_does() {
        let checks = vec![
            Check::new("backups.fresh", "vault", Status::Fail, "72 h old"),
            Check::new("postgres.endpoint", "cluster", Status::Warn, "no TLS"),
        ];
        assert!(blocking(&checks).is_empty());
        let mut checks = checks;
        checks.push(Check::new("vault.unsealed", "m", Status::Fail, "sealed"));
        checks.push(Check::new("etcd.health", "m", Status::Error, "unreachable"));
        let ids: Vec<&str> = blocking(&checks).iter().map(|c| c.id).collect();
        assert_eq!(ids, ["vault.unsealed", "etcd.health"]);
    }

    #[test]
    fn refusals_that_keep_quorum_and_service() {
        // etcd: 1 or 2 masters lose quorum with one stopped; 3 and 5 keep it; 4 keeps 3 of 3.
        for (n, refused) in [(1, true), (2, true), (3, false), (4, false), (5, false)] {
            assert_eq!(
                node_refusal(Role::Server, n).is_some(),
                refused,
                "{n} masters"
            );
        }
        let why = node_refusal(Role::Server, 2).unwrap();
        assert!(why.contains("1 of the 2 members"), "{why}");
        assert!(node_refusal(Role::Agent, 1).is_some());
        assert!(node_refusal(Role::Agent, 2).is_none());
        // Vault Raft of 3: deleting one of 3 unsealed leaves 2 (quorum); of 2 unsealed, 1.
        assert!(vault_refusal(3, 3).is_none());
        let why = vault_refusal(2, 3).unwrap();
        assert!(why.contains("2 of 3 members are unsealed"), "{why}");
        assert!(vault_refusal(4, 5).is_none() && vault_refusal(3, 5).is_some());
        assert!(postgres_refusal("pg-0", 0).unwrap().contains("pg-0"));
        assert!(postgres_refusal("pg-0", 1).is_none());
    }

    /// The drill looks for k3s-killall.sh exactly where install.sh can put it (upstream/k3s/
    /// install-paths.txt, read from install.sh).
    #[test]
    fn killall_candidates_are_the_installers_paths() {
        let facts = include_str!("../../../upstream/k3s/install-paths.txt");
        let value = |key: &str| -> Vec<String> {
            facts
                .lines()
                .filter_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
                .map(str::to_string)
                .collect()
        };
        let script = value("KILLALL_K3S_SH");
        assert_eq!(script.len(), 1, "{facts}");
        let expected: Vec<String> = value("BIN_DIR")
            .iter()
            .map(|dir| script[0].replace("${BIN_DIR}", dir))
            .collect();
        assert_eq!(K3S_KILLALL_CANDIDATES, expected.as_slice());
    }
}

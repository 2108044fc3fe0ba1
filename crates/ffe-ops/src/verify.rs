//! `ffe-ha verify`: the checks of a running cluster (the seed's post-deployment checklist, done
//! for k3s): the API through its VIP and every node Ready, etcd's members, leader and alarms,
//! Patroni's primary and replicas, PgBouncer, Vault's seal and leader, the k3s certificates and
//! the age of every backup kind.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ffe_core::k3s::certs::{
    expiry_script, parse_expiry, AGENT_CERT_GLOBS, K3S_RENEW_DAYS, SERVER_CERT_GLOBS,
};
use ffe_core::k3s::etcd::{node_of_member, parse_probe, probe_script, MemberView};
pub use ffe_core::k3s::etcd::{Endpoint, K3S_GATEWAY_URL};
use ffe_core::k3s::ops::{parse_node_list, NodeStatus};
use ffe_core::kube::KubeApi;
use ffe_core::ssh::SshPool;
use ffe_core::vault::{Health, Member};
use futures::future::join_all;

use crate::check::{Check, Report, Status};
use crate::inventory::{Inventory, Role};

/// Each etcd call on a server may take this long (curl `--max-time`).
const ETCD_CALL_SECS: u64 = 2;
/// The whole etcd probe on one server (three calls and the SSH round trip).
const ETCD_PROBE_LIMIT: Duration = Duration::from_secs(8);

/// Every check id these functions emit.
pub const ETCD_CHECK_IDS: &[&str] = &["etcd.health", "etcd.members", "etcd.leader", "etcd.alarms"];
pub const VAULT_CHECK_IDS: &[&str] = &["vault.unsealed", "vault.initialized", "vault.active"];
pub const CERT_CHECK_IDS: &[&str] = &["certs.expiry"];

/// One `sys/health` call may take this long (the client's own limits are for slow operations).
const VAULT_HEALTH_LIMIT: Duration = Duration::from_secs(3);

/// Ask every Vault member for `sys/health` (no token), all at once, and judge the answers.
pub async fn vault(members: &[Member]) -> Vec<Check> {
    let answers = join_all(members.iter().map(|m| async move {
        let h = tokio::time::timeout(VAULT_HEALTH_LIMIT, m.health())
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "no answer within {} s",
                    VAULT_HEALTH_LIMIT.as_secs()
                ))
            });
        (m.address.clone(), h)
    }))
    .await;
    judge_vault(&answers)
}

/// The verdicts from each member's `sys/health` (`Err`: no HTTP answer).
pub fn judge_vault(answers: &[(String, Result<Health, String>)]) -> Vec<Check> {
    let mut checks = Vec::new();
    for (address, h) in answers {
        checks.push(match h {
            Err(e) => Check::new("vault.unsealed", address, Status::Fail, format!("did not answer: {e}"))
                .hint("Check the Vault pod of that member (`kubectl -n vault get pods -o wide`) and its LoadBalancer IP"),
            Ok(h) if !h.initialized => Check::new("vault.unsealed", address, Status::Fail, format!("HTTP {}: not initialised", h.status))
                .hint("terraform apply initialises Vault (ffe_vault_init); a member that stays uninitialised did not join the Raft cluster (docs/vault.md)"),
            Ok(h) if h.sealed => Check::new("vault.unsealed", address, Status::Fail, format!("HTTP {}: sealed (version {})", h.status, h.version))
                .hint("A restarted member comes back sealed: `terraform apply` unseals it (docs/vault.md, Unsealing)"),
            Ok(h) => Check::new(
                "vault.unsealed",
                address,
                Status::Pass,
                format!(
                    "HTTP {}: unsealed, {} (version {})",
                    h.status,
                    if h.standby { "standby" } else { "active" },
                    h.version
                ),
            ),
        });
    }
    let answered: Vec<&Health> = answers
        .iter()
        .filter_map(|(_, h)| h.as_ref().ok())
        .collect();
    checks.push(if answered.is_empty() {
        Check::new(
            "vault.initialized",
            "cluster",
            Status::Error,
            "no member answered",
        )
    } else if answered.iter().all(|h| h.initialized) {
        Check::new(
            "vault.initialized",
            "cluster",
            Status::Pass,
            format!(
                "{} of {} members answer initialised",
                answered.len(),
                answers.len()
            ),
        )
    } else {
        Check::new(
            "vault.initialized",
            "cluster",
            Status::Fail,
            format!(
                "not initialised: {}",
                answers
                    .iter()
                    .filter(|(_, h)| h.as_ref().is_ok_and(|h| !h.initialized))
                    .map(|(a, _)| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    });
    let active: Vec<&str> = answers
        .iter()
        .filter(|(_, h)| {
            h.as_ref()
                .is_ok_and(|h| h.initialized && !h.sealed && !h.standby)
        })
        .map(|(a, _)| a.as_str())
        .collect();
    checks.push(match active.as_slice() {
        [one] => Check::new("vault.active", "cluster", Status::Pass, format!("one active member: {one}")),
        [] => Check::new("vault.active", "cluster", Status::Fail, "no active member: clients get no answer")
            .hint("Unseal the members (`terraform apply`); with a majority sealed or down the Raft cluster cannot elect a leader"),
        many => Check::new(
            "vault.active",
            "cluster",
            Status::Fail,
            format!("{} members claim to be active: {}", many.len(), many.join(", ")),
        )
        .hint("Two Raft clusters (split brain): stop and compare their `sys/storage/raft/configuration`"),
    });
    checks
}

/// Ask every server's etcd member, from that server, for its status, the member list and the
/// alarms; judge them. One SSH command per server, all servers at once.
pub async fn etcd(pool: &SshPool, inv: &Inventory, endpoint: &Endpoint) -> Vec<Check> {
    let servers: Vec<_> = inv
        .nodes
        .iter()
        .filter(|n| n.role == Role::Server)
        .collect();
    let script = probe_script(endpoint, ETCD_CALL_SECS);
    let views = join_all(servers.iter().map(|n| {
        let script = &script;
        async move {
            let t = n.target();
            let ran = tokio::time::timeout(
                ETCD_PROBE_LIMIT + inv.ssh.connect_timeout + Duration::from_secs(2),
                pool.run_within(&t, "read etcd status", script, ETCD_PROBE_LIMIT),
            )
            .await;
            let view = match ran {
                Err(_) => Err(format!(
                    "no answer over SSH within {} s",
                    ETCD_PROBE_LIMIT.as_secs()
                )),
                Ok(Err(e)) => Err(e.to_string()),
                Ok(Ok(out)) => parse_probe(&out).map_err(|e| e.to_string()),
            };
            (n.name.clone(), view)
        }
    }))
    .await;
    judge_etcd(
        &servers.iter().map(|n| n.name.clone()).collect::<Vec<_>>(),
        &views,
    )
}

/// The verdicts from what each server's member said (`Err`: it could not be asked).
pub fn judge_etcd(
    servers: &[String],
    views: &[(String, Result<MemberView, String>)],
) -> Vec<Check> {
    let mut checks = Vec::new();
    // Member ids (strings, as the JSON API prints uint64) to node names, from any answer.
    let mut members: BTreeMap<String, String> = BTreeMap::new();
    let mut learners = BTreeSet::new();
    let mut unstarted = 0;
    for (_, v) in views {
        if let Ok(v) = v {
            for m in &v.members {
                if m.name.is_empty() {
                    unstarted += 1;
                    continue;
                }
                members.insert(m.id.clone(), node_of_member(&m.name).to_string());
                if m.is_learner {
                    learners.insert(node_of_member(&m.name).to_string());
                }
            }
            break;
        }
    }
    for (node, v) in views {
        checks.push(match v {
            Err(e) => Check::new("etcd.health", node, Status::Fail, e.clone())
                .hint("Check k3s on that master (`systemctl status k3s`, `journalctl -u k3s`): its etcd member does not answer"),
            Ok(v) if !v.status.errors.is_empty() => Check::new(
                "etcd.health",
                node,
                Status::Fail,
                format!("member reports errors: {}", v.status.errors.join("; ")),
            ),
            Ok(v) => Check::new(
                "etcd.health",
                node,
                Status::Pass,
                format!(
                    "member {} answers: etcd {}, raft term {}, index {}, db {} bytes{}",
                    v.status.header.member_id,
                    v.status.version,
                    v.status.raft_term,
                    v.status.raft_index,
                    v.status.db_size,
                    if v.status.is_learner { ", learner" } else { "" }
                ),
            ),
        });
    }
    let answered = views.iter().filter(|(_, v)| v.is_ok()).count();
    if answered == 0 {
        checks.push(Check::new(
            "etcd.members",
            "cluster",
            Status::Error,
            "no etcd member answered: the member list could not be read",
        ));
        return checks;
    }
    let listed: BTreeSet<&str> = members.values().map(String::as_str).collect();
    let expected: BTreeSet<&str> = servers.iter().map(String::as_str).collect();
    let missing: Vec<&str> = expected.difference(&listed).copied().collect();
    let extra: Vec<&str> = listed.difference(&expected).copied().collect();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!(
            "masters not in the member list: {}",
            missing.join(", ")
        ));
    }
    if !extra.is_empty() {
        problems.push(format!(
            "members that are not masters of the inventory: {}",
            extra.join(", ")
        ));
    }
    if !learners.is_empty() {
        problems.push(format!(
            "learners (not yet voting): {}",
            learners.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if unstarted > 0 {
        problems.push(format!("{unstarted} member(s) added but never started"));
    }
    checks.push(if problems.is_empty() {
        Check::new(
            "etcd.members",
            "cluster",
            Status::Pass,
            format!(
                "{} voting members = the {} masters: {}",
                listed.len(),
                expected.len(),
                listed.iter().copied().collect::<Vec<_>>().join(", ")
            ),
        )
    } else {
        Check::new("etcd.members", "cluster", Status::Fail, problems.join("; "))
            .hint("A member left over from a replaced master must be removed: `terraform apply` does it for a server that lost its data or was replaced (docs/scale.md); a learner that stays one did not finish joining")
    });
    // Every answering member must follow the same leader, and that leader must be a member.
    let leaders: BTreeSet<&str> = views
        .iter()
        .filter_map(|(_, v)| v.as_ref().ok())
        .map(|v| v.status.leader.as_str())
        .collect();
    checks.push(match leaders.iter().next() {
        Some(id) if leaders.len() == 1 && !id.is_empty() && *id != "0" => {
            let who = members.get(*id).map(String::as_str).unwrap_or("an unknown member");
            let status = if members.contains_key(*id) {
                Status::Pass
            } else {
                Status::Fail
            };
            Check::new(
                "etcd.leader",
                "cluster",
                status,
                format!("leader {who} (member {id}), agreed by {answered} of {} members", servers.len()),
            )
        }
        _ => Check::new(
            "etcd.leader",
            "cluster",
            Status::Fail,
            format!(
                "members disagree or have no leader: {}",
                views
                    .iter()
                    .filter_map(|(n, v)| v.as_ref().ok().map(|v| format!("{n} follows {:?}", v.status.leader)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .hint("Without one leader etcd accepts no writes: check that a majority of masters run k3s and reach each other on 2380/tcp"),
    });
    let alarms: Vec<String> = views
        .iter()
        .filter_map(|(_, v)| v.as_ref().ok())
        .flat_map(|v| v.alarms.iter())
        .map(|a| {
            format!(
                "{} on {}",
                a.alarm,
                members
                    .get(&a.member_id)
                    .map(String::as_str)
                    .unwrap_or(&a.member_id)
            )
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    checks.push(if alarms.is_empty() {
        Check::new("etcd.alarms", "cluster", Status::Pass, "no alarm raised")
    } else {
        Check::new("etcd.alarms", "cluster", Status::Fail, alarms.join(", "))
            .hint("NOSPACE: etcd refuses writes until its database is compacted and defragmented and the alarm disarmed; CORRUPT: restore that member from a snapshot")
    });
    checks
}

/// A certificate this close to its end is a warning (seed: "alert 30 days before")...
const CERT_WARN_DAYS: i64 = 30;
/// ...and this close, a failure: one missed week and the cluster stops.
const CERT_FAIL_DAYS: i64 = 7;
const CERT_PROBE_LIMIT: Duration = Duration::from_secs(8);

/// The k3s certificate that expires first on every node (servers: server and agent
/// certificates; agents: agent certificates), judged against the node's own clock.
pub async fn certs(pool: &SshPool, inv: &Inventory) -> Vec<Check> {
    join_all(inv.nodes.iter().map(|n| async move {
        let globs: Vec<&str> = match n.role {
            Role::Server => SERVER_CERT_GLOBS
                .iter()
                .chain(AGENT_CERT_GLOBS)
                .copied()
                .collect(),
            Role::Agent => AGENT_CERT_GLOBS.to_vec(),
        };
        let ran = tokio::time::timeout(
            CERT_PROBE_LIMIT + inv.ssh.connect_timeout + Duration::from_secs(2),
            pool.run_within(
                &n.target(),
                "read certificate expiry",
                &expiry_script(&globs),
                CERT_PROBE_LIMIT,
            ),
        )
        .await;
        match ran {
            Err(_) => Check::new("certs.expiry", &n.name, Status::Error, "no answer over SSH"),
            Ok(Err(e)) => Check::new("certs.expiry", &n.name, Status::Error, e.to_string()),
            Ok(Ok(out)) => judge_certs(&n.name, &out),
        }
    }))
    .await
}

fn judge_certs(node: &str, out: &str) -> Check {
    let Some((now, certs)) = parse_expiry(out) else {
        return Check::new(
            "certs.expiry",
            node,
            Status::Error,
            "the node's clock could not be read",
        );
    };
    let Some(first) = certs.iter().min_by_key(|c| c.not_after) else {
        return Check::new(
            "certs.expiry",
            node,
            Status::Fail,
            "no k3s certificate found under /var/lib/rancher/k3s",
        )
        .hint("k3s is not installed on this node, or its data directory is elsewhere");
    };
    let days = (first.not_after - now).div_euclid(86_400);
    let evidence = format!(
        "{} certificates; the first to expire is {} in {days} days",
        certs.len(),
        first.path
    );
    let hint = format!(
        "Restart k3s on the node (`systemctl restart k3s` or `k3s-agent`): k3s renews certificates within {K3S_RENEW_DAYS} days of expiry when it starts. An expiring CA (10 years) is not renewed: see k3s's `k3s certificate rotate-ca`"
    );
    if first.not_after <= now {
        Check::new(
            "certs.expiry",
            node,
            Status::Fail,
            format!(
                "{} certificates; {} EXPIRED {} days ago",
                certs.len(),
                first.path,
                -days
            ),
        )
        .hint(hint)
    } else if days <= CERT_FAIL_DAYS {
        Check::new("certs.expiry", node, Status::Fail, evidence).hint(hint)
    } else if days <= CERT_WARN_DAYS {
        Check::new("certs.expiry", node, Status::Warn, evidence).hint(hint)
    } else {
        Check::new("certs.expiry", node, Status::Pass, evidence)
    }
}

pub const KUBE_CHECK_IDS: &[&str] = &["api.vip", "nodes.ready"];

/// The API through the address the kubeconfig names (the API VIP), then the nodes it reports.
/// Every request carries the kubeconfig's client certificate: k3s serves nothing anonymously.
pub async fn kubernetes(api: &KubeApi, inv: &Inventory) -> Vec<Check> {
    let started = std::time::Instant::now();
    let ready = api.get_raw("/readyz").await;
    let took = started.elapsed().as_millis();
    // The host of the kubeconfig's server, compared whole (10.0.1.5 is not 10.0.1.50).
    let host = api
        .server()
        .strip_prefix("https://")
        .map(|r| r.split('/').next().unwrap_or(r))
        .map(|hp| match hp.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => hp.rsplit_once(':').map_or(hp, |(h, _)| h),
        })
        .unwrap_or("");
    let via_vip = inv.api_vip.as_deref().is_some_and(|vip| vip == host);
    let through = match &inv.api_vip {
        Some(vip) if via_vip => format!("the API VIP {vip}"),
        Some(vip) => format!("{} (not the API VIP {vip})", api.server()),
        None => format!("{} (no API VIP configured)", api.server()),
    };
    let mut checks = vec![match &ready {
        Ok(a) if a.status == 200 && a.body.trim() == "ok" => {
            let status = if via_vip {
                Status::Pass
            } else {
                Status::Warn
            };
            let c = Check::new("api.vip", "cluster", status, format!("/readyz through {through}: ok in {took} ms"));
            if status == Status::Warn {
                c.hint("Without a VIP the kubeconfig names one master: when it is down, so is your API access. Set api_vip (docs/networking.md)")
            } else {
                c
            }
        }
        Ok(a) => Check::new(
            "api.vip",
            "cluster",
            Status::Fail,
            format!("/readyz through {through}: HTTP {}: {}", a.status, ffe_core::kube::status_message(&a.body)),
        )
        .hint(if a.status == 401 || a.status == 403 || a.status == 400 {
            "The API refused the kubeconfig's credentials: use the kubeconfig `terraform apply` wrote (kubeconfig_path)"
        } else {
            "The API server answers but is not ready: check k3s on the masters (`journalctl -u k3s`) and `ffe-ha verify`'s etcd rows"
        }),
        Err(e) => Check::new("api.vip", "cluster", Status::Fail, e.to_string())
            .hint("Nothing answers on the API address: check kube-vip holds the VIP (`ip addr` on the masters) and k3s runs on at least one master"),
    }];
    let nodes = match ready {
        Err(e) => Err(format!("the API did not answer: {e}")),
        Ok(_) => match api.get("/api/v1/nodes").await {
            Err(e) => Err(e.to_string()),
            Ok(body) => parse_node_list(&body),
        },
    };
    checks.extend(judge_nodes(inv, nodes));
    checks
}

/// One row per inventory node (present and Ready, with its kubelet version), plus a cluster row
/// when the API lists nodes the inventory does not know or the versions differ.
pub fn judge_nodes(inv: &Inventory, nodes: Result<Vec<NodeStatus>, String>) -> Vec<Check> {
    let nodes = match nodes {
        Ok(n) => n,
        Err(e) => {
            return inv
                .nodes
                .iter()
                .map(|n| {
                    Check::new(
                        "nodes.ready",
                        &n.name,
                        Status::Error,
                        format!("not evaluated: {e}"),
                    )
                })
                .collect()
        }
    };
    let mut checks: Vec<Check> = inv
        .nodes
        .iter()
        .map(|n| match nodes.iter().find(|s| s.name == n.name) {
            None => Check::new("nodes.ready", &n.name, Status::Fail, "not registered with the API server")
                .hint(format!("The {} never joined or was deleted: check `systemctl status {}` on it and re-run `terraform apply`", n.role.label(), if n.role == Role::Server { "k3s" } else { "k3s-agent" })),
            Some(s) if !s.ready => Check::new("nodes.ready", &n.name, Status::Fail, format!("NotReady ({})", s.kubelet_version))
                .hint("The kubelet stopped reporting: check the node is up and k3s runs on it (`journalctl -u k3s` / `-u k3s-agent`)"),
            Some(s) => Check::new("nodes.ready", &n.name, Status::Pass, format!("Ready, kubelet {}", s.kubelet_version)),
        })
        .collect();
    let known: BTreeSet<&str> = inv.nodes.iter().map(|n| n.name.as_str()).collect();
    let strangers: Vec<&str> = nodes
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| !known.contains(n))
        .collect();
    let versions: BTreeSet<&str> = nodes.iter().map(|s| s.kubelet_version.as_str()).collect();
    let mut problems = Vec::new();
    if !strangers.is_empty() {
        problems.push(format!(
            "nodes not in the inventory: {}",
            strangers.join(", ")
        ));
    }
    if versions.len() > 1 {
        problems.push(format!(
            "kubelet versions differ: {}",
            versions.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    checks.push(if problems.is_empty() {
        Check::new("nodes.ready", "cluster", Status::Pass, format!("{} nodes registered, all in the inventory, one version", nodes.len()))
    } else {
        Check::new("nodes.ready", "cluster", Status::Warn, problems.join("; "))
            .hint("A node left over from a replaced host must be deleted (`kubectl delete node NAME`); differing versions mean an upgrade did not finish (`terraform apply`)")
    });
    checks
}

/// How `verify` reaches what is not in the inventory.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Warnings fail too.
    pub strict: bool,
    /// Overrides the inventory's `kubeconfig_path`.
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The etcd JSON API on each master (default: k3s's).
    pub etcd: Endpoint,
    /// A PEM file with the Vault CA, instead of reading the inventory's CA Secret.
    pub vault_ca: Option<std::path::PathBuf>,
}

/// Every id `verify` can emit, in report order (docs/operations.md lists them).
pub fn check_ids() -> Vec<&'static str> {
    [
        KUBE_CHECK_IDS,
        ETCD_CHECK_IDS,
        crate::postgres::POSTGRES_CHECK_IDS,
        VAULT_CHECK_IDS,
        CERT_CHECK_IDS,
        crate::backups::BACKUP_CHECK_IDS,
    ]
    .concat()
}

/// Each API request may take this long.
const API_LIMIT: Duration = Duration::from_secs(3);

/// The Vault CA: the operator's file, or the inventory's Secret read through the API.
pub(crate) async fn vault_ca(
    api: Result<&KubeApi, &String>,
    opts: &VerifyOptions,
    v: &crate::inventory::VaultSection,
) -> Result<String, String> {
    if let Some(f) = &opts.vault_ca {
        return std::fs::read_to_string(f).map_err(|e| format!("--vault-ca {}: {e}", f.display()));
    }
    let api = api.map_err(|e| format!("the Vault CA Secret needs the API: {e}"))?;
    let s = &v.ca_secret;
    let body = api
        .get(&format!(
            "/api/v1/namespaces/{}/secrets/{}",
            s.namespace, s.name
        ))
        .await
        .map_err(|e| format!("Secret {}/{}: {e}", s.namespace, s.name))?;
    let doc: serde_json::Value = serde_json::from_str(&body)
        .map_err(|e| format!("Secret {}/{}: {e}", s.namespace, s.name))?;
    let b64 = doc["data"][&s.key]
        .as_str()
        .ok_or_else(|| format!("Secret {}/{} has no key {}", s.namespace, s.name, s.key))?;
    use base64::Engine;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("Secret {}/{} key {}: {e}", s.namespace, s.name, s.key))?;
    String::from_utf8(pem).map_err(|_| {
        format!(
            "Secret {}/{} key {} is not PEM text",
            s.namespace, s.name, s.key
        )
    })
}

/// The API client of `--kubeconfig`, else of the inventory's `kubeconfig_path`; each request
/// bounded by `limit`.
pub(crate) fn kube_api(
    inv: &Inventory,
    opts: &VerifyOptions,
    limit: Duration,
) -> Result<KubeApi, String> {
    match opts
        .kubeconfig
        .clone()
        .or_else(|| inv.kubeconfig_path.clone())
    {
        None => Err(
            "no kubeconfig: the inventory has no kubeconfig_path; pass --kubeconfig".to_string(),
        ),
        Some(path) => KubeApi::from_kubeconfig_file(&path, limit).map_err(|e| e.to_string()),
    }
}

/// `f`, logging when it finished (`RUST_LOG=ffe_ops=debug` shows where a run's time goes).
async fn timed(
    what: &str,
    started: std::time::Instant,
    f: impl std::future::Future<Output = Vec<Check>>,
) -> Vec<Check> {
    let checks = f.await;
    tracing::debug!(elapsed = ?started.elapsed(), "verify: {what} done");
    checks
}

/// Run every check of a running cluster, all at once; never hangs (every step is bounded).
pub async fn run(inv: &Inventory, opts: &VerifyOptions) -> Report {
    let pool = SshPool::new(inv.ssh.clone());
    let api = kube_api(inv, opts, API_LIMIT);
    let not_evaluated = |ids: &[&'static str], why: &str| -> Vec<Check> {
        ids.iter()
            .map(|id| {
                Check::new(
                    id,
                    "cluster",
                    Status::Error,
                    format!("not evaluated: {why}"),
                )
            })
            .collect()
    };
    let kube = async {
        match &api {
            Ok(api) => kubernetes(api, inv).await,
            Err(e) => not_evaluated(KUBE_CHECK_IDS, e),
        }
    };
    let postgres = async {
        match (&inv.postgres, &api) {
            (None, _) => vec![],
            (Some(pg), Ok(api)) => crate::postgres::postgres(api, &pool, inv, pg).await,
            (Some(_), Err(e)) => not_evaluated(crate::postgres::POSTGRES_CHECK_IDS, e),
        }
    };
    let vault = async {
        let Some(v) = &inv.vault else { return vec![] };
        match vault_ca(api.as_ref(), opts, v)
            .await
            .and_then(|ca| Member::all(&v.member_addresses, &ca).map_err(|e| e.to_string()))
        {
            Ok(members) => vault(&members).await,
            Err(e) => not_evaluated(VAULT_CHECK_IDS, &e),
        }
    };
    let started = std::time::Instant::now();
    let (k, e, p, v, c, b) = futures::join!(
        timed("api and nodes", started, kube),
        timed("etcd", started, etcd(&pool, inv, &opts.etcd)),
        timed("postgres", started, postgres),
        timed("vault", started, vault),
        timed("certificates", started, certs(&pool, inv)),
        timed("backups", started, crate::backups::fresh(&pool, inv))
    );
    pool.close_all().await;
    Report {
        command: "verify",
        checks: [k, e, p, v, c, b].concat(),
        strict: opts.strict,
    }
}

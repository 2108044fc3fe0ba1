//! `ffe-ha status`: one screen over the cluster: nodes with their roles, addresses and versions,
//! the API and edge addresses, each data service in one line, and the age of every backup kind.
//! It is drawn from the same checks as `verify` (one source of truth); `verify` lists every check
//! with its evidence, `status` folds them per component.

use serde::Serialize;

use crate::check::{Check, Report, Status, Summary};
use crate::inventory::Inventory;

#[derive(Debug, Clone, Serialize)]
pub struct NodeLine {
    pub name: String,
    pub role: &'static str,
    pub address: String,
    pub state: Status,
    /// What the API says of it ("Ready, kubelet v1.36.2+k3s1").
    pub detail: String,
}

/// One component (API, etcd, Postgres, ...): its worst check and the lines that describe it.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentLine {
    pub name: &'static str,
    pub state: Status,
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupLine {
    pub kind: String,
    pub state: Status,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    pub cluster: String,
    pub api_vip: Option<String>,
    pub ingress_ip: Option<String>,
    pub nodes: Vec<NodeLine>,
    /// The API's view over all nodes (strangers, mixed versions).
    pub nodes_overall: Option<BackupLine>,
    pub components: Vec<ComponentLine>,
    pub backups: Vec<BackupLine>,
    pub summary: Summary,
    pub exit_code: i32,
}

/// Components in screen order: name and the check ids folded into it. The cluster-wide rows
/// describe a healthy component; a failing per-member row is shown with its subject.
const COMPONENTS: &[(&str, &[&str])] = &[
    ("api", &["api.vip"]),
    (
        "etcd",
        &["etcd.leader", "etcd.members", "etcd.alarms", "etcd.health"],
    ),
    (
        "postgres",
        &["postgres.primary", "postgres.replicas", "postgres.endpoint"],
    ),
    ("pgbouncer", &["pgbouncer.answering"]),
    (
        "vault",
        &["vault.active", "vault.initialized", "vault.unsealed"],
    ),
    ("certificates", &["certs.expiry"]),
];

fn worst<'a>(rows: impl Iterator<Item = &'a Check>) -> Option<Status> {
    rows.map(|c| c.status).max_by_key(|s| s.severity())
}

fn rows<'r>(report: &'r Report, id: &'r str) -> impl Iterator<Item = &'r Check> + 'r {
    report.checks.iter().filter(move |c| c.id == id)
}

pub fn summarize(inv: &Inventory, report: &Report) -> StatusView {
    let nodes = inv
        .nodes
        .iter()
        .map(|n| {
            let row = rows(report, "nodes.ready").find(|c| c.subject == n.name);
            NodeLine {
                name: n.name.clone(),
                role: n.role.label(),
                address: n.address.clone(),
                state: row.map_or(Status::Error, |c| c.status),
                detail: row.map_or("not evaluated".into(), |c| c.evidence.clone()),
            }
        })
        .collect();
    let nodes_overall = rows(report, "nodes.ready")
        .find(|c| c.subject == "cluster")
        .map(|c| BackupLine {
            kind: "all nodes".into(),
            state: c.status,
            detail: c.evidence.clone(),
        });
    let mut components = Vec::new();
    for (name, ids) in COMPONENTS {
        let all: Vec<&Check> = ids.iter().flat_map(|id| rows(report, id)).collect();
        let Some(state) = worst(all.iter().copied()) else {
            continue; // the layer is not deployed (no rows)
        };
        let mut lines: Vec<String> = Vec::new();
        if *name == "certificates" {
            // The node whose first-to-expire certificate is the worst, else the first one.
            if let Some(c) = all.iter().find(|c| c.status == state) {
                lines.push(format!("{}: {}", c.subject, c.evidence));
            }
        } else {
            // What is wrong first, worst first; then the component's cluster-wide evidence.
            let mut bad: Vec<&&Check> = all.iter().filter(|c| c.status != Status::Pass).collect();
            bad.sort_by_key(|c| std::cmp::Reverse(c.status.severity()));
            let good = all
                .iter()
                .filter(|c| c.status == Status::Pass && c.subject == "cluster");
            for c in bad.into_iter().chain(good) {
                let line = if c.subject == "cluster" {
                    c.evidence.clone()
                } else {
                    format!("{}: {}", c.subject, c.evidence)
                };
                if !lines.contains(&line) {
                    lines.push(line);
                }
            }
        }
        components.push(ComponentLine { name, state, lines });
    }
    let backups = rows(report, "backups.fresh")
        .map(|c| BackupLine {
            kind: c.subject.clone(),
            state: c.status,
            detail: c.evidence.clone(),
        })
        .collect();
    StatusView {
        cluster: inv.cluster_name.clone(),
        api_vip: inv.api_vip.clone(),
        ingress_ip: inv.ingress_ip.clone(),
        nodes,
        nodes_overall,
        components,
        backups,
        summary: report.summary(),
        exit_code: report.exit_code().code(),
    }
}

/// The one screen.
pub fn render(v: &StatusView) -> String {
    let mut out = format!(
        "cluster {}   API VIP {}   ingress {}\n\nNODES\n",
        v.cluster,
        v.api_vip.as_deref().unwrap_or("none"),
        v.ingress_ip.as_deref().unwrap_or("none")
    );
    let width = |f: &dyn Fn(&NodeLine) -> usize| v.nodes.iter().map(f).max().unwrap_or(0);
    let (wn, wa) = (width(&|n| n.name.len()), width(&|n| n.address.len()));
    for n in &v.nodes {
        out.push_str(&format!(
            "  {:wn$}  {:6}  {:wa$}  {:5}  {}\n",
            n.name,
            n.role,
            n.address,
            n.state.label(),
            n.detail
        ));
    }
    if let Some(o) = &v.nodes_overall {
        out.push_str(&format!(
            "  {:wn$}  {:6}  {:wa$}  {:5}  {}\n",
            o.kind,
            "",
            "",
            o.state.label(),
            o.detail
        ));
    }
    out.push_str("\nSERVICES\n");
    for c in &v.components {
        let mut lines = c.lines.iter();
        out.push_str(&format!(
            "  {:12}  {:5}  {}\n",
            c.name,
            c.state.label(),
            lines.next().map(String::as_str).unwrap_or("")
        ));
        for l in lines {
            out.push_str(&format!("  {:12}  {:5}  {l}\n", "", ""));
        }
    }
    if !v.backups.is_empty() {
        out.push_str("\nBACKUPS\n");
        let wk = v.backups.iter().map(|b| b.kind.len()).max().unwrap_or(0);
        for b in &v.backups {
            out.push_str(&format!(
                "  {:wk$}  {:5}  {}\n",
                b.kind,
                b.state.label(),
                b.detail
            ));
        }
    }
    out.push_str(&format!(
        "\n{} pass, {} warn, {} fail, {} error (`ffe-ha verify` lists every check with what to do) -> exit {}\n",
        v.summary.pass, v.summary.warn, v.summary.fail, v.summary.error, v.exit_code
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{InventoryDoc, InventorySource, SshOverrides};

    fn inventory() -> Inventory {
        let doc: InventoryDoc = serde_json::from_value(serde_json::json!({
            "schema": 1, "cluster_name": "c", "backup_mount": "/mnt/backups", "api_vip": "10.0.1.5",
            "ssh": {"private_key_path": "/k", "insecure_ignore_host_keys": true},
            "nodes": [{"name": "m0", "address": "10.0.1.10", "role": "server"},
                      {"name": "w0", "address": "10.0.2.10", "role": "agent"}]
        }))
        .unwrap();
        Inventory::validate(
            doc,
            InventorySource::File { path: "i".into() },
            &SshOverrides::default(),
        )
        .unwrap()
    }

    #[test]
    fn components_fold_their_checks_and_name_failing_members() {
        let report = Report {
            command: "verify",
            strict: false,
            checks: vec![
                Check::new("nodes.ready", "m0", Status::Pass, "Ready, kubelet v1"),
                Check::new("etcd.health", "m0", Status::Fail, "did not answer"),
                Check::new("etcd.leader", "cluster", Status::Pass, "leader m1"),
                Check::new("vault.unsealed", "https://a:8200", Status::Pass, "unsealed"),
                Check::new(
                    "vault.active",
                    "cluster",
                    Status::Pass,
                    "one active member: https://a:8200",
                ),
                Check::new("backups.fresh", "pg_dump", Status::Warn, "no backup yet"),
                Check::new(
                    "postgres.primary",
                    "cluster",
                    Status::Error,
                    "not evaluated",
                ),
                Check::new("postgres.replicas", "m9", Status::Fail, "not streaming"),
                Check::new(
                    "nodes.ready",
                    "cluster",
                    Status::Warn,
                    "nodes not in the inventory: x",
                ),
            ],
        };
        let v = summarize(&inventory(), &report);
        assert_eq!(v.nodes[0].detail, "Ready, kubelet v1");
        assert_eq!(
            v.nodes[1].state,
            Status::Error,
            "a node without a row is not evaluated"
        );
        let etcd = v.components.iter().find(|c| c.name == "etcd").unwrap();
        assert_eq!(etcd.state, Status::Fail);
        assert_eq!(etcd.lines, vec!["m0: did not answer", "leader m1"]);
        let vault = v.components.iter().find(|c| c.name == "vault").unwrap();
        assert_eq!(vault.lines, vec!["one active member: https://a:8200"]);
        let pg = v.components.iter().find(|c| c.name == "postgres").unwrap();
        assert_eq!(
            pg.state,
            Status::Fail,
            "a failure outranks a check not evaluated"
        );
        assert_eq!(pg.lines[0], "m9: not streaming");
        assert!(
            v.components.iter().all(|c| c.name != "pgbouncer"),
            "no rows, no line"
        );
        assert_eq!(v.nodes_overall.as_ref().unwrap().state, Status::Warn);
        assert_eq!(v.exit_code, 1);
        let screen = render(&v);
        assert!(
            screen.contains("  etcd          fail   m0: did not answer\n"),
            "{screen}"
        );
        assert!(
            screen.contains("  pg_dump  warn   no backup yet"),
            "{screen}"
        );
    }
}

//! `ffe-ha etcd snapshots` and `ffe-ha etcd restore`: the etcd snapshots on the backup share,
//! and k3s's cluster-reset sequence onto the servers of the inventory. The sequence itself is
//! ffe-core's (`k3s::restore`), the one the provider's `restore_from_snapshot` runs.

use std::time::Duration;

use ffe_core::k3s::restore;
pub use ffe_core::k3s::restore::valid_snapshot_name;
use ffe_core::k3s::Node as K3sNode;
use ffe_core::ssh::SshPool;

use crate::check::{Check, Report, Status};
use crate::inventory::{Inventory, Role};

/// Every check id `etcd snapshots` and `etcd restore` report.
pub const CHECK_IDS: &[&str] = &["etcd.snapshot", "etcd.snapshots", "etcd.restore"];

/// The servers in inventory order (the order of `master_ips`): the first restores the snapshot.
pub fn servers(inv: &Inventory) -> Vec<K3sNode> {
    inv.nodes
        .iter()
        .filter(|n| n.role == Role::Server)
        .map(|n| K3sNode::new(&n.name, &n.address))
        .collect()
}

/// Where the servers write their snapshots: `<backup_mount>/<etcd dir>` (one subdirectory per
/// server), from the inventory's `backups` entry of kind `etcd`.
pub fn snapshot_dir(inv: &Inventory) -> Option<String> {
    inv.backups.iter().find(|b| b.kind == "etcd").map(|b| {
        format!(
            "{}/{}",
            inv.backup_mount.trim_end_matches('/'),
            b.dir.trim_matches('/')
        )
    })
}

fn no_dir() -> Check {
    Check::new(
        "etcd.snapshots",
        "cluster",
        Status::Fail,
        "the inventory names no etcd backup directory (backups entry of kind \"etcd\")",
    )
    .hint("use the ops_inventory output of this version of the environment")
}

fn utc(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| unix.to_string())
}

/// One row per snapshot on the share, newest first.
pub async fn snapshots(inv: &Inventory) -> Report {
    let mut report = Report {
        command: "etcd snapshots",
        checks: vec![],
        strict: false,
    };
    let Some(dir) = snapshot_dir(inv) else {
        report.checks.push(no_dir());
        return report;
    };
    let pool = SshPool::new(inv.ssh.clone());
    match restore::list_snapshots(&pool, &servers(inv), &dir).await {
        Ok(files) if files.is_empty() => report.checks.push(
            Check::new("etcd.snapshots", "cluster", Status::Warn, format!("no snapshot under {dir}"))
                .hint("the servers write one per etcd_snapshot_schedule; take one now with `k3s etcd-snapshot save` on a server"),
        ),
        Ok(files) => report.checks.extend(files.into_iter().map(|f| {
            Check::new(
                "etcd.snapshot",
                f.name,
                Status::Pass,
                format!("{} bytes, written {}, {}", f.size_bytes, utc(f.modified_unix), f.path),
            )
        })),
        Err(e) => report.checks.push(
            Check::new("etcd.snapshots", "cluster", Status::Error, e.to_string())
                .hint("no server answered over SSH; check `ffe-ha preflight`"),
        ),
    }
    pool.close_all().await;
    report
}

/// Restore snapshot `name` onto the inventory's servers (k3s's cluster-reset sequence).
pub async fn restore_snapshot(inv: &Inventory, name: &str, timeout: Duration) -> Report {
    let mut report = Report {
        command: "etcd restore",
        checks: vec![],
        strict: false,
    };
    let Some(dir) = snapshot_dir(inv) else {
        report.checks.push(no_dir());
        return report;
    };
    let servers = servers(inv);
    let pool = SshPool::new(inv.ssh.clone());
    let outcome = match restore::find_snapshot(&pool, &servers, &dir, name).await {
        Ok(path) => restore::cluster_reset(&pool, &servers, &path, timeout).await,
        Err(source) => Err(restore::RestoreError {
            reset_done: false,
            source,
        }),
    };
    pool.close_all().await;
    let first = servers.first().map(|n| n.name.clone()).unwrap_or_default();
    report.checks.push(match outcome {
        Ok(r) => {
            let kept = r.kept_data();
            let removed = if r.removed_nodes.is_empty() {
                String::new()
            } else {
                format!(
                    "; Nodes of servers not in the inventory deleted: {}",
                    r.removed_nodes.join(", ")
                )
            };
            Check::new(
                "etcd.restore",
                "cluster",
                Status::Pass,
                format!(
                    "{} restored on {}; {} joined it one at a time; previous etcd data kept at {kept}{removed}",
                    r.snapshot,
                    r.restored_on,
                    servers.iter().skip(1).map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )
            .hint("run `ffe-ha verify`; then `terraform plan` should show no k3s change")
        }
        Err(e) if e.reset_done => Check::new("etcd.restore", "cluster", Status::Fail, e.to_string())
            .hint(format!("the snapshot is restored on {first}; do not restore again (that would lose what was written since). Bring the servers that did not rejoin back with `terraform apply` (it joins them through {first})")),
        Err(e) => Check::new("etcd.restore", "cluster", Status::Fail, e.to_string())
            .hint("nothing was reset; fix the cause and run the restore again"),
    });
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::BackupKind;

    #[test]
    fn servers_keep_inventory_order_and_the_dir_comes_from_the_etcd_kind() {
        let doc = r#"{"schema":1,"cluster_name":"c","ssh":{"user":"root","port":22,"known_hosts_file":"/k","connect_timeout_seconds":5},
            "nodes":[{"name":"w0","address":"10.210.1.20","role":"agent"},{"name":"m1","address":"10.210.1.11","role":"server"},{"name":"m0","address":"10.210.1.10","role":"server"}],
            "backup_mount":"/mnt/backups/","network":{"wireguard_enabled":false},
            "backups":[{"kind":"etcd","dir":"etcd-snapshots","per_server":true,"files":"etcd-snapshot-*","max_age_seconds":25200,"max_full_age_seconds":null}]}"#;
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), doc).unwrap();
        let inv = Inventory::from_file(file.path(), &Default::default()).unwrap();
        let names: Vec<String> = servers(&inv).into_iter().map(|n| n.name).collect();
        assert_eq!(names, ["m1", "m0"]);
        assert_eq!(
            snapshot_dir(&inv).as_deref(),
            Some("/mnt/backups/etcd-snapshots")
        );
        let mut none = inv.clone();
        none.backups.retain(|b: &BackupKind| b.kind != "etcd");
        assert_eq!(snapshot_dir(&none), None);
    }
}

//! Restoring k3s's embedded etcd from a snapshot on the backup share: k3s's cluster-reset
//! sequence, driven over SSH. The provider (`restore_from_snapshot`) and `ffe-ha etcd restore`
//! both run [`cluster_reset`]; neither has a second copy of the sequence.
//!
//! The sequence, from k3s's docs (docs.k3s.io, datastore/backup-restore, "Restoring a Snapshot
//! to Existing Nodes") and its maintainers (k3s-io/k3s #3174, #8166):
//! 1. stop k3s on every server;
//! 2. on one server: `k3s server --cluster-reset --cluster-reset-restore-path=<snapshot>`; k3s
//!    restores the snapshot as a new one-member etcd cluster and exits with "Managed etcd cluster
//!    membership has been reset, restart without --cluster-reset flag now. Backup and delete
//!    ${datadir}/server/db on each peer etcd server and rejoin the nodes";
//! 3. start k3s on that server;
//! 4. on every other server: move its `server/db` away (a peer's old data names members the
//!    restored cluster no longer has), then start k3s, which joins through the restored server.
//!
//! One change to that order: the other servers' data is moved aside (and their join line pointed
//! at the first server) before the reset, not after it. Should anything fail later, no two of
//! them can start again as a quorum of the old cluster beside the restored one.
//!
//! Agents keep running and reconnect. The snapshot's bootstrap data is encrypted with the
//! server token it was taken under: the configs already hold it.

use std::time::Duration;

use futures::stream::{self, StreamExt};

use super::config::CONFIG_PATH;
use super::model::Node;
use super::ops::{parse_node_list, OpsError, KUBECTL, READ_STEP};
use crate::shell::quote;
use crate::ssh::SshPool;

/// k3s's etcd data directory (`${data-dir}/server/db`).
pub const DB_DIR: &str = "/var/lib/rancher/k3s/server/db";
/// The server unit the k3s installer writes.
pub const SERVER_UNIT_FILE: &str = "/etc/systemd/system/k3s.service";

/// One snapshot file on the backup share.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotFile {
    /// File name, what `restore_from_snapshot` and `ffe-ha etcd restore` take.
    pub name: String,
    /// Absolute path as the servers see it.
    pub path: String,
    pub size_bytes: u64,
    /// Modification time, seconds since the epoch.
    pub modified_unix: i64,
}

/// What a restore did, for the operator.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RestoreReport {
    pub snapshot: String,
    /// The server that restored the snapshot; the others joined through it.
    pub restored_on: String,
    /// Where each server's previous etcd data was moved (kept, never deleted).
    pub old_data: Vec<(String, String)>,
    /// Node objects of servers that are not in the list any more, deleted after the restore.
    pub removed_nodes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct RestoreError {
    /// Whether the cluster was already reset (the snapshot is live on the first server): a
    /// re-run must continue from there, never restore again over what was written since.
    pub reset_done: bool,
    #[source]
    pub source: OpsError,
}

fn before(source: OpsError) -> RestoreError {
    RestoreError {
        reset_done: false,
        source,
    }
}

fn after(source: OpsError) -> RestoreError {
    RestoreError {
        reset_done: true,
        source,
    }
}

/// A snapshot name as k3s writes it: a file name, never a path.
pub fn valid_snapshot_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn step(n: &Node, step: &str, message: impl Into<String>) -> OpsError {
    OpsError::Step {
        host: n.target().to_string(),
        step: step.into(),
        message: message.into(),
    }
}

/// Every snapshot under `snapshot_dir` (one directory per server, as the servers write them),
/// read on the first server that answers. Newest first.
pub async fn list_snapshots(
    pool: &SshPool,
    servers: &[Node],
    snapshot_dir: &str,
) -> Result<Vec<SnapshotFile>, OpsError> {
    let dir = snapshot_dir.trim_end_matches('/');
    let script = format!(
        "test -d {d} || {{ echo no such directory: {d} >&2; exit 3; }}; find {d} -mindepth 2 -maxdepth 2 -type f -not -path '*/.metadata/*' -printf '%p\\t%s\\t%T@\\n'",
        d = quote(dir)
    );
    let mut tried = vec![];
    for s in servers {
        match pool
            .run_within(&s.target(), "list etcd snapshots", &script, READ_STEP)
            .await
        {
            Ok(out) => {
                let mut files = parse_snapshot_list(&out);
                files.sort_by(|a, b| {
                    b.modified_unix
                        .cmp(&a.modified_unix)
                        .then(a.name.cmp(&b.name))
                });
                return Ok(files);
            }
            Err(e) if e.is_unreachable() => tried.push(format!("{}: {e}", s.name)),
            Err(e) => return Err(e.into()),
        }
    }
    Err(OpsError::NoServer(tried.join("; ")))
}

/// `find -printf '%p\t%s\t%T@\n'` output; lines that do not parse are skipped.
pub fn parse_snapshot_list(out: &str) -> Vec<SnapshotFile> {
    out.lines()
        .filter_map(|line| {
            let mut f = line.split('\t');
            let path = f.next()?.to_string();
            let size_bytes = f.next()?.trim().parse().ok()?;
            let modified_unix = f.next()?.trim().split('.').next()?.parse().ok()?;
            let name = path.rsplit('/').next()?.to_string();
            Some(SnapshotFile {
                name,
                path,
                size_bytes,
                modified_unix,
            })
        })
        .collect()
}

/// The path of snapshot `name` on the share; exactly one server directory must hold it.
pub async fn find_snapshot(
    pool: &SshPool,
    servers: &[Node],
    snapshot_dir: &str,
    name: &str,
) -> Result<String, OpsError> {
    let files = list_snapshots(pool, servers, snapshot_dir).await?;
    let found: Vec<&SnapshotFile> = files.iter().filter(|f| f.name == name).collect();
    match found.as_slice() {
        [one] => Ok(one.path.clone()),
        [] => {
            let newest: Vec<&str> = files.iter().take(5).map(|f| f.name.as_str()).collect();
            Err(OpsError::NoServer(format!(
                "snapshot {name:?} is not on the backup share under {snapshot_dir}. Newest there: {}. List them with `ffe-ha etcd snapshots`",
                if newest.is_empty() { "none".to_string() } else { newest.join(", ") }
            )))
        }
        many => {
            Err(OpsError::NoServer(format!(
            "snapshot {name:?} is in more than one server directory ({}); move the wrong copy away",
            many.iter().map(|f| f.path.as_str()).collect::<Vec<_>>().join(", ")
        )))
        }
    }
}

/// Rewrite only the join lines of a node's config: `cluster-init` for the restoring server,
/// `server: https://<via>:6443` for the others. Everything else stays byte for byte (the drift
/// hash leaves the join lines out, ADR 0015).
pub fn join_lines_script(via: Option<&str>) -> String {
    let line = match via {
        None => "cluster-init: true".to_string(),
        Some(addr) => format!("server: https://{addr}:6443"),
    };
    format!(
        "sed -i -e '/^server:/d' -e '/^cluster-init:/d' {CONFIG_PATH} && printf '%s\\n' {} >> {CONFIG_PATH}",
        quote(&line)
    )
}

/// Restore `snapshot_path` with k3s's cluster-reset sequence. `servers[0]` restores it; the
/// others, their old data moved aside before the reset, join it one at a time afterwards. Every server must answer SSH and have k3s installed
/// (its unit and config) before anything stops; otherwise nothing is changed. Node objects of
/// control-plane nodes not in `servers` are deleted once the restored API serves.
pub async fn cluster_reset(
    pool: &SshPool,
    servers: &[Node],
    snapshot_path: &str,
    timeout: Duration,
) -> Result<RestoreReport, RestoreError> {
    let Some((first, peers)) = servers.split_first() else {
        return Err(before(OpsError::NoServer(
            "no server to restore onto".into(),
        )));
    };
    // 0. Nothing stops unless every server can take part.
    let check = format!(
        "command -v k3s >/dev/null || {{ echo 'k3s is not installed' >&2; exit 3; }}; test -f {SERVER_UNIT_FILE} || {{ echo 'the k3s server unit is missing' >&2; exit 3; }}; test -f {CONFIG_PATH} || {{ echo '{CONFIG_PATH} is missing' >&2; exit 3; }}"
    );
    let futs: Vec<_> = servers
        .iter()
        .map(|s| {
            let script = if s.name == first.name {
                format!(
                    "{check}; test -r {p} || {{ echo 'cannot read the snapshot {p} (is the backup share mounted?)' >&2; exit 3; }}",
                    p = quote(snapshot_path)
                )
            } else {
                check.clone()
            };
            async move {
                pool.run_within(&s.target(), "check the server can be restored", &script, READ_STEP)
                    .await
                    .map(|_| ())
                    .map_err(OpsError::from)
            }
        })
        .collect();
    let problems: Vec<String> = stream::iter(futs)
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect();
    if !problems.is_empty() {
        return Err(before(OpsError::Many {
            count: problems.len(),
            details: format!(
                "{}\nNothing was stopped. Every server in the list must answer and run k3s before a restore; replace a dead one by a new host first (or, with Terraform, give its new address in the same apply)",
                problems.join("\n  - ")
            ),
        }));
    }
    // 1. Stop every server.
    let futs: Vec<_> = servers
        .iter()
        .map(|s| async move {
            pool.run_within(&s.target(), "stop k3s", "systemctl stop k3s", READ_STEP)
                .await
                .map(|_| ())
                .map_err(OpsError::from)
        })
        .collect();
    let stopped: Vec<Result<(), OpsError>> = stream::iter(futs).buffer_unordered(8).collect().await;
    if let Some(e) = stopped.into_iter().find_map(Result::err) {
        // Some may be stopped: k3s's own restart brings them back, no data was touched.
        return Err(before(OpsError::Step {
            host: "servers".into(),
            step: "stop k3s".into(),
            message: format!("{e}. No data was touched; start k3s again on the servers that stopped (`systemctl start k3s`) or run the restore again"),
        }));
    }
    let mut report = RestoreReport {
        snapshot: snapshot_path.to_string(),
        restored_on: first.name.clone(),
        old_data: vec![],
        removed_nodes: vec![],
    };
    // 2. Before the reset, every other server loses its old data (moved aside, kept) and is told
    // to join the first: from here on none of them can come back as a member of the old cluster
    // (two old members would be a quorum beside the restored one), whatever fails later.
    for p in peers {
        let script = format!(
            "set -e; {}; if [ -d {DB_DIR} ]; then d={DB_DIR}.before-restore-$(date -u +%Y%m%dT%H%M%SZ); mv {DB_DIR} \"$d\"; echo \"$d\"; fi",
            join_lines_script(Some(&first.address))
        );
        let moved = pool
            .run_within(&p.target(), "move the old etcd data aside", &script, READ_STEP)
            .await
            .map_err(|e| {
                before(step(
                    p,
                    "move the old etcd data aside",
                    format!("{e}\nNothing was reset. Servers are stopped; data already moved: {}. Run the restore again (it continues), or to go back move each directory back to {DB_DIR} and start k3s", report.kept_data()),
                ))
            })?;
        if let Some(d) = moved.lines().last().filter(|l| !l.trim().is_empty()) {
            report.old_data.push((p.name.clone(), d.trim().to_string()));
        }
    }
    // 3. Reset onto the snapshot on the first server.
    let reset = format!(
        "{}; k3s server --cluster-reset --cluster-reset-restore-path={} 2>&1",
        join_lines_script(None),
        quote(snapshot_path)
    );
    let reset_result = pool
        .run_within(
            &first.target(),
            "k3s server --cluster-reset",
            &reset,
            timeout,
        )
        .await;
    // k3s moves the first server's own data to db/etcd-old-<time> before it restores.
    let kept_first = pool
        .run_within(
            &first.target(),
            "find the first server's previous etcd data",
            &format!("ls -d {DB_DIR}/etcd-old-* 2>/dev/null | tail -n 1"),
            READ_STEP,
        )
        .await
        .ok()
        .map(|o| o.trim().to_string())
        .filter(|o| !o.is_empty());
    if let Some(d) = &kept_first {
        report.old_data.insert(0, (first.name.clone(), d.clone()));
    }
    let out = reset_result.map_err(|e| {
        before(step(
            first,
            "k3s server --cluster-reset",
            format!("{e}\nThe reset did not finish. Do not start k3s on any server by hand. Previous etcd data: {}. Fix the cause (a snapshot taken before a token rotation needs the token of its time) and run the restore again", report.kept_data()),
        ))
    })?;
    tracing::info!(server = %first.name, output = %crate::ssh::tail(&out, 3), "etcd reset onto the snapshot");
    // 4. Start it and wait for its API.
    pool.run_within(&first.target(), "start k3s", "systemctl start k3s", timeout)
        .await
        .map_err(|e| after(OpsError::from(e)))?;
    wait_readyz(pool, first, timeout).await.map_err(after)?;
    // Servers the snapshot knows but the list does not: their members are gone with the reset;
    // their Node objects go too, so nothing counts them.
    let nodes = pool
        .run_within(
            &first.target(),
            "list nodes",
            &format!("{KUBECTL} get nodes -o json"),
            READ_STEP,
        )
        .await
        .map_err(|e| after(e.into()))?;
    let listed = parse_node_list(&nodes).map_err(|m| after(step(first, "list nodes", m)))?;
    for n in listed
        .iter()
        .filter(|n| n.control_plane && !servers.iter().any(|s| s.name == n.name))
    {
        pool.run_within(
            &first.target(),
            "delete the Node of a server that is gone",
            &format!("{KUBECTL} delete node {}", quote(&n.name)),
            READ_STEP,
        )
        .await
        .map_err(|e| after(e.into()))?;
        report.removed_nodes.push(n.name.clone());
    }
    // 5. The others, one at a time, join through the first (their data was moved in step 2).
    for p in peers {
        pool.run_within(&p.target(), "start k3s", "systemctl start k3s", timeout)
            .await
            .map_err(|e| {
                after(step(
                    p,
                    "start k3s",
                    format!("{e}\nThe snapshot is restored on {}; this server did not rejoin (its old data is already aside). Fix the cause and apply again (or `systemctl start k3s` on it): it joins through {}", first.name, first.address),
                ))
            })?;
        wait_readyz(pool, p, timeout).await.map_err(after)?;
    }
    Ok(report)
}

impl RestoreReport {
    /// `host:dir` of every server's kept etcd data, or "none".
    pub fn kept_data(&self) -> String {
        if self.old_data.is_empty() {
            "none".into()
        } else {
            self.old_data
                .iter()
                .map(|(h, d)| format!("{h}:{d}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

/// Poll the node's own API server until `/readyz` says ok.
async fn wait_readyz(pool: &SshPool, n: &Node, timeout: Duration) -> Result<(), OpsError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last;
    let mut pause = Duration::from_millis(250);
    loop {
        match pool
            .run_within(
                &n.target(),
                "check server health",
                &format!("{KUBECTL} get --raw /readyz"),
                READ_STEP,
            )
            .await
        {
            Ok(out) if out.trim() == "ok" => return Ok(()),
            Ok(out) => last = out.trim().to_string(),
            Err(e) if e.is_unreachable() => return Err(e.into()),
            Err(e) => last = e.to_string(),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(step(
                n,
                "wait for the API server",
                format!(
                    "/readyz did not answer ok within {} s (last: {last})",
                    timeout.as_secs()
                ),
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_are_file_names_only() {
        for ok in [
            "etcd-snapshot-m0-1733300000",
            "on-demand-m1-1733300000.zip",
            "drill_1",
        ] {
            assert!(valid_snapshot_name(ok), "{ok}");
        }
        for bad in [
            "",
            "..",
            "../etc/passwd",
            "/mnt/backups/x",
            "-rf",
            "a b",
            "a;b",
        ] {
            assert!(!valid_snapshot_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_share_listing_parses_and_skips_junk() {
        let out = "/mnt/backups/etcd-snapshots/m0/etcd-snapshot-m0-1733300000\t4096\t1733300000.1234567890\n\
                   garbage line\n\
                   /mnt/backups/etcd-snapshots/m1/on-demand-m1-1733300100\t10\t1733300100.0\n";
        let files = parse_snapshot_list(out);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].name, "etcd-snapshot-m0-1733300000");
        assert_eq!(files[0].size_bytes, 4096);
        assert_eq!(files[0].modified_unix, 1733300000);
        assert_eq!(
            files[1].path,
            "/mnt/backups/etcd-snapshots/m1/on-demand-m1-1733300100"
        );
    }

    /// The join-line edit run on a real config: only the join lines change.
    #[test]
    fn only_the_join_lines_are_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.yaml");
        let original = "token: \"K10x::server:s\"\ncluster-init: true\nnode-name: \"m0\"\ntls-san:\n  - \"10.0.0.1\"\n";
        for (via, want_server, want_init) in [
            (Some("10.210.1.12"), Some("https://10.210.1.12:6443"), false),
            (None, None, true),
        ] {
            std::fs::write(&cfg, original).unwrap();
            let script = join_lines_script(via).replace(CONFIG_PATH, &cfg.display().to_string());
            let st = std::process::Command::new("sh")
                .args(["-c", &script])
                .status()
                .unwrap();
            assert!(st.success());
            let text = std::fs::read_to_string(&cfg).unwrap();
            let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
            assert_eq!(v["server"].as_str(), want_server, "{text}");
            assert_eq!(v["cluster-init"].as_bool().unwrap_or(false), want_init);
            assert_eq!(v["node-name"].as_str(), Some("m0"));
            assert_eq!(v["tls-san"][0].as_str(), Some("10.0.0.1"));
            assert_eq!(v["token"].as_str(), Some("K10x::server:s"));
        }
    }
}

//! etcd snapshots and k3s's cluster reset, as the stand-in plays them.
//!
//! - `k3s etcd-snapshot save [--name N]` (k3s `cli/etcd-snapshot`): on a host whose server runs,
//!   writes `<etcd-snapshot-dir>/<name>-<node>-<unix seconds>` (default name `on-demand`, default
//!   dir `/var/lib/rancher/k3s/server/db/snapshots`), mode 0600. The stand-in's snapshot is the
//!   lab datastore as JSON, not an etcd database.
//! - `k3s server --cluster-reset --cluster-reset-restore-path=P` (docs.k3s.io
//!   datastore/backup-restore; k3s-io/k3s #8166 for the messages): k3s must not run on the host;
//!   the config's token must be the one the snapshot was taken under; the datastore becomes the
//!   snapshot with this node as the only etcd member; a Node is Ready only if its k3s runs now on
//!   the same host (its kubelet reports into the restored API). Peers keep their old data, which
//!   now names a member the cluster no longer has: their start fails until it is moved away
//!   (units.rs).
//!
//! Not modelled: k3s's node-password check (a host that re-registers an existing node name with
//! another password is refused by k3s; the stand-in refuses only while the old Node is Ready),
//! snapshot compression and S3.

use std::collections::BTreeMap;

use super::datastore::ClusterState;
use super::units::{UnitsState, ETCD_DATA_MARKER};
use super::{now_ns, write_file, HostEnv, K3sConfig, Outcome, StandinError, CONFIG_YAML};

/// Where k3s writes snapshots without `etcd-snapshot-dir`.
pub const DEFAULT_SNAPSHOT_DIR: &str = "/var/lib/rancher/k3s/server/db/snapshots";
/// k3s's etcd data directory and its parent.
const ETCD_DIR: &str = "/var/lib/rancher/k3s/server/db/etcd";
const DB_DIR: &str = "/var/lib/rancher/k3s/server/db";
/// First line of every stand-in snapshot file.
const SNAPSHOT_HEADER: &str = "ffe-lab k3s stand-in etcd snapshot (not an etcd database)";

fn failed(msg: impl Into<String>) -> StandinError {
    StandinError::failed(1, msg.into())
}

/// `--flag value` or `--flag=value` from `args`.
fn flag(args: &[String], name: &str) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == name {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix(&format!("{name}=")) {
            return Some(v.to_string());
        }
    }
    None
}

fn read_config(host: &HostEnv) -> Result<K3sConfig, StandinError> {
    let path = host.path(CONFIG_YAML);
    let text = std::fs::read_to_string(&path).map_err(|e| StandinError::io(&path, e))?;
    K3sConfig::parse(&text)
}

/// `k3s etcd-snapshot [save] [--name N] [--etcd-snapshot-dir D]`.
pub fn save(args: &[String], host: &HostEnv) -> Result<Outcome, StandinError> {
    host.ensure_lab_host()?;
    let args = match args.first().map(String::as_str) {
        Some("save") => &args[1..],
        Some(a) if a.starts_with('-') => args,
        None => args,
        Some(other) => {
            return Err(failed(format!(
                "k3s stand-in: `k3s etcd-snapshot {other}` is not modelled (only save)"
            )))
        }
    };
    let units = UnitsState::load(host)?;
    let node = units
        .node
        .clone()
        .filter(|n| n.role == super::Role::Server && units.get("k3s").active)
        .ok_or_else(|| {
            failed("failed to get etcd status: context deadline exceeded (k3s stand-in: no server runs on this host)")
        })?;
    let cfg = read_config(host)?;
    let dir = flag(args, "--etcd-snapshot-dir")
        .or_else(|| {
            cfg.other
                .get("etcd-snapshot-dir")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| DEFAULT_SNAPSHOT_DIR.to_string());
    let name = flag(args, "--name").unwrap_or_else(|| "on-demand".into());
    let state = host
        .datastore()
        .read()?
        .ok_or_else(|| failed("k3s stand-in: no cluster"))?;
    let file = format!(
        "{}/{name}-{}-{}",
        dir.trim_end_matches('/'),
        node.name,
        now_ns() / 1_000_000_000
    );
    let body = serde_json::to_string(&state)
        .map_err(|e| failed(format!("k3s stand-in: snapshot: {e}")))?;
    write_file(
        &host.path(&file),
        format!("{SNAPSHOT_HEADER}\n{body}\n").as_bytes(),
        0o600,
    )?;
    Ok(Outcome::ok(format!("Snapshot {file} saved.")))
}

fn read_snapshot(host: &HostEnv, path: &str) -> Result<ClusterState, StandinError> {
    let text = std::fs::read_to_string(host.path(path))
        .map_err(|_| failed(format!("etcd: snapshot path does not exist: {path}")))?;
    let body = text
        .strip_prefix(SNAPSHOT_HEADER)
        .ok_or_else(|| failed(format!("etcd: {path} is not a snapshot (k3s stand-in)")))?;
    serde_json::from_str(body.trim()).map_err(|e| {
        failed(format!(
            "etcd: snapshot {path} is damaged: {e} (k3s stand-in)"
        ))
    })
}

/// `k3s server --cluster-reset [--cluster-reset-restore-path=P]`.
pub fn cluster_reset(
    args: &[String],
    env: &BTreeMap<String, String>,
    host: &HostEnv,
) -> Result<Outcome, StandinError> {
    host.ensure_lab_host()?;
    if UnitsState::load(host)?.get("k3s").active {
        return Err(failed(
            "etcd: listen tcp 127.0.0.1:2380: bind: address already in use (k3s stand-in: k3s still runs on this host; stop it first)",
        ));
    }
    let cfg = read_config(host)?;
    let name = cfg
        .node_name
        .clone()
        .unwrap_or_else(|| host.hostname.clone());
    let token = flag(args, "--token")
        .or_else(|| env.get("K3S_TOKEN").cloned())
        .or(cfg.token.clone())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| failed("--token is required to restore a snapshot (k3s stand-in)"))?;
    let own_data = std::fs::read_to_string(host.path(ETCD_DATA_MARKER)).ok();
    let restored = match flag(args, "--cluster-reset-restore-path") {
        Some(path) => {
            // Like k3s's Restore(): the node's own data moves to db/etcd-old-<unix time> first;
            // only then is the snapshot read and its bootstrap data decrypted with the token.
            let etcd = host.path(ETCD_DIR);
            if etcd.is_dir() {
                let old = host.path(&format!("{DB_DIR}/etcd-old-{}", now_ns() / 1_000_000_000));
                std::fs::rename(&etcd, &old).map_err(|e| StandinError::io(&etcd, e))?;
            }
            let snap = read_snapshot(host, &path)?;
            if !snap.token_matches(&token) {
                return Err(failed(
                    "failed to decrypt bootstrap data: the token is not the one the snapshot was taken with (k3s stand-in)",
                ));
            }
            snap
        }
        // A reset without a snapshot keeps this host's own data.
        None => {
            let current = host
                .datastore()
                .read()?
                .filter(|c| own_data.as_deref().map(str::trim) == Some(c.ca_hash.as_str()))
                .ok_or_else(|| failed("etcd: no etcd data on this host to reset (k3s stand-in)"))?;
            current
        }
    };
    let ca_hash = restored.ca_hash.clone();
    host.datastore().update(|s| {
        let mut st = restored.clone();
        st.etcd_members = vec![name.clone()];
        st.join_in_progress.clear();
        // A Node keeps the readiness its kubelet reports now (a running agent heartbeats into
        // the restored API at once); one whose host runs nothing is NotReady.
        for (node, n) in st.nodes.iter_mut() {
            n.ready = s
                .as_ref()
                .and_then(|c| c.nodes.get(node))
                .is_some_and(|c| c.ready && c.host == n.host);
        }
        *s = Some(st);
        Ok(())
    })?;
    write_file(&host.path(ETCD_DATA_MARKER), ca_hash.as_bytes(), 0o600)?;
    Ok(Outcome::ok(
        "Managed etcd cluster membership has been reset, restart without --cluster-reset flag now. Backup and delete ${datadir}/server/db on each peer etcd server and rejoin the nodes",
    ))
}

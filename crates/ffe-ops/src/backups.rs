//! `backups.fresh`: the newest backup of each kind on the shared backup mount, judged against the
//! same age limit as the kind's alert (monitoring/rules/backups.yaml, via `ops_inventory`).
//! One SSH command on one server reads every kind: the share is the same on every node
//! (`ffe-ha preflight`'s `backup.shared`).

use std::time::Duration;

use ffe_core::shell::quote;
use ffe_core::ssh::SshPool;

use crate::check::{Check, Status};
use crate::inventory::{BackupKind, Inventory, Role};

pub const BACKUP_CHECK_IDS: &[&str] = &["backups.fresh"];

/// Each directory listing may take this long on the node (a hung NFS share must not hang us).
const LIST_SECS: u64 = 4;
const PROBE_LIMIT: Duration = Duration::from_secs(10);

/// One place to look: a kind, and for per-server kinds the server.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spot {
    kind: String,
    subject: String,
    path: String,
    pgbackrest: bool,
}

fn spots(inv: &Inventory) -> Vec<(Spot, &BackupKind)> {
    let mut out = vec![];
    for b in &inv.backups {
        let base = format!("{}/{}", inv.backup_mount, b.dir.trim_end_matches('/'));
        if b.per_server {
            for n in inv.nodes.iter().filter(|n| n.role == Role::Server) {
                out.push((
                    Spot {
                        kind: b.kind.clone(),
                        subject: format!("{} {}", b.kind, n.name),
                        path: format!("{base}/{}", n.name),
                        pgbackrest: false,
                    },
                    b,
                ));
            }
        } else {
            out.push((
                Spot {
                    kind: b.kind.clone(),
                    subject: b.kind.clone(),
                    path: base,
                    pgbackrest: b.files.ends_with("backup.info"),
                },
                b,
            ));
        }
    }
    out
}

/// The node-side script: for each spot, `@@ <index>` then either the newest matching file
/// (`newest <mtime> <count> <name>`), `none`, `nodir`, `hung`, or the pgBackRest `backup.info`
/// text; finally the node's clock.
fn script(spots: &[(Spot, &BackupKind)]) -> String {
    let mut s = String::new();
    for (i, (spot, b)) in spots.iter().enumerate() {
        s.push_str(&format!("echo '@@ {i}'\n"));
        let dir = quote(&spot.path);
        if spot.pgbackrest {
            let file = quote(&format!("{}/{}", spot.path, b.files));
            s.push_str(&format!(
                "timeout {LIST_SECS} test -d {dir}; r=$?\n\
                 if [ $r = 124 ]; then echo hung; elif [ $r != 0 ]; then echo nodir\n\
                 elif timeout {LIST_SECS} test -f {file}; then timeout {LIST_SECS} cat {file} || echo hung; else echo none; fi\n"
            ));
        } else {
            let pattern = quote(&b.files);
            // find prints "<mtime> <name>" per file; awk reports the newest and the count.
            s.push_str(&format!(
                "timeout {LIST_SECS} test -d {dir}; r=$?\n\
                 if [ $r = 124 ]; then echo hung\n\
                 elif [ $r != 0 ]; then echo nodir\n\
                 elif l=$(timeout {LIST_SECS} find {dir} -maxdepth 1 -type f -name {pattern} -printf '%T@ %f\\n'); then\n\
                 if [ -z \"$l\" ]; then echo none; else printf '%s\\n' \"$l\" | sort -n | awk '{{t=$1; f=$2}} END {{print \"newest\", t, NR, f}}'; fi\n\
                 else echo hung; fi\n"
            ));
        }
    }
    s.push_str("echo \"@@ now $(date +%s)\"\n");
    s
}

/// What one spot held.
#[derive(Debug, Clone, PartialEq)]
enum Found {
    Newest {
        at: f64,
        count: u64,
        name: String,
    },
    None,
    NoDir,
    Hung,
    /// pgBackRest's `backup.info` (None: no completed backup in it).
    Info(Option<BackupInfo>),
    Unreadable(String),
}

/// What a pgBackRest `backup.info` holds: the newest error-free backup of any type and of type
/// full (stop time, label), and how many error-free backups there are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    pub newest: (i64, String),
    pub newest_full: Option<(i64, String)>,
    pub count: usize,
}

/// Read `[backup:current]` of a pgBackRest `backup.info`: one `label={json}` line per backup,
/// with `backup-timestamp-stop`, `backup-type` and, from 2.5x, `backup-error` (pgBackRest
/// src/info/infoBackup.c).
pub fn newest_in_backup_info(text: &str) -> Option<BackupInfo> {
    let mut in_current = false;
    let mut newest: Option<(i64, String)> = None;
    let mut newest_full: Option<(i64, String)> = None;
    let mut count = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_current = line == "[backup:current]";
            continue;
        }
        if !in_current {
            continue;
        }
        let Some((label, json)) = line.split_once('=') else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
            continue;
        };
        if v["backup-error"].as_bool() == Some(true) {
            continue;
        }
        let Some(stop) = v["backup-timestamp-stop"].as_i64() else {
            continue;
        };
        count += 1;
        let kind = v["backup-type"].as_str().unwrap_or("?");
        let entry = (stop, format!("{label} ({kind})"));
        if newest.as_ref().is_none_or(|(t, _)| stop > *t) {
            newest = Some(entry.clone());
        }
        if kind == "full" && newest_full.as_ref().is_none_or(|(t, _)| stop > *t) {
            newest_full = Some(entry);
        }
    }
    newest.map(|newest| BackupInfo {
        newest,
        newest_full,
        count,
    })
}

fn parse(out: &str, n: usize, pgbackrest: &[bool]) -> (Vec<Found>, Option<f64>) {
    let mut found = vec![Found::Unreadable("no answer for it".into()); n];
    let mut now = None;
    let mut current: Option<usize> = None;
    let mut text = String::new();
    let flush = |current: Option<usize>, text: &mut String, found: &mut Vec<Found>| {
        if let Some(i) = current.filter(|i| *i < n) {
            let t = text.trim();
            found[i] = match t {
                "none" => Found::None,
                "nodir" => Found::NoDir,
                "hung" => Found::Hung,
                _ if pgbackrest[i] => Found::Info(newest_in_backup_info(t)),
                _ => t
                    .strip_prefix("newest ")
                    .and_then(|r| {
                        let mut it = r.splitn(3, ' ');
                        Some(Found::Newest {
                            at: it.next()?.parse().ok()?,
                            count: it.next()?.parse().ok()?,
                            name: it.next()?.to_string(),
                        })
                    })
                    .unwrap_or_else(|| Found::Unreadable(t.chars().take(120).collect())),
            };
        }
        text.clear();
    };
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("@@ ") {
            flush(current, &mut text, &mut found);
            if let Some(t) = rest.strip_prefix("now ") {
                now = t.trim().parse().ok();
                current = None;
            } else {
                current = rest.trim().parse().ok();
            }
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    flush(current, &mut text, &mut found);
    (found, now)
}

pub(crate) fn hours(secs: f64) -> String {
    if secs < 5400.0 {
        format!("{:.0} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

fn judge(spot: &Spot, b: &BackupKind, found: &Found, now: f64) -> Check {
    let row =
        |status, evidence: String| Check::new("backups.fresh", &spot.subject, status, evidence);
    let limit = b.max_age_seconds;
    let mut full_problem = None;
    let newest = match found {
        Found::Newest { at, count, name } => (*at, format!("{name} ({count} kept)")),
        Found::Info(Some(info)) => {
            if let Some(max) = b.max_full_age_seconds {
                full_problem = match &info.newest_full {
                    None => Some("no full backup".to_string()),
                    Some((at, label)) if now - *at as f64 > max as f64 => Some(format!(
                        "the newest full backup {label} is {} old, older than its limit {}",
                        hours(now - *at as f64),
                        hours(max as f64)
                    )),
                    Some(_) => None,
                };
            }
            (info.newest.0 as f64, format!("backup {} ({} kept)", info.newest.1, info.count))
        }
        Found::Info(None) => {
            return row(Status::Warn, format!("{}: no completed backup in backup.info", spot.path))
                .hint("The operator takes a full backup when the cluster is created; check `kubectl -n ffe-data get perconapgbackups`")
        }
        Found::None => {
            return row(Status::Warn, format!("{}: no backup yet", spot.path)).hint(format!(
                "The {} backup has not run yet (a new cluster), or every run failed: check its job and the backup alerts (docs/operations.md)",
                spot.kind
            ))
        }
        Found::NoDir => {
            // The directory appears with the first backup (a hostPath PV is DirectoryOrCreate).
            return row(Status::Warn, format!("{}: no backup yet (the directory does not exist yet)", spot.path))
                .hint(format!(
                    "The {} backup has not run yet (a new cluster), or writes elsewhere: check the backup share is mounted (`ffe-ha preflight`) and the kind's job or k3s's etcd-snapshot-dir",
                    spot.kind
                ))
        }
        Found::Hung => {
            return row(Status::Error, format!("{}: listing did not finish within {LIST_SECS} s (NFS share hung?)", spot.path))
        }
        Found::Unreadable(t) => return row(Status::Error, format!("{}: unreadable answer: {t}", spot.path)),
    };
    let age = (now - newest.0).max(0.0);
    let evidence = format!("newest {} is {} old", newest.1, hours(age));
    if let Some(p) = full_problem {
        return row(Status::Fail, format!("{evidence}; {p}"))
            .hint("Full backups stopped while others run: the same condition fires PgBackRestFullBackupTooOld. Check the full schedule's jobs (`kubectl -n ffe-data get perconapgbackups`)");
    }
    match limit {
        None => row(Status::Warn, format!("{evidence}; no age limit known for its schedule"))
            .hint("Its schedule is not daily, so the inventory has no age limit for it: judge the age yourself"),
        Some(max) if age <= max as f64 => row(Status::Pass, format!("{evidence} (limit {})", hours(max as f64))),
        Some(max) => row(Status::Fail, format!("{evidence}: older than the limit {}", hours(max as f64)))
            .hint(format!("Backups of {} stopped: the same condition fires its TooOld alert. Check its job's last runs (docs/operations.md, backups.fresh)", spot.kind)),
    }
}

/// Read every backup kind on the share from the first server that answers, and judge each.
pub async fn fresh(pool: &SshPool, inv: &Inventory) -> Vec<Check> {
    let spots = spots(inv);
    if spots.is_empty() {
        return vec![];
    }
    let script = script(&spots);
    let mut failures = vec![];
    for n in inv.nodes.iter().filter(|n| n.role == Role::Server) {
        let ran = tokio::time::timeout(
            PROBE_LIMIT + inv.ssh.connect_timeout + Duration::from_secs(2),
            pool.run_within(&n.target(), "read backup ages", &script, PROBE_LIMIT),
        )
        .await;
        match ran {
            Ok(Ok(out)) => {
                let flags: Vec<bool> = spots.iter().map(|(s, _)| s.pgbackrest).collect();
                let (found, now) = parse(&out, spots.len(), &flags);
                let Some(now) = now else {
                    failures.push(format!("{}: no clock in the answer", n.name));
                    continue;
                };
                return spots
                    .iter()
                    .zip(&found)
                    .map(|((spot, b), f)| judge(spot, b, f, now))
                    .collect();
            }
            Ok(Err(e)) => failures.push(e.to_string()),
            Err(_) => failures.push(format!("{}: no answer over SSH", n.name)),
        }
    }
    spots
        .iter()
        .map(|(spot, _)| {
            Check::new(
                "backups.fresh",
                &spot.subject,
                Status::Error,
                format!(
                    "no master could read the backup share: {}",
                    failures.join("; ")
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "[backrest]\nbackrest-format=5\n\n[backup:current]\n\
        20261201-010000F={\"backrest-format\":5,\"backup-timestamp-start\":1764550800,\"backup-timestamp-stop\":1764550900,\"backup-type\":\"full\"}\n\
        20261201-010000F_20261202-010000D={\"backup-error\":false,\"backup-timestamp-start\":1764637200,\"backup-timestamp-stop\":1764637300,\"backup-type\":\"diff\"}\n\
        20261201-010000F_20261203-010000D={\"backup-error\":true,\"backup-timestamp-start\":1764723600,\"backup-timestamp-stop\":1764723700,\"backup-type\":\"diff\"}\n\
        \n[db]\ndb-id=1\n";

    #[test]
    fn backup_info_gives_the_newest_backup_without_error() {
        let info = newest_in_backup_info(INFO).unwrap();
        assert_eq!(
            info.newest,
            (
                1764637300,
                "20261201-010000F_20261202-010000D (diff)".into()
            )
        );
        assert_eq!(
            info.newest_full,
            Some((1764550900, "20261201-010000F (full)".into()))
        );
        assert_eq!(info.count, 2);
        assert_eq!(newest_in_backup_info("[backup:current]\n"), None);
    }

    #[test]
    fn answers_map_to_their_spots() {
        let out = format!(
            "@@ 0\nnewest 1764637300.25 3 etcd-snapshot-m1-1764637300\n@@ 1\n{INFO}@@ 2\nnone\n@@ 3\nnodir\n@@ 4\nhung\n@@ now 1764640000\n"
        );
        let (found, now) = parse(&out, 5, &[false, true, false, false, false]);
        assert_eq!(now, Some(1764640000.0));
        assert_eq!(
            found[0],
            Found::Newest {
                at: 1764637300.25,
                count: 3,
                name: "etcd-snapshot-m1-1764637300".into()
            }
        );
        assert!(
            matches!(&found[1], Found::Info(Some(i)) if i.newest.0 == 1764637300 && i.count == 2)
        );
        assert_eq!(found[2], Found::None);
        assert_eq!(found[3], Found::NoDir);
        assert_eq!(found[4], Found::Hung);
    }

    fn kind(max: Option<u64>) -> BackupKind {
        BackupKind {
            kind: "pg_dump".into(),
            dir: "k8s/postgres-dumps".into(),
            per_server: false,
            files: "ffe-*.dump".into(),
            max_age_seconds: max,
            max_full_age_seconds: None,
        }
    }

    #[test]
    fn a_stale_full_backup_fails_behind_fresh_differentials() {
        let spot = Spot {
            kind: "pgbackrest".into(),
            subject: "pgbackrest".into(),
            path: "/mnt/backups/k8s/postgres-pgbackrest".into(),
            pgbackrest: true,
        };
        let mut b = kind(Some(108_000));
        b.max_full_age_seconds = Some(626_400);
        let info = newest_in_backup_info(INFO).unwrap();
        let fresh = judge(
            &spot,
            &b,
            &Found::Info(Some(info.clone())),
            1764637300.0 + 60.0,
        );
        assert_eq!(fresh.status, Status::Pass, "{fresh:?}");
        // 8 days after the full, 1 h after a differential: the full is too old.
        let at = 1764550900.0 + 8.0 * 86400.0;
        let mut newer = info;
        newer.newest = (at as i64 - 3600, "diff".into());
        let stale = judge(&spot, &b, &Found::Info(Some(newer)), at);
        assert_eq!(stale.status, Status::Fail, "{stale:?}");
        assert!(
            stale
                .evidence
                .contains("the newest full backup 20261201-010000F (full) is 192.0 h old"),
            "{stale:?}"
        );
    }

    #[test]
    fn ages_are_judged_against_the_limit() {
        let spot = Spot {
            kind: "pg_dump".into(),
            subject: "pg_dump".into(),
            path: "/mnt/backups/k8s/postgres-dumps".into(),
            pgbackrest: false,
        };
        let f = Found::Newest {
            at: 1000.0,
            count: 2,
            name: "ffe-x.dump".into(),
        };
        assert_eq!(
            judge(&spot, &kind(Some(3600)), &f, 4000.0).status,
            Status::Pass
        );
        let late = judge(&spot, &kind(Some(3600)), &f, 5000.0);
        assert_eq!(late.status, Status::Fail);
        assert!(late.evidence.contains("67 min old"), "{late:?}");
        assert_eq!(judge(&spot, &kind(None), &f, 4000.0).status, Status::Warn);
        assert_eq!(
            judge(&spot, &kind(Some(3600)), &Found::NoDir, 0.0).status,
            Status::Warn
        );
        assert_eq!(
            judge(&spot, &kind(Some(3600)), &Found::None, 0.0).status,
            Status::Warn
        );
    }
}

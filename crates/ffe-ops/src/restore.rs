//! `ffe-ha backup verify`: restore the newest backups into scratch space, check them, and report
//! the recovery point against the seed's RPO.
//! - Postgres: a Job from the restore-check CronJob (terraform/modules/postgres, the way `kubectl
//!   create job --from=cronjob/...` makes one) restores the newest pgBackRest backup set and
//!   every archived WAL segment after it into an emptyDir, starts it, lists the databases and runs
//!   `pg_amcheck`; we wait for it, read its log, delete it.
//! - Vault: the newest Raft snapshot on the backup share is read over SSH and checked here: the
//!   gzip tar opens, every file `SHA256SUMS` lists is present with that digest, `meta.json` names
//!   the Raft index and term. Then it is restored into a scratch OpenBao on this machine
//!   ([`scratch_restore`]: loopback only, a temporary directory removed afterwards) and unsealed
//!   with the cluster's unseal keys, which proves its keyring opens. The restore runs here, not in
//!   the cluster, because it needs the unseal keys and they must not enter the cluster.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ffe_core::kube::KubeApi;
use ffe_core::shell::quote;
use ffe_core::ssh::{SshPool, Target};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::backups::hours;
use crate::check::{Check, Report, Status};
use crate::drill::Notify;
use crate::inventory::{Inventory, Role};
use crate::verify::{kube_api, VerifyOptions};

pub const CHECK_IDS: &[&str] = &[
    "restore.postgres",
    "rpo.postgres",
    "restore.vault",
    "rpo.vault",
];

/// The seed's Recovery Point Objective: "Data loss tolerance: < 1 hour".
pub const SEED_RPO: Duration = Duration::from_secs(3600);
/// Every line the restore-check script reports starts with this.
const LOG_PREFIX: &str = "ffe-restore-check ";
/// Each API call may take this long.
const API_LIMIT: Duration = Duration::from_secs(10);
/// Reading the newest Vault snapshot (find, base64) on a node.
const SNAPSHOT_READ_SECS: u64 = 120;

pub struct RestoreOptions {
    /// The kubeconfig (and Vault CA) settings `verify` uses.
    pub verify: VerifyOptions,
    /// Stop waiting for the restore Job after this long (it is deleted then).
    pub timeout: Duration,
    /// How often the Job's status is read.
    pub poll: Duration,
    /// Leave the Job (and its pod and log) in the cluster afterwards.
    pub keep_job: bool,
    /// The `bao` (OpenBao) binary for the scratch restore of the Vault snapshot; `None`: `bao`
    /// on PATH.
    pub bao: Option<std::path::PathBuf>,
    /// The cluster's unseal key shares (base64): the restored snapshot opens only with them.
    /// `None`: the snapshot is checked by digest, not restored.
    pub vault_unseal_keys: Option<Vec<String>>,
    pub notify: Option<Notify>,
}

impl RestoreOptions {
    fn tell(&self, since: Instant, what: &str) {
        if let Some(n) = &self.notify {
            n(since.elapsed().as_secs_f64(), what);
        }
    }
}

/// Ctrl-C or SIGTERM, seen by every part of the run: listening from the start keeps the default
/// action (the process dies) from skipping the clean-up of the Job and of the scratch OpenBao.
#[derive(Clone)]
pub struct Stop(tokio::sync::watch::Receiver<bool>);

impl Stop {
    /// Start listening (for the rest of the process).
    pub fn listen() -> Self {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            crate::drill::interrupted().await;
            let _ = tx.send(true);
        });
        Stop(rx)
    }

    pub fn stopped(&self) -> bool {
        *self.0.borrow()
    }

    /// Until a signal came (never, when the listener is gone).
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// What the restore-check script printed (its `ffe-restore-check ...` lines).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RestoreLog {
    /// The backup set restored (the newest in `pgbackrest info`): label, type, stop time.
    pub backup: Option<(String, String, i64)>,
    /// The commit time of the last transaction replayed (`pg_last_xact_replay_timestamp`);
    /// `None` when the log says `none` (no transaction after the backup) or never said it.
    pub replayed: Option<i64>,
    pub replayed_line: bool,
    /// The WAL segment of the last record replayed (`pg_last_wal_replay_lsn`).
    pub replayed_wal: Option<String>,
    /// The newest segment in the repository's archive when the restore began.
    pub archive_max: Option<String>,
    pub databases: Vec<String>,
    pub amcheck_ok: bool,
    pub done: bool,
}

/// Read the script's report lines; anything else in the log (pgBackRest warnings) is ignored.
pub fn parse_log(log: &str) -> RestoreLog {
    let mut r = RestoreLog::default();
    for line in log.lines() {
        let Some(rest) = line.trim().strip_prefix(LOG_PREFIX) else {
            continue;
        };
        let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
        match key {
            "info" => {
                r.backup = newest_backup(value);
                r.archive_max = archive_max(value);
            }
            "replayed_wal" => r.replayed_wal = Some(value.trim().to_string()),
            "replayed" => {
                r.replayed_line = true;
                r.replayed = value.trim().parse().ok();
            }
            "databases" => {
                r.databases = value
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            "amcheck" => r.amcheck_ok = value.trim() == "ok",
            "done" => r.done = true,
            _ => {}
        }
    }
    r
}

/// The newest backup set in `pgbackrest info --output=json` (the one `restore` takes by
/// default): label, type and stop time of the last entry of the stanza's `backup` list.
fn newest_backup(info: &str) -> Option<(String, String, i64)> {
    let v: Value = serde_json::from_str(info.trim()).ok()?;
    let b = v.get(0)?["backup"].as_array()?.last()?;
    Some((
        b["label"].as_str()?.to_string(),
        b["type"].as_str().unwrap_or("?").to_string(),
        b["timestamp"]["stop"].as_i64()?,
    ))
}

/// The newest WAL segment of the stanza's newest archive (`archive[-1].max`).
fn archive_max(info: &str) -> Option<String> {
    let v: Value = serde_json::from_str(info.trim()).ok()?;
    Some(
        v.get(0)?["archive"].as_array()?.last()?["max"]
            .as_str()?
            .to_string(),
    )
}

/// Whether replay reached the archive's newest segment: compared by log and segment number (the
/// last 16 of the 24 hex digits), since the promotion starts a new timeline. `Err` says where
/// replay stopped.
pub fn replay_reached(replayed: Option<&str>, archive_max: Option<&str>) -> Result<(), String> {
    let position = |name: &str| {
        (name.len() == 24 && name.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| name[8..].to_ascii_uppercase())
    };
    match (replayed.and_then(position), archive_max.and_then(position)) {
        (Some(r), Some(m)) if r >= m => Ok(()),
        (Some(_), Some(_)) => Err(format!(
            "replay stopped in WAL segment {} but the archive holds segments up to {}: one between is missing or unreadable, and what was written after the stop is not restorable",
            replayed.unwrap_or_default(),
            archive_max.unwrap_or_default()
        )),
        _ => Err(format!(
            "the log does not say how far replay got (replayed {replayed:?}, archive up to {archive_max:?})"
        )),
    }
}

/// A Job made from `cronjob` as `kubectl create job --from=cronjob/NAME` makes it: the
/// jobTemplate's spec and labels, annotation `cronjob.kubernetes.io/instantiate: manual`, the
/// CronJob as its controlling owner (deleting the CronJob deletes it; the CronJob controller does
/// not count it as one of its runs, so `run_job` checks for a running one itself), and a
/// generated name.
pub fn job_from_cronjob(cronjob: &Value) -> Result<Value, String> {
    let meta = &cronjob["metadata"];
    let (Some(name), Some(uid)) = (meta["name"].as_str(), meta["uid"].as_str()) else {
        return Err("the CronJob has no metadata.name or metadata.uid".into());
    };
    let template = &cronjob["spec"]["jobTemplate"];
    if !template["spec"]["template"]["spec"]["containers"].is_array() {
        return Err(format!("CronJob {name} has no jobTemplate with containers"));
    }
    let mut annotations = template["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    annotations.insert("cronjob.kubernetes.io/instantiate".into(), "manual".into());
    Ok(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "generateName": format!("{name}-verify-"),
            "labels": template["metadata"]["labels"].clone(),
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "batch/v1", "kind": "CronJob", "name": name, "uid": uid,
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": template["spec"].clone(),
    }))
}

/// `Some(Ok)` once the Job's `Complete` condition is true, `Some(Err(reason))` once `Failed` is,
/// `None` while it runs.
pub fn job_finished(job: &Value) -> Option<Result<(), String>> {
    let conditions = job["status"]["conditions"].as_array()?;
    let is_true = |c: &&Value| c["status"].as_str() == Some("True");
    if conditions
        .iter()
        .filter(is_true)
        .any(|c| c["type"] == "Complete")
    {
        return Some(Ok(()));
    }
    conditions
        .iter()
        .filter(is_true)
        .find(|c| c["type"] == "Failed")
        .map(|c| {
            Err(format!(
                "{}{}",
                c["reason"].as_str().unwrap_or("Failed"),
                c["message"]
                    .as_str()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ))
        })
}

/// How the restore Job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEnd {
    Complete,
    Failed(String),
    /// Still running after `--timeout` (deleted).
    TimedOut,
    /// Ctrl-C or SIGTERM while waiting (deleted).
    Interrupted,
    /// The Job disappeared while we waited (HTTP 404).
    Gone,
}

/// One run of the restore Job: its name, how it ended, its pod's log and how long it ran.
#[derive(Debug, Clone)]
pub struct JobRun {
    pub name: String,
    pub end: JobEnd,
    pub log: String,
    pub seconds: f64,
    /// What went wrong tidying up (the Job could not be deleted).
    pub cleanup: Option<String>,
}

async fn run_job(
    api: &KubeApi,
    namespace: &str,
    cronjob: &str,
    opts: &RestoreOptions,
    since: Instant,
    stop: &Stop,
) -> Result<JobRun, String> {
    let jobs = format!("/apis/batch/v1/namespaces/{namespace}/jobs");
    let cj = api
        .get(&format!(
            "/apis/batch/v1/namespaces/{namespace}/cronjobs/{cronjob}"
        ))
        .await
        .map_err(|e| format!("reading CronJob {namespace}/{cronjob}: {e}"))?;
    let cj: Value = serde_json::from_str(&cj)
        .map_err(|e| format!("CronJob {namespace}/{cronjob}: not JSON: {e}"))?;
    // Two restores at once would need twice the node disk; the controller would not stop ours.
    if let Some(active) = cj["status"]["active"].as_array().filter(|a| !a.is_empty()) {
        let names: Vec<&str> = active.iter().filter_map(|j| j["name"].as_str()).collect();
        return Err(format!(
            "a scheduled restore check is running ({}): run backup verify again when it has finished (kubectl -n {namespace} get jobs)",
            names.join(", ")
        ));
    }
    let job = job_from_cronjob(&cj)?;
    if stop.stopped() {
        return Err("interrupted before the restore Job was created".into());
    }
    let created = api
        .create(&jobs, &job)
        .await
        .map_err(|e| format!("creating a Job from CronJob {namespace}/{cronjob}: {e}"))?;
    let created: Value = serde_json::from_str(&created).map_err(|e| {
        format!("the Job created from CronJob {namespace}/{cronjob}: not JSON: {e}")
    })?;
    let (Some(name), Some(uid)) = (
        created["metadata"]["name"].as_str(),
        created["metadata"]["uid"].as_str(),
    ) else {
        return Err(format!(
            "the Job created from CronJob {namespace}/{cronjob} has no name or uid"
        ));
    };
    let (name, uid) = (name.to_string(), uid.to_string());
    opts.tell(since, &format!("Job {namespace}/{name} created"));
    let started = Instant::now();
    let wait = async {
        loop {
            match api.get_raw(&format!("{jobs}/{name}")).await {
                Ok(a) if a.status == 404 => return JobEnd::Gone,
                Ok(a) if a.status == 200 => {
                    let job: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
                    match job_finished(&job) {
                        Some(Ok(())) => return JobEnd::Complete,
                        Some(Err(reason)) => return JobEnd::Failed(reason),
                        None => {}
                    }
                }
                // A passing API error (the VIP moving) is not the Job's end: the timeout is.
                Ok(a) => tracing::debug!("reading Job {name}: HTTP {}", a.status),
                Err(e) => tracing::debug!("reading Job {name}: {e}"),
            }
            tokio::time::sleep(opts.poll).await;
        }
    };
    let end = tokio::select! {
        end = tokio::time::timeout(opts.timeout, wait) => end.unwrap_or(JobEnd::TimedOut),
        _ = stop.wait() => JobEnd::Interrupted,
    };
    let seconds = started.elapsed().as_secs_f64();
    opts.tell(since, &format!("Job {name} ended: {end:?}"));
    let log = pod_log(api, namespace, &name, &uid)
        .await
        .unwrap_or_else(|e| format!("(no log of Job {namespace}/{name}: {e})"));
    let cleanup = if opts.keep_job || end == JobEnd::Gone {
        None
    } else {
        // Background: the pod (and its emptyDir with the restored data) goes with the Job.
        api.delete(&format!("{jobs}/{name}?propagationPolicy=Background"))
            .await
            .err()
            .map(|e| format!("Job {namespace}/{name} was not deleted ({e}); delete it with kubectl -n {namespace} delete job {name}"))
    };
    Ok(JobRun {
        name,
        end,
        log,
        seconds,
        cleanup,
    })
}

/// The log of the Job's pod: the first listed by the Job's own selector (its uid).
async fn pod_log(api: &KubeApi, namespace: &str, job: &str, uid: &str) -> Result<String, String> {
    let pods = api
        .get(&format!(
            "/api/v1/namespaces/{namespace}/pods?labelSelector=batch.kubernetes.io%2Fcontroller-uid%3D{uid}"
        ))
        .await
        .map_err(|e| e.to_string())?;
    let pods: Value = serde_json::from_str(&pods).map_err(|e| e.to_string())?;
    let pod = pods["items"]
        .get(0)
        .and_then(|p| p["metadata"]["name"].as_str())
        .ok_or_else(|| format!("Job {job} has no pod"))?;
    api.get(&format!("/api/v1/namespaces/{namespace}/pods/{pod}/log"))
        .await
        .map_err(|e| format!("pod {pod}: {e}"))
}

fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

fn epoch_text(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// `restore.postgres` and `rpo.postgres` from one run of the restore Job.
pub fn judge_postgres(run: &JobRun, now: i64) -> Vec<Check> {
    let log = parse_log(&run.log);
    let job = &run.name;
    let replay = replay_reached(log.replayed_wal.as_deref(), log.archive_max.as_deref());
    let restored = log.done && log.amcheck_ok && run.end == JobEnd::Complete && replay.is_ok();
    let backup = log
        .backup
        .as_ref()
        .map(|(label, kind, _)| format!("backup {label} ({kind})"))
        .unwrap_or_else(|| "no backup named in the log".into());
    let mut restore = if restored {
        Check::new(
            "restore.postgres",
            "postgres",
            Status::Pass,
            format!(
                "Job {job}: {backup} restored with every archived WAL segment after it in {:.0} s; started; databases {}; pg_amcheck found no corruption",
                run.seconds,
                log.databases.join(", ")
            ),
        )
    } else {
        let (status, why) = match (&run.end, &replay) {
            (JobEnd::Complete, Err(gap)) if log.done => {
                (Status::Fail, format!("completed, but {gap}"))
            }
            (JobEnd::Complete, _) => (
                Status::Fail,
                "completed without reporting every step".to_string(),
            ),
            (JobEnd::Failed(reason), _) => (Status::Fail, format!("failed ({reason})")),
            (JobEnd::Gone, _) => (
                Status::Error,
                "was deleted while it ran (by someone else, or garbage-collected)".to_string(),
            ),
            (JobEnd::TimedOut, _) => (
                Status::Error,
                format!("still running after {:.0} s: deleted", run.seconds),
            ),
            (JobEnd::Interrupted, _) => (Status::Error, "interrupted: deleted".to_string()),
        };
        Check::new(
            "restore.postgres",
            "postgres",
            status,
            format!("Job {job} {why}; {backup}; log: {}", tail(&run.log, 8)),
        )
        .hint("Read the whole log (`ffe-ha backup verify --keep-job`, then kubectl -n <namespace> logs job/<name>); docs/postgres.md, Restore check")
    };
    if let Some(c) = &run.cleanup {
        restore.evidence.push_str(&format!("; {c}"));
    }
    let rpo = match (restored, log.replayed, &log.backup) {
        (false, _, _) => Check::new(
            "rpo.postgres",
            "postgres",
            Status::Error,
            "not evaluated: the restore did not succeed",
        ),
        (true, replayed, Some((_, _, stop))) => {
            let (point, what) = match replayed {
                Some(t) if t >= *stop => (t, "the last transaction replayed committed"),
                _ => (*stop, "no transaction after the backup: the backup ended"),
            };
            let age = (now - point).max(0) as f64;
            let status = if age < SEED_RPO.as_secs_f64() {
                Status::Pass
            } else {
                Status::Warn
            };
            Check::new(
                "rpo.postgres",
                "postgres",
                status,
                format!(
                    "recovery point {} ({what}), {} ago; the seed's RPO: < 1 hour",
                    epoch_text(point),
                    hours(age)
                ),
            )
            .hint_if(status != Status::Pass, "Older than the RPO: either the database had no writes since then (nothing is lost) or WAL is not reaching the repository; compare with the newest commit on the primary and check backups.fresh and the PgBackRestArchiveFailing alert (docs/postgres.md)")
        }
        (true, _, None) => Check::new(
            "rpo.postgres",
            "postgres",
            Status::Error,
            "not evaluated: the log names no backup set",
        ),
    };
    vec![restore, rpo]
}

/// What a Raft snapshot holds, once its checksums match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFacts {
    /// Every file of the archive, in order.
    pub files: Vec<String>,
    pub index: u64,
    pub term: u64,
    pub state_bytes: u64,
}

/// Open a Vault/OpenBao Raft snapshot (gzip tar: `meta.json`, `state.bin`, `SHA256SUMS`,
/// `SHA256SUMS.sealed`) and check every digest `SHA256SUMS` lists. `SHA256SUMS.sealed` is
/// encrypted with the cluster's keys and only a live cluster can check it.
pub fn check_snapshot(bytes: &[u8]) -> Result<SnapshotFacts, String> {
    use std::io::Read;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut files = std::collections::BTreeMap::new();
    let mut order = vec![];
    let entries = archive
        .entries()
        .map_err(|e| format!("not a gzip tar archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("damaged archive: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("damaged archive: {e}"))?
            .display()
            .to_string();
        let mut data = vec![];
        entry
            .read_to_end(&mut data)
            .map_err(|e| format!("{path}: cannot be read: {e}"))?;
        order.push(path.clone());
        files.insert(path, data);
    }
    let sums = files
        .get("SHA256SUMS")
        .ok_or("no SHA256SUMS in the archive")?;
    let sums = String::from_utf8_lossy(sums);
    let mut listed = vec![];
    for line in sums.lines().filter(|l| !l.trim().is_empty()) {
        let (digest, name) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("SHA256SUMS line {line:?} is not `digest  name`"))?;
        let name = name.trim().trim_start_matches('*');
        let data = files
            .get(name)
            .ok_or_else(|| format!("{name} is listed in SHA256SUMS but not in the archive"))?;
        let actual = hex::encode(Sha256::digest(data));
        if !actual.eq_ignore_ascii_case(digest.trim()) {
            return Err(format!(
                "{name}: SHA-256 {actual} does not match SHA256SUMS ({})",
                digest.trim()
            ));
        }
        listed.push(name.to_string());
    }
    for needed in ["meta.json", "state.bin"] {
        if !listed.iter().any(|l| l == needed) {
            return Err(format!("{needed} is not covered by SHA256SUMS"));
        }
    }
    let meta: Value = serde_json::from_slice(&files["meta.json"])
        .map_err(|e| format!("meta.json is not JSON: {e}"))?;
    let index = meta["Index"].as_u64().ok_or("meta.json has no Index")?;
    let term = meta["Term"].as_u64().ok_or("meta.json has no Term")?;
    Ok(SnapshotFacts {
        files: order,
        index,
        term,
        state_bytes: files["state.bin"].len() as u64,
    })
}

/// The newest `files` in `dir` on a node: `(node clock, mtime, name, bytes)`, or `None` when
/// there is none.
type Newest = Option<(i64, f64, String, Vec<u8>)>;

fn snapshot_script(dir: &str, pattern: &str) -> String {
    let dir = quote(dir);
    let pattern = quote(pattern);
    format!(
        "set -e\necho \"now $(date +%s)\"\n\
         if ! timeout 10 test -d {dir}; then echo nodir; exit 0; fi\n\
         l=$(timeout 10 find {dir} -maxdepth 1 -type f -name {pattern} -printf '%T@ %f\\n' | sort -n | tail -n 1)\n\
         if [ -z \"$l\" ]; then echo none; exit 0; fi\n\
         echo \"file $l\"\n\
         timeout {SNAPSHOT_READ_SECS} base64 -w0 {dir}/\"${{l#* }}\"\necho\n"
    )
}

fn parse_snapshot_read(out: &str) -> Result<Newest, String> {
    use base64::Engine;
    let mut lines = out.lines();
    let now = lines
        .next()
        .and_then(|l| l.strip_prefix("now "))
        .and_then(|t| t.trim().parse::<i64>().ok())
        .ok_or("the node did not say its time")?;
    let Some(file) = lines.next() else {
        return Err("no answer about the newest snapshot".into());
    };
    match file.trim() {
        "none" => return Ok(None),
        "nodir" => {
            return Err("the snapshot directory is not there (backup share not mounted?)".into())
        }
        _ => {}
    }
    let (at, name) = file
        .strip_prefix("file ")
        .and_then(|r| r.split_once(' '))
        .ok_or_else(|| format!("unexpected answer {file:?}"))?;
    let at: f64 = at.parse().map_err(|_| format!("unexpected mtime {at:?}"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(lines.next().unwrap_or("").trim())
        .map_err(|e| format!("{name}: not read whole ({e})"))?;
    Ok(Some((now, at, name.to_string(), bytes)))
}

/// `restore.vault` and `rpo.vault`: the newest snapshot on the share, read on the first server
/// that answers.
async fn vault(pool: &SshPool, inv: &Inventory, opts: &RestoreOptions, stop: &Stop) -> Vec<Check> {
    tokio::select! {
        checks = vault_checks(pool, inv, opts) => checks,
        // Dropping the checks kills the scratch OpenBao and removes its directory.
        _ = stop.wait() => vec![
            Check::new("restore.vault", "vault", Status::Error, "interrupted; the scratch OpenBao was stopped and its directory removed"),
            Check::new("rpo.vault", "vault", Status::Error, "not evaluated: interrupted"),
        ],
    }
}

async fn vault_checks(pool: &SshPool, inv: &Inventory, opts: &RestoreOptions) -> Vec<Check> {
    let Some(kind) = inv.backups.iter().find(|b| b.kind == "vault") else {
        return vec![];
    };
    let dir = format!("{}/{}", inv.backup_mount, kind.dir.trim_end_matches('/'));
    let script = snapshot_script(&dir, &kind.files);
    let mut tried = vec![];
    let mut read = None;
    for n in inv.nodes.iter().filter(|n| n.role == Role::Server) {
        let t = Target::new(&n.name, &n.address);
        let limit = Duration::from_secs(SNAPSHOT_READ_SECS + 20);
        match pool
            .run_within(&t, "read the newest Vault snapshot", &script, limit)
            .await
        {
            Ok(out) => {
                read = Some((n.name.clone(), parse_snapshot_read(&out)));
                break;
            }
            Err(e) => tried.push(format!("{}: {e}", n.name)),
        }
    }
    let not_evaluated = |why: String| {
        vec![
            Check::new("restore.vault", "vault", Status::Error, why.clone()),
            Check::new(
                "rpo.vault",
                "vault",
                Status::Error,
                format!("not evaluated: {why}"),
            ),
        ]
    };
    let (node, read) = match read {
        None => return not_evaluated(format!("no server answered: {}", tried.join("; "))),
        Some(r) => r,
    };
    let (now, at, name, bytes) = match read {
        Err(e) => return not_evaluated(format!("{node}: {e}")),
        Ok(None) => {
            return vec![
                Check::new(
                    "restore.vault",
                    "vault",
                    Status::Fail,
                    format!("no {} in {dir}", kind.files),
                )
                .hint("The snapshot CronJob has not written one yet (docs/vault.md, Snapshots)"),
                Check::new("rpo.vault", "vault", Status::Fail, "no snapshot"),
            ]
        }
        Ok(Some(r)) => r,
    };
    let bytes = std::sync::Arc::new(bytes);
    let checked = {
        let b = bytes.clone();
        tokio::task::spawn_blocking(move || check_snapshot(&b))
            .await
            .unwrap_or_else(|e| Err(format!("checking it failed: {e}")))
    };
    let restore = match checked {
        Ok(f) => {
            let digests = format!(
                "{name} ({} bytes, read on {node}): {}; every SHA256SUMS digest matches; Raft index {} term {}, {} bytes of state",
                bytes.len(),
                f.files.join(", "),
                f.index,
                f.term,
                f.state_bytes
            );
            match &opts.vault_unseal_keys {
                None => Check::new(
                    "restore.vault",
                    "vault",
                    Status::Warn,
                    format!("{digests}; not restored: no unseal keys (terraform output vault_unseal_keys, or --vault-unseal-keys)"),
                )
                .hint("Give the unseal keys so the snapshot is restored into a scratch OpenBao and unsealed (docs/operations.md, backup verify)"),
                Some(keys) => match scratch_restore(opts.bao.as_deref(), &bytes, keys).await {
                    Ok(facts) => Check::new(
                        "restore.vault",
                        "vault",
                        Status::Pass,
                        format!("{digests}; restored into a scratch OpenBao ({facts}) and unsealed with the cluster's keys"),
                    ),
                    Err(ScratchError::Setup(e)) => Check::new(
                        "restore.vault",
                        "vault",
                        Status::Error,
                        format!("{digests}; the scratch restore could not run: {e}"),
                    )
                    .hint("backup verify restores the snapshot with a local `bao` (OpenBao) binary: put it on PATH or pass --bao (make deps installs tools/bin/bao)"),
                    Err(ScratchError::Snapshot(e)) => Check::new(
                        "restore.vault",
                        "vault",
                        Status::Fail,
                        format!("{digests}; but it does not restore: {e}"),
                    )
                    .hint("The newest snapshot cannot be restored with the cluster's keys: take a new one (docs/vault.md, Snapshots), keep the older ones, and check which keys the state holds"),
                },
            }
        }
        Err(e) => Check::new("restore.vault", "vault", Status::Fail, format!("{name}: {e}"))
            .hint("The newest snapshot is damaged: take a new one (docs/vault.md, Snapshots) and keep the older ones"),
    };
    let age = (now as f64 - at).max(0.0);
    let limit = kind.max_age_seconds.map(|s| s as f64);
    let status = match limit {
        Some(l) if age > l => Status::Fail,
        Some(_) => Status::Pass,
        None => Status::Warn,
    };
    let rpo = Check::new(
        "rpo.vault",
        "vault",
        status,
        format!(
            "{name} taken {} ago ({}); limit {} (its schedule plus a margin); the seed's RPO (< 1 hour) is met by Raft replication across the members, the snapshot is for losing them all",
            hours(age),
            epoch_text(at as i64),
            limit.map(hours).unwrap_or_else(|| "unknown (not a daily schedule)".into())
        ),
    )
    .hint_if(status != Status::Pass, "Check the snapshot CronJob (kubectl -n vault get cronjob,jobs) and the VaultSnapshotTooOld alert");
    vec![restore, rpo]
}

/// Why a scratch restore did not succeed: our side (no `bao`, no port) or the snapshot's.
#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    #[error("the scratch restore could not run: {0}")]
    Setup(String),
    #[error("the snapshot does not restore: {0}")]
    Snapshot(String),
}

/// How long the scratch OpenBao may take for each step (start, become active, restore, unseal).
const SCRATCH_STEP: Duration = Duration::from_secs(60);

/// Two distinct free loopback ports (asked of the kernel, both held until both are known, then
/// released for `bao` to take).
fn free_ports() -> Result<(u16, u16), ScratchError> {
    let bind = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| ScratchError::Setup(format!("no free loopback port: {e}")))
    };
    let (a, b) = (bind()?, bind()?);
    let port = |l: &std::net::TcpListener| {
        l.local_addr()
            .map(|a| a.port())
            .map_err(|e| ScratchError::Setup(format!("no free loopback port: {e}")))
    };
    Ok((port(&a)?, port(&b)?))
}

/// Restore `snapshot` into a throw-away single-node OpenBao on 127.0.0.1 (Raft storage in a
/// temporary directory, removed with the process when this returns): initialise it with one
/// share, unseal, force-restore the snapshot (which seals it: the keyring is now the cluster's),
/// unseal it with the cluster's `keys`. Returns the scratch server's version.
pub async fn scratch_restore(
    bao: Option<&Path>,
    snapshot: &[u8],
    keys: &[String],
) -> Result<String, ScratchError> {
    let setup = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| ScratchError::Setup(format!("{what}: {e}"))
    };
    let dir = tempfile::Builder::new()
        .prefix("ffe-ha-vault-restore-")
        .tempdir()
        .map_err(setup("a temporary directory"))?;
    let (port, cluster_port) = free_ports()?;
    let config = format!(
        "storage \"raft\" {{\n  path = \"{raft}\"\n  node_id = \"ffe-ha-restore-check\"\n}}\n\
         listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  cluster_address = \"127.0.0.1:{cluster_port}\"\n  tls_disable = true\n}}\n\
         api_addr = \"http://127.0.0.1:{port}\"\ncluster_addr = \"http://127.0.0.1:{cluster_port}\"\n\
         disable_mlock = true\nui = false\n",
        raft = dir.path().join("raft").display()
    );
    std::fs::create_dir(dir.path().join("raft")).map_err(setup("the Raft directory"))?;
    let config_file = dir.path().join("bao.hcl");
    std::fs::write(&config_file, config).map_err(setup("the server configuration"))?;
    let log = std::fs::File::create(dir.path().join("bao.log")).map_err(setup("the log file"))?;
    let program = bao.map(Path::to_path_buf).unwrap_or_else(|| "bao".into());
    let mut command = tokio::process::Command::new(&program);
    command
        .arg("server")
        .arg(format!("-config={}", config_file.display()))
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(setup("the log file"))?)
        .stderr(log)
        .kill_on_drop(true);
    ffe_core::vault::die_with_parent(&mut command);
    let mut child = command
        .spawn()
        .map_err(|e| ScratchError::Setup(format!("{}: {e}", program.display())))?;
    let base = format!("http://127.0.0.1:{port}/v1");
    let outcome = scratch_steps(&base, snapshot, keys).await;
    let _ = child.kill().await;
    outcome.map_err(|e| match e {
        ScratchError::Setup(m) => ScratchError::Setup(format!(
            "{m}; server log: {}",
            tail(
                &std::fs::read_to_string(dir.path().join("bao.log")).unwrap_or_default(),
                5
            )
        )),
        other => other,
    })
}

async fn scratch_steps(
    base: &str,
    snapshot: &[u8],
    keys: &[String],
) -> Result<String, ScratchError> {
    let http = ffe_core::vault::loopback_client(SCRATCH_STEP)
        .map_err(|e| ScratchError::Setup(format!("HTTP client: {e}")))?;
    let setup = |what: &'static str| move |e: String| ScratchError::Setup(format!("{what}: {e}"));
    let call = |method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>| {
        let mut r = http.request(method, format!("{base}{path}"));
        if let Some(t) = token {
            r = r.header("X-Vault-Token", t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        async move {
            let resp = r.send().await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let text = resp.text().await.map_err(|e| e.to_string())?;
            Ok::<(u16, Value), String>((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
        }
    };
    // Started: sys/health answers (501: not initialised).
    let deadline = Instant::now() + SCRATCH_STEP;
    let version = loop {
        if let Ok((_, h)) = call(reqwest::Method::GET, "/sys/health", None, None).await {
            if let Some(v) = h["version"].as_str() {
                break v.to_string();
            }
        }
        if Instant::now() > deadline {
            return Err(ScratchError::Setup(
                "the scratch OpenBao did not start".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (status, init) = call(
        reqwest::Method::PUT,
        "/sys/init",
        None,
        Some(json!({"secret_shares": 1, "secret_threshold": 1})),
    )
    .await
    .map_err(setup("init"))?;
    let (Some(key), Some(token)) = (init["keys_base64"][0].as_str(), init["root_token"].as_str())
    else {
        return Err(ScratchError::Setup(format!(
            "init: HTTP {status}: {}",
            errors(&init)
        )));
    };
    let (key, token) = (key.to_string(), token.to_string());
    call(
        reqwest::Method::PUT,
        "/sys/unseal",
        None,
        Some(json!({"key": key})),
    )
    .await
    .map_err(setup("unseal"))?;
    // Active (the single Raft node elected itself): a restore needs the leader.
    let deadline = Instant::now() + SCRATCH_STEP;
    while call(reqwest::Method::GET, "/sys/health", None, None)
        .await
        .map(|(s, _)| s != 200)
        .unwrap_or(true)
    {
        if Instant::now() > deadline {
            return Err(ScratchError::Setup(
                "the scratch OpenBao did not become active".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let resp = http
        .post(format!("{base}/sys/storage/raft/snapshot-force"))
        .header("X-Vault-Token", &token)
        .body(snapshot.to_vec())
        .send()
        .await
        .map_err(|e| ScratchError::Setup(format!("restore: {e}")))?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        let body: Value =
            serde_json::from_str(&resp.text().await.unwrap_or_default()).unwrap_or(Value::Null);
        return Err(ScratchError::Snapshot(format!(
            "the restore was refused: HTTP {status}: {}",
            errors(&body)
        )));
    }
    // The snapshot's keyring is the cluster's: the scratch server sealed itself, and only the
    // cluster's shares open it.
    let deadline = Instant::now() + SCRATCH_STEP;
    loop {
        let (_, st) = call(reqwest::Method::GET, "/sys/seal-status", None, None)
            .await
            .map_err(setup("seal status"))?;
        if st["sealed"].as_bool() == Some(true) {
            break;
        }
        if Instant::now() > deadline {
            return Err(ScratchError::Snapshot(
                "restored, but the scratch OpenBao never sealed itself for the cluster's keys"
                    .into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for k in keys {
        let (status, st) = call(
            reqwest::Method::PUT,
            "/sys/unseal",
            None,
            Some(json!({"key": k})),
        )
        .await
        .map_err(setup("unseal"))?;
        if status != 200 {
            return Err(ScratchError::Snapshot(format!(
                "the cluster's unseal keys do not open it: HTTP {status}: {}",
                errors(&st)
            )));
        }
        if st["sealed"].as_bool() == Some(false) {
            return Ok(format!("OpenBao {version}, 127.0.0.1, removed afterwards"));
        }
    }
    Err(ScratchError::Snapshot(format!(
        "still sealed after all {} of the cluster's unseal keys",
        keys.len()
    )))
}

/// The `errors` of an OpenBao error body (never a key: error bodies hold none).
fn errors(body: &Value) -> String {
    body["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "no error message".into())
}

/// Restore and check every backup kind that can be restored: Postgres (the restore Job) and
/// Vault (the newest snapshot), at once.
pub async fn run(inv: &Inventory, opts: &RestoreOptions) -> Report {
    let since = Instant::now();
    let stop = Stop::listen();
    let pool = SshPool::new(inv.ssh.clone());
    let postgres = async {
        let Some(pg) = &inv.postgres else {
            return vec![];
        };
        let error = |why: String| {
            vec![
                Check::new("restore.postgres", "postgres", Status::Error, why)
                    .hint("backup verify needs the API (kubeconfig) and the restore-check CronJob of terraform/modules/postgres"),
                Check::new("rpo.postgres", "postgres", Status::Error, "not evaluated: the restore did not run"),
            ]
        };
        let Some(cronjob) = &pg.restore_check_cronjob else {
            return error("the inventory names no restore_check_cronjob (a state from before it existed: run terraform apply)".into());
        };
        let api = match kube_api(inv, &opts.verify, API_LIMIT) {
            Ok(a) => a,
            Err(e) => return error(e),
        };
        match run_job(&api, &pg.namespace, cronjob, opts, since, &stop).await {
            Ok(run) => judge_postgres(&run, now_epoch()),
            Err(e) => error(e),
        }
    };
    let (p, v) = futures::join!(postgres, vault(&pool, inv, opts, &stop));
    pool.close_all().await;
    Report {
        command: "backup verify",
        checks: [p, v].concat(),
        strict: opts.verify.strict,
    }
}

fn now_epoch() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = r#"[{"archive":[{"id":"17-1","max":"000000010000000000000007","min":"000000010000000000000001"}],"backup":[{"label":"20261203-010000F","type":"full","timestamp":{"start":1764723600,"stop":1764723700}},{"label":"20261203-010000F_20261204-010000D","type":"diff","timestamp":{"start":1764810000,"stop":1764810100}}],"name":"db","status":{"code":0,"message":"ok"}}]"#;

    fn log(extra: &str) -> String {
        format!("WARN: some pgBackRest warning\nffe-restore-check info {INFO}\n{extra}")
    }

    #[test]
    fn the_log_names_the_newest_set_and_every_step() {
        let l = parse_log(&log("ffe-restore-check replayed 1764811000\nffe-restore-check databases ffe,postgres\nffe-restore-check amcheck ok\nffe-restore-check done\n"));
        assert_eq!(
            l.backup,
            Some((
                "20261203-010000F_20261204-010000D".into(),
                "diff".into(),
                1764810100
            ))
        );
        assert_eq!(l.replayed, Some(1764811000));
        assert_eq!(l.databases, vec!["ffe", "postgres"]);
        assert!(l.amcheck_ok && l.done);
        let none = parse_log(&log("ffe-restore-check replayed none\n"));
        assert!(none.replayed_line && none.replayed.is_none() && !none.done);
    }

    fn run_of(end: JobEnd, text: &str) -> JobRun {
        JobRun {
            name: "ffe-pg-restore-check-verify-abcde".into(),
            end,
            log: text.into(),
            seconds: 42.0,
            cleanup: None,
        }
    }

    #[test]
    fn judging_a_run() {
        let full = log("ffe-restore-check replayed 1764811000\nffe-restore-check replayed_wal 000000020000000000000007\nffe-restore-check databases ffe,postgres\nffe-restore-check amcheck ok\nffe-restore-check done\n");
        let c = judge_postgres(&run_of(JobEnd::Complete, &full), 1764811000 + 600);
        assert_eq!(c[0].status, Status::Pass, "{c:?}");
        assert_eq!(c[1].status, Status::Pass, "{c:?}");
        assert!(c[1].evidence.contains("10 min ago"), "{c:?}");
        // 2 h later: older than the RPO (a quiet database, or WAL not archived) is a warning.
        let c = judge_postgres(&run_of(JobEnd::Complete, &full), 1764811000 + 7200);
        assert_eq!(c[1].status, Status::Warn, "{c:?}");
        // No transaction after the backup: the recovery point is the backup's end.
        let quiet = full.replace("replayed 1764811000", "replayed none");
        let c = judge_postgres(&run_of(JobEnd::Complete, &quiet), 1764810100 + 60);
        assert!(c[1].evidence.contains("the backup ended"), "{c:?}");
        // amcheck never said ok (the script stopped there): a failure, whatever the Job says.
        let broken = full.replace("ffe-restore-check amcheck ok\n", "pg_amcheck: error\n");
        let c = judge_postgres(&run_of(JobEnd::Complete, &broken), 1764811000);
        assert_eq!(c[0].status, Status::Fail);
        let c = judge_postgres(
            &run_of(JobEnd::Failed("BackoffLimitExceeded".into()), &broken),
            1764811000,
        );
        assert_eq!(c[0].status, Status::Fail);
        assert!(c[0].evidence.contains("pg_amcheck: error"), "{c:?}");
        assert_eq!(c[1].status, Status::Error);
        let c = judge_postgres(&run_of(JobEnd::TimedOut, ""), 1764811000);
        assert_eq!(c[0].status, Status::Error);
        // A gap in the archive: replay ended early, the copy was promoted, the Job completed.
        let gap = full.replace(
            "replayed_wal 000000020000000000000007",
            "replayed_wal 000000020000000000000005",
        );
        let c = judge_postgres(&run_of(JobEnd::Complete, &gap), 1764811000);
        assert_eq!(c[0].status, Status::Fail, "{c:?}");
        assert!(
            c[0].evidence
                .contains("replay stopped in WAL segment 000000020000000000000005"),
            "{c:?}"
        );
        assert_eq!(c[1].status, Status::Error);
        let c = judge_postgres(&run_of(JobEnd::Gone, ""), 1764811000);
        assert_eq!(c[0].status, Status::Error);
    }

    #[test]
    fn replay_is_compared_by_segment_across_the_new_timeline() {
        assert!(replay_reached(
            Some("000000020000000100000003"),
            Some("000000010000000100000003")
        )
        .is_ok());
        assert!(replay_reached(
            Some("000000020000000100000004"),
            Some("000000010000000100000003")
        )
        .is_ok());
        assert!(replay_reached(
            Some("0000000200000000000000FF"),
            Some("000000010000000100000000")
        )
        .is_err());
        assert!(replay_reached(None, Some("000000010000000100000000")).is_err());
        assert!(replay_reached(Some("junk"), Some("000000010000000100000000")).is_err());
    }

    #[test]
    fn a_job_from_a_cronjob_is_what_kubectl_makes() {
        let cj = json!({"metadata": {"name": "ffe-pg-restore-check", "uid": "u-1"},
            "spec": {"jobTemplate": {"metadata": {"labels": {"a": "b"}},
                "spec": {"backoffLimit": 0, "template": {"spec": {"containers": [{"name": "c"}]}}}}}});
        let j = job_from_cronjob(&cj).unwrap();
        assert_eq!(
            j["metadata"]["generateName"],
            "ffe-pg-restore-check-verify-"
        );
        assert_eq!(j["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(
            j["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
            "manual"
        );
        assert_eq!(j["spec"]["backoffLimit"], 0);
        assert!(job_from_cronjob(&json!({"metadata": {"name": "x"}})).is_err());
    }

    #[test]
    fn job_conditions() {
        assert_eq!(job_finished(&json!({"status": {"active": 1}})), None);
        assert_eq!(
            job_finished(
                &json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}})
            ),
            Some(Ok(()))
        );
        assert_eq!(
            job_finished(
                &json!({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}})
            ),
            Some(Err("DeadlineExceeded".into()))
        );
        assert_eq!(
            job_finished(
                &json!({"status": {"conditions": [{"type": "Failed", "status": "False"}]}})
            ),
            None
        );
    }

    fn snapshot(tamper: bool, drop_sum: bool) -> Vec<u8> {
        let meta = br#"{"Version":1,"ID":"2-9-1","Index":9,"Term":2,"Size":5}"#.to_vec();
        let state = b"state".to_vec();
        let mut sums = format!("{}  meta.json\n", hex::encode(Sha256::digest(&meta)));
        if !drop_sum {
            sums.push_str(&format!(
                "{}  state.bin\n",
                hex::encode(Sha256::digest(&state))
            ));
        }
        let state = if tamper { b"stale".to_vec() } else { state };
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            vec![],
            flate2::Compression::default(),
        ));
        for (name, data) in [
            ("meta.json", meta),
            ("state.bin", state),
            ("SHA256SUMS", sums.into_bytes()),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            tar.append_data(&mut h, name, data.as_slice()).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn snapshot_digests_are_checked() {
        let f = check_snapshot(&snapshot(false, false)).unwrap();
        assert_eq!((f.index, f.term, f.state_bytes), (9, 2, 5));
        let e = check_snapshot(&snapshot(true, false)).unwrap_err();
        assert!(e.contains("state.bin: SHA-256"), "{e}");
        let e = check_snapshot(&snapshot(false, true)).unwrap_err();
        assert!(e.contains("state.bin is not covered"), "{e}");
        let e = check_snapshot(b"not gzip").unwrap_err();
        assert!(e.contains("not a gzip tar") || e.contains("damaged"), "{e}");
    }

    #[test]
    fn snapshot_read_answers() {
        assert_eq!(parse_snapshot_read("now 100\nnone\n").unwrap(), None);
        let (now, at, name, bytes) = parse_snapshot_read("now 100\nfile 90.5 raft-1.snap\naGk=\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (now, at, name.as_str(), bytes.as_slice()),
            (100, 90.5, "raft-1.snap", &b"hi"[..])
        );
        assert!(parse_snapshot_read("").is_err());
    }
}

//! `ffe-ha backup verify` against the lab: the restore-check CronJob exactly as
//! terraform/modules/postgres renders it, run by the Job controller + kubelet stand-in
//! (`ffe_lab::jobs`, named: no Kubernetes here) on a lab host against the lab's real pgBackRest
//! repository with real pgBackRest and PostgreSQL; the newest real OpenBao Raft snapshot on the
//! share. Truth: a row committed (and its WAL archived) just before the run.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{ffe_ha, row, with_healthy_lab_opts, LabOptions, PG_NS};
use ffe_lab::postgres::{pg_connect, query_one, DB};
use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The restore-check CronJob of terraform/modules/postgres, rendered by real Terraform for the
/// lab's PostgreSQL major (15; the images of pins.tf for it).
fn rendered_cronjob() -> Value {
    let args = r#"
  namespace               = "ffe-data"
  postgres_version        = "15"
  images                  = { postgres = "docker.io/percona/percona-distribution-postgresql:15.18-1", pgbouncer = "docker.io/percona/percona-pgbouncer:1.25.2-1", pgbackrest = "docker.io/percona/percona-pgbackrest:2.58.0-2" }
  operator_chart_version  = "3.0.0"
  operator_chart_repo     = "https://percona.github.io/percona-helm-charts/"
  operator_crd_version    = "3.0.0"
  replicas                = 2
  synchronous_replication = true
  primary_ip              = "10.210.0.250"
  loadbalancer_annotation = "kube-vip.io/loadbalancerIPs"
  data_storage_class      = "ffe-fast-retain"
  backup_storage_class    = "ffe-backup"
  backup_storage_mode     = "csi-nfs"
  backup_mount            = "/mnt/backups"
  backup_retention_days   = 14
"#;
    let out = ffe_lab::terraform::render_module(&repo().join("terraform/modules/postgres"), args)
        .unwrap_or_else(|e| panic!("{e}"));
    let yaml = out["manifests"]["pg-restore-check.yaml"]
        .as_str()
        .unwrap_or_else(|| panic!("no pg-restore-check.yaml in the module's manifests: {out}"));
    serde_yaml_ng::from_str(yaml).expect("the rendered CronJob is YAML")
}

/// `ffe-ha backup verify` (plus `extra`) with the unseal keys in `keys` (a 0600 JSON list) and
/// the lab's real `bao` for the scratch restore.
fn backup_verify(inv: &Path, keys: &Path, extra: &[&str]) -> std::process::Output {
    let bao = ffe_lab::vault::bao_binary().unwrap_or_else(|e| panic!("{e}"));
    let mut args = vec![
        "--inventory",
        inv.to_str().unwrap(),
        "backup",
        "verify",
        "--vault-unseal-keys",
        keys.to_str().unwrap(),
        "--bao",
        bao.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ffe_ha(&args)
}

/// [`backup_verify`] `--output json`: exit code, report, stderr.
fn run(inv: &Path, keys: &Path) -> (i32, Value, String) {
    let out = backup_verify(inv, keys, &["--output", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.code().unwrap_or(-1), doc, stderr)
}

/// Close the current WAL segment and wait (60 s) until the archiver has pushed it; its name.
fn switch_and_archive(c: &mut ffe_lab::postgres::Client) -> String {
    let segment = query_one(c, "SELECT pg_walfile_name(pg_switch_wal())").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while query_one(
        c,
        "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
    )
    .unwrap()
        < segment
    {
        assert!(
            Instant::now() < deadline,
            "{segment} not archived within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    segment
}

/// The file under `dir` whose name starts with `prefix` (an archived WAL segment).
fn find_file(dir: &Path, prefix: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, prefix) {
                return Some(found);
            }
        } else if entry.file_name().to_string_lossy().starts_with(prefix) {
            return Some(path);
        }
    }
    None
}

fn write_keys(path: &Path, keys: &[String]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, serde_json::to_vec(keys).unwrap()).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn backup_verify_restores_postgres_to_the_last_commit_and_checks_the_vault_snapshot() {
    let cronjob = rendered_cronjob();
    let cronjob_name = cronjob["metadata"]["name"].as_str().unwrap().to_string();
    with_healthy_lab_opts(
        LabOptions {
            cronjob: Some(cronjob.clone()),
        },
        |h| {
            let jobs = h.jobs.expect("the Job stand-in runs");
            // Truth: one row committed now, and its WAL segment archived into the repository.
            let mut c = pg_connect(h.leader.ip, 5432, DB).expect("connect to the leader");
            c.batch_execute("CREATE TABLE IF NOT EXISTS restore_truth (id int, at timestamptz default now()); INSERT INTO restore_truth (id) VALUES (1)")
                .unwrap();
            let committed: f64 = query_one(
                &mut c,
                "SELECT extract(epoch FROM max(at)) FROM restore_truth",
            )
            .unwrap()
            .parse()
            .unwrap();
            switch_and_archive(&mut c);

            let keys = h.pg.lab().dir().join("unseal-keys.json");
            write_keys(&keys, &h.bao_keys);
            let (code, doc, stderr) = run(&h.inv_path, &keys);
            eprintln!("backup verify (healthy lab):\n{doc:#}");
            if std::env::var_os("FFE_BACKUP_VERIFY_SHOW").is_some() {
                // The table docs/operations.md shows (a second restore).
                let out = backup_verify(&h.inv_path, &keys, &[]);
                eprintln!("{}", String::from_utf8_lossy(&out.stdout));
            }
            assert_eq!(code, 0, "{doc:#}\n{stderr}");
            for id in [
                "restore.postgres",
                "rpo.postgres",
                "restore.vault",
                "rpo.vault",
            ] {
                let r = row(
                    &doc,
                    id,
                    if id.ends_with("vault") {
                        "vault"
                    } else {
                        "postgres"
                    },
                );
                assert_eq!(r["status"], "pass", "{r}");
            }
            let restore = row(&doc, "restore.postgres", "postgres")["evidence"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(
                restore.contains(DB) && restore.contains("pg_amcheck found no corruption"),
                "{restore}"
            );
            // The recovery point is the commit of the truth row: WAL after the backup was replayed.
            let rpo = row(&doc, "rpo.postgres", "postgres")["evidence"]
                .as_str()
                .unwrap()
                .to_string();
            let point = rpo
                .split("recovery point ")
                .nth(1)
                .and_then(|r| r.get(..19))
                .and_then(|t| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").ok())
                .map(|t| t.and_utc().timestamp() as f64)
                .unwrap_or_else(|| panic!("no recovery point in {rpo}"));
            assert!(
                rpo.contains("the last transaction replayed committed"),
                "{rpo}"
            );
            assert!(
                (point - committed.floor()).abs() <= 1.0,
                "recovery point {point} is not the truth row's commit {committed}: {rpo}"
            );
            let vault = row(&doc, "restore.vault", "vault")["evidence"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(
                vault.contains("every SHA256SUMS digest matches")
                    && vault.contains("Raft index")
                    && vault.contains("unsealed with the cluster's keys"),
                "{vault}"
            );

            // One Job, made from the CronJob (its jobTemplate, owned by it), valid for the API
            // server's schema, deleted afterwards with its pod.
            let shown = usize::from(std::env::var_os("FFE_BACKUP_VERIFY_SHOW").is_some());
            let created = jobs.created_jobs();
            assert_eq!(created.len(), 1 + shown, "{created:#?}");
            let job = &created[0];
            assert_eq!(
                job["metadata"]["ownerReferences"][0]["name"],
                cronjob_name.as_str()
            );
            assert_eq!(
                job["spec"]["template"]["spec"]["containers"],
                cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
            );
            ffe_lab::kube_api::schema_check(std::slice::from_ref(job), "1.36")
                .unwrap_or_else(|e| panic!("{e}"));
            let deleted = jobs.deleted_jobs();
            assert_eq!(deleted.len(), 1 + shown, "{deleted:?}");
            assert_eq!(deleted[0].namespace, PG_NS);
            assert_eq!(deleted[0].propagation_policy.as_deref(), Some("Background"));

            // Damage: a newer snapshot whose state does not match its SHA256SUMS, and a
            // repository the restore cannot read. Each is named.
            let snaps = h.pg.lab().backup_dir().join("k8s/vault-snapshots");
            let newest = std::fs::read_dir(&snaps)
                .unwrap()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .max()
                .unwrap();
            let tampered = snaps.join("raft-9999999999.snap");
            let mut bytes = std::fs::read(&newest).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            std::fs::write(&tampered, &bytes).unwrap();
            let backup_dir = h.pg.pgbackrest_repo().join("backup");
            let hidden = h.pg.pgbackrest_repo().join("backup.hidden");
            std::fs::rename(&backup_dir, &hidden).unwrap();
            let (code, doc, stderr) = run(&h.inv_path, &keys);
            std::fs::rename(&hidden, &backup_dir).unwrap();
            std::fs::remove_file(&tampered).unwrap();
            assert_eq!(code, 1, "{doc:#}\n{stderr}");
            let r = row(&doc, "restore.postgres", "postgres");
            assert_eq!(r["status"], "fail", "{r}");
            assert!(
                r["evidence"]
                    .as_str()
                    .unwrap()
                    .contains("failed (BackoffLimitExceeded")
                    && r["evidence"]
                        .as_str()
                        .unwrap()
                        .contains("no backup set found"),
                "{r}"
            );
            assert_eq!(row(&doc, "rpo.postgres", "postgres")["status"], "error");
            let v = row(&doc, "restore.vault", "vault");
            assert_eq!(v["status"], "fail", "{v}");
            assert!(
                v["evidence"]
                    .as_str()
                    .unwrap()
                    .contains("raft-9999999999.snap"),
                "{v}"
            );
            assert_eq!(jobs.deleted_jobs().len(), 2 + shown);

            // Keys that are not the cluster's: the intact snapshot restores but does not open.
            use base64::Engine;
            let wrong = base64::engine::general_purpose::STANDARD.encode([7u8; 33]);
            write_keys(&keys, &[wrong]);
            let (code, doc, stderr) = run(&h.inv_path, &keys);
            assert_eq!(code, 1, "{doc:#}\n{stderr}");
            let v = row(&doc, "restore.vault", "vault");
            assert_eq!(v["status"], "fail", "{v}");
            assert!(
                v["evidence"]
                    .as_str()
                    .unwrap()
                    .contains("the cluster's unseal keys do not open it"),
                "{v}"
            );
            assert!(
                !doc.to_string().contains(&h.bao_keys[0]),
                "a key in the report"
            );
            write_keys(&keys, &h.bao_keys);

            // A scheduled run in progress (the CronJob's status.active): refused, nothing created.
            let cj_path = format!("/apis/batch/v1/namespaces/{PG_NS}/cronjobs/{cronjob_name}");
            let mut busy = cronjob.clone();
            busy["metadata"]["uid"] = common::CRONJOB_UID.into();
            busy["status"] = serde_json::json!({"active": [{"kind": "Job", "namespace": PG_NS, "name": "ffe-pg-restore-check-29412345", "apiVersion": "batch/v1"}]});
            h.api.set(&cj_path, &busy.to_string()).unwrap();
            let before = jobs.created_jobs().len();
            let (_, doc, _) = run(&h.inv_path, &keys);
            let r = row(&doc, "restore.postgres", "postgres");
            assert_eq!(r["status"], "error", "{r}");
            assert!(
                r["evidence"]
                    .as_str()
                    .unwrap()
                    .contains("ffe-pg-restore-check-29412345"),
                "{r}"
            );
            assert_eq!(jobs.created_jobs().len(), before);
            busy["status"] = serde_json::json!({});
            h.api.set(&cj_path, &busy.to_string()).unwrap();

            // A gap in the WAL archive: three more segments archived, the middle one removed.
            // Recovery ends at the gap and promotes; the Job completes; the check fails.
            let mut segments = vec![];
            for i in 2..5 {
                c.batch_execute(&format!("INSERT INTO restore_truth (id) VALUES ({i})"))
                    .unwrap();
                segments.push(switch_and_archive(&mut c));
            }
            let archive = h.pg.pgbackrest_repo().join("archive");
            let removed = find_file(&archive, &segments[1])
                .unwrap_or_else(|| panic!("{} not in {}", segments[1], archive.display()));
            std::fs::remove_file(&removed).unwrap();
            let (code, doc, stderr) = run(&h.inv_path, &keys);
            assert_eq!(code, 1, "{doc:#}\n{stderr}");
            let r = row(&doc, "restore.postgres", "postgres");
            assert_eq!(r["status"], "fail", "{r}");
            assert!(
                r["evidence"]
                    .as_str()
                    .unwrap()
                    .contains("replay stopped in WAL segment"),
                "{r}"
            );
        },
    );
}

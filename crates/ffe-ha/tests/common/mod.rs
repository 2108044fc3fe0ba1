//! The 6-host lab both `lab_verify` and `lab_drill` run against, built as an operator's cluster
//! would be: a 3-member etcd laid out as k3s lays it out (TLS, client certificates at k3s's
//! paths) on the masters, real Patroni + PostgreSQL 15 + pgBackRest + PgBouncer on the workers,
//! a real 3-member OpenBao Raft cluster on the masters, and backups written by the real tools
//! (etcdctl, pgBackRest, pg_dump, bao) into the shared backup dir.
//!
//! **Stand-ins, named:** the Kubernetes API is `ffe_lab::kube_api` (real nginx requiring the
//! kubeconfig's client certificate, serving recorded Node/Pod/Service/Secret objects; the pods
//! name the lab hosts as their nodes, so the CLI reads the real Patroni from there; a DELETE of
//! an instance or Vault pod is answered as kube-apiserver answers it and logged, and the drill
//! test plays the kubelet and StatefulSet on it); the Postgres primary Service is
//! `PgLab::primary_service` (a forwarder following Patroni's leader); the k3s certificates are
//! lab certificates at k3s's paths; etcd's JSON API is on :2379 (k3s: :2382, `--etcd-url`);
//! Patroni's REST is plain HTTP; PgBouncer listens on 6432 (the Service: 5432). Needs root.
// Each test binary uses part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use ffe_core::k3s::etcd::{K3S_ETCD_CA, K3S_ETCD_CLIENT_CERT, K3S_ETCD_CLIENT_KEY};
use ffe_lab::etcd::{CredentialPaths, K3sEtcd};
use ffe_lab::jobs::{JobRunner, JobRunnerConfig};
use ffe_lab::kube_api::{recorded, RecordedApi};
use ffe_lab::pki::TestCa;
use ffe_lab::postgres::{PgLab, PATRONI_PORT, PG_BIN};
use ffe_lab::vault::{bao_binary, BaoCluster, BaoSpec};
use serde_json::{json, Value};

pub const MASTERS: [&str; 3] = ["vf-master-0", "vf-master-1", "vf-master-2"];
pub const WORKERS: [&str; 3] = ["vf-worker-0", "vf-worker-1", "vf-worker-2"];
pub const KUBELET: &str = "v1.36.2+k3s1";
pub const PG_NS: &str = "ffe-data";
pub const PG_CLUSTER: &str = "ffe-pg";
pub const BOUNCER_SVC: &str = "ffe-pg-pgbouncer";
pub const VAULT_NS: &str = "vault";
/// The uid the recorded restore-check CronJob carries (its Jobs' owner).
pub const CRONJOB_UID: &str = "0c1f5e8e-3b4d-4c7a-9d2e-5f6a7b8c9d0e";

pub fn ffe_ha(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ffe-ha"))
        .args(args)
        .env(
            "RUST_LOG",
            std::env::var("FFE_HA_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .output()
        .expect("run ffe-ha")
}

pub fn row<'a>(doc: &'a Value, id: &str, subject: &str) -> &'a Value {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id && c["subject"] == subject)
        .unwrap_or_else(|| panic!("no {id} row for {subject}: {doc:#}"))
}

pub fn not_passing(doc: &Value) -> Vec<&Value> {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] != "pass")
        .collect()
}

pub fn sh(pg: &PgLab, host: &str, cmd: &str) -> String {
    pg.run(host, cmd)
        .unwrap_or_else(|e| panic!("{host}: {cmd}: {e:#}"))
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A lab certificate at a k3s path on `host` (k3s itself cannot run here).
pub fn place_cert(pg: &PgLab, ca: &TestCa, host: &str, file: &str, i: usize) {
    let (crt, _) = ca.issue_valid(&format!("k3s-{i}"), &[], 365).unwrap();
    let to = pg
        .lab()
        .host(host)
        .unwrap()
        .root_dir
        .join("var/lib/rancher/k3s")
        .join(file);
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(crt, to).unwrap();
}

pub struct Backups {
    pub dumps: PathBuf,
}

/// One backup of each kind, written by the real tool into the shared backup dir, where the
/// inventory says each kind lives.
pub fn write_backups(
    pg: &PgLab,
    bao: &BaoCluster<'_>,
    root_token: &str,
    leader_ip: &str,
) -> Backups {
    let shared = pg.lab().backup_dir();
    for m in MASTERS {
        let dir = format!("/mnt/backups/etcd-snapshots/{m}");
        sh(
            pg,
            m,
            &format!(
                "mkdir -p {dir} && ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert={K3S_ETCD_CA} --cert={K3S_ETCD_CLIENT_CERT} --key={K3S_ETCD_CLIENT_KEY} snapshot save {dir}/etcd-snapshot-{m}-{} >/dev/null",
                now()
            ),
        );
    }
    let dumps = shared.join("k8s/postgres-dumps");
    std::fs::create_dir_all(&dumps).unwrap();
    sh(
        pg,
        WORKERS[0],
        &format!("{PG_BIN}/pg_dump -h {leader_ip} -U postgres -Fc -f /mnt/backups/k8s/postgres-dumps/ffe-{}.dump ffe", now()),
    );
    let snaps = shared.join("k8s/vault-snapshots");
    std::fs::create_dir_all(&snaps).unwrap();
    let out = Command::new(bao_binary().unwrap())
        .args(["operator", "raft", "snapshot", "save"])
        .arg(snaps.join(format!("raft-{}.snap", now())))
        .env("BAO_ADDR", bao.members()[0].address())
        .env("BAO_CACERT", bao.ca_cert())
        .env("BAO_TOKEN", root_token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bao snapshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Backups { dumps }
}

pub fn node_list(pg: &PgLab, not_ready: &str) -> String {
    recorded::lab_nodes(pg.lab().hosts(), not_ready, &|_| KUBELET.to_string()).to_string()
}

/// The PIDs of `program` among `host`'s processes.
pub fn pids_of(pg: &PgLab, host: &str, program: &str) -> Vec<i32> {
    pg.lab()
        .host_pids(host)
        .unwrap()
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == program)
        })
        .collect()
}

pub fn signal(pids: &[i32], sig: i32) {
    for p in pids {
        // SAFETY: kill(2) on a PID of a lab process found just before.
        unsafe {
            libc::kill(*p, sig);
        }
    }
}

/// What a healthy lab consists of, for the test body.
pub struct Healthy<'a> {
    pub pg: &'a PgLab,
    pub leader: ffe_lab::postgres::PgNode,
    pub etcd: &'a K3sEtcd,
    pub bao: &'a BaoCluster<'a>,
    pub api: &'a RecordedApi,
    pub inv_path: PathBuf,
    pub backups: Backups,
    /// Vault's unseal key shares (base64), as `terraform output -json vault_unseal_keys` lists them.
    pub bao_keys: Vec<String>,
    /// The primary Service stand-in (`PgLab::primary_service`): the inventory's primary endpoint.
    pub primary: SocketAddr,
    /// The deletable pods as first recorded (instance pods, then `vault-0..2`).
    pub pods: Vec<Value>,
    /// The Job controller + kubelet stand-in, with [`LabOptions::cronjob`].
    pub jobs: Option<&'a JobRunner>,
}

/// Build the 6-host lab with every engine healthy and one backup of each kind, then run `f`.
pub fn with_healthy_lab<R>(f: impl FnOnce(&Healthy<'_>) -> R) -> R {
    with_healthy_lab_opts(LabOptions::default(), f)
}

/// What some tests add to the healthy lab.
#[derive(Default)]
pub struct LabOptions {
    /// A CronJob (as terraform/modules/postgres renders it) the API stand-in serves at its path,
    /// with the Job controller + kubelet stand-in ([`JobRunner`]) behind the API: its Jobs run
    /// on [`WORKERS`]`[0]`, the pgBackRest repository claim mapped to the lab's repository, the
    /// image's `/usr/pgsql-<major>/bin` to the lab's PostgreSQL binaries.
    pub cronjob: Option<Value>,
}

/// The claims a CronJob's pods mount.
fn claims_of(cronjob: &Value) -> Vec<String> {
    cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
        .map(str::to_string)
        .collect()
}

pub fn with_healthy_lab_opts<R>(opts: LabOptions, f: impl FnOnce(&Healthy<'_>) -> R) -> R {
    let pg = PgLab::create(&WORKERS, &MASTERS).unwrap();
    let leader = pg.start_healthy(MASTERS[2]).unwrap();
    let lab = pg.lab();
    let etcd = K3sEtcd::start(
        lab,
        &MASTERS,
        CredentialPaths {
            ca: K3S_ETCD_CA,
            cert: K3S_ETCD_CLIENT_CERT,
            key: K3S_ETCD_CLIENT_KEY,
        },
    )
    .unwrap();
    let bao = BaoCluster::create(
        lab,
        &MASTERS,
        BaoSpec {
            performance_multiplier: 1,
            audit_file_path: None,
        },
    )
    .unwrap();
    bao.start_all().unwrap();
    let init = bao.init(0, 1, 1).unwrap();
    bao.unseal_all(&init.keys_base64).unwrap();
    bao.wait_converged(Duration::from_secs(60)).unwrap();

    let ca = TestCa::new(&lab.dir().join("k3s-ca")).unwrap();
    for (i, h) in hosts_of(&pg).iter().enumerate() {
        place_cert(&pg, &ca, h, "agent/client-kubelet.crt", i);
        if h.contains("master") {
            place_cert(&pg, &ca, h, "server/tls/serving-kube-apiserver.crt", 10 + i);
        }
    }
    let backups = write_backups(&pg, &bao, &init.root_token, &leader.ip.to_string());

    // The API stand-in: nodes, the instance pods (Patroni's names) proxied to the real Patroni,
    // the PgBouncer Service at PgBouncer's address, the Vault CA Secret.
    let instance_pods: Vec<Value> = pg
        .db_nodes()
        .iter()
        .map(|n| {
            recorded::pod(
                PG_NS,
                &n.name,
                json!({"postgres-operator.crunchydata.com/cluster": PG_CLUSTER, "postgres-operator.crunchydata.com/data": "postgres"}),
                &n.name,
                &n.ip.to_string(),
            )
        })
        .collect();
    // The Vault members' pods (StatefulSet `vault`) on the masters, as the chart names them.
    let vault_pods: Vec<Value> = MASTERS
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let ip = lab.host(m).unwrap().ip.to_string();
            recorded::pod(
                VAULT_NS,
                &format!("vault-{i}"),
                json!({"app.kubernetes.io/name": "openbao", "statefulset.kubernetes.io/pod-name": format!("vault-{i}")}),
                m,
                &ip,
            )
        })
        .collect();
    let pods = recorded::list("PodList", instance_pods.clone());
    let (bouncer_ip, bouncer_port) = pg.pgbouncer_address().unwrap();
    let service = recorded::service(PG_NS, BOUNCER_SVC, &bouncer_ip.to_string(), bouncer_port);
    let bao_ca = std::fs::read(bao.ca_cert()).unwrap();
    let secret = recorded::secret("vault", "vault-ca", &[("ca.crt", &bao_ca)]);
    let api_ca = TestCa::new(&lab.dir().join("api-ca")).unwrap();
    let deletable: Vec<(&str, String, String)> = instance_pods
        .iter()
        .map(|p| {
            (
                PG_NS,
                p["metadata"]["name"].as_str().unwrap().to_string(),
                p.to_string(),
            )
        })
        .chain(vault_pods.iter().map(|p| {
            (
                VAULT_NS,
                p["metadata"]["name"].as_str().unwrap().to_string(),
                p.to_string(),
            )
        }))
        .collect();
    let deletable: Vec<(&str, &str, String)> = deletable
        .iter()
        .map(|(ns, name, body)| (*ns, name.as_str(), body.clone()))
        .collect();
    // Every node's Lease, renewed now (the drill test renews a node's when its k3s starts again).
    let leases: Vec<(String, String)> = hosts_of(&pg)
        .iter()
        .map(|h| (lease_path(h), recorded::lease(h, &now_micro()).to_string()))
        .collect();
    let pods_path = format!("/api/v1/namespaces/{PG_NS}/pods");
    let bouncer_path = format!("/api/v1/namespaces/{PG_NS}/services/{BOUNCER_SVC}");
    let mut routes: Vec<(&str, String)> = leases
        .iter()
        .map(|(p, b)| (p.as_str(), b.clone()))
        .collect();
    let runner = opts.cronjob.as_ref().map(|cj| {
        let mut config = JobRunnerConfig::new(WORKERS[0]);
        // The recorded CronJob exists: Jobs it owns run (others are garbage-collected).
        config.owners.insert(
            CRONJOB_UID.into(),
            (
                "CronJob".into(),
                cj["metadata"]["name"].as_str().unwrap().into(),
            ),
        );
        for claim in claims_of(cj) {
            config.claims.insert(claim, pg.pgbackrest_repo());
        }
        // The database image's layout (/usr/pgsql-<major>/{bin,lib}) played by the lab's
        // PostgreSQL 15 installation: PostgreSQL finds its lib dir beside its bin dir.
        config.image_paths.push((
            "/usr/pgsql-15".into(),
            PG_BIN.trim_end_matches("/bin").into(),
        ));
        JobRunner::start(lab, config).unwrap()
    });
    let cronjob = opts.cronjob.as_ref().map(|cj| {
        let mut cj = cj.clone();
        cj["metadata"]["uid"] = json!(CRONJOB_UID);
        let path = format!(
            "/apis/batch/v1/namespaces/{PG_NS}/cronjobs/{}",
            cj["metadata"]["name"].as_str().unwrap()
        );
        (path, cj.to_string())
    });
    if let Some((path, body)) = &cronjob {
        routes.push((path.as_str(), body.clone()));
    }
    let api = RecordedApi::start_full(
        lab,
        MASTERS[0],
        &api_ca,
        &{
            routes.extend([
                ("/api/v1/nodes", node_list(&pg, "")),
                (&pods_path, pods.to_string()),
                (&bouncer_path, service.to_string()),
                (
                    "/api/v1/namespaces/vault/secrets/vault-ca",
                    secret.to_string(),
                ),
            ]);
            routes
        },
        &deletable,
        runner.as_ref().map(JobRunner::addr),
    )
    .unwrap();

    let primary = pg.primary_service().unwrap();
    let settings = pg.settings();
    let max_lag = settings.patroni.maximum_lag_on_failover;
    let inv = json!({
        "schema": 1,
        "cluster_name": "vf",
        "ssh": {"user": "root", "port": 22, "private_key_path": lab.client_key(), "known_hosts_file": lab.known_hosts(),
                "insecure_ignore_host_keys": false, "connect_timeout_seconds": 3},
        "nodes": lab.hosts().iter().map(|h| json!({"name": h.name, "address": h.ip.to_string(),
                 "role": if h.name.contains("master") { "server" } else { "agent" }})).collect::<Vec<_>>(),
        "api_vip": lab.host(MASTERS[0]).unwrap().ip.to_string(),
        "ingress_ip": null,
        "kubeconfig_path": api.kubeconfig(),
        "backup_mount": "/mnt/backups",
        "network": {"wireguard_enabled": false},
        "postgres": {"namespace": PG_NS, "cluster": PG_CLUSTER, "instances": 3, "synchronous": true,
                     "max_lag_bytes": max_lag, "patroni_port": PATRONI_PORT,
                     // the lab's Patroni serves plain HTTP (the Percona pods: https)
                     "patroni_scheme": "http",
                     "primary_endpoint": primary.to_string(), "pgbouncer_service": BOUNCER_SVC,
                     "restore_check_cronjob": opts.cronjob.as_ref().map(|c| c["metadata"]["name"].clone())},
        "vault": {"member_addresses": bao.members().iter().map(|m| m.address()).collect::<Vec<_>>(),
                  "namespace": VAULT_NS, "member_pods": ["vault-0", "vault-1", "vault-2"],
                  "ca_secret": {"namespace": "vault", "name": "vault-ca", "key": "ca.crt"}},
        "backups": [
            {"kind": "etcd", "dir": "etcd-snapshots", "per_server": true, "files": "etcd-snapshot-*", "max_age_seconds": 25200},
            {"kind": "pgbackrest", "dir": "pgbackrest", "per_server": false, "files": format!("backup/{}/backup.info", pg.stanza()), "max_age_seconds": 108000},
            {"kind": "pg_dump", "dir": "k8s/postgres-dumps", "per_server": false, "files": "ffe-*.dump", "max_age_seconds": 90000},
            {"kind": "vault", "dir": "k8s/vault-snapshots", "per_server": false, "files": "raft-*.snap", "max_age_seconds": 90000}
        ]
    });
    let inv_path = lab.dir().join("verify-inventory.json");
    std::fs::write(&inv_path, serde_json::to_vec_pretty(&inv).unwrap()).unwrap();
    f(&Healthy {
        pg: &pg,
        leader,
        etcd: &etcd,
        bao: &bao,
        api: &api,
        inv_path,
        backups,
        bao_keys: init.keys_base64.clone(),
        primary,
        pods: instance_pods.into_iter().chain(vault_pods).collect(),
        jobs: runner.as_ref(),
    })
}

/// Run `ffe-ha verify` until it passes (exit 0) and return that run's JSON report: the lab shares
/// two cores with the whole test suite, and a stall of a few seconds (a PgBouncer probe over its
/// 3 s limit) is the machine, not the cluster. Fails after 120 s with the last report.
pub fn verified(inv: &std::path::Path, extra: &[&str]) -> (Value, String) {
    let started = std::time::Instant::now();
    loop {
        let (code, doc, err) = verify(inv, extra);
        if code == 0 {
            return (doc, err);
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the lab did not verify healthy within 120 s:\n{doc:#}\n{err}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// `ffe-ha --inventory INV verify --output json --etcd-url <lab>` → (exit code, report, stderr).
pub fn verify(inv: &std::path::Path, extra: &[&str]) -> (i32, Value, String) {
    let inv = inv.display().to_string();
    let mut args = vec![
        "--inventory",
        inv.as_str(),
        "verify",
        "--output",
        "json",
        "--etcd-url",
        ffe_lab::etcd::LAB_API_URL,
    ];
    args.extend(extra);
    let out = ffe_ha(&args);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        out.status.code().unwrap_or(-1),
        doc,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The API path of a node's Lease.
pub fn lease_path(node: &str) -> String {
    format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}")
}

/// Now as kube-apiserver writes a MicroTime (RFC 3339, microseconds, UTC).
pub fn now_micro() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub fn hosts_of(pg: &PgLab) -> Vec<String> {
    pg.lab().hosts().iter().map(|h| h.name.clone()).collect()
}

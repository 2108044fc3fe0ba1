//! `ffe-ha drill` run as an operator runs it (the built binary, an inventory file) against the
//! 6-host lab of `common` (real etcd, Patroni + PostgreSQL + PgBouncer, OpenBao Raft).
//!
//! **Stand-ins, named:** the API server is `ffe_lab::kube_api` (the drill's DELETE of a pod is
//! answered as kube-apiserver answers a graceful delete, and logged); this test plays the
//! **kubelet and the StatefulSet** on that log: SIGTERM to the pod's engine (as the kubelet
//! does), [`RECREATE`] for the StatefulSet to create the pod again, then the engine starts again
//! (Vault: sealed). The primary Service is `PgLab::primary_service`. For the node drills,
//! **k3s on a node** is a stand-in too: each host's `k3s-killall.sh` and `systemctl` only record
//! their call, and [`play_k3s`] does what k3s would: kill that host's pods (its etcd member and
//! OpenBao on a master, its Patroni on a worker, SIGKILL as k3s-killall.sh does) and mark the node
//! NotReady; on `systemctl start`, after [`RECREATE`], start them again and mark it Ready. Not
//! played: the API stand-in and PgBouncer keep running on their hosts (the lab has no VIP to move).
//! Everything else is real: Patroni's failover, the replica's promotion, Raft's election, etcd's
//! quorum, the unseal.
//!
//! **Truth:** the test samples each endpoint itself every [`TRUTH_EVERY`], independently of the
//! CLI (Postgres: a real session through the primary endpoint, `pg_is_in_recovery()` false;
//! Vault: some member's `sys/health` active), and compares the drill's figures with it.
//! Needs root.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use ffe_lab::etcd::LAB_API_URL;
use ffe_lab::kube_api::recorded;
use ffe_lab::postgres::{pg_connect, query_one};
use serde_json::{json, Value};

/// How long the StatefulSet stand-in takes to create a deleted pod again (pod object, scheduling,
/// container start with a cached image).
const RECREATE: Duration = Duration::from_secs(2);
const TRUTH_EVERY: Duration = Duration::from_millis(50);
/// The target: a drill's recovery times within 0.5 s of the truth.
const WITHIN: f64 = 0.5;

/// `ffe-ha --inventory INV drill KIND --output json --etcd-url <lab> EXTRA` → (code, doc, stderr).
fn drill(inv: &Path, kind: &str, extra: &[&str]) -> (i32, Value, String) {
    let inv = inv.display().to_string();
    let mut args = vec![
        "--inventory",
        inv.as_str(),
        "drill",
        kind,
        "--output",
        "json",
        "--etcd-url",
        LAB_API_URL,
    ];
    args.extend(extra);
    let out = Command::new(env!("CARGO_BIN_EXE_ffe-ha"))
        .args(&args)
        .env(
            "RUST_LOG",
            std::env::var("FFE_HA_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .output()
        .expect("run ffe-ha");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.code().unwrap_or(-1), doc, stderr)
}

/// The kubelet and StatefulSet stand-in: play every DELETE the API stand-in answered on the
/// real engine of that pod. Returns what it did, for failure messages.
fn play_kubelet(h: &Healthy<'_>, stop: &AtomicBool, log: &Mutex<Vec<String>>) {
    let mut seen = h.api.deletions().len();
    while !stop.load(Ordering::Relaxed) {
        let all = h.api.deletions();
        for d in all.iter().skip(seen) {
            let note = |s: String| log.lock().unwrap().push(s);
            note(format!("DELETE {}/{}", d.namespace, d.pod));
            // The StatefulSet's new pod: same name, a new uid.
            let recreate = || {
                let old = h
                    .pods
                    .iter()
                    .find(|p| p["metadata"]["name"] == d.pod.as_str())
                    .unwrap();
                let path = format!("/api/v1/namespaces/{}/pods/{}", d.namespace, d.pod);
                let generation = 2 + u32::try_from(all.len()).unwrap();
                h.api
                    .set(&path, &recorded::recreated(old, generation).to_string())
                    .unwrap();
            };
            let r = match d.namespace.as_str() {
                PG_NS => h.pg.stop_patroni(&d.pod).and_then(|()| {
                    std::thread::sleep(RECREATE);
                    recreate();
                    h.pg.start_patroni(&d.pod)
                }),
                VAULT_NS => {
                    let i: usize = d.pod.trim_start_matches("vault-").parse().unwrap();
                    h.bao
                        .stop(i)
                        .and_then(|()| {
                            std::thread::sleep(RECREATE);
                            recreate();
                            h.bao.start(i)
                        })
                        .map_err(anyhow::Error::from)
                }
                other => panic!("a DELETE in namespace {other}"),
            };
            note(format!("{}/{} recreated: {r:?}", d.namespace, d.pod));
        }
        seen = all.len();
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Where each host's recorder writes: `<program> <args>` per call.
const K3S_CALLS: &str = "var/lib/rancher/ffe-lab-k3s.calls";

/// Replace `k3s-killall.sh` and `systemctl` on every host by recorders (see the module doc).
fn install_k3s_recorders(h: &Healthy<'_>) {
    use std::os::unix::fs::PermissionsExt;
    // A marker `ffe-lab-k3s.fail-<program>` makes that program fail without doing anything.
    let script = "#!/bin/sh\n# ffe-lab: k3s on this host is played by lab_drill.rs; this only records the call.\n\
                  [ -e \"/var/lib/rancher/ffe-lab-k3s.fail-$(basename \"$0\")\" ] && { echo 'ffe-lab: made to fail' >&2; exit 1; }\n\
                  printf '%s %s\\n' \"$(basename \"$0\")\" \"$*\" >> /var/lib/rancher/ffe-lab-k3s.calls\n";
    for host in h.pg.lab().hosts() {
        for prog in ["k3s-killall.sh", "systemctl"] {
            let f = host.root_dir.join("usr/local/bin").join(prog);
            let _ = std::fs::remove_file(&f);
            std::fs::write(&f, script).unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

/// k3s on the hosts, played from the recorded calls (see the module doc).
fn play_k3s(h: &Healthy<'_>, stop: &AtomicBool, log: &Mutex<Vec<String>>) {
    let calls = |host: &str| -> Vec<String> {
        std::fs::read_to_string(h.pg.lab().host(host).unwrap().root_dir.join(K3S_CALLS))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let hosts: Vec<String> = hosts_of(h.pg);
    let mut seen: Vec<usize> = hosts.iter().map(|n| calls(n).len()).collect();
    while !stop.load(Ordering::Relaxed) {
        for (k, host) in hosts.iter().enumerate() {
            let all = calls(host);
            for call in all.iter().skip(seen[k]) {
                log.lock().unwrap().push(format!("{host}: {call}"));
                let master = MASTERS.iter().position(|m| m == host);
                if call.starts_with("k3s-killall.sh") {
                    match master {
                        Some(i) => {
                            h.etcd.kill(i).unwrap();
                            h.bao.kill(i).unwrap();
                        }
                        None => h.pg.kill_patroni(host).unwrap(),
                    }
                    h.api.set("/api/v1/nodes", &node_list(h.pg, host)).unwrap();
                } else if call.starts_with("systemctl start k3s") {
                    std::thread::sleep(RECREATE);
                    match master {
                        Some(i) => {
                            h.etcd.restart(i).unwrap();
                            h.bao.start(i).unwrap();
                        }
                        None => h.pg.start_patroni(host).unwrap(),
                    }
                    h.api.set("/api/v1/nodes", &node_list(h.pg, "")).unwrap();
                    // The kubelet is back: it renews its Lease.
                    h.api
                        .set(
                            &lease_path(host),
                            &recorded::lease(host, &now_micro()).to_string(),
                        )
                        .unwrap();
                }
                log.lock().unwrap().push(format!("{host}: played {call}"));
            }
            seen[k] = all.len();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The stand-in that plays what a drill of `kind` sets off (k3s for node drills, the kubelet and
/// StatefulSet for pod drills), until `stop`.
fn play(h: &Healthy<'_>, kind: &str, stop: &AtomicBool, log: &Mutex<Vec<String>>) {
    if kind == "server" || kind == "worker" {
        play_k3s(h, stop, log)
    } else {
        play_kubelet(h, stop, log)
    }
}

/// `true`: a real session through the primary endpoint runs on a primary.
fn postgres_serving(primary: SocketAddr) -> bool {
    let SocketAddr::V4(a) = primary else {
        return false;
    };
    pg_connect(*a.ip(), a.port(), "postgres")
        .ok()
        .and_then(|mut c| query_one(&mut c, "SELECT pg_is_in_recovery()").ok())
        .is_some_and(|r| r == "f")
}

fn vault_serving(h: &Healthy<'_>) -> bool {
    (0..3).any(|i| {
        h.bao
            .health(i)
            .is_some_and(|s| s.initialized && !s.sealed && !s.standby)
    })
}

fn unix_s(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// The truth around one drill: (seconds since the failure was made) of the first failed sample
/// after it and of the first good one after that.
fn truth_outage(samples: &[(f64, bool)], injected_s: f64) -> Option<(f64, Option<f64>)> {
    let down = samples.iter().find(|(t, ok)| *t >= injected_s && !ok)?.0;
    let up = samples.iter().find(|(t, ok)| *t > down && *ok).map(|s| s.0);
    Some((down - injected_s, up.map(|u| u - injected_s)))
}

/// Run one drill with the kubelet stand-in and the truth sampler; (code, drill JSON, truth
/// samples as (unix seconds, serving), stand-in log).
fn drill_with_truth(
    h: &Healthy<'_>,
    kind: &str,
    extra: &[&str],
) -> (i32, Value, String, Vec<(f64, bool)>, Vec<String>) {
    verified(&h.inv_path, &[]);
    let stop = AtomicBool::new(false);
    let log = Mutex::new(vec![]);
    let samples = Mutex::new(vec![]);
    let (code, doc, err) = std::thread::scope(|s| {
        s.spawn(|| play(h, kind, &stop, &log));
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let t = unix_s(SystemTime::now());
                // The endpoint the drill takes down: Postgres (its primary's pod or worker),
                // Vault (its active member's pod or master).
                let ok = if kind == "postgres-primary" || kind == "worker" {
                    postgres_serving(h.primary)
                } else {
                    vault_serving(h)
                };
                samples.lock().unwrap().push((t, ok));
                std::thread::sleep(TRUTH_EVERY);
            }
        });
        // The precheck runs verify again: a stall of this shared machine between the two (a
        // PgBouncer probe over 3 s) refuses the drill; that is retried, twice at most.
        let mut r = drill(&h.inv_path, kind, extra);
        for _ in 0..2 {
            let unhealthy = r.0 == 5
                && r.1["drill"]["reasons"][0]
                    .as_str()
                    .is_some_and(|w| w.starts_with("the cluster is not healthy"));
            if !unhealthy {
                break;
            }
            eprintln!(
                "{kind}: refused by a transient verify failure, again: {}",
                r.1["drill"]["reasons"]
            );
            verified(&h.inv_path, &[]);
            r = drill(&h.inv_path, kind, extra);
        }
        stop.store(true, Ordering::Relaxed);
        r
    });
    (
        code,
        doc,
        err,
        samples.into_inner().unwrap(),
        log.into_inner().unwrap(),
    )
}

/// What one drill measured next to the truth.
struct Measured {
    service_restored_s: f64,
    truth_restored_s: f64,
    downtime_s: f64,
    truth_downtime_s: f64,
    recovered_s: f64,
}

/// Check one successful drill against the truth and the lab's own state; return the figures.
fn judge(
    kind: &str,
    code: i32,
    doc: &Value,
    err: &str,
    truth: &[(f64, bool)],
    log: &[String],
) -> Measured {
    let d = &doc["drill"];
    assert_eq!(code, 0, "{doc:#}\n{err}\n{log:#?}");
    assert_eq!(d["outcome"], "recovered", "{doc:#}");
    let endpoint = match kind {
        "postgres-primary" | "worker" => "postgres",
        _ => "vault",
    };
    let injected_s = d["injected_at_unix_ms"].as_f64().unwrap() / 1000.0;
    // A failover faster than the truth's sampling shows no outage at all: restored at once.
    let (down, up) = truth_outage(truth, injected_s).unwrap_or((0.0, Some(0.0)));
    let up = up.unwrap_or_else(|| panic!("the truth never saw {endpoint} serve again"));
    assert!(
        truth.iter().any(|(t, ok)| *t > injected_s + up && *ok),
        "the truth has no sample after the restoration"
    );
    let restored = d["service_restored_s"].as_f64().unwrap();
    assert!(
        (restored - up).abs() <= WITHIN,
        "{endpoint}: the drill says restored after {restored:.2} s, the truth {up:.2} s\n{doc:#}"
    );
    let ep = d["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == endpoint)
        .unwrap();
    let downtime = ep["downtime_s"].as_f64().unwrap();
    assert!(
        (downtime - (up - down)).abs() <= WITHIN,
        "{endpoint}: downtime {downtime:.2} s, the truth {:.2} s\n{doc:#}",
        up - down
    );
    // The other endpoints never went down: one component failed, not the platform.
    for e in d["endpoints"].as_array().unwrap() {
        if e["name"] != endpoint {
            assert_eq!(e["failed"], 0, "{e:#}");
        }
    }
    let recovered = d["recovered_s"].as_f64().unwrap();
    assert!(recovered >= restored - WITHIN, "{doc:#}");
    assert!(d["probe_interval_ms"].as_u64().unwrap() <= 250);
    eprintln!(
        "{kind}: restored {restored:.2} s (truth {up:.2}), downtime {downtime:.2} s (truth {:.2}), recovered {recovered:.2} s",
        up - down
    );
    Measured {
        service_restored_s: restored,
        truth_restored_s: up,
        downtime_s: downtime,
        truth_downtime_s: up - down,
        recovered_s: recovered,
    }
}

fn keys_file(h: &Healthy<'_>) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let f = h.inv_path.with_file_name("unseal-keys.json");
    std::fs::write(&f, serde_json::to_vec(&h.bao_keys).unwrap()).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    f
}

#[test]
fn drills_fail_one_component_measure_the_failover_and_restore_it() {
    with_healthy_lab(|h| {
        let keys = keys_file(h);
        let keys_arg = keys.display().to_string();

        // Refusals touch nothing. Without --yes and without a terminal:
        let (code, _, err) = drill(&h.inv_path, "postgres-primary", &[]);
        assert_eq!(code, 5, "{err}");
        assert!(err.contains("pass --yes"), "{err}");
        // vault-leader without unseal keys (an inventory file has none): the member would stay sealed.
        let (code, doc, _) = drill(&h.inv_path, "vault-leader", &["--yes"]);
        assert_eq!(code, 5, "{doc:#}");
        assert_eq!(doc["drill"]["outcome"], "refused");
        assert!(
            doc["drill"]["reasons"][0]
                .as_str()
                .unwrap()
                .contains("no unseal keys"),
            "{doc:#}"
        );
        // An unhealthy cluster (a Vault member down): verify's failing row is named.
        h.bao.kill(1).unwrap();
        let (code, doc, _) = drill(&h.inv_path, "postgres-primary", &["--yes"]);
        assert_eq!(code, 5, "{doc:#}");
        let reasons = doc["drill"]["reasons"].to_string();
        assert!(reasons.contains("vault.unsealed"), "{reasons}");
        h.bao.start(1).unwrap();
        h.bao
            .unseal(1, &h.bao_keys, Duration::from_secs(60))
            .unwrap();
        h.bao.wait_converged(Duration::from_secs(60)).unwrap();
        assert!(
            h.api.deletions().is_empty(),
            "a refused drill deleted a pod: {:?}",
            h.api.deletions().iter().map(|d| &d.pod).collect::<Vec<_>>()
        );

        // postgres-primary: the leader's pod is deleted; a replica takes over; the pod returns.
        let before = h.pg.wait_healthy(Duration::from_secs(60)).unwrap();
        let (code, doc, err, truth, log) = drill_with_truth(h, "postgres-primary", &["--yes"]);
        judge("postgres-primary", code, &doc, &err, &truth, &log);
        let d = &doc["drill"];
        assert!(
            d["target"]
                .as_str()
                .unwrap()
                .starts_with(&format!("pod {PG_NS}/{} ", before.name)),
            "{doc:#}"
        );
        assert_eq!(h.api.deletions().len(), 1);
        assert_eq!(h.api.deletions()[0].pod, before.name);
        let after = h.pg.wait_healthy(Duration::from_secs(60)).unwrap();
        assert_ne!(after.name, before.name, "the leader did not move");

        // vault-leader: the active member's pod is deleted; a standby takes over; the member
        // comes back sealed and the drill unseals it.
        let active = h.bao.active().unwrap();
        let (code, doc, err, truth, log) = drill_with_truth(
            h,
            "vault-leader",
            &["--yes", "--vault-unseal-keys", &keys_arg],
        );
        judge("vault-leader", code, &doc, &err, &truth, &log);
        assert_eq!(h.api.deletions()[1].pod, format!("vault-{active}"));
        let events = doc["drill"]["events"].to_string();
        assert!(
            events.contains("back, sealed") && events.contains("unsealed"),
            "{events}"
        );
        for i in 0..3 {
            let s = h.bao.health(i).unwrap();
            assert!(
                s.initialized && !s.sealed,
                "member {i} sealed after the drill"
            );
        }
        // worker: the Patroni leader's worker stopped (k3s and its pods killed) for 30 s: Postgres
        // fails over to another worker (a crash: Patroni's ttl), the node comes back, its
        // Patroni rejoins as a replica.
        // Without k3s's killall script on the node (k3s not installed by install.sh): refused.
        let (code, doc, _) = drill(
            &h.inv_path,
            "worker",
            &["--yes", "--vault-unseal-keys", &keys_arg],
        );
        assert_eq!(code, 5, "{doc:#}");
        assert!(
            doc["drill"]["reasons"][0]
                .as_str()
                .unwrap()
                .contains("no k3s-killall.sh on"),
            "{doc:#}"
        );
        install_k3s_recorders(h);
        let leader = h.pg.wait_healthy(Duration::from_secs(60)).unwrap();
        let (code, doc, err, truth, log) = drill_with_truth(
            h,
            "worker",
            &[
                "--yes",
                "--vault-unseal-keys",
                &keys_arg,
                "--node",
                &leader.name,
                "--down-for",
                "30",
            ],
        );
        judge("worker", code, &doc, &err, &truth, &log);
        assert!(
            doc["drill"]["target"]
                .as_str()
                .unwrap()
                .starts_with(&format!("node {} (worker", leader.name)),
            "{doc:#}"
        );
        assert_ne!(
            h.pg.wait_healthy(Duration::from_secs(60)).unwrap().name,
            leader.name
        );

        // A start of k3s that fails: the drill says the node stays down and exits 1; the
        // operator's command from the message brings it back.
        let replica = h.pg.wait_healthy(Duration::from_secs(60)).unwrap();
        let replica =
            h.pg.db_nodes()
                .iter()
                .find(|n| n.name != replica.name)
                .unwrap()
                .name
                .clone();
        let fail =
            h.pg.lab()
                .host(&replica)
                .unwrap()
                .root_dir
                .join("var/lib/rancher/ffe-lab-k3s.fail-systemctl");
        std::fs::write(&fail, "").unwrap();
        let (code, doc, err, _, log) = drill_with_truth(
            h,
            "worker",
            &[
                "--yes",
                "--vault-unseal-keys",
                &keys_arg,
                "--node",
                &replica,
                "--down-for",
                "5",
            ],
        );
        assert_eq!(code, 1, "{doc:#}\n{err}\n{log:#?}");
        assert_eq!(doc["drill"]["outcome"], "not_recovered");
        let reasons = doc["drill"]["reasons"].to_string();
        assert!(
            reasons.contains("THE NODE STAYS DOWN")
                && reasons.contains("systemctl start k3s-agent"),
            "{reasons}"
        );
        std::fs::remove_file(&fail).unwrap();
        let stop = AtomicBool::new(false);
        let log = Mutex::new(vec![]);
        std::thread::scope(|s| {
            s.spawn(|| play_k3s(h, &stop, &log));
            h.pg.run(&replica, "systemctl start k3s-agent").unwrap();
            // The player restarts Patroni there after RECREATE; then the lab verifies again.
            std::thread::sleep(RECREATE + Duration::from_secs(1));
            stop.store(true, Ordering::Relaxed);
        });
        verified(&h.inv_path, &[]);

        // server: the master with the active Vault member stopped for 20 s: etcd keeps its
        // quorum, Vault elects another leader; the master comes back, its Vault member sealed,
        // and the drill unseals it.
        let active = h.bao.active().unwrap();
        let (code, doc, err, truth, log) = drill_with_truth(
            h,
            "server",
            &[
                "--yes",
                "--vault-unseal-keys",
                &keys_arg,
                "--node",
                MASTERS[active],
                "--down-for",
                "20",
            ],
        );
        judge("server", code, &doc, &err, &truth, &log);
        let events = doc["drill"]["events"].to_string();
        assert!(
            events.contains("k3s-killall.sh on")
                && events.contains("systemctl start k3s on")
                && events.contains("unsealed"),
            "{events}"
        );
        // `--node` must name a node of the drill's role.
        let (code, doc, _) = drill(
            &h.inv_path,
            "server",
            &[
                "--yes",
                "--vault-unseal-keys",
                &keys_arg,
                "--node",
                WORKERS[0],
            ],
        );
        assert_eq!(code, 5, "{doc:#}");
        assert!(
            doc["drill"]["reasons"][0]
                .as_str()
                .unwrap()
                .contains("is not a master"),
            "{doc:#}"
        );

        // Nothing is left half-done: the cluster verifies healthy again.
        let out = Command::new(env!("CARGO_BIN_EXE_ffe-ha"))
            .args([
                "--inventory",
                &h.inv_path.display().to_string(),
                "verify",
                "--etcd-url",
                LAB_API_URL,
            ])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    });
}

/// `drill KIND EXTRA` with the table output, its player running; stdout.
fn table_drill(h: &Healthy<'_>, kind: &str, extra: &[&str]) -> String {
    let stop = AtomicBool::new(false);
    let log = Mutex::new(vec![]);
    let inv = h.inv_path.display().to_string();
    let mut args = vec![
        "--inventory",
        inv.as_str(),
        "drill",
        kind,
        "--etcd-url",
        LAB_API_URL,
    ];
    args.extend(extra);
    let out = std::thread::scope(|s| {
        s.spawn(|| play(h, kind, &stop, &log));
        let out = Command::new(env!("CARGO_BIN_EXE_ffe-ha"))
            .args(&args)
            .output()
            .unwrap();
        stop.store(true, Ordering::Relaxed);
        out
    });
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// bench/drills: each drill (postgres-primary, vault-leader, worker, server; node drills stop the
/// node of the leader they measure for 20 s) FFE_DRILL_BENCH_RUNS times (default 3) on the 6-host
/// lab; one `BENCH_JSON` line with the drill's figures and the truth's. With FFE_DRILL_SHOW=1 also
/// a postgres-primary and a worker drill as tables (docs/operations.md shows them).
#[test]
#[ignore = "benchmark: bench/drills"]
fn bench_drills() {
    let runs: usize = std::env::var("FFE_DRILL_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    with_healthy_lab(|h| {
        let keys = keys_file(h);
        let keys_arg = keys.display().to_string();
        install_k3s_recorders(h);
        let mut results = serde_json::Map::new();
        let show = std::env::var_os("FFE_DRILL_SHOW").is_some();
        for kind in ["postgres-primary", "vault-leader", "worker", "server"] {
            let mut rows = vec![];
            for run in
                0..runs + usize::from(show && (kind == "postgres-primary" || kind == "worker"))
            {
                let leader = h.pg.wait_healthy(Duration::from_secs(60)).unwrap();
                let active = h.bao.wait_converged(Duration::from_secs(60)).unwrap();
                // Node drills stop the node with the leader of the endpoint they measure.
                let node = match kind {
                    "worker" => leader.name.clone(),
                    _ => MASTERS[active].to_string(),
                };
                let mut extra: Vec<&str> = vec!["--yes", "--vault-unseal-keys", &keys_arg];
                if kind == "worker" || kind == "server" {
                    extra.extend(["--node", node.as_str(), "--down-for", "20"]);
                }
                if run == runs {
                    // One more, as the table an operator sees (docs/operations.md shows it).
                    println!("{}", table_drill(h, kind, &extra));
                    continue;
                }
                let started = Instant::now();
                let (code, doc, err, truth, log) = drill_with_truth(h, kind, &extra);
                let m = judge(kind, code, &doc, &err, &truth, &log);
                rows.push(json!({
                    "service_restored_s": m.service_restored_s,
                    "truth_restored_s": m.truth_restored_s,
                    "downtime_s": m.downtime_s,
                    "truth_downtime_s": m.truth_downtime_s,
                    "recovered_s": m.recovered_s,
                    "drill_wall_s": started.elapsed().as_secs_f64(),
                }));
            }
            let col =
                |k: &str| -> Vec<f64> { rows.iter().map(|r| r[k].as_f64().unwrap()).collect() };
            let worst_error = rows
                .iter()
                .map(|r| {
                    (r["service_restored_s"].as_f64().unwrap()
                        - r["truth_restored_s"].as_f64().unwrap())
                    .abs()
                })
                .fold(0.0, f64::max);
            results.insert(
                kind.to_string(),
                json!({
                    "runs": rows,
                    "service_restored_s": ffe_lab::wall_stats(&col("service_restored_s")),
                    "downtime_s": ffe_lab::wall_stats(&col("downtime_s")),
                    "recovered_s": ffe_lab::wall_stats(&col("recovered_s")),
                    "worst_restored_error_s": worst_error,
                }),
            );
        }
        let bench = json!({
            "command": "ffe-ha drill",
            "hosts": 6,
            "probe_interval_ms": 250,
            "truth_sample_ms": TRUTH_EVERY.as_millis() as u64,
            "target_error_s": WITHIN,
            "drills": results,
            "stand_ins": "the API server (nginx, recorded), the kubelet/StatefulSet (the test: SIGTERM, 2 s, start) and k3s on a node (the test: SIGKILL of the node's etcd member and OpenBao, or Patroni; after systemctl start, 2 s, start); Patroni, PostgreSQL, etcd, OpenBao and their failovers are real",
            "node_down_for_s": 20,
            "note": "lab hosts are network namespaces on this machine; the pod recreation delay is the stand-in's, not a kubelet's",
        });
        println!("BENCH_JSON {bench}");
    });
}

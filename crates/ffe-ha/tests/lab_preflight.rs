//! `ffe-ha preflight` run as an operator runs it (the built binary), against ffe-lab hosts:
//! network namespaces with real OpenSSH servers, pinned host keys and one shared backup dir.
//! Needs root. Every fault is made for real on a host (a listener, a private mount, a clock
//! shim, a dead host, a stopped sshd, a wrong key); the only limit lowered is the round-trip
//! maximum, because the lab cannot add latency (no netem in this kernel).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use ffe_lab::lab::{Lab, LabSpec};
use serde_json::{json, Value};

const MASTERS: [&str; 3] = ["pf-master-0", "pf-master-1", "pf-master-2"];
const WORKERS: [&str; 3] = ["pf-worker-0", "pf-worker-1", "pf-worker-2"];

fn lab(hosts: &[&str]) -> Lab {
    Lab::create(LabSpec {
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        backup_mount: "/mnt/backups".into(),
        ssh_port: 22,
    })
    .expect("lab")
}

/// The inventory `terraform output -json ops_inventory` would give for this lab. `requirements`
/// (lab-sized unless `seed`) is the inventory file's documented override.
fn inventory(lab: &Lab, seed: bool, max_rtt_ms: f64) -> Value {
    let nodes: Vec<Value> = lab
        .hosts()
        .iter()
        .map(|h| {
            let role = if h.name.contains("master") {
                "server"
            } else {
                "agent"
            };
            json!({"name": h.name, "address": h.ip.to_string(), "role": role})
        })
        .collect();
    let mut inv = json!({
        "schema": 1,
        "cluster_name": "pf",
        "ssh": {
            "user": "root",
            "port": 22,
            "private_key_path": lab.client_key(),
            "known_hosts_file": lab.known_hosts(),
            "insecure_ignore_host_keys": false,
            "connect_timeout_seconds": 3
        },
        "nodes": nodes,
        "api_vip": null,
        "ingress_ip": null,
        "kubeconfig_path": null,
        "backup_mount": "/mnt/backups",
        "network": {"wireguard_enabled": true}
    });
    if !seed {
        inv["requirements"] = json!({
            "server": {"cpus": 1, "memory_gb": 1},
            "agent": {"cpus": 1, "memory_gb": 1},
            "total_disk_gb": 1,
            "max_rtt_ms": max_rtt_ms,
            "max_clock_skew_ms": 1000.0
        });
    }
    inv
}

fn write_inventory(lab: &Lab, name: &str, inv: &Value) -> PathBuf {
    let path = lab.dir().join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(inv).unwrap()).unwrap();
    path
}

fn ffe_ha(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ffe-ha"))
        .args(args)
        .env(
            "RUST_LOG",
            std::env::var("FFE_HA_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .output()
        .expect("run ffe-ha")
}

/// `preflight --output json`: (exit code, the JSON document, stderr).
fn preflight(inv: &Path, extra: &[&str]) -> (i32, Value, String) {
    let mut args = vec![
        "--inventory",
        inv.to_str().unwrap(),
        "preflight",
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = ffe_ha(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\nstderr: {}", text_err(&out)));
    (out.status.code().unwrap_or(-1), doc, text_err(&out))
}

fn text_err(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Rows of one check id, as (subject, status, evidence, hint).
fn rows(doc: &Value, id: &str) -> Vec<(String, String, String, String)> {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"] == id)
        .map(|c| {
            (
                c["subject"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
                c["evidence"].as_str().unwrap().to_string(),
                c["hint"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn status_of(doc: &Value, id: &str, subject: &str) -> String {
    rows(doc, id)
        .into_iter()
        .find(|r| r.0 == subject)
        .map(|r| r.1)
        .unwrap_or_else(|| panic!("no {id} row for {subject}: {doc:#}"))
}

/// Subjects whose `id` row is not `pass`/`warn`.
fn failing(doc: &Value) -> Vec<String> {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail" || c["status"] == "error")
        .map(|c| format!("{} {}: {}", c["id"], c["subject"], c["evidence"]))
        .collect()
}

/// A TCP listener on `port` inside `host`'s network namespace (a foreign program on a k3s port).
fn listen_in(lab: &Lab, host: &str, port: u16) -> Child {
    let netns = &lab.host(host).unwrap().netns;
    let child = Command::new("ip")
        .args(["netns", "exec", netns, "python3", "-c"])
        .arg(format!(
            "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',{port}))\ns.listen()\nprint('up',flush=True)\ntime.sleep(600)"
        ))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = child;
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "up");
    child
}

fn assert_no_markers_left(lab: &Lab) {
    let left: Vec<_> = std::fs::read_dir(lab.backup_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".ffe-ha-preflight"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn healthy_lab_passes_and_each_broken_prerequisite_is_named() {
    let lab = lab(&[MASTERS.as_slice(), WORKERS.as_slice()].concat());
    let inv = write_inventory(&lab, "inventory.json", &inventory(&lab, false, 5.0));

    // Healthy, lab-sized requirements: nothing fails. The OS (Debian here) is only a warning.
    let (code, doc, err) = preflight(&inv, &[]);
    assert_eq!(code, 0, "{:#?}\n{err}", failing(&doc));
    for id in [
        "ssh.reachable",
        "cpu.min",
        "memory.min",
        "ports.free",
        "backup.mount",
        "backup.shared",
        "clock.sync",
        "net.rtt",
    ] {
        let r = rows(&doc, id);
        assert_eq!(r.len(), 6, "{id}: {r:?}");
        assert!(r.iter().all(|r| r.1 == "pass"), "{id}: {r:?}");
    }
    assert_eq!(rows(&doc, "disk.total")[0].1, "pass");
    for c in doc["checks"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        assert!(
            ffe_ops::preflight::CHECK_IDS.contains(&id),
            "{id} is not in CHECK_IDS (docs)"
        );
    }
    assert!(rows(&doc, "backup.shared")[0].2.contains("all 6 nodes"));
    assert!(rows(&doc, "cpu.min")[0]
        .2
        .contains("inventory requirements"));
    // The markers written to the shared backup dir are gone again.
    assert_no_markers_left(&lab);
    // --strict turns the OS warning into a failure.
    let (code, _, _) = preflight(&inv, &["--strict"]);
    assert_eq!(code, 1);

    // The seed's prerequisites on this 2-vCPU machine: every master fails cpu.min, no worker.
    let seed = write_inventory(&lab, "seed.json", &inventory(&lab, true, 5.0));
    let (code, doc, _) = preflight(&seed, &[]);
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(code, if cpus < 4 { 1 } else { 0 }, "{:#?}", failing(&doc));
    if cpus < 4 {
        for m in MASTERS {
            assert_eq!(status_of(&doc, "cpu.min", m), "fail", "{doc:#}");
        }
        let r = rows(&doc, "cpu.min");
        assert!(
            r[0].2
                .contains("< 4 (seed prerequisites: masters 4 vCPU / 8 GB)"),
            "{r:?}"
        );
        assert!(r[0].3.contains("vCPU"), "{r:?}");
    }
    if cpus >= 2 {
        for w in WORKERS {
            assert_eq!(status_of(&doc, "cpu.min", w), "pass", "{doc:#}");
        }
    }

    // A foreign program on the Kubernetes API port of one master.
    let mut squatter = listen_in(&lab, MASTERS[1], 6443);
    let (code, doc, _) = preflight(&inv, &[]);
    squatter.kill().unwrap();
    squatter.wait().unwrap();
    assert_eq!(code, 1);
    let r = rows(&doc, "ports.free");
    let bad: Vec<_> = r.iter().filter(|r| r.1 != "pass").collect();
    assert_eq!(bad.len(), 1, "{r:?}");
    assert_eq!(bad[0].0, MASTERS[1]);
    assert!(
        bad[0]
            .2
            .contains("6443/tcp (Kubernetes API) held by python3"),
        "{bad:?}"
    );

    // One worker with its own directory at the backup mount instead of the shared one.
    let w2 = WORKERS[2];
    let out = lab
        .ssh(w2, "mount -t tmpfs private-backups /mnt/backups")
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (code, doc, _) = preflight(&inv, &[]);
    let private_left = lab
        .ssh(w2, "ls -A /mnt/backups")
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap();
    lab.ssh(w2, "umount /mnt/backups").unwrap();
    assert_eq!(private_left.trim(), "", "markers left on w2's own mount");
    assert_no_markers_left(&lab);
    assert_eq!(code, 1);
    let r = rows(&doc, "backup.shared");
    let on_w2 = r.iter().find(|r| r.0 == w2).unwrap();
    assert_eq!(on_w2.1, "fail");
    assert!(
        on_w2.2.contains("does not show the markers written by") && on_w2.2.contains(MASTERS[0]),
        "{on_w2:?}"
    );
    let on_m0 = r.iter().find(|r| r.0 == MASTERS[0]).unwrap();
    assert!(on_m0.1 == "fail" && on_m0.2.contains(w2), "{on_m0:?}");
    // It is still a writable mount of its own: backup.mount alone cannot tell.
    assert_eq!(status_of(&doc, "backup.mount", w2), "pass");

    // A node whose clock runs 5 s ahead (a `date` shim in that host's own /usr/local/bin).
    let m2 = lab.host(MASTERS[2]).unwrap();
    let shim = m2.root_dir.join("usr/local/bin/date");
    std::fs::write(
        &shim,
        "#!/bin/sh\nif [ \"$1\" = '+%s.%N' ]; then /bin/date +%s.%N | awk '{printf \"%.9f\\n\", $1 + 5}'; else exec /bin/date \"$@\"; fi\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["0755", shim.to_str().unwrap()])
        .status()
        .unwrap();
    let (code, doc, _) = preflight(&inv, &[]);
    std::fs::remove_file(&shim).unwrap();
    assert_eq!(code, 1);
    let r = rows(&doc, "clock.sync");
    let skewed: Vec<_> = r.iter().filter(|r| r.1 != "pass").collect();
    assert_eq!(skewed.len(), 1, "{r:?}");
    assert_eq!(skewed[0].0, MASTERS[2]);
    // "+5.012 s from this machine (±0.020 s)": the shim's 5 s lies inside the bracket.
    let nums: Vec<f64> = skewed[0]
        .2
        .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .filter_map(|w| w.parse().ok())
        .collect();
    let (offset, half) = (nums[0], nums[1]);
    assert!((offset - 5.0).abs() <= half + 0.01, "{skewed:?}");

    // Round trips: the lab cannot add latency, so the limit goes below what it measures.
    let tight = write_inventory(&lab, "tight.json", &inventory(&lab, false, 0.000_001));
    let (code, doc, _) = preflight(&tight, &[]);
    assert_eq!(code, 1);
    let r = rows(&doc, "net.rtt");
    assert!(
        r.iter()
            .all(|r| r.1 == "fail" && r.2.contains("worst average round trip")),
        "{r:?}"
    );
}

#[test]
fn unreachable_refused_mismatched_and_hung_nodes_end_with_named_errors() {
    let hosts = ["pf-master-0", "pf-master-1", "pf-worker-0"];
    let lab = lab(&hosts);
    let inv = write_inventory(&lab, "inventory.json", &inventory(&lab, false, 5.0));
    let (code, doc, _) = preflight(&inv, &[]);
    assert_eq!(code, 0, "{:#?}", failing(&doc));

    // A dead host: its row says it could not be evaluated (exit 4); the others still pass,
    // and their round-trip rows leave the dead peer to its own row.
    lab.kill_host(hosts[2]).unwrap();
    let (code, doc, _) = preflight(&inv, &[]);
    lab.revive_host(hosts[2]).unwrap();
    assert_eq!(code, 4, "{doc:#}");
    let r = rows(&doc, "ssh.reachable");
    let dead = r.iter().find(|r| r.0 == hosts[2]).unwrap();
    assert_eq!(dead.1, "error", "{dead:?}");
    assert!(dead.3.contains("unreachable"), "{dead:?}");
    assert_eq!(status_of(&doc, "net.rtt", hosts[0]), "pass");
    assert_eq!(rows(&doc, "disk.total")[0].1, "error");

    // A key no node accepts: every node fails (a fix is needed, not a retry).
    let key = lab.dir().join("stranger_key");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    let (code, doc, _) = preflight(&inv, &["--ssh-key", key.to_str().unwrap()]);
    assert_eq!(code, 1);
    let r = rows(&doc, "ssh.reachable");
    assert!(
        r.iter()
            .all(|r| r.1 == "fail" && r.3.contains("SSH refused the key")),
        "{r:?}"
    );

    // A host key that does not match the pin: refused, with the man-in-the-middle warning.
    let other = lab.dir().join("other_host_key");
    let st = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            other.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let fake_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let fake_key: Vec<&str> = fake_pub.split_whitespace().take(2).collect();
    let ip1 = lab.host(hosts[1]).unwrap().ip.to_string();
    let pinned = std::fs::read_to_string(lab.known_hosts()).unwrap();
    let swapped: String = pinned
        .lines()
        .map(|l| {
            if l.split_whitespace().next() == Some(ip1.as_str()) {
                format!("{ip1} {}", fake_key.join(" "))
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    let wrong_pins = lab.dir().join("known_hosts_wrong");
    std::fs::write(&wrong_pins, swapped).unwrap();
    let (code, doc, _) = preflight(&inv, &["--known-hosts", wrong_pins.to_str().unwrap()]);
    assert_eq!(code, 1);
    let r = rows(&doc, "ssh.reachable");
    let bad: Vec<_> = r.iter().filter(|r| r.1 != "pass").collect();
    assert_eq!(bad.len(), 1, "{r:?}");
    assert_eq!(bad[0].0, hosts[1]);
    assert_eq!(bad[0].1, "fail");
    assert!(bad[0].3.contains("man-in-the-middle"), "{bad:?}");

    // A hung host: sshd stopped (SIGSTOP) accepts TCP but never answers. The run still ends,
    // the row names the host.
    let pids = lab.host_pids(hosts[0]).unwrap();
    for p in &pids {
        signal_pid(*p, "STOP");
    }
    let (code, doc, _) = preflight(&inv, &[]);
    for p in &pids {
        signal_pid(*p, "CONT");
    }
    assert_eq!(code, 4, "{doc:#}");
    let hung = rows(&doc, "ssh.reachable")
        .into_iter()
        .find(|r| r.0 == hosts[0])
        .unwrap();
    assert_eq!(hung.1, "error", "{hung:?}");
    assert!(
        hung.2.contains("timed out") || hung.2.contains("no answer"),
        "{hung:?}"
    );

    // A host that hangs after login (its `date` never returns): the clock read waits, the run
    // still ends at the probe's limit, the row names the host, the others are evaluated.
    let shim = lab
        .host(hosts[1])
        .unwrap()
        .root_dir
        .join("usr/local/bin/date");
    std::fs::write(&shim, "#!/bin/sh\nexec sleep 60\n").unwrap();
    Command::new("chmod")
        .args(["0755", shim.to_str().unwrap()])
        .status()
        .unwrap();
    let (code, doc, _) = preflight(&inv, &[]);
    std::fs::remove_file(&shim).unwrap();
    assert_eq!(code, 4, "{doc:#}");
    let hung = rows(&doc, "ssh.reachable")
        .into_iter()
        .find(|r| r.0 == hosts[1])
        .unwrap();
    assert_eq!(hung.1, "error", "{hung:?}");
    // The node's own `timeout` stops the probe at its limit and reports it.
    assert!(
        hung.2
            .contains("step 'preflight probe' did not finish within 8 s"),
        "{hung:?}"
    );
    assert_eq!(status_of(&doc, "clock.sync", hosts[0]), "pass");
}

/// `--tf-plan` reads `terraform show -json`, which holds sensitive values in clear: none of them
/// may reach the output, whether the plan's inventory is good or not. A `terraform` shim first on
/// PATH prints a plan with planted values (real Terraform cannot plan against the lab here
/// without a provider run, and the shape is Terraform's documented JSON plan format).
#[test]
fn a_plan_s_sensitive_values_never_reach_the_output() {
    let hosts = ["pf-master-0"];
    let lab = lab(&hosts);
    let planted = "PLANTED-SECRET-7c1f0e";
    let mut inv = inventory(&lab, false, 5.0);
    let plan_of = |inv: &Value| {
        json!({
            "format_version": "1.2",
            "variables": {"vault_root_token": {"value": planted}, "ssh_user": {"value": "root"}},
            "planned_values": {"outputs": {
                "ops_inventory": {"sensitive": false, "value": inv},
                "k3s_token": {"sensitive": true, "value": planted}
            }},
            "prior_state": {"values": {"outputs": {"vault_unseal_keys": {"sensitive": true, "value": [planted]}}}}
        })
    };
    let shim_dir = lab.dir().join("tf-shim");
    std::fs::create_dir_all(&shim_dir).unwrap();
    let plan_json = shim_dir.join("plan.json");
    let shim = shim_dir.join("terraform");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\n[ \"$2\" = show ] && exec cat {}\necho 'unexpected terraform call' >&2; exit 1\n",
            plan_json.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .args(["0755", shim.to_str().unwrap()])
        .status()
        .unwrap();
    let plan_file = lab.dir().join("tfplan");
    std::fs::write(&plan_file, "not read: the shim answers").unwrap();
    let path = format!("{}:{}", shim_dir.display(), std::env::var("PATH").unwrap());
    let run = |output: &str| {
        Command::new(env!("CARGO_BIN_EXE_ffe-ha"))
            .args(["--tf-dir", lab.dir().to_str().unwrap()])
            .args([
                "--tf-plan",
                plan_file.to_str().unwrap(),
                "preflight",
                "-o",
                output,
            ])
            .env("PATH", &path)
            .output()
            .unwrap()
    };
    for good in [true, false] {
        if !good {
            inv["schema"] = json!(2);
        }
        std::fs::write(&plan_json, serde_json::to_vec(&plan_of(&inv)).unwrap()).unwrap();
        for output in ["table", "json"] {
            let out = run(output);
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                !all.contains(planted),
                "secret printed ({output}, good={good}):\n{all}"
            );
            if good {
                assert_eq!(out.status.code(), Some(0), "{all}");
                assert!(all.contains("ssh.reachable"), "{all}");
            } else {
                assert_eq!(out.status.code(), Some(3), "{all}");
                assert!(all.contains("schema 2"), "{all}");
            }
        }
    }
}

/// `kill -STOP/-CONT PID` (the lab rule: processes are signalled by PID, never by name).
fn signal_pid(pid: i32, sig: &str) {
    let st = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid}");
}

#[test]
fn no_inventory_exits_3_naming_the_directory_or_file() {
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().to_str().unwrap();
    // A directory without Terraform state (real terraform answers).
    let out = ffe_ha(&["--tf-dir", dir, "preflight"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = text_err(&out);
    assert!(
        err.contains(&format!("--tf-dir {dir}: no output ops_inventory"))
            && err.contains("terraform apply"),
        "{err}"
    );
    // No such directory.
    let out = ffe_ha(&["--tf-dir", "/nonexistent/env", "preflight", "-o", "json"]);
    assert_eq!(out.status.code(), Some(3));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["error"]
        .as_str()
        .unwrap()
        .contains("/nonexistent/env: no such directory"));
    assert_eq!(doc["exit_code"], 3);
    // An inventory file that is not one.
    let bad = empty.path().join("inv.json");
    std::fs::write(&bad, "{\"schema\": 1, \"nodes\": []}").unwrap();
    let out = ffe_ha(&["--inventory", bad.to_str().unwrap(), "preflight"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text_err(&out).contains(&format!("inventory file {}", bad.display())));
    // A bad flag value is named.
    std::fs::write(
        &bad,
        r#"{"schema":1,"cluster_name":"c","nodes":[{"name":"a","address":"127.0.0.1","role":"server"}],"backup_mount":"/b"}"#,
    )
    .unwrap();
    let out = ffe_ha(&[
        "--inventory",
        bad.to_str().unwrap(),
        "--ssh-port",
        "0",
        "preflight",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text_err(&out).contains("--ssh-port"), "{}", text_err(&out));
    // Usage errors are clap's: exit 2.
    let out = ffe_ha(&["preflight", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = ffe_ha(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("preflight"),
            "{shell}"
        );
    }
}

/// bench/preflight: wall time of `ffe-ha preflight` on 6 lab hosts (the issue's target is
/// ≤ 3 s), FFE_PREFLIGHT_BENCH_RUNS runs (default 5). Prints one `BENCH_JSON` line.
#[test]
#[ignore = "benchmark: bench/preflight"]
fn bench_preflight() {
    let runs: usize = std::env::var("FFE_PREFLIGHT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let lab = lab(&[MASTERS.as_slice(), WORKERS.as_slice()].concat());
    let inv = write_inventory(&lab, "inventory.json", &inventory(&lab, false, 5.0));
    let mut walls = Vec::new();
    let mut checks = 0;
    for _ in 0..runs {
        let started = std::time::Instant::now();
        let (code, doc, err) = preflight(&inv, &[]);
        walls.push(started.elapsed().as_secs_f64());
        assert_eq!(code, 0, "{:#?}\n{err}", failing(&doc));
        if std::env::var_os("FFE_HA_LOG").is_some() {
            eprintln!("{err}");
        }
        checks = doc["checks"].as_array().unwrap().len();
    }
    let bench = json!({
        "command": "ffe-ha preflight",
        "hosts": 6,
        "runs": runs,
        "checks": checks,
        "wall_s": ffe_lab::wall_stats(&walls),
        "target_s": 3.0,
        "note": "lab hosts are network namespaces on this machine: one shared kernel and CPU set, so SSH set-up cost is real, network latency is not",
    });
    println!("BENCH_JSON {bench}");
}

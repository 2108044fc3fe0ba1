//! The `ha` environment applied for real (real terraform, real OpenSSH) against ffe-lab hosts
//! running the k3s **stand-in**: 3 servers + 3 agents, re-apply, scale 3 -> 5 -> 3, destroy.
//! Needs root (network namespaces). Assertions are on what each host's stand-in recorded.

mod support;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;

use support::*;

fn config_of(env: &Env, host: &str) -> serde_yaml_ng::Value {
    let rec = env
        .records(host)
        .into_iter()
        .rev()
        .find(|r| r.config_yaml.is_some())
        .unwrap_or_else(|| panic!("{host}: no service start recorded"));
    serde_yaml_ng::from_str(rec.config_yaml.as_deref().unwrap()).unwrap()
}

/// Where the host's k3s config file is, seen from the test.
fn config_path(env: &Env, host: &str) -> std::path::PathBuf {
    env.lab
        .host(host)
        .unwrap()
        .root_dir
        .join("etc/rancher/k3s/config.yaml")
}

/// The config file as it is on the host now (not as the last service start read it).
fn config_file_of(env: &Env, host: &str) -> serde_yaml_ng::Value {
    let path = config_path(env, host);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{host}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap()
}

/// `ffe-ha preflight --tf-dir` on the applied environment: the CLI finds the nodes through the
/// real `terraform output -json ops_inventory` and reaches them with the provider's SSH settings
/// (the lab's key and pinned known_hosts). The seed's minimums stay in force, so on a machine
/// with fewer than 4 vCPUs the masters fail cpu.min: only hardware rows may fail.
fn preflight_reads_the_applied_environment(env: &Env) {
    let exe = std::env::current_exe().unwrap();
    let ffe_ha = exe.parent().unwrap().parent().unwrap().join("ffe-ha");
    let out = std::process::Command::new(&ffe_ha)
        .arg("--tf-dir")
        .arg(env.env_dir())
        .args(["preflight", "--output", "json"])
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (cargo build --workspace --bins first)",
                ffe_ha.display()
            )
        });
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(doc["inventory"]["kind"], "terraform", "{doc:#}");
    let checks = doc["checks"].as_array().unwrap();
    let reached: BTreeSet<&str> = checks
        .iter()
        .filter(|c| c["id"] == "ssh.reachable" && c["status"] == "pass")
        .map(|c| c["subject"].as_str().unwrap())
        .collect();
    let expected: BTreeSet<String> = (0..3).map(master).chain((0..3).map(worker)).collect();
    assert_eq!(
        reached,
        expected.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        "{doc:#}"
    );
    for c in checks {
        if c["status"] == "fail" || c["status"] == "error" {
            assert!(
                ["cpu.min", "memory.min", "disk.total"].contains(&c["id"].as_str().unwrap()),
                "unexpected failure: {c}"
            );
            assert!(
                c["evidence"]
                    .as_str()
                    .unwrap()
                    .contains("seed prerequisites"),
                "{c}"
            );
        }
    }
    let code = out.status.code().unwrap();
    assert!(code == 0 || code == 1, "exit {code}: {doc:#}");
}

#[test]
fn lifecycle_apply_reapply_scale_destroy() {
    let mut env = Env::new(3, 5);
    env.tfvars(3, "");
    // Each server join takes 2 s (etcd learner held): long enough to see the agents join
    // beside the server joins, not after them.
    env.lab
        .set_join_hold(std::time::Duration::from_secs(2))
        .unwrap();
    env.apply_ok();

    // Servers: the first initialises etcd, the others join it one after the other.
    let first = installs(&env.records(&master(0)));
    let second = installs(&env.records(&master(1)));
    let third = installs(&env.records(&master(2)));
    assert_eq!(first.len(), 1, "server 0 installs once");
    assert_eq!(first[0].1, "server");
    assert!(
        first[0].0 < second[0].0 && second[0].0 < third[0].0,
        "servers join in order"
    );
    let c0 = config_of(&env, &master(0));
    assert_eq!(c0["cluster-init"], serde_yaml_ng::Value::Bool(true));
    let c1 = config_of(&env, &master(1));
    assert_eq!(
        c1["server"].as_str(),
        Some(format!("https://{}:6443", env.ip(&master(0))).as_str())
    );
    let sans: BTreeSet<String> = c1["tls-san"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for i in 0..3 {
        assert!(
            sans.contains(&env.ip(&master(i))),
            "tls-san lacks server {i}: {sans:?}"
        );
    }
    assert!(
        sans.contains(&env.free_ip(200)),
        "tls-san lacks the API VIP"
    );
    assert_eq!(c1["flannel-backend"].as_str(), Some("none"));
    assert_eq!(
        c1["etcd-snapshot-dir"].as_str(),
        Some(format!("/mnt/backups/etcd-snapshots/{}", master(1)).as_str())
    );
    // k3s snapshots only into a directory that exists (it creates just its default one).
    for i in 0..3 {
        use std::os::unix::fs::PermissionsExt;
        let dir = env.lab.backup_dir().join("etcd-snapshots").join(master(i));
        let meta = std::fs::metadata(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert!(meta.is_dir());
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o700,
            "{}",
            dir.display()
        );
    }
    // Joining servers get the full server token the first server wrote: K10<CA hash>::server:…
    let host0 = env.lab.host(&master(0)).unwrap().root_dir.clone();
    let token_file = |f: &str| {
        std::fs::read_to_string(host0.join("var/lib/rancher/k3s/server").join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    let server_token = token_file("token");
    let agent_token = token_file("agent-token");
    assert!(server_token.starts_with("K10") && server_token.contains("::server:"));
    assert!(agent_token.starts_with("K10") && agent_token.contains("::node:"));
    let server_secret = c0["token"].as_str().unwrap();
    assert!(server_token.ends_with(&format!(":{server_secret}")));
    assert_eq!(c1["token"].as_str(), Some(server_token.as_str()));
    assert_eq!(env.output_raw("k3s_token"), server_token);
    // Agents join once the first server serves, beside the other servers' joins (all of them
    // before the last server starts its install, while server 1's join is held), through the
    // first server, each exactly once.
    for i in 0..3 {
        let a = installs(&env.records(&worker(i)));
        assert_eq!(a.len(), 1, "worker {i} installs once");
        assert_eq!(a[0].1, "agent");
        assert!(
            first[0].0 < a[0].0 && a[0].0 < third[0].0,
            "agent {i} did not join between the first and the last server's install"
        );
        let c = config_of(&env, &worker(i));
        assert_eq!(
            c["server"].as_str(),
            Some(format!("https://{}:6443", env.ip(&master(0))).as_str()),
            "agent {i} joins through the first server"
        );
        assert!(c.get("tls-san").is_none() && c.get("cluster-init").is_none());
        // Agents carry the agent token in the secure form (they pin the cluster CA) and never
        // the server secret.
        let t = c["token"].as_str().unwrap();
        assert_eq!(t, agent_token, "worker {i}");
        assert!(!t.contains(server_secret));
    }
    preflight_reads_the_applied_environment(&env);
    // The stand-in's datastore holds 3 etcd members and 6 ready nodes.
    let cluster = env.lab.standin_cluster().unwrap().expect("cluster formed");
    assert_eq!(cluster.etcd_members.len(), 3);
    assert_eq!(cluster.nodes.values().filter(|n| n.ready).count(), 6);
    // Kubeconfig: written 0600, pointing at the VIP.
    let kc = std::fs::read_to_string(env.kubeconfig_path()).unwrap();
    assert!(kc.contains(&format!("https://{}:6443", env.free_ip(200))));
    let mode = std::fs::metadata(env.kubeconfig_path())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        env.output_raw("kubeconfig_path").trim(),
        env.kubeconfig_path().to_str().unwrap()
    );
    // Platform bundles: identical on every server.
    let manifests = |host: &str| {
        let dir = env
            .lab
            .host(host)
            .unwrap()
            .root_dir
            .join("var/lib/rancher/k3s/server/manifests");
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .filter(|(n, _)| n.starts_with("ffe-"))
            .collect();
        files.sort();
        files
    };
    let m0 = manifests(&master(0));
    assert!(
        m0.iter().any(|(n, _)| n.starts_with("ffe-cni--")),
        "cni bundle missing: {:?}",
        m0.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert_eq!(m0, manifests(&master(1)));
    assert_eq!(m0, manifests(&master(2)));

    // Re-apply with no change: plan is empty and nothing on any host is changed.
    let before = env.mutation_counts();
    let (code, out) = env.plan_exit();
    assert_eq!(code, 0, "a converged cluster must plan no changes:\n{out}");
    env.apply_ok();
    let after = env.mutation_counts();
    assert_eq!(before, after, "a no-op apply changed something on a host");

    // A kubeconfig deleted locally comes back with the next apply, touching no host.
    std::fs::remove_file(env.kubeconfig_path()).unwrap();
    let (code, out) = env.plan_exit();
    assert_eq!(
        code, 2,
        "a missing kubeconfig file must show in the plan:\n{out}"
    );
    env.apply_ok();
    assert!(env.kubeconfig_path().exists());
    let after_restore = env.mutation_counts();
    assert_eq!(
        after, after_restore,
        "restoring the kubeconfig changed a host"
    );

    // Scale agents 3 -> 5: only the two new agents are touched.
    env.tfvars(5, "");
    env.apply_ok();
    for i in 0..3 {
        assert_eq!(
            installs(&env.records(&worker(i))).len(),
            1,
            "worker {i} was reinstalled"
        );
    }
    for i in 3..5 {
        assert_eq!(
            installs(&env.records(&worker(i))).len(),
            1,
            "worker {i} did not join"
        );
    }
    for i in 0..3 {
        assert_eq!(
            installs(&env.records(&master(i))).len(),
            1,
            "server {i} was reinstalled"
        );
    }

    // Scale 5 -> 3: exactly workers 3 and 4 are drained, their Nodes deleted, k3s uninstalled
    // from them, one at a time; workers 0-2 are not touched.
    // First with a pod on worker 4 whose PodDisruptionBudget allows no disruption: the apply
    // stops naming that pod (not the DaemonSet pod beside it), and worker 4 is not left cordoned.
    let before: Vec<usize> = (0..3).map(|i| env.mutations(&worker(i)).len()).collect();
    let pod = |ns: &str, name: &str, node: String, owner: Option<&str>, pdb: bool| {
        env.lab
            .standin_set_pod(
                &format!("{ns}/{name}"),
                Some(ffe_lab::standin::PodState {
                    namespace: ns.into(),
                    name: name.into(),
                    node,
                    owner_kind: owner.map(str::to_string),
                    protected_by_pdb: pdb,
                }),
            )
            .unwrap()
    };
    pod("ffe", "ledger-0", worker(4), Some("StatefulSet"), true);
    pod(
        "kube-system",
        "calico-node-w4",
        worker(4),
        Some("DaemonSet"),
        false,
    );
    pod("ffe", "api-7d9f-x2", worker(3), Some("ReplicaSet"), false);
    env.tfvars(3, "");
    let out = env.apply();
    let msg = text(&out);
    assert!(
        !out.status.success(),
        "a drain blocked by a PDB went unnoticed:\n{msg}"
    );
    assert!(
        msg.contains(&format!("pods still on {}: ffe/ledger-0", worker(4))),
        "{msg}"
    );
    assert!(!msg.contains("calico-node-w4"), "{msg}");
    assert!(msg.contains("PodDisruptionBudget"), "{msg}");
    let cluster = env.lab.standin_cluster().unwrap().unwrap();
    assert!(
        !cluster.nodes[&worker(4)].unschedulable,
        "{} left cordoned",
        worker(4)
    );
    assert!(
        !cluster.pods.contains_key("ffe/api-7d9f-x2"),
        "worker 3's pod not evicted"
    );
    // The budget allows it again: the same apply finishes the scale-down.
    pod("ffe", "ledger-0", worker(4), Some("StatefulSet"), false);
    env.apply_ok();
    let server_calls: Vec<String> = (0..3)
        .flat_map(|i| env.records(&master(i)))
        .map(|r| r.argv.join(" "))
        .collect();
    let drained: BTreeSet<String> = (0..5)
        .map(worker)
        .filter(|w| {
            server_calls
                .iter()
                .any(|c| c.contains(" drain ") && c.split_whitespace().any(|t| t == w.as_str()))
        })
        .collect();
    let deleted: BTreeSet<String> = (0..5)
        .map(worker)
        .filter(|w| {
            server_calls
                .iter()
                .any(|c| c.contains("delete node") && c.split_whitespace().any(|t| t == w.as_str()))
        })
        .collect();
    let removed: BTreeSet<String> = [worker(3), worker(4)].into();
    assert_eq!(drained, removed, "drained: {server_calls:?}");
    assert_eq!(deleted, removed, "deleted: {server_calls:?}");
    let uninstalled_at = |w: &str| {
        env.records(w)
            .iter()
            .find(|r| r.program == "k3s-agent-uninstall.sh")
            .map(|r| r.ts_ns)
            .unwrap_or_else(|| panic!("k3s not uninstalled from {w}"))
    };
    assert!(uninstalled_at(&worker(3)) < uninstalled_at(&worker(4)));
    let cluster = env.lab.standin_cluster().unwrap().unwrap();
    for w in &removed {
        assert!(!cluster.nodes.contains_key(w), "{w} still registered");
    }
    for (i, n) in before.iter().enumerate() {
        assert_eq!(
            env.mutations(&worker(i)).len(),
            *n,
            "worker {i} was touched by the scale-down"
        );
    }

    // A file removed from a bundle: its objects are deleted through the API, then the file
    // disappears from every server (k3s alone would leave both). Logging and tracing share the
    // `observability` bundle, so turning logging off removes files from a bundle that stays.
    let loki = "ffe-observability--grafana-datasource-loki.yaml";
    let has_loki = |host: &str| manifests(host).iter().any(|(n, _)| n == loki);
    env.tfvars(3, "logging_enabled = true\ntracing_enabled = true");
    env.apply_ok();
    assert!(
        (0..3).all(|i| has_loki(&master(i))),
        "{loki} not on every server"
    );
    env.tfvars(3, "tracing_enabled = true");
    env.apply_ok();
    assert!(
        (0..3).all(|i| !has_loki(&master(i))),
        "{loki} left on a server"
    );
    let deletes: Vec<_> = (0..3)
        .flat_map(|i| env.records(&master(i)))
        .filter(|r| r.argv.iter().any(|a| a == "delete") && r.argv.iter().any(|a| a == "-f"))
        .collect();
    assert_eq!(deletes.len(), 1, "objects deleted once, through one server");
    let stdin = deletes[0].stdin.clone().unwrap_or_default();
    assert!(
        stdin.contains("ffe-datasource-loki"),
        "wrong objects deleted: {stdin}"
    );
    // ... and its k3s Addon, so the same file coming back is applied again (issue 11 A.2)
    let addon_deletes: Vec<_> = (0..3)
        .flat_map(|i| env.records(&master(i)))
        .filter(|r| r.argv.iter().any(|a| a == "addon"))
        .collect();
    assert_eq!(
        addon_deletes.len(),
        1,
        "Addons deleted once: {addon_deletes:?}"
    );
    assert!(
        addon_deletes[0]
            .argv
            .iter()
            .any(|a| a == "ffe-observability--grafana-datasource-loki"),
        "wrong Addon deleted: {:?}",
        addon_deletes[0].argv
    );

    // A bundle file edited by hand on one server is drift: the plan shows it, apply restores it.
    let (name, original) = manifests(&master(0))
        .into_iter()
        .find(|(n, _)| n.starts_with("ffe-cni--"))
        .unwrap();
    let on_m1 = env
        .lab
        .host(&master(1))
        .unwrap()
        .root_dir
        .join("var/lib/rancher/k3s/server/manifests")
        .join(&name);
    std::fs::write(&on_m1, b"# edited by hand\n").unwrap();
    let (code, out) = env.plan_exit();
    assert_eq!(code, 2, "an edited manifest must show in the plan:\n{out}");
    assert!(out.contains(&format!("differs on {}", master(1))), "{out}");
    env.apply_ok();
    assert_eq!(
        std::fs::read(&on_m1).unwrap(),
        original,
        "apply did not restore {name}"
    );

    // A node whose installer never ran (config written, no uninstall script) still loses the
    // config with its join token on destroy.
    let w0_root = env.lab.host(&worker(0)).unwrap().root_dir.clone();
    std::fs::remove_file(w0_root.join("usr/local/bin/k3s-agent-uninstall.sh")).unwrap();
    assert!(w0_root.join("etc/rancher/k3s/config.yaml").exists());

    // Destroy: agents uninstalled, then servers, last joined first.
    let out = env.terraform(&["destroy", "-auto-approve", "-input=false"]);
    assert!(out.status.success(), "destroy failed:\n{}", text(&out));
    let uninstall_ts = |host: &str, prog: &str| {
        env.records(host)
            .iter()
            .filter(|r| r.program == prog)
            .map(|r| r.ts_ns)
            .max()
            .unwrap_or_else(|| panic!("{host}: {prog} not run"))
    };
    assert!(
        !w0_root.join("etc/rancher/k3s/config.yaml").exists(),
        "config.yaml with the join token left on {}",
        worker(0)
    );
    let agents_done = (1..3)
        .map(|i| uninstall_ts(&worker(i), "k3s-agent-uninstall.sh"))
        .max()
        .unwrap();
    let s2 = uninstall_ts(&master(2), "k3s-uninstall.sh");
    let s1 = uninstall_ts(&master(1), "k3s-uninstall.sh");
    let s0 = uninstall_ts(&master(0), "k3s-uninstall.sh");
    assert!(
        agents_done < s2 && s2 < s1 && s1 < s0,
        "uninstall order wrong"
    );
    assert!(
        !env.kubeconfig_path().exists(),
        "kubeconfig of a destroyed cluster left behind"
    );
}

#[test]
fn version_upgrade_rolls_servers_one_at_a_time_then_drains_agents() {
    let env = Env::new(3, 3);
    env.tfvars(3, "");
    env.apply_ok();
    let old_bin = ffe_lab::standin_binary().unwrap().display().to_string();
    let new_bin = env.upgrade_k3s_tfvars(&old_bin, "v1.34.1+k3s1", "v1.33", "v1.34");
    // The plan the apply shows (a separate plan would cost one more refresh of every node).
    let out = env.apply();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("Plan: "),
        "a version change must show in the plan:\n{shown}"
    );

    // Every node reinstalled exactly once more; servers strictly one after another, agents after.
    let second = |host: &str| {
        let i = installs(&env.records(host));
        assert_eq!(i.len(), 2, "{host} installed {} times", i.len());
        i[1].0
    };
    let s: Vec<u64> = (0..3).map(|i| second(&master(i))).collect();
    assert!(s[0] < s[1] && s[1] < s[2], "servers not upgraded in order");
    let server_calls: Vec<(u64, String)> = (0..3)
        .flat_map(|i| env.records(&master(i)))
        .map(|r| (r.ts_ns, r.argv.join(" ")))
        .collect();
    // The servers carry the default CriticalAddonsOnly taint: no workload to move, no drain.
    for i in 0..3 {
        let m = master(i);
        assert!(
            !server_calls
                .iter()
                .any(|(_, c)| c.contains("drain") && c.contains(&m)),
            "{m} was drained although it takes no workloads"
        );
    }
    for i in 0..3 {
        let w = worker(i);
        let t = second(&w);
        assert!(t > s[2], "{w} upgraded before the last server");
        let drained = server_calls
            .iter()
            .any(|(ts, c)| *ts < t && c.contains("drain") && c.contains(&w));
        let uncordoned = server_calls
            .iter()
            .any(|(ts, c)| *ts > t && c.contains("uncordon") && c.contains(&w));
        assert!(
            drained && uncordoned,
            "{w} not drained before / uncordoned after its upgrade"
        );
        // Marked before the drain (so a later apply can find it if the uncordon fails), the
        // mark taken off after the uncordon.
        let marked = server_calls.iter().find(|(_, c)| {
            c.contains("label") && c.contains(&w) && c.contains("ffe.io/cordoned-by-apply=true")
        });
        let drain = server_calls
            .iter()
            .find(|(_, c)| c.contains("drain") && c.contains(&w));
        let unmarked = server_calls.iter().find(|(ts, c)| {
            *ts > t
                && c.contains("label")
                && c.contains(&w)
                && c.contains("ffe.io/cordoned-by-apply-")
        });
        match (marked, drain, unmarked) {
            (Some(m), Some(d), Some(_)) => assert!(m.0 < d.0, "{w} marked after its drain"),
            other => panic!("{w}: mark / drain / unmark missing: {other:?}"),
        }
    }
    let cluster = env.lab.standin_cluster().unwrap().unwrap();
    assert!(
        cluster
            .nodes
            .values()
            .all(|n| n.version == "v1.34.1+k3s1" && n.ready),
        "{:?}",
        cluster.nodes
    );
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 0, "{plan}");

    // v1.34 -> v1.35 with worker 0's upgrade failing (its binary cannot be replaced): the
    // roll-out stops there, the later agents stay as they were, and worker 0 is not left
    // cordoned. Once the cause is gone the same apply finishes the roll-out.
    let w0_blocker = env
        .lab
        .host(&worker(0))
        .unwrap()
        .root_dir
        .join("usr/local/bin/k3s.ffe-tmp");
    std::fs::create_dir_all(w0_blocker.join("in-the-way")).unwrap();
    env.upgrade_k3s_tfvars(&new_bin, "v1.35.0+k3s1", "v1.34", "v1.35");
    let out = env.apply();
    let msg = text(&out);
    assert!(
        !out.status.success(),
        "the failed upgrade went unnoticed:\n{msg}"
    );
    assert!(msg.contains(&worker(0)), "{msg}");
    for i in 1..3 {
        assert_eq!(
            installs(&env.records(&worker(i))).len(),
            2,
            "{} was upgraded although an earlier batch failed",
            worker(i)
        );
    }
    let cluster = env.lab.standin_cluster().unwrap().unwrap();
    assert!(
        !cluster.nodes[&worker(0)].unschedulable,
        "{} left cordoned after its failed upgrade",
        worker(0)
    );
    std::fs::remove_dir_all(&w0_blocker).unwrap();
    env.apply_ok();
    let cluster = env.lab.standin_cluster().unwrap().unwrap();
    assert!(
        cluster.nodes.values().all(|n| n.version == "v1.35.0+k3s1"
            && n.ready
            && !n.unschedulable
            && !n.labels.contains_key("ffe.io/cordoned-by-apply")),
        "{:?}",
        cluster.nodes
    );

    // A roll-out whose uncordon failed (the API went away after the drain) leaves its node
    // cordoned and marked, as here by hand: the plan shows it, the apply uncordons it and
    // drops the mark. A node the operator cordoned (no mark) stays cordoned.
    let kubectl = |cmd: &str| env.ssh_ok(&master(0), &format!("k3s kubectl {cmd}"));
    kubectl(&format!(
        "label node {} ffe.io/cordoned-by-apply=true",
        worker(1)
    ));
    kubectl(&format!("cordon {}", worker(1)));
    kubectl(&format!("cordon {}", worker(2)));
    let (code, plan) = env.plan_exit();
    assert_eq!(
        code, 2,
        "a node left cordoned must show in the plan:\n{plan}"
    );
    assert!(plan.contains("left_cordoned"), "{plan}");
    assert!(plan.contains(&worker(1)), "{plan}");
    env.apply_ok();
    let cluster = env.lab.standin_cluster().unwrap().unwrap();
    let w1 = &cluster.nodes[&worker(1)];
    assert!(
        !w1.unschedulable && !w1.labels.contains_key("ffe.io/cordoned-by-apply"),
        "{w1:?}"
    );
    assert!(
        cluster.nodes[&worker(2)].unschedulable,
        "the operator's own cordon was undone"
    );
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 0, "{plan}");
}

/// Servers without taints run workloads: an upgrade cordons and drains each one before its
/// reinstall and uncordons it after, strictly one server at a time (the next drain starts only
/// after the previous server is back in service).
#[test]
fn untainted_servers_are_drained_one_at_a_time_on_upgrade() {
    let env = Env::new(3, 2);
    env.tfvars(2, "server_taints = []");
    env.apply_ok();
    let old_bin = ffe_lab::standin_binary().unwrap().display().to_string();
    env.upgrade_k3s_tfvars(&old_bin, "v1.34.1+k3s1", "v1.33", "v1.34");
    env.apply_ok();
    let calls: Vec<(u64, String)> = (0..3)
        .flat_map(|i| env.records(&master(i)))
        .filter(|r| r.exit_code == 0)
        .map(|r| (r.ts_ns, r.argv.join(" ")))
        .collect();
    let first = |what: &str, node: &str| -> u64 {
        calls
            .iter()
            .filter(|(_, c)| c.contains(what) && c.split_whitespace().any(|w| w == node))
            .map(|(t, _)| *t)
            .min()
            .unwrap_or_else(|| panic!("no `{what}` of {node}: {calls:?}"))
    };
    let mut back_in_service = 0;
    for i in 0..3 {
        let m = master(i);
        let drained = first("drain", &m);
        let installed = installs(&env.records(&m))[1].0;
        let uncordoned = first("uncordon", &m);
        assert!(
            back_in_service < drained && drained < installed && installed < uncordoned,
            "{m}: previous server back {back_in_service}, drain {drained}, reinstall {installed}, uncordon {uncordoned}"
        );
        back_in_service = uncordoned;
    }
    let cluster = env.lab.standin_cluster().unwrap().unwrap();
    assert!(
        cluster
            .nodes
            .values()
            .all(|n| n.version == "v1.34.1+k3s1" && n.ready && !n.unschedulable),
        "{:?}",
        cluster.nodes
    );
}

#[test]
fn servers_grow_and_shrink_one_at_a_time_and_unsafe_shrink_is_refused_at_plan() {
    let env = Env::new(5, 2);
    env.tfvars_sized(3, 2, "");
    env.apply_ok();
    let before: Vec<usize> = (0..3).map(|i| env.mutations(&master(i)).len()).collect();

    env.tfvars_sized(5, 2, "");
    env.apply_ok();
    let t3 = installs(&env.records(&master(3)));
    let t4 = installs(&env.records(&master(4)));
    assert_eq!((t3.len(), t4.len()), (1, 1), "new servers install once");
    assert!(
        t3[0].0 < t4[0].0,
        "new servers must join one at a time, in order"
    );
    // Existing servers are not reinstalled; their API certificate must cover the new servers, so
    // each gets the new tls-san and a restart, strictly one server at a time. Agents: untouched.
    let mut restarts = vec![];
    for (i, seen_before) in before.iter().enumerate() {
        let host = master(i);
        assert_eq!(
            installs(&env.records(&host)).len(),
            1,
            "server {i} reinstalled"
        );
        let restart: Vec<u64> = env.mutations(&host)[*seen_before..]
            .iter()
            .filter(|r| {
                r.program == "systemctl" && r.argv.first().map(String::as_str) == Some("restart")
            })
            .map(|r| r.ts_ns)
            .collect();
        assert_eq!(
            restart.len(),
            1,
            "server {i} restarted {} times",
            restart.len()
        );
        restarts.push(restart[0]);
        let sans = config_of(&env, &host)["tls-san"].clone();
        for j in 3..5 {
            let ip = env.ip(&master(j));
            assert!(
                sans.as_sequence()
                    .unwrap()
                    .iter()
                    .any(|v| v.as_str() == Some(ip.as_str())),
                "server {i}'s tls-san lacks new server {j}"
            );
        }
    }
    assert!(
        restarts.windows(2).all(|w| w[0] < w[1]),
        "servers restarted out of order"
    );
    for i in 0..2 {
        assert_eq!(
            installs(&env.records(&worker(i))).len(),
            1,
            "agent {i} reinstalled"
        );
    }
    assert_eq!(
        env.lab
            .standin_cluster()
            .unwrap()
            .unwrap()
            .etcd_members
            .len(),
        5
    );

    // 5 -> 3 keeps a majority of the 5 members: the two are removed one at a time.
    env.tfvars_sized(3, 2, "");
    env.apply_ok();
    let gone = |host: &str| {
        env.records(host)
            .iter()
            .filter(|r| r.program == "k3s-uninstall.sh")
            .map(|r| r.ts_ns)
            .max()
            .unwrap_or_else(|| panic!("{host} not uninstalled"))
    };
    assert!(
        gone(&master(3)) < gone(&master(4)),
        "servers removed out of order"
    );
    let cluster = env.lab.standin_cluster().unwrap().unwrap();
    assert_eq!(cluster.etcd_members.len(), 3);

    // 3 -> 1 would leave one of three etcd members: refused before anything runs.
    env.tfvars_sized(1, 2, "");
    env.edit_tfvars(|s| s.replace("cluster_size = \"ha\"", "cluster_size = \"single\""));
    let out = env.terraform(&["plan", "-input=false"]);
    let msg = text(&out);
    assert!(!out.status.success(), "plan must refuse:\n{msg}");
    assert!(
        msg.contains("takes 2 of the 3 etcd members out at once"),
        "{msg}"
    );
    assert!(msg.contains("quorum"), "{msg}");
    assert!(msg.contains("Safe sequence"), "{msg}");
    assert_eq!(
        env.lab
            .standin_cluster()
            .unwrap()
            .unwrap()
            .etcd_members
            .len(),
        3
    );
}

/// Replacing servers, the first one included (issue 16): a dead first server's etcd member and
/// Node are removed and the new host joins through a live server, never the dead one; a live
/// server being replaced is drained and uninstalled first; no node's config keeps naming a
/// departed server; nothing else restarts. Two replacements at once are refused at plan.
#[test]
fn replacing_servers_the_first_one_too_removes_their_members_and_joins_through_a_live_one() {
    let env = Env::new(5, 2);
    // A dead host does not answer at all (veth down): each connection waits this long.
    let fast_timeout = "ssh_connect_timeout_seconds = 3";
    env.tfvars_sized(3, 2, fast_timeout);
    env.apply_ok();
    let (ip0, ip1) = (env.ip(&master(0)), env.ip(&master(1)));
    let (ip3, ip4) = (env.ip(&master(3)), env.ip(&master(4)));
    let kept = [master(1), master(2), worker(0), worker(1)];
    let baseline: Vec<usize> = kept.iter().map(|h| env.mutations(h).len()).collect();

    // Two at once: refused before anything runs, with the safe sequence.
    env.edit_tfvars(|s| {
        s.replace(&format!("\"{ip0}\""), &format!("\"{ip3}\""))
            .replace(&format!("\"{ip1}\""), &format!("\"{ip4}\""))
    });
    let out = env.terraform(&["plan", "-input=false"]);
    let msg = text(&out);
    assert!(
        !out.status.success(),
        "two replacements must be refused:\n{msg}"
    );
    assert!(
        msg.contains("takes 2 of the 3 etcd members out at once"),
        "{msg}"
    );
    assert!(msg.contains("apply 1: replace"), "{msg}");

    // The first server's host dies; it is replaced by master 3's host.
    env.tfvars_sized(3, 2, fast_timeout);
    env.lab.kill_host(&master(0)).unwrap();
    env.edit_tfvars(|s| s.replace(&format!("\"{ip0}\""), &format!("\"{ip3}\"")));
    let out = env.apply();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains(&format!("{ip0} leaves")),
        "the plan must show the order:\n{shown}"
    );

    let server_calls: Vec<(u64, String)> = [master(1), master(2)]
        .iter()
        .flat_map(|h| env.records(h))
        .map(|r| (r.ts_ns, r.argv.join(" ")))
        .collect();
    let first = master(0);
    let deleted_at = server_calls
        .iter()
        .find(|(_, c)| c.contains("delete node") && c.split_whitespace().any(|t| t == first))
        .map(|(ts, _)| *ts)
        .unwrap_or_else(|| panic!("the old {first} Node was not deleted: {server_calls:?}"));
    let joined = installs(&env.records(&master(3)));
    assert_eq!(joined.len(), 1, "{joined:?}");
    assert!(
        deleted_at < joined[0].0,
        "the new host joined before the old member left"
    );
    let cfg = config_of(&env, &master(3));
    assert_eq!(cfg["node-name"].as_str(), Some(first.as_str()));
    assert!(cfg.get("cluster-init").is_none(), "{cfg:?}");
    let via = cfg["server"].as_str().unwrap_or_default().to_string();
    assert!(
        via == format!("https://{ip1}:6443")
            || via == format!("https://{}:6443", env.ip(&master(2))),
        "joined through {via:?}, not a live server"
    );
    let cluster = env.lab.standin_cluster().unwrap().unwrap();
    assert_eq!(cluster.etcd_members.len(), 3, "{:?}", cluster.etcd_members);
    assert_eq!(cluster.nodes[&first].host, master(3));
    assert_eq!(cluster.nodes[&first].address, ip3);
    assert!(cluster.nodes[&first].ready);
    // Nothing names the dead server any more. The other servers restart once each, one at a
    // time, for the API certificate's new address (tls-san); the agents are not touched.
    let mut restarted_at = vec![];
    for (h, n) in kept.iter().zip(&baseline) {
        let server = config_file_of(&env, h)["server"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(!server.contains(&ip0), "{h} still joins through {ip0}");
        let starts: Vec<(u64, String)> = env.mutations(h)[*n..]
            .iter()
            .map(|r| (r.ts_ns, format!("{} {}", r.program, r.argv.join(" "))))
            .filter(|(_, c)| {
                c.contains("install.sh")
                    || c.starts_with("systemctl restart")
                    || c.starts_with("systemctl start")
            })
            .collect();
        if h.contains("master") {
            assert_eq!(starts.len(), 1, "{h}: {starts:?}");
            assert_eq!(starts[0].1, "systemctl restart k3s", "{h}: {starts:?}");
            let tls_san = config_of(&env, h)["tls-san"].clone();
            assert!(
                tls_san
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .any(|v| v.as_str() == Some(ip3.as_str())),
                "{h}: the API certificate does not cover the new server"
            );
            restarted_at.push(starts[0].0);
        } else {
            assert!(starts.is_empty(), "{h} was restarted: {starts:?}");
        }
    }
    assert!(restarted_at[0] > joined[0].0 && restarted_at[0] < restarted_at[1]);
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 0, "{plan}");

    // A live server replaced: drained and uninstalled on its old host before the new one joins.
    env.edit_tfvars(|s| s.replace(&format!("\"{ip1}\""), &format!("\"{ip4}\"")));
    env.apply_ok();
    let second = master(1);
    let server_calls: Vec<(u64, String)> = [master(2), master(3)]
        .iter()
        .flat_map(|h| env.records(h))
        .map(|r| (r.ts_ns, r.argv.join(" ")))
        .collect();
    let drained_at = server_calls
        .iter()
        .find(|(_, c)| c.contains(" drain ") && c.split_whitespace().any(|t| t == second))
        .map(|(ts, _)| *ts)
        .unwrap_or_else(|| panic!("{second} not drained: {server_calls:?}"));
    let uninstalled_at = env
        .records(&master(1))
        .iter()
        .find(|r| r.program == "k3s-uninstall.sh")
        .map(|r| r.ts_ns)
        .unwrap_or_else(|| panic!("{second}'s old host not uninstalled"));
    let joined = installs(&env.records(&master(4)));
    assert_eq!(joined.len(), 1);
    assert!(drained_at < uninstalled_at && uninstalled_at < joined[0].0);
    let cluster = env.lab.standin_cluster().unwrap().unwrap();
    assert_eq!(cluster.etcd_members.len(), 3, "{:?}", cluster.etcd_members);
    assert_eq!(cluster.nodes[&second].host, master(4));
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 0, "{plan}");
}

/// A server whose host was reinstalled (k3s gone, its Node and etcd member still there) rejoins
/// on the next apply through a live server, after its stale member is removed; a config edited
/// by hand is drift on its host only; a certificate close to expiry is a plan warning for its
/// host; the join token is rotated, then every node's certificates.
#[test]
fn a_reinstalled_server_rejoins_an_expiring_certificate_warns_and_the_token_rotates() {
    let env = Env::new(3, 2);
    env.tfvars(2, "");
    env.apply_ok();
    let out = env
        .lab
        .ssh(&master(0), "/usr/local/bin/k3s-uninstall.sh")
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = env.apply();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("Plan: "),
        "the reinstall must show in the plan:\n{shown}"
    );
    let cfg = config_of(&env, &master(0));
    assert!(
        cfg.get("cluster-init").is_none(),
        "reinstalled as a new cluster: {cfg:?}"
    );
    let cluster = env.lab.standin_cluster().unwrap().unwrap();
    assert_eq!(cluster.etcd_members.len(), 3, "{:?}", cluster.etcd_members);
    assert!(cluster.nodes[&master(0)].ready);
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 0, "{plan}");

    // A config edited by hand on master 2: the plan shows drift for that host only; apply
    // rewrites it.
    let cfg = config_path(&env, &master(2));
    let written = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        written.replace("etcd-snapshot-retention: ", "etcd-snapshot-retention: 9"),
    )
    .unwrap();
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 2, "{plan}");
    assert!(plan.contains(&format!("~ \"{}\" =", master(2))), "{plan}");
    for other in [master(0), master(1), worker(0), worker(1)] {
        assert!(
            !plan.contains(&format!("~ \"{other}\" =")),
            "{other} shows drift:\n{plan}"
        );
    }
    env.apply_ok();
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), written);
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 0, "{plan}");

    // A certificate 10 days from expiry on master 1 (a real one, made by openssl): the plan warns
    // for that host only, and changes nothing.
    let tls = env
        .lab
        .host(&master(1))
        .unwrap()
        .root_dir
        .join("var/lib/rancher/k3s/server/tls");
    std::fs::create_dir_all(&tls).unwrap();
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "10",
            "-subj",
            "/CN=k3s-test",
        ])
        .arg("-keyout")
        .arg(tls.join("client-test.key"))
        .arg("-out")
        .arg(tls.join("client-test.crt"))
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 0, "{plan}");
    let warning = format!(
        "{}: /var/lib/rancher/k3s/server/tls/client-test.crt expires in 9 days",
        master(1)
    );
    assert!(plan.contains(&warning), "{plan}");
    assert_eq!(
        plan.matches("a certificate expires soon").count(),
        1,
        "{plan}"
    );

    // Rotating the join token: `k3s token rotate` once, then each server restarts with the new
    // token, one at a time; agents (on the agent token) are not touched.
    let before: Vec<usize> = (0..3)
        .map(|i| env.mutations(&master(i)).len())
        .chain((0..2).map(|i| env.mutations(&worker(i)).len()))
        .collect();
    let old_token = env.lab.standin_cluster().unwrap().unwrap().token;
    env.tfvars(2, "k3s_token_rotation = 1");
    // The plan the apply shows carries the warning (a separate plan would cost a refresh).
    let out = env.apply();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("the server token will be rotated"),
        "{shown}"
    );
    let cluster = env.lab.standin_cluster().unwrap().unwrap();
    assert_ne!(cluster.token, old_token, "the token was not rotated");
    let hosts: Vec<String> = (0..3).map(master).chain((0..2).map(worker)).collect();
    let rotations: usize = hosts
        .iter()
        .map(|h| {
            env.records(h)
                .iter()
                .filter(|r| r.argv.first().map(String::as_str) == Some("token") && r.exit_code == 0)
                .count()
        })
        .sum();
    assert_eq!(rotations, 1, "k3s token rotate must run exactly once");
    let mut restarts = vec![];
    for (h, n) in hosts.iter().zip(&before) {
        let starts: Vec<u64> = env.mutations(h)[*n..]
            .iter()
            .filter(|r| {
                r.program == "systemctl" && r.argv.first().map(String::as_str) == Some("restart")
            })
            .map(|r| r.ts_ns)
            .collect();
        if h.contains("master") {
            assert_eq!(starts.len(), 1, "{h} restarted {} times", starts.len());
            restarts.push(starts[0]);
            let token = config_file_of(&env, h)["token"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert!(
                token.ends_with(&cluster.token),
                "{h} does not have the new token"
            );
        } else {
            assert!(
                starts.is_empty(),
                "{h} restarted for a server token rotation"
            );
        }
    }
    assert!(
        restarts.windows(2).all(|w| w[0] < w[1]),
        "servers restarted out of order"
    );
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 0, "{plan}");

    // Rotating the certificates: each server in turn stops, runs `k3s certificate rotate` and
    // starts, the next only after that; then the agents. The certificate that was 10 days from
    // expiry is issued again (by the stand-in, with real openssl) and the warning is gone.
    let before: Vec<usize> = hosts.iter().map(|h| env.mutations(h).len()).collect();
    env.tfvars(2, "k3s_token_rotation = 1\nk3s_certificate_rotation = 1");
    let out = env.apply();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("every node's certificates will be rotated"),
        "{shown}"
    );
    let mut rotated_at: Vec<(u64, u64)> = vec![];
    for (h, n) in hosts.iter().zip(&before) {
        let unit = if h.contains("master") {
            "k3s"
        } else {
            "k3s-agent"
        };
        let cmds: Vec<(u64, String)> = env.mutations(h)[*n..]
            .iter()
            .filter(|r| r.exit_code == 0)
            .map(|r| (r.ts_ns, format!("{} {}", r.program, r.argv.join(" "))))
            .collect();
        let at = |c: &str| cmds.iter().position(|(_, x)| x == c);
        match (
            at(&format!("systemctl stop {unit}")),
            at("k3s certificate rotate"),
            at(&format!("systemctl start {unit}")),
        ) {
            (Some(a), Some(b), Some(c)) if a < b && b < c => {
                rotated_at.push((cmds[a].0, cmds[c].0))
            }
            _ => panic!("{h}: not stop, rotate, start: {cmds:?}"),
        }
    }
    for w in rotated_at[..3].windows(2) {
        assert!(w[0].1 < w[1].0, "two servers were down at once");
    }
    assert!(
        rotated_at[3..]
            .iter()
            .all(|(stop, _)| *stop > rotated_at[2].1),
        "an agent rotated before the servers were done"
    );
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 0, "{plan}");
    assert!(!plan.contains("a certificate expires soon"), "{plan}");

    // A rotation cannot be taken back.
    env.tfvars(2, "k3s_token_rotation = 0\nk3s_certificate_rotation = 1");
    let out = env.terraform(&["plan", "-input=false"]);
    let msg = text(&out);
    assert!(
        !out.status.success() && msg.contains("token_rotation: 1 -> 0 goes back"),
        "{msg}"
    );
    env.tfvars(2, "k3s_token_rotation = 1\nk3s_certificate_rotation = 0");
    let out = env.terraform(&["plan", "-input=false"]);
    let msg = text(&out);
    assert!(
        !out.status.success() && msg.contains("certificate_rotation: 1 -> 0 goes back"),
        "{msg}"
    );
}

/// Three ways a cluster drifts from what Terraform applied, on one 3 + 2 cluster (one lab and
/// one first apply for all three, to keep `make test` short):
/// - a stopped node, and one whose Node object was deleted, come back on the next apply (the
///   provider installs with INSTALL_K3S_FORCE_RESTART=true: install.sh skips the start when
///   nothing changed, and the stand-in does the same);
/// - k3s applies `node-taint` only at registration and `node-label` only adds (the stand-in does
///   the same): changed labels and taints still reach the Node objects, and dropped ones go;
/// - k3s's deploy controller (modelled by the stand-in) skips a file whose Addon still has its
///   checksum, so removing a bundle must delete its Addons too, and adding it back applies it.
#[test]
fn stopped_nodes_changed_labels_and_a_removed_bundle_converge_on_apply() {
    let env = Env::new(3, 2);
    let vars = |meta: &str, monitoring: bool| {
        env.tfvars(2, &format!("{meta}\nmonitoring_enabled = {monitoring}"));
    };
    let gold = "node_labels = { \"example.com/tier\" = \"gold\", \"example.com/old\" = \"x\" }\n\
                server_taints = [\"CriticalAddonsOnly=true:NoExecute\"]";
    vars(gold, true);
    env.apply_ok();

    // A stopped node and a deleted node come back.
    let sh = |host: &str, cmd: &str| env.ssh_ok(host, cmd);
    sh(&worker(0), "systemctl stop k3s-agent");
    sh(
        &master(0),
        &format!("k3s kubectl delete node {}", worker(1)),
    );
    sh(&worker(1), "systemctl stop k3s-agent");
    let out = env.apply();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("Plan: "),
        "the stopped nodes must show in the plan:\n{shown}"
    );
    for w in [worker(0), worker(1)] {
        let out = env.lab.ssh(&w, "systemctl is-active k3s-agent").unwrap();
        assert!(out.status.success(), "{w} is not running after the apply");
    }
    let cluster = env.lab.standin_cluster().unwrap().unwrap();
    assert!(
        cluster.nodes.contains_key(&worker(1)),
        "{} not registered again",
        worker(1)
    );
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 0, "{plan}");

    // A join line naming an address that is no server (left so by an apply that failed after
    // a restore onto new hosts, which the state then no longer knows): shown in the plan for
    // that node, pointed at a live server by the apply, and the agent restarted onto it.
    let gone = env.free_ip(50);
    sh(
        &worker(0),
        &format!("sed -i 's|^server: https://.*:6443$|server: https://{gone}:6443|' /etc/rancher/k3s/config.yaml"),
    );
    let edited_at = env
        .records(&worker(0))
        .iter()
        .map(|r| r.ts_ns)
        .max()
        .unwrap_or(0);
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 2, "a join line naming no server must show:\n{plan}");
    assert!(
        plan.contains(&format!("joins through {gone}, which is no server")),
        "{plan}"
    );
    env.apply_ok();
    assert_eq!(
        config_file_of(&env, &worker(0))["server"].as_str(),
        Some(format!("https://{}:6443", env.ip(&master(0))).as_str())
    );
    assert!(
        env.records(&worker(0)).iter().any(|r| r.ts_ns > edited_at
            && r.program.ends_with("systemctl")
            && r.argv.iter().any(|a| a == "restart")),
        "the agent was not restarted onto the live server"
    );
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 0, "{plan}");

    // Changed labels and taints reach every Node; dropped ones go.
    let silver = "node_labels = { \"example.com/tier\" = \"silver\" }\n\
                  server_taints = [\"dedicated=control:NoSchedule\"]";
    vars(silver, true);
    env.apply_ok();
    let cluster = env.lab.standin_cluster().unwrap().unwrap();
    for (name, node) in &cluster.nodes {
        assert_eq!(
            node.labels.get("example.com/tier").map(String::as_str),
            Some("silver"),
            "{name}: {:?}",
            node.labels
        );
        assert!(
            !node.labels.contains_key("example.com/old"),
            "{name} kept a dropped label: {:?}",
            node.labels
        );
        let taints: Vec<String> = node
            .taints
            .iter()
            .map(|t| {
                format!(
                    "{}={}:{}",
                    t.key,
                    t.value.clone().unwrap_or_default(),
                    t.effect
                )
            })
            .collect();
        if name.contains("master") {
            assert_eq!(taints, vec!["dedicated=control:NoSchedule"], "{name}");
        } else {
            assert!(taints.is_empty(), "{name}: {taints:?}");
        }
    }
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 0, "{plan}");
    // A new value for a kept key and effect replaces the taint; it is not removed.
    let infra = "node_labels = { \"example.com/tier\" = \"silver\" }\n\
                 server_taints = [\"dedicated=infra:NoSchedule\"]";
    vars(infra, true);
    env.apply_ok();
    let cluster = env.lab.standin_cluster().unwrap().unwrap();
    for i in 0..3 {
        let t = &cluster.nodes[&master(i)].taints;
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(t[0].value.as_deref(), Some("infra"), "{t:?}");
    }

    // A bundle removed and added back is applied again.
    let resync = || {
        let out = env.lab.ssh(&master(0), "k3s kubectl get nodes").unwrap();
        assert!(out.status.success(), "{out:?}");
        env.assert_no_k3s_warnings();
    };
    let monitoring = || {
        resync();
        let c = env.lab.standin_cluster().unwrap().unwrap();
        c.addons
            .into_iter()
            .filter(|(n, _)| n.starts_with("ffe-monitoring--"))
            .collect::<Vec<_>>()
    };
    let before = monitoring();
    assert!(!before.is_empty(), "no monitoring Addons");
    assert!(
        before.iter().all(|(_, a)| !a.objects.is_empty()),
        "{before:?}"
    );
    vars(infra, false);
    env.apply_ok();
    // The removal waited for helm-controller to uninstall the bundle's charts (the HelmChart
    // gone) after deleting the objects and before deleting the Addons, on the same server.
    let answered: Vec<String> = (0..3)
        .map(master)
        .filter(|m| {
            !calls(
                &env,
                m,
                "helmchart/kube-prometheus-stack --ignore-not-found -o name",
            )
            .is_empty()
        })
        .collect();
    assert_eq!(
        answered.len(),
        1,
        "one server answers the wait: {answered:?}"
    );
    let m = &answered[0];
    let deleted = calls(&env, m, "delete --ignore-not-found --wait=false -f -");
    let waited = calls(
        &env,
        m,
        "helmchart/kube-prometheus-stack --ignore-not-found -o name",
    );
    let addons = calls(&env, m, "delete addon -n kube-system");
    let order = format!("order on {m}: delete {deleted:?}, wait {waited:?}, Addons {addons:?}");
    let (Some(d), Some(w0), Some(w1), Some(a)) =
        (deleted.last(), waited.first(), waited.last(), addons.last())
    else {
        panic!("a step is missing: {order}");
    };
    assert!(d < w0 && w1 < a, "{order}");
    assert!(
        monitoring().is_empty(),
        "Addons of the removed bundle left behind"
    );
    let removed_at = *a;
    vars(infra, true);
    env.apply_ok();
    // Before writing it back, the apply asked whether its HelmChart was still being uninstalled.
    let checked: Vec<u64> = (0..3)
        .map(master)
        .flat_map(|m| {
            calls(
                &env,
                &m,
                "helmchart/kube-prometheus-stack --ignore-not-found -o jsonpath={.metadata.deletionTimestamp}",
            )
        })
        .filter(|t| *t > removed_at)
        .collect();
    assert!(
        !checked.is_empty(),
        "no deletionTimestamp check before the write"
    );
    let after = monitoring();
    assert_eq!(after.len(), before.len());
    assert!(
        after.iter().all(|(_, a)| !a.objects.is_empty()),
        "the re-added bundle was skipped: {after:?}"
    );
}

/// `ffe-ha`, built beside the provider (`cargo test --workspace` builds every binary).
fn ffe_ha_binary() -> std::path::PathBuf {
    let bin =
        std::path::Path::new(env!("CARGO_BIN_EXE_terraform-provider-ffe")).with_file_name("ffe-ha");
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p ffe-ha`",
        bin.display()
    );
    bin
}

/// Restoring etcd from a snapshot on the backup share (k3s stand-in: it plays `k3s
/// etcd-snapshot save` and `k3s server --cluster-reset`, docs.k3s.io datastore/backup-restore).
/// In place with `ffe-ha etcd restore`: every server stops, the first resets onto the snapshot
/// and starts, the others move their data aside and join it one at a time; what was written
/// after the snapshot is gone. Then onto three new hosts with Terraform (`k3s_restore_from_snapshot`
/// with the new addresses in master_ips): the same sequence on the new hosts, the agent pointed
/// at the new servers. A no-op plan after each.
#[test]
fn etcd_restores_from_a_snapshot_in_place_and_onto_new_hosts() {
    let env = Env::new(6, 2);
    // Dead hosts do not answer at all (veth down): each connection waits this long.
    env.tfvars_sized(3, 2, "ssh_connect_timeout_seconds = 3");
    env.apply_ok();
    let pod = |name: &str| ffe_lab::standin::PodState {
        namespace: "ffe".into(),
        name: name.into(),
        node: worker(0),
        owner_kind: Some("StatefulSet".into()),
        protected_by_pdb: false,
    };
    env.lab
        .standin_set_pod("ffe/before-0", Some(pod("before-0")))
        .unwrap();
    let out = env
        .lab
        .ssh(&master(1), "k3s etcd-snapshot save --name drill")
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{said}");
    let snapshot = said
        .split_whitespace()
        .find(|w| w.contains("/drill-"))
        .and_then(|p| p.rsplit('/').next())
        .unwrap_or_else(|| panic!("no snapshot path in {said:?}"))
        .to_string();
    assert!(
        env.lab
            .backup_dir()
            .join("etcd-snapshots")
            .join(master(1))
            .join(&snapshot)
            .is_file(),
        "the snapshot is not on the share under the server's directory"
    );
    env.lab
        .standin_set_pod("ffe/after-0", Some(pod("after-0")))
        .unwrap();

    // In place, with the CLI.
    let listed = std::process::Command::new(ffe_ha_binary())
        .args(["--tf-dir"])
        .arg(env.env_dir())
        .args(["etcd", "snapshots", "--output", "json"])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        listed.status.success(),
        "{listing}\n{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(listing.contains(&snapshot), "{listing}");
    let refused = std::process::Command::new(ffe_ha_binary())
        .args(["--tf-dir"])
        .arg(env.env_dir())
        .args(["etcd", "restore", &snapshot])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        refused.status.code(),
        Some(5),
        "without --yes and a terminal: refused"
    );
    let before: Vec<usize> = (0..3).map(|i| env.records(&master(i)).len()).collect();
    let restored = std::process::Command::new(ffe_ha_binary())
        .args(["--tf-dir"])
        .arg(env.env_dir())
        .args(["etcd", "restore", &snapshot, "--yes", "--output", "json"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&restored.stdout).to_string();
    assert!(
        restored.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert!(report.contains("\"etcd.restore\""), "{report}");
    assert!(
        report.contains("/var/lib/rancher/k3s/server/db/etcd-old-"),
        "the first server's previous data is not reported: {report}"
    );
    let fresh = |i: usize, needle: &str| -> Vec<u64> {
        let recs = env.records(&master(i));
        recs[before[i]..]
            .iter()
            .filter(|r| r.exit_code == 0)
            .filter(|r| format!("{} {}", r.program, r.argv.join(" ")).contains(needle))
            .map(|r| r.ts_ns)
            .collect()
    };
    let resets: Vec<Vec<u64>> = (0..3).map(|i| fresh(i, "--cluster-reset")).collect();
    assert_eq!(resets[0].len(), 1, "master 0 resets: {resets:?}");
    assert!(resets[1].is_empty() && resets[2].is_empty(), "{resets:?}");
    let stops: Vec<u64> = (0..3)
        .flat_map(|i| fresh(i, "systemctl stop k3s"))
        .collect();
    assert_eq!(stops.len(), 3, "every server stops once");
    assert!(
        stops.iter().all(|t| *t < resets[0][0]),
        "a server ran during the reset"
    );
    let starts: Vec<u64> = (0..3)
        .map(|i| {
            let s = fresh(i, "systemctl start k3s");
            assert_eq!(s.len(), 1, "master {i} starts once: {s:?}");
            s[0]
        })
        .collect();
    assert!(
        resets[0][0] < starts[0] && starts[0] < starts[1] && starts[1] < starts[2],
        "{starts:?}"
    );
    let cluster = env.lab.standin_cluster().unwrap().unwrap();
    assert!(cluster.pods.contains_key("ffe/before-0"));
    assert!(
        !cluster.pods.contains_key("ffe/after-0"),
        "written after the snapshot, still there"
    );
    assert_eq!(cluster.etcd_members, vec![master(0), master(1), master(2)]);
    assert!(
        cluster.nodes.values().all(|n| n.ready),
        "{:?}",
        cluster.nodes
    );
    for i in 1..3 {
        let kept = env
            .lab
            .ssh(
                &master(i),
                "ls -d /var/lib/rancher/k3s/server/db.before-restore-*",
            )
            .unwrap();
        assert!(
            kept.status.success(),
            "master {i}: the old etcd data was not kept"
        );
    }
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 0, "a restore by the CLI is not drift:\n{plan}");

    // Onto new hosts: every server is gone; master_ips name three new ones.
    env.lab
        .standin_set_pod("ffe/after-0", Some(pod("after-0")))
        .unwrap();
    for i in 0..3 {
        env.lab.kill_host(&master(i)).unwrap();
    }
    let (old, new): (Vec<String>, Vec<String>) = (0..3)
        .map(|i| (env.ip(&master(i)), env.ip(&master(i + 3))))
        .unzip();
    env.edit_tfvars(|mut s| {
        for (o, n) in old.iter().zip(&new) {
            s = s.replace(&format!("\"{o}\""), &format!("\"{n}\""));
        }
        format!("{s}\nk3s_restore_from_snapshot = \"{snapshot}\"\n")
    });
    // The plan shown by apply warns of the restore (a separate plan would wait out every dead
    // host's connection timeout once more).
    let out = env.apply();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("etcd will be restored from a snapshot"),
        "{shown}"
    );
    let (m3, m4, m5) = (master(3), master(4), master(5));
    let reset = calls(&env, &m3, "--cluster-reset");
    assert_eq!(reset.len(), 1);
    for h in [&m3, &m4, &m5] {
        let skip_start = env
            .records(h)
            .iter()
            .filter(|r| r.program.ends_with("install.sh"))
            .all(|r| r.env.get("INSTALL_K3S_SKIP_START").map(String::as_str) == Some("true"));
        assert!(
            skip_start,
            "{h}: k3s was started by the installer before the reset"
        );
        assert!(
            !installs(&env.records(h)).is_empty(),
            "{h}: k3s was not installed"
        );
    }
    for h in [&m4, &m5] {
        assert!(
            calls(&env, h, "--cluster-reset").is_empty(),
            "{h} was reset too"
        );
    }
    let started: Vec<u64> = [&m3, &m4, &m5]
        .iter()
        .map(|h| calls(&env, h, "systemctl start k3s")[0])
        .collect();
    assert!(reset[0] < started[0] && started[0] < started[1] && started[1] < started[2]);
    let cfg = config_of(&env, &m3);
    assert_eq!(cfg["node-name"].as_str(), Some(master(0).as_str()));
    assert!(cfg.get("server").is_none(), "{cfg:?}");
    for h in [&m4, &m5] {
        assert_eq!(
            config_of(&env, h)["server"].as_str(),
            Some(format!("https://{}:6443", new[0]).as_str())
        );
    }
    let cluster = env.lab.standin_cluster().unwrap().unwrap();
    assert_eq!(cluster.etcd_members, vec![master(0), master(1), master(2)]);
    for i in 0..3 {
        assert_eq!(cluster.nodes[&master(i)].host, master(i + 3));
        assert!(cluster.nodes[&master(i)].ready);
    }
    assert!(cluster.pods.contains_key("ffe/before-0") && !cluster.pods.contains_key("ffe/after-0"));
    // The agents reach none of the old servers: pointed at a new one and restarted.
    for w in [worker(0), worker(1)] {
        assert_eq!(
            config_file_of(&env, &w)["server"].as_str(),
            Some(format!("https://{}:6443", new[0]).as_str())
        );
        assert_eq!(
            calls(&env, &w, "systemctl restart k3s-agent").len(),
            1,
            "{w}"
        );
        assert!(cluster.nodes[&w].ready);
    }
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 0, "{plan}");
}

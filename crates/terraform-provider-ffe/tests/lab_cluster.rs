//! The `ha` environment applied for real (real terraform, real OpenSSH) against ffe-lab hosts
//! running the k3s **stand-in**: 3 servers + 3 agents, re-apply, scale 3 -> 5 -> 4, destroy.
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
    let env = Env::new(3, 5);
    env.tfvars(3, "");
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
    // Agents only after every server, each exactly once.
    for i in 0..3 {
        let a = installs(&env.records(&worker(i)));
        assert_eq!(a.len(), 1, "worker {i} installs once");
        assert_eq!(a[0].1, "agent");
        assert!(
            a[0].0 > third[0].0,
            "agent {i} joined before the last server"
        );
        let c = config_of(&env, &worker(i));
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

    // Scale 5 -> 4: worker 4 is drained, its Node deleted, k3s uninstalled from it.
    env.tfvars(4, "");
    env.apply_ok();
    let server_calls: Vec<String> = (0..3)
        .flat_map(|i| env.records(&master(i)))
        .map(|r| r.argv.join(" "))
        .collect();
    let w4 = worker(4);
    assert!(
        server_calls
            .iter()
            .any(|c| c.contains("drain") && c.contains(&w4)),
        "no drain of {w4}: {server_calls:?}"
    );
    assert!(
        server_calls
            .iter()
            .any(|c| c.contains("delete") && c.contains("node") && c.contains(&w4)),
        "Node {w4} not deleted"
    );
    assert!(
        env.records(&w4)
            .iter()
            .any(|r| r.program == "k3s-agent-uninstall.sh"),
        "k3s not uninstalled from {w4}"
    );
    let cluster = env.lab.standin_cluster().unwrap().unwrap();
    assert!(!cluster.nodes.contains_key(&w4));
    assert_eq!(
        installs(&env.records(&worker(3))).len(),
        1,
        "worker 3 was touched by the scale-down"
    );

    // A file removed from a bundle: its objects are deleted through the API, then the file
    // disappears from every server (k3s alone would leave both). Logging and tracing share the
    // `observability` bundle, so turning logging off removes files from a bundle that stays.
    let loki = "ffe-observability--grafana-datasource-loki.yaml";
    let has_loki = |host: &str| manifests(host).iter().any(|(n, _)| n == loki);
    env.tfvars(4, "logging_enabled = true\ntracing_enabled = true");
    env.apply_ok();
    assert!(
        (0..3).all(|i| has_loki(&master(i))),
        "{loki} not on every server"
    );
    env.tfvars(4, "tracing_enabled = true");
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
    let agents_done = (1..4)
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
    let new_bin = env
        .lab
        .standin_with_version("v1.34.1+k3s1")
        .unwrap()
        .display()
        .to_string();
    env.edit_tfvars(|s| {
        s.replace(
            &format!("airgap_k3s_binary_path = \"{old_bin}\""),
            &format!("airgap_k3s_binary_path = \"{new_bin}\""),
        )
        .replace(
            "kubernetes_version = \"v1.33\"",
            "kubernetes_version = \"v1.34\"",
        )
    });
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 2, "a version change must show in the plan:\n{plan}");
    env.apply_ok();

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
    let newer_bin = env
        .lab
        .standin_with_version("v1.35.0+k3s1")
        .unwrap()
        .display()
        .to_string();
    env.edit_tfvars(|s| {
        s.replace(&new_bin, &newer_bin).replace(
            "kubernetes_version = \"v1.34\"",
            "kubernetes_version = \"v1.35\"",
        )
    });
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
        cluster
            .nodes
            .values()
            .all(|n| n.version == "v1.35.0+k3s1" && n.ready && !n.unschedulable),
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
    assert!(msg.contains("removing 2 servers"), "{msg}");
    assert!(msg.contains("quorum"), "{msg}");
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

/// k3s applies `node-taint` only at registration and `node-label` only adds (the stand-in does
/// the same): changed labels and taints must still reach the Node objects, and dropped ones go.
#[test]
fn changed_labels_and_taints_reach_the_nodes() {
    let env = Env::new(3, 2);
    env.tfvars(
        2,
        "node_labels = { \"example.com/tier\" = \"gold\", \"example.com/old\" = \"x\" }\n\
         server_taints = [\"CriticalAddonsOnly=true:NoExecute\"]",
    );
    env.apply_ok();
    env.tfvars(
        2,
        "node_labels = { \"example.com/tier\" = \"silver\" }\n\
         server_taints = [\"dedicated=control:NoSchedule\"]",
    );
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
    env.tfvars(
        2,
        "node_labels = { \"example.com/tier\" = \"silver\" }\n\
         server_taints = [\"dedicated=infra:NoSchedule\"]",
    );
    env.apply_ok();
    let cluster = env.lab.standin_cluster().unwrap().unwrap();
    for i in 0..3 {
        let t = &cluster.nodes[&master(i)].taints;
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(t[0].value.as_deref(), Some("infra"), "{t:?}");
    }
}

/// install.sh skips the service start when binary, unit and env file are unchanged (the stand-in
/// does the same): a stopped node, and one whose Node object was deleted, must still come back
/// on the next apply (the provider installs with INSTALL_K3S_FORCE_RESTART=true).
#[test]
fn a_stopped_node_and_a_deleted_node_come_back_on_apply() {
    let env = Env::new(3, 2);
    env.tfvars(2, "");
    env.apply_ok();
    let sh = |host: &str, cmd: &str| {
        let out = env.lab.ssh(host, cmd).unwrap();
        assert!(out.status.success(), "{host}: {cmd}: {out:?}");
    };
    sh(&worker(0), "systemctl stop k3s-agent");
    sh(
        &master(0),
        &format!("k3s kubectl delete node {}", worker(1)),
    );
    sh(&worker(1), "systemctl stop k3s-agent");
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 2, "the stopped nodes must show in the plan:\n{plan}");
    env.apply_ok();
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
}

/// A bundle removed and later added back with the same content is applied again: k3s's deploy
/// controller (modelled by the stand-in) skips a file whose Addon still has its checksum, so
/// removing a bundle must delete its Addons too.
#[test]
fn a_bundle_removed_and_added_back_is_applied_again() {
    let env = Env::new(3, 2);
    env.tfvars(2, "monitoring_enabled = true");
    env.apply_ok();
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

    env.tfvars(2, "monitoring_enabled = false");
    env.apply_ok();
    assert!(
        monitoring().is_empty(),
        "Addons of the removed bundle left behind"
    );

    env.tfvars(2, "monitoring_enabled = true");
    env.apply_ok();
    let after = monitoring();
    assert_eq!(after.len(), before.len());
    assert!(
        after.iter().all(|(_, a)| !a.objects.is_empty()),
        "the re-added bundle was skipped: {after:?}"
    );
}

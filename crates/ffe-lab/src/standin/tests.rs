//! Stand-in behaviour on temporary roots (no namespaces): config, datastore rules, learner rule.

use super::testutil::{call, host, install, inv, write_config};
use super::*;

fn cluster(h: &HostEnv) -> ClusterState {
    h.datastore().read().unwrap().expect("cluster exists")
}

fn server1(shared: &Path) -> HostEnv {
    let s1 = host(shared, "s1", "10.210.9.11");
    write_config(
        &s1,
        "token: sekret\ncluster-init: true\nnode-label: [zone=a]\n",
    );
    let out = install(&s1, "server");
    assert_eq!(out.exit_code, 0, "{out:?}");
    s1
}

#[test]
fn installer_refuses_download_and_missing_binary() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), "s1", "10.210.9.11");
    let out = run(
        &testutil::inv("install.sh", &[], &[("INSTALL_K3S_EXEC", "server")]),
        &h,
        &mut std::io::empty(),
    );
    assert_eq!(out.exit_code, 1);
    assert!(out.message.contains("cannot download"), "{}", out.message);
    std::fs::remove_file(h.path(K3S_BIN)).unwrap();
    let out = install(&h, "server");
    assert_eq!(out.exit_code, 1);
    assert!(out.message.contains("missing or not executable"));
    assert!(!h.path("/etc/systemd/system/k3s.service").exists());
}

#[test]
fn server_install_creates_unit_links_kubeconfig_and_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = server1(dir.path());
    let unit = std::fs::read_to_string(s1.path("/etc/systemd/system/k3s.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/k3s"));
    assert!(unit.contains("'server'"));
    for l in ["kubectl", "k3s-killall.sh", "k3s-uninstall.sh"] {
        let target = std::fs::read_link(s1.path(&format!("/usr/local/bin/{l}"))).unwrap();
        assert_eq!(target, Path::new(K3S_BIN));
    }
    assert!(!s1.path("/usr/local/bin/k3s-agent-uninstall.sh").exists());
    let kc = s1.path(KUBECONFIG);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&kc).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(std::fs::read_to_string(&kc)
        .unwrap()
        .contains("https://127.0.0.1:6443"));
    let c = cluster(&s1);
    assert_eq!(c.token, "sekret");
    assert_eq!(c.etcd_members, vec!["s1".to_string()]);
    let n = &c.nodes["s1"];
    assert!(n.ready);
    assert_eq!(n.address, "10.210.9.11");
    assert_eq!(n.labels["node-role.kubernetes.io/control-plane"], "true");
    assert_eq!(n.labels["node-role.kubernetes.io/etcd"], "true");
    assert_eq!(n.labels["zone"], "a");
    let cfg = std::fs::read(s1.path(CONFIG_YAML)).unwrap();
    assert_eq!(n.config_sha256, hex::encode(Sha256Digest::digest(&cfg)));
    assert_eq!(call(&s1, "systemctl", &["is-active", "k3s"]).exit_code, 0);
    assert_eq!(
        call(&s1, "systemctl", &["is-enabled", "k3s.service"]).exit_code,
        0
    );
    assert_eq!(
        call(&s1, "systemctl", &["is-active", "k3s-agent"]).exit_code,
        3
    );
}

use sha2::Digest as _;
use sha2::Sha256 as Sha256Digest;

#[test]
fn join_requires_active_server_and_token() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = server1(dir.path());
    let s2 = host(dir.path(), "s2", "10.210.9.12");
    write_config(&s2, "token: wrong\nserver: https://10.210.9.11:6443\n");
    let out = install(&s2, "server");
    assert_eq!(out.exit_code, 1);
    assert!(
        out.message.contains("failed to validate token"),
        "{}",
        out.message
    );
    assert_eq!(call(&s2, "systemctl", &["is-active", "k3s"]).exit_code, 3);

    write_config(&s2, "token: sekret\nserver: https://10.210.9.99:6443\n");
    let out = call(&s2, "systemctl", &["restart", "k3s"]);
    assert_eq!(out.exit_code, 1);
    assert!(
        out.message.contains("connection refused"),
        "{}",
        out.message
    );

    // a full token with another cluster's CA hash is refused (the joiner pins the CA)
    write_config(
        &s2,
        "token: K10abc::server:sekret\nserver: https://10.210.9.11:6443\n",
    );
    let out = call(&s2, "systemctl", &["restart", "k3s"]);
    assert!(
        out.message.contains("token CA hash does not match"),
        "{out:?}"
    );
    // the full token the first server wrote (real-length CA hash) is accepted, with no warning
    let full = std::fs::read_to_string(s1.path("/var/lib/rancher/k3s/server/token")).unwrap();
    let hash = full
        .trim()
        .strip_prefix("K10")
        .unwrap()
        .split("::")
        .next()
        .unwrap();
    assert_eq!(hash.len(), 64, "{full}");
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
    write_config(
        &s2,
        &format!("token: {}\nserver: https://10.210.9.11:6443\n", full.trim()),
    );
    let out = call(&s2, "systemctl", &["restart", "k3s"]);
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert!(out.warnings.is_empty(), "{out:?}");
    assert_eq!(
        cluster(&s1).etcd_members,
        vec!["s1".to_string(), "s2".to_string()]
    );

    // a stopped server is not a valid join target
    assert_eq!(call(&s1, "systemctl", &["stop", "k3s"]).exit_code, 0);
    assert!(!cluster(&s1).nodes["s1"].ready);
    let s3 = host(dir.path(), "s3", "10.210.9.13");
    write_config(&s3, "token: sekret\nserver: https://10.210.9.11:6443\n");
    let out = install(&s3, "server");
    assert!(
        out.message.contains("connection refused"),
        "{}",
        out.message
    );
    write_config(&s3, "token: sekret\nserver: https://10.210.9.12:6443\n");
    let out = call(&s3, "systemctl", &["restart", "k3s"]);
    assert_eq!(out.exit_code, 0);
    // a bare secret joins, but k3s warns that the CA was not verified
    assert_eq!(
        out.warnings,
        vec![super::units::UNPINNED_JOIN_WARNING.to_string()]
    );
}

#[test]
fn agent_token_joins_agents_only_and_is_written_in_full_form() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = host(dir.path(), "s1", "10.210.9.11");
    write_config(
        &s1,
        "token: sekret\nagent-token: agentsekret\ncluster-init: true\n",
    );
    assert_eq!(install(&s1, "server").exit_code, 0);
    let agent_full =
        std::fs::read_to_string(s1.path("/var/lib/rancher/k3s/server/agent-token")).unwrap();
    assert!(agent_full.starts_with("K10") && agent_full.trim().ends_with("::node:agentsekret"));
    // the agent token cannot join a server
    let s2 = host(dir.path(), "s2", "10.210.9.12");
    write_config(
        &s2,
        &format!(
            "token: {}\nserver: https://10.210.9.11:6443\n",
            agent_full.trim()
        ),
    );
    let out = install(&s2, "server");
    assert!(
        out.message.contains("agent token cannot join a server"),
        "{out:?}"
    );
    // it joins an agent, pinned
    let a1 = host(dir.path(), "a1", "10.210.9.21");
    write_config(
        &a1,
        &format!(
            "token: {}\nserver: https://10.210.9.11:6443\n",
            agent_full.trim()
        ),
    );
    let out = install(&a1, "agent");
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert!(out.warnings.is_empty(), "{out:?}");
}

#[test]
fn server_skips_unknown_keys_with_a_warning_agent_refuses_server_keys() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = host(dir.path(), "s1", "10.210.9.11");
    write_config(&s1, "token: sekret\ncluster-init: true\ntls-sans: [x]\n");
    let out = install(&s1, "server");
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert_eq!(out.warnings.len(), 1, "{out:?}");
    assert!(out.warnings[0].contains("Unknown flag --tls-sans"));
    let full = std::fs::read_to_string(s1.path("/var/lib/rancher/k3s/server/token")).unwrap();
    let a1 = host(dir.path(), "a1", "10.210.9.21");
    write_config(
        &a1,
        &format!(
            "token: {}\nserver: https://10.210.9.11:6443\ntls-san: [x]\n",
            full.trim()
        ),
    );
    let out = install(&a1, "agent");
    assert_ne!(out.exit_code, 0);
    assert!(
        out.message
            .contains("flag provided but not defined: -tls-san"),
        "{out:?}"
    );
    assert_eq!(
        call(&a1, "systemctl", &["is-active", "k3s-agent"]).exit_code,
        3
    );
}

#[test]
fn installer_refuses_a_variable_install_sh_does_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = host(dir.path(), "s1", "10.210.9.11");
    write_config(&s1, "token: sekret\ncluster-init: true\n");
    let out = run(
        &inv(
            "install.sh",
            &[],
            &[
                ("INSTALL_K3S_SKIP_DOWNLOAD", "true"),
                ("INSTALL_K3S_EXEC", "server"),
                ("INSTALL_K3S_FORCE_RESTARTS", "true"),
            ],
        ),
        &s1,
        &mut std::io::empty(),
    );
    assert_ne!(out.exit_code, 0);
    assert!(
        out.message.contains("INSTALL_K3S_FORCE_RESTARTS"),
        "{out:?}"
    );
}

#[test]
fn one_learner_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = server1(dir.path());
    // a join in progress by another server is visible in the datastore
    s1.datastore()
        .update(|s| {
            s.as_mut().unwrap().join_in_progress.insert(
                "s2".into(),
                JoinMarker {
                    host: "s2".into(),
                    since_ns: now_ns(),
                },
            );
            Ok(())
        })
        .unwrap();
    let s3 = host(dir.path(), "s3", "10.210.9.13");
    write_config(&s3, "token: sekret\nserver: https://10.210.9.11:6443\n");
    let out = install(&s3, "server");
    assert_eq!(out.exit_code, 1);
    assert!(
        out.message.contains("too many learner members in cluster"),
        "{}",
        out.message
    );
    // agents are not subject to the learner rule
    let a1 = host(dir.path(), "a1", "10.210.9.21");
    write_config(&a1, "token: sekret\nserver: https://10.210.9.11:6443\n");
    assert_eq!(install(&a1, "agent").exit_code, 0);
}

#[test]
fn overlapping_joins_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    server1(dir.path());
    let mut joiners = Vec::new();
    for (name, ip) in [("s2", "10.210.9.12"), ("s3", "10.210.9.13")] {
        let mut h = host(dir.path(), name, ip);
        h.settings.join_hold_ms = 1500;
        write_config(&h, "token: sekret\nserver: https://10.210.9.11:6443\n");
        joiners.push(h);
    }
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let handles: Vec<_> = joiners
        .into_iter()
        .map(|h| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                install(&h, "server")
            })
        })
        .collect();
    let outs: Vec<Outcome> = handles.into_iter().map(|t| t.join().unwrap()).collect();
    let failed: Vec<&Outcome> = outs.iter().filter(|o| o.exit_code != 0).collect();
    assert_eq!(failed.len(), 1, "{outs:?}");
    assert!(failed[0].message.contains("too many learner members"));
    let c = testutil::host(dir.path(), "x", "10.210.9.50")
        .datastore()
        .read()
        .unwrap()
        .unwrap();
    assert_eq!(c.etcd_members.len(), 2);
    assert!(c.join_in_progress.is_empty());
}

#[test]
fn agent_needs_server_and_token_and_gets_no_server_labels() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = server1(dir.path());
    let a1 = host(dir.path(), "a1", "10.210.9.21");
    write_config(&a1, "server: https://10.210.9.11:6443\n");
    assert!(install(&a1, "agent")
        .message
        .contains("--token is required"));
    write_config(&a1, "token: sekret\n");
    assert!(install(&a1, "agent")
        .message
        .contains("--server is required"));
    write_config(
        &a1,
        "token: sekret\nserver: https://10.210.9.11:6443\nnode-name: worker-1\nnode-taint: [dedicated=db:NoSchedule]\n",
    );
    assert_eq!(install(&a1, "agent").exit_code, 0);
    assert!(a1.path("/etc/systemd/system/k3s-agent.service").is_file());
    assert!(std::fs::symlink_metadata(a1.path("/usr/local/bin/k3s-agent-uninstall.sh")).is_ok());
    assert!(!a1.path(KUBECONFIG).exists());
    let c = cluster(&s1);
    let n = &c.nodes["worker-1"];
    assert_eq!(n.role, Role::Agent);
    assert!(!n
        .labels
        .contains_key("node-role.kubernetes.io/control-plane"));
    assert_eq!(n.taints[0].effect, "NoSchedule");
    assert_eq!(c.etcd_members, vec!["s1".to_string()]);
}

#[test]
fn bad_config_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = host(dir.path(), "s1", "10.210.9.11");
    write_config(&s1, "token: [oops\n");
    let out = install(&s1, "server");
    assert_eq!(out.exit_code, 1);
    assert!(out.message.contains("invalid /etc/rancher/k3s/config.yaml"));
    assert_eq!(out.config_yaml.as_deref(), Some("token: [oops\n"));
    write_config(&s1, "token: x\n");
    let out = call(&s1, "systemctl", &["restart", "k3s"]);
    assert!(out.message.contains("cluster-init"), "{}", out.message);
    assert!(s1.datastore().read().unwrap().is_none());
}

#[test]
fn kubectl_nodes_cordon_drain_delete_apply() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = server1(dir.path());
    let a1 = host(dir.path(), "a1", "10.210.9.21");
    write_config(&a1, "token: sekret\nserver: https://10.210.9.11:6443\n");
    assert_eq!(install(&a1, "agent").exit_code, 0);
    // only a host with an active server answers
    let out = call(&a1, "kubectl", &["get", "nodes", "-o", "json"]);
    assert!(out
        .message
        .contains("connection to the server 127.0.0.1:6443 was refused"));
    let out = call(&s1, "k3s", &["kubectl", "get", "nodes", "-o", "json"]);
    assert_eq!(out.exit_code, 0, "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let a = items
        .iter()
        .find(|i| i["metadata"]["name"] == "a1")
        .unwrap();
    assert_eq!(a["status"]["conditions"][0]["type"], "Ready");
    assert_eq!(a["status"]["conditions"][0]["status"], "True");
    assert_eq!(a["status"]["nodeInfo"]["kubeletVersion"], "v1.33.5+k3s1");
    assert_eq!(a["status"]["addresses"][0]["address"], "10.210.9.21");

    assert_eq!(
        call(
            &s1,
            "kubectl",
            &[
                "drain",
                "a1",
                "--ignore-daemonsets",
                "--delete-emptydir-data"
            ]
        )
        .exit_code,
        0
    );
    assert!(cluster(&s1).nodes["a1"].unschedulable);
    let out = call(&s1, "kubectl", &["get", "node", "a1", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["spec"]["unschedulable"], true);
    call(&s1, "kubectl", &["uncordon", "a1"]);
    assert!(!cluster(&s1).nodes["a1"].unschedulable);
    assert_eq!(call(&s1, "kubectl", &["cordon", "nope"]).exit_code, 1);

    assert_eq!(
        call(&s1, "kubectl", &["get", "--raw", "/readyz"]).stdout,
        "ok\n"
    );
    let out = call(
        &s1,
        "k3s",
        &[
            "kubectl",
            "wait",
            "--for=condition=Ready",
            "--timeout=60s",
            "node/a1",
        ],
    );
    assert_eq!(out.exit_code, 0, "{out:?}");
    let out = call(
        &s1,
        "kubectl",
        &[
            "wait",
            "-n",
            "x",
            "--for=condition=Available",
            "deployment/d",
        ],
    );
    assert!(out.message.contains("NOT evaluated"), "{out:?}");
    call(&s1, "systemctl", &["stop", "k3s"]);
    assert_eq!(
        call(&s1, "kubectl", &["get", "--raw", "/readyz"]).exit_code,
        1
    );
    assert_eq!(call(&s1, "systemctl", &["start", "k3s"]).exit_code, 0);
    assert_eq!(call(&s1, "kubectl", &["delete", "node", "a1"]).exit_code, 0);
    assert!(!cluster(&s1).nodes.contains_key("a1"));
    assert_eq!(call(&s1, "kubectl", &["delete", "node", "a1"]).exit_code, 1);
    assert_eq!(
        call(
            &s1,
            "kubectl",
            &["delete", "node", "a1", "--ignore-not-found"]
        )
        .exit_code,
        0
    );

    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: two\n";
    let out = run(
        &testutil::inv("kubectl", &["apply", "-f", "-"], &[]),
        &s1,
        &mut manifest.as_bytes(),
    );
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert_eq!(out.stdin.as_deref(), Some(manifest));
    assert!(out.stdout.contains("configmap/one configured"));
    assert!(out.stdout.contains("namespace/two configured"));
    let file = dir.path().join("m.yaml");
    std::fs::write(&file, "kind: [broken").unwrap();
    let out = call(
        &s1,
        "kubectl",
        &["delete", "-f", file.to_str().unwrap(), "--ignore-not-found"],
    );
    assert_eq!(out.exit_code, 1);
    assert_eq!(out.files.len(), 1);
}

#[test]
fn uninstall_removes_exactly_k3s_paths_and_leaves_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = server1(dir.path());
    let s2 = host(dir.path(), "s2", "10.210.9.12");
    write_config(&s2, "token: sekret\nserver: https://10.210.9.11:6443\n");
    assert_eq!(install(&s2, "server").exit_code, 0);
    // unrelated files in the same dirs survive
    std::fs::write(s2.path("/usr/local/bin/other-tool"), "x").unwrap();
    std::fs::write(s2.path("/etc/systemd/system/chrony.service"), "x").unwrap();
    std::fs::create_dir_all(s2.path("/etc/rancher/node")).unwrap();
    let out = call(&s2, "k3s-uninstall.sh", &[]);
    assert_eq!(out.exit_code, 0, "{out:?}");
    for gone in [
        "/usr/local/bin/k3s",
        "/usr/local/bin/kubectl",
        "/usr/local/bin/k3s-uninstall.sh",
        "/usr/local/bin/k3s-killall.sh",
        "/etc/systemd/system/k3s.service",
        "/etc/rancher/k3s",
        "/var/lib/rancher/k3s",
    ] {
        assert!(!s2.path(gone).exists(), "{gone} still exists");
    }
    for kept in [
        "/usr/local/bin/other-tool",
        "/etc/systemd/system/chrony.service",
        "/etc/rancher/node",
        LAB_MARKER,
    ] {
        assert!(s2.path(kept).exists(), "{kept} was removed");
    }
    // The uninstall script does not touch the cluster (k3s-io/k3s #4865): the member stays
    // until the Node is deleted.
    let c = cluster(&s1);
    assert_eq!(c.etcd_members, vec!["s1".to_string(), "s2".to_string()]);
    assert!(!c.nodes["s2"].ready);
    assert_eq!(call(&s2, "systemctl", &["is-active", "k3s"]).exit_code, 3);
}

/// How k3s treats a server's etcd data on a start (k3s-io/k3s #3973, #13498): a member restarts
/// from its own data whatever `server` says; a removed member must not reuse its data; a fresh
/// host under a name etcd still holds is refused until the Node (and so the member) is deleted.
#[test]
fn a_server_start_follows_its_etcd_data_and_membership() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = server1(dir.path());
    let s2 = host(dir.path(), "s2", "10.210.9.12");
    let s3 = host(dir.path(), "s3", "10.210.9.13");
    for h in [&s2, &s3] {
        write_config(h, "token: sekret\nserver: https://10.210.9.11:6443\n");
        assert_eq!(install(h, "server").exit_code, 0);
    }
    // s1 is down; s2 restarts from its data although its `server` names s1.
    assert_eq!(call(&s1, "systemctl", &["stop", "k3s"]).exit_code, 0);
    let out = call(&s2, "systemctl", &["restart", "k3s"]);
    assert_eq!(out.exit_code, 0, "{out:?}");
    // s3's Node is deleted: its member goes, and its old data cannot start it again.
    let out = call(&s2, "k3s", &["kubectl", "delete", "node", "s3"]);
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert!(!cluster(&s1).is_member("s3"));
    write_config(&s3, "token: sekret\nserver: https://10.210.9.12:6443\n");
    let out = call(&s3, "systemctl", &["restart", "k3s"]);
    assert_eq!(out.exit_code, 1);
    assert!(
        out.message
            .contains("data-dir used by this member must be removed"),
        "{out:?}"
    );
    // Its replacement, a fresh host under the same name, joins as a new member.
    assert_eq!(call(&s3, "k3s-uninstall.sh", &[]).exit_code, 0);
    let s3b = host(dir.path(), "s3b", "10.210.9.15");
    write_config(
        &s3b,
        "token: sekret\nserver: https://10.210.9.12:6443\nnode-name: s3\n",
    );
    let out = install(&s3b, "server");
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert!(cluster(&s1).is_member("s3"));
    // A fresh host taking s1's name while s1's member was never removed: refused.
    let s1b = host(dir.path(), "s1b", "10.210.9.14");
    write_config(
        &s1b,
        "token: sekret\nserver: https://10.210.9.12:6443\nnode-name: s1\n",
    );
    let out = install(&s1b, "server");
    assert_eq!(out.exit_code, 1);
    assert!(
        out.message.contains("etcd still has a member for node s1"),
        "{out:?}"
    );
    // The last member is never removed: etcd cannot drop its only member.
    let solo_dir = tempfile::tempdir().unwrap();
    let solo = server1(solo_dir.path());
    assert_eq!(
        call(&solo, "k3s", &["kubectl", "delete", "node", "s1"]).exit_code,
        0
    );
    assert!(cluster(&solo).is_member("s1"));
}

#[test]
fn refuses_outside_a_lab_host() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), "s1", "10.210.9.11");
    std::fs::remove_file(h.path(LAB_MARKER)).unwrap();
    for program in ["k3s-uninstall.sh", "k3s-killall.sh"] {
        let out = call(&h, program, &[]);
        assert_eq!(out.exit_code, 1);
        assert!(out.message.contains("not an ffe-lab host"));
    }
    assert!(h.path(K3S_BIN).exists());
    assert!(install(&h, "server")
        .message
        .contains("not an ffe-lab host"));
}

#[test]
fn crash_and_boot_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = server1(dir.path());
    host_crashed(&s1.root, "s1", &s1.settings).unwrap();
    assert!(!cluster(&s1).nodes["s1"].ready);
    assert_eq!(call(&s1, "systemctl", &["is-active", "k3s"]).exit_code, 3);
    let outs = host_booted(&s1.root, "s1", s1.address.clone(), &s1.settings).unwrap();
    assert_eq!(outs.len(), 1);
    assert_eq!(outs[0].exit_code, 0, "{outs:?}");
    assert!(cluster(&s1).nodes["s1"].ready);
    let recs = read_records(&s1.settings.records_dir, "s1").unwrap();
    assert_eq!(recs.last().unwrap().program, "boot");
}

#[test]
fn version_and_other_units() {
    let dir = tempfile::tempdir().unwrap();
    let h = host(dir.path(), "s1", "10.210.9.11");
    let out = call(&h, "k3s", &["--version"]);
    assert!(out
        .stdout
        .starts_with("k3s version v1.33.5+k3s1 (stand-in)"));
    assert_eq!(call(&h, "systemctl", &["restart", "chrony"]).exit_code, 0);
    assert_eq!(call(&h, "systemctl", &["start", "k3s"]).exit_code, 5);
    assert_eq!(call(&h, "k3s", &["server"]).exit_code, 1);
}

// Issue 11 A.1: like install.sh, an unchanged reinstall does not start a stopped unit unless
// INSTALL_K3S_FORCE_RESTART=true.
#[test]
fn unchanged_reinstall_skips_the_start_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = server1(dir.path());
    assert_eq!(call(&s1, "systemctl", &["stop", "k3s"]).exit_code, 0);
    let out = run(
        &testutil::inv(
            "install.sh",
            &[],
            &[
                ("INSTALL_K3S_SKIP_DOWNLOAD", "true"),
                ("INSTALL_K3S_EXEC", "server"),
            ],
        ),
        &s1,
        &mut std::io::empty(),
    );
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("No change detected so skipping service start"),
        "{}",
        out.stdout
    );
    assert_eq!(call(&s1, "systemctl", &["is-active", "k3s"]).exit_code, 3);
    let forced = run(
        &testutil::inv(
            "install.sh",
            &[],
            &[
                ("INSTALL_K3S_SKIP_DOWNLOAD", "true"),
                ("INSTALL_K3S_EXEC", "server"),
                ("INSTALL_K3S_FORCE_RESTART", "true"),
            ],
        ),
        &s1,
        &mut std::io::empty(),
    );
    assert_eq!(forced.exit_code, 0, "{forced:?}");
    assert_eq!(call(&s1, "systemctl", &["is-active", "k3s"]).exit_code, 0);
}

#[test]
fn restart_keeps_taints_and_only_adds_labels_like_k3s() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = host(dir.path(), "s1", "10.210.9.11");
    write_config(
        &s1,
        "token: sekret\ncluster-init: true\nnode-label: [a=1, b=2]\nnode-taint: [x=y:NoSchedule]\n",
    );
    assert_eq!(install(&s1, "server").exit_code, 0);
    write_config(
        &s1,
        "token: sekret\ncluster-init: true\nnode-label: [a=3]\nnode-taint: [z=w:NoExecute]\n",
    );
    assert_eq!(call(&s1, "systemctl", &["restart", "k3s"]).exit_code, 0);
    let n = &cluster(&s1).nodes["s1"];
    assert_eq!(n.labels.get("a").map(String::as_str), Some("3"));
    assert_eq!(
        n.labels.get("b").map(String::as_str),
        Some("2"),
        "labels are add-only"
    );
    assert_eq!(n.taints.len(), 1);
    assert_eq!(n.taints[0].key, "x", "taints only at registration");
    // Through the API they change.
    let out = call(
        &s1,
        "kubectl",
        &["label", "node", "s1", "--overwrite", "a=4", "b-"],
    );
    assert_eq!(out.exit_code, 0, "{out:?}");
    let out = call(&s1, "kubectl", &["label", "node", "s1", "a=5"]);
    assert!(out.message.contains("--overwrite is false"), "{out:?}");
    assert_eq!(
        call(&s1, "kubectl", &["taint", "node", "s1", "x:NoSchedule-"]).exit_code,
        0
    );
    let out = call(&s1, "kubectl", &["taint", "node", "s1", "x:NoSchedule-"]);
    assert!(out.message.contains("not found"), "{out:?}");
    assert_eq!(
        call(&s1, "kubectl", &["taint", "node", "s1", "z=w:NoExecute"]).exit_code,
        0
    );
    let n = &cluster(&s1).nodes["s1"];
    assert_eq!(n.labels.get("a").map(String::as_str), Some("4"));
    assert!(!n.labels.contains_key("b"));
    assert_eq!(n.taints.len(), 1);
    assert_eq!(n.taints[0].key, "z");
}

#[test]
fn cluster_init_on_an_empty_data_dir_is_a_second_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = server1(dir.path());
    let full = std::fs::read_to_string(s1.path("/var/lib/rancher/k3s/server/token")).unwrap();
    let s2 = host(dir.path(), "s2", "10.210.9.12");
    write_config(
        &s2,
        &format!("token: {}\nserver: https://10.210.9.11:6443\n", full.trim()),
    );
    assert_eq!(install(&s2, "server").exit_code, 0);
    // A restart of the first server keeps its data: still the same cluster.
    assert_eq!(call(&s1, "systemctl", &["restart", "k3s"]).exit_code, 0);
    // Wiped (uninstalled) and started again with cluster-init while s2 holds the cluster.
    assert_eq!(call(&s1, "k3s-uninstall.sh", &[]).exit_code, 0);
    write_file(&s1.path(K3S_BIN), b"#!/bin/true\n", 0o755).unwrap();
    write_config(&s1, "token: sekret\ncluster-init: true\n");
    let out = install(&s1, "server");
    assert_ne!(out.exit_code, 0);
    assert!(out.message.contains("split brain"), "{out:?}");
}

#[test]
fn with_flannel_none_nodes_are_not_ready_until_calico_is_installed() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = host(dir.path(), "s1", "10.210.9.11");
    write_config(
        &s1,
        "token: sekret\ncluster-init: true\nflannel-backend: none\n",
    );
    assert_eq!(install(&s1, "server").exit_code, 0);
    let ready = || {
        let out = call(&s1, "kubectl", &["get", "nodes", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v["items"][0]["status"]["conditions"][0]["status"] == "True"
    };
    assert!(!ready(), "Ready without a CNI");
    // Another chart in the manifests directory is no CNI.
    write_file(
        &s1.path("/var/lib/rancher/k3s/server/manifests/other.yaml"),
        b"apiVersion: helm.cattle.io/v1\nkind: HelmChart\nmetadata: {name: x}\nspec: {chart: cert-manager}\n",
        0o600,
    )
    .unwrap();
    assert!(!ready());
    write_file(
        &s1.path("/var/lib/rancher/k3s/server/manifests/ffe-cni--calico.yaml"),
        b"\"apiVersion\": \"helm.cattle.io/v1\"\n\"kind\": \"HelmChart\"\n\"metadata\": {\"name\": \"tigera-operator\"}\n\"spec\": {\"chart\": \"tigera-operator\"}\n",
        0o600,
    )
    .unwrap();
    assert!(ready());
}

// HelmCharts come only from manifest files: one exists while its Addon holds it (no
// helm-controller in the stand-in: a deleted HelmChart is gone at once).
#[test]
fn a_helmchart_exists_while_its_addon_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = server1(dir.path());
    let file = s1.path("/var/lib/rancher/k3s/server/manifests/ffe-mesh--istio-base.yaml");
    let doc = b"apiVersion: helm.cattle.io/v1\nkind: HelmChart\nmetadata: {name: istio-base, namespace: kube-system}\nspec: {chart: base}\n";
    write_file(&file, doc, 0o600).unwrap();
    let get = |extra: &[&str]| {
        let mut args = vec!["get", "-n", "kube-system", "helmchart/istio-base"];
        args.extend_from_slice(extra);
        call(&s1, "kubectl", &args)
    };
    let out = get(&["--ignore-not-found", "-o", "name"]);
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert_eq!(out.stdout, "helmchart.helm.cattle.io/istio-base\n");
    // never being deleted in the stand-in (deleting is immediate)
    let out = get(&["-o", "jsonpath={.metadata.deletionTimestamp}"]);
    assert_eq!((out.exit_code, out.stdout.as_str()), (0, ""), "{out:?}");
    // an output the stand-in does not model is refused, not guessed
    assert_eq!(get(&["-o", "yaml"]).exit_code, 1);
    let out = run(
        &inv("kubectl", &["delete", "-f", "-"], &[]),
        &s1,
        &mut &doc[..],
    );
    assert_eq!(out.exit_code, 0, "{out:?}");
    std::fs::remove_file(&file).unwrap();
    let out = get(&["--ignore-not-found", "-o", "name"]);
    assert_eq!((out.exit_code, out.stdout.as_str()), (0, ""), "{out:?}");
    let out = get(&[]);
    assert_eq!(out.exit_code, 1, "{out:?}");
    assert!(out.stderr.contains("NotFound"), "{out:?}");
}

#[test]
fn deploy_controller_skips_a_file_whose_addon_has_its_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = server1(dir.path());
    let file = s1.path("/var/lib/rancher/k3s/server/manifests/ffe-app--app.yaml");
    let doc = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app, namespace: ffe}\n";
    write_file(&file, doc, 0o600).unwrap();
    let tick = || call(&s1, "kubectl", &["get", "nodes"]);
    assert!(tick().warnings.is_empty());
    let present = || cluster(&s1).addons["ffe-app--app"].objects.clone();
    assert_eq!(present().len(), 1);
    // Objects deleted, file removed, the same file back: skipped, the objects stay gone.
    let out = run(
        &inv("kubectl", &["delete", "-f", "-"], &[]),
        &s1,
        &mut &doc[..],
    );
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert!(present().is_empty());
    std::fs::remove_file(&file).unwrap();
    tick();
    write_file(&file, doc, 0o600).unwrap();
    tick();
    assert!(
        present().is_empty(),
        "k3s skips content its Addon already has"
    );
    // Deleting the Addon makes the next resync apply the file again.
    let out = call(
        &s1,
        "kubectl",
        &["delete", "addon", "-n", "kube-system", "ffe-app--app"],
    );
    assert_eq!(out.exit_code, 0, "{out:?}");
    tick();
    assert_eq!(present().len(), 1);
    // A file name that is no valid Addon name is reported.
    write_file(
        &s1.path("/var/lib/rancher/k3s/server/manifests/bad_name.yaml"),
        doc,
        0o600,
    )
    .unwrap();
    let out = tick();
    assert!(
        out.warnings.iter().any(|w| w.contains("bad_name")),
        "{out:?}"
    );
}

#[test]
fn a_join_waits_for_its_server_to_come_back_like_k3s_retries() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = server1(dir.path());
    let full = std::fs::read_to_string(s1.path("/var/lib/rancher/k3s/server/token")).unwrap();
    assert_eq!(call(&s1, "systemctl", &["stop", "k3s"]).exit_code, 0);
    let mut s2 = host(dir.path(), "s2", "10.210.9.12");
    s2.settings.join_retry_ms = 10_000;
    write_config(
        &s2,
        &format!("token: {}\nserver: https://10.210.9.11:6443\n", full.trim()),
    );
    let joiner = std::thread::spawn(move || install(&s2, "server"));
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert!(!joiner.is_finished(), "the join gave up at once");
    assert_eq!(call(&s1, "systemctl", &["start", "k3s"]).exit_code, 0);
    let out = joiner.join().unwrap();
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert!(cluster(&s1).etcd_members.contains(&"s2".to_string()));
}

#[test]
fn an_agent_token_added_to_a_running_cluster_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = server1(dir.path());
    write_config(
        &s1,
        "token: sekret\nagent-token: new-agent-secret\ncluster-init: true\nnode-label: [zone=a]\n",
    );
    let out = call(&s1, "systemctl", &["restart", "k3s"]);
    assert_ne!(out.exit_code, 0);
    assert!(
        out.message.contains("passwd newer than datastore"),
        "{out:?}"
    );
}

/// `k3s token rotate` (docs.k3s.io cli/token): a server restarted with the old token in its
/// config fails, one with the new token starts; a wrong current token is refused.
#[test]
fn token_rotate_replaces_the_server_token() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = server1(dir.path());
    let out = call(
        &s1,
        "k3s",
        &[
            "token",
            "rotate",
            "--token",
            "wrong",
            "--new-token",
            "fresh",
        ],
    );
    assert_eq!(out.exit_code, 1, "{out:?}");
    let out = call(
        &s1,
        "k3s",
        &["token", "rotate", "-t", "sekret", "--new-token", "fresh"],
    );
    assert_eq!(out.exit_code, 0, "{out:?}");
    let out = call(&s1, "systemctl", &["restart", "k3s"]);
    assert_eq!(out.exit_code, 1);
    assert!(
        out.message.contains("encrypted with different token"),
        "{out:?}"
    );
    write_config(
        &s1,
        "token: fresh\ncluster-init: true\nnode-label: [zone=a]\n",
    );
    let out = call(&s1, "systemctl", &["restart", "k3s"]);
    assert_eq!(out.exit_code, 0, "{out:?}");
    let full = std::fs::read_to_string(s1.path("/var/lib/rancher/k3s/server/token")).unwrap();
    assert!(full.trim().ends_with("::server:fresh"), "{full}");
}

/// `k3s etcd-snapshot save` and the cluster-reset sequence (docs.k3s.io
/// datastore/backup-restore): a reset needs k3s stopped and the snapshot's token; the restored
/// cluster has one member; a peer with its old data is refused until that data is moved away.
#[test]
fn snapshot_and_cluster_reset_follow_the_k3s_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = server1(dir.path());
    let s2 = host(dir.path(), "s2", "10.210.9.12");
    write_config(&s2, "token: sekret\nserver: https://10.210.9.11:6443\n");
    assert_eq!(install(&s2, "server").exit_code, 0);
    // No server on the host: no snapshot.
    let a1 = host(dir.path(), "a1", "10.210.9.21");
    assert_eq!(call(&a1, "k3s", &["etcd-snapshot", "save"]).exit_code, 1);
    write_config(
        &s1,
        "token: sekret\ncluster-init: true\nnode-label: [zone=a]\netcd-snapshot-dir: /backup/s1\n",
    );
    let out = call(&s1, "k3s", &["etcd-snapshot", "save", "--name", "drill"]);
    assert_eq!(out.exit_code, 0, "{out:?}");
    let snaps: Vec<_> = std::fs::read_dir(s1.path("/backup/s1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(snaps.len(), 1);
    let file = snaps[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(file.starts_with("drill-s1-"), "{file}");
    let snap_path = format!("/backup/s1/{file}");
    // Written after the snapshot: gone after the restore.
    s1.datastore()
        .update(|s| {
            s.as_mut().unwrap().pods.insert(
                "ffe/late".into(),
                PodState {
                    namespace: "ffe".into(),
                    name: "late".into(),
                    node: "s2".into(),
                    owner_kind: None,
                    protected_by_pdb: false,
                },
            );
            Ok(())
        })
        .unwrap();
    let reset = |h: &HostEnv, path: &str| {
        call(
            h,
            "k3s",
            &[
                "server",
                "--cluster-reset",
                &format!("--cluster-reset-restore-path={path}"),
            ],
        )
    };
    // k3s still running: refused; a missing file: refused; the wrong token: refused.
    assert!(reset(&s1, &snap_path)
        .message
        .contains("address already in use"));
    for h in [&s1, &s2] {
        assert_eq!(call(h, "systemctl", &["stop", "k3s"]).exit_code, 0);
    }
    assert!(reset(&s1, "/backup/s1/nope")
        .message
        .contains("snapshot path does not exist"));
    write_config(&s1, "token: other\ncluster-init: true\n");
    assert!(reset(&s1, &snap_path).message.contains("token"));
    // Like k3s, the host's own data was moved aside before the token was checked.
    let kept: Vec<_> = std::fs::read_dir(s1.path("/var/lib/rancher/k3s/server/db"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(kept.iter().any(|n| n.starts_with("etcd-old-")), "{kept:?}");
    write_config(&s1, "token: sekret\ncluster-init: true\n");
    let out = reset(&s1, &snap_path);
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert!(out.message.contains("restart without --cluster-reset"));
    let st = cluster(&s1);
    assert_eq!(st.etcd_members, vec!["s1".to_string()]);
    assert!(!st.pods.contains_key("ffe/late"));
    assert!(st.nodes.values().all(|n| !n.ready));
    assert_eq!(call(&s1, "systemctl", &["start", "k3s"]).exit_code, 0);
    // s2 with its old data: refused; with it moved away: joins the restored cluster.
    let out = call(&s2, "systemctl", &["start", "k3s"]);
    assert_eq!(out.exit_code, 1);
    assert!(
        out.message
            .contains("data-dir used by this member must be removed"),
        "{out:?}"
    );
    std::fs::rename(
        s2.path("/var/lib/rancher/k3s/server/db"),
        s2.path("/var/lib/rancher/k3s/server/db.before-restore"),
    )
    .unwrap();
    let out = call(&s2, "systemctl", &["start", "k3s"]);
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert_eq!(
        cluster(&s1).etcd_members,
        vec!["s1".to_string(), "s2".to_string()]
    );
}

/// `k3s certificate rotate` (k3s-io/k3s #4632): refused while k3s runs; leaf certificates move to
/// a backup directory (CA certificates stay); the next start issues them again for 365 days.
#[test]
fn certificate_rotate_moves_leaf_certs_and_the_next_start_issues_them() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = server1(dir.path());
    let tls = s1.path("/var/lib/rancher/k3s/server/tls");
    std::fs::create_dir_all(&tls).unwrap();
    for (stem, days) in [("client-admin", "10"), ("server-ca", "3650")] {
        let st = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", days, "-subj", "/CN=t"])
            .arg("-keyout")
            .arg(tls.join(format!("{stem}.key")))
            .arg("-out")
            .arg(tls.join(format!("{stem}.crt")))
            .output()
            .unwrap();
        assert!(st.status.success());
    }
    let days_left = |f: &std::path::Path| -> i64 {
        let out = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-enddate", "-in"])
            .arg(f)
            .output()
            .unwrap();
        let end = String::from_utf8_lossy(&out.stdout).to_string();
        let end = end.trim().trim_start_matches("notAfter=").to_string();
        let secs = std::process::Command::new("date")
            .args(["-d", &end, "+%s"])
            .output()
            .unwrap();
        let t: i64 = String::from_utf8_lossy(&secs.stdout)
            .trim()
            .parse()
            .unwrap();
        (t - (now_ns() / 1_000_000_000) as i64) / 86_400
    };
    assert!(days_left(&tls.join("client-admin.crt")) < 11);
    let out = call(&s1, "k3s", &["certificate", "rotate"]);
    assert_eq!(out.exit_code, 1, "refused while k3s runs: {out:?}");
    assert_eq!(call(&s1, "systemctl", &["stop", "k3s"]).exit_code, 0);
    let out = call(&s1, "k3s", &["certificate", "rotate"]);
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert!(!tls.join("client-admin.crt").exists());
    assert!(
        tls.join("server-ca.crt").exists(),
        "a CA certificate was rotated"
    );
    let backups: Vec<_> = std::fs::read_dir(s1.path("/var/lib/rancher/k3s/server"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tls-"))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(call(&s1, "systemctl", &["start", "k3s"]).exit_code, 0);
    assert!(days_left(&tls.join("client-admin.crt")) >= 364);
}

/// `k3s secrets-encrypt` (docs.k3s.io cli/secrets-encrypt, key rotation): a new key is loaded
/// by the server that rotated and by each other server only when it restarts; until then the
/// status names two servers whose hashes differ and a second rotation is refused.
#[test]
fn secrets_encrypt_rotation_needs_every_server_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let s1 = host(dir.path(), "s1", "10.210.9.11");
    write_config(
        &s1,
        "token: sekret\ncluster-init: true\nsecrets-encryption: true\n",
    );
    assert_eq!(install(&s1, "server").exit_code, 0);
    let s2 = host(dir.path(), "s2", "10.210.9.12");
    write_config(
        &s2,
        "token: sekret\nserver: https://10.210.9.11:6443\nsecrets-encryption: true\n",
    );
    assert_eq!(install(&s2, "server").exit_code, 0);
    let status = |h: &HostEnv| call(h, "k3s", &["secrets-encrypt", "status"]).stdout;
    assert!(status(&s1).contains("All hashes match"), "{}", status(&s1));
    assert_eq!(status(&s1).matches("AES-CBC").count(), 1);
    let out = call(&s1, "k3s", &["secrets-encrypt", "rotate-keys"]);
    assert_eq!(out.exit_code, 0, "{out:?}");
    let st = status(&s1);
    assert!(
        st.contains("Current Rotation Stage: reencrypt_finished"),
        "{st}"
    );
    assert!(st.contains("hash does not match between s1 and s2"), "{st}");
    assert_eq!(st.matches("AES-CBC").count(), 2);
    let again = call(&s2, "k3s", &["secrets-encrypt", "rotate-keys"]);
    assert_eq!(again.exit_code, 1, "{again:?}");
    assert_eq!(call(&s2, "systemctl", &["restart", "k3s"]).exit_code, 0);
    assert!(status(&s2).contains("All hashes match"), "{}", status(&s2));
    // No server running on the host: nothing to ask.
    assert_eq!(call(&s2, "systemctl", &["stop", "k3s"]).exit_code, 0);
    assert_eq!(
        call(&s2, "k3s", &["secrets-encrypt", "status"]).exit_code,
        1
    );
}

//! Faults during apply, against ffe-lab hosts (real OpenSSH; k3s is the lab's stand-in):
//! each gives an error naming the host and what to fix, and a later apply converges.

mod support;

use std::time::{Duration, Instant};

use support::*;

fn apply_err(env: &Env) -> String {
    let out = env.apply();
    let msg = text(&out);
    assert!(!out.status.success(), "apply should have failed:\n{msg}");
    msg
}

#[test]
fn ssh_faults_name_the_host_and_the_fix_then_apply_converges() {
    let env = Env::new(3, 2);
    let w1 = worker(1);
    let w1_ip = env.ip(&w1);

    // No known_hosts file: apply refuses to connect at all (no token to an unverified host).
    env.tfvars(2, "ssh_connect_timeout_seconds = 3");
    let kh = env.lab.known_hosts().display().to_string();
    env.edit_tfvars(|s| s.replace(&format!("ssh_known_hosts_file = \"{kh}\""), ""));
    let msg = apply_err(&env);
    assert!(msg.contains("no host key to check it against"), "{msg}");
    assert!(msg.contains("ssh_insecure_ignore_host_keys"), "{msg}");
    for h in env.lab.hosts() {
        assert!(
            env.records(&h.name).is_empty(),
            "{} was touched without host key pinning",
            h.name
        );
    }

    // Wrong SSH port: nothing listens there.
    env.tfvars(2, "ssh_port = 2222\nssh_connect_timeout_seconds = 3");
    let msg = apply_err(&env);
    assert!(msg.contains("port 2222"), "{msg}");
    assert!(msg.contains("ssh_port"), "the fix is not named:\n{msg}");

    // A key the hosts do not accept.
    let other_key = env.dir.path().join("other_key");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other_key)
        .status()
        .unwrap();
    assert!(st.success());
    env.tfvars(2, "ssh_connect_timeout_seconds = 3");
    let good_key = env.lab.client_key().display().to_string();
    env.edit_tfvars(|s| s.replace(&good_key, other_key.to_str().unwrap()));
    let msg = apply_err(&env);
    assert!(msg.contains("SSH refused the key"), "{msg}");
    assert!(msg.contains("ssh_private_key_path"), "{msg}");

    // One worker address where no host answers.
    env.tfvars(2, "ssh_connect_timeout_seconds = 3");
    let ghost = env.free_ip(250);
    env.edit_tfvars(|s| s.replace(&format!("\"{w1_ip}\""), &format!("\"{ghost}\"")));
    let msg = apply_err(&env);
    assert!(
        msg.contains(&format!("{w1} ({ghost})")),
        "host not named:\n{msg}"
    );
    assert!(
        msg.contains("unreachable") || msg.contains("No route"),
        "{msg}"
    );
    // Nothing was installed on any node: hosts are prepared first, the cluster waits for all.
    for h in env.lab.hosts() {
        assert!(
            installs(&env.records(&h.name)).is_empty(),
            "{} got k3s although a host failed",
            h.name
        );
    }

    // Fixed input: the same apply converges.
    env.tfvars(2, "ssh_connect_timeout_seconds = 3");
    env.apply_ok();
    let (code, out) = env.plan_exit();
    assert_eq!(code, 0, "{out}");
}

#[test]
fn host_dying_mid_apply_fails_clearly_and_reapply_converges() {
    let env = Env::new(3, 2);
    let victim = worker(1);
    env.tfvars(2, "ssh_connect_timeout_seconds = 3");
    let out = std::thread::scope(|s| {
        let apply = s.spawn(|| env.apply());
        // Kill the worker once the first server runs k3s: hosts are prepared, agents not yet joined.
        let deadline = Instant::now() + Duration::from_secs(120);
        while installs(&env.records(&master(0))).is_empty() {
            assert!(Instant::now() < deadline, "server 0 never installed");
            std::thread::sleep(Duration::from_millis(20));
        }
        env.lab.kill_host(&victim).unwrap();
        apply.join().unwrap()
    });
    let msg = text(&out);
    assert!(
        !out.status.success(),
        "apply with a dead worker succeeded:\n{msg}"
    );
    assert!(msg.contains(&victim), "the dead host is not named:\n{msg}");
    assert!(
        msg.contains("terraform apply"),
        "no next step given:\n{msg}"
    );
    assert!(
        installs(&env.records(&victim)).is_empty(),
        "the victim was killed too late for this test"
    );

    env.lab.revive_host(&victim).unwrap();
    env.apply_ok();
    // Converged without redoing finished work: every node installed exactly once.
    for h in env.lab.hosts() {
        assert_eq!(
            installs(&env.records(&h.name)).len(),
            1,
            "{} installed {} times",
            h.name,
            installs(&env.records(&h.name)).len()
        );
    }
    // The retry kept the token the first attempt gave the servers.
    let cluster = env.lab.standin_cluster().unwrap().unwrap();
    assert_eq!(cluster.nodes.values().filter(|n| n.ready).count(), 5);
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 0, "{plan}");

    // The first server now holds another cluster CA (re-initialised by hand): the next apply
    // stops before touching any node, and goes on once the CA is the pinned one again.
    let token_file = env
        .lab
        .host(&master(0))
        .unwrap()
        .root_dir
        .join("var/lib/rancher/k3s/server/token");
    let pinned = std::fs::read_to_string(&token_file).unwrap();
    let (_, creds) = pinned.trim().split_once("::").unwrap();
    std::fs::write(&token_file, format!("K10{}::{creds}\n", "f".repeat(64))).unwrap();
    let before = env.mutation_counts();
    // Any change makes Terraform call the provider; a new snapshot retention rewrites the
    // servers' configs.
    env.tfvars(
        2,
        "ssh_connect_timeout_seconds = 3\netcd_snapshot_retention = 30",
    );
    let msg = text(&env.apply());
    assert!(
        msg.contains("cluster CA of the first server changed"),
        "{msg}"
    );
    let after = env.mutation_counts();
    assert_eq!(after, before, "a node was touched");
    std::fs::write(&token_file, pinned).unwrap();
    env.apply_ok();
}

/// A host whose fstab still has the backup-share line of an earlier configuration (NFS managed
/// before, nfs_server/nfs_export unset now) shows drift and the apply removes the line.
#[test]
fn an_nfs_line_left_from_an_earlier_configuration_is_removed() {
    let env = Env::new(3, 2);
    env.tfvars(2, "");
    env.apply_ok();
    let fstab = env.lab.host(&worker(0)).unwrap().root_dir.join("etc/fstab");
    let before = std::fs::read_to_string(&fstab).unwrap_or_default();
    std::fs::write(
        &fstab,
        format!(
            "{before}10.210.250.250:/exports/old /mnt/backups nfs4 defaults,_netdev,nofail,hard,timeo=600 0 0 # ffe-ha backup share\n"
        ),
    )
    .unwrap();
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 2, "the leftover line is not drift:\n{plan}");
    assert!(plan.contains("still mounts the backup share"), "{plan}");
    env.apply_ok();
    assert_eq!(std::fs::read_to_string(&fstab).unwrap_or_default(), before);
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 0, "{plan}");
}

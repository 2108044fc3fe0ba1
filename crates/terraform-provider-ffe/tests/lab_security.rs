//! Hardening on ffe-lab hosts (real OpenSSH, real nftables in each host's network namespace;
//! k3s is the lab's stand-in, which checks the CIS profile's files and kernel settings as the
//! kubelet and API server would): the host firewall lets in what each role needs and nothing
//! else, never locks out the apply's SSH client, shows drift in the plan and goes away when
//! switched off; the CIS profile's kernel settings and policy files are in place.

mod support;

use support::*;

/// Listeners on `ports` on `host` (a tiny accept loop; the lab's teardown kills it).
fn listen(env: &Env, host: &str, ports: &[u16]) {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    let script = format!(
        "import socket, threading\n\
         def serve(p):\n    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', p)); s.listen(16)\n    while True:\n        c, _ = s.accept(); c.close()\n\
         for p in [{}]:\n    threading.Thread(target=serve, args=(p,), daemon=False).start()\n",
        ports.join(", ")
    );
    let cmd = format!(
        "setsid python3 -c {} >/dev/null 2>&1 </dev/null & sleep 0.5",
        shell_words(&script)
    );
    let out = env.lab.ssh(host, &cmd).unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

fn shell_words(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Whether a TCP connection from `from` to `ip:port` is accepted within 3 s.
fn connects(env: &Env, from: &str, ip: &str, port: u16) -> bool {
    let out = env
        .lab
        .ssh(
            from,
            &format!(
                "timeout 3 bash -c '</dev/tcp/{ip}/{port}' 2>/dev/null && echo OPEN || echo CLOSED"
            ),
        )
        .unwrap();
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        t.contains("OPEN") || t.contains("CLOSED"),
        "ssh from {from} failed: {}",
        text(&out)
    );
    t.contains("OPEN")
}

/// From this machine (the lab's admin network: the bridge address).
fn connects_from_admin(ip: &str, port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &format!("{ip}:{port}").parse().unwrap(),
        std::time::Duration::from_secs(3),
    )
    .is_ok()
}

fn table(env: &Env, host: &str) -> String {
    let out = env
        .lab
        .ssh(host, "nft list table inet ffe_host 2>&1")
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn the_host_firewall_keeps_each_role_to_its_ports_and_never_locks_out_the_apply() {
    let env = Env::new(3, 2);
    env.tfvars(2, "");
    env.apply_ok();
    let (m0, m1, w0) = (master(0), master(1), worker(0));
    let m0_ip = env.ip(&m0);
    let w0_ip = env.ip(&w0);
    for h in env.lab.hosts() {
        assert!(
            table(&env, &h.name).contains("policy drop"),
            "{}: {}",
            h.name,
            table(&env, &h.name)
        );
    }

    // Ports: a listener on every probed port of a server and an agent.
    listen(&env, &m0, &[2379, 2380, 6444, 10250, 9100, 8080]);
    listen(&env, &w0, &[10250, 2379, 8080]);
    // etcd: between servers only; an agent is refused.
    assert!(connects(&env, &m1, &m0_ip, 2379), "etcd from a server");
    assert!(connects(&env, &m1, &m0_ip, 2380), "etcd peer from a server");
    assert!(
        !connects(&env, &w0, &m0_ip, 2379),
        "etcd from an agent must be refused"
    );
    assert!(
        !connects(&env, &w0, &m0_ip, 2380),
        "etcd peer from an agent must be refused"
    );
    // kubelet and node-exporter: from the node network (ADR 0018), which in the lab also holds
    // this machine's bridge address.
    assert!(connects(&env, &w0, &m0_ip, 10250));
    assert!(connects(&env, &m0, &w0_ip, 10250));
    assert!(connects(&env, &w0, &m0_ip, 9100));
    // Ports no role needs: closed to everyone.
    assert!(!connects(&env, &m1, &m0_ip, 8080));
    assert!(
        !connects(&env, &m1, &m0_ip, 6444),
        "k3s's loopback-only port"
    );
    assert!(!connects_from_admin(&m0_ip, 8080));
    // An agent opens no etcd port, even when something listens there.
    assert!(!connects(&env, &m0, &w0_ip, 2379));
    // SSH from the admin network: a fresh connection (not the provider's) gets in.
    let out = env.lab.ssh(&w0, "true").unwrap();
    assert!(
        out.status.success(),
        "a new SSH connection was refused: {}",
        text(&out)
    );

    // Drift: a rule added by hand shows in the plan, and apply puts the table back.
    let out = env
        .lab
        .ssh(
            &w0,
            "nft add rule inet ffe_host input tcp dport 8080 accept",
        )
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(connects(&env, &m0, &w0_ip, 8080));
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 2, "hand-edited firewall not seen as drift:\n{plan}");
    assert!(plan.contains("nftables table inet ffe_host"), "{plan}");
    env.apply_ok();
    assert!(
        !connects(&env, &m0, &w0_ip, 8080),
        "apply did not restore the rules"
    );
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 0, "not converged:\n{plan}");

    // Rules that would keep the apply's own SSH client out are refused before loading; the
    // loaded rules stay and SSH keeps working.
    let before = table(&env, &w0);
    env.tfvars(2, "firewall_admin_cidrs = [\"192.0.2.0/24\"]");
    let out = env.apply();
    let msg = text(&out);
    assert!(!out.status.success(), "a lock-out was applied:\n{msg}");
    assert!(msg.contains("not in firewall_admin_cidrs"), "{msg}");
    assert!(
        msg.contains(&env.lab.gateway().to_string()),
        "the client address is not named:\n{msg}"
    );
    assert!(env.lab.ssh(&w0, "true").unwrap().status.success());
    assert_eq!(
        before
            .lines()
            .filter(|l| !l.contains("counter"))
            .collect::<Vec<_>>(),
        table(&env, &w0)
            .lines()
            .filter(|l| !l.contains("counter"))
            .collect::<Vec<_>>(),
        "the refused rules changed the loaded table"
    );

    // Opt-out (firewalls managed centrally): the table, its file and its unit go.
    env.tfvars(2, "host_firewall_enabled = false");
    env.apply_ok();
    for h in env.lab.hosts() {
        assert!(table(&env, &h.name).contains("No such file"), "{}", h.name);
        let out = env
            .lab
            .ssh(
                &h.name,
                "ls /etc/ffe/host-firewall.nft /etc/systemd/system/ffe-host-firewall.service 2>&1",
            )
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("No such file"),
            "{}",
            text(&out)
        );
    }
    assert!(
        connects(&env, &w0, &m0_ip, 8080),
        "opt-out left traffic blocked"
    );
    // The listeners the firewall kept closed were there all along.
    assert!(connects(&env, &m0, &w0_ip, 2379));
    assert!(connects(&env, &m1, &m0_ip, 6444));
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 0, "not converged:\n{plan}");
}

#[test]
fn the_cis_profile_sets_the_kubelet_kernel_settings_and_the_api_server_policies_and_the_key_rotates(
) {
    let machine_panic = std::fs::read_to_string("/proc/sys/kernel/panic").unwrap();
    // The isolation check below means something only if the machine's value differs.
    assert_ne!(
        machine_panic.trim(),
        "10",
        "set this machine's kernel.panic to anything but 10 for this test"
    );
    let env = Env::new(3, 2);
    env.tfvars(2, "");
    env.apply_ok();
    for h in env.lab.hosts() {
        let out = env
            .lab
            .ssh(
                &h.name,
                "sysctl -n vm.overcommit_memory kernel.panic kernel.panic_on_oops vm.panic_on_oom",
            )
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "1\n10\n1\n0\n",
            "{}",
            h.name
        );
    }
    // The lab's per-host copies kept the machine's own kernel untouched.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/panic").unwrap(),
        machine_panic
    );
    let out = env
        .lab
        .ssh(
            &master(0),
            "stat -c '%a %n' /var/lib/rancher/k3s/server/ffe-admission.yaml /var/lib/rancher/k3s/server/ffe-audit-policy.yaml /var/lib/rancher/k3s/server/logs",
        )
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "600 /var/lib/rancher/k3s/server/ffe-admission.yaml\n600 /var/lib/rancher/k3s/server/ffe-audit-policy.yaml\n700 /var/lib/rancher/k3s/server/logs\n"
    );
    let out = env
        .lab
        .ssh(&worker(0), "ls /var/lib/rancher/k3s/server 2>&1")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("No such file"),
        "policy files on an agent"
    );

    // A kernel setting changed by hand is drift; k3s (the stand-in, as the kubelet) would
    // refuse to start with it, and apply sets it back.
    let out = env
        .lab
        .ssh(&worker(0), "sysctl -q -w kernel.panic=0")
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 2, "{plan}");
    assert!(
        plan.contains("sysctl kernel.panic is '0', want 10"),
        "{plan}"
    );
    env.apply_ok();
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 0, "not converged:\n{plan}");

    // Rotating the secrets-encryption key: rotate-keys once on the first live server, then
    // every server restarted after it, one at a time; all load the new key (hashes match).
    env.tfvars(2, "k3s_encryption_key_rotation = 1");
    env.apply_ok();
    let rotated = calls(&env, &master(0), "k3s secrets-encrypt rotate-keys");
    assert_eq!(rotated.len(), 1, "rotate-keys on the first server once");
    for i in 1..3 {
        assert!(calls(&env, &master(i), "rotate-keys").is_empty());
    }
    let restarts: Vec<u64> = (0..3)
        .map(|i| {
            *calls(&env, &master(i), "systemctl restart k3s")
                .iter()
                .find(|t| **t > rotated[0])
                .unwrap_or_else(|| panic!("server {i} not restarted after the rotation"))
        })
        .collect();
    assert!(
        restarts[0] < restarts[1] && restarts[1] < restarts[2],
        "one at a time, in order"
    );
    let status = env
        .lab
        .ssh(&master(1), "k3s secrets-encrypt status")
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(
        status.contains("Server Encryption Hashes: All hashes match"),
        "{status}"
    );
    assert!(status.contains("reencrypt_finished"), "{status}");
    assert_eq!(status.matches("AES-CBC").count(), 2, "{status}");
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 0, "not converged after the rotation:\n{plan}");
    env.tfvars(2, "k3s_encryption_key_rotation = 0");
    let (code, plan) = env.plan_exit();
    assert_eq!(code, 1, "{plan}");
    assert!(
        plan.contains("a rotated key cannot be taken back"),
        "{plan}"
    );

    // Switching the profile off is a config change on every node (rolled one at a time).
    env.tfvars(2, "cis_profile = false\nk3s_encryption_key_rotation = 1");
    env.apply_ok();
    for h in env.lab.hosts() {
        let out = env
            .lab
            .ssh(&h.name, "cat /etc/rancher/k3s/config.yaml")
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("protect-kernel-defaults"),
            "{}",
            h.name
        );
    }
}

/// Every regular file under `dir` (recursively), skipping symlinks.
fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            files_under(&e.path(), out);
        } else if ft.is_file() {
            out.push(e.path());
        }
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A full apply (and a plan) with Terraform's log at DEBUG and the provider's own trace log:
/// no join token, token secret or kubeconfig key appears in any log, in the plan or apply
/// output, in any file beside the state, or on a k3s command line; every file on a node that
/// holds one is readable by root only; the kubeconfig is 0600. The state itself holds them by
/// design (docs/security.md: encrypted state backends).
#[test]
fn no_secret_reaches_a_log_the_output_or_a_readable_file() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new(3, 2);
    env.tfvars(2, "");
    let logs = env.dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let verbose = |args: &[&str], name: &str| {
        let out = ffe_lab::terraform::command(&env.env_dir())
            .args(args)
            .arg("-no-color")
            .env("TF_LOG", "DEBUG")
            .env("TF_LOG_PATH", logs.join(format!("terraform-{name}.log")))
            .env("PLUGIN_LOG_FILE", logs.join(format!("provider-{name}.log")))
            .output()
            .unwrap();
        std::fs::write(logs.join(format!("stdout-{name}.txt")), &out.stdout).unwrap();
        std::fs::write(logs.join(format!("stderr-{name}.txt")), &out.stderr).unwrap();
        assert!(out.status.success(), "{}", text(&out));
    };
    verbose(&["apply", "-auto-approve", "-input=false"], "apply");
    verbose(&["plan", "-input=false"], "plan");
    verbose(&["output"], "output");

    // The secrets, from the state.
    let out = env.terraform(&["show", "-json"]);
    assert!(out.status.success(), "{}", text(&out));
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cluster = state["values"]["root_module"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "ffe_k3s_cluster")
        .expect("the cluster in the state")["values"]
        .clone();
    let mut secrets: Vec<String> = Vec::new();
    for attr in ["token", "agent_token"] {
        let t = cluster[attr]
            .as_str()
            .unwrap_or_else(|| panic!("{attr} in state"))
            .to_string();
        secrets.push(t.rsplit(':').next().unwrap().to_string());
        secrets.push(t);
    }
    let kubeconfig = env.kubeconfig_path();
    let kc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&kubeconfig).unwrap()).unwrap();
    let key = kc["users"][0]["user"]["client-key-data"]
        .as_str()
        .expect("the kubeconfig has a client key");
    secrets.push(key.to_string());
    assert!(
        secrets.iter().all(|s| s.len() >= 16),
        "secrets too short to search for: {secrets:?}"
    );
    assert_eq!(
        std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777,
        0o600,
        "kubeconfig mode"
    );

    // Logs, outputs and every file of the working directory but the state.
    let mut files = Vec::new();
    files_under(&logs, &mut files);
    files_under(&env.env_dir(), &mut files);
    let state_files = ["terraform.tfstate", "terraform.tfstate.backup"];
    let mut scanned = 0;
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        if state_files.contains(&name.as_str())
            || *f == kubeconfig
            || name.starts_with("terraform-provider-ffe")
        {
            continue;
        }
        let bytes = std::fs::read(f).unwrap();
        scanned += bytes.len();
        for s in &secrets {
            assert!(
                !contains(&bytes, s),
                "a secret ({}…) is in {}",
                &s[..6],
                f.display()
            );
        }
    }
    assert!(
        std::fs::metadata(logs.join("terraform-apply.log"))
            .unwrap()
            .len()
            > 100_000,
        "the debug log is suspiciously small"
    );
    assert!(
        std::fs::metadata(logs.join("provider-apply.log"))
            .unwrap()
            .len()
            > 0
    );
    // The state files themselves: readable by their owner only.
    for name in state_files {
        let p = env.env_dir().join(name);
        if p.exists() {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            eprintln!("{name}: mode {mode:o} (Terraform's own; docs/security.md)");
        }
    }

    // The nodes: k3s command lines (the stand-in records every invocation's arguments) never
    // carry a secret, and every file holding one is root-only.
    for h in env.lab.hosts() {
        for r in env.records(&h.name) {
            // The arguments and environment each k3s program ran with (the record also keeps a
            // copy of config.yaml, the token's proper place).
            let line = format!("{:?} {:?}", r.argv, r.env);
            for s in &secrets[..4] {
                assert!(
                    !line.contains(s.as_str()),
                    "{}: a token on a command line or in the environment: {line}",
                    h.name
                );
            }
        }
        let mut node_files = Vec::new();
        files_under(&h.root_dir, &mut node_files);
        for f in node_files {
            let bytes = std::fs::read(&f).unwrap_or_default();
            // The join tokens only: the stand-in's kubeconfig key is a fixed text inside the
            // stand-in binary itself (real k3s generates one per cluster).
            if secrets[..4].iter().any(|s| contains(&bytes, s)) {
                let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
                assert_eq!(
                    mode & 0o077,
                    0,
                    "{}: {} holds a secret and is mode {mode:o}",
                    h.name,
                    f.display()
                );
            }
        }
    }
    eprintln!(
        "scanned {scanned} bytes of logs and files for {} secrets",
        secrets.len()
    );
}

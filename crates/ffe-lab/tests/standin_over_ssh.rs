//! The k3s stand-in driven over real SSH in the lab, the way the provider drives k3s.

use std::path::{Path, PathBuf};
use std::process::Command;

use ffe_lab::lab::{Lab, LabSpec};
use ffe_lab::standin::Role;

fn sh(lab: &Lab, host: &str, cmd: &str) -> (i32, String) {
    let out = lab.ssh(host, cmd).unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).to_string();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

fn scp(lab: &Lab, host: &str, local: &Path, remote: &str) {
    let ip = lab.host(host).unwrap().ip;
    let st = Command::new("scp")
        .args(lab.ssh_options())
        .arg("-q")
        .arg(local)
        .arg(format!("root@{ip}:{remote}"))
        .status()
        .unwrap();
    assert!(st.success(), "scp to {host}");
}

fn upload_k3s(lab: &Lab, host: &str) {
    let bin = ffe_lab::standin_binary().expect("cargo build -p ffe-lab --bins");
    scp(lab, host, &bin, "/usr/local/bin/k3s");
    scp(lab, host, &bin, "/var/lib/rancher/k3s-install.sh");
    assert_eq!(
        sh(
            lab,
            host,
            "chmod 0755 /usr/local/bin/k3s /var/lib/rancher/k3s-install.sh"
        )
        .0,
        0
    );
}

fn write_config(lab: &Lab, host: &str, yaml: &str) {
    let cmd =
        format!("mkdir -p /etc/rancher/k3s && printf '%s' '{yaml}' > /etc/rancher/k3s/config.yaml");
    assert_eq!(sh(lab, host, &cmd).0, 0);
}

const INSTALL_SERVER: &str =
    "INSTALL_K3S_SKIP_DOWNLOAD=true INSTALL_K3S_EXEC=server K3S_TOKEN=topsecret /var/lib/rancher/k3s-install.sh";

#[test]
fn provider_like_bootstrap_join_and_uninstall() {
    let lab = Lab::create(LabSpec {
        hosts: vec!["srv-1".into(), "srv-2".into(), "agt-1".into()],
        backup_mount: PathBuf::from("/mnt/ffe-lab-test-backups"),
        ssh_port: 22,
    })
    .unwrap();
    let ip = |n: usize| lab.hosts()[n].ip.to_string();
    for h in ["srv-1", "srv-2", "agt-1"] {
        upload_k3s(&lab, h);
    }
    assert!(
        !Path::new("/usr/local/bin/k3s").exists(),
        "upload must stay on the host"
    );

    // first server
    write_config(&lab, "srv-1", "token: topsecret\ncluster-init: true\n");
    let (code, out) = sh(&lab, "srv-1", INSTALL_SERVER);
    assert_eq!(code, 0, "{out}");
    let (_, v) = sh(&lab, "srv-1", "k3s --version");
    assert!(v.starts_with("k3s version v1.33.5+k3s1 (stand-in)"), "{v}");
    assert_eq!(
        sh(&lab, "srv-1", "systemctl is-active k3s").1.trim(),
        "active"
    );
    assert_eq!(
        sh(&lab, "srv-1", "stat -c %a /etc/rancher/k3s/k3s.yaml")
            .1
            .trim(),
        "600"
    );
    assert_eq!(
        sh(&lab, "srv-1", "kubectl get --raw /readyz").1.trim(),
        "ok"
    );

    // a server pointed at a non-server fails; the right one joins
    write_config(
        &lab,
        "srv-2",
        &format!("token: topsecret\nserver: https://{}:6443\n", ip(2)),
    );
    let (code, out) = sh(&lab, "srv-2", INSTALL_SERVER);
    assert_eq!(code, 1);
    assert!(out.contains("connection refused"), "{out}");
    write_config(
        &lab,
        "srv-2",
        &format!("token: topsecret\nserver: https://{}:6443\n", ip(0)),
    );
    assert_eq!(sh(&lab, "srv-2", "systemctl restart k3s").0, 0);

    // agent
    write_config(
        &lab,
        "agt-1",
        &format!(
            "token: topsecret\nserver: https://{}:6443\nnode-label: [tier=app]\n",
            ip(1)
        ),
    );
    let (code, out) = sh(
        &lab,
        "agt-1",
        "INSTALL_K3S_SKIP_DOWNLOAD=true INSTALL_K3S_EXEC=agent /var/lib/rancher/k3s-install.sh",
    );
    assert_eq!(code, 0, "{out}");

    let cluster = lab.standin_cluster().unwrap().expect("cluster");
    assert_eq!(
        cluster.etcd_members,
        vec!["srv-1".to_string(), "srv-2".to_string()]
    );
    assert_eq!(cluster.nodes["agt-1"].role, Role::Agent);
    assert_eq!(cluster.nodes["agt-1"].address, ip(2));
    assert_eq!(cluster.nodes["agt-1"].labels["tier"], "app");

    let (code, json) = sh(&lab, "srv-2", "k3s kubectl get nodes -o json");
    assert_eq!(code, 0, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 3);

    // records: ordered, env without the token, config captured at service start
    let recs = lab.standin_records("srv-1").unwrap();
    let install = recs.iter().find(|r| r.program == "k3s-install.sh").unwrap();
    assert_eq!(
        install.env.get("INSTALL_K3S_EXEC").map(String::as_str),
        Some("server")
    );
    assert!(!install.env.contains_key("K3S_TOKEN"));
    assert!(install
        .config_yaml
        .as_deref()
        .unwrap()
        .contains("cluster-init: true"));
    for r in &recs {
        assert!(!serde_json::to_string(&r.env).unwrap().contains("topsecret"));
    }
    assert!(recs.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));

    // a killed server: NotReady; the provider's view via kubectl on the other server
    lab.kill_host("srv-1").unwrap();
    let c = lab.standin_cluster().unwrap().unwrap();
    assert!(!c.nodes["srv-1"].ready);
    lab.revive_host("srv-1").unwrap();
    assert!(lab.standin_cluster().unwrap().unwrap().nodes["srv-1"].ready);
    assert_eq!(
        lab.standin_records("srv-1")
            .unwrap()
            .last()
            .unwrap()
            .program,
        "boot"
    );

    // upgrade srv-2: a stand-in copy that reports another version, then a restart
    let newer = lab.standin_with_version("v1.34.1+k3s1").unwrap();
    scp(&lab, "srv-2", &newer, "/usr/local/bin/k3s");
    assert!(sh(&lab, "srv-2", "k3s --version")
        .1
        .starts_with("k3s version v1.34.1+k3s1 (stand-in)"));
    assert_eq!(sh(&lab, "srv-2", "systemctl restart k3s").0, 0);
    let c = lab.standin_cluster().unwrap().unwrap();
    assert_eq!(c.nodes["srv-2"].version, "v1.34.1+k3s1");
    assert_eq!(c.nodes["srv-1"].version, "v1.33.5+k3s1");

    // uninstall the agent: exactly the k3s paths go, the node is NotReady
    let (code, out) = sh(&lab, "agt-1", "k3s-agent-uninstall.sh");
    assert_eq!(code, 0, "{out}");
    let (_, ls) = sh(
        &lab,
        "agt-1",
        "ls /usr/local/bin /etc/rancher /etc/systemd/system",
    );
    assert!(!ls.contains("k3s"), "{ls}");
    assert!(
        ls.contains("systemctl"),
        "the systemd shim must survive: {ls}"
    );
    assert!(!lab.standin_cluster().unwrap().unwrap().nodes["agt-1"].ready);
}

//! The certificate check on lab hosts: real certificates (openssl) at k3s's paths, read with the
//! node's own `openssl` over real OpenSSH. Needs root.

use ffe_core::ssh::SshPool;
use ffe_lab::lab::{Lab, LabSpec};
use ffe_lab::pki::TestCa;
use ffe_ops::Status;

mod support;
use support::lab_inventory;

#[tokio::test(flavor = "multi_thread")]
async fn the_first_certificate_to_expire_decides_and_agents_are_read_too() {
    let hosts = ["ce-master-0", "ce-master-1", "ce-worker-0", "ce-worker-1"];
    let lab = Lab::create(LabSpec {
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        backup_mount: "/mnt/backups".into(),
        ssh_port: 22,
    })
    .unwrap();
    let ca = TestCa::new(&lab.dir().join("certs-ca")).unwrap();
    // (host, file under /var/lib/rancher/k3s, days valid)
    let placed = [
        ("ce-master-0", "server/tls/serving-kube-apiserver.crt", 365),
        ("ce-master-0", "server/tls/etcd/peer-server-client.crt", 300),
        ("ce-master-0", "agent/client-kubelet.crt", 365),
        ("ce-master-1", "server/tls/client-admin.crt", 365),
        ("ce-master-1", "server/tls/etcd/client.crt", 20),
        ("ce-worker-0", "agent/serving-kubelet.crt", 3),
    ];
    for (i, (host, file, days)) in placed.iter().enumerate() {
        let (crt, _) = ca.issue_valid(&format!("c{i}"), &[], *days).unwrap();
        let to = lab
            .host(host)
            .unwrap()
            .root_dir
            .join("var/lib/rancher/k3s")
            .join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(crt, to).unwrap();
    }
    let inv = lab_inventory(&lab);
    let pool = SshPool::new(inv.ssh.clone());
    let checks = ffe_ops::verify::certs(&pool, &inv).await;
    pool.close_all().await;
    let by = |h: &str| checks.iter().find(|c| c.subject == h).unwrap();

    let m0 = by("ce-master-0");
    assert_eq!(m0.status, Status::Pass, "{m0:?}");
    // A certificate made for N days has N-1 whole days left, or N within its first second.
    let in_days = |e: &str, n: i64| {
        e.ends_with(&format!(" in {} days", n - 1)) || e.ends_with(&format!(" in {n} days"))
    };
    assert!(
        m0.evidence.starts_with("3 certificates; the first to expire is /var/lib/rancher/k3s/server/tls/etcd/peer-server-client.crt in ")
            && in_days(&m0.evidence, 300),
        "{m0:?}"
    );
    let m1 = by("ce-master-1");
    assert_eq!(m1.status, Status::Warn, "{m1:?}");
    assert!(
        m1.evidence.contains("etcd/client.crt in ") && in_days(&m1.evidence, 20),
        "{m1:?}"
    );
    assert!(m1.hint.as_deref().unwrap().contains("120 days"), "{m1:?}");
    let w0 = by("ce-worker-0");
    assert_eq!(w0.status, Status::Fail, "{w0:?}");
    assert!(
        w0.evidence.contains("agent/serving-kubelet.crt in ") && in_days(&w0.evidence, 3),
        "{w0:?}"
    );
    let w1 = by("ce-worker-1");
    assert_eq!(w1.status, Status::Fail, "{w1:?}");
    assert!(w1.evidence.contains("no k3s certificate"), "{w1:?}");
}

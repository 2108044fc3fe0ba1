//! The etcd checks against a real 3-member etcd laid out as k3s lays out its embedded etcd
//! (TLS, client certificates required, k3s's credential paths, k3s-style member names), read over
//! real OpenSSH from each lab host. Needs root. Stand-in, named: the JSON API is on
//! `127.0.0.1:2379` here (this etcd cannot serve it on k3s's separate port 2382; see
//! `ffe_lab::etcd`).

use ffe_core::k3s::etcd::{Endpoint, K3S_ETCD_CA, K3S_ETCD_CLIENT_CERT, K3S_ETCD_CLIENT_KEY};
use ffe_core::ssh::SshPool;
use ffe_lab::etcd::{CredentialPaths, K3sEtcd, LAB_API_URL};
use ffe_lab::lab::{Lab, LabSpec};
use ffe_ops::Status;

mod support;
use support::{lab_inventory, row};

const HOSTS: [&str; 3] = ["et-master-0", "et-master-1", "et-master-2"];

#[tokio::test(flavor = "multi_thread")]
async fn etcd_checks_pass_on_a_healthy_cluster_and_name_a_stopped_member() {
    let lab = Lab::create(LabSpec {
        hosts: HOSTS.iter().map(|h| h.to_string()).collect(),
        backup_mount: "/mnt/backups".into(),
        ssh_port: 22,
    })
    .unwrap();
    let etcd = K3sEtcd::start(
        &lab,
        &HOSTS,
        CredentialPaths {
            ca: K3S_ETCD_CA,
            cert: K3S_ETCD_CLIENT_CERT,
            key: K3S_ETCD_CLIENT_KEY,
        },
    )
    .unwrap();
    let inv = lab_inventory(&lab);
    let pool = SshPool::new(inv.ssh.clone());
    let endpoint = Endpoint {
        url: LAB_API_URL.into(),
        ..Endpoint::default()
    };

    let checks = ffe_ops::verify::etcd(&pool, &inv, &endpoint).await;
    for c in &checks {
        assert_eq!(c.status, Status::Pass, "{checks:#?}");
        assert!(ffe_ops::verify::ETCD_CHECK_IDS.contains(&c.id));
    }
    let members = row(&checks, "etcd.members", "cluster");
    assert!(
        members
            .evidence
            .contains("3 voting members = the 3 masters"),
        "{members:?}"
    );
    // The leader named is the member etcd itself reports as leader (k3s-style name -> node).
    let leader = row(&checks, "etcd.leader", "cluster");
    assert!(leader.evidence.contains("agreed by 3 of 3"), "{leader:?}");
    assert!(
        HOSTS
            .iter()
            .any(|h| leader.evidence.starts_with(&format!("leader {h} "))),
        "{leader:?}"
    );

    // A follower killed (killing the leader would leave the others electing for a moment,
    // which the checks would rightly report): its row fails naming it; the other two still
    // agree on the leader.
    let leader_host = HOSTS
        .iter()
        .position(|h| leader.evidence.starts_with(&format!("leader {h} ")))
        .unwrap();
    let victim = (leader_host + 1) % 3;
    let survivor = (leader_host + 2) % 3;
    etcd.kill(victim).unwrap();
    let checks = ffe_ops::verify::etcd(&pool, &inv, &endpoint).await;
    let dead = row(&checks, "etcd.health", HOSTS[victim]);
    assert_eq!(dead.status, Status::Fail, "{dead:?}");
    assert!(dead.evidence.contains("did not answer"), "{dead:?}");
    assert_eq!(
        row(&checks, "etcd.health", HOSTS[survivor]).status,
        Status::Pass,
        "{checks:#?}"
    );
    let leader = row(&checks, "etcd.leader", "cluster");
    assert_eq!(leader.status, Status::Pass, "{leader:?}");
    assert!(leader.evidence.contains("agreed by 2 of 3"), "{leader:?}");

    // Wrong credentials (another CA than the member's): a TLS failure, named per node.
    let wrong = Endpoint {
        url: LAB_API_URL.into(),
        ca: "/etc/ssl/certs/ca-certificates.crt".into(),
        ..Endpoint::default()
    };
    etcd.restart(victim).unwrap();
    let checks = ffe_ops::verify::etcd(&pool, &inv, &wrong).await;
    for h in HOSTS {
        let r = row(&checks, "etcd.health", h);
        assert_eq!(r.status, Status::Fail, "{r:?}");
        assert!(r.evidence.contains("curl exit"), "{r:?}");
    }
    assert_eq!(
        row(&checks, "etcd.members", "cluster").status,
        Status::Error
    );
    pool.close_all().await;
}

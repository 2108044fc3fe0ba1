//! The Vault checks against a real 3-member OpenBao Raft cluster on lab hosts (TLS with a lab
//! CA, the members' `sys/health` over HTTPS from this machine, as the operator's machine reaches
//! `vault_member_addresses`). Needs root and `bao` (scripts/install-deps.sh).

use std::time::Duration;

use ffe_core::vault::Member;
use ffe_lab::lab::{Lab, LabSpec};
use ffe_lab::vault::{BaoCluster, BaoSpec};
use ffe_ops::Status;

mod support;
use support::row;

const HOSTS: [&str; 3] = ["vv-vault-0", "vv-vault-1", "vv-vault-2"];

#[tokio::test(flavor = "multi_thread")]
async fn vault_checks_pass_when_unsealed_and_name_a_sealed_or_dead_member() {
    let lab = Lab::create(LabSpec {
        hosts: HOSTS.iter().map(|h| h.to_string()).collect(),
        backup_mount: "/mnt/backups".into(),
        ssh_port: 22,
    })
    .unwrap();
    let c = BaoCluster::create(
        &lab,
        &HOSTS,
        BaoSpec {
            performance_multiplier: 1,
            audit_file_path: None,
        },
    )
    .unwrap();
    c.start_all().unwrap();
    let addresses: Vec<String> = c.members().iter().map(|m| m.address()).collect();
    let members = Member::all(&addresses, &c.ca_cert_pem().unwrap()).unwrap();

    // Started, not initialised: every member says so.
    let checks = ffe_ops::verify::vault(&members).await;
    assert_eq!(
        row(&checks, "vault.initialized", "cluster").status,
        Status::Fail
    );
    assert!(row(&checks, "vault.unsealed", &addresses[0])
        .evidence
        .contains("HTTP 501: not initialised"));

    let init = c.init(0, 1, 1).unwrap();
    c.unseal_all(&init.keys_base64).unwrap();
    let active = c.wait_converged(Duration::from_secs(60)).unwrap();
    let checks = ffe_ops::verify::vault(&members).await;
    for ch in &checks {
        assert_eq!(ch.status, Status::Pass, "{checks:#?}");
        assert!(ffe_ops::verify::VAULT_CHECK_IDS.contains(&ch.id));
    }
    assert_eq!(
        row(&checks, "vault.active", "cluster").evidence,
        format!("one active member: {}", addresses[active])
    );

    // A standby restarted comes back sealed: its row fails, the cluster still has its leader.
    let standby = (active + 1) % 3;
    c.kill(standby).unwrap();
    c.start(standby).unwrap();
    let checks = ffe_ops::verify::vault(&members).await;
    let sealed = row(&checks, "vault.unsealed", &addresses[standby]);
    assert_eq!(sealed.status, Status::Fail, "{sealed:?}");
    assert!(
        sealed.evidence.starts_with("HTTP 503: sealed"),
        "{sealed:?}"
    );
    assert_eq!(row(&checks, "vault.active", "cluster").status, Status::Pass);

    // Killed: no answer, named; the run still ends (each call is bounded).
    c.kill(standby).unwrap();
    let checks = ffe_ops::verify::vault(&members).await;
    let dead = row(&checks, "vault.unsealed", &addresses[standby]);
    assert_eq!(dead.status, Status::Fail, "{dead:?}");
    assert!(dead.evidence.starts_with("did not answer"), "{dead:?}");
}

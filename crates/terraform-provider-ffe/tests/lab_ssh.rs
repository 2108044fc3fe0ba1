//! ffe-core's SSH steps against a real OpenSSH server on an ffe-lab host (needs root): a step
//! over its limit stops on the node too, and a failed remote write reports the node's error.

use std::time::{Duration, Instant};

use ffe_core::ssh::{SshError, SshPool, SshSettings, StdinSource, Target};
use ffe_lab::lab::{Lab, LabSpec};

fn lab_and_pool() -> (Lab, SshPool, Target) {
    let lab = Lab::create(LabSpec {
        hosts: vec!["ssh-0".into()],
        backup_mount: "/mnt/backups".into(),
        ssh_port: 22,
    })
    .expect("lab");
    let pool = SshPool::new(SshSettings {
        private_key_path: Some(lab.client_key()),
        known_hosts_file: Some(lab.known_hosts()),
        connect_timeout: Duration::from_secs(5),
        ..SshSettings::default()
    });
    let ip = lab.host("ssh-0").unwrap().ip.to_string();
    (lab, pool, Target::new("ssh-0", ip))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_over_its_limit_times_out_and_leaves_nothing_running() {
    let (_lab, pool, t) = lab_and_pool();
    let started = Instant::now();
    let err = pool
        .run_within(
            &t,
            "sleepy step",
            "sleep 41; echo done",
            Duration::from_secs(2),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::Timeout { secs: 2, .. }), "{err}");
    assert!(err.to_string().contains("sleepy step"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // The remote command was stopped as well, not left behind.
    let left = pool
        .run_status(&t, "look for leftovers", "pgrep -f 'slee[p] 41'", None)
        .await
        .unwrap();
    assert_eq!(left.code, 1, "still running on the node: {}", left.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_remote_write_reports_the_nodes_error_not_a_broken_connection() {
    let (_lab, pool, t) = lab_and_pool();
    // More than a pipe buffer, so the write is still going when the remote side gives up.
    let data = vec![b'x'; 4 << 20];
    let err = pool
        .write_file(
            &t,
            "write into a file that is not a directory",
            "/etc/hostname/sub/file",
            0o600,
            StdinSource::Bytes(&data),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::Failed { .. }), "{err}");
    assert!(err.to_string().contains("Not a directory"), "{err}");
}

//! Lab hosts against the real kernel and OpenSSH (needs root).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ffe_lab::lab::{pid_alive, slot_dir, Lab, LabSpec};

const BACKUP: &str = "/mnt/ffe-lab-test-backups";

fn lab(hosts: &[&str]) -> Lab {
    Lab::create(LabSpec {
        hosts: hosts.iter().map(|s| s.to_string()).collect(),
        backup_mount: PathBuf::from(BACKUP),
        ssh_port: 22,
    })
    .expect("lab create")
}

fn sh(lab: &Lab, host: &str, cmd: &str) -> (i32, String, String) {
    let out = lab.ssh(host, cmd).unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

fn ip_out(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", name])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn netns_exists(name: &str) -> bool {
    ip_out(&["netns", "list"])
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

#[test]
fn hosts_are_isolated_over_real_ssh() {
    let lab = lab(&["alpha", "beta"]);
    let (a, b) = (&lab.hosts()[0], &lab.hosts()[1]);
    assert_ne!(a.ip, b.ip);
    assert_eq!(a.ip.octets()[..3], [10, 210, lab.slot()]);

    // real client, pinned known_hosts, hostnames differ
    assert_eq!(
        sh(&lab, "alpha", "hostname"),
        (0, "alpha".into(), String::new())
    );
    assert_eq!(sh(&lab, "beta", "hostname").1, "beta");
    let kh = std::fs::read_to_string(lab.known_hosts()).unwrap();
    assert!(kh.contains(&format!("{} ssh-ed25519 ", a.ip)));

    // a wrong pinned key is refused (StrictHostKeyChecking)
    let bad_kh = lab.dir().join("keys/bad_known_hosts");
    let swapped = kh
        .replace(&a.ip.to_string(), "TMP")
        .replace(&b.ip.to_string(), &a.ip.to_string());
    std::fs::write(&bad_kh, swapped).unwrap();
    let st = Command::new("ssh")
        .args(["-F", "/dev/null", "-i"])
        .arg(lab.client_key())
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
        .arg(format!("-oUserKnownHostsFile={}", bad_kh.display()))
        .arg(format!("root@{}", a.ip))
        .arg("true")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(255));

    // /etc/rancher is per host and not the real one
    let probe = format!("probe-{}", lab.slot());
    assert_eq!(
        sh(&lab, "alpha", &format!("echo hi > /etc/rancher/{probe}")).0,
        0
    );
    assert_eq!(
        sh(&lab, "alpha", &format!("cat /etc/rancher/{probe}")).1,
        "hi"
    );
    assert_ne!(sh(&lab, "beta", &format!("cat /etc/rancher/{probe}")).0, 0);
    assert!(!Path::new("/etc/rancher").join(&probe).exists());
    assert!(a.root_dir.join("etc/rancher").join(&probe).is_file());
    for d in [
        "/var/lib/rancher",
        "/usr/local/bin",
        "/etc/systemd/system",
        "/etc/sysctl.d",
        "/etc/modules-load.d",
    ] {
        let (code, out, _) = sh(&lab, "beta", &format!("touch {d}/{probe} && ls {d}"));
        assert_eq!(code, 0, "{d}");
        assert!(out.contains(&probe));
        assert!(
            !Path::new(d).join(&probe).exists(),
            "{d} leaked to the real fs"
        );
    }
    assert!(sh(&lab, "alpha", "cat /etc/fstab")
        .1
        .contains("ffe-lab host alpha"));

    // the backup mount is shared between hosts and is the lab's backup dir
    assert_eq!(
        sh(&lab, "alpha", &format!("echo shared > {BACKUP}/{probe}")).0,
        0
    );
    assert_eq!(
        sh(&lab, "beta", &format!("cat {BACKUP}/{probe}")).1,
        "shared"
    );
    assert!(lab.backup_dir().join(&probe).is_file());
    assert!(!Path::new(BACKUP).join(&probe).exists());

    // no default route; the /24 works
    let (code, _, err) = sh(&lab, "alpha", "ip route get 1.1.1.1");
    assert_ne!(code, 0);
    assert!(err.contains("unreachable"), "{err}");
    assert_eq!(sh(&lab, "alpha", &format!("ip route get {}", b.ip)).0, 0);
    assert_eq!(
        ip_out(&["-n", &a.netns, "route", "show", "default"]).trim(),
        ""
    );

    // the systemd shim is the stand-in
    let (code, out, _) = sh(&lab, "alpha", "systemctl is-active chrony");
    assert_eq!((code, out.as_str()), (0, "active"));
    let recs = lab.standin_records("alpha").unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].program, "systemctl");
    assert_eq!(recs[0].argv, vec!["is-active", "chrony"]);
    assert!(lab.standin_records("beta").unwrap().is_empty());
}

#[test]
fn kill_host_and_revive_host() {
    let lab = lab(&["k1", "k2"]);
    let before = lab.host_pids("k1").unwrap();
    assert!(!before.is_empty());
    lab.kill_host("k1").unwrap();
    for p in &before {
        assert!(!pid_alive(*p), "pid {p} survived kill_host");
    }
    assert!(lab.host_pids("k1").unwrap().is_empty());
    let (code, _, _) = sh(&lab, "k1", "true");
    assert_eq!(code, 255, "ssh to a killed host must fail");
    assert_eq!(sh(&lab, "k2", "hostname").1, "k2", "other host unaffected");
    lab.revive_host("k1").unwrap();
    assert_eq!(sh(&lab, "k1", "hostname").1, "k1");
    assert_eq!(sh(&lab, "k1", "ls /etc/fstab").0, 0);
    assert!(
        sh(&lab, "k1", "cat /etc/fstab").1.contains("host k1"),
        "mounts restored"
    );
}

/// What a lab owns, by identity (a later lab may reuse the same slot and names at once).
struct Footprint {
    slot: u8,
    sentinel: PathBuf,
    /// netns name -> nsfs inode
    netns: Vec<(String, u64)>,
    /// link name -> ifindex
    links: Vec<(String, String)>,
    pids: Vec<i32>,
}

fn netns_inode(name: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/run/netns/{name}"))
        .ok()
        .map(|m| m.ino())
}

fn ifindex(name: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex")).ok()
}

fn footprint(lab: &Lab) -> Footprint {
    let mut pids = Vec::new();
    for h in lab.hosts() {
        pids.extend(lab.host_pids(&h.name).unwrap());
    }
    let sentinel = lab.dir().join(format!("sentinel-{}", std::process::id()));
    std::fs::write(&sentinel, "x").unwrap();
    Footprint {
        slot: lab.slot(),
        sentinel,
        netns: lab
            .hosts()
            .iter()
            .map(|h| {
                (
                    h.netns.clone(),
                    netns_inode(&h.netns).expect("netns exists"),
                )
            })
            .collect(),
        links: lab
            .hosts()
            .iter()
            .map(|h| h.veth.clone())
            .chain([format!("fflb{}", lab.slot())])
            .map(|l| {
                let idx = ifindex(&l).expect("link exists");
                (l, idx)
            })
            .collect(),
        pids,
    }
}

fn assert_gone(f: &Footprint) {
    for (ns, ino) in &f.netns {
        assert_ne!(netns_inode(ns), Some(*ino), "netns {ns} left");
    }
    for (l, idx) in &f.links {
        assert_ne!(ifindex(l).as_ref(), Some(idx), "link {l} left");
    }
    for p in &f.pids {
        assert!(!pid_alive(*p), "pid {p} left");
    }
    assert!(!f.sentinel.exists(), "{} left", f.sentinel.display());
}

#[test]
fn cleanup_leaves_nothing() {
    let mut lab = lab(&["c1", "c2"]);
    let f = footprint(&lab);
    assert!(f.pids.len() >= 2);
    assert!(f.sentinel.exists());
    lab.cleanup().unwrap();
    assert_gone(&f);
    // the slot is released (or already taken by another lab, never still ours)
    let owner = std::fs::read_to_string(slot_dir(f.slot).join("owner.json")).unwrap_or_default();
    assert!(!owner.contains(&format!("\"pid\":{},", std::process::id())));
    lab.cleanup().unwrap(); // idempotent
}

#[test]
fn lab_dropped_during_panic_is_cleaned() {
    let seen = std::sync::Mutex::new(None);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = lab(&["p1"]);
        *seen.lock().unwrap() = Some(footprint(&lab));
        panic!("test panic with a live lab");
    }));
    assert!(r.is_err());
    let f = seen.lock().unwrap().take().expect("lab was created");
    assert_gone(&f);
}

/// Helper run in a child process by `dead_owner_slot_is_cleaned_by_next_create`.
#[test]
fn crash_helper() {
    if std::env::var_os("FFE_LAB_CRASH_HELPER").is_none() {
        return;
    }
    let lab = lab(&["z1"]);
    println!("SLOT {}", lab.slot());
    std::thread::sleep(std::time::Duration::from_secs(120));
    drop(lab);
}

#[test]
fn dead_owner_slot_is_cleaned_by_next_create() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_helper",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("FFE_LAB_CRASH_HELPER", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reader = BufReader::new(child.stdout.take().unwrap());
    let slot: u8 = reader
        .lines()
        .map_while(Result::ok)
        .inspect(|l| eprintln!("helper: {l}"))
        .find_map(|l| {
            l.split_once("SLOT ")
                .map(|(_, s)| s.trim().parse().unwrap())
        })
        .expect("helper printed its slot");
    let ns = format!("ffelab{slot}-1");
    let leftover_pids: Vec<i32> = ip_out(&["netns", "pids", &ns])
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert!(!leftover_pids.is_empty());
    // crash: SIGKILL the owner, its Drop never runs
    child.kill().unwrap();
    let _ = child.wait();
    let child_pid = child.id();
    // No precondition on the leftovers here: another lab test running in parallel may already
    // have reaped this dead slot (that is the behaviour under test, from another process).
    let next = lab(&["n1"]);
    for p in &leftover_pids {
        assert!(!pid_alive(*p), "leftover pid {p} not killed");
    }
    let owner = std::fs::read_to_string(slot_dir(slot).join("owner.json")).unwrap_or_default();
    assert!(
        !owner.contains(&format!("\"pid\":{child_pid},")),
        "slot {slot} still owned by the dead process"
    );
    if next.slot() != slot && !slot_dir(slot).exists() {
        assert!(!netns_exists(&ns), "leftover netns {ns}");
        assert!(!link_exists(&format!("fflb{slot}")));
    }
}

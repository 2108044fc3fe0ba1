//! `ip` helpers: bridge, namespaces, veth pairs, PIDs in a namespace.

use std::process::Command;
use std::time::{Duration, Instant};

use super::slot::pid_alive;
use super::LabError;

pub fn bridge_name(n: u8) -> String {
    format!("fflb{n}")
}

pub fn netns_name(n: u8, i: usize) -> String {
    format!("ffelab{n}-{i}")
}

/// Host side of host i's veth pair (<= 15 chars: "ffv250-200").
pub fn veth_name(n: u8, i: usize) -> String {
    format!("ffv{n}-{i}")
}

pub fn peer_name(n: u8, i: usize) -> String {
    format!("ffp{n}-{i}")
}

pub fn run_ip(args: &[&str]) -> Result<String, LabError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| LabError::Io {
            what: "spawn ip".into(),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(LabError::Command {
            cmd: format!("ip {}", args.join(" ")),
            status: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

pub fn list_netns() -> Result<Vec<String>, LabError> {
    Ok(run_ip(&["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect())
}

pub fn list_links() -> Result<Vec<String>, LabError> {
    Ok(run_ip(&["-o", "link", "show"])?
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|name| name.trim().split('@').next().unwrap_or("").to_string())
        .filter(|n| !n.is_empty())
        .collect())
}

pub fn netns_pids(ns: &str) -> Vec<i32> {
    run_ip(&["netns", "pids", ns])
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// SIGKILL every process in `ns` by PID (never by name) until none is left (bounded).
pub fn kill_netns_pids(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = netns_pids(ns);
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        kill_pids(&pids);
    }
}

/// SIGKILL `pids` (by PID, never by name) and wait up to 1 s for them to be gone.
pub fn kill_pids(pids: &[i32]) {
    for pid in pids {
        // SAFETY: kill(2) with a concrete PID; no memory is passed.
        unsafe {
            libc::kill(*pid, libc::SIGKILL);
        }
    }
    let until = Instant::now() + Duration::from_secs(1);
    while pids.iter().any(|p| pid_alive(*p)) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn del_netns(ns: &str) -> Result<(), LabError> {
    run_ip(&["netns", "del", ns]).map(|_| ())
}

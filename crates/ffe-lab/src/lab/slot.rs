//! Slot allocation under `/run/ffe-lab/slots/N` and clean-up of slots left by crashed runs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::net;
use super::LabError;
use crate::standin::lock::FileLock;

pub const RUN_DIR: &str = "/run/ffe-lab";
pub const MAX_SLOT: u8 = 250;

/// `/run/ffe-lab/slots/N/owner.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Owner {
    pub pid: i32,
    /// Start time (clock ticks since boot) of the owner process, guards against PID reuse.
    pub start_time: u64,
    /// The lab directory on the real filesystem.
    pub dir: PathBuf,
}

pub fn slots_dir() -> PathBuf {
    Path::new(RUN_DIR).join("slots")
}

pub fn slot_dir(n: u8) -> PathBuf {
    slots_dir().join(n.to_string())
}

/// Lab directory for slot `n`: `$TMPDIR/ffe-lab/N`.
pub fn lab_dir(n: u8) -> PathBuf {
    std::env::temp_dir().join("ffe-lab").join(n.to_string())
}

/// Field 22 of /proc/PID/stat (start time); `None` when the process is gone or a zombie.
pub fn proc_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // after ")": field 3 (state) is index 0, field 22 (starttime) is index 19
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

pub fn pid_alive(pid: i32) -> bool {
    proc_start_time(pid).is_some()
}

fn owner_alive(o: &Owner) -> bool {
    proc_start_time(o.pid) == Some(o.start_time)
}

fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> LabError {
    let what = format!("{what} {}", path.display());
    move |source| LabError::Io { what, source }
}

fn read_owner(n: u8) -> Option<Owner> {
    let bytes = std::fs::read(slot_dir(n).join("owner.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Allocate a free slot for this process (after cleaning slots whose owner died).
pub fn allocate() -> Result<u8, LabError> {
    let slots = slots_dir();
    std::fs::create_dir_all(&slots).map_err(io("create", &slots))?;
    let _lock = FileLock::exclusive(&Path::new(RUN_DIR).join("lock"))?;
    reap_stale()?;
    let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    let start_time = proc_start_time(pid).unwrap_or(0);
    for n in 1..=MAX_SLOT {
        let dir = slot_dir(n);
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                let owner = Owner {
                    pid,
                    start_time,
                    dir: lab_dir(n),
                };
                let path = dir.join("owner.json");
                let bytes = serde_json::to_vec(&owner).map_err(|e| LabError::Io {
                    what: "encode owner".into(),
                    source: std::io::Error::other(e),
                })?;
                std::fs::write(&path, bytes).map_err(io("write", &path))?;
                return Ok(n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io("create", &dir)(e)),
        }
    }
    Err(LabError::NoSlot)
}

/// Clean every slot whose owner process died (takes the run lock). `Lab::create` does this too.
pub fn reap_stale_labs() -> Result<(), LabError> {
    let slots = slots_dir();
    std::fs::create_dir_all(&slots).map_err(io("create", &slots))?;
    let _lock = FileLock::exclusive(&Path::new(RUN_DIR).join("lock"))?;
    reap_stale()
}

/// Clean every slot whose owner process is dead (caller holds the run lock).
fn reap_stale() -> Result<(), LabError> {
    let Ok(entries) = std::fs::read_dir(slots_dir()) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let Some(n) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u8>().ok())
            .filter(|n| (1..=MAX_SLOT).contains(n))
        else {
            continue;
        };
        let owner = read_owner(n);
        if owner.as_ref().is_some_and(owner_alive) {
            continue;
        }
        tracing::warn!(
            slot = n,
            ?owner,
            "ffe-lab: cleaning slot left by a dead owner"
        );
        destroy_slot(n)?;
    }
    Ok(())
}

/// Tear down everything slot `n` may own: processes in its netns, netns, links, dirs, slot dir.
pub fn destroy_slot(n: u8) -> Result<(), LabError> {
    let mut errors = Vec::new();
    for ns in net::list_netns()?
        .into_iter()
        .filter(|ns| ns.starts_with(&format!("ffelab{n}-")))
    {
        net::kill_netns_pids(&ns);
        if let Err(e) = net::del_netns(&ns) {
            errors.push(e.to_string());
        }
    }
    for link in net::list_links()?.into_iter().filter(|l| {
        l == &net::bridge_name(n)
            || l.starts_with(&format!("ffv{n}-"))
            || l.starts_with(&format!("ffp{n}-"))
    }) {
        // Deleting a netns removes its veth pair asynchronously: a vanished link is fine.
        if let Err(e) = net::run_ip(&["link", "del", &link]) {
            if net::list_links()?.contains(&link) {
                errors.push(e.to_string());
            }
        }
    }
    let dir = lab_dir(n);
    if let Err(e) = remove_lab_dir(&dir) {
        errors.push(e.to_string());
    }
    let sd = slot_dir(n);
    if sd.exists() {
        if let Err(e) = std::fs::remove_dir_all(&sd) {
            errors.push(format!("remove {}: {e}", sd.display()));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(LabError::Cleanup(errors.join("; ")))
    }
}

/// Remove a lab dir (only `$TMPDIR/ffe-lab/<N>`), lazily unmounting anything still mounted
/// under it in this mount namespace first. `remove_dir_all` never follows symlinks.
pub fn remove_lab_dir(dir: &Path) -> Result<(), LabError> {
    let base = std::env::temp_dir().join("ffe-lab");
    let is_lab_dir = dir.parent() == Some(base.as_path())
        && dir
            .file_name()
            .and_then(|s| s.to_str())
            .is_some_and(|s| s.parse::<u8>().is_ok());
    if !is_lab_dir {
        return Err(LabError::Cleanup(format!(
            "refusing to remove {}: not a lab dir under {}",
            dir.display(),
            base.display()
        )));
    }
    if !dir.exists() {
        return Ok(());
    }
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
        .filter(|m| Path::new(m).starts_with(dir))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let _ = std::process::Command::new("umount")
            .args(["-l", &m])
            .status();
    }
    std::fs::remove_dir_all(dir).map_err(io("remove", dir))
}

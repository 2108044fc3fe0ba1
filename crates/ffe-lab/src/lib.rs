//! ffe-lab: **test harness only** (never product code). Needs root.
//!
//! Parts:
//!
//! * [`lab`] — simulated hosts. Each host is a network namespace on a per-lab bridge, with its
//!   own mount + UTS namespace and a real OpenSSH `sshd`, so the provider reaches it over real SSH.
//! * [`vault`] — real OpenBao (`bao server`) members on lab hosts (Raft, TLS, retry_join), and
//!   [`terraform`] — the real `terraform` with this workspace's provider installed locally.
//! * [`standin`] — the **k3s stand-in** (binary `k3s-standin`). k3s cannot be obtained on this
//!   machine; the stand-in plays k3s's observable interface and records every call. It is not
//!   k3s: never count a stand-in result as a measured property of k3s.
//! * [`kube_api`] — the **Kubernetes API stand-in** (real nginx, recorded objects), and [`jobs`] —
//!   the **Job controller + kubelet stand-in** behind it (a Job's one container really run on a
//!   lab host).
//!
//! # Stable API (used by the provider's integration tests)
//!
//! ```no_run
//! use ffe_lab::lab::{Lab, LabSpec};
//! # fn main() -> Result<(), ffe_lab::lab::LabError> {
//! let lab = Lab::create(LabSpec {
//!     hosts: vec!["server-1".into(), "agent-1".into()],
//!     backup_mount: "/mnt/backups".into(),
//!     ssh_port: 22,
//! })?;
//! for h in lab.hosts() {
//!     // h.name, h.ip (10.210.N.(10+i), i 1-based), h.root_dir (host paths on the real fs), h.netns
//!     println!("{} {} {}", h.name, h.ip, h.root_dir.display());
//! }
//! let _key = lab.client_key();        // PathBuf, ed25519 private key for root@every host
//! let _kh = lab.known_hosts();        // PathBuf, `IP ssh-ed25519 KEY` per host
//! let out = lab.ssh("server-1", "hostname")?; // real ssh client, BatchMode, pinned host keys
//! assert!(out.status.success());
//! let _bin = ffe_lab::standin_binary(); // Option<PathBuf>: target/<profile>/k3s-standin to upload as k3s
//! let _recs = lab.standin_records("server-1")?; // Vec<StandinRecord>, in call order
//! let _cluster = lab.standin_cluster()?;        // Option<ClusterState> (nodes, etcd_members, token)
//! lab.kill_host("agent-1")?;   // SIGKILL its processes by PID, veth down, its node NotReady
//! lab.revive_host("agent-1")?; // veth up, sshd back, enabled k3s units started ("boot" record)
//! drop(lab); // or lab.cleanup(): processes, netns, bridge, dirs, slot — also on panic
//! # Ok(()) }
//! ```
//!
//! Also: `lab.slot()`, `lab.dir()`, `lab.gateway()`, `lab.backup_dir()` (the shared "NFS" dir,
//! mounted at `backup_mount` in every host), `lab.standin_path()` (the lab's own copy, which
//! `/usr/local/bin/systemctl` on every host links to), `lab.ssh_options()`, `lab.host_pids(name)`.
//!
//! # What a host looks like
//!
//! Slot N (1..=250, `/run/ffe-lab/slots/N/owner.json` holds the owner PID) gives bridge `fflbN`
//! with 10.210.N.1/24; host i gets netns `ffelabN-i`, veth `ffvN-i` (peer renamed `eth0`) and
//! 10.210.N.(10+i)/24, `lo` up, **no default route**. Its own copies of `/etc/rancher`,
//! `/var/lib/rancher`, `/usr/local/bin`, `/etc/systemd/system`, `/etc/sysctl.d`,
//! `/etc/modules-load.d`, `/etc/ffe` and `/etc/fstab` live under `root_dir` and are bind-mounted over the real
//! paths before sshd starts (empty mount-point dirs are created on the real fs if missing, and
//! left there). `/usr/local/bin/systemctl` is the stand-in (there is no systemd here).
//! Stale slots whose owner PID died are cleaned by the next `Lab::create`.
//!
//! # Using the stand-in as k3s
//!
//! Run `cargo build -p ffe-lab --bins` first (nextest builds the workspace's bins anyway). Upload
//! [`standin_binary`] as `/usr/local/bin/k3s` and again as the installer (any name ending in
//! `install.sh`), then run `INSTALL_K3S_SKIP_DOWNLOAD=true INSTALL_K3S_EXEC="server" ./install.sh`.
//! Settings are found in `standin.json` next to the executable or in the host's
//! `/var/lib/rancher/k3s-standin/standin.json` (written by the lab; also the lab-host marker
//! without which the stand-in refuses to change files). Reported version: [`STANDIN_VERSION`].

pub mod etcd;
pub mod jobs;
pub mod kube_api;
pub mod lab;
pub mod pki;
pub mod postgres;
pub mod standin;
pub mod terraform;
pub mod vault;

use std::path::{Path, PathBuf};

/// Version the stand-in reports (`k3s version v1.33.5+k3s1 (stand-in)`).
pub const STANDIN_VERSION: &str = "v1.33.5+k3s1";

const STANDIN_NAME: &str = "k3s-standin";

/// Path of the built `k3s-standin` binary: `$FFE_STANDIN_BIN` if set, else the first
/// `k3s-standin` found walking up from the current executable (a test binary lives in
/// `target/debug/deps/`, the stand-in in `target/debug/`). `None` if it was not built.
pub fn standin_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FFE_STANDIN_BIN").map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(4)
        .map(|d| d.join(STANDIN_NAME))
        .find(|p| p.is_file())
}

/// The lab's `install.sh` (`airgap_installer_path`): a small script, like k3s's own, that runs
/// the stand-in already uploaded as `/usr/local/bin/k3s` in its installer role.
pub fn standin_installer() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/k3s-standin-install.sh")
}

pub(crate) fn standin_search_note() -> String {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    format!("looked for {STANDIN_NAME} in $FFE_STANDIN_BIN and the directories above {exe}")
}

/// Wall-time figures of a benchmark's runs, as the `bench/` scripts print them:
/// `{"median", "min", "max", "all"}` in seconds (`null`s for no runs).
pub fn wall_stats(walls: &[f64]) -> serde_json::Value {
    let mut sorted = walls.to_vec();
    sorted.sort_by(f64::total_cmp);
    serde_json::json!({
        "median": sorted.get(sorted.len() / 2),
        "min": sorted.first(),
        "max": sorted.last(),
        "all": walls,
    })
}

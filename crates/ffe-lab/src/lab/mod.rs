//! Lab hosts: one network namespace + private mount/UTS namespace + real OpenSSH server per host,
//! on a per-lab bridge `fflbN` with 10.210.N.0/24 and no default route. See the crate docs.

mod net;
mod slot;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::standin::{self, ClusterState, Settings, StandinError, StandinRecord};

pub use net::kill_pids;
pub use slot::{lab_dir, pid_alive, reap_stale_labs, slot_dir, RUN_DIR};

/// Errors of the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("ffe-lab needs root (network namespaces, bind mounts)")]
    NotRoot,
    #[error("invalid lab spec: {0}")]
    BadSpec(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{cmd}` failed with exit {status}: {stderr}")]
    Command {
        cmd: String,
        status: i32,
        stderr: String,
    },
    #[error("no free lab slot in 1..=250 under /run/ffe-lab/slots")]
    NoSlot,
    #[error("k3s stand-in binary not found: {0}; run `cargo build -p ffe-lab --bins` first")]
    StandinMissing(String),
    #[error("host {host}: sshd did not accept connections on {addr} within {secs} s: {log}")]
    SshdTimeout {
        host: String,
        addr: SocketAddr,
        secs: u64,
        log: String,
    },
    #[error("unknown lab host {0:?}")]
    UnknownHost(String),
    #[error("lab cleanup incomplete: {0}")]
    Cleanup(String),
    #[error(transparent)]
    Standin(#[from] StandinError),
}

/// What to build: host names and the path the shared "NFS" dir is mounted at inside each host.
#[derive(Debug, Clone)]
pub struct LabSpec {
    pub hosts: Vec<String>,
    pub backup_mount: PathBuf,
    /// The port every host's sshd listens on (22 unless a test needs another one).
    pub ssh_port: u16,
}

/// One simulated host.
#[derive(Debug, Clone)]
pub struct LabHost {
    /// Host name (UTS) and records file name.
    pub name: String,
    /// 10.210.N.(10+i), i = 1-based position in [`LabSpec::hosts`].
    pub ip: Ipv4Addr,
    /// Where the host's own copies of the node paths live on the real filesystem
    /// (`root_dir/etc/rancher` is the host's `/etc/rancher`, etc.).
    pub root_dir: PathBuf,
    /// Network namespace name (`ffelabN-i`).
    pub netns: String,
    /// Host-side veth name (`ffvN-i`) on the bridge.
    pub veth: String,
}

/// Directories (and one file) every host owns, bind-mounted over the real paths.
pub const HOST_DIRS: &[&str] = &[
    "/etc/rancher",
    "/var/lib/rancher",
    "/usr/local/bin",
    "/etc/systemd/system",
    "/etc/sysctl.d",
    "/etc/modules-load.d",
    // ffe_host's firewall rules (ffe_core::firewall).
    "/etc/ffe",
];
pub const HOST_FILES: &[&str] = &["/etc/fstab"];
/// The kernel settings the kubelet checks under `protect-kernel-defaults` are not namespaced:
/// the lab hosts share this machine's kernel, where they must not be changed. Each host gets
/// its own copy of these `/proc/sys` files (starting at the machine's values) bind-mounted over
/// the real ones, as a stand-in for each node having a kernel of its own; `sysctl` on the host
/// writes and reads its copy.
pub fn host_sysctl_files() -> Vec<String> {
    crate::standin::hardening::KUBELET_SYSCTLS
        .iter()
        .map(|(k, _)| format!("/proc/sys/{k}"))
        .collect()
}
/// Bash sources root's `~/.bashrc` for every command sshd runs. The lab hosts share this
/// machine's `/root`, whose `.bashrc` is a developer's (here: `pyenv init`, ~100 processes and
/// ~100 ms per SSH step), which no fresh node has: each host gets Debian's default instead.
/// `/root` itself stays shared (the lab's Python tools live under it).
const ROOT_BASHRC: &str = "/root/.bashrc";
const DEBIAN_DEFAULT_BASHRC: &str = "/usr/share/base-files/dot.bashrc";

const SSHD: &str = "/usr/sbin/sshd";
const SSHD_WAIT: Duration = Duration::from_secs(15);

/// A running lab. Dropping it (also during a panic) tears everything down.
#[derive(Debug)]
pub struct Lab {
    slot: u8,
    dir: PathBuf,
    backup_mount: PathBuf,
    ssh_port: u16,
    hosts: Vec<LabHost>,
    children: Mutex<BTreeMap<String, Child>>,
    settings: Settings,
    cleaned: bool,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
    let what = what.into();
    move |source| LabError::Io { what, source }
}

fn run(cmd: &mut Command) -> Result<Output, LabError> {
    let out = cmd
        .output()
        .map_err(io(format!("spawn {:?}", cmd.get_program())))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(LabError::Command {
            cmd: format!("{cmd:?}"),
            status: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn keygen(path: &Path, comment: &str) -> Result<String, LabError> {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path))?;
    let pubkey = std::fs::read_to_string(path.with_extension("pub"))
        .map_err(io(format!("read {}.pub", path.display())))?;
    Ok(pubkey.trim().to_string())
}

fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 63
        && h.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !h.starts_with('-')
        && !h.ends_with('-')
}

fn validate(spec: &LabSpec) -> Result<(), LabError> {
    if spec.hosts.is_empty() || spec.hosts.len() > 200 {
        return Err(LabError::BadSpec("need 1..=200 hosts".into()));
    }
    let mut seen = std::collections::BTreeSet::new();
    for h in &spec.hosts {
        if !valid_hostname(h) {
            return Err(LabError::BadSpec(format!(
                "host name {h:?}: use lowercase letters, digits and '-'"
            )));
        }
        if !seen.insert(h) {
            return Err(LabError::BadSpec(format!("duplicate host name {h:?}")));
        }
    }
    let m = &spec.backup_mount;
    let forbidden = [
        "/", "/etc", "/usr", "/var", "/tmp", "/run", "/proc", "/sys", "/dev", "/bin", "/sbin",
        "/lib", "/lib64", "/root", "/home", "/boot", "/opt", "/mnt", "/srv",
    ];
    if !m.is_absolute() || forbidden.iter().any(|f| m == Path::new(f)) {
        return Err(LabError::BadSpec(format!(
            "backup_mount {}: must be an absolute path below a top-level dir, e.g. /mnt/backups",
            m.display()
        )));
    }
    if std::env::temp_dir().starts_with(m)
        || HOST_DIRS
            .iter()
            .chain(HOST_FILES)
            .any(|d| Path::new(d).starts_with(m) || m.starts_with(d))
    {
        return Err(LabError::BadSpec(format!(
            "backup_mount {} overlaps a host-owned or lab path",
            m.display()
        )));
    }
    Ok(())
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

impl Lab {
    /// Build a lab (see crate docs). Everything created is torn down again if this fails.
    pub fn create(spec: LabSpec) -> Result<Lab, LabError> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(LabError::NotRoot);
        }
        validate(&spec)?;
        let standin_bin = crate::standin_binary()
            .ok_or_else(|| LabError::StandinMissing(crate::standin_search_note()))?;
        let n = slot::allocate()?;
        let dir = slot::lab_dir(n);
        let settings = Settings {
            datastore_dir: dir.join("datastore"),
            records_dir: dir.join("records"),
            version: crate::STANDIN_VERSION.to_string(),
            join_hold_ms: standin::DEFAULT_JOIN_HOLD_MS,
            join_retry_ms: standin::DEFAULT_JOIN_RETRY_MS,
        };
        let hosts = spec
            .hosts
            .iter()
            .enumerate()
            .map(|(i0, name)| {
                let i = i0 + 1;
                LabHost {
                    name: name.clone(),
                    ip: Ipv4Addr::new(10, 210, n, u8::try_from(10 + i).unwrap_or(u8::MAX)),
                    root_dir: dir.join("hosts").join(name),
                    netns: net::netns_name(n, i),
                    veth: net::veth_name(n, i),
                }
            })
            .collect();
        // From here on, Drop cleans up whatever was created.
        let mut lab = Lab {
            slot: n,
            dir,
            backup_mount: spec.backup_mount.clone(),
            ssh_port: spec.ssh_port,
            hosts,
            children: Mutex::new(BTreeMap::new()),
            settings,
            cleaned: false,
        };
        lab.build(&standin_bin)?;
        Ok(lab)
    }

    fn build(&mut self, standin_bin: &Path) -> Result<(), LabError> {
        let dir = self.dir.clone();
        if dir.exists() {
            slot::remove_lab_dir(&dir)?;
        }
        for sub in ["bin", "records", "datastore", "shared", "keys", "hosts"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).map_err(io(format!("create {}", p.display())))?;
        }
        // The stand-in binary copy + its settings sidecar.
        let bin = self.standin_path();
        std::fs::copy(standin_bin, &bin).map_err(io(format!(
            "copy {} to {}",
            standin_bin.display(),
            bin.display()
        )))?;
        let settings_json =
            serde_json::to_vec_pretty(&self.settings).map_err(|e| LabError::Io {
                what: "encode standin.json".into(),
                source: std::io::Error::other(e),
            })?;
        let sidecar = dir.join("bin/standin.json");
        std::fs::write(&sidecar, &settings_json)
            .map_err(io(format!("write {}", sidecar.display())))?;
        // Client key.
        let client_pub = keygen(&self.client_key(), &format!("ffe-lab-{}", self.slot))?;
        let ak = dir.join("keys/authorized_keys");
        std::fs::write(&ak, format!("{client_pub}\n")).map_err(io("write authorized_keys"))?;
        // Mount points on the real filesystem (empty dirs; the real content is never touched).
        std::fs::create_dir_all("/run/sshd").map_err(io("create /run/sshd"))?;
        for d in HOST_DIRS {
            std::fs::create_dir_all(d).map_err(io(format!("create mount point {d}")))?;
        }
        for f in HOST_FILES {
            if !Path::new(f).exists() {
                std::fs::write(f, "").map_err(io(format!("create mount point {f}")))?;
            }
        }
        std::fs::create_dir_all(&self.backup_mount)
            .map_err(io(format!("create {}", self.backup_mount.display())))?;
        // Network.
        let br = net::bridge_name(self.slot);
        net::run_ip(&["link", "add", &br, "type", "bridge"])?;
        net::run_ip(&[
            "addr",
            "add",
            &format!("10.210.{}.1/24", self.slot),
            "dev",
            &br,
        ])?;
        net::run_ip(&["link", "set", &br, "up"])?;
        let mut known_hosts = String::new();
        for (i0, h) in self.hosts.clone().iter().enumerate() {
            let peer = net::peer_name(self.slot, i0 + 1);
            net::run_ip(&["netns", "add", &h.netns])?;
            net::run_ip(&[
                "link", "add", &h.veth, "type", "veth", "peer", "name", &peer,
            ])?;
            net::run_ip(&["link", "set", &peer, "netns", &h.netns])?;
            net::run_ip(&["link", "set", &h.veth, "master", &br, "up"])?;
            let ns = h.netns.as_str();
            net::run_ip(&["-n", ns, "link", "set", &peer, "name", "eth0"])?;
            net::run_ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", h.ip),
                "dev",
                "eth0",
            ])?;
            net::run_ip(&["-n", ns, "link", "set", "eth0", "up"])?;
            net::run_ip(&["-n", ns, "link", "set", "lo", "up"])?;
            known_hosts.push_str(&self.prepare_host_fs(h, &settings_json)?);
        }
        let kh = self.known_hosts();
        std::fs::write(&kh, known_hosts).map_err(io("write known_hosts"))?;
        for h in self.hosts.clone() {
            self.spawn_sshd(&h)?;
        }
        for h in &self.hosts {
            self.wait_sshd(h)?;
        }
        Ok(())
    }

    /// Create the host's own dirs, settings marker, systemctl shim and sshd config/key.
    /// Returns its known_hosts line.
    fn prepare_host_fs(&self, h: &LabHost, settings_json: &[u8]) -> Result<String, LabError> {
        let r = &h.root_dir;
        for d in HOST_DIRS {
            let p = r.join(d.trim_start_matches('/'));
            std::fs::create_dir_all(&p).map_err(io(format!("create {}", p.display())))?;
        }
        for f in HOST_FILES {
            let p = r.join(f.trim_start_matches('/'));
            std::fs::write(&p, format!("# ffe-lab host {}: its own {f}\n", h.name))
                .map_err(io(format!("write {}", p.display())))?;
        }
        for f in host_sysctl_files() {
            let own = r
                .join("proc-sys")
                .join(f.trim_start_matches("/proc/sys/").replace('/', "."));
            if let Some(parent) = own.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(io(format!("create {}", parent.display())))?;
            }
            let machine = std::fs::read(&f).map_err(io(format!("read {f}")))?;
            std::fs::write(&own, machine).map_err(io(format!("write {}", own.display())))?;
        }
        let bashrc = std::fs::read(DEBIAN_DEFAULT_BASHRC)
            .unwrap_or_else(|_| b"# ffe-lab host: a fresh node's root .bashrc\n".to_vec());
        let own_bashrc = r.join("root.bashrc");
        std::fs::write(&own_bashrc, bashrc)
            .map_err(io(format!("write {}", own_bashrc.display())))?;
        let marker = r.join(standin::LAB_MARKER.trim_start_matches('/'));
        if let Some(parent) = marker.parent() {
            std::fs::create_dir_all(parent).map_err(io("create stand-in state dir"))?;
        }
        std::fs::write(&marker, settings_json)
            .map_err(io(format!("write {}", marker.display())))?;
        let shim = r.join("usr/local/bin/systemctl");
        std::os::unix::fs::symlink(self.standin_path(), &shim)
            .map_err(io(format!("symlink {}", shim.display())))?;
        let ssh = r.join("ssh");
        std::fs::create_dir_all(&ssh).map_err(io("create ssh dir"))?;
        let key = ssh.join("ssh_host_ed25519_key");
        let pubkey = keygen(&key, &format!("ffe-lab host {}", h.name))?;
        let config = format!(
            "ListenAddress {ip}:{port}\nHostKey {key}\nPidFile {pid}\nAuthorizedKeysFile {ak}\n\
             PermitRootLogin prohibit-password\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nStrictModes no\nUsePAM no\nUseDNS no\nPrintMotd no\n\
             MaxStartups 200\nMaxSessions 100\nSubsystem sftp internal-sftp\n",
            ip = h.ip,
            port = self.ssh_port,
            key = key.display(),
            pid = ssh.join("sshd.pid").display(),
            ak = self.dir.join("keys/authorized_keys").display(),
        );
        let cfg = ssh.join("sshd_config");
        std::fs::write(&cfg, config).map_err(io(format!("write {}", cfg.display())))?;
        let mut fields = pubkey.split_whitespace();
        let (kind, body) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
        // OpenSSH writes a non-default port as `[ip]:port` in known_hosts.
        let name = if self.ssh_port == 22 {
            h.ip.to_string()
        } else {
            format!("[{}]:{}", h.ip, self.ssh_port)
        };
        Ok(format!("{name} {kind} {body}\n"))
    }

    /// `ip netns exec NS unshare --mount --uts --propagation private -- sh -c '<mounts>; exec sshd'`.
    fn spawn_sshd(&self, h: &LabHost) -> Result<(), LabError> {
        let r = &h.root_dir;
        let mut script = format!("set -e\nhostname {}\n", h.name);
        for p in HOST_DIRS.iter().chain(HOST_FILES) {
            script.push_str(&format!(
                "mount --bind {} {}\n",
                shell_quote(&r.join(p.trim_start_matches('/'))),
                shell_quote(Path::new(p))
            ));
        }
        for f in host_sysctl_files() {
            let own = r
                .join("proc-sys")
                .join(f.trim_start_matches("/proc/sys/").replace('/', "."));
            script.push_str(&format!(
                "mount --bind {} {}\n",
                shell_quote(&own),
                shell_quote(Path::new(&f))
            ));
        }
        script.push_str(&format!(
            "if [ -f {ROOT_BASHRC} ]; then mount --bind {} {ROOT_BASHRC}; fi\n",
            shell_quote(&r.join("root.bashrc"))
        ));
        script.push_str(&format!(
            "mount --bind {} {}\nmkdir -p /run/sshd\nexec {SSHD} -D -e -f {}\n",
            shell_quote(&self.backup_dir()),
            shell_quote(&self.backup_mount),
            shell_quote(&r.join("ssh/sshd_config"))
        ));
        let log_path = r.join("ssh/sshd.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(format!("open {}", log_path.display())))?;
        let log2 = log.try_clone().map_err(io("dup log"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &h.netns, "unshare", "--mount", "--uts"])
            .args(["--propagation", "private", "--", "/bin/sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(io(format!("spawn sshd for {}", h.name)))?;
        self.children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(h.name.clone(), child);
        Ok(())
    }

    fn wait_sshd(&self, h: &LabHost) -> Result<(), LabError> {
        let addr = SocketAddr::from((h.ip, self.ssh_port));
        let deadline = Instant::now() + SSHD_WAIT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            let exited = self
                .children
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(&h.name)
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited || Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(h.root_dir.join("ssh/sshd.log")).unwrap_or_default();
                return Err(LabError::SshdTimeout {
                    host: h.name.clone(),
                    addr,
                    secs: SSHD_WAIT.as_secs(),
                    log: log.lines().rev().take(5).collect::<Vec<_>>().join(" | "),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The port every host's sshd listens on.
    pub fn ssh_port(&self) -> u16 {
        self.ssh_port
    }

    /// The lab's slot N (bridge `fflbN`, addresses 10.210.N.0/24).
    pub fn slot(&self) -> u8 {
        self.slot
    }

    pub fn hosts(&self) -> &[LabHost] {
        &self.hosts
    }

    pub fn host(&self, name: &str) -> Result<&LabHost, LabError> {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| LabError::UnknownHost(name.to_string()))
    }

    /// The lab directory on the real filesystem (`$TMPDIR/ffe-lab/N`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The bridge address of the lab (10.210.N.1), i.e. where the test process is seen from.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 210, self.slot, 1)
    }

    /// Private key (ed25519, mode 0600) accepted by every host for root.
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("keys/id_ed25519")
    }

    /// known_hosts with one `IP ssh-ed25519 KEY` line per host.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("keys/known_hosts")
    }

    /// The shared dir (real filesystem) that every host sees at `backup_mount`.
    pub fn backup_dir(&self) -> PathBuf {
        self.dir.join("shared")
    }

    /// The lab's copy of the stand-in (with `standin.json` next to it).
    pub fn standin_path(&self) -> PathBuf {
        self.dir.join("bin/k3s-standin")
    }

    /// A copy of the stand-in that reports `version` (for upgrade tests): upload it as
    /// `/usr/local/bin/k3s` and the node registers with that version. Lives in the lab's bin dir.
    pub fn standin_with_version(&self, version: &str) -> Result<PathBuf, LabError> {
        let safe: String = version
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let dst = self.dir.join(format!("bin/k3s-standin-{safe}"));
        standin::write_with_version(&self.standin_path(), &dst, version)?;
        Ok(dst)
    }

    /// The stand-in settings of this lab.
    pub fn standin_settings(&self) -> &Settings {
        &self.settings
    }

    /// How long a joining server holds the learner marker from now on (every host's stand-in
    /// reads it at each start): a test that must see what happens while a server joins makes the
    /// join last.
    pub fn set_join_hold(&mut self, hold: Duration) -> Result<(), LabError> {
        self.settings.join_hold_ms = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX);
        let json = serde_json::to_vec_pretty(&self.settings).map_err(|e| LabError::Io {
            what: "encode standin.json".into(),
            source: std::io::Error::other(e),
        })?;
        let marker = standin::LAB_MARKER.trim_start_matches('/');
        let files = std::iter::once(self.dir.join("bin/standin.json"))
            .chain(self.hosts.iter().map(|h| h.root_dir.join(marker)));
        for f in files {
            std::fs::write(&f, &json).map_err(io(format!("write {}", f.display())))?;
        }
        Ok(())
    }

    /// Arguments for the real `ssh`/`scp` clients (before `root@IP`): BatchMode, lab key, pinned
    /// known_hosts, the lab's port.
    pub fn ssh_options(&self) -> Vec<String> {
        vec![
            "-F".into(),
            "/dev/null".into(),
            "-i".into(),
            self.client_key().display().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known_hosts().display()),
            "-o".into(),
            "GlobalKnownHostsFile=/dev/null".into(),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            // `-o Port=` rather than `-p`: scp reads `-p` as "preserve times".
            "-o".into(),
            format!("Port={}", self.ssh_port),
            "-o".into(),
            "ConnectTimeout=5".into(),
            "-o".into(),
            "LogLevel=ERROR".into(),
        ]
    }

    /// Run `cmd` on `host` as root with the real ssh client. A failing command is an `Ok(Output)`
    /// with a non-zero status (ssh's own failures exit 255).
    pub fn ssh(&self, host: &str, cmd: &str) -> Result<Output, LabError> {
        let h = self.host(host)?;
        Command::new("ssh")
            .args(self.ssh_options())
            .arg(format!("root@{}", h.ip))
            .arg("--")
            .arg(cmd)
            .stdin(Stdio::null())
            .output()
            .map_err(io("spawn ssh"))
    }

    /// Simulate the host dying: SIGKILL every process in its netns by PID, veth down, and
    /// (stand-in) its k3s units inactive and its node NotReady.
    pub fn kill_host(&self, name: &str) -> Result<(), LabError> {
        let h = self.host(name)?.clone();
        net::run_ip(&["link", "set", &h.veth, "down"])?;
        net::kill_netns_pids(&h.netns);
        if let Some(mut c) = self
            .children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
        {
            let _ = c.kill();
            let _ = c.wait();
        }
        standin::host_crashed(&h.root_dir, &h.name, &self.settings)?;
        Ok(())
    }

    /// Bring a killed host back: veth up, sshd restarted with the same mounts and keys, and
    /// (stand-in) enabled k3s units started as at boot (recorded with program `boot`).
    pub fn revive_host(&self, name: &str) -> Result<(), LabError> {
        let h = self.host(name)?.clone();
        net::kill_netns_pids(&h.netns);
        if let Some(mut c) = self
            .children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
        {
            let _ = c.kill();
            let _ = c.wait();
        }
        net::run_ip(&["link", "set", &h.veth, "up"])?;
        self.spawn_sshd(&h)?;
        self.wait_sshd(&h)?;
        standin::host_booted(&h.root_dir, &h.name, Some(h.ip.to_string()), &self.settings)?;
        Ok(())
    }

    /// PIDs of every process currently in the host's network namespace.
    pub fn host_pids(&self, name: &str) -> Result<Vec<i32>, LabError> {
        Ok(net::netns_pids(&self.host(name)?.netns))
    }

    /// Every stand-in invocation on `host`, in order.
    pub fn standin_records(&self, host: &str) -> Result<Vec<StandinRecord>, LabError> {
        self.host(host)?;
        Ok(standin::read_records(&self.settings.records_dir, host)?)
    }

    /// The stand-in's cluster datastore (`None` before any server started with cluster-init).
    pub fn standin_cluster(&self) -> Result<Option<ClusterState>, LabError> {
        Ok(standin::Datastore::new(&self.settings.datastore_dir).read()?)
    }

    /// Place (or, with `None`, take away) a pod in the stand-in's cluster: the stand-in runs no
    /// workloads, so a test puts the pods a drain must deal with where it wants them.
    pub fn standin_set_pod(
        &self,
        key: &str,
        pod: Option<standin::PodState>,
    ) -> Result<(), LabError> {
        standin::Datastore::new(&self.settings.datastore_dir).update(|s| {
            if let Some(c) = s.as_mut() {
                match pod {
                    Some(p) => {
                        c.pods.insert(key.to_string(), p);
                    }
                    None => {
                        c.pods.remove(key);
                    }
                }
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Tear everything down: processes (by PID), namespaces, veths, bridge, dirs, slot.
    /// Idempotent; also run by `Drop`.
    pub fn cleanup(&mut self) -> Result<(), LabError> {
        if self.cleaned {
            return Ok(());
        }
        let mut children =
            std::mem::take(&mut *self.children.lock().unwrap_or_else(|p| p.into_inner()));
        for c in children.values_mut() {
            let _ = c.kill();
        }
        for h in &self.hosts {
            net::kill_netns_pids(&h.netns);
        }
        for c in children.values_mut() {
            let _ = c.wait();
        }
        slot::destroy_slot(self.slot)?;
        self.cleaned = true;
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.cleanup() {
            tracing::error!(slot = self.slot, error = %e, "ffe-lab cleanup failed");
            eprintln!("ffe-lab: cleanup of slot {} failed: {e}", self.slot);
        }
    }
}

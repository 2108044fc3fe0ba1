//! OpenBao (the Vault API) members on lab hosts: a real `bao server` per host, Raft storage with
//! `retry_join` between members, TLS on the API port with a CA and per-member certificates made
//! with `openssl` (the cluster port is TLS with certificates the members generate themselves).
//!
//! Each member runs inside its host's network namespace as a child of the test process, so it
//! is stopped by its own PID and never by name: SIGKILL ([`BaoCluster::kill`], a crash) or
//! SIGTERM ([`BaoCluster::stop`], the kubelet stopping a deleted pod). Its files live under the
//! host's own directory (`root_dir/vault`). HTTP goes through `curl` with the lab CA pinned.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ffe_lab::lab::{Lab, LabSpec};
//! use ffe_lab::vault::{BaoCluster, BaoSpec};
//! let lab = Lab::create(LabSpec { hosts: vec!["v0".into(), "v1".into(), "v2".into()],
//!     backup_mount: "/mnt/backups".into(), ssh_port: 22 })?;
//! let spec = BaoSpec { performance_multiplier: 1, audit_file_path: Some("stdout".into()) };
//! let c = BaoCluster::create(&lab, &["v0", "v1", "v2"], spec)?;
//! c.start_all()?;
//! let init = c.init(0, 5, 3)?;
//! c.unseal_all(&init.keys_base64)?;
//! let active = c.active(); // Some(index) once one member is active
//! # Ok(()) }
//! ```

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::lab::{Lab, LabError};

/// API port (chart default).
pub const API_PORT: u16 = 8200;
/// Cluster (Raft + request forwarding) port (chart default).
pub const CLUSTER_PORT: u16 = 8201;

/// Where a pod finds its service-account files (/var/run is /run).
const SA_MOUNT: &str = "/run/secrets/kubernetes.io/serviceaccount";

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// Errors of the OpenBao lab helper.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{cmd}` failed: {detail}")]
    Command { cmd: String, detail: String },
    #[error("OpenBao server binary not found: {0}")]
    BaoMissing(String),
    #[error("{member}: {method} {path} -> HTTP {status}: {body}")]
    Http {
        member: String,
        method: String,
        path: String,
        status: u16,
        body: String,
    },
    #[error("{0}")]
    Timeout(String),
    #[error("member index {0} out of range")]
    NoMember(usize),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> VaultError {
    let what = what.into();
    move |source| VaultError::Io { what, source }
}

/// What the members run with (the Raft timing comes from the module's settings file).
#[derive(Debug, Clone)]
pub struct BaoSpec {
    /// `storage "raft" { performance_multiplier }`.
    pub performance_multiplier: u32,
    /// `audit "file" "file" { options { file_path } }` in the server config, as the vault module
    /// renders for OpenBao (which refuses audit devices created through the API).
    pub audit_file_path: Option<String>,
}

/// One OpenBao member on a lab host.
#[derive(Debug, Clone)]
pub struct BaoMember {
    /// Lab host name; also the Raft node_id.
    pub name: String,
    pub ip: Ipv4Addr,
    pub netns: String,
    /// `root_dir/vault` of the host: config, certificate, key, Raft data, log, pid.
    pub dir: PathBuf,
}

impl BaoMember {
    /// `https://IP:8200`.
    pub fn address(&self) -> String {
        format!("https://{}:{API_PORT}", self.ip)
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("server.hcl")
    }
    pub fn data(&self) -> PathBuf {
        self.dir.join("raft")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("bao.log")
    }
    /// What the member sees at /var/run/secrets/kubernetes.io/serviceaccount.
    pub fn service_account(&self) -> PathBuf {
        self.dir.join("serviceaccount")
    }
    pub fn cert(&self) -> PathBuf {
        self.dir.join("tls.crt")
    }
    pub fn key(&self) -> PathBuf {
        self.dir.join("tls.key")
    }
}

/// `sys/health` of one member.
#[derive(Debug, Clone, Deserialize)]
pub struct Health {
    pub initialized: bool,
    pub sealed: bool,
    pub standby: bool,
}

/// `PUT sys/init` answer.
#[derive(Debug, Clone, Deserialize)]
pub struct InitResponse {
    pub keys_base64: Vec<String>,
    pub root_token: String,
}

/// An HTTP answer: status and body (JSON when the body is JSON, else `Value::Null`).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

/// One HTTP request for [`BaoCluster::send`].
#[derive(Debug, Clone)]
pub struct Req<'r> {
    pub method: &'r str,
    /// Below `/v1/`.
    pub path: &'r str,
    pub token: Option<&'r str>,
    /// JSON body.
    pub body: Option<&'r Value>,
    /// Raw body sent from this file (e.g. a snapshot to restore).
    pub data_file: Option<&'r Path>,
    /// Write the answer's body to this file instead (e.g. a snapshot).
    pub out: Option<&'r Path>,
    pub timeout: Duration,
}

impl<'r> Req<'r> {
    pub fn new(method: &'r str, path: &'r str) -> Self {
        Req {
            method,
            path,
            token: None,
            body: None,
            data_file: None,
            out: None,
            timeout: Duration::from_secs(5),
        }
    }
}

/// OpenBao members on lab hosts. Dropping it SIGKILLs every member it started (by PID).
#[derive(Debug)]
pub struct BaoCluster<'a> {
    lab: &'a Lab,
    members: Vec<BaoMember>,
    bin: PathBuf,
    dir: PathBuf,
    children: Mutex<Vec<Option<Child>>>,
}

/// The `bao` server binary: `$FFE_BAO_BIN`, else the repository's `tools/bin/bao`
/// (scripts/install-deps.sh), else `bao` on `PATH`.
pub fn bao_binary() -> Result<PathBuf, VaultError> {
    if let Some(p) = std::env::var_os("FFE_BAO_BIN").map(PathBuf::from) {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(VaultError::BaoMissing(format!(
                "$FFE_BAO_BIN={}",
                p.display()
            )))
        };
    }
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/bin/bao");
    if tools.is_file() {
        return Ok(tools);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("bao"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            VaultError::BaoMissing(format!(
                "looked at $FFE_BAO_BIN, {} and PATH; run scripts/install-deps.sh",
                tools.display()
            ))
        })
}

fn run(cmd: &mut Command) -> Result<std::process::Output, VaultError> {
    let out = cmd
        .output()
        .map_err(io(format!("spawn {:?}", cmd.get_program())))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(VaultError::Command {
            cmd: format!("{cmd:?}"),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The last `n` lines of a file (empty when unreadable).
pub fn tail(p: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl<'a> BaoCluster<'a> {
    /// Certificates and server configs for one member per host in `hosts` (nothing started).
    pub fn create(lab: &'a Lab, hosts: &[&str], spec: BaoSpec) -> Result<Self, VaultError> {
        let bin = bao_binary()?;
        let members = hosts
            .iter()
            .map(|h| {
                let host = lab.host(h)?;
                Ok(BaoMember {
                    name: host.name.clone(),
                    ip: host.ip,
                    netns: host.netns.clone(),
                    dir: host.root_dir.join("vault"),
                })
            })
            .collect::<Result<Vec<_>, VaultError>>()?;
        let dir = lab.dir().join("vault-ca");
        std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        let c = BaoCluster {
            lab,
            children: Mutex::new(members.iter().map(|_| None).collect()),
            members,
            bin,
            dir,
        };
        c.make_ca()?;
        for m in &c.members {
            std::fs::create_dir_all(m.data()).map_err(io(format!("create {}", m.dir.display())))?;
            c.make_member_cert(m)?;
            c.make_service_account(m)?;
            std::fs::write(m.config(), c.server_hcl(m, &spec))
                .map_err(io(format!("write {}", m.config().display())))?;
        }
        Ok(c)
    }

    pub fn lab(&self) -> &Lab {
        self.lab
    }

    pub fn members(&self) -> &[BaoMember] {
        &self.members
    }

    pub fn member(&self, i: usize) -> Result<&BaoMember, VaultError> {
        self.members.get(i).ok_or(VaultError::NoMember(i))
    }

    /// The CA every member's API certificate chains to (PEM file).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    pub fn ca_cert_pem(&self) -> Result<String, VaultError> {
        std::fs::read_to_string(self.ca_cert()).map_err(io("read the lab CA"))
    }

    fn make_ca(&self) -> Result<(), VaultError> {
        run(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=ffe-lab vault CA"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .arg("-keyout")
            .arg(self.dir.join("ca.key"))
            .arg("-out")
            .arg(self.ca_cert()))?;
        Ok(())
    }

    /// A server+client certificate with the member's IP, 127.0.0.1 and its name as SANs.
    fn make_member_cert(&self, m: &BaoMember) -> Result<(), VaultError> {
        let csr = m.dir.join("tls.csr");
        run(Command::new("openssl")
            .args(["req", "-new", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:P-256", "-nodes"])
            .args(["-subj", &format!("/CN={}", m.name)])
            .arg("-keyout")
            .arg(m.key())
            .arg("-out")
            .arg(&csr))?;
        let ext = m.dir.join("tls.ext");
        std::fs::write(
            &ext,
            format!(
                "subjectAltName=IP:{},IP:127.0.0.1,DNS:{}\nbasicConstraints=CA:FALSE\n\
                 keyUsage=critical,digitalSignature,keyEncipherment\n\
                 extendedKeyUsage=serverAuth,clientAuth\n",
                m.ip, m.name
            ),
        )
        .map_err(io(format!("write {}", ext.display())))?;
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-set_serial"])
            .arg(format!("{}", u32::from(m.ip)))
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(self.ca_cert())
            .arg("-CAkey")
            .arg(self.dir.join("ca.key"))
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(m.cert()))?;
        Ok(())
    }

    /// The service-account files a pod would have: ca.crt is the lab's own "cluster CA" (there
    /// is no Kubernetes API in the lab; nothing logs in through the Kubernetes auth method).
    fn make_service_account(&self, m: &BaoMember) -> Result<(), VaultError> {
        let sa = m.service_account();
        std::fs::create_dir_all(&sa).map_err(io(format!("create {}", sa.display())))?;
        let kube_ca = self.dir.join("kubernetes-ca.crt");
        if !kube_ca.exists() {
            run(Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
                .args(["-subj", "/CN=ffe-lab kubernetes CA"])
                .arg("-keyout")
                .arg(self.dir.join("kubernetes-ca.key"))
                .arg("-out")
                .arg(&kube_ca))?;
        }
        std::fs::copy(&kube_ca, sa.join("ca.crt")).map_err(io(format!(
            "copy the lab Kubernetes CA to {}",
            sa.display()
        )))?;
        Ok(())
    }

    /// The member's server config: TLS listener on its IP, Raft with `retry_join` to every
    /// member (the lab CA pinned), the given Raft timing. `disable_mlock`: the lab shares one
    /// kernel and RLIMIT_MEMLOCK with everything else (the chart's pods get IPC_LOCK instead).
    fn server_hcl(&self, m: &BaoMember, spec: &BaoSpec) -> String {
        let q = |p: &Path| serde_json::to_string(&p.display().to_string()).unwrap_or_default();
        let joins: String = self
            .members
            .iter()
            .map(|o| {
                format!(
                    "  retry_join {{\n    leader_api_addr = \"{}\"\n    leader_ca_cert_file = {}\n  }}\n",
                    o.address(),
                    q(&self.ca_cert())
                )
            })
            .collect();
        let audit = spec
            .audit_file_path
            .as_deref()
            .map(|p| {
                format!(
                    "audit \"file\" \"file\" {{\n  options {{\n    file_path = {}\n  }}\n}}\n",
                    serde_json::to_string(p).unwrap_or_default()
                )
            })
            .unwrap_or_default();
        format!(
            "ui = false\ndisable_mlock = true\n{audit}\
             api_addr = \"{api}\"\ncluster_addr = \"https://{ip}:{CLUSTER_PORT}\"\n\
             listener \"tcp\" {{\n  address = \"{ip}:{API_PORT}\"\n  cluster_address = \"{ip}:{CLUSTER_PORT}\"\n  \
             tls_cert_file = {cert}\n  tls_key_file = {key}\n}}\n\
             storage \"raft\" {{\n  path = {data}\n  node_id = \"{name}\"\n  \
             performance_multiplier = {pm}\n{joins}}}\n",
            api = m.address(),
            ip = m.ip,
            cert = q(&m.cert()),
            key = q(&m.key()),
            data = q(&m.data()),
            name = m.name,
            pm = spec.performance_multiplier,
        )
    }

    /// Start member `i` (`bao server` in its host's network namespace).
    pub fn start(&self, i: usize) -> Result<(), VaultError> {
        let m = self.member(i)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(m.log())
            .map_err(io(format!("open {}", m.log().display())))?;
        let log2 = log.try_clone().map_err(io("dup log"))?;
        // A private mount namespace like the pod's: the service-account files the kubelet
        // mounts (the Kubernetes auth method reads ca.crt there when configured in-cluster) on a
        // tmpfs over /run, so nothing is created on the real filesystem. Every step execs: the
        // child's PID is the server's.
        let script = format!(
            "set -e\nmount -t tmpfs -o mode=0755 ffe-lab-bao-run /run\nmkdir -p {SA_MOUNT}\n\
             mount --bind {sa} {SA_MOUNT}\nexec {bin} server -config={cfg}\n",
            sa = shell_quote(&m.service_account()),
            bin = shell_quote(&self.bin),
            cfg = shell_quote(&m.config()),
        );
        let child = Command::new("ip")
            .args(["netns", "exec", &m.netns])
            .args(["unshare", "--mount", "--propagation", "private", "--"])
            .args(["/bin/sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(io(format!("spawn bao server on {}", m.name)))?;
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = children.get_mut(i) {
            *slot = Some(child);
        }
        drop(children);
        self.wait_listening(i, Duration::from_secs(30))
    }

    pub fn start_all(&self) -> Result<(), VaultError> {
        (0..self.members.len()).try_for_each(|i| self.start(i))
    }

    fn wait_listening(&self, i: usize, timeout: Duration) -> Result<(), VaultError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.health(i).is_some() {
                return Ok(());
            }
            let exited = self
                .children
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(i)
                .and_then(Option::as_mut)
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited || Instant::now() > deadline {
                let m = self.member(i)?;
                return Err(VaultError::Timeout(format!(
                    "{}: bao server not answering on {} ({}):\n{}",
                    m.name,
                    m.address(),
                    if exited { "exited" } else { "timeout" },
                    tail(&m.log(), 20)
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// PID of member `i`'s server, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(i)
            .and_then(Option::as_ref)
            .map(Child::id)
    }

    /// SIGKILL member `i`'s server by its PID and reap it.
    pub fn kill(&self, i: usize) -> Result<(), VaultError> {
        let child = self
            .children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(i)
            .and_then(Option::take);
        if let Some(mut c) = child {
            // `ip netns exec` execs the server: the child's PID is the server's.
            c.kill().map_err(io("SIGKILL bao server"))?;
            c.wait().map_err(io("reap bao server"))?;
        }
        Ok(())
    }

    /// Stop member `i`'s server gracefully, as the kubelet stops a deleted pod: SIGTERM to its
    /// PID, then wait up to 30 s for it to exit (OpenBao steps down and seals on SIGTERM) and
    /// reap it. Still running after 30 s: SIGKILL, reap, and an error. Not running: nothing to
    /// do. [`start`](Self::start) brings it back (sealed).
    pub fn stop(&self, i: usize) -> Result<(), VaultError> {
        let grace = Duration::from_secs(30);
        let child = self
            .children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(i)
            .and_then(Option::take);
        let Some(mut c) = child else {
            return Ok(());
        };
        let pid = i32::try_from(c.id()).map_err(|_| VaultError::Command {
            cmd: "SIGTERM bao server".into(),
            detail: format!("PID {} out of range", c.id()),
        })?;
        // SAFETY: kill(2) on the PID of our own child, not yet reaped (so not reused).
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            return Err(io("SIGTERM bao server")(std::io::Error::last_os_error()));
        }
        let deadline = Instant::now() + grace;
        loop {
            if c.try_wait().map_err(io("reap bao server"))?.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                c.kill().map_err(io("SIGKILL bao server"))?;
                c.wait().map_err(io("reap bao server"))?;
                let m = self.member(i)?;
                return Err(VaultError::Timeout(format!(
                    "{}: bao server (PID {pid}) still running {grace:?} after SIGTERM; SIGKILLed:\n{}",
                    m.name,
                    tail(&m.log(), 20)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `curl` to member `i` (see [`Req`]).
    pub fn send(&self, i: usize, r: &Req<'_>) -> Result<Response, VaultError> {
        let m = self.member(i)?;
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--noproxy", "*", "-X", r.method])
            .arg("--cacert")
            .arg(self.ca_cert())
            .arg("--max-time")
            .arg(format!("{:.1}", r.timeout.as_secs_f64()))
            .args(["-w", "\n%{http_code}"]);
        if let Some(t) = r.token {
            cmd.args(["-H", &format!("X-Vault-Token: {t}")]);
        }
        if let Some(b) = r.body {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary"])
                .arg(b.to_string());
        }
        if let Some(f) = r.data_file {
            cmd.arg("--data-binary").arg(format!("@{}", f.display()));
        }
        if let Some(o) = r.out {
            cmd.arg("-o").arg(o);
        }
        let url = format!("{}/v1/{}", m.address(), r.path.trim_start_matches('/'));
        cmd.arg(&url);
        let outp = cmd.output().map_err(io("spawn curl"))?;
        let stdout = String::from_utf8_lossy(&outp.stdout).to_string();
        let (text, code) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
        let status: u16 = code.trim().parse().unwrap_or(0);
        if !outp.status.success() || status == 0 {
            return Err(VaultError::Command {
                cmd: format!("curl -X {} {url}", r.method),
                detail: String::from_utf8_lossy(&outp.stderr).trim().to_string(),
            });
        }
        Ok(Response {
            status,
            body: serde_json::from_str(text).unwrap_or(Value::Null),
            text: text.to_string(),
        })
    }

    /// A JSON request to member `i` (5 s timeout).
    pub fn request(
        &self,
        i: usize,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Response, VaultError> {
        self.send(
            i,
            &Req {
                token,
                body,
                ..Req::new(method, path)
            },
        )
    }

    /// Like [`request`](Self::request), but a status outside 200..300 is an error.
    pub fn call(
        &self,
        i: usize,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Value, VaultError> {
        let r = self.request(i, method, path, token, body)?;
        if (200..300).contains(&r.status) {
            Ok(r.body)
        } else {
            Err(VaultError::Http {
                member: self.member(i)?.name.clone(),
                method: method.into(),
                path: path.into(),
                status: r.status,
                body: r.text,
            })
        }
    }

    /// `sys/health` of member `i` (any status: 200 active, 429 standby, 503 sealed, 501 not
    /// initialised), or `None` when it does not answer within a second.
    pub fn health(&self, i: usize) -> Option<Health> {
        let r = self
            .send(
                i,
                &Req {
                    timeout: Duration::from_secs(1),
                    ..Req::new("GET", "sys/health")
                },
            )
            .ok()?;
        serde_json::from_value(r.body).ok()
    }

    /// The index of the one member that reports itself active (unsealed, not standby).
    pub fn active(&self) -> Option<usize> {
        self.active_among(&(0..self.members.len()).collect::<Vec<_>>())
    }

    /// Like [`active`](Self::active), asking only `candidates`.
    pub fn active_among(&self, candidates: &[usize]) -> Option<usize> {
        // In parallel: a member busy with an election may take the whole timeout to answer.
        let act: Vec<usize> = std::thread::scope(|sc| {
            let hs: Vec<_> = candidates
                .iter()
                .map(|i| (*i, sc.spawn(move || self.health(*i))))
                .collect();
            hs.into_iter()
                .filter_map(|(i, h)| {
                    h.join()
                        .ok()
                        .flatten()
                        .filter(|h| h.initialized && !h.sealed && !h.standby)
                        .map(|_| i)
                })
                .collect()
        });
        match act.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// `PUT sys/init` on member `i`.
    pub fn init(&self, i: usize, shares: u8, threshold: u8) -> Result<InitResponse, VaultError> {
        let body = serde_json::json!({"secret_shares": shares, "secret_threshold": threshold});
        let v = self.call(i, "PUT", "sys/init", None, Some(&body))?;
        serde_json::from_value(v).map_err(|e| VaultError::Command {
            cmd: "PUT sys/init".into(),
            detail: e.to_string(),
        })
    }

    /// Send unseal keys to member `i` until it reports unsealed (a joining member unseals once
    /// its Raft join completed), within `timeout`.
    pub fn unseal(&self, i: usize, keys: &[String], timeout: Duration) -> Result<(), VaultError> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut last = String::new();
            for k in keys {
                match self.request(
                    i,
                    "PUT",
                    "sys/unseal",
                    None,
                    Some(&serde_json::json!({ "key": k })),
                ) {
                    Ok(r) if r.status == 200 && r.body["sealed"] == Value::Bool(false) => {
                        return Ok(())
                    }
                    Ok(r) => last = format!("HTTP {}: {}", r.status, r.text),
                    Err(e) => last = e.to_string(),
                }
            }
            if self.health(i).is_some_and(|h| !h.sealed) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let m = self.member(i)?;
                return Err(VaultError::Timeout(format!(
                    "{} still sealed after {timeout:?} (last: {last}):\n{}",
                    m.name,
                    tail(&m.log(), 20)
                )));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Unseal every member in order (the first one must be initialised).
    pub fn unseal_all(&self, keys: &[String]) -> Result<(), VaultError> {
        (0..self.members.len()).try_for_each(|i| self.unseal(i, keys, Duration::from_secs(60)))
    }

    /// Wait until one member is active and every other one answers as an unsealed standby.
    pub fn wait_converged(&self, timeout: Duration) -> Result<usize, VaultError> {
        let deadline = Instant::now() + timeout;
        loop {
            let hs: Vec<Option<Health>> = (0..self.members.len()).map(|i| self.health(i)).collect();
            let active: Vec<usize> = hs
                .iter()
                .enumerate()
                .filter(|(_, h)| h.as_ref().is_some_and(|h| !h.sealed && !h.standby))
                .map(|(i, _)| i)
                .collect();
            let all_unsealed = hs
                .iter()
                .all(|h| h.as_ref().is_some_and(|h| h.initialized && !h.sealed));
            if let ([a], true) = (active.as_slice(), all_unsealed) {
                return Ok(*a);
            }
            if Instant::now() > deadline {
                return Err(VaultError::Timeout(format!(
                    "members not converged within {timeout:?}: {hs:?}\n{}",
                    self.logs(15)
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The last `n` log lines of every member.
    pub fn logs(&self, n: usize) -> String {
        self.members
            .iter()
            .map(|m| format!("--- {} ---\n{}", m.name, tail(&m.log(), n)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for BaoCluster<'_> {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            let _ = self.kill(i);
        }
    }
}

//! A 3-member etcd cluster laid out like k3s's embedded etcd, for tests of what reads it: real
//! etcd with TLS on client and peer ports, client certificates required, the client credentials
//! at k3s's paths on each host (`/var/lib/rancher/k3s/server/tls/etcd/`), members named
//! `<host>-<8 hex>` as k3s names them.
//!
//! **Stand-in, named:** this machine's etcd (3.4.23) cannot split the HTTP API onto its own port
//! (`listen-client-http-urls` arrived in 3.4.25/3.5.8), so the JSON API k3s serves on
//! `https://127.0.0.1:2382` is served here on `https://127.0.0.1:2379` together with gRPC;
//! [`LAB_API_URL`] says so to the code under test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::lab::{Lab, LabError, LabHost};
use crate::pki::TestCa;

const ETCD: &str = "/usr/bin/etcd";

/// Where a member's JSON API answers on its own host (k3s: `https://127.0.0.1:2382`).
pub const LAB_API_URL: &str = "https://127.0.0.1:2379";

/// Where k3s keeps its etcd client credentials on a server (the caller passes k3s's paths, so
/// the lab has no copy of them).
#[derive(Debug, Clone, Copy)]
pub struct CredentialPaths<'a> {
    pub ca: &'a str,
    pub cert: &'a str,
    pub key: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("etcd member {0}")]
    Timeout(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EtcdError {
    let what = what.into();
    move |source| EtcdError::Io { what, source }
}

/// One member: which lab host runs it and its k3s-style name.
#[derive(Debug, Clone)]
pub struct EtcdMember {
    pub host: LabHost,
    pub name: String,
    data: PathBuf,
    log: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

pub struct K3sEtcd {
    members: Vec<EtcdMember>,
    children: Mutex<Vec<Option<Child>>>,
    ca: PathBuf,
    client: (PathBuf, PathBuf),
    token: String,
}

impl Drop for K3sEtcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            let _ = self.kill(i);
        }
    }
}

impl K3sEtcd {
    /// Certificates, credentials at k3s's paths, and one started member per host in `hosts`.
    pub fn start(
        lab: &Lab,
        hosts: &[&str],
        paths: CredentialPaths<'_>,
    ) -> Result<K3sEtcd, EtcdError> {
        let dir = lab.dir().join("k3s-etcd");
        let ca = TestCa::new(&dir.join("pki"))?;
        // A year, as k3s issues them: the certificate check reads these files too.
        let client = ca.issue_valid("etcd-client", &[], 365)?;
        let mut members = Vec::new();
        for (i, h) in hosts.iter().enumerate() {
            let host = lab.host(h)?.clone();
            let (server_cert, server_key) =
                ca.issue_valid(&format!("etcd-server-{i}"), &[host.ip], 365)?;
            // k3s's client credentials, where k3s keeps them on every server.
            for (src, dst) in [
                (ca.dir.join("ca.crt"), paths.ca),
                (client.0.clone(), paths.cert),
                (client.1.clone(), paths.key),
            ] {
                let to = host.root_dir.join(dst.trim_start_matches('/'));
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(io(format!("create {}", parent.display())))?;
                }
                std::fs::copy(&src, &to).map_err(io(format!("copy to {}", to.display())))?;
            }
            let suffix: u32 = rand::random();
            members.push(EtcdMember {
                name: format!("{}-{suffix:08x}", host.name),
                data: dir.join(format!("data-{i}")),
                log: dir.join(format!("etcd-{i}.log")),
                host,
                server_cert,
                server_key,
            });
        }
        let etcd = K3sEtcd {
            children: Mutex::new(members.iter().map(|_| None).collect()),
            members,
            ca: ca.dir.join("ca.crt"),
            client,
            token: format!("ffe-lab-{}-etcd", lab.slot()),
        };
        for i in 0..etcd.members.len() {
            etcd.spawn(i)?;
        }
        for i in 0..etcd.members.len() {
            etcd.wait_healthy(i, Duration::from_secs(30))?;
        }
        Ok(etcd)
    }

    pub fn members(&self) -> &[EtcdMember] {
        &self.members
    }

    fn spawn(&self, i: usize) -> Result<(), EtcdError> {
        let m = &self.members[i];
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=https://{}:2380", m.name, m.host.ip))
            .collect();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .map_err(io(format!("open {}", m.log.display())))?;
        let log2 = log.try_clone().map_err(io("dup log"))?;
        let ip = m.host.ip;
        let child = Command::new("ip")
            .args(["netns", "exec", &m.host.netns, ETCD])
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&m.data)
            .arg(format!(
                "--listen-client-urls=https://{ip}:2379,https://127.0.0.1:2379"
            ))
            .arg(format!("--advertise-client-urls=https://{ip}:2379"))
            .arg(format!("--listen-peer-urls=https://{ip}:2380"))
            .arg(format!("--initial-advertise-peer-urls=https://{ip}:2380"))
            .arg(format!("--initial-cluster={}", initial.join(",")))
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.token])
            .arg("--cert-file")
            .arg(&m.server_cert)
            .arg("--key-file")
            .arg(&m.server_key)
            .arg("--trusted-ca-file")
            .arg(&self.ca)
            .arg("--client-cert-auth")
            .arg("--peer-cert-file")
            .arg(&m.server_cert)
            .arg("--peer-key-file")
            .arg(&m.server_key)
            .arg("--peer-trusted-ca-file")
            .arg(&self.ca)
            .arg("--peer-client-cert-auth")
            // Lab timings (k3s keeps etcd's defaults: 100 ms heartbeat, 1 s election).
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(io(format!("spawn etcd on {}", m.host.name)))?;
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        children[i] = Some(child);
        Ok(())
    }

    /// `GET /health` with the client certificate, from the test process.
    pub fn healthy(&self, i: usize) -> bool {
        let m = &self.members[i];
        Command::new("curl")
            .args(["-sS", "--noproxy", "*", "--max-time", "1"])
            .arg("--cacert")
            .arg(&self.ca)
            .arg("--cert")
            .arg(&self.client.0)
            .arg("--key")
            .arg(&self.client.1)
            .arg(format!("https://{}:2379/health", m.host.ip))
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("\"health\":\"true\""))
    }

    fn wait_healthy(&self, i: usize, timeout: Duration) -> Result<(), EtcdError> {
        let deadline = Instant::now() + timeout;
        while !self.healthy(i) {
            if Instant::now() > deadline {
                let m = &self.members[i];
                let log = std::fs::read_to_string(&m.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                return Err(EtcdError::Timeout(format!(
                    "{} on {} not healthy within {timeout:?}:\n{}",
                    m.name,
                    m.host.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// SIGKILL member `i` by its PID (`ip netns exec` execs etcd: the child is etcd).
    pub fn kill(&self, i: usize) -> Result<(), EtcdError> {
        let child = self
            .children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(i)
            .and_then(Option::take);
        if let Some(mut c) = child {
            c.kill().map_err(io("SIGKILL etcd"))?;
            c.wait().map_err(io("reap etcd"))?;
        }
        Ok(())
    }

    /// Start member `i` again with its data and wait until it is healthy.
    pub fn restart(&self, i: usize) -> Result<(), EtcdError> {
        self.kill(i)?;
        self.spawn(i)?;
        self.wait_healthy(i, Duration::from_secs(30))
    }
}

//! Real OpenBao servers for the vault_* tests: Raft storage in a tempdir, TLS from a CA made
//! with openssl for 127.0.0.1, free loopback ports, killed by PID when dropped. Each runs in
//! its own mount namespace with a pod-like service-account directory (see `Server::start`).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ffe_core::vault::Member;

pub fn bao() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/bin/bao");
    assert!(
        p.exists(),
        "{} is missing: run ./scripts/install-deps.sh",
        p.display()
    );
    p
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for IP 127.0.0.1 signed by it.
pub struct Pki {
    pub dir: PathBuf,
    pub ca_pem: String,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=ffe test vault CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
        let ca_pem = std::fs::read_to_string(dir.join("ca.crt")).unwrap();
        Pki {
            dir: dir.to_path_buf(),
            ca_pem,
        }
    }

    /// Another server certificate for IP 127.0.0.1 signed by this CA (for a second TLS
    /// server the same clients trust): (<name>.crt, <name>.key, PKCS#8) in `dir`.
    pub fn issue(&self, name: &str) -> (PathBuf, PathBuf) {
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
        (self.dir.join(crt), self.dir.join(key))
    }
}

/// One OpenBao server process.
pub struct Server {
    pub address: String,
    pub port: u16,
    config: PathBuf,
    ca: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Server {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        // Kubernetes auth configured "in-cluster" reads the pod's service-account CA and
        // token: give the server its own /run (private mount namespace) holding them, as a
        // pod has. The shell execs into bao, so the PID stays the server's.
        let sa = "/run/secrets/kubernetes.io/serviceaccount";
        let script = format!(
            "mount -t tmpfs tmpfs /run && mkdir -p {sa} && cp {ca} {sa}/ca.crt && echo test-reviewer-token > {sa}/token && exec {bao} server -config={cfg}",
            ca = self.ca.display(),
            bao = bao().display(),
            cfg = self.config.display(),
        );
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_ADDR")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        // Wait until the listener accepts connections.
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "bao did not listen: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kill by PID (SIGKILL: a crash, the member comes back sealed).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `n` members joined by retry_join (n = 1: a single Raft node).
pub struct Cluster {
    pub tmp: tempfile::TempDir,
    pub pki: Pki,
    pub servers: Vec<Server>,
}

impl Cluster {
    pub fn new(n: usize) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let pki = Pki::new(&tmp.path().join("pki"));
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let mut servers = vec![];
        for (i, (port, cport)) in ports.iter().enumerate() {
            let dir = tmp.path().join(format!("member-{i}"));
            std::fs::create_dir_all(dir.join("data")).unwrap();
            let joins: String = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (p, _))| {
                    format!(
                        "  retry_join {{\n    leader_api_addr = \"https://127.0.0.1:{p}\"\n    leader_ca_cert_file = \"{ca}\"\n  }}\n",
                        ca = pki.dir.join("ca.crt").display()
                    )
                })
                .collect();
            let config = format!(
                r#"ui = false
storage "raft" {{
  path = "{data}"
  node_id = "member-{i}"
  performance_multiplier = 1
{joins}}}
listener "tcp" {{
  address = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cport}"
  tls_cert_file = "{cert}"
  tls_key_file = "{key}"
}}
api_addr = "https://127.0.0.1:{port}"
cluster_addr = "https://127.0.0.1:{cport}"
# OpenBao refuses audit devices through the API: declared here, as the vault module does.
audit "file" "file" {{
  options {{
    file_path = "stdout"
  }}
}}
"#,
                data = dir.join("data").display(),
                cert = pki.dir.join("server.crt").display(),
                key = pki.dir.join("server.key").display(),
            );
            let path = dir.join("config.hcl");
            std::fs::write(&path, config).unwrap();
            servers.push(Server {
                address: format!("https://127.0.0.1:{port}"),
                port: *port,
                config: path,
                ca: pki.dir.join("ca.crt"),
                log: dir.join("bao.log"),
                child: None,
            });
        }
        for s in &mut servers {
            s.start();
        }
        Cluster { tmp, pki, servers }
    }

    pub fn addresses(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.address.clone()).collect()
    }

    pub fn members(&self) -> Vec<Member> {
        Member::all(&self.addresses(), &self.pki.ca_pem).unwrap()
    }

    pub fn keys_file(&self) -> PathBuf {
        self.tmp.path().join("vault-init.pending.json")
    }

    pub fn logs(&self) -> String {
        self.servers
            .iter()
            .map(|s| format!("--- {} ---\n{}", s.address, s.log_text()))
            .collect()
    }
}

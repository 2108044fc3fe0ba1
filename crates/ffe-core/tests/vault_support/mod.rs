//! Shared by the vault_* tests:
//!   - real OpenBao servers: Raft storage in a tempdir, TLS from a CA made with openssl for
//!     127.0.0.1, free loopback ports, killed by PID when dropped. Each runs in its own mount
//!     namespace with a pod-like service-account directory (see `Server::start`);
//!   - `module_outputs`: a Terraform module of terraform/modules rendered with given inputs;
//!   - `StandInApi`: a STAND-IN Kubernetes API server (there is no kube-apiserver here) that
//!     answers TokenReviews strictly (what OpenBao's Kubernetes auth relies on) and Secrets
//!     get/apply-patch under RBAC grants; `Minter`: projected service-account JWTs.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ffe_core::vault::Member;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use serde_json::{json, Value};

/// What the stand-in API server accepts as audiences (k3s: its service-account issuer and "k3s").
pub const API_AUDIENCES: [&str; 2] = ["https://kubernetes.default.svc.cluster.local", "k3s"];
/// Each bao server's own service-account token (Server::start writes it into the pod-like
/// token file; Vault presents it as bearer of its TokenReviews).
pub const REVIEWER_TOKEN: &str = "test-reviewer-token";

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

/// A CA and a server certificate (`server.crt`, `server.key`) for IP 127.0.0.1 signed by it
/// (ffe_lab::pki).
pub struct Pki {
    pub dir: PathBuf,
    pub ca_pem: String,
    ca: ffe_lab::pki::TestCa,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        let ca = ffe_lab::pki::TestCa::new(dir).unwrap_or_else(|e| panic!("{e}"));
        ca.issue("server").unwrap_or_else(|e| panic!("{e}"));
        Pki {
            dir: ca.dir.clone(),
            ca_pem: ca.ca_pem.clone(),
            ca,
        }
    }

    /// Another server certificate for IP 127.0.0.1 signed by this CA (for a second TLS
    /// server the same clients trust): (<name>.crt, <name>.key) in `dir`.
    pub fn issue(&self, name: &str) -> (PathBuf, PathBuf) {
        self.ca.issue(name).unwrap_or_else(|e| panic!("{e}"))
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
            "mount -t tmpfs tmpfs /run && mkdir -p {sa} && cp {ca} {sa}/ca.crt && echo {REVIEWER_TOKEN} > {sa}/token && exec {bao} server -config={cfg}",
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
    /// A one-member cluster initialised with one unseal key (the project's own init code) and
    /// unsealed: for tests about what comes after the initialisation. Returns its root token.
    pub async fn initialised() -> (Cluster, String) {
        let c = Cluster::new(1);
        let init = ffe_core::vault::init::init_or_adopt(
            &c.members(),
            &ffe_core::vault::init::InitSpec {
                shares: 1,
                threshold: 1,
                pgp_keys: None,
                keys_file: c.keys_file(),
                wait_timeout: Duration::from_secs(60),
            },
            &|| {},
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
        (c, init.root_token)
    }

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

// ---------------------------------------------------------------------------------------------
// Rendering a Terraform module

/// All outputs of terraform/modules/<module> applied with `inputs` (HCL assignments, one per
/// line, as a module block takes them): `terraform output -json` of the module, as one object
/// (output name -> value; sensitive outputs included). Pure rendering modules only: init
/// downloads nothing.
pub fn module_outputs(module: &str, inputs: &str) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../terraform/modules")
        .join(module);
    ffe_lab::terraform::render_module(&dir, inputs).unwrap_or_else(|e| panic!("{e}"))
}

/// The documents of a multi-document YAML string.
pub fn yaml_docs(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

/// The HTTP status of a Vault API error.
pub fn code(e: &vaultrs::error::ClientError) -> u16 {
    match e {
        vaultrs::error::ClientError::APIError { code, .. } => *code,
        other => panic!("not an API error: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Service-account JWTs

/// Mints projected service-account tokens as the API server does (RS256, claims of a
/// bound token of a pod).
pub struct Minter {
    dir: PathBuf,
    n: AtomicUsize,
}

impl Minter {
    pub fn new(dir: &Path) -> Minter {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "sa-signer.key",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        Minter {
            dir: dir.to_path_buf(),
            n: AtomicUsize::new(0),
        }
    }

    pub fn mint(&self, sa: &Sa) -> String {
        let n = self.n.fetch_add(1, Ordering::SeqCst);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = json!({"alg": "RS256", "kid": "stand-in-signer"});
        let claims = json!({
            "aud": API_AUDIENCES,
            "exp": now + 3600,
            "iat": now,
            "nbf": now,
            "iss": "https://kubernetes.default.svc.cluster.local",
            "jti": format!("jti-{n}"),
            "kubernetes.io": {
                "namespace": sa.namespace,
                "node": {"name": "node-1", "uid": "5d1f3c1e-0000-4000-8000-00000000000a"},
                "pod": {"name": format!("{}-pod-{n}", sa.name), "uid": format!("7c0c2a4e-0000-4000-8000-{n:012}")},
                "serviceaccount": {"name": sa.name, "uid": sa.uid},
                "warnafter": now + 3000,
            },
            "sub": format!("system:serviceaccount:{}:{}", sa.namespace, sa.name),
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let (inp, sig) = (format!("jwt-{n}.in"), format!("jwt-{n}.sig"));
        std::fs::write(self.dir.join(&inp), &input).unwrap();
        let out = Command::new("openssl")
            .current_dir(&self.dir)
            .args([
                "dgst",
                "-sha256",
                "-sign",
                "sa-signer.key",
                "-binary",
                "-out",
                &sig,
                &inp,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let sig = std::fs::read(self.dir.join(&sig)).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

// ---------------------------------------------------------------------------------------------
// The stand-in Kubernetes API server

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sa {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Sa {
    pub fn new(namespace: &str, name: &str, uid: &str) -> Sa {
        Sa {
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
        }
    }
    pub fn username(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

/// One request the stand-in answered.
#[derive(Clone, Debug)]
pub struct Seen {
    /// "<ns>/<sa>" of the bearer, "" when refused as unauthenticated
    pub who: String,
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: String,
    pub status: u16,
}

/// A namespaced RBAC grant on secrets, from a rendered Role + RoleBinding.
#[derive(Clone, Debug)]
pub struct Grant {
    pub namespace: String,
    pub subject: (String, String),
    pub names: Vec<String>,
    pub verbs: Vec<String>,
}

/// The grants of the Roles bound by the RoleBindings among `docs` (rules on core secrets only).
pub fn grants(docs: &[Value]) -> Vec<Grant> {
    let mut out = vec![];
    for b in docs.iter().filter(|d| d["kind"] == "RoleBinding") {
        let ns = b["metadata"]["namespace"].as_str().unwrap();
        assert_eq!(b["roleRef"]["kind"], "Role", "{b}");
        let role = docs
            .iter()
            .find(|d| {
                d["kind"] == "Role"
                    && d["metadata"]["namespace"] == ns
                    && d["metadata"]["name"] == b["roleRef"]["name"]
            })
            .unwrap_or_else(|| panic!("RoleBinding {b} names a Role the bundle lacks"));
        for s in b["subjects"].as_array().unwrap() {
            assert_eq!(s["kind"], "ServiceAccount", "{s}");
            for r in role["rules"].as_array().unwrap() {
                let strs = |v: &Value| -> Vec<String> {
                    v.as_array()
                        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
                        .unwrap_or_default()
                };
                if strs(&r["apiGroups"]).contains(&String::new())
                    && strs(&r["resources"]).contains(&"secrets".to_string())
                {
                    out.push(Grant {
                        namespace: ns.into(),
                        subject: (
                            s["namespace"].as_str().unwrap().into(),
                            s["name"].as_str().unwrap().into(),
                        ),
                        names: strs(&r["resourceNames"]),
                        verbs: strs(&r["verbs"]),
                    });
                }
            }
        }
    }
    out
}

#[derive(Default)]
pub struct ApiState {
    /// bearer token -> the service account it belongs to
    pub tokens: HashMap<String, Sa>,
    /// accounts bound to system:auth-delegator (may create TokenReviews)
    pub reviewers: BTreeSet<(String, String)>,
    pub grants: Vec<Grant>,
    /// (namespace, name) -> data (base64 values, as the API stores them)
    pub secrets: BTreeMap<(String, String), BTreeMap<String, String>>,
    pub seen: Vec<Seen>,
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

pub fn secret_json(ns: &str, name: &str, data: &BTreeMap<String, String>) -> Value {
    let mut v = json!({"kind": "Secret", "apiVersion": "v1", "type": "Opaque",
                       "metadata": {"name": name, "namespace": ns}});
    // the API omits an empty data map
    if !data.is_empty() {
        v["data"] = json!(data);
    }
    v
}

struct HttpRequest {
    method: String,
    target: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl ApiState {
    fn allowed(&self, sa: &Sa, verb: &str, ns: &str, name: &str) -> bool {
        self.grants.iter().any(|g| {
            g.namespace == ns
                && g.subject == (sa.namespace.clone(), sa.name.clone())
                && g.verbs.iter().any(|v| v == verb)
                && (g.names.is_empty() || g.names.iter().any(|n| n == name))
        })
    }

    fn route(&mut self, req: &HttpRequest) -> (u16, Value, String) {
        // Every request must carry a bearer token the server knows (no anonymous access).
        let who = match req
            .headers
            .get("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .and_then(|t| self.tokens.get(t.trim()))
        {
            Some(sa) => sa.clone(),
            None => return (401, status(401, "Unauthorized", "Unauthorized"), "".into()),
        };
        let who_s = format!("{}/{}", who.namespace, who.name);
        let (path, _) = req.target.split_once('?').unwrap_or((&req.target, ""));
        let (code, body) = if path == "/apis/authentication.k8s.io/v1/tokenreviews" {
            self.token_review(&who, req)
        } else {
            let parts: Vec<&str> = path.split('/').collect();
            match parts.as_slice() {
                ["", "api", "v1", "namespaces", ns, "secrets", name] => {
                    self.secret(&who, req, ns, name)
                }
                _ => (
                    404,
                    status(
                        404,
                        "NotFound",
                        "the server could not find the requested resource",
                    ),
                ),
            }
        };
        (code, body, who_s)
    }

    fn token_review(&mut self, who: &Sa, req: &HttpRequest) -> (u16, Value) {
        if req.method != "POST" {
            return (
                405,
                status(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                ),
            );
        }
        if !self
            .reviewers
            .contains(&(who.namespace.clone(), who.name.clone()))
        {
            return (403, status(403, "Forbidden", &format!(
                "tokenreviews.authentication.k8s.io is forbidden: User \"{}\" cannot create resource \"tokenreviews\" in API group \"authentication.k8s.io\" at the cluster scope",
                who.username())));
        }
        let Ok(review) = serde_json::from_slice::<Value>(&req.body) else {
            return (400, status(400, "BadRequest", "invalid TokenReview"));
        };
        // The API server takes apiVersion/kind from the URL when the body omits them (OpenBao
        // sends none), but refuses a body that names another type.
        let omitted_or = |v: &Value, want: &str| v.is_null() || v == want;
        if !omitted_or(&review["apiVersion"], "authentication.k8s.io/v1")
            || !omitted_or(&review["kind"], "TokenReview")
        {
            return (
                400,
                status(400, "BadRequest", &format!("not a TokenReview: {review}")),
            );
        }
        let token = review["spec"]["token"].as_str().unwrap_or_default();
        let wanted: Vec<String> = match review["spec"]["audiences"].as_array() {
            Some(a) if !a.is_empty() => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            _ => API_AUDIENCES.iter().map(|s| s.to_string()).collect(),
        };
        let auds: Vec<String> = wanted
            .iter()
            .filter(|a| API_AUDIENCES.contains(&a.as_str()))
            .cloned()
            .collect();
        let st = match self.tokens.get(token) {
            Some(sa) if !auds.is_empty() => json!({
                "authenticated": true,
                "user": {
                    "username": sa.username(),
                    "uid": sa.uid,
                    "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{}", sa.namespace), "system:authenticated"],
                },
                "audiences": auds,
            }),
            Some(_) => json!({"user": {}, "error": format!(
                "[invalid bearer token, token audiences {API_AUDIENCES:?} is invalid for the target audiences {wanted:?}]")}),
            None => {
                json!({"user": {}, "error": "[invalid bearer token, square/go-jose: error in cryptographic primitive]"})
            }
        };
        (
            201,
            json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                   "metadata": {"creationTimestamp": null}, "spec": review["spec"], "status": st}),
        )
    }

    fn secret(&mut self, who: &Sa, req: &HttpRequest, ns: &str, name: &str) -> (u16, Value) {
        let verb = match req.method.as_str() {
            "GET" => "get",
            "PATCH" => "patch",
            _ => {
                return (
                    405,
                    status(
                        405,
                        "MethodNotAllowed",
                        "only get and patch are served by this stand-in",
                    ),
                )
            }
        };
        let forbidden = |verb: &str| {
            (403, status(403, "Forbidden", &format!(
                "secrets \"{name}\" is forbidden: User \"{}\" cannot {verb} resource \"secrets\" in API group \"\" in the namespace \"{ns}\"",
                who.username())))
        };
        if !self.allowed(who, verb, ns, name) {
            return forbidden(verb);
        }
        let key = (ns.to_string(), name.to_string());
        if verb == "get" {
            return match self.secrets.get(&key) {
                Some(d) => (200, secret_json(ns, name, d)),
                None => (
                    404,
                    status(404, "NotFound", &format!("secrets \"{name}\" not found")),
                ),
            };
        }
        // PATCH: server-side apply only (the script must use it; JSON/merge patches are refused).
        let ctype = req
            .headers
            .get("content-type")
            .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
            .unwrap_or_default();
        if ctype != "application/apply-patch+yaml" {
            return (415, status(415, "UnsupportedMediaType", &format!("the body of the request was in an unknown format - accepted media types include: application/apply-patch+yaml (stand-in), got {ctype:?}")));
        }
        let query = req.target.split_once('?').map(|x| x.1).unwrap_or("");
        let field_manager = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("fieldManager="))
            .unwrap_or("");
        if field_manager.is_empty() {
            return (422, status(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"));
        }
        let Ok(obj) = serde_yaml_ng::from_slice::<Value>(&req.body) else {
            return (400, status(400, "BadRequest", "error decoding YAML"));
        };
        if obj["apiVersion"] != "v1" || obj["kind"] != "Secret" {
            return (
                400,
                status(400, "BadRequest", &format!("not a v1 Secret: {obj}")),
            );
        }
        if obj["metadata"]["name"] != name {
            return (
                400,
                status(
                    400,
                    "BadRequest",
                    &format!(
                        "the name of the object ({}) does not match the name on the URL ({name})",
                        obj["metadata"]["name"]
                    ),
                ),
            );
        }
        if !obj["metadata"]["namespace"].is_null() && obj["metadata"]["namespace"] != ns {
            return (400, status(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request"));
        }
        let mut data = BTreeMap::new();
        if let Some(m) = obj["data"].as_object() {
            for (k, v) in m {
                match v.as_str() {
                    Some(s) if STANDARD.decode(s).is_ok() => {
                        data.insert(k.clone(), s.to_string());
                    }
                    _ => {
                        return (
                            422,
                            status(
                                422,
                                "Invalid",
                                &format!("Secret \"{name}\" is invalid: data[{k}]: not base64"),
                            ),
                        )
                    }
                }
            }
        }
        // Applying to a missing object creates it, which needs the create verb.
        if !self.secrets.contains_key(&key) && !self.allowed(who, "create", ns, name) {
            return forbidden("create");
        }
        // One field manager per Secret here, applying the same keys each time: merging the
        // applied keys is what server-side apply does then.
        let d = self.secrets.entry(key).or_default();
        d.extend(data);
        (200, secret_json(ns, name, d))
    }
}

fn read_request(r: &mut impl BufRead) -> std::io::Result<HttpRequest> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut it = line.split_whitespace();
    let (method, target) = (
        it.next().unwrap_or_default().to_string(),
        it.next().unwrap_or_default().to_string(),
    );
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(HttpRequest {
        method,
        target,
        headers,
        body,
    })
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        415 => "Unsupported Media Type",
        _ => "Unprocessable Entity",
    }
}

/// One request per connection (answered with Connection: close; both clients cope).
fn serve(
    tcp: TcpStream,
    cfg: Arc<rustls::ServerConfig>,
    state: Arc<Mutex<ApiState>>,
) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let conn = rustls::ServerConnection::new(cfg).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let req = read_request(&mut BufReader::new(&mut tls))?;
    let (code, body) = {
        let mut s = state.lock().unwrap();
        let (code, body, who) = s.route(&req);
        s.seen.push(Seen {
            who,
            method: req.method.clone(),
            path: req.target.split('?').next().unwrap_or("").to_string(),
            query: req
                .target
                .split_once('?')
                .map(|x| x.1)
                .unwrap_or("")
                .to_string(),
            content_type: req.headers.get("content-type").cloned().unwrap_or_default(),
            body: String::from_utf8_lossy(&req.body).into_owned(),
            status: code,
        });
        (code, body.to_string())
    };
    write!(
        tls,
        "HTTP/1.1 {code} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason(code),
        body.len()
    )?;
    tls.conn.send_close_notify();
    tls.flush()
}

/// Stand-in for the Kubernetes API server: HTTPS on 127.0.0.1 with a certificate of the test
/// CA (which both the script and OpenBao trust as their service-account ca.crt).
pub struct StandInApi {
    pub port: u16,
    state: Arc<Mutex<ApiState>>,
    stop: Arc<AtomicBool>,
}

impl StandInApi {
    pub fn start(pki: &Pki, state: ApiState) -> StandInApi {
        let (cert, key) = pki.issue("kube-apiserver");
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&key).unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let cfg = Arc::new(cfg);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(state));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(tcp) = conn else { continue };
                let (cfg, st) = (cfg.clone(), st.clone());
                std::thread::spawn(move || {
                    let _ = serve(tcp, cfg, st);
                });
            }
        });
        StandInApi { port, state, stop }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut ApiState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    pub fn seen_len(&self) -> usize {
        self.with(|s| s.seen.len())
    }

    pub fn seen_since(&self, n: usize) -> Vec<Seen> {
        self.with(|s| s.seen[n..].to_vec())
    }
}

impl Drop for StandInApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

//! **Stand-in, named: the Kubernetes API server.** No kube-apiserver or k3s binary can be had
//! here, so this is real nginx on a lab host doing what the API server does where the operations
//! CLI touches it:
//! - TLS on `:6443` with a certificate for the host's address (the API VIP), from a CA the
//!   kubeconfig names;
//! - client certificates **required** (k3s runs kube-apiserver with anonymous auth off): a
//!   request without one is refused in the handshake's aftermath with HTTP 400, never answered;
//! - **recorded** JSON bodies at exact API paths (`/readyz`, `/api/v1/nodes`, ...), each a file
//!   the test can rewrite between requests (a node going NotReady);
//! - **deletable pods** ([`RecordedApi::start_with_pods`]): at
//!   `/api/v1/namespaces/{ns}/pods/{name}` `GET` returns the recorded Pod, `DELETE` answers 200
//!   with the Pod as kube-apiserver returns a graceful delete (`metadata.deletionTimestamp` =
//!   start of the stand-in + 30 s, `metadata.deletionGracePeriodSeconds: 30`; built once when the
//!   stand-in starts, so every DELETE gets the same body), any other method 405 with a `Status`
//!   (reason `MethodNotAllowed`). Nothing is deleted: the test watching
//!   [`RecordedApi::deletions`] plays the kubelet and the StatefulSet controller (stops and
//!   restarts the real engine);
//! - **Jobs** ([`RecordedApi::start_full`] with the address of a [`crate::jobs::JobRunner`], the
//!   Job controller + kubelet stand-in): nginx proxies to it every path under
//!   `/apis/batch/v1/namespaces/` that is not an exact recorded route (a recorded CronJob keeps
//!   being served here), every `/api/v1/namespaces/{ns}/pods/{pod}/log`, and any request whose
//!   `labelSelector` names a Job label (`job-name=`, `controller-uid=`, either with the `batch.kubernetes.io/` prefix) (also on a recorded route such as the pods list);
//! - any other path: 404 with a Kubernetes `Status` body, as the API server answers.
//!
//! Every request is also logged as `$msec $request_method $uri $status` (`requests.log`), which
//! [`RecordedApi::deletions`] reads.
//!
//! The recorded bodies are not recorded from a real cluster (none can run here): the tests build
//! them and check their shape against the Kubernetes schemas (`kubernetes-validate --strict`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::lab::{Lab, LabError, LabHost};
use crate::pki::{PkiError, TestCa};

/// The port k3s's API server (supervisor) listens on.
pub const API_PORT: u16 = 6443;
const NGINX: &str = "/usr/sbin/nginx";
/// The Pod's default `terminationGracePeriodSeconds`, which a graceful delete without
/// `gracePeriodSeconds` uses.
pub const GRACE_PERIOD_SECONDS: u64 = 30;
/// The per-request log [`RecordedApi::deletions`] parses (`log_format drill`).
const REQUEST_LOG: &str = "requests.log";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the API stand-in (nginx) {0}")]
    Nginx(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ApiError {
    let what = what.into();
    move |source| ApiError::Io { what, source }
}

/// One `DELETE` of a pod the stand-in answered with 200 (from its request log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub namespace: String,
    pub pod: String,
    /// When nginx logged the answer (`$msec`, millisecond resolution).
    pub at: SystemTime,
}

pub struct RecordedApi {
    host: LabHost,
    dir: PathBuf,
    child: Mutex<Option<Child>>,
    kubeconfig: PathBuf,
    ca_pem: String,
}

impl Drop for RecordedApi {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The file a recorded path's body lives in.
fn body_file(dir: &Path, path: &str) -> PathBuf {
    dir.join("bodies")
        .join(format!("{}.json", hex::encode(&Sha256::digest(path)[..8])))
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl RecordedApi {
    /// Start nginx on `host` serving `routes` (API path, JSON body); write an admin kubeconfig
    /// (mode 0600) whose client certificate the stand-in requires.
    pub fn start(
        lab: &Lab,
        host: &str,
        ca: &TestCa,
        routes: &[(&str, String)],
    ) -> Result<Self, ApiError> {
        Self::start_with_pods(lab, host, ca, routes, &[])
    }

    /// Like [`start`](Self::start), plus deletable `pods` (namespace, name, Pod JSON object) at
    /// `/api/v1/namespaces/{ns}/pods/{name}`: GET the Pod, DELETE 200 with the Pod marked for
    /// graceful deletion (listed by [`deletions`](Self::deletions)), other methods 405. The Pod
    /// body can be replaced with [`set`](Self::set) like any route; the DELETE answer is built
    /// here, once.
    pub fn start_with_pods(
        lab: &Lab,
        host: &str,
        ca: &TestCa,
        routes: &[(&str, String)],
        pods: &[(&str, &str, String)],
    ) -> Result<Self, ApiError> {
        Self::start_full(lab, host, ca, routes, pods, None)
    }

    /// Like [`start_with_pods`](Self::start_with_pods), plus, when `jobs` is the address of a
    /// [`crate::jobs::JobRunner`], the Job paths proxied to it (plain HTTP on the lab bridge):
    /// everything under `/apis/batch/v1/namespaces/` that is not an exact recorded route, the
    /// pod log paths, and any request whose `labelSelector` names a Job label (`job-name=`, `controller-uid=`) (recorded
    /// routes included). The client certificate is required for these too.
    pub fn start_full(
        lab: &Lab,
        host: &str,
        ca: &TestCa,
        routes: &[(&str, String)],
        pods: &[(&str, &str, String)],
        jobs: Option<SocketAddr>,
    ) -> Result<Self, ApiError> {
        let host = lab.host(host)?.clone();
        let dir = lab.dir().join(format!("kube-api-{}", host.name));
        std::fs::create_dir_all(dir.join("bodies")).map_err(io("create the API stand-in dir"))?;
        let (server_crt, server_key) =
            ca.issue_for(&format!("kube-api-{}", host.name), &[host.ip])?;
        let (client_crt, client_key) = ca.issue("kube-admin")?;
        let mut locations = String::new();
        for (path, body) in routes {
            let file = body_file(&dir, path);
            std::fs::write(&file, body).map_err(io(format!("write the body of {path}")))?;
            locations.push_str(&format!(
                "    location = {path} {{ default_type application/json; alias {}; }}\n",
                file.display()
            ));
        }
        let deleted_at = rfc3339(SystemTime::now() + Duration::from_secs(GRACE_PERIOD_SECONDS));
        for (ns, name, pod) in pods {
            for part in [ns, name] {
                if !is_dns_name(part) {
                    return Err(ApiError::Nginx(format!(
                        "refuses pod {ns}/{name}: {part:?} is not a DNS-1123 name"
                    )));
                }
            }
            let path = format!("/api/v1/namespaces/{ns}/pods/{name}");
            let file = body_file(&dir, &path);
            std::fs::write(&file, pod).map_err(io(format!("write the body of {path}")))?;
            let deleted = nginx_quoted(&graceful_delete_body(pod, &deleted_at)?);
            locations.push_str(&format!(
                "    location = {path} {{\n      default_type application/json;\n      \
                 if ($request_method = DELETE) {{ return 200 '{deleted}'; }}\n      \
                 if ($request_method !~ ^(GET|HEAD)$ ) {{ return 405 '{METHOD_NOT_ALLOWED}'; }}\n      \
                 alias {};\n    }}\n",
                file.display()
            ));
        }
        if let Some(up) = jobs {
            locations.push_str(&jobs_locations(up));
        }
        let not_found = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server could not find the requested resource","reason":"NotFound","code":404}"#;
        let conf = format!(
            "user root root;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  log_format drill '$msec $request_method $uri $status';\n  \
             access_log {d}/access.log;\n  access_log {d}/{REQUEST_LOG} drill;\n  client_body_temp_path {d}/tmp-body;\n  proxy_temp_path {d}/tmp-proxy;\n  \
             fastcgi_temp_path {d}/tmp-fcgi;\n  uwsgi_temp_path {d}/tmp-uwsgi;\n  scgi_temp_path {d}/tmp-scgi;\n  \
             server {{\n    listen {ip}:{API_PORT} ssl;\n    ssl_certificate {crt};\n    ssl_certificate_key {key};\n    \
             ssl_client_certificate {ca};\n    ssl_verify_client on;\n    \
             location = /readyz {{ default_type text/plain; return 200 \"ok\"; }}\n{locations}    \
             location / {{ default_type application/json; return 404 '{not_found}'; }}\n  }}\n}}\n",
            d = dir.display(),
            ip = host.ip,
            crt = server_crt.display(),
            key = server_key.display(),
            ca = ca.dir.join("ca.crt").display(),
        );
        std::fs::write(dir.join("nginx.conf"), conf).map_err(io("write nginx.conf"))?;
        let kubeconfig = dir.join("kubeconfig.yaml");
        let read = |p: &Path| std::fs::read(p).map_err(io(format!("read {}", p.display())));
        write_private(
            &kubeconfig,
            &format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: lab\n\
                 clusters:\n- name: lab\n  cluster:\n    server: https://{ip}:{API_PORT}\n    certificate-authority-data: {ca}\n\
                 contexts:\n- name: lab\n  context:\n    cluster: lab\n    user: lab\n\
                 users:\n- name: lab\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n",
                ip = host.ip,
                ca = b64(ca.ca_pem.as_bytes()),
                cert = b64(&read(&client_crt)?),
                key = b64(&read(&client_key)?),
            ),
        )?;
        let api = RecordedApi {
            host,
            dir,
            child: Mutex::new(None),
            kubeconfig,
            ca_pem: ca.ca_pem.clone(),
        };
        api.run()?;
        Ok(api)
    }

    fn run(&self) -> Result<(), ApiError> {
        let conf = self.dir.join("nginx.conf");
        let test = Command::new("ip")
            .args(["netns", "exec", &self.host.netns, NGINX, "-t", "-q", "-c"])
            .arg(&conf)
            .output()
            .map_err(io("spawn nginx -t"))?;
        if !test.status.success() {
            return Err(ApiError::Nginx(format!(
                "config refused: {}",
                String::from_utf8_lossy(&test.stderr)
            )));
        }
        let child = Command::new("ip")
            .args(["netns", "exec", &self.host.netns, NGINX, "-c"])
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("spawn nginx"))?;
        *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let up = Command::new("ip")
                .args(["netns", "exec", &self.host.netns, "ss", "-Hltn"])
                .arg(format!("sport = :{API_PORT}"))
                .output()
                .map(|o| !o.stdout.is_empty())
                .unwrap_or(false);
            if up {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ApiError::Nginx(format!(
                    "did not listen on {}:{API_PORT} within 10 s: {}",
                    self.host.ip,
                    std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop nginx (the API is down: connections are refused).
    pub fn stop(&self) -> Result<(), ApiError> {
        if let Some(mut c) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            // SIGTERM to the master (our child, by PID): it stops its workers.
            // SAFETY: kill(2) on the PID of a child we spawned and have not yet reaped.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let _ = c.wait();
        }
        Ok(())
    }

    /// Start it again after [`stop`](Self::stop).
    pub fn restart(&self) -> Result<(), ApiError> {
        self.stop()?;
        self.run()
    }

    /// Replace the recorded body of `path` (given at start); the next request sees it.
    pub fn set(&self, path: &str, body: &str) -> Result<(), ApiError> {
        let file = body_file(&self.dir, path);
        if !file.exists() {
            return Err(ApiError::Nginx(format!("has no route {path}")));
        }
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, body).map_err(io(format!("write the body of {path}")))?;
        std::fs::rename(&tmp, &file).map_err(io(format!("replace the body of {path}")))
    }

    /// The admin kubeconfig (client certificate of the stand-in's CA), mode 0600.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://<host ip>:6443`.
    pub fn endpoint(&self) -> String {
        format!("https://{}:{API_PORT}", self.host.ip)
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// nginx's access log (which paths were asked, with status codes).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    /// Every pod `DELETE` answered with 200 so far, in order (nginx's request log; a line still
    /// being written is skipped until it is complete).
    pub fn deletions(&self) -> Vec<Deletion> {
        parse_deletions(&std::fs::read_to_string(self.dir.join(REQUEST_LOG)).unwrap_or_default())
    }
}

/// kube-apiserver's answer to a method a resource does not serve.
const METHOD_NOT_ALLOWED: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server does not allow this method on the requested resource","reason":"MethodNotAllowed","details":{},"code":405}"#;

/// The nginx lines sending the Job paths to the Job stand-in at `up`. A `labelSelector` starting
/// with `[batch.kubernetes.io/]job-name=` or `[batch.kubernetes.io/]controller-uid=` (`=` and `/`
/// sent as is or percent-encoded) is rewritten, at server level so that it wins
/// over exact recorded routes, to an internal location that passes the original URI on. Exact
/// (`=`) locations win over the `/apis/batch/v1/namespaces/` prefix, so a recorded CronJob stays
/// here. No buffering: a followed pod log streams.
fn jobs_locations(up: SocketAddr) -> String {
    let proxy = "proxy_http_version 1.1; proxy_buffering off; proxy_request_buffering off; \
                 proxy_read_timeout 1h;";
    format!(
        "    if ($arg_labelselector ~ \"^(batch\\.kubernetes\\.io(/|%2[Ff]))?(job-name|controller-uid)(=|%3[Dd])\") {{ rewrite ^ /__jobs last; }}\n\
         \x20   location = /__jobs {{ internal; {proxy} proxy_pass http://{up}$request_uri; }}\n\
         \x20   location /apis/batch/v1/namespaces/ {{ {proxy} proxy_pass http://{up}; }}\n\
         \x20   location ~ ^/api/v1/namespaces/[^/]+/pods/[^/]+/log$ {{ {proxy} proxy_pass http://{up}; }}\n"
    )
}

/// Lines `MSEC METHOD URI STATUS` -> the `DELETE .../pods/NAME 200` ones. Only complete
/// (newline-terminated) lines: nginx may be mid-write.
fn parse_deletions(log: &str) -> Vec<Deletion> {
    let complete = log.rfind('\n').map_or("", |end| &log[..end]);
    complete
        .lines()
        .filter_map(|line| {
            let mut f = line.split(' ');
            let (msec, method, uri, status) = (f.next()?, f.next()?, f.next()?, f.next()?);
            if method != "DELETE" || status != "200" || f.next().is_some() {
                return None;
            }
            let rest = uri.strip_prefix("/api/v1/namespaces/")?;
            let (namespace, pod) = rest.split_once("/pods/")?;
            if namespace.contains('/') || pod.contains('/') {
                return None;
            }
            let (secs, millis) = msec.split_once('.')?;
            let at = UNIX_EPOCH
                + Duration::from_secs(secs.parse().ok()?)
                + Duration::from_millis(millis.parse().ok()?);
            Some(Deletion {
                namespace: namespace.to_string(),
                pod: pod.to_string(),
                at,
            })
        })
        .collect()
}

/// A DNS-1123 subdomain (what namespaces and pod names are): safe in an nginx location path.
pub(crate) fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// The Pod as kube-apiserver returns it from a graceful delete: unchanged but for
/// `metadata.deletionTimestamp` (when the grace period ends) and
/// `metadata.deletionGracePeriodSeconds`.
fn graceful_delete_body(pod: &str, deletion_timestamp: &str) -> Result<String, ApiError> {
    let mut v: serde_json::Value = serde_json::from_str(pod)
        .map_err(|e| ApiError::Nginx(format!("refuses a Pod body that is not JSON: {e}")))?;
    let meta = v
        .as_object_mut()
        .ok_or_else(|| ApiError::Nginx("refuses a Pod body that is not a JSON object".into()))?
        .entry("metadata")
        .or_insert_with(|| serde_json::json!({}));
    let meta = meta
        .as_object_mut()
        .ok_or_else(|| ApiError::Nginx("refuses a Pod whose metadata is not an object".into()))?;
    meta.insert("deletionTimestamp".into(), deletion_timestamp.into());
    meta.insert(
        "deletionGracePeriodSeconds".into(),
        GRACE_PERIOD_SECONDS.into(),
    );
    Ok(v.to_string())
}

/// Compact JSON made safe inside an nginx single-quoted `return` text: nginx un-escapes `\\`,
/// `\'`, `\"` (and `\n`, `\t`, `\r`) and interpolates `$`, so backslashes are doubled, and `$`
/// and `'` (which compact JSON only holds inside strings) become the JSON escapes `\u0024` and
/// `\u0027`: the client parses the same value.
fn nginx_quoted(json: &str) -> String {
    json.replace('\\', "\\\\")
        .replace('$', "\\\\u0024")
        .replace('\'', "\\\\u0027")
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds: the API's `metav1.Time`).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's days_from_civil, inverted).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // date -u -d @1709164799 +%FT%TZ (a leap day) and @4102444800.
        let at = |s: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(1_709_164_799), "2024-02-28T23:59:59Z");
        assert_eq!(at(1_709_164_800), "2024-02-29T00:00:00Z");
        assert_eq!(at(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn nginx_quoted_keeps_the_json_value() {
        let v = serde_json::json!({"a": "x$y'z\\q\"w\n"});
        let quoted = nginx_quoted(&v.to_string());
        assert!(!quoted.contains('$') && !quoted.contains('\''), "{quoted}");
        // nginx's un-escaping of a quoted token (ngx_conf_file.c): \\ -> \ (and \' \" \t \r \n).
        let mut back = String::new();
        let mut it = quoted.chars();
        while let Some(c) = it.next() {
            if c == '\\' {
                match it.next() {
                    Some(n @ ('\\' | '\'' | '"')) => back.push(n),
                    Some('n') => back.push('\n'),
                    Some(n) => {
                        back.push('\\');
                        back.push(n);
                    }
                    None => back.push('\\'),
                }
            } else {
                back.push(c);
            }
        }
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&back).ok(),
            Some(v)
        );
    }

    #[test]
    fn deletions_are_the_complete_delete_200_lines() {
        let log = "1764763200.125 GET /api/v1/namespaces/db/pods/p-0 200\n\
                   1764763200.250 DELETE /api/v1/namespaces/db/pods/p-0 200\n\
                   1764763200.300 DELETE /api/v1/namespaces/db/pods/nope 404\n\
                   1764763200.400 DELETE /api/v1/nodes 405\n\
                   1764763201.007 DELETE /api/v1/namespaces/vault/pods/vault-1 200\n\
                   1764763202.000 DELETE /api/v1/namespaces/db/pods/p-1 2";
        let d = parse_deletions(log);
        let names: Vec<(&str, &str)> = d
            .iter()
            .map(|d| (d.namespace.as_str(), d.pod.as_str()))
            .collect();
        assert_eq!(names, [("db", "p-0"), ("vault", "vault-1")]);
        assert_eq!(
            d[1].at,
            UNIX_EPOCH + Duration::from_secs(1_764_763_201) + Duration::from_millis(7)
        );
    }
}

fn write_private(path: &Path, content: &str) -> Result<(), ApiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("write {}", path.display())))?;
    f.write_all(content.as_bytes())
        .map_err(io(format!("write {}", path.display())))
}

/// `kubernetes-validate --strict` (tools/venv, `make deps`) on each object against Kubernetes
/// `kube_minor` (e.g. "1.36"): recorded bodies and what the CLI sends must fit the real schema.
/// It validates single objects, not lists, and names each by `metadata.name`: a `generateName`
/// body gets one for the tool only. `Err` carries the tool's report.
pub fn schema_check(objects: &[serde_json::Value], kube_minor: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let mut files = vec![];
    for (i, o) in objects.iter().enumerate() {
        let mut o = o.clone();
        if o["metadata"]["name"].is_null() {
            let prefix = o["metadata"]["generateName"]
                .as_str()
                .unwrap_or("generated-");
            o["metadata"]["name"] = serde_json::json!(format!("{prefix}xxxxx"));
        }
        let f = dir.path().join(format!("{i}.yaml"));
        std::fs::write(&f, o.to_string()).map_err(|e| format!("{}: {e}", f.display()))?;
        files.push(f);
    }
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--kubernetes-version", kube_minor])
        .args(&files)
        .output()
        .map_err(|e| format!("kubernetes-validate (tools/venv/bin, make deps): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() || text.matches("passed").count() != objects.len() {
        return Err(format!(
            "objects do not fit the Kubernetes {kube_minor} schema:\n{text}"
        ));
    }
    Ok(())
}

/// Builders of the recorded API objects, in the shape kube-apiserver returns them (the lab test
/// `kube_api_recordings` checks each against the Kubernetes schema of the pinned minor).
pub mod recorded {
    use serde_json::{json, Value};

    const SEEN: &str = "2026-12-03T10:00:00Z";

    /// A UUID-shaped uid, the same for the same object and generation.
    fn uid(namespace: &str, name: &str, generation: u32) -> String {
        use sha2::{Digest, Sha256};
        let h = hex::encode(Sha256::digest(format!("{namespace}/{name}/{generation}")));
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    /// `pod` as its StatefulSet creates it again: the same name, a new uid (generation `n`).
    pub fn recreated(pod: &Value, n: u32) -> Value {
        let mut p = pod.clone();
        let ns = p["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = p["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        p["metadata"]["uid"] = json!(uid(&ns, &name, n));
        p
    }

    /// A node's Lease as the kubelet renews it (`kube-node-lease`), renewed at `renew_time`
    /// (RFC 3339 with microseconds, as kube-apiserver writes a MicroTime).
    pub fn lease(node: &str, renew_time: &str) -> Value {
        json!({
            "kind": "Lease",
            "apiVersion": "coordination.k8s.io/v1",
            "metadata": {"name": node, "namespace": "kube-node-lease", "creationTimestamp": SEEN},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": renew_time}
        })
    }

    /// A Node as `GET /api/v1/nodes` lists it (k3s labels servers as control-plane + etcd).
    pub fn node(name: &str, ip: &str, server: bool, ready: bool, kubelet_version: &str) -> Value {
        let mut labels = json!({
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "node.kubernetes.io/instance-type": "k3s",
        });
        if server {
            labels["node-role.kubernetes.io/control-plane"] = json!("true");
            labels["node-role.kubernetes.io/etcd"] = json!("true");
        }
        let (status, reason, message) = if ready {
            ("True", "KubeletReady", "kubelet is posting ready status")
        } else {
            (
                "Unknown",
                "NodeStatusUnknown",
                "Kubelet stopped posting node status.",
            )
        };
        json!({
            "kind": "Node",
            "apiVersion": "v1",
            "metadata": {"name": name, "uid": format!("00000000-0000-4000-8000-{:0>12}", name.len()), "resourceVersion": "1000", "creationTimestamp": SEEN, "labels": labels},
            "spec": {"podCIDR": "10.42.0.0/24", "podCIDRs": ["10.42.0.0/24"], "providerID": format!("k3s://{name}")},
            "status": {
                "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                "conditions": [{"type": "Ready", "status": status, "reason": reason, "message": message, "lastHeartbeatTime": SEEN, "lastTransitionTime": SEEN}],
                "nodeInfo": {"machineID": "0", "systemUUID": "0", "bootID": "0", "kernelVersion": "6.1.0", "osImage": "Ubuntu 24.04 LTS", "containerRuntimeVersion": "containerd://2.1.4-k3s1", "kubeletVersion": kubelet_version, "kubeProxyVersion": kubelet_version, "operatingSystem": "linux", "architecture": "amd64"}
            }
        })
    }

    /// The NodeList of a lab's hosts (servers: names containing "master"), `not_ready` NotReady,
    /// each at the kubelet version `version_of` gives.
    pub fn lab_nodes(
        hosts: &[crate::lab::LabHost],
        not_ready: &str,
        version_of: &dyn Fn(&str) -> String,
    ) -> Value {
        list(
            "NodeList",
            hosts
                .iter()
                .map(|h| {
                    node(
                        &h.name,
                        &h.ip.to_string(),
                        h.name.contains("master"),
                        h.name != not_ready,
                        &version_of(&h.name),
                    )
                })
                .collect(),
        )
    }

    /// A list (`NodeList`, `PodList`, ...) of `items`.
    pub fn list(kind: &str, items: Vec<Value>) -> Value {
        json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "1000"}, "items": items})
    }

    /// A running pod with `labels` on `node` at `ip`.
    pub fn pod(namespace: &str, name: &str, labels: Value, node: &str, ip: &str) -> Value {
        json!({
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {"name": name, "namespace": namespace, "uid": uid(namespace, name, 1), "labels": labels, "creationTimestamp": SEEN},
            "spec": {"nodeName": node, "containers": [{"name": "database", "image": "percona/percona-distribution-postgresql:17.10-1"}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "conditions": [{"type": "Ready", "status": "True"}]}
        })
    }

    /// A ClusterIP Service at `cluster_ip:port`.
    pub fn service(namespace: &str, name: &str, cluster_ip: &str, port: u16) -> Value {
        json!({
            "kind": "Service",
            "apiVersion": "v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": SEEN},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "ports": [{"name": "pgbouncer", "protocol": "TCP", "port": port, "targetPort": "pgbouncer"}]},
            "status": {"loadBalancer": {}}
        })
    }

    /// A Secret holding `data` (values base64-encoded as the API returns them).
    pub fn secret(namespace: &str, name: &str, data: &[(&str, &[u8])]) -> Value {
        use base64::Engine;
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| {
                (
                    (*k).to_string(),
                    json!(base64::engine::general_purpose::STANDARD.encode(v)),
                )
            })
            .collect();
        json!({"kind": "Secret", "apiVersion": "v1", "type": "Opaque", "metadata": {"name": name, "namespace": namespace, "creationTimestamp": SEEN}, "data": data})
    }
}

//! A Kubernetes API client for the operations CLI: the admin kubeconfig's server, CA and
//! credentials. k3s runs kube-apiserver with anonymous auth off, so every request carries the
//! kubeconfig's client certificate (or bearer token). Reads, and few writes: deleting a pod, which
//! is how `ffe-ha drill` fails a component the way Kubernetes itself would, and creating and
//! deleting the Job `ffe-ha backup verify` runs.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_yaml_ng::Value;

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig cannot be used (never includes key material).
    #[error("kubeconfig {source_name}: {reason}")]
    Kubeconfig { source_name: String, reason: String },
    #[error("{method} {url}: {reason}")]
    Request {
        method: String,
        url: String,
        reason: String,
    },
    #[error("{method} {url}: HTTP {status}: {body}")]
    Status {
        method: String,
        url: String,
        status: u16,
        body: String,
    },
}

/// An HTTP answer of the API server.
#[derive(Debug, Clone)]
pub struct ApiAnswer {
    pub status: u16,
    pub body: String,
}

/// The API server of one kubeconfig context.
#[derive(Clone)]
pub struct KubeApi {
    server: String,
    http: reqwest::Client,
}

/// A kubeconfig credential field: inline (`*-data`, base64) or a file next to the kubeconfig.
fn field_bytes(
    m: &Value,
    key: &str,
    dir: Option<&Path>,
    bad: &dyn Fn(String) -> KubeError,
) -> Result<Option<Vec<u8>>, KubeError> {
    if let Some(data) = m.get(format!("{key}-data")).and_then(Value::as_str) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| bad(format!("{key}-data is not base64 ({e})")))?;
        return Ok(Some(bytes));
    }
    if let Some(file) = m.get(key).and_then(Value::as_str) {
        let path = match dir {
            Some(d) if Path::new(file).is_relative() => d.join(file),
            _ => Path::new(file).to_path_buf(),
        };
        let bytes =
            std::fs::read(&path).map_err(|e| bad(format!("{key} {}: {e}", path.display())))?;
        return Ok(Some(bytes));
    }
    Ok(None)
}

/// The entry named `name` in the list `list` (`clusters`, `users`) of a kubeconfig.
fn named<'a>(doc: &'a Value, list: &str, name: &str) -> Option<&'a Value> {
    doc.get(list)?
        .as_sequence()?
        .iter()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(name))
}

impl KubeApi {
    /// Read the kubeconfig at `path` (the environment's `kubeconfig_path`, mode 0600).
    pub fn from_kubeconfig_file(path: &Path, timeout: Duration) -> Result<Self, KubeError> {
        let source_name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| KubeError::Kubeconfig {
            source_name: source_name.clone(),
            reason: format!("cannot be read ({e}): run `terraform apply` in the environment (it writes the file), or pass --kubeconfig"),
        })?;
        Self::from_kubeconfig(&text, &source_name, path.parent(), timeout)
    }

    /// Build the client for the kubeconfig's current context. `dir` resolves relative file
    /// references; `timeout` bounds each request.
    pub fn from_kubeconfig(
        yaml: &str,
        source_name: &str,
        dir: Option<&Path>,
        timeout: Duration,
    ) -> Result<Self, KubeError> {
        let bad = |reason: String| KubeError::Kubeconfig {
            source_name: source_name.to_string(),
            reason,
        };
        let doc: Value =
            serde_yaml_ng::from_str(yaml).map_err(|e| bad(format!("not YAML ({e})")))?;
        let ctx_name = doc
            .get("current-context")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("has no current-context".into()))?;
        let ctx = named(&doc, "contexts", ctx_name)
            .and_then(|c| c.get("context"))
            .ok_or_else(|| bad(format!("context {ctx_name:?} is not defined")))?;
        let cluster_name = ctx.get("cluster").and_then(Value::as_str).unwrap_or("");
        let user_name = ctx.get("user").and_then(Value::as_str).unwrap_or("");
        let cluster = named(&doc, "clusters", cluster_name)
            .and_then(|c| c.get("cluster"))
            .ok_or_else(|| bad(format!("cluster {cluster_name:?} is not defined")))?;
        let user = named(&doc, "users", user_name)
            .and_then(|u| u.get("user"))
            .ok_or_else(|| bad(format!("user {user_name:?} is not defined")))?;
        let server = cluster
            .get("server")
            .and_then(Value::as_str)
            .filter(|s| s.starts_with("https://"))
            .ok_or_else(|| bad(format!("cluster {cluster_name:?} has no https server")))?
            .trim_end_matches('/')
            .to_string();
        let ca = field_bytes(cluster, "certificate-authority", dir, &bad)?.ok_or_else(|| {
            bad(format!(
                "cluster {cluster_name:?} has no certificate-authority(-data): the API server's certificate could not be verified"
            ))
        })?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&ca) {
            let cert = cert.map_err(|e| bad(format!("certificate-authority is not PEM ({e})")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("certificate-authority is not usable ({e})")))?;
        }
        if roots.is_empty() {
            return Err(bad("certificate-authority holds no certificate".into()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .with_root_certificates(roots);
        let cert = field_bytes(user, "client-certificate", dir, &bad)?;
        let key = field_bytes(user, "client-key", dir, &bad)?;
        let token = user.get("token").and_then(Value::as_str);
        let tls = match (cert, key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_slice_iter(&cert)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(format!("client-certificate is not PEM ({e})")))?;
                // The key's own parse error is not shown: it could echo key material.
                let key = PrivateKeyDer::from_pem_slice(&key)
                    .map_err(|_| bad("client-key is not a PEM private key".into()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| bad(format!("client certificate and key do not fit ({e})")))?
            }
            (None, None) if token.is_some() => builder.with_no_client_auth(),
            _ => {
                return Err(bad(format!(
                    "user {user_name:?} has neither a client certificate with its key nor a token"
                )))
            }
        };
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| bad("the user's token is not a valid header value".into()))?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .https_only(true)
            .connect_timeout(timeout)
            .timeout(timeout)
            .default_headers(headers)
            .no_proxy()
            .build()
            .map_err(|e| bad(format!("building the HTTPS client failed: {e}")))?;
        Ok(KubeApi { server, http })
    }

    /// `https://host:port` of the API server.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// GET `path` (e.g. `/api/v1/nodes`): the status and body, whatever the status.
    pub async fn get_raw(&self, path: &str) -> Result<ApiAnswer, KubeError> {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        json: Option<&serde_json::Value>,
    ) -> Result<ApiAnswer, KubeError> {
        let url = format!("{}{path}", self.server);
        let verb = method.to_string();
        let reason = |e: reqwest::Error| {
            // reqwest hides the TLS cause in its source chain.
            let mut text = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                text.push_str(&format!(": {s}"));
                src = s.source();
            }
            text
        };
        let mut request = self
            .http
            .request(method, &url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = json {
            request = request.json(body);
        }
        let resp = request.send().await.map_err(|e| KubeError::Request {
            method: verb.clone(),
            url: url.clone(),
            reason: reason(e),
        })?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| KubeError::Request {
            method: verb,
            url: url.clone(),
            reason: reason(e),
        })?;
        Ok(ApiAnswer { status, body })
    }

    /// `method path`; anything but 2xx is an error carrying the API server's message.
    async fn ok_body(
        &self,
        method: reqwest::Method,
        path: &str,
        json: Option<&serde_json::Value>,
    ) -> Result<String, KubeError> {
        let verb = method.to_string();
        let a = self.send(method, path, json).await?;
        if (200..300).contains(&a.status) {
            Ok(a.body)
        } else {
            Err(KubeError::Status {
                method: verb,
                url: format!("{}{path}", self.server),
                status: a.status,
                body: status_message(&a.body),
            })
        }
    }

    /// GET `path`; anything but 2xx is an error carrying the API server's message.
    pub async fn get(&self, path: &str) -> Result<String, KubeError> {
        self.ok_body(reqwest::Method::GET, path, None).await
    }

    /// POST `object` to the collection at `path` (e.g. `/apis/batch/v1/namespaces/ns/jobs`): the
    /// created object as the API server returns it (its generated name, uid).
    pub async fn create(
        &self,
        path: &str,
        object: &serde_json::Value,
    ) -> Result<String, KubeError> {
        self.ok_body(reqwest::Method::POST, path, Some(object))
            .await
    }

    /// DELETE the object at `path` (callers add `?propagationPolicy=...` when its dependents must
    /// go too). Returns the API's answer.
    pub async fn delete(&self, path: &str) -> Result<String, KubeError> {
        self.ok_body(reqwest::Method::DELETE, path, None).await
    }

    /// Delete a pod the way `kubectl delete pod` does: gracefully (the pod's own grace period,
    /// SIGTERM first); its controller (StatefulSet) creates it again. Returns the API's answer.
    pub async fn delete_pod(&self, namespace: &str, name: &str) -> Result<String, KubeError> {
        // Names reach the URL path: DNS-1123 only, so nothing but that pod can be meant.
        for n in [namespace, name] {
            let ok = !n.is_empty()
                && n.len() <= 253
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
                && !n.starts_with(['-', '.'])
                && !n.ends_with(['-', '.'])
                && !n.contains("..");
            if !ok {
                return Err(KubeError::Request {
                    method: "DELETE".into(),
                    url: self.server.clone(),
                    reason: format!("{n:?} is not a Kubernetes object name"),
                });
            }
        }
        self.delete(&format!("/api/v1/namespaces/{namespace}/pods/{name}"))
            .await
    }
}

/// The `message` of a Kubernetes `Status` body, else the body's first line (bounded).
pub fn status_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| {
            body.lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    /// A kubeconfig with a real CA (from the lab's test CA) and `user` as the user's fields.
    fn config(user: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let ca = ffe_lab::pki::TestCa::new(dir.path()).unwrap();
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {{cluster: k, user: u}}\n\
             clusters:\n- name: k\n  cluster:\n    server: https://10.210.0.9:6443\n    certificate-authority-data: {}\n\
             users:\n- name: u\n  user:\n{user}",
            b64(&ca.ca_pem)
        )
    }

    /// Why `yaml` is refused as a kubeconfig ("" when it is accepted).
    fn refusal(yaml: &str) -> String {
        KubeApi::from_kubeconfig(yaml, "kc", None, Duration::from_secs(1))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn a_user_without_credentials_is_refused_by_name() {
        let e = refusal(&config("    {}\n"));
        assert!(e.contains("kc") && e.contains("user \"u\""), "{e}");
    }

    #[test]
    fn a_missing_context_and_plain_http_are_refused() {
        let text = config("    token: abc\n");
        let e = refusal(&text.replace("current-context: c", "current-context: x"));
        assert!(e.contains("context \"x\""), "{e}");
        let e = refusal(&text.replace("https://", "http://"));
        assert!(e.contains("no https server"), "{e}");
    }

    #[test]
    fn a_bad_key_is_named_without_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ffe_lab::pki::TestCa::new(dir.path()).unwrap();
        let (crt, _) = ca.issue("client").unwrap();
        let user = format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&std::fs::read_to_string(crt).unwrap()),
            b64("-----BEGIN EC PRIVATE KEY-----\nSECRETSECRET\n-----END EC PRIVATE KEY-----\n")
        );
        let e = refusal(&config(&user));
        assert!(!e.is_empty() && !e.contains("SECRET"), "{e}");
    }

    fn token_api() -> KubeApi {
        KubeApi::from_kubeconfig(
            &config("    token: abc\n"),
            "kc",
            None,
            Duration::from_secs(1),
        )
        .unwrap()
    }

    #[test]
    fn a_token_user_builds_and_keeps_the_server() {
        assert_eq!(token_api().server(), "https://10.210.0.9:6443");
    }

    #[tokio::test]
    async fn delete_pod_refuses_names_that_are_not_object_names() {
        let api = token_api();
        // Refused before any request (the server address is never contacted).
        for (ns, pod) in [
            ("ffe-data", "../../nodes/x"),
            ("ffe-data", ""),
            ("a/b", "p"),
            ("ffe-data", "P"),
        ] {
            let e = api.delete_pod(ns, pod).await.unwrap_err().to_string();
            assert!(
                e.contains("is not a Kubernetes object name"),
                "{ns}/{pod}: {e}"
            );
        }
    }

    #[test]
    fn status_message_prefers_the_kubernetes_message() {
        assert_eq!(
            status_message(r#"{"kind":"Status","message":"nodes is forbidden"}"#),
            "nodes is forbidden"
        );
        assert_eq!(status_message("Unauthorized\nmore"), "Unauthorized");
    }
}

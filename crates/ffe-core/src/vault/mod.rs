//! Vault / OpenBao over its HTTP API (issue 14): initialise and unseal a Raft cluster
//! ([`init`]), configure it ([`config`]), read its CA from a k3s Secret ([`ca`]).
//!
//! Every member is reached over HTTPS, trusting only the CA given for the cluster. The
//! `vaultrs` client covers most endpoints; the few it lacks (sys/seal-status, sys/audit) and
//! sys/init (whose raw answer must reach disk before anything could fail parsing it) go
//! through the same reqwest client.

pub mod ca;
pub mod config;
pub mod init;

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, Url};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use vaultrs::api::EndpointMiddleware;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

/// One HTTP request may take this long; waits are loops of such requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("{attribute}: {message}")]
    Invalid { attribute: String, message: String },
    #[error("{address}: no answer within {secs} s (last error: {last}); check that the member runs and listens on that address (and that its certificate chains to the given CA), or raise wait_timeout_seconds. Nothing was initialised.")]
    Unreachable {
        address: String,
        secs: u64,
        last: String,
    },
    #[error("{address}: {message}")]
    Api { address: String, message: String },
    #[error("{address}: initialised outside Terraform: put its unseal keys and root token in {keys_file} as {{\"keys_base64\": [...], \"root_token\": \"...\"}} and apply again; ffe never re-initialises")]
    InitialisedOutside { address: String, keys_file: String },
    #[error("keys_file {path}: {message}")]
    KeysFile { path: String, message: String },
    #[error("{address}: still sealed after {secs} s (last: {last}); check its log (a follower must reach the active member to join the Raft cluster), then apply again or unseal it by hand with `vault operator unseal` (OpenBao: `bao`; docs/vault.md)")]
    StillSealed {
        address: String,
        secs: u64,
        last: String,
    },
    #[error("ca_cert_pem: {0}")]
    Ca(String),
    #[error("ca_secret: {0}")]
    CaSecret(String),
}

fn invalid(attribute: &str, message: impl Into<String>) -> VaultError {
    VaultError::Invalid {
        attribute: attribute.into(),
        message: message.into(),
    }
}

/// A member address must be `https://host:port` with nothing else: it is the base URL of
/// every API call, and the TLS name checked against the member's certificate.
pub fn check_address(address: &str) -> Result<(), String> {
    let url = Url::parse(address).map_err(|e| {
        format!("{address:?} is not a URL ({e}): write it as https://<ip or name>:8200")
    })?;
    if url.scheme() != "https" {
        return Err(format!(
            "{address:?} uses {}://: only https:// is accepted (the API carries unseal keys and tokens); write https://{}:{}",
            url.scheme(),
            url.host_str().unwrap_or("<host>"),
            url.port_or_known_default().unwrap_or(8200)
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "{address:?} has no host: write https://<ip or name>:8200"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{address:?} carries credentials: drop the user:password@ part"
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{address:?} has a path, query or fragment: give only https://<host>:<port>"
        ));
    }
    Ok(())
}

/// Shamir parameters as `sys/init` accepts them.
pub fn check_shamir(
    shares: i64,
    threshold: i64,
    pgp_keys: Option<usize>,
) -> Result<(), VaultError> {
    if !(1..=255).contains(&shares) {
        return Err(invalid(
            "secret_shares",
            format!("{shares} is out of range: use 1 to 255 (default 5)"),
        ));
    }
    if threshold < 1 || threshold > shares {
        return Err(invalid(
            "secret_threshold",
            format!("{threshold} must be between 1 and secret_shares ({shares}): lower secret_threshold or raise secret_shares"),
        ));
    }
    if shares > 1 && threshold == 1 {
        // Vault itself refuses this combination.
        return Err(invalid(
            "secret_threshold",
            "1 with more than one share is refused by Vault: use a threshold of at least 2, or secret_shares = 1",
        ));
    }
    if let Some(n) = pgp_keys {
        if n as i64 != shares {
            return Err(invalid(
                "pgp_keys",
                format!("{n} keys given for {shares} shares: give exactly secret_shares keys (one per share), or leave pgp_keys unset"),
            ));
        }
    }
    Ok(())
}

/// A reqwest client trusting only the certificates in `ca_pem`, https only.
pub fn http_client(ca_pem: &str) -> Result<reqwest::Client, VaultError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| VaultError::Ca(format!("not PEM ({e})")))?;
        roots
            .add(cert)
            .map_err(|e| VaultError::Ca(format!("not a usable certificate ({e})")))?;
    }
    if roots.is_empty() {
        return Err(VaultError::Ca(
            "holds no CERTIFICATE block: give the PEM of the CA the members' certificates chain to"
                .into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| VaultError::Ca(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .https_only(true)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        // No idle connections kept: a restarted member would leave a dead one in the pool.
        .pool_max_idle_per_host(0)
        .no_proxy()
        .build()
        .map_err(|e| VaultError::Ca(format!("building the HTTPS client failed: {e}")))
}

/// A plain-HTTP client for an OpenBao this process started on loopback (`ffe-ha backup
/// verify`'s scratch restore): no TLS is spoken, but reqwest's rustls backend still needs its
/// crypto provider named.
pub fn loopback_client(timeout: std::time::Duration) -> Result<reqwest::Client, VaultError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| VaultError::Ca(e.to_string()))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(timeout)
        .no_proxy()
        .build()
        .map_err(|e| VaultError::Ca(format!("building the HTTP client failed: {e}")))
}

/// One member of the cluster.
#[derive(Clone)]
pub struct Member {
    pub address: String,
    http: reqwest::Client,
}

/// `sys/seal-status` (vaultrs has no call for it).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct SealStatus {
    #[serde(default)]
    pub initialized: bool,
    #[serde(default)]
    pub sealed: bool,
    #[serde(default, rename = "t")]
    pub threshold: u64,
    #[serde(default, rename = "n")]
    pub shares: u64,
    #[serde(default)]
    pub progress: u64,
}

/// `sys/health` of one member.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Health {
    /// The HTTP status it came with.
    #[serde(skip)]
    pub status: u16,
    #[serde(default)]
    pub initialized: bool,
    #[serde(default)]
    pub sealed: bool,
    #[serde(default)]
    pub standby: bool,
    #[serde(default)]
    pub version: String,
}

/// An HTTP answer: status and body.
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Vault's `{"errors": [...]}`, or the body.
    fn errors(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| {
                v["errors"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|e| e.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                })
            })
            .unwrap_or_else(|| text.trim().chars().take(300).collect())
    }
}

impl Member {
    /// Members for `addresses`, sharing one client trusting `ca_pem` only.
    pub fn all(addresses: &[String], ca_pem: &str) -> Result<Vec<Member>, VaultError> {
        for a in addresses {
            check_address(a).map_err(|m| invalid("member_addresses", m))?;
        }
        if addresses.is_empty() {
            return Err(invalid(
                "member_addresses",
                "is empty: list every member's https://<ip>:8200",
            ));
        }
        let http = http_client(ca_pem)?;
        Ok(addresses
            .iter()
            .map(|a| Member {
                address: a.trim_end_matches('/').to_string(),
                http: http.clone(),
            })
            .collect())
    }

    fn api_err(&self, message: impl Into<String>) -> VaultError {
        VaultError::Api {
            address: self.address.clone(),
            message: message.into(),
        }
    }

    /// A raw API call; `Err` only when no HTTP answer came (refused, timeout, TLS).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, String> {
        let mut req = self
            .http
            .request(method, format!("{}/v1/{path}", self.address));
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| error_chain(&e))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| error_chain(&e))?.to_vec();
        Ok(Answer { status, body })
    }

    /// A raw call whose non-2xx answers are errors naming this member and `what`.
    pub(crate) async fn call_ok(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
        what: &str,
    ) -> Result<Answer, VaultError> {
        let a = self
            .call(method, path, token, body)
            .await
            .map_err(|e| self.api_err(format!("{what}: {e}")))?;
        if a.ok() {
            Ok(a)
        } else {
            Err(self.api_err(format!("{what}: HTTP {}: {}", a.status, a.errors())))
        }
    }

    /// `GET sys/health`: answered without a token, with a status code per state (OpenBao
    /// `http/sys_health.go`: 200 active, 429 standby, 503 sealed, 501 not initialised).
    /// `Err` only when no HTTP answer came.
    pub async fn health(&self) -> Result<Health, String> {
        let a = self.call(Method::GET, "sys/health", None, None).await?;
        let mut h: Health = serde_json::from_slice(&a.body)
            .map_err(|e| format!("HTTP {}: unexpected sys/health answer ({e})", a.status))?;
        h.status = a.status;
        Ok(h)
    }

    pub async fn seal_status(&self) -> Result<SealStatus, String> {
        let a = self
            .call(Method::GET, "sys/seal-status", None, None)
            .await?;
        if !a.ok() {
            return Err(format!("HTTP {}: {}", a.status, a.errors()));
        }
        serde_json::from_slice(&a.body).map_err(|e| format!("unexpected seal-status answer: {e}"))
    }

    /// A vaultrs client for this member with `token`, over the same CA-pinned connection.
    pub fn client(&self, token: &str) -> Result<VaultClient, VaultError> {
        let settings = VaultClientSettingsBuilder::default()
            .address(&self.address)
            .token(token)
            .ca_certs(vec![])
            .identity(None)
            .verify(true)
            .namespace(None)
            .build()
            .map_err(|e| self.api_err(format!("client settings: {e}")))?;
        Ok(VaultClient {
            http: rustify::clients::reqwest::Client::new(&self.address, self.http.clone()),
            middle: EndpointMiddleware {
                token: token.to_string(),
                version: "v1".into(),
                wrap: None,
                namespace: None,
            },
            settings,
        })
    }
}

/// reqwest's Display hides the cause (connection refused, certificate error): keep it all.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}

/// A vaultrs error as text, with Vault's own messages.
pub(crate) fn client_error(e: &ClientError) -> String {
    match e {
        ClientError::APIError { code, errors } => format!("HTTP {code}: {}", errors.join("; ")),
        other => error_chain(other),
    }
}

/// HTTP status of a vaultrs error, when Vault answered.
pub(crate) fn client_status(e: &ClientError) -> Option<u16> {
    match e {
        ClientError::APIError { code, .. } => Some(*code),
        ClientError::RestClientError {
            source: rustify::errors::ClientError::ServerResponseError { code, .. },
        } => Some(*code),
        _ => None,
    }
}

/// Make `cmd`'s child die with this process (Linux: `PR_SET_PDEATHSIG` = SIGKILL): a scratch
/// server holding restored secrets must not outlive an `ffe-ha` that was killed. Elsewhere a
/// no-op (the caller's `kill_on_drop` still covers a normal end).
pub fn die_with_parent(cmd: &mut tokio::process::Command) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
        // which is async-signal-safe; it touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_must_be_plain_https() {
        assert!(check_address("https://10.0.1.50:8200").is_ok());
        assert!(check_address("https://vault.vault.svc:8200").is_ok());
        let e = check_address("http://10.0.1.50:8200").unwrap_err();
        assert!(
            e.contains("only https://") && e.contains("https://10.0.1.50:8200"),
            "{e}"
        );
        assert!(check_address("10.0.1.50:8200").is_err());
        assert!(check_address("https://10.0.1.50:8200/v1").is_err());
        assert!(check_address("https://u:p@10.0.1.50:8200").is_err());
        assert!(check_address("https://").is_err());
    }

    #[test]
    fn shamir_limits() {
        assert!(check_shamir(5, 3, None).is_ok());
        assert!(check_shamir(1, 1, None).is_ok());
        let e = check_shamir(3, 5, None).unwrap_err().to_string();
        assert!(e.starts_with("secret_threshold:"), "{e}");
        assert!(check_shamir(0, 0, None).is_err());
        assert!(check_shamir(256, 3, None).is_err());
        assert!(check_shamir(5, 0, None).is_err());
        let e = check_shamir(5, 3, Some(4)).unwrap_err().to_string();
        assert!(e.starts_with("pgp_keys:"), "{e}");
        assert!(check_shamir(5, 3, Some(5)).is_ok());
    }

    #[test]
    fn ca_must_hold_a_certificate() {
        assert!(matches!(http_client("garbage"), Err(VaultError::Ca(_))));
        assert!(matches!(http_client(""), Err(VaultError::Ca(_))));
    }
}

//! `ffe_vault_config`: kv-v2, the audit device, Kubernetes auth, policies and roles, and a
//! least-privilege token ("ffe-terraform") that later runs use instead of the root token.
//!
//! Reads compare the live objects with the spec, so a re-apply writes nothing and a change
//! made behind Terraform's back shows in the plan.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use reqwest::Method;
use vaultrs::api::auth::kubernetes::requests::CreateKubernetesRoleRequest;
use vaultrs::api::sys::requests::EnableEngineRequest;
use vaultrs::api::token::requests::CreateOrphanTokenRequest;
use vaultrs::client::VaultClient;

use super::{client_error, client_status, Member, VaultError};

/// The policy of the token this resource creates for itself.
pub const TERRAFORM_POLICY: &str = "ffe-terraform";
/// The token is periodic: every read renews it, so it lives as long as Terraform uses it.
const TOKEN_PERIOD: &str = "768h";
const AUDIT_PATH: &str = "file";
/// How long to look for a member that is unsealed and has an active leader.
const CONNECT_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoleSpec {
    pub name: String,
    pub service_account_names: Vec<String>,
    pub namespaces: Vec<String>,
    pub policies: Vec<String>,
    /// Vault duration: "1h", "90m", "3600".
    pub ttl: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigSpec {
    pub kv_mount: String,
    pub audit_file_path: String,
    pub auth_mount: String,
    pub kubernetes_host: String,
    pub policies: BTreeMap<String, String>,
    pub roles: Vec<RoleSpec>,
}

/// What the cluster holds for the names a spec manages; `None`: absent (or not the kind the
/// spec wants).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Live {
    /// The kv mount, when it is kv version 2.
    pub kv_mount: Option<String>,
    /// The type of whatever is mounted at kv_mount otherwise.
    pub kv_other: Option<String>,
    pub audit_file_path: Option<String>,
    /// Some audit device (of any type) is at file/.
    pub audit_present: bool,
    /// The Kubernetes auth mount's kubernetes_host, when that mount is Kubernetes auth.
    pub kubernetes_host: Option<String>,
    pub auth_mounted: bool,
    pub policies: BTreeMap<String, String>,
    pub roles: BTreeMap<String, LiveRole>,
    pub terraform_policy: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveRole {
    pub service_account_names: Vec<String>,
    pub namespaces: Vec<String>,
    pub policies: Vec<String>,
    pub ttl_seconds: u64,
}

/// Parse a Vault duration ("1h30m", "45s", "3600") into seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return None,
        };
    }
    num.is_empty().then_some(total)
}

fn set(v: &[String]) -> BTreeSet<&str> {
    v.iter().map(String::as_str).collect()
}

impl LiveRole {
    /// Same meaning as `r` (lists are sets to Vault, TTLs compared in seconds).
    pub fn matches(&self, r: &RoleSpec) -> bool {
        set(&self.service_account_names) == set(&r.service_account_names)
            && set(&self.namespaces) == set(&r.namespaces)
            && set(&self.policies) == set(&r.policies)
            && parse_duration(&r.ttl) == Some(self.ttl_seconds)
    }
}

impl ConfigSpec {
    /// Check what Vault would refuse or misread, naming the attribute.
    pub fn check(&self) -> Result<(), VaultError> {
        let bad = |a: &str, m: String| {
            Err(VaultError::Invalid {
                attribute: a.into(),
                message: m,
            })
        };
        for (a, v) in [
            ("kv_mount", &self.kv_mount),
            ("kubernetes_auth.mount", &self.auth_mount),
        ] {
            if v.is_empty() || v.contains("..") || v.starts_with('/') || v.ends_with('/') {
                return bad(
                    a,
                    format!("{v:?} is not a mount path: use a name such as \"secret\""),
                );
            }
        }
        if self.audit_file_path.is_empty() {
            return bad(
                "audit_file_path",
                "is empty: use \"stdout\" or an absolute file path".into(),
            );
        }
        if super::check_address(&self.kubernetes_host).is_err() {
            return bad(
                "kubernetes_auth.kubernetes_host",
                format!("{:?} must be https://<host>:<port> (in-cluster: https://kubernetes.default.svc:443)", self.kubernetes_host),
            );
        }
        if self.policies.contains_key(TERRAFORM_POLICY) {
            return bad(
                "policies",
                format!("{TERRAFORM_POLICY:?} is reserved for the token this resource creates: rename it"),
            );
        }
        for (name, text) in &self.policies {
            if name.is_empty() || text.trim().is_empty() {
                return bad(
                    "policies",
                    format!("{name:?}: name and rules must be non-empty"),
                );
            }
        }
        let mut seen = BTreeSet::new();
        for r in &self.roles {
            if !seen.insert(r.name.as_str()) {
                return bad(
                    "kubernetes_roles",
                    format!("role {:?} is listed twice", r.name),
                );
            }
            if r.service_account_names.is_empty() || r.namespaces.is_empty() {
                return bad(
                    "kubernetes_roles",
                    format!(
                        "role {:?}: service_account_names and namespaces must not be empty",
                        r.name
                    ),
                );
            }
            if parse_duration(&r.ttl).is_none() {
                return bad(
                    "kubernetes_roles",
                    format!(
                        "role {:?}: ttl {:?} is not a duration such as \"1h\" or \"3600\"",
                        r.name, r.ttl
                    ),
                );
            }
        }
        Ok(())
    }

    /// The "ffe-terraform" policy: exactly the paths this resource manages.
    pub fn terraform_policy(&self) -> String {
        let kv = &self.kv_mount;
        let auth = &self.auth_mount;
        format!(
            r#"# Written by ffe_vault_config: what later terraform runs need, nothing else.
path "sys/mounts" {{ capabilities = ["read"] }}
path "sys/mounts/{kv}" {{ capabilities = ["create", "read", "update"] }}
path "sys/auth" {{ capabilities = ["read"] }}
path "sys/auth/{auth}" {{ capabilities = ["create", "read", "update", "sudo"] }}
path "sys/audit" {{ capabilities = ["read", "sudo"] }}
path "sys/audit/{AUDIT_PATH}" {{ capabilities = ["create", "read", "update", "delete", "sudo"] }}
path "sys/policies/acl/*" {{ capabilities = ["create", "read", "update", "delete", "list"] }}
path "sys/policy/*" {{ capabilities = ["create", "read", "update", "delete"] }}
path "auth/{auth}/config" {{ capabilities = ["create", "read", "update"] }}
path "auth/{auth}/role/*" {{ capabilities = ["create", "read", "update", "delete", "list"] }}
path "auth/token/lookup-self" {{ capabilities = ["read"] }}
path "auth/token/renew-self" {{ capabilities = ["update"] }}
path "auth/token/revoke-self" {{ capabilities = ["update"] }}
"#
        )
    }

    /// What differs between the cluster and the spec, one line each; empty: nothing to do.
    pub fn drift(&self, live: &Live) -> Vec<String> {
        let mut d = vec![];
        if live.kv_mount.is_none() {
            d.push(format!("kv-v2 mount {}/ missing", self.kv_mount));
        }
        if live.audit_file_path.as_deref() != Some(self.audit_file_path.as_str()) {
            d.push(format!(
                "audit device {AUDIT_PATH}/ to {}",
                self.audit_file_path
            ));
        }
        if live.kubernetes_host.as_deref() != Some(self.kubernetes_host.as_str()) {
            d.push(format!("auth/{}/config", self.auth_mount));
        }
        for (name, text) in &self.policies {
            if live.policies.get(name) != Some(text) {
                d.push(format!("policy {name}"));
            }
        }
        for r in &self.roles {
            if !live.roles.get(&r.name).is_some_and(|l| l.matches(r)) {
                d.push(format!("role {}", r.name));
            }
        }
        if live.terraform_policy.as_deref() != Some(self.terraform_policy().as_str()) {
            d.push(format!("policy {TERRAFORM_POLICY}"));
        }
        d
    }
}

/// A member reached with a valid token.
pub struct Session {
    pub member: Member,
    pub token: String,
    client: VaultClient,
}

impl Session {
    fn err_text(&self, message: &str) -> VaultError {
        VaultError::Api {
            address: self.member.address.clone(),
            message: message.into(),
        }
    }

    fn err(&self, what: &str, e: &vaultrs::error::ClientError) -> VaultError {
        VaultError::Api {
            address: self.member.address.clone(),
            message: format!("{what}: {}", client_error(e)),
        }
    }
}

/// The first member (in order) that accepts one of `tokens` (tried in order: a rejected
/// token falls through to the next). Retried while members start or elect a leader.
pub async fn connect(members: &[Member], tokens: &[&str]) -> Result<Session, VaultError> {
    let deadline = Instant::now() + CONNECT_WAIT;
    loop {
        let mut last = vec![];
        let mut rejected = 0;
        for m in members {
            for t in tokens.iter().filter(|t| !t.is_empty()) {
                let client = m.client(t)?;
                match vaultrs::token::lookup_self(&client).await {
                    Ok(_) => {
                        return Ok(Session {
                            member: m.clone(),
                            token: t.to_string(),
                            client,
                        })
                    }
                    Err(e) if client_status(&e) == Some(403) => rejected += 1,
                    Err(e) => {
                        last.push(format!("{}: {}", m.address, client_error(&e)));
                        break;
                    }
                }
            }
        }
        if last.is_empty() && rejected > 0 {
            return Err(VaultError::Api {
                address: members.iter().map(|m| m.address.as_str()).collect::<Vec<_>>().join(", "),
                message: "every token was refused (403): set token to a valid token with root or ffe-terraform rights (ffe_vault_init.<name>.root_token)".into(),
            });
        }
        if Instant::now() >= deadline {
            return Err(VaultError::Api {
                address: "cluster".into(),
                message: format!(
                    "no member accepted a request within {} s: {}; check that the members are unsealed (ffe_vault_init) and one is active",
                    CONNECT_WAIT.as_secs(),
                    last.join("; ")
                ),
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Raw audit listing (vaultrs has no sys/audit): path -> file_path of "file" devices.
async fn audit_devices(
    s: &Session,
) -> Result<HashMap<String, (String, Option<String>)>, VaultError> {
    let a = s
        .member
        .call_ok(
            Method::GET,
            "sys/audit",
            Some(&s.token),
            None,
            "list audit devices",
        )
        .await?;
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
    let map = v.get("data").filter(|d| d.is_object()).unwrap_or(&v);
    let mut out = HashMap::new();
    if let Some(o) = map.as_object() {
        for (path, dev) in o {
            if let Some(t) = dev.get("type").and_then(|t| t.as_str()) {
                let fp = dev["options"]["file_path"].as_str().map(str::to_string);
                out.insert(path.trim_end_matches('/').to_string(), (t.to_string(), fp));
            }
        }
    }
    Ok(out)
}

/// Read what the cluster holds for the names in `spec`.
pub async fn read_live(s: &Session, spec: &ConfigSpec) -> Result<Live, VaultError> {
    let mut live = Live::default();
    let mounts = vaultrs::sys::mount::list(&s.client)
        .await
        .map_err(|e| s.err("list secret mounts", &e))?;
    if let Some(m) = mounts.get(&format!("{}/", spec.kv_mount)) {
        let v2 = m
            .options
            .as_ref()
            .and_then(|o| o.get("version"))
            .is_some_and(|v| v == "2");
        if m.mount_type == "kv" && v2 {
            live.kv_mount = Some(spec.kv_mount.clone());
        } else {
            live.kv_other = Some(format!("{} (options {:?})", m.mount_type, m.options));
        }
    }
    let audits = audit_devices(s).await?;
    live.audit_present = audits.contains_key(AUDIT_PATH);
    live.audit_file_path = audits
        .get(AUDIT_PATH)
        .filter(|(t, _)| t == "file")
        .and_then(|(_, p)| p.clone());
    let auths = vaultrs::sys::auth::list(&s.client)
        .await
        .map_err(|e| s.err("list auth methods", &e))?;
    if let Some(a) = auths.get(&format!("{}/", spec.auth_mount)) {
        if a.mount_type != "kubernetes" {
            return Err(VaultError::Api {
                address: s.member.address.clone(),
                message: format!(
                    "auth/{}/ is a {} auth method, not kubernetes: pick another kubernetes_auth.mount or disable it",
                    spec.auth_mount, a.mount_type
                ),
            });
        }
        live.auth_mounted = true;
        match vaultrs::auth::kubernetes::read_config(&s.client, &spec.auth_mount).await {
            Ok(c) => live.kubernetes_host = Some(c.kubernetes_host),
            Err(e) if client_status(&e) == Some(404) => {}
            Err(e) => return Err(s.err("read Kubernetes auth config", &e)),
        }
        for r in &spec.roles {
            match vaultrs::auth::kubernetes::role::read(&s.client, &spec.auth_mount, &r.name).await
            {
                Ok(l) => {
                    live.roles.insert(
                        r.name.clone(),
                        LiveRole {
                            service_account_names: l.bound_service_account_names,
                            namespaces: l.bound_service_account_namespaces,
                            policies: l.token_policies,
                            ttl_seconds: l.token_ttl,
                        },
                    );
                }
                Err(e) if client_status(&e) == Some(404) => {}
                Err(e) => return Err(s.err(&format!("read role {}", r.name), &e)),
            }
        }
    }
    for name in spec.policies.keys().chain([&TERRAFORM_POLICY.to_string()]) {
        match vaultrs::sys::policy::read(&s.client, name).await {
            Ok(p) if name == TERRAFORM_POLICY => live.terraform_policy = Some(p.rules),
            Ok(p) => {
                live.policies.insert(name.clone(), p.rules);
            }
            Err(e) if client_status(&e) == Some(404) => {}
            Err(e) => return Err(s.err(&format!("read policy {name}"), &e)),
        }
    }
    Ok(live)
}

/// Make the cluster match `spec`, writing only what differs; `removed` names policies and
/// roles a previous spec had. Returns one line per write.
pub async fn apply(
    s: &Session,
    spec: &ConfigSpec,
    live: &Live,
    removed_policies: &[String],
    removed_roles: &[String],
) -> Result<Vec<String>, VaultError> {
    let mut writes = vec![];
    let addr = || s.member.address.clone();
    if live.terraform_policy.as_deref() != Some(spec.terraform_policy().as_str()) {
        vaultrs::sys::policy::set(&s.client, TERRAFORM_POLICY, &spec.terraform_policy())
            .await
            .map_err(|e| s.err("write policy ffe-terraform", &e))?;
        writes.push(format!("policy {TERRAFORM_POLICY}"));
    }
    if live.kv_mount.is_none() {
        if let Some(other) = &live.kv_other {
            return Err(VaultError::Api {
                address: addr(),
                message: format!(
                    "{}/ is already mounted as {other}, not kv version 2: move its data and disable it, or pick another kv_mount",
                    spec.kv_mount
                ),
            });
        }
        let mut opts = EnableEngineRequest::builder();
        opts.options(HashMap::from([("version".to_string(), "2".to_string())]))
            .description("ffe-ha application secrets (kv-v2)");
        vaultrs::sys::mount::enable(&s.client, &spec.kv_mount, "kv", Some(&mut opts))
            .await
            .map_err(|e| s.err(&format!("mount kv-v2 at {}/", spec.kv_mount), &e))?;
        writes.push(format!("mount {}/", spec.kv_mount));
    }
    if live.audit_file_path.as_deref() != Some(spec.audit_file_path.as_str()) {
        let token = Some(s.token.as_str());
        let path = format!("sys/audit/{AUDIT_PATH}");
        let hint = |e: VaultError| {
            match e {
            VaultError::Api { address, message }
                if message.contains("declarative") || message.contains("configuration-managed") =>
            {
                VaultError::Api {
                    address,
                    message: format!(
                        "{message}. OpenBao manages audit devices in its server configuration only: declare audit \"file\" \"{AUDIT_PATH}\" {{ options {{ file_path = \"{}\" }} }} there (the vault module does), and this resource then finds it in place",
                        spec.audit_file_path
                    ),
                }
            }
            other => other,
        }
        };
        // An audit device's options cannot be changed in place.
        if live.audit_present {
            s.member
                .call_ok(
                    Method::DELETE,
                    &path,
                    token,
                    None,
                    "disable audit device file/",
                )
                .await
                .map_err(hint)?;
        }
        let body = serde_json::json!({
            "type": "file",
            "options": { "file_path": spec.audit_file_path },
        });
        s.member
            .call_ok(
                Method::PUT,
                &path,
                token,
                Some(&body),
                "enable audit device file/",
            )
            .await
            .map_err(hint)?;
        writes.push(format!("audit {AUDIT_PATH}/"));
    }
    if !live.auth_mounted {
        vaultrs::sys::auth::enable(&s.client, &spec.auth_mount, "kubernetes", None)
            .await
            .map_err(|e| s.err(&format!("enable auth/{}/", spec.auth_mount), &e))?;
        writes.push(format!("auth {}/", spec.auth_mount));
    }
    if live.kubernetes_host.as_deref() != Some(spec.kubernetes_host.as_str()) {
        // No reviewer JWT or CA: inside the cluster Vault uses its own pod's.
        vaultrs::auth::kubernetes::configure(
            &s.client,
            &spec.auth_mount,
            &spec.kubernetes_host,
            None,
        )
        .await
        .map_err(|e| {
            let mut err = s.err(&format!("configure auth/{}", spec.auth_mount), &e);
            if let VaultError::Api { message, .. } = &mut err {
                if message.contains("serviceaccount") {
                    message.push_str(": in-cluster Kubernetes auth uses the Vault pod's own service-account CA and token, so Vault must run in a Kubernetes pod (automountServiceAccountToken) or have those files in /var/run/secrets/kubernetes.io/serviceaccount/");
                }
            }
            err
        })?;
        writes.push(format!("auth/{}/config", spec.auth_mount));
    }
    for (name, text) in &spec.policies {
        if live.policies.get(name) != Some(text) {
            vaultrs::sys::policy::set(&s.client, name, text)
                .await
                .map_err(|e| s.err(&format!("write policy {name}"), &e))?;
            writes.push(format!("policy {name}"));
        }
    }
    for r in &spec.roles {
        if live.roles.get(&r.name).is_some_and(|l| l.matches(r)) {
            continue;
        }
        let mut opts = CreateKubernetesRoleRequest::builder();
        opts.bound_service_account_names(r.service_account_names.clone())
            .bound_service_account_namespaces(r.namespaces.clone())
            .token_policies(r.policies.clone())
            .token_ttl(r.ttl.clone());
        vaultrs::auth::kubernetes::role::create(
            &s.client,
            &spec.auth_mount,
            &r.name,
            Some(&mut opts),
        )
        .await
        .map_err(|e| s.err(&format!("write role {}", r.name), &e))?;
        writes.push(format!("role {}", r.name));
    }
    for name in removed_policies {
        if !spec.policies.contains_key(name) && name != TERRAFORM_POLICY {
            vaultrs::sys::policy::delete(&s.client, name)
                .await
                .map_err(|e| s.err(&format!("delete policy {name}"), &e))?;
            writes.push(format!("delete policy {name}"));
        }
    }
    for name in removed_roles {
        if !spec.roles.iter().any(|r| &r.name == name) {
            vaultrs::auth::kubernetes::role::delete(&s.client, &spec.auth_mount, name)
                .await
                .map_err(|e| s.err(&format!("delete role {name}"), &e))?;
            writes.push(format!("delete role {name}"));
        }
    }
    Ok(writes)
}

/// Create the orphan periodic token with policy ffe-terraform only.
pub async fn create_token(s: &Session) -> Result<String, VaultError> {
    let mut opts = CreateOrphanTokenRequest::builder();
    opts.policies(vec![TERRAFORM_POLICY.to_string()])
        .no_default_policy(true)
        .period(TOKEN_PERIOD)
        .renewable(true)
        .display_name("ffe-terraform");
    vaultrs::token::new_orphan(&s.client, Some(&mut opts))
        .await
        .map(|a| a.client_token)
        .map_err(|e| s.err("create the ffe-terraform token", &e))
}

/// Connect with `token`, write ffe-terraform, create its token, and apply the rest with it
/// (which proves the policy covers what later runs do). Returns (terraform_token, writes).
pub async fn create(
    members: &[Member],
    token: &str,
    spec: &ConfigSpec,
) -> Result<(String, Vec<String>), VaultError> {
    spec.check()?;
    let root = connect(members, &[token]).await?;
    let live = read_live(&root, spec).await?;
    let mut writes = vec![];
    if live.terraform_policy.as_deref() != Some(spec.terraform_policy().as_str()) {
        vaultrs::sys::policy::set(&root.client, TERRAFORM_POLICY, &spec.terraform_policy())
            .await
            .map_err(|e| root.err("write policy ffe-terraform", &e))?;
        writes.push(format!("policy {TERRAFORM_POLICY}"));
    }
    let tf_token = create_token(&root).await?;
    let own = connect(std::slice::from_ref(&root.member), &[&tf_token]).await?;
    let live = read_live(&own, spec).await?;
    writes.extend(apply(&own, spec, &live, &[], &[]).await?);
    Ok((tf_token, writes))
}

/// Renew the session's token when it is the ffe-terraform one (periodic tokens expire
/// unless renewed).
pub async fn renew(s: &Session) -> Result<(), VaultError> {
    // A few tries: right after the active member is lost, standbys fail forwarded requests
    // until a new leader is elected.
    let mut last = None;
    for _ in 0..5 {
        match vaultrs::token::renew_self(&s.client, None).await {
            Ok(_) => return Ok(()),
            Err(e) if client_status(&e) == Some(403) => {
                return Err(s.err("renew the ffe-terraform token", &e))
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(match last {
        Some(e) => s.err("renew the ffe-terraform token", &e),
        None => s.err_text("renew the ffe-terraform token: no answer"),
    })
}

/// Delete: remove the roles and policies this resource wrote and revoke its token. The kv
/// mount (data), the auth method and the audit device stay.
pub async fn delete(s: &Session, spec: &ConfigSpec, revoke: bool) -> Result<(), VaultError> {
    for r in &spec.roles {
        match vaultrs::auth::kubernetes::role::delete(&s.client, &spec.auth_mount, &r.name).await {
            Ok(()) => {}
            Err(e) if client_status(&e) == Some(404) => {}
            Err(e) => return Err(s.err(&format!("delete role {}", r.name), &e)),
        }
    }
    for name in spec.policies.keys() {
        vaultrs::sys::policy::delete(&s.client, name)
            .await
            .map_err(|e| s.err(&format!("delete policy {name}"), &e))?;
    }
    if revoke {
        vaultrs::token::revoke_self(&s.client)
            .await
            .map_err(|e| s.err("revoke the ffe-terraform token", &e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ConfigSpec {
        ConfigSpec {
            kv_mount: "secret".into(),
            audit_file_path: "stdout".into(),
            auth_mount: "kubernetes".into(),
            kubernetes_host: "https://kubernetes.default.svc:443".into(),
            policies: BTreeMap::from([(
                "ffe-backend".into(),
                "path \"secret/data/production/app\" { capabilities = [\"read\"] }".into(),
            )]),
            roles: vec![RoleSpec {
                name: "ffe-backend".into(),
                service_account_names: vec!["ffe-backend".into()],
                namespaces: vec!["ffe".into()],
                policies: vec!["ffe-backend".into()],
                ttl: "1h".into(),
            }],
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h"), Some(3600));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("3600"), Some(3600));
        assert_eq!(parse_duration("10x"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration("5m3"), None);
    }

    #[test]
    fn checks_name_the_attribute() {
        assert!(spec().check().is_ok());
        let mut s = spec();
        s.kubernetes_host = "http://k:443".into();
        assert!(s
            .check()
            .unwrap_err()
            .to_string()
            .starts_with("kubernetes_auth.kubernetes_host:"));
        let mut s = spec();
        s.policies.insert(TERRAFORM_POLICY.into(), "x".into());
        assert!(s.check().unwrap_err().to_string().starts_with("policies:"));
        let mut s = spec();
        s.roles[0].ttl = "soon".into();
        assert!(s
            .check()
            .unwrap_err()
            .to_string()
            .starts_with("kubernetes_roles:"));
        let mut s = spec();
        s.roles.push(s.roles[0].clone());
        assert!(s.check().is_err());
    }

    #[test]
    fn drift_compares_meaning_not_spelling() {
        let s = spec();
        let mut live = Live {
            kv_mount: Some("secret".into()),
            audit_file_path: Some("stdout".into()),
            audit_present: true,
            kubernetes_host: Some(s.kubernetes_host.clone()),
            auth_mounted: true,
            policies: s.policies.clone(),
            roles: BTreeMap::from([(
                "ffe-backend".into(),
                LiveRole {
                    service_account_names: vec!["ffe-backend".into()],
                    namespaces: vec!["ffe".into()],
                    policies: vec!["ffe-backend".into()],
                    ttl_seconds: 3600,
                },
            )]),
            terraform_policy: Some(s.terraform_policy()),
            kv_other: None,
        };
        assert_eq!(s.drift(&live), Vec::<String>::new());
        live.roles.get_mut("ffe-backend").unwrap().ttl_seconds = 60;
        live.policies.insert(
            "ffe-backend".into(),
            "path \"*\" { capabilities = [\"sudo\"] }".into(),
        );
        assert_eq!(
            s.drift(&live),
            vec![
                "policy ffe-backend".to_string(),
                "role ffe-backend".to_string()
            ]
        );
    }

    #[test]
    fn terraform_policy_is_limited_to_managed_paths() {
        let p = spec().terraform_policy();
        assert!(p.contains("path \"sys/mounts/secret\""));
        assert!(p.contains("path \"auth/kubernetes/role/*\""));
        assert!(!p.contains("path \"*\""));
        assert!(!p.contains("sys/raw"));
        assert!(!p.contains("auth/token/create"));
    }
}

//! `ffe_vault_init`: initialise a Vault/OpenBao Raft cluster once, unseal every member, and
//! unseal members found sealed on later applies. Logic in ffe_core::vault::init.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ffe_core::vault::ca::CaSecret;
use ffe_core::vault::init::{self, InitSpec, MemberState};
use ffe_core::vault::{check_address, check_shamir, Member};
use serde::{Deserialize, Serialize};
use tf_provider::schema::{
    AttributeConstraint::{Computed, Optional, OptionalComputed, Required},
    AttributeType, Block, Description, Schema,
};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{map, AttributePath, Diagnostics, Resource};

use crate::provider::Ctx;
use crate::resources::cluster::{nodes, NodeList};
use crate::schema::{attr, node_list, secret, str_list};
use crate::values::{list, opt_str, to_list, Num, Str, StrList};

/// Test hook, read only by the provider binary: with `FFE_TEST_ABORT_AFTER_VAULT_INIT=1` the
/// provider aborts right after keys_file is written, as if the apply were killed there; the
/// lab test proves the next apply adopts the keys.
pub const ABORT_HOOK_ENV: &str = "FFE_TEST_ABORT_AFTER_VAULT_INIT";

pub const DEFAULT_SHARES: i64 = 5;
pub const DEFAULT_THRESHOLD: i64 = 3;
pub const DEFAULT_WAIT: i64 = 300;

pub struct VaultInitResource {
    pub ctx: Arc<Ctx>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaSecretObj {
    pub namespace: Str,
    pub name: Str,
    pub key: Str,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VaultInitState {
    pub id: Str,
    pub member_addresses: StrList,
    pub ca_cert_pem: Str,
    pub ca_secret: Value<CaSecretObj>,
    pub servers: NodeList,
    pub secret_shares: Num,
    pub secret_threshold: Num,
    pub pgp_keys: StrList,
    pub keys_file: Str,
    pub wait_timeout_seconds: Num,
    pub initialized: Value<bool>,
    pub unseal_keys: StrList,
    pub root_token: Str,
    pub sealed_members: StrList,
}

pub fn ca_secret_type() -> AttributeType {
    AttributeType::Object(HashMap::from([
        ("namespace".to_string(), AttributeType::String),
        ("name".to_string(), AttributeType::String),
        ("key".to_string(), AttributeType::String),
    ]))
}

/// Where the members and their CA come from; shared with ffe_vault_config.
pub struct Reach<'s> {
    pub member_addresses: &'s StrList,
    pub ca_cert_pem: &'s Str,
    pub ca_secret: &'s Value<CaSecretObj>,
    pub servers: &'s NodeList,
}

impl Reach<'_> {
    /// Plan-time checks: https addresses, exactly one CA source, servers with ca_secret.
    pub fn validate(&self, diags: &mut Diagnostics) {
        if let Value::Value(l) = self.member_addresses {
            if l.is_empty() {
                diags.error_short(
                    "member_addresses is empty: list every member as https://<ip>:8200",
                    AttributePath::new("member_addresses"),
                );
            }
            for (i, a) in l.iter().enumerate() {
                if let Value::Value(a) = a {
                    if let Err(m) = check_address(a) {
                        diags.error(
                            "member_addresses: bad address",
                            m,
                            AttributePath::new("member_addresses").index(i as i64),
                        );
                    }
                }
            }
        }
        let pem = !matches!(self.ca_cert_pem, Value::Null);
        let sec = !matches!(self.ca_secret, Value::Null);
        let known = !matches!(self.ca_cert_pem, Value::Unknown)
            && !matches!(self.ca_secret, Value::Unknown);
        if known && pem == sec {
            diags.error(
                "set exactly one of ca_cert_pem and ca_secret",
                if pem {
                    "both are set: keep ca_cert_pem (the CA PEM) or ca_secret (the Kubernetes Secret holding it), not both"
                } else {
                    "neither is set: give ca_cert_pem (the PEM of the CA the members' certificates chain to) or ca_secret = { namespace = \"vault\", name = \"vault-ca\", key = \"ca.crt\" } with servers"
                },
                AttributePath::new("ca_cert_pem"),
            );
        }
        if let Value::Value(p) = self.ca_cert_pem {
            if let Err(e) = ffe_core::vault::http_client(p) {
                diags.error(
                    "ca_cert_pem is not a usable CA",
                    e.to_string(),
                    AttributePath::new("ca_cert_pem"),
                );
            }
        }
        let no_servers = match self.servers {
            Value::Null => true,
            Value::Value(l) => l.is_empty(),
            Value::Unknown => false,
        };
        if sec && no_servers {
            diags.error(
                "ca_secret needs servers",
                "kubectl runs on a k3s server over SSH: set servers = ffe_k3s_cluster.<name>.servers",
                AttributePath::new("servers"),
            );
        }
        if let Value::Value(s) = self.ca_secret {
            for (k, v) in [
                ("namespace", &s.namespace),
                ("name", &s.name),
                ("key", &s.key),
            ] {
                if matches!(v, Value::Null) || matches!(v, Value::Value(x) if x.is_empty()) {
                    diags.error_short(
                        format!("ca_secret.{k} must be set (e.g. namespace = \"vault\", name = \"vault-ca\", key = \"ca.crt\")"),
                        AttributePath::new("ca_secret").attribute(k),
                    );
                }
            }
        }
    }

    /// The members, with the CA from ca_cert_pem or read from the Secret.
    pub async fn members(&self, ctx: &Ctx, diags: &mut Diagnostics) -> Option<Vec<Member>> {
        let pem = match (opt_str(self.ca_cert_pem), self.ca_secret.as_ref_option()) {
            (Some(p), _) => p,
            (None, Some(s)) => {
                let pool = ctx.pool(diags)?;
                let secret = CaSecret {
                    namespace: opt_str(&s.namespace).unwrap_or_default(),
                    name: opt_str(&s.name).unwrap_or_default(),
                    key: opt_str(&s.key).unwrap_or_default(),
                };
                match secret.read(&pool, &nodes(self.servers)).await {
                    Ok(p) => p,
                    Err(e) => {
                        diags.root_error("the Vault CA could not be read", e.to_string());
                        return None;
                    }
                }
            }
            (None, None) => {
                diags.root_error_short("set ca_cert_pem or ca_secret");
                return None;
            }
        };
        match Member::all(&list(self.member_addresses), &pem) {
            Ok(m) => Some(m),
            Err(e) => {
                diags.root_error("Vault members", e.to_string());
                None
            }
        }
    }
}

impl VaultInitState {
    fn reach(&self) -> Reach<'_> {
        Reach {
            member_addresses: &self.member_addresses,
            ca_cert_pem: &self.ca_cert_pem,
            ca_secret: &self.ca_secret,
            servers: &self.servers,
        }
    }

    fn fill_defaults(&mut self) {
        for (v, d) in [
            (&mut self.secret_shares, DEFAULT_SHARES),
            (&mut self.secret_threshold, DEFAULT_THRESHOLD),
            (&mut self.wait_timeout_seconds, DEFAULT_WAIT),
        ] {
            if matches!(v, Value::Null) {
                *v = Value::Value(d);
            }
        }
    }

    fn keys_path(&self) -> PathBuf {
        PathBuf::from(opt_str(&self.keys_file).unwrap_or_default())
    }

    fn wait(&self) -> Duration {
        Duration::from_secs(
            self.wait_timeout_seconds
                .as_ref_option()
                .copied()
                .unwrap_or(DEFAULT_WAIT)
                .max(1) as u64,
        )
    }

    fn pgp(&self) -> Option<Vec<String>> {
        self.pgp_keys.as_ref_option().map(|_| list(&self.pgp_keys))
    }

    fn spec(&self) -> InitSpec {
        InitSpec {
            shares: self
                .secret_shares
                .as_ref_option()
                .copied()
                .unwrap_or(DEFAULT_SHARES) as u64,
            threshold: self
                .secret_threshold
                .as_ref_option()
                .copied()
                .unwrap_or(DEFAULT_THRESHOLD) as u64,
            pgp_keys: self.pgp(),
            keys_file: self.keys_path(),
            wait_timeout: self.wait(),
        }
    }
}

fn abort_hook() {
    if std::env::var(ABORT_HOOK_ENV).as_deref() == Ok("1") {
        std::process::abort();
    }
}

#[async_trait]
impl Resource for VaultInitResource {
    type State<'a> = VaultInitState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 1,
            block: Block {
                version: 1,
                description: Description::plain("Initialises a Vault/OpenBao Raft cluster once (Shamir), unseals every member, and on later applies unseals members found sealed. The keys are written to keys_file before anything else, so an interrupted apply never loses them."),
                attributes: map! {
                    "id" => attr(AttributeType::String, Computed, "The first member's address."),
                    "member_addresses" => attr(str_list(), Required, "Every member's API address, https://<ip>:8200, in member order (the first is initialised)."),
                    "ca_cert_pem" => attr(AttributeType::String, Optional, "PEM of the CA the members' TLS certificates chain to (the only CA trusted). Exactly one of ca_cert_pem and ca_secret."),
                    "ca_secret" => attr(ca_secret_type(), Optional, "Kubernetes Secret holding that CA ({ namespace, name, key }), read with `k3s kubectl` over SSH on the first server that answers."),
                    "servers" => attr(node_list(), Optional, "k3s servers to read ca_secret through (ffe_k3s_cluster.<name>.servers). Required with ca_secret."),
                    "secret_shares" => attr(AttributeType::Number, OptionalComputed, "Number of unseal key shares, 1-255 (default 5). Used only when initialising."),
                    "secret_threshold" => attr(AttributeType::Number, OptionalComputed, "Shares needed to unseal, 1-secret_shares (default 3). Used only when initialising."),
                    "pgp_keys" => attr(str_list(), Optional, "Base64 PGP public keys, exactly secret_shares of them: the unseal keys come back encrypted and Terraform cannot unseal (errors tell how to unseal by hand)."),
                    "keys_file" => attr(AttributeType::String, Required, "File (mode 0600) the init answer is written to before anything else; deleted once the state holds the keys, written again on destroy. Put its directory somewhere private."),
                    "wait_timeout_seconds" => attr(AttributeType::Number, OptionalComputed, "How long to wait for members to answer and to unseal (join) before failing (default 300)."),
                    "initialized" => attr(AttributeType::Bool, Computed, "Whether the cluster is initialised."),
                    "unseal_keys" => secret(str_list(), Computed, "Unseal keys, base64 (PGP-encrypted when pgp_keys is set). Keep the state in an encrypted backend."),
                    "root_token" => secret(AttributeType::String, Computed, "The initial root token."),
                    "sealed_members" => attr(str_list(), Computed, "Members that answered \"sealed\" at the last read; apply unseals them.")
                },
                ..Default::default()
            },
        })
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, c: Self::State<'a>) -> Option<()> {
        c.reach().validate(diags);
        if let (Value::Value(s), Value::Value(t)) = (
            c.secret_shares.or(Value::Value(DEFAULT_SHARES)),
            c.secret_threshold.or(Value::Value(DEFAULT_THRESHOLD)),
        ) {
            let pgp = match &c.pgp_keys {
                Value::Value(l) => Some(l.len()),
                _ => None,
            };
            if let Err(e) = check_shamir(s, t, pgp) {
                let attr = match &e {
                    ffe_core::vault::VaultError::Invalid { attribute, .. } => attribute.clone(),
                    _ => "secret_shares".into(),
                };
                diags.error(
                    "invalid Shamir settings",
                    e.to_string(),
                    AttributePath::new(attr),
                );
            }
        }
        if let Value::Value(w) = &c.wait_timeout_seconds {
            if !(1..=3600).contains(w) {
                diags.error_short(
                    "wait_timeout_seconds must be between 1 and 3600",
                    AttributePath::new("wait_timeout_seconds"),
                );
            }
        }
        if let Value::Value(k) = &c.keys_file {
            if k.trim().is_empty() || k.ends_with('/') {
                diags.error_short(
                    "keys_file must be a file path, e.g. \"${path.root}/vault-init.pending.json\"",
                    AttributePath::new("keys_file"),
                );
            }
        }
        diags.errors.is_empty().then_some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        mut state: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        // The state was saved with these keys: the file is no longer needed.
        if let Some(token) = opt_str(&state.root_token) {
            if let Err(e) = init::forget_keys_file(&state.keys_path(), &token) {
                diags.root_warning("keys_file was kept", e.to_string());
            }
        }
        let mut probe = Diagnostics::default();
        let Some(members) = state.reach().members(&self.ctx, &mut probe).await else {
            for d in probe.errors {
                diags.root_warning(
                    "Vault members could not be checked; sealed_members is from the last apply",
                    d.detail.to_string(),
                );
            }
            return Some((state, private));
        };
        let st = init::status(&members).await;
        let mut sealed = vec![];
        let mut any_answer = false;
        let mut initialized = false;
        for (addr, s) in st {
            match s {
                MemberState::Unsealed => {
                    any_answer = true;
                    initialized = true;
                }
                MemberState::Sealed { initialized: i } => {
                    any_answer = true;
                    initialized |= i;
                    sealed.push(addr);
                }
                MemberState::Unreachable(e) => diags.root_warning(
                    format!("Vault member {addr} did not answer"),
                    format!("{e}\nIt is not listed in sealed_members; check it is running."),
                ),
            }
        }
        if any_answer {
            state.sealed_members = to_list(sealed);
            state.initialized = Value::Value(initialized);
        }
        Some((state, private))
    }

    async fn plan_create<'a>(
        &self,
        _diags: &mut Diagnostics,
        proposed: Self::State<'a>,
        _config: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let mut s = proposed;
        s.fill_defaults();
        s.id = Value::Unknown;
        s.initialized = Value::Unknown;
        s.unseal_keys = Value::Unknown;
        s.root_token = Value::Unknown;
        s.sealed_members = Value::Unknown;
        Some((s, ValueEmpty::default()))
    }

    async fn plan_update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: Self::State<'a>,
        proposed: Self::State<'a>,
        _config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>, Vec<AttributePath>)> {
        let mut s = proposed;
        s.fill_defaults();
        // The shares were split (and encrypted, or not) once, at initialisation: whether Terraform
        // can unseal follows from that, so pgp_keys cannot change afterwards.
        if s.pgp() != prior.pgp() {
            diags.root_error(
                "pgp_keys cannot change after Vault is initialised",
                format!(
                    "The unseal key shares in the state are {}: they were split when Vault was first initialised and changing pgp_keys does not re-split them. Set pgp_keys (vault_unseal_pgp_keys) back to its earlier value. To change who holds the shares, re-key Vault by hand (`vault operator rekey`, docs/vault.md).",
                    if prior.pgp().is_some() { "PGP-encrypted" } else { "plain" }
                ),
            );
            return None;
        }
        // Sealed members at the last read: planning [] shows the unseal in the plan.
        if !list(&prior.sealed_members).is_empty() {
            s.sealed_members = to_list(Vec::new());
        }
        Some((s, private, vec![]))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<Self::PrivateState<'a>> {
        Some(private)
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned: Self::State<'a>,
        _config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let members = planned.reach().members(&self.ctx, diags).await?;
        let out = match init::init_or_adopt(&members, &planned.spec(), &abort_hook).await {
            Ok(o) => o,
            Err(e) => {
                diags.root_error("Vault initialisation failed", e.to_string());
                return None;
            }
        };
        if out.adopted {
            diags.root_warning(
                "Vault was already initialised: keys_file adopted",
                format!(
                    "The keys and root token in {} were verified and are now in the state; the file is deleted at the next refresh.",
                    planned.keys_path().display()
                ),
            );
        }
        if !out.sealed_members.is_empty() {
            diags.root_warning(
                "Vault members stay sealed",
                init::pgp_unseal_hint(&out.sealed_members),
            );
        }
        let mut s = planned;
        s.id = Value::Value(members[0].address.clone());
        s.initialized = Value::Value(true);
        s.unseal_keys = to_list(out.unseal_keys);
        s.root_token = Value::Value(out.root_token);
        s.sealed_members = to_list(out.sealed_members);
        Some((s, private))
    }

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: Self::State<'a>,
        planned: Self::State<'a>,
        _config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let mut s = planned;
        let to_unseal = list(&prior.sealed_members);
        if to_unseal.is_empty() {
            return Some((s, private));
        }
        if prior.pgp().is_some() {
            diags.root_error(
                "Terraform cannot unseal these members",
                init::pgp_unseal_hint(&to_unseal),
            );
            return None;
        }
        let members = s.reach().members(&self.ctx, diags).await?;
        let keys = list(&prior.unseal_keys);
        if let Err(e) = init::unseal_sealed(&members, &to_unseal, &keys, s.wait()).await {
            diags.root_error("unsealing failed", e.to_string());
            return None;
        }
        s.sealed_members = to_list(Vec::new());
        Some((s, private))
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        state: Self::State<'a>,
        _private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<()> {
        let path = state.keys_path();
        let keys = list(&state.unseal_keys);
        let Some(token) = opt_str(&state.root_token).filter(|_| !keys.is_empty()) else {
            return Some(());
        };
        match init::save_keys_file(&path, &keys, &token) {
            Ok(()) => {
                diags.root_warning(
                    "Vault keys written to keys_file",
                    format!(
                        "Destroying ffe_vault_init does not touch the cluster and never drops its keys: they are in {} (mode 0600). Keep them safe; an apply that re-creates the resource adopts them.",
                        path.display()
                    ),
                );
                Some(())
            }
            Err(e) => {
                diags.root_error(
                    "the Vault keys could not be saved; the resource is kept",
                    e.to_string(),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIUQ0Yd2ZZ7o1p4Wn2hS0Qb0Xy8rJ0wCgYIKoZIzj0EAwIw\n-----END CERTIFICATE-----\n";

    fn res() -> VaultInitResource {
        VaultInitResource {
            ctx: Arc::new(Ctx::default()),
        }
    }

    fn base() -> VaultInitState {
        VaultInitState {
            member_addresses: to_list(vec!["https://10.0.1.50:8200".into()]),
            ca_cert_pem: Value::Null,
            ca_secret: Value::Value(CaSecretObj {
                namespace: Value::Value("vault".into()),
                name: Value::Value("vault-ca".into()),
                key: Value::Value("ca.crt".into()),
            }),
            servers: Value::Value(vec![Value::Value(crate::resources::cluster::NodeObj {
                name: Value::Value("m0".into()),
                address: Value::Value("10.0.0.10".into()),
                ssh_port: Value::Null,
            })]),
            keys_file: Value::Value("/tmp/k.json".into()),
            ..Default::default()
        }
    }

    async fn errors(s: VaultInitState) -> Vec<(String, String)> {
        let mut d = Diagnostics::default();
        res().validate(&mut d, s).await;
        d.errors
            .iter()
            .map(|e| (e.summary.to_string(), e.detail.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn plan_time_errors_name_the_attribute_and_the_fix() {
        assert_eq!(errors(base()).await, vec![]);

        let mut s = base();
        s.secret_shares = Value::Value(3);
        s.secret_threshold = Value::Value(5);
        let e = errors(s).await;
        assert!(
            e[0].1
                .starts_with("secret_threshold: 5 must be between 1 and secret_shares (3)"),
            "{e:?}"
        );

        let mut s = base();
        s.member_addresses = to_list(vec!["http://10.0.1.50:8200".into()]);
        let e = errors(s).await;
        assert!(e[0].1.contains("only https://"), "{e:?}");

        let mut s = base();
        s.ca_cert_pem = Value::Value(CA.into());
        let e = errors(s).await;
        assert!(
            e.iter()
                .any(|(m, d)| m.contains("exactly one") && d.starts_with("both")),
            "{e:?}"
        );

        let mut s = base();
        s.ca_secret = Value::Null;
        let e = errors(s).await;
        assert!(e.iter().any(|(_, d)| d.starts_with("neither")), "{e:?}");

        let mut s = base();
        s.servers = Value::Null;
        let e = errors(s).await;
        assert!(
            e.iter().any(|(m, _)| m == "ca_secret needs servers"),
            "{e:?}"
        );

        let mut s = base();
        s.pgp_keys = to_list(vec!["a".into()]);
        let e = errors(s).await;
        assert!(
            e[0].1.starts_with("pgp_keys: 1 keys given for 5 shares"),
            "{e:?}"
        );

        let mut s = base();
        s.secret_shares = Value::Value(0);
        let e = errors(s).await;
        assert!(e[0].1.starts_with("secret_shares:"), "{e:?}");

        // unknown at plan time: no error yet
        let mut s = base();
        s.ca_cert_pem = Value::Unknown;
        s.ca_secret = Value::Null;
        assert_eq!(errors(s).await, vec![]);
    }

    #[tokio::test]
    async fn pgp_keys_cannot_change_after_initialisation() {
        let mut prior = base();
        prior.fill_defaults();
        for (before, after) in [
            (None, Some(vec!["mQENBGs=".to_string()])),
            (Some(vec!["mQENBGs=".to_string()]), None),
        ] {
            let mut p = prior.clone();
            p.pgp_keys = before.map(to_list).unwrap_or(Value::Null);
            let mut proposed = p.clone();
            proposed.pgp_keys = after.map(to_list).unwrap_or(Value::Null);
            let mut d = Diagnostics::default();
            let planned = res()
                .plan_update(
                    &mut d,
                    p.clone(),
                    proposed,
                    p.clone(),
                    ValueEmpty::default(),
                    ValueEmpty::default(),
                )
                .await;
            assert!(planned.is_none());
            let text = format!("{d:?}");
            assert!(
                text.contains("pgp_keys cannot change after Vault is initialised"),
                "{text}"
            );
        }
        // unchanged: planned
        let mut d = Diagnostics::default();
        assert!(res()
            .plan_update(
                &mut d,
                prior.clone(),
                prior.clone(),
                prior,
                ValueEmpty::default(),
                ValueEmpty::default()
            )
            .await
            .is_some());
    }

    #[tokio::test]
    async fn plan_shows_sealed_members_being_unsealed() {
        let mut prior = base();
        prior.fill_defaults();
        prior.sealed_members = to_list(vec!["https://10.0.1.52:8200".into()]);
        let mut d = Diagnostics::default();
        let (planned, _, replace) = res()
            .plan_update(
                &mut d,
                prior.clone(),
                prior.clone(),
                prior.clone(),
                ValueEmpty::default(),
                ValueEmpty::default(),
            )
            .await
            .unwrap();
        assert_eq!(list(&planned.sealed_members), Vec::<String>::new());
        assert!(matches!(planned.sealed_members, Value::Value(_)));
        assert!(replace.is_empty());
        // nothing sealed: nothing planned
        let mut none = prior.clone();
        none.sealed_members = to_list(vec![]);
        let (planned, _, _) = res()
            .plan_update(
                &mut d,
                none.clone(),
                none.clone(),
                none,
                ValueEmpty::default(),
                ValueEmpty::default(),
            )
            .await
            .unwrap();
        assert_eq!(planned.sealed_members, to_list(vec![]));
        assert_eq!(planned.secret_shares, Value::Value(5));
        assert_eq!(planned.secret_threshold, Value::Value(3));
    }

    #[tokio::test]
    async fn destroy_writes_the_keys_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let mut s = base();
        s.keys_file = Value::Value(path.display().to_string());
        s.unseal_keys = to_list(vec!["a2V5".into()]);
        s.root_token = Value::Value("s.root".into());
        let mut d = Diagnostics::default();
        res()
            .destroy(&mut d, s, ValueEmpty::default(), ValueEmpty::default())
            .await
            .unwrap();
        let k = init::read_keys_file(&path).unwrap().unwrap();
        assert_eq!(k.root_token, "s.root");
        assert_eq!(d.warnings.len(), 1);
    }
}

//! `ffe_vault_config`: kv-v2, audit device, Kubernetes auth, policies, roles and the
//! least-privilege ffe-terraform token. Logic in ffe_core::vault::config.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use ffe_core::vault::config::{self, ConfigSpec, Live, RoleSpec, Session};
use ffe_core::vault::Member;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{
    AttributeConstraint::{Computed, Optional, OptionalComputed, Required},
    AttributeType, Block, Description, Schema,
};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{map, AttributePath, Diagnostics, Resource};

use crate::provider::Ctx;
use crate::resources::cluster::NodeList;
use crate::resources::vault_init::{ca_secret_type, CaSecretObj, Reach};
use crate::schema::{attr, node_list, secret, str_list, str_map};
use crate::values::{list, list_unknown, map as to_btree, opt_str, to_list, Str, StrList, StrMap};

pub const DEFAULT_KV: &str = "secret";
pub const DEFAULT_AUDIT: &str = "stdout";
pub const DEFAULT_AUTH_MOUNT: &str = "kubernetes";
pub const DEFAULT_K8S_HOST: &str = "https://kubernetes.default.svc:443";

pub struct VaultConfigResource {
    pub ctx: Arc<Ctx>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KubeAuthObj {
    pub mount: Str,
    pub kubernetes_host: Str,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleObj {
    pub name: Str,
    pub service_account_names: StrList,
    pub namespaces: StrList,
    pub policies: StrList,
    pub ttl: Str,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VaultConfigState {
    pub id: Str,
    pub member_addresses: StrList,
    pub ca_cert_pem: Str,
    pub ca_secret: Value<CaSecretObj>,
    pub servers: NodeList,
    pub token: Str,
    pub kv_mount: Str,
    pub audit_file_path: Str,
    pub kubernetes_auth: Value<KubeAuthObj>,
    pub policies: StrMap,
    pub kubernetes_roles: Value<Vec<Value<RoleObj>>>,
    pub terraform_token: Str,
}

fn role_type() -> AttributeType {
    AttributeType::List(Box::new(AttributeType::Object(HashMap::from([
        ("name".to_string(), AttributeType::String),
        ("service_account_names".to_string(), str_list()),
        ("namespaces".to_string(), str_list()),
        ("policies".to_string(), str_list()),
        ("ttl".to_string(), AttributeType::String),
    ]))))
}

fn kube_auth_type() -> AttributeType {
    AttributeType::Object(HashMap::from([
        ("mount".to_string(), AttributeType::String),
        ("kubernetes_host".to_string(), AttributeType::String),
    ]))
}

impl VaultConfigState {
    fn reach(&self) -> Reach<'_> {
        Reach {
            member_addresses: &self.member_addresses,
            ca_cert_pem: &self.ca_cert_pem,
            ca_secret: &self.ca_secret,
            servers: &self.servers,
        }
    }

    fn fill_defaults(&mut self) {
        if matches!(self.kv_mount, Value::Null) {
            self.kv_mount = Value::Value(DEFAULT_KV.into());
        }
        if matches!(self.audit_file_path, Value::Null) {
            self.audit_file_path = Value::Value(DEFAULT_AUDIT.into());
        }
        if matches!(self.kubernetes_auth, Value::Null) {
            self.kubernetes_auth = Value::Value(KubeAuthObj {
                mount: Value::Value(DEFAULT_AUTH_MOUNT.into()),
                kubernetes_host: Value::Value(DEFAULT_K8S_HOST.into()),
            });
        }
    }

    fn roles(&self) -> Vec<RoleSpec> {
        self.kubernetes_roles
            .as_ref_option()
            .map(|l| {
                l.iter()
                    .filter_map(|r| r.as_ref_option())
                    .map(|r| RoleSpec {
                        name: opt_str(&r.name).unwrap_or_default(),
                        service_account_names: list(&r.service_account_names),
                        namespaces: list(&r.namespaces),
                        policies: list(&r.policies),
                        ttl: opt_str(&r.ttl).unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn spec(&self) -> ConfigSpec {
        let ka = self.kubernetes_auth.as_ref_option();
        ConfigSpec {
            kv_mount: opt_str(&self.kv_mount).unwrap_or_else(|| DEFAULT_KV.into()),
            audit_file_path: opt_str(&self.audit_file_path).unwrap_or_else(|| DEFAULT_AUDIT.into()),
            auth_mount: ka
                .and_then(|k| opt_str(&k.mount))
                .unwrap_or_else(|| DEFAULT_AUTH_MOUNT.into()),
            kubernetes_host: ka
                .and_then(|k| opt_str(&k.kubernetes_host))
                .unwrap_or_else(|| DEFAULT_K8S_HOST.into()),
            policies: to_btree(&self.policies),
            roles: self.roles(),
        }
    }

    /// Everything the spec is made of is known (not waiting on another resource).
    fn spec_known(&self) -> bool {
        let roles_known = match &self.kubernetes_roles {
            Value::Unknown => false,
            Value::Null => true,
            Value::Value(l) => l.iter().all(|r| match r {
                Value::Unknown => false,
                Value::Null => true,
                Value::Value(r) => {
                    !matches!(r.name, Value::Unknown)
                        && !matches!(r.ttl, Value::Unknown)
                        && !list_unknown(&r.service_account_names)
                        && !list_unknown(&r.namespaces)
                        && !list_unknown(&r.policies)
                }
            }),
        };
        let policies_known = match &self.policies {
            Value::Unknown => false,
            Value::Null => true,
            Value::Value(m) => m.values().all(|v| !matches!(v, Value::Unknown)),
        };
        let auth_known = match &self.kubernetes_auth {
            Value::Unknown => false,
            Value::Null => true,
            Value::Value(k) => {
                !matches!(k.mount, Value::Unknown) && !matches!(k.kubernetes_host, Value::Unknown)
            }
        };
        roles_known
            && policies_known
            && auth_known
            && !matches!(self.kv_mount, Value::Unknown)
            && !matches!(self.audit_file_path, Value::Unknown)
    }

    /// Put what the cluster holds into the state, so the plan shows any difference.
    fn observe(&mut self, spec: &ConfigSpec, live: &Live) {
        self.kv_mount = match &live.kv_mount {
            Some(m) => Value::Value(m.clone()),
            None => Value::Null,
        };
        self.audit_file_path = match &live.audit_file_path {
            Some(p) => Value::Value(p.clone()),
            None => Value::Null,
        };
        self.kubernetes_auth = match &live.kubernetes_host {
            Some(h) => Value::Value(KubeAuthObj {
                mount: Value::Value(spec.auth_mount.clone()),
                kubernetes_host: Value::Value(h.clone()),
            }),
            None => Value::Null,
        };
        if let Value::Value(m) = &mut self.policies {
            let kept: BTreeMap<String, Value<String>> = m
                .keys()
                .filter_map(|k| {
                    live.policies
                        .get(k)
                        .map(|t| (k.clone(), Value::Value(t.clone())))
                })
                .collect();
            *m = kept;
        }
        if let Value::Value(l) = &mut self.kubernetes_roles {
            let mut out = vec![];
            for (r, obj) in spec.roles.iter().zip(l.iter()) {
                let Some(lr) = live.roles.get(&r.name) else {
                    continue;
                };
                if lr.matches(r) {
                    out.push(obj.clone());
                } else {
                    out.push(Value::Value(RoleObj {
                        name: Value::Value(r.name.clone()),
                        service_account_names: to_list(lr.service_account_names.clone()),
                        namespaces: to_list(lr.namespaces.clone()),
                        policies: to_list(lr.policies.clone()),
                        ttl: Value::Value(format!("{}s", lr.ttl_seconds)),
                    }));
                }
            }
            *l = out;
        }
    }
}

impl VaultConfigResource {
    async fn session(
        &self,
        diags: &mut Diagnostics,
        s: &VaultConfigState,
        tf_token: Option<&str>,
    ) -> Option<(Vec<Member>, Session)> {
        let members = s.reach().members(&self.ctx, diags).await?;
        let token = opt_str(&s.token).unwrap_or_default();
        let tokens: Vec<&str> = tf_token.into_iter().chain([token.as_str()]).collect();
        match config::connect(&members, &tokens).await {
            Ok(sess) => Some((members, sess)),
            Err(e) => {
                diags.root_error("Vault could not be reached", e.to_string());
                None
            }
        }
    }

    /// Update: apply with the ffe-terraform token, making a new one if it was refused.
    async fn apply(
        &self,
        diags: &mut Diagnostics,
        prior: &VaultConfigState,
        planned: VaultConfigState,
    ) -> Option<VaultConfigState> {
        let spec = planned.spec();
        let tf = opt_str(&prior.terraform_token);
        let (members, mut sess) = self.session(diags, &planned, tf.as_deref()).await?;
        let mut token = tf.clone().unwrap_or_default();
        let fail = |diags: &mut Diagnostics, e: ffe_core::vault::VaultError| {
            diags.root_error("Vault configuration failed", e.to_string());
        };
        if tf.as_deref() != Some(sess.token.as_str()) {
            diags.root_warning(
                "the ffe-terraform token was refused; a new one is created with token",
                "It was revoked or expired (it lives 32 days without a terraform run).",
            );
            match config::create(&members, &sess.token, &spec).await {
                Ok((t, _)) => token = t,
                Err(e) => {
                    fail(diags, e);
                    return None;
                }
            }
            sess = match config::connect(std::slice::from_ref(&sess.member), &[&token]).await {
                Ok(s) => s,
                Err(e) => {
                    fail(diags, e);
                    return None;
                }
            };
        }
        let removed_policies: Vec<String> = to_btree(&prior.policies)
            .into_keys()
            .filter(|k| !spec.policies.contains_key(k))
            .collect();
        let removed_roles: Vec<String> = prior
            .roles()
            .into_iter()
            .map(|r| r.name)
            .filter(|n| !spec.roles.iter().any(|r| &r.name == n))
            .collect();
        let result = async {
            let live = config::read_live(&sess, &spec).await?;
            config::apply(&sess, &spec, &live, &removed_policies, &removed_roles).await
        }
        .await;
        if let Err(e) = result {
            fail(diags, e);
            return None;
        }
        let mut s = planned;
        s.terraform_token = Value::Value(token);
        Some(s)
    }
}

#[async_trait]
impl Resource for VaultConfigResource {
    type State<'a> = VaultConfigState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 1,
            block: Block {
                version: 1,
                description: Description::plain("Configures a Vault/OpenBao cluster for ffe: kv-v2, the file audit device, Kubernetes auth (in-cluster), policies and roles, and a least-privilege token (policy ffe-terraform) used by later runs instead of the root token. Re-applying writes nothing; changes made behind Terraform's back show in the plan."),
                attributes: map! {
                    "id" => attr(AttributeType::String, Computed, "The first member's address."),
                    "member_addresses" => attr(str_list(), Required, "Members' API addresses (https://<ip>:8200), tried in order."),
                    "ca_cert_pem" => attr(AttributeType::String, Optional, "PEM of the CA the members' certificates chain to. Exactly one of ca_cert_pem and ca_secret."),
                    "ca_secret" => attr(ca_secret_type(), Optional, "Kubernetes Secret holding that CA ({ namespace, name, key }), read over SSH on servers."),
                    "servers" => attr(node_list(), Optional, "k3s servers to read ca_secret through. Required with ca_secret."),
                    "token" => secret(AttributeType::String, Required, "Token with root rights (ffe_vault_init.<name>.root_token): used to create the ffe-terraform token, and again only if that one is refused."),
                    "kv_mount" => attr(AttributeType::String, OptionalComputed, "Path of the kv-v2 secrets engine (default \"secret\")."),
                    "audit_file_path" => attr(AttributeType::String, OptionalComputed, "file_path of the audit device \"file\" at file/ (default \"stdout\"). OpenBao only accepts audit devices declared in its server configuration: declare it there with the same path."),
                    "kubernetes_auth" => attr(kube_auth_type(), OptionalComputed, "Kubernetes auth method: { mount, kubernetes_host } (default kubernetes, https://kubernetes.default.svc:443); Vault uses its pod's service-account token and CA."),
                    "policies" => attr(str_map(), Optional, "ACL policies: name -> HCL rules. \"ffe-terraform\" is reserved."),
                    "kubernetes_roles" => attr(role_type(), Optional, "Kubernetes auth roles: { name, service_account_names, namespaces, policies, ttl }."),
                    "terraform_token" => secret(AttributeType::String, Computed, "Orphan periodic token with policy ffe-terraform (exactly the paths this resource manages); renewed at every read.")
                },
                ..Default::default()
            },
        })
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, c: Self::State<'a>) -> Option<()> {
        c.reach().validate(diags);
        if c.spec_known() {
            let mut s = c.clone();
            s.fill_defaults();
            if let Err(e) = s.spec().check() {
                let attr = match &e {
                    ffe_core::vault::VaultError::Invalid { attribute, .. } => attribute
                        .split('.')
                        .next()
                        .unwrap_or("policies")
                        .to_string(),
                    _ => "policies".into(),
                };
                diags.error(
                    "invalid Vault configuration",
                    e.to_string(),
                    AttributePath::new(attr),
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
        let tf = opt_str(&state.terraform_token);
        let mut probe = Diagnostics::default();
        let Some((_, sess)) = self.session(&mut probe, &state, tf.as_deref()).await else {
            for d in probe.errors {
                diags.root_warning(
                    "Vault configuration could not be checked; the state is from the last apply",
                    d.detail.to_string(),
                );
            }
            return Some((state, private));
        };
        if tf.as_deref() == Some(sess.token.as_str()) {
            if let Err(e) = config::renew(&sess).await {
                diags.root_warning(
                    "the ffe-terraform token could not be renewed",
                    e.to_string(),
                );
            }
        } else {
            // Refused: plan a new one.
            state.terraform_token = Value::Null;
        }
        let spec = state.spec();
        match config::read_live(&sess, &spec).await {
            Ok(live) => state.observe(&spec, &live),
            Err(e) => diags.root_warning(
                "Vault configuration could not be read; the state is from the last apply",
                e.to_string(),
            ),
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
        s.terraform_token = Value::Unknown;
        Some((s, ValueEmpty::default()))
    }

    async fn plan_update<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: Self::State<'a>,
        proposed: Self::State<'a>,
        _config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>, Vec<AttributePath>)> {
        let mut s = proposed;
        s.fill_defaults();
        if matches!(s.terraform_token, Value::Null) {
            s.terraform_token = Value::Unknown;
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
        let token = opt_str(&planned.token).unwrap_or_default();
        match config::create(&members, &token, &planned.spec()).await {
            Ok((t, _)) => {
                let mut s = planned;
                s.id = Value::Value(members[0].address.clone());
                s.terraform_token = Value::Value(t);
                Some((s, private))
            }
            Err(e) => {
                diags.root_error("Vault configuration failed", e.to_string());
                None
            }
        }
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
        self.apply(diags, &prior, planned)
            .await
            .map(|s| (s, private))
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        state: Self::State<'a>,
        _private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<()> {
        let tf = opt_str(&state.terraform_token);
        let (_, sess) = self.session(diags, &state, tf.as_deref()).await?;
        let revoke = tf.as_deref() == Some(sess.token.as_str());
        match config::delete(&sess, &state.spec(), revoke).await {
            Ok(()) => {
                diags.root_warning(
                    "Vault data kept",
                    "The roles and policies were removed and the ffe-terraform token revoked; the kv mount (with its secrets), the Kubernetes auth method and the audit device stay.",
                );
                Some(())
            }
            Err(e) => {
                diags.root_error("removing the Vault configuration failed", e.to_string());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ffe_core::vault::config::LiveRole;

    fn state() -> VaultConfigState {
        let mut s = VaultConfigState {
            member_addresses: to_list(vec!["https://10.0.1.50:8200".into()]),
            ca_cert_pem: Value::Value("pem".into()),
            token: Value::Value("s.root".into()),
            policies: Value::Value(BTreeMap::from([(
                "ffe-backend".to_string(),
                Value::Value(
                    "path \"secret/data/production/app\" { capabilities = [\"read\"] }".to_string(),
                ),
            )])),
            kubernetes_roles: Value::Value(vec![Value::Value(RoleObj {
                name: Value::Value("ffe-backend".into()),
                service_account_names: to_list(vec!["ffe-backend".into()]),
                namespaces: to_list(vec!["ffe".into()]),
                policies: to_list(vec!["ffe-backend".into()]),
                ttl: Value::Value("1h".into()),
            })]),
            ..Default::default()
        };
        s.fill_defaults();
        s
    }

    fn live(s: &ConfigSpec) -> Live {
        Live {
            kv_mount: Some(s.kv_mount.clone()),
            audit_file_path: Some(s.audit_file_path.clone()),
            audit_present: true,
            kubernetes_host: Some(s.kubernetes_host.clone()),
            auth_mounted: true,
            policies: s.policies.clone(),
            roles: BTreeMap::from([(
                "ffe-backend".to_string(),
                LiveRole {
                    service_account_names: vec!["ffe-backend".into()],
                    namespaces: vec!["ffe".into()],
                    policies: vec!["ffe-backend".into()],
                    ttl_seconds: 3600,
                },
            )]),
            terraform_policy: Some(s.terraform_policy()),
            kv_other: None,
        }
    }

    #[test]
    fn observe_keeps_a_matching_state_and_shows_drift() {
        let s = state();
        let spec = s.spec();
        let mut same = s.clone();
        same.observe(&spec, &live(&spec));
        assert_eq!(same.policies, s.policies);
        assert_eq!(same.kubernetes_roles, s.kubernetes_roles);
        assert_eq!(same.kv_mount, s.kv_mount);
        assert_eq!(same.kubernetes_auth, s.kubernetes_auth);

        let mut l = live(&spec);
        l.policies.insert(
            "ffe-backend".into(),
            "path \"*\" { capabilities = [\"sudo\"] }".into(),
        );
        l.roles.get_mut("ffe-backend").unwrap().ttl_seconds = 60;
        l.kv_mount = None;
        l.audit_file_path = None;
        let mut drifted = s.clone();
        drifted.observe(&spec, &l);
        assert_eq!(
            to_btree(&drifted.policies)["ffe-backend"],
            "path \"*\" { capabilities = [\"sudo\"] }"
        );
        assert_eq!(drifted.roles()[0].ttl, "60s");
        assert_eq!(drifted.kv_mount, Value::Null);
        assert_eq!(drifted.audit_file_path, Value::Null);

        // deleted behind Terraform's back: gone from the state, so the plan re-creates it
        let mut l = live(&spec);
        l.roles.clear();
        l.policies.clear();
        let mut gone = s.clone();
        gone.observe(&spec, &l);
        assert!(gone.roles().is_empty());
        assert!(to_btree(&gone.policies).is_empty());
    }
}

//! `ffe_manifests`: a bundle of Kubernetes YAML delivered to every k3s server's auto-deploy dir.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use ffe_core::k3s::planner::is_dns_label;
use ffe_core::k3s::Node;
use ffe_core::manifests::{self as bundle, WaitFor};
use serde::{Deserialize, Serialize};
use tf_provider::schema::{
    AttributeConstraint::{Computed, Optional, OptionalComputed, Required},
    AttributeType, Block, Description, Schema,
};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{map, AttributePath, Diagnostics, Resource};

use crate::provider::Ctx;
use crate::resources::cluster::{nodes, nodes_unknown, NodeList};
use crate::schema::{attr, node_list, str_map};
use crate::values::{map as to_btree, opt_str, to_map, Num, Str, StrMap};

pub struct ManifestsResource {
    pub ctx: Arc<Ctx>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WaitObj {
    pub kind: Str,
    pub name: Str,
    pub namespace: Str,
    pub condition: Str,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ManifestsState {
    pub id: Str,
    pub bundle: Str,
    pub servers: NodeList,
    pub manifests: StrMap,
    pub wait_for: Value<Vec<Value<WaitObj>>>,
    pub wait_timeout_seconds: Num,
    pub checksums: StrMap,
}

impl ManifestsState {
    fn bundle(&self) -> String {
        opt_str(&self.bundle).unwrap_or_default()
    }

    fn files(&self) -> BTreeMap<String, String> {
        to_btree(&self.manifests)
    }

    fn servers(&self) -> Vec<Node> {
        nodes(&self.servers)
    }

    fn waits(&self) -> Vec<WaitFor> {
        self.wait_for
            .as_ref_option()
            .map(|l| {
                l.iter()
                    .filter_map(|w| w.as_ref_option())
                    .map(|w| WaitFor {
                        kind: opt_str(&w.kind).unwrap_or_default(),
                        name: opt_str(&w.name).unwrap_or_default(),
                        namespace: opt_str(&w.namespace),
                        condition: opt_str(&w.condition).unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn manifests_known(&self) -> bool {
        match &self.manifests {
            Value::Value(m) => m.values().all(|v| !matches!(v, Value::Unknown)),
            Value::Null => true,
            Value::Unknown => false,
        }
    }
}

fn wait_type() -> AttributeType {
    AttributeType::List(Box::new(AttributeType::Object(HashMap::from([
        ("kind".to_string(), AttributeType::String),
        ("name".to_string(), AttributeType::String),
        ("namespace".to_string(), AttributeType::String),
        ("condition".to_string(), AttributeType::String),
    ]))))
}

impl ManifestsResource {
    async fn apply(
        &self,
        diags: &mut Diagnostics,
        prior: Option<&ManifestsState>,
        planned: ManifestsState,
    ) -> Option<ManifestsState> {
        let pool = self.ctx.pool(diags)?;
        let name = planned.bundle();
        let servers = planned.servers();
        let files = planned.files();
        let wanted = bundle::checksums(&files);
        let servers_changed = prior.is_none_or(|p| p.servers() != servers);
        let prior_sums = prior.map(|p| to_btree(&p.checksums)).unwrap_or_default();
        let changed: BTreeMap<String, String> = files
            .iter()
            .filter(|(f, _)| servers_changed || prior_sums.get(*f) != wanted.get(*f))
            .map(|(f, t)| (f.clone(), t.clone()))
            .collect();
        if let Err(e) = bundle::write_all(&pool, &servers, &name, &changed).await {
            diags.root_error(format!("writing bundle {name} failed"), format!("{e}\nRe-run terraform apply once the servers are reachable: writes are atomic and repeatable."));
            return None;
        }
        if let Some(p) = prior {
            let removed: BTreeMap<String, String> = p
                .files()
                .into_iter()
                .filter(|(f, _)| !files.contains_key(f))
                .collect();
            match bundle::remove(&pool, &servers, &name, &removed, &files).await {
                Ok(warnings) => {
                    for w in warnings {
                        diags.root_warning(format!("bundle {name}"), w);
                    }
                }
                Err(e) => {
                    diags.root_error(
                        format!("removing files from bundle {name} failed"),
                        e.to_string(),
                    );
                    return None;
                }
            }
        }
        let timeout = planned
            .wait_timeout_seconds
            .as_ref_option()
            .copied()
            .unwrap_or(300)
            .max(1) as u64;
        if let Err(e) = bundle::wait(&pool, &servers, &planned.waits(), timeout).await {
            diags.root_error(
                format!("bundle {name} was applied but is not ready"),
                e.to_string(),
            );
            return None;
        }
        let mut s = planned;
        s.id = Value::Value(name);
        s.checksums = to_map(wanted);
        Some(s)
    }
}

#[async_trait]
impl Resource for ManifestsResource {
    type State<'a> = ManifestsState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 1,
            block: Block {
                version: 1,
                description: Description::plain("A bundle of Kubernetes manifests written atomically to every k3s server's auto-deploy directory; removed files have their objects deleted."),
                attributes: map! {
                    "id" => attr(AttributeType::String, Computed, "The bundle name."),
                    "bundle" => attr(AttributeType::String, Required, "Bundle name (DNS-1123 label); prefixes the files on the servers."),
                    "servers" => attr(node_list(), Required, "Every k3s server (k3s does not sync the manifests directory)."),
                    "manifests" => attr(str_map(), Required, "File name (*.yaml) -> YAML with one or more Kubernetes objects."),
                    "wait_for" => attr(wait_type(), Optional, "Conditions to wait for after applying (kind, name, namespace, condition)."),
                    "wait_timeout_seconds" => attr(AttributeType::Number, OptionalComputed, "How long each wait_for condition may take (default 300)."),
                    "checksums" => attr(str_map(), Computed, "sha256 of each file as found on the servers (\"missing\" or \"differs on <servers>\" when drifted).")
                },
                ..Default::default()
            },
        })
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, c: Self::State<'a>) -> Option<()> {
        if let Value::Value(b) = &c.bundle {
            // Short enough that `ffe-<bundle>--<file>` stays a sane file name.
            let ok = is_dns_label(b) && b.len() <= 40;
            if !ok {
                diags.error_short(
                    format!("bundle {b:?} must be a DNS-1123 label of at most 40 characters"),
                    AttributePath::new("bundle"),
                );
            }
        }
        if let Value::Value(m) = &c.manifests {
            for (file, text) in m {
                if let Value::Value(t) = text {
                    if let Err(e) = bundle::validate(file, t) {
                        diags.error(
                            format!("manifest {file} is invalid"),
                            e.to_string(),
                            AttributePath::new("manifests").key(file.clone()),
                        );
                    }
                }
            }
        }
        if diags.errors.is_empty() {
            Some(())
        } else {
            None
        }
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        mut state: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let pool = self.ctx.pool(diags)?;
        let files: Vec<String> = state.files().into_keys().collect();
        let (sums, warnings) = bundle::read(&pool, &state.servers(), &state.bundle(), &files).await;
        for w in warnings {
            diags.root_warning(
                format!("bundle {}: a server could not be read", state.bundle()),
                w,
            );
        }
        state.checksums = to_map(sums);
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
        if matches!(s.wait_timeout_seconds, Value::Null) {
            s.wait_timeout_seconds = Value::Value(300);
        }
        s.id = s.bundle.clone();
        s.checksums = if s.manifests_known() {
            to_map(bundle::checksums(&s.files()))
        } else {
            Value::Unknown
        };
        Some((s, ValueEmpty::default()))
    }

    async fn plan_update<'a>(
        &self,
        _diags: &mut Diagnostics,
        prior: Self::State<'a>,
        proposed: Self::State<'a>,
        _config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>, Vec<AttributePath>)> {
        let mut s = proposed;
        if matches!(s.wait_timeout_seconds, Value::Null) {
            s.wait_timeout_seconds = Value::Value(300);
        }
        s.checksums = if s.manifests_known() {
            to_map(bundle::checksums(&s.files()))
        } else {
            Value::Unknown
        };
        let replace = if prior.bundle != s.bundle && !nodes_unknown(&s.servers) {
            vec![AttributePath::new("bundle")]
        } else {
            vec![]
        };
        Some((s, private, replace))
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
        self.apply(diags, None, planned).await.map(|s| (s, private))
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
        self.apply(diags, Some(&prior), planned)
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
        let pool = self.ctx.pool(diags)?;
        let name = state.bundle();
        match bundle::remove(
            &pool,
            &state.servers(),
            &name,
            &state.files(),
            &BTreeMap::new(),
        )
        .await
        {
            Ok(warnings) => {
                for w in warnings {
                    diags.root_warning(format!("bundle {name}"), w);
                }
                Some(())
            }
            Err(e) => {
                diags.root_error(format!("removing bundle {name} failed"), e.to_string());
                None
            }
        }
    }
}

//! The provider block: how to reach nodes over SSH. Configuring it dials nothing.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use ffe_core::ssh::{SshOptions, SshPool, SshSettings};
use serde::{Deserialize, Serialize};
use tf_provider::schema::{
    AttributeConstraint::Optional, AttributeType, Block, Description, Schema,
};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{map, AttributePath, Diagnostics, DynamicDataSource, DynamicResource, Provider};

use crate::resources::{
    cluster::ClusterResource, host::HostResource, manifests::ManifestsResource,
    vault_config::VaultConfigResource, vault_init::VaultInitResource,
};
use crate::schema::attr;
use crate::values::{opt_str, Num, Str};

/// Shared by the provider and its resources; filled in by `configure`.
#[derive(Default)]
pub struct Ctx {
    pool: RwLock<Option<Arc<SshPool>>>,
}

impl Ctx {
    /// The SSH pool, or an error diagnostic when the provider was not configured.
    pub fn pool(&self, diags: &mut Diagnostics) -> Option<Arc<SshPool>> {
        let pool = self.pool.read().ok().and_then(|p| p.clone());
        if pool.is_none() {
            diags.root_error_short("the ffe provider is not configured");
        }
        pool
    }
}

#[derive(Default, Clone)]
pub struct FfeProvider {
    ctx: Arc<Ctx>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProviderConfig {
    pub ssh_user: Str,
    pub ssh_port: Num,
    pub ssh_private_key_path: Str,
    pub ssh_known_hosts_file: Str,
    pub ssh_insecure_ignore_host_keys: Value<bool>,
    pub ssh_connect_timeout_seconds: Num,
}

impl ProviderConfig {
    fn settings(&self, diags: &mut Diagnostics) -> Option<SshSettings> {
        let options = SshOptions {
            user: opt_str(&self.ssh_user),
            port: self.ssh_port.as_ref_option().copied(),
            private_key_path: opt_str(&self.ssh_private_key_path),
            known_hosts_file: opt_str(&self.ssh_known_hosts_file),
            insecure_ignore_host_keys: self.ssh_insecure_ignore_host_keys.as_ref_option().copied(),
            connect_timeout_seconds: self.ssh_connect_timeout_seconds.as_ref_option().copied(),
        };
        SshSettings::from_options(&options)
            .map_err(|e| diags.error_short(e.message, AttributePath::new(e.attribute)))
            .ok()
    }
}

#[async_trait]
impl Provider for FfeProvider {
    type Config<'a> = ProviderConfig;
    type MetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 1,
            block: Block {
                version: 1,
                description: Description::plain(
                    "ffe-ha: HA k3s on your own machines over SSH. Configuring the provider opens no connection.",
                ),
                attributes: map! {
                    "ssh_user" => attr(AttributeType::String, Optional, "SSH user on every node (default root). Other users need passwordless sudo."),
                    "ssh_port" => attr(AttributeType::Number, Optional, "SSH port (default 22)."),
                    "ssh_private_key_path" => attr(AttributeType::String, Optional, "Private key file. Unset: the ssh-agent and the user's default keys."),
                    "ssh_known_hosts_file" => attr(AttributeType::String, Optional, "known_hosts file pinning every node's host key. Required to connect unless ssh_insecure_ignore_host_keys is true."),
                    "ssh_insecure_ignore_host_keys" => attr(AttributeType::Bool, Optional, "Accept any host key when ssh_known_hosts_file is unset (throw-away labs only; default false)."),
                    "ssh_connect_timeout_seconds" => attr(AttributeType::Number, Optional, "Seconds to wait for an SSH connection (default 10).")
                },
                ..Default::default()
            },
        })
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::Config<'a>) -> Option<()> {
        config.settings(diags).map(|_| ())
    }

    async fn configure<'a>(
        &self,
        diags: &mut Diagnostics,
        _terraform_version: String,
        config: Self::Config<'a>,
    ) -> Option<()> {
        let settings = config.settings(diags)?;
        if let Some(detail) = settings.pinning_warning() {
            diags.root_warning("SSH host keys are not pinned", detail);
        }
        if let Ok(mut slot) = self.ctx.pool.write() {
            *slot = Some(Arc::new(SshPool::new(settings)));
        }
        Some(())
    }

    fn get_resources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicResource>>> {
        Some(map! {
            "host" => HostResource { ctx: self.ctx.clone() },
            "k3s_cluster" => ClusterResource { ctx: self.ctx.clone() },
            "manifests" => ManifestsResource { ctx: self.ctx.clone() },
            "vault_init" => VaultInitResource { ctx: self.ctx.clone() },
            "vault_config" => VaultConfigResource { ctx: self.ctx.clone() }
        })
    }

    fn get_data_sources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicDataSource>>> {
        Some(HashMap::new())
    }
}

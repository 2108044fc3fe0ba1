//! `ffe_host`: one node, prepared for k3s, with its facts; Read detects drift.

use std::sync::Arc;

use async_trait::async_trait;
use ffe_core::firewall::FirewallSpec;
use ffe_core::host::{self, HostSpec, NfsShare};
use ffe_core::k3s::planner::is_dns_label;
use ffe_core::ssh::Target;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{
    AttributeConstraint::{Computed, Optional, OptionalComputed, Required},
    AttributeType, Block, Description, Schema,
};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{map, AttributePath, Diagnostics, Resource};

use crate::provider::Ctx;
use crate::schema::{attr, str_list, str_map};
use crate::values::{list, map as to_btree, opt_str, to_list, to_map, Num, Str, StrList, StrMap};

pub struct HostResource {
    pub ctx: Arc<Ctx>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HostState {
    pub id: Str,
    pub name: Str,
    pub address: Str,
    pub ssh_port: Num,
    pub role: Str,
    pub backup_mount: Str,
    pub nfs_server: Str,
    pub nfs_export: Str,
    pub packages: StrList,
    pub kernel_modules: StrList,
    pub sysctls: StrMap,
    pub protect_kernel_defaults: Value<bool>,
    pub firewall_enabled: Value<bool>,
    pub firewall_admin_cidrs: StrList,
    pub firewall_node_cidrs: StrList,
    pub firewall_servers: StrList,
    pub firewall_pod_cidr: Str,
    pub firewall_service_endpoints: StrList,
    pub os_id: Str,
    pub os_version: Str,
    pub kernel: Str,
    pub cpu_count: Num,
    pub memory_mb: Num,
    pub root_disk_gb: Num,
    pub drift: StrList,
}

impl HostState {
    fn target(&self) -> Target {
        Target {
            name: opt_str(&self.name).unwrap_or_default(),
            address: opt_str(&self.address).unwrap_or_default(),
            port: self.ssh_port.as_ref_option().map(|p| *p as u16),
        }
    }

    /// The firewall as configured; `ssh_port` is the port this node is reached on.
    fn firewall(&self, ssh_port: u16) -> Option<FirewallSpec> {
        (self.firewall_enabled == Value::Value(true)).then(|| FirewallSpec {
            server: opt_str(&self.role).as_deref() == Some("server"),
            ssh_port,
            admin_cidrs: list(&self.firewall_admin_cidrs),
            node_cidrs: list(&self.firewall_node_cidrs),
            servers: list(&self.firewall_servers),
            pod_cidr: opt_str(&self.firewall_pod_cidr).unwrap_or_default(),
            service_endpoints: list(&self.firewall_service_endpoints),
        })
    }

    /// The host as it should be; `default_port` is the provider's SSH port.
    fn spec(&self, default_port: u16) -> HostSpec {
        let port = self
            .ssh_port
            .as_ref_option()
            .map(|p| *p as u16)
            .unwrap_or(default_port);
        HostSpec {
            packages: list(&self.packages),
            kernel_modules: list(&self.kernel_modules),
            sysctls: to_btree(&self.sysctls),
            backup_mount: opt_str(&self.backup_mount).unwrap_or_default(),
            nfs: match (opt_str(&self.nfs_server), opt_str(&self.nfs_export)) {
                (Some(server), Some(export)) => Some(NfsShare { server, export }),
                _ => None,
            },
            protect_kernel_defaults: self.protect_kernel_defaults != Value::Value(false),
            firewall: self.firewall(port),
        }
    }

    fn fill_defaults(&mut self) {
        if matches!(self.packages, Value::Null) {
            self.packages = to_list(host::default_packages());
        }
        if matches!(self.kernel_modules, Value::Null) {
            self.kernel_modules = to_list(host::default_kernel_modules());
        }
        if matches!(self.sysctls, Value::Null) {
            self.sysctls = to_map(host::default_sysctls());
        }
        if matches!(self.protect_kernel_defaults, Value::Null) {
            self.protect_kernel_defaults = Value::Value(true);
        }
        if matches!(self.firewall_enabled, Value::Null) {
            self.firewall_enabled = Value::Value(false);
        }
    }

    fn set_facts(&mut self, f: &host::HostFacts) {
        self.os_id = Value::Value(f.os_id.clone());
        self.os_version = Value::Value(f.os_version.clone());
        self.kernel = Value::Value(f.kernel.clone());
        self.cpu_count = Value::Value(f.cpu_count);
        self.memory_mb = Value::Value(f.memory_mb);
        self.root_disk_gb = Value::Value(f.root_disk_gb);
    }
}

fn is_ipv4(s: &str) -> bool {
    s.parse::<std::net::Ipv4Addr>().is_ok()
}

impl HostResource {
    /// Prepare the host, then prove it: facts and a drift check that must come back empty.
    async fn converge(&self, diags: &mut Diagnostics, mut state: HostState) -> Option<HostState> {
        let pool = self.ctx.pool(diags)?;
        let t = state.target();
        let spec = state.spec(pool.settings().port);
        // Plan checks only what was known then: values computed by other resources are
        // checked here, before anything reaches the node's shell, sysctl.d, fstab or nftables.
        let mut problems = spec.problems();
        if let Some(fw) = &spec.firewall {
            problems.extend(fw.problems(&t.address));
        }
        if !problems.is_empty() {
            for (attr, message) in problems {
                diags.error_short(message, AttributePath::new(attr));
            }
            return None;
        }
        // One SSH session: the preparation steps, then the facts and the check (the error
        // names the step that failed).
        let (facts, drift) = match host::prepare_and_inspect(&pool, &t, &spec).await {
            Ok(read) => read,
            Err(e) => {
                diags.root_error(format!("preparing {t} failed"), e.to_string());
                return None;
            }
        };
        if let Some(w) = facts.os_warning() {
            diags.root_warning(format!("{t}: unsupported OS"), w);
        }
        match drift {
            Ok(d) if d.is_empty() => {}
            Ok(d) => {
                diags.root_error(
                    format!("{t} is still not prepared after preparing it"),
                    format!("{}. Fix these on the host (or adjust packages/kernel_modules/sysctls), then re-run terraform apply.", d.join("; ")),
                );
                return None;
            }
            Err(e) => {
                diags.root_error(format!("checking {t} failed"), e.to_string());
                return None;
            }
        }
        state.set_facts(&facts);
        state.drift = to_list(vec![]);
        state.id = Value::Value(opt_str(&state.name).unwrap_or_default());
        Some(state)
    }
}

#[async_trait]
impl Resource for HostResource {
    type State<'a> = HostState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(Schema {
            version: 1,
            block: Block {
                version: 1,
                description: Description::plain("A node reached over SSH and prepared for k3s: packages, kernel modules, sysctls, the backup share. Read reports facts and drift."),
                attributes: map! {
                    "id" => attr(AttributeType::String, Computed, "The node name."),
                    "name" => attr(AttributeType::String, Required, "Node name (DNS-1123 label); also the Kubernetes node name."),
                    "address" => attr(AttributeType::String, Required, "IPv4 address SSH and k3s use."),
                    "ssh_port" => attr(AttributeType::Number, Optional, "SSH port of this node; default: the provider's ssh_port."),
                    "role" => attr(AttributeType::String, Required, "\"server\" (control plane + etcd) or \"agent\" (worker)."),
                    "backup_mount" => attr(AttributeType::String, Required, "Absolute path where the backup share is mounted (NFS when nfs_server/nfs_export are set)."),
                    "nfs_server" => attr(AttributeType::String, Optional, "NFS server of the backup share."),
                    "nfs_export" => attr(AttributeType::String, Optional, "NFS export path of the backup share."),
                    "packages" => attr(str_list(), OptionalComputed, "Debian packages installed when missing."),
                    "kernel_modules" => attr(str_list(), OptionalComputed, "Kernel modules loaded now and at boot."),
                    "sysctls" => attr(str_map(), OptionalComputed, "Kernel settings applied now and at boot."),
                    "protect_kernel_defaults" => attr(AttributeType::Bool, OptionalComputed, "Also set the kernel settings the kubelet requires when k3s runs with protect-kernel-defaults (the CIS profile): vm.overcommit_memory=1, vm.panic_on_oom=0, kernel.panic=10, kernel.panic_on_oops=1, kernel.keys.root_maxkeys=1000000, kernel.keys.root_maxbytes=25000000. Default true."),
                    "firewall_enabled" => attr(AttributeType::Bool, OptionalComputed, "Load and keep an nftables inbound firewall (table inet ffe_host) that lets in only what this node's role needs. Default false; false also removes one loaded before."),
                    "firewall_admin_cidrs" => attr(str_list(), Optional, "Networks operators and Terraform connect from: SSH and the Kubernetes API. The apply refuses rules that would not let its own SSH client back in."),
                    "firewall_node_cidrs" => attr(str_list(), Optional, "The networks the cluster nodes are in: node-to-node ports (kubelet, Calico, node-exporter, the API for agents) are open to these. Networks, not the node list, so a node joining or leaving changes no other node's rules."),
                    "firewall_servers" => attr(str_list(), Optional, "The servers' addresses: etcd (2379-2380) is open to these only."),
                    "firewall_pod_cidr" => attr(AttributeType::String, Optional, "Pod network: pods reach the API, kubelet and metrics ports."),
                    "firewall_service_endpoints" => attr(str_list(), Optional, "IPv4:port TCP endpoints open to everyone (edge, Postgres, Vault VIPs)."),
                    "os_id" => attr(AttributeType::String, Computed, "ID from /etc/os-release."),
                    "os_version" => attr(AttributeType::String, Computed, "VERSION_ID from /etc/os-release."),
                    "kernel" => attr(AttributeType::String, Computed, "Running kernel release."),
                    "cpu_count" => attr(AttributeType::Number, Computed, "CPUs."),
                    "memory_mb" => attr(AttributeType::Number, Computed, "Memory in MiB."),
                    "root_disk_gb" => attr(AttributeType::Number, Computed, "Size of the root filesystem in GiB."),
                    "drift" => attr(str_list(), Computed, "How the host differs from its preparation; empty when prepared.")
                },
                ..Default::default()
            },
        })
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, c: Self::State<'a>) -> Option<()> {
        if let Value::Value(n) = &c.name {
            if !is_dns_label(n) {
                diags.error_short(
                    format!("name {n:?} is not a DNS-1123 label (lowercase letters, digits, '-', at most 63)"),
                    AttributePath::new("name"),
                );
            }
        }
        if let Value::Value(a) = &c.address {
            if !is_ipv4(a) {
                diags.error_short(
                    format!("address {a:?} is not an IPv4 address"),
                    AttributePath::new("address"),
                );
            }
        }
        if let Value::Value(r) = &c.role {
            if r != "server" && r != "agent" {
                diags.error_short(
                    format!("role {r:?} must be \"server\" or \"agent\""),
                    AttributePath::new("role"),
                );
            }
        }
        if let Value::Value(m) = &c.backup_mount {
            if !m.starts_with('/') || m == "/" {
                diags.error_short(
                    format!("backup_mount {m:?} must be an absolute path other than /"),
                    AttributePath::new("backup_mount"),
                );
            }
        }
        if let Value::Value(p) = &c.ssh_port {
            if !(1..=65535).contains(p) {
                diags.error_short("ssh_port must be 1-65535", AttributePath::new("ssh_port"));
            }
        }
        match (&c.nfs_server, &c.nfs_export) {
            (Value::Value(_), Value::Null) | (Value::Null, Value::Value(_)) => {
                diags.root_error_short("set both nfs_server and nfs_export, or neither");
            }
            _ => {}
        }
        // Values that reach the host's shell, sysctl.d or fstab (only those known now).
        let known = |v: &StrList| matches!(v, Value::Value(l) if l.iter().all(|e| matches!(e, Value::Value(_))));
        let mut probe = c.clone();
        probe.fill_defaults();
        let all_known = known(&probe.packages)
            && known(&probe.kernel_modules)
            && matches!(&probe.sysctls, Value::Value(m) if m.values().all(|v| matches!(v, Value::Value(_))))
            && !matches!(probe.backup_mount, Value::Unknown)
            && !matches!(probe.nfs_server, Value::Unknown)
            && !matches!(probe.nfs_export, Value::Unknown)
            && !matches!(probe.protect_kernel_defaults, Value::Unknown);
        if all_known {
            // The port only shapes the rules, never a problem: any value will do here.
            for (attr, message) in probe.spec(22).problems() {
                diags.error_short(message, AttributePath::new(attr));
            }
        }
        let fw_known = matches!(probe.firewall_enabled, Value::Value(_))
            && [
                &probe.firewall_admin_cidrs,
                &probe.firewall_node_cidrs,
                &probe.firewall_servers,
                &probe.firewall_service_endpoints,
            ]
            .iter()
            .all(|l| !crate::values::list_unknown(l))
            && !matches!(probe.firewall_pod_cidr, Value::Unknown)
            && !matches!(probe.address, Value::Unknown)
            && !matches!(probe.role, Value::Unknown);
        if fw_known {
            if let (Some(fw), Some(address)) = (probe.firewall(22), opt_str(&probe.address)) {
                for (attr, message) in fw.problems(&address) {
                    diags.error_short(message, AttributePath::new(attr));
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
        let t = state.target();
        let spec = state.spec(pool.settings().port);
        let drift = match host::inspect(&pool, &t, &spec).await {
            Ok((f, drift)) => {
                state.set_facts(&f);
                drift
            }
            Err(e) => {
                // A vanished host is a diff (drift), not a failed refresh.
                diags.root_warning(format!("{t} is unreachable"), e.to_string());
                state.drift = to_list(vec![format!("host unreachable: {e}")]);
                return Some((state, private));
            }
        };
        match drift {
            Ok(d) => state.drift = to_list(d),
            Err(e) => {
                diags.root_warning(format!("{t}: drift check failed"), e.to_string());
                state.drift = to_list(vec![format!("drift check failed: {e}")]);
            }
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
        s.os_id = Value::Unknown;
        s.os_version = Value::Unknown;
        s.kernel = Value::Unknown;
        s.cpu_count = Value::Unknown;
        s.memory_mb = Value::Unknown;
        s.root_disk_gb = Value::Unknown;
        s.drift = to_list(vec![]);
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
        s.fill_defaults();
        let mut replace = vec![];
        for (field, old, new) in [
            ("name", &prior.name, &s.name),
            ("address", &prior.address, &s.address),
            ("role", &prior.role, &s.role),
        ] {
            if old != new {
                replace.push(AttributePath::new(field));
            }
        }
        // Planned: the host is prepared (no drift). A drifted host shows as a diff here.
        s.drift = to_list(vec![]);
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
        self.converge(diags, planned).await.map(|s| (s, private))
    }

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        _prior: Self::State<'a>,
        planned: Self::State<'a>,
        _config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        self.converge(diags, planned).await.map(|s| (s, private))
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        state: Self::State<'a>,
        _private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<()> {
        let pool = self.ctx.pool(diags)?;
        let t = state.target();
        match host::cleanup(&pool, &t, &state.spec(pool.settings().port)).await {
            Ok(()) => Some(()),
            Err(host::HostError::Ssh(e)) if e.is_unreachable() => {
                diags.root_warning(
                    format!("{t} unreachable: host preparation not removed"),
                    format!("{e}. Nothing else depends on it; if the host comes back, remove {} and {} by hand, and its firewall: `systemctl disable {}; nft delete table {}; rm -f {} {}`.", host::MODULES_FILE, host::SYSCTL_FILE, ffe_core::firewall::UNIT_NAME, ffe_core::firewall::TABLE, ffe_core::firewall::RULES_FILE, ffe_core::firewall::UNIT_FILE),
                );
                Some(())
            }
            Err(e) => {
                diags.root_error(format!("cleaning up {t} failed"), e.to_string());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_are_checked() {
        assert!(is_dns_label("ffe-prod-master-0"));
        assert!(!is_dns_label("Master_0"));
        assert!(!is_dns_label("-a"));
        assert!(is_ipv4("10.0.1.10"));
        assert!(!is_ipv4("10.0.1"));
    }
}

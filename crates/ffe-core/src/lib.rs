//! ffe-core: all real logic of ffe-ha lives here; the provider, the CLI and the lab are thin.

pub mod firewall;
pub mod host;
pub mod k3s;
pub mod kube;
pub mod kubeconfig;
pub mod manifests;
pub mod pg;
pub mod shell;
pub mod ssh;
pub mod vault;

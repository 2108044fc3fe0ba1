//! The provider's resources. Each maps Terraform values to ffe-core and back; no logic of its own.
pub mod cluster;
pub mod host;
pub mod manifests;
pub mod vault_config;
pub mod vault_init;

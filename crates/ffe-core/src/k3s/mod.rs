//! HA k3s: the desired cluster, its per-node config, the step planner and the SSH operations.

pub mod certs;
pub mod config;
pub mod etcd;
pub mod model;
pub mod ops;
pub mod planner;
pub mod restore;
pub mod state;
pub mod token;

pub use model::{ClusterSpec, InstallSource, Node, Role, VersionSpec};
pub use planner::{Action, LiveCluster, LiveNode, PlanError, Stage};
pub use token::JoinSecrets;

//! ffe-ops: what the `ffe-ha` CLI does, as a library. The inventory (from the environment's
//! `ops_inventory` output or a file), checks with their evidence, and the commands built on them.

pub mod backups;
pub mod check;
pub mod drill;
pub mod etcd;
pub mod inventory;
pub mod postgres;
pub mod preflight;
pub mod render;
pub mod restore;
pub mod status;
pub mod verify;

pub use check::{Check, ExitCode, Report, Status};
pub use inventory::{Inventory, InventoryError, Node, Role};

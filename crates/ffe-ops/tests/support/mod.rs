//! Shared by the ffe-ops lab tests: an inventory of a lab's hosts and row lookup.
#![allow(dead_code)]

use ffe_lab::lab::Lab;
use ffe_ops::inventory::{InventoryDoc, InventorySource, SshOverrides};
use ffe_ops::{Check, Inventory};

/// The inventory of every lab host (role `server` when its name has "master"), reached with the
/// lab's key and pinned known_hosts.
pub fn lab_inventory(lab: &Lab) -> Inventory {
    let nodes: Vec<serde_json::Value> = lab
        .hosts()
        .iter()
        .map(|h| {
            let role = if h.name.contains("master") {
                "server"
            } else {
                "agent"
            };
            serde_json::json!({"name": h.name, "address": h.ip.to_string(), "role": role})
        })
        .collect();
    let doc: InventoryDoc = serde_json::from_value(serde_json::json!({
        "schema": 1, "cluster_name": "lab", "nodes": nodes, "backup_mount": "/mnt/backups",
        "ssh": {"private_key_path": lab.client_key(), "known_hosts_file": lab.known_hosts(),
                "connect_timeout_seconds": 3}
    }))
    .unwrap();
    Inventory::validate(
        doc,
        InventorySource::File { path: "lab".into() },
        &SshOverrides::default(),
    )
    .unwrap()
}

/// The `id` row of `subject`.
pub fn row<'a>(checks: &'a [Check], id: &str, subject: &str) -> &'a Check {
    checks
        .iter()
        .find(|c| c.id == id && c.subject == subject)
        .unwrap_or_else(|| panic!("no {id} row for {subject}: {checks:#?}"))
}

//! k3s's deploy controller, as far as the stand-in models it: one `Addon` per manifest file in
//! `/var/lib/rancher/k3s/server/manifests`, named after the file name up to its first `.`,
//! holding the checksum of the content last applied. A file is applied when it is new or its
//! checksum changed; a file whose Addon already has the same checksum is skipped, even if its
//! objects were deleted meanwhile (why a removed bundle must also delete its Addons).
//!
//! The stand-in runs no controller loop: it scans the directory whenever `kubectl` runs on a
//! server, which stands for the controller's own resync. "Applied" means the objects of the
//! file are recorded as present; nothing is evaluated beyond their kind and name.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{HostEnv, StandinError};

pub const MANIFESTS_DIR: &str = "/var/lib/rancher/k3s/server/manifests";

/// One `kube-system` Addon object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AddonState {
    /// The manifest file it was last applied from.
    pub source: String,
    pub checksum: String,
    /// `kind/name` of the file's objects that exist (applied and not deleted since).
    pub objects: BTreeSet<String>,
}

/// The Addon a manifest file belongs to: its name up to the first `.`.
pub fn addon_name(file_name: &str) -> &str {
    file_name.split('.').next().unwrap_or(file_name)
}

/// An object name the API server accepts (RFC 1123 subdomain).
fn valid_object_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && n.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && n.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// Apply new or changed manifest files of this server into `addons`. Returns what k3s would log
/// as problems (invalid names, two files sharing one Addon, unparsable files).
pub fn scan(
    host: &HostEnv,
    addons: &mut BTreeMap<String, AddonState>,
    parse: impl Fn(&str, &str) -> Result<Vec<(String, String)>, StandinError>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let dir = host.path(MANIFESTS_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return warnings;
    };
    let mut files: Vec<(String, String)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let wanted = [".yaml", ".yml", ".json"].iter().any(|x| name.ends_with(x));
            wanted.then(|| (name, std::fs::read_to_string(e.path()).unwrap_or_default()))
        })
        .collect();
    files.sort();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (file, text) in files {
        let addon = addon_name(&file).to_string();
        if !valid_object_name(&addon) {
            warnings.push(format!(
                "level=error msg=\"deploy controller: cannot apply {file}: Addon.k3s.cattle.io \\\"{addon}\\\" is invalid: metadata.name: must be a lowercase RFC 1123 subdomain\""
            ));
            continue;
        }
        if let Some(other) = seen.insert(addon.clone(), file.clone()) {
            warnings.push(format!(
                "level=warning msg=\"deploy controller: {file} and {other} both map to Addon {addon}: each overwrites the other's checksum\""
            ));
        }
        let checksum = hex::encode(Sha256::digest(text.as_bytes()));
        let current = addons.get(&addon);
        if current.is_some_and(|a| a.checksum == checksum) {
            continue; // already applied with this content: skipped, as k3s does
        }
        match parse(&file, &text) {
            Ok(objs) => {
                addons.insert(
                    addon,
                    AddonState {
                        source: file,
                        checksum,
                        objects: objs.iter().map(|(k, n)| format!("{k}/{n}")).collect(),
                    },
                );
            }
            Err(e) => warnings.push(format!(
                "level=error msg=\"deploy controller: failed to process {file}: {e}\""
            )),
        }
    }
    warnings
}

/// Objects deleted through the API are gone from every Addon that had applied them.
pub fn objects_deleted(addons: &mut BTreeMap<String, AddonState>, deleted: &[(String, String)]) {
    let gone: BTreeSet<String> = deleted.iter().map(|(k, n)| format!("{k}/{n}")).collect();
    for a in addons.values_mut() {
        a.objects.retain(|o| !gone.contains(o));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_first_dot_and_must_be_object_names() {
        assert_eq!(addon_name("ffe-app--app.yaml"), "ffe-app--app");
        assert_eq!(addon_name("a.b.yaml"), "a");
        assert!(valid_object_name("ffe-app--app"));
        assert!(!valid_object_name("ffe_app"));
        assert!(!valid_object_name("-x"));
    }
}

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{StandinError, DEFAULT_JOIN_HOLD_MS, DEFAULT_JOIN_RETRY_MS, LAB_MARKER};

/// `standin.json`: where the lab-wide datastore and records live, and the version to report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub datastore_dir: PathBuf,
    pub records_dir: PathBuf,
    pub version: String,
    /// How long a joining server holds the learner marker (default 300 ms).
    #[serde(default = "default_hold")]
    pub join_hold_ms: u64,
    /// How long a join keeps retrying a server that does not answer before the start fails.
    /// Real k3s retries without end (systemd's start never returns); the stand-in stops so a lab
    /// test cannot hang, and the provider's own step limit is tested separately.
    #[serde(default = "default_retry")]
    pub join_retry_ms: u64,
}

fn default_hold() -> u64 {
    DEFAULT_JOIN_HOLD_MS
}

fn default_retry() -> u64 {
    DEFAULT_JOIN_RETRY_MS
}

impl Settings {
    pub fn load(path: &Path) -> Result<Self, StandinError> {
        let text = std::fs::read(path).map_err(|e| StandinError::io(path, e))?;
        serde_json::from_slice(&text).map_err(|e| StandinError::json(path, e))
    }

    /// Look for `standin.json` next to the canonicalized current executable, then at
    /// [`LAB_MARKER`] under `root` (a copy uploaded as `/usr/local/bin/k3s` has no sidecar).
    pub fn locate(root: &Path) -> Result<Self, StandinError> {
        let mut candidates = Vec::new();
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|p| p.canonicalize().ok())
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            candidates.push(dir.join("standin.json"));
        }
        candidates.push(root.join(LAB_MARKER.trim_start_matches('/')));
        for c in &candidates {
            if c.is_file() {
                return Self::load(c);
            }
        }
        Err(StandinError::NoSettings {
            looked: candidates
                .iter()
                .map(|c| c.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

//! The JSON-lines record of every stand-in invocation.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::lock::FileLock;
use super::StandinError;

/// One invocation of the stand-in, as appended to `<records_dir>/<hostname>.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StandinRecord {
    /// Unix time in nanoseconds when the invocation started.
    pub ts_ns: u64,
    /// Host name (UTS namespace) the invocation ran on.
    pub host: String,
    /// Basename of argv[0] (`k3s`, `kubectl`, `systemctl`, `install.sh`, ...).
    pub program: String,
    /// argv[1..].
    pub argv: Vec<String>,
    /// Only `INSTALL_K3S_*` and `K3S_*` keys, never any key containing `TOKEN`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `/etc/rancher/k3s/config.yaml` when a service started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_yaml: Option<String>,
    pub exit_code: i32,
    pub message: String,
    /// Manifest text given on stdin (`kubectl apply -f -`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// Manifest files given (`kubectl apply -f FILE`), path → content.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    /// What real k3s would have logged as a warning (see `Outcome::warnings`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The environment subset that may be recorded: `INSTALL_K3S_*` and `K3S_*`, minus secrets
/// (`K3S_TOKEN`, `K3S_AGENT_TOKEN`, anything with `TOKEN` or `PASSWORD` in its name).
pub fn sanitize_env(env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    env.iter()
        .filter(|(k, _)| k.starts_with("INSTALL_K3S_") || k.starts_with("K3S_"))
        .filter(|(k, _)| !k.contains("TOKEN") && !k.contains("PASSWORD"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn records_file(dir: &Path, host: &str) -> PathBuf {
    dir.join(format!("{host}.jsonl"))
}

/// Append one record as a single write under an exclusive lock.
pub fn append_record(dir: &Path, rec: &StandinRecord) -> Result<(), StandinError> {
    std::fs::create_dir_all(dir).map_err(|e| StandinError::io(dir, e))?;
    let path = records_file(dir, &rec.host);
    let mut line = serde_json::to_vec(rec).map_err(|e| StandinError::json(&path, e))?;
    line.push(b'\n');
    let _lock = FileLock::exclusive(&dir.join(format!(".{}.lock", rec.host)))?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| StandinError::io(&path, e))?;
    file.write_all(&line)
        .map_err(|e| StandinError::io(&path, e))
}

/// Every record of `host`, in append order (empty when the host never ran the stand-in).
pub fn read_records(dir: &Path, host: &str) -> Result<Vec<StandinRecord>, StandinError> {
    let path = records_file(dir, host);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StandinError::io(&path, e)),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| StandinError::json(&path, e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_filter_drops_secrets_and_foreign_keys() {
        let env: BTreeMap<String, String> = [
            ("K3S_TOKEN", "s3cret"),
            ("K3S_AGENT_TOKEN", "s3cret"),
            ("K3S_URL", "https://10.210.1.11:6443"),
            ("INSTALL_K3S_EXEC", "server"),
            ("PATH", "/bin"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let kept = sanitize_env(&env);
        assert_eq!(
            kept.keys().cloned().collect::<Vec<_>>(),
            vec!["INSTALL_K3S_EXEC".to_string(), "K3S_URL".to_string()]
        );
        assert!(!serde_json::to_string(&kept).unwrap().contains("s3cret"));
    }

    #[test]
    fn records_round_trip_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..3 {
            let rec = StandinRecord {
                ts_ns: i,
                host: "h1".into(),
                program: "k3s".into(),
                argv: vec![format!("arg{i}")],
                env: BTreeMap::new(),
                config_yaml: None,
                exit_code: 0,
                message: String::new(),
                stdin: None,
                files: BTreeMap::new(),
                warnings: Vec::new(),
            };
            append_record(dir.path(), &rec).unwrap();
        }
        let recs = read_records(dir.path(), "h1").unwrap();
        assert_eq!(recs.iter().map(|r| r.ts_ns).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(read_records(dir.path(), "other").unwrap().is_empty());
    }
}

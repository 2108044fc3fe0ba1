//! The admin kubeconfig: rewritten to the API endpoint and written locally with mode 0600.

use std::io::Write;
use std::path::Path;

use serde_yaml_ng::Value;

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("the kubeconfig read from the server is not valid YAML: {0}")]
    Parse(String),
    #[error("the kubeconfig read from the server has no clusters")]
    NoCluster,
    #[error("cannot write kubeconfig to {path}: {reason}")]
    Write { path: String, reason: String },
}

/// Point k3s's admin kubeconfig (server `https://127.0.0.1:6443`, names `default`) at `endpoint`
/// and name cluster, user and context after the cluster.
pub fn rewrite(raw: &str, endpoint: &str, cluster_name: &str) -> Result<String, KubeconfigError> {
    let mut doc: Value =
        serde_yaml_ng::from_str(raw).map_err(|e| KubeconfigError::Parse(e.to_string()))?;
    let name = Value::from(cluster_name);
    let clusters = doc
        .get_mut("clusters")
        .and_then(Value::as_sequence_mut)
        .filter(|c| !c.is_empty())
        .ok_or(KubeconfigError::NoCluster)?;
    for c in clusters.iter_mut() {
        if let Some(m) = c.as_mapping_mut() {
            m.insert("name".into(), name.clone());
        }
        if let Some(cl) = c.get_mut("cluster").and_then(Value::as_mapping_mut) {
            cl.insert("server".into(), endpoint.into());
        }
    }
    for key in ["users", "contexts"] {
        if let Some(items) = doc.get_mut(key).and_then(Value::as_sequence_mut) {
            for it in items.iter_mut() {
                if let Some(m) = it.as_mapping_mut() {
                    m.insert("name".into(), name.clone());
                }
                if let Some(ctx) = it.get_mut("context").and_then(Value::as_mapping_mut) {
                    ctx.insert("cluster".into(), name.clone());
                    ctx.insert("user".into(), name.clone());
                }
            }
        }
    }
    if let Some(m) = doc.as_mapping_mut() {
        m.insert("current-context".into(), name);
    }
    serde_yaml_ng::to_string(&doc).map_err(|e| KubeconfigError::Parse(e.to_string()))
}

/// Write `content` to `path` with mode 0600 from the first byte, atomically.
pub fn write_private(path: &Path, content: &str) -> Result<(), KubeconfigError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| KubeconfigError::Write {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("ffe-tmp");
    // A leftover (or planted) temp file or symlink is removed, never followed: the new file is
    // created exclusively (O_EXCL) without following links (O_NOFOLLOW), so the credentials
    // cannot be written through a link into someone else's file.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
        _ => {}
    }
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        f.write_all(content.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)?;
    // The rename itself survives a crash only once the directory is on disk.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const K3S_YAML: &str = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: Q0E=\n    server: https://127.0.0.1:6443\n  name: default\ncontexts:\n- context:\n    cluster: default\n    user: default\n  name: default\ncurrent-context: default\nkind: Config\nusers:\n- name: default\n  user:\n    client-certificate-data: Q0VSVA==\n";

    #[test]
    fn write_private_never_follows_a_planted_temp_link() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        let path = dir.path().join("kubeconfig-x.yaml");
        std::os::unix::fs::symlink(&victim, path.with_extension("ffe-tmp")).unwrap();
        write_private(&path, "secret: yes\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "secret: yes\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!path.with_extension("ffe-tmp").exists());
    }

    #[test]
    fn rewrite_points_at_endpoint_and_renames() {
        let out = rewrite(K3S_YAML, "https://10.0.1.5:6443", "ffe-prod").unwrap();
        let v: Value = serde_yaml_ng::from_str(&out).unwrap();
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            Value::from("https://10.0.1.5:6443")
        );
        assert_eq!(
            v["clusters"][0]["cluster"]["certificate-authority-data"],
            Value::from("Q0E=")
        );
        assert_eq!(v["current-context"], Value::from("ffe-prod"));
        assert_eq!(v["contexts"][0]["context"]["user"], Value::from("ffe-prod"));
        assert!(!out.contains("127.0.0.1"));
    }

    #[test]
    fn rewrite_rejects_garbage() {
        assert!(rewrite("clusters: []", "https://x:6443", "c").is_err());
        assert!(rewrite(": : :", "https://x:6443", "c").is_err());
    }

    #[test]
    fn written_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/kubeconfig.yaml");
        write_private(&p, "secret").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "secret");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

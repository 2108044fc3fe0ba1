//! `k3s secrets-encrypt status | rotate-keys` of the k3s STAND-IN (docs.k3s.io cli/secrets-encrypt,
//! "Encryption Key Rotation", k3s >= v1.30.5): the stand-in keeps no Secrets, only what the
//! procedure is judged on — the keys (active first), the rotation stage, and which keys each
//! server loaded when it last started (its "encryption hash"). As in k3s, a server loads new
//! keys only when it restarts, a rotation is refused while the servers' hashes differ, and the
//! status names two servers whose hashes do not match.

use super::units::UnitsState;
use super::{HostEnv, Outcome, StandinError};

fn failed(msg: impl Into<String>) -> StandinError {
    StandinError::failed(1, msg)
}

/// At a server's start with `secrets-encryption: true`: the first key when the cluster has none,
/// and this server's hash = the keys it now loaded.
pub(crate) fn on_server_start(host: &HostEnv, node: &str) -> Result<(), StandinError> {
    host.datastore().update(|s| {
        let st = s
            .as_mut()
            .ok_or_else(|| failed("k3s stand-in: no cluster"))?;
        if st.encryption_keys.is_empty() {
            st.encryption_keys.push(key_name(0));
            st.encryption_stage = "start".into();
        }
        st.server_key_hashes
            .insert(node.to_string(), st.encryption_keys.join(","));
        Ok(())
    })
}

fn key_name(n: usize) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("aescbckey-{secs}-{n}")
}

/// The first two servers whose hashes differ, if any.
fn mismatch(st: &super::ClusterState) -> Option<(String, String)> {
    let servers: Vec<&String> = st
        .etcd_members
        .iter()
        .filter(|m| st.nodes.get(*m).is_some_and(|n| n.ready))
        .collect();
    let first = servers.first()?;
    let h0 = st.server_key_hashes.get(*first);
    servers
        .iter()
        .find(|s| st.server_key_hashes.get(**s) != h0)
        .map(|s| ((*first).clone(), (*s).clone()))
}

pub(crate) fn secrets_encrypt(args: &[String], host: &HostEnv) -> Result<Outcome, StandinError> {
    host.ensure_lab_host()?;
    if !UnitsState::load(host)?.get("k3s").active {
        return Err(failed(
            "Get \"https://127.0.0.1:6443/v1-k3s/encrypt/status\": dial tcp 127.0.0.1:6443: connect: connection refused (k3s stand-in: no server runs on this host)",
        ));
    }
    let node = UnitsState::load(host)?
        .node
        .map(|n| n.name)
        .unwrap_or_else(|| host.hostname.clone());
    match args.first().map(String::as_str) {
        Some("status") => {
            let st = host
                .datastore()
                .read()?
                .ok_or_else(|| failed("k3s stand-in: no cluster"))?;
            if st.encryption_keys.is_empty() {
                return Ok(Outcome::ok("Encryption Status: Disabled"));
            }
            let hashes = match mismatch(&st) {
                None => "All hashes match".to_string(),
                Some((a, b)) => format!("hash does not match between {a} and {b}"),
            };
            let mut out = format!(
                "Encryption Status: Enabled\nCurrent Rotation Stage: {}\nServer Encryption Hashes: {hashes}\n\nActive  Key Type  Name\n------  --------  ----\n",
                st.encryption_stage
            );
            for (i, k) in st.encryption_keys.iter().enumerate() {
                out.push_str(&format!(
                    " {}      AES-CBC   {k}\n",
                    if i == 0 { "*" } else { " " }
                ));
            }
            Ok(Outcome::ok(out.trim_end()))
        }
        Some("rotate-keys") => {
            host.datastore().update(|s| {
                let st = s.as_mut().ok_or_else(|| failed("k3s stand-in: no cluster"))?;
                if st.encryption_keys.is_empty() {
                    return Err(failed("secrets-encryption is not enabled on this cluster"));
                }
                if let Some((a, b)) = mismatch(st) {
                    return Err(failed(format!(
                        "unable to rotate keys: server encryption hashes do not match between {a} and {b}: restart k3s on every server first (k3s stand-in)"
                    )));
                }
                let n = st.encryption_keys.len();
                st.encryption_keys.insert(0, key_name(n));
                // k3s re-encrypts every Secret in the background (~5 per second); the stand-in
                // holds none, so it is finished at once. The server that rotated reloads its
                // keys itself; the others load them at their next start.
                st.encryption_stage = "reencrypt_finished".into();
                st.server_key_hashes
                    .insert(node.clone(), st.encryption_keys.join(","));
                Ok(())
            })?;
            Ok(Outcome::ok("keys rotated, reencryption started"))
        }
        other => Err(failed(format!(
            "k3s stand-in: `k3s secrets-encrypt {}` is not modelled",
            other.unwrap_or("")
        ))),
    }
}

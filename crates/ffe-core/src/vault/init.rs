//! `ffe_vault_init`: initialise a Raft cluster once and unseal every member.
//!
//! Keys are never lost: the raw `sys/init` answer is written to `keys_file` (tmp + fsync +
//! rename, mode 0600) before anything else happens; an apply that dies afterwards finds the
//! cluster initialised and adopts that file. The file is removed only once Terraform's state
//! holds the same root token, and written again when the resource is destroyed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::future::join_all;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::{client_error, client_status, Member, SealStatus, VaultError};

/// Between polls of a member that is starting, joining or electing a leader.
const POLL: Duration = Duration::from_millis(500);
/// A follower that took the keys but is still sealed (its Raft join failed) gets them again
/// after this long.
const RESUBMIT: Duration = Duration::from_secs(5);
/// Longest wait for the first unsealed member to become active before the others.
const ACTIVE_WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct InitSpec {
    pub shares: u64,
    pub threshold: u64,
    /// Base64 PGP public keys, one per share; the unseal keys come back encrypted.
    pub pgp_keys: Option<Vec<String>>,
    pub keys_file: PathBuf,
    pub wait_timeout: Duration,
}

/// What the state keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOutcome {
    /// Base64 unseal keys (PGP-encrypted when pgp_keys were given).
    pub unseal_keys: Vec<String>,
    pub root_token: String,
    /// Members still sealed (all of them with PGP keys: Terraform cannot unseal then).
    pub sealed_members: Vec<String>,
    /// The cluster was already initialised and keys_file adopted.
    pub adopted: bool,
}

/// The keys_file content: `sys/init`'s own answer (extra fields such as `keys` are kept).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeysFile {
    pub keys_base64: Vec<String>,
    pub root_token: String,
}

/// Write `bytes` to `path` so that it is either absent or complete: tmp file (0600) in the
/// same directory, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    let err = |m: String| VaultError::KeysFile {
        path: path.display().to_string(),
        message: m,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| err("is not a file path".into()))?
        .to_string_lossy()
        .to_string();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(format!(
            "could not be written ({e}): make its directory writable by the user running terraform"
        ))
    })
}

/// Prove keys_file's directory takes a private file (created, synced and removed).
pub fn check_writable(path: &Path) -> Result<(), VaultError> {
    let probe = path.with_file_name(format!(
        ".{}.probe-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    write_atomic(&probe, b"{}").map_err(|e| match e {
        VaultError::KeysFile { message, .. } => VaultError::KeysFile {
            path: path.display().to_string(),
            message: format!("{message}; nothing was initialised"),
        },
        other => other,
    })?;
    std::fs::remove_file(&probe).map_err(|e| VaultError::KeysFile {
        path: path.display().to_string(),
        message: format!("probe {} could not be removed: {e}", probe.display()),
    })
}

/// Read keys_file; `Ok(None)` when it does not exist.
pub fn read_keys_file(path: &Path) -> Result<Option<KeysFile>, VaultError> {
    let err = |m: String| VaultError::KeysFile {
        path: path.display().to_string(),
        message: m,
    };
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(format!("could not be read: {e}"))),
    };
    let k: KeysFile = serde_json::from_slice(&text).map_err(|e| {
        err(format!(
            "is not {{\"keys_base64\": [...], \"root_token\": \"...\"}} ({e}); fix it and apply again"
        ))
    })?;
    if k.keys_base64.is_empty() || k.root_token.is_empty() {
        return Err(err(
            "has no keys_base64 or no root_token: fill both in and apply again".into(),
        ));
    }
    Ok(Some(k))
}

/// Seal status of every member, retried until each answers or `timeout` passes.
async fn wait_all(members: &[Member], timeout: Duration) -> Result<Vec<SealStatus>, VaultError> {
    let deadline = Instant::now() + timeout;
    let futs = members.iter().map(|m| async move {
        let mut last;
        loop {
            match m.seal_status().await {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
            if Instant::now() >= deadline {
                return Err(VaultError::Unreachable {
                    address: m.address.clone(),
                    secs: timeout.as_secs(),
                    last,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    });
    join_all(futs).await.into_iter().collect()
}

/// Initialise the cluster, or adopt keys_file when it is initialised already, then unseal
/// every member. `after_keys_written` runs right after keys_file is on disk (a test hook:
/// the provider aborts there when asked, to prove an interrupted apply loses nothing).
pub async fn init_or_adopt(
    members: &[Member],
    spec: &InitSpec,
    after_keys_written: &(dyn Fn() + Sync),
) -> Result<InitOutcome, VaultError> {
    super::check_shamir(
        spec.shares as i64,
        spec.threshold as i64,
        spec.pgp_keys.as_ref().map(Vec::len),
    )?;
    let statuses = wait_all(members, spec.wait_timeout).await?;
    let keys_path = spec.keys_file.display().to_string();
    if let Some(i) = statuses.iter().position(|s| s.initialized) {
        let Some(k) = read_keys_file(&spec.keys_file)? else {
            return Err(VaultError::InitialisedOutside {
                address: members[i].address.clone(),
                keys_file: keys_path,
            });
        };
        let sealed = if spec.pgp_keys.is_some() {
            sealed_now(members).await
        } else {
            unseal_all(members, i, &k.keys_base64, spec.wait_timeout).await?;
            verify_root_token(members, &k.root_token, spec.wait_timeout).await?;
            vec![]
        };
        return Ok(InitOutcome {
            unseal_keys: k.keys_base64,
            root_token: k.root_token,
            sealed_members: sealed,
            adopted: true,
        });
    }
    if spec.keys_file.exists() {
        // Keys of some other (maybe wiped) cluster: never overwrite them.
        return Err(VaultError::KeysFile {
            path: keys_path,
            message: "exists but no member is initialised: it may hold the only copy of an older cluster's keys. Move it somewhere safe and apply again".into(),
        });
    }
    // The answer can only be kept if keys_file can be written: find out before asking.
    check_writable(&spec.keys_file)?;
    let first = &members[0];
    let mut body = serde_json::json!({
        "secret_shares": spec.shares,
        "secret_threshold": spec.threshold,
    });
    if let Some(p) = &spec.pgp_keys {
        body["pgp_keys"] = serde_json::json!(p);
    }
    let answer = first
        .call_ok(Method::PUT, "sys/init", None, Some(&body), "sys/init")
        .await?;
    // Before anything that could fail: the answer is the only copy of the keys.
    if let Err(e) = write_atomic(&spec.keys_file, &answer.body) {
        // The directory was checked just before (a disk that filled up meanwhile): keep the keys
        // in a private file in the temp directory instead. Never print them (secrets stay out of
        // Terraform's output and logs).
        let rescue =
            std::env::temp_dir().join(format!("ffe-vault-init-{}.json", std::process::id()));
        let message = match write_atomic(&rescue, &answer.body) {
            Ok(()) => format!(
                "{e}. THE CLUSTER IS INITIALISED: its keys were saved (mode 0600) to {} instead; move that file to {keys_path} and apply again",
                rescue.display()
            ),
            Err(e2) => format!(
                "{e}; the fallback {} failed too ({e2}). THE CLUSTER IS INITIALISED BUT ITS KEYS ARE LOST. It holds no data yet: delete the members' data volumes (kubectl -n vault delete pvc data-vault-0 data-vault-1 data-vault-2, then delete the pods), free the disk and apply again",
                rescue.display()
            ),
        };
        return Err(VaultError::KeysFile {
            path: keys_path,
            message,
        });
    }
    after_keys_written();
    let k: KeysFile = serde_json::from_slice(&answer.body).map_err(|e| VaultError::KeysFile {
        path: keys_path.clone(),
        message: format!("sys/init answered something unexpected ({e}); the answer is kept in this file, apply again to adopt it"),
    })?;
    let sealed = if spec.pgp_keys.is_some() {
        sealed_now(members).await
    } else {
        unseal_all(members, 0, &k.keys_base64, spec.wait_timeout).await?;
        vec![]
    };
    Ok(InitOutcome {
        unseal_keys: k.keys_base64,
        root_token: k.root_token,
        sealed_members: sealed,
        adopted: false,
    })
}

/// Unseal `members[lead]` first (followers join through an unsealed member), then the others
/// in parallel.
pub async fn unseal_all(
    members: &[Member],
    lead: usize,
    keys: &[String],
    timeout: Duration,
) -> Result<(), VaultError> {
    unseal_member(&members[lead], keys, timeout).await?;
    // Also for a single member: the next resource wants an active one.
    wait_active(&members[lead], ACTIVE_WAIT.min(timeout)).await;
    let rest = members
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != lead)
        .map(|(_, m)| unseal_member(m, keys, timeout));
    let errors: Vec<String> = join_all(rest)
        .await
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(VaultError::Api {
            address: "cluster".into(),
            message: errors.join("\n"),
        })
    }
}

/// Followers join through the active member, and the API serves only once one is active:
/// give the first one a moment to win its election. Bounded, because after a full restart it cannot be active alone (no quorum)
/// and the followers must be unsealed anyway.
async fn wait_active(m: &Member, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        // 200: active; 429: standby, so some member is active.
        if let Ok(a) = m.call(Method::GET, "sys/health", None, None).await {
            if a.status == 200 || a.status == 429 {
                return;
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Unseal one member, retrying while it starts or joins the Raft cluster.
pub async fn unseal_member(
    m: &Member,
    keys: &[String],
    timeout: Duration,
) -> Result<(), VaultError> {
    let deadline = Instant::now() + timeout;
    let client = m.client("")?;
    let mut last = String::from("no answer yet");
    let mut submitted: Option<Instant> = None;
    let mut was_initialized = None;
    loop {
        match m.seal_status().await {
            Ok(s) if !s.sealed => return Ok(()),
            Ok(s) => {
                // Progress 0 and no recent submission, or a follower that has just joined
                // (uninitialised until then; it wants the keys again): give it the keys.
                let joined = was_initialized == Some(false) && s.initialized;
                was_initialized = Some(s.initialized);
                let due = joined || submitted.is_none_or(|t| t.elapsed() >= RESUBMIT);
                if s.progress == 0 && due {
                    submitted = Some(Instant::now());
                    for key in keys {
                        match vaultrs::sys::unseal(&client, Some(key.clone()), None, None).await {
                            Ok(r) if !r.sealed => return Ok(()),
                            Ok(r) => {
                                last = format!("sealed, progress {}/{}", r.progress, r.threshold);
                                // A follower joining the Raft cluster holds the keys
                                // and unseals itself once joined; polling takes over.
                                if r.progress == 0 {
                                    break;
                                }
                            }
                            Err(e) => {
                                last = client_error(&e);
                                break;
                            }
                        }
                    }
                } else {
                    last = format!("sealed, progress {}/{}", s.progress, s.threshold);
                }
            }
            Err(e) => last = e,
        }
        if Instant::now() >= deadline {
            return Err(VaultError::StillSealed {
                address: m.address.clone(),
                secs: timeout.as_secs(),
                last,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// After adoption: the root token must belong to this cluster. Retried while no member is
/// active yet (leader election after unsealing).
async fn verify_root_token(
    members: &[Member],
    token: &str,
    timeout: Duration,
) -> Result<(), VaultError> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        for m in members {
            let c = m.client(token)?;
            match vaultrs::token::lookup_self(&c).await {
                Ok(_) => return Ok(()),
                Err(e) if client_status(&e) == Some(403) => {
                    return Err(VaultError::Api {
                        address: m.address.clone(),
                        message: "the root_token in keys_file is not valid for this cluster: put this cluster's root token there (or generate one with `bao operator generate-root`) and apply again".into(),
                    })
                }
                Err(e) => last = format!("{}: {}", m.address, client_error(&e)),
            }
        }
        if Instant::now() >= deadline {
            return Err(VaultError::Api {
                address: "cluster".into(),
                message: format!(
                    "no member could check the root token within {} s: {last}",
                    timeout.as_secs()
                ),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// What one member answered at a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberState {
    Unsealed,
    Sealed { initialized: bool },
    Unreachable(String),
}

/// One pass over every member (no waiting): what the plan needs.
pub async fn status(members: &[Member]) -> Vec<(String, MemberState)> {
    join_all(members.iter().map(|m| async move {
        let s = match m.seal_status().await {
            Ok(s) if !s.sealed => MemberState::Unsealed,
            Ok(s) => MemberState::Sealed {
                initialized: s.initialized,
            },
            Err(e) => MemberState::Unreachable(e),
        };
        (m.address.clone(), s)
    }))
    .await
}

async fn sealed_now(members: &[Member]) -> Vec<String> {
    status(members)
        .await
        .into_iter()
        .filter(|(_, s)| matches!(s, MemberState::Sealed { .. }))
        .map(|(a, _)| a)
        .collect()
}

/// Unseal the members in `addresses` (those a read found sealed); the error names each
/// member still sealed.
pub async fn unseal_sealed(
    members: &[Member],
    addresses: &[String],
    keys: &[String],
    timeout: Duration,
) -> Result<(), VaultError> {
    let todo: Vec<&Member> = members
        .iter()
        .filter(|m| addresses.contains(&m.address))
        .collect();
    let errors: Vec<String> = join_all(todo.iter().map(|m| unseal_member(m, keys, timeout)))
        .await
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(VaultError::Api {
            address: "cluster".into(),
            message: errors.join("\n"),
        })
    }
}

/// How to unseal by hand when the shares are PGP-encrypted.
pub fn pgp_unseal_hint(sealed: &[String]) -> String {
    format!(
        "the unseal keys are PGP-encrypted, so Terraform cannot unseal {}. Each key holder decrypts their share (`terraform output -json vault_unseal_keys | jq -r '.[N]' | base64 -d | gpg -dq`, N from 0) and pastes it at the prompt of `kubectl -n vault exec -it <member pod> -- vault operator unseal` (OpenBao: `bao`) on every sealed member, until the threshold is reached (docs/vault.md, \"PGP-encrypted unseal keys\"); the next apply then shows no sealed members",
        sealed.join(", ")
    )
}

/// Read: keys_file is deleted once the state holds the same root token. `Ok(true)` when
/// it was removed; a file holding another token is left alone (and reported).
pub fn forget_keys_file(path: &Path, state_root_token: &str) -> Result<bool, VaultError> {
    match read_keys_file(path)? {
        Some(k) if k.root_token == state_root_token => {
            std::fs::remove_file(path).map_err(|e| VaultError::KeysFile {
                path: path.display().to_string(),
                message: format!("could not be removed ({e}); delete it by hand: the state holds its keys"),
            })?;
            Ok(true)
        }
        Some(_) => Err(VaultError::KeysFile {
            path: path.display().to_string(),
            message: "holds a root token other than the one in the state: it may be another cluster's only copy; move it somewhere safe".into(),
        }),
        None => Ok(false),
    }
}

/// Delete: the keys go back to keys_file, so destroying the resource never drops them.
pub fn save_keys_file(path: &Path, keys: &[String], root_token: &str) -> Result<(), VaultError> {
    let k = KeysFile {
        keys_base64: keys.to_vec(),
        root_token: root_token.to_string(),
    };
    let bytes = serde_json::to_vec_pretty(&k).map_err(|e| VaultError::KeysFile {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_file_round_trip_is_private_and_forgotten_only_for_the_same_token() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vault-init.pending.json");
        assert_eq!(read_keys_file(&p).unwrap(), None);
        save_keys_file(&p, &["a2V5MQ==".into(), "a2V5Mg==".into()], "s.root").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let k = read_keys_file(&p).unwrap().unwrap();
        assert_eq!(k.root_token, "s.root");
        assert_eq!(k.keys_base64.len(), 2);
        assert!(forget_keys_file(&p, "s.other").is_err());
        assert!(p.exists());
        assert!(forget_keys_file(&p, "s.root").unwrap());
        assert!(!p.exists());
        // no temporary files left behind
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn raw_init_answer_is_a_keys_file() {
        let raw = br#"{"keys":["ab"],"keys_base64":["qw=="],"root_token":"s.x"}"#;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.json");
        write_atomic(&p, raw).unwrap();
        let k = read_keys_file(&p).unwrap().unwrap();
        assert_eq!(k.keys_base64, vec!["qw==".to_string()]);
        std::fs::write(&p, b"{\"root_token\": \"\"}").unwrap();
        let e = read_keys_file(&p).unwrap_err().to_string();
        assert!(e.contains("keys_base64"), "{e}");
    }
}

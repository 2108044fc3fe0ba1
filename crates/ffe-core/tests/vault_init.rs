//! ffe_vault_init's logic against real OpenBao servers (tools/bin/bao).

mod vault_support;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use ffe_core::vault::init::{
    forget_keys_file, init_or_adopt, read_keys_file, status, unseal_sealed, InitSpec, MemberState,
};
use ffe_core::vault::{Member, VaultError};
use vault_support::{free_port, Cluster};

fn spec(keys_file: std::path::PathBuf) -> InitSpec {
    InitSpec {
        shares: 5,
        threshold: 3,
        pgp_keys: None,
        keys_file,
        wait_timeout: Duration::from_secs(60),
    }
}

fn noop() {}

/// The root token works against the cluster (lookup-self through the raw API).
/// The token works on `m`. A member just unsealed may still be taking over as active (it answers
/// "standby" errors for a moment), so a refusal other than 403 is retried for up to 20 s.
async fn token_valid(m: &Member, token: &str) -> bool {
    let c = m.client(token).unwrap();
    for _ in 0..40 {
        match vaultrs::token::lookup_self(&c).await {
            Ok(_) => return true,
            Err(e) if e.to_string().contains("403") => return false,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
        }
    }
    false
}

#[tokio::test]
async fn init_unseal_status_then_restart_comes_back_sealed_and_is_unsealed() {
    let mut c = Cluster::new(1);
    let members = c.members();
    let kf = c.keys_file();
    let out = init_or_adopt(&members, &spec(kf.clone()), &noop)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    assert!(!out.adopted);
    assert_eq!(out.unseal_keys.len(), 5);
    assert!(out.sealed_members.is_empty());
    // keys_file written, private, and holding what the state will hold
    let mode = std::fs::metadata(&kf).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let k = read_keys_file(&kf).unwrap().unwrap();
    assert_eq!(k.root_token, out.root_token);
    assert_eq!(k.keys_base64, out.unseal_keys);
    assert_eq!(
        status(&members).await,
        vec![(c.servers[0].address.clone(), MemberState::Unsealed)]
    );
    assert!(token_valid(&members[0], &out.root_token).await);

    // restart: Shamir-sealed members come back sealed
    c.servers[0].stop();
    c.servers[0].start();
    let st = status(&members).await;
    assert_eq!(
        st,
        vec![(
            c.servers[0].address.clone(),
            MemberState::Sealed { initialized: true }
        )]
    );
    unseal_sealed(
        &members,
        &[c.servers[0].address.clone()],
        &out.unseal_keys,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(
        status(&members).await,
        vec![(c.servers[0].address.clone(), MemberState::Unsealed)]
    );

    // Read after the state was saved: keys_file goes away, only for the same token.
    assert!(forget_keys_file(&kf, "s.not-this-one").is_err());
    assert!(kf.exists());
    assert!(forget_keys_file(&kf, &out.root_token).unwrap());
    assert!(!kf.exists());
}

#[tokio::test]
async fn interrupted_after_init_is_adopted_from_keys_file() {
    let c = Cluster::new(1);
    let members = c.members();
    let kf = c.keys_file();
    // The apply dies right after keys_file is written (the provider's test hook aborts
    // there; here the task panics).
    let task = {
        let members = members.clone();
        let s = spec(kf.clone());
        tokio::spawn(async move {
            init_or_adopt(&members, &s, &|| panic!("killed after keys_file")).await
        })
    };
    assert!(task.await.unwrap_err().is_panic());
    assert!(
        kf.exists(),
        "keys_file must be on disk before anything else"
    );
    let st = status(&members).await;
    assert_eq!(st[0].1, MemberState::Sealed { initialized: true });

    let out = init_or_adopt(&members, &spec(kf.clone()), &noop)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    assert!(out.adopted);
    let k = read_keys_file(&kf).unwrap().unwrap();
    assert_eq!(out.root_token, k.root_token);
    assert_eq!(status(&members).await[0].1, MemberState::Unsealed);
    assert!(token_valid(&members[0], &out.root_token).await);
}

#[tokio::test]
async fn initialised_outside_terraform_is_refused_and_never_reinitialised() {
    let c = Cluster::new(1);
    let members = c.members();
    let first = c.tmp.path().join("outside.json");
    let out = init_or_adopt(&members, &spec(first), &noop).await.unwrap();
    let kf = c.keys_file();
    let err = init_or_adopt(&members, &spec(kf.clone()), &noop)
        .await
        .unwrap_err();
    assert!(
        matches!(err, VaultError::InitialisedOutside { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&c.servers[0].address), "{msg}");
    assert!(msg.contains(&kf.display().to_string()), "{msg}");
    assert!(msg.contains("ffe never re-initialises"), "{msg}");
    assert!(!kf.exists());
    // still the same cluster: the first root token works
    assert!(token_valid(&members[0], &out.root_token).await);

    // a keys_file with the wrong root token is refused too
    ffe_core::vault::init::save_keys_file(&kf, &out.unseal_keys, "s.wrong").unwrap();
    let err = init_or_adopt(&members, &spec(kf.clone()), &noop)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("root_token in keys_file is not valid"),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_member_is_named_and_nothing_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = vault_support::Pki::new(&tmp.path().join("pki"));
    let address = format!("https://127.0.0.1:{}", free_port());
    let members = Member::all(std::slice::from_ref(&address), &pki.ca_pem).unwrap();
    let kf = tmp.path().join("keys.json");
    let mut s = spec(kf.clone());
    s.wait_timeout = Duration::from_secs(2);
    let t0 = Instant::now();
    let err = init_or_adopt(&members, &s, &noop).await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(20));
    assert!(matches!(err, VaultError::Unreachable { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("{address}: no answer within 2 s")),
        "{msg}"
    );
    assert!(!kf.exists());
}

#[tokio::test]
async fn threshold_above_shares_is_refused_before_any_call() {
    let c = Cluster::new(1);
    let members = c.members();
    let mut s = spec(c.keys_file());
    s.shares = 3;
    s.threshold = 5;
    let err = init_or_adopt(&members, &s, &noop)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("secret_threshold:"), "{err}");
    assert!(!c.keys_file().exists());
    let st = members[0].seal_status().await.unwrap();
    assert!(
        !st.initialized,
        "the cluster must not have been initialised"
    );
}

#[tokio::test]
async fn unwritable_keys_file_is_found_before_initialising() {
    let c = Cluster::new(1);
    let members = c.members();
    let kf = c.tmp.path().join("no-such-dir/keys.json");
    let err = init_or_adopt(&members, &spec(kf.clone()), &noop)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "keys_file {}",
            c.tmp.path().join("no-such-dir").display()
        )),
        "{err}"
    );
    assert!(err.contains("could not be written"), "{err}");
    let st = members[0].seal_status().await.unwrap();
    assert!(
        !st.initialized,
        "initialised although the keys could not have been kept"
    );
}

#[tokio::test]
async fn wrong_ca_is_refused() {
    let c = Cluster::new(1);
    let other = vault_support::Pki::new(&c.tmp.path().join("other-pki"));
    let members = Member::all(&c.addresses(), &other.ca_pem).unwrap();
    let err = members[0].seal_status().await.unwrap_err();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test]
async fn three_members_join_during_unseal_and_a_restarted_one_is_unsealed() {
    let mut c = Cluster::new(3);
    let members = c.members();
    let t0 = Instant::now();
    let out = init_or_adopt(&members, &spec(c.keys_file()), &noop)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    let took = t0.elapsed();
    eprintln!("init + unseal of 3 members: {:.1} s", took.as_secs_f64());
    let st = status(&members).await;
    assert!(
        st.iter().all(|(_, s)| *s == MemberState::Unsealed),
        "{st:?}"
    );
    c.servers[2].stop();
    c.servers[2].start();
    let st = status(&members).await;
    assert_eq!(st[2].1, MemberState::Sealed { initialized: true });
    unseal_sealed(
        &members,
        &[c.servers[2].address.clone()],
        &out.unseal_keys,
        Duration::from_secs(60),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    assert!(status(&members)
        .await
        .iter()
        .all(|(_, s)| *s == MemberState::Unsealed));
}

/// gpg in a private home (`GNUPGHOME`), its agent stopped when dropped.
struct Gpg {
    home: std::path::PathBuf,
}

impl Gpg {
    fn new(dir: &std::path::Path) -> Gpg {
        let home = dir.join("gnupg");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        Gpg { home }
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut child = std::process::Command::new("gpg")
            .env("GNUPGHOME", &self.home)
            .arg("--batch")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("gpg (apt package gpg)");
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A key holder's RSA key pair; returns the public key as Vault takes it (base64 of the
    /// binary export, what `gpg --export <id> | base64 -w0` prints).
    fn holder(&self, email: &str) -> String {
        use base64::Engine;
        self.run(
            &[
                "--passphrase",
                "",
                "--quick-gen-key",
                &format!("holder <{email}>"),
                "rsa2048",
                "sign,encr",
                "never",
            ],
            b"",
        );
        base64::engine::general_purpose::STANDARD.encode(self.run(&["--export", email], b""))
    }

    /// What a holder does with their share: base64 -d | gpg -dq.
    fn decrypt(&self, share_base64: &str) -> String {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(share_base64)
            .expect("an encrypted share is base64");
        String::from_utf8(self.run(&["-dq"], &bytes))
            .unwrap()
            .trim()
            .to_string()
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = std::process::Command::new("gpgconf")
            .env("GNUPGHOME", &self.home)
            .args(["--kill", "all"])
            .status();
    }
}

#[tokio::test]
async fn pgp_encrypted_shares_are_useless_until_their_holders_decrypt_them() {
    let c = Cluster::new(1);
    let members = c.members();
    let address = c.servers[0].address.clone();
    let gpg = Gpg::new(c.tmp.path());
    let keys: Vec<String> = ["a@ffe.test", "b@ffe.test"]
        .iter()
        .map(|h| gpg.holder(h))
        .collect();
    let pgp_spec = InitSpec {
        shares: 2,
        threshold: 2,
        pgp_keys: Some(keys),
        ..spec(c.keys_file())
    };
    let out = init_or_adopt(&members, &pgp_spec, &noop)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    // initialised, but Terraform could not unseal: the member is reported sealed
    assert_eq!(out.sealed_members, vec![address.clone()]);
    assert_eq!(out.unseal_keys.len(), 2);
    assert_eq!(
        status(&members).await,
        vec![(address.clone(), MemberState::Sealed { initialized: true })]
    );
    // what the state holds does not unseal
    assert!(
        unseal_sealed(
            &members,
            std::slice::from_ref(&address),
            &out.unseal_keys,
            Duration::from_secs(10)
        )
        .await
        .is_err(),
        "an encrypted share unsealed Vault"
    );
    // each holder decrypts their share; together they unseal
    let shares: Vec<String> = out.unseal_keys.iter().map(|s| gpg.decrypt(s)).collect();
    assert!(shares.iter().all(|s| !out.unseal_keys.contains(s)));
    unseal_sealed(
        &members,
        std::slice::from_ref(&address),
        &shares,
        Duration::from_secs(30),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    assert_eq!(
        status(&members).await,
        vec![(address, MemberState::Unsealed)]
    );
    assert!(token_valid(&members[0], &out.root_token).await);
    // the next apply adopts what keys_file holds (encrypted shares, root token) and finds
    // nothing left to unseal
    let again = init_or_adopt(&members, &pgp_spec, &noop).await.unwrap();
    assert!(again.adopted);
    assert!(
        again.sealed_members.is_empty(),
        "{:?}",
        again.sealed_members
    );
    assert_eq!(again.unseal_keys, out.unseal_keys);
}

//! ffe_vault_config's logic against a real OpenBao server (tools/bin/bao).

mod vault_support;

use std::collections::BTreeMap;

use ffe_core::vault::config::{self, ConfigSpec, RoleSpec};
use vault_support::Cluster;

fn spec() -> ConfigSpec {
    ConfigSpec {
        kv_mount: "secret".into(),
        audit_file_path: "stdout".into(),
        auth_mount: "kubernetes".into(),
        kubernetes_host: "https://kubernetes.default.svc:443".into(),
        policies: BTreeMap::from([(
            "ffe-backend".into(),
            "path \"secret/data/production/app\" {\n  capabilities = [\"read\"]\n}\n".into(),
        )]),
        roles: vec![RoleSpec {
            name: "ffe-backend".into(),
            service_account_names: vec!["ffe-backend".into()],
            namespaces: vec!["ffe".into()],
            policies: vec!["ffe-backend".into()],
            ttl: "1h".into(),
        }],
    }
}

#[tokio::test]
async fn apply_twice_is_a_noop_and_a_drifted_policy_is_detected() {
    let (c, root_token) = Cluster::initialised().await;
    let members = c.members();
    let s = spec();

    // first apply: everything written, the rest done with the new token
    let (tf_token, writes) = config::create(&members, &root_token, &s)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    assert_ne!(tf_token, root_token);
    for w in [
        "policy ffe-terraform",
        "mount secret/",
        "auth kubernetes/",
        "auth/kubernetes/config",
        "policy ffe-backend",
        "role ffe-backend",
    ] {
        assert!(writes.iter().any(|x| x == w), "{w} not in {writes:?}");
    }
    // the audit device declared in the server configuration is found, not re-created
    assert!(!writes.iter().any(|x| x.starts_with("audit")), "{writes:?}");

    // second apply with the ffe-terraform token (root refused would mean it fell back)
    let session = config::connect(&members, &[&tf_token]).await.unwrap();
    config::renew(&session).await.unwrap();
    let live = config::read_live(&session, &s).await.unwrap();
    assert_eq!(s.drift(&live), Vec::<String>::new(), "{live:?}");
    let writes = config::apply(&session, &s, &live, &[], &[]).await.unwrap();
    assert!(writes.is_empty(), "second apply wrote {writes:?}");

    // The ffe-terraform token cannot reach beyond what it manages.
    let tf = members[0].client(&tf_token).unwrap();
    let e = vaultrs::sys::mount::enable(&tf, "elsewhere", "kv", None)
        .await
        .unwrap_err();
    assert!(format!("{e:?}").contains("403"), "{e:?}");
    assert!(vaultrs::token::new(&tf, None).await.is_err());

    // drift: someone edits the policy and the role behind Terraform's back
    let root = members[0].client(&root_token).unwrap();
    vaultrs::sys::policy::set(
        &root,
        "ffe-backend",
        "path \"secret/*\" { capabilities = [\"read\", \"list\"] }",
    )
    .await
    .unwrap();
    let live = config::read_live(&session, &s).await.unwrap();
    assert_eq!(s.drift(&live), vec!["policy ffe-backend".to_string()]);
    let writes = config::apply(&session, &s, &live, &[], &[]).await.unwrap();
    assert_eq!(writes, vec!["policy ffe-backend".to_string()]);
    let live = config::read_live(&session, &s).await.unwrap();
    assert!(s.drift(&live).is_empty());

    // a different audit path: OpenBao refuses API audit changes, the error says what to do
    let mut other_audit = s.clone();
    other_audit.audit_file_path = "/tmp/elsewhere.log".into();
    let live = config::read_live(&session, &other_audit).await.unwrap();
    assert_eq!(
        other_audit.drift(&live),
        vec!["audit device file/ to /tmp/elsewhere.log".to_string()]
    );
    let err = config::apply(&session, &other_audit, &live, &[], &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("declare audit \"file\" \"file\""), "{err}");

    // a policy and a role dropped from the config are deleted
    let mut smaller = s.clone();
    smaller.policies.clear();
    smaller.roles.clear();
    let live = config::read_live(&session, &smaller).await.unwrap();
    let writes = config::apply(
        &session,
        &smaller,
        &live,
        &["ffe-backend".into()],
        &["ffe-backend".into()],
    )
    .await
    .unwrap();
    assert_eq!(
        writes,
        vec![
            "delete policy ffe-backend".to_string(),
            "delete role ffe-backend".to_string()
        ]
    );
    assert!(vaultrs::sys::policy::read(&root, "ffe-backend")
        .await
        .is_err());

    // a rejected token falls through to the next one; a revoked ffe-terraform token with no
    // fallback is refused with a clear message
    config::delete(&session, &smaller, true).await.unwrap();
    let err = config::connect(&members, &[&tf_token])
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("every token was refused"), "{err}");
    let again = config::connect(&members, &[&tf_token, &root_token])
        .await
        .unwrap();
    assert_eq!(again.token, root_token);
}

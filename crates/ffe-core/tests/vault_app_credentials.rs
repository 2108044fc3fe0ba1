//! The Postgres module's credentials-sync CronJob script, rendered by Terraform from
//! terraform/modules/postgres (output manifests["credentials-sync.yaml"], re-rendered on every
//! run, never copied here) and run with the system python3 as the pod would run it, against
//!   - a real OpenBao server (tools/bin/bao, tests/vault_support) configured by
//!     ffe_core::vault::config with the policy the module renders (output app_vault_writer), and
//!   - a STAND-IN Kubernetes API server (`vault_support::StandInApi`; there is no
//!     kube-apiserver here): Secrets get/apply-patch under the RBAC Roles the module renders,
//!     and TokenReviews.
//!
//! What OpenBao's Kubernetes auth needs (read in openbao/openbao at main df6ce2ce, 2026-08-21,
//! internal/builtin/credential/kubernetes/{path_login,token_review,backend}.go; the installed
//! v2.7.2, commit 9e0a0d3c, is not in the stored snapshot, so this test is the proof for it):
//!   - the login JWT is parsed as a JWS (RS*/ES* algorithms). With no pem_keys configured (ours)
//!     its signature is NOT verified (DontVerifySignature); exp/nbf/iat are checked when present,
//!     the issuer is not (ffe_core writes disable_iss_validation=false but no issuer, and an empty
//!     issuer sets no expectation: our tokens' iss is not the "kubernetes/serviceaccount" default
//!     and they log in), the audience only when the role names one;
//!   - service-account name, namespace and uid come from the claims (projected tokens:
//!     kubernetes.io.serviceaccount.{name,uid}, kubernetes.io.namespace); name and namespace must
//!     match the role's bounds;
//!   - then a TokenReview is POSTed to <kubernetes_host>/apis/authentication.k8s.io/v1/tokenreviews
//!     with Vault's own service-account token as bearer (in-cluster: its pod's token file) and
//!     spec.audiences = the JWT's aud. The answer must be 2xx with status.authenticated, an
//!     intersecting status.audiences, and status.user.username "system:serviceaccount:<ns>:<name>"
//!     and status.user.uid equal to the claims. Since the signature is not checked, the
//!     TokenReview is the only proof a JWT is genuine: the stand-in answers it strictly.
//!
//! The JWTs are RS256-signed anyway (a key made with openssl), as a real token is.

mod vault_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ffe_core::vault::config::{self, ConfigSpec, RoleSpec};
use serde_json::{json, Value};
use vault_support::{
    code, grants, module_outputs, yaml_docs, ApiState, Cluster, Grant, Minter, Pki, Sa, Seen,
    StandInApi, REVIEWER_TOKEN,
};

const SOURCE_NS: &str = "ffe-data";
const APP_NS: &str = "ffe";
const USER_SECRET: &str = "ffe-pg-pguser-ffe-user";
const CERT_SECRET: &str = "ffe-pg-cluster-cert";
const CA_COPY: &str = "ffe-db-ca";
const KV_MOUNT: &str = "secret";
const KV_PATH: &str = "production/app";

fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

// ---------------------------------------------------------------------------------------------
// Rendering the module with Terraform

struct Render {
    script: String,
    /// the CronJob pod's serviceAccountName
    service_account: String,
    docs: Vec<Value>,
    /// app_vault_writer (null without app_vault)
    writer: Value,
}

/// Render terraform/modules/postgres with app_vault pointing at `vault_address` (None: null).
fn render(vault_address: Option<&str>) -> Render {
    let app_vault = match vault_address {
        Some(a) => format!(
            r#"{{
    address      = "{a}"
    ca_secret    = "vault-ca"
    auth_mount   = "kubernetes"
    role         = "ffe-db-credentials"
    kv_mount     = "{KV_MOUNT}"
    secret_path  = "{KV_PATH}"
    username_key = "DB_USERNAME"
    password_key = "DB_PASSWORD"
  }}"#
        ),
        None => "null".into(),
    };
    // Values as environments/ha/postgres.tf and pins.tf give them.
    let inputs = format!(
        r#"  namespace               = "{SOURCE_NS}"
  postgres_version        = "17"
  images = {{
    postgres   = "docker.io/percona/percona-distribution-postgresql:17.10-1"
    pgbouncer  = "docker.io/percona/percona-pgbouncer:1.25.2-1"
    pgbackrest = "docker.io/percona/percona-pgbackrest:2.58.0-2"
  }}
  operator_chart_version  = "3.0.0"
  operator_chart_repo     = "https://percona.github.io/percona-helm-charts/"
  operator_crd_version    = "3.0.0"
  replicas                = 2
  synchronous_replication = true
  primary_ip              = "10.210.0.50"
  loadbalancer_annotation = "kube-vip.io/loadbalancerIPs"
  data_storage_class      = "fast-retain"
  backup_storage_class    = "backup"
  backup_storage_mode     = "csi-nfs"
  backup_mount            = "/mnt/backup"
  backup_retention_days   = 7
  app_namespace           = "{APP_NS}"
  app_ca_secret           = "{CA_COPY}"
  app_vault               = {app_vault}"#
    );
    let out = module_outputs("postgres", &inputs);
    let docs = yaml_docs(out["manifests"]["credentials-sync.yaml"].as_str().unwrap());
    let cron = docs
        .iter()
        .find(|d| d["kind"] == "CronJob")
        .expect("no CronJob in credentials-sync.yaml");
    let command = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        ["command"]
        .as_array()
        .unwrap();
    assert_eq!(command.len(), 3, "{command:?}");
    assert_eq!(command[0], "python3");
    assert_eq!(command[1], "-c");
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    Render {
        script: command[2].as_str().unwrap().to_string(),
        service_account: pod["serviceAccountName"].as_str().unwrap().to_string(),
        docs,
        writer: out["app_vault_writer"].clone(),
    }
}

/// The cluster as the operator and the bundle leave it: the operator's Secrets in SOURCE_NS and
/// the empty copies the bundle declares (the script only patches those).
fn seeded_state(docs: &[Value], password: &str, pg_ca: &str) -> ApiState {
    let mut s = ApiState {
        grants: grants(docs),
        ..Default::default()
    };
    // what the Percona operator writes into the role's Secret (uri carries the password too)
    let user: BTreeMap<String, String> = [
        ("user", "ffe-user".to_string()),
        ("password", password.to_string()),
        ("dbname", "ffe".into()),
        ("host", "ffe-pg-primary.ffe-data.svc".into()),
        ("port", "5432".into()),
        (
            "uri",
            format!("postgresql://ffe-user:{password}@ffe-pg-primary.ffe-data.svc:5432/ffe"),
        ),
        ("verifier", "SCRAM-SHA-256$4096:c2FsdA==$x:y".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), b64(&v)))
    .collect();
    s.secrets
        .insert((SOURCE_NS.into(), USER_SECRET.into()), user);
    s.secrets.insert(
        (SOURCE_NS.into(), CERT_SECRET.into()),
        [
            ("ca.crt".to_string(), b64(pg_ca)),
            ("tls.crt".to_string(), b64("server certificate")),
            ("tls.key".to_string(), b64("server private key")),
        ]
        .into(),
    );
    for d in docs.iter().filter(|d| d["kind"] == "Secret") {
        let ns = d["metadata"]["namespace"].as_str().unwrap();
        let name = d["metadata"]["name"].as_str().unwrap();
        assert!(d["data"].is_null(), "the bundle must not carry data: {d}");
        s.secrets.insert((ns.into(), name.into()), BTreeMap::new());
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Running the script as the pod would

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn text(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }
}

/// The rendered script with the system python3 in a private mount namespace holding the pod's
/// service-account files (and Vault's CA where the CronJob mounts it), the API server's
/// address in the environment the kubelet sets. No proxy variables (loopback only).
fn run_script(
    script: &str,
    token: &str,
    ca: &Path,
    vault_ca: Option<&Path>,
    api: &StandInApi,
) -> Run {
    let sa = "/run/secrets/kubernetes.io/serviceaccount";
    let mut sh = format!(
        r#"mount -t tmpfs tmpfs /run && mkdir -p {sa} && cp "$SA_CA" {sa}/ca.crt && printf %s "$SA_TOKEN" > {sa}/token"#
    );
    let mut cmd = Command::new("timeout");
    cmd.env_clear();
    if let Some(v) = vault_ca {
        sh.push_str(r#" && mkdir -p /run/secrets/ffe/vault-ca && cp "$VAULT_CA" /run/secrets/ffe/vault-ca/ca.crt"#);
        cmd.env("VAULT_CA", v);
    }
    sh.push_str(r#" && exec env -u SA_CA -u SA_TOKEN -u VAULT_CA -u SYNC_SCRIPT /usr/bin/python3 -c "$SYNC_SCRIPT""#);
    let out = cmd
        .args([
            "120",
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &sh,
        ])
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("SA_CA", ca)
        .env("SA_TOKEN", token)
        .env("SYNC_SCRIPT", script)
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", api.port.to_string())
        .output()
        .unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// The tests

/// The app's kv-v2 secret as root reads it: (data, current version); None when absent.
async fn app_secret(
    root: &vaultrs::client::VaultClient,
) -> Option<(BTreeMap<String, String>, u64)> {
    match vaultrs::kv2::read::<BTreeMap<String, String>>(root, KV_MOUNT, KV_PATH).await {
        Ok(d) => {
            let m = vaultrs::kv2::read_metadata(root, KV_MOUNT, KV_PATH)
                .await
                .unwrap();
            Some((d, m.current_version))
        }
        Err(vaultrs::error::ClientError::APIError { code: 404, .. }) => None,
        Err(e) => panic!("{e:?}"),
    }
}

/// (operation, error) of the audit log's responses on the app's secret, in order.
fn audit_ops(logs: &str) -> Vec<(String, String)> {
    let path = format!("{KV_MOUNT}/data/{KV_PATH}");
    logs.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "response" && v["request"]["path"] == path.as_str())
        .map(|v| {
            (
                v["request"]["operation"].as_str().unwrap_or("").to_string(),
                v["error"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Neither the password, nor its base64, nor its alphanumeric head (which survives any
/// escaping, e.g. a Python repr) appears in the job's output.
fn assert_no_leak(out: &Run, pw: &str) {
    let head: String = pw
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    assert!(head.len() >= 6, "{pw}");
    for leak in [pw.to_string(), b64(pw), head] {
        assert!(
            !out.text().contains(&leak),
            "password in the output: {}",
            out.text()
        );
    }
}

const PG_CA: &str =
    "-----BEGIN CERTIFICATE-----\nstand-in: the Postgres cluster CA\n-----END CERTIFICATE-----\n";

#[tokio::test]
async fn with_vault_the_job_patches_the_app_secret_and_copies_only_the_ca() {
    let (c, root_token) = Cluster::initialised().await;
    let members = c.members();

    let r = render(Some(&c.servers[0].address));
    let w = &r.writer;
    let (role, writer_sa, writer_ns, policy) = (
        w["role"].as_str().unwrap(),
        w["service_account"].as_str().unwrap(),
        w["namespace"].as_str().unwrap(),
        w["policy"].as_str().unwrap(),
    );
    assert_eq!(role, "ffe-db-credentials", "{w}");
    assert_eq!(
        (writer_ns, writer_sa),
        (SOURCE_NS, r.service_account.as_str()),
        "the Vault role must bind the CronJob's own ServiceAccount: {w}"
    );

    // passwords with characters JSON and shells care about, and non-ASCII
    let (pw1, pw2) = ("Zq7xK9p@ss'w\"ord%1\\é", "Wm4tR8-rotated-Ω-2$(id)");
    let minter = Minter::new(c.tmp.path());
    let job = Sa::new(writer_ns, writer_sa, "0b5e0f6c-1111-4000-8000-000000000001");
    let app = Sa::new(
        APP_NS,
        "ffe-backend",
        "0b5e0f6c-2222-4000-8000-000000000002",
    );
    let other = Sa::new(SOURCE_NS, "default", "0b5e0f6c-3333-4000-8000-000000000003");
    let vault_sa = Sa::new("openbao", "openbao", "0b5e0f6c-4444-4000-8000-000000000004");
    let (job_jwt, app_jwt, other_jwt) = (minter.mint(&job), minter.mint(&app), minter.mint(&other));
    let mut st = seeded_state(&r.docs, pw1, PG_CA);
    for (t, sa) in [
        (&job_jwt, &job),
        (&app_jwt, &app),
        (&other_jwt, &other),
        (&REVIEWER_TOKEN.to_string(), &vault_sa),
    ] {
        st.tokens.insert(t.clone(), sa.clone());
    }
    st.reviewers
        .insert((vault_sa.namespace.clone(), vault_sa.name.clone()));
    // (e) `other` gets the job's Kubernetes rights, so only Vault can stop it
    let job_grants: Vec<Grant> = st
        .grants
        .iter()
        .filter(|g| g.subject == (job.namespace.clone(), job.name.clone()))
        .cloned()
        .collect();
    assert!(
        !job_grants.is_empty(),
        "no RBAC for {job:?} in {:?}",
        st.grants
    );
    for mut g in job_grants {
        g.subject = (other.namespace.clone(), other.name.clone());
        st.grants.push(g);
    }
    let api = StandInApi::start(&c.pki, st);

    let spec = ConfigSpec {
        kv_mount: KV_MOUNT.into(),
        audit_file_path: "stdout".into(),
        auth_mount: "kubernetes".into(),
        kubernetes_host: api.url(),
        policies: BTreeMap::from([
            (role.to_string(), policy.to_string()),
            (
                "ffe-backend".into(),
                format!("path \"{KV_MOUNT}/data/{KV_PATH}\" {{\n  capabilities = [\"read\"]\n}}\n"),
            ),
        ]),
        roles: vec![
            RoleSpec {
                name: role.into(),
                service_account_names: vec![writer_sa.into()],
                namespaces: vec![writer_ns.into()],
                policies: vec![role.into()],
                ttl: "10m".into(),
            },
            RoleSpec {
                name: "ffe-backend".into(),
                service_account_names: vec![app.name.clone()],
                namespaces: vec![app.namespace.clone()],
                policies: vec!["ffe-backend".into()],
                ttl: "1h".into(),
            },
        ],
    };
    config::create(&members, &root_token, &spec)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    let root = members[0].client(&root_token).unwrap();
    // The CA of the test PKI is both the pod's service-account CA (it signed the stand-in's
    // certificate) and Vault's CA (it signed bao's).
    let ca = c.pki.dir.join("ca.crt");
    let run = |token: &str| run_script(&r.script, token, &ca, Some(&ca), &api);
    let db = |pw: &str| expect(&[("DB_USERNAME", "ffe-user"), ("DB_PASSWORD", pw)]);

    // (b) first write: the secret does not exist (its metadata answers 404), the job creates it
    // (cas=0) and marks what it wrote in the custom metadata
    assert!(app_secret(&root).await.is_none());
    let (n, audit_n) = (api.seen_len(), audit_ops(&c.logs()).len());
    let out = run(&job_jwt);
    assert!(out.ok, "{}\n{}", out.text(), c.logs());
    // before anything else touches the secret
    let ops: Vec<(String, String)> = audit_ops(&c.logs())[audit_n..].to_vec();
    assert_eq!(app_secret(&root).await, Some((db(pw1), 1)));
    assert_eq!(
        ops.iter().map(|(o, _)| o.as_str()).collect::<Vec<_>>(),
        vec!["create"],
        "{ops:?}"
    );
    assert_eq!(ops[0].1, "", "the create failed: {ops:?}");
    let marks = vaultrs::kv2::read_metadata(&root, KV_MOUNT, KV_PATH)
        .await
        .unwrap()
        .custom_metadata
        .unwrap_or_default();
    assert_eq!(
        marks.get("ffe-credentials-version").map(String::as_str),
        Some("1"),
        "{marks:?}"
    );
    // Vault asked the stand-in API about the job's JWT (Vault's own token as bearer)
    let reviews: Vec<Seen> = api
        .seen_since(n)
        .into_iter()
        .filter(|s| s.path == "/apis/authentication.k8s.io/v1/tokenreviews")
        .collect();
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert_eq!(
        (reviews[0].who.as_str(), reviews[0].status),
        ("openbao/openbao", 201)
    );
    assert!(reviews[0].body.contains(&job_jwt), "{reviews:?}");

    // (a) an existing secret with another key: the job merges its two keys in, copies the CA
    // and nothing else into the app namespace, and never prints the password
    vaultrs::kv2::delete_metadata(&root, KV_MOUNT, KV_PATH)
        .await
        .unwrap();
    vaultrs::kv2::set(&root, KV_MOUNT, KV_PATH, &expect(&[("API_KEY", "k-123")]))
        .await
        .unwrap();
    let n = api.seen_len();
    let out = run(&job_jwt);
    assert!(out.ok, "{}\n{}", out.text(), c.logs());
    let mut want = db(pw1);
    want.insert("API_KEY".into(), "k-123".into());
    assert_eq!(app_secret(&root).await, Some((want.clone(), 2)));
    let seen = api.seen_since(n);
    assert!(seen.iter().all(|s| s.status < 300), "{seen:#?}");
    let patches: Vec<&Seen> = seen.iter().filter(|s| s.method == "PATCH").collect();
    assert_eq!(patches.len(), 1, "{patches:#?}");
    let p = patches[0];
    assert_eq!(
        p.path,
        format!("/api/v1/namespaces/{APP_NS}/secrets/{CA_COPY}")
    );
    assert_eq!(p.content_type, "application/apply-patch+yaml");
    let query: BTreeSet<&str> = p.query.split('&').collect();
    assert_eq!(
        query,
        BTreeSet::from(["fieldManager=ffe-pg-credentials-sync", "force=true"])
    );
    let body: Value = serde_yaml_ng::from_str(&p.body).unwrap();
    assert_eq!(body["data"], json!({"ca.crt": b64(PG_CA)}), "{body}");
    assert!(
        !seen.iter().any(|s| s
            .path
            .ends_with(&format!("/namespaces/{APP_NS}/secrets/{USER_SECRET}"))),
        "the password Secret was copied: {seen:#?}"
    );
    let app_ns_secrets: Vec<String> = api.with(|s| {
        s.secrets
            .keys()
            .filter(|(ns, _)| ns == APP_NS)
            .map(|(_, n)| n.clone())
            .collect()
    });
    assert_eq!(app_ns_secrets, vec![CA_COPY.to_string()]);
    assert_no_leak(&out, pw1);

    // (c) a rotated password reaches Vault on the next run, as a new version
    api.with(|s| {
        s.secrets
            .get_mut(&(SOURCE_NS.to_string(), USER_SECRET.to_string()))
            .unwrap()
            .insert("password".into(), b64(pw2));
    });
    let out = run(&job_jwt);
    assert!(out.ok, "{}\n{}", out.text(), c.logs());
    want.insert("DB_PASSWORD".into(), pw2.into());
    assert_eq!(app_secret(&root).await, Some((want.clone(), 3)));
    assert_no_leak(&out, pw2);

    // (c2) nothing changed: no new version (kv-v2 keeps a bounded history; a version every 5
    // minutes would push the operator's own versions out within the hour)
    let out = run(&job_jwt);
    assert!(out.ok, "{}\n{}", out.text(), c.logs());
    assert!(out.stdout.contains("unchanged"), "{}", out.text());
    assert_eq!(app_secret(&root).await, Some((want.clone(), 3)));

    // (c3) someone overwrites the database keys by hand: the next run puts them back, keeping
    // the other keys
    let mut edited = want.clone();
    edited.insert("DB_PASSWORD".into(), "typed-by-hand".into());
    vaultrs::kv2::set(&root, KV_MOUNT, KV_PATH, &edited)
        .await
        .unwrap();
    let out = run(&job_jwt);
    assert!(out.ok, "{}\n{}", out.text(), c.logs());
    assert_eq!(app_secret(&root).await, Some((want.clone(), 5)));

    // (d) least privilege: the app reads the keys but cannot write; the job's token cannot read
    // the secret back nor write elsewhere; the app cannot log in as the job's role
    let app_login = vaultrs::auth::kubernetes::login(&root, "kubernetes", "ffe-backend", &app_jwt)
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", c.logs()));
    let app_client = members[0].client(&app_login.client_token).unwrap();
    let read: BTreeMap<String, String> = vaultrs::kv2::read(&app_client, KV_MOUNT, KV_PATH)
        .await
        .unwrap();
    assert_eq!(read, want);
    let e = vaultrs::kv2::set(&app_client, KV_MOUNT, KV_PATH, &db("from-the-app"))
        .await
        .unwrap_err();
    assert_eq!(code(&e), 403, "{e:?}");
    let job_login = vaultrs::auth::kubernetes::login(&root, "kubernetes", role, &job_jwt)
        .await
        .unwrap();
    let job_client = members[0].client(&job_login.client_token).unwrap();
    let e = vaultrs::kv2::read::<Value>(&job_client, KV_MOUNT, KV_PATH)
        .await
        .unwrap_err();
    assert_eq!(
        code(&e),
        403,
        "the job's token can read the secret back: {e:?}"
    );
    let e = vaultrs::kv2::set(&job_client, KV_MOUNT, "production/other", &db("x"))
        .await
        .unwrap_err();
    assert_eq!(code(&e), 403, "{e:?}");
    // ... and of the secret's metadata it may patch custom_metadata only, not its settings
    let metadata_patch = |flag: &str| {
        Command::new(vault_support::bao())
            .args([
                "kv",
                "metadata",
                "patch",
                &format!("-mount={KV_MOUNT}"),
                flag,
                KV_PATH,
            ])
            .env("BAO_ADDR", &c.servers[0].address)
            .env("BAO_CACERT", &ca)
            .env("BAO_TOKEN", &job_login.client_token)
            .output()
            .unwrap()
    };
    let out = metadata_patch("-max-versions=1");
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "the job's token changed max_versions: {out:?}"
    );
    let out = metadata_patch("-custom-metadata=probe=1");
    assert!(out.status.success(), "{out:?}");
    let e = vaultrs::auth::kubernetes::login(&root, "kubernetes", role, &app_jwt)
        .await
        .unwrap_err();
    assert_eq!(code(&e), 403, "{e:?}");
    // The signature is not checked (no pem_keys): a JWT with the job's claims that the API
    // server never issued is refused only because the TokenReview says so.
    let forged = minter.mint(&job);
    let n = api.seen_len();
    let e = vaultrs::auth::kubernetes::login(&root, "kubernetes", role, &forged)
        .await
        .unwrap_err();
    assert_eq!(code(&e), 403, "{e:?}");
    let seen = api.seen_since(n);
    assert!(
        seen.iter()
            .any(|s| s.path.ends_with("/tokenreviews") && s.body.contains(&forged)),
        "{seen:#?}"
    );

    // (e) another ServiceAccount (same Kubernetes rights, not bound to the role) writes nothing
    let n = api.seen_len();
    let out = run(&other_jwt);
    assert!(!out.ok, "{}", out.text());
    assert!(out.stderr.contains("HTTP Error 403"), "{}", out.text());
    assert_no_leak(&out, pw2);
    assert!(
        api.seen_since(n)
            .iter()
            .any(|s| s.who == "ffe-data/default" && s.method == "GET" && s.status == 200),
        "Kubernetes refused it, not Vault"
    );
    assert_eq!(app_secret(&root).await, Some((want.clone(), 5)));

    // (g) the source Secret lacks a key: the job fails, saying so, and writes nothing
    api.with(|s| {
        s.secrets
            .get_mut(&(SOURCE_NS.to_string(), USER_SECRET.to_string()))
            .unwrap()
            .remove("password");
    });
    let out = run(&job_jwt);
    assert!(!out.ok, "{}", out.text());
    assert!(
        out.stderr
            .contains(&format!("secret {USER_SECRET} has no ['password']")),
        "{}",
        out.text()
    );
    assert_eq!(app_secret(&root).await, Some((want.clone(), 5)));

    // (h) the newest version was deleted (kv delete): the job refuses to write over it and says
    // how to repair; nothing is written
    api.with(|s| {
        s.secrets
            .get_mut(&(SOURCE_NS.to_string(), USER_SECRET.to_string()))
            .unwrap()
            .insert("password".into(), b64(pw2));
    });
    vaultrs::kv2::delete_latest(&root, KV_MOUNT, KV_PATH)
        .await
        .unwrap();
    let out = run(&job_jwt);
    assert!(!out.ok, "{}", out.text());
    assert!(
        out.stderr.contains("newest version 5 is deleted")
            && out.stderr.contains(&format!(
                "vault kv undelete -versions=5 {KV_MOUNT}/{KV_PATH}"
            )),
        "{}",
        out.text()
    );
    let meta = vaultrs::kv2::read_metadata(&root, KV_MOUNT, KV_PATH)
        .await
        .unwrap();
    assert_eq!(meta.current_version, 5, "a version was written");
    assert!(
        !meta.versions["5"].deletion_time.is_empty(),
        "the deleted version came back: {:?}",
        meta.versions
    );
}

#[test]
fn without_vault_the_password_secret_and_the_ca_are_copied() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(&tmp.path().join("pki"));
    let r = render(None);
    assert!(r.writer.is_null(), "{}", r.writer);
    let pw = "Zq7xK9p@ss'w\"ord%1\\é";
    let job = Sa::new(
        SOURCE_NS,
        &r.service_account,
        "0b5e0f6c-1111-4000-8000-000000000001",
    );
    let jwt = Minter::new(tmp.path()).mint(&job);
    let mut st = seeded_state(&r.docs, pw, PG_CA);
    st.tokens.insert(jwt.clone(), job);
    let api = StandInApi::start(&pki, st);
    let ca = pki.dir.join("ca.crt");

    // (f) both copies, by server-side apply, with exactly the keys the app needs
    let out = run_script(&r.script, &jwt, &ca, None, &api);
    assert!(out.ok, "{}", out.text());
    let seen = api.seen_since(0);
    assert!(seen.iter().all(|s| s.status < 300), "{seen:#?}");
    let mut patches: BTreeMap<String, Value> = BTreeMap::new();
    for p in seen.iter().filter(|s| s.method == "PATCH") {
        assert_eq!(p.content_type, "application/apply-patch+yaml", "{p:?}");
        assert_eq!(
            p.query.split('&').collect::<BTreeSet<_>>(),
            BTreeSet::from(["fieldManager=ffe-pg-credentials-sync", "force=true"]),
            "{p:?}"
        );
        let body: Value = serde_yaml_ng::from_str(&p.body).unwrap();
        assert!(
            patches
                .insert(p.path.clone(), body["data"].clone())
                .is_none(),
            "{seen:#?}"
        );
    }
    assert_eq!(
        patches,
        BTreeMap::from([
            (
                format!("/api/v1/namespaces/{APP_NS}/secrets/{USER_SECRET}"),
                json!({"user": b64("ffe-user"), "password": b64(pw)})
            ),
            (
                format!("/api/v1/namespaces/{APP_NS}/secrets/{CA_COPY}"),
                json!({"ca.crt": b64(PG_CA)})
            ),
        ])
    );
    let copy = api.with(|s| s.secrets[&(APP_NS.to_string(), USER_SECRET.to_string())].clone());
    assert_eq!(
        copy,
        BTreeMap::from([
            ("password".to_string(), b64(pw)),
            ("user".to_string(), b64("ffe-user"))
        ])
    );
    assert_no_leak(&out, pw);

    // (g) the CA Secret lacks ca.crt (certificate not issued yet): the job fails, saying so
    api.with(|s| {
        s.secrets
            .get_mut(&(SOURCE_NS.to_string(), CERT_SECRET.to_string()))
            .unwrap()
            .remove("ca.crt");
    });
    let out = run_script(&r.script, &jwt, &ca, None, &api);
    assert!(!out.ok, "{}", out.text());
    assert!(
        out.stderr
            .contains(&format!("secret {CERT_SECRET} has no ['ca.crt']")),
        "{}",
        out.text()
    );
}

//! The Vault module's daily Raft snapshot CronJob, rendered by Terraform from
//! terraform/modules/vault with distribution = "openbao" (output manifests["vault-snapshots.yaml"]
//! and output snapshot, re-rendered on every run, never copied here), its script run with /bin/sh
//! as the pod would run it, against
//!   - a real one-member OpenBao (tools/bin/bao, tests/vault_support) configured by
//!     ffe_core::vault::config with the policy and role the module renders (output snapshot), and
//!   - the STAND-IN Kubernetes API server of tests/vault_support (TokenReviews only: the job's
//!     ServiceAccount has no Kubernetes rights; its projected token is only shown to Vault).
//!
//! What is taken from the render: the script, the container env names, the projected token's
//! mount path, the backup claim's mount path, the ServiceAccount and namespace, the policy and
//! role. What the test substitutes: the env values (the test server's address and CA instead of
//! the in-cluster Service and Secret vault-ca) and the claim's mount path (a temp dir instead of
//! the NFS share). Kubernetes auth details (TokenReview, unverified JWT signature) are described
//! in vault_app_credentials.rs.
//!
//! Not the pod's image: the script runs with this host's /bin/sh and GNU find/stat/date/mv (the
//! image quay.io/openbao/openbao is Alpine: busybox) and tools/bin/bao (OpenBao v2.7.2, the image
//! has v2.6.2), as the pod's uid/gid (see `run_job`).

mod vault_support;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use ffe_core::vault::config::{self, ConfigSpec, RoleSpec};
use serde_json::{json, Value};
use vault_support::{
    bao, code, grants, module_outputs, yaml_docs, ApiState, Cluster, Minter, Sa, StandInApi,
    REVIEWER_TOKEN,
};

const KV_MOUNT: &str = "secret";
const PROBE_PATH: &str = "snapshot-probe";
/// Kubernetes auth mount: environments/ha/vault.tf (vault_app_secret.auth_mount).
const AUTH_MOUNT: &str = "kubernetes";
/// The snapshot role's token TTL: environments/ha/vault.tf (kubernetes_roles, "one login, one
/// snapshot"); not a module output.
const ROLE_TTL: &str = "15m";
const RETENTION_DAYS: u64 = 7;
/// Where the job finds the test CA (BAO_CACERT): in its /run, readable by the pod's user.
const RUN_CA: &str = "/run/test-vault-ca/ca.crt";

// ---------------------------------------------------------------------------------------------
// Rendering the module

/// The CronJob as rendered: what the pod runs and where its volumes are mounted.
struct Job {
    script: String,
    /// the container's env (name, value) in order
    env: Vec<(String, String)>,
    /// mountPath of the volume backed by the snapshot claim (the NFS share)
    backups: String,
    /// the projected service-account token file (mountPath/path)
    token_file: String,
    /// mountPath of the Secret vault-ca volume
    ca_dir: String,
    /// the pod's securityContext runAsUser, runAsGroup, fsGroup
    uid: u64,
    gid: u64,
    fs_group: u64,
    namespace: String,
    service_account: String,
    docs: Vec<Value>,
    /// output snapshot
    snapshot: Value,
}

fn render() -> Job {
    // Pins as environments/ha/pins.tf, chart_versions.tf and vault.tf give them for OpenBao;
    // member_ips are lab-like addresses nothing connects to.
    let inputs = format!(
        r#"  distribution            = "openbao"
  chart_version           = "0.29.2"
  chart_repo              = "https://openbao.github.io/openbao-helm"
  image_tag               = "2.6.2"
  namespace               = "vault"
  cert_manager_namespace  = "cert-manager"
  ca_namespaces           = ["ffe", "ffe-data"]
  member_ips              = ["10.210.0.61", "10.210.0.62", "10.210.0.63"]
  loadbalancer_annotation = "kube-vip.io/loadbalancerIPs"
  data_storage_class      = "fast-retain"
  backup_storage_class    = "backup"
  backup_retention_days   = {RETENTION_DAYS}"#
    );
    let out = module_outputs("vault", &inputs);
    let docs = yaml_docs(out["manifests"]["vault-snapshots.yaml"].as_str().unwrap());
    let cron = docs
        .iter()
        .find(|d| d["kind"] == "CronJob")
        .expect("no CronJob in vault-snapshots.yaml");
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "{containers:?}");
    let c = &containers[0];
    let command = c["command"].as_array().unwrap();
    assert_eq!(command.len(), 3, "{command:?}");
    assert_eq!(
        (&command[0], &command[1]),
        (&json!("/bin/sh"), &json!("-c"))
    );
    let volumes: BTreeMap<&str, &Value> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v))
        .collect();
    let mounts: Vec<(&Value, &str)> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let v = volumes[m["name"].as_str().unwrap()];
            (v, m["mountPath"].as_str().unwrap())
        })
        .collect();
    let one = |what: &str, f: &dyn Fn(&Value) -> bool| -> (&Value, String) {
        let found: Vec<_> = mounts.iter().filter(|(v, _)| f(v)).collect();
        assert_eq!(found.len(), 1, "{what}: {mounts:?}");
        (found[0].0, found[0].1.to_string())
    };
    let claim = docs
        .iter()
        .find(|d| d["kind"] == "PersistentVolumeClaim")
        .expect("no claim in vault-snapshots.yaml");
    let (_, backups) = one("the claim's mount", &|v| {
        v["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    });
    let (tv, token_dir) = one("the projected token", &|v| {
        v["projected"]["sources"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| !s["serviceAccountToken"].is_null()))
    });
    let sat = tv["projected"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| !s["serviceAccountToken"].is_null())
        .unwrap()["serviceAccountToken"]
        .clone();
    // No audience: the API server's own (API_AUDIENCES), which the Minter puts in every token.
    assert!(sat["audience"].is_null(), "{sat}");
    let (_, ca_dir) = one("Secret vault-ca", &|v| {
        v["secret"]["secretName"] == "vault-ca"
    });
    let env = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    Job {
        script: command[2].as_str().unwrap().to_string(),
        env,
        backups,
        token_file: format!("{token_dir}/{}", sat["path"].as_str().unwrap()),
        ca_dir,
        uid: pod["securityContext"]["runAsUser"].as_u64().unwrap(),
        gid: pod["securityContext"]["runAsGroup"].as_u64().unwrap(),
        fs_group: pod["securityContext"]["fsGroup"].as_u64().unwrap(),
        namespace: cron["metadata"]["namespace"].as_str().unwrap().to_string(),
        service_account: pod["serviceAccountName"].as_str().unwrap().to_string(),
        docs,
        snapshot: out["snapshot"].clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Running the job as the pod would

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

/// Environment of the bao CLI run by the test itself: the test server, its CA, `token`; a
/// HOME with no token helper file.
fn cli_env(cmd: &mut Command, addr: &str, ca: &Path, home: &Path, token: Option<&str>) {
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", home)
        .env("BAO_ADDR", addr)
        .env("BAO_CACERT", ca);
    if let Some(t) = token {
        cmd.env("BAO_TOKEN", t);
    }
}

/// The rendered script with /bin/sh in a private mount namespace: a tmpfs on /run holds the
/// projected token at the rendered path (/var/run is a symlink to /run on this host, checked
/// below; owned by the pod's user, 0600, as the kubelet writes it) and a copy of the test CA;
/// tools/bin (bao) first on PATH; the rendered env with the test server's address and that CA
/// as values. It runs as the pod's runAsUser/runAsGroup with fsGroup as supplementary group and
/// no_new_privs (allowPrivilegeEscalation: false); HOME is not writable (readOnlyRootFilesystem).
/// `backups` is prepared as fsGroup leaves a volume (group fsGroup, setgid, group-writable).
/// The one substitution in the script: the claim's mount point -> `backups`.
fn run_job(job: &Job, jwt: &str, addr: &str, ca: &Path, backups: &Path, home: &Path) -> Run {
    let chown = Command::new("chown")
        .arg(format!("0:{}", job.fs_group))
        .arg(backups)
        .status()
        .unwrap();
    assert!(chown.success());
    std::fs::set_permissions(backups, std::fs::Permissions::from_mode(0o2775)).unwrap();
    assert!(
        job.script.contains(&job.backups),
        "the script does not write to the claim's mount {}: {}",
        job.backups,
        job.script
    );
    let script = job.script.replace(&job.backups, backups.to_str().unwrap());
    let token_dir = Path::new(&job.token_file).parent().unwrap();
    let mut cmd = Command::new("timeout");
    cmd.env_clear();
    let tools = bao().parent().unwrap().canonicalize().unwrap();
    for (name, value) in &job.env {
        let v = match name.as_str() {
            "BAO_ADDR" => addr.to_string(),
            "BAO_CACERT" => {
                assert!(
                    Path::new(value).starts_with(&job.ca_dir),
                    "{name}={value} is not in the CA's mount {}",
                    job.ca_dir
                );
                RUN_CA.to_string()
            }
            _ => value.clone(),
        };
        cmd.env(name, v);
    }
    let sh = format!(
        r#"mount -t tmpfs tmpfs /run && mkdir -p {dir} {ca_dir} && printf %s "$SA_TOKEN" > {file} && chown {uid}:{gid} {file} && chmod 0600 {file} && cp "$TEST_CA" {RUN_CA} && exec env -u SA_TOKEN -u JOB_SCRIPT -u TEST_CA setpriv --reuid={uid} --regid={gid} --groups={fs_group} --no-new-privs /bin/sh -c "$JOB_SCRIPT""#,
        dir = token_dir.display(),
        ca_dir = Path::new(RUN_CA).parent().unwrap().display(),
        file = job.token_file,
        uid = job.uid,
        gid = job.gid,
        fs_group = job.fs_group,
    );
    let out = cmd
        .args([
            "120",
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            &sh,
        ])
        .env(
            "PATH",
            format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", tools.display()),
        )
        .env("HOME", home)
        .env("SA_TOKEN", jwt)
        .env("TEST_CA", ca)
        .env("JOB_SCRIPT", &script)
        .output()
        .unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Checks

/// File names in `dir`.
fn files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// raft-YYYYMMDDTHHMMSSZ.snap (the script's `date -u +%Y%m%dT%H%M%SZ`): the stamp, or None.
fn snap_stamp(name: &str) -> Option<&str> {
    let stamp = name.strip_prefix("raft-")?.strip_suffix(".snap")?;
    let b = stamp.as_bytes();
    let ok = b.len() == 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z';
    ok.then_some(stamp)
}

fn utc_stamp() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y%m%dT%H%M%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Neither the JWT (nor its signature) nor anything shaped like an OpenBao token
/// (s./b./r. + 20 or more base62 characters, also hvs./hvb. for Vault) is in the output.
fn assert_no_token(out: &Run, jwt: &str) {
    let text = out.text();
    let sig = jwt.rsplit('.').next().unwrap();
    assert!(
        !text.contains(jwt) && !text.contains(sig),
        "JWT in the output: {text}"
    );
    let b = text.as_bytes();
    for (i, _) in text.match_indices('.') {
        let start = b[..i]
            .iter()
            .rposition(|c| !c.is_ascii_alphanumeric())
            .map_or(0, |p| p + 1);
        let prefix = &text[start..i];
        let tail = b[i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric())
            .count();
        assert!(
            !(["s", "b", "r", "hvs", "hvb"].contains(&prefix) && tail >= 20),
            "a Vault token in the output: {text}"
        );
    }
}

fn set_age(path: &Path, days: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(days * 86400))
        .unwrap();
}

async fn probe(
    client: &vaultrs::client::VaultClient,
) -> Result<String, vaultrs::error::ClientError> {
    let v: BTreeMap<String, String> = vaultrs::kv2::read(client, KV_MOUNT, PROBE_PATH).await?;
    Ok(v["value"].clone())
}

fn probe_value(v: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("value".to_string(), v.to_string())])
}

// ---------------------------------------------------------------------------------------------
// The test

#[tokio::test]
async fn the_snapshot_job_saves_a_restorable_snapshot_and_keeps_retention() {
    // The token's rendered mount path must be under /run for the tmpfs to hold it.
    assert_eq!(
        std::fs::canonicalize("/var/run").unwrap(),
        Path::new("/run"),
        "this test needs /var/run -> /run"
    );
    let (c, root_token) = Cluster::initialised().await;
    let members = c.members();

    let job = render();
    assert!(
        Path::new(&job.token_file).starts_with("/run")
            || Path::new(&job.token_file).starts_with("/var/run"),
        "token at {}: not under /run",
        job.token_file
    );
    let s = &job.snapshot;
    let (role, sa_name, ns, policy) = (
        s["role"].as_str().unwrap(),
        s["service_account"].as_str().unwrap(),
        s["namespace"].as_str().unwrap(),
        s["policy"].as_str().unwrap(),
    );
    assert_eq!(
        (ns, sa_name),
        (job.namespace.as_str(), job.service_account.as_str()),
        "the Vault role must bind the CronJob's own ServiceAccount: {s}"
    );
    assert_eq!(
        job.env
            .iter()
            .map(|e| e.0.as_str())
            .collect::<BTreeSet<_>>(),
        BTreeSet::from(["BAO_ADDR", "BAO_CACERT"]),
        "OpenBao's CLI reads BAO_*: {:?}",
        job.env
    );

    let minter = Minter::new(c.tmp.path());
    let job_sa = Sa::new(ns, sa_name, "0b5e0f6c-5555-4000-8000-000000000005");
    // the namespace's default account, and an account of the same name in another namespace
    let other = Sa::new(ns, "default", "0b5e0f6c-6666-4000-8000-000000000006");
    let elsewhere = Sa::new("ffe", sa_name, "0b5e0f6c-7777-4000-8000-000000000007");
    let vault_sa = Sa::new("openbao", "openbao", "0b5e0f6c-4444-4000-8000-000000000004");
    let (job_jwt, other_jwt, elsewhere_jwt) = (
        minter.mint(&job_sa),
        minter.mint(&other),
        minter.mint(&elsewhere),
    );
    let mut st = ApiState {
        grants: grants(&job.docs),
        ..Default::default()
    };
    for (t, sa) in [
        (&job_jwt, &job_sa),
        (&other_jwt, &other),
        (&elsewhere_jwt, &elsewhere),
        (&REVIEWER_TOKEN.to_string(), &vault_sa),
    ] {
        st.tokens.insert(t.clone(), sa.clone());
    }
    st.reviewers
        .insert((vault_sa.namespace.clone(), vault_sa.name.clone()));
    let api = StandInApi::start(&c.pki, st);

    let spec = ConfigSpec {
        kv_mount: KV_MOUNT.into(),
        audit_file_path: "stdout".into(),
        auth_mount: AUTH_MOUNT.into(),
        kubernetes_host: api.url(),
        policies: BTreeMap::from([(role.to_string(), policy.to_string())]),
        roles: vec![RoleSpec {
            name: role.into(),
            service_account_names: vec![sa_name.into()],
            namespaces: vec![ns.into()],
            policies: vec![role.into()],
            ttl: ROLE_TTL.into(),
        }],
    };
    config::create(&members, &root_token, &spec)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    let root = members[0].client(&root_token).unwrap();
    let addr = c.servers[0].address.clone();
    let ca = c.pki.dir.join("ca.crt");
    // The job's directories, traversable by the pod's user (the cluster's tempdir is 0700);
    // HOME root-owned 0755: not writable by the job.
    let work_tmp = tempfile::tempdir().unwrap();
    let work = work_tmp.path().to_path_buf();
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = work.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let new_dir = |name: &str| -> PathBuf {
        let d = work.join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let run = |jwt: &str, dir: &Path| run_job(&job, jwt, &addr, &ca, dir, &home);

    // (a) one run: exactly one raft-<UTC stamp>.snap, not empty, named on stdout, no .partial,
    // no token in the output
    vaultrs::kv2::set(&root, KV_MOUNT, PROBE_PATH, &probe_value("before"))
        .await
        .unwrap();
    let a = new_dir("a");
    let (t0, out, t1) = (utc_stamp(), run(&job_jwt, &a), utc_stamp());
    assert!(out.ok, "{}\n{}", out.text(), c.logs());
    let names = files(&a);
    assert_eq!(names.len(), 1, "{names:?}\n{}", out.text());
    let name = names.into_iter().next().unwrap();
    let stamp = snap_stamp(&name).unwrap_or_else(|| panic!("{name}: not raft-<stamp>.snap"));
    assert!(
        t0.as_str() <= stamp && stamp <= t1.as_str(),
        "{t0} {stamp} {t1}"
    );
    let snap = a.join(&name);
    let size = std::fs::metadata(&snap).unwrap().len();
    assert!(size > 0, "{name} is empty");
    assert!(
        out.stdout
            .contains(&format!("wrote {} ({size} bytes)", snap.display())),
        "{}",
        out.text()
    );
    assert_no_token(&out, &job_jwt);

    // (b) the file is a real snapshot of this Vault: change the secret, restore the file (root,
    // as an operator would), the value at the time of the job is back
    vaultrs::kv2::set(&root, KV_MOUNT, PROBE_PATH, &probe_value("after"))
        .await
        .unwrap();
    assert_eq!(probe(&root).await.unwrap(), "after");
    let mut restore = Command::new(bao());
    cli_env(&mut restore, &addr, &ca, &home, Some(&root_token));
    let r = restore
        .args(["operator", "raft", "snapshot", "restore"])
        .arg(&snap)
        .output()
        .unwrap();
    assert!(r.status.success(), "{r:?}\n{}", c.logs());
    // the restore reloads the storage: reads may fail for a moment
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let restored = loop {
        match probe(&root).await {
            Ok(v) if v == "before" || std::time::Instant::now() > deadline => break v,
            r => {
                assert!(std::time::Instant::now() < deadline, "{r:?}\n{}", c.logs());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(restored, "before", "{}", c.logs());

    // (c) retention: snapshots and partials older than backup_retention_days go, a younger one
    // and files the job did not write stay
    let ret = new_dir("c");
    let old = ["raft-old.snap", "raft-old.snap.partial"];
    let kept = ["raft-recent.snap", "notes.txt"];
    for (f, days) in [(old[0], 8), (old[1], 8), (kept[0], 6), (kept[1], 8)] {
        std::fs::write(ret.join(f), b"older bytes").unwrap();
        set_age(&ret.join(f), days);
    }
    let out = run(&job_jwt, &ret);
    assert!(out.ok, "{}\n{}", out.text(), c.logs());
    let left = files(&ret);
    let new: Vec<&String> = left
        .iter()
        .filter(|f| !kept.contains(&f.as_str()))
        .collect();
    assert!(
        new.len() == 1 && snap_stamp(new[0]).is_some(),
        "{left:?}\n{}",
        out.text()
    );
    for f in kept {
        assert!(
            left.contains(f),
            "{f} was deleted: {left:?}\n{}",
            out.text()
        );
    }
    for f in old {
        assert!(!left.contains(f), "{f} was kept: {left:?}\n{}", out.text());
    }

    // (d) least privilege: the role's token reads no secret and writes nothing; other accounts
    // cannot log in as the role, and the job run with their token writes no snapshot
    let login = vaultrs::auth::kubernetes::login(&root, AUTH_MOUNT, role, &job_jwt)
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", c.logs()));
    let job_client = members[0].client(&login.client_token).unwrap();
    let e = probe(&job_client).await.unwrap_err();
    assert_eq!(code(&e), 403, "the job's token reads secrets: {e:?}");
    let e = vaultrs::kv2::set(&job_client, KV_MOUNT, PROBE_PATH, &probe_value("x"))
        .await
        .unwrap_err();
    assert_eq!(code(&e), 403, "the job's token writes secrets: {e:?}");
    assert_eq!(probe(&root).await.unwrap(), "before");
    for (who, jwt) in [("other", &other_jwt), ("elsewhere", &elsewhere_jwt)] {
        let e = vaultrs::auth::kubernetes::login(&root, AUTH_MOUNT, role, jwt)
            .await
            .unwrap_err();
        assert_eq!(code(&e), 403, "{who}: {e:?}");
        let d = new_dir(&format!("d-{who}"));
        let out = run(jwt, &d);
        assert!(!out.ok, "{who}: {}", out.text());
        assert!(
            out.stderr.contains("auth/kubernetes/login") && out.stderr.contains("Code: 403"),
            "{who}: {}",
            out.text()
        );
        assert!(files(&d).is_empty(), "{who}: {:?}", files(&d));
        assert_no_token(&out, jwt);
    }

    // (e) failures leave no new snapshot and delete nothing (set -e: retention runs only after
    // a saved snapshot). A refused save opens no file either: the CLI creates the .partial at
    // the first byte received (openbao v2.6.2 command/operator_raft_snapshot_save.go,
    // lazyOpenWriter), so only a transfer broken midway leaves one, which retention deletes
    // once it is older than backup_retention_days.
    let e_dir = new_dir("e");
    std::fs::copy(&snap, e_dir.join(&name)).unwrap();
    std::fs::write(e_dir.join(old[0]), b"older bytes").unwrap();
    set_age(&e_dir.join(old[0]), 8);
    let before = BTreeSet::from([name.clone(), old[0].to_string()]);
    // (e1) the login works but the save is refused (the role's policy without the snapshot path)
    vaultrs::sys::policy::set(
        &root,
        role,
        "path \"sys/health\" {\n  capabilities = [\"read\"]\n}\n",
    )
    .await
    .unwrap();
    let out = run(&job_jwt, &e_dir);
    assert!(!out.ok, "{}", out.text());
    assert_eq!(files(&e_dir), before, "{}", out.text());
    assert!(
        out.stderr.contains("Error taking the snapshot"),
        "{}",
        out.text()
    );
    assert_no_token(&out, &job_jwt);
    vaultrs::sys::policy::set(&root, role, policy)
        .await
        .unwrap();
    // (e2) Vault sealed: the login fails first
    let mut seal = Command::new(bao());
    cli_env(&mut seal, &addr, &ca, &home, Some(&root_token));
    let r = seal.args(["operator", "seal"]).output().unwrap();
    assert!(r.status.success(), "{r:?}");

    let out = run(&job_jwt, &e_dir);
    assert!(!out.ok, "{}", out.text());
    assert_eq!(files(&e_dir), before, "{}", out.text());
    assert!(out.stderr.contains("sealed"), "{}", out.text());
    assert_no_token(&out, &job_jwt);
}

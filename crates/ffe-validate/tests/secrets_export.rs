//! The daily Secrets/ConfigMaps export (terraform/modules/cluster-backup, CronJob
//! ffe-secrets-export), rendered by the real `terraform` from the module on every run (never
//! copied here), its script run with bash as the pod would run it, and the restore of ONE
//! namespace run exactly as docs/disaster-recovery.md writes it.
//!
//! STAND-INS (no Kubernetes here): `kubectl` is a recorder script on PATH. For the export it plays
//! the API server behind the ServiceAccount's RBAC: it answers exactly the two list calls the
//! rendered ClusterRole allows (get/list secrets and configmaps, all namespaces) from recorded
//! `kubectl get -o json` output of two namespaces, applies the field selector as the API server
//! does, and refuses every other verb, resource or flag with the API's Forbidden error. For the
//! restore it accepts only `apply -f -` and records what it is given. Real: `terraform`, `age`,
//! `age-keygen`, GNU tar, jq, find (the tools the image is expected to carry; the image itself is
//! not run: see terraform/environments/ha/pins.tf), and for the static checks ffe-validate
//! (Kubernetes schemas, strict) and checkov (tools/checkov-venv, `make deps`).

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::{json, Value};

const RETENTION_DAYS: u64 = 7;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A quoted string of terraform/environments/ha/pins.tf: `key = "value"` inside `block`.
fn pinned(block: &str, key: &str) -> String {
    let pins = std::fs::read_to_string(root().join("terraform/environments/ha/pins.tf")).unwrap();
    let start = pins
        .find(&format!("{block} = {{"))
        .unwrap_or_else(|| panic!("pins.tf: no {block}"));
    let line = pins[start..]
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{key} ")))
        .unwrap_or_else(|| panic!("pins.tf: no {block}.{key}"));
    line.split('"').nth(1).unwrap().to_string()
}

/// The module's outputs, rendered by terraform in a scratch root module (no providers, offline).
fn render(recipient: &str) -> Value {
    let module = root().join("terraform/modules/cluster-backup");
    let dir = tempfile::tempdir().unwrap();
    let main = format!(
        r#"module "m" {{
  source                = "{module}"
  namespace             = "monitoring"
  backup_storage_class  = "backup-nfs"
  backup_retention_days = {RETENTION_DAYS}
  age_recipient         = "{recipient}"
  export_image          = "{export_image}"
  backup_mount          = "/mnt/backups"
  offsite = {{
    target         = "ffe-backup@backup.example.com:/srv/ffe-offsite"
    known_hosts    = "backup.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICKur6GBf8+bPTrFLR/TbQb6rkVpWvnKg39lF+bm89aW"
    ssh_key_secret = "ffe-backup-offsite-ssh"
  }}
  offsite_image = "{offsite_image}"
}}
output "m" {{
  value = module.m
}}
"#,
        module = module.display(),
        export_image = pinned("backup_job_images", "secrets_export"),
        offsite_image = pinned("backup_job_images", "offsite"),
    );
    std::fs::write(dir.path().join("main.tf"), main).unwrap();
    for args in [
        &["init", "-input=false", "-no-color"][..],
        &["apply", "-auto-approve", "-input=false", "-no-color"][..],
        &["output", "-json", "m"][..],
    ] {
        let out = Command::new("terraform")
            .current_dir(dir.path())
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .env("CHECKPOINT_DISABLE", "1")
            .args(args)
            .output()
            .expect("terraform on PATH");
        assert!(
            out.status.success(),
            "terraform {}: {}",
            args[0],
            text(&out)
        );
        if args[0] == "output" {
            return serde_json::from_slice(&out.stdout).unwrap();
        }
    }
    unreachable!()
}

fn yaml_docs(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

/// An age identity: (key file, public key).
fn age_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&path)
        .output()
        .expect("age-keygen on PATH (make deps installs age)");
    assert!(out.status.success(), "{}", text(&out));
    let key = std::fs::read_to_string(&path).unwrap();
    let public = key
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    (path, public)
}

// ---------------------------------------------------------------------------------------------
// Recorded API objects

/// The objects as they must come back: what the restore must apply.
fn clean_objects() -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ffe-pg-pguser-ffe-user", "namespace": "ffe-data",
               "labels": {"postgres-operator.crunchydata.com/cluster": "ffe-pg"}},
               "type": "Opaque", "data": {"user": "ZmZlLXVzZXI=", "password": "c3VwZXItc2VjcmV0LWRiLXBhc3N3b3Jk"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ffe-pg-cluster-cert", "namespace": "ffe-data",
               "annotations": {"cert-manager.io/issuer-name": "ffe-pg-ca"}},
               "type": "kubernetes.io/tls", "data": {"tls.crt": "Q0VSVElGSUNBVEUtREFUQQ==", "tls.key": "UFJJVkFURS1LRVktREFUQQ=="}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ffe-pg-config", "namespace": "ffe-data"},
               "data": {"postgresql.conf": "max_connections = 200\n"}, "binaryData": {"blob": "AAEC"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ffe-backend-api-keys", "namespace": "ffe"},
               "type": "Opaque", "data": {"API_KEY": "YXBpLWtleS1vZi10aGUtYXBw"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ffe-backend", "namespace": "ffe",
               "labels": {"app.kubernetes.io/name": "ffe-backend"}}, "data": {"LOG_LEVEL": "info"}}),
    ]
}

/// What `kubectl get -o json` prints for the clean objects: server-set fields, ownerReferences, a
/// last-applied annotation, plus what the export must leave out (a service-account token, the
/// kube-root-ca.crt ConfigMaps).
fn recorded(kind: &str) -> Value {
    let mut items: Vec<Value> = clean_objects()
        .into_iter()
        .filter(|o| o["kind"] == kind)
        .enumerate()
        .map(|(i, mut o)| {
            let m = o["metadata"].as_object_mut().unwrap();
            m.insert("uid".into(), json!(format!("6f1c3b2a-0000-4000-8000-00000000000{i}")));
            m.insert("resourceVersion".into(), json!(format!("{}", 1000 + i)));
            m.insert("creationTimestamp".into(), json!("2026-11-30T10:00:00Z"));
            m.insert("managedFields".into(), json!([{"manager": "kubectl", "operation": "Update", "apiVersion": "v1"}]));
            if i == 0 {
                m.insert("ownerReferences".into(), json!([{"apiVersion": "pgv2.percona.com/v2", "kind": "PerconaPGCluster",
                    "name": "ffe-pg", "uid": "0d0d0d0d-0000-4000-8000-000000000000", "controller": true}]));
                let a = m.entry("annotations").or_insert_with(|| json!({}));
                a["kubectl.kubernetes.io/last-applied-configuration"] = json!("{\"kind\":\"whatever\"}\n");
            }
            o
        })
        .collect();
    if kind == "Secret" {
        items.push(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "legacy-token", "namespace": "ffe-data", "uid": "1", "resourceVersion": "7",
                         "annotations": {"kubernetes.io/service-account.name": "default"}},
            "type": "kubernetes.io/service-account-token", "data": {"token": "bGVnYWN5LXNhLXRva2VuLXZhbHVl"}}));
    } else {
        for ns in ["ffe", "ffe-data"] {
            items.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "kube-root-ca.crt", "namespace": ns, "uid": "2", "resourceVersion": "8"},
                "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nOLD-CLUSTER-CA\n-----END CERTIFICATE-----\n"}}));
        }
    }
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items})
}

/// Strings that must never appear in the encrypted file: every data value, raw and decoded.
fn sensitive_strings() -> Vec<String> {
    let mut out = Vec::new();
    for kind in ["Secret", "ConfigMap"] {
        for o in recorded(kind)["items"].as_array().unwrap() {
            for (_, v) in o["data"].as_object().into_iter().flatten() {
                let v = v.as_str().unwrap();
                out.push(v.to_string());
                if kind == "Secret" {
                    use base64::Engine;
                    let raw = base64::engine::general_purpose::STANDARD.decode(v).unwrap();
                    out.push(String::from_utf8(raw).unwrap());
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The stand-in kubectl

/// Writes the stand-in `kubectl` into `bin`, answering from `api` (recorded lists).
fn export_kubectl(bin: &Path, api: &Path) {
    std::fs::create_dir_all(bin).unwrap();
    std::fs::create_dir_all(api).unwrap();
    let all = recorded("Secret");
    let mut no_tokens = all.clone();
    no_tokens["items"]
        .as_array_mut()
        .unwrap()
        .retain(|o| o["type"] != "kubernetes.io/service-account-token");
    std::fs::write(api.join("secrets.json"), all.to_string()).unwrap();
    std::fs::write(api.join("secrets-no-tokens.json"), no_tokens.to_string()).unwrap();
    std::fs::write(
        api.join("configmaps.json"),
        recorded("ConfigMap").to_string(),
    )
    .unwrap();
    // STAND-IN for kubectl + the API server behind ClusterRole ffe-secrets-export (get/list of
    // secrets and configmaps, cluster-wide). FAIL_CONFIGMAPS=1 makes the configmaps list fail as
    // an unreachable API server does.
    let script = format!(
        r#"#!/bin/bash
api='{api}'
printf '%s\n' "$*" >> "$api/calls"
case "$*" in
  "get secrets --all-namespaces --field-selector type!=kubernetes.io/service-account-token -o json")
    cat "$api/secrets-no-tokens.json" ;;
  "get secrets --all-namespaces -o json" | "get secrets -A -o json")
    cat "$api/secrets.json" ;;
  "get configmaps --all-namespaces -o json" | "get configmaps -A -o json")
    if [ "${{FAIL_CONFIGMAPS:-}}" = 1 ]; then
      echo "The connection to the server 10.43.0.1:443 was refused - did you specify the right host or port?" >&2
      exit 1
    fi
    cat "$api/configmaps.json" ;;
  *)
    echo "Error from server (Forbidden): stand-in kubectl: ServiceAccount monitoring/ffe-secrets-export may only list secrets and configmaps in all namespaces as JSON, not: kubectl $*" >&2
    exit 1 ;;
esac
"#,
        api = api.display()
    );
    let path = bin.join("kubectl");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// STAND-IN for kubectl in the restore: accepts `apply -f -` only and records its input.
fn restore_kubectl(bin: &Path, record: &Path) {
    std::fs::create_dir_all(bin).unwrap();
    let script = format!(
        r#"#!/bin/bash
case "$*" in
  "apply -f -") cat >> '{record}'; echo "stand-in kubectl: applied" ;;
  *) echo "stand-in kubectl: the restore may only apply, not: kubectl $*" >&2; exit 1 ;;
esac
"#,
        record = record.display()
    );
    let path = bin.join("kubectl");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// The rendered job

struct Job {
    script: String,
    backups: String,
    work: String,
    docs: Vec<Value>,
    offsite: Vec<Value>,
}

fn job(out: &Value) -> Job {
    let docs = yaml_docs(out["manifests"]["secrets-export.yaml"].as_str().unwrap());
    let offsite = yaml_docs(out["manifests"]["backup-offsite.yaml"].as_str().unwrap());
    let cron = docs.iter().find(|d| d["kind"] == "CronJob").unwrap();
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(pod["containers"].as_array().unwrap().len(), 1);
    let cmd = c["command"].as_array().unwrap();
    assert_eq!((&cmd[0], &cmd[1]), (&json!("/bin/bash"), &json!("-c")));
    assert!(c["env"].is_null(), "the script takes nothing from env: {c}");
    let mount = |pred: &dyn Fn(&Value) -> bool| -> String {
        let vol = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| pred(v))
            .unwrap();
        let m = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == vol["name"])
            .unwrap();
        m["mountPath"].as_str().unwrap().to_string()
    };
    let backups = mount(&|v| v["persistentVolumeClaim"]["claimName"] == "backup-cluster");
    let work = mount(&|v| v["emptyDir"]["medium"] == "Memory");
    Job {
        script: cmd[2].as_str().unwrap().to_string(),
        backups,
        work,
        docs,
        offsite,
    }
}

/// The script as the pod runs it: bash, the stand-in kubectl first on PATH, the claim and the
/// emptyDir mapped to `backups` and `work` (the only substitution).
fn run_export(job: &Job, bin: &Path, backups: &Path, work: &Path, fail: bool) -> Output {
    assert!(job.script.contains(&format!("{}/", job.backups)));
    assert!(job.script.contains(&job.work));
    let script = job
        .script
        .replace(&job.backups, backups.to_str().unwrap())
        .replace(&job.work, work.to_str().unwrap());
    let mut cmd = Command::new("bash");
    cmd.env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .args(["-c", &script]);
    if fail {
        cmd.env("FAIL_CONFIGMAPS", "1");
    }
    cmd.output().unwrap()
}

fn files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// secrets-YYYYMMDDTHHMMSSZ.tar.age
fn is_export_name(name: &str) -> bool {
    let Some(stamp) = name
        .strip_prefix("secrets-")
        .and_then(|s| s.strip_suffix(".tar.age"))
    else {
        return false;
    };
    let b = stamp.as_bytes();
    b.len() == 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
}

fn set_age(path: &Path, days: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(days * 86400))
        .unwrap();
}

/// The restore command line of docs/disaster-recovery.md: the bash block after the marker.
fn documented_restore() -> String {
    let doc = std::fs::read_to_string(root().join("docs/disaster-recovery.md")).unwrap();
    let at = doc
        .find("<!-- restore-one-namespace -->")
        .expect("docs/disaster-recovery.md: no <!-- restore-one-namespace --> marker");
    let rest = &doc[at..];
    let start = rest.find("```bash\n").unwrap() + "```bash\n".len();
    let end = rest[start..].find("```").unwrap();
    let block = rest[start..start + end].trim();
    assert_eq!(block.lines().count(), 1, "one command line: {block}");
    block.to_string()
}

fn decrypt(key: &Path, file: &Path) -> Output {
    Command::new("age")
        .arg("--decrypt")
        .arg("-i")
        .arg(key)
        .arg(file)
        .output()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn the_export_is_encrypted_complete_and_one_namespace_restores_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (key, public) = age_key(t, "right.key");
    let (wrong_key, _) = age_key(t, "wrong.key");
    let out = render(&public);
    let job = job(&out);

    // RBAC: get/list of secrets and configmaps cluster-wide, for this ServiceAccount only.
    let role = job
        .docs
        .iter()
        .find(|d| d["kind"] == "ClusterRole")
        .unwrap();
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["get", "list"]}])
    );
    let binding = job
        .docs
        .iter()
        .find(|d| d["kind"] == "ClusterRoleBinding")
        .unwrap();
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "ffe-secrets-export", "namespace": "monitoring"}])
    );
    assert!(
        job.docs
            .iter()
            .all(|d| !matches!(d["kind"].as_str(), Some("Role" | "RoleBinding"))),
        "no other rights"
    );
    assert!(
        job.script.contains(&public),
        "encrypted to the variable's recipient"
    );

    let bin = t.join("bin");
    let api = t.join("api");
    export_kubectl(&bin, &api);
    let backups = t.join("backups");
    let work = t.join("work");
    std::fs::create_dir_all(&backups).unwrap();
    std::fs::create_dir_all(&work).unwrap();

    // (a) one run: one complete file, 0644, no .partial, no plaintext left in the emptyDir
    let run = run_export(&job, &bin, &backups, &work, false);
    assert!(run.status.success(), "{}", text(&run));
    let names = files(&backups);
    assert_eq!(names.len(), 1, "{names:?}");
    let name = names.iter().next().unwrap().clone();
    assert!(is_export_name(&name), "{name}");
    let export = backups.join(&name);
    let meta = std::fs::metadata(&export).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    assert!(
        String::from_utf8_lossy(&run.stdout).contains(&format!(
            "wrote {} ({} bytes): 3 Secrets, 2 ConfigMaps in 2 namespaces",
            export.display(),
            meta.len()
        )),
        "{}",
        text(&run)
    );
    assert!(
        files(&work).is_empty(),
        "plaintext left: {:?}",
        files(&work)
    );
    let calls = std::fs::read_to_string(api.join("calls")).unwrap();
    assert_eq!(
        calls,
        "get secrets --all-namespaces --field-selector type!=kubernetes.io/service-account-token -o json\n\
         get configmaps --all-namespaces -o json\n"
    );

    // (b) not plaintext: an age file, none of the values or names in it
    let bytes = std::fs::read(&export).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
    let haystack = String::from_utf8_lossy(&bytes);
    for s in sensitive_strings()
        .into_iter()
        .chain(["ffe-pg-pguser-ffe-user".to_string(), "ffe-data".to_string()])
    {
        assert!(!haystack.contains(&s), "{s:?} in the encrypted file");
    }

    // (c) only the matching private key decrypts it
    let wrong = decrypt(&wrong_key, &export);
    assert!(!wrong.status.success(), "{}", text(&wrong));
    assert!(wrong.stdout.is_empty());
    let right = decrypt(&key, &export);
    assert!(right.status.success(), "{}", text(&right));
    let listing = Command::new("tar")
        .args(["-tf", "-"])
        .stdin(std::fs::File::open(&export).unwrap())
        .output()
        .unwrap();
    assert!(!listing.status.success(), "tar read the encrypted file");
    let plain = t.join("plain.tar");
    std::fs::write(&plain, &right.stdout).unwrap();
    let listing = Command::new("tar").arg("-tf").arg(&plain).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout),
        "ffe-data.json\nffe.json\n",
        "{}",
        text(&listing)
    );

    // (d) the documented restore of ONE namespace, run exactly as written
    let command = documented_restore();
    let applied = t.join("applied.json");
    let rbin = t.join("restore-bin");
    restore_kubectl(&rbin, &applied);
    let restore = Command::new("bash")
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", rbin.display()))
        .env("HOME", t)
        .env("KEY", &key)
        .env("EXPORT", &export)
        .env("NS", "ffe-data")
        .args(["-o", "pipefail", "-c", &command])
        .output()
        .unwrap();
    assert!(restore.status.success(), "{command}\n{}", text(&restore));
    let got: Value = serde_json::from_slice(&std::fs::read(&applied).unwrap()).unwrap();
    assert_eq!(
        (&got["apiVersion"], &got["kind"]),
        (&json!("v1"), &json!("List"))
    );
    let mut want: Vec<Value> = clean_objects()
        .into_iter()
        .filter(|o| o["metadata"]["namespace"] == "ffe-data")
        .collect();
    let key_of = |o: &Value| {
        (
            o["kind"].as_str().unwrap().to_string(),
            o["metadata"]["name"].as_str().unwrap().to_string(),
        )
    };
    want.sort_by_key(key_of);
    let mut items = got["items"].as_array().unwrap().clone();
    items.sort_by_key(key_of);
    assert_eq!(
        items, want,
        "restored objects differ from the recorded ones"
    );
    // the same command with the wrong key restores nothing and fails
    std::fs::remove_file(&applied).unwrap();
    let bad = Command::new("bash")
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", rbin.display()))
        .env("KEY", &wrong_key)
        .env("EXPORT", &export)
        .env("NS", "ffe-data")
        .args(["-o", "pipefail", "-c", &command])
        .output()
        .unwrap();
    assert!(!bad.status.success(), "{}", text(&bad));
    let nothing = std::fs::read(&applied).unwrap_or_default();
    assert!(
        nothing.is_empty() || serde_json::from_slice::<Value>(&nothing).is_err(),
        "applied something with the wrong key"
    );

    // (e) retention: older exports and partials go, a younger one and foreign files stay
    let ret = t.join("retention");
    std::fs::create_dir_all(&ret).unwrap();
    let old = [
        "secrets-20250101T021500Z.tar.age",
        "secrets-20250102T021500Z.tar.age.partial",
    ];
    let kept = ["secrets-20250103T021500Z.tar.age", "notes.txt"];
    for (f, days) in [(old[0], 8), (old[1], 8), (kept[0], 6), (kept[1], 30)] {
        std::fs::write(ret.join(f), b"older").unwrap();
        set_age(&ret.join(f), days);
    }
    let run = run_export(&job, &bin, &ret, &work, false);
    assert!(run.status.success(), "{}", text(&run));
    let left = files(&ret);
    for f in kept {
        assert!(left.contains(f), "{f} deleted: {left:?}");
    }
    for f in old {
        assert!(!left.contains(f), "{f} kept: {left:?}");
    }
    assert_eq!(
        left.iter().filter(|f| is_export_name(f)).count(),
        2,
        "{left:?}"
    );

    // (f) an API failure: non-zero exit, no new file, nothing deleted, no plaintext left
    let fail = t.join("fail");
    std::fs::create_dir_all(&fail).unwrap();
    std::fs::write(fail.join(old[0]), b"older").unwrap();
    set_age(&fail.join(old[0]), 8);
    let run = run_export(&job, &bin, &fail, &work, true);
    assert!(!run.status.success(), "{}", text(&run));
    assert_eq!(files(&fail), BTreeSet::from([old[0].to_string()]));
    assert!(
        files(&work).is_empty(),
        "plaintext left: {:?}",
        files(&work)
    );

    // (g) the off-site copy: no --delete, the host key checked, the share read-only
    let cron = job.offsite.iter().find(|d| d["kind"] == "CronJob").unwrap();
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let script = pod["containers"][0]["command"][2].as_str().unwrap();
    assert!(
        script.contains("rsync --archive") && !script.contains("--delete"),
        "{script}"
    );
    assert!(script.contains("StrictHostKeyChecking=yes"), "{script}");
    assert!(
        script.contains("'ffe-backup@backup.example.com:/srv/ffe-offsite/'"),
        "{script}"
    );
    assert!(pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["hostPath"]["path"] == "/mnt/backups"));
    assert!(pod["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["name"] == "tmp" || m["readOnly"] == true));
}

/// The rendered documents pass the project's static validation: Kubernetes schemas (strict, every
/// inline script parsed) with ffe-validate, and checkov.
#[test]
fn the_rendered_jobs_pass_schema_and_checkov() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, public) = age_key(tmp.path(), "k.key");
    let out = render(&public);
    let manifests = out["manifests"].as_object().unwrap();
    assert_eq!(
        manifests.keys().map(String::as_str).collect::<Vec<_>>(),
        ["backup-offsite.yaml", "secrets-export.yaml"]
    );
    let all: Vec<&str> = manifests.values().map(|v| v.as_str().unwrap()).collect();
    let path = format!(
        "{}:{}:/usr/local/bin:/usr/bin:/bin",
        root().join("tools/venv/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for kube in ["1.35", "1.37"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ffe-validate"))
            .env("PATH", &path)
            .args(["manifests", "--kube-version", kube, "--crds"])
            .arg(root().join("upstream/crds/helm-controller"))
            .arg("-")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(all.join("---\n").as_bytes())
            .unwrap();
        let v = child.wait_with_output().unwrap();
        assert!(v.status.success(), "Kubernetes {kube}: {}", text(&v));
    }
    let checkov = root().join("tools/checkov-venv/bin/checkov");
    assert!(
        checkov.exists(),
        "{} missing: run make deps",
        checkov.display()
    );
    let dir = tmp.path().join("rendered");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, yaml) in manifests {
        std::fs::write(dir.join(name), yaml.as_str().unwrap()).unwrap();
    }
    let c = Command::new(checkov)
        .args([
            "--skip-download",
            "--framework",
            "kubernetes",
            "--compact",
            "--quiet",
            "-d",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(c.status.success(), "checkov: {}", text(&c));
}

//! Vault HA on the real engine: OpenBao 2.7.2 (`bao server`, the Vault API) as a 3-member Raft
//! cluster on lab hosts, TLS on the API (lab CA + per-member certificates with IP SANs) and on
//! the cluster port, `retry_join` between members. Needs root.
//!
//! The Raft timing (`performance_multiplier`) and the Shamir numbers come from
//! `terraform/modules/vault/vault-settings.yaml`, the file the Terraform module renders into the
//! chart's server config: the lab runs what the cluster runs. Lab-only values (ports, paths,
//! `disable_mlock`) are named where they are set (`ffe_lab::vault`).
//!
//! HashiCorp Vault itself is not run (it cannot be obtained here); OpenBao serves the same HTTP
//! API the provider speaks. Nothing else is a stand-in: no Kubernetes, so the Kubernetes auth
//! method is configured and checked through the API, never used for a login.
//!
//! `bench_vault` (ignored; run by `bench/vault`) repeats the failover and the Terraform init,
//! printing one `BENCH_JSON {...}` line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ffe_lab::lab::{Lab, LabSpec};
use ffe_lab::vault::{BaoCluster, BaoSpec, Req};
use serde::Deserialize;
use serde_json::{json, Value};

const HOSTS: [&str; 3] = ["vault-0", "vault-1", "vault-2"];
/// The audit device's file_path: terraform/modules/vault/main.tf `audit_file_path` (rendered into
/// OpenBao's server config and given to ffe_vault_config).
const AUDIT_FILE_PATH: &str = "stdout";

// ---------------------------------------------------------------------------------------------
// The single source: vault-settings.yaml
// ---------------------------------------------------------------------------------------------

/// `terraform/modules/vault/vault-settings.yaml`. Unknown keys are refused so a setting added
/// there cannot silently go unproven here.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VaultSettings {
    raft: RaftSettings,
    shamir: ShamirSettings,
    /// The snapshot CronJob's schedule and the staleness alert's margin: cluster objects, not
    /// server settings (the lab proves save + restore on demand instead).
    #[allow(dead_code)]
    snapshots: SnapshotSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RaftSettings {
    performance_multiplier: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShamirSettings {
    secret_shares: u8,
    secret_threshold: u8,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct SnapshotSettings {
    schedule: String,
    age_margin_hours: u32,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load_settings() -> VaultSettings {
    let p = repo_root().join("terraform/modules/vault/vault-settings.yaml");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let s: VaultSettings =
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(
        (1..=s.shamir.secret_shares).contains(&s.shamir.secret_threshold),
        "{}: secret_threshold must be 1..=secret_shares",
        p.display()
    );
    s
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn lab() -> Lab {
    Lab::create(LabSpec {
        hosts: HOSTS.iter().map(|s| s.to_string()).collect(),
        backup_mount: PathBuf::from("/mnt/backups"),
        ssh_port: 22,
    })
    .expect("lab create")
}

fn cluster<'a>(lab: &'a Lab, settings: &VaultSettings) -> BaoCluster<'a> {
    let c = BaoCluster::create(
        lab,
        &HOSTS,
        BaoSpec {
            performance_multiplier: settings.raft.performance_multiplier,
            audit_file_path: Some(AUDIT_FILE_PATH.into()),
        },
    )
    .expect("OpenBao members");
    c.start_all().expect("start OpenBao members");
    c
}

/// Initialise member 0 and unseal all three (Raft joins complete during the unseal); returns
/// the root token, the seconds init + unseal took and the active member.
fn init_unseal(c: &BaoCluster<'_>, s: &VaultSettings) -> (String, f64, usize) {
    let t0 = Instant::now();
    let init = c
        .init(0, s.shamir.secret_shares, s.shamir.secret_threshold)
        .expect("sys/init");
    assert_eq!(init.keys_base64.len(), usize::from(s.shamir.secret_shares));
    let keys = &init.keys_base64[..usize::from(s.shamir.secret_threshold)];
    c.unseal_all(keys).expect("unseal");
    let active = c
        .wait_converged(Duration::from_secs(60))
        .expect("one active member, two unsealed standbys");
    let secs = t0.elapsed().as_secs_f64();
    let token = init.root_token;
    assert_raft_voters(c, active, &token, HOSTS.len());
    (token, secs, active)
}

/// The Raft configuration lists `n` voters, one per lab host (retry_join worked).
fn assert_raft_voters(c: &BaoCluster<'_>, via: usize, token: &str, n: usize) {
    let v = wait_for("raft voters", Duration::from_secs(30), || {
        let v = c
            .call(
                via,
                "GET",
                "sys/storage/raft/configuration",
                Some(token),
                None,
            )
            .ok()?;
        let servers = v["data"]["config"]["servers"].as_array()?.clone();
        (servers.iter().filter(|s| s["voter"] == json!(true)).count() == n).then_some(servers)
    });
    let mut ids: Vec<&str> = v.iter().filter_map(|s| s["node_id"].as_str()).collect();
    ids.sort();
    assert_eq!(ids, HOSTS, "raft peers");
}

fn kv_write(c: &BaoCluster<'_>, i: usize, token: &str, path: &str, data: Value) -> Option<Value> {
    c.call(
        i,
        "POST",
        &format!("secret/data/{path}"),
        Some(token),
        Some(&json!({ "data": data })),
    )
    .ok()
}

fn kv_read(c: &BaoCluster<'_>, i: usize, token: &str, path: &str) -> (u16, Value) {
    try_kv_read(c, i, token, path).unwrap_or_else(|e| panic!("kv read via {}: {e}", HOSTS[i]))
}

fn try_kv_read(
    c: &BaoCluster<'_>,
    i: usize,
    token: &str,
    path: &str,
) -> Result<(u16, Value), ffe_lab::vault::VaultError> {
    let r = c.request(i, "GET", &format!("secret/data/{path}"), Some(token), None)?;
    Ok((r.status, r.body["data"]["data"].clone()))
}

/// kv-v2 at `secret/`, and wait until it takes writes (a new kv-v2 mount upgrades itself first).
fn enable_kv(c: &BaoCluster<'_>, i: usize, token: &str) {
    c.call(
        i,
        "POST",
        "sys/mounts/secret",
        Some(token),
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
    )
    .expect("enable kv-v2 at secret/");
    wait_for("kv-v2 takes writes", Duration::from_secs(30), || {
        kv_write(c, i, token, "probe", json!({"n": 0}))
    });
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct FailoverMetrics {
    /// Kill -9 of the active member -> another member reports active (sys/health 200).
    active_seconds: f64,
    /// Kill -9 -> a KV write is acknowledged by the new active member.
    write_seconds: f64,
    /// sys/init + unseal of 3 members + Raft joins, over HTTP.
    init_unseal_seconds: f64,
}

fn failover_scenario() -> FailoverMetrics {
    let s = load_settings();
    let lab = lab();
    let c = cluster(&lab, &s);
    let (token, init_unseal_seconds, old) = init_unseal(&c, &s);
    enable_kv(&c, old, &token);
    kv_write(&c, old, &token, "before", json!({"v": "1"})).expect("write before the kill");
    let pid = c.pid(old).expect("active member's PID");
    let survivors: Vec<usize> = (0..HOSTS.len()).filter(|i| *i != old).collect();

    let t0 = Instant::now();
    c.kill(old).expect("kill -9 the active member");
    let new = wait_for(
        "another member reports active",
        Duration::from_secs(60),
        || c.active_among(&survivors),
    );
    let active_seconds = t0.elapsed().as_secs_f64();
    wait_for(
        "a KV write on the new active member",
        Duration::from_secs(60),
        || kv_write(&c, new, &token, "after", json!({"v": "2"})),
    );
    let write_seconds = t0.elapsed().as_secs_f64();
    assert_ne!(new, old);
    eprintln!(
        "failover: killed {} (pid {pid}, performance_multiplier {}), {} active after \
         {active_seconds:.2} s, KV write acknowledged after {write_seconds:.2} s; \
         init + unseal of 3 members took {init_unseal_seconds:.2} s",
        HOSTS[old], s.raft.performance_multiplier, HOSTS[new]
    );
    // Data written before the crash survived, through either survivor (standbys forward).
    for i in &survivors {
        let (st, d) = kv_read(&c, *i, &token, "before");
        assert_eq!((st, d), (200, json!({"v": "1"})), "read via {}", HOSTS[*i]);
    }
    // The killed member restarts sealed, rejoins after unsealing, as a standby.
    c.start(old).expect("restart the killed member");
    let h = c.health(old).expect("restarted member answers");
    assert!(
        h.initialized && h.sealed,
        "a restarted member is sealed: {h:?}"
    );
    FailoverMetrics {
        active_seconds,
        write_seconds,
        init_unseal_seconds,
    }
}

#[test]
fn active_member_killed_another_becomes_active() {
    let m = failover_scenario();
    assert!(m.active_seconds > 0.0 && m.write_seconds >= m.active_seconds);
}

/// Save a Raft snapshot, change and delete what it holds, restore it: the original is back and
/// what was written after the snapshot is gone.
#[test]
fn raft_snapshot_save_and_restore_round_trip() {
    let s = load_settings();
    let lab = lab();
    let c = cluster(&lab, &s);
    let (token, _, active) = init_unseal(&c, &s);
    enable_kv(&c, active, &token);
    let original = json!({"username": "app", "password": "before-snapshot"});
    kv_write(&c, active, &token, "production/app", original.clone()).expect("write original");

    let snap = lab.dir().join("vault.snap");
    let r = c
        .send(
            active,
            &Req {
                token: Some(&token),
                out: Some(&snap),
                timeout: Duration::from_secs(30),
                ..Req::new("GET", "sys/storage/raft/snapshot")
            },
        )
        .expect("save snapshot");
    assert_eq!(r.status, 200, "snapshot save");
    let size = std::fs::metadata(&snap).expect("snapshot file").len();
    assert!(size > 1024, "snapshot of {size} bytes");

    kv_write(
        &c,
        active,
        &token,
        "production/app",
        json!({"username": "app", "password": "changed"}),
    )
    .expect("change the secret");
    c.call(
        active,
        "DELETE",
        "secret/metadata/production/app",
        Some(&token),
        None,
    )
    .expect("delete the secret and its versions");
    kv_write(&c, active, &token, "written-after", json!({"x": "1"})).expect("later write");
    assert_eq!(kv_read(&c, active, &token, "production/app").0, 404);

    let t0 = Instant::now();
    let r = c
        .send(
            active,
            &Req {
                token: Some(&token),
                data_file: Some(&snap),
                timeout: Duration::from_secs(60),
                ..Req::new("POST", "sys/storage/raft/snapshot")
            },
        )
        .expect("restore snapshot");
    assert!(
        (200..300).contains(&r.status),
        "snapshot restore: HTTP {} {}",
        r.status,
        r.text
    );
    // The restore resets the active member's state; reads may fail briefly meanwhile.
    let back = wait_for(
        "the original secret readable after the restore",
        Duration::from_secs(60),
        || {
            let i = c.active()?;
            match try_kv_read(&c, i, &token, "production/app") {
                Ok((200, d)) => Some(d),
                _ => None,
            }
        },
    );
    assert_eq!(back, original, "restored secret");
    let i = c.active().expect("active member after the restore");
    assert_eq!(
        kv_read(&c, i, &token, "written-after").0,
        404,
        "a secret written after the snapshot survived the restore"
    );
    // Every member serves the restored data (standbys forward to the active member).
    for j in 0..HOSTS.len() {
        assert_eq!(kv_read(&c, j, &token, "production/app").1, original);
    }
    eprintln!(
        "snapshot: {size} bytes saved, restored and readable after {:.2} s",
        t0.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// Terraform: ffe_vault_init + ffe_vault_config (the workspace's provider, real terraform)
// ---------------------------------------------------------------------------------------------

const INIT: &str = "ffe_vault_init.vault";

/// A root module in a temp dir using the provider against the lab members.
struct Tf {
    dir: tempfile::TempDir,
}

impl Tf {
    /// `with_config`: also `ffe_vault_config` (kv-v2, Kubernetes auth, policy and role).
    fn new(c: &BaoCluster<'_>, s: &VaultSettings, with_config: bool) -> Tf {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ca.crt"), c.ca_cert_pem().expect("CA")).expect("ca.crt");
        let addrs: Vec<String> = c.members().iter().map(|m| m.address()).collect();
        let mut hcl = format!(
            r#"terraform {{
  required_providers {{
    ffe = {{
      source  = "three-rivers-tech/ffe"
      version = "{ver}"
    }}
  }}
}}

provider "ffe" {{}}

locals {{
  members = {addrs}
  ca      = file("${{path.root}}/ca.crt")
}}

resource "ffe_vault_init" "vault" {{
  member_addresses     = local.members
  ca_cert_pem          = local.ca
  secret_shares        = {shares}
  secret_threshold     = {threshold}
  keys_file            = "${{path.root}}/vault-init.pending.json"
  wait_timeout_seconds = 60
}}
"#,
            ver = ffe_lab::terraform::PROVIDER_VERSION,
            addrs = serde_json::to_string(&addrs).expect("addresses"),
            shares = s.shamir.secret_shares,
            threshold = s.shamir.secret_threshold,
        );
        if with_config {
            hcl.push_str(
                &r#"
resource "ffe_vault_config" "vault" {
  member_addresses = local.members
  ca_cert_pem      = local.ca
  token            = ffe_vault_init.vault.root_token
  kv_mount         = "secret"
  audit_file_path  = "{audit}"
  kubernetes_auth = {
    mount           = "kubernetes"
    kubernetes_host = "https://kubernetes.default.svc:443"
  }
  policies = {
    "ffe-backend" = <<-EOT
      path "secret/data/production/app" {
        capabilities = ["read"]
      }
    EOT
  }
  kubernetes_roles = [{
    name                  = "ffe-backend"
    service_account_names = ["ffe-backend"]
    namespaces            = ["ffe"]
    policies              = ["ffe-backend"]
    ttl                   = "1h"
  }]
}
"#
                .replace("{audit}", AUDIT_FILE_PATH),
            );
        }
        std::fs::write(dir.path().join("main.tf"), hcl).expect("main.tf");
        ffe_lab::terraform::install_provider(dir.path()).expect("install the provider");
        let tf = Tf { dir };
        let out = tf.run(&["init", "-backend=false", "-input=false"], &[]);
        assert!(out.status.success(), "terraform init: {}", text(&out));
        tf
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = ffe_lab::terraform::command(self.dir.path());
        cmd.args(args).arg("-no-color");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run terraform")
    }

    fn apply(&self, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let mut args = vec!["apply", "-auto-approve", "-input=false"];
        args.extend_from_slice(extra);
        self.run(&args, env)
    }

    /// `apply_ok` with Terraform's debug log and the provider's trace log written into `logs`
    /// (with the command's output): for the secrets-hygiene check.
    fn apply_logged(&self, extra: &[&str], logs: &Path) -> f64 {
        let tf_log = logs.join("terraform.log");
        let plugin_log = logs.join("provider.log");
        let t0 = Instant::now();
        let out = self.apply(
            extra,
            &[
                ("TF_LOG", "DEBUG"),
                ("TF_LOG_PATH", tf_log.to_str().expect("utf-8 path")),
                ("PLUGIN_LOG_FILE", plugin_log.to_str().expect("utf-8 path")),
            ],
        );
        let secs = t0.elapsed().as_secs_f64();
        std::fs::write(
            logs.join("output.txt"),
            [out.stdout.as_slice(), out.stderr.as_slice()].concat(),
        )
        .expect("write output");
        assert!(out.status.success(), "terraform apply: {}", text(&out));
        secs
    }

    fn apply_ok(&self, extra: &[&str]) -> f64 {
        let t0 = Instant::now();
        let out = self.apply(extra, &[]);
        let secs = t0.elapsed().as_secs_f64();
        assert!(out.status.success(), "terraform apply: {}", text(&out));
        secs
    }

    /// `terraform plan -detailed-exitcode`: 0 = no changes, 2 = changes.
    fn plan(&self) -> (i32, String) {
        let out = self.run(&["plan", "-detailed-exitcode", "-input=false"], &[]);
        (out.status.code().unwrap_or(-1), text(&out))
    }

    fn keys_file(&self) -> PathBuf {
        self.dir.path().join("vault-init.pending.json")
    }

    /// The attributes of `addr` in the state (`terraform show -json`), if it is there.
    fn resource(&self, addr: &str) -> Option<Value> {
        let out = self.run(&["show", "-json"], &[]);
        assert!(out.status.success(), "terraform show: {}", text(&out));
        let v: Value = serde_json::from_slice(&out.stdout).expect("show -json");
        v["values"]["root_module"]["resources"]
            .as_array()?
            .iter()
            .find(|r| r["address"] == json!(addr))
            .map(|r| r["values"].clone())
    }
}

fn text(out: &Output) -> String {
    ffe_lab::terraform::text(out)
}

/// Every member answers initialised and unsealed.
fn all_unsealed(c: &BaoCluster<'_>) -> bool {
    (0..HOSTS.len()).all(|i| c.health(i).is_some_and(|h| h.initialized && !h.sealed))
}

fn file_mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// What ffe_vault_config manages, read back through the API with the root token.
fn assert_configured(c: &BaoCluster<'_>, token: &str, terraform_token: &str) {
    let i = c.active().expect("an active member");
    let get = |path: &str| {
        c.call(i, "GET", path, Some(token), None)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    };
    let mounts = get("sys/mounts");
    assert_eq!(mounts["data"]["secret/"]["type"], json!("kv"), "secret/");
    assert_eq!(
        mounts["data"]["secret/"]["options"]["version"],
        json!("2"),
        "secret/ is kv-v2"
    );
    let auth = get("sys/auth");
    assert_eq!(auth["data"]["kubernetes/"]["type"], json!("kubernetes"));
    let kcfg = get("auth/kubernetes/config");
    assert_eq!(
        kcfg["data"]["kubernetes_host"],
        json!("https://kubernetes.default.svc:443")
    );
    let pol = get("sys/policies/acl/ffe-backend");
    let rules = pol["data"]["policy"].as_str().unwrap_or_default();
    assert!(
        rules.contains("secret/data/production/app") && rules.contains("read"),
        "policy ffe-backend: {rules}"
    );
    let role = get("auth/kubernetes/role/ffe-backend");
    let d = &role["data"];
    assert_eq!(d["bound_service_account_names"], json!(["ffe-backend"]));
    assert_eq!(d["bound_service_account_namespaces"], json!(["ffe"]));
    assert!(
        d["token_policies"]
            .as_array()
            .is_some_and(|p| p.contains(&json!("ffe-backend"))),
        "role policies: {d}"
    );
    assert_eq!(d["token_ttl"], json!(3600), "role ttl");
    let audit = get("sys/audit");
    assert_eq!(audit["data"]["file/"]["type"], json!("file"), "{audit}");
    // The token later runs use: orphan, periodic, policy ffe-terraform only.
    let look = c
        .call(
            i,
            "POST",
            "auth/token/lookup",
            Some(token),
            Some(&json!({ "token": terraform_token })),
        )
        .expect("look up terraform_token");
    let d = &look["data"];
    assert_eq!(d["orphan"], json!(true), "terraform_token orphan: {d}");
    assert!(d["period"].as_u64().unwrap_or(0) > 0, "periodic: {d}");
    let mut pols: Vec<&str> = d["policies"]
        .as_array()
        .map(|p| p.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    pols.retain(|p| *p != "default");
    assert_eq!(pols, ["ffe-terraform"], "terraform_token policies");
    assert!(
        get("sys/policies/acl/ffe-terraform")["data"]["policy"]
            .as_str()
            .is_some_and(|p| !p.is_empty()),
        "policy ffe-terraform"
    );
}

/// Secrets hygiene (issue 17): none of `secrets` in Terraform's debug log, the provider's trace
/// log or the apply's output written by `Tf::apply_logged` into `dir`. Returns the bytes read.
fn assert_no_secret_logged(dir: &Path, secrets: &[String]) -> usize {
    let mut scanned = 0;
    for f in ["terraform.log", "provider.log", "output.txt"] {
        let body = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        assert!(!body.is_empty(), "{f} is empty: nothing was logged");
        scanned += body.len();
        for s in secrets {
            assert!(
                !body.contains(s.as_str()),
                "a Vault secret ({}…) is in {f}",
                &s[..6]
            );
        }
    }
    scanned
}

/// Apply (init + unseal timed) -> configured; re-apply is a no-op; a restarted (sealed) member
/// shows in the next plan and the apply unseals it. Returns the init + unseal seconds.
fn terraform_scenario() -> f64 {
    let s = load_settings();
    let lab = lab();
    let c = cluster(&lab, &s);
    let tf = Tf::new(&c, &s, true);

    // Init + unseal alone (terraform's own start-up included, with debug logging for the
    // secrets check below), then the configuration.
    let logs = tempfile::tempdir().expect("log dir");
    let init_unseal_seconds = tf.apply_logged(&[&format!("-target={INIT}")], logs.path());
    assert!(all_unsealed(&c), "after apply: {}", c.logs(10));
    c.wait_converged(Duration::from_secs(30))
        .expect("one active member");
    let init = tf.resource(INIT).expect("ffe_vault_init in the state");
    assert_eq!(init["initialized"], json!(true));
    assert_eq!(
        init["unseal_keys"].as_array().map(Vec::len),
        Some(usize::from(s.shamir.secret_shares))
    );
    let root = init["root_token"].as_str().expect("root_token").to_string();
    // Secrets hygiene (issue 17): no unseal key and not the root token in Terraform's debug log,
    // the provider's trace log or the apply's output.
    let mut secrets: Vec<String> = init["unseal_keys"]
        .as_array()
        .expect("unseal_keys")
        .iter()
        .map(|k| k.as_str().expect("key").to_string())
        .collect();
    secrets.push(root.clone());
    let scanned = assert_no_secret_logged(logs.path(), &secrets);
    eprintln!(
        "secrets hygiene: {} Vault secrets searched in {scanned} bytes of the init apply's logs and output",
        secrets.len()
    );
    // The keys file stays until a later read sees the state holding the same token.
    let kf = tf.keys_file();
    assert!(kf.exists(), "keys_file kept until the state is known saved");
    assert_eq!(file_mode(&kf), 0o600);
    // The configuration apply uses the root token: logged and searched as well (below).
    let config_logs = tempfile::tempdir().expect("log dir");
    let all_seconds = tf.apply_logged(&[], config_logs.path());
    assert!(
        !kf.exists(),
        "keys_file deleted once the state holds the keys"
    );
    let cfg = tf
        .resource("ffe_vault_config.vault")
        .expect("ffe_vault_config in the state");
    let tt = cfg["terraform_token"]
        .as_str()
        .expect("terraform_token")
        .to_string();
    assert_ne!(tt, root);
    secrets.push(tt.clone());
    let scanned = assert_no_secret_logged(config_logs.path(), &secrets);
    eprintln!(
        "secrets hygiene: {} Vault secrets searched in {scanned} bytes of the configuration apply's logs and output",
        secrets.len()
    );
    assert_configured(&c, &root, &tt);
    assert_raft_voters(&c, c.active().expect("active"), &root, HOSTS.len());

    let (code, out) = tf.plan();
    assert_eq!(code, 0, "a converged cluster plans no changes: {out}");
    let out = tf.apply(&[], &[]);
    assert!(
        out.status.success() && text(&out).contains("0 added, 0 changed, 0 destroyed"),
        "a re-apply changes nothing: {}",
        text(&out)
    );

    // One member restarts: it comes back sealed; the plan shows it; apply unseals it.
    let standby = (0..HOSTS.len())
        .find(|i| Some(*i) != c.active())
        .expect("a standby");
    c.kill(standby).expect("kill a standby");
    c.start(standby).expect("restart it");
    assert!(
        c.health(standby).is_some_and(|h| h.sealed),
        "restarted sealed"
    );
    let (code, out) = tf.plan();
    assert_eq!(code, 2, "a sealed member must show in the plan: {out}");
    assert!(out.contains("sealed_members"), "plan: {out}");
    tf.apply_ok(&[]);
    assert!(
        c.health(standby).is_some_and(|h| !h.sealed),
        "apply unsealed {}",
        HOSTS[standby]
    );
    c.wait_converged(Duration::from_secs(30))
        .expect("converged after the unseal");
    let (code, out) = tf.plan();
    assert_eq!(code, 0, "after the unseal the plan is empty: {out}");
    eprintln!(
        "terraform: init + unseal of 3 members by `terraform apply -target={INIT}` in {init_unseal_seconds:.2} s; the configuration apply took {all_seconds:.2} s"
    );
    init_unseal_seconds
}

#[test]
fn terraform_initialises_configures_and_unseals_restarted_members() {
    let secs = terraform_scenario();
    assert!(secs > 0.0);
}

/// The provider aborts right after writing keys_file (FFE_TEST_ABORT_AFTER_VAULT_INIT=1): the
/// apply fails, the keys are on disk (0600), and the next apply adopts them without
/// re-initialising; a later plan deletes the file.
#[test]
fn interrupted_init_keeps_the_keys_and_the_next_apply_adopts_them() {
    let s = load_settings();
    let lab = lab();
    let c = cluster(&lab, &s);
    let tf = Tf::new(&c, &s, false);
    let out = tf.apply(&[], &[("FFE_TEST_ABORT_AFTER_VAULT_INIT", "1")]);
    assert!(!out.status.success(), "the aborted apply must fail");
    let kf = tf.keys_file();
    assert!(kf.exists(), "keys_file after the abort: {}", text(&out));
    assert_eq!(file_mode(&kf), 0o600, "keys_file mode");
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(&kf).expect("read keys_file")).expect("json");
    let file_token = file["root_token"].as_str().expect("root_token").to_string();
    assert!(c.health(0).is_some_and(|h| h.initialized), "initialised");
    assert!(
        tf.resource(INIT)
            .is_none_or(|r| r["root_token"] != json!(file_token)),
        "the aborted apply recorded the keys"
    );

    tf.apply_ok(&[]);
    let init = tf.resource(INIT).expect("ffe_vault_init in the state");
    assert_eq!(
        init["root_token"],
        json!(file_token),
        "adopted, not re-initialised"
    );
    assert_eq!(init["unseal_keys"], file["keys_base64"]);
    assert!(all_unsealed(&c), "every member unsealed: {}", c.logs(10));
    let i = c.wait_converged(Duration::from_secs(30)).expect("active");
    c.call(i, "GET", "auth/token/lookup-self", Some(&file_token), None)
        .expect("the file's root token is the cluster's");
    let (code, out) = tf.plan();
    assert_eq!(code, 0, "after adopting, no changes: {out}");
    assert!(!kf.exists(), "the plan's refresh deletes keys_file");
}

/// A cluster initialised outside Terraform and no keys_file: the apply fails with the
/// "initialised outside Terraform" message and nothing is re-initialised.
#[test]
fn cluster_initialised_outside_terraform_is_refused() {
    let s = load_settings();
    let lab = lab();
    let c = cluster(&lab, &s);
    let (token, _, active) = init_unseal(&c, &s);
    let tf = Tf::new(&c, &s, false);
    let out = tf.apply(&[], &[]);
    let t = text(&out);
    assert!(!out.status.success(), "apply must fail: {t}");
    assert!(
        t.contains("initialised outside Terraform") && t.contains("ffe never re-initialises"),
        "error: {t}"
    );
    assert!(!tf.keys_file().exists(), "no keys_file written");
    assert!(tf.resource(INIT).is_none(), "nothing recorded");
    c.call(active, "GET", "auth/token/lookup-self", Some(&token), None)
        .expect("the original root token still valid: not re-initialised");
}

// ---------------------------------------------------------------------------------------------
// Benchmark
// ---------------------------------------------------------------------------------------------

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `bench/vault`: failover runs (and the Terraform init + unseal), as JSON.
#[test]
#[ignore = "benchmark: run by bench/vault"]
fn bench_vault() {
    let runs: usize = std::env::var("FFE_VAULT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let s = load_settings();
    let m: Vec<FailoverMetrics> = (0..runs).map(|_| failover_scenario()).collect();
    let fo: Vec<f64> = m.iter().map(|x| r2(x.active_seconds)).collect();
    let wr: Vec<f64> = m.iter().map(|x| r2(x.write_seconds)).collect();
    let http_init: Vec<f64> = m.iter().map(|x| r2(x.init_unseal_seconds)).collect();
    let tf_init = r2(terraform_scenario());
    let out = json!({
        "failover_seconds": fo,
        "median": r2(median(fo.clone())),
        "max": fo.iter().copied().fold(0.0, f64::max),
        "write_resumes_seconds": wr,
        "write_resumes_median": r2(median(wr.clone())),
        "init_unseal_seconds": tf_init,
        "init_unseal_http_seconds": http_init,
        "runs": runs,
        "members": HOSTS.len(),
        "engine": format!("OpenBao {}", bao_version()),
        "settings": {
            "performance_multiplier": s.raft.performance_multiplier,
            "secret_shares": s.shamir.secret_shares,
            "secret_threshold": s.shamir.secret_threshold,
        },
    });
    println!("BENCH_JSON {out}");
}

fn bao_version() -> String {
    let bin = ffe_lab::vault::bao_binary().expect("bao");
    let out: Output = Command::new(bin)
        .arg("version")
        .output()
        .expect("bao version");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap_or("?")
        .to_string()
}

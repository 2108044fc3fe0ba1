//! The operator's path as a test (issue 12): the commands `docs/deploy.md` shows, run in order as
//! an operator runs them, against the lab (3 masters + 2 workers, sshd on a non-default port), from
//! the directories the docs say, with `terraform.tfvars` edited the way the docs say.
//!
//! Commands are the fenced blocks whose info string carries `ffe-walk:<id>` (```` ```bash
//! ffe-walk:plan ````). Every marked block must be known to [`STEPS`], so a command added to the
//! docs without being walked fails here. `<placeholders>` are filled with the lab's values; one
//! the walk does not know fails the test.
//!
//! Stand-ins and limits, named:
//! - k3s is the lab's **stand-in** (`ffe-lab`), installed through the air-gap path; the lab's own
//!   settings (listed in [`LAB_ADJUSTMENTS`]) are added to the operator's tfvars;
//! - commands that need a live Kubernetes API server (`kubectl`, `helm`) cannot run here; the
//!   blocks holding them are listed in [`STEPS`] with the reason, their other lines still run,
//!   and the test prints what it did not run;
//! - `make` targets run in the repository under test (building in a copy would rebuild the whole
//!   workspace); everything else runs in a private copy of the environment.
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{master, repo_root, worker, Env};

/// What the walk does with each marked block of docs/deploy.md, in the docs' order.
enum Step {
    /// Run the block in bash.
    Run,
    /// Apply the block's `key = value` lines to terraform.tfvars (the operator's edit).
    EditTfvars,
    /// Lines starting with one of these commands need a live cluster and are not run.
    NeedsCluster(&'static [&'static str], &'static str),
    /// The whole block needs a live cluster (or is a file): not run, listed with the reason.
    Skip(&'static str),
    /// `ffe-ha preflight` on the lab: every node must be reached and checked; the seed's hardware
    /// minimums may fail (lab hosts share this machine's vCPUs), nothing else may.
    Preflight,
}

const STEPS: &[(&str, Step)] = &[
    ("provider", Step::Run),
    ("copy-example", Step::Run),
    ("tfvars", Step::EditTfvars),
    ("host-keys", Step::Run),
    ("plan", Step::Run),
    ("preflight", Step::Preflight),
    ("apply", Step::Run),
    (
        "kubectl",
        Step::NeedsCluster(
            &["kubectl"],
            "needs a Kubernetes API server (k3s is a stand-in in the lab)",
        ),
    ),
    ("dns", Step::Run),
    ("replan", Step::Run),
    (
        "verify",
        Step::Skip("needs the Kubernetes API and the engines; crates/ffe-ha/tests/lab_verify.rs runs `ffe-ha verify` against real etcd, Patroni, PgBouncer and OpenBao with the API stand-in"),
    ),
];

/// docs/app.md, walked after the deploy runbook on the same cluster. Its Helm commands are
/// rendered and compared by ffe-validate's `app_runbook` test; here only the Terraform path runs.
const HELM_CLI: &str =
    "needs a Kubernetes API server; rendered by ffe-validate tests/app_runbook.rs";
const APP_STEPS: &[(&str, Step)] = &[
    (
        "file=ffe-values.yaml",
        Step::Skip("the Helm CLI's values file; rendered by ffe-validate tests/app_runbook.rs"),
    ),
    ("app-secrets", Step::Skip(HELM_CLI)),
    ("app-db-netpol", Step::Skip(HELM_CLI)),
    ("app-install", Step::Skip(HELM_CLI)),
    ("app-migrate-secret", Step::Skip(HELM_CLI)),
    ("app-upgrade", Step::Skip(HELM_CLI)),
    ("app-scale", Step::Skip(HELM_CLI)),
    ("app-rollback", Step::Skip(HELM_CLI)),
    ("app-down", Step::Skip(HELM_CLI)),
    ("app-chart", Step::Run),
    ("app-tfvars", Step::EditTfvars),
    ("app-terraform", Step::Run),
];

const SSH_PORT: u16 = 2222;

/// Settings the lab needs on top of the operator's edit, with the reason for each.
const LAB_ADJUSTMENTS: &[(&str, &str)] = &[
    (
        "kubernetes_version",
        "the k3s stand-in reports v1.33.5+k3s1 (the docs' v1.36 is planned by test-terraform)",
    ),
    (
        "install_mode",
        "no internet in the lab: the stand-in is installed as the air-gap k3s binary and installer",
    ),
    (
        "host_kernel_modules",
        "the lab's hosts share one kernel: br_netfilter is not loaded per host",
    ),
    (
        "host_sysctls",
        "the lab's hosts share one kernel: only namespaced sysctls can be set",
    ),
    (
        "nfs_server",
        "no NFS server in the lab: the backup share is a bind mount (removed)",
    ),
    (
        "vault_cluster_ips",
        "the k3s stand-in runs no pods, so no Vault member would answer ffe_vault_init: set to [] \
         (the Vault layer is proven on real OpenBao by ffe-lab's vault_ha tests)",
    ),
    (
        "nfs_export",
        "no NFS server in the lab: the backup share is a bind mount (removed)",
    ),
];

#[derive(Debug)]
struct Block {
    id: String,
    body: String,
}

/// Fenced blocks whose info string has an `ffe-walk:<id>` word, in document order. Blocks may be
/// indented (inside list items): the fence's indentation is removed from every line.
fn marked_blocks(md: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = md.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let Some(info) = trimmed.strip_prefix("```") else {
            continue;
        };
        let indent = line.len() - trimmed.len();
        let id = info
            .split_whitespace()
            .find_map(|w| w.strip_prefix("ffe-walk:"))
            .map(str::to_string);
        let mut body = String::new();
        for l in lines.by_ref() {
            if l.trim_start().starts_with("```") {
                break;
            }
            body.push_str(l.get(indent..).unwrap_or(l.trim_start()));
            body.push('\n');
        }
        if let Some(id) = id {
            blocks.push(Block { id, body });
        }
    }
    blocks
}

/// Replaces every `<placeholder>` with the lab's value; `<free IP>` takes the next unused address.
struct Placeholders {
    values: Vec<(String, String)>,
    free_ips: Vec<String>,
}

impl Placeholders {
    fn fill(&mut self, body: &str) -> String {
        let mut out = body.to_string();
        for (k, v) in &self.values {
            out = out.replace(&format!("<{k}>"), v);
        }
        while let Some(at) = out.find("<free IP>") {
            let ip = self.free_ips.remove(0);
            out.replace_range(at..at + "<free IP>".len(), &ip);
        }
        let unknown: Vec<&str> = out
            .split('<')
            .skip(1)
            .filter_map(|s| s.split_once('>').map(|(p, _)| p))
            .filter(|p| p.chars().next().is_some_and(char::is_alphabetic) && !p.contains('/'))
            .collect();
        assert!(
            unknown.is_empty(),
            "the docs use placeholders the walk does not know: {unknown:?}\n{out}"
        );
        out
    }
}

/// Sets `key = value` in tfvars text as an operator edits it: the first line assigning `key`
/// (commented out or not) is replaced, otherwise the line is appended.
fn set_tfvars_line(tfvars: &str, line: &str) -> String {
    let key = line.split('=').next().unwrap_or("").trim();
    let assigns = |l: &str| {
        let l = l.trim_start().trim_start_matches('#').trim_start();
        l.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    };
    let mut replaced = false;
    let mut out: Vec<String> = Vec::new();
    for l in tfvars.lines() {
        if !replaced && assigns(l) {
            out.push(line.to_string());
            replaced = true;
        } else {
            out.push(l.to_string());
        }
    }
    if !replaced {
        out.push(line.to_string());
    }
    out.join("\n") + "\n"
}

fn remove_tfvars_key(tfvars: &str, key: &str) -> String {
    tfvars
        .lines()
        .filter(|l| {
            !l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// One operator shell: the working directory and exported variables carry from block to block.
struct Session {
    cwd: PathBuf,
    state: tempfile::TempDir,
    repo: PathBuf,
}

impl Session {
    fn run(&mut self, id: &str, script: &str) -> String {
        let (code, shown) = self.run_status(id, script);
        assert_eq!(
            code,
            Some(0),
            "docs/deploy.md block ffe-walk:{id} failed (exit {code:?}) in {}:\n{script}\n--- output ---\n{shown}",
            self.cwd.display()
        );
        shown
    }

    /// Run a block; its exit code and output (the working directory carries on either way).
    fn run_status(&mut self, id: &str, script: &str) -> (Option<i32>, String) {
        let env_file = self.state.path().join("env");
        let cwd_file = self.state.path().join("cwd");
        let wrapped = format!(
            "set -euo pipefail\ncd '{cwd}'\n[ -f '{env}' ] && . '{env}'\n\
             make() {{ command make -C '{repo}' \"$@\"; }}\n{script}\npwd > '{cwdf}'\nexport -p > '{env}'\n",
            cwd = self.cwd.display(),
            env = env_file.display(),
            repo = self.repo.display(),
            cwdf = cwd_file.display(),
        );
        // PATH as the test got it: the docs' own `export PATH=...` must bring Helm and kubectl.
        let out = Command::new("bash")
            .arg("-c")
            .arg(&wrapped)
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .env("NO_COLOR", "1")
            .output()
            .expect("run bash");
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if let Ok(cwd) = std::fs::read_to_string(&cwd_file) {
            self.cwd = PathBuf::from(cwd.trim());
        } else {
            assert!(
                !out.status.success(),
                "ffe-walk:{id}: the block ran but left no working directory"
            );
        }
        (out.status.code(), shown)
    }
}

fn known_host_keys(path: &Path) -> Vec<String> {
    let mut keys: Vec<String> = std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    keys.sort();
    keys
}

#[test]
fn marked_blocks_and_tfvars_edits_parse_as_an_operator_reads_them() {
    let md = "1. Step\n\n   ```bash ffe-walk:one\n   cd a\n   echo b\n   ```\n\n```bash\nnot marked\n```\n```hcl ffe-walk:two\nx = 1\n```\n";
    let blocks = marked_blocks(md);
    assert_eq!(blocks.len(), 2);
    assert_eq!(
        (blocks[0].id.as_str(), blocks[0].body.as_str()),
        ("one", "cd a\necho b\n")
    );
    assert_eq!(
        (blocks[1].id.as_str(), blocks[1].body.as_str()),
        ("two", "x = 1\n")
    );
    let tf = "a = 1\n# ssh_port = 22 # comment\nssh_portx = 3\n";
    assert_eq!(
        set_tfvars_line(tf, "ssh_port = 2222"),
        "a = 1\nssh_port = 2222\nssh_portx = 3\n"
    );
    assert_eq!(set_tfvars_line("a = 1\n", "b = 2"), "a = 1\nb = 2\n");
    assert_eq!(remove_tfvars_key("a = 1\nab = 2\n", "a"), "ab = 2\n");
}

#[test]
fn every_marked_command_of_the_deploy_runbook_runs_on_the_lab() {
    let repo = repo_root().canonicalize().expect("repo root");
    let walked = |doc: &str, steps: &[(&str, Step)]| {
        let md = std::fs::read_to_string(repo.join(doc)).expect("read the runbook");
        let blocks = marked_blocks(&md);
        let ids: Vec<&str> = blocks.iter().map(|b| b.id.as_str()).collect();
        let known: Vec<&str> = steps.iter().map(|(id, _)| *id).collect();
        assert_eq!(
            ids, known,
            "{doc}'s marked commands changed: teach the walk each new block (docs_walk.rs)"
        );
        blocks
    };
    let deploy_blocks = walked("docs/deploy.md", STEPS);
    let app_blocks = walked("docs/app.md", APP_STEPS);

    let env = Env::without_provider(3, 2, SSH_PORT);
    let env_dir = env.env_dir();
    // The docs' `make provider-install` installs into the repository's environment; the copy uses
    // that installation, as the operator's checkout would.
    std::os::unix::fs::symlink(
        repo.join("terraform/environments/ha/terraform.d"),
        env_dir.join("terraform.d"),
    )
    .expect("link terraform.d");
    // Likewise `make app-chart` packages the chart into the repository's environment.
    std::fs::create_dir_all(repo.join("terraform/environments/ha/charts")).expect("charts dir");
    std::os::unix::fs::symlink(
        repo.join("terraform/environments/ha/charts"),
        env_dir.join("charts"),
    )
    .expect("link charts");
    // `make tools` installs into the repository's tools/, which the docs then put on PATH.
    std::os::unix::fs::symlink(repo.join("tools"), env.dir.path().join("tools"))
        .expect("link tools");

    let gw = env.lab.gateway().octets();
    let standin = ffe_lab::standin_binary()
        .expect("build ffe-lab's k3s-standin first (cargo build -p ffe-lab --bins)");
    let mut values = vec![
        ("cluster name".to_string(), "lab".to_string()),
        (
            "node network CIDR".into(),
            format!("{}.{}.{}.0/24", gw[0], gw[1], gw[2]),
        ),
        ("free IP for the API".into(), env.free_ip(200)),
        ("free IP for the edge".into(), env.free_ip(201)),
        ("free IP reserved for Postgres".into(), env.free_ip(202)),
        (
            "your app's host name".into(),
            "trading.lab.example.org".into(),
        ),
        (
            "your API host name".into(),
            "api.trading.lab.example.org".into(),
        ),
        ("your e-mail".into(), "ops@lab.example.org".into()),
        ("SSH user".into(), "root".into()),
        ("SSH port".into(), SSH_PORT.to_string()),
        (
            "path to the SSH private key".into(),
            env.lab.client_key().display().to_string(),
        ),
        ("NFS server IP".into(), env.free_ip(210)),
        ("NFS export path".into(), "/export/ffe-backups".into()),
        ("version".into(), "1.4.2".into()),
    ];
    for i in 0..3 {
        values.push((format!("master {} IP", i + 1), env.ip(&master(i))));
    }
    for i in 0..2 {
        values.push((format!("worker {} IP", i + 1), env.ip(&worker(i))));
    }
    let mut placeholders = Placeholders {
        values,
        free_ips: (203..=205).map(|i| env.free_ip(i)).collect(),
    };

    let mut session = Session {
        cwd: env.dir.path().to_path_buf(),
        state: tempfile::tempdir().expect("state dir"),
        repo: repo.clone(),
    };
    let mut not_run: Vec<String> = Vec::new();
    let deploy = deploy_blocks.iter().zip(STEPS);
    // docs/app.md runs "from the repository root": a fresh shell there.
    let app = app_blocks.iter().zip(APP_STEPS);
    let app_start = deploy_blocks.len();
    for (n, (block, (_, step))) in deploy.chain(app).enumerate() {
        if n == app_start {
            session.cwd = env.dir.path().to_path_buf();
        }
        if let Step::Skip(why) = step {
            not_run.push(format!("ffe-walk:{}: whole block ({why})", block.id));
            continue;
        }
        let body = placeholders.fill(&block.body);
        match step {
            Step::Run => {
                session.run(&block.id, &body);
            }
            Step::EditTfvars => {
                let path = session.cwd.join("terraform.tfvars");
                let mut tfvars = std::fs::read_to_string(&path)
                    .expect("the docs copy the example to terraform.tfvars before the edit");
                for line in body.lines().filter(|l| l.contains('=')) {
                    tfvars = set_tfvars_line(&tfvars, line);
                }
                if block.id != "tfvars" {
                    std::fs::write(&path, tfvars).expect("write terraform.tfvars");
                    check_after(&block.id, &env, &session);
                    continue;
                }
                let lab_lines = [
                    "kubernetes_version = \"v1.33\"".to_string(),
                    "install_mode = \"airgap\"".into(),
                    format!("airgap_k3s_binary_path = \"{}\"", standin.display()),
                    format!(
                        "airgap_installer_path = \"{}\"",
                        ffe_lab::standin_installer().display()
                    ),
                    format!(
                        "airgap_images_path = \"{}\"",
                        env.images_tarball().display()
                    ),
                    "host_kernel_modules = [\"overlay\"]".into(),
                    "host_sysctls = { \"net.ipv4.ip_forward\" = \"1\" }".into(),
                    "vault_cluster_ips = []".into(),
                ];
                for line in &lab_lines {
                    tfvars = set_tfvars_line(&tfvars, line);
                }
                tfvars = remove_tfvars_key(&remove_tfvars_key(&tfvars, "nfs_server"), "nfs_export");
                std::fs::write(&path, tfvars).expect("write terraform.tfvars");
            }
            Step::NeedsCluster(commands, why) => {
                let (skipped, kept): (Vec<&str>, Vec<&str>) = body
                    .lines()
                    .partition(|l| commands.iter().any(|c| l.trim_start().starts_with(c)));
                for l in skipped {
                    not_run.push(format!("ffe-walk:{}: `{l}` ({why})", block.id));
                }
                session.run(&block.id, &kept.join("\n"));
            }
            Step::Preflight => {
                // `set -e` stops the block at ffe-ha's exit 1 (the seed's hardware minimums on
                // lab hosts): the table it printed is what the walk checks.
                let (code, shown) = session.run_status(&block.id, &body);
                check_preflight(&shown, code, &mut not_run);
            }
            Step::Skip(_) => unreachable!("skipped above"),
        }
        check_after(&block.id, &env, &session);
    }
    eprintln!(
        "docs walk: ran every marked command of docs/deploy.md and docs/app.md except:\n  {}\nlab adjustments:\n  {}",
        not_run.join("\n  "),
        LAB_ADJUSTMENTS
            .iter()
            .map(|(k, why)| format!("{k}: {why}"))
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    env.assert_no_k3s_warnings();
}

/// What an operator would check by eye after some steps.
/// The preflight table as the operator sees it: every lab node reached; only the seed's hardware
/// minimums may fail on lab hosts (they share this machine's vCPUs and memory).
fn check_preflight(shown: &str, code: Option<i32>, not_run: &mut Vec<String>) {
    let rows: Vec<Vec<&str>> = shown
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.len() >= 3 && ["pass", "warn", "fail", "error"].contains(&w[2]))
        .collect();
    let reached: Vec<&str> = rows
        .iter()
        .filter(|w| w[0] == "ssh.reachable" && w[2] == "pass")
        .map(|w| w[1])
        .collect();
    let mut expected: Vec<String> = (0..3).map(master).chain((0..2).map(worker)).collect();
    expected.sort();
    let mut reached_sorted: Vec<String> = reached.iter().map(|s| s.to_string()).collect();
    reached_sorted.sort();
    assert_eq!(
        reached_sorted, expected,
        "preflight did not reach every node:\n{shown}"
    );
    for w in rows.iter().filter(|w| w[2] == "fail" || w[2] == "error") {
        assert!(
            ["cpu.min", "memory.min", "disk.total"].contains(&w[0]),
            "preflight failed on the lab beyond the hardware minimums:\n{shown}"
        );
        not_run.push(format!(
            "ffe-walk:preflight: `{} {}` fails on the lab (hosts share this machine's vCPUs and memory); exit {code:?}",
            w[0], w[1]
        ));
    }
    assert!(
        code == Some(0) || code == Some(1),
        "preflight exit {code:?}:\n{shown}"
    );
    for id in [
        "ports.free",
        "backup.mount",
        "backup.shared",
        "clock.sync",
        "net.rtt",
    ] {
        assert_eq!(
            rows.iter().filter(|w| w[0] == id && w[2] == "pass").count(),
            5,
            "{id} did not pass on all 5 nodes:\n{shown}"
        );
    }
}

fn check_after(id: &str, env: &Env, session: &Session) {
    match id {
        "host-keys" => {
            // The docs' fingerprint comparison: the scanned keys are exactly the hosts' keys,
            // written as [IP]:port for the non-default port.
            let scanned = known_host_keys(&session.cwd.join("known_hosts"));
            let real = known_host_keys(&env.lab.known_hosts());
            assert_eq!(
                scanned, real,
                "ssh-keyscan as documented did not record the hosts' keys"
            );
            assert!(scanned.iter().all(|l| l.starts_with('[')), "{scanned:?}");
        }
        "kubectl" => {
            let out = Command::new("terraform")
                .args(["output", "-raw", "kubeconfig_path"])
                .current_dir(&session.cwd)
                .env("TF_CLI_CONFIG_FILE", "/dev/null")
                .output()
                .expect("terraform output");
            let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).to_string());
            assert!(
                path.is_absolute(),
                "kubeconfig_path {path:?} is not absolute"
            );
            let meta = std::fs::metadata(&path).expect("the kubeconfig exists");
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
            let kubeconfig = std::fs::read_to_string(&path).expect("read kubeconfig");
            let server = format!("https://{}:6443", env.free_ip(200));
            assert!(
                kubeconfig.contains(&server),
                "kubeconfig does not use api_vip {server}"
            );
        }
        "app-terraform" => {
            // The app bundle reached every server with the docs' image tag, and its route serves
            // exactly the operator's domain_names (not the seed's names of values-production.yaml).
            for i in 0..3 {
                let dir = env
                    .lab
                    .host(&master(i))
                    .expect("master")
                    .root_dir
                    .join("var/lib/rancher/k3s/server/manifests");
                let app = dir.join("ffe-app--helmchart.yaml");
                let text = std::fs::read_to_string(&app).unwrap_or_else(|e| {
                    panic!("{}: no app bundle {}: {e}", master(i), app.display())
                });
                let chart: serde_yaml_ng::Value =
                    serde_yaml_ng::from_str(&text).expect("HelmChart YAML");
                assert_eq!(
                    chart["spec"]["set"]["image.tag"].as_str(),
                    Some("1.4.2"),
                    "{}: the docs' image tag is not in the HelmChart:\n{text}",
                    master(i)
                );
                let values: serde_yaml_ng::Value = serde_yaml_ng::from_str(
                    chart["spec"]["valuesContent"]
                        .as_str()
                        .expect("valuesContent"),
                )
                .expect("values YAML");
                let hostnames: Vec<&str> = values["httpRoute"]["hostnames"]
                    .as_sequence()
                    .expect("httpRoute.hostnames")
                    .iter()
                    .filter_map(|v| v.as_str())
                    .collect();
                assert_eq!(
                    hostnames,
                    ["trading.lab.example.org", "api.trading.lab.example.org"],
                    "{}: the route must serve the operator's domain_names",
                    master(i)
                );
                assert!(
                    chart["spec"]["set"]
                        .as_mapping()
                        .is_some_and(|m| !m.keys().any(|k| k.as_str().is_some_and(|k| k.starts_with("httpRoute")))),
                    "host names must not travel as --set list indices (Helm keeps the file's others)"
                );
            }
        }
        "apply" => {
            let nodes = env
                .lab
                .standin_cluster()
                .expect("stand-in state")
                .map(|c| c.nodes.len())
                .unwrap_or(0);
            assert_eq!(nodes, 5, "3 masters + 2 workers must have joined");
        }
        _ => {}
    }
}

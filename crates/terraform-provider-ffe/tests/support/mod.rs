//! Drives the real `ha` environment with the real `terraform` binary against ffe-lab hosts.
//!
//! Nodes are network namespaces with real OpenSSH servers; k3s itself is the lab's **stand-in**
//! (k3s cannot be obtained here), so these tests prove ordering, content and idempotency of what
//! the provider asks a node to do, never k3s's own behaviour.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ffe_lab::lab::{Lab, LabSpec};
use ffe_lab::standin::StandinRecord;
/// stdout + stderr with whitespace runs collapsed (Terraform wraps diagnostics).
pub use ffe_lab::terraform::text;

pub const CLUSTER: &str = "lab";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn master(i: usize) -> String {
    format!("{CLUSTER}-master-{i}")
}

pub fn worker(i: usize) -> String {
    format!("{CLUSTER}-worker-{i}")
}

/// A lab with `masters` + `workers` hosts and a private copy of the `ha` environment.
pub struct Env {
    pub lab: Lab,
    pub dir: tempfile::TempDir,
    pub masters: usize,
}

fn copy_env(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tf") || name == "terraform.tfvars.example" {
            std::fs::copy(entry.path(), dst.join(&name)).unwrap();
        }
    }
}

impl Env {
    pub fn new(masters: usize, workers: usize) -> Env {
        let e = Env::without_provider(masters, workers, 22);
        let plugin = e.env_dir().join(format!(
            "terraform.d/plugins/registry.terraform.io/three-rivers-tech/ffe/0.1.0/{}",
            ffe_lab::terraform::platform().expect("terraform version -json")
        ));
        std::fs::create_dir_all(&plugin).unwrap();
        std::fs::copy(
            env!("CARGO_BIN_EXE_terraform-provider-ffe"),
            plugin.join("terraform-provider-ffe_v0.1.0"),
        )
        .unwrap();
        let out = e.terraform(&["init", "-backend=false", "-input=false"]);
        assert!(
            out.status.success(),
            "terraform init failed:\n{}",
            text(&out)
        );
        e
    }

    /// The lab (sshd on `ssh_port`) and a private copy of the environment, with no provider
    /// installed and no `terraform init` run: for tests that do those steps themselves.
    pub fn without_provider(masters: usize, workers: usize, ssh_port: u16) -> Env {
        let mut hosts: Vec<String> = (0..masters).map(master).collect();
        hosts.extend((0..workers).map(worker));
        let lab = Lab::create(LabSpec {
            hosts,
            backup_mount: "/mnt/backups".into(),
            ssh_port,
        })
        .expect("lab");
        let dir = tempfile::tempdir().unwrap();
        let root = repo_root();
        let env = dir.path().join("terraform/environments/ha");
        copy_env(&root.join("terraform/environments/ha"), &env);
        // Module and rule paths are relative to the environment: mirror the repository layout.
        std::os::unix::fs::symlink(
            root.join("terraform/modules"),
            dir.path().join("terraform/modules"),
        )
        .unwrap();
        for d in ["monitoring", "helm"] {
            std::os::unix::fs::symlink(root.join(d), dir.path().join(d)).unwrap();
        }
        Env { lab, dir, masters }
    }

    pub fn env_dir(&self) -> PathBuf {
        self.dir.path().join("terraform/environments/ha")
    }

    pub fn ip(&self, host: &str) -> String {
        self.lab.host(host).expect("host").ip.to_string()
    }

    /// An address in the lab's /24 that no host uses.
    pub fn free_ip(&self, last: u8) -> String {
        let gw = self.lab.gateway().octets();
        format!("{}.{}.{}.{last}", gw[0], gw[1], gw[2])
    }

    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.path().join("kubeconfig-lab.yaml")
    }

    /// A small images tarball for air-gap mode (the stand-in loads no images; the provider
    /// uploads it like the real one).
    pub fn images_tarball(&self) -> PathBuf {
        let p = self.dir.path().join("k3s-airgap-images-amd64.tar");
        if !p.exists() {
            let st = Command::new("tar")
                .args(["cf"])
                .arg(&p)
                .args(["-C", "/etc", "hostname"])
                .status()
                .unwrap();
            assert!(st.success());
        }
        p
    }

    /// Write terraform.tfvars for `workers` workers, plus `extra` HCL lines.
    pub fn tfvars(&self, workers: usize, extra: &str) {
        self.tfvars_sized(self.masters, workers, extra)
    }

    /// Like [`tfvars`](Self::tfvars) with `masters` of the lab's masters in use.
    pub fn tfvars_sized(&self, masters: usize, workers: usize, extra: &str) {
        let standin = ffe_lab::standin_binary()
            .expect("build ffe-lab's k3s-standin first (cargo build -p ffe-lab --bins)");
        let quoted = |v: Vec<String>| {
            v.iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let master_ips = quoted((0..masters).map(|i| self.ip(&master(i))).collect());
        let workers_ips = quoted((0..workers).map(|i| self.ip(&worker(i))).collect());
        let gw = self.lab.gateway().octets();
        let tfvars = format!(
            r#"environment = "production"
cluster_name = "{CLUSTER}"
cluster_size = "ha"
master_count = {m}
worker_count = {workers}
worker_count_max = 20
kubernetes_version = "v1.33"
postgres_version = "16"
vault_version = "1.21"
domain_names = ["ffe.lab.example.com"]
acme_email = "ops@lab.example.com"
network_cidr = "{a}.{b}.{c}.0/24"
master_ips = [{master_ips}]
worker_ips = [{workers_ips}]
postgres_replicas = 1
postgres_primary_ip = "{vip_pg}"
# No Vault layer here: the k3s stand-in runs no pods, so no member would answer ffe_vault_init.
# The Vault layer is proven on real OpenBao by ffe-lab's vault_ha tests.
vault_ha_enabled = true
vault_cluster_ips = []
backup_nfs_mount = "/mnt/backups"
backup_retention_days = 2
api_vip = "{vip}"
ingress_ip = "{ing}"
ssh_user = "root"
ssh_private_key_path = "{key}"
ssh_known_hosts_file = "{kh}"
install_mode = "airgap"
airgap_k3s_binary_path = "{standin}"
airgap_installer_path = "{installer}"
airgap_images_path = "{images}"
kubeconfig_path = "{kc}"
# The lab cannot load br_netfilter or set non-namespaced sysctls (shared kernel, see ffe-lab);
# the kubelet's six (cis_profile) each host has a copy of.
host_kernel_modules = ["overlay"]
host_sysctls = {{ "net.ipv4.ip_forward" = "1" }}
{extra}
"#,
            m = masters,
            a = gw[0],
            b = gw[1],
            c = gw[2],
            vip = self.free_ip(200),
            ing = self.free_ip(201),
            vip_pg = self.free_ip(202),
            key = self.lab.client_key().display(),
            kh = self.lab.known_hosts().display(),
            standin = standin.display(),
            installer = ffe_lab::standin_installer().display(),
            kc = self.kubeconfig_path().display(),
            images = self.images_tarball().display(),
        );
        std::fs::write(self.env_dir().join("terraform.tfvars"), tfvars).unwrap();
    }

    pub fn terraform(&self, args: &[&str]) -> Output {
        ffe_lab::terraform::command(&self.env_dir())
            .args(args)
            .arg("-no-color")
            .output()
            .expect("run terraform")
    }

    /// `terraform apply`; panics if any node's k3s would have logged a warning on the way
    /// (an unknown config key real k3s skips is a setting we believe active and is not).
    pub fn apply(&self) -> Output {
        let out = self.terraform(&["apply", "-auto-approve", "-input=false"]);
        self.assert_no_k3s_warnings();
        out
    }

    pub fn assert_no_k3s_warnings(&self) {
        let warnings: Vec<String> = self
            .lab
            .hosts()
            .iter()
            .flat_map(|h| self.records(&h.name))
            .flat_map(|r| {
                let host = r.host.clone();
                r.warnings.into_iter().map(move |w| format!("{host}: {w}"))
            })
            .collect();
        assert!(
            warnings.is_empty(),
            "k3s would have logged warnings (the lab treats them as failures):\n{}",
            warnings.join("\n")
        );
    }

    pub fn apply_ok(&self) {
        let out = self.apply();
        assert!(
            out.status.success(),
            "terraform apply failed:\n{}",
            text(&out)
        );
    }

    /// `terraform plan -detailed-exitcode`: 0 = no changes, 2 = changes.
    pub fn plan_exit(&self) -> (i32, String) {
        let out = self.terraform(&["plan", "-detailed-exitcode", "-input=false"]);
        (out.status.code().unwrap_or(-1), text(&out))
    }

    /// Run `cmd` on lab host `host` as root; panics unless it succeeds.
    pub fn ssh_ok(&self, host: &str, cmd: &str) {
        let out = self.lab.ssh(host, cmd).unwrap();
        assert!(out.status.success(), "{host}: {cmd}: {out:?}");
    }

    pub fn output_raw(&self, name: &str) -> String {
        let out = self.terraform(&["output", "-raw", name]);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn records(&self, host: &str) -> Vec<StandinRecord> {
        self.lab.standin_records(host).unwrap_or_default()
    }

    /// How many changing records each lab host has, in host order (to show a step touched none).
    pub fn mutation_counts(&self) -> Vec<usize> {
        self.lab
            .hosts()
            .iter()
            .map(|h| self.mutations(&h.name).len())
            .collect()
    }

    /// Records that change something on the host (reads filtered out).
    pub fn mutations(&self, host: &str) -> Vec<StandinRecord> {
        self.records(host)
            .into_iter()
            .filter(|r| !is_read_only(r))
            .collect()
    }
}

pub fn is_read_only(r: &StandinRecord) -> bool {
    let a: Vec<&str> = r.argv.iter().map(String::as_str).collect();
    let a: Vec<&str> = a
        .iter()
        .copied()
        .skip_while(|s| *s == "kubectl" || s.starts_with("--request-timeout"))
        .collect();
    match r.program.as_str() {
        "k3s" | "kubectl" => {
            matches!(a.first(), Some(&"--version") | Some(&"-v") | Some(&"get"))
        }
        "systemctl" => matches!(
            a.first(),
            Some(&"is-active") | Some(&"is-enabled") | Some(&"status")
        ),
        _ => false,
    }
}

/// The installer runs on `host`, as (timestamp, INSTALL_K3S_EXEC).
pub fn installs(records: &[StandinRecord]) -> Vec<(u64, String)> {
    records
        .iter()
        .filter(|r| r.program.ends_with("install.sh") && r.exit_code == 0)
        .map(|r| {
            (
                r.ts_ns,
                r.env.get("INSTALL_K3S_EXEC").cloned().unwrap_or_default(),
            )
        })
        .collect()
}

impl Env {
    /// Ask for a k3s upgrade as an operator writes it: the air-gap binary becomes a stand-in
    /// reporting `version`, and `kubernetes_version` moves from `from_minor` to `to_minor`.
    /// `from_bin` is the binary the tfvars name now; returns the new one.
    pub fn upgrade_k3s_tfvars(
        &self,
        from_bin: &str,
        version: &str,
        from_minor: &str,
        to_minor: &str,
    ) -> String {
        let new_bin = self
            .lab
            .standin_with_version(version)
            .unwrap()
            .display()
            .to_string();
        self.edit_tfvars(|s| {
            s.replace(
                &format!("airgap_k3s_binary_path = \"{from_bin}\""),
                &format!("airgap_k3s_binary_path = \"{new_bin}\""),
            )
            .replace(
                &format!("kubernetes_version = \"{from_minor}\""),
                &format!("kubernetes_version = \"{to_minor}\""),
            )
        });
        new_bin
    }

    /// Rewrite terraform.tfvars through `f`.
    pub fn edit_tfvars(&self, f: impl FnOnce(String) -> String) {
        let p = self.env_dir().join("terraform.tfvars");
        let s = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, f(s)).unwrap();
    }
}

/// When `host` ran a successful command whose program and arguments contain `needle` (ns).
pub fn calls(env: &Env, host: &str, needle: &str) -> Vec<u64> {
    env.records(host)
        .iter()
        .filter(|r| r.exit_code == 0)
        .filter(|r| format!("{} {}", r.program, r.argv.join(" ")).contains(needle))
        .map(|r| r.ts_ns)
        .collect()
}

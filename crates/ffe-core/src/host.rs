//! Preparing a node's OS for k3s, reading its facts, and detecting drift.
//!
//! Everything here is idempotent: a prepared host is checked, never changed again, so a re-apply
//! touches nothing and an interrupted apply can simply be run again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::firewall::{self, FirewallSpec};
use crate::shell::quote;
use crate::ssh::{atomic_write_inline_script, SshError, SshPool, Step, Target};

pub const MODULES_FILE: &str = "/etc/modules-load.d/ffe-k3s.conf";
pub const SYSCTL_FILE: &str = "/etc/sysctl.d/90-ffe-k3s.conf";
const FSTAB_MARK: &str = "# ffe-ha backup share";
/// Put /etc/fstab.ffe-tmp in place: a rename (atomic), or, where /etc/fstab is a bind-mounted
/// file that cannot be renamed over (containers, the test lab), a rewrite in place.
const REPLACE_FSTAB: &str = "{ mv -f /etc/fstab.ffe-tmp /etc/fstab 2>/dev/null || { cat /etc/fstab.ffe-tmp > /etc/fstab && rm -f /etc/fstab.ffe-tmp; }; }";

/// Packages k3s and the platform need on every node.
pub fn default_packages() -> Vec<String> {
    ["nfs-common", "chrony", "curl", "ca-certificates"]
        .map(String::from)
        .to_vec()
}

/// Kernel modules for container networking (overlayfs, bridged traffic seen by iptables).
pub fn default_kernel_modules() -> Vec<String> {
    ["overlay", "br_netfilter"].map(String::from).to_vec()
}

/// Kernel settings Kubernetes networking (Calico) and busy nodes need.
pub fn default_sysctls() -> BTreeMap<String, String> {
    [
        ("net.ipv4.ip_forward", "1"),
        ("net.bridge.bridge-nf-call-iptables", "1"),
        ("net.bridge.bridge-nf-call-ip6tables", "1"),
        ("fs.inotify.max_user_instances", "8192"),
        ("fs.inotify.max_user_watches", "524288"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Kernel settings the kubelet requires, with exactly these values, when k3s runs with
/// `protect-kernel-defaults` (the CIS profile): it refuses to start instead of setting them
/// (kubernetes `pkg/kubelet/cm/container_manager_linux.go`, `setupKernelTunables`).
pub fn kubelet_protected_sysctls() -> BTreeMap<String, String> {
    [
        ("vm.overcommit_memory", "1"),
        ("vm.panic_on_oom", "0"),
        ("kernel.panic", "10"),
        ("kernel.panic_on_oops", "1"),
        ("kernel.keys.root_maxkeys", "1000000"),
        ("kernel.keys.root_maxbytes", "25000000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The NFS share holding backups, mounted at the backup mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfsShare {
    pub server: String,
    pub export: String,
}

/// What a prepared host looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    pub packages: Vec<String>,
    pub kernel_modules: Vec<String>,
    pub sysctls: BTreeMap<String, String>,
    pub backup_mount: String,
    pub nfs: Option<NfsShare>,
    /// Also set [`kubelet_protected_sysctls`] (k3s runs with `protect-kernel-defaults`).
    pub protect_kernel_defaults: bool,
    /// The node's inbound firewall; `None` removes one loaded before.
    pub firewall: Option<FirewallSpec>,
}

impl HostSpec {
    /// The sysctls written and checked: the configured ones plus, with
    /// `protect_kernel_defaults`, those the kubelet requires.
    pub fn effective_sysctls(&self) -> BTreeMap<String, String> {
        let mut all = self.sysctls.clone();
        if self.protect_kernel_defaults {
            all.extend(kubelet_protected_sysctls());
        }
        all
    }

    /// The packages installed and checked: the configured ones plus nftables with a firewall.
    pub fn effective_packages(&self) -> Vec<String> {
        let mut all = self.packages.clone();
        if self.firewall.is_some() && !all.iter().any(|p| p == "nftables") {
            all.push("nftables".into());
        }
        all
    }

    /// Input problems as `(attribute, message)`: every value ends up in a shell command, a
    /// sysctl.d file or an fstab line on the host (issue 11 B.7). Empty when all is well.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let plain = |s: &str, extra: &[u8]| {
            !s.is_empty()
                && !s.starts_with('-')
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
        };
        for p in &self.packages {
            // Debian package names: lowercase letters, digits, + - . ; never an option
            if !plain(p, b"+-.") || p.bytes().any(|b| b.is_ascii_uppercase()) {
                out.push(("packages", format!("{p:?} is not a Debian package name (lowercase letters, digits, '+', '-', '.', not starting with '-')")));
            }
        }
        for m in &self.kernel_modules {
            if m.contains('-') {
                out.push(("kernel_modules", format!("{m:?}: write module names with '_' as lsmod shows them ({:?}); with '-' the module never shows as loaded and the plan shows drift for ever", m.replace('-', "_"))));
            } else if !plain(m, b"_") {
                out.push((
                    "kernel_modules",
                    format!("{m:?} is not a kernel module name (letters, digits, '_')"),
                ));
            }
        }
        for (k, v) in &self.sysctls {
            if !plain(k, b"._-") || !k.contains('.') {
                out.push((
                    "sysctls",
                    format!("key {k:?} is not a sysctl name such as \"net.ipv4.ip_forward\""),
                ));
            }
            if v.trim().is_empty() || v.chars().any(|c| c.is_control()) {
                out.push(("sysctls", format!("{k}: value {v:?} is empty or holds a newline/control character (it is written into /etc/sysctl.d)")));
            }
            if self.protect_kernel_defaults {
                if let Some(want) = kubelet_protected_sysctls().get(k).filter(|w| *w != v) {
                    out.push(("sysctls", format!("{k} = {v:?}: with protect_kernel_defaults (the CIS profile) the kubelet refuses to start unless it is {want:?}. Remove {k} from sysctls (ffe_host sets it), or turn the CIS profile off")));
                }
            }
        }
        let fstab_field = |s: &str| {
            !s.is_empty()
                && !s.starts_with('-')
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '#')
        };
        if !self.backup_mount.starts_with('/') || !fstab_field(&self.backup_mount) {
            out.push(("backup_mount", format!("{:?} must be an absolute path without spaces or '#' (it is an /etc/fstab field)", self.backup_mount)));
        }
        if let Some(nfs) = &self.nfs {
            if !fstab_field(&nfs.server) || nfs.server.contains(['/', ':']) {
                out.push(("nfs_server", format!("{:?} must be a host name or IPv4 address (no spaces, ':' or '/'; not starting with '-')", nfs.server)));
            }
            if !nfs.export.starts_with('/') || !fstab_field(&nfs.export) {
                out.push(("nfs_export", format!("{:?} must be an absolute path without spaces or '#' (it is an /etc/fstab field)", nfs.export)));
            }
        }
        out
    }
}

/// Facts reported by a host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    pub os_id: String,
    pub os_version: String,
    pub kernel: String,
    pub cpu_count: i64,
    pub memory_mb: i64,
    pub root_disk_gb: i64,
}

impl HostFacts {
    /// A note when the OS is not one the seed supports (Ubuntu 22.04/24.04 LTS).
    pub fn os_warning(&self) -> Option<String> {
        let supported =
            self.os_id == "ubuntu" && ["22.04", "24.04"].contains(&self.os_version.as_str());
        (!supported).then(|| {
            format!(
                "OS is {} {}; ffe-ha supports Ubuntu 22.04 LTS and 24.04 LTS",
                self.os_id, self.os_version
            )
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("host {host}: could not parse facts: {detail}")]
    Facts { host: String, detail: String },
}

/// Prints `key=value` lines [`parse_facts`] reads: OS, kernel, vCPUs, memory, root disk.
pub const FACTS_SCRIPT: &str = r#"
. /etc/os-release 2>/dev/null
echo "os_id=${ID:-unknown}"
echo "os_version=${VERSION_ID:-unknown}"
echo "kernel=$(uname -r)"
echo "cpu_count=$(nproc)"
awk '/^MemTotal:/ {print "memory_mb=" int($2/1024)}' /proc/meminfo
df -P -B1G / | awk 'NR==2 {print "root_disk_gb=" $2}'
"#;

pub fn parse_facts(host: &str, out: &str) -> Result<HostFacts, HostError> {
    let kv: BTreeMap<&str, &str> = out
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let num = |k: &str| -> Result<i64, HostError> {
        kv.get(k)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| HostError::Facts {
                host: host.into(),
                detail: format!("missing or non-numeric {k}"),
            })
    };
    Ok(HostFacts {
        os_id: kv.get("os_id").unwrap_or(&"unknown").to_string(),
        os_version: kv.get("os_version").unwrap_or(&"unknown").to_string(),
        kernel: kv.get("kernel").unwrap_or(&"unknown").to_string(),
        cpu_count: num("cpu_count")?,
        memory_mb: num("memory_mb")?,
        root_disk_gb: num("root_disk_gb")?,
    })
}

fn modules_file(spec: &HostSpec) -> String {
    let mut s = String::from("# Managed by ffe-ha: kernel modules k3s needs.\n");
    for m in &spec.kernel_modules {
        s.push_str(m);
        s.push('\n');
    }
    s
}

fn sysctl_file(spec: &HostSpec) -> String {
    let mut s = String::from("# Managed by ffe-ha: kernel settings k3s needs.\n");
    for (k, v) in &spec.effective_sysctls() {
        s.push_str(&format!("{k} = {v}\n"));
    }
    s
}

fn fstab_line(spec: &HostSpec) -> Option<String> {
    spec.nfs.as_ref().map(|n| {
        format!(
            "{}:{} {} nfs4 defaults,_netdev,nofail,hard,timeo=600 0 0 {FSTAB_MARK}",
            n.server, n.export, spec.backup_mount
        )
    })
}

/// Shell that prints one `drift: ...` line per way the host differs from `spec`.
pub fn drift_script(spec: &HostSpec) -> String {
    // Every value reaches the shell quoted, and messages are printed with printf arguments, so
    // no configured value is ever interpreted by the shell.
    let mut s = String::from("set +e\n");
    let packages = spec.effective_packages();
    if !packages.is_empty() {
        // One dpkg-query for all packages (unknown ones print nothing on stdout).
        let pkgs: Vec<String> = packages.iter().map(|p| quote(p)).collect();
        s.push_str(&format!(
            "installed=$(dpkg-query -W -f='|${{Package}} ${{Status}}|' {} 2>/dev/null)\n\
             for p in {}; do case \"$installed\" in *\"|$p install ok installed|\"*) ;; *) printf 'drift: package %s is not installed\\n' \"$p\" ;; esac; done\n",
            pkgs.join(" "),
            pkgs.join(" ")
        ));
    }
    for m in &spec.kernel_modules {
        s.push_str(&format!(
            "[ -d /sys/module/{m} ] || printf 'drift: kernel module %s is not loaded\\n' {m}\n",
            m = quote(m)
        ));
    }
    // One `sysctl` for every key (not three processes per key on every refresh): it prints
    // `key = value` lines, a key it does not know prints nothing. Multi-value settings (e.g.
    // ip_local_port_range) print tab-separated: the words are compared joined by single spaces.
    let sysctls = spec.effective_sysctls();
    if !sysctls.is_empty() {
        let keys: Vec<String> = sysctls.keys().map(|k| quote(k)).collect();
        s.push_str(&format!(
            "sysctl_now=$(sysctl {} 2>/dev/null)\n\
             check_sysctl() {{ cur=''; while IFS= read -r line; do case \"$line\" in \"$1 = \"*) cur=${{line#\"$1 = \"}}; break ;; esac; done <<FFE_SYSCTLS\n\
             $sysctl_now\n\
             FFE_SYSCTLS\n\
             set -f; k=$1; want=$2; set -- $cur; cur=\"$*\"; set +f; [ \"$cur\" = \"$want\" ] || printf \"drift: sysctl %s is '%s', want %s\\n\" \"$k\" \"$cur\" \"$want\"; }}\n",
            keys.join(" ")
        ));
        for (k, v) in &sysctls {
            let want = v.split_whitespace().collect::<Vec<_>>().join(" ");
            s.push_str(&format!("check_sysctl {} {}\n", quote(k), quote(&want)));
        }
    }
    for (path, content) in [
        (MODULES_FILE, modules_file(spec)),
        (SYSCTL_FILE, sysctl_file(spec)),
    ] {
        s.push_str(&format!(
            "[ \"$(cat {path} 2>/dev/null)\" = {c} ] || echo 'drift: {path} is missing or edited'\n",
            c = quote(content.trim_end())
        ));
    }
    let mnt = quote(&spec.backup_mount);
    if spec.nfs.is_none() {
        // NFS was managed before and no longer is: our fstab line must go.
        s.push_str(&format!(
            "grep -q {mark} /etc/fstab 2>/dev/null && echo 'drift: /etc/fstab still mounts the backup share configured before (nfs_server/nfs_export are now unset)'\n",
            mark = quote(FSTAB_MARK)
        ));
    }
    // A hard NFS mount whose server is gone blocks every access: each probe is bounded, so a
    // refresh reports it instead of hanging.
    let t = MOUNT_PROBE_SECS;
    if let Some(n) = &spec.nfs {
        s.push_str(&format!(
            "src=$(timeout -k 2 {t} findmnt -n -o SOURCE --target {mnt} 2>/dev/null); rc=$?; \
             if [ $rc -ge 124 ]; then printf 'drift: backup mount %s does not answer within {t} s (NFS server down?)\\n' {mnt}; \
             elif [ \"$src\" != {src} ]; then printf 'drift: %s is not mounted from %s\\n' {mnt} {src}; fi\n",
            src = quote(&format!("{}:{}", n.server, n.export)),
        ));
    }
    s.push_str(&format!(
        "probe={mnt}/.ffe-write-probe-$(hostname); timeout -k 2 {t} sh -c 'touch \"$1\" && rm -f \"$1\"' probe \"$probe\" 2>/dev/null; rc=$?; \
         if [ $rc -ge 124 ]; then printf 'drift: backup mount %s does not answer within {t} s (NFS server down?)\\n' {mnt}; \
         elif [ $rc -ne 0 ]; then printf 'drift: backup mount %s is missing or not writable\\n' {mnt}; fi\n"
    ));
    s.push_str(&firewall::drift_script(spec.firewall.as_ref()));
    s
}

/// Seconds a backup-mount probe may take before the mount counts as not answering.
pub const MOUNT_PROBE_SECS: u64 = 10;

/// The named steps that bring the host to `spec` (see [`prepare_and_inspect`]).
fn prepare_steps(spec: &HostSpec, long: std::time::Duration) -> Vec<Step> {
    let mut steps = Vec::new();
    let packages = spec.effective_packages();
    if !packages.is_empty() {
        let pkgs: Vec<String> = packages.iter().map(|p| quote(p)).collect();
        let script = format!(
            "installed=$(dpkg-query -W -f='|${{Package}} ${{Status}}|' {pkgs} 2>/dev/null); \
             missing=''; for p in {pkgs}; do case \"$installed\" in *\"|$p install ok installed|\"*) ;; *) missing=\"$missing $p\" ;; esac; done; \
             if [ -n \"$missing\" ]; then export DEBIAN_FRONTEND=noninteractive; apt-get -o DPkg::Lock::Timeout=600 update -qq && apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing; fi",
            pkgs = pkgs.join(" ")
        );
        steps.push(Step::new("install packages (apt)", script, long));
    }
    steps.push(Step::new(
        "write kernel module list",
        atomic_write_inline_script(MODULES_FILE, 0o644, &modules_file(spec)),
        long,
    ));
    if !spec.kernel_modules.is_empty() {
        let mods: Vec<String> = spec.kernel_modules.iter().map(|m| quote(m)).collect();
        let script = format!(
            "set -e; for m in {}; do [ -d /sys/module/$m ] || modprobe $m; done",
            mods.join(" ")
        );
        steps.push(Step::new("load kernel modules", script, long));
    }
    steps.push(Step::new(
        "write sysctl settings",
        atomic_write_inline_script(SYSCTL_FILE, 0o644, &sysctl_file(spec)),
        long,
    ));
    steps.push(Step::new(
        "apply sysctl settings",
        format!("sysctl -q -p {SYSCTL_FILE}"),
        long,
    ));
    if spec.packages.iter().any(|p| p == "chrony") {
        // Time sync keeps etcd and certificates sane.
        steps.push(Step::new(
            "enable chrony",
            "systemctl enable --now chrony >/dev/null 2>&1 || systemctl enable --now chronyd",
            long,
        ));
    }
    let mnt = quote(&spec.backup_mount);
    let mut script = format!("set -e; mkdir -p {mnt}; ");
    if let Some(line) = fstab_line(spec) {
        script.push_str(&format!(
            "grep -v {mark} /etc/fstab > /etc/fstab.ffe-tmp || true; printf '%s\\n' {line} >> /etc/fstab.ffe-tmp; \
             chmod 0644 /etc/fstab.ffe-tmp; sync; {REPLACE_FSTAB}; \
             mountpoint -q {mnt} || mount {mnt}; ",
            mark = quote(FSTAB_MARK),
            line = quote(&line)
        ));
    } else {
        // NFS no longer managed: drop our fstab line (a line left behind would mount the old
        // share at the next boot). The current mount stays until then: unmounting a share k3s
        // may be writing a snapshot to is not ours to do mid-apply.
        script.push_str(&format!(
            "if grep -q {mark} /etc/fstab; then grep -v {mark} /etc/fstab > /etc/fstab.ffe-tmp || true; \
             chmod 0644 /etc/fstab.ffe-tmp; sync; {REPLACE_FSTAB}; fi; ",
            mark = quote(FSTAB_MARK),
        ));
    }
    let secs = MOUNT_PROBE_SECS;
    script.push_str(&format!(
        "probe={mnt}/.ffe-write-probe-$(hostname); \
         timeout -k 2 {secs} sh -c 'touch \"$1\" && rm -f \"$1\"' probe \"$probe\" \
         || {{ echo \"backup mount {mnt} is not writable or does not answer within {secs} s\" >&2; exit 1; }}"
    ));
    // mount(8) of an NFS share that does not answer retries for minutes: bounded.
    steps.push(Step::new(
        "mount and check the backup share",
        script,
        std::time::Duration::from_secs(300),
    ));
    // Last: everything above may need the network (apt); the firewall never blocks outbound.
    steps.extend(firewall::apply_steps(spec.firewall.as_ref(), long));
    steps
}

/// Reading the host's facts, then checking it against `spec` (see [`inspect`]).
fn inspect_steps(spec: &HostSpec) -> [Step; 2] {
    [
        Step::new("read host facts", FACTS_SCRIPT, crate::k3s::ops::READ_STEP),
        // Every probe in the script is bounded; the step limit covers package and module checks.
        Step::new(
            "check host preparation",
            drift_script(spec),
            std::time::Duration::from_secs(120),
        ),
    ]
}

/// What a prepared host looks like afterwards: its facts and what still differs from `spec`.
pub type Inspection = (HostFacts, Result<Vec<String>, HostError>);

/// Bring the host to `spec`, then read its facts and check it, in one SSH round trip whose parts
/// are named steps, so a failure says which (the steps after it do not run). Preparation
/// failing is `Err`; after it, the result is [`inspect`]'s.
pub async fn prepare_and_inspect(
    pool: &SshPool,
    t: &Target,
    spec: &HostSpec,
) -> Result<Inspection, HostError> {
    let mut steps = prepare_steps(spec, pool.settings().command_timeout);
    let prepared = steps.len();
    steps.extend(inspect_steps(spec));
    let mut out = pool.run_steps(t, &steps).await?;
    if out.outputs.len() < prepared {
        return Err(out
            .failure
            .map(HostError::from)
            .unwrap_or_else(|| no_output(t, "prepare the host")));
    }
    out.outputs.drain(..prepared);
    read_inspection(t, out)
}

/// The host's facts and how it differs from `spec` (empty when prepared), read in one SSH
/// round trip. The drift is its own result: a drift check that fails still gives the facts.
pub async fn inspect(pool: &SshPool, t: &Target, spec: &HostSpec) -> Result<Inspection, HostError> {
    let out = pool.run_steps(t, &inspect_steps(spec)).await?;
    read_inspection(t, out)
}

fn no_output(t: &Target, step: &str) -> HostError {
    HostError::from(SshError::Broken {
        host: t.to_string(),
        step: step.into(),
        reason: "no output".into(),
    })
}

/// Facts and drift from the outputs of [`inspect_steps`] (and the failure that stopped them).
fn read_inspection(t: &Target, out: crate::ssh::StepsOutput) -> Result<Inspection, HostError> {
    let Some(facts_out) = out.outputs.first() else {
        return Err(out
            .failure
            .map(HostError::from)
            .unwrap_or_else(|| no_output(t, "read host facts")));
    };
    let facts = parse_facts(&t.to_string(), facts_out)?;
    let drift = match (out.failure, out.outputs.get(1)) {
        (Some(e), _) => Err(HostError::from(e)),
        (None, Some(d)) => Ok(d
            .lines()
            .filter_map(|l| l.strip_prefix("drift: "))
            .map(str::to_string)
            .collect()),
        (None, None) => Err(HostError::from(SshError::Broken {
            host: t.to_string(),
            step: "check host preparation".into(),
            reason: "the drift check printed nothing".into(),
        })),
    };
    Ok((facts, drift))
}

/// Undo what [`prepare_and_inspect`] configured (packages stay: other software may use them).
pub async fn cleanup(pool: &SshPool, t: &Target, spec: &HostSpec) -> Result<(), HostError> {
    let mut script = format!(
        "rm -f {MODULES_FILE} {SYSCTL_FILE}; {}",
        firewall::cleanup_script()
    );
    if spec.nfs.is_some() {
        script.push_str(&format!(
            "if grep -q {mark} /etc/fstab; then umount {mnt} 2>/dev/null || true; grep -v {mark} /etc/fstab > /etc/fstab.ffe-tmp || true; chmod 0644 /etc/fstab.ffe-tmp; sync; {REPLACE_FSTAB}; fi",
            mark = quote(FSTAB_MARK),
            mnt = quote(&spec.backup_mount)
        ));
    }
    pool.run(t, "remove host preparation", &script).await?;
    Ok(())
}

#[cfg(test)]
mod tests {

    // Issue 11 B.7: every input reaches a shell, sysctl.d or fstab line on the host.
    #[test]
    fn host_inputs_are_checked() {
        let good = HostSpec {
            packages: default_packages(),
            kernel_modules: default_kernel_modules(),
            sysctls: default_sysctls(),
            backup_mount: "/mnt/backups".into(),
            nfs: Some(NfsShare {
                server: "10.0.5.10".into(),
                export: "/export/ffe".into(),
            }),
            protect_kernel_defaults: true,
            firewall: None,
        };
        assert_eq!(good.problems(), vec![]);
        let mut bad = good.clone();
        bad.packages.push("-oDebug::pkgProblemResolver=1".into());
        bad.kernel_modules.push("nf-conntrack".into());
        bad.sysctls
            .insert("vm.max_map_count".into(), "262144\nkernel.panic=1".into());
        // The kubelet with protect-kernel-defaults would refuse this value.
        bad.sysctls.insert("kernel.panic".into(), "0".into());
        bad.backup_mount = "/mnt/my backups".into();
        bad.nfs = Some(NfsShare {
            server: "-o x".into(),
            export: "/export ffe".into(),
        });
        let attrs: Vec<&str> = bad.problems().into_iter().map(|(a, _)| a).collect();
        assert_eq!(
            attrs,
            vec![
                "packages",
                "kernel_modules",
                "sysctls",
                "sysctls",
                "backup_mount",
                "nfs_server",
                "nfs_export"
            ]
        );
    }

    use super::*;

    fn spec() -> HostSpec {
        HostSpec {
            packages: vec!["coreutils".into(), "definitely-not-a-package-ffe".into()],
            kernel_modules: vec!["overlay".into()],
            sysctls: BTreeMap::from([("kernel.ostype".into(), "Linux".into())]),
            backup_mount: "/nonexistent-ffe-backup".into(),
            nfs: Some(NfsShare {
                server: "10.0.0.9".into(),
                export: "/exports/ffe".into(),
            }),
            protect_kernel_defaults: false,
            firewall: None,
        }
    }

    #[test]
    fn facts_parse_and_reject_garbage() {
        let f = parse_facts(
            "h",
            "os_id=ubuntu\nos_version=24.04\nkernel=6.8.0\ncpu_count=4\nmemory_mb=7900\nroot_disk_gb=98\n",
        )
        .unwrap();
        assert_eq!(f.cpu_count, 4);
        assert_eq!(f.os_warning(), None);
        let debian = HostFacts {
            os_id: "debian".into(),
            os_version: "12".into(),
            ..f.clone()
        };
        assert!(debian.os_warning().unwrap().contains("Ubuntu"));
        assert!(parse_facts("h", "os_id=ubuntu\ncpu_count=x\n").is_err());
    }

    #[test]
    fn configured_values_are_never_run_by_the_shell() {
        let marker = std::env::temp_dir().join(format!("ffe-injected-{}", std::process::id()));
        let evil = format!("$(touch {})", marker.display());
        let mut spec = spec();
        spec.packages = vec![evil.clone()];
        spec.kernel_modules = vec![evil.clone()];
        spec.sysctls = BTreeMap::from([("kernel.ostype".into(), evil.clone())]);
        spec.backup_mount = evil.clone();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(drift_script(&spec))
            .output()
            .unwrap();
        assert!(!marker.exists(), "a configured value was executed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("want {evil}")), "{text}");
    }

    #[test]
    fn sysctls_are_read_from_the_kernel_and_multi_values_compare_whitespace_insensitively() {
        // This machine's own kernel: a multi-value key (tab-separated in /proc/sys), written
        // with spaces as in tfvars, is no drift; another value and an unknown key are.
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
        let words: Vec<&str> = range.split_whitespace().collect();
        assert_eq!(words.len(), 2, "{range:?}");
        let drift = |sysctls: &[(&str, &str)]| {
            let mut spec = spec();
            spec.sysctls = sysctls
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            // sysctl lives in /usr/sbin, not on every user's PATH.
            let path = format!(
                "/usr/sbin:/sbin:{}",
                std::env::var("PATH").unwrap_or_default()
            );
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(drift_script(&spec))
                .env("PATH", path)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.starts_with("drift: sysctl"))
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let same = format!("{}  {}", words[0], words[1]);
        assert_eq!(
            drift(&[
                ("net.ipv4.ip_local_port_range", &same),
                ("kernel.ostype", "Linux")
            ]),
            Vec::<String>::new()
        );
        assert_eq!(
            drift(&[
                ("net.ipv4.ip_local_port_range", "1024 2048"),
                ("kernel.ostype", "Plan9"),
                ("kernel.no_such_key_ffe", "1"),
            ]),
            vec![
                "drift: sysctl kernel.no_such_key_ffe is '', want 1".to_string(),
                "drift: sysctl kernel.ostype is 'Linux', want Plan9".to_string(),
                format!(
                    "drift: sysctl net.ipv4.ip_local_port_range is '{} {}', want 1024 2048",
                    words[0], words[1]
                ),
            ]
        );
    }

    #[test]
    fn fstab_line_is_marked_and_uses_the_mount() {
        let line = fstab_line(&spec()).unwrap();
        assert!(line.starts_with("10.0.0.9:/exports/ffe /nonexistent-ffe-backup nfs4 "));
        assert!(line.ends_with(FSTAB_MARK));
        let mut local = spec();
        local.nfs = None;
        assert_eq!(fstab_line(&local), None);
    }

    /// The drift script runs in a real shell here and reports exactly what is off.
    #[test]
    fn drift_script_reports_each_difference() {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(drift_script(&spec()))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("drift: package definitely-not-a-package-ffe is not installed"),
            "{text}"
        );
        assert!(!text.contains("package coreutils"), "{text}");
        assert!(
            text.contains("/etc/modules-load.d/ffe-k3s.conf is missing"),
            "{text}"
        );
        assert!(
            text.contains("not mounted from 10.0.0.9:/exports/ffe"),
            "{text}"
        );
        assert!(
            text.contains("backup mount /nonexistent-ffe-backup is missing"),
            "{text}"
        );
        assert!(!text.contains("sysctl kernel.ostype"), "{text}");
    }

    /// All packages are checked with one dpkg-query; a name that is the tail of an installed
    /// package's name ("c6" of "libc6") is not mistaken for it.
    #[test]
    fn one_package_query_matches_whole_names_only() {
        let mut spec = spec();
        spec.packages = vec!["libc6".into(), "c6".into()];
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(drift_script(&spec))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("drift: package c6 is not installed"),
            "{text}"
        );
        assert!(!text.contains("package libc6"), "{text}");
    }

    /// A backup mount that blocks (a hard NFS mount whose server is gone) is reported, not
    /// waited on: the probes run under `timeout`. Here `touch` and `findmnt` hang for a minute
    /// and the limit is shortened to 1 s.
    #[test]
    fn a_hung_backup_mount_is_reported_within_the_probe_limit() {
        use std::os::unix::fs::PermissionsExt;
        let bin = tempfile::tempdir().unwrap();
        for tool in ["touch", "findmnt"] {
            let p = bin.path().join(tool);
            std::fs::write(&p, "#!/bin/sh\nsleep 60\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let script = drift_script(&spec()).replace(
            &format!("timeout -k 2 {MOUNT_PROBE_SECS} "),
            "timeout -k 1 1 ",
        );
        let started = std::time::Instant::now();
        let out = crate::shell::sh_with_tools(&script, bin.path());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{text}"
        );
        assert_eq!(
            text.matches("backup mount /nonexistent-ffe-backup does not answer within")
                .count(),
            2,
            "{text}"
        );
    }
}

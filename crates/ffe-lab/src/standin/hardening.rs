//! What the k3s stand-in checks of the CIS hardening settings before "starting", as the real
//! components would refuse them (k3s itself cannot run here):
//! - `protect-kernel-defaults`: the kubelet compares six kernel settings with the values it
//!   needs and exits on any difference instead of setting them (kubernetes
//!   `pkg/kubelet/cm/container_manager_linux.go`, `setupKernelTunables`);
//! - `kube-apiserver-arg`: the admission configuration and audit policy files must exist and be
//!   of the kinds the API server reads, every enabled admission plugin must be one Kubernetes
//!   registers (names from upstream/kubernetes/flags.yaml, compiled in), EventRateLimit needs
//!   its configuration (its constructor reads `Limits`), Pod Security levels must be real ones,
//!   and an audit policy needs at least one rule; the API server exits otherwise. Not modelled:
//!   the rest of each file's validation (field types, versions).

use serde_yaml_ng::Value;

use super::config::K3sConfig;
use super::{HostEnv, Role, StandinError};

/// k3s exits 1 when one of its embedded components refuses to start.
fn failed(msg: impl Into<String>) -> StandinError {
    StandinError::failed(1, msg)
}

/// `(sysctl path under /proc/sys, value the kubelet requires)`.
pub const KUBELET_SYSCTLS: &[(&str, &str)] = &[
    ("vm/overcommit_memory", "1"),
    ("vm/panic_on_oom", "0"),
    ("kernel/panic", "10"),
    ("kernel/panic_on_oops", "1"),
    ("kernel/keys/root_maxkeys", "1000000"),
    ("kernel/keys/root_maxbytes", "25000000"),
];

fn flag_true(cfg: &K3sConfig, key: &str) -> bool {
    matches!(cfg.other.get(key), Some(Value::Bool(true)))
        || matches!(cfg.other.get(key), Some(Value::String(s)) if s == "true")
}

fn args(cfg: &K3sConfig, key: &str) -> Vec<(String, String)> {
    let items: Vec<String> = match cfg.other.get(key) {
        Some(Value::Sequence(s)) => s
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => vec![],
    };
    items
        .into_iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.trim_start_matches('-').to_string(), v.to_string()),
            None => (a.trim_start_matches('-').to_string(), String::new()),
        })
        .collect()
}

/// Every check for `role`; the first failure is k3s failing to start.
pub fn check(host: &HostEnv, role: Role, cfg: &K3sConfig) -> Result<(), StandinError> {
    if flag_true(cfg, "protect-kernel-defaults") {
        check_kernel_defaults(host)?;
    }
    if role == Role::Server {
        check_apiserver_args(host, &args(cfg, "kube-apiserver-arg"))?;
    }
    Ok(())
}

fn check_kernel_defaults(host: &HostEnv) -> Result<(), StandinError> {
    let mut wrong = Vec::new();
    for (key, want) in KUBELET_SYSCTLS {
        let path = host.path(&format!("/proc/sys/{key}"));
        let got = std::fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "(unreadable)".into());
        if got != *want {
            wrong.push(format!(
                "invalid kernel flag: {key}, expected value: {want}, actual value: {got}"
            ));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(failed(format!(
            "kubelet: failed to run Kubelet: Failed to start ContainerManager: [{}] (protect-kernel-defaults is set: set these sysctls before starting k3s)",
            wrong.join(", ")
        )))
    }
}

fn read_kind(host: &HostEnv, flag: &str, path: &str) -> Result<Value, StandinError> {
    let p = host.path(path);
    let text = std::fs::read_to_string(&p).map_err(|e| {
        failed(format!(
            "kube-apiserver: --{flag}: failed to read {path}: {e}"
        ))
    })?;
    serde_yaml_ng::from_str(&text)
        .map_err(|e| failed(format!("kube-apiserver: --{flag}: {path}: {e}")))
}

fn expect_kind(v: &Value, flag: &str, api_version: &str, kind: &str) -> Result<(), StandinError> {
    let got = (
        v.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
        v.get("kind").and_then(Value::as_str).unwrap_or(""),
    );
    if got != (api_version, kind) {
        return Err(failed(format!(
            "kube-apiserver: --{flag}: expected {api_version} {kind}, got {:?} {:?}",
            got.0, got.1
        )));
    }
    Ok(())
}

/// Admission plugin names Kubernetes registers (vendored from its source).
fn known_plugins() -> Vec<String> {
    const FLAGS: &str = include_str!("../../../../upstream/kubernetes/flags.yaml");
    serde_yaml_ng::from_str::<Value>(FLAGS)
        .ok()
        .and_then(|v| v["admission_plugins"]["names"].as_sequence().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect()
}

fn check_apiserver_args(host: &HostEnv, args: &[(String, String)]) -> Result<(), StandinError> {
    let get = |k: &str| args.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let mut configured: Vec<String> = Vec::new();
    if let Some(path) = get("admission-control-config-file") {
        let v = read_kind(host, "admission-control-config-file", path)?;
        expect_kind(
            &v,
            "admission-control-config-file",
            "apiserver.config.k8s.io/v1",
            "AdmissionConfiguration",
        )?;
        for p in v
            .get("plugins")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let name = p.get("name").and_then(Value::as_str).unwrap_or("");
            let conf = p.get("configuration");
            match (name, conf) {
                ("PodSecurity", Some(c)) => {
                    expect_kind(
                        c,
                        "admission-control-config-file",
                        "pod-security.admission.config.k8s.io/v1",
                        "PodSecurityConfiguration",
                    )?;
                    for mode in ["enforce", "audit", "warn"] {
                        let level = c["defaults"][mode].as_str().unwrap_or("privileged");
                        if !["privileged", "baseline", "restricted"].contains(&level) {
                            return Err(failed(format!(
                                "kube-apiserver: PodSecurity: defaults.{mode}: must be one of privileged, baseline, restricted (got {level:?})"
                            )));
                        }
                    }
                }
                ("EventRateLimit", Some(c)) => {
                    expect_kind(
                        c,
                        "admission-control-config-file",
                        "eventratelimit.admission.k8s.io/v1alpha1",
                        "Configuration",
                    )?;
                    if c.get("limits")
                        .and_then(Value::as_sequence)
                        .is_none_or(|l| l.is_empty())
                    {
                        return Err(failed(
                            "kube-apiserver: EventRateLimit: configuration has no limits",
                        ));
                    }
                }
                (_, None) if p.get("path").is_none() => {
                    return Err(failed(format!(
                    "kube-apiserver: admission plugin {name:?} has neither configuration nor path"
                )))
                }
                _ => {}
            }
            configured.push(name.to_string());
        }
    }
    if let Some(path) = get("audit-policy-file") {
        let v = read_kind(host, "audit-policy-file", path)?;
        expect_kind(&v, "audit-policy-file", "audit.k8s.io/v1", "Policy")?;
        if v["rules"].as_sequence().is_none_or(|r| r.is_empty()) {
            return Err(failed(format!(
                "kube-apiserver: loaded illegal policy with 0 rules from file {path}"
            )));
        }
    }
    if let Some(list) = get("enable-admission-plugins") {
        let plugins: Vec<&str> = list.split(',').map(str::trim).collect();
        let known = known_plugins();
        if let Some(p) = plugins.iter().find(|p| !known.iter().any(|k| k == *p)) {
            return Err(failed(format!(
                "kube-apiserver: enable-admission-plugins plugin \"{p}\" is unknown"
            )));
        }
        if plugins.contains(&"EventRateLimit") && !configured.iter().any(|c| c == "EventRateLimit")
        {
            return Err(failed(
                "kube-apiserver: EventRateLimit is enabled but the admission configuration file has no EventRateLimit configuration",
            ));
        }
    }
    Ok(())
}

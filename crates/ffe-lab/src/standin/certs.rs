//! `k3s certificate rotate`, as the k3s stand-in plays it (k3s-io/k3s #4632: the command "will
//! back up tls certs for server and agent except for CA certs and service key, and then remove
//! these files allowing k3s on the next restart to regenerate the files"; backups under
//! `server/tls-<time>`, #7083). The stand-in refuses while a k3s unit runs on the host (k3s's docs
//! say to stop it first), moves every leaf `.crt`/`.key` pair it finds to `<dir>-<unix time>/`, and
//! its next start writes each one again: a real 365-day certificate made with `openssl`, as k3s
//! issues them (CN and SANs are not modelled).

use std::path::Path;

use super::units::UnitsState;
use super::{now_ns, write_file, HostEnv, Outcome, StandinError, STATE_DIR};

/// Where k3s keeps leaf certificates (the same directories ffe-core reads expiry from).
const CERT_DIRS: &[&str] = &[
    "/var/lib/rancher/k3s/server/tls",
    "/var/lib/rancher/k3s/server/tls/etcd",
    "/var/lib/rancher/k3s/agent",
];

fn pending_file() -> String {
    format!("{STATE_DIR}/certs-to-regenerate")
}

fn failed(msg: impl Into<String>) -> StandinError {
    StandinError::failed(1, msg.into())
}

/// `k3s certificate rotate` (no `--service`: every service).
pub fn rotate(args: &[String], host: &HostEnv) -> Result<Outcome, StandinError> {
    host.ensure_lab_host()?;
    if args.first().map(String::as_str) != Some("rotate") || args.len() > 1 {
        return Err(failed(format!(
            "k3s stand-in: `k3s certificate {}` is not modelled (only `rotate` for every service)",
            args.join(" ")
        )));
    }
    let units = UnitsState::load(host)?;
    if units.get("k3s").active || units.get("k3s-agent").active {
        return Err(failed(
            "k3s stand-in: k3s runs on this host; stop it before `k3s certificate rotate` (docs.k3s.io cli/certificate)",
        ));
    }
    let stamp = now_ns() / 1_000_000_000;
    let mut moved = vec![];
    for dir in CERT_DIRS {
        let Ok(entries) = std::fs::read_dir(host.path(dir)) else {
            continue;
        };
        let backup = format!("{dir}-{stamp}");
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".crt") else {
                continue;
            };
            if stem.ends_with("-ca") || !e.path().is_file() {
                continue;
            }
            for f in [format!("{stem}.crt"), format!("{stem}.key")] {
                let from = host.path(&format!("{dir}/{f}"));
                if !from.is_file() {
                    continue;
                }
                let to = host.path(&format!("{backup}/{f}"));
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| StandinError::io(parent, e))?;
                }
                std::fs::rename(&from, &to).map_err(|e| StandinError::io(&from, e))?;
            }
            moved.push(format!("{dir}/{stem}"));
        }
    }
    let mut pending = read_pending(host);
    pending.extend(moved.iter().cloned());
    write_file(
        &host.path(&pending_file()),
        pending.join("\n").as_bytes(),
        0o600,
    )?;
    Ok(Outcome::ok(format!(
        "certificates rotated ({}); they are issued again when k3s starts",
        moved.len()
    )))
}

fn read_pending(host: &HostEnv) -> Vec<String> {
    std::fs::read_to_string(host.path(&pending_file()))
        .map(|t| {
            t.lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// At a successful start: issue every certificate a rotation removed, valid 365 days.
pub fn reissue(host: &HostEnv) -> Result<(), StandinError> {
    let pending = read_pending(host);
    if pending.is_empty() {
        return Ok(());
    }
    for stem in &pending {
        let (crt, key) = (
            host.path(&format!("{stem}.crt")),
            host.path(&format!("{stem}.key")),
        );
        issue(&crt, &key)?;
    }
    let file = host.path(&pending_file());
    std::fs::remove_file(&file).map_err(|e| StandinError::io(&file, e))
}

fn issue(crt: &Path, key: &Path) -> Result<(), StandinError> {
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "365", "-subj", "/CN=k3s-standin"])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(crt)
        .output()
        .map_err(|e| failed(format!("k3s stand-in: openssl: {e}")))?;
    if !out.status.success() {
        return Err(failed(format!(
            "k3s stand-in: openssl could not issue {}: {}",
            crt.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

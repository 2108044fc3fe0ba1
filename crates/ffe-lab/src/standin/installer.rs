//! The installer (`*install.sh`) and the uninstall scripts.

use std::path::Path;

use super::datastore::Role;
use super::units::{start_unit, stop_unit, unit_name, with_units};
use super::{write_file, HostEnv, Invocation, Outcome, StandinError, K3S_BIN};

/// Which uninstall script ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Server,
    Agent,
}

fn failed(msg: impl Into<String>) -> StandinError {
    StandinError::failed(1, msg)
}

fn symlink_to_k3s(host: &HostEnv, name: &str, out: &mut Vec<String>) -> Result<(), StandinError> {
    let link = host.path(&format!("/usr/local/bin/{name}"));
    match std::fs::symlink_metadata(&link) {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::remove_file(&link).map_err(|e| StandinError::io(&link, e))?;
        }
        Ok(_) => {
            out.push(format!(
                "[INFO]  Skipping /usr/local/bin/{name} symlink to k3s, command exists"
            ));
            return Ok(());
        }
        Err(_) => {}
    }
    std::os::unix::fs::symlink(K3S_BIN, &link).map_err(|e| StandinError::io(&link, e))?;
    out.push(format!(
        "[INFO]  Creating /usr/local/bin/{name} symlink to k3s"
    ));
    Ok(())
}

/// `INSTALL_K3S_SKIP_DOWNLOAD=true INSTALL_K3S_EXEC="server|agent ..." install.sh [args]`.
pub(crate) fn install(inv: &Invocation, host: &HostEnv) -> Result<Outcome, StandinError> {
    let env = |k: &str| inv.env.get(k).map(String::as_str);
    if env("INSTALL_K3S_SKIP_DOWNLOAD") != Some("true") {
        return Err(failed(
            "k3s stand-in installer: the stand-in cannot download k3s: set INSTALL_K3S_SKIP_DOWNLOAD=true and upload /usr/local/bin/k3s first",
        ));
    }
    host.ensure_lab_host()?;
    super::flags::check_install_env(inv.env.keys().map(String::as_str))?;
    let bin = host.path(K3S_BIN);
    let executable = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&bin).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if !executable {
        return Err(failed(format!(
            "k3s stand-in installer: {K3S_BIN} is missing or not executable (with INSTALL_K3S_SKIP_DOWNLOAD=true the binary must be uploaded first)"
        )));
    }
    let mut words: Vec<String> = env("INSTALL_K3S_EXEC")
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    words.extend(inv.args.iter().cloned());
    let role = match words.first().map(String::as_str) {
        Some("server") => Role::Server,
        Some("agent") => Role::Agent,
        _ => {
            let role = if env("K3S_URL").is_some() {
                Role::Agent
            } else {
                Role::Server
            };
            let word = match role {
                Role::Server => "server",
                Role::Agent => "agent",
            };
            words.insert(0, word.to_string());
            role
        }
    };
    let unit = unit_name(role);
    let mut log = vec![format!(
        "[INFO]  k3s stand-in installer: skipping download, using {K3S_BIN}"
    )];
    for name in ["kubectl", "k3s-killall.sh"] {
        symlink_to_k3s(host, name, &mut log)?;
    }
    symlink_to_k3s(
        host,
        match role {
            Role::Server => "k3s-uninstall.sh",
            Role::Agent => "k3s-agent-uninstall.sh",
        },
        &mut log,
    )?;
    // Real install.sh (get_installed_hashes) hashes the binary, the unit and its env file before
    // and after; when nothing changed it skips the service start unless
    // INSTALL_K3S_FORCE_RESTART=true ("No change detected so skipping service start").
    let unit_path = host.path(&format!("/etc/systemd/system/{unit}.service"));
    let env_path = host.path(&format!("/etc/systemd/system/{unit}.service.env"));
    let installed_hashes = || {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for p in [&bin, &unit_path, &env_path] {
            match std::fs::read(p) {
                Ok(bytes) => h.update(Sha256::digest(&bytes)),
                Err(_) => h.update(b"missing"),
            }
        }
        hex::encode(h.finalize())
    };
    let pre_install = installed_hashes();
    let exec_args: String = words.iter().map(|w| format!(" \\\n    '{w}'")).collect();
    let unit_text = format!(
        "# Written by the ffe-lab k3s STAND-IN installer; not a real k3s unit.\n\
         [Unit]\nDescription=Lightweight Kubernetes (k3s stand-in)\nWants=network-online.target\nAfter=network-online.target\n\n\
         [Service]\nType=notify\nKillMode=process\nDelegate=yes\nRestart=always\nRestartSec=5s\n\
         ExecStart={K3S_BIN}{exec_args}\n\n[Install]\nWantedBy=multi-user.target\n"
    );
    write_file(&unit_path, unit_text.as_bytes(), 0o644)?;
    log.push(format!(
        "[INFO]  systemd: Creating service file /etc/systemd/system/{unit}.service"
    ));
    let skip_enable = env("INSTALL_K3S_SKIP_ENABLE") == Some("true");
    let skip_start = env("INSTALL_K3S_SKIP_START") == Some("true");
    let unchanged =
        installed_hashes() == pre_install && env("INSTALL_K3S_FORCE_RESTART") != Some("true");
    let mut out = Outcome::default();
    let started = with_units(host, |st| {
        if !skip_enable {
            st.units.entry(unit.to_string()).or_default().enabled = true;
            log.push(format!("[INFO]  systemd: Enabling {unit} unit"));
        }
        if !skip_start && unchanged {
            log.push("[INFO]  No change detected so skipping service start".to_string());
        } else if !skip_start {
            log.push(format!("[INFO]  systemd: Starting {unit}"));
            start_unit(host, role, st, &mut out)?;
        }
        Ok(())
    });
    if let Err(e) = started {
        out.stdout = format!("{}\n", log.join("\n"));
        return Ok(out.with_error(&e));
    }
    out.stdout = format!("{}\n", log.join("\n"));
    out.message = format!("installed {unit} ({})", words.join(" "));
    Ok(out)
}

fn remove_path(path: &Path, removed: &mut Vec<String>) -> Result<(), StandinError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StandinError::io(path, e)),
    };
    if meta.is_dir() {
        std::fs::remove_dir_all(path).map_err(|e| StandinError::io(path, e))?;
    } else {
        std::fs::remove_file(path).map_err(|e| StandinError::io(path, e))?;
    }
    removed.push(path.display().to_string());
    Ok(())
}

/// `k3s-uninstall.sh` / `k3s-agent-uninstall.sh`: stop, remove the k3s paths. Like k3s, it does
/// not touch the cluster: the Node stays (NotReady) and a server's etcd member stays until the
/// Node is deleted (k3s-io/k3s #4865).
pub(crate) fn uninstall(host: &HostEnv, flavor: Flavor) -> Result<Outcome, StandinError> {
    host.ensure_lab_host()?;
    with_units(host, |st| {
        for unit in ["k3s", "k3s-agent"] {
            stop_unit(host, unit, st)?;
        }
        if let Some(node) = st.node.take() {
            host.datastore().update(|s| {
                if let Some(c) = s.as_mut() {
                    if let Some(n) = c.nodes.get_mut(&node.name) {
                        n.ready = false;
                    }
                }
                Ok(())
            })?;
        }
        st.units.remove("k3s");
        st.units.remove("k3s-agent");
        Ok(())
    })?;
    let mut removed = Vec::new();
    // Exactly the k3s paths, always under the host root (a per-host bind mount in the lab).
    let bin_dir = host.path("/usr/local/bin");
    for name in ["kubectl", "crictl", "ctr"] {
        let p = bin_dir.join(name);
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
            remove_path(&p, &mut removed)?;
        }
    }
    for name in [
        "k3s-killall.sh",
        "k3s-uninstall.sh",
        "k3s-agent-uninstall.sh",
        "k3s",
    ] {
        remove_path(&bin_dir.join(name), &mut removed)?;
    }
    let unit_dir = host.path("/etc/systemd/system");
    if let Ok(entries) = std::fs::read_dir(&unit_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with("k3s")
                && (name.ends_with(".service") || name.ends_with(".service.env"))
            {
                remove_path(&entry.path(), &mut removed)?;
            }
        }
    }
    for p in ["/etc/rancher/k3s", "/var/lib/rancher/k3s"] {
        remove_path(&host.path(p), &mut removed)?;
    }
    let which = match flavor {
        Flavor::Server => "k3s-uninstall.sh",
        Flavor::Agent => "k3s-agent-uninstall.sh",
    };
    Ok(Outcome::ok(format!(
        "k3s stand-in {which}: removed {} paths",
        removed.len()
    )))
}

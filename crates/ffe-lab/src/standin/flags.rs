//! How real k3s treats the keys of `/etc/rancher/k3s/config.yaml` and the installer's
//! `INSTALL_K3S_*` variables, from lists vendored under `upstream/k3s/` (see its `SOURCE.md`).
//!
//! k3s turns each config key into `--key=value` before the command line is parsed
//! (`pkg/configfilearg`). For `k3s server` it first drops keys that are not server flags with the
//! warning `Unknown flag --KEY found in config.yaml, skipping`; for `k3s agent` there is no such
//! filter, so the flag parser fails with `flag provided but not defined: -KEY` and the agent does
//! not start. The stand-in does the same, and the lab fails a test on any such warning.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use super::datastore::Role;
use super::StandinError;

const SERVER_HELP: &str = include_str!("../../../../upstream/k3s/server-help.txt");
const AGENT_HELP: &str = include_str!("../../../../upstream/k3s/agent-help.txt");
const INSTALL_ENV: &str = include_str!("../../../../upstream/k3s/install-env.txt");

/// Whether a flag takes a value (`--name value`) or is a switch (`--name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagArg {
    Switch,
    Value,
}

/// The flags one k3s command accepts: every long name and alias.
#[derive(Debug, Clone, Default)]
pub struct CliFlags {
    flags: BTreeMap<String, FlagArg>,
}

impl CliFlags {
    /// Parse the `OPTIONS:` block of `k3s <command> --help` (urfave/cli's layout: names and
    /// aliases separated by ", ", each optionally followed by a value placeholder, then two or
    /// more spaces and the usage text).
    pub fn parse_help(text: &str) -> Self {
        let mut flags = BTreeMap::new();
        let options = text
            .split_once("OPTIONS:")
            .map(|(_, rest)| rest)
            .unwrap_or("");
        for line in options.lines() {
            let line = line.trim_start();
            if !line.starts_with('-') {
                continue;
            }
            let head = line.split("  ").next().unwrap_or("");
            for part in head.split(", ") {
                let mut words = part.split_whitespace();
                let Some(name) = words.next() else { continue };
                let name = name.trim_start_matches('-');
                if name.is_empty() {
                    continue;
                }
                let arg = if words.next().is_some() {
                    FlagArg::Value
                } else {
                    FlagArg::Switch
                };
                flags.insert(name.to_string(), arg);
            }
        }
        CliFlags { flags }
    }

    pub fn get(&self, name: &str) -> Option<FlagArg> {
        self.flags.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.flags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// The flags of `k3s server` / `k3s agent` at the vendored version.
    pub fn of(role: Role) -> &'static CliFlags {
        static SERVER: LazyLock<CliFlags> = LazyLock::new(|| CliFlags::parse_help(SERVER_HELP));
        static AGENT: LazyLock<CliFlags> = LazyLock::new(|| CliFlags::parse_help(AGENT_HELP));
        match role {
            Role::Server => &SERVER,
            Role::Agent => &AGENT,
        }
    }
}

/// Check config keys (a trailing `+` appends and names the same flag) as `k3s <role>` would.
/// Server: unknown keys are dropped, each with k3s's warning (returned). Agent: the first unknown
/// key fails the start, as urfave/cli does.
pub fn check_config_keys<'a>(
    role: Role,
    keys: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<String>, StandinError> {
    let flags = CliFlags::of(role);
    let mut warnings = Vec::new();
    for key in keys {
        let name = key.trim_end_matches('+');
        if flags.get(name).is_some() {
            continue;
        }
        match role {
            Role::Server => warnings.push(format!(
                "level=warning msg=\"Unknown flag --{name} found in config.yaml, skipping\""
            )),
            Role::Agent => {
                return Err(StandinError::failed(
                    1,
                    format!(
                        "level=fatal msg=\"flag provided but not defined: -{name}\" \
                         (k3s agent does not accept {name:?}: it is a server-only or unknown key)"
                    ),
                ))
            }
        }
    }
    Ok(warnings)
}

/// The `INSTALL_K3S_*` variables install.sh reads.
pub fn install_variables() -> Vec<&'static str> {
    INSTALL_ENV
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// install.sh ignores an `INSTALL_K3S_*` variable it does not read; the stand-in refuses it so a
/// misspelt variable (which real k3s would silently not act on) fails the lab.
pub fn check_install_env<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<(), StandinError> {
    let known = install_variables();
    let unknown: Vec<&str> = names
        .into_iter()
        .filter(|n| n.starts_with("INSTALL_K3S_") && !known.contains(n))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(StandinError::failed(
            1,
            format!(
                "k3s stand-in: install.sh does not read {} (it would ignore it without a word; \
                 the variables it reads are listed in upstream/k3s/install-env.txt)",
                unknown.join(", ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendored_help_parses_into_the_flags_each_command_has() {
        let server = CliFlags::of(Role::Server);
        let agent = CliFlags::of(Role::Agent);
        assert!(
            server.len() > 90 && agent.len() > 40,
            "{} {}",
            server.len(),
            agent.len()
        );
        assert_eq!(server.get("cluster-init"), Some(FlagArg::Switch));
        assert_eq!(server.get("tls-san"), Some(FlagArg::Value));
        assert_eq!(server.get("t"), Some(FlagArg::Value), "aliases count");
        assert_eq!(agent.get("node-ip"), Some(FlagArg::Value));
        assert_eq!(agent.get("tls-san"), None, "server-only");
        assert_eq!(agent.get("agent-token"), None, "server-only");
        assert_eq!(server.get("with-node-id"), Some(FlagArg::Switch));
    }

    #[test]
    fn server_drops_unknown_keys_with_k3s_warning_agent_refuses_them() {
        let w = check_config_keys(Role::Server, ["token", "tls-san+", "tls-sans"]).unwrap();
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("Unknown flag --tls-sans found in config.yaml"),
            "{w:?}"
        );
        let e = check_config_keys(Role::Agent, ["token", "server", "cluster-init"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("flag provided but not defined: -cluster-init"),
            "{e}"
        );
        assert!(check_config_keys(Role::Agent, ["token", "server", "node-label+"]).is_ok());
    }

    #[test]
    fn install_env_typos_are_refused() {
        assert!(check_install_env(["INSTALL_K3S_FORCE_RESTART", "K3S_URL", "PATH"]).is_ok());
        let e = check_install_env(["INSTALL_K3S_FORCE_RESTARTS"]).unwrap_err();
        assert!(e.to_string().contains("INSTALL_K3S_FORCE_RESTARTS"), "{e}");
    }
}

//! The Vault/OpenBao server configuration (HCL) a `vault` or `openbao` HelmChart carries in its
//! values (`server.ha.raft.config`, `server.ha.config`, `server.standalone.config`): written by us
//! for an upstream component, so every key in it is checked against that component.
//! 1. OpenBao's own parser: `bao operator diagnose -config=<file>` reports unknown top-level,
//!    listener, listener telemetry, telemetry and audit-stanza keys (and HCL that does not parse).
//!    Only those findings are kept: its other checks need a running host and fail harmlessly.
//! 2. What that parser passes through unchecked (it hands the stanza to the backend as a map), from
//!    OpenBao's source at the pinned tag (`upstream/images/openbao/VERSION/config-keys.txt`): the
//!    keys of `storage "raft"`, its `retry_join` blocks and a `file` audit device's `options`.
//!
//! HashiCorp Vault is a stand-in case: its source could not be had here (the repository snapshot
//! exceeds the fetch limit), so chart `vault` is checked with OpenBao's parser and OpenBao
//! [`OPENBAO_FOR_VAULT`]'s key list. OpenBao forked Vault 1.14 and kept these keys; a key Vault
//! added since would be reported as unknown (a false alarm, never a silent pass of a typo).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hcl::{Body, Expression, ObjectKey};
use serde_json::Value;

use crate::upstream::{trim_v, Upstream, VendoredChart};
use crate::values::at_path;

/// Values paths of the two charts that hold the server configuration as HCL text.
pub const CONFIG_PATHS: &[&str] = &[
    "server.ha.raft.config",
    "server.ha.config",
    "server.standalone.config",
];

/// OpenBao version whose parser and keys stand in for HashiCorp Vault's (see the module docs).
pub const OPENBAO_FOR_VAULT: &str = "2.6.2";

/// `bao operator diagnose` takes about a second; a hung one must not stall `make test`.
const DIAGNOSE_TIMEOUT: Duration = Duration::from_secs(60);

/// The warning `bao operator diagnose` gives for a key its parser does not know.
const UNKNOWN_FIELD: &str = "Unknown or unsupported field ";

/// `bao` (OpenBao's binary, scripts/install-deps.sh): `FFE_BAO`, else `tools/bin/bao` of the
/// repository, else `bao` on PATH.
pub fn locate_bao(repo_root: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FFE_BAO") {
        return Some(PathBuf::from(p));
    }
    let local = repo_root.join("tools/bin/bao");
    if local.is_file() {
        return Some(local);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("bao"))
            .find(|p| p.is_file())
    })
}

/// Runs the checks; `bao` runs once per distinct configuration text (a plan is checked in two
/// passes, and the same configuration reaches several HelmCharts).
pub struct Checker {
    bao: Option<PathBuf>,
    diagnosed: Mutex<BTreeMap<String, Result<Diagnosis, String>>>,
    /// one line per chart whose configuration was checked, for the console summary
    checked: Mutex<BTreeSet<String>>,
}

/// What `bao operator diagnose` found in one configuration.
#[derive(Debug, Clone, Default)]
struct Diagnosis {
    /// the configuration does not parse: bao's message
    parse_error: Option<String>,
    /// `(key, line, column)` of each unknown field
    unknown: Vec<(String, Option<usize>, Option<usize>)>,
}

impl Checker {
    pub fn new(bao: Option<PathBuf>) -> Self {
        Self {
            bao,
            diagnosed: Mutex::new(BTreeMap::new()),
            checked: Mutex::new(BTreeSet::new()),
        }
    }

    /// One line per checked chart, naming what it was checked with (stand-ins included).
    pub fn summary(&self) -> Vec<String> {
        self.checked
            .lock()
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Problems (messages) in the server configuration `ours` (the HelmChart's values) gives
    /// `chart`; nothing for other charts.
    pub fn check(&self, upstream: &Upstream, chart: &VendoredChart, ours: &Value) -> Vec<String> {
        let (version, stand_in) = match chart.meta.chart.as_str() {
            "openbao" => (trim_v(&chart.meta.app_version).to_string(), false),
            "vault" => (OPENBAO_FOR_VAULT.to_string(), true),
            _ => return Vec::new(),
        };
        let mut out = Vec::new();
        for path in CONFIG_PATHS {
            let Some(config) = at_path(ours, path) else {
                continue;
            };
            let Some(text) = config.as_str() else {
                out.push(format!(
                    "values {path}: the server configuration is not HCL text, so its keys cannot \
                     be checked; give it as a string (as terraform/modules/vault does)"
                ));
                continue;
            };
            out.extend(self.check_text(upstream, &version, path, text));
            if let Ok(mut checked) = self.checked.lock() {
                checked.insert(if stand_in {
                    format!(
                        "{} {}: server configuration checked with OpenBao's parser (bao operator \
                         diagnose) and OpenBao {version}'s keys, a stand-in: Vault {}'s source \
                         could not be had here",
                        chart.meta.chart, chart.meta.version, chart.meta.app_version
                    )
                } else {
                    format!(
                        "{} {}: server configuration checked with OpenBao's parser (bao operator \
                         diagnose) and OpenBao {version}'s keys",
                        chart.meta.chart, chart.meta.version
                    )
                });
            }
        }
        out
    }

    fn check_text(
        &self,
        upstream: &Upstream,
        version: &str,
        path: &str,
        text: &str,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let mut parsed_by_bao = false;
        match &self.bao {
            None => out.push(format!(
                "values {path}: a Vault/OpenBao server configuration, but bao (OpenBao's parser) \
                 was not found: run scripts/install-deps.sh (tools/bin/bao) or set FFE_BAO"
            )),
            Some(bao) => match self.diagnose(bao, text) {
                Err(e) => out.push(format!(
                    "values {path}: bao operator diagnose could not check the server \
                     configuration: {e}"
                )),
                Ok(d) => {
                    if let Some(e) = &d.parse_error {
                        out.push(format!(
                            "values {path}: the server configuration does not parse (bao \
                             operator diagnose): {e}"
                        ));
                    } else {
                        parsed_by_bao = true;
                    }
                    for (key, line, col) in &d.unknown {
                        out.push(format!(
                            "values {path}{}: unknown key {key} in the server configuration \
                             (bao operator diagnose: {UNKNOWN_FIELD}{key}){}",
                            at(*line, *col),
                            quote(text, *line)
                        ));
                    }
                }
            },
        }
        let keys_file = upstream
            .root()
            .join("images/openbao")
            .join(version)
            .join("config-keys.txt");
        let keys = match load_keys(&keys_file) {
            Ok(k) => k,
            Err(e) => {
                out.push(format!(
                    "values {path}: cannot check the storage/retry_join/audit option keys: {e} \
                     (generate it from OpenBao's source at v{version}, see \
                     upstream/images/openbao/2.6.2/SOURCE.md)"
                ));
                return out;
            }
        };
        match hcl::parse(text) {
            Ok(body) => {
                for (section, key) in unknown_static_keys(&body, &keys) {
                    let line = key_line(text, &key);
                    out.push(format!(
                        "values {path}{}: unknown key {key} in {section} (not read by OpenBao \
                         v{version}: upstream/images/openbao/{version}/config-keys.txt){}",
                        at(line, None),
                        quote(text, line)
                    ));
                }
            }
            // bao's own parse error is the one to fix; this only matters when bao accepted it
            Err(e) if parsed_by_bao || self.bao.is_none() => out.push(format!(
                "values {path}: the storage/retry_join/audit option keys cannot be checked: \
                 hcl-rs does not parse the configuration: {e}"
            )),
            Err(_) => {}
        }
        out
    }

    fn diagnose(&self, bao: &Path, text: &str) -> Result<Diagnosis, String> {
        if let Some(done) = self
            .diagnosed
            .lock()
            .ok()
            .and_then(|m| m.get(text).cloned())
        {
            return done;
        }
        let result = run_diagnose(bao, text);
        if let Ok(mut m) = self.diagnosed.lock() {
            m.insert(text.to_string(), result.clone());
        }
        result
    }
}

/// ` line L:C` (or ` line L`), empty when unknown.
fn at(line: Option<usize>, col: Option<usize>) -> String {
    match (line, col) {
        (Some(l), Some(c)) => format!(" line {l}:{c}"),
        (Some(l), None) => format!(" line {l}"),
        _ => String::new(),
    }
}

/// `: "<the line>"` of the configuration, empty when unknown.
fn quote(text: &str, line: Option<usize>) -> String {
    line.and_then(|l| text.lines().nth(l.checked_sub(1)?))
        .map(|l| format!(": {:?}", l.trim()))
        .unwrap_or_default()
}

/// First line (1-based) that sets or opens `key`.
fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.starts_with([' ', '\t', '=', '{']))
        })
        .map(|i| i + 1)
}

/// `section -> keys` of a `config-keys.txt` (`section key` per line, `#` comments).
fn load_keys(path: &Path) -> Result<BTreeMap<String, BTreeSet<String>>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((section, key)) = line.split_once(char::is_whitespace) else {
            return Err(format!("{}: not `section key`: {line:?}", path.display()));
        };
        keys.entry(section.to_string())
            .or_default()
            .insert(key.trim().to_string());
    }
    Ok(keys)
}

/// Names set directly in a block body or in an object expression (`options = { … }`).
fn names_in_body(body: &Body) -> Vec<String> {
    body.attributes()
        .map(|a| a.key.as_str().to_string())
        .chain(body.blocks().map(|b| b.identifier.as_str().to_string()))
        .collect()
}

fn names_in_object(expr: &Expression) -> Vec<String> {
    match expr {
        Expression::Object(o) => o
            .keys()
            .filter_map(|k| match k {
                ObjectKey::Identifier(i) => Some(i.as_str().to_string()),
                ObjectKey::Expression(Expression::String(s)) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `(section, key)` of every key the parser passes through that OpenBao's source does not read.
fn unknown_static_keys(
    body: &Body,
    keys: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<(String, String)> {
    let known = |section: &str, key: &str| keys.get(section).is_some_and(|k| k.contains(key));
    let mut out = Vec::new();
    for block in body.blocks() {
        let label = block.labels.first().map(|l| l.as_str());
        match (block.identifier.as_str(), label) {
            ("storage", Some("raft")) => {
                for name in names_in_body(&block.body) {
                    if !known("storage", &name) && !known("storage.raft", &name) {
                        out.push(("storage \"raft\"".to_string(), name));
                    }
                }
                // retry_join as blocks, or as an attribute holding a list of objects
                let joins: Vec<Vec<String>> = block
                    .body
                    .blocks()
                    .filter(|b| b.identifier.as_str() == "retry_join")
                    .map(|b| names_in_body(&b.body))
                    .chain(
                        block
                            .body
                            .attributes()
                            .filter(|a| a.key.as_str() == "retry_join")
                            .flat_map(|a| match &a.expr {
                                Expression::Array(items) => {
                                    items.iter().map(names_in_object).collect()
                                }
                                other => vec![names_in_object(other)],
                            }),
                    )
                    .collect();
                for name in joins.into_iter().flatten() {
                    if !known("storage.raft.retry_join", &name) {
                        out.push(("storage \"raft\" retry_join".to_string(), name));
                    }
                }
            }
            ("audit", _) => {
                let kind = block
                    .body
                    .attributes()
                    .find(|a| a.key.as_str() == "type")
                    .and_then(|a| match &a.expr {
                        Expression::String(s) => Some(s.clone()),
                        _ => None,
                    })
                    .or(label.map(str::to_string));
                if kind.as_deref() != Some("file") {
                    continue;
                }
                let options: Vec<String> = block
                    .body
                    .blocks()
                    .filter(|b| b.identifier.as_str() == "options")
                    .flat_map(|b| names_in_body(&b.body))
                    .chain(
                        block
                            .body
                            .attributes()
                            .filter(|a| a.key.as_str() == "options")
                            .flat_map(|a| names_in_object(&a.expr)),
                    )
                    .collect();
                for name in options {
                    if !known("audit.file.options", &name) {
                        out.push(("audit \"file\" options".to_string(), name));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// `bao operator diagnose -format=json` of `text`, keeping only what the configuration parser said.
/// A second configuration file replaces the storage stanza with a type that does not exist, so
/// diagnose stops at "Check Storage": it never creates the Raft data directory named in the
/// configuration, nor opens the listeners (a later step). The environment is emptied so no
/// `BAO_*`/`VAULT_*` variable of the caller's shell changes what is read.
fn run_diagnose(bao: &Path, text: &str) -> Result<Diagnosis, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let file = dir.path().join("server.hcl");
    std::fs::write(&file, text).map_err(|e| e.to_string())?;
    let guard = dir.path().join("zz-no-storage.hcl");
    std::fs::write(&guard, "storage \"ffe-validate-no-storage\" {}\n")
        .map_err(|e| e.to_string())?;
    let stdout_path = dir.path().join("diagnose.json");
    let stdout = std::fs::File::create(&stdout_path).map_err(|e| e.to_string())?;
    let mut child = Command::new(bao)
        .args(["operator", "diagnose", "-format=json"])
        .args(["-skip=storage", "-skip=listener", "-skip=autounseal"])
        .arg(format!("-config={}", file.display()))
        .arg(format!("-config={}", guard.display()))
        .env_clear()
        .env("HOME", dir.path())
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", bao.display()))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() > DIAGNOSE_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} did not finish within {}s",
                    bao.display(),
                    DIAGNOSE_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
    let output = std::fs::read_to_string(&stdout_path).map_err(|e| e.to_string())?;
    parse_diagnosis(&output, &file.display().to_string())
}

/// The "Parse Configuration" result of diagnose's JSON report; `file` is the configuration's path.
fn parse_diagnosis(output: &str, file: &str) -> Result<Diagnosis, String> {
    let report: Value = serde_json::from_str(output).map_err(|e| {
        format!(
            "unexpected output (not JSON: {e}): {}",
            output.chars().take(300).collect::<String>()
        )
    })?;
    let step = report
        .get("children")
        .and_then(Value::as_array)
        .and_then(|c| {
            c.iter()
                .find(|s| s.get("name").and_then(Value::as_str) == Some("Parse Configuration"))
        })
        .ok_or_else(|| "its report has no \"Parse Configuration\" step".to_string())?;
    let mut d = Diagnosis::default();
    if step.get("status").and_then(Value::as_str) == Some("fail") {
        let message = step
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("(no message)");
        d.parse_error = Some(message.replace(file, "<config>"));
    }
    let location = format!(" found in configuration at {file}:");
    for warning in step
        .get("warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let Some(rest) = warning.strip_prefix(UNKNOWN_FIELD) else {
            continue;
        };
        // only what is in our file (the storage guard has nothing to report)
        let Some((key, position)) = rest.split_once(&location) else {
            continue;
        };
        let mut numbers = position
            .trim_end_matches('.')
            .split(':')
            .map(|n| n.parse::<usize>().ok());
        let (line, col) = (numbers.next().flatten(), numbers.next().flatten());
        d.unknown.push((key.to_string(), line, col));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnose_report_is_read() {
        let out = r#"{"name":"Vault Diagnose","children":[{"name":"Parse Configuration","status":"ok",
            "warnings":["Unknown or unsupported field bogus found in configuration at /t/server.hcl:9:3.",
                        "something else"]}]}"#;
        let d = parse_diagnosis(out, "/t/server.hcl").unwrap();
        assert_eq!(d.unknown, vec![("bogus".to_string(), Some(9), Some(3))]);
        assert!(d.parse_error.is_none());
        assert!(parse_diagnosis("{}", "/t/server.hcl").is_err());
    }

    #[test]
    fn key_lines() {
        let text = "a = 1\nstorage \"raft\" {\n  path_x = 1\n  path = 2\n}\n";
        assert_eq!(key_line(text, "path"), Some(4));
        assert_eq!(key_line(text, "storage"), Some(2));
        assert_eq!(key_line(text, "nope"), None);
    }
}

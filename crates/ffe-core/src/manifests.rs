//! Add-on bundles delivered through k3s's auto-deploy directory.
//!
//! k3s applies every file in `/var/lib/rancher/k3s/server/manifests/` but neither syncs that
//! directory between servers nor deletes objects when a file disappears. So a bundle is written
//! to every server (atomically, so k3s never reads half a file), and a file removed from a bundle
//! first has its objects deleted through the API, then disappears from every server.

use std::collections::BTreeMap;

use futures::stream::{self, StreamExt};

use crate::k3s::config::sha256_hex;
use crate::k3s::ops::{KUBECTL, KUBECTL_STEP};
use crate::k3s::Node;
use crate::shell::quote;
use crate::ssh::{SshError, SshPool, StdinSource};

pub const MANIFEST_DIR: &str = "/var/lib/rancher/k3s/server/manifests";

/// Marker in `checksums` for a file that is missing on at least one server.
pub const MISSING: &str = "missing";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest file name {name:?} must be lowercase letters, digits and '-', with one '.', in .yaml or .yml: k3s names each file's Addon object after the part before the first '.', so a second '.' makes files share one Addon (and overwrite each other's objects) and '_' is not valid in an object name")]
    BadFileName { name: String },
    #[error("{file}: line {line}, column {column}: {message}")]
    Yaml {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: document {doc} (starting at line {line}): {message}")]
    Document {
        file: String,
        doc: usize,
        line: usize,
        message: String,
    },
    #[error("{file}: contains no Kubernetes object")]
    Empty { file: String },
}

/// A file name whose k3s Addon name (`ffe-<bundle>--<stem>`, the stem being everything before
/// the first '.') is a valid object name unique to the file.
fn valid_file_name(name: &str) -> bool {
    let Some(stem) = name
        .strip_suffix(".yaml")
        .or_else(|| name.strip_suffix(".yml"))
    else {
        return false;
    };
    !stem.is_empty()
        && stem.len() <= 150
        && stem
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !stem.starts_with('-')
        && !stem.ends_with('-')
}

/// Check that `text` is YAML holding one or more Kubernetes objects (apiVersion, kind,
/// metadata.name). Errors name the file and the line.
pub fn validate(file: &str, text: &str) -> Result<usize, ManifestError> {
    if !valid_file_name(file) {
        return Err(ManifestError::BadFileName { name: file.into() });
    }
    let mut count = 0;
    // Split on document markers ourselves so each document's starting line is known.
    let mut docs: Vec<(usize, String)> = vec![(1, String::new())];
    for (i, line) in text.lines().enumerate() {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            docs.push((i + 2, String::new()));
        } else if let Some((_, buf)) = docs.last_mut() {
            buf.push_str(line);
            buf.push('\n');
        }
    }
    for (idx, (start, body)) in docs.iter().enumerate() {
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(body).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line() + start - 1, l.column()))
                .unwrap_or((*start, 0));
            ManifestError::Yaml {
                file: file.into(),
                line,
                column,
                message: e.to_string(),
            }
        })?;
        if value.is_null() {
            continue;
        }
        let doc_err = |message: &str| ManifestError::Document {
            file: file.into(),
            doc: idx + 1,
            line: *start,
            message: message.into(),
        };
        let m = value
            .as_mapping()
            .ok_or_else(|| doc_err("is not a mapping (a Kubernetes object)"))?;
        for key in ["apiVersion", "kind"] {
            if m.get(key)
                .and_then(|v| v.as_str())
                .is_none_or(str::is_empty)
            {
                return Err(doc_err(&format!("has no {key}")));
            }
        }
        if value["metadata"]["name"].as_str().is_none_or(str::is_empty) {
            return Err(doc_err("has no metadata.name"));
        }
        count += 1;
    }
    if count == 0 {
        return Err(ManifestError::Empty { file: file.into() });
    }
    Ok(count)
}

/// Where a bundle's file lives on a server. The bundle prefix keeps bundles apart and lets
/// strays of a bundle be found.
pub fn remote_path(bundle: &str, file: &str) -> String {
    format!("{MANIFEST_DIR}/ffe-{bundle}--{file}")
}

/// Every (bundle, file) name is checked again where it becomes a remote path: at plan time
/// values can be unknown, so `validate` may never have seen them (issue 11 B.8).
pub fn check_names<'a>(
    bundle: &str,
    files: impl IntoIterator<Item = &'a String>,
) -> Result<(), BundleError> {
    // the same rule the provider applies to `bundle` at validate time
    let bundle_ok = crate::k3s::planner::is_dns_label(bundle) && bundle.len() <= 40;
    let bad = |file: &str| BundleError::BadName {
        bundle: bundle.into(),
        file: file.into(),
    };
    if !bundle_ok {
        return Err(bad(""));
    }
    match files.into_iter().find(|f| !valid_file_name(f)) {
        Some(f) => Err(bad(f)),
        None => Ok(()),
    }
}

/// The `Addon` object (kube-system) k3s's deploy controller keeps for a file: named after the
/// file name up to its first '.', holding the checksum of what it last applied.
pub fn addon_name(bundle: &str, file: &str) -> String {
    let stem = file.split('.').next().unwrap_or(file);
    format!("ffe-{bundle}--{stem}")
}

/// sha256 of every file's content.
pub fn checksums(files: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(f, text)| (f.clone(), sha256_hex(text.as_bytes())))
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("bundle {bundle:?}, file {file:?}: refusing a name that is not a plain manifest file name (it could leave the manifests directory or share a k3s Addon); nothing was written")]
    BadName { bundle: String, file: String },
    #[error("{0}")]
    Many(String),
}

/// What each file looks like across the servers: its sha256 when identical on every server,
/// otherwise [`MISSING`] or `differs on <servers>` (those unlike the majority). Unreachable
/// servers are reported apart.
pub async fn read(
    pool: &SshPool,
    servers: &[Node],
    bundle: &str,
    files: &[String],
) -> (BTreeMap<String, String>, Vec<String>) {
    let script: String = files
        .iter()
        .map(|f| {
            format!(
                "printf '%s=%s\\n' {qf} \"$(sha256sum {p} 2>/dev/null | cut -d' ' -f1)\"; ",
                qf = quote(f),
                p = quote(&remote_path(bundle, f))
            )
        })
        .collect();
    let futs: Vec<_> = servers
        .iter()
        .map(|s| {
            let script = script.clone();
            async move {
                let r = pool
                    .run(&s.target(), "read manifest checksums", &script)
                    .await;
                (s.name.clone(), r)
            }
        })
        .collect();
    let results: Vec<(String, Result<String, SshError>)> =
        stream::iter(futs).buffer_unordered(8).collect().await;
    let mut per_file: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut warnings = vec![];
    for (server, r) in results {
        match r {
            Ok(out) => {
                for line in out.lines() {
                    if let Some((f, sha)) = line.split_once('=') {
                        per_file
                            .entry(f.to_string())
                            .or_default()
                            .push((server.clone(), sha.trim().to_string()));
                    }
                }
            }
            Err(e) => warnings.push(e.to_string()),
        }
    }
    let state = files
        .iter()
        .map(|f| {
            let seen = per_file.get(f).cloned().unwrap_or_default();
            let value = if seen.iter().any(|(_, sha)| sha.is_empty()) || seen.is_empty() {
                MISSING.to_string()
            } else if seen.windows(2).any(|w| w[0].1 != w[1].1) {
                // Name the servers that disagree with the most common content.
                let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                for (_, sha) in &seen {
                    *counts.entry(sha.as_str()).or_default() += 1;
                }
                let common = counts
                    .iter()
                    .max_by_key(|(_, n)| **n)
                    .map(|(sha, _)| sha.to_string())
                    .unwrap_or_default();
                let mut odd: Vec<String> = seen
                    .iter()
                    .filter(|(_, sha)| *sha != common)
                    .map(|(s, _)| s.clone())
                    .collect();
                odd.sort();
                format!("differs on {}", odd.join(", "))
            } else {
                seen[0].1.clone()
            };
            (f.clone(), value)
        })
        .collect();
    (state, warnings)
}

/// Write every file of `files` to every server (atomically), all servers in parallel.
pub async fn write_all(
    pool: &SshPool,
    servers: &[Node],
    bundle: &str,
    files: &BTreeMap<String, String>,
) -> Result<(), BundleError> {
    check_names(bundle, files.keys())?;
    let futs: Vec<_> = servers
        .iter()
        .map(|s| async move {
            for (f, text) in files {
                pool.write_file(
                    &s.target(),
                    &format!("write manifest {f}"),
                    &remote_path(bundle, f),
                    0o600,
                    StdinSource::Bytes(text.as_bytes()),
                )
                .await?;
            }
            Ok::<_, SshError>(())
        })
        .collect();
    let errors: Vec<String> = stream::iter(futs)
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(BundleError::Many(errors.join("\n")))
    }
}

/// Run `script` on the first server that answers and return its output. `Ok(Err(last))`:
/// every server was unreachable; any other failure is an error.
pub(crate) async fn on_first_answering(
    pool: &SshPool,
    servers: &[Node],
    step: &str,
    script: &str,
    stdin: Option<&[u8]>,
) -> Result<Result<String, String>, BundleError> {
    let mut last = String::from("no server");
    for s in servers {
        match pool
            .run_input_within(
                &s.target(),
                step,
                script,
                stdin.map(StdinSource::Bytes),
                KUBECTL_STEP,
            )
            .await
        {
            Ok(out) => return Ok(Ok(out)),
            Err(e) if e.is_unreachable() => last = e.to_string(),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Err(last))
}

/// How long removing a bundle waits for helm-controller to uninstall the charts of its HelmCharts.
pub const HELM_UNINSTALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// `(namespace, name)` of every HelmChart among `files`' objects (documents that do not parse
/// are skipped: every file was validated before it was written).
pub fn helmcharts(files: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for text in files.values() {
        for doc in serde_yaml_ng::Deserializer::from_str(text) {
            let Ok(v) = <serde_yaml_ng::Value as serde::Deserialize>::deserialize(doc) else {
                continue;
            };
            let api = v["apiVersion"].as_str().unwrap_or_default();
            if v["kind"].as_str() == Some("HelmChart") && api.starts_with("helm.cattle.io/") {
                if let Some(name) = v["metadata"]["name"].as_str() {
                    let ns = v["metadata"]["namespace"].as_str().unwrap_or("default");
                    out.push((ns.to_string(), name.to_string()));
                }
            }
        }
    }
    out
}

/// Shell that returns once none of `charts` exists any more, or fails after `timeout_secs`
/// naming the ones left. A failing `get` (API not answering) is retried, never taken for gone.
pub fn helmcharts_gone_script(charts: &[(String, String)], timeout_secs: u64) -> String {
    let mut script = format!("end=$(( $(date +%s) + {timeout_secs} )); ");
    for (ns, name) in charts {
        script.push_str(&format!(
            "while :; do \
             if left=$({KUBECTL} get -n {ns} helmchart/{name} --ignore-not-found -o name 2>&1) \
             && [ -z \"$left\" ]; then break; fi; \
             if [ $(date +%s) -ge $end ]; then \
             echo \"HelmChart {shown} still there after {timeout_secs} s: $left\" >&2; exit 1; fi; \
             sleep 2; done; ",
            ns = quote(ns),
            name = quote(name),
            shown = format!("{ns}/{name}").replace(['"', '\\', '$', '`'], "_"),
        ));
    }
    script
}

/// Delete the objects `files` created (through the API, on the first server that answers),
/// remove the files from every server, wait until helm-controller has uninstalled the charts of
/// deleted HelmCharts, then delete the files' Addons.
pub async fn remove(
    pool: &SshPool,
    servers: &[Node],
    bundle: &str,
    files: &BTreeMap<String, String>,
) -> Result<Vec<String>, BundleError> {
    let mut warnings = vec![];
    if files.is_empty() {
        return Ok(warnings);
    }
    check_names(bundle, files.keys())?;
    let mut all = String::new();
    for text in files.values() {
        all.push_str("---\n");
        all.push_str(text);
        all.push('\n');
    }
    if let Err(last) = on_first_answering(
        pool,
        servers,
        "delete removed manifests' objects",
        &format!("{KUBECTL} delete --ignore-not-found --wait=false -f -"),
        Some(all.as_bytes()),
    )
    .await?
    {
        return Err(BundleError::Many(format!(
            "no server could delete the objects of {}: {last}",
            files.keys().cloned().collect::<Vec<_>>().join(", "),
        )));
    }
    let rm: Vec<String> = files
        .keys()
        .map(|f| quote(&remote_path(bundle, f)))
        .collect();
    let script = format!("rm -f {}", rm.join(" "));
    for s in servers {
        if let Err(e) = pool
            .run(&s.target(), "remove manifest files", &script)
            .await
        {
            if e.is_unreachable() {
                warnings.push(format!(
                    "{}: could not remove {} ({e}); remove them by hand or k3s re-creates their objects when it restarts",
                    s.target(),
                    rm.join(" ")
                ));
            } else {
                return Err(e.into());
            }
        }
    }
    // helm-controller uninstalls a deleted HelmChart's release with a job, and the HelmChart goes
    // only when that is done. Wait for it here, before anything that depends on this bundle
    // changes: Terraform applies this removal before the bundles it depended on are updated, and
    // one of those may prune the release's namespace (and Helm's record of the release with it),
    // which would leave the chart's cluster-wide objects (CRDs, webhooks, roles) behind.
    let charts = helmcharts(files);
    if !charts.is_empty() {
        let script = helmcharts_gone_script(&charts, HELM_UNINSTALL_TIMEOUT.as_secs());
        let mut gone = false;
        let mut last = String::from("no server");
        for s in servers {
            match pool
                .run_within(
                    &s.target(),
                    "wait for removed HelmCharts' uninstall",
                    &script,
                    HELM_UNINSTALL_TIMEOUT + KUBECTL_STEP,
                )
                .await
            {
                Ok(_) => {
                    gone = true;
                    break;
                }
                Err(e) if e.is_unreachable() => last = e.to_string(),
                Err(e) => {
                    last = e.to_string();
                    break;
                }
            }
        }
        if !gone {
            let names: Vec<String> = charts.iter().map(|(ns, n)| format!("{ns}/{n}")).collect();
            return Err(BundleError::Many(format!(
                "bundle {bundle:?}: the HelmCharts {} were deleted, but helm-controller had not \
                 finished uninstalling their charts within {} s ({last}). Look at its job: \
                 `kubectl -n kube-system get jobs | grep helm-delete` and \
                 `kubectl -n kube-system logs job/helm-delete-<name>`; once the HelmCharts are \
                 gone, apply again (the removal picks up where it stopped).",
                names.join(", "),
                HELM_UNINSTALL_TIMEOUT.as_secs()
            )));
        }
    }
    // The deploy controller keeps each file's Addon (with its checksum) after the file is gone:
    // if the same content came back later it would be skipped as already applied. Delete them,
    // after the files (a file still present would re-create its Addon).
    let addons: Vec<String> = files
        .keys()
        .map(|f| quote(&addon_name(bundle, f)))
        .collect();
    let delete_addons = format!(
        "{KUBECTL} delete addon -n kube-system --ignore-not-found {}",
        addons.join(" ")
    );
    if on_first_answering(
        pool,
        servers,
        "delete removed manifests' Addons",
        &delete_addons,
        None,
    )
    .await?
    .is_err()
    {
        warnings.push(format!(
            "no server could delete the Addons {}: if the same files come back, k3s skips them until you run `kubectl -n kube-system delete addon {}`",
            addons.join(" "),
            addons.join(" ")
        ));
    }
    Ok(warnings)
}

/// One readiness condition to wait for after a bundle is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitFor {
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    pub condition: String,
}

impl WaitFor {
    /// Wait until the object exists (k3s's controllers create it some time after the file
    /// lands), then for the condition, all within `timeout_secs`.
    fn command(&self, timeout_secs: u64) -> String {
        let ns = self
            .namespace
            .as_deref()
            .map(|n| format!(" -n {}", quote(n)))
            .unwrap_or_default();
        let obj = format!("{}/{}", quote(&self.kind), quote(&self.name));
        format!(
            "end=$(( $(date +%s) + {timeout_secs} )); \
             until {KUBECTL} get{ns} {obj} >/dev/null 2>&1; do \
             [ $(date +%s) -ge $end ] && {{ echo 'not created within {timeout_secs} s' >&2; exit 1; }}; sleep 2; done; \
             left=$(( end - $(date +%s) )); [ $left -lt 1 ] && left=1; \
             {KUBECTL} wait{ns} --for=condition={} --timeout=${{left}}s {obj}",
            quote(&self.condition),
        )
    }
}

/// Wait for every condition, through the first server that answers.
pub async fn wait(
    pool: &SshPool,
    servers: &[Node],
    conditions: &[WaitFor],
    timeout_secs: u64,
) -> Result<(), BundleError> {
    for c in conditions {
        let mut ok = false;
        let mut last = String::new();
        for s in servers {
            match pool
                .run_within(
                    &s.target(),
                    &format!("wait for {}/{} {}", c.kind, c.name, c.condition),
                    &c.command(timeout_secs),
                    std::time::Duration::from_secs(timeout_secs) + KUBECTL_STEP,
                )
                .await
            {
                Ok(_) => {
                    ok = true;
                    break;
                }
                Err(e) if e.is_unreachable() => last = e.to_string(),
                Err(e) => {
                    return Err(BundleError::Many(format!(
                        "{e}\n{}/{} did not reach condition {} within {timeout_secs} s: check `kubectl describe {} {}`",
                        c.kind, c.name, c.condition, c.kind, c.name
                    )))
                }
            }
        }
        if !ok {
            return Err(BundleError::Many(format!("no server answered: {last}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    /// Runs `helmcharts_gone_script` with a fake `k3s` on PATH that answers `get` from a
    /// list of replies (one per call: `present`, `gone` or `error`; the last one repeats).
    fn run_gone_script(replies: &[&str], timeout_secs: u64) -> (std::process::Output, usize) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("replies"), replies.join("\n") + "\n").unwrap();
        let fake = dir.path().join("k3s");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\nd={d}\nn=$(cat $d/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > $d/count\n\
                 r=$(sed -n \"${{n}}p\" $d/replies); [ -n \"$r\" ] || r=$(tail -n 1 $d/replies)\n\
                 echo \"$*\" >> $d/args\n\
                 case $r in present) echo helmchart.helm.cattle.io/istio-base;; gone) ;; \
                 *) echo 'The connection to the server was refused' >&2; exit 1;; esac\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let script =
            helmcharts_gone_script(&[("kube-system".into(), "istio-base".into())], timeout_secs);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    dir.path().display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .output()
            .unwrap();
        let args = std::fs::read_to_string(dir.path().join("args")).unwrap_or_default();
        assert!(
            args.lines().all(|l| l
                .contains("get -n kube-system helmchart/istio-base --ignore-not-found -o name")),
            "{args}"
        );
        (out, args.lines().count())
    }

    #[test]
    fn removal_waits_until_the_helmchart_is_gone() {
        let (out, calls) = run_gone_script(&["present", "gone"], 60);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(calls, 2);
    }

    #[test]
    fn an_api_error_is_not_taken_for_gone() {
        let (out, calls) = run_gone_script(&["error", "gone"], 60);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(calls, 2, "the failed get must be retried");
    }

    #[test]
    fn a_helmchart_that_stays_fails_after_the_timeout_naming_it() {
        let (out, calls) = run_gone_script(&["present"], 1);
        assert!(!out.status.success());
        assert!(calls >= 1);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("HelmChart kube-system/istio-base still there after 1 s"),
            "{err}"
        );
    }

    #[test]
    fn helmcharts_are_found_among_the_files_objects() {
        let files = BTreeMap::from([
            (
                "a.yaml".to_string(),
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\n\
                 apiVersion: helm.cattle.io/v1\nkind: HelmChart\nmetadata: {name: istio-base, namespace: kube-system}\n"
                    .to_string(),
            ),
            (
                "b.yaml".to_string(),
                "apiVersion: example.com/v1\nkind: HelmChart\nmetadata: {name: not-k3s}\n".to_string(),
            ),
        ]);
        assert_eq!(
            helmcharts(&files),
            vec![("kube-system".to_string(), "istio-base".to_string())]
        );
    }

    use super::*;

    #[test]
    fn valid_multi_document_file_counts_objects() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ffe\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: vault\n---\n";
        assert_eq!(validate("namespaces.yaml", text), Ok(2));
    }

    #[test]
    fn broken_yaml_names_file_and_line() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ffe\n---\napiVersion: v1\nkind: [unclosed\n";
        match validate("ns.yaml", text) {
            Err(ManifestError::Yaml { file, line, .. }) => {
                assert_eq!(file, "ns.yaml");
                assert!((7..=8).contains(&line), "line {line}");
            }
            other => panic!("expected a YAML error, got {other:?}"),
        }
        let msg = validate("ns.yaml", text).unwrap_err().to_string();
        assert!(msg.starts_with("ns.yaml: line "), "{msg}");
    }

    #[test]
    fn objects_need_kind_and_name() {
        assert!(matches!(
            validate("a.yaml", "apiVersion: v1\nmetadata:\n  name: x\n"),
            Err(ManifestError::Document { .. })
        ));
        assert!(matches!(
            validate("a.yaml", "apiVersion: v1\nkind: ConfigMap\n"),
            Err(ManifestError::Document { .. })
        ));
        assert!(matches!(
            validate("a.yaml", "- 1\n- 2\n"),
            Err(ManifestError::Document { .. })
        ));
        assert!(matches!(
            validate("a.yaml", "# nothing\n"),
            Err(ManifestError::Empty { .. })
        ));
    }

    #[test]
    fn file_names_are_restricted() {
        assert!(matches!(
            validate("../etc/passwd.yaml", "x"),
            Err(ManifestError::BadFileName { .. })
        ));
        assert!(matches!(
            validate("Calico.yaml", "x"),
            Err(ManifestError::BadFileName { .. })
        ));
        assert!(matches!(
            validate("calico.json", "x"),
            Err(ManifestError::BadFileName { .. })
        ));
        // Issue 11 A.7: k3s's Addon is named after the part before the first '.'
        for shared_or_invalid in [
            "gateway.networking.k8s.io_gateways.yaml",
            "a.b.yaml",
            "snake_case.yaml",
            "-x.yaml",
        ] {
            assert!(
                matches!(
                    validate(shared_or_invalid, "x"),
                    Err(ManifestError::BadFileName { .. })
                ),
                "{shared_or_invalid} accepted"
            );
        }
        assert_eq!(addon_name("app", "helmchart.yaml"), "ffe-app--helmchart");
        // issue 11 B.8: checked again where names become remote paths
        let ok = String::from("calico.yaml");
        assert!(check_names("cni", [&ok]).is_ok());
        for (bundle, file) in [
            ("cni", "../../etc/cron.d/x.yaml"),
            ("cni", "a/b.yaml"),
            ("../x", "calico.yaml"),
            ("cni", "a..yaml"),
        ] {
            assert!(
                matches!(
                    check_names(bundle, [&file.to_string()]),
                    Err(BundleError::BadName { .. })
                ),
                "{bundle}/{file} accepted"
            );
        }
        assert_eq!(
            remote_path("cni", "calico.yaml"),
            "/var/lib/rancher/k3s/server/manifests/ffe-cni--calico.yaml"
        );
    }

    #[test]
    fn wait_command_is_quoted() {
        let w = WaitFor {
            kind: "deployment".into(),
            name: "tigera-operator".into(),
            namespace: Some("tigera-operator".into()),
            condition: "Available".into(),
        };
        let cmd = w.command(60);
        let syntax = std::process::Command::new("sh")
            .args(["-n", "-c", &cmd])
            .status()
            .unwrap();
        assert!(syntax.success(), "not valid shell: {cmd}");
        assert!(cmd.contains(
            "until k3s kubectl --request-timeout=30s get -n tigera-operator deployment/tigera-operator"
        ));
        assert!(cmd.contains(
            "k3s kubectl --request-timeout=30s wait -n tigera-operator --for=condition=Available --timeout=${left}s deployment/tigera-operator"
        ));
    }
}

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

/// Write every file of `files` to every server (atomically), all servers in parallel; first,
/// wait until none of their HelmCharts is still being uninstalled by an earlier removal.
pub async fn write_all(
    pool: &SshPool,
    servers: &[Node],
    bundle: &str,
    files: &BTreeMap<String, String>,
) -> Result<(), BundleError> {
    check_names(bundle, files.keys())?;
    let charts = helmcharts(files);
    if !charts.is_empty() {
        let waited = wait_for_helmcharts(
            pool,
            servers,
            "wait for HelmCharts still being uninstalled",
            &charts,
            helmcharts_not_terminating_script,
        )
        .await;
        if let Err(e) = waited {
            return Err(BundleError::Many(format!(
                "bundle {bundle:?}: not written: {e}. An earlier apply removed it and \
                 helm-controller is still uninstalling it (`kubectl -n kube-system get jobs | grep \
                 helm-delete`); apply again once the HelmChart is gone."
            )));
        }
    }
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

/// Shell that returns once none of `charts` is being deleted (a `deletionTimestamp`: its uninstall
/// job still running), or fails after `timeout_secs` naming it. Writing a HelmChart that is
/// being deleted would be lost: k3s applies the file to the dying object, records the file as
/// applied, and never creates it again once the uninstall ends. An API that does not answer
/// does not hold the write up (the write never needed the API).
pub fn helmcharts_not_terminating_script(charts: &[(String, String)], timeout_secs: u64) -> String {
    per_chart_script(charts, timeout_secs, |get, shown| {
        format!(
            "while ts=$({get} -o jsonpath='{{.metadata.deletionTimestamp}}' 2>/dev/null) \
             && [ -n \"$ts\" ]; do \
             if [ $(date +%s) -ge $end ]; then \
             echo \"HelmChart {shown} is still being uninstalled (deleted at $ts) after {timeout_secs} s\" >&2; \
             exit 1; fi; \
             sleep 2; done; "
        )
    })
}

/// One deadline (`$end`, `timeout_secs` from now) and, per chart, the loop `body` builds from the
/// chart's `kubectl get … --ignore-not-found` command and its printable `namespace/name`.
fn per_chart_script(
    charts: &[(String, String)],
    timeout_secs: u64,
    body: impl Fn(&str, &str) -> String,
) -> String {
    let mut script = format!("end=$(( $(date +%s) + {timeout_secs} )); ");
    for (ns, name) in charts {
        let get = format!(
            "{KUBECTL} get -n {} helmchart/{} --ignore-not-found",
            quote(ns),
            quote(name)
        );
        let shown = format!("{ns}/{name}").replace(['"', '\\', '$', '`'], "_");
        script.push_str(&body(&get, &shown));
    }
    script
}

/// Run the wait `script_for(charts, HELM_UNINSTALL_TIMEOUT)` builds on the first server that
/// answers: `Ok(true)` when it succeeded, `Ok(false)` when no server answered, `Err(message)`
/// when it failed.
async fn wait_for_helmcharts(
    pool: &SshPool,
    servers: &[Node],
    step: &str,
    charts: &[(String, String)],
    script_for: fn(&[(String, String)], u64) -> String,
) -> Result<bool, String> {
    let script = script_for(charts, HELM_UNINSTALL_TIMEOUT.as_secs());
    let limit = HELM_UNINSTALL_TIMEOUT + KUBECTL_STEP;
    for s in servers {
        match pool.run_within(&s.target(), step, &script, limit).await {
            Ok(_) => return Ok(true),
            Err(e) if e.is_unreachable() => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(false)
}

/// How long removing a bundle waits for helm-controller to uninstall the charts of its HelmCharts.
pub const HELM_UNINSTALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// One object of a manifest: `(API group, kind, namespace, name)` and its document.
type Declared = ((String, String, String, String), serde_yaml_ng::Value);

/// Every object `files` declare (documents that do not parse are skipped: every file was
/// validated before it was written). No namespace reads as `default`, as kubectl applies it.
fn declared(files: &BTreeMap<String, String>) -> Vec<Declared> {
    let mut out = Vec::new();
    for text in files.values() {
        for doc in serde_yaml_ng::Deserializer::from_str(text) {
            let Ok(v) = <serde_yaml_ng::Value as serde::Deserialize>::deserialize(doc) else {
                continue;
            };
            let (Some(api), Some(kind), Some(name)) = (
                v["apiVersion"].as_str(),
                v["kind"].as_str(),
                v["metadata"]["name"].as_str(),
            ) else {
                continue;
            };
            let group = api.rsplit_once('/').map_or("", |(g, _)| g);
            let ns = v["metadata"]["namespace"].as_str().unwrap_or("default");
            let id = (group.into(), kind.into(), ns.into(), name.into());
            out.push((id, v));
        }
    }
    out
}

/// `(namespace, name)` of every HelmChart (helm.cattle.io) among `files`' objects.
pub fn helmcharts(files: &BTreeMap<String, String>) -> Vec<(String, String)> {
    helmcharts_of(&declared(files))
}

fn helmcharts_of(objects: &[Declared]) -> Vec<(String, String)> {
    objects
        .iter()
        .filter(|((group, kind, _, _), _)| group == "helm.cattle.io" && kind == "HelmChart")
        .map(|((_, _, ns, name), _)| (ns.clone(), name.clone()))
        .collect()
}

/// The objects of `removed` files that no `kept` file declares: what removing the files
/// deletes. An object that moved to another file of the bundle stays.
fn to_delete(removed: &BTreeMap<String, String>, kept: &BTreeMap<String, String>) -> Vec<Declared> {
    let still: std::collections::BTreeSet<_> =
        declared(kept).into_iter().map(|(id, _)| id).collect();
    declared(removed)
        .into_iter()
        .filter(|(id, _)| !still.contains(id))
        .collect()
}

/// Shell that returns once none of `charts` exists any more, or fails after `timeout_secs`
/// naming the ones left. A failing `get` (API not answering) is retried, never taken for gone;
/// only stdout counts (kubectl may warn on stderr, e.g. about an aggregated API that is down).
pub fn helmcharts_gone_script(charts: &[(String, String)], timeout_secs: u64) -> String {
    per_chart_script(charts, timeout_secs, |get, shown| {
        format!(
            "while :; do \
             if left=$({get} -o name 2>/dev/null) && [ -z \"$left\" ]; then break; fi; \
             if [ $(date +%s) -ge $end ]; then \
             echo \"HelmChart {shown} still there after {timeout_secs} s: \
             ${{left:-$({get} -o name 2>&1 | tail -n 3)}}\" >&2; \
             exit 1; fi; \
             sleep 2; done; "
        )
    })
}

/// Delete the objects `files` created (through the API, on the first server that answers),
/// remove the files from every server, wait until helm-controller has uninstalled the charts of
/// deleted HelmCharts, then delete the files' Addons.
pub async fn remove(
    pool: &SshPool,
    servers: &[Node],
    bundle: &str,
    files: &BTreeMap<String, String>,
    kept: &BTreeMap<String, String>,
) -> Result<Vec<String>, BundleError> {
    let mut warnings = vec![];
    if files.is_empty() {
        return Ok(warnings);
    }
    check_names(bundle, files.keys())?;
    // Objects that moved to a file the bundle keeps are not deleted (nor waited for).
    let doomed = to_delete(files, kept);
    let mut all = String::new();
    for (_, doc) in &doomed {
        let text = serde_yaml_ng::to_string(doc)
            .map_err(|e| BundleError::Many(format!("bundle {bundle:?}: {e}")))?;
        all.push_str("---\n");
        all.push_str(&text);
    }
    if doomed.is_empty() {
        // nothing of the removed files is gone from the bundle: only the files go
    } else if let Err(last) = on_first_answering(
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
    let charts = helmcharts_of(&doomed);
    let mut uninstall_failed = None;
    if !charts.is_empty() {
        let names: Vec<String> = charts.iter().map(|(ns, n)| format!("{ns}/{n}")).collect();
        let waited = wait_for_helmcharts(
            pool,
            servers,
            "wait for removed HelmCharts' uninstall",
            &charts,
            helmcharts_gone_script,
        )
        .await;
        uninstall_failed = match waited {
            Ok(true) => None,
            Ok(false) => Some(format!(
                "bundle {bundle:?}: the HelmCharts {} were deleted, but no server answered to \
                 confirm that helm-controller uninstalled their charts; apply again once the \
                 servers are reachable",
                names.join(", ")
            )),
            Err(e) => Some(format!(
                "bundle {bundle:?}: the HelmCharts {} were deleted, but waiting for \
                 helm-controller to uninstall their charts failed: {e}. Look at its jobs: \
                 `kubectl -n kube-system get jobs | grep helm-delete`, \
                 `kubectl -n kube-system logs job/helm-delete-<name>`; once the HelmCharts are \
                 gone, apply again (the removal picks up where it stopped).",
                names.join(", ")
            )),
        };
    }
    // The deploy controller keeps each file's Addon (with its checksum) after the file is gone:
    // if the same content came back later it would be skipped as already applied. Delete them,
    // after the files (a file still present would re-create its Addon), also when the uninstall
    // wait failed: a file brought back then is applied anew once its HelmChart is gone
    // (`write_all` waits for that).
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
    match uninstall_failed {
        Some(message) => Err(BundleError::Many(message)),
        None => Ok(warnings),
    }
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

    /// Runs `script` with a fake `k3s` on PATH that answers each call with the next of
    /// `replies` (the last one repeats), as the `case` arms in `answers` say; returns the run and
    /// the arguments of each call (which must all contain `expected_args`).
    fn run_with_fake_k3s(
        script: &str,
        answers: &str,
        replies: &[&str],
        expected_args: &str,
    ) -> (std::process::Output, usize) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("replies"), replies.join("\n") + "\n").unwrap();
        let fake = dir.path().join("k3s");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\nd={d}\nn=$(cat $d/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > $d/count\n\
                 r=$(sed -n \"${{n}}p\" $d/replies); [ -n \"$r\" ] || r=$(tail -n 1 $d/replies)\n\
                 echo \"$*\" >> $d/args\n\
                 case $r in {answers} \
                 *) echo 'The connection to the server was refused' >&2; exit 1;; esac\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let out = crate::shell::sh_with_tools(script, dir.path());
        let args = std::fs::read_to_string(dir.path().join("args")).unwrap_or_default();
        assert!(args.lines().all(|l| l.contains(expected_args)), "{args}");
        (out, args.lines().count())
    }

    const CHART: &[(&str, &str)] = &[("kube-system", "istio-base")];

    fn chart() -> Vec<(String, String)> {
        CHART
            .iter()
            .map(|(n, c)| (n.to_string(), c.to_string()))
            .collect()
    }

    /// `helmcharts_gone_script` against replies `present`, `gone`, `warn-gone` or `error`.
    fn run_gone_script(replies: &[&str], timeout_secs: u64) -> (std::process::Output, usize) {
        run_with_fake_k3s(
            &helmcharts_gone_script(&chart(), timeout_secs),
            "present) echo helmchart.helm.cattle.io/istio-base;; gone) ;; \
             warn-gone) echo 'E1205 memcache.go:265] could not get resource list' >&2;;",
            replies,
            "get -n kube-system helmchart/istio-base --ignore-not-found -o name",
        )
    }

    #[test]
    fn a_warning_on_stderr_is_not_taken_for_the_helmchart() {
        let (out, calls) = run_gone_script(&["warn-gone"], 60);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(calls, 1);
    }

    /// `helmcharts_not_terminating_script` against replies `dying`, `alive` or `error`.
    fn run_terminating_script(
        replies: &[&str],
        timeout_secs: u64,
    ) -> (std::process::Output, usize) {
        run_with_fake_k3s(
            &helmcharts_not_terminating_script(&chart(), timeout_secs),
            "dying) printf 2026-12-05T09:00:00Z;; alive) ;;",
            replies,
            "get -n kube-system helmchart/istio-base --ignore-not-found -o jsonpath={.metadata.deletionTimestamp}",
        )
    }

    #[test]
    fn a_write_waits_while_its_helmchart_is_being_uninstalled() {
        let (out, calls) = run_terminating_script(&["dying", "alive"], 60);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(calls, 2);
        let (out, _) = run_terminating_script(&["dying"], 1);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("HelmChart kube-system/istio-base is still being uninstalled (deleted at 2026-12-05T09:00:00Z)"),
            "{err}"
        );
        // an API that does not answer does not hold the write up
        let (out, calls) = run_terminating_script(&["error"], 60);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(calls, 1);
    }

    #[test]
    fn objects_that_moved_to_a_kept_file_are_not_deleted() {
        let chart = |name: &str| {
            format!("apiVersion: helm.cattle.io/v1\nkind: HelmChart\nmetadata: {{name: {name}, namespace: kube-system}}\n")
        };
        let removed = BTreeMap::from([(
            "a.yaml".to_string(),
            format!("{}---\n{}", chart("moved"), chart("gone")),
        )]);
        let kept = BTreeMap::from([("b.yaml".to_string(), chart("moved"))]);
        let doomed = to_delete(&removed, &kept);
        assert_eq!(
            helmcharts_of(&doomed),
            vec![("kube-system".to_string(), "gone".to_string())]
        );
        // the same name in another namespace or API group is another object
        let other = BTreeMap::from([(
            "b.yaml".to_string(),
            "apiVersion: helm.cattle.io/v1\nkind: HelmChart\nmetadata: {name: gone, namespace: other}\n---\n\
             apiVersion: example.com/v1\nkind: HelmChart\nmetadata: {name: moved, namespace: kube-system}\n"
                .to_string(),
        )]);
        assert_eq!(helmcharts_of(&to_delete(&removed, &other)).len(), 2);
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

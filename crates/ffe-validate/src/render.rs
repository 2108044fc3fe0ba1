//! Rendering a vendored upstream chart with `helm template`, exactly as k3s's helm-controller
//! would install it: release name = HelmChart name, namespace = targetNamespace, our
//! valuesContent as the values file, CRDs from the chart's `crds/` included.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

use crate::upstream::VendoredChart;
use crate::KubeVersion;

/// One object `helm template` produced.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The chart file it came from (`# Source:` line), e.g. `cert-manager/templates/deployment.yaml`.
    pub source: String,
    /// Whether it came from a `crds/` directory (Helm installs those before anything else).
    pub from_crds_dir: bool,
    pub value: Value,
}

/// Finds the Helm executable: `FFE_HELM`, else `tools/bin/helm` of the repository, else `helm`.
pub fn locate_helm(repo_root: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("FFE_HELM") {
        return PathBuf::from(p);
    }
    let local = repo_root.join("tools/bin/helm");
    if local.is_file() {
        local
    } else {
        PathBuf::from("helm")
    }
}

/// Renders `chart` with `values` (our valuesContent) as release `release` in `namespace`.
/// `Err` carries Helm's own message (schema violations, template failures).
pub fn template(
    helm: &Path,
    chart: &VendoredChart,
    release: &str,
    namespace: &str,
    values: &Value,
    kube_version: &KubeVersion,
    api_versions: &BTreeSet<String>,
) -> Result<Vec<Rendered>, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let values_file = dir.path().join("values.yaml");
    let text = serde_yaml_ng::to_string(values).map_err(|e| e.to_string())?;
    std::fs::write(&values_file, text).map_err(|e| e.to_string())?;
    let mut command = Command::new(helm);
    // the API groups the cluster will serve (CRDs the plan delivers): charts that render an object
    // only when its API exists (`.Capabilities.APIVersions.Has`) see what the real install sees
    for api in api_versions {
        command.args(["--api-versions", api]);
    }
    let output = command
        .arg("template")
        .arg(release)
        .arg(chart.chart_dir())
        .args(["--namespace", namespace, "--include-crds", "--kube-version"])
        .arg(format!("{kube_version}.0"))
        .arg("--values")
        .arg(&values_file)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", helm.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.contains("level=INFO"))
            .collect::<Vec<_>>()
            .join(" | "));
    }
    parse(&String::from_utf8_lossy(&output.stdout))
}

/// Splits `helm template` output into objects, remembering each one's `# Source:` file.
pub fn parse(text: &str) -> Result<Vec<Rendered>, String> {
    let mut out = Vec::new();
    // a chart file may hold several documents (CRD files often start with their own `---`):
    // a document without a `# Source:` line belongs to the file named last
    let mut last_source = String::from("?");
    for chunk in split_documents(text) {
        if let Some(s) = chunk.lines().find_map(|l| l.strip_prefix("# Source: ")) {
            last_source = s.trim().to_string();
        }
        let source = last_source.clone();
        let yaml = serde_yaml_ng::Value::deserialize(serde_yaml_ng::Deserializer::from_str(&chunk))
            .map_err(|e| format!("{source}: rendered YAML does not parse: {e}"))?;
        if yaml.is_null() {
            continue;
        }
        let value = serde_json::to_value(yaml).map_err(|e| format!("{source}: {e}"))?;
        let from_crds_dir =
            source.split('/').any(|part| part == "crds") && !source.contains("/templates/");
        out.push(Rendered {
            source,
            from_crds_dir,
            value,
        });
    }
    Ok(out)
}

fn split_documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line == "---" || line.starts_with("--- ") {
            docs.push(String::new());
        } else if let Some(last) = docs.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    docs.into_iter().filter(|d| !d.trim().is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sources_and_crds_dir() {
        let text = "---\n# Source: c/crds/a.yaml\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n---\n# Source: c/templates/x.yaml\napiVersion: v1\nkind: ConfigMap\n---\n# Source: c/templates/empty.yaml\n";
        let docs = parse(text).unwrap();
        assert_eq!(docs.len(), 2);
        assert!(docs[0].from_crds_dir);
        assert!(!docs[1].from_crds_dir);
        assert_eq!(docs[1].source, "c/templates/x.yaml");
    }
}

//! k3s helm-controller objects: `valuesContent` must be valid YAML (a mapping), charts pulled
//! from a repository must pin a version, and values match the chart's `values.schema.json`
//! when one is given (`--values-schema CHART=PATH`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::docs::{group_of, Doc};
use crate::Error;

/// Compiled `values.schema.json` per chart name.
#[derive(Default)]
pub struct ValuesSchemas {
    schemas: BTreeMap<String, jsonschema::Validator>,
}

impl ValuesSchemas {
    pub fn load(paths: &BTreeMap<String, PathBuf>) -> Result<Self, Error> {
        let mut schemas = BTreeMap::new();
        for (chart, path) in paths {
            let err = |message: String| Error::ValuesSchema {
                chart: chart.clone(),
                path: path.clone(),
                message,
            };
            let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
            let schema: Value =
                serde_json::from_str(&text).map_err(|e| err(format!("invalid JSON: {e}")))?;
            let validator = jsonschema::options()
                .should_validate_formats(false)
                .build(&schema)
                .map_err(|e| err(format!("invalid schema: {e}")))?;
            schemas.insert(chart.clone(), validator);
        }
        Ok(Self { schemas })
    }
}

/// The chart name a HelmChart refers to (`spec.chart` may be `repo/name` or a URL).
pub fn chart_name(chart: &str) -> &str {
    let last = chart.rsplit('/').next().unwrap_or(chart);
    last.strip_suffix(".tgz")
        .map(|s| s.rsplit_once('-').map(|(n, _)| n).unwrap_or(s))
        .unwrap_or(last)
}

/// Checks a document if it is a HelmChart or HelmChartConfig; other kinds yield nothing.
pub fn check(doc: &Doc, schemas: &ValuesSchemas) -> Vec<String> {
    let (Some(api_version), Some(kind)) = (doc.api_version(), doc.kind()) else {
        return Vec::new();
    };
    if group_of(api_version) != "helm.cattle.io" {
        return Vec::new();
    }
    let chart = match kind {
        "HelmChart" => doc.value.pointer("/spec/chart").and_then(Value::as_str),
        "HelmChartConfig" => doc.name(),
        _ => return Vec::new(),
    };
    let mut messages = Vec::new();
    if kind == "HelmChart" {
        let has_content = doc.value.pointer("/spec/chartContent").is_some();
        let repo = doc.value.pointer("/spec/repo").and_then(Value::as_str);
        let version = doc.value.pointer("/spec/version").and_then(Value::as_str);
        let oci = chart.is_some_and(|c| c.starts_with("oci://"));
        let remote = oci || repo.is_some_and(|r| !r.is_empty());
        if !has_content && remote && version.is_none_or(str::is_empty) {
            messages.push(
                "spec.version is not set: charts from a repository must be pinned \
                 (terraform/environments/ha/chart_versions.tf)"
                    .to_string(),
            );
        }
    }
    let values = match doc.value.pointer("/spec/valuesContent") {
        None => Value::Object(Default::default()),
        Some(Value::String(text)) => match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) {
            Ok(serde_yaml_ng::Value::Null) => Value::Object(Default::default()),
            Ok(yaml @ serde_yaml_ng::Value::Mapping(_)) => match serde_json::to_value(&yaml) {
                Ok(v) => v,
                Err(e) => {
                    messages.push(format!("spec.valuesContent: {e}"));
                    return messages;
                }
            },
            Ok(_) => {
                messages.push("spec.valuesContent is not a YAML mapping".into());
                return messages;
            }
            Err(e) => {
                messages.push(format!("spec.valuesContent is not valid YAML: {e}"));
                return messages;
            }
        },
        Some(_) => return messages, // wrong type: reported by the CRD schema
    };
    if let Some(validator) = chart.and_then(|c| schemas.schemas.get(chart_name(c))) {
        for error in validator.iter_errors(&values).take(20) {
            let path = error.instance_path().to_string();
            let path = if path.is_empty() { "/".into() } else { path };
            messages.push(format!(
                "spec.valuesContent{path}: {error} (values.schema.json of {})",
                chart.map(chart_name).unwrap_or("?")
            ));
        }
    }
    messages
}

/// For a tigera-operator HelmChart: its `installation` values without `enabled`, i.e. the spec
/// the chart gives the Installation CR.
pub fn tigera_installation_spec(doc: &Doc) -> Option<Value> {
    if doc.kind() != Some("HelmChart")
        || doc.api_version().map(group_of) != Some("helm.cattle.io")
        || doc
            .value
            .pointer("/spec/chart")
            .and_then(Value::as_str)
            .map(chart_name)
            != Some("tigera-operator")
    {
        return None;
    }
    let text = doc.value.pointer("/spec/valuesContent")?.as_str()?;
    let values: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).ok()?;
    let mut installation = serde_json::to_value(values.get("installation")?).ok()?;
    installation.as_object_mut()?.remove("enabled");
    Some(installation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_names() {
        assert_eq!(chart_name("tigera-operator"), "tigera-operator");
        assert_eq!(chart_name("jetstack/cert-manager"), "cert-manager");
        assert_eq!(
            chart_name("https://x/charts/csi-driver-nfs-v4.13.1.tgz"),
            "csi-driver-nfs"
        );
    }
}

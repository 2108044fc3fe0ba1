//! The vendored upstream data in `upstream/` (see `upstream/README.md`): per chart, the published
//! version list (`versions.txt`) and, per pinned version, the whole chart as published
//! (`chart/`) with its facts (`upstream.yaml`: source commit, licence, dependencies, images, and
//! what the chart needs from the cluster before it can run).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::Error;

/// Where an upstream file came from.
#[derive(Debug, Clone, Deserialize)]
pub struct SourceRef {
    pub repository: String,
    pub path: String,
    #[serde(rename = "ref")]
    pub reference: String,
    pub commit: String,
}

/// A subchart: its values sit under `key` of the parent chart's values.
#[derive(Debug, Clone, Deserialize)]
pub struct Dependency {
    pub name: String,
    pub key: String,
    pub version: String,
    #[serde(default)]
    pub condition: Option<String>,
}

/// An image the chart deploys with its default values.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageRef {
    pub values: String,
    pub image: String,
}

/// Something the chart's workloads need from the cluster before they start (not a CRD of a
/// resource the chart renders: those are found by rendering). `condition` is a dotted values path
/// that must be true for the need to apply.
#[derive(Debug, Clone, Deserialize)]
pub struct Requirement {
    #[serde(default)]
    pub condition: Option<String>,
    /// `group/Kind` whose CRDs must be established before the chart is installed.
    pub kinds: Vec<String>,
    /// Annotations the delivered CRDs of those kinds must carry (e.g. the Gateway API bundle version).
    #[serde(default)]
    pub crd_annotations: BTreeMap<String, String>,
    /// Why, with the upstream file that shows it.
    pub reason: String,
}

/// `upstream/charts/CHART/VERSION/upstream.yaml`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChartMeta {
    pub chart: String,
    pub version: String,
    pub app_version: String,
    pub source: SourceRef,
    pub license: String,
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    #[serde(default)]
    pub images: Vec<ImageRef>,
    #[serde(default)]
    pub requires: Vec<Requirement>,
    /// Other names the chart's component goes by in docs and comments (e.g. "NGINX Gateway Fabric").
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Helm repositories (or OCI/archive URL prefixes) that publish this chart.
    #[serde(default)]
    pub repo_urls: Vec<String>,
    /// Values keys upstream has deprecated at this version.
    #[serde(default)]
    pub deprecated_values: Vec<DeprecatedValue>,
}

/// A values key upstream deprecated, what replaces it, and the upstream file that says so.
#[derive(Debug, Clone, Deserialize)]
pub struct DeprecatedValue {
    pub path: String,
    #[serde(rename = "use")]
    pub use_instead: String,
    pub source: String,
}

/// One vendored chart version.
#[derive(Debug, Clone)]
pub struct VendoredChart {
    pub meta: ChartMeta,
    /// `upstream/charts/CHART/VERSION`
    pub dir: PathBuf,
    /// The chart's default values (`chart/values.yaml`), as JSON.
    pub values: Value,
    /// Each dependency's default values by values key.
    pub dependency_values: BTreeMap<String, Value>,
    /// `chart/values.schema.json`, if the chart ships one.
    pub schema: Option<Value>,
}

impl VendoredChart {
    /// The chart directory `helm template` renders.
    pub fn chart_dir(&self) -> PathBuf {
        self.dir.join("chart")
    }

    /// `CHART VERSION`, for messages.
    pub fn label(&self) -> String {
        format!("{} {}", self.meta.chart, self.meta.version)
    }

    /// Versions this component is known by: the chart version, its appVersion and the tags of its
    /// default images (without a leading `v`).
    pub fn known_versions(&self) -> Vec<String> {
        let mut out = vec![
            trim_v(&self.meta.version).to_string(),
            trim_v(&self.meta.app_version).to_string(),
        ];
        for image in &self.meta.images {
            if let Some(tag) = image_tag(&image.image) {
                out.push(trim_v(tag).to_string());
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// `v1.2.3` -> `1.2.3`.
pub fn trim_v(version: &str) -> &str {
    version.strip_prefix('v').unwrap_or(version)
}

/// The tag of `registry/repo:tag` (none for a digest or no tag).
pub fn image_tag(image: &str) -> Option<&str> {
    let last = image.rsplit('/').next()?;
    let (_, tag) = last.split_once(':')?;
    Some(tag.split('@').next().unwrap_or(tag))
}

/// The `upstream/` directory.
#[derive(Debug, Clone)]
pub struct Upstream {
    root: PathBuf,
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn yaml_to_json(path: &Path, text: &str) -> Result<Value, Error> {
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)
        .map_err(|e| Error::Upstream(format!("{}: invalid YAML: {e}", path.display())))?;
    let value = serde_json::to_value(yaml)
        .map_err(|e| Error::Upstream(format!("{}: {e}", path.display())))?;
    Ok(if value.is_null() {
        Value::Object(Default::default())
    } else {
        value
    })
}

impl Upstream {
    pub fn open(root: &Path) -> Result<Self, Error> {
        if !root.join("charts").is_dir() {
            return Err(Error::Upstream(format!(
                "{} has no charts/ directory: pass the repository's upstream/ folder",
                root.display()
            )));
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Published versions of a chart (`versions.txt`), or `None` when the chart is not vendored.
    pub fn versions(&self, chart: &str) -> Result<Option<Vec<String>>, Error> {
        let path = self.root.join("charts").join(chart).join("versions.txt");
        if !path.is_file() {
            return Ok(None);
        }
        Ok(Some(
            read(&path)?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .collect(),
        ))
    }

    /// Vendored versions of a chart (directories holding an `upstream.yaml`).
    pub fn vendored_versions(&self, chart: &str) -> Result<Vec<String>, Error> {
        let dir = self.root.join("charts").join(chart);
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.path().join("upstream.yaml").is_file() {
                    out.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The vendored chart at exactly `version`, or `None` when that version is not vendored.
    pub fn chart(&self, chart: &str, version: &str) -> Result<Option<VendoredChart>, Error> {
        let dir = self.root.join("charts").join(chart).join(version);
        let meta_path = dir.join("upstream.yaml");
        if !meta_path.is_file() {
            return Ok(None);
        }
        let meta: ChartMeta = serde_yaml_ng::from_str(&read(&meta_path)?)
            .map_err(|e| Error::Upstream(format!("{}: {e}", meta_path.display())))?;
        if meta.chart != chart || meta.version != version {
            return Err(Error::Upstream(format!(
                "{} describes {} {}, not {chart} {version}",
                meta_path.display(),
                meta.chart,
                meta.version
            )));
        }
        let chart_dir = dir.join("chart");
        let values_path = chart_dir.join("values.yaml");
        let values = yaml_to_json(&values_path, &read(&values_path)?)?;
        let mut dependency_values = BTreeMap::new();
        for dep in &meta.dependencies {
            let path = chart_dir.join("charts").join(&dep.name).join("values.yaml");
            let value = yaml_to_json(&path, &read(&path)?)?;
            dependency_values.insert(dep.key.clone(), value);
        }
        let schema_path = chart_dir.join("values.schema.json");
        let schema = if schema_path.is_file() {
            Some(serde_json::from_str(&read(&schema_path)?).map_err(|e| {
                Error::Upstream(format!("{}: invalid JSON: {e}", schema_path.display()))
            })?)
        } else {
            None
        };
        Ok(Some(VendoredChart {
            meta,
            dir,
            values,
            dependency_values,
            schema,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags_and_versions() {
        assert_eq!(
            image_tag("quay.io/tigera/operator:v1.42.0"),
            Some("v1.42.0")
        );
        assert_eq!(image_tag("localhost:5000/x"), None);
        assert_eq!(image_tag("a/b:1.0@sha256:abc"), Some("1.0"));
        assert_eq!(trim_v("v3.32.0"), "3.32.0");
    }
}

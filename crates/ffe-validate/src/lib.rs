//! ffe-validate: static validation of everything that lands in a cluster.
//!
//! Every YAML document is checked for a sound identity (apiVersion, kind, metadata), then
//! - custom resources whose CRD is in the CRD directory are validated with the CRD's
//!   `openAPIV3Schema`, made strict (unknown fields are errors, see [`crd`]);
//! - every other kind is handed to `kubernetes-validate --strict` for the chosen Kubernetes
//!   version; a kind it has no schema for is an error ("unknown kind");
//! - `HelmChart`/`HelmChartConfig` `valuesContent` must be valid YAML, and matches the chart's
//!   `values.schema.json` when one is given.

pub mod builtin;
pub mod conformance;
pub mod crd;
pub mod docs;
pub mod helm;
pub mod plan;
mod problem;
pub mod psa;
pub mod rbac;
pub mod re2;
pub mod render;
pub mod scripts;
pub mod server_config;
pub mod upstream;
pub mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use problem::{Problem, Report};

/// Errors that stop validation as a whole (as opposed to [`Problem`]s found in documents).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("CRD directory {0}: {1}")]
    Crds(PathBuf, String),
    #[error("kubernetes-validate: {0}")]
    KubernetesValidate(String),
    #[error("invalid Kubernetes version {0:?}: expected e.g. 1.33, v1.29 or v1.29.4+k3s1")]
    KubeVersion(String),
    #[error("values schema for chart {chart} ({path}): {message}")]
    ValuesSchema {
        chart: String,
        path: PathBuf,
        message: String,
    },
    #[error("plan JSON: {0}")]
    Plan(String),
    #[error("upstream data: {0}")]
    Upstream(String),
}

/// A Kubernetes minor version such as `1.33` (what the schemas are keyed by).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeVersion {
    pub major: u32,
    pub minor: u32,
}

impl KubeVersion {
    /// Accepts `1.33`, `v1.29` (a k3s channel) and `v1.29.4+k3s1` (an exact k3s release).
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = || Error::KubeVersion(s.to_string());
        let t = s.trim();
        let t = t.strip_prefix('v').unwrap_or(t);
        let mut parts = t.split(['.', '+', '-']);
        let major = parts
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .ok_or_else(bad)?;
        let minor = parts
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .ok_or_else(bad)?;
        Ok(Self { major, minor })
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// One named input: a file on disk, stdin, or one entry of a planned `ffe_manifests` map.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub content: String,
}

impl Source {
    pub fn new(name: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            content: content.into(),
        }
    }

    pub fn read(path: &Path) -> Result<Self, Error> {
        let content = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::new(path.display().to_string(), content))
    }
}

/// What to validate against.
#[derive(Debug, Clone)]
pub struct Options {
    pub kube_version: KubeVersion,
    pub crds_dir: PathBuf,
    /// chart name -> path of its `values.schema.json`
    pub values_schemas: BTreeMap<String, PathBuf>,
    /// the `kubernetes-validate` executable
    pub kubernetes_validate: PathBuf,
}

/// Validates every document of every source. `Err` only when validation itself cannot run.
pub fn validate_sources(sources: &[Source], opts: &Options) -> Result<Report, Error> {
    let mut registry = crd::CrdRegistry::load(&opts.crds_dir)?;
    let values = helm::ValuesSchemas::load(&opts.values_schemas)?;
    let (documents, mut problems) = docs::load(sources);
    problems.extend(docs::check_identities(&documents));

    let mut report = Report {
        kube_version: opts.kube_version.clone(),
        files: sources.len(),
        documents: documents.len(),
        crds_loaded: registry.len(),
        ..Report::default()
    };

    let mut builtin_docs = Vec::new();
    for doc in &documents {
        let (Some(api_version), Some(kind)) = (doc.api_version(), doc.kind()) else {
            continue; // already reported by check_identities
        };
        if registry.knows(api_version, kind) {
            report.custom += 1;
            for message in registry.validate(doc) {
                problems.push(doc.problem(message));
            }
        } else {
            report.builtin += 1;
            builtin_docs.push(doc);
        }
        for message in helm::check(doc, &values) {
            problems.push(doc.problem(message));
        }
        // The tigera-operator chart renders `installation` (minus `enabled`) as the spec of the
        // Installation CR: check it against the Installation CRD.
        if let Some(spec) = helm::tigera_installation_spec(doc) {
            let synthetic = docs::Doc {
                value: serde_json::json!({
                    "apiVersion": "operator.tigera.io/v1",
                    "kind": "Installation",
                    "metadata": {"name": "default"},
                    "spec": spec,
                }),
                ..doc.clone()
            };
            if registry.knows("operator.tigera.io/v1", "Installation") {
                for message in registry.validate(&synthetic) {
                    problems.push(doc.problem(format!(
                        "valuesContent.installation (as Installation): {message}"
                    )));
                }
            }
        }
    }
    problems.extend(builtin::validate(
        &opts.kubernetes_validate,
        &opts.kube_version,
        &opts.crds_dir,
        &builtin_docs,
    )?);

    problems.sort();
    problems.dedup();
    report.problems = problems;
    Ok(report)
}

//! Problems found in documents, and the report that gathers them.

use std::fmt;

use crate::KubeVersion;

/// One problem: `file[:doc N] Kind/name: message`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub file: String,
    /// 1-based index of the YAML document in the file (`---` separated), if the problem is in one.
    pub doc: Option<usize>,
    /// `Kind/name` when known.
    pub object: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn file(file: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            doc: None,
            object: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(doc) = self.doc {
            write!(f, ":doc {doc}")?;
        }
        if let Some(object) = &self.object {
            write!(f, " {object}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Result of a validation run.
#[derive(Debug, Clone)]
pub struct Report {
    pub kube_version: KubeVersion,
    pub files: usize,
    pub documents: usize,
    /// documents checked by kubernetes-validate
    pub builtin: usize,
    /// documents checked against a CRD schema
    pub custom: usize,
    pub crds_loaded: usize,
    pub problems: Vec<Problem>,
}

impl Default for Report {
    fn default() -> Self {
        Self {
            kube_version: KubeVersion {
                major: 1,
                minor: 33,
            },
            files: 0,
            documents: 0,
            builtin: 0,
            custom: 0,
            crds_loaded: 0,
            problems: Vec::new(),
        }
    }
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The one-line summary printed after the problems.
    pub fn summary(&self) -> String {
        format!(
            "ffe-validate: {} problem(s) in {} document(s) from {} file(s) \
             (Kubernetes {}: {} built-in via kubernetes-validate, {} custom via {} CRDs)",
            self.problems.len(),
            self.documents,
            self.files,
            self.kube_version,
            self.builtin,
            self.custom,
            self.crds_loaded
        )
    }
}

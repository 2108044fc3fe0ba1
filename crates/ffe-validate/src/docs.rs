//! Splitting sources into YAML documents, and checks every object needs whatever its kind.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::{Problem, Source};

/// One non-empty YAML document, converted to JSON.
#[derive(Debug, Clone)]
pub struct Doc {
    pub file: String,
    /// 1-based position in the file, counting empty documents too.
    pub index: usize,
    pub value: Value,
}

impl Doc {
    fn str_at(&self, pointer: &str) -> Option<&str> {
        self.value.pointer(pointer).and_then(Value::as_str)
    }
    pub fn api_version(&self) -> Option<&str> {
        self.str_at("/apiVersion").filter(|s| !s.is_empty())
    }
    pub fn kind(&self) -> Option<&str> {
        self.str_at("/kind").filter(|s| !s.is_empty())
    }
    pub fn name(&self) -> Option<&str> {
        self.str_at("/metadata/name")
    }
    pub fn namespace(&self) -> Option<&str> {
        self.str_at("/metadata/namespace")
    }
    /// `Kind/name` as far as known.
    pub fn object_ref(&self) -> Option<String> {
        let kind = self.kind()?;
        Some(format!("{kind}/{}", self.name().unwrap_or("?")))
    }
    pub fn problem(&self, message: impl Into<String>) -> Problem {
        Problem {
            file: self.file.clone(),
            doc: Some(self.index),
            object: self.object_ref(),
            message: message.into(),
        }
    }
}

/// API group of an apiVersion (`""` for the core group).
pub fn group_of(api_version: &str) -> &str {
    match api_version.split_once('/') {
        Some((group, _)) => group,
        None => "",
    }
}

/// Parses every source into documents. YAML errors (with their line) become problems;
/// a stream is not read past its first error.
pub fn load(sources: &[Source]) -> (Vec<Doc>, Vec<Problem>) {
    let mut docs = Vec::new();
    let mut problems = Vec::new();
    for source in sources {
        let mut count = 0;
        for (i, de) in serde_yaml_ng::Deserializer::from_str(&source.content).enumerate() {
            let index = i + 1;
            let yaml = match serde_yaml_ng::Value::deserialize(de) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(Problem {
                        file: source.name.clone(),
                        doc: Some(index),
                        object: None,
                        message: format!("invalid YAML: {e}"),
                    });
                    break;
                }
            };
            if yaml.is_null() {
                continue;
            }
            match serde_json::to_value(&yaml) {
                Ok(value) => {
                    count += 1;
                    docs.push(Doc {
                        file: source.name.clone(),
                        index,
                        value,
                    })
                }
                Err(e) => problems.push(Problem {
                    file: source.name.clone(),
                    doc: Some(index),
                    object: None,
                    message: format!("YAML is not representable as a Kubernetes object: {e}"),
                }),
            }
        }
        if count == 0 && !problems.iter().any(|p| p.file == source.name) {
            problems.push(Problem::file(&source.name, "no YAML documents"));
        }
    }
    (docs, problems)
}

fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Kubernetes' IsDNS1123Subdomain: at most 253 characters of dot-separated parts, each
/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?` (the parts have no length limit of their own).
fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// Label values (and the name part of label keys): up to 63 of `[A-Za-z0-9._-]`,
/// beginning and ending alphanumeric; values may be empty.
fn is_label_value(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

fn is_qualified_key(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_dns1123_subdomain) && !name.is_empty() && is_label_value(name)
}

/// Checks that need no schema: identity fields present and well-formed, labels valid,
/// and no object defined twice in the whole batch.
pub fn check_identities(docs: &[Doc]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut seen: BTreeMap<(String, String, String, String), (String, usize)> = BTreeMap::new();
    for doc in docs {
        if !doc.value.is_object() {
            problems.push(doc.problem("document is not a mapping"));
            continue;
        }
        let (api_version, kind) = (doc.api_version(), doc.kind());
        if api_version.is_none() {
            problems.push(doc.problem("apiVersion is missing or not a string"));
        }
        if kind.is_none() {
            problems.push(doc.problem("kind is missing or not a string"));
        }
        let name = match doc.name() {
            Some(n) if !n.is_empty() => n,
            _ => {
                problems.push(doc.problem("metadata.name is missing (k3s applies by name)"));
                continue;
            }
        };
        let group = api_version.map(group_of).unwrap_or("");
        // RBAC object names are path segments (e.g. `system:foo`), everything else a subdomain.
        if group != "rbac.authorization.k8s.io" && !is_dns1123_subdomain(name) {
            problems.push(doc.problem(format!(
                "metadata.name {name:?} is not a DNS-1123 subdomain (lowercase letters, digits, '-', '.')"
            )));
        }
        if let Some(ns) = doc.namespace() {
            if !is_dns1123_label(ns) {
                problems.push(
                    doc.problem(format!("metadata.namespace {ns:?} is not a DNS-1123 label")),
                );
            }
        }
        check_labels(doc, &mut problems);
        if let (Some(_), Some(kind)) = (api_version, kind) {
            let key = (
                group.to_string(),
                kind.to_string(),
                doc.namespace().unwrap_or("").to_string(),
                name.to_string(),
            );
            if let Some((file, index)) = seen.get(&key) {
                problems.push(doc.problem(format!(
                    "duplicate object: already defined in {file}:doc {index}"
                )));
            } else {
                seen.insert(key, (doc.file.clone(), doc.index));
            }
        }
    }
    problems
}

fn check_labels(doc: &Doc, problems: &mut Vec<Problem>) {
    // `labels:` / `annotations:` left empty in YAML are null, which the API server takes as absent
    if let Some(labels) = doc
        .value
        .pointer("/metadata/labels")
        .filter(|v| !v.is_null())
    {
        let Some(map) = labels.as_object() else {
            problems.push(doc.problem("metadata.labels is not a map"));
            return;
        };
        for (k, v) in map {
            if !is_qualified_key(k) {
                problems.push(doc.problem(format!("label key {k:?} is invalid")));
            }
            match v.as_str() {
                Some(s) if is_label_value(s) => {}
                _ => problems.push(doc.problem(format!(
                    "label {k}: value {v} is not a valid label value (string, <= 63 chars, [A-Za-z0-9._-])"
                ))),
            }
        }
    }
    if let Some(annotations) = doc
        .value
        .pointer("/metadata/annotations")
        .filter(|v| !v.is_null())
    {
        let Some(map) = annotations.as_object() else {
            problems.push(doc.problem("metadata.annotations is not a map"));
            return;
        };
        for (k, v) in map {
            if !is_qualified_key(k) {
                problems.push(doc.problem(format!("annotation key {k:?} is invalid")));
            }
            if !v.is_string() {
                problems.push(doc.problem(format!("annotation {k}: value {v} is not a string")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(yaml: &str) -> (Vec<Doc>, Vec<Problem>) {
        load(&[Source::new("t.yaml", yaml)])
    }

    #[test]
    fn splits_documents_and_counts_empty_ones() {
        let (docs, problems) = one("---\n---\na: 1\n---\nb: 2\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(docs.iter().map(|d| d.index).collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn yaml_error_names_doc_and_line() {
        let (_, problems) = one("a: 1\n---\nb: [1, 2\nc: 3\n");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].doc, Some(2));
        assert!(problems[0].message.contains("line"), "{}", problems[0]);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let (_, problems) = one("a: 1\na: 2\n");
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn identity_checks() {
        let (docs, _) = one(concat!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n---\n",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok, labels: {a: 'x y'}}\n---\n",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\n",
            "kind: ConfigMap\nmetadata: {namespace: x}\n---\n",
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: 'system:x'}\n",
        ));
        let problems = check_identities(&docs);
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            text[0].contains("doc 1 ConfigMap/Bad_Name: metadata.name"),
            "{text:?}"
        );
        assert!(
            text[1].contains("doc 2") && text[1].contains("label a"),
            "{text:?}"
        );
        assert!(
            text[2].contains("doc 3") && text[2].contains("duplicate object"),
            "{text:?}"
        );
        assert!(
            text[3].contains("doc 4") && text[3].contains("apiVersion"),
            "{text:?}"
        );
        assert!(
            text[4].contains("doc 4") && text[4].contains("metadata.name"),
            "{text:?}"
        );
        assert_eq!(problems.len(), 5, "{text:?}");
    }
}

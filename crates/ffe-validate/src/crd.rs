//! Custom resources: a registry of the CRDs found in a directory, and validation of instances
//! against the served version's `openAPIV3Schema`.
//!
//! Kubernetes "structural" schemas are OpenAPI 3.0 with extensions; they are translated to
//! JSON Schema (draft 4) as follows:
//! - `x-kubernetes-int-or-string: true` → `type: [integer, string]`;
//! - `nullable: true` → `null` added to `type` (and `enum`);
//! - an object schema (`type: object` or `properties`) without `additionalProperties` and without
//!   `x-kubernetes-preserve-unknown-fields: true` gets `additionalProperties: false`: the apiserver
//!   would silently prune such fields; we report them as errors instead (strictness helps us);
//!   schemas inside `allOf`/`anyOf`/`oneOf`/`not` are value validations only and are left open;
//! - the root `metadata` is replaced by an ObjectMeta schema, `apiVersion`/`kind`/`metadata` required;
//! - `x-kubernetes-validations` (CEL) cannot be evaluated here and are dropped.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::docs::{group_of, Doc};
use crate::Error;

/// At most this many schema errors are reported per document.
const MAX_ERRORS_PER_DOC: usize = 20;

#[derive(Debug)]
struct CrdVersion {
    served: bool,
    deprecated: bool,
    schema: Option<Value>,
}

#[derive(Debug)]
struct CrdKind {
    source: PathBuf,
    namespaced: bool,
    versions: BTreeMap<String, CrdVersion>,
}

/// The CRDs of a directory, keyed by (group, kind). When two files define the same kind,
/// the first in path order wins (e.g. `percona-helm-charts/` = released schema before
/// `percona-postgresql-operator/` = unreleased main).
#[derive(Default)]
pub struct CrdRegistry {
    kinds: BTreeMap<(String, String), CrdKind>,
    compiled: HashMap<(String, String, String), Result<jsonschema::Validator, String>>,
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let read = |source| Error::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(read)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, out)?;
        } else if path
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        {
            out.push(path);
        }
    }
    Ok(())
}

impl CrdRegistry {
    /// Loads every `CustomResourceDefinition` (apiextensions.k8s.io/v1) under `dir`.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let mut files = Vec::new();
        yaml_files(dir, &mut files)?;
        let mut registry = Self::default();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            for de in serde_yaml_ng::Deserializer::from_str(&text) {
                let doc = Value::deserialize(de)
                    .map_err(|e| Error::Crds(path.clone(), format!("invalid YAML: {e}")))?;
                registry.add(&path, &doc)?;
            }
        }
        if registry.kinds.is_empty() {
            return Err(Error::Crds(
                dir.to_path_buf(),
                "no CustomResourceDefinition found".into(),
            ));
        }
        Ok(registry)
    }

    /// Adds one document if it is a CRD; other documents are ignored.
    pub fn add(&mut self, source: &Path, doc: &Value) -> Result<(), Error> {
        if doc.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition")
            || doc.get("apiVersion").and_then(Value::as_str) != Some("apiextensions.k8s.io/v1")
        {
            return Ok(());
        }
        let bad = |what: &str| Error::Crds(source.to_path_buf(), format!("CRD without {what}"));
        let spec = doc.get("spec").ok_or_else(|| bad("spec"))?;
        let group = spec
            .get("group")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("spec.group"))?;
        let kind = spec
            .pointer("/names/kind")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("spec.names.kind"))?;
        let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
        let mut versions = BTreeMap::new();
        for v in spec
            .get("versions")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("spec.versions"))?
        {
            let name = v
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("spec.versions[].name"))?;
            versions.insert(
                name.to_string(),
                CrdVersion {
                    served: v.get("served").and_then(Value::as_bool).unwrap_or(false),
                    deprecated: v
                        .get("deprecated")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    schema: v.pointer("/schema/openAPIV3Schema").cloned(),
                },
            );
        }
        self.kinds
            .entry((group.to_string(), kind.to_string()))
            .or_insert(CrdKind {
                source: source.to_path_buf(),
                namespaced,
                versions,
            });
        Ok(())
    }

    /// Number of distinct (group, kind) pairs.
    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// Whether the group of `api_version` and `kind` are defined by a loaded CRD.
    pub fn knows(&self, api_version: &str, kind: &str) -> bool {
        self.kinds
            .contains_key(&(group_of(api_version).to_string(), kind.to_string()))
    }

    /// Validates a custom resource; returns one message per problem.
    pub fn validate(&mut self, doc: &Doc) -> Vec<String> {
        let (Some(api_version), Some(kind)) = (doc.api_version(), doc.kind()) else {
            return vec!["apiVersion/kind missing".into()];
        };
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.to_string()),
        };
        let Some(crd) = self.kinds.get(&(group.clone(), kind.to_string())) else {
            return vec![format!("no CRD defines {kind} in group {group:?}")];
        };
        let Some(ver) = crd.versions.get(&version) else {
            let known: Vec<&str> = crd.versions.keys().map(String::as_str).collect();
            return vec![format!(
                "version {version} of {kind} is not defined by the CRD in {} (it defines {})",
                crd.source.display(),
                known.join(", ")
            )];
        };
        let mut messages = Vec::new();
        if !ver.served {
            messages.push(format!("{api_version} {kind} is not served by its CRD"));
        }
        if ver.deprecated {
            messages.push(format!(
                "{api_version} {kind} is deprecated by its CRD: use a newer version"
            ));
        }
        match (crd.namespaced, doc.namespace()) {
            (false, Some(_)) => messages.push(format!(
                "{kind} is cluster-scoped: metadata.namespace must not be set"
            )),
            (true, None) => messages.push(format!(
                "{kind} is namespaced: set metadata.namespace (k3s would use `default`)"
            )),
            _ => {}
        }
        let Some(schema) = &ver.schema else {
            messages.push(format!(
                "CRD for {api_version} {kind} has no openAPIV3Schema"
            ));
            return messages;
        };
        let compiled = self
            .compiled
            .entry((group, kind.to_string(), version))
            .or_insert_with(|| {
                jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft4)
                    .should_validate_formats(false)
                    .build(&strict_root_schema(schema))
                    .map_err(|e| e.to_string())
            });
        match compiled {
            Ok(validator) => {
                for error in validator.iter_errors(&doc.value).take(MAX_ERRORS_PER_DOC) {
                    let path = error.instance_path().to_string();
                    let path = if path.is_empty() { "/".into() } else { path };
                    messages.push(format!("{path}: {error}"));
                }
            }
            Err(e) => messages.push(format!("cannot compile the CRD schema: {e}")),
        }
        messages
    }
}

/// Schema of `metadata` in a manifest (the parts of ObjectMeta a manifest may set).
fn object_meta_schema() -> Value {
    let string_map = json!({"type": "object", "additionalProperties": {"type": "string"}});
    json!({
        "type": "object",
        "required": ["name"],
        "additionalProperties": false,
        "properties": {
            "name": {"type": "string"},
            "generateName": {"type": "string"},
            "namespace": {"type": "string"},
            "labels": string_map,
            "annotations": string_map,
            "finalizers": {"type": "array", "items": {"type": "string"}},
            "ownerReferences": {"type": "array", "items": {"type": "object"}},
            "uid": {"type": "string"},
            "resourceVersion": {"type": "string"},
            "generation": {"type": "integer"},
            "creationTimestamp": {"type": ["string", "null"]},
            "deletionTimestamp": {"type": ["string", "null"]},
            "deletionGracePeriodSeconds": {"type": "integer"},
            "managedFields": {"type": "array", "items": {"type": "object"}}
        }
    })
}

/// Translates a CRD version's `openAPIV3Schema` into a strict JSON Schema for whole objects.
pub fn strict_root_schema(schema: &Value) -> Value {
    let mut root = translate(schema, false);
    if let Value::Object(map) = &mut root {
        let props = map
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(props) = props {
            props.insert("metadata".into(), object_meta_schema());
            props
                .entry("apiVersion")
                .or_insert_with(|| json!({"type": "string"}));
            props
                .entry("kind")
                .or_insert_with(|| json!({"type": "string"}));
        }
        let mut required: Vec<Value> = map
            .get("required")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for field in ["apiVersion", "kind", "metadata"] {
            if !required.iter().any(|r| r == field) {
                required.push(json!(field));
            }
        }
        map.insert("required".into(), Value::Array(required));
        map.insert("type".into(), json!("object"));
        map.remove("x-kubernetes-preserve-unknown-fields");
        map.entry("additionalProperties")
            .or_insert(Value::Bool(false));
    }
    root
}

fn is_true(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key) == Some(&Value::Bool(true))
}

/// Translates one structural-schema node. `in_junctor`: inside allOf/anyOf/oneOf/not, where
/// schemas only add value validations and must not close objects.
pub fn translate(node: &Value, in_junctor: bool) -> Value {
    let Value::Object(map) = node else {
        return node.clone();
    };
    let mut out = Map::new();
    for (key, value) in map {
        match key.as_str() {
            "description" | "nullable" | "example" | "externalDocs" => {}
            k if k.starts_with("x-kubernetes-") => {}
            "properties" | "patternProperties" | "definitions" => {
                let translated = match value {
                    Value::Object(props) => Value::Object(
                        props
                            .iter()
                            .map(|(k, v)| (k.clone(), translate(v, in_junctor)))
                            .collect(),
                    ),
                    other => other.clone(),
                };
                out.insert(key.clone(), translated);
            }
            "items" => {
                let translated = match value {
                    Value::Array(items) => {
                        Value::Array(items.iter().map(|v| translate(v, in_junctor)).collect())
                    }
                    other => translate(other, in_junctor),
                };
                out.insert(key.clone(), translated);
            }
            "additionalProperties" => {
                out.insert(key.clone(), translate(value, in_junctor));
            }
            "not" => {
                out.insert(key.clone(), translate(value, true));
            }
            "allOf" | "anyOf" | "oneOf" => {
                let translated = match value {
                    Value::Array(items) => {
                        Value::Array(items.iter().map(|v| translate(v, true)).collect())
                    }
                    other => other.clone(),
                };
                out.insert(key.clone(), translated);
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    if is_true(map, "x-kubernetes-int-or-string") {
        out.insert("type".into(), json!(["integer", "string"]));
    }
    if is_true(map, "nullable") {
        match out.get_mut("type") {
            Some(Value::String(t)) => {
                let t = std::mem::take(t);
                out.insert("type".into(), json!([t, "null"]));
            }
            Some(Value::Array(types)) if !types.iter().any(|t| t == "null") => {
                types.push(json!("null"));
            }
            _ => {}
        }
        if let Some(Value::Array(values)) = out.get_mut("enum") {
            if !values.iter().any(Value::is_null) {
                values.push(Value::Null);
            }
        }
    }
    let is_object =
        map.get("type").and_then(Value::as_str) == Some("object") || map.contains_key("properties");
    if is_object
        && !in_junctor
        && !is_true(map, "x-kubernetes-preserve-unknown-fields")
        && !map.contains_key("additionalProperties")
    {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validator(schema: Value) -> jsonschema::Validator {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .build(&strict_root_schema(&schema))
            .unwrap()
    }

    fn object(spec: Value) -> Value {
        json!({"apiVersion": "x.io/v1", "kind": "X", "metadata": {"name": "a"}, "spec": spec})
    }

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": {
                    "type": "object",
                    "properties": {
                        "port": {"x-kubernetes-int-or-string": true,
                                 "anyOf": [{"type": "integer"}, {"type": "string"}]},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "map": {"type": "object", "additionalProperties": {"type": "string"}},
                        "opt": {"type": "string", "nullable": true},
                        "choice": {"type": "object",
                                   "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                                   "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}
                    }
                }
            }
        })
    }

    #[test]
    fn accepts_what_a_structural_schema_allows() {
        let v = validator(schema());
        for spec in [
            json!({"port": 80}),
            json!({"port": "http"}),
            json!({"free": {"anything": {"goes": 1}}}),
            json!({"map": {"k": "v"}}),
            json!({"opt": null}),
            json!({"choice": {"a": "x"}}),
        ] {
            let doc = object(spec.clone());
            let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{spec}: {errors:?}");
        }
    }

    #[test]
    fn rejects_unknown_fields_and_wrong_types() {
        let v = validator(schema());
        for spec in [
            json!({"port": true}),
            json!({"unknown": 1}),
            json!({"map": {"k": 1}}),
            json!({"choice": {"a": "x", "b": "y"}}),
            json!({"choice": {"c": "x"}}),
        ] {
            assert!(!v.is_valid(&object(spec.clone())), "{spec} should fail");
        }
        let mut bad_meta = object(json!({}));
        bad_meta["metadata"]["nmae"] = json!("typo");
        assert!(!v.is_valid(&bad_meta));
        let mut top = object(json!({}));
        top["extra"] = json!(1);
        assert!(!v.is_valid(&top));
    }
}

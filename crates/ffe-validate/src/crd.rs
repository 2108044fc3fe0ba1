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
//! - `pattern` is Go RE2 syntax: rewritten to ECMA-262 by [`re2::to_ecma`] (e.g. `(?i)`);
//! - `x-kubernetes-list-type: set` → `uniqueItems: true` (the apiserver rejects duplicates);
//! - `x-kubernetes-embedded-resource: true` implies `apiVersion`/`kind`/`metadata` properties;
//! - a `nullable` schema's `allOf`/`anyOf`/`oneOf`/`not` are wrapped so that `null` passes them
//!   (the apiserver checks only type and enum of a null value);
//! - `x-kubernetes-validations` (CEL) cannot be evaluated here and are dropped.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::docs::{group_of, Doc};
use crate::{re2, Error};

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

    /// Compiles the schema of every version of every loaded CRD; returns one message per
    /// version whose translated schema cannot be compiled (empty = all usable).
    pub fn compile_errors(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        for ((group, kind), crd) in &self.kinds {
            for (version, ver) in &crd.versions {
                let Some(schema) = &ver.schema else {
                    continue;
                };
                let compiled = self
                    .compiled
                    .entry((group.clone(), kind.clone(), version.clone()))
                    .or_insert_with(|| compile(schema));
                if let Err(e) = compiled {
                    errors.push(format!(
                        "{group}/{version} {kind} ({}): {e}",
                        crd.source.display()
                    ));
                }
            }
        }
        errors
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
            .or_insert_with(|| compile(schema));
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

/// Compiles a CRD version's `openAPIV3Schema` (translated by [`strict_root_schema`]).
fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(false)
        .build(&strict_root_schema(schema))
        .map_err(|e| e.to_string())
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
            "pattern" => {
                // Go RE2 syntax → ECMA-262; a pattern that cannot be rewritten is kept as is
                // (and then reported by the schema compiler).
                let translated = value
                    .as_str()
                    .and_then(|p| re2::to_ecma(p).ok())
                    .map_or_else(|| value.clone(), Value::String);
                out.insert(key.clone(), translated);
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
    if map.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("set") {
        out.insert("uniqueItems".into(), Value::Bool(true));
    }
    if is_true(map, "x-kubernetes-embedded-resource") {
        // apiVersion, kind and metadata are implied in an embedded resource
        if let Value::Object(props) = out
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()))
        {
            props
                .entry("apiVersion")
                .or_insert_with(|| json!({"type": "string"}));
            props
                .entry("kind")
                .or_insert_with(|| json!({"type": "string"}));
            props
                .entry("metadata")
                .or_insert_with(|| json!({"type": "object"}));
        }
    }
    if is_true(map, "nullable") {
        // The apiserver checks only type and enum of a null value: junctors must not reject it.
        let mut junctors = Map::new();
        for key in ["allOf", "anyOf", "oneOf", "not"] {
            if let Some(v) = out.remove(key) {
                junctors.insert(key.into(), v);
            }
        }
        if !junctors.is_empty() {
            out.insert(
                "anyOf".into(),
                json!([{"type": "null"}, Value::Object(junctors)]),
            );
        }
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

    /// The plain upstream CRD files vendored in the repository (upstream/crds: Gateway API,
    /// cert-manager, helm-controller), plus the charts' own `crds/` directories.
    fn shared_crds() -> PathBuf {
        let dir = std::env::var_os("FFE_CRDS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../upstream/crds"));
        assert!(dir.is_dir(), "{} missing", dir.display());
        dir
    }

    fn chart_crds() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../upstream/charts/kube-prometheus-stack/88.5.3/chart/charts/crds/crds")
    }

    #[test]
    fn every_version_of_every_shared_crd_compiles() {
        // file by file: a kind defined twice (percona-*) is shadowed in a directory registry
        let mut files = Vec::new();
        yaml_files(&shared_crds(), &mut files).unwrap();
        yaml_files(&chart_crds(), &mut files).unwrap();
        let (mut kinds, mut versions, mut errors) = (0, 0, Vec::new());
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            let mut registry = CrdRegistry::default();
            for de in serde_yaml_ng::Deserializer::from_str(&text) {
                registry
                    .add(file, &Value::deserialize(de).unwrap())
                    .unwrap();
            }
            kinds += registry.len();
            versions += registry
                .kinds
                .values()
                .map(|k| k.versions.len())
                .sum::<usize>();
            errors.extend(registry.compile_errors());
            assert_eq!(
                registry.compiled.len(),
                registry
                    .kinds
                    .values()
                    .map(|k| k.versions.len())
                    .sum::<usize>()
            );
        }
        assert!(kinds >= 25, "only {kinds} CRDs in {} files", files.len());
        assert!(
            errors.is_empty(),
            "{} of {versions} CRD versions do not compile:\n{}",
            errors.len(),
            errors.join("\n")
        );
    }

    fn doc(yaml: &str) -> Doc {
        Doc {
            file: "t.yaml".into(),
            index: 1,
            value: serde_yaml_ng::from_str(yaml).unwrap(),
        }
    }

    const PROMETHEUS_RULE: &str = r#"
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: ffe, namespace: monitoring, labels: {release: kube-prometheus-stack}}
spec:
  groups:
  - name: ffe.rules
    partial_response_strategy: WARN
    interval: 30s
    rules:
    - record: job:up:sum
      expr: sum by (job) (up)
    - alert: FfeBackendDown
      expr: up{job="ffe-backend"} == 0
      for: 5m
      labels: {severity: critical}
      annotations: {summary: "ffe-backend is down"}
"#;

    #[test]
    fn prometheus_rule_valid_passes_and_broken_fails() {
        let mut registry = CrdRegistry::load(&chart_crds()).unwrap();
        let ok = registry.validate(&doc(PROMETHEUS_RULE));
        assert!(ok.is_empty(), "{ok:?}");
        for (from, to, expect) in [
            ("for: 5m", "for: 5 minutes", "/spec/groups/0/rules/1/for"),
            ("expr: sum by (job) (up)", "expression: x", "expression"),
            (
                "expr: up{job=\"ffe-backend\"} == 0",
                "expr: [1]",
                "/spec/groups/0/rules/1/expr",
            ),
            (
                "partial_response_strategy: WARN",
                "partial_response_strategy: ignore",
                "partial_response_strategy",
            ),
            ("  - name: ffe.rules\n", "  - nmae: ffe.rules\n", "nmae"),
            ("interval: 30s", "interval: 30", "/spec/groups/0/interval"),
        ] {
            assert!(PROMETHEUS_RULE.contains(from), "{from}");
            let broken = PROMETHEUS_RULE.replace(from, to);
            let messages = registry.validate(&doc(&broken));
            assert!(
                messages.iter().any(|m| m.contains(expect)),
                "{to:?} not reported as {expect:?}: {messages:?}"
            );
            assert!(
                messages.iter().all(|m| !m.contains("cannot compile")),
                "{messages:?}"
            );
        }
    }

    #[test]
    fn shared_crd_patterns_survive_translation() {
        // every pattern without RE2-only syntax is copied unchanged, every one compiles
        let registry = CrdRegistry::load(&shared_crds()).unwrap();
        fn patterns(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(p)) = m.get("pattern") {
                        out.push(p.clone());
                    }
                    m.values().for_each(|v| patterns(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| patterns(v, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        for kind in registry.kinds.values() {
            for ver in kind.versions.values() {
                if let Some(schema) = &ver.schema {
                    patterns(schema, &mut all);
                }
            }
        }
        all.sort();
        all.dedup();
        assert!(all.len() > 20, "{} patterns", all.len());
        let mut rewritten = 0;
        for p in &all {
            let ecma = re2::to_ecma(p).unwrap_or_else(|e| panic!("{p}: {e}"));
            if p.contains("(?i)") {
                rewritten += 1;
            } else {
                assert_eq!(&ecma, p);
            }
        }
        assert!(rewritten >= 1);
    }

    #[test]
    fn nullable_junctors_and_sets() {
        let v = validator(json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": {
                "port": {"x-kubernetes-int-or-string": true, "nullable": true,
                         "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "tags": {"type": "array", "items": {"type": "string"},
                         "x-kubernetes-list-type": "set"},
                "pod": {"type": "object", "x-kubernetes-embedded-resource": true,
                        "properties": {"spec": {"type": "object"}}}
            }}}
        }));
        for spec in [
            json!({"port": null}),
            json!({"port": 1}),
            json!({"tags": ["a", "b"]}),
            json!({"pod": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}}),
        ] {
            let errors: Vec<String> = v
                .iter_errors(&object(spec.clone()))
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{spec}: {errors:?}");
        }
        for spec in [
            json!({"port": true}),
            json!({"tags": ["a", "a"]}),
            json!({"pod": {"status": {}}}),
        ] {
            assert!(!v.is_valid(&object(spec.clone())), "{spec} should fail");
        }
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

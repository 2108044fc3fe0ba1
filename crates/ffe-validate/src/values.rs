//! Chart values: Helm's merge of user values over a chart's defaults, and the check that every key
//! path we set exists in the upstream chart (its `values.yaml`, a subchart's, or its
//! `values.schema.json`), unless the path is listed as free-form in `upstream/values-policy.yaml (free_form)`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::upstream::VendoredChart;
use crate::Error;

/// Helm's coalescing of `overlay` (user values) onto `base` (chart defaults): maps merge key by
/// key, a `null` in the overlay deletes the key, anything else replaces.
pub fn helm_merge(base: &Value, overlay: &Value) -> Value {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                if v.is_null() {
                    out.remove(k);
                } else if let Some(existing) = b.get(k) {
                    out.insert(k.clone(), helm_merge(existing, v));
                } else {
                    out.insert(k.clone(), strip_nulls(v));
                }
            }
            Value::Object(out)
        }
        (_, o) => strip_nulls(o),
    }
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Where Istio's charts keep their defaults: users set the keys without this prefix, and each
/// chart's `templates/zzz_profile.yaml` merges a profile and then the user's values over them.
pub const ISTIO_DEFAULTS_KEY: &str = "_internal_defaults_do_not_set";

/// The chart's defaults with each subchart's defaults under its key (the parent's values for a
/// subchart win, as in Helm). A chart that keeps its defaults under [`ISTIO_DEFAULTS_KEY`] has them
/// lifted to the top, where its templates see them.
fn chart_defaults(chart: &VendoredChart) -> Value {
    let mut defaults = lift_istio_defaults(&chart.values);
    if let Value::Object(map) = &mut defaults {
        for (key, sub) in &chart.dependency_values {
            let merged = match map.get(key) {
                Some(parent) => helm_merge(sub, parent),
                None => sub.clone(),
            };
            map.insert(key.clone(), merged);
        }
    }
    defaults
}

fn lift_istio_defaults(values: &Value) -> Value {
    match values {
        Value::Object(map) if map.get(ISTIO_DEFAULTS_KEY).is_some_and(Value::is_object) => {
            let mut rest = map.clone();
            let inner = rest.remove(ISTIO_DEFAULTS_KEY).unwrap_or(Value::Null);
            helm_merge(&Value::Object(rest), &inner)
        }
        other => other.clone(),
    }
}

/// The chart's effective values: its defaults (subcharts included), then ours.
pub fn effective_values(chart: &VendoredChart, ours: &Value) -> Value {
    helm_merge(&chart_defaults(chart), ours)
}

/// The value at a dotted path (`a.b.c`).
pub fn at_path<'a>(values: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted
        .split('.')
        .try_fold(values, |node, key| node.as_object()?.get(key))
}

/// Helm's truthiness of a condition path: present and not false/null/empty.
pub fn truthy(values: &Value, dotted: &str) -> bool {
    match at_path(values, dotted) {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// One entry of `upstream/values-policy.yaml`: a values path and why it is listed.
#[derive(Debug, Clone, Deserialize)]
pub struct PolicyPath {
    /// Dotted path; `*` matches any one key.
    pub path: String,
    /// Why (checked to be said).
    pub why: String,
}

/// `upstream/values-policy.yaml`: our rules for upstream charts' values, per chart name.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ValuesPolicy {
    /// Paths whose keys upstream leaves open (maps of names we choose, or objects passed verbatim
    /// to a Kubernetes or CRD field that the rendered output is validated against).
    #[serde(default)]
    pub free_form: BTreeMap<String, Vec<PolicyPath>>,
    /// Maps we own whole: no key of upstream's default may survive Helm's merge there (set each
    /// unwanted default to null).
    #[serde(default)]
    pub owned: BTreeMap<String, Vec<PolicyPath>>,
    /// `Kind/name` of objects whose claims may use a Delete class (data rebuilt on its own).
    #[serde(default)]
    pub rebuildable: Vec<PolicyPath>,
}

impl ValuesPolicy {
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let policy: Self = serde_yaml_ng::from_str(&text)
            .map_err(|e| Error::Upstream(format!("{}: {e}", path.display())))?;
        for (chart, entry) in policy
            .free_form
            .iter()
            .chain(&policy.owned)
            .flat_map(|(c, es)| es.iter().map(move |e| (c, e)))
        {
            if entry.why.trim().len() < 10 {
                return Err(Error::Upstream(format!(
                    "{}: {chart} {}: say why the path is listed",
                    path.display(),
                    entry.path
                )));
            }
        }
        Ok(policy)
    }

    /// Whether an object (`Kind/name`) is listed as holding rebuildable data.
    pub fn rebuildable(&self, object: &str) -> bool {
        self.rebuildable.iter().any(|e| e.path == object)
    }

    fn covers(&self, chart: &str, path: &[&str]) -> bool {
        self.free_form
            .get(chart)
            .into_iter()
            .flatten()
            .any(|entry| {
                let pattern: Vec<&str> = entry.path.split('.').collect();
                pattern.len() == path.len()
                    && pattern.iter().zip(path).all(|(p, k)| *p == "*" || p == k)
            })
    }

    /// Default keys that survive the merge under an owned path: one message each.
    pub fn owned_leftovers(&self, chart: &VendoredChart, ours: &Value) -> Vec<String> {
        let effective = effective_values(chart, ours);
        let mut out = Vec::new();
        for entry in self.owned.get(&chart.meta.chart).into_iter().flatten() {
            let Some(Value::Object(merged)) = at_path(&effective, &entry.path) else {
                continue;
            };
            let ours_here = at_path(ours, &entry.path).and_then(Value::as_object);
            for key in merged.keys() {
                if !ours_here.is_some_and(|m| m.contains_key(key)) {
                    out.push(format!(
                        "values {}.{key}: upstream's default survives Helm's merge in {}, \
                         whose map we own ({}); set it to null or configure it",
                        entry.path,
                        chart.label(),
                        entry.why.trim()
                    ));
                }
            }
        }
        out
    }
}

/// The sub-schema a key of an object schema leads to (properties, patternProperties, or an
/// additionalProperties schema), following a local `$ref` once.
fn schema_child<'a>(root: &'a Value, schema: &'a Value, key: &str) -> Option<&'a Value> {
    let schema = resolve(root, schema);
    if let Some(s) = schema.pointer("/properties").and_then(|p| p.get(key)) {
        return Some(resolve(root, s));
    }
    if let Some(Value::Object(patterns)) = schema.get("patternProperties") {
        for (pattern, s) in patterns {
            // Helm charts' patterns are simple; an anchored literal prefix test is enough here.
            let literal = pattern.trim_start_matches('^').trim_end_matches(".*");
            if key.starts_with(literal) {
                return Some(resolve(root, s));
            }
        }
    }
    match schema.get("additionalProperties") {
        Some(s @ Value::Object(_)) => Some(resolve(root, s)),
        _ => None,
    }
}

fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) if r.starts_with("#/") => root.pointer(&r[1..]).unwrap_or(schema),
        _ => schema,
    }
}

/// Whether a schema node describes an object whose keys it names (so keys below can be checked).
fn schema_has_keys(root: &Value, schema: &Value) -> bool {
    let schema = resolve(root, schema);
    schema.get("properties").is_some() || schema.get("patternProperties").is_some()
}

/// Whether a schema node leaves an object open to any key (no additionalProperties: false).
fn schema_open(root: &Value, schema: &Value) -> bool {
    let schema = resolve(root, schema);
    !schema_has_keys(root, schema)
        && !matches!(schema.get("additionalProperties"), Some(Value::Bool(false)))
}

/// Key paths of `ours` that the chart does not define: one message each.
pub fn unknown_keys(chart: &VendoredChart, ours: &Value, free: &ValuesPolicy) -> Vec<String> {
    let defaults = chart_defaults(chart);
    let empty = Value::Object(Map::new());
    let root_schema = chart.schema.as_ref().unwrap_or(&empty);
    let mut out = Vec::new();
    let mut path = Vec::new();
    walk(
        chart,
        free,
        ours,
        Some(&defaults),
        chart.schema.as_ref(),
        root_schema,
        &mut path,
        &mut out,
    );
    out
}

#[allow(clippy::too_many_arguments)]
fn walk<'a>(
    chart: &VendoredChart,
    free: &ValuesPolicy,
    ours: &'a Value,
    defaults: Option<&Value>,
    schema: Option<&Value>,
    root_schema: &Value,
    path: &mut Vec<&'a str>,
    out: &mut Vec<String>,
) {
    let Value::Object(map) = ours else {
        return;
    };
    for (key, value) in map {
        path.push(key);
        if free.covers(&chart.meta.chart, path) {
            path.pop();
            continue;
        }
        let default = defaults
            .and_then(|d| d.as_object())
            .and_then(|d| d.get(key));
        let sub_schema = schema.and_then(|s| schema_child(root_schema, s, key));
        if default.is_none() && sub_schema.is_none() {
            out.push(format!(
                "values key {} is not defined by {} (not in its values.yaml{}{}): \
                 fix the key, or list the path in upstream/values-policy.yaml (free_form) with the reason",
                path.join("."),
                chart.label(),
                if chart.dependency_values.is_empty() { "" } else { " or a subchart's" },
                if chart.schema.is_some() { " nor values.schema.json" } else { "" },
            ));
        } else if value.is_object() && !value.as_object().is_some_and(Map::is_empty) {
            let default_has_keys = default
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty());
            let schema_names_keys = sub_schema.is_some_and(|s| schema_has_keys(root_schema, s));
            if default_has_keys || schema_names_keys {
                walk(
                    chart,
                    free,
                    value,
                    default,
                    sub_schema,
                    root_schema,
                    path,
                    out,
                );
            } else if matches!(default, Some(Value::Object(_)))
                && sub_schema.is_none_or(|s| schema_open(root_schema, s))
            {
                // upstream's default is an empty map: its keys are whatever the user names, so
                // they cannot be checked here; only an explicit free-form entry allows them
                out.push(format!(
                    "values key {} is an empty map in {}: its keys cannot be checked against \
                     upstream; list the path in upstream/values-policy.yaml (free_form) with the reason",
                    path.join("."),
                    chart.label()
                ));
            }
            // a default of null, a scalar or a list is replaced by our map: nothing below to check
        }
        path.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_follows_helm() {
        let base = json!({"a": {"b": 1, "c": [1, 2]}, "d": {"e": 1}, "f": 1});
        let ours = json!({"a": {"c": [3], "x": null}, "d": null, "g": {"h": null, "i": 2}});
        assert_eq!(
            helm_merge(&base, &ours),
            json!({"a": {"b": 1, "c": [3]}, "f": 1, "g": {"i": 2}})
        );
    }

    #[test]
    fn truthiness() {
        let v = json!({"a": {"b": true, "c": false, "d": "", "e": {}}});
        assert!(truthy(&v, "a.b"));
        assert!(!truthy(&v, "a.c"));
        assert!(!truthy(&v, "a.d"));
        assert!(truthy(&v, "a.e"));
        assert!(!truthy(&v, "a.zz"));
    }
}

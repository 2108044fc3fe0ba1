//! Extraction of the planned `ffe_manifests` bundles from `terraform show -json` output.
//!
//! An `ffe_manifests` resource has `bundle` (its name; the provider prefixes every file with it on
//! the servers) and `manifests` (file name -> YAML). Every file becomes one [`Source`] named
//! `ADDRESS/FILE`; plan-level problems (unknown manifests, two resources writing the same bundle,
//! an expected bundle missing) are [`Problem`]s of their own.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::conformance::WaitTarget;
use crate::{Error, Problem, Source};

/// The resource type holding bundles.
pub const RESOURCE_TYPE: &str = "ffe_manifests";

/// What a plan holds for validation.
#[derive(Debug, Default)]
pub struct Planned {
    /// One source per file of every `ffe_manifests` resource, named `ADDRESS/FILE`.
    pub sources: Vec<Source>,
    /// Resources whose manifests cannot be validated (unknown at plan time, wrong type), and
    /// bundle names used by more than one resource.
    pub problems: Vec<Problem>,
    /// bundle name -> addresses of the `ffe_manifests` resources writing it
    pub bundles: BTreeMap<String, Vec<String>>,
    /// The root module's `kubernetes_version` variable, if the plan has one.
    pub kubernetes_version: Option<String>,
    /// bundle name -> its files
    pub bundle_sources: BTreeMap<String, Vec<Source>>,
    /// bundle name -> the bundles Terraform applies before it (`depends_on` and references
    /// between `ffe_manifests` resources, transitively)
    pub after: BTreeMap<String, BTreeSet<String>>,
    /// bundle name -> the objects its resource waits for (`wait_for`)
    pub waits: BTreeMap<String, Vec<WaitTarget>>,
    /// bundle name -> its resource's configuration address (`ffe_manifests.platform`)
    config_address: BTreeMap<String, String>,
}

impl Planned {
    /// Number of `ffe_manifests` resources found.
    pub fn resources(&self) -> usize {
        self.bundles.values().map(Vec::len).sum()
    }

    /// Adds a problem for every name in `expected` that no planned resource writes.
    pub fn expect_bundles<S: AsRef<str>>(&mut self, expected: &[S]) {
        for name in expected {
            let name = name.as_ref();
            if !self.bundles.contains_key(name) {
                let found: Vec<&str> = self.bundles.keys().map(String::as_str).collect();
                self.problems.push(Problem::file(
                    "plan",
                    format!(
                        "expected an {RESOURCE_TYPE} resource with bundle = {name:?}; the plan has [{}]",
                        found.join(", ")
                    ),
                ));
            }
        }
    }
}

fn walk_module(module: &Value, out: &mut Planned) {
    for resource in module
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if resource.get("type").and_then(Value::as_str) != Some(RESOURCE_TYPE)
            || resource.get("mode").and_then(Value::as_str) != Some("managed")
        {
            continue;
        }
        let address = resource
            .get("address")
            .and_then(Value::as_str)
            .unwrap_or("ffe_manifests.?")
            .to_string();
        let bundle_name = resource
            .pointer("/values/bundle")
            .and_then(Value::as_str)
            .map(str::to_string);
        match &bundle_name {
            Some(bundle) => {
                out.bundles
                    .entry(bundle.to_string())
                    .or_default()
                    .push(address.clone());
                out.config_address
                    .insert(bundle.clone(), config_address(&address));
            }
            None => {
                out.bundles
                    .entry(String::new())
                    .or_default()
                    .push(address.clone());
                out.problems
                    .push(Problem::file(&address, "bundle is unknown at plan time"));
            }
        }
        if let Some(bundle) = &bundle_name {
            let waits = resource
                .pointer("/values/wait_for")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|w| {
                    Some(WaitTarget {
                        kind: w.get("kind")?.as_str()?.to_string(),
                        name: w.get("name")?.as_str()?.to_string(),
                        namespace: w
                            .get("namespace")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    })
                });
            out.waits.entry(bundle.clone()).or_default().extend(waits);
        }
        match resource.pointer("/values/manifests") {
            Some(Value::Object(files)) => {
                if files.is_empty() {
                    out.problems
                        .push(Problem::file(&address, "manifests map is empty"));
                }
                for (file, content) in files {
                    match content.as_str() {
                        Some(text) => {
                            let source = Source::new(format!("{address}/{file}"), text);
                            if let Some(bundle) = &bundle_name {
                                out.bundle_sources
                                    .entry(bundle.clone())
                                    .or_default()
                                    .push(source.clone());
                            }
                            out.sources.push(source)
                        }
                        None => out.problems.push(Problem::file(
                            format!("{address}/{file}"),
                            "planned content is not a string",
                        )),
                    }
                }
            }
            // unknown values are left out of planned_values; resource_changes says so
            _ => out.problems.push(Problem::file(
                &address,
                "manifests are unknown at plan time: render them from variables only, \
                 not from attributes computed during apply",
            )),
        }
    }
    for child in module
        .get("child_modules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        walk_module(child, out);
    }
}

/// `module.m.ffe_manifests.platform["cni"]` -> `module.m.ffe_manifests.platform`.
fn config_address(address: &str) -> String {
    match address.rfind('[') {
        Some(i) if address.ends_with(']') && !address[i..].contains('.') => {
            address[..i].to_string()
        }
        _ => address.to_string(),
    }
}

/// For each configured `ffe_manifests` resource (root module), the other `ffe_manifests`
/// resources it depends on: `depends_on` entries and expression references.
fn config_dependencies(plan: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    let resources = plan
        .pointer("/configuration/root_module/resources")
        .and_then(Value::as_array);
    for resource in resources.into_iter().flatten() {
        if resource.get("type").and_then(Value::as_str) != Some(RESOURCE_TYPE) {
            continue;
        }
        let Some(address) = resource.get("address").and_then(Value::as_str) else {
            continue;
        };
        let mut deps = BTreeSet::new();
        let mut add = |r: &str| {
            if let Some(rest) = r.strip_prefix(&format!("{RESOURCE_TYPE}.")) {
                let name = rest.split(['.', '[']).next().unwrap_or(rest);
                let dep = format!("{RESOURCE_TYPE}.{name}");
                if dep != address {
                    deps.insert(dep);
                }
            }
        };
        let depends_on = resource.get("depends_on").and_then(Value::as_array);
        let references = resource
            .get("expressions")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(|expr| expr.get("references").and_then(Value::as_array));
        for r in depends_on.into_iter().chain(references).flatten() {
            if let Some(r) = r.as_str() {
                add(r);
            }
        }
        out.insert(address.to_string(), deps);
    }
    out
}

/// Extracts every `ffe_manifests` resource of a plan (`terraform show -json PLANFILE`).
pub fn extract(plan: &Value) -> Result<Planned, Error> {
    let root = plan.pointer("/planned_values/root_module").ok_or_else(|| {
        Error::Plan(
            "no planned_values.root_module: is this `terraform show -json` of a plan file?".into(),
        )
    })?;
    let mut out = Planned {
        kubernetes_version: plan
            .pointer("/variables/kubernetes_version/value")
            .and_then(Value::as_str)
            .map(str::to_string),
        ..Planned::default()
    };
    walk_module(root, &mut out);
    let deps = config_dependencies(plan);
    let mut after = BTreeMap::new();
    for (bundle, address) in &out.config_address {
        // transitive closure over configuration addresses, then back to bundle names
        let mut seen = BTreeSet::new();
        let mut todo: Vec<String> = deps.get(address).into_iter().flatten().cloned().collect();
        while let Some(a) = todo.pop() {
            if seen.insert(a.clone()) {
                todo.extend(deps.get(&a).into_iter().flatten().cloned());
            }
        }
        let earlier: BTreeSet<String> = out
            .config_address
            .iter()
            .filter(|(_, a)| seen.contains(*a))
            .map(|(b, _)| b.clone())
            .collect();
        after.insert(bundle.clone(), earlier);
    }
    out.after = after;
    if out.bundles.is_empty() {
        out.problems.push(Problem::file(
            "plan",
            format!("no {RESOURCE_TYPE} resource in the plan: nothing would be validated"),
        ));
    }
    for (bundle, addresses) in &out.bundles {
        if addresses.len() > 1 && !bundle.is_empty() {
            out.problems.push(Problem::file(
                "plan",
                format!(
                    "bundle {bundle:?} is written by {}: their files would overwrite each other \
                     on the servers; give each resource its own bundle name",
                    addresses.join(" and ")
                ),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bundle(address: &str, values: Value) -> Value {
        json!({"address": address, "mode": "managed", "type": "ffe_manifests", "values": values})
    }

    #[test]
    fn walks_child_modules_and_flags_unknown_manifests() {
        let plan = json!({
            "variables": {"kubernetes_version": {"value": "v1.29"}},
            "planned_values": {"root_module": {
                "resources": [
                    bundle("ffe_manifests.platform[\"cni\"]",
                           json!({"bundle": "cni", "manifests": {"a.yaml": "x: 1", "b.yaml": "y: 2"}})),
                    {"address": "ffe_host.master[0]", "mode": "managed", "type": "ffe_host",
                     "values": {"manifests": {"no.yaml": "z: 1"}}},
                    {"address": "terraform_data.x", "mode": "managed", "type": "terraform_data",
                     "values": {"input": {"bundle": "x", "manifests": {"no.yaml": "z: 1"}}}}
                ],
                "child_modules": [{"resources": [
                    bundle("module.m.ffe_manifests.late", json!({"bundle": "late"}))
                ]}]
            }}
        });
        let planned = extract(&plan).unwrap();
        assert_eq!(planned.resources(), 2);
        assert_eq!(
            planned.bundles.keys().collect::<Vec<_>>(),
            ["cni", "late"].iter().collect::<Vec<_>>()
        );
        let names: Vec<&str> = planned.sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "ffe_manifests.platform[\"cni\"]/a.yaml",
                "ffe_manifests.platform[\"cni\"]/b.yaml"
            ]
        );
        assert_eq!(planned.problems.len(), 1);
        assert_eq!(planned.problems[0].file, "module.m.ffe_manifests.late");
        assert_eq!(planned.kubernetes_version.as_deref(), Some("v1.29"));
    }

    #[test]
    fn a_plan_without_bundles_is_a_problem() {
        let planned = extract(&json!({"planned_values": {"root_module": {}}})).unwrap();
        assert_eq!(planned.problems.len(), 1);
        assert!(extract(&json!({})).is_err());
    }

    #[test]
    fn duplicate_and_missing_bundles_are_problems() {
        let files = json!({"a.yaml": "x: 1"});
        let plan = json!({"planned_values": {"root_module": {"resources": [
            bundle("ffe_manifests.a", json!({"bundle": "edge", "manifests": files})),
            bundle("ffe_manifests.b", json!({"bundle": "edge", "manifests": files})),
            bundle("ffe_manifests.c", json!({"bundle": "monitoring", "manifests": files})),
        ]}}});
        let mut planned = extract(&plan).unwrap();
        assert_eq!(planned.problems.len(), 1, "{:?}", planned.problems);
        assert!(planned.problems[0]
            .message
            .contains("ffe_manifests.a and ffe_manifests.b"));
        planned.expect_bundles(&["edge", "monitoring", "app"]);
        assert_eq!(planned.problems.len(), 2);
        assert!(planned.problems[1].message.contains("bundle = \"app\""));
    }
}

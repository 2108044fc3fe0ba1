//! Extraction of the planned `ffe_manifests` bundles from `terraform show -json` output.

use serde_json::Value;

use crate::{Error, Problem, Source};

/// What a plan holds for validation.
#[derive(Debug, Default)]
pub struct Planned {
    /// One source per file of every `ffe_manifests` resource, named `ADDRESS/FILE`.
    pub sources: Vec<Source>,
    /// Resources whose manifests cannot be validated (unknown at plan time, wrong type).
    pub problems: Vec<Problem>,
    /// `ffe_manifests` resources found.
    pub bundles: usize,
    /// The root module's `kubernetes_version` variable, if the plan has one.
    pub kubernetes_version: Option<String>,
}

/// The resource type holding bundles: `ffe_manifests`. `terraform_data` (whose `input` is
/// `{bundle, manifests}`) is accepted as a stand-in where the provider lacks the resource.
fn walk_module(module: &Value, resource_type: &str, out: &mut Planned) {
    for resource in module
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if resource.get("type").and_then(Value::as_str) != Some(resource_type)
            || resource.get("mode").and_then(Value::as_str) != Some("managed")
        {
            continue;
        }
        out.bundles += 1;
        let address = resource
            .get("address")
            .and_then(Value::as_str)
            .unwrap_or("ffe_manifests.?")
            .to_string();
        let manifests = resource
            .pointer("/values/manifests")
            .or_else(|| resource.pointer("/values/input/manifests"));
        match manifests {
            Some(Value::Object(files)) => {
                if files.is_empty() {
                    out.problems
                        .push(Problem::file(&address, "manifests map is empty"));
                }
                for (file, content) in files {
                    match content.as_str() {
                        Some(text) => out
                            .sources
                            .push(Source::new(format!("{address}/{file}"), text)),
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
        walk_module(child, resource_type, out);
    }
}

/// Extracts every `ffe_manifests` resource of a plan (`terraform show -json PLANFILE`).
pub fn extract(plan: &Value) -> Result<Planned, Error> {
    extract_type(plan, "ffe_manifests")
}

/// Like [`extract`], for another resource type (see [`walk_module`]).
pub fn extract_type(plan: &Value, resource_type: &str) -> Result<Planned, Error> {
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
    walk_module(root, resource_type, &mut out);
    if out.bundles == 0 {
        out.problems.push(Problem::file(
            "plan",
            format!("no {resource_type} resource in the plan: nothing would be validated"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn walks_child_modules_and_flags_unknown_manifests() {
        let plan = json!({
            "variables": {"kubernetes_version": {"value": "v1.29"}},
            "planned_values": {"root_module": {
                "resources": [
                    {"address": "ffe_manifests.cni", "mode": "managed", "type": "ffe_manifests",
                     "values": {"bundle": "cni", "manifests": {"a.yaml": "x: 1", "b.yaml": "y: 2"}}},
                    {"address": "ffe_host.master[0]", "mode": "managed", "type": "ffe_host",
                     "values": {"manifests": {"no.yaml": "z: 1"}}}
                ],
                "child_modules": [{"resources": [
                    {"address": "module.m.ffe_manifests.late", "mode": "managed",
                     "type": "ffe_manifests", "values": {"bundle": "late"}}
                ]}]
            }}
        });
        let planned = extract(&plan).unwrap();
        assert_eq!(planned.bundles, 2);
        let names: Vec<&str> = planned.sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["ffe_manifests.cni/a.yaml", "ffe_manifests.cni/b.yaml"]
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
}

//! Pod Security Admission over every workload a plan creates (our bundles and what the charts
//! render). The k3s CIS profile makes the API server enforce `restricted` in every namespace
//! without a `pod-security.kubernetes.io/enforce` label of its own, except the exempt ones
//! (`ffe_core::k3s::config::PSA_EXEMPT_NAMESPACES`, passed in as `exempt`). So:
//! - every namespace a workload (a Pod, or the pod template of a Deployment, DaemonSet,
//!   StatefulSet, ReplicaSet, Job or CronJob) lands in must be exempt or labelled by a Namespace
//!   object of the plan: an unlabelled one falls to the `restricted` default, which the platform's
//!   charts are not written for (docs/security.md, "k3s CIS profile");
//! - a namespace's enforce level is one Pod Security knows, and the same wherever the plan creates
//!   that Namespace (two bundles disagreeing leave the level to whichever applies last);
//! - a workload in a `baseline` or `restricted` namespace asks for none of the host access
//!   baseline forbids: hostNetwork, hostPID, hostIPC, privileged containers, hostPath volumes,
//!   host ports (a subset of the Pod Security Standards' baseline checks; the API server would
//!   reject the pods, and the workload's controller would retry for ever).
//!
//! Namespaces and pods operators create at run time (calico-system by the Tigera operator, the
//! pods of a Prometheus or PerconaPGCluster resource) are not in the plan and not checked here.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::Problem;

/// The label whose value is the namespace's enforced Pod Security level.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";

/// The levels Pod Security knows, least restrictive first.
pub const LEVELS: &[&str] = &["privileged", "baseline", "restricted"];

/// Where a namespaced object without `metadata.namespace` lands when we apply it ourselves.
pub const DEFAULT_NAMESPACE: &str = "default";

/// One object of the plan and where it lands when it names no namespace: the HelmChart's
/// `targetNamespace` for what a chart renders (Helm installs there), [`DEFAULT_NAMESPACE`] for ours.
#[derive(Debug, Clone)]
pub struct Placed {
    /// where it comes from: our file, or the HelmChart and chart template that render it
    pub origin: String,
    pub object: Value,
    pub default_namespace: String,
}

impl Placed {
    fn namespace(&self) -> &str {
        self.object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or(&self.default_namespace)
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The pod spec of a workload (a Pod, or a pod template), `None` for anything else.
pub fn pod_spec(value: &Value) -> Option<&Value> {
    match value.get("kind").and_then(Value::as_str)? {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            value.pointer("/spec/template/spec")
        }
        "CronJob" => value.pointer("/spec/jobTemplate/spec/template/spec"),
        "Pod" => value.get("spec"),
        _ => None,
    }
}

/// A Helm test hook: rendered by `helm template`, but created only by `helm test`, never by the
/// install k3s's helm-controller runs.
fn is_helm_test(value: &Value) -> bool {
    str_at(value, "/metadata/annotations/helm.sh~1hook")
        .split(',')
        .any(|h| h.trim().starts_with("test"))
}

/// What a pod spec asks for that Pod Security `baseline` forbids.
pub fn baseline_violations(spec: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec.get(field).and_then(Value::as_bool) == Some(true) {
            out.push(format!("{field}: true"));
        }
    }
    for volume in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if volume.get("hostPath").is_some() {
            out.push(format!(
                "hostPath volume {} ({})",
                str_at(volume, "/name"),
                str_at(volume, "/hostPath/path")
            ));
        }
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for container in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = str_at(container, "/name");
            if container
                .pointer("/securityContext/privileged")
                .and_then(Value::as_bool)
                == Some(true)
            {
                out.push(format!("container {name} privileged"));
            }
            for port in container
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                // baseline allows no host port at all (0 means none)
                match port.get("hostPort") {
                    Some(Value::Number(n)) if n.as_u64() == Some(0) => {}
                    Some(Value::Null) | None => {}
                    Some(p) => out.push(format!("container {name} hostPort {p}")),
                }
            }
        }
    }
    out
}

/// A Namespace object of the plan and the enforce level it sets, if any.
struct Declared<'a> {
    origin: &'a str,
    level: Option<&'a str>,
}

/// Every Pod Security problem of the plan's objects, given the namespaces the API server exempts.
pub fn check(objects: &[Placed], exempt: &[&str]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut declared: BTreeMap<&str, Vec<Declared>> = BTreeMap::new();
    for placed in objects {
        let v = &placed.object;
        if v.get("kind").and_then(Value::as_str) != Some("Namespace")
            || v.get("apiVersion").and_then(Value::as_str) != Some("v1")
        {
            continue;
        }
        let name = str_at(v, "/metadata/name");
        let level = v
            .pointer("/metadata/labels")
            .and_then(|l| l.get(ENFORCE_LABEL))
            .and_then(Value::as_str);
        if let Some(level) = level {
            if !LEVELS.contains(&level) {
                problems.push(Problem {
                    file: placed.origin.clone(),
                    doc: None,
                    object: Some(format!("Namespace/{name}")),
                    message: format!(
                        "{ENFORCE_LABEL}={level:?} is not a Pod Security level (one of {}): the API \
                         server evaluates the namespace as restricted",
                        LEVELS.join(", ")
                    ),
                });
            }
        }
        declared.entry(name).or_default().push(Declared {
            origin: &placed.origin,
            level,
        });
    }
    // the enforce level of each namespace the plan labels (the first, when they disagree); Pod
    // Security evaluates a namespace whose label is no level as restricted
    let mut levels: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, all) in &declared {
        if let Some(level) = all.iter().find_map(|d| d.level) {
            let level = if LEVELS.contains(&level) {
                level
            } else {
                "restricted"
            };
            levels.insert(name, level);
        }
        // a copy without the label does not remove it (a three-way merge removes only what it
        // applied itself); two levels fight
        let distinct: BTreeSet<&str> = all.iter().filter_map(|d| d.level).collect();
        if distinct.len() > 1 {
            let each: Vec<String> = all
                .iter()
                .filter_map(|d| Some(format!("{} by {}", d.level?, d.origin)))
                .collect();
            problems.push(Problem {
                file: "plan".into(),
                doc: None,
                object: Some(format!("Namespace/{name}")),
                message: format!(
                    "created with different {ENFORCE_LABEL} levels ({}): whichever bundle applies \
                     last decides; give every copy the same labels",
                    each.join("; ")
                ),
            });
        }
    }

    for placed in objects {
        let v = &placed.object;
        let Some(spec) = pod_spec(v) else {
            continue;
        };
        if is_helm_test(v) {
            continue;
        }
        let namespace = placed.namespace();
        if exempt.contains(&namespace) {
            continue;
        }
        let kind = str_at(v, "/kind");
        let name = str_at(v, "/metadata/name");
        let here = |message: String| Problem {
            file: placed.origin.clone(),
            doc: None,
            object: Some(format!("{kind}/{name}")),
            message,
        };
        match levels.get(namespace) {
            None => {
                let created = if declared.contains_key(namespace) {
                    "the plan creates it without that label"
                } else {
                    "no bundle creates it as a Namespace"
                };
                problems.push(here(format!(
                    "runs in namespace {namespace}, which carries no {ENFORCE_LABEL} label ({created}) \
                     and is not exempt ({}): with the k3s CIS profile the API server enforces Pod \
                     Security restricted there; label the namespace with the level its workloads \
                     need (terraform/modules/namespaces)",
                    exempt.join(", ")
                )));
            }
            Some(&level) if level == "baseline" || level == "restricted" => {
                let violations = baseline_violations(spec);
                if !violations.is_empty() {
                    problems.push(here(format!(
                        "namespace {namespace} enforces Pod Security {level}, but the pods ask for \
                         {}, which baseline forbids: the API server would reject them; drop the \
                         host access or run the workload in a privileged namespace",
                        violations.join(", ")
                    )));
                }
            }
            Some(_) => {}
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // the list the API server is given (k3s CIS profile), not a copy
    const EXEMPT: &[&str] = ffe_core::k3s::config::PSA_EXEMPT_NAMESPACES;

    fn namespace(name: &str, level: Option<&str>) -> Value {
        let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        if let Some(level) = level {
            ns["metadata"]["labels"] = json!({ ENFORCE_LABEL: level });
        }
        ns
    }

    fn deployment(name: &str, ns: Option<&str>, spec: Value) -> Value {
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {"template": {"spec": spec}}});
        if let Some(ns) = ns {
            d["metadata"]["namespace"] = json!(ns);
        }
        d
    }

    fn plain() -> Value {
        json!({"containers": [{"name": "app", "image": "x:1"}]})
    }

    fn run(objects: &[(&str, Value, &str)]) -> Vec<String> {
        let placed: Vec<Placed> = objects
            .iter()
            .map(|(origin, object, default_namespace)| Placed {
                origin: origin.to_string(),
                object: object.clone(),
                default_namespace: default_namespace.to_string(),
            })
            .collect();
        check(&placed, EXEMPT)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_workload_in_an_unlabelled_namespace_is_reported() {
        let text = run(&[
            ("ns.yaml", namespace("ffe", Some("restricted")), "default"),
            ("ns.yaml", namespace("bare", None), "default"),
            (
                "app.yaml",
                deployment("api", Some("other"), plain()),
                "default",
            ),
            (
                "app.yaml",
                deployment("worker", Some("bare"), plain()),
                "default",
            ),
            // ours without a namespace: applied to `default`, which nothing labels
            ("app.yaml", deployment("stray", None, plain()), "default"),
            (
                "app.yaml",
                deployment("fine", Some("ffe"), plain()),
                "default",
            ),
        ]);
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(
            text[0].contains("Deployment/api")
                && text[0].contains("namespace other")
                && text[0].contains("no bundle creates it"),
            "{text:?}"
        );
        assert!(
            text[1].contains("Deployment/worker")
                && text[1].contains("creates it without that label"),
            "{text:?}"
        );
        assert!(
            text[2].contains("Deployment/stray") && text[2].contains("namespace default"),
            "{text:?}"
        );
    }

    #[test]
    fn rendered_objects_land_in_the_target_namespace() {
        let chart = "bundle/edge.yaml HelmChart/x -> x/templates/deploy.yaml";
        let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent"}, "spec": {"template": {"spec": plain()}}});
        assert_eq!(
            run(&[(chart, ds.clone(), "kube-system")]),
            Vec::<String>::new()
        );
        let text = run(&[(chart, ds, "agents")]);
        assert_eq!(text.len(), 1, "{text:?}");
        assert!(
            text[0].starts_with(chart)
                && text[0].contains("DaemonSet/agent: runs in namespace agents"),
            "{text:?}"
        );
    }

    #[test]
    fn exempt_namespaces_pass_whatever_their_pods_ask() {
        let host = json!({"hostNetwork": true, "containers": [
            {"name": "node", "securityContext": {"privileged": true}}]});
        let text = run(&[
            (
                "a.yaml",
                deployment("vip", Some("kube-system"), host.clone()),
                "default",
            ),
            (
                "a.yaml",
                deployment("op", Some("tigera-operator"), host.clone()),
                "default",
            ),
            // exempt even when a bundle labels it: the API server does not evaluate it at all
            (
                "ns.yaml",
                namespace("calico-system", Some("restricted")),
                "default",
            ),
            (
                "a.yaml",
                deployment("node", Some("calico-system"), host.clone()),
                "default",
            ),
        ]);
        assert_eq!(text, Vec::<String>::new());
        // and only those: the same workload elsewhere is reported
        let text = run(&[(
            "a.yaml",
            deployment("vip", Some("kube-public"), host),
            "default",
        )]);
        assert_eq!(text.len(), 1, "{text:?}");
    }

    #[test]
    fn host_access_in_a_baseline_namespace_is_reported() {
        let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "exporter", "namespace": "ffe-edge"},
        "spec": {"template": {"spec": {
            "hostNetwork": true,
            "containers": [{"name": "e", "ports": [{"containerPort": 9100, "hostPort": 9100}]}]
        }}}});
        let text = run(&[
            (
                "ns.yaml",
                namespace("ffe-edge", Some("baseline")),
                "default",
            ),
            ("ds.yaml", ds.clone(), "default"),
        ]);
        assert_eq!(text.len(), 1, "{text:?}");
        assert!(
            text[0].contains("DaemonSet/exporter")
                && text[0].contains("enforces Pod Security baseline")
                && text[0].contains("hostNetwork: true")
                && text[0].contains("container e hostPort 9100"),
            "{text:?}"
        );
        // the same DaemonSet in a privileged namespace passes
        let text = run(&[
            (
                "ns.yaml",
                namespace("ffe-edge", Some("privileged")),
                "default",
            ),
            ("ds.yaml", ds, "default"),
        ]);
        assert_eq!(text, Vec::<String>::new());
    }

    #[test]
    fn every_baseline_subset_check_fires() {
        let spec = json!({
            "hostPID": true, "hostIPC": true,
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}, {"name": "tmp", "emptyDir": {}}],
            "initContainers": [{"name": "init", "securityContext": {"privileged": true}}],
            "containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 0}]}]
        });
        let v = baseline_violations(&spec);
        assert_eq!(
            v,
            [
                "hostPID: true",
                "hostIPC: true",
                "hostPath volume root (/)",
                "container init privileged"
            ],
            "{v:?}"
        );
        let cron = json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "backup", "namespace": "ffe"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}});
        let text = run(&[
            ("ns.yaml", namespace("ffe", Some("restricted")), "default"),
            ("cron.yaml", cron, "default"),
        ]);
        assert_eq!(text.len(), 1, "{text:?}");
        assert!(text[0].contains("CronJob/backup") && text[0].contains("restricted"));
    }

    #[test]
    fn bad_and_conflicting_levels_are_reported_and_helm_tests_skipped() {
        let test_pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "t", "annotations": {"helm.sh/hook": "test"}},
            "spec": plain()});
        let host = json!({"hostIPC": true, "containers": []});
        let text = run(&[
            (
                "a.yaml",
                namespace("monitoring", Some("privileged")),
                "default",
            ),
            (
                "b.yaml",
                namespace("monitoring", Some("baseline")),
                "default",
            ),
            ("c.yaml", namespace("ffe", Some("Restricted")), "default"),
            ("chart -> t.yaml", test_pod, "nowhere"),
            // a label that is no level is evaluated as restricted
            ("d.yaml", deployment("ipc", Some("ffe"), host), "default"),
        ]);
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(
            text[0].contains("\"Restricted\" is not a Pod Security level"),
            "{text:?}"
        );
        assert!(
            text[1].contains("Namespace/monitoring")
                && text[1].contains("privileged by a.yaml; baseline by b.yaml"),
            "{text:?}"
        );
        assert!(
            text[2].contains("Deployment/ipc")
                && text[2].contains("enforces Pod Security restricted")
                && text[2].contains("hostIPC: true"),
            "{text:?}"
        );
    }
}

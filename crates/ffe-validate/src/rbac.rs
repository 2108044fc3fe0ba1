//! RBAC checks over every object a plan creates (our bundles and what the charts render):
//! - no ClusterRoleBinding or RoleBinding gives `cluster-admin`, or a role with `*` verbs on `*`
//!   resources, to a workload (a ServiceAccount, the service-account groups, or a User named like
//!   a ServiceAccount) or to everyone (`system:authenticated`, `system:unauthenticated`,
//!   `system:anonymous`); an aggregated ClusterRole counts with the rules of the plan's
//!   ClusterRoles its selectors pick up;
//! - the operators' read-only ClusterRole ([`READONLY_ROLE`]) only reads: get/list/watch, never
//!   Secrets, never a wildcard over the core group or all groups, no proxy/exec-like subresource,
//!   no aggregation (a labelled role from any chart could widen it), and it covers every API group
//!   the plan delivers a CRD for (else operators silently cannot see those objects);
//! - the break-glass binding ([`BREAK_GLASS_BINDING`]) binds only Groups, none of them `system:`.
//!
//! What k3s creates itself (its helm-controller binds each HelmChart's install Job to
//! `cluster-admin`) is not in a plan and not checked here (docs/security.md, "RBAC").

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::Problem;

/// The operators' read-only ClusterRole (terraform/modules/namespaces).
pub const READONLY_ROLE: &str = "ffe-readonly";
/// The break-glass ClusterRoleBinding (terraform/modules/namespaces).
pub const BREAK_GLASS_BINDING: &str = "ffe-break-glass";

/// Verbs the read-only role may grant.
const READ_VERBS: &[&str] = &["get", "list", "watch"];

/// Subresources whose `get` is more than reading: a connection into a pod, node or Service, or a
/// credential.
const FORBIDDEN_READ_SUBRESOURCES: &[&str] = &["proxy", "exec", "attach", "portforward", "token"];

/// Built-in API groups with nothing to read (only `create` of reviews): not required in the
/// read-only role.
const CREATE_ONLY_GROUPS: &[&str] = &["authentication.k8s.io", "authorization.k8s.io"];

/// One RBAC rule, as strings.
#[derive(Debug, Clone, Default)]
struct Rule {
    api_groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
}

impl Rule {
    fn parse(v: &Value) -> Self {
        let strs = |key: &str| -> Vec<String> {
            v.get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        };
        Self {
            api_groups: strs("apiGroups"),
            resources: strs("resources"),
            verbs: strs("verbs"),
        }
    }

    /// `*` verbs on `*` resources (in whatever API groups: a role that may do anything to every
    /// resource of a group is what the issue rules out for workloads).
    fn is_wildcard(&self) -> bool {
        self.verbs.iter().any(|v| v == "*") && self.resources.iter().any(|r| r == "*")
    }
}

fn rules_of(role: &Value) -> Vec<Rule> {
    role.get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(Rule::parse)
        .collect()
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn is_rbac(v: &Value, kind: &str) -> bool {
    v.get("kind").and_then(Value::as_str) == Some(kind)
        && str_at(v, "/apiVersion").starts_with("rbac.authorization.k8s.io/")
}

/// The plan's roles, to resolve what a binding grants.
struct Roles<'a> {
    cluster: BTreeMap<&'a str, &'a Value>,
    namespaced: BTreeMap<(&'a str, &'a str), &'a Value>,
}

impl<'a> Roles<'a> {
    fn collect(objects: &'a [(String, Value)]) -> Self {
        let mut cluster = BTreeMap::new();
        let mut namespaced = BTreeMap::new();
        for (_, v) in objects {
            if is_rbac(v, "ClusterRole") {
                cluster.insert(str_at(v, "/metadata/name"), v);
            } else if is_rbac(v, "Role") {
                namespaced.insert(
                    (
                        str_at(v, "/metadata/namespace"),
                        str_at(v, "/metadata/name"),
                    ),
                    v,
                );
            }
        }
        Self {
            cluster,
            namespaced,
        }
    }

    /// The ClusterRole's own rules plus, for an aggregated one, the rules of every ClusterRole of
    /// the plan its `matchLabels` selectors pick up (the controller does the same in the cluster).
    fn cluster_rules(&self, name: &str) -> Vec<Rule> {
        let Some(role) = self.cluster.get(name) else {
            return Vec::new();
        };
        let mut rules = rules_of(role);
        let selectors = role
            .pointer("/aggregationRule/clusterRoleSelectors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s.get("matchLabels").and_then(Value::as_object));
        for selector in selectors {
            for (other, v) in &self.cluster {
                if *other == name || selector.is_empty() {
                    continue;
                }
                let labels = v.pointer("/metadata/labels").and_then(Value::as_object);
                let matches = selector
                    .iter()
                    .all(|(k, want)| labels.and_then(|l| l.get(k)) == Some(want));
                if matches {
                    rules.extend(rules_of(v));
                }
            }
        }
        rules
    }

    /// Why the role a binding names is admin-like, if it is.
    fn admin_like(&self, binding: &Value) -> Option<String> {
        let kind = str_at(binding, "/roleRef/kind");
        let name = str_at(binding, "/roleRef/name");
        let rules = match kind {
            "ClusterRole" if name == "cluster-admin" => {
                return Some("ClusterRole cluster-admin".into())
            }
            "ClusterRole" => self.cluster_rules(name),
            "Role" => {
                let ns = str_at(binding, "/metadata/namespace");
                self.namespaced
                    .get(&(ns, name))
                    .map(|r| rules_of(r))
                    .unwrap_or_default()
            }
            _ => return None,
        };
        rules.iter().find(|r| r.is_wildcard()).map(|r| {
            format!(
                "{kind} {name} (its rule on apiGroups {:?} has verbs \"*\" on resources \"*\")",
                r.api_groups
            )
        })
    }
}

/// A subject that is a workload or everyone, described; `None` for a person or an operators' group.
fn workload_or_everyone(subject: &Value, binding_ns: &str) -> Option<String> {
    let name = str_at(subject, "/name");
    match str_at(subject, "/kind") {
        "ServiceAccount" => {
            let ns = subject
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or(binding_ns);
            Some(format!("ServiceAccount {ns}/{name}"))
        }
        "Group"
            if name == "system:serviceaccounts"
                || name.starts_with("system:serviceaccounts:")
                || name == "system:authenticated"
                || name == "system:unauthenticated" =>
        {
            Some(format!("Group {name}"))
        }
        "User" if name.starts_with("system:serviceaccount:") || name == "system:anonymous" => {
            Some(format!("User {name}"))
        }
        _ => None,
    }
}

/// Every RBAC problem of the plan's objects (`(origin, object)`: our files and what the charts
/// render) given the CRDs the plan delivers.
pub fn check(objects: &[(String, Value)], delivered_crds: &[Value]) -> Vec<Problem> {
    let roles = Roles::collect(objects);
    let mut problems = Vec::new();
    for (origin, v) in objects {
        let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = str_at(v, "/metadata/name");
        let here = |message: String| Problem {
            file: origin.clone(),
            doc: None,
            object: Some(format!("{kind}/{name}")),
            message,
        };
        if is_rbac(v, "ClusterRoleBinding") || is_rbac(v, "RoleBinding") {
            if let Some(why) = roles.admin_like(v) {
                let ns = str_at(v, "/metadata/namespace");
                for subject in v
                    .get("subjects")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(who) = workload_or_everyone(subject, ns) {
                        problems.push(here(format!(
                            "binds {why} to {who}: no workload (and never everyone) may hold \
                             cluster-admin-like rights; grant the verbs and resources its code \
                             calls, or bind operators through a Group (docs/security.md, RBAC)"
                        )));
                    }
                }
            }
            if is_rbac(v, "ClusterRoleBinding") && name == BREAK_GLASS_BINDING {
                problems.extend(check_break_glass(v).into_iter().map(here));
            }
        }
        if is_rbac(v, "ClusterRole") && name == READONLY_ROLE {
            problems.extend(check_readonly(v, delivered_crds).into_iter().map(here));
        }
    }
    problems
}

fn check_break_glass(binding: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let subjects: Vec<&Value> = binding
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if subjects.is_empty() {
        out.push("has no subject: name the operators' break-glass Group".into());
    }
    for s in subjects {
        let (kind, name) = (str_at(s, "/kind"), str_at(s, "/name"));
        if kind != "Group" {
            out.push(format!(
                "binds {kind} {name}: break-glass is for people holding a client certificate of \
                 the break-glass Group, never a {kind}"
            ));
        } else if name.starts_with("system:") {
            out.push(format!(
                "binds Group {name}: a system: group is held by Kubernetes components or by \
                 everyone, not by the operators on call"
            ));
        }
    }
    out
}

fn check_readonly(role: &Value, delivered_crds: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    if role.get("aggregationRule").is_some() {
        out.push(
            "has an aggregationRule: any ClusterRole with the selected labels (from any chart) \
             would widen it; list its groups and resources instead"
                .into(),
        );
    }
    let rules = rules_of(role);
    let mut groups: BTreeSet<&str> = BTreeSet::new();
    for rule in &rules {
        for verb in &rule.verbs {
            if !READ_VERBS.contains(&verb.as_str()) {
                out.push(format!(
                    "grants verb {verb:?} (on {:?}): a read-only role grants get, list and watch only",
                    rule.resources
                ));
            }
        }
        let core_or_all = rule.api_groups.iter().any(|g| g.is_empty() || g == "*");
        if rule.api_groups.iter().any(|g| g == "*") {
            out.push(
                "names apiGroups \"*\": that includes the core group and so Secrets; list the groups"
                    .into(),
            );
        }
        for resource in &rule.resources {
            let (base, sub) = match resource.split_once('/') {
                Some((b, s)) => (b, Some(s)),
                None => (resource.as_str(), None),
            };
            if base == "secrets" {
                out.push(format!(
                    "grants {resource}: the read-only role never reads Secrets"
                ));
            } else if base == "*" && core_or_all {
                out.push(format!(
                    "grants {resource:?} in the core group: that includes Secrets; list the core \
                     resources instead"
                ));
            }
            if let Some(sub) = sub {
                if sub == "*" || FORBIDDEN_READ_SUBRESOURCES.contains(&sub) {
                    out.push(format!(
                        "grants {resource}: reading it opens a connection into a workload or \
                         hands out a credential, which is more than reading"
                    ));
                }
            }
        }
        if rule.verbs.iter().any(|v| v == "get" || v == "list") {
            groups.extend(rule.api_groups.iter().map(String::as_str));
        }
    }
    let mut needed: BTreeSet<String> = crate::conformance::BUILTIN_GROUPS
        .iter()
        .filter(|g| !g.is_empty() && !CREATE_ONLY_GROUPS.contains(g))
        .map(|g| g.to_string())
        .collect();
    needed.extend(
        crate::conformance::K3S_KINDS
            .iter()
            .map(|(g, _)| g.to_string()),
    );
    needed.extend(
        delivered_crds
            .iter()
            .filter_map(|c| c.pointer("/spec/group").and_then(Value::as_str))
            .map(str::to_string),
    );
    let missing: Vec<String> = needed
        .into_iter()
        .filter(|g| !groups.contains(g.as_str()))
        .collect();
    if !missing.is_empty() {
        out.push(format!(
            "does not read API group(s) {}: the plan serves them (built in, k3s's, or a CRD it \
             delivers), so operators with the read-only role could not see those objects; add them",
            missing.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn objects(items: Vec<Value>) -> Vec<(String, Value)> {
        items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("fixture.yaml doc {}", i + 1), v))
            .collect()
    }

    fn crb(name: &str, role: &str, subjects: Value) -> Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": name},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
               "subjects": subjects})
    }

    fn cluster_role(name: &str, rules: Value) -> Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": name}, "rules": rules})
    }

    fn messages(problems: &[Problem]) -> Vec<String> {
        problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn cluster_admin_bound_to_a_service_account_is_reported() {
        let objs = objects(vec![crb(
            "backup-admin",
            "cluster-admin",
            json!([{"kind": "ServiceAccount", "name": "backup", "namespace": "monitoring"}]),
        )]);
        let problems = check(&objs, &[]);
        let text = messages(&problems);
        assert_eq!(problems.len(), 1, "{text:?}");
        assert!(
            text[0].contains("ClusterRoleBinding/backup-admin")
                && text[0].contains("ClusterRole cluster-admin")
                && text[0].contains("ServiceAccount monitoring/backup"),
            "{text:?}"
        );
    }

    #[test]
    fn wildcard_roles_and_service_account_groups_are_reported() {
        let objs = objects(vec![
            cluster_role(
                "everything",
                json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
            ),
            crb(
                "all-sas",
                "everything",
                json!([{"kind": "Group", "name": "system:serviceaccounts"}]),
            ),
            // a RoleBinding to a namespaced wildcard Role, its subject without a namespace
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                   "metadata": {"name": "ns-admin", "namespace": "ffe"},
                   "rules": [{"apiGroups": [""], "resources": ["*"], "verbs": ["*"]}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": "app", "namespace": "ffe"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "ns-admin"},
                   "subjects": [{"kind": "ServiceAccount", "name": "ffe-backend"},
                                {"kind": "User", "name": "system:serviceaccount:ffe:other"},
                                {"kind": "Group", "name": "system:authenticated"}]}),
        ]);
        let text = messages(&check(&objs, &[]));
        assert_eq!(text.len(), 4, "{text:?}");
        assert!(text[0].contains("Group system:serviceaccounts"), "{text:?}");
        assert!(
            text[1].contains("ServiceAccount ffe/ffe-backend"),
            "{text:?}"
        );
        assert!(
            text[2].contains("User system:serviceaccount:ffe:other"),
            "{text:?}"
        );
        assert!(text[3].contains("Group system:authenticated"), "{text:?}");
    }

    #[test]
    fn an_aggregated_role_counts_with_what_it_picks_up() {
        let mut picked = cluster_role(
            "widener",
            json!([{"apiGroups": [""], "resources": ["*"], "verbs": ["*"]}]),
        );
        picked["metadata"]["labels"] = json!({"example.com/aggregate-to-ops": "true"});
        let mut aggregated = cluster_role("ops", json!([]));
        aggregated["aggregationRule"] = json!({"clusterRoleSelectors": [
            {"matchLabels": {"example.com/aggregate-to-ops": "true"}}]});
        let objs = objects(vec![
            picked,
            aggregated,
            crb(
                "ops",
                "ops",
                json!([{"kind": "ServiceAccount", "name": "x", "namespace": "y"}]),
            ),
        ]);
        let text = messages(&check(&objs, &[]));
        assert_eq!(text.len(), 1, "{text:?}");
        assert!(text[0].contains("ClusterRole ops"), "{text:?}");
    }

    #[test]
    fn narrow_roles_and_groups_of_people_pass() {
        let objs = objects(vec![
            cluster_role(
                "export",
                json!([{"apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": ["list"]},
                       {"apiGroups": ["monitoring.coreos.com"], "resources": ["prometheuses"], "verbs": ["*"]}]),
            ),
            crb(
                "export",
                "export",
                json!([{"kind": "ServiceAccount", "name": "export", "namespace": "monitoring"}]),
            ),
            crb(
                BREAK_GLASS_BINDING,
                "cluster-admin",
                json!([{"kind": "Group", "name": "ffe:break-glass", "apiGroup": "rbac.authorization.k8s.io"}]),
            ),
        ]);
        assert_eq!(messages(&check(&objs, &[])), Vec::<String>::new());
    }

    #[test]
    fn break_glass_binds_only_operator_groups() {
        let objs = objects(vec![crb(
            BREAK_GLASS_BINDING,
            "cluster-admin",
            json!([{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "system:masters"}]),
        )]);
        let text = messages(&check(&objs, &[]));
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(text[0].contains("binds User alice"), "{text:?}");
        assert!(text[1].contains("Group system:masters"), "{text:?}");
    }

    fn readonly_rules() -> Value {
        let mut groups: Vec<&str> = crate::conformance::BUILTIN_GROUPS
            .iter()
            .copied()
            .filter(|g| !g.is_empty() && !CREATE_ONLY_GROUPS.contains(g))
            .collect();
        groups.extend(["helm.cattle.io", "k3s.cattle.io", "cert-manager.io"]);
        json!([
            {"apiGroups": [""], "resources": ["pods", "pods/log", "nodes", "configmaps"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": groups, "resources": ["*"], "verbs": ["get", "list", "watch"]}
        ])
    }

    fn crd(group: &str) -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": format!("things.{group}")}, "spec": {"group": group}})
    }

    #[test]
    fn readonly_role_as_rendered_passes() {
        let objs = objects(vec![cluster_role(READONLY_ROLE, readonly_rules())]);
        assert_eq!(
            messages(&check(&objs, &[crd("cert-manager.io")])),
            Vec::<String>::new()
        );
    }

    #[test]
    fn readonly_role_never_reads_secrets_or_writes() {
        let objs = objects(vec![cluster_role(
            READONLY_ROLE,
            json!([
                {"apiGroups": [""], "resources": ["*"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["secrets", "nodes/proxy", "pods/exec"], "verbs": ["get", "create"]},
                {"apiGroups": ["*"], "resources": ["deployments"], "verbs": ["list"]}
            ]),
        )]);
        let text = messages(&check(&objs, &[]));
        let all = text.join("\n");
        for want in [
            "\"*\" in the core group",
            "grants secrets",
            "grants nodes/proxy",
            "grants pods/exec",
            "verb \"create\"",
            "apiGroups \"*\"",
            "does not read API group(s)",
        ] {
            assert!(all.contains(want), "{want} not reported in:\n{all}");
        }
    }

    #[test]
    fn readonly_role_must_cover_every_delivered_crd_group() {
        let objs = objects(vec![cluster_role(READONLY_ROLE, readonly_rules())]);
        let text = messages(&check(
            &objs,
            &[crd("cert-manager.io"), crd("pgv2.percona.com")],
        ));
        assert_eq!(text.len(), 1, "{text:?}");
        assert!(
            text[0].contains("does not read API group(s) pgv2.percona.com:"),
            "{text:?}"
        );
        let mut aggregated = cluster_role(READONLY_ROLE, readonly_rules());
        aggregated["aggregationRule"] = json!({"clusterRoleSelectors": [
            {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}]});
        let text = messages(&check(&objects(vec![aggregated]), &[]));
        assert!(text[0].contains("aggregationRule"), "{text:?}");
    }
}

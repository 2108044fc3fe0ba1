//! Upstream conformance of a plan's bundles: every HelmChart is checked against the upstream chart
//! it names, at the pinned version (vendored under `upstream/`), and rendered with it:
//! - the chart and version are published (`versions.txt`) from the repository the HelmChart names,
//!   not too far behind upstream's newest release, and vendored;
//! - every values key we set exists upstream (or is listed in `upstream/values-policy.yaml`), no
//!   deprecated key is used, and owned maps keep no upstream default;
//! - `helm template` of the upstream chart with our values succeeds (values.schema.json included);
//! - every custom resource (ours, or rendered by a chart) has its CRD delivered by the plan in the
//!   same bundle or one applied before it (a chart's templated CRDs do not count for its own
//!   resources: Helm resolves every kind before creating anything); what a chart needs before it
//!   starts (`requires`) is delivered by an earlier bundle;
//! - rendered workloads on the host network never share a node; claims keep their data (Retain)
//!   unless the policy says the data is rebuildable; rendered Alertmanager configuration passes
//!   `amtool check-config`;
//! - the Vault/OpenBao server configuration in a `vault`/`openbao` HelmChart's values passes
//!   OpenBao's parser and uses only keys OpenBao's source reads ([`crate::server_config`]).
//! - RBAC: no workload is bound to cluster-admin-like rights, and the operators' read-only role
//!   only reads ([`crate::rbac`]).
//!
//! Every object of the plan (ours and rendered) comes back with the namespace it lands in
//! ([`Outcome::objects`]) for the whole-plan Pod Security check ([`crate::psa`]), which the CLI
//! runs: partial plans (one bundle, as tests check them) have no namespaces bundle.
//!
//! The CRDs the plan delivers become the schemas every custom resource is validated against, so
//! each is checked at the version really installed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::docs::{group_of, Doc};
use crate::psa::pod_spec;
use crate::render::{self, Rendered};
use crate::upstream::{image_tag, trim_v, Upstream, VendoredChart};
use crate::values::{self, ValuesPolicy};
use crate::{helm, Error, KubeVersion, Problem, Source};

/// API groups Kubernetes itself serves (no CRD needed). Anything else needs a CRD.
pub const BUILTIN_GROUPS: &[&str] = &[
    "",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "apps",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "internal.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
];

/// Kinds k3s registers itself (helm-controller's and k3s's own CRDs).
pub const K3S_KINDS: &[(&str, &str)] = &[
    ("helm.cattle.io", "HelmChart"),
    ("helm.cattle.io", "HelmChartConfig"),
    ("k3s.cattle.io", "Addon"),
    ("k3s.cattle.io", "ETCDSnapshotFile"),
];

/// How many minor release lines a pinned chart may trail upstream's newest by.
pub const MAX_MINORS_BEHIND: usize = 2;

/// One planned bundle: its files, the bundles Terraform applies before it, and the objects the
/// provider waits for once it is written (`wait_for`).
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    pub name: String,
    pub sources: Vec<Source>,
    pub after: BTreeSet<String>,
    pub waits: Vec<WaitTarget>,
}

/// One `wait_for` entry: `kind` as kubectl takes it (`deployment.apps`, `customresourcedefinition`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitTarget {
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
}

impl WaitTarget {
    /// Whether `object` is what this entry waits for (kind, group when given, name, namespace when
    /// both name one: chart templates may leave it to the release namespace).
    fn matches(&self, object: &Value) -> bool {
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        let group = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .map(group_of)
            .unwrap_or("");
        let name = object.pointer("/metadata/name").and_then(Value::as_str);
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str);
        let (want_kind, want_group) = match self.kind.split_once('.') {
            Some((k, g)) => (k, Some(g)),
            None => (self.kind.as_str(), None),
        };
        kind.eq_ignore_ascii_case(want_kind)
            && want_group.is_none_or(|g| g == group)
            && name == Some(self.name.as_str())
            && match (&self.namespace, namespace) {
                (Some(want), Some(got)) => want == got,
                _ => true,
            }
    }
}

/// What the conformance check needs besides the plan.
pub struct Context<'a> {
    pub upstream: &'a Upstream,
    pub policy: &'a ValuesPolicy,
    pub helm: PathBuf,
    /// `amtool` for rendered Alertmanager configuration (`None` = skip, reported as a problem).
    pub amtool: Option<PathBuf>,
    /// Vault/OpenBao server configuration checks (`bao` and the vendored key lists).
    pub server_config: crate::server_config::Checker,
    pub kube_version: KubeVersion,
}

/// A CRD and who delivers it.
#[derive(Debug, Clone)]
struct Provider {
    bundle: String,
    by: String,
    /// the HelmChart that rendered it, if any (`namespace/name`)
    chart: Option<String>,
    from_crds_dir: bool,
    crd: Value,
}

/// A custom resource and where it comes from.
struct Use {
    bundle: String,
    by: String,
    chart: Option<String>,
    group: String,
    kind: String,
}

/// The outcome: problems, the CRDs delivered (to validate custom resources with), the objects the
/// charts render (to validate like ours), and the deployed charts.
#[derive(Default)]
pub struct Outcome {
    pub problems: Vec<Problem>,
    pub delivered_crds: Vec<Value>,
    pub rendered: Vec<Source>,
    pub charts: Vec<VendoredChart>,
    /// every image any object of the plan (ours or rendered) runs
    pub images: BTreeSet<String>,
    /// every object of the plan (ours and rendered, CRDs aside) and where it lands
    pub objects: Vec<crate::psa::Placed>,
}

fn crd_identity(crd: &Value) -> Option<(String, String)> {
    if crd.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
        return None;
    }
    Some((
        crd.pointer("/spec/group")?.as_str()?.to_string(),
        crd.pointer("/spec/names/kind")?.as_str()?.to_string(),
    ))
}

fn is_custom(api_version: &str) -> bool {
    !BUILTIN_GROUPS.contains(&group_of(api_version))
}

/// `(chart name, version)` a HelmChart refers to, when it is pulled from a repository.
fn chart_ref(doc: &Value) -> Option<(String, String)> {
    let chart = doc.pointer("/spec/chart")?.as_str()?;
    let name = helm::chart_name(chart).to_string();
    let version = doc
        .pointer("/spec/version")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .or_else(|| {
            let file = chart.rsplit('/').next()?.strip_suffix(".tgz")?;
            file.strip_prefix(&format!("{name}-")).map(str::to_string)
        })?;
    Some((name, version))
}

/// Where a HelmChart pulls from: `spec.repo`, or the URL in `spec.chart` (OCI or archive).
fn chart_location(doc: &Value) -> String {
    let chart = doc
        .pointer("/spec/chart")
        .and_then(Value::as_str)
        .unwrap_or("");
    match doc.pointer("/spec/repo").and_then(Value::as_str) {
        Some(repo) if !repo.is_empty() => repo.trim_end_matches('/').to_string(),
        _ => chart.to_string(),
    }
}

fn parse_values(doc: &Value) -> Result<Value, String> {
    match doc.pointer("/spec/valuesContent") {
        None => Ok(Value::Object(Default::default())),
        Some(Value::String(text)) => {
            let yaml: serde_yaml_ng::Value =
                serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
            let v = serde_json::to_value(yaml).map_err(|e| e.to_string())?;
            Ok(if v.is_null() {
                Value::Object(Default::default())
            } else {
                v
            })
        }
        Some(_) => Err("spec.valuesContent is not a string".into()),
    }
}

/// `(major, minor)` of a version such as `v3.32.0` or `0.58.1`.
fn minor_line(version: &str) -> Option<(u64, u64)> {
    let mut parts = trim_v(version).split(['.', '-', '+']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn is_stable(version: &str) -> bool {
    let v = trim_v(version);
    v.split('.').count() == 3 && v.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// How many stable minor lines newer than `pinned` upstream has published.
pub fn minors_behind(pinned: &str, published: &[String]) -> usize {
    let Some(ours) = minor_line(pinned) else {
        return 0;
    };
    published
        .iter()
        .filter(|v| is_stable(v))
        .filter_map(|v| minor_line(v))
        .filter(|line| *line > ours)
        .collect::<BTreeSet<_>>()
        .len()
}

/// Every container image of an object (pods, pod templates, CRs that name `image`).
fn collect_images(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "image" {
                    if let Some(s) = v.as_str() {
                        if !s.is_empty() {
                            out.insert(s.to_string());
                        }
                    }
                }
                collect_images(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_images(v, out)),
        _ => {}
    }
}

/// `group/version` of every served version of every delivered CRD.
fn served_api_versions(crds: &[Value]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for crd in crds {
        let Some(group) = crd.pointer("/spec/group").and_then(Value::as_str) else {
            continue;
        };
        for v in crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if v.get("served").and_then(Value::as_bool) == Some(true) {
                if let Some(name) = v.get("name").and_then(Value::as_str) {
                    out.insert(format!("{group}/{name}"));
                }
            }
        }
    }
    out
}

/// Runs every check over the bundles. Charts are rendered twice: first to learn which CRDs the
/// plan delivers, then with those APIs announced, as the live cluster would announce them.
pub fn check(bundles: &[Bundle], ctx: &Context) -> Result<Outcome, Error> {
    let first = check_with(bundles, ctx, &BTreeSet::new(), &BTreeSet::new())?;
    let apis = served_api_versions(&first.delivered_crds);
    let namespaced = namespaced_kinds(&first.delivered_crds);
    check_with(bundles, ctx, &apis, &namespaced)
}

/// `(group, kind)` of every delivered CRD whose objects live in a namespace.
fn namespaced_kinds(crds: &[Value]) -> BTreeSet<(String, String)> {
    crds.iter()
        .filter(|c| c.pointer("/spec/scope").and_then(Value::as_str) == Some("Namespaced"))
        .filter_map(crd_identity)
        .collect()
}

fn check_with(
    bundles: &[Bundle],
    ctx: &Context,
    apis: &BTreeSet<String>,
    namespaced: &BTreeSet<(String, String)>,
) -> Result<Outcome, Error> {
    let mut out = Outcome::default();
    let mut providers: Vec<Provider> = Vec::new();
    let mut uses: Vec<Use> = Vec::new();
    let mut needs: Vec<(String, String, crate::upstream::Requirement)> = Vec::new();
    let mut workloads: Vec<(String, Value)> = Vec::new();
    // where each entry of `workloads` lands when it names no namespace
    let mut default_namespaces: Vec<String> = Vec::new();
    let mut our_docs: Vec<Doc> = Vec::new();

    for bundle in bundles {
        let (first_workload, first_provider) = (workloads.len(), providers.len());
        let (docs, _) = crate::docs::load(&bundle.sources);
        for doc in &docs {
            let (Some(api_version), Some(kind)) = (doc.api_version(), doc.kind()) else {
                continue;
            };
            collect_images(&doc.value, &mut out.images);
            workloads.push((doc.file.clone(), doc.value.clone()));
            default_namespaces.push(crate::psa::DEFAULT_NAMESPACE.to_string());
            our_docs.push(doc.clone());
            if crd_identity(&doc.value).is_some() {
                providers.push(Provider {
                    bundle: bundle.name.clone(),
                    by: doc.file.clone(),
                    chart: None,
                    from_crds_dir: false,
                    crd: doc.value.clone(),
                });
            } else if is_custom(api_version) {
                uses.push(Use {
                    bundle: bundle.name.clone(),
                    by: format!("{} {}", doc.file, doc.object_ref().unwrap_or_default()),
                    chart: None,
                    group: group_of(api_version).to_string(),
                    kind: kind.to_string(),
                });
            }
            if group_of(api_version) == "helm.cattle.io"
                && kind == "HelmChart"
                && doc.value.pointer("/spec/chartContent").is_none()
            {
                check_helm_chart(
                    ctx,
                    apis,
                    namespaced,
                    bundle,
                    doc,
                    &mut out,
                    &mut providers,
                    &mut uses,
                    &mut needs,
                    &mut workloads,
                )?;
                // what the chart rendered lands in its release namespace
                default_namespaces.resize(workloads.len(), release_namespace(doc));
            }
        }
        // A wait for an object the bundle never creates can only time out, at apply time.
        let created: Vec<&Value> = workloads[first_workload..]
            .iter()
            .map(|(_, v)| v)
            .chain(providers[first_provider..].iter().map(|p| &p.crd))
            .collect();
        for wait in &bundle.waits {
            if !created.iter().any(|o| wait.matches(o)) {
                out.problems.push(Problem::file(
                    format!("bundle {}", bundle.name),
                    format!(
                        "wait_for {}/{}{} names no object of this bundle (its files or what its \
                         charts render): the apply would wait until it times out; use the name \
                         the manifests or the chart give it",
                        wait.kind,
                        wait.name,
                        wait.namespace
                            .as_deref()
                            .map(|n| format!(" in {n}"))
                            .unwrap_or_default()
                    ),
                ));
            }
        }
    }

    let strictly_earlier = |user: &str, provider: &str| -> bool {
        bundles
            .iter()
            .find(|b| b.name == user)
            .is_some_and(|b| b.after.contains(provider))
    };
    let earlier_or_same = |user: &str, provider: &str| -> bool {
        user == provider || strictly_earlier(user, provider)
    };

    for u in &uses {
        if K3S_KINDS.contains(&(u.group.as_str(), u.kind.as_str())) {
            continue;
        }
        let matching: Vec<&Provider> = providers
            .iter()
            .filter(|p| crd_identity(&p.crd).as_ref() == Some(&(u.group.clone(), u.kind.clone())))
            .collect();
        let usable = matching.iter().any(|p| {
            earlier_or_same(&u.bundle, &p.bundle)
                && !(u.chart.is_some() && p.chart == u.chart && !p.from_crds_dir)
        });
        if !usable {
            let hint = if matching.is_empty() {
                "nothing in the plan installs that CRD".to_string()
            } else {
                let places: Vec<String> = matching
                    .iter()
                    .map(|p| format!("{} (bundle {})", p.by, p.bundle))
                    .collect();
                format!(
                    "it is only delivered by {}, which comes too late (a later bundle, or the same \
                     chart's templates, which Helm cannot use for the chart's own resources)",
                    places.join(", ")
                )
            };
            out.problems.push(Problem::file(
                &u.by,
                format!(
                    "{}/{} needs its CRD delivered before it is applied: {hint}; deliver the CRD \
                     in this bundle or one applied before it",
                    u.group, u.kind
                ),
            ));
        }
    }

    for (bundle, chart, need) in &needs {
        for kind in &need.kinds {
            let Some((group, k)) = kind.rsplit_once('/') else {
                continue;
            };
            let delivered: Vec<&Provider> = providers
                .iter()
                .filter(|p| crd_identity(&p.crd) == Some((group.to_string(), k.to_string())))
                .filter(|p| strictly_earlier(bundle, &p.bundle))
                .collect();
            if delivered.is_empty() {
                out.problems.push(Problem::file(
                    chart,
                    format!(
                        "needs the {kind} CRD established before it starts ({}); no bundle applied \
                         before bundle {bundle} delivers it",
                        need.reason
                    ),
                ));
            }
            for p in delivered {
                for (key, want) in &need.crd_annotations {
                    let got = p
                        .crd
                        .pointer("/metadata/annotations")
                        .and_then(|a| a.get(key))
                        .and_then(Value::as_str);
                    if got != Some(want.as_str()) {
                        out.problems.push(Problem::file(
                            chart,
                            format!(
                                "needs {kind} with annotation {key}={want}, but {} delivers {}",
                                p.by,
                                got.unwrap_or("none")
                            ),
                        ));
                    }
                }
            }
        }
    }

    out.problems.extend(check_workloads(&workloads, ctx));
    out.problems.extend(check_our_images(&our_docs, ctx));
    out.delivered_crds = providers.into_iter().map(|p| p.crd).collect();
    // RBAC over ours and what the charts render, against every CRD group the plan serves
    out.problems
        .extend(crate::rbac::check(&workloads, &out.delivered_crds));
    out.objects = workloads
        .into_iter()
        .zip(default_namespaces)
        .map(|((origin, object), default_namespace)| crate::psa::Placed {
            origin,
            object,
            default_namespace,
        })
        .collect();
    Ok(out)
}

/// The namespace k3s's helm-controller installs a HelmChart's release into.
fn release_namespace(doc: &Doc) -> String {
    doc.value
        .pointer("/spec/targetNamespace")
        .and_then(Value::as_str)
        .or(doc.namespace())
        .unwrap_or("default")
        .to_string()
}

#[allow(clippy::too_many_arguments)]
fn check_helm_chart(
    ctx: &Context,
    apis: &BTreeSet<String>,
    namespaced: &BTreeSet<(String, String)>,
    bundle: &Bundle,
    doc: &Doc,
    out: &mut Outcome,
    providers: &mut Vec<Provider>,
    uses: &mut Vec<Use>,
    needs: &mut Vec<(String, String, crate::upstream::Requirement)>,
    workloads: &mut Vec<(String, Value)>,
) -> Result<(), Error> {
    let here = format!("{} HelmChart/{}", doc.file, doc.name().unwrap_or("?"));
    let problem = |m: String| Problem::file(&here, m);
    let Some((chart, version)) = chart_ref(&doc.value) else {
        out.problems.push(problem(
            "cannot tell which chart and version it installs".into(),
        ));
        return Ok(());
    };
    let Some(published) = ctx.upstream.versions(&chart)? else {
        out.problems.push(problem(format!(
            "chart {chart} is not vendored: add upstream/charts/{chart}/ (versions.txt and the \
             pinned version's chart, see upstream/README.md)"
        )));
        return Ok(());
    };
    if !published.contains(&version) {
        let newest = published.last().cloned().unwrap_or_default();
        out.problems.push(problem(format!(
            "{chart} {version} is not a published version (upstream/charts/{chart}/versions.txt; \
             newest is {newest})"
        )));
    } else {
        let behind = minors_behind(&version, &published);
        if behind > MAX_MINORS_BEHIND {
            out.problems.push(problem(format!(
                "{chart} {version} trails upstream by {behind} minor releases (newest {}; at most \
                 {MAX_MINORS_BEHIND} allowed): move the pin forward",
                published
                    .iter()
                    .rev()
                    .find(|v| is_stable(v))
                    .cloned()
                    .unwrap_or_default()
            )));
        }
    }
    let Some(vendored) = ctx.upstream.chart(&chart, &version)? else {
        let have = ctx.upstream.vendored_versions(&chart)?;
        out.problems.push(problem(format!(
            "{chart} {version} is not vendored (upstream/charts/{chart}/ has {}): vendor the \
             pinned version, so its values, CRDs and templates are checked",
            if have.is_empty() {
                "none".into()
            } else {
                have.join(", ")
            }
        )));
        return Ok(());
    };
    let location = chart_location(&doc.value);
    if !vendored.meta.repo_urls.is_empty()
        && !vendored
            .meta
            .repo_urls
            .iter()
            .any(|u| location.starts_with(u.trim_end_matches('/')))
    {
        out.problems.push(problem(format!(
            "pulls {chart} from {location}, but upstream publishes it at {}",
            vendored.meta.repo_urls.join(" or ")
        )));
    }
    let ours = match parse_values(&doc.value) {
        Ok(v) => v,
        Err(e) => {
            out.problems
                .push(problem(format!("spec.valuesContent: {e}")));
            return Ok(());
        }
    };
    for m in values::unknown_keys(&vendored, &ours, ctx.policy) {
        out.problems.push(problem(m));
    }
    for m in ctx.policy.owned_leftovers(&vendored, &ours) {
        out.problems.push(problem(m));
    }
    for m in ctx.server_config.check(ctx.upstream, &vendored, &ours) {
        out.problems.push(problem(m));
    }
    for dep in &vendored.meta.deprecated_values {
        if values::at_path(&ours, &dep.path).is_some() {
            out.problems.push(problem(format!(
                "values key {} is deprecated in {}: use {} ({})",
                dep.path,
                vendored.label(),
                dep.use_instead,
                dep.source
            )));
        }
    }
    let effective = values::effective_values(&vendored, &ours);
    for need in &vendored.meta.requires {
        if need.condition.as_deref().is_none_or(|c| {
            c.split("||")
                .any(|alt| values::truthy(&effective, alt.trim()))
        }) {
            needs.push((bundle.name.clone(), here.clone(), need.clone()));
        }
    }

    let release = doc.name().unwrap_or(&chart).to_string();
    let namespace = release_namespace(doc);
    let rendered = match render::template(
        &ctx.helm,
        &vendored,
        &release,
        &namespace,
        &ours,
        &ctx.kube_version,
        apis,
    ) {
        Ok(r) => r,
        Err(e) => {
            out.problems.push(problem(format!(
                "helm template of upstream {} with our valuesContent fails: {e}",
                vendored.label()
            )));
            out.charts.push(vendored);
            return Ok(());
        }
    };
    let chart_id = format!("{namespace}/{release}@{}", doc.file);
    let mut text = String::new();
    for Rendered {
        source,
        from_crds_dir,
        value,
    } in rendered
    {
        let origin = format!("{here} -> {source}");
        collect_images(&value, &mut out.images);
        if crd_identity(&value).is_some() {
            providers.push(Provider {
                bundle: bundle.name.clone(),
                by: format!("{here} ({})", vendored.label()),
                chart: Some(chart_id.clone()),
                from_crds_dir,
                crd: value,
            });
            continue;
        }
        if let Some(api_version) = value.get("apiVersion").and_then(Value::as_str) {
            if is_custom(api_version) {
                uses.push(Use {
                    bundle: bundle.name.clone(),
                    by: origin.clone(),
                    chart: Some(chart_id.clone()),
                    group: group_of(api_version).to_string(),
                    kind: value
                        .get("kind")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                });
            }
        }
        workloads.push((origin, value.clone()));
        // namespaced custom resources without a namespace get the release namespace at install
        // time (built-in kinds are checked without one)
        let mut value = value;
        let identity = (
            value
                .get("apiVersion")
                .and_then(Value::as_str)
                .map(group_of)
                .unwrap_or("")
                .to_string(),
            value
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        );
        if value.pointer("/metadata/namespace").is_none() && namespaced.contains(&identity) {
            if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("namespace".into(), Value::String(namespace.clone()));
            }
        }
        text.push_str("---\n");
        text.push_str(&serde_yaml_ng::to_string(&value).unwrap_or_default());
    }
    if !text.is_empty() {
        out.rendered.push(Source::new(
            format!("{} [rendered {}]", doc.file, vendored.label()),
            text,
        ));
    }
    out.charts.push(vendored);
    Ok(())
}

/// Required anti-affinity (or a DoNotSchedule spread) by hostname over the workload's own pods.
fn never_shares_a_node(spec: &Value) -> bool {
    let anti = spec
        .pointer("/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution")
        .and_then(Value::as_array)
        .is_some_and(|terms| {
            terms.iter().any(|t| {
                t.get("topologyKey").and_then(Value::as_str) == Some("kubernetes.io/hostname")
            })
        });
    let spread = spec
        .get("topologySpreadConstraints")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("topologyKey").and_then(Value::as_str) == Some("kubernetes.io/hostname")
                    && c.get("whenUnsatisfiable").and_then(Value::as_str) == Some("DoNotSchedule")
                    && c.get("maxSkew").and_then(Value::as_u64) == Some(1)
            })
        });
    anti || spread
}

/// Storage class names a claim (or claim template) of an object asks for.
fn claimed_classes(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    let mut push = |v: Option<&Value>| {
        if let Some(s) = v.and_then(Value::as_str) {
            out.push(s.to_string());
        }
    };
    match kind {
        "PersistentVolumeClaim" => push(value.pointer("/spec/storageClassName")),
        "StatefulSet" => {
            for t in value
                .pointer("/spec/volumeClaimTemplates")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                push(t.pointer("/spec/storageClassName"));
            }
        }
        // prometheus-operator CRs: the operator turns these into StatefulSet claim templates
        "Prometheus" | "Alertmanager" | "ThanosRuler" | "PrometheusAgent" => {
            push(value.pointer("/spec/storage/volumeClaimTemplate/spec/storageClassName"))
        }
        // Percona's PostgreSQL operator turns these into instance and repository claims
        "PerconaPGCluster" | "PostgresCluster" => {
            let list = |path: &str| {
                value
                    .pointer(path)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            };
            for instance in list("/spec/instances") {
                push(instance.pointer("/dataVolumeClaimSpec/storageClassName"));
                push(instance.pointer("/walVolumeClaimSpec/storageClassName"));
            }
            for repo in list("/spec/backups/pgbackrest/repos") {
                push(repo.pointer("/volume/volumeClaimSpec/storageClassName"));
            }
        }
        _ => {}
    }
    out
}

fn check_workloads(objects: &[(String, Value)], ctx: &Context) -> Vec<Problem> {
    let mut problems = Vec::new();
    let reclaim: BTreeMap<String, String> = objects
        .iter()
        .filter(|(_, v)| v.get("kind").and_then(Value::as_str) == Some("StorageClass"))
        .filter_map(|(_, v)| {
            Some((
                v.pointer("/metadata/name")?.as_str()?.to_string(),
                v.get("reclaimPolicy")
                    .and_then(Value::as_str)
                    .unwrap_or("Delete")
                    .to_string(),
            ))
        })
        .collect();
    for (origin, value) in objects {
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("?");
        if let Some(spec) = pod_spec(value) {
            let replicas = value
                .pointer("/spec/replicas")
                .and_then(Value::as_u64)
                .unwrap_or(1);
            let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
            if host_network
                && replicas > 1
                && matches!(kind, "Deployment" | "StatefulSet" | "ReplicaSet")
                && !never_shares_a_node(spec)
            {
                problems.push(Problem::file(
                    origin,
                    format!(
                        "{kind}/{name}: {replicas} replicas on the host network without required \
                         anti-affinity by kubernetes.io/hostname: two pods on one node bind the \
                         same host ports"
                    ),
                ));
            }
        }
        for class in claimed_classes(value) {
            match reclaim.get(&class) {
                Some(policy) if policy == "Retain" => {}
                Some(_) if ctx.policy.rebuildable(&format!("{kind}/{name}")) => {}
                Some(policy) => problems.push(Problem::file(
                    origin,
                    format!(
                        "{kind}/{name} keeps data on StorageClass {class} (reclaimPolicy {policy}): \
                         deleting the claim deletes the data; use a Retain class, or list the object \
                         as rebuildable in upstream/values-policy.yaml with the reason"
                    ),
                )),
                None => problems.push(Problem::file(
                    origin,
                    format!(
                        "{kind}/{name} asks for StorageClass {class}, which the plan does not create"
                    ),
                )),
            }
        }
        problems.extend(check_alertmanager_config(origin, value, ctx));
    }
    problems
}

/// Containers an object of ours runs: a pod (template)'s containers and init containers, and the
/// sidecars an operator custom resource injects into the pods it creates (PerconaPGCluster:
/// `spec.instances[].sidecars`, `spec.proxy.pgBouncer.sidecars`).
fn our_containers(value: &Value) -> Vec<&Value> {
    let mut lists: Vec<&Value> = Vec::new();
    if let Some(spec) = pod_spec(value) {
        lists.extend(
            ["containers", "initContainers"]
                .iter()
                .filter_map(|k| spec.get(*k)),
        );
    }
    if value.get("kind").and_then(Value::as_str) == Some("PerconaPGCluster") {
        lists.extend(
            value
                .pointer("/spec/instances")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|set| set.get("sidecars")),
        );
        lists.extend(value.pointer("/spec/proxy/pgBouncer/sidecars"));
    }
    lists
        .into_iter()
        .filter_map(Value::as_array)
        .flatten()
        .collect()
}

/// Names listed in a vendored list file (`env.txt`, `flags.txt`): one per line, `#` comments.
fn listed_names(text: &str) -> BTreeSet<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// The flag name of a command-line argument (`--name=value`, `--name`, `-name`), None for a value.
fn flag_name(arg: &str) -> Option<&str> {
    let bare = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
    let name = bare.split('=').next().unwrap_or(bare);
    (!name.is_empty()).then_some(name)
}

/// Containers of our own manifests (not chart-rendered): each image must be vendored under
/// `upstream/images/<name>/<tag>/` with the environment variables it reads (`env.txt`), every
/// variable we set must be one of them (kube-vip, for one, is configured only through env), and
/// every `--flag` in `args` must be one the image's binary defines (`flags.txt`; kingpin's `--no-`
/// form of a listed boolean is accepted): a misspelt variable is silently ignored, a misspelt flag
/// makes the container crash-loop. An inline script (`python3|bash|sh -c SCRIPT`) must parse
/// (crate::scripts).
fn check_our_images(docs: &[Doc], ctx: &Context) -> Vec<Problem> {
    let mut problems = Vec::new();
    for doc in docs {
        for container in our_containers(&doc.value) {
            let here = format!("{} {}", doc.file, doc.object_ref().unwrap_or_default());
            if let Some((interp, script)) = crate::scripts::inline_script(container) {
                if let Err(e) = crate::scripts::syntax_check(&interp, &script) {
                    problems.push(Problem::file(
                        &here,
                        format!("the inline {interp} script does not parse: {e}"),
                    ));
                }
            }
            let Some(image) = container.get("image").and_then(Value::as_str) else {
                continue;
            };
            let name = image
                .rsplit('/')
                .next()
                .unwrap_or(image)
                .split([':', '@'])
                .next()
                .unwrap_or(image);
            let Some(tag) = image_tag(image) else {
                problems.push(Problem::file(
                    &here,
                    format!("image {image} has no tag: pin it"),
                ));
                continue;
            };
            let dir = ctx.upstream.root().join("images").join(name).join(tag);
            let Ok(text) = std::fs::read_to_string(dir.join("env.txt")) else {
                problems.push(Problem::file(
                    &here,
                    format!(
                        "image {image} is not vendored: add upstream/images/{name}/{tag}/env.txt \
                             (the variables it reads, from its source at that tag)"
                    ),
                ));
                continue;
            };
            let known = listed_names(&text);
            for env in container
                .get("env")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(var) = env.get("name").and_then(Value::as_str) else {
                    continue;
                };
                if !known.contains(var) {
                    problems.push(Problem::file(
                        &here,
                        format!(
                            "{name} {tag} does not read environment variable {var} \
                                 (upstream/images/{name}/{tag}/env.txt): fix the name or drop it"
                        ),
                    ));
                }
            }
            let flags: Vec<&str> = container
                .get("args")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter_map(flag_name)
                .collect();
            if flags.is_empty() {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(dir.join("flags.txt")) else {
                problems.push(Problem::file(
                    &here,
                    format!(
                        "image {image} is given flags but upstream/images/{name}/{tag}/flags.txt \
                             does not exist (the flags its binary defines, from its source at that tag)"
                    ),
                ));
                continue;
            };
            let defined = listed_names(&text);
            for flag in flags {
                let negated = flag
                    .strip_prefix("no-")
                    .is_some_and(|f| defined.contains(f));
                if !defined.contains(flag) && !negated {
                    problems.push(Problem::file(
                        &here,
                        format!(
                            "{name} {tag} has no flag --{flag} \
                                 (upstream/images/{name}/{tag}/flags.txt): fix the name or drop it"
                        ),
                    ));
                }
            }
        }
    }
    problems
}

/// A rendered Secret holding `alertmanager.yaml` must pass `amtool check-config`.
fn check_alertmanager_config(origin: &str, value: &Value, ctx: &Context) -> Vec<Problem> {
    if value.get("kind").and_then(Value::as_str) != Some("Secret") {
        return Vec::new();
    }
    let text = if let Some(s) = value
        .pointer("/stringData/alertmanager.yaml")
        .and_then(Value::as_str)
    {
        s.to_string()
    } else if let Some(b) = value
        .pointer("/data/alertmanager.yaml")
        .and_then(Value::as_str)
    {
        use base64::Engine;
        match base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
        {
            Some(t) => t,
            None => {
                return vec![Problem::file(
                    origin,
                    "alertmanager.yaml is not valid base64",
                )]
            }
        }
    } else {
        return Vec::new();
    };
    let Some(amtool) = &ctx.amtool else {
        return vec![Problem::file(
            origin,
            "renders an Alertmanager configuration but amtool was not found: install it \
             (scripts/install-deps.sh) or pass --amtool",
        )];
    };
    match amtool_check(amtool, &text) {
        Ok(()) => Vec::new(),
        Err(e) => vec![Problem::file(
            origin,
            format!(
                "Alertmanager rejects the rendered alertmanager.yaml (amtool check-config): {e}"
            ),
        )],
    }
}

/// Runs `amtool check-config` on a configuration.
fn amtool_check(amtool: &Path, config: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("alertmanager.yaml");
    std::fs::write(&file, config).map_err(|e| e.to_string())?;
    let output = Command::new(amtool)
        .arg("check-config")
        .arg(&file)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", amtool.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Err(all
            .lines()
            .filter(|l| l.contains("FAILED") || l.contains("error") || l.contains("undefined"))
            .collect::<Vec<_>>()
            .join(" | "))
    }
}

/// Tag suffixes that name a build variant of the same release (Istio's `global.variant`), not a
/// pre-release: `1.30.3-distroless` is 1.30.3, `2.0.0-rc` is not 2.0.0.
const IMAGE_VARIANTS: &[&str] = &["distroless", "debug"];

/// Versions written next to a component's name in the repository's docs and comments must be
/// versions that component really has at its pin (chart version, appVersion, image tags).
pub fn check_version_mentions(
    repo_root: &Path,
    files: &[PathBuf],
    charts: &[VendoredChart],
    images: &BTreeSet<String>,
) -> Vec<Problem> {
    // name (lowercase, '-' '_' ' ' equivalent) -> versions it may be written with
    let mut known: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for chart in charts {
        let versions: BTreeSet<String> = chart.known_versions().into_iter().collect();
        for name in std::iter::once(&chart.meta.chart).chain(&chart.meta.aliases) {
            known
                .entry(normalise(name))
                .or_default()
                .extend(versions.iter().cloned());
        }
    }
    for image in images {
        let Some(tag) = image_tag(image) else {
            continue;
        };
        let repo = image.rsplit('/').next().unwrap_or(image);
        let name = repo.split(':').next().unwrap_or(repo);
        let versions = known.entry(normalise(name)).or_default();
        versions.insert(trim_v(tag).to_string());
        // `<upstream version>-<packaging revision>` (Percona's `2.58.0-2`) or `-<image variant>`
        // (Istio's `1.30.3-distroless`): the software is the version before the dash
        if let Some((version, suffix)) = trim_v(tag).split_once('-') {
            let revision = !suffix.is_empty() && suffix.chars().all(|c| c.is_ascii_digit());
            let variant = IMAGE_VARIANTS.contains(&suffix);
            if revision || variant {
                versions.insert(version.to_string());
            }
        }
    }
    let mut problems = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let shown = file
            .strip_prefix(repo_root)
            .unwrap_or(file)
            .display()
            .to_string();
        for (i, line) in text.lines().enumerate() {
            let lower = normalise(line);
            let original = line.as_bytes();
            // every whole-name occurrence on the line: (start, end, name)
            let mut found: Vec<(usize, usize, &String)> = Vec::new();
            for name in known.keys() {
                let mut from = 0;
                while let Some(pos) = lower[from..].find(name.as_str()) {
                    let start = from + pos;
                    from = start + name.len();
                    // a whole name: not part of a longer one (`tigera-operator` is not `operator`)
                    // (checked on the line as written: normalising turned spaces into '-')
                    let part_of_name =
                        |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_';
                    let before_ok = start == 0 || !part_of_name(&original[start - 1]);
                    let after_ok = original.get(from).is_none_or(|c| !part_of_name(c));
                    if before_ok && after_ok {
                        found.push((start, from, name));
                    }
                }
            }
            for &(start, end, name) in &found {
                // inside a longer known name written with spaces ("Percona operator" is not
                // Calico's `operator`): the longer name speaks for it
                let inside_longer = found
                    .iter()
                    .any(|&(s2, e2, _)| s2 <= start && e2 >= end && e2 - s2 > end - start);
                if inside_longer {
                    continue;
                }
                let versions = &known[name];
                if let Some(version) = version_after(&lower[end..]) {
                    if !versions.contains(trim_v(&version)) {
                        problems.push(Problem::file(
                            format!("{shown}:{}", i + 1),
                            format!(
                                "says {name} {version}, but the pinned {name} is {}",
                                versions.iter().cloned().collect::<Vec<_>>().join(" / ")
                            ),
                        ));
                    }
                }
            }
        }
    }
    problems
}

/// ASCII lowercase with `_` and ` ` as `-` (byte positions unchanged).
fn normalise(s: &str) -> String {
    s.to_ascii_lowercase().replace(['_', ' '], "-")
}

/// The first `x.y.z` version within a few characters after a name (`chart v1.2.3`, `= "1.2.3"`).
fn version_after(rest: &str) -> Option<String> {
    let window: String = rest.chars().take(40).collect();
    let bytes = window.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit()
            && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'v')
        {
            let start = i;
            let mut dots = 0;
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                if bytes[i] == b'.' {
                    dots += 1;
                }
                i += 1;
            }
            if i == bytes.len() {
                return None; // cut off by the window: not a whole version
            }
            let candidate = window[start..i].trim_end_matches('.');
            if candidate.split('.').count() == 4 {
                return None; // an IPv4 address ("vault.unsealed https://10.0.4.10:8200"), not a version
            }
            if dots >= 2 && candidate.split('.').all(|p| !p.is_empty()) {
                return Some(candidate.to_string());
            }
            // a number that is not a version (e.g. "2 replicas") ends the search
            return None;
        }
        if bytes[i] == b'\n' {
            return None;
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_lines_behind() {
        let published: Vec<String> = [
            "0.46.0",
            "0.47.0",
            "0.47.1",
            "0.48.0",
            "0.49.0-rc1",
            "0.58.1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(minors_behind("0.47.0", &published), 2);
        assert_eq!(minors_behind("0.46.0", &published), 3);
        assert_eq!(minors_behind("0.58.1", &published), 0);
    }

    #[test]
    fn versions_after_names() {
        assert_eq!(version_after(" chart v3.32.0 ships"), Some("3.32.0".into()));
        assert_eq!(
            version_after("        = \"v1.43.0\" #"),
            Some("1.43.0".into())
        );
        assert_eq!(version_after(" with 2 replicas v1.2.3"), None);
        assert_eq!(version_after(" v1.21"), None);
        assert_eq!(
            version_after(".unsealed https://10.210.1.14:8200 pass"),
            None
        );
    }

    #[test]
    fn percona_cluster_claims_are_checked() {
        let cluster = serde_json::json!({"kind": "PerconaPGCluster", "spec": {
            "instances": [{"dataVolumeClaimSpec": {"storageClassName": "fast"}, "walVolumeClaimSpec": {"storageClassName": "wal"}}],
            "backups": {"pgbackrest": {"repos": [{"name": "repo1", "volume": {"volumeClaimSpec": {"storageClassName": "nfs"}}}, {"name": "repo2", "s3": {}}]}}
        }});
        assert_eq!(claimed_classes(&cluster), vec!["fast", "wal", "nfs"]);
    }

    #[test]
    fn cronjob_pods_are_found() {
        let job = serde_json::json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}});
        assert!(pod_spec(&job).is_some());
    }

    #[test]
    fn hostnetwork_replicas_must_not_share_nodes() {
        let spec = serde_json::json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "kubernetes.io/hostname"}]}}});
        assert!(never_shares_a_node(&spec));
        assert!(!never_shares_a_node(&serde_json::json!({})));
    }
}

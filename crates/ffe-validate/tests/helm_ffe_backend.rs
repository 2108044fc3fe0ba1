//! The `ffe-backend` Helm chart: render it with the real `helm template` (Helm v4 and v3) and assert
//! on the parsed objects. Expected values come from the seed (`docs/contract/HA_README.md`) and
//! from issue 4, never from the chart's own values files.
//!
//! Tools: `tools/bin/helm` (v4), `tools/helm3/helm` (v3), `promtool` (override with `FFE_HELM`,
//! `FFE_HELM3`, `FFE_PROMTOOL`). Run `make deps` first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chart() -> PathBuf {
    root().join("helm/ffe-backend")
}

fn tool(env: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(default));
    assert!(
        path.exists(),
        "{} not found (set {env} or run `make deps`)",
        path.display()
    );
    path
}

fn helm4() -> PathBuf {
    tool("FFE_HELM", "tools/bin/helm")
}

fn helm3() -> PathBuf {
    tool("FFE_HELM3", "tools/helm3/helm")
}

/// The Prometheus operator's APIs as the platform with monitoring (Terraform `monitoring_enabled =
/// true`) serves them. The chart renders its ServiceMonitor/PrometheusRule only where the cluster
/// has them, so the renders below pass them like a cluster would; [`render_bare`] does not.
const MONITORING_APIS: [&str; 2] = [
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
];

/// Arguments for `helm template` on a cluster with monitoring: `-f` for names ending in .yaml
/// (relative to the chart), else `--set`.
fn template_args(release: &str, args: &[&str]) -> Vec<String> {
    let mut out = template_args_bare(release, args);
    for api in MONITORING_APIS {
        out.push("--api-versions".into());
        out.push(api.into());
    }
    out
}

/// As [`template_args`], with no API beyond Helm's built-in ones (a cluster without monitoring).
fn template_args_bare(release: &str, args: &[&str]) -> Vec<String> {
    let mut out = vec![
        "template".to_string(),
        release.to_string(),
        chart().display().to_string(),
        "--namespace".to_string(),
        "ffe".to_string(),
    ];
    for a in args {
        if a.ends_with(".yaml") {
            out.push("-f".into());
            out.push(chart().join(a).display().to_string());
        } else {
            out.push("--set".into());
            out.push((*a).to_string());
        }
    }
    out
}

fn run_helm(helm: &Path, release: &str, args: &[&str]) -> std::process::Output {
    Command::new(helm)
        .args(template_args(release, args))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", helm.display()))
}

fn parse_docs(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("helm output is YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn render_with(helm: &Path, release: &str, args: &[&str]) -> Vec<Value> {
    let out = run_helm(helm, release, args);
    assert!(
        out.status.success(),
        "helm template {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_docs(&String::from_utf8_lossy(&out.stdout))
}

fn render(args: &[&str]) -> Vec<Value> {
    render_with(&helm4(), "ffe", args)
}

/// Rendered for a cluster without the Prometheus operator's CRDs.
fn render_bare(args: &[&str]) -> Vec<Value> {
    render_apis(&[], args)
}

/// Rendered for a cluster that serves exactly these extra APIs (`--api-versions`).
fn render_apis(apis: &[&str], args: &[&str]) -> Vec<Value> {
    let mut template = template_args_bare("ffe", args);
    for api in apis {
        template.push("--api-versions".into());
        template.push((*api).to_string());
    }
    let out = Command::new(helm4())
        .args(template)
        .output()
        .expect("run helm");
    assert!(
        out.status.success(),
        "helm template {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_docs(&String::from_utf8_lossy(&out.stdout))
}

/// NOTES.txt as `helm install --dry-run=client` prints it (Helm v4: no cluster needed; it has
/// only Helm's built-in APIs, like a cluster without monitoring).
fn install_notes(args: &[&str]) -> String {
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(helm4());
    cmd.env("KUBECONFIG", home.path().join("no-kubeconfig"))
        .env("HELM_CONFIG_HOME", home.path())
        .env("HELM_CACHE_HOME", home.path())
        .env("HELM_DATA_HOME", home.path())
        .args(["install", "ffe"])
        .arg(chart())
        .args(["--namespace", "ffe", "--dry-run=client"]);
    for a in args {
        if a.ends_with(".yaml") {
            cmd.arg("-f").arg(chart().join(a));
        } else {
            cmd.args(["--set", a]);
        }
    }
    let out = cmd.output().expect("run helm install --dry-run");
    assert!(
        out.status.success(),
        "helm install --dry-run {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_once("\nNOTES:\n")
        .map(|(_, notes)| notes.to_string())
        .unwrap_or_else(|| panic!("no NOTES in:\n{text}"))
}

/// `helm template` must fail; returns its stderr.
fn render_err(args: &[&str]) -> String {
    let out = run_helm(&helm4(), "ffe", args);
    assert!(
        !out.status.success(),
        "helm template {args:?} should have failed"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {kind}, got {}",
        found.len()
    );
    found[0]
}

fn has(docs: &[Value], kind: &str) -> bool {
    docs.iter().any(|d| d["kind"] == kind)
}

fn container(docs: &[Value]) -> &Value {
    &find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

fn env_value<'a>(docs: &'a [Value], name: &str) -> Option<&'a Value> {
    container(docs)["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
}

/// The seed's `domain_names` from its terraform.tfvars block.
fn seed_domain_names() -> Vec<String> {
    let seed = root().join("docs/contract/HA_README.md");
    let text = std::fs::read_to_string(&seed)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", seed.display()));
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("domain_names"))
        .expect("seed has domain_names");
    let list = line.split_once('=').expect("domain_names = [...]").1;
    serde_json::from_str::<Vec<String>>(list.trim()).expect("domain_names is a JSON-like list")
}

const PROD: &str = "values-production.yaml";
const STAGING: &str = "values-staging.yaml";

#[test]
fn production_runs_three_replicas_with_hpa_3_to_10() {
    let docs = render(&[PROD]);
    let deploy = find(&docs, "Deployment");
    assert_eq!(
        deploy["metadata"]["name"], "ffe-backend",
        "seed: deployment/ffe-backend"
    );
    assert_eq!(deploy["spec"]["replicas"], 3);
    let hpa = find(&docs, "HorizontalPodAutoscaler");
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(hpa["spec"]["minReplicas"], 3);
    assert_eq!(hpa["spec"]["maxReplicas"], 10);
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "ffe-backend");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
}

#[test]
fn production_pdb_keeps_two_available() {
    let docs = render(&[PROD]);
    let pdb = find(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"], 2);
    let pod_labels = &find(&docs, "Deployment")["spec"]["template"]["metadata"]["labels"];
    for (k, v) in pdb["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("PDB selector")
    {
        assert_eq!(&pod_labels[k], v, "PDB selector {k} must match the pods");
    }
}

#[test]
fn production_spreads_pods_hard_over_nodes() {
    let docs = render(&[PROD]);
    let spec = &find(&docs, "Deployment")["spec"]["template"]["spec"];
    let tsc = spec["topologySpreadConstraints"]
        .as_array()
        .expect("topologySpreadConstraints");
    let node = tsc
        .iter()
        .find(|c| c["topologyKey"] == "kubernetes.io/hostname")
        .expect("a spread constraint over nodes");
    assert_eq!(node["whenUnsatisfiable"], "DoNotSchedule", "hard spread");
    assert_eq!(node["maxSkew"], 1);
    // Tainted nodes (control plane, unreachable) must not count as empty domains, or a hard
    // spread blocks rescheduling after a node loss.
    assert_eq!(node["nodeTaintsPolicy"], "Honor");
    assert_eq!(
        node["matchLabelKeys"],
        serde_json::json!(["pod-template-hash"])
    );
    let pod_labels = &find(&docs, "Deployment")["spec"]["template"]["metadata"]["labels"];
    for (k, v) in node["labelSelector"]["matchLabels"]
        .as_object()
        .expect("labelSelector")
    {
        assert_eq!(&pod_labels[k], v);
    }
    // Staging is soft.
    let staging = render(&[STAGING]);
    let soft =
        &find(&staging, "Deployment")["spec"]["template"]["spec"]["topologySpreadConstraints"][0];
    assert_eq!(soft["whenUnsatisfiable"], "ScheduleAnyway");
}

#[test]
fn pods_leave_a_lost_node_after_30_seconds() {
    for values in [PROD, STAGING, "values.yaml"] {
        let docs = render(&[values]);
        let tolerations = find(&docs, "Deployment")["spec"]["template"]["spec"]["tolerations"]
            .as_array()
            .expect("tolerations")
            .clone();
        for key in [
            "node.kubernetes.io/unreachable",
            "node.kubernetes.io/not-ready",
        ] {
            let t = tolerations
                .iter()
                .find(|t| t["key"] == key)
                .unwrap_or_else(|| panic!("{values}: toleration for {key}"));
            assert_eq!(t["effect"], "NoExecute");
            assert_eq!(t["operator"], "Exists");
            assert_eq!(t["tolerationSeconds"], 30, "{values}: {key}");
        }
    }
}

#[test]
fn rollouts_never_drop_capacity_or_requests() {
    let docs = render(&[PROD]);
    let spec = &find(&docs, "Deployment")["spec"];
    assert_eq!(spec["strategy"]["type"], "RollingUpdate");
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxSurge"], 1);
    let pod = &spec["template"]["spec"];
    let c = &pod["containers"][0];
    let pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
        .as_array()
        .expect("preStop exec");
    let sleep: u64 = pre_stop
        .last()
        .and_then(Value::as_str)
        .and_then(|s| s.strip_prefix("sleep "))
        .and_then(|s| s.parse().ok())
        .expect("preStop `sleep N`");
    assert!(
        sleep >= 5,
        "preStop delay {sleep}s too short for endpoints to drop the pod"
    );
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace");
    assert!(
        grace > sleep + 10,
        "grace {grace}s must cover preStop {sleep}s plus draining"
    );
    assert_eq!(c["startupProbe"]["httpGet"]["path"], "/health");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(c["ports"][0]["containerPort"], 8000);
}

#[test]
fn production_routes_the_seed_domains_through_the_gateway() {
    let docs = render(&[PROD]);
    let route = find(&docs, "HTTPRoute");
    assert_eq!(route["apiVersion"], "gateway.networking.k8s.io/v1");
    let hostnames: Vec<String> =
        serde_json::from_value(route["spec"]["hostnames"].clone()).expect("hostnames");
    assert_eq!(hostnames, seed_domain_names());
    let parent = &route["spec"]["parentRefs"][0];
    // The platform's Gateway (terraform/modules/edge): one HTTPS listener per domain, so no
    // sectionName; the route attaches to every listener that admits the namespace.
    assert_eq!(parent["name"], "ffe-edge");
    assert_eq!(parent["namespace"], "ffe-edge");
    assert!(parent.get("sectionName").is_none(), "{parent}");
    let svc = find(&docs, "Service");
    let backend = &route["spec"]["rules"][0]["backendRefs"][0];
    assert_eq!(backend["name"], svc["metadata"]["name"]);
    assert_eq!(backend["port"], svc["spec"]["ports"][0]["port"]);
    assert!(
        !has(&docs, "Ingress"),
        "production uses the Gateway, not an Ingress"
    );
    // parentRefs are configurable.
    let other = render(&[
        PROD,
        "httpRoute.parentRefs[0].name=edge",
        "httpRoute.parentRefs[0].namespace=gw",
    ]);
    let p = &find(&other, "HTTPRoute")["spec"]["parentRefs"][0];
    assert_eq!(
        (p["name"].as_str(), p["namespace"].as_str()),
        (Some("edge"), Some("gw"))
    );
}

#[test]
fn seed_scale_command_renders_five_replicas() {
    // Seed: helm upgrade ffe helm/ffe-backend --set replicaCount=5 (no -f: chart defaults).
    for args in [vec!["replicaCount=5"], vec![PROD, "replicaCount=5"]] {
        let docs = render(&args);
        assert_eq!(find(&docs, "Deployment")["spec"]["replicas"], 5, "{args:?}");
        let hpa = find(&docs, "HorizontalPodAutoscaler");
        assert_eq!(
            hpa["spec"]["minReplicas"], 5,
            "replicaCount is the HPA floor: {args:?}"
        );
        assert_eq!(hpa["spec"]["maxReplicas"], 10);
    }
    let staging = render(&[STAGING, "replicaCount=5"]);
    assert_eq!(find(&staging, "Deployment")["spec"]["replicas"], 5);
    assert!(!has(&staging, "HorizontalPodAutoscaler"));
}

#[test]
fn seed_scale_command_without_values_file_keeps_production_safety() {
    // Helm resets to chart defaults when an upgrade only has --set: nothing HA may be lost. (The
    // install's own -f/--set are lost all the same: tests/app_runbook.rs, docs/app.md "Scale".)
    let docs = render(&["replicaCount=5"]);
    assert_eq!(
        find(&docs, "PodDisruptionBudget")["spec"]["minAvailable"],
        2
    );
    let annotations = &find(&docs, "Deployment")["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["vault.hashicorp.com/agent-inject"], "true");
    assert_eq!(
        annotations["vault.hashicorp.com/agent-inject-secret-app"],
        "secret/data/production/app"
    );
    let hostnames: Vec<String> =
        serde_json::from_value(find(&docs, "HTTPRoute")["spec"]["hostnames"].clone())
            .expect("hostnames");
    assert_eq!(hostnames, seed_domain_names());
    assert!(has(&docs, "NetworkPolicy"));
    assert!(has(&docs, "ServiceMonitor"));
}

#[test]
fn operators_legacy_values_file_renders() {
    // The fixture may use only the keys operators already have (issue 4's list).
    let allowed: BTreeSet<&str> = [
        "replicaCount",
        "image",
        "imagePullSecrets",
        "nameOverride",
        "fullnameOverride",
        "serviceAccount",
        "podAnnotations",
        "podSecurityContext",
        "securityContext",
        "service",
        "ingress",
        "resources",
        "autoscaling",
        "livenessProbe",
        "readinessProbe",
        "env",
        "database",
        "vault",
        "persistence",
        "podDisruptionBudget",
        "affinity",
        "nodeSelector",
        "tolerations",
        "secrets",
    ]
    .into_iter()
    .collect();
    let fixture = "ci/legacy-keys-values.yaml";
    let text = std::fs::read_to_string(chart().join(fixture)).expect("fixture");
    let values: Value = serde_yaml_ng::from_str(&text).expect("fixture YAML");
    let keys: BTreeSet<&str> = values
        .as_object()
        .expect("map")
        .keys()
        .map(String::as_str)
        .collect();
    assert!(
        keys.is_subset(&allowed),
        "fixture uses keys outside the legacy list: {:?}",
        keys.difference(&allowed).collect::<Vec<_>>()
    );
    assert_eq!(
        keys.len(),
        allowed.len(),
        "fixture must use every legacy key"
    );

    let docs = render(&[fixture]);
    // ingress.enabled with the Gateway route on (ingress.mode gateway): the block's host goes onto
    // the HTTPRoute, no Ingress (README, "Upstream values files").
    assert!(
        !has(&docs, "Ingress"),
        "ingress.mode=gateway renders no Ingress"
    );
    assert_eq!(
        find(&docs, "HTTPRoute")["spec"]["hostnames"],
        serde_json::json!(["ffe.example.internal"])
    );
    // The documented switch keeps the classic Ingress (next to the route).
    let classic = render(&[fixture, "ingress.mode=ingress"]);
    let ingress = find(&classic, "Ingress");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(ingress["spec"]["rules"][0]["host"], "ffe.example.internal");
    assert!(has(&classic, "HTTPRoute"));
    let svc = find(&docs, "Service");
    assert_eq!(svc["spec"]["ports"][0]["port"], 8080);
    assert_eq!(
        env_value(&docs, "DATABASE_URL").expect("DATABASE_URL")["value"],
        "postgresql://ffe@db.example.internal:5432/ffe"
    );
    let c = container(&docs);
    assert_eq!(c["image"], "registry.example.internal/ffe/backend:1.2.3");
    assert_eq!(c["imagePullPolicy"], "Always");
    // The operator's own Vault template is used verbatim.
    let annotations = &find(&docs, "Deployment")["spec"]["template"]["metadata"]["annotations"];
    assert!(annotations["vault.hashicorp.com/agent-inject-template-app"]
        .as_str()
        .expect("template")
        .contains("API_KEY"));
    // The operator's tolerations are kept next to the node-failure ones.
    let tol = find(&docs, "Deployment")["spec"]["template"]["spec"]["tolerations"]
        .as_array()
        .expect("tol")
        .clone();
    assert!(tol.iter().any(|t| t["key"] == "dedicated"));
    assert_eq!(tol.len(), 3);
}

#[test]
fn schema_rejects_unknown_keys_and_wrong_types() {
    let unknown = render_err(&["replicas=3"]);
    assert!(unknown.contains("replicas"), "{unknown}");
    let wrong_type = render_err(&["replicaCount=three"]);
    assert!(wrong_type.contains("replicaCount"), "{wrong_type}");
    let nested = render_err(&["autoscaling.maxReplica=3"]);
    assert!(nested.contains("maxReplica"), "{nested}");
    let bad_bool = render_err(&["vault.enabled=yes"]);
    assert!(bad_bool.contains("enabled"), "{bad_bool}");
    // Helm v3 enforces the same schema (the seed promises Helm 3.10+).
    let out = run_helm(&helm3(), "ffe", &["bogusKey=1"]);
    assert!(
        !out.status.success(),
        "Helm v3 must reject an unknown top-level key"
    );
}

#[test]
fn unsafe_combinations_fail_with_a_named_value() {
    let pdb = render_err(&[PROD, "podDisruptionBudget.minAvailable=3"]);
    assert!(pdb.contains("podDisruptionBudget.minAvailable"), "{pdb}");
    let rwo = render_err(&[
        PROD,
        "persistence.enabled=true",
        "persistence.accessMode=ReadWriteOnce",
    ]);
    assert!(rwo.contains("persistence"), "{rwo}");
    let over = render_err(&[PROD, "replicaCount=11"]);
    assert!(over.contains("autoscaling.maxReplicas"), "{over}");
    let grace = render_err(&[PROD, "terminationGracePeriodSeconds=5"]);
    assert!(grace.contains("terminationGracePeriodSeconds"), "{grace}");
}

#[test]
fn monitoring_objects_only_where_the_cluster_serves_their_crds() {
    // The platform with monitoring: both objects.
    let full = render(&[PROD]);
    assert!(has(&full, "ServiceMonitor") && has(&full, "PrometheusRule"));
    // Terraform monitoring_enabled = false: no Prometheus operator, so no CRDs, and an object of
    // an unknown kind would fail the whole install. The chart leaves them out...
    let bare = render_bare(&[PROD]);
    assert!(!has(&bare, "ServiceMonitor"), "no ServiceMonitor CRD");
    assert!(!has(&bare, "PrometheusRule"), "no PrometheusRule CRD");
    assert!(has(&bare, "Deployment") && has(&bare, "HTTPRoute"));
    // ...and NOTES.txt says what is missing.
    let notes = install_notes(&[PROD]);
    let line = notes
        .lines()
        .find(|l| l.starts_with("Monitoring: NOT created"))
        .unwrap_or_else(|| panic!("NOTES must say monitoring is missing:\n{notes}"));
    assert!(
        line.contains("ServiceMonitor") && line.contains("PrometheusRule"),
        "{line}"
    );
    assert!(notes.contains("monitoring_enabled"), "{notes}");
    // Each kind follows its own API.
    let sm_only = render_apis(&[MONITORING_APIS[0]], &[PROD]);
    assert!(has(&sm_only, "ServiceMonitor") && !has(&sm_only, "PrometheusRule"));
    let pr_only = render_apis(&[MONITORING_APIS[1]], &[PROD]);
    assert!(!has(&pr_only, "ServiceMonitor") && has(&pr_only, "PrometheusRule"));
    let only_rule = install_notes(&[PROD, "metrics.serviceMonitor.enabled=false"]);
    let line = only_rule
        .lines()
        .find(|l| l.starts_with("Monitoring: NOT created"))
        .expect("PrometheusRule still missing");
    assert!(
        line.contains("PrometheusRule") && !line.contains("ServiceMonitor"),
        "{line}"
    );
    // metrics.requireCrds: always rendered (the install then needs the CRDs); nothing to report.
    let forced = render_bare(&[PROD, "metrics.requireCrds=true"]);
    assert!(has(&forced, "ServiceMonitor") && has(&forced, "PrometheusRule"));
    let notes = install_notes(&[PROD, "metrics.requireCrds=true"]);
    assert!(!notes.contains("Monitoring: NOT created"), "{notes}");
    // Switched off: nothing rendered, nothing to report.
    let off = [
        PROD,
        "metrics.serviceMonitor.enabled=false",
        "metrics.prometheusRule.enabled=false",
    ];
    let none = render(&off);
    assert!(!has(&none, "ServiceMonitor") && !has(&none, "PrometheusRule"));
    assert!(!install_notes(&off).contains("Monitoring: NOT created"));
    let bad = render_err(&["metrics.requireCrds=maybe"]);
    assert!(bad.contains("requireCrds"), "{bad}");
}

/// `--set` for the Gateway's listener host names.
fn listeners(names: &[&str]) -> String {
    format!("httpRoute.gatewayListenerHostnames={{{}}}", names.join(","))
}

#[test]
fn route_hostnames_must_match_the_gateway_listeners() {
    let seed = seed_domain_names();
    let seed: Vec<&str> = seed.iter().map(String::as_str).collect();
    assert_eq!(seed.len(), 2, "{seed:?}");
    // One listener per domain (terraform/modules/edge): every name matches.
    let docs = render(&[PROD, &listeners(&seed)]);
    assert_eq!(
        find(&docs, "HTTPRoute")["spec"]["hostnames"],
        serde_json::json!(seed)
    );
    // A wildcard listener covers the names below it (Gateway API: one or more labels).
    let parent = seed[0].split_once('.').expect("a dotted domain").1;
    render(&[PROD, &listeners(&[&format!("*.{parent}")])]);
    // A listener without host name takes every name.
    let dir = tempfile::tempdir().expect("tempdir");
    let any = dir.path().join("any-listener.yaml");
    std::fs::write(&any, "httpRoute:\n  gatewayListenerHostnames: [\"\"]\n").expect("write");
    render(&[PROD, any.to_str().expect("path")]);

    // The operator's own domains on the Gateway, the seed's on the route: refused, naming the
    // host names, the listeners and the fix.
    let err = render_err(&[PROD, &listeners(&["app.example.org", "*.example.org"])]);
    for needle in [
        seed[0],
        seed[1],
        "app.example.org",
        "*.example.org",
        "httpRoute.hostnames",
        "404",
    ] {
        assert!(err.contains(needle), "{needle} missing in: {err}");
    }
    // Only the names without a listener are named.
    let err = render_err(&[PROD, &listeners(&[seed[0]])]);
    assert!(
        err.contains(&format!("host name(s) {} match", seed[1])),
        "{err}"
    );
    // A wildcard does not cover its own parent.
    let err = render_err(&[PROD, &listeners(&[&format!("*.{}", seed[0])])]);
    assert!(
        err.contains(&format!("host name(s) {} match", seed[0])),
        "{err}"
    );
    // Names mapped from upstream's ingress.hosts are checked the same way.
    let upstream_host = fixture(UPSTREAM_PROD)["ingress"]["hosts"][0]["host"]
        .as_str()
        .expect("host")
        .to_string();
    let err = render_err(&[UPSTREAM_PROD, &listeners(&seed)]);
    assert!(err.contains(&upstream_host), "{err}");
    // Helm v3 refuses too.
    let out = run_helm(&helm3(), "ffe", &[PROD, &listeners(&["app.example.org"])]);
    assert!(!out.status.success(), "Helm v3 must refuse it");
    assert!(String::from_utf8_lossy(&out.stderr).contains(seed[0]));
    // Listeners unknown (no value; `helm template` cannot look the Gateway up): no check.
    let own = render(&[PROD, "httpRoute.hostnames={app.example.org}"]);
    assert_eq!(
        find(&own, "HTTPRoute")["spec"]["hostnames"],
        serde_json::json!(["app.example.org"])
    );
    let bad = render_err(&[PROD, &listeners(&["Not_A_Host"])]);
    assert!(bad.contains("gatewayListenerHostnames"), "{bad}");
}

/// A minimal Kubernetes API on 127.0.0.1 for `helm template --dry-run=server`: discovery for the
/// chart's kinds (plus the Prometheus operator's when `monitoring`), `lookup`s of the given
/// Gateways (403 for one with a `forbidden` key: no RBAC to read it), 404 for everything else.
/// Serves until the test process ends.
struct FakeCluster {
    kubeconfig: tempfile::TempDir,
}

impl FakeCluster {
    fn start(gateways: Vec<Value>, monitoring: bool) -> Self {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("addr").port();
        let res = |name: &str, kind: &str, namespaced: bool| {
            serde_json::json!({"name": name, "singularName": "", "namespaced": namespaced,
                "kind": kind, "verbs": ["get", "list", "create"]})
        };
        let mut groups: Vec<(&str, Vec<Value>)> = vec![
            ("apps/v1", vec![res("deployments", "Deployment", true)]),
            (
                "autoscaling/v2",
                vec![res(
                    "horizontalpodautoscalers",
                    "HorizontalPodAutoscaler",
                    true,
                )],
            ),
            (
                "policy/v1",
                vec![res("poddisruptionbudgets", "PodDisruptionBudget", true)],
            ),
            (
                "networking.k8s.io/v1",
                vec![
                    res("networkpolicies", "NetworkPolicy", true),
                    res("ingresses", "Ingress", true),
                ],
            ),
            (
                "gateway.networking.k8s.io/v1",
                vec![
                    res("gateways", "Gateway", true),
                    res("httproutes", "HTTPRoute", true),
                ],
            ),
        ];
        if monitoring {
            groups.push((
                "monitoring.coreos.com/v1",
                vec![
                    res("servicemonitors", "ServiceMonitor", true),
                    res("prometheusrules", "PrometheusRule", true),
                ],
            ));
        }
        let mut routes: BTreeMap<String, Value> = BTreeMap::new();
        routes.insert(
            "/version".into(),
            serde_json::json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0"}),
        );
        routes.insert(
            "/api".into(),
            serde_json::json!({"kind": "APIVersions", "versions": ["v1"]}),
        );
        routes.insert(
            "/api/v1".into(),
            serde_json::json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                res("services", "Service", true), res("serviceaccounts", "ServiceAccount", true),
                res("secrets", "Secret", true), res("configmaps", "ConfigMap", true),
                res("persistentvolumeclaims", "PersistentVolumeClaim", true),
                res("namespaces", "Namespace", false)]}),
        );
        let api_groups: Vec<Value> = groups
            .iter()
            .map(|(gv, _)| {
                let (g, v) = gv.split_once('/').expect("group/version");
                let version = serde_json::json!({"groupVersion": gv, "version": v});
                serde_json::json!({"name": g, "versions": [version], "preferredVersion": version})
            })
            .collect();
        routes.insert(
            "/apis".into(),
            serde_json::json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": api_groups}),
        );
        for (gv, resources) in &groups {
            routes.insert(
                format!("/apis/{gv}"),
                serde_json::json!({"kind": "APIResourceList", "groupVersion": gv, "resources": resources}),
            );
        }
        for gw in gateways {
            let path = format!(
                "/apis/gateway.networking.k8s.io/v1/namespaces/{}/gateways/{}",
                gw["metadata"]["namespace"].as_str().expect("namespace"),
                gw["metadata"]["name"].as_str().expect("name")
            );
            routes.insert(path, gw);
        }
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                let mut header = String::new();
                while reader
                    .read_line(&mut header)
                    .map(|n| n > 2)
                    .unwrap_or(false)
                {
                    header.clear();
                }
                let target = request.split_whitespace().nth(1).unwrap_or("/");
                let path = target.split('?').next().unwrap_or(target);
                let (status, body) = match routes.get(path) {
                    Some(v) if v.get("forbidden").is_some() => (
                        "403 Forbidden",
                        serde_json::json!({"kind": "Status", "apiVersion": "v1",
                            "status": "Failure", "reason": "Forbidden", "code": 403,
                            "message": "gateways is forbidden"})
                        .to_string(),
                    ),
                    Some(v) => ("200 OK", v.to_string()),
                    None => (
                        "404 Not Found",
                        serde_json::json!({"kind": "Status", "apiVersion": "v1",
                            "status": "Failure", "reason": "NotFound", "code": 404})
                        .to_string(),
                    ),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        let kubeconfig = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            kubeconfig.path().join("config"),
            format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: \"http://127.0.0.1:{port}\"}}}}]\ncontexts: [{{name: fake, context: {{cluster: fake, user: fake}}}}]\nusers: [{{name: fake, user: {{}}}}]\ncurrent-context: fake\n"
            ),
        )
        .expect("kubeconfig");
        FakeCluster { kubeconfig }
    }

    /// `helm template --dry-run=server` against this cluster (`lookup` and Capabilities live, as
    /// on install/upgrade; Helm v3 also needs `--validate` for the cluster's Capabilities).
    fn template(&self, helm: &Path, args: &[&str]) -> Result<Vec<Value>, String> {
        let home = self.kubeconfig.path();
        let mut template = template_args_bare("ffe", args);
        template.push("--dry-run=server".into());
        template.push("--disable-openapi-validation".into());
        if *helm == helm3() {
            template.push("--validate".into());
        }
        let out = Command::new(helm)
            .env("KUBECONFIG", home.join("config"))
            .env("HELM_CONFIG_HOME", home)
            .env("HELM_CACHE_HOME", home)
            .env("HELM_DATA_HOME", home)
            .args(template)
            .output()
            .expect("run helm");
        if out.status.success() {
            Ok(parse_docs(&String::from_utf8_lossy(&out.stdout)))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

/// A Gateway as terraform/modules/edge makes it: a port-80 listener without host name for its
/// own namespace's routes (redirect, ACME), then one HTTPS listener per domain for labelled
/// namespaces.
fn gateway(namespace: &str, name: &str, hostnames: &[&str]) -> Value {
    let http = serde_json::json!({"name": "http", "port": 80, "protocol": "HTTP",
        "allowedRoutes": {"namespaces": {"from": "Same"}}});
    let listeners: Vec<Value> = std::iter::once(http)
        .chain(hostnames.iter().enumerate().map(|(i, h)| {
            let mut l = serde_json::json!({"name": format!("https-{i}"), "port": 443, "protocol": "HTTPS",
                "allowedRoutes": {"namespaces": {"from": "Selector",
                    "selector": {"matchLabels": {"ffe-ha.io/edge-routes": "true"}}}}});
            if !h.is_empty() {
                l["hostname"] = Value::from(*h);
            }
            l
        }))
        .collect();
    serde_json::json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"gatewayClassName": "nginx", "listeners": listeners}})
}

#[test]
fn route_hostnames_are_checked_against_the_live_gateway() {
    let seed = seed_domain_names();
    let seed: Vec<&str> = seed.iter().map(String::as_str).collect();
    // The operator's Gateway (their own domain_names), the seed's names on the route: refused at
    // install/upgrade, naming the Gateway, its listeners and the fix.
    let cluster = FakeCluster::start(
        vec![gateway(
            "ffe-edge",
            "ffe-edge",
            &["app.example.org", "api.example.org"],
        )],
        true,
    );
    for helm in [helm4(), helm3()] {
        let err = cluster
            .template(&helm, &[PROD])
            .err()
            .unwrap_or_else(|| panic!("{}: the seed's names have no listener", helm.display()));
        for needle in [
            seed[0],
            seed[1],
            "Gateway ffe-edge/ffe-edge",
            "app.example.org, api.example.org",
            "httpRoute.hostnames",
        ] {
            assert!(err.contains(needle), "{needle} missing in: {err}");
        }
        // The operator's names: rendered.
        let docs = cluster
            .template(
                &helm,
                &[
                    PROD,
                    "httpRoute.hostnames={app.example.org,api.example.org}",
                ],
            )
            .unwrap_or_else(|e| panic!("{}: {e}", helm.display()));
        assert!(has(&docs, "HTTPRoute"));
    }
    // sectionName pins one listener: only its host name counts.
    let pinned = cluster.template(
        &helm4(),
        &[
            PROD,
            "httpRoute.hostnames={app.example.org,api.example.org}",
            "httpRoute.parentRefs[0].sectionName=https-0",
        ],
    );
    let err = pinned.expect_err("api.example.org is not on https-0");
    assert!(err.contains("host name(s) api.example.org match"), "{err}");
    // No such Gateway (yet), or one with a listener for every name: no check.
    let elsewhere = cluster.template(&helm4(), &[PROD, "httpRoute.parentRefs[0].name=other"]);
    assert!(elsewhere.is_ok(), "{elsewhere:?}");
    let open = FakeCluster::start(vec![gateway("ffe-edge", "ffe-edge", &[""])], true);
    assert!(open.template(&helm4(), &[PROD]).is_ok());
    // A kubeconfig that may not read the Gateway fails the lookup; the explicit listener list
    // skips it (README, httpRoute.gatewayListenerHostnames).
    let mut hidden = gateway("ffe-edge", "ffe-edge", &seed);
    hidden["forbidden"] = Value::Bool(true);
    let rbac = FakeCluster::start(vec![hidden], true);
    let err = rbac
        .template(&helm4(), &[PROD])
        .expect_err("lookup of a forbidden Gateway");
    assert!(err.contains("forbidden"), "{err}");
    rbac.template(&helm4(), &[PROD, &listeners(&seed)])
        .expect("gatewayListenerHostnames skips the lookup");
}

#[test]
fn monitoring_objects_follow_the_clusters_apis() {
    let seed = seed_domain_names();
    let seed: Vec<&str> = seed.iter().map(String::as_str).collect();
    for monitoring in [true, false] {
        let cluster = FakeCluster::start(vec![gateway("ffe-edge", "ffe-edge", &seed)], monitoring);
        for helm in [helm4(), helm3()] {
            let docs = cluster
                .template(&helm, &[PROD])
                .unwrap_or_else(|e| panic!("{}: {e}", helm.display()));
            assert_eq!(
                has(&docs, "ServiceMonitor"),
                monitoring,
                "{}: monitoring APIs served: {monitoring}",
                helm.display()
            );
            assert_eq!(has(&docs, "PrometheusRule"), monitoring);
            assert!(has(&docs, "Deployment"));
        }
    }
}

#[test]
fn database_url_with_credentials_is_refused() {
    // database.url is rendered as a plain env value: a password there is readable by anyone who
    // may read the Deployment and stays in every Helm revision.
    let password = "s3cr3t-Pw";
    for url in [
        format!("postgresql://ffe:{password}@db.example.com:5432/ffe?sslmode=require"),
        format!("postgresql://ffe@db.example.com:5432/ffe?sslmode=require&password={password}"),
        // An unencoded '/' in the password, and the parameter in upper case.
        format!("postgresql://ffe:{password}/x@db.example.com:5432/ffe"),
        format!("postgresql://ffe@db.example.com:5432/ffe?PASSWORD={password}"),
    ] {
        let err = render_err(&[
            PROD,
            "vault.enabled=false",
            "database.external=true",
            &format!("database.url={url}"),
        ]);
        for needle in ["database.url", "DATABASE_URL", "secrets.existingSecret"] {
            assert!(err.contains(needle), "{needle} missing in: {err}");
        }
        assert!(
            !err.contains(password),
            "the message must not repeat the password: {err}"
        );
    }
    // Without credentials the URL is used as given.
    let plain = "postgresql://ffe@db.example.com:5432/ffe?sslmode=require";
    let docs = render(&[
        PROD,
        "vault.enabled=false",
        "database.external=true",
        &format!("database.url={plain}"),
        "secrets.existingSecret=ffe-env",
    ]);
    assert_eq!(
        env_value(&docs, "DATABASE_URL").expect("DATABASE_URL")["value"],
        plain
    );
    // The way the runbook goes: the URL in the Secret, read with secretKeyRef.
    let docs = render(&[
        PROD,
        "vault.enabled=false",
        "database.external=true",
        "secrets.existingSecret=ffe-env",
    ]);
    assert_eq!(
        env_value(&docs, "DATABASE_URL").expect("DATABASE_URL")["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": "ffe-env", "key": "DATABASE_URL"})
    );
}

#[test]
fn persistence_is_never_one_rwo_volume_shared_across_nodes() {
    let rwx = render(&[PROD, "persistence.enabled=true"]);
    let pvc = find(&rwx, "PersistentVolumeClaim");
    assert_eq!(
        pvc["spec"]["accessModes"],
        serde_json::json!(["ReadWriteMany"])
    );
    let per_pod = render(&[
        PROD,
        "persistence.enabled=true",
        "persistence.perPod=true",
        "persistence.accessMode=ReadWriteOnce",
    ]);
    assert!(
        !has(&per_pod, "PersistentVolumeClaim"),
        "per-pod claims come from the pod template"
    );
    let volumes = find(&per_pod, "Deployment")["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .clone();
    let data = volumes
        .iter()
        .find(|v| v["name"] == "data")
        .expect("data volume");
    assert_eq!(
        data["ephemeral"]["volumeClaimTemplate"]["spec"]["accessModes"],
        serde_json::json!(["ReadWriteOnce"])
    );
    let mounts = container(&per_pod)["volumeMounts"]
        .as_array()
        .expect("mounts")
        .clone();
    assert!(mounts
        .iter()
        .any(|m| m["name"] == "data" && m["mountPath"] == "/data"));
}

#[test]
fn secure_defaults_everywhere() {
    for values in ["values.yaml", PROD, STAGING] {
        let docs = render(&[values]);
        let pod = &find(&docs, "Deployment")["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{values}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        assert_eq!(pod["automountServiceAccountToken"], false);
        let sc = &pod["containers"][0]["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
        let mounts = pod["containers"][0]["volumeMounts"]
            .as_array()
            .expect("mounts")
            .clone();
        let tmp = mounts
            .iter()
            .find(|m| m["mountPath"] == "/tmp")
            .expect("/tmp mount");
        let volumes = pod["volumes"].as_array().expect("volumes").clone();
        let vol = volumes
            .iter()
            .find(|v| v["name"] == tmp["name"])
            .expect("/tmp volume");
        assert!(vol["emptyDir"].is_object(), "/tmp is an emptyDir");
        let sa = find(&docs, "ServiceAccount");
        assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"]);
    }
}

/// Every values file the chart ships or is tested with (chart directory, ci/, upstream's files),
/// relative to the chart, found on disk so a new file is covered without editing this list.
fn every_values_file() -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["", "ci", "tests/upstream-values"] {
        let path = chart().join(dir);
        let entries =
            std::fs::read_dir(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for entry in entries {
            let name = entry.expect("entry").file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".yaml") && (!dir.is_empty() || name.starts_with("values")) {
                out.push(if dir.is_empty() {
                    name.to_string()
                } else {
                    format!("{dir}/{name}")
                });
            }
        }
    }
    out.sort();
    out
}

/// Issue 17 (RBAC): the app's ServiceAccount has no API access. With every values file: no
/// Kubernetes API token in any container the chart renders (pod and ServiceAccount both say
/// `automountServiceAccountToken: false`, no container mounts a projected token), and nothing
/// grants the ServiceAccount anything (no Role/ClusterRole/binding at all, none naming it).
/// Vault's agent gets its own projected token volume (`vault-token`), which only the containers
/// the injector adds mount; it authenticates to Vault, and the ServiceAccount it names has no RBAC.
#[test]
fn app_service_account_has_no_api_access_with_every_values_file() {
    let files = every_values_file();
    assert!(
        files.len() >= 9,
        "values files found: {files:?} (chart, ci/ and upstream's)"
    );
    for file in &files {
        let docs = render(&[file.as_str()]);
        let pod = &find(&docs, "Deployment")["spec"]["template"]["spec"];
        let sa_name = pod["serviceAccountName"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: no serviceAccountName"));
        assert_eq!(
            pod["automountServiceAccountToken"], false,
            "{file}: the pod must not mount a Kubernetes API token"
        );
        for sa in docs.iter().filter(|d| d["kind"] == "ServiceAccount") {
            assert_eq!(sa["metadata"]["name"], sa_name, "{file}: {sa}");
            assert_eq!(
                sa["automountServiceAccountToken"], false,
                "{file}: ServiceAccount {sa_name} must not automount its token"
            );
        }
        // Volumes that carry a ServiceAccount token.
        let volumes = pod["volumes"].as_array().cloned().unwrap_or_default();
        let token_volumes: Vec<&str> = volumes
            .iter()
            .filter(|v| {
                v["projected"]["sources"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|src| src.get("serviceAccountToken").is_some()))
            })
            .filter_map(|v| v["name"].as_str())
            .collect();
        let containers = ["containers", "initContainers"]
            .iter()
            .filter_map(|k| pod[*k].as_array())
            .flatten();
        for c in containers {
            for m in c["volumeMounts"].as_array().into_iter().flatten() {
                let name = m["name"].as_str().unwrap_or_default();
                assert!(
                    !token_volumes.contains(&name),
                    "{file}: container {} mounts token volume {name}",
                    c["name"]
                );
                assert!(
                    !m["mountPath"]
                        .as_str()
                        .unwrap_or_default()
                        .starts_with("/var/run/secrets/kubernetes.io"),
                    "{file}: container {} mounts {}",
                    c["name"],
                    m["mountPath"]
                );
            }
        }
        // The one token volume is Vault's, named in the injector annotation that gives it to the
        // agent containers only.
        if !token_volumes.is_empty() {
            assert_eq!(token_volumes, ["vault-token"], "{file}");
            assert_eq!(
                pod_annotations(&docs)
                    ["vault.hashicorp.com/agent-service-account-token-volume-name"],
                "vault-token",
                "{file}"
            );
        }
        for d in &docs {
            let kind = d["kind"].as_str().unwrap_or_default();
            assert!(
                !matches!(kind, "Role" | "ClusterRole"),
                "{file}: the chart must grant no API access, but renders {kind} {}",
                d["metadata"]["name"]
            );
            if matches!(kind, "RoleBinding" | "ClusterRoleBinding") {
                let names_app = d["subjects"].as_array().into_iter().flatten().any(|s| {
                    (s["kind"] == "ServiceAccount" && s["name"] == sa_name)
                        || s["name"]
                            .as_str()
                            .is_some_and(|n| n.starts_with("system:serviceaccount"))
                });
                assert!(
                    !names_app,
                    "{file}: {kind} {} binds the app's ServiceAccount {sa_name}",
                    d["metadata"]["name"]
                );
            }
        }
    }
}

#[test]
fn network_policy_allows_only_what_the_app_needs() {
    let docs = render(&[PROD]);
    let np = find(&docs, "NetworkPolicy");
    assert_eq!(
        np["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    let ingress = np["spec"]["ingress"].as_array().expect("ingress").clone();
    assert_eq!(ingress.len(), 1);
    let from: BTreeSet<String> = ingress[0]["from"]
        .as_array()
        .expect("from")
        .iter()
        .map(|f| {
            f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                .as_str()
                .expect("ns")
                .to_string()
        })
        .collect();
    assert_eq!(
        from,
        ["ffe-edge", "monitoring"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    // Egress: (namespace or CIDR, port) pairs.
    let mut egress = BTreeSet::new();
    for rule in np["spec"]["egress"].as_array().expect("egress") {
        for to in rule["to"].as_array().expect("to") {
            let peer = to["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                .as_str()
                .or_else(|| to["ipBlock"]["cidr"].as_str())
                .expect("peer")
                .to_string();
            for p in rule["ports"].as_array().expect("ports") {
                egress.insert((peer.clone(), p["port"].as_u64().expect("port")));
            }
        }
    }
    let expected: BTreeSet<(String, u64)> = [
        ("kube-system", 53),
        ("ffe-data", 5432),
        ("vault", 8200),
        ("0.0.0.0/0", 443),
    ]
    .into_iter()
    .map(|(p, n)| (p.to_string(), n))
    .collect();
    assert_eq!(egress, expected);
    let ip = np["spec"]["egress"]
        .as_array()
        .expect("egress")
        .iter()
        .find_map(|r| r["to"][0]["ipBlock"].as_object().cloned())
        .expect("ipBlock");
    assert!(ip["except"]
        .as_array()
        .expect("except")
        .contains(&Value::from("10.0.0.0/8")));
}

#[test]
fn secrets_come_from_vault_and_the_database_is_pgbouncer() {
    let docs = render(&[PROD]);
    let annotations = &find(&docs, "Deployment")["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["vault.hashicorp.com/role"], "ffe-backend");
    // Vault over HTTPS, verified against the CA from the vault-ca Secret (mounted at /vault/tls).
    assert_eq!(
        annotations["vault.hashicorp.com/service"],
        "https://vault-active.vault.svc:8200"
    );
    assert_eq!(annotations["vault.hashicorp.com/tls-secret"], "vault-ca");
    assert_eq!(
        annotations["vault.hashicorp.com/ca-cert"],
        "/vault/tls/ca.crt"
    );
    assert!(annotations
        .get("vault.hashicorp.com/tls-skip-verify")
        .is_none());
    let plain_vault = render_err(&[PROD, "vault.address=http://vault.vault.svc:8200"]);
    assert!(plain_vault.contains("^https://"), "{plain_vault}");
    let template = annotations["vault.hashicorp.com/agent-inject-template-app"]
        .as_str()
        .expect("template");
    assert!(
        template.contains(r#"secret "secret/data/production/app""#),
        "{template}"
    );
    assert!(
        template.contains("@ffe-pg-pgbouncer.ffe-data.svc:5432/ffe"),
        "{template}"
    );
    // TLS to PgBouncer with CA and host name checks; the CA file is mounted where the URL says.
    assert!(
        template.contains("?sslmode=verify-full&sslrootcert=/etc/ffe/db-ca/ca.crt'"),
        "{template}"
    );
    assert_eq!(
        env_value(&docs, "PGSSLROOTCERT").expect("PGSSLROOTCERT")["value"],
        "/etc/ffe/db-ca/ca.crt"
    );
    let ca_mount = container(&docs)["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["mountPath"] == "/etc/ffe/db-ca")
        .expect("db CA mount")
        .clone();
    assert_eq!(ca_mount["readOnly"], true);
    let ca_volume = find(&docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == ca_mount["name"])
        .expect("db CA volume")
        .clone();
    assert_eq!(ca_volume["secret"]["secretName"], "ffe-db-ca");
    assert_eq!(
        ca_volume["secret"]["items"],
        serde_json::json!([{"key": "ca.crt", "path": "ca.crt"}])
    );
    let no_ca = render_err(&[PROD, "database.sslrootcert="]);
    assert!(no_ca.contains("database.sslrootcert"), "{no_ca}");
    assert_eq!(
        env_value(&docs, "FFE_ENV_FILE").expect("FFE_ENV_FILE")["value"],
        "/vault/secrets/app"
    );
    // The Vault agent gets a projected token; the app container has none.
    let token_volume = annotations["vault.hashicorp.com/agent-service-account-token-volume-name"]
        .as_str()
        .expect("token volume");
    let pod = &find(&docs, "Deployment")["spec"]["template"]["spec"];
    assert!(pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .any(|v| v["name"] == token_volume && v["projected"].is_object()));
    assert!(!container(&docs)["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .any(|m| m["name"] == token_volume));
    // With a command, the chart sources the Vault file before exec'ing it.
    let cmd = render(&[PROD, "command={python,-m,ffe}"]);
    let c = container(&cmd);
    assert_eq!(c["command"][0], "/bin/sh");
    assert_eq!(c["args"], serde_json::json!(["python", "-m", "ffe"]));

    // Without Vault: credentials from a Secret, DATABASE_URL still on PgBouncer.
    let plain = render(&[
        STAGING,
        "vault.enabled=false",
        "secrets.create=true",
        "secrets.data.DB_USERNAME=u",
        "secrets.data.DB_PASSWORD=p",
    ]);
    let url = env_value(&plain, "DATABASE_URL").expect("DATABASE_URL")["value"]
        .as_str()
        .expect("url")
        .to_string();
    assert!(
        url.starts_with(
            "postgresql://$(DB_USERNAME):$(DB_PASSWORD)@ffe-pg-pgbouncer.ffe-data.svc:5432/"
        ),
        "{url}"
    );
    assert_eq!(find(&plain, "Secret")["stringData"]["DB_USERNAME"], "u");
    assert!(
        !find(&plain, "Deployment")["spec"]["template"]["metadata"]["annotations"]
            .as_object()
            .expect("annotations")
            .keys()
            .any(|k| k.starts_with("vault.hashicorp.com/"))
    );
    let missing = render_err(&[STAGING, "vault.enabled=false"]);
    assert!(missing.contains("secrets.create"), "{missing}");
}

#[test]
fn monitoring_objects_target_the_service_and_rules_are_valid_promql() {
    let docs = render(&[PROD]);
    let svc = find(&docs, "Service");
    let sm = find(&docs, "ServiceMonitor");
    assert_eq!(
        sm["spec"]["endpoints"][0]["port"],
        svc["spec"]["ports"][0]["name"]
    );
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    for (k, v) in sm["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("selector")
    {
        assert_eq!(
            &svc["metadata"]["labels"][k], v,
            "ServiceMonitor must select the Service"
        );
    }
    let rule = find(&docs, "PrometheusRule");
    let rules = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .expect("rules")
        .clone();
    let exprs: Vec<&str> = rules
        .iter()
        .map(|r| r["expr"].as_str().expect("expr"))
        .collect();
    assert!(
        exprs.iter().any(|e| e.contains(r#"=~"5..""#)),
        "an error-rate alert"
    );
    assert!(
        exprs.iter().any(|e| e.contains("histogram_quantile")),
        "a latency alert"
    );
    assert!(exprs.iter().any(
        |e| e.contains("kube_deployment_status_replicas_unavailable")
            && e.contains(r#"deployment="ffe-backend""#)
    ));

    // promtool checks the PromQL and the rule structure.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rules.yaml");
    let body = serde_json::json!({ "groups": rule["spec"]["groups"] });
    std::fs::write(&file, serde_yaml_ng::to_string(&body).expect("yaml")).expect("write");
    let promtool = std::env::var_os("FFE_PROMTOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("promtool"));
    let out = Command::new(&promtool)
        .arg("check")
        .arg("rules")
        .arg(&file)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn service_selects_the_pods_on_the_app_port() {
    let docs = render(&[PROD]);
    let svc = find(&docs, "Service");
    let pod_labels = &find(&docs, "Deployment")["spec"]["template"]["metadata"]["labels"];
    for (k, v) in svc["spec"]["selector"].as_object().expect("selector") {
        assert_eq!(&pod_labels[k], v);
    }
    assert_eq!(
        svc["spec"]["ports"][0]["targetPort"],
        container(&docs)["ports"][0]["containerPort"]
    );
}

#[test]
fn names_follow_the_seed_release() {
    let seed = render_with(&helm4(), "ffe", &[PROD]);
    assert_eq!(find(&seed, "Deployment")["metadata"]["name"], "ffe-backend");
    let other = render_with(&helm4(), "blue", &[PROD]);
    assert_eq!(
        find(&other, "Deployment")["metadata"]["name"],
        "blue-ffe-backend"
    );
    let override_ = render_with(&helm4(), "blue", &[PROD, "fullnameOverride=ffe-api"]);
    assert_eq!(
        find(&override_, "Deployment")["metadata"]["name"],
        "ffe-api"
    );
}

#[test]
fn helm_v3_and_v4_render_the_same_objects() {
    for values in ["values.yaml", PROD, STAGING] {
        let v4 = render_with(&helm4(), "ffe", &[values]);
        let v3 = render_with(&helm3(), "ffe", &[values]);
        assert_eq!(v4, v3, "{values}: Helm v3 and v4 disagree");
    }
}

// ---------------------------------------------------------------------------------------------
// Upstream values files (issue part D): the upstream Finance Feedback Engine chart's own values
// files, vendored unmodified in helm/ffe-backend/tests/upstream-values (SOURCE.md). Each must render
// with Helm v4 and v3 and validate; every expectation below is read from the fixture file itself.

const UPSTREAM_DEV: &str = "tests/upstream-values/values-dev.yaml";
const UPSTREAM_STAGING: &str = "tests/upstream-values/values-staging.yaml";
const UPSTREAM_PROD: &str = "tests/upstream-values/values-production.yaml";
/// Upstream's chart defaults (its values.yaml): the only file with `configMap` and `postgresql`.
const UPSTREAM_DEFAULTS: &str = "tests/upstream-values/upstream-values.yaml";
const UPSTREAM_FILES: [&str; 4] = [
    UPSTREAM_DEV,
    UPSTREAM_STAGING,
    UPSTREAM_PROD,
    UPSTREAM_DEFAULTS,
];

/// A values file of the chart directory, parsed.
fn fixture(path: &str) -> Value {
    let file = chart().join(path);
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    serde_yaml_ng::from_str(&text).expect("fixture YAML")
}

/// A scalar of a values file as Kubernetes gets it (an env value or ConfigMap entry: a string).
fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other}"),
    }
}

fn pod_annotations(docs: &[Value]) -> &serde_json::Map<String, Value> {
    find(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
        .as_object()
        .expect("pod annotations")
}

fn volume_names(docs: &[Value]) -> Vec<String> {
    find(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .map(|v| v["name"].as_str().expect("name").to_string())
        .collect()
}

/// `helm template` output as text (for ffe-validate).
fn render_text(helm: &Path, args: &[&str]) -> String {
    let out = run_helm(helm, "ffe", args);
    assert!(
        out.status.success(),
        "{} template {args:?} failed: {}",
        helm.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// CRDs the chart's custom resources need: Gateway API (upstream/crds) and the Prometheus
/// operator's (vendored kube-prometheus-stack chart), linked into one directory.
fn chart_crds() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = root().join("upstream/crds/gateway-api");
    let kps = root().join("upstream/charts/kube-prometheus-stack");
    let prometheus = std::fs::read_dir(&kps)
        .unwrap_or_else(|e| panic!("{}: {e}", kps.display()))
        .map(|e| e.expect("entry").path().join("chart/charts/crds/crds"))
        .filter(|p| p.is_dir())
        .max()
        .expect("kube-prometheus-stack CRDs");
    for (name, target) in [
        ("gateway-api", gateway),
        ("prometheus-operator", prometheus),
    ] {
        assert!(target.is_dir(), "{} missing", target.display());
        std::os::unix::fs::symlink(&target, dir.path().join(name)).expect("symlink");
    }
    dir
}

#[test]
fn upstream_values_files_render_with_helm_v4_and_v3_and_validate() {
    let crds = chart_crds();
    let kubernetes_validate = std::env::var_os("FFE_KUBERNETES_VALIDATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("tools/venv/bin/kubernetes-validate"));
    assert!(
        kubernetes_validate.is_file(),
        "{} missing: run `make deps`",
        kubernetes_validate.display()
    );
    for file in UPSTREAM_FILES {
        let v4 = render_text(&helm4(), &[file]);
        let v3 = render_text(&helm3(), &[file]);
        assert_eq!(
            parse_docs(&v4),
            parse_docs(&v3),
            "{file}: Helm v3 and v4 disagree"
        );
        for kube in ["1.29", "1.33"] {
            let opts = ffe_validate::Options {
                kube_version: ffe_validate::KubeVersion::parse(kube).expect("version"),
                crds_dir: crds.path().to_path_buf(),
                values_schemas: Default::default(),
                kubernetes_validate: kubernetes_validate.clone(),
            };
            let report = ffe_validate::validate_sources(
                &[ffe_validate::Source::new(file, v4.as_str())],
                &opts,
            )
            .expect("validation runs");
            let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
            assert!(
                problems.is_empty(),
                "{file} (Kubernetes {kube}): {problems:#?}"
            );
            assert!(
                report.documents >= 5,
                "{file}: {} documents",
                report.documents
            );
        }
    }
}

#[test]
fn upstream_env_map_becomes_env_entries_sorted_with_string_values() {
    for file in UPSTREAM_FILES {
        let values = fixture(file);
        let map = values["env"].as_object().expect("upstream env is a map");
        assert!(!map.is_empty(), "{file}");
        // serde_json's map is sorted by key: the order the chart must render.
        let expected: Vec<(String, String)> = map
            .iter()
            .map(|(k, v)| (k.clone(), scalar_string(v)))
            .collect();
        let docs = render(&[file]);
        let rendered: Vec<(String, String)> = container(&docs)["env"]
            .as_array()
            .expect("env")
            .iter()
            .filter(|e| map.contains_key(e["name"].as_str().expect("name")))
            .map(|e| {
                let value = e["value"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{file}: {e} has no string value"));
                (
                    e["name"].as_str().expect("name").to_string(),
                    value.to_string(),
                )
            })
            .collect();
        assert_eq!(rendered, expected, "{file}");
    }
    // Non-string scalars become strings Kubernetes accepts (no 1e+06, no YAML booleans).
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = dir.path().join("env-scalars.yaml");
    std::fs::write(
        &extra,
        "env: {WORKERS: 4, BIG: 1000000, RATIO: 0.5, DEBUG: true, ZONE: eu}\n",
    )
    .expect("write");
    let docs = render(&[UPSTREAM_DEV, extra.to_str().expect("path")]);
    for (name, value) in [
        ("BIG", "1000000"),
        ("DEBUG", "true"),
        ("RATIO", "0.5"),
        ("WORKERS", "4"),
        ("ZONE", "eu"),
    ] {
        assert_eq!(
            env_value(&docs, name).unwrap_or_else(|| panic!("{name}"))["value"],
            value
        );
    }
    // Names that are not environment variable names are refused by the schema.
    let bad = render_err(&["env.1BAD=x"]);
    assert!(bad.contains("'1BAD'"), "{bad}");
}

/// HTTPRoute path matches expected from an upstream `ingress.hosts` list: the union of every
/// host's paths, Exact -> Exact, anything else -> PathPrefix.
fn expected_matches(hosts: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for host in hosts {
        for path in host["paths"].as_array().expect("paths") {
            let kind = if path["pathType"] == "Exact" {
                "Exact"
            } else {
                "PathPrefix"
            };
            let m = serde_json::json!({"path": {"type": kind, "value": path["path"]}});
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    out
}

#[test]
fn upstream_ingress_hosts_become_the_httproute() {
    for file in [UPSTREAM_STAGING, UPSTREAM_PROD, UPSTREAM_DEFAULTS] {
        let values = fixture(file);
        assert_eq!(values["ingress"]["enabled"], true, "{file}");
        let hosts = values["ingress"]["hosts"]
            .as_array()
            .expect("hosts")
            .clone();
        let mut hostnames: Vec<Value> = Vec::new();
        for h in &hosts {
            if !hostnames.contains(&h["host"]) {
                hostnames.push(h["host"].clone());
            }
        }
        let docs = render(&[file]);
        assert!(
            !has(&docs, "Ingress"),
            "{file}: no nginx Ingress by default"
        );
        let route = find(&docs, "HTTPRoute");
        assert_eq!(
            route["spec"]["hostnames"],
            Value::Array(hostnames),
            "{file}"
        );
        let rules = route["spec"]["rules"].as_array().expect("rules");
        assert_eq!(rules.len(), 1, "{file}");
        assert_eq!(
            rules[0]["matches"],
            Value::Array(expected_matches(&hosts)),
            "{file}"
        );
        let svc = find(&docs, "Service");
        assert_eq!(svc["spec"]["ports"][0]["port"], values["service"]["port"]);
        assert_eq!(rules[0]["backendRefs"][0]["name"], svc["metadata"]["name"]);
        assert_eq!(
            rules[0]["backendRefs"][0]["port"],
            values["service"]["port"]
        );
        // The platform's Gateway, not upstream's nginx class.
        assert_eq!(route["spec"]["parentRefs"][0]["name"], "ffe-edge");

        // The switch keeps upstream's Ingress as given (TLS, class, annotations), next to the
        // route on the platform's own host names.
        let classic = render(&[file, "ingress.mode=ingress"]);
        let ingress = find(&classic, "Ingress");
        assert_eq!(
            ingress["spec"]["ingressClassName"],
            values["ingress"]["className"]
        );
        assert_eq!(ingress["spec"]["tls"], values["ingress"]["tls"], "{file}");
        assert_eq!(
            ingress["metadata"]["annotations"], values["ingress"]["annotations"],
            "{file}"
        );
        let rule_hosts: Vec<&Value> = ingress["spec"]["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .map(|r| &r["host"])
            .collect();
        assert_eq!(
            rule_hosts,
            hosts.iter().map(|h| &h["host"]).collect::<Vec<_>>()
        );
        let seed: Vec<String> =
            serde_json::from_value(find(&classic, "HTTPRoute")["spec"]["hostnames"].clone())
                .expect("hostnames");
        assert_eq!(seed, seed_domain_names());
        // No route to map onto: the block is an Ingress.
        let no_route = render(&[file, "httpRoute.enabled=false"]);
        assert!(!has(&no_route, "HTTPRoute"));
        assert_eq!(
            find(&no_route, "Ingress")["spec"]["rules"][0]["host"],
            hosts[0]["host"]
        );
    }
    // Ingress off (values-dev): the route keeps httpRoute.* (the seed's domains).
    assert_eq!(fixture(UPSTREAM_DEV)["ingress"]["enabled"], false);
    let dev = render(&[UPSTREAM_DEV]);
    assert!(!has(&dev, "Ingress"));
    let hostnames: Vec<String> =
        serde_json::from_value(find(&dev, "HTTPRoute")["spec"]["hostnames"].clone())
            .expect("hostnames");
    assert_eq!(hostnames, seed_domain_names());
    let exact = render(&[
        UPSTREAM_STAGING,
        "ingress.hosts[0].host=a.example.com",
        "ingress.hosts[0].paths[0].path=/health",
        "ingress.hosts[0].paths[0].pathType=Exact",
    ]);
    assert_eq!(
        find(&exact, "HTTPRoute")["spec"]["rules"][0]["matches"][0]["path"],
        serde_json::json!({"type": "Exact", "value": "/health"})
    );
    let bad = render_err(&[UPSTREAM_STAGING, "ingress.mode=nginx"]);
    assert!(bad.contains("mode"), "{bad}");
}

#[test]
fn upstream_config_map_becomes_a_configmap_read_through_env_from() {
    let values = fixture(UPSTREAM_DEFAULTS);
    let data = values["configMap"]["data"]
        .as_object()
        .expect("configMap.data");
    assert!(!data.is_empty());
    let docs = render(&[UPSTREAM_DEFAULTS]);
    let cm = find(&docs, "ConfigMap");
    let expected: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(scalar_string(v))))
        .collect();
    assert_eq!(cm["data"], Value::Object(expected));
    let name = cm["metadata"]["name"].as_str().expect("name");
    assert_eq!(
        name,
        format!(
            "{}-config",
            find(&docs, "Deployment")["metadata"]["name"]
                .as_str()
                .unwrap()
        )
    );
    let env_from = container(&docs)["envFrom"]
        .as_array()
        .expect("envFrom")
        .clone();
    assert!(
        env_from.iter().any(|e| e["configMapRef"]["name"] == name),
        "{env_from:?}"
    );
    // A change of the data rolls the pods.
    let sum = pod_annotations(&docs)["checksum/config"].clone();
    let changed = render(&[UPSTREAM_DEFAULTS, "configMap.data.EXTRA=1"]);
    assert_ne!(pod_annotations(&changed)["checksum/config"], sum);
    // Files without configMap get none.
    for file in [UPSTREAM_DEV, UPSTREAM_STAGING, UPSTREAM_PROD] {
        assert!(fixture(file).get("configMap").is_none(), "{file}");
        let docs = render(&[file]);
        assert!(!has(&docs, "ConfigMap"), "{file}");
        assert!(!container(&docs)["envFrom"]
            .as_array()
            .map(|a| a.iter().any(|e| e.get("configMapRef").is_some()))
            .unwrap_or(false));
    }
    let bad = render_err(&["configMap.files.x=1"]);
    assert!(bad.contains("files"), "{bad}");
}

#[test]
fn upstream_vault_settings_become_injector_annotations() {
    let values = fixture(UPSTREAM_PROD);
    let vault = &values["vault"];
    assert_eq!(vault["enabled"], true);
    let docs = render(&[UPSTREAM_PROD]);
    let a = pod_annotations(&docs);
    assert_eq!(
        a["vault.hashicorp.com/agent-inject"],
        vault["agentInject"]
            .as_bool()
            .expect("agentInject")
            .to_string()
    );
    assert_eq!(
        a["vault.hashicorp.com/agent-inject-status"],
        vault["agentInjectStatus"]
    );
    assert_eq!(a["vault.hashicorp.com/role"], vault["role"]);
    assert_eq!(
        a["vault.hashicorp.com/agent-inject-secret-app"],
        vault["secretPath"]
    );
    assert_eq!(
        a["vault.hashicorp.com/agent-inject-template-app"]
            .as_str()
            .expect("template")
            .trim(),
        vault["agentInjectTemplate"]
            .as_str()
            .expect("template")
            .trim()
    );
    // DATABASE_URL comes from upstream's Vault template: no literal one, no Secret reference.
    assert!(env_value(&docs, "DATABASE_URL").is_none());
    assert!(env_value(&docs, "FFE_ENV_FILE").is_some());
    // The status annotation only goes with injection.
    let off = render(&[UPSTREAM_PROD, "vault.agentInject=false"]);
    assert!(pod_annotations(&off)
        .get("vault.hashicorp.com/agent-inject-status")
        .is_none());
    // Vault off (values-dev, upstream defaults): no injector annotation at all, even with
    // agentInject/agentInjectStatus set.
    for file in [UPSTREAM_DEV, UPSTREAM_DEFAULTS] {
        assert_eq!(fixture(file)["vault"]["enabled"], false, "{file}");
        let docs = render(&[file]);
        assert!(
            !pod_annotations(&docs)
                .keys()
                .any(|k| k.starts_with("vault.hashicorp.com/")),
            "{file}"
        );
    }
    let bad = render_err(&[UPSTREAM_PROD, "vault.agentInjectStatus=sometimes"]);
    assert!(bad.contains("agentInjectStatus"), "{bad}");
}

#[test]
fn upstream_external_database_renders_without_waiting_for_a_ca_secret() {
    // values-staging: database.external without url, no Vault -> DATABASE_URL from the Secret.
    let values = fixture(UPSTREAM_STAGING);
    assert_eq!(values["database"]["external"], true);
    assert!(values["database"].get("url").is_none());
    assert_eq!(values["vault"]["enabled"], false);
    let docs = render(&[UPSTREAM_STAGING]);
    let secret = find(&docs, "Secret");
    let secret_name = &secret["metadata"]["name"];
    let url = env_value(&docs, "DATABASE_URL").expect("DATABASE_URL");
    assert_eq!(url["valueFrom"]["secretKeyRef"]["name"], *secret_name);
    assert_eq!(url["valueFrom"]["secretKeyRef"]["key"], "DATABASE_URL");
    assert!(container(&docs)["envFrom"]
        .as_array()
        .expect("envFrom")
        .iter()
        .any(|e| e["secretRef"]["name"] == *secret_name));
    // An operator's own Secret instead of the chart's.
    let existing = render(&[
        UPSTREAM_STAGING,
        "secrets.create=false",
        "secrets.existingSecret=ffe-env",
    ]);
    assert!(!has(&existing, "Secret"));
    assert_eq!(
        env_value(&existing, "DATABASE_URL").expect("DATABASE_URL")["valueFrom"]["secretKeyRef"]
            ["name"],
        "ffe-env"
    );
    let nowhere = render_err(&[UPSTREAM_STAGING, "secrets.create=false"]);
    assert!(nowhere.contains("secrets.existingSecret"), "{nowhere}");

    // values-dev: the URL as given (literally).
    let dev_url = fixture(UPSTREAM_DEV)["database"]["url"].clone();
    let dev = render(&[UPSTREAM_DEV]);
    assert_eq!(
        env_value(&dev, "DATABASE_URL").expect("DATABASE_URL")["value"],
        dev_url
    );

    // None of upstream's files asks for TLS verification: no ffe-db-ca volume, no PGSSLROOTCERT.
    for file in UPSTREAM_FILES {
        let docs = render(&[file]);
        assert!(
            !volume_names(&docs).contains(&"db-ca".to_string()),
            "{file}"
        );
        assert!(env_value(&docs, "PGSSLROOTCERT").is_none(), "{file}");
    }
    // Asking for it mounts the CA: a verifying URL, or caSecret.mount=always (URL from a Secret).
    for extra in [
        "database.url=postgresql://db.example.com/ffe?sslmode=verify-full&sslrootcert=/etc/ffe/db-ca/ca.crt",
        "database.caSecret.mount=always",
    ] {
        let docs = render(&[UPSTREAM_STAGING, extra]);
        assert!(volume_names(&docs).contains(&"db-ca".to_string()), "{extra}");
        assert_eq!(
            env_value(&docs, "PGSSLROOTCERT").expect("PGSSLROOTCERT")["value"],
            "/etc/ffe/db-ca/ca.crt"
        );
    }
    let require = render(&[
        UPSTREAM_STAGING,
        "database.url=postgresql://db.example.com/ffe?sslmode=require",
    ]);
    assert!(!volume_names(&require).contains(&"db-ca".to_string()));
    // Our own production default (PgBouncer, verify-full) still mounts it.
    assert!(volume_names(&render(&[PROD])).contains(&"db-ca".to_string()));
}

#[test]
fn upstream_postgresql_block_is_accepted_and_ignored() {
    let values = fixture(UPSTREAM_DEFAULTS);
    assert!(values["database"]["postgresql"].is_object());
    let base = render(&[UPSTREAM_DEFAULTS]);
    let enabled = render(&[UPSTREAM_DEFAULTS, "database.postgresql.enabled=true"]);
    assert_eq!(base, enabled, "database.postgresql renders nothing");
    assert!(!base.iter().any(|d| d["kind"] == "StatefulSet"
        || d["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .contains("postgres")));
    let bad = render_err(&[UPSTREAM_DEFAULTS, "database.postgres.enabled=true"]);
    assert!(bad.contains("postgres"), "{bad}");
}

#[test]
fn upstream_persistence_gets_a_shared_readwritemany_claim() {
    for file in [UPSTREAM_STAGING, UPSTREAM_PROD] {
        let p = fixture(file)["persistence"].clone();
        assert_eq!(p["enabled"], true, "{file}");
        assert!(p.get("accessMode").is_none(), "{file}");
        let docs = render(&[file]);
        let pvc = find(&docs, "PersistentVolumeClaim");
        assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], p["size"]);
        assert_eq!(pvc["spec"]["storageClassName"], p["storageClassName"]);
        // Several replicas: one claim for all pods, so ReadWriteMany (the chart's default).
        assert_eq!(
            pvc["spec"]["accessModes"],
            serde_json::json!(["ReadWriteMany"])
        );
        assert!(container(&docs)["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .any(|m| m["name"] == "data" && m["mountPath"] == p["mountPath"]));
        // Upstream's ReadWriteOnce with several replicas is refused, naming the way out.
        let rwo = render_err(&[file, "persistence.accessMode=ReadWriteOnce"]);
        assert!(rwo.contains("persistence.perPod"), "{rwo}");
    }
}

/// What a plan of terraform/modules/app produced.
struct AppPlan {
    /// The module's `manifests` output (file name -> YAML).
    manifests: serde_json::Map<String, Value>,
    /// The package handed to the module, if one was built.
    package: Option<Vec<u8>>,
}

/// A module source path from `from` to `to` (both absolute): Terraform only treats sources
/// starting with `./` or `../` as local directories.
fn relative_source(from: &Path, to: &Path) -> String {
    let depth = from.components().skip(1).count();
    let to = to.display().to_string();
    format!("{}{}", "../".repeat(depth), to.trim_start_matches('/'))
}

/// Plans terraform/modules/app (a pure rendering module: no provider) from a scratch root module
/// that passes it the repository's values-production.yaml, a chart packaged with the real
/// `helm package` (when `with_chart`), and `vars` (`-var enabled=...`, `-var set=...`).
/// Returns the module's `manifests` output, or the plan's error text.
fn plan_app_module(with_chart: bool, vars: &[&str]) -> Result<AppPlan, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let scratch = dir.path().canonicalize().expect("canonical tempdir");
    let module = root()
        .join("terraform/modules/app")
        .canonicalize()
        .expect("terraform/modules/app exists");
    let values = chart().join(PROD).canonicalize().expect("values file");
    let main_tf = format!(
        r#"variable "enabled" {{
  type = bool
}}

variable "set" {{
  type    = any
  default = {{}}
}}

variable "route_hostnames" {{
  type    = list(string)
  default = []
}}

module "app" {{
  source          = "{source}"
  enabled         = var.enabled
  chart_path      = "${{path.module}}/charts/ffe-backend.tgz"
  values_file     = "{values}"
  set             = var.set
  route_hostnames = var.route_hostnames
}}

output "manifests" {{
  value = module.app.manifests
}}
"#,
        source = relative_source(&scratch, &module),
        values = values.display(),
    );
    std::fs::write(scratch.join("main.tf"), main_tf).expect("main.tf");
    let charts = scratch.join("charts");
    std::fs::create_dir_all(&charts).expect("mkdir charts");
    let package = if with_chart {
        let out = Command::new(helm4())
            .args(["package", &chart().display().to_string(), "-d"])
            .arg(&charts)
            .output()
            .expect("helm package");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pkg = std::fs::read_dir(&charts)
            .expect("charts dir")
            .filter_map(Result::ok)
            .find(|e| e.file_name().to_string_lossy().ends_with(".tgz"))
            .expect("packaged chart");
        let target = charts.join("ffe-backend.tgz");
        std::fs::rename(pkg.path(), &target).expect("rename");
        Some(std::fs::read(&target).expect("read package"))
    } else {
        None
    };
    let terraform = std::env::var_os("FFE_TERRAFORM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("terraform"));
    let tf = |args: &[&str]| {
        Command::new(&terraform)
            .current_dir(&scratch)
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .args(args)
            .output()
            .expect("run terraform")
    };
    let init = tf(&["init", "-backend=false", "-input=false", "-no-color"]);
    assert!(
        init.status.success(),
        "terraform init: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let mut args = vec!["plan", "-input=false", "-no-color", "-out=plan"];
    args.extend_from_slice(vars);
    let plan = tf(&args);
    if !plan.status.success() {
        return Err(String::from_utf8_lossy(&plan.stderr).into_owned());
    }
    let show = tf(&["show", "-json", "plan"]);
    assert!(
        show.status.success(),
        "terraform show: {}",
        String::from_utf8_lossy(&show.stderr)
    );
    let json: Value = serde_json::from_slice(&show.stdout).expect("plan JSON");
    let manifests = json["planned_values"]["outputs"]["manifests"]["value"]
        .as_object()
        .cloned()
        .expect("manifests output is a map");
    Ok(AppPlan { manifests, package })
}

/// Standard base64 (RFC 4648, padded), as Terraform's filebase64 writes it.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    assert_eq!(text.len() % 4, 0, "base64 length must be a multiple of 4");
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for chunk in text.as_bytes().chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        let mut word: u32 = 0;
        for &c in chunk {
            let v = if c == b'=' {
                0
            } else {
                ALPHABET
                    .iter()
                    .position(|&a| a == c)
                    .unwrap_or_else(|| panic!("not base64: {:?}", c as char))
            };
            word = (word << 6) | u32::try_from(v).expect("6 bits");
        }
        let bytes = word.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    out
}

#[test]
fn base64_decoder_matches_known_vectors() {
    // RFC 4648 section 10.
    for (encoded, plain) in [
        ("", ""),
        ("Zg==", "f"),
        ("Zm8=", "fo"),
        ("Zm9v", "foo"),
        ("Zm9vYg==", "foob"),
        ("Zm9vYmE=", "fooba"),
        ("Zm9vYmFy", "foobar"),
    ] {
        assert_eq!(base64_decode(encoded), plain.as_bytes(), "{encoded}");
    }
}

#[test]
fn deploy_app_renders_a_helmchart_from_the_packaged_chart() {
    // Off (deploy_app = false): nothing to deploy, no package needed.
    let off = plan_app_module(false, &["-var", "enabled=false"])
        .expect("plan with enabled = false and no package");
    assert!(off.manifests.is_empty(), "{:?}", off.manifests);
    // On without `make app-chart`: a clear plan-time error.
    let err = plan_app_module(false, &["-var", "enabled=true"])
        .err()
        .expect("missing package must fail the plan");
    // Terraform wraps diagnostics at ~78 columns: compare with whitespace collapsed.
    let flat = err.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("run `make app-chart`"), "{err}");
    // On: one HelmChart installing release "ffe" in namespace "ffe" from the package.
    let on = plan_app_module(
        true,
        &["-var", "enabled=true", "-var", r#"set={replicaCount=5}"#],
    )
    .expect("plan");
    assert_eq!(
        on.manifests.keys().collect::<Vec<_>>(),
        ["helmchart.yaml"],
        "one file in the app bundle"
    );
    let yaml = on.manifests["helmchart.yaml"]
        .as_str()
        .expect("HelmChart YAML");
    let hc: Value = serde_yaml_ng::from_str(yaml).expect("YAML");
    assert_eq!(hc["apiVersion"], "helm.cattle.io/v1");
    assert_eq!(hc["kind"], "HelmChart");
    assert_eq!(hc["metadata"]["name"], "ffe", "release name of the seed");
    assert_eq!(
        hc["metadata"]["namespace"], "kube-system",
        "helm-controller watches kube-system"
    );
    assert_eq!(hc["spec"]["targetNamespace"], "ffe");
    assert_eq!(
        hc["spec"]["set"]["replicaCount"], 5,
        "numbers stay numbers for the values schema"
    );
    assert_eq!(hc["spec"]["failurePolicy"], "abort");
    let content = hc["spec"]["chartContent"].as_str().expect("chartContent");
    assert!(
        content.starts_with("H4sI"),
        "chartContent is a base64 gzip archive"
    );
    assert!(
        base64_decode(content) == on.package.expect("package built"),
        "chartContent must be exactly the packaged chart"
    );
    let values = std::fs::read_to_string(chart().join(PROD)).expect("values");
    assert_eq!(hc["spec"]["valuesContent"], values.as_str());

    // The operator's domain_names replace the values file's route host names as a whole (one
    // name, where the file has two: Helm's --set of list indices would have kept the second).
    let routed = plan_app_module(
        true,
        &[
            "-var",
            "enabled=true",
            "-var",
            r#"route_hostnames=["trading.example.org"]"#,
        ],
    )
    .expect("plan");
    let hc: Value = serde_yaml_ng::from_str(
        routed.manifests["helmchart.yaml"]
            .as_str()
            .expect("HelmChart YAML"),
    )
    .expect("YAML");
    let got: Value = serde_yaml_ng::from_str(hc["spec"]["valuesContent"].as_str().expect("values"))
        .expect("values YAML");
    let file: Value = serde_yaml_ng::from_str(&values).expect("values file");
    assert_eq!(
        got["httpRoute"]["hostnames"],
        serde_json::json!(["trading.example.org"])
    );
    let mut expected = file.clone();
    expected["httpRoute"]["hostnames"] = serde_json::json!(["trading.example.org"]);
    assert_eq!(got, expected, "only the host names may change");
    assert!(hc["spec"]["set"].as_object().is_none_or(|m| m.is_empty()));
}

//! The validation harness against the real tools: `kubernetes-validate` from tools/venv (or
//! `FFE_KUBERNETES_VALIDATE`) and the upstream CRDs vendored in upstream/crds. Each broken document
//! must be reported, each sound one must pass: the harness can fail, and does not cry wolf.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ffe_validate::{validate_sources, KubeVersion, Options, Report, Source};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn crds() -> PathBuf {
    let dir = std::env::var_os("FFE_CRDS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("upstream/crds"));
    assert!(dir.is_dir(), "{} missing", dir.display());
    dir
}

fn kubernetes_validate() -> PathBuf {
    let exe = std::env::var_os("FFE_KUBERNETES_VALIDATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("tools/venv/bin/kubernetes-validate"));
    assert!(exe.is_file(), "{} missing: run `make deps`", exe.display());
    exe
}

fn options(values_schemas: BTreeMap<String, PathBuf>) -> Options {
    Options {
        kube_version: KubeVersion::parse("v1.29").unwrap(),
        crds_dir: crds(),
        values_schemas,
        kubernetes_validate: kubernetes_validate(),
    }
}

fn check(yaml: &str) -> Report {
    validate_sources(&[Source::new("t.yaml", yaml)], &options(BTreeMap::new())).unwrap()
}

fn lines(report: &Report) -> Vec<String> {
    report.problems.iter().map(ToString::to_string).collect()
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ffe}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "nginx:1.27", ports: [{containerPort: 8000}]}]
"#;

const GATEWAY: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: ffe-edge}
spec:
  gatewayClassName: nginx
  listeners:
  - {name: http, protocol: HTTP, port: 80}
"#;

const HELMCHART: &str = r#"
apiVersion: helm.cattle.io/v1
kind: HelmChart
metadata: {name: cert-manager, namespace: kube-system}
spec:
  chart: cert-manager
  repo: https://charts.jetstack.io
  version: v1.21.1
  targetNamespace: cert-manager
  valuesContent: |
    crds: {enabled: true}
    replicaCount: 2
"#;

const ISSUER: &str = r#"
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: letsencrypt}
spec:
  acme:
    email: ops@example.com
    server: https://acme-v02.api.letsencrypt.org/directory
    privateKeySecretRef: {name: le-account}
    solvers:
    - http01:
        gatewayHTTPRoute:
          parentRefs: [{name: edge, namespace: ffe-edge, kind: Gateway, sectionName: http}]
"#;

#[test]
fn sound_documents_pass() {
    let yaml = [DEPLOYMENT, GATEWAY, HELMCHART, ISSUER].join("---\n");
    let report = check(&yaml);
    assert!(report.ok(), "{:#?}", lines(&report));
    assert_eq!(report.documents, 4);
    assert_eq!(report.builtin, 1);
    assert_eq!(report.custom, 3);
}

#[test]
fn deployment_with_unknown_field_fails() {
    let report = check(&DEPLOYMENT.replace("image:", "imagee:"));
    let text = lines(&report);
    assert_eq!(text.len(), 1, "{text:#?}");
    assert!(
        text[0].starts_with("t.yaml:doc 1 Deployment/web: "),
        "{}",
        text[0]
    );
    assert!(text[0].contains("imagee"), "{}", text[0]);
}

#[test]
fn gateway_with_wrong_type_fails() {
    let report = check(&GATEWAY.replace("port: 80", "port: eighty"));
    let text = lines(&report);
    assert!(
        text.iter().any(|l| l.contains("Gateway/edge")
            && l.contains("/spec/listeners/0/port")
            && l.contains("integer")),
        "{text:#?}"
    );
}

#[test]
fn gateway_with_unknown_field_fails() {
    let report = check(&GATEWAY.replace("gatewayClassName", "gatewayClass"));
    let text = lines(&report);
    assert!(text.iter().any(|l| l.contains("gatewayClass")), "{text:#?}");
    // the required field is now missing as well
    assert!(text.iter().any(|l| l.contains("required")), "{text:#?}");
}

#[test]
fn unknown_kind_fails() {
    let report = check("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n");
    let text = lines(&report);
    assert_eq!(text.len(), 1, "{text:#?}");
    assert!(text[0].contains("Widget/w: unknown kind"), "{}", text[0]);
}

#[test]
fn unknown_version_of_a_crd_kind_fails() {
    let report = check(&GATEWAY.replace(
        "gateway.networking.k8s.io/v1",
        "gateway.networking.k8s.io/v9",
    ));
    assert!(
        lines(&report).iter().any(|l| l.contains("version v9")),
        "{:#?}",
        lines(&report)
    );
}

#[test]
fn cluster_issuer_with_misplaced_field_fails() {
    let report = check(&ISSUER.replace("    email:", "    mail:"));
    assert!(
        lines(&report)
            .iter()
            .any(|l| l.contains("ClusterIssuer/letsencrypt") && l.contains("mail")),
        "{:#?}",
        lines(&report)
    );
}

#[test]
fn helmchart_with_invalid_values_yaml_fails() {
    let report = check(&HELMCHART.replace("replicaCount: 2", "replicaCount: [2"));
    assert!(
        lines(&report)
            .iter()
            .any(|l| l.contains("valuesContent is not valid YAML")),
        "{:#?}",
        lines(&report)
    );
}

#[test]
fn helmchart_without_pinned_version_fails() {
    let report = check(&HELMCHART.replace("  version: v1.21.1\n", ""));
    assert!(
        lines(&report)
            .iter()
            .any(|l| l.contains("spec.version is not set")),
        "{:#?}",
        lines(&report)
    );
}

#[test]
fn helmchart_values_are_checked_against_a_values_schema() {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("values.schema.json");
    std::fs::write(
        &schema,
        r#"{"type": "object", "properties": {"replicaCount": {"type": "integer", "minimum": 3}}}"#,
    )
    .unwrap();
    let opts = options(BTreeMap::from([("cert-manager".to_string(), schema)]));
    let report = validate_sources(&[Source::new("t.yaml", HELMCHART)], &opts).unwrap();
    let text = lines(&report);
    assert_eq!(text.len(), 1, "{text:#?}");
    assert!(
        text[0].contains("spec.valuesContent/replicaCount"),
        "{}",
        text[0]
    );
    let ok = HELMCHART.replace("replicaCount: 2", "replicaCount: 3");
    assert!(validate_sources(&[Source::new("t.yaml", ok)], &opts)
        .unwrap()
        .ok());
}

fn cli(args: &[&str], stdin: Option<&str>) -> (i32, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ffe-validate"))
        .args(args)
        .env("FFE_KUBERNETES_VALIDATE", kubernetes_validate())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn cli_reads_stdin_and_exits_one_on_problems() {
    let crds = crds();
    let crds = crds.to_str().unwrap();
    let (code, out) = cli(
        &["manifests", "--kube-version", "1.29", "--crds", crds, "-"],
        Some(&[DEPLOYMENT, GATEWAY].join("---\n")),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 problem(s) in 2 document(s)"), "{out}");

    let broken = [DEPLOYMENT, &GATEWAY.replace("port: 80", "port: eighty")].join("---\n");
    let (code, out) = cli(
        &["manifests", "--kube-version", "1.29", "--crds", crds, "-"],
        Some(&broken),
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines()
            .next()
            .unwrap()
            .starts_with("-:doc 2 Gateway/edge: "),
        "{out}"
    );
}

#[test]
fn cli_validates_every_planned_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let plan = serde_json::json!({
        "variables": {"kubernetes_version": {"value": "v1.29"}},
        "planned_values": {"root_module": {"resources": [
            {"address": "ffe_manifests.platform[\"edge\"]", "mode": "managed", "type": "ffe_manifests",
             "values": {"bundle": "edge", "manifests": {
                 "ffe-edge-gateway.yaml": GATEWAY,
                 "ffe-edge-bad.yaml": format!("{DEPLOYMENT}---\n{}", "apiVersion: v1\nkind: Nope\nmetadata: {name: x}\n"),
             }}}
        ]}}
    });
    let path = dir.path().join("plan.json");
    std::fs::write(&path, plan.to_string()).unwrap();
    let crds = crds();
    let (code, out) = cli(
        &[
            "terraform-plan",
            "--plan-json",
            path.to_str().unwrap(),
            "--crds",
            crds.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 1, "{out}");
    let problems: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with("ffe-validate:"))
        .collect();
    assert_eq!(problems.len(), 1, "{out}");
    assert!(
        problems[0].starts_with(
            "ffe_manifests.platform[\"edge\"]/ffe-edge-bad.yaml:doc 2 Nope/x: unknown kind"
        ),
        "{out}"
    );
    assert!(out.contains("Kubernetes 1.29"), "{out}");
}

const TIGERA: &str = r#"
apiVersion: helm.cattle.io/v1
kind: HelmChart
metadata: {name: tigera-operator, namespace: kube-system}
spec:
  chart: tigera-operator
  repo: https://docs.tigera.io/calico/charts
  version: v3.32.0
  bootstrap: true
  valuesContent: |
    installation:
      enabled: true
      calicoNetwork:
        containerIPForwarding: Enabled
        ipPools: [{cidr: 10.42.0.0/16, encapsulation: VXLAN}]
"#;

#[test]
fn tigera_installation_values_are_checked_against_the_installation_crd() {
    assert!(check(TIGERA).ok(), "{:#?}", lines(&check(TIGERA)));
    let report = check(&TIGERA.replace("containerIPForwarding", "containerIPForwardin"));
    let text = lines(&report);
    assert_eq!(text.len(), 1, "{text:#?}");
    assert!(
        text[0].contains("HelmChart/tigera-operator: valuesContent.installation")
            && text[0].contains("containerIPForwardin"),
        "{}",
        text[0]
    );
}

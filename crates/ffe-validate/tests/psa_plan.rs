//! The Pod Security check over what the conformance step renders: the vendored csi-driver-nfs chart
//! (its node DaemonSet is privileged, on the host network, with hostPath volumes; its templates
//! name no namespace) rendered with the real `helm` into a HelmChart's targetNamespace, then
//! checked against the namespaces a plan labels and the exemptions the API server is given.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ffe_validate::conformance::{self, Bundle, Context};
use ffe_validate::psa;
use ffe_validate::render::locate_helm;
use ffe_validate::server_config::Checker;
use ffe_validate::upstream::Upstream;
use ffe_validate::values::ValuesPolicy;
use ffe_validate::{KubeVersion, Source};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const NFS: &str = "https://raw.githubusercontent.com/kubernetes-csi/csi-driver-nfs/v4.13.4/charts/v4.13.4/csi-driver-nfs-4.13.4.tgz";

fn nfs_chart(target: &str) -> String {
    format!(
        "apiVersion: helm.cattle.io/v1\nkind: HelmChart\nmetadata: {{name: csi-driver-nfs, namespace: kube-system}}\n\
         spec:\n  chart: {NFS}\n  version: \"4.13.4\"\n  targetNamespace: {target}\n  \
         valuesContent: |\n    externalSnapshotter: {{enabled: false}}\n"
    )
}

fn namespace(name: &str, level: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels: {{pod-security.kubernetes.io/enforce: {level}}}\n"
    )
}

/// The Pod Security problems of a plan of these files (one bundle), as the CLI finds them.
fn psa_problems(files: &[(&str, String)]) -> Vec<String> {
    let upstream = Upstream::open(&root().join("upstream")).unwrap();
    let policy = ValuesPolicy::load(&root().join("upstream/values-policy.yaml")).unwrap();
    let ctx = Context {
        upstream: &upstream,
        policy: &policy,
        helm: locate_helm(&root()),
        amtool: None,
        server_config: Checker::new(None),
        kube_version: KubeVersion::parse("1.35").unwrap(),
    };
    let bundle = Bundle {
        name: "storage".into(),
        sources: files
            .iter()
            .map(|(f, c)| Source::new(format!("storage/{f}"), c.clone()))
            .collect(),
        after: BTreeSet::new(),
        waits: Vec::new(),
    };
    let outcome = conformance::check(&[bundle], &ctx).unwrap();
    assert!(
        outcome
            .objects
            .iter()
            .any(|o| o.object["kind"] == "DaemonSet" && o.default_namespace != "default"),
        "the chart's DaemonSet was not rendered into the target namespace"
    );
    psa::check(
        &outcome.objects,
        ffe_core::k3s::config::PSA_EXEMPT_NAMESPACES,
    )
    .iter()
    .map(ToString::to_string)
    .collect()
}

#[test]
fn rendered_workloads_in_an_unlabelled_target_namespace_are_reported() {
    let found = psa_problems(&[("nfs.yaml", nfs_chart("storage"))]);
    assert!(
        found
            .iter()
            .any(|p| p.contains("HelmChart/csi-driver-nfs -> ")
                && p.contains("DaemonSet/csi-nfs-node: runs in namespace storage")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .all(|p| p.contains("runs in namespace storage")),
        "{found:#?}"
    );
}

#[test]
fn rendered_host_access_in_a_baseline_namespace_is_reported() {
    let found = psa_problems(&[
        ("ns.yaml", namespace("storage", "baseline")),
        ("nfs.yaml", nfs_chart("storage")),
    ]);
    let node = found
        .iter()
        .find(|p| p.contains("DaemonSet/csi-nfs-node"))
        .unwrap_or_else(|| panic!("{found:#?}"));
    for want in [
        "enforces Pod Security baseline",
        "hostNetwork: true",
        "privileged",
        "hostPath volume",
    ] {
        assert!(node.contains(want), "{want} not in {node}");
    }
}

#[test]
fn the_same_chart_in_an_exempt_or_privileged_namespace_passes() {
    assert_eq!(
        psa_problems(&[("nfs.yaml", nfs_chart("kube-system"))]),
        Vec::<String>::new()
    );
    assert_eq!(
        psa_problems(&[
            ("ns.yaml", namespace("storage", "privileged")),
            ("nfs.yaml", nfs_chart("storage")),
        ]),
        Vec::<String>::new()
    );
}

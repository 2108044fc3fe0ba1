//! The upstream conformance harness against the real vendored charts (upstream/), the real `helm`
//! (tools/bin/helm or `FFE_HELM`) and the real `amtool`: each defect found in review is
//! reintroduced in a small plan and must be reported; its fixed form must not be.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ffe_validate::conformance::{self, Bundle, Context, WaitTarget};
use ffe_validate::render::locate_helm;
use ffe_validate::server_config::{locate_bao, Checker};
use ffe_validate::upstream::Upstream;
use ffe_validate::values::ValuesPolicy;
use ffe_validate::{KubeVersion, Source};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn amtool() -> PathBuf {
    let p = std::env::var_os("FFE_AMTOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/amtool"));
    assert!(p.is_file(), "{} missing: run `make deps`", p.display());
    p
}

fn bao() -> PathBuf {
    let p = locate_bao(&root());
    assert!(
        p.as_ref().is_some_and(|p| p.is_file()),
        "bao missing: run scripts/install-deps.sh"
    );
    p.unwrap()
}

fn helm_chart(name: &str, chart: &str, repo: &str, version: &str, values: &str) -> String {
    let mut indented = String::new();
    for line in values.lines() {
        indented.push_str("    ");
        indented.push_str(line);
        indented.push('\n');
    }
    format!(
        "apiVersion: helm.cattle.io/v1\nkind: HelmChart\nmetadata: {{name: {name}, namespace: kube-system}}\n\
         spec:\n  chart: {chart}\n  repo: {repo}\n  version: \"{version}\"\n  targetNamespace: {name}\n  valuesContent: |\n{indented}"
    )
}

fn bundle(name: &str, after: &[&str], files: &[(&str, String)]) -> Bundle {
    Bundle {
        name: name.into(),
        sources: files
            .iter()
            .map(|(f, c)| Source::new(format!("{name}/{f}"), c.clone()))
            .collect(),
        after: after.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(),
        waits: Vec::new(),
    }
}

/// The problems the harness reports for these bundles.
fn problems(bundles: &[Bundle]) -> Vec<String> {
    let upstream = Upstream::open(&root().join("upstream")).unwrap();
    let policy = ValuesPolicy::load(&root().join("upstream/values-policy.yaml")).unwrap();
    let ctx = Context {
        upstream: &upstream,
        policy: &policy,
        helm: locate_helm(&root()),
        amtool: Some(amtool()),
        server_config: Checker::new(Some(bao())),
        kube_version: KubeVersion::parse("1.35").unwrap(),
    };
    conformance::check(bundles, &ctx)
        .unwrap()
        .problems
        .into_iter()
        .map(|p| p.to_string())
        .collect()
}

fn assert_reported(found: &[String], needle: &str) {
    assert!(
        found.iter().any(|p| p.contains(needle)),
        "expected a problem containing {needle:?}, got:\n{}",
        found.join("\n")
    );
}

fn assert_not_reported(found: &[String], needle: &str) {
    assert!(
        !found.iter().any(|p| p.contains(needle)),
        "did not expect {needle:?}:\n{}",
        found.join("\n")
    );
}

const CALICO_REPO: &str = "https://docs.tigera.io/calico/charts";
const CALICO_VALUES: &str = "installation:\n  enabled: true\n  cni: {type: Calico}\napiServer: {enabled: false}\ngoldmane: {enabled: false}\nwhisker: {enabled: false}\ndefaultFelixConfiguration: {enabled: true, wireguardEnabled: true}\n";

fn calico_operator() -> (&'static str, String) {
    (
        "calico.yaml",
        helm_chart(
            "tigera-operator",
            "tigera-operator",
            CALICO_REPO,
            "v3.32.0",
            CALICO_VALUES,
        ),
    )
}

// C1: tigera-operator v3.32.0 ships no CRDs; without the CRD chart first, nothing installs them.
#[test]
fn calico_without_its_crd_chart_is_reported() {
    let found = problems(&[bundle("cni", &[], &[calico_operator()])]);
    assert_reported(&found, "operator.tigera.io/Installation needs its CRD");
    assert_reported(
        &found,
        "crd.projectcalico.org/FelixConfiguration needs its CRD",
    );

    let crds = bundle(
        "crds",
        &[],
        &[(
            "calico-crds.yaml",
            helm_chart(
                "calico-crds",
                "crd.projectcalico.org.v1",
                CALICO_REPO,
                "v3.32.0",
                "{}",
            ),
        )],
    );
    let found = problems(&[crds, bundle("cni", &["crds"], &[calico_operator()])]);
    assert_not_reported(&found, "needs its CRD");
}

// C2: a pin or doc claiming an operator version the chart does not deploy.
#[test]
fn version_mentions_must_match_what_is_deployed() {
    let upstream = Upstream::open(&root().join("upstream")).unwrap();
    let chart = upstream
        .chart("tigera-operator", "v3.32.0")
        .unwrap()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("pins.tf");
    std::fs::write(
        &wrong,
        "  tigera_operator = \"v1.43.0\" # pairs with Calico v3.32.0\n",
    )
    .unwrap();
    let right = dir.path().join("ok.md");
    std::fs::write(&right, "Calico v3.32.0 runs tigera-operator v1.42.0.\n").unwrap();
    let found: Vec<String> = conformance::check_version_mentions(
        dir.path(),
        &[wrong, right],
        &[chart],
        &BTreeSet::new(),
    )
    .into_iter()
    .map(|p| p.to_string())
    .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_reported(&found, "pins.tf:1: says tigera-operator 1.43.0");
}

// C3: a chart version that was never published.
#[test]
fn unpublished_chart_version_is_reported() {
    let otel = helm_chart(
        "opentelemetry-collector",
        "opentelemetry-collector",
        "https://open-telemetry.github.io/opentelemetry-helm-charts",
        "0.158.3",
        "mode: deployment\n",
    );
    let found = problems(&[bundle("observability", &[], &[("otel.yaml", otel)])]);
    assert_reported(
        &found,
        "opentelemetry-collector 0.158.3 is not a published version",
    );
}

fn kube_prometheus_stack(extra: &str) -> String {
    helm_chart(
        "kube-prometheus-stack",
        "kube-prometheus-stack",
        "https://prometheus-community.github.io/helm-charts",
        "88.5.3",
        &format!("fullnameOverride: kube-prometheus-stack\n{extra}"),
    )
}

// C4: the documented Alertmanager example without the `null` receiver the default route uses.
#[test]
fn alertmanager_config_without_null_receiver_is_rejected_by_amtool() {
    let broken =
        "alertmanager:\n  config:\n    route: {receiver: ops}\n    receivers: [{name: ops}]\n";
    let found = problems(&[bundle(
        "monitoring",
        &[],
        &[("kps.yaml", kube_prometheus_stack(broken))],
    )]);
    assert_reported(
        &found,
        "Alertmanager rejects the rendered alertmanager.yaml",
    );

    let fixed = "alertmanager:\n  config:\n    route: {receiver: ops}\n    receivers: [{name: \"null\"}, {name: ops}]\n";
    let found = problems(&[bundle(
        "monitoring",
        &[],
        &[("kps.yaml", kube_prometheus_stack(fixed))],
    )]);
    assert_not_reported(&found, "Alertmanager rejects");
}

// C5: a key the loki chart does not have.
#[test]
fn unknown_values_key_is_reported() {
    let loki = helm_chart(
        "loki",
        "loki",
        "https://grafana-community.github.io/helm-charts",
        "18.11.0",
        "deploymentMode: Monolithic\nloki: {auth_enabled: false, commonConfig: {replication_factor: 1}, storage: {type: filesystem}, useTestSchema: true}\nsingleBinary: {replicas: 1}\nread: {replicas: 0}\nwrite: {replicas: 0}\nbackend: {replicas: 0}\nmonitoring: {lokiCanary: {enabled: false}}\n",
    );
    let found = problems(&[bundle("observability", &[], &[("loki.yaml", loki)])]);
    assert_reported(
        &found,
        "values key monitoring.lokiCanary is not defined by loki 18.11.0",
    );
}

// C5: the old loki repository and pins far behind upstream.
#[test]
fn stale_pins_and_wrong_repository_are_reported() {
    let old_loki = helm_chart(
        "loki",
        "loki",
        "https://grafana.github.io/helm-charts",
        "6.29.0",
        "{}",
    );
    let old_fluent_bit = helm_chart(
        "fluent-bit",
        "fluent-bit",
        "https://fluent.github.io/helm-charts",
        "0.47.0",
        "{}",
    );
    let found = problems(&[bundle(
        "observability",
        &[],
        &[("loki.yaml", old_loki), ("fluent-bit.yaml", old_fluent_bit)],
    )]);
    assert_reported(&found, "loki 6.29.0 trails upstream");
    assert_reported(&found, "fluent-bit 0.47.0 trails upstream");

    let new_loki_old_repo = helm_chart(
        "loki",
        "loki",
        "https://grafana.github.io/helm-charts",
        "18.11.0",
        "{}",
    );
    let found = problems(&[bundle(
        "observability",
        &[],
        &[("loki.yaml", new_loki_old_repo)],
    )]);
    assert_reported(
        &found,
        "but upstream publishes it at https://grafana-community",
    );
}

fn cert_manager(config: &str) -> String {
    helm_chart(
        "cert-manager",
        "cert-manager",
        "https://charts.jetstack.io",
        "v1.21.1",
        &format!("crds: {{enabled: true}}\nconfig:\n  apiVersion: controller.config.cert-manager.io/v1alpha1\n  kind: ControllerConfiguration\n  {config}\n"),
    )
}

fn gateway_api_crds() -> Vec<(String, String)> {
    let dir = root().join("upstream/crds/gateway-api/v1.5.1");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

// C5: cert-manager's deprecated key, and Gateway API support before the Gateway API CRDs exist.
#[test]
fn cert_manager_gateway_api_needs_crds_first_and_the_current_key() {
    let found = problems(&[bundle(
        "edge",
        &[],
        &[("cert-manager.yaml", cert_manager("enableGatewayAPI: true"))],
    )]);
    assert_reported(&found, "config.enableGatewayAPI is deprecated");
    assert_reported(
        &found,
        "needs the gateway.networking.k8s.io/Gateway CRD established before it starts",
    );

    // same bundle as the CRDs is still too late: the controller exits at start
    let mut files: Vec<(&str, String)> = Vec::new();
    let crds = gateway_api_crds();
    for (f, c) in &crds {
        files.push((f.as_str(), c.clone()));
    }
    files.push((
        "cert-manager.yaml",
        cert_manager("gatewayAPI: {enabled: true}"),
    ));
    let found = problems(&[bundle("edge", &[], &files)]);
    assert_reported(
        &found,
        "needs the gateway.networking.k8s.io/Gateway CRD established",
    );
    assert_not_reported(&found, "deprecated");

    let crd_files: Vec<(&str, String)> =
        crds.iter().map(|(f, c)| (f.as_str(), c.clone())).collect();
    let found = problems(&[
        bundle("crds", &[], &crd_files),
        bundle(
            "edge",
            &["crds"],
            &[(
                "cert-manager.yaml",
                cert_manager("gatewayAPI: {enabled: true}"),
            )],
        ),
    ]);
    assert_not_reported(&found, "needs the gateway");
}

fn csi(controller: &str) -> String {
    helm_chart(
        "csi-driver-nfs",
        "https://raw.githubusercontent.com/kubernetes-csi/csi-driver-nfs/v4.13.4/charts/v4.13.4/csi-driver-nfs-4.13.4.tgz",
        "",
        "4.13.4",
        &format!("controller:\n{controller}"),
    )
}

// C5: two host-network controllers that may share a node (and clash on the liveness port).
#[test]
fn host_network_replicas_must_be_spread() {
    let found = problems(&[bundle(
        "storage",
        &[],
        &[("csi.yaml", csi("  replicas: 2\n"))],
    )]);
    assert_reported(
        &found,
        "2 replicas on the host network without required anti-affinity",
    );

    // anti-affinity without nodeSelectorTerms is dropped by the chart's template: still reported
    let dropped = "  replicas: 2\n  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - topologyKey: kubernetes.io/hostname\n        labelSelector: {matchLabels: {app: csi-nfs-controller}}\n";
    let found = problems(&[bundle("storage", &[], &[("csi.yaml", csi(dropped))])]);
    assert_reported(&found, "on the host network without required anti-affinity");

    let kept = format!("{dropped}    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms: [{{matchExpressions: [{{key: kubernetes.io/os, operator: In, values: [linux]}}]}}]\n");
    let found = problems(&[bundle("storage", &[], &[("csi.yaml", csi(&kept))])]);
    assert_not_reported(&found, "host network");
}

// C5: the collector's default pipelines stay active when only `traces` is set.
#[test]
fn collector_default_pipelines_must_be_removed() {
    let otel = |config: &str| {
        helm_chart(
            "opentelemetry-collector",
            "opentelemetry-collector",
            "https://open-telemetry.github.io/opentelemetry-helm-charts",
            "0.170.0",
            &format!("mode: deployment\nimage: {{repository: otel/opentelemetry-collector-k8s}}\nconfig:\n{config}"),
        )
    };
    let traces = "      traces: {receivers: [otlp], processors: [memory_limiter, batch], exporters: [debug]}\n";
    let found = problems(&[bundle(
        "observability",
        &[],
        &[(
            "otel.yaml",
            otel(&format!("  service:\n    pipelines:\n{traces}")),
        )],
    )]);
    assert_reported(
        &found,
        "config.service.pipelines.logs: upstream's default survives",
    );
    assert_reported(
        &found,
        "config.receivers.jaeger: upstream's default survives",
    );

    let fixed = format!("  receivers: {{otlp: {{}}, jaeger: null, zipkin: null, prometheus: null}}\n  service:\n    pipelines:\n      logs: null\n      metrics: null\n{traces}");
    let found = problems(&[bundle("observability", &[], &[("otel.yaml", otel(&fixed))])]);
    assert_not_reported(&found, "survives");
}

// C5: data kept on a Delete StorageClass.
#[test]
fn claims_on_a_delete_class_are_reported() {
    let classes = |policy: &str| {
        format!("apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {{name: fast}}\nprovisioner: rancher.io/local-path\nreclaimPolicy: {policy}\n")
    };
    let values = "grafana:\n  persistence: {enabled: true, storageClassName: fast}\n";
    let found = problems(&[bundle(
        "monitoring",
        &[],
        &[
            ("sc.yaml", classes("Delete")),
            ("kps.yaml", kube_prometheus_stack(values)),
        ],
    )]);
    assert_reported(
        &found,
        "keeps data on StorageClass fast (reclaimPolicy Delete)",
    );
    let found = problems(&[bundle(
        "monitoring",
        &[],
        &[
            ("sc.yaml", classes("Retain")),
            ("kps.yaml", kube_prometheus_stack(values)),
        ],
    )]);
    assert_not_reported(&found, "keeps data on StorageClass");
}

// kube-vip is configured only through env: a name it does not read is silently ignored.
#[test]
fn environment_variables_of_our_images_must_exist_upstream() {
    let daemonset = |env: &str| {
        format!(
            "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {{name: kube-vip, namespace: kube-system}}\n\
             spec:\n  selector: {{matchLabels: {{app: kube-vip}}}}\n  template:\n    metadata: {{labels: {{app: kube-vip}}}}\n\
             \x20   spec:\n      containers:\n      - name: kube-vip\n        image: ghcr.io/kube-vip/kube-vip:v1.2.3\n        env: [{{name: address, value: 10.0.1.5}}, {{name: {env}, value: \"32\"}}]\n"
        )
    };
    let found = problems(&[bundle(
        "vip",
        &[],
        &[("kube-vip.yaml", daemonset("vip_cidr"))],
    )]);
    assert_reported(
        &found,
        "kube-vip v1.2.3 does not read environment variable vip_cidr",
    );
    let found = problems(&[bundle(
        "vip",
        &[],
        &[("kube-vip.yaml", daemonset("vip_subnet"))],
    )]);
    assert_not_reported(&found, "does not read");

    let other = daemonset("vip_subnet").replace("kube-vip:v1.2.3", "kube-vip:v0.0.1");
    let found = problems(&[bundle("vip", &[], &[("kube-vip.yaml", other)])]);
    assert_reported(
        &found,
        "image ghcr.io/kube-vip/kube-vip:v0.0.1 is not vendored",
    );
}

// Exporter sidecars of the PerconaPGCluster (modules/postgres/monitoring.tf): the operator copies
// them into its pods, so their env names and flags are checked like a Deployment's.
#[test]
fn sidecar_env_and_flags_of_an_operator_resource_must_exist_upstream() {
    let cluster = |instance_args: &str, bouncer_env: &str| {
        format!(
            "apiVersion: pgv2.percona.com/v2\nkind: PerconaPGCluster\nmetadata: {{name: ffe-pg, namespace: ffe-data}}\n\
             spec:\n  instances:\n  - name: db\n    sidecars:\n    - name: postgres-exporter\n\
             \x20     image: quay.io/prometheuscommunity/postgres-exporter:v0.20.1\n\
             \x20     args: [{instance_args}]\n      env: [{{name: DATA_SOURCE_NAME, value: host=/tmp/postgres}}]\n\
             \x20 proxy:\n    pgBouncer:\n      sidecars:\n      - name: pgbouncer-exporter\n\
             \x20       image: quay.io/prometheuscommunity/pgbouncer-exporter:v0.12.1\n\
             \x20       env: [{{name: {bouncer_env}, value: x}}]\n"
        )
    };
    let good = problems(&[bundle(
        "postgres",
        &[],
        &[(
            "cluster.yaml",
            cluster(
                "\"--web.listen-address=:9187\", \"--no-collector.stat_bgwriter\", \"--collector.stat_wal_receiver\"",
                "PGPASSWORD",
            ),
        )],
    )]);
    assert_not_reported(&good, "has no flag");
    assert_not_reported(&good, "does not read");

    let bad = problems(&[bundle(
        "postgres",
        &[],
        &[(
            "cluster.yaml",
            cluster(
                "\"--web.listen-adress=:9187\"",
                "PGBOUNCER_CONNECTION_STRING",
            ),
        )],
    )]);
    assert_reported(
        &bad,
        "postgres-exporter v0.20.1 has no flag --web.listen-adress",
    );
    assert_reported(
        &bad,
        "pgbouncer-exporter v0.12.1 does not read environment variable PGBOUNCER_CONNECTION_STRING",
    );

    let unpinned = cluster("\"--web.listen-address=:9187\"", "PGPASSWORD")
        .replace("postgres-exporter:v0.20.1", "postgres-exporter:v0.19.0");
    let found = problems(&[bundle("postgres", &[], &[("cluster.yaml", unpinned)])]);
    assert_reported(
        &found,
        "image quay.io/prometheuscommunity/postgres-exporter:v0.19.0 is not vendored",
    );
}

// Issue 13: a PerconaPGCluster whose data or repository claims use a Delete class loses the
// database with its claim; the operator's claims are checked like a StatefulSet's.
#[test]
fn percona_cluster_claims_need_retain_classes() {
    let classes = "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: fast-local}\n\
                   provisioner: rancher.io/local-path\nreclaimPolicy: Delete\n---\n\
                   apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: fast-local-retain}\n\
                   provisioner: rancher.io/local-path\nreclaimPolicy: Retain\n"
        .to_string();
    let cluster = |data: &str| {
        format!(
            "apiVersion: pgv2.percona.com/v2\nkind: PerconaPGCluster\nmetadata: {{name: ffe-pg, namespace: ffe-data}}\n\
             spec:\n  postgresVersion: 17\n  instances: [{{name: db, dataVolumeClaimSpec: {{storageClassName: {data}}}}}]\n\
             \x20 backups: {{pgbackrest: {{repos: [{{name: repo1, volume: {{volumeClaimSpec: {{storageClassName: fast-local-retain}}}}}}]}}}}\n"
        )
    };
    let found = problems(&[bundle(
        "postgres",
        &[],
        &[
            ("classes.yaml", classes.clone()),
            ("cluster.yaml", cluster("fast-local")),
        ],
    )]);
    assert_reported(
        &found,
        "PerconaPGCluster/ffe-pg keeps data on StorageClass fast-local (reclaimPolicy Delete)",
    );
    let found = problems(&[bundle(
        "postgres",
        &[],
        &[
            ("classes.yaml", classes),
            ("cluster.yaml", cluster("fast-local-retain")),
        ],
    )]);
    assert_not_reported(&found, "keeps data on StorageClass");
}

/// The version-mention problems of one doc file `name` holding `text`, with `images` deployed.
fn image_mentions(name: &str, text: &str, images: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join(name);
    std::fs::write(&doc, text).unwrap();
    let images: BTreeSet<String> = images.iter().map(|i| i.to_string()).collect();
    conformance::check_version_mentions(dir.path(), &[doc], &[], &images)
        .into_iter()
        .map(|p| p.to_string())
        .collect()
}

// Issue 13: Percona tags images `<version>-<packaging revision>`; "pgBackRest 2.58.0" in a doc is
// the deployed version, "2.57.0" is not.
#[test]
fn version_mentions_accept_packaging_revisions() {
    let found = image_mentions(
        "postgres.md",
        "percona-pgbackrest 2.58.0 runs the repo host.\npercona-pgbackrest 2.57.0 ran it before.\n",
        &["docker.io/percona/percona-pgbackrest:2.58.0-2"],
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_reported(&found, "postgres.md:2: says percona-pgbackrest 2.57.0");
}

// Istio's ambient profile pulls `pilot:1.30.3-distroless`: "pilot 1.30.3" is that software's
// version; another version is still wrong.
#[test]
fn version_mentions_accept_image_variants() {
    let found = image_mentions(
        "security.md",
        "image `pilot:1.30.3-distroless`\npilot 1.30.3 runs istiod.\npilot 1.29.0 ran it before.\n\
         thing 2.0.0 is not its release candidate.\n",
        &[
            "registry.istio.io/release/pilot:1.30.3-distroless",
            "example.com/thing:2.0.0-rc",
        ],
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert_reported(&found, "security.md:3: says pilot 1.29.0");
    assert_reported(&found, "security.md:4: says thing 2.0.0");
}

// Issue 13: "Percona operator 3.0.0" names the pg-operator (alias), not Calico's `operator` image
// (v1.42.0) that the longer name contains; a bare "operator 3.0.0" is still Calico's and wrong.
#[test]
fn version_mentions_prefer_the_longer_name() {
    let upstream = Upstream::open(&root().join("upstream")).unwrap();
    let pg = upstream.chart("pg-operator", "3.0.0").unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("postgres.md");
    std::fs::write(
        &doc,
        "The Percona operator 3.0.0 runs the cluster.\nThe operator 3.0.0 runs Calico.\n",
    )
    .unwrap();
    let images: BTreeSet<String> = ["quay.io/tigera/operator:v1.42.0".to_string()]
        .into_iter()
        .collect();
    let found: Vec<String> =
        conformance::check_version_mentions(dir.path(), &[doc], &[pg], &images)
            .into_iter()
            .map(|p| p.to_string())
            .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_reported(&found, "postgres.md:2: says operator 3.0.0");
}

// A wait_for naming an object the bundle never creates would only time out at apply time.
#[test]
fn waits_for_objects_the_bundle_does_not_create_are_reported() {
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: vault-agent-injector, namespace: vault}\n\
        spec:\n  selector: {matchLabels: {app: i}}\n  template:\n    metadata: {labels: {app: i}}\n    spec:\n      containers: [{name: i, image: \"hashicorp/vault-k8s:1.7.2\"}]\n"
        .to_string();
    let wait = |kind: &str, name: &str| WaitTarget {
        kind: kind.into(),
        name: name.into(),
        namespace: Some("vault".into()),
    };
    let mut b = bundle("vault", &[], &[("injector.yaml", deployment)]);
    b.waits = vec![
        wait("deployment.apps", "vault-agent-injector"),
        wait("deployment.apps", "vault-injector"),
        wait("statefulset.apps", "vault-agent-injector"),
    ];
    let found: Vec<String> = problems(&[b])
        .into_iter()
        .filter(|p| p.contains("wait_for"))
        .collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_reported(&found, "wait_for deployment.apps/vault-injector in vault");
    assert_reported(&found, "wait_for statefulset.apps/vault-agent-injector");
}

// Issue 14: the Vault/OpenBao server configuration (HCL in the chart values) is ours, written for
// an upstream component: OpenBao's parser and the keys OpenBao's source reads must accept it.
// `extra` adds lines at the top level, in the listener, in storage "raft" and in a retry_join.
fn vault_config(audit: bool, extra: [&str; 4]) -> String {
    let join = |name: &str| {
        format!(
            "  retry_join {{\n    leader_api_addr     = \"https://{name}.vault-internal:8200\"\n    \
             leader_ca_cert_file = \"/vault/userconfig/tls/ca.crt\"\n{}  }}\n",
            extra[3]
        )
    };
    let audit = if audit {
        "audit \"file\" \"file\" {\n  description = \"audit\"\n  options {\n    file_path = \"stdout\"\n  }\n}\n"
    } else {
        ""
    };
    format!(
        "ui = false\n{}\nlistener \"tcp\" {{\n  address         = \"[::]:8200\"\n  \
         cluster_address = \"[::]:8201\"\n  tls_cert_file   = \"/vault/userconfig/tls/tls.crt\"\n  \
         tls_key_file    = \"/vault/userconfig/tls/tls.key\"\n{}  telemetry {{\n    \
         unauthenticated_metrics_access = true\n  }}\n}}\n\nstorage \"raft\" {{\n  \
         path                   = \"/vault/data\"\n  performance_multiplier = 1\n{}{}{}}}\n\n\
         service_registration \"kubernetes\" {{}}\n{audit}\ntelemetry {{\n  disable_hostname          = true\n  \
         prometheus_retention_time = \"24h\"\n}}\n",
        extra[0],
        extra[1],
        extra[2],
        join("vault-0"),
        join("vault-1"),
    )
}

/// A `vault`/`openbao` HelmChart (the pinned chart and repository) carrying `config`.
fn vault_chart(chart: &str, config: &str) -> Bundle {
    let (repo, version) = match chart {
        "vault" => ("https://helm.releases.hashicorp.com", "0.32.0"),
        _ => ("https://openbao.github.io/openbao-helm", "0.29.2"),
    };
    let mut values = String::from(
        "server:\n  ha:\n    enabled: true\n    replicas: 3\n    raft:\n      enabled: true\n      \
         setNodeId: true\n      config: |\n",
    );
    for line in config.lines() {
        values.push_str("        ");
        values.push_str(line);
        values.push('\n');
    }
    bundle(
        "vault",
        &[],
        &[(
            "vault-chart.yaml",
            helm_chart("vault", chart, repo, version, &values),
        )],
    )
}

fn config_problems(found: &[String]) -> Vec<String> {
    found
        .iter()
        .filter(|p| p.contains("values server.ha.raft.config"))
        .cloned()
        .collect()
}

#[test]
fn vault_server_config_of_the_module_passes() {
    for (chart, audit) in [("vault", false), ("openbao", true)] {
        let found = problems(&[vault_chart(chart, &vault_config(audit, ["", "", "", ""]))]);
        assert_eq!(config_problems(&found), Vec::<String>::new(), "{chart}");
        assert!(
            found.is_empty(),
            "{chart}: the chart must take these values:\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn unknown_vault_server_config_keys_are_reported() {
    let extra = [
        "bogus_top = true\n",
        "  bogus_listener = true\n",
        "  bogus_raft = 1\n",
        "    bogus_join = \"x\"\n",
    ];
    for (chart, audit) in [("vault", false), ("openbao", true)] {
        let mut config = vault_config(audit, extra);
        if audit {
            config = config.replace(
                "file_path = \"stdout\"",
                "file_path = \"stdout\"\n    bogus_option = \"x\"",
            );
        }
        let found = config_problems(&problems(&[vault_chart(chart, &config)]));
        // parser: top level (line 2) and listener (line 9)
        assert_reported(&found, "line 2:1: unknown key bogus_top");
        assert_reported(&found, "line 9:3: unknown key bogus_listener");
        // OpenBao's source: storage "raft" and retry_join keys (the parser passes them through)
        assert_reported(&found, "unknown key bogus_raft in storage \"raft\" (");
        assert_reported(
            &found,
            "unknown key bogus_join in storage \"raft\" retry_join",
        );
        // two retry_join blocks: one report for each block holding the key
        assert_eq!(
            found.iter().filter(|p| p.contains("bogus_join")).count(),
            2,
            "{found:?}"
        );
        let expected = if audit {
            assert_reported(&found, "unknown key bogus_option in audit \"file\" options");
            5
        } else {
            4
        };
        assert_eq!(found.len(), expected + 1, "{chart}: {found:#?}");
        assert_not_reported(&found, "unknown key path ");
        assert_not_reported(&found, "leader_api_addr");
    }
}

#[test]
fn unparseable_vault_server_config_is_reported() {
    let config = "ui = false\nlistener \"tcp\" {\n  address = \n";
    let found = config_problems(&problems(&[vault_chart("openbao", config)]));
    assert_reported(
        &found,
        "the server configuration does not parse (bao operator diagnose)",
    );
    assert_eq!(found.len(), 1, "{found:?}");
}

const ISTIO_REPO: &str = "https://istio-release.storage.googleapis.com/charts";

fn istio(chart: &str, values: &str) -> (String, String) {
    (
        format!("istio-{chart}.yaml"),
        helm_chart(
            &format!("istio-{chart}"),
            chart,
            ISTIO_REPO,
            "1.30.3",
            values,
        ),
    )
}

const STRICT_MTLS: &str = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
    metadata: {name: default, namespace: ffe}\nspec: {mtls: {mode: STRICT}}\n";

fn istio_bundle(name: &str, after: &[&str], files: Vec<(String, String)>) -> Bundle {
    let files: Vec<(&str, String)> = files.iter().map(|(f, c)| (f.as_str(), c.clone())).collect();
    bundle(name, after, &files)
}

// Istio's charts keep their defaults under `_internal_defaults_do_not_set` and are set without the
// prefix: the key check must look there (and refuse the prefixed form, which the chart unsets).
#[test]
fn istio_values_are_checked_below_the_internal_defaults() {
    let base = istio_bundle("mesh-crds", &[], vec![istio("base", "{}")]);
    let mesh = |ztunnel: &str| {
        istio_bundle(
            "mesh",
            &["mesh-crds"],
            vec![
                istio("istiod", "profile: ambient\nautoscaleMin: 2\n"),
                istio("ztunnel", ztunnel),
            ],
        )
    };
    let found = problems(&[
        base.clone(),
        mesh("logLevel: warn\nresources: {requests: {cpu: 100m}}\n"),
    ]);
    assert_not_reported(&found, "values key");

    let found = problems(&[base.clone(), mesh("logLevl: warn\n")]);
    assert_reported(
        &found,
        "values key logLevl is not defined by ztunnel 1.30.3",
    );
    let found = problems(&[
        base,
        mesh("_internal_defaults_do_not_set: {logLevel: warn}\n"),
    ]);
    assert_reported(
        &found,
        "values key _internal_defaults_do_not_set is not defined by ztunnel 1.30.3",
    );
}

// istiod's README asks for base's CRDs first; our STRICT policy is a custom resource of them.
#[test]
fn istio_crds_must_come_from_an_earlier_bundle() {
    let policy = (
        "peer-authentication.yaml".to_string(),
        STRICT_MTLS.to_string(),
    );
    let together = istio_bundle(
        "mesh",
        &[],
        vec![
            istio("base", "{}"),
            istio("istiod", "profile: ambient\n"),
            policy.clone(),
        ],
    );
    let found = problems(&[together]);
    assert_reported(
        &found,
        "needs the security.istio.io/PeerAuthentication CRD established before it starts",
    );

    let found = problems(&[
        istio_bundle("mesh-crds", &[], vec![istio("base", "{}")]),
        istio_bundle(
            "mesh",
            &["mesh-crds"],
            vec![istio("istiod", "profile: ambient\n"), policy],
        ),
    ]);
    assert_not_reported(&found, "CRD");
}

// An unknown profile is Istio's own `fail` in templates/zzz_profile.yaml: helm template reports it.
#[test]
fn unknown_istio_profile_fails_to_render() {
    let found = problems(&[
        istio_bundle("mesh-crds", &[], vec![istio("base", "{}")]),
        istio_bundle(
            "mesh",
            &["mesh-crds"],
            vec![istio("cni", "profile: ambiant\n")],
        ),
    ]);
    assert_reported(&found, "helm template of upstream cni 1.30.3");
    assert_reported(&found, "unknown profile");
}

//! The Kubernetes API checks (`api.vip`, `nodes.ready`) against the **API stand-in**
//! (`ffe_lab::kube_api`: real nginx on a lab host with TLS and required client certificates,
//! serving recorded API objects; no kube-apiserver can run here). The recorded objects are checked
//! against the Kubernetes schema of the pinned minor first, so the checks read the real shape.
//! Needs root and nginx (scripts/install-deps.sh).

use std::time::Duration;

use ffe_core::kube::KubeApi;
use ffe_lab::kube_api::{recorded, RecordedApi};
use ffe_lab::lab::{Lab, LabSpec};
use ffe_lab::pki::TestCa;
use ffe_ops::Status;

mod support;
use support::{lab_inventory, row};

/// The Kubernetes minor the environment defaults to (terraform/environments/ha/pins.tf).
const KUBE_MINOR: &str = "1.36";
const VERSION: &str = "v1.36.2+k3s1";

#[tokio::test(flavor = "multi_thread")]
async fn api_and_node_checks_read_the_api_with_the_client_certificate() {
    let lab = Lab::create(LabSpec {
        hosts: ["vk-master-1", "vk-master-2", "vk-worker-1"]
            .iter()
            .map(|h| h.to_string())
            .collect(),
        backup_mount: "/mnt/backups".into(),
        ssh_port: 22,
    })
    .unwrap();
    let mut inv = lab_inventory(&lab);
    let same = |_: &str| VERSION.to_string();
    let nodes = recorded::lab_nodes(lab.hosts(), "", &same);
    let broken = recorded::node("x", "10.210.0.1", false, true, VERSION);
    // Every kind the stand-in serves in the verify and drill labs: nodes, instance pods, a
    // Service, a Secret, a recreated pod, a Lease.
    let mut objects = nodes["items"].as_array().unwrap().clone();
    objects.push(recorded::pod(
        "ffe-data",
        "ffe-pg-db-abcd-0",
        serde_json::json!({"postgres-operator.crunchydata.com/cluster": "ffe-pg", "postgres-operator.crunchydata.com/data": "postgres"}),
        "vk-worker-1",
        "10.42.1.5",
    ));
    objects.push(recorded::service(
        "ffe-data",
        "ffe-pg-pgbouncer",
        "10.43.0.20",
        5432,
    ));
    objects.push(recorded::secret("vault", "vault-ca", &[("ca.crt", b"PEM")]));
    // The drill's: a pod as its StatefulSet creates it again, and a node's Lease.
    let recreated = recorded::recreated(&objects[objects.len() - 3], 2);
    assert_ne!(
        recreated["metadata"]["uid"],
        objects[objects.len() - 3]["metadata"]["uid"]
    );
    objects.push(recreated);
    objects.push(recorded::lease(
        "vk-worker-1",
        "2026-12-03T10:00:00.123456Z",
    ));
    schema_valid(&objects);
    // The schema check can fail: a misspelt field is refused.
    let mut misspelt = broken.clone();
    misspelt["status"]["nodeInfo"]["kubeletVerison"] = serde_json::json!("v1");
    let r = std::panic::catch_unwind(|| schema_valid(&[misspelt]));
    assert!(r.is_err(), "kubernetes-validate accepted an unknown field");

    let ca = TestCa::new(&lab.dir().join("api-ca")).unwrap();
    let api_host = lab.hosts()[0].clone();
    let stand_in = RecordedApi::start(
        &lab,
        &api_host.name,
        &ca,
        &[("/api/v1/nodes", nodes.to_string())],
    )
    .unwrap();
    inv.api_vip = Some(api_host.ip.to_string());
    let api = KubeApi::from_kubeconfig_file(stand_in.kubeconfig(), Duration::from_secs(3)).unwrap();

    // Healthy: every node Ready, one version, through the VIP.
    let checks = ffe_ops::verify::kubernetes(&api, &inv).await;
    for c in &checks {
        assert_eq!(c.status, Status::Pass, "{checks:#?}");
        assert!(ffe_ops::verify::KUBE_CHECK_IDS.contains(&c.id));
    }
    assert_eq!(checks.len(), 1 + lab.hosts().len() + 1);
    assert!(row(&checks, "nodes.ready", "vk-worker-1")
        .evidence
        .contains(VERSION));

    // One worker NotReady, one master on another version: named.
    stand_in
        .set(
            "/api/v1/nodes",
            &recorded::lab_nodes(lab.hosts(), "vk-worker-1", &|n| {
                if n == "vk-master-2" {
                    "v1.35.6+k3s1".into()
                } else {
                    VERSION.into()
                }
            })
            .to_string(),
        )
        .unwrap();
    let checks = ffe_ops::verify::kubernetes(&api, &inv).await;
    assert_eq!(
        row(&checks, "nodes.ready", "vk-worker-1").status,
        Status::Fail
    );
    assert_eq!(
        row(&checks, "nodes.ready", "vk-master-1").status,
        Status::Pass
    );
    let cluster = row(&checks, "nodes.ready", "cluster");
    assert_eq!(cluster.status, Status::Warn);
    assert!(cluster.evidence.contains("v1.35.6+k3s1"), "{cluster:?}");

    // A node the API lists but the inventory lost: named.
    inv.nodes.retain(|n| n.name != "vk-master-2");
    let checks = ffe_ops::verify::kubernetes(&api, &inv).await;
    assert!(row(&checks, "nodes.ready", "cluster")
        .evidence
        .contains("nodes not in the inventory: vk-master-2"));

    // Without the client certificate the API (stand-in) refuses: the check says so.
    let anon_dir = tempfile::tempdir().unwrap();
    let anonymous = std::fs::read_to_string(stand_in.kubeconfig())
        .unwrap()
        .lines()
        .filter(|l| !l.contains("client-certificate-data") && !l.contains("client-key-data"))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n    token: not-a-token\n";
    let anon_file = anon_dir.path().join("kubeconfig");
    std::fs::write(&anon_file, anonymous).unwrap();
    let anon = KubeApi::from_kubeconfig_file(&anon_file, Duration::from_secs(3)).unwrap();
    let checks = ffe_ops::verify::kubernetes(&anon, &inv).await;
    let vip = row(&checks, "api.vip", "cluster");
    assert_eq!(vip.status, Status::Fail, "{vip:?}");
    // nginx answers 400 where kube-apiserver answers 401: a stand-in difference the hint covers.
    assert!(vip.evidence.contains("HTTP 400"), "{vip:?}");
    assert_eq!(
        row(&checks, "nodes.ready", "vk-worker-1").status,
        Status::Error
    );

    // The API down: api.vip fails, every node row is "not evaluated", and it ends in time.
    stand_in.stop().unwrap();
    let started = std::time::Instant::now();
    let checks = ffe_ops::verify::kubernetes(&api, &inv).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(row(&checks, "api.vip", "cluster").status, Status::Fail);
    let w = row(&checks, "nodes.ready", "vk-worker-1");
    assert_eq!(w.status, Status::Error);
    assert!(w.evidence.starts_with("not evaluated"), "{w:?}");
}

fn schema_valid(objects: &[serde_json::Value]) {
    ffe_lab::kube_api::schema_check(objects, KUBE_MINOR).unwrap_or_else(|e| panic!("{e}"));
}

//! Every key the provider writes into a node's k3s config.yaml is a flag of that node's k3s
//! command, per the k3s CLI lists vendored in upstream/k3s (read by the lab's k3s stand-in): a
//! server would skip an unknown key with a warning, an agent would refuse to start.
//! Needs no lab: it checks the rendered configs directly.

use std::collections::BTreeMap;

use ffe_core::k3s::config::{render, Join};
use ffe_core::k3s::{ClusterSpec, InstallSource, JoinSecrets, Node, Role, VersionSpec};
use ffe_lab::standin::flags::check_config_keys;
use ffe_lab::standin::Role as StandinRole;

fn spec() -> ClusterSpec {
    ClusterSpec {
        cluster_name: "ffe-prod".into(),
        servers: (0..3)
            .map(|i| Node::new(format!("m{i}"), format!("10.210.1.{}", 10 + i)))
            .collect(),
        agents: vec![Node::new("w0", "10.210.1.20")],
        version: VersionSpec::parse("v1.36").unwrap(),
        api_vip: Some("10.210.1.5".into()),
        tls_san: vec!["api.example.com".into()],
        cluster_cidr: "10.42.0.0/16".into(),
        service_cidr: "10.43.0.0/16".into(),
        install: InstallSource::Online {
            installer_url: "https://get.k3s.io".into(),
        },
        etcd_snapshot_dir: "/mnt/backups/etcd-snapshots".into(),
        etcd_snapshot_schedule: "0 */6 * * *".into(),
        etcd_snapshot_retention: 28,
        server_taints: vec!["CriticalAddonsOnly=true:NoExecute".into()],
        node_labels: BTreeMap::from([("ffe.io/cluster".into(), "ffe-prod".into())]),
        agent_parallelism: 5,
    }
}

fn keys(yaml: &str) -> Vec<String> {
    let v: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(yaml).unwrap();
    v.keys().map(|k| k.as_str().unwrap().to_string()).collect()
}

#[test]
fn every_rendered_key_is_a_flag_of_its_k3s_command() {
    let s = spec();
    let secrets = JoinSecrets {
        server: "s".into(),
        agent: "a".into(),
        ca_hash: Some("ab".repeat(32)),
    };
    let via = Join::Via(s.servers[0].address.clone());
    let cases = [
        (&s.servers[0], Role::Server, StandinRole::Server, Join::Init),
        (
            &s.servers[1],
            Role::Server,
            StandinRole::Server,
            via.clone(),
        ),
        (&s.agents[0], Role::Agent, StandinRole::Agent, via),
    ];
    for (node, role, standin_role, join) in cases {
        let text = render(&s, node, role, &secrets, &join);
        let k = keys(&text);
        assert!(k.len() > 3, "{text}");
        let warnings = check_config_keys(standin_role, k.iter().map(String::as_str))
            .unwrap_or_else(|e| panic!("k3s {role:?} on {} would not start: {e}", node.name));
        assert!(
            warnings.is_empty(),
            "k3s server on {} would skip keys: {warnings:?}",
            node.name
        );
    }
}

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
        cis_profile: true,
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

/// The CIS profile as the k3s stand-in (strict like the kubelet and API server) sees it: a server
/// whose policy files and kernel settings are in place starts; a missing policy file or one
/// kernel setting off stops it with the component's own complaint.
#[test]
fn the_cis_profile_starts_only_with_its_files_and_kernel_settings() {
    use ffe_core::host::kubelet_protected_sysctls;
    use ffe_core::k3s::config::server_policy_files;
    use ffe_lab::standin::hardening;
    use ffe_lab::standin::{HostEnv, K3sConfig, Settings};

    let s = spec();
    let secrets = JoinSecrets {
        server: "s".into(),
        agent: "a".into(),
        ca_hash: Some("ab".repeat(32)),
    };
    let root = tempfile::tempdir().unwrap();
    let host = HostEnv {
        root: root.path().to_path_buf(),
        hostname: "m0".into(),
        address: Some("10.210.1.10".into()),
        settings: Settings {
            datastore_dir: root.path().join("ds"),
            records_dir: root.path().join("rec"),
            version: "v1.36.0+k3s1".into(),
            join_hold_ms: 0,
            join_retry_ms: 0,
        },
    };
    let put = |path: &str, text: &str| {
        let p = host.path(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    // What ffe_host writes to sysctl.d, as the kernel would then report it.
    for (k, v) in kubelet_protected_sysctls() {
        put(
            &format!("/proc/sys/{}", k.replace('.', "/")),
            &format!("{v}\n"),
        );
    }
    for (path, content) in server_policy_files() {
        put(path, &content);
    }
    let server = K3sConfig::parse(&render(
        &s,
        &s.servers[0],
        Role::Server,
        &secrets,
        &Join::Init,
    ))
    .unwrap();
    let agent = K3sConfig::parse(&render(
        &s,
        &s.agents[0],
        Role::Agent,
        &secrets,
        &Join::Via(s.servers[0].address.clone()),
    ))
    .unwrap();
    assert!(!agent.other.contains_key("kube-apiserver-arg"));
    assert_eq!(
        agent.other.get("protect-kernel-defaults"),
        Some(&serde_yaml_ng::Value::Bool(true))
    );
    hardening::check(&host, StandinRole::Server, &server).expect("hardened server starts");
    hardening::check(&host, StandinRole::Agent, &agent).expect("hardened agent starts");

    put("/proc/sys/kernel/panic", "0\n");
    let e = hardening::check(&host, StandinRole::Agent, &agent)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("kernel/panic, expected value: 10, actual value: 0"),
        "{e}"
    );
    put("/proc/sys/kernel/panic", "10\n");

    std::fs::remove_file(host.path(ffe_core::k3s::config::AUDIT_POLICY_PATH)).unwrap();
    let e = hardening::check(&host, StandinRole::Server, &server)
        .unwrap_err()
        .to_string();
    assert!(e.contains("audit-policy-file"), "{e}");
    put(
        ffe_core::k3s::config::AUDIT_POLICY_PATH,
        &ffe_core::k3s::config::audit_policy(),
    );
    let text = render(&s, &s.servers[0], Role::Server, &secrets, &Join::Init);
    let typo = K3sConfig::parse(&text.replace(
        "NodeRestriction,EventRateLimit",
        "NodeRestriction,EventRateLimits",
    ))
    .unwrap();
    let e = hardening::check(&host, StandinRole::Server, &typo)
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"EventRateLimits\" is unknown"), "{e}");
    put(
        ffe_core::k3s::config::AUDIT_POLICY_PATH,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n",
    );
    let e = hardening::check(&host, StandinRole::Server, &server)
        .unwrap_err()
        .to_string();
    assert!(e.contains("0 rules"), "{e}");
    put(
        ffe_core::k3s::config::AUDIT_POLICY_PATH,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n"
            .replace("Policy", "Polcy")
            .as_str(),
    );
    let e = hardening::check(&host, StandinRole::Server, &server)
        .unwrap_err()
        .to_string();
    assert!(e.contains("expected audit.k8s.io/v1 Policy"), "{e}");
    // Without the profile neither is needed.
    let mut off = s.clone();
    off.cis_profile = false;
    let plain = K3sConfig::parse(&render(
        &off,
        &off.servers[0],
        Role::Server,
        &secrets,
        &Join::Init,
    ))
    .unwrap();
    put("/proc/sys/kernel/panic", "0\n");
    hardening::check(&host, StandinRole::Server, &plain)
        .expect("an unhardened server needs neither");
}

/// upstream/kubernetes/flags.yaml: names read from Kubernetes source (SOURCE.md there).
fn kubernetes_source() -> serde_yaml_ng::Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../upstream/kubernetes/flags.yaml");
    serde_yaml_ng::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn names<'a>(v: &'a serde_yaml_ng::Value, path: &[&str]) -> Vec<&'a str> {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_sequence()
        .unwrap_or_else(|| panic!("{path:?} missing in upstream/kubernetes/flags.yaml"))
        .iter()
        .map(|e| {
            e.get("name")
                .and_then(|n| n.as_str())
                .or(e.as_str())
                .unwrap()
        })
        .collect()
}

/// Every flag the CIS profile hands to a Kubernetes component, every admission plugin and
/// cipher suite it names, and every field of the policy files it writes exist in that
/// component's source; no flag is one upstream says has no effect; a deprecated flag is used
/// only where it still works and is named here with the reason.
#[test]
fn the_cis_profile_names_only_what_kubernetes_defines() {
    let k8s = kubernetes_source();
    let s = spec();
    let secrets = JoinSecrets {
        server: "s".into(),
        agent: "a".into(),
        ca_hash: Some("ab".repeat(32)),
    };
    // tls-cipher-suites: deprecated as a flag (config-file preferred) but parsed and applied;
    // k3s hands kubelet settings over as flags.
    let deprecated_ok = ["tls-cipher-suites"];
    let mut seen = 0;
    for (node, role) in [(&s.servers[0], Role::Server), (&s.agents[0], Role::Agent)] {
        let cfg: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&render(&s, node, role, &secrets, &Join::Init)).unwrap();
        for (key, component) in [
            ("kube-apiserver-arg", "kube-apiserver"),
            ("kube-controller-manager-arg", "kube-controller-manager"),
            ("kubelet-arg", "kubelet"),
        ] {
            let Some(args) = cfg.get(key).and_then(|v| v.as_sequence()) else {
                continue;
            };
            let defined = names(&k8s, &[component, "flags"]);
            let deprecated = names(&k8s, &[component, "deprecated"]);
            for a in args {
                let (flag, value) = a.as_str().unwrap().split_once('=').unwrap();
                seen += 1;
                assert!(defined.contains(&flag), "{component} has no flag --{flag}");
                assert!(
                    !deprecated.contains(&flag) || deprecated_ok.contains(&flag),
                    "--{flag} is deprecated in {component}"
                );
                let entry = k8s[component]["flags"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .find(|e| e["name"].as_str() == Some(flag))
                    .unwrap();
                let note = entry["config_field"]["note"].as_str().unwrap_or("");
                assert!(
                    !note.contains("no longer has any effect"),
                    "--{flag}: {note}"
                );
                if flag == "enable-admission-plugins" {
                    let plugins = names(&k8s, &["admission_plugins", "names"]);
                    for p in value.split(',') {
                        assert!(plugins.contains(&p), "no admission plugin {p}");
                    }
                }
                if flag == "tls-cipher-suites" {
                    let mut known = names(
                        &k8s,
                        &["tls_cipher_suites", "go_crypto_tls", "cipher_suites"],
                    );
                    known.extend(names(&k8s, &["tls_cipher_suites", "legacy_names"]));
                    for c in value.split(',') {
                        assert!(known.contains(&c), "unknown cipher suite {c}");
                    }
                }
            }
        }
    }
    assert!(seen >= 10, "the CIS profile wrote {seen} component flags");

    // The policy files: apiVersion/kind and every field name as the config types define them.
    let kinds = k8s["config_kinds"].as_sequence().unwrap();
    let kind_of = |v: &serde_yaml_ng::Value| -> &serde_yaml_ng::Value {
        kinds
            .iter()
            .find(|k| k["apiVersion"] == v["apiVersion"] && k["kind"] == v["kind"])
            .unwrap_or_else(|| {
                panic!(
                    "no {:?} {:?} in Kubernetes source",
                    v["apiVersion"], v["kind"]
                )
            })
    };
    let fields_ok = |v: &serde_yaml_ng::Value, allowed: &serde_yaml_ng::Value, at: &str| {
        let allowed: Vec<&str> = allowed
            .as_sequence()
            .unwrap_or_else(|| panic!("{at}"))
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        for k in v.as_mapping().unwrap().keys() {
            assert!(
                allowed.contains(&k.as_str().unwrap()),
                "{at}: unknown field {k:?}"
            );
        }
    };
    for (path, text) in ffe_core::k3s::config::server_policy_files() {
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        let k = kind_of(&v);
        fields_ok(&v, &k["fields"]["top"], path);
        if v["kind"] == "AdmissionConfiguration" {
            for p in v["plugins"].as_sequence().unwrap() {
                fields_ok(p, &k["fields"]["plugins[]"], path);
                let c = &p["configuration"];
                let ck = kind_of(c);
                fields_ok(c, &ck["fields"]["top"], path);
                match c["kind"].as_str().unwrap() {
                    "PodSecurityConfiguration" => {
                        fields_ok(&c["defaults"], &ck["fields"]["defaults"], path);
                        fields_ok(&c["exemptions"], &ck["fields"]["exemptions"], path);
                        let levels = ck["values"]["level"].as_sequence().unwrap();
                        for (mode, level) in c["defaults"].as_mapping().unwrap() {
                            if !mode.as_str().unwrap().ends_with("-version") {
                                assert!(levels.contains(level), "{mode:?}: {level:?}");
                            }
                        }
                    }
                    "Configuration" => {
                        let types = ck["values"]["limits[].type"].as_sequence().unwrap();
                        for l in c["limits"].as_sequence().unwrap() {
                            fields_ok(l, &ck["fields"]["limits[]"], path);
                            assert!(types.contains(&l["type"]), "{:?}", l["type"]);
                        }
                    }
                    other => panic!("unexpected plugin configuration {other}"),
                }
            }
        } else {
            let levels = k["values"]["level"].as_sequence().unwrap();
            let stages = k["values"]["omitStages"].as_sequence().unwrap();
            for st in v["omitStages"].as_sequence().unwrap() {
                assert!(stages.contains(st), "{st:?}");
            }
            for r in v["rules"].as_sequence().unwrap() {
                fields_ok(r, &k["fields"]["rules[]"], path);
                assert!(levels.contains(&r["level"]), "{:?}", r["level"]);
            }
        }
    }
}

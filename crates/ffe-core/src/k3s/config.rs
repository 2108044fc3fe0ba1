//! Rendering `/etc/rancher/k3s/config.yaml` for each node.
//!
//! Everything k3s is told goes through this file (never CLI flags), so one hash per node tells
//! whether a node runs what Terraform asked for. The hash leaves out how the node joins
//! ([`Join`]): k3s reads `cluster-init`/`server` only on a node's first start (later starts use
//! the node's own etcd data or the agent's saved server list), and the server to join through is
//! chosen at apply time among the live ones, so it is not drift (ADR 0015).

use serde_yaml_ng::{Mapping, Value};
use sha2::{Digest, Sha256};

use super::model::{ClusterSpec, Node, Role};
use super::token::JoinSecrets;

pub const CONFIG_PATH: &str = "/etc/rancher/k3s/config.yaml";

/// The API server's admission configuration (Pod Security defaults, EventRateLimit): CIS profile.
pub const ADMISSION_CONFIG_PATH: &str = "/var/lib/rancher/k3s/server/ffe-admission.yaml";
/// The API server's audit policy: CIS profile.
pub const AUDIT_POLICY_PATH: &str = "/var/lib/rancher/k3s/server/ffe-audit-policy.yaml";
/// The audit log; the API server rotates it itself (size, count and age below).
pub const AUDIT_LOG_PATH: &str = "/var/lib/rancher/k3s/server/logs/audit.log";
pub const AUDIT_LOG_MAX_AGE_DAYS: u32 = 30;
pub const AUDIT_LOG_MAX_BACKUPS: u32 = 10;
pub const AUDIT_LOG_MAX_SIZE_MB: u32 = 100;
/// Namespaces Pod Security Admission does not evaluate: k3s's own (kube-system) and those the
/// Calico operator creates for its node agents, which need host access and carry no labels of
/// ours. Every other namespace is `restricted` unless its own labels say otherwise (the
/// platform's namespaces carry labels: terraform/modules/namespaces).
pub const PSA_EXEMPT_NAMESPACES: &[&str] = &["kube-system", "tigera-operator", "calico-system"];
/// TLS cipher suites the kubelet offers (the k3s hardening guide's list: ECDHE, AEAD only).
pub const KUBELET_TLS_CIPHER_SUITES: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
];

/// The admission configuration file (CIS profile): Pod Security `restricted` by default with
/// the exemptions above, and EventRateLimit so no client can flood etcd with events.
pub fn admission_config() -> String {
    let exempt = PSA_EXEMPT_NAMESPACES.join(", ");
    format!(
        r#"# Managed by ffe-ha (ffe_k3s_cluster cis_profile).
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: PodSecurity
    configuration:
      apiVersion: pod-security.admission.config.k8s.io/v1
      kind: PodSecurityConfiguration
      defaults:
        enforce: restricted
        enforce-version: latest
        audit: restricted
        audit-version: latest
        warn: restricted
        warn-version: latest
      exemptions:
        usernames: []
        runtimeClasses: []
        namespaces: [{exempt}]
  - name: EventRateLimit
    configuration:
      apiVersion: eventratelimit.admission.k8s.io/v1alpha1
      kind: Configuration
      limits:
        - type: Server
          qps: 5000
          burst: 20000
        - type: Namespace
          qps: 50
          burst: 100
          cacheSize: 2000
"#
    )
}

/// The audit policy (CIS profile): who did what to which object, at `Metadata` level (never
/// request or response bodies, so no Secret value reaches the log); health probes left out.
pub fn audit_policy() -> String {
    r#"# Managed by ffe-ha (ffe_k3s_cluster cis_profile).
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages:
  - RequestReceived
rules:
  - level: None
    nonResourceURLs:
      - /healthz*
      - /livez*
      - /readyz*
      - /version
  - level: Metadata
"#
    .to_string()
}

/// The files a server's API server reads under the CIS profile, with their modes.
pub fn server_policy_files() -> Vec<(&'static str, String)> {
    vec![
        (ADMISSION_CONFIG_PATH, admission_config()),
        (AUDIT_POLICY_PATH, audit_policy()),
    ]
}

fn strs<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Value {
    Value::Sequence(items.into_iter().map(|s| Value::String(s.into())).collect())
}

/// Subject alternative names of the API certificate: the VIP, every server address, extras.
pub fn tls_sans(spec: &ClusterSpec) -> Vec<String> {
    let mut sans: Vec<String> = Vec::new();
    let candidates = spec
        .api_vip
        .iter()
        .cloned()
        .chain(spec.servers.iter().map(|s| s.address.clone()))
        .chain(spec.tls_san.iter().cloned());
    for s in candidates {
        if !sans.contains(&s) {
            sans.push(s);
        }
    }
    sans
}

/// The server's own etcd snapshot directory on the backup share. k3s creates only its default
/// directory; one given with `etcd-snapshot-dir` must exist, or every snapshot fails.
pub fn snapshot_dir(spec: &ClusterSpec, node: &Node) -> String {
    format!(
        "{}/{}",
        spec.etcd_snapshot_dir.trim_end_matches('/'),
        node.name
    )
}

/// How a node's k3s meets the cluster on its first start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Join {
    /// Initialise a new etcd cluster (`cluster-init`): only a server, only when no cluster exists.
    Init,
    /// Join through the server at this address (`server: https://ADDR:6443`).
    Via(String),
}

/// The config file for `node` in `role`, joining as `join` says.
///
/// The initialising server defines both secrets; joining servers get the server token and agents
/// the agent token, each in the secure `K10<CA hash>::` form once the CA hash is known, so they
/// verify the cluster CA before trusting the server they join. An agent always joins through a
/// server: `Join::Init` gives it no `server` line (k3s then refuses to start it).
pub fn render(
    spec: &ClusterSpec,
    node: &Node,
    role: Role,
    secrets: &JoinSecrets,
    join: &Join,
) -> String {
    let mut m = Mapping::new();
    let mut put = |k: &str, v: Value| {
        m.insert(Value::String(k.into()), v);
    };
    let init = role == Role::Server && *join == Join::Init;
    match role {
        Role::Server if init => put("token", secrets.server.clone().into()),
        Role::Server => put("token", secrets.server_join_token().into()),
        Role::Agent => put("token", secrets.agent_join_token().into()),
    }
    if role == Role::Server && secrets.has_agent_token() {
        put("agent-token", secrets.agent.clone().into());
    }
    match join {
        Join::Init if init => put("cluster-init", true.into()),
        Join::Init => {}
        Join::Via(addr) => put("server", format!("https://{addr}:6443").into()),
    }
    put("node-name", node.name.clone().into());
    put("node-ip", node.address.clone().into());
    let labels: Vec<String> = spec
        .node_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !labels.is_empty() {
        put("node-label", strs(labels));
    }
    if role == Role::Server {
        put("tls-san", strs(tls_sans(spec)));
        put("cluster-cidr", spec.cluster_cidr.clone().into());
        put("service-cidr", spec.service_cidr.clone().into());
        // Calico (rendered by the platform bundles) replaces flannel and enforces NetworkPolicy.
        put("flannel-backend", "none".into());
        put("disable-network-policy", true.into());
        // The edge is NGINX Gateway Fabric and Service IPs come from kube-vip.
        put("disable", strs(["traefik", "servicelb"]));
        put("secrets-encryption", true.into());
        put("write-kubeconfig-mode", "0600".into());
        put("etcd-expose-metrics", true.into());
        put(
            "etcd-snapshot-schedule-cron",
            spec.etcd_snapshot_schedule.clone().into(),
        );
        put(
            "etcd-snapshot-retention",
            Value::Number(spec.etcd_snapshot_retention.into()),
        );
        // One directory per server: retention prunes a directory's oldest snapshots, so servers
        // sharing one would prune each other's and keep fewer days than asked.
        put("etcd-snapshot-dir", snapshot_dir(spec, node).into());
        if !spec.server_taints.is_empty() {
            put("node-taint", strs(spec.server_taints.clone()));
        }
    }
    let mut header = String::new();
    if spec.cis_profile {
        // The k3s CIS hardening guide's settings for the pinned minors (docs/security.md).
        put("protect-kernel-defaults", true.into());
        put(
            "kubelet-arg",
            // Not streaming-connection-idle-timeout (CIS 4.2.5): it has had no effect since
            // Kubernetes v1.34 (upstream/kubernetes/flags.yaml), so writing it would only
            // pretend. tls-cipher-suites is a deprecated flag that still works (k3s passes
            // kubelet settings as flags).
            strs([format!(
                "tls-cipher-suites={}",
                KUBELET_TLS_CIPHER_SUITES.join(",")
            )]),
        );
        if role == Role::Server {
            put(
                "kube-apiserver-arg",
                strs([
                    // Replaces k3s's own default (NodeRestriction), which must stay.
                    "enable-admission-plugins=NodeRestriction,EventRateLimit".to_string(),
                    format!("admission-control-config-file={ADMISSION_CONFIG_PATH}"),
                    format!("audit-policy-file={AUDIT_POLICY_PATH}"),
                    format!("audit-log-path={AUDIT_LOG_PATH}"),
                    format!("audit-log-maxage={AUDIT_LOG_MAX_AGE_DAYS}"),
                    format!("audit-log-maxbackup={AUDIT_LOG_MAX_BACKUPS}"),
                    format!("audit-log-maxsize={AUDIT_LOG_MAX_SIZE_MB}"),
                    "service-account-extend-token-expiration=false".to_string(),
                ]),
            );
            put(
                "kube-controller-manager-arg",
                strs(["terminated-pod-gc-threshold=100"]),
            );
            // k3s reads the policy files only at start: their hash in the config makes a new
            // policy a config change, which restarts the servers one at a time.
            let files: String = server_policy_files()
                .iter()
                .map(|(p, c)| format!("{p}\n{c}"))
                .collect();
            header = format!(
                "# ffe-ha API server policy files sha256: {}\n",
                sha256_hex(files.as_bytes())
            );
        }
    }
    // A mapping of strings, numbers and booleans always serializes.
    header + &serde_yaml_ng::to_string(&Value::Mapping(m)).unwrap_or_default()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The part of a config file that drift is judged on: without the join lines (`server`,
/// `cluster-init`), and with the token reduced to its secret (`K10<CA hash>::<user>:<secret>`
/// and the bare secret mean the same cluster to k3s). [`DRIFT_VIEW_SCRIPT`] computes the same
/// on a node, so no secret has to leave it; a test keeps the two equal.
pub fn drift_view(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("server:") || line.starts_with("cluster-init:") {
            continue;
        }
        match line.strip_prefix("token:") {
            Some(value) => {
                let v = value.trim().trim_matches(['"', '\'']);
                let secret = match v.strip_prefix("K10") {
                    Some(rest) if rest.contains("::") => rest.rsplit(':').next().unwrap_or(v),
                    _ => v,
                };
                out.push_str("token: ");
                out.push_str(secret);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// sha256 of [`drift_view`]: what `node_config_sha256` records.
pub fn drift_sha256(text: &str) -> String {
    sha256_hex(drift_view(text).as_bytes())
}

/// Shell that prints [`drift_sha256`] of [`CONFIG_PATH`] on a node (nothing when it is absent).
pub const DRIFT_VIEW_SCRIPT: &str = r#"if [ -e /etc/rancher/k3s/config.yaml ]; then awk '/^(server|cluster-init):/ {next} /^token:/ {v = substr($0, 7); gsub(/^[ \t"\047]+|[ \t"\047]+$/, "", v); if (v ~ /^K10.*::/) {n = split(v, p, ":"); v = p[n]} print "token: " v; next} {print}' /etc/rancher/k3s/config.yaml | sha256sum | cut -d' ' -f1; fi"#;

#[cfg(test)]
pub(crate) mod tests_spec {
    pub(crate) use super::tests::spec;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k3s::model::{InstallSource, VersionSpec};
    use std::collections::BTreeMap;

    pub(crate) fn spec() -> ClusterSpec {
        ClusterSpec {
            cluster_name: "ffe-prod".into(),
            servers: (0..3)
                .map(|i| Node::new(format!("m{i}"), format!("10.210.1.{}", 10 + i)))
                .collect(),
            agents: (0..3)
                .map(|i| Node::new(format!("w{i}"), format!("10.210.1.{}", 20 + i)))
                .collect(),
            version: VersionSpec::parse("v1.33").unwrap(),
            api_vip: Some("10.210.1.5".into()),
            tls_san: vec!["api.example.com".into(), "10.210.1.10".into()],
            cluster_cidr: "10.42.0.0/16".into(),
            service_cidr: "10.43.0.0/16".into(),
            install: InstallSource::Online {
                installer_url: "https://get.k3s.io".into(),
            },
            etcd_snapshot_dir: "/mnt/backups/etcd-snapshots".into(),
            etcd_snapshot_schedule: "0 */6 * * *".into(),
            etcd_snapshot_retention: 120,
            server_taints: vec!["CriticalAddonsOnly=true:NoExecute".into()],
            node_labels: BTreeMap::from([("ffe.io/cluster".into(), "ffe-prod".into())]),
            agent_parallelism: 5,
            cis_profile: true,
        }
    }

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    pub(crate) fn secrets(server: &str) -> JoinSecrets {
        JoinSecrets {
            server: server.into(),
            agent: "agentsecret".into(),
            ca_hash: Some(HASH.into()),
        }
    }

    fn via() -> Join {
        Join::Via("10.210.1.10".into())
    }

    fn parse(s: &str) -> serde_yaml_ng::Value {
        serde_yaml_ng::from_str(s).unwrap()
    }

    #[test]
    fn bootstrap_server_inits_the_cluster() {
        let s = spec();
        let y = parse(&render(
            &s,
            &s.servers[0],
            Role::Server,
            &secrets("sekret"),
            &Join::Init,
        ));
        assert_eq!(y["cluster-init"], Value::Bool(true));
        assert!(y.get("server").is_none());
        // The bootstrap server defines the secrets themselves.
        assert_eq!(y["token"], Value::from("sekret"));
        assert_eq!(y["agent-token"], Value::from("agentsecret"));
        assert_eq!(y["flannel-backend"], Value::from("none"));
        assert_eq!(y["disable-network-policy"], Value::Bool(true));
        assert_eq!(y["disable"], strs(["traefik", "servicelb"]));
        assert_eq!(y["secrets-encryption"], Value::Bool(true));
        // Each server its own directory, so retention never prunes another server's snapshots.
        assert_eq!(
            y["etcd-snapshot-dir"],
            Value::from("/mnt/backups/etcd-snapshots/m0")
        );
        assert_eq!(y["etcd-snapshot-retention"], Value::from(120));
        assert_eq!(y["node-taint"], strs(["CriticalAddonsOnly=true:NoExecute"]));
        assert_eq!(y["node-label"], strs(["ffe.io/cluster=ffe-prod"]));
    }

    #[test]
    fn a_cluster_without_an_agent_token_gets_none_added() {
        let s = spec();
        let mut legacy = JoinSecrets::from_state(&format!("K10{HASH}::server:srv"), None);
        legacy.fill_missing();
        let first = parse(&render(
            &s,
            &s.servers[0],
            Role::Server,
            &legacy,
            &Join::Init,
        ));
        assert!(first.get("agent-token").is_none());
        let agent = parse(&render(&s, &s.agents[0], Role::Agent, &legacy, &via()));
        assert_eq!(agent["token"], Value::from(format!("K10{HASH}::node:srv")));
    }

    #[test]
    fn tls_san_holds_vip_and_every_server_once() {
        let s = spec();
        let y = parse(&render(
            &s,
            &s.servers[1],
            Role::Server,
            &secrets("t"),
            &via(),
        ));
        assert_eq!(
            y["tls-san"],
            strs([
                "10.210.1.5",
                "10.210.1.10",
                "10.210.1.11",
                "10.210.1.12",
                "api.example.com"
            ])
        );
    }

    #[test]
    fn joining_servers_and_agents_name_the_server_they_join_through() {
        let s = spec();
        let joiner = parse(&render(
            &s,
            &s.servers[2],
            Role::Server,
            &secrets("t"),
            &via(),
        ));
        assert_eq!(joiner["server"], Value::from("https://10.210.1.10:6443"));
        assert!(joiner.get("cluster-init").is_none());
        let agent = parse(&render(
            &s,
            &s.agents[0],
            Role::Agent,
            &secrets("t"),
            &via(),
        ));
        assert_eq!(agent["server"], Value::from("https://10.210.1.10:6443"));
        // Joiners pin the cluster CA; agents never see the server secret.
        assert_eq!(joiner["token"], Value::from(format!("K10{HASH}::server:t")));
        assert_eq!(
            agent["token"],
            Value::from(format!("K10{HASH}::node:agentsecret"))
        );
        assert_eq!(agent["node-ip"], Value::from("10.210.1.20"));
        // Server-only settings never reach agents (k3s agents reject unknown server flags).
        for key in [
            "tls-san",
            "cluster-init",
            "disable",
            "node-taint",
            "etcd-snapshot-dir",
            "agent-token",
        ] {
            assert!(
                agent.get(key).is_none(),
                "{key} leaked into an agent config"
            );
        }
    }

    #[test]
    fn rendering_is_deterministic_and_hash_tracks_content() {
        let s = spec();
        let a = render(&s, &s.agents[1], Role::Agent, &secrets("t"), &via());
        assert_eq!(
            a,
            render(&s, &s.agents[1], Role::Agent, &secrets("t"), &via())
        );
        // An agent's config follows the agent token, not the server secret it never sees.
        assert_eq!(
            a,
            render(&s, &s.agents[1], Role::Agent, &secrets("u"), &via())
        );
        let mut other_agent = secrets("t");
        other_agent.agent = "changed".into();
        assert_ne!(
            sha256_hex(a.as_bytes()),
            sha256_hex(render(&s, &s.agents[1], Role::Agent, &other_agent, &via()).as_bytes())
        );
        let srv = render(&s, &s.servers[1], Role::Server, &secrets("t"), &via());
        assert_ne!(
            srv,
            render(&s, &s.servers[1], Role::Server, &secrets("u"), &via())
        );
    }

    #[test]
    fn drift_ignores_how_a_node_joined_but_not_what_it_runs() {
        let s = spec();
        let first = &s.servers[0];
        let init = render(&s, first, Role::Server, &secrets("t"), &Join::Init);
        let joined = render(&s, first, Role::Server, &secrets("t"), &via());
        let other = render(
            &s,
            first,
            Role::Server,
            &secrets("t"),
            &Join::Via("10.210.1.12".into()),
        );
        assert_ne!(init, joined);
        assert_eq!(drift_sha256(&init), drift_sha256(&joined));
        assert_eq!(drift_sha256(&joined), drift_sha256(&other));
        // Another secret, or any other edited line, is drift.
        let rotated = render(&s, first, Role::Server, &secrets("u"), &via());
        assert_ne!(drift_sha256(&joined), drift_sha256(&rotated));
        let edited = joined.replace("10.42.0.0/16", "10.44.0.0/16");
        assert_ne!(drift_sha256(&joined), drift_sha256(&edited));
    }

    /// The node computes the drift hash with awk (the token never leaves it); Rust computes it
    /// from the rendered text. Both must agree on every form a config takes.
    #[test]
    fn the_node_side_drift_hash_equals_the_rendered_one() {
        let s = spec();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        let script = DRIFT_VIEW_SCRIPT.replace(CONFIG_PATH, &file.display().to_string());
        let cases = [
            render(&s, &s.servers[0], Role::Server, &secrets("t"), &Join::Init),
            render(&s, &s.servers[1], Role::Server, &secrets("t"), &via()),
            render(&s, &s.agents[0], Role::Agent, &secrets("t"), &via()),
            "token: 'K10abc::server:q'\nnode-name: x".to_string(),
        ];
        for text in cases {
            std::fs::write(&file, &text).unwrap();
            let out = std::process::Command::new("sh")
                .args(["-c", &script])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                drift_sha256(&text),
                "for:\n{text}"
            );
        }
        std::fs::remove_file(&file).unwrap();
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    }
}

#[cfg(test)]
mod cis_tests {
    use super::tests_spec::spec;
    use super::*;
    use crate::k3s::model::Role;

    fn secrets() -> JoinSecrets {
        JoinSecrets {
            server: "t".into(),
            agent: "a".into(),
            ca_hash: Some("ab".repeat(32)),
        }
    }

    #[test]
    fn the_policy_files_are_yaml_of_the_kinds_their_flags_name() {
        for (path, text) in server_policy_files() {
            let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
            let kind = v["kind"].as_str().unwrap();
            match path {
                ADMISSION_CONFIG_PATH => {
                    assert_eq!(kind, "AdmissionConfiguration");
                    let names: Vec<&str> = v["plugins"]
                        .as_sequence()
                        .unwrap()
                        .iter()
                        .map(|p| p["name"].as_str().unwrap())
                        .collect();
                    assert_eq!(names, ["PodSecurity", "EventRateLimit"]);
                    let exempt = &v["plugins"][0]["configuration"]["exemptions"]["namespaces"];
                    assert_eq!(
                        exempt.as_sequence().unwrap().len(),
                        PSA_EXEMPT_NAMESPACES.len()
                    );
                }
                AUDIT_POLICY_PATH => assert_eq!(kind, "Policy"),
                other => panic!("unexpected file {other}"),
            }
        }
    }

    #[test]
    fn a_policy_change_is_a_config_change_of_servers_only() {
        let s = spec();
        let server = render(
            &s,
            &s.servers[1],
            Role::Server,
            &secrets(),
            &Join::Via("x".into()),
        );
        assert!(
            server.starts_with("# ffe-ha API server policy files sha256: "),
            "{server}"
        );
        let agent = render(
            &s,
            &s.agents[0],
            Role::Agent,
            &secrets(),
            &Join::Via("x".into()),
        );
        assert!(!agent.contains("policy files"));
        let mut off = s.clone();
        off.cis_profile = false;
        let plain = render(
            &off,
            &off.servers[1],
            Role::Server,
            &secrets(),
            &Join::Via("x".into()),
        );
        for key in [
            "protect-kernel-defaults",
            "kube-apiserver-arg",
            "kubelet-arg",
            "policy files",
        ] {
            assert!(server.contains(key), "{key}");
            assert!(!plain.contains(key), "{key}");
        }
        // The header takes part in the drift hash, so a new policy rolls the servers.
        assert_ne!(
            drift_sha256(&server),
            drift_sha256(&server.replacen("sha256: ", "sha256: 0", 1))
        );
    }
}

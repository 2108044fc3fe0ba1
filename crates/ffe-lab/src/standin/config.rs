//! Parsing of `/etc/rancher/k3s/config.yaml` (the subset of k3s keys the stand-in models).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

use super::StandinError;

/// A node taint `key[=value]:Effect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taint {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub effect: String,
}

impl Taint {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (kv, effect) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("invalid taint {s:?}: expected key[=value]:Effect"))?;
        if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            return Err(format!(
                "invalid taint {s:?}: effect must be NoSchedule, PreferNoSchedule or NoExecute"
            ));
        }
        let (key, value) = match kv.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (kv, None),
        };
        if key.is_empty() {
            return Err(format!("invalid taint {s:?}: empty key"));
        }
        Ok(Taint {
            key: key.to_string(),
            value,
            effect: effect.to_string(),
        })
    }
}

/// The k3s config keys the stand-in acts on; every other key is kept in `other`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct K3sConfig {
    pub token: Option<String>,
    pub agent_token: Option<String>,
    pub cluster_init: bool,
    pub server: Option<String>,
    pub node_name: Option<String>,
    pub node_ip: Option<String>,
    pub tls_san: Vec<String>,
    pub node_labels: BTreeMap<String, String>,
    pub node_taints: Vec<Taint>,
    pub other: BTreeMap<String, Value>,
    /// Every key as written (a trailing `+` kept), in file order: what k3s turns into flags.
    pub keys: Vec<String>,
}

fn bad(msg: impl Into<String>) -> StandinError {
    StandinError::failed(
        1,
        format!(
            "k3s stand-in: invalid /etc/rancher/k3s/config.yaml: {}",
            msg.into()
        ),
    )
}

fn scalar(key: &str, v: &Value) -> Result<String, StandinError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(bad(format!("{key}: expected a string"))),
    }
}

/// k3s accepts a list or a single (comma-separated for some keys) string for slice flags.
fn list(key: &str, v: &Value) -> Result<Vec<String>, StandinError> {
    match v {
        Value::Sequence(items) => items.iter().map(|i| scalar(key, i)).collect(),
        Value::Null => Ok(Vec::new()),
        other => Ok(scalar(key, other)?
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()),
    }
}

impl K3sConfig {
    /// Parse config.yaml text. An empty file is an empty config.
    pub fn parse(text: &str) -> Result<Self, StandinError> {
        if text.trim().is_empty() {
            return Ok(K3sConfig::default());
        }
        let value: Value = serde_yaml_ng::from_str(text).map_err(|e| bad(e.to_string()))?;
        let map = match value {
            Value::Mapping(m) => m,
            Value::Null => return Ok(K3sConfig::default()),
            _ => return Err(bad("top level must be a mapping of k3s flags")),
        };
        let mut cfg = K3sConfig::default();
        for (k, v) in map {
            let key = match k {
                Value::String(s) => s,
                _ => return Err(bad("keys must be strings")),
            };
            cfg.keys.push(key.clone());
            // k3s allows a trailing "+" to append to a value from another file; treat as same key.
            let name = key.trim_end_matches('+');
            match name {
                "token" => cfg.token = Some(scalar(name, &v)?),
                "agent-token" => cfg.agent_token = Some(scalar(name, &v)?),
                "cluster-init" => {
                    cfg.cluster_init = match v {
                        Value::Bool(b) => b,
                        Value::String(ref s) if s == "true" => true,
                        Value::String(ref s) if s == "false" => false,
                        _ => return Err(bad("cluster-init: expected true or false")),
                    }
                }
                "server" => cfg.server = Some(scalar(name, &v)?),
                "node-name" => cfg.node_name = Some(scalar(name, &v)?),
                "node-ip" => cfg.node_ip = list(name, &v)?.into_iter().next(),
                "tls-san" => cfg.tls_san.extend(list(name, &v)?),
                "node-label" => {
                    for l in list(name, &v)? {
                        let (lk, lv) = l
                            .split_once('=')
                            .ok_or_else(|| bad(format!("node-label {l:?}: expected key=value")))?;
                        cfg.node_labels.insert(lk.to_string(), lv.to_string());
                    }
                }
                "node-taint" => {
                    for t in list(name, &v)? {
                        cfg.node_taints.push(Taint::parse(&t).map_err(bad)?);
                    }
                }
                _ => {
                    cfg.other.insert(name.to_string(), v);
                }
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_keys_lists_and_scalars() {
        let cfg = K3sConfig::parse(
            "token: abc\ncluster-init: true\nnode-name: s1\nnode-ip: 10.210.1.11\n\
             tls-san: [10.210.1.100, api.example]\nnode-label:\n  - zone=a\n  - tier=ctl\n\
             node-taint: CriticalAddonsOnly=true:NoExecute\nflannel-backend: none\n",
        )
        .unwrap();
        assert_eq!(cfg.token.as_deref(), Some("abc"));
        assert!(cfg.cluster_init);
        assert_eq!(cfg.node_name.as_deref(), Some("s1"));
        assert_eq!(cfg.node_ip.as_deref(), Some("10.210.1.11"));
        assert_eq!(cfg.tls_san, vec!["10.210.1.100", "api.example"]);
        assert_eq!(cfg.node_labels.get("tier").map(String::as_str), Some("ctl"));
        assert_eq!(
            cfg.node_taints,
            vec![Taint {
                key: "CriticalAddonsOnly".into(),
                value: Some("true".into()),
                effect: "NoExecute".into()
            }]
        );
        assert!(cfg.other.contains_key("flannel-backend"));
    }

    #[test]
    fn rejects_garbage() {
        assert!(K3sConfig::parse("token: [unclosed").is_err());
        assert!(K3sConfig::parse("- just\n- a list\n").is_err());
        assert!(K3sConfig::parse("cluster-init: maybe\n").is_err());
        assert!(K3sConfig::parse("node-label: novalue\n").is_err());
        assert!(K3sConfig::parse("node-taint: a=b:Sometimes\n").is_err());
    }

    #[test]
    fn empty_is_default() {
        assert_eq!(K3sConfig::parse("").unwrap(), K3sConfig::default());
        assert_eq!(
            K3sConfig::parse("# only a comment\n").unwrap(),
            K3sConfig::default()
        );
    }

    #[test]
    fn taint_without_value() {
        let t = Taint::parse("dedicated:NoSchedule").unwrap();
        assert_eq!(t.value, None);
        assert_eq!(t.key, "dedicated");
    }
}

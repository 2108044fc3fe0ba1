//! k3s's embedded etcd, read through etcd's own v3 JSON API on each server (no pod exec, no
//! etcd client library: `etcd-client` needs `protoc`).
//!
//! Facts from upstream (docs/operations.md cites them):
//! - k3s serves etcd's HTTP API (the gRPC gateway, `/v3/...`) only on `https://127.0.0.1:2382`
//!   (`listen-client-http-urls`, k3s `pkg/etcd/etcd.go`, since k3s PR #8402); port 2379 speaks
//!   gRPC only. The gateway is on by default (etcd `embed.NewConfig`: `EnableGRPCGateway: true`).
//! - k3s's own etcd client uses `server/tls/etcd/{server-ca.crt,client.crt,client.key}` under
//!   `/var/lib/rancher/k3s` (k3s `pkg/daemons/control/deps`); the files are root-only.
//! - The gateway marshals with proto field names and omits zero values: `header.member_id`,
//!   `leader`, `raftIndex`, `isLearner`, `ID`; 64-bit integers are JSON strings (etcd
//!   `server/embed/serve.go`, `api/etcdserverpb/rpc.proto`).
//! - k3s names a member `<node name>-<8 hex digits>`.

use serde::Deserialize;

use crate::shell::quote;

/// Where k3s's etcd serves its HTTP API.
pub const K3S_GATEWAY_URL: &str = "https://127.0.0.1:2382";
/// The client credentials k3s itself uses for its etcd.
pub const K3S_ETCD_CA: &str = "/var/lib/rancher/k3s/server/tls/etcd/server-ca.crt";
pub const K3S_ETCD_CLIENT_CERT: &str = "/var/lib/rancher/k3s/server/tls/etcd/client.crt";
pub const K3S_ETCD_CLIENT_KEY: &str = "/var/lib/rancher/k3s/server/tls/etcd/client.key";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EtcdProbeError {
    #[error("etcd {call} did not answer: {detail}")]
    NoAnswer { call: &'static str, detail: String },
    #[error("etcd {call} answered something that is not its JSON: {detail}")]
    BadAnswer { call: &'static str, detail: String },
}

/// `POST /v3/maintenance/status`: the answering member's view.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub header: Header,
    #[serde(default)]
    pub version: String,
    /// Member id of the leader this member follows (a string: uint64 in JSON).
    #[serde(default)]
    pub leader: String,
    #[serde(default, rename = "raftIndex")]
    pub raft_index: String,
    #[serde(default, rename = "raftTerm")]
    pub raft_term: String,
    #[serde(default, rename = "dbSize")]
    pub db_size: String,
    #[serde(default)]
    pub errors: Vec<String>,
    #[serde(default, rename = "isLearner")]
    pub is_learner: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Header {
    #[serde(default)]
    pub cluster_id: String,
    #[serde(default)]
    pub member_id: String,
}

/// One entry of `POST /v3/cluster/member/list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Member {
    #[serde(default, rename = "ID")]
    pub id: String,
    /// Empty for a member that was added but has not started.
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "isLearner")]
    pub is_learner: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
struct MemberList {
    #[serde(default)]
    members: Vec<Member>,
}

/// One entry of `POST /v3/maintenance/alarm` (`NOSPACE`, `CORRUPT`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Alarm {
    #[serde(default, rename = "memberID")]
    pub member_id: String,
    #[serde(default)]
    pub alarm: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
struct AlarmList {
    #[serde(default)]
    alarms: Vec<Alarm>,
}

/// What one server's etcd member says about itself and the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub status: Status,
    pub members: Vec<Member>,
    pub alarms: Vec<Alarm>,
}

/// Where and how to reach a server's etcd from that server itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    pub ca: String,
    pub cert: String,
    pub key: String,
}

impl Default for Endpoint {
    /// k3s's own layout.
    fn default() -> Self {
        Self {
            url: K3S_GATEWAY_URL.into(),
            ca: K3S_ETCD_CA.into(),
            cert: K3S_ETCD_CLIENT_CERT.into(),
            key: K3S_ETCD_CLIENT_KEY.into(),
        }
    }
}

const CALLS: [(&str, &str, &str); 3] = [
    ("status", "/v3/maintenance/status", "{}"),
    ("members", "/v3/cluster/member/list", "{}"),
    ("alarms", "/v3/maintenance/alarm", r#"{"action":"GET"}"#),
];

/// Shell that asks the local member for its status, the member list and the alarms (each call
/// bounded by `secs`), printing `<call> <exit> <one-line JSON>` per call. Runs as root on the
/// server: the client key is root-only and never leaves the node.
pub fn probe_script(ep: &Endpoint, secs: u64) -> String {
    let mut s = String::new();
    for (call, path, body) in CALLS {
        s.push_str(&format!(
            "out=$(curl -sS --max-time {secs} --cacert {ca} --cert {cert} --key {key} -X POST -H 'Content-Type: application/json' -d {body} {url} 2>&1); rc=$?; printf '%s %s %s\\n' {call} \"$rc\" \"$(printf '%s' \"$out\" | tr '\\n' ' ')\"\n",
            ca = quote(&ep.ca),
            cert = quote(&ep.cert),
            key = quote(&ep.key),
            body = quote(body),
            url = quote(&format!("{}{path}", ep.url.trim_end_matches('/'))),
        ));
    }
    s
}

/// Parse [`probe_script`]'s output.
pub fn parse_probe(out: &str) -> Result<MemberView, EtcdProbeError> {
    let line = |call: &'static str| -> Result<&str, EtcdProbeError> {
        let rest = out
            .lines()
            .find_map(|l| l.strip_prefix(call).and_then(|r| r.strip_prefix(' ')))
            .ok_or_else(|| EtcdProbeError::NoAnswer {
                call,
                detail: "no output".into(),
            })?;
        let (code, body) = rest.split_once(' ').unwrap_or((rest, ""));
        if code != "0" {
            return Err(EtcdProbeError::NoAnswer {
                call,
                detail: format!("curl exit {code}: {}", body.trim()),
            });
        }
        Ok(body)
    };
    fn json<T: serde::de::DeserializeOwned>(
        call: &'static str,
        body: &str,
    ) -> Result<T, EtcdProbeError> {
        // An error from the gateway is JSON too, with `code`/`message` (e.g. an unknown path).
        if let Ok(e) = serde_json::from_str::<GatewayError>(body) {
            if !e.message.is_empty() {
                return Err(EtcdProbeError::BadAnswer {
                    call,
                    detail: e.message,
                });
            }
        }
        serde_json::from_str(body).map_err(|e| EtcdProbeError::BadAnswer {
            call,
            detail: format!("{e}: {}", crate::ssh::tail(body, 1)),
        })
    }
    let status: Status = json("status", line("status")?)?;
    let members: MemberList = json("members", line("members")?)?;
    let alarms: AlarmList = json("alarms", line("alarms")?)?;
    Ok(MemberView {
        status,
        members: members.members,
        alarms: alarms.alarms,
    })
}

#[derive(Debug, Default, Deserialize)]
struct GatewayError {
    #[serde(default)]
    message: String,
}

/// The node a k3s etcd member belongs to: its name without the `-<8 hex>` suffix k3s adds.
pub fn node_of_member(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((node, suffix))
            if suffix.len() == 8 && suffix.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            node
        }
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_map_to_nodes_as_k3s_names_them() {
        assert_eq!(
            node_of_member("ffe-prod-master-0-1a2b3c4d"),
            "ffe-prod-master-0"
        );
        assert_eq!(node_of_member("ffe-prod-master-0"), "ffe-prod-master-0");
        assert_eq!(node_of_member("m-0-xyz12345"), "m-0-xyz12345");
    }

    #[test]
    fn a_failed_call_names_the_call_and_curls_error() {
        let out = "status 7 curl: (7) Failed to connect to 127.0.0.1 port 2382: Connection refused \nmembers 7 x\nalarms 7 x\n";
        let e = parse_probe(out).unwrap_err();
        assert_eq!(
            e,
            EtcdProbeError::NoAnswer {
                call: "status",
                detail: "curl exit 7: curl: (7) Failed to connect to 127.0.0.1 port 2382: Connection refused".into()
            }
        );
    }

    #[test]
    fn the_script_quotes_every_value() {
        let s = probe_script(
            &Endpoint {
                url: "https://127.0.0.1:2382/".into(),
                ca: "/a b/ca.crt".into(),
                ..Endpoint::default()
            },
            2,
        );
        assert!(s.contains("--cacert '/a b/ca.crt'"), "{s}");
        assert!(
            s.contains("https://127.0.0.1:2382/v3/maintenance/status"),
            "{s}"
        );
        assert!(s.contains(r#"-d '{"action":"GET"}'"#), "{s}");
    }
}

//! What `ffe-ha verify` reads of the Postgres layer without credentials: Patroni's `GET /patroni`
//! and `GET /cluster` (no authentication on safe endpoints; `verify_client: optional` in the
//! Percona pods), read from the pod's own node (NetworkPolicy always admits the pod's node), and the
//! PostgreSQL wire protocol's SSLRequest, which every PostgreSQL server and PgBouncer answers
//! with one byte before any login.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// SSLRequest: length 8, code 80877103 (PostgreSQL protocol, "SSLRequest").
pub const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// How far behind the leader a member is, as Patroni reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lag {
    Bytes(u64),
    /// Patroni's `"unknown"`: the member's position is not known.
    Unknown,
    /// No `lag` key (the leader).
    NotReported,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatroniMember {
    pub name: String,
    /// `leader`, `standby_leader`, `sync_standby`, `quorum_standby`, `replica` (Patroni 4);
    /// `master` on Patroni < 4 is read as `leader`.
    pub role: String,
    /// `running`, `streaming`, `in archive recovery`, `stopped`, ...
    pub state: String,
    pub host: String,
    pub timeline: Option<u64>,
    pub lag: Lag,
}

impl PatroniMember {
    pub fn is_leader(&self) -> bool {
        self.role == "leader" || self.role == "standby_leader"
    }

    pub fn is_sync(&self) -> bool {
        self.role == "sync_standby" || self.role == "quorum_standby"
    }

    /// Replicating from the leader. Patroni ≥ 3.0.4 reports the replication state (`streaming`;
    /// a replica that is merely `running` there has no WAL receiver); older Patroni reports only
    /// the server state, `running` (utils.py `cluster_as_json`, v3.0.2 and v3.0.4).
    pub fn is_streaming(&self, reports_replication_state: bool) -> bool {
        !self.is_leader()
            && (self.state == "streaming"
                || (!reports_replication_state && self.state == "running"))
    }
}

/// Parse Patroni's `GET /cluster` body (patroni/utils.py `cluster_as_json`).
pub fn parse_cluster(body: &str) -> Result<Vec<PatroniMember>, String> {
    let v: Value =
        serde_json::from_str(body).map_err(|e| format!("not Patroni's /cluster JSON: {e}"))?;
    let members = v["members"]
        .as_array()
        .ok_or("not Patroni's /cluster JSON: no members array")?;
    Ok(members
        .iter()
        .map(|m| {
            let role = m["role"].as_str().unwrap_or_default();
            PatroniMember {
                name: m["name"].as_str().unwrap_or_default().to_string(),
                role: if role == "master" { "leader" } else { role }.to_string(),
                state: m["state"].as_str().unwrap_or_default().to_string(),
                host: m["host"].as_str().unwrap_or_default().to_string(),
                timeline: m["timeline"].as_u64(),
                lag: match &m["lag"] {
                    Value::Number(n) => n.as_u64().map(Lag::Bytes).unwrap_or(Lag::Unknown),
                    Value::Null => Lag::NotReported,
                    _ => Lag::Unknown,
                },
            }
        })
        .collect())
}

/// What one node read of a Patroni member: its version (`GET /patroni`) and the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatroniRead {
    /// `(major, minor, patch)`; `None` when `/patroni` did not say.
    pub version: Option<(u32, u32, u32)>,
    pub members: Vec<PatroniMember>,
}

impl PatroniRead {
    /// Patroni 3.0.4 added the replication state to `/cluster`; unknown versions are taken
    /// as new (the stricter reading).
    pub fn reports_replication_state(&self) -> bool {
        self.version.is_none_or(|v| v >= (3, 0, 4))
    }

    pub fn version_text(&self) -> String {
        self.version
            .map_or("?".into(), |(a, b, c)| format!("{a}.{b}.{c}"))
    }
}

/// Shell for a node: `GET /patroni` and `GET /cluster` of the member at `addr` (the pod's IP and
/// Patroni's port), each after a marker line. `-k`: the pod's certificate is issued by the
/// cluster's own CA for the pod's names, and these reads send no credentials.
pub fn patroni_read_script(scheme: &str, addr: std::net::SocketAddr, secs: u64) -> String {
    let base = crate::shell::quote(&format!("{scheme}://{addr}"));
    format!(
        "for p in patroni cluster; do echo \"@@ $p\"; curl -sS -k --max-time {secs} {base}/$p; echo; done"
    )
}

/// Parse the output of [`patroni_read_script`].
pub fn parse_patroni_read(out: &str) -> Result<PatroniRead, String> {
    let section = |name: &str| -> Option<String> {
        let start = out.find(&format!("@@ {name}\n"))? + name.len() + 4;
        let rest = &out[start..];
        Some(
            rest[..rest.find("@@ ").unwrap_or(rest.len())]
                .trim()
                .to_string(),
        )
    };
    let version = section("patroni")
        .and_then(|b| serde_json::from_str::<Value>(&b).ok())
        .and_then(|v| v["patroni"]["version"].as_str().map(str::to_string))
        .and_then(|v| {
            let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
            Some((it.next()??, it.next()??, it.next().flatten().unwrap_or(0)))
        });
    let cluster = section("cluster").ok_or("no answer from Patroni's /cluster")?;
    Ok(PatroniRead {
        version,
        members: parse_cluster(&cluster)?,
    })
}

/// Send an SSLRequest to `addr` (host:port) and return the server's one-byte answer: `S` (TLS
/// offered) or `N` (plain only). Anything else is not a PostgreSQL server.
pub async fn ssl_request(addr: &str, limit: Duration) -> Result<char, String> {
    let talk = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        s.write_all(&SSL_REQUEST)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b)
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        Ok::<u8, String>(b[0])
    };
    let byte = tokio::time::timeout(limit, talk)
        .await
        .map_err(|_| format!("no answer within {} s", limit.as_secs()))??;
    judge_ssl_answer(&[byte])
}

/// The role a connection probe names: no such role exists, so the probe never logs in.
pub const PROBE_ROLE: &str = "ffe_ha_probe";

/// Whether the server at `addr` accepts connections now: a protocol 3.0 StartupMessage for
/// [`PROBE_ROLE`], judged on the first message back ([`judge_startup_answer`]). Unlike the
/// SSLRequest, this tells a postmaster that is starting up or shutting down (it answers the
/// SSLRequest but refuses every session) from one that serves. No credentials are sent.
pub async fn accepts_connections(addr: &str, limit: Duration) -> Result<(), String> {
    let talk = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut body = Vec::new();
        body.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
        for (k, v) in [
            ("user", PROBE_ROLE),
            ("database", "postgres"),
            ("application_name", "ffe-ha drill"),
        ] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        msg.extend_from_slice(&body);
        s.write_all(&msg).await.map_err(|e| format!("send: {e}"))?;
        let mut head = [0u8; 5];
        s.read_exact(&mut head)
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut rest = vec![0u8; len.saturating_sub(4).min(4096)];
        s.read_exact(&mut rest)
            .await
            .map_err(|e| format!("short answer: {e}"))?;
        let mut all = head.to_vec();
        all.extend_from_slice(&rest);
        Ok::<Vec<u8>, String>(all)
    };
    let answer = tokio::time::timeout(limit, talk)
        .await
        .map_err(|_| format!("no answer within {} ms", limit.as_millis()))??;
    judge_startup_answer(&answer)
}

/// The first message a server sends after a StartupMessage: an authentication request (`R`),
/// or a refusal of the role, database or pg_hba entry (SQLSTATE class 28, 3D), means it serves
/// sessions; "starting up", "shutting down", "in recovery mode" (57P03) or any other error
/// means clients are turned away.
pub fn judge_startup_answer(msg: &[u8]) -> Result<(), String> {
    match msg.first() {
        Some(b'R') | Some(b'v') => Ok(()),
        Some(b'E') => {
            let (mut code, mut text) = (String::new(), String::new());
            for field in msg.get(5..).unwrap_or_default().split(|b| *b == 0) {
                match field.split_first() {
                    Some((b'C', v)) => code = String::from_utf8_lossy(v).into_owned(),
                    Some((b'M', v)) => text = String::from_utf8_lossy(v).into_owned(),
                    _ => {}
                }
            }
            if code.starts_with("28") || code.starts_with("3D") {
                Ok(())
            } else {
                Err(format!("refused sessions: {text} ({code})"))
            }
        }
        Some(b) => Err(format!("answered {b:#04x}, not a PostgreSQL server")),
        None => Err("closed the connection without answering".into()),
    }
}

/// The same from a node (the ClusterIP of a Service only answers inside the cluster): a bash
/// script printing the answer byte, bounded by `secs`. An address, never a name: it is part of
/// the inner script.
pub fn ssl_request_script(addr: std::net::SocketAddr, secs: u64) -> String {
    format!(
        "timeout {secs} bash -c 'exec 3<>/dev/tcp/{}/{} && printf \"\\000\\000\\000\\010\\004\\322\\026\\057\" >&3 && head -c1 <&3'",
        addr.ip(),
        addr.port()
    )
}

/// `S` or `N`: a PostgreSQL server (or PgBouncer) answered.
pub fn judge_ssl_answer(out: &[u8]) -> Result<char, String> {
    match out.first() {
        Some(b'S') => Ok('S'),
        Some(b'N') => Ok('N'),
        Some(b) => Err(format!(
            "answered {b:#04x}, not a PostgreSQL SSLRequest reply"
        )),
        None => Err("closed the connection without answering".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_response(fields: &[(u8, &str)]) -> Vec<u8> {
        let mut body = vec![];
        for (t, v) in fields {
            body.push(*t);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut m = vec![b'E'];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn startup_answers_tell_serving_from_turning_away() {
        // AuthenticationSASL (scram): serving.
        assert!(judge_startup_answer(b"R\0\0\0\x17\0\0\0\x0aSCRAM-SHA-256\0\0").is_ok());
        // The probe role does not exist / no pg_hba entry: still serving.
        assert!(judge_startup_answer(&error_response(&[
            (b'S', "FATAL"),
            (b'C', "28000"),
            (b'M', "role \"ffe_ha_probe\" does not exist")
        ]))
        .is_ok());
        let e = judge_startup_answer(&error_response(&[
            (b'S', "FATAL"),
            (b'C', "57P03"),
            (b'M', "the database system is shutting down"),
        ]))
        .unwrap_err();
        assert!(e.contains("shutting down") && e.contains("57P03"), "{e}");
        assert!(judge_startup_answer(&error_response(&[
            (b'C', "53300"),
            (b'M', "too many connections")
        ]))
        .is_err());
        assert!(judge_startup_answer(b"").is_err());
        assert!(judge_startup_answer(b"N").is_err());
    }

    #[test]
    fn patroni_4_and_3_cluster_bodies_parse() {
        // Shapes from patroni/utils.py cluster_as_json (v4.1.4; v3.0.2 has only `lag`).
        let body = r#"{"members":[
            {"name":"ffe-pg-db-a-0","role":"leader","state":"running","api_url":"https://10.42.1.5:8008/patroni","host":"10.42.1.5","port":5432,"timeline":3},
            {"name":"ffe-pg-db-b-0","role":"sync_standby","state":"streaming","host":"10.42.2.5","port":5432,"timeline":3,"lag":0,"lsn":"0/5000000"},
            {"name":"ffe-pg-db-c-0","role":"replica","state":"running","host":"10.42.3.5","port":5432,"timeline":3,"lag":"unknown"},
            {"name":"old","role":"master","state":"running","host":"h","port":5432}
        ],"scope":"ffe-pg-ha"}"#;
        let m = parse_cluster(body).unwrap();
        assert!(m[0].is_leader() && m[0].lag == Lag::NotReported && m[0].timeline == Some(3));
        assert!(m[1].is_sync() && m[1].is_streaming(true) && m[1].lag == Lag::Bytes(0));
        // `running` is streaming only where Patroni does not report the replication state.
        assert!(!m[2].is_streaming(true) && m[2].is_streaming(false) && m[2].lag == Lag::Unknown);
        assert!(m[3].is_leader());
        assert!(parse_cluster("{}").is_err());
    }

    #[test]
    fn a_patroni_read_gives_version_and_members() {
        let out = "@@ patroni\n{\"state\":\"running\",\"role\":\"replica\",\"patroni\":{\"version\":\"3.0.2\",\"scope\":\"s\"}}\n@@ cluster\n{\"members\":[{\"name\":\"a\",\"role\":\"leader\",\"state\":\"running\"}]}\n";
        let r = parse_patroni_read(out).unwrap();
        assert_eq!(r.version, Some((3, 0, 2)));
        assert!(!r.reports_replication_state());
        assert_eq!(r.members.len(), 1);
        let no_version =
            parse_patroni_read("@@ patroni\ncurl: (7) refused\n@@ cluster\n{\"members\":[]}\n")
                .unwrap();
        assert!(no_version.version.is_none() && no_version.reports_replication_state());
        assert!(parse_patroni_read("@@ patroni\n@@ cluster\ncurl: (28) timeout\n").is_err());
        let script = patroni_read_script("https", "10.42.1.5:8008".parse().unwrap(), 2);
        assert!(script.contains(" https://10.42.1.5:8008/$p;"), "{script}");
    }

    #[test]
    fn ssl_answers() {
        assert_eq!(judge_ssl_answer(b"S"), Ok('S'));
        assert_eq!(judge_ssl_answer(b"N"), Ok('N'));
        assert!(judge_ssl_answer(b"H").is_err());
        assert!(judge_ssl_answer(b"").is_err());
    }

    #[test]
    fn the_script_sends_the_same_bytes() {
        // printf's octal escapes must be exactly SSL_REQUEST.
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg("printf \"\\000\\000\\000\\010\\004\\322\\026\\057\"")
            .output()
            .unwrap();
        assert_eq!(out.stdout, SSL_REQUEST);
        let addr = "10.43.0.10:5432".parse().unwrap();
        assert!(ssl_request_script(addr, 3).contains("exec 3<>/dev/tcp/10.43.0.10/5432 &&"));
    }
}

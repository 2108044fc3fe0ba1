//! The Postgres checks of `verify`: Patroni's own view of the cluster (read over SSH on each
//! instance pod's own node, which NetworkPolicy always admits; ADR 0012), the primary
//! endpoint and PgBouncer answering the PostgreSQL protocol. No credentials are used: the app
//! role's password never leaves the cluster.

use std::time::Duration;

use ffe_core::kube::KubeApi;
use ffe_core::pg::{self, Lag, PatroniMember, PatroniRead};
use ffe_core::ssh::SshPool;
use serde_json::Value;

use crate::check::{Check, Status};
use crate::inventory::{Inventory, PostgresSection, Role};

pub const POSTGRES_CHECK_IDS: &[&str] = &[
    "postgres.primary",
    "postgres.replicas",
    "postgres.endpoint",
    "pgbouncer.answering",
];

/// Labels of the operator's instance pods (Percona operator v3.0.0, the Crunchy labels): the
/// cluster, and `data=postgres`, which repo-host (`data=pgbackrest`), PgBouncer and backup-job
/// pods do not carry.
pub const LABEL_CLUSTER: &str = "postgres-operator.crunchydata.com/cluster";
pub const LABEL_DATA: &str = "postgres-operator.crunchydata.com/data";

const PROBE_LIMIT: Duration = Duration::from_secs(3);

/// A running instance pod: where it runs and its address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InstancePod {
    name: String,
    node: String,
    ip: std::net::IpAddr,
}

/// Running instance pods of the cluster (the API server ignores nothing of the selector, and
/// neither does this filter: a stand-in or an older server that ignores it changes nothing).
fn instance_pods(list: &str, pg: &PostgresSection) -> Result<Vec<InstancePod>, String> {
    let v: Value = serde_json::from_str(list).map_err(|e| format!("bad PodList: {e}"))?;
    let items = v["items"].as_array().ok_or("PodList has no items")?;
    Ok(items
        .iter()
        .filter(|p| {
            let l = &p["metadata"]["labels"];
            l[LABEL_CLUSTER] == pg.cluster.as_str()
                && l[LABEL_DATA] == "postgres"
                && p["status"]["phase"] == "Running"
        })
        .filter_map(|p| {
            Some(InstancePod {
                name: p["metadata"]["name"].as_str()?.to_string(),
                node: p["spec"]["nodeName"].as_str()?.to_string(),
                ip: p["status"]["podIP"].as_str()?.parse().ok()?,
            })
        })
        .collect())
}

/// Patroni's version and `/cluster` from the first instance pod that answers, read over SSH on
/// the pod's own node: NetworkPolicy always admits a pod's node, so no policy opens 8008.
pub(crate) async fn patroni_view(
    api: &KubeApi,
    pool: &SshPool,
    inv: &Inventory,
    pg: &PostgresSection,
) -> Result<(String, PatroniRead), String> {
    let pods = running_instance_pods(api, pg).await?;
    let mut failures = vec![];
    for pod in &pods {
        match read_pod(pool, inv, pg, pod).await {
            Ok(r) => return Ok((format!("{} on {}", pod.name, pod.node), r)),
            Err(e) => failures.push(e),
        }
    }
    Err(format!("no Patroni answered: {}", failures.join("; ")))
}

/// Whether the Patroni of every instance pod on `node` answers itself (a restarted node's
/// members are back, not only listed from before). `Ok(None)`: all answered; `Some(why)`: not.
pub(crate) async fn patroni_back_on(
    api: &KubeApi,
    pool: &SshPool,
    inv: &Inventory,
    pg: &PostgresSection,
    node: &str,
) -> Result<Option<String>, String> {
    let pods = running_instance_pods(api, pg).await.or_else(|e| {
        // Every pod of the cluster not running is no error here: the node's pods are not back.
        if e.starts_with("no running instance pod") {
            Ok(vec![])
        } else {
            Err(e)
        }
    })?;
    for pod in pods.iter().filter(|p| p.node == node) {
        if let Err(e) = read_pod(pool, inv, pg, pod).await {
            return Ok(Some(e));
        }
    }
    Ok(None)
}

async fn running_instance_pods(
    api: &KubeApi,
    pg: &PostgresSection,
) -> Result<Vec<InstancePod>, String> {
    let ns = &pg.namespace;
    let list = api
        .get(&format!(
            "/api/v1/namespaces/{ns}/pods?labelSelector={LABEL_CLUSTER}%3D{},{LABEL_DATA}%3Dpostgres",
            pg.cluster
        ))
        .await
        .map_err(|e| e.to_string())?;
    let pods = instance_pods(&list, pg)?;
    if pods.is_empty() {
        return Err(format!(
            "no running instance pod of cluster {} in namespace {ns}",
            pg.cluster
        ));
    }
    Ok(pods)
}

/// Patroni's version and `/cluster` as `pod` answers them, read over SSH on its node.
async fn read_pod(
    pool: &SshPool,
    inv: &Inventory,
    pg: &PostgresSection,
    pod: &InstancePod,
) -> Result<PatroniRead, String> {
    let Some(node) = inv.nodes.iter().find(|n| n.name == pod.node) else {
        return Err(format!(
            "{} runs on {}, a node the inventory does not have",
            pod.name, pod.node
        ));
    };
    let script = pg::patroni_read_script(
        &pg.patroni_scheme,
        std::net::SocketAddr::new(pod.ip, pg.patroni_port),
        PROBE_LIMIT.as_secs(),
    );
    // two bounded GETs and the SSH round trip
    let limit = PROBE_LIMIT * 2 + Duration::from_secs(3);
    let ran = tokio::time::timeout(
        limit + inv.ssh.connect_timeout + Duration::from_secs(2),
        pool.run_within(&node.target(), "read Patroni", &script, limit),
    )
    .await;
    match ran {
        Ok(Ok(out)) => pg::parse_patroni_read(&out).map_err(|e| format!("{}: {e}", pod.name)),
        Ok(Err(e)) => Err(format!("{}: {e}", pod.name)),
        Err(_) => Err(format!(
            "{}: no answer over SSH from {}",
            pod.name, pod.node
        )),
    }
}

/// The verdicts from Patroni's member list (`asked`: the pod that answered).
pub fn judge_patroni(pg: &PostgresSection, asked: &str, read: &PatroniRead) -> Vec<Check> {
    let members = &read.members;
    let replication_state = read.reports_replication_state();
    let mut checks = vec![];
    let leaders: Vec<&PatroniMember> = members.iter().filter(|m| m.is_leader()).collect();
    checks.push(match leaders.as_slice() {
        [l] if l.state == "running" => Check::new(
            "postgres.primary",
            "cluster",
            Status::Pass,
            format!(
                "leader {} running on timeline {} (Patroni {} of {asked})",
                l.name,
                l.timeline.map_or("?".into(), |t| t.to_string()),
                read.version_text()
            ),
        ),
        [l] => Check::new(
            "postgres.primary",
            "cluster",
            Status::Fail,
            format!("leader {} is {:?}, not running", l.name, l.state),
        )
        .hint("The primary is starting, restarting or crashed: `kubectl -n ffe-data logs <pod> -c database`; Patroni fails over when the leader lease expires"),
        [] => Check::new(
            "postgres.primary",
            "cluster",
            Status::Fail,
            format!("no leader among {} members: no writes are possible", members.len()),
        )
        .hint("A failover is in progress, or no replica is eligible (lag over maximum_lag_on_failover, or none streaming): see docs/postgres.md"),
        many => Check::new(
            "postgres.primary",
            "cluster",
            Status::Fail,
            format!(
                "{} leaders: {}",
                many.len(),
                many.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        ),
    });
    let mut streaming = 0;
    let mut sync = vec![];
    for m in members.iter().filter(|m| !m.is_leader()) {
        let lag = match &m.lag {
            Lag::Bytes(b) => format!("lag {b} bytes"),
            Lag::Unknown => "lag unknown".into(),
            Lag::NotReported => "no lag reported".into(),
        };
        let role = if m.is_sync() {
            "synchronous standby"
        } else {
            "replica"
        };
        checks.push(if !m.is_streaming(replication_state) {
            Check::new("postgres.replicas", &m.name, Status::Fail, format!("{role} is {:?}, not streaming", m.state))
                .hint("The replica is down or rebuilding: `kubectl -n ffe-data logs <pod> -c database`")
        } else {
            streaming += 1;
            if m.is_sync() {
                sync.push(m.name.clone());
            }
            match m.lag {
                Lag::Bytes(b) if b > pg.max_lag_bytes => Check::new(
                    "postgres.replicas",
                    &m.name,
                    Status::Fail,
                    format!("{role} streaming, {lag}: more than maximum_lag_on_failover ({} bytes), so it would not be promoted", pg.max_lag_bytes),
                )
                .hint("The replica cannot keep up (disk, network or a long query on it); a failover now could find no candidate"),
                Lag::Bytes(_) => Check::new("postgres.replicas", &m.name, Status::Pass, format!("{role} streaming, {lag}")),
                _ => Check::new("postgres.replicas", &m.name, Status::Warn, format!("{role} streaming, {lag}")),
            }
        });
    }
    let wanted = pg.instances.saturating_sub(1);
    let mut problems = vec![];
    if streaming < wanted {
        problems.push(format!("{streaming} of {wanted} replicas streaming"));
    }
    if pg.synchronous && sync.is_empty() && wanted > 0 {
        problems.push(
            "no synchronous standby: a primary crash now can lose acknowledged commits".into(),
        );
    }
    checks.push(if problems.is_empty() {
        Check::new(
            "postgres.replicas",
            "cluster",
            Status::Pass,
            format!(
                "{streaming} of {wanted} replicas streaming{}",
                if pg.synchronous { format!(", synchronous standby {}", sync.join(", ")) } else { String::new() }
            ),
        )
    } else {
        Check::new("postgres.replicas", "cluster", Status::Fail, problems.join("; "))
            .hint("Check the instance pods (`kubectl -n ffe-data get pods -l postgres-operator.crunchydata.com/data=postgres -o wide`) and their nodes")
    });
    checks
}

/// The pgbouncer Service's ClusterIP and port.
fn service_address(body: &str) -> Result<std::net::SocketAddr, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("bad Service: {e}"))?;
    let ip = v["spec"]["clusterIP"]
        .as_str()
        .filter(|ip| !ip.is_empty() && *ip != "None")
        .ok_or("the Service has no ClusterIP")?;
    let ports = v["spec"]["ports"]
        .as_array()
        .ok_or("the Service has no ports")?;
    let port = ports
        .iter()
        .find(|p| p["name"] == "pgbouncer")
        .or_else(|| ports.first())
        .and_then(|p| p["port"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .ok_or("the Service has no port")?;
    let ip: std::net::IpAddr = ip
        .parse()
        .map_err(|_| format!("the Service's ClusterIP {ip:?} is not an address"))?;
    Ok(std::net::SocketAddr::new(ip, port))
}

fn ssl_row(id: &'static str, subject: &str, what: &str, answer: Result<char, String>) -> Check {
    match answer {
        Ok('S') => Check::new(id, subject, Status::Pass, format!("{what} speaks PostgreSQL and offers TLS")),
        Ok(_) => Check::new(id, subject, Status::Warn, format!("{what} speaks PostgreSQL but offers no TLS"))
            .hint("Clients connect with sslmode=verify-full (the app, pg_dump): without TLS they are refused"),
        Err(e) => Check::new(id, subject, Status::Fail, format!("{what}: {e}"))
            .hint(if id == "pgbouncer.answering" {
                "The app connects through PgBouncer: check its pods (`kubectl -n ffe-data get pods -l postgres-operator.crunchydata.com/role=pgbouncer`)"
            } else {
                "Check kube-vip announces postgres_primary_ip (`kubectl -n ffe-data get svc`) and a primary runs"
            }),
    }
}

/// Every Postgres check: Patroni's view, the primary endpoint from here, PgBouncer from a master.
pub async fn postgres(
    api: &KubeApi,
    pool: &SshPool,
    inv: &Inventory,
    pg: &PostgresSection,
) -> Vec<Check> {
    let patroni = async {
        match patroni_view(api, pool, inv, pg).await {
            Ok((asked, read)) => judge_patroni(pg, &asked, &read),
            Err(e) => vec![
                Check::new("postgres.primary", "cluster", Status::Error, format!("not evaluated: {e}"))
                    .hint("Patroni is read over SSH on each instance pod's node (`curl` to the pod's port 8008): check the pods (`kubectl -n ffe-data get pods -o wide`) and that curl is installed on the nodes"),
                Check::new("postgres.replicas", "cluster", Status::Error, "not evaluated: Patroni was not read"),
            ],
        }
    };
    let endpoint = async {
        ssl_row(
            "postgres.endpoint",
            "cluster",
            &format!("primary endpoint {}", pg.primary_endpoint),
            pg::ssl_request(&pg.primary_endpoint, PROBE_LIMIT).await,
        )
    };
    let bouncer = async {
        let svc = format!(
            "/api/v1/namespaces/{}/services/{}",
            pg.namespace, pg.pgbouncer_service
        );
        let addr = match api
            .get(&svc)
            .await
            .map_err(|e| e.to_string())
            .and_then(|b| service_address(&b))
        {
            Ok(a) => a,
            Err(e) => {
                return Check::new(
                    "pgbouncer.answering",
                    "cluster",
                    Status::Error,
                    format!("not evaluated: Service {}: {e}", pg.pgbouncer_service),
                )
            }
        };
        let what = format!("PgBouncer Service {} ({addr})", pg.pgbouncer_service);
        let script = pg::ssl_request_script(addr, PROBE_LIMIT.as_secs());
        let mut failures = vec![];
        for n in inv.nodes.iter().filter(|n| n.role == Role::Server) {
            let ran = tokio::time::timeout(
                PROBE_LIMIT + inv.ssh.connect_timeout + Duration::from_secs(7),
                pool.run_status_within(
                    &n.target(),
                    "probe PgBouncer",
                    &script,
                    None,
                    // room for the SSH session under load: the node's own `timeout` decides
                    PROBE_LIMIT + Duration::from_secs(5),
                ),
            )
            .await;
            match ran {
                Ok(Ok(out)) => {
                    let answer = pg::judge_ssl_answer(out.stdout.as_bytes()).map_err(|e| {
                        let why = out.stderr.trim();
                        if out.code == 124 {
                            format!("no answer within {} s", PROBE_LIMIT.as_secs())
                        } else if why.is_empty() {
                            e
                        } else {
                            format!("{e} ({why})")
                        }
                    });
                    return ssl_row(
                        "pgbouncer.answering",
                        "cluster",
                        &format!("{what}, from {}", n.name),
                        answer,
                    );
                }
                Ok(Err(e)) if e.is_unreachable() => failures.push(e.to_string()),
                Ok(Err(e)) => {
                    return Check::new(
                        "pgbouncer.answering",
                        "cluster",
                        Status::Error,
                        e.to_string(),
                    )
                }
                Err(_) => failures.push(format!("{}: no answer over SSH", n.name)),
            }
        }
        Check::new(
            "pgbouncer.answering",
            "cluster",
            Status::Error,
            format!("no master reachable to probe from: {}", failures.join("; ")),
        )
    };
    let (mut checks, e, b) = futures::join!(patroni, endpoint, bouncer);
    checks.push(e);
    checks.push(b);
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section() -> PostgresSection {
        PostgresSection {
            namespace: "ffe-data".into(),
            cluster: "ffe-pg".into(),
            instances: 3,
            synchronous: true,
            max_lag_bytes: 1_048_576,
            patroni_port: 8008,
            primary_endpoint: "10.0.3.10:5432".into(),
            patroni_scheme: "https".into(),
            pgbouncer_service: "ffe-pg-pgbouncer".into(),
            restore_check_cronjob: None,
        }
    }

    fn member(name: &str, role: &str, state: &str, lag: Lag) -> PatroniMember {
        PatroniMember {
            name: name.into(),
            role: role.into(),
            state: state.into(),
            host: "h".into(),
            timeline: Some(2),
            lag,
        }
    }

    /// A `/cluster` read from Patroni 4 (which reports the replication state).
    fn read(members: &[PatroniMember]) -> PatroniRead {
        PatroniRead {
            version: Some((4, 1, 4)),
            members: members.to_vec(),
        }
    }

    fn status(c: &[Check], subject: &str) -> Status {
        c.iter()
            .find(|c| c.subject == subject)
            .map(|c| c.status)
            .unwrap()
    }

    #[test]
    fn healthy_lagging_and_missing_replicas() {
        let pg = section();
        let healthy = [
            member("a", "leader", "running", Lag::NotReported),
            member("b", "sync_standby", "streaming", Lag::Bytes(0)),
            member("c", "replica", "streaming", Lag::Bytes(100)),
        ];
        let c = judge_patroni(&pg, "a", &read(&healthy));
        assert!(c.iter().all(|c| c.status == Status::Pass), "{c:#?}");
        let lagging = [
            member("a", "leader", "running", Lag::NotReported),
            member("b", "sync_standby", "streaming", Lag::Bytes(0)),
            member("c", "replica", "streaming", Lag::Bytes(2_000_000)),
        ];
        assert_eq!(
            status(&judge_patroni(&pg, "a", &read(&lagging)), "c"),
            Status::Fail
        );
        let no_sync = [
            member("a", "leader", "running", Lag::NotReported),
            member("c", "replica", "stopped", Lag::Unknown),
        ];
        let c = judge_patroni(&pg, "a", &read(&no_sync));
        let cluster = c
            .iter()
            .find(|c| c.id == "postgres.replicas" && c.subject == "cluster")
            .unwrap();
        assert_eq!(cluster.status, Status::Fail);
        assert!(
            cluster.evidence.contains("0 of 2")
                && cluster.evidence.contains("no synchronous standby"),
            "{cluster:?}"
        );
        assert_eq!(
            status(&judge_patroni(&pg, "a", &read(&no_sync[1..])), "cluster"),
            Status::Fail
        );
        // A replica that is only `running` streams on Patroni 3.0.2, not on 4.
        let running = [
            member("a", "leader", "running", Lag::NotReported),
            member("b", "sync_standby", "running", Lag::Bytes(0)),
            member("c", "replica", "running", Lag::Bytes(0)),
        ];
        assert_eq!(
            status(&judge_patroni(&pg, "a", &read(&running)), "c"),
            Status::Fail
        );
        let old = PatroniRead {
            version: Some((3, 0, 2)),
            members: running.to_vec(),
        };
        assert_eq!(status(&judge_patroni(&pg, "a", &old), "c"), Status::Pass);
    }

    #[test]
    fn instance_pods_are_the_running_data_pods_of_the_cluster() {
        let list = r#"{"items":[
          {"metadata":{"name":"ffe-pg-db-a-0","labels":{"postgres-operator.crunchydata.com/cluster":"ffe-pg","postgres-operator.crunchydata.com/data":"postgres"}},"spec":{"nodeName":"w1"},"status":{"phase":"Running","podIP":"10.42.1.5"}},
          {"metadata":{"name":"ffe-pg-repo-host-0","labels":{"postgres-operator.crunchydata.com/cluster":"ffe-pg","postgres-operator.crunchydata.com/data":"pgbackrest"}},"status":{"phase":"Running"}},
          {"metadata":{"name":"ffe-pg-db-b-0","labels":{"postgres-operator.crunchydata.com/cluster":"ffe-pg","postgres-operator.crunchydata.com/data":"postgres"}},"status":{"phase":"Pending"}},
          {"metadata":{"name":"other-db-0","labels":{"postgres-operator.crunchydata.com/cluster":"other","postgres-operator.crunchydata.com/data":"postgres"}},"status":{"phase":"Running"}}]}"#;
        assert_eq!(
            instance_pods(list, &section()).unwrap(),
            vec![InstancePod {
                name: "ffe-pg-db-a-0".into(),
                node: "w1".into(),
                ip: "10.42.1.5".parse().unwrap()
            }]
        );
    }

    #[test]
    fn the_pgbouncer_port_is_the_named_one() {
        let svc = r#"{"spec":{"clusterIP":"10.43.0.20","ports":[{"name":"other","port":1},{"name":"pgbouncer","port":5432}]}}"#;
        assert_eq!(
            service_address(svc).unwrap(),
            "10.43.0.20:5432".parse().unwrap()
        );
        let named = r#"{"spec":{"clusterIP":"a;reboot","ports":[{"port":1}]}}"#;
        assert!(
            service_address(named).is_err(),
            "only an address reaches the node's script"
        );
        assert!(service_address(r#"{"spec":{"clusterIP":"None","ports":[]}}"#).is_err());
    }
}

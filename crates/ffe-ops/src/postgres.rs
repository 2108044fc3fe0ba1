//! The Postgres checks of `verify`: Patroni's own view of the cluster (read through the API
//! server's pod proxy, so the operator's machine needs no route to the pod network), the primary
//! endpoint and PgBouncer answering the PostgreSQL protocol. No credentials are used: the app
//! role's password never leaves the cluster.

use std::time::Duration;

use ffe_core::kube::KubeApi;
use ffe_core::pg::{self, Lag, PatroniMember};
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

/// Running instance pods of the cluster, by name.
fn instance_pods(list: &str, pg: &PostgresSection) -> Result<Vec<String>, String> {
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
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect())
}

/// Patroni's `/cluster` from the first instance pod that answers through the API's pod proxy.
async fn patroni_view(
    api: &KubeApi,
    pg: &PostgresSection,
) -> Result<(String, Vec<PatroniMember>), String> {
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
    let mut failures = vec![];
    for pod in &pods {
        let path = format!(
            "/api/v1/namespaces/{ns}/pods/https:{pod}:{}/proxy/cluster",
            pg.patroni_port
        );
        match api.get(&path).await {
            Ok(body) => match pg::parse_cluster(&body) {
                Ok(m) => return Ok((pod.clone(), m)),
                Err(e) => failures.push(format!("{pod}: {e}")),
            },
            Err(e) => failures.push(format!("{pod}: {e}")),
        }
    }
    Err(format!("no Patroni answered: {}", failures.join("; ")))
}

/// The verdicts from Patroni's member list (`asked`: the pod that answered).
pub fn judge_patroni(pg: &PostgresSection, asked: &str, members: &[PatroniMember]) -> Vec<Check> {
    let mut checks = vec![];
    let leaders: Vec<&PatroniMember> = members.iter().filter(|m| m.is_leader()).collect();
    checks.push(match leaders.as_slice() {
        [l] if l.state == "running" => Check::new(
            "postgres.primary",
            "cluster",
            Status::Pass,
            format!(
                "leader {} running on timeline {} (Patroni of {asked})",
                l.name,
                l.timeline.map_or("?".into(), |t| t.to_string())
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
        checks.push(if !m.is_streaming() {
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
fn service_address(body: &str) -> Result<(String, u16), String> {
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
    Ok((ip.to_string(), port))
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
        match patroni_view(api, pg).await {
            Ok((asked, members)) => judge_patroni(pg, &asked, &members),
            Err(e) => vec![
                Check::new("postgres.primary", "cluster", Status::Error, format!("not evaluated: {e}"))
                    .hint("Patroni is read through the API server's pod proxy (port 8008 of the instance pods)"),
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
        let (ip, port) = match api
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
        let what = format!("PgBouncer Service {} ({ip}:{port})", pg.pgbouncer_service);
        let script = pg::ssl_request_script(&ip, port, PROBE_LIMIT.as_secs());
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
            pgbouncer_service: "ffe-pg-pgbouncer".into(),
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
        let c = judge_patroni(&pg, "a", &healthy);
        assert!(c.iter().all(|c| c.status == Status::Pass), "{c:#?}");
        let lagging = [
            member("a", "leader", "running", Lag::NotReported),
            member("b", "sync_standby", "streaming", Lag::Bytes(0)),
            member("c", "replica", "streaming", Lag::Bytes(2_000_000)),
        ];
        assert_eq!(
            status(&judge_patroni(&pg, "a", &lagging), "c"),
            Status::Fail
        );
        let no_sync = [
            member("a", "leader", "running", Lag::NotReported),
            member("c", "replica", "stopped", Lag::Unknown),
        ];
        let c = judge_patroni(&pg, "a", &no_sync);
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
            status(&judge_patroni(&pg, "a", &no_sync[1..]), "cluster"),
            Status::Fail
        );
    }

    #[test]
    fn instance_pods_are_the_running_data_pods_of_the_cluster() {
        let list = r#"{"items":[
          {"metadata":{"name":"ffe-pg-db-a-0","labels":{"postgres-operator.crunchydata.com/cluster":"ffe-pg","postgres-operator.crunchydata.com/data":"postgres"}},"status":{"phase":"Running"}},
          {"metadata":{"name":"ffe-pg-repo-host-0","labels":{"postgres-operator.crunchydata.com/cluster":"ffe-pg","postgres-operator.crunchydata.com/data":"pgbackrest"}},"status":{"phase":"Running"}},
          {"metadata":{"name":"ffe-pg-db-b-0","labels":{"postgres-operator.crunchydata.com/cluster":"ffe-pg","postgres-operator.crunchydata.com/data":"postgres"}},"status":{"phase":"Pending"}},
          {"metadata":{"name":"other-db-0","labels":{"postgres-operator.crunchydata.com/cluster":"other","postgres-operator.crunchydata.com/data":"postgres"}},"status":{"phase":"Running"}}]}"#;
        assert_eq!(
            instance_pods(list, &section()).unwrap(),
            vec!["ffe-pg-db-a-0"]
        );
    }

    #[test]
    fn the_pgbouncer_port_is_the_named_one() {
        let svc = r#"{"spec":{"clusterIP":"10.43.0.20","ports":[{"name":"other","port":1},{"name":"pgbouncer","port":5432}]}}"#;
        assert_eq!(service_address(svc).unwrap(), ("10.43.0.20".into(), 5432));
        assert!(service_address(r#"{"spec":{"clusterIP":"None","ports":[]}}"#).is_err());
    }
}

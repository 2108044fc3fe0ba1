//! Postgres HA on the real engines (Debian's PostgreSQL 15, Patroni, pgBackRest, PgBouncer, etcd
//! as Patroni's DCS) on lab hosts. Needs root.
//!
//! The Patroni timings, the PostgreSQL parameters and the pgBackRest options come from
//! `terraform/modules/postgres/ha-settings.yaml`, the file the Terraform module renders into the
//! PerconaPGCluster: the lab runs what the cluster runs. Values that only exist in the lab (ports,
//! paths, etcd's own timings, PgBouncer's follower) are named where they are set.
//!
//! Stand-ins: etcd stands in for the Kubernetes API as Patroni's DCS; `Follower` (a thread of the
//! test polling Patroni's REST `GET /primary` and re-pointing PgBouncer) stands in for the
//! Kubernetes `<cluster>-primary` Service whose Endpoints Patroni writes; the lab's shared
//! directory at /mnt/backups stands in for the NFS backup share.
//!
//! `bench_postgres` (ignored; run by `bench/postgres`) repeats the failover and measures the PITR
//! recovery point after a crash, printing one `BENCH_JSON {...}` line.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ffe_lab::lab::{Lab, LabSpec};
use serde::Deserialize;
use serde_json::json;

const BACKUP_MOUNT: &str = "/mnt/backups";
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const SCOPE: &str = "ffe-lab";
const STANZA: &str = "ffe";
const DB: &str = "ffe";
/// Lab value for the module's `repo1-retention-full` (= `backup_retention_days`, a Terraform
/// variable the settings file does not hold). Retention never triggers in a test this short.
const LAB_RETENTION_DAYS: u32 = 7;

// ---------------------------------------------------------------------------------------------
// The single source: ha-settings.yaml
// ---------------------------------------------------------------------------------------------

/// `terraform/modules/postgres/ha-settings.yaml`. Unknown keys are refused so a setting added
/// there cannot silently go unproven here.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HaSettings {
    patroni: PatroniSettings,
    postgresql_parameters: BTreeMap<String, serde_yaml_ng::Value>,
    /// PgBouncer `[pgbouncer]` settings (pool mode, TCP timeouts), written into pgbouncer.ini.
    pgbouncer: BTreeMap<String, serde_yaml_ng::Value>,
    pgbackrest: PgbackrestSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatroniSettings {
    ttl: u32,
    loop_wait: u32,
    retry_timeout: u32,
    maximum_lag_on_failover: u64,
    synchronous_mode: bool,
    synchronous_node_count: u32,
    synchronous_mode_strict: bool,
    failsafe_mode: bool,
}

#[derive(Debug, Deserialize)]
struct PgbackrestSettings {
    /// Operator schedules (CronJobs in the cluster). The lab takes one full backup after
    /// bootstrap instead; the schedules are not pgbackrest.conf options.
    #[allow(dead_code)]
    schedules: BTreeMap<String, String>,
    /// Monitoring's margin for the newest-backup alert, not a pgbackrest.conf option.
    #[allow(dead_code)]
    backup_age_margin_hours: u32,
    /// Every other key is a pgBackRest option and goes into pgbackrest.conf `[global]`;
    /// pgBackRest itself then says whether it knows it (checked at stanza-create).
    #[serde(flatten)]
    options: BTreeMap<String, serde_yaml_ng::Value>,
}

fn settings_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../terraform/modules/postgres/ha-settings.yaml")
}

fn load_settings() -> HaSettings {
    let p = settings_path();
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn scalar(v: &serde_yaml_ng::Value) -> String {
    match v {
        serde_yaml_ng::Value::String(s) => s.clone(),
        serde_yaml_ng::Value::Bool(b) => if *b { "on" } else { "off" }.to_string(),
        serde_yaml_ng::Value::Number(n) => n.to_string(),
        other => panic!("ha-settings.yaml: {other:?} is not a scalar"),
    }
}

// ---------------------------------------------------------------------------------------------
// Small clients: HTTP (Patroni REST, etcd health) and PostgreSQL
// ---------------------------------------------------------------------------------------------

fn http_get(ip: Ipv4Addr, port: u16, path: &str, timeout: Duration) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&SocketAddr::from((ip, port)), timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {ip}:{port}\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    Some((status, body.unwrap_or_default()))
}

fn pg_connect(ip: Ipv4Addr, port: u16, db: &str) -> Result<postgres::Client, postgres::Error> {
    postgres::Config::new()
        .host(&ip.to_string())
        .port(port)
        .user("postgres")
        .dbname(db)
        .connect_timeout(Duration::from_secs(2))
        .connect(postgres::NoTls)
}

/// Every row of a simple-protocol query as text (PgBouncer's admin console and transaction
/// pooling both want the simple protocol: no named prepared statements).
/// Every `writes.id` the server holds.
fn row_ids(c: &mut postgres::Client) -> BTreeSet<u64> {
    rows(c, "SELECT id FROM writes")
        .expect("read rows")
        .into_iter()
        .filter_map(|r| r.first().cloned().flatten()?.parse().ok())
        .collect()
}

/// Acknowledged ids that are not in `present`: each one a lost commit.
fn missing_acks(acks: &[Ack], present: &BTreeSet<u64>) -> Vec<u64> {
    acks.iter()
        .map(|a| a.id)
        .filter(|id| !present.contains(id))
        .collect()
}

fn rows(c: &mut postgres::Client, sql: &str) -> Result<Vec<Vec<Option<String>>>, postgres::Error> {
    Ok(c.simple_query(sql)?
        .into_iter()
        .filter_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect())
}

/// The server's message when there is one (`postgres::Error`'s Display says only "db error").
fn err_text(e: &postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

fn one(c: &mut postgres::Client, sql: &str) -> String {
    let r = rows(c, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    r.first()
        .and_then(|row| row.first().cloned().flatten())
        .unwrap_or_else(|| panic!("{sql}: no value"))
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------------
// The cluster on lab hosts
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Node {
    name: String,
    ip: Ipv4Addr,
    /// The host's own directory (same path inside and outside its namespaces).
    base: PathBuf,
}

impl Node {
    /// Parent of the data dir: a plain dir, or a small tmpfs for the disk-full test.
    fn vol(&self) -> PathBuf {
        self.base.join("vol")
    }
    fn data(&self) -> PathBuf {
        self.vol().join("data")
    }
    fn sockets(&self) -> PathBuf {
        self.base.join("run")
    }
    fn pgbackrest_conf(&self) -> PathBuf {
        self.base.join("pgbackrest.conf")
    }
    fn patroni_log(&self) -> PathBuf {
        self.base.join("patroni.log")
    }
}

struct Cluster {
    lab: Lab,
    settings: HaSettings,
    /// The Patroni members (each also an etcd member).
    db: Vec<Node>,
    others: BTreeMap<String, Node>,
}

fn sh(lab: &Lab, host: &str, cmd: &str) -> (bool, String) {
    let out = lab
        .ssh(host, cmd)
        .unwrap_or_else(|e| panic!("ssh {host}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn sh_ok(lab: &Lab, host: &str, cmd: &str) -> String {
    let (ok, text) = sh(lab, host, cmd);
    assert!(ok, "{host}: `{cmd}` failed: {text}");
    text
}

fn q(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

fn tail(p: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn chown_postgres(p: &Path) {
    let st = std::process::Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(p)
        .status()
        .expect("spawn chown");
    assert!(st.success(), "chown {}", p.display());
}

impl Cluster {
    /// A lab with `db` Patroni hosts (etcd member + Patroni + PostgreSQL + pgBackRest each) and
    /// `others` plain hosts; configs written, etcd started and healthy, Patroni not yet started.
    fn new(db: &[&str], others: &[&str]) -> Cluster {
        let settings = load_settings();
        let lab = Lab::create(LabSpec {
            hosts: db.iter().chain(others).map(|s| s.to_string()).collect(),
            backup_mount: PathBuf::from(BACKUP_MOUNT),
            ssh_port: 22,
        })
        .expect("lab create");
        let node = |name: &&str| {
            let h = lab.host(name).expect("host");
            Node {
                name: h.name.clone(),
                ip: h.ip,
                base: h.root_dir.join("pg"),
            }
        };
        let c = Cluster {
            db: db.iter().map(node).collect(),
            others: others.iter().map(|n| (n.to_string(), node(n))).collect(),
            settings,
            lab,
        };
        let repo = c.lab.backup_dir().join("pgbackrest");
        std::fs::create_dir_all(&repo).expect("repo dir");
        chown_postgres(&repo);
        for n in c.db.iter().chain(c.others.values()) {
            let pgbr = n.base.join("pgbr");
            for d in [
                n.vol(),
                n.sockets(),
                pgbr.join("lock"),
                pgbr.join("log"),
                pgbr.join("spool"),
            ] {
                std::fs::create_dir_all(&d).expect("node dir");
            }
            c.write_pgbackrest_conf(n, &n.data());
            chown_postgres(&n.base);
        }
        for n in &c.db {
            std::fs::write(n.base.join("patroni.yml"), c.patroni_yaml(n)).expect("patroni.yml");
        }
        c.start_etcd();
        c
    }

    fn node(&self, name: &str) -> &Node {
        self.db
            .iter()
            .chain(self.others.values())
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// pgbackrest.conf: the settings' pgBackRest options + this host's own paths.
    fn write_pgbackrest_conf(&self, n: &Node, data: &Path) {
        let mut s = format!("[global]\nrepo1-path={BACKUP_MOUNT}/pgbackrest\n");
        for (k, v) in &self.settings.pgbackrest.options {
            s.push_str(&format!("{k}={}\n", scalar(v)));
        }
        let pgbr = n.base.join("pgbr");
        s.push_str(&format!(
            "repo1-retention-full={LAB_RETENTION_DAYS}\nlock-path={}\nlog-path={}\nspool-path={}\n\
             [{STANZA}]\npg1-path={}\npg1-socket-path={}\npg1-port=5432\n",
            pgbr.join("lock").display(),
            pgbr.join("log").display(),
            pgbr.join("spool").display(),
            data.display(),
            n.sockets().display(),
        ));
        std::fs::write(n.pgbackrest_conf(), s).expect("pgbackrest.conf");
    }

    fn archive_command(n: &Node) -> String {
        format!(
            "pgbackrest --config={} --stanza={STANZA} archive-push \"%p\"",
            n.pgbackrest_conf().display()
        )
    }

    /// The Patroni config of one member: the settings' timings and parameters in the DCS
    /// section (as the operator puts them), this host's addresses and paths locally.
    fn patroni_yaml(&self, n: &Node) -> String {
        let p = &self.settings.patroni;
        let etcd: Vec<String> = self.db.iter().map(|m| format!("{}:2379", m.ip)).collect();
        let mut dcs_params: BTreeMap<String, serde_json::Value> = self
            .settings
            .postgresql_parameters
            .iter()
            .map(|(k, v)| (k.clone(), json!(scalar(v))))
            .collect();
        dcs_params.insert("archive_mode".into(), json!("on"));
        let hba = [
            "local all all trust",
            "host all all 127.0.0.1/32 trust",
            "host all all 10.210.0.0/16 trust",
            "host replication replicator 127.0.0.1/32 trust",
            "host replication replicator 10.210.0.0/16 trust",
        ];
        let cfg = json!({
            "scope": SCOPE,
            "name": n.name,
            "log": {"level": "INFO"},
            "restapi": {"listen": format!("{}:8008", n.ip), "connect_address": format!("{}:8008", n.ip)},
            "etcd3": {"hosts": etcd},
            "bootstrap": {
                "dcs": {
                    "ttl": p.ttl,
                    "loop_wait": p.loop_wait,
                    "retry_timeout": p.retry_timeout,
                    "maximum_lag_on_failover": p.maximum_lag_on_failover,
                    "synchronous_mode": p.synchronous_mode,
                    "synchronous_node_count": p.synchronous_node_count,
                    "synchronous_mode_strict": p.synchronous_mode_strict,
                    "failsafe_mode": p.failsafe_mode,
                    "postgresql": {"use_pg_rewind": true, "parameters": dcs_params},
                },
                "initdb": [{"encoding": "UTF8"}, "data-checksums"],
            },
            "postgresql": {
                // Patroni 3.0.2 wants `IP,127.0.0.1:PORT` (one port after the list).
                "listen": format!("{},127.0.0.1:5432", n.ip),
                "connect_address": format!("{}:5432", n.ip),
                "data_dir": n.data(),
                "bin_dir": PG_BIN,
                "pgpass": n.base.join("pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": "lab-superuser"},
                    "replication": {"username": "replicator", "password": "lab-replicator"},
                },
                "pg_hba": hba,
                // Replicas are cloned with pg_basebackup here (the operator restores them from
                // pgBackRest); a fast checkpoint keeps a clone from waiting out a spread one.
                "basebackup": [{"checkpoint": "fast"}],
                "parameters": {
                    // Per host: every instance shares the machine's filesystem.
                    "unix_socket_directories": n.sockets(),
                    "archive_command": Self::archive_command(n),
                    "logging_collector": "on",
                    "log_directory": n.base.join("pglog"),
                },
            },
        });
        // Written as JSON (valid YAML): a YAML 1.2 emitter leaves `on` unquoted and Patroni's
        // PyYAML (YAML 1.1) would read it back as a boolean.
        serde_json::to_string_pretty(&cfg).expect("patroni config")
    }

    /// Start a daemon on `host`, detached from the ssh session (the lab kills it by PID).
    fn spawn(&self, host: &str, as_postgres: bool, cmd: &str, log: &Path) {
        let run = if as_postgres {
            format!("runuser -u postgres -- {cmd}")
        } else {
            cmd.to_string()
        };
        sh_ok(
            &self.lab,
            host,
            &format!("cd / && setsid -f {run} >>{} 2>&1 </dev/null", q(log)),
        );
    }

    fn start_etcd(&self) {
        let initial: Vec<String> = self
            .db
            .iter()
            .map(|m| format!("{}=http://{}:2380", m.name, m.ip))
            .collect();
        for n in &self.db {
            // etcd's own timings are lab values (in the cluster the DCS is the Kubernetes API).
            let cmd = format!(
                "/usr/bin/etcd --name {name} --data-dir {dir} \
                 --listen-peer-urls http://{ip}:2380 --initial-advertise-peer-urls http://{ip}:2380 \
                 --listen-client-urls http://{ip}:2379,http://127.0.0.1:2379 \
                 --advertise-client-urls http://{ip}:2379 --initial-cluster {initial} \
                 --initial-cluster-state new --initial-cluster-token ffe-lab-{slot} \
                 --heartbeat-interval 100 --election-timeout 1000",
                name = n.name,
                dir = q(&n.base.join("etcd")),
                ip = n.ip,
                initial = initial.join(","),
                slot = self.lab.slot(),
            );
            self.spawn(&n.name, false, &cmd, &n.base.join("etcd.log"));
        }
        for n in &self.db {
            wait_for(
                &format!("etcd on {} healthy", n.name),
                Duration::from_secs(30),
                || {
                    http_get(n.ip, 2379, "/health", Duration::from_millis(500))
                        .filter(|(s, b)| *s == 200 && b.contains("true"))
                },
            );
        }
    }

    fn start_patroni(&self, name: &str) {
        let n = self.node(name);
        let cmd = format!("/usr/bin/patroni {}", q(&n.base.join("patroni.yml")));
        self.spawn(name, true, &cmd, &n.patroni_log());
    }

    fn patroni_logs(&self) -> String {
        self.db
            .iter()
            .map(|n| format!("--- {} ---\n{}", n.name, tail(&n.patroni_log(), 40)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Keep etcd's leader off `host`. With etcd as the DCS, a new etcd leader re-grants every
    /// lease its full TTL (etcd's lessor `Promote`), so crashing the etcd leader together with the
    /// Postgres primary would add up to a whole `ttl` to the failover. The cluster's DCS is the
    /// Kubernetes API, where Patroni expires the leader by the annotation's renew time, so that
    /// delay is a lab artefact. The crashed host's etcd member still dies with it.
    fn move_etcd_leader_off(&self, host: &Node) {
        let endpoints: Vec<String> = self
            .db
            .iter()
            .map(|m| format!("http://{}:2379", m.ip))
            .collect();
        let out = std::process::Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .args(["endpoint", "status", "-w", "json"])
            .output()
            .expect("spawn etcdctl");
        assert!(
            out.status.success(),
            "etcdctl endpoint status: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let st: serde_json::Value = serde_json::from_slice(&out.stdout).expect("etcdctl json");
        let list = st.as_array().cloned().unwrap_or_default();
        let id_of = |e: &serde_json::Value| e["Status"]["header"]["member_id"].as_u64();
        let leader_id = list.first().and_then(|e| e["Status"]["leader"].as_u64());
        let on_host = list
            .iter()
            .find(|e| e["Endpoint"].as_str() == Some(format!("http://{}:2379", host.ip).as_str()));
        let (Some(leader_id), Some(on_host)) = (leader_id, on_host) else {
            panic!("etcdctl endpoint status: {st}");
        };
        if id_of(on_host) != Some(leader_id) {
            return;
        }
        let target = list
            .iter()
            .filter_map(id_of)
            .find(|id| *id != leader_id)
            .expect("another etcd member");
        let out = std::process::Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=http://{}:2379", host.ip))
            .args(["move-leader", &format!("{target:x}")])
            .output()
            .expect("spawn etcdctl");
        assert!(
            out.status.success(),
            "etcdctl move-leader: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The member whose Patroni REST answers `GET /primary` with 200, if exactly one does.
    fn rest_leader(&self) -> Option<Node> {
        leader_of(&self.db)
    }

    fn wait_leader(&self, timeout: Duration) -> Node {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.rest_leader() {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no Patroni leader within {timeout:?}\n{}",
                self.patroni_logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Wait until `leader` streams to `replicas` standbys, at least one of them synchronous.
    fn wait_streaming(&self, leader: &Node, replicas: usize) {
        let sql = "SELECT count(*) FILTER (WHERE state = 'streaming') || ' ' || \
                   count(*) FILTER (WHERE sync_state = 'sync') FROM pg_stat_replication";
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut c) = pg_connect(leader.ip, 5432, "postgres") {
                let v = one(&mut c, sql);
                let mut it = v.split(' ').map(|x| x.parse::<usize>().unwrap_or(0));
                let (streaming, sync) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
                if streaming >= replicas && (replicas == 0 || sync >= 1) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} replicas not streaming (one sync) within 60 s\n{}",
                replicas,
                self.patroni_logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Start Patroni everywhere, wait for a leader and its replicas, create the database and the
    /// table, and the pgBackRest stanza. Returns the leader.
    fn bootstrap(&self) -> Node {
        for n in &self.db {
            self.start_patroni(&n.name);
        }
        let leader = self.wait_leader(Duration::from_secs(60));
        self.init_db(&leader);
        self.wait_streaming(&leader, self.db.len() - 1);
        leader
    }

    /// What Patroni and PostgreSQL actually run with is what the settings file says: the DCS
    /// config from Patroni's REST `GET /config`, the parameters from `pg_file_settings`.
    fn verify_effective_settings(&self, leader: &Node) {
        let (status, body) = http_get(leader.ip, 8008, "/config", Duration::from_secs(2))
            .expect("Patroni GET /config");
        assert_eq!(status, 200, "GET /config: {body}");
        let dcs: serde_json::Value = serde_json::from_str(&body).expect("/config json");
        let p = &self.settings.patroni;
        let want = json!({
            "ttl": p.ttl,
            "loop_wait": p.loop_wait,
            "retry_timeout": p.retry_timeout,
            "maximum_lag_on_failover": p.maximum_lag_on_failover,
            "synchronous_mode": p.synchronous_mode,
            "synchronous_node_count": p.synchronous_node_count,
            "synchronous_mode_strict": p.synchronous_mode_strict,
            "failsafe_mode": p.failsafe_mode,
        });
        for (k, v) in want.as_object().into_iter().flatten() {
            assert_eq!(&dcs[k], v, "Patroni runs {k} = {} (settings: {v})", dcs[k]);
        }
        let mut c = pg_connect(leader.ip, 5432, "postgres").expect("connect leader");
        for (k, v) in &self.settings.postgresql_parameters {
            let got = one(
                &mut c,
                &format!(
                    "SELECT coalesce(max(setting) FILTER (WHERE applied), '<not applied>') \
                     FROM pg_file_settings WHERE name = '{k}'"
                ),
            );
            assert_eq!(got, scalar(v), "postgresql.conf {k}");
        }
    }

    fn init_db(&self, leader: &Node) {
        self.verify_effective_settings(leader);
        let mut c = pg_connect(leader.ip, 5432, "postgres").expect("connect leader");
        c.batch_execute(&format!("CREATE DATABASE {DB}"))
            .expect("create db");
        let mut c = pg_connect(leader.ip, 5432, DB).expect("connect leader db");
        c.batch_execute(
            "CREATE TABLE writes (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp());
             CREATE TABLE probes (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp());",
        )
        .expect("create tables");
        let out = self.pgbackrest(&leader.name, "stanza-create");
        // pgBackRest warns about any pgbackrest.conf key it does not know: the settings' keys
        // must all be real pgBackRest 2.45 options.
        assert!(!out.contains("invalid option"), "pgbackrest: {out}");
    }

    fn pgbackrest(&self, host: &str, args: &str) -> String {
        let n = self.node(host);
        sh_ok(
            &self.lab,
            host,
            &format!(
                "runuser -u postgres -- pgbackrest --config={} --stanza={STANZA} {args}",
                q(&n.pgbackrest_conf())
            ),
        )
    }

    /// A full backup from the leader (`--start-fast`: the lab does not wait for a checkpoint).
    fn full_backup(&self, leader: &Node) {
        self.pgbackrest(&leader.name, "--type=full --start-fast backup");
    }

    /// `pgbackrest restore` into a fresh dir on `host` and a throwaway postgres on `port` with
    /// archive_mode=off (it must never archive into the live stanza). Returns once promoted.
    fn restore(&self, host: &str, dir_name: &str, port: u16, restore_args: &str) -> Restored {
        let n = self.node(host).clone();
        let data = n.base.join(dir_name);
        std::fs::create_dir_all(&data).expect("restore dir");
        chown_postgres(&data);
        self.write_pgbackrest_conf(&n, &data);
        self.pgbackrest(host, &format!("{restore_args} restore"));
        let log = n.base.join(format!("{dir_name}.log"));
        let opts = format!(
            "-c port={port} -c listen_addresses={ip} -c unix_socket_directories={sock} \
             -c archive_mode=off -c logging_collector=off",
            ip = n.ip,
            sock = n.sockets().display()
        );
        sh_ok(
            &self.lab,
            host,
            &format!(
                "runuser -u postgres -- {PG_BIN}/pg_ctl -D {} -l {} -w -t 60 -o '{opts}' start",
                q(&data),
                q(&log)
            ),
        );
        let mut client = wait_for(
            &format!("restored postgres on {host}:{port} promoted"),
            Duration::from_secs(60),
            || {
                let mut c = pg_connect(n.ip, port, DB).ok()?;
                (one(&mut c, "SELECT pg_is_in_recovery()") == "f").then_some(c)
            },
        );
        let ids = row_ids(&mut client);
        let newest: Option<f64> = one(
            &mut client,
            "SELECT coalesce(extract(epoch FROM max(at))::text, '') FROM writes",
        )
        .parse()
        .ok();
        sh_ok(
            &self.lab,
            host,
            &format!(
                "runuser -u postgres -- {PG_BIN}/pg_ctl -D {} -m immediate stop",
                q(&data)
            ),
        );
        Restored { ids, newest }
    }
}

struct Restored {
    ids: BTreeSet<u64>,
    /// Server clock (epoch seconds) of the newest restored row.
    newest: Option<f64>,
}

fn leader_of(nodes: &[Node]) -> Option<Node> {
    let leaders: Vec<&Node> = nodes
        .iter()
        .filter(|n| {
            http_get(n.ip, 8008, "/primary", Duration::from_millis(400))
                .is_some_and(|(s, _)| s == 200)
        })
        .collect();
    match leaders.as_slice() {
        [one] => Some((*one).clone()),
        _ => None,
    }
}

/// Switch to a new WAL segment and wait until the one just closed is archived.
fn switch_and_wait_archived(c: &mut postgres::Client, timeout: Duration) -> String {
    let seg = one(c, "SELECT pg_walfile_name(pg_switch_wal())");
    wait_for(&format!("WAL {seg} archived"), timeout, || {
        let last = one(
            c,
            "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
        );
        (last.as_str() >= seg.as_str()).then_some(())
    });
    seg
}

fn archiver(c: &mut postgres::Client) -> (u64, u64) {
    let v = one(
        c,
        "SELECT archived_count || ' ' || failed_count FROM pg_stat_archiver",
    );
    let mut it = v.split(' ').map(|x| x.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

// ---------------------------------------------------------------------------------------------
// Writer and PgBouncer follower
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Ack {
    id: u64,
    at: Instant,
    /// Server clock (epoch seconds) of the row (`clock_timestamp()` at insert).
    server_epoch: f64,
}

/// Inserts rows continuously, one transaction each; records the ids whose COMMIT returned OK.
struct Writer {
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
    errors: Arc<Mutex<Vec<String>>>,
    handle: Option<JoinHandle<()>>,
}

impl Writer {
    fn start(ip: Ipv4Addr, port: u16, first_id: u64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (s, a, e) = (stop.clone(), acks.clone(), errors.clone());
        let handle = std::thread::spawn(move || {
            let mut client: Option<postgres::Client> = None;
            let mut id = first_id;
            while !s.load(Ordering::SeqCst) {
                let c = match client.as_mut() {
                    Some(c) => c,
                    None => match pg_connect(ip, port, DB) {
                        Ok(c) => client.insert(c),
                        Err(err) => {
                            e.lock()
                                .unwrap()
                                .push(format!("connect: {}", err_text(&err)));
                            std::thread::sleep(Duration::from_millis(100));
                            continue;
                        }
                    },
                };
                let sql = format!(
                    "INSERT INTO writes (id) VALUES ({id}) RETURNING extract(epoch FROM at)::text"
                );
                match rows(c, &sql) {
                    Ok(r) => {
                        let server_epoch = r
                            .first()
                            .and_then(|row| row.first().cloned().flatten())
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0.0);
                        a.lock().unwrap().push(Ack {
                            id,
                            at: Instant::now(),
                            server_epoch,
                        });
                    }
                    Err(err) => {
                        e.lock()
                            .unwrap()
                            .push(format!("insert {id}: {}", err_text(&err)));
                        client = None;
                    }
                }
                id += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Writer {
            stop,
            acks,
            errors,
            handle: Some(handle),
        }
    }

    fn acks(&self) -> Vec<Ack> {
        self.acks.lock().unwrap().clone()
    }

    fn wait_acks(&self, n: usize, after: Option<Instant>, timeout: Duration) {
        wait_for(&format!("{n} acknowledged writes"), timeout, || {
            let count = self
                .acks()
                .iter()
                .filter(|a| after.is_none_or(|t| a.at > t))
                .count();
            (count >= n).then_some(())
        });
    }

    fn stop(mut self) -> (Vec<Ack>, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            // A stuck insert would hang the join: the lab is torn down after this anyway.
            let deadline = Instant::now() + Duration::from_secs(30);
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
        (self.acks(), self.errors.lock().unwrap().clone())
    }
}

/// PgBouncer (transaction pooling) on one host. PgBouncer points at one fixed address.
#[derive(Debug, Clone)]
struct Bouncer {
    node: Node,
    /// `key = value` lines from ha-settings.yaml's `pgbouncer` section (pool mode, TCP timeouts).
    settings: String,
}

impl Bouncer {
    fn ini_path(&self) -> PathBuf {
        self.node.base.join("pgbouncer.ini")
    }

    /// The lab's pgbouncer.ini: the lab's addresses, auth and files, then ha-settings.yaml's
    /// `pgbouncer` section (the same settings the module gives the cluster's PgBouncer).
    fn write_ini(&self, primary: Ipv4Addr) {
        let b = &self.node.base;
        let ini = format!(
            "[databases]\n{DB} = host={primary} port=5432 dbname={DB}\n\n[pgbouncer]\n\
             listen_addr = {ip}\nlisten_port = 6432\nunix_socket_dir = {sock}\n\
             auth_type = trust\nauth_file = {users}\nadmin_users = postgres\n\
             default_pool_size = 10\n{settings}\
             logfile = {log}\npidfile = {pid}\n",
            settings = self.settings,
            ip = self.node.ip,
            sock = self.node.sockets().display(),
            users = b.join("userlist.txt").display(),
            log = b.join("pgbouncer.log").display(),
            pid = b.join("pgbouncer.pid").display(),
        );
        let tmp = b.join("pgbouncer.ini.tmp");
        std::fs::write(&tmp, ini).expect("pgbouncer.ini");
        std::fs::rename(&tmp, self.ini_path()).expect("pgbouncer.ini");
    }

    fn start(c: &Cluster, host: &str, primary: Ipv4Addr) -> Bouncer {
        let b = Bouncer {
            node: c.node(host).clone(),
            settings: c
                .settings
                .pgbouncer
                .iter()
                .map(|(k, v)| format!("{k} = {}\n", scalar(v)))
                .collect(),
        };
        std::fs::write(b.node.base.join("userlist.txt"), "\"postgres\" \"\"\n").expect("users");
        b.write_ini(primary);
        chown_postgres(&b.node.base);
        c.spawn(
            host,
            true,
            &format!("/usr/sbin/pgbouncer {}", q(&b.ini_path())),
            &b.node.base.join("pgbouncer.out"),
        );
        wait_for("pgbouncer listening", Duration::from_secs(15), || {
            TcpStream::connect_timeout(
                &SocketAddr::from((b.node.ip, 6432)),
                Duration::from_millis(300),
            )
            .ok()
        });
        b
    }

    fn admin(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, postgres::Error> {
        let mut c = pg_connect(self.node.ip, 6432, "pgbouncer")?;
        rows(&mut c, sql)
    }

    /// The host PgBouncer currently sends `DB` to (admin console `SHOW DATABASES`).
    fn target(&self) -> Option<String> {
        let r = self.admin("SHOW DATABASES").ok()?;
        r.into_iter()
            .find(|row| row.first().cloned().flatten().as_deref() == Some(DB))
            .and_then(|row| row.get(1).cloned().flatten())
    }
}

/// Stand-in for the Kubernetes `<cluster>-primary` Service. In the cluster PgBouncer points at
/// that Service, whose Endpoints Patroni writes; here this thread polls each member's Patroni
/// REST `GET /primary` (200 only on the leader) and, when the leader changes, rewrites
/// PgBouncer's `[databases]` host and sends RELOAD on the admin console.
struct Follower {
    stop: Arc<AtomicBool>,
    switches: Arc<Mutex<Vec<(Instant, String)>>>,
    handle: Option<JoinHandle<()>>,
}

impl Follower {
    fn start(members: Vec<Node>, bouncer: Bouncer, current: Ipv4Addr) -> Follower {
        let stop = Arc::new(AtomicBool::new(false));
        let switches = Arc::new(Mutex::new(Vec::new()));
        let (s, sw) = (stop.clone(), switches.clone());
        let handle = std::thread::spawn(move || {
            let mut current = current;
            while !s.load(Ordering::SeqCst) {
                if let Some(l) = leader_of(&members) {
                    if l.ip != current {
                        bouncer.write_ini(l.ip);
                        if bouncer.admin("RELOAD").is_ok() {
                            current = l.ip;
                            sw.lock().unwrap().push((Instant::now(), l.name.clone()));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Follower {
            stop,
            switches,
            handle: Some(handle),
        }
    }

    fn stop(mut self) -> Vec<(Instant, String)> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.switches.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct FailoverMetrics {
    failover_seconds: f64,
    writes_resume_seconds: f64,
    acknowledged: usize,
    acknowledged_lost: usize,
    ttl_adjusted: bool,
}

/// 3 Patroni members + PgBouncer; a writer through PgBouncer; hard crash of the primary host.
fn failover_scenario() -> FailoverMetrics {
    let c = Cluster::new(&["pg1", "pg2", "pg3"], &["pgb"]);
    let old = c.bootstrap();
    let bouncer = Bouncer::start(&c, "pgb", old.ip);
    let pgb = bouncer.node.clone();
    let follower = Follower::start(c.db.clone(), bouncer.clone(), old.ip);
    let writer = Writer::start(pgb.ip, 6432, 1);
    writer.wait_acks(50, None, Duration::from_secs(30));
    // The crash only proves something while a synchronous standby is listed, by PostgreSQL
    // (pg_stat_replication) and by Patroni (the DCS sync key, shown as role `sync_standby` in
    // GET /cluster). Patroni sets synchronous_standby_names first and publishes the sync key up
    // to one HA loop later; while the key is empty any healthy replica may be promoted.
    let mut oc = pg_connect(old.ip, 5432, "postgres").expect("connect leader");
    let sync = wait_for(
        "a synchronous standby listed by PostgreSQL and Patroni",
        Duration::from_secs(60),
        || {
            let pg = sync_standbys(&mut oc);
            let dcs = patroni_sync_standbys(&old);
            (!pg.is_empty() && pg == dcs).then_some(pg)
        },
    );
    drop(oc);
    c.move_etcd_leader_off(&old);
    // Hard crash: link down, then SIGKILL every process of the host (etcd member included).
    let t0 = Instant::now();
    c.lab.kill_host(&old.name).expect("kill primary host");
    let killed = Instant::now();
    let survivors: Vec<Node> =
        c.db.iter()
            .filter(|n| n.name != old.name)
            .cloned()
            .collect();

    // Failover: the first survivor that commits a write directly.
    let (new_name, t_fail) = wait_for("a survivor accepts writes", Duration::from_secs(90), || {
        survivors.iter().find_map(|n| {
            let mut cl = pg_connect(n.ip, 5432, DB).ok()?;
            cl.simple_query("INSERT INTO probes DEFAULT VALUES").ok()?;
            Some((n.name.clone(), Instant::now()))
        })
    });
    let failover_seconds = (t_fail - t0).as_secs_f64();
    let new = c.node(&new_name).clone();
    assert_ne!(new.name, old.name);
    assert!(
        sync.split(',').any(|s| s == new.name),
        "promoted {} but the synchronous standby was {sync}\n{}",
        new.name,
        c.patroni_logs()
    );
    let rest = c.wait_leader(Duration::from_secs(30));
    assert_eq!(rest.name, new.name, "Patroni REST leader");

    // Writes through PgBouncer resume (only the new primary can acknowledge after the kill).
    writer.wait_acks(20, Some(killed), Duration::from_secs(60));
    let (acks, errors) = writer.stop();
    let switches = follower.stop();
    let resumed = acks
        .iter()
        .find(|a| a.at > killed)
        .expect("acks after the crash");
    let writes_resume_seconds = (resumed.at - t0).as_secs_f64();
    assert!(
        switches.iter().any(|(_, n)| *n == new.name),
        "follower never switched PgBouncer to {}: {switches:?}",
        new.name
    );
    assert_eq!(
        bouncer.target().as_deref(),
        Some(new.ip.to_string().as_str()),
        "PgBouncer's target"
    );

    // Every acknowledged id is on the new primary.
    let mut nc = pg_connect(new.ip, 5432, DB).expect("connect new primary");
    let present = row_ids(&mut nc);
    let lost = missing_acks(&acks, &present);
    let ttl_adjusted =
        c.db.iter()
            .any(|n| tail(&n.patroni_log(), 100_000).contains("can't be smaller"));
    eprintln!(
        "failover: {} -> {} in {failover_seconds:.1} s, writes resumed through PgBouncer after \
         {writes_resume_seconds:.1} s, {} acknowledged, {} lost, {} writer errors \
         (first: {:?})",
        old.name,
        new.name,
        acks.len(),
        lost.len(),
        errors.len(),
        errors.first()
    );
    assert!(
        lost.is_empty(),
        "acknowledged rows lost: {lost:?}\n{}",
        c.patroni_logs()
    );
    FailoverMetrics {
        failover_seconds,
        writes_resume_seconds,
        acknowledged: acks.len(),
        acknowledged_lost: lost.len(),
        ttl_adjusted,
    }
}

/// Seconds between the crash and the newest commit a restore from the repo brings back.
fn pitr_scenario(write_before_crash: Duration) -> f64 {
    let c = Cluster::new(&["pg1"], &["restore"]);
    let leader = c.bootstrap();
    c.full_backup(&leader);
    // pgBackRest picks the backup for a time target by its stop time in whole seconds: a target
    // in the same second as the backup's end finds no backup set.
    std::thread::sleep(Duration::from_millis(1100));
    let mut db = pg_connect(leader.ip, 5432, DB).expect("connect leader");
    for id in 1..=10 {
        db.simple_query(&format!("INSERT INTO writes (id) VALUES ({id})"))
            .expect("insert");
    }
    // The target, from the server's clock, between row 10's and row 11's commits.
    let target = one(
        &mut db,
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'",
    );
    for id in 11..=20 {
        db.simple_query(&format!("INSERT INTO writes (id) VALUES ({id})"))
            .expect("insert");
    }
    switch_and_wait_archived(&mut db, Duration::from_secs(30));
    let r = c.restore(
        "restore",
        "pitr",
        5433,
        &format!("--type=time --target='{target}' --target-action=promote"),
    );
    let expected: BTreeSet<u64> = (1..=10).collect();
    assert_eq!(
        r.ids, expected,
        "restore to {target}: exactly rows 1..=10 (committed before the target)"
    );
    drop(db);

    // Recovery point after a hard crash: the newest commit a restore of the latest archive has.
    let writer = Writer::start(leader.ip, 5432, 1000);
    writer.wait_acks(10, None, Duration::from_secs(30));
    std::thread::sleep(write_before_crash);
    let crash_epoch = epoch_now();
    c.lab.kill_host(&leader.name).expect("kill primary host");
    let (acks, _) = writer.stop();
    let r = c.restore("restore", "latest", 5434, "--type=default");
    let newest = r.newest.expect("restored rows");
    // The restore is a consistent prefix: no acknowledged row up to the newest restored one is
    // missing, and the rows before the crash phase are all there.
    let last_restored = r.ids.iter().copied().max().unwrap_or(0);
    let holes: Vec<u64> = acks
        .iter()
        .map(|a| a.id)
        .filter(|id| *id <= last_restored && !r.ids.contains(id))
        .collect();
    assert!(holes.is_empty(), "restore has holes: {holes:?}");
    assert!((1..=20).all(|id| r.ids.contains(&id)));
    let lag = crash_epoch - newest;
    eprintln!(
        "pitr: target {target} -> rows 1..=10; after a crash the newest restorable commit is \
         {lag:.1} s behind (last acknowledged {:.1} s behind)",
        crash_epoch - acks.last().map_or(crash_epoch, |a| a.server_epoch)
    );
    lag
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn failover_loses_no_acknowledged_row() {
    let m = failover_scenario();
    assert_eq!(m.acknowledged_lost, 0);
    assert!(m.acknowledged >= 70);
}

#[test]
fn pitr_restores_exactly_the_rows_before_the_target() {
    pitr_scenario(Duration::from_secs(3));
}

/// The NFS share disappears while the primary archives: writes go on, pg_stat_archiver counts
/// failures (what the archive alert reads), archiving catches up once the share is back, and a
/// restore of the latest archive holds every acknowledged row.
#[test]
fn archiving_survives_the_share_going_away() {
    let c = Cluster::new(&["pg1"], &["restore"]);
    let leader = c.bootstrap();
    c.full_backup(&leader);
    let mut db = pg_connect(leader.ip, 5432, DB).expect("connect leader");
    let writer = Writer::start(leader.ip, 5432, 1);
    writer.wait_acks(20, None, Duration::from_secs(30));
    let (_, failed_before) = archiver(&mut db);
    // Share gone, on the primary's host only: an empty read-only mount hides the repo.
    sh_ok(
        &c.lab,
        &leader.name,
        &format!("mount -t tmpfs -o ro,size=64k ffe-share-gone {BACKUP_MOUNT}"),
    );
    let stuck = one(&mut db, "SELECT pg_walfile_name(pg_switch_wal())");
    let failed_during = wait_for(
        "pg_stat_archiver.failed_count increases",
        Duration::from_secs(30),
        || {
            let (_, f) = archiver(&mut db);
            (f > failed_before).then_some(f)
        },
    );
    writer.wait_acks(50, Some(Instant::now()), Duration::from_secs(30));
    let last = one(
        &mut db,
        "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
    );
    assert!(last < stuck, "{stuck} archived while the share was gone");
    sh_ok(&c.lab, &leader.name, &format!("umount {BACKUP_MOUNT}"));
    let (acks, _) = writer.stop();
    // The archiver retries on its next wake-up; a segment switch wakes it.
    let seg = switch_and_wait_archived(&mut db, Duration::from_secs(90));
    assert!(seg > stuck, "{seg} after {stuck}");
    let r = c.restore("restore", "latest", 5433, "--type=default");
    let lost = missing_acks(&acks, &r.ids);
    eprintln!(
        "share gone: failed_count {failed_before} -> {failed_during}, {} rows acknowledged, \
         {} missing from the restore",
        acks.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "acknowledged rows missing from the archive: {lost:?}"
    );
}

/// Members Patroni lists as `sync_standby` (from the DCS sync key), comma-separated, sorted.
fn patroni_sync_standbys(n: &Node) -> String {
    let Some((200, body)) = http_get(n.ip, 8008, "/cluster", Duration::from_secs(2)) else {
        return String::new();
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let mut names: Vec<&str> = v["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "sync_standby")
        .filter_map(|m| m["name"].as_str())
        .collect();
    names.sort();
    names.join(",")
}

fn sync_standbys(c: &mut postgres::Client) -> String {
    one(
        c,
        "SELECT coalesce(string_agg(application_name, ',' ORDER BY application_name), '') \
         FROM pg_stat_replication WHERE sync_state = 'sync'",
    )
}

/// A replica's disk fills up while it is the synchronous standby: the primary keeps committing
/// (Patroni hands the synchronous role to the other replica) and no acknowledged row is lost.
#[test]
fn replica_with_a_full_disk_does_not_stop_writes() {
    let c = Cluster::new(&["pg1", "pg2", "pg3"], &[]);
    let small = c.node("pg3").clone();
    // pg3's data dir on a small tmpfs in pg3's own mount namespace, before Patroni clones it.
    sh_ok(
        &c.lab,
        "pg3",
        &format!(
            "mount -t tmpfs -o size=160m,mode=0700,uid=$(id -u postgres),gid=$(id -g postgres) \
             ffe-small-disk {}",
            q(&small.vol())
        ),
    );
    // pg1 leads; pg3 joins first so it becomes the synchronous standby; then pg2.
    c.start_patroni("pg1");
    let leader = c.wait_leader(Duration::from_secs(60));
    assert_eq!(leader.name, "pg1");
    c.init_db(&leader);
    c.start_patroni("pg3");
    let mut db = pg_connect(leader.ip, 5432, DB).expect("connect leader");
    wait_for("pg3 synchronous", Duration::from_secs(60), || {
        (sync_standbys(&mut db) == "pg3").then_some(())
    });
    c.start_patroni("pg2");
    c.wait_streaming(&leader, 2);
    let writer = Writer::start(leader.ip, 5432, 1);
    writer.wait_acks(30, None, Duration::from_secs(30));

    // Fill pg3's disk but 1 MiB; the next WAL segment (16 MiB) cannot be created there.
    sh_ok(
        &c.lab,
        "pg3",
        &format!(
            "cd {v} && fallocate -l $(( $(df --output=avail -B1 . | tail -n1) - 1048576 )) filler",
            v = q(&small.vol())
        ),
    );
    one(&mut db, "SELECT pg_switch_wal()::text");
    wait_for(
        "pg2 takes the synchronous role",
        Duration::from_secs(90),
        || (sync_standbys(&mut db) == "pg2").then_some(()),
    );
    writer.wait_acks(50, Some(Instant::now()), Duration::from_secs(60));
    let (acks, _) = writer.stop();
    let stall = acks
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64())
        .fold(0.0, f64::max);
    let pg3_log = std::fs::read_dir(small.base.join("pglog"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect::<String>()
        })
        .unwrap_or_default();
    assert!(
        pg3_log.contains("No space left on device"),
        "pg3 never ran out of space:\n{}",
        pg3_log
            .lines()
            .rev()
            .take(10)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let present = row_ids(&mut db);
    let lost = missing_acks(&acks, &present);
    eprintln!(
        "disk full: pg3 out of space, sync standby now pg2, longest pause between \
         acknowledged writes {stall:.1} s, {} acknowledged, {} lost",
        acks.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged rows lost: {lost:?}");
}

/// `bench/postgres`: failover runs + the PITR recovery point after a crash, as JSON.
#[test]
#[ignore = "benchmark: run by bench/postgres"]
fn bench_postgres() {
    let runs: usize = std::env::var("FFE_PG_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    // Long enough for archive_timeout to switch WAL segments on its own at least once.
    let write_secs: u64 = std::env::var("FFE_PG_BENCH_PITR_WRITE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(75);
    let settings = load_settings();
    let m: Vec<FailoverMetrics> = (0..runs).map(|_| failover_scenario()).collect();
    let pitr = pitr_scenario(Duration::from_secs(write_secs));
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let fo: Vec<f64> = m.iter().map(|x| x.failover_seconds).collect();
    let wr: Vec<f64> = m.iter().map(|x| x.writes_resume_seconds).collect();
    let r2 = |x: f64| (x * 100.0).round() / 100.0;
    let out = json!({
        "failover_seconds": r2(med(fo.clone())),
        "failover_seconds_max": r2(fo.iter().copied().fold(0.0, f64::max)),
        "failover_seconds_runs": fo.iter().map(|x| r2(*x)).collect::<Vec<_>>(),
        "writes_resume_seconds": r2(med(wr.clone())),
        "writes_resume_seconds_max": r2(wr.iter().copied().fold(0.0, f64::max)),
        "writes_resume_seconds_runs": wr.iter().map(|x| r2(*x)).collect::<Vec<_>>(),
        "acknowledged_rows": m.iter().map(|x| x.acknowledged).sum::<usize>(),
        "acknowledged_rows_lost": m.iter().map(|x| x.acknowledged_lost).sum::<usize>(),
        "pitr_recovery_point_seconds": r2(pitr),
        "pitr_write_seconds_before_crash": write_secs,
        "runs": runs,
        "patroni_adjusted_ttl": m.iter().any(|x| x.ttl_adjusted),
        "settings": {
            "ttl": settings.patroni.ttl,
            "loop_wait": settings.patroni.loop_wait,
            "retry_timeout": settings.patroni.retry_timeout,
            "synchronous_mode": settings.patroni.synchronous_mode,
            "archive_timeout": settings.postgresql_parameters.get("archive_timeout").map(scalar),
        },
    });
    println!("BENCH_JSON {out}");
}

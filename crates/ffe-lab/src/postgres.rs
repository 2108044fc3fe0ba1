//! Postgres HA on the real engines on lab hosts: Debian's PostgreSQL 15, Patroni, pgBackRest,
//! PgBouncer, and etcd as Patroni's DCS. Needs root.
//!
//! The Patroni timings, the PostgreSQL parameters, the PgBouncer settings and the pgBackRest
//! options come from `terraform/modules/postgres/ha-settings.yaml`, the file the Terraform module
//! renders into the PerconaPGCluster: the lab runs what the cluster runs. Values that only exist
//! in the lab (ports, paths, etcd's own timings, the pgBackRest retention) are named where they
//! are set.
//!
//! Stand-ins, named:
//!
//! * etcd (plain HTTP, one member per database host) stands in for the Kubernetes API as
//!   Patroni's DCS;
//! * [`PrimaryFollower`] (a thread polling Patroni's REST `GET /primary` and re-pointing
//!   PgBouncer) stands in for the Kubernetes `<cluster>-primary` Service whose Endpoints Patroni
//!   writes;
//! * [`PgLab::primary_service`] (a TCP forwarder in the test process following Patroni's leader)
//!   stands in for the same Service as a client reaches it (kube-proxy to the leader's pod);
//! * the lab's shared directory mounted at [`BACKUP_MOUNT`] stands in for the NFS backup share;
//! * Patroni's REST API is plain HTTP here ([`PgNode::patroni_url`]); the Percona pods serve it
//!   over HTTPS.
//!
//! Daemons are started over SSH, detached (`setsid -f`), inside their host's namespaces; they are
//! stopped by PID: SIGKILL ([`PgLab::kill_patroni`], [`Lab::kill_host`], the lab's teardown) or
//! SIGTERM to Patroni ([`PgLab::stop_patroni`], the kubelet stopping a deleted pod).
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use ffe_lab::postgres::PgLab;
//! let c = PgLab::create(&["pg1", "pg2", "pg3"], &["pgb"])?; // etcd up, configs written
//! let leader = c.start_healthy("pgb")?; // Patroni, database, stanza, full backup, PgBouncer
//! let (ip, port) = c.pgbouncer_address().ok_or_else(|| anyhow::anyhow!("no PgBouncer"))?;
//! c.kill_patroni(&leader.name)?; // Patroni + PostgreSQL of one node SIGKILLed by PID
//! c.start_patroni(&leader.name)?; // it comes back (pg_rewind if needed) as a replica
//! let leader = c.wait_healthy(std::time::Duration::from_secs(120))?;
//! # let _ = (ip, port, leader); Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use serde_json::json;

use crate::lab::{kill_pids, Lab, LabSpec};
use crate::vault::tail;

/// Where every host mounts the lab's shared backup dir (the NFS share's stand-in).
pub const BACKUP_MOUNT: &str = "/mnt/backups";
/// Debian 12's PostgreSQL 15 binaries.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// Patroni `scope` (the cluster name in the DCS).
pub const SCOPE: &str = "ffe-lab";
/// pgBackRest stanza.
pub const STANZA: &str = "db";
/// The database [`PgLab::create_database`] creates and PgBouncer serves.
pub const DB: &str = "ffe";
/// PostgreSQL's port on every database host.
pub const PG_PORT: u16 = 5432;
/// Patroni's REST port (plain HTTP in the lab).
pub const PATRONI_PORT: u16 = 8008;
/// PgBouncer's port (the port the module gives the cluster's PgBouncer).
pub const PGBOUNCER_PORT: u16 = 6432;
/// etcd's client port (plain HTTP in the lab).
pub const ETCD_CLIENT_PORT: u16 = 2379;
/// Lab value for the module's `repo1-retention-full` (= `backup_retention_days`, a Terraform
/// variable the settings file does not hold). Retention never triggers in a test this short.
const LAB_RETENTION_DAYS: u32 = 7;

// ---------------------------------------------------------------------------------------------
// The single source: ha-settings.yaml
// ---------------------------------------------------------------------------------------------

/// `terraform/modules/postgres/ha-settings.yaml`. Unknown keys are refused so a setting added
/// there cannot silently go unproven in the lab.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaSettings {
    pub patroni: PatroniSettings,
    pub postgresql_parameters: BTreeMap<String, serde_yaml_ng::Value>,
    /// PgBouncer `[pgbouncer]` settings (pool mode, TCP timeouts), written into pgbouncer.ini.
    pub pgbouncer: BTreeMap<String, serde_yaml_ng::Value>,
    pub pgbackrest: PgbackrestSettings,
}

/// The Patroni DCS settings (bootstrap `dcs` section).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatroniSettings {
    pub ttl: u32,
    pub loop_wait: u32,
    pub retry_timeout: u32,
    pub maximum_lag_on_failover: u64,
    pub synchronous_mode: bool,
    pub synchronous_node_count: u32,
    pub synchronous_mode_strict: bool,
    pub failsafe_mode: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PgbackrestSettings {
    /// Operator schedules (CronJobs in the cluster). The lab takes one full backup after
    /// bootstrap instead; the schedules are not pgbackrest.conf options.
    pub schedules: BTreeMap<String, String>,
    /// Monitoring's margin for the newest-backup alert, not a pgbackrest.conf option.
    pub backup_age_margin_hours: u32,
    /// The restore-check CronJob's schedule (not a pgbackrest.conf option; the lab runs the
    /// check on demand, `ffe-ha backup verify`).
    #[serde(default)]
    pub restore_check_schedule: Option<String>,
    /// Every other key is a pgBackRest option and goes into pgbackrest.conf `[global]`;
    /// pgBackRest itself then says whether it knows it (checked at stanza-create).
    #[serde(flatten)]
    pub options: BTreeMap<String, serde_yaml_ng::Value>,
}

/// Path of `ha-settings.yaml` in this repository.
pub fn settings_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../terraform/modules/postgres/ha-settings.yaml")
}

/// Read and parse [`settings_path`].
pub fn load_settings() -> Result<HaSettings> {
    let p = settings_path();
    let text = std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?;
    serde_yaml_ng::from_str(&text).with_context(|| format!("parse {}", p.display()))
}

/// A settings value as it is written into a config file (booleans as `on`/`off`).
pub fn scalar(v: &serde_yaml_ng::Value) -> Result<String> {
    match v {
        serde_yaml_ng::Value::String(s) => Ok(s.clone()),
        serde_yaml_ng::Value::Bool(b) => Ok(if *b { "on" } else { "off" }.to_string()),
        serde_yaml_ng::Value::Number(n) => Ok(n.to_string()),
        other => bail!("ha-settings.yaml: {other:?} is not a scalar"),
    }
}

// ---------------------------------------------------------------------------------------------
// Small clients: HTTP (Patroni REST, etcd health) and PostgreSQL
// ---------------------------------------------------------------------------------------------

/// A plain HTTP/1.0 GET: `(status, body)`, or `None` when the server does not answer in time.
pub fn http_get(ip: Ipv4Addr, port: u16, path: &str, timeout: Duration) -> Option<(u16, String)> {
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

/// The client [`pg_connect`] returns (for helpers in other crates' tests).
pub use ::postgres::Client;

/// Connect as `postgres` (trusted in the lab's pg_hba) with a 2 s connect timeout.
pub fn pg_connect(
    ip: Ipv4Addr,
    port: u16,
    db: &str,
) -> Result<::postgres::Client, ::postgres::Error> {
    ::postgres::Config::new()
        .host(&ip.to_string())
        .port(port)
        .user("postgres")
        .dbname(db)
        .connect_timeout(Duration::from_secs(2))
        .connect(::postgres::NoTls)
}

/// Every row of a simple-protocol query as text (PgBouncer's admin console and transaction
/// pooling both want the simple protocol: no named prepared statements).
pub fn query_rows(
    c: &mut ::postgres::Client,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, ::postgres::Error> {
    Ok(c.simple_query(sql)?
        .into_iter()
        .filter_map(|m| match m {
            ::postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect())
}

/// The first column of the first row.
pub fn query_one(c: &mut ::postgres::Client, sql: &str) -> Result<String> {
    let r = query_rows(c, sql).map_err(|e| anyhow!("{sql}: {}", err_text(&e)))?;
    r.first()
        .and_then(|row| row.first().cloned().flatten())
        .ok_or_else(|| anyhow!("{sql}: no value"))
}

/// The server's message when there is one (`postgres::Error`'s Display says only "db error").
pub fn err_text(e: &::postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

/// Poll `f` every 100 ms until it returns `Some`, or fail naming `what` after `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?}: {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `chown -R postgres:postgres` (the daemons run as `postgres`).
pub fn chown_postgres(p: &Path) -> Result<()> {
    let st = std::process::Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(p)
        .status()
        .context("spawn chown")?;
    if !st.success() {
        bail!("chown -R postgres:postgres {}: {st}", p.display());
    }
    Ok(())
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// The command line of a process (`/proc/PID/cmdline`, split at NULs); empty when it is gone.
fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The parent PID (`/proc/PID/stat` field 4; the command name before it may hold spaces).
fn parent_pid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------------
// The cluster on lab hosts
// ---------------------------------------------------------------------------------------------

/// One host of the Postgres lab (a database member or a plain host such as PgBouncer's).
#[derive(Debug, Clone)]
pub struct PgNode {
    /// Lab host name; also the Patroni member name and the etcd member name.
    pub name: String,
    pub ip: Ipv4Addr,
    /// The host's own `pg` directory (same path inside and outside its namespaces): configs,
    /// data, logs.
    pub base: PathBuf,
}

impl PgNode {
    /// Parent of the data dir: a plain dir, or a mount a test puts there (e.g. a small tmpfs).
    pub fn vol(&self) -> PathBuf {
        self.base.join("vol")
    }
    /// PostgreSQL's data directory.
    pub fn data(&self) -> PathBuf {
        self.vol().join("data")
    }
    /// `unix_socket_directories` of this host's instances.
    pub fn sockets(&self) -> PathBuf {
        self.base.join("run")
    }
    pub fn pgbackrest_conf(&self) -> PathBuf {
        self.base.join("pgbackrest.conf")
    }
    pub fn patroni_config(&self) -> PathBuf {
        self.base.join("patroni.yml")
    }
    pub fn patroni_log(&self) -> PathBuf {
        self.base.join("patroni.log")
    }
    /// PostgreSQL's `log_directory` (logging collector).
    pub fn pg_log_dir(&self) -> PathBuf {
        self.base.join("pglog")
    }
    pub fn etcd_log(&self) -> PathBuf {
        self.base.join("etcd.log")
    }
    /// Patroni's REST API, `http://IP:8008`. **Stand-in difference, named:** the lab serves it
    /// over plain HTTP; the Percona pods serve it over HTTPS (with the operator's certificates).
    pub fn patroni_url(&self) -> String {
        format!("http://{}:{PATRONI_PORT}", self.ip)
    }
    /// This host's etcd client URL, `http://IP:2379` (plain HTTP in the lab).
    pub fn etcd_url(&self) -> String {
        format!("http://{}:{ETCD_CLIENT_PORT}", self.ip)
    }
    /// Whether Patroni's REST answers `GET /primary` with 200 (this member leads).
    pub fn is_patroni_leader(&self) -> bool {
        http_get(
            self.ip,
            PATRONI_PORT,
            "/primary",
            Duration::from_millis(400),
        )
        .is_some_and(|(s, _)| s == 200)
    }
}

/// The member whose Patroni REST answers `GET /primary` with 200, if exactly one does.
pub fn leader_of(nodes: &[PgNode]) -> Option<PgNode> {
    let leaders: Vec<&PgNode> = nodes.iter().filter(|n| n.is_patroni_leader()).collect();
    match leaders.as_slice() {
        [one] => Some((*one).clone()),
        _ => None,
    }
}

/// A lab running the Postgres HA stack. Owns the [`Lab`]: dropping it stops the follower and the
/// primary service, then tears the lab down (every process by PID).
pub struct PgLab {
    settings: HaSettings,
    /// The Patroni members (each also an etcd member).
    db: Vec<PgNode>,
    others: BTreeMap<String, PgNode>,
    bouncer: Mutex<Option<PgBouncer>>,
    follower: Mutex<Option<PrimaryFollower>>,
    service: Mutex<Option<PrimaryService>>,
    /// Last: dropped after the follower's and the service's threads stopped.
    lab: Lab,
}

impl std::fmt::Debug for PgLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLab")
            .field("db", &self.db)
            .field("others", &self.others)
            .field("slot", &self.lab.slot())
            .finish_non_exhaustive()
    }
}

impl PgLab {
    /// A lab with `db` Patroni hosts (etcd member + Patroni + PostgreSQL + pgBackRest each) and
    /// `others` plain hosts (pgBackRest config too, e.g. for restores; PgBouncer); configs
    /// written, etcd started and healthy, Patroni not yet started.
    pub fn create(db: &[&str], others: &[&str]) -> Result<PgLab> {
        if db.is_empty() {
            bail!("a Postgres lab needs at least one database host");
        }
        let settings = load_settings()?;
        let lab = Lab::create(LabSpec {
            hosts: db.iter().chain(others).map(|s| s.to_string()).collect(),
            backup_mount: PathBuf::from(BACKUP_MOUNT),
            ssh_port: 22,
        })
        .context("create the lab")?;
        let node = |name: &&str| -> Result<PgNode> {
            let h = lab.host(name)?;
            Ok(PgNode {
                name: h.name.clone(),
                ip: h.ip,
                base: h.root_dir.join("pg"),
            })
        };
        let c = PgLab {
            db: db.iter().map(node).collect::<Result<_>>()?,
            others: others
                .iter()
                .map(|n| Ok((n.to_string(), node(n)?)))
                .collect::<Result<_>>()?,
            settings,
            bouncer: Mutex::new(None),
            follower: Mutex::new(None),
            service: Mutex::new(None),
            lab,
        };
        let repo = c.pgbackrest_repo();
        std::fs::create_dir_all(&repo).with_context(|| format!("create {}", repo.display()))?;
        chown_postgres(&repo)?;
        for n in c.db.iter().chain(c.others.values()) {
            let pgbr = n.base.join("pgbr");
            for d in [
                n.vol(),
                n.sockets(),
                pgbr.join("lock"),
                pgbr.join("log"),
                pgbr.join("spool"),
            ] {
                std::fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
            }
            c.write_pgbackrest_conf(n, &n.data())?;
            chown_postgres(&n.base)?;
        }
        for n in &c.db {
            std::fs::write(n.patroni_config(), c.patroni_yaml(n)?)
                .with_context(|| format!("write {}", n.patroni_config().display()))?;
        }
        c.start_etcd()?;
        Ok(c)
    }

    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// What the lab runs with (`ha-settings.yaml`).
    pub fn settings(&self) -> &HaSettings {
        &self.settings
    }

    /// The database hosts (Patroni + etcd members), in the order given to [`create`](Self::create).
    pub fn db_nodes(&self) -> &[PgNode] {
        &self.db
    }

    /// The plain hosts.
    pub fn other_nodes(&self) -> impl Iterator<Item = &PgNode> {
        self.others.values()
    }

    /// Any host of the lab by name.
    pub fn node(&self, name: &str) -> Result<&PgNode> {
        self.db
            .iter()
            .chain(self.others.values())
            .find(|n| n.name == name)
            .ok_or_else(|| anyhow!("no Postgres lab host {name:?}"))
    }

    /// etcd's client endpoints, `http://IP:2379` per database host (plain HTTP in the lab).
    pub fn etcd_endpoints(&self) -> Vec<String> {
        self.db.iter().map(PgNode::etcd_url).collect()
    }

    /// The pgBackRest repository on this machine (inside the lab's shared backup dir).
    pub fn pgbackrest_repo(&self) -> PathBuf {
        self.lab.backup_dir().join("pgbackrest")
    }

    /// The pgBackRest repository as every host sees it (`repo1-path`).
    pub fn pgbackrest_repo_on_hosts(&self) -> PathBuf {
        Path::new(BACKUP_MOUNT).join("pgbackrest")
    }

    /// The pgBackRest stanza.
    pub fn stanza(&self) -> &'static str {
        STANZA
    }

    /// Run `cmd` as root on `host` over SSH; its output (stdout + stderr), or an error with it.
    pub fn run(&self, host: &str, cmd: &str) -> Result<String> {
        let out = self
            .lab
            .ssh(host, cmd)
            .with_context(|| format!("ssh {host}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            bail!("{host}: `{cmd}` failed ({}): {text}", out.status);
        }
        Ok(text)
    }

    /// pgbackrest.conf: the settings' pgBackRest options + this host's own paths, with `data` as
    /// `pg1-path` (the live data dir, or a restore target).
    pub fn write_pgbackrest_conf(&self, n: &PgNode, data: &Path) -> Result<()> {
        let mut s = format!(
            "[global]\nrepo1-path={}\n",
            self.pgbackrest_repo_on_hosts().display()
        );
        for (k, v) in &self.settings.pgbackrest.options {
            s.push_str(&format!("{k}={}\n", scalar(v)?));
        }
        let pgbr = n.base.join("pgbr");
        s.push_str(&format!(
            "repo1-retention-full={LAB_RETENTION_DAYS}\nlock-path={}\nlog-path={}\nspool-path={}\n\
             [{STANZA}]\npg1-path={}\npg1-socket-path={}\npg1-port={PG_PORT}\n",
            pgbr.join("lock").display(),
            pgbr.join("log").display(),
            pgbr.join("spool").display(),
            data.display(),
            n.sockets().display(),
        ));
        std::fs::write(n.pgbackrest_conf(), s)
            .with_context(|| format!("write {}", n.pgbackrest_conf().display()))
    }

    fn archive_command(n: &PgNode) -> String {
        format!(
            "pgbackrest --config={} --stanza={STANZA} archive-push \"%p\"",
            n.pgbackrest_conf().display()
        )
    }

    /// The Patroni config of one member: the settings' timings and parameters in the DCS
    /// section (as the operator puts them), this host's addresses and paths locally.
    fn patroni_yaml(&self, n: &PgNode) -> Result<String> {
        let p = &self.settings.patroni;
        let etcd: Vec<String> = self
            .db
            .iter()
            .map(|m| format!("{}:{ETCD_CLIENT_PORT}", m.ip))
            .collect();
        let mut dcs_params = BTreeMap::new();
        for (k, v) in &self.settings.postgresql_parameters {
            dcs_params.insert(k.clone(), json!(scalar(v)?));
        }
        dcs_params.insert("archive_mode".to_string(), json!("on"));
        let hba = [
            "local all all trust",
            "host all all 127.0.0.1/32 trust",
            "host all all 10.210.0.0/16 trust",
            "host replication replicator 127.0.0.1/32 trust",
            "host replication replicator 10.210.0.0/16 trust",
        ];
        let rest = format!("{}:{PATRONI_PORT}", n.ip);
        let cfg = json!({
            "scope": SCOPE,
            "name": n.name,
            "log": {"level": "INFO"},
            "restapi": {"listen": rest, "connect_address": rest},
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
                "listen": format!("{},127.0.0.1:{PG_PORT}", n.ip),
                "connect_address": format!("{}:{PG_PORT}", n.ip),
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
                    "log_directory": n.pg_log_dir(),
                },
            },
        });
        // Written as JSON (valid YAML): a YAML 1.2 emitter leaves `on` unquoted and Patroni's
        // PyYAML (YAML 1.1) would read it back as a boolean.
        serde_json::to_string_pretty(&cfg).context("render the Patroni config")
    }

    /// Start a daemon on `host`, detached from the ssh session (the lab kills it by PID).
    fn spawn(&self, host: &str, as_postgres: bool, cmd: &str, log: &Path) -> Result<()> {
        let run = if as_postgres {
            format!("runuser -u postgres -- {cmd}")
        } else {
            cmd.to_string()
        };
        self.run(
            host,
            &format!(
                "cd / && setsid -f {run} >>{} 2>&1 </dev/null",
                shell_quote(log)
            ),
        )
        .map(drop)
    }

    fn start_etcd(&self) -> Result<()> {
        for n in &self.db {
            self.spawn_etcd_member(n)?;
        }
        for n in &self.db {
            self.wait_etcd_healthy(n, Duration::from_secs(30))?;
        }
        Ok(())
    }

    fn spawn_etcd_member(&self, n: &PgNode) -> Result<()> {
        let initial: Vec<String> = self
            .db
            .iter()
            .map(|m| format!("{}=http://{}:2380", m.name, m.ip))
            .collect();
        // etcd's own timings are lab values (in the cluster the DCS is the Kubernetes API). With
        // an existing data dir (a restart) etcd ignores the --initial-* flags.
        let cmd = format!(
            "/usr/bin/etcd --name {name} --data-dir {dir} \
             --listen-peer-urls http://{ip}:2380 --initial-advertise-peer-urls http://{ip}:2380 \
             --listen-client-urls http://{ip}:{ETCD_CLIENT_PORT},http://127.0.0.1:{ETCD_CLIENT_PORT} \
             --advertise-client-urls http://{ip}:{ETCD_CLIENT_PORT} --initial-cluster {initial} \
             --initial-cluster-state new --initial-cluster-token ffe-lab-{slot} \
             --heartbeat-interval 100 --election-timeout 1000",
            name = n.name,
            dir = shell_quote(&n.base.join("etcd")),
            ip = n.ip,
            initial = initial.join(","),
            slot = self.lab.slot(),
        );
        self.spawn(&n.name, false, &cmd, &n.etcd_log())
    }

    /// Whether the etcd member on `n` answers `GET /health` with `"health":"true"`.
    pub fn etcd_healthy(&self, n: &PgNode) -> bool {
        http_get(
            n.ip,
            ETCD_CLIENT_PORT,
            "/health",
            Duration::from_millis(500),
        )
        .is_some_and(|(s, b)| s == 200 && b.contains("true"))
    }

    fn wait_etcd_healthy(&self, n: &PgNode, timeout: Duration) -> Result<()> {
        wait_until(&format!("etcd on {} healthy", n.name), timeout, || {
            self.etcd_healthy(n).then_some(())
        })
        .with_context(|| tail(&n.etcd_log(), 15))
    }

    /// Start the etcd member of database host `name` again (after [`Lab::kill_host`] or
    /// [`Lab::revive_host`]) with its data, and wait until it is healthy.
    pub fn start_etcd_member(&self, name: &str) -> Result<()> {
        let n = self.db_node(name)?.clone();
        self.spawn_etcd_member(&n)?;
        self.wait_etcd_healthy(&n, Duration::from_secs(30))
    }

    fn db_node(&self, name: &str) -> Result<&PgNode> {
        self.db
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| anyhow!("{name:?} is not a database host of this Postgres lab"))
    }

    /// Start Patroni on database host `name` (it starts, clones or rewinds PostgreSQL itself).
    pub fn start_patroni(&self, name: &str) -> Result<()> {
        let n = self.db_node(name)?;
        let cmd = format!("/usr/bin/patroni {}", shell_quote(&n.patroni_config()));
        self.spawn(name, true, &cmd, &n.patroni_log())
    }

    /// Start Patroni on every database host and wait (60 s) for a leader, returned.
    pub fn start_patroni_all(&self) -> Result<PgNode> {
        for n in &self.db {
            self.start_patroni(&n.name)?;
        }
        self.wait_leader(Duration::from_secs(60))
    }

    /// The last 40 lines of every member's Patroni log.
    pub fn patroni_logs(&self) -> String {
        self.db
            .iter()
            .map(|n| format!("--- {} ---\n{}", n.name, tail(&n.patroni_log(), 40)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn etcdctl(&self, endpoints: &str, args: &[&str]) -> Result<Vec<u8>> {
        let out = std::process::Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoints}"))
            .args(args)
            .output()
            .context("spawn etcdctl")?;
        if !out.status.success() {
            bail!(
                "etcdctl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(out.stdout)
    }

    /// Keep etcd's leader off `host`. With etcd as the DCS, a new etcd leader re-grants every
    /// lease its full TTL (etcd's lessor `Promote`), so crashing the etcd leader together with the
    /// Postgres primary would add up to a whole `ttl` to the failover. The cluster's DCS is the
    /// Kubernetes API, where Patroni expires the leader by the annotation's renew time, so that
    /// delay is a lab artefact. The crashed host's etcd member still dies with it.
    pub fn move_etcd_leader_off(&self, host: &PgNode) -> Result<()> {
        let out = self.etcdctl(
            &self.etcd_endpoints().join(","),
            &["endpoint", "status", "-w", "json"],
        )?;
        let st: serde_json::Value =
            serde_json::from_slice(&out).context("etcdctl endpoint status: not JSON")?;
        let list = st.as_array().cloned().unwrap_or_default();
        let id_of = |e: &serde_json::Value| e["Status"]["header"]["member_id"].as_u64();
        let leader_id = list.first().and_then(|e| e["Status"]["leader"].as_u64());
        let on_host = list
            .iter()
            .find(|e| e["Endpoint"].as_str() == Some(host.etcd_url().as_str()));
        let (Some(leader_id), Some(on_host)) = (leader_id, on_host) else {
            bail!(
                "etcdctl endpoint status: no leader or no member on {}: {st}",
                host.name
            );
        };
        if id_of(on_host) != Some(leader_id) {
            return Ok(());
        }
        let target = list
            .iter()
            .filter_map(id_of)
            .find(|id| *id != leader_id)
            .ok_or_else(|| anyhow!("no other etcd member to move the leader to: {st}"))?;
        self.etcdctl(&host.etcd_url(), &["move-leader", &format!("{target:x}")])
            .map(drop)
    }

    /// The member whose Patroni REST answers `GET /primary` with 200, if exactly one does.
    pub fn leader(&self) -> Option<PgNode> {
        leader_of(&self.db)
    }

    /// Wait for exactly one Patroni leader.
    pub fn wait_leader(&self, timeout: Duration) -> Result<PgNode> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.leader() {
                return Ok(l);
            }
            if Instant::now() >= deadline {
                bail!(
                    "no Patroni leader within {timeout:?}\n{}",
                    self.patroni_logs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Patroni's `GET /cluster` (members, roles, state, lag) from the first member that answers.
    pub fn patroni_cluster(&self) -> Option<serde_json::Value> {
        self.db.iter().find_map(|n| {
            let (status, body) = http_get(n.ip, PATRONI_PORT, "/cluster", Duration::from_secs(2))?;
            (status == 200)
                .then(|| serde_json::from_str(&body).ok())
                .flatten()
        })
    }

    /// `(streaming, synchronous)` standbys in the leader's `pg_stat_replication`.
    fn replication_counts(leader: &PgNode) -> Option<(usize, usize)> {
        let sql = "SELECT count(*) FILTER (WHERE state = 'streaming') || ' ' || \
                   count(*) FILTER (WHERE sync_state = 'sync') FROM pg_stat_replication";
        let mut c = pg_connect(leader.ip, PG_PORT, "postgres").ok()?;
        let v = query_one(&mut c, sql).ok()?;
        let mut it = v.split(' ').map(|x| x.parse::<usize>().unwrap_or(0));
        Some((it.next().unwrap_or(0), it.next().unwrap_or(0)))
    }

    /// Wait (60 s) until `leader` streams to `replicas` standbys, at least one of them
    /// synchronous.
    pub fn wait_streaming(&self, leader: &PgNode, replicas: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some((streaming, sync)) = Self::replication_counts(leader) {
                if streaming >= replicas && (replicas == 0 || sync >= 1) {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "{replicas} replicas not streaming (one sync) within 60 s\n{}",
                    self.patroni_logs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Wait until the cluster is healthy again: exactly one Patroni leader, every other database
    /// member streaming from it (one synchronous when the settings' `synchronous_mode` is on),
    /// and, when PgBouncer runs, PgBouncer sending [`DB`] to that leader. Returns the leader.
    pub fn wait_healthy(&self, timeout: Duration) -> Result<PgNode> {
        let replicas = self.db.len() - 1;
        let want_sync = self.settings.patroni.synchronous_mode && replicas > 0;
        let bouncer = self.pgbouncer();
        let mut last;
        let deadline = Instant::now() + timeout;
        loop {
            match self.leader() {
                None => last = "not exactly one Patroni leader".into(),
                Some(l) => match Self::replication_counts(&l) {
                    None => last = format!("leader {}: pg_stat_replication unreadable", l.name),
                    Some((streaming, sync)) if streaming < replicas || (want_sync && sync < 1) => {
                        last = format!(
                            "leader {}: {streaming} of {replicas} replicas streaming, {sync} sync",
                            l.name
                        )
                    }
                    Some(_) => {
                        let target = bouncer.as_ref().map(PgBouncer::target);
                        match target {
                            Some(t) if t.as_deref() != Some(l.ip.to_string().as_str()) => {
                                last = format!(
                                    "leader {} ({}), PgBouncer sends {DB} to {t:?}",
                                    l.name, l.ip
                                )
                            }
                            _ => return Ok(l),
                        }
                    }
                },
            }
            if Instant::now() >= deadline {
                bail!(
                    "cluster not healthy within {timeout:?}: {last}\n{}",
                    self.patroni_logs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `CREATE DATABASE ffe` on the leader.
    pub fn create_database(&self, leader: &PgNode) -> Result<()> {
        let mut c = pg_connect(leader.ip, PG_PORT, "postgres")
            .map_err(|e| anyhow!("connect to {}: {}", leader.name, err_text(&e)))?;
        c.batch_execute(&format!("CREATE DATABASE {DB}"))
            .map_err(|e| anyhow!("CREATE DATABASE {DB}: {}", err_text(&e)))
    }

    /// `pgbackrest … {args}` as `postgres` on `host` with its pgbackrest.conf; the output.
    pub fn pgbackrest(&self, host: &str, args: &str) -> Result<String> {
        let n = self.node(host)?;
        self.run(
            host,
            &format!(
                "runuser -u postgres -- pgbackrest --config={} --stanza={STANZA} {args}",
                shell_quote(&n.pgbackrest_conf())
            ),
        )
    }

    /// `pgbackrest stanza-create` on the leader; the output. pgBackRest warns about any
    /// pgbackrest.conf key it does not know, so an "invalid option" is an error: the settings'
    /// keys must all be real pgBackRest 2.45 options.
    pub fn stanza_create(&self, leader: &PgNode) -> Result<String> {
        let out = self.pgbackrest(&leader.name, "stanza-create")?;
        if out.contains("invalid option") {
            bail!("pgbackrest stanza-create: {out}");
        }
        Ok(out)
    }

    /// A full backup from the leader (`--start-fast`: the lab does not wait for a checkpoint).
    pub fn full_backup(&self, leader: &PgNode) -> Result<()> {
        self.pgbackrest(&leader.name, "--type=full --start-fast backup")
            .map(drop)
    }

    /// PgBouncer on `host` in front of `primary`, waited for until it listens. Kept as this
    /// lab's PgBouncer ([`pgbouncer`](Self::pgbouncer)); also returned.
    pub fn start_pgbouncer(&self, host: &str, primary: Ipv4Addr) -> Result<PgBouncer> {
        let settings = self
            .settings
            .pgbouncer
            .iter()
            .map(|(k, v)| Ok(format!("{k} = {}\n", scalar(v)?)))
            .collect::<Result<String>>()?;
        let b = PgBouncer {
            node: self.node(host)?.clone(),
            settings,
        };
        let users = b.node.base.join("userlist.txt");
        std::fs::write(&users, "\"postgres\" \"\"\n")
            .with_context(|| format!("write {}", users.display()))?;
        b.point_at(primary)?;
        chown_postgres(&b.node.base)?;
        self.spawn_pgbouncer(&b)?;
        *self.bouncer.lock().unwrap_or_else(|p| p.into_inner()) = Some(b.clone());
        Ok(b)
    }

    /// Start the PgBouncer daemon with its current pgbouncer.ini and wait until it listens.
    fn spawn_pgbouncer(&self, b: &PgBouncer) -> Result<()> {
        self.spawn(
            &b.node.name,
            true,
            &format!("/usr/sbin/pgbouncer {}", shell_quote(&b.ini_path())),
            &b.node.base.join("pgbouncer.out"),
        )?;
        wait_until("pgbouncer listening", Duration::from_secs(15), || {
            TcpStream::connect_timeout(&b.socket_addr(), Duration::from_millis(300)).ok()
        })
        .map(drop)
        .with_context(|| tail(&b.log_path(), 15))
    }

    /// This lab's PgBouncer, once started.
    pub fn pgbouncer(&self) -> Option<PgBouncer> {
        self.bouncer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// PgBouncer's `(ip, port)`, once started.
    pub fn pgbouncer_address(&self) -> Option<(Ipv4Addr, u16)> {
        self.pgbouncer().map(|b| b.address())
    }

    /// Start a [`PrimaryFollower`] for this lab's PgBouncer, owned by the lab (stopped when it
    /// is dropped). Replaces a running one.
    pub fn follow_primary(&self) -> Result<()> {
        let b = self
            .pgbouncer()
            .ok_or_else(|| anyhow!("follow_primary: PgBouncer not started"))?;
        let current = b
            .target()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| anyhow!("follow_primary: PgBouncer's target unreadable"))?;
        let f = PrimaryFollower::start(self.db.clone(), b, current);
        let old = self
            .follower
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(f);
        if let Some(old) = old {
            old.stop();
        }
        Ok(())
    }

    /// Everything up and healthy: Patroni on every database host (one leader, the others
    /// streaming, one synchronous), the database [`DB`], the pgBackRest stanza and a first full
    /// backup, PgBouncer on `pgbouncer_host` in front of the leader with a [`PrimaryFollower`].
    /// Returns the leader.
    pub fn start_healthy(&self, pgbouncer_host: &str) -> Result<PgNode> {
        let leader = self.start_patroni_all()?;
        self.create_database(&leader)?;
        self.stanza_create(&leader)?;
        self.wait_streaming(&leader, self.db.len() - 1)?;
        self.full_backup(&leader)?;
        self.start_pgbouncer(pgbouncer_host, leader.ip)?;
        self.follow_primary()?;
        Ok(leader)
    }

    /// PIDs of database host `name`'s Patroni, its postmaster and the postmaster's children.
    fn patroni_pids(&self, name: &str) -> Result<Vec<i32>> {
        let n = self.db_node(name)?;
        let config = n.patroni_config().display().to_string();
        let data = n.data().display().to_string();
        let pids = self.lab.host_pids(name)?;
        let mut found: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|p| {
                let args = cmdline(*p);
                // Patroni (and the runuser parent that waits for it): the config as an argument.
                // The postmaster: `postgres -D <data dir>`.
                args.iter().any(|a| *a == config || *a == data)
            })
            .collect();
        let children: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|p| parent_pid(*p).is_some_and(|pp| found.contains(&pp)))
            .collect();
        found.extend(children);
        found.sort_unstable();
        found.dedup();
        Ok(found)
    }

    /// Crash the Patroni + PostgreSQL of database host `name`: SIGKILL Patroni, its postmaster
    /// and the postmaster's children by PID (host, sshd, etcd member and PgBouncer stay up).
    /// Bring it back with [`start_patroni`](Self::start_patroni).
    pub fn kill_patroni(&self, name: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = self.patroni_pids(name)?;
            if pids.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("{name}: Patroni/PostgreSQL processes survive SIGKILL: {pids:?}");
            }
            kill_pids(&pids);
        }
    }

    /// Stop Patroni on database host `name` gracefully, as the kubelet stops a deleted pod: SIGTERM
    /// to the Patroni (python) process(es) found as [`kill_patroni`](Self::kill_patroni) finds
    /// them, not to PostgreSQL: Patroni shuts PostgreSQL down and, when it leads, releases the
    /// leader key itself. Waits (30 s) until none of the host's Patroni/PostgreSQL processes
    /// remain; then SIGKILLs the survivors and fails naming them. Nothing running: nothing to do.
    /// Bring it back with [`start_patroni`](Self::start_patroni).
    pub fn stop_patroni(&self, name: &str) -> Result<()> {
        let grace = Duration::from_secs(30);
        let config = self.db_node(name)?.patroni_config().display().to_string();
        let pids = self.patroni_pids(name)?;
        if pids.is_empty() {
            return Ok(());
        }
        // Patroni's own process has its config as an argument; `runuser` (its parent, which
        // waits for it and exits with it) does too but is not Patroni.
        let patroni: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|p| {
                let args = cmdline(*p);
                let runuser = args
                    .first()
                    .is_some_and(|a| Path::new(a).file_name() == Some("runuser".as_ref()));
                !runuser && args.contains(&config)
            })
            .collect();
        if patroni.is_empty() {
            bail!(
                "{name}: no Patroni process to stop, but these run: {}",
                describe_pids(&pids)
            );
        }
        for pid in &patroni {
            // SAFETY: kill(2) with a concrete PID; ESRCH (it just exited) is fine.
            unsafe {
                libc::kill(*pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + grace;
        loop {
            let left = self.patroni_pids(name)?;
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let what = describe_pids(&left);
                kill_pids(&left);
                bail!(
                    "{name}: still running {grace:?} after SIGTERM to Patroni {patroni:?}, \
                     SIGKILLed: {what}\n{}",
                    tail(&self.db_node(name)?.patroni_log(), 20)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// **Stand-in, named: the Kubernetes `<cluster>-primary` Service** as a client reaches it
    /// (kube-proxy forwarding to the pod Patroni's Endpoints name). A TCP forwarder in this (the
    /// test's) process on `127.0.0.1`: a thread asks every database member's Patroni REST
    /// `GET /primary` every 100 ms (exactly one 200 = the leader); each accepted connection is
    /// spliced to the current leader's PostgreSQL port, or closed at once when there is no
    /// leader or the connect fails (300 ms). Connections already spliced stay on the member they
    /// reached (as conntrack keeps them) and end when it closes them. At most 64 at a time.
    /// Started on the first call; later calls return the same address. Stopped when the lab is
    /// dropped.
    pub fn primary_service(&self) -> Result<SocketAddr> {
        let mut guard = self.service.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = guard.as_ref() {
            return Ok(s.addr);
        }
        let s = PrimaryService::start(self.db.clone())?;
        let addr = s.addr;
        *guard = Some(s);
        Ok(addr)
    }

    /// Crash host `name` the way the failover test does: on a database host etcd's leader is
    /// moved off it first (see [`move_etcd_leader_off`](Self::move_etcd_leader_off)), then
    /// [`Lab::kill_host`] (link down, every process SIGKILLed: Patroni, PostgreSQL, its etcd
    /// member, PgBouncer if it runs there).
    pub fn crash_host(&self, name: &str) -> Result<()> {
        let n = self.node(name)?.clone();
        if self.db.len() > 1 && self.db.iter().any(|d| d.name == name) {
            self.move_etcd_leader_off(&n)?;
        }
        self.lab
            .kill_host(name)
            .with_context(|| format!("kill host {name}"))
    }

    /// Bring a crashed host back: [`Lab::revive_host`]; on a database host its etcd member
    /// (healthy) and Patroni, which rejoins as a replica (pg_rewind when its timeline diverged);
    /// on PgBouncer's host PgBouncer (its [`PrimaryFollower`] re-points it). Wait with
    /// [`wait_healthy`](Self::wait_healthy).
    pub fn revive_host(&self, name: &str) -> Result<()> {
        self.node(name)?;
        self.lab
            .revive_host(name)
            .with_context(|| format!("revive host {name}"))?;
        if self.db.iter().any(|n| n.name == name) {
            self.start_etcd_member(name)?;
            self.start_patroni(name)?;
        }
        if let Some(b) = self.pgbouncer().filter(|b| b.node.name == name) {
            self.spawn_pgbouncer(&b)?;
        }
        Ok(())
    }
}

impl Drop for PgLab {
    fn drop(&mut self) {
        let f = self
            .follower
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(f) = f {
            f.stop();
        }
        let service = self
            .service
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(service);
    }
}

// ---------------------------------------------------------------------------------------------
// PgBouncer and the primary follower
// ---------------------------------------------------------------------------------------------

/// `PID (command line)` of each process, for error messages.
fn describe_pids(pids: &[i32]) -> String {
    pids.iter()
        .map(|p| format!("{p} ({})", cmdline(*p).join(" ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The forwarder behind [`PgLab::primary_service`]; its threads stop on drop.
struct PrimaryService {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// Connections the service splices at once; more are closed at accept.
const SERVICE_MAX_CONNECTIONS: usize = 64;
/// How long a splice thread blocks in `read` before it looks at the stop flag.
const SERVICE_READ_TICK: Duration = Duration::from_millis(200);

impl PrimaryService {
    fn start(members: Vec<PgNode>) -> Result<PrimaryService> {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind the primary service")?;
        listener
            .set_nonblocking(true)
            .context("primary service: non-blocking listener")?;
        let addr = listener
            .local_addr()
            .context("primary service: local address")?;
        let stop = Arc::new(AtomicBool::new(false));
        let leader: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let mut service = PrimaryService {
            addr,
            stop: stop.clone(),
            threads: Vec::new(),
        };
        let (s, l) = (stop.clone(), leader.clone());
        service.threads.push(
            std::thread::Builder::new()
                .name("primary-service-poll".into())
                .spawn(move || {
                    while !s.load(Ordering::SeqCst) {
                        let now =
                            current_leader(&members).map(|ip| SocketAddr::from((ip, PG_PORT)));
                        *l.lock().unwrap_or_else(|p| p.into_inner()) = now;
                        std::thread::sleep(Duration::from_millis(100));
                    }
                })
                .context("spawn the primary service's poller")?,
        );
        // On error `service` drops here and stops the poller.
        service.threads.push(
            std::thread::Builder::new()
                .name("primary-service-accept".into())
                .spawn(move || accept_loop(&listener, &leader, &stop))
                .context("spawn the primary service's acceptor")?,
        );
        Ok(service)
    }
}

impl Drop for PrimaryService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The one member whose Patroni answers `GET /primary` with 200 (all asked at once, 300 ms
/// each), or `None`.
fn current_leader(members: &[PgNode]) -> Option<Ipv4Addr> {
    let leaders: Vec<Ipv4Addr> = std::thread::scope(|sc| {
        let asks: Vec<_> = members
            .iter()
            .map(|m| {
                sc.spawn(move || {
                    http_get(m.ip, PATRONI_PORT, "/primary", Duration::from_millis(300))
                        .is_some_and(|(status, _)| status == 200)
                        .then_some(m.ip)
                })
            })
            .collect();
        asks.into_iter()
            .filter_map(|a| a.join().ok().flatten())
            .collect()
    });
    match leaders.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// Accept until `stop`; splice each connection to the leader of the moment (one thread each,
/// joined before returning).
fn accept_loop(listener: &TcpListener, leader: &Mutex<Option<SocketAddr>>, stop: &Arc<AtomicBool>) {
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            Err(_) => {
                // WouldBlock (nothing to accept) or a transient error: look again shortly.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        conns.retain(|c| !c.is_finished());
        let target = *leader.lock().unwrap_or_else(|p| p.into_inner());
        // No leader or too many connections: dropping `client` closes it at once.
        let Some(target) = target.filter(|_| conns.len() < SERVICE_MAX_CONNECTIONS) else {
            continue;
        };
        let stop = stop.clone();
        if let Ok(h) = std::thread::Builder::new()
            .name("primary-service-conn".into())
            .spawn(move || splice(client, target, &stop))
        {
            conns.push(h);
        }
    }
    for c in conns {
        let _ = c.join();
    }
}

/// Connect to `target` (300 ms) and copy both ways until either side closes or `stop`.
fn splice(client: TcpStream, target: SocketAddr, stop: &Arc<AtomicBool>) {
    let Ok(upstream) = TcpStream::connect_timeout(&target, Duration::from_millis(300)) else {
        return;
    };
    let setup = || -> std::io::Result<(TcpStream, TcpStream)> {
        for s in [&client, &upstream] {
            s.set_nonblocking(false)?;
            s.set_read_timeout(Some(SERVICE_READ_TICK))?;
            s.set_write_timeout(Some(Duration::from_secs(5)))?;
            s.set_nodelay(true)?;
        }
        Ok((client.try_clone()?, upstream.try_clone()?))
    };
    let Ok((client2, upstream2)) = setup() else {
        return;
    };
    let back_stop = stop.clone();
    let back = std::thread::Builder::new()
        .name("primary-service-back".into())
        .spawn(move || pump(upstream2, client2, &back_stop));
    if back.is_err() {
        return;
    }
    pump(client, upstream, stop);
    if let Ok(h) = back {
        let _ = h.join();
    }
}

/// Copy `from` -> `to` until EOF, an error or `stop`; then shut both down so the other
/// direction ends too.
fn pump(mut from: TcpStream, mut to: TcpStream, stop: &AtomicBool) {
    let mut buf = [0u8; 16 * 1024];
    while !stop.load(Ordering::SeqCst) {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// PgBouncer (transaction pooling) on one host. PgBouncer points at one fixed address.
#[derive(Debug, Clone)]
pub struct PgBouncer {
    node: PgNode,
    /// `key = value` lines from ha-settings.yaml's `pgbouncer` section (pool mode, TCP timeouts).
    settings: String,
}

impl PgBouncer {
    /// The host PgBouncer runs on.
    pub fn node(&self) -> &PgNode {
        &self.node
    }

    /// `(ip, 6432)`.
    pub fn address(&self) -> (Ipv4Addr, u16) {
        (self.node.ip, PGBOUNCER_PORT)
    }

    fn socket_addr(&self) -> SocketAddr {
        SocketAddr::from(self.address())
    }

    pub fn ini_path(&self) -> PathBuf {
        self.node.base.join("pgbouncer.ini")
    }

    pub fn log_path(&self) -> PathBuf {
        self.node.base.join("pgbouncer.log")
    }

    /// Write the lab's pgbouncer.ini with [`DB`] sent to `primary` (atomically; PgBouncer reads
    /// it at start and on RELOAD): the lab's addresses, auth and files, then ha-settings.yaml's
    /// `pgbouncer` section (the same settings the module gives the cluster's PgBouncer).
    pub fn point_at(&self, primary: Ipv4Addr) -> Result<()> {
        let b = &self.node.base;
        let ini = format!(
            "[databases]\n{DB} = host={primary} port={PG_PORT} dbname={DB}\n\n[pgbouncer]\n\
             listen_addr = {ip}\nlisten_port = {PGBOUNCER_PORT}\nunix_socket_dir = {sock}\n\
             auth_type = trust\nauth_file = {users}\nadmin_users = postgres\n\
             default_pool_size = 10\n{settings}\
             logfile = {log}\npidfile = {pid}\n",
            settings = self.settings,
            ip = self.node.ip,
            sock = self.node.sockets().display(),
            users = b.join("userlist.txt").display(),
            log = self.log_path().display(),
            pid = b.join("pgbouncer.pid").display(),
        );
        let tmp = b.join("pgbouncer.ini.tmp");
        std::fs::write(&tmp, ini).with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, self.ini_path())
            .with_context(|| format!("rename to {}", self.ini_path().display()))
    }

    /// A query on the admin console (`pgbouncer` database).
    pub fn admin(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, ::postgres::Error> {
        let mut c = pg_connect(self.node.ip, PGBOUNCER_PORT, "pgbouncer")?;
        query_rows(&mut c, sql)
    }

    /// The host PgBouncer currently sends [`DB`] to (admin console `SHOW DATABASES`).
    pub fn target(&self) -> Option<String> {
        let r = self.admin("SHOW DATABASES").ok()?;
        r.into_iter()
            .find(|row| row.first().cloned().flatten().as_deref() == Some(DB))
            .and_then(|row| row.get(1).cloned().flatten())
    }
}

/// Stand-in for the Kubernetes `<cluster>-primary` Service. In the cluster PgBouncer points at
/// that Service, whose Endpoints Patroni writes; here a thread polls each member's Patroni REST
/// `GET /primary` (200 only on the leader) every 200 ms and, when the leader changes, rewrites
/// PgBouncer's `[databases]` host and sends RELOAD on the admin console. Stopped on drop.
#[derive(Debug)]
pub struct PrimaryFollower {
    stop: Arc<AtomicBool>,
    switches: Arc<Mutex<Vec<(Instant, String)>>>,
    handle: Option<JoinHandle<()>>,
}

impl PrimaryFollower {
    /// Follow the leader among `members`, PgBouncer pointing at `current` now.
    pub fn start(members: Vec<PgNode>, bouncer: PgBouncer, current: Ipv4Addr) -> PrimaryFollower {
        let stop = Arc::new(AtomicBool::new(false));
        let switches = Arc::new(Mutex::new(Vec::new()));
        let (s, sw) = (stop.clone(), switches.clone());
        let handle = std::thread::spawn(move || {
            let mut current = current;
            while !s.load(Ordering::SeqCst) {
                if let Some(l) = leader_of(&members) {
                    if l.ip != current
                        && bouncer.point_at(l.ip).is_ok()
                        && bouncer.admin("RELOAD").is_ok()
                    {
                        current = l.ip;
                        sw.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((Instant::now(), l.name.clone()));
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        PrimaryFollower {
            stop,
            switches,
            handle: Some(handle),
        }
    }

    /// Stop the thread; every switch it made (when, to which member), in order.
    pub fn stop(mut self) -> Vec<(Instant, String)> {
        self.halt();
        self.switches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for PrimaryFollower {
    fn drop(&mut self) {
        self.halt();
    }
}

//! The ffe-ha operations CLI: argument parsing and output only; the work is in ffe-ops.
use std::io::Write;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use ffe_ops::inventory::SshOverrides;
use ffe_ops::{render, status, ExitCode, Inventory, InventoryError};

const EXIT_CODES: &str = "\
Exit codes:
  0  every check passed (warnings allowed unless --strict)
  1  at least one check failed (or ffe-ha itself failed: the reason is on stderr)
  2  the command line could not be parsed
  3  no usable inventory: no Terraform state in --tf-dir, no such directory, unreadable
     --inventory file, or a bad SSH setting
  4  nothing failed, but a check could not be evaluated (unreachable node, timeout)
  5  drill: refused before touching anything (cluster not healthy, quorum, no way to restore)

Output: a table on stdout (--output json for one JSON document); logs on stderr (RUST_LOG).
No command prints a secret: the inventory holds none; verify and status use the kubeconfig's
client key (or token) to reach the API and never print it.";

const PREFLIGHT_EXAMPLES: &str = "\
Examples:
  # before the first apply: the saved plan of the environment knows the nodes
  cd terraform/environments/ha && terraform plan -out=tfplan && ffe-ha --tf-plan tfplan preflight
  # after apply, from the environment directory (reads output ops_inventory of the state)
  ffe-ha preflight
  # another directory, JSON for a pipeline, warnings fail
  ffe-ha --tf-dir terraform/environments/ha preflight --output json --strict
  # without Terraform: an inventory file in the ops_inventory schema
  ffe-ha --inventory nodes.json preflight

Checks: ssh.reachable ssh.sudo os.supported cpu.min memory.min ports.free backup.mount
backup.shared clock.sync net.rtt disk.total (docs/operations.md explains each).";

const VERIFY_EXAMPLES: &str = "\
Examples:
  # after apply, from the environment directory (output ops_inventory, kubeconfig_path)
  ffe-ha verify
  # JSON for a pipeline or a cron job; warnings fail
  ffe-ha --tf-dir terraform/environments/ha verify --output json --strict
Reads, never writes. Reaches the API with the kubeconfig's client certificate, the nodes over
SSH, Vault's members over HTTPS (CA from Secret vault/vault-ca), Postgres without credentials.
Checks: api.vip nodes.ready etcd.health etcd.members etcd.leader etcd.alarms postgres.primary
postgres.replicas postgres.endpoint pgbouncer.answering vault.unsealed vault.initialized
vault.active certs.expiry backups.fresh (docs/operations.md explains each).";

const DRILL_EXAMPLES: &str = "\
Examples:
  # fail the Postgres primary (its pod is deleted), measure the failover, wait for the replica
  ffe-ha drill postgres-primary
  # fail the active Vault member; it comes back sealed and is unsealed with the state's keys
  ffe-ha drill vault-leader --output json --yes
  # from an inventory file: the unseal keys from a 0600 file
  ffe-ha --inventory inv.json drill vault-leader --vault-unseal-keys keys.json
  # stop a master (k3s and its containers) for 60 s, then start it again
  ffe-ha drill server --node master-2 --down-for 60
Runs `verify` first and refuses (exit 5) unless the cluster is healthy. Probes the API, the
Postgres primary endpoint and Vault every --probe-interval-ms while the failure lasts: a pod
deleted (as `kubectl delete pod`: graceful) and recreated by its StatefulSet, or a node's k3s
and containers stopped (k3s-killall.sh) and started again after --down-for. Reports each
endpoint's downtime and the recovery time against the seed's RTO (master or auto-failover:
< 10 minutes; worker: < 2 minutes). Exit 0: service restored within the RTO and everything whole
again within --timeout; 1: not recovered, or late; 5: refused.";

const BACKUP_VERIFY_EXAMPLES: &str = "\
Examples:
  # from the environment directory, after apply: restore Postgres, check the Vault snapshot
  ffe-ha backup verify
  # keep the restore Job and its pod (its log) for a look afterwards; JSON for a pipeline
  ffe-ha backup verify --keep-job --output json
Postgres: creates a Job from the restore-check CronJob (as `kubectl create job --from=cronjob/`
does) in the database namespace: it restores the newest pgBackRest backup and every archived WAL
segment after it into an emptyDir on a node, starts that copy (archive_mode off, the repository
mounted read-only), lists its databases and runs pg_amcheck; then the Job is deleted. The recovery
point is the commit time of the last transaction replayed. Vault: the newest Raft snapshot on the
backup share is read over SSH, every SHA256SUMS digest checked, then restored into a scratch
OpenBao on this machine (`bao`, 127.0.0.1, a temporary directory removed afterwards) and unsealed
with the cluster's unseal keys: the keys never enter the cluster. Without keys: digests only, a
warning. Both are judged against the seed's RPO (< 1 hour).
Checks: restore.postgres rpo.postgres restore.vault rpo.vault.
Exit 0: restored and within the RPO (warnings allowed unless --strict); 1: a restore failed.";

const STATUS_EXAMPLES: &str = "\
Examples:
  ffe-ha status                      # from the environment directory, after apply
  ffe-ha status --output json        # the same, one JSON document (nodes, services, backups)";

const ETCD_EXAMPLES: &str = "\
Examples:
  # the snapshots on the backup share, newest first (each server writes its own directory)
  ffe-ha etcd snapshots
  # restore one onto the servers of the inventory (asks first; --yes in scripts)
  ffe-ha etcd restore etcd-snapshot-master-0-1764806400
Restore runs k3s's cluster-reset sequence on the inventory's servers: every server must answer
and run k3s, else nothing stops. k3s stops on every server; the first in master_ips order runs
`k3s server --cluster-reset --cluster-reset-restore-path=<snapshot>` and starts; then each other
server moves its etcd data aside (kept as /var/lib/rancher/k3s/server/db.before-restore-<time>)
and joins it, one at a time. Agents keep running. Everything written to the cluster after the
snapshot is lost. Onto new hosts (other addresses), restore with Terraform instead:
k3s_restore_from_snapshot (docs/disaster-recovery.md).
Checks: etcd.snapshot etcd.snapshots etcd.restore.";

#[derive(Parser)]
#[command(
    name = "ffe-ha",
    version,
    about = "Operations CLI for the ffe-ha platform: checks nodes over SSH exactly as the Terraform provider reaches them",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(flatten)]
    inventory: InventoryArgs,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table, global = true)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

/// What `drill` fails.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DrillComponent {
    /// The Patroni leader's pod (a replica takes over).
    PostgresPrimary,
    /// The active Vault member's pod (a standby takes over; the pod comes back sealed).
    VaultLeader,
    /// A master: `k3s-killall.sh` on it, `systemctl start k3s` after --down-for.
    Server,
    /// A worker: `k3s-killall.sh` on it, `systemctl start k3s-agent` after --down-for.
    Worker,
}

impl DrillComponent {
    fn kind(self) -> ffe_ops::drill::DrillKind {
        match self {
            DrillComponent::PostgresPrimary => ffe_ops::drill::DrillKind::PostgresPrimary,
            DrillComponent::VaultLeader => ffe_ops::drill::DrillKind::VaultLeader,
            DrillComponent::Server => ffe_ops::drill::DrillKind::Server,
            DrillComponent::Worker => ffe_ops::drill::DrillKind::Worker,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Args)]
struct InventoryArgs {
    /// Environment directory whose Terraform state holds output ops_inventory.
    #[arg(long, value_name = "DIR", default_value = ".", global = true)]
    tf_dir: PathBuf,
    /// Saved plan (`terraform plan -out=FILE` in --tf-dir; the path is from the current
    /// directory): the inventory before the first apply.
    #[arg(long, value_name = "FILE", global = true)]
    tf_plan: Option<PathBuf>,
    /// Inventory file (JSON or YAML, ops_inventory schema) instead of Terraform.
    #[arg(
        long,
        value_name = "FILE",
        global = true,
        conflicts_with_all = ["tf_dir", "tf_plan"]
    )]
    inventory: Option<PathBuf>,
    /// SSH user (overrides the inventory's).
    #[arg(long, value_name = "USER", global = true)]
    ssh_user: Option<String>,
    /// SSH port (overrides the inventory's).
    #[arg(long, value_name = "PORT", global = true)]
    ssh_port: Option<i64>,
    /// SSH private key (overrides the inventory's).
    #[arg(long, value_name = "FILE", global = true)]
    ssh_key: Option<String>,
    /// known_hosts file pinning the nodes' host keys (overrides the inventory's).
    #[arg(long, value_name = "FILE", global = true)]
    known_hosts: Option<String>,
    /// Seconds to wait for an SSH connection (1-300; overrides the inventory's).
    #[arg(long, value_name = "SECONDS", global = true)]
    connect_timeout: Option<i64>,
}

/// How `verify` and `status` reach what the inventory does not hold.
#[derive(Args)]
struct ClusterArgs {
    /// Admin kubeconfig (default: the inventory's kubeconfig_path).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// PEM file with the CA of Vault's certificates (default: read Secret vault/vault-ca through the API).
    #[arg(long, value_name = "FILE")]
    vault_ca: Option<PathBuf>,
    /// etcd's JSON API as each master reaches its own member (k3s serves it on loopback only).
    #[arg(long, value_name = "URL", default_value = ffe_ops::verify::K3S_GATEWAY_URL)]
    etcd_url: String,
}

impl ClusterArgs {
    fn options(self, strict: bool) -> ffe_ops::verify::VerifyOptions {
        ffe_ops::verify::VerifyOptions {
            strict,
            kubeconfig: self.kubeconfig,
            vault_ca: self.vault_ca,
            etcd: ffe_ops::verify::Endpoint {
                url: self.etcd_url,
                ..Default::default()
            },
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Check every node is ready for `terraform apply`: SSH, OS, vCPU/RAM/disk per role, free
    /// ports, clock, round trips between nodes, and the backup mount (present, writable, the
    /// same share everywhere). Read-only, except a marker file briefly written to the backup mount.
    #[command(after_help = PREFLIGHT_EXAMPLES)]
    Preflight {
        /// Warnings fail too (exit 1).
        #[arg(long)]
        strict: bool,
    },
    /// Check a running cluster: the API through its VIP and every node Ready; etcd members,
    /// leader and alarms; the Postgres primary, replicas and lag, PgBouncer; Vault unsealed with
    /// one active member; k3s certificates; the age of every backup kind. Read-only.
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify {
        /// Warnings fail too (exit 1).
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// One screen: nodes with roles, addresses and versions, the API and edge addresses, each
    /// data service in a line, the age of every backup kind. The same checks as `verify`, folded
    /// per component; exit codes as verify's. Read-only.
    #[command(after_help = STATUS_EXAMPLES)]
    Status {
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Fail one component on purpose and measure the failover: delete the Postgres leader's or
    /// the active Vault member's pod, or stop a master's or worker's k3s and containers for a
    /// while, probing every user-facing endpoint; restore what the component needs (start k3s,
    /// unseal Vault); report downtime and recovery time against the seed's RTO. Refuses unless
    /// `verify` finds the cluster healthy and losing the target keeps quorum.
    #[command(after_help = DRILL_EXAMPLES)]
    Drill {
        #[arg(value_enum)]
        component: DrillComponent,
        /// How often every endpoint is probed, in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 250, value_parser = clap::value_parser!(u64).range(50..=250))]
        probe_interval_ms: u64,
        /// Stop waiting for recovery after this many seconds, counted from the failure (a node
        /// drill: from the restart of k3s, so --down-for is not part of it).
        #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(10..=3600))]
        timeout: u64,
        /// JSON list of Vault's unseal key shares, mode 0600 (default: `terraform output -json
        /// vault_unseal_keys` in --tf-dir). Every drill but postgres-primary needs them when Vault
        /// runs: a member that restarts comes back sealed and the drill unseals it.
        #[arg(long, value_name = "FILE")]
        vault_unseal_keys: Option<PathBuf>,
        /// server/worker: the node to stop (default: the inventory's last master or worker).
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
        /// server/worker: seconds the node stays down before k3s is started again.
        #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(5..=600))]
        down_for: u64,
        /// Do not ask for confirmation (needed when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// k3s's etcd: list the snapshots on the backup share, or restore the cluster from one.
    #[command(after_help = ETCD_EXAMPLES)]
    Etcd {
        #[command(subcommand)]
        action: EtcdAction,
    },
    /// Backups: `backup verify` restores the newest ones into scratch space and checks them.
    Backup {
        #[command(subcommand)]
        action: BackupAction,
    },
    /// Print a shell completion script (e.g. `ffe-ha completions bash > /etc/bash_completion.d/ffe-ha`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum EtcdAction {
    /// The etcd snapshots on the backup share, newest first. Reads only.
    Snapshots,
    /// Restore the cluster from a snapshot on the backup share (k3s's cluster-reset sequence on
    /// the inventory's servers). Everything written after the snapshot is lost.
    Restore {
        /// The snapshot's file name, as `ffe-ha etcd snapshots` lists it.
        #[arg(value_name = "SNAPSHOT", value_parser = snapshot_name)]
        snapshot: String,
        /// How long each server may take to reset or to serve again, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(30..=3600))]
        timeout: u64,
        /// Do not ask for confirmation (needed when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
}

/// A snapshot is named by its file name only (what k3s writes), never a path.
fn snapshot_name(s: &str) -> Result<String, String> {
    if ffe_ops::etcd::valid_snapshot_name(s) {
        Ok(s.to_string())
    } else {
        Err("a snapshot's file name as `ffe-ha etcd snapshots` lists it (letters, digits, '.', '_', '-'; no path)".into())
    }
}

#[derive(Subcommand)]
enum BackupAction {
    /// Restore the newest Postgres backup (a Job in the cluster, deleted afterwards) and check
    /// the newest Vault snapshot; report the recovery point against the seed's RPO. Writes only
    /// the Job and its scratch emptyDir; never the backups.
    #[command(after_help = BACKUP_VERIFY_EXAMPLES)]
    Verify {
        /// Stop waiting for the restore after this many seconds (the Job is deleted then).
        #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(60..=21600))]
        timeout: u64,
        /// Leave the Job and its pod in the cluster (read its log with kubectl logs).
        #[arg(long)]
        keep_job: bool,
        /// JSON list of Vault's unseal key shares, mode 0600 (default: `terraform output -json
        /// vault_unseal_keys` in --tf-dir). The snapshot is restored into a scratch OpenBao on
        /// this machine and unsealed with them; without keys it is only checked by digest.
        #[arg(long, value_name = "FILE")]
        vault_unseal_keys: Option<PathBuf>,
        /// The OpenBao binary for the scratch restore (default: `bao` on PATH).
        #[arg(long, value_name = "FILE")]
        bao: Option<PathBuf>,
        /// Warnings fail too (exit 1).
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ffe-ha: {e:#}");
            1
        }
    };
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// What a checking command runs.
enum Job {
    Preflight {
        strict: bool,
    },
    Verify(ffe_ops::verify::VerifyOptions),
    Status(ffe_ops::verify::VerifyOptions),
    Drill {
        kind: ffe_ops::drill::DrillKind,
        options: ffe_ops::verify::VerifyOptions,
        probe_interval: std::time::Duration,
        timeout: std::time::Duration,
        keys_file: Option<PathBuf>,
        node: Option<String>,
        down_for: std::time::Duration,
    },
    BackupVerify {
        options: ffe_ops::verify::VerifyOptions,
        timeout: std::time::Duration,
        keep_job: bool,
        keys_file: Option<PathBuf>,
        bao: Option<PathBuf>,
    },
    EtcdSnapshots,
    EtcdRestore {
        snapshot: String,
        timeout: std::time::Duration,
    },
}

impl Job {
    fn name(&self) -> &'static str {
        match self {
            Job::Preflight { .. } => "preflight",
            Job::Verify(_) => "verify",
            Job::Status(_) => "status",
            Job::Drill { .. } => "drill",
            Job::BackupVerify { .. } => "backup verify",
            Job::EtcdSnapshots => "etcd snapshots",
            Job::EtcdRestore { .. } => "etcd restore",
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let job = match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ffe-ha", &mut std::io::stdout());
            return Ok(0);
        }
        Command::Preflight { strict } => Job::Preflight { strict },
        Command::Verify { strict, cluster } => Job::Verify(cluster.options(strict)),
        Command::Status { cluster } => Job::Status(cluster.options(false)),
        Command::Backup {
            action:
                BackupAction::Verify {
                    timeout,
                    keep_job,
                    vault_unseal_keys,
                    bao,
                    strict,
                    cluster,
                },
        } => Job::BackupVerify {
            options: cluster.options(strict),
            timeout: std::time::Duration::from_secs(timeout),
            keep_job,
            keys_file: vault_unseal_keys,
            bao,
        },
        Command::Etcd {
            action: EtcdAction::Snapshots,
        } => Job::EtcdSnapshots,
        Command::Etcd {
            action:
                EtcdAction::Restore {
                    snapshot,
                    timeout,
                    yes,
                },
        } => {
            if !yes && !confirm_restore(&snapshot)? {
                let why = "restore not started: confirm at the prompt, or pass --yes";
                return Ok(stop_with(
                    cli.output,
                    "etcd restore",
                    why,
                    ExitCode::Refused,
                ));
            }
            Job::EtcdRestore {
                snapshot,
                timeout: std::time::Duration::from_secs(timeout),
            }
        }
        Command::Drill {
            component,
            probe_interval_ms,
            timeout,
            vault_unseal_keys,
            node,
            down_for,
            yes,
            cluster,
        } => {
            if !yes && !confirm(component.kind())? {
                let why = "drill not started: confirm at the prompt, or pass --yes";
                return Ok(stop_with(cli.output, "drill", why, ExitCode::Refused));
            }
            Job::Drill {
                kind: component.kind(),
                options: cluster.options(false),
                probe_interval: std::time::Duration::from_millis(probe_interval_ms),
                timeout: std::time::Duration::from_secs(timeout),
                keys_file: vault_unseal_keys,
                node,
                down_for: std::time::Duration::from_secs(down_for),
            }
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let inventory = match runtime.block_on(load_inventory(&cli.inventory)) {
        Ok(inv) => inv,
        Err(e) => {
            return Ok(stop_with(
                cli.output,
                job.name(),
                &e.to_string(),
                ExitCode::Inventory,
            ))
        }
    };
    if inventory.ssh.known_hosts_file.is_none() && inventory.ssh.insecure_ignore_host_keys {
        eprintln!("ffe-ha: warning: host keys are not pinned (ssh.insecure_ignore_host_keys): any host answering on a node's address is trusted. Set ssh_known_hosts_file (or --known-hosts) for anything real.");
    }
    let report = match job {
        Job::Preflight { strict } => runtime.block_on(ffe_ops::preflight::run(&inventory, strict)),
        Job::EtcdSnapshots => runtime.block_on(ffe_ops::etcd::snapshots(&inventory)),
        Job::EtcdRestore {
            ref snapshot,
            timeout,
        } => {
            let spinner = progress_line("etcd restore", "k3s cluster-reset sequence");
            let r = runtime.block_on(ffe_ops::etcd::restore_snapshot(
                &inventory, snapshot, timeout,
            ));
            if let Some(bar) = spinner {
                bar.finish_and_clear();
            }
            r
        }
        Job::Verify(ref o) | Job::Status(ref o) => {
            runtime.block_on(ffe_ops::verify::run(&inventory, o))
        }
        Job::BackupVerify {
            ref options,
            timeout,
            keep_job,
            ref keys_file,
            ref bao,
        } => {
            let keys = match runtime.block_on(vault_keys(&inventory, keys_file.clone())) {
                Ok(k) => k,
                Err(e) => {
                    return Ok(stop_with(
                        cli.output,
                        job.name(),
                        &e.to_string(),
                        ExitCode::Inventory,
                    ))
                }
            };
            let spinner = progress_line("backup verify", "restoring the newest backups");
            let notify = spinner.clone().map(tell_on);
            let opts = ffe_ops::restore::RestoreOptions {
                verify: options.clone(),
                timeout,
                poll: std::time::Duration::from_secs(2),
                keep_job,
                bao: bao.clone(),
                vault_unseal_keys: keys,
                notify,
            };
            let r = runtime.block_on(ffe_ops::restore::run(&inventory, &opts));
            if let Some(bar) = spinner {
                bar.finish_and_clear();
            }
            r
        }
        Job::Drill {
            kind,
            options,
            probe_interval,
            timeout,
            keys_file,
            node,
            down_for,
        } => {
            let keys = match runtime.block_on(unseal_keys(kind, &inventory, keys_file)) {
                Ok(k) => k,
                Err(e) => {
                    return Ok(stop_with(
                        cli.output,
                        "drill",
                        &e.to_string(),
                        ExitCode::Inventory,
                    ))
                }
            };
            let spinner = progress_line(
                &format!("drill {}", kind.name()),
                "checking the cluster (verify)",
            );
            let notify = spinner.clone().map(tell_on);
            let opts = ffe_ops::drill::DrillOptions {
                verify: options,
                probe_interval,
                recovery_timeout: timeout,
                vault_unseal_keys: keys,
                node,
                down_for,
                notify,
            };
            let r = runtime.block_on(ffe_ops::drill::run(kind, &inventory, &opts));
            if let Some(bar) = spinner {
                bar.finish_and_clear();
            }
            let text = match cli.output {
                Output::Table => render::drill_table(&r),
                Output::Json => render::json_drill(&r, &inventory.source) + "\n",
            };
            std::io::stdout().write_all(text.as_bytes())?;
            return Ok(r.exit_code().code());
        }
    };
    let text = match (&job, cli.output) {
        (Job::Status(_), Output::Table) => status::render(&status::summarize(&inventory, &report)),
        (Job::Status(_), Output::Json) => {
            render::json_status(&status::summarize(&inventory, &report), &inventory.source) + "\n"
        }
        (_, Output::Table) => render::table(&report),
        (_, Output::Json) => render::json(&report, &inventory.source) + "\n",
    };
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(report.exit_code().code())
}

/// A command that ends before its work: the reason on stderr and, with `--output json`, as the
/// JSON document on stdout; the exit code.
fn stop_with(output: Output, command: &str, why: &str, code: ExitCode) -> i32 {
    if output == Output::Json {
        // A closed pipe (`| head`) is not an error worth a panic.
        let _ = writeln!(
            std::io::stdout(),
            "{}",
            render::json_error(command, why, code.code())
        );
    }
    eprintln!("ffe-ha: {why}");
    code.code()
}

/// Events told on the spinner: one line each above it, then the spinner names the latest.
fn tell_on(bar: indicatif::ProgressBar) -> ffe_ops::drill::Notify {
    Box::new(move |at: f64, what: &str| {
        bar.println(format!("{at:>+8.2} s  {what}"));
        bar.set_message(what.chars().take(100).collect::<String>());
    })
}

/// A spinner on stderr while a long command runs, with each event as it happens; `None` when
/// stderr is not a terminal (logs, pipelines and tests get the report only).
fn progress_line(what: &str, first: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {prefix}: {wide_msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.set_prefix(what.to_string());
    bar.set_message(first.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(bar)
}

/// Ask before failing a component of a running cluster; a non-terminal stdin needs `--yes`.
fn confirm(kind: ffe_ops::drill::DrillKind) -> anyhow::Result<bool> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        eprintln!("ffe-ha: drill {} fails a component of a running cluster; stdin is not a terminal, so pass --yes to confirm", kind.name());
        return Ok(false);
    }
    let what = match kind {
        ffe_ops::drill::DrillKind::Server | ffe_ops::drill::DrillKind::Worker => {
            "stops k3s and every container on a node of the running cluster for --down-for seconds, then starts it again"
        }
        _ => "deletes a pod of the running cluster (its StatefulSet recreates it; clients see a failover)",
    };
    eprint!("ffe-ha drill {} {what}. Continue? [y/N] ", kind.name());
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Ask before resetting the cluster onto a snapshot; a non-terminal stdin needs `--yes`.
fn confirm_restore(snapshot: &str) -> anyhow::Result<bool> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        eprintln!("ffe-ha: etcd restore stops every server and resets the cluster to {snapshot}; stdin is not a terminal, so pass --yes to confirm");
        return Ok(false);
    }
    eprint!("ffe-ha etcd restore stops k3s on every server and returns the cluster to {snapshot}: everything written after it is lost. Continue? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// The unseal keys a vault-leader drill needs: the file given, else the environment's state.
async fn unseal_keys(
    kind: ffe_ops::drill::DrillKind,
    inventory: &Inventory,
    file: Option<PathBuf>,
) -> Result<Option<Vec<String>>, InventoryError> {
    // Every drill but postgres-primary may restart a Vault member, which comes back sealed.
    if kind == ffe_ops::drill::DrillKind::PostgresPrimary {
        return Ok(None);
    }
    vault_keys(inventory, file).await
}

/// Vault's unseal key shares: the file given, else the environment's state; none without Vault.
async fn vault_keys(
    inventory: &Inventory,
    file: Option<PathBuf>,
) -> Result<Option<Vec<String>>, InventoryError> {
    if inventory.vault.is_none() {
        return Ok(None);
    }
    match (file, &inventory.source) {
        (Some(f), _) => ffe_ops::inventory::unseal_keys_from_file(&f).map(Some),
        (None, ffe_ops::inventory::InventorySource::Terraform { dir }) => {
            ffe_ops::inventory::unseal_keys_from_terraform(std::path::Path::new(dir)).await
        }
        (None, _) => Ok(None),
    }
}

async fn load_inventory(a: &InventoryArgs) -> Result<Inventory, InventoryError> {
    let overrides = SshOverrides {
        user: a.ssh_user.clone(),
        port: a.ssh_port,
        private_key_path: a.ssh_key.clone(),
        known_hosts_file: a.known_hosts.clone(),
        connect_timeout_seconds: a.connect_timeout,
    };
    match (&a.inventory, &a.tf_plan) {
        (Some(file), _) => Inventory::from_file(file, &overrides),
        (None, Some(plan)) => Inventory::from_plan(&a.tf_dir, plan, &overrides).await,
        (None, None) => Inventory::from_terraform(&a.tf_dir, &overrides).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--help` lists what docs/operations.md lists: every exit code and every check.
    #[test]
    fn help_names_every_exit_code_and_check() {
        let mut cmd = Cli::command();
        let top = cmd.render_long_help().to_string();
        for code in [
            ExitCode::Ok,
            ExitCode::Failed,
            ExitCode::Usage,
            ExitCode::Inventory,
            ExitCode::Incomplete,
            ExitCode::Refused,
        ] {
            assert!(top.contains(&format!("\n  {}  ", code.code())), "{top}");
        }
        let pre = cmd
            .find_subcommand_mut("preflight")
            .map(|c| c.render_long_help().to_string())
            .unwrap_or_default();
        for id in ffe_ops::preflight::CHECK_IDS {
            assert!(pre.contains(id), "preflight --help lacks {id}");
        }
        let ver = cmd
            .find_subcommand_mut("verify")
            .map(|c| c.render_long_help().to_string())
            .unwrap_or_default();
        for id in ffe_ops::verify::check_ids() {
            assert!(ver.contains(id), "verify --help lacks {id}");
        }
        let status = cmd
            .find_subcommand_mut("status")
            .map(|c| c.render_long_help().to_string())
            .unwrap_or_default();
        assert!(status.contains("--output json"), "{status}");
        let drill = cmd
            .find_subcommand_mut("drill")
            .map(|c| c.render_long_help().to_string())
            .unwrap_or_default();
        let backup = cmd
            .find_subcommand_mut("backup")
            .and_then(|c| c.find_subcommand_mut("verify"))
            .map(|c| c.render_long_help().to_string())
            .unwrap_or_default();
        for id in ffe_ops::restore::CHECK_IDS {
            assert!(backup.contains(id), "backup verify --help lacks {id}");
        }
        let etcd = cmd
            .find_subcommand_mut("etcd")
            .map(|c| c.render_long_help().to_string())
            .unwrap_or_default();
        for id in ffe_ops::etcd::CHECK_IDS {
            assert!(etcd.contains(id), "etcd --help lacks {id}");
        }
        for word in [
            "postgres-primary",
            "vault-leader",
            "server",
            "worker",
            "--down-for",
            "< 2 minutes",
            "--yes",
            "exit 5",
            "< 10 minutes",
        ] {
            assert!(drill.contains(word), "drill --help lacks {word}: {drill}");
        }
    }
}

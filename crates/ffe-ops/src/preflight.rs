//! `ffe-ha preflight`: is every node ready for `terraform apply`?
//!
//! All nodes are probed in parallel, over the same SSH master connection the provider would use:
//! 1. one session per node: its clock is read first on the open channel (a bracket of one round
//!    trip), then one script reads facts (OS, vCPUs, memory, disk), listening sockets, the backup
//!    mount, writes a marker file to the backup mount and pings every other node;
//! 2. each node reads the markers of this run by their exact names (the same share everywhere?);
//! 3. the markers are removed.
//!
//! Every phase is bounded on the node (`timeout`) and here, so a hung host or NFS mount ends as
//! an `error` row naming the node instead of a run that never finishes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ffe_core::host::{parse_facts, HostFacts, FACTS_SCRIPT};
use ffe_core::shell::quote;
use ffe_core::ssh::{ClockReading, SshError, SshPool};
use futures::future::join_all;
use rand::Rng;

use crate::check::{Check, Report, Status};
use crate::inventory::{Inventory, Node, Role};

/// Every check id preflight emits (docs/operations.md has a row for each).
pub const CHECK_IDS: &[&str] = &[
    "ssh.reachable",
    "ssh.sudo",
    "os.supported",
    "cpu.min",
    "memory.min",
    "ports.free",
    "backup.mount",
    "backup.shared",
    "clock.sync",
    "net.rtt",
    "disk.total",
];

/// How long the batched probe may run on a node: pings take ≈ 0.2 s (root may ping every
/// 0.1 s), an unanswered peer 1 s, a hung backup mount is cut at [`MOUNT_LIMIT_SECS`].
const PROBE_LIMIT: Duration = Duration::from_secs(8);
/// Clock requests answered by one remote shell; the tightest bracket is kept.
const CLOCK_SAMPLES: usize = 3;
/// Marker reads, clock reads, clean-up.
const SHORT_LIMIT: Duration = Duration::from_secs(5);
/// A backup-mount access that takes longer counts as a mount that does not answer.
const MOUNT_LIMIT_SECS: u64 = 2;
/// Memory is compared with this share of the nominal size: a VM sold as "8 GB" reports less in
/// /proc/meminfo (the kernel keeps its part).
const MEMORY_TOLERANCE: f64 = 0.9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    fn label(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A port k3s or Calico binds on a node. The same table is in docs/networking.md (a test keeps
/// the two equal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequiredPort {
    pub port: u16,
    pub proto: Proto,
    /// Masters only (k3s servers).
    pub servers_only: bool,
    /// Only with Calico WireGuard on.
    pub wireguard_only: bool,
    pub used_by: &'static str,
}

const fn port(
    port: u16,
    proto: Proto,
    servers_only: bool,
    wireguard_only: bool,
    used_by: &'static str,
) -> RequiredPort {
    RequiredPort {
        port,
        proto,
        servers_only,
        wireguard_only,
        used_by,
    }
}

pub const REQUIRED_PORTS: &[RequiredPort] = &[
    // k3s serves its supervisor on 6443 too (9345 is RKE2's).
    port(6443, Proto::Tcp, true, false, "Kubernetes API"),
    port(2379, Proto::Tcp, true, false, "etcd client"),
    port(2380, Proto::Tcp, true, false, "etcd peer"),
    port(2381, Proto::Tcp, true, false, "etcd metrics"),
    port(10250, Proto::Tcp, false, false, "kubelet"),
    port(9100, Proto::Tcp, false, false, "node-exporter"),
    port(2112, Proto::Tcp, true, false, "kube-vip metrics"),
    port(4789, Proto::Udp, false, false, "Calico VXLAN"),
    port(5473, Proto::Tcp, false, false, "Calico Typha"),
    port(51820, Proto::Udp, false, true, "Calico WireGuard"),
];

/// Programs of the platform itself: a port they hold means the node already runs the cluster.
const OWN_PROGRAMS: &[&str] = &[
    "k3s",
    "containerd",
    "calico",
    "typha",
    "kube-vip",
    "node_exporter",
];

/// Interfaces Calico creates for the UDP ports the kernel holds (no process owns them).
const OWN_LINKS: &[&str] = &["vxlan.calico", "wireguard.cali"];

pub fn required_ports(role: Role, wireguard: bool) -> Vec<RequiredPort> {
    REQUIRED_PORTS
        .iter()
        .filter(|p| (role == Role::Server || !p.servers_only) && (wireguard || !p.wireguard_only))
        .copied()
        .collect()
}

/// One listening socket from `ss -Hlntup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub proto: Proto,
    pub port: u16,
    /// Owning processes as `name (pid N)` (empty: a kernel socket, or `ss` could not see it).
    pub programs: Vec<String>,
}

/// Parse one `ss -Hlntup` line: `tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=1,fd=3))`.
pub fn parse_listener(line: &str) -> Option<Listener> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let proto = match *fields.first()? {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        _ => return None,
    };
    let port = fields.get(4)?.rsplit_once(':')?.1.parse().ok()?;
    let mut programs = Vec::new();
    let rest = fields.get(6..).map(|f| f.join(" ")).unwrap_or_default();
    // users:(("name",pid=N,fd=M),...): "name (pid N)" for each process.
    for part in rest.split("(\"").skip(1) {
        if let Some((name, after)) = part.split_once('"') {
            let pid = after
                .strip_prefix(",pid=")
                .and_then(|p| p.split(|c: char| !c.is_ascii_digit()).next())
                .filter(|p| !p.is_empty());
            let shown = match pid {
                Some(pid) => format!("{name} (pid {pid})"),
                None => name.to_string(),
            };
            if !programs.iter().any(|p| p == &shown) {
                programs.push(shown);
            }
        }
    }
    Some(Listener {
        proto,
        port,
        programs,
    })
}

/// Round trip to one peer from `ping -q` output.
#[derive(Debug, Clone, PartialEq)]
pub struct PingResult {
    pub loss_percent: f64,
    /// `None` when no reply came back.
    pub avg_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

/// Parse `ping -n -q` output: `... 0% packet loss ...` and `rtt min/avg/max/mdev = a/b/c/d ms`.
pub fn parse_ping(out: &str) -> Option<PingResult> {
    let loss = out
        .split(',')
        .find(|p| p.contains("packet loss"))?
        .split_whitespace()
        .find(|w| w.ends_with('%'))?
        .trim_end_matches('%')
        .parse()
        .ok()?;
    let times = out
        .split_once("rtt min/avg/max/mdev = ")
        .and_then(|(_, r)| r.split_whitespace().next())
        .map(|t| {
            t.split('/')
                .filter_map(|v| v.parse::<f64>().ok())
                .collect::<Vec<_>>()
        });
    let (avg, max) = match times.as_deref() {
        Some([_, avg, max, ..]) => (Some(*avg), Some(*max)),
        _ => (None, None),
    };
    Some(PingResult {
        loss_percent: loss,
        avg_ms: avg,
        max_ms: max,
    })
}

/// What phase 1 found on one node.
#[derive(Debug, Clone, Default)]
pub struct NodeProbe {
    pub facts: Option<HostFacts>,
    pub listeners: Vec<Listener>,
    pub links: Vec<String>,
    /// `findmnt --target` of the backup mount: (mount point, source, fstype).
    pub mount: Option<(String, String, String)>,
    /// Exit code of the marker write (0 written, ≥ 124 timed out).
    pub marker_rc: Option<i32>,
    pub pings: BTreeMap<String, PingResult>,
    pub ntp_synchronized: Option<String>,
    /// The node's clock, read over the probe's channel before the probe ran.
    pub clock: Option<ClockReading>,
    /// `ss` ran (its exit code was 0): an empty listener list then means no listener.
    pub sockets_listed: bool,
    pub have_ping: bool,
}

fn probe_script(inv: &Inventory, node: &Node, run_id: &str) -> String {
    let peers: Vec<String> = inv
        .nodes
        .iter()
        .filter(|n| n.name != node.name)
        .map(|n| quote(&n.address))
        .collect();
    let t = MOUNT_LIMIT_SECS;
    format!(
        r#"set +e
echo ffe-preflight=1
{FACTS_SCRIPT}
timedatectl show -p NTPSynchronized --value 2>/dev/null | sed 's/^/ntp_synchronized=/'
sockets=$(ss -Hlntup 2>&1); echo "ss_rc=$?"
printf '%s\n' "$sockets" | sed 's/^/listen /'
ip -o link show 2>/dev/null | awk -F': ' '{{print "link " $2}}'
mnt={mnt}
timeout -k 1 {t} findmnt -n -o TARGET,SOURCE,FSTYPE --target "$mnt" 2>/dev/null | head -n 1 | sed 's/^/mount /'
timeout -k 1 {t} sh -c 'printf %s "$2" > "$1/.ffe-ha-preflight-$3-$2"' marker "$mnt" {name} {run_id} 2>/dev/null
echo "marker_rc=$?"
command -v ping >/dev/null 2>&1 && echo have_ping=1
for p in {peers}; do
  ( out=$(ping -n -q -c 3 -i 0.1 -W 1 "$p" 2>&1 | tr '\n' ' '); printf 'ping %s %s\n' "$p" "$out" ) &
done
wait
"#,
        mnt = quote(&inv.backup_mount),
        name = quote(&node.name),
        peers = if peers.is_empty() {
            "''".to_string()
        } else {
            peers.join(" ")
        },
    )
}

/// Parse phase 1's output. `None` when the script did not run (e.g. `sudo` refused).
pub fn parse_probe(host: &str, out: &str) -> Option<NodeProbe> {
    if !out.lines().any(|l| l == "ffe-preflight=1") {
        return None;
    }
    let mut p = NodeProbe {
        facts: parse_facts(host, out).ok(),
        ..NodeProbe::default()
    };
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("listen ") {
            p.listeners.extend(parse_listener(rest));
        } else if let Some(rest) = line.strip_prefix("link ") {
            // `ip -o link` names veths as `name@peer`.
            let name = rest.split('@').next().unwrap_or(rest);
            p.links.push(name.to_string());
        } else if let Some(rest) = line.strip_prefix("mount ") {
            let f: Vec<&str> = rest.split_whitespace().collect();
            if let [target, source, fstype, ..] = f.as_slice() {
                p.mount = Some((target.to_string(), source.to_string(), fstype.to_string()));
            }
        } else if let Some(rc) = line.strip_prefix("ss_rc=") {
            p.sockets_listed = rc.trim() == "0";
        } else if line == "have_ping=1" {
            p.have_ping = true;
        } else if let Some(rc) = line.strip_prefix("marker_rc=") {
            p.marker_rc = rc.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("ntp_synchronized=") {
            p.ntp_synchronized = Some(v.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("ping ") {
            if let Some((peer, out)) = rest.split_once(' ') {
                if let Some(r) = parse_ping(out) {
                    p.pings.insert(peer.to_string(), r);
                }
            }
        }
    }
    Some(p)
}

/// An SSH failure as a check row: an unreachable host could not be evaluated (`error`); a
/// refused key or a host key that does not match the pin needs a fix (`fail`).
fn ssh_row(node: &Node, e: &SshError) -> Check {
    let status = match e {
        SshError::Connect { .. } if !e.is_unreachable() => Status::Fail,
        _ => Status::Error,
    };
    // The provider's texts say "re-run `terraform apply`"; here the next step is another run.
    let (evidence, hint) = match e {
        SshError::Connect { reason, hint, .. } => (reason.clone(), Some(cli_hint(hint))),
        SshError::Timeout { step, secs, .. } => (
            format!("step '{step}' did not finish within {secs} s"),
            Some("The host may be overloaded or hung: check it, then run the command again".into()),
        ),
        SshError::Broken { reason, .. } => (
            format!("the SSH connection broke: {reason}"),
            Some("Check that the host is up, then run the command again".into()),
        ),
        other => (other.to_string(), None),
    };
    let row = Check::new("ssh.reachable", &node.name, status, evidence);
    match hint {
        Some(h) => row.hint(h),
        None => row,
    }
}

/// One node's phase result: the probe, or the row that explains why there is none.
type Phase1 = Result<NodeProbe, Check>;

async fn phase1(pool: &SshPool, inv: &Inventory, node: &Node, run_id: &str) -> Phase1 {
    let t = node.target();
    let script = probe_script(inv, node, run_id);
    let limit = PROBE_LIMIT + inv.ssh.connect_timeout + Duration::from_secs(3);
    let ran = tokio::time::timeout(
        limit,
        pool.run_with_clock(&t, "preflight probe", &script, CLOCK_SAMPLES, PROBE_LIMIT),
    )
    .await;
    let sudo_row = |stderr: &str| {
        Check::new(
            "ssh.sudo",
            &node.name,
            Status::Fail,
            format!("{} cannot run commands as root: {}", inv.ssh.user, stderr.trim()),
        )
        .hint("Give the SSH user passwordless sudo (NOPASSWD) on the node, or use ssh_user = \"root\"")
    };
    let (clock, out) = match ran {
        Err(_) => {
            return Err(Check::new(
                "ssh.reachable",
                &node.name,
                Status::Error,
                format!("no answer within {} s", limit.as_secs()),
            )
            .hint("Check that the host is up and sshd answers, then run preflight again"))
        }
        Ok(Err(SshError::Failed { stderr, .. })) if stderr.contains("sudo") => {
            return Err(sudo_row(&stderr))
        }
        Ok(Err(e)) => return Err(ssh_row(node, &e)),
        Ok(Ok(done)) => done,
    };
    match parse_probe(&t.to_string(), &out.stdout) {
        Some(mut p) => {
            p.clock = Some(clock);
            Ok(p)
        }
        None => Err(Check::new(
            "ssh.reachable",
            &node.name,
            Status::Error,
            format!(
                "the probe did not run (exit {}): {}",
                out.code,
                out.stderr.trim()
            ),
        )),
    }
}

/// Which markers of this run the node sees on its backup mount (node names written in them).
async fn seen_markers(
    pool: &SshPool,
    inv: &Inventory,
    node: &Node,
    run_id: &str,
) -> Result<BTreeSet<String>, String> {
    // Each marker by its exact name: a lookup goes to the NFS server, where a directory listing
    // may come from the client's cache.
    let names: Vec<String> = inv.nodes.iter().map(|n| quote(&n.name)).collect();
    let script = format!(
        "timeout -k 1 {t} sh -c 'mnt=$1; run=$2; shift 2; for n in \"$@\"; do f=\"$mnt/.ffe-ha-preflight-$run-$n\"; [ -f \"$f\" ] && printf \"seen %s\\n\" \"$(cat \"$f\")\"; done; true' seen {mnt} {run_id} {names}; echo \"seen_rc=$?\"",
        t = MOUNT_LIMIT_SECS,
        mnt = quote(&inv.backup_mount),
        names = names.join(" "),
    );
    let out = pool
        .run_within(&node.target(), "read backup markers", &script, SHORT_LIMIT)
        .await
        .map_err(|e| short_ssh_error(&e))?;
    match out.lines().find_map(|l| l.strip_prefix("seen_rc=")) {
        Some("0") => Ok(out
            .lines()
            .filter_map(|l| l.strip_prefix("seen "))
            .map(str::to_string)
            .collect()),
        rc => Err(format!(
            "reading {} did not finish within {MOUNT_LIMIT_SECS} s (exit {})",
            inv.backup_mount,
            rc.unwrap_or("?")
        )),
    }
}

/// The provider's connection hint with the CLI's ways to change each setting: the inventory
/// comes from the same tfvars variables, and a flag overrides each for one run.
fn cli_hint(hint: &str) -> String {
    let mut out = hint.replace("in your tfvars", "in the inventory (your tfvars)");
    for (attribute, flag) in [
        ("ssh_private_key_path", "--ssh-key"),
        ("ssh_known_hosts_file", "--known-hosts"),
        ("ssh_user", "--ssh-user"),
        ("ssh_port", "--ssh-port"),
    ] {
        out = out.replacen(attribute, &format!("{attribute} (or {flag})"), 1);
    }
    out
}

/// An SSH error in the CLI's words (the provider's texts say "re-run `terraform apply`").
fn short_ssh_error(e: &SshError) -> String {
    match e {
        SshError::Connect { reason, .. } => format!("cannot connect: {reason}"),
        SshError::Timeout { step, secs, .. } => {
            format!("step '{step}' did not finish within {secs} s")
        }
        SshError::Broken { reason, .. } => format!("the SSH connection broke: {reason}"),
        other => other.to_string(),
    }
}

/// Remove this run's markers: on one node that sees every writer's marker with one glob, and on
/// each writer it does not see (a different share) that writer's own.
async fn remove_markers(
    pool: &SshPool,
    inv: &Inventory,
    live: &[(&Node, &NodeProbe)],
    seen: &[Result<BTreeSet<String>, String>],
    writers: &BTreeSet<String>,
    run_id: &str,
) {
    let sweeper = live.iter().zip(seen).find_map(|((n, _), seen)| {
        seen.as_ref()
            .ok()
            .filter(|seen| writers.is_subset(seen))
            .map(|_| *n)
    });
    // A writer's marker is on the sweeper's share (the sweeper saw them all), so one glob there
    // removes every marker; without a sweeper each writer removes its own.
    let jobs: Vec<(&Node, String)> = match sweeper {
        Some(n) => vec![(n, format!(".ffe-ha-preflight-{run_id}-*"))],
        None => live
            .iter()
            .filter(|(n, _)| writers.contains(&n.name))
            .map(|(n, _)| (*n, format!(".ffe-ha-preflight-{run_id}-{}", n.name)))
            .collect(),
    };
    join_all(jobs.into_iter().map(|(node, pattern)| async move {
        // `$2` unquoted on purpose: the glob expands on the node. Node names are DNS names
        // (Inventory::validate), so the pattern has no space or shell character.
        let script = format!(
            "timeout -k 1 {t} sh -c 'cd \"$1\" && rm -f -- $2' rm {mnt} {pattern}",
            mnt = quote(&inv.backup_mount),
            t = MOUNT_LIMIT_SECS,
            pattern = quote(&pattern),
        );
        if let Err(e) = pool
            .run_status_within(
                &node.target(),
                "remove backup markers",
                &script,
                None,
                SHORT_LIMIT,
            )
            .await
        {
            tracing::warn!(node = %node.name, error = %e, "could not remove the preflight markers");
        }
    }))
    .await;
}

fn hardware_rows(inv: &Inventory, node: &Node, f: &HostFacts) -> Vec<Check> {
    let need = inv.requirements.for_role(node.role);
    let origin = format!(
        "{}: {}s {} vCPU / {} GB",
        inv.requirements.origin(),
        node.role.label(),
        need.cpus,
        need.memory_gb
    );
    let mut rows = Vec::new();
    rows.push(match f.os_warning() {
        None => Check::new(
            "os.supported",
            &node.name,
            Status::Pass,
            format!("{} {}, kernel {}", f.os_id, f.os_version, f.kernel),
        ),
        Some(w) => Check::new(
            "os.supported",
            &node.name,
            Status::Warn,
            format!("{w} (kernel {})", f.kernel),
        )
        .hint("Reinstall the node with Ubuntu 22.04 or 24.04 LTS; other systems are not tested"),
    });
    let cpu_ok = f.cpu_count >= i64::from(need.cpus);
    rows.push(
        Check::new(
            "cpu.min",
            &node.name,
            if cpu_ok { Status::Pass } else { Status::Fail },
            format!(
                "{} vCPU {} {} ({origin})",
                f.cpu_count,
                if cpu_ok { ">=" } else { "<" },
                need.cpus
            ),
        )
        .hint_if(!cpu_ok, "Give the VM more vCPUs"),
    );
    let floor_mb = f64::from(need.memory_gb) * 1024.0 * MEMORY_TOLERANCE;
    let mem_ok = f.memory_mb as f64 >= floor_mb;
    rows.push(
        Check::new(
            "memory.min",
            &node.name,
            if mem_ok { Status::Pass } else { Status::Fail },
            format!(
                "{:.1} GiB {} {} GB less 10 % for the kernel ({origin})",
                f.memory_mb as f64 / 1024.0,
                if mem_ok { ">=" } else { "<" },
                need.memory_gb
            ),
        )
        .hint_if(!mem_ok, "Give the VM more memory"),
    );
    rows
}

fn ports_row(inv: &Inventory, node: &Node, p: &NodeProbe) -> Check {
    if !p.sockets_listed {
        return Check::new(
            "ports.free",
            &node.name,
            Status::Error,
            "`ss -Hlntup` failed on the node: its listening sockets could not be listed",
        )
        .hint("Install iproute2 (it provides ss) on the node");
    }
    let wanted = required_ports(node.role, inv.network.wireguard_enabled);
    let mut taken = Vec::new();
    let mut ours = Vec::new();
    for want in &wanted {
        let holders: Vec<&Listener> = p
            .listeners
            .iter()
            .filter(|l| l.port == want.port && l.proto == want.proto)
            .collect();
        if holders.is_empty() {
            continue;
        }
        let programs: Vec<&str> = holders
            .iter()
            .flat_map(|l| l.programs.iter().map(String::as_str))
            .collect();
        let label = format!("{}/{}", want.port, want.proto.label());
        let own_program = !programs.is_empty()
            && programs
                .iter()
                .all(|prog| OWN_PROGRAMS.iter().any(|o| prog.starts_with(o)));
        let own_kernel_socket = programs.is_empty()
            && want.proto == Proto::Udp
            && p.links.iter().any(|l| OWN_LINKS.contains(&l.as_str()));
        if own_program || own_kernel_socket {
            ours.push(label);
        } else {
            let by = if programs.is_empty() {
                "the kernel or an unnamed process".to_string()
            } else {
                programs.join(", ")
            };
            taken.push(format!("{label} ({}) held by {by}", want.used_by));
        }
    }
    if !taken.is_empty() {
        return Check::new("ports.free", &node.name, Status::Fail, taken.join("; ")).hint(
            "Stop or move the program holding the port: k3s and Calico need it (docs/networking.md)",
        );
    }
    let mut evidence = format!(
        "{} of {} {} ports free",
        wanted.len() - ours.len(),
        wanted.len(),
        node.role.label()
    );
    if !ours.is_empty() {
        evidence.push_str(&format!(
            "; {} held by the platform itself (already installed)",
            ours.join(", ")
        ));
    }
    Check::new("ports.free", &node.name, Status::Pass, evidence)
}

fn mount_row(inv: &Inventory, node: &Node, p: &NodeProbe) -> Check {
    let mnt = &inv.backup_mount;
    match p.marker_rc {
        Some(0) => {}
        Some(rc) if rc >= 124 => {
            return Check::new(
                "backup.mount",
                &node.name,
                Status::Fail,
                format!("{mnt} does not answer within {MOUNT_LIMIT_SECS} s"),
            )
            .hint("The NFS server may be down or unreachable from this node: check `findmnt` and the server")
        }
        _ => {
            return Check::new(
                "backup.mount",
                &node.name,
                Status::Fail,
                format!("{mnt} is missing or not writable by root"),
            )
            .hint("Mount the backup share at backup_nfs_mount on every node (or set nfs_server/nfs_export and let terraform apply mount it)")
        }
    }
    match &p.mount {
        Some((target, source, fstype)) if target == mnt => Check::new(
            "backup.mount",
            &node.name,
            Status::Pass,
            format!("{mnt} writable, mounted from {source} ({fstype})"),
        ),
        Some((target, source, _)) => Check::new(
            "backup.mount",
            &node.name,
            Status::Warn,
            format!("{mnt} is writable but not a mount point: it is on {target} ({source})"),
        )
        .hint("Backups on the node's own disk are lost with the node: mount the NFS share there"),
        None => Check::new(
            "backup.mount",
            &node.name,
            Status::Warn,
            format!("{mnt} is writable; findmnt did not report its mount"),
        ),
    }
}

fn rtt_row(inv: &Inventory, node: &Node, p: &NodeProbe, reachable: &BTreeSet<&str>) -> Check {
    if !p.have_ping && inv.nodes.len() > 1 {
        return Check::new(
            "net.rtt",
            &node.name,
            Status::Error,
            "ping is not installed on the node: round trips could not be measured",
        )
        .hint("Install iputils-ping on the node");
    }
    let max = inv.requirements.max_rtt_ms;
    let mut worst: Option<(&str, f64)> = None;
    let mut silent = Vec::new();
    let mut measured = 0;
    for peer in inv.nodes.iter().filter(|n| n.name != node.name) {
        // A peer this machine cannot reach over SSH has its own error row already.
        if !reachable.contains(peer.name.as_str()) {
            continue;
        }
        match p.pings.get(&peer.address).and_then(|r| r.avg_ms) {
            Some(avg) => {
                measured += 1;
                if worst.is_none_or(|(_, w)| avg > w) {
                    worst = Some((&peer.name, avg));
                }
            }
            None => silent.push(peer.name.as_str()),
        }
    }
    if !silent.is_empty() {
        return Check::new(
            "net.rtt",
            &node.name,
            Status::Fail,
            format!("no ping reply from {}", silent.join(", ")),
        )
        .hint("Nodes must reach each other directly: check routes and firewalls (ICMP echo) between them");
    }
    match worst {
        None => Check::new(
            "net.rtt",
            &node.name,
            Status::Pass,
            "no other node to measure",
        ),
        Some((peer, avg)) => {
            let ok = avg < max;
            Check::new(
                "net.rtt",
                &node.name,
                if ok { Status::Pass } else { Status::Fail },
                format!(
                    "worst average round trip {avg:.3} ms (to {peer}, {measured} peers) {} {max} ms ({})",
                    if ok { "<" } else { ">=" },
                    inv.requirements.origin()
                ),
            )
            .hint_if(!ok, "etcd and Patroni need a fast interconnect: put the nodes on one low-latency network")
        }
    }
}

fn clock_row(
    inv: &Inventory,
    node: &Node,
    measured: Option<ClockReading>,
    ntp: Option<&str>,
) -> Check {
    let max_s = inv.requirements.max_clock_skew_ms / 1000.0;
    match measured {
        None => Check::new("clock.sync", &node.name, Status::Error, "no clock reading"),
        Some(ClockReading {
            offset,
            uncertainty: half_rtt,
        }) => {
            let ntp_note = match ntp {
                Some("yes") => ", NTP synchronised",
                Some("no") => ", NTP NOT synchronised",
                _ => "",
            };
            let evidence = format!("{offset:+.3} s from this machine (±{half_rtt:.3} s){ntp_note}");
            if offset.abs() - half_rtt > max_s {
                Check::new(
                    "clock.sync",
                    &node.name,
                    Status::Fail,
                    format!("{evidence}; limit {max_s} s"),
                )
                .hint("Run NTP (chrony or systemd-timesyncd) on every node and on this machine")
            } else if offset.abs() + half_rtt > max_s {
                Check::new(
                    "clock.sync",
                    &node.name,
                    Status::Warn,
                    format!("{evidence}; may exceed the limit of {max_s} s"),
                )
                .hint("The SSH round trip was too slow to tell: run preflight again, and check NTP on the node")
            } else if ntp == Some("no") {
                Check::new("clock.sync", &node.name, Status::Warn, evidence)
                    .hint("Enable NTP on the node (timedatectl set-ntp true, or chrony)")
            } else {
                Check::new("clock.sync", &node.name, Status::Pass, evidence)
            }
        }
    }
}

fn shared_row(
    inv: &Inventory,
    node: &Node,
    seen: &Result<BTreeSet<String>, String>,
    writers: &BTreeSet<String>,
) -> Check {
    match seen {
        Err(e) => Check::new("backup.shared", &node.name, Status::Error, e.clone()),
        // With fewer than two markers there is nothing to compare: not evaluated (the
        // backup.mount rows say why the others could not write).
        Ok(_) if inv.nodes.len() > 1 && writers.len() < 2 => Check::new(
            "backup.shared",
            &node.name,
            Status::Error,
            format!(
                "not evaluated: only {} node(s) could write a marker to {}",
                writers.len(),
                inv.backup_mount
            ),
        ),
        Ok(seen) => {
            let missing: Vec<&str> = writers
                .iter()
                .filter(|w| !seen.contains(*w))
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                Check::new(
                    "backup.shared",
                    &node.name,
                    Status::Pass,
                    format!(
                        "sees the markers of all {} nodes that wrote one",
                        writers.len()
                    ),
                )
            } else {
                Check::new(
                    "backup.shared",
                    &node.name,
                    Status::Fail,
                    format!(
                        "{} on this node does not show the markers written by {}: not the same share",
                        inv.backup_mount,
                        missing.join(", ")
                    ),
                )
                .hint("Mount the same NFS export at backup_nfs_mount on every node")
            }
        }
    }
}

/// Run every preflight check; never hangs (every remote step is bounded).
pub async fn run(inv: &Inventory, strict: bool) -> Report {
    let pool = SshPool::new(inv.ssh.clone());
    let report = run_with(&pool, inv, strict).await;
    pool.close_all().await;
    report
}

async fn run_with(pool: &SshPool, inv: &Inventory, strict: bool) -> Report {
    let run_id: String = format!("{:016x}", rand::thread_rng().gen::<u64>());
    let started = std::time::Instant::now();
    let probes: Vec<Phase1> =
        join_all(inv.nodes.iter().map(|n| phase1(pool, inv, n, &run_id))).await;
    tracing::debug!(elapsed = ?started.elapsed(), "preflight: probes done");
    let reachable: BTreeSet<&str> = inv
        .nodes
        .iter()
        .zip(&probes)
        .filter(|(_, p)| p.is_ok())
        .map(|(n, _)| n.name.as_str())
        .collect();
    let live: Vec<(&Node, &NodeProbe)> = inv
        .nodes
        .iter()
        .zip(&probes)
        .filter_map(|(n, p)| p.as_ref().ok().map(|p| (n, p)))
        .collect();
    let seen: Vec<Result<BTreeSet<String>, String>> = join_all(
        live.iter()
            .map(|(n, _)| seen_markers(pool, inv, n, &run_id)),
    )
    .await;
    tracing::debug!(elapsed = ?started.elapsed(), "preflight: markers read");
    let writers: BTreeSet<String> = live
        .iter()
        .filter(|(_, p)| p.marker_rc == Some(0))
        .map(|(n, _)| n.name.clone())
        .collect();
    remove_markers(pool, inv, &live, &seen, &writers, &run_id).await;
    tracing::debug!(elapsed = ?started.elapsed(), "preflight: markers removed");

    let mut checks = Vec::new();
    let mut live_i = 0;
    for (node, probe) in inv.nodes.iter().zip(&probes) {
        let p = match probe {
            Err(row) => {
                checks.push(row.clone());
                continue;
            }
            Ok(p) => p,
        };
        let pinned = match &inv.ssh.known_hosts_file {
            Some(f) => format!("host key pinned by {}", f.display()),
            None => "host key NOT pinned (ssh.insecure_ignore_host_keys)".into(),
        };
        checks.push(Check::new(
            "ssh.reachable",
            &node.name,
            if inv.ssh.known_hosts_file.is_some() {
                Status::Pass
            } else {
                Status::Warn
            },
            format!(
                "{} as {} on port {}, {pinned}",
                node.address, inv.ssh.user, inv.ssh.port
            ),
        ));
        match &p.facts {
            Some(f) => checks.extend(hardware_rows(inv, node, f)),
            None => checks.push(Check::new(
                "cpu.min",
                &node.name,
                Status::Error,
                "the node's facts (nproc, /proc/meminfo, df) could not be read",
            )),
        }
        checks.push(ports_row(inv, node, p));
        checks.push(mount_row(inv, node, p));
        checks.push(shared_row(inv, node, &seen[live_i], &writers));
        checks.push(clock_row(inv, node, p.clock, p.ntp_synchronized.as_deref()));
        checks.push(rtt_row(inv, node, p, &reachable));
        live_i += 1;
    }
    checks.push(disk_row(inv, &live));
    Report {
        command: "preflight",
        checks,
        strict,
    }
}

fn disk_row(inv: &Inventory, live: &[(&Node, &NodeProbe)]) -> Check {
    let need = inv.requirements.total_disk_gb;
    let known: Vec<i64> = live
        .iter()
        .filter_map(|(_, p)| p.facts.as_ref().map(|f| f.root_disk_gb))
        .collect();
    if known.len() < inv.nodes.len() {
        return Check::new(
            "disk.total",
            "cluster",
            Status::Error,
            format!(
                "root disk size known for {} of {} nodes",
                known.len(),
                inv.nodes.len()
            ),
        );
    }
    let total: i64 = known.iter().sum();
    let ok = total >= need as i64;
    Check::new(
        "disk.total",
        "cluster",
        if ok { Status::Pass } else { Status::Fail },
        format!(
            "{total} GB of root disk over {} nodes {} {need} GB ({})",
            known.len(),
            if ok { ">=" } else { "<" },
            inv.requirements.origin()
        ),
    )
    .hint_if(
        !ok,
        "Grow the nodes' disks: Postgres replicas and local images need the space",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ss_lines_parse_with_and_without_process() {
        let l = parse_listener(
            "tcp   LISTEN 0      4096   0.0.0.0:6443  0.0.0.0:*    users:((\"python3\",pid=77,fd=3),(\"python3\",pid=78,fd=3))",
        )
        .unwrap();
        assert_eq!((l.proto, l.port), (Proto::Tcp, 6443));
        assert_eq!(l.programs, vec!["python3 (pid 77)", "python3 (pid 78)"]);
        let l = parse_listener("udp   UNCONN 0      0      0.0.0.0:4789  0.0.0.0:*").unwrap();
        assert_eq!((l.proto, l.port), (Proto::Udp, 4789));
        assert!(l.programs.is_empty());
        let l = parse_listener(
            "tcp LISTEN 0 128 [::]:10250 [::]:* users:((\"k3s-server\",pid=1,fd=9))",
        )
        .unwrap();
        assert_eq!(l.port, 10250);
        assert!(parse_listener("garbage").is_none());
    }

    #[test]
    fn ping_output_parses_loss_and_times() {
        let ok = "PING 10.210.1.12 (10.210.1.12) 56(84) bytes of data.  --- 10.210.1.12 ping statistics --- 3 packets transmitted, 3 received, 0% packet loss, time 404ms rtt min/avg/max/mdev = 0.041/0.063/0.090/0.020 ms ";
        let r = parse_ping(ok).unwrap();
        assert_eq!(r.loss_percent, 0.0);
        assert_eq!(r.avg_ms, Some(0.063));
        assert_eq!(r.max_ms, Some(0.090));
        let lost = "--- 10.210.1.99 ping statistics --- 3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2050ms ";
        let r = parse_ping(lost).unwrap();
        assert_eq!(r.loss_percent, 100.0);
        assert_eq!(r.avg_ms, None);
    }

    fn inv(nodes: usize) -> Inventory {
        let nodes: Vec<serde_json::Value> = (0..nodes)
            .map(|i| serde_json::json!({"name": format!("n{i}"), "address": format!("10.210.9.{}", i + 1), "role": "server"}))
            .collect();
        let doc: crate::inventory::InventoryDoc = serde_json::from_value(serde_json::json!({
            "schema": 1, "cluster_name": "t", "nodes": nodes, "backup_mount": "/b",
            "network": {"wireguard_enabled": true}
        }))
        .unwrap();
        Inventory::validate(
            doc,
            crate::inventory::InventorySource::File { path: "t".into() },
            &crate::inventory::SshOverrides::default(),
        )
        .unwrap()
    }

    fn probe(listeners: &[&str], links: &[&str]) -> NodeProbe {
        NodeProbe {
            listeners: listeners.iter().filter_map(|l| parse_listener(l)).collect(),
            links: links.iter().map(|l| l.to_string()).collect(),
            sockets_listed: true,
            ..NodeProbe::default()
        }
    }

    #[test]
    fn ports_held_by_the_platform_pass_and_foreign_ones_fail() {
        let inv = inv(1);
        let node = &inv.nodes[0];
        let own = probe(
            &[
                "tcp LISTEN 0 4096 *:6443 *:* users:((\"k3s-server\",pid=9,fd=3))",
                "udp UNCONN 0 0 0.0.0.0:4789 0.0.0.0:*",
            ],
            &["lo", "vxlan.calico"],
        );
        let r = ports_row(&inv, node, &own);
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert!(
            r.evidence
                .contains("6443/tcp, 4789/udp held by the platform itself"),
            "{r:?}"
        );
        // The same kernel socket without Calico's device: someone else's VXLAN.
        let r = ports_row(
            &inv,
            node,
            &probe(&["udp UNCONN 0 0 0.0.0.0:4789 0.0.0.0:*"], &["lo"]),
        );
        assert_eq!(r.status, Status::Fail, "{r:?}");
        assert!(
            r.evidence
                .contains("held by the kernel or an unnamed process"),
            "{r:?}"
        );
        let mut blind = probe(&[], &[]);
        blind.sockets_listed = false;
        assert_eq!(ports_row(&inv, node, &blind).status, Status::Error);
    }

    #[test]
    fn clock_fails_only_when_the_whole_bracket_is_beyond_the_limit() {
        let inv = inv(1);
        let node = &inv.nodes[0];
        let at = |offset, uncertainty| {
            clock_row(
                &inv,
                node,
                Some(ClockReading {
                    offset,
                    uncertainty,
                }),
                None,
            )
            .status
        };
        assert_eq!(at(0.2, 0.01), Status::Pass);
        assert_eq!(at(-1.5, 0.01), Status::Fail);
        assert_eq!(at(1.1, 0.2), Status::Warn);
        assert_eq!(at(0.9, 0.2), Status::Warn);
        assert_eq!(
            clock_row(
                &inv,
                node,
                Some(ClockReading {
                    offset: 0.0,
                    uncertainty: 0.0
                }),
                Some("no")
            )
            .status,
            Status::Warn
        );
        assert_eq!(clock_row(&inv, node, None, None).status, Status::Error);
    }

    #[test]
    fn backup_sharing_needs_two_markers_to_be_judged() {
        let inv = inv(3);
        let node = &inv.nodes[0];
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let r = shared_row(&inv, node, &Ok(set(&[])), &set(&[]));
        assert_eq!(r.status, Status::Error, "{r:?}");
        let r = shared_row(&inv, node, &Ok(set(&["n0"])), &set(&["n0", "n1", "n2"]));
        assert_eq!(r.status, Status::Fail, "{r:?}");
        assert!(r.evidence.contains("written by n1, n2"), "{r:?}");
        let r = shared_row(
            &inv,
            node,
            &Ok(set(&["n0", "n1", "n2"])),
            &set(&["n0", "n1", "n2"]),
        );
        assert_eq!(r.status, Status::Pass, "{r:?}");
    }

    #[test]
    fn cli_hints_name_the_flags() {
        let h = cli_hint("SSH refused the key: check ssh_user and ssh_private_key_path, and that the public key is in the user's authorized_keys on that host");
        assert!(h.contains("ssh_private_key_path (or --ssh-key)"), "{h}");
        assert!(h.contains("ssh_user (or --ssh-user)"), "{h}");
    }

    #[test]
    fn agents_need_fewer_ports_and_wireguard_adds_one() {
        let s = required_ports(Role::Server, true);
        let a = required_ports(Role::Agent, false);
        assert!(s.iter().any(|p| p.port == 2379));
        assert!(!a.iter().any(|p| p.port == 2379 || p.port == 51820));
        assert!(a.iter().any(|p| p.port == 10250));
        assert_eq!(s.len(), REQUIRED_PORTS.len());
    }
}

//! The node's inbound firewall: one nftables table (`inet ffe_host`) per node, with only the
//! ports its role needs, everything else dropped.
//!
//! Why one own table and nothing else: kube-proxy and Calico keep their own tables, and a packet
//! is accepted only when no base chain drops it, so this table never flushes or touches theirs
//! (`nft flush ruleset` would delete them). Pod and Service traffic (LoadBalancer VIPs, NodePorts;
//! kube-proxy in iptables mode, k3s's default) is DNATed in prerouting and forwarded, so only the
//! `input` hook is filtered. Inbound IPv6 is dropped but for ICMPv6 (the cluster is IPv4).
//! The table is replaced atomically (`delete table` and the new table in one `nft -f`
//! transaction). A new table is refused before it is loaded unless this apply's SSH client is in
//! the admin networks and reached sshd on `ssh_port`: then the admin SSH rule, placed before the
//! invalid-state drop, keeps both this session (which conntrack may pick up mid-stream) and the
//! next apply's connections.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::shell::quote;
use crate::ssh::{atomic_write_inline_script, Step};

pub const RULES_FILE: &str = "/etc/ffe/host-firewall.nft";
/// sha256 of `nft list table inet ffe_host` (counters blanked) as loaded: the drift check's
/// reference for the live table.
pub const LOADED_HASH_FILE: &str = "/etc/ffe/host-firewall.loaded.sha256";
pub const UNIT_NAME: &str = "ffe-host-firewall.service";
pub const UNIT_FILE: &str = "/etc/systemd/system/ffe-host-firewall.service";
pub const TABLE: &str = "inet ffe_host";

/// Ports every node accepts from the other cluster nodes only: kubelet, Calico's VXLAN,
/// WireGuard, Typha and BGP, node-exporter.
const NODE_TCP: &[(u16, &str)] = &[
    (10250, "kubelet API (logs, exec, metrics)"),
    (5473, "Calico Typha"),
    (179, "Calico BGP"),
    (9100, "node-exporter"),
];
const NODE_UDP: &[(u16, &str)] = &[(4789, "Calico VXLAN"), (51820, "Calico WireGuard (IPv4)")];
/// Ports pods reach on a node's own address (Prometheus scrapes, the API through the
/// `kubernetes` Service, which DNATs to a server's 6443).
const POD_TCP_ALL: &[u16] = &[10250, 9100];
const POD_TCP_SERVER: &[u16] = &[6443, 2381, 2112];

/// What a node's firewall lets in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallSpec {
    pub server: bool,
    /// The port this node's sshd listens on.
    pub ssh_port: u16,
    /// Where operators (and Terraform) connect from: SSH and the Kubernetes API.
    pub admin_cidrs: Vec<String>,
    /// The networks the cluster nodes are in (node-to-node ports). Networks rather than the
    /// node list: a node joining or leaving then changes no other node's rules, so an agent
    /// being drained still reaches the API and a new one is let in before it joins, whatever
    /// order Terraform updates the hosts in.
    pub node_cidrs: Vec<String>,
    /// The servers' addresses (etcd peers).
    pub servers: Vec<String>,
    pub pod_cidr: String,
    /// `IPv4:port` TCP endpoints open to everyone (the edge, Postgres and Vault VIPs). kube-proxy
    /// (iptables mode, k3s's default) forwards their traffic before the input hook; the rules
    /// only matter if something on the node itself listens there. IPVS mode is not supported
    /// with this firewall (every Service IP would be local and reach the input hook).
    pub service_endpoints: Vec<String>,
}

fn net(s: &str) -> Option<Ipv4Net> {
    let n: Ipv4Net = s.parse().ok()?;
    (n.trunc() == n).then_some(n)
}

fn endpoint(s: &str) -> Option<(Ipv4Addr, u16)> {
    let (ip, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    (port > 0).then_some(())?;
    Some((ip.parse().ok()?, port))
}

impl FirewallSpec {
    /// Input problems as `(attribute, message)`; empty when all is well.
    pub fn problems(&self, address: &str) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.admin_cidrs.is_empty() {
            out.push(("firewall_admin_cidrs", "is empty: nobody could reach SSH or the Kubernetes API once the firewall is on. List the networks operators and Terraform connect from, e.g. [\"10.0.0.0/24\"]".to_string()));
        }
        for c in &self.admin_cidrs {
            if net(c).is_none() {
                out.push(("firewall_admin_cidrs", format!("{c:?} is not an IPv4 network in canonical form such as \"10.0.0.0/24\" or \"10.0.0.5/32\"")));
            }
        }
        if self.node_cidrs.is_empty() {
            out.push((
                "firewall_node_cidrs",
                "is empty: list the network(s) the cluster nodes are in, e.g. [\"10.0.0.0/16\"]"
                    .to_string(),
            ));
        }
        let node_nets: Vec<Ipv4Net> = self.node_cidrs.iter().filter_map(|c| net(c)).collect();
        for c in &self.node_cidrs {
            if net(c).is_none() {
                out.push((
                    "firewall_node_cidrs",
                    format!(
                        "{c:?} is not an IPv4 network in canonical form such as \"10.0.0.0/16\""
                    ),
                ));
            }
        }
        let in_nodes = |a: &str| {
            a.parse::<Ipv4Addr>()
                .is_ok_and(|ip| node_nets.iter().any(|n| n.contains(&ip)))
        };
        if !in_nodes(address) {
            out.push((
                "firewall_node_cidrs",
                format!("holds no network with this node's own address {address}"),
            ));
        }
        if self.servers.is_empty() {
            out.push((
                "firewall_servers",
                "is empty: list every server's address".to_string(),
            ));
        }
        for a in &self.servers {
            if a.parse::<Ipv4Addr>().is_err() {
                out.push(("firewall_servers", format!("{a:?} is not an IPv4 address")));
            } else if !in_nodes(a) {
                out.push((
                    "firewall_servers",
                    format!(
                        "{a} is in none of firewall_node_cidrs: every server is a cluster node"
                    ),
                ));
            }
        }
        if self.server && !self.servers.iter().any(|n| n == address) {
            out.push((
                "firewall_servers",
                format!("does not hold this server's own address {address}"),
            ));
        }
        if net(&self.pod_cidr).is_none() {
            out.push((
                "firewall_pod_cidr",
                format!(
                    "{:?} is not an IPv4 network in canonical form such as \"10.42.0.0/16\"",
                    self.pod_cidr
                ),
            ));
        }
        for e in &self.service_endpoints {
            if endpoint(e).is_none() {
                out.push((
                    "firewall_service_endpoints",
                    format!("{e:?} is not IPv4:port, e.g. \"10.0.1.100:443\""),
                ));
            }
        }
        out
    }

    /// The nftables file: deletes and recreates the table in one transaction.
    pub fn render(&self) -> String {
        let set = |items: &[String]| items.join(", ");
        let mut r = String::new();
        r.push_str("# Managed by ffe-ha (ffe_host): this node's inbound firewall. Change the Terraform inputs, not this file.\n");
        r.push_str(&format!(
            "table {TABLE}\ndelete table {TABLE}\ntable {TABLE} {{\n"
        ));
        r.push_str(&format!(
            "\tset admin {{\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\tauto-merge\n\t\telements = {{ {} }}\n\t}}\n",
            set(&self.admin_cidrs)
        ));
        r.push_str(&format!(
            "\tset nodes {{\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\tauto-merge\n\t\telements = {{ {} }}\n\t}}\n",
            set(&self.node_cidrs)
        ));
        r.push_str(&format!(
            "\tset servers {{\n\t\ttype ipv4_addr\n\t\telements = {{ {} }}\n\t}}\n",
            set(&self.servers)
        ));
        r.push_str("\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n");
        let mut rule = |line: String| {
            r.push_str("\t\t");
            r.push_str(&line);
            r.push('\n');
        };
        rule("ct state established,related accept comment \"replies\"".into());
        // Before the invalid-state drop: a session that was open before the table was loaded
        // (this apply's own) may be picked up mid-stream by conntrack as new or invalid; the
        // lock-out check guarantees its client is in @admin.
        rule(format!(
            "tcp dport {} ip saddr @admin accept comment \"SSH from the admin networks\"",
            self.ssh_port
        ));
        rule("ct state invalid drop".into());
        rule("iif \"lo\" accept".into());
        rule("meta l4proto { icmp, ipv6-icmp } accept comment \"path MTU (VXLAN, WireGuard), IPv6 neighbour discovery\"".into());
        rule("udp sport 67 udp dport 68 accept comment \"DHCP replies\"".into());
        if self.server {
            rule("tcp dport 6443 ip saddr @admin accept comment \"Kubernetes API from the admin networks\"".into());
            rule("tcp dport 6443 ip saddr @nodes accept comment \"Kubernetes API and k3s supervisor (agents join here)\"".into());
            rule("tcp dport 2379-2380 ip saddr @servers accept comment \"etcd, between servers only\"".into());
            rule("tcp dport 2381 ip saddr @nodes accept comment \"etcd metrics\"".into());
            rule("tcp dport 2112 ip saddr @nodes accept comment \"kube-vip metrics\"".into());
        }
        for (port, what) in NODE_TCP {
            rule(format!(
                "tcp dport {port} ip saddr @nodes accept comment \"{what}\""
            ));
        }
        for (port, what) in NODE_UDP {
            rule(format!(
                "udp dport {port} ip saddr @nodes accept comment \"{what}\""
            ));
        }
        rule("ip protocol 4 ip saddr @nodes accept comment \"Calico IP-in-IP\"".into());
        let mut pod_ports: Vec<u16> = POD_TCP_ALL.to_vec();
        if self.server {
            pod_ports.extend_from_slice(POD_TCP_SERVER);
        }
        rule(format!(
            "ip saddr {} tcp dport {{ {} }} accept comment \"pods: API, kubelet and metrics scrapes\"",
            self.pod_cidr,
            pod_ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
        for e in &self.service_endpoints {
            if let Some((ip, port)) = endpoint(e) {
                rule(format!(
                    "ip daddr {ip} tcp dport {port} accept comment \"service VIP (if delivered to the node itself)\""
                ));
            }
        }
        rule("counter comment \"dropped: not allowed for this node's role\"".into());
        r.push_str("\t}\n}\n");
        r
    }
}

/// The systemd unit that loads the rules at boot, before the network comes up.
pub fn unit_file() -> String {
    format!(
        "# Managed by ffe-ha (ffe_host).\n[Unit]\nDescription=ffe-ha host firewall (nftables table {TABLE})\nDefaultDependencies=no\nAfter=nftables.service\nBefore=network-pre.target\nWants=network-pre.target\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/usr/sbin/nft -f {RULES_FILE}\n\n[Install]\nWantedBy=multi-user.target\n"
    )
}

/// Shell printing the sha256 of the live table's listing, counters blanked (empty table
/// listing when it does not exist).
const LISTING_HASH: &str = "nft list table inet ffe_host 2>/dev/null | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/' | sha256sum | cut -d' ' -f1";

/// Exit code of the apply step when the new rules would lock out this apply's SSH client.
pub const LOCKOUT_EXIT: i32 = 3;

/// Steps that load `spec` (or, with `None`, remove a table this project loaded before).
pub fn apply_steps(spec: Option<&FirewallSpec>, limit: std::time::Duration) -> Vec<Step> {
    let Some(spec) = spec else {
        let script = format!(
            "rm -f {RULES_FILE}.new; if [ -e {RULES_FILE} ] || [ -e {UNIT_FILE} ]; then systemctl disable {UNIT_NAME} >/dev/null 2>&1 || true; \
             nft delete table {TABLE} 2>/dev/null || true; rm -f {RULES_FILE} {LOADED_HASH_FILE} {UNIT_FILE}; \
             systemctl daemon-reload >/dev/null 2>&1 || true; fi"
        );
        return vec![Step::new("remove the host firewall", script, limit)];
    };
    let rules = spec.render();
    let staged = format!("{RULES_FILE}.new");
    let admin = spec.admin_cidrs.join(", ");
    // The new rules are checked by the kernel (`nft -c`), then this session's client address
    // is looked up in the admin set of a throw-away table, before anything is loaded.
    let probe = format!(
        "table inet ffe_host_probe {{\n\tset admin {{\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\tauto-merge\n\t\telements = {{ {admin} }}\n\t}}\n}}\n"
    );
    let check = format!(
        "set -e; command -v nft >/dev/null || {{ echo 'nft is not installed (package nftables)' >&2; exit 1; }}; \
         nft -c -f {staged}; \
         set -- ${{FFE_SSH_CONNECTION:-}}; client=${{1:-}}; local_port=${{4:-}}; \
         if [ -z \"$client\" ]; then rm -f {staged}; echo 'cannot tell which address this SSH session comes from (SSH_CONNECTION is empty), so the firewall could lock the next apply out. Nothing was loaded. Check that sshd sets SSH_CONNECTION for the ssh_user login.' >&2; exit {LOCKOUT_EXIT}; fi; \
         if [ \"$local_port\" != {port} ]; then rm -f {staged}; printf 'this SSH session reached sshd on port %s, but the firewall opens SSH on port {port} (ssh_port) only: behind a port forward the next apply could not connect. Nothing was loaded. Set ssh_port to the port sshd listens on, or disable the firewall (firewall_enabled / host_firewall_enabled = false).\\n' \"$local_port\" >&2; exit {LOCKOUT_EXIT}; fi; \
         nft delete table inet ffe_host_probe 2>/dev/null || true; printf '%s' {probe} | nft -f -; \
         if nft get element inet ffe_host_probe admin \"{{ $client }}\" >/dev/null 2>&1; then ok=1; else ok=0; fi; \
         nft delete table inet ffe_host_probe; \
         if [ $ok = 0 ]; then rm -f {staged}; printf 'this SSH session comes from %s, which is not in firewall_admin_cidrs (%s): the firewall would let no new SSH connection from it in, so the next apply or refresh could not reach the node (an IPv6 client is never let in: the firewall admits IPv4 admin networks only). Nothing was loaded. Add that address (or its network) to firewall_admin_cidrs, or connect from an admin network.\\n' \"$client\" {admin_q} >&2; exit {LOCKOUT_EXIT}; fi",
        port = spec.ssh_port,
        probe = quote(&probe),
        admin_q = quote(&admin)
    );
    let load = format!(
        "set -e; mv -f {staged} {RULES_FILE}; nft -f {RULES_FILE}; {LISTING_HASH} > {LOADED_HASH_FILE}; chmod 0600 {LOADED_HASH_FILE}"
    );
    vec![
        Step::new(
            "write the host firewall rules",
            atomic_write_inline_script(&staged, 0o600, &rules),
            limit,
        ),
        Step::new(
            "check the host firewall rules (syntax, this SSH client kept)",
            check,
            limit,
        ),
        Step::new("load the host firewall", load, limit),
        Step::new(
            "write the host firewall unit",
            atomic_write_inline_script(UNIT_FILE, 0o644, &unit_file()),
            limit,
        ),
        Step::new(
            "enable the host firewall at boot",
            format!("systemctl daemon-reload && systemctl enable {UNIT_NAME} >/dev/null"),
            limit,
        ),
    ]
}

/// Drift-check shell: one `drift: ...` line per difference.
pub fn drift_script(spec: Option<&FirewallSpec>) -> String {
    let Some(spec) = spec else {
        return format!(
            "if nft list table {TABLE} >/dev/null 2>&1 && [ -e {RULES_FILE} ]; then echo 'drift: the host firewall (nftables table inet ffe_host) is still loaded although firewall_enabled is false'; fi\n"
        );
    };
    let mut s = String::new();
    for (path, content) in [(RULES_FILE, spec.render()), (UNIT_FILE, unit_file())] {
        s.push_str(&format!(
            "[ \"$(cat {path} 2>/dev/null)\" = {c} ] || echo 'drift: {path} is missing or edited'\n",
            c = quote(content.trim_end())
        ));
    }
    s.push_str(&format!(
        "cur=$({LISTING_HASH}); [ \"$cur\" = \"$(cat {LOADED_HASH_FILE} 2>/dev/null)\" ] || echo 'drift: the nftables table inet ffe_host is missing or differs from the rules ffe-ha loaded'\n\
         systemctl is-enabled -q {UNIT_NAME} 2>/dev/null || echo 'drift: {UNIT_NAME} is not enabled (the firewall would not come back after a reboot)'\n"
    ));
    s
}

/// Shell removing everything [`apply_steps`] put on the node.
pub fn cleanup_script() -> String {
    format!(
        "systemctl disable {UNIT_NAME} >/dev/null 2>&1 || true; nft delete table {TABLE} 2>/dev/null || true; rm -f {RULES_FILE} {RULES_FILE}.new {LOADED_HASH_FILE} {UNIT_FILE}; systemctl daemon-reload >/dev/null 2>&1 || true; "
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec(server: bool) -> FirewallSpec {
        FirewallSpec {
            server,
            ssh_port: 22,
            admin_cidrs: vec!["10.0.0.0/24".into()],
            node_cidrs: vec!["10.0.1.0/24".into()],
            servers: vec!["10.0.1.10".into()],
            pod_cidr: "10.42.0.0/16".into(),
            service_endpoints: vec!["10.0.1.100:443".into()],
        }
    }

    #[test]
    fn inputs_are_checked() {
        assert_eq!(spec(true).problems("10.0.1.10"), vec![]);
        assert_eq!(spec(false).problems("10.0.1.20"), vec![]);
        let mut bad = spec(true);
        bad.admin_cidrs = vec!["10.0.0.1/24".into()];
        bad.servers.push("10.0.2.30".into());
        bad.pod_cidr = "10.42.0.0".into();
        bad.service_endpoints = vec!["10.0.1.100".into()];
        let attrs: Vec<&str> = bad
            .problems("10.0.3.99")
            .into_iter()
            .map(|(a, _)| a)
            .collect();
        assert_eq!(
            attrs,
            vec![
                "firewall_admin_cidrs",
                "firewall_node_cidrs",
                "firewall_servers",
                "firewall_servers",
                "firewall_pod_cidr",
                "firewall_service_endpoints"
            ]
        );
    }

    #[test]
    fn only_servers_open_the_api_and_etcd() {
        let server = spec(true).render();
        let agent = spec(false).render();
        assert!(server.contains("tcp dport 2379-2380 ip saddr @servers accept"));
        assert!(server.contains("tcp dport 6443 ip saddr @nodes accept"));
        assert!(!agent.contains("2379"));
        assert!(!agent.contains("dport 6443"));
        assert!(agent.contains("tcp dport 22 ip saddr @admin accept"));
        // Established traffic is accepted before anything can drop it.
        let first = agent
            .lines()
            .find(|l| l.trim_start().starts_with("ct state") || l.contains("dport"))
            .unwrap();
        assert!(
            first.contains("ct state established,related accept"),
            "{first}"
        );
    }
}

/// The rules and the lock-out check run against the real kernel's nftables, each in a network
/// namespace of its own (`unshare -n`, root; `make test` runs as root).
#[cfg(test)]
mod kernel_tests {
    use super::tests::spec;
    use super::*;

    fn in_netns(script: &str, ssh_connection: &str) -> std::process::Output {
        std::process::Command::new("unshare")
            .args(["-n", "sh", "-c", script])
            .env("FFE_SSH_CONNECTION", ssh_connection)
            .output()
            .expect("unshare")
    }

    fn steps_script(spec: &FirewallSpec, dir: &std::path::Path) -> Vec<String> {
        apply_steps(Some(spec), std::time::Duration::from_secs(30))
            .into_iter()
            .map(|s| {
                s.script
                    .replace("/etc/ffe/", &format!("{}/", dir.display()))
            })
            .collect()
    }

    #[test]
    fn the_kernel_accepts_the_rules_of_both_roles_and_loading_twice_replaces_them() {
        let dir = tempfile::tempdir().unwrap();
        for server in [true, false] {
            let rules = dir.path().join("rules.nft");
            let mut spec = spec(server);
            // Overlapping networks (a workstation inside an admin network) merge.
            spec.admin_cidrs.push("10.0.0.7/32".into());
            std::fs::write(&rules, spec.render()).unwrap();
            let script = format!(
                "set -e; nft -f {r}; nft -f {r}; nft list table inet ffe_host | grep -c 'accept' ",
                r = rules.display()
            );
            let out = in_netns(&script, "");
            assert!(out.status.success(), "{out:?}");
            let accepts: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            assert!(accepts > 10, "{out:?}");
        }
    }

    #[test]
    fn rules_that_would_lock_out_this_ssh_client_are_refused_before_loading() {
        let dir = tempfile::tempdir().unwrap();
        let steps = steps_script(&spec(true), dir.path());
        // write, check, load (the unit steps are left out: no systemd here)
        let script = format!(
            "{}\n{}\n{}\nnft list table inet ffe_host >/dev/null && echo LOADED",
            steps[0], steps[1], steps[2]
        );
        let out = in_netns(&script, "192.168.7.7 50000 10.0.1.10 22");
        assert_eq!(out.status.code(), Some(LOCKOUT_EXIT), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("192.168.7.7") && err.contains("firewall_admin_cidrs"),
            "{err}"
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains("LOADED"));
        assert!(!dir.path().join("host-firewall.nft").exists());
        // No client address (sudo dropped SSH_CONNECTION, say): refused, not loaded blind.
        let blind = in_netns(&script, "");
        assert_eq!(blind.status.code(), Some(LOCKOUT_EXIT), "{blind:?}");
        assert!(String::from_utf8_lossy(&blind.stderr).contains("SSH_CONNECTION is empty"));
        // Reached through a port forward (sshd on 2222, ssh_port 22): refused.
        let forwarded = in_netns(&script, "10.0.0.7 50000 10.0.1.10 2222");
        assert_eq!(forwarded.status.code(), Some(LOCKOUT_EXIT), "{forwarded:?}");
        assert!(String::from_utf8_lossy(&forwarded.stderr).contains("port 2222"));
        let ok = in_netns(&script, "10.0.0.7 50000 10.0.1.10 22");
        assert!(ok.status.success(), "{ok:?}");
        assert!(
            String::from_utf8_lossy(&ok.stdout).contains("LOADED"),
            "{ok:?}"
        );
        // The loaded table matches the recorded listing: the drift check is quiet, then loud
        // once a rule is added by hand.
        let drift = drift_script(Some(&spec(true)))
            .replace("/etc/ffe/", &format!("{}/", dir.path().display()));
        // No systemd here: the unit's enablement is the lab test's to check.
        let drift = drift.replace("systemctl is-enabled -q", "true").replace(
            "/etc/systemd/system/",
            &format!("{}/", dir.path().display()),
        );
        // The expected unit names the rules file, moved to the temp dir like the rest.
        let unit = unit_file().replace("/etc/ffe/", &format!("{}/", dir.path().display()));
        std::fs::write(dir.path().join(UNIT_NAME), unit).unwrap();
        let quiet = in_netns(
            &format!("{script} >/dev/null\n{}", drift),
            "10.0.0.7 1 10.0.1.10 22",
        );
        assert_eq!(String::from_utf8_lossy(&quiet.stdout), "", "{quiet:?}");
        let edited = in_netns(
            &format!(
                "{script} >/dev/null\nnft add rule inet ffe_host input tcp dport 8080 accept\n{}",
                drift
            ),
            "10.0.0.7 1 10.0.1.10 22",
        );
        assert!(
            String::from_utf8_lossy(&edited.stdout)
                .contains("drift: the nftables table inet ffe_host"),
            "{edited:?}"
        );
    }
}

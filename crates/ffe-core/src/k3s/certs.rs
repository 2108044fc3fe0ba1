//! k3s's certificates on a node and when they expire, read on the node with `openssl x509`
//! (no key is read; `.crt` files are public).
//!
//! Facts (k3s docs `cli/certificate.md`, k3s `pkg/daemons/control/deps`, `pkg/agent/config`):
//! leaf certificates are valid 365 days and renewed only when k3s starts within 120 days of their
//! expiry (90 before the May 2025 releases); CAs are valid 10 years and never renewed; each `.crt`
//! holds the leaf first (what `openssl x509` reads).

/// Where k3s keeps certificates: the server's (masters only) and the agent's (every node).
pub const SERVER_CERT_GLOBS: &[&str] = &[
    "/var/lib/rancher/k3s/server/tls/*.crt",
    "/var/lib/rancher/k3s/server/tls/etcd/*.crt",
];
pub const AGENT_CERT_GLOBS: &[&str] = &["/var/lib/rancher/k3s/agent/*.crt"];

/// Days before expiry within which k3s renews a leaf certificate at its next start.
pub const K3S_RENEW_DAYS: i64 = 120;

/// One certificate file and the end of its validity (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertExpiry {
    pub path: String,
    pub not_after: i64,
}

/// Shell printing `now <epoch>` then `cert <epoch> <path>` for every certificate in `globs`
/// (the globs are ours, not operator input, so they are left unquoted to expand).
pub fn expiry_script(globs: &[&str]) -> String {
    format!(
        "echo \"now $(date +%s)\"\nfor f in {}; do\n  [ -f \"$f\" ] || continue\n  end=$(openssl x509 -enddate -noout -in \"$f\" 2>/dev/null | cut -d= -f2)\n  [ -n \"$end\" ] && printf 'cert %s %s\\n' \"$(date -d \"$end\" +%s)\" \"$f\"\ndone\ntrue\n",
        globs.join(" ")
    )
}

/// `(node's now, certificates)` from [`expiry_script`]'s output.
pub fn parse_expiry(out: &str) -> Option<(i64, Vec<CertExpiry>)> {
    let now = out
        .lines()
        .find_map(|l| l.strip_prefix("now "))
        .and_then(|n| n.trim().parse().ok())?;
    let certs = out
        .lines()
        .filter_map(|l| l.strip_prefix("cert "))
        .filter_map(|l| {
            let (end, path) = l.split_once(' ')?;
            Some(CertExpiry {
                path: path.to_string(),
                not_after: end.parse().ok()?,
            })
        })
        .collect();
    Some((now, certs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_parses_and_garbage_lines_are_skipped() {
        let (now, certs) = parse_expiry(
            "now 100\ncert 200 /var/lib/rancher/k3s/agent/client-kubelet.crt\ncert x /bad\n",
        )
        .unwrap();
        assert_eq!(now, 100);
        assert_eq!(
            certs,
            vec![CertExpiry {
                path: "/var/lib/rancher/k3s/agent/client-kubelet.crt".into(),
                not_after: 200
            }]
        );
        assert!(parse_expiry("cert 1 /x\n").is_none());
    }
}

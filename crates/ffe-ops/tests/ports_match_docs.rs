//! The ports preflight checks are the ports docs/networking.md tells operators to open between
//! nodes: one table, two places, kept equal here.

use ffe_ops::preflight::{Proto, RequiredPort, REQUIRED_PORTS};

fn docs_table() -> Vec<(u16, Proto, bool, bool)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/networking.md");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text
        .find("allow between")
        .expect("docs/networking.md: the 'allow between the nodes' table");
    let mut rows = Vec::new();
    for line in text[start..].lines().skip_while(|l| !l.starts_with('|')) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let Some((ports, proto)) = cells[0].split_once('/') else {
            continue;
        };
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => continue,
        };
        let (lo, hi) = match ports.split_once('-') {
            Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
            None => {
                let Ok(p) = ports.parse::<u16>() else {
                    continue;
                };
                (p, p)
            }
        };
        let servers_only = cells[1].starts_with("masters");
        assert!(
            servers_only || cells[1] == "every node",
            "unexpected 'On' cell: {line}"
        );
        // Port | On | From | Used by
        let wireguard_only = cells
            .last()
            .is_some_and(|c| c.contains("calico_wireguard_enabled"));
        for p in lo..=hi {
            rows.push((p, proto, servers_only, wireguard_only));
        }
    }
    rows
}

#[test]
fn preflight_ports_are_the_documented_ports() {
    let mut docs = docs_table();
    let mut code: Vec<(u16, Proto, bool, bool)> = REQUIRED_PORTS
        .iter()
        .map(|p: &RequiredPort| (p.port, p.proto, p.servers_only, p.wireguard_only))
        .collect();
    let key = |r: &(u16, Proto, bool, bool)| (r.0, r.1 == Proto::Udp);
    docs.sort_by_key(key);
    code.sort_by_key(key);
    assert!(!docs.is_empty());
    assert_eq!(code, docs);
}

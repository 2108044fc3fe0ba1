//! How a report reaches the operator: a plain table (default) or JSON (`--output json`).
//! stdout carries only the result; the CLI sends logs and warnings to stderr.

use comfy_table::{presets::NOTHING, ContentArrangement, Table};
use serde::Serialize;

use crate::check::{Report, Status, Summary};
use crate::inventory::InventorySource;

/// Version of the JSON document's shape.
pub const JSON_SCHEMA_VERSION: u32 = 1;

pub fn table(report: &Report) -> String {
    let mut t = Table::new();
    t.load_preset(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(vec!["CHECK", "NODE", "STATUS", "EVIDENCE"]);
    for c in &report.checks {
        t.add_row(vec![
            c.id,
            c.subject.as_str(),
            c.status.label(),
            c.evidence.as_str(),
        ]);
    }
    let mut out = String::new();
    for line in t.to_string().lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    // One line per distinct advice, naming every node it applies to.
    let mut hints: Vec<(String, Vec<&str>)> = Vec::new();
    for c in report.checks.iter().filter(|c| c.status != Status::Pass) {
        if let Some(h) = &c.hint {
            let head = format!("{} ({}): {h}", c.id, c.status.label());
            match hints.iter_mut().find(|(k, _)| *k == head) {
                Some((_, subjects)) => subjects.push(&c.subject),
                None => hints.push((head, vec![&c.subject])),
            }
        }
    }
    if !hints.is_empty() {
        out.push_str("\nWhat to do:\n");
        for (head, subjects) in hints {
            let (id_status, advice) = head.split_once(": ").unwrap_or((head.as_str(), ""));
            out.push_str(&format!(
                "  {id_status} on {}: {advice}\n",
                subjects.join(", ")
            ));
        }
    }
    let s = report.summary();
    let code = report.exit_code();
    out.push_str(&format!(
        "\n{}: {} pass, {} warn, {} fail, {} error -> exit {}{}\n",
        report.command,
        s.pass,
        s.warn,
        s.fail,
        s.error,
        code.code(),
        if report.strict {
            " (--strict: warnings fail)"
        } else {
            ""
        }
    ));
    out
}

#[derive(Serialize)]
struct JsonReport<'a> {
    schema_version: u32,
    command: &'a str,
    inventory: &'a InventorySource,
    strict: bool,
    checks: &'a [crate::check::Check],
    summary: Summary,
    exit_code: i32,
}

pub fn json(report: &Report, source: &InventorySource) -> String {
    let doc = JsonReport {
        schema_version: JSON_SCHEMA_VERSION,
        command: report.command,
        inventory: source,
        strict: report.strict,
        checks: &report.checks,
        summary: report.summary(),
        exit_code: report.exit_code().code(),
    };
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// `ffe-ha status --output json`.
pub fn json_status(view: &crate::status::StatusView, source: &InventorySource) -> String {
    let doc = serde_json::json!({
        "schema_version": JSON_SCHEMA_VERSION,
        "command": "status",
        "inventory": source,
        "status": view,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// `ffe-ha drill`: what was failed, the timeline, each endpoint's probes, the measures.
pub fn drill_table(r: &crate::drill::DrillReport) -> String {
    use crate::drill::Outcome;
    let mut out = format!("drill {}", r.kind.name());
    match &r.target {
        Some(t) => out.push_str(&format!(": {t}\n")),
        None => out.push('\n'),
    }
    if r.outcome == Outcome::Refused {
        out.push_str("REFUSED, nothing was touched:\n");
        for why in &r.reasons {
            out.push_str(&format!("  {why}\n"));
        }
        out.push_str(&format!(
            "\ndrill: refused -> exit {}\n",
            r.exit_code().code()
        ));
        return out;
    }
    out.push_str(&format!(
        "probes every {} ms; times are seconds after the failure was made\n\n",
        r.probe_interval_ms
    ));
    for e in &r.events {
        out.push_str(&format!("  {:>+8.2} s  {}\n", e.at_s, e.what));
    }
    let mut t = Table::new();
    t.load_preset(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(vec!["ENDPOINT", "PROBES", "FAILED", "DOWNTIME", "OUTAGES"]);
    for e in &r.endpoints {
        let outages = e
            .outages
            .iter()
            .map(|o| match o.to_s {
                Some(to) => format!("{:+.2} s .. {:+.2} s ({})", o.from_s, to, o.first_error),
                None => format!("{:+.2} s .. not answering ({})", o.from_s, o.first_error),
            })
            .collect::<Vec<_>>()
            .join("; ");
        t.add_row(vec![
            format!("{} ({})", e.name, e.target),
            e.probes.to_string(),
            e.failed.to_string(),
            format!("{:.2} s", e.downtime_s),
            outages,
        ]);
    }
    out.push('\n');
    for line in t.to_string().lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push('\n');
    let rto = format!("seed RTO \"{}\" ({:.0} s)", r.rto.seed, r.rto.limit_s);
    match r.service_restored_s {
        Some(s) if s <= 0.0 => out.push_str(&format!(
            "service: no failed probe (no downtime seen); {rto}: met\n"
        )),
        Some(s) if s <= r.rto.limit_s => {
            out.push_str(&format!("service restored after {s:.2} s; {rto}: met\n"))
        }
        Some(s) => out.push_str(&format!("service restored after {s:.2} s; {rto}: MISSED\n")),
        None => out.push_str(&format!("service: NOT restored; {rto}: MISSED\n")),
    }
    match r.recovered_s {
        Some(s) => out.push_str(&format!("fully recovered after {s:.2} s\n")),
        None => out.push_str("NOT recovered\n"),
    }
    for why in &r.reasons {
        out.push_str(&format!("  {why}\n"));
    }
    out.push_str(&format!(
        "\ndrill: {} -> exit {}\n",
        match r.outcome {
            Outcome::Recovered => "recovered",
            Outcome::RecoveredLate => "recovered late",
            Outcome::NotRecovered => "not recovered",
            Outcome::Refused => "refused",
        },
        r.exit_code().code()
    ));
    out
}

/// `ffe-ha drill --output json`.
pub fn json_drill(r: &crate::drill::DrillReport, source: &InventorySource) -> String {
    let doc = serde_json::json!({
        "schema_version": JSON_SCHEMA_VERSION,
        "command": "drill",
        "inventory": source,
        "drill": r,
        "exit_code": r.exit_code().code(),
    });
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// A command that could not run at all (no inventory): still one JSON document on stdout.
pub fn json_error(command: &str, message: &str, exit_code: i32) -> String {
    serde_json::json!({
        "schema_version": JSON_SCHEMA_VERSION,
        "command": command,
        "error": message,
        "exit_code": exit_code,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Check;

    #[test]
    fn table_lists_rows_hints_and_the_exit_code() {
        let r = Report {
            command: "preflight",
            checks: vec![
                Check::new("cpu.min", "m0", Status::Fail, "2 vCPU < 4").hint("more vCPUs"),
                Check::new("os.supported", "m0", Status::Pass, "ubuntu 24.04"),
            ],
            strict: false,
        };
        let t = table(&r);
        assert!(t.contains("cpu.min"), "{t}");
        assert!(t.contains("cpu.min (fail) on m0: more vCPUs"), "{t}");
        assert!(
            t.contains("1 pass, 0 warn, 1 fail, 0 error -> exit 1"),
            "{t}"
        );
        let j: serde_json::Value = serde_json::from_str(&json(
            &r,
            &InventorySource::File {
                path: "i.json".into(),
            },
        ))
        .unwrap();
        assert_eq!(j["exit_code"], 1);
        assert_eq!(j["checks"][0]["status"], "fail");
        assert_eq!(j["inventory"]["kind"], "file");
    }
}

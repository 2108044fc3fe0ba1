//! Monitoring checks (issue 5), run by `make test-monitoring`:
//! - every Grafana panel query in monitoring/dashboards/*.json parses as PromQL and references only
//!   metrics listed in monitoring/known-metrics.txt (names some exporter of this stack exports);
//! - every rule expression in monitoring/rules/*.yaml does the same;
//! - every alert has severity, summary, description and a runbook_url whose anchor exists in
//!   docs/monitoring.md;
//! - every alert has a promtool unit test in monitoring/tests/*.yaml that expects it firing and one
//!   that expects it not firing (promtool itself does not enforce that);
//! - every rule that reads a Postgres or Vault metric sits in a group whose name contains
//!   "postgres" / "vault" (and only such rules do): terraform/modules/monitoring leaves those groups
//!   out until the layer is deployed, so their absent() alerts cannot fire on a cluster without it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr};
use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
        .collect();
    files.sort();
    files
}

fn known_metrics(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Every vector selector of a PromQL expression (inside matrix selectors and subqueries too).
fn selectors<'a>(expr: &'a Expr, out: &mut Vec<&'a parser::VectorSelector>) {
    match expr {
        Expr::Aggregate(a) => {
            selectors(&a.expr, out);
            if let Some(p) = &a.param {
                selectors(p, out);
            }
        }
        Expr::Unary(u) => selectors(&u.expr, out),
        Expr::Binary(b) => {
            selectors(&b.lhs, out);
            selectors(&b.rhs, out);
        }
        Expr::Paren(p) => selectors(&p.expr, out),
        Expr::Subquery(s) => selectors(&s.expr, out),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        Expr::VectorSelector(vs) => out.push(vs),
        Expr::MatrixSelector(ms) => out.push(&ms.vs),
        Expr::Call(c) => {
            for arg in &c.args.args {
                selectors(arg, out);
            }
        }
    }
}

/// Metric names a PromQL expression selects (by name or by a `__name__="..."` matcher).
fn metric_names(expr: &Expr, out: &mut BTreeSet<String>) -> Result<(), String> {
    let mut all = Vec::new();
    selectors(expr, &mut all);
    for vs in all {
        selector_name(vs, out)?;
    }
    Ok(())
}

fn selector_name(vs: &parser::VectorSelector, out: &mut BTreeSet<String>) -> Result<(), String> {
    if let Some(name) = &vs.name {
        out.insert(name.clone());
        return Ok(());
    }
    let by_name: Vec<_> = vs
        .matchers
        .matchers
        .iter()
        .filter(|m| m.name == "__name__")
        .collect();
    match by_name.as_slice() {
        [m] if matches!(m.op, MatchOp::Equal) => {
            out.insert(m.value.clone());
            Ok(())
        }
        _ => Err(format!(
            "selector {vs} does not name one metric exactly: cannot check it against the allow-list"
        )),
    }
}

/// Grafana variables that may appear in panel queries, replaced before parsing.
fn expand_grafana_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("${__rate_interval}", "5m")
        .replace("$__interval", "1m")
        .replace("${__interval}", "1m")
        .replace("$__range", "1h")
}

/// Parses one query and returns the problems with it (empty = fine).
fn check_query(location: &str, query: &str, known: &BTreeSet<String>) -> Vec<String> {
    let expr = match parser::parse(&expand_grafana_variables(query)) {
        Ok(expr) => expr,
        Err(e) => return vec![format!("{location}: does not parse: {e}\n    {query}")],
    };
    let mut names = BTreeSet::new();
    if let Err(e) = metric_names(&expr, &mut names) {
        return vec![format!("{location}: {e}")];
    }
    names
        .into_iter()
        .filter(|n| !known.contains(n))
        .map(|n| {
            format!(
                "{location}: metric {n} is not in monitoring/known-metrics.txt (no exporter of this stack is known to export it)"
            )
        })
        .collect()
}

fn collect_panels<'a>(panels: &'a [Json], out: &mut Vec<&'a Json>) {
    for panel in panels {
        out.push(panel);
        if let Some(nested) = panel.get("panels").and_then(Json::as_array) {
            collect_panels(nested, out);
        }
    }
}

/// Every query of a dashboard as (location, expr); problems for panels without queries.
fn dashboard_queries(name: &str, dashboard: &Json) -> (Vec<(String, String)>, Vec<String>) {
    let mut queries = Vec::new();
    let mut problems = Vec::new();
    let mut panels = Vec::new();
    collect_panels(
        dashboard
            .get("panels")
            .and_then(Json::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]),
        &mut panels,
    );
    if panels.is_empty() {
        problems.push(format!("{name}: no panels"));
    }
    for panel in panels {
        if panel.get("type").and_then(Json::as_str) == Some("row") {
            continue;
        }
        let title = panel.get("title").and_then(Json::as_str).unwrap_or("?");
        let targets = panel
            .get("targets")
            .and_then(Json::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let exprs: Vec<&str> = targets
            .iter()
            .filter_map(|t| t.get("expr").and_then(Json::as_str))
            .collect();
        if exprs.is_empty() {
            problems.push(format!("{name}: panel {title:?} has no query"));
        }
        for (i, expr) in exprs.into_iter().enumerate() {
            queries.push((
                format!("{name}: panel {title:?} query {i}"),
                expr.to_string(),
            ));
        }
    }
    (queries, problems)
}

fn load_known() -> BTreeSet<String> {
    let path = repo_root().join("monitoring/known-metrics.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    known_metrics(&text)
}

fn assert_no_problems(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn every_dashboard_query_parses_and_uses_known_metrics() {
    let known = load_known();
    let files = files_with_ext(&repo_root().join("monitoring/dashboards"), "json");
    assert!(
        files.len() >= 5,
        "expected the 5 dashboards of issue 5, found {files:?}"
    );
    let mut problems = Vec::new();
    let mut uids = BTreeSet::new();
    let mut total = 0;
    for file in &files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let text = std::fs::read_to_string(file).expect("dashboard file");
        let dashboard: Json = match serde_json::from_str(&text) {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("{name}: not JSON: {e}"));
                continue;
            }
        };
        match dashboard.get("uid").and_then(Json::as_str) {
            Some(uid) if uids.insert(uid.to_string()) => {}
            Some(uid) => problems.push(format!("{name}: uid {uid} used twice")),
            None => problems.push(format!(
                "{name}: no uid (Grafana would make a new one per load)"
            )),
        }
        let (queries, mut p) = dashboard_queries(name, &dashboard);
        problems.append(&mut p);
        total += queries.len();
        for (location, query) in queries {
            problems.extend(check_query(&location, &query, &known));
        }
    }
    assert_no_problems("dashboards", &problems);
    assert!(
        total > 20,
        "only {total} queries found: is the panel walk broken?"
    );
}

struct Rule {
    file: String,
    group: String,
    alert: Option<String>,
    expr: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

fn string_map(v: Option<&Yaml>) -> BTreeMap<String, String> {
    v.and_then(Yaml::as_mapping)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
        .collect()
}

fn load_rules() -> Vec<Rule> {
    let mut rules = Vec::new();
    for file in files_with_ext(&repo_root().join("monitoring/rules"), "yaml") {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        let doc: Yaml =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&file).expect("rule file"))
                .unwrap_or_else(|e| panic!("{name}: not YAML: {e}"));
        let groups = doc
            .get("groups")
            .and_then(Yaml::as_sequence)
            .unwrap_or_else(|| panic!("{name}: no groups"));
        for group in groups {
            let group_name = group
                .get("name")
                .and_then(Yaml::as_str)
                .unwrap_or_else(|| panic!("{name}: a group without a name"))
                .to_string();
            for rule in group
                .get("rules")
                .and_then(Yaml::as_sequence)
                .into_iter()
                .flatten()
            {
                rules.push(Rule {
                    file: name.clone(),
                    group: group_name.clone(),
                    alert: rule.get("alert").and_then(Yaml::as_str).map(str::to_string),
                    expr: rule
                        .get("expr")
                        .and_then(Yaml::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    labels: string_map(rule.get("labels")),
                    annotations: string_map(rule.get("annotations")),
                });
            }
        }
    }
    rules
}

#[test]
fn every_rule_expression_parses_and_uses_known_metrics() {
    let known = load_known();
    let rules = load_rules();
    assert!(rules.len() > 30, "only {} rules found", rules.len());
    let mut problems = Vec::new();
    for rule in &rules {
        let location = format!(
            "{}: {}",
            rule.file,
            rule.alert.as_deref().unwrap_or("recording rule")
        );
        problems.extend(check_query(&location, &rule.expr, &known));
    }
    assert_no_problems("rules", &problems);
}

/// A layer this release may not deploy, and how a selector shows it reads it: metric-name
/// prefixes, scrape jobs, and CronJob name fragments (backup jobs read via kube-state-metrics).
struct Layer {
    name: &'static str,
    prefixes: &'static [&'static str],
    jobs: &'static [&'static str],
    cronjobs: &'static [&'static str],
}

const LAYERS: [Layer; 2] = [
    Layer {
        name: "postgres",
        prefixes: &[
            "patroni_",
            "pg_",
            "pgbouncer_",
            "ffe_pgbackup_",
            "ffe:postgres_",
        ],
        jobs: &["patroni", "postgres-exporter", "pgbouncer-exporter"],
        cronjobs: &["pg-dump"],
    },
    Layer {
        name: "vault",
        prefixes: &["vault_", "ffe:vault_"],
        jobs: &["vault"],
        cronjobs: &["vault-snapshot"],
    },
];

/// The layers a rule expression reads (empty = only the core platform).
fn layers_read(expr: &str) -> Result<BTreeSet<&'static str>, String> {
    let expr = parser::parse(expr).map_err(|e| format!("does not parse: {e}"))?;
    let mut all = Vec::new();
    selectors(&expr, &mut all);
    let mut layers = BTreeSet::new();
    for vs in all {
        let matchers: Vec<_> = vs
            .matchers
            .matchers
            .iter()
            .chain(vs.matchers.or_matchers.iter().flatten())
            .collect();
        for layer in &LAYERS {
            let by_name = vs
                .name
                .iter()
                .chain(
                    matchers
                        .iter()
                        .filter(|m| m.name == "__name__")
                        .map(|m| &m.value),
                )
                .any(|n| layer.prefixes.iter().any(|p| n.starts_with(p)));
            let by_job = matchers
                .iter()
                .any(|m| m.name == "job" && layer.jobs.contains(&m.value.as_str()));
            let by_cronjob = matchers
                .iter()
                .any(|m| layer.cronjobs.iter().any(|c| m.value.contains(c)));
            if by_name || by_job || by_cronjob {
                layers.insert(layer.name);
            }
        }
    }
    Ok(layers)
}

/// The layers a rule group belongs to, by the module's naming rule.
fn group_layers(group: &str) -> BTreeSet<&'static str> {
    LAYERS
        .iter()
        .map(|layer| layer.name)
        .filter(|name| group.to_lowercase().contains(name))
        .collect()
}

#[test]
fn every_postgres_and_vault_rule_sits_in_its_layers_group() {
    let mut problems = Vec::new();
    let mut layered = 0;
    for rule in load_rules() {
        // expected.yaml is not deployed: the module renders that group from its variables.
        if rule.file == "expected.yaml" {
            continue;
        }
        let what = format!(
            "{}: group {}: {}",
            rule.file,
            rule.group,
            rule.alert.as_deref().unwrap_or("recording rule")
        );
        match layers_read(&rule.expr) {
            Ok(read) => {
                let group = group_layers(&rule.group);
                if !read.is_empty() {
                    layered += 1;
                }
                if read != group {
                    problems.push(format!(
                        "{what}: reads layers {read:?} but its group name puts it in {group:?} (the monitoring module renders a group only when every layer its name contains is deployed)"
                    ));
                }
            }
            Err(e) => problems.push(format!("{what}: {e}")),
        }
    }
    assert_no_problems("rule layers", &problems);
    assert!(
        layered >= 10,
        "only {layered} rules read Postgres or Vault: is the layer detection broken?"
    );
}

#[test]
fn layer_detection_sees_names_jobs_and_cronjobs() {
    let read = |e: &str| layers_read(e).expect("parses");
    assert_eq!(
        read("absent(patroni_primary{job=\"patroni\"} == 1)"),
        BTreeSet::from(["postgres"])
    );
    assert_eq!(read("up{job=\"vault\"} == 0"), BTreeSet::from(["vault"]));
    assert_eq!(
        read("kube_cronjob_created{cronjob=~\".*pg-dump.*\"}"),
        BTreeSet::from(["postgres"])
    );
    assert_eq!(
        read("time() - max(kube_cronjob_status_last_successful_time{cronjob=~\".*vault-snapshot.*\"}) > on () group_left () ffe:postgres_replicas:expected"),
        BTreeSet::from(["postgres", "vault"])
    );
    assert!(read("up{job=\"apiserver\"} == 0 and ffe_etcd_snapshot_ready").is_empty());
    assert_eq!(
        group_layers("ffe-backups-postgres"),
        BTreeSet::from(["postgres"])
    );
    assert!(group_layers("ffe-backups").is_empty());
}

/// GitHub-style heading anchors of a Markdown file.
fn markdown_anchors(markdown: &str) -> BTreeSet<String> {
    markdown
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

#[test]
fn every_alert_is_documented_and_labelled() {
    let docs = std::fs::read_to_string(repo_root().join("docs/monitoring.md"))
        .expect("docs/monitoring.md");
    let anchors = markdown_anchors(&docs);
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    for rule in load_rules() {
        let Some(alert) = &rule.alert else { continue };
        if !names.insert(alert.clone()) {
            problems.push(format!("{alert}: defined twice"));
        }
        match rule.labels.get("severity").map(String::as_str) {
            Some("critical" | "warning" | "info") => {}
            other => problems.push(format!(
                "{alert}: severity {other:?} is not critical/warning/info"
            )),
        }
        for key in ["summary", "description"] {
            if rule
                .annotations
                .get(key)
                .is_none_or(|v| v.trim().is_empty())
            {
                problems.push(format!("{alert}: no {key} annotation"));
            }
        }
        match rule.annotations.get("runbook_url") {
            Some(url) => match url.split_once('#') {
                Some(("docs/monitoring.md", anchor)) if anchors.contains(anchor) => {}
                Some(("docs/monitoring.md", anchor)) => problems.push(format!(
                    "{alert}: runbook anchor #{anchor} has no heading in docs/monitoring.md"
                )),
                _ => problems.push(format!(
                    "{alert}: runbook_url {url} does not point into docs/monitoring.md#..."
                )),
            },
            None => problems.push(format!("{alert}: no runbook_url")),
        }
    }
    assert_no_problems("alerts", &problems);
}

#[test]
fn every_alert_has_a_firing_and_a_not_firing_unit_test() {
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for file in files_with_ext(&repo_root().join("monitoring/tests"), "yaml") {
        let doc: Yaml =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&file).expect("test file"))
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", file.display()));
        for test in doc
            .get("tests")
            .and_then(Yaml::as_sequence)
            .into_iter()
            .flatten()
        {
            for case in test
                .get("alert_rule_test")
                .and_then(Yaml::as_sequence)
                .into_iter()
                .flatten()
            {
                let Some(name) = case.get("alertname").and_then(Yaml::as_str) else {
                    continue;
                };
                let expected = case
                    .get("exp_alerts")
                    .and_then(Yaml::as_sequence)
                    .map_or(0, Vec::len);
                if expected > 0 {
                    firing.insert(name.to_string());
                } else {
                    quiet.insert(name.to_string());
                }
            }
        }
    }
    let mut problems = Vec::new();
    for rule in load_rules() {
        let Some(alert) = rule.alert else { continue };
        if !firing.contains(&alert) {
            problems.push(format!("{alert}: no promtool test expects it to fire"));
        }
        if !quiet.contains(&alert) {
            problems.push(format!(
                "{alert}: no promtool test expects it to stay quiet"
            ));
        }
    }
    assert_no_problems("promtool coverage", &problems);
}

// The checker itself must be able to fail.
#[test]
fn checker_rejects_unknown_metrics_bad_syntax_and_nameless_selectors() {
    let known = known_metrics("up\nnode_cpu_seconds_total # node-exporter\n");
    assert!(check_query(
        "ok",
        "sum(rate(node_cpu_seconds_total[5m])) > 0 and up",
        &known
    )
    .is_empty());
    assert!(check_query(
        "ok",
        "rate(node_cpu_seconds_total[$__rate_interval])",
        &known
    )
    .is_empty());
    let unknown = check_query("x", "rate(made_up_total[5m]) / up", &known);
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(unknown[0].contains("made_up_total"));
    assert_eq!(check_query("x", "sum(rate(up[5m])", &known).len(), 1);
    assert_eq!(check_query("x", "{job=\"node\"}", &known).len(), 1);
    assert!(check_query("x", "{__name__=\"up\"}", &known).is_empty());
}

/// The exporters the Postgres layer runs as sidecars (terraform/modules/postgres/monitoring.tf), by
/// image name, with the metric-name prefix each serves.
const POSTGRES_EXPORTERS: [(&str, &str); 2] = [
    ("postgres-exporter", "pg_"),
    ("pgbouncer-exporter", "pgbouncer_"),
];

/// The tag of `quay.io/prometheuscommunity/<name>:<tag>` as written in a Terraform file.
fn pinned_tag<'a>(terraform: &'a str, name: &str) -> Option<&'a str> {
    let needle = format!("quay.io/prometheuscommunity/{name}:");
    let start = terraform.find(&needle)? + needle.len();
    terraform[start..].split('"').next()
}

/// Names of `known` with `prefix` that the vendored list (`metrics.txt`: names, `#` comments, a
/// trailing `*` for a family of generated names) does not contain.
fn missing_from_vendored<'a>(
    known: &'a BTreeSet<String>,
    prefix: &str,
    vendored: &str,
) -> Vec<&'a String> {
    let listed = known_metrics(vendored);
    known
        .iter()
        .filter(|n| n.starts_with(prefix))
        .filter(|n| {
            !listed.iter().any(|l| match l.strip_suffix('*') {
                Some(family) => n.starts_with(family),
                None => l == *n,
            })
        })
        .collect()
}

// known-metrics.txt is written by hand: every exporter metric it admits must be one the pinned
// exporter serves (upstream/images/<exporter>/<tag>/metrics.txt, generated from its source).
#[test]
fn exporter_metrics_exist_at_the_pinned_exporter_tag() {
    let known = load_known();
    let monitoring_tf =
        std::fs::read_to_string(repo_root().join("terraform/modules/postgres/monitoring.tf"))
            .expect("terraform/modules/postgres/monitoring.tf");
    let mut problems = Vec::new();
    for (image, prefix) in POSTGRES_EXPORTERS {
        let Some(tag) = pinned_tag(&monitoring_tf, image) else {
            problems.push(format!(
                "no {image} image in terraform/modules/postgres/monitoring.tf"
            ));
            continue;
        };
        let path = repo_root().join(format!("upstream/images/{image}/{tag}/metrics.txt"));
        let Ok(vendored) = std::fs::read_to_string(&path) else {
            problems.push(format!("{} is missing: vendor it", path.display()));
            continue;
        };
        let used = known.iter().filter(|n| n.starts_with(prefix)).count();
        if used == 0 {
            problems.push(format!(
                "no {prefix}* metric in known-metrics.txt: is the prefix right?"
            ));
        }
        problems.extend(
            missing_from_vendored(&known, prefix, &vendored)
                .into_iter()
                .map(|n| format!("{n}: {image} {tag} does not serve it ({})", path.display())),
        );
    }
    assert_no_problems("exporter metrics", &problems);
}

/// The tag of `key = "<tag>"` inside the block `block = { ... }` (or at top level with no block) of a
/// Terraform file; None when absent.
fn hcl_string(terraform: &str, block: Option<&str>, key: &str) -> Option<String> {
    let scope = match block {
        Some(name) => {
            let start = terraform.find(&format!("{name} = {{"))?;
            let rest = &terraform[start..];
            &rest[..rest.find("\n  }")?]
        }
        None => terraform,
    };
    scope.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key)
            .then(|| v.trim().trim_matches('"').to_string())
            .filter(|v| !v.is_empty())
    })
}

/// The server image tags terraform/environments/ha/pins.tf deploys by default: the Vault image of
/// the default vault_version minor, and the OpenBao image.
fn pinned_vault_tags(pins: &str) -> Result<[(&'static str, String); 2], String> {
    let minor = hcl_string(pins, Some("default_versions"), "vault")
        .ok_or("pins.tf: no default_versions.vault")?;
    let vault = hcl_string(pins, Some("vault_image_tags"), &format!("\"{minor}\""))
        .ok_or_else(|| format!("pins.tf: no vault_image_tags entry for {minor}"))?;
    let openbao =
        hcl_string(pins, None, "openbao_image_tag").ok_or("pins.tf: no openbao_image_tag")?;
    Ok([("vault", vault), ("openbao", openbao)])
}

// Vault and OpenBao serve the same vault_* names (OpenBao kept the prefix); the rules and the
// dashboard must work with either distribution, so every vault_* name in known-metrics.txt must be
// in the vendored list of the default server image of both (upstream/images/<image>/<tag>/metrics.txt).
#[test]
fn vault_metrics_exist_in_both_distributions() {
    let known = load_known();
    let pins = std::fs::read_to_string(repo_root().join("terraform/environments/ha/pins.tf"))
        .expect("terraform/environments/ha/pins.tf");
    let tags = pinned_vault_tags(&pins).unwrap_or_else(|e| panic!("{e}"));
    let mut problems = Vec::new();
    if known.iter().filter(|n| n.starts_with("vault_")).count() == 0 {
        problems.push("no vault_* metric in known-metrics.txt: is the prefix right?".to_string());
    }
    for (image, tag) in tags {
        let path = repo_root().join(format!("upstream/images/{image}/{tag}/metrics.txt"));
        let Ok(vendored) = std::fs::read_to_string(&path) else {
            problems.push(format!("{} is missing: vendor it", path.display()));
            continue;
        };
        problems.extend(
            missing_from_vendored(&known, "vault_", &vendored)
                .into_iter()
                .map(|n| format!("{n}: {image} {tag} does not serve it ({})", path.display())),
        );
    }
    assert_no_problems("Vault/OpenBao metrics", &problems);
}

#[test]
fn pinned_vault_tags_follow_pins_tf() {
    let pins = "locals {\n  default_versions = {\n    kubernetes = \"v1.36\"\n    vault      = \"1.21\"\n  }\n\n  vault_image_tags = {\n    \"1.20\" = \"1.20.4\"\n    \"1.21\" = \"1.21.2\"\n  }\n\n  openbao_image_tag = \"2.6.2\"\n}\n";
    let tags = pinned_vault_tags(pins).expect("tags");
    assert_eq!(tags[0], ("vault", "1.21.2".to_string()));
    assert_eq!(tags[1], ("openbao", "2.6.2".to_string()));
    assert!(pinned_vault_tags(&pins.replace("openbao_image_tag", "other")).is_err());
    assert!(pinned_vault_tags(&pins.replace("\"1.21\" =", "\"1.19\" =")).is_err());
}

#[test]
fn vendored_metric_lists_reject_unknown_names() {
    let known = known_metrics("pg_up\npg_settings_max_connections\npg_made_up\nup\n");
    let vendored = "# header\npg_up  # exporter\npg_settings_*  # generated\n";
    let missing = missing_from_vendored(&known, "pg_", vendored);
    assert_eq!(missing, vec!["pg_made_up"]);
    assert_eq!(
        pinned_tag(
            "image = \"quay.io/prometheuscommunity/postgres-exporter:v0.20.1\"",
            "postgres-exporter"
        ),
        Some("v0.20.1")
    );
}

#[test]
fn markdown_anchors_follow_github_rules() {
    let anchors = markdown_anchors("# Title\n## EtcdNoLeader\n### Grafana: how to log in\ntext\n");
    assert!(anchors.contains("etcdnoleader"));
    assert!(anchors.contains("grafana-how-to-log-in"));
    assert!(!anchors.contains("text"));
}

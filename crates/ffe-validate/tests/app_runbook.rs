//! docs/app.md's Helm commands, rendered: the runbook's marked blocks (```` ```bash ffe-walk:ID ````,
//! ```` ```yaml ffe-walk:file=PATH ````) are taken as written, placeholders filled in, every
//! `helm install|upgrade` turned into the `helm template` it would apply, and the results compared
//! object by object with the real Helm v4 (`tools/bin/helm`, or `FFE_HELM`):
//! - scale = install except the replica count (the command keeps every setting of the install);
//! - upgrade = install except the image tag;
//! - the seed's bare scale command (docs/contract/HA_README.md) against that install changes far
//!   more than the replica count, as the runbook warns;
//! - the chart README's commands are the runbook's;
//! - the install talks to what the Terraform Postgres layer deploys (PgBouncer's Service, the copied
//!   credentials and CA Secrets, read from modules/postgres), and the own-PostgreSQL variant reads
//!   `DATABASE_URL` from the Secret its block creates.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn helm4() -> PathBuf {
    let path = std::env::var_os("FFE_HELM")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("tools/bin/helm"));
    assert!(
        path.exists(),
        "{} not found (set FFE_HELM or run `make deps`)",
        path.display()
    );
    path
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Values for the runbook's `<placeholders>` (the operator's site).
const VERSION: &str = "1.4.2";
const NEW_VERSION: &str = "1.5.0";
const APP_DOMAIN: &str = "ffe.example.org";
const API_DOMAIN: &str = "api.ffe.example.org";

fn placeholders(version: &str) -> BTreeMap<&'static str, String> {
    [
        ("<version>", version.to_string()),
        ("<app-domain>", APP_DOMAIN.to_string()),
        ("<api-domain>", API_DOMAIN.to_string()),
        ("<password>", "pw".to_string()),
        ("<db-host>", "db.example.org".to_string()),
        ("<db-ip>", "192.0.2.10".to_string()),
        ("<ca-file>", "/tmp/ca.crt".to_string()),
        ("<REVISION>", "1".to_string()),
    ]
    .into_iter()
    .collect()
}

/// Replaces every known `<placeholder>`; any other `<word>` left is an error (a new placeholder
/// the test does not know).
fn fill(text: &str, values: &BTreeMap<&str, String>) -> String {
    let mut out = text.to_string();
    for (k, v) in values {
        out = out.replace(k, v);
    }
    for (start, _) in out.match_indices('<') {
        let rest = &out[start + 1..];
        if let Some(end) = rest.find('>') {
            let word = &rest[..end];
            assert!(
                word.is_empty()
                    || !word
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "unknown placeholder <{word}> in:\n{out}"
            );
        }
    }
    out
}

/// Fenced blocks whose info string has a `ffe-walk:` word: marker (after the colon) -> body.
fn marked_blocks(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        let marker = info
            .split_whitespace()
            .find_map(|w| w.strip_prefix("ffe-walk:"))
            .map(str::to_string);
        let mut body = String::new();
        for l in lines.by_ref() {
            if l.trim_start().starts_with("```") {
                break;
            }
            body.push_str(l);
            body.push('\n');
        }
        if let Some(marker) = marker {
            assert!(
                out.insert(marker.clone(), body).is_none(),
                "marker ffe-walk:{marker} used twice"
            );
        }
    }
    out
}

/// Bodies of the fenced blocks whose info string starts with `bash`.
fn bash_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        let mut body = String::new();
        for l in lines.by_ref() {
            if l.trim_start().starts_with("```") {
                break;
            }
            body.push_str(l);
            body.push('\n');
        }
        if info.split_whitespace().next() == Some("bash") {
            out.push(body);
        }
    }
    out
}

/// Shell words of one command line: quotes, backslash escapes, `#` comments; `;`, `&&`, `||`
/// and `|` end a command.
fn shell_commands(line: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                if !matches!(n, '"' | '\\' | '$' | '`') {
                                    word.push('\\');
                                }
                                word.push(n);
                            }
                        }
                        _ => word.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            '#' if !in_word => break,
            ';' | '&' | '|' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                while chars.peek().is_some_and(|n| matches!(n, '&' | '|')) {
                    chars.next();
                }
                if !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if !words.is_empty() {
        commands.push(words);
    }
    commands
}

/// Every `helm install|upgrade` command of a shell block (continuation lines joined).
fn helm_commands(block: &str) -> Vec<Vec<String>> {
    let joined = block.replace("\\\n", " ");
    joined
        .lines()
        .flat_map(shell_commands)
        .filter(|w| w.len() > 1 && w[0] == "helm" && (w[1] == "install" || w[1] == "upgrade"))
        .collect()
}

/// The one `helm install|upgrade` command of a marked block.
fn only_helm_command(block: &str, id: &str) -> Vec<String> {
    let mut cmds = helm_commands(block);
    assert_eq!(
        cmds.len(),
        1,
        "block ffe-walk:{id} must hold exactly one helm install/upgrade: {block}"
    );
    cmds.remove(0)
}

/// `helm install|upgrade [--install] RELEASE CHART args` -> `helm template RELEASE CHART args`:
/// values and namespace flags kept, flags that only change how the release is applied dropped.
fn to_template(cmd: &[String]) -> Vec<String> {
    assert!(
        cmd.len() > 2 && cmd[0] == "helm" && (cmd[1] == "install" || cmd[1] == "upgrade"),
        "{cmd:?}"
    );
    const KEEP_WITH_VALUE: [&str; 8] = [
        "-f",
        "--values",
        "--set",
        "--set-string",
        "--set-file",
        "--set-json",
        "-n",
        "--namespace",
    ];
    const DROP: [&str; 9] = [
        "--install",
        "--create-namespace",
        "--wait",
        "--wait-for-jobs",
        "--atomic",
        "--rollback-on-failure",
        "--cleanup-on-fail",
        "--debug",
        "--dry-run",
    ];
    const DROP_WITH_VALUE: [&str; 3] = ["--timeout", "--description", "--history-max"];
    let mut positional = Vec::new();
    let mut flags = Vec::new();
    let mut args = cmd[2..].iter();
    while let Some(a) = args.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        if KEEP_WITH_VALUE.contains(&name) {
            let value = inline
                .or_else(|| args.next().cloned())
                .unwrap_or_else(|| panic!("{name} without a value in {cmd:?}"));
            flags.push(name.to_string());
            flags.push(value);
        } else if DROP.contains(&name) {
        } else if DROP_WITH_VALUE.contains(&name) {
            if inline.is_none() {
                args.next();
            }
        } else if name.starts_with('-') {
            panic!(
                "{name} in {cmd:?}: the test does not know whether it changes the rendered objects"
            );
        } else {
            positional.push(a.clone());
        }
    }
    assert_eq!(positional.len(), 2, "RELEASE CHART expected in {cmd:?}");
    let mut out = vec!["template".to_string()];
    out.extend(positional);
    out.extend(flags);
    out
}

/// The Prometheus operator's APIs, as on the platform with monitoring: the chart renders its
/// ServiceMonitor/PrometheusRule only where the cluster serves them.
const MONITORING_APIS: [&str; 2] = [
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
];

/// A stand-in for the repository root where the runbook's relative paths work (every top-level
/// entry linked) and its values file can be written without touching the work tree.
struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for entry in std::fs::read_dir(root()).expect("repository root") {
            let entry = entry.expect("entry");
            std::os::unix::fs::symlink(entry.path(), dir.path().join(entry.file_name()))
                .expect("symlink");
        }
        Workdir { dir }
    }

    /// Writes the runbook's values file (marker `file=PATH`) with the placeholders filled in.
    fn write_values(&self, path: &str, body: &str) {
        let target = self.dir.path().join(path);
        if target.symlink_metadata().is_ok() {
            std::fs::remove_file(&target).expect("replace the link to the work tree's copy");
        }
        std::fs::write(&target, body).expect("write values file");
    }

    fn template(&self, cmd: &[String], extra: &[&str]) -> Result<Vec<Value>, String> {
        let mut args = to_template(cmd);
        for api in MONITORING_APIS {
            args.push("--api-versions".into());
            args.push(api.into());
        }
        args.extend(extra.iter().map(|s| (*s).to_string()));
        let out = Command::new(helm4())
            .current_dir(self.dir.path())
            .args(&args)
            .output()
            .expect("run helm");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(
            serde_yaml_ng::Deserializer::from_str(&String::from_utf8_lossy(&out.stdout))
                .map(|doc| Value::deserialize(doc).expect("helm output is YAML"))
                .filter(|v| !v.is_null())
                .map(|v| {
                    let key = format!(
                        "{}/{}",
                        v["kind"].as_str().unwrap_or("?"),
                        v["metadata"]["name"].as_str().unwrap_or("?")
                    );
                    serde_json::json!({"key": key, "object": v})
                })
                .collect(),
        )
    }

    fn render(&self, cmd: &[String]) -> BTreeMap<String, Value> {
        let docs = self
            .template(cmd, &[])
            .unwrap_or_else(|e| panic!("{cmd:?} does not render: {e}"));
        let mut out = BTreeMap::new();
        for d in docs {
            let key = d["key"].as_str().expect("key").to_string();
            assert!(
                out.insert(key.clone(), d["object"].clone()).is_none(),
                "{key} twice"
            );
        }
        out
    }
}

/// Leaf differences between two JSON values: (path, left, right).
fn diffs(a: &Value, b: &Value, path: &str, out: &mut Vec<(String, Value, Value)>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                diffs(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    &format!("{path}.{k}"),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (l, r)) in x.iter().zip(y).enumerate() {
                diffs(l, r, &format!("{path}[{i}]"), out);
            }
        }
        _ if a != b => out.push((path.to_string(), a.clone(), b.clone())),
        _ => {}
    }
}

/// Every difference between two renders, object by object (`KIND/NAME.path`); an object on one
/// side only is one difference.
fn render_diffs(
    a: &BTreeMap<String, Value>,
    b: &BTreeMap<String, Value>,
) -> Vec<(String, Value, Value)> {
    let mut out = Vec::new();
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for k in keys {
        diffs(
            a.get(k).unwrap_or(&Value::Null),
            b.get(k).unwrap_or(&Value::Null),
            k,
            &mut out,
        );
    }
    out
}

fn show(d: &[(String, Value, Value)]) -> String {
    d.iter()
        .map(|(p, a, b)| format!("  {p}: {a} -> {b}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The runbook, read once per test.
struct Runbook {
    blocks: BTreeMap<String, String>,
    values_path: String,
}

impl Runbook {
    fn read() -> Self {
        let blocks = marked_blocks(&read("docs/app.md"));
        let files: Vec<&String> = blocks.keys().filter(|k| k.starts_with("file=")).collect();
        assert_eq!(
            files.len(),
            1,
            "docs/app.md must show ONE values file (```yaml ffe-walk:file=PATH): {files:?}"
        );
        let values_path = files[0].trim_start_matches("file=").to_string();
        Runbook {
            blocks,
            values_path,
        }
    }

    fn block(&self, id: &str) -> &str {
        self.blocks
            .get(id)
            .unwrap_or_else(|| panic!("docs/app.md has no ```bash ffe-walk:{id} block"))
    }

    /// A work directory holding the values file for `version`.
    fn workdir(&self, version: &str) -> Workdir {
        let wd = Workdir::new();
        let body = self.blocks[&format!("file={}", self.values_path)].clone();
        wd.write_values(&self.values_path, &fill(&body, &placeholders(version)));
        wd
    }

    /// The block's helm command with the placeholders for `version`.
    fn command(&self, id: &str, version: &str) -> Vec<String> {
        let cmd = only_helm_command(self.block(id), id);
        cmd.iter()
            .map(|w| fill(w, &placeholders(version)))
            .collect()
    }
}

/// The seed's commands (docs/contract/HA_README.md): the Day-4 install and the scale command.
fn seed_commands() -> Vec<Vec<String>> {
    let cmds: Vec<Vec<String>> = bash_blocks(&read("docs/contract/HA_README.md"))
        .iter()
        .flat_map(|b| helm_commands(b))
        .collect();
    assert_eq!(cmds.len(), 2, "the seed's install and scale: {cmds:?}");
    cmds
}

fn seed_scale_command() -> Vec<String> {
    seed_commands()
        .into_iter()
        .find(|c| c[1] == "upgrade")
        .expect("the seed's helm upgrade")
}

/// The replica count the seed scales to (`--set replicaCount=N`).
fn seed_replicas() -> u64 {
    let cmd = seed_scale_command();
    cmd.iter()
        .find_map(|w| w.strip_prefix("replicaCount="))
        .and_then(|n| n.parse().ok())
        .expect("the seed sets replicaCount")
}

fn kind_of(path: &str) -> &str {
    path.split('/').next().unwrap_or("")
}

/// Where the replica count shows: the Deployment's replicas and the HPA's floor.
fn is_replica_path(path: &str) -> bool {
    let field = path.split_once('.').map(|(_, f)| f).unwrap_or("");
    (kind_of(path) == "Deployment" && field == "spec.replicas")
        || (kind_of(path) == "HorizontalPodAutoscaler" && field == "spec.minReplicas")
}

#[test]
fn scale_command_keeps_every_setting_of_the_install() {
    let rb = Runbook::read();
    let wd = rb.workdir(VERSION);
    let install_cmd = rb.command("app-install", VERSION);
    let scale_cmd = rb.command("app-scale", VERSION);
    assert_eq!(install_cmd[1], "install", "{install_cmd:?}");
    let install = wd.render(&install_cmd);
    let scale = wd.render(&scale_cmd);
    let d = render_diffs(&install, &scale);
    let other: Vec<_> = d
        .iter()
        .filter(|(p, _, _)| !is_replica_path(p))
        .cloned()
        .collect();
    assert!(
        other.is_empty(),
        "the scale command ({}) changes more than the replica count of the install ({}):\n{}",
        scale_cmd.join(" "),
        install_cmd.join(" "),
        show(&other)
    );
    // It does scale: to the seed's count.
    let n = seed_replicas();
    assert_eq!(
        scale["Deployment/ffe-backend"]["spec"]["replicas"],
        n,
        "{}",
        scale_cmd.join(" ")
    );
    if let Some(hpa) = scale.get("HorizontalPodAutoscaler/ffe-backend") {
        assert_eq!(hpa["spec"]["minReplicas"], n);
    }
    assert!(!d.is_empty(), "the scale command changes nothing");
}

#[test]
fn upgrade_command_changes_only_the_image_tag() {
    let rb = Runbook::read();
    let install = rb
        .workdir(VERSION)
        .render(&rb.command("app-install", VERSION));
    // The operator edits image.tag in the values file (the block may also carry it itself).
    let upgrade_cmd = rb.command("app-upgrade", NEW_VERSION);
    assert_eq!(upgrade_cmd[1], "upgrade", "{upgrade_cmd:?}");
    let upgrade = rb.workdir(NEW_VERSION).render(&upgrade_cmd);
    let d = render_diffs(&install, &upgrade);
    let other: Vec<_> = d
        .iter()
        .filter(|(_, a, b)| match (a.as_str(), b.as_str()) {
            (Some(a), Some(b)) => a.replace(VERSION, NEW_VERSION) != b,
            _ => true,
        })
        .cloned()
        .collect();
    assert!(
        other.is_empty(),
        "the upgrade command ({}) changes more than the image tag:\n{}",
        upgrade_cmd.join(" "),
        show(&other)
    );
    let image = upgrade["Deployment/ffe-backend"]["spec"]["template"]["spec"]["containers"][0]
        ["image"]
        .as_str()
        .expect("image")
        .to_string();
    assert!(
        image.ends_with(&format!(":{NEW_VERSION}")),
        "upgrade runs {image}"
    );
    let before = install["Deployment/ffe-backend"]["spec"]["template"]["spec"]["containers"][0]
        ["image"]
        .as_str()
        .expect("image")
        .to_string();
    assert!(
        before.ends_with(&format!(":{VERSION}")),
        "install runs {before}"
    );
}

/// `NAME = value` of a Terraform file (the first such line; quotes and a trailing comment removed).
fn tf_value(rel: &str, name: &str) -> String {
    read(rel)
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == name).then(|| {
                let v = v.split(" #").next().unwrap_or(v).trim();
                v.trim_matches('"').to_string()
            })
        })
        .unwrap_or_else(|| panic!("{rel} has no `{name} = ...`"))
}

/// What the Terraform Postgres layer hands the app: PgBouncer's address, the copied credentials
/// Secret with its keys, and the CA Secret (modules/postgres, environments/ha/postgres.tf).
struct PlatformDatabase {
    target: String,
    secret: String,
    keys: Vec<String>,
    ca_secret: String,
}

fn platform_database() -> PlatformDatabase {
    let module = "terraform/modules/postgres/main.tf";
    let cluster = tf_value(module, "cluster");
    let user = tf_value(module, "user");
    // The copy of the operator's user Secret: its line names the keys it copies.
    let copy = read(module)
        .lines()
        .find(|l| l.contains("from = local.user_secret"))
        .expect("modules/postgres copies the user Secret")
        .to_string();
    let keys = copy
        .split_once("tolist([")
        .and_then(|(_, rest)| rest.split_once("])"))
        .map(|(list, _)| {
            list.split(',')
                .map(|k| k.trim().trim_matches('"').to_string())
                .collect()
        })
        .expect("keys = tolist([...])");
    PlatformDatabase {
        target: format!(
            "{cluster}-pgbouncer.ffe-data.svc:{}/{}",
            tf_value(module, "port"),
            tf_value(module, "database")
        ),
        secret: format!("{cluster}-pguser-{user}"),
        keys,
        ca_secret: tf_value("terraform/environments/ha/postgres.tf", "app_ca_secret"),
    }
}

/// The CA Secret's mount path + file inside the rendered pod.
fn ca_file(pod: &Value, secret: &str) -> String {
    let volumes = pod["spec"]["volumes"].as_array().expect("volumes");
    let ca = volumes
        .iter()
        .find(|v| v["secret"]["secretName"] == secret)
        .unwrap_or_else(|| panic!("Secret {secret} not mounted: {volumes:?}"));
    let mount = pod["spec"]["containers"][0]["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["name"] == ca["name"])
        .expect("CA mount");
    let file = ca["secret"]["items"][0]["path"].as_str().expect("path");
    format!("{}/{file}", mount["mountPath"].as_str().expect("mountPath"))
}

#[test]
fn install_recipe_needs_no_vault_routes_the_operators_domains_and_uses_the_platforms_pgbouncer() {
    let rb = Runbook::read();
    let install = rb
        .workdir(VERSION)
        .render(&rb.command("app-install", VERSION));
    let deploy = &install["Deployment/ffe-backend"];
    let pod = &deploy["spec"]["template"];
    // No Vault: this release deploys none.
    let annotations = pod["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(
        !annotations
            .keys()
            .any(|k| k.starts_with("vault.hashicorp.com/")),
        "{annotations:?}"
    );
    // The operator's domains, not the seed's.
    assert_eq!(
        install["HTTPRoute/ffe-backend"]["spec"]["hostnames"],
        serde_json::json!([APP_DOMAIN, API_DOMAIN])
    );
    // The database is what the Terraform Postgres layer deploys: PgBouncer's Service, the
    // credentials Secret the credentials-sync CronJob fills with exactly the keys it copies, and
    // the CA Secret it copies, mounted where the URL's sslrootcert points.
    let db = platform_database();
    let container = &pod["spec"]["containers"][0];
    let env = container["env"].as_array().expect("env");
    let var = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {env:?}"))
            .clone()
    };
    let refs: Vec<Value> = ["DB_USERNAME", "DB_PASSWORD"]
        .iter()
        .map(|n| var(n)["valueFrom"]["secretKeyRef"].clone())
        .collect();
    let expected: Vec<Value> = db
        .keys
        .iter()
        .map(|k| serde_json::json!({"name": db.secret, "key": k}))
        .collect();
    assert_eq!(refs, expected, "credentials from the platform's copy");
    let url = var("DATABASE_URL")["value"]
        .as_str()
        .expect("DATABASE_URL built by the chart")
        .to_string();
    let prefix = format!("postgresql://$(DB_USERNAME):$(DB_PASSWORD)@{}?", db.target);
    assert!(
        url.starts_with(&prefix),
        "{url} does not start with {prefix}"
    );
    assert!(url.contains("sslmode=verify-full"), "{url}");
    let rootcert = url
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("sslrootcert="))
        .expect("sslrootcert in the URL");
    assert_eq!(ca_file(pod, &db.ca_secret), rootcert);
    for e in env {
        let v = e["value"].as_str().unwrap_or("");
        assert!(
            !(v.contains("://") && v.contains('@') && !v.contains("$(DB_PASSWORD)")),
            "credentials in env {e}"
        );
    }
}

/// "With the Vault layer": the values file without its `vault`, `secrets` and `database` blocks
/// (the runbook's edit) reads exactly what Terraform sets up in Vault: the role bound to the
/// release's ServiceAccount, the secret path and key names the Postgres credentials job writes
/// (environments/ha/vault.tf `vault_app_secret`), Vault's CA Secret (modules/vault), and still
/// PgBouncer verified with the CA Secret the job copies.
#[test]
fn vault_variant_reads_what_terraform_writes_into_vault() {
    let rb = Runbook::read();
    let wd = rb.workdir(VERSION);
    let body = fill(
        &rb.blocks[&format!("file={}", rb.values_path)],
        &placeholders(VERSION),
    );
    let mut values: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(&body).expect("values file");
    for block in ["vault", "secrets", "database"] {
        assert!(
            values.remove(block).is_some(),
            "the runbook says to delete the {block} block, which the values file lacks"
        );
    }
    wd.write_values(
        &rb.values_path,
        &serde_yaml_ng::to_string(&values).expect("yaml"),
    );
    let install = wd.render(&rb.command("app-install", VERSION));
    let deploy = &install["Deployment/ffe-backend"];
    let pod = &deploy["spec"]["template"];
    let annotation = |k: &str| {
        pod["metadata"]["annotations"][format!("vault.hashicorp.com/{k}")]
            .as_str()
            .unwrap_or_else(|| panic!("no annotation {k}: {}", pod["metadata"]))
            .to_string()
    };
    assert_eq!(annotation("agent-inject"), "true");
    // The role Terraform creates is bound to the ServiceAccount the release runs as.
    let vault_tf = read("terraform/environments/ha/vault.tf");
    let role = annotation("role");
    let sa = pod["spec"]["serviceAccountName"].as_str().expect("SA");
    assert!(
        vault_tf.contains(&format!(
            "{{ name = \"{role}\", service_account_names = [\"{sa}\"]"
        )),
        "vault.tf binds no role {role} to ServiceAccount {sa}"
    );
    assert_eq!(
        annotation("tls-secret"),
        tf_value("terraform/modules/vault/main.tf", "ca_secret")
    );
    // The secret and the keys the credentials job writes.
    let env = "terraform/environments/ha/vault.tf";
    let path = format!(
        "{}/data/{}",
        tf_value(env, "kv_mount"),
        tf_value(env, "secret_path")
    );
    assert_eq!(annotation("agent-inject-secret-app"), path);
    let template = annotation("agent-inject-template-app");
    assert!(
        template.contains(&format!("with secret \"{path}\"")),
        "{template}"
    );
    let db = platform_database();
    for key in ["username_key", "password_key"] {
        let k = tf_value(env, key);
        assert!(
            template.contains(&format!("index .Data.data \"{k}\"")),
            "DATABASE_URL does not use {k}: {template}"
        );
    }
    let prefix = format!("@{}?", db.target);
    assert!(template.contains(&prefix), "{template} has no {prefix}");
    let rootcert = template
        .split(['?', '&', '\''])
        .find_map(|p| p.strip_prefix("sslrootcert="))
        .expect("sslrootcert in the URL");
    assert_eq!(ca_file(pod, &db.ca_secret), rootcert);
    // Nothing read from a credentials Secret.
    assert!(
        !serde_json::to_string(pod)
            .expect("json")
            .contains(&db.secret),
        "the pod still reads Secret {}",
        db.secret
    );
}

#[test]
fn own_postgres_variant_reads_the_url_from_the_secret_the_runbook_creates() {
    let rb = Runbook::read();
    // DATABASE_URL from the Secret the runbook creates; no env value holds a password.
    let secrets = rb.block("app-secrets");
    let secret_cmd = secrets
        .replace("\\\n", " ")
        .lines()
        .flat_map(shell_commands)
        .find(|w| {
            w.iter()
                .any(|a| a.starts_with("--from-literal=DATABASE_URL="))
        })
        .expect("the Secrets block creates a Secret with DATABASE_URL");
    let secret_name = secret_cmd
        .iter()
        .skip_while(|w| *w != "generic")
        .nth(1)
        .expect("kubectl create secret generic NAME")
        .clone();
    let ca_secret = secrets
        .lines()
        .flat_map(shell_commands)
        .find(|w| w.iter().any(|a| a.starts_with("--from-file=")))
        .and_then(|w| w.iter().skip_while(|a| *a != "generic").nth(1).cloned())
        .expect("the Secrets block creates the CA Secret");
    // The variant's settings as the page states them (replacing the file's secrets/database).
    let variant = [
        format!("secrets.existingSecret={secret_name}"),
        "database.external=true".to_string(),
        "database.caSecret.mount=always".to_string(),
    ];
    let text = read("docs/app.md");
    let section = text
        .split("### Your own PostgreSQL instead")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("docs/app.md has the section \"Your own PostgreSQL instead\"");
    // as an operator reads it: line breaks are spaces
    let section = section.split_whitespace().collect::<Vec<_>>().join(" ");
    for (k, v) in [
        ("existingSecret", secret_name.as_str()),
        ("external", "true"),
        ("mount", "always"),
    ] {
        assert!(
            section.contains(&format!("{k}: {v}")),
            "the section must set {k}: {v}:\n{section}"
        );
    }
    let wd = rb.workdir(VERSION);
    let mut extra: Vec<&str> = Vec::new();
    for v in &variant {
        extra.extend(["--set", v.as_str()]);
    }
    let docs = wd
        .template(&rb.command("app-install", VERSION), &extra)
        .unwrap_or_else(|e| panic!("the variant does not render: {e}"));
    let deploy = docs
        .iter()
        .find(|d| d["key"] == "Deployment/ffe-backend")
        .expect("Deployment")["object"]
        .clone();
    let pod = &deploy["spec"]["template"];
    let env = pod["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env")
        .clone();
    let url = env
        .iter()
        .find(|e| e["name"] == "DATABASE_URL")
        .expect("DATABASE_URL");
    assert_eq!(
        url["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": secret_name, "key": "DATABASE_URL"})
    );
    for e in &env {
        let v = e["value"].as_str().unwrap_or("");
        assert!(
            !(v.contains("://") && v.contains('@')),
            "credentials in env {e}"
        );
    }
    // The URL in that Secret verifies the server: the CA Secret the block creates is mounted at
    // the URL's sslrootcert.
    let literal = secret_cmd
        .iter()
        .find_map(|w| w.strip_prefix("--from-literal=DATABASE_URL="))
        .expect("URL");
    let rootcert = literal
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("sslrootcert="))
        .expect("sslrootcert in the URL");
    assert_eq!(ca_file(pod, &ca_secret), rootcert);
}

#[test]
fn seed_scale_command_would_undo_the_runbooks_install() {
    let rb = Runbook::read();
    let wd = rb.workdir(VERSION);
    let install = wd.render(&rb.command("app-install", VERSION));
    let seed = seed_scale_command();
    let bare = wd.render(&seed);
    let d = render_diffs(&install, &bare);
    let other: Vec<_> = d
        .iter()
        .filter(|(p, _, _)| !is_replica_path(p))
        .cloned()
        .collect();
    assert!(
        !other.is_empty(),
        "the seed's command would only change the replica count"
    );
    // The runbook's warning, point by point.
    let pod = |r: &BTreeMap<String, Value>| r["Deployment/ffe-backend"]["spec"]["template"].clone();
    let (before, after) = (pod(&install), pod(&bare));
    let inject =
        |p: &Value| p["metadata"]["annotations"]["vault.hashicorp.com/agent-inject"].clone();
    assert_eq!(
        inject(&before),
        Value::Null,
        "the runbook installs without Vault"
    );
    assert_eq!(inject(&after), "true", "Vault back on:\n{}", show(&other));
    let route =
        |r: &BTreeMap<String, Value>| r["HTTPRoute/ffe-backend"]["spec"]["hostnames"].clone();
    assert_ne!(
        route(&install),
        route(&bare),
        "host names reset:\n{}",
        show(&other)
    );
    let c = |p: &Value| p["spec"]["containers"][0].clone();
    assert!(
        c(&before)["envFrom"].is_array(),
        "the runbook reads the Secret"
    );
    assert_eq!(
        c(&after)["envFrom"],
        Value::Null,
        "the Secret dropped:\n{}",
        show(&other)
    );
    assert_ne!(
        c(&before)["image"],
        c(&after)["image"],
        "image tag reset:\n{}",
        show(&other)
    );
    // And where the chart knows the Gateway's listeners (the operator's domains), it refuses the
    // bare command before anything changes, while the runbook's scale command passes.
    let listeners = format!("httpRoute.gatewayListenerHostnames={{{APP_DOMAIN},{API_DOMAIN}}}");
    let err = wd
        .template(&seed, &["--set", &listeners])
        .expect_err("the seed's host names have no listener on the operator's Gateway");
    assert!(err.contains("ffe.three-rivers-tech.com"), "{err}");
    wd.template(&rb.command("app-scale", VERSION), &["--set", &listeners])
        .expect("the runbook's scale command routes the operator's domains");
}

#[test]
fn chart_readme_and_runbook_commands_carry_the_values_file() {
    let rb = Runbook::read();
    let seed = seed_commands();
    let runbook: Vec<Vec<String>> = ["app-install", "app-upgrade", "app-scale"]
        .iter()
        .map(|id| only_helm_command(rb.block(id), id))
        .collect();
    for cmd in &runbook {
        let files: Vec<&String> = cmd
            .windows(2)
            .filter(|w| w[0] == "-f" || w[0] == "--values")
            .map(|w| &w[1])
            .collect();
        assert!(
            files.contains(&&rb.values_path),
            "{cmd:?} must pass -f {}",
            rb.values_path
        );
    }
    let mut checked = 0;
    for doc in ["docs/app.md", "helm/ffe-backend/README.md"] {
        for block in bash_blocks(&read(doc)) {
            for cmd in helm_commands(&block) {
                checked += 1;
                assert!(
                    runbook.contains(&cmd) || seed.contains(&cmd),
                    "{doc}: `{}` is neither one of the runbook's tested commands \
                     (ffe-walk:app-install/app-upgrade/app-scale) nor the seed's",
                    cmd.join(" ")
                );
            }
        }
    }
    assert!(checked >= 5, "only {checked} helm commands found");
}

#[test]
fn the_parsers_read_what_a_shell_would() {
    let text = "x\n```bash ffe-walk:a\nhelm upgrade r c \\\n  -f 'v w.yaml' --set-string \"u=a&b\" # c\n```\n```yaml ffe-walk:file=f.yaml\nk: 1\n```\n```bash\nls\n```\n";
    let blocks = marked_blocks(text);
    assert_eq!(
        blocks.keys().collect::<Vec<_>>(),
        ["a", "file=f.yaml"],
        "{blocks:?}"
    );
    assert_eq!(blocks["file=f.yaml"], "k: 1\n");
    let cmd = only_helm_command(&blocks["a"], "a");
    assert_eq!(
        cmd,
        [
            "helm",
            "upgrade",
            "r",
            "c",
            "-f",
            "v w.yaml",
            "--set-string",
            "u=a&b"
        ]
    );
    assert_eq!(
        to_template(&cmd),
        [
            "template",
            "r",
            "c",
            "-f",
            "v w.yaml",
            "--set-string",
            "u=a&b"
        ]
    );
    assert_eq!(
        to_template(
            &"helm upgrade --install r c --create-namespace --wait --timeout 5m -n ffe --atomic"
                .split(' ')
                .map(String::from)
                .collect::<Vec<_>>()
        ),
        ["template", "r", "c", "-n", "ffe"]
    );
    assert_eq!(
        shell_commands("kubectl a; helm install r c && echo x | y"),
        [
            vec!["kubectl", "a"],
            vec!["helm", "install", "r", "c"],
            vec!["echo", "x"],
            vec!["y"]
        ]
    );
    assert_eq!(bash_blocks(text).len(), 2);
    let mut d = Vec::new();
    diffs(
        &serde_json::json!({"a": [1, {"b": 2}], "c": 3}),
        &serde_json::json!({"a": [1, {"b": 4}], "d": 3}),
        "X",
        &mut d,
    );
    assert_eq!(
        d.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
        ["X.a[1].b", "X.c", "X.d"]
    );
}

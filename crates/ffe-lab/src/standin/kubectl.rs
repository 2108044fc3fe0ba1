//! `k3s kubectl` / `kubectl`: the small part of the API the provider uses, answered from the
//! datastore. Works only on a host whose k3s server unit is active.

use std::collections::BTreeMap;
use std::io::Read;

use serde::Deserialize as _;
use serde_json::{json, Value};

use super::datastore::{ClusterState, NodeState, Role};
use super::units::UnitsState;
use super::{HostEnv, Outcome, StandinError};

fn failed(msg: impl Into<String>) -> StandinError {
    StandinError::failed(1, msg)
}

/// Flags that take a value (as a separate word) in the subset we accept.
const VALUE_FLAGS: &[&str] = &[
    "--kubeconfig",
    "-n",
    "--namespace",
    "-o",
    "--output",
    "-f",
    "--filename",
    "--timeout",
    "--grace-period",
    "--request-timeout",
    "-l",
    "--selector",
    "--context",
    "--field-manager",
    "--for",
    "--raw",
    "--pod-selector",
    "--field-selector",
];

#[derive(Debug, Default)]
struct Parsed {
    positional: Vec<String>,
    flags: BTreeMap<String, Vec<String>>,
}

impl Parsed {
    fn get(&self, k: &str) -> Option<&str> {
        self.flags.get(k).and_then(|v| v.last()).map(String::as_str)
    }
    fn has(&self, k: &str) -> bool {
        self.flags.contains_key(k)
    }
    fn all(&self, k: &str) -> Vec<String> {
        self.flags.get(k).cloned().unwrap_or_default()
    }
}

fn canonical(flag: &str) -> &str {
    match flag {
        "-n" => "--namespace",
        "-o" => "--output",
        "-f" => "--filename",
        "-l" => "--selector",
        "-A" => "--all-namespaces",
        other => other,
    }
}

fn parse(args: &[String]) -> Parsed {
    let mut p = Parsed::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some((k, v)) = a.split_once('=').filter(|_| a.starts_with('-')) {
            p.flags
                .entry(canonical(k).to_string())
                .or_default()
                .push(v.to_string());
        } else if VALUE_FLAGS.contains(&a.as_str()) {
            let v = it.next().cloned().unwrap_or_default();
            p.flags.entry(canonical(a).to_string()).or_default().push(v);
        } else if a.len() > 2
            && (a.starts_with("-o") || a.starts_with("-f"))
            && !a.starts_with("--")
        {
            p.flags
                .entry(canonical(&a[..2]).to_string())
                .or_default()
                .push(a[2..].to_string());
        } else if a.starts_with('-') && a != "-" {
            p.flags.entry(canonical(a).to_string()).or_default();
        } else {
            p.positional.push(a.clone());
        }
    }
    p
}

fn node_json(name: &str, n: &NodeState) -> Value {
    let taints: Vec<Value> = n
        .taints
        .iter()
        .map(|t| match &t.value {
            Some(v) => json!({"key": t.key, "value": v, "effect": t.effect}),
            None => json!({"key": t.key, "effect": t.effect}),
        })
        .collect();
    let mut spec = json!({ "podCIDR": "10.42.0.0/24" });
    if !taints.is_empty() {
        spec["taints"] = Value::Array(taints);
    }
    if n.unschedulable {
        spec["unschedulable"] = json!(true);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": n.labels,
            "annotations": {
                "k3s.io/node-config-hash": n.config_sha256,
                "ffe-lab/stand-in": "true",
            },
        },
        "spec": spec,
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": n.address},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [{
                "type": "Ready",
                "status": if n.ready { "True" } else { "Unknown" },
                "reason": if n.ready { "KubeletReady" } else { "NodeStatusUnknown" },
                "message": if n.ready { "kubelet is posting ready status (k3s stand-in)" } else { "Kubelet stopped posting node status (k3s stand-in)" },
            }],
            "nodeInfo": {
                "kubeletVersion": n.version,
                "kubeProxyVersion": n.version,
                "containerRuntimeVersion": "containerd://stand-in",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    })
}

fn roles(n: &NodeState) -> String {
    let mut r: Vec<&str> = n
        .labels
        .keys()
        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
        .collect();
    r.sort_unstable();
    if r.is_empty() {
        "<none>".into()
    } else {
        r.join(",")
    }
}

fn is_helmchart(resource: &str) -> bool {
    matches!(
        resource.to_ascii_lowercase().as_str(),
        "helmchart" | "helmcharts" | "helmchart.helm.cattle.io" | "helmcharts.helm.cattle.io"
    )
}

fn not_found(name: &str) -> StandinError {
    failed(format!(
        "Error from server (NotFound): nodes \"{name}\" not found"
    ))
}

fn read_sources(
    p: &Parsed,
    stdin: &mut dyn Read,
    out: &mut Outcome,
) -> Result<Vec<(String, String)>, StandinError> {
    let mut docs = Vec::new();
    let files = p.all("--filename");
    if files.is_empty() {
        return Err(failed("error: must specify one of -f and -k"));
    }
    for f in files {
        if f == "-" {
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .map_err(|e| failed(format!("error: reading stdin: {e}")))?;
            out.stdin = Some(text.clone());
            docs.push(("-".to_string(), text));
            continue;
        }
        let path = std::path::PathBuf::from(&f);
        let mut paths = Vec::new();
        if path.is_dir() {
            let entries = std::fs::read_dir(&path).map_err(|e| StandinError::io(&path, e))?;
            for e in entries.flatten() {
                let ep = e.path();
                if ep
                    .extension()
                    .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
                {
                    paths.push(ep);
                }
            }
            paths.sort();
        } else {
            paths.push(path);
        }
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|_| {
                failed(format!(
                    "error: the path \"{}\" does not exist",
                    path.display()
                ))
            })?;
            out.files.insert(path.display().to_string(), text.clone());
            docs.push((path.display().to_string(), text));
        }
    }
    Ok(docs)
}

/// (kind, name) of every non-empty document.
fn objects(source: &str, text: &str) -> Result<Vec<(String, String)>, StandinError> {
    let mut objs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let v = <serde_yaml_ng::Value as serde::Deserialize>::deserialize(doc)
            .map_err(|e| failed(format!("error: error parsing {source}: {e}")))?;
        if v.is_null() {
            continue;
        }
        let kind = v
            .get("kind")
            .and_then(|k| k.as_str())
            .ok_or_else(|| failed(format!("error: error validating {source}: kind not set")))?;
        let name = v
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .ok_or_else(|| {
                failed(format!(
                    "error: error validating {source}: metadata.name not set for a {kind}"
                ))
            })?;
        objs.push((kind.to_lowercase(), name.to_string()));
    }
    Ok(objs)
}

/// `k=v` sets (an existing different value needs `--overwrite`), `k-` removes (a missing label
/// is not an error), as kubectl does.
fn edit_label(node: &mut NodeState, change: &str, overwrite: bool) -> Result<(), StandinError> {
    if let Some(key) = change.strip_suffix('-') {
        node.labels.remove(key);
        return Ok(());
    }
    let (k, v) = change
        .split_once('=')
        .ok_or_else(|| failed(format!("error: invalid label spec: {change}")))?;
    match node.labels.get(k) {
        Some(old) if old != v && !overwrite => Err(failed(format!(
            "error: '{k}' already has a value ({old}), and --overwrite is false"
        ))),
        _ => {
            node.labels.insert(k.to_string(), v.to_string());
            Ok(())
        }
    }
}

/// `key[=value]:Effect` adds (an existing key+effect needs `--overwrite`), `key[:Effect]-`
/// removes (a taint that is not there is an error, as with kubectl).
fn edit_taint(node: &mut NodeState, change: &str, overwrite: bool) -> Result<(), StandinError> {
    if let Some(spec) = change.strip_suffix('-') {
        let (key, effect) = match spec.split_once(':') {
            Some((k, e)) => (k, Some(e)),
            None => (spec, None),
        };
        let before = node.taints.len();
        node.taints
            .retain(|t| !(t.key == key && effect.is_none_or(|e| t.effect == e)));
        if node.taints.len() == before {
            return Err(failed(format!("error: taint {spec:?} not found")));
        }
        return Ok(());
    }
    let taint = super::Taint::parse(change).map_err(|e| failed(format!("error: {e}")))?;
    if let Some(existing) = node
        .taints
        .iter_mut()
        .find(|t| t.key == taint.key && t.effect == taint.effect)
    {
        if !overwrite {
            return Err(failed(format!(
                "error: node already has {}:{} taint(s) with the same effect; use --overwrite",
                taint.key, taint.effect
            )));
        }
        *existing = taint;
    } else {
        node.taints.push(taint);
    }
    Ok(())
}

/// Whether a CNI runs, as far as the stand-in can tell: it runs no controllers, so it counts a
/// CNI as running once a manifest in this server's k3s manifests directory installs Calico (a
/// HelmChart of the `tigera-operator` chart, or an `operator.tigera.io` Installation). NOT an
/// evaluation of Calico.
fn cni_installed(host: &HostEnv) -> bool {
    let dir = host.path("/var/lib/rancher/k3s/server/manifests");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        let installs_calico = serde_yaml_ng::Deserializer::from_str(&text).any(|doc| {
            let Ok(v) = serde_yaml_ng::Value::deserialize(doc) else {
                return false;
            };
            let kind = v.get("kind").and_then(|k| k.as_str()).unwrap_or("");
            let api = v.get("apiVersion").and_then(|k| k.as_str()).unwrap_or("");
            let chart = v
                .get("spec")
                .and_then(|s| s.get("chart"))
                .and_then(|c| c.as_str())
                .unwrap_or("");
            (kind == "HelmChart" && chart == "tigera-operator")
                || (kind == "Installation" && api.starts_with("operator.tigera.io/"))
        });
        installs_calico
    })
}

/// `kubectl get pods -A [--field-selector spec.nodeName=N] -o json` over the pods a test placed
/// (the stand-in runs no workloads; see [`super::PodState`]).
fn list_pods(p: &Parsed, state: &ClusterState) -> Result<Outcome, StandinError> {
    if !p.has("--all-namespaces") {
        return Err(failed(
            "error: the k3s stand-in lists pods across all namespaces only (-A)",
        ));
    }
    if p.get("--output") != Some("json") {
        return Err(failed("error: the k3s stand-in lists pods as -o json only"));
    }
    let node = match p.get("--field-selector") {
        None => None,
        Some(sel) => Some(sel.strip_prefix("spec.nodeName=").ok_or_else(|| {
            failed(format!(
                "error: the k3s stand-in supports only --field-selector spec.nodeName=NODE, not {sel:?}"
            ))
        })?),
    };
    let items: Vec<Value> = state
        .pods
        .values()
        .filter(|pod| node.is_none_or(|n| pod.node == n))
        .map(|pod| {
            let owners: Vec<Value> = pod
                .owner_kind
                .iter()
                .map(|k| json!({"apiVersion": "apps/v1", "kind": k, "name": pod.name, "controller": true}))
                .collect();
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod.name, "namespace": pod.namespace, "ownerReferences": owners},
                "spec": {"nodeName": pod.node},
                "status": {"phase": "Running"},
            })
        })
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items});
    let mut out = Outcome::ok(String::new());
    out.stdout = serde_json::to_string_pretty(&list).map_err(|e| failed(e.to_string()))? + "\n";
    Ok(out)
}

/// The evictions of `kubectl drain`: DaemonSet pods need --ignore-daemonsets and stay; a pod a
/// PodDisruptionBudget protects is not evicted, and the drain fails with kubectl's messages. The
/// stand-in fails at once where kubectl retries until its --timeout; the node stays cordoned,
/// as kubectl leaves it.
fn evict_pods(host: &HostEnv, p: &Parsed, node: &str) -> Result<(), StandinError> {
    let ignore_ds = p.has("--ignore-daemonsets");
    let timeout = p.get("--timeout").unwrap_or("0s").to_string();
    // Evictions that succeed are kept even when another pod blocks the drain, as in kubectl.
    let blocked = host.datastore().update(|s| {
        let Some(c) = s.as_mut() else {
            return Ok(Vec::new());
        };
        let on_node: Vec<String> = c
            .pods
            .iter()
            .filter(|(_, pod)| pod.node == node)
            .map(|(k, _)| k.clone())
            .collect();
        let daemons: Vec<String> = on_node
            .iter()
            .filter(|k| c.pods[*k].owner_kind.as_deref() == Some("DaemonSet"))
            .cloned()
            .collect();
        if !daemons.is_empty() && !ignore_ds {
            return Err(failed(format!(
                "error: unable to drain node \"{node}\" due to error: cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): {}",
                daemons.join(", ")
            )));
        }
        let mut blocked = Vec::new();
        for k in on_node.iter().filter(|k| !daemons.contains(k)) {
            if c.pods[k].protected_by_pdb {
                blocked.push(c.pods[k].clone());
            } else {
                c.pods.remove(k);
            }
        }
        Ok(blocked)
    })?;
    if blocked.is_empty() {
        return Ok(());
    }
    let mut msg: Vec<String> = blocked
        .iter()
        .map(|pod| format!(
            "error when evicting pods/\"{}\" -n \"{}\" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.",
            pod.name, pod.namespace
        ))
        .collect();
    msg.push(format!(
        "error: unable to drain node \"{node}\" due to error: [{}], continuing command...",
        blocked
            .iter()
            .map(|pod| format!(
                "error when evicting pods/\"{}\" -n \"{}\": global timeout reached: {timeout}",
                pod.name, pod.namespace
            ))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Err(failed(msg.join("\n")))
}

fn set_unschedulable(host: &HostEnv, name: &str, value: bool) -> Result<(), StandinError> {
    host.datastore().update(|s| {
        let node = s
            .as_mut()
            .and_then(|c| c.nodes.get_mut(name))
            .ok_or_else(|| not_found(name))?;
        node.unschedulable = value;
        Ok(())
    })
}

pub(crate) fn kubectl(
    args: &[String],
    host: &HostEnv,
    stdin: &mut dyn Read,
) -> Result<Outcome, StandinError> {
    // Real kubectl gives up after --request-timeout; so does the stand-in (a call stuck in the
    // stand-in, e.g. in the deploy resync below, must not hang a lab test for the step limit).
    if let Some(limit) = parse(args)
        .get("--request-timeout")
        .and_then(request_timeout)
    {
        std::thread::spawn(move || {
            std::thread::sleep(limit);
            eprintln!(
                "error: context deadline exceeded (k3s stand-in: --request-timeout {limit:?})"
            );
            std::process::exit(1);
        });
    }
    // The deploy controller's resync, run before the API call (see `deploy`).
    let mut warnings = Vec::new();
    if UnitsState::load(host)?.get("k3s").active {
        host.datastore().update(|s| {
            if let Some(c) = s.as_mut() {
                warnings = super::deploy::scan(host, &mut c.addons, objects);
            }
            Ok(())
        })?;
    }
    let mut out = api_call(args, host, stdin)?;
    out.warnings.extend(warnings);
    Ok(out)
}

/// kubectl's `--request-timeout` value (`30s`, `2m`, bare seconds; `0` means none).
fn request_timeout(v: &str) -> Option<std::time::Duration> {
    let (n, unit) = match v.strip_suffix('s') {
        Some(n) => (n, 1),
        None => match v.strip_suffix('m') {
            Some(n) => (n, 60),
            None => (v, 1),
        },
    };
    let secs: u64 = n.parse().ok()?;
    (secs > 0).then(|| std::time::Duration::from_secs(secs * unit))
}

fn api_call(
    args: &[String],
    host: &HostEnv,
    stdin: &mut dyn Read,
) -> Result<Outcome, StandinError> {
    let p = parse(args);
    let verb = p.positional.first().map(String::as_str).unwrap_or("");
    if verb == "version" && p.has("--client") {
        return Ok(Outcome::ok(format!(
            "Client Version: {} (k3s stand-in)",
            host.settings.version
        )));
    }
    let active = UnitsState::load(host)?.get("k3s").active
        && host.path("/etc/systemd/system/k3s.service").is_file();
    if !active {
        return Err(failed(
            "The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?",
        ));
    }
    let mut state = host.datastore().read()?.unwrap_or_default();
    if state.cni_required && !cni_installed(host) {
        // With `flannel-backend: none` the kubelet reports NetworkPluginNotReady until a CNI runs.
        for n in state.nodes.values_mut() {
            n.ready = false;
        }
    }
    let target = p.positional.get(1).map(String::as_str);
    let mut out = Outcome::default();
    match verb {
        "version" => {
            out = Outcome::ok(format!(
                "Client Version: {v} (k3s stand-in)\nServer Version: {v} (k3s stand-in)",
                v = host.settings.version
            ))
        }
        "get" if p.has("--raw") => {
            let path = p.get("--raw").unwrap_or("");
            if matches!(path, "/readyz" | "/livez" | "/healthz") {
                out = Outcome::ok("ok");
            } else {
                return Err(failed(format!(
                    "Error from server (NotFound): the k3s stand-in does not serve {path}"
                )));
            }
        }
        "get" | "wait" => {
            let (resource, name) = match target.and_then(|t| t.split_once('/')) {
                Some((r, n)) => (r, Some(n)),
                None => (
                    target.unwrap_or(""),
                    p.positional.get(2).map(String::as_str),
                ),
            };
            let is_node = matches!(resource, "node" | "nodes" | "no");
            if verb == "wait" && !is_node {
                // Only nodes exist in the stand-in; other objects are not evaluated.
                let obj = format!("{resource}/{}", name.unwrap_or(""));
                let mut o = Outcome::ok(format!("{obj} condition met"));
                o.message = format!(
                    "k3s stand-in: wait {obj} --for={} NOT evaluated (no workloads in the stand-in)",
                    p.get("--for").unwrap_or("")
                );
                return Ok(o);
            }
            if verb == "get" && matches!(resource, "pod" | "pods" | "po") && name.is_none() {
                return list_pods(&p, &state);
            }
            if verb == "get" && is_helmchart(resource) {
                // HelmCharts come only from manifest files here, so one exists exactly while an
                // Addon holds it: the stand-in runs no helm-controller, and a deleted HelmChart is
                // gone at once, as if its uninstall job had finished (namespaces are not modelled).
                let name = name.ok_or_else(|| {
                    failed("error: the k3s stand-in does not list HelmCharts; name one")
                })?;
                let key = format!("helmchart/{name}");
                if state.addons.values().any(|a| a.objects.contains(&key)) {
                    // Never being deleted here: a deleted HelmChart is gone at once.
                    let shown = match p.get("--output") {
                        Some("name") => format!("helmchart.helm.cattle.io/{name}"),
                        Some("jsonpath={.metadata.deletionTimestamp}") => String::new(),
                        other => {
                            return Err(failed(format!(
                                "error: the k3s stand-in answers HelmCharts only with -o name or \
                                 -o jsonpath={{.metadata.deletionTimestamp}}, not {other:?}"
                            )))
                        }
                    };
                    let mut o = Outcome::ok(shown);
                    o.message = format!("{key} exists (an Addon holds it)");
                    return Ok(o);
                }
                if p.has("--ignore-not-found") {
                    let mut o = Outcome::ok("");
                    o.message = format!("{key} not found (ignored)");
                    return Ok(o);
                }
                return Err(failed(format!(
                    "Error from server (NotFound): helmcharts.helm.cattle.io \"{name}\" not found"
                )));
            }
            if !is_node {
                // Only nodes exist in the stand-in. `ffe_manifests` wait_for first polls
                // `get KIND/NAME` until k3s's controllers created the object; the stand-in runs no
                // deploy or helm controller, so it answers as if the object exists and records
                // that this was not evaluated (like `wait` above).
                let obj = format!("{resource}/{}", name.unwrap_or(""));
                if name.is_none() {
                    return Err(failed(format!(
                        "error: the k3s stand-in does not list resource type \"{resource}\""
                    )));
                }
                let mut o = Outcome::ok(obj.clone());
                o.message = format!(
                    "k3s stand-in: get {obj} NOT evaluated (no controllers in the stand-in)"
                );
                return Ok(o);
            }
            let selected: Vec<(&String, &NodeState)> = match name {
                Some(n) => vec![state.nodes.get_key_value(n).ok_or_else(|| not_found(n))?],
                None => state.nodes.iter().collect(),
            };
            if verb == "wait" {
                let cond = p.get("--for").unwrap_or("");
                if !cond.eq_ignore_ascii_case("condition=Ready") {
                    return Err(failed(format!(
                        "error: the k3s stand-in only waits for condition=Ready, not {cond:?}"
                    )));
                }
                let not_ready: Vec<&str> = selected
                    .iter()
                    .filter(|(_, n)| !n.ready)
                    .map(|(k, _)| k.as_str())
                    .collect();
                if !not_ready.is_empty() {
                    return Err(failed(format!(
                        "error: timed out waiting for the condition on nodes/{}",
                        not_ready.join(",nodes/")
                    )));
                }
                let lines: Vec<String> = selected
                    .iter()
                    .map(|(k, _)| format!("node/{k} condition met"))
                    .collect();
                out = Outcome::ok(lines.join("\n"));
            } else {
                match p.get("--output") {
                    Some("json") => {
                        let v = match name {
                            Some(_) => selected
                                .first()
                                .map(|(k, n)| node_json(k, n))
                                .unwrap_or(Value::Null),
                            None => json!({
                                "apiVersion": "v1",
                                "kind": "List",
                                "metadata": {"resourceVersion": ""},
                                "items": selected.iter().map(|(k, n)| node_json(k, n)).collect::<Vec<_>>(),
                            }),
                        };
                        out.stdout = serde_json::to_string_pretty(&v)
                            .map_err(|e| failed(e.to_string()))?
                            + "\n";
                        out.message = format!("{} nodes", selected.len());
                    }
                    Some("name") => {
                        let lines: Vec<String> =
                            selected.iter().map(|(k, _)| format!("node/{k}")).collect();
                        out = Outcome::ok(lines.join("\n"));
                    }
                    None | Some("wide") => {
                        let mut lines = vec!["NAME STATUS ROLES AGE VERSION".to_string()];
                        for (k, n) in &selected {
                            let mut status = if n.ready { "Ready" } else { "NotReady" }.to_string();
                            if n.unschedulable {
                                status.push_str(",SchedulingDisabled");
                            }
                            lines.push(format!("{k} {status} {} 1m {}", roles(n), n.version));
                        }
                        out = Outcome::ok(lines.join("\n"));
                    }
                    Some(o) => {
                        return Err(failed(format!(
                            "error: the k3s stand-in does not support output format {o:?}"
                        )))
                    }
                }
            }
        }
        "label" | "taint" => {
            // `kubectl label|taint node NAME ARGS...` (or `node/NAME`).
            let mut words = p.positional[1..].iter().map(String::as_str);
            let first = words.next().unwrap_or("");
            let name = match first.split_once('/') {
                Some(("node" | "nodes" | "no", n)) => n.to_string(),
                _ if matches!(first, "node" | "nodes" | "no") => {
                    words.next().unwrap_or("").to_string()
                }
                _ => {
                    return Err(failed(format!(
                        "error: the k3s stand-in only {verb}s nodes, not {first:?}"
                    )))
                }
            };
            let changes: Vec<&str> = words.collect();
            if changes.is_empty() {
                return Err(failed(format!(
                    "error: at least one {verb} update is required"
                )));
            }
            let overwrite = p.has("--overwrite");
            let mut lines = Vec::new();
            host.datastore().update(|s| {
                let node = s
                    .as_mut()
                    .and_then(|c| c.nodes.get_mut(&name))
                    .ok_or_else(|| not_found(&name))?;
                for c in &changes {
                    if verb == "label" {
                        edit_label(node, c, overwrite)?;
                    } else {
                        edit_taint(node, c, overwrite)?;
                    }
                }
                Ok(())
            })?;
            lines.push(format!(
                "node/{name} {}",
                if verb == "label" {
                    "labeled"
                } else {
                    "modified"
                }
            ));
            out = Outcome::ok(lines.join("\n"));
        }
        "cordon" | "uncordon" | "drain" => {
            let name =
                target.ok_or_else(|| failed(format!("error: USAGE: kubectl {verb} NODE")))?;
            let name = name.strip_prefix("node/").unwrap_or(name);
            set_unschedulable(host, name, verb != "uncordon")?;
            if verb == "drain" {
                evict_pods(host, &p, name)?;
            }
            out = Outcome::ok(match verb {
                "cordon" => format!("node/{name} cordoned"),
                "uncordon" => format!("node/{name} uncordoned"),
                _ => format!("node/{name} cordoned\nnode/{name} drained"),
            });
        }
        "delete" if !p.has("--filename") => {
            let (resource, name) = match target.and_then(|t| t.split_once('/')) {
                Some((r, n)) => (r, Some(n)),
                None => (
                    target.unwrap_or(""),
                    p.positional.get(2).map(String::as_str),
                ),
            };
            if matches!(resource, "addon" | "addons" | "addon.k3s.cattle.io") {
                // k3s's deploy controller keeps one Addon per manifest file (with its checksum);
                // the stand-in runs no deploy controller, so there is nothing to delete: record it.
                let names: Vec<&str> = match name {
                    Some(n) if target.is_some_and(|t| t.contains('/')) => vec![n],
                    _ => p.positional.iter().skip(2).map(String::as_str).collect(),
                };
                if names.is_empty() {
                    return Err(failed("error: resource name may not be empty"));
                }
                if p.get("--namespace") != Some("kube-system") {
                    return Err(failed(
                        "error: k3s keeps Addons in kube-system: pass -n kube-system",
                    ));
                }
                let ignore = p.has("--ignore-not-found");
                let missing = host.datastore().update(|s| {
                    let mut missing = Vec::new();
                    if let Some(c) = s.as_mut() {
                        for n in &names {
                            if c.addons.remove(*n).is_none() {
                                missing.push(n.to_string());
                            }
                        }
                    }
                    Ok(missing)
                })?;
                if !missing.is_empty() && !ignore {
                    return Err(failed(format!(
                        "Error from server (NotFound): addons.k3s.cattle.io \"{}\" not found",
                        missing.join(", ")
                    )));
                }
                let deleted: Vec<String> = names
                    .iter()
                    .filter(|n| !missing.contains(&n.to_string()))
                    .map(|n| format!("addon.k3s.cattle.io \"{n}\" deleted"))
                    .collect();
                return Ok(Outcome::ok(deleted.join("\n")));
            }
            if !matches!(resource, "node" | "nodes" | "no") {
                return Err(failed(format!(
                    "error: the k3s stand-in does not model deleting \"{resource}\""
                )));
            }
            let name = name.ok_or_else(|| failed("error: resource name may not be empty"))?;
            let ignore = p.has("--ignore-not-found");
            let existed = host.datastore().update(|s| {
                let c = s.as_mut();
                let existed = c.as_ref().is_some_and(|c| c.nodes.contains_key(name));
                if let Some(c) = c {
                    // k3s's etcd member controller removes a deleted server's member (k3s-io/k3s
                    // #3973), except the last one: etcd cannot remove its only member.
                    if c.nodes.get(name).is_some_and(|n| n.role == Role::Server)
                        && c.etcd_members.iter().any(|m| m != name)
                    {
                        c.remove_member(name);
                    }
                    c.nodes.remove(name);
                }
                Ok(existed)
            })?;
            if !existed && !ignore {
                return Err(not_found(name));
            }
            out = Outcome::ok(if existed {
                format!("node \"{name}\" deleted")
            } else {
                String::new()
            });
        }
        "apply" | "create" | "delete" => {
            let sources = read_sources(&p, stdin, &mut out)?;
            let mut lines = Vec::new();
            for (src, text) in &sources {
                let objs = match objects(src, text) {
                    Ok(o) => o,
                    Err(e) => return Ok(out.with_error(&e)),
                };
                for (kind, name) in objs {
                    lines.push(match verb {
                        "delete" => format!("{kind} \"{name}\" deleted"),
                        _ => format!("{kind}/{name} configured"),
                    });
                }
            }
            if verb == "delete" {
                let mut deleted = Vec::new();
                for (src, text) in &sources {
                    deleted.extend(objects(src, text)?);
                }
                host.datastore().update(|s| {
                    if let Some(c) = s.as_mut() {
                        super::deploy::objects_deleted(&mut c.addons, &deleted);
                    }
                    Ok(())
                })?;
            }
            let n = lines.len();
            out.stdout = lines.iter().map(|l| format!("{l}\n")).collect();
            out.message = format!("kubectl {verb}: {n} objects from {} sources", sources.len());
        }
        other => {
            return Err(failed(format!(
                "error: the k3s stand-in does not model `kubectl {other}`"
            )))
        }
    }
    Ok(out)
}

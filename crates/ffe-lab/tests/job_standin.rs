//! The Job controller + kubelet stand-in (`ffe_lab::jobs::JobRunner`) behind the Kubernetes API
//! stand-in (`RecordedApi::start_full`), as a CLI reaches it: over TLS with the kubeconfig's
//! client certificate, a recorded CronJob, Jobs created from its template, their containers
//! really run on a lab host. Needs root and nginx (scripts/install-deps.sh), PostgreSQL 15's
//! binaries (the image path) and kubernetes-validate (tools/venv).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ffe_lab::jobs::{JobRunner, JobRunnerConfig};
use ffe_lab::kube_api::{recorded, RecordedApi};
use ffe_lab::lab::{Lab, LabSpec};
use ffe_lab::pki::TestCa;
use serde_json::{json, Value};

const NS: &str = "ffe-data";
const CRON: &str = "ffe-pg-repo1-full";
/// The recorded CronJob's uid (listed as an existing owner for the garbage-collector stand-in).
const CRON_UID: &str = "6f1c2a53-93c4-4d3e-9a51-0b7e9d7f1c11";
/// A uid no object has.
const GONE_UID: &str = "3b0d9e4c-5a1f-4e2b-8c7d-9f0a1b2c3d4e";
const CLAIM: &str = "ffe-pg-repo1";
const API_HOST: &str = "jb-master-1";
const NODE: &str = "jb-worker-1";
/// The Kubernetes minor the environment pins (terraform/environments/ha/pins.tf).
const KUBE_MINOR: &str = "1.36";

fn cron_path() -> String {
    format!("/apis/batch/v1/namespaces/{NS}/cronjobs/{CRON}")
}

fn jobs_path() -> String {
    format!("/apis/batch/v1/namespaces/{NS}/jobs")
}

/// A pgBackRest-like CronJob: the repository claim read-only at /ro and read-write at
/// /pgbackrest/repo1, an emptyDir at /tmp, a locked-down container.
fn cronjob() -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": CRON, "namespace": NS, "uid": CRON_UID,
                     "creationTimestamp": "2026-12-03T10:00:00Z"},
        "spec": {
            "schedule": "0 1 * * 0", "concurrencyPolicy": "Forbid",
            "jobTemplate": {
                "metadata": {"labels": {"postgres-operator.crunchydata.com/pgbackrest-backup": "manual"}},
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "metadata": {"labels": {"postgres-operator.crunchydata.com/pgbackrest-backup": "manual"}},
                        "spec": {
                            "restartPolicy": "Never",
                            "securityContext": {"runAsNonRoot": true, "fsGroup": 26},
                            "containers": [{
                                "name": "pgbackrest",
                                "image": "percona/percona-pgbackrest:2.56.0",
                                "command": ["/bin/sh", "-c", "exit 0"],
                                "env": [{"name": "STANZA", "value": "db"}],
                                "securityContext": {"readOnlyRootFilesystem": true,
                                    "allowPrivilegeEscalation": false,
                                    "capabilities": {"drop": ["ALL"]}},
                                "volumeMounts": [
                                    {"name": "repo", "mountPath": "/ro", "readOnly": true},
                                    {"name": "repo", "mountPath": "/pgbackrest/repo1"},
                                    {"name": "tmp", "mountPath": "/tmp"}
                                ]
                            }],
                            "volumes": [
                                {"name": "repo", "persistentVolumeClaim": {"claimName": CLAIM}},
                                {"name": "tmp", "emptyDir": {}}
                            ]
                        }
                    }
                }
            }
        }
    })
}

/// What `kubectl create job NAME --from=cronjob/CRON` sends: the template's spec, an owner
/// reference to the CronJob, the manual-instantiation annotation. `name` empty: generateName.
fn job_from_cronjob(cron: &Value, name: &str, script: &str) -> Value {
    let tpl = &cron["spec"]["jobTemplate"];
    let mut meta = json!({
        "namespace": NS,
        "labels": tpl["metadata"]["labels"],
        "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": CRON,
                             "uid": cron["metadata"]["uid"], "controller": true}],
    });
    if name.is_empty() {
        meta["generateName"] = json!(format!("{CRON}-manual-"));
    } else {
        meta["name"] = json!(name);
    }
    let mut job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
                         "spec": tpl["spec"]});
    job["spec"]["template"]["spec"]["containers"][0]["command"] = json!(["/bin/sh", "-c", script]);
    job
}

struct Client {
    endpoint: String,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    dir: tempfile::TempDir,
}

struct Answer {
    status: u16,
    headers: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {} {}", self.status, self.body))
    }
}

impl Client {
    /// The kubeconfig's server, CA and client certificate as files curl can use.
    fn new(api: &RecordedApi) -> Self {
        use base64::Engine;
        let dir = tempfile::tempdir().unwrap();
        let kc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(api.kubeconfig()).unwrap()).unwrap();
        let file = |field: &str, section: &serde_yaml_ng::Value, name: &str| {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(section[field].as_str().unwrap())
                .unwrap();
            let p = dir.path().join(name);
            std::fs::write(&p, pem).unwrap();
            p
        };
        let user = &kc["users"][0]["user"];
        let cluster = &kc["clusters"][0]["cluster"];
        Client {
            endpoint: cluster["server"].as_str().unwrap().to_string(),
            ca: file("certificate-authority-data", cluster, "ca.crt"),
            cert: file("client-certificate-data", user, "client.crt"),
            key: file("client-key-data", user, "client.key"),
            dir,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>, with_cert: bool) -> Answer {
        let headers = self.dir.path().join("headers");
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--noproxy", "*", "--max-time", "20", "-X", method])
            .arg("--cacert")
            .arg(&self.ca)
            .arg("-D")
            .arg(&headers)
            .args(["-w", "\n%{http_code}"]);
        if with_cert {
            cmd.arg("--cert")
                .arg(&self.cert)
                .arg("--key")
                .arg(&self.key);
        }
        if let Some(b) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary"])
                .arg(b.to_string());
        }
        let out = cmd
            .arg(format!("{}{path}", self.endpoint))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        Answer {
            status: code.trim().parse().unwrap_or(0),
            headers: std::fs::read_to_string(&headers).unwrap_or_default(),
            body: body.to_string(),
        }
    }

    fn get(&self, path: &str) -> Answer {
        self.call("GET", path, None, true)
    }

    fn create(&self, job: &Value) -> Answer {
        self.call("POST", &jobs_path(), Some(job), true)
    }

    /// Poll the Job until a `Complete` or `Failed` condition is True: (the Job, that type).
    fn wait_finished(&self, name: &str) -> (Value, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let a = self.get(&format!("{}/{name}", jobs_path()));
            assert_eq!(a.status, 200, "{}", a.body);
            let job = a.json();
            let done = job["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| {
                    (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True"
                })
                .map(|c| c["type"].as_str().unwrap().to_string());
            if let Some(t) = done {
                return (job, t);
            }
            assert!(Instant::now() < deadline, "{name} did not finish: {job}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The Job's pods through `labelSelector=job-name=NAME` (`=` sent as `%3D`).
    fn pods(&self, job: &str) -> Vec<Value> {
        let a = self.get(&format!(
            "/api/v1/namespaces/{NS}/pods?labelSelector=job-name%3D{job}"
        ));
        assert_eq!(a.status, 200, "{}", a.body);
        let list = a.json();
        assert_eq!(list["kind"], "PodList", "{list}");
        list["items"].as_array().unwrap().clone()
    }

    fn log(&self, pod: &str, query: &str) -> String {
        let a = self.get(&format!("/api/v1/namespaces/{NS}/pods/{pod}/log{query}"));
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(
            a.headers
                .to_ascii_lowercase()
                .contains("content-type: text/plain"),
            "{}",
            a.headers
        );
        a.body
    }
}

struct Setup {
    lab: Lab,
    repo: PathBuf,
    runner: Option<JobRunner>,
    api: RecordedApi,
    client: Client,
}

fn setup() -> Setup {
    let lab = Lab::create(LabSpec {
        hosts: vec![API_HOST.into(), NODE.into()],
        backup_mount: "/mnt/backups".into(),
        ssh_port: 22,
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
    let repo = lab.dir().join("pgbackrest-repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("backup.info"), "[backup:current]\n").unwrap();
    // The repository belongs to the user the pods run as (as the PVC to uid 26 on a cluster).
    let chown = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(&repo)
        .status()
        .unwrap();
    assert!(chown.success());
    let mut cfg = JobRunnerConfig::new(NODE);
    cfg.claims.insert(CLAIM.into(), repo.clone());
    // The recorded CronJob exists: Jobs it owns are not garbage-collected.
    cfg.owners
        .insert(CRON_UID.into(), ("CronJob".into(), CRON.into()));
    cfg.image_paths.push((
        "/usr/pgsql-15/bin".into(),
        "/usr/lib/postgresql/15/bin".into(),
    ));
    let runner = JobRunner::start(&lab, cfg).unwrap_or_else(|e| panic!("{e}"));
    let ca = TestCa::new(&lab.dir().join("api-ca")).unwrap();
    let recorded_pods = recorded::list("PodList", vec![]).to_string();
    let pods_path = format!("/api/v1/namespaces/{NS}/pods");
    let api = RecordedApi::start_full(
        &lab,
        API_HOST,
        &ca,
        &[
            (cron_path().as_str(), cronjob().to_string()),
            (pods_path.as_str(), recorded_pods),
        ],
        &[],
        Some(runner.addr()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let client = Client::new(&api);
    Setup {
        lab,
        repo,
        runner: Some(runner),
        api,
        client,
    }
}

#[test]
fn jobs_from_a_cronjob_run_on_the_node_and_report_through_the_api() {
    let s = setup();
    let c = &s.client;
    let runner = s.runner.as_ref().unwrap();

    // The recorded CronJob is still served by nginx, as is the recorded pod list without a
    // job-name selector.
    let a = c.get(&cron_path());
    assert_eq!(a.status, 200, "{}", a.body);
    let cron = a.json();
    assert_eq!(cron, cronjob());
    let a = c.get(&format!("/api/v1/namespaces/{NS}/pods"));
    assert_eq!((a.status, a.json()["items"].clone()), (200, json!([])));
    // The client certificate is required on the Job paths too (nginx: 400).
    let a = c.call("GET", &format!("{}/x", jobs_path()), None, false);
    assert_eq!(a.status, 400, "{}", a.body);

    // 1. Fails: the claim is read-only at /ro.
    let failing = job_from_cronjob(&cron, "probe-ro", "echo hello; id -un; touch /ro/x");
    let a = c.create(&failing);
    assert_eq!(a.status, 201, "{}", a.body);
    let created = a.json();
    assert_eq!(created["metadata"]["name"], "probe-ro");
    assert_eq!(created["metadata"]["namespace"], NS);
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    assert!(uid.len() == 36 && &uid[14..15] == "4", "{uid}");
    assert!(created["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(
        created["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        json!(uid)
    );
    assert_eq!(
        created["spec"]["template"]["metadata"]["labels"]["job-name"],
        "probe-ro"
    );
    // The same name again: 409.
    let a = c.create(&failing);
    assert_eq!(
        (a.status, a.json()["reason"].clone()),
        (409, json!("AlreadyExists"))
    );

    let (job, done) = c.wait_finished("probe-ro");
    assert_eq!(done, "Failed", "{job}");
    assert_eq!(job["status"]["failed"], 1, "{job}");
    let failed = job["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .unwrap();
    assert_eq!(failed["reason"], "BackoffLimitExceeded");
    let pods = c.pods("probe-ro");
    assert_eq!(pods.len(), 1, "{pods:?}");
    let pod = &pods[0];
    let pod_name = pod["metadata"]["name"].as_str().unwrap().to_string();
    assert!(pod_name.starts_with("probe-ro-") && pod_name.len() == "probe-ro-".len() + 5);
    assert_eq!(pod["status"]["phase"], "Failed");
    assert_eq!(pod["spec"]["nodeName"], NODE);
    for l in ["job-name", "batch.kubernetes.io/job-name"] {
        assert_eq!(pod["metadata"]["labels"][l], "probe-ro");
    }
    for l in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
        assert_eq!(pod["metadata"]["labels"][l], json!(uid));
    }
    // The selector with a plain `=` reaches the stand-in too (not the recorded pod list).
    let a = c.get(&format!(
        "/api/v1/namespaces/{NS}/pods?labelSelector=job-name=probe-ro"
    ));
    assert_eq!(a.json()["items"], json!(pods), "{}", a.body);
    let log = c.log(&pod_name, "");
    assert!(log.starts_with("hello\npostgres\n"), "{log}\n{pod}");
    assert!(log.contains("Read-only file system"), "{log}");
    assert!(!s.repo.join("x").exists());
    assert_eq!(
        c.log(&pod_name, "?tailLines=1&container=pgbackrest"),
        log.lines().last().unwrap().to_string() + "\n"
    );

    // 2. Succeeds: generateName, $(VAR) expansion, the read-write claim, the emptyDir, a
    // read-only root, the image path, PID 1 of its own namespace, the pod's hostname.
    let script = r#"set -e
echo "A=$A"
cat /pgbackrest/repo1/backup.info
echo written > /pgbackrest/repo1/from-job
echo scratch > /tmp/scratch && cat /tmp/scratch
if touch /var/tmp/job-standin-probe 2>/dev/null; then echo ROOT-WRITABLE; exit 3; fi
echo "rootfs read-only"
/usr/pgsql-15/bin/postgres --version
echo "host $(hostname) pid $$$$ dir $(pwd)"
echo "-- env"
env | sort
"#;
    let mut ok = job_from_cronjob(&cron, "", script);
    ok["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "STANZA", "value": "db"}, {"name": "A", "value": "$(STANZA)-x"}]);
    let a = c.create(&ok);
    assert_eq!(a.status, 201, "{}", a.body);
    let name = a.json()["metadata"]["name"].as_str().unwrap().to_string();
    let prefix = format!("{CRON}-manual-");
    assert!(
        name.starts_with(&prefix) && name.len() == prefix.len() + 5,
        "{name}"
    );
    assert!(name[prefix.len()..]
        .bytes()
        .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)));
    let pod_name = c.pods(&name)[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    // Followed, the log comes as it is written and ends with the container.
    let followed = c.log(&pod_name, "?follow=true");
    let (job, done) = c.wait_finished(&name);
    // A probe that got written would be on the machine's own /var/tmp: removed before asserting.
    let root_probe = Path::new("/var/tmp/job-standin-probe");
    let root_was_writable = root_probe.exists();
    let _ = std::fs::remove_file(root_probe);
    assert!(
        !root_was_writable,
        "the container wrote to the machine's root"
    );
    let log = c.log(&pod_name, "");
    assert_eq!(followed, log);
    assert_eq!(done, "Complete", "{log}");
    assert_eq!(job["status"]["succeeded"], 1);
    assert!(job["status"]["completionTime"].is_string(), "{job}");
    for want in [
        "A=db-x\n",
        "[backup:current]\n",
        "scratch\n",
        "rootfs read-only\n",
        "postgres (PostgreSQL) 15",
        &format!("host {pod_name} pid 1 dir /\n"),
    ] {
        assert!(log.contains(want), "{want:?} not in:\n{log}");
    }
    // `$$$$` in the command reached the shell as `$$` (the kubelet's expansion).
    let env: Vec<&str> = log
        .split_once("-- env\n")
        .unwrap()
        .1
        .lines()
        .map(|l| l.split('=').next().unwrap())
        .collect();
    // Exactly the container's env plus what a runtime adds (and the PWD sh exports itself).
    assert_eq!(
        env,
        ["A", "HOME", "HOSTNAME", "PATH", "PWD", "STANZA"],
        "{log}"
    );
    assert!(log.contains("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"));
    assert_eq!(
        std::fs::read_to_string(s.repo.join("from-job")).unwrap(),
        "written\n"
    );
    // The machine's own root stayed writable (the read-only remount was the pod's only).
    let probe = s.lab.dir().join("root-still-writable");
    std::fs::write(&probe, "x").unwrap();
    let pod = &c.pods(&name)[0];
    assert_eq!(pod["status"]["phase"], "Succeeded");
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        0
    );

    // 3. Refused: what the stand-in does not play, with the field named.
    let mut secret_env = job_from_cronjob(&cron, "secret-env", "true");
    secret_env["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "PW",
        "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]);
    let mut no_claim = job_from_cronjob(&cron, "no-claim", "true");
    no_claim["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] =
        json!("other-claim");
    let mut retries = job_from_cronjob(&cron, "retries", "true");
    retries["spec"]
        .as_object_mut()
        .unwrap()
        .remove("backoffLimit");
    let mut secret_vol = job_from_cronjob(&cron, "secret-vol", "true");
    secret_vol["spec"]["template"]["spec"]["volumes"][1] =
        json!({"name": "tmp", "secret": {"secretName": "s"}});
    for (job, field) in [
        (
            &secret_env,
            "spec.template.spec.containers[0].env[0].valueFrom",
        ),
        (
            &no_claim,
            "spec.template.spec.volumes[0].persistentVolumeClaim.claimName",
        ),
        (&retries, "spec.backoffLimit"),
        (&secret_vol, "spec.template.spec.volumes[1].secret"),
    ] {
        let a = c.create(job);
        assert_eq!(a.status, 422, "{}", a.body);
        let st = a.json();
        assert_eq!(
            (st["kind"].as_str(), st["reason"].as_str()),
            (Some("Status"), Some("Invalid"))
        );
        assert_eq!(st["details"]["causes"][0]["field"], field, "{st}");
    }
    assert!(no_claim_message_names_claim(c, &no_claim));
    // Not JSON, not a Job: 415 and 400.
    let a = c.call("POST", &jobs_path(), None, true);
    assert_eq!(a.status, 415, "{}", a.body);
    let mut pod_kind = failing.clone();
    pod_kind["kind"] = json!("Pod");
    assert_eq!(c.create(&pod_kind).status, 400);
    // Unknown Job: 404 Status, on GET and DELETE; an unknown job's pods: an empty list.
    for m in ["GET", "DELETE"] {
        let a = c.call(m, &format!("{}/nope", jobs_path()), None, true);
        assert_eq!(a.status, 404, "{}", a.body);
        assert_eq!(a.json()["message"], "jobs.batch \"nope\" not found");
    }
    assert!(c.pods("nope").is_empty());

    // 4. activeDeadlineSeconds: killed, Failed with DeadlineExceeded.
    let mut slow = job_from_cronjob(&cron, "slow", "echo started; sleep 30");
    slow["spec"]["activeDeadlineSeconds"] = json!(1);
    assert_eq!(c.create(&slow).status, 201);
    let t = Instant::now();
    let (job, done) = c.wait_finished("slow");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(done, "Failed");
    let cond = &job["status"]["conditions"][1];
    assert_eq!(
        (cond["type"].as_str(), cond["reason"].as_str()),
        (Some("Failed"), Some("DeadlineExceeded"))
    );

    // Every body the CLI sent, and the answers, fit the Kubernetes schema.
    let mut objects = runner.created_jobs();
    assert_eq!(objects.len(), 3);
    assert_eq!(objects[0], failing);
    objects.push(c.get(&format!("{}/probe-ro", jobs_path())).json());
    objects.push(job);
    let mut p = c.pods(&name)[0].clone();
    p["kind"] = json!("Pod");
    p["apiVersion"] = json!("v1");
    objects.push(p);
    schema_valid(&objects);
    drop(s);
}

fn no_claim_message_names_claim(c: &Client, job: &Value) -> bool {
    let a = c.create(job);
    a.json()["message"]
        .as_str()
        .is_some_and(|m| m.contains("other-claim") && m.contains("Pending"))
}

/// Processes in the node's network namespace (sshd, and any container).
fn node_pids(lab: &Lab) -> usize {
    lab.host_pids(NODE).unwrap().len()
}

#[test]
fn deleting_kills_or_orphans_and_dropping_the_runner_kills_what_is_left() {
    let mut s = setup();
    let c = &s.client;
    let cron = c.get(&cron_path()).json();
    let idle = node_pids(&s.lab);

    // Background: the container is killed, the pod is gone, the Job too.
    assert_eq!(
        c.create(&job_from_cronjob(&cron, "long-bg", "sleep 300"))
            .status,
        201
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while node_pids(&s.lab) == idle {
        assert!(Instant::now() < deadline, "the container did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(c.pods("long-bg")[0]["status"]["phase"], "Running");
    let job = c.get(&format!("{}/long-bg", jobs_path())).json();
    assert_eq!(job["status"]["active"], 1, "{job}");
    let a = c.call(
        "DELETE",
        &format!("{}/long-bg?propagationPolicy=Background", jobs_path()),
        None,
        true,
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let st = a.json();
    assert_eq!(
        (st["kind"].as_str(), st["status"].as_str()),
        (Some("Status"), Some("Success"))
    );
    assert_eq!(
        node_pids(&s.lab),
        idle,
        "the container outlived its Background delete"
    );
    assert!(c.pods("long-bg").is_empty());
    assert_eq!(c.get(&format!("{}/long-bg", jobs_path())).status, 404);

    // No policy: batch/v1's default is Orphan, with kube-apiserver's warning; the pod runs on.
    assert_eq!(
        c.create(&job_from_cronjob(&cron, "long-orphan", "sleep 300"))
            .status,
        201
    );
    let a = c.call(
        "DELETE",
        &format!("{}/long-orphan", jobs_path()),
        None,
        true,
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.headers.contains("child pods are preserved by default"),
        "{}",
        a.headers
    );
    assert_eq!(a.json()["metadata"]["finalizers"], json!(["orphan"]));
    assert_eq!(c.get(&format!("{}/long-orphan", jobs_path())).status, 404);
    let pods = c.pods("long-orphan");
    assert_eq!(pods[0]["status"]["phase"], "Running");
    assert!(pods[0]["metadata"].get("ownerReferences").is_none());
    assert!(node_pids(&s.lab) > idle);

    let runner = s.runner.take().unwrap();
    let deleted = runner.deleted_jobs();
    let summary: Vec<(&str, Option<&str>, bool)> = deleted
        .iter()
        .map(|d| (d.name.as_str(), d.propagation_policy.as_deref(), d.killed))
        .collect();
    assert_eq!(
        summary,
        [
            ("long-bg", Some("Background"), true),
            ("long-orphan", None, false)
        ]
    );
    // Dropping the runner kills the orphan too, and the API's Job paths stop answering.
    drop(runner);
    assert_eq!(node_pids(&s.lab), idle, "a container outlived the runner");
    let a = c.get(&format!("{}/long-orphan", jobs_path()));
    assert_eq!(a.status, 502, "{}", a.body);
    drop(s.api);
}

/// A GET straight to the runner (plain HTTP on the lab's gateway), not through nginx.
fn runner_get(runner: &JobRunner, path: &str) -> (u16, Value) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--noproxy",
            "*",
            "--max-time",
            "20",
            "-w",
            "\n%{http_code}",
        ])
        .arg(format!("http://{}{path}", runner.addr()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (
        code.trim().parse().unwrap(),
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")),
    )
}

/// The Job's own selectors on the pods path (`/` and `=` sent as is and URL-encoded).
fn controller_uid_selectors(uid: &str) -> Vec<String> {
    [
        format!("batch.kubernetes.io/controller-uid={uid}"),
        format!("batch.kubernetes.io%2Fcontroller-uid%3D{uid}"),
        format!("controller-uid={uid}"),
        format!("controller-uid%3D%3D{uid}"),
    ]
    .into_iter()
    .map(|sel| format!("/api/v1/namespaces/{NS}/pods?labelSelector={sel}"))
    .collect()
}

#[test]
fn owner_references_are_validated_and_jobs_whose_owners_are_gone_are_collected() {
    let s = setup();
    let c = &s.client;
    let runner = s.runner.as_ref().unwrap();
    let cron = c.get(&cron_path()).json();
    // Each Job's command leaves a marker in the claim (the host's repository directory).
    let marker = |name: &str| s.repo.join(format!("ran-{name}"));
    let job = |name: &str| {
        job_from_cronjob(
            &cron,
            name,
            &format!("echo ran > /pgbackrest/repo1/ran-{name}"),
        )
    };
    let job_path = |name: &str| format!("{}/{name}", jobs_path());

    // 1. Owned by the recorded CronJob, which exists: runs, owner kept.
    let owned = job("owned");
    assert_eq!(c.create(&owned).status, 201);
    let (done_job, done) = c.wait_finished("owned");
    assert_eq!(done, "Complete", "{done_job}");
    assert!(marker("owned").exists());
    assert_eq!(
        done_job["metadata"]["ownerReferences"],
        owned["metadata"]["ownerReferences"]
    );
    let owned_uid = done_job["metadata"]["uid"].as_str().unwrap().to_string();
    let owned_pods = c.pods("owned");
    assert_eq!(owned_pods.len(), 1);

    // The Job's own selector (controller-uid) finds its pod, as job-name= does. Straight from
    // the runner: through nginx in the_jobs_own_selectors_reach_the_runner_through_nginx.
    for path in controller_uid_selectors(&owned_uid) {
        let (code, list) = runner_get(runner, &path);
        assert_eq!(code, 200, "{path}: {list}");
        assert_eq!(list["items"], json!(owned_pods), "{path}");
    }
    let (_, list) = runner_get(
        runner,
        &format!("/api/v1/namespaces/{NS}/pods?labelSelector=job-name%3Downed,controller-uid%3D{GONE_UID}"),
    );
    assert_eq!(list["items"], json!([]));
    let (code, _) = runner_get(
        runner,
        &format!("/api/v1/namespaces/{NS}/pods?labelSelector=app%3Dx"),
    );
    assert_eq!(code, 400);

    // 2. Owned by nothing that exists (an unknown uid; the CronJob's uid under another name):
    // accepted as kube-apiserver does, then deleted by the collector before its pod runs.
    let mut unknown = job("unknown-owner");
    unknown["metadata"]["ownerReferences"][0]["uid"] = json!(GONE_UID);
    let mut renamed = job("renamed-owner");
    renamed["metadata"]["ownerReferences"][0]["name"] = json!("ffe-pg-repo1-incr");
    let mut uids = vec![];
    for j in [&unknown, &renamed] {
        let a = c.create(j);
        assert_eq!(a.status, 201, "{}", a.body);
        uids.push(a.json()["metadata"]["uid"].as_str().unwrap().to_string());
    }
    for name in ["unknown-owner", "renamed-owner"] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let a = c.get(&job_path(name));
            if a.status == 404 {
                assert_eq!(
                    a.json()["message"],
                    format!("jobs.batch \"{name}\" not found")
                );
                break;
            }
            assert_eq!(a.status, 200, "{}", a.body);
            // Until then a Job with no pod.
            assert_eq!(a.json()["status"], json!({}), "{}", a.body);
            assert!(Instant::now() < deadline, "{name} was not collected");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(c.pods(name).is_empty());
    }
    for uid in &uids {
        for path in controller_uid_selectors(uid) {
            assert_eq!(runner_get(runner, &path).1["items"], json!([]));
        }
    }
    let listed: Vec<Value> = c.get(&jobs_path()).json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["metadata"]["name"].clone())
        .collect();
    assert_eq!(listed, [json!("owned")]);
    // Time for a container that had been started to leave its marker.
    std::thread::sleep(Duration::from_secs(2));
    assert!(!marker("unknown-owner").exists());
    assert!(!marker("renamed-owner").exists());
    let collected = runner.collected_jobs();
    let summary: Vec<(&str, &str, &str, &Value)> = collected
        .iter()
        .map(|g| {
            (
                g.namespace.as_str(),
                g.name.as_str(),
                g.uid.as_str(),
                &g.owner_references[0]["uid"],
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (NS, "unknown-owner", uids[0].as_str(), &json!(GONE_UID)),
            (NS, "renamed-owner", uids[1].as_str(), &json!(CRON_UID)),
        ]
    );
    assert!(runner.deleted_jobs().is_empty());

    // 3. One owner exists, one does not: runs, and the collector removes the dangling reference.
    let mut mixed = job("mixed-owners");
    mixed["metadata"]["ownerReferences"]
        .as_array_mut()
        .unwrap()
        .push(json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "gone", "uid": GONE_UID}));
    let a = c.create(&mixed);
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(
        a.json()["metadata"]["ownerReferences"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (done_job, done) = c.wait_finished("mixed-owners");
    assert_eq!(done, "Complete", "{done_job}");
    assert!(marker("mixed-owners").exists());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let refs = c.get(&job_path("mixed-owners")).json()["metadata"]["ownerReferences"].clone();
        if refs == owned["metadata"]["ownerReferences"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dangling owner stayed: {refs}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(runner.collected_jobs().len(), 2);

    // 4. Refused (422) with the field named as ValidateOwnerReferences names it (no index).
    let mut two = job("two-controllers");
    two["metadata"]["ownerReferences"]
        .as_array_mut()
        .unwrap()
        .push(
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "name": "other",
                     "uid": GONE_UID, "controller": true}),
        );
    let a = c.create(&two);
    assert_eq!(a.status, 422, "{}", a.body);
    let st = a.json();
    assert_eq!(st["reason"], "Invalid");
    assert_eq!(
        st["details"]["causes"][0]["field"],
        "metadata.ownerReferences"
    );
    assert!(
        st["message"].as_str().unwrap().ends_with(
            "Only one reference can have Controller set to true. Found \"true\" in references \
             for CronJob/ffe-pg-repo1-full and CronJob/other"
        ),
        "{st}"
    );
    let mut no_uid = job("no-owner-uid");
    no_uid["metadata"]["ownerReferences"][0]
        .as_object_mut()
        .unwrap()
        .remove("uid");
    let a = c.create(&no_uid);
    assert_eq!(a.status, 422, "{}", a.body);
    let st = a.json();
    assert_eq!(
        st["message"],
        "Job.batch \"no-owner-uid\" is invalid: metadata.ownerReferences.uid: Invalid value: \"\": \
         must not be empty"
    );
    assert_eq!(
        st["details"]["causes"][0]["field"],
        "metadata.ownerReferences.uid"
    );
    let mut blank = job("blank-owner");
    blank["metadata"]["ownerReferences"] = json!([{"apiVersion": "batch/", "controller": true}]);
    let st = c.create(&blank).json();
    let fields: Vec<&str> = st["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "metadata.ownerReferences.apiVersion",
            "metadata.ownerReferences.kind",
            "metadata.ownerReferences.name",
            "metadata.ownerReferences.uid"
        ],
        "{st}"
    );
    // Not a list of objects: the decoder's 400.
    let mut not_list = job("owners-not-a-list");
    not_list["metadata"]["ownerReferences"] = json!({"uid": CRON_UID});
    assert_eq!(c.create(&not_list).status, 400);
    for name in [
        "two-controllers",
        "no-owner-uid",
        "blank-owner",
        "owners-not-a-list",
    ] {
        assert_eq!(c.get(&job_path(name)).status, 404, "{name}");
        assert!(!marker(name).exists());
    }

    // 5. The same reference twice: kept once, with kube-apiserver's warning.
    let mut dup = job("duplicate-owner");
    let first = dup["metadata"]["ownerReferences"][0].clone();
    dup["metadata"]["ownerReferences"]
        .as_array_mut()
        .unwrap()
        .push(first);
    let a = c.create(&dup);
    assert_eq!(a.status, 201, "{}", a.body);
    assert!(
        a.headers
            .contains(&format!("duplicate UID(s) observed: {CRON_UID}")),
        "{}",
        a.headers
    );
    assert_eq!(
        a.json()["metadata"]["ownerReferences"],
        owned["metadata"]["ownerReferences"]
    );
    assert_eq!(c.wait_finished("duplicate-owner").1, "Complete");
    drop(s);
}

/// Needs kube_api.rs to route the controller-uid selectors to the runner as it routes `job-name=`.
#[test]
fn the_jobs_own_selectors_reach_the_runner_through_nginx() {
    let s = setup();
    let c = &s.client;
    let cron = c.get(&cron_path()).json();
    let a = c.create(&job_from_cronjob(&cron, "selected", "true"));
    assert_eq!(a.status, 201, "{}", a.body);
    let uid = a.json()["metadata"]["uid"].as_str().unwrap().to_string();
    let pods = c.pods("selected");
    assert_eq!(pods.len(), 1);
    // The same pod by name: its status (and the job-tracking finalizer) changes as "true" ends.
    let names = |items: &serde_json::Value| -> Vec<String> {
        items
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
            .collect()
    };
    let want = names(&json!(pods));
    for path in controller_uid_selectors(&uid) {
        let a = c.get(&path);
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert_eq!(names(&a.json()["items"]), want, "{path}");
    }
    // Another selector still gets the recorded pod list.
    let a = c.get(&format!(
        "/api/v1/namespaces/{NS}/pods?labelSelector=app%3Dx"
    ));
    assert_eq!((a.status, a.json()["items"].clone()), (200, json!([])));
    drop(s);
}

fn schema_valid(objects: &[Value]) {
    ffe_lab::kube_api::schema_check(objects, KUBE_MINOR).unwrap_or_else(|e| panic!("{e}"));
}

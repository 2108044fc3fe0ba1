//! **Stand-in, named: the Job controller and the kubelet.** No Kubernetes can run here, so a
//! [`JobRunner`] plays what they do for a CLI that creates a Job (e.g. from a CronJob's
//! `jobTemplate`), watches it, reads its pod's log and deletes it; the Job's one container is
//! **really run** on a lab host. It is a plain-HTTP server on the lab's gateway address, behind
//! the API stand-in's nginx ([`crate::kube_api::RecordedApi::start_full`]), which keeps the TLS
//! and client-certificate part.
//!
//! Served (namespace from the path; errors are Kubernetes `Status` objects):
//! - `POST /apis/batch/v1/namespaces/{ns}/jobs`: validated (below), answered 201 with the Job as
//!   kube-apiserver returns it (uid, creationTimestamp, the generated selector and `job-name` /
//!   `controller-uid` labels, the `spec` defaults), and its pod started at once;
//! - `GET .../jobs` (a JobList) and `GET .../jobs/{name}` with `status` from the pod's container;
//! - `DELETE .../jobs/{name}`: `propagationPolicy` Background or Foreground kill the container;
//!   none or Orphan leave the pod running, as kube-apiserver does for `batch/v1` (its default
//!   there is Orphan, with a `Warning` header when no policy was given);
//! - `GET /api/v1/namespaces/{ns}/pods?labelSelector=...`: the PodList for the Job's own labels,
//!   `job-name={name}` or `controller-uid={uid}` (each also with the `batch.kubernetes.io/`
//!   prefix, `==` for `=`, several ANDed with `,`); any other selector is refused (400);
//! - `GET /api/v1/namespaces/{ns}/pods/{pod}/log` (`container`, `follow`, `tailLines`).
//!
//! Refused with 422 where a real cluster would do something the stand-in does not play:
//! `backoffLimit` other than 0 (absent means 6; the stand-in does not retry), more than one pod
//! or container, init containers, probes and lifecycle hooks, `env[].valueFrom` and `envFrom`
//! (no Secrets or ConfigMaps), volumes other than `persistentVolumeClaim` (only the claims the
//! runner maps to a host directory) and `emptyDir`, a container without `command` (there is no
//! image to take an ENTRYPOINT from).
//!
//! `metadata.ownerReferences` as kube-apiserver takes them: decoded (a wrong JSON type is 400),
//! identical entries deduplicated with its `Warning`, then validated with the rest (422): each
//! entry needs a version in `apiVersion`, a `kind`, a `name` and a `uid` (causes
//! `metadata.ownerReferences.apiVersion` etc., unindexed, as `ValidateOwnerReferences` words them),
//! `v1` `Event` may not own, and at most one entry may have `controller: true` (cause
//! `metadata.ownerReferences`, "Only one reference can have Controller set to true. Found ...").
//!
//! **Also a stand-in, named: the garbage collector.** [`JobRunnerConfig::owners`] lists the
//! objects that exist (uid -> kind, name; a namespaced owner is taken to be in the Job's
//! namespace). An ownerReference is dangling when its uid is not listed or is listed with another
//! kind or name (the collector looks the owner up by kind and name and compares the uid). A Job
//! whose every ownerReference dangles is accepted (201, as the API server does not look owners up)
//! and deleted by the collector within [`GC_DELAY`]: GET answers 404 from then on, its pod list is
//! empty, and it is recorded in [`JobRunner::collected_jobs`]. Its pod is never started: on a
//! cluster the Job controller may start it before the collector's delete arrives, so nothing the
//! container would do can be counted on. A Job with some dangling and some existing owners runs,
//! and the collector removes the dangling entries from its `ownerReferences` (as its patch does).
//! Jobs without ownerReferences are not looked at. Collection is applied when the runner is next
//! asked anything (every request, and the accessors): no client can tell the difference.
//!
//! How a container runs (the kubelet + container runtime part): on the configured lab host,
//! `ip netns exec <netns> unshare --mount --uts --pid --fork --kill-child --mount-proc
//! --propagation private -- bash -c <script>`: the script bind-mounts the image paths (read-only)
//! and each `volumeMount` (read-only when `readOnly` or the PVC source says so), sets the
//! hostname to the pod name, with `securityContext.readOnlyRootFilesystem` remounts every other
//! writable mount of the machine but `/proc`, `/sys` and `/dev` read-only (`remount,bind,ro`: a
//! per-mount flag, private to this mount namespace; the filesystems stay writable for everyone
//! else), changes to `workingDir` (default `/`) and execs the command as the run user with exactly
//! the container's env (`$(VAR)` expanded as the kubelet does) plus `PATH`, `HOME=/` and
//! `HOSTNAME` when absent. The command is PID 1 of its own PID namespace, so when it exits the
//! kernel kills whatever it left behind, as in a container. stdout and stderr go interleaved to
//! the pod log. `activeDeadlineSeconds` (Job and pod) are enforced with SIGKILL.
//!
//! Not played, and named so nobody counts on them: the container sees the machine's filesystem
//! (plus its mounts), not an image; it shares the lab host's network (no pod IP); no service
//! account token, no `KUBERNETES_SERVICE_*` env, no image `ENV`; the pod-level `securityContext`
//! (`runAsUser`, `fsGroup`, ...) is not applied (every container runs as the configured user);
//! deletion kills at once (a kubelet sends SIGTERM first and waits the grace period);
//! `ttlSecondsAfterFinished` (a finished Job stays until deleted); scheduling fields; `watch`.
//! Mount-point directories missing on the machine (a `mountPath`, an image path) are created on
//! the real filesystem and left there, like the lab's own mount points.

use std::collections::{BTreeMap, BTreeSet};
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use crate::kube_api::{is_dns_name, rfc3339};
use crate::lab::{Lab, LabError, LabHost};

/// What `names.SimpleNameGenerator` appends to a `generateName` (5 of these).
const NAME_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// A generated name's prefix is cut to 63 - 5 characters.
const MAX_PREFIX: usize = 58;
/// The PATH a container runtime sets when the image sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How often a supervisor looks at its container (exit, deadline, kill request).
const POLL: Duration = Duration::from_millis(50);
/// How long after its creation the garbage-collector stand-in deletes a Job none of whose owners
/// exists ("within a moment": the real collector acts on the informer event, typically well
/// under a second).
pub const GC_DELAY: Duration = Duration::from_millis(500);
/// The labels kube-apiserver puts on a Job's pods, the only keys a pod list selector may name.
const JOB_LABEL_KEYS: [&str; 4] = [
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
    "controller-uid",
    "job-name",
];
/// kube-apiserver's `DuplicateOwnerReferencesWarningFormat` (handlers/create.go), `%v` = the uids.
const DUPLICATE_OWNERS_WARNING: &str = ".metadata.ownerReferences contains duplicate entries; \
     API server dedups owner references in 1.20+, and may reject such requests as early as 1.24; \
     please fix your requests; duplicate UID(s) observed: ";
/// The sentence kube-apiserver warns with on a `batch/v1` Job delete without a policy.
const ORPHAN_WARNING: &str = "299 - \"child pods are preserved by default when jobs are deleted; \
     set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress \
     this warning\"";

#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the Job stand-in {0}")]
    Config(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> JobsError {
    let what = what.into();
    move |source| JobsError::Io { what, source }
}

/// What the runner plays the cluster with.
#[derive(Debug, Clone)]
pub struct JobRunnerConfig {
    /// The lab host the pods run on (their `nodeName`; the network namespace they run in).
    pub node: String,
    /// PersistentVolumeClaim name -> the host directory that is its volume (e.g. the lab's
    /// pgBackRest repository).
    pub claims: BTreeMap<String, PathBuf>,
    /// The user every container runs as (`postgres` by default). The real images run as their
    /// own uid (Crunchy/Percona PostgreSQL images: uid 26 "postgres"); here it is this machine's
    /// user of that name, whatever its uid.
    pub run_as: String,
    /// (path inside the image, host path) bind mounts, read-only, that play the image's file
    /// layout, e.g. `/usr/pgsql-15/bin` -> `/usr/lib/postgresql/15/bin`.
    pub image_paths: Vec<(PathBuf, PathBuf)>,
    /// The objects that exist, for the garbage-collector stand-in: uid -> (kind, name), e.g. the
    /// recorded CronJob a Job is made from. A Job whose ownerReferences all name something not
    /// here (or here with another kind or name) is deleted without running; see the module docs.
    pub owners: BTreeMap<String, (String, String)>,
}

impl JobRunnerConfig {
    /// Pods on `node`, no claims, no image paths, no owners, running as `postgres`.
    pub fn new(node: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            claims: BTreeMap::new(),
            run_as: "postgres".into(),
            image_paths: Vec::new(),
            owners: BTreeMap::new(),
        }
    }
}

/// One Job `DELETE` the runner answered (200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDeletion {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// As asked (query or DeleteOptions body); `None` = the `batch/v1` default, Orphan.
    pub propagation_policy: Option<String>,
    /// Whether a running container was killed.
    pub killed: bool,
}

/// One Job the garbage-collector stand-in deleted because none of its owners exists.
#[derive(Debug, Clone, PartialEq)]
pub struct JobCollection {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Its `ownerReferences` as stored (all dangling).
    pub owner_references: Vec<Value>,
}

/// The running stand-in. Dropping it stops the server and kills every container it started.
pub struct JobRunner {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug, Clone)]
struct RunUser {
    uid: u32,
    gid: u32,
}

struct Shared {
    node: LabHost,
    user: RunUser,
    claims: BTreeMap<String, PathBuf>,
    image_paths: Vec<(PathBuf, PathBuf)>,
    owners: BTreeMap<String, (String, String)>,
    dir: PathBuf,
    inner: Mutex<Inner>,
}

/// A Job as stored (no status) and its pod (none for a Job the collector is about to delete).
type StoredJob = (Value, Option<Arc<PodRun>>);

#[derive(Default)]
struct Inner {
    /// (namespace, name) -> the Job.
    jobs: BTreeMap<(String, String), StoredJob>,
    /// Pods that exist (an orphaned pod outlives its Job).
    pods: Vec<Arc<PodRun>>,
    /// Every pod ever started (killed on drop).
    all: Vec<Arc<PodRun>>,
    created: Vec<Value>,
    deleted: Vec<JobDeletion>,
    /// What the collector will do, and when.
    pending_gc: Vec<PendingGc>,
    collected: Vec<JobCollection>,
    supervisors: Vec<std::thread::JoinHandle<()>>,
    resource_version: u64,
}

/// A Job with dangling ownerReferences, as the collector will find it.
struct PendingGc {
    namespace: String,
    name: String,
    uid: String,
    due: Instant,
    /// The uids of its dangling owners; all of its owners when it is to be deleted.
    dangling: BTreeSet<String>,
    delete: bool,
}

impl Inner {
    fn next_rv(&mut self) -> String {
        self.resource_version += 1;
        (1000 + self.resource_version).to_string()
    }

    /// The garbage-collector stand-in: what is due is done (see the module docs).
    fn collect_garbage(&mut self) {
        let now = Instant::now();
        let (due, later): (Vec<PendingGc>, Vec<PendingGc>) = std::mem::take(&mut self.pending_gc)
            .into_iter()
            .partition(|g| g.due <= now);
        self.pending_gc = later;
        for g in due {
            let key = (g.namespace.clone(), g.name.clone());
            // Deleted by the client meanwhile, maybe created again under the same name: that
            // is another object.
            let same = self
                .jobs
                .get(&key)
                .is_some_and(|(job, _)| job["metadata"]["uid"] == g.uid.as_str());
            if !same {
                continue;
            }
            if g.delete {
                let Some((job, _)) = self.jobs.remove(&key) else {
                    continue;
                };
                self.collected.push(JobCollection {
                    namespace: g.namespace,
                    name: g.name,
                    uid: g.uid,
                    owner_references: job["metadata"]["ownerReferences"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default(),
                });
                continue;
            }
            let rv = self.next_rv();
            if let Some((job, _)) = self.jobs.get_mut(&key) {
                let m = &mut job["metadata"];
                if let Some(refs) = m["ownerReferences"].as_array_mut() {
                    refs.retain(|r| !r["uid"].as_str().is_some_and(|u| g.dangling.contains(u)));
                }
                m["resourceVersion"] = json!(rv);
            }
        }
    }
}

/// The runner's state, with what the collector has due done first.
fn state(sh: &Shared) -> MutexGuard<'_, Inner> {
    let mut inner = lock(&sh.inner);
    inner.collect_garbage();
    inner
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How a container ended.
#[derive(Debug, Clone)]
enum End {
    Exited(i32),
    /// Could not be started (mounts, working dir): containerd's StartError, exit code 128.
    StartError(String),
    JobDeadline,
    PodDeadline,
    Deleted,
}

#[derive(Debug, Clone)]
enum RunState {
    Running {
        started: SystemTime,
    },
    Done {
        started: SystemTime,
        finished: SystemTime,
        end: End,
    },
}

struct PodRun {
    namespace: String,
    name: String,
    uid: String,
    job_name: String,
    job_uid: String,
    container: String,
    image: String,
    labels: Value,
    spec: Value,
    created: SystemTime,
    resource_version: String,
    log: PathBuf,
    /// Set when the Job was deleted with the Orphan policy (no owner any more).
    orphaned: AtomicBool,
    /// Why the supervisor is asked to kill the container (set before it does).
    stop: Mutex<Option<End>>,
    state: Mutex<RunState>,
}

impl PodRun {
    fn state(&self) -> RunState {
        lock(&self.state).clone()
    }
    fn done(&self) -> bool {
        matches!(self.state(), RunState::Done { .. })
    }
    fn ask_stop(&self, why: End) {
        let mut stop = lock(&self.stop);
        if stop.is_none() {
            *stop = Some(why);
        }
    }
}

impl JobRunner {
    /// Start the runner on the lab's gateway address (an ephemeral port), with pods on
    /// `config.node`. Its files (accepted Job bodies, pod logs, emptyDir volumes) live in
    /// `lab.dir()/jobs-<port>`.
    pub fn start(lab: &Lab, config: JobRunnerConfig) -> Result<Self, JobsError> {
        let node = lab.host(&config.node)?.clone();
        let user = lookup_user(&config.run_as)?;
        for (claim, dir) in &config.claims {
            if !is_dns_name(claim) || !dir.is_dir() {
                return Err(JobsError::Config(format!(
                    "claim {claim:?}: needs a DNS-1123 name and an existing directory, not {}",
                    dir.display()
                )));
            }
        }
        for (inside, host) in &config.image_paths {
            if !inside.is_absolute()
                || inside == Path::new("/")
                || !safe_path(&inside.to_string_lossy())
                || !host.exists()
            {
                return Err(JobsError::Config(format!(
                    "image path {} -> {}: needs an absolute path other than / and an existing host path",
                    inside.display(),
                    host.display()
                )));
            }
        }
        let listener = std::net::TcpListener::bind((lab.gateway(), 0))
            .map_err(io(format!("bind {}:0", lab.gateway())))?;
        listener
            .set_nonblocking(true)
            .map_err(io("set the listener non-blocking"))?;
        let addr = listener
            .local_addr()
            .map_err(io("read the listen address"))?;
        let dir = lab.dir().join(format!("jobs-{}", addr.port()));
        for sub in ["created", "logs", "pods"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(io(format!("create {}", dir.join(sub).display())))?;
        }
        let shared = Arc::new(Shared {
            node,
            user,
            claims: config.claims,
            image_paths: config.image_paths,
            owners: config.owners,
            dir,
            inner: Mutex::new(Inner::default()),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(io("build the Job stand-in's runtime"))?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(shared.clone());
        let server = std::thread::Builder::new()
            .name("job-standin".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "the Job stand-in cannot listen");
                            return;
                        }
                    };
                    tokio::select! {
                        r = axum::serve(listener, app).into_future() => {
                            if let Err(e) = r {
                                tracing::error!(error = %e, "the Job stand-in stopped");
                            }
                        }
                        _ = rx => {}
                    }
                });
                // Open connections (a followed log) are dropped, not waited for.
                runtime.shutdown_background();
            })
            .map_err(io("spawn the Job stand-in thread"))?;
        Ok(Self {
            addr,
            shared,
            shutdown: Some(tx),
            server: Some(server),
        })
    }

    /// Where it listens (the lab's gateway address): give it to `RecordedApi::start_full`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its directory: `created/` (accepted Job bodies), `logs/` (pod logs), `pods/` (emptyDirs).
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Every Job body accepted with 201, as the client sent it, in order (collected ones too).
    pub fn created_jobs(&self) -> Vec<Value> {
        state(&self.shared).created.clone()
    }

    /// Every Job `DELETE` answered with 200, in order (not the collector's deletions).
    pub fn deleted_jobs(&self) -> Vec<JobDeletion> {
        state(&self.shared).deleted.clone()
    }

    /// Every Job the garbage-collector stand-in deleted (none of its owners exists), in order.
    pub fn collected_jobs(&self) -> Vec<JobCollection> {
        state(&self.shared).collected.clone()
    }
}

impl Drop for JobRunner {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.server.take() {
            let _ = t.join();
        }
        let (all, supervisors) = {
            let mut inner = lock(&self.shared.inner);
            (inner.all.clone(), std::mem::take(&mut inner.supervisors))
        };
        for p in &all {
            p.ask_stop(End::Deleted);
        }
        for s in supervisors {
            let _ = s.join();
        }
    }
}

/// uid and gid of `name` from /etc/passwd (the users `setpriv` will find).
fn lookup_user(name: &str) -> Result<RunUser, JobsError> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(io("read /etc/passwd"))?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<&str>>())
        .find(|f| f.len() >= 4 && f[0] == name)
        .and_then(|f| {
            Some(RunUser {
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
            })
        })
        .ok_or_else(|| JobsError::Config(format!("run_as: no user {name:?} in /etc/passwd")))
}

// ---------------------------------------------------------------------------------------------
// HTTP

type St = State<Arc<Shared>>;
type Params = Query<Vec<(String, String)>>;

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/apis/batch/v1/namespaces/:ns/jobs",
            get(list_jobs).post(create_job).fallback(not_allowed),
        )
        .route(
            "/apis/batch/v1/namespaces/:ns/jobs/:name",
            get(get_job).delete(delete_job).fallback(not_allowed),
        )
        .route(
            "/api/v1/namespaces/:ns/pods",
            get(list_pods).fallback(not_allowed),
        )
        .route(
            "/api/v1/namespaces/:ns/pods/:pod/log",
            get(pod_log).fallback(not_allowed),
        )
        .fallback(not_found)
        .with_state(shared)
}

fn json_answer(code: StatusCode, v: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// A Kubernetes `Status` failure.
fn failure(code: u16, reason: &str, message: &str, details: Option<Value>) -> Response {
    let mut s = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    if let Some(d) = details {
        s["details"] = d;
    }
    json_answer(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &s,
    )
}

fn bad_request(message: &str) -> Response {
    failure(400, "BadRequest", message, None)
}

fn job_not_found(name: &str) -> Response {
    failure(
        404,
        "NotFound",
        &format!("jobs.batch {name:?} not found"),
        Some(json!({"name": name, "group": "batch", "kind": "jobs"})),
    )
}

fn pod_not_found(name: &str) -> Response {
    failure(
        404,
        "NotFound",
        &format!("pods {name:?} not found"),
        Some(json!({"name": name, "kind": "pods"})),
    )
}

async fn not_found() -> Response {
    failure(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

async fn not_allowed() -> Response {
    failure(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        Some(json!({})),
    )
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Query arguments the stand-in would have to play to answer like the API server: refused.
fn refuse_unplayed(q: &[(String, String)], names: &[&str]) -> Option<Response> {
    q.iter()
        .find(|(k, v)| names.contains(&k.as_str()) && !v.is_empty() && v != "false")
        .map(|(k, _)| {
            bad_request(&format!(
                "the Job stand-in does not play {k}= here (poll GET instead)"
            ))
        })
}

async fn create_job(
    State(sh): St,
    UrlPath(ns): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype.starts_with("application/json") {
        return failure(
            415,
            "UnsupportedMediaType",
            &format!(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json (the Job stand-in plays JSON only), not {ctype:?}"
            ),
            None,
        );
    }
    let posted: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return bad_request("the body is not a JSON object"),
        Err(e) => return bad_request(&format!("the body is not JSON: {e}")),
    };
    if !is_dns_name(&ns) || ns.contains('.') || ns.len() > 63 {
        return failure(
            404,
            "NotFound",
            &format!("namespaces {ns:?} not found"),
            Some(json!({"name": ns, "kind": "namespaces"})),
        );
    }
    if posted["apiVersion"] != "batch/v1" {
        return bad_request(&format!(
            "the API version in the data ({}) does not match the expected API version (batch/v1)",
            posted["apiVersion"]
        ));
    }
    if posted["kind"] != "Job" {
        return bad_request(&format!(
            "the kind in the data ({}) does not match the expected kind (Job)",
            posted["kind"]
        ));
    }
    let meta = &posted["metadata"];
    let (owners, duplicates) = match decode_owner_refs(meta) {
        Ok(refs) => dedup_owner_refs(refs),
        Err(message) => return bad_request(&message),
    };
    if let Some(n) = meta.get("namespace").and_then(Value::as_str) {
        if !n.is_empty() && n != ns {
            return bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            );
        }
    }
    if meta
        .get("resourceVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| !v.is_empty())
    {
        return failure(
            500,
            "InternalError",
            "Internal error occurred: resourceVersion should not be set on objects to be created",
            None,
        );
    }
    let given = meta.get("name").and_then(Value::as_str).unwrap_or("");
    let prefix = meta
        .get("generateName")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut inner = state(&sh);
    let name = if !given.is_empty() {
        given.to_string()
    } else if !prefix.is_empty() {
        let p: String = prefix.chars().take(MAX_PREFIX).collect();
        format!("{p}{}", random_suffix())
    } else {
        return invalid(
            "",
            vec![Cause::required(
                "metadata.name",
                "name or generateName is required",
            )],
        );
    };
    if !is_dns_name(&name) || name.len() > 63 {
        return invalid(
            &name,
            vec![Cause::invalid(
                "metadata.name",
                &json!(name),
                "a lowercase RFC 1123 subdomain of at most 63 characters (a Job's name is a label value)",
            )],
        );
    }
    if inner.jobs.contains_key(&(ns.clone(), name.clone())) {
        return failure(
            409,
            "AlreadyExists",
            &format!("jobs.batch {name:?} already exists"),
            Some(json!({"name": name, "group": "batch", "kind": "jobs"})),
        );
    }
    // Metadata causes first, then the spec's, in one answer as kube-apiserver gives them.
    let mut causes = validate_owner_refs(&owners);
    let plan = match plan_job(&sh, &posted) {
        Ok(p) => Some(p),
        Err(c) => {
            causes.extend(c);
            None
        }
    };
    let Some(plan) = plan.filter(|_| causes.is_empty()) else {
        return invalid(&name, causes);
    };
    // What the collector will find: owners that do not exist (uid, or kind/name for that uid).
    let dangles = |r: &&OwnerRef| {
        sh.owners
            .get(&r.uid)
            .is_none_or(|(kind, n)| *kind != r.kind || *n != r.name)
    };
    let collect = !owners.is_empty() && owners.iter().all(|r| dangles(&r));
    // Its patch removes by uid (the merge key), as here.
    let dangling: BTreeSet<String> = owners
        .iter()
        .filter(dangles)
        .map(|r| r.uid.clone())
        .collect();

    // Accepted: what kube-apiserver stores (uid, timestamps, generated selector and labels,
    // defaults), then the pod.
    let uid = uuid4();
    let now = SystemTime::now();
    let mut job = posted.clone();
    let rv = inner.next_rv();
    {
        let m = &mut job["metadata"];
        m["name"] = json!(name);
        m["namespace"] = json!(ns);
        m["uid"] = json!(uid);
        m["resourceVersion"] = json!(rv);
        m["generation"] = json!(1);
        m["creationTimestamp"] = json!(rfc3339(now));
        // Stored as decoded: deduplicated, unknown fields dropped, an empty list omitted.
        if let Some(o) = m.as_object_mut() {
            o.remove("ownerReferences");
        }
        if !owners.is_empty() {
            m["ownerReferences"] = Value::Array(owners.iter().map(OwnerRef::to_json).collect());
        }
    }
    let job_labels = [
        ("batch.kubernetes.io/controller-uid", uid.as_str()),
        ("batch.kubernetes.io/job-name", name.as_str()),
        ("controller-uid", uid.as_str()),
        ("job-name", name.as_str()),
    ];
    {
        let t = &mut job["spec"]["template"];
        if !t["metadata"].is_object() {
            t["metadata"] = json!({});
        }
        if !t["metadata"]["labels"].is_object() {
            t["metadata"]["labels"] = json!({});
        }
        for (k, v) in job_labels {
            t["metadata"]["labels"][k] = json!(v);
        }
    }
    let template_labels = job["spec"]["template"]["metadata"]["labels"].clone();
    if job["metadata"]["labels"]
        .as_object()
        .is_none_or(Map::is_empty)
    {
        job["metadata"]["labels"] = template_labels.clone();
    }
    {
        let s = &mut job["spec"];
        s["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
        for (k, v) in [
            ("parallelism", json!(1)),
            ("completions", json!(1)),
            ("completionMode", json!("NonIndexed")),
            ("suspend", json!(false)),
            ("podReplacementPolicy", json!("TerminatingOrFailed")),
        ] {
            if s.get(k).is_none() {
                s[k] = v;
            }
        }
    }
    if let Some(o) = job.as_object_mut() {
        o.remove("status");
    }

    // A Job the collector deletes gets no pod: see the module docs.
    let pod = (!collect).then(|| {
        let pod_prefix: String = format!("{name}-").chars().take(MAX_PREFIX).collect();
        let pod_name = format!("{pod_prefix}{}", random_suffix());
        let mut pod_spec = job["spec"]["template"]["spec"].clone();
        pod_spec["nodeName"] = json!(sh.node.name);
        let pod_rv = inner.next_rv();
        Arc::new(PodRun {
            namespace: ns.clone(),
            name: pod_name.clone(),
            uid: uuid4(),
            job_name: name.clone(),
            job_uid: uid.clone(),
            container: plan.container.clone(),
            image: plan.image.clone(),
            labels: template_labels,
            spec: pod_spec,
            created: now,
            resource_version: pod_rv,
            log: sh.dir.join("logs").join(format!("{ns}_{pod_name}.log")),
            orphaned: AtomicBool::new(false),
            stop: Mutex::new(None),
            state: Mutex::new(RunState::Running { started: now }),
        })
    });
    let seq = inner.created.len() + 1;
    let record = sh
        .dir
        .join("created")
        .join(format!("{seq:03}-{ns}-{name}.json"));
    if let Err(e) = std::fs::write(
        &record,
        serde_json::to_vec_pretty(&posted).unwrap_or_default(),
    ) {
        return failure(
            500,
            "InternalError",
            &format!("the Job stand-in could not keep the body: {e}"),
            None,
        );
    }
    inner.created.push(posted);
    if let Some(pod) = &pod {
        if let Some(h) = start_pod(&sh, pod, &plan) {
            inner.supervisors.push(h);
        }
        inner.pods.push(pod.clone());
        inner.all.push(pod.clone());
    }
    if !dangling.is_empty() {
        inner.pending_gc.push(PendingGc {
            namespace: ns.clone(),
            name: name.clone(),
            uid: uid.clone(),
            due: Instant::now() + GC_DELAY,
            dangling,
            delete: collect,
        });
    }
    inner
        .jobs
        .insert((ns.clone(), name.clone()), (job.clone(), pod));
    drop(inner);
    job["status"] = json!({});
    let mut r = json_answer(StatusCode::CREATED, &job);
    if !duplicates.is_empty() {
        let text = format!("{DUPLICATE_OWNERS_WARNING}{}", duplicates.join(", "));
        if let Ok(v) = header::HeaderValue::from_str(&format!("299 - {text:?}")) {
            r.headers_mut().insert(header::WARNING, v);
        }
    }
    r
}

async fn get_job(State(sh): St, UrlPath((ns, name)): UrlPath<(String, String)>) -> Response {
    let inner = state(&sh);
    match inner.jobs.get(&(ns, name.clone())) {
        Some((job, pod)) => json_answer(StatusCode::OK, &with_status(job, pod.as_deref())),
        None => job_not_found(&name),
    }
}

async fn list_jobs(State(sh): St, UrlPath(ns): UrlPath<String>, Query(q): Params) -> Response {
    if let Some(r) = refuse_unplayed(&q, &["labelSelector", "fieldSelector", "watch"]) {
        return r;
    }
    let inner = state(&sh);
    let items: Vec<Value> = inner
        .jobs
        .iter()
        .filter(|((n, _), _)| *n == ns)
        .map(|(_, (job, pod))| {
            let mut j = with_status(job, pod.as_deref());
            if let Some(o) = j.as_object_mut() {
                // List items carry no kind/apiVersion.
                o.remove("kind");
                o.remove("apiVersion");
            }
            j
        })
        .collect();
    json_answer(
        StatusCode::OK,
        &json!({"kind": "JobList", "apiVersion": "batch/v1",
                "metadata": {"resourceVersion": (1000 + inner.resource_version).to_string()},
                "items": items}),
    )
}

async fn delete_job(
    State(sh): St,
    UrlPath((ns, name)): UrlPath<(String, String)>,
    Query(q): Params,
    body: Bytes,
) -> Response {
    // DeleteOptions in the body win over the query, as kube-apiserver decodes them.
    let mut policy = param(&q, "propagationPolicy").map(str::to_string);
    if !body.is_empty() {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => {
                if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
                    policy = Some(p.to_string());
                }
            }
            Err(e) => return bad_request(&format!("the DeleteOptions body is not JSON: {e}")),
        }
    }
    if let Some(p) = &policy {
        if !["Orphan", "Background", "Foreground"].contains(&p.as_str()) {
            return failure(
                422,
                "Invalid",
                &format!(
                    "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported \
                     value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                ),
                None,
            );
        }
    }
    let (killed, job, pod) = {
        let mut inner = state(&sh);
        let Some((job, pod)) = inner.jobs.remove(&(ns.clone(), name.clone())) else {
            return job_not_found(&name);
        };
        let kill = matches!(policy.as_deref(), Some("Background" | "Foreground"));
        let running = pod.as_ref().is_some_and(|p| !p.done());
        if let Some(p) = &pod {
            if kill {
                p.ask_stop(End::Deleted);
                inner.pods.retain(|q| !Arc::ptr_eq(q, p));
            } else {
                p.orphaned.store(true, Ordering::SeqCst);
            }
        }
        inner.deleted.push(JobDeletion {
            namespace: ns.clone(),
            name: name.clone(),
            uid: job["metadata"]["uid"].as_str().unwrap_or("").to_string(),
            propagation_policy: policy.clone(),
            killed: kill && running,
        });
        (pod.clone().filter(|_| kill), job, pod)
    };
    if let Some(p) = killed {
        // The supervisor kills within POLL; answer once it has (a Background delete on a
        // real cluster answers before the pods are gone: callers must not count on either).
        let deadline = Instant::now() + Duration::from_secs(5);
        while !p.done() && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
    }
    match policy.as_deref() {
        Some("Background") => json_answer(
            StatusCode::OK,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "group": "batch", "kind": "jobs",
                                "uid": job["metadata"]["uid"]}}),
        ),
        other => {
            // Orphan (also the batch/v1 default) and Foreground go through a finalizer: the
            // answer is the Job marked for deletion.
            let mut j = with_status(&job, pod.as_deref());
            j["metadata"]["deletionTimestamp"] = json!(rfc3339(SystemTime::now()));
            j["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            j["metadata"]["finalizers"] = json!([if other == Some("Foreground") {
                "foregroundDeletion"
            } else {
                "orphan"
            }]);
            let mut r = json_answer(StatusCode::OK, &j);
            if other.is_none() {
                if let Ok(v) = header::HeaderValue::from_str(ORPHAN_WARNING) {
                    r.headers_mut().insert(header::WARNING, v);
                }
            }
            r
        }
    }
}

/// Equality requirements (`KEY=VALUE` / `KEY==VALUE`, ANDed with `,`) on the labels a Job's pod
/// gets ([`JOB_LABEL_KEYS`]), nothing else.
fn job_selector(sel: &str) -> Option<Vec<(&str, &str)>> {
    sel.split(',')
        .map(|req| {
            let (key, rest) = req.split_once('=')?;
            let value = rest.strip_prefix('=').unwrap_or(rest);
            let plain = !value.is_empty() && !value.contains(['=', '!', ' ']);
            (JOB_LABEL_KEYS.contains(&key) && plain).then_some((key, value))
        })
        .collect()
}

async fn list_pods(State(sh): St, UrlPath(ns): UrlPath<String>, Query(q): Params) -> Response {
    let Some(reqs) = param(&q, "labelSelector").and_then(job_selector) else {
        return bad_request(
            "the Job stand-in answers pod lists for labelSelector=job-name=NAME or \
             controller-uid=UID (also batch.kubernetes.io/...) only",
        );
    };
    if let Some(r) = refuse_unplayed(&q, &["fieldSelector", "watch"]) {
        return r;
    }
    let inner = state(&sh);
    let items: Vec<Value> = inner
        .pods
        .iter()
        .filter(|p| p.namespace == ns && reqs.iter().all(|(k, v)| p.labels[*k] == *v))
        .map(|p| {
            let mut v = pod_json(p, &sh.node);
            if let Some(o) = v.as_object_mut() {
                o.remove("kind");
                o.remove("apiVersion");
            }
            v
        })
        .collect();
    json_answer(
        StatusCode::OK,
        &json!({"kind": "PodList", "apiVersion": "v1",
                "metadata": {"resourceVersion": (1000 + inner.resource_version).to_string()},
                "items": items}),
    )
}

async fn pod_log(
    State(sh): St,
    UrlPath((ns, name)): UrlPath<(String, String)>,
    Query(q): Params,
) -> Response {
    let pod = {
        let inner = state(&sh);
        inner
            .pods
            .iter()
            .find(|p| p.namespace == ns && p.name == name)
            .cloned()
    };
    let Some(pod) = pod else {
        return pod_not_found(&name);
    };
    if let Some(c) = param(&q, "container") {
        if c != pod.container {
            return bad_request(&format!("container {c} is not valid for pod {name}"));
        }
    }
    if param(&q, "previous") == Some("true") {
        return bad_request(&format!(
            "previous terminated container {:?} in pod {name:?} not found",
            pod.container
        ));
    }
    if let Some(r) = refuse_unplayed(
        &q,
        &[
            "timestamps",
            "sinceSeconds",
            "sinceTime",
            "limitBytes",
            "stream",
        ],
    ) {
        return r;
    }
    let tail = match param(&q, "tailLines").map(str::parse::<usize>) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => return bad_request("tailLines: not a non-negative integer"),
    };
    let start = match tail {
        None => 0,
        Some(n) => tail_offset(&std::fs::read(&pod.log).unwrap_or_default(), n),
    };
    let text_plain = [(header::CONTENT_TYPE, "text/plain")];
    if param(&q, "follow") != Some("true") {
        let all = std::fs::read(&pod.log).unwrap_or_default();
        let from = start.min(all.len());
        return (StatusCode::OK, text_plain, all[from..].to_vec()).into_response();
    }
    // Follow: what is there, then what comes, until the container has ended.
    let stream =
        futures::stream::unfold((pod, start as u64, false), |(pod, off, end)| async move {
            if end {
                return None;
            }
            loop {
                let done = pod.done();
                match read_from(&pod.log, off) {
                    Ok(chunk) if !chunk.is_empty() => {
                        let next = off + chunk.len() as u64;
                        return Some((Ok(Bytes::from(chunk)), (pod, next, false)));
                    }
                    Ok(_) if done => return None,
                    Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    Err(e) => return Some((Err(e), (pod, off, true))),
                }
            }
        });
    (StatusCode::OK, text_plain, Body::from_stream(stream)).into_response()
}

fn read_from(path: &Path, off: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(off))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(buf)
}

/// Where the last `n` lines of `log` start.
fn tail_offset(log: &[u8], n: usize) -> usize {
    if n == 0 {
        return log.len();
    }
    let body = log.strip_suffix(b"\n").unwrap_or(log);
    body.iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(n - 1)
        .map_or(0, |(i, _)| i + 1)
}

// ---------------------------------------------------------------------------------------------
// Objects

fn cond(kind: &str, reason: &str, message: &str, at: SystemTime) -> Value {
    json!({"type": kind, "status": "True", "reason": reason, "message": message,
           "lastProbeTime": rfc3339(at), "lastTransitionTime": rfc3339(at)})
}

/// The stored Job with the `status` the Job controller would have written for its one pod (none
/// without a pod: the collector deletes that Job).
fn with_status(job: &Value, pod: Option<&PodRun>) -> Value {
    let mut j = job.clone();
    let Some(pod) = pod else {
        j["status"] = json!({});
        return j;
    };
    j["status"] = match pod.state() {
        RunState::Running { started } => json!({
            "active": 1, "ready": 1, "terminating": 0, "startTime": rfc3339(started),
            "uncountedTerminatedPods": {},
        }),
        RunState::Done {
            started,
            finished,
            end: End::Exited(0),
        } => json!({
            "succeeded": 1, "ready": 0, "terminating": 0, "startTime": rfc3339(started),
            "completionTime": rfc3339(finished), "uncountedTerminatedPods": {},
            "conditions": [
                cond("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods", finished),
                cond("Complete", "CompletionsReached", "Reached expected number of succeeded pods", finished),
            ],
        }),
        RunState::Done {
            started,
            finished,
            end,
        } => {
            let (reason, message) = match end {
                End::JobDeadline => (
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                ),
                _ => (
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                ),
            };
            json!({
                "failed": 1, "ready": 0, "terminating": 0, "startTime": rfc3339(started),
                "uncountedTerminatedPods": {},
                "conditions": [
                    cond("FailureTarget", reason, message, finished),
                    cond("Failed", reason, message, finished),
                ],
            })
        }
    };
    j
}

fn pod_json(p: &PodRun, node: &LabHost) -> Value {
    let state = p.state();
    let (phase, ready, started) = match &state {
        RunState::Running { started } => ("Running", true, *started),
        RunState::Done {
            started,
            end: End::Exited(0),
            ..
        } => ("Succeeded", false, *started),
        RunState::Done { started, .. } => ("Failed", false, *started),
    };
    let container_state = match &state {
        RunState::Running { started } => json!({"running": {"startedAt": rfc3339(*started)}}),
        RunState::Done {
            started,
            finished,
            end,
        } => {
            let (code, reason, message) = match end {
                End::Exited(0) => (0, "Completed", None),
                End::Exited(c) => (*c, "Error", None),
                End::StartError(m) => (128, "StartError", Some(m.clone())),
                End::JobDeadline | End::PodDeadline | End::Deleted => (137, "Error", None),
            };
            let mut t = json!({"exitCode": code, "reason": reason,
                               "startedAt": rfc3339(*started), "finishedAt": rfc3339(*finished)});
            if let Some(m) = message {
                t["message"] = json!(m);
            }
            json!({"terminated": t})
        }
    };
    let ready_s = if ready { "True" } else { "False" };
    let mut conditions = vec![
        json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": rfc3339(p.created)}),
        json!({"type": "Initialized", "status": "True", "lastTransitionTime": rfc3339(started)}),
        json!({"type": "ContainersReady", "status": ready_s, "lastTransitionTime": rfc3339(started)}),
        json!({"type": "Ready", "status": ready_s, "lastTransitionTime": rfc3339(started)}),
    ];
    if !ready {
        for c in conditions.iter_mut().skip(2) {
            c["reason"] = json!("PodCompleted");
        }
    }
    let mut status = json!({
        "phase": phase,
        "hostIP": node.ip.to_string(),
        "hostIPs": [{"ip": node.ip.to_string()}],
        "startTime": rfc3339(started),
        "conditions": conditions,
        "containerStatuses": [{
            "name": p.container, "image": p.image, "imageID": "", "ready": ready,
            "restartCount": 0, "started": ready, "state": container_state,
        }],
    });
    if let RunState::Done {
        end: End::PodDeadline,
        ..
    } = state
    {
        status["reason"] = json!("DeadlineExceeded");
        status["message"] = json!("Pod was active on the node longer than the specified deadline");
    }
    let mut meta = json!({
        "name": p.name,
        "generateName": p.name.get(..p.name.len().saturating_sub(5)).unwrap_or(""),
        "namespace": p.namespace,
        "uid": p.uid,
        "resourceVersion": p.resource_version,
        "creationTimestamp": rfc3339(p.created),
        "labels": p.labels,
    });
    if !p.orphaned.load(Ordering::SeqCst) {
        meta["ownerReferences"] = json!([{
            "apiVersion": "batch/v1", "kind": "Job", "name": p.job_name, "uid": p.job_uid,
            "controller": true, "blockOwnerDeletion": true,
        }]);
        if phase == "Running" {
            meta["finalizers"] = json!(["batch.kubernetes.io/job-tracking"]);
        }
    }
    json!({"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": p.spec, "status": status})
}

fn random_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| char::from(NAME_CHARS[rng.gen_range(0..NAME_CHARS.len())]))
        .collect()
}

/// A random (version 4) UUID, as kube-apiserver gives every object.
fn uuid4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

// ---------------------------------------------------------------------------------------------
// Validation (the API server's, where the stand-in plays it, and the stand-in's own limits)

/// One `field.Error` of a 422 answer.
struct Cause {
    reason: &'static str,
    field: String,
    body: String,
}

impl Cause {
    fn required(field: &str, detail: &str) -> Self {
        let body = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        Cause {
            reason: "FieldValueRequired",
            field: field.into(),
            body,
        }
    }
    fn invalid(field: &str, value: &Value, detail: &str) -> Self {
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            body: format!("Invalid value: {value}: {detail}"),
        }
    }
    fn forbidden(field: &str, detail: &str) -> Self {
        Cause {
            reason: "FieldValueForbidden",
            field: field.into(),
            body: format!("Forbidden: {detail}"),
        }
    }
    fn not_supported(field: &str, value: &Value, supported: &str) -> Self {
        Cause {
            reason: "FieldValueNotSupported",
            field: field.into(),
            body: format!("Unsupported value: {value}: supported values: {supported}"),
        }
    }
    fn not_found(field: &str, value: &Value) -> Self {
        Cause {
            reason: "FieldValueNotFound",
            field: field.into(),
            body: format!("Not found: {value}"),
        }
    }
    fn duplicate(field: &str, value: &Value) -> Self {
        Cause {
            reason: "FieldValueDuplicate",
            field: field.into(),
            body: format!("Duplicate value: {value}"),
        }
    }
}

/// 422 Invalid, as kube-apiserver words it.
fn invalid(name: &str, causes: Vec<Cause>) -> Response {
    let msgs: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.body))
        .collect();
    let all = if msgs.len() == 1 {
        msgs[0].clone()
    } else {
        format!("[{}]", msgs.join(", "))
    };
    let causes: Vec<Value> = causes
        .iter()
        .map(|c| json!({"reason": c.reason, "message": c.body, "field": c.field}))
        .collect();
    failure(
        422,
        "Invalid",
        &format!("Job.batch {name:?} is invalid: {all}"),
        Some(json!({"name": name, "group": "batch", "kind": "Job", "causes": causes})),
    )
}

const NOT_PLAYED: &str = "not played by the Job stand-in";

/// One `metadata.ownerReferences` entry as kube-apiserver decodes it (unknown fields dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
struct OwnerRef {
    api_version: String,
    kind: String,
    name: String,
    uid: String,
    controller: Option<bool>,
    block_owner_deletion: Option<bool>,
}

impl OwnerRef {
    /// As `metav1.OwnerReference` encodes (the two flags omitted when unset).
    fn to_json(&self) -> Value {
        let mut v = json!({"apiVersion": self.api_version, "kind": self.kind,
                           "name": self.name, "uid": self.uid});
        if let Some(c) = self.controller {
            v["controller"] = json!(c);
        }
        if let Some(b) = self.block_owner_deletion {
            v["blockOwnerDeletion"] = json!(b);
        }
        v
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The decoding step: a JSON type Go cannot unmarshal is 400 with this message, as kube-apiserver
/// answers.
fn decode_owner_refs(meta: &Value) -> Result<Vec<OwnerRef>, String> {
    let cannot = |v: &Value, field: &str, go_type: &str| {
        format!(
            "Job in version \"v1\" cannot be handled as a Job: json: cannot unmarshal {} into \
             Go struct field {field} of type {go_type}",
            json_type(v)
        )
    };
    let list = match meta.get("ownerReferences") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(v) => {
            return Err(cannot(
                v,
                "ObjectMeta.metadata.ownerReferences",
                "[]v1.OwnerReference",
            ))
        }
    };
    let mut out = Vec::new();
    for entry in list {
        let empty = Map::new();
        let o = match entry {
            Value::Object(o) => o,
            // Go decodes a null element as the zero value.
            Value::Null => &empty,
            v => {
                return Err(cannot(
                    v,
                    "ObjectMeta.metadata.ownerReferences",
                    "v1.OwnerReference",
                ))
            }
        };
        let text = |k: &str, go_type: &str| match o.get(k) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(cannot(
                v,
                &format!("OwnerReference.metadata.ownerReferences.{k}"),
                go_type,
            )),
        };
        let flag = |k: &str| match o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(cannot(
                v,
                &format!("OwnerReference.metadata.ownerReferences.{k}"),
                "bool",
            )),
        };
        out.push(OwnerRef {
            api_version: text("apiVersion", "string")?,
            kind: text("kind", "string")?,
            name: text("name", "string")?,
            uid: text("uid", "types.UID")?,
            controller: flag("controller")?,
            block_owner_deletion: flag("blockOwnerDeletion")?,
        });
    }
    Ok(out)
}

/// kube-apiserver's `dedupOwnerReferences`: an entry equal to an earlier one is dropped, its uid
/// reported (in the `Warning`).
fn dedup_owner_refs(refs: Vec<OwnerRef>) -> (Vec<OwnerRef>, Vec<String>) {
    let mut kept: Vec<OwnerRef> = Vec::new();
    let mut duplicates = Vec::new();
    for r in refs {
        if kept.contains(&r) {
            duplicates.push(r.uid);
        } else {
            kept.push(r);
        }
    }
    (kept, duplicates)
}

/// `schema.ParseGroupVersion` as `FromAPIVersionAndKind` uses it: (group, version), both empty
/// when it does not parse.
fn group_version(api_version: &str) -> (&str, &str) {
    if api_version == "/" {
        return ("", "");
    }
    match api_version.matches('/').count() {
        0 => ("", api_version),
        1 => api_version.split_once('/').unwrap_or(("", "")),
        _ => ("", ""),
    }
}

/// `ValidateOwnerReferences` (apimachinery/pkg/api/validation/objectmeta.go), field paths and
/// wording included: the per-entry paths carry no index there.
fn validate_owner_refs(refs: &[OwnerRef]) -> Vec<Cause> {
    const F: &str = "metadata.ownerReferences";
    let mut c = Vec::new();
    let mut first_controller: Option<String> = None;
    for r in refs {
        let (group, version) = group_version(&r.api_version);
        if version.is_empty() {
            c.push(Cause::invalid(
                &format!("{F}.apiVersion"),
                &json!(r.api_version),
                "version must not be empty",
            ));
        }
        for (field, value) in [("kind", &r.kind), ("name", &r.name), ("uid", &r.uid)] {
            if value.is_empty() {
                c.push(Cause::invalid(
                    &format!("{F}.{field}"),
                    &json!(value),
                    "must not be empty",
                ));
            }
        }
        if group.is_empty() && version == "v1" && r.kind == "Event" {
            c.push(Cause::invalid(
                F,
                &r.to_json(),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.controller == Some(true) {
            let current = format!("{}/{}", r.kind, r.name);
            match &first_controller {
                Some(first) => c.push(Cause::invalid(
                    F,
                    &Value::Array(refs.iter().map(OwnerRef::to_json).collect()),
                    &format!(
                        "Only one reference can have Controller set to true. Found \"true\" in \
                         references for {first} and {current}"
                    ),
                )),
                None => first_controller = Some(current),
            }
        }
    }
    c
}

/// What to run for an accepted Job.
#[derive(Debug)]
struct Plan {
    container: String,
    image: String,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    working_dir: String,
    mounts: Vec<PlannedMount>,
    read_only_root: bool,
    no_new_privs: bool,
    drop_all_caps: bool,
    job_deadline: Option<Duration>,
    pod_deadline: Option<Duration>,
}

#[derive(Debug, Clone)]
enum Source {
    Host(PathBuf),
    EmptyDir(String),
}

#[derive(Debug)]
struct PlannedMount {
    source: Source,
    sub_path: Option<String>,
    target: String,
    read_only: bool,
}

/// An absolute or relative path without NUL, `..` or `.` components.
fn safe_path(p: &str) -> bool {
    !p.contains('\0')
        && Path::new(p)
            .components()
            .all(|c| !matches!(c, Component::ParentDir | Component::CurDir))
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn positive_seconds(v: Option<&Value>, field: &str, c: &mut Vec<Cause>) -> Option<Duration> {
    let v = v?;
    match v.as_i64() {
        Some(n) if n > 0 => Some(Duration::from_secs(n.unsigned_abs())),
        _ => {
            c.push(Cause::invalid(field, v, "must be greater than 0"));
            None
        }
    }
}

fn plan_job(sh: &Shared, job: &Value) -> Result<Plan, Vec<Cause>> {
    let mut c: Vec<Cause> = Vec::new();
    let spec = &job["spec"];
    let tspec = &spec["template"]["spec"];
    if !tspec.is_object() {
        return Err(vec![Cause::required("spec.template.spec", "")]);
    }
    match spec.get("backoffLimit") {
        Some(v) if v.as_i64() == Some(0) => {}
        Some(v) if v.as_i64().is_some_and(|n| n < 0) => c.push(Cause::invalid(
            "spec.backoffLimit",
            v,
            "must be greater than or equal to 0",
        )),
        Some(_) => c.push(Cause::forbidden(
            "spec.backoffLimit",
            "the Job stand-in does not retry a failed pod: only backoffLimit 0 is played",
        )),
        None => c.push(Cause::forbidden(
            "spec.backoffLimit",
            "absent means 6 retries, and the Job stand-in does not retry a failed pod: set 0",
        )),
    }
    for f in ["parallelism", "completions"] {
        if let Some(v) = spec.get(f) {
            if v.as_i64() != Some(1) {
                c.push(Cause::forbidden(
                    &format!("spec.{f}"),
                    "the Job stand-in runs exactly one pod",
                ));
            }
        }
    }
    if spec
        .get("completionMode")
        .is_some_and(|m| m != "NonIndexed")
    {
        c.push(Cause::forbidden("spec.completionMode", NOT_PLAYED));
    }
    if spec.get("suspend") == Some(&json!(true)) {
        c.push(Cause::forbidden(
            "spec.suspend",
            "a suspended Job is not played by the Job stand-in",
        ));
    }
    if spec.get("selector").is_some() || spec.get("manualSelector") == Some(&json!(true)) {
        c.push(Cause::forbidden(
            "spec.selector",
            "a manual selector is not played by the Job stand-in (the API server generates it)",
        ));
    }
    for f in [
        "podFailurePolicy",
        "successPolicy",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
        "managedBy",
    ] {
        if spec.get(f).is_some_and(|v| !v.is_null()) {
            c.push(Cause::forbidden(&format!("spec.{f}"), NOT_PLAYED));
        }
    }
    let job_deadline = positive_seconds(
        spec.get("activeDeadlineSeconds"),
        "spec.activeDeadlineSeconds",
        &mut c,
    );
    let tp = "spec.template.spec";
    let pod_deadline = positive_seconds(
        tspec.get("activeDeadlineSeconds"),
        &format!("{tp}.activeDeadlineSeconds"),
        &mut c,
    );
    match tspec.get("restartPolicy").and_then(Value::as_str) {
        Some("Never" | "OnFailure") => {}
        other => c.push(Cause::not_supported(
            &format!("{tp}.restartPolicy"),
            &json!(other.unwrap_or("Always")),
            "\"OnFailure\", \"Never\"",
        )),
    }
    for f in ["initContainers", "ephemeralContainers"] {
        if tspec
            .get(f)
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            c.push(Cause::forbidden(&format!("{tp}.{f}"), NOT_PLAYED));
        }
    }
    if let Some(n) = tspec.get("nodeName").and_then(Value::as_str) {
        if n != sh.node.name {
            c.push(Cause::forbidden(
                &format!("{tp}.nodeName"),
                &format!("the Job stand-in runs pods on {} only", sh.node.name),
            ));
        }
    }

    // Volumes: name -> (source, read-only by the source).
    let mut volumes: BTreeMap<String, (Source, bool)> = BTreeMap::new();
    let empty = Vec::new();
    let vols = match tspec.get("volumes") {
        None | Some(Value::Null) => &empty,
        Some(Value::Array(a)) => a,
        Some(v) => {
            c.push(Cause::invalid(
                &format!("{tp}.volumes"),
                v,
                "must be a list",
            ));
            &empty
        }
    };
    for (i, v) in vols.iter().enumerate() {
        let f = format!("{tp}.volumes[{i}]");
        let Some(name) = v.get("name").and_then(Value::as_str) else {
            c.push(Cause::required(&format!("{f}.name"), ""));
            continue;
        };
        if !is_dns_name(name) || name.contains('.') || name.len() > 63 {
            c.push(Cause::invalid(
                &format!("{f}.name"),
                &json!(name),
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
            ));
            continue;
        }
        if volumes.contains_key(name) {
            c.push(Cause::duplicate(&format!("{f}.name"), &json!(name)));
            continue;
        }
        let kinds: Vec<&String> = v
            .as_object()
            .map(|o| o.keys().filter(|k| *k != "name").collect())
            .unwrap_or_default();
        match kinds.as_slice() {
            [] => c.push(Cause::required(&f, "must specify a volume type")),
            [k] if k.as_str() == "persistentVolumeClaim" => {
                let pvc = &v["persistentVolumeClaim"];
                match pvc.get("claimName").and_then(Value::as_str) {
                    None | Some("") => c.push(Cause::required(
                        &format!("{f}.persistentVolumeClaim.claimName"),
                        "",
                    )),
                    // A real cluster would accept this and leave the pod Pending until the
                    // claim exists; the stand-in says so at once.
                    Some(claim) => match sh.claims.get(claim) {
                        Some(dir) => {
                            let ro = pvc.get("readOnly") == Some(&json!(true));
                            volumes.insert(name.into(), (Source::Host(dir.clone()), ro));
                        }
                        None => c.push(Cause::invalid(
                            &format!("{f}.persistentVolumeClaim.claimName"),
                            &json!(claim),
                            "no such claim in the Job stand-in (a real cluster would leave the \
                             pod Pending until it exists)",
                        )),
                    },
                }
            }
            // `medium: Memory` and `sizeLimit` are not played: a directory on disk.
            [k] if k.as_str() == "emptyDir" => {
                volumes.insert(name.into(), (Source::EmptyDir(name.into()), false));
            }
            [k] => c.push(Cause::forbidden(
                &format!("{f}.{k}"),
                "the Job stand-in plays persistentVolumeClaim and emptyDir volumes only",
            )),
            _ => c.push(Cause::forbidden(
                &f,
                "may not specify more than 1 volume type",
            )),
        }
    }

    let containers = tspec
        .get("containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if containers.len() != 1 {
        c.push(if containers.is_empty() {
            Cause::required(&format!("{tp}.containers"), "")
        } else {
            Cause::forbidden(
                &format!("{tp}.containers"),
                "the Job stand-in runs exactly one container",
            )
        });
        return Err(c);
    }
    let ctr = &containers[0];
    let cp = format!("{tp}.containers[0]");
    let name = ctr.get("name").and_then(Value::as_str).unwrap_or("");
    if !is_dns_name(name) || name.contains('.') || name.len() > 63 {
        c.push(Cause::invalid(
            &format!("{cp}.name"),
            &json!(name),
            "a lowercase RFC 1123 label is required",
        ));
    }
    let image = ctr.get("image").and_then(Value::as_str).unwrap_or("");
    if image.trim().is_empty() {
        c.push(Cause::required(&format!("{cp}.image"), ""));
    }
    let command = match ctr.get("command").map(strings) {
        Some(Some(cmd)) if !cmd.is_empty() => cmd,
        Some(Some(_)) | None => {
            c.push(Cause::required(
                &format!("{cp}.command"),
                "the Job stand-in has no image ENTRYPOINT to fall back on",
            ));
            Vec::new()
        }
        Some(None) => {
            c.push(Cause::invalid(
                &format!("{cp}.command"),
                &ctr["command"],
                "must be a list of strings",
            ));
            Vec::new()
        }
    };
    let args = match ctr.get("args").map(strings) {
        None => Vec::new(),
        Some(Some(a)) => a,
        Some(None) => {
            c.push(Cause::invalid(
                &format!("{cp}.args"),
                &ctr["args"],
                "must be a list of strings",
            ));
            Vec::new()
        }
    };
    let mut env: Vec<(String, String)> = Vec::new();
    if let Some(list) = ctr.get("env").and_then(Value::as_array) {
        for (i, e) in list.iter().enumerate() {
            let f = format!("{cp}.env[{i}]");
            let n = e.get("name").and_then(Value::as_str).unwrap_or("");
            if n.is_empty() || n.contains('=') || !n.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                c.push(Cause::invalid(
                    &format!("{f}.name"),
                    &json!(n),
                    "a valid environment variable name must consist only of printable ASCII \
                     characters other than '='",
                ));
                continue;
            }
            if e.get("valueFrom").is_some_and(|v| !v.is_null()) {
                c.push(Cause::forbidden(
                    &format!("{f}.valueFrom"),
                    "the Job stand-in does not play Secrets, ConfigMaps or field references: \
                     plain values only",
                ));
                continue;
            }
            let value = e.get("value").and_then(Value::as_str).unwrap_or("");
            env.push((n.to_string(), value.to_string()));
        }
    }
    for f in [
        "envFrom",
        "volumeDevices",
        "lifecycle",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
    ] {
        if ctr.get(f).is_some_and(|v| !v.is_null() && v != &json!([])) {
            c.push(Cause::forbidden(&format!("{cp}.{f}"), NOT_PLAYED));
        }
    }
    let working_dir = match ctr.get("workingDir").and_then(Value::as_str) {
        None | Some("") => "/".to_string(),
        Some(w) if w.starts_with('/') && safe_path(w) => w.to_string(),
        Some(w) => {
            c.push(Cause::invalid(
                &format!("{cp}.workingDir"),
                &json!(w),
                "the Job stand-in needs an absolute path",
            ));
            "/".into()
        }
    };
    let mut mounts = Vec::new();
    let mut targets = BTreeSet::new();
    if let Some(list) = ctr.get("volumeMounts").and_then(Value::as_array) {
        for (i, m) in list.iter().enumerate() {
            let f = format!("{cp}.volumeMounts[{i}]");
            let vname = m.get("name").and_then(Value::as_str).unwrap_or("");
            let target = m.get("mountPath").and_then(Value::as_str).unwrap_or("");
            if target.is_empty() {
                c.push(Cause::required(&format!("{f}.mountPath"), ""));
                continue;
            }
            if !target.starts_with('/') || target == "/" || !safe_path(target) {
                c.push(Cause::invalid(
                    &format!("{f}.mountPath"),
                    &json!(target),
                    "the Job stand-in needs an absolute path other than / without '..'",
                ));
                continue;
            }
            if !targets.insert(target.trim_end_matches('/').to_string()) {
                c.push(Cause::invalid(
                    &format!("{f}.mountPath"),
                    &json!(target),
                    "must be unique",
                ));
                continue;
            }
            let Some((source, source_ro)) = volumes.get(vname).cloned() else {
                c.push(Cause::not_found(&format!("{f}.name"), &json!(vname)));
                continue;
            };
            let sub_path = match m.get("subPath").and_then(Value::as_str) {
                None | Some("") => None,
                Some(s) if !s.starts_with('/') && safe_path(s) => Some(s.to_string()),
                Some(s) => {
                    c.push(Cause::invalid(
                        &format!("{f}.subPath"),
                        &json!(s),
                        "must be a relative path without '..'",
                    ));
                    continue;
                }
            };
            if m.get("subPathExpr").is_some_and(|v| v != "") {
                c.push(Cause::forbidden(&format!("{f}.subPathExpr"), NOT_PLAYED));
            }
            if m.get("mountPropagation")
                .and_then(Value::as_str)
                .is_some_and(|p| p != "None")
            {
                c.push(Cause::forbidden(
                    &format!("{f}.mountPropagation"),
                    NOT_PLAYED,
                ));
            }
            let read_only = source_ro || m.get("readOnly") == Some(&json!(true));
            mounts.push(PlannedMount {
                source,
                sub_path,
                target: target.to_string(),
                read_only,
            });
        }
    }
    let sc = &ctr["securityContext"];
    if sc.get("privileged") == Some(&json!(true)) {
        c.push(Cause::forbidden(
            &format!("{cp}.securityContext.privileged"),
            NOT_PLAYED,
        ));
    }
    if sc["capabilities"]["add"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        c.push(Cause::forbidden(
            &format!("{cp}.securityContext.capabilities.add"),
            NOT_PLAYED,
        ));
    }
    let drop_all_caps = sc["capabilities"]["drop"]
        .as_array()
        .is_some_and(|a| a.iter().any(|d| d == "ALL"));
    let has_nul = command
        .iter()
        .chain(&args)
        .chain(env.iter().flat_map(|(k, v)| [k, v]))
        .any(|s| s.contains('\0'));
    if has_nul {
        c.push(Cause::invalid(
            &cp,
            &json!("\\u0000"),
            "the Job stand-in cannot pass NUL characters to a process",
        ));
    }
    if !c.is_empty() {
        return Err(c);
    }

    // The kubelet's expansion: each env value sees the ones defined before it; command and
    // args see them all. (No service environment variables: not played.)
    let mut defined: BTreeMap<String, String> = BTreeMap::new();
    let mut expanded_env = Vec::new();
    for (k, v) in env {
        let value = expand(&v, &|n| defined.get(n).cloned());
        defined.insert(k.clone(), value.clone());
        expanded_env.push((k, value));
    }
    let argv = command
        .iter()
        .chain(&args)
        .map(|s| expand(s, &|n| defined.get(n).cloned()))
        .collect();
    Ok(Plan {
        container: name.to_string(),
        image: image.to_string(),
        argv,
        env: expanded_env,
        working_dir,
        mounts,
        read_only_root: sc.get("readOnlyRootFilesystem") == Some(&json!(true)),
        no_new_privs: sc.get("allowPrivilegeEscalation") == Some(&json!(false)),
        drop_all_caps,
        job_deadline,
        pod_deadline,
    })
}

/// Kubernetes' `$(VAR)` expansion (third_party/forked/golang/expansion): `$(NAME)` becomes the
/// value when NAME is defined and stays as written when not; `$$` is `$`; any other `$` stays.
fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if after.is_empty() {
            out.push('$');
            rest = after;
        } else if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(a) = after.strip_prefix('(') {
            match a.find(')') {
                Some(j) => {
                    let name = &a[..j];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &a[j + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = a;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------------------------
// Running a pod (the kubelet + container runtime part)

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The machine's writable mount points other than /proc, /sys and /dev (those a container gets
/// its own of), from the runner's mount table, which the pod's mount namespace copies.
fn writable_mounts() -> std::io::Result<Vec<String>> {
    let table = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut out: Vec<String> = Vec::new();
    for line in table.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (Some(mp), Some(opts)) = (f.get(4), f.get(5)) else {
            continue;
        };
        let mp = unescape_mountinfo(mp);
        let own = ["/proc", "/sys", "/dev"]
            .iter()
            .any(|p| mp == *p || mp.starts_with(&format!("{p}/")));
        if own || opts.split(',').any(|o| o == "ro") || out.contains(&mp) {
            continue;
        }
        out.push(mp);
    }
    Ok(out)
}

/// mountinfo writes space, tab, newline and backslash as `\NNN` (octal).
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let (b'\\', Some(d)) = (b[i], oct) {
            let n = d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0'));
            out.push(u8::try_from(n).unwrap_or(b'?'));
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Path depth, for mounting parents before children (containerd sorts a container's mounts so).
fn depth(p: &str) -> usize {
    Path::new(p).components().count()
}

/// The (bash) script the pod's mount namespace runs as root before it execs the container's
/// command. Setup failures go to the kubelet log (fd 3, closed before the exec) and exit 128, as
/// a container that could not start (containerd's StartError).
fn pod_script(
    sh: &Shared,
    pod: &PodRun,
    plan: &Plan,
    mounts: &[(String, String, bool)],
) -> std::io::Result<String> {
    let q = |s: &str| sh_quote(s);
    // The kubelet log comes in as stdin, opened outside this mount namespace: a file opened
    // for writing in here would hold `/` busy and refuse its read-only remount.
    let mut s = format!(
        "exec 3>&0 </dev/null\nfail() {{ echo \"stand-in kubelet: $*\" >&3; exit 128; }}\n\
         cd / || fail cd /\nhostname {} 2>&3 || fail cannot set the hostname\n",
        q(&pod.name)
    );
    // The image's own paths first (read-only, like image layers), then the volumes; each group
    // parents first.
    let mut image: Vec<(String, String, bool)> = sh
        .image_paths
        .iter()
        .map(|(inside, host)| (path_str(host), path_str(inside), true))
        .collect();
    image.sort_by_key(|(_, t, _)| depth(t));
    let mut volumes = mounts.to_vec();
    volumes.sort_by_key(|(_, t, _)| depth(t));
    let binds: Vec<(String, String, bool)> = image.into_iter().chain(volumes).collect();
    // Every source is opened before anything is mounted and bound through its descriptor: a
    // target such as /tmp would otherwise hide a source below it (the lab's directories). The
    // braces keep `2>&3` from sticking to the shell as `exec`'s redirections do.
    for (i, (source, _, _)) in binds.iter().enumerate() {
        s.push_str(&format!(
            "{{ exec {{src{i}}}<{src}; }} 2>&3 || fail cannot open {src}\n",
            src = q(source)
        ));
    }
    for (i, (source, target, ro)) in binds.iter().enumerate() {
        // A mount point missing on the machine is created there (and left), as the lab does.
        s.push_str(&format!(
            "[ -e {t} ] || mkdir -p {t} 2>&3 || fail cannot create the mount point {t}\n\
             mount --no-canonicalize --bind \"/proc/self/fd/$src{i}\" {t} 2>&3 \
             || fail cannot bind {src} at {t}\n",
            src = q(source),
            t = q(target)
        ));
        if *ro {
            s.push_str(&format!(
                "mount -o remount,bind,ro {t} 2>&3 || fail cannot make {t} read-only\n",
                t = q(target)
            ));
        }
    }
    for i in 0..binds.len() {
        s.push_str(&format!("exec {{src{i}}}<&-\n"));
    }
    if plan.read_only_root {
        // The machine's writable mounts, but those a target hides or replaces.
        let hidden = |mp: &str| {
            binds
                .iter()
                .any(|(_, t, _)| Path::new(mp).starts_with(Path::new(t)))
        };
        for mp in writable_mounts()? {
            if hidden(&mp) {
                continue;
            }
            // `remount,bind` changes this namespace's mount only, never the filesystem.
            s.push_str(&format!(
                "mount -o remount,bind,ro {t} 2>&3 \
                 || fail readOnlyRootFilesystem: cannot make {t} read-only\n",
                t = q(&mp)
            ));
        }
    }
    s.push_str(&format!(
        "cd {w} 2>&3 || fail cannot change to the working directory {w}\n",
        w = q(&plan.working_dir)
    ));
    let mut env = plan.env.clone();
    for (k, v) in [
        ("PATH", DEFAULT_PATH.to_string()),
        ("HOME", "/".to_string()),
        ("HOSTNAME", pod.name.clone()),
    ] {
        if !env.iter().any(|(n, _)| n == k) {
            env.push((k.to_string(), v));
        }
    }
    s.push_str(&format!(
        "exec /usr/bin/setpriv --reuid={} --regid={} --init-groups",
        sh.user.uid, sh.user.gid
    ));
    if plan.no_new_privs {
        s.push_str(" --no-new-privs");
    }
    if plan.drop_all_caps {
        s.push_str(" --bounding-set=-all");
    }
    // `env -i` takes every leading NAME=VALUE as a variable: a command whose first word holds a
    // '=' would be taken for one (no container command looks like that).
    s.push_str(" -- /usr/bin/env -i --");
    for (k, v) in &env {
        s.push(' ');
        s.push_str(&q(&format!("{k}={v}")));
    }
    for a in &plan.argv {
        s.push(' ');
        s.push_str(&q(a));
    }
    s.push_str(" 3>&-\n");
    Ok(s)
}

/// Start the pod's container and its supervisor; on a start failure the pod is Failed at once.
fn start_pod(sh: &Shared, pod: &Arc<PodRun>, plan: &Plan) -> Option<std::thread::JoinHandle<()>> {
    let fail_now = |msg: String| {
        let now = SystemTime::now();
        *lock(&pod.state) = RunState::Done {
            started: now,
            finished: now,
            end: End::StartError(msg),
        };
        None
    };
    let pod_dir = sh.dir.join("pods").join(&pod.uid);
    let kubelet_log = pod_dir.join("kubelet.log");
    let mut mounts = Vec::new();
    for m in &plan.mounts {
        let mut source = match &m.source {
            Source::Host(p) => p.clone(),
            Source::EmptyDir(name) => {
                let d = pod_dir.join("volumes").join(name);
                if let Err(e) = make_empty_dir(&d, &sh.user) {
                    return fail_now(format!("emptyDir {name}: {e}"));
                }
                d
            }
        };
        if let Some(sub) = &m.sub_path {
            // The kubelet creates a missing subPath directory.
            source = source.join(sub);
            if let Err(e) = std::fs::create_dir_all(&source) {
                return fail_now(format!("subPath {sub}: {e}"));
            }
        }
        mounts.push((path_str(&source), m.target.clone(), m.read_only));
    }
    if let Err(e) = std::fs::create_dir_all(&pod_dir) {
        return fail_now(format!("create {}: {e}", pod_dir.display()));
    }
    let script = match pod_script(sh, pod, plan, &mounts) {
        Ok(s) => s,
        Err(e) => return fail_now(format!("read the mount table: {e}")),
    };
    let _ = std::fs::write(pod_dir.join("script.sh"), &script);
    let log = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&pod.log)
    {
        Ok(f) => f,
        Err(e) => return fail_now(format!("open the pod log: {e}")),
    };
    let Ok(log2) = log.try_clone() else {
        return fail_now("dup the pod log".into());
    };
    let setup_log = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&kubelet_log)
    {
        Ok(f) => f,
        Err(e) => return fail_now(format!("open the kubelet log: {e}")),
    };
    use std::os::unix::process::CommandExt;
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &sh.node.netns,
            "unshare",
            "--mount",
            "--uts",
        ])
        .args(["--pid", "--fork", "--kill-child", "--mount-proc"])
        .args(["--propagation", "private", "--", "/bin/bash", "-c", &script])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(setup_log)
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => return fail_now(format!("spawn the container: {e}")),
    };
    let started = match pod.state() {
        RunState::Running { started } => started,
        RunState::Done { started, .. } => started,
    };
    let (p, job_deadline, pod_deadline) = (pod.clone(), plan.job_deadline, plan.pod_deadline);
    let handle = std::thread::Builder::new()
        .name(format!("pod-{}", pod.name))
        .spawn(move || supervise(&p, child, started, job_deadline, pod_deadline, &kubelet_log));
    match handle {
        Ok(h) => Some(h),
        // The child went with the closure, unkilled; the lab's teardown kills the netns's
        // processes.
        Err(e) => fail_now(format!("spawn the supervisor: {e}")),
    }
}

fn make_empty_dir(d: &Path, user: &RunUser) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(d)?;
    std::os::unix::fs::chown(d, Some(user.uid), Some(user.gid))?;
    // The kubelet creates emptyDir volumes with mode 0777.
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777))
}

fn exit_code(st: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    st.code()
        .or_else(|| st.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// Wait for the container, enforce the deadlines and kill requests (SIGKILL to its process
/// group, which holds `unshare`; `--kill-child` and the PID namespace take the rest), record
/// how it ended. Only this thread kills, and only before it has reaped the child, so the
/// process group id cannot have been reused.
fn supervise(
    pod: &PodRun,
    mut child: Child,
    started: SystemTime,
    job_deadline: Option<Duration>,
    pod_deadline: Option<Duration>,
    kubelet_log: &Path,
) {
    let t0 = Instant::now();
    let pgid = child.id() as i32;
    let mut killed = false;
    let code = loop {
        match child.try_wait() {
            Ok(Some(st)) => break exit_code(st),
            Ok(None) => {}
            Err(_) => {
                let _ = child.kill();
                break child.wait().map(exit_code).unwrap_or(-1);
            }
        }
        let elapsed = t0.elapsed();
        if job_deadline.is_some_and(|d| elapsed >= d) {
            pod.ask_stop(End::JobDeadline);
        } else if pod_deadline.is_some_and(|d| elapsed >= d) {
            pod.ask_stop(End::PodDeadline);
        }
        if !killed && lock(&pod.stop).is_some() {
            // SAFETY: kill(2) on the process group of our child, not yet reaped.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
            killed = true;
        }
        std::thread::sleep(POLL);
    };
    let end = match lock(&pod.stop).clone() {
        Some(why) if killed => why,
        _ => {
            let setup = std::fs::read_to_string(kubelet_log).unwrap_or_default();
            if code == 128 && !setup.trim().is_empty() {
                End::StartError(setup.trim().to_string())
            } else {
                End::Exited(code)
            }
        }
    };
    *lock(&pod.state) = RunState::Done {
        started,
        finished: SystemTime::now(),
        end,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_the_kubelet() {
        let vars: BTreeMap<&str, &str> = [("A", "x"), ("B", "y y")].into();
        let f = |n: &str| vars.get(n).map(|v| v.to_string());
        assert_eq!(expand("$(A)-$(B)", &f), "x-y y");
        assert_eq!(expand("$(C)", &f), "$(C)");
        assert_eq!(expand("$$(A)", &f), "$(A)");
        assert_eq!(expand("$A $", &f), "$A $");
        assert_eq!(expand("$(A", &f), "$(A");
        assert_eq!(expand("a$$$(A)", &f), "a$x");
    }

    #[test]
    fn selector_is_the_jobs_own_labels_only() {
        assert_eq!(
            job_selector("job-name=x-1"),
            Some(vec![("job-name", "x-1")])
        );
        assert_eq!(job_selector("job-name==x"), Some(vec![("job-name", "x")]));
        assert_eq!(
            job_selector("batch.kubernetes.io/controller-uid=u-1,job-name=x"),
            Some(vec![
                ("batch.kubernetes.io/controller-uid", "u-1"),
                ("job-name", "x")
            ])
        );
        assert_eq!(
            job_selector("controller-uid==u"),
            Some(vec![("controller-uid", "u")])
        );
        assert_eq!(job_selector("job-name!=x"), None);
        assert_eq!(job_selector("job-name="), None);
        assert_eq!(job_selector("job-name=x,app=y"), None);
        assert_eq!(job_selector("app=y"), None);
        assert_eq!(job_selector("job-name"), None);
    }

    fn owner(uid: &str, controller: Option<bool>) -> OwnerRef {
        OwnerRef {
            api_version: "batch/v1".into(),
            kind: "CronJob".into(),
            name: format!("c-{uid}"),
            uid: uid.into(),
            controller,
            block_owner_deletion: None,
        }
    }

    #[test]
    fn owner_references_are_validated_as_the_api_server_does() {
        let fields = |refs: &[OwnerRef]| -> Vec<String> {
            validate_owner_refs(refs)
                .into_iter()
                .map(|c| format!("{}: {}", c.field, c.body))
                .collect()
        };
        assert!(fields(&[owner("a", Some(true)), owner("b", Some(false))]).is_empty());
        let two = fields(&[owner("a", Some(true)), owner("b", Some(true))]);
        assert_eq!(two.len(), 1);
        assert!(two[0].starts_with("metadata.ownerReferences: Invalid value: [{"));
        assert!(two[0].ends_with(
            "Only one reference can have Controller set to true. Found \"true\" in references \
             for CronJob/c-a and CronJob/c-b"
        ));
        let mut empty = owner("", None);
        empty.api_version = "batch/".into();
        empty.kind = String::new();
        assert_eq!(
            fields(&[empty]),
            [
                "metadata.ownerReferences.apiVersion: Invalid value: \"batch/\": version must not be empty",
                "metadata.ownerReferences.kind: Invalid value: \"\": must not be empty",
                "metadata.ownerReferences.uid: Invalid value: \"\": must not be empty",
            ]
        );
        let mut event = owner("e", None);
        event.api_version = "v1".into();
        event.kind = "Event".into();
        assert_eq!(fields(&[event]).len(), 1);
        assert_eq!(group_version("a/b/c"), ("", ""));
        assert_eq!(group_version("v1"), ("", "v1"));
        let (kept, dups) = dedup_owner_refs(vec![
            owner("a", Some(true)),
            owner("a", Some(true)),
            owner("a", None),
        ]);
        assert_eq!((kept.len(), dups), (2, vec!["a".to_string()]));
    }

    #[test]
    fn tail_offsets() {
        let log = b"a\nb\nc\n";
        assert_eq!(tail_offset(log, 1), 4);
        assert_eq!(tail_offset(log, 2), 2);
        assert_eq!(tail_offset(log, 5), 0);
        assert_eq!(tail_offset(log, 0), 6);
        assert_eq!(tail_offset(b"a\nb", 1), 2);
    }

    #[test]
    fn uuids_are_version_4() {
        let u = uuid4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!("89ab".contains(&u[19..20]), "{u}");
        let s = random_suffix();
        assert!(s.len() == 5 && s.bytes().all(|b| NAME_CHARS.contains(&b)));
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/a\\134b\\011"), "/a\\b\t");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }
}

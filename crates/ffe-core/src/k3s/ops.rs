//! Carrying out a plan over SSH: install, join, wait for Ready, drain, remove, uninstall.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use serde_json::Value as Json;

use super::config::{self, Join, CONFIG_PATH, DRIFT_VIEW_SCRIPT};
use super::model::{ClusterSpec, InstallSource, Node, Role, VersionSpec};
use super::planner::{Action, LiveCluster, LiveNode, Stage};
use super::token::{self, JoinSecrets};
use crate::shell::quote;
use crate::ssh::{
    atomic_write_inline_script, atomic_write_script, replace_file_script, SshError, SshPool,
    StdinSource, Step, Target,
};

/// Where the provider keeps files it uploads to a node (installer, staged artifacts).
pub const NODE_WORK_DIR: &str = "/var/lib/rancher/ffe";
pub const KUBECONFIG_ON_SERVER: &str = "/etc/rancher/k3s/k3s.yaml";

/// `k3s kubectl` with a bound on each API request: a hung API server fails the step, it does
/// not hold the apply.
pub const KUBECTL: &str = "k3s kubectl --request-timeout=30s";
/// Limit of a kubectl step (a few API requests).
pub const KUBECTL_STEP: Duration = Duration::from_secs(60);
/// Limit of a read (facts, a file, a health probe).
pub const READ_STEP: Duration = Duration::from_secs(30);
/// How long a drain may wait for evictions (kubectl's own `--timeout`).
pub const DRAIN_SECS: u64 = 300;
/// Time for the installer itself (download or upload, unit files) on top of the ready timeout
/// the k3s start may take.
pub const INSTALLER_EXTRA: Duration = Duration::from_secs(300);
/// Where air-gap files wait on a node, named by their sha256, from their upload until the
/// node's own install step puts them in place: uploads run ahead, while earlier nodes install.
/// The label a roll-out puts on a node before it cordons it and takes off after it uncordons it:
/// a node still carrying it was left cordoned by an interrupted apply (the API failed after the
/// drain), and the next apply uncordons it ([`super::planner::Action::Uncordon`]). A node the
/// operator cordoned has no such label and stays as it is.
pub const CORDONED_BY_APPLY: &str = "ffe.io/cordoned-by-apply";

pub const STAGE_DIR: &str = "/var/lib/rancher/ffe/staged";
/// How many nodes receive air-gap files at the same time ahead of their install step.
pub const STAGE_PARALLELISM: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("host {host}: step '{step}': {message}")]
    Step {
        host: String,
        step: String,
        message: String,
    },
    #[error("{count} node(s) failed:\n  - {details}")]
    Many { count: usize, details: String },
    #[error("no server of the cluster answered: {0}")]
    NoServer(String),
    #[error("refusing to restart server {name}: {reason}. Restarting it now could leave etcd without quorum; bring the other servers back first, then re-run `terraform apply`")]
    QuorumAtRisk { name: String, reason: String },
}

impl OpsError {
    fn step(node: &Node, step: &str, message: impl Into<String>) -> Self {
        OpsError::Step {
            host: node.target().to_string(),
            step: step.into(),
            message: message.into(),
        }
    }
}

/// Runs plan stages against one cluster.
pub struct Executor<'a> {
    pub pool: &'a SshPool,
    pub spec: &'a ClusterSpec,
    /// The cluster as Terraform last applied it (`None` on create): labels and taints it set
    /// that are no longer wanted are removed from the Node objects.
    pub prior: Option<ClusterSpec>,
    /// Join secrets; the CA hash is filled in once the first server runs.
    pub secrets: std::sync::Mutex<JoinSecrets>,
    pub ready_timeout: Duration,
    /// Non-fatal notes for the operator (e.g. an unreachable node skipped on removal).
    pub warnings: std::sync::Mutex<Vec<String>>,
    /// The kubeconfig read from the first server, once fetched.
    pub kubeconfig: std::sync::Mutex<Option<String>>,
    /// sha256 of local air-gap files, computed once per apply.
    local_sha: tokio::sync::Mutex<BTreeMap<std::path::PathBuf, String>>,
    /// The server nodes join through, once one answered healthy in this apply.
    join_via: std::sync::Mutex<Option<Node>>,
    /// Per node (by address and port): its air-gap files, staged once per apply.
    staged: tokio::sync::Mutex<BTreeMap<String, std::sync::Arc<StagedCell>>>,
    /// Nodes whose install step took their staged files: not staged ahead again.
    placed: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Per node (read before the run): the address its config joins through, when that is no
    /// server of the spec any more (a server change an earlier apply did not finish, e.g. a
    /// restore onto new hosts that failed after the reset). Repointed after the stages.
    pub stale_joins: BTreeMap<String, String>,
}

/// What [`Executor::stage`] left on a node: the files its install step still has to put in
/// place (the others already have the wanted content).
type StagedCell = tokio::sync::OnceCell<Vec<Placement>>;

/// One air-gap file and where the node runs it from.
struct Artifact<'p> {
    local: &'p Path,
    remote: String,
    mode: u32,
}

/// A staged file to move into place at install time.
#[derive(Debug, Clone)]
struct Placement {
    staged: String,
    remote: String,
    mode: u32,
}

impl<'a> Executor<'a> {
    pub fn new(pool: &'a SshPool, spec: &'a ClusterSpec, secrets: JoinSecrets) -> Self {
        Self {
            pool,
            spec,
            prior: None,
            secrets: std::sync::Mutex::new(secrets),
            ready_timeout: Duration::from_secs(300),
            warnings: Default::default(),
            kubeconfig: Default::default(),
            local_sha: Default::default(),
            join_via: Default::default(),
            staged: Default::default(),
            placed: Default::default(),
            stale_joins: Default::default(),
        }
    }

    /// Note the join lines of `live` that name an address neither the spec's servers nor the
    /// prior's have (a server leaving in this apply is repointed from the prior; set `prior`
    /// first).
    pub fn note_stale_joins(&mut self, live: &LiveCluster) {
        let known = |addr: &str| {
            self.spec
                .servers
                .iter()
                .chain(self.prior.iter().flat_map(|p| &p.servers))
                .any(|s| s.address == addr)
        };
        self.stale_joins = self
            .spec
            .all_nodes()
            .filter_map(|(n, _)| {
                let addr = live.nodes.get(&n.name)?.join_address.clone()?;
                (!known(&addr)).then(|| (n.name.clone(), addr))
            })
            .collect();
    }

    fn warn(&self, msg: String) {
        tracing::warn!("{msg}");
        if let Ok(mut w) = self.warnings.lock() {
            w.push(msg);
        }
    }

    /// The join secrets as they stand (the CA hash is learnt once the first server runs).
    pub fn secrets(&self) -> JoinSecrets {
        match self.secrets.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Read the cluster CA hash from the first server and keep it. A hash that differs from the
    /// one already known means the first server now runs a different cluster (re-bootstrapped
    /// or replaced by hand): joining anything to it would split the cluster, so stop.
    async fn learn_ca_hash(&self, first: &Node) -> Result<(), OpsError> {
        let Some(read) = read_ca_hash(self.pool, first).await? else {
            return Err(OpsError::step(
                first,
                "read cluster CA hash",
                format!("{SERVER_TOKEN_FILE} is missing although k3s started; check `journalctl -u k3s` on this host"),
            ));
        };
        let mut guard = self
            .secrets
            .lock()
            .map_err(|_| OpsError::step(first, "read cluster CA hash", "internal lock poisoned"))?;
        match &guard.ca_hash {
            Some(known) if *known != read => Err(OpsError::step(
                first,
                "read cluster CA hash",
                format!(
                    "the cluster CA changed (known {known}, the server now has {read}): this server was re-initialised outside Terraform. Nothing was joined to it. If that was a mistake, restore the cluster from an etcd snapshot on the backup share (`ffe-ha etcd restore`, or restore_from_snapshot; docs/disaster-recovery.md) before applying again"
                ),
            )),
            _ => {
                guard.ca_hash = Some(read);
                Ok(())
            }
        }
    }

    /// Run every stage in order. A failing stage stops the run after its in-flight siblings finish.
    /// Meanwhile the air-gap files of the nodes the stages install are uploaded ahead (see
    /// [`Self::prestage`]); the run does not wait for those uploads, each install step does.
    pub async fn run(&self, stages: &[Stage]) -> Result<(), OpsError> {
        let run = std::pin::pin!(self.run_stages(stages));
        let ahead = std::pin::pin!(self.prestage(stages));
        match futures::future::select(run, ahead).await {
            // Done (or failed): uploads still running for later nodes are dropped; a cut-off
            // upload never lands (atomic write), and the next apply stages again.
            futures::future::Either::Left((result, _)) => result,
            futures::future::Either::Right(((), run)) => run.await,
        }
    }

    /// Upload the air-gap files of every node that the stages install or upgrade, in stage
    /// order, [`STAGE_PARALLELISM`] nodes at a time. Errors are left to the node's install step,
    /// which stages again and reports them. A node that the stages also remove is not staged
    /// ahead: its uninstall would delete the staged files.
    async fn prestage(&self, stages: &[Stage]) {
        let actions = stages.iter().flat_map(Stage::actions);
        let mut removed = Vec::new();
        let mut installs: Vec<&Node> = Vec::new();
        for a in actions {
            match a {
                Action::InitCluster(n)
                | Action::InstallServer(n)
                | Action::InstallAgent(n)
                | Action::Upgrade(n, _) => {
                    if !installs
                        .iter()
                        .any(|m| self.stage_key(m) == self.stage_key(n))
                    {
                        installs.push(n);
                    }
                }
                Action::Remove(n, _) => removed.push(self.stage_key(n)),
                Action::Reconfigure(..) | Action::FetchKubeconfig | Action::Uncordon(_) => {}
            }
        }
        installs.retain(|n| !removed.contains(&self.stage_key(n)));
        // Futures are built eagerly: a lazy closure here trips async_trait's Send check.
        let futs: Vec<_> = installs.into_iter().map(|n| self.stage_ahead(n)).collect();
        stream::iter(futs)
            .buffer_unordered(STAGE_PARALLELISM)
            .collect::<Vec<()>>()
            .await;
    }

    async fn stage_ahead(&self, n: &Node) {
        let key = self.stage_key(n);
        if self.placed.lock().is_ok_and(|p| p.contains(&key)) {
            return;
        }
        if let Err(e) = self.stage(n).await {
            tracing::debug!(node = %n.target(), error = %e, "staging ahead failed; the install step tries again");
        }
    }

    async fn run_stages(&self, stages: &[Stage]) -> Result<(), OpsError> {
        run_in_order(stages, &|a| Box::pin(self.act(a))).await?;
        self.repoint_joins().await?;
        self.sync_changed_node_meta().await
    }

    /// When servers left (removed or replaced), no node's config may keep naming one of them as
    /// the server it joins through: k3s reads that line again whenever an agent has lost its
    /// list of servers. Lines naming a departed server (this apply's, or one an earlier apply
    /// left, [`Self::stale_joins`]) are pointed at a live one; agents restart only when no server
    /// they knew is left (the line is not part of the drift hash, ADR 0015).
    async fn repoint_joins(&self) -> Result<(), OpsError> {
        let departed: Vec<&str> = self
            .prior
            .iter()
            .flat_map(|p| &p.servers)
            .map(|s| s.address.as_str())
            .filter(|a| !self.spec.servers.iter().any(|s| s.address == *a))
            .collect();
        // A running agent keeps the server addresses it learnt; when every one of them left (a
        // restore onto new hosts) it reaches none, so an agent whose line changed restarts.
        let none_left = self
            .prior
            .as_ref()
            .is_some_and(|p| departed.len() == p.servers.len());
        if departed.is_empty() && self.stale_joins.is_empty() {
            return Ok(());
        }
        let nodes: Vec<(&Node, Role)> = self
            .spec
            .all_nodes()
            .filter(|(n, _)| !departed.is_empty() || self.stale_joins.contains_key(&n.name))
            .collect();
        let departed = &departed;
        let futs: Vec<_> = nodes
            .into_iter()
            .map(|(n, role)| async move {
                // A line an earlier apply left naming no server (this apply's prior no longer
                // lists it, e.g. a restore onto new hosts that failed after the reset) is
                // replaced whatever it names; whether such an agent still reaches a server
                // cannot be told from here (its Node stays Ready for a while after it lost
                // them), so it restarts onto the live one.
                let stale = self.stale_joins.contains_key(&n.name);
                let restart = role == Role::Agent && (none_left || stale);
                let via = self.live_server(n).await?;
                let patterns: Vec<String> = if stale {
                    vec![".*".into()]
                } else {
                    departed.iter().map(|a| a.replace('.', "\\.")).collect()
                };
                let edits: Vec<String> = patterns
                    .iter()
                    .map(|pattern| {
                        format!(
                            "-e {}",
                            quote(&format!(
                                "s|^server: https://{pattern}:6443$|server: https://{}:6443|",
                                via.address
                            ))
                        )
                    })
                    .collect();
                let sed = format!("sed -i {} {CONFIG_PATH}", edits.join(" "));
                let (script, limit) = if restart {
                    (
                        format!(
                            "if [ -e {CONFIG_PATH} ]; then old=$(sha256sum < {CONFIG_PATH}); {sed}; if [ \"$old\" != \"$(sha256sum < {CONFIG_PATH})\" ]; then systemctl restart {}; fi; fi",
                            role.unit()
                        ),
                        // The unit's restart returns once the agent is up again.
                        self.ready_timeout + READ_STEP,
                    )
                } else {
                    (format!("if [ -e {CONFIG_PATH} ]; then {sed}; fi"), READ_STEP)
                };
                match self
                    .pool
                    .run_within(&n.target(), "point the join line at a live server", &script, limit)
                    .await
                {
                    Err(e) if e.is_unreachable() => {
                        self.warn(format!(
                            "{}: its config may still name a departed server as the one to join through (host unreachable: {e}); on it, set `server: https://{}:6443` in {CONFIG_PATH}",
                            n.target(),
                            via.address
                        ));
                        Ok(())
                    }
                    other => other.map(|_| ()).map_err(OpsError::from),
                }
            })
            .collect();
        let results: Vec<Result<(), OpsError>> =
            stream::iter(futs).buffer_unordered(16).collect().await;
        collect_errors(results)
    }

    async fn act(&self, action: &Action) -> Result<(), OpsError> {
        tracing::info!(?action, "k3s step");
        match action {
            Action::InitCluster(n) => {
                self.install(n, Role::Server, &Join::Init, None).await?;
                self.learn_ca_hash(n).await
            }
            Action::InstallServer(n) => {
                // A joining (or re-installed) server changes etcd's membership: every other
                // member server must be healthy first.
                self.check_quorum_before_restart(n).await?;
                let via = self.live_server(n).await?;
                let join = Join::Via(via.address.clone());
                self.install(n, Role::Server, &join, Some(&via)).await
            }
            Action::InstallAgent(n) => {
                let via = self.live_server(n).await?;
                let join = Join::Via(via.address.clone());
                self.install(n, Role::Agent, &join, Some(&via)).await
            }
            Action::Upgrade(n, role) => self.upgrade(n, *role).await,
            Action::Reconfigure(n, role) => self.reconfigure(n, *role).await,
            Action::Remove(n, role) => self.remove(n, *role).await,
            Action::FetchKubeconfig => {
                let k = self.fetch_kubeconfig().await?;
                if let Ok(mut slot) = self.kubeconfig.lock() {
                    *slot = Some(k);
                }
                Ok(())
            }
            Action::Uncordon(n) => self
                .kubectl(
                    n,
                    "uncordon what an interrupted roll-out left cordoned",
                    &uncordon_cmd(&n.name),
                )
                .await
                .map(|_| ()),
        }
    }

    /// The steps that give `n` its config (on a server, first its etcd snapshot directory) and
    /// the config text they read from stdin (it holds the join token: never on a command line).
    async fn config_steps(
        &self,
        n: &Node,
        role: Role,
        join: &Join,
        via: Option<&Node>,
    ) -> Result<(Vec<Step>, String), OpsError> {
        if let (Some(v), None) = (via, &self.secrets().ca_hash) {
            // State from before the CA hash was kept: learn it from the server joined through.
            self.learn_ca_hash(v).await?;
        }
        let secrets = self.secrets();
        if *join != Join::Init {
            // Joiners get the secure token form only: never one that skips the CA check.
            if secrets.ca_hash.is_none() {
                return Err(OpsError::step(
                    n,
                    "write /etc/rancher/k3s/config.yaml",
                    "the cluster CA hash is not known yet (the first server has not started), so this node cannot be given a token that verifies the cluster; apply again once the first server runs",
                ));
            }
        }
        let mut steps = Vec::new();
        if role == Role::Server {
            // Before k3s reads the config: it refuses to snapshot into a directory it must create.
            let dir = config::snapshot_dir(self.spec, n);
            steps.push(Step::new(
                "create the etcd snapshot directory",
                format!("mkdir -p -m 0700 {}", crate::shell::quote(&dir)),
                READ_STEP,
            ));
        }
        if role == Role::Server && self.spec.cis_profile {
            // Before k3s starts: the API server exits when a file its flags name is missing.
            let log_dir = std::path::Path::new(config::AUDIT_LOG_PATH)
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let mut script = format!("mkdir -p -m 0700 {}", crate::shell::quote(&log_dir));
            for (path, content) in config::server_policy_files() {
                script.push_str(" && (");
                script.push_str(&atomic_write_inline_script(path, 0o600, &content));
                script.push(')');
            }
            steps.push(Step::new(
                "write the API server admission and audit policies",
                script,
                READ_STEP,
            ));
        }
        let text = config::render(self.spec, n, role, &secrets, join);
        steps.push(Step::new(
            "write /etc/rancher/k3s/config.yaml",
            atomic_write_script(CONFIG_PATH, 0o600, text.len() as u64),
            READ_STEP,
        ));
        Ok((steps, text))
    }

    async fn write_config(
        &self,
        n: &Node,
        role: Role,
        join: &Join,
        via: Option<&Node>,
    ) -> Result<(), OpsError> {
        let (steps, text) = self.config_steps(n, role, join, via).await?;
        self.pool
            .run_steps_input(
                &n.target(),
                &steps,
                Some(StdinSource::Bytes(text.as_bytes())),
            )
            .await?
            .all()?;
        Ok(())
    }

    /// The air-gap files and where a node runs them from (none when installing online).
    fn artifacts(&self) -> Vec<Artifact<'_>> {
        let InstallSource::Airgap {
            k3s_binary,
            images,
            installer,
        } = &self.spec.install
        else {
            return vec![];
        };
        let mut list = vec![Artifact {
            local: k3s_binary,
            remote: "/usr/local/bin/k3s".into(),
            mode: 0o755,
        }];
        if let Some(img) = images {
            let name = img
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| "k3s-airgap-images.tar".into());
            list.push(Artifact {
                local: img,
                remote: format!("/var/lib/rancher/k3s/agent/images/{name}"),
                mode: 0o644,
            });
        }
        list.push(Artifact {
            local: installer,
            remote: format!("{NODE_WORK_DIR}/install.sh"),
            mode: 0o755,
        });
        list
    }

    fn stage_key(&self, n: &Node) -> String {
        stage_key(n, self.pool.settings().port)
    }

    /// sha256 of a local air-gap file, computed once per apply.
    async fn local_sha(&self, n: &Node, local: &Path) -> Result<String, OpsError> {
        let mut cache = self.local_sha.lock().await;
        if let Some(sha) = cache.get(local) {
            return Ok(sha.clone());
        }
        let sha = file_sha256(local).await.map_err(|e| {
            OpsError::step(
                n,
                "read airgap file",
                format!("{}: {e}. Check the airgap_* paths", local.display()),
            )
        })?;
        cache.insert(local.to_path_buf(), sha.clone());
        Ok(sha)
    }

    /// Make sure each air-gap file is on `n`, in place already or staged under [`STAGE_DIR`]:
    /// one round trip compares the node's copies with the local files, then each file that is
    /// in neither place is uploaded in one stream (a cut-off upload leaves nothing). Once per
    /// node and apply; returns what the install step still has to put in place.
    async fn stage(&self, n: &Node) -> Result<Vec<Placement>, OpsError> {
        let cell = {
            let mut map = self.staged.lock().await;
            map.entry(self.stage_key(n)).or_default().clone()
        };
        cell.get_or_try_init(|| self.stage_now(n)).await.cloned()
    }

    async fn stage_now(&self, n: &Node) -> Result<Vec<Placement>, OpsError> {
        let artifacts = self.artifacts();
        if artifacts.is_empty() {
            return Ok(vec![]);
        }
        let mut shas = Vec::with_capacity(artifacts.len());
        for a in &artifacts {
            shas.push(self.local_sha(n, a.local).await?);
        }
        let pairs: Vec<(String, String)> = artifacts
            .iter()
            .zip(&shas)
            .map(|(a, sha)| (a.remote.clone(), format!("{STAGE_DIR}/{sha}")))
            .collect();
        let out = self
            .pool
            .run_within(
                &n.target(),
                "compare airgap files",
                &stage_probe_script(&pairs),
                // Hashes the installed and any staged copy: GBs on a busy node.
                self.pool.settings().command_timeout,
            )
            .await?;
        let found = probe_hashes(&out);
        let mut placements = vec![];
        let mut uploads: Vec<(&Path, u64, &str, &str)> = vec![];
        for ((a, sha), (_, staged_path)) in artifacts.iter().zip(&shas).zip(&pairs) {
            let in_place = found.get(a.remote.as_str()) == Some(&sha.as_str());
            let staged = found.get(staged_path.as_str()) == Some(&sha.as_str());
            if in_place {
                continue;
            }
            if !staged && !uploads.iter().any(|(_, _, s, _)| s == sha) {
                let len = crate::ssh::local_len(a.local).await?;
                uploads.push((a.local, len, sha, a.remote.as_str()));
            }
            placements.push(Placement {
                staged: format!("{STAGE_DIR}/{sha}"),
                remote: a.remote.clone(),
                mode: a.mode,
            });
        }
        if !uploads.is_empty() {
            let files: Vec<&Path> = uploads.iter().map(|(p, _, _, _)| *p).collect();
            let parts: Vec<(u64, &str, &str)> = uploads
                .iter()
                .map(|(_, len, sha, name)| (*len, *sha, *name))
                .collect();
            let names: Vec<&str> = uploads.iter().map(|(_, _, _, name)| *name).collect();
            self.pool
                .run_input(
                    &n.target(),
                    &format!("upload {}", names.join(", ")),
                    &stage_upload_script(STAGE_DIR, &parts),
                    Some(StdinSource::Files(&files)),
                )
                .await?;
        }
        Ok(placements)
    }

    fn install_env(&self, role: Role, start: bool) -> String {
        let exec = match role {
            Role::Server => "server",
            Role::Agent => "agent",
        };
        let version = match &self.spec.version {
            VersionSpec::Channel(c) => format!("INSTALL_K3S_CHANNEL={}", quote(c)),
            VersionSpec::Exact(v) => format!("INSTALL_K3S_VERSION={}", quote(v)),
        };
        // install.sh skips the service start when binary, unit and env file are unchanged
        // (config.yaml is not hashed): a stopped node, or one whose Node object was deleted, would
        // stay down. Every install we run is meant to (re)start k3s, except one that prepares a
        // host for a restore (the cluster-reset runs before k3s may start).
        let start = if start {
            "INSTALL_K3S_FORCE_RESTART=true"
        } else {
            "INSTALL_K3S_SKIP_START=true"
        };
        format!("INSTALL_K3S_EXEC={exec} {version} {start}")
    }

    /// The install step: the air-gap files put in place (staged ahead, or now) and install.sh
    /// run, bounded by the ready timeout: the installer (re)starts the unit and systemd waits for
    /// k3s to report ready, and a node that cannot reach its join server retries for ever.
    async fn installer_step(&self, n: &Node, role: Role, start: bool) -> Result<Step, OpsError> {
        let env = self.install_env(role, start);
        let script = match &self.spec.install {
            InstallSource::Online { installer_url } => format!(
                "set -e; curl -sfL --retry 3 {url} -o {dir}/install.sh; chmod 0755 {dir}/install.sh; {env} {dir}/install.sh",
                url = quote(installer_url),
                dir = NODE_WORK_DIR,
            ),
            InstallSource::Airgap { .. } => {
                let placements = self.stage(n).await?;
                // The install moves the staged files: another install of this host in the same
                // apply must look again, and staging ahead leaves it alone.
                let key = self.stage_key(n);
                if let Ok(mut p) = self.placed.lock() {
                    p.insert(key.clone());
                }
                self.staged.lock().await.remove(&key);
                format!(
                    "set -e; {}INSTALL_K3S_SKIP_DOWNLOAD=true {env} {NODE_WORK_DIR}/install.sh",
                    place_script(&placements)
                )
            }
        };
        Ok(Step::new(
            format!("install k3s {}", role.unit()),
            format!("mkdir -p {NODE_WORK_DIR}; {script}"),
            self.ready_timeout + INSTALLER_EXTRA,
        ))
    }

    /// Config, then install.sh (starting k3s or not), in one SSH round trip of named steps.
    async fn configure_and_install(
        &self,
        n: &Node,
        role: Role,
        join: &Join,
        via: Option<&Node>,
        start: bool,
    ) -> Result<(), OpsError> {
        let (mut steps, text) = self.config_steps(n, role, join, via).await?;
        let install = self.installer_step(n, role, start).await?;
        let install_name = install.name.clone();
        steps.push(install);
        let out = self
            .pool
            .run_steps_input(
                &n.target(),
                &steps,
                Some(StdinSource::Bytes(text.as_bytes())),
            )
            .await
            .map_err(|e| not_started(n, role, &install_name, e))?;
        match out.failure {
            Some(e @ SshError::Timeout { .. }) if e.step() == Some(install_name.as_str()) => {
                Err(not_started(n, role, &install_name, e))
            }
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    async fn install(
        &self,
        n: &Node,
        role: Role,
        join: &Join,
        via: Option<&Node>,
    ) -> Result<(), OpsError> {
        self.configure_and_install(n, role, join, via, true).await?;
        self.wait_ready(n, role).await
    }

    /// Install k3s as a server without starting it, its config joining as `join`: a new host
    /// made ready for [`super::restore::cluster_reset`].
    pub async fn install_stopped(&self, n: &Node, join: &Join) -> Result<(), OpsError> {
        self.configure_and_install(n, Role::Server, join, None, false)
            .await
    }

    /// A server other than `n` that serves the API now: the first of `servers` (in order) whose
    /// `/readyz` answers ok, kept for the rest of the apply. Never a dead one, never `n` itself.
    async fn live_server(&self, n: &Node) -> Result<Node, OpsError> {
        let cached = self.join_via.lock().ok().and_then(|g| g.clone());
        if let Some(v) = cached.filter(|v| v.name != n.name) {
            return Ok(v);
        }
        let tried = match first_ready(self.pool, &self.spec.servers, Some(&n.name)).await {
            Ok(s) => {
                if let Ok(mut g) = self.join_via.lock() {
                    *g = Some(s.clone());
                }
                return Ok(s);
            }
            Err(tried) => tried,
        };
        Err(OpsError::step(
            n,
            "choose a server to join through",
            format!(
                "no other server serves the API ({}). A node joins only through a live server. Bring one back (`systemctl status k3s` on the servers), or, if every server lost its data, restore the cluster from an etcd snapshot (docs/disaster-recovery.md)",
                if tried.is_empty() { "there is no other server".to_string() } else { tried.join("; ") }
            ),
        ))
    }

    /// How an existing node is told to join when its config is rewritten: through a live server,
    /// or, for the only server of a cluster, as the cluster's initialiser (k3s ignores both once
    /// the node has its data, so this only keeps the file truthful).
    async fn join_of_existing(
        &self,
        n: &Node,
        role: Role,
    ) -> Result<(Join, Option<Node>), OpsError> {
        if role == Role::Server && self.spec.servers.iter().all(|s| s.name == n.name) {
            return Ok((Join::Init, None));
        }
        let via = self.live_server(n).await?;
        Ok((Join::Via(via.address.clone()), Some(via)))
    }

    /// k3s applies `node-taint` only when a node registers and `node-label` only adds: a change
    /// of `node_labels` or `server_taints` on an existing node would never reach its Node object
    /// although its config (and so its hash) says it did. So when they changed since the last
    /// applied state, every node gets them through the API, after all other steps (a retry after
    /// a failure does it again: the state still holds the old values).
    async fn sync_changed_node_meta(&self) -> Result<(), OpsError> {
        let Some(prior) = &self.prior else {
            return Ok(()); // create: registration applies them
        };
        if prior.node_labels == self.spec.node_labels
            && prior.server_taints == self.spec.server_taints
        {
            return Ok(());
        }
        // One kubectl script for every node: one SSH round trip, not one per node.
        let scripts: Vec<String> = self
            .spec
            .all_nodes()
            .map(|(n, role)| node_meta_script(prior, self.spec, n, role))
            .collect();
        let limit = KUBECTL_STEP * u32::try_from(scripts.len()).unwrap_or(u32::MAX).max(1);
        on_first_server(
            self.pool,
            &self.spec.servers,
            "set node labels and taints",
            &scripts.join("; "),
            limit,
        )
        .await
        .map(|_| ())
    }

    /// Before restarting or removing a server, every other member server must answer healthy:
    /// either takes one etcd member away.
    async fn check_quorum_before_restart(&self, n: &Node) -> Result<(), OpsError> {
        // Only servers that are already members count; servers still to join come later.
        let members = self.node_list().await?;
        let others = self
            .spec
            .servers
            .iter()
            .filter(|s| s.name != n.name && members.iter().any(|m| m.name == s.name));
        for other in others {
            let probe = self
                .pool
                .run_within(
                    &other.target(),
                    "check server health",
                    &format!("{KUBECTL} get --raw /readyz"),
                    READ_STEP,
                )
                .await;
            let reason = match probe {
                Ok(out) if out.trim() == "ok" => continue,
                Ok(out) => format!(
                    "server {} is not healthy (/readyz: {})",
                    other.name,
                    out.trim()
                ),
                Err(e) => format!("server {} is not healthy ({e})", other.name),
            };
            return Err(OpsError::QuorumAtRisk {
                name: n.name.clone(),
                reason,
            });
        }
        Ok(())
    }

    async fn reconfigure(&self, n: &Node, role: Role) -> Result<(), OpsError> {
        if role == Role::Server {
            self.check_quorum_before_restart(n).await?;
        }
        let (join, via) = self.join_of_existing(n, role).await?;
        self.write_config(n, role, &join, via.as_ref()).await?;
        let step = format!("restart {}", role.unit());
        self.pool
            .run_within(
                &n.target(),
                &step,
                &format!("systemctl restart {}", role.unit()),
                self.ready_timeout,
            )
            .await
            .map_err(|e| not_started(n, role, &step, e))?;
        self.wait_ready(n, role).await
    }

    /// Cordon and drain `n` (kubectl respects PodDisruptionBudgets). A drain that fails names
    /// the pods still on the node, DaemonSet and static pods aside: usually one whose
    /// PodDisruptionBudget allows no disruption.
    async fn drain(&self, n: &Node, step: &str) -> Result<(), OpsError> {
        let Err(e) = self.kubectl(n, step, &drain_cmd(&n.name)).await else {
            return Ok(());
        };
        let left = match self
            .kubectl(
                n,
                "list the pods the drain left",
                &format!(
                    "{KUBECTL} get pods -A --field-selector {} -o json",
                    quote(&format!("spec.nodeName={}", n.name))
                ),
            )
            .await
            .map(|out| parse_evictable_pods(&out))
        {
            Ok(Ok(pods)) if !pods.is_empty() => {
                format!("pods still on {}: {}", n.name, pods.join(", "))
            }
            Ok(Ok(_)) => format!("no pod is left on {} now", n.name),
            Ok(Err(m)) => format!("the pods left could not be read ({m})"),
            Err(l) => format!("the pods left could not be read ({l})"),
        };
        Err(OpsError::step(
            n,
            step,
            format!(
                "the drain did not finish ({left}). Usually a PodDisruptionBudget that allows no disruption (`kubectl get pdb -A`): give that workload a spare replica or relax its budget, then run `terraform apply` again. kubectl said: {e}"
            ),
        ))
    }

    /// Servers run workloads unless a taint keeps them off (`server_taints`).
    fn servers_take_workloads(&self) -> bool {
        !self
            .spec
            .server_taints
            .iter()
            .any(|t| t.ends_with(":NoSchedule") || t.ends_with(":NoExecute"))
    }

    async fn upgrade(&self, n: &Node, role: Role) -> Result<(), OpsError> {
        if role == Role::Server {
            self.check_quorum_before_restart(n).await?;
        }
        let (join, via) = self.join_of_existing(n, role).await?;
        // Drained where workloads run and another node can take them: agents, and servers that
        // are not tainted against workloads (a lone server has nowhere to send them).
        let drain = match role {
            Role::Agent => true,
            Role::Server => self.servers_take_workloads() && self.spec.servers.len() > 1,
        };
        if !drain {
            self.install(n, role, &join, via.as_ref()).await?;
            self.wait_upgraded(n).await?;
            return self.check_servers_after(n, role).await;
        }
        // Marked first, so that if this apply cannot uncordon it (below) the next one does.
        self.kubectl(
            n,
            "mark the node cordoned by this roll-out",
            &format!(
                "{KUBECTL} label node {} {}=true --overwrite",
                quote(&n.name),
                CORDONED_BY_APPLY
            ),
        )
        .await?;
        // drain cordons first: a drain that fails (a PodDisruptionBudget, its timeout) is
        // uncordoned below like a failed upgrade.
        let upgraded = match self.drain(n, "cordon + drain before upgrade").await {
            Ok(()) => match self.install(n, role, &join, via.as_ref()).await {
                Ok(()) => self.wait_upgraded(n).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        // Uncordon whatever happened: a node we cordoned must not stay out of service. A node
        // that failed its upgrade is NotReady, and the scheduler keeps away from it anyway.
        let uncordon = self
            .kubectl(n, "uncordon after upgrade", &uncordon_cmd(&n.name))
            .await;
        match (upgraded, uncordon) {
            (Err(e), Err(u)) => {
                self.warn(format!(
                    "{}: still cordoned after the failed upgrade ({u}); the next apply uncordons it (it carries the label {CORDONED_BY_APPLY})",
                    n.target(),
                ));
                Err(e)
            }
            (Err(e), Ok(_)) => Err(e),
            (Ok(()), u) => {
                u.map_err(|e| {
                    OpsError::step(
                        n,
                        "uncordon after upgrade",
                        format!("{e}. The node is upgraded but still cordoned; it carries the label {CORDONED_BY_APPLY}, so the next apply uncordons it"),
                    )
                })?;
                self.check_servers_after(n, role).await
            }
        }
    }

    /// `k3s certificate rotate` on every node (k3s-io/k3s #10024: "servers first, then agents"):
    /// servers one at a time, each only while the others serve, then agents in the upgrade
    /// batches; k3s stops, the command moves the leaf certificates aside (CAs stay) and k3s
    /// issues new ones at its start. Containers keep running (a k3s restart leaves them), so
    /// nothing is drained. The admin kubeconfig's client certificate is new afterwards: it is
    /// read again.
    pub async fn rotate_certificates(&self) -> Result<(), OpsError> {
        for s in &self.spec.servers {
            self.check_quorum_before_restart(s).await?;
            self.rotate_node_certificates(s, Role::Server).await?;
            self.check_servers_after(s, Role::Server).await?;
        }
        let batch = super::planner::agent_upgrade_batch(self.spec);
        for chunk in self.spec.agents.chunks(batch) {
            let futs: Vec<_> = chunk
                .iter()
                .map(|a| self.rotate_node_certificates(a, Role::Agent))
                .collect();
            let results: Vec<Result<(), OpsError>> = stream::iter(futs)
                .buffer_unordered(batch.max(1))
                .collect()
                .await;
            collect_errors(results)?;
        }
        let k = self.fetch_kubeconfig().await?;
        if let Ok(mut slot) = self.kubeconfig.lock() {
            *slot = Some(k);
        }
        Ok(())
    }

    /// Rotate the secrets-encryption key (k3s "Encryption Key Rotation", k3s >= v1.30.5):
    /// `k3s secrets-encrypt rotate-keys` on the first server that serves the API, wait until
    /// every Secret is re-encrypted (`status`: stage `reencrypt_finished`), then restart every
    /// server one at a time (each only while the others serve) so all load the new key, and
    /// check that their encryption hashes match.
    pub async fn rotate_encryption_key(&self) -> Result<(), OpsError> {
        const STATUS: &str = "k3s secrets-encrypt status";
        let first = self.first_live_server().await?;
        self.pool
            .run_within(
                &first.target(),
                "rotate the secrets-encryption key (k3s secrets-encrypt rotate-keys)",
                "k3s secrets-encrypt rotate-keys",
                KUBECTL_STEP,
            )
            .await?;
        // k3s re-encrypts about 5 Secrets per second: the wait scales with the ready timeout.
        let deadline = Instant::now() + self.ready_timeout * 4;
        loop {
            let out = self
                .pool
                .run_within(
                    &first.target(),
                    "read the re-encryption stage",
                    STATUS,
                    READ_STEP,
                )
                .await?;
            let stage = out
                .lines()
                .find_map(|l| l.strip_prefix("Current Rotation Stage:"))
                .map(str::trim)
                .unwrap_or("")
                .to_string();
            if stage == "reencrypt_finished" {
                break;
            }
            if Instant::now() > deadline {
                return Err(OpsError::step(
                    &first,
                    "wait for the re-encryption",
                    format!("`{STATUS}` still says stage {stage:?} after {} s (want reencrypt_finished); k3s keeps re-encrypting in the background: run `terraform apply` again later, it restarts the servers once the stage is reached", (self.ready_timeout * 4).as_secs()),
                ));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        for s in &self.spec.servers {
            self.check_quorum_before_restart(s).await?;
            let step = "restart k3s (load the new encryption key)";
            self.pool
                .run_within(
                    &s.target(),
                    step,
                    "systemctl restart k3s",
                    self.ready_timeout,
                )
                .await
                .map_err(|e| not_started(s, Role::Server, step, e))?;
            self.wait_ready(s, Role::Server).await?;
        }
        let out = self
            .pool
            .run_within(
                &first.target(),
                "check the servers' encryption hashes",
                STATUS,
                READ_STEP,
            )
            .await?;
        let hashes = out
            .lines()
            .find_map(|l| l.strip_prefix("Server Encryption Hashes:"))
            .map(str::trim)
            .unwrap_or("(not reported)");
        if hashes != "All hashes match" {
            return Err(OpsError::step(
                &first,
                "check the servers' encryption hashes",
                format!("after restarting every server `{STATUS}` says: {hashes}. Restart k3s on the servers it names (one at a time), then check again"),
            ));
        }
        Ok(())
    }

    /// The first server (in order) whose `/readyz` answers ok.
    async fn first_live_server(&self) -> Result<Node, OpsError> {
        first_ready(self.pool, &self.spec.servers, None)
            .await
            .map_err(|tried| OpsError::NoServer(tried.join("; ")))
    }

    async fn rotate_node_certificates(&self, n: &Node, role: Role) -> Result<(), OpsError> {
        let unit = role.unit();
        let step = format!("k3s certificate rotate ({unit} stopped, then started)");
        // k3s starts again whatever the rotate did (it issues any certificate a partial rotate
        // removed), also when the step is cut off (SIGHUP from a dropped connection, SIGTERM from
        // the step limit) between the stop and the start.
        let script = format!(
            "trap 'systemctl start {unit}' HUP TERM; systemctl stop {unit} && {{ k3s certificate rotate; rc=$?; trap - HUP TERM; systemctl start {unit} || exit 1; exit $rc; }}"
        );
        self.pool
            .run_within(&n.target(), &step, &script, self.ready_timeout + READ_STEP)
            .await
            .map_err(|e| not_started(n, role, &step, e))?;
        self.wait_ready(n, role).await
    }

    /// After a server's upgrade every server must serve again before the roll-out moves on: the
    /// next step takes another member away.
    async fn check_servers_after(&self, n: &Node, role: Role) -> Result<(), OpsError> {
        if role == Role::Agent {
            return Ok(());
        }
        self.check_quorum_before_restart(n).await
    }

    /// After an upgrade the node must be Ready again and its kubelet run the wanted version.
    async fn wait_upgraded(&self, n: &Node) -> Result<(), OpsError> {
        let start = Instant::now();
        loop {
            let last = match self.node_list().await {
                Ok(list) => match list.iter().find(|s| s.name == n.name) {
                    Some(s) if s.ready && self.spec.version.matches(&s.kubelet_version) => {
                        return Ok(())
                    }
                    Some(s) if !s.ready => "NotReady".to_string(),
                    Some(s) => format!("kubelet reports {}", s.kubelet_version),
                    None => "not registered".to_string(),
                },
                Err(e) => e.to_string(),
            };
            if start.elapsed() >= self.ready_timeout {
                return Err(OpsError::step(
                    n,
                    "wait for the upgraded node",
                    format!(
                        "not Ready on {} after {} s ({last}); the roll-out stopped here. Look at `journalctl -u k3s*` on the host, fix the cause, then re-run `terraform apply`",
                        self.spec.version.as_str(),
                        self.ready_timeout.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn remove(&self, n: &Node, role: Role) -> Result<(), OpsError> {
        if role == Role::Server {
            self.check_quorum_before_restart(n).await?;
            if let Ok(mut g) = self.join_via.lock() {
                if g.as_ref().is_some_and(|v| v.name == n.name) {
                    *g = None;
                }
            }
        }
        let members = self.node_list().await?;
        if let Some(m) = members.iter().find(|m| m.name == n.name) {
            if m.ready {
                if let Err(e) = self.drain(n, "drain").await {
                    // The node stays in the cluster: it must not stay cordoned by us.
                    if let Err(u) = self
                        .kubectl(
                            n,
                            "uncordon after the failed drain",
                            &format!("{KUBECTL} uncordon {}", quote(&n.name)),
                        )
                        .await
                    {
                        self.warn(format!(
                            "{}: still cordoned after the failed drain ({u}); run `kubectl uncordon {}`",
                            n.target(),
                            n.name
                        ));
                    }
                    return Err(e);
                }
            } else {
                // A dead kubelet never confirms evictions: draining would only time out. Deleting
                // the Node lets its pods be rescheduled elsewhere.
                self.warn(format!(
                    "{}: Node is NotReady, removed without draining",
                    n.target()
                ));
            }
            self.kubectl(
                n,
                "delete Node object",
                &format!(
                    "{KUBECTL} delete node --ignore-not-found {}",
                    quote(&n.name)
                ),
            )
            .await?;
        }
        self.uninstall(n, role).await
    }

    /// Remove k3s from a node. An unreachable node is skipped with a warning: there is nothing
    /// left to clean on a host that is gone, and refusing would strand the rest of the change.
    pub async fn uninstall(&self, n: &Node, role: Role) -> Result<(), OpsError> {
        // config.yaml holds a join token: it goes even when k3s never got installed (a write
        // that happened before a failed installer leaves no uninstall script behind).
        let script = format!(
            "if [ -x {s} ]; then {s}; fi; rm -f {CONFIG_PATH}; rm -rf {NODE_WORK_DIR}",
            s = role.uninstall_script()
        );
        match self
            .pool
            .run(&n.target(), &format!("uninstall {}", role.unit()), &script)
            .await
        {
            Err(e) if e.is_unreachable() => {
                self.warn(format!(
                    "{}: k3s not uninstalled, host unreachable ({e}). Run {} on it if it comes back.",
                    n.target(),
                    role.uninstall_script()
                ));
                Ok(())
            }
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    /// Tear the whole cluster down: agents in parallel, then servers last-joined first.
    pub async fn destroy(&self) -> Result<(), OpsError> {
        let limit = self.spec.agent_parallelism.max(1);
        let futs: Vec<_> = self
            .spec
            .agents
            .iter()
            .map(|a| self.uninstall(a, Role::Agent))
            .collect();
        let agent_results: Vec<Result<(), OpsError>> =
            stream::iter(futs).buffer_unordered(limit).collect().await;
        collect_errors(agent_results)?;
        for s in self.spec.servers.iter().rev() {
            self.uninstall(s, Role::Server).await?;
        }
        Ok(())
    }

    /// Run a kubectl command on the first server (other than `about`) where it succeeds.
    async fn kubectl(&self, about: &Node, step: &str, script: &str) -> Result<String, OpsError> {
        let others: Vec<Node> = self
            .spec
            .servers
            .iter()
            .filter(|s| s.name != about.name)
            .cloned()
            .collect();
        on_first_server(self.pool, &others, step, script, kubectl_limit(script))
            .await
            .map_err(|e| OpsError::step(about, step, e.to_string()))
    }

    /// Node objects as the API server reports them, from the first server that answers.
    pub async fn node_list(&self) -> Result<Vec<NodeStatus>, OpsError> {
        node_list(self.pool, &self.spec.servers).await
    }

    async fn wait_ready(&self, n: &Node, role: Role) -> Result<(), OpsError> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(200);
        let query = match role {
            // A server can answer for itself; an agent is judged by the servers.
            Role::Server => vec![n.clone()],
            Role::Agent => self.spec.servers.clone(),
        };
        loop {
            // Registered, not Ready: with `flannel-backend: none` nodes stay NotReady until the
            // CNI bundle (written after the cluster exists) runs. A server must also serve the API.
            let last = match node_list(self.pool, &query).await {
                Ok(list) => match list.iter().find(|s| s.name == n.name) {
                    Some(_) if role == Role::Agent => return Ok(()),
                    Some(_) => match self
                        .pool
                        .run_within(
                            &n.target(),
                            "check API health",
                            &format!("{KUBECTL} get --raw /readyz"),
                            READ_STEP,
                        )
                        .await
                    {
                        Ok(out) if out.trim() == "ok" => return Ok(()),
                        Ok(out) => format!("API not healthy yet (/readyz: {})", out.trim()),
                        Err(e) => e.to_string(),
                    },
                    None => "not registered with the API server yet".to_string(),
                },
                Err(e) => e.to_string(),
            };
            if start.elapsed() >= self.ready_timeout {
                return Err(OpsError::step(
                    n,
                    "wait for the node to register",
                    format!(
                        "not up after {} s ({last}). Look at `journalctl -u {}` on the host, fix the cause, then re-run `terraform apply`",
                        self.ready_timeout.as_secs(),
                        role.unit()
                    ),
                ));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// The admin kubeconfig of the first server, pointed at the API endpoint.
    pub async fn fetch_kubeconfig(&self) -> Result<String, OpsError> {
        let first = self
            .spec
            .servers
            .first()
            .ok_or_else(|| OpsError::NoServer("the cluster has no servers".into()))?;
        let raw = self
            .pool
            .run(
                &first.target(),
                "read admin kubeconfig",
                &format!("cat {KUBECONFIG_ON_SERVER}"),
            )
            .await?;
        crate::kubeconfig::rewrite(&raw, &self.spec.api_endpoint(), &self.spec.cluster_name)
            .map_err(|e| OpsError::step(first, "read admin kubeconfig", e.to_string()))
    }
}

/// Uncordon `node`, then drop the roll-out's mark (a mark left by a failed removal of the label is
/// dropped at the next apply; the uncordon is idempotent).
fn uncordon_cmd(node: &str) -> String {
    format!(
        "{KUBECTL} uncordon {n} && {KUBECTL} label node {n} {CORDONED_BY_APPLY}-",
        n = quote(node)
    )
}

fn drain_cmd(node: &str) -> String {
    format!(
        "{KUBECTL} drain {} --ignore-daemonsets --delete-emptydir-data --timeout={DRAIN_SECS}s",
        quote(node)
    )
}

/// The step limit for a kubectl script (a drain waits for evictions).
fn kubectl_limit(script: &str) -> Duration {
    if script.contains(" drain ") {
        Duration::from_secs(DRAIN_SECS) + KUBECTL_STEP
    } else {
        KUBECTL_STEP
    }
}

/// kubectl commands that make `n`'s Node carry exactly the labels and taints `spec` wants, and
/// none of those `prior` set that `spec` dropped. Labels or taints set by others stay.
pub fn node_meta_script(prior: &ClusterSpec, spec: &ClusterSpec, n: &Node, role: Role) -> String {
    let node = quote(&n.name);
    let mut labels: Vec<String> = spec
        .node_labels
        .iter()
        .map(|(k, v)| quote(&format!("{k}={v}")))
        .collect();
    labels.extend(
        prior
            .node_labels
            .keys()
            .filter(|k| !spec.node_labels.contains_key(*k))
            .map(|k| quote(&format!("{k}-"))),
    );
    let mut script = String::from("set -e; ");
    if !labels.is_empty() {
        script.push_str(&format!(
            "{KUBECTL} label node {node} --overwrite {}; ",
            labels.join(" ")
        ));
    }
    if role == Role::Server {
        // A taint is identified by key and effect: `key=value:Effect` is removed as
        // `key:Effect-`. Only pairs no longer wanted go (a new value for a kept pair is set by
        // `--overwrite` below); removals first; one already gone is not an error.
        let key_effect = |t: &str| -> String {
            match t.rsplit_once(':') {
                Some((kv, effect)) => format!("{}:{effect}", kv.split('=').next().unwrap_or(kv)),
                None => t.to_string(),
            }
        };
        let wanted: Vec<String> = spec.server_taints.iter().map(|t| key_effect(t)).collect();
        let mut removed: Vec<String> = prior
            .server_taints
            .iter()
            .map(|t| key_effect(t))
            .filter(|ke| !wanted.contains(ke))
            .collect();
        removed.dedup();
        for ke in removed {
            script.push_str(&format!(
                "out=$({KUBECTL} taint node {node} {} 2>&1) || case \"$out\" in *'not found'*) ;; *) echo \"$out\" >&2; exit 1;; esac; ",
                quote(&format!("{ke}-"))
            ));
        }
        for t in &spec.server_taints {
            script.push_str(&format!(
                "{KUBECTL} taint node {node} --overwrite {}; ",
                quote(t)
            ));
        }
    }
    script.push_str("true");
    script
}

/// A k3s start that ran out of time says where to look.
fn not_started(n: &Node, role: Role, step: &str, e: SshError) -> OpsError {
    match e {
        SshError::Timeout { secs, .. } => OpsError::step(
            n,
            step,
            format!(
                "k3s did not report ready within {secs} s (the step was stopped on the node; systemd may still be retrying the start). A joining node that cannot reach its server retries for ever. See `journalctl -u {} -n 200 --no-pager` on the host, fix the cause, then re-run `terraform apply`",
                role.unit()
            ),
        ),
        other => other.into(),
    }
}

/// Runs one [`Action`] (the executor's `act`; a fake in tests).
type ActFn<'s> = dyn Fn(&'s Action) -> BoxFuture<'s, Result<(), OpsError>> + Sync + 's;

/// The stages one after another, stopping at the first that fails. In a parallel stage or in
/// lanes, what already runs beside a failure finishes first; then the stage fails with every
/// error (one failing lane: its own error).
fn run_in_order<'s>(
    stages: &'s [Stage],
    act: &'s ActFn<'s>,
) -> BoxFuture<'s, Result<(), OpsError>> {
    // Boxed: a lane is itself a list of stages (recursion).
    Box::pin(async move {
        for stage in stages {
            match stage {
                Stage::Serial(a) => act(a).await?,
                Stage::Parallel { actions, limit } => {
                    // Futures are built eagerly: a lazy closure here trips async_trait's Send check.
                    let futs: Vec<_> = actions.iter().map(act).collect();
                    let results: Vec<Result<(), OpsError>> = stream::iter(futs)
                        .buffer_unordered((*limit).max(1))
                        .collect()
                        .await;
                    collect_errors(results)?;
                }
                Stage::Lanes(lanes) => {
                    let futs: Vec<_> = lanes.iter().map(|l| run_in_order(l, act)).collect();
                    let mut failed: Vec<OpsError> = futures::future::join_all(futs)
                        .await
                        .into_iter()
                        .filter_map(Result::err)
                        .collect();
                    match failed.len() {
                        0 => {}
                        1 => return Err(failed.remove(0)),
                        _ => collect_errors(failed.into_iter().map(Err).collect())?,
                    }
                }
            }
        }
        Ok(())
    })
}

fn collect_errors(results: Vec<Result<(), OpsError>>) -> Result<(), OpsError> {
    let errors: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(OpsError::Many {
            count: errors.len(),
            details: errors.join("\n  - "),
        })
    }
}

/// Staging is per host: a replacement host under an old node name is another host.
fn stage_key(n: &Node, default_port: u16) -> String {
    format!("{}:{}", n.address, n.ssh_port.unwrap_or(default_port))
}

/// One `sha256sum` over every installed and staged path (missing files print nothing), read by
/// [`probe_hashes`]. Staged files no longer wanted (an earlier apply's, cut-off uploads) are
/// deleted.
fn stage_probe_script(pairs: &[(String, String)]) -> String {
    let paths: Vec<String> = pairs
        .iter()
        .flat_map(|(remote, staged)| [quote(remote), quote(staged)])
        .collect();
    let keep: Vec<String> = pairs
        .iter()
        .filter_map(|(_, st)| st.rsplit('/').next())
        .map(|name| format!("! -name {}", quote(name)))
        .collect();
    format!(
        "mkdir -p -m 0755 {NODE_WORK_DIR}; mkdir -p -m 0700 {STAGE_DIR}; find {STAGE_DIR} -mindepth 1 -maxdepth 1 {} -exec rm -rf {{}} +; sha256sum {} 2>/dev/null; true",
        keep.join(" "),
        paths.join(" ")
    )
}

/// `sha256sum` output as path -> hash.
fn probe_hashes(out: &str) -> BTreeMap<&str, &str> {
    out.lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(sha, path)| (path, sha))
        .collect()
}

/// Shell that splits stdin into the files of `parts` (length, sha256; sent in that order) under
/// `dir`, each named by its sha256 and kept only when exactly its length arrived (SSH already
/// protects the bytes): a cut-off upload leaves nothing staged.
fn stage_upload_script(dir: &str, parts: &[(u64, &str, &str)]) -> String {
    let mut script = format!("set -e; umask 077; cd {}; ", quote(dir));
    for (len, sha, name) in parts {
        // GNU head -c reads no further than the count, so each file ends where the next begins.
        script.push_str(&format!(
            "head -c {len} > {sha}.ffe-tmp; got=$(wc -c < {sha}.ffe-tmp); \
             if [ \"$got\" -ne {len} ]; then rm -f {sha}.ffe-tmp; printf 'the upload of %s arrived short (%s of {len} bytes); apply again\\n' {name} \"$got\" >&2; exit 1; fi; \
             mv -f {sha}.ffe-tmp {sha}; ",
            name = quote(name),
        ));
    }
    script
}

/// Shell that moves each staged file into place (the same rename as an upload's: the running
/// binary is replaced only by a complete file). A staged file that vanished since it was
/// uploaded (removed by hand during the apply) fails the step with the way out.
fn place_script(placements: &[Placement]) -> String {
    placements
        .iter()
        .enumerate()
        .map(|(i, p)| {
            // Two files with the same content share one staged copy: copied until its last use.
            let take = if placements[i + 1..].iter().any(|q| q.staged == p.staged) {
                "cp"
            } else {
                "mv"
            };
            let staged = quote(&p.staged);
            let put = replace_file_script(&p.remote, p.mode, |tmp| format!("{take} {staged} {tmp}"));
            format!(
                "if [ ! -f {staged} ]; then printf 'staged copy %s of %s vanished during the apply; apply again (it is uploaded again)\\n' {staged} {r} >&2; exit 1; fi; {put}; ",
                r = quote(&p.remote),
            )
        })
        .collect()
}

/// sha256 of a local file, streamed (image tarballs are hundreds of MB).
async fn file_sha256(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use tokio::io::AsyncReadExt;
    let mut f = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// One Node object as `kubectl get nodes -o json` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub name: String,
    pub ready: bool,
    pub kubelet_version: String,
    /// Labelled `node-role.kubernetes.io/control-plane` (k3s labels its servers so).
    pub control_plane: bool,
    /// Carries [`CORDONED_BY_APPLY`]: left cordoned by an interrupted roll-out.
    pub cordoned_by_apply: bool,
}

/// Parse a `kubectl get nodes -o json` NodeList.
pub fn parse_node_list(json: &str) -> Result<Vec<NodeStatus>, String> {
    let v: Json = serde_json::from_str(json).map_err(|e| format!("bad NodeList JSON: {e}"))?;
    let items = v["items"].as_array().ok_or("NodeList has no items array")?;
    Ok(items
        .iter()
        .filter_map(|item| {
            let name = item["metadata"]["name"].as_str()?.to_string();
            let ready = item["status"]["conditions"]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
                .unwrap_or(false);
            let kubelet_version = item["status"]["nodeInfo"]["kubeletVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let labels = &item["metadata"]["labels"];
            let control_plane = labels
                .get("node-role.kubernetes.io/control-plane")
                .is_some();
            let cordoned_by_apply = labels.get(CORDONED_BY_APPLY).is_some();
            Some(NodeStatus {
                name,
                ready,
                kubelet_version,
                control_plane,
                cordoned_by_apply,
            })
        })
        .collect())
}

/// `namespace/name` of the pods in a `kubectl get pods -o json` list that a drain evicts: not
/// owned by a DaemonSet, not static (mirror) pods.
pub fn parse_evictable_pods(json: &str) -> Result<Vec<String>, String> {
    let v: Json = serde_json::from_str(json).map_err(|e| format!("bad PodList JSON: {e}"))?;
    let items = v["items"].as_array().ok_or("PodList has no items array")?;
    Ok(items
        .iter()
        .filter(|p| {
            let owned_by_ds = p["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|o| o.iter().any(|r| r["kind"] == "DaemonSet"));
            let mirror = p["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string();
            !owned_by_ds && !mirror
        })
        .filter_map(|p| {
            Some(format!(
                "{}/{}",
                p["metadata"]["namespace"].as_str()?,
                p["metadata"]["name"].as_str()?
            ))
        })
        .collect())
}

/// Run `script` on each server in turn until it succeeds there; the error lists every attempt.
pub async fn on_first_server(
    pool: &SshPool,
    servers: &[Node],
    step: &str,
    script: &str,
    limit: Duration,
) -> Result<String, OpsError> {
    let mut failures = vec![];
    for s in servers {
        match pool.run_within(&s.target(), step, script, limit).await {
            Ok(out) => return Ok(out),
            Err(e) => failures.push(e.to_string()),
        }
    }
    Err(OpsError::NoServer(if failures.is_empty() {
        "no server to ask".into()
    } else {
        failures.join("; ")
    }))
}

/// Ask the servers in order until one answers with the node list.
pub async fn node_list(pool: &SshPool, servers: &[Node]) -> Result<Vec<NodeStatus>, OpsError> {
    let out = on_first_server(
        pool,
        servers,
        "list nodes",
        &format!("{KUBECTL} get nodes -o json"),
        KUBECTL_STEP,
    )
    .await?;
    parse_node_list(&out).map_err(OpsError::NoServer)
}

/// Parse the facts script output of [`read_node_script`].
fn parse_live(out: &str) -> LiveNode {
    let mut n = LiveNode::default();
    if let Some((now, certs)) = super::certs::parse_expiry(out) {
        n.earliest_cert = certs
            .into_iter()
            .min_by_key(|c| c.not_after)
            .map(|c| (c.path, c.not_after - now));
    }
    for line in out.lines() {
        if let Some(v) = line.strip_prefix("version=") {
            // `k3s version v1.33.5+k3s1 (hash)`
            n.version = v.split_whitespace().nth(2).map(str::to_string);
        } else if let Some(v) = line.strip_prefix("config=") {
            let v = v.trim();
            n.config_sha256 = (!v.is_empty()).then(|| v.to_string());
        } else if let Some(v) = line.strip_prefix("active=") {
            n.active = v.trim() == "active";
        } else if let Some(v) = line.strip_prefix("join=") {
            let v = v.trim();
            n.join_address = (!v.is_empty()).then(|| v.to_string());
        }
    }
    n
}

fn read_node_script(role: Role) -> String {
    let globs: Vec<&str> = match role {
        Role::Server => super::certs::SERVER_CERT_GLOBS
            .iter()
            .chain(super::certs::AGENT_CERT_GLOBS)
            .copied()
            .collect(),
        Role::Agent => super::certs::AGENT_CERT_GLOBS.to_vec(),
    };
    // The join line is read with shell builtins (no process on every refresh).
    format!(
        "echo \"version=$(k3s --version 2>/dev/null | head -n1)\"; \
         echo \"config=$({DRIFT_VIEW_SCRIPT})\"; \
         echo \"active=$(systemctl is-active {} 2>/dev/null)\"; \
         {}\n{}",
        role.unit(),
        join_line_script(CONFIG_PATH),
        super::certs::expiry_script(&globs)
    )
}

/// Prints `join=ADDR` for the config's `server: https://ADDR:6443` line (`join=` without one),
/// with shell builtins only.
fn join_line_script(config: &str) -> String {
    format!(
        "join=''; if [ -r {config} ]; then while IFS= read -r l; do case \"$l\" in 'server: https://'*':6443') join=${{l#server: https://}}; join=${{join%:6443}}; break ;; esac; done < {config}; fi; echo \"join=$join\"",
        config = quote(config)
    )
}

/// Days before expiry from which the plan warns about a k3s certificate.
pub const CERT_WARN_DAYS: i64 = 30;

/// Plan warnings for nodes whose first-expiring k3s certificate ends within [`CERT_WARN_DAYS`].
pub fn cert_warnings(live: &LiveCluster) -> Vec<String> {
    live.nodes
        .iter()
        .filter_map(|(name, l)| {
            let (path, left) = l.earliest_cert.as_ref()?;
            (*left < CERT_WARN_DAYS * 86_400).then(|| {
                let when = if *left <= 0 {
                    "has EXPIRED".to_string()
                } else {
                    format!("expires in {} days", left / 86_400)
                };
                format!(
                    "{name}: {path} {when}. k3s renews its leaf certificates when it starts within {} days of their expiry: restart k3s on {name} (`systemctl restart k3s`, or `k3s-agent` on a worker), one server at a time, then check with `ffe-ha verify` (certs.expiry)",
                    super::certs::K3S_RENEW_DAYS
                )
            })
        })
        .collect()
}

/// Read what every node of `spec` runs, in parallel. Unreachable nodes read as "nothing
/// installed" (a diff in the plan, not an error) and are listed in the returned warnings.
pub async fn read_live(pool: &SshPool, spec: &ClusterSpec) -> (LiveCluster, Vec<String>) {
    let nodes: Vec<(Node, Role)> = spec.all_nodes().map(|(n, r)| (n.clone(), r)).collect();
    let reads: Vec<(String, Result<String, SshError>)> = stream::iter(nodes)
        .map(|(n, role)| async move {
            let t: Target = n.target();
            let r = pool
                .run_within(&t, "read k3s state", &read_node_script(role), READ_STEP)
                .await;
            (n.name, r)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut live = LiveCluster::default();
    let mut warnings = vec![];
    for (name, r) in reads {
        match r {
            Ok(out) => {
                live.nodes.insert(name, parse_live(&out));
            }
            Err(e) => warnings.push(e.to_string()),
        }
    }
    let active_servers: Vec<Node> = spec
        .servers
        .iter()
        .filter(|s| live.nodes.get(&s.name).is_some_and(|l| l.active))
        .cloned()
        .collect();
    if !active_servers.is_empty() {
        match node_list(pool, &active_servers).await {
            Ok(list) => {
                live.left_cordoned = list
                    .iter()
                    .filter(|s| s.cordoned_by_apply)
                    .map(|s| s.name.clone())
                    .collect();
                live.members = list.into_iter().map(|s| s.name).collect();
            }
            Err(e) => {
                // unknown, not empty: the planner refuses to act on it
                live.members_unknown = Some(e.to_string());
                warnings.push(e.to_string());
            }
        }
    }
    (live, warnings)
}

/// The join secrets already configured on the first server, if k3s was installed there before
/// (an earlier apply that was interrupted): reusing them lets a retry converge. A read that
/// fails is an error, never "no secrets": minting new ones would lock the nodes that already
/// joined out (issue 11 B.10).
pub async fn existing_secrets(
    pool: &SshPool,
    spec: &ClusterSpec,
) -> Result<Option<JoinSecrets>, OpsError> {
    let Some(first) = spec.servers.first() else {
        return Ok(None);
    };
    let step = "read existing k3s token";
    let out = pool
        .run(
            &first.target(),
            step,
            &format!("if [ -e {CONFIG_PATH} ]; then cat {CONFIG_PATH}; fi"),
        )
        .await?;
    JoinSecrets::from_config(&out).map_err(|m| {
        OpsError::step(
            first,
            step,
            format!("{CONFIG_PATH}: {m}; fix or remove it before applying"),
        )
    })
}

/// Rotate the server token on the first server that serves the API: `k3s token rotate`
/// (k3s >= 1.28.3; docs.k3s.io cli/token). Afterwards every server must restart with the new
/// token in its config, or it cannot read the bootstrap data ("encrypted with different token").
/// The old token goes through stdin into `K3S_TOKEN`; the new one is an argument of the command
/// for the second it runs.
pub async fn rotate_server_token(
    pool: &SshPool,
    spec: &ClusterSpec,
    old_secret: &str,
    new_secret: &str,
) -> Result<Node, OpsError> {
    let s = first_ready(pool, &spec.servers, None)
        .await
        .map_err(|tried| OpsError::NoServer(tried.join("; ")))?;
    let input = format!("{old_secret}\n{new_secret}\n");
    pool.run_input_within(
        &s.target(),
        "rotate the server token (k3s token rotate)",
        "IFS= read -r K3S_TOKEN && IFS= read -r new && export K3S_TOKEN && k3s token rotate --new-token \"$new\"",
        Some(StdinSource::Bytes(input.as_bytes())),
        KUBECTL_STEP,
    )
    .await?;
    Ok(s)
}

/// The first of `servers` (in order, the one named `except` left out) whose `/readyz` answers
/// ok; otherwise what each one said.
async fn first_ready(
    pool: &SshPool,
    servers: &[Node],
    except: Option<&str>,
) -> Result<Node, Vec<String>> {
    let mut tried = vec![];
    for s in servers.iter().filter(|s| Some(s.name.as_str()) != except) {
        match pool
            .run_within(
                &s.target(),
                "check server health",
                &format!("{KUBECTL} get --raw /readyz"),
                READ_STEP,
            )
            .await
        {
            Ok(out) if out.trim() == "ok" => return Ok(s.clone()),
            Ok(out) => tried.push(format!("{}: /readyz {}", s.name, out.trim())),
            Err(e) => tried.push(format!("{}: {e}", s.name)),
        }
    }
    Err(tried)
}

/// Where k3s writes the full server token (`K10<CA hash>::server:<secret>`).
pub const SERVER_TOKEN_FILE: &str = "/var/lib/rancher/k3s/server/token";

/// The cluster CA hash from `server`'s token file; `None` when k3s has not written it (not
/// installed or never started).
pub async fn read_ca_hash(pool: &SshPool, server: &Node) -> Result<Option<String>, OpsError> {
    let step = "read cluster CA hash";
    let out = pool
        .run(
            &server.target(),
            step,
            &format!("if [ -e {SERVER_TOKEN_FILE} ]; then cat {SERVER_TOKEN_FILE}; fi"),
        )
        .await?;
    if out.trim().is_empty() {
        return Ok(None);
    }
    token::ca_hash_of_server_token_file(&out)
        .map(Some)
        .map_err(|m| OpsError::step(server, step, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, stdin: &[u8]) -> std::process::Output {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin)
            .expect("write");
        child.wait_with_output().expect("wait")
    }

    fn sha_hex(b: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(b))
    }

    #[test]
    fn the_probe_reads_each_path_hash_and_misses_absent_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("k3s"), dir.path().join("with space.tar"));
        std::fs::write(&a, b"k3s").expect("write");
        std::fs::write(&b, b"images").expect("write");
        let missing = dir.path().join("absent");
        let out = sh(
            &format!(
                "sha256sum {} {} {} 2>/dev/null; true",
                quote(&a.display().to_string()),
                quote(&missing.display().to_string()),
                quote(&b.display().to_string())
            ),
            b"",
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let found = probe_hashes(&text);
        assert_eq!(
            found.get(a.to_str().expect("utf-8")),
            Some(&sha_hex(b"k3s").as_str())
        );
        assert_eq!(
            found.get(b.to_str().expect("utf-8")),
            Some(&sha_hex(b"images").as_str())
        );
        assert_eq!(found.get(missing.to_str().expect("utf-8")), None);
    }

    #[test]
    fn one_upload_stages_several_files_by_hash_and_refuses_a_short_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        let (a, b) = (vec![7u8; 300_000], b"#!/bin/sh\necho install\n".to_vec());
        let (sa, sb) = (sha_hex(&a), sha_hex(&b));
        let parts = [
            (a.len() as u64, sa.as_str(), "/usr/local/bin/k3s"),
            (
                b.len() as u64,
                sb.as_str(),
                "/var/lib/rancher/ffe/install.sh",
            ),
        ];
        let stream = [a.clone(), b.clone()].concat();
        let out = sh(&stage_upload_script(&d, &parts), &stream);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(std::fs::read(dir.path().join(&sa)).expect("a"), a);
        assert_eq!(std::fs::read(dir.path().join(&sb)).expect("b"), b);
        let fresh = tempfile::tempdir().expect("tempdir");
        // Cut short in the second file: the first, complete, stays staged (the next
        // apply uses it); nothing of the second does.
        let out = sh(
            &stage_upload_script(&fresh.path().display().to_string(), &parts),
            &stream[..stream.len() - 1],
        );
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr)
            .contains("the upload of /var/lib/rancher/ffe/install.sh arrived short"));
        let left: Vec<String> = std::fs::read_dir(fresh.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, vec![sa.clone()]);
    }

    #[test]
    fn placing_moves_staged_files_into_place_with_their_modes_also_when_two_share_content() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let staged = dir.path().join("staged/abc");
        std::fs::create_dir_all(staged.parent().expect("parent")).expect("mkdir");
        std::fs::write(&staged, b"binary").expect("write");
        let place = |remote: &str, mode| Placement {
            staged: staged.display().to_string(),
            remote: dir.path().join(remote).display().to_string(),
            mode,
        };
        let out = sh(
            &place_script(&[place("bin/k3s", 0o755), place("work/install.sh", 0o700)]),
            b"",
        );
        assert!(out.status.success(), "{out:?}");
        for (f, mode) in [("bin/k3s", 0o755), ("work/install.sh", 0o700)] {
            let p = dir.path().join(f);
            assert_eq!(std::fs::read(&p).expect("placed"), b"binary");
            let m = std::fs::metadata(&p).expect("stat").permissions().mode();
            assert_eq!(m & 0o777, mode, "{f}");
        }
        assert!(!staged.exists(), "the staged copy is moved at its last use");
        // Run again: the staged copy is gone, and the step says so instead of installing.
        let out = sh(&place_script(&[place("bin/k3s", 0o755)]), b"");
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("vanished during the apply"));
    }

    #[test]
    fn live_facts_parse() {
        let n =
            parse_live("version=k3s version v1.33.5+k3s1 (abc)\nconfig=deadbeef\nactive=active\n");
        assert_eq!(n.version.as_deref(), Some("v1.33.5+k3s1"));
        assert_eq!(n.config_sha256.as_deref(), Some("deadbeef"));
        assert!(n.active);
        let none = parse_live("version=\nconfig=\nactive=inactive\n");
        assert_eq!(none, LiveNode::default());
        let with_certs = parse_live(
            "version=\nconfig=\nactive=active\nnow 1000\ncert 90000 /a.crt\ncert 5000 /b.crt\n",
        );
        assert_eq!(with_certs.earliest_cert, Some(("/b.crt".to_string(), 4000)));
        let mut live = LiveCluster::default();
        live.nodes.insert("w0".into(), with_certs);
        let soon = LiveNode {
            earliest_cert: Some(("/c.crt".into(), 40 * 86_400)),
            ..LiveNode::default()
        };
        live.nodes.insert("w1".into(), soon);
        let w = cert_warnings(&live);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("w0: /b.crt expires in 0 days"), "{w:?}");
    }

    #[test]
    fn a_failed_drain_names_the_pods_it_left_but_not_daemonsets_or_static_pods() {
        let json = r#"{"items":[
          {"metadata":{"namespace":"ffe","name":"api-1","ownerReferences":[{"kind":"ReplicaSet"}]}},
          {"metadata":{"namespace":"kube-system","name":"calico-node-x","ownerReferences":[{"kind":"DaemonSet"}]}},
          {"metadata":{"namespace":"kube-system","name":"kube-vip-w1","annotations":{"kubernetes.io/config.mirror":"abc"}}},
          {"metadata":{"namespace":"ffe-data","name":"db-0"}}
        ]}"#;
        assert_eq!(
            parse_evictable_pods(json).unwrap(),
            vec!["ffe/api-1".to_string(), "ffe-data/db-0".to_string()]
        );
        assert!(parse_evictable_pods("{}").is_err());
    }

    /// A fake `act`: each action sleeps its time, records when it started and ended, and the
    /// ones named in `fail` fail.
    struct FakeAct {
        started: Instant,
        log: std::sync::Mutex<Vec<(String, &'static str, Duration)>>,
        fail: Vec<&'static str>,
    }

    impl FakeAct {
        fn new(fail: &[&'static str]) -> Self {
            FakeAct {
                started: Instant::now(),
                log: Default::default(),
                fail: fail.to_vec(),
            }
        }

        async fn act(&self, a: &Action) -> Result<(), OpsError> {
            let name = match a.node() {
                Some(n) => n.name.clone(),
                None => "kubeconfig".into(),
            };
            let note = |what| {
                if let Ok(mut l) = self.log.lock() {
                    l.push((name.clone(), what, self.started.elapsed()));
                }
            };
            note("start");
            let (ms, fails) = match name.as_str() {
                n if self.fail.contains(&n) => (50, true),
                n if n.starts_with('w') => (150, false),
                _ => (20, false),
            };
            tokio::time::sleep(Duration::from_millis(ms)).await;
            note("end");
            if fails {
                return Err(OpsError::step(
                    &Node::new(name.clone(), "10.0.0.1"),
                    "install",
                    "broken",
                ));
            }
            Ok(())
        }

        fn at(&self, name: &str, what: &str) -> Option<Duration> {
            self.log
                .lock()
                .ok()?
                .iter()
                .find(|(n, w, _)| n == name && *w == what)
                .map(|e| e.2)
        }
    }

    fn create_stages() -> Vec<Stage> {
        let n = |name: &str| Node::new(name, "10.0.0.1");
        vec![
            Stage::Serial(Action::InitCluster(n("m0"))),
            Stage::Lanes(vec![
                vec![
                    Stage::Serial(Action::InstallServer(n("m1"))),
                    Stage::Serial(Action::InstallServer(n("m2"))),
                    Stage::Serial(Action::FetchKubeconfig),
                ],
                vec![Stage::Parallel {
                    actions: vec![Action::InstallAgent(n("w0")), Action::InstallAgent(n("w1"))],
                    limit: 2,
                }],
            ]),
        ]
    }

    #[tokio::test]
    async fn lanes_run_side_by_side_and_a_failing_lane_lets_the_other_finish() {
        let stages = create_stages();
        let fake = FakeAct::new(&[]);
        run_in_order(&stages, &|a| Box::pin(fake.act(a)))
            .await
            .expect("all succeed");
        // The agents start before the server lane's second join has ended.
        assert!(fake.at("w0", "start") < fake.at("m2", "end"));
        assert!(fake.at("m0", "end") <= fake.at("w0", "start"));

        let fake = FakeAct::new(&["m1"]);
        let err = run_in_order(&stages, &|a| Box::pin(fake.act(a)))
            .await
            .expect_err("m1 fails");
        // One failing lane: its own error, not a list of one.
        assert!(matches!(err, OpsError::Step { .. }), "{err}");
        assert!(err.to_string().contains("m1"), "{err}");
        assert_eq!(
            fake.at("m2", "start"),
            None,
            "the lane went on after its failure"
        );
        assert_eq!(fake.at("kubeconfig", "start"), None);
        assert!(fake.at("w0", "end").is_some() && fake.at("w1", "end").is_some());

        let fake = FakeAct::new(&["m1", "w1"]);
        let err = run_in_order(&stages, &|a| Box::pin(fake.act(a)))
            .await
            .expect_err("both lanes fail");
        let text = err.to_string();
        assert!(text.contains("m1") && text.contains("w1"), "{text}");
        assert!(fake.at("w0", "end").is_some());
    }

    #[test]
    fn the_join_line_is_read_from_the_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.yaml");
        let read = |text: Option<&str>| {
            match text {
                Some(t) => std::fs::write(&config, t).expect("write"),
                None => {
                    let _ = std::fs::remove_file(&config);
                }
            }
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(join_line_script(&config.display().to_string()))
                .output()
                .expect("sh");
            parse_live(&String::from_utf8_lossy(&out.stdout)).join_address
        };
        assert_eq!(
            read(Some(
                "token: x\nserver: https://10.0.1.12:6443\nnode-name: w\n"
            )),
            Some("10.0.1.12".to_string())
        );
        assert_eq!(read(Some("cluster-init: true\ntoken: x\n")), None);
        assert_eq!(read(None), None);
    }

    #[test]
    fn node_list_parses_readiness() {
        let json = r#"{"items":[
          {"metadata":{"name":"a"},"status":{"conditions":[{"type":"Ready","status":"True"}],"nodeInfo":{"kubeletVersion":"v1.33.5+k3s1"}}},
          {"metadata":{"name":"b"},"status":{"conditions":[{"type":"Ready","status":"False"}]}}
        ]}"#;
        let l = parse_node_list(json).unwrap();
        assert_eq!(l.len(), 2);
        assert!(l[0].ready && !l[1].ready);
        assert_eq!(l[0].kubelet_version, "v1.33.5+k3s1");
        assert!(parse_node_list("not json").is_err());
    }
}

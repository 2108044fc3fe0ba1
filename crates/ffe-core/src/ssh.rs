//! SSH to nodes through the real OpenSSH client (`openssh` crate, one multiplexed master per host).
//!
//! Every remote step has a name, a timeout and an error that names the host, the step and what to
//! do next. Secrets travel on stdin only, never on a command line (command lines show up in `ps`
//! and in audit logs).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Mutex, OnceCell};

use crate::shell::quote;

/// Lines of login-script output [`SshPool::run_with_clock`] skips before its marker.
const READY_LINES_MAX: usize = 100;

/// Seconds between the TERM and the KILL `timeout` sends a remote command at its step's limit.
const REMOTE_KILL_GRACE_SECS: u64 = 10;

const IDLE_SECS: std::num::NonZeroUsize = match std::num::NonZeroUsize::new(60) {
    Some(n) => n,
    None => unreachable!(),
};

/// How to reach nodes. Shared by every resource of one provider configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSettings {
    pub user: String,
    pub port: u16,
    /// `None`: the ssh-agent / the user's default identities.
    pub private_key_path: Option<PathBuf>,
    /// Pins every node's host key. `None` refuses to connect unless
    /// [`insecure_ignore_host_keys`](Self::insecure_ignore_host_keys) is set.
    pub known_hosts_file: Option<PathBuf>,
    /// Without a known_hosts file, accept any host key (throw-away labs only).
    pub insecure_ignore_host_keys: bool,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
}

impl Default for SshSettings {
    fn default() -> Self {
        Self {
            user: "root".into(),
            port: 22,
            private_key_path: None,
            known_hosts_file: None,
            insecure_ignore_host_keys: false,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(1800),
        }
    }
}

/// SSH settings as an operator writes them (the provider block, the CLI's inventory and flags),
/// before validation. `None` takes the default. As JSON/YAML (the CLI's `ops_inventory.ssh`) the
/// fields are the provider's attributes without their `ssh_` prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshOptions {
    pub user: Option<String>,
    pub port: Option<i64>,
    pub private_key_path: Option<String>,
    pub known_hosts_file: Option<String>,
    pub insecure_ignore_host_keys: Option<bool>,
    pub connect_timeout_seconds: Option<i64>,
}

/// A setting that cannot be used, named by its provider attribute (the tfvars variable of the
/// same name in the `ha` environment).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SshSettingsError {
    pub attribute: &'static str,
    pub message: String,
}

/// `~/x` to `$HOME/x`; anything else unchanged.
pub fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

impl SshSettings {
    /// Validated settings: the one path from operator input to [`SshSettings`], shared by the
    /// provider and the CLI.
    pub fn from_options(o: &SshOptions) -> Result<SshSettings, SshSettingsError> {
        let d = SshSettings::default();
        let port = o.port.unwrap_or(22);
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| SshSettingsError {
                attribute: "ssh_port",
                message: format!("ssh_port {port} is not a TCP port: use 1-65535"),
            })?;
        let timeout = o.connect_timeout_seconds.unwrap_or(10);
        if !(1..=300).contains(&timeout) {
            return Err(SshSettingsError {
                attribute: "ssh_connect_timeout_seconds",
                message: "ssh_connect_timeout_seconds must be between 1 and 300".into(),
            });
        }
        for (attribute, value) in [
            ("ssh_user", &o.user),
            ("ssh_private_key_path", &o.private_key_path),
            ("ssh_known_hosts_file", &o.known_hosts_file),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(SshSettingsError {
                    attribute,
                    message: format!(
                        "{attribute} is empty: set a value, or leave it unset for the default"
                    ),
                });
            }
        }
        let path = |p: &Option<String>| p.as_deref().map(expand_home);
        Ok(SshSettings {
            user: o.user.clone().unwrap_or(d.user),
            port,
            private_key_path: path(&o.private_key_path),
            known_hosts_file: path(&o.known_hosts_file),
            insecure_ignore_host_keys: o.insecure_ignore_host_keys.unwrap_or(false),
            connect_timeout: Duration::from_secs(timeout.unsigned_abs()),
            command_timeout: d.command_timeout,
        })
    }

    /// Why these settings are unsafe or cannot connect, when host keys are not pinned.
    pub fn pinning_warning(&self) -> Option<&'static str> {
        match (&self.known_hosts_file, self.insecure_ignore_host_keys) {
            (Some(_), _) => None,
            (None, true) => Some("ssh_insecure_ignore_host_keys = true: any host answering on a node's address is trusted, and a man-in-the-middle could capture the cluster token. Use only for throw-away labs; set ssh_known_hosts_file for anything real."),
            (None, false) => Some("ssh_known_hosts_file is not set: planning works, but apply will refuse to connect to any node. Set ssh_known_hosts_file to a known_hosts file holding each node's verified host key."),
        }
    }
}

/// One node as SSH sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Node name, used in every message.
    pub name: String,
    pub address: String,
    /// Overrides [`SshSettings::port`].
    pub port: Option<u16>,
}

impl Target {
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            address: address.into(),
            port: None,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name, self.address)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("host {host}: cannot connect over SSH as {user} on port {port}: {reason}. {hint}")]
    Connect {
        host: String,
        user: String,
        port: u16,
        reason: String,
        hint: &'static str,
    },
    #[error("host {host}: step '{step}' did not finish within {secs} s; the host may be overloaded or hung. Check it, then re-run `terraform apply`")]
    Timeout {
        host: String,
        step: String,
        secs: u64,
    },
    #[error("host {host}: step '{step}' failed (exit code {code}): {stderr}")]
    Failed {
        host: String,
        step: String,
        code: i32,
        stderr: String,
    },
    #[error("host {host}: step '{step}': the SSH connection broke: {reason}. Check that the host is up, then re-run `terraform apply`")]
    Broken {
        host: String,
        step: String,
        reason: String,
    },
    #[error("local file {path}: {reason}")]
    LocalFile { path: String, reason: String },
}

impl SshError {
    /// The step the error happened in, when it names one.
    pub fn step(&self) -> Option<&str> {
        match self {
            SshError::Timeout { step, .. }
            | SshError::Failed { step, .. }
            | SshError::Broken { step, .. } => Some(step),
            _ => None,
        }
    }

    /// True when the host could not be reached over the network (down, no route, connection
    /// lost). A refused key, a wrong host key or a closed port are not: those need a fix.
    pub fn is_unreachable(&self) -> bool {
        match self {
            SshError::Connect { reason, .. } => network_failure(reason),
            SshError::Broken { .. } => true,
            _ => false,
        }
    }
}

/// A host's clock against this machine's, in seconds: the true offset lies within
/// `offset ± uncertainty` (half the round trip that bracketed the reading).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockReading {
    pub offset: f64,
    pub uncertainty: f64,
}

/// One step of [`SshPool::run_steps`]: its name (in errors), its script (run with `sh -c`, as
/// root) and its limit.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub script: String,
    pub limit: Duration,
}

impl Step {
    pub fn new(name: impl Into<String>, script: impl Into<String>, limit: Duration) -> Self {
        Self {
            name: name.into(),
            script: script.into(),
            limit,
        }
    }
}

/// What [`SshPool::run_steps`] brought back: the stdout of each step that succeeded, in order,
/// and the failure of the step that stopped the run (`None`: every step succeeded).
#[derive(Debug)]
pub struct StepsOutput {
    pub outputs: Vec<String>,
    pub failure: Option<SshError>,
}

impl StepsOutput {
    /// Every step's stdout, or the failure.
    pub fn all(self) -> Result<Vec<String>, SshError> {
        match self.failure {
            Some(e) => Err(e),
            None => Ok(self.outputs),
        }
    }
}

/// Start of the marker line [`SshPool::run_steps`] prints before each step.
const STEP_MARK: &str = "ffe-step-marker:";

/// The one script [`SshPool::run_steps`] runs: each step under its own `timeout`, preceded by
/// its marker on stdout and stderr, the first failure ending the script with its exit code.
fn steps_script(steps: &[Step]) -> String {
    let mut script = String::new();
    for (i, st) in steps.iter().enumerate() {
        // The marker starts a line of its own, also after output without a final newline.
        script.push_str(&format!(
            "printf '\\n{STEP_MARK}{i}\\n'; printf '\\n{STEP_MARK}{i}\\n' >&2; timeout -k {REMOTE_KILL_GRACE_SECS} {secs} sh -c {body} || exit $?\n",
            secs = st.limit.as_secs().max(1),
            body = quote(&st.script),
        ));
    }
    script
}

/// One stream of [`steps_script`]'s output, cut at the markers: one entry per step that started.
fn split_steps(text: &str) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    for line in text.lines() {
        if line
            .strip_prefix(STEP_MARK)
            .is_some_and(|n| n.parse::<usize>().is_ok())
        {
            parts.push(String::new());
        } else if let Some(last) = parts.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    parts
}

/// Result of a remote command that is allowed to fail.
#[derive(Debug, Clone)]
pub struct RemoteOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p == &text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

fn network_failure(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    ["timed out", "no route", "unreachable", "connection reset"]
        .iter()
        .any(|w| r.contains(w))
}

fn connect_hint(reason: &str) -> &'static str {
    let r = reason.to_ascii_lowercase();
    if r.contains("permission denied") {
        "SSH refused the key: check ssh_user and ssh_private_key_path, and that the public key is in the user's authorized_keys on that host"
    } else if r.contains("host key verification failed")
        || r.contains("identification has changed")
        || r.contains("no ed25519 host key is known")
        || r.contains("host key is known")
    {
        "The host key does not match ssh_known_hosts_file: if the host was legitimately reinstalled, update that file; otherwise do not proceed (possible man-in-the-middle)"
    } else if r.contains("connection refused") {
        "Nothing listens on that port: check ssh_port and that sshd runs on the host"
    } else if r.contains("timed out") || r.contains("no route") || r.contains("unreachable") {
        "The host is unreachable: check the address in your tfvars, the host's power and network, and firewalls between here and the host"
    } else if r.contains("no such file") || r.contains("identity file") {
        "Check ssh_private_key_path points at a readable private key"
    } else {
        "Check the address, ssh_user, ssh_port and ssh_private_key_path"
    }
}

/// One host's session, opened at most once even when many steps ask for it together.
type SessionSlot = Arc<OnceCell<Arc<Session>>>;

/// A pool of multiplexed SSH sessions, one per host, opened on first use.
pub struct SshPool {
    settings: SshSettings,
    sessions: Mutex<HashMap<(String, u16), SessionSlot>>,
}

impl SshPool {
    pub fn new(settings: SshSettings) -> Self {
        Self {
            settings,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> &SshSettings {
        &self.settings
    }

    fn port(&self, t: &Target) -> u16 {
        t.port.unwrap_or(self.settings.port)
    }

    async fn connect(&self, t: &Target) -> Result<Session, SshError> {
        let port = self.port(t);
        let mut b = SessionBuilder::default();
        b.user(self.settings.user.clone())
            .port(port)
            .connect_timeout(self.settings.connect_timeout)
            .server_alive_interval(Duration::from_secs(5))
            // The master must not outlive the provider process by much: it exits after 60 s idle
            // (a later command reconnects, see `run_status`).
            .control_persist(ControlPersist::IdleFor(IDLE_SECS));
        if t.address.is_empty()
            || t.address.starts_with('-')
            || t.address.contains(char::is_whitespace)
        {
            // ssh would read a leading '-' as an option.
            return Err(SshError::Connect {
                host: t.to_string(),
                user: self.settings.user.clone(),
                port,
                reason: format!("{:?} is not a host address", t.address),
                hint: "Use an IPv4 address or a host name",
            });
        }
        if let Some(key) = &self.settings.private_key_path {
            if !key.is_file() {
                return Err(SshError::Connect {
                    host: t.to_string(),
                    user: self.settings.user.clone(),
                    port,
                    reason: format!("private key {} does not exist", key.display()),
                    hint: "Set ssh_private_key_path to an existing private key file",
                });
            }
            b.keyfile(key);
        }
        match &self.settings.known_hosts_file {
            Some(file) => {
                b.known_hosts_check(KnownHosts::Strict)
                    .user_known_hosts_file(file);
            }
            None if self.settings.insecure_ignore_host_keys => {
                b.known_hosts_check(KnownHosts::Accept)
                    .user_known_hosts_file("/dev/null");
            }
            None => {
                // Without pinning, whoever answers on the address would receive the cluster token.
                return Err(SshError::Connect {
                    host: t.to_string(),
                    user: self.settings.user.clone(),
                    port,
                    reason: "no host key to check it against (ssh_known_hosts_file is not set)".into(),
                    hint: "Set ssh_known_hosts_file to a known_hosts file with every node's verified host key (ssh-keyscan, then compare fingerprints); only for a throw-away lab, set ssh_insecure_ignore_host_keys = true instead",
                });
            }
        }
        tracing::debug!(host = %t, port, "opening SSH master connection");
        b.connect(&t.address).await.map_err(|e| {
            let reason = error_chain(&e);
            SshError::Connect {
                host: t.to_string(),
                user: self.settings.user.clone(),
                port,
                hint: connect_hint(&reason),
                reason,
            }
        })
    }

    async fn session(&self, t: &Target) -> Result<Arc<Session>, SshError> {
        let key = (t.address.clone(), self.port(t));
        let cell = {
            let mut map = self.sessions.lock().await;
            map.entry(key).or_default().clone()
        };
        cell.get_or_try_init(|| async {
            let started = std::time::Instant::now();
            let s = self.connect(t).await.map(Arc::new);
            tracing::debug!(host = %t, elapsed = ?started.elapsed(), ok = s.is_ok(), "SSH master connection set up");
            s
        })
        .await
        .cloned()
    }

    /// Close every open master connection (a short-lived process such as the CLI calls this
    /// before it exits, so no `ssh` master lingers for the idle period).
    pub async fn close_all(&self) {
        let slots: Vec<SessionSlot> = self.sessions.lock().await.drain().map(|(_, v)| v).collect();
        for slot in slots {
            let session = Arc::try_unwrap(slot)
                .ok()
                .and_then(|cell| cell.into_inner())
                .and_then(|s| Arc::try_unwrap(s).ok());
            if let Some(session) = session {
                // `ssh -O exit` to a wedged master must not keep the process from exiting.
                match tokio::time::timeout(Duration::from_secs(2), session.close()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::debug!(error = %e, "closing an SSH master"),
                    Err(_) => tracing::debug!("closing an SSH master timed out"),
                }
            }
        }
    }

    /// Forget a host's session (after it broke) so the next call reconnects.
    async fn forget(&self, t: &Target) {
        self.sessions
            .lock()
            .await
            .remove(&(t.address.clone(), self.port(t)));
    }

    /// Run `script` with `sh -c` (through `sudo -n` for non-root users), feeding `stdin` to it,
    /// within the default step limit ([`SshSettings::command_timeout`]).
    /// A non-zero exit is returned, not an error.
    pub async fn run_status(
        &self,
        t: &Target,
        step: &str,
        script: &str,
        stdin: Option<StdinSource<'_>>,
    ) -> Result<RemoteOutput, SshError> {
        self.run_status_within(t, step, script, stdin, self.settings.command_timeout)
            .await
    }

    /// Like [`run_status`](Self::run_status) within `limit`. The limit holds on both ends: the
    /// remote command runs under `timeout -k`, so nothing is left running on the node when the
    /// step gives up, and the local wait (connection set-up included) ends shortly after.
    pub async fn run_status_within(
        &self,
        t: &Target,
        step: &str,
        script: &str,
        stdin: Option<StdinSource<'_>>,
        limit: Duration,
    ) -> Result<RemoteOutput, SshError> {
        match self.run_once(t, step, script, stdin, limit).await {
            Err(SshError::Broken { .. }) => {
                // A cached master may have died (host rebooted, network blip): reconnect once.
                self.forget(t).await;
                self.run_once(t, step, script, stdin, limit).await
            }
            other => other,
        }
    }

    /// `sh -c` (the caller adds the script and its arguments) as root within `secs` on the node:
    /// non-root users escalate with `sudo -n` (never prompt, fail clearly instead); TERM at the
    /// limit, KILL 10 s later, so the node keeps nothing of a step we gave up on.
    fn bounded_shell<'s>(
        &self,
        session: &'s Session,
        secs: u64,
    ) -> openssh::OwningCommand<&'s Session> {
        let mut cmd = if self.settings.user == "root" {
            session.command("timeout")
        } else {
            let mut c = session.command("sudo");
            c.arg("-n").arg("timeout");
            c
        };
        cmd.arg("-k")
            .arg(REMOTE_KILL_GRACE_SECS.to_string())
            .arg(secs.to_string())
            .arg("sh")
            .arg("-c");
        cmd
    }

    async fn run_once(
        &self,
        t: &Target,
        step: &str,
        script: &str,
        stdin: Option<StdinSource<'_>>,
        limit: Duration,
    ) -> Result<RemoteOutput, SshError> {
        let broken = |reason: String| SshError::Broken {
            host: t.to_string(),
            step: step.to_string(),
            reason,
        };
        let timed_out = || SshError::Timeout {
            host: t.to_string(),
            step: step.to_string(),
            secs: limit.as_secs(),
        };
        let secs = limit.as_secs().max(1);
        let fut = async {
            let session = self.session(t).await?;
            let mut cmd = self.bounded_shell(&session, secs);
            // The SSH client's address and sshd's port as sshd saw them, read by the login
            // shell before `sudo` (whose env_reset drops SSH_CONNECTION): every script finds
            // them in $FFE_SSH_CONNECTION (the host firewall's lock-out check needs them).
            cmd.arg(format!(
                "FFE_SSH_CONNECTION=\"$1\"; export FFE_SSH_CONNECTION; {script}"
            ))
            .arg("ffe-step")
            .raw_arg("\"$SSH_CONNECTION\"");
            cmd.stdout(openssh::Stdio::piped())
                .stderr(openssh::Stdio::piped())
                .stdin(if stdin.is_some() {
                    openssh::Stdio::piped()
                } else {
                    openssh::Stdio::null()
                });
            let mut child = cmd.spawn().await.map_err(|e| broken(error_chain(&e)))?;
            // A write that fails because the remote command stopped reading (it failed: disk
            // full, bad path) is not a broken connection: its exit code and stderr, read below,
            // say what went wrong. Only a command that then exits 0 makes the write error count.
            let mut write_error = None;
            if let Some(src) = stdin {
                if let Some(mut w) = child.stdin().take() {
                    let written = match src {
                        StdinSource::Bytes(b) => w
                            .write_all(b)
                            .await
                            .map_err(|e| format!("writing to remote stdin: {e}")),
                        StdinSource::Files(paths) => {
                            let mut copied = Ok(());
                            for path in paths {
                                copied = copy_file_to(path, &mut w).await?;
                                if copied.is_err() {
                                    break;
                                }
                            }
                            copied
                        }
                    };
                    let closed = w
                        .shutdown()
                        .await
                        .map_err(|e| format!("closing remote stdin: {e}"));
                    write_error = written.and(closed).err();
                }
            }
            let out = child
                .wait_with_output()
                .await
                .map_err(|e| broken(error_chain(&e)))?;
            let code = out.status.code().unwrap_or(-1);
            if code == 255 {
                // ssh reports its own failures as 255; check the master to tell them apart.
                if let Err(e) = session.check().await {
                    self.forget(t).await;
                    return Err(broken(error_chain(&e)));
                }
            }
            if let (Some(e), 0) = (write_error, code) {
                return Err(broken(e));
            }
            Ok::<_, SshError>(out)
        };
        let grace = self.settings.connect_timeout + Duration::from_secs(REMOTE_KILL_GRACE_SECS + 5);
        let started = std::time::Instant::now();
        let out = tokio::time::timeout(limit + grace, fut)
            .await
            .map_err(|_| timed_out())??;
        let code = out.status.code().unwrap_or(-1);
        tracing::debug!(host = %t, step, code, elapsed = ?started.elapsed(), "ssh step finished");
        // `timeout` exits 124 when it stopped the command, 137 when it had to kill it; a command
        // killed earlier (the OOM killer, 137) keeps its own exit code.
        if (code == 124 || code == 137) && started.elapsed() + Duration::from_secs(1) >= limit {
            return Err(timed_out());
        }
        Ok(RemoteOutput {
            code,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Read how far the host's clock is from this machine's, then run `script` like
    /// [`run_status_within`](Self::run_status_within) (as root, within `limit`). The remote shell
    /// first answers `samples` clock requests on the open channel, so each bracket is one network
    /// round trip, not the cost of starting a remote command; the tightest bracket is kept.
    pub async fn run_with_clock(
        &self,
        t: &Target,
        step: &str,
        script: &str,
        samples: usize,
        limit: Duration,
    ) -> Result<(ClockReading, RemoteOutput), SshError> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
        let broken = |reason: String| SshError::Broken {
            host: t.to_string(),
            step: step.to_string(),
            reason,
        };
        let timed_out = || SshError::Timeout {
            host: t.to_string(),
            step: step.to_string(),
            secs: limit.as_secs(),
        };
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0)
        };
        let samples = samples.max(1);
        let started = std::time::Instant::now();
        let fut = async {
            let session = self.session(t).await?;
            let mut cmd = self.bounded_shell(&session, limit.as_secs().max(1));
            cmd.arg(format!(
                    "echo ffe-clock-ready; i=0; while [ \"$i\" -lt {samples} ] && read -r _; do echo \"ffe-clock $(date +%s.%N)\"; i=$((i+1)); done; exec sh -c \"$1\" script"
                ))
                .arg("clock")
                .arg(script);
            cmd.stdin(openssh::Stdio::piped())
                .stdout(openssh::Stdio::piped())
                .stderr(openssh::Stdio::piped());
            let mut child = cmd.spawn().await.map_err(|e| broken(error_chain(&e)))?;
            let (Some(mut input), Some(output), Some(mut errors)) = (
                child.stdin().take(),
                child.stdout().take(),
                child.stderr().take(),
            ) else {
                return Err(broken("no stdin/stdout/stderr on the remote shell".into()));
            };
            let mut lines = BufReader::new(output);
            let mut best: Option<ClockReading> = None;
            let mut line = String::new();
            // A login script may print before the command runs: skip to the marker (bounded).
            let mut ready = false;
            for _ in 0..READY_LINES_MAX {
                line.clear();
                if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                    break;
                }
                if line.trim_end() == "ffe-clock-ready" {
                    ready = true;
                    break;
                }
            }
            let mut early_end = !ready;
            for _ in 0..samples {
                if early_end {
                    break;
                }
                let before = now();
                let sent = input.write_all(b"\n").await.and(input.flush().await);
                line.clear();
                let read = lines.read_line(&mut line).await;
                let after = now();
                if sent.is_err() || !matches!(read, Ok(n) if n > 0) {
                    early_end = true;
                    break;
                }
                if let Some(Ok(remote)) = line
                    .trim()
                    .strip_prefix("ffe-clock ")
                    .map(str::parse::<f64>)
                {
                    let sample = ClockReading {
                        offset: remote - (before + after) / 2.0,
                        uncertainty: (after - before) / 2.0,
                    };
                    if best.is_none_or(|b| sample.uncertainty < b.uncertainty) {
                        best = Some(sample);
                    }
                }
            }
            drop(input);
            let mut stdout = String::new();
            let mut stderr = String::new();
            let (a, b) = tokio::join!(
                lines.read_to_string(&mut stdout),
                errors.read_to_string(&mut stderr)
            );
            a.and(b).map_err(|e| broken(e.to_string()))?;
            let status = child.wait().await.map_err(|e| broken(error_chain(&e)))?;
            let code = status.code().unwrap_or(-1);
            if code == 255 {
                if let Err(e) = session.check().await {
                    self.forget(t).await;
                    return Err(broken(error_chain(&e)));
                }
            }
            Ok((
                best,
                RemoteOutput {
                    code,
                    stdout,
                    stderr,
                },
                early_end,
            ))
        };
        let grace = self.settings.connect_timeout + Duration::from_secs(REMOTE_KILL_GRACE_SECS + 5);
        let (best, out, early_end) = tokio::time::timeout(limit + grace, fut)
            .await
            .map_err(|_| timed_out())??;
        if (out.code == 124 || out.code == 137)
            && started.elapsed() + Duration::from_secs(1) >= limit
        {
            return Err(timed_out());
        }
        match best {
            Some(reading) => Ok((reading, out)),
            // The shell never answered (sudo refused, no `date`): its exit and stderr say why.
            None => Err(SshError::Failed {
                host: t.to_string(),
                step: step.to_string(),
                code: out.code,
                stderr: if early_end || out.stderr.trim().is_empty() {
                    format!("no clock reading: {}", tail(out.stderr.trim(), 5))
                } else {
                    tail(out.stderr.trim(), 5)
                },
            }),
        }
    }

    /// Run `script`; a non-zero exit is an error naming the host and the step.
    pub async fn run(&self, t: &Target, step: &str, script: &str) -> Result<String, SshError> {
        self.run_input(t, step, script, None).await
    }

    /// Like [`run`](Self::run) within `limit` (see [`run_status_within`](Self::run_status_within)).
    pub async fn run_within(
        &self,
        t: &Target,
        step: &str,
        script: &str,
        limit: Duration,
    ) -> Result<String, SshError> {
        self.run_input_within(t, step, script, None, limit).await
    }

    /// Like [`run_input`](Self::run_input) within `limit`.
    pub async fn run_input_within(
        &self,
        t: &Target,
        step: &str,
        script: &str,
        stdin: Option<StdinSource<'_>>,
        limit: Duration,
    ) -> Result<String, SshError> {
        let out = self
            .run_status_within(t, step, script, stdin, limit)
            .await?;
        self.check_exit(t, step, out)
    }

    /// Like [`run`](Self::run), with data on stdin.
    pub async fn run_input(
        &self,
        t: &Target,
        step: &str,
        script: &str,
        stdin: Option<StdinSource<'_>>,
    ) -> Result<String, SshError> {
        self.run_input_within(t, step, script, stdin, self.settings.command_timeout)
            .await
    }

    fn check_exit(&self, t: &Target, step: &str, out: RemoteOutput) -> Result<String, SshError> {
        if out.code != 0 {
            return Err(exit_error(t, step, out.code, &out.stderr));
        }
        Ok(out.stdout)
    }

    /// Run `steps` in order in one SSH round trip (one remote session instead of one each), each
    /// as its own `sh -c` under its own limit, stopping at the first that fails. Each step's
    /// stdout comes back separately; a failure is reported as the failing step's own
    /// [`SshError::Failed`] (its name, exit code and stderr), with the output of the steps
    /// before it. Connection problems are the `Err`.
    pub async fn run_steps(&self, t: &Target, steps: &[Step]) -> Result<StepsOutput, SshError> {
        self.run_steps_input(t, steps, None).await
    }

    /// Like [`run_steps`](Self::run_steps), with `stdin` for the steps (the first that reads it
    /// gets it).
    pub async fn run_steps_input(
        &self,
        t: &Target,
        steps: &[Step],
        stdin: Option<StdinSource<'_>>,
    ) -> Result<StepsOutput, SshError> {
        // Each step may run its limit plus the kill grace on the node; the whole session a
        // little longer, so a step's own limit always fires first.
        let total: Duration = steps
            .iter()
            .map(|s| s.limit + Duration::from_secs(REMOTE_KILL_GRACE_SECS))
            .sum();
        let name = steps
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let out = self
            .run_status_within(
                t,
                &name,
                &steps_script(steps),
                stdin,
                total + Duration::from_secs(5),
            )
            .await?;
        let mut outputs = split_steps(&out.stdout);
        let errors = split_steps(&out.stderr);
        if out.code != 0 && errors.is_empty() {
            // Nothing ran (sudo refused, `timeout` missing): the whole stderr says why, under the
            // session's name; check_exit adds the sudo hint.
            return Ok(StepsOutput {
                outputs: vec![],
                failure: self.check_exit(t, &name, out).err(),
            });
        }
        if out.code == 0 {
            return Ok(StepsOutput {
                outputs,
                failure: None,
            });
        }
        // The step that was running is the last one that printed its marker.
        let at = outputs.len().saturating_sub(1);
        outputs.truncate(at);
        let step = steps.get(at).map(|s| s.name.clone()).unwrap_or(name);
        let failure = match (out.code, steps.get(at)) {
            // `timeout` exits 124 when it stopped the step at its limit (137, a kill, may also
            // be the OOM killer: reported as a failure with its code).
            (124, Some(st)) => SshError::Timeout {
                host: t.to_string(),
                step,
                secs: st.limit.as_secs(),
            },
            (code, _) => exit_error(t, &step, code, errors.get(at).map_or("", String::as_str)),
        };
        Ok(StepsOutput {
            outputs,
            failure: Some(failure),
        })
    }

    /// Write `data` to `path` atomically (temp file + rename) with `mode`, creating parent dirs.
    pub async fn write_file(
        &self,
        t: &Target,
        step: &str,
        path: &str,
        mode: u32,
        data: StdinSource<'_>,
    ) -> Result<(), SshError> {
        let len = match data {
            StdinSource::Bytes(b) => b.len() as u64,
            StdinSource::Files(ps) => {
                let mut sum = 0;
                for p in ps {
                    sum += local_len(p).await?;
                }
                sum
            }
        };
        let script = atomic_write_script(path, mode, len);
        self.run_input(t, step, &script, Some(data))
            .await
            .map(|_| ())
    }
}

/// A step that exited `code`: the end of its stderr, with the way out when sudo wanted a password.
fn exit_error(t: &Target, step: &str, code: i32, stderr: &str) -> SshError {
    let mut text = tail(stderr, 12);
    if stderr.contains("sudo:") && stderr.contains("password is required") {
        text.push_str(". ssh_user needs passwordless sudo on the node (a NOPASSWD rule in sudoers), or use root");
    }
    SshError::Failed {
        host: t.to_string(),
        step: step.to_string(),
        code,
        stderr: text,
    }
}

/// Shell that makes `path` (mode `mode`, parent dirs created) from a temp file beside it:
/// `fill` writes the temp file (it gets the quoted temp path; it must fail the script when the
/// content is incomplete), which is then synced and renamed over `path` in one step, so `path`
/// is always either the old file or the whole new one. Runs under the caller's `set -e`.
pub fn replace_file_script(path: &str, mode: u32, fill: impl FnOnce(&str) -> String) -> String {
    let dir = Path::new(path)
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "/".into());
    let tmp = quote(&format!("{path}.ffe-tmp"));
    format!(
        // Tests before mkdir and rm: on a node where the directory exists and no temp file was
        // left behind (nearly always) neither process starts.
        "[ -d {dir} ] || mkdir -p {dir}; if [ -e {tmp} ] || [ -L {tmp} ]; then rm -f {tmp}; fi; {fill}; chmod {mode:o} {tmp}; sync {tmp}; mv -f {tmp} {path}; sync {dir}",
        dir = quote(&dir),
        fill = fill(&tmp),
        path = quote(path),
    )
}

/// Shell that writes `content` (held in the script itself: small files only) to `path`
/// atomically with `mode`, like [`atomic_write_script`] does with stdin.
pub fn atomic_write_inline_script(path: &str, mode: u32, content: &str) -> String {
    let body = replace_file_script(path, mode, |tmp| {
        format!("printf '%s' {} > {tmp}", quote(content))
    });
    format!("set -e; umask 077; {body}")
}

/// Shell that writes stdin to `path` atomically with `mode`. The file is put in place only if
/// exactly `len` bytes arrived: an upload cut short never replaces the old file.
pub fn atomic_write_script(path: &str, mode: u32, len: u64) -> String {
    let body = replace_file_script(path, mode, |tmp| {
        format!(
            "cat > {tmp}; got=$(wc -c < {tmp}); if [ \"$got\" -ne {len} ]; then rm -f {tmp}; echo \"received $got of {len} bytes\" >&2; exit 1; fi"
        )
    });
    format!("set -e; umask 077; {body}")
}

/// Where a command's stdin comes from.
#[derive(Debug, Clone, Copy)]
pub enum StdinSource<'a> {
    Bytes(&'a [u8]),
    /// Files one after the other (the remote side splits them by length).
    Files(&'a [&'a Path]),
}

/// The size of a local file.
pub async fn local_len(path: &Path) -> Result<u64, SshError> {
    Ok(tokio::fs::metadata(path)
        .await
        .map_err(|e| SshError::LocalFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?
        .len())
}

/// Copy a local file into a remote command's stdin. A local file that cannot be opened is the
/// error; a failed write (the remote side stopped reading) is the inner one.
async fn copy_file_to(
    path: &Path,
    w: &mut (impl tokio::io::AsyncWrite + Unpin),
) -> Result<Result<(), String>, SshError> {
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| SshError::LocalFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    Ok(tokio::io::copy(&mut f, w)
        .await
        .map(|_| ())
        .map_err(|e| format!("uploading {}: {e}", path.display())))
}

/// The last `n` non-empty lines of `s`, for error messages.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(n);
    let text = lines[start..].join(" | ");
    if text.is_empty() {
        "(no output)".into()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_sh(script: &str) -> std::process::Output {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("sh")
    }

    #[test]
    fn steps_script_splits_output_per_step_and_stops_at_the_first_failure() {
        let limit = Duration::from_secs(10);
        let steps = [
            Step::new("first", "printf 'no newline'", limit),
            Step::new("second", "echo 'it'\\''s quoted'; echo warn >&2", limit),
            Step::new("third", "echo partial; echo broken >&2; exit 7", limit),
            Step::new("never", "echo must-not-run", limit),
        ];
        let out = run_sh(&steps_script(&steps));
        assert_eq!(out.status.code(), Some(7));
        let stdout = split_steps(&String::from_utf8_lossy(&out.stdout));
        let stderr = split_steps(&String::from_utf8_lossy(&out.stderr));
        assert_eq!(stdout.len(), 3, "{stdout:?}");
        assert_eq!(stdout[0].trim(), "no newline");
        assert_eq!(stdout[1].trim(), "it's quoted");
        assert_eq!(stdout[2].trim(), "partial");
        assert_eq!(stderr[1].trim(), "warn");
        assert_eq!(stderr[2].trim(), "broken");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("must-not-run"));
    }

    #[test]
    fn steps_script_bounds_each_step_with_its_own_limit() {
        let steps = [
            Step::new("quick", "true", Duration::from_secs(5)),
            Step::new("slow", "sleep 30", Duration::from_secs(1)),
        ];
        let started = std::time::Instant::now();
        let out = run_sh(&steps_script(&steps));
        assert_eq!(out.status.code(), Some(124));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn inline_write_puts_exactly_the_content_in_place_with_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/file.conf");
        let content = "a = 'b'\n$HOME `x`\n%s\n";
        let out = run_sh(&atomic_write_inline_script(
            &path.display().to_string(),
            0o644,
            content,
        ));
        assert!(out.status.success(), "{out:?}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), content);
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn a_left_over_temp_file_or_symlink_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("file.conf");
        let tmp = dir.path().join("file.conf.ffe-tmp");
        // A dangling one: `-e` alone misses it, and writing through it would create its target.
        let elsewhere = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&elsewhere, &tmp).expect("symlink");
        let write = |content: &str| {
            let out = run_sh(&atomic_write_inline_script(
                &path.display().to_string(),
                0o600,
                content,
            ));
            assert!(out.status.success(), "{out:?}");
        };
        write("one\n");
        assert!(!elsewhere.exists(), "written through the left-over symlink");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "one\n");
        std::fs::write(&tmp, "half a file from a cut-off apply").expect("write");
        write("two\n");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "two\n");
        assert!(!tmp.exists() && std::fs::symlink_metadata(&tmp).is_err());
    }
    use std::process::Stdio;

    #[test]
    fn only_network_failures_count_as_unreachable() {
        let connect = |reason: &str| SshError::Connect {
            host: "h".into(),
            user: "root".into(),
            port: 22,
            reason: reason.into(),
            hint: "",
        };
        assert!(connect("connect to host 10.0.0.1 port 22: Connection timed out").is_unreachable());
        assert!(connect("connect to host x port 22: No route to host").is_unreachable());
        // These need an operator's fix; destroy must not skip them as "host gone".
        assert!(!connect("Permission denied (publickey).").is_unreachable());
        assert!(!connect("Host key verification failed.").is_unreachable());
        assert!(!connect("connect to host x port 22: Connection refused").is_unreachable());
    }

    #[test]
    fn hints_name_the_fix() {
        assert!(connect_hint("Permission denied (publickey).").contains("ssh_private_key_path"));
        assert!(
            connect_hint("ssh: connect to host 1.2.3.4 port 22: Connection refused")
                .contains("ssh_port")
        );
        assert!(connect_hint("connect to host x port 22: No route to host").contains("unreachable"));
        assert!(connect_hint("Host key verification failed.").contains("ssh_known_hosts_file"));
    }

    #[test]
    fn atomic_write_goes_through_a_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub/config.yaml");
        let script = atomic_write_script(target.to_str().unwrap(), 0o600, 9);
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"token: x\n")
            .unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "token: x\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!dir.path().join("sub/config.yaml.ffe-tmp").exists());
    }

    /// An upload cut short (fewer bytes than announced) never replaces the file.
    #[test]
    fn atomic_write_refuses_a_short_upload() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("k3s");
        std::fs::write(&target, "old binary").unwrap();
        let script = atomic_write_script(target.to_str().unwrap(), 0o755, 1000);
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"trunc").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("received 5 of 1000 bytes"));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old binary");
        assert!(!dir.path().join("k3s.ffe-tmp").exists());
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\n\nb\nc\n", 2), "b | c");
        assert_eq!(tail("", 2), "(no output)");
    }
}

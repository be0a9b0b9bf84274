//! Test platforms: [`PtyPlatform`] (apps whose consoles are `bash -i` on local
//! pseudo-terminals), [`HostilePlatform`] (a wrapper that makes any platform's consoles
//! hostile: output cut into tiny chunks, non-ASCII input replaced as doctl does, a drop after
//! N bytes) and [`MockPlatform`] (apps in memory, with the ids you choose and deployments that
//! walk through the phases you script; no consoles).
//!
//! `PtyPlatform` gives each app its own home folder (`<root>/<id>/home`, starting in `app/`)
//! and temp folder, but no isolation at all: commands run as the current user on this
//! machine. It exists to test the exec protocol against a real terminal (echo, prompt,
//! bracketed-paste escapes, CR/LF translation, canonical-mode line limits) without a sandbox
//! runtime.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use appspec::AppSpec;
use async_trait::async_trait;
use doctl_driver::wire::WireApp;
use doctl_driver::{
    App, Console, ConsoleTarget, Deployment, DeploymentPhase, Error, Instance, LogStream,
    LogsRequest, Platform, Result, TermSize,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn io_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::other(format!("{what}: {e}"))
}

/// A [`Platform`] whose apps are folders on this machine and whose consoles are `bash -i` on
/// pseudo-terminals (prompt `sandbox@pty:~/app$ `, echo on, readline on).
///
/// Apps are active as soon as they are created. Deleting an app kills the process groups its
/// consoles launched with [`Sandbox::launch`](crate::Sandbox::launch) and removes its folder.
#[derive(Debug)]
pub struct PtyPlatform {
    root: tempfile::TempDir,
    apps: Mutex<HashMap<String, PtyAppEntry>>,
    env: Vec<(String, String)>,
}

#[derive(Debug)]
struct PtyAppEntry {
    app: App,
    root: PathBuf,
}

impl PtyPlatform {
    /// A platform with its own temporary root folder, removed on drop.
    ///
    /// # Errors
    ///
    /// When the temporary folder cannot be created.
    pub fn new() -> Result<Self> {
        let root = tempfile::Builder::new()
            .prefix("sandbox-pty-")
            .tempdir()
            .map_err(|e| io_error("creating a temp folder", e))?;
        Ok(PtyPlatform {
            root,
            apps: Mutex::new(HashMap::new()),
            env: Vec::new(),
        })
    }

    /// Sets an environment variable in every console's shell.
    #[must_use]
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The folder holding every app's files.
    #[must_use]
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    fn app_root(&self, app_id: &str) -> Result<PathBuf> {
        lock(&self.apps)
            .get(app_id)
            .map(|entry| entry.root.clone())
            .ok_or_else(|| Error::not_found(format!("app `{app_id}`")))
    }
}

fn make_app(id: &str, spec: &AppSpec) -> Result<App> {
    let mut wire = WireApp::default();
    wire.id = id.to_owned();
    wire.spec = Some(spec.clone());
    let mut json = serde_json::to_value(&wire).map_err(|e| io_error("encoding an app", e))?;
    json["active_deployment"] = serde_json::json!({
        "id": format!("{id}-deployment"),
        "phase": "ACTIVE",
        "cause": "initial deployment",
    });
    if !spec.services.is_empty() {
        json["live_url"] = serde_json::json!("http://127.0.0.1:9");
    }
    let wire: WireApp = serde_json::from_value(json).map_err(|e| io_error("decoding an app", e))?;
    App::try_from(wire)
}

#[async_trait]
impl Platform for PtyPlatform {
    fn kind(&self) -> &'static str {
        "pty"
    }

    async fn create_app(&self, spec: &AppSpec) -> Result<App> {
        let mut apps = lock(&self.apps);
        if apps.values().any(|entry| entry.app.spec.name == spec.name) {
            return Err(Error::NameTaken {
                name: spec.name.clone(),
            });
        }
        let id = uuid::Uuid::new_v4().to_string();
        let root = self.root.path().join(&id);
        std::fs::create_dir_all(root.join("home/app")).map_err(|e| io_error("app folder", e))?;
        std::fs::create_dir_all(root.join("tmp")).map_err(|e| io_error("app folder", e))?;
        let app = make_app(&id, spec)?;
        apps.insert(
            id,
            PtyAppEntry {
                app: app.clone(),
                root,
            },
        );
        Ok(app)
    }

    async fn get_app(&self, app_id: &str) -> Result<App> {
        lock(&self.apps)
            .get(app_id)
            .map(|entry| entry.app.clone())
            .ok_or_else(|| Error::not_found(format!("app `{app_id}`")))
    }

    async fn list_apps(&self) -> Result<Vec<App>> {
        Ok(lock(&self.apps)
            .values()
            .map(|entry| entry.app.clone())
            .collect())
    }

    async fn delete_app(&self, app_id: &str) -> Result<()> {
        let entry = lock(&self.apps)
            .remove(app_id)
            .ok_or_else(|| Error::not_found(format!("app `{app_id}`")))?;
        kill_launched(&entry.root.join("home/.sandbox/procs"));
        let _ = std::fs::remove_dir_all(&entry.root);
        Ok(())
    }

    async fn list_deployments(&self, app_id: &str) -> Result<Vec<Deployment>> {
        let app = self.get_app(app_id).await?;
        Ok(app.active_deployment.into_iter().collect())
    }

    async fn list_instances(&self, app_id: &str) -> Result<Vec<Instance>> {
        let app = self.get_app(app_id).await?;
        let instances = app
            .component_names()
            .map(|name| {
                serde_json::from_value::<doctl_driver::wire::WireInstance>(serde_json::json!({
                    "component_name": name,
                    "instance_name": format!("{name}-pty"),
                    "component_type": "WORKER",
                }))
                .map(Instance::from)
                .map_err(|e| io_error("instance", e))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(instances)
    }

    async fn open_console(&self, target: &ConsoleTarget) -> Result<Box<dyn Console>> {
        let app = self.get_app(&target.app_id).await?;
        if !app.component_names().any(|c| c == target.component) {
            return Err(Error::not_found(format!(
                "component `{}` of app `{}`",
                target.component, target.app_id
            )));
        }
        let root = self.app_root(&target.app_id)?;
        Ok(Box::new(PtyConsole::spawn(&root, target.size, &self.env)?))
    }

    async fn logs(&self, _request: &LogsRequest) -> Result<LogStream> {
        Ok(Box::pin(futures::stream::empty()))
    }
}

/// Kills the process groups recorded as `<pid>.cmd` files in `procs`.
fn kill_launched(procs: &Path) {
    let Ok(entries) = std::fs::read_dir(procs) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_suffix(".cmd")) else {
            continue;
        };
        if let Ok(pid) = pid.parse::<i32>() {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

/// `bash -i` on a local pseudo-terminal.
pub struct PtyConsole {
    reader: tokio::sync::Mutex<pty_process::OwnedReadPty>,
    writer: tokio::sync::Mutex<pty_process::OwnedWritePty>,
    child: Mutex<Option<tokio::process::Child>>,
}

impl std::fmt::Debug for PtyConsole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PtyConsole").finish_non_exhaustive()
    }
}

impl PtyConsole {
    /// Starts `bash --norc -i` in `<root>/home/app`, with `HOME=<root>/home`,
    /// `TMPDIR=<root>/tmp` and `env`.
    ///
    /// # Errors
    ///
    /// When the pty or bash cannot be started.
    pub fn spawn(root: &Path, size: TermSize, env: &[(String, String)]) -> Result<Self> {
        let (pty, pts) = pty_process::open().map_err(|e| io_error("opening a pty", e))?;
        pty.resize(pty_process::Size::new(size.rows, size.cols))
            .map_err(|e| io_error("sizing the pty", e))?;
        let home = root.join("home");
        let child = pty_process::Command::new("bash")
            .args(["--norc", "--noprofile", "-i"])
            .env_clear()
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            )
            .env("HOME", &home)
            .env("TMPDIR", root.join("tmp"))
            .env("TERM", "xterm-256color")
            .env("PS1", "sandbox@pty:\\w\\$ ")
            .env("LANG", "C.UTF-8")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(home.join("app"))
            .spawn(pts)
            .map_err(|e| io_error("starting bash on a pty", e))?;
        let (reader, writer) = pty.into_split();
        Ok(PtyConsole {
            reader: tokio::sync::Mutex::new(reader),
            writer: tokio::sync::Mutex::new(writer),
            child: Mutex::new(Some(child)),
        })
    }

    fn hang_up(&self) {
        if let Some(mut child) = lock(&self.child).take() {
            // SIGHUP first, as a terminal hang-up would, so the shell can clean up; the child
            // is reaped by tokio once it exits.
            if let Some(pid) = child
                .id()
                .and_then(|p| rustix::process::Pid::from_raw(p as i32))
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::HUP);
            }
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    if tokio::time::timeout(std::time::Duration::from_secs(2), child.wait())
                        .await
                        .is_err()
                    {
                        let _ = child.kill().await;
                    }
                });
            } else {
                let _ = child.start_kill();
            }
        }
    }
}

impl Drop for PtyConsole {
    fn drop(&mut self) {
        self.hang_up();
    }
}

#[async_trait]
impl Console for PtyConsole {
    async fn send(&self, data: &[u8]) -> Result<()> {
        let mut writer = self.writer.lock().await;
        writer
            .write_all(data)
            .await
            .map_err(|e| Error::ConsoleLost {
                reason: e.to_string(),
            })?;
        writer.flush().await.map_err(|e| Error::ConsoleLost {
            reason: e.to_string(),
        })
    }

    async fn recv(&self) -> Result<Option<Vec<u8>>> {
        let mut reader = self.reader.lock().await;
        let mut buf = vec![0u8; 65536];
        match reader.read(&mut buf).await {
            Ok(0) => Ok(None),
            Ok(n) => {
                buf.truncate(n);
                Ok(Some(buf))
            }
            // Linux answers EIO on the master once the last process holding the terminal ends.
            Err(e) if e.raw_os_error() == Some(5) => Ok(None),
            Err(e) => Err(Error::ConsoleLost {
                reason: e.to_string(),
            }),
        }
    }

    async fn resize(&self, size: TermSize) -> Result<()> {
        self.writer
            .lock()
            .await
            .resize(pty_process::Size::new(size.rows, size.cols))
            .map_err(|e| io_error("resizing the pty", e))
    }

    async fn close(&self) -> Result<()> {
        self.hang_up();
        Ok(())
    }
}

/// What [`HostilePlatform`] does to the consoles it opens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Hostility {
    /// Cut every chunk of output into pieces of at most this many bytes.
    pub chunk_size: Option<usize>,
    /// Replace every non-ASCII input byte by U+FFFD, as doctl does.
    pub replace_non_ascii_input: bool,
    /// The heartbeat timeout of the case's sandbox handle (the default when `None`).
    pub heartbeat_timeout: Option<std::time::Duration>,
}

/// Wraps a platform so that its consoles are hostile (see [`Hostility`]), can be made to drop,
/// and are counted.
#[derive(Debug)]
pub struct HostilePlatform {
    inner: Arc<dyn Platform>,
    hostility: Mutex<Hostility>,
    drop_next_after: Mutex<Option<usize>>,
    opened: AtomicUsize,
    kill_switch: tokio::sync::watch::Sender<u64>,
    stall_switch: tokio::sync::watch::Sender<u64>,
}

impl HostilePlatform {
    /// Wraps `inner`, with no hostility until told.
    #[must_use]
    pub fn new(inner: Arc<dyn Platform>) -> Self {
        HostilePlatform {
            inner,
            hostility: Mutex::new(Hostility::default()),
            drop_next_after: Mutex::new(None),
            opened: AtomicUsize::new(0),
            kill_switch: tokio::sync::watch::channel(0).0,
            stall_switch: tokio::sync::watch::channel(0).0,
        }
    }

    /// Makes every console opened so far half-open: it stays connected, but nothing it
    /// receives is delivered any more and what is sent to it goes nowhere, as a connection
    /// whose far end vanished without closing.
    pub fn stall_open_consoles(&self) {
        self.stall_switch.send_modify(|generation| *generation += 1);
    }

    /// Makes every console opened so far fail at once with a lost connection, as a dropped
    /// WebSocket would.
    pub fn drop_open_consoles(&self) {
        self.kill_switch.send_modify(|generation| *generation += 1);
    }

    /// Applies `hostility` to consoles opened from now on.
    pub fn set_hostility(&self, hostility: Hostility) {
        *lock(&self.hostility) = hostility;
    }

    /// Makes the next console opened fail with a lost connection once it has received `bytes`
    /// bytes of output (counted from its first byte, bootstrap included).
    pub fn drop_next_console_after(&self, bytes: usize) {
        *lock(&self.drop_next_after) = Some(bytes);
    }

    /// How many consoles were opened through this wrapper.
    #[must_use]
    pub fn consoles_opened(&self) -> usize {
        self.opened.load(Ordering::SeqCst)
    }

    /// The wrapped platform.
    #[must_use]
    pub fn inner(&self) -> &Arc<dyn Platform> {
        &self.inner
    }
}

#[async_trait]
impl Platform for HostilePlatform {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    async fn create_app(&self, spec: &AppSpec) -> Result<App> {
        self.inner.create_app(spec).await
    }
    async fn get_app(&self, app_id: &str) -> Result<App> {
        self.inner.get_app(app_id).await
    }
    async fn list_apps(&self) -> Result<Vec<App>> {
        self.inner.list_apps().await
    }
    async fn delete_app(&self, app_id: &str) -> Result<()> {
        self.inner.delete_app(app_id).await
    }
    async fn list_deployments(&self, app_id: &str) -> Result<Vec<Deployment>> {
        self.inner.list_deployments(app_id).await
    }
    async fn list_instances(&self, app_id: &str) -> Result<Vec<Instance>> {
        self.inner.list_instances(app_id).await
    }
    async fn open_console(&self, target: &ConsoleTarget) -> Result<Box<dyn Console>> {
        let console = self.inner.open_console(target).await?;
        self.opened.fetch_add(1, Ordering::SeqCst);
        let hostility = lock(&self.hostility).clone();
        let drop_after = lock(&self.drop_next_after).take();
        let kill_switch = self.kill_switch.subscribe();
        let generation = *kill_switch.borrow();
        let stall_switch = self.stall_switch.subscribe();
        let stall_generation = *stall_switch.borrow();
        Ok(Box::new(HostileConsole {
            generation,
            kill_switch: tokio::sync::Mutex::new(kill_switch),
            stall_generation,
            stall_switch,
            inner: console,
            hostility,
            drop_after,
            received: AtomicUsize::new(0),
            pending: Mutex::new(VecDeque::new()),
        }))
    }
    async fn logs(&self, request: &LogsRequest) -> Result<LogStream> {
        self.inner.logs(request).await
    }
}

struct HostileConsole {
    generation: u64,
    kill_switch: tokio::sync::Mutex<tokio::sync::watch::Receiver<u64>>,
    stall_generation: u64,
    stall_switch: tokio::sync::watch::Receiver<u64>,
    inner: Box<dyn Console>,
    hostility: Hostility,
    drop_after: Option<usize>,
    received: AtomicUsize,
    pending: Mutex<VecDeque<Vec<u8>>>,
}

impl HostileConsole {
    fn stalled(&self) -> bool {
        *self.stall_switch.borrow() != self.stall_generation
    }
}

#[async_trait]
impl Console for HostileConsole {
    async fn send(&self, data: &[u8]) -> Result<()> {
        if self.stalled() {
            return Ok(());
        }
        if self.hostility.replace_non_ascii_input && !data.is_ascii() {
            let mut replaced = Vec::with_capacity(data.len());
            for &b in data {
                if b.is_ascii() {
                    replaced.push(b);
                } else {
                    replaced.extend_from_slice("\u{fffd}".as_bytes());
                }
            }
            return self.inner.send(&replaced).await;
        }
        self.inner.send(data).await
    }

    async fn recv(&self) -> Result<Option<Vec<u8>>> {
        if let Some(limit) = self.drop_after {
            if self.received.load(Ordering::SeqCst) >= limit {
                let _ = self.inner.close().await;
                return Err(Error::ConsoleLost {
                    reason: "websocket: close 1006 (abnormal closure): unexpected EOF (injected)"
                        .to_owned(),
                });
            }
        }
        let lost = || Error::ConsoleLost {
            reason: "websocket: close 1006 (abnormal closure): unexpected EOF (injected)"
                .to_owned(),
        };
        let mut kill_switch = self.kill_switch.lock().await;
        if *kill_switch.borrow() != self.generation {
            return Err(lost());
        }
        let mut stall_switch = self.stall_switch.clone();
        if self.stalled() {
            std::future::pending::<()>().await;
        }
        let queued = lock(&self.pending).pop_front();
        let chunk = match queued {
            Some(chunk) => chunk,
            None => {
                let received = tokio::select! {
                    received = self.inner.recv() => received?,
                    Ok(()) = kill_switch.changed() => {
                        let _ = self.inner.close().await;
                        return Err(lost());
                    }
                    Ok(()) = stall_switch.changed() => {
                        let never: std::convert::Infallible = std::future::pending().await;
                        match never {}
                    }
                };
                match received {
                    Some(chunk) => chunk,
                    None => return Ok(None),
                }
            }
        };
        let mut chunk = chunk;
        if let Some(limit) = self.drop_after {
            let seen = self.received.load(Ordering::SeqCst);
            let room = limit.saturating_sub(seen);
            if chunk.len() > room {
                chunk.truncate(room);
            }
        }
        if let Some(size) = self
            .hostility
            .chunk_size
            .filter(|&s| s > 0 && chunk.len() > s)
        {
            let rest = chunk.split_off(size);
            let mut pending = lock(&self.pending);
            for piece in rest.chunks(size).rev() {
                pending.push_front(piece.to_vec());
            }
        }
        self.received.fetch_add(chunk.len(), Ordering::SeqCst);
        Ok(Some(chunk))
    }

    async fn resize(&self, size: TermSize) -> Result<()> {
        self.inner.resize(size).await
    }

    async fn close(&self) -> Result<()> {
        self.inner.close().await
    }
}

/// A status [`MockPlatform`] reports for an app, one per read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MockStatus {
    /// A first deployment in this phase, no step counts.
    Deploying(DeploymentPhase),
    /// A first deployment in this phase with `done` of `total` steps finished.
    Steps(DeploymentPhase, u32, u32),
    /// Active (services get a live URL).
    Active,
    /// The first deployment failed in its `deploy` step with this reason.
    Failed(String),
}

/// A [`Platform`] that keeps apps in memory: apps with the ids you choose
/// ([`MockPlatform::add_sandbox`], [`MockPlatform::add_app`]), created apps (ids `mock-1`,
/// `mock-2`, ...) that walk through scripted statuses ([`MockPlatform::script`]), deletes
/// recorded ([`MockPlatform::deleted`]) and failed on demand ([`MockPlatform::fail_deletes`]).
/// Consoles and logs are not supported.
#[derive(Debug)]
pub struct MockPlatform {
    kind: &'static str,
    state: Mutex<MockState>,
}

#[derive(Debug, Default)]
struct MockState {
    /// Apps in creation order, each with the statuses still to report (the last repeats).
    apps: Vec<(App, VecDeque<MockStatus>)>,
    script: Vec<MockStatus>,
    created: usize,
    reads: usize,
    deleted: Vec<String>,
    fail_deletes: bool,
}

impl Default for MockPlatform {
    fn default() -> Self {
        Self::new()
    }
}

impl MockPlatform {
    /// An empty platform whose [`Platform::kind`] is `mock`; created apps are active at once.
    #[must_use]
    pub fn new() -> Self {
        MockPlatform {
            kind: "mock",
            state: Mutex::new(MockState::default()),
        }
    }

    /// The same, reporting another [`Platform::kind`] (`local` gets the local poll pacing).
    #[must_use]
    pub fn with_kind(mut self, kind: &'static str) -> Self {
        self.kind = kind;
        self
    }

    /// Adds an app as it is.
    pub fn add_app(&self, app: App) {
        lock(&self.state)
            .apps
            .push((app, VecDeque::from([MockStatus::Active])));
    }

    /// Adds an active python worker sandbox (an app carrying the sandbox marker) with this id
    /// and name, and returns it.
    ///
    /// # Panics
    ///
    /// When `name` is not a valid app name.
    pub fn add_sandbox(&self, id: &str, name: &str) -> App {
        let spec = appspec::SandboxTemplate::new(
            appspec::ImageKind::Python,
            appspec::ComponentType::Worker,
        )
        .defaults(appspec::TemplateDefaults::default())
        .name(name)
        .build()
        .expect("a valid sandbox name");
        let app = status_app(App::new(id, spec), &MockStatus::Active);
        self.add_app(app.clone());
        app
    }

    /// Adds an active app of this id and name that this SDK did not create: a sandbox's spec
    /// without the sandbox marker. Returns it.
    ///
    /// # Panics
    ///
    /// When `name` is not a valid app name.
    pub fn add_plain_app(&self, id: &str, name: &str) -> App {
        let mut spec = appspec::SandboxTemplate::new(
            appspec::ImageKind::Python,
            appspec::ComponentType::Worker,
        )
        .defaults(appspec::TemplateDefaults::default())
        .name(name)
        .build()
        .expect("a valid app name");
        spec.envs.retain(|env| env.key != appspec::MARKER_ENV);
        for worker in &mut spec.workers {
            worker.envs.retain(|env| env.key != appspec::MARKER_ENV);
        }
        let app = status_app(App::new(id, spec), &MockStatus::Active);
        assert!(
            appspec::sandbox_marker(&app.spec).is_none(),
            "marker removed"
        );
        self.add_app(app.clone());
        app
    }

    /// The statuses the apps created from now on report, one per read (`get_app`,
    /// `list_apps`); the last one repeats. An empty script means active at once.
    pub fn script(&self, statuses: impl IntoIterator<Item = MockStatus>) {
        lock(&self.state).script = statuses.into_iter().collect();
    }

    /// Makes every delete fail (with a network error) while `fail` is true.
    pub fn fail_deletes(&self, fail: bool) {
        lock(&self.state).fail_deletes = fail;
    }

    /// The ids deleted so far, in order.
    #[must_use]
    pub fn deleted(&self) -> Vec<String> {
        lock(&self.state).deleted.clone()
    }

    /// How many times apps were read (`get_app` and `list_apps` calls).
    #[must_use]
    pub fn reads(&self) -> usize {
        lock(&self.state).reads
    }
}

/// `app` as it is in `status`.
fn status_app(mut app: App, status: &MockStatus) -> App {
    let deployment_id = format!("{}-deployment", app.id);
    app.active_deployment = None;
    app.in_progress_deployment = None;
    app.live_url = None;
    match status {
        MockStatus::Deploying(phase) => {
            app.in_progress_deployment = Some(Deployment::new(deployment_id, *phase));
        }
        MockStatus::Steps(phase, done, total) => {
            let mut deployment = Deployment::new(deployment_id, *phase);
            let mut progress = doctl_driver::Progress::default();
            progress.success_steps = *done;
            progress.total_steps = *total;
            deployment.progress = Some(progress);
            app.in_progress_deployment = Some(deployment);
        }
        MockStatus::Active => {
            app.active_deployment = Some(Deployment::new(deployment_id, DeploymentPhase::Active));
            if !app.spec.services.is_empty() {
                app.live_url = Some(format!("https://{}.ondigitalocean.app", app.spec.name));
            }
        }
        MockStatus::Failed(reason) => {
            let mut deployment = Deployment::new(deployment_id, DeploymentPhase::Error);
            let mut step = doctl_driver::ProgressStep::default();
            "deploy".clone_into(&mut step.name);
            "ERROR".clone_into(&mut step.status);
            step.reason = Some(reason.clone());
            let mut progress = doctl_driver::Progress::default();
            progress.steps.push(step);
            deployment.progress = Some(progress);
            app.in_progress_deployment = Some(deployment);
        }
    }
    app
}

impl MockState {
    /// Reads an app: its next status (the last one stays).
    fn read(&mut self, index: usize) -> App {
        let (app, statuses) = &mut self.apps[index];
        let status = if statuses.len() > 1 {
            statuses.pop_front()
        } else {
            statuses.front().cloned()
        };
        let status = status.unwrap_or(MockStatus::Active);
        status_app(app.clone(), &status)
    }
}

#[async_trait]
impl Platform for MockPlatform {
    fn kind(&self) -> &'static str {
        self.kind
    }

    async fn create_app(&self, spec: &AppSpec) -> Result<App> {
        let mut state = lock(&self.state);
        if state.apps.iter().any(|(app, _)| app.spec.name == spec.name) {
            return Err(Error::NameTaken {
                name: spec.name.clone(),
            });
        }
        state.created += 1;
        let app = App::new(format!("mock-{}", state.created), spec.clone());
        let statuses: VecDeque<MockStatus> = if state.script.is_empty() {
            VecDeque::from([MockStatus::Active])
        } else {
            state.script.iter().cloned().collect()
        };
        let first = statuses.front().cloned().unwrap_or(MockStatus::Active);
        state.apps.push((app.clone(), statuses));
        Ok(status_app(app, &first))
    }

    async fn get_app(&self, app_id: &str) -> Result<App> {
        let mut state = lock(&self.state);
        state.reads += 1;
        let index = state
            .apps
            .iter()
            .position(|(app, _)| app.id == app_id)
            .ok_or_else(|| Error::not_found(format!("app `{app_id}`")))?;
        Ok(state.read(index))
    }

    async fn list_apps(&self) -> Result<Vec<App>> {
        let mut state = lock(&self.state);
        state.reads += 1;
        Ok((0..state.apps.len()).map(|i| state.read(i)).collect())
    }

    async fn delete_app(&self, app_id: &str) -> Result<()> {
        let mut state = lock(&self.state);
        if state.fail_deletes {
            return Err(Error::Network {
                message: format!("deleting app `{app_id}`: connection reset"),
            });
        }
        let index = state
            .apps
            .iter()
            .position(|(app, _)| app.id == app_id)
            .ok_or_else(|| Error::not_found(format!("app `{app_id}`")))?;
        state.apps.remove(index);
        state.deleted.push(app_id.to_owned());
        Ok(())
    }

    async fn list_deployments(&self, app_id: &str) -> Result<Vec<Deployment>> {
        let app = self.get_app(app_id).await?;
        Ok(app
            .in_progress_deployment
            .into_iter()
            .chain(app.active_deployment)
            .collect())
    }

    async fn list_instances(&self, _app_id: &str) -> Result<Vec<Instance>> {
        Ok(Vec::new())
    }

    async fn open_console(&self, _target: &ConsoleTarget) -> Result<Box<dyn Console>> {
        Err(Error::other("the mock platform has no consoles"))
    }

    async fn logs(&self, _request: &LogsRequest) -> Result<LogStream> {
        Err(Error::other("the mock platform has no logs"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pty_console_runs_bash() {
        let platform = PtyPlatform::new().unwrap();
        let spec = appspec::SandboxTemplate::new(
            appspec::ImageKind::Python,
            appspec::ComponentType::Worker,
        )
        .name("pty-debug")
        .build()
        .unwrap();
        let app = platform.create_app(&spec).await.unwrap();
        let console = platform
            .open_console(&ConsoleTarget::new(&app.id, "sandbox"))
            .await
            .unwrap();
        console.send(b"echo hi-$((1+2))\n").await.unwrap();
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("hi-3") {
            match tokio::time::timeout(std::time::Duration::from_secs(10), console.recv()).await {
                Ok(Ok(Some(chunk))) => seen.extend(chunk),
                other => panic!("{other:?} after {:?}", String::from_utf8_lossy(&seen)),
            }
        }
        console.send(b"exit\n").await.unwrap();
        platform.delete_app(&app.id).await.unwrap();
    }
}

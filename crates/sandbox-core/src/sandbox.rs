//! [`Sandbox`]: lifecycle through a [`Platform`], commands through one reused console.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use appspec::{ComponentType, ImageKind, SandboxTemplate, TemplateDefaults};
use doctl_driver::{App, AppStatus, ConsoleTarget, Platform};
use futures::FutureExt as _;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::channel::{Channel, Event, Running};
use crate::error::{Error, Result, shorten};
use crate::exec::{ExecEvent, ExecOutput, ExecRequest, ExecStream, ExitStatus};
use crate::protocol::{Mode, Stream};
use crate::script;

/// How long opening a console and starting the exec agent may take.
pub const DEFAULT_CONSOLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long [`SandboxBuilder::create`] waits for the sandbox to be ready, unless told.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(600);

/// A sandbox: an App Platform app (or a local one) you can run commands in.
///
/// Cheap to clone; clones share one console, opened on first use and reopened after a drop.
/// Many commands may run at once; each gets exactly its own output.
#[derive(Clone)]
pub struct Sandbox {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    platform: Arc<dyn Platform>,
    app_id: String,
    name: String,
    component: String,
    component_type: Option<ComponentType>,
    console_timeout: Duration,
    channel: tokio::sync::Mutex<Option<Arc<Channel>>>,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("id", &self.inner.app_id)
            .field("name", &self.inner.name)
            .field("component", &self.inner.component)
            .field("platform", &self.inner.platform.kind())
            .finish()
    }
}

/// What [`Sandbox::list`] reports about each sandbox.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SandboxInfo {
    /// App id.
    pub id: String,
    /// App name.
    pub name: String,
    /// Its image kind.
    pub image: ImageKind,
    /// Service or worker.
    pub component_type: ComponentType,
    /// Its status when listed.
    pub status: AppStatus,
    /// Its public URL (services only).
    pub url: Option<String>,
    /// Its region, when known.
    pub region: Option<String>,
    /// The app as the platform reported it.
    pub app: App,
}

/// Builds and creates a new sandbox: see [`Sandbox::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct SandboxBuilder {
    image: ImageKind,
    component_type: ComponentType,
    name: Option<String>,
    region: Option<String>,
    instance_size: Option<String>,
    env: Vec<(String, String)>,
    wait_ready: bool,
    timeout: Duration,
    console_timeout: Duration,
    defaults: Option<TemplateDefaults>,
    platform: Option<Arc<dyn Platform>>,
}

impl Default for SandboxBuilder {
    fn default() -> Self {
        SandboxBuilder {
            image: ImageKind::Python,
            component_type: ComponentType::Worker,
            name: None,
            region: None,
            instance_size: None,
            env: Vec::new(),
            wait_ready: true,
            timeout: DEFAULT_READY_TIMEOUT,
            console_timeout: DEFAULT_CONSOLE_TIMEOUT,
            defaults: None,
            platform: None,
        }
    }
}

impl SandboxBuilder {
    /// The image: python (default) or node.
    pub fn image(mut self, image: ImageKind) -> Self {
        self.image = image;
        self
    }

    /// Service (public URL, health check) or worker (default, no ports).
    pub fn component_type(mut self, component_type: ComponentType) -> Self {
        self.component_type = component_type;
        self
    }

    /// The app name (default `sandbox-<8 hex>`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The region (default `APP_SANDBOX_REGION`, else `atl1`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The instance size slug (default `apps-s-1vcpu-1gb`).
    pub fn instance_size(mut self, slug: impl Into<String>) -> Self {
        self.instance_size = Some(slug.into());
        self
    }

    /// Adds a run-time environment variable to the sandbox's component.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Whether [`SandboxBuilder::create`] waits until the sandbox is ready (default true).
    pub fn wait_ready(mut self, wait: bool) -> Self {
        self.wait_ready = wait;
        self
    }

    /// How long to wait for readiness (default 600 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long opening a console and starting the exec agent may take (default 60 s).
    pub fn console_timeout(mut self, timeout: Duration) -> Self {
        self.console_timeout = timeout;
        self
    }

    /// Template defaults (owner, tags, region); [`TemplateDefaults::from_env`] unless set.
    pub fn defaults(mut self, defaults: TemplateDefaults) -> Self {
        self.defaults = Some(defaults);
        self
    }

    /// The platform to create the sandbox on (required).
    pub fn platform(mut self, platform: Arc<dyn Platform>) -> Self {
        self.platform = Some(platform);
        self
    }

    /// The app spec this builder would create.
    ///
    /// # Errors
    ///
    /// [`Error::Spec`] naming the field when a name, region, size or env key is invalid.
    pub fn spec(&self) -> Result<appspec::AppSpec> {
        let mut template = SandboxTemplate::new(self.image, self.component_type).defaults(
            self.defaults
                .clone()
                .unwrap_or_else(TemplateDefaults::from_env),
        );
        if let Some(name) = &self.name {
            template = template.name(name);
        }
        if let Some(region) = &self.region {
            template = template.region(region);
        }
        if let Some(size) = &self.instance_size {
            template = template.instance_size(size);
        }
        for (key, value) in &self.env {
            template = template.env(key, value);
        }
        Ok(template.build()?)
    }

    /// Creates the sandbox, and waits until it is ready unless told not to.
    ///
    /// When waiting fails (deployment failed, timeout), the app is deleted before the error is
    /// returned, so nothing is left behind.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] without a platform; [`Error::Spec`]; the platform's error;
    /// [`Error::DeploymentFailed`] or [`Error::NotReady`] from waiting.
    pub async fn create(self) -> Result<Sandbox> {
        let platform = self
            .platform
            .clone()
            .ok_or_else(|| Error::invalid("platform", "a sandbox needs a platform to run on"))?;
        let spec = self.spec()?;
        let span =
            tracing::info_span!("sandbox.create", name = %spec.name, platform = platform.kind());
        async move {
            let app = platform.create_app(&spec).await?;
            let sandbox = Sandbox::from_app(
                Arc::clone(&platform),
                &app,
                appspec::SANDBOX_COMPONENT.to_owned(),
                self.console_timeout,
            );
            if self.wait_ready {
                if let Err(e) = sandbox.wait_ready(self.timeout).await {
                    if let Err(delete_error) = platform.delete_app(&app.id).await {
                        tracing::warn!(app_id = %app.id, error = %delete_error, "could not delete a sandbox that did not become ready");
                    }
                    return Err(e);
                }
            }
            tracing::info!(app_id = %app.id, "sandbox created");
            Ok(sandbox)
        }
        .instrument(span)
        .await
    }
}

impl Sandbox {
    /// A builder for a new sandbox.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    fn from_app(
        platform: Arc<dyn Platform>,
        app: &App,
        component: String,
        console_timeout: Duration,
    ) -> Sandbox {
        let component_type = if app.spec.services.iter().any(|s| s.name == component) {
            Some(ComponentType::Service)
        } else if app.spec.workers.iter().any(|w| w.name == component) {
            Some(ComponentType::Worker)
        } else {
            None
        };
        Sandbox {
            inner: Arc::new(Inner {
                platform,
                app_id: app.id.clone(),
                name: app.name().to_owned(),
                component,
                component_type,
                console_timeout,
                channel: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// Attaches to an existing app by id: its `sandbox` component, or its first component when
    /// it has none by that name (any app works, not only sandboxes this tool created).
    ///
    /// # Errors
    ///
    /// The platform's [`NotFound`](doctl_driver::Error::NotFound) for an unknown app;
    /// [`Error::NotFound`] when the app has no component.
    pub async fn connect(platform: Arc<dyn Platform>, app_id: &str) -> Result<Sandbox> {
        let app = platform.get_app(app_id).await?;
        let component = if app
            .component_names()
            .any(|c| c == appspec::SANDBOX_COMPONENT)
        {
            appspec::SANDBOX_COMPONENT.to_owned()
        } else {
            app.component_names()
                .next()
                .ok_or_else(|| Error::NotFound {
                    what: format!("a service or worker component in app `{app_id}`"),
                })?
                .to_owned()
        };
        Ok(Sandbox::from_app(
            platform,
            &app,
            component,
            DEFAULT_CONSOLE_TIMEOUT,
        ))
    }

    /// Attaches to one component of an existing app (for example `web`, to troubleshoot).
    ///
    /// # Errors
    ///
    /// Not found errors for an unknown app or component.
    pub async fn connect_component(
        platform: Arc<dyn Platform>,
        app_id: &str,
        component: &str,
    ) -> Result<Sandbox> {
        let app = platform.get_app(app_id).await?;
        if !app.component_names().any(|c| c == component) {
            let known: Vec<&str> = app.component_names().collect();
            return Err(Error::NotFound {
                what: format!(
                    "component `{component}` in app `{app_id}` (it has: {})",
                    known.join(", ")
                ),
            });
        }
        Ok(Sandbox::from_app(
            platform,
            &app,
            component.to_owned(),
            DEFAULT_CONSOLE_TIMEOUT,
        ))
    }

    /// Lists the sandboxes this tool created (apps carrying the sandbox marker).
    ///
    /// # Errors
    ///
    /// The platform's error.
    pub async fn list(platform: &dyn Platform) -> Result<Vec<SandboxInfo>> {
        let apps = platform.list_apps().await?;
        Ok(apps
            .into_iter()
            .filter_map(|app| {
                let marker = appspec::sandbox_marker(&app.spec)?;
                Some(SandboxInfo {
                    id: app.id.clone(),
                    name: app.name().to_owned(),
                    image: marker.image,
                    component_type: marker.component,
                    status: app.status(),
                    url: app.live_url.clone(),
                    region: app.region.clone().or_else(|| app.spec.region.clone()),
                    app,
                })
            })
            .collect())
    }

    /// The app id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.inner.app_id
    }

    /// The app name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The component commands run in.
    #[must_use]
    pub fn component(&self) -> &str {
        &self.inner.component
    }

    /// The platform this sandbox lives on.
    #[must_use]
    pub fn platform(&self) -> &Arc<dyn Platform> {
        &self.inner.platform
    }

    /// The app's status, read fresh from the platform.
    ///
    /// # Errors
    ///
    /// The platform's error (not found once deleted).
    pub async fn status(&self) -> Result<AppStatus> {
        Ok(self
            .inner
            .platform
            .get_app(&self.inner.app_id)
            .await?
            .status())
    }

    /// Waits until the app is active, polling with backoff (0.5 s doubling to 5 s).
    ///
    /// Returns at once when the deployment fails or is cancelled.
    ///
    /// # Errors
    ///
    /// [`Error::DeploymentFailed`] with the phase and reason; [`Error::NotReady`] after
    /// `timeout`; the platform's error.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let span = tracing::debug_span!("sandbox.wait_ready", app_id = %self.inner.app_id);
        async {
            let start = Instant::now();
            let deadline = start + timeout;
            let mut delay = Duration::from_millis(500);
            loop {
                let status = self.status().await?;
                match status {
                    AppStatus::Active => return Ok(()),
                    AppStatus::Failed { phase, reason } => {
                        return Err(Error::DeploymentFailed {
                            app_id: self.inner.app_id.clone(),
                            phase,
                            reason,
                        });
                    }
                    other => {
                        let now = Instant::now();
                        if now >= deadline {
                            return Err(Error::NotReady {
                                app_id: self.inner.app_id.clone(),
                                status: other.to_string(),
                                waited: now - start,
                            });
                        }
                        tokio::time::sleep(delay.min(deadline - now)).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    /// The public URL; `None` for workers (and for apps without one).
    ///
    /// # Errors
    ///
    /// The platform's error.
    pub async fn url(&self) -> Result<Option<String>> {
        if self.inner.component_type == Some(ComponentType::Worker) {
            return Ok(None);
        }
        Ok(self
            .inner
            .platform
            .get_app(&self.inner.app_id)
            .await?
            .live_url)
    }

    /// Closes the console and deletes the app.
    ///
    /// # Errors
    ///
    /// The platform's error.
    pub async fn delete(&self) -> Result<()> {
        let span = tracing::info_span!("sandbox.delete", app_id = %self.inner.app_id);
        async {
            self.close_console().await;
            self.inner.platform.delete_app(&self.inner.app_id).await?;
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Closes the console now (it is reopened by the next command).
    pub async fn close_console(&self) {
        let channel = self.inner.channel.lock().await.take();
        drop(channel);
    }

    async fn channel(&self) -> Result<Arc<Channel>> {
        let mut slot = self.inner.channel.lock().await;
        if let Some(channel) = slot.as_ref() {
            if !channel.is_closed() {
                return Ok(Arc::clone(channel));
            }
            tracing::debug!("console dropped; reopening");
        }
        *slot = None;
        let timeout = self.inner.console_timeout;
        let target = ConsoleTarget::new(&self.inner.app_id, &self.inner.component);
        let open = async {
            let console = self.inner.platform.open_console(&target).await?;
            Channel::open(console, timeout).await
        };
        let channel = match tokio::time::timeout(timeout, open).await {
            Ok(result) => Arc::new(result?),
            Err(_) => {
                return Err(Error::Timeout {
                    operation: format!(
                        "opening a console on `{}` of app `{}`",
                        self.inner.component, self.inner.app_id
                    ),
                    timeout,
                });
            }
        };
        *slot = Some(Arc::clone(&channel));
        Ok(channel)
    }

    /// Runs a shell command (`sh -c`) and returns its status and output, byte for byte.
    ///
    /// Stateless: a `cd` or `export` does not reach the next call (use [`Sandbox::session`]).
    ///
    /// # Errors
    ///
    /// [`Error::ConsoleLost`] when the console drops first; the console's errors.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future kills the remote command's process group.
    pub async fn exec(&self, command: &str) -> Result<ExecOutput> {
        self.exec_with(ExecRequest::shell(command)).await
    }

    /// Runs a command described by an [`ExecRequest`] (argv, env, cwd, stdin, timeout).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a bad env key or a NUL byte; [`Error::Timeout`] after the
    /// request's timeout (the remote process group is killed and the console stays usable);
    /// [`Error::ConsoleLost`]; [`Error::Protocol`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future kills the remote command's process group.
    pub async fn exec_with(&self, request: ExecRequest) -> Result<ExecOutput> {
        self.run_collect(request, None).await
    }

    pub(crate) async fn run_collect(
        &self,
        request: ExecRequest,
        session: Option<&str>,
    ) -> Result<ExecOutput> {
        let display = request.display();
        let span = tracing::debug_span!("sandbox.exec", app_id = %self.inner.app_id, command = %shorten(&request.display(), 80));
        async {
            let script = script::compose(&request, session)?;
            let channel = self.channel().await?;
            let mut running = channel
                .start(
                    Mode::Collect,
                    &script,
                    request.stdin.as_deref(),
                    remote_timeout(request.timeout),
                )
                .await?;
            let collect = collect(&mut running, &display);
            let result = match request.timeout {
                None => collect.await,
                Some(timeout) => match tokio::time::timeout(timeout, collect).await {
                    Ok(result) => result,
                    Err(_) => {
                        running.kill(9).await;
                        return Err(Error::Timeout {
                            operation: shorten(&display, 80),
                            timeout,
                        });
                    }
                },
            };
            let mut output = result?;
            output.command = display.clone();
            Ok(output)
        }
        .instrument(span)
        .await
    }

    /// Runs a command and streams its output: chunks of stdout and stderr as they are
    /// produced, then the exit status.
    ///
    /// # Errors
    ///
    /// As [`Sandbox::exec_with`], for starting; later errors arrive in the stream.
    pub async fn exec_stream(&self, request: ExecRequest) -> Result<ExecStream> {
        self.run_stream(request, None).await
    }

    pub(crate) async fn run_stream(
        &self,
        request: ExecRequest,
        session: Option<&str>,
    ) -> Result<ExecStream> {
        let display = request.display();
        let script = script::compose(&request, session)?;
        let channel = self.channel().await?;
        let running = channel
            .start(
                Mode::Stream,
                &script,
                request.stdin.as_deref(),
                remote_timeout(request.timeout),
            )
            .await?;
        let state = StreamState {
            running: Some(running),
            deadline: request.timeout.map(|t| (Instant::now() + t, t)),
            display,
        };
        let stream = futures::stream::unfold(state, |mut state| async move {
            let event = state.next().await?;
            Some((event, state))
        });
        Ok(ExecStream {
            inner: Box::pin(stream),
        })
    }

    /// A session: commands run through it keep the working directory and exported variables
    /// of the previous one.
    #[must_use]
    pub fn session(&self) -> Session {
        Session {
            sandbox: self.clone(),
            id: uuid::Uuid::new_v4().simple().to_string(),
        }
    }
}

/// The remote side's own deadline: a backstop a little after the client's.
fn remote_timeout(timeout: Option<Duration>) -> u64 {
    timeout.map_or(0, |t| t.as_secs() + 2)
}

pub(crate) async fn collect(running: &mut Running, display: &str) -> Result<ExecOutput> {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    loop {
        match running.recv().await {
            Some(Event::Data(Stream::Stdout, bytes)) => stdout.extend_from_slice(&bytes),
            Some(Event::Data(Stream::Stderr, bytes)) => stderr.extend_from_slice(&bytes),
            Some(Event::Exit(status)) => {
                return Ok(ExecOutput::new(
                    ExitStatus::from_shell_status(status),
                    stdout,
                    stderr,
                ));
            }
            Some(Event::Failed(what)) => {
                return Err(Error::protocol(format!(
                    "the agent could not start `{}`: {what}",
                    shorten(display, 80)
                )));
            }
            Some(Event::Corrupt(line)) => {
                running.kill(9).await;
                return Err(Error::protocol(format!(
                    "corrupt frame for `{}`: {line}",
                    shorten(display, 80)
                )));
            }
            Some(Event::Ack | Event::Ready) => {}
            None => {
                return Err(Error::lost(format!(
                    "{} (while `{}` was running; it was not retried and may or may not have finished)",
                    running.lost_reason(),
                    shorten(display, 80)
                )));
            }
        }
    }
}

struct StreamState {
    running: Option<Running>,
    deadline: Option<(Instant, Duration)>,
    display: String,
}

impl StreamState {
    async fn next(&mut self) -> Option<Result<ExecEvent>> {
        let running = self.running.as_mut()?;
        loop {
            let event = match self.deadline {
                None => running.recv().await,
                Some((deadline, timeout)) => {
                    match tokio::time::timeout_at(deadline, running.recv()).await {
                        Ok(event) => event,
                        Err(_) => {
                            running.kill(9).await;
                            self.running = None;
                            return Some(Err(Error::Timeout {
                                operation: shorten(&self.display, 80),
                                timeout,
                            }));
                        }
                    }
                }
            };
            let item = match event {
                Some(Event::Data(Stream::Stdout, bytes)) => {
                    return Some(Ok(ExecEvent::Stdout(bytes.into())));
                }
                Some(Event::Data(Stream::Stderr, bytes)) => {
                    return Some(Ok(ExecEvent::Stderr(bytes.into())));
                }
                Some(Event::Ack | Event::Ready) => continue,
                Some(Event::Exit(status)) => {
                    Ok(ExecEvent::Exit(ExitStatus::from_shell_status(status)))
                }
                Some(Event::Failed(what)) => Err(Error::protocol(format!(
                    "the agent could not start `{}`: {what}",
                    shorten(&self.display, 80)
                ))),
                Some(Event::Corrupt(line)) => {
                    running.kill(9).await;
                    Err(Error::protocol(format!("corrupt frame: {line}")))
                }
                None => Err(Error::lost(format!(
                    "{} (while `{}` was running; it was not retried)",
                    running.lost_reason(),
                    shorten(&self.display, 80)
                ))),
            };
            self.running = None;
            return Some(item);
        }
    }
}

/// Commands that share a working directory and exported environment, one after another.
///
/// Each call starts where the previous one ended (`cd` and `export` carry over). The state is
/// kept in a small folder in the sandbox's temp directory; [`Session::close`] removes it.
#[derive(Debug, Clone)]
pub struct Session {
    sandbox: Sandbox,
    id: String,
}

impl Session {
    /// Runs a shell command in the session.
    ///
    /// # Errors
    ///
    /// As [`Sandbox::exec_with`].
    pub async fn exec(&self, command: &str) -> Result<ExecOutput> {
        self.sandbox
            .run_collect(ExecRequest::shell(command), Some(&self.id))
            .await
    }

    /// Runs a request in the session (its own `cwd` and `env` apply on top of the session's).
    ///
    /// # Errors
    ///
    /// As [`Sandbox::exec_with`].
    pub async fn exec_with(&self, request: ExecRequest) -> Result<ExecOutput> {
        self.sandbox.run_collect(request, Some(&self.id)).await
    }

    /// Streams a request run in the session.
    ///
    /// # Errors
    ///
    /// As [`Sandbox::exec_stream`].
    pub async fn exec_stream(&self, request: ExecRequest) -> Result<ExecStream> {
        self.sandbox.run_stream(request, Some(&self.id)).await
    }

    /// Removes the session's state from the sandbox.
    ///
    /// # Errors
    ///
    /// As [`Sandbox::exec`].
    pub async fn close(self) -> Result<()> {
        let dir = script::session_dir(&self.id);
        self.sandbox
            .exec(&format!("rm -rf {dir}"))
            .await?
            .exit_ok()?;
        Ok(())
    }
}

/// Creates a sandbox, runs `f` with it, and deletes it whether `f` succeeds, fails or panics
/// (the panic resumes after the delete).
///
/// If the process is killed (SIGKILL, power loss) while `f` runs, nothing can delete the
/// sandbox: it stays until deleted by hand. It carries the sandbox marker, so
/// [`Sandbox::list`] (and `sandbox list`/`sandbox delete --all`) finds it.
///
/// # Errors
///
/// Creation errors; `f`'s error; else the delete error.
pub async fn with_sandbox<F, Fut, T>(builder: SandboxBuilder, f: F) -> Result<T>
where
    F: FnOnce(Sandbox) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let sandbox = builder.create().await?;
    let outcome = AssertUnwindSafe(f(sandbox.clone())).catch_unwind().await;
    let deleted = sandbox.delete().await;
    match outcome {
        Err(panic) => {
            if let Err(e) = &deleted {
                tracing::warn!(app_id = %sandbox.id(), error = %e, "could not delete the sandbox after a panic");
            }
            std::panic::resume_unwind(panic)
        }
        Ok(Err(e)) => {
            if let Err(delete_error) = &deleted {
                tracing::warn!(app_id = %sandbox.id(), error = %delete_error, "could not delete the sandbox");
            }
            Err(e)
        }
        Ok(Ok(value)) => deleted.map(|()| value),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use doctl_driver::wire::WireApp;
    use doctl_driver::{Console, Deployment, Instance, LogStream, LogsRequest};

    use super::*;

    /// A platform whose one app walks through scripted deployment JSON documents.
    #[derive(Debug)]
    struct Scripted {
        phases: Mutex<Vec<serde_json::Value>>,
        deleted: Mutex<Vec<String>>,
        spec: Mutex<Option<appspec::AppSpec>>,
    }

    impl Scripted {
        fn new(phases: Vec<serde_json::Value>) -> Arc<Self> {
            Arc::new(Scripted {
                phases: Mutex::new(phases),
                deleted: Mutex::new(Vec::new()),
                spec: Mutex::new(None),
            })
        }

        fn app(&self) -> doctl_driver::Result<App> {
            let spec = self.spec.lock().unwrap().clone().expect("created");
            let mut phases = self.phases.lock().unwrap();
            let fields = if phases.len() > 1 {
                phases.remove(0)
            } else {
                phases[0].clone()
            };
            let mut json = serde_json::json!({"id": "app-1", "spec": spec});
            for (k, v) in fields.as_object().unwrap() {
                json[k] = v.clone();
            }
            let wire: WireApp = serde_json::from_value(json).unwrap();
            App::try_from(wire)
        }
    }

    #[async_trait]
    impl Platform for Scripted {
        fn kind(&self) -> &'static str {
            "scripted"
        }
        async fn create_app(&self, spec: &appspec::AppSpec) -> doctl_driver::Result<App> {
            *self.spec.lock().unwrap() = Some(spec.clone());
            self.app()
        }
        async fn get_app(&self, app_id: &str) -> doctl_driver::Result<App> {
            if self.deleted.lock().unwrap().iter().any(|d| d == app_id) {
                return Err(doctl_driver::Error::not_found(format!("app `{app_id}`")));
            }
            self.app()
        }
        async fn list_apps(&self) -> doctl_driver::Result<Vec<App>> {
            Ok(vec![self.app()?])
        }
        async fn delete_app(&self, app_id: &str) -> doctl_driver::Result<()> {
            self.deleted.lock().unwrap().push(app_id.to_owned());
            Ok(())
        }
        async fn list_deployments(&self, _: &str) -> doctl_driver::Result<Vec<Deployment>> {
            Ok(Vec::new())
        }
        async fn list_instances(&self, _: &str) -> doctl_driver::Result<Vec<Instance>> {
            Ok(Vec::new())
        }
        async fn open_console(&self, _: &ConsoleTarget) -> doctl_driver::Result<Box<dyn Console>> {
            Err(doctl_driver::Error::other("no consoles here"))
        }
        async fn logs(&self, _: &LogsRequest) -> doctl_driver::Result<LogStream> {
            Err(doctl_driver::Error::other("no logs here"))
        }
    }

    fn deploying(phase: &str) -> serde_json::Value {
        serde_json::json!({"in_progress_deployment": {"id": "d1", "phase": phase}})
    }

    fn failed() -> serde_json::Value {
        serde_json::json!({"in_progress_deployment": {"id": "d1", "phase": "ERROR",
            "progress": {"steps": [{"name": "build", "status": "SUCCESS"},
                {"name": "deploy", "status": "ERROR", "reason": {"code": "x", "message": "image pull failed"}}]}}})
    }

    fn active() -> serde_json::Value {
        serde_json::json!({"active_deployment": {"id": "d1", "phase": "ACTIVE"},
            "live_url": "https://sandbox-x.ondigitalocean.app"})
    }

    fn builder(platform: Arc<Scripted>) -> SandboxBuilder {
        Sandbox::builder()
            .defaults(TemplateDefaults::default())
            .name("scripted-box")
            .component_type(ComponentType::Service)
            .platform(platform)
    }

    #[tokio::test(start_paused = true)]
    async fn create_waits_through_phases_until_active() {
        let platform = Scripted::new(vec![
            deploying("PENDING_BUILD"),
            deploying("BUILDING"),
            deploying("DEPLOYING"),
            active(),
        ]);
        let sandbox = builder(Arc::clone(&platform)).create().await.unwrap();
        assert_eq!(sandbox.name(), "scripted-box");
        assert_eq!(
            sandbox.url().await.unwrap().as_deref(),
            Some("https://sandbox-x.ondigitalocean.app")
        );
        assert!(platform.deleted.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn failed_deployment_returns_at_once_with_reason_and_deletes() {
        let platform = Scripted::new(vec![deploying("BUILDING"), failed()]);
        let start = Instant::now();
        let err = builder(Arc::clone(&platform)).create().await.unwrap_err();
        match &err {
            Error::DeploymentFailed { phase, reason, .. } => {
                assert_eq!(*phase, doctl_driver::DeploymentPhase::Error);
                assert!(
                    reason
                        .as_deref()
                        .unwrap_or_default()
                        .contains("image pull failed"),
                    "{err}"
                );
            }
            other => panic!("unexpected {other}"),
        }
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(platform.deleted.lock().unwrap().as_slice(), ["app-1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_timeout_names_the_last_status() {
        let platform = Scripted::new(vec![deploying("DEPLOYING")]);
        let err = builder(Arc::clone(&platform))
            .timeout(Duration::from_secs(30))
            .create()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotReady { .. }), "{err}");
        assert!(err.to_string().contains("DEPLOYING"), "{err}");
        assert!(err.is_retryable());
        assert_eq!(platform.deleted.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn no_wait_and_list_and_missing_platform() {
        let platform = Scripted::new(vec![deploying("PENDING_BUILD")]);
        let sandbox = builder(Arc::clone(&platform))
            .wait_ready(false)
            .create()
            .await
            .unwrap();
        assert!(matches!(
            sandbox.status().await.unwrap(),
            AppStatus::Deploying { .. }
        ));
        let listed = Sandbox::list(platform.as_ref()).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].component_type, ComponentType::Service);
        let err = Sandbox::builder().create().await.unwrap_err();
        assert!(err.to_string().contains("platform"), "{err}");
        let err = Sandbox::builder().name("Bad_Name").spec().unwrap_err();
        assert!(matches!(err, Error::Spec(_)));
        let err = sandbox.exec("true").await.unwrap_err();
        assert!(err.to_string().contains("platform error"), "{err}");
    }
}

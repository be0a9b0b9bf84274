//! [`SandboxBuilder`]: what a new sandbox looks like, and its creation; [`with_sandbox`]: a
//! sandbox that lives for one scope.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use appspec::{ComponentType, ImageKind, SandboxTemplate, TemplateDefaults};
use doctl_driver::Platform;
use futures::FutureExt as _;
use tracing::Instrument as _;

use super::progress::{Progress, ReadyOptions};
use super::{ConsoleSettings, DEFAULT_CONSOLE_TIMEOUT, DEFAULT_HEARTBEAT_TIMEOUT, Sandbox};
use crate::error::{Error, Result};

/// How long [`SandboxBuilder::create`] waits for the sandbox to be ready, unless told.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(600);

/// Builds and creates a new sandbox: see [`Sandbox::builder`].
///
/// # Delete on failure
///
/// When the app was made but the sandbox does not become ready (its deployment fails, the
/// readiness deadline passes, a status poll fails, or the [`cancel_on`](Self::cancel_on)
/// signal fires), [`create`](Self::create) deletes the app before it returns the error, so
/// nothing is left behind; [`Progress::Deleting`] and [`Progress::Deleted`] report it. When
/// that delete fails too, the error is [`Error::CleanupFailed`], carrying both errors and the
/// id of the app left behind. [`delete_on_failure(false)`](Self::delete_on_failure) keeps the
/// app instead (to look at a failed deployment); the error's `app_id` names it. When the
/// platform call that makes the app fails, the platform returned no app, so there is nothing
/// to delete.
#[derive(Clone)]
#[must_use]
pub struct SandboxBuilder {
    image: ImageKind,
    component_type: ComponentType,
    name: Option<String>,
    region: Option<String>,
    instance_size: Option<String>,
    env: Vec<(String, String)>,
    wait_ready: bool,
    delete_on_failure: bool,
    ready: ReadyOptions,
    console_timeout: Duration,
    heartbeat_timeout: Duration,
    defaults: Option<TemplateDefaults>,
    platform: Option<Arc<dyn Platform>>,
    ttl: Option<Duration>,
    marker_attrs: Vec<(&'static str, String)>,
}

impl fmt::Debug for SandboxBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxBuilder")
            .field("image", &self.image)
            .field("component_type", &self.component_type)
            .field("name", &self.name)
            .field("region", &self.region)
            .field("instance_size", &self.instance_size)
            .field("env", &self.env)
            .field("wait_ready", &self.wait_ready)
            .field("delete_on_failure", &self.delete_on_failure)
            .field("ready", &self.ready)
            .field("console_timeout", &self.console_timeout)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .field("defaults", &self.defaults)
            .field("platform", &self.platform)
            .field("ttl", &self.ttl)
            .finish()
    }
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
            delete_on_failure: true,
            ready: ReadyOptions::new(DEFAULT_READY_TIMEOUT),
            console_timeout: DEFAULT_CONSOLE_TIMEOUT,
            heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
            defaults: None,
            platform: None,
            ttl: None,
            marker_attrs: Vec::new(),
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
        self.ready = self.ready.timeout(timeout);
        self
    }

    /// Whether a sandbox that was made but did not become ready is deleted before
    /// [`create`](Self::create) returns the error (default true; see
    /// [Delete on failure](Self#delete-on-failure)).
    pub fn delete_on_failure(mut self, delete: bool) -> Self {
        self.delete_on_failure = delete;
        self
    }

    /// Calls `f` with every [`Progress`] event of the creation: [`Progress::Creating`],
    /// [`Progress::Created`], then (when waiting) a [`Progress::Waiting`] per poll and
    /// [`Progress::Ready`], or [`Progress::Deleting`] and [`Progress::Deleted`] on failure.
    ///
    /// `f` runs on the creating task; keep it quick.
    pub fn on_progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.ready = self.ready.on_progress(f);
        self
    }

    /// The readiness poll pacing: see [`ReadyOptions::poll_interval`].
    pub fn poll_interval(mut self, first: Duration, max: Duration) -> Self {
        self.ready = self.ready.poll_interval(first, max);
        self
    }

    /// Stops waiting for readiness when `signal` completes; the app is then deleted (unless
    /// [`delete_on_failure(false)`](Self::delete_on_failure)) and `create` fails with
    /// [`Error::Cancelled`]. See [`ReadyOptions::cancel_on`].
    pub fn cancel_on(mut self, signal: impl Future<Output = ()> + Send + 'static) -> Self {
        self.ready = self.ready.cancel_on(signal);
        self
    }

    /// How long opening a console and starting the exec agent may take (default 60 s).
    pub fn console_timeout(mut self, timeout: Duration) -> Self {
        self.console_timeout = timeout;
        self
    }

    /// How long the console may stay silent while commands run before they fail with
    /// [`Error::ConsoleLost`](crate::Error::ConsoleLost) (default 15 s; a heartbeat is sent
    /// after a third of it, and any output or completed send counts as life).
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = timeout;
        self
    }

    /// Template defaults (owner, tags, region); [`TemplateDefaults::from_env`] unless set.
    pub fn defaults(mut self, defaults: TemplateDefaults) -> Self {
        self.defaults = Some(defaults);
        self
    }

    /// How long the sandbox may live: its expiry, `ttl` after [`create`](Self::create) is
    /// called, is recorded on the app (see [`Sandbox::expires_at`]) so that any client finds
    /// it. The local provider deletes an expired sandbox by itself; on App Platform, which has
    /// no expiry of its own, [`sweep`](crate::sweep) (run by every
    /// [`PoolManager`](crate::PoolManager) and by `sandbox gc`) deletes it. Default: none.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Adds an attribute to the sandbox marker (pool membership).
    pub(crate) fn marker_attr(mut self, key: &'static str, value: String) -> Self {
        self.marker_attrs.push((key, value));
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
        let mut spec = template.build()?;
        if let Some(ttl) = self.ttl {
            if ttl.is_zero() {
                return Err(Error::invalid(
                    "ttl",
                    "a sandbox's time to live is more than zero",
                ));
            }
            let ttl =
                time::Duration::try_from(ttl).map_err(|_| Error::invalid("ttl", "too long"))?;
            crate::expiry::set_expiry(&mut spec, time::OffsetDateTime::now_utc() + ttl)?;
        }
        for (key, value) in &self.marker_attrs {
            crate::expiry::set_marker_attr(&mut spec, key, value)?;
        }
        Ok(spec)
    }

    /// Creates the sandbox, and waits until it is ready unless told not to.
    ///
    /// When waiting fails (deployment failed, timeout, cancelled), the app is deleted before
    /// the error is returned, so nothing is left behind: see
    /// [Delete on failure](Self#delete-on-failure).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] without a platform; [`Error::Spec`]; the platform's error;
    /// [`Error::DeploymentFailed`], [`Error::NotReady`] or [`Error::Cancelled`] from waiting;
    /// [`Error::CleanupFailed`] when deleting the app after one of those failed too.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it waits for readiness leaves the app behind (nothing can
    /// delete it from a drop): stop a wait with [`cancel_on`](Self::cancel_on) instead.
    pub async fn create(self) -> Result<Sandbox> {
        self.ready.emit(&Progress::Creating);
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
                ConsoleSettings {
                    open_timeout: self.console_timeout,
                    heartbeat_timeout: self.heartbeat_timeout,
                },
            );
            self.ready.emit(&Progress::Created {
                app_id: app.id.clone(),
                name: sandbox.name().to_owned(),
            });
            if self.wait_ready {
                if let Err(error) = sandbox.wait_ready_with(&self.ready).await {
                    return Err(self.clean_up(&sandbox, error).await);
                }
            }
            tracing::info!(app_id = %app.id, "sandbox created");
            Ok(sandbox)
        }
        .instrument(span)
        .await
    }

    /// After `error`, deletes the half-made sandbox (when told to) and returns what to report.
    async fn clean_up(&self, sandbox: &Sandbox, error: Error) -> Error {
        let (app_id, name) = (sandbox.id().to_owned(), sandbox.name().to_owned());
        if !self.delete_on_failure {
            tracing::info!(%app_id, %error, "keeping a sandbox that did not become ready");
            return error;
        }
        self.ready.emit(&Progress::Deleting {
            app_id: app_id.clone(),
            name: name.clone(),
        });
        match sandbox.delete().await {
            Ok(()) => {
                tracing::info!(%app_id, "deleted a sandbox that did not become ready");
                self.ready.emit(&Progress::Deleted { app_id, name });
                error
            }
            Err(delete_error) => {
                tracing::warn!(%app_id, error = %delete_error, "could not delete a sandbox that did not become ready");
                Error::CleanupFailed {
                    app_id,
                    name,
                    error: Box::new(error),
                    delete_error: Box::new(delete_error),
                }
            }
        }
    }
}

impl Sandbox {
    /// A builder for a new sandbox.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
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
    use doctl_driver::{
        App, AppStatus, Console, ConsoleTarget, Deployment, Instance, LogStream, LogsRequest,
    };
    use tokio::time::Instant;

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

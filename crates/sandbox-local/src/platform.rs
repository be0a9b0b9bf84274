//! [`LocalPlatform`]: the [`Platform`] seam over local sandboxes.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use appspec::AppSpec;
use async_trait::async_trait;
use doctl_driver::{
    App, Console, ConsoleTarget, Deployment, DeploymentPhase, Error, Instance, LogKind, LogStream,
    LogsRequest, Platform, Progress, ProgressStep, Result,
};
use futures::StreamExt;
use time::OffsetDateTime;
use tracing::{Instrument, info, info_span, warn};

use crate::config::{LocalConfig, NetworkMode};
use crate::console::LocalConsole;
use crate::launch::{self, APP_PORT, HEALTH_PORT, Host, Launch};
use crate::limits::Limits;
use crate::logs;
use crate::runtime;
use crate::state::{Kind, Layout, Net, Phase, Record, Runtime, is_valid_id};

/// What a deployment whose supervisor died reports.
pub const SUPERVISOR_DEAD: &str = "sandbox supervisor is not running";
/// What a deployment reports when its creator stopped before recording the outcome.
pub const INTERRUPTED: &str = "sandbox creation was interrupted before it finished";

/// App Platform semantics on this machine: each app is a namespace-isolated sandbox.
///
/// Cheap to clone; every clone (and every `LocalPlatform` in any process on the same state
/// folder) sees the same sandboxes. See the [crate docs](crate) for what a sandbox is.
#[derive(Debug, Clone)]
pub struct LocalPlatform {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: LocalConfig,
    layout: Layout,
    host: OnceLock<std::result::Result<Host, String>>,
}

impl LocalPlatform {
    /// A platform over `config.state_dir` (created, mode 0700, when missing).
    ///
    /// The machine itself (util-linux tools, namespaces, user namespaces for non-root users) is
    /// checked at the first operation that starts or enters a sandbox.
    ///
    /// # Errors
    ///
    /// [`Error::Other`] when the state folder cannot be created.
    pub fn new(config: LocalConfig) -> Result<Self> {
        let layout = Layout::new(&config.state_dir);
        layout.ensure()?;
        Ok(LocalPlatform {
            inner: Arc::new(Inner {
                config,
                layout,
                host: OnceLock::new(),
            }),
        })
    }

    /// A platform over the state folder [`LocalConfig::from_env`] names.
    ///
    /// # Errors
    ///
    /// As [`LocalPlatform::new`].
    pub fn from_env() -> Result<Self> {
        Self::new(LocalConfig::from_env())
    }

    /// The configuration in use.
    #[must_use]
    pub fn config(&self) -> &LocalConfig {
        &self.inner.config
    }

    /// The folder holding a sandbox's state (`state.json`, `home/`, `tmp/`, `run.log`).
    #[must_use]
    pub fn sandbox_dir(&self, app_id: &str) -> PathBuf {
        self.inner.layout.sandbox(app_id)
    }

    /// Where the host reaches what a running sandbox sees as `/home/sandbox` (`app/` in it is
    /// `/home/sandbox/app`, the working directory): `/proc/<PID 1>/root/home/sandbox`, since
    /// the sandbox's home is a size-capped tmpfs of its own. For a sandbox that does not run,
    /// a path under its state folder that does not exist.
    #[must_use]
    pub fn home_dir(&self, app_id: &str) -> PathBuf {
        match self.inner.layout.read(app_id) {
            Ok(record) if record.supervisor_alive() => record
                .supervisor
                .map(|s| PathBuf::from(format!("/proc/{}/root/home/sandbox", s.pid)))
                .unwrap_or_default(),
            _ => self.sandbox_dir(app_id).join("home"),
        }
    }

    /// Checks that this machine can run local sandboxes (done once, then remembered).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] naming what is missing.
    pub fn check_host(&self) -> Result<()> {
        self.host().map(|_| ())
    }

    fn host(&self) -> Result<Host> {
        self.inner
            .host
            .get_or_init(|| Host::probe().map_err(|e| e.to_string()))
            .clone()
            .map_err(|reason| Error::Unsupported {
                what: "local sandboxes".into(),
                reason,
            })
    }

    async fn read(&self, app_id: &str) -> Result<Record> {
        let layout = self.inner.layout.clone();
        let id = app_id.to_owned();
        blocking(move || layout.read(&id)).await
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::other(format!("a local sandbox operation panicked: {e}")))?
}

fn create_blocking(
    config: &LocalConfig,
    layout: &Layout,
    host: &Host,
    spec: AppSpec,
) -> Result<Record> {
    let plan = launch::plan(&spec)?;
    let id = uuid::Uuid::new_v4().to_string();
    let dir = layout.sandbox(&id);
    crate::state::create_private_dir(&dir)?;
    let now = OffsetDateTime::now_utc();
    let hostname = launch::instance_name(&plan.component);
    let net = launch::choose_network(plan.kind, config.network, host);
    let limits = Limits::of_slug(&plan.instance_size);
    let mut record = Record {
        id: id.clone(),
        name: spec.name.clone(),
        spec,
        component: plan.component.clone(),
        kind: plan.kind,
        runtime: plan.runtime,
        created_at: now,
        updated_at: now,
        hostname: hostname.clone(),
        deployment_id: uuid::Uuid::new_v4().to_string(),
        phase: Phase::Deploying,
        failure: None,
        supervisor: None,
        holder: None,
        pasta: None,
        network: *net.as_ref().unwrap_or(&Net::Loopback),
        host_port: None,
        health_port: None,
        user_namespace: true,
        uid_base: None,
        instance_size: Some(limits.slug.to_owned()),
        env: Vec::new(),
    };
    if let Err(e) = layout
        .write(&record)
        .and_then(|()| crate::expiry::record(&dir, &record.spec))
        .and_then(|()| layout.claim_name(&record.name, &id))
    {
        let _ = launch::remove_dir(&dir);
        return Err(e);
    }
    let mut deploy_log = vec![format!(
        "{} local sandbox `{}` ({} {}, image `sandbox-{}`) on instance {}",
        stamp(),
        record.name,
        match plan.kind {
            Kind::Service => "service",
            Kind::Worker => "worker",
        },
        record.component,
        plan.runtime.as_str(),
        hostname
    )];
    let result = (|| -> std::result::Result<(), String> {
        launch::runtime_present(plan.runtime)?;
        let net = net?;
        match net {
            Net::Host => {
                warn!(
                    "weaker local sandbox: NetworkMode::Host shares the host's network with \
                     the sandbox"
                );
                deploy_log.push(format!(
                    "{} warning: weaker sandbox: it shares the host's network \
                     (NetworkMode::Host was asked for); it reaches every service listening \
                     on this machine",
                    stamp()
                ));
            }
            Net::Loopback if config.network == NetworkMode::Loopback => {}
            Net::Loopback => {
                deploy_log.push(format!(
                    "{} note: pasta is not installed (Debian: `apt-get install passt`): the \
                     sandbox has its own network with loopback only, no outbound access",
                    stamp()
                ));
                if !LOOPBACK_NOTED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    warn!(
                        "pasta is not installed: local sandboxes get loopback-only networks \
                         (install passt for outbound access)"
                    );
                }
            }
            Net::Pasta => {}
        }
        let ports = if plan.kind == Kind::Service {
            let app = launch::free_port().map_err(|e| e.to_string())?;
            let mut health = launch::free_port().map_err(|e| e.to_string())?;
            while health == app {
                health = launch::free_port().map_err(|e| e.to_string())?;
            }
            Some((app, health))
        } else {
            None
        };
        record.host_port = ports.map(|p| p.0);
        record.health_port = ports.map(|p| p.1);
        record.env = sandbox_env(&record, &plan.spec_env, net, ports);
        runtime::create_bundle_dir(&id).map_err(|e| e.to_string())?;
        let uid_base = runtime::claim_uids(&id).map_err(|e| e.to_string())?;
        record.uid_base = Some(uid_base);
        layout.write(&record).map_err(|e| e.to_string())?;
        let launch = Launch {
            id: &id,
            dir: &dir,
            hostname: &hostname,
            runtime: plan.runtime,
            kind: plan.kind,
            net,
            run_command: &plan.run_command,
            env: &record.env,
            ports,
            limits,
            uid_base,
        };
        launch::prepare(&launch, host).map_err(|e| e.to_string())?;
        deploy_log.push(format!(
            "{} starting the sandbox (network: {}; limits of {}: {} MiB memory, {} vCPU, {} \
             processes, /home {} MiB, /tmp {} MiB)",
            stamp(),
            net_name(net),
            limits.slug,
            limits.memory_mib(),
            limits.vcpus,
            limits.pids,
            limits.home_mib,
            limits.tmp_mib
        ));
        match launch::start(&launch, host) {
            Ok(started) => {
                record.supervisor = Some(started.supervisor);
                record.holder = started.holder;
                record.pasta = started.pasta;
                Ok(())
            }
            Err(failure) => {
                let partial = failure.partial;
                let procs: Vec<_> = [Some(partial.supervisor), partial.pasta]
                    .into_iter()
                    .flatten()
                    .filter(|p| p.pid > 0)
                    .collect();
                launch::teardown(&id, partial.holder, &procs, None);
                Err(failure.reason)
            }
        }
    })();
    if result.is_err() && record.supervisor.is_none() {
        // Nothing runs: the bundle and the uid range go now; the record stays until deleted.
        runtime::remove_bundle(&id);
        if let Some(base) = record.uid_base.take() {
            runtime::release_uids(base, &id);
        }
    }
    record.updated_at = OffsetDateTime::now_utc();
    match result {
        Ok(()) => {
            record.phase = Phase::Active;
            if let Some(port) = record.host_port {
                deploy_log.push(format!(
                    "{} port {} reachable at http://127.0.0.1:{port}",
                    stamp(),
                    if record.network == Net::Host {
                        port
                    } else {
                        APP_PORT
                    }
                ));
            }
            deploy_log.push(format!("{} sandbox is running", stamp()));
        }
        Err(reason) => {
            warn!(%reason, "local sandbox failed to start");
            deploy_log.push(format!("{} deployment failed: {reason}", stamp()));
            record.phase = Phase::Error;
            record.failure = Some(reason);
        }
    }
    let mut text = deploy_log.join("\n");
    text.push('\n');
    let _ = std::fs::write(dir.join("deploy.log"), text);
    layout.write(&record)?;
    Ok(record)
}

fn stamp() -> String {
    OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn net_name(net: Net) -> &'static str {
    match net {
        Net::Host => "the host's (weaker, asked for)",
        Net::Pasta => "private namespace through pasta",
        Net::Loopback => "private namespace, loopback only",
    }
}

/// Whether this process already warned that pasta is missing.
static LOOPBACK_NOTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The python image's virtual environment, inside the sandbox.
const VENV: &str = "/home/sandbox/.venv";

/// The environment every process of the sandbox starts with: the image's, then the spec's.
fn sandbox_env(
    record: &Record,
    spec_env: &[(String, String)],
    net: Net,
    ports: Option<(u16, u16)>,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("HOME", "/home/sandbox"),
        ("USER", "sandbox"),
        ("LOGNAME", "sandbox"),
        ("SHELL", "/bin/bash"),
        ("LANG", "C.UTF-8"),
        ("HOSTNAME", record.hostname.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if record.runtime == Runtime::Python {
        // As the python image's uv-managed Python: a virtual environment first on PATH (PID 1
        // makes it in the home), so `pip install` works for the user; unbuffered output.
        if let Some(path) = env.iter_mut().find(|(k, _)| k == "PATH") {
            path.1 = format!("{VENV}/bin:{}", path.1);
        }
        env.push(("VIRTUAL_ENV".into(), VENV.into()));
        env.push(("PYTHONUNBUFFERED".into(), "1".into()));
    }
    if let Some((app, health)) = ports {
        let (app, health) = match net {
            Net::Host => (app, health),
            Net::Pasta | Net::Loopback => (APP_PORT, HEALTH_PORT),
        };
        env.push(("PORT".into(), app.to_string()));
        env.push(("SANDBOX_HEALTH_PORT".into(), health.to_string()));
    }
    for (key, value) in spec_env {
        if let Some(slot) = env.iter_mut().find(|(k, _)| k == key) {
            slot.1.clone_from(value);
        } else {
            env.push((key.clone(), value.clone()));
        }
    }
    env
}

/// The six steps of a deployment, flattened depth-first like the drivers do.
fn progress(component: &str, phase: DeploymentPhase, reason: Option<&str>) -> Progress {
    let (deploy, wait, finalize, later) = match phase {
        DeploymentPhase::Active => ("SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS"),
        DeploymentPhase::Error => ("ERROR", "PENDING", "PENDING", "ERROR"),
        _ => ("RUNNING", "PENDING", "PENDING", "RUNNING"),
    };
    let failed = |status: &str| {
        if status == "ERROR" {
            reason.map(str::to_owned)
        } else {
            None
        }
    };
    let leaves = [
        ("build/initialize", "SUCCESS"),
        ("build/components/{c}", "SUCCESS"),
        ("deploy/initialize", "SUCCESS"),
        ("deploy/components/{c}/deploy", deploy),
        ("deploy/components/{c}/wait", wait),
        ("deploy/finalize", finalize),
    ];
    let tree = [
        ("build", "SUCCESS"),
        ("build/initialize", "SUCCESS"),
        ("build/components", "SUCCESS"),
        ("build/components/{c}", "SUCCESS"),
        ("deploy", later),
        ("deploy/initialize", "SUCCESS"),
        ("deploy/components", later),
        ("deploy/components/{c}", later),
        ("deploy/components/{c}/deploy", deploy),
        ("deploy/components/{c}/wait", wait),
        ("deploy/finalize", finalize),
    ];
    let mut p = Progress::default();
    for (_, status) in leaves {
        match status {
            "SUCCESS" => p.success_steps += 1,
            "RUNNING" => p.running_steps += 1,
            "ERROR" => p.error_steps += 1,
            _ => p.pending_steps += 1,
        }
        p.total_steps += 1;
    }
    for (name, status) in tree {
        let mut step = ProgressStep::default();
        step.name = name.replace("{c}", component);
        step.status = status.to_owned();
        step.reason = failed(status);
        p.steps.push(step);
    }
    p
}

/// The deployment a record stands for, with the supervisor's liveness taken into account.
fn deployment(record: &Record) -> Deployment {
    let alive = record.supervisor_alive();
    let (phase, reason) = match record.phase {
        Phase::Active if alive => (DeploymentPhase::Active, None),
        Phase::Active => (DeploymentPhase::Error, Some(SUPERVISOR_DEAD.to_owned())),
        Phase::Error => (DeploymentPhase::Error, record.failure.clone()),
        Phase::Deploying => {
            // The creator writes the outcome within seconds; a record still deploying after
            // minutes belongs to a creator that was stopped half-way.
            let stale = OffsetDateTime::now_utc() - record.updated_at > time::Duration::minutes(2);
            match (stale, alive) {
                (false, _) => (DeploymentPhase::Deploying, None),
                (true, false) => (DeploymentPhase::Error, Some(SUPERVISOR_DEAD.to_owned())),
                (true, true) => (DeploymentPhase::Error, Some(INTERRUPTED.to_owned())),
            }
        }
    };
    let mut d = Deployment::new(record.deployment_id.clone(), phase);
    d.progress = Some(progress(&record.component, phase, reason.as_deref()));
    d.cause = Some("app created".into());
    d.created_at = Some(record.created_at);
    d.updated_at = Some(record.updated_at);
    d
}

fn live_url(record: &Record) -> Option<String> {
    match record.kind {
        Kind::Service => record.host_port.map(|p| format!("http://127.0.0.1:{p}")),
        Kind::Worker => None,
    }
}

fn to_app(record: &Record) -> App {
    let mut app = App::new(&record.id, record.spec.clone());
    app.region = record.spec.region.clone().filter(|r| !r.is_empty());
    app.created_at = Some(record.created_at);
    app.updated_at = Some(record.updated_at);
    app.live_url = live_url(record);
    let d = deployment(record);
    if d.phase == DeploymentPhase::Active {
        app.active_deployment = Some(d);
    } else {
        app.in_progress_deployment = Some(d);
    }
    app
}

fn component_not_found(component: &str, record: &Record) -> Error {
    Error::not_found(format!(
        "component `{component}` of app `{}` (it has `{}`)",
        record.id, record.component
    ))
}

#[async_trait]
impl Platform for LocalPlatform {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn create_app(&self, spec: &AppSpec) -> Result<App> {
        let span = info_span!("local.create_app", name = %spec.name);
        async {
            let host = self.host()?;
            let config = self.inner.config.clone();
            let layout = self.inner.layout.clone();
            let spec = spec.clone();
            let record = blocking(move || create_blocking(&config, &layout, &host, spec)).await?;
            info!(id = %record.id, phase = ?record.phase, "local sandbox created");
            Ok(to_app(&record))
        }
        .instrument(span)
        .await
    }

    async fn get_app(&self, app_id: &str) -> Result<App> {
        Ok(to_app(&self.read(app_id).await?))
    }

    async fn list_apps(&self) -> Result<Vec<App>> {
        let layout = self.inner.layout.clone();
        let mut records = blocking(move || {
            let mut records = Vec::new();
            for id in layout.ids()? {
                match layout.read(&id) {
                    Ok(record) => records.push(record),
                    Err(e) if e.is_not_found() => {}
                    // One unreadable record must not hide the others.
                    Err(e) => warn!(id = %id, error = %e, "skipping an unreadable sandbox record"),
                }
            }
            Ok(records)
        })
        .await?;
        records.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(records.iter().map(to_app).collect())
    }

    async fn find_app(&self, name: &str) -> Result<Option<App>> {
        let claim = self.inner.layout.names().join(name);
        if name.contains('/') || name.starts_with('.') {
            return Ok(None);
        }
        let id = match tokio::fs::read_to_string(&claim).await {
            Ok(id) => id.trim().to_owned(),
            Err(_) => return Ok(None),
        };
        if !is_valid_id(&id) {
            return Ok(None);
        }
        match self.read(&id).await {
            Ok(record) if record.name == name => Ok(Some(to_app(&record))),
            Ok(_) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delete_app(&self, app_id: &str) -> Result<()> {
        let span = info_span!("local.delete_app", id = %app_id);
        async {
            let layout = self.inner.layout.clone();
            let id = app_id.to_owned();
            blocking(move || {
                let record = layout.read(&id)?;
                let procs: Vec<_> = [record.supervisor, record.pasta]
                    .into_iter()
                    .flatten()
                    .collect();
                launch::teardown(&id, record.holder, &procs, record.uid_base);
                layout.release_name(&record.name, &id);
                launch::remove_dir(&layout.sandbox(&id))
            })
            .await?;
            info!("local sandbox deleted");
            Ok(())
        }
        .instrument(span)
        .await
    }

    async fn list_deployments(&self, app_id: &str) -> Result<Vec<Deployment>> {
        Ok(vec![deployment(&self.read(app_id).await?)])
    }

    async fn list_instances(&self, app_id: &str) -> Result<Vec<Instance>> {
        let record = self.read(app_id).await?;
        if !record.supervisor_alive() {
            return Ok(Vec::new());
        }
        let component_type = match record.kind {
            Kind::Service => "SERVICE",
            Kind::Worker => "WORKER",
        };
        let mut instance = Instance::new(&record.component, &record.hostname, component_type);
        instance.instance_alias = Some(format!("{}-0", record.component));
        Ok(vec![instance])
    }

    async fn open_console(&self, target: &ConsoleTarget) -> Result<Box<dyn Console>> {
        let span =
            info_span!("local.open_console", id = %target.app_id, component = %target.component);
        async {
            let record = self.read(&target.app_id).await?;
            if target.component != record.component {
                return Err(component_not_found(&target.component, &record));
            }
            if let Some(instance) = &target.instance
                && *instance != record.hostname
            {
                return Err(Error::not_found(format!(
                    "instance `{instance}` of component `{}` of app `{}` (it has `{}`)",
                    record.component, record.id, record.hostname
                )));
            }
            let host = self.host()?;
            let console = LocalConsole::open(&record, &host, target.size).await?;
            Ok(Box::new(console) as Box<dyn Console>)
        }
        .instrument(span)
        .await
    }

    async fn logs(&self, request: &LogsRequest) -> Result<LogStream> {
        let record = self.read(&request.app_id).await?;
        if let Some(component) = &request.component
            && *component != record.component
        {
            return Err(component_not_found(component, &record));
        }
        let dir = self.sandbox_dir(&record.id);
        match request.kind {
            LogKind::Build => {
                let text = format!(
                    "{} local sandboxes are not built: image `sandbox-{}` runs this \
                     machine's `{}`",
                    stamp_of(record.created_at),
                    record.runtime.as_str(),
                    record.runtime.binary()
                );
                let lines = logs::tail_lines(&text, request.tail);
                Ok(futures::stream::iter(lines.into_iter().map(Ok)).boxed())
            }
            LogKind::Deploy => {
                logs::file_stream(dir.join("deploy.log"), dir, request.tail, false).await
            }
            _ => logs::file_stream(dir.join("run.log"), dir, request.tail, request.follow).await,
        }
    }
}

fn stamp_of(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_match_the_fixtures() {
        let p = progress("sandbox", DeploymentPhase::Active, None);
        assert_eq!((p.success_steps, p.total_steps), (6, 6));
        let p = progress("sandbox", DeploymentPhase::Error, Some("boom"));
        assert_eq!((p.success_steps, p.error_steps, p.pending_steps), (3, 1, 2));
        let mut d = Deployment::new("d", DeploymentPhase::Error);
        d.progress = Some(p);
        assert_eq!(d.failure_reason().as_deref(), Some("boom"));
        let p = progress("sandbox", DeploymentPhase::Deploying, None);
        assert_eq!(
            (p.success_steps, p.running_steps, p.pending_steps),
            (3, 1, 2)
        );
    }
}

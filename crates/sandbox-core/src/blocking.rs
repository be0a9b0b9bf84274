//! A synchronous facade over [`crate::Sandbox`], for code without an async runtime.
//!
//! Each [`Sandbox`] here owns a small tokio runtime (one worker thread, like
//! `reqwest::blocking`) that keeps the console's reader running between calls. Do not create
//! or drop one from inside an async context: that panics, as with any tokio runtime.

use std::sync::Arc;
use std::time::Duration;

use doctl_driver::{AppStatus, Platform};

use crate::error::{Error, Result};
use crate::exec::{ExecOutput, ExecRequest};
use crate::process::{LaunchRequest, ProcessInfo, Signal};
use crate::sandbox::{ReadyOptions, SandboxBuilder, SandboxInfo};

fn runtime() -> Result<Arc<tokio::runtime::Runtime>> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sandbox-blocking")
        .enable_all()
        .build()
        .map(Arc::new)
        .map_err(|e| Error::protocol(format!("cannot start the blocking facade's runtime: {e}")))
}

/// A sandbox with blocking methods; the same operations as [`crate::Sandbox`].
#[derive(Debug, Clone)]
pub struct Sandbox {
    inner: crate::Sandbox,
    runtime: Arc<tokio::runtime::Runtime>,
}

/// A launched process with blocking methods.
#[derive(Debug, Clone)]
pub struct ProcessHandle {
    inner: crate::ProcessHandle,
    runtime: Arc<tokio::runtime::Runtime>,
}

/// A session with blocking methods: see [`crate::Session`].
#[derive(Debug, Clone)]
pub struct Session {
    inner: crate::Session,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl Sandbox {
    /// Creates a sandbox from a builder (see [`crate::Sandbox::builder`]).
    ///
    /// # Errors
    ///
    /// As [`SandboxBuilder::create`].
    pub fn create(builder: SandboxBuilder) -> Result<Sandbox> {
        let runtime = runtime()?;
        let inner = runtime.block_on(builder.create())?;
        Ok(Sandbox { inner, runtime })
    }

    /// Attaches to an existing app (see [`crate::Sandbox::connect`]).
    ///
    /// # Errors
    ///
    /// As [`crate::Sandbox::connect`].
    pub fn connect(platform: Arc<dyn Platform>, app_id: &str) -> Result<Sandbox> {
        let runtime = runtime()?;
        let inner = runtime.block_on(crate::Sandbox::connect(platform, app_id))?;
        Ok(Sandbox { inner, runtime })
    }

    /// Attaches to one component of an existing app.
    ///
    /// # Errors
    ///
    /// As [`crate::Sandbox::connect_component`].
    pub fn connect_component(
        platform: Arc<dyn Platform>,
        app_id: &str,
        component: &str,
    ) -> Result<Sandbox> {
        let runtime = runtime()?;
        let inner = runtime.block_on(crate::Sandbox::connect_component(
            platform, app_id, component,
        ))?;
        Ok(Sandbox { inner, runtime })
    }

    /// Lists this tool's sandboxes.
    ///
    /// # Errors
    ///
    /// As [`crate::Sandbox::list`].
    pub fn list(platform: &dyn Platform) -> Result<Vec<SandboxInfo>> {
        runtime()?.block_on(crate::Sandbox::list(platform))
    }

    /// The async handle behind this one.
    #[must_use]
    pub fn as_async(&self) -> &crate::Sandbox {
        &self.inner
    }

    /// The app id.
    #[must_use]
    pub fn id(&self) -> &str {
        self.inner.id()
    }

    /// The app name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The component commands run in.
    #[must_use]
    pub fn component(&self) -> &str {
        self.inner.component()
    }

    /// See [`crate::Sandbox::status`].
    ///
    /// # Errors
    ///
    /// The platform's error.
    pub fn status(&self) -> Result<AppStatus> {
        self.runtime.block_on(self.inner.status())
    }

    /// See [`crate::Sandbox::wait_ready`].
    ///
    /// # Errors
    ///
    /// As the async method.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        self.runtime.block_on(self.inner.wait_ready(timeout))
    }

    /// See [`crate::Sandbox::wait_ready_with`].
    ///
    /// # Errors
    ///
    /// As the async method.
    pub fn wait_ready_with(&self, options: &ReadyOptions) -> Result<()> {
        self.runtime.block_on(self.inner.wait_ready_with(options))
    }

    /// See [`crate::Sandbox::url`].
    ///
    /// # Errors
    ///
    /// The platform's error.
    pub fn url(&self) -> Result<Option<String>> {
        self.runtime.block_on(self.inner.url())
    }

    /// See [`crate::Sandbox::delete`].
    ///
    /// # Errors
    ///
    /// The platform's error.
    pub fn delete(&self) -> Result<()> {
        self.runtime.block_on(self.inner.delete())
    }

    /// See [`crate::Sandbox::exec`].
    ///
    /// # Errors
    ///
    /// As the async method.
    pub fn exec(&self, command: &str) -> Result<ExecOutput> {
        self.runtime.block_on(self.inner.exec(command))
    }

    /// See [`crate::Sandbox::exec_with`].
    ///
    /// # Errors
    ///
    /// As the async method.
    pub fn exec_with(&self, request: ExecRequest) -> Result<ExecOutput> {
        self.runtime.block_on(self.inner.exec_with(request))
    }

    /// Runs a command and calls `on_event` with each output chunk as it arrives; returns the
    /// collected output (the blocking form of [`crate::Sandbox::exec_stream`]).
    ///
    /// # Errors
    ///
    /// As the async method.
    pub fn exec_stream(
        &self,
        request: ExecRequest,
        mut on_event: impl FnMut(&crate::ExecEvent),
    ) -> Result<ExecOutput> {
        self.runtime.block_on(async {
            let mut stream = self.inner.exec_stream(request).await?;
            let mut stdout = Vec::new();
            let mut stderr = Vec::new();
            while let Some(event) = stream.next_event().await {
                let event = event?;
                on_event(&event);
                match event {
                    crate::ExecEvent::Stdout(b) => stdout.extend_from_slice(&b),
                    crate::ExecEvent::Stderr(b) => stderr.extend_from_slice(&b),
                    crate::ExecEvent::Exit(status) => {
                        return Ok(ExecOutput::new(status, stdout, stderr));
                    }
                }
            }
            Err(Error::command_lost(
                "the command's stream ended without an exit status",
            ))
        })
    }

    /// See [`crate::Sandbox::session`].
    #[must_use]
    pub fn session(&self) -> Session {
        Session {
            inner: self.inner.session(),
            runtime: Arc::clone(&self.runtime),
        }
    }

    /// See [`crate::Sandbox::launch`].
    ///
    /// # Errors
    ///
    /// As the async method.
    pub fn launch(&self, request: LaunchRequest) -> Result<ProcessHandle> {
        let inner = self.runtime.block_on(self.inner.launch(request))?;
        Ok(ProcessHandle {
            inner,
            runtime: Arc::clone(&self.runtime),
        })
    }

    /// See [`crate::Sandbox::processes`].
    ///
    /// # Errors
    ///
    /// As the async method.
    pub fn processes(&self, pattern: Option<&str>) -> Result<Vec<ProcessInfo>> {
        self.runtime.block_on(self.inner.processes(pattern))
    }

    /// See [`crate::Sandbox::kill`].
    ///
    /// # Errors
    ///
    /// As the async method.
    pub fn kill(&self, pid: u32, signal: Signal) -> Result<()> {
        self.runtime.block_on(self.inner.kill(pid, signal))
    }

    /// See [`crate::Sandbox::kill_all`].
    ///
    /// # Errors
    ///
    /// As the async method.
    pub fn kill_all(&self) -> Result<Vec<u32>> {
        self.runtime.block_on(self.inner.kill_all())
    }

    /// See [`crate::Sandbox::process_log`].
    ///
    /// # Errors
    ///
    /// As the async method.
    pub fn process_log(&self, pid: u32, tail_lines: Option<usize>) -> Result<Vec<u8>> {
        self.runtime
            .block_on(self.inner.process_log(pid, tail_lines))
    }
}

impl Session {
    /// See [`crate::Session::exec`].
    ///
    /// # Errors
    ///
    /// As the async method.
    pub fn exec(&self, command: &str) -> Result<ExecOutput> {
        self.runtime.block_on(self.inner.exec(command))
    }

    /// See [`crate::Session::exec_with`].
    ///
    /// # Errors
    ///
    /// As the async method.
    pub fn exec_with(&self, request: ExecRequest) -> Result<ExecOutput> {
        self.runtime.block_on(self.inner.exec_with(request))
    }
}

impl ProcessHandle {
    /// Its pid.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.inner.pid()
    }

    /// Its log path inside the sandbox.
    #[must_use]
    pub fn log_path(&self) -> &str {
        self.inner.log_path()
    }

    /// See [`crate::ProcessHandle::log`].
    ///
    /// # Errors
    ///
    /// As the async method.
    pub fn log(&self, tail_lines: Option<usize>) -> Result<Vec<u8>> {
        self.runtime.block_on(self.inner.log(tail_lines))
    }

    /// See [`crate::ProcessHandle::kill`].
    ///
    /// # Errors
    ///
    /// As the async method.
    pub fn kill(&self, signal: Signal) -> Result<()> {
        self.runtime.block_on(self.inner.kill(signal))
    }

    /// See [`crate::ProcessHandle::is_running`].
    ///
    /// # Errors
    ///
    /// As the async method.
    pub fn is_running(&self) -> Result<bool> {
        self.runtime.block_on(self.inner.is_running())
    }

    /// See [`crate::ProcessHandle::wait`].
    ///
    /// # Errors
    ///
    /// As the async method.
    pub fn wait(&self, timeout: Duration) -> Result<Option<crate::ExitStatus>> {
        self.runtime.block_on(self.inner.wait(timeout))
    }
}

/// Warm pools with blocking methods: see [`crate::PoolManager`]. The pools' background work
/// runs on this manager's own runtime between calls.
#[derive(Debug, Clone)]
pub struct PoolManager {
    inner: crate::PoolManager,
    runtime: Arc<tokio::runtime::Runtime>,
}

/// A sandbox acquired from a blocking [`PoolManager`]: see [`crate::PooledSandbox`].
#[derive(Debug)]
pub struct PooledSandbox {
    inner: crate::PooledSandbox,
    sandbox: Sandbox,
}

impl PoolManager {
    /// Starts the manager a builder describes (see [`crate::PoolManagerBuilder::build`]).
    ///
    /// # Errors
    ///
    /// As [`crate::PoolManagerBuilder::build`].
    pub fn build(builder: crate::PoolManagerBuilder) -> Result<PoolManager> {
        let runtime = runtime()?;
        let inner = {
            let _entered = runtime.enter();
            builder.build()?
        };
        Ok(PoolManager { inner, runtime })
    }

    /// See [`crate::PoolManager::acquire`].
    ///
    /// # Errors
    ///
    /// As the async method.
    pub fn acquire(&self, template: &crate::Template, timeout: Duration) -> Result<PooledSandbox> {
        let inner = self
            .runtime
            .block_on(self.inner.acquire(template, timeout))?;
        let sandbox = Sandbox {
            inner: (*inner).clone(),
            runtime: Arc::clone(&self.runtime),
        };
        Ok(PooledSandbox { inner, sandbox })
    }

    /// See [`crate::PoolManager::warm_up`].
    ///
    /// # Errors
    ///
    /// As the async method.
    pub fn warm_up(&self, timeout: Duration) -> Result<()> {
        self.runtime.block_on(self.inner.warm_up(timeout))
    }

    /// See [`crate::PoolManager::metrics`].
    #[must_use]
    pub fn metrics(&self) -> crate::Metrics {
        self.inner.metrics()
    }

    /// See [`crate::PoolManager::sweep`].
    ///
    /// # Errors
    ///
    /// As the async method.
    pub fn sweep(&self) -> Result<Vec<crate::Swept>> {
        self.runtime.block_on(self.inner.sweep())
    }

    /// See [`crate::PoolManager::shutdown`].
    ///
    /// # Errors
    ///
    /// As the async method.
    pub fn shutdown(&self) -> Result<()> {
        self.runtime.block_on(self.inner.shutdown())
    }

    /// The async manager behind this one.
    #[must_use]
    pub fn as_async(&self) -> &crate::PoolManager {
        &self.inner
    }
}

impl PooledSandbox {
    /// The sandbox, with blocking methods.
    #[must_use]
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Deletes the sandbox.
    ///
    /// # Errors
    ///
    /// The platform's error.
    pub fn delete(self) -> Result<()> {
        let PooledSandbox { inner, sandbox } = self;
        sandbox.runtime.block_on(inner.delete())
    }
}

/// Sweeps expired and orphaned sandboxes (see [`crate::sweep`]).
///
/// # Errors
///
/// As [`crate::sweep`].
pub fn sweep(platform: &dyn Platform, options: &crate::SweepOptions) -> Result<Vec<crate::Swept>> {
    runtime()?.block_on(crate::sweep(platform, options))
}

#[cfg(test)]
mod pool_tests {
    use super::*;

    #[test]
    fn a_blocking_pool_hands_out_warm_sandboxes() {
        let platform: Arc<dyn Platform> =
            Arc::new(crate::testing::PtyPlatform::new().expect("pty platform"));
        let template =
            crate::Template::new(appspec::ImageKind::Python, appspec::ComponentType::Worker);
        let manager = PoolManager::build(
            crate::PoolManager::builder()
                .platform(Arc::clone(&platform))
                .defaults(appspec::TemplateDefaults::default())
                .sweep_interval(None)
                .pool(template.clone(), crate::PoolConfig::new().min_ready(1)),
        )
        .unwrap();
        manager.warm_up(Duration::from_secs(30)).unwrap();
        let sandbox = manager.acquire(&template, Duration::from_secs(30)).unwrap();
        assert_eq!(sandbox.sandbox().exec("echo hi").unwrap().stdout, b"hi\n");
        sandbox.delete().unwrap();
        manager.shutdown().unwrap();
        let left = runtime().unwrap().block_on(platform.list_apps()).unwrap();
        assert!(left.is_empty());
    }
}

//! The seam every upper layer talks to: [`Platform`] and [`Console`].

use std::fmt;
use std::pin::Pin;

use appspec::AppSpec;
use async_trait::async_trait;
use futures::Stream;

use crate::error::Result;
use crate::types::{App, Deployment, Instance};

/// App Platform, or something that behaves like it.
///
/// Implemented by `Doctl` (the doctl binary), `DoApi` (the REST API and exec
/// WebSocket) and `sandbox_local::LocalPlatform` (namespace-isolated sandboxes on this machine).
/// Object-safe: upper layers hold an `Arc<dyn Platform>`.
#[async_trait]
pub trait Platform: Send + Sync + fmt::Debug {
    /// A short name for messages: `doctl`, `api`, `local`.
    fn kind(&self) -> &'static str;

    /// Creates an app from a spec and starts its first deployment.
    ///
    /// Never retried by the implementation where a retry could create two apps.
    async fn create_app(&self, spec: &AppSpec) -> Result<App>;

    /// Reads an app by id.
    async fn get_app(&self, app_id: &str) -> Result<App>;

    /// Lists every app (all pages).
    async fn list_apps(&self) -> Result<Vec<App>>;

    /// Finds an app by its spec name; `Ok(None)` when no app has that name.
    async fn find_app(&self, name: &str) -> Result<Option<App>> {
        Ok(self
            .list_apps()
            .await?
            .into_iter()
            .find(|app| app.spec.name == name))
    }

    /// Deletes an app and everything running in it.
    async fn delete_app(&self, app_id: &str) -> Result<()>;

    /// Lists an app's deployments, newest first.
    async fn list_deployments(&self, app_id: &str) -> Result<Vec<Deployment>>;

    /// Lists the running instances of an app's components.
    async fn list_instances(&self, app_id: &str) -> Result<Vec<Instance>>;

    /// Opens an interactive shell on a remote terminal in one of an app's components.
    async fn open_console(&self, target: &ConsoleTarget) -> Result<Box<dyn Console>>;

    /// Reads a component's logs; with `follow`, the stream stays open for new lines.
    async fn logs(&self, request: &LogsRequest) -> Result<LogStream>;
}

/// A byte stream to an interactive shell on a remote terminal.
///
/// What travels is what a terminal carries: input is echoed, output has CR/LF translation and
/// escapes. Over App Platform's exec WebSocket only ASCII survives intact, so callers that need
/// exact bytes encode them (`sandbox-core`'s exec protocol does).
///
/// Dropping a console ends it and whatever process carries it (for example the doctl child).
#[async_trait]
pub trait Console: Send + Sync {
    /// Sends bytes to the terminal's input.
    async fn send(&self, data: &[u8]) -> Result<()>;

    /// Receives the next chunk of terminal output.
    ///
    /// `Ok(None)` means the remote shell ended the session normally (close 1000); a dropped
    /// connection is an error, never a silent end.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: no output is lost if the future is dropped before it completes. Only one
    /// task should receive at a time.
    async fn recv(&self) -> Result<Option<Vec<u8>>>;

    /// Changes the terminal's window size.
    async fn resize(&self, size: TermSize) -> Result<()>;

    /// Ends the session and releases what carries it.
    async fn close(&self) -> Result<()>;
}

/// Which component (and optionally which instance) a console opens on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsoleTarget {
    /// App id.
    pub app_id: String,
    /// Component name (`sandbox` for sandboxes; any component for troubleshooting).
    pub component: String,
    /// One instance by name; `None` lets the platform pick.
    pub instance: Option<String>,
    /// The terminal's initial window size.
    pub size: TermSize,
}

impl ConsoleTarget {
    /// A console on `component` of `app_id`, any instance, default size.
    #[must_use]
    pub fn new(app_id: impl Into<String>, component: impl Into<String>) -> Self {
        ConsoleTarget {
            app_id: app_id.into(),
            component: component.into(),
            instance: None,
            size: TermSize::default(),
        }
    }

    /// Picks one instance by name.
    #[must_use]
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// Sets the initial window size.
    #[must_use]
    pub fn with_size(mut self, size: TermSize) -> Self {
        self.size = size;
        self
    }
}

/// A terminal window size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermSize {
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
}

impl Default for TermSize {
    fn default() -> Self {
        TermSize {
            cols: 200,
            rows: 50,
        }
    }
}

/// Which logs to read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogsRequest {
    /// App id.
    pub app_id: String,
    /// Component name; `None` for all components.
    pub component: Option<String>,
    /// Run, build or deploy logs.
    pub kind: LogKind,
    /// Keep the stream open for new lines.
    pub follow: bool,
    /// Only the last N lines, when set.
    pub tail: Option<u32>,
}

impl LogsRequest {
    /// Run logs of `component` of `app_id`, not followed.
    #[must_use]
    pub fn new(app_id: impl Into<String>, component: impl Into<String>) -> Self {
        LogsRequest {
            app_id: app_id.into(),
            component: Some(component.into()),
            kind: LogKind::Run,
            follow: false,
            tail: None,
        }
    }

    /// Sets the kind of logs.
    #[must_use]
    pub fn with_kind(mut self, kind: LogKind) -> Self {
        self.kind = kind;
        self
    }

    /// Follows the logs.
    #[must_use]
    pub fn with_follow(mut self, follow: bool) -> Self {
        self.follow = follow;
        self
    }

    /// Keeps only the last `lines` lines.
    #[must_use]
    pub fn with_tail(mut self, lines: u32) -> Self {
        self.tail = Some(lines);
        self
    }
}

/// The kind of logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LogKind {
    /// What the component's processes print.
    Run,
    /// The build's output.
    Build,
    /// The deployment's output.
    Deploy,
}

impl LogKind {
    /// The API name: `RUN`, `BUILD`, `DEPLOY`.
    #[must_use]
    pub fn as_api_str(self) -> &'static str {
        match self {
            LogKind::Run => "RUN",
            LogKind::Build => "BUILD",
            LogKind::Deploy => "DEPLOY",
        }
    }

    /// doctl's name: `run`, `build`, `deploy`.
    #[must_use]
    pub fn as_doctl_str(self) -> &'static str {
        match self {
            LogKind::Run => "run",
            LogKind::Build => "build",
            LogKind::Deploy => "deploy",
        }
    }
}

/// Log lines, each without its trailing newline, as they arrive.
pub type LogStream = Pin<Box<dyn Stream<Item = Result<String>> + Send>>;

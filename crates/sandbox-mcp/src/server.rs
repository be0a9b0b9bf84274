//! The MCP server: its tools, the sandboxes it created, and its cleanup.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_router};
use sandbox_core::{ExecEvent, ExecRequest, LaunchRequest, Provider, Sandbox, Signal};
use sandbox_fs::{FileKind, RmOptions, SandboxFsExt as _};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::Config;
use crate::error::{Error, Result};
use crate::jobs::Jobs;
use crate::output::{Capture, Redactor, decode_base64};

/// The longest `ttl_seconds` a `create_sandbox` call may ask for: one day.
const MAX_TTL: Duration = Duration::from_secs(86_400);
/// The longest timeout an `exec` call may ask for: one hour.
const MAX_EXEC_TIMEOUT: Duration = Duration::from_secs(3600);
/// `exec_start`'s wrapper: `$1` names the file that records the command's pid (in
/// `$HOME/.sandbox-mcp`, else `/tmp`), so that `exec_signal` can signal it; the wrapper then
/// `exec`s the command, which keeps the pid and its stdin. Commands start with SIGINT and
/// SIGQUIT ignored (the exec agent starts them as background jobs), which no shell can undo,
/// so where coreutils' `env` can (8.31 and later) it restores their default handling.
const PID_PRELUDE: &str = r#"d="${HOME:-/tmp}/.sandbox-mcp"; mkdir -p "$d" 2>/dev/null || d=/tmp; echo $$ >"$d/$1.pid" 2>/dev/null; shift; if env --default-signal=INT,QUIT true 2>/dev/null; then set -- env --default-signal=INT,QUIT "$@"; fi; exec "$@""#;
/// Reads the pid an `exec_start` wrapper recorded (`$1`: its token).
const PID_READ: &str =
    r#"d="${HOME:-/tmp}/.sandbox-mcp"; [ -f "$d/$1.pid" ] || d=/tmp; cat "$d/$1.pid""#;

/// How many sessions may be open at once.
const MAX_SESSIONS: usize = 32;
/// The longest an `exec_poll` call waits for output.
const MAX_POLL_WAIT: Duration = Duration::from_secs(60);

/// What the server tells a model about itself at the handshake.
const INSTRUCTIONS: &str = "Sandboxes are isolated Linux machines (Python 3 or Node.js images) \
for running untrusted code. Start with create_sandbox, then use its name with exec (one command, \
output returned when it ends), exec_start/exec_poll (long-running commands), the file tools and \
the process tools. Sandboxes created here expire (ttl) and are deleted when this server stops; \
delete them with delete_sandbox when done.";

/// An MCP server whose tools work on sandboxes of one [`Provider`].
///
/// Cheap to clone (clones share the state). Serve it with [`crate::serve`] or any rmcp
/// transport (`rmcp::ServiceExt::serve`), then call [`SandboxServer::shutdown`].
#[derive(Clone)]
pub struct SandboxServer {
    inner: Arc<Inner>,
    tool_router: ToolRouter<SandboxServer>,
    /// The tools as listed: descriptions of one paragraph each.
    tools: Arc<Vec<rmcp::model::Tool>>,
}

struct Inner {
    platform: Arc<dyn doctl_driver::Platform>,
    label: String,
    config: Config,
    host_root: Option<PathBuf>,
    redactor: Redactor,
    owned: Mutex<Owned>,
    jobs: Jobs,
    /// Cancelled at shutdown: stops creations in progress (which then delete their app).
    stopping: CancellationToken,
    /// Signalled when a creation ends.
    created: tokio::sync::Notify,
    sessions: Mutex<Sessions>,
    /// Ids of the snapshots this server took.
    snapshots_taken: Mutex<std::collections::HashSet<String>>,
}

#[derive(Default)]
struct Sessions {
    next: u64,
    map: HashMap<String, OpenSession>,
}

#[derive(Clone)]
struct OpenSession {
    session: sandbox_core::Session,
    sandbox_id: String,
    sandbox_name: String,
}

#[derive(Default)]
struct Owned {
    sandboxes: HashMap<String, OwnedSandbox>,
    /// Creations in progress (they count against the cap).
    creating: usize,
}

#[derive(Clone)]
struct OwnedSandbox {
    sandbox: Sandbox,
    image: &'static str,
    component_type: &'static str,
    created_at: OffsetDateTime,
}

/// Counts a creation in progress (against the cap, and for the shutdown to wait on) until
/// dropped.
struct CreatingGuard<'a>(&'a Inner);

impl Drop for CreatingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.0.owned).creating -= 1;
        self.0.created.notify_waiters();
    }
}

/// What [`SandboxServer::shutdown`] did with the server's sandboxes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cleanup {
    /// Names of the sandboxes deleted.
    pub deleted: Vec<String>,
    /// Names of the sandboxes kept ([`Config::keep`]).
    pub kept: Vec<String>,
    /// Names of the sandboxes that could not be deleted, with why.
    pub failed: Vec<(String, String)>,
    /// How many `exec_start` commands were still running and were killed.
    pub stopped_execs: usize,
}

/// A failure to report to the model as a tool error.
struct ToolError(String);

impl<E: std::fmt::Display> From<E> for ToolError {
    fn from(e: E) -> Self {
        ToolError(e.to_string())
    }
}

fn fail(message: impl Into<String>) -> ToolError {
    ToolError(message.into())
}

type ToolResult = std::result::Result<Value, ToolError>;

// ---- parameters ----

/// Which sandbox.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SandboxParams {
    /// The sandbox's name (as create_sandbox returned it) or its id.
    sandbox: String,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum ImageParam {
    /// Python 3 with uv and pip.
    Python,
    /// Node.js with npm.
    Node,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum ComponentTypeParam {
    /// No ports and no public URL (the default).
    Worker,
    /// Serves HTTP on port 8080 at a public URL (see get_url).
    Service,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateParams {
    /// The image: `python` (the default) or `node`.
    image: Option<ImageParam>,
    /// A name for the sandbox (lowercase letters, digits and dashes; default `sandbox-<8 hex>`).
    name: Option<String>,
    /// `worker` (the default) or `service` (a public URL for a web server on port 8080).
    component_type: Option<ComponentTypeParam>,
    /// The instance size slug (default `apps-s-1vcpu-1gb`; DigitalOcean only).
    instance_size: Option<String>,
    /// The region slug (DigitalOcean only; default `atl1`).
    region: Option<String>,
    /// Environment variables of the sandbox.
    env: Option<BTreeMap<String, String>>,
    /// Seconds until the sandbox is deleted by itself (default: the server's TTL, one hour
    /// unless configured; at most one day).
    ttl_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecParams {
    /// The sandbox's name or id.
    sandbox: String,
    /// A shell command line, run by `sh -c` (pipes, `&&`, redirections work). Give this or
    /// `argv`.
    command: Option<String>,
    /// A program and its arguments, run without a shell (no quoting needed). Give this or
    /// `command`.
    argv: Option<Vec<String>>,
    /// The working directory (default: the sandbox user's home).
    cwd: Option<String>,
    /// Extra environment variables for this command.
    env: Option<BTreeMap<String, String>>,
    /// Text to feed to the command's standard input.
    stdin: Option<String>,
    /// Bytes to feed to standard input, as base64 (instead of `stdin`).
    stdin_base64: Option<String>,
    /// Seconds before the command is killed (default 60, at most 3600). Use exec_start for
    /// longer commands.
    timeout_seconds: Option<f64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecStartParams {
    /// The sandbox's name or id.
    sandbox: String,
    /// A shell command line, run by `sh -c`. Give this or `argv`.
    command: Option<String>,
    /// A program and its arguments, run without a shell. Give this or `command`.
    argv: Option<Vec<String>>,
    /// The working directory (default: the sandbox user's home).
    cwd: Option<String>,
    /// Extra environment variables for this command.
    env: Option<BTreeMap<String, String>>,
    /// Text for standard input, given all at once when the command starts.
    stdin: Option<String>,
    /// Standard input as base64 (instead of `stdin`).
    stdin_base64: Option<String>,
    /// Seconds before the command is killed (default: no limit; it is killed when the server
    /// stops).
    timeout_seconds: Option<f64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecPollParams {
    /// The id exec_start returned.
    exec_id: String,
    /// Seconds to wait for new output when there is none yet (default 10, at most 60; 0
    /// returns at once).
    wait_seconds: Option<f64>,
    /// The most bytes of each of stdout and stderr to return (default: the server's output
    /// limit, 64 KiB); the rest waits for the next poll.
    max_bytes: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecSignalParams {
    /// The id exec_start returned.
    exec_id: String,
    /// `KILL` (the default: the command's whole process group is killed), or `TERM`, `INT`,
    /// `HUP`, `QUIT`, `USR1`, `USR2`, `STOP`, `CONT`, a number: sent to the command's process.
    signal: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionExecParams {
    /// The id session_start returned.
    session_id: String,
    /// A shell command line; `cd` and `export` carry over to the next command of the session.
    command: String,
    /// Text to feed to the command's standard input.
    stdin: Option<String>,
    /// Standard input as base64 (instead of `stdin`).
    stdin_base64: Option<String>,
    /// Seconds before the command is killed (default 60, at most 3600).
    timeout_seconds: Option<f64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SnapshotCreateParams {
    /// The sandbox's name or id.
    sandbox: String,
    /// Absolute folders to keep (default `/home/sandbox/app`).
    paths: Option<Vec<String>>,
    /// A snapshot of the same sandbox's folders to build on: only what changed is stored.
    parent: Option<String>,
    /// A note for whoever lists the snapshots.
    description: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SnapshotRestoreParams {
    /// The sandbox's name or id.
    sandbox: String,
    /// The id snapshot_create returned.
    snapshot_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionParams {
    /// The id session_start returned.
    session_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PathParams {
    /// The sandbox's name or id.
    sandbox: String,
    /// The path in the sandbox (relative paths start at the sandbox user's home).
    path: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListDirParams {
    /// The sandbox's name or id.
    sandbox: String,
    /// The folder (default: the sandbox user's home).
    path: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WriteFileParams {
    /// The sandbox's name or id.
    sandbox: String,
    /// The file's path; missing parent folders are created.
    path: String,
    /// The content as text (UTF-8). Give this or `base64`.
    text: Option<String>,
    /// The content as base64, for bytes that are not text. Give this or `text`.
    base64: Option<String>,
    /// Add to the end of the file instead of replacing it.
    append: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RemoveParams {
    /// The sandbox's name or id.
    sandbox: String,
    /// The file or folder to remove.
    path: String,
    /// Remove a folder with everything in it.
    recursive: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MkdirParams {
    /// The sandbox's name or id.
    sandbox: String,
    /// The folder to create.
    path: String,
    /// Create missing parents too, and accept an existing folder (default true).
    parents: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LaunchParams {
    /// The sandbox's name or id.
    sandbox: String,
    /// The shell command line to run in the background (a server, a watcher).
    command: String,
    /// The working directory.
    cwd: Option<String>,
    /// Extra environment variables.
    env: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListProcessesParams {
    /// The sandbox's name or id.
    sandbox: String,
    /// Only processes whose command line contains this text.
    pattern: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProcessLogsParams {
    /// The sandbox's name or id.
    sandbox: String,
    /// The pid launch_process returned.
    pid: u32,
    /// Only the last this many lines.
    tail_lines: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KillProcessParams {
    /// The sandbox's name or id.
    sandbox: String,
    /// The process id (launched processes: their whole group gets the signal).
    pid: u32,
    /// `TERM` (the default), `KILL`, `INT`, `HUP`, `QUIT`, `USR1`, `USR2`, `STOP`, `CONT`, or
    /// a number.
    signal: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UploadParams {
    /// The sandbox's name or id.
    sandbox: String,
    /// The file on the host, relative to the folder the server allows (`--allow-host-files`).
    host_path: String,
    /// Where to put it in the sandbox.
    path: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DownloadParams {
    /// The sandbox's name or id.
    sandbox: String,
    /// The file in the sandbox.
    path: String,
    /// Where to put it on the host, relative to the folder the server allows
    /// (`--allow-host-files`); missing folders inside it are created.
    host_path: String,
}

// ---- the server ----

impl SandboxServer {
    /// A server on this provider.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when [`Config::host_files`] is not an existing folder.
    pub fn new(provider: Provider, config: Config) -> Result<Self> {
        let label = config
            .provider_label
            .clone()
            .unwrap_or_else(|| provider.label().to_owned());
        Self::with_platform(provider.into_platform(), label, config)
    }

    /// A server on this platform (any implementation of the seam: an emulator's driver, a
    /// test double), named `label` in messages.
    ///
    /// # Errors
    ///
    /// As [`SandboxServer::new`].
    pub fn with_platform(
        platform: Arc<dyn doctl_driver::Platform>,
        label: impl Into<String>,
        config: Config,
    ) -> Result<Self> {
        let label = label.into();
        let host_root =
            match &config.host_files {
                Some(dir) => Some(std::fs::canonicalize(dir).map_err(|e| {
                    Error::Config(format!("the host folder `{}`: {e}", dir.display()))
                })?),
                None => None,
            };
        if let Some(root) = &host_root
            && !root.is_dir()
        {
            return Err(Error::Config(format!(
                "the host folder `{}` is not a folder",
                root.display()
            )));
        }
        let tool_router = Self::tool_router();
        let tools = Arc::new(
            tool_router
                .list_all()
                .into_iter()
                .map(one_paragraph)
                .collect(),
        );
        Ok(SandboxServer {
            tools,
            tool_router,
            inner: Arc::new(Inner {
                label,
                jobs: Jobs::new(config.stream_buffer_bytes, config.max_running_execs),
                host_root,
                redactor: Redactor::from_env(),
                owned: Mutex::new(Owned::default()),
                stopping: CancellationToken::new(),
                created: tokio::sync::Notify::new(),
                sessions: Mutex::new(Sessions::default()),
                snapshots_taken: Mutex::new(std::collections::HashSet::new()),
                platform,
                config,
            }),
        })
    }

    /// The tools, as `tools/list` reports them.
    #[must_use]
    pub fn tools(&self) -> Vec<rmcp::model::Tool> {
        self.tools.as_ref().clone()
    }

    /// Stops the running `exec_start` commands and creations in progress, then deletes the
    /// server's sandboxes (unless [`Config::keep`]). Waits at most a minute for creations to
    /// end and for each deletion.
    pub async fn shutdown(&self) -> Cleanup {
        let inner = &self.inner;
        inner.stopping.cancel();
        let mut cleanup = Cleanup {
            stopped_execs: inner.jobs.stop_all(None),
            ..Cleanup::default()
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let notified = inner.created.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if lock(&inner.owned).creating == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                tracing::warn!("creations still in progress at shutdown");
                break;
            }
        }
        let sandboxes: Vec<OwnedSandbox> = lock(&inner.owned)
            .sandboxes
            .drain()
            .map(|(_, owned)| owned)
            .collect();
        if inner.config.keep {
            cleanup.kept = sandboxes
                .iter()
                .map(|s| s.sandbox.name().to_owned())
                .collect();
            return cleanup;
        }
        let deletions = sandboxes.into_iter().map(|owned| async move {
            let name = owned.sandbox.name().to_owned();
            let result =
                tokio::time::timeout(Duration::from_secs(60), owned.sandbox.delete()).await;
            match result {
                Ok(Ok(())) => Ok(name),
                Ok(Err(e)) => Err((name, e.to_string())),
                Err(_) => Err((name, "deletion timed out after 60 s".to_owned())),
            }
        });
        for result in futures::future::join_all(deletions).await {
            match result {
                Ok(name) => cleanup.deleted.push(name),
                Err(failed) => cleanup.failed.push(failed),
            }
        }
        cleanup.deleted.sort();
        cleanup
    }

    fn platform(&self) -> &Arc<dyn doctl_driver::Platform> {
        &self.inner.platform
    }

    /// The sandbox a target names: one of this server's (name, id, or id prefix), else, with
    /// [`Config::allow_any`], any sandbox of the provider.
    async fn resolve(&self, target: &str) -> std::result::Result<(Sandbox, bool), ToolError> {
        let target = target.trim();
        if target.is_empty() {
            return Err(fail("`sandbox` is empty: give a sandbox's name or id"));
        }
        let owned_names: Vec<String>;
        {
            let owned = lock(&self.inner.owned);
            let exact = owned
                .sandboxes
                .values()
                .find(|s| s.sandbox.name() == target || s.sandbox.id() == target);
            if let Some(found) = exact {
                return Ok((found.sandbox.clone(), true));
            }
            let by_prefix: Vec<&OwnedSandbox> = owned
                .sandboxes
                .values()
                .filter(|s| {
                    target.len() >= sandbox_core::MIN_ID_PREFIX
                        && s.sandbox.id().starts_with(target)
                })
                .collect();
            if let [one] = by_prefix.as_slice() {
                return Ok((one.sandbox.clone(), true));
            }
            owned_names = {
                let mut names: Vec<String> = owned
                    .sandboxes
                    .values()
                    .map(|s| s.sandbox.name().to_owned())
                    .collect();
                names.sort();
                names
            };
        }
        if self.inner.config.allow_any {
            return match Sandbox::find(self.platform().clone(), target).await {
                Ok(sandbox) => Ok((sandbox, false)),
                Err(e) => Err(fail(format!("no sandbox `{target}`: {e}"))),
            };
        }
        let known = if owned_names.is_empty() {
            "this server has created none yet (use create_sandbox)".to_owned()
        } else {
            format!("its sandboxes are: {}", owned_names.join(", "))
        };
        Err(fail(format!(
            "no sandbox `{target}` was created by this server; {known}. (Sandboxes made \
             elsewhere can be used only when the server runs with --allow-any.)"
        )))
    }

    fn result(&self, result: ToolResult) -> CallToolResult {
        match result {
            Ok(value) => CallToolResult::structured(value),
            Err(ToolError(message)) => {
                let message = self.inner.redactor.redact(&message);
                tracing::info!(error = %message, "tool failed");
                CallToolResult::error(vec![ContentBlock::text(message)])
            }
        }
    }

    /// The request a call describes; with `pid_token`, wrapped so that the command's pid is
    /// recorded under that token (see [`PID_PRELUDE`]).
    fn exec_request(
        pid_token: Option<&str>,
        command: Option<String>,
        argv: Option<Vec<String>>,
        cwd: Option<String>,
        env: Option<BTreeMap<String, String>>,
        stdin: Option<String>,
        stdin_base64: Option<String>,
    ) -> std::result::Result<ExecRequest, ToolError> {
        let mut request = match (command, argv) {
            (Some(command), None) if !command.trim().is_empty() => match pid_token {
                None => ExecRequest::shell(command),
                Some(token) => ExecRequest::argv([
                    "sh".to_owned(),
                    "-c".to_owned(),
                    PID_PRELUDE.to_owned(),
                    "sh".to_owned(),
                    token.to_owned(),
                    "sh".to_owned(),
                    "-c".to_owned(),
                    command,
                ]),
            },
            (None, Some(argv)) if !argv.is_empty() => match pid_token {
                None => ExecRequest::argv(argv),
                Some(token) => ExecRequest::argv(
                    [
                        "sh".to_owned(),
                        "-c".to_owned(),
                        PID_PRELUDE.to_owned(),
                        "sh".to_owned(),
                        token.to_owned(),
                    ]
                    .into_iter()
                    .chain(argv),
                ),
            },
            (Some(_), Some(_)) => return Err(fail("give either `command` or `argv`, not both")),
            _ => {
                return Err(fail(
                    "give the command to run: `command` (a shell line) or `argv` (a list)",
                ));
            }
        };
        if let Some(cwd) = cwd {
            request = request.cwd(cwd);
        }
        for (key, value) in env.unwrap_or_default() {
            request = request.env(key, value);
        }
        match (stdin, stdin_base64) {
            (Some(_), Some(_)) => {
                return Err(fail("give either `stdin` or `stdin_base64`, not both"));
            }
            (Some(text), None) => request = request.stdin(text.into_bytes()),
            (None, Some(b64)) => {
                request = request
                    .stdin(decode_base64(&b64).map_err(|e| fail(format!("stdin_base64: {e}")))?);
            }
            (None, None) => {}
        }
        Ok(request)
    }

    fn host_path(
        &self,
        relative: &str,
        must_exist: bool,
    ) -> std::result::Result<PathBuf, ToolError> {
        let Some(root) = &self.inner.host_root else {
            return Err(fail(
                "host files are off: the server was not started with --allow-host-files DIR",
            ));
        };
        let relative = Path::new(relative);
        if relative.is_absolute() {
            return Err(fail(format!(
                "`{}` is absolute: give a path relative to the allowed host folder",
                relative.display()
            )));
        }
        let joined = root.join(relative);
        // What exists is resolved (symlinks included); what does not yet must have a parent
        // that resolves inside the folder, and a plain last component.
        let resolved = if must_exist || joined.exists() {
            std::fs::canonicalize(&joined)
                .map_err(|e| fail(format!("host path `{}`: {e}", relative.display())))?
        } else {
            let name = joined
                .file_name()
                .filter(|n| *n != ".." && *n != ".")
                .ok_or_else(|| {
                    fail(format!(
                        "host path `{}` has no file name",
                        relative.display()
                    ))
                })?
                .to_owned();
            let parent = joined.parent().unwrap_or(root);
            let mut existing = parent.to_path_buf();
            let mut missing = Vec::new();
            while !existing.exists() {
                let Some(component) = existing.file_name() else {
                    break;
                };
                if component == ".." {
                    return Err(fail(format!(
                        "host path `{}` leaves the allowed folder",
                        relative.display()
                    )));
                }
                missing.push(component.to_owned());
                existing.pop();
            }
            let mut base = std::fs::canonicalize(&existing)
                .map_err(|e| fail(format!("host path `{}`: {e}", relative.display())))?;
            for component in missing.into_iter().rev() {
                base.push(component);
            }
            base.join(name)
        };
        if !resolved.starts_with(root) {
            return Err(fail(format!(
                "host path `{}` leaves the allowed folder",
                relative.display()
            )));
        }
        Ok(resolved)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn rfc3339(t: Option<OffsetDateTime>) -> Value {
    t.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .map_or(Value::Null, Value::String)
}

fn parse_signal(text: Option<&str>, default: Signal) -> std::result::Result<Signal, ToolError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(default);
    };
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    Ok(match name {
        "HUP" => Signal::Hup,
        "INT" => Signal::Int,
        "QUIT" => Signal::Quit,
        "KILL" => Signal::Kill,
        "USR1" => Signal::Usr1,
        "USR2" => Signal::Usr2,
        "TERM" => Signal::Term,
        "CONT" => Signal::Cont,
        "STOP" => Signal::Stop,
        other => match other.parse::<i32>() {
            Ok(n) if (1..=64).contains(&n) => Signal::Other(n),
            _ => {
                return Err(fail(format!(
                    "`{text}` is not a signal: use TERM, KILL, INT, HUP, QUIT, USR1, USR2, STOP, CONT or a number 1-64"
                )));
            }
        },
    })
}

fn seconds(
    value: Option<f64>,
    default: Duration,
    max: Duration,
    what: &str,
) -> std::result::Result<Duration, ToolError> {
    match value {
        None => Ok(default),
        Some(s) if s.is_finite() && s > 0.0 => {
            let d = Duration::from_secs_f64(s);
            if d > max {
                Err(fail(format!("`{what}` is at most {} s", max.as_secs())))
            } else {
                Ok(d)
            }
        }
        Some(_) => Err(fail(format!(
            "`{what}` must be a positive number of seconds"
        ))),
    }
}

#[tool_router]
impl SandboxServer {
    /// Create a new sandbox: an isolated Linux machine with Python 3 (image `python`, the
    /// default) or Node.js (image `node`), and wait until it is ready. Returns its name, which
    /// every other tool takes as `sandbox`. It expires after `ttl_seconds` (default one hour)
    /// and is deleted when this server stops. A server may have only a few sandboxes at once:
    /// delete those you no longer need.
    #[tool(annotations(
        title = "Create a sandbox",
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = false
    ))]
    async fn create_sandbox(
        &self,
        params: Parameters<CreateParams>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        // Creation can take minutes on App Platform: each phase becomes a progress
        // notification when the client asked for them (a progress token).
        let progress = context
            .meta
            .get_progress_token()
            .map(|token| progress_sender(context.peer.clone(), token));
        // In a task of its own: a handler dropped at shutdown must not drop a creation
        // half-way (that would leave its app behind); the task sees the shutdown and deletes
        // what it made.
        let this = self.clone();
        let cancel = context.ct.clone();
        let result = tokio::spawn(async move { this.create(params.0, cancel, progress).await })
            .await
            .unwrap_or_else(|e| Err(fail(format!("the creation failed: {e}"))));
        self.result(result)
    }

    /// List the sandboxes this server created (with --allow-any: every sandbox), with their
    /// status, image, expiry and URL.
    #[tool(annotations(
        title = "List sandboxes",
        read_only_hint = true,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn list_sandboxes(&self) -> CallToolResult {
        let result = self.list().await;
        self.result(result)
    }

    /// Delete a sandbox and everything in it (files, processes). Commands started in it with
    /// exec_start are stopped. Without --allow-any only sandboxes this server created can be
    /// deleted.
    #[tool(annotations(
        title = "Delete a sandbox",
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn delete_sandbox(&self, params: Parameters<SandboxParams>) -> CallToolResult {
        let result = self.delete(&params.0.sandbox).await;
        self.result(result)
    }

    /// Run one command in a sandbox and return its exit code, stdout and stderr when it ends
    /// (killed after `timeout_seconds`, default 60). Give `command` (a shell line: pipes,
    /// `&&`, redirections) or `argv`. Output that is not UTF-8 also comes as `stdout_base64`
    /// / `stderr_base64`; output over the server's limit is cut to its head and tail, with
    /// the total size stated. For commands that run long or print a lot, use exec_start.
    #[tool(annotations(
        title = "Run a command",
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = false,
        open_world_hint = true
    ))]
    async fn exec(
        &self,
        params: Parameters<ExecParams>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let result = self.run_exec(params.0, context.ct.clone()).await;
        self.result(result)
    }

    /// Start a long-running command in a sandbox and return at once with an `exec_id`. Read
    /// its output as it comes with exec_poll (each poll returns what is new), stop it with
    /// exec_signal. Its standard input is given when it starts (`stdin`), and cannot be
    /// written later.
    #[tool(annotations(
        title = "Start a long-running command",
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = false,
        open_world_hint = true
    ))]
    async fn exec_start(&self, params: Parameters<ExecStartParams>) -> CallToolResult {
        let result = self.start_exec(params.0).await;
        self.result(result)
    }

    /// Read what a command started with exec_start printed since the last poll (waiting up
    /// to `wait_seconds` for something new), and whether it still runs; once it ended, its
    /// `exit_code` (or `signal`). Poll until `running` is false and `more_output` is false.
    #[tool(annotations(
        title = "Read a running command's output",
        read_only_hint = true,
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = false
    ))]
    async fn exec_poll(&self, params: Parameters<ExecPollParams>) -> CallToolResult {
        let result = self.poll_exec(params.0).await;
        self.result(result)
    }

    /// Send a signal to a command started with exec_start: KILL (the default) kills it with
    /// its whole process group at once; TERM, INT and the others reach its process, which may
    /// handle them. exec_poll then returns what it printed and how it ended.
    #[tool(annotations(
        title = "Signal a running command",
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn exec_signal(&self, params: Parameters<ExecSignalParams>) -> CallToolResult {
        let result = self.signal_exec(params.0).await;
        self.result(result)
    }

    /// Open a shell-like session in a sandbox: commands run with session_exec keep the working
    /// directory (`cd`) and exported variables (`export`) of the previous one, as in a
    /// terminal. Close it with session_close.
    #[tool(annotations(
        title = "Open a shell session",
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = false
    ))]
    async fn session_start(&self, params: Parameters<SandboxParams>) -> CallToolResult {
        let result = self.start_session(&params.0.sandbox).await;
        self.result(result)
    }

    /// Run a shell command in a session opened with session_start: it starts in the directory
    /// and with the exported variables the previous command of the session left. Returns as
    /// exec does (exit code, stdout, stderr; killed after `timeout_seconds`, default 60).
    #[tool(annotations(
        title = "Run a command in a session",
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = false,
        open_world_hint = true
    ))]
    async fn session_exec(
        &self,
        params: Parameters<SessionExecParams>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let result = self.session_run(params.0, context.ct.clone()).await;
        self.result(result)
    }

    /// Close a session opened with session_start (its saved directory and variables are
    /// removed; the sandbox stays).
    #[tool(annotations(
        title = "Close a shell session",
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn session_close(&self, params: Parameters<SessionParams>) -> CallToolResult {
        let result = self.end_session(&params.0.session_id).await;
        self.result(result)
    }

    /// Save a sandbox's folders (default `/home/sandbox/app`) as a snapshot that outlives the
    /// sandbox; restore it into this or another sandbox with snapshot_restore. With `parent`,
    /// only what changed since that snapshot is stored.
    #[tool(annotations(
        title = "Snapshot a sandbox's files",
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = false
    ))]
    async fn snapshot_create(&self, params: Parameters<SnapshotCreateParams>) -> CallToolResult {
        let result = self.take_snapshot(params.0).await;
        self.result(result)
    }

    /// Restore a snapshot into a sandbox: its snapshot folders become exactly the snapshot's
    /// state (files added since are removed). Every file is checked against the snapshot's
    /// manifest.
    #[tool(annotations(
        title = "Restore a snapshot",
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn snapshot_restore(&self, params: Parameters<SnapshotRestoreParams>) -> CallToolResult {
        let result = self.restore_snapshot(params.0).await;
        self.result(result)
    }

    /// List the snapshots this server took (with --allow-any: every snapshot of the store).
    #[tool(annotations(
        title = "List snapshots",
        read_only_hint = true,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn snapshot_list(&self) -> CallToolResult {
        let result = self.list_snapshots().await;
        self.result(result)
    }

    /// Read a file of a sandbox: `text` when it is UTF-8, else `base64` (exact bytes), with
    /// its size. Files over the server's limit (1 MiB by default) are refused: read parts of
    /// them with exec (`head`, `tail`, `sed -n`).
    #[tool(annotations(
        title = "Read a file",
        read_only_hint = true,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn read_file(&self, params: Parameters<PathParams>) -> CallToolResult {
        let result = self.read(params.0).await;
        self.result(result)
    }

    /// Write a file in a sandbox, replacing it (or appending with `append`), from `text` or
    /// from `base64` for exact bytes. Missing parent folders are created; the write is atomic.
    #[tool(annotations(
        title = "Write a file",
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn write_file(&self, params: Parameters<WriteFileParams>) -> CallToolResult {
        let result = self.write(params.0).await;
        self.result(result)
    }

    /// List a folder of a sandbox: each entry's name, kind (file, dir, symlink, other), size,
    /// permissions and modification time.
    #[tool(annotations(
        title = "List a folder",
        read_only_hint = true,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn list_dir(&self, params: Parameters<ListDirParams>) -> CallToolResult {
        let result = self.list_dir_of(params.0).await;
        self.result(result)
    }

    /// Tell what a path of a sandbox is (kind, size, permissions, modification time), or that
    /// it does not exist (`exists: false`).
    #[tool(annotations(
        title = "Inspect a path",
        read_only_hint = true,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn stat(&self, params: Parameters<PathParams>) -> CallToolResult {
        let result = self.stat_of(params.0).await;
        self.result(result)
    }

    /// Remove a file (or, with `recursive`, a folder and everything in it) from a sandbox.
    #[tool(annotations(
        title = "Remove a file or folder",
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = false,
        open_world_hint = false
    ))]
    async fn remove(&self, params: Parameters<RemoveParams>) -> CallToolResult {
        let result = self.remove_path(params.0).await;
        self.result(result)
    }

    /// Create a folder in a sandbox (with its missing parents, unless `parents` is false).
    #[tool(annotations(
        title = "Create a folder",
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn mkdir(&self, params: Parameters<MkdirParams>) -> CallToolResult {
        let result = self.make_dir(params.0).await;
        self.result(result)
    }

    /// Start a background process in a sandbox (a web server, a watcher) that outlives this
    /// call; returns its pid. Read its output with process_logs, stop it with kill_process.
    #[tool(annotations(
        title = "Launch a background process",
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = false,
        open_world_hint = true
    ))]
    async fn launch_process(&self, params: Parameters<LaunchParams>) -> CallToolResult {
        let result = self.launch(params.0).await;
        self.result(result)
    }

    /// List the processes running in a sandbox (pid, state, CPU and memory use, command line).
    #[tool(annotations(
        title = "List processes",
        read_only_hint = true,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn list_processes(&self, params: Parameters<ListProcessesParams>) -> CallToolResult {
        let result = self.processes(params.0).await;
        self.result(result)
    }

    /// Read the output (stdout and stderr together) of a process started with launch_process.
    #[tool(annotations(
        title = "Read a process's output",
        read_only_hint = true,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn process_logs(&self, params: Parameters<ProcessLogsParams>) -> CallToolResult {
        let result = self.logs(params.0).await;
        self.result(result)
    }

    /// Send a signal (TERM by default) to a process of a sandbox; a launched process's whole
    /// group gets it.
    #[tool(annotations(
        title = "Signal a process",
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = false,
        open_world_hint = false
    ))]
    async fn kill_process(&self, params: Parameters<KillProcessParams>) -> CallToolResult {
        let result = self.kill(params.0).await;
        self.result(result)
    }

    /// The public URL of a sandbox created with `component_type: service` (a web server
    /// listening on port 8080 in the sandbox answers there); workers have none.
    #[tool(annotations(
        title = "Get a sandbox's URL",
        read_only_hint = true,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn get_url(&self, params: Parameters<SandboxParams>) -> CallToolResult {
        let result = self.url(&params.0.sandbox).await;
        self.result(result)
    }

    /// Copy a file from the host into a sandbox. Only files inside the host folder the
    /// server allows (--allow-host-files) can be read; refused otherwise.
    #[tool(annotations(
        title = "Upload a host file",
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn upload_file(&self, params: Parameters<UploadParams>) -> CallToolResult {
        let result = self.upload(params.0).await;
        self.result(result)
    }

    /// Copy a file from a sandbox to the host, inside the host folder the server allows
    /// (--allow-host-files); refused otherwise.
    #[tool(annotations(
        title = "Download to the host",
        read_only_hint = false,
        destructive_hint = true,
        idempotent_hint = true,
        open_world_hint = false
    ))]
    async fn download_file(&self, params: Parameters<DownloadParams>) -> CallToolResult {
        let result = self.download(params.0).await;
        self.result(result)
    }
}

// ---- what the tools do ----

impl SandboxServer {
    async fn create(
        &self,
        params: CreateParams,
        cancel: CancellationToken,
        progress: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    ) -> ToolResult {
        let config = &self.inner.config;
        let ttl = match params.ttl_seconds {
            None => config.ttl,
            Some(0) => return Err(fail("`ttl_seconds` must be at least 1")),
            Some(s) if Duration::from_secs(s) > MAX_TTL => {
                return Err(fail(format!(
                    "`ttl_seconds` is at most {}",
                    MAX_TTL.as_secs()
                )));
            }
            Some(s) => Duration::from_secs(s),
        };
        {
            let mut owned = lock(&self.inner.owned);
            let count = owned.sandboxes.len() + owned.creating;
            if count >= config.max_sandboxes {
                let names: Vec<&str> = owned.sandboxes.values().map(|s| s.sandbox.name()).collect();
                return Err(fail(format!(
                    "this server already has {count} sandboxes (the most it may have: {}): {}. \
                     Delete one with delete_sandbox first.",
                    config.max_sandboxes,
                    if names.is_empty() {
                        "still being created".to_owned()
                    } else {
                        names.join(", ")
                    }
                )));
            }
            owned.creating += 1;
        }
        let creating = CreatingGuard(&self.inner);
        let image = match params.image.unwrap_or(ImageParam::Python) {
            ImageParam::Python => appspec::ImageKind::Python,
            ImageParam::Node => appspec::ImageKind::Node,
        };
        let component_type = match params.component_type.unwrap_or(ComponentTypeParam::Worker) {
            ComponentTypeParam::Worker => appspec::ComponentType::Worker,
            ComponentTypeParam::Service => appspec::ComponentType::Service,
        };
        let stopping = self.inner.stopping.clone();
        let mut builder = Sandbox::builder()
            .platform(self.platform().clone())
            .image(image)
            .component_type(component_type)
            .ttl(ttl)
            .timeout(config.ready_timeout)
            .wait_ready(true)
            .delete_on_failure(true)
            // A client's cancel, or the server stopping, deletes the half-made sandbox.
            .cancel_on(async move {
                tokio::select! {
                    () = cancel.cancelled() => {}
                    () = stopping.cancelled() => {}
                }
            });
        if let Some(progress) = progress {
            builder = builder.on_progress(move |event| {
                let _ = progress.send(event.to_string());
            });
        }
        if let Some(name) = params.name {
            builder = builder.name(name);
        }
        if let Some(region) = params.region {
            builder = builder.region(region);
        }
        if let Some(size) = params.instance_size {
            builder = builder.instance_size(size);
        }
        for (key, value) in params.env.unwrap_or_default() {
            builder = builder.env(key, value);
        }
        let started = std::time::Instant::now();
        let sandbox = builder
            .create()
            .await
            .map_err(|e| fail(format!("the sandbox could not be created: {e}")))?;
        let mut owned = lock(&self.inner.owned);
        let entry = OwnedSandbox {
            sandbox: sandbox.clone(),
            image: image.as_str(),
            component_type: component_type.as_str(),
            created_at: OffsetDateTime::now_utc(),
        };
        owned.sandboxes.insert(sandbox.id().to_owned(), entry);
        drop(owned);
        // Counted as created before it stops counting as being created.
        drop(creating);
        tracing::info!(sandbox = sandbox.name(), id = sandbox.id(), "created");
        Ok(json!({
            "sandbox": sandbox.name(),
            "id": sandbox.id(),
            "image": image.as_str(),
            "component_type": component_type.as_str(),
            "expires_at": rfc3339(sandbox.expires_at()),
            "provider": self.inner.label,
            "seconds": (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
        }))
    }

    async fn list(&self) -> ToolResult {
        let listed = Sandbox::list(self.platform().as_ref())
            .await
            .map_err(|e| fail(format!("cannot list sandboxes: {e}")))?;
        let owned: HashMap<String, OwnedSandbox> = lock(&self.inner.owned).sandboxes.clone();
        let mut rows = Vec::new();
        for info in &listed {
            let mine = owned.contains_key(&info.id);
            if !mine && !self.inner.config.allow_any {
                continue;
            }
            rows.push(json!({
                "sandbox": info.name,
                "id": info.id,
                "status": info.status.to_string(),
                "image": info.image.as_str(),
                "component_type": info.component_type.as_str(),
                "url": info.url,
                "region": info.region,
                "expires_at": rfc3339(info.expires_at),
                "created_by_this_server": mine,
            }));
        }
        for (id, mine) in &owned {
            if !listed.iter().any(|info| &info.id == id) {
                rows.push(json!({
                    "sandbox": mine.sandbox.name(),
                    "id": id,
                    "status": "GONE (expired or deleted elsewhere)",
                    "image": mine.image,
                    "component_type": mine.component_type,
                    "created_at": rfc3339(Some(mine.created_at)),
                    "created_by_this_server": true,
                }));
            }
        }
        let running: Vec<Value> = self
            .inner
            .jobs
            .all()
            .iter()
            .map(|job| json!({"exec_id": job.id, "sandbox": job.sandbox_name, "command": self.inner.redactor.redact(&job.command), "running": job.running()}))
            .collect();
        Ok(json!({
            "provider": self.inner.label,
            "sandboxes": rows,
            "max_sandboxes": self.inner.config.max_sandboxes,
            "execs": running,
        }))
    }

    async fn delete(&self, target: &str) -> ToolResult {
        let (sandbox, mine) = self.resolve(target).await?;
        let stopped = self.inner.jobs.stop_all(Some(sandbox.id()));
        lock(&self.inner.sessions)
            .map
            .retain(|_, open| open.sandbox_id != sandbox.id());
        sandbox
            .delete()
            .await
            .map_err(|e| fail(format!("cannot delete sandbox `{}`: {e}", sandbox.name())))?;
        if mine {
            lock(&self.inner.owned).sandboxes.remove(sandbox.id());
        }
        Ok(json!({
            "deleted": sandbox.name(),
            "id": sandbox.id(),
            "stopped_execs": stopped,
        }))
    }

    async fn run_exec(&self, params: ExecParams, cancel: CancellationToken) -> ToolResult {
        let timeout = seconds(
            params.timeout_seconds,
            self.inner.config.exec_timeout,
            MAX_EXEC_TIMEOUT,
            "timeout_seconds",
        )?;
        let request = Self::exec_request(
            None,
            params.command,
            params.argv,
            params.cwd,
            params.env,
            params.stdin,
            params.stdin_base64,
        )?;
        let (sandbox, _) = self.resolve(&params.sandbox).await?;
        let what = request.display();
        let started = std::time::Instant::now();
        let stream = sandbox.exec_stream(request).await.map_err(|e| {
            fail(format!(
                "cannot run `{what}` in sandbox `{}`: {e}",
                sandbox.name()
            ))
        })?;
        self.collect(stream, &what, timeout, cancel, started).await
    }

    /// Reads a command's stream to its end (at most `timeout`, or until the client cancels)
    /// into `exec`'s result.
    async fn collect(
        &self,
        mut stream: sandbox_core::ExecStream,
        what: &str,
        timeout: Duration,
        cancel: CancellationToken,
        started: std::time::Instant,
    ) -> ToolResult {
        let limit = self.inner.config.max_output_bytes;
        let mut stdout = Capture::new(limit);
        let mut stderr = Capture::new(limit);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Map::new();
        let outcome = loop {
            let event = tokio::select! {
                event = stream.next_event() => event,
                () = tokio::time::sleep_until(deadline) => break Err(format!(
                    "timed out after {} s and was killed (give a larger timeout_seconds, or use exec_start)",
                    timeout.as_secs_f64()
                )),
                () = cancel.cancelled() => break Err("cancelled by the client; the command was killed".to_owned()),
            };
            match event {
                Some(Ok(ExecEvent::Stdout(chunk))) => stdout.push(&chunk),
                Some(Ok(ExecEvent::Stderr(chunk))) => stderr.push(&chunk),
                Some(Ok(ExecEvent::Exit(status))) => break Ok(status),
                Some(Err(e)) => break Err(e.to_string()),
                None => {
                    break Err("the command's output ended without an exit status".to_owned());
                }
            }
        };
        // Dropping the stream before its exit kills the command's process group.
        drop(stream);
        match &outcome {
            Ok(status) => {
                out.insert("exit_code".into(), json!(status.code));
                out.insert("signal".into(), json!(status.signal));
            }
            Err(_) => {
                out.insert("exit_code".into(), Value::Null);
            }
        }
        stdout.render("stdout", &self.inner.redactor, &mut out);
        stderr.render("stderr", &self.inner.redactor, &mut out);
        out.insert(
            "seconds".into(),
            json!((started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0),
        );
        match outcome {
            Ok(_) => Ok(Value::Object(out)),
            Err(error) => {
                out.insert("error".into(), json!(error));
                Err(ToolError(format!(
                    "`{what}` did not finish: {error}\n{}",
                    Value::Object(out)
                )))
            }
        }
    }

    fn snapshots(&self) -> std::result::Result<&sandbox_fs::Snapshots, ToolError> {
        self.inner.config.snapshots.as_ref().ok_or_else(|| {
            fail("snapshots are off: this server was started without a snapshot store")
        })
    }

    /// Whether this server may use the snapshot (it took it, or --allow-any).
    fn check_snapshot(&self, id: &str) -> std::result::Result<(), ToolError> {
        if self.inner.config.allow_any || lock(&self.inner.snapshots_taken).contains(id) {
            return Ok(());
        }
        Err(fail(format!(
            "no snapshot `{id}` was taken by this server (snapshot_list shows its snapshots; \
             others can be used only when the server runs with --allow-any)"
        )))
    }

    async fn take_snapshot(&self, params: SnapshotCreateParams) -> ToolResult {
        let snapshots = self.snapshots()?;
        if let Some(parent) = &params.parent {
            self.check_snapshot(parent)?;
        }
        let (sandbox, _) = self.resolve(&params.sandbox).await?;
        let mut options = sandbox_fs::SnapshotOptions::new();
        for path in params.paths.unwrap_or_default() {
            options = options.path(path);
        }
        if let Some(parent) = params.parent {
            options = options.parent(parent);
        }
        if let Some(description) = params.description {
            options = options.description(description);
        }
        let meta = snapshots
            .create(&sandbox, &options)
            .await
            .map_err(|e| fail(format!("cannot snapshot sandbox `{}`: {e}", sandbox.name())))?;
        lock(&self.inner.snapshots_taken).insert(meta.id.clone());
        Ok(snapshot_json(&meta))
    }

    async fn restore_snapshot(&self, params: SnapshotRestoreParams) -> ToolResult {
        let snapshots = self.snapshots()?;
        self.check_snapshot(&params.snapshot_id)?;
        let (sandbox, _) = self.resolve(&params.sandbox).await?;
        let meta = snapshots
            .restore(&sandbox, &params.snapshot_id)
            .await
            .map_err(|e| {
                fail(format!(
                    "cannot restore `{}` into sandbox `{}`: {e}",
                    params.snapshot_id,
                    sandbox.name()
                ))
            })?;
        let mut value = snapshot_json(&meta);
        value["restored_into"] = json!(sandbox.name());
        Ok(value)
    }

    async fn list_snapshots(&self) -> ToolResult {
        let snapshots = self.snapshots()?;
        let all = snapshots
            .list(&sandbox_fs::ListFilter::new())
            .await
            .map_err(|e| fail(format!("cannot list snapshots: {e}")))?;
        let taken = lock(&self.inner.snapshots_taken).clone();
        let rows: Vec<Value> = all
            .iter()
            .filter(|meta| self.inner.config.allow_any || taken.contains(&meta.id))
            .map(snapshot_json)
            .collect();
        Ok(json!({"snapshots": rows}))
    }

    async fn start_session(&self, target: &str) -> ToolResult {
        let (sandbox, _) = self.resolve(target).await?;
        let mut sessions = lock(&self.inner.sessions);
        if sessions.map.len() >= MAX_SESSIONS {
            return Err(fail(format!(
                "{MAX_SESSIONS} sessions are open, the most this server allows: close one with session_close"
            )));
        }
        sessions.next += 1;
        let id = format!("session-{}", sessions.next);
        sessions.map.insert(
            id.clone(),
            OpenSession {
                session: sandbox.session(),
                sandbox_id: sandbox.id().to_owned(),
                sandbox_name: sandbox.name().to_owned(),
            },
        );
        Ok(json!({"session_id": id, "sandbox": sandbox.name()}))
    }

    fn session(&self, id: &str) -> std::result::Result<OpenSession, ToolError> {
        lock(&self.inner.sessions)
            .map
            .get(id)
            .cloned()
            .ok_or_else(|| fail(format!("no session `{id}`: session_start opens one")))
    }

    async fn session_run(
        &self,
        params: SessionExecParams,
        cancel: CancellationToken,
    ) -> ToolResult {
        let timeout = seconds(
            params.timeout_seconds,
            self.inner.config.exec_timeout,
            MAX_EXEC_TIMEOUT,
            "timeout_seconds",
        )?;
        let open = self.session(&params.session_id)?;
        let request = Self::exec_request(
            None,
            Some(params.command),
            None,
            None,
            None,
            params.stdin,
            params.stdin_base64,
        )?;
        let what = request.display();
        let started = std::time::Instant::now();
        let stream = open.session.exec_stream(request).await.map_err(|e| {
            fail(format!(
                "cannot run `{what}` in sandbox `{}`: {e}",
                open.sandbox_name
            ))
        })?;
        let mut result = self.collect(stream, &what, timeout, cancel, started).await;
        if let Ok(Value::Object(out)) = &mut result {
            out.insert("session_id".into(), json!(params.session_id));
        }
        result
    }

    async fn end_session(&self, id: &str) -> ToolResult {
        let open = lock(&self.inner.sessions)
            .map
            .remove(id)
            .ok_or_else(|| fail(format!("no session `{id}`")))?;
        // The sandbox may be gone already; the session is forgotten either way.
        let note = match open.session.close().await {
            Ok(()) => "closed".to_owned(),
            Err(e) => format!("forgotten; its state could not be removed: {e}"),
        };
        Ok(json!({"session_id": id, "result": self.inner.redactor.redact(&note)}))
    }
    async fn start_exec(&self, params: ExecStartParams) -> ToolResult {
        let timeout = match params.timeout_seconds {
            None => None,
            some => Some(seconds(some, Duration::ZERO, MAX_TTL, "timeout_seconds")?),
        };
        let what = match (&params.command, &params.argv) {
            (Some(command), _) => command.clone(),
            (None, Some(argv)) => argv.join(" "),
            (None, None) => String::new(),
        };
        let pid_token = uuid::Uuid::new_v4().simple().to_string();
        let request = Self::exec_request(
            Some(&pid_token),
            params.command,
            params.argv,
            params.cwd,
            params.env,
            params.stdin,
            params.stdin_base64,
        )?;
        let (sandbox, _) = self.resolve(&params.sandbox).await?;
        let stream = sandbox.exec_stream(request).await.map_err(|e| {
            fail(format!(
                "cannot start `{what}` in sandbox `{}`: {e}",
                sandbox.name()
            ))
        })?;
        let job = self
            .inner
            .jobs
            .start(
                stream,
                sandbox.id(),
                sandbox.name(),
                what,
                pid_token,
                timeout,
            )
            .map_err(ToolError)?;
        Ok(json!({
            "exec_id": job.id,
            "sandbox": job.sandbox_name,
            "command": self.inner.redactor.redact(&job.command),
            "next": "call exec_poll with this exec_id to read its output and exit code",
        }))
    }

    async fn poll_exec(&self, params: ExecPollParams) -> ToolResult {
        let job = self.inner.jobs.get(&params.exec_id).ok_or_else(|| {
            fail(format!(
                "no command `{}`: exec_start gives the ids; a command is forgotten once it ended and its output was read",
                params.exec_id
            ))
        })?;
        let wait = seconds(
            params.wait_seconds.filter(|s| *s != 0.0),
            Duration::from_secs(10),
            MAX_POLL_WAIT,
            "wait_seconds",
        )?;
        let wait = if params.wait_seconds == Some(0.0) {
            Duration::ZERO
        } else {
            wait
        };
        let max = params
            .max_bytes
            .unwrap_or(self.inner.config.max_output_bytes)
            .clamp(1, self.inner.config.stream_buffer_bytes.max(1));
        Ok(self
            .inner
            .jobs
            .poll(&job, wait, max, &self.inner.redactor)
            .await)
    }

    async fn signal_exec(&self, params: ExecSignalParams) -> ToolResult {
        let signal = parse_signal(params.signal.as_deref(), Signal::Kill)?;
        let job = self
            .inner
            .jobs
            .get(&params.exec_id)
            .ok_or_else(|| fail(format!("no command `{}`", params.exec_id)))?;
        if signal == Signal::Kill {
            let was_running = job.kill();
            return Ok(json!({
                "exec_id": job.id,
                "signal": 9,
                "killed": was_running,
                "note": if was_running { "killed with its process group; exec_poll returns what it printed before" } else { "it had already ended" },
            }));
        }
        if !job.running() {
            return Ok(
                json!({"exec_id": job.id, "signal": signal.number(), "note": "it had already ended"}),
            );
        }
        let (sandbox, _) = self.resolve(&job.sandbox_id).await?;
        let read = sandbox
            .exec_with(
                ExecRequest::argv(["sh", "-c", PID_READ, "sh", job.pid_token.as_str()])
                    .timeout(Duration::from_secs(30)),
            )
            .await
            .map_err(|e| fail(format!("cannot find the command's pid: {e}")))?;
        let pid: u32 = read.stdout_text().trim().parse().map_err(|_| {
            fail("the command's pid was not recorded (it may have just ended); exec_poll tells")
        })?;
        sandbox
            .kill(pid, signal)
            .await
            .map_err(|e| fail(format!("cannot signal the command (pid {pid}): {e}")))?;
        Ok(json!({
            "exec_id": job.id,
            "pid": pid,
            "signal": signal.number(),
            "note": "sent; exec_poll tells how the command reacts (and its exit)",
        }))
    }

    async fn read(&self, params: PathParams) -> ToolResult {
        let (sandbox, _) = self.resolve(&params.sandbox).await?;
        let fs = sandbox.fs();
        let entry = fs
            .stat(&params.path)
            .await
            .map_err(|e| fail(format!("cannot read `{}`: {e}", params.path)))?;
        if entry.is_dir() {
            return Err(fail(format!("`{}` is a folder: use list_dir", params.path)));
        }
        let limit = self.inner.config.max_read_bytes;
        if entry.size > limit {
            return Err(fail(format!(
                "`{}` is {} bytes, more than read_file returns ({limit}); read parts of it with exec (`head -c`, `tail -c`, `sed -n`)",
                params.path, entry.size
            )));
        }
        let data = fs
            .read(&params.path)
            .await
            .map_err(|e| fail(format!("cannot read `{}`: {e}", params.path)))?;
        let mut out = Map::new();
        out.insert("path".into(), json!(params.path));
        out.insert("size".into(), json!(data.len()));
        match std::str::from_utf8(&data) {
            Ok(text) => {
                out.insert("text".into(), json!(self.inner.redactor.redact(text)));
            }
            Err(_) => {
                use base64::Engine as _;
                out.insert(
                    "base64".into(),
                    json!(base64::engine::general_purpose::STANDARD.encode(&data)),
                );
                out.insert(
                    "note".into(),
                    json!("not UTF-8: the exact bytes are in `base64`"),
                );
            }
        }
        Ok(Value::Object(out))
    }

    async fn write(&self, params: WriteFileParams) -> ToolResult {
        let data = match (params.text, params.base64) {
            (Some(text), None) => text.into_bytes(),
            (None, Some(b64)) => decode_base64(&b64).map_err(|e| fail(format!("base64: {e}")))?,
            (Some(_), Some(_)) => return Err(fail("give either `text` or `base64`, not both")),
            (None, None) => return Err(fail("give the content: `text` or `base64`")),
        };
        let (sandbox, _) = self.resolve(&params.sandbox).await?;
        let fs = sandbox.fs();
        let append = params.append.unwrap_or(false);
        let written = if append {
            fs.append(&params.path, &data).await
        } else {
            fs.write(&params.path, &data).await
        };
        written.map_err(|e| fail(format!("cannot write `{}`: {e}", params.path)))?;
        Ok(json!({"path": params.path, "bytes_written": data.len(), "appended": append}))
    }

    async fn list_dir_of(&self, params: ListDirParams) -> ToolResult {
        let (sandbox, _) = self.resolve(&params.sandbox).await?;
        let path = params.path.unwrap_or_else(|| ".".to_owned());
        let entries = sandbox
            .fs()
            .list(&path)
            .await
            .map_err(|e| fail(format!("cannot list `{path}`: {e}")))?;
        let entries: Vec<Value> = entries.iter().map(entry_json).collect();
        Ok(json!({"path": path, "entries": entries}))
    }

    async fn stat_of(&self, params: PathParams) -> ToolResult {
        let (sandbox, _) = self.resolve(&params.sandbox).await?;
        match sandbox.fs().stat(&params.path).await {
            Ok(entry) => {
                let mut value = entry_json(&entry);
                value["exists"] = json!(true);
                Ok(value)
            }
            Err(e) if e.is_not_found() => Ok(json!({"path": params.path, "exists": false})),
            Err(e) => Err(fail(format!("cannot stat `{}`: {e}", params.path))),
        }
    }

    async fn remove_path(&self, params: RemoveParams) -> ToolResult {
        let (sandbox, _) = self.resolve(&params.sandbox).await?;
        let recursive = params.recursive.unwrap_or(false);
        sandbox
            .fs()
            .rm(&params.path, RmOptions::new().recursive(recursive))
            .await
            .map_err(|e| fail(format!("cannot remove `{}`: {e}", params.path)))?;
        Ok(json!({"removed": params.path}))
    }

    async fn make_dir(&self, params: MkdirParams) -> ToolResult {
        let (sandbox, _) = self.resolve(&params.sandbox).await?;
        sandbox
            .fs()
            .mkdir(&params.path, params.parents.unwrap_or(true))
            .await
            .map_err(|e| fail(format!("cannot create `{}`: {e}", params.path)))?;
        Ok(json!({"created": params.path}))
    }

    async fn launch(&self, params: LaunchParams) -> ToolResult {
        let (sandbox, _) = self.resolve(&params.sandbox).await?;
        let mut request = LaunchRequest::new(params.command.clone());
        if let Some(cwd) = params.cwd {
            request = request.cwd(cwd);
        }
        for (key, value) in params.env.unwrap_or_default() {
            request = request.env(key, value);
        }
        let handle = sandbox
            .launch(request)
            .await
            .map_err(|e| fail(format!("cannot launch `{}`: {e}", params.command)))?;
        Ok(json!({"pid": handle.pid(), "log_path": handle.log_path(), "sandbox": sandbox.name()}))
    }

    async fn processes(&self, params: ListProcessesParams) -> ToolResult {
        let (sandbox, _) = self.resolve(&params.sandbox).await?;
        let list = sandbox
            .processes(params.pattern.as_deref())
            .await
            .map_err(|e| fail(format!("cannot list processes: {e}")))?;
        let rows: Vec<Value> = list
            .iter()
            .map(|p| {
                json!({
                    "pid": p.pid,
                    "state": p.state,
                    "cpu_percent": p.cpu,
                    "mem_percent": p.mem,
                    "command": self.inner.redactor.redact(&p.command),
                })
            })
            .collect();
        Ok(json!({"processes": rows}))
    }

    async fn logs(&self, params: ProcessLogsParams) -> ToolResult {
        let (sandbox, _) = self.resolve(&params.sandbox).await?;
        let log = sandbox
            .process_log(params.pid, params.tail_lines)
            .await
            .map_err(|e| {
                fail(format!(
                    "cannot read the output of process {}: {e}",
                    params.pid
                ))
            })?;
        let mut capture = Capture::new(self.inner.config.max_output_bytes);
        capture.push(&log);
        let mut out = Map::new();
        out.insert("pid".into(), json!(params.pid));
        capture.render("output", &self.inner.redactor, &mut out);
        Ok(Value::Object(out))
    }

    async fn kill(&self, params: KillProcessParams) -> ToolResult {
        let signal = parse_signal(params.signal.as_deref(), Signal::Term)?;
        let (sandbox, _) = self.resolve(&params.sandbox).await?;
        sandbox
            .kill(params.pid, signal)
            .await
            .map_err(|e| fail(format!("cannot signal process {}: {e}", params.pid)))?;
        Ok(json!({"pid": params.pid, "signal": signal.number()}))
    }

    async fn url(&self, target: &str) -> ToolResult {
        let (sandbox, _) = self.resolve(target).await?;
        match sandbox
            .url()
            .await
            .map_err(|e| fail(format!("cannot read the URL: {e}")))?
        {
            Some(url) => Ok(json!({"sandbox": sandbox.name(), "url": url})),
            None => Err(fail(format!(
                "sandbox `{}` has no URL: only sandboxes created with component_type `service` have one",
                sandbox.name()
            ))),
        }
    }

    async fn upload(&self, params: UploadParams) -> ToolResult {
        let host = self.host_path(&params.host_path, true)?;
        if !host.is_file() {
            return Err(fail(format!(
                "host path `{}` is not a file",
                params.host_path
            )));
        }
        let (sandbox, _) = self.resolve(&params.sandbox).await?;
        let bytes = sandbox
            .fs()
            .upload(&host, &params.path)
            .await
            .map_err(|e| fail(format!("cannot upload to `{}`: {e}", params.path)))?;
        Ok(json!({"path": params.path, "bytes": bytes}))
    }

    async fn download(&self, params: DownloadParams) -> ToolResult {
        let host = self.host_path(&params.host_path, false)?;
        if let Some(parent) = host.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| fail(format!("cannot create the host folder: {e}")))?;
        }
        // The folder was checked before it was created: check what it resolves to now.
        let host = self.host_path(&params.host_path, false)?;
        let (sandbox, _) = self.resolve(&params.sandbox).await?;
        let bytes = sandbox
            .fs()
            .download(&params.path, &host)
            .await
            .map_err(|e| fail(format!("cannot download `{}`: {e}", params.path)))?;
        Ok(json!({"host_path": params.host_path, "bytes": bytes}))
    }
}

/// A channel whose messages become progress notifications of one request, numbered from 1;
/// the forwarding task ends when the sender is dropped.
fn progress_sender(
    peer: rmcp::Peer<RoleServer>,
    token: rmcp::model::ProgressToken,
) -> tokio::sync::mpsc::UnboundedSender<String> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut step = 0.0;
        while let Some(message) = rx.recv().await {
            step += 1.0;
            let param = rmcp::model::ProgressNotificationParam::new(token.clone(), step)
                .with_message(message);
            if peer.notify_progress(param).await.is_err() {
                break;
            }
        }
    });
    tx
}

/// Doc comments wrap lines; a model reads descriptions best as plain paragraphs.
fn one_paragraph(mut tool: rmcp::model::Tool) -> rmcp::model::Tool {
    fn unwrap(text: &str) -> String {
        text.split('\n')
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ")
    }
    fn walk(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    match value {
                        Value::String(text) if key == "description" => *text = unwrap(text),
                        other => walk(other),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    if let Some(description) = &tool.description {
        tool.description = Some(unwrap(description).into());
    }
    let mut schema = Value::Object(tool.input_schema.as_ref().clone());
    walk(&mut schema);
    if let Value::Object(map) = schema {
        tool.input_schema = Arc::new(map);
    }
    tool
}

fn snapshot_json(meta: &sandbox_fs::SnapshotMetadata) -> Value {
    let created = i64::try_from(meta.created_at)
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok());
    json!({
        "snapshot_id": meta.id,
        "kind": meta.kind.as_str(),
        "parent": meta.parent,
        "sandbox_id": meta.sandbox_id,
        "paths": meta.paths,
        "files": meta.files,
        "content_bytes": meta.content_bytes,
        "archive_bytes": meta.archive_bytes,
        "description": meta.description,
        "created_at": rfc3339(created),
    })
}

fn entry_json(entry: &sandbox_fs::DirEntry) -> Value {
    let kind = match &entry.kind {
        FileKind::File => "file",
        FileKind::Dir => "dir",
        FileKind::Symlink { .. } => "symlink",
        _ => "other",
    };
    let mut value = json!({
        "name": entry.name,
        "path": entry.path,
        "kind": kind,
        "size": entry.size,
        "mode": format!("{:o}", entry.mode),
        "modified": rfc3339(Some(OffsetDateTime::from(entry.modified))),
    });
    if let FileKind::Symlink { target } = &entry.kind {
        value["target"] = json!(target);
    }
    value
}

impl ServerHandler for SandboxServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "sandbox-mcp",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(INSTRUCTIONS)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResponse, ErrorData> {
        let name = request.name.clone();
        let span = tracing::info_span!("mcp.tool", tool = %name);
        async {
            let known = self.tool_router.has_route(&name);
            let started = std::time::Instant::now();
            let result = self
                .tool_router
                .call(ToolCallContext::new(self, request, context))
                .await;
            tracing::debug!(seconds = started.elapsed().as_secs_f64(), "tool call done");
            match result {
                // Arguments that do not fit the schema: a tool error, so that the model sees
                // why and can correct itself.
                Err(error) if known => {
                    Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                        "invalid arguments for `{name}`: {}",
                        self.inner.redactor.redact(&error.message)
                    ))])
                    .into())
                }
                other => other,
            }
        }
        .instrument(span)
        .await
    }

    async fn list_tools(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> std::result::Result<rmcp::model::ListToolsResult, ErrorData> {
        Ok(rmcp::model::ListToolsResult::with_all_items(self.tools()))
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        self.tools.iter().find(|tool| tool.name == name).cloned()
    }
}

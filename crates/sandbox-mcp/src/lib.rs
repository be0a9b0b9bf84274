//! Sandboxes as tools for AI agents, over the [Model Context Protocol](https://modelcontextprotocol.io).
//!
//! [`SandboxServer`] is an MCP server (built on the official Rust SDK, `rmcp`) whose tools
//! create sandboxes, run commands in them, move files and manage background processes, on
//! whichever [`Provider`](sandbox_core::Provider) it is given: the local provider, DigitalOcean
//! App Platform, or the App Platform emulator. The `sandbox mcp` command serves it over stdio
//! ([`serve_stdio`]), or over streamable HTTP with a bearer token ([`SandboxServer::run_http`],
//! feature `http`, on by default).
//!
//! # Tools
//!
//! `create_sandbox`, `list_sandboxes`, `delete_sandbox`; `exec` (one command, with a timeout,
//! its output returned whole or cut to a head and a tail); `exec_start`, `exec_poll`,
//! `exec_signal` (long-running commands, read as they go); `session_start`, `session_exec`,
//! `session_close` (commands that keep `cd` and `export`); `snapshot_create`,
//! `snapshot_restore`, `snapshot_list` (with [`Config::snapshots`]); `read_file`, `write_file`,
//! `list_dir`, `stat`, `remove`, `mkdir`; `launch_process`, `list_processes`, `process_logs`,
//! `kill_process`; `get_url`; and with [`Config::host_files`], `upload_file` and
//! `download_file`. Each has a JSON schema, a description written for a model, and the MCP
//! annotations `readOnlyHint`, `destructiveHint` and `idempotentHint`. See `docs/mcp.md`.
//!
//! # Safety
//!
//! - Sandboxes created through the server expire ([`Config::ttl`], default one hour) and are
//!   deleted when it stops (the client closes stdin, SIGINT, SIGTERM) unless [`Config::keep`].
//! - At most [`Config::max_sandboxes`] exist at once (default 5).
//! - Only the server's own sandboxes can be reached (used, listed, deleted) unless
//!   [`Config::allow_any`].
//! - Every failure is a tool result with `isError: true` and a message for the model; bad
//!   arguments too. The server does not stop on a tool's failure.
//! - The host's secrets (API tokens, Spaces keys: [`SECRET_VARIABLES`]) are replaced by
//!   `[redacted]` in all text the tools return.
//! - Host files are out of reach unless [`Config::host_files`] names a folder, and then only
//!   that folder's contents are.
//!
//! # Example
//!
//! ```no_run
//! use sandbox_core::Provider;
//! use sandbox_mcp::Config;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = Provider::from_env()?;
//! let mut config = Config::default();
//! config.max_sandboxes = 3;
//! // Serves until the client closes stdin, or SIGINT/SIGTERM; then deletes its sandboxes.
//! let cleanup = sandbox_mcp::serve_stdio(provider, config).await?;
//! eprintln!("deleted {} sandboxes", cleanup.deleted.len());
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use rmcp::ServiceExt as _;
use tokio::io::{AsyncRead, AsyncWrite};

mod error;
#[cfg(feature = "http")]
mod http;
mod jobs;
mod output;
mod server;

pub use error::{Error, Result};
#[cfg(feature = "http")]
pub use http::{HTTP_PATH, random_token};
pub use output::{Redactor, SECRET_VARIABLES};
pub use server::{Cleanup, SandboxServer};

/// How the server behaves: its safety limits and defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The expiry of sandboxes created through the server, unless a `create_sandbox` call
    /// asks for another (default one hour).
    pub ttl: Duration,
    /// Keep the server's sandboxes when it stops (default: delete them).
    pub keep: bool,
    /// How many sandboxes the server may have at once (default 5).
    pub max_sandboxes: usize,
    /// Let tools reach sandboxes this server did not create (default: only its own).
    pub allow_any: bool,
    /// The host folder that `upload_file` and `download_file` may use (default: none, and the
    /// two tools are refused).
    pub host_files: Option<PathBuf>,
    /// The timeout of `exec` when a call gives none (default 60 s).
    pub exec_timeout: Duration,
    /// Bytes of each of stdout and stderr that `exec` returns; beyond, the head and the tail
    /// are kept and the total stated (default 64 KiB).
    pub max_output_bytes: usize,
    /// Bytes of each stream a running `exec_start` command keeps until polled; beyond, the
    /// oldest are dropped and counted (default 1 MiB).
    pub stream_buffer_bytes: usize,
    /// How many `exec_start` commands may run at once (default 16).
    pub max_running_execs: usize,
    /// The largest file `read_file` returns (default 1 MiB).
    pub max_read_bytes: u64,
    /// How long `create_sandbox` waits for a sandbox to be ready (default 600 s).
    pub ready_timeout: Duration,
    /// A name for the provider in messages (`local`, `digitalocean (api)`).
    pub provider_label: Option<String>,
    /// Where `snapshot_create` keeps snapshots (default: none, and the snapshot tools are
    /// refused). `sandbox mcp` passes the CLI's store (`SANDBOX_SNAPSHOT_DIR`, Spaces, or the
    /// data folder).
    pub snapshots: Option<sandbox_fs::Snapshots>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ttl: Duration::from_secs(3600),
            keep: false,
            max_sandboxes: 5,
            allow_any: false,
            host_files: None,
            exec_timeout: Duration::from_secs(60),
            max_output_bytes: 64 << 10,
            stream_buffer_bytes: 1 << 20,
            max_running_execs: 16,
            max_read_bytes: 1 << 20,
            ready_timeout: sandbox_core::DEFAULT_READY_TIMEOUT,
            provider_label: None,
            snapshots: None,
        }
    }
}

/// Serves MCP over this reader and writer (newline-delimited JSON-RPC) until the client
/// closes the connection or `shutdown` completes; then stops running commands and deletes the
/// server's sandboxes (unless [`Config::keep`]), and reports what it did.
///
/// # Errors
///
/// [`Error::Initialize`] when the client does not complete the handshake;
/// [`Error::Config`] for an unusable [`Config::host_files`]. Tool failures are not errors.
pub async fn serve<R, W>(
    provider: sandbox_core::Provider,
    config: Config,
    reader: R,
    writer: W,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Cleanup>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    SandboxServer::new(provider, config)?
        .run(reader, writer, shutdown)
        .await
}

impl SandboxServer {
    /// Serves MCP over this reader and writer as [`serve`] does, then
    /// [`shuts down`](SandboxServer::shutdown).
    ///
    /// # Errors
    ///
    /// [`Error::Initialize`] when the client does not complete the handshake.
    pub async fn run<R, W>(
        self,
        reader: R,
        writer: W,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<Cleanup>
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let handle = self.clone();
        let result = async {
            let mut shutdown = std::pin::pin!(shutdown);
            let running = tokio::select! {
                running = self.serve((reader, writer)) => {
                    running.map_err(|e| Error::Initialize(e.to_string()))?
                }
                () = &mut shutdown => {
                    tracing::info!("stopping on a signal before the handshake");
                    return Ok(());
                }
            };
            let token = running.cancellation_token();
            let waiting = running.waiting();
            tokio::pin!(waiting);
            tokio::select! {
                quit = &mut waiting => {
                    tracing::info!(?quit, "the MCP client went away");
                }
                () = &mut shutdown => {
                    tracing::info!("stopping on a signal");
                    token.cancel();
                    let _ = tokio::time::timeout(Duration::from_secs(5), waiting).await;
                }
            }
            Ok::<_, Error>(())
        }
        .await;
        let cleanup = handle.shutdown().await;
        result.map(|()| cleanup)
    }
}

/// [`serve`] on this process's stdin and stdout, until stdin closes, SIGINT or SIGTERM.
///
/// # Errors
///
/// As [`serve`], and [`Error::Signal`] when the signal handlers cannot be installed.
pub async fn serve_stdio(provider: sandbox_core::Provider, config: Config) -> Result<Cleanup> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).map_err(Error::Signal)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(Error::Signal)?;
    let (reader, writer) = rmcp::transport::stdio_pipes();
    serve(provider, config, reader, writer, async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
    .await
}

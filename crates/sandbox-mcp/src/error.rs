//! The errors of serving: what [`serve`](crate::serve) and [`serve_stdio`](crate::serve_stdio)
//! return. A tool's failure is never one of these: it goes back to the client as a tool result
//! with `isError: true`.

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client never completed the `initialize` handshake (or the transport failed first).
    #[error("the MCP session did not start: {0}")]
    Initialize(String),
    /// The server's task ended abnormally (a panic inside the MCP service loop).
    #[error("the MCP service stopped abnormally: {0}")]
    Service(String),
    /// A setting is not usable (for example `--allow-host-files` naming no folder).
    #[error("invalid setting: {0}")]
    Config(String),
    /// Listening for SIGINT or SIGTERM failed.
    #[error("cannot listen for signals: {0}")]
    Signal(#[source] std::io::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

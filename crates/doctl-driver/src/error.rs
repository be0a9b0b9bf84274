//! The one error type of this crate.

use std::time::Duration;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a [`Platform`](crate::Platform) call failed.
///
/// Every driver maps its failures to these variants, so upper layers can react the same way
/// whichever driver is in use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The doctl binary could not be found or started.
    #[error(
        "doctl is not installed or not runnable at `{path}`: install it (https://docs.digitalocean.com/reference/doctl/how-to/install/), then run `doctl auth init`, or set `DOCTL` to its path"
    )]
    NotInstalled {
        /// Where it was looked for.
        path: String,
        /// Why it could not run.
        #[source]
        source: Option<std::io::Error>,
    },
    /// No token, or the API refused it (401).
    #[error("not authenticated with DigitalOcean: {message}")]
    NotAuthenticated {
        /// What the API or tool said.
        message: String,
    },
    /// The app, deployment or component does not exist (404).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, for example "app `abc`".
        what: String,
    },
    /// An app with this name already exists (409).
    #[error("an app named `{name}` already exists")]
    NameTaken {
        /// The name.
        name: String,
    },
    /// App Platform rejected the spec (400).
    #[error("invalid app spec{}: {message}", field.as_ref().map(|f| format!(" field `{f}`")).unwrap_or_default())]
    InvalidSpec {
        /// The offending field path, when App Platform names it.
        field: Option<String>,
        /// App Platform's message.
        message: String,
    },
    /// Too many requests (429).
    #[error("rate limited by the DigitalOcean API{}", retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// How long the API asked to wait, when it said.
        retry_after: Option<Duration>,
        /// The `ratelimit-*` headers, when seen.
        limits: Option<RateLimits>,
    },
    /// The API could not be reached, or the connection broke.
    #[error("network error talking to the DigitalOcean API: {message}")]
    Network {
        /// What failed.
        message: String,
    },
    /// An operation did not finish in time.
    #[error("`{operation}` did not finish within {timeout:?}")]
    Timeout {
        /// What was running.
        operation: String,
        /// The deadline it had.
        timeout: Duration,
    },
    /// A console session ended abnormally (dropped connection, close code other than 1000).
    #[error("console connection lost: {reason}")]
    ConsoleLost {
        /// What happened.
        reason: String,
    },
    /// A console stayed silent past its read-idle timeout: no frame of any kind arrived (no
    /// output, no answer to the pings sent meanwhile), so the connection is taken as half-open
    /// and the console is closed.
    #[error(
        "console silent for {silent_for:?}: no output and no answer to pings; the connection is taken as lost"
    )]
    ConsoleSilent {
        /// How long nothing arrived (the read-idle timeout).
        silent_for: Duration,
    },
    /// The request is not valid before it is sent (bad argument, unsupported image, ...).
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument {
        /// The argument.
        name: String,
        /// The rule it breaks.
        reason: String,
    },
    /// The platform cannot do this here (for example a kernel without user namespaces).
    #[error("{what} is not supported here: {reason}")]
    Unsupported {
        /// The operation or feature.
        what: String,
        /// What is missing.
        reason: String,
    },
    /// Any other failure: an unexpected status, output that does not parse, an I/O error.
    #[error("{message}")]
    Other {
        /// What happened.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl Error {
    /// An [`Error::Other`] with a message and no source.
    #[must_use]
    pub fn other(message: impl Into<String>) -> Self {
        Error::Other {
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Other`] with a message and its cause.
    #[must_use]
    pub fn other_with(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Other {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// An [`Error::NotFound`].
    #[must_use]
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    /// Whether the thing asked for does not exist.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// Whether trying again later may succeed (rate limits, network errors, timeouts, lost or
    /// silent consoles).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::RateLimited { .. }
                | Error::Network { .. }
                | Error::Timeout { .. }
                | Error::ConsoleLost { .. }
                | Error::ConsoleSilent { .. }
        )
    }

    /// How long the API asked to wait, for a rate-limit error.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The API's rate-limit headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// `ratelimit-limit`: requests allowed per hour.
    pub limit: u64,
    /// `ratelimit-remaining`.
    pub remaining: u64,
    /// `ratelimit-reset`: Unix time when the oldest request expires.
    pub reset: u64,
}

//! The one error type of this crate.

use std::time::Duration;

use doctl_driver::DeploymentPhase;

use crate::exec::ExitStatus;
use crate::sandbox::Candidate;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a sandbox operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The app, component or process does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, for example "app `abc`".
        what: String,
    },
    /// A name or id prefix designates more than one sandbox (see [`Sandbox::find`](crate::Sandbox::find)).
    #[error("`{target}` matches {} sandboxes: {}", candidates.len(), candidates.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Ambiguous {
        /// The name or id prefix looked up.
        target: String,
        /// The sandboxes it matches, name and id.
        candidates: Vec<Candidate>,
    },
    /// The sandbox did not become ready in time.
    #[error("sandbox `{app_id}` is not ready after {waited:?}: last status {status}")]
    NotReady {
        /// App id.
        app_id: String,
        /// The last status seen (for example `DEPLOYING`).
        status: String,
        /// How long it was waited for.
        waited: Duration,
    },
    /// The sandbox's deployment failed or was cancelled.
    #[error("deployment of sandbox `{app_id}` ended in {phase}{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    DeploymentFailed {
        /// App id.
        app_id: String,
        /// `ERROR` or `CANCELED`.
        phase: DeploymentPhase,
        /// Why, when the deployment says.
        reason: Option<String>,
    },
    /// Waiting for a sandbox was stopped by the signal given to
    /// [`ReadyOptions::cancel_on`](crate::ReadyOptions::cancel_on).
    #[error("waiting for sandbox `{app_id}` was cancelled")]
    Cancelled {
        /// App id.
        app_id: String,
    },
    /// Creating a sandbox failed after its app was made, and deleting that app failed too: the
    /// app is left behind. `error` (the source) is why the creation failed; `delete_error` why
    /// the delete did.
    #[error(
        "could not delete sandbox `{name}` ({app_id}) after its creation failed: {}",
        chain(delete_error)
    )]
    CleanupFailed {
        /// App id of the app left behind.
        app_id: String,
        /// Its name.
        name: String,
        /// Why the creation failed.
        #[source]
        error: Box<Error>,
        /// Why deleting the app failed.
        delete_error: Box<Error>,
    },
    /// An operation did not finish within its deadline.
    #[error("`{operation}` did not finish within {timeout:?}")]
    Timeout {
        /// What was running (a command is shortened to its first 80 bytes).
        operation: String,
        /// The deadline it had.
        timeout: Duration,
        /// Whether a command had been sent: it may have run (or still run, when its kill
        /// could not be delivered), so trying again could run it twice.
        may_have_run: bool,
    },
    /// The console to the sandbox ended while an operation depended on it.
    ///
    /// A command cut off this way is never run again behind the caller's back: it may or may
    /// not have run, or may still be running.
    #[error("console to sandbox lost: {reason}")]
    ConsoleLost {
        /// What happened and what was cut off.
        reason: String,
        /// Whether a command had been sent when the console was lost.
        may_have_run: bool,
    },
    /// A command's output did not arrive whole: the agent read `expected` bytes of the
    /// stream but `received` reached the client. The command ran.
    #[error(
        "`{command}`: the sandbox read {expected} bytes of its {stream} but {received} arrived"
    )]
    Incomplete {
        /// The command (first 80 bytes).
        command: String,
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// What the agent read from the command.
        expected: u64,
        /// What reached the client.
        received: u64,
    },
    /// The remote side answered something the exec protocol does not allow.
    #[error("exec protocol error: {message}")]
    Protocol {
        /// What was wrong.
        message: String,
    },
    /// A command ended unsuccessfully where success was required ([`ExecOutput::exit_ok`](crate::ExecOutput::exit_ok)).
    #[error("`{command}` failed with {status}{}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    CommandFailed {
        /// The command (first 80 bytes).
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// The end of its stderr (at most 400 bytes, lossy UTF-8).
        stderr: String,
    },
    /// An argument breaks a rule before anything is sent.
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument {
        /// The argument.
        name: String,
        /// The rule it breaks.
        reason: String,
    },
    /// A provider's platform could not be set up (the local state folder, the API client).
    #[error("cannot {action}")]
    ProviderSetup {
        /// What was being done, for example "start the local provider".
        action: String,
        /// Why it failed (a `sandbox_local::Error` or a `doctl_driver::Error`).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A pool has no sandbox to give: see [`PoolManager::acquire`](crate::PoolManager::acquire).
    #[error("the `{template}` pool is exhausted: {reason}")]
    PoolExhausted {
        /// The pool's template.
        template: String,
        /// Why.
        reason: String,
    },
    /// The pool manager is shutting down.
    #[error("the pool manager is shutting down")]
    PoolShutdown,
    /// Shutting a pool manager down could not delete every sandbox it held; the first that
    /// stayed is named (its expiry still deletes it).
    #[error("shutdown could not delete sandbox `{app_id}`")]
    ShutdownIncomplete {
        /// The app left behind.
        app_id: String,
        /// Why its delete failed.
        #[source]
        source: Box<Error>,
    },
    /// The app spec could not be built.
    #[error("invalid sandbox spec")]
    Spec(#[from] appspec::SpecError),
    /// The platform (doctl, the API, the local provider) failed.
    #[error("platform error")]
    Platform(#[from] doctl_driver::Error),
}

impl Error {
    /// Whether trying again later may succeed and is safe: timeouts and lost consoles before
    /// any command was sent, readiness timeouts, and platform errors
    /// that are themselves retryable (rate limits, network errors).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Timeout { may_have_run, .. } | Error::ConsoleLost { may_have_run, .. } => {
                !may_have_run
            }
            Error::NotReady { .. } => true,
            Error::Platform(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// Whether the thing asked for does not exist.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::NotFound { .. } => true,
            Error::Platform(e) => e.is_not_found(),
            _ => false,
        }
    }

    /// Whether this is a timeout of an operation.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    pub(crate) fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name: name.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Error::Protocol {
            message: message.into(),
        }
    }

    /// The console was lost before any command was sent.
    pub(crate) fn lost(reason: impl Into<String>) -> Self {
        Error::ConsoleLost {
            reason: reason.into(),
            may_have_run: false,
        }
    }

    /// The console was lost while a command was in flight.
    pub(crate) fn command_lost(reason: impl Into<String>) -> Self {
        Error::ConsoleLost {
            reason: reason.into(),
            may_have_run: true,
        }
    }

    /// A command ran past its timeout.
    pub(crate) fn command_timeout(command: &str, timeout: Duration) -> Self {
        Error::Timeout {
            operation: shorten(command, 80),
            timeout,
            may_have_run: true,
        }
    }

    /// An operation that runs no command (opening a console) ran past its deadline.
    pub(crate) fn timeout(operation: impl Into<String>, timeout: Duration) -> Self {
        Error::Timeout {
            operation: operation.into(),
            timeout,
            may_have_run: false,
        }
    }
}

/// An error and its sources on one line, `: `-separated.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The first `max` bytes of a command, for messages, cut at a character boundary.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

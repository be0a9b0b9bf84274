//! The one error type of this crate.

use std::path::PathBuf;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a file operation failed. Every variant names the path, the setting or the object key
/// it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A path in the sandbox does not exist.
    #[error("`{path}` does not exist in the sandbox")]
    NotFound {
        /// The sandbox path.
        path: String,
    },
    /// A path in the sandbox is a directory where a file was expected.
    #[error("`{path}` is a directory in the sandbox, not a file")]
    IsADirectory {
        /// The sandbox path.
        path: String,
    },
    /// A path in the sandbox (or one of its parents) is not a directory where one was expected.
    #[error("`{path}` is not a directory in the sandbox")]
    NotADirectory {
        /// The sandbox path.
        path: String,
    },
    /// A path in the sandbox already exists.
    #[error("`{path}` already exists in the sandbox")]
    AlreadyExists {
        /// The sandbox path.
        path: String,
    },
    /// The sandbox user may not do this to the path.
    #[error("permission denied on `{path}` in the sandbox{}", detail(message))]
    PermissionDenied {
        /// The sandbox path.
        path: String,
        /// What the sandbox said.
        message: String,
    },
    /// A file in the sandbox is not valid UTF-8 where text was asked for.
    #[error("`{path}` is not valid UTF-8 text (byte {valid_up_to} starts an invalid sequence)")]
    NotUtf8 {
        /// The sandbox path.
        path: String,
        /// How many leading bytes are valid UTF-8.
        valid_up_to: usize,
    },
    /// A local file or folder does not exist.
    #[error("local path `{}` does not exist", path.display())]
    LocalNotFound {
        /// The local path.
        path: PathBuf,
    },
    /// A local path is a directory where a file was expected, or the reverse.
    #[error("local path `{}` {}", path.display(), if *expected_dir { "is not a directory" } else { "is a directory, not a file" })]
    LocalKind {
        /// The local path.
        path: PathBuf,
        /// Whether a directory was expected (a file otherwise).
        expected_dir: bool,
    },
    /// A folder download's local folder already holds something, and the caller did not ask
    /// to merge into it or replace it ([`ExistingDir`](crate::ExistingDir)).
    #[error("local folder `{}` already exists and is not empty; a folder download does not write into it unless asked to merge or replace", path.display())]
    LocalExists {
        /// The local folder.
        path: PathBuf,
    },
    /// A local path stands in the way of a folder download (a symlink where a folder goes, a
    /// folder where a file goes); nothing was changed.
    #[error("local path `{}` {reason}", path.display())]
    LocalConflict {
        /// The local path.
        path: PathBuf,
        /// What is in the way, and the rule.
        reason: String,
    },
    /// The sandbox's tar stream of a folder broke a rule of safe extraction; nothing was
    /// written to the local folder and no temporary files are left.
    #[error("refused the sandbox's archive of `{path}`: {} {rule}; nothing was written", subject(member.as_deref()))]
    ArchiveRefused {
        /// The sandbox folder.
        path: String,
        /// The member at fault (control characters escaped), when one is.
        member: Option<String>,
        /// The rule it breaks.
        rule: String,
    },
    /// Reading or writing a local file failed.
    #[error("local I/O on `{}` failed while {action}", path.display())]
    Local {
        /// The local path.
        path: PathBuf,
        /// What was being done.
        action: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An argument breaks a rule before anything is sent.
    #[error("invalid {name} `{value}`: {reason}")]
    InvalidArgument {
        /// Which argument (for example "mode").
        name: String,
        /// The value given (paths shown with escapes).
        value: String,
        /// The rule it breaks.
        reason: String,
    },
    /// A remote command failed in a way none of the other variants describes.
    #[error(
        "{operation} `{path}` failed in the sandbox ({status}){}",
        detail(stderr)
    )]
    Remote {
        /// What was being done (for example "write").
        operation: String,
        /// The sandbox path.
        path: String,
        /// How the command ended.
        status: sandbox_core::ExitStatus,
        /// The end of its standard error.
        stderr: String,
    },
    /// A transfer ended with a different number of bytes than expected; nothing was put in
    /// place.
    #[error("transfer of `{path}` is incomplete: expected {expected} bytes, got {actual}")]
    Incomplete {
        /// The sandbox path.
        path: String,
        /// Bytes expected.
        expected: u64,
        /// Bytes received or written.
        actual: u64,
    },
    /// A sandbox file sent more bytes than the transfer allows (more than it reported, or more
    /// than a limit); nothing was put in place.
    #[error("`{path}` in the sandbox sent more than {limit} bytes, the most this transfer takes")]
    Oversized {
        /// The sandbox path.
        path: String,
        /// The most bytes allowed.
        limit: u64,
    },
    /// A large transfer was asked for, but no object store is configured.
    #[error(
        "Spaces is not configured: {missing} (set SPACES_ACCESS_KEY, SPACES_SECRET_KEY, SPACES_BUCKET and SPACES_REGION, or pass a SpacesConfig)"
    )]
    SpacesNotConfigured {
        /// Which setting is missing or why no store is available.
        missing: String,
    },
    /// The object store refused the credentials (access key id or secret key).
    #[error(
        "the object store refused the credentials for `{key}` ({code}: {message}); check SPACES_ACCESS_KEY and SPACES_SECRET_KEY"
    )]
    BadCredentials {
        /// The object key.
        key: String,
        /// The store's error code (for example `SignatureDoesNotMatch`).
        code: String,
        /// The store's message.
        message: String,
    },
    /// A presigned URL had expired when it was used.
    #[error("the presigned URL for `{key}` expired before the transfer ({message})")]
    UrlExpired {
        /// The object key.
        key: String,
        /// The store's message.
        message: String,
    },
    /// The object store (or the HTTP transfer to or from it) failed.
    #[error("object store {operation} of `{key}` failed: {message}")]
    ObjectStore {
        /// What was being done (for example "upload").
        operation: String,
        /// The object key.
        key: String,
        /// What went wrong (never a presigned URL's signature).
        message: String,
    },
    /// No snapshot with this id is in the store (no committed `metadata.json`).
    #[error("no snapshot `{id}` in {store}")]
    SnapshotNotFound {
        /// The snapshot id.
        id: String,
        /// Where it was looked for.
        store: String,
    },
    /// An incremental snapshot's chain of parents is broken: a parent is missing, the chain
    /// loops, or a layer does not match its parent.
    #[error("the chain of snapshot `{id}` is broken: {reason}")]
    SnapshotChain {
        /// The snapshot whose chain was resolved.
        id: String,
        /// What is wrong (names the parent at fault).
        reason: String,
    },
    /// A snapshot's archive or manifest does not match what was recorded (a size, a hash, a
    /// member that breaks the extraction rules); nothing of that layer was extracted.
    #[error("snapshot `{id}` failed its integrity check: {} {reason}", subject(member.as_deref()))]
    SnapshotIntegrity {
        /// The snapshot id.
        id: String,
        /// The member at fault (control characters escaped), when one is.
        member: Option<String>,
        /// What does not match.
        reason: String,
    },
    /// Making a snapshot failed part way (the sandbox was lost, the store failed mid-upload,
    /// a URL expired); every object it had written was removed, so nothing is listed.
    #[error("snapshot `{id}` of sandbox `{sandbox}` failed while {stage}; nothing was kept")]
    SnapshotFailed {
        /// The id the snapshot would have had.
        id: String,
        /// The sandbox's app id.
        sandbox: String,
        /// The step that failed (for example "uploading the archive").
        stage: String,
        /// The cause.
        #[source]
        source: Box<Error>,
    },
    /// Waking a hibernated sandbox (or creating one from a snapshot) failed; the sandbox made
    /// for it, if any, was deleted again.
    #[error("could not make a sandbox from snapshot `{id}`{}", left_behind(app_id.as_deref()))]
    WakeFailed {
        /// The snapshot id.
        id: String,
        /// The app left behind when deleting it failed too.
        app_id: Option<String>,
        /// The cause.
        #[source]
        source: Box<Error>,
    },
    /// Creating or deleting a sandbox for a snapshot operation failed.
    #[error("sandbox {operation} failed")]
    Sandbox {
        /// What was being done ("create", "delete", "look up").
        operation: String,
        /// The cause.
        #[source]
        source: sandbox_core::Error,
    },
    /// Running a command in the sandbox failed (console, timeout, protocol).
    #[error("sandbox command for {operation} `{path}` failed")]
    Exec {
        /// What was being done.
        operation: String,
        /// The sandbox path.
        path: String,
        /// The cause.
        #[source]
        source: sandbox_core::Error,
    },
}

impl Error {
    /// Builds an [`Error::ObjectStore`] (for [`ObjectStore`](crate::ObjectStore) implementations).
    pub fn object_store(
        operation: impl Into<String>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::ObjectStore {
            operation: operation.into(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// Whether the path (remote or local) does not exist.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. } | Error::LocalNotFound { .. })
    }

    /// Whether trying again may succeed and is safe, as [`sandbox_core::Error::is_retryable`]
    /// says of the sandbox command underneath (false when it may have run).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Exec { source, .. } => source.is_retryable(),
            _ => false,
        }
    }

    /// Whether the sandbox command was cut off (a lost console, a timeout), whether or not it
    /// ran: a step written to be idempotent may then run again.
    pub(crate) fn is_interrupted(&self) -> bool {
        match self {
            Error::Exec { source, .. } => {
                source.is_retryable()
                    || matches!(
                        source,
                        sandbox_core::Error::ConsoleLost { .. }
                            | sandbox_core::Error::Timeout { .. }
                    )
            }
            _ => false,
        }
    }

    pub(crate) fn invalid(
        name: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidArgument {
            name: name.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn local(
        path: impl Into<PathBuf>,
        action: impl Into<String>,
        source: std::io::Error,
    ) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            return Error::LocalNotFound { path };
        }
        Error::Local {
            path,
            action: action.into(),
            source,
        }
    }
}

fn subject(member: Option<&str>) -> String {
    member.map_or_else(|| "the stream".to_owned(), |m| format!("member `{m}`"))
}

fn left_behind(app_id: Option<&str>) -> String {
    app_id.map_or_else(String::new, |id| {
        format!(" (and deleting the new sandbox `{id}` failed too: it is left behind)")
    })
}

fn detail(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

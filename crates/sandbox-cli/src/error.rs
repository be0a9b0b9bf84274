//! The CLI's own errors, and the one place where any error becomes an exit code.

use std::fmt;

/// Exit codes of the `sandbox` command (see `docs/cli.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Success.
    Ok,
    /// Any other error.
    Error,
    /// The command line or configuration is wrong.
    Usage,
    /// The sandbox, app, file or process does not exist.
    NotFound,
    /// No token, or DigitalOcean refused it.
    Auth,
    /// An operation did not finish in time.
    Timeout,
    /// Ctrl-C (128 + SIGINT, as shells report it).
    Interrupted,
    /// The remote command's own exit code (exec and run).
    Remote(u8),
}

impl Exit {
    pub(crate) fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Error => 1,
            Exit::Usage => 2,
            Exit::NotFound => 3,
            Exit::Auth => 4,
            Exit::Timeout => 5,
            Exit::Interrupted => 130,
            Exit::Remote(code) => code,
        }
    }

    /// The exit of a remote command: its code, or 128 + the signal that killed it.
    pub(crate) fn remote(status: sandbox_core::ExitStatus) -> Exit {
        match (status.code, status.signal) {
            (Some(code), _) => Exit::Remote(u8::try_from(code.clamp(0, 255)).unwrap_or(1)),
            (None, Some(signal)) => {
                Exit::Remote(u8::try_from((128 + signal).clamp(0, 255)).unwrap_or(1))
            }
            (None, None) => Exit::Error,
        }
    }
}

/// Failures the CLI itself detects.
#[derive(Debug)]
pub(crate) enum CliError {
    /// A wrong command line or configuration.
    Usage(String),
    /// Nothing matches the name; `candidates` are names that exist.
    NotFound {
        what: String,
        candidates: Vec<String>,
        note: Option<String>,
    },
    /// Several sandboxes match the name.
    Ambiguous {
        target: String,
        candidates: Vec<String>,
    },
    /// Ctrl-C stopped the operation.
    Interrupted,
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(message) => f.write_str(message),
            CliError::NotFound {
                what,
                candidates,
                note,
            } => {
                write!(f, "{what} not found")?;
                if let Some(note) = note {
                    write!(f, " ({note})")?;
                }
                if !candidates.is_empty() {
                    write!(f, "; sandboxes: {}", candidates.join(", "))?;
                }
                Ok(())
            }
            CliError::Ambiguous { target, candidates } => write!(
                f,
                "`{target}` matches {} sandboxes: {}; give the full name or `--id`",
                candidates.len(),
                candidates.join(", ")
            ),
            CliError::Interrupted => f.write_str("interrupted"),
        }
    }
}

impl std::error::Error for CliError {}

/// Which exit code an error gets: the first cause in the chain that says.
pub(crate) fn exit_for(error: &anyhow::Error) -> Exit {
    for cause in error.chain() {
        if let Some(e) = cause.downcast_ref::<CliError>() {
            return match e {
                CliError::Usage(_) | CliError::Ambiguous { .. } => Exit::Usage,
                CliError::NotFound { .. } => Exit::NotFound,
                CliError::Interrupted => Exit::Interrupted,
            };
        }
        if let Some(e) = cause.downcast_ref::<sandbox_core::Error>() {
            match e {
                sandbox_core::Error::NotFound { .. } => return Exit::NotFound,
                sandbox_core::Error::Timeout { .. } | sandbox_core::Error::NotReady { .. } => {
                    return Exit::Timeout;
                }
                sandbox_core::Error::InvalidArgument { .. }
                | sandbox_core::Error::Spec(_)
                | sandbox_core::Error::Ambiguous { .. } => {
                    return Exit::Usage;
                }
                sandbox_core::Error::Cancelled { .. } => return Exit::Interrupted,
                _ => {}
            }
        }
        if let Some(e) = cause.downcast_ref::<doctl_driver::Error>() {
            match e {
                doctl_driver::Error::NotFound { .. } => return Exit::NotFound,
                doctl_driver::Error::NotAuthenticated { .. } => return Exit::Auth,
                doctl_driver::Error::Timeout { .. } => return Exit::Timeout,
                doctl_driver::Error::InvalidArgument { .. }
                | doctl_driver::Error::InvalidSpec { .. } => return Exit::Usage,
                _ => {}
            }
        }
        if let Some(e) = cause.downcast_ref::<sandbox_fs::Error>() {
            match e {
                sandbox_fs::Error::NotFound { .. } | sandbox_fs::Error::LocalNotFound { .. } => {
                    return Exit::NotFound;
                }
                sandbox_fs::Error::InvalidArgument { .. }
                | sandbox_fs::Error::LocalKind { .. }
                | sandbox_fs::Error::LocalExists { .. }
                | sandbox_fs::Error::LocalConflict { .. }
                | sandbox_fs::Error::SpacesNotConfigured { .. } => return Exit::Usage,
                sandbox_fs::Error::BadCredentials { .. } => return Exit::Auth,
                _ => {}
            }
        }
        if cause.downcast_ref::<appspec::SpecError>().is_some() {
            return Exit::Usage;
        }
    }
    Exit::Error
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn errors_map_to_documented_codes() {
        let not_found = anyhow::Error::new(sandbox_core::Error::Platform(
            doctl_driver::Error::not_found("app `x`"),
        ));
        assert_eq!(exit_for(&not_found), Exit::NotFound);
        let auth = anyhow::Error::new(doctl_driver::Error::NotAuthenticated {
            message: "no token".into(),
        })
        .context("listing apps");
        assert_eq!(exit_for(&auth).code(), 4);
        let timeout = anyhow::Error::new(sandbox_core::Error::Timeout {
            operation: "sleep 9".into(),
            timeout: Duration::from_secs(1),
            may_have_run: true,
        });
        assert_eq!(exit_for(&timeout).code(), 5);
        let usage = anyhow::Error::new(CliError::Usage("bad".into()));
        assert_eq!(exit_for(&usage).code(), 2);
        assert_eq!(exit_for(&anyhow::anyhow!("other")).code(), 1);
        let ambiguous = anyhow::Error::new(sandbox_core::Error::Ambiguous {
            target: "web".into(),
            candidates: Vec::new(),
        });
        assert_eq!(exit_for(&ambiguous), Exit::Usage);
        let cancelled = anyhow::Error::new(sandbox_core::Error::Cancelled { app_id: "a".into() });
        assert_eq!(exit_for(&cancelled).code(), 130);
    }

    #[test]
    fn remote_status_passes_through() {
        use sandbox_core::ExitStatus;
        assert_eq!(Exit::remote(ExitStatus::from_code(7)).code(), 7);
        assert_eq!(Exit::remote(ExitStatus::from_signal(9)).code(), 137);
        assert_eq!(Exit::remote(ExitStatus::from_code(0)).code(), 0);
    }

    #[test]
    fn not_found_lists_candidates() {
        let e = CliError::NotFound {
            what: "sandbox `x`".into(),
            candidates: vec!["a".into(), "b".into()],
            note: None,
        };
        assert_eq!(e.to_string(), "sandbox `x` not found; sandboxes: a, b");
    }
}

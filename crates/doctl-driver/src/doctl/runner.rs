//! Running the doctl binary: where it is, its environment, timeouts, killing and draining.
//!
//! Every child is spawned in its own process group with `kill_on_drop`, its stdout and stderr
//! drained concurrently, and a deadline on the whole run; on timeout or drop the whole group is
//! killed, so a wrapper script cannot leave doctl behind.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

use crate::doctl::parse::RawOutput;
use crate::error::{Error, Result};
use crate::token::Token;

/// The environment variable doctl reads its token from (it ignores `DIGITALOCEAN_TOKEN`).
pub(crate) const DOCTL_TOKEN_ENV: &str = "DIGITALOCEAN_ACCESS_TOKEN";

/// Where the binary is: resolved once, reported on each call when missing.
#[derive(Debug, Clone)]
pub(crate) enum Binary {
    Found(PathBuf),
    Missing(String),
}

/// Picks the doctl binary: an explicit path, else `$DOCTL`, else `doctl` on `PATH`.
pub(crate) fn resolve_binary(
    explicit: Option<&Path>,
    env_doctl: Option<OsString>,
    path_var: Option<OsString>,
) -> Binary {
    if let Some(path) = explicit {
        return Binary::Found(path.to_path_buf());
    }
    if let Some(path) = env_doctl.filter(|p| !p.is_empty()) {
        return Binary::Found(PathBuf::from(path));
    }
    let Some(path_var) = path_var else {
        return Binary::Missing("doctl (PATH is not set)".to_owned());
    };
    for dir in std::env::split_paths(&path_var) {
        let candidate = dir.join("doctl");
        if is_executable(&candidate) {
            return Binary::Found(candidate);
        }
    }
    Binary::Missing("doctl (not on PATH)".to_owned())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Spawns doctl with the token and global flags of one [`Doctl`](crate::Doctl).
#[derive(Debug, Clone)]
pub(crate) struct Runner {
    pub(crate) binary: Binary,
    pub(crate) token: Option<Token>,
    pub(crate) global_args: Vec<String>,
}

impl Runner {
    /// The binary's path, or the error that says how to install it.
    pub(crate) fn binary(&self) -> Result<&Path> {
        match &self.binary {
            Binary::Found(path) => Ok(path),
            Binary::Missing(what) => Err(Error::NotInstalled {
                path: what.clone(),
                source: None,
            }),
        }
    }

    /// A command for `doctl <args> <global flags>` with the token in the environment.
    pub(crate) fn command(&self, args: &[String]) -> Result<Command> {
        let mut command = Command::new(self.binary()?);
        command.args(args).args(&self.global_args);
        self.apply_env(&mut |key, value| {
            command.env(key, value);
        });
        Ok(command)
    }

    /// Sets doctl's environment through `set`: the token, when one is configured.
    pub(crate) fn apply_env(&self, set: &mut dyn FnMut(&str, &str)) {
        if let Some(token) = &self.token {
            set(DOCTL_TOKEN_ENV, token.expose());
        }
    }

    /// What to show of a command in messages: `doctl` and the arguments (never the token,
    /// which only ever travels in the environment).
    pub(crate) fn display(args: &[String]) -> String {
        let mut text = String::from("doctl");
        for arg in args {
            text.push(' ');
            text.push_str(arg);
        }
        text
    }

    /// Maps a spawn failure: a missing or non-executable binary is [`Error::NotInstalled`].
    pub(crate) fn spawn_error(&self, source: io::Error) -> Error {
        let path = match &self.binary {
            Binary::Found(path) => path.display().to_string(),
            Binary::Missing(what) => what.clone(),
        };
        match source.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => Error::NotInstalled {
                path,
                source: Some(source),
            },
            _ => Error::other_with(format!("could not start doctl at `{path}`"), source),
        }
    }

    /// Starts doctl in a process group of its own (killed with the child when dropped), stdout
    /// and stderr piped, stdin piped when `stdin` says so, else empty.
    pub(crate) async fn spawn_piped(
        &self,
        args: &[String],
        stdin: bool,
    ) -> Result<(Child, GroupGuard)> {
        let mut command = self.command(args)?;
        command
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let child = spawn_retrying(|| command.spawn())
            .await
            .map_err(|e| self.spawn_error(e))?;
        let group = GroupGuard::new(&child);
        Ok((child, group))
    }

    /// Runs doctl to completion within `timeout`, feeding `stdin` when given.
    pub(crate) async fn run(
        &self,
        args: &[String],
        stdin: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<RawOutput> {
        let display = Self::display(args);
        let started = std::time::Instant::now();
        let (mut child, group) = self.spawn_piped(args, stdin.is_some()).await?;
        let input = child.stdin.take();
        let feed = async move {
            if let (Some(mut pipe), Some(data)) = (input, stdin) {
                // doctl may exit before reading everything (for example on a bad flag): a
                // broken pipe here is not the error to report, its exit status is.
                let _ = pipe.write_all(&data).await;
                let _ = pipe.shutdown().await;
            }
        };
        let work = async move {
            let ((), output) = tokio::join!(feed, child.wait_with_output());
            output
        };
        let output = match tokio::time::timeout(timeout, work).await {
            Ok(Ok(output)) => output,
            Ok(Err(source)) => {
                return Err(Error::other_with(
                    format!("waiting for `{display}` failed"),
                    source,
                ));
            }
            Err(_) => {
                // `group` kills the whole process group when dropped here.
                tracing::warn!(command = %Runner::display(args), ?timeout, "doctl timed out; killed");
                return Err(Error::Timeout {
                    operation: display,
                    timeout,
                });
            }
        };
        group.disarm();
        tracing::debug!(
            command = %Self::display(args),
            code = ?output.status.code(),
            elapsed_ms = started.elapsed().as_millis(),
            "doctl finished"
        );
        Ok(RawOutput {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// Spawns, retrying a few times while the binary is busy being written (`ETXTBSY`: the file
/// was just installed or replaced, and another process still holds a write handle on it).
pub(crate) async fn spawn_retrying<T>(mut spawn: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut attempt = 0u64;
    loop {
        match spawn() {
            Err(e) if is_text_busy(&e) && attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(10 * attempt)).await;
            }
            result => return result,
        }
    }
}

pub(crate) fn is_text_busy(error: &io::Error) -> bool {
    error.raw_os_error() == Some(rustix::io::Errno::TXTBSY.raw_os_error())
}

/// Kills a child's process group when dropped, unless disarmed after the child was reaped.
pub(crate) struct GroupGuard {
    pid: Option<rustix::process::Pid>,
}

impl GroupGuard {
    /// Guards the group led by `child` (spawned with `process_group(0)` or `setsid`).
    pub(crate) fn new(child: &Child) -> Self {
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw);
        GroupGuard { pid }
    }

    /// Kills the group now.
    pub(crate) fn kill(&self) {
        if let Some(pid) = self.pid {
            // The group may be gone already; nothing to do then.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }

    /// The child was reaped: its pid may be reused, so never signal it again.
    pub(crate) fn disarm(mut self) {
        self.pid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_path_wins_then_env_then_path() {
        let dir = tempfile::tempdir().unwrap();
        let on_path = dir.path().join("doctl");
        std::fs::write(&on_path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            &on_path,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let path_var = Some(OsString::from(format!(
            "/nonexistent:{}",
            dir.path().display()
        )));
        let explicit = PathBuf::from("/opt/doctl");
        assert!(matches!(
            resolve_binary(Some(&explicit), Some("/env/doctl".into()), path_var.clone()),
            Binary::Found(p) if p == explicit
        ));
        assert!(matches!(
            resolve_binary(None, Some("/env/doctl".into()), path_var.clone()),
            Binary::Found(p) if p == Path::new("/env/doctl")
        ));
        assert!(matches!(
            resolve_binary(None, None, path_var),
            Binary::Found(p) if p == on_path
        ));
        assert!(matches!(
            resolve_binary(None, None, Some("/nonexistent".into())),
            Binary::Missing(_)
        ));
    }

    #[test]
    fn non_executable_file_on_path_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("doctl"), "").unwrap();
        std::fs::set_permissions(
            dir.path().join("doctl"),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
        assert!(matches!(
            resolve_binary(None, None, Some(dir.path().as_os_str().to_owned())),
            Binary::Missing(_)
        ));
    }
}

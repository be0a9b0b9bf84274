//! `doctl apps console` inside a pseudo-terminal.
//!
//! doctl refuses a stdin that is not a terminal (`error setting terminal to raw mode`), so it
//! runs on a pty whose window size is set before it starts (doctl sends that size in its first
//! resize frame). Its stdout and stderr are the same pty: what [`Console::recv`] returns is the
//! whole terminal stream, and doctl's own `Error: ...` line is recognised at the end, only once
//! the process has exited non-zero.
//!
//! Deadlines: doctl hangs silently when the WebSocket dial fails, so a console whose doctl
//! prints nothing within the connect timeout is killed and reported as [`Error::Timeout`]. Each
//! send has a deadline (`DoctlConfig::console_send_timeout`, 30 s by default), waiting for an
//! earlier send included: a doctl that stops reading its terminal fills the pty's buffer, and the
//! send then fails with [`Error::Timeout`] (part of the input may have been written). Reaping
//! after exit has a deadline. `recv` waits for output as long as the remote
//! shell is silent (a command may run for minutes): it is cancel-safe, so callers bound it with
//! their own timeout. Closing or dropping the console kills doctl's process group.

use std::io;
use std::sync::Mutex as SyncMutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;
use tokio::sync::Mutex;

use crate::doctl::parse::{self, Subject};
use crate::doctl::runner::{GroupGuard, Runner, spawn_retrying};
use crate::error::{Error, Result};
use crate::platform::{Console, ConsoleTarget, TermSize};

/// How long doctl may take to exit once its terminal closed, before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(5);
/// How long doctl may take to exit after printing an error at start, before its output is taken
/// for the remote side's.
const ERROR_EXIT_GRACE: Duration = Duration::from_secs(2);
/// How much of the terminal stream is kept to find doctl's final `Error:` line.
const TAIL_BYTES: usize = 4096;
/// Read buffer size.
const CHUNK: usize = 16 * 1024;

/// Timeouts of one console.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConsoleTimeouts {
    pub(crate) connect: Duration,
    pub(crate) send: Duration,
}

/// A console carried by a doctl process on a pty.
pub(crate) struct DoctlConsole {
    reader: Mutex<ReadState>,
    writer: Mutex<pty_process::OwnedWritePty>,
    child: Mutex<Child>,
    group: SyncMutex<Option<GroupGuard>>,
    subject: Subject,
    send_timeout: Duration,
    closed: AtomicBool,
    exited: AtomicBool,
}

struct ReadState {
    pty: pty_process::OwnedReadPty,
    pending: Option<Vec<u8>>,
    tail: Vec<u8>,
    ended: Option<Ended>,
}

#[derive(Debug, Clone)]
enum Ended {
    Clean,
    Failed {
        code: Option<i32>,
        detail: Option<String>,
    },
}

impl ReadState {
    fn remember(&mut self, data: &[u8]) {
        self.tail.extend_from_slice(data);
        if self.tail.len() > TAIL_BYTES {
            let cut = self.tail.len() - TAIL_BYTES;
            self.tail.drain(..cut);
        }
    }
}

/// Whether a pty read result means the other side is gone (Linux reports `EIO` on the master
/// once every slave descriptor is closed).
fn is_hangup(error: &io::Error) -> bool {
    error.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error())
}

fn pty_error(what: &str, error: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::other_with(
        format!("could not {what} the console's pseudo-terminal"),
        error,
    )
}

fn size(size: TermSize) -> pty_process::Size {
    pty_process::Size::new(size.rows, size.cols)
}

impl DoctlConsole {
    /// Starts doctl on a fresh pty and waits for its first output.
    pub(crate) async fn open(
        runner: &Runner,
        target: &ConsoleTarget,
        timeouts: ConsoleTimeouts,
    ) -> Result<Self> {
        let mut args = vec![
            "apps".to_owned(),
            "console".to_owned(),
            target.app_id.clone(),
            target.component.clone(),
        ];
        if let Some(instance) = &target.instance {
            args.push(instance.clone());
        }
        let display = Runner::display(&args);
        let subject = Subject::new(
            display.clone(),
            match &target.instance {
                Some(instance) => format!(
                    "instance `{instance}` of component `{}` of app `{}`",
                    target.component, target.app_id
                ),
                None => format!(
                    "component `{}` of app `{}`",
                    target.component, target.app_id
                ),
            },
        );

        let (pty, pts) = pty_process::open().map_err(|e| pty_error("open", e))?;
        pty.resize(size(target.size))
            .map_err(|e| pty_error("size", e))?;
        let mut command = pty_process::Command::new(runner.binary()?)
            .args(&args)
            .args(&runner.global_args)
            .kill_on_drop(true);
        let mut envs = Vec::new();
        runner.apply_env(&mut |key, value| envs.push((key.to_owned(), value.to_owned())));
        command = command.envs(envs);
        let spawned = spawn_retrying(|| {
            command.spawn_borrowed(&pts).map_err(|e| match e {
                pty_process::Error::Io(source) => source,
                pty_process::Error::Rustix(errno) => io::Error::from(errno),
                other => io::Error::other(other.to_string()),
            })
        })
        .await;
        // The child holds the terminal now; our handles on it (the slave and the command's
        // copies of it) must close, or reads never see the child's exit.
        drop(command);
        drop(pts);
        let child = spawned.map_err(|e| runner.spawn_error(e))?;
        let group = GroupGuard::new(&child);
        let (read, write) = pty.into_split();
        let console = DoctlConsole {
            reader: Mutex::new(ReadState {
                pty: read,
                pending: None,
                tail: Vec::new(),
                ended: None,
            }),
            writer: Mutex::new(write),
            child: Mutex::new(child),
            group: SyncMutex::new(Some(group)),
            subject,
            send_timeout: timeouts.send,
            closed: AtomicBool::new(false),
            exited: AtomicBool::new(false),
        };
        console.await_first_output(timeouts.connect).await?;
        Ok(console)
    }

    /// Waits for doctl's first output: the remote prompt, or doctl's own error.
    async fn await_first_output(&self, connect: Duration) -> Result<()> {
        let mut state = self.reader.lock().await;
        let mut buf = vec![0u8; CHUNK];
        let first = tokio::time::timeout(connect, state.pty.read(&mut buf)).await;
        match first {
            Err(_) => {
                drop(state);
                self.kill_and_reap().await;
                Err(Error::Timeout {
                    operation: format!(
                        "{} (waiting for the console to connect)",
                        self.subject.command
                    ),
                    timeout: connect,
                })
            }
            Ok(Ok(0)) => self.ended_at_open(&mut state).await,
            Ok(Err(e)) if is_hangup(&e) => self.ended_at_open(&mut state).await,
            Ok(Err(e)) => {
                drop(state);
                self.kill_and_reap().await;
                Err(pty_error("read", e))
            }
            Ok(Ok(n)) => {
                buf.truncate(n);
                state.remember(&buf);
                let text = parse::strip_ansi(&String::from_utf8_lossy(&buf));
                state.pending = Some(buf);
                if text.trim_start().starts_with("Error: ") {
                    // Likely doctl failing before the session (404 on the exec URL, no token):
                    // it exits right after. If it does not, this was the remote side talking,
                    // and nothing was consumed.
                    let exited = {
                        let mut child = self.child.lock().await;
                        tokio::time::timeout(ERROR_EXIT_GRACE, child.wait())
                            .await
                            .is_ok()
                    };
                    if exited {
                        let deadline = tokio::time::Instant::now() + EXIT_GRACE;
                        let mut more = vec![0u8; CHUNK];
                        while let Ok(Ok(n)) =
                            tokio::time::timeout_at(deadline, state.pty.read(&mut more)).await
                        {
                            if n == 0 {
                                break;
                            }
                            state.remember(&more[..n]);
                            if let Some(pending) = state.pending.as_mut() {
                                pending.extend_from_slice(&more[..n]);
                            }
                        }
                        let ended = self.reap(&state.tail).await;
                        if let Ended::Failed { .. } = ended {
                            return Err(self.error_of(&ended));
                        }
                    }
                }
                Ok(())
            }
        }
    }

    async fn ended_at_open(&self, state: &mut ReadState) -> Result<()> {
        let ended = self.reap(&state.tail).await;
        match ended {
            Ended::Clean => Err(Error::ConsoleLost {
                reason: format!("`{}` exited before printing anything", self.subject.command),
            }),
            failed => Err(self.error_of(&failed)),
        }
    }

    /// Waits for doctl to exit (killing it after a grace period) and reads how it ended.
    async fn reap(&self, tail: &[u8]) -> Ended {
        let mut child = self.child.lock().await;
        let status = match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                self.kill_group();
                tokio::time::timeout(EXIT_GRACE, child.wait())
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
        };
        self.disarm_group();
        self.exited.store(true, Ordering::Release);
        match status {
            Some(status) if status.success() => Ended::Clean,
            other => Ended::Failed {
                code: other.and_then(|s| s.code()),
                detail: parse::last_error_in_terminal(&String::from_utf8_lossy(tail)),
            },
        }
    }

    fn error_of(&self, ended: &Ended) -> Error {
        match ended {
            Ended::Clean => Error::ConsoleLost {
                reason: "console already ended".to_owned(),
            },
            Ended::Failed {
                code,
                detail: Some(detail),
            } => match parse::classify(detail, *code, &self.subject) {
                // Anything doctl says that is not an API or auth error ends the session
                // abnormally (a non-JSON frame, a broken WebSocket).
                Error::Other { .. } if !detail.contains("raw mode") => Error::ConsoleLost {
                    reason: detail.clone(),
                },
                other => other,
            },
            Ended::Failed { code, detail: None } => Error::ConsoleLost {
                reason: format!(
                    "`{}` ended ({}) without an error message",
                    self.subject.command,
                    parse::describe_exit(*code)
                ),
            },
        }
    }

    fn kill_group(&self) {
        if let Ok(guard) = self.group.lock() {
            if let Some(group) = guard.as_ref() {
                group.kill();
            }
        }
    }

    fn disarm_group(&self) {
        if let Ok(mut guard) = self.group.lock() {
            if let Some(group) = guard.take() {
                group.disarm();
            }
        }
    }

    async fn kill_and_reap(&self) {
        self.kill_group();
        let mut child = self.child.lock().await;
        if tokio::time::timeout(EXIT_GRACE, child.wait()).await.is_ok() {
            self.disarm_group();
        }
    }
}

#[async_trait]
impl Console for DoctlConsole {
    #[tracing::instrument(level = "trace", skip_all, fields(len = data.len()))]
    async fn send(&self, data: &[u8]) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::ConsoleLost {
                reason: "the console was closed".to_owned(),
            });
        }
        if self.exited.load(Ordering::Acquire) {
            return Err(Error::ConsoleLost {
                reason: "doctl has exited".to_owned(),
            });
        }
        // The deadline covers waiting for an earlier send to finish, too.
        let write = async {
            let mut writer = self.writer.lock().await;
            writer.write_all(data).await?;
            writer.flush().await
        };
        match tokio::time::timeout(self.send_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if is_hangup(&e) || e.kind() == io::ErrorKind::BrokenPipe => {
                Err(Error::ConsoleLost {
                    reason: "doctl has exited".to_owned(),
                })
            }
            Ok(Err(e)) => Err(pty_error("write to", e)),
            Err(_) => {
                tracing::debug!(timeout = ?self.send_timeout, "console send timed out");
                Err(Error::Timeout {
                    operation: format!(
                        "{} (sending {} bytes of input; doctl is not reading its terminal)",
                        self.subject.command,
                        data.len()
                    ),
                    timeout: self.send_timeout,
                })
            }
        }
    }

    async fn recv(&self) -> Result<Option<Vec<u8>>> {
        let mut state = self.reader.lock().await;
        if let Some(pending) = state.pending.take() {
            return Ok(Some(pending));
        }
        if self.closed.load(Ordering::Acquire) {
            return Ok(None);
        }
        if let Some(ended) = &state.ended {
            return match ended {
                Ended::Clean => Ok(None),
                failed => Err(self.error_of(failed)),
            };
        }
        let mut buf = vec![0u8; CHUNK];
        // AsyncRead::read is cancel-safe: nothing is consumed unless it completes.
        let result = state.pty.read(&mut buf).await;
        match result {
            Ok(n) if n > 0 => {
                buf.truncate(n);
                state.remember(&buf);
                Ok(Some(buf))
            }
            Ok(_) => self.end(&mut state).await,
            Err(e) if is_hangup(&e) => self.end(&mut state).await,
            Err(e) => Err(pty_error("read", e)),
        }
    }

    async fn resize(&self, new_size: TermSize) -> Result<()> {
        let writer = self.writer.lock().await;
        writer
            .resize(size(new_size))
            .map_err(|e| pty_error("resize", e))
    }

    async fn close(&self) -> Result<()> {
        // Marked before killing, so a concurrent `recv` sees a normal end.
        self.closed.store(true, Ordering::Release);
        self.kill_and_reap().await;
        Ok(())
    }
}

impl DoctlConsole {
    async fn end(&self, state: &mut ReadState) -> Result<Option<Vec<u8>>> {
        if self.closed.load(Ordering::Acquire) {
            return Ok(None);
        }
        let ended = self.reap(&state.tail).await;
        state.ended = Some(ended.clone());
        match ended {
            Ended::Clean => Ok(None),
            failed => Err(self.error_of(&failed)),
        }
    }
}

impl Drop for DoctlConsole {
    fn drop(&mut self) {
        // Kill the whole group; the child handle (kill_on_drop) is reaped by tokio afterwards.
        if let Ok(guard) = self.group.get_mut() {
            if let Some(group) = guard.take() {
                group.kill();
            }
        }
    }
}

impl std::fmt::Debug for DoctlConsole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DoctlConsole")
            .field("command", &self.subject.command)
            .finish_non_exhaustive()
    }
}

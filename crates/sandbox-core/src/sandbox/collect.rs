//! Commands whose whole output is collected: [`Sandbox::exec`] and [`Sandbox::exec_with`].

use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument as _;

use super::{Sandbox, remote_timeout};
use crate::channel::{Event, Running};
use crate::error::{Error, Result, shorten};
use crate::exec::{ExecOutput, ExecRequest, ExitStatus};
use crate::protocol::{Mode, Stream};
use crate::script;

impl Sandbox {
    /// Runs a shell command (`sh -c`) and returns its status and output, byte for byte.
    ///
    /// Stateless: a `cd` or `export` does not reach the next call (use [`Sandbox::session`]).
    ///
    /// # Errors
    ///
    /// [`Error::ConsoleLost`] when the console drops first; the console's errors.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future kills the remote command's process group.
    pub async fn exec(&self, command: &str) -> Result<ExecOutput> {
        self.exec_with(ExecRequest::shell(command)).await
    }

    /// Runs a command described by an [`ExecRequest`] (argv, env, cwd, stdin, timeout).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a bad env key or a NUL byte; [`Error::Timeout`] after the
    /// request's timeout (the remote process group is killed and the console stays usable);
    /// [`Error::ConsoleLost`]; [`Error::Protocol`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future kills the remote command's process group.
    pub async fn exec_with(&self, request: ExecRequest) -> Result<ExecOutput> {
        self.run_collect(request, None).await
    }

    pub(crate) async fn run_collect(
        &self,
        request: ExecRequest,
        session: Option<&str>,
    ) -> Result<ExecOutput> {
        let display = request.display();
        let span = tracing::debug_span!("sandbox.exec", app_id = %self.inner.app_id, command = %shorten(&request.display(), 80));
        async {
            let script = script::compose(&request, session)?;
            let channel = self.channel().await?;
            let mut running = channel
                .start(
                    Mode::Collect,
                    request.kill_children,
                    &script,
                    request.stdin.as_deref(),
                    remote_timeout(request.timeout),
                )
                .await?;
            let collect = collect(&mut running, &display, request.drain_grace);
            let result = match request.timeout {
                None => collect.await,
                Some(timeout) => match tokio::time::timeout(timeout, collect).await {
                    Ok(result) => result,
                    Err(_) => {
                        // The kill goes out on its own task: the timeout returns now even
                        // when the console cannot take it.
                        running.kill(9);
                        return Err(Error::command_timeout(&display, timeout));
                    }
                },
            };
            let mut output = result?;
            output.command = display.clone();
            Ok(output)
        }
        .instrument(span)
        .await
    }
}

/// How long the agent may take to send a command's exit frame once its output readers
/// were told to stop.
const DRAIN_REPLY: Duration = Duration::from_secs(10);

/// What to do about a command whose process exited but whose result is not complete yet:
/// once the caller has waited `grace` for more, tell the agent to stop reading the output (a
/// child still holds the pipes).
///
/// Only time spent waiting counts: a stream whose reader was away had the agent waiting for
/// flow-control credit, not for the pipes.
pub(crate) struct Drain {
    /// Waiting time left after the exit; `None` before it.
    left: Option<Duration>,
    /// When the drain request was sent.
    sent: Option<Instant>,
    grace: Duration,
}

impl Drain {
    pub(crate) fn new(grace: Duration) -> Self {
        Drain {
            left: None,
            sent: None,
            grace,
        }
    }

    /// The command's process exited: the grace starts.
    pub(crate) fn exited(&mut self) {
        if self.left.is_none() && self.sent.is_none() {
            self.left = Some(self.grace);
        }
    }

    /// Waits for the next event of `running`, sending the drain request when the grace is
    /// used up.
    pub(crate) async fn next(
        &mut self,
        running: &mut Running,
        display: &str,
    ) -> Result<Option<Event>> {
        loop {
            if let Some(sent) = self.sent {
                return match tokio::time::timeout_at(sent + DRAIN_REPLY, running.recv()).await {
                    Ok(event) => Ok(event),
                    Err(_) => {
                        running.kill(9);
                        Err(Error::protocol(format!(
                            "the agent did not finish `{}` within {DRAIN_REPLY:?} after its output was cut",
                            shorten(display, 80)
                        )))
                    }
                };
            }
            let Some(left) = self.left else {
                return Ok(running.recv().await);
            };
            let start = Instant::now();
            if let Ok(event) = tokio::time::timeout(left, running.recv()).await {
                self.left = Some(left.saturating_sub(start.elapsed()));
                return Ok(event);
            }
            let command = shorten(display, 80);
            tracing::debug!(%command, grace = ?self.grace, "a child holds the output pipes; cutting them");
            running.drain();
            self.left = None;
            self.sent = Some(Instant::now());
        }
    }
}

/// Checks the byte count the agent reported for one stream against what arrived.
pub(crate) fn check_count(
    display: &str,
    stream: Stream,
    reported: Option<u64>,
    received: u64,
) -> Result<()> {
    match reported {
        Some(expected) if expected != received => Err(Error::Incomplete {
            command: shorten(display, 80),
            stream: match stream {
                Stream::Stdout => "stdout",
                Stream::Stderr => "stderr",
            },
            expected,
            received,
        }),
        _ => Ok(()),
    }
}

pub(crate) async fn collect(
    running: &mut Running,
    display: &str,
    grace: Duration,
) -> Result<ExecOutput> {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut drain = Drain::new(grace);
    loop {
        match drain.next(running, display).await? {
            Some(Event::Data(Stream::Stdout, bytes)) => stdout.extend_from_slice(&bytes),
            Some(Event::Data(Stream::Stderr, bytes)) => stderr.extend_from_slice(&bytes),
            Some(Event::Exited) => drain.exited(),
            Some(Event::Exit {
                status,
                stdout: out_count,
                stderr: err_count,
            }) => {
                check_count(display, Stream::Stdout, out_count, stdout.len() as u64)?;
                check_count(display, Stream::Stderr, err_count, stderr.len() as u64)?;
                return Ok(ExecOutput::new(
                    ExitStatus::from_shell_status(status),
                    stdout,
                    stderr,
                ));
            }
            Some(Event::Failed(what)) => {
                return Err(Error::protocol(format!(
                    "the agent could not start `{}`: {what}",
                    shorten(display, 80)
                )));
            }
            Some(Event::Corrupt(line)) => {
                running.kill(9);
                return Err(Error::protocol(format!(
                    "corrupt frame for `{}`: {line}",
                    shorten(display, 80)
                )));
            }
            Some(Event::Ack | Event::Ready) => {}
            None => {
                return Err(Error::command_lost(format!(
                    "{} (while `{}` was running; it was not retried and may or may not have finished)",
                    running.lost_reason(),
                    shorten(display, 80)
                )));
            }
        }
    }
}

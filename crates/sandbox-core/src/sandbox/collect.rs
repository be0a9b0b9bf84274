//! Commands whose whole output is collected: [`Sandbox::exec`] and [`Sandbox::exec_with`].

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
                    &script,
                    request.stdin.as_deref(),
                    remote_timeout(request.timeout),
                )
                .await?;
            let collect = collect(&mut running, &display);
            let result = match request.timeout {
                None => collect.await,
                Some(timeout) => match tokio::time::timeout(timeout, collect).await {
                    Ok(result) => result,
                    Err(_) => {
                        running.kill(9).await;
                        return Err(Error::Timeout {
                            operation: shorten(&display, 80),
                            timeout,
                        });
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

pub(crate) async fn collect(running: &mut Running, display: &str) -> Result<ExecOutput> {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    loop {
        match running.recv().await {
            Some(Event::Data(Stream::Stdout, bytes)) => stdout.extend_from_slice(&bytes),
            Some(Event::Data(Stream::Stderr, bytes)) => stderr.extend_from_slice(&bytes),
            Some(Event::Exit(status)) => {
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
                running.kill(9).await;
                return Err(Error::protocol(format!(
                    "corrupt frame for `{}`: {line}",
                    shorten(display, 80)
                )));
            }
            Some(Event::Ack | Event::Ready) => {}
            None => {
                return Err(Error::lost(format!(
                    "{} (while `{}` was running; it was not retried and may or may not have finished)",
                    running.lost_reason(),
                    shorten(display, 80)
                )));
            }
        }
    }
}

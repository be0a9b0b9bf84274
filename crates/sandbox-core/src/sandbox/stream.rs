//! Commands whose output is streamed as it is produced: [`Sandbox::exec_stream`].

use std::time::Duration;

use tokio::time::Instant;

use super::{Sandbox, remote_timeout};
use crate::channel::{Event, Running};
use crate::error::{Error, Result, shorten};
use crate::exec::{ExecEvent, ExecRequest, ExecStream, ExitStatus};
use crate::protocol::{Mode, Stream};
use crate::script;

impl Sandbox {
    /// Runs a command and streams its output: chunks of stdout and stderr as they are
    /// produced, then the exit status.
    ///
    /// # Errors
    ///
    /// As [`Sandbox::exec_with`], for starting; later errors arrive in the stream.
    pub async fn exec_stream(&self, request: ExecRequest) -> Result<ExecStream> {
        self.run_stream(request, None).await
    }

    pub(crate) async fn run_stream(
        &self,
        request: ExecRequest,
        session: Option<&str>,
    ) -> Result<ExecStream> {
        let display = request.display();
        let script = script::compose(&request, session)?;
        let channel = self.channel().await?;
        let running = channel
            .start(
                Mode::Stream,
                &script,
                request.stdin.as_deref(),
                remote_timeout(request.timeout),
            )
            .await?;
        let state = StreamState {
            running: Some(running),
            deadline: request.timeout.map(|t| (Instant::now() + t, t)),
            display,
        };
        let stream = futures::stream::unfold(state, |mut state| async move {
            let event = state.next().await?;
            Some((event, state))
        });
        Ok(ExecStream {
            inner: Box::pin(stream),
        })
    }
}

struct StreamState {
    running: Option<Running>,
    deadline: Option<(Instant, Duration)>,
    display: String,
}

impl StreamState {
    async fn next(&mut self) -> Option<Result<ExecEvent>> {
        let running = self.running.as_mut()?;
        loop {
            let event = match self.deadline {
                None => running.recv().await,
                Some((deadline, timeout)) => {
                    match tokio::time::timeout_at(deadline, running.recv()).await {
                        Ok(event) => event,
                        Err(_) => {
                            running.kill(9).await;
                            self.running = None;
                            return Some(Err(Error::Timeout {
                                operation: shorten(&self.display, 80),
                                timeout,
                            }));
                        }
                    }
                }
            };
            let item = match event {
                Some(Event::Data(Stream::Stdout, bytes)) => {
                    return Some(Ok(ExecEvent::Stdout(bytes.into())));
                }
                Some(Event::Data(Stream::Stderr, bytes)) => {
                    return Some(Ok(ExecEvent::Stderr(bytes.into())));
                }
                Some(Event::Ack | Event::Ready) => continue,
                Some(Event::Exit(status)) => {
                    Ok(ExecEvent::Exit(ExitStatus::from_shell_status(status)))
                }
                Some(Event::Failed(what)) => Err(Error::protocol(format!(
                    "the agent could not start `{}`: {what}",
                    shorten(&self.display, 80)
                ))),
                Some(Event::Corrupt(line)) => {
                    running.kill(9).await;
                    Err(Error::protocol(format!("corrupt frame: {line}")))
                }
                None => Err(Error::lost(format!(
                    "{} (while `{}` was running; it was not retried)",
                    running.lost_reason(),
                    shorten(&self.display, 80)
                ))),
            };
            self.running = None;
            return Some(item);
        }
    }
}

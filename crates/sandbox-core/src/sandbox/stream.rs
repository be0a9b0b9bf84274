//! Commands whose output is streamed as it is produced: [`Sandbox::exec_stream`].

use std::time::Duration;

use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;

use super::collect::{Drain, check_count};
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
        self.run_stream(request, None, None).await
    }

    pub(crate) async fn run_stream(
        &self,
        request: ExecRequest,
        session: Option<&str>,
        turn: Option<OwnedMutexGuard<()>>,
    ) -> Result<ExecStream> {
        let display = request.display();
        let script = script::compose(&request, session)?;
        let channel = self.channel().await?;
        let running = channel
            .start(
                Mode::Stream,
                request.kill_children,
                &script,
                request.stdin.as_deref(),
                remote_timeout(request.timeout),
            )
            .await?;
        let state = StreamState {
            running: Some(running),
            deadline: request.timeout.map(|t| (Instant::now() + t, t)),
            drain: Drain::new(request.drain_grace),
            received: [0; 2],
            display,
            _turn: turn,
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
    drain: Drain,
    /// Bytes of stdout and stderr handed out, checked against the exit frame.
    received: [u64; 2],
    display: String,
    /// A session's turn, held until the stream ends.
    _turn: Option<OwnedMutexGuard<()>>,
}

impl StreamState {
    async fn next(&mut self) -> Option<Result<ExecEvent>> {
        let item = self.step().await?;
        if !matches!(item, Ok(ExecEvent::Stdout(_) | ExecEvent::Stderr(_))) {
            self.running = None;
            self._turn = None;
        }
        Some(item)
    }

    async fn step(&mut self) -> Option<Result<ExecEvent>> {
        let running = self.running.as_mut()?;
        loop {
            let next = self.drain.next(running, &self.display);
            let event = match self.deadline {
                None => next.await,
                Some((deadline, timeout)) => match tokio::time::timeout_at(deadline, next).await {
                    Ok(event) => event,
                    Err(_) => {
                        running.kill(9);
                        return Some(Err(Error::command_timeout(&self.display, timeout)));
                    }
                },
            };
            let event = match event {
                Ok(event) => event,
                Err(e) => return Some(Err(e)),
            };
            return Some(match event {
                Some(Event::Data(stream, bytes)) => {
                    running.consumed(stream);
                    self.received[usize::from(stream == Stream::Stderr)] += bytes.len() as u64;
                    Ok(match stream {
                        Stream::Stdout => ExecEvent::Stdout(bytes.into()),
                        Stream::Stderr => ExecEvent::Stderr(bytes.into()),
                    })
                }
                Some(Event::Ack | Event::Ready) => continue,
                Some(Event::Exited) => {
                    self.drain.exited();
                    continue;
                }
                Some(Event::Exit {
                    status,
                    stdout,
                    stderr,
                }) => check_count(&self.display, Stream::Stdout, stdout, self.received[0])
                    .and_then(|()| {
                        check_count(&self.display, Stream::Stderr, stderr, self.received[1])
                    })
                    .map(|()| ExecEvent::Exit(ExitStatus::from_shell_status(status))),
                Some(Event::Failed(what)) => Err(Error::protocol(format!(
                    "the agent could not start `{}`: {what}",
                    shorten(&self.display, 80)
                ))),
                Some(Event::Corrupt(line)) => {
                    running.kill(9);
                    Err(Error::protocol(format!("corrupt frame: {line}")))
                }
                None => Err(Error::command_lost(format!(
                    "{} (while `{}` was running; it was not retried)",
                    running.lost_reason(),
                    shorten(&self.display, 80)
                ))),
            });
        }
    }
}

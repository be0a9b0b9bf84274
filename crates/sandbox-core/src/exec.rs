//! What a command is ([`ExecRequest`]) and what comes back ([`ExecOutput`], [`ExecEvent`]).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;

use crate::error::{Error, Result, shorten};

/// How a command ended.
///
/// The remote shell reports a status as one number: `0..=128` and `193..=255` are exit codes;
/// `129..=192` mean "killed by signal `status - 128`", which is how POSIX shells report a
/// signal death. A program that calls `exit(137)` itself therefore reads as killed by signal 9:
/// the shell cannot tell the two apart, and neither can this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ExitStatus {
    /// The exit code, when the command exited.
    pub code: Option<i32>,
    /// The signal number, when the command was killed by a signal.
    pub signal: Option<i32>,
}

impl ExitStatus {
    /// An exit with this code.
    #[must_use]
    pub fn from_code(code: i32) -> Self {
        ExitStatus {
            code: Some(code),
            signal: None,
        }
    }

    /// A death by this signal.
    #[must_use]
    pub fn from_signal(signal: i32) -> Self {
        ExitStatus {
            code: None,
            signal: Some(signal),
        }
    }

    /// Reads a shell status number (`$?`): see the type's docs for the 128+N rule.
    #[must_use]
    pub fn from_shell_status(status: u8) -> Self {
        match status {
            129..=192 => ExitStatus::from_signal(i32::from(status) - 128),
            code => ExitStatus::from_code(i32::from(code)),
        }
    }

    /// Whether the command exited with code 0.
    #[must_use]
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exit code {code}"),
            (None, Some(signal)) => write!(f, "signal {signal}"),
            (None, None) => f.write_str("unknown status"),
        }
    }
}

/// What a finished command produced: its status and every byte of stdout and stderr.
///
/// Two outputs are equal when their status and bytes are.
#[derive(Clone)]
pub struct ExecOutput {
    /// How it ended.
    pub status: ExitStatus,
    /// Its standard output, byte for byte.
    pub stdout: Vec<u8>,
    /// Its standard error, byte for byte.
    pub stderr: Vec<u8>,
    pub(crate) command: String,
}

impl ExecOutput {
    /// Builds an output (for tests and fakes).
    #[must_use]
    pub fn new(status: ExitStatus, stdout: Vec<u8>, stderr: Vec<u8>) -> Self {
        ExecOutput {
            status,
            stdout,
            stderr,
            command: String::new(),
        }
    }

    /// Whether the command exited with code 0.
    #[must_use]
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code, when the command exited (not killed).
    #[must_use]
    pub fn code(&self) -> Option<i32> {
        self.status.code
    }

    /// Stdout as text (invalid UTF-8 replaced by U+FFFD).
    #[must_use]
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as text (invalid UTF-8 replaced by U+FFFD).
    #[must_use]
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// `Ok(self)` when the command succeeded.
    ///
    /// # Errors
    ///
    /// [`Error::CommandFailed`] with the status and the end of stderr otherwise.
    pub fn exit_ok(self) -> Result<Self> {
        if self.success() {
            return Ok(self);
        }
        let tail = if self.stderr.len() > 400 {
            &self.stderr[self.stderr.len() - 400..]
        } else {
            &self.stderr[..]
        };
        Err(Error::CommandFailed {
            command: shorten(&self.command, 80),
            status: self.status,
            stderr: String::from_utf8_lossy(tail).trim_end().to_owned(),
        })
    }
}

impl PartialEq for ExecOutput {
    fn eq(&self, other: &Self) -> bool {
        self.status == other.status && self.stdout == other.stdout && self.stderr == other.stderr
    }
}

impl Eq for ExecOutput {}

impl fmt::Debug for ExecOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecOutput")
            .field("status", &self.status)
            .field("stdout", &String::from_utf8_lossy(&self.stdout))
            .field("stderr", &String::from_utf8_lossy(&self.stderr))
            .finish()
    }
}

/// The program to run: a shell command line or an argv vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Program {
    Shell(String),
    Argv(Vec<String>),
}

/// A command to run in a sandbox: what, where, with which environment, input and deadline.
///
/// ```
/// use std::time::Duration;
/// use sandbox_core::ExecRequest;
///
/// let request = ExecRequest::argv(["python3", "-c", "print('it''s')"])
///     .cwd("/home/sandbox/app")
///     .env("GREETING", "hello world")
///     .stdin(b"input bytes".to_vec())
///     .timeout(Duration::from_secs(30));
/// assert_eq!(request.display(), "python3 -c print('it''s')");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ExecRequest {
    pub(crate) program: Program,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) cwd: Option<String>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) stdin: Option<Bytes>,
    pub(crate) kill_children: bool,
    pub(crate) drain_grace: Duration,
}

/// How long a command's output is still read after its process exited while a child it left
/// running holds stdout or stderr open. See [`ExecRequest::drain_grace`].
pub const DEFAULT_DRAIN_GRACE: Duration = Duration::from_millis(250);

impl ExecRequest {
    /// A shell command line, run by `sh -c` in the sandbox.
    pub fn shell(command: impl Into<String>) -> Self {
        Self::with_program(Program::Shell(command.into()))
    }

    /// A program and its arguments, run without a shell: no quoting needed.
    pub fn argv<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_program(Program::Argv(argv.into_iter().map(Into::into).collect()))
    }

    fn with_program(program: Program) -> Self {
        ExecRequest {
            program,
            env: Vec::new(),
            cwd: None,
            timeout: None,
            stdin: None,
            kill_children: false,
            drain_grace: DEFAULT_DRAIN_GRACE,
        }
    }

    /// Sets an environment variable for this command (the key must match
    /// `[A-Za-z_][A-Za-z0-9_]*`; checked when the command is sent).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs the command in this directory.
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Ends the command's whole process group after this long and fails with
    /// [`Error::Timeout`]. No timeout by default.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Kills what the command left running in its process group when it exits (`sleep 100 &`
    /// included). By default such children keep running in the sandbox.
    pub fn kill_children(mut self, kill: bool) -> Self {
        self.kill_children = kill;
        self
    }

    /// How long to keep reading output after the command's process exited, while a child it
    /// left running still holds stdout or stderr (default [`DEFAULT_DRAIN_GRACE`]). Then the
    /// result is complete: what the child writes later is not captured, and its writes to
    /// those pipes fail (`EPIPE`). Redirect a background child (`cmd >log 2>&1 &`) to keep
    /// its output.
    pub fn drain_grace(mut self, grace: Duration) -> Self {
        self.drain_grace = grace;
        self
    }

    /// Feeds these bytes to the command's standard input (empty input otherwise).
    pub fn stdin(mut self, input: impl Into<Bytes>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// The command as a human reads it (argv joined by spaces).
    #[must_use]
    pub fn display(&self) -> String {
        match &self.program {
            Program::Shell(command) => command.clone(),
            Program::Argv(argv) => argv.join(" "),
        }
    }

    /// The configured timeout.
    #[must_use]
    pub fn get_timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

/// One event of a streamed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    /// A chunk of standard output.
    Stdout(Bytes),
    /// A chunk of standard error.
    Stderr(Bytes),
    /// The command ended; always the last event.
    Exit(ExitStatus),
}

/// The events of a running command: output chunks as they are produced, then [`ExecEvent::Exit`].
///
/// A stream that ends without `Exit` yields an error first (lost console, timeout). Dropping the
/// stream before the exit kills the remote command's process group.
pub struct ExecStream {
    pub(crate) inner: Pin<Box<dyn Stream<Item = Result<ExecEvent>> + Send>>,
}

impl ExecStream {
    /// The next event; `None` after the exit event (or after an error).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: an event is never lost when the future is dropped.
    pub async fn next_event(&mut self) -> Option<Result<ExecEvent>> {
        futures::StreamExt::next(self).await
    }

    /// Reads the rest of the stream into an [`ExecOutput`].
    ///
    /// # Errors
    ///
    /// The stream's error, if it has one; [`Error::ConsoleLost`] if it ends without an exit.
    pub async fn collect_output(mut self) -> Result<ExecOutput> {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        while let Some(event) = self.next_event().await {
            match event? {
                ExecEvent::Stdout(chunk) => stdout.extend_from_slice(&chunk),
                ExecEvent::Stderr(chunk) => stderr.extend_from_slice(&chunk),
                ExecEvent::Exit(status) => return Ok(ExecOutput::new(status, stdout, stderr)),
            }
        }
        Err(Error::command_lost(
            "the command's stream ended without an exit status",
        ))
    }
}

impl Stream for ExecStream {
    type Item = Result<ExecEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl fmt::Debug for ExecStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecStream").finish_non_exhaustive()
    }
}

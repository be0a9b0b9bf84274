//! [`Doctl`]: the [`Platform`] that drives the `doctl` binary.
//!
//! Three parts: `runner` spawns doctl (binary lookup, token in the environment, timeouts,
//! killing, draining), `parse` reads what it prints into typed results and errors (pure
//! functions, tested on recorded doctl output), `console` runs `doctl apps console` in a
//! pseudo-terminal.

use std::path::PathBuf;
use std::time::Duration;

use appspec::AppSpec;
use async_trait::async_trait;
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

use crate::error::{Error, Result};
use crate::platform::{Console, ConsoleTarget, LogStream, LogsRequest, Platform};
use crate::token::Token;
use crate::types::{App, Deployment, Instance};

use self::console::{ConsoleTimeouts, DoctlConsole};
use self::parse::{RawOutput, Subject};
use self::runner::{GroupGuard, Runner, resolve_binary};

mod console;
#[cfg(test)]
mod fixture_tests;
pub(crate) mod parse;
mod runner;

/// Environment variable naming the doctl binary.
pub const DOCTL_ENV: &str = "DOCTL";
/// Environment variable holding the API token ([`Doctl`] hands it to doctl as
/// `DIGITALOCEAN_ACCESS_TOKEN`, the variable doctl reads).
pub const TOKEN_ENV: &str = "DIGITALOCEAN_TOKEN";

/// The longest log line kept whole; longer lines are cut there.
const MAX_LOG_LINE: usize = 64 * 1024;

/// How to run doctl.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DoctlConfig {
    /// The binary; `None` means `$DOCTL`, else `doctl` on `PATH`.
    pub binary: Option<PathBuf>,
    /// The API token; `None` means `$DIGITALOCEAN_TOKEN`, else whatever doctl finds itself
    /// (`DIGITALOCEAN_ACCESS_TOKEN`, or its config from `doctl auth init`).
    pub token: Option<Token>,
    /// doctl's `--context` (an authentication context from `doctl auth init --context`).
    pub context: Option<String>,
    /// doctl's `--api-url` (an emulator, for example `http://127.0.0.1:8080`).
    pub api_url: Option<String>,
    /// doctl's `--http-retry-max`; `None` keeps doctl's default (5 retries).
    pub http_retry_max: Option<u32>,
    /// Deadline of every non-interactive doctl call.
    pub command_timeout: Duration,
    /// How long a console's doctl may stay silent after starting before it is killed.
    pub console_connect_timeout: Duration,
    /// Deadline of one [`Console::send`] on a console (doctl not reading its terminal, the
    /// terminal's buffer full): past it the send is [`Error::Timeout`].
    pub console_send_timeout: Duration,
}

impl Default for DoctlConfig {
    fn default() -> Self {
        DoctlConfig {
            binary: None,
            token: None,
            context: None,
            api_url: None,
            http_retry_max: None,
            command_timeout: Duration::from_secs(60),
            console_connect_timeout: Duration::from_secs(30),
            console_send_timeout: Duration::from_secs(30),
        }
    }
}

impl DoctlConfig {
    /// The defaults: doctl from `$DOCTL` or `PATH`, token from `$DIGITALOCEAN_TOKEN`, 60 s per
    /// command, 30 s to connect a console, 30 s per console send.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses this doctl binary.
    #[must_use]
    pub fn with_binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.binary = Some(binary.into());
        self
    }

    /// Uses this token.
    #[must_use]
    pub fn with_token(mut self, token: Token) -> Self {
        self.token = Some(token);
        self
    }

    /// Passes `--context`.
    #[must_use]
    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context = Some(context.into());
        self
    }

    /// Passes `--api-url`.
    #[must_use]
    pub fn with_api_url(mut self, api_url: impl Into<String>) -> Self {
        self.api_url = Some(api_url.into());
        self
    }

    /// Passes `--http-retry-max`.
    #[must_use]
    pub fn with_http_retry_max(mut self, retries: u32) -> Self {
        self.http_retry_max = Some(retries);
        self
    }

    /// Sets the deadline of each non-interactive call.
    #[must_use]
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Sets how long a console may take to print its first output.
    #[must_use]
    pub fn with_console_connect_timeout(mut self, timeout: Duration) -> Self {
        self.console_connect_timeout = timeout;
        self
    }

    /// Sets the deadline of one send on a console.
    #[must_use]
    pub fn with_console_send_timeout(mut self, timeout: Duration) -> Self {
        self.console_send_timeout = timeout;
        self
    }
}

/// App Platform through the `doctl` binary.
///
/// Every call runs `doctl apps ... -o json` with the token in `DIGITALOCEAN_ACCESS_TOKEN`
/// (never in argv), a deadline, and the child killed on timeout or drop. Consoles run doctl in
/// a pseudo-terminal.
#[derive(Debug, Clone)]
pub struct Doctl {
    runner: Runner,
    command_timeout: Duration,
    console_connect_timeout: Duration,
    console_send_timeout: Duration,
}

impl Doctl {
    /// A driver with this configuration; unset binary and token come from `$DOCTL`, `PATH` and
    /// `$DIGITALOCEAN_TOKEN`, read now.
    ///
    /// Never fails: a missing binary is reported by the first call, as
    /// [`Error::NotInstalled`].
    #[must_use]
    pub fn new(config: DoctlConfig) -> Self {
        let binary = resolve_binary(
            config.binary.as_deref(),
            std::env::var_os(DOCTL_ENV),
            std::env::var_os("PATH"),
        );
        let token = resolve_token(config.token.clone(), std::env::var(TOKEN_ENV).ok());
        Self::with_parts(binary, token, &config)
    }

    /// A driver configured from the environment alone.
    #[must_use]
    pub fn from_env() -> Self {
        Self::new(DoctlConfig::default())
    }

    fn with_parts(binary: runner::Binary, token: Option<Token>, config: &DoctlConfig) -> Self {
        let mut global_args = Vec::new();
        if let Some(context) = &config.context {
            global_args.extend(["--context".to_owned(), context.clone()]);
        }
        if let Some(api_url) = &config.api_url {
            global_args.extend(["--api-url".to_owned(), api_url.clone()]);
        }
        if let Some(retries) = config.http_retry_max {
            global_args.extend(["--http-retry-max".to_owned(), retries.to_string()]);
        }
        Doctl {
            runner: Runner {
                binary,
                token,
                global_args,
            },
            command_timeout: config.command_timeout,
            console_connect_timeout: config.console_connect_timeout,
            console_send_timeout: config.console_send_timeout,
        }
    }

    /// The doctl binary this driver runs, when found.
    #[must_use]
    pub fn binary(&self) -> Option<&std::path::Path> {
        self.runner.binary().ok()
    }

    /// Runs `doctl <args> -o json` and returns its stdout, or the typed error it reported.
    async fn json(
        &self,
        args: &[&str],
        subject: &Subject,
        stdin: Option<Vec<u8>>,
    ) -> Result<String> {
        let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        args.extend(["-o".to_owned(), "json".to_owned()]);
        let output = self.runner.run(&args, stdin, self.command_timeout).await?;
        check(output, subject)
    }
}

/// The explicit token, else a non-blank `$DIGITALOCEAN_TOKEN`.
fn resolve_token(explicit: Option<Token>, env: Option<String>) -> Option<Token> {
    explicit.or_else(|| {
        env.filter(|t| !t.trim().is_empty())
            .map(|t| Token::new(t.trim()))
    })
}

fn check(output: RawOutput, subject: &Subject) -> Result<String> {
    if output.success() {
        Ok(output.stdout)
    } else {
        Err(parse::classify_failure(&output, subject))
    }
}

/// Rejects a positional argument doctl would misread: empty, or starting with `-` (a flag).
fn positional(name: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::InvalidArgument {
            name: name.to_owned(),
            reason: "must not be empty".to_owned(),
        });
    }
    if value.starts_with('-') {
        return Err(Error::InvalidArgument {
            name: name.to_owned(),
            reason: format!("`{value}` must not start with `-` (doctl would read it as a flag)"),
        });
    }
    if value.chars().any(char::is_control) {
        return Err(Error::InvalidArgument {
            name: name.to_owned(),
            reason: "must not contain control characters".to_owned(),
        });
    }
    Ok(())
}

fn app_subject(command: &str, app_id: &str) -> Subject {
    Subject::new(
        format!("doctl apps {command} {app_id}"),
        format!("app `{app_id}`"),
    )
}

#[async_trait]
impl Platform for Doctl {
    fn kind(&self) -> &'static str {
        "doctl"
    }

    #[tracing::instrument(skip_all, fields(name = %spec.name))]
    async fn create_app(&self, spec: &AppSpec) -> Result<App> {
        let body = serde_json::to_vec(spec)
            .map_err(|e| Error::other_with("could not encode the app spec as JSON", e))?;
        let subject = Subject::new("doctl apps create --spec -", format!("app `{}`", spec.name))
            .with_name(spec.name.clone());
        let stdout = self
            .json(&["apps", "create", "--spec", "-"], &subject, Some(body))
            .await?;
        parse::parse_app(&stdout, &subject.command)
    }

    #[tracing::instrument(skip_all, fields(app_id = %app_id))]
    async fn get_app(&self, app_id: &str) -> Result<App> {
        positional("app_id", app_id)?;
        let subject = app_subject("get", app_id);
        let stdout = self.json(&["apps", "get", app_id], &subject, None).await?;
        parse::parse_app(&stdout, &subject.command)
    }

    #[tracing::instrument(skip_all)]
    async fn list_apps(&self) -> Result<Vec<App>> {
        let subject = Subject::new("doctl apps list", "apps");
        let stdout = self.json(&["apps", "list"], &subject, None).await?;
        parse::parse_apps(&stdout, &subject.command)
    }

    #[tracing::instrument(skip_all, fields(app_id = %app_id))]
    async fn delete_app(&self, app_id: &str) -> Result<()> {
        positional("app_id", app_id)?;
        let subject = app_subject("delete", app_id);
        self.json(&["apps", "delete", app_id, "--force"], &subject, None)
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(app_id = %app_id))]
    async fn list_deployments(&self, app_id: &str) -> Result<Vec<Deployment>> {
        positional("app_id", app_id)?;
        let subject = app_subject("list-deployments", app_id);
        let stdout = self
            .json(&["apps", "list-deployments", app_id], &subject, None)
            .await?;
        parse::parse_deployments(&stdout, &subject.command)
    }

    #[tracing::instrument(skip_all, fields(app_id = %app_id))]
    async fn list_instances(&self, app_id: &str) -> Result<Vec<Instance>> {
        positional("app_id", app_id)?;
        let subject = app_subject("list-instances", app_id);
        let stdout = self
            .json(&["apps", "list-instances", app_id], &subject, None)
            .await?;
        parse::parse_instances(&stdout, &subject.command)
    }

    #[tracing::instrument(skip_all, fields(app_id = %target.app_id, component = %target.component))]
    async fn open_console(&self, target: &ConsoleTarget) -> Result<Box<dyn Console>> {
        positional("app_id", &target.app_id)?;
        positional("component", &target.component)?;
        if let Some(instance) = &target.instance {
            positional("instance", instance)?;
        }
        let timeouts = ConsoleTimeouts {
            connect: self.console_connect_timeout,
            send: self.console_send_timeout,
        };
        let console = DoctlConsole::open(&self.runner, target, timeouts).await?;
        Ok(Box::new(console))
    }

    #[tracing::instrument(skip_all, fields(app_id = %request.app_id))]
    async fn logs(&self, request: &LogsRequest) -> Result<LogStream> {
        self.spawn_logs(request).await
    }
}

impl Doctl {
    /// `doctl apps logs <id> [<component>] --type <kind> [--follow] [--tail N]`, line by line.
    async fn spawn_logs(&self, request: &LogsRequest) -> Result<LogStream> {
        positional("app_id", &request.app_id)?;
        if let Some(component) = &request.component {
            positional("component", component)?;
        }
        let mut args = vec!["apps".to_owned(), "logs".to_owned(), request.app_id.clone()];
        if let Some(component) = &request.component {
            args.push(component.clone());
        }
        args.extend(["--type".to_owned(), request.kind.as_doctl_str().to_owned()]);
        if request.follow {
            args.push("--follow".to_owned());
        }
        if let Some(tail) = request.tail {
            args.extend(["--tail".to_owned(), tail.to_string()]);
        }
        let display = Runner::display(&args);
        let subject = Subject::new(
            display.clone(),
            match &request.component {
                Some(c) => format!("component `{c}` of app `{}`", request.app_id),
                None => format!("app `{}`", request.app_id),
            },
        );
        let (mut child, group) = self.runner.spawn_piped(&args, false).await?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(Error::other("doctl's output pipes were not set up"));
        };
        // Drain stderr alongside, so doctl never blocks on a full pipe.
        let stderr_task = tokio::spawn(read_to_string_capped(stderr, 64 * 1024));
        let deadline =
            (!request.follow).then(|| tokio::time::Instant::now() + self.command_timeout);
        let state = LogState {
            lines: BufReader::new(stdout),
            child: Some(child),
            group: Some(group),
            stderr_task: Some(stderr_task),
            subject,
            deadline,
            timeout: self.command_timeout,
            done: false,
        };
        let stream = futures::stream::unfold(state, |mut state| async move {
            let item = state.next_line().await?;
            Some((item, state))
        });
        Ok(stream.boxed())
    }
}

struct LogState {
    lines: BufReader<tokio::process::ChildStdout>,
    child: Option<tokio::process::Child>,
    group: Option<GroupGuard>,
    stderr_task: Option<tokio::task::JoinHandle<String>>,
    subject: Subject,
    deadline: Option<tokio::time::Instant>,
    timeout: Duration,
    done: bool,
}

impl LogState {
    async fn next_line(&mut self) -> Option<Result<String>> {
        if self.done {
            return None;
        }
        let mut line = Vec::new();
        let mut limited = (&mut self.lines).take(MAX_LOG_LINE as u64);
        let read = limited.read_until(b'\n', &mut line);
        let result = match self.deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, read).await {
                Ok(result) => result,
                Err(_) => {
                    self.done = true;
                    self.stop();
                    return Some(Err(Error::Timeout {
                        operation: self.subject.command.clone(),
                        timeout: self.timeout,
                    }));
                }
            },
            None => read.await,
        };
        match result {
            Ok(0) => {
                self.done = true;
                self.finish().await.err().map(Err)
            }
            Ok(_) => {
                while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    line.pop();
                }
                Some(Ok(String::from_utf8_lossy(&line).into_owned()))
            }
            Err(e) => {
                self.done = true;
                self.stop();
                Some(Err(Error::other_with(
                    format!("reading `{}` failed", self.subject.command),
                    e,
                )))
            }
        }
    }

    fn stop(&mut self) {
        if let Some(group) = self.group.take() {
            group.kill();
        }
    }

    /// After the last line: doctl's exit status says whether the stream ended well.
    async fn finish(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let wait = tokio::time::timeout(self.timeout, child.wait()).await;
        let status = match wait {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => return Err(Error::other_with("waiting for doctl failed", e)),
            Err(_) => {
                self.stop();
                return Err(Error::Timeout {
                    operation: self.subject.command.clone(),
                    timeout: self.timeout,
                });
            }
        };
        if let Some(group) = self.group.take() {
            group.disarm();
        }
        let stderr = match self.stderr_task.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        };
        let output = RawOutput {
            code: status.code(),
            stdout: String::new(),
            stderr,
        };
        if output.success() {
            Ok(())
        } else {
            Err(parse::classify_failure(&output, &self.subject))
        }
    }
}

impl Drop for LogState {
    fn drop(&mut self) {
        self.stop();
        if let Some(task) = self.stderr_task.take() {
            task.abort();
        }
    }
}

async fn read_to_string_capped(mut reader: impl AsyncRead + Unpin, cap: usize) -> String {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_token_wins_over_the_environment() {
        let explicit = Some(Token::new("a"));
        assert_eq!(resolve_token(explicit.clone(), Some("b".into())), explicit);
        assert_eq!(
            resolve_token(None, Some(" b\n".into())),
            Some(Token::new("b"))
        );
        assert_eq!(resolve_token(None, Some("  ".into())), None);
        assert_eq!(resolve_token(None, None), None);
    }

    #[test]
    fn global_flags_follow_the_config() {
        let config = DoctlConfig::new()
            .with_binary("/bin/doctl")
            .with_context("ci")
            .with_api_url("http://127.0.0.1:1")
            .with_http_retry_max(2);
        let doctl = Doctl::new(config);
        assert_eq!(
            doctl.runner.global_args,
            [
                "--context",
                "ci",
                "--api-url",
                "http://127.0.0.1:1",
                "--http-retry-max",
                "2"
            ]
        );
        assert_eq!(doctl.binary(), Some(std::path::Path::new("/bin/doctl")));
        assert_eq!(doctl.kind(), "doctl");
    }
}

//! `exec` and `run`: a command's output streamed live, its exit code passed through.

use std::io::Read;
use std::time::Instant;

use anyhow::{Context, Result};
use sandbox_core::{ExecEvent, ExecOutput, ExecRequest, Sandbox};
use serde::Serialize;

use super::{Ctx, SandboxJson, create_sandbox, interrupt_signal, provider_note, since};
use crate::args::Limit;
use crate::args::{CommandOptions, ExecArgs, RunArgs};
use crate::error::{CliError, Exit};
use crate::settings::SpecSettings;

/// How long an interrupted command's kill request gets to reach the sandbox.
const KILL_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// The request a command line describes: one argument is a shell line, several an argv.
pub(crate) fn request(
    args: &CommandOptions,
    argv: &[String],
    env: &[(String, String)],
    stdin: Option<Vec<u8>>,
) -> Result<ExecRequest> {
    let mut request = match argv {
        [line] => ExecRequest::shell(line.clone()),
        argv => ExecRequest::argv(argv.iter().cloned()),
    };
    for (key, value) in env {
        request = request.env(key.clone(), value.clone());
    }
    if let Some(cwd) = &args.cwd {
        request = request.cwd(cwd.clone());
    }
    if let Some(Limit(Some(timeout))) = args.timeout {
        request = request.timeout(timeout);
    }
    if let Some(input) = stdin {
        request = request.stdin(input);
    }
    Ok(request)
}

/// Reads this process's whole standard input.
pub(crate) async fn read_stdin() -> Result<Vec<u8>> {
    tokio::task::spawn_blocking(|| {
        let mut input = Vec::new();
        std::io::stdin().lock().read_to_end(&mut input)?;
        Ok::<_, std::io::Error>(input)
    })
    .await
    .context("reading standard input")?
    .context("cannot read standard input")
}

/// What `exec --json` and `run --json` print about the command.
///
/// `stdout` and `stderr` are strings (invalid UTF-8 becomes U+FFFD, so a `jq .stdout` user
/// always gets text); when a stream is not valid UTF-8, `stdout_base64` / `stderr_base64` also
/// carry its exact bytes (standard base64 with padding), and only then.
#[derive(Debug, Serialize)]
pub(crate) struct OutputJson {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr_base64: Option<String>,
}

/// The exact bytes as base64, when they are not valid UTF-8.
fn base64_unless_utf8(bytes: &[u8]) -> Option<String> {
    use base64::Engine as _;
    std::str::from_utf8(bytes)
        .is_err()
        .then(|| base64::engine::general_purpose::STANDARD.encode(bytes))
}

impl OutputJson {
    fn new(output: &ExecOutput) -> Self {
        OutputJson {
            exit_code: output.status.code,
            signal: output.status.signal,
            stdout: output.stdout_text(),
            stderr: output.stderr_text(),
            stdout_base64: base64_unless_utf8(&output.stdout),
            stderr_base64: base64_unless_utf8(&output.stderr),
        }
    }
}

/// Streams a command's output to this process's stdout and stderr, byte for byte; returns the
/// remote exit. Ctrl-C kills the remote command (dropping the stream does) and exits 130.
async fn stream(ctx: &Ctx, sandbox: &Sandbox, request: ExecRequest) -> Result<Exit> {
    let what = request.display();
    let mut interrupt = interrupt_signal()?;
    let mut events = sandbox
        .exec_stream(request)
        .await
        .with_context(|| format!("cannot run `{what}` in sandbox `{}`", sandbox.name()))?;
    loop {
        let event = tokio::select! {
            event = events.next_event() => event,
            _ = interrupt.recv() => {
                // Dropping the stream sends the kill in a background task: give it a moment to
                // leave before this process exits.
                drop(events);
                tokio::time::sleep(KILL_GRACE).await;
                ctx.printer.info("interrupted: the remote command was killed");
                return Ok(Exit::Interrupted);
            }
        };
        let Some(event) = event else {
            anyhow::bail!("the output of `{what}` ended without an exit status");
        };
        let written = match event
            .with_context(|| format!("cannot finish `{what}` in sandbox `{}`", sandbox.name()))?
        {
            ExecEvent::Stdout(chunk) => ctx.printer.data_bytes(&chunk),
            ExecEvent::Stderr(chunk) => ctx.printer.err_bytes(&chunk),
            ExecEvent::Exit(status) => return Ok(Exit::remote(status)),
        };
        if let Err(e) = written {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                // The reader went away (`| head`): stop the command, as a local one would be.
                return Ok(Exit::Remote(141));
            }
            return Err(e).context("cannot write the command's output");
        }
    }
}

/// `sandbox exec`'s usage line, for errors clap cannot see.
pub(crate) const EXEC_USAGE: &str = "sandbox exec [OPTIONS] <NAME|--id ID> [--] <CMD>...";

pub(crate) async fn exec(ctx: &Ctx, args: ExecArgs) -> Result<Exit> {
    let (target, argv) = args.target.split(EXEC_USAGE).map_err(CliError::Usage)?;
    let stdin = if args.stdin {
        Some(read_stdin().await?)
    } else {
        None
    };
    let request = request(&args.command, &argv, &args.env, stdin)?;
    let sandbox = ctx.attach_target(&target).await?;
    tracing::debug!(sandbox = sandbox.name(), provider = %ctx.provider.label(), "exec");
    if args.json {
        let what = request.display();
        let output = sandbox
            .exec_with(request)
            .await
            .with_context(|| format!("cannot run `{what}` in sandbox `{}`", sandbox.name()))?;
        ctx.printer.json(&OutputJson::new(&output))?;
        return Ok(Exit::remote(output.status));
    }
    stream(ctx, &sandbox, request).await
}

#[derive(Debug, Serialize)]
struct RunJson {
    sandbox: SandboxJson,
    #[serde(flatten)]
    output: OutputJson,
    kept: bool,
    seconds: Timings,
}

#[derive(Debug, Serialize)]
struct Timings {
    create: f64,
    exec: f64,
    delete: Option<f64>,
}

pub(crate) async fn run(ctx: &Ctx, args: RunArgs) -> Result<Exit> {
    let spec = SpecSettings::resolve(&args.spec, &ctx.settings)?;
    let stdin = if args.stdin {
        Some(read_stdin().await?)
    } else {
        None
    };
    let request = request(&args.command, &args.argv, &spec.env, stdin)?;
    ctx.printer.info(format!(
        "Creating a {} sandbox ({})",
        spec.image.as_str(),
        provider_note(ctx)
    ));
    let start = Instant::now();
    let sandbox = create_sandbox(ctx, &spec, true, ctx.printer.progress()).await?;
    let create_secs = start.elapsed().as_secs_f64();
    // What `--json` reports about the sandbox, read while it exists.
    let sandbox_json = if args.json {
        let app = ctx.provider.platform().get_app(sandbox.id()).await.ok();
        Some(match app {
            Some(app) => SandboxJson::from_app(&app, ctx.provider.label()),
            None => SandboxJson {
                id: sandbox.id().to_owned(),
                name: sandbox.name().to_owned(),
                status: "UNKNOWN".to_owned(),
                reason: None,
                image: Some(spec.image.as_str().to_owned()),
                component_type: Some(spec.component_type.as_str().to_owned()),
                region: spec.region.clone(),
                url: None,
                created_at: None,
                expires_at: sandbox.expires_at().and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                }),
                provider: ctx.provider.label().to_owned(),
            },
        })
    } else {
        None
    };
    let exec_start = Instant::now();
    let what = request.display();
    let (result, json_output) = if args.json {
        match sandbox.exec_with(request).await {
            Ok(output) => (Ok(Exit::remote(output.status)), Some(output)),
            Err(e) => (
                Err(anyhow::Error::new(e).context(format!("cannot run `{what}`"))),
                None,
            ),
        }
    } else {
        (stream(ctx, &sandbox, request).await, None)
    };
    let exec_secs = exec_start.elapsed().as_secs_f64();
    let mut delete_secs = None;
    if args.keep {
        ctx.printer.info(format!(
            "kept sandbox `{}` ({}); delete it with `sandbox delete {}`",
            sandbox.name(),
            sandbox.id(),
            sandbox.name()
        ));
    } else {
        let delete_start = Instant::now();
        match sandbox.delete().await {
            Ok(()) => {
                delete_secs = Some(delete_start.elapsed().as_secs_f64());
                ctx.printer.info(format!(
                    "deleted sandbox `{}` (total {})",
                    sandbox.name(),
                    since(start)
                ));
            }
            Err(e) => ctx.printer.warn(format!(
                "could not delete sandbox `{}` ({}): {e}; run `sandbox delete --id {}`",
                sandbox.name(),
                sandbox.id(),
                sandbox.id()
            )),
        }
    }
    if let (Some(output), Some(sandbox_json)) = (json_output, sandbox_json) {
        ctx.printer.json(&RunJson {
            sandbox: sandbox_json,
            output: OutputJson::new(&output),
            kept: args.keep,
            seconds: Timings {
                create: create_secs,
                exec: exec_secs,
                delete: delete_secs,
            },
        })?;
    }
    result
}

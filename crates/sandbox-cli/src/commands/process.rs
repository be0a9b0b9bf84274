//! `ps`, `launch`, `kill` and `logs`.

use anyhow::{Context, Result};
use doctl_driver::{LogKind, LogsRequest};
use futures::StreamExt;
use sandbox_core::{ExecEvent, LaunchRequest, Signal};
use serde::Serialize;

use super::Ctx;
use super::files::split_target;
use crate::args::{KillArgs, LaunchArgs, LogTypeArg, LogsArgs, PsArgs};
use crate::error::{CliError, Exit};
use crate::printer::table;

#[derive(Debug, Serialize)]
struct ProcessJson {
    pid: u32,
    state: String,
    cpu: Option<f32>,
    mem: Option<f32>,
    command: String,
}

pub(crate) async fn ps(ctx: &Ctx, args: PsArgs) -> Result<Exit> {
    let sandbox = ctx.attach_target(&args.target).await?;
    let processes = sandbox
        .processes(args.filter.as_deref())
        .await
        .with_context(|| format!("cannot list the processes of `{}`", sandbox.name()))?;
    if args.json {
        let json: Vec<ProcessJson> = processes
            .iter()
            .map(|p| ProcessJson {
                pid: p.pid,
                state: p.state.clone(),
                cpu: p.cpu,
                mem: p.mem,
                command: p.command.clone(),
            })
            .collect();
        ctx.printer.json(&json)?;
        return Ok(Exit::Ok);
    }
    let percent = |v: Option<f32>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    let rows: Vec<Vec<String>> = processes
        .iter()
        .map(|p| {
            vec![
                p.pid.to_string(),
                p.state.clone(),
                percent(p.cpu),
                percent(p.mem),
                shorten(&p.command, 100),
            ]
        })
        .collect();
    ctx.printer
        .data(table(&["PID", "STATE", "%CPU", "%MEM", "COMMAND"], &rows));
    Ok(Exit::Ok)
}

/// `sandbox launch`'s usage line, for errors clap cannot see.
pub(crate) const LAUNCH_USAGE: &str = "sandbox launch [OPTIONS] <NAME|--id ID> [--] <CMD>...";

pub(crate) async fn launch(ctx: &Ctx, args: LaunchArgs) -> Result<Exit> {
    let (target, argv) = args.target.split(LAUNCH_USAGE).map_err(CliError::Usage)?;
    let sandbox = ctx.attach_target(&target).await?;
    let command = argv.join(" ");
    let mut request = LaunchRequest::new(command.clone());
    if let Some(cwd) = &args.cwd {
        request = request.cwd(cwd.clone());
    }
    for (key, value) in &args.env {
        request = request.env(key.clone(), value.clone());
    }
    let handle = sandbox
        .launch(request)
        .await
        .with_context(|| format!("cannot launch `{command}` in `{}`", sandbox.name()))?;
    if args.json {
        ctx.printer.json(&serde_json::json!({
            "pid": handle.pid(),
            "log_path": handle.log_path(),
        }))?;
    } else {
        ctx.printer.data(handle.pid().to_string());
        ctx.printer.info(format!(
            "launched `{command}` in `{}`; output: `sandbox logs {} --pid {}`",
            sandbox.name(),
            sandbox.name(),
            handle.pid()
        ));
    }
    Ok(Exit::Ok)
}

/// The first `max` characters of a command line, with `...` when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(3)).collect();
    cut.push_str("...");
    cut
}

/// Parses `TERM`, `SIGTERM`, `term` or `15`.
pub(crate) fn parse_signal(text: &str) -> Result<Signal> {
    if let Ok(n) = text.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(Signal::Other(n));
        }
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    Ok(match name {
        "HUP" => Signal::Hup,
        "INT" => Signal::Int,
        "QUIT" => Signal::Quit,
        "KILL" => Signal::Kill,
        "USR1" => Signal::Usr1,
        "USR2" => Signal::Usr2,
        "TERM" => Signal::Term,
        "CONT" => Signal::Cont,
        "STOP" => Signal::Stop,
        _ => {
            return Err(CliError::Usage(format!(
                "`--signal {text}`: give a number from 1 to 64 or one of HUP, INT, QUIT, KILL, USR1, USR2, TERM, CONT, STOP"
            ))
            .into());
        }
    })
}

pub(crate) async fn kill(ctx: &Ctx, args: KillArgs) -> Result<Exit> {
    let usage = "sandbox kill <NAME|--id ID> <PID|--all>";
    let (min, max) = if args.all { (0, 0) } else { (1, 1) };
    let (name, rest) = split_target(&args.target, &args.words(), min, max, usage)?;
    let signal = parse_signal(&args.signal)?;
    let sandbox = ctx
        .attach(
            name.as_deref(),
            args.target.id.as_deref(),
            args.target.component.as_deref(),
        )
        .await?;
    if args.all {
        let pids = sandbox
            .kill_all()
            .await
            .with_context(|| format!("cannot end the processes of `{}`", sandbox.name()))?;
        if args.json {
            ctx.printer.json(&serde_json::json!({ "killed": pids }))?;
        } else {
            for pid in &pids {
                ctx.printer.data(pid.to_string());
            }
            ctx.printer
                .info(format!("ended {} launched process(es)", pids.len()));
        }
        return Ok(Exit::Ok);
    }
    let pid: u32 = rest[0]
        .parse()
        .map_err(|_| CliError::Usage(format!("`{}` is not a pid (a positive number)", rest[0])))?;
    match sandbox.kill(pid, signal).await {
        Ok(()) => {}
        Err(sandbox_core::Error::NotFound { .. }) => {
            return Err(CliError::NotFound {
                what: format!("a running process {pid} in `{}`", sandbox.name()),
                candidates: Vec::new(),
                note: Some("it has ended, or never ran; `sandbox ps` lists what runs".to_owned()),
            }
            .into());
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "cannot signal process {pid} in `{}`",
                sandbox.name()
            )));
        }
    }
    if args.json {
        ctx.printer
            .json(&serde_json::json!({ "killed": [pid], "signal": signal.number() }))?;
    } else {
        ctx.printer.info(format!("sent {signal} to process {pid}"));
    }
    Ok(Exit::Ok)
}

pub(crate) async fn logs(ctx: &Ctx, args: LogsArgs) -> Result<Exit> {
    let sandbox = ctx.attach_target(&args.target).await?;
    if let Some(pid) = args.pid {
        let tail = args.tail.map(|n| n as usize);
        if args.follow {
            return follow_process(ctx, &sandbox, pid, tail, args.json).await;
        }
        let log = sandbox
            .process_log(pid, tail)
            .await
            .with_context(|| format!("cannot read the output of process {pid}"))?;
        if args.json {
            ctx.printer.json(&serde_json::json!({
                "pid": pid,
                "output": String::from_utf8_lossy(&log),
            }))?;
        } else {
            ctx.printer
                .data_bytes(&log)
                .context("cannot write to standard output")?;
        }
        return Ok(Exit::Ok);
    }
    let kind = match args.kind {
        LogTypeArg::Run => LogKind::Run,
        LogTypeArg::Build => LogKind::Build,
        LogTypeArg::Deploy => LogKind::Deploy,
    };
    let mut request = LogsRequest::new(sandbox.id(), sandbox.component())
        .with_kind(kind)
        .with_follow(args.follow);
    if let Some(tail) = args.tail {
        request = request.with_tail(tail);
    }
    let mut stream = sandbox
        .platform()
        .logs(&request)
        .await
        .with_context(|| format!("cannot read the logs of `{}`", sandbox.name()))?;
    let mut interrupt = super::interrupt_signal()?;
    loop {
        tokio::select! {
            line = stream.next() => match line {
                Some(line) => {
                    let line = line.context("the log stream failed")?;
                    if args.json {
                        ctx.printer.data(serde_json::json!({ "line": line }).to_string());
                    } else {
                        ctx.printer.data(line);
                    }
                }
                None => break,
            },
            _ = interrupt.recv() => break,
        }
    }
    Ok(Exit::Ok)
}

/// Prints a launched process's output as it comes, until the process ends or Ctrl-C.
async fn follow_process(
    ctx: &Ctx,
    sandbox: &sandbox_core::Sandbox,
    pid: u32,
    tail: Option<usize>,
    json: bool,
) -> Result<Exit> {
    let mut stream = sandbox
        .follow_process_log(pid, tail)
        .await
        .with_context(|| format!("cannot follow the output of process {pid}"))?;
    let mut interrupt = super::interrupt_signal()?;
    loop {
        let event = tokio::select! {
            event = stream.next_event() => event,
            _ = interrupt.recv() => return Ok(Exit::Ok),
        };
        let event = event
            .ok_or_else(|| anyhow::anyhow!("the output of process {pid} ended without a status"))?
            .with_context(|| format!("cannot follow the output of process {pid}"))?;
        match event {
            ExecEvent::Stdout(chunk) if json => ctx.printer.data(
                serde_json::json!({ "pid": pid, "output": String::from_utf8_lossy(&chunk) })
                    .to_string(),
            ),
            ExecEvent::Stdout(chunk) => ctx
                .printer
                .data_bytes(&chunk)
                .context("cannot write to standard output")?,
            ExecEvent::Stderr(chunk) => tracing::debug!(
                stderr = %String::from_utf8_lossy(&chunk),
                "follow"
            ),
            ExecEvent::Exit(status) if status.code == Some(3) => {
                return Err(CliError::NotFound {
                    what: format!(
                        "the output of launched process {pid} in `{}`",
                        sandbox.name()
                    ),
                    candidates: Vec::new(),
                    note: Some("`sandbox ps` lists what runs".to_owned()),
                }
                .into());
            }
            ExecEvent::Exit(_) => return Ok(Exit::Ok),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_or_number() {
        assert_eq!(parse_signal("TERM").unwrap(), Signal::Term);
        assert_eq!(parse_signal("sigkill").unwrap(), Signal::Kill);
        assert_eq!(parse_signal("9").unwrap().number(), 9);
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("BOOM").is_err());
    }
}

//! `doctl-standin`: the subset of doctl that the `Doctl` driver uses, byte for byte.
//!
//! `doctl [global flags] apps create|get|list|delete|list-deployments|get-deployment|
//! list-instances|logs|console …`, talking to an App Platform API (the emulator, usually) with
//! doctl's requests, output, error messages, retries and exit codes. Global flags:
//! `-t/--access-token` (or `DIGITALOCEAN_ACCESS_TOKEN`), `-u/--api-url` (or
//! `DIGITALOCEAN_API_URL`), `--context`, `-c/--config`, `--http-retry-max`, `-o/--output`.
//!
//! Differences from doctl: usage texts of commands other than `apps get` are shorter; the
//! poll interval of `apps create --wait` (10 s in doctl) can be shortened with
//! `DOCTL_STANDIN_POLL_MS` for tests; where doctl hangs for ever (a console whose WebSocket
//! dial fails) the stand-in hangs for `DOCTL_STANDIN_HANG_SECS` (default 300), then exits 1.
//!
//! The modules follow the binary's jobs: `args` (flag parsing) and `usage` (cobra's usage
//! texts); `apps` (the `doctl apps` commands and their dispatch), `deployments` (waiting for
//! one and godo's rendering of its progress) and `logs`; `output` (tables and JSON as doctl
//! prints them); `http` (godo's requests, errors and retries) and `websocket` (frames and close
//! texts as doctl reads them); `console` (the interactive session) and `terminal` (raw mode
//! and window size). This file owns the failure type, the entry point and exit codes.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use appplatform_emulator::godo::encode_compact;
use serde_json::json;

use crate::apps::run;
use crate::args::{Args, parse_args, subcommand};
use crate::http::Client;
use crate::usage::usage_text;

mod apps;
mod args;
mod console;
mod deployments;
mod http;
mod logs;
mod output;
mod terminal;
mod usage;
mod websocket;

/// How a command failed.
enum Failure {
    /// `Error: <msg>` (or the JSON error document), exit 1.
    Error(String),
    /// A usage error: message on stdout and stderr, exit 255.
    Usage(String),
}

type CmdResult = Result<(), Failure>;

fn err<T>(msg: impl Into<String>) -> Result<T, Failure> {
    Err(Failure::Error(msg.into()))
}

struct Ctx {
    args: Args,
    json: bool,
    client: Client,
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let json_errors_env = std::env::var("DIGITALOCEAN_OUTPUT").is_ok_and(|v| v == "json");
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(failure) => return report(failure, json_errors_env),
    };
    let json_out = args.flag("output") == Some("json");
    let json_errors = json_out || (args.flag("output").is_none() && json_errors_env);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(Failure::Error(format!("cannot start: {e}")), json_errors),
    };
    let result = runtime.block_on(run(args, json_out));
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => report(failure, json_errors),
    };
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

fn report(failure: Failure, json_errors: bool) -> ExitCode {
    match failure {
        Failure::Error(msg) => {
            if json_errors {
                let doc = json!({"errors": [{"detail": msg}]});
                println!("{}", encode_compact(&doc));
            } else {
                let label =
                    if std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
                        "\x1b[31mError\x1b[0m"
                    } else {
                        "Error"
                    };
                eprintln!("{label}: {msg}");
            }
            ExitCode::from(1)
        }
        Failure::Usage(msg) => {
            println!("{msg}");
            let argv: Vec<String> = std::env::args().skip(1).collect();
            eprint!("Error: {msg}\n{}", usage_text(&subcommand(&argv)));
            ExitCode::from(255)
        }
    }
}

//! The `sandbox` command: create sandboxes, run code in them, move files, manage processes,
//! on this machine (the `local` provider, the default) or on DigitalOcean App Platform.
//!
//! This crate is the top of the workspace: it parses the command line ([`args`]), resolves
//! settings (command line, then environment, then the configuration file), hands them to
//! `sandbox_core::ProviderBuilder` (local, or DigitalOcean through the API or doctl), calls
//! `sandbox-core` and `sandbox-fs`, and renders tables, progress or JSON. The binary's `main` only calls
//! [`main`], so tests can reach everything here.
//!
//! Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 auth, 5 timeout; `exec` and `run` exit
//! with the remote command's code (128 + N when a signal N killed it). See `docs/cli.md`.
//!
//! # Example
//!
//! ```
//! let code = sandbox_cli::main(["sandbox", "--version"]);
//! assert_eq!(code, std::process::ExitCode::SUCCESS);
//! ```
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

pub mod args;
mod commands;
mod error;
mod printer;
mod provider;
mod settings;

use crate::error::{Exit, exit_for};
use crate::printer::Printer;
use crate::settings::GlobalSettings;

/// Runs the `sandbox` command with these arguments (the first is the program name) and
/// returns its exit code.
pub fn main<I, T>(argv: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match args::Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if let args::Command::Completions(args) = &cli.command {
        return completions(args.shell);
    }
    init_tracing(cli.global.verbose, cli.global.quiet);
    let printer = Printer::new(cli.global.quiet, false);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            printer.error(&anyhow::Error::new(e).context("cannot start the async runtime"));
            return ExitCode::from(Exit::Error.code());
        }
    };
    let result = runtime.block_on(async {
        let env = |key: &str| std::env::var(key).ok();
        let settings = GlobalSettings::load(&cli.global, &env)?;
        let printer = Printer::new(cli.global.quiet, settings.progress);
        commands::dispatch(cli.command, settings, printer).await
    });
    // Consoles and child processes are dropped with the runtime; do not wait on stragglers.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            printer.error(&e);
            ExitCode::from(exit_for(&e).code())
        }
    }
}

/// Writes the completion script for `shell` to standard output.
fn completions(shell: clap_complete::Shell) -> ExitCode {
    use clap::CommandFactory;
    use std::io::Write as _;
    let mut command = args::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "sandbox", &mut script);
    match std::io::stdout().lock().write_all(&script) {
        // A reader that stops early (`| head`) is not an error of this tool.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Printer::new(false, false)
                .error(&anyhow::Error::new(e).context("cannot write the script"));
            ExitCode::from(Exit::Error.code())
        }
        _ => ExitCode::SUCCESS,
    }
}

/// Logs go to stderr: `-v` debug for this workspace's crates, `-vv` trace, `-vvv` everything;
/// `RUST_LOG` overrides; warnings (such as each retry of an API request) by default, errors
/// only with `-q`. Colours only when stderr is a terminal.
fn init_tracing(verbose: u8, quiet: bool) {
    let default = match verbose {
        0 if quiet => "error",
        0 => "warn",
        1 => {
            "warn,sandbox_cli=debug,sandbox_core=debug,sandbox_fs=debug,doctl_driver=debug,sandbox_local=debug"
        }
        2 => {
            "warn,sandbox_cli=trace,sandbox_core=trace,sandbox_fs=trace,doctl_driver=trace,sandbox_local=trace"
        }
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

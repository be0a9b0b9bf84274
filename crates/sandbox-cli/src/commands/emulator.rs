//! `sandbox emulator`: the App Platform API on localhost, over local sandboxes.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use appplatform_emulator::Emulator;
use sandbox_core::{Provider, ProviderKind};
use tokio::signal::unix::{Signal, SignalKind};

use crate::args::EmulatorArgs;
use crate::error::{CliError, Exit};
use crate::printer::Printer;
use crate::settings::GlobalSettings;

pub(crate) async fn emulator(
    args: EmulatorArgs,
    settings: &GlobalSettings,
    printer: Printer,
) -> Result<Exit> {
    if !(args.pace.is_finite() && args.pace >= 0.0 && args.pace < 86_400.0) {
        return Err(CliError::Usage(format!(
            "`--pace {}`: give a number of seconds from 0 to 86400",
            args.pace
        ))
        .into());
    }
    // The emulator serves local sandboxes, whatever provider the settings name.
    let mut local = Provider::builder().kind(ProviderKind::Local);
    if let Some(dir) = &settings.local_dir {
        local = local.local_dir(dir.clone());
    }
    let backend = local.build()?.into_platform();
    let mut builder = Emulator::builder()
        .backend(backend)
        .pace(Duration::from_secs_f64(args.pace))
        .bind(SocketAddr::new(args.host, args.port));
    if let Some(token) = &args.token {
        builder = builder.token(token.clone());
    }
    let emulator = builder.start().await.context("cannot start the emulator")?;
    if args.json {
        printer.json(&serde_json::json!({
            "url": emulator.url(),
            "token": emulator.token(),
        }))?;
    } else {
        printer.data(format!("url: {}", emulator.url()));
        printer.data(format!("token: {}", emulator.token()));
    }
    // Listen before the banner: a caller that reads it and then signals must find the handler
    // in place, or the default action would kill the process without its clean-up.
    let stop = stop_signals()?;
    printer.info(format!(
        "App Platform emulator listening on {} (Ctrl-C stops it). Try:\n  \
         DIGITALOCEAN_TOKEN=<token> sandbox --provider digitalocean --api-url {} run --image python -- python3 -V",
        emulator.url(),
        emulator.url()
    ));
    wait_for_stop(stop).await;
    printer.info("stopping the emulator");
    emulator.shutdown();
    Ok(Exit::Ok)
}

/// Ctrl-C (SIGINT) and SIGTERM, listened for from now on.
fn stop_signals() -> Result<(Signal, Signal)> {
    let int = super::interrupt_signal()?;
    let term = tokio::signal::unix::signal(SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    Ok((int, term))
}

/// Waits for Ctrl-C or SIGTERM.
async fn wait_for_stop((mut int, mut term): (Signal, Signal)) {
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

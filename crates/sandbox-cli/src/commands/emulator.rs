//! `sandbox emulator`: the App Platform API on localhost, over local sandboxes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use appplatform_emulator::Emulator;
use sandbox_core::{Provider, ProviderKind};
use tokio::signal::unix::{Signal, SignalKind};

use crate::args::EmulatorArgs;
use crate::error::{CliError, Exit};
use crate::printer::Printer;

pub(crate) async fn emulator(args: EmulatorArgs, printer: Printer) -> Result<Exit> {
    if !(args.pace.is_finite() && args.pace >= 0.0 && args.pace < 86_400.0) {
        return Err(CliError::Usage(format!(
            "`--pace {}`: give a number of seconds from 0 to 86400",
            args.pace
        ))
        .into());
    }
    // The emulator serves local sandboxes, whatever provider the settings name, from a state
    // folder of its own: its apps are App Platform's, not the local provider's.
    let dir = emulator_dir(args.state_dir.as_deref(), &|key| std::env::var_os(key));
    let backend = Provider::builder()
        .kind(ProviderKind::Local)
        .local_dir(dir.clone())
        .build()?
        .into_platform();
    tracing::debug!(dir = %dir.display(), "emulator state");
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

/// The emulator's state folder: `--state-dir`, else `SANDBOX_EMULATOR_DIR`, else
/// `emulator` beside the local provider's default folder (under `$XDG_DATA_HOME`, else
/// `~/.local/share`, else `/tmp/do-app-sandbox-<uid>`). `SANDBOX_LOCAL_DIR` does not move it.
fn emulator_dir(flag: Option<&Path>, env: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> PathBuf {
    let non_empty = |key: &str| env(key).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = flag {
        return dir.to_path_buf();
    }
    if let Some(dir) = non_empty("SANDBOX_EMULATOR_DIR") {
        return dir;
    }
    let local = sandbox_local::LocalConfig::from_lookup(|key| {
        if key == "SANDBOX_LOCAL_DIR" {
            None
        } else {
            non_empty(key)
        }
    });
    local
        .state_dir
        .parent()
        .map_or_else(|| PathBuf::from("emulator"), |p| p.join("emulator"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emulator_keeps_its_sandboxes_apart_from_the_local_provider() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |key: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        let lookup = env(&[("XDG_DATA_HOME", "/d"), ("SANDBOX_LOCAL_DIR", "/l")]);
        assert_eq!(
            emulator_dir(None, &lookup),
            PathBuf::from("/d/do-app-sandbox/emulator")
        );
        let lookup = env(&[("HOME", "/h"), ("SANDBOX_EMULATOR_DIR", "/e")]);
        assert_eq!(emulator_dir(None, &lookup), PathBuf::from("/e"));
        assert_eq!(
            emulator_dir(Some(Path::new("/f")), &lookup),
            PathBuf::from("/f")
        );
        let lookup = env(&[("HOME", "/h")]);
        assert_eq!(
            emulator_dir(None, &lookup),
            PathBuf::from("/h/.local/share/do-app-sandbox/emulator")
        );
    }
}

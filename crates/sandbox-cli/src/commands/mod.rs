//! One module per command; [`dispatch`] routes to them.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use doctl_driver::{App, AppStatus};
use sandbox_core::{Sandbox, SandboxInfo};
use serde::Serialize;

use crate::args::Command;
use crate::error::{CliError, Exit};
use crate::printer::{Printer, Progress, format_elapsed};
use crate::provider::Provider;
use crate::settings::{GlobalSettings, ProviderKind, SpecSettings};

mod emulator;
mod exec;
mod files;
mod lifecycle;
mod process;

/// Runs a parsed command.
pub(crate) async fn dispatch(
    command: Command,
    settings: GlobalSettings,
    printer: Printer,
) -> Result<Exit> {
    if let Command::Emulator(args) = command {
        return emulator::emulator(args, &settings, printer).await;
    }
    let provider = Provider::open(&settings)?;
    let ctx = Ctx {
        provider,
        settings,
        printer,
    };
    match command {
        Command::Create(args) => lifecycle::create(&ctx, args).await,
        Command::List(args) => lifecycle::list(&ctx, args).await,
        Command::Delete(args) => lifecycle::delete(&ctx, args).await,
        Command::Status(args) => lifecycle::status(&ctx, args).await,
        Command::Url(args) => lifecycle::url(&ctx, args).await,
        Command::Exec(args) => exec::exec(&ctx, args).await,
        Command::Run(args) => exec::run(&ctx, args).await,
        Command::Files(args) => files::files(&ctx, args).await,
        Command::Ps(args) => process::ps(&ctx, args).await,
        Command::Launch(args) => process::launch(&ctx, args).await,
        Command::Kill(args) => process::kill(&ctx, args).await,
        Command::Logs(args) => process::logs(&ctx, args).await,
        Command::Emulator(_) => Ok(Exit::Usage),
    }
}

/// What every command works with.
pub(crate) struct Ctx {
    pub provider: Provider,
    pub settings: GlobalSettings,
    pub printer: Printer,
}

/// A sandbox as `list`, `create` and `status` print it in JSON.
#[derive(Debug, Serialize)]
pub(crate) struct SandboxJson {
    pub id: String,
    pub name: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component_type: Option<String>,
    pub region: Option<String>,
    pub url: Option<String>,
    pub created_at: Option<String>,
    pub provider: String,
}

impl SandboxJson {
    pub(crate) fn from_info(info: &SandboxInfo, provider: &str) -> Self {
        let mut json = Self::from_app(&info.app, provider);
        json.image = Some(info.image.as_str().to_owned());
        json.component_type = Some(info.component_type.as_str().to_owned());
        json.region.clone_from(&info.region);
        json.url.clone_from(&info.url);
        json
    }

    pub(crate) fn from_app(app: &App, provider: &str) -> Self {
        let status = app.status();
        let reason = match &status {
            AppStatus::Failed { reason, .. } => reason.clone(),
            _ => None,
        };
        let marker = appspec::sandbox_marker(&app.spec);
        SandboxJson {
            id: app.id.clone(),
            name: app.name().to_owned(),
            status: status.to_string(),
            reason,
            image: marker.as_ref().map(|m| m.image.as_str().to_owned()),
            component_type: marker.as_ref().map(|m| m.component.as_str().to_owned()),
            region: app.region.clone().or_else(|| app.spec.region.clone()),
            url: app.live_url.clone(),
            created_at: app.created_at.and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            }),
            provider: provider.to_owned(),
        }
    }
}

/// How long ago, in one short unit: `12s`, `5m`, `3h`, `2d`.
pub(crate) fn age(created: Option<time::OffsetDateTime>) -> String {
    let Some(created) = created else {
        return "-".to_owned();
    };
    let secs = (time::OffsetDateTime::now_utc() - created)
        .whole_seconds()
        .max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

/// Creates a sandbox, showing its deployment phase by phase; deletes it again when it does not
/// become ready.
pub(crate) async fn create_sandbox(
    ctx: &Ctx,
    spec: &SpecSettings,
    wait: bool,
    progress: &mut Progress,
) -> Result<Sandbox> {
    let mut builder = Sandbox::builder()
        .platform(ctx.provider.platform.clone())
        .image(spec.image)
        .component_type(spec.component_type)
        .wait_ready(false);
    if let Some(name) = &spec.name {
        builder = builder.name(name.clone());
    }
    if let Some(region) = &spec.region {
        builder = builder.region(region.clone());
    }
    if let Some(size) = &spec.instance_size {
        builder = builder.instance_size(size.clone());
    }
    for (key, value) in &spec.env {
        builder = builder.env(key.clone(), value.clone());
    }
    progress.update("creating the app");
    let sandbox = match builder.create().await {
        Ok(sandbox) => sandbox,
        Err(e) => {
            progress.clear();
            return Err(e).context("cannot create the sandbox");
        }
    };
    if !wait {
        progress.finish("app created; not waiting for its deployment");
        return Ok(sandbox);
    }
    // Polls start fast and slow down to the cap (App Platform's API is rate limited).
    let max_poll = match ctx.settings.provider {
        ProviderKind::Local => Duration::from_millis(200),
        ProviderKind::DigitalOcean => Duration::from_secs(2),
    };
    // Ctrl-C while waiting deletes the half-made sandbox, as a failure to get ready does.
    let mut interrupt = interrupt_signal()?;
    let waited = tokio::select! {
        waited = wait_with_progress(&sandbox, spec.ready_timeout, max_poll, progress) => {
            waited.map_err(anyhow::Error::from)
        }
        _ = interrupt.recv() => Err(CliError::Interrupted.into()),
    };
    match waited {
        Ok(()) => {
            progress.finish("ready");
            Ok(sandbox)
        }
        Err(e) => {
            progress.clear();
            if let Err(delete_error) = sandbox.delete().await {
                ctx.printer.warn(format!(
                    "could not delete sandbox `{}` ({}) that did not become ready: {delete_error}",
                    sandbox.name(),
                    sandbox.id()
                ));
            } else {
                ctx.printer.info(format!(
                    "deleted sandbox `{}` ({}), which did not become ready",
                    sandbox.name(),
                    sandbox.id()
                ));
            }
            Err(e).context(format!("sandbox `{}` did not become ready", sandbox.name()))
        }
    }
}

async fn wait_with_progress(
    sandbox: &Sandbox,
    timeout: Duration,
    max_poll: Duration,
    progress: &mut Progress,
) -> Result<(), sandbox_core::Error> {
    let start = Instant::now();
    let mut poll = Duration::from_millis(100).min(max_poll);
    loop {
        let status = sandbox.status().await?;
        let state = match status {
            AppStatus::Active => return Ok(()),
            AppStatus::Failed { phase, reason } => {
                return Err(sandbox_core::Error::DeploymentFailed {
                    app_id: sandbox.id().to_owned(),
                    phase,
                    reason,
                });
            }
            AppStatus::Deploying {
                phase,
                progress: Some(steps),
            } if steps.total_steps > 0 => format!(
                "{phase} ({}/{} steps)",
                steps.success_steps, steps.total_steps
            ),
            AppStatus::Deploying { phase, .. } => phase.to_string(),
            _ => "waiting for the first deployment".to_owned(),
        };
        if start.elapsed() >= timeout {
            return Err(sandbox_core::Error::NotReady {
                app_id: sandbox.id().to_owned(),
                status: state,
                waited: start.elapsed(),
            });
        }
        let next = Instant::now() + poll;
        loop {
            progress.update(&state);
            let now = Instant::now();
            if now >= next {
                break;
            }
            tokio::time::sleep(progress.tick().min(next - now)).await;
        }
        poll = (poll * 2).min(max_poll);
    }
}

/// Listens for Ctrl-C (SIGINT) from now on: a signal that arrives before the first `recv` is
/// kept, not lost.
pub(crate) fn interrupt_signal() -> Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot listen for Ctrl-C")
}

/// The line that tells which provider is in use.
pub(crate) fn provider_note(ctx: &Ctx) -> String {
    format!("provider: {}", ctx.provider.label)
}

/// `1.2s` since `start`.
pub(crate) fn since(start: Instant) -> String {
    format_elapsed(start.elapsed())
}

//! One module per command; [`dispatch`] routes to them.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use doctl_driver::{App, AppStatus};
use sandbox_core::{Sandbox, SandboxInfo};
use serde::Serialize;

use crate::args::Command;
use crate::error::{CliError, Exit};
use crate::printer::{Printer, Progress, format_elapsed};
use crate::settings::{GlobalSettings, SpecSettings};

mod copy;
mod emulator;
mod exec;
mod files;
mod lifecycle;
mod mcp;
mod process;
pub(crate) mod snapshot;

/// Runs a parsed command.
pub(crate) async fn dispatch(
    command: Command,
    settings: GlobalSettings,
    printer: Printer,
) -> Result<Exit> {
    if let Command::Emulator(args) = command {
        return emulator::emulator(args, printer).await;
    }
    // Usage errors clap cannot see come before anything is opened.
    match &command {
        Command::Exec(args) => {
            args.target
                .split(exec::EXEC_USAGE)
                .map_err(CliError::Usage)?;
        }
        Command::Launch(args) => {
            args.target
                .split(process::LAUNCH_USAGE)
                .map_err(CliError::Usage)?;
        }
        _ => {}
    }
    let provider = crate::provider::open(&settings)?;
    if let Command::Mcp(args) = command {
        return mcp::mcp(provider, args, printer).await;
    }
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
        Command::Cp(args) => files::cp(&ctx, args).await,
        Command::Ps(args) => process::ps(&ctx, args).await,
        Command::Launch(args) => process::launch(&ctx, args).await,
        Command::Kill(args) => process::kill(&ctx, args).await,
        Command::Logs(args) => process::logs(&ctx, args).await,
        Command::Snapshot(command) => snapshot::snapshot(&ctx, command).await,
        Command::Hibernate(args) => snapshot::hibernate(&ctx, args).await,
        Command::Wake(args) => snapshot::wake(&ctx, args).await,
        Command::Gc(args) => lifecycle::gc(&ctx, args).await,
        Command::Extend(args) => lifecycle::extend(&ctx, args).await,
        Command::Emulator(_) | Command::Completions(_) | Command::Mcp(_) => Ok(Exit::Usage),
    }
}

/// What every command works with.
pub(crate) struct Ctx {
    pub provider: sandbox_core::Provider,
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
    pub expires_at: Option<String>,
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
            expires_at: sandbox_core::expires_at(&app.spec).and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            }),
            provider: provider.to_owned(),
        }
    }
}

/// How long until an expiry, in one short unit (`in 29m`), `expired`, or `-` without one.
pub(crate) fn expires_in(at: Option<time::OffsetDateTime>) -> String {
    let Some(at) = at else {
        return "-".to_owned();
    };
    let secs = (at - time::OffsetDateTime::now_utc()).whole_seconds();
    match secs {
        ..=0 => "expired".to_owned(),
        1..60 => format!("in {secs}s"),
        60..3600 => format!("in {}m", secs / 60),
        3600..86400 => format!("in {}h", secs / 3600),
        _ => format!("in {}d", secs / 86400),
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

/// Creates a sandbox, showing its deployment phase by phase. When it does not become ready
/// (or Ctrl-C stops the wait), the SDK deletes it again; this reports that.
pub(crate) async fn create_sandbox(
    ctx: &Ctx,
    spec: &SpecSettings,
    wait: bool,
    progress: Progress,
) -> Result<Sandbox> {
    let view = Arc::new(Mutex::new(CreateView {
        progress,
        created: None,
        animate: false,
    }));
    let mut builder = Sandbox::builder()
        .platform(ctx.provider.platform().clone())
        .image(spec.image)
        .component_type(spec.component_type)
        .timeout(spec.ready_timeout)
        .wait_ready(wait)
        .on_progress({
            let view = Arc::clone(&view);
            let printer = ctx.printer;
            move |event| lock(&view).show(event, printer)
        })
        // Ctrl-C while waiting deletes the half-made sandbox, as a failure to get ready does.
        // Listening starts with the wait (this future is first polled then).
        .cancel_on(async {
            match interrupt_signal() {
                Ok(mut interrupt) => {
                    interrupt.recv().await;
                }
                Err(e) => {
                    tracing::warn!("{e:#}");
                    std::future::pending::<()>().await;
                }
            }
        });
    if let Some(name) = &spec.name {
        builder = builder.name(name.clone());
    }
    if let Some(region) = &spec.region {
        builder = builder.region(region.clone());
    }
    if let Some(size) = &spec.instance_size {
        builder = builder.instance_size(size.clone());
    }
    if let Some(ttl) = spec.ttl {
        builder = builder.ttl(ttl);
    }
    for (key, value) in &spec.env {
        builder = builder.env(key.clone(), value.clone());
    }
    let create = builder.create();
    tokio::pin!(create);
    // The spinner turns between two polls.
    let tick = lock(&view).progress.tick();
    let result = loop {
        tokio::select! {
            result = &mut create => break result,
            () = tokio::time::sleep(tick) => lock(&view).redraw(),
        }
    };
    let mut view = lock(&view);
    match result {
        Ok(sandbox) => {
            view.progress.finish(if wait {
                "ready"
            } else {
                "app created; not waiting for its deployment"
            });
            Ok(sandbox)
        }
        Err(e) => {
            view.progress.clear();
            let Some((id, name)) = view.created.take() else {
                return Err(e).context("cannot create the sandbox");
            };
            let e = match e {
                sandbox_core::Error::CleanupFailed {
                    error,
                    delete_error,
                    ..
                } => {
                    ctx.printer.warn(format!(
                        "could not delete sandbox `{name}` ({id}) that did not become ready: {delete_error}"
                    ));
                    *error
                }
                e => e,
            };
            let e = match e {
                sandbox_core::Error::Cancelled { .. } => anyhow::Error::new(CliError::Interrupted),
                e => anyhow::Error::new(e),
            };
            Err(e.context(format!("sandbox `{name}` did not become ready")))
        }
    }
}

/// What `create_sandbox` shows while the SDK creates: the progress line, and the sandbox once
/// it exists.
struct CreateView {
    progress: Progress,
    /// Id and name, once the app exists.
    created: Option<(String, String)>,
    /// Whether the spinner turns (while waiting for the deployment).
    animate: bool,
}

impl CreateView {
    fn show(&mut self, event: &sandbox_core::Progress, printer: Printer) {
        match event {
            sandbox_core::Progress::Creating => self.progress.update(&event.to_string()),
            sandbox_core::Progress::Created { app_id, name } => {
                self.created = Some((app_id.clone(), name.clone()));
            }
            sandbox_core::Progress::Waiting { .. } => {
                self.animate = true;
                self.progress.update(&event.to_string());
            }
            sandbox_core::Progress::Deleting { .. } => {
                self.animate = false;
                self.progress.clear();
            }
            sandbox_core::Progress::Deleted { app_id, name } => printer.info(format!(
                "deleted sandbox `{name}` ({app_id}), which did not become ready"
            )),
            _ => {}
        }
    }

    fn redraw(&mut self) {
        if self.animate {
            self.progress.redraw();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Listens for Ctrl-C (SIGINT) from now on: a signal that arrives before the first `recv` is
/// kept, not lost.
pub(crate) fn interrupt_signal() -> Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot listen for Ctrl-C")
}

/// The line that tells which provider is in use.
pub(crate) fn provider_note(ctx: &Ctx) -> String {
    format!("provider: {}", ctx.provider.label())
}

/// `1.2s` since `start`.
pub(crate) fn since(start: Instant) -> String {
    format_elapsed(start.elapsed())
}

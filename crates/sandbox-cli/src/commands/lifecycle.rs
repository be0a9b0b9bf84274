//! `create`, `list`, `delete`, `status`, `url`.

use std::time::Instant;

use anyhow::{Context, Result};
use sandbox_core::{Found, Sandbox};
use serde::Serialize;

use super::{Ctx, SandboxJson, age, create_sandbox, expires_in, provider_note, since};
use crate::args::{CreateArgs, DeleteArgs, ExtendArgs, GcArgs, InfoArgs, ListArgs};
use crate::error::Exit;
use crate::printer::table;
use crate::settings::SpecSettings;

pub(crate) async fn create(ctx: &Ctx, args: CreateArgs) -> Result<Exit> {
    let mut spec_args = args.spec.clone();
    if let Some(name) = &args.name_arg {
        spec_args.name = Some(name.clone());
    }
    let spec = SpecSettings::resolve(&spec_args, &ctx.settings)?;
    ctx.printer.info(format!(
        "Creating a {} {} sandbox ({})",
        spec.image.as_str(),
        spec.component_type.as_str(),
        provider_note(ctx)
    ));
    if let Some(id) = &args.from_snapshot {
        super::snapshot::check_exists(id).await?;
    }
    let sandbox = create_sandbox(ctx, &spec, !args.no_wait, ctx.printer.progress()).await?;
    if let Some(id) = &args.from_snapshot {
        super::snapshot::restore_new(ctx, &sandbox, id).await?;
    }
    let json = sandbox_json(ctx, &sandbox).await?;
    if args.json {
        ctx.printer.json(&json)?;
    } else {
        print_fields(ctx, &json);
        ctx.printer.info(format!(
            "\nhint: run commands with `sandbox exec {} CMD...`; delete it with `sandbox delete {}`",
            json.name, json.name
        ));
    }
    Ok(Exit::Ok)
}

fn print_fields(ctx: &Ctx, json: &SandboxJson) {
    ctx.printer.data(format!("id:      {}", json.id));
    ctx.printer.data(format!("name:    {}", json.name));
    ctx.printer.data(format!("status:  {}", json.status));
    if let Some(reason) = &json.reason {
        ctx.printer.data(format!("reason:  {reason}"));
    }
    ctx.printer
        .data(format!("url:     {}", json.url.as_deref().unwrap_or("-")));
    if let Some(region) = &json.region {
        ctx.printer.data(format!("region:  {region}"));
    }
}

pub(crate) async fn list(ctx: &Ctx, args: ListArgs) -> Result<Exit> {
    let mut sandboxes = Sandbox::list(ctx.provider.platform().as_ref())
        .await
        .context("cannot list sandboxes")?;
    sandboxes.sort_by(|a, b| {
        a.app
            .created_at
            .cmp(&b.app.created_at)
            .then_with(|| a.name.cmp(&b.name))
    });
    if args.json {
        let json: Vec<SandboxJson> = sandboxes
            .iter()
            .map(|s| SandboxJson::from_info(s, ctx.provider.label()))
            .collect();
        ctx.printer.json(&json)?;
        return Ok(Exit::Ok);
    }
    if sandboxes.is_empty() {
        ctx.printer.info(format!(
            "No sandboxes ({}).\n\nhint: create one with `sandbox create --image python`",
            provider_note(ctx)
        ));
        return Ok(Exit::Ok);
    }
    let rows: Vec<Vec<String>> = sandboxes
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.id.clone(),
                s.status.to_string(),
                s.image.as_str().to_owned(),
                s.region.clone().unwrap_or_else(|| "-".into()),
                age(s.app.created_at),
                expires_in(s.expires_at),
                s.url.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    ctx.printer.data(table(
        &[
            "NAME", "ID", "STATUS", "IMAGE", "REGION", "AGE", "EXPIRES", "URL",
        ],
        &rows,
    ));
    ctx.printer.info(format!(
        "{} sandbox(es) ({})",
        sandboxes.len(),
        provider_note(ctx)
    ));
    Ok(Exit::Ok)
}

#[derive(Debug, Serialize)]
struct Deleted {
    id: String,
    name: String,
    deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub(crate) async fn delete(ctx: &Ctx, args: DeleteArgs) -> Result<Exit> {
    if args.all {
        return delete_all(ctx, &args).await;
    }
    let (id, name) = match (&args.id, &args.name) {
        (Some(id), _) => {
            let app = ctx
                .provider
                .platform()
                .get_app(id)
                .await
                .with_context(|| format!("cannot find app `{id}`"))?;
            (app.id.clone(), app.name().to_owned())
        }
        (None, Some(name)) => match ctx.resolve(name).await? {
            // `delete NAME` only deletes sandboxes this tool made.
            Found::App(app) => {
                return Err(crate::error::CliError::Usage(format!(
                    "app `{name}` was not created by this tool; to delete it anyway, give its id: `--id {}`",
                    app.id
                ))
                .into());
            }
            found => (found.id().to_owned(), found.name().to_owned()),
        },
        (None, None) => no_target()?,
    };
    ctx.provider
        .platform()
        .delete_app(&id)
        .await
        .with_context(|| format!("cannot delete sandbox `{name}` ({id})"))?;
    if args.json {
        ctx.printer.json(&vec![Deleted {
            id,
            name,
            deleted: true,
            error: None,
        }])?;
    } else {
        ctx.printer.data(format!("deleted {name} ({id})"));
    }
    Ok(Exit::Ok)
}

fn no_target() -> Result<(String, String)> {
    Err(crate::error::CliError::Usage("give a sandbox name, `--id` or `--all`".into()).into())
}

async fn delete_all(ctx: &Ctx, args: &DeleteArgs) -> Result<Exit> {
    let sandboxes = Sandbox::list(ctx.provider.platform().as_ref())
        .await
        .context("cannot list sandboxes")?;
    if sandboxes.is_empty() {
        if args.json {
            ctx.printer.json(&Vec::<Deleted>::new())?;
        } else {
            ctx.printer
                .info(format!("No sandboxes to delete ({}).", provider_note(ctx)));
        }
        return Ok(Exit::Ok);
    }
    if !args.force {
        let question = format!(
            "Delete all {} sandboxes ({})?",
            sandboxes.len(),
            provider_note(ctx)
        );
        if !ctx.printer.confirm(&question) {
            ctx.printer
                .info("Cancelled (nothing deleted; pass `--force` to delete without asking).");
            return Ok(Exit::Error);
        }
    }
    let start = Instant::now();
    let results = futures::future::join_all(sandboxes.iter().map(|s| async move {
        let result = ctx.provider.platform().delete_app(&s.id).await;
        Deleted {
            id: s.id.clone(),
            name: s.name.clone(),
            deleted: result.is_ok(),
            error: result.err().map(|e| e.to_string()),
        }
    }))
    .await;
    let failed = results.iter().filter(|r| !r.deleted).count();
    if args.json {
        ctx.printer.json(&results)?;
    } else {
        for r in &results {
            match &r.error {
                None => ctx.printer.data(format!("deleted {} ({})", r.name, r.id)),
                Some(e) => ctx
                    .printer
                    .warn(format!("could not delete {} ({}): {e}", r.name, r.id)),
            }
        }
        ctx.printer.info(format!(
            "Deleted {} of {} sandbox(es) in {}.",
            results.len() - failed,
            results.len(),
            since(start)
        ));
    }
    Ok(if failed == 0 { Exit::Ok } else { Exit::Error })
}

/// What `create` and `status` print about a sandbox, read from its app now.
pub(crate) async fn sandbox_json(ctx: &Ctx, sandbox: &Sandbox) -> Result<SandboxJson> {
    let app = ctx
        .provider
        .platform()
        .get_app(sandbox.id())
        .await
        .with_context(|| format!("cannot read app `{}`", sandbox.id()))?;
    Ok(SandboxJson::from_app(&app, ctx.provider.label()))
}

pub(crate) async fn status(ctx: &Ctx, args: InfoArgs) -> Result<Exit> {
    let sandbox = ctx.attach_target(&args.target).await?;
    let json = sandbox_json(ctx, &sandbox).await?;
    if args.json {
        ctx.printer.json(&json)?;
    } else {
        print_fields(ctx, &json);
        ctx.printer.info(provider_note(ctx));
    }
    Ok(Exit::Ok)
}

pub(crate) async fn url(ctx: &Ctx, args: InfoArgs) -> Result<Exit> {
    let sandbox = ctx.attach_target(&args.target).await?;
    let url = sandbox
        .url()
        .await
        .with_context(|| format!("cannot read the URL of `{}`", sandbox.name()))?;
    if args.json {
        ctx.printer.json(&serde_json::json!({ "url": url }))?;
        return Ok(Exit::Ok);
    }
    match url {
        Some(url) => {
            ctx.printer.data(url);
            Ok(Exit::Ok)
        }
        None => Err(crate::error::CliError::NotFound {
            what: format!(
                "a public URL for `{}` (workers have none; create with `--component-type service`)",
                sandbox.name()
            ),
            candidates: Vec::new(),
            note: None,
        }
        .into()),
    }
}

#[derive(Debug, Serialize)]
struct SweptJson {
    id: String,
    name: String,
    reason: String,
    deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `sandbox gc`: one sweep (see `sandbox_core::sweep`).
pub(crate) async fn gc(ctx: &Ctx, args: GcArgs) -> Result<Exit> {
    let start = Instant::now();
    let swept = sandbox_core::sweep(
        ctx.provider.platform().as_ref(),
        &sandbox_core::SweepOptions::new().dry_run(args.dry_run),
    )
    .await
    .context("cannot sweep sandboxes")?;
    let failed = swept.iter().filter(|s| s.error.is_some()).count();
    if args.json {
        let json: Vec<SweptJson> = swept
            .iter()
            .map(|s| SweptJson {
                id: s.id.clone(),
                name: s.name.clone(),
                reason: s.reason.to_string(),
                deleted: s.deleted,
                error: s.error.clone(),
            })
            .collect();
        ctx.printer.json(&json)?;
    } else {
        for s in &swept {
            match (&s.error, args.dry_run) {
                (Some(e), _) => ctx
                    .printer
                    .warn(format!("could not delete {} ({}): {e}", s.name, s.id)),
                (None, true) => ctx
                    .printer
                    .data(format!("would delete {} ({}): {}", s.name, s.id, s.reason)),
                (None, false) => ctx
                    .printer
                    .data(format!("deleted {} ({}): {}", s.name, s.id, s.reason)),
            }
        }
        let verb = if args.dry_run {
            "Would delete"
        } else {
            "Deleted"
        };
        ctx.printer.info(format!(
            "{verb} {} expired or orphaned sandbox(es) in {} ({}).",
            swept.len() - failed,
            since(start),
            provider_note(ctx)
        ));
    }
    Ok(if failed == 0 { Exit::Ok } else { Exit::Error })
}

/// `sandbox extend`: refused, with the reason. The expiry is recorded in the app's spec when
/// it is created; App Platform redeploys an app whenever its spec changes, which would replace
/// the sandbox's container and lose what runs in it, and App Platform has no other place
/// (labels, tags) to keep it. The local provider follows App Platform's model.
pub(crate) async fn extend(ctx: &Ctx, args: ExtendArgs) -> Result<Exit> {
    let found = ctx.resolve(&args.name).await?;
    let expiry = sandbox_core::expires_at(&found.app().spec);
    let now = match expiry {
        Some(at) => format!(
            "it expires at {}",
            at.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        ),
        None => "it has no expiry".to_owned(),
    };
    Err(crate::error::CliError::Usage(format!(
        "cannot extend sandbox `{}` by {}s ({now}): its expiry is written into the app's spec \
         when it is created, and changing the spec of an App Platform app redeploys it, \
         replacing the sandbox's container and everything in it\n\nhint: create a new sandbox \
         with a longer `--ttl`",
        found.name(),
        args.duration.as_secs()
    ))
    .into())
}

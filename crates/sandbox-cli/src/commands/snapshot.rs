//! `snapshot create|list|show|delete|restore`, `hibernate`, `wake` and the restore of
//! `create --from-snapshot`, through `sandbox-fs`'s [`Snapshots`].
//!
//! The store: an S3 bucket when the `SPACES_*` variables are set (feature `spaces`), else the
//! folder `SANDBOX_SNAPSHOT_DIR`, else `$XDG_DATA_HOME/do-app-sandbox/snapshots` (by default
//! `~/.local/share/do-app-sandbox/snapshots`), so snapshots need no account.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use sandbox_core::Sandbox;
use sandbox_fs::{ListFilter, SnapshotMetadata, SnapshotOptions, Snapshots};

use super::Ctx;
use crate::error::{CliError, Exit};
use crate::printer::table;

/// `sandbox snapshot ...`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot of a sandbox's folders and print its id.
    Create(SnapshotCreateArgs),
    /// List snapshots, newest first.
    #[command(visible_alias = "ls")]
    List(SnapshotListArgs),
    /// Print one snapshot's metadata.
    Show(SnapshotIdArgs),
    /// Delete a snapshot and every object of it.
    #[command(visible_alias = "rm")]
    Delete(SnapshotIdArgs),
    /// Restore a snapshot into a sandbox (its folders become the snapshot's).
    Restore(SnapshotRestoreArgs),
}

/// `sandbox snapshot create`.
#[derive(Debug, Args)]
pub struct SnapshotCreateArgs {
    /// The sandbox's name (or a unique prefix of its id).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// An absolute folder to hold (repeatable; default /home/sandbox/app).
    #[arg(long = "path", value_name = "P")]
    pub paths: Vec<String>,
    /// A glob to leave out, added to the default list (repeatable).
    #[arg(long = "exclude", value_name = "G")]
    pub excludes: Vec<String>,
    /// Leave out only the `--exclude` globs, not the default caches.
    #[arg(long)]
    pub no_default_excludes: bool,
    /// Make an incremental snapshot of what changed since this one.
    #[arg(long, value_name = "ID")]
    pub parent: Option<String>,
    /// A `KEY=VALUE` tag (repeatable).
    #[arg(long = "tag", value_name = "K=V", value_parser = key_value)]
    pub tags: Vec<(String, String)>,
    /// A free description.
    #[arg(long)]
    pub description: Option<String>,
    /// Print the metadata as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `sandbox snapshot list`.
#[derive(Debug, Args)]
pub struct SnapshotListArgs {
    /// Only snapshots with this `KEY=VALUE` tag (repeatable).
    #[arg(long = "tag", value_name = "K=V", value_parser = key_value)]
    pub tags: Vec<(String, String)>,
    /// Only snapshots of sandboxes with this image.
    #[arg(long)]
    pub image: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `sandbox snapshot show|delete`.
#[derive(Debug, Args)]
pub struct SnapshotIdArgs {
    /// The snapshot id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `sandbox snapshot restore`.
#[derive(Debug, Args)]
pub struct SnapshotRestoreArgs {
    /// The sandbox's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The snapshot id.
    #[arg(value_name = "ID")]
    pub id: String,
}

/// `sandbox hibernate`.
#[derive(Debug, Args)]
pub struct HibernateArgs {
    /// The sandbox's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Print the record as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `sandbox wake`.
#[derive(Debug, Args)]
pub struct WakeArgs {
    /// The snapshot id `sandbox hibernate` printed.
    #[arg(value_name = "ID")]
    pub id: String,
    /// The new sandbox's name (default: a fresh one).
    #[arg(long, short)]
    pub name: Option<String>,
    /// Print the new sandbox as JSON.
    #[arg(long)]
    pub json: bool,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

/// The snapshot store of the CLI (see the module documentation).
pub(crate) fn snapshots() -> Result<Snapshots> {
    #[cfg(feature = "spaces")]
    if let Some(config) = sandbox_fs::SpacesConfig::from_env()? {
        let store = sandbox_fs::ObjectSnapshotStore::spaces(config)?;
        return Ok(Snapshots::new(Arc::new(store)));
    }
    let dir = match std::env::var_os("SANDBOX_SNAPSHOT_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let data = std::env::var_os("XDG_DATA_HOME")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
                .context("set SANDBOX_SNAPSHOT_DIR (no HOME to keep snapshots under)")?;
            data.join("do-app-sandbox/snapshots")
        }
    };
    Ok(Snapshots::new(Arc::new(
        sandbox_fs::LocalSnapshotStore::new(dir),
    )))
}

/// Runs `sandbox snapshot ...`.
pub(crate) async fn snapshot(ctx: &Ctx, command: SnapshotCommand) -> Result<Exit> {
    let snapshots = snapshots()?;
    match command {
        SnapshotCommand::Create(args) => {
            let sandbox = ctx.attach(Some(&args.name), None, None).await?;
            let mut options = SnapshotOptions::new();
            if args.no_default_excludes {
                options = options.excludes(Vec::<String>::new());
            }
            for glob in args.excludes {
                options = options.exclude(glob);
            }
            for path in args.paths {
                options = options.path(path);
            }
            if let Some(parent) = args.parent {
                options = options.parent(parent);
            }
            for (k, v) in args.tags {
                options = options.tag(k, v);
            }
            if let Some(d) = args.description {
                options = options.description(d);
            }
            ctx.printer.info(format!(
                "Taking a snapshot of `{}` into {}",
                args.name,
                snapshots.store().location()
            ));
            let meta = snapshots
                .create(&sandbox, &options)
                .await
                .with_context(|| format!("cannot take a snapshot of `{}`", args.name))?;
            if args.json {
                ctx.printer.json(&meta)?;
            } else {
                ctx.printer.data(&meta.id);
                ctx.printer.info(format!(
                    "{} files, {} bytes of archive ({})",
                    meta.files,
                    meta.archive_bytes,
                    meta.kind.as_str()
                ));
            }
            Ok(Exit::Ok)
        }
        SnapshotCommand::List(args) => {
            let mut filter = ListFilter::new();
            for (k, v) in args.tags {
                filter = filter.tag(k, v);
            }
            if let Some(image) = args.image {
                filter = filter.image(image);
            }
            let list = snapshots
                .list(&filter)
                .await
                .context("cannot list snapshots")?;
            if args.json {
                ctx.printer.json(&list)?;
            } else if list.is_empty() {
                ctx.printer.info("no snapshots");
            } else {
                let rows: Vec<Vec<String>> = list.iter().map(row).collect();
                ctx.printer.data(table(
                    &[
                        "ID", "KIND", "PARENT", "SANDBOX", "IMAGE", "FILES", "ARCHIVE", "AGE",
                    ],
                    &rows,
                ));
            }
            Ok(Exit::Ok)
        }
        SnapshotCommand::Show(args) => {
            let meta = snapshots.get(&args.id).await?;
            if args.json {
                ctx.printer.json(&meta)?;
            } else {
                show(ctx, &meta);
            }
            Ok(Exit::Ok)
        }
        SnapshotCommand::Delete(args) => {
            snapshots
                .delete(&args.id)
                .await
                .with_context(|| format!("cannot delete snapshot `{}`", args.id))?;
            ctx.printer.info(format!("deleted snapshot {}", args.id));
            Ok(Exit::Ok)
        }
        SnapshotCommand::Restore(args) => {
            let sandbox = ctx.attach(Some(&args.name), None, None).await?;
            let meta = snapshots
                .restore(&sandbox, &args.id)
                .await
                .with_context(|| format!("cannot restore `{}` into `{}`", args.id, args.name))?;
            ctx.printer.info(format!(
                "restored {} ({} files) into `{}`",
                meta.id, meta.files, args.name
            ));
            Ok(Exit::Ok)
        }
    }
}

fn row(meta: &SnapshotMetadata) -> Vec<String> {
    let created = time::OffsetDateTime::from_unix_timestamp(
        i64::try_from(meta.created_at).unwrap_or_default(),
    )
    .ok();
    vec![
        meta.id.clone(),
        meta.kind.as_str().to_owned(),
        meta.parent.clone().unwrap_or_else(|| "-".into()),
        meta.template.name.clone(),
        meta.template.image.clone().unwrap_or_else(|| "-".into()),
        meta.files.to_string(),
        meta.archive_bytes.to_string(),
        super::age(created),
    ]
}

fn show(ctx: &Ctx, meta: &SnapshotMetadata) {
    let p = &ctx.printer;
    p.data(format!("id:          {}", meta.id));
    p.data(format!("kind:        {}", meta.kind.as_str()));
    p.data(format!(
        "parent:      {}",
        meta.parent.as_deref().unwrap_or("-")
    ));
    p.data(format!(
        "chain:       root {} depth {}",
        meta.chain_root, meta.chain_depth
    ));
    p.data(format!(
        "sandbox:     {} ({})",
        meta.template.name, meta.sandbox_id
    ));
    p.data(format!(
        "image:       {}",
        meta.template.image.as_deref().unwrap_or("-")
    ));
    p.data(format!("paths:       {}", meta.paths.join(" ")));
    p.data(format!(
        "files:       {} ({} bytes)",
        meta.files, meta.content_bytes
    ));
    p.data(format!(
        "archive:     {} bytes, sha256 {}",
        meta.archive_bytes, meta.archive_sha256
    ));
    p.data(format!("deleted:     {}", meta.deleted));
    let tags: Vec<String> = meta.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    p.data(format!("tags:        {}", tags.join(" ")));
    if let Some(d) = &meta.description {
        p.data(format!("description: {d}"));
    }
}

/// Restores snapshot `id` into a sandbox `create --from-snapshot` just made; deletes the
/// sandbox again when that fails, so a failed create leaves nothing.
pub(crate) async fn restore_new(ctx: &Ctx, sandbox: &Sandbox, id: &str) -> Result<()> {
    let snapshots = snapshots()?;
    ctx.printer.info(format!(
        "Restoring snapshot {id} from {}",
        snapshots.store().location()
    ));
    if let Err(e) = snapshots.restore(sandbox, id).await {
        match sandbox.delete().await {
            Ok(()) => ctx.printer.info(format!(
                "deleted sandbox `{}`, whose restore failed",
                sandbox.name()
            )),
            Err(d) => ctx.printer.warn(format!(
                "could not delete sandbox `{}` ({}) whose restore failed: {d}",
                sandbox.name(),
                sandbox.id()
            )),
        }
        return Err(anyhow::Error::new(e).context(format!("cannot restore snapshot `{id}`")));
    }
    Ok(())
}

/// Checks, before anything is created, that snapshot `id` and its chain exist.
pub(crate) async fn check_exists(id: &str) -> Result<()> {
    snapshots()?.chain(id).await?;
    Ok(())
}

/// `sandbox hibernate NAME`: snapshot, then delete; prints the snapshot id to wake it with.
pub(crate) async fn hibernate(ctx: &Ctx, args: HibernateArgs) -> Result<Exit> {
    let snapshots = snapshots()?;
    let sandbox = ctx.attach(Some(&args.name), None, None).await?;
    ctx.printer.info(format!(
        "Hibernating `{}` into {} (files are kept; processes are not)",
        args.name,
        snapshots.store().location()
    ));
    let record = snapshots
        .hibernate(&sandbox)
        .await
        .with_context(|| format!("cannot hibernate `{}`", args.name))?;
    if args.json {
        ctx.printer.json(&record)?;
    } else {
        ctx.printer.data(&record.snapshot_id);
        ctx.printer.info(format!(
            "hint: wake it with `sandbox wake {}`",
            record.snapshot_id
        ));
    }
    Ok(Exit::Ok)
}

/// `sandbox wake ID`: a new sandbox like the hibernated one, with its files.
pub(crate) async fn wake(ctx: &Ctx, args: WakeArgs) -> Result<Exit> {
    let snapshots = snapshots()?;
    let record = snapshots.hibernated(&args.id).await?;
    let mut builder = Sandbox::builder().platform(ctx.provider.platform().clone());
    if let Some(name) = &args.name {
        builder = builder.name(name.clone());
    }
    ctx.printer.info(format!(
        "Waking snapshot {} of `{}` ({})",
        record.snapshot_id,
        record.template.name,
        super::provider_note(ctx)
    ));
    let sandbox = snapshots
        .wake(builder, &record)
        .await
        .map_err(|e| match e {
            sandbox_fs::Error::InvalidArgument { .. } => {
                anyhow::Error::new(CliError::Usage(e.to_string()))
            }
            e => anyhow::Error::new(e),
        })
        .with_context(|| format!("cannot wake `{}`", args.id))?;
    let json = super::lifecycle::sandbox_json(ctx, &sandbox).await?;
    if args.json {
        ctx.printer.json(&json)?;
    } else {
        ctx.printer.data(format!("id:      {}", json.id));
        ctx.printer.data(format!("name:    {}", json.name));
        ctx.printer.data(format!("status:  {}", json.status));
    }
    Ok(Exit::Ok)
}

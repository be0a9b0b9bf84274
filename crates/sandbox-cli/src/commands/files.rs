//! `files read|write|ls|upload|download|rm|mkdir`, through `sandbox-fs`: byte-exact, atomic
//! writes, folders as tar streams, large files through Spaces when it is configured.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result};
use sandbox_core::Sandbox;
use sandbox_fs::{DirEntry, ExistingDir, FileKind, FileSystem, RmOptions, TransferOptions};
use serde::Serialize;

use super::Ctx;
use super::copy::{self, CopyOptions, Side};
use crate::args::{CpArgs, FilesCommand, PositionalTarget};
use crate::error::{CliError, Exit};
use crate::printer::{Progress, table};

/// Splits `[NAME] ARGS...` by whether `--id` was given: returns the name and the rest, which
/// must be between `min` and `max` long.
pub(crate) fn split_target(
    target: &PositionalTarget,
    args: &[String],
    min: usize,
    max: usize,
    usage: &str,
) -> Result<(Option<String>, Vec<String>)> {
    let (name, rest) = if target.id.is_some() {
        (None, args.to_vec())
    } else {
        match args.split_first() {
            Some((name, rest)) => (Some(name.clone()), rest.to_vec()),
            None => (None, Vec::new()),
        }
    };
    if target.id.is_none() && name.is_none() {
        return Err(CliError::Usage(format!("give a sandbox name or `--id`: {usage}")).into());
    }
    if rest.len() < min || rest.len() > max {
        return Err(CliError::Usage(format!("wrong number of arguments: {usage}")).into());
    }
    Ok((name, rest))
}

/// `--merge` / `--replace` as what to do with a folder already at a download's destination.
pub(crate) fn existing_dir(merge: bool, replace: bool) -> ExistingDir {
    if merge {
        ExistingDir::Merge
    } else if replace {
        ExistingDir::Replace
    } else {
        ExistingDir::Refuse
    }
}

async fn attach(ctx: &Ctx, target: &PositionalTarget, name: Option<&str>) -> Result<Sandbox> {
    ctx.attach(name, target.id.as_deref(), target.component.as_deref())
        .await
}

/// `1.5 MB`, `300 B`.
fn bytes(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} kB", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.2} GB", n as f64 / 1e9),
    }
}

/// Transfer options that report progress (at most every tenth of the total) on stderr.
pub(crate) fn reporting(progress: &Arc<Mutex<Progress>>, verb: &'static str) -> TransferOptions {
    let progress = Arc::clone(progress);
    let last = AtomicU64::new(u64::MAX);
    TransferOptions::new().progress(move |done, total| {
        let tenth = done.saturating_mul(10).checked_div(total).unwrap_or(10);
        if last.swap(tenth, Ordering::Relaxed) == tenth {
            return;
        }
        if let Ok(mut progress) = progress.lock() {
            progress.update(&format!("{verb} {} of {}", bytes(done), bytes(total)));
        }
    })
}

/// One entry of `files ls --json`.
#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct Entry {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub size: u64,
    pub mode: String,
    /// Seconds since the Unix epoch.
    pub modified: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl Entry {
    pub(crate) fn new(entry: &DirEntry) -> Self {
        let (kind, target) = match &entry.kind {
            FileKind::File => ("file", None),
            FileKind::Dir => ("dir", None),
            FileKind::Symlink { target } => ("symlink", Some(target.clone())),
            _ => ("other", None),
        };
        Entry {
            name: entry.name.clone(),
            kind,
            size: entry.size,
            mode: entry.permissions(),
            modified: entry
                .modified
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            target,
        }
    }
}

pub(crate) async fn files(ctx: &Ctx, command: FilesCommand) -> Result<Exit> {
    match command {
        FilesCommand::Read(args) => {
            let usage = "sandbox files read <NAME|--id ID> <PATH>";
            let (name, rest) = split_target(&args.target, &args.words(), 1, 1, usage)?;
            let sandbox = attach(ctx, &args.target, name.as_deref()).await?;
            let data = FileSystem::new(&sandbox)
                .read(&rest[0])
                .await
                .with_context(|| format!("cannot read a file of sandbox `{}`", sandbox.name()))?;
            ctx.printer
                .data_bytes(&data)
                .context("cannot write to standard output")?;
        }
        FilesCommand::Write(args) => {
            let usage = "sandbox files write <NAME|--id ID> <PATH>";
            let (name, rest) = split_target(&args.target, &args.words(), 1, 1, usage)?;
            let content = match (&args.content, &args.from) {
                (Some(text), _) => text.clone().into_bytes(),
                (None, Some(file)) => std::fs::read(file)
                    .with_context(|| format!("cannot read `{}`", file.display()))?,
                (None, None) => super::exec::read_stdin().await?,
            };
            let sandbox = attach(ctx, &args.target, name.as_deref()).await?;
            FileSystem::new(&sandbox)
                .write(&rest[0], &content)
                .await
                .with_context(|| format!("cannot write a file of sandbox `{}`", sandbox.name()))?;
            ctx.printer
                .info(format!("wrote {} bytes to {}", content.len(), rest[0]));
        }
        FilesCommand::Upload(args) => {
            let usage = "sandbox files upload <NAME|--id ID> <LOCAL> <REMOTE>";
            let (name, rest) = split_target(&args.target, &args.words(), 2, 2, usage)?;
            let sandbox = attach(ctx, &args.target, name.as_deref()).await?;
            let options = CopyOptions {
                recursive: true,
                follow_symlinks: args.follow_symlinks,
                ..CopyOptions::default()
            };
            let (target, size) = copy::upload(ctx, &sandbox, &rest[0], &rest[1], options).await?;
            ctx.printer
                .info(format!("uploaded {} ({size} bytes) to {target}", rest[0]));
        }
        FilesCommand::Download(args) => {
            let usage = "sandbox files download <NAME|--id ID> <REMOTE> <LOCAL>";
            let (name, rest) = split_target(&args.target, &args.words(), 2, 2, usage)?;
            let sandbox = attach(ctx, &args.target, name.as_deref()).await?;
            let options = CopyOptions {
                recursive: true,
                existing: existing_dir(args.merge, args.replace),
                ..CopyOptions::default()
            };
            let (target, size) = copy::download(ctx, &sandbox, &rest[0], &rest[1], options).await?;
            ctx.printer
                .info(format!("downloaded {} ({size} bytes) to {target}", rest[0]));
        }
        FilesCommand::Ls(args) => {
            let usage = "sandbox files ls <NAME|--id ID> [PATH]";
            let (name, rest) = split_target(&args.target, &args.words(), 0, 1, usage)?;
            let sandbox = attach(ctx, &args.target, name.as_deref()).await?;
            let path = rest.first().map_or(".", String::as_str);
            let entries: Vec<Entry> = FileSystem::new(&sandbox)
                .list(path)
                .await
                .with_context(|| format!("cannot list a folder of sandbox `{}`", sandbox.name()))?
                .iter()
                .map(Entry::new)
                .collect();
            if args.json {
                ctx.printer.json(&entries)?;
            } else if !entries.is_empty() {
                let rows: Vec<Vec<String>> = entries
                    .iter()
                    .map(|e| {
                        let name = match &e.target {
                            Some(target) => format!("{} -> {target}", e.name),
                            None => e.name.clone(),
                        };
                        vec![e.mode.clone(), e.size.to_string(), e.kind.to_owned(), name]
                    })
                    .collect();
                ctx.printer
                    .data(table(&["MODE", "SIZE", "TYPE", "NAME"], &rows));
            }
        }
        FilesCommand::Rm(args) => {
            let usage = "sandbox files rm <NAME|--id ID> <PATH>";
            let (name, rest) = split_target(&args.target, &args.words(), 1, 1, usage)?;
            let sandbox = attach(ctx, &args.target, name.as_deref()).await?;
            FileSystem::new(&sandbox)
                .rm(&rest[0], RmOptions::new().recursive(args.recursive))
                .await
                .with_context(|| format!("cannot remove from sandbox `{}`", sandbox.name()))?;
            ctx.printer.info(format!("removed {}", rest[0]));
        }
        FilesCommand::Mkdir(args) => {
            let usage = "sandbox files mkdir <NAME|--id ID> <PATH>";
            let (name, rest) = split_target(&args.target, &args.words(), 1, 1, usage)?;
            let sandbox = attach(ctx, &args.target, name.as_deref()).await?;
            FileSystem::new(&sandbox)
                .mkdir(&rest[0], true)
                .await
                .with_context(|| {
                    format!("cannot create a folder in sandbox `{}`", sandbox.name())
                })?;
            ctx.printer.info(format!("created {}", rest[0]));
        }
    }
    Ok(Exit::Ok)
}

/// `sandbox cp SRC DEST`: one side in a sandbox, with `cp`'s rules (see `copy`).
pub(crate) async fn cp(ctx: &Ctx, args: CpArgs) -> Result<Exit> {
    let options = CopyOptions {
        recursive: args.recursive,
        follow_symlinks: args.follow_symlinks,
        existing: existing_dir(args.merge, args.replace),
    };
    let attach_named = |name: String| async move {
        ctx.attach(Some(&name), None, args.component.as_deref())
            .await
    };
    match (Side::parse(&args.source), Side::parse(&args.dest)) {
        (Side::Local(local), Side::Remote { sandbox, path }) => {
            let sandbox = attach_named(sandbox).await?;
            let (target, size) = copy::upload(ctx, &sandbox, &local, &path, options).await?;
            ctx.printer.info(format!(
                "copied {local} ({size} bytes) to {}:{target}",
                sandbox.name()
            ));
        }
        (Side::Remote { sandbox, path }, Side::Local(local)) => {
            let sandbox = attach_named(sandbox).await?;
            let (target, size) = copy::download(ctx, &sandbox, &path, &local, options).await?;
            ctx.printer.info(format!(
                "copied {}:{path} ({size} bytes) to {target}",
                sandbox.name()
            ));
        }
        (Side::Local(_), Side::Local(_)) => {
            return Err(CliError::Usage(
                "neither side is in a sandbox: write one as NAME:PATH (`sandbox cp a.txt demo:/tmp/`)"
                    .to_owned(),
            )
            .into());
        }
        (Side::Remote { .. }, Side::Remote { .. }) => {
            return Err(CliError::Usage(
                "both sides are in sandboxes: copy through this machine, one side at a time"
                    .to_owned(),
            )
            .into());
        }
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500), "1.5 kB");
        assert_eq!(bytes(10_000_000), "10.0 MB");
        assert_eq!(bytes(2_000_000_000), "2.00 GB");
    }

    #[test]
    fn positional_targets_shift_with_id() {
        let by_name = PositionalTarget {
            id: None,
            component: None,
        };
        let args = vec!["demo".to_owned(), "/tmp/x".to_owned()];
        let (name, rest) = split_target(&by_name, &args, 1, 1, "u").unwrap();
        assert_eq!(name.as_deref(), Some("demo"));
        assert_eq!(rest, ["/tmp/x"]);
        let by_id = PositionalTarget {
            id: Some("abc".into()),
            component: None,
        };
        assert!(split_target(&by_id, &args, 1, 1, "u").is_err());
        let (name, rest) = split_target(&by_id, &args[1..], 1, 1, "u").unwrap();
        assert_eq!(name, None);
        assert_eq!(rest, ["/tmp/x"]);
        assert!(split_target(&by_name, &args[..1], 1, 1, "u").is_err());
    }
}

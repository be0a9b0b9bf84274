//! Copies between this machine and a sandbox with `cp`'s rules, for `sandbox cp` and
//! `files upload|download`:
//!
//! - a destination that is an existing folder, or that ends with `/`, receives the source
//!   under its own name (`cp a.txt demo:/app/` writes `/app/a.txt`; `cp -r demo:/app out`
//!   writes `out/app` when `out` is a folder);
//! - otherwise the destination is the new name (`cp -r demo:/app out` makes `out`);
//! - a source written `dir/.` is the folder's content, copied into the destination itself;
//! - `-` is standard input (as a source) or standard output (as a destination), for files.
//!
//! A folder downloaded into a place that already holds one is refused unless `--merge` or
//! `--replace` says what to do with it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use sandbox_core::Sandbox;
use sandbox_fs::{DirOptions, ExistingDir, FileSystem};

use super::Ctx;
use super::files::reporting;
use crate::error::CliError;

/// What a copy may do beyond a plain file.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CopyOptions {
    /// Folders are allowed (`cp -r`); `files upload|download` always allow them.
    pub recursive: bool,
    /// Upload what symlinks point to instead of the links.
    pub follow_symlinks: bool,
    /// What to do with a folder already at the destination of a downloaded folder.
    pub existing: ExistingDir,
}

/// The last component of a path, for "under its own name"; `None` for `/`, `.` and `..`.
fn own_name(path: &str) -> Option<&str> {
    let trimmed = path.trim_end_matches('/');
    let name = trimmed.rsplit('/').next()?;
    (!name.is_empty() && name != "." && name != "..").then_some(name)
}

/// Joins a remote folder and a name.
fn remote_join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

/// Whether a remote path is an existing folder (a missing one is `false`).
async fn remote_is_dir(fs: &FileSystem, path: &str) -> Result<bool> {
    match fs.stat(path).await {
        Ok(entry) => Ok(entry.is_dir()),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Copies `local` (a file, a folder, or `-` for standard input) to `remote` in the sandbox;
/// returns where it went and how many bytes.
pub(crate) async fn upload(
    ctx: &Ctx,
    sandbox: &Sandbox,
    local: &str,
    remote: &str,
    options: CopyOptions,
) -> Result<(String, u64)> {
    let fs = FileSystem::new(sandbox);
    let context = || format!("cannot upload to sandbox `{}`", sandbox.name());
    let into_dir =
        remote.ends_with('/') || remote_is_dir(&fs, remote).await.with_context(context)?;
    if local == "-" {
        if into_dir {
            return Err(CliError::Usage(format!(
                "`{remote}` is a folder: standard input needs a file name to go to"
            ))
            .into());
        }
        let data = super::exec::read_stdin().await?;
        fs.write(remote, &data).await.with_context(context)?;
        return Ok((remote.to_owned(), data.len() as u64));
    }
    let path = Path::new(local);
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot upload `{local}`: no such file or folder here"))?;
    if meta.is_dir() && !options.recursive {
        return Err(CliError::Usage(format!(
            "`{local}` is a folder: pass -r to copy it with what it holds"
        ))
        .into());
    }
    let target = match (into_dir, own_name(local)) {
        (true, Some(name)) => remote_join(remote, name),
        _ => remote.trim_end_matches('/').to_owned(),
    };
    let progress = Arc::new(Mutex::new(ctx.printer.progress()));
    let transfer = reporting(&progress, "uploaded");
    let size = if meta.is_dir() {
        let dir = DirOptions::new()
            .follow_symlinks(options.follow_symlinks)
            .transfer(transfer);
        fs.upload_dir(path, &target, &dir).await
    } else {
        fs.upload_with(path, &target, &transfer).await
    };
    if let Ok(mut progress) = progress.lock() {
        progress.clear();
    }
    Ok((target, size.with_context(context)?))
}

/// Copies `remote` (a file or folder in the sandbox) to `local` (a path, or `-` for standard
/// output, files only); returns where it went and how many bytes.
pub(crate) async fn download(
    ctx: &Ctx,
    sandbox: &Sandbox,
    remote: &str,
    local: &str,
    options: CopyOptions,
) -> Result<(String, u64)> {
    let fs = FileSystem::new(sandbox);
    let context = || format!("cannot download from sandbox `{}`", sandbox.name());
    let stat = fs.stat(remote).await.with_context(context)?;
    if stat.is_dir() && !options.recursive {
        return Err(CliError::Usage(format!(
            "`{remote}` is a folder: pass -r to copy it with what it holds"
        ))
        .into());
    }
    if local == "-" {
        if stat.is_dir() {
            return Err(CliError::Usage(format!(
                "`{remote}` is a folder: only a file can go to standard output"
            ))
            .into());
        }
        let data = fs.read(remote).await.with_context(context)?;
        ctx.printer
            .data_bytes(&data)
            .context("cannot write to standard output")?;
        return Ok(("standard output".to_owned(), data.len() as u64));
    }
    let mut target = PathBuf::from(local);
    // `dir/.` (or `.`) is a folder's content, copied into the destination itself.
    let contents_only = remote == "." || remote.ends_with("/.");
    if (local.ends_with('/') || target.is_dir())
        && !contents_only
        && let Some(name) = own_name(remote).or_else(|| own_name(&stat.name))
    {
        target = target.join(name);
    }
    let progress = Arc::new(Mutex::new(ctx.printer.progress()));
    let transfer = reporting(&progress, "downloaded");
    let size = if stat.is_dir() {
        let dir = DirOptions::new()
            .existing(options.existing)
            .transfer(transfer);
        fs.download_dir(remote, &target, &dir).await
    } else {
        fs.download_with(remote, &target, &transfer).await
    };
    if let Ok(mut progress) = progress.lock() {
        progress.clear();
    }
    let size = match size {
        Err(e @ sandbox_fs::Error::LocalExists { .. }) => {
            return Err(anyhow::Error::new(e).context(format!(
                "{}; pass --merge to merge into the folder or --replace to replace it",
                context()
            )));
        }
        size => size.with_context(context)?,
    };
    Ok((target.display().to_string(), size))
}

/// One side of `sandbox cp`: a local path, or `NAME:PATH` in a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Side {
    Local(String),
    Remote { sandbox: String, path: String },
}

impl Side {
    /// `NAME:PATH` is a sandbox's (`NAME:` alone is its working folder); anything starting
    /// with `/`, `.` or `~`, without a colon, or `-`, is this machine's. A local name with a
    /// colon in it is written `./a:b`.
    pub(crate) fn parse(text: &str) -> Side {
        if text == "-" || text.starts_with(['/', '.', '~']) {
            return Side::Local(text.to_owned());
        }
        match text.split_once(':') {
            Some((name, path)) if !name.is_empty() && !name.contains('/') => Side::Remote {
                sandbox: name.to_owned(),
                path: if path.is_empty() {
                    ".".to_owned()
                } else {
                    path.to_owned()
                },
            },
            _ => Side::Local(text.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_read_as_docker_cp_does() {
        assert_eq!(
            Side::parse("demo:/app/x"),
            Side::Remote {
                sandbox: "demo".into(),
                path: "/app/x".into()
            }
        );
        assert_eq!(
            Side::parse("demo:"),
            Side::Remote {
                sandbox: "demo".into(),
                path: ".".into()
            }
        );
        for local in ["./a:b", "/tmp/a:b", "a.txt", "-", "dir/a:b", "~/x"] {
            assert_eq!(Side::parse(local), Side::Local(local.into()), "{local}");
        }
    }

    #[test]
    fn own_names_leave_out_roots_and_dots() {
        assert_eq!(own_name("/app/dir/"), Some("dir"));
        assert_eq!(own_name("a.txt"), Some("a.txt"));
        assert_eq!(own_name("/"), None);
        assert_eq!(own_name("."), None);
        assert_eq!(own_name("x/.."), None);
        assert_eq!(remote_join("/app/", "a"), "/app/a");
    }
}

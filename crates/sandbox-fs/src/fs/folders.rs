//! Whole folders as one tar stream: [`FileSystem::upload_dir`] (archived by the host's `tar`,
//! extracted by the sandbox's) and [`FileSystem::download_dir`] (archived in the sandbox,
//! parsed on the host by [`unpack`] into a checked temporary folder and moved into place).

use std::path::{Path, PathBuf};

use sandbox_core::ExecOutput;

use super::local::LocalTemp;
use super::util::{check_path, last_line, ok_or_fail, parse_number, protocol, token};
use super::{DirOptions, FileSystem};
use crate::error::{Error, Result};
use crate::script;
use crate::unpack::{self, place::ExistingDir};

impl FileSystem {
    /// Copies a local folder into the sandbox folder `remote` (created when missing) as one tar
    /// stream: permissions kept, symlinks kept as symlinks, members matching the
    /// [`DirOptions::exclude`] globs left out. Returns the archive's size. The archive goes
    /// through the object store when it is large and one is configured.
    ///
    /// Files are extracted one by one: a failure part way can leave some of them written.
    ///
    /// # Errors
    ///
    /// [`Error::LocalNotFound`], [`Error::LocalKind`], [`Error::Local`] (local `tar`), and
    /// those of [`upload`](Self::upload) and [`mkdir`](Self::mkdir).
    #[tracing::instrument(name = "fs.upload_dir", skip_all, fields(local = %local.as_ref().display(), remote = %remote))]
    pub async fn upload_dir(
        &self,
        local: impl AsRef<Path>,
        remote: &str,
        options: &DirOptions,
    ) -> Result<u64> {
        let local = local.as_ref();
        check_path("remote path", remote)?;
        let meta = tokio::fs::metadata(local)
            .await
            .map_err(|e| Error::local(local, "reading metadata", e))?;
        if !meta.is_dir() {
            return Err(Error::LocalKind {
                path: local.to_owned(),
                expected_dir: true,
            });
        }
        let archive = LocalTemp(std::env::temp_dir().join(format!("sandbox-fs-{}.tar", token())));
        let mut tar = tokio::process::Command::new("tar");
        tar.arg("-c").arg("-f").arg(&archive.0).arg("-C").arg(local);
        if options.follow_symlinks {
            tar.arg("-h");
        }
        for pattern in &options.exclude {
            tar.arg(format!("--exclude={pattern}"));
        }
        tar.arg(".");
        run_local_tar(tar, local).await?;
        self.mkdir(remote, true).await?;
        let remote_archive = crate::entry::join(remote, &format!(".sandbox-fs.{}.tar", token()));
        let size = self
            .upload_with(&archive.0, &remote_archive, &options.transfer)
            .await?;
        let out = self
            .run_or_discard(
                "extract into",
                remote,
                script::TAR_EXTRACT,
                &[remote, &remote_archive],
                &remote_archive,
            )
            .await?;
        ok_or_fail("extract into", remote, out)?;
        Ok(size)
    }

    /// Copies the sandbox folder `remote` to the local folder `local` as one tar stream,
    /// extracted by the rules of safe extraction (`docs/files.md`): the stream is parsed on
    /// the host by a Rust reader into a fresh temporary folder beside `local`, checked member
    /// by member, and moved into place only once it was read in full. Permissions are kept
    /// without setuid, setgid, sticky and (unless [`DirOptions::keep_write_bits`]) group and
    /// other write bits; the owner is always the caller; modified times are kept; symlinks are
    /// kept when they point inside the folder and dropped with a warning otherwise; device
    /// nodes and FIFOs are skipped with a warning. Members matching the
    /// [`DirOptions::exclude`] globs are left out. Returns the archive's size.
    ///
    /// `local` may be missing or an empty folder; a folder with something in it is an error
    /// unless [`DirOptions::existing`] asks to merge or replace.
    ///
    /// # Errors
    ///
    /// [`Error::ArchiveRefused`] (the stream broke a rule; nothing was written),
    /// [`Error::LocalExists`], [`Error::LocalConflict`], [`Error::NotFound`],
    /// [`Error::NotADirectory`], [`Error::LocalKind`], [`Error::Local`], and those of
    /// [`download`](Self::download).
    #[tracing::instrument(name = "fs.download_dir", skip_all, fields(remote = %remote, local = %local.as_ref().display()))]
    pub async fn download_dir(
        &self,
        remote: &str,
        local: impl AsRef<Path>,
        options: &DirOptions,
    ) -> Result<u64> {
        let local = local.as_ref().to_owned();
        check_path("remote path", remote)?;
        let check_local = local.clone();
        let existing = options.existing;
        blocking(move || unpack::place::check(&check_local, existing)).await?;
        let remote_archive = format!("/tmp/.sandbox-fs.{}.tar", token());
        let mut args: Vec<String> = vec![remote.to_owned(), remote_archive.clone()];
        args.extend(options.exclude.iter().map(|p| format!("--exclude={p}")));
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self
            .run_or_discard(
                "archive",
                remote,
                script::TAR_CREATE,
                &arg_refs,
                &remote_archive,
            )
            .await?;
        let out = if out.code() == Some(1) {
            tracing::warn!(remote = %remote, stderr = %out.stderr_text().trim(), "files changed while the folder was archived");
            out
        } else {
            match ok_or_fail("archive", remote, out) {
                Ok(out) => out,
                Err(e) => {
                    self.discard(&remote_archive).await;
                    return Err(e);
                }
            }
        };
        let result = self
            .fetch_archive(remote, &remote_archive, &out, options)
            .await;
        self.discard(&remote_archive).await;
        let (archive, size) = result?;
        let limits = unpack::Limits {
            max_bytes: options.max_bytes,
            max_members: options.max_members,
            keep_write: options.keep_write_bits,
        };
        let remote_owned = remote.to_owned();
        let unpacked = blocking(move || {
            let unpacked = extract(&archive.0, &local, &remote_owned, &limits, existing);
            drop(archive);
            unpacked
        })
        .await?;
        for (member, why) in unpacked.left_out.iter().take(LEFT_OUT_WARNINGS) {
            tracing::warn!(remote = %remote, member = %member, "left out {why}");
        }
        if unpacked.left_out.len() > LEFT_OUT_WARNINGS {
            tracing::warn!(
                remote = %remote,
                count = unpacked.left_out.len() - LEFT_OUT_WARNINGS,
                "left out more members (symlinks pointing outside, device nodes, FIFOs)"
            );
        }
        tracing::debug!(
            members = unpacked.members,
            bytes = unpacked.bytes,
            "folder extracted"
        );
        Ok(size)
    }

    /// Runs a script that makes or uses the sandbox archive `archive`; when the command itself
    /// fails to run (console lost, timeout), the archive is removed before the error returns.
    async fn run_or_discard(
        &self,
        operation: &str,
        path: &str,
        body: &str,
        args: &[&str],
        archive: &str,
    ) -> Result<ExecOutput> {
        let out = self
            .run(operation, path, body, args, None, self.timeout)
            .await;
        if out.is_err() {
            self.discard(archive).await;
        }
        out
    }

    /// Brings the sandbox's archive of a folder (of the size its creator reported) to a local
    /// temporary file, refusing one larger than the limits allow before any byte moves.
    async fn fetch_archive(
        &self,
        remote: &str,
        remote_archive: &str,
        created: &ExecOutput,
        options: &DirOptions,
    ) -> Result<(LocalTemp, u64)> {
        let reported = parse_number(&created.stdout)
            .ok_or_else(|| protocol("archive", remote, "no archive size reported"))?;
        let allowed = options
            .max_bytes
            .saturating_add(options.max_members.saturating_mul(1024))
            .saturating_add(20 * 512);
        if reported > allowed {
            return Err(Error::ArchiveRefused {
                path: remote.to_owned(),
                member: None,
                rule: format!(
                    "is {reported} bytes, more than the {allowed} bytes the limits allow ({} bytes of content, {} members)",
                    options.max_bytes, options.max_members
                ),
            });
        }
        let archive = LocalTemp(std::env::temp_dir().join(format!("sandbox-fs-{}.tar", token())));
        let result = self
            .download_limited(remote_archive, &archive.0, &options.transfer, reported)
            .await;
        match result {
            Ok(size) => Ok((archive, size)),
            Err(Error::Oversized { limit, .. }) => Err(Error::ArchiveRefused {
                path: remote.to_owned(),
                member: None,
                rule: format!("sent more than the {limit} bytes it reported"),
            }),
            Err(e) => Err(e),
        }
    }
}

/// How many left-out members a folder download names in warnings before it only counts them.
const LEFT_OUT_WARNINGS: usize = 20;

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::local(
            PathBuf::new(),
            "running file work",
            std::io::Error::other(e),
        )),
    }
}

/// Extracts the archive file into a temporary folder beside `local` and moves it into place
/// (see [`unpack`]); on any error the temporary folder is gone and `local` is as it was.
fn extract(
    archive: &Path,
    local: &Path,
    remote: &str,
    limits: &unpack::Limits,
    existing: ExistingDir,
) -> Result<unpack::Unpacked> {
    let file = std::fs::File::open(archive)
        .map_err(|e| Error::local(archive, "opening the archive", e))?;
    let staging = unpack::place::Staging::beside(local)?;
    let reader = std::io::BufReader::with_capacity(256 * 1024, file);
    let unpacked = unpack::unpack(reader, staging.fd(), limits).map_err(|e| match e {
        unpack::UnpackError::Refused { member, rule } => Error::ArchiveRefused {
            path: remote.to_owned(),
            member,
            rule,
        },
        unpack::UnpackError::Io { member, source } => Error::Local {
            path: local.join(&member),
            action: "extracting the download".into(),
            source,
        },
    })?;
    staging.place(local, existing)?;
    Ok(unpacked)
}

async fn run_local_tar(mut tar: tokio::process::Command, path: &Path) -> Result<()> {
    tar.kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let output = tar
        .output()
        .await
        .map_err(|e| Error::local(path, "running tar", e))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(Error::local(
        path,
        "running tar",
        std::io::Error::other(format!("tar {}: {}", output.status, last_line(&stderr))),
    ))
}

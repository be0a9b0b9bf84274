//! [`FileSystem`]: file operations on one sandbox, over `sandbox-core`'s exec.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use sandbox_core::{ExecOutput, ExecRequest, Sandbox};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::entry::{DirEntry, base_name, parse_records};
use crate::error::{Error, Result};
use crate::script;
use crate::store::{DEFAULT_URL_EXPIRY, ObjectStore, TransferOptions, s3_error};
use crate::unpack::{self, place::ExistingDir};

/// Bytes of file content per console command when writing (sent base64 on the console).
pub const DEFAULT_WRITE_CHUNK: usize = 1 << 20;
/// Bytes of file content per console command when reading.
pub const DEFAULT_READ_CHUNK: usize = 8 << 20;
/// The deadline of each console command (a chunk, a listing, a tar run).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// The deadline of the sandbox's side of an object store transfer (`curl`).
pub const DEFAULT_TRANSFER_TIMEOUT: Duration = Duration::from_secs(3600);

/// How many times an idempotent step is tried when the console drops or times out.
const ATTEMPTS: u32 = 3;

/// File operations on a sandbox: read, write, list, copy, move, folders, large files.
///
/// Made by [`FileSystem::new`] or [`SandboxFsExt::fs`](crate::SandboxFsExt::fs); cheap to
/// clone. Paths are sandbox paths: absolute, or relative to the sandbox's working directory
/// (`/home/sandbox/app`). Any byte but NUL may appear in a path; paths travel as separate
/// arguments and are never parsed by a shell.
///
/// Writes are atomic: content goes to a temporary file beside the target, which is renamed
/// into place once complete (keeping the old file's permission bits), so a reader sees the
/// old file or the new one, and a failure leaves the old file (or none). Every step that is
/// retried after a dropped console writes at fixed offsets, so a retry never duplicates data.
#[derive(Clone)]
pub struct FileSystem {
    sandbox: Sandbox,
    store: Option<Arc<dyn ObjectStore>>,
    store_missing: String,
    url_expiry: Duration,
    threshold: u64,
    write_chunk: usize,
    read_chunk: usize,
    timeout: Duration,
    transfer_timeout: Duration,
    compress: Arc<std::sync::atomic::AtomicBool>,
    http: Arc<OnceLock<reqwest::Client>>,
}

impl std::fmt::Debug for FileSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSystem")
            .field("sandbox", &self.sandbox.id())
            .field("store", &self.store)
            .field("threshold", &self.threshold)
            .field("write_chunk", &self.write_chunk)
            .field("read_chunk", &self.read_chunk)
            .finish_non_exhaustive()
    }
}

/// Options of [`FileSystem::rm`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct RmOptions {
    recursive: bool,
    force: bool,
}

impl RmOptions {
    /// Removes one file or symlink; a missing path is an error.
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes directories with everything in them.
    pub fn recursive(mut self, recursive: bool) -> Self {
        self.recursive = recursive;
        self
    }

    /// A missing path is not an error.
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }
}

/// The default of [`DirOptions::max_bytes`]: 16 GiB of file content per folder download.
pub const DEFAULT_DIR_MAX_BYTES: u64 = 16 << 30;
/// The default of [`DirOptions::max_members`]: a million files, folders and links per folder
/// download.
pub const DEFAULT_DIR_MAX_MEMBERS: u64 = 1_000_000;

/// Options of folder transfers ([`FileSystem::upload_dir`], [`FileSystem::download_dir`]).
#[derive(Debug, Clone)]
#[must_use]
pub struct DirOptions {
    exclude: Vec<String>,
    transfer: TransferOptions,
    existing: ExistingDir,
    max_bytes: u64,
    max_members: u64,
    keep_write_bits: bool,
    follow_symlinks: bool,
}

impl Default for DirOptions {
    fn default() -> Self {
        DirOptions {
            exclude: Vec::new(),
            transfer: TransferOptions::default(),
            existing: ExistingDir::Refuse,
            max_bytes: DEFAULT_DIR_MAX_BYTES,
            max_members: DEFAULT_DIR_MAX_MEMBERS,
            keep_write_bits: false,
            follow_symlinks: false,
        }
    }
}

impl DirOptions {
    /// Everything, with default transfer options and limits; a download refuses a local
    /// folder that already holds something.
    pub fn new() -> Self {
        Self::default()
    }

    /// What a download does when the local folder already holds something (refuse, merge or
    /// replace).
    pub fn existing(mut self, existing: ExistingDir) -> Self {
        self.existing = existing;
        self
    }

    /// The most bytes of file content a download writes ([`DEFAULT_DIR_MAX_BYTES`]); the
    /// archive itself may be this plus 1 KiB per allowed member. Going past it stops the
    /// download with [`Error::ArchiveRefused`] and leaves nothing behind.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// The most members (files, folders, links, skipped nodes) a download takes
    /// ([`DEFAULT_DIR_MAX_MEMBERS`]).
    pub fn max_members(mut self, members: u64) -> Self {
        self.max_members = members;
        self
    }

    /// Keeps group and other write permission on downloaded files and folders (cleared by
    /// default, as setuid, setgid and sticky bits always are).
    pub fn keep_write_bits(mut self, keep: bool) -> Self {
        self.keep_write_bits = keep;
        self
    }

    /// Uploads what symlinks in the local folder point to instead of the links themselves
    /// (`tar -h`), including targets outside the folder. Off by default: links travel as links
    /// and nothing outside the folder is read.
    pub fn follow_symlinks(mut self, follow: bool) -> Self {
        self.follow_symlinks = follow;
        self
    }

    /// Leaves out members matching this glob (GNU tar's `--exclude`: `*`, `?` and `[...]`,
    /// matched against each member's path and every trailing part of it, so `*.pyc` and
    /// `node_modules` match at any depth).
    pub fn exclude(mut self, pattern: impl Into<String>) -> Self {
        self.exclude.push(pattern.into());
        self
    }

    /// The options of the archive's transfer (progress, object store).
    pub fn transfer(mut self, transfer: TransferOptions) -> Self {
        self.transfer = transfer;
        self
    }
}

/// Where bytes to write come from.
enum Source {
    Bytes(Bytes),
    File {
        file: tokio::fs::File,
        path: PathBuf,
    },
}

impl Source {
    async fn read(&mut self, offset: u64, len: usize) -> Result<Bytes> {
        match self {
            Source::Bytes(bytes) => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let end = start.saturating_add(len).min(bytes.len());
                Ok(bytes.slice(start..end))
            }
            Source::File { file, path } => {
                let mut buf = vec![0u8; len];
                let mut filled = 0;
                while filled < len {
                    let n = file
                        .read(&mut buf[filled..])
                        .await
                        .map_err(|e| Error::local(path.clone(), "reading", e))?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                buf.truncate(filled);
                Ok(Bytes::from(buf))
            }
        }
    }
}

/// Where read bytes go.
enum Sink {
    Memory(Vec<u8>),
    File {
        file: tokio::fs::File,
        path: PathBuf,
    },
}

impl Sink {
    async fn write(&mut self, data: &[u8]) -> Result<()> {
        match self {
            Sink::Memory(buf) => {
                buf.extend_from_slice(data);
                Ok(())
            }
            Sink::File { file, path } => file
                .write_all(data)
                .await
                .map_err(|e| Error::local(path.clone(), "writing", e)),
        }
    }
}

/// A local file removed when dropped (temporary archives and downloads).
struct LocalTemp(PathBuf);

impl Drop for LocalTemp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl FileSystem {
    /// File operations on `sandbox`.
    ///
    /// The object store comes from the environment (`SPACES_*`, feature `spaces`) and the
    /// large-file threshold from `SANDBOX_LARGE_FILE_THRESHOLD` (default 256000 bytes).
    #[must_use]
    pub fn new(sandbox: &Sandbox) -> Self {
        let (store, store_missing, url_expiry) = store_from_env();
        FileSystem {
            sandbox: sandbox.clone(),
            store,
            store_missing,
            url_expiry,
            threshold: crate::store::threshold_from_env(),
            write_chunk: DEFAULT_WRITE_CHUNK,
            read_chunk: DEFAULT_READ_CHUNK,
            timeout: DEFAULT_COMMAND_TIMEOUT,
            transfer_timeout: DEFAULT_TRANSFER_TIMEOUT,
            compress: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            http: Arc::new(OnceLock::new()),
        }
    }

    /// Uses DigitalOcean Spaces with this configuration for large transfers.
    #[cfg(feature = "spaces")]
    #[must_use]
    pub fn with_spaces(mut self, config: crate::store::SpacesConfig) -> Self {
        self.url_expiry = config.url_expiry();
        self.store = Some(Arc::new(crate::spaces::SpacesStore::new(config)));
        self
    }

    /// Uses this object store for large transfers (URLs valid for 15 minutes unless a
    /// transfer asks otherwise).
    #[must_use]
    pub fn with_object_store(mut self, store: Arc<dyn ObjectStore>) -> Self {
        self.store = Some(store);
        self.url_expiry = DEFAULT_URL_EXPIRY;
        self
    }

    /// Uses no object store: every transfer goes through the console.
    #[must_use]
    pub fn without_object_store(mut self) -> Self {
        self.store = None;
        self.store_missing = "the object store was turned off".into();
        self
    }

    /// Files of at least this many bytes go through the object store in
    /// [`upload`](Self::upload) and [`download`](Self::download), when one is configured.
    #[must_use]
    pub fn with_large_file_threshold(mut self, bytes: u64) -> Self {
        self.threshold = bytes;
        self
    }

    /// Bytes of content per console command when writing and reading (at least 4096).
    #[must_use]
    pub fn with_chunk_sizes(mut self, write: usize, read: usize) -> Self {
        self.write_chunk = write.max(4096);
        self.read_chunk = read.max(4096);
        self
    }

    /// Whether chunks sent through the console are gzip-compressed when that makes them at
    /// least a tenth smaller (on by default; the sandbox needs `gzip`, and without it chunks
    /// go uncompressed).
    #[must_use]
    pub fn with_compression(self, compress: bool) -> Self {
        let mut this = self;
        this.compress = Arc::new(std::sync::atomic::AtomicBool::new(compress));
        this
    }

    /// The deadline of each console command (5 minutes by default).
    #[must_use]
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The sandbox these operations act on.
    #[must_use]
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Whether an object store is configured for large transfers.
    #[must_use]
    pub fn has_object_store(&self) -> bool {
        self.store.is_some()
    }

    /// The large-file threshold in bytes.
    #[must_use]
    pub fn large_file_threshold(&self) -> u64 {
        self.threshold
    }

    // ----- reading and writing -----

    /// Reads a file's bytes, exactly.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::IsADirectory`], [`Error::PermissionDenied`],
    /// [`Error::Exec`].
    #[tracing::instrument(name = "fs.read", skip_all, fields(path = %path))]
    pub async fn read(&self, path: &str) -> Result<Vec<u8>> {
        check_path("path", path)?;
        let mut sink = Sink::Memory(Vec::new());
        self.read_console(path, &mut sink, &TransferOptions::default(), u64::MAX)
            .await?;
        match sink {
            Sink::Memory(data) => Ok(data),
            Sink::File { .. } => Ok(Vec::new()),
        }
    }

    /// Reads a file as UTF-8 text, exactly (blank lines, trailing newlines and `\r` kept).
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read), and [`Error::NotUtf8`].
    pub async fn read_text(&self, path: &str) -> Result<String> {
        let data = self.read(path).await?;
        String::from_utf8(data).map_err(|e| Error::NotUtf8 {
            path: path.to_owned(),
            valid_up_to: e.utf8_error().valid_up_to(),
        })
    }

    /// Creates or replaces a file with these bytes, atomically; creates missing parent
    /// directories. An empty `data` makes an empty file. Writing through a symlink replaces
    /// the file it points to.
    ///
    /// # Errors
    ///
    /// [`Error::IsADirectory`], [`Error::NotADirectory`] (a parent is a file),
    /// [`Error::PermissionDenied`], [`Error::Exec`].
    #[tracing::instrument(name = "fs.write", skip_all, fields(path = %path, bytes = data.as_ref().len()))]
    pub async fn write(&self, path: &str, data: impl AsRef<[u8]>) -> Result<()> {
        self.write_bytes(path, data.as_ref(), false).await
    }

    /// Appends bytes to a file (created when missing), atomically: the new content is built
    /// in a copy that replaces the file once complete.
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write).
    #[tracing::instrument(name = "fs.append", skip_all, fields(path = %path, bytes = data.as_ref().len()))]
    pub async fn append(&self, path: &str, data: impl AsRef<[u8]>) -> Result<()> {
        self.write_bytes(path, data.as_ref(), true).await
    }

    /// Copies a local file into the sandbox (atomically); returns its size. Through the object
    /// store when one is configured and the file has at least
    /// [`large_file_threshold`](Self::large_file_threshold) bytes, else through the console.
    ///
    /// # Errors
    ///
    /// [`Error::LocalNotFound`], [`Error::LocalKind`], and those of [`write`](Self::write)
    /// and [`upload_large`](Self::upload_large).
    pub async fn upload(&self, local: impl AsRef<Path>, remote: &str) -> Result<u64> {
        self.upload_with(local, remote, &TransferOptions::default())
            .await
    }

    /// [`upload`](Self::upload) with options (progress, object store behaviour).
    ///
    /// # Errors
    ///
    /// As [`upload`](Self::upload).
    #[tracing::instrument(name = "fs.upload", skip_all, fields(local = %local.as_ref().display(), remote = %remote))]
    pub async fn upload_with(
        &self,
        local: impl AsRef<Path>,
        remote: &str,
        options: &TransferOptions,
    ) -> Result<u64> {
        let local = local.as_ref();
        check_path("remote path", remote)?;
        let size = local_file_size(local).await?;
        if self.store.is_some() && size >= self.threshold {
            return self.upload_store(local, size, remote, options).await;
        }
        let file = tokio::fs::File::open(local)
            .await
            .map_err(|e| Error::local(local, "opening for upload", e))?;
        let source = Source::File {
            file,
            path: local.to_owned(),
        };
        self.write_console(remote, source, size, false, options)
            .await?;
        Ok(size)
    }

    /// Copies a sandbox file to a local path (atomically, parents created); returns its size.
    /// Through the object store when one is configured and the file has at least
    /// [`large_file_threshold`](Self::large_file_threshold) bytes.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::IsADirectory`], [`Error::PermissionDenied`],
    /// [`Error::LocalKind`] (the local path is a directory), [`Error::Local`].
    pub async fn download(&self, remote: &str, local: impl AsRef<Path>) -> Result<u64> {
        self.download_with(remote, local, &TransferOptions::default())
            .await
    }

    /// [`download`](Self::download) with options.
    ///
    /// # Errors
    ///
    /// As [`download`](Self::download).
    #[tracing::instrument(name = "fs.download", skip_all, fields(remote = %remote, local = %local.as_ref().display()))]
    pub async fn download_with(
        &self,
        remote: &str,
        local: impl AsRef<Path>,
        options: &TransferOptions,
    ) -> Result<u64> {
        self.download_limited(remote, local.as_ref(), options, u64::MAX)
            .await
    }

    /// [`download_with`](Self::download_with), refusing ([`Error::Oversized`]) a file that
    /// sends more than `limit` bytes.
    async fn download_limited(
        &self,
        remote: &str,
        local: &Path,
        options: &TransferOptions,
        limit: u64,
    ) -> Result<u64> {
        check_path("remote path", remote)?;
        if self.store.is_some() {
            let size = self.size(remote).await?;
            if size >= self.threshold {
                return self.download_store(remote, local, options, limit).await;
            }
        }
        let (temp, file) = local_temp_beside(local).await?;
        let mut sink = Sink::File {
            file,
            path: temp.0.clone(),
        };
        let size = self.read_console(remote, &mut sink, options, limit).await?;
        if let Sink::File { mut file, path } = sink {
            file.flush()
                .await
                .map_err(|e| Error::local(path, "writing", e))?;
        }
        tokio::fs::rename(&temp.0, local)
            .await
            .map_err(|e| Error::local(local, "moving the download into place", e))?;
        Ok(size)
    }

    /// Copies a local file into the sandbox through the object store: the host sends it with
    /// a presigned PUT, the sandbox fetches it with `curl` and a presigned GET into a temporary
    /// file, checks its size and renames it into place. The object is removed afterwards
    /// (also after a failure) unless [`TransferOptions::keep_object`] says otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::SpacesNotConfigured`], [`Error::BadCredentials`], [`Error::UrlExpired`],
    /// [`Error::ObjectStore`], [`Error::LocalNotFound`], and the sandbox errors of
    /// [`write`](Self::write).
    #[tracing::instrument(name = "fs.upload_large", skip_all, fields(local = %local.as_ref().display(), remote = %remote))]
    pub async fn upload_large(
        &self,
        local: impl AsRef<Path>,
        remote: &str,
        options: &TransferOptions,
    ) -> Result<u64> {
        let local = local.as_ref();
        check_path("remote path", remote)?;
        self.store()?;
        let size = local_file_size(local).await?;
        self.upload_store(local, size, remote, options).await
    }

    /// Copies a sandbox file to a local path through the object store: the sandbox sends it
    /// with `curl` and a presigned PUT, the host fetches it with a presigned GET. The object is
    /// removed afterwards unless [`TransferOptions::keep_object`] says otherwise.
    ///
    /// # Errors
    ///
    /// As [`upload_large`](Self::upload_large), and [`Error::NotFound`],
    /// [`Error::IsADirectory`].
    #[tracing::instrument(name = "fs.download_large", skip_all, fields(remote = %remote, local = %local.as_ref().display()))]
    pub async fn download_large(
        &self,
        remote: &str,
        local: impl AsRef<Path>,
        options: &TransferOptions,
    ) -> Result<u64> {
        check_path("remote path", remote)?;
        self.store()?;
        self.download_store(remote, local.as_ref(), options, u64::MAX)
            .await
    }

    // ----- metadata -----

    /// Lists a directory: every entry but `.` and `..`, sorted by name, with kind, symlink
    /// target, size, permissions and modified time. Names may hold any byte but `/` and NUL.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::NotADirectory`], [`Error::PermissionDenied`].
    #[tracing::instrument(name = "fs.list", skip_all, fields(path = %path))]
    pub async fn list(&self, path: &str) -> Result<Vec<DirEntry>> {
        check_path("path", path)?;
        let out = self
            .run_idempotent("list", path, &script::list(), &[path], None)
            .await?
            .0;
        let out = ok_or_fail("list", path, out)?;
        let mut entries =
            parse_records(&out.stdout, Some(path)).map_err(|e| protocol("list", path, &e))?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Describes a path (a symlink itself, not its target).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::PermissionDenied`].
    #[tracing::instrument(name = "fs.stat", skip_all, fields(path = %path))]
    pub async fn stat(&self, path: &str) -> Result<DirEntry> {
        check_path("path", path)?;
        let out = self
            .run_idempotent("stat", path, &script::stat(), &[path], None)
            .await?
            .0;
        let out = ok_or_fail("stat", path, out)?;
        let mut entries =
            parse_records(&out.stdout, None).map_err(|e| protocol("stat", path, &e))?;
        match entries.pop() {
            Some(mut entry) if entries.is_empty() => {
                entry.name = base_name(path);
                Ok(entry)
            }
            _ => Err(protocol("stat", path, "expected one entry")),
        }
    }

    /// Whether the path exists (a symlink counts when its target exists).
    ///
    /// # Errors
    ///
    /// [`Error::Exec`] when the sandbox cannot be asked.
    pub async fn exists(&self, path: &str) -> Result<bool> {
        self.test('e', path).await
    }

    /// Whether the path is a regular file (symlinks followed).
    ///
    /// # Errors
    ///
    /// [`Error::Exec`] when the sandbox cannot be asked.
    pub async fn is_file(&self, path: &str) -> Result<bool> {
        self.test('f', path).await
    }

    /// Whether the path is a directory (symlinks followed).
    ///
    /// # Errors
    ///
    /// [`Error::Exec`] when the sandbox cannot be asked.
    pub async fn is_dir(&self, path: &str) -> Result<bool> {
        self.test('d', path).await
    }

    /// The size in bytes of a file (symlinks followed).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::IsADirectory`].
    #[tracing::instrument(name = "fs.size", skip_all, fields(path = %path))]
    pub async fn size(&self, path: &str) -> Result<u64> {
        check_path("path", path)?;
        let out = self
            .run_idempotent("size", path, script::SIZE_OF, &[path], None)
            .await?
            .0;
        let out = ok_or_fail("size", path, out)?;
        parse_number(&out.stdout).ok_or_else(|| protocol("size", path, "not a number"))
    }

    // ----- changing the tree -----

    /// Creates a directory; with `parents`, also its missing parents, and an existing
    /// directory is not an error.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyExists`], [`Error::NotFound`] (a parent is missing and `parents` is
    /// false), [`Error::NotADirectory`], [`Error::PermissionDenied`].
    #[tracing::instrument(name = "fs.mkdir", skip_all, fields(path = %path, parents))]
    pub async fn mkdir(&self, path: &str, parents: bool) -> Result<()> {
        check_path("path", path)?;
        let flag = if parents { "p" } else { "" };
        let (out, attempt) = self
            .run_idempotent("mkdir", path, script::MKDIR, &[path, flag], None)
            .await?;
        if attempt > 1 && out.code() == Some(script::EXISTS) {
            return Ok(());
        }
        ok_or_fail("mkdir", path, out).map(drop)
    }

    /// Removes a file, a symlink, or with [`RmOptions::recursive`] a directory tree.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] (unless forced), [`Error::IsADirectory`] (a directory without
    /// `recursive`), [`Error::PermissionDenied`].
    #[tracing::instrument(name = "fs.rm", skip_all, fields(path = %path, ?options))]
    pub async fn rm(&self, path: &str, options: RmOptions) -> Result<()> {
        check_path("path", path)?;
        let mut flags = String::new();
        if options.recursive {
            flags.push('r');
        }
        if options.force {
            flags.push('f');
        }
        let (out, attempt) = self
            .run_idempotent("rm", path, script::RM, &[path, &flags], None)
            .await?;
        if attempt > 1 && out.code() == Some(script::NOT_FOUND) {
            return Ok(());
        }
        ok_or_fail("rm", path, out).map(drop)
    }

    /// Copies `src` to `dst` as `cp` does (into `dst` when it is a directory); `recursive`
    /// copies directories.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] (`src`), [`Error::IsADirectory`] (`src` without `recursive`),
    /// [`Error::PermissionDenied`], [`Error::Remote`].
    #[tracing::instrument(name = "fs.copy", skip_all, fields(src = %src, dst = %dst))]
    pub async fn copy(&self, src: &str, dst: &str, recursive: bool) -> Result<()> {
        check_path("source path", src)?;
        check_path("destination path", dst)?;
        let flag = if recursive { "r" } else { "" };
        let out = self
            .run_idempotent("copy", src, script::COPY, &[src, dst, flag], None)
            .await?
            .0;
        ok_or_fail_two("copy", src, dst, out).map(drop)
    }

    /// Renames or moves `src` to `dst` as `mv` does (into `dst` when it is a directory).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] (`src`), [`Error::PermissionDenied`], [`Error::Remote`].
    #[tracing::instrument(name = "fs.rename", skip_all, fields(src = %src, dst = %dst))]
    pub async fn rename(&self, src: &str, dst: &str) -> Result<()> {
        check_path("source path", src)?;
        check_path("destination path", dst)?;
        let out = self
            .run(
                "rename",
                src,
                script::RENAME,
                &[src, dst],
                None,
                self.timeout,
            )
            .await?;
        ok_or_fail_two("rename", src, dst, out).map(drop)
    }

    /// Changes permissions. `mode` is octal (`755`, `0644`, `4755`) or symbolic as `chmod`
    /// takes it (`u+x`, `go-w`, `a=rX,u+w`); anything else is refused before it is sent.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] (the mode), [`Error::NotFound`],
    /// [`Error::PermissionDenied`].
    #[tracing::instrument(name = "fs.chmod", skip_all, fields(path = %path, mode = %mode))]
    pub async fn chmod(&self, path: &str, mode: &str) -> Result<()> {
        check_path("path", path)?;
        validate_mode(mode)?;
        let out = self
            .run_idempotent("chmod", path, script::CHMOD, &[mode, path], None)
            .await?
            .0;
        ok_or_fail("chmod", path, out).map(drop)
    }

    // ----- folders -----

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
            .run(
                "extract into",
                remote,
                script::TAR_EXTRACT,
                &[remote, &remote_archive],
                None,
                self.timeout,
            )
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                self.discard(&remote_archive).await;
                return Err(e);
            }
        };
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
            .run(
                "archive",
                remote,
                script::TAR_CREATE,
                &arg_refs,
                None,
                self.timeout,
            )
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                self.discard(&remote_archive).await;
                return Err(e);
            }
        };
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

    // ----- internals -----

    fn store(&self) -> Result<&Arc<dyn ObjectStore>> {
        self.store
            .as_ref()
            .ok_or_else(|| Error::SpacesNotConfigured {
                missing: self.store_missing.clone(),
            })
    }

    fn client(&self) -> Result<&reqwest::Client> {
        if let Some(client) = self.http.get() {
            return Ok(client);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::object_store("set up", "", format!("HTTP client: {e}")))?;
        Ok(self.http.get_or_init(|| client))
    }

    fn object_key(&self, kind: &str, name: &str) -> String {
        let name = if name.is_empty() { "file" } else { name };
        let mut id = token();
        id.truncate(8);
        format!("sandbox-{}/{kind}/{id}/{name}", self.sandbox.id())
    }

    async fn test(&self, flag: char, path: &str) -> Result<bool> {
        check_path("path", path)?;
        let flag = flag.to_string();
        let out = self
            .run_idempotent("test", path, script::TEST, &[&flag, path], None)
            .await?
            .0;
        match out.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(failure("test", path, &out)),
        }
    }

    /// Runs a script as `sh -c SCRIPT sandbox-fs ARGS...` in the C locale.
    async fn run(
        &self,
        operation: &str,
        path: &str,
        body: &str,
        args: &[&str],
        stdin: Option<Bytes>,
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let mut argv: Vec<String> = vec![
            "sh".into(),
            "-c".into(),
            format!("{}{body}", script::PRELUDE),
            "sandbox-fs".into(),
        ];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        let mut request = ExecRequest::argv(argv).env("LC_ALL", "C").timeout(timeout);
        if let Some(input) = stdin {
            request = request.stdin(input);
        }
        self.sandbox
            .exec_with(request)
            .await
            .map_err(|source| Error::Exec {
                operation: operation.to_owned(),
                path: path.to_owned(),
                source,
            })
    }

    /// Runs an idempotent script, again when the console drops or the command times out;
    /// returns the output and the attempt that produced it (1-based).
    async fn run_idempotent(
        &self,
        operation: &str,
        path: &str,
        body: &str,
        args: &[&str],
        stdin: Option<Bytes>,
    ) -> Result<(ExecOutput, u32)> {
        let mut attempt = 1;
        loop {
            match self
                .run(operation, path, body, args, stdin.clone(), self.timeout)
                .await
            {
                Ok(out) => return Ok((out, attempt)),
                Err(e) if e.is_retryable() && attempt < ATTEMPTS => {
                    tracing::warn!(operation, path, attempt, error = %e, "retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn discard(&self, path: &str) {
        if let Err(e) = self
            .run(
                "discard",
                path,
                script::DISCARD,
                &[path],
                None,
                self.timeout,
            )
            .await
        {
            tracing::warn!(path, error = %e, "could not remove a temporary file");
        }
    }

    /// One step of the write script with `data` on stdin: gzip-compressed (flag `z`) when that
    /// saves at least a tenth of the bytes, plain again (and from then on) when the sandbox
    /// has no `gzip`. `args` are `$2..$6`; the chunk's length is added as `$7`.
    async fn write_step(
        &self,
        path: &str,
        flags: &str,
        args: [&str; 5],
        data: &Bytes,
    ) -> Result<(ExecOutput, u32)> {
        let length = data.len().to_string();
        let plain = |flags: &str| -> Vec<String> {
            let mut all = vec![flags.to_owned()];
            all.extend(args.iter().map(|a| (*a).to_owned()));
            all.push(length.clone());
            all
        };
        if flags.contains('d')
            && data.len() >= 1024
            && self.compress.load(std::sync::atomic::Ordering::Relaxed)
            && let Some(packed) = gzip(data)
        {
            let argv = plain(&format!("{flags}z"));
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let (out, attempt) = self
                .run_idempotent("write", path, &script::write(), &argv, Some(packed))
                .await?;
            if out.code() != Some(script::NO_GZIP) {
                return Ok((out, attempt));
            }
            tracing::debug!("the sandbox has no gzip; sending chunks uncompressed");
            self.compress
                .store(false, std::sync::atomic::Ordering::Relaxed);
        }
        let argv = plain(flags);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let stdin = (!data.is_empty()).then(|| data.clone());
        self.run_idempotent("write", path, &script::write(), &argv, stdin)
            .await
    }

    /// The chunked, atomic write: begin (temporary file), data at fixed offsets, commit.
    /// [`write`](Self::write) or, with `append`, [`append`](Self::append).
    async fn write_bytes(&self, path: &str, data: &[u8], append: bool) -> Result<()> {
        check_path("path", path)?;
        let data = Bytes::copy_from_slice(data);
        let total = data.len() as u64;
        self.write_console(
            path,
            Source::Bytes(data),
            total,
            append,
            &TransferOptions::default(),
        )
        .await
    }

    async fn write_console(
        &self,
        path: &str,
        mut source: Source,
        total: u64,
        append: bool,
        options: &TransferOptions,
    ) -> Result<()> {
        let chunk = self.write_chunk as u64;
        let chunks = total.div_ceil(chunk).max(1);
        let token = token();
        let total_text = total.to_string();
        // Begin: with the first chunk when writing, alone when appending (its copy of the
        // current file must not be redone after a commit).
        let first = if append {
            Bytes::new()
        } else {
            source.read(0, self.write_chunk).await?
        };
        let mut flags = String::from("b");
        if append {
            flags.push('a');
        } else if !first.is_empty() {
            flags.push('d');
        }
        let one_call = (!append && chunks == 1) || (append && total == 0);
        if one_call {
            flags.push('c');
        }
        let (out, _) = self
            .write_step(path, &flags, [path, &token, "0", &total_text, "0"], &first)
            .await?;
        let out = ok_or_fail("write", path, out)?;
        let mut fields = out.stdout.split(|&b| b == 0);
        let target = fields
            .next()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .unwrap_or_default();
        let temp = fields
            .next()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .unwrap_or_default();
        let base = fields
            .next()
            .and_then(|f| std::str::from_utf8(f).ok())
            .unwrap_or_default()
            .to_owned();
        if target.is_empty() || temp.is_empty() || base.parse::<u64>().is_err() {
            return Err(protocol(
                "write",
                path,
                "the begin step did not report its files",
            ));
        }
        let mut done = first.len() as u64;
        options.report(done, total);
        if one_call {
            return Ok(());
        }
        let start = if append { 0 } else { 1 };
        let result = async {
            for index in start..chunks {
                let offset = index * chunk;
                let data = source.read(offset, self.write_chunk).await?;
                let last = index + 1 == chunks;
                let expected = (total - offset).min(chunk);
                if data.len() as u64 != expected {
                    return Err(Error::Incomplete {
                        path: path.to_owned(),
                        expected: total,
                        actual: offset + data.len() as u64,
                    });
                }
                let mut flags = String::new();
                if !data.is_empty() {
                    flags.push('d');
                }
                if last {
                    flags.push('c');
                }
                let offset_text = offset.to_string();
                let (out, attempt) = self
                    .write_step(
                        path,
                        &flags,
                        [&target, &temp, &offset_text, &total_text, &base],
                        &data,
                    )
                    .await?;
                if last && attempt > 1 && out.code() == Some(script::GONE) {
                    // An earlier attempt committed before its answer was lost.
                } else {
                    ok_or_fail("write", path, out)?;
                }
                done += data.len() as u64;
                options.report(done, total);
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            self.discard(&temp).await;
        }
        result
    }

    /// The chunked read into a sink; returns the byte count.
    /// Reads a file through the console into `sink`; more than `limit` bytes is
    /// [`Error::Oversized`], and a chunk longer than asked for is a protocol error.
    async fn read_console(
        &self,
        path: &str,
        sink: &mut Sink,
        options: &TransferOptions,
        limit: u64,
    ) -> Result<u64> {
        let chunk_text = self.read_chunk.to_string();
        let (out, _) = self
            .run_idempotent("read", path, script::READ, &[path, &chunk_text], None)
            .await?;
        let out = ok_or_fail("read", path, out)?;
        let newline = out
            .stdout
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| protocol("read", path, "no header line"))?;
        let header = String::from_utf8_lossy(&out.stdout[..newline]).into_owned();
        let data = &out.stdout[newline + 1..];
        let (kind, size) = header
            .split_once(' ')
            .and_then(|(k, s)| Some((k.to_owned(), s.parse::<u64>().ok()?)))
            .ok_or_else(|| protocol("read", path, "bad header line"))?;
        let oversized = || Error::Oversized {
            path: path.to_owned(),
            limit,
        };
        if data.len() as u64 > limit || (kind == "r" && size > limit) {
            return Err(oversized());
        }
        sink.write(data).await?;
        let mut done = data.len() as u64;
        if kind != "r" || size <= self.read_chunk as u64 {
            options.report(done, done);
            return Ok(done);
        }
        options.report(done, size);
        while done < size {
            let want = (size - done).min(self.read_chunk as u64);
            let offset = done.to_string();
            let count = want.to_string();
            let (out, _) = self
                .run_idempotent(
                    "read",
                    path,
                    script::READ_RANGE,
                    &[path, &offset, &count],
                    None,
                )
                .await?;
            let out = ok_or_fail("read", path, out)?;
            if out.stdout.len() as u64 > want {
                return Err(protocol("read", path, "a chunk longer than asked for"));
            }
            if out.stdout.is_empty() {
                return Err(Error::Incomplete {
                    path: path.to_owned(),
                    expected: size,
                    actual: done,
                });
            }
            sink.write(&out.stdout).await?;
            done += out.stdout.len() as u64;
            options.report(done, size);
        }
        Ok(done)
    }

    async fn upload_store(
        &self,
        local: &Path,
        size: u64,
        remote: &str,
        options: &TransferOptions,
    ) -> Result<u64> {
        let store = Arc::clone(self.store()?);
        let client = self.client()?.clone();
        let name = local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let key = self.object_key("uploads", &name);
        let expiry = options.url_expiry.unwrap_or(self.url_expiry);
        let result = async {
            let put = store.presign_put(&key, expiry).await?;
            crate::http::put_file(&client, &put, &key, local, size, options).await?;
            let get = store.presign_get(&key, expiry).await?;
            let token = token();
            let size_text = size.to_string();
            let out = self
                .run(
                    "upload",
                    remote,
                    &script::fetch(),
                    &[remote, &token, &size_text],
                    Some(curl_config(&get)),
                    self.transfer_timeout,
                )
                .await?;
            transfer_ok("upload", remote, &key, out)?;
            options.report(size, size);
            Ok(size)
        }
        .await;
        self.finish_object(&store, &key, options).await;
        result
    }

    async fn download_store(
        &self,
        remote: &str,
        local: &Path,
        options: &TransferOptions,
        limit: u64,
    ) -> Result<u64> {
        let store = Arc::clone(self.store()?);
        let client = self.client()?.clone();
        let key = self.object_key("downloads", &base_name(remote));
        let expiry = options.url_expiry.unwrap_or(self.url_expiry);
        let result = async {
            let (temp, file) = local_temp_beside(local).await?;
            let put = store.presign_put(&key, expiry).await?;
            let token = token();
            let out = self
                .run(
                    "download",
                    remote,
                    script::SEND,
                    &[remote, &token],
                    Some(curl_config(&put)),
                    self.transfer_timeout,
                )
                .await?;
            let out = transfer_ok("download", remote, &key, out)?;
            let size = parse_number(&out.stdout)
                .ok_or_else(|| protocol("download", remote, "no size reported"))?;
            if size > limit {
                return Err(Error::Oversized {
                    path: remote.to_owned(),
                    limit,
                });
            }
            let get = store.presign_get(&key, expiry).await?;
            let got = crate::http::get_to_file(&client, &get, &key, (file, &temp.0), size, options)
                .await
                .map_err(|e| match e {
                    Error::Oversized { limit, .. } => Error::Oversized {
                        path: remote.to_owned(),
                        limit,
                    },
                    e => e,
                })?;
            if got != size {
                return Err(Error::Incomplete {
                    path: remote.to_owned(),
                    expected: size,
                    actual: got,
                });
            }
            tokio::fs::rename(&temp.0, local)
                .await
                .map_err(|e| Error::local(local, "moving the download into place", e))?;
            options.report(size, size);
            Ok(size)
        }
        .await;
        self.finish_object(&store, &key, options).await;
        result
    }

    async fn finish_object(
        &self,
        store: &Arc<dyn ObjectStore>,
        key: &str,
        options: &TransferOptions,
    ) {
        if options.keep_object {
            tracing::debug!(key, "object kept in the store as asked");
            return;
        }
        if let Err(e) = store.delete(key).await {
            tracing::warn!(key, error = %e, "could not remove the transfer's object");
        }
    }
}

/// Adds [`fs`](SandboxFsExt::fs) to [`Sandbox`].
pub trait SandboxFsExt {
    /// File operations on this sandbox ([`FileSystem::new`]).
    fn fs(&self) -> FileSystem;
}

impl SandboxFsExt for Sandbox {
    fn fs(&self) -> FileSystem {
        FileSystem::new(self)
    }
}

fn store_from_env() -> (Option<Arc<dyn ObjectStore>>, String, Duration) {
    #[cfg(feature = "spaces")]
    {
        match crate::store::SpacesConfig::from_env() {
            Ok(Some(config)) => {
                let expiry = config.url_expiry();
                let store: Arc<dyn ObjectStore> = Arc::new(crate::spaces::SpacesStore::new(config));
                (Some(store), String::new(), expiry)
            }
            Ok(None) => (
                None,
                "no SPACES_* variable is set".into(),
                DEFAULT_URL_EXPIRY,
            ),
            Err(Error::SpacesNotConfigured { missing }) => (None, missing, DEFAULT_URL_EXPIRY),
            Err(e) => (None, e.to_string(), DEFAULT_URL_EXPIRY),
        }
    }
    #[cfg(not(feature = "spaces"))]
    {
        (
            None,
            "this build of sandbox-fs has no `spaces` feature (pass an ObjectStore to FileSystem::with_object_store)".into(),
            DEFAULT_URL_EXPIRY,
        )
    }
}

/// `data` gzip-compressed (fast level), when that saves at least a tenth of its size.
fn gzip(data: &[u8]) -> Option<Bytes> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 2),
        flate2::Compression::fast(),
    );
    encoder.write_all(data).ok()?;
    let packed = encoder.finish().ok()?;
    (packed.len() * 10 <= data.len() * 9).then(|| Bytes::from(packed))
}

/// A random token for temporary names (32 hex digits).
fn token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The curl configuration that carries a URL on stdin (kept out of the process list).
fn curl_config(url: &str) -> Bytes {
    let escaped = url.replace('\\', "\\\\").replace('"', "\\\"");
    Bytes::from(format!("url = \"{escaped}\"\n"))
}

fn check_path(name: &str, path: &str) -> Result<()> {
    if path.is_empty() {
        return Err(Error::invalid(name, "", "a path cannot be empty"));
    }
    if path.contains('\0') {
        return Err(Error::invalid(
            name,
            path.escape_debug().to_string(),
            "a path cannot contain a NUL byte",
        ));
    }
    Ok(())
}

/// Accepts octal modes (`755`, `0644`, `4755`) and symbolic ones (`u+x`, `a=rX,u+w`).
pub(crate) fn validate_mode(mode: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::invalid(
            "mode",
            mode.escape_debug().to_string(),
            reason,
        ))
    };
    if mode.is_empty() {
        return bad("a mode cannot be empty");
    }
    if mode.bytes().all(|b| b.is_ascii_digit()) {
        if mode.len() > 4 || mode.bytes().any(|b| b > b'7') {
            return bad("an octal mode has 1 to 4 digits from 0 to 7");
        }
        return Ok(());
    }
    for clause in mode.split(',') {
        let rest = clause.trim_start_matches(['u', 'g', 'o', 'a']);
        if rest.is_empty() {
            return bad("each clause needs an operator (+, - or =), as in `u+x`");
        }
        let mut chars = rest.chars().peekable();
        while let Some(op) = chars.next() {
            if !matches!(op, '+' | '-' | '=') {
                return bad(
                    "a symbolic mode is [ugoa]*[+-=][rwxXst]* or [ugoa]*[+-=][ugo], joined by commas",
                );
            }
            let mut perms = String::new();
            while let Some(&c) = chars.peek() {
                if matches!(c, '+' | '-' | '=') {
                    break;
                }
                perms.push(c);
                chars.next();
            }
            let copy = perms.len() == 1 && matches!(perms.as_str(), "u" | "g" | "o");
            if !copy && !perms.chars().all(|c| "rwxXst".contains(c)) {
                return bad("permissions are letters of rwxXst, or one of u, g, o");
            }
        }
    }
    Ok(())
}

fn parse_number(stdout: &[u8]) -> Option<u64> {
    std::str::from_utf8(stdout).ok()?.trim().parse().ok()
}

fn protocol(operation: &str, path: &str, message: &str) -> Error {
    Error::Remote {
        operation: operation.to_owned(),
        path: path.to_owned(),
        status: sandbox_core::ExitStatus::from_code(0),
        stderr: format!("unexpected output: {message}"),
    }
}

fn ok_or_fail(operation: &str, path: &str, out: ExecOutput) -> Result<ExecOutput> {
    if out.success() {
        Ok(out)
    } else {
        Err(failure(operation, path, &out))
    }
}

/// As [`ok_or_fail`] for two-path operations: the first path was checked by the script, so a
/// missing path or a permission problem reported by the tool concerns the destination.
fn ok_or_fail_two(operation: &str, src: &str, dst: &str, out: ExecOutput) -> Result<ExecOutput> {
    if out.success() {
        return Ok(out);
    }
    match out.code() {
        Some(script::NOT_FOUND | script::IS_DIR) => Err(failure(operation, src, &out)),
        _ => Err(failure(operation, dst, &out)),
    }
}

/// The error a failed script reports: by exit code, else by the tool's message.
fn failure(operation: &str, path: &str, out: &ExecOutput) -> Error {
    let path = path.to_owned();
    let stderr = last_line(&out.stderr_text());
    match out.code() {
        Some(script::NOT_FOUND) => return Error::NotFound { path },
        Some(script::IS_DIR) => return Error::IsADirectory { path },
        Some(script::NOT_DIR) => return Error::NotADirectory { path },
        Some(script::EXISTS) => return Error::AlreadyExists { path },
        Some(script::DENIED) => {
            return Error::PermissionDenied {
                path,
                message: stderr,
            };
        }
        _ => {}
    }
    if stderr.contains("Permission denied")
        || stderr.contains("Operation not permitted")
        || stderr.contains("Read-only file system")
    {
        Error::PermissionDenied {
            path,
            message: stderr,
        }
    } else if stderr.contains("No such file or directory") {
        Error::NotFound { path }
    } else if stderr.contains("Not a directory") {
        Error::NotADirectory { path }
    } else if stderr.contains("Is a directory") {
        Error::IsADirectory { path }
    } else if stderr.contains("File exists") {
        Error::AlreadyExists { path }
    } else {
        Error::Remote {
            operation: operation.to_owned(),
            path,
            status: out.status,
            stderr,
        }
    }
}

/// Checks the output of a curl transfer script.
fn transfer_ok(operation: &str, path: &str, key: &str, out: ExecOutput) -> Result<ExecOutput> {
    if out.code() == Some(script::HTTP) {
        let text = out.stderr_text();
        let (first, body) = text.split_once('\n').unwrap_or((&text, ""));
        let status = first
            .trim()
            .strip_prefix("HTTP ")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        return Err(s3_error(operation, key, status, body));
    }
    if out.code() == Some(script::SIZE) {
        return Err(Error::ObjectStore {
            operation: operation.to_owned(),
            key: key.to_owned(),
            message: format!(
                "{} (nothing was put in place)",
                last_line(&out.stderr_text())
            ),
        });
    }
    if !out.success() && out.code() == Some(1) && !out.stderr.is_empty() {
        let text = last_line(&out.stderr_text());
        if text.starts_with("curl:") {
            return Err(Error::object_store(operation, key, text));
        }
    }
    ok_or_fail(operation, path, out)
}

/// The last non-empty lines of a tool's stderr (at most 400 bytes), trimmed.
fn last_line(text: &str) -> String {
    let trimmed = text.trim();
    if trimmed.len() <= 400 {
        return trimmed.to_owned();
    }
    let mut start = trimmed.len() - 400;
    while !trimmed.is_char_boundary(start) {
        start += 1;
    }
    trimmed[start..].to_owned()
}

async fn local_file_size(local: &Path) -> Result<u64> {
    let meta = tokio::fs::metadata(local)
        .await
        .map_err(|e| Error::local(local, "reading metadata", e))?;
    if meta.is_dir() {
        return Err(Error::LocalKind {
            path: local.to_owned(),
            expected_dir: false,
        });
    }
    Ok(meta.len())
}

/// A temporary file beside `local` (parents created), removed on drop unless renamed. Renaming
/// it onto `local` replaces whatever is there (a symlink included) without following it.
async fn local_temp_beside(local: &Path) -> Result<(LocalTemp, tokio::fs::File)> {
    if let Ok(meta) = tokio::fs::metadata(local).await
        && meta.is_dir()
    {
        return Err(Error::LocalKind {
            path: local.to_owned(),
            expected_dir: false,
        });
    }
    let parent = match local.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    tokio::fs::create_dir_all(&parent)
        .await
        .map_err(|e| Error::local(&parent, "creating the folder", e))?;
    let name = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = parent.join(format!(".{name}.sandbox-fs.{}.tmp", token()));
    // A fresh name, created exclusively: never an existing file, never through a symlink.
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .await
        .map_err(|e| Error::local(&temp, "creating", e))?;
    Ok((LocalTemp(temp), file))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_validated() {
        for ok in [
            "755", "0644", "4755", "7", "u+x", "go-w", "a=rX,u+w", "+x", "u=g", "o-rwx",
        ] {
            assert!(validate_mode(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "8",
            "77777",
            "755; rm -rf /",
            "u",
            "u+q",
            "$(id)",
            "u+x,",
            "u+x g+w",
        ] {
            let err = validate_mode(bad).expect_err(bad);
            assert!(err.to_string().contains("mode"), "{err}");
        }
    }

    #[test]
    fn paths_are_checked() {
        assert!(check_path("path", "").is_err());
        assert!(check_path("path", "a\0b").is_err());
        assert!(check_path("path", "-rf \n'x'").is_ok());
    }

    #[test]
    fn curl_config_quotes_the_url() {
        assert_eq!(
            &curl_config("http://h/a?b=\"c\\")[..],
            b"url = \"http://h/a?b=\\\"c\\\\\"\n"
        );
    }

    #[test]
    fn failures_are_named() {
        let out = |code: i32, stderr: &str| {
            ExecOutput::new(
                sandbox_core::ExitStatus::from_code(code),
                Vec::new(),
                stderr.as_bytes().to_vec(),
            )
        };
        assert!(matches!(
            failure("x", "p", &out(70, "")),
            Error::NotFound { .. }
        ));
        assert!(matches!(
            failure("x", "p", &out(71, "")),
            Error::IsADirectory { .. }
        ));
        assert!(matches!(
            failure("x", "p", &out(1, "mv: cannot move: Permission denied")),
            Error::PermissionDenied { .. }
        ));
        let other = failure("x", "p", &out(1, "boom"));
        assert!(other.to_string().contains("boom"), "{other}");
        assert!(other.to_string().contains("`p`"), "{other}");
    }
}

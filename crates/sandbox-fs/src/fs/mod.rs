//! [`FileSystem`]: file operations on one sandbox, over `sandbox-core`'s exec.
//!
//! This module owns the type, its options ([`RmOptions`], [`DirOptions`], the `DEFAULT_*`
//! constants), its constructors and builders, and the runner every operation goes through
//! (`sh -c SCRIPT` with paths as arguments, retried when idempotent). The operations live in
//! one submodule per job:
//!
//! - `console`: reading, writing, appending, uploading and downloading files through the
//!   console, in chunks;
//! - `meta`: listing, stat, existence and size;
//! - `tree_ops`: mkdir, rm, copy, rename, chmod;
//! - `folders`: whole folders as one tar stream;
//! - `transfer`: large files through the object store;
//! - `local`: host-side temporary files;
//! - `util`: path checks, tokens, and turning a script's output into a result.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use sandbox_core::{ExecOutput, ExecRequest, Sandbox};

use crate::error::{Error, Result};
use crate::script;
use crate::store::{DEFAULT_URL_EXPIRY, ObjectStore, TransferOptions};
use crate::unpack::place::ExistingDir;

mod console;
mod folders;
pub(crate) mod local;
mod meta;
pub(crate) mod transfer;
mod tree_ops;
pub(crate) mod util;

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
/// Made by [`FileSystem::new`] or [`SandboxFsExt::fs`]; cheap to
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

    /// Runs a script as `sh -c SCRIPT sandbox-fs ARGS...` in the C locale.
    pub(crate) async fn run(
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
    pub(crate) async fn run_idempotent(
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
                Err(e) if e.is_interrupted() && attempt < ATTEMPTS => {
                    tracing::warn!(operation, path, attempt, error = %e, "retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub(crate) async fn discard(&self, path: &str) {
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

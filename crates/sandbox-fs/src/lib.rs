//! Files, folders and large transfers for sandboxes, over `sandbox-core`'s byte-exact exec.
//!
//! # Overview
//!
//! - [`FileSystem`] (from [`FileSystem::new`] or [`SandboxFsExt::fs`]): read (bytes or text),
//!   write, append, upload, download, list, stat, mkdir, rm, exists, is_file, is_dir, copy,
//!   rename, chmod, size, and whole folders as one tar stream ([`FileSystem::upload_dir`],
//!   [`FileSystem::download_dir`]).
//! - Nothing from the sandbox is trusted: a folder download is parsed on the host with the
//!   `tar` crate into a checked temporary folder (no setuid bits, no member outside the folder,
//!   no write through a symlink, byte and member limits) and moved into place only when
//!   complete; [`ExistingDir`] says whether an occupied local folder is refused, merged into or
//!   replaced. The rules are in `docs/files.md`, "Threat model".
//! - Large files through an S3-compatible store (DigitalOcean Spaces): the [`ObjectStore`]
//!   trait presigns URLs that the sandbox uses with `curl`; `SpacesStore` (feature
//!   `spaces`) implements it on aws-sdk-s3, configured by [`SpacesConfig`] or the
//!   `SPACES_*` variables. [`FileSystem::upload_large`] and [`FileSystem::download_large`]
//!   always use the store; [`FileSystem::upload`] and [`FileSystem::download`] switch to it
//!   by themselves at [`DEFAULT_LARGE_FILE_THRESHOLD`] bytes (`SANDBOX_LARGE_FILE_THRESHOLD`).
//! - Snapshots that outlive a sandbox ([`Snapshots`], `docs/snapshots.md`): full and
//!   incremental, in a folder ([`LocalSnapshotStore`]) or an S3 bucket
//!   ([`ObjectSnapshotStore`]), restored with every member checked against a manifest of
//!   sizes and SHA-256; [`Snapshots::hibernate`] and [`Snapshots::wake`];
//!   [`SnapshotBuilderExt::create_from_snapshot`].
//! - [`TransferOptions`]: a [`Progress`] callback, keeping the intermediate object, URL expiry.
//! - [`Error`]: one error type; every variant names the path, the object key or the setting.
//!
//! # Example
//!
//! ```no_run
//! use sandbox_core::Sandbox;
//! use sandbox_fs::{DirOptions, RmOptions, SandboxFsExt};
//!
//! # async fn demo(sandbox: Sandbox) -> Result<(), sandbox_fs::Error> {
//! let fs = sandbox.fs();
//! fs.write("notes/it's a file.txt", b"line 1\n\nline 3\n").await?;
//! assert_eq!(fs.read_text("notes/it's a file.txt").await?, "line 1\n\nline 3\n");
//! fs.append("notes/it's a file.txt", [0u8, 255]).await?;
//! for entry in fs.list("notes").await? {
//!     println!("{} {} {} bytes", entry.permissions(), entry.name, entry.size);
//! }
//! fs.chmod("notes", "750").await?;
//! fs.upload_dir("./src", "/home/sandbox/app/src", &DirOptions::new().exclude("*.pyc")).await?;
//! fs.download("/home/sandbox/app/out.bin", "out.bin").await?;
//! fs.rm("notes", RmOptions::new().recursive(true)).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # How bytes travel
//!
//! Every operation is one or a few POSIX `sh` scripts run with paths as separate arguments,
//! so a path may hold spaces, quotes, newlines or a leading dash. Writes send their content
//! as the command's standard input (which `sandbox-core` carries base64 on the console, in
//! short ASCII lines) in chunks of [`DEFAULT_WRITE_CHUNK`] bytes, each written at its own
//! offset of a temporary file that is renamed into place at the end (gzip-compressed when that
//! saves a tenth or more); reads come back as the command's standard output. Folders travel as one tar archive. Large files skip the console:
//! the host moves them to or from the store over HTTP, the sandbox with `curl`. The remote side
//! needs only `sh`, coreutils, `tar`, and `curl` for the store. See `docs/files.md`.
//!
//! # Features
//!
//! | feature | adds |
//! | --- | --- |
//! | `spaces` | `SpacesStore` on aws-sdk-s3, and [`FileSystem::new`] reading `SPACES_*` |

pub use entry::{DirEntry, FileKind};
pub use error::{Error, Result};
pub use fs::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_DIR_MAX_BYTES, DEFAULT_DIR_MAX_MEMBERS, DEFAULT_READ_CHUNK,
    DEFAULT_TRANSFER_TIMEOUT, DEFAULT_WRITE_CHUNK, DirOptions, FileSystem, RmOptions, SandboxFsExt,
};
pub use snapshot::{
    DEFAULT_EXCLUDES, DEFAULT_SNAPSHOT_PATH, Hibernated, ListFilter, LocalSnapshotStore,
    ObjectReader, ObjectSnapshotStore, Route, SandboxTemplateRecord, SnapshotBuilderExt,
    SnapshotKind, SnapshotMetadata, SnapshotOptions, SnapshotStore, Snapshots, apply_template,
};
#[cfg(feature = "spaces")]
pub use spaces::SpacesStore;
pub use store::{
    DEFAULT_LARGE_FILE_THRESHOLD, DEFAULT_URL_EXPIRY, ObjectStore, Progress, SpacesConfig,
    TransferOptions,
};
pub use unpack::place::ExistingDir;

mod entry;
mod error;
mod fs;
mod http;
mod script;
mod snapshot;
#[cfg(feature = "spaces")]
mod spaces;
mod store;
mod unpack;

//! Snapshots of a sandbox's folders that outlive it: [`Snapshots`] over a
//! [`SnapshotStore`], full and incremental, restored with checks; hibernate and wake.
//!
//! Layout in the store (`docs/snapshots.md`):
//!
//! ```text
//! snapshots/<id>/archive.tar.gz   gzip tar of this layer's files, folders and links
//! snapshots/<id>/manifest.json    the whole state after this layer: path, kind, mode,
//!                                 size, SHA-256, link target; paths removed first
//! snapshots/<id>/metadata.json    SnapshotMetadata, written last: a snapshot without it
//!                                 is not listed and its objects are removed on failure
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use sandbox_core::{Sandbox, SandboxBuilder};

use crate::error::{Error, Result};
use crate::fs::local::LocalTemp;
use crate::fs::util::{last_line, ok_or_fail, parse_number, protocol, token};
use crate::fs::{FileSystem, SandboxFsExt};
use crate::script;
use crate::store::TransferOptions;

pub use manifest::{SandboxTemplateRecord, SnapshotKind, SnapshotMetadata};
pub use store::{LocalSnapshotStore, ObjectReader, ObjectSnapshotStore, SnapshotStore};

use manifest::{Entry, EntryKind, Manifest};

mod manifest;
mod scripts;
mod store;

/// The folder a snapshot holds unless told otherwise: the sandbox's working directory.
pub const DEFAULT_SNAPSHOT_PATH: &str = "/home/sandbox/app";

/// What a snapshot leaves out unless told otherwise: the seed's list of caches and build
/// output, without `.env` and `.env.local` (the seed dropped them; they are the app's
/// settings, and a restored app needs them).
pub const DEFAULT_EXCLUDES: &[&str] = &[
    "*.pyc",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".git/objects",
    ".git/lfs",
    "node_modules/.cache",
    ".npm",
    ".yarn/cache",
    "*.log",
    "*.tmp",
    "coverage/",
    ".coverage",
    "htmlcov/",
    "dist/",
    "build/",
    "*.egg-info/",
];

const PREFIX: &str = "snapshots/";

/// How a snapshot's archive travels between the sandbox and the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Route {
    /// Straight between the sandbox and the store with presigned URLs when the store hands
    /// them out, falling back to the console when the sandbox cannot connect to it.
    #[default]
    Auto,
    /// Always through the console (the host carries the bytes).
    Console,
    /// Always with presigned URLs; a sandbox that cannot reach the store is an error.
    Direct,
}

/// Options of [`Snapshots::create`].
#[derive(Debug, Clone)]
#[must_use]
pub struct SnapshotOptions {
    paths: Vec<String>,
    excludes: Vec<String>,
    parent: Option<String>,
    id: Option<String>,
    description: Option<String>,
    tags: BTreeMap<String, String>,
    route: Route,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            paths: Vec::new(),
            excludes: DEFAULT_EXCLUDES.iter().map(|s| (*s).to_owned()).collect(),
            parent: None,
            id: None,
            description: None,
            tags: BTreeMap::new(),
            route: Route::Auto,
        }
    }
}

impl SnapshotOptions {
    /// [`DEFAULT_SNAPSHOT_PATH`], [`DEFAULT_EXCLUDES`], a full snapshot with a fresh id.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an absolute folder to hold (the first call replaces the default path).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.paths.push(path.into());
        self
    }

    /// Replaces the excludes (globs as in `tar --exclude`: a glob without `/` matches a name
    /// at any depth, one with `/` a trailing part of the path, a trailing `/` folders only).
    pub fn excludes<I, S>(mut self, globs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.excludes = globs.into_iter().map(Into::into).collect();
        self
    }

    /// Adds one exclude to the current list.
    pub fn exclude(mut self, glob: impl Into<String>) -> Self {
        self.excludes.push(glob.into());
        self
    }

    /// Makes an incremental snapshot: only what changed since `parent`, and the deletions.
    /// Paths and excludes default to the parent's.
    pub fn parent(mut self, parent: impl Into<String>) -> Self {
        self.parent = Some(parent.into());
        self
    }

    /// The id to use (letters, digits, `.`, `_`, `-`; 1 to 100 bytes) instead of a fresh one.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// A free description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// A `key=value` tag.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// How the archive travels ([`Route::Auto`] by default).
    pub fn route(mut self, route: Route) -> Self {
        self.route = route;
        self
    }
}

/// What [`Snapshots::list`] keeps.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ListFilter {
    tags: BTreeMap<String, String>,
    image: Option<String>,
}

impl ListFilter {
    /// Every snapshot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only snapshots with this tag.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Only snapshots of sandboxes with this image (`python`, `node`).
    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }
}

/// What [`Snapshots::hibernate`] returns: enough to [`wake`](Snapshots::wake) the sandbox.
///
/// Files come back; processes do not (a woken sandbox starts fresh and runs nothing of the
/// old one's).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Hibernated {
    /// The snapshot that holds the sandbox's files.
    pub snapshot_id: String,
    /// The sandbox it was: image, component type, name, region.
    pub template: SandboxTemplateRecord,
    /// The deleted sandbox's app id.
    pub sandbox_id: String,
    /// When, in seconds since the Unix epoch.
    pub hibernated_at: u64,
}

/// Snapshots in one store: create, restore, list, get, delete, copy, compact; hibernate and
/// wake. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Snapshots {
    store: Arc<dyn SnapshotStore>,
    timeout: Duration,
}

impl Snapshots {
    /// Snapshots kept in `store`.
    #[must_use]
    pub fn new(store: Arc<dyn SnapshotStore>) -> Self {
        Snapshots {
            store,
            timeout: crate::DEFAULT_TRANSFER_TIMEOUT,
        }
    }

    /// Snapshots in a folder on this machine ([`LocalSnapshotStore`]).
    #[must_use]
    pub fn local(root: impl Into<std::path::PathBuf>) -> Self {
        Self::new(Arc::new(LocalSnapshotStore::new(root)))
    }

    /// The deadline of each step run in the sandbox (archiving, a transfer, extraction).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn SnapshotStore> {
        &self.store
    }

    /// Takes a snapshot of folders of `sandbox` (by default [`DEFAULT_SNAPSHOT_PATH`] without
    /// [`DEFAULT_EXCLUDES`]); with [`SnapshotOptions::parent`], an incremental one holding
    /// only what changed since the parent and the list of what was deleted.
    ///
    /// The sandbox lists the folders and hashes every file (SHA-256), archives the members
    /// this layer needs into one temporary file, and sends it to the store: straight with a
    /// presigned PUT when the store has URLs the sandbox can reach, else through the console
    /// (into the store's folder itself for a [`LocalSnapshotStore`]). The host then reads the
    /// stored archive back against the manifest, writes the manifest and, last, the metadata.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] (a path or id), [`Error::NotFound`] (a missing folder),
    /// [`Error::SnapshotNotFound`] and [`Error::SnapshotChain`] (the parent), and
    /// [`Error::SnapshotFailed`] for anything that fails once objects may exist (the sandbox
    /// lost, the store unreachable or failing mid-upload, an expired URL, files that changed
    /// while archived): every object written is removed again.
    #[tracing::instrument(name = "snapshot.create", skip_all, fields(sandbox = %sandbox.id()))]
    pub async fn create(
        &self,
        sandbox: &Sandbox,
        options: &SnapshotOptions,
    ) -> Result<SnapshotMetadata> {
        let id = match &options.id {
            Some(id) => {
                check_id(id)?;
                if self.read_metadata(id).await?.is_some() {
                    return Err(Error::invalid("snapshot id", id, "is taken"));
                }
                id.clone()
            }
            None => format!("snap-{}", &token()[..12]),
        };
        let parent = match &options.parent {
            Some(parent) => {
                let meta = self.get(parent).await?;
                let chain = self.chain(parent).await?;
                let manifest = self.manifest(&meta).await?;
                Some((meta, chain, manifest))
            }
            None => None,
        };
        let (paths, excludes) = match (&parent, options.paths.is_empty()) {
            (Some((meta, ..)), true) => (meta.paths.clone(), meta.excludes.clone()),
            (_, true) => (
                vec![DEFAULT_SNAPSHOT_PATH.to_owned()],
                options.excludes.clone(),
            ),
            (_, false) => (normalize_paths(&options.paths)?, options.excludes.clone()),
        };
        let fs = sandbox
            .fs()
            .without_object_store()
            .with_command_timeout(self.timeout);
        let (mut entries, skipped) =
            list_entries(&fs, &paths, &excludes)
                .await
                .map_err(|e| match e {
                    Error::NotFound { .. } | Error::NotADirectory { .. } => e,
                    e => failed(&id, sandbox, "listing the folders", e),
                })?;
        if skipped > 0 {
            tracing::warn!(skipped, "left out device nodes, FIFOs and sockets");
        }
        let result = async {
            hash_files(&fs, &mut entries)
                .await
                .map_err(|e| failed(&id, sandbox, "hashing files", e))?;
            let mut manifest = Manifest::default();
            if let Some((_, _, parent_manifest)) = &parent {
                let before: HashMap<&[u8], &Entry> = parent_manifest
                    .entries
                    .iter()
                    .map(|e| (e.path.as_slice(), e))
                    .collect();
                let now: HashSet<Vec<u8>> = entries.iter().map(|e| e.path.clone()).collect();
                for entry in &mut entries {
                    match before.get(entry.path.as_slice()) {
                        Some(old) if old.same_as(entry) && entry.kind != EntryKind::Dir => {
                            entry.layer = false;
                        }
                        Some(old) => {
                            entry.layer = true;
                            if old.kind != entry.kind || entry.kind == EntryKind::Symlink {
                                manifest.remove.push(entry.path.clone());
                            }
                        }
                        None => entry.layer = true,
                    }
                }
                let mut deleted: Vec<Vec<u8>> = parent_manifest
                    .entries
                    .iter()
                    .filter(|e| !now.contains(&e.path))
                    .map(|e| e.path.clone())
                    .collect();
                manifest.deleted = deleted.len() as u64;
                deleted.append(&mut manifest.remove);
                manifest.remove = deleted;
            } else {
                for entry in &mut entries {
                    entry.layer = true;
                }
            }
            manifest.entries = entries;
            manifest.check_shape(&id, &paths)?;
            let archive = self
                .make_archive(&fs, sandbox, &id, &manifest, options.route)
                .await?;
            let manifest_json = manifest.to_json();
            let (files, content_bytes) = manifest
                .entries
                .iter()
                .filter(|e| e.kind == EntryKind::File)
                .fold((0u64, 0u64), |(n, b), e| (n + 1, b + e.size));
            let template = template_of(sandbox).await;
            let (kind, parent_id, root, depth) = match &parent {
                Some((meta, ..)) => (
                    SnapshotKind::Incremental,
                    Some(meta.id.clone()),
                    meta.chain_root.clone(),
                    meta.chain_depth + 1,
                ),
                None => (SnapshotKind::Full, None, id.clone(), 0),
            };
            let metadata = SnapshotMetadata {
                format: manifest::FORMAT,
                id: id.clone(),
                kind,
                parent: parent_id,
                chain_root: root,
                chain_depth: depth,
                created_at: now(),
                sandbox_id: sandbox.id().to_owned(),
                template,
                paths: paths.clone(),
                excludes: excludes.clone(),
                description: options.description.clone(),
                tags: options.tags.clone(),
                archive_bytes: archive.archive_bytes,
                archive_sha256: archive.archive_sha256,
                manifest_sha256: manifest::sha256(&manifest_json),
                files,
                content_bytes,
                layer_entries: manifest.entries.iter().filter(|e| e.layer).count() as u64,
                deleted: manifest.deleted,
            };
            self.store
                .put(&key(&id, "manifest.json"), Bytes::from(manifest_json))
                .await
                .map_err(|e| failed(&id, sandbox, "writing the manifest", e))?;
            let json = serde_json::to_vec_pretty(&metadata).unwrap_or_default();
            self.store
                .put(&key(&id, "metadata.json"), Bytes::from(json))
                .await
                .map_err(|e| failed(&id, sandbox, "committing the metadata", e))?;
            let _ = &parent.as_ref().map(|(_, chain, _)| chain.len());
            Ok(metadata)
        }
        .await;
        if result.is_err() {
            self.remove_objects(&id).await;
        }
        result
    }

    /// Archives this layer's members in the sandbox, sends the archive to the store and checks
    /// what the store holds against the manifest.
    async fn make_archive(
        &self,
        fs: &FileSystem,
        sandbox: &Sandbox,
        id: &str,
        manifest: &Manifest,
        route: Route,
    ) -> Result<manifest::Checked> {
        let remote = format!("/tmp/.sandbox-snap.{}.tar.gz", token());
        let mut list = Vec::new();
        for entry in manifest.entries.iter().filter(|e| e.layer) {
            list.extend_from_slice(&entry.path[1..]);
            list.push(0);
        }
        let out = fs
            .run(
                "snapshot archive",
                &remote,
                scripts::ARCHIVE,
                &[&remote],
                Some(Bytes::from(list)),
                self.timeout,
            )
            .await
            .map_err(|e| failed(id, sandbox, "archiving", e))?;
        let out = match ok_or_fail("snapshot archive", &remote, out) {
            Ok(out) => out,
            Err(e) => {
                fs.discard(&remote).await;
                return Err(failed(id, sandbox, "archiving", e));
            }
        };
        let size = parse_number(&out.stdout)
            .ok_or_else(|| protocol("snapshot archive", &remote, "no archive size reported"));
        let result = async {
            let size = size?;
            self.send_archive(fs, id, &remote, size, route).await
        }
        .await;
        fs.discard(&remote).await;
        result.map_err(|e| failed(id, sandbox, "uploading the archive", e))?;
        let checked = self.check_stored(id, manifest).await.map_err(|e| match e {
            Error::SnapshotIntegrity { member, reason, .. } => failed(
                id,
                sandbox,
                "checking the stored archive",
                Error::SnapshotIntegrity {
                    id: id.to_owned(),
                    member,
                    reason: format!("{reason} (did files change while it was archived?)"),
                },
            ),
            e => failed(id, sandbox, "checking the stored archive", e),
        })?;
        Ok(checked)
    }

    async fn send_archive(
        &self,
        fs: &FileSystem,
        id: &str,
        remote: &str,
        size: u64,
        route: Route,
    ) -> Result<()> {
        let archive_key = key(id, "archive.tar.gz");
        if route != Route::Console
            && let Some(presigner) = self.store.presigner()
        {
            let url = presigner
                .presign_put(&archive_key, self.url_expiry())
                .await?;
            let out = fs
                .run(
                    "snapshot upload",
                    remote,
                    script::SEND,
                    &[remote, &token()],
                    Some(crate::fs::transfer::curl_config(&url)),
                    self.timeout,
                )
                .await?;
            match crate::fs::transfer::transfer_ok("snapshot upload", remote, &archive_key, out) {
                Ok(_) => return Ok(()),
                Err(e) if route == Route::Auto && unreachable(&e) => {
                    tracing::info!(error = %e, "the sandbox cannot reach the store; sending the archive through the console");
                }
                Err(e) => return Err(e),
            }
        } else if route == Route::Direct {
            return Err(Error::invalid(
                "route",
                "direct",
                format!(
                    "{} hands out no URLs a sandbox could use",
                    self.store.location()
                ),
            ));
        }
        if let Some(path) = self.store.local_path(&archive_key) {
            let local = LocalSnapshotStore::new(path.parent().unwrap_or(&path).to_owned());
            let temp = local.temp_for("archive.tar.gz").await?;
            let guard = LocalTemp(temp.clone());
            fs.download_limited(remote, &temp, &TransferOptions::new(), size)
                .await?;
            tokio::fs::rename(&temp, &path)
                .await
                .map_err(|e| Error::local(&path, "moving the archive into place", e))?;
            drop(guard);
            return Ok(());
        }
        let temp = LocalTemp(std::env::temp_dir().join(format!("sandbox-snap-{}.tar.gz", token())));
        fs.download_limited(remote, &temp.0, &TransferOptions::new(), size)
            .await?;
        self.store.put_file(&archive_key, &temp.0, size).await
    }

    fn url_expiry(&self) -> Duration {
        self.store.url_expiry()
    }

    /// Reads the stored archive of `id` and checks it against `manifest`.
    async fn check_stored(&self, id: &str, manifest: &Manifest) -> Result<manifest::Checked> {
        let reader = self.store.reader(&key(id, "archive.tar.gz")).await?;
        let manifest = manifest.clone();
        let id_owned = id.to_owned();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let _enter = handle.enter();
            let bridge = tokio_util::io::SyncIoBridge::new(reader);
            manifest::check_archive(&id_owned, bridge, &manifest)
        })
        .await
        .map_err(|e| Error::local("", "checking an archive", std::io::Error::other(e)))?
    }

    /// Restores snapshot `id` into `sandbox`: each layer of its chain in order, from the
    /// full snapshot at its root. A full layer first empties the snapshot's folders; an
    /// incremental one removes what was deleted. Each archive is checked against its
    /// manifest on the host (sizes, SHA-256 per file, the member rules of `docs/files.md`)
    /// before the sandbox extracts it, and the sandbox extracts only the bytes that were
    /// checked (their SHA-256 compared in the sandbox); setuid and setgid bits are cleared.
    /// Works on any sandbox, also one just taken from a pool.
    ///
    /// A failure part way leaves the folders partly restored: restore again.
    ///
    /// # Errors
    ///
    /// [`Error::SnapshotNotFound`], [`Error::SnapshotChain`], [`Error::SnapshotIntegrity`],
    /// [`Error::UrlExpired`], [`Error::ObjectStore`], [`Error::Exec`] (the sandbox lost).
    #[tracing::instrument(name = "snapshot.restore", skip_all, fields(sandbox = %sandbox.id(), id = %id))]
    pub async fn restore(&self, sandbox: &Sandbox, id: &str) -> Result<SnapshotMetadata> {
        self.restore_with(sandbox, id, Route::Auto).await
    }

    /// [`restore`](Self::restore) with a chosen [`Route`].
    ///
    /// # Errors
    ///
    /// As [`restore`](Self::restore).
    pub async fn restore_with(
        &self,
        sandbox: &Sandbox,
        id: &str,
        route: Route,
    ) -> Result<SnapshotMetadata> {
        let chain = self.chain(id).await?;
        let fs = sandbox
            .fs()
            .without_object_store()
            .with_command_timeout(self.timeout);
        for meta in chain.iter().rev() {
            let manifest = self.manifest(meta).await?;
            manifest.check_shape(&meta.id, &meta.paths)?;
            check_removals(&meta.id, &manifest, &meta.paths)?;
            self.apply_layer(&fs, meta, &manifest, route).await?;
        }
        Ok(chain
            .into_iter()
            .next()
            .unwrap_or_else(|| unreachable!("a chain has its tip")))
    }

    async fn apply_layer(
        &self,
        fs: &FileSystem,
        meta: &SnapshotMetadata,
        manifest: &Manifest,
        route: Route,
    ) -> Result<()> {
        let archive_key = key(&meta.id, "archive.tar.gz");
        let remote = format!("/tmp/.sandbox-snap.{}.tar.gz", token());
        let check = async {
            let checked = self.check_stored(&meta.id, manifest).await?;
            if checked.archive_sha256 != meta.archive_sha256 {
                return Err(Error::SnapshotIntegrity {
                    id: meta.id.clone(),
                    member: None,
                    reason: "its archive's SHA-256 differs from the metadata's".into(),
                });
            }
            Ok(())
        };
        let place = self.place_archive(fs, meta, &archive_key, &remote, route);
        let (checked, placed) = tokio::join!(check, place);
        let result = match (checked, placed) {
            (Err(e), _) | (Ok(()), Err(e)) => Err(e),
            (Ok(()), Ok(())) => {
                let mut removals = Vec::new();
                for path in &manifest.remove {
                    removals.extend_from_slice(path);
                    removals.push(0);
                }
                let count = manifest.remove.len().to_string();
                let kind = meta.kind.as_str();
                let mut args: Vec<&str> = vec![&remote, &meta.archive_sha256, kind, &count];
                args.extend(meta.paths.iter().map(String::as_str));
                let stdin = (!removals.is_empty()).then(|| Bytes::from(removals));
                let out = fs
                    .run(
                        "snapshot restore",
                        &remote,
                        scripts::APPLY,
                        &args,
                        stdin,
                        self.timeout,
                    )
                    .await?;
                if out.code() == Some(scripts::MISMATCH) {
                    return Err(Error::SnapshotIntegrity {
                        id: meta.id.clone(),
                        member: None,
                        reason: "the archive the sandbox received differs from the one checked"
                            .into(),
                    });
                }
                ok_or_fail("snapshot restore", &remote, out).map(|_| ())
            }
        };
        if result.is_err() {
            fs.discard(&remote).await;
            fs.discard(&format!("{remote}.sum")).await;
        }
        result
    }

    async fn place_archive(
        &self,
        fs: &FileSystem,
        meta: &SnapshotMetadata,
        archive_key: &str,
        remote: &str,
        route: Route,
    ) -> Result<()> {
        if route != Route::Console
            && let Some(presigner) = self.store.presigner()
        {
            let url = presigner
                .presign_get(archive_key, self.url_expiry())
                .await?;
            let size = meta.archive_bytes.to_string();
            let out = fs
                .run(
                    "snapshot download",
                    remote,
                    scripts::FETCH,
                    &[remote, &size],
                    Some(crate::fs::transfer::curl_config(&url)),
                    self.timeout,
                )
                .await?;
            match crate::fs::transfer::transfer_ok("snapshot download", remote, archive_key, out) {
                Ok(_) => return Ok(()),
                Err(e) if route == Route::Auto && unreachable(&e) => {
                    tracing::info!(error = %e, "the sandbox cannot reach the store; sending the archive through the console");
                }
                Err(e) => return Err(e),
            }
        } else if route == Route::Direct {
            return Err(Error::invalid(
                "route",
                "direct",
                format!(
                    "{} hands out no URLs a sandbox could use",
                    self.store.location()
                ),
            ));
        }
        if let Some(path) = self.store.local_path(archive_key) {
            fs.upload_with(&path, remote, &TransferOptions::new())
                .await?;
            return Ok(());
        }
        let temp = LocalTemp(std::env::temp_dir().join(format!("sandbox-snap-{}.tar.gz", token())));
        let mut reader = self.store.reader(archive_key).await?;
        let mut file = tokio::fs::File::create(&temp.0)
            .await
            .map_err(|e| Error::local(&temp.0, "creating a temporary archive", e))?;
        tokio::io::copy(&mut reader, &mut file)
            .await
            .map_err(|e| Error::object_store("read", archive_key, e.to_string()))?;
        drop(file);
        fs.upload_with(&temp.0, remote, &TransferOptions::new())
            .await?;
        Ok(())
    }

    /// The metadata of snapshot `id`.
    ///
    /// # Errors
    ///
    /// [`Error::SnapshotNotFound`], [`Error::InvalidArgument`] (a malformed id), and the
    /// store's errors.
    pub async fn get(&self, id: &str) -> Result<SnapshotMetadata> {
        check_id(id)?;
        self.read_metadata(id)
            .await?
            .ok_or_else(|| Error::SnapshotNotFound {
                id: id.to_owned(),
                store: self.store.location(),
            })
    }

    async fn read_metadata(&self, id: &str) -> Result<Option<SnapshotMetadata>> {
        let Some(data) = self.store.get(&key(id, "metadata.json")).await? else {
            return Ok(None);
        };
        let meta: SnapshotMetadata =
            serde_json::from_slice(&data).map_err(|e| Error::SnapshotIntegrity {
                id: id.to_owned(),
                member: None,
                reason: format!("its metadata is not valid: {e}"),
            })?;
        Ok(Some(meta))
    }

    async fn manifest(&self, meta: &SnapshotMetadata) -> Result<Manifest> {
        let data = self
            .store
            .get(&key(&meta.id, "manifest.json"))
            .await?
            .ok_or_else(|| Error::SnapshotIntegrity {
                id: meta.id.clone(),
                member: None,
                reason: "its manifest is missing".into(),
            })?;
        if manifest::sha256(&data) != meta.manifest_sha256 {
            return Err(Error::SnapshotIntegrity {
                id: meta.id.clone(),
                member: None,
                reason: "its manifest's SHA-256 differs from the metadata's".into(),
            });
        }
        Manifest::from_json(&meta.id, &data)
    }

    /// The chain of `id`: itself first, then each parent, ending with a full snapshot.
    ///
    /// # Errors
    ///
    /// [`Error::SnapshotNotFound`] for `id` itself; [`Error::SnapshotChain`] when a parent
    /// is missing, the chain loops, or it does not end with a full snapshot.
    pub async fn chain(&self, id: &str) -> Result<Vec<SnapshotMetadata>> {
        let tip = self.get(id).await?;
        let mut seen = HashSet::from([tip.id.clone()]);
        let mut chain = vec![tip];
        loop {
            let last = chain.last().unwrap_or_else(|| unreachable!("not empty"));
            match (&last.kind, &last.parent) {
                (SnapshotKind::Full, _) => return Ok(chain),
                (_, None) => {
                    return Err(Error::SnapshotChain {
                        id: id.to_owned(),
                        reason: format!("incremental `{}` has no parent", last.id),
                    });
                }
                (_, Some(parent)) => {
                    if !seen.insert(parent.clone()) {
                        return Err(Error::SnapshotChain {
                            id: id.to_owned(),
                            reason: format!("it loops: `{parent}` comes back"),
                        });
                    }
                    let child = last.id.clone();
                    match self.read_metadata(parent).await? {
                        Some(meta) => chain.push(meta),
                        None => {
                            return Err(Error::SnapshotChain {
                                id: id.to_owned(),
                                reason: format!("parent `{parent}` of `{child}` is missing"),
                            });
                        }
                    }
                }
            }
        }
    }

    /// Every complete snapshot that passes `filter`, newest first.
    ///
    /// # Errors
    ///
    /// The store's errors.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<SnapshotMetadata>> {
        let keys = self.store.list(PREFIX).await?;
        let mut out = Vec::new();
        for k in keys {
            let Some(id) = k
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.strip_suffix("/metadata.json"))
            else {
                continue;
            };
            if id.contains('/') || check_id(id).is_err() {
                continue;
            }
            match self.read_metadata(id).await {
                Ok(Some(meta)) => {
                    let image_ok = filter
                        .image
                        .as_ref()
                        .is_none_or(|i| meta.template.image.as_ref() == Some(i));
                    if image_ok && meta.has_tags(&filter.tags) {
                        out.push(meta);
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(id, error = %e, "skipping an unreadable snapshot"),
            }
        }
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Deletes snapshot `id`: its metadata first (so it is no longer listed), then every
    /// other object under `snapshots/<id>/`. A snapshot that is the parent of another is
    /// refused (delete the children first, or [`compact`](Self::compact) them).
    ///
    /// # Errors
    ///
    /// [`Error::SnapshotNotFound`], [`Error::InvalidArgument`] (it has children), and the
    /// store's errors.
    #[tracing::instrument(name = "snapshot.delete", skip(self))]
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.get(id).await?;
        let children: Vec<String> = self
            .list(&ListFilter::new())
            .await?
            .into_iter()
            .filter(|m| m.parent.as_deref() == Some(id))
            .map(|m| m.id)
            .collect();
        if !children.is_empty() {
            return Err(Error::invalid(
                "snapshot",
                id,
                format!(
                    "is the parent of {}; delete or compact them first",
                    children.join(", ")
                ),
            ));
        }
        self.store.delete(&key(id, "metadata.json")).await?;
        for k in self.store.list(&format!("{PREFIX}{id}/")).await? {
            self.store.delete(&k).await?;
        }
        Ok(())
    }

    async fn remove_objects(&self, id: &str) {
        let _ = self.store.delete(&key(id, "metadata.json")).await;
        match self.store.list(&format!("{PREFIX}{id}/")).await {
            Ok(keys) => {
                for k in keys {
                    if let Err(e) = self.store.delete(&k).await {
                        tracing::warn!(key = %k, error = %e, "could not remove an object of a failed snapshot");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(id, error = %e, "could not list the objects of a failed snapshot")
            }
        }
        for name in ["archive.tar.gz", "manifest.json"] {
            let _ = self.store.delete(&key(id, name)).await;
        }
    }

    /// Copies snapshot `id` to a new id (fresh unless given), with its tags merged with
    /// `tags` and, when given, a new description. The copy has the same parent.
    ///
    /// # Errors
    ///
    /// [`Error::SnapshotNotFound`], [`Error::InvalidArgument`] (a taken id), and the store's
    /// errors; a failed copy leaves nothing listed.
    pub async fn copy(
        &self,
        id: &str,
        new_id: Option<&str>,
        description: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<SnapshotMetadata> {
        let mut meta = self.get(id).await?;
        let new_id = match new_id {
            Some(n) => {
                check_id(n)?;
                if self.read_metadata(n).await?.is_some() {
                    return Err(Error::invalid("snapshot id", n, "is taken"));
                }
                n.to_owned()
            }
            None => format!("snap-{}", &token()[..12]),
        };
        let result = async {
            let manifest = self
                .store
                .get(&key(id, "manifest.json"))
                .await?
                .ok_or_else(|| Error::SnapshotNotFound {
                    id: id.to_owned(),
                    store: self.store.location(),
                })?;
            let temp =
                LocalTemp(std::env::temp_dir().join(format!("sandbox-snap-{}.tar.gz", token())));
            let mut reader = self.store.reader(&key(id, "archive.tar.gz")).await?;
            let mut file = tokio::fs::File::create(&temp.0)
                .await
                .map_err(|e| Error::local(&temp.0, "creating a temporary archive", e))?;
            tokio::io::copy(&mut reader, &mut file)
                .await
                .map_err(|e| Error::object_store("read", id, e.to_string()))?;
            drop(file);
            self.store
                .put_file(&key(&new_id, "archive.tar.gz"), &temp.0, meta.archive_bytes)
                .await?;
            self.store
                .put(&key(&new_id, "manifest.json"), manifest)
                .await?;
            if meta.kind == SnapshotKind::Full {
                meta.chain_root.clone_from(&new_id);
            }
            meta.id.clone_from(&new_id);
            meta.created_at = now();
            if let Some(d) = description {
                meta.description = Some(d.to_owned());
            }
            meta.tags
                .extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            let json = serde_json::to_vec_pretty(&meta).unwrap_or_default();
            self.store
                .put(&key(&new_id, "metadata.json"), Bytes::from(json))
                .await?;
            Ok(meta)
        }
        .await;
        if result.is_err() {
            self.remove_objects(&new_id).await;
        }
        result
    }

    /// Compacts the chain of `id` into one full snapshot: restores it into `scratch` (any
    /// sandbox, for example one from a pool) and takes a full snapshot of the same paths and
    /// excludes, with the tip's description and tags. The chain itself is kept.
    ///
    /// # Errors
    ///
    /// As [`restore`](Self::restore) and [`create`](Self::create).
    pub async fn compact(&self, scratch: &Sandbox, id: &str) -> Result<SnapshotMetadata> {
        let tip = self.restore(scratch, id).await?;
        let mut options = SnapshotOptions::new().excludes(tip.excludes.clone());
        for path in &tip.paths {
            options = options.path(path.clone());
        }
        for (k, v) in &tip.tags {
            options = options.tag(k.clone(), v.clone());
        }
        options = options.description(
            tip.description
                .clone()
                .unwrap_or_else(|| format!("compaction of {id}")),
        );
        self.create(scratch, &options).await
    }

    /// Snapshots `sandbox` (the default path and excludes, tag `hibernated=true`), then
    /// deletes it. Files are kept; running processes are not.
    ///
    /// # Errors
    ///
    /// Those of [`create`](Self::create) (the sandbox is not deleted then), and
    /// [`Error::Sandbox`] when deleting fails (the snapshot is kept).
    #[tracing::instrument(name = "snapshot.hibernate", skip_all, fields(sandbox = %sandbox.id()))]
    pub async fn hibernate(&self, sandbox: &Sandbox) -> Result<Hibernated> {
        self.hibernate_with(sandbox, SnapshotOptions::new()).await
    }

    /// [`hibernate`](Self::hibernate) with snapshot options.
    ///
    /// # Errors
    ///
    /// As [`hibernate`](Self::hibernate).
    pub async fn hibernate_with(
        &self,
        sandbox: &Sandbox,
        options: SnapshotOptions,
    ) -> Result<Hibernated> {
        let options = options.tag("hibernated", "true").description(format!(
            "hibernation of {} ({})",
            sandbox.name(),
            sandbox.id()
        ));
        let meta = self.create(sandbox, &options).await?;
        sandbox.delete().await.map_err(|source| Error::Sandbox {
            operation: "delete".into(),
            source,
        })?;
        Ok(Hibernated {
            snapshot_id: meta.id,
            template: meta.template,
            sandbox_id: meta.sandbox_id,
            hibernated_at: now(),
        })
    }

    /// Makes a new sandbox like the hibernated one (`builder`'s platform and settings, with
    /// the recorded image, component type and region) and restores its files. A failed wake
    /// deletes the sandbox it made.
    ///
    /// # Errors
    ///
    /// [`Error::WakeFailed`].
    #[tracing::instrument(name = "snapshot.wake", skip_all, fields(id = %record.snapshot_id))]
    pub async fn wake(&self, builder: SandboxBuilder, record: &Hibernated) -> Result<Sandbox> {
        let builder = apply_template(builder, &record.template);
        builder
            .create_from_snapshot(self, &record.snapshot_id)
            .await
    }

    /// The [`Hibernated`] record of a snapshot id (its template is in its metadata).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn hibernated(&self, id: &str) -> Result<Hibernated> {
        let meta = self.get(id).await?;
        Ok(Hibernated {
            snapshot_id: meta.id,
            template: meta.template,
            sandbox_id: meta.sandbox_id,
            hibernated_at: meta.created_at,
        })
    }
}

/// Sets a builder's image, component type and region from a recorded template (the name is
/// left to the builder: the old one may be taken again by then).
pub fn apply_template(
    mut builder: SandboxBuilder,
    template: &SandboxTemplateRecord,
) -> SandboxBuilder {
    if let Some(image) = template.image.as_deref().and_then(|i| i.parse().ok()) {
        builder = builder.image(image);
    }
    if let Some(kind) = template
        .component_type
        .as_deref()
        .and_then(|c| c.parse().ok())
    {
        builder = builder.component_type(kind);
    }
    if let Some(region) = &template.region {
        builder = builder.region(region.clone());
    }
    builder
}

/// Adds [`create_from_snapshot`](SnapshotBuilderExt::create_from_snapshot) to
/// [`SandboxBuilder`].
///
/// A sandbox from a pool takes the other way: acquire it, then [`Snapshots::restore`] into it
/// (the pools' own `acquire` with a snapshot is a follow-up).
pub trait SnapshotBuilderExt {
    /// Creates the sandbox, then restores snapshot `id` into it; when the restore fails the
    /// new sandbox is deleted again.
    ///
    /// # Errors
    ///
    /// [`Error::WakeFailed`] (carrying the cause, and the app id when deleting failed too).
    fn create_from_snapshot(
        self,
        snapshots: &Snapshots,
        id: &str,
    ) -> impl std::future::Future<Output = Result<Sandbox>> + Send;
}

impl SnapshotBuilderExt for SandboxBuilder {
    async fn create_from_snapshot(self, snapshots: &Snapshots, id: &str) -> Result<Sandbox> {
        let wrap = |source: Error, app_id: Option<String>| Error::WakeFailed {
            id: id.to_owned(),
            app_id,
            source: Box::new(source),
        };
        // Check the chain before making anything.
        snapshots.chain(id).await.map_err(|e| wrap(e, None))?;
        let sandbox = self.create().await.map_err(|source| {
            wrap(
                Error::Sandbox {
                    operation: "create".into(),
                    source,
                },
                None,
            )
        })?;
        match snapshots.restore(&sandbox, id).await {
            Ok(_) => Ok(sandbox),
            Err(e) => match sandbox.delete().await {
                Ok(()) => Err(wrap(e, None)),
                Err(delete) => {
                    tracing::warn!(app_id = %sandbox.id(), error = %delete, "could not delete the sandbox of a failed wake");
                    Err(wrap(e, Some(sandbox.id().to_owned())))
                }
            },
        }
    }
}

/// Every path a layer removes lies strictly inside one of its folders.
fn check_removals(id: &str, manifest: &Manifest, roots: &[String]) -> Result<()> {
    for path in &manifest.remove {
        let inside = roots
            .iter()
            .any(|r| path.starts_with(r.as_bytes()) && path.get(r.len()) == Some(&b'/'));
        let clean = path
            .split(|&b| b == b'/')
            .skip(1)
            .all(|p| !p.is_empty() && p != b"." && p != b"..");
        if !inside || !clean || path.contains(&0) {
            return Err(Error::SnapshotIntegrity {
                id: id.to_owned(),
                member: Some(crate::unpack::rules::shown(path)),
                reason: "is a removal outside the snapshot's paths".into(),
            });
        }
    }
    Ok(())
}

fn key(id: &str, name: &str) -> String {
    format!("{PREFIX}{id}/{name}")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn failed(id: &str, sandbox: &Sandbox, stage: &str, source: Error) -> Error {
    if matches!(source, Error::SnapshotFailed { .. }) {
        return source;
    }
    Error::SnapshotFailed {
        id: id.to_owned(),
        sandbox: sandbox.id().to_owned(),
        stage: stage.to_owned(),
        source: Box::new(source),
    }
}

/// Whether a transfer failed because curl in the sandbox could not connect to the store
/// (name resolution, connection refused, connect timeout).
fn unreachable(error: &Error) -> bool {
    match error {
        Error::ObjectStore { message, .. } => ["curl: (6)", "curl: (7)", "curl: (28)"]
            .iter()
            .any(|code| message.starts_with(code)),
        _ => false,
    }
}

/// Checks a snapshot id: 1 to 100 of letters, digits, `.`, `_`, `-`, not starting with `.`.
fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 100
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "snapshot id",
            id.escape_default().to_string(),
            "must be 1 to 100 letters, digits, `.`, `_` or `-`, not starting with `.`",
        ))
    }
}

/// Absolute, normalized, distinct, not `/`, none inside another.
fn normalize_paths(paths: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for p in paths {
        let bad =
            |reason: &str| Error::invalid("snapshot path", p.escape_default().to_string(), reason);
        if !p.starts_with('/') {
            return Err(bad("must be absolute"));
        }
        let parts: Vec<&str> = p
            .split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .collect();
        if parts.is_empty() {
            return Err(bad("cannot be `/`"));
        }
        if parts.contains(&"..") || p.contains('\0') {
            return Err(bad("cannot hold `..` or NUL"));
        }
        let norm = format!("/{}", parts.join("/"));
        if out.iter().any(|o| {
            *o == norm || norm.starts_with(&format!("{o}/")) || o.starts_with(&format!("{norm}/"))
        }) {
            return Err(bad("overlaps another path"));
        }
        out.push(norm);
    }
    Ok(out)
}

/// The `find` expression that prunes the excludes.
fn prune_args(excludes: &[String]) -> Vec<String> {
    let mut tests: Vec<Vec<String>> = Vec::new();
    for glob in excludes {
        let (glob, dirs_only) = match glob.strip_suffix('/') {
            Some(g) => (g, true),
            None => (glob.as_str(), false),
        };
        if glob.is_empty() {
            continue;
        }
        let mut test = if glob.contains('/') {
            vec![
                "-path".to_owned(),
                format!("*/{}", glob.trim_start_matches('/')),
            ]
        } else {
            vec!["-name".to_owned(), glob.to_owned()]
        };
        if dirs_only {
            test.extend(["-type".to_owned(), "d".to_owned()]);
        }
        tests.push(test);
    }
    if tests.is_empty() {
        return Vec::new();
    }
    let mut args = vec!["(".to_owned()];
    for (i, test) in tests.into_iter().enumerate() {
        if i > 0 {
            args.push("-o".to_owned());
        }
        args.push("(".to_owned());
        args.extend(test);
        args.push(")".to_owned());
    }
    args.extend([")".to_owned(), "-prune".to_owned(), "-o".to_owned()]);
    args
}

/// Lists the folders in the sandbox: every file, folder and link (the excludes pruned);
/// returns them and how many other nodes (devices, FIFOs, sockets) were left out.
async fn list_entries(
    fs: &FileSystem,
    paths: &[String],
    excludes: &[String],
) -> Result<(Vec<Entry>, usize)> {
    let mut args: Vec<String> = vec![paths.len().to_string()];
    args.extend(paths.iter().cloned());
    args.extend(prune_args(excludes));
    args.extend(["-printf".to_owned(), "%y\\0%m\\0%s\\0%p\\0%l\\0".to_owned()]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = paths.first().map_or("", String::as_str);
    let (out, _) = fs
        .run_idempotent("snapshot list", first, scripts::LIST, &argv, None)
        .await?;
    if out.code() == Some(script::NOT_FOUND) {
        return Err(Error::NotFound {
            path: out.stderr_text().trim().to_owned(),
        });
    }
    if out.code() == Some(script::NOT_DIR) {
        return Err(Error::NotADirectory {
            path: out.stderr_text().trim().to_owned(),
        });
    }
    let out = ok_or_fail("snapshot list", first, out)?;
    let mut fields = out.stdout.split(|&b| b == 0);
    let mut entries = Vec::new();
    let mut skipped = 0;
    while let Some(kind) = fields.next() {
        if kind.is_empty() {
            break;
        }
        let (Some(mode), Some(size), Some(path), Some(target)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(protocol("snapshot list", first, "a cut-off listing"));
        };
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mode = u32::from_str_radix(&text(mode), 8)
            .map_err(|_| protocol("snapshot list", first, "a bad mode"))?;
        let size: u64 = text(size)
            .parse()
            .map_err(|_| protocol("snapshot list", first, "a bad size"))?;
        let kind = match kind {
            b"f" => EntryKind::File,
            b"d" => EntryKind::Dir,
            b"l" => EntryKind::Symlink,
            _ => {
                skipped += 1;
                continue;
            }
        };
        let mut path = path.to_vec();
        while path.len() > 1 && path.ends_with(b"/") {
            path.pop();
        }
        entries.push(Entry {
            path,
            kind,
            mode,
            size: if kind == EntryKind::File { size } else { 0 },
            sha256: None,
            target: (kind == EntryKind::Symlink).then(|| target.to_vec()),
            layer: true,
        });
    }
    Ok((entries, skipped))
}

/// Fills in the SHA-256 of every file, computed in the sandbox.
async fn hash_files(fs: &FileSystem, entries: &mut [Entry]) -> Result<()> {
    let mut list = Vec::new();
    let mut files = 0usize;
    for entry in entries.iter().filter(|e| e.kind == EntryKind::File) {
        list.extend_from_slice(&entry.path);
        list.push(0);
        files += 1;
    }
    if files == 0 {
        return Ok(());
    }
    let out = fs
        .run(
            "snapshot hash",
            "",
            scripts::HASH,
            &[],
            Some(Bytes::from(list)),
            fs_timeout(),
        )
        .await?;
    let out = ok_or_fail("snapshot hash", "", out)?;
    let mut hashes: HashMap<&[u8], String> = HashMap::with_capacity(files);
    for record in out.stdout.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        if record.len() < 67 || !record[..64].iter().all(u8::is_ascii_hexdigit) {
            return Err(protocol("snapshot hash", "", "a bad hash line"));
        }
        hashes.insert(
            &record[66..],
            String::from_utf8_lossy(&record[..64]).into_owned(),
        );
    }
    for entry in entries.iter_mut().filter(|e| e.kind == EntryKind::File) {
        let Some(hash) = hashes.get(entry.path.as_slice()) else {
            return Err(Error::Remote {
                operation: "snapshot hash".into(),
                path: crate::unpack::rules::shown(&entry.path),
                status: out.status,
                stderr: format!(
                    "no hash (did it vanish while listed?) {}",
                    last_line(&out.stderr_text())
                ),
            });
        };
        entry.sha256 = Some(hash.clone());
    }
    Ok(())
}

fn fs_timeout() -> Duration {
    crate::DEFAULT_TRANSFER_TIMEOUT
}

/// The image, component type, name and region of a sandbox, when the platform knows them.
async fn template_of(sandbox: &Sandbox) -> SandboxTemplateRecord {
    let mut record = SandboxTemplateRecord {
        name: sandbox.name().to_owned(),
        ..SandboxTemplateRecord::default()
    };
    match Sandbox::lookup(
        sandbox.platform().as_ref(),
        sandbox.id(),
        sandbox_core::Scope::Sandboxes,
    )
    .await
    {
        Ok(sandbox_core::Found::Sandbox(info)) => {
            record.image = Some(info.image.as_str().to_owned());
            record.component_type = Some(info.component_type.as_str().to_owned());
            record.region = info.region;
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "the sandbox's template is unknown"),
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_become_prune_tests() {
        let args = prune_args(&["*.pyc".into(), ".git/objects".into(), "dist/".into()]);
        assert_eq!(
            args.join(" "),
            "( ( -name *.pyc ) -o ( -path */.git/objects ) -o ( -name dist -type d ) ) -prune -o"
        );
        assert!(prune_args(&[]).is_empty());
        assert!(!DEFAULT_EXCLUDES.contains(&".env"));
    }

    #[test]
    fn paths_and_ids_are_checked() {
        assert_eq!(
            normalize_paths(&["/home/sandbox/app/".into()]).expect("ok"),
            ["/home/sandbox/app"]
        );
        assert!(normalize_paths(&["relative".into()]).is_err());
        assert!(normalize_paths(&["/".into()]).is_err());
        assert!(normalize_paths(&["/a".into(), "/a/b".into()]).is_err());
        assert!(normalize_paths(&["/a/../b".into()]).is_err());
        assert!(check_id("snap-0123abcd").is_ok());
        assert!(check_id("../x").is_err());
        assert!(check_id("").is_err());
        assert!(check_id("a/b").is_err());
    }
}

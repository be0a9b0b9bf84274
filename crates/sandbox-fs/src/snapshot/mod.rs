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

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use sandbox_core::Sandbox;

use crate::error::{Error, Result};
use crate::fs::local::LocalTemp;
use crate::fs::util::token;

pub use manifest::{SandboxTemplateRecord, SnapshotKind, SnapshotMetadata};
pub use store::{LocalSnapshotStore, ObjectReader, ObjectSnapshotStore, SnapshotStore};
pub use wake::{Hibernated, SnapshotBuilderExt, apply_template};

use manifest::Manifest;

mod create;
mod manifest;
mod restore;
mod scripts;
mod store;
mod wake;

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
    /// It holds the parent's paths with the parent's excludes (other paths are an error; other
    /// excludes are ignored, so that a chain's layers agree on what they leave out).
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
        let mut chain = vec![tip.clone()];
        let mut last = tip;
        loop {
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
                        Some(meta) => {
                            chain.push(meta.clone());
                            last = meta;
                        }
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
    #[tracing::instrument(name = "snapshot.list", skip_all)]
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
    #[tracing::instrument(name = "snapshot.copy", skip(self, description, tags))]
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
    #[tracing::instrument(name = "snapshot.compact", skip(self, scratch), fields(scratch = %scratch.id()))]
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
}

fn key(id: &str, name: &str) -> String {
    format!("{PREFIX}{id}/{name}")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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

#[cfg(test)]
mod tests {
    use super::create::{normalize_paths, prune_args};
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

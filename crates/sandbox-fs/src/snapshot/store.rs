//! Where snapshots live: the [`SnapshotStore`] trait, a folder on this machine
//! ([`LocalSnapshotStore`]) and any [`ObjectStore`] that can list ([`ObjectSnapshotStore`],
//! DigitalOcean Spaces through `SpacesStore`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use tokio::io::AsyncRead;

use crate::error::{Error, Result};
use crate::store::{DEFAULT_URL_EXPIRY, ObjectStore, TransferOptions, redact_url, s3_error};

/// A byte stream read from a store.
pub type ObjectReader = Box<dyn AsyncRead + Send + Unpin>;

/// A place that keeps snapshot objects under string keys (`snapshots/<id>/metadata.json`).
///
/// Implemented by [`LocalSnapshotStore`] (a folder) and [`ObjectSnapshotStore`] (an S3
/// bucket through an [`ObjectStore`]). Each `put` is atomic: a reader sees the whole object
/// or none.
#[async_trait::async_trait]
pub trait SnapshotStore: Send + Sync + fmt::Debug {
    /// Where the store is, for messages (`folder /home/u/.local/share/...`, `bucket b`).
    fn location(&self) -> String;

    /// Writes `data` as the object `key`.
    ///
    /// # Errors
    ///
    /// [`Error::Local`] or [`Error::ObjectStore`].
    async fn put(&self, key: &str, data: Bytes) -> Result<()>;

    /// Writes the local file `path` (of `size` bytes) as the object `key`.
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put).
    async fn put_file(&self, key: &str, path: &Path, size: u64) -> Result<()>;

    /// The object `key`, or `None` when it does not exist.
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put).
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;

    /// A stream of the object `key`.
    ///
    /// # Errors
    ///
    /// [`Error::ObjectStore`] when it is missing or cannot be read.
    async fn reader(&self, key: &str) -> Result<ObjectReader>;

    /// Every key that starts with `prefix`.
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put).
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;

    /// Removes the object `key` (a missing one is not an error).
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put).
    async fn delete(&self, key: &str) -> Result<()>;

    /// The object store behind this one, when a sandbox may reach it with presigned URLs.
    fn presigner(&self) -> Option<Arc<dyn ObjectStore>> {
        None
    }

    /// How long the presigned URLs handed to a sandbox stay valid.
    fn url_expiry(&self) -> Duration {
        DEFAULT_URL_EXPIRY
    }

    /// The local file that holds the object `key`, when the store is a folder on this machine
    /// (a console transfer then writes straight into it).
    fn local_path(&self, _key: &str) -> Option<PathBuf> {
        None
    }
}

/// Snapshots in a folder on this machine: each key is a file under the folder. The default
/// store of the local provider (no account needed).
#[derive(Debug, Clone)]
pub struct LocalSnapshotStore {
    root: PathBuf,
}

impl LocalSnapshotStore {
    /// A store in `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalSnapshotStore { root: root.into() }
    }

    /// The folder.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        let ok = !key.is_empty()
            && key
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != "..");
        if !ok {
            return Err(Error::invalid(
                "object key",
                key,
                "must be a relative path without `.`, `..` or empty parts",
            ));
        }
        Ok(self.root.join(key))
    }

    /// A temporary file beside the object `key`'s file, for an atomic write.
    pub(crate) async fn temp_for(&self, key: &str) -> Result<PathBuf> {
        let path = self.path(key)?;
        let parent = path.parent().unwrap_or(&self.root).to_owned();
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(|e| Error::local(&parent, "creating the snapshot folder", e))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(parent.join(format!(".{name}.{}.partial", crate::fs::util::token())))
    }

    /// Moves a temporary file made by [`temp_for`](Self::temp_for) into place as `key`.
    pub(crate) async fn commit(&self, temp: &Path, key: &str) -> Result<()> {
        let path = self.path(key)?;
        tokio::fs::rename(temp, &path)
            .await
            .map_err(|e| Error::local(&path, "moving a snapshot object into place", e))
    }
}

#[async_trait::async_trait]
impl SnapshotStore for LocalSnapshotStore {
    fn location(&self) -> String {
        format!("folder {}", self.root.display())
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let temp = self.temp_for(key).await?;
        if let Err(e) = tokio::fs::write(&temp, &data).await {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(Error::local(&temp, "writing a snapshot object", e));
        }
        self.commit(&temp, key).await
    }

    async fn put_file(&self, key: &str, path: &Path, _size: u64) -> Result<()> {
        let temp = self.temp_for(key).await?;
        if let Err(e) = tokio::fs::copy(path, &temp).await {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(Error::local(path, "copying into the snapshot store", e));
        }
        self.commit(&temp, key).await
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(data) => Ok(Some(Bytes::from(data))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::local(&path, "reading a snapshot object", e)),
        }
    }

    async fn reader(&self, key: &str) -> Result<ObjectReader> {
        let path = self.path(key)?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| Error::object_store("read", key, format!("{}: {e}", path.display())))?;
        Ok(Box::new(file))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        let keys = tokio::task::spawn_blocking(move || {
            let mut keys = Vec::new();
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::local(&dir, "listing snapshots", e)),
                };
                for entry in entries.flatten() {
                    let path = entry.path();
                    let name = entry.file_name();
                    if name.to_string_lossy().starts_with('.') {
                        continue;
                    }
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(path);
                    } else if let Ok(rel) = path.strip_prefix(&root) {
                        let key = rel.to_string_lossy().into_owned();
                        if key.starts_with(&prefix) {
                            keys.push(key);
                        }
                    }
                }
            }
            Ok(keys)
        })
        .await
        .map_err(|e| Error::local(&self.root, "listing snapshots", std::io::Error::other(e)))??;
        Ok(keys)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::local(&path, "removing a snapshot object", e)),
        }
        // Empty folders left by the delete go too (never the store's own folder).
        let mut dir = path.parent().map(Path::to_owned);
        while let Some(d) = dir {
            if d == self.root || !d.starts_with(&self.root) || std::fs::remove_dir(&d).is_err() {
                break;
            }
            dir = d.parent().map(Path::to_owned);
        }
        Ok(())
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.path(key).ok()
    }
}

/// Snapshots in an S3 bucket (DigitalOcean Spaces) through an [`ObjectStore`] that can list:
/// the host moves bytes with presigned URLs, and so can the sandbox.
#[derive(Clone)]
pub struct ObjectSnapshotStore {
    store: Arc<dyn ObjectStore>,
    client: reqwest::Client,
    expiry: Duration,
    location: String,
}

impl fmt::Debug for ObjectSnapshotStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectSnapshotStore")
            .field("store", &self.store)
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

impl ObjectSnapshotStore {
    /// Snapshots in `store`, with presigned URLs valid for 15 minutes.
    ///
    /// # Errors
    ///
    /// [`Error::ObjectStore`] when the HTTP client cannot be set up.
    pub fn new(store: Arc<dyn ObjectStore>) -> Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::object_store("set up", "", format!("HTTP client: {e}")))?;
        let location = format!("{store:?}");
        Ok(ObjectSnapshotStore {
            store,
            client,
            expiry: DEFAULT_URL_EXPIRY,
            location,
        })
    }

    /// Snapshots in DigitalOcean Spaces (or any S3 server) with this configuration.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    #[cfg(feature = "spaces")]
    pub fn spaces(config: crate::SpacesConfig) -> Result<Self> {
        let expiry = config.url_expiry();
        let location = format!("bucket {} at {}", config.bucket(), config.endpoint_url());
        let mut this = Self::new(Arc::new(crate::SpacesStore::new(config)))?;
        this.expiry = expiry;
        this.location = location;
        Ok(this)
    }

    /// How long the presigned URLs stay valid.
    #[must_use]
    pub fn with_url_expiry(mut self, expiry: Duration) -> Self {
        self.expiry = expiry;
        self
    }

    async fn get_response(&self, key: &str) -> Result<Option<reqwest::Response>> {
        let url = self.store.presign_get(key, self.expiry).await?;
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| request_error("read", key, &url, &e))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(s3_error("read", key, status.as_u16(), &body));
        }
        Ok(Some(response))
    }
}

#[async_trait::async_trait]
impl SnapshotStore for ObjectSnapshotStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let url = self.store.presign_put(key, self.expiry).await?;
        let response = self
            .client
            .put(&url)
            .header(reqwest::header::CONTENT_LENGTH, data.len())
            .body(data)
            .send()
            .await
            .map_err(|e| request_error("write", key, &url, &e))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(s3_error("write", key, status.as_u16(), &body));
        }
        Ok(())
    }

    async fn put_file(&self, key: &str, path: &Path, size: u64) -> Result<()> {
        let url = self.store.presign_put(key, self.expiry).await?;
        crate::http::put_file(&self.client, &url, key, path, size, &TransferOptions::new()).await
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let Some(response) = self.get_response(key).await? else {
            return Ok(None);
        };
        let data = response
            .bytes()
            .await
            .map_err(|e| Error::object_store("read", key, e.without_url().to_string()))?;
        Ok(Some(data))
    }

    async fn reader(&self, key: &str) -> Result<ObjectReader> {
        let Some(response) = self.get_response(key).await? else {
            return Err(Error::object_store(
                "read",
                key,
                "the object does not exist",
            ));
        };
        let stream = response
            .bytes_stream()
            .map_err(|e| std::io::Error::other(e.without_url()));
        Ok(Box::new(tokio_util::io::StreamReader::new(stream)))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.store.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.store.delete(key).await
    }

    fn presigner(&self) -> Option<Arc<dyn ObjectStore>> {
        Some(Arc::clone(&self.store))
    }

    fn url_expiry(&self) -> Duration {
        self.expiry
    }
}

fn request_error(operation: &str, key: &str, url: &str, error: &reqwest::Error) -> Error {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    let text = text.replace(url, &redact_url(url));
    Error::object_store(operation, key, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_folder_store_keeps_keys_inside_its_folder() {
        let dir = tempfile::tempdir().expect("temp");
        let store = LocalSnapshotStore::new(dir.path());
        for bad in ["../x", "a/../../x", "/abs", "a//b", ""] {
            assert!(
                store.put(bad, Bytes::from_static(b"x")).await.is_err(),
                "{bad}"
            );
        }
        store
            .put("snapshots/s/metadata.json", Bytes::from_static(b"{}"))
            .await
            .expect("put");
        assert_eq!(
            store.list("snapshots/").await.expect("list"),
            ["snapshots/s/metadata.json"]
        );
        assert_eq!(
            store
                .get("snapshots/s/metadata.json")
                .await
                .expect("get")
                .as_deref(),
            Some(&b"{}"[..])
        );
        assert!(
            store
                .get("snapshots/t/metadata.json")
                .await
                .expect("get")
                .is_none()
        );
        store
            .delete("snapshots/s/metadata.json")
            .await
            .expect("delete");
        assert!(
            std::fs::read_dir(dir.path()).expect("dir").next().is_none(),
            "empty folders removed with the last object"
        );
    }
}

//! Large files through the object store: [`FileSystem::upload_large`] and
//! [`FileSystem::download_large`] (the host moves bytes with presigned URLs, the sandbox with
//! `curl`), the transfer object's key and removal, and the check of a `curl` script's output.
//! The store itself is the [`ObjectStore`] trait in `crate::store`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sandbox_core::ExecOutput;

use super::FileSystem;
use super::local::{local_file_size, local_temp_beside};
use super::util::{check_path, last_line, ok_or_fail, parse_number, protocol, token};
use crate::entry::base_name;
use crate::error::{Error, Result};
use crate::script;
use crate::store::{ObjectStore, TransferOptions, s3_error};

impl FileSystem {
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

    pub(crate) async fn upload_store(
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

    pub(super) async fn download_store(
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

/// The curl configuration that carries a URL on stdin (kept out of the process list).
pub(crate) fn curl_config(url: &str) -> Bytes {
    let escaped = url.replace('\\', "\\\\").replace('"', "\\\"");
    Bytes::from(format!("url = \"{escaped}\"\n"))
}

/// Checks the output of a curl transfer script.
pub(crate) fn transfer_ok(
    operation: &str,
    path: &str,
    key: &str,
    out: ExecOutput,
) -> Result<ExecOutput> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curl_config_quotes_the_url() {
        assert_eq!(
            &curl_config("http://h/a?b=\"c\\")[..],
            b"url = \"http://h/a?b=\\\"c\\\\\"\n"
        );
    }
}

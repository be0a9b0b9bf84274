//! Restoring a snapshot: every layer of its chain, checked on the host while the archive
//! reaches the sandbox, extracted only when both agree.

use bytes::Bytes;
use sandbox_core::Sandbox;

use super::manifest::Manifest;
use super::{Route, SnapshotMetadata, Snapshots, key, scripts};
use crate::error::{Error, Result};
use crate::fs::local::LocalTemp;
use crate::fs::util::{ok_or_fail, token};
use crate::fs::{FileSystem, SandboxFsExt};
use crate::store::TransferOptions;

impl Snapshots {
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
        chain
            .into_iter()
            .next()
            .ok_or_else(|| Error::SnapshotNotFound {
                id: id.to_owned(),
                store: self.store.location(),
            })
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
                Err(e) if route == Route::Auto && super::create::store_unreachable(&e) => {
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

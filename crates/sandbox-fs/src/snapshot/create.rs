//! Making a snapshot: listing and hashing in the sandbox, the layer's archive, its trip to
//! the store, and the check of what the store holds.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use sandbox_core::Sandbox;

use super::manifest::{self, Entry, EntryKind, Manifest};
use super::{
    DEFAULT_SNAPSHOT_PATH, LocalSnapshotStore, Route, SandboxTemplateRecord, SnapshotKind,
    SnapshotMetadata, SnapshotOptions, Snapshots, check_id, key, now, scripts,
};
use crate::error::{Error, Result};
use crate::fs::local::LocalTemp;
use crate::fs::util::{last_line, ok_or_fail, parse_number, protocol, token};
use crate::fs::{FileSystem, SandboxFsExt};
use crate::script;
use crate::store::TransferOptions;

impl Snapshots {
    /// Takes a snapshot of folders of `sandbox` (by default [`DEFAULT_SNAPSHOT_PATH`] without
    /// [`DEFAULT_EXCLUDES`](super::DEFAULT_EXCLUDES)); with [`SnapshotOptions::parent`], an incremental one holding
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
            (Some((meta, ..)), false) => {
                let paths = normalize_paths(&options.paths)?;
                if paths != meta.paths {
                    return Err(Error::invalid(
                        "snapshot paths",
                        paths.join(" "),
                        format!(
                            "an incremental snapshot holds its parent's paths ({})",
                            meta.paths.join(" ")
                        ),
                    ));
                }
                (paths, meta.excludes.clone())
            }
            (None, false) => (normalize_paths(&options.paths)?, options.excludes.clone()),
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
                Err(e) if route == Route::Auto && store_unreachable(&e) => {
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

    pub(super) fn url_expiry(&self) -> Duration {
        self.store.url_expiry()
    }

    /// Reads the stored archive of `id` and checks it against `manifest`.
    pub(super) async fn check_stored(
        &self,
        id: &str,
        manifest: &Manifest,
    ) -> Result<manifest::Checked> {
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

/// The `find` expression that prunes the excludes.
pub(super) fn prune_args(excludes: &[String]) -> Vec<String> {
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

/// Absolute, normalized, distinct, not `/`, none inside another.
pub(super) fn normalize_paths(paths: &[String]) -> Result<Vec<String>> {
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

/// Whether a transfer failed because curl in the sandbox could not connect to the store
/// (name resolution, connection refused, connect timeout).
pub(super) fn store_unreachable(error: &Error) -> bool {
    match error {
        Error::ObjectStore { message, .. } => ["curl: (6)", "curl: (7)", "curl: (28)"]
            .iter()
            .any(|code| message.starts_with(code)),
        _ => false,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connection_failures_fall_back_to_the_console() {
        let refused = Error::object_store("snapshot upload", "k", "curl: (7) Failed to connect");
        assert!(store_unreachable(&refused));
        let timeout =
            Error::object_store("snapshot upload", "k", "curl: (28) Connection timed out");
        assert!(store_unreachable(&timeout));
        let http = Error::object_store("snapshot upload", "k", "HTTP 500: InternalError");
        assert!(!store_unreachable(&http));
        let expired = Error::UrlExpired {
            key: "k".into(),
            message: "expired".into(),
        };
        assert!(!store_unreachable(&expired));
    }
}

//! Host-side files: temporary files removed on drop ([`LocalTemp`]), created beside a
//! download's target, and the size of a local file to upload.

use std::path::{Path, PathBuf};

use super::util::token;
use crate::error::{Error, Result};

/// A local file removed when dropped (temporary archives and downloads).
pub(crate) struct LocalTemp(pub(crate) PathBuf);

impl Drop for LocalTemp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub(crate) async fn local_file_size(local: &Path) -> Result<u64> {
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
pub(crate) async fn local_temp_beside(local: &Path) -> Result<(LocalTemp, tokio::fs::File)> {
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

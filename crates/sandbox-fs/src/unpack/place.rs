//! The temporary folder a stream is extracted into, and moving it into place.

use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, RenameFlags};

use super::tree;
use crate::error::{Error, Result};

/// What a folder download does when the local folder already holds something.
///
/// A missing folder and an empty one are the same: the download becomes that folder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExistingDir {
    /// A local folder with anything in it is an error ([`Error::LocalExists`]), checked
    /// before anything is transferred.
    #[default]
    Refuse,
    /// The download is merged into the folder: new names are added, files and links of the
    /// same name are replaced, folders are merged. A name that is a folder on one side and not
    /// on the other, or a symlink in the local folder where the download has a folder, is an
    /// error raised before anything moves ([`Error::LocalConflict`]). Nothing in the local
    /// folder is ever followed.
    Merge,
    /// The folder is replaced as a whole: swapped with the download in one step where the
    /// filesystem can (`RENAME_EXCHANGE`), then the old content is removed.
    Replace,
}

/// What is at the local path before a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Destination {
    /// Nothing, or an empty folder.
    Free,
    /// A folder with something in it (allowed by [`ExistingDir::Merge`] or `Replace`).
    Occupied,
}

/// Checks the local path of a folder download before anything is transferred.
///
/// # Errors
///
/// [`Error::LocalKind`] (a file), [`Error::LocalConflict`] (a symlink),
/// [`Error::LocalExists`] (an occupied folder under [`ExistingDir::Refuse`]), [`Error::Local`].
pub(crate) fn check(local: &Path, existing: ExistingDir) -> Result<Destination> {
    let meta = match std::fs::symlink_metadata(local) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Destination::Free),
        Err(e) => return Err(Error::local(local, "reading metadata", e)),
    };
    if meta.file_type().is_symlink() {
        return Err(Error::LocalConflict {
            path: local.to_owned(),
            reason: "is a symlink, and a folder download never writes through one (name the folder it points to)".into(),
        });
    }
    if !meta.is_dir() {
        return Err(Error::LocalKind {
            path: local.to_owned(),
            expected_dir: true,
        });
    }
    let mut names =
        std::fs::read_dir(local).map_err(|e| Error::local(local, "listing the folder", e))?;
    if names.next().is_none() {
        return Ok(Destination::Free);
    }
    if existing == ExistingDir::Refuse {
        return Err(Error::LocalExists {
            path: local.to_owned(),
        });
    }
    Ok(Destination::Occupied)
}

/// A fresh folder (mode 0700) beside the destination that receives the stream; removed with
/// everything in it when dropped, unless it became the destination.
pub(crate) struct Staging {
    parent: PathBuf,
    name: PathBuf,
    fd: OwnedFd,
}

impl Staging {
    /// Makes the folder beside `local` (whose parent folders are created when missing).
    ///
    /// # Errors
    ///
    /// [`Error::Local`] when the folder cannot be made.
    pub(crate) fn beside(local: &Path) -> Result<Staging> {
        let (parent, name) = split(local)?;
        std::fs::create_dir_all(&parent)
            .map_err(|e| Error::local(&parent, "creating the folder", e))?;
        let mut staging_name = OsStr::new(".").to_os_string();
        staging_name.push(&name);
        staging_name.push(format!(".sandbox-fs.{}", uuid::Uuid::new_v4().simple()));
        let name = PathBuf::from(staging_name);
        let path = parent.join(&name);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| Error::local(&path, "creating a temporary folder", e))?;
        let fd = match tree::open_root(&path) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = std::fs::remove_dir(&path);
                return Err(Error::local(&path, "opening a temporary folder", e));
            }
        };
        Ok(Staging { parent, name, fd })
    }

    /// The open folder.
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// The folder's path.
    pub(crate) fn path(&self) -> PathBuf {
        self.parent.join(&self.name)
    }

    /// Moves the extracted tree to `local`, as `existing` says.
    ///
    /// # Errors
    ///
    /// [`Error::LocalExists`] when the folder filled up since [`check`],
    /// [`Error::LocalConflict`] for a merge that would change a folder into a file or write
    /// through a symlink, [`Error::Local`].
    pub(crate) fn place(self, local: &Path, existing: ExistingDir) -> Result<()> {
        let (_, local_name) = split(local)?;
        let target = self.parent.join(&local_name);
        let parent = tree::open_root(&self.parent)
            .map_err(|e| Error::local(&self.parent, "opening the folder", e))?;
        match check(&target, existing)? {
            Destination::Free => rustix::fs::renameat(&parent, &self.name, &parent, &local_name)
                .map_err(|e| match e {
                    rustix::io::Errno::NOTEMPTY | rustix::io::Errno::EXIST => Error::LocalExists {
                        path: local.to_owned(),
                    },
                    e => Error::local(local, "moving the download into place", e.into()),
                }),
            Destination::Occupied if existing == ExistingDir::Replace => {
                self.replace(&parent, &local_name, local)
            }
            Destination::Occupied => {
                let into = tree::open_root(&target)
                    .map_err(|e| Error::local(local, "opening the folder", e))?;
                merge(&self.fd, &into, local)
            }
        }
    }

    fn replace(&self, parent: &OwnedFd, local_name: &Path, local: &Path) -> Result<()> {
        match rustix::fs::renameat_with(
            parent,
            &self.name,
            parent,
            local_name,
            RenameFlags::EXCHANGE,
        ) {
            // The old content is now in the staging folder, which is removed on drop.
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
                // No exchange on this filesystem: move the old folder aside first.
                let mut aside = self.name.as_os_str().to_os_string();
                aside.push(".old");
                rustix::fs::renameat(parent, local_name, parent, aside.as_os_str())
                    .map_err(|e| Error::local(local, "moving the old folder aside", e.into()))?;
                let moved = rustix::fs::renameat(parent, &self.name, parent, local_name);
                let old = self.parent.join(&aside);
                if let Err(e) = moved {
                    let _ = rustix::fs::renameat(parent, aside.as_os_str(), parent, local_name);
                    return Err(Error::local(
                        local,
                        "moving the download into place",
                        e.into(),
                    ));
                }
                let _ = std::fs::remove_dir_all(old);
                Ok(())
            }
            Err(e) => Err(Error::local(local, "swapping in the download", e.into())),
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let path = self.path();
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a temporary folder")
            }
        }
    }
}

/// The parent folder and final name of `local`; a path without a final name (`.`, `..`,
/// `/`) is resolved first.
fn split(local: &Path) -> Result<(PathBuf, PathBuf)> {
    let resolved;
    let local = if local.file_name().is_some() {
        local
    } else {
        resolved = std::fs::canonicalize(local)
            .map_err(|e| Error::local(local, "resolving the folder", e))?;
        &resolved
    };
    let name = local.file_name().ok_or_else(|| Error::LocalKind {
        path: local.to_owned(),
        expected_dir: true,
    })?;
    let parent = match local.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    Ok((parent, PathBuf::from(name)))
}

/// Moves everything of `from` into `into`: planned in full first (any conflict stops it before
/// anything moves), then done with one rename per name.
fn merge(from: &OwnedFd, into: &OwnedFd, local: &Path) -> Result<()> {
    let mut moves = Vec::new();
    plan(from, into, &mut Vec::new(), &mut moves, local)?;
    for parts in moves {
        let (name, parents) = parts.split_last().expect("a move names something");
        let parents: Vec<&[u8]> = parents.iter().map(Vec::as_slice).collect();
        let shown = shown_path(local, &parts);
        let src = tree::walk(from, &parents, false, |_| {})
            .map_err(|e| Error::local(&shown, "merging", e))?;
        let dst = tree::walk(into, &parents, false, |_| {})
            .map_err(|e| Error::local(&shown, "merging", e))?;
        rustix::fs::renameat(&src, name.as_slice(), &dst, name.as_slice())
            .map_err(|e| Error::local(&shown, "merging", e.into()))?;
    }
    Ok(())
}

fn plan(
    from: &OwnedFd,
    into: &OwnedFd,
    at: &mut Vec<Vec<u8>>,
    moves: &mut Vec<Vec<Vec<u8>>>,
    local: &Path,
) -> Result<()> {
    let listing = tree::entries(from).map_err(|e| Error::local(local, "merging", e))?;
    for (name, kind) in listing {
        at.push(name.clone());
        let shown = shown_path(local, at);
        let there = tree::kind_of(into, &name).map_err(|e| Error::local(&shown, "merging", e))?;
        let conflict = |reason: &str| Error::LocalConflict {
            path: shown.clone(),
            reason: reason.into(),
        };
        match (kind == FileType::Directory, there) {
            (_, None) => moves.push(at.clone()),
            (true, Some(FileType::Directory)) => {
                let sub_from =
                    tree::open_dir(from, &name).map_err(|e| Error::local(&shown, "merging", e))?;
                let sub_into =
                    tree::open_dir(into, &name).map_err(|e| Error::local(&shown, "merging", e))?;
                plan(&sub_from, &sub_into, at, moves, local)?;
            }
            (false, Some(FileType::Directory)) => {
                return Err(conflict(
                    "is a folder here but a file in the download; a merge does not replace folders",
                ));
            }
            (true, Some(FileType::Symlink)) => {
                return Err(conflict(
                    "is a symlink here but a folder in the download, and a merge never writes through a symlink",
                ));
            }
            (true, Some(_)) => {
                return Err(conflict(
                    "is a file here but a folder in the download; a merge does not replace files with folders",
                ));
            }
            (false, Some(_)) => moves.push(at.clone()),
        }
        at.pop();
    }
    Ok(())
}

fn shown_path(local: &Path, parts: &[Vec<u8>]) -> PathBuf {
    let mut path = local.to_owned();
    for part in parts {
        path.push(OsStr::from_bytes(part));
    }
    path
}

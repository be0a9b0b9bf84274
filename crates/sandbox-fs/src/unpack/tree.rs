//! Walking a local folder one component at a time, never through a symlink.
//!
//! Every open is relative to an already open folder and carries `O_NOFOLLOW`, so a symlink
//! anywhere below the starting folder is an error (`ELOOP` or `ENOTDIR`), never a detour.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Opens a folder by path, following links in the path as the caller wrote it: this is the
/// starting point the caller chose.
pub(crate) fn open_root(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        DIR_FLAGS.difference(OFlags::NOFOLLOW),
        Mode::empty(),
    )?)
}

/// Opens the folder `name` inside `dir`, refusing a symlink.
pub(crate) fn open_dir(dir: impl AsFd, name: &[u8]) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty())?)
}

/// Opens (and with `create`, makes with mode 0700) each folder of `parts` in turn below
/// `root`; returns the last, or a duplicate of `root` for no parts. `created` hears of each
/// folder made.
pub(crate) fn walk(
    root: impl AsFd,
    parts: &[&[u8]],
    create: bool,
    mut created: impl FnMut(usize),
) -> io::Result<OwnedFd> {
    let mut current = root.as_fd().try_clone_to_owned()?;
    for (i, part) in parts.iter().enumerate() {
        current = match open_dir(&current, part) {
            Err(e) if create && e.kind() == io::ErrorKind::NotFound => {
                rustix::fs::mkdirat(&current, *part, Mode::from_raw_mode(0o700))?;
                created(i);
                open_dir(&current, part)?
            }
            other => other?,
        };
    }
    Ok(current)
}

/// Creates a regular file `name` in `dir` for writing: it must not exist, and a symlink in its
/// place is an error, not followed.
pub(crate) fn create_file(dir: impl AsFd, name: &[u8]) -> io::Result<std::fs::File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(std::fs::File::from(fd))
}

/// What `name` in `dir` is, without following a symlink; `None` when it does not exist.
pub(crate) fn kind_of(dir: impl AsFd, name: &[u8]) -> io::Result<Option<FileType>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(FileType::from_raw_mode(stat.st_mode))),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The names in the open folder `dir`, without `.` and `..`, each with its type.
pub(crate) fn entries(dir: impl AsFd) -> io::Result<Vec<(Vec<u8>, FileType)>> {
    let dir = dir.as_fd();
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let kind = match entry.file_type() {
            FileType::Unknown => kind_of(dir, name)?.unwrap_or(FileType::Unknown),
            kind => kind,
        };
        names.push((name.to_vec(), kind));
    }
    Ok(names)
}

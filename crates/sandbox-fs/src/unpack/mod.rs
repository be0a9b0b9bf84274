//! Extracting a sandbox's tar stream on the host, where every byte of it is hostile.
//!
//! The stream is parsed with the `tar` crate (never the host's `tar`) into a fresh folder
//! that only the caller can enter (mode 0700), beside the destination; [`place`] moves that
//! folder into place once the whole stream was read and checked. What a member may be:
//!
//! | member | what happens |
//! | --- | --- |
//! | file, folder | written; permissions without setuid, setgid, sticky and (unless asked) group and other write; modified time kept; owner always the caller |
//! | symlink whose target stays inside the tree ([`rules::link_stays_inside`]) | kept as a link |
//! | symlink pointing anywhere else (absolute, or climbing out) | dropped, with a warning |
//! | hard link to a file extracted earlier in the stream | kept as a hard link |
//! | hard link to anything else | the stream is refused |
//! | device node, FIFO | skipped, with a warning |
//! | absolute path, `..`, NUL, a name over 255 bytes | the stream is refused |
//! | a member beneath a symlink or a file, or replacing a folder | the stream is refused |
//! | more bytes or members than the limits, a stream cut short, a corrupt header | the stream is refused |
//!
//! Nothing is ever opened through a symlink: every folder is opened relative to its parent
//! with `O_NOFOLLOW`, every file is created with `O_CREAT | O_EXCL | O_NOFOLLOW`.

pub(crate) mod place;
pub(crate) mod rules;
mod tree;

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{AtFlags, Mode, Timespec, Timestamps};
use tar::EntryType;

/// How much a stream may hold, and how shared write bits are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Bytes of file content written, in total.
    pub max_bytes: u64,
    /// Members, of every kind.
    pub max_members: u64,
    /// Keep group and other write bits.
    pub keep_write: bool,
}

/// What an extraction wrote and left out.
#[derive(Debug, Default)]
pub(crate) struct Unpacked {
    /// Members read.
    pub members: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Members left out, each with why.
    pub left_out: Vec<(String, &'static str)>,
}

/// Why an extraction stopped.
#[derive(Debug)]
pub(crate) enum UnpackError {
    /// The stream broke a rule.
    Refused {
        /// The member, when one is at fault.
        member: Option<String>,
        /// The rule, as a phrase.
        rule: String,
    },
    /// Writing on the host failed.
    Io {
        /// The member being written.
        member: String,
        /// The cause.
        source: io::Error,
    },
}

fn refused(member: &[u8], rule: impl Into<String>) -> UnpackError {
    UnpackError::Refused {
        member: Some(rules::shown(member)),
        rule: rule.into(),
    }
}

fn stream_refused(rule: impl Into<String>) -> UnpackError {
    UnpackError::Refused {
        member: None,
        rule: rule.into(),
    }
}

/// What a path of the tree is, as far as the extraction knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Link,
    /// A member that was left out (a dropped link, a device node): nothing may go beneath it.
    LeftOut,
}

/// Folder modes and times, applied once everything inside is written (a folder without write
/// permission could not be filled otherwise).
struct DirMeta {
    mode: u32,
    mtime: Option<u64>,
}

/// Reads the tar stream `reader` into `root`, an empty folder.
///
/// # Errors
///
/// [`UnpackError::Refused`] when the stream breaks a rule of the module's table,
/// [`UnpackError::Io`] when the host cannot write a member.
pub(crate) fn unpack(
    reader: impl Read,
    root: &OwnedFd,
    limits: &Limits,
) -> Result<Unpacked, UnpackError> {
    let mut state = State {
        root,
        limits,
        kinds: HashMap::new(),
        dirs: HashMap::new(),
        parent_cache: None,
        done: Unpacked::default(),
        buffer: vec![0u8; 256 * 1024],
    };
    let mut archive = tar::Archive::new(reader);
    {
        let entries = archive
            .entries()
            .map_err(|e| stream_refused(format!("is not a tar stream ({e})")))?;
        for entry in entries {
            let entry = entry.map_err(|e| stream_refused(format!("is corrupt ({e})")))?;
            state.member(entry)?;
        }
    }
    // The tar crate stops at the first zero block or at a clean end of input; an honest
    // stream ends with two zero blocks, so a missing second block means it was cut short.
    let mut rest = archive.into_inner();
    let mut block = [0u8; 512];
    let complete =
        read_full(&mut rest, &mut block).unwrap_or(false) && block.iter().all(|&b| b == 0);
    if !complete {
        return Err(stream_refused(
            "ends without its end-of-archive marker (it was cut short)",
        ));
    }
    state.finish()?;
    Ok(state.done)
}

/// Fills `buf` from `reader`; `false` when the input ends first.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

struct State<'a> {
    root: &'a OwnedFd,
    limits: &'a Limits,
    kinds: HashMap<Vec<u8>, Kind>,
    dirs: HashMap<Vec<u8>, DirMeta>,
    parent_cache: Option<(Vec<u8>, OwnedFd)>,
    done: Unpacked,
    buffer: Vec<u8>,
}

impl State<'_> {
    fn member<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), UnpackError> {
        self.done.members += 1;
        let raw = entry.path_bytes().into_owned();
        if self.done.members > self.limits.max_members {
            return Err(refused(
                &raw,
                format!(
                    "goes past the limit of {} members per folder download",
                    self.limits.max_members
                ),
            ));
        }
        let parts = rules::components(&raw).map_err(|rule| refused(&raw, rule))?;
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header
            .mode()
            .map_err(|e| refused(&raw, format!("has an unreadable mode ({e})")))?;
        let mtime = header.mtime().ok();
        let Some((name, parents)) = parts.split_last() else {
            if kind.is_dir() {
                self.dirs.insert(
                    Vec::new(),
                    DirMeta {
                        mode: rules::permissions(mode, self.limits.keep_write),
                        mtime,
                    },
                );
                return Ok(());
            }
            return Err(refused(&raw, "names the folder itself but is not a folder"));
        };
        self.check_parents(&raw, parents)?;
        let key = raw_key(&parts);
        let existing = self.kinds.get(&key).copied();
        match kind {
            EntryType::Directory => {
                match existing {
                    Some(Kind::Dir) => {}
                    None | Some(Kind::LeftOut) => {
                        let parent = self.parent(&raw, parents)?;
                        rustix::fs::mkdirat(&parent, *name, Mode::from_raw_mode(0o700))
                            .map_err(|e| io_error(&raw, e.into()))?;
                        self.kinds.insert(key.clone(), Kind::Dir);
                    }
                    Some(_) => {
                        return Err(refused(
                            &raw,
                            "is a folder where the stream already put a file or link",
                        ));
                    }
                }
                self.dirs.insert(
                    key,
                    DirMeta {
                        mode: rules::permissions(mode, self.limits.keep_write),
                        mtime,
                    },
                );
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let parent = self.replaceable(&raw, parents, name, existing)?;
                let file = tree::create_file(&parent, name).map_err(|e| io_error(&raw, e))?;
                let expected = entry.size();
                let budget = self.limits.max_bytes.saturating_sub(self.done.bytes);
                if expected > budget {
                    return Err(self.too_large(&raw));
                }
                let written = self.copy(&mut entry, &file, budget, &raw)?;
                if written < expected {
                    return Err(refused(
                        &raw,
                        format!("was cut short ({written} of {expected} bytes)"),
                    ));
                }
                self.done.bytes += written;
                rustix::fs::fchmod(
                    &file,
                    Mode::from_raw_mode(rules::permissions(mode, self.limits.keep_write)),
                )
                .map_err(|e| io_error(&raw, e.into()))?;
                if let Some(mtime) = mtime {
                    set_mtime(&file, mtime).map_err(|e| io_error(&raw, e))?;
                }
                self.kinds.insert(key, Kind::File);
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                if !rules::link_stays_inside(parents.len(), &target) {
                    self.leave_out(&raw, key, "a symlink pointing outside the folder");
                    return Ok(());
                }
                let parent = self.replaceable(&raw, parents, name, existing)?;
                rustix::fs::symlinkat(target.as_slice(), &parent, *name)
                    .map_err(|e| io_error(&raw, e.into()))?;
                self.kinds.insert(key, Kind::Link);
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let target_parts = rules::components(&target)
                    .map_err(|rule| refused(&raw, format!("is a hard link whose target {rule}")))?;
                let Some((target_name, target_parents)) = target_parts.split_last() else {
                    return Err(refused(&raw, "is a hard link to the folder itself"));
                };
                if self.kinds.get(&raw_key(&target_parts)) != Some(&Kind::File) {
                    return Err(refused(
                        &raw,
                        format!(
                            "is a hard link to `{}`, which is not a file extracted earlier from the stream",
                            rules::shown(&target)
                        ),
                    ));
                }
                let from = tree::walk(self.root, target_parents, false, |_| {})
                    .map_err(|e| io_error(&raw, e))?;
                let parent = self.replaceable(&raw, parents, name, existing)?;
                rustix::fs::linkat(&from, *target_name, &parent, *name, AtFlags::empty())
                    .map_err(|e| io_error(&raw, e.into()))?;
                self.kinds.insert(key, Kind::File);
            }
            EntryType::Char | EntryType::Block => {
                self.leave_out(&raw, key, "a device node");
            }
            EntryType::Fifo => {
                self.leave_out(&raw, key, "a FIFO");
            }
            other => {
                return Err(refused(
                    &raw,
                    format!("has a member type this host does not take ({other:?})"),
                ));
            }
        }
        Ok(())
    }

    /// Refuses a member beneath anything but a folder the stream made.
    fn check_parents(&self, raw: &[u8], parents: &[&[u8]]) -> Result<(), UnpackError> {
        for depth in 1..=parents.len() {
            let prefix = &parents[..depth];
            match self.kinds.get(&raw_key(prefix)) {
                None | Some(Kind::Dir) => {}
                Some(Kind::Link) => {
                    return Err(refused(
                        raw,
                        format!(
                            "lies beneath the symlink `{}`",
                            rules::shown(&raw_key(prefix))
                        ),
                    ));
                }
                Some(Kind::LeftOut) => {
                    return Err(refused(
                        raw,
                        format!(
                            "lies beneath `{}`, which was left out (a symlink pointing outside, or a device)",
                            rules::shown(&raw_key(prefix))
                        ),
                    ));
                }
                Some(Kind::File) => {
                    return Err(refused(
                        raw,
                        format!("lies beneath the file `{}`", rules::shown(&raw_key(prefix))),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The open parent folder of a member that is not a folder; an earlier file or link at the
    /// same path is removed first (the later member wins, as with `tar -x`), an earlier
    /// folder is an error.
    fn replaceable(
        &mut self,
        raw: &[u8],
        parents: &[&[u8]],
        name: &[u8],
        existing: Option<Kind>,
    ) -> Result<OwnedFd, UnpackError> {
        let parent = self.parent(raw, parents)?;
        match existing {
            Some(Kind::Dir) => Err(refused(raw, "would replace a folder the stream made")),
            Some(Kind::File | Kind::Link) => {
                rustix::fs::unlinkat(&parent, name, AtFlags::empty())
                    .map_err(|e| io_error(raw, e.into()))?;
                Ok(parent)
            }
            None | Some(Kind::LeftOut) => Ok(parent),
        }
    }

    /// The open folder `parents`, made (mode 0700 until the end) where missing.
    fn parent(&mut self, raw: &[u8], parents: &[&[u8]]) -> Result<OwnedFd, UnpackError> {
        let key = raw_key(parents);
        if let Some((cached, fd)) = &self.parent_cache
            && *cached == key
        {
            return fd.try_clone().map_err(|e| io_error(raw, e));
        }
        let mut made = Vec::new();
        let fd =
            tree::walk(self.root, parents, true, |i| made.push(i)).map_err(|e| io_error(raw, e))?;
        for i in made {
            let key = raw_key(&parents[..=i]);
            self.kinds.insert(key.clone(), Kind::Dir);
            self.dirs.entry(key).or_insert(DirMeta {
                mode: 0o755,
                mtime: None,
            });
        }
        let copy = fd.try_clone().map_err(|e| io_error(raw, e))?;
        self.parent_cache = Some((key, copy));
        Ok(fd)
    }

    fn copy<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        file: &std::fs::File,
        budget: u64,
        raw: &[u8],
    ) -> Result<u64, UnpackError> {
        use std::io::Write;
        let mut written = 0u64;
        let mut out = file;
        loop {
            let n = match entry.read(&mut self.buffer) {
                Ok(0) => return Ok(written),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(refused(
                        raw,
                        format!("could not be read from the stream ({e})"),
                    ));
                }
            };
            written += n as u64;
            if written > budget {
                return Err(self.too_large(raw));
            }
            out.write_all(&self.buffer[..n])
                .map_err(|e| io_error(raw, e))?;
        }
    }

    fn too_large(&self, raw: &[u8]) -> UnpackError {
        refused(
            raw,
            format!(
                "goes past the limit of {} bytes per folder download",
                self.limits.max_bytes
            ),
        )
    }

    fn leave_out(&mut self, raw: &[u8], key: Vec<u8>, why: &'static str) {
        self.kinds.insert(key, Kind::LeftOut);
        self.done.left_out.push((rules::shown(raw), why));
    }

    /// Applies folder modes and times, deepest first.
    fn finish(&mut self) -> Result<(), UnpackError> {
        self.parent_cache = None;
        let mut dirs: Vec<(Vec<u8>, DirMeta)> = self.dirs.drain().collect();
        dirs.sort_by_key(|(key, _)| std::cmp::Reverse(depth(key)));
        for (key, meta) in dirs {
            let parts: Vec<&[u8]> = if key.is_empty() {
                Vec::new()
            } else {
                key.split(|&b| b == b'/').collect()
            };
            let fd = tree::walk(self.root, &parts, false, |_| {}).map_err(|e| io_error(&key, e))?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode))
                .map_err(|e| io_error(&key, e.into()))?;
            if let Some(mtime) = meta.mtime {
                set_mtime(&fd, mtime).map_err(|e| io_error(&key, e))?;
            }
        }
        Ok(())
    }
}

/// How many components a key has.
fn depth(key: &[u8]) -> usize {
    if key.is_empty() {
        0
    } else {
        key.iter().filter(|&&b| b == b'/').count() + 1
    }
}

fn raw_key(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(&b'/')
}

fn io_error(raw: &[u8], source: io::Error) -> UnpackError {
    UnpackError::Io {
        member: rules::shown(raw),
        source,
    }
}

fn set_mtime(fd: impl AsFd, mtime: u64) -> io::Result<()> {
    let time = Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    rustix::fs::futimens(
        fd,
        &Timestamps {
            last_access: time,
            last_modification: time,
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;

//! What a directory listing and `stat` report, and the parser of the remote records.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What kind of thing a path is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (not followed), with the target it points to.
    Symlink {
        /// The link's target, as stored in the link.
        target: String,
    },
    /// Anything else: a fifo, a socket, a device.
    Other,
}

/// One entry of a directory listing, or what [`FileSystem::stat`](crate::FileSystem::stat)
/// reports about a path.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirEntry {
    /// The entry's name (the last component of its path; names that are not UTF-8 are shown
    /// with U+FFFD).
    pub name: String,
    /// The directory's path joined with the name (or the path given to `stat`).
    pub path: String,
    /// File, directory, symlink (with its target) or other.
    pub kind: FileKind,
    /// Size in bytes (of the link itself for a symlink).
    pub size: u64,
    /// Permission bits, including set-user-id, set-group-id and sticky (`0o7777` at most).
    pub mode: u32,
    /// The modified time.
    pub modified: SystemTime,
}

impl DirEntry {
    /// Whether this is a regular file.
    #[must_use]
    pub fn is_file(&self) -> bool {
        self.kind == FileKind::File
    }

    /// Whether this is a directory.
    #[must_use]
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }

    /// Whether this is a symbolic link.
    #[must_use]
    pub fn is_symlink(&self) -> bool {
        matches!(self.kind, FileKind::Symlink { .. })
    }

    /// The permissions as `ls -l` shows them, for example `drwxr-xr-x` or `-rwsr-x--T`.
    #[must_use]
    pub fn permissions(&self) -> String {
        let kind = match self.kind {
            FileKind::File => '-',
            FileKind::Dir => 'd',
            FileKind::Symlink { .. } => 'l',
            FileKind::Other => '?',
        };
        let mut out = String::with_capacity(10);
        out.push(kind);
        let m = self.mode;
        let special = [(0o4000, 's', 'S'), (0o2000, 's', 'S'), (0o1000, 't', 'T')];
        for (i, (bit, on, off)) in special.iter().enumerate() {
            let shift = 6 - 3 * i;
            let bits = (m >> shift) & 0o7;
            out.push(if bits & 4 != 0 { 'r' } else { '-' });
            out.push(if bits & 2 != 0 { 'w' } else { '-' });
            let x = bits & 1 != 0;
            out.push(match (m & bit != 0, x) {
                (true, true) => *on,
                (true, false) => *off,
                (false, true) => 'x',
                (false, false) => '-',
            });
        }
        out
    }
}

/// Parses the output of the `_e` function of the scripts: four NUL-terminated fields per entry
/// (name, raw mode in hex, size, mtime), an empty field, then one NUL-terminated target per
/// symlink. `dir` is joined with each name to make its path (`None`: the name is the path).
pub(crate) fn parse_records(output: &[u8], dir: Option<&str>) -> Result<Vec<DirEntry>, String> {
    // Every field ends with a NUL: drop the last one so no empty field follows it.
    let rest = output
        .strip_suffix(&[0])
        .ok_or("output does not end with a NUL")?;
    let mut fields = rest.split(|&b| b == 0);
    let mut next = |what: &str| -> Result<&[u8], String> {
        fields.next().ok_or_else(|| format!("missing {what}"))
    };
    let mut entries = Vec::new();
    loop {
        let name = next("name or end of entries")?;
        if name.is_empty() {
            break;
        }
        let mode_hex = text(next("mode")?)?;
        let size = text(next("size")?)?;
        let mtime = text(next("mtime")?)?;
        let raw =
            u32::from_str_radix(mode_hex, 16).map_err(|_| format!("bad mode `{mode_hex}`"))?;
        let size: u64 = size.parse().map_err(|_| format!("bad size `{size}`"))?;
        let mtime: i64 = mtime.parse().map_err(|_| format!("bad mtime `{mtime}`"))?;
        let modified = if mtime >= 0 {
            UNIX_EPOCH + Duration::from_secs(mtime.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_secs(mtime.unsigned_abs())
        };
        let kind = match raw & 0o170000 {
            0o100000 => FileKind::File,
            0o040000 => FileKind::Dir,
            0o120000 => FileKind::Symlink {
                target: String::new(),
            },
            _ => FileKind::Other,
        };
        let name = String::from_utf8_lossy(name).into_owned();
        let (name, path) = match dir {
            Some(dir) => (name.clone(), join(dir, &name)),
            None => (base_name(&name), name),
        };
        entries.push(DirEntry {
            name,
            path,
            kind,
            size,
            mode: raw & 0o7777,
            modified,
        });
    }
    for entry in &mut entries {
        if let FileKind::Symlink { target } = &mut entry.kind {
            *target = String::from_utf8_lossy(next("symlink target")?).into_owned();
        }
    }
    Ok(entries)
}

fn text(field: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(field).map_err(|_| "a numeric field is not ASCII".to_owned())
}

/// `dir` and `name` joined by one `/`.
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The last component of a path (`/` for the root; trailing slashes ignored).
pub(crate) fn base_name(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return if path.is_empty() {
            String::new()
        } else {
            "/".into()
        };
    }
    match trimmed.rfind('/') {
        Some(i) => trimmed[i + 1..].to_owned(),
        None => trimmed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_files_dirs_and_symlinks_with_odd_names() {
        let mut out = Vec::new();
        for (name, mode, size) in [
            (&b"a\nb c"[..], "81a4", "5"),
            (b"dir 'x'", "41ed", "4096"),
            (b"-link", "a1ff", "7"),
        ] {
            out.extend_from_slice(name);
            out.push(0);
            out.extend_from_slice(format!("{mode}\0{size}\0100\0").as_bytes());
        }
        out.extend_from_slice(b"\0tar get\n\0");
        let entries = parse_records(&out, Some("/tmp/x")).expect("parse");
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].name, "a\nb c");
        assert_eq!(entries[0].path, "/tmp/x/a\nb c");
        assert_eq!(entries[0].kind, FileKind::File);
        assert_eq!(entries[0].mode, 0o644);
        assert_eq!(entries[0].permissions(), "-rw-r--r--");
        assert_eq!(entries[1].kind, FileKind::Dir);
        assert_eq!(entries[1].permissions(), "drwxr-xr-x");
        assert_eq!(
            entries[2].kind,
            FileKind::Symlink {
                target: "tar get\n".into()
            }
        );
        assert_eq!(entries[2].modified, UNIX_EPOCH + Duration::from_secs(100));
    }

    #[test]
    fn empty_listing_and_truncated_output() {
        assert_eq!(parse_records(b"\0", Some(".")).expect("empty"), vec![]);
        assert!(parse_records(b"name\0", Some(".")).is_err());
        assert!(parse_records(b"", Some(".")).is_err());
        assert!(parse_records(b"l\0a1ff\x000\x000\0\0", Some(".")).is_err());
        assert!(parse_records(b"f\0zz\x000\x000\0\0", Some(".")).is_err());
    }

    #[test]
    fn special_permission_bits() {
        let entry = DirEntry {
            name: "x".into(),
            path: "x".into(),
            kind: FileKind::File,
            size: 0,
            mode: 0o4750 | 0o1000,
            modified: UNIX_EPOCH,
        };
        assert_eq!(entry.permissions(), "-rwsr-x--T");
    }

    #[test]
    fn names_of_paths() {
        assert_eq!(base_name("/a/b/"), "b");
        assert_eq!(base_name("/"), "/");
        assert_eq!(base_name("c"), "c");
        assert_eq!(join("/", "x"), "/x");
        assert_eq!(join("d", "x"), "d/x");
    }
}

//! What a snapshot holds: its [`SnapshotMetadata`] (committed last), its manifest (every
//! file, folder and link with mode, size and SHA-256), and the host-side check of an archive
//! against its manifest under the member rules of `docs/files.md`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::unpack::rules;

/// The format number written in metadata and manifests.
pub(crate) const FORMAT: u32 = 1;

/// Whether a snapshot holds everything or only changes since its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SnapshotKind {
    /// Every file of its paths.
    Full,
    /// What changed since its parent, and what was deleted.
    Incremental,
}

impl SnapshotKind {
    /// `full` or `incremental`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Full => "full",
            SnapshotKind::Incremental => "incremental",
        }
    }
}

/// The sandbox a snapshot came from, enough to make another like it
/// ([`Snapshots::wake`](crate::Snapshots::wake)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SandboxTemplateRecord {
    /// The image kind (`python`, `node`), when the sandbox was one this SDK made.
    pub image: Option<String>,
    /// `service` or `worker`.
    pub component_type: Option<String>,
    /// The sandbox's name.
    pub name: String,
    /// Its region, when known.
    pub region: Option<String>,
}

/// The record of one snapshot: `snapshots/<id>/metadata.json`, written after everything
/// else, so a snapshot is listed only once it is complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SnapshotMetadata {
    /// The format of this record (1).
    pub format: u32,
    /// The id (`snap-<12 hex>` unless chosen).
    pub id: String,
    /// Full or incremental.
    pub kind: SnapshotKind,
    /// The parent of an incremental snapshot.
    pub parent: Option<String>,
    /// The full snapshot at the root of its chain (itself when full).
    pub chain_root: String,
    /// How many parents it has (0 when full).
    pub chain_depth: u32,
    /// When it was made, in seconds since the Unix epoch.
    pub created_at: u64,
    /// The app id of the sandbox it was made from.
    pub sandbox_id: String,
    /// That sandbox's image, component type, name and region.
    pub template: SandboxTemplateRecord,
    /// The absolute folders it holds.
    pub paths: Vec<String>,
    /// The globs left out.
    pub excludes: Vec<String>,
    /// A free description.
    pub description: Option<String>,
    /// Free key-value tags (list filters on them).
    pub tags: BTreeMap<String, String>,
    /// Bytes of `archive.tar.gz`.
    pub archive_bytes: u64,
    /// SHA-256 of `archive.tar.gz` (hex).
    pub archive_sha256: String,
    /// SHA-256 of `manifest.json` (hex).
    pub manifest_sha256: String,
    /// Regular files in the state it restores.
    pub files: u64,
    /// Bytes of file content in the state it restores.
    pub content_bytes: u64,
    /// Files, folders and links stored in this snapshot's own archive.
    pub layer_entries: u64,
    /// Paths deleted since the parent.
    pub deleted: u64,
}

impl SnapshotMetadata {
    /// Whether every `key=value` of `tags` is among this snapshot's tags.
    #[must_use]
    pub fn has_tags(&self, tags: &BTreeMap<String, String>) -> bool {
        tags.iter().all(|(k, v)| self.tags.get(k) == Some(v))
    }
}

/// The kind of a manifest entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EntryKind {
    File,
    Dir,
    Symlink,
}

/// One path of the state a snapshot restores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The absolute path (any bytes but NUL).
    pub path: Vec<u8>,
    pub kind: EntryKind,
    /// Permission bits with setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    /// Bytes of a file (0 otherwise).
    pub size: u64,
    /// SHA-256 of a file (hex).
    pub sha256: Option<String>,
    /// A symlink's target.
    pub target: Option<Vec<u8>>,
    /// Whether this snapshot's archive holds it (else an ancestor's does).
    pub layer: bool,
}

impl Entry {
    /// Whether `other` describes the same content (kind, mode, bytes, target).
    pub fn same_as(&self, other: &Entry) -> bool {
        self.kind == other.kind
            && self.mode == other.mode
            && self.size == other.size
            && self.sha256 == other.sha256
            && self.target == other.target
    }
}

/// `snapshots/<id>/manifest.json`: the whole state after this snapshot, and what restoring
/// it removes before extracting its archive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub entries: Vec<Entry>,
    /// Paths removed before the archive is extracted: those deleted since the parent, and
    /// those whose kind changed or that are symlinks written again.
    pub remove: Vec<Vec<u8>>,
    /// How many of `remove` were deleted (the rest are written again).
    pub deleted: u64,
}

#[derive(Serialize, Deserialize)]
struct WireManifest {
    format: u32,
    entries: Vec<WireEntry>,
    #[serde(default)]
    remove: Vec<WirePath>,
    #[serde(default)]
    deleted: u64,
}

/// A path as JSON: a string when it is UTF-8, else base64 of its bytes.
#[derive(Serialize, Deserialize)]
struct WirePath {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    path_b64: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct WireEntry {
    #[serde(flatten)]
    path: WirePath,
    kind: EntryKind,
    mode: u32,
    #[serde(default)]
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    target: Option<WirePath>,
    layer: bool,
}

fn to_wire(bytes: &[u8]) -> WirePath {
    match std::str::from_utf8(bytes) {
        Ok(text) => WirePath {
            path: Some(text.to_owned()),
            path_b64: None,
        },
        Err(_) => WirePath {
            path: None,
            path_b64: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
        },
    }
}

fn from_wire(wire: WirePath) -> Option<Vec<u8>> {
    match (wire.path, wire.path_b64) {
        (Some(text), None) => Some(text.into_bytes()),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD.decode(b64).ok(),
        _ => None,
    }
}

impl Manifest {
    pub fn to_json(&self) -> Vec<u8> {
        let wire = WireManifest {
            format: FORMAT,
            entries: self
                .entries
                .iter()
                .map(|e| WireEntry {
                    path: to_wire(&e.path),
                    kind: e.kind,
                    mode: e.mode,
                    size: e.size,
                    sha256: e.sha256.clone(),
                    target: e.target.as_deref().map(to_wire),
                    layer: e.layer,
                })
                .collect(),
            remove: self.remove.iter().map(|p| to_wire(p)).collect(),
            deleted: self.deleted,
        };
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    pub fn from_json(id: &str, data: &[u8]) -> Result<Manifest> {
        let bad = |reason: String| Error::SnapshotIntegrity {
            id: id.to_owned(),
            member: None,
            reason,
        };
        let wire: WireManifest = serde_json::from_slice(data)
            .map_err(|e| bad(format!("its manifest is not valid: {e}")))?;
        let mut entries = Vec::with_capacity(wire.entries.len());
        for e in wire.entries {
            let path =
                from_wire(e.path).ok_or_else(|| bad("a manifest path is unreadable".into()))?;
            let target = match e.target {
                Some(t) => Some(
                    from_wire(t)
                        .ok_or_else(|| bad("a manifest link target is unreadable".into()))?,
                ),
                None => None,
            };
            entries.push(Entry {
                path,
                kind: e.kind,
                mode: e.mode,
                size: e.size,
                sha256: e.sha256,
                target,
                layer: e.layer,
            });
        }
        let remove = wire
            .remove
            .into_iter()
            .map(from_wire)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("a removed path is unreadable".into()))?;
        Ok(Manifest {
            entries,
            remove,
            deleted: wire.deleted,
        })
    }

    /// Checks the shape of the state: every path inside one of `roots`, every parent
    /// folder (below a root) a folder of the manifest, never a symlink, so extracting never
    /// writes through a link.
    pub fn check_shape(&self, id: &str, roots: &[String]) -> Result<()> {
        let dirs: HashSet<&[u8]> = self
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::Dir)
            .map(|e| e.path.as_slice())
            .collect();
        for entry in &self.entries {
            let refuse = |reason: &str| Error::SnapshotIntegrity {
                id: id.to_owned(),
                member: Some(rules::shown(&entry.path)),
                reason: reason.to_owned(),
            };
            let Some(rel) = entry.path.strip_prefix(b"/") else {
                return Err(refuse("is not an absolute path"));
            };
            let parts = rules::components(rel).map_err(refuse)?;
            if parts.iter().map(|p| p.len() + 1).sum::<usize>() != entry.path.len() {
                return Err(refuse("is not a normalized path"));
            }
            let root = roots.iter().find(|r| {
                entry.path == r.as_bytes()
                    || (entry.path.starts_with(r.as_bytes())
                        && entry.path.get(r.len()) == Some(&b'/'))
            });
            let Some(root) = root else {
                return Err(refuse("is outside the snapshot's paths"));
            };
            if entry.path.len() > root.len() {
                let parent =
                    &entry.path[..entry.path.iter().rposition(|&b| b == b'/').unwrap_or(0)];
                if !dirs.contains(parent) {
                    return Err(refuse(
                        "has a parent that is not a folder of the snapshot (a symlink or missing)",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Counts and hashes what is read through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// What checking an archive found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checked {
    pub archive_sha256: String,
    pub archive_bytes: u64,
}

/// Reads a snapshot archive (gzip tar) and checks it against the entries of the manifest
/// that this layer holds: every member named by the manifest once, of the same kind, mode,
/// size, SHA-256 and link target, its name inside the rules (no absolute path, no `..`, no
/// NUL); no hard link, device or FIFO; nothing the manifest does not list; nothing missing.
pub(crate) fn check_archive(id: &str, reader: impl Read, manifest: &Manifest) -> Result<Checked> {
    let layer: HashMap<&[u8], &Entry> = manifest
        .entries
        .iter()
        .filter(|e| e.layer)
        .map(|e| (e.path.as_slice(), e))
        .collect();
    let mut seen: HashSet<Vec<u8>> = HashSet::with_capacity(layer.len());
    let hashing = Hashing {
        inner: reader,
        hash: Sha256::new(),
        bytes: 0,
    };
    let refuse = |member: Option<&[u8]>, reason: String| Error::SnapshotIntegrity {
        id: id.to_owned(),
        member: member.map(rules::shown),
        reason,
    };
    let io = |e: std::io::Error| refuse(None, format!("its archive cannot be read: {e}"));
    let buffered = BufReader::with_capacity(256 * 1024, hashing);
    let mut decoder = flate2::bufread::GzDecoder::new(buffered);
    {
        let mut archive = tar::Archive::new(&mut decoder);
        for entry in archive.entries().map_err(io)? {
            let mut entry = entry.map_err(io)?;
            let raw = entry.path_bytes().into_owned();
            let parts = rules::components(&raw).map_err(|r| refuse(Some(&raw), r.to_owned()))?;
            let mut path = Vec::with_capacity(raw.len() + 1);
            for part in &parts {
                path.push(b'/');
                path.extend_from_slice(part);
            }
            let Some(expected) = layer.get(path.as_slice()) else {
                return Err(refuse(Some(&path), "is not in the manifest".into()));
            };
            if !seen.insert(path.clone()) {
                return Err(refuse(Some(&path), "appears twice in the archive".into()));
            }
            let header = entry.header();
            let mode = header.mode().map_err(io)? & 0o7777;
            if mode != expected.mode {
                return Err(refuse(
                    Some(&path),
                    format!("has mode {mode:o}, the manifest says {:o}", expected.mode),
                ));
            }
            let kind = header.entry_type();
            match expected.kind {
                EntryKind::Dir if kind.is_dir() => {}
                EntryKind::Symlink if kind.is_symlink() => {
                    let target = entry.link_name_bytes().map(|t| t.into_owned());
                    if target.as_deref() != expected.target.as_deref() {
                        return Err(refuse(
                            Some(&path),
                            "links somewhere else than the manifest says".into(),
                        ));
                    }
                }
                EntryKind::File if kind.is_file() => {
                    let mut hash = Sha256::new();
                    let mut size = 0u64;
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = entry.read(&mut buf).map_err(io)?;
                        if n == 0 {
                            break;
                        }
                        hash.update(&buf[..n]);
                        size += n as u64;
                    }
                    if size != expected.size {
                        return Err(refuse(
                            Some(&path),
                            format!("has {size} bytes, the manifest says {}", expected.size),
                        ));
                    }
                    let got = hex(&hash.finalize());
                    if Some(&got) != expected.sha256.as_ref() {
                        return Err(refuse(
                            Some(&path),
                            "has content whose SHA-256 differs from the manifest's".into(),
                        ));
                    }
                }
                _ => {
                    return Err(refuse(
                        Some(&path),
                        format!(
                            "is a {kind:?} member where the manifest has a {:?}",
                            expected.kind
                        ),
                    ));
                }
            }
        }
    }
    std::io::copy(&mut decoder, &mut std::io::sink()).map_err(io)?;
    let mut buffered = decoder.into_inner();
    loop {
        let n = {
            let data = buffered.fill_buf().map_err(io)?;
            data.len()
        };
        if n == 0 {
            break;
        }
        buffered.consume(n);
    }
    if let Some(missing) = layer.keys().find(|p| !seen.contains(**p)) {
        return Err(refuse(
            Some(missing),
            "is in the manifest but not in the archive".into(),
        ));
    }
    let hashing = buffered.into_inner();
    Ok(Checked {
        archive_sha256: hex(&hashing.hash.finalize()),
        archive_bytes: hashing.bytes,
    })
}

/// Lower-case hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// SHA-256 of bytes (hex).
pub(crate) fn sha256(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, data: &[u8], layer: bool) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind: EntryKind::File,
            mode: 0o644,
            size: data.len() as u64,
            sha256: Some(sha256(data)),
            target: None,
            layer,
        }
    }

    fn dir(path: &str) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind: EntryKind::Dir,
            mode: 0o755,
            size: 0,
            sha256: None,
            target: None,
            layer: true,
        }
    }

    fn archive(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        builder
            .append_data(&mut header, "app/", std::io::empty())
            .expect("dir");
        for (name, data) in members {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o644);
            header.set_size(data.len() as u64);
            builder.append_data(&mut header, name, *data).expect("file");
        }
        builder.into_inner().expect("tar").finish().expect("gz")
    }

    #[test]
    fn a_matching_archive_passes_and_is_hashed() {
        let bytes = archive(&[("app/a", b"hello")]);
        let manifest = Manifest {
            entries: vec![dir("/app"), file("/app/a", b"hello", true)],
            ..Manifest::default()
        };
        let checked = check_archive("s", &bytes[..], &manifest).expect("passes");
        assert_eq!(checked.archive_bytes, bytes.len() as u64);
        assert_eq!(checked.archive_sha256, sha256(&bytes));
        manifest.check_shape("s", &["/app".into()]).expect("shape");
    }

    #[test]
    fn changed_extra_and_missing_members_are_refused() {
        let bytes = archive(&[("app/a", b"hellO")]);
        let manifest = Manifest {
            entries: vec![dir("/app"), file("/app/a", b"hello", true)],
            ..Manifest::default()
        };
        let err = check_archive("s", &bytes[..], &manifest).expect_err("changed");
        assert!(err.to_string().contains("SHA-256"), "{err}");
        let bytes = archive(&[("app/a", b"hello"), ("app/b", b"x")]);
        let err = check_archive("s", &bytes[..], &manifest).expect_err("extra");
        assert!(err.to_string().contains("not in the manifest"), "{err}");
        let manifest = Manifest {
            entries: vec![
                dir("/app"),
                file("/app/a", b"hello", true),
                file("/app/c", b"", true),
            ],
            ..Manifest::default()
        };
        let bytes = archive(&[("app/a", b"hello")]);
        let err = check_archive("s", &bytes[..], &manifest).expect_err("missing");
        assert!(err.to_string().contains("not in the archive"), "{err}");
    }

    fn raw_archive(name: &[u8], kind: tar::EntryType, link: Option<&[u8]>) -> Vec<u8> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_size(0);
        let field = &mut header.as_old_mut().name;
        field[..name.len()].copy_from_slice(name);
        if let Some(link) = link {
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        }
        header.set_cksum();
        let mut tar = header.as_bytes().to_vec();
        tar.extend_from_slice(&[0u8; 1024]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).expect("gz");
        gz.finish().expect("gz")
    }

    #[test]
    fn members_that_break_the_rules_are_refused() {
        let manifest = Manifest {
            entries: vec![dir("/app"), file("/app/a", b"", true)],
            ..Manifest::default()
        };
        for (name, kind, link, rule) in [
            (
                &b"app/../etc/passwd"[..],
                tar::EntryType::Regular,
                None,
                "`..`",
            ),
            (b"/etc/passwd", tar::EntryType::Regular, None, "absolute"),
            (
                b"app/a",
                tar::EntryType::Link,
                Some(&b"/etc/shadow"[..]),
                "member where",
            ),
            (b"app/a", tar::EntryType::Fifo, None, "member where"),
        ] {
            let bytes = raw_archive(name, kind, link);
            let err = check_archive("s", &bytes[..], &manifest).expect_err("refused");
            assert!(
                matches!(err, Error::SnapshotIntegrity { .. }) && err.to_string().contains(rule),
                "{name:?}: {err}"
            );
        }
    }

    #[test]
    fn shapes_that_write_through_links_or_outside_are_refused() {
        let mut link = dir("/app/l");
        link.kind = EntryKind::Symlink;
        link.target = Some(b"/etc".to_vec());
        let manifest = Manifest {
            entries: vec![dir("/app"), link, file("/app/l/passwd", b"x", true)],
            ..Manifest::default()
        };
        let err = manifest
            .check_shape("s", &["/app".into()])
            .expect_err("through link");
        assert!(err.to_string().contains("parent"), "{err}");
        let manifest = Manifest {
            entries: vec![dir("/app"), file("/etc/x", b"x", true)],
            ..Manifest::default()
        };
        assert!(manifest.check_shape("s", &["/app".into()]).is_err());
    }

    #[test]
    fn manifests_round_trip_with_non_utf8_names() {
        let mut odd = file("/app/x", b"1", true);
        odd.path = b"/app/\xff\n name".to_vec();
        let manifest = Manifest {
            entries: vec![dir("/app"), odd],
            remove: vec![b"/app/gone\xfe".to_vec()],
            deleted: 1,
        };
        let back = Manifest::from_json("s", &manifest.to_json()).expect("parse");
        assert_eq!(back, manifest);
    }
}

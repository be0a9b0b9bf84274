//! The member checker and the extraction on crafted tar bytes: what an honest `tar -c` never
//! writes, and a hostile sandbox can.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use tar::EntryType;

use super::place::{ExistingDir, Staging, check};
use super::*;

type Stream = sandbox_testkit::CraftedTar;

const LIMITS: Limits = Limits {
    max_bytes: 1 << 20,
    max_members: 100,
    keep_write: false,
};

/// Extracts `bytes` into a fresh folder `out` inside a temp folder.
fn extract(bytes: &[u8], limits: &Limits) -> (tempfile::TempDir, Result<Unpacked, UnpackError>) {
    let dir = tempfile::tempdir().expect("temp");
    let root = dir.path().join("out");
    std::fs::create_dir(&root).expect("root");
    let fd = tree::open_root(&root).expect("open");
    let result = unpack(bytes, &fd, limits);
    (dir, result)
}

fn refusal(result: Result<Unpacked, UnpackError>) -> (Option<String>, String) {
    match result {
        Err(UnpackError::Refused { member, rule }) => (member, rule),
        Err(UnpackError::Io { member, source }) => panic!("io error on {member}: {source}"),
        Ok(done) => panic!("accepted: {done:?}"),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("meta")
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn an_honest_tree_arrives_with_safe_modes() {
    let bytes = Stream::new()
        .dir("./", 0o755)
        .dir("./bin/", 0o2775)
        .file("./bin/sh", 0o4755, b"#!/bin/sh\n")
        .file("./shared", 0o666, b"everyone")
        .file("./sticky", 0o1777, b"")
        .symlink("./bin/up", "../shared")
        .symlink("./dot", ".")
        .symlink("./abs", "/etc")
        .symlink("./climb", "../../etc")
        .hard_link("./again", "./shared")
        .member(b"./fifo", EntryType::Fifo, 0o644, b"", b"")
        .member(b"./tty", EntryType::Char, 0o666, b"", b"")
        .dir("./locked/", 0o500)
        .file("./implicit/deep/file", 0o600, b"deep")
        .end();
    let (dir, result) = extract(&bytes, &LIMITS);
    let done = result.expect("honest tree");
    let out = dir.path().join("out");
    assert_eq!(mode(&out.join("bin/sh")), 0o755, "setuid cleared");
    assert_eq!(
        mode(&out.join("bin")),
        0o755,
        "setgid and group write cleared"
    );
    assert_eq!(mode(&out.join("shared")), 0o644, "other write cleared");
    assert_eq!(mode(&out.join("sticky")), 0o755);
    assert_eq!(
        mode(&out.join("locked")),
        0o500,
        "folder modes applied at the end"
    );
    assert_eq!(mode(&out.join("implicit")), 0o755);
    assert_eq!(
        std::fs::read(out.join("implicit/deep/file")).expect("deep"),
        b"deep"
    );
    assert_eq!(
        std::fs::read_link(out.join("bin/up")).expect("link"),
        Path::new("../shared")
    );
    assert_eq!(
        std::fs::read(out.join("bin/up")).expect("through link"),
        b"everyone"
    );
    assert_eq!(
        std::fs::metadata(out.join("again"))
            .expect("hard link")
            .ino(),
        std::fs::metadata(out.join("shared")).expect("file").ino()
    );
    for gone in ["abs", "climb", "fifo", "tty"] {
        assert!(
            std::fs::symlink_metadata(out.join(gone)).is_err(),
            "{gone} left out"
        );
    }
    let left_out: Vec<&str> = done.left_out.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(left_out, ["./abs", "./climb", "./fifo", "./tty"]);
    assert_eq!(
        std::fs::metadata(out.join("shared")).expect("meta").mtime(),
        Stream::MTIME as i64,
        "modified time kept"
    );
    let me = rustix::process::geteuid().as_raw();
    assert_eq!(
        std::fs::metadata(out.join("bin/sh")).expect("meta").uid(),
        me
    );
    assert_eq!(done.bytes, 10 + 8 + 4);
}

#[test]
fn shared_write_bits_are_kept_when_asked() {
    let bytes = Stream::new().file("f", 0o4666, b"x").end();
    let limits = Limits {
        keep_write: true,
        ..LIMITS
    };
    let (dir, result) = extract(&bytes, &limits);
    result.expect("extract");
    assert_eq!(mode(&dir.path().join("out/f")), 0o666);
}

#[test]
fn a_member_beneath_a_planted_symlink_is_refused_and_nothing_is_written_outside() {
    let host = tempfile::tempdir().expect("host dir");
    let target = host.path().to_str().expect("utf-8").to_owned();
    let bytes = Stream::new()
        .symlink("esc", &target)
        .file("esc/file", 0o644, b"pwned")
        .end();
    let (_dir, result) = extract(&bytes, &LIMITS);
    let (member, rule) = refusal(result);
    assert_eq!(member.as_deref(), Some("esc/file"));
    assert!(rule.contains("lies beneath `esc`"), "{rule}");
    assert_eq!(std::fs::read_dir(host.path()).expect("list").count(), 0);

    // A link that stays inside may be kept, but nothing goes beneath it either.
    let bytes = Stream::new()
        .dir("sub", 0o755)
        .symlink("in", "sub")
        .file("in/file", 0o644, b"x")
        .end();
    let (_dir, result) = extract(&bytes, &LIMITS);
    let (_, rule) = refusal(result);
    assert!(rule.contains("beneath the symlink `in`"), "{rule}");
}

#[test]
fn paths_that_leave_the_tree_are_refused() {
    for (name, rule) in [
        (&b"/etc/cron.d/x"[..], "has an absolute path"),
        (b"../x", "has a `..` component"),
        (b"a/../../x", "has a `..` component"),
    ] {
        let bytes = Stream::new()
            .member(name, EntryType::Regular, 0o644, b"x", b"")
            .end();
        let (dir, result) = extract(&bytes, &LIMITS);
        let (member, got) = refusal(result);
        assert_eq!(member.as_deref().map(str::as_bytes), Some(name));
        assert_eq!(got, rule);
        assert!(!dir.path().join("x").exists());
    }
}

#[test]
fn hard_links_must_name_a_file_of_the_stream() {
    for (target, rule) in [
        ("/etc/passwd", "target has an absolute path"),
        ("../x", "target has a `..` component"),
        ("missing", "not a file extracted earlier"),
        ("dir", "not a file extracted earlier"),
    ] {
        let bytes = Stream::new()
            .dir("dir", 0o755)
            .hard_link("link", target)
            .end();
        let (_dir, result) = extract(&bytes, &LIMITS);
        let (member, got) = refusal(result);
        assert_eq!(member.as_deref(), Some("link"));
        assert!(got.contains(rule), "{target}: {got}");
    }
}

#[test]
fn limits_stop_the_stream() {
    let bytes = Stream::new()
        .file("a", 0o644, &[1; 600])
        .file("b", 0o644, &[2; 600])
        .end();
    let small = Limits {
        max_bytes: 1000,
        ..LIMITS
    };
    let (_dir, result) = extract(&bytes, &small);
    let (member, rule) = refusal(result);
    assert_eq!(member.as_deref(), Some("b"));
    assert!(rule.contains("limit of 1000 bytes"), "{rule}");

    let few = Limits {
        max_members: 1,
        ..LIMITS
    };
    let (_dir, result) = extract(&bytes, &few);
    let (member, rule) = refusal(result);
    assert_eq!(member.as_deref(), Some("b"));
    assert!(rule.contains("limit of 1 members"), "{rule}");
}

#[test]
fn a_stream_cut_short_is_refused() {
    let whole = Stream::new()
        .file("a", 0o644, &[7; 2000])
        .file("b", 0o644, b"b")
        .end();
    // Inside a member's data, at a member boundary, and after one of the two zero blocks.
    for cut in [1000, 512 + 2048, whole.len() - 512] {
        let (_dir, result) = extract(&whole[..cut], &LIMITS);
        let (_, rule) = refusal(result);
        assert!(rule.contains("cut short"), "cut at {cut}: {rule}");
    }
    let mut corrupt = whole.clone();
    corrupt[10] ^= 1;
    let (_dir, result) = extract(&corrupt, &LIMITS);
    let (_, rule) = refusal(result);
    assert!(rule.contains("checksum"), "{rule}");
    let (_dir, result) = extract(&whole, &LIMITS);
    result.expect("the whole stream");
}

#[test]
fn a_folder_is_never_replaced_by_a_file() {
    let bytes = Stream::new().dir("d", 0o755).file("d", 0o644, b"x").end();
    let (_dir, result) = extract(&bytes, &LIMITS);
    let (member, rule) = refusal(result);
    assert_eq!(member.as_deref(), Some("d"));
    assert!(rule.contains("replace a folder"), "{rule}");
    // A later file of the same name replaces the earlier one, as with tar -x.
    let bytes = Stream::new()
        .file("f", 0o644, b"old")
        .file("f", 0o644, b"new")
        .end();
    let (dir, result) = extract(&bytes, &LIMITS);
    result.expect("duplicate file");
    assert_eq!(std::fs::read(dir.path().join("out/f")).expect("f"), b"new");
}

#[test]
fn control_characters_in_names_are_escaped_in_errors() {
    let bytes = Stream::new()
        .member(b"/\x1b[2Jx", EntryType::Regular, 0o644, b"", b"")
        .end();
    let (_dir, result) = extract(&bytes, &LIMITS);
    let (member, _) = refusal(result);
    assert_eq!(member.as_deref(), Some("/\\u{1b}[2Jx"));
}

fn staged(local: &Path, bytes: &[u8], existing: ExistingDir) -> crate::Result<()> {
    check(local, existing)?;
    let staging = Staging::beside(local)?;
    unpack(bytes, staging.fd(), &LIMITS).expect("extract");
    staging.place(local, existing)
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn placing_refuses_merges_and_replaces() {
    let parent = tempfile::tempdir().expect("temp");
    let local = parent.path().join("copy");
    let first = Stream::new()
        .dir("./", 0o755)
        .file("./a", 0o644, b"a1")
        .dir("./d", 0o755)
        .file("./d/x", 0o644, b"x1")
        .end();
    staged(&local, &first, ExistingDir::Refuse).expect("fresh");
    assert_eq!(names(parent.path()), ["copy"], "no temporary folder left");

    let second = Stream::new()
        .dir("./", 0o755)
        .file("./a", 0o644, b"a2")
        .file("./d/y", 0o644, b"y2")
        .end();
    let err = staged(&local, &second, ExistingDir::Refuse).expect_err("occupied");
    assert!(matches!(err, crate::Error::LocalExists { .. }), "{err}");

    staged(&local, &second, ExistingDir::Merge).expect("merge");
    assert_eq!(names(&local), ["a", "d"]);
    assert_eq!(names(&local.join("d")), ["x", "y"]);
    assert_eq!(std::fs::read(local.join("a")).expect("a"), b"a2");
    assert_eq!(names(parent.path()), ["copy"]);

    staged(&local, &second, ExistingDir::Replace).expect("replace");
    assert_eq!(names(&local.join("d")), ["y"]);
    assert_eq!(names(parent.path()), ["copy"]);
}

#[test]
fn a_merge_never_writes_through_a_local_symlink() {
    let parent = tempfile::tempdir().expect("temp");
    let host = tempfile::tempdir().expect("host dir");
    let local = parent.path().join("copy");
    std::fs::create_dir(&local).expect("local");
    std::fs::write(local.join("keep"), b"mine").expect("keep");
    std::os::unix::fs::symlink(host.path(), local.join("esc")).expect("planted link");
    let bytes = Stream::new()
        .file("./new", 0o644, b"n")
        .file("./esc/file", 0o644, b"pwned")
        .end();
    let err = staged(&local, &bytes, ExistingDir::Merge).expect_err("conflict");
    assert!(
        matches!(err, crate::Error::LocalConflict { ref path, .. } if path.ends_with("esc")),
        "{err}"
    );
    assert_eq!(names(&local), ["esc", "keep"], "nothing moved");
    assert_eq!(std::fs::read_dir(host.path()).expect("list").count(), 0);
    assert_eq!(names(parent.path()), ["copy"]);

    // The local folder itself being a symlink is refused as well.
    let link = parent.path().join("link");
    std::os::unix::fs::symlink(host.path(), &link).expect("link");
    let err = check(&link, ExistingDir::Merge).expect_err("symlink");
    assert!(matches!(err, crate::Error::LocalConflict { .. }), "{err}");
}

//! A sandbox that attacks the host through folder transfers. Its `tar` is replaced (it is
//! first on the sandbox's `PATH`), so the stream a download receives is whatever the sandbox
//! wants; every attack must end in a clear error or a harmless result, with the host as it was.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use sandbox_fs::{DirOptions, Error, ExistingDir, FileKind, FileSystem, SandboxFsExt};
use sandbox_testkit::CraftedTar;
use tar::EntryType;

use crate::common::{Via, sandbox_with_env};

/// Stands in for tar: `tar -c -f ARCHIVE ...` copies the prepared stream when there is one.
const FAKE_TAR: &str = r#"#!/bin/sh
if [ "$1" = -c ] && [ -f /home/sandbox/evil.tar ]; then
  cat /home/sandbox/evil.tar > "$3"
  exit 0
fi
exec /usr/bin/tar "$@"
"#;

/// Everything below `dir`, as sorted relative paths.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("list") {
            let path = entry.expect("entry").path();
            out.push(
                path.strip_prefix(base)
                    .expect("below")
                    .display()
                    .to_string(),
            );
            if path.is_dir() && !path.is_symlink() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Sends `stream` as the sandbox's archive of any folder and downloads `proj` into
/// `local`; returns the download's error.
async fn refused(fs: &FileSystem, stream: Vec<u8>, local: &Path, options: &DirOptions) -> Error {
    fs.write("/home/sandbox/evil.tar", stream)
        .await
        .expect("stage the stream");
    let result = fs.download_dir("proj", local, options).await;
    fs.rm("/home/sandbox/evil.tar", sandbox_fs::RmOptions::new())
        .await
        .expect("unstage");
    result.expect_err("the stream must be refused")
}

fn assert_refused(err: &Error, member: Option<&str>, rule: &str) {
    match err {
        Error::ArchiveRefused {
            path,
            member: got,
            rule: why,
        } => {
            assert_eq!(path, "proj");
            assert_eq!(got.as_deref(), member, "{err}");
            assert!(why.contains(rule), "{err}");
        }
        other => panic!("expected a refused archive, got {other:?}"),
    }
}

async fn attacks(via: Via) {
    let Some(target) = sandbox_with_env(
        via,
        &[(
            "PATH",
            "/home/sandbox/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )],
    )
    .await
    else {
        return;
    };
    let fs = target.sandbox.fs().without_object_store();
    let host = tempfile::tempdir().expect("host folder");
    let host_dir = host.path().join("victim");
    std::fs::create_dir(&host_dir).expect("victim");
    std::fs::write(host_dir.join("keep"), b"host data").expect("victim file");
    let parent = tempfile::tempdir().expect("download parent");
    let local = parent.path().join("copy");

    // A setuid program made in the sandbox, and a link to a host folder, through the real tar.
    let out = fs
        .sandbox()
        .exec_with(sandbox_core::ExecRequest::argv([
            "sh",
            "-c",
            "mkdir -p proj && cp /bin/sh proj/s && chmod 4755 proj/s && ln -s \"$1\" proj/esc && ln -s s proj/inside",
            "sh",
            host_dir.to_str().expect("utf-8"),
        ]))
        .await
        .expect("prepare");
    assert!(out.success(), "{}", out.stderr_text());
    fs.download_dir("proj", &local, &DirOptions::new())
        .await
        .expect("honest download");
    let mode = std::fs::metadata(local.join("s"))
        .expect("s")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755, "no setuid bit on the host");
    assert!(
        std::fs::symlink_metadata(local.join("esc")).is_err(),
        "the link out of the folder is dropped"
    );
    assert_eq!(
        std::fs::read_link(local.join("inside")).expect("inside link"),
        Path::new("s")
    );

    // Install the stand-in tar; from here on the sandbox writes the stream.
    fs.write("/home/sandbox/bin/tar", FAKE_TAR)
        .await
        .expect("fake tar");
    fs.chmod("/home/sandbox/bin/tar", "755")
        .await
        .expect("chmod");
    let before = listing(parent.path());
    let victim = listing(&host_dir);
    let fresh = parent.path().join("fresh");
    let host_path = host_dir.to_str().expect("utf-8");

    // A member beneath a planted symlink, in one stream.
    let stream = CraftedTar::new()
        .member(b"esc", EntryType::Symlink, 0o777, b"", host_path.as_bytes())
        .file("esc/file", 0o644, b"pwned")
        .end();
    let err = refused(&fs, stream, &fresh, &DirOptions::new()).await;
    assert_refused(&err, Some("esc/file"), "lies beneath `esc`");

    // The second-download exploit: a symlink already in the local folder, and a stream that
    // writes beneath it. A merge refuses before anything moves.
    symlink(&host_dir, local.join("esc")).expect("planted link");
    let stream = CraftedTar::new().file("./esc/file", 0o644, b"pwned").end();
    let merge = DirOptions::new().existing(ExistingDir::Merge);
    let err = refused(&fs, stream.clone(), &local, &merge).await;
    assert!(
        matches!(err, Error::LocalConflict { ref path, .. } if path.ends_with("esc")),
        "{err}"
    );
    let err = refused(&fs, stream, &local, &DirOptions::new()).await;
    assert!(matches!(err, Error::LocalExists { .. }), "{err}");
    std::fs::remove_file(local.join("esc")).expect("unplant");
    let before_local = listing(&local);

    for (stream, member, rule) in [
        (
            CraftedTar::new()
                .file("/etc/cron.d/evil", 0o644, b"x")
                .end(),
            Some("/etc/cron.d/evil"),
            "absolute path",
        ),
        (
            CraftedTar::new().file("../../evil", 0o644, b"x").end(),
            Some("../../evil"),
            "`..` component",
        ),
        (
            CraftedTar::new()
                .member(b"pw", EntryType::Link, 0o644, b"", b"/etc/passwd")
                .end(),
            Some("pw"),
            "absolute path",
        ),
    ] {
        let err = refused(&fs, stream, &fresh, &DirOptions::new()).await;
        assert_refused(&err, member, rule);
    }

    // Limits: bytes and members.
    let stream = CraftedTar::new().file("big", 0o644, &[7; 5000]).end();
    let err = refused(&fs, stream, &fresh, &DirOptions::new().max_bytes(1000)).await;
    assert_refused(&err, Some("big"), "limit of 1000 bytes");
    let stream = CraftedTar::new()
        .file("a", 0o644, b"a")
        .file("b", 0o644, b"b")
        .file("c", 0o644, b"c")
        .end();
    let err = refused(
        &fs,
        stream.clone(),
        &fresh,
        &DirOptions::new().max_members(2),
    )
    .await;
    assert_refused(&err, Some("c"), "limit of 2 members");

    // A stream cut in the middle of a member, and one cut at a member boundary.
    let long = CraftedTar::new()
        .file("a", 0o644, &[1; 2000])
        .file("b", 0o644, b"b")
        .end();
    let err = refused(&fs, long[..1000].to_vec(), &fresh, &DirOptions::new()).await;
    assert_refused(&err, Some("a"), "cut short");
    let err = refused(&fs, long[..512 + 2048].to_vec(), &fresh, &DirOptions::new()).await;
    assert_refused(&err, None, "cut short");

    // Nothing of any of that reached the host.
    assert_eq!(
        listing(parent.path()),
        before,
        "no partial tree, no temporary folder"
    );
    assert_eq!(
        listing(&local),
        before_local,
        "the earlier download is untouched"
    );
    assert_eq!(listing(&host_dir), victim, "the host folder is untouched");
    assert_eq!(
        std::fs::read(host_dir.join("keep")).expect("keep"),
        b"host data"
    );

    // A device node and a FIFO are skipped; the rest arrives.
    let stream = CraftedTar::new()
        .member(b"tty", EntryType::Char, 0o666, b"", b"")
        .member(b"pipe", EntryType::Fifo, 0o644, b"", b"")
        .file("data", 0o644, b"fine")
        .end();
    fs.write("/home/sandbox/evil.tar", stream)
        .await
        .expect("stage");
    fs.download_dir("proj", &fresh, &DirOptions::new())
        .await
        .expect("nodes are skipped");
    assert_eq!(listing(&fresh), ["data"]);
}

/// Uploads never read through a symlink out of the folder unless asked.
async fn upload_keeps_links_as_links(via: Via) {
    let Some(target) = sandbox_with_env(via, &[]).await else {
        return;
    };
    let fs = target.sandbox.fs().without_object_store();
    let host = tempfile::tempdir().expect("host");
    let outside = host.path().join("outside");
    std::fs::create_dir(&outside).expect("outside");
    let secret = outside.join("secret");
    std::fs::write(&secret, b"host secret").expect("secret");
    let local = host.path().join("proj");
    std::fs::create_dir(&local).expect("proj");
    std::fs::write(local.join("own"), b"mine").expect("own");
    symlink(&secret, local.join("out")).expect("link out");
    symlink(&outside, local.join("up")).expect("dir link out");

    fs.upload_dir(&local, "proj", &DirOptions::new())
        .await
        .expect("upload");
    assert_eq!(
        fs.stat("proj/out").await.expect("stat").kind,
        FileKind::Symlink {
            target: secret.display().to_string()
        }
    );
    assert!(!fs.exists("proj/up/secret").await.expect("exists"));
    assert_eq!(fs.read("proj/own").await.expect("own"), b"mine");

    fs.upload_dir(&local, "followed", &DirOptions::new().follow_symlinks(true))
        .await
        .expect("upload following links");
    assert_eq!(
        fs.read("followed/out").await.expect("followed"),
        b"host secret"
    );
    assert_eq!(
        fs.read("followed/up/secret")
            .await
            .expect("followed folder"),
        b"host secret"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_streams_local() {
    attacks(Via::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_streams_through_doctl_standin() {
    attacks(Via::Doctl).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_streams_through_api() {
    attacks(Via::Api).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_keep_links_local() {
    upload_keeps_links_as_links(Via::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_keep_links_through_doctl_standin() {
    upload_keeps_links_as_links(Via::Doctl).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_keep_links_through_api() {
    upload_keeps_links_as_links(Via::Api).await;
}

//! File operations, end to end, on each way of reaching a sandbox.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use sandbox_fs::{Error, FileKind, FileSystem, RmOptions, SandboxFsExt, TransferOptions};

use crate::common::{Via, bytes};
use crate::target;

/// Names a shell would split, expand or read as options.
const ODD_NAMES: &[&str] = &[
    "with space.txt",
    "it's \"quoted\".txt",
    "new\nline.txt",
    "-leading-dash",
    "--",
    "$(touch pwned)`id`;*",
    "ünïcødé ✓.txt",
    "tab\tand\\backslash",
];

async fn files(fs: &FileSystem) {
    // Every byte value, blank lines, CRs, no trailing newline.
    let all: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    fs.write("bin/all.bin", &all)
        .await
        .expect("write all bytes");
    assert_eq!(fs.read("bin/all.bin").await.expect("read"), all);
    let text = "first\n\n\nafter blanks\r\n  indented\n\n";
    fs.write("text.txt", text).await.expect("write text");
    assert_eq!(fs.read_text("text.txt").await.expect("read text"), text);
    assert_eq!(fs.size("text.txt").await.expect("size"), text.len() as u64);

    // An empty write is an empty file, and replaces content.
    fs.write("text.txt", b"").await.expect("empty write");
    assert!(fs.is_file("text.txt").await.expect("is_file"));
    assert_eq!(fs.size("text.txt").await.expect("size"), 0);
    fs.write("empty", b"").await.expect("empty new file");
    assert!(fs.exists("empty").await.expect("exists"));
    assert_eq!(fs.read("empty").await.expect("read empty"), b"");

    // Append: creates, then adds; an empty append creates too.
    fs.append("log", b"one\n").await.expect("append 1");
    fs.append("log", [0u8, 255, b'\n']).await.expect("append 2");
    fs.append("log", b"").await.expect("append empty");
    fs.append("log2", b"").await.expect("append creates");
    assert_eq!(fs.read("log").await.expect("read log"), b"one\n\x00\xff\n");
    assert_eq!(fs.read("log2").await.expect("read log2"), b"");

    // Not UTF-8 as text: an error naming the path.
    let err = fs.read_text("log").await.expect_err("not utf-8");
    assert!(
        matches!(err, Error::NotUtf8 { ref path, valid_up_to: 5 } if path == "log"),
        "{err}"
    );

    // Permissions of the replaced file are kept by a rewrite.
    fs.write("script.sh", b"#!/bin/sh\necho hi\n")
        .await
        .expect("write script");
    fs.chmod("script.sh", "750").await.expect("chmod");
    fs.write("script.sh", b"#!/bin/sh\necho bye\n")
        .await
        .expect("rewrite");
    assert_eq!(fs.stat("script.sh").await.expect("stat").mode, 0o750);
    let out = fs.sandbox().exec("./script.sh").await.expect("run script");
    assert_eq!(out.stdout, b"bye\n");
}

async fn odd_names(fs: &FileSystem) {
    fs.mkdir("odd dir", true).await.expect("mkdir");
    for (i, name) in ODD_NAMES.iter().enumerate() {
        let path = format!("odd dir/{name}");
        fs.write(&path, format!("content {i}\n"))
            .await
            .unwrap_or_else(|e| panic!("write {name:?}: {e}"));
        assert_eq!(
            fs.read_text(&path).await.expect("read odd"),
            format!("content {i}\n")
        );
    }
    // A name that is only a leading dash, at the top level, without a folder in front.
    fs.write("-n", b"dash").await.expect("write -n");
    assert_eq!(fs.read("-n").await.expect("read -n"), b"dash");
    let entries = fs.list("odd dir").await.expect("list");
    let mut names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    names.sort_unstable();
    let mut expected = ODD_NAMES.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
    for entry in &entries {
        assert_eq!(entry.path, format!("odd dir/{}", entry.name));
        assert_eq!(entry.kind, FileKind::File);
    }
    assert!(
        !fs.exists("pwned").await.expect("exists")
            && !fs.exists("odd dir/pwned").await.expect("exists"),
        "a name was run by a shell"
    );
}

async fn listing(fs: &FileSystem) {
    fs.mkdir("tree/sub/deeper", true).await.expect("mkdir -p");
    fs.write("tree/a.txt", b"12345").await.expect("write");
    fs.write("tree/.hidden", b"h").await.expect("write hidden");
    fs.write("tree/..dots", b"d").await.expect("write dots");
    let out = fs
        .sandbox()
        .exec("cd tree && ln -s 'a.txt' link && ln -s 'no such -> target' dangling")
        .await
        .expect("symlinks");
    assert!(out.success(), "{out:?}");
    let entries = fs.list("tree").await.expect("list");
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["..dots", ".hidden", "a.txt", "dangling", "link", "sub"]
    );
    let a = &entries[2];
    assert_eq!((a.kind.clone(), a.size, a.mode), (FileKind::File, 5, 0o644));
    assert_eq!(a.permissions(), "-rw-r--r--");
    assert!(a.modified > UNIX_EPOCH + Duration::from_secs(1_600_000_000));
    assert_eq!(
        entries[3].kind,
        FileKind::Symlink {
            target: "no such -> target".into()
        }
    );
    assert_eq!(
        entries[4].kind,
        FileKind::Symlink {
            target: "a.txt".into()
        }
    );
    assert!(entries[5].is_dir());
    assert_eq!(entries[5].path, "tree/sub");
    assert!(
        fs.list("tree/sub/deeper")
            .await
            .expect("empty dir")
            .is_empty()
    );
    let out = fs
        .sandbox()
        .exec("mkdir many && cd many && i=0; while [ $i -lt 3000 ]; do : > \"f $i\"; i=$((i+1)); done")
        .await
        .expect("many files");
    assert!(out.success(), "{out:?}");
    assert_eq!(fs.list("many").await.expect("list many").len(), 3000);

    // stat describes the link itself; is_file follows it.
    let link = fs.stat("tree/link").await.expect("stat link");
    assert_eq!(link.name, "link");
    assert!(link.is_symlink());
    assert!(fs.is_file("tree/link").await.expect("is_file link"));
    assert!(!fs.exists("tree/dangling").await.expect("dangling"));
    assert!(fs.is_dir("tree/sub").await.expect("is_dir"));
    assert!(!fs.is_dir("tree/a.txt").await.expect("is_dir file"));
    assert_eq!(
        fs.stat("tree/sub").await.expect("stat dir").kind,
        FileKind::Dir
    );

    // Writing through a symlink replaces its target and keeps the link.
    fs.write("tree/link", b"via link")
        .await
        .expect("write link");
    assert!(fs.stat("tree/link").await.expect("stat").is_symlink());
    assert_eq!(fs.read("tree/a.txt").await.expect("read"), b"via link");
}

async fn tree_changes(fs: &FileSystem) {
    fs.mkdir("m", false).await.expect("mkdir");
    let err = fs.mkdir("m", false).await.expect_err("exists");
    assert!(
        matches!(err, Error::AlreadyExists { ref path } if path == "m"),
        "{err}"
    );
    fs.mkdir("m", true).await.expect("mkdir -p existing");
    let err = fs.mkdir("x/y/z", false).await.expect_err("no parents");
    assert!(err.is_not_found(), "{err}");

    fs.write("m/f", b"data").await.expect("write");
    let err = fs
        .mkdir("m/f", true)
        .await
        .expect_err("a file is in the way");
    assert!(
        matches!(err, Error::NotADirectory { ref path } if path == "m/f"),
        "{err}"
    );
    fs.copy("m/f", "m/g", false).await.expect("copy");
    assert_eq!(fs.read("m/g").await.expect("read copy"), b"data");
    let err = fs
        .copy("m", "m2", false)
        .await
        .expect_err("dir without recursive");
    assert!(
        matches!(err, Error::IsADirectory { ref path } if path == "m"),
        "{err}"
    );
    fs.copy("m", "m2", true).await.expect("copy -R");
    assert_eq!(fs.read("m2/f").await.expect("read"), b"data");
    let err = fs.copy("nope", "m3", false).await.expect_err("missing");
    assert!(
        matches!(err, Error::NotFound { ref path } if path == "nope"),
        "{err}"
    );

    fs.rename("m2/g", "m2/h").await.expect("rename");
    assert!(!fs.exists("m2/g").await.expect("exists"));
    assert_eq!(fs.read("m2/h").await.expect("read"), b"data");
    fs.rename("m2", "m3").await.expect("rename dir");
    assert!(fs.is_dir("m3").await.expect("is_dir"));
    let err = fs.rename("m2", "m4").await.expect_err("missing");
    assert!(err.is_not_found(), "{err}");

    let err = fs
        .chmod("m3/h", "755; touch pwned")
        .await
        .expect_err("bad mode");
    assert!(
        matches!(err, Error::InvalidArgument { ref name, .. } if name == "mode"),
        "{err}"
    );
    fs.chmod("m3/h", "u+x,go-r").await.expect("symbolic chmod");
    assert_eq!(fs.stat("m3/h").await.expect("stat").mode, 0o700);
    fs.chmod("m3/h", "0604").await.expect("octal chmod");
    assert_eq!(
        fs.stat("m3/h").await.expect("stat").permissions(),
        "-rw----r--"
    );

    let err = fs.rm("m3", RmOptions::new()).await.expect_err("dir");
    assert!(matches!(err, Error::IsADirectory { .. }), "{err}");
    fs.rm("m3/h", RmOptions::new()).await.expect("rm file");
    let err = fs.rm("m3/h", RmOptions::new()).await.expect_err("gone");
    assert!(
        matches!(err, Error::NotFound { ref path } if path == "m3/h"),
        "{err}"
    );
    fs.rm("m3/h", RmOptions::new().force(true))
        .await
        .expect("rm -f missing");
    fs.rm("m3", RmOptions::new().recursive(true))
        .await
        .expect("rm -r");
    assert!(!fs.exists("m3").await.expect("exists"));
}

/// `isolated`: the sandbox's /usr is read-only (not so on the plain pty of the host).
async fn errors(fs: &FileSystem, isolated: bool) {
    let err = fs.read("does/not/exist").await.expect_err("missing");
    assert!(
        matches!(err, Error::NotFound { ref path } if path == "does/not/exist"),
        "{err}"
    );
    assert!(err.to_string().contains("does/not/exist"), "{err}");
    fs.mkdir("adir", true).await.expect("mkdir");
    let err = fs.read("adir").await.expect_err("dir");
    assert!(matches!(err, Error::IsADirectory { .. }), "{err}");
    let err = fs.write("adir", b"x").await.expect_err("write onto dir");
    assert!(matches!(err, Error::IsADirectory { .. }), "{err}");
    fs.write("plain", b"x").await.expect("write");
    let err = fs
        .write("plain/child", b"x")
        .await
        .expect_err("parent is a file");
    assert!(matches!(err, Error::NotADirectory { .. }), "{err}");
    let err = fs.list("plain").await.expect_err("list a file");
    assert!(matches!(err, Error::NotADirectory { .. }), "{err}");
    let err = fs.size("adir").await.expect_err("size of dir");
    assert!(matches!(err, Error::IsADirectory { .. }), "{err}");
    let err = fs.write("", b"x").await.expect_err("empty path");
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    let err = fs.write("a\0b", b"x").await.expect_err("NUL");
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    // Unreadable for a user that is not root.
    let uid = fs.sandbox().exec("id -u").await.expect("id").stdout_text();
    if uid.trim() != "0" {
        fs.write("locked", b"secret").await.expect("write");
        fs.chmod("locked", "000").await.expect("chmod");
        let err = fs.read("locked").await.expect_err("unreadable");
        assert!(
            matches!(err, Error::PermissionDenied { ref path, .. } if path == "locked"),
            "{err}"
        );
        fs.chmod("locked", "600").await.expect("chmod back");
    }
    if !isolated {
        return;
    }
    // /usr is the host's, read-only: writing there is refused and names the path.
    let err = fs
        .write("/usr/sandbox-fs-test", b"x")
        .await
        .expect_err("read-only");
    assert!(
        matches!(err, Error::PermissionDenied { ref path, .. } if path == "/usr/sandbox-fs-test"),
        "{err}"
    );
}

async fn chunks_and_local_files(fs: &FileSystem) {
    let small = fs.clone().with_chunk_sizes(4096, 4096);
    let data = bytes(50_001, 7);
    small
        .write("chunked.bin", &data)
        .await
        .expect("chunked write");
    assert_eq!(fs.read("chunked.bin").await.expect("read"), data);
    assert_eq!(small.read("chunked.bin").await.expect("chunked read"), data);
    // Compressible content travels gzip-compressed, chunk by chunk; the result is the same.
    let text: String = (0..20_000).map(|i| format!("line {}\n", i % 97)).collect();
    small
        .write("chunked.txt", &text)
        .await
        .expect("compressed write");
    assert_eq!(fs.read_text("chunked.txt").await.expect("read"), text);
    let plain = small.clone().with_compression(false);
    plain
        .append("chunked.txt", &text)
        .await
        .expect("plain append");
    assert_eq!(
        fs.size("chunked.txt").await.expect("size"),
        2 * text.len() as u64
    );
    small
        .append("chunked.bin", &data[..10_000])
        .await
        .expect("chunked append");
    let mut both = data.clone();
    both.extend_from_slice(&data[..10_000]);
    assert_eq!(fs.read("chunked.bin").await.expect("read"), both);

    let dir = tempfile::tempdir().expect("temp");
    let local = dir.path().join("in.bin");
    std::fs::write(&local, &data).expect("local write");
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let options = TransferOptions::new().progress(move |done, total| {
        assert!(done <= total);
        seen.fetch_add(1, Ordering::SeqCst);
    });
    let n = small
        .upload_with(&local, "up/in.bin", &options)
        .await
        .expect("upload");
    assert_eq!(n, data.len() as u64);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        13,
        "one call per 4096-byte chunk"
    );
    let back = dir.path().join("new/sub/out.bin");
    assert_eq!(
        small.download("up/in.bin", &back).await.expect("download"),
        n
    );
    assert_eq!(std::fs::read(&back).expect("read back"), data);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("new/sub"))
        .expect("dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");

    let err = fs
        .upload(dir.path().join("missing"), "x")
        .await
        .expect_err("missing local");
    assert!(matches!(err, Error::LocalNotFound { .. }), "{err}");
    assert!(err.to_string().contains("missing"), "{err}");
    let err = fs.upload(dir.path(), "x").await.expect_err("local dir");
    assert!(matches!(err, Error::LocalKind { .. }), "{err}");
    let err = fs
        .download("no/such/file", dir.path().join("never"))
        .await
        .expect_err("missing remote");
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(!dir.path().join("never").exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        2,
        "no temporary file left behind"
    );
}

async fn run_suite(via: Via) {
    let target = target!(via);
    suite(&target.sandbox.fs().without_object_store(), true).await;
}

async fn suite(fs: &FileSystem, isolated: bool) {
    files(fs).await;
    odd_names(fs).await;
    listing(fs).await;
    tree_changes(fs).await;
    errors(fs, isolated).await;
    chunks_and_local_files(fs).await;
}

/// The suite on a plain pseudo-terminal of this machine (no sandbox, no namespaces): the file
/// operations need nothing but the console and POSIX tools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_on_pty() {
    let platform = sandbox_core::testing::PtyPlatform::new().expect("pty platform");
    let sandbox = sandbox_core::Sandbox::builder()
        .name(format!(
            "fs-pty-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ))
        .defaults(appspec::TemplateDefaults::default())
        .platform(Arc::new(platform))
        .create()
        .await
        .expect("create");
    let result = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(suite(
        &sandbox.fs().without_object_store(),
        false,
    )))
    .await;
    sandbox.delete().await.expect("delete");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_local() {
    run_suite(Via::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_through_doctl_standin() {
    run_suite(Via::Doctl).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_through_api() {
    run_suite(Via::Api).await;
}

/// A write that fails part way leaves the old file whole and no temporary file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_write_keeps_the_old_file() {
    let target = target!(Via::Local);
    let fs = target
        .sandbox
        .fs()
        .without_object_store()
        .with_chunk_sizes(4096, 4096);
    fs.write("keep/me", b"old content").await.expect("write");
    let dir = tempfile::tempdir().expect("temp");
    let local = dir.path().join("shrinking");
    std::fs::write(&local, bytes(40_000, 3)).expect("local");
    let shrink = local.clone();
    let options = TransferOptions::new().progress(move |done, _| {
        if done == 4096 {
            std::fs::write(&shrink, b"").expect("truncate local file");
        }
    });
    let err = fs
        .upload_with(&local, "keep/me", &options)
        .await
        .expect_err("source shrank");
    assert!(matches!(err, Error::Incomplete { .. }), "{err}");
    assert_eq!(fs.read("keep/me").await.expect("read"), b"old content");
    let names: Vec<String> = fs
        .list("keep")
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["me"]);
}

/// Consoles dropped during a chunked write and append: the steps are retried and the result
/// is exact, with no chunk written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_consoles_never_duplicate_data() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(backend) = sandbox_testkit::local_platform(dir.path()) else {
        return;
    };
    let hostile = Arc::new(sandbox_core::testing::HostilePlatform::new(Arc::new(
        backend,
    )));
    let sandbox = sandbox_core::Sandbox::builder()
        .image(appspec::ImageKind::Python)
        .component_type(appspec::ComponentType::Worker)
        .name(format!(
            "fs-drop-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ))
        .defaults(appspec::TemplateDefaults::default())
        .timeout(Duration::from_secs(120))
        .platform(Arc::clone(&hostile) as Arc<dyn doctl_driver::Platform>)
        .create()
        .await
        .expect("create");
    let fs = sandbox
        .fs()
        .without_object_store()
        .with_chunk_sizes(4096, 4096);
    fs.write("log", b"head\n").await.expect("first write");
    let data = bytes(120_000, 11);
    let stop = Arc::new(AtomicBool::new(false));
    let dropper = {
        let hostile = Arc::clone(&hostile);
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(400)).await;
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                hostile.drop_open_consoles();
            }
        })
    };
    fs.append("log", &data)
        .await
        .expect("append survives drops");
    fs.write("whole", &data)
        .await
        .expect("write survives drops");
    // And drops at known points: right after chunks 5 and 15 of an upload.
    let local_dir = tempfile::tempdir().expect("temp");
    let local = local_dir.path().join("up");
    std::fs::write(&local, &data).expect("local");
    let at = Arc::clone(&hostile);
    let options = TransferOptions::new().progress(move |done, _| {
        if done == 5 * 4096 || done == 15 * 4096 {
            at.drop_open_consoles();
        }
    });
    fs.upload_with(&local, "uploaded", &options)
        .await
        .expect("upload survives drops");
    assert_eq!(fs.read("uploaded").await.expect("read uploaded"), data);
    stop.store(true, Ordering::SeqCst);
    dropper.await.expect("dropper");
    let mut expected = b"head\n".to_vec();
    expected.extend_from_slice(&data);
    assert_eq!(fs.read("log").await.expect("read log"), expected);
    assert_eq!(fs.read("whole").await.expect("read whole"), data);
    assert!(hostile.consoles_opened() >= 1);
    let _ = tokio::time::timeout(Duration::from_secs(30), sandbox.delete()).await;
}

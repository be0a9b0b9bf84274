//! Folder transfers as tar streams.

use std::os::unix::fs::{PermissionsExt, symlink};

use sandbox_fs::{DirOptions, Error, FileKind, SandboxFsExt};

use crate::common::{Via, bytes};
use crate::target;

fn make_tree(root: &std::path::Path) {
    std::fs::create_dir_all(root.join("src/pkg")).expect("dirs");
    std::fs::create_dir_all(root.join("node_modules/dep")).expect("dirs");
    std::fs::create_dir_all(root.join("empty dir")).expect("dirs");
    std::fs::write(root.join("src/main.py"), "print('hi')\n").expect("file");
    std::fs::write(root.join("src/main.pyc"), b"\x00compiled").expect("file");
    std::fs::write(root.join("src/pkg/data.bin"), bytes(70_000, 5)).expect("file");
    std::fs::write(root.join("src/pkg/it's a\nname"), b"odd").expect("file");
    std::fs::write(root.join("node_modules/dep/index.js"), b"x").expect("file");
    std::fs::write(root.join("run.sh"), b"#!/bin/sh\necho ran\n").expect("file");
    std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o751))
        .expect("chmod");
    symlink("src/main.py", root.join("main-link")).expect("symlink");
}

async fn round_trip(via: Via) {
    let target = target!(via);
    let fs = target.sandbox.fs().without_object_store();
    let local = tempfile::tempdir().expect("temp");
    make_tree(local.path());
    let options = DirOptions::new().exclude("*.pyc").exclude("node_modules");
    let size = fs
        .upload_dir(local.path(), "/home/sandbox/app/proj", &options)
        .await
        .expect("upload_dir");
    assert!(size > 70_000);
    assert_eq!(
        fs.read("proj/src/pkg/data.bin").await.expect("read"),
        bytes(70_000, 5)
    );
    assert_eq!(
        fs.read("proj/src/pkg/it's a\nname").await.expect("odd"),
        b"odd"
    );
    assert!(!fs.exists("proj/src/main.pyc").await.expect("exists"));
    assert!(!fs.exists("proj/node_modules").await.expect("exists"));
    assert!(fs.is_dir("proj/empty dir").await.expect("empty dir"));
    assert_eq!(fs.stat("proj/run.sh").await.expect("stat").mode, 0o751);
    assert_eq!(
        fs.stat("proj/main-link").await.expect("link").kind,
        FileKind::Symlink {
            target: "src/main.py".into()
        }
    );
    let out = fs.sandbox().exec("proj/run.sh").await.expect("run");
    assert_eq!(out.stdout, b"ran\n");
    let names: Vec<String> = fs
        .list("proj")
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(
        names,
        ["empty dir", "main-link", "run.sh", "src"],
        "no archive left"
    );

    // Back again, with an exclude on the way out.
    fs.write("proj/build/out.o", b"obj").await.expect("write");
    fs.chmod("proj/src/pkg", "700").await.expect("chmod");
    let back = tempfile::tempdir().expect("temp");
    let dest = back.path().join("copy");
    fs.download_dir("proj", &dest, &DirOptions::new().exclude("build"))
        .await
        .expect("download_dir");
    assert_eq!(
        std::fs::read(dest.join("src/pkg/data.bin")).expect("read"),
        bytes(70_000, 5)
    );
    assert_eq!(
        std::fs::read(dest.join("src/pkg/it's a\nname")).expect("odd"),
        b"odd"
    );
    assert!(!dest.join("build").exists());
    let mode = |p: &str| {
        std::fs::metadata(dest.join(p))
            .expect("meta")
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("run.sh"), 0o751);
    assert_eq!(mode("src/pkg"), 0o700);
    assert_eq!(
        std::fs::read_link(dest.join("main-link")).expect("link"),
        std::path::Path::new("src/main.py")
    );
    let out = fs
        .sandbox()
        .exec("ls -a /tmp | grep -c sandbox-fs || true")
        .await
        .expect("ls");
    assert_eq!(out.stdout_text().trim(), "0", "remote archive removed");

    // Errors name the path.
    let err = fs
        .download_dir("proj/run.sh", back.path().join("x"), &DirOptions::new())
        .await
        .expect_err("not a dir");
    assert!(
        matches!(err, Error::NotADirectory { ref path } if path == "proj/run.sh"),
        "{err}"
    );
    let err = fs
        .download_dir("nope", back.path().join("x"), &DirOptions::new())
        .await
        .expect_err("missing");
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = fs
        .upload_dir(local.path().join("run.sh"), "x", &DirOptions::new())
        .await
        .expect_err("local file");
    assert!(
        matches!(
            err,
            Error::LocalKind {
                expected_dir: true,
                ..
            }
        ),
        "{err}"
    );
    let err = fs
        .upload_dir(local.path().join("absent"), "x", &DirOptions::new())
        .await
        .expect_err("local missing");
    assert!(matches!(err, Error::LocalNotFound { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_local() {
    round_trip(Via::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_through_doctl_standin() {
    round_trip(Via::Doctl).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_through_api() {
    round_trip(Via::Api).await;
}

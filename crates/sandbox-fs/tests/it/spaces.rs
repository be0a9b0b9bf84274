//! Large transfers through an S3-compatible server on loopback (s3s-fs), with presigned URLs
//! fetched and sent by curl inside the sandbox.
#![cfg(feature = "spaces")]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sandbox_fs::{
    DirOptions, Error, FileSystem, ObjectStore, SandboxFsExt, SpacesStore, TransferOptions,
};

use crate::common::{S3Server, Via, bytes};

/// Wraps a store to count deletions and, on demand, hand out GET URLs that expire before
/// they are used.
#[derive(Debug)]
struct Recording {
    inner: SpacesStore,
    deleted: Mutex<Vec<String>>,
    expire_gets: bool,
}

#[async_trait::async_trait]
impl ObjectStore for Recording {
    async fn presign_get(&self, key: &str, expires: Duration) -> sandbox_fs::Result<String> {
        if self.expire_gets {
            let url = self.inner.presign_get(key, Duration::from_secs(1)).await?;
            tokio::time::sleep(Duration::from_millis(2500)).await;
            return Ok(url);
        }
        self.inner.presign_get(key, expires).await
    }

    async fn presign_put(&self, key: &str, expires: Duration) -> sandbox_fs::Result<String> {
        self.inner.presign_put(key, expires).await
    }

    async fn delete(&self, key: &str) -> sandbox_fs::Result<()> {
        self.deleted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(key.to_owned());
        self.inner.delete(key).await
    }
}

fn recording(server: &S3Server, expire_gets: bool) -> Arc<Recording> {
    Arc::new(Recording {
        inner: SpacesStore::new(server.config()),
        deleted: Mutex::new(Vec::new()),
        expire_gets,
    })
}

fn deleted(store: &Recording) -> Vec<String> {
    store
        .deleted
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

async fn large_round_trip(fs: &FileSystem, server: &S3Server, store: &Recording) {
    let dir = tempfile::tempdir().expect("temp");
    let local = dir.path().join("big input.bin");
    let data = bytes(3_000_001, 21);
    std::fs::write(&local, &data).expect("local");
    let last = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let (l, c) = (Arc::clone(&last), Arc::clone(&calls));
    let options = TransferOptions::new().progress(move |done, total| {
        assert!(done <= total && total == 3_000_001);
        l.store(done, Ordering::SeqCst);
        c.fetch_add(1, Ordering::SeqCst);
    });
    let n = fs
        .upload_large(&local, "data/it's big\n.bin", &options)
        .await
        .expect("upload_large");
    assert_eq!(n, 3_000_001);
    assert_eq!(last.load(Ordering::SeqCst), 3_000_001);
    assert!(
        calls.load(Ordering::SeqCst) > 2,
        "progress was reported as it went"
    );
    assert_eq!(
        fs.size("data/it's big\n.bin").await.expect("size"),
        3_000_001
    );
    assert_eq!(deleted(store).len(), 1);
    assert!(server.objects().is_empty(), "{:?}", server.objects());

    let back = dir.path().join("out/back.bin");
    let n = fs
        .download_large("data/it's big\n.bin", &back, &TransferOptions::new())
        .await
        .expect("download_large");
    assert_eq!(n, 3_000_001);
    assert_eq!(std::fs::read(&back).expect("read back"), data);
    assert_eq!(deleted(store).len(), 2);
    assert!(server.objects().is_empty(), "{:?}", server.objects());

    // Plain upload and download switch to the store at the threshold.
    let auto = fs.clone().with_large_file_threshold(100_000);
    let keep = TransferOptions::new().keep_object(true);
    auto.upload_with(&local, "auto.bin", &keep)
        .await
        .expect("auto upload");
    assert_eq!(server.objects().len(), 1, "went through the store");
    assert_eq!(deleted(store).len(), 2, "kept as asked");
    auto.download("auto.bin", dir.path().join("auto.bin"))
        .await
        .expect("auto download");
    assert_eq!(
        std::fs::read(dir.path().join("auto.bin")).expect("read"),
        data
    );
    assert_eq!(deleted(store).len(), 3);
    // Below the threshold, the console.
    std::fs::write(dir.path().join("small"), b"small").expect("small");
    auto.upload(dir.path().join("small"), "small")
        .await
        .expect("small upload");
    assert_eq!(deleted(store).len(), 3);
    assert_eq!(fs.read("small").await.expect("read"), b"small");

    // A folder whose archive is large goes through the store too.
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("a")).expect("tree");
    std::fs::write(tree.join("a/blob"), &data[..500_000]).expect("blob");
    auto.upload_dir(&tree, "tree", &DirOptions::new())
        .await
        .expect("upload_dir via store");
    assert_eq!(deleted(store).len(), 4);
    assert_eq!(
        fs.read("tree/a/blob").await.expect("blob"),
        &data[..500_000]
    );
    let tree_back = dir.path().join("tree-back");
    auto.download_dir("tree", &tree_back, &DirOptions::new())
        .await
        .expect("download_dir via store");
    assert_eq!(deleted(store).len(), 5);
    assert_eq!(
        std::fs::read(tree_back.join("a/blob")).expect("blob"),
        &data[..500_000]
    );
}

async fn spaces_suite(via: Via) {
    let Some(target) = crate::common::sandbox_reaching_host_loopback(via).await else {
        return;
    };
    let server = S3Server::start().await;
    let store = recording(&server, false);
    let fs = target
        .sandbox
        .fs()
        .with_object_store(Arc::clone(&store) as Arc<dyn ObjectStore>);
    large_round_trip(&fs, &server, &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spaces_local() {
    spaces_suite(Via::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spaces_through_api() {
    spaces_suite(Via::Api).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spaces_errors() {
    let Some(target) = crate::common::sandbox_reaching_host_loopback(Via::Local).await else {
        return;
    };
    let server = S3Server::start().await;
    let dir = tempfile::tempdir().expect("temp");
    let local = dir.path().join("f.bin");
    std::fs::write(&local, bytes(300_000, 1)).expect("local");

    // Not configured: named.
    let plain = target.sandbox.fs().without_object_store();
    let err = plain
        .upload_large(&local, "x", &TransferOptions::new())
        .await
        .expect_err("no store");
    assert!(matches!(err, Error::SpacesNotConfigured { .. }), "{err}");
    assert!(err.to_string().contains("SPACES_BUCKET"), "{err}");

    // Bad credentials: refused by the store, named, nothing written, no secret shown.
    let wrong = server.config();
    let wrong = sandbox_fs::SpacesConfig::new(
        wrong.bucket(),
        wrong.region(),
        wrong.access_key(),
        "not-the-secret",
    )
    .with_endpoint(wrong.endpoint_url());
    let bad = target.sandbox.fs().with_spaces(wrong);
    let err = bad
        .upload_large(&local, "bad.bin", &TransferOptions::new())
        .await
        .expect_err("bad secret");
    assert!(matches!(err, Error::BadCredentials { .. }), "{err}");
    assert!(err.to_string().contains("SPACES_SECRET_KEY"), "{err}");
    assert!(!format!("{err:?}").contains("not-the-secret"));
    assert!(!plain.exists("bad.bin").await.expect("exists"));

    // An expired URL: the sandbox's fetch is refused; no file, no temporary, no object.
    let store = recording(&server, true);
    let fs = target
        .sandbox
        .fs()
        .with_object_store(Arc::clone(&store) as Arc<dyn ObjectStore>);
    plain.write("dest/old", b"old").await.expect("write");
    let err = fs
        .upload_large(&local, "dest/old", &TransferOptions::new())
        .await
        .expect_err("expired");
    assert!(matches!(err, Error::UrlExpired { .. }), "{err}");
    assert_eq!(plain.read("dest/old").await.expect("read"), b"old");
    assert_eq!(plain.list("dest").await.expect("list").len(), 1);
    assert_eq!(deleted(&store).len(), 1, "removed after a failure too");
    assert!(server.objects().is_empty());

    // ... unless asked to keep it.
    let err = fs
        .upload_large(
            &local,
            "dest/old",
            &TransferOptions::new().keep_object(true),
        )
        .await
        .expect_err("expired");
    assert!(matches!(err, Error::UrlExpired { .. }), "{err}");
    assert_eq!(server.objects().len(), 1);

    // Missing remote path, a directory: named.
    let good = target.sandbox.fs().with_spaces(server.config());
    let err = good
        .download_large("no/such", dir.path().join("o"), &TransferOptions::new())
        .await
        .expect_err("missing");
    assert!(
        matches!(err, Error::NotFound { ref path } if path == "no/such"),
        "{err}"
    );
    let err = good
        .download_large("dest", dir.path().join("o"), &TransferOptions::new())
        .await
        .expect_err("dir");
    assert!(matches!(err, Error::IsADirectory { .. }), "{err}");
    assert!(!dir.path().join("o").exists());

    // A store nobody listens on: a clear error naming the key, not a URL's signature.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        port
    };
    let gone = target.sandbox.fs().with_spaces(
        server
            .config()
            .with_endpoint(format!("http://127.0.0.1:{closed}")),
    );
    let err = gone
        .upload_large(&local, "y", &TransferOptions::new())
        .await
        .expect_err("connection refused");
    assert!(matches!(err, Error::ObjectStore { .. }), "{err}");
    assert!(!err.to_string().contains("X-Amz-Signature="), "{err}");
}

//! Snapshots: byte-exact round trips on the local store and an S3 server on loopback, on the
//! local provider and through the emulator; incremental chains; hibernate and wake; faults.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use appspec::{ComponentType, ImageKind, TemplateDefaults};
use bytes::Bytes;
use sandbox_core::{ExecRequest, Sandbox, SandboxBuilder};
use sandbox_fs::{
    Error, ListFilter, LocalSnapshotStore, SandboxFsExt, SnapshotBuilderExt, SnapshotKind,
    SnapshotOptions, SnapshotStore, Snapshots,
};

use crate::common::{Via, bytes};
use crate::target;

const APP: &str = "/home/sandbox/app";

fn builder(sandbox: &Sandbox) -> SandboxBuilder {
    Sandbox::builder()
        .image(ImageKind::Python)
        .component_type(ComponentType::Worker)
        .name(format!(
            "snap-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        ))
        .defaults(TemplateDefaults::default())
        .timeout(Duration::from_secs(120))
        .platform(Arc::clone(sandbox.platform()))
}

async fn sh(sandbox: &Sandbox, script: &str) -> Vec<u8> {
    let out = sandbox
        .exec_with(
            ExecRequest::argv(["sh", "-c", script])
                .cwd(APP)
                .timeout(Duration::from_secs(300)),
        )
        .await
        .expect("exec");
    assert!(out.success(), "`{script}` failed: {}", out.stderr_text());
    out.stdout
}

/// Everything a user would compare: each path's kind, mode, size and link target, and each
/// file's SHA-256 (caches the default excludes leave out are not part of it; a folder's own
/// size depends on the filesystem, not on what it holds).
async fn state(sandbox: &Sandbox) -> String {
    let out = sh(
        sandbox,
        r"find . -name __pycache__ -prune -o ! -type d -printf '%y %m %s %p -> %l\n' | sort
          find . -name __pycache__ -prune -o -type d -printf '%y %m %p\n' | sort
          find . -name __pycache__ -prune -o -type f -print0 | sort -z | xargs -0 -r sha256sum --",
    )
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A tree with every byte value, modes, symlinks (inside, outside, dangling), empty folders,
/// odd names (quotes, newlines, a leading dash, bytes that are not UTF-8), `.env`, and a
/// cache the default excludes leave out.
async fn populate(sandbox: &Sandbox) {
    let fs = sandbox.fs().without_object_store();
    let all: Vec<u8> = (0..=255u8).cycle().take(256 * 5).collect();
    fs.write("all bytes.bin", &all).await.expect("write");
    fs.write("data/random.bin", bytes(300_001, 3))
        .await
        .expect("write");
    fs.write("it's a\nname", b"odd\n").await.expect("write");
    fs.write("-dash", b"").await.expect("write");
    fs.write(".env", b"SECRET=kept\n").await.expect("write");
    fs.write("__pycache__/x.pyc", b"cache")
        .await
        .expect("write");
    sh(
        sandbox,
        r#"set -e
        mkdir -p "empty/nested" private
        chmod 700 private
        printf 'ro' > read-only; chmod 444 read-only
        printf '#!/bin/sh\necho hi\n' > run.sh; chmod 751 run.sh
        printf 'x' > "$(printf 'caf\351')"
        ln -s "all bytes.bin" link-inside
        ln -s /usr/bin/env link-outside
        ln -s missing link-dangling
        printf 'secret' > private/key; chmod 600 private/key"#,
    )
    .await;
}

fn snapshots_in(dir: &tempfile::TempDir) -> Snapshots {
    Snapshots::local(dir.path())
}

async fn full_round_trip(via: Via) {
    let target = target!(via);
    let a = &target.sandbox;
    populate(a).await;
    let before = state(a).await;
    let dir = tempfile::tempdir().expect("store");
    let snapshots = snapshots_in(&dir);
    let meta = snapshots
        .create(a, &SnapshotOptions::new().tag("case", "full"))
        .await
        .expect("create");
    assert_eq!(meta.kind, SnapshotKind::Full);
    assert_eq!(meta.paths, [APP]);
    assert_eq!(meta.files, 9, "{meta:?}");
    assert_eq!(meta.template.image.as_deref(), Some("python"));
    let listed = snapshots
        .list(&ListFilter::new().tag("case", "full"))
        .await
        .expect("list");
    assert_eq!(listed, std::slice::from_ref(&meta));
    assert!(
        snapshots
            .list(&ListFilter::new().tag("case", "other"))
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(snapshots.get(&meta.id).await.expect("get"), meta);

    let b = builder(a)
        .create_from_snapshot(&snapshots, &meta.id)
        .await
        .expect("create from snapshot");
    assert_eq!(state(&b).await, before, "byte for byte");
    let fs = b.fs().without_object_store();
    assert_eq!(fs.read(".env").await.expect(".env kept"), b"SECRET=kept\n");
    assert!(
        !fs.exists("__pycache__").await.expect("exists"),
        "cache left out"
    );

    // Restoring into a sandbox that has other files gives back exactly the snapshot.
    fs.write("extra", b"not in the snapshot")
        .await
        .expect("write");
    fs.write("all bytes.bin", b"changed").await.expect("write");
    snapshots.restore(&b, &meta.id).await.expect("restore");
    assert_eq!(state(&b).await, before);

    let copy = snapshots
        .copy(
            &meta.id,
            None,
            Some("a copy"),
            &BTreeMap::from([("k".into(), "v".into())]),
        )
        .await
        .expect("copy");
    assert_eq!(copy.tags.get("case").map(String::as_str), Some("full"));
    assert_eq!(copy.description.as_deref(), Some("a copy"));
    snapshots.delete(&meta.id).await.expect("delete");
    snapshots.delete(&copy.id).await.expect("delete copy");
    assert!(
        snapshots
            .list(&ListFilter::new())
            .await
            .expect("list")
            .is_empty()
    );
    let left: Vec<_> = walk(dir.path());
    assert!(left.is_empty(), "every object removed: {left:?}");
    let err = snapshots.get(&meta.id).await.expect_err("gone");
    assert!(matches!(err, Error::SnapshotNotFound { .. }), "{err}");
    b.delete().await.expect("delete b");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_round_trip_local() {
    full_round_trip(Via::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_round_trip_through_doctl_standin() {
    full_round_trip(Via::Doctl).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_round_trip_through_api() {
    full_round_trip(Via::Api).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_chains_apply_in_order() {
    let target = target!(Via::Local);
    let a = &target.sandbox;
    populate(a).await;
    sh(
        a,
        "seq 1 20000 > numbers; mkdir -p gone/deep; printf 1 > gone/deep/f; printf f > becomes-dir",
    )
    .await;
    let dir = tempfile::tempdir().expect("store");
    let snapshots = snapshots_in(&dir);
    let full = snapshots
        .create(a, &SnapshotOptions::new())
        .await
        .expect("full");
    sh(
        a,
        r"set -e
        printf added > added.txt
        printf changed >> numbers
        rm -rf gone
        rm becomes-dir; mkdir becomes-dir; printf in > becomes-dir/inside
        rm link-inside; ln -s run.sh link-inside
        chmod 640 read-only",
    )
    .await;
    let one = snapshots
        .create(a, &SnapshotOptions::new().parent(&full.id))
        .await
        .expect("incremental");
    assert_eq!(one.kind, SnapshotKind::Incremental);
    assert_eq!(one.parent.as_deref(), Some(full.id.as_str()));
    assert_eq!(one.chain_depth, 1);
    assert_eq!(one.deleted, 3, "gone, gone/deep, gone/deep/f");
    assert!(
        one.archive_bytes * 5 < full.archive_bytes,
        "{} vs {}",
        one.archive_bytes,
        full.archive_bytes
    );
    sh(a, "rm added.txt; printf again > data/new").await;
    let two = snapshots
        .create(a, &SnapshotOptions::new().parent(&one.id))
        .await
        .expect("second incremental");
    assert_eq!(two.chain_root, full.id);
    let expected = state(a).await;

    let b = builder(a)
        .create_from_snapshot(&snapshots, &two.id)
        .await
        .expect("restore the chain");
    assert_eq!(state(&b).await, expected);

    // A middle snapshot restores its own state too.
    snapshots
        .restore(&b, &one.id)
        .await
        .expect("restore middle");
    let fs = b.fs().without_object_store();
    assert_eq!(fs.read("added.txt").await.expect("added"), b"added");
    assert!(!fs.exists("data/new").await.expect("exists"));

    // Compaction: one full snapshot with the same state.
    let compact = snapshots.compact(&b, &two.id).await.expect("compact");
    assert_eq!(compact.kind, SnapshotKind::Full);
    let c = builder(a)
        .create_from_snapshot(&snapshots, &compact.id)
        .await
        .expect("from compacted");
    assert_eq!(state(&c).await, expected);

    // A parent with children is not deleted; a missing parent breaks the chain.
    let err = snapshots.delete(&full.id).await.expect_err("has children");
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    std::fs::remove_file(
        dir.path()
            .join(format!("snapshots/{}/metadata.json", one.id)),
    )
    .expect("remove parent");
    let err = snapshots.restore(&c, &two.id).await.expect_err("broken");
    assert!(
        matches!(&err, Error::SnapshotChain { reason, .. } if reason.contains(&one.id)),
        "{err}"
    );
    b.delete().await.expect("delete");
    c.delete().await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_that_loops_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("store");
    let store = LocalSnapshotStore::new(dir.path());
    for (id, parent) in [("loop-a", "loop-b"), ("loop-b", "loop-a")] {
        let meta = serde_json::json!({
            "format": 1, "id": id, "kind": "incremental", "parent": parent,
            "chain_root": "x", "chain_depth": 1, "created_at": 0, "sandbox_id": "s",
            "template": {"image": null, "component_type": null, "name": "n", "region": null},
            "paths": [APP], "excludes": [], "description": null, "tags": {},
            "archive_bytes": 0, "archive_sha256": "", "manifest_sha256": "", "files": 0,
            "content_bytes": 0, "layer_entries": 0, "deleted": 0
        });
        store
            .put(
                &format!("snapshots/{id}/metadata.json"),
                Bytes::from(meta.to_string()),
            )
            .await
            .expect("put");
    }
    let snapshots = Snapshots::new(Arc::new(store));
    let err = snapshots.chain("loop-a").await.expect_err("loop");
    assert!(
        matches!(&err, Error::SnapshotChain { reason, .. } if reason.contains("loops")),
        "{err}"
    );
    let err = snapshots.chain("nope").await.expect_err("unknown");
    assert!(matches!(err, Error::SnapshotNotFound { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hibernate_then_wake_gives_the_files_back() {
    let target = target!(Via::Local);
    let a = &target.sandbox;
    populate(a).await;
    let before = state(a).await;
    let dir = tempfile::tempdir().expect("store");
    let snapshots = snapshots_in(&dir);
    let record = snapshots.hibernate(a).await.expect("hibernate");
    assert_eq!(record.template.image.as_deref(), Some("python"));
    assert_eq!(record.template.component_type.as_deref(), Some("worker"));
    let gone = Sandbox::connect(Arc::clone(a.platform()), a.id()).await;
    assert!(gone.is_err(), "the hibernated sandbox is deleted");
    let again = snapshots
        .hibernated(&record.snapshot_id)
        .await
        .expect("record");
    assert_eq!(again.snapshot_id, record.snapshot_id);
    let b = snapshots.wake(builder(a), &again).await.expect("wake");
    assert_eq!(state(&b).await, before);
    b.delete().await.expect("delete");
}

/// A pooled sandbox with a snapshot restored into it: the pool's warm sandbox, the files back
/// byte for byte; an unknown id takes nothing from the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_with_snapshot_restores_into_a_pooled_sandbox() {
    use sandbox_core::{PoolConfig, PoolManager, Template};
    const WAIT: Duration = Duration::from_secs(120);
    let target = target!(Via::Local);
    let a = &target.sandbox;
    populate(a).await;
    let before = state(a).await;
    let dir = tempfile::tempdir().expect("store");
    let snapshots = snapshots_in(&dir);
    let meta = snapshots
        .create(a, &SnapshotOptions::default())
        .await
        .expect("snapshot");
    let python = Template::new(ImageKind::Python, ComponentType::Worker);
    let manager = PoolManager::builder()
        .platform(Arc::clone(a.platform()))
        .defaults(TemplateDefaults::default())
        .sweep_interval(None)
        .pool(python.clone(), PoolConfig::new().min_ready(1).max_ready(1))
        .build()
        .expect("manager");
    manager.warm_up(WAIT).await.expect("warm up");

    let err = snapshots
        .acquire_with_snapshot(&manager, &python, "no-such-snapshot", WAIT)
        .await
        .expect_err("an unknown id");
    assert!(matches!(err, Error::WakeFailed { .. }), "{err}");
    assert_eq!(manager.metrics().pools[0].acquires, 0, "nothing was taken");

    let b = snapshots
        .acquire_with_snapshot(&manager, &python, &meta.id, WAIT)
        .await
        .expect("acquire with snapshot");
    assert_ne!(b.id(), a.id());
    assert_eq!(manager.metrics().pools[0].hits, 1);
    assert_eq!(state(&b).await, before);
    b.delete().await.expect("delete");
    manager.shutdown().await.expect("shutdown");
    let left: Vec<String> = a
        .platform()
        .list_apps()
        .await
        .expect("list")
        .into_iter()
        .map(|app| app.id)
        .collect();
    assert_eq!(
        left,
        [a.id().to_owned()],
        "only the test's own sandbox is left"
    );
}

/// A store that fails every write of one object name.
#[derive(Debug)]
struct Failing {
    inner: LocalSnapshotStore,
    name: &'static str,
}

#[async_trait::async_trait]
impl SnapshotStore for Failing {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn put(&self, key: &str, data: Bytes) -> sandbox_fs::Result<()> {
        if key.ends_with(self.name) {
            return Err(Error::object_store("write", key, "the store went away"));
        }
        self.inner.put(key, data).await
    }
    async fn put_file(
        &self,
        key: &str,
        path: &std::path::Path,
        size: u64,
    ) -> sandbox_fs::Result<()> {
        self.inner.put_file(key, path, size).await
    }
    async fn get(&self, key: &str) -> sandbox_fs::Result<Option<Bytes>> {
        self.inner.get(key).await
    }
    async fn reader(&self, key: &str) -> sandbox_fs::Result<sandbox_fs::ObjectReader> {
        self.inner.reader(key).await
    }
    async fn list(&self, prefix: &str) -> sandbox_fs::Result<Vec<String>> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> sandbox_fs::Result<()> {
        self.inner.delete(key).await
    }
    fn local_path(&self, key: &str) -> Option<std::path::PathBuf> {
        self.inner.local_path(key)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_typed_and_leave_nothing_listed() {
    let target = target!(Via::Local);
    let a = &target.sandbox;
    populate(a).await;
    let dir = tempfile::tempdir().expect("store");

    // The store fails mid-snapshot: nothing listed, no object left.
    let failing = Snapshots::new(Arc::new(Failing {
        inner: LocalSnapshotStore::new(dir.path()),
        name: "metadata.json",
    }));
    let err = failing
        .create(a, &SnapshotOptions::new())
        .await
        .expect_err("fails");
    assert!(
        matches!(&err, Error::SnapshotFailed { source, .. } if matches!(**source, Error::ObjectStore { .. })),
        "{err}"
    );
    assert!(walk(dir.path()).is_empty(), "{:?}", walk(dir.path()));

    let snapshots = snapshots_in(&dir);
    // A missing folder, an unknown id, a malformed id.
    let err = snapshots
        .create(a, &SnapshotOptions::new().path("/home/sandbox/nope"))
        .await
        .expect_err("missing");
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = snapshots
        .restore(a, "snap-unknown")
        .await
        .expect_err("unknown");
    assert!(matches!(err, Error::SnapshotNotFound { .. }), "{err}");
    assert!(matches!(
        snapshots.get("../x").await,
        Err(Error::InvalidArgument { .. })
    ));

    // A corrupted archive: restore refuses before extracting, and a wake from it leaves no
    // sandbox behind.
    let meta = snapshots
        .create(a, &SnapshotOptions::new())
        .await
        .expect("create");
    let err = snapshots
        .create(a, &SnapshotOptions::new().parent(&meta.id).path("/tmp"))
        .await
        .expect_err("other paths");
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    let archive = dir
        .path()
        .join(format!("snapshots/{}/archive.tar.gz", meta.id));
    let mut data = std::fs::read(&archive).expect("archive");
    let middle = data.len() / 2;
    data[middle] ^= 0x55;
    std::fs::write(&archive, &data).expect("corrupt");
    let before = sandbox_core::Sandbox::list(a.platform().as_ref())
        .await
        .expect("list")
        .len();
    let err = builder(a)
        .create_from_snapshot(&snapshots, &meta.id)
        .await
        .expect_err("corrupt");
    assert!(
        matches!(&err, Error::WakeFailed { source, app_id: None, .. } if matches!(**source, Error::SnapshotIntegrity { .. })),
        "{err:?}"
    );
    let after = sandbox_core::Sandbox::list(a.platform().as_ref())
        .await
        .expect("list")
        .len();
    assert_eq!(before, after, "no sandbox left by a failed wake");

    // The sandbox is lost: a typed error, nothing listed.
    a.delete().await.expect("delete");
    let err = snapshots
        .create(a, &SnapshotOptions::new())
        .await
        .expect_err("lost");
    assert!(
        matches!(&err, Error::SnapshotFailed { source, .. } if matches!(**source, Error::Exec { .. })),
        "{err:?}"
    );
    let listed = snapshots.list(&ListFilter::new()).await.expect("list");
    assert_eq!(listed.len(), 1, "only the corrupted one");
}

/// 3,000 small files and 100 MB, full and incremental.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_trees_round_trip() {
    let target = target!(Via::Local);
    let a = &target.sandbox;
    sh(
        a,
        r#"set -e
        mkdir -p many big
        i=0; while [ $i -lt 3000 ]; do printf 'file %s\n' $i > many/f$i; i=$((i+1)); done
        head -c 100000000 /dev/urandom > big/blob"#,
    )
    .await;
    let before = state(a).await;
    let dir = tempfile::tempdir().expect("store");
    let snapshots = snapshots_in(&dir);
    let full = snapshots
        .create(a, &SnapshotOptions::new())
        .await
        .expect("full");
    assert_eq!(full.files, 3001);
    assert!(full.content_bytes > 100_000_000);
    sh(
        a,
        "i=0; while [ $i -lt 30 ]; do printf changed > many/f$i; i=$((i+1)); done",
    )
    .await;
    let inc = snapshots
        .create(a, &SnapshotOptions::new().parent(&full.id))
        .await
        .expect("incremental");
    assert_eq!(inc.layer_entries, 30 + 3, "30 files and their folders");
    let after = state(a).await;
    let b = builder(a)
        .create_from_snapshot(&snapshots, &full.id)
        .await
        .expect("from full");
    assert_eq!(state(&b).await, before);
    snapshots.restore(&b, &inc.id).await.expect("incremental");
    assert_eq!(state(&b).await, after);
    b.delete().await.expect("delete");
}

#[cfg(feature = "spaces")]
mod s3 {
    use super::*;
    use crate::common::S3Server;
    use sandbox_fs::{ObjectSnapshotStore, Route};

    async fn round_trip(via: Via, route: Route) {
        let Some(target) = crate::common::sandbox_reaching_host_loopback(via).await else {
            return;
        };
        let server = S3Server::start().await;
        let a = &target.sandbox;
        populate(a).await;
        let before = state(a).await;
        let store = ObjectSnapshotStore::spaces(server.config()).expect("store");
        let snapshots = Snapshots::new(Arc::new(store));
        let meta = snapshots
            .create(a, &SnapshotOptions::new().route(route))
            .await
            .expect("create");
        sh(a, "printf more > more.txt; rm run.sh").await;
        let inc = snapshots
            .create(a, &SnapshotOptions::new().parent(&meta.id).route(route))
            .await
            .expect("incremental");
        let after = state(a).await;
        let b = builder(a)
            .create_from_snapshot(&snapshots, &meta.id)
            .await
            .expect("from snapshot");
        assert_eq!(state(&b).await, before);
        snapshots
            .restore_with(&b, &inc.id, route)
            .await
            .expect("chain");
        assert_eq!(state(&b).await, after);
        let listed = snapshots.list(&ListFilter::new()).await.expect("list");
        assert_eq!(listed.len(), 2);
        snapshots.delete(&inc.id).await.expect("delete");
        snapshots.delete(&meta.id).await.expect("delete");
        assert!(server.objects().is_empty(), "{:?}", server.objects());
        b.delete().await.expect("delete");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_round_trip_direct_local() {
        round_trip(Via::Local, Route::Direct).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_round_trip_console_local() {
        round_trip(Via::Local, Route::Console).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_round_trip_through_doctl_standin() {
        round_trip(Via::Doctl, Route::Auto).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_round_trip_through_api() {
        round_trip(Via::Api, Route::Auto).await;
    }

    /// URLs that expire before the sandbox uses them are a typed error, and nothing is
    /// listed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expired_urls_are_typed() {
        let Some(target) = crate::common::sandbox_reaching_host_loopback(Via::Local).await else {
            return;
        };
        let server = S3Server::start().await;
        let a = &target.sandbox;
        populate(a).await;
        let store =
            ObjectSnapshotStore::spaces(server.config().with_url_expiry(Duration::from_secs(1)))
                .expect("store");
        // Presigned URLs are dated to the second: wait on the clock passing their expiry.
        let snapshots = Snapshots::new(Arc::new(ExpiredFirst(store)));
        let err = snapshots
            .create(a, &SnapshotOptions::new().route(Route::Direct))
            .await
            .expect_err("expired");
        assert!(
            matches!(&err, Error::SnapshotFailed { source, .. } if matches!(**source, Error::UrlExpired { .. })),
            "{err:?}"
        );
        assert!(
            snapshots
                .list(&ListFilter::new())
                .await
                .expect("list")
                .is_empty()
        );
    }

    /// The sandbox is lost in the middle of a snapshot (after its archive is made, when the
    /// upload URL is signed): a typed error, nothing listed, no object left in the bucket.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sandbox_lost_mid_snapshot_leaves_nothing() {
        let Some(target) = crate::common::sandbox_reaching_host_loopback(Via::Local).await else {
            return;
        };
        let server = S3Server::start().await;
        let a = target.sandbox.clone();
        populate(&a).await;
        let store = ObjectSnapshotStore::spaces(server.config()).expect("store");
        let snapshots = Snapshots::new(Arc::new(LosesSandbox(store, a.clone())));
        let err = snapshots
            .create(&a, &SnapshotOptions::new().route(Route::Direct))
            .await
            .expect_err("lost");
        assert!(
            matches!(&err, Error::SnapshotFailed { stage, source, .. }
                if stage == "uploading the archive" && matches!(**source, Error::Exec { .. })),
            "{err:?}"
        );
        assert!(
            snapshots
                .list(&ListFilter::new())
                .await
                .expect("list")
                .is_empty()
        );
        assert!(server.objects().is_empty(), "{:?}", server.objects());
    }

    /// Deletes the sandbox when the sandbox's upload URL is signed.
    #[derive(Debug)]
    struct LosesSandbox(ObjectSnapshotStore, Sandbox);

    #[derive(Debug)]
    struct DeletingPresigner(Arc<dyn sandbox_fs::ObjectStore>, Sandbox);

    #[async_trait::async_trait]
    impl sandbox_fs::ObjectStore for DeletingPresigner {
        async fn presign_get(&self, key: &str, expires: Duration) -> sandbox_fs::Result<String> {
            self.0.presign_get(key, expires).await
        }
        async fn presign_put(&self, key: &str, expires: Duration) -> sandbox_fs::Result<String> {
            self.1.delete().await.expect("delete the sandbox");
            self.0.presign_put(key, expires).await
        }
        async fn delete(&self, key: &str) -> sandbox_fs::Result<()> {
            self.0.delete(key).await
        }
        async fn list(&self, prefix: &str) -> sandbox_fs::Result<Vec<String>> {
            self.0.list(prefix).await
        }
    }

    #[async_trait::async_trait]
    impl SnapshotStore for LosesSandbox {
        fn location(&self) -> String {
            self.0.location()
        }
        async fn put(&self, key: &str, data: Bytes) -> sandbox_fs::Result<()> {
            self.0.put(key, data).await
        }
        async fn put_file(
            &self,
            key: &str,
            path: &std::path::Path,
            size: u64,
        ) -> sandbox_fs::Result<()> {
            self.0.put_file(key, path, size).await
        }
        async fn get(&self, key: &str) -> sandbox_fs::Result<Option<Bytes>> {
            self.0.get(key).await
        }
        async fn reader(&self, key: &str) -> sandbox_fs::Result<sandbox_fs::ObjectReader> {
            self.0.reader(key).await
        }
        async fn list(&self, prefix: &str) -> sandbox_fs::Result<Vec<String>> {
            self.0.list(prefix).await
        }
        async fn delete(&self, key: &str) -> sandbox_fs::Result<()> {
            self.0.delete(key).await
        }
        fn presigner(&self) -> Option<Arc<dyn sandbox_fs::ObjectStore>> {
            self.0.presigner().map(|p| {
                Arc::new(DeletingPresigner(p, self.1.clone())) as Arc<dyn sandbox_fs::ObjectStore>
            })
        }
    }

    /// Hands the sandbox presigned URLs that have already expired.
    #[derive(Debug)]
    struct ExpiredFirst(ObjectSnapshotStore);

    #[derive(Debug)]
    struct ExpiredPresigner(Arc<dyn sandbox_fs::ObjectStore>);

    #[async_trait::async_trait]
    impl sandbox_fs::ObjectStore for ExpiredPresigner {
        async fn presign_get(&self, key: &str, _: Duration) -> sandbox_fs::Result<String> {
            let url = self.0.presign_get(key, Duration::from_secs(1)).await?;
            wait_past_one_second().await;
            Ok(url)
        }
        async fn presign_put(&self, key: &str, _: Duration) -> sandbox_fs::Result<String> {
            let url = self.0.presign_put(key, Duration::from_secs(1)).await?;
            wait_past_one_second().await;
            Ok(url)
        }
        async fn delete(&self, key: &str) -> sandbox_fs::Result<()> {
            self.0.delete(key).await
        }
        async fn list(&self, prefix: &str) -> sandbox_fs::Result<Vec<String>> {
            self.0.list(prefix).await
        }
    }

    /// Waits until the wall clock is two whole seconds further (a presigned URL's expiry is
    /// counted from its signing second).
    async fn wait_past_one_second() {
        let start = std::time::SystemTime::now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while start.elapsed().unwrap_or_default() < Duration::from_millis(2100) {
            assert!(tokio::time::Instant::now() < deadline, "clock did not move");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[async_trait::async_trait]
    impl SnapshotStore for ExpiredFirst {
        fn location(&self) -> String {
            self.0.location()
        }
        async fn put(&self, key: &str, data: Bytes) -> sandbox_fs::Result<()> {
            self.0.put(key, data).await
        }
        async fn put_file(
            &self,
            key: &str,
            path: &std::path::Path,
            size: u64,
        ) -> sandbox_fs::Result<()> {
            self.0.put_file(key, path, size).await
        }
        async fn get(&self, key: &str) -> sandbox_fs::Result<Option<Bytes>> {
            self.0.get(key).await
        }
        async fn reader(&self, key: &str) -> sandbox_fs::Result<sandbox_fs::ObjectReader> {
            self.0.reader(key).await
        }
        async fn list(&self, prefix: &str) -> sandbox_fs::Result<Vec<String>> {
            self.0.list(prefix).await
        }
        async fn delete(&self, key: &str) -> sandbox_fs::Result<()> {
            self.0.delete(key).await
        }
        fn presigner(&self) -> Option<Arc<dyn sandbox_fs::ObjectStore>> {
            self.0
                .presigner()
                .map(|p| Arc::new(ExpiredPresigner(p)) as Arc<dyn sandbox_fs::ObjectStore>)
        }
    }
}

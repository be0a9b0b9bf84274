//! Large transfers through a mocked [`ObjectStore`]: an in-memory object server on loopback
//! whose "presigned" URLs carry a token instead of a signature. Needs no `spaces` feature.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use sandbox_fs::{Error, ObjectStore, SandboxFsExt, TransferOptions};

use crate::common::{Via, bytes};

#[derive(Default)]
struct Objects {
    data: HashMap<String, Vec<u8>>,
    deleted: Vec<String>,
}

type Shared = Arc<Mutex<Objects>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Objects> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

const DENIED: &str =
    "<Error><Code>SignatureDoesNotMatch</Code><Message>bad token</Message></Error>";

fn allowed(query: &HashMap<String, String>) -> bool {
    query.get("token").map(String::as_str) == Some("good")
}

async fn get_object(
    State(shared): State<Shared>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, Vec<u8>) {
    if !allowed(&query) {
        return (StatusCode::FORBIDDEN, DENIED.as_bytes().to_vec());
    }
    match lock(&shared).data.get(&key) {
        Some(data) => (StatusCode::OK, data.clone()),
        None => (
            StatusCode::NOT_FOUND,
            b"<Error><Code>NoSuchKey</Code><Message>none</Message></Error>".to_vec(),
        ),
    }
}

async fn put_object(
    State(shared): State<Shared>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> (StatusCode, &'static str) {
    if !allowed(&query) {
        return (StatusCode::FORBIDDEN, DENIED);
    }
    lock(&shared).data.insert(key, body.to_vec());
    (StatusCode::OK, "")
}

#[derive(Debug)]
struct MockStore {
    base: String,
    token: &'static str,
    shared: Shared,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl ObjectStore for MockStore {
    async fn presign_get(&self, key: &str, _: Duration) -> sandbox_fs::Result<String> {
        Ok(format!(
            "{}/o/{}?token={}",
            self.base,
            key.replace('/', "%2F"),
            self.token
        ))
    }

    async fn presign_put(&self, key: &str, _: Duration) -> sandbox_fs::Result<String> {
        Ok(format!(
            "{}/o/{}?token={}",
            self.base,
            key.replace('/', "%2F"),
            self.token
        ))
    }

    async fn delete(&self, key: &str) -> sandbox_fs::Result<()> {
        let mut objects = lock(&self.shared);
        objects.data.remove(key);
        objects.deleted.push(key.to_owned());
        Ok(())
    }
}

async fn serve(shared: Shared) -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new()
        .route("/o/{key}", get(get_object).put(put_object))
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_transfers_through_a_mocked_store() {
    let Some(target) = crate::common::sandbox_reaching_host_loopback(Via::Local).await else {
        return;
    };
    let shared: Shared = Arc::default();
    let (base, server) = serve(Arc::clone(&shared)).await;
    let store = Arc::new(MockStore {
        base: base.clone(),
        token: "good",
        shared: Arc::clone(&shared),
    });
    let fs = target
        .sandbox
        .fs()
        .with_object_store(store)
        .with_large_file_threshold(50_000);
    let dir = tempfile::tempdir().expect("temp");
    let local = dir.path().join("in.bin");
    let data = bytes(400_000, 9);
    std::fs::write(&local, &data).expect("local");

    assert_eq!(
        fs.upload(&local, "big/in.bin").await.expect("upload"),
        400_000
    );
    assert_eq!(fs.read("big/in.bin").await.expect("read"), data);
    let back = dir.path().join("back.bin");
    assert_eq!(
        fs.download("big/in.bin", &back).await.expect("download"),
        400_000
    );
    assert_eq!(std::fs::read(&back).expect("read back"), data);
    {
        let objects = lock(&shared);
        assert_eq!(objects.deleted.len(), 2, "one object per transfer, removed");
        assert!(objects.data.is_empty());
        assert!(
            objects.deleted[0].contains("/uploads/"),
            "{:?}",
            objects.deleted
        );
        assert!(
            objects.deleted[1].contains("/downloads/"),
            "{:?}",
            objects.deleted
        );
    }

    // A store that refuses: the error is classified, the object removed, nothing written.
    let refusing = target.sandbox.fs().with_object_store(Arc::new(MockStore {
        base,
        token: "bad",
        shared: Arc::clone(&shared),
    }));
    let err = refusing
        .upload_large(&local, "never.bin", &TransferOptions::new())
        .await
        .expect_err("refused");
    assert!(matches!(err, Error::BadCredentials { .. }), "{err}");
    assert!(!fs.exists("never.bin").await.expect("exists"));
    assert_eq!(lock(&shared).deleted.len(), 3);
    server.abort();
}

//! Snapshot and restore times: a 100 MB working dir and 3,000 small files, full and
//! incremental after changing 1 % of the files, on the local store (through the console) and
//! on an S3 server on loopback (s3s-fs, straight between sandbox and store), next to a plain
//! download of the same archive; and a wake (create + restore) against a cold create through
//! the emulator.
//!
//! ```sh
//! cargo run --release -p sandbox-fs --features spaces --example bench_snapshots [local|s3|wake]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use appspec::{ComponentType, ImageKind, TemplateDefaults};
use sandbox_core::{ExecRequest, PoolConfig, PoolManager, Sandbox, SandboxBuilder, Template};
use sandbox_fs::{
    ObjectSnapshotStore, Route, SandboxFsExt, SnapshotOptions, Snapshots, TransferOptions,
};
use sandbox_testkit::Via;

/// How long the emulator takes to deploy a sandbox in the wake figures.
const WAKE_PACE: Duration = Duration::from_secs(10);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn builder(platform: &Arc<dyn doctl_driver::Platform>, name: &str) -> SandboxBuilder {
    Sandbox::builder()
        .image(ImageKind::Python)
        .component_type(ComponentType::Worker)
        .name(name)
        .defaults(TemplateDefaults::default())
        .timeout(Duration::from_secs(120))
        .platform(Arc::clone(platform))
}

async fn sh(sandbox: &Sandbox, script: &str) -> Result<(), BoxError> {
    let out = sandbox
        .exec_with(
            ExecRequest::argv(["sh", "-c", script])
                .cwd("/home/sandbox/app")
                .timeout(Duration::from_secs(600)),
        )
        .await?;
    if !out.success() {
        return Err(format!("`{script}`: {}", out.stderr_text()).into());
    }
    Ok(())
}

const BIG: &str = "mkdir -p big && i=0; while [ $i -lt 100 ]; do head -c 1000000 /dev/urandom > big/part$i; i=$((i+1)); done";
const BIG_CHANGE: &str = "head -c 1000000 /dev/urandom > big/part0";
const SMALL: &str = "mkdir -p many && i=0; while [ $i -lt 3000 ]; do printf 'file %s of the tree\\n' $i > many/f$i; i=$((i+1)); done";
const SMALL_CHANGE: &str =
    "i=0; while [ $i -lt 30 ]; do printf 'changed %s\\n' $i > many/f$i; i=$((i+1)); done";

fn secs(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

async fn case(
    snapshots: &Snapshots,
    platform: &Arc<dyn doctl_driver::Platform>,
    store: &str,
    name: &str,
    fill: &str,
    change: &str,
    route: Route,
) -> Result<(), BoxError> {
    let a = builder(platform, &format!("bench-a-{}", name.len()))
        .create()
        .await?;
    sh(&a, fill).await?;
    let start = Instant::now();
    let full = snapshots
        .create(&a, &SnapshotOptions::new().route(route))
        .await?;
    let create_full = secs(start);
    sh(&a, change).await?;
    let start = Instant::now();
    let inc = snapshots
        .create(&a, &SnapshotOptions::new().parent(&full.id).route(route))
        .await?;
    let create_inc = secs(start);
    let b = builder(platform, &format!("bench-b-{}", name.len()))
        .create()
        .await?;
    let start = Instant::now();
    snapshots.restore_with(&b, &full.id, route).await?;
    let restore_full = secs(start);
    let start = Instant::now();
    snapshots.restore_with(&b, &inc.id, route).await?;
    let restore_chain = secs(start);
    println!(
        "{store:6} {name:12} full: {:>10} B archive, create {create_full:6.2} s, restore {restore_full:6.2} s | incremental: {:>9} B ({:.2} % of full), create {create_inc:6.2} s, restore of the chain {restore_chain:6.2} s",
        full.archive_bytes,
        inc.archive_bytes,
        inc.archive_bytes as f64 * 100.0 / full.archive_bytes as f64,
    );
    a.delete().await?;
    b.delete().await?;
    Ok(())
}

/// A plain download of the archive of a fresh 100 MB snapshot: with `curl` in the sandbox for
/// S3, with a console upload of the stored file for the local store.
async fn plain_download(
    snapshots: &Snapshots,
    platform: &Arc<dyn doctl_driver::Platform>,
    store_name: &str,
    s3: Option<&Arc<dyn sandbox_fs::ObjectStore>>,
    local_root: Option<&std::path::Path>,
) -> Result<(), BoxError> {
    let a = builder(platform, "bench-plain").create().await?;
    sh(&a, BIG).await?;
    let meta = snapshots.create(&a, &SnapshotOptions::new()).await?;
    let key = format!("snapshots/{}/archive.tar.gz", meta.id);
    let start = Instant::now();
    if let Some(store) = s3 {
        let url = store.presign_get(&key, Duration::from_secs(600)).await?;
        let out = a
            .exec_with(
                ExecRequest::argv(["sh", "-c", "curl -sSf -o /tmp/plain.tar.gz -K -"])
                    .stdin(format!("url = \"{url}\"\n"))
                    .timeout(Duration::from_secs(600)),
            )
            .await?;
        if !out.success() {
            return Err(out.stderr_text().into());
        }
    } else if let Some(root) = local_root {
        a.fs()
            .without_object_store()
            .upload_with(
                root.join(&key),
                "/tmp/plain.tar.gz",
                &TransferOptions::new(),
            )
            .await?;
    }
    let plain = secs(start);
    let b = builder(platform, "bench-plain-b").create().await?;
    let start = Instant::now();
    snapshots.restore(&b, &meta.id).await?;
    let restore = secs(start);
    println!(
        "{store_name:6} plain download of the {} B archive {plain:6.2} s; restore {restore:6.2} s ({:.2}x)",
        meta.archive_bytes,
        restore / plain
    );
    a.delete().await?;
    b.delete().await?;
    snapshots.delete(&meta.id).await?;
    Ok(())
}

async fn s3_server() -> Result<(sandbox_fs::SpacesConfig, tempfile::TempDir), BoxError> {
    let root = tempfile::tempdir()?;
    std::fs::create_dir(root.path().join("bench"))?;
    let s3 = s3s_fs::FileSystem::new(root.path()).map_err(|e| format!("s3s-fs: {e:?}"))?;
    let mut builder = s3s::service::S3ServiceBuilder::new(s3);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(
        "AKIDBENCH",
        "bench-secret",
    ));
    let service = builder.build();
    let app =
        axum::Router::new().fallback_service(axum::error_handling::HandleError::new(
            service,
            |e: s3s::HttpError| async move {
                (http::StatusCode::INTERNAL_SERVER_ERROR, format!("{e:?}"))
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = sandbox_fs::SpacesConfig::new("bench", "nyc3", "AKIDBENCH", "bench-secret")
        .with_endpoint(format!("http://{addr}"));
    Ok((config, root))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let local = sandbox_testkit::target_on_host_network(Via::Local)
        .await
        .ok_or("local sandboxes cannot run here")?;
    let platform = Arc::clone(&local.platform);
    let only = std::env::args().nth(1).unwrap_or_default();

    let dir = tempfile::tempdir()?;
    let snapshots = Snapshots::local(dir.path());
    if only.is_empty() || only == "local" {
        case(
            &snapshots,
            &platform,
            "local",
            "100 MB",
            BIG,
            BIG_CHANGE,
            Route::Auto,
        )
        .await?;
        case(
            &snapshots,
            &platform,
            "local",
            "3000 files",
            SMALL,
            SMALL_CHANGE,
            Route::Auto,
        )
        .await?;
        plain_download(&snapshots, &platform, "local", None, Some(dir.path())).await?;
    }

    let (config, _s3_root) = s3_server().await?;
    let store: Arc<dyn sandbox_fs::ObjectStore> =
        Arc::new(sandbox_fs::SpacesStore::new(config.clone()));
    let s3 = Snapshots::new(Arc::new(ObjectSnapshotStore::spaces(config)?));
    if only.is_empty() || only == "s3" {
        case(
            &s3,
            &platform,
            "s3",
            "100 MB",
            BIG,
            BIG_CHANGE,
            Route::Direct,
        )
        .await?;
        case(
            &s3,
            &platform,
            "s3",
            "3000 files",
            SMALL,
            SMALL_CHANGE,
            Route::Direct,
        )
        .await?;
        plain_download(&s3, &platform, "s3", Some(&store), None).await?;
    }
    if !only.is_empty() && only != "wake" {
        return Ok(());
    }

    // Wake against a cold create, through the emulator (DoApi driver), whose deployments take
    // WAKE_PACE as App Platform's take a minute; then a wake through a warm pool.
    let emulated = sandbox_testkit::target_paced(Via::Api, WAKE_PACE)
        .await
        .ok_or("local sandboxes cannot run here")?;
    let platform = Arc::clone(&emulated.platform);
    let a = builder(&platform, "bench-wake-a").create().await?;
    sh(&a, SMALL).await?;
    let record = snapshots.hibernate(&a).await?;
    let python = Template::new(ImageKind::Python, ComponentType::Worker);
    let manager = PoolManager::builder()
        .platform(Arc::clone(&platform))
        .defaults(TemplateDefaults::default())
        .sweep_interval(None)
        .pool(python.clone(), PoolConfig::new().min_ready(1).max_ready(1))
        .build()?;
    manager.warm_up(Duration::from_secs(300)).await?;
    let start = Instant::now();
    let cold = builder(&platform, "bench-cold").create().await?;
    let cold_s = secs(start);
    let start = Instant::now();
    let woken = snapshots
        .wake(builder(&platform, "bench-woken"), &record)
        .await?;
    let wake_s = secs(start);
    let start = Instant::now();
    let pooled = snapshots
        .acquire_with_snapshot(
            &manager,
            &python,
            &record.snapshot_id,
            Duration::from_secs(300),
        )
        .await?;
    let pooled_s = secs(start);
    let start = Instant::now();
    snapshots.restore(&cold, &record.snapshot_id).await?;
    let restore_only = secs(start);
    println!(
        "emulator (DoApi, deployments of {} s): cold create {cold_s:.2} s; wake (create + restore of 3000 files) {wake_s:.2} s; wake through a warm pool (acquire_with_snapshot) {pooled_s:.2} s; restore into a running sandbox {restore_only:.2} s",
        WAKE_PACE.as_secs()
    );
    pooled.delete().await?;
    for s in [cold, woken] {
        s.delete().await?;
    }
    manager.shutdown().await?;
    Ok(())
}

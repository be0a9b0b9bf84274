//! Test setup: sandboxes on the local provider and through the emulator, and an
//! S3-compatible server (s3s-fs) on loopback.

use std::sync::Arc;
use std::time::Duration;

use appspec::{ComponentType, ImageKind, TemplateDefaults};
use sandbox_core::Sandbox;

/// A sandbox and what must outlive it (the platform; dropping it deletes every sandbox).
pub struct Target {
    pub sandbox: Sandbox,
    _guard: sandbox_testkit::Target,
}

pub use sandbox_testkit::Via;

/// A fresh python worker sandbox reached the given way, or `None` (with a printed reason)
/// where the kernel cannot run local sandboxes.
pub async fn sandbox(via: Via) -> Option<Target> {
    sandbox_with_env(via, &[]).await
}

/// [`sandbox`] with these variables in the sandbox's environment.
pub async fn sandbox_with_env(via: Via, env: &[(&str, &str)]) -> Option<Target> {
    let guard = sandbox_testkit::target(via).await?;
    Some(sandbox_in(guard, env).await)
}

/// [`sandbox`] on the host's network: for tests whose object store listens on the host's
/// loopback, which a sandbox's own network cannot reach.
pub async fn sandbox_reaching_host_loopback(via: Via) -> Option<Target> {
    let guard = sandbox_testkit::target_on_host_network(via).await?;
    Some(sandbox_in(guard, &[]).await)
}

async fn sandbox_in(guard: sandbox_testkit::Target, env: &[(&str, &str)]) -> Target {
    let name = format!("fs-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let mut builder = Sandbox::builder();
    for (key, value) in env {
        builder = builder.env(*key, *value);
    }
    let sandbox = builder
        .image(ImageKind::Python)
        .component_type(ComponentType::Worker)
        .name(name)
        .defaults(TemplateDefaults::default())
        .timeout(Duration::from_secs(120))
        .platform(Arc::clone(&guard.platform))
        .create()
        .await
        .expect("create sandbox");
    Target {
        sandbox,
        _guard: guard,
    }
}

/// An S3-compatible server (s3s-fs over a temp folder) on 127.0.0.1, with one bucket and one
/// key pair. Stops when dropped.
#[cfg_attr(not(feature = "spaces"), allow(dead_code))]
pub struct S3Server {
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    pub root: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

#[cfg_attr(not(feature = "spaces"), allow(dead_code))]
impl S3Server {
    pub async fn start() -> S3Server {
        let root = tempfile::tempdir().expect("s3 root");
        let bucket = "sandbox-test".to_owned();
        std::fs::create_dir(root.path().join(&bucket)).expect("bucket folder");
        let access_key = "AKIDSANDBOXTEST".to_owned();
        let secret_key = format!("secret-{}", uuid::Uuid::new_v4().simple());
        let fs = s3s_fs::FileSystem::new(root.path()).expect("s3s-fs");
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(
            access_key.clone(),
            secret_key.clone(),
        ));
        let service = builder.build();
        let app = axum::Router::new().fallback_service(axum::error_handling::HandleError::new(
            service,
            |e: s3s::HttpError| async move {
                (
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    format!("s3 service error: {e:?}"),
                )
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        S3Server {
            endpoint: format!("http://{addr}"),
            bucket,
            access_key,
            secret_key,
            root,
            stop: Some(stop),
        }
    }

    pub fn config(&self) -> sandbox_fs::SpacesConfig {
        sandbox_fs::SpacesConfig::new(&self.bucket, "nyc3", &self.access_key, &self.secret_key)
            .with_endpoint(&self.endpoint)
    }

    /// The objects in the bucket (relative paths of the files s3s-fs keeps).
    pub fn objects(&self) -> Vec<String> {
        fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, base, out);
                } else if let Ok(rel) = path.strip_prefix(base) {
                    let rel = rel.to_string_lossy().into_owned();
                    if !rel.contains(".s3s") && !rel.ends_with(".json") {
                        out.push(rel);
                    }
                }
            }
        }
        let mut out = Vec::new();
        let base = self.root.path().join(&self.bucket);
        walk(&base, &base, &mut out);
        out
    }
}

#[cfg_attr(not(feature = "spaces"), allow(dead_code))]
impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Deterministic bytes covering every value (a simple generator, no dependency).
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect()
}

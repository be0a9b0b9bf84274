//! `sandbox snapshot`, `create --from-snapshot`, `hibernate` and `wake`: files come back byte
//! for byte, on the local provider with no configuration and through the emulator.

use crate::common::TestContext;

/// Every path's kind, mode, size and link target, and every file's SHA-256.
const STATE: &str = r"cd /home/sandbox/app
find . ! -type d -printf '%y %m %s %p -> %l\n' | sort
find . -type d -printf '%y %m %p\n' | sort
find . -type f -print0 | sort -z | xargs -0 -r sha256sum --";

const WRITE: &str = r#"set -e
cd /home/sandbox/app
head -c 200000 /dev/urandom > random.bin
printf 'SECRET=kept\n' > .env
mkdir -p "empty dir" src
printf 'print(1)\n' > "src/it's main.py"
chmod 751 "src/it's main.py"
ln -s "src/it's main.py" link
mkdir -p __pycache__; printf x > __pycache__/c.pyc"#;

fn flow(ctx: &TestContext) {
    ctx.ok(["create", "--name", "orig"]);
    ctx.ok(["exec", "orig", "--", WRITE]);
    let before = ctx.ok(["exec", "orig", "--", STATE]);
    let meta: serde_json::Value = serde_json::from_str(
        &ctx.ok(["snapshot", "create", "orig", "--tag", "case=cli", "--json"]),
    )
    .expect("json");
    let id = meta["id"].as_str().expect("id").to_owned();
    assert_eq!(meta["kind"], "full");
    let listed: serde_json::Value =
        serde_json::from_str(&ctx.ok(["snapshot", "list", "--tag", "case=cli", "--json"]))
            .expect("json");
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(ctx.ok(["snapshot", "show", &id]).contains(&id));
    ctx.ok(["delete", "orig"]);
    ctx.ok(["create", "--name", "back", "--from-snapshot", &id]);
    let after = ctx.ok(["exec", "back", "--", STATE]);
    let without_cache: String = before
        .lines()
        .filter(|l| !l.contains("__pycache__"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(after, without_cache, "byte for byte, caches left out");

    // An incremental snapshot and a restore by name.
    ctx.ok([
        "exec",
        "back",
        "--",
        "printf more > /home/sandbox/app/more.txt",
    ]);
    let inc = ctx.ok(["snapshot", "create", "back", "--parent", &id]);
    let inc = inc.trim();
    ctx.ok(["snapshot", "restore", "back", &id]);
    assert_eq!(ctx.ok(["exec", "back", "--", STATE]), without_cache);
    ctx.ok(["snapshot", "restore", "back", inc]);
    assert!(ctx.ok(["exec", "back", "--", STATE]).contains("more.txt"));

    // Hibernate and wake.
    let hibernated = ctx.ok(["hibernate", "back"]);
    let hibernated = hibernated.trim();
    assert_eq!(ctx.ok(["list", "--json"]).trim(), "[]");
    ctx.ok(["wake", hibernated, "--name", "woken"]);
    assert!(ctx.ok(["exec", "woken", "--", STATE]).contains("more.txt"));

    // Unknown ids are errors, and a failed create leaves nothing.
    let out = ctx.run(["create", "--name", "never", "--from-snapshot", "snap-nope"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no snapshot `snap-nope`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = ctx.ok(["list", "--json"]);
    assert!(!list.contains("never"), "{list}");
    ctx.ok(["delete", "woken"]);
    ctx.ok(["snapshot", "delete", inc]);
    ctx.ok(["snapshot", "delete", hibernated]);
    ctx.ok(["snapshot", "delete", &id]);
    assert_eq!(ctx.ok(["snapshot", "list", "--json"]).trim(), "[]");
}

#[test]
fn snapshot_flow_on_the_local_provider_with_no_configuration() {
    let Some(ctx) = TestContext::local() else {
        return;
    };
    flow(&ctx);
    assert!(
        ctx.path().join("data/do-app-sandbox/snapshots").is_dir(),
        "snapshots live under XDG_DATA_HOME"
    );
}

#[test]
fn snapshot_flow_through_the_emulator() {
    let Some(mut ctx) = TestContext::local() else {
        return;
    };
    let _emulator = ctx.start_emulator();
    flow(&ctx);
}

/// An S3 server (s3s-fs) on 127.0.0.1 in a thread of its own, stopped when dropped.
#[cfg(feature = "spaces")]
struct S3 {
    env: Vec<(String, String)>,
    root: tempfile::TempDir,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[cfg(feature = "spaces")]
impl S3 {
    fn start() -> S3 {
        let root = tempfile::tempdir().expect("s3 root");
        std::fs::create_dir(root.path().join("snaps")).expect("bucket");
        let (ready_tx, ready) = std::sync::mpsc::channel::<String>();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let dir = root.path().to_owned();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let fs = s3s_fs::FileSystem::new(&dir).expect("s3s-fs");
                let mut builder = s3s::service::S3ServiceBuilder::new(fs);
                builder.set_auth(s3s::auth::SimpleAuth::from_single("AKIDCLI", "cli-secret"));
                let service = builder.build();
                let app =
                    axum::Router::new().fallback_service(axum::error_handling::HandleError::new(
                        service,
                        |e: s3s::HttpError| async move {
                            (http::StatusCode::INTERNAL_SERVER_ERROR, format!("{e:?}"))
                        },
                    ));
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let addr = listener.local_addr().expect("addr");
                ready_tx.send(format!("http://{addr}")).expect("ready");
                let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
                std::thread::spawn(move || {
                    let _ = stopped.recv();
                    let _ = done_tx.send(());
                });
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = done_rx.await;
                    })
                    .await;
            });
        });
        let endpoint = ready
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the S3 server starts");
        let env = [
            ("SPACES_ACCESS_KEY", "AKIDCLI"),
            ("SPACES_SECRET_KEY", "cli-secret"),
            ("SPACES_BUCKET", "snaps"),
            ("SPACES_REGION", "nyc3"),
            ("SPACES_ENDPOINT", endpoint.as_str()),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        S3 {
            env,
            root,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Files in the bucket other than s3s-fs's own bookkeeping.
    fn objects(&self) -> usize {
        fn walk(dir: &std::path::Path) -> usize {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| {
                    let path = e.path();
                    if path.is_dir() {
                        walk(&path)
                    } else {
                        usize::from(!path.to_string_lossy().contains(".s3s"))
                    }
                })
                .sum()
        }
        walk(&self.root.path().join("snaps"))
    }
}

#[cfg(feature = "spaces")]
impl Drop for S3 {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Through the emulator with snapshots in an S3 bucket: the sandbox's own network cannot
/// reach the host's loopback, so the archives fall back to the console and the host carries
/// them to the bucket.
#[cfg(feature = "spaces")]
#[test]
fn snapshot_flow_through_the_emulator_with_an_s3_server() {
    let Some(mut ctx) = TestContext::local() else {
        return;
    };
    let s3 = S3::start();
    ctx.env.extend(s3.env.iter().cloned());
    let _emulator = ctx.start_emulator();
    flow(&ctx);
    assert!(
        !ctx.path().join("data/do-app-sandbox/snapshots").exists(),
        "nothing in the local folder store"
    );
    assert_eq!(s3.objects(), 0, "every object deleted with its snapshot");
}

/// Some `SPACES_*` variables but not all: a usage error naming what is missing.
#[cfg(feature = "spaces")]
#[test]
fn a_partial_spaces_configuration_is_a_usage_error() {
    let mut ctx = TestContext::bare();
    ctx.env.push(("SPACES_BUCKET".into(), "b".into()));
    let out = ctx.run(["snapshot", "list"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SPACES_ACCESS_KEY"), "{stderr}");
}

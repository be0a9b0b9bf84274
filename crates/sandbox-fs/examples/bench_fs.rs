//! Throughput of file transfers: through the console (1 MB and 10 MB files, and a folder of
//! 1002 files) on the local provider and through the App Platform emulator (doctl stand-in
//! and DoApi), and through an
//! S3-compatible store on loopback (100 MB, s3s-fs), next to a plain disk copy.
//!
//! ```sh
//! cargo run --release -p sandbox-fs --features spaces --example bench_fs -- bench-fs.json
//! ```
//!
//! Prints MB/s (1 MB = 10^6 bytes) and writes the figures as JSON to the path given. A second
//! argument, `console`, `folders` or `spaces`, runs only that part.

use std::sync::Arc;
use std::time::{Duration, Instant};

use appspec::{ComponentType, ImageKind, TemplateDefaults};
use doctl_driver::{DoApi, Doctl, Platform};
use sandbox_core::Sandbox;
use sandbox_fs::SandboxFsExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Copy)]
enum Via {
    Local,
    Doctl,
    Api,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Local => "local",
            Via::Doctl => "emulator-doctl-standin",
            Via::Api => "emulator-doapi",
        }
    }
}

struct Figure {
    via: &'static str,
    path: &'static str,
    content: &'static str,
    direction: &'static str,
    bytes: u64,
    seconds: f64,
}

impl Figure {
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds
    }
}

fn data(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Text that compresses the way source code and logs do (about 4 to 1 with gzip -1).
fn text(len: usize) -> Vec<u8> {
    let words = [
        "let", "value", "return", "self", "config", "error", "while", "import", "def", "print",
        "sandbox", "path", "file", "None", "true", "if", "else", "for", "in", "match",
    ];
    let noise = data(len);
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0;
    while out.len() < len {
        let n = noise[i % len] as usize;
        out.extend_from_slice(words[n % words.len()].as_bytes());
        out.push(if n % 9 == 0 { b'\n' } else { b' ' });
        if n % 5 == 0 {
            out.extend_from_slice(format!("{} ", n * 37).as_bytes());
        }
        i += 1;
    }
    out.truncate(len);
    out
}

async fn sandbox(
    via: Via,
    dir: &std::path::Path,
) -> Result<(Sandbox, Box<dyn std::any::Any>), BoxError> {
    let backend = sandbox_local::LocalPlatform::new(sandbox_local::LocalConfig::new(dir))?;
    backend.check_host()?;
    let (platform, guard): (Arc<dyn Platform>, Box<dyn std::any::Any>) = match via {
        Via::Local => (Arc::new(backend), Box::new(())),
        Via::Doctl | Via::Api => {
            let emulator = appplatform_emulator::Emulator::builder()
                .backend(Arc::new(backend))
                .pace(Duration::ZERO)
                .start()
                .await?;
            let platform: Arc<dyn Platform> = if let Via::Doctl = via {
                Arc::new(Doctl::new(
                    emulator
                        .doctl_config()?
                        .with_command_timeout(Duration::from_secs(120)),
                ))
            } else {
                Arc::new(DoApi::new(
                    emulator
                        .doapi_config()
                        .with_request_timeout(Duration::from_secs(120)),
                )?)
            };
            (platform, Box::new(emulator))
        }
    };
    let sandbox = Sandbox::builder()
        .image(ImageKind::Python)
        .component_type(ComponentType::Worker)
        .name(format!("bench-fs-{}", via.name().len()))
        .defaults(TemplateDefaults::default())
        .timeout(Duration::from_secs(120))
        .platform(platform)
        .create()
        .await?;
    Ok((sandbox, guard))
}

async fn console(via: Via, figures: &mut Vec<Figure>) -> Result<(), BoxError> {
    let state = tempfile::tempdir()?;
    let (sandbox, guard) = sandbox(via, state.path()).await?;
    let fs = sandbox.fs().without_object_store();
    fs.write("warm", b"up").await?;
    let work = tempfile::tempdir()?;
    for (content, size) in [
        ("random", 1_000_000usize),
        ("random", 10_000_000),
        ("text", 1_000_000),
        ("text", 10_000_000),
    ] {
        let input = work.path().join(format!("in-{content}-{size}"));
        let output = work.path().join(format!("out-{content}-{size}"));
        let bytes = if content == "text" {
            text(size)
        } else {
            data(size)
        };
        std::fs::write(&input, &bytes)?;
        let start = Instant::now();
        fs.upload(&input, "bench.bin").await?;
        let up = start.elapsed().as_secs_f64();
        let start = Instant::now();
        fs.download("bench.bin", &output).await?;
        let down = start.elapsed().as_secs_f64();
        if std::fs::read(&output)? != bytes {
            return Err(format!("{}: {size} bytes came back different", via.name()).into());
        }
        for (direction, seconds) in [("upload", up), ("download", down)] {
            figures.push(Figure {
                via: via.name(),
                path: "console",
                content,
                direction,
                bytes: size as u64,
                seconds,
            });
        }
    }
    sandbox.delete().await?;
    drop(guard);
    Ok(())
}

/// A source-like tree: 1000 text files of 8 kB in 20 folders, and two 5 MB random files.
fn make_tree(root: &std::path::Path) -> Result<u64, BoxError> {
    let mut total = 0u64;
    let page = text(8_000);
    for i in 0..1000 {
        let dir = root.join(format!("pkg{}", i % 20));
        std::fs::create_dir_all(&dir)?;
        let mut content = page.clone();
        content.extend_from_slice(format!("{i}\n").as_bytes());
        total += content.len() as u64;
        std::fs::write(dir.join(format!("module{i}.py")), content)?;
    }
    for name in ["a.bin", "b.bin"] {
        let blob = data(5_000_000);
        total += blob.len() as u64;
        std::fs::write(root.join(name), blob)?;
    }
    Ok(total)
}

/// Folder transfers of [`make_tree`]: the median of three uploads and of three downloads.
async fn folders(via: Via, figures: &mut Vec<Figure>) -> Result<(), BoxError> {
    let state = tempfile::tempdir()?;
    let (sandbox, guard) = sandbox(via, state.path()).await?;
    let fs = sandbox.fs().without_object_store();
    fs.write("warm", b"up").await?;
    let work = tempfile::tempdir()?;
    let tree = work.path().join("tree");
    let bytes = make_tree(&tree)?;
    let options = sandbox_fs::DirOptions::new();
    let mut ups = Vec::new();
    let mut downs = Vec::new();
    for round in 0..3 {
        let start = Instant::now();
        fs.upload_dir(&tree, &format!("tree{round}"), &options)
            .await?;
        ups.push(start.elapsed().as_secs_f64());
        let back = work.path().join(format!("back{round}"));
        let start = Instant::now();
        fs.download_dir(&format!("tree{round}"), &back, &options)
            .await?;
        downs.push(start.elapsed().as_secs_f64());
        if std::fs::read(back.join("pkg7/module7.py"))?
            != std::fs::read(tree.join("pkg7/module7.py"))?
            || std::fs::read(back.join("b.bin"))? != std::fs::read(tree.join("b.bin"))?
        {
            return Err(format!("{}: the folder came back different", via.name()).into());
        }
    }
    for (direction, mut times) in [("upload", ups), ("download", downs)] {
        times.sort_by(f64::total_cmp);
        figures.push(Figure {
            via: via.name(),
            path: "folder",
            content: "tree",
            direction,
            bytes,
            seconds: times[1],
        });
    }
    sandbox.delete().await?;
    drop(guard);
    Ok(())
}

#[cfg(feature = "spaces")]
async fn spaces(figures: &mut Vec<Figure>) -> Result<(), BoxError> {
    use sandbox_fs::{FileSystem, TransferOptions};
    const SIZE: usize = 100_000_000;
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
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let config = sandbox_fs::SpacesConfig::new("bench", "nyc3", "AKIDBENCH", "bench-secret")
        .with_endpoint(format!("http://{addr}"));

    let state = tempfile::tempdir()?;
    let (sandbox, guard) = sandbox(Via::Local, state.path()).await?;
    let fs: FileSystem = sandbox.fs().with_spaces(config);
    let work = tempfile::tempdir()?;
    let input = work.path().join("in");
    let output = work.path().join("out");
    std::fs::write(&input, data(SIZE))?;

    // The baseline: the same bytes copied from disk to disk on this machine.
    let start = Instant::now();
    std::fs::copy(&input, work.path().join("copy"))?;
    let copy = start.elapsed().as_secs_f64();
    std::fs::remove_file(work.path().join("copy"))?;
    figures.push(Figure {
        via: "host",
        path: "disk-copy",
        content: "random",
        direction: "copy",
        bytes: SIZE as u64,
        seconds: copy,
    });

    // The moment the host's leg has streamed every byte (the first report of done == total).
    let host_leg = || {
        let mark = Arc::new(std::sync::Mutex::new(None::<Instant>));
        let seen = Arc::clone(&mark);
        let options = TransferOptions::new().progress(move |done, total| {
            if done == total {
                let mut slot = seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                slot.get_or_insert_with(Instant::now);
            }
        });
        (mark, options)
    };
    let (mark, options) = host_leg();
    let start = Instant::now();
    fs.upload_large(&input, "big.bin", &options).await?;
    let up = start.elapsed().as_secs_f64();
    if let Some(at) = *mark
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        println!(
            "upload_large: host to store {:.3} s, store to sandbox {:.3} s",
            (at - start).as_secs_f64(),
            up - (at - start).as_secs_f64()
        );
    }
    let (mark, options) = host_leg();
    let start = Instant::now();
    fs.download_large("big.bin", &output, &options).await?;
    let down = start.elapsed().as_secs_f64();
    if let Some(at) = *mark
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        println!(
            "download_large: sandbox to store and store to host {:.3} s (host leg ends)",
            (at - start).as_secs_f64()
        );
    }
    if std::fs::metadata(&output)?.len() != SIZE as u64
        || std::fs::read(&input)? != std::fs::read(&output)?
    {
        return Err("100 MB came back different".into());
    }
    for (direction, seconds) in [("upload", up), ("download", down)] {
        figures.push(Figure {
            via: "local",
            path: "spaces",
            content: "random",
            direction,
            bytes: SIZE as u64,
            seconds,
        });
    }
    sandbox.delete().await?;
    drop(guard);
    server.abort();
    Ok(())
}

#[cfg(not(feature = "spaces"))]
async fn spaces(_: &mut Vec<Figure>) -> Result<(), BoxError> {
    eprintln!("(build with --features spaces for the object store figures)");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let out = std::env::args().nth(1);
    let only = std::env::args().nth(2).unwrap_or_default();
    let mut figures = Vec::new();
    if only.is_empty() || only == "console" {
        for via in [Via::Local, Via::Doctl, Via::Api] {
            console(via, &mut figures).await?;
        }
    }
    if only.is_empty() || only == "folders" {
        for via in [Via::Local, Via::Doctl, Via::Api] {
            folders(via, &mut figures).await?;
        }
    }
    if only.is_empty() || only == "spaces" {
        spaces(&mut figures).await?;
    }
    println!(
        "{:<24} {:<10} {:<7} {:<9} {:>11} {:>9} {:>9}",
        "via", "path", "content", "direction", "bytes", "seconds", "MB/s"
    );
    let mut json = Vec::new();
    for f in &figures {
        println!(
            "{:<24} {:<10} {:<7} {:<9} {:>11} {:>9.3} {:>9.2}",
            f.via,
            f.path,
            f.content,
            f.direction,
            f.bytes,
            f.seconds,
            f.mb_per_s()
        );
        json.push(serde_json::json!({
            "via": f.via,
            "path": f.path,
            "content": f.content,
            "direction": f.direction,
            "bytes": f.bytes,
            "seconds": f.seconds,
            "mb_per_s": f.mb_per_s(),
        }));
    }
    if let Some(path) = out {
        std::fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")?;
        println!("wrote {path}");
    }
    Ok(())
}

//! Client memory while a sandbox streams 256 MiB to a reader that stops reading for a while.
//!
//! ```sh
//! cargo run --release -p sandbox-core --example slow_reader
//! ```
//!
//! Streams `head -c 268435456 /dev/zero` from a local sandbox through [`Sandbox::exec_stream`]
//! twice: read as fast as possible, then read one chunk, sleep 20 s, and read the rest. Prints
//! the bytes received, the time taken and the process's peak resident memory (`VmHWM`) after
//! each run. The flow-control window keeps the sleeping reader's memory where the fast one's
//! is; without it the sandbox would run ahead during the sleep and the client would buffer
//! everything it sent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use appspec::TemplateDefaults;
use sandbox_core::{ExecEvent, ExecRequest, Sandbox};

const TOTAL: u64 = 256 << 20;

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn stream(sandbox: &Sandbox, pause: Option<Duration>) -> Result<u64, sandbox_core::Error> {
    let request = ExecRequest::shell(format!("head -c {TOTAL} /dev/zero"));
    let mut events = sandbox.exec_stream(request).await?;
    let mut received = 0u64;
    let mut pause = pause;
    while let Some(event) = events.next_event().await {
        match event? {
            ExecEvent::Stdout(chunk) => {
                received += chunk.len() as u64;
                if let Some(pause) = pause.take() {
                    tokio::time::sleep(pause).await;
                }
            }
            ExecEvent::Stderr(_) => {}
            ExecEvent::Exit(status) => assert!(status.success(), "{status}"),
        }
    }
    Ok(received)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let state = tempfile::tempdir()?;
    let local = sandbox_local::LocalPlatform::new(sandbox_local::LocalConfig::new(state.path()))?;
    local.check_host()?;
    let sandbox = Sandbox::builder()
        .defaults(TemplateDefaults::default())
        .name(format!(
            "slow-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ))
        .platform(Arc::new(local))
        .create()
        .await?;
    sandbox.exec("true").await?;
    println!("before: peak RSS {} KiB", peak_rss_kib());
    for (label, pause) in [
        ("fast reader", None),
        (
            "reader sleeping 20 s after its first chunk",
            Some(Duration::from_secs(20)),
        ),
    ] {
        let start = Instant::now();
        let result = stream(&sandbox, pause).await;
        let elapsed = start.elapsed();
        match result {
            Ok(received) => println!(
                "{label}: {received} bytes in {:.1} s, peak RSS {} KiB",
                elapsed.as_secs_f64(),
                peak_rss_kib()
            ),
            Err(e) => println!("{label}: failed: {e}"),
        }
    }
    sandbox.delete().await?;
    Ok(())
}

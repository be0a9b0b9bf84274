//! Exec latency and throughput of `sandbox-core`, on the local provider and through the App
//! Platform emulator with both drivers (the doctl stand-in, and the REST API).
//!
//! ```sh
//! cargo build --release -p appplatform-emulator --bin doctl-standin
//! cargo run --release -p sandbox-core --example bench_exec -- target/bench-exec.json
//! ```
//!
//! For each target: `exec("true")` on a warm console (p50, p99 over 300 runs), 100 sequential
//! `echo` commands, 32 concurrent ones, and `exec("true")` with a fresh console per command
//! (p50, p99 over 20 runs) for comparison. Prints a table; writes JSON to the path given.

use std::sync::Arc;
use std::time::{Duration, Instant};

use appspec::TemplateDefaults;
use doctl_driver::{DoApi, Doctl, Platform};
use sandbox_core::Sandbox;

const WARM_RUNS: usize = 300;
const FRESH_RUNS: usize = 20;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[derive(Debug)]
struct Figures {
    target: String,
    warm_p50: Duration,
    warm_p99: Duration,
    sequential_100: Duration,
    concurrent_32: Duration,
    fresh_p50: Duration,
    fresh_p99: Duration,
}

async fn measure(
    target: &str,
    platform: Arc<dyn Platform>,
) -> Result<Figures, sandbox_core::Error> {
    let sandbox = Sandbox::builder()
        .defaults(TemplateDefaults::default())
        .name(format!(
            "bench-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ))
        .platform(platform)
        .create()
        .await?;
    let result = run(target, &sandbox).await;
    sandbox.delete().await?;
    result
}

async fn run(target: &str, sandbox: &Sandbox) -> Result<Figures, sandbox_core::Error> {
    // Warm up: open the console and run a few commands.
    for _ in 0..10 {
        sandbox.exec("true").await?.exit_ok()?;
    }
    let mut warm = Vec::with_capacity(WARM_RUNS);
    for _ in 0..WARM_RUNS {
        let start = Instant::now();
        sandbox.exec("true").await?.exit_ok()?;
        warm.push(start.elapsed());
    }
    let start = Instant::now();
    for i in 0..100 {
        let out = sandbox.exec(&format!("echo {i}")).await?;
        assert_eq!(out.stdout, format!("{i}\n").into_bytes());
    }
    let sequential_100 = start.elapsed();
    let start = Instant::now();
    let outs = futures::future::join_all((0..32).map(|i| {
        let sandbox = sandbox.clone();
        async move { sandbox.exec(&format!("echo {i}")).await }
    }))
    .await;
    let concurrent_32 = start.elapsed();
    for (i, out) in outs.into_iter().enumerate() {
        assert_eq!(out?.stdout, format!("{i}\n").into_bytes());
    }
    let mut fresh = Vec::with_capacity(FRESH_RUNS);
    for _ in 0..FRESH_RUNS {
        sandbox.close_console().await;
        let start = Instant::now();
        sandbox.exec("true").await?.exit_ok()?;
        fresh.push(start.elapsed());
    }
    Ok(Figures {
        target: target.to_owned(),
        warm_p50: percentile(&mut warm, 0.5),
        warm_p99: percentile(&mut warm, 0.99),
        sequential_100,
        concurrent_32,
        fresh_p50: percentile(&mut fresh, 0.5),
        fresh_p99: percentile(&mut fresh, 0.99),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_path = std::env::args().nth(1);
    let state = tempfile::tempdir()?;
    let local = sandbox_local::LocalPlatform::new(sandbox_local::LocalConfig::new(state.path()))?;
    local.check_host()?;
    let emulator = appplatform_emulator::Emulator::builder()
        .backend(Arc::new(local.clone()))
        .pace(Duration::ZERO)
        .start()
        .await?;
    let doctl: Arc<dyn Platform> = Arc::new(Doctl::new(emulator.doctl_config()?));
    let api: Arc<dyn Platform> = Arc::new(DoApi::new(emulator.doapi_config())?);
    #[allow(unused_mut)]
    let mut targets: Vec<(&str, Arc<dyn Platform>)> = vec![
        ("local", Arc::new(local)),
        ("emulator+doctl-standin", doctl),
        ("emulator+api", api),
    ];
    // With `--features test-util`: bash on a plain pty of this machine, no sandbox, for
    // reference.
    #[cfg(feature = "test-util")]
    targets.insert(
        0,
        (
            "host-pty (reference)",
            Arc::new(sandbox_core::testing::PtyPlatform::new()?),
        ),
    );
    if let Ok(only) = std::env::var("BENCH_TARGETS") {
        targets.retain(|(name, _)| only.split(',').any(|o| name.starts_with(o)));
    }
    let mut all = Vec::new();
    println!(
        "{:<24} {:>10} {:>10} {:>12} {:>12} {:>11} {:>11} {:>8}",
        "target", "warm p50", "warm p99", "100 seq", "32 conc", "fresh p50", "fresh p99", "ratio"
    );
    for (name, platform) in targets {
        let f = measure(name, platform).await?;
        let ratio = f.fresh_p50.as_secs_f64() / f.warm_p50.as_secs_f64();
        println!(
            "{:<24} {:>8.2}ms {:>8.2}ms {:>10.1}ms {:>10.1}ms {:>9.1}ms {:>9.1}ms {:>7.1}x",
            f.target,
            ms(f.warm_p50),
            ms(f.warm_p99),
            ms(f.sequential_100),
            ms(f.concurrent_32),
            ms(f.fresh_p50),
            ms(f.fresh_p99),
            ratio
        );
        all.push(serde_json::json!({
            "target": f.target,
            "warm_true_p50_ms": ms(f.warm_p50),
            "warm_true_p99_ms": ms(f.warm_p99),
            "sequential_100_echo_ms": ms(f.sequential_100),
            "concurrent_32_echo_ms": ms(f.concurrent_32),
            "fresh_console_true_p50_ms": ms(f.fresh_p50),
            "fresh_console_true_p99_ms": ms(f.fresh_p99),
            "fresh_over_warm_p50": ratio,
            "warm_runs": WARM_RUNS,
            "fresh_runs": FRESH_RUNS,
        }));
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average after the run: {}", load.trim());
    if let Some(path) = out_path {
        let report = serde_json::json!({
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "loadavg_after": load.trim(),
            "targets": all,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
        println!("wrote {path}");
    }
    Ok(())
}

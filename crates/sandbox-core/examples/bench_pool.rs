//! Warm pool benchmark through the App Platform emulator, with deployments that take 30 s as
//! on App Platform: cold creation, acquire on a hit (p50, p99), the first command after an
//! acquire, hit rate, and API requests a minute under a steady workload of one acquire a
//! second. Writes JSON (`hit_p50_ms`, `first_exec_p50_ms`, `cold_p50_ms`,
//! `api_requests_per_min_max`, ...) to the path given (default `bench_pool.json`).
//!
//! The emulator's backend is `PtyPlatform` (bash on local pseudo-terminals, sandbox-core's
//! `test-util`), so the machine is not loaded with dozens of isolated sandboxes, or, with
//! `BENCH_POOL_BACKEND=local`, the local provider (runc sandboxes with loopback-only
//! networks, in a temporary state folder), as `sandbox emulator` serves them. The REST API,
//! the deployment pace and the exec WebSocket are the emulator's, reached with `DoApi`.
//!
//! ```text
//! cargo run --release -p sandbox-core --features test-util --example bench_pool -- out.json
//! ```
//!
//! `BENCH_POOL_SECS` sets the steady phase's length (default 180), `BENCH_POOL_PACE_SECS` the
//! deployment pace (default 30).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use appplatform_emulator::Emulator;
use appspec::{ComponentType, ImageKind, TemplateDefaults};
use doctl_driver::{DoApi, Platform, Token};
use sandbox_core::{PoolConfig, PoolManager, Sandbox, Template};

fn env_secs(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "bench_pool.json".to_owned());
    let steady = Duration::from_secs(env_secs("BENCH_POOL_SECS", 180));
    let pace = Duration::from_secs(env_secs("BENCH_POOL_PACE_SECS", 30));
    let state = tempfile::tempdir()?;
    let backend_name = std::env::var("BENCH_POOL_BACKEND").unwrap_or_else(|_| "pty".to_owned());
    let backend: Arc<dyn Platform> = match backend_name.as_str() {
        "local" => Arc::new(sandbox_local::LocalPlatform::new(
            sandbox_local::LocalConfig::new(state.path())
                .with_network(sandbox_local::NetworkMode::Loopback),
        )?),
        "pty" => Arc::new(sandbox_core::testing::PtyPlatform::new()?),
        other => return Err(format!("BENCH_POOL_BACKEND `{other}`: use `pty` or `local`").into()),
    };
    let emulator = Emulator::builder()
        .backend(backend)
        .pace(pace)
        .start()
        .await?;
    let platform: Arc<dyn Platform> = Arc::new(DoApi::new(
        doctl_driver::DoApiConfig::new()
            .with_base_url(emulator.url())
            .with_token(Token::new(emulator.token())),
    )?);
    let defaults = TemplateDefaults::default();

    // Cold: create, wait for the deployment, first command (three at once).
    eprintln!("cold creations (pace {pace:?})...");
    let colds = (0..3).map(|_| {
        let platform = Arc::clone(&platform);
        let defaults = defaults.clone();
        async move {
            let start = Instant::now();
            let sandbox = Sandbox::builder()
                .defaults(defaults)
                .platform(platform)
                .poll_interval(Duration::from_secs(1), Duration::from_secs(2))
                .create()
                .await?;
            sandbox.exec("true").await?.exit_ok()?;
            let elapsed = start.elapsed();
            sandbox.delete().await?;
            Ok::<_, sandbox_core::Error>(ms(elapsed))
        }
    });
    let mut cold: Vec<f64> = futures::future::try_join_all(colds).await?;
    let cold_p50 = percentile(&mut cold, 0.5);
    eprintln!("cold p50 {cold_p50:.0} ms");

    // The pool: by Little's law, one acquire a second for a create time of about `pace`
    // needs `pace` seconds' worth of sandboxes on their way, plus headroom ready.
    let rate = 1.0;
    let headroom = 10;
    let min_ready = (rate * pace.as_secs_f64()).ceil() as usize + headroom;
    let template = Template::new(ImageKind::Python, ComponentType::Worker);
    let manager = PoolManager::builder()
        .platform(Arc::clone(&platform))
        .defaults(defaults)
        .max_concurrent_creates(min_ready + 5)
        .api_budget(240)
        .poll_interval(Duration::from_secs(3))
        .pool(
            template.clone(),
            PoolConfig::new()
                .min_ready(min_ready)
                .max_ready(min_ready + 10),
        )
        .build()?;
    let warm_start = Instant::now();
    manager.warm_up(pace * 4).await?;
    eprintln!(
        "warmed up {min_ready} sandboxes in {:.1} s",
        warm_start.elapsed().as_secs_f64()
    );
    let requests_before = manager.metrics().api_requests;
    let steady_from = SystemTime::now();

    // Steady: one acquire a second; each sandbox runs one command and is deleted.
    let mut acquire = Vec::new();
    let mut first_exec = Vec::new();
    let mut second_exec = Vec::new();
    let mut deletes = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let end = Instant::now() + steady;
    while Instant::now() < end {
        tick.tick().await;
        let start = Instant::now();
        let sandbox = manager.acquire(&template, Duration::from_secs(120)).await?;
        acquire.push(ms(start.elapsed()));
        let start = Instant::now();
        sandbox.exec("true").await?.exit_ok()?;
        first_exec.push(ms(start.elapsed()));
        let start = Instant::now();
        sandbox.exec("true").await?.exit_ok()?;
        second_exec.push(ms(start.elapsed()));
        deletes.push(tokio::spawn(async move { sandbox.delete().await }));
    }
    for delete in deletes {
        delete.await??;
    }
    let metrics = manager.metrics();
    let pool = &metrics.pools[0];
    manager.shutdown().await?;
    let left = platform.list_apps().await?.len();

    // API requests a minute during the steady phase (REST only: the exec WebSocket is served
    // from another host on App Platform and is not rate-limited with the API).
    let times: Vec<SystemTime> = emulator
        .received_requests()
        .iter()
        .filter(|r| r.path.starts_with("/v2/") && r.at >= steady_from)
        .map(|r| r.at)
        .collect();
    let per_min_max = times
        .iter()
        .map(|start| {
            times
                .iter()
                .filter(|t| {
                    t.duration_since(*start)
                        .is_ok_and(|d| d < Duration::from_secs(60))
                })
                .count()
        })
        .max()
        .unwrap_or(0);

    let hit_p50 = percentile(&mut acquire.clone(), 0.5);
    let json = serde_json::json!({
        "backend": backend_name,
        "pace_s": pace.as_secs(),
        "steady_s": steady.as_secs(),
        "acquires": acquire.len(),
        "min_ready": min_ready,
        "cold_p50_ms": cold_p50,
        "hit_p50_ms": hit_p50,
        "hit_p99_ms": percentile(&mut acquire.clone(), 0.99),
        "first_exec_p50_ms": percentile(&mut first_exec.clone(), 0.5),
        "first_exec_p99_ms": percentile(&mut first_exec.clone(), 0.99),
        "second_exec_p50_ms": percentile(&mut second_exec.clone(), 0.5),
        "hit_over_cold": cold_p50 / hit_p50,
        "hit_rate": pool.hit_rate,
        "api_requests_per_min_max": per_min_max,
        "api_requests_steady": metrics.api_requests - requests_before,
        "rate_limited": metrics.rate_limited,
        "failed_creates": pool.failed_creates,
        "apps_left_after_shutdown": left,
    });
    let text = serde_json::to_string_pretty(&json)?;
    std::fs::write(&out, format!("{text}\n"))?;
    println!("{text}");
    Ok(())
}

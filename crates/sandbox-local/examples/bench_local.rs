//! Measures what a local sandbox costs: creation time (p50 over N creates) and the memory an
//! idle sandbox holds (sum of the PSS and RSS of its processes), for workers and services.
//!
//! ```sh
//! cargo run --release -p sandbox-local --example bench_local -- [OUT.json] [--count N]
//! ```

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use appspec::{ComponentType, ImageKind, SandboxTemplate};
use doctl_driver::Platform;
use sandbox_local::{LocalConfig, LocalPlatform};

#[derive(Default)]
struct Memory {
    processes: usize,
    pss_kib: u64,
    rss_kib: u64,
}

fn smaps_field(pid: i32, field: &str) -> u64 {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(field)
                .and_then(|v| v.split_whitespace().next())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Every process of a sandbox: those in its PID namespace, its holder (the host-side bash) and
/// pasta.
fn sandbox_memory(state: &serde_json::Value) -> Memory {
    let supervisor = state["supervisor"]["pid"].as_i64().unwrap_or(0) as i32;
    let pidns = fs::read_link(format!("/proc/{supervisor}/ns/pid")).ok();
    let mut pids: Vec<i32> = fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter(|pid| {
                    pidns.is_some() && fs::read_link(format!("/proc/{pid}/ns/pid")).ok() == pidns
                })
                .collect()
        })
        .unwrap_or_default();
    for key in ["holder", "pasta"] {
        if let Some(pid) = state[key]["pid"].as_i64() {
            pids.push(pid as i32);
        }
    }
    let mut memory = Memory::default();
    for pid in pids {
        memory.processes += 1;
        memory.pss_kib += smaps_field(pid, "Pss:");
        memory.rss_kib += smaps_field(pid, "Rss:");
    }
    memory
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut out: Option<PathBuf> = None;
    let mut count = 20usize;
    while let Some(arg) = args.next() {
        if arg == "--count" {
            count = args.next().ok_or("--count needs a number")?.parse()?;
        } else {
            out = Some(PathBuf::from(arg));
        }
    }
    let dir = tempfile::tempdir()?;
    let auto = LocalPlatform::new(LocalConfig::new(dir.path()))?;
    auto.check_host()?;
    let loopback = LocalPlatform::new(
        LocalConfig::new(dir.path()).with_network(sandbox_local::NetworkMode::Loopback),
    )?;

    let mut rows = Vec::new();
    for (label, component, n, platform) in [
        ("worker", ComponentType::Worker, count, &loopback),
        ("worker", ComponentType::Worker, count, &auto),
        ("service", ComponentType::Service, count.div_ceil(4), &auto),
    ] {
        let mut times = Vec::new();
        let mut ids = Vec::new();
        for i in 0..n {
            let spec = SandboxTemplate::new(ImageKind::Python, component)
                .name(format!("bench-{label}-{}-{i}", rows.len()))
                .build()?;
            let start = Instant::now();
            let app = platform.create_app(&spec).await?;
            times.push(start.elapsed());
            if !app.status().is_active() {
                return Err(format!("sandbox {} did not start: {:?}", app.id, app.status()).into());
            }
            ids.push(app.id);
        }
        // Let the sandboxes settle, then measure one idle sandbox (the median of all).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut memories: Vec<Memory> = ids
            .iter()
            .map(|id| {
                let text = fs::read_to_string(platform.sandbox_dir(id).join("state.json"))
                    .unwrap_or_default();
                sandbox_memory(&serde_json::from_str(&text).unwrap_or_default())
            })
            .collect();
        memories.sort_by_key(|m| m.pss_kib);
        let memory = memories.swap_remove(memories.len() / 2);
        let network = fs::read_to_string(platform.sandbox_dir(&ids[0]).join("state.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["network"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let delete_start = Instant::now();
        for id in &ids {
            platform.delete_app(id).await?;
        }
        let delete = delete_start.elapsed() / ids.len() as u32;
        times.sort();
        rows.push(serde_json::json!({
            "kind": label,
            "network": network,
            "creates": n,
            "create_ms": {
                "p50": ms(percentile(&times, 0.5)),
                "p90": ms(percentile(&times, 0.9)),
                "min": ms(times[0]),
                "max": ms(times[times.len() - 1]),
            },
            "delete_ms_mean": ms(delete),
            "idle_memory": {
                "processes": memory.processes,
                "pss_kib": memory.pss_kib,
                "rss_kib": memory.rss_kib,
            },
        }));
    }

    println!(
        "{:<8} {:<6} {:>7} {:>9} {:>9} {:>9} {:>10} {:>6} {:>9} {:>9}",
        "kind",
        "net",
        "creates",
        "p50 ms",
        "p90 ms",
        "max ms",
        "delete ms",
        "procs",
        "PSS KiB",
        "RSS KiB"
    );
    for row in &rows {
        println!(
            "{:<8} {:<6} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>10.1} {:>6} {:>9} {:>9}",
            row["kind"].as_str().unwrap_or_default(),
            row["network"].as_str().unwrap_or_default(),
            row["creates"].as_u64().unwrap_or_default(),
            row["create_ms"]["p50"].as_f64().unwrap_or_default(),
            row["create_ms"]["p90"].as_f64().unwrap_or_default(),
            row["create_ms"]["max"].as_f64().unwrap_or_default(),
            row["delete_ms_mean"].as_f64().unwrap_or_default(),
            row["idle_memory"]["processes"].as_u64().unwrap_or_default(),
            row["idle_memory"]["pss_kib"].as_u64().unwrap_or_default(),
            row["idle_memory"]["rss_kib"].as_u64().unwrap_or_default(),
        );
    }
    let report = serde_json::json!({
        "benchmark": "sandbox-local create and idle memory",
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "kernel": fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
            "root": rustix_is_root(),
        },
        "results": rows,
    });
    if let Some(out) = out {
        fs::write(&out, serde_json::to_string_pretty(&report)?)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

fn rustix_is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1).map(|u| u == "0"))
        .unwrap_or(false)
}

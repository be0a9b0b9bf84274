//! Console speed over `DoApi` and over `Doctl` (the doctl stand-in), on the same kind of
//! emulator over local sandboxes, in the same run.
//!
//! ```text
//! cargo bench -p workspace-tests --bench doapi_console
//! ```
//!
//! Measures, for each driver: the round trip of `echo` (send the line, see its output and the
//! next prompt) and input throughput (bytes per second through `wc -c` with echo off).
//! Prints a Markdown table. `DOAPI_BENCH_ROUNDS` and `DOAPI_BENCH_KIB` change the sizes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: failing loudly is right

use std::time::{Duration, Instant};

use appspec::{ComponentType, ImageKind};
use workspace_tests::{Bench, Driver, spec};

struct Figures {
    driver: Driver,
    opens: Vec<Duration>,
    round_trips: Vec<Duration>,
    input_bytes: usize,
    input_time: Duration,
}

impl Figures {
    fn median(&self) -> Duration {
        let mut sorted = self.round_trips.clone();
        sorted.sort_unstable();
        sorted[sorted.len() / 2]
    }

    fn p90(&self) -> Duration {
        let mut sorted = self.round_trips.clone();
        sorted.sort_unstable();
        sorted[(sorted.len() * 9 / 10).min(sorted.len() - 1)]
    }

    fn mean(&self) -> Duration {
        self.round_trips.iter().sum::<Duration>() / self.round_trips.len().max(1) as u32
    }

    fn min(&self) -> Duration {
        self.round_trips.iter().min().copied().unwrap_or_default()
    }

    fn throughput(&self) -> f64 {
        self.input_bytes as f64 / self.input_time.as_secs_f64()
    }
}

fn env_number(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn measure(driver: Driver, rounds: usize, kib: usize) -> Option<Figures> {
    let bench = Bench::start(driver).await?;
    let app = bench
        .create_active(&spec(ImageKind::Python, ComponentType::Worker))
        .await;
    // Opening a console, up to its first prompt.
    let mut opens = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let term = bench.console(&app.id).await;
        opens.push(started.elapsed());
        doctl_driver_close(&term).await;
    }
    opens.sort_unstable();
    let mut term = bench.console(&app.id).await;

    // Warm up, then round trips.
    for i in 0..5 {
        term.send(&format!("echo w{i}\r")).await;
        term.expect(&format!("echo w{i}")).await;
        term.expect("$ ").await;
    }
    let mut round_trips = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let started = Instant::now();
        term.send(&format!("echo r{i}\r")).await;
        term.expect(&format!("echo r{i}")).await;
        term.expect(&format!("r{i}\r\n")).await;
        term.expect("$ ").await;
        round_trips.push(started.elapsed());
    }

    // Input throughput: lines of 1024 bytes (1023 letters and Enter) into `wc -c`.
    term.send("stty -echo; wc -c; stty echo\r").await;
    term.expect("stty echo").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let line = format!("{}\r", "a".repeat(1023));
    let started = Instant::now();
    for _ in 0..kib {
        term.send(&line).await;
    }
    term.send("\u{4}").await;
    let total = kib * 1024;
    term.expect(&format!("{total}\r\n")).await;
    let input_time = started.elapsed();
    term.expect("$ ").await;
    doctl_driver_close(&term).await;
    Some(Figures {
        driver,
        opens,
        round_trips,
        input_bytes: total,
        input_time,
    })
}

async fn doctl_driver_close(term: &workspace_tests::Term) {
    let _ = tokio::time::timeout(Duration::from_secs(10), term.console.close()).await;
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds = env_number("DOAPI_BENCH_ROUNDS", 200);
    let kib = env_number("DOAPI_BENCH_KIB", 256);
    let mut all = Vec::new();
    for driver in [Driver::Api, Driver::Doctl] {
        match measure(driver, rounds, kib).await {
            Some(figures) => all.push(figures),
            None => return,
        }
    }
    println!("rounds: {rounds}, input: {kib} KiB\n");
    println!(
        "| driver | console open (median of 10) | echo round trip: min | median | mean | p90 | input throughput |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for f in &all {
        println!(
            "| {:?} | {} | {} | {} | {} | {} | {:.0} KiB/s |",
            f.driver,
            ms(f.opens[f.opens.len() / 2]),
            ms(f.min()),
            ms(f.median()),
            ms(f.mean()),
            ms(f.p90()),
            f.throughput() / 1024.0
        );
    }
    if let [api, doctl] = all.as_slice() {
        println!(
            "\nDoctl / DoApi: round trip median {:.1}x, mean {:.1}x; DoApi / Doctl input {:.0}x",
            doctl.median().as_secs_f64() / api.median().as_secs_f64(),
            doctl.mean().as_secs_f64() / api.mean().as_secs_f64(),
            api.throughput() / doctl.throughput()
        );
    }
}

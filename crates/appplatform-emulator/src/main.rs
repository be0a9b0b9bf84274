//! `appplatform-emulator`: App Platform's API on localhost over local sandboxes.
//!
//! ```text
//! cargo run -p appplatform-emulator -- --port 8080
//! doctl --api-url http://127.0.0.1:8080 -t <token> apps list
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use appplatform_emulator::{ConsoleFault, Emulator};
use clap::Parser;
use sandbox_local::{LocalConfig, LocalPlatform};

/// Serve the DigitalOcean App Platform API (apps, deployments, exec console, logs) on
/// localhost, running apps as local sandboxes.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// The API token to accept (default: a random one, printed at start).
    #[arg(long, env = "EMULATOR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Seconds a deployment takes to walk PENDING_BUILD → ACTIVE (0: instant).
    #[arg(long, default_value_t = 30.0)]
    pace: f64,
    /// Fault: the next deployment ends in ERROR with this reason.
    #[arg(long, value_name = "REASON")]
    fail_next_deployment: Option<String>,
    /// Fault: answer the next N API requests with 429 (retry-after 1).
    #[arg(long, value_name = "N")]
    rate_limit: Option<u32>,
    /// Fault: answer the next N API requests with 500.
    #[arg(long, value_name = "N")]
    server_errors: Option<u32>,
    /// Fault: refuse the next N exec WebSocket upgrades with 403.
    #[arg(long, value_name = "N")]
    refuse_upgrades: Option<u32>,
    /// Fault: drop every console connection after this many output bytes.
    #[arg(long, value_name = "BYTES")]
    drop_console_after: Option<u64>,
    /// Fault: wait this many milliseconds before each console output frame.
    #[arg(long, value_name = "MS")]
    slow_console: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let platform = LocalPlatform::new(LocalConfig::from_env())
        .context("starting the local sandbox platform")?;
    let mut builder = Emulator::builder()
        .backend(Arc::new(platform))
        .pace(Duration::from_secs_f64(cli.pace.max(0.0)))
        .bind(SocketAddr::new(cli.host, cli.port));
    if let Some(token) = &cli.token {
        builder = builder.token(token.clone());
    }
    let emulator = builder.start().await.context("starting the emulator")?;
    let faults = emulator.faults();
    if let Some(reason) = cli.fail_next_deployment {
        faults.fail_next_deployment(reason);
    }
    if let Some(n) = cli.rate_limit {
        faults.rate_limit(n, 1);
    }
    if let Some(n) = cli.server_errors {
        faults.server_error(n, 500);
    }
    if let Some(n) = cli.refuse_upgrades {
        faults.refuse_upgrades(n);
    }
    if cli.drop_console_after.is_some() || cli.slow_console.is_some() {
        let mut fault = ConsoleFault::default();
        fault.drop_after_bytes = cli.drop_console_after;
        fault.delay_per_frame = cli.slow_console.map(Duration::from_millis);
        faults.console(fault, None);
    }
    // Listen before the banner, so a caller that signals after reading it is heard.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot listen for Ctrl-C")?;
    println!("App Platform emulator listening on {}", emulator.url());
    println!("token: {}", emulator.token());
    println!(
        "try:   doctl --api-url {} -t {} apps list",
        emulator.url(),
        emulator.token()
    );
    interrupt.recv().await;
    println!("stopping");
    emulator.shutdown();
    Ok(())
}

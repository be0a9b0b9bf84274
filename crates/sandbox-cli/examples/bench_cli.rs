//! What the `sandbox` command costs end to end, as a user sees it: every figure is the wall
//! time of whole `sandbox` processes (start, provider, name lookup, console, command, exit).
//!
//! ```sh
//! cargo build --release -p sandbox-cli
//! cargo run --release -p sandbox-cli --example bench_cli -- artifacts/bench/bench_cli.json
//! ```
//!
//! On the local provider and through the App Platform emulator (REST API driver): `run --
//! true` (create, exec, delete), `exec NAME -- true` and `exec --id ID -- true` on a live
//! sandbox, `files upload` and `files read` of 1 MiB, and 8 `run` commands at once. Prints a
//! table; writes JSON to the path given as first argument.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appplatform_emulator::Emulator;
use sandbox_local::{LocalConfig, LocalPlatform};

const RUNS: usize = 10;
const EXECS: usize = 20;
const CONCURRENT: usize = 8;
const FILE_BYTES: usize = 1 << 20;

/// The release (or debug) `sandbox` binary next to this example's folder.
fn sandbox_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("cannot find the target folder")?;
    let binary = profile_dir.join("sandbox");
    if !binary.exists() {
        bail!(
            "{} is missing: build it first (cargo build --release -p sandbox-cli)",
            binary.display()
        );
    }
    Ok(binary)
}

struct Target {
    name: &'static str,
    binary: PathBuf,
    env: Vec<(String, String)>,
}

impl Target {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.args(args)
            .env("SANDBOX_NO_PROGRESS", "1")
            .env_remove("SANDBOX_PROVIDER")
            .env_remove("DIGITALOCEAN_API_URL")
            .env_remove("DIGITALOCEAN_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        cmd
    }

    /// Runs `sandbox ARGS`, checks it succeeded, returns its stdout and wall time.
    fn time(&self, args: &[&str], stdin: Option<&Path>) -> Result<(Vec<u8>, Duration)> {
        let mut cmd = self.cmd(args);
        if let Some(path) = stdin {
            cmd.stdin(std::fs::File::open(path)?);
        }
        let start = Instant::now();
        let output = cmd.output()?;
        let elapsed = start.elapsed();
        if !output.status.success() {
            bail!(
                "`sandbox {}` failed ({}): {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok((output.stdout, elapsed))
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index].as_secs_f64() * 1000.0
}

fn measure(target: &Target, scratch: &Path) -> Result<serde_json::Value> {
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        runs.push(target.time(&["run", "--", "true"], None)?.1);
    }
    let name = format!("bench-cli-{}", std::process::id());
    let (created, _) = target.time(&["create", "--name", &name, "--json"], None)?;
    let created: serde_json::Value = serde_json::from_slice(&created)?;
    let id = created["id"]
        .as_str()
        .context("created sandbox has an id")?
        .to_owned();
    let result = (|| -> Result<serde_json::Value> {
        let mut by_name = Vec::new();
        let mut by_id = Vec::new();
        for _ in 0..EXECS {
            by_name.push(target.time(&["exec", &name, "--", "true"], None)?.1);
            by_id.push(target.time(&["exec", "--id", &id, "--", "true"], None)?.1);
        }
        let file = scratch.join("upload.bin");
        let data: Vec<u8> = (0..FILE_BYTES).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(&file, &data)?;
        let file_arg = file.to_string_lossy().into_owned();
        let (_, upload) = target.time(
            &[
                "files",
                "upload",
                "--id",
                &id,
                &file_arg,
                "bench/upload.bin",
            ],
            None,
        )?;
        let (read_back, read) =
            target.time(&["files", "read", "--id", &id, "bench/upload.bin"], None)?;
        if read_back != data {
            bail!(
                "files read returned {} bytes, not the uploaded ones",
                read_back.len()
            );
        }
        let mib = FILE_BYTES as f64 / (1024.0 * 1024.0);
        Ok(serde_json::json!({
            "exec_by_name_ms": { "p50": percentile(&mut by_name, 0.5), "p90": percentile(&mut by_name, 0.9) },
            "exec_by_id_ms": { "p50": percentile(&mut by_id, 0.5), "p90": percentile(&mut by_id, 0.9) },
            "upload_1mib_ms": upload.as_secs_f64() * 1000.0,
            "upload_mib_per_s": mib / upload.as_secs_f64(),
            "read_1mib_ms": read.as_secs_f64() * 1000.0,
            "read_mib_per_s": mib / read.as_secs_f64(),
        }))
    })();
    target.time(&["delete", "--id", &id], None)?;
    let mut figures = result?;
    let start = Instant::now();
    let children: Vec<_> = (0..CONCURRENT)
        .map(|_| target.cmd(&["run", "--", "true"]).spawn())
        .collect::<Result<_, _>>()?;
    for child in children {
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "a concurrent run failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    figures["concurrent_8_runs_ms"] = serde_json::json!(start.elapsed().as_secs_f64() * 1000.0);
    figures["run_true_ms"] = serde_json::json!({
        "p50": percentile(&mut runs, 0.5),
        "p90": percentile(&mut runs, 0.9),
    });
    figures["target"] = serde_json::json!(target.name);
    Ok(figures)
}

#[tokio::main]
async fn main() -> Result<()> {
    let out = std::env::args().nth(1);
    let binary = sandbox_binary()?;
    let scratch = tempfile::tempdir()?;
    let state = scratch.path().join("local");
    let local = LocalPlatform::new(LocalConfig::new(&state))?;
    local.check_host()?;
    let emulator = Emulator::builder()
        .backend(Arc::new(local))
        .pace(Duration::ZERO)
        .start()
        .await?;
    let state_env = (
        "SANDBOX_LOCAL_DIR".to_owned(),
        state.to_string_lossy().into_owned(),
    );
    let targets = [
        Target {
            name: "local",
            binary: binary.clone(),
            env: vec![state_env.clone()],
        },
        Target {
            name: "emulator+api",
            binary,
            env: vec![
                state_env,
                ("SANDBOX_PROVIDER".into(), "digitalocean".into()),
                ("SANDBOX_DRIVER".into(), "api".into()),
                ("DIGITALOCEAN_API_URL".into(), emulator.url()),
                ("DIGITALOCEAN_TOKEN".into(), emulator.token().to_owned()),
            ],
        },
    ];
    let mut rows = Vec::new();
    for target in &targets {
        let scratch = scratch.path().to_owned();
        let figures = tokio::task::block_in_place(|| measure(target, &scratch))
            .with_context(|| format!("benchmarking {}", target.name))?;
        rows.push(figures);
    }
    println!(
        "{:<14} {:>10} {:>12} {:>10} {:>12} {:>11} {:>13}",
        "target", "run p50", "exec name", "exec id", "upload MiB/s", "read MiB/s", "8 runs at once"
    );
    for row in &rows {
        println!(
            "{:<14} {:>8.0}ms {:>10.0}ms {:>8.0}ms {:>12.2} {:>11.2} {:>11.0}ms",
            row["target"].as_str().unwrap_or_default(),
            row["run_true_ms"]["p50"].as_f64().unwrap_or_default(),
            row["exec_by_name_ms"]["p50"].as_f64().unwrap_or_default(),
            row["exec_by_id_ms"]["p50"].as_f64().unwrap_or_default(),
            row["upload_mib_per_s"].as_f64().unwrap_or_default(),
            row["read_mib_per_s"].as_f64().unwrap_or_default(),
            row["concurrent_8_runs_ms"].as_f64().unwrap_or_default(),
        );
    }
    let report = serde_json::json!({
        "benchmark": "the sandbox command, end to end",
        "runs": RUNS,
        "execs": EXECS,
        "results": rows,
    });
    if let Some(out) = out {
        std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
        println!("wrote {out}");
    }
    emulator.shutdown();
    Ok(())
}

//! The smoke suite: the CLI's main paths, each step timed, results written as JSON to the
//! artifacts folder (`$SANDBOX_ARTIFACTS_DIR`, else `artifacts/smoke/` in the workspace).
//!
//! It always runs against the App Platform emulator. Against a real DigitalOcean account it
//! runs only when asked: `SANDBOX_SMOKE_DIGITALOCEAN=1` and a token in `DIGITALOCEAN_TOKEN`
//! (`scripts/smoke.sh` does both); it creates one sandbox and deletes it.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;

use crate::common::TestContext;

struct Step {
    name: &'static str,
    ok: bool,
    seconds: f64,
    detail: String,
}

struct Suite<'a> {
    ctx: &'a TestContext,
    steps: Vec<Step>,
}

impl Suite<'_> {
    /// Runs one step: `check` gets the exit code, stdout and stderr, and says what is wrong.
    fn step<const N: usize>(
        &mut self,
        name: &'static str,
        args: [&str; N],
        stdin: Option<&[u8]>,
        check: impl FnOnce(i32, &[u8], &str) -> Result<(), String>,
    ) {
        let start = Instant::now();
        let mut cmd = self.ctx.cmd(args);
        if let Some(input) = stdin {
            cmd.write_stdin(input.to_vec());
        }
        let (ok, detail) = match cmd.output() {
            Ok(output) => {
                let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
                match check(output.status.code().unwrap_or(-1), &output.stdout, &stderr) {
                    Ok(()) => (true, String::new()),
                    Err(e) => (false, format!("{e}; stderr: {}", stderr.trim())),
                }
            }
            Err(e) => (false, format!("could not run: {e}")),
        };
        self.steps.push(Step {
            name,
            ok,
            seconds: start.elapsed().as_secs_f64(),
            detail,
        });
    }
}

fn expect(code: i32, want: i32, out: &[u8], want_out: &[u8]) -> Result<(), String> {
    if code != want {
        return Err(format!("exit code {code}, expected {want}"));
    }
    if out != want_out {
        return Err(format!(
            "stdout {:?}, expected {:?}",
            String::from_utf8_lossy(out),
            String::from_utf8_lossy(want_out)
        ));
    }
    Ok(())
}

/// Runs the suite and writes `smoke-<target>.json`; returns the failed steps.
fn run_suite(ctx: &TestContext, target: &str, provider: &str) -> Vec<String> {
    let name = format!("smoke-{}", std::process::id());
    let name = name.as_str();
    let mut suite = Suite {
        ctx,
        steps: Vec::new(),
    };
    let started = Instant::now();
    suite.step(
        "create",
        ["create", "--name", name, "--json"],
        None,
        |code, out, _| {
            let json: serde_json::Value =
                serde_json::from_slice(out).map_err(|e| format!("not JSON: {e}"))?;
            if code == 0 && json["status"] == "ACTIVE" {
                Ok(())
            } else {
                Err(format!("exit {code}, {json}"))
            }
        },
    );
    suite.step(
        "exec echo",
        ["exec", name, "--", "echo", "hello"],
        None,
        |c, o, _| expect(c, 0, o, b"hello\n"),
    );
    suite.step(
        "exec exit code",
        ["exec", name, "--", "exit 42"],
        None,
        |c, o, _| expect(c, 42, o, b""),
    );
    suite.step(
        "exec python",
        ["exec", name, "--", "python3", "-c", "print(6*7)"],
        None,
        |c, o, _| expect(c, 0, o, b"42\n"),
    );
    let binary: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let expected = binary.clone();
    suite.step(
        "exec stdin bytes",
        ["exec", name, "--stdin", "--", "cat"],
        Some(&binary),
        move |c, o, _| {
            if c == 0 && o == expected.as_slice() {
                Ok(())
            } else {
                Err(format!("exit {c}, {} bytes back", o.len()))
            }
        },
    );
    suite.step(
        "files write",
        ["files", "write", name, "smoke/file.txt"],
        Some(b"smoke test\n"),
        |c, _, _| {
            if c == 0 {
                Ok(())
            } else {
                Err(format!("exit {c}"))
            }
        },
    );
    suite.step(
        "files read",
        ["files", "read", name, "smoke/file.txt"],
        None,
        |c, o, _| expect(c, 0, o, b"smoke test\n"),
    );
    suite.step(
        "files ls",
        ["files", "ls", name, "smoke", "--json"],
        None,
        |c, o, _| {
            let text = String::from_utf8_lossy(o);
            if c == 0 && text.contains("file.txt") {
                Ok(())
            } else {
                Err(format!("exit {c}: {text}"))
            }
        },
    );
    suite.step(
        "launch",
        ["launch", name, "--", "sleep 300"],
        None,
        |c, o, _| {
            let pid = String::from_utf8_lossy(o);
            if c == 0 && pid.trim().parse::<u32>().is_ok() {
                Ok(())
            } else {
                Err(format!("exit {c}: {pid}"))
            }
        },
    );
    suite.step(
        "ps",
        ["ps", name, "--filter", "sleep 300", "--json"],
        None,
        |c, o, _| {
            let json: serde_json::Value =
                serde_json::from_slice(o).map_err(|e| format!("not JSON: {e}"))?;
            let running = json.as_array().is_some_and(|a| {
                a.iter().any(|p| {
                    p["command"]
                        .as_str()
                        .is_some_and(|c| c.starts_with("sleep 300"))
                })
            });
            if c == 0 && running {
                Ok(())
            } else {
                Err(format!("exit {c}: {json}"))
            }
        },
    );
    suite.step("kill all", ["kill", name, "--all"], None, |c, _, _| {
        if c == 0 {
            Ok(())
        } else {
            Err(format!("exit {c}"))
        }
    });
    suite.step("status", ["status", name, "--json"], None, |c, o, _| {
        let json: serde_json::Value =
            serde_json::from_slice(o).map_err(|e| format!("not JSON: {e}"))?;
        if c == 0 && json["status"] == "ACTIVE" {
            Ok(())
        } else {
            Err(format!("exit {c}: {json}"))
        }
    });
    suite.step("delete", ["delete", name], None, |c, _, _| {
        if c == 0 {
            Ok(())
        } else {
            Err(format!("exit {c}"))
        }
    });
    suite.step("gone", ["status", name], None, |c, _, _| {
        if c == 3 {
            Ok(())
        } else {
            Err(format!("exit {c}, expected 3"))
        }
    });

    // Whatever happened above, nothing is left behind (on DigitalOcean a sandbox costs money).
    let deleted = suite.steps.iter().any(|s| s.name == "delete" && s.ok);
    if !deleted {
        let _ = ctx.run(["delete", name]);
    }

    let failed: Vec<String> = suite
        .steps
        .iter()
        .filter(|s| !s.ok)
        .map(|s| format!("{}: {}", s.name, s.detail))
        .collect();
    let report = json!({
        "target": target,
        "provider": provider,
        "started_unix": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "seconds": started.elapsed().as_secs_f64(),
        "passed": suite.steps.len() - failed.len(),
        "failed": failed.len(),
        "steps": suite.steps.iter().map(|s| json!({
            "name": s.name,
            "ok": s.ok,
            "seconds": (s.seconds * 1000.0).round() / 1000.0,
            "detail": s.detail,
        })).collect::<Vec<_>>(),
    });
    let dir = std::env::var_os("SANDBOX_ARTIFACTS_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../artifacts/smoke"),
        PathBuf::from,
    );
    if std::fs::create_dir_all(&dir).is_ok() {
        let path = dir.join(format!("smoke-{target}.json"));
        let _ = std::fs::write(
            &path,
            serde_json::to_string_pretty(&report).unwrap_or_default(),
        );
        eprintln!("smoke results: {}", path.display());
    }
    failed
}

#[test]
fn smoke_emulator() {
    let Some(mut ctx) = TestContext::local() else {
        return;
    };
    let emu = ctx.start_emulator();
    let failed = run_suite(&ctx, "emulator", "digitalocean (api)");
    assert!(failed.is_empty(), "smoke steps failed: {failed:#?}");
    drop(emu);
}

#[test]
fn smoke_digitalocean() {
    let wanted = std::env::var("SANDBOX_SMOKE_DIGITALOCEAN").is_ok_and(|v| v == "1");
    let token = std::env::var("DIGITALOCEAN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let (true, Some(token)) = (wanted, token) else {
        eprintln!(
            "skipping: the smoke suite against DigitalOcean needs SANDBOX_SMOKE_DIGITALOCEAN=1 and DIGITALOCEAN_TOKEN"
        );
        return;
    };
    let mut ctx = TestContext::bare();
    ctx.env
        .push(("SANDBOX_PROVIDER".into(), "digitalocean".into()));
    ctx.env.push(("DIGITALOCEAN_TOKEN".into(), token));
    for key in [
        "APP_SANDBOX_REGION",
        "DIGITALOCEAN_API_URL",
        "SANDBOX_DRIVER",
        "DOCTL",
    ] {
        if let Ok(value) = std::env::var(key) {
            ctx.env.push((key.into(), value));
        }
    }
    let failed = run_suite(&ctx, "digitalocean", "digitalocean");
    assert!(failed.is_empty(), "smoke steps failed: {failed:#?}");
}

//! Snapshots of `--help` and of usage errors: what users read first.

use crate::common::TestContext;
use crate::sandbox_snapshot;

#[test]
fn top_level_help() {
    let ctx = TestContext::bare();
    sandbox_snapshot!(ctx, "help", ctx.run(["--help"]));
}

#[test]
fn subcommand_help() {
    let ctx = TestContext::bare();
    for command in [
        "create",
        "list",
        "exec",
        "delete",
        "run",
        "ps",
        "launch",
        "kill",
        "logs",
        "url",
        "status",
        "emulator",
        "cp",
        "completions",
        "mcp",
    ] {
        sandbox_snapshot!(ctx, format!("help_{command}"), ctx.run([command, "--help"]));
    }
    for command in ["read", "write", "ls", "upload", "download", "rm", "mkdir"] {
        sandbox_snapshot!(
            ctx,
            format!("help_files_{command}"),
            ctx.run(["files", command, "--help"])
        );
    }
}

#[test]
fn no_command_is_a_usage_error() {
    let ctx = TestContext::bare();
    let output = ctx.run(Vec::<&str>::new());
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn exec_without_a_command_is_a_usage_error() {
    let ctx = TestContext::bare();
    sandbox_snapshot!(ctx, "usage_exec_no_command", ctx.run(["exec", "demo"]));
}

#[test]
fn a_bad_provider_is_a_usage_error() {
    let ctx = TestContext::bare();
    let output = ctx.run(["--provider", "aws", "list"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("local") && stderr.contains("digitalocean"),
        "{stderr}"
    );
}

#[test]
fn a_bad_config_file_names_the_key() {
    let ctx = TestContext::bare();
    let dir = ctx.path().join("config").join("do-app-sandbox");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.yaml"), "provder: local\n").unwrap();
    sandbox_snapshot!(ctx, "usage_bad_config", ctx.run(["list"]));
}

#[test]
fn version_prints_the_version() {
    let ctx = TestContext::bare();
    let out = ctx.ok(["--version"]);
    assert_eq!(out.trim(), format!("sandbox {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn digitalocean_without_token_or_doctl_is_an_auth_error() {
    let ctx = TestContext::bare();
    let output = ctx
        .cmd(["--provider", "digitalocean", "list"])
        .env("PATH", ctx.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("DIGITALOCEAN_TOKEN") && stderr.contains("doctl"),
        "{stderr}"
    );
}

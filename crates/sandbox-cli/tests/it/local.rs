//! The CLI on the local provider (skipped, with a reason, where local sandboxes cannot run).

use std::time::{Duration, Instant};

use crate::common::{self, TestContext, id_of};
use crate::sandbox_snapshot;

macro_rules! local_ctx {
    () => {
        match TestContext::local() {
            Some(ctx) => ctx,
            None => return,
        }
    };
}

#[test]
fn run_prints_42_and_leaves_nothing_behind() {
    let ctx = local_ctx!();
    let output = ctx.run([
        "run",
        "--image",
        "python",
        "--",
        "python3",
        "-c",
        "print(6*7)",
    ]);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "42\n");
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("provider: local"), "{stderr}");
    assert_eq!(ctx.ok(["list", "--json"]).trim(), "[]");
}

#[test]
fn run_passes_the_remote_exit_code_and_streams() {
    let ctx = local_ctx!();
    let output = ctx.run([
        "run",
        "--",
        "sh",
        "-c",
        "printf 'out\\n'; printf 'err\\n' >&2; exit 7",
    ]);
    assert_eq!(output.status.code(), Some(7));
    assert_eq!(output.stdout, b"out\n");
    assert!(String::from_utf8_lossy(&output.stderr).contains("err\n"));
}

#[test]
fn run_node_and_keep() {
    let ctx = local_ctx!();
    let output = ctx.run([
        "run",
        "--image",
        "node",
        "--keep",
        "--name",
        "kept",
        "--",
        "node -e 'console.log(6*7)'",
    ]);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "42\n");
    let list = ctx.ok(["list", "--json"]);
    assert!(list.contains("\"kept\""), "{list}");
    assert!(list.contains("\"node\""), "{list}");
}

#[test]
fn lifecycle_by_name_and_id() {
    let ctx = local_ctx!();
    let created: serde_json::Value =
        serde_json::from_str(&ctx.ok(["create", "--name", "demo", "-e", "GREETING=hi", "--json"]))
            .unwrap();
    assert_eq!(created["name"], "demo");
    assert_eq!(created["status"], "ACTIVE");
    assert_eq!(created["provider"], "local");
    assert_eq!(created["image"], "python");
    assert_eq!(created["component_type"], "worker");
    let id = created["id"].as_str().unwrap().to_owned();

    sandbox_snapshot!(ctx, "local_list_table", ctx.run(["list"]), table = true);
    sandbox_snapshot!(ctx, "local_list_json", ctx.run(["list", "--json"]));
    sandbox_snapshot!(ctx, "local_status", ctx.run(["status", "demo"]));

    // The sandbox's environment reaches commands; names and ids (and id prefixes) resolve.
    assert_eq!(ctx.ok(["exec", "demo", "--", "printenv GREETING"]), "hi\n");
    assert_eq!(
        ctx.ok(["exec", "--id", &id, "--", "echo", "by id"]),
        "by id\n"
    );
    assert_eq!(
        ctx.ok(["exec", &id[..8], "--", "echo", "prefix"]),
        "prefix\n"
    );
    sandbox_snapshot!(
        ctx,
        "local_exec_unknown_name",
        ctx.run(["exec", "demx", "--", "true"])
    );

    // A worker has no URL: not found.
    assert_eq!(ctx.run(["url", "demo"]).status.code(), Some(3));

    ctx.ok(["delete", "demo"]);
    assert_eq!(ctx.ok(["list", "--json"]).trim(), "[]");
    sandbox_snapshot!(ctx, "local_delete_unknown", ctx.run(["delete", "demo"]));
}

#[test]
fn create_and_exec_output_snapshots() {
    let ctx = local_ctx!();
    sandbox_snapshot!(
        ctx,
        "local_create",
        ctx.run(["create", "--name", "snap", "--region", "ams3"])
    );
    sandbox_snapshot!(
        ctx,
        "local_exec_json",
        ctx.run([
            "exec",
            "snap",
            "--json",
            "--",
            "printf 'out\\n'; printf 'err\\n' >&2; exit 3"
        ])
    );
    sandbox_snapshot!(
        ctx,
        "local_exec_stream",
        ctx.run([
            "exec",
            "snap",
            "--",
            "printf 'a\\n'; printf 'b\\n' >&2; exit 4"
        ])
    );
}

#[test]
fn exec_is_byte_exact_with_env_cwd_stdin_and_json() {
    let ctx = local_ctx!();
    ctx.ok(["create", "--name", "bytes"]);
    let input: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let output = ctx
        .cmd(["exec", "bytes", "--stdin", "--", "cat"])
        .write_stdin(input.clone())
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(output.stdout, input);

    let output = ctx.run([
        "exec",
        "bytes",
        "-e",
        "A=x y",
        "--cwd",
        "/tmp",
        "--",
        "sh",
        "-c",
        "printf '%s|%s\\n\\n\\r\\n' \"$A\" \"$(pwd)\"; printf 'e\\0' >&2; exit 3",
    ]);
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(output.stdout, b"x y|/tmp\n\n\r\n");
    assert_eq!(output.stderr, b"e\0");

    let json: serde_json::Value = serde_json::from_slice(
        &ctx.run(["exec", "bytes", "--json", "--", "echo hi; exit 4"])
            .stdout,
    )
    .unwrap();
    assert_eq!(json["exit_code"], 4);
    assert_eq!(json["stdout"], "hi\n");
    assert_eq!(json["stderr"], "");
}

/// The JSON a command printed on stdout.
fn json_of(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {:?} / {:?}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn keys(json: &serde_json::Value) -> Vec<&str> {
    let mut keys: Vec<&str> = json
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[test]
fn exec_and_run_json_add_base64_only_for_output_that_is_not_utf8() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let ctx = local_ctx!();
    ctx.ok(["create", "--name", "b64"]);

    // Not UTF-8 on stdout: the string is lossy, the base64 is exact; stderr is UTF-8.
    let output = ctx.run([
        "exec",
        "b64",
        "--json",
        "--",
        "printf '\\377\\000'; printf 'caf\\303\\251 \\342\\234\\223' >&2",
    ]);
    assert_eq!(output.status.code(), Some(0));
    let json = json_of(&output);
    assert_eq!(json["stdout"], "\u{fffd}\u{0}");
    assert_eq!(json["stdout_base64"], "/wA=");
    assert_eq!(
        b64.decode(json["stdout_base64"].as_str().unwrap()).unwrap(),
        [0xff, 0x00]
    );
    assert_eq!(json["stderr"], "café ✓");
    assert_eq!(
        keys(&json),
        ["exit_code", "signal", "stderr", "stdout", "stdout_base64"]
    );

    // UTF-8 on both: no base64 at all.
    let json = json_of(&ctx.run([
        "exec",
        "b64",
        "--json",
        "--",
        "printf 'caf\\303\\251\\n'; printf 'ok' >&2; exit 2",
    ]));
    assert_eq!(json["stdout"], "café\n");
    assert_eq!(json["stderr"], "ok");
    assert_eq!(json["exit_code"], 2);
    assert_eq!(keys(&json), ["exit_code", "signal", "stderr", "stdout"]);

    // `run --json`: the same fields next to the sandbox's; here stderr is the binary one.
    let output = ctx.run([
        "run",
        "--json",
        "--",
        "printf 'plain'; printf 'a\\200\\000b' >&2",
    ]);
    assert_eq!(output.status.code(), Some(0));
    let json = json_of(&output);
    assert_eq!(json["stdout"], "plain");
    assert!(json.get("stdout_base64").is_none(), "{json}");
    assert_eq!(json["stderr"], "a\u{fffd}\u{0}b");
    assert_eq!(
        b64.decode(json["stderr_base64"].as_str().unwrap()).unwrap(),
        b"a\x80\0b"
    );
    assert!(json["sandbox"]["id"].is_string(), "{json}");
}

#[test]
fn exec_timeout_and_signals_map_to_exit_codes() {
    let ctx = local_ctx!();
    ctx.ok(["create", "--name", "slow"]);
    let output = ctx.run(["exec", "slow", "--timeout", "1", "--", "sleep", "30"]);
    assert_eq!(output.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("did not finish within"), "{stderr}");
    let output = ctx.run(["exec", "slow", "--", "kill -9 $$"]);
    assert_eq!(output.status.code(), Some(137));
}

#[test]
fn files_round_trip() {
    let ctx = local_ctx!();
    ctx.ok(["create", "--name", "fs"]);
    let data: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let local = ctx.path().join("data.bin");
    std::fs::write(&local, &data).unwrap();
    ctx.ok([
        "files",
        "upload",
        "fs",
        local.to_str().unwrap(),
        "in/data.bin",
    ]);
    let read = ctx
        .cmd(["files", "read", "fs", "in/data.bin"])
        .output()
        .unwrap();
    assert_eq!(read.stdout, data);
    let back = ctx.path().join("back.bin");
    ctx.ok([
        "files",
        "download",
        "fs",
        "in/data.bin",
        back.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&back).unwrap(), data);

    ctx.cmd(["files", "write", "fs", "/tmp/note.txt"])
        .write_stdin("a note\n")
        .assert()
        .success();
    assert_eq!(ctx.ok(["files", "read", "fs", "/tmp/note.txt"]), "a note\n");
    ctx.ok(["files", "write", "fs", "empty", "--content", ""]);
    ctx.ok(["files", "mkdir", "fs", "dir/sub"]);
    let listing: serde_json::Value =
        serde_json::from_str(&ctx.ok(["files", "ls", "fs", "--json"])).unwrap();
    let names: Vec<&str> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"in") && names.contains(&"dir") && names.contains(&"empty"),
        "{names:?}"
    );
    let table = ctx.ok(["files", "ls", "fs", "in"]);
    assert!(
        table.starts_with("MODE") && table.contains("50000") && table.contains("data.bin"),
        "{table}"
    );

    ctx.ok(["files", "rm", "fs", "empty"]);
    assert_eq!(
        ctx.run(["files", "read", "fs", "empty"]).status.code(),
        Some(3)
    );
    assert_ne!(ctx.run(["files", "rm", "fs", "dir"]).status.code(), Some(0));
    ctx.ok(["files", "rm", "-r", "fs", "dir"]);
    assert_eq!(ctx.run(["files", "ls", "fs", "dir"]).status.code(), Some(3));
    // Folders travel whole.
    let tree = ctx.path().join("tree");
    std::fs::create_dir_all(tree.join("a/b")).unwrap();
    std::fs::write(tree.join("a/b/c.txt"), "deep\n").unwrap();
    std::fs::write(tree.join("top.txt"), "top\n").unwrap();
    ctx.ok(["files", "upload", "fs", tree.to_str().unwrap(), "tree"]);
    assert_eq!(ctx.ok(["files", "read", "fs", "tree/a/b/c.txt"]), "deep\n");
    let copy = ctx.path().join("copy");
    ctx.ok(["files", "download", "fs", "tree", copy.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(copy.join("a/b/c.txt")).unwrap(),
        "deep\n"
    );
    assert_eq!(
        std::fs::read_to_string(copy.join("top.txt")).unwrap(),
        "top\n"
    );
    // As with cp, a second download into that folder goes under its own name, and a third
    // meets the folder the second made: that must be asked for.
    ctx.ok(["files", "download", "fs", "tree", copy.to_str().unwrap()]);
    let nested = copy.join("tree");
    assert_eq!(
        std::fs::read_to_string(nested.join("a/b/c.txt")).unwrap(),
        "deep\n"
    );
    std::fs::write(nested.join("mine.txt"), "mine\n").unwrap();
    let again = ctx.run(["files", "download", "fs", "tree", copy.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("--merge") && stderr.contains("already exists"),
        "{stderr}"
    );
    ctx.ok([
        "files",
        "download",
        "--merge",
        "fs",
        "tree",
        copy.to_str().unwrap(),
    ]);
    assert!(
        nested.join("mine.txt").exists(),
        "a merge keeps local files"
    );
    ctx.ok([
        "files",
        "download",
        "--replace",
        "fs",
        "tree",
        copy.to_str().unwrap(),
    ]);
    assert!(!nested.join("mine.txt").exists(), "a replace does not");
    assert_eq!(
        std::fs::read_to_string(nested.join("a/b/c.txt")).unwrap(),
        "deep\n"
    );
    // `--id` shifts the positional arguments.
    let id = id_of(&ctx, "fs");
    assert_eq!(
        ctx.ok(["files", "read", "--id", &id, "/tmp/note.txt"]),
        "a note\n"
    );
}

#[test]
fn processes_launch_ps_logs_kill() {
    let ctx = local_ctx!();
    ctx.ok(["create", "--name", "procs"]);
    let pid = ctx
        .ok([
            "launch",
            "procs",
            "--",
            "while true; do echo tick; sleep 0.1; done",
        ])
        .trim()
        .to_owned();
    assert!(pid.parse::<u32>().is_ok(), "{pid}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = ctx.ok(["logs", "procs", "--pid", &pid, "--tail", "1"]);
        if log == "tick\n" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no output from the launched process: {log:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ps: serde_json::Value = serde_json::from_str(&ctx.ok(["ps", "procs", "--json"])).unwrap();
    assert!(
        ps.as_array()
            .unwrap()
            .iter()
            .any(|p| p["pid"].as_u64() == pid.parse().ok()),
        "{ps}"
    );
    ctx.ok(["kill", "procs", &pid, "--signal", "KILL"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ps: serde_json::Value =
            serde_json::from_str(&ctx.ok(["ps", "procs", "--json"])).unwrap();
        if !ps
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pid"].as_u64() == pid.parse().ok())
        {
            break;
        }
        assert!(Instant::now() < deadline, "process {pid} still running");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ctx.run(["kill", "procs", "999999"]).status.code(), Some(3));
    assert_eq!(
        ctx.run(["kill", "procs", "1", "--signal", "NOPE"])
            .status
            .code(),
        Some(2)
    );
    let logs = ctx.ok(["logs", "procs", "--tail", "50"]);
    assert!(logs.contains("ready"), "{logs}");
    let lines = ctx.ok(["logs", "procs", "--tail", "50", "--json"]);
    for line in lines.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(value["line"].is_string(), "{line}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&ctx.ok(["logs", "procs", "--pid", &pid, "--json"])).unwrap();
    assert!(
        json["output"].as_str().unwrap().starts_with("tick\n"),
        "{json}"
    );
}

#[test]
fn delete_all_asks_unless_forced() {
    let ctx = local_ctx!();
    ctx.ok(["create", "--name", "one"]);
    ctx.ok(["create", "--name", "two", "--no-wait"]);
    // Not a terminal: the question cannot be answered, so nothing is deleted.
    let output = ctx.run(["delete", "--all"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(ctx.ok(["list"]).contains("two"));
    let deleted: serde_json::Value =
        serde_json::from_str(&ctx.ok(["delete", "--all", "--force", "--json"])).unwrap();
    assert_eq!(deleted.as_array().unwrap().len(), 2);
    assert_eq!(ctx.ok(["list", "--json"]).trim(), "[]");
}

#[test]
fn config_file_sets_defaults_and_flags_win() {
    let ctx = local_ctx!();
    let dir = ctx.path().join("config").join("do-app-sandbox");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.yaml"),
        "provider: local\nimage: node\nregion: nyc1\n",
    )
    .unwrap();
    let created: serde_json::Value =
        serde_json::from_str(&ctx.ok(["create", "--name", "cfg", "--json"])).unwrap();
    assert_eq!(created["image"], "node");
    assert_eq!(created["region"], "nyc1");
    let created: serde_json::Value = serde_json::from_str(&ctx.ok([
        "create", "--name", "cfg2", "--image", "python", "--region", "ams3", "--json",
    ]))
    .unwrap();
    assert_eq!(created["image"], "python");
    assert_eq!(created["region"], "ams3");
    // An explicit provider that is not configured fails without a token, naming the cause.
    let output = ctx.run(["--provider", "digitalocean", "--driver", "api", "list"]);
    assert_eq!(output.status.code(), Some(4));
}

#[test]
fn interrupting_exec_kills_the_remote_command() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let ctx = local_ctx!();
    ctx.ok(["create", "--name", "intr"]);
    let mut child = ctx
        .std_cmd(["exec", "intr", "--", "echo started; sleep 300"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the command starts");
    assert_eq!(line, "started\n");
    let code = common::interrupt(&mut child, "exec");
    assert_eq!(code, Some(130));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ps = ctx.ok(["ps", "intr", "--filter", "sleep 300", "--json"]);
        let ps: serde_json::Value = serde_json::from_str(&ps).unwrap();
        // `ps --filter` lists its own command line too; only a real `sleep` counts.
        let alive = ps.as_array().unwrap().iter().any(|p| {
            p["command"]
                .as_str()
                .is_some_and(|c| c.starts_with("sleep 300"))
        });
        if !alive {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the remote command survived: {ps}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ttl_shows_in_list_and_gc_and_extend_explain_themselves() {
    let ctx = local_ctx!();
    let created: serde_json::Value =
        serde_json::from_str(&ctx.ok(["create", "--name", "brief", "--ttl", "2h", "--json"]))
            .unwrap();
    let expires = created["expires_at"]
        .as_str()
        .expect("expires_at")
        .to_owned();
    assert!(expires.ends_with('Z'), "{expires}");
    let list: serde_json::Value = serde_json::from_str(&ctx.ok(["list", "--json"])).unwrap();
    assert_eq!(list[0]["expires_at"].as_str(), Some(expires.as_str()));
    let table = ctx.ok(["list"]);
    assert!(table.lines().next().unwrap().contains("EXPIRES"), "{table}");
    assert!(table.contains("in 1h"), "{table}");
    // Nothing is expired yet: gc deletes nothing.
    assert_eq!(ctx.ok(["gc", "--dry-run", "--json"]).trim(), "[]");
    assert_eq!(ctx.ok(["gc", "--json"]).trim(), "[]");
    // The expiry cannot move without a redeploy: a clear refusal.
    let extend = ctx.run(["extend", "brief", "30m"]);
    assert_eq!(extend.status.code(), Some(2), "{extend:?}");
    let stderr = String::from_utf8_lossy(&extend.stderr);
    assert!(stderr.contains("redeploys"), "{stderr}");
    assert!(ctx.run(["create", "--ttl", "soon"]).status.code() == Some(2));
    ctx.ok(["delete", "brief"]);
}

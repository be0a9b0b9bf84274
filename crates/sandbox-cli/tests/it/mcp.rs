//! `sandbox mcp` end to end: the binary spawned with its stdio piped, spoken to in
//! newline-delimited JSON-RPC as an MCP client would, on the local provider (skipped, with a
//! reason, where local sandboxes cannot run; failed under SANDBOX_REQUIRE_LOCAL=1). Also the
//! official Python MCP SDK driving it (`crates/sandbox-mcp/tests/interop_client.py`).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::common::TestContext;

macro_rules! local_ctx {
    () => {
        match TestContext::local() {
            Some(ctx) => ctx,
            None => return,
        }
    };
}

/// The deadline of one request (creating a sandbox included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(180);

/// A `sandbox mcp` child and the client side of its stdio.
struct Mcp {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
    next_id: u64,
    pub initialized: Value,
    /// Notifications (and responses to other ids) read while waiting for a response.
    pub others: Vec<Value>,
}

impl Mcp {
    /// Starts `sandbox mcp ARGS...` in this context and completes the handshake.
    fn start(ctx: &TestContext, args: &[&str]) -> Mcp {
        let mut cmd = ctx.std_cmd(std::iter::once("mcp").chain(args.iter().copied()));
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start sandbox mcp");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().expect("stderr log");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut mcp = Mcp {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr: log,
            next_id: 1,
            initialized: Value::Null,
            others: Vec::new(),
        };
        let init = mcp.request(
            "initialize",
            json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "sandbox-cli-tests", "version": "1"},
            }),
        );
        mcp.initialized = init["result"].clone();
        assert_eq!(
            mcp.initialized["serverInfo"]["name"], "sandbox-mcp",
            "{init}"
        );
        mcp.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        mcp
    }

    fn send(&mut self, message: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{message}").expect("write to the server");
        stdin.flush().expect("flush");
    }

    /// Sends a request and returns the response with its id (notifications are kept in
    /// `others`).
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params);
        self.response(id, method)
    }

    /// Sends a request without waiting for its answer; returns its id.
    fn send_request(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    /// Reads messages until the response to `id`.
    fn response(&mut self, id: u64, what: &str) -> Value {
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        loop {
            let message = self.next_message(deadline, what);
            if message["id"] == json!(id) && message.get("method").is_none() {
                return message;
            }
            self.others.push(message);
        }
    }

    /// The first notification of this method (read until it comes, for 30 s at most).
    fn notification(&mut self, method: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(found) = self.others.iter().find(|m| m["method"] == method) {
                return found.clone();
            }
            let message = self.next_message(deadline, method);
            self.others.push(message);
        }
    }

    fn next_message(&mut self, deadline: Instant, what: &str) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = self.lines.recv_timeout(left).unwrap_or_else(|e| {
            panic!(
                "nothing for {what} ({e}); server stderr:\n{}",
                self.stderr()
            )
        });
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout holds only JSON-RPC: {e}: {line}"))
    }

    /// `tools/call`: the result (success or tool error).
    fn call(&mut self, tool: &str, arguments: Value) -> Value {
        let response = self.request("tools/call", json!({"name": tool, "arguments": arguments}));
        assert!(
            response.get("error").is_none(),
            "{tool}: a protocol error instead of a tool result: {response}"
        );
        response["result"].clone()
    }

    /// A call that must succeed: its structured content.
    fn ok(&mut self, tool: &str, arguments: Value) -> Value {
        let result = self.call(tool, arguments);
        assert_eq!(result["isError"], false, "{tool} failed: {result}");
        let structured = result["structuredContent"].clone();
        // The text content carries the same JSON, for clients that read only text.
        let text: Value =
            serde_json::from_str(result["content"][0]["text"].as_str().expect("text content"))
                .expect("JSON text");
        assert_eq!(text, structured);
        structured
    }

    /// A call that must fail as a tool error: its message.
    fn err(&mut self, tool: &str, arguments: Value) -> String {
        let result = self.call(tool, arguments);
        assert_eq!(
            result["isError"], true,
            "{tool} should have failed: {result}"
        );
        result["content"][0]["text"]
            .as_str()
            .expect("error text")
            .to_owned()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr log").clone()
    }

    /// Closes stdin (the client going away) and waits for the server to exit.
    fn close(mut self) -> (ExitStatus, String) {
        drop(self.stdin.take());
        let status = self.wait("after stdin closed");
        (status, self.stderr())
    }

    fn wait(&mut self, what: &str) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the server") {
                // Its stderr reader ends with the process.
                let _ = self.lines.recv_timeout(Duration::from_millis(100));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "sandbox mcp did not exit {what}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Mcp {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn listed_names(ctx: &TestContext) -> Vec<String> {
    let list: Value = serde_json::from_str(&ctx.ok(["list", "--json"])).expect("list JSON");
    list.as_array()
        .expect("array")
        .iter()
        .map(|s| s["name"].as_str().expect("name").to_owned())
        .collect()
}

#[test]
fn mcp_help_needs_no_sandbox() {
    let ctx = TestContext::bare();
    let help = ctx.ok(["mcp", "--help"]);
    for flag in [
        "--ttl",
        "--keep",
        "--max-sandboxes",
        "--allow-any",
        "--allow-host-files",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn mcp_lists_tools_with_schemas_and_annotations() {
    let ctx = TestContext::bare();
    let mut mcp = Mcp::start(&ctx, &[]);
    assert!(mcp.initialized["capabilities"]["tools"].is_object());
    let tools = mcp.request("tools/list", json!({}))["result"]["tools"].clone();
    let tools = tools.as_array().expect("tools");
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for expected in [
        "create_sandbox",
        "list_sandboxes",
        "delete_sandbox",
        "exec",
        "exec_start",
        "exec_poll",
        "exec_signal",
        "read_file",
        "write_file",
        "list_dir",
        "stat",
        "remove",
        "mkdir",
        "launch_process",
        "list_processes",
        "process_logs",
        "kill_process",
        "get_url",
        "upload_file",
        "download_file",
        "session_start",
        "session_exec",
        "session_close",
        "snapshot_create",
        "snapshot_restore",
        "snapshot_list",
    ] {
        assert!(names.contains(&expected), "{expected} missing: {names:?}");
    }
    for tool in tools {
        let name = tool["name"].as_str().unwrap();
        assert_eq!(tool["inputSchema"]["type"], "object", "{name}");
        let description = tool["description"].as_str().expect("a description");
        assert!(description.len() > 40, "{name}: {description}");
        assert!(
            !description.contains('\n'),
            "{name}: one paragraph: {description}"
        );
        let hints = &tool["annotations"];
        for hint in ["readOnlyHint", "destructiveHint", "idempotentHint"] {
            assert!(hints[hint].is_boolean(), "{name} lacks {hint}: {hints}");
        }
    }
    let by_name = |n: &str| tools.iter().find(|t| t["name"] == n).unwrap();
    assert_eq!(
        by_name("list_sandboxes")["annotations"]["readOnlyHint"],
        true
    );
    assert_eq!(by_name("read_file")["annotations"]["readOnlyHint"], true);
    assert_eq!(
        by_name("delete_sandbox")["annotations"]["destructiveHint"],
        true
    );
    assert_eq!(
        by_name("create_sandbox")["annotations"]["destructiveHint"],
        false
    );
    let exec = &by_name("exec")["inputSchema"];
    assert_eq!(exec["required"], json!(["sandbox"]));
    assert!(
        exec["properties"]["timeout_seconds"]["description"]
            .as_str()
            .unwrap()
            .contains("default 60")
    );
    // Unknown tools are protocol errors; a bad argument is a tool error the model can read.
    let unknown = mcp.request("tools/call", json!({"name": "nope", "arguments": {}}));
    assert!(unknown.get("error").is_some(), "{unknown}");
    let message = mcp.err("exec", json!({"sandbox": 7}));
    assert!(message.contains("string"), "{message}");
    let message = mcp.err(
        "read_file",
        json!({"sandbox": "x", "path": "a", "mode": "r"}),
    );
    assert!(message.contains("mode"), "{message}");
    let (status, _) = mcp.close();
    assert!(status.success());
}

#[test]
fn mcp_tools_work_on_the_local_provider() {
    let ctx = local_ctx!();
    let mut mcp = Mcp::start(&ctx, &[]);
    let created = mcp.ok(
        "create_sandbox",
        json!({"image": "python", "name": "mcp-tools"}),
    );
    assert_eq!(created["sandbox"], "mcp-tools");
    assert!(created["expires_at"].is_string(), "{created}");
    let sb = "mcp-tools";

    // exec: a shell line, argv, cwd, env, stdin; exit codes; non-UTF-8 output.
    let out = mcp.ok(
        "exec",
        json!({"sandbox": sb, "command": "python3 -c 'print(6*7)'"}),
    );
    assert_eq!(out["stdout"], "42\n");
    assert_eq!(out["exit_code"], 0);
    assert_eq!(out["stderr"], "");
    assert!(out.get("stdout_base64").is_none());
    let out = mcp.ok(
        "exec",
        json!({"sandbox": sb, "argv": ["sh", "-c", "cd; pwd >/dev/null; echo \"$GREETING\"; cat; exit 3"],
               "env": {"GREETING": "hi there"}, "stdin": "from stdin"}),
    );
    assert_eq!(out["stdout"], "hi there\nfrom stdin");
    assert_eq!(out["exit_code"], 3);
    let out = mcp.ok(
        "exec",
        json!({"sandbox": sb, "command": "pwd", "cwd": "/tmp"}),
    );
    assert_eq!(out["stdout"], "/tmp\n");
    let out = mcp.ok(
        "exec",
        json!({"sandbox": sb, "command": "printf 'a\\377b'; printf err >&2"}),
    );
    assert_eq!(out["stdout"], "a\u{fffd}b");
    assert_eq!(out["stdout_base64"], "Yf9i");
    assert_eq!(out["stderr"], "err");
    let out = mcp.ok(
        "exec",
        json!({"sandbox": sb, "argv": ["cat"], "stdin_base64": "AP8A"}),
    );
    assert_eq!(out["stdout_base64"], "AP8A");

    // Huge output is cut to a head and a tail, with the total stated.
    let out = mcp.ok(
        "exec",
        json!({"sandbox": sb, "command": "head -c 1000000 /dev/zero | tr '\\0' x; echo END"}),
    );
    assert_eq!(out["stdout_truncated"]["total_bytes"], 1_000_004);
    let text = out["stdout"].as_str().unwrap();
    assert!(text.len() < 70_000, "{}", text.len());
    assert!(text.ends_with("xxEND\n") && text.contains("bytes left out of 1000004"));

    // A timeout is a tool error that keeps what the command printed.
    let started = Instant::now();
    let message = mcp.err(
        "exec",
        json!({"sandbox": sb, "command": "echo before; sleep 30", "timeout_seconds": 1}),
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        message.contains("timed out after 1 s") && message.contains("before"),
        "{message}"
    );

    // Files, byte for byte.
    let text = "line 1\n\nline 3 é\r\n";
    mcp.ok(
        "write_file",
        json!({"sandbox": sb, "path": "notes/it's.txt", "text": text}),
    );
    let back = mcp.ok(
        "read_file",
        json!({"sandbox": sb, "path": "notes/it's.txt"}),
    );
    assert_eq!(back["text"], text);
    assert_eq!(back["size"], text.len());
    let raw: Vec<u8> = (0..=255u8).chain([0xff, 0xfe, 0]).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
    mcp.ok(
        "write_file",
        json!({"sandbox": sb, "path": "bin/raw.bin", "base64": b64}),
    );
    let back = mcp.ok("read_file", json!({"sandbox": sb, "path": "bin/raw.bin"}));
    assert_eq!(back["base64"], b64);
    assert!(back.get("text").is_none());
    mcp.ok(
        "write_file",
        json!({"sandbox": sb, "path": "bin/raw.bin", "text": "!", "append": true}),
    );
    let back = mcp.ok("read_file", json!({"sandbox": sb, "path": "bin/raw.bin"}));
    assert_eq!(back["size"], raw.len() + 1);
    let message = mcp.err(
        "write_file",
        json!({"sandbox": sb, "path": "x", "text": "a", "base64": "YQ=="}),
    );
    assert!(message.contains("not both"), "{message}");
    mcp.ok("mkdir", json!({"sandbox": sb, "path": "deep/er/folder"}));
    let listing = mcp.ok("list_dir", json!({"sandbox": sb, "path": "notes"}));
    assert_eq!(listing["entries"][0]["name"], "it's.txt");
    assert_eq!(listing["entries"][0]["kind"], "file");
    let stat = mcp.ok("stat", json!({"sandbox": sb, "path": "deep/er"}));
    assert_eq!(
        (stat["exists"].clone(), stat["kind"].clone()),
        (json!(true), json!("dir"))
    );
    let message = mcp.err("remove", json!({"sandbox": sb, "path": "deep"}));
    assert!(!message.is_empty());
    mcp.ok(
        "remove",
        json!({"sandbox": sb, "path": "deep", "recursive": true}),
    );
    let stat = mcp.ok("stat", json!({"sandbox": sb, "path": "deep"}));
    assert_eq!(stat["exists"], false);
    let message = mcp.err("read_file", json!({"sandbox": sb, "path": "missing.txt"}));
    assert!(message.contains("missing.txt"), "{message}");

    // A long command through exec_start / exec_poll.
    let started = mcp.ok(
        "exec_start",
        json!({"sandbox": sb, "command": "for i in 1 2 3 4; do echo tick $i; sleep 0.3; done; echo done >&2; exit 4"}),
    );
    let id = started["exec_id"].as_str().unwrap().to_owned();
    let (mut stdout, mut stderr, mut polls) = (String::new(), String::new(), 0);
    let last = loop {
        let polled = mcp.ok("exec_poll", json!({"exec_id": id, "wait_seconds": 5}));
        polls += 1;
        assert!(polls < 100, "no end: {polled}");
        stdout.push_str(polled["stdout"].as_str().unwrap());
        stderr.push_str(polled["stderr"].as_str().unwrap());
        if polled["running"] == false && polled["more_output"] == false {
            break polled;
        }
    };
    assert_eq!(stdout, "tick 1\ntick 2\ntick 3\ntick 4\n");
    assert_eq!(stderr, "done\n");
    assert_eq!(last["exit_code"], 4);
    assert!(polls >= 2, "output came as it was printed: {polls} polls");
    // Once read to the end, the command is forgotten.
    let message = mcp.err("exec_poll", json!({"exec_id": id}));
    assert!(message.contains("no command"), "{message}");

    // exec_signal kills a running command.
    let started = mcp.ok(
        "exec_start",
        json!({"sandbox": sb, "command": "echo up; exec sleep 300"}),
    );
    let id = started["exec_id"].as_str().unwrap().to_owned();
    let polled = mcp.ok("exec_poll", json!({"exec_id": id, "wait_seconds": 10}));
    assert_eq!(polled["stdout"], "up\n");
    let killed = mcp.ok("exec_signal", json!({"exec_id": id}));
    assert_eq!(killed["killed"], true);
    let polled = mcp.ok("exec_poll", json!({"exec_id": id, "wait_seconds": 0}));
    assert_eq!(
        (polled["running"].clone(), polled["killed"].clone()),
        (json!(false), json!(true))
    );
    let procs = mcp.ok(
        "exec",
        json!({"sandbox": sb, "command": "sleep 1; ps -eo args | grep -c '^sleep 300' || true"}),
    );
    assert_eq!(procs["stdout"], "0\n", "the killed command is gone");

    // Other signals reach the command's process, which may handle them.
    let started = mcp.ok(
        "exec_start",
        json!({"sandbox": sb, "command": "trap 'echo got TERM; exit 7' TERM; echo up; while :; do sleep 0.1; done"}),
    );
    let id = started["exec_id"].as_str().unwrap().to_owned();
    let polled = mcp.ok("exec_poll", json!({"exec_id": id, "wait_seconds": 10}));
    assert_eq!(polled["stdout"], "up\n");
    let sent = mcp.ok("exec_signal", json!({"exec_id": id, "signal": "TERM"}));
    assert_eq!(sent["signal"], 15, "{sent}");
    let mut stdout = String::new();
    let last = loop {
        let polled = mcp.ok("exec_poll", json!({"exec_id": id, "wait_seconds": 10}));
        stdout.push_str(polled["stdout"].as_str().unwrap());
        if polled["running"] == false && polled["more_output"] == false {
            break polled;
        }
    };
    assert_eq!(stdout, "got TERM\n");
    assert_eq!(last["exit_code"], 7, "{last}");
    let started = mcp.ok(
        "exec_start",
        json!({"sandbox": sb, "argv": ["sh", "-c", "echo ready; exec sleep 302"], "stdin": "unused"}),
    );
    let id = started["exec_id"].as_str().unwrap().to_owned();
    mcp.ok("exec_poll", json!({"exec_id": id, "wait_seconds": 10}));
    mcp.ok("exec_signal", json!({"exec_id": id, "signal": "INT"}));
    let last = loop {
        let polled = mcp.ok("exec_poll", json!({"exec_id": id, "wait_seconds": 10}));
        if polled["running"] == false && polled["more_output"] == false {
            break polled;
        }
    };
    assert_eq!(last["signal"], 2, "{last}");
    // exec_start passes its stdin through the wrapper that records the pid.
    let started = mcp.ok(
        "exec_start",
        json!({"sandbox": sb, "argv": ["cat"], "stdin_base64": "AP8K"}),
    );
    let id = started["exec_id"].as_str().unwrap().to_owned();
    let mut b64 = None;
    for _ in 0..20 {
        let polled = mcp.ok("exec_poll", json!({"exec_id": id, "wait_seconds": 10}));
        if polled.get("stdout_base64").is_some() {
            b64 = polled["stdout_base64"].as_str().map(str::to_owned);
        }
        if polled["running"] == false && polled["more_output"] == false {
            assert_eq!(polled["exit_code"], 0);
            break;
        }
    }
    assert_eq!(b64.as_deref(), Some("AP8K"));

    // Background processes.
    let launched = mcp.ok(
        "launch_process",
        json!({"sandbox": sb, "command": "echo started; exec sleep 600"}),
    );
    let pid = launched["pid"].as_u64().unwrap();
    let listed = mcp.ok(
        "list_processes",
        json!({"sandbox": sb, "pattern": "sleep 600"}),
    );
    assert!(
        listed["processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pid"] == pid),
        "{listed}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = mcp.ok("process_logs", json!({"sandbox": sb, "pid": pid}));
        if logs["output"] == "started\n" {
            break;
        }
        assert!(Instant::now() < deadline, "{logs}");
    }
    mcp.ok(
        "kill_process",
        json!({"sandbox": sb, "pid": pid, "signal": "KILL"}),
    );
    let message = mcp.err(
        "kill_process",
        json!({"sandbox": sb, "pid": pid, "signal": "NOPE"}),
    );
    assert!(message.contains("not a signal"), "{message}");

    // A worker has no URL; the error says why.
    let message = mcp.err("get_url", json!({"sandbox": sb}));
    assert!(message.contains("service"), "{message}");
    // Host files are off without --allow-host-files.
    let message = mcp.err(
        "upload_file",
        json!({"sandbox": sb, "host_path": "a", "path": "b"}),
    );
    assert!(message.contains("--allow-host-files"), "{message}");

    // A session keeps `cd` and `export` from one command to the next.
    let session = mcp.ok("session_start", json!({"sandbox": sb}));
    let sid = session["session_id"].as_str().unwrap().to_owned();
    mcp.ok(
        "session_exec",
        json!({"session_id": sid, "command": "mkdir -p /tmp/w && cd /tmp/w && export ANSWER=42"}),
    );
    let out = mcp.ok(
        "session_exec",
        json!({"session_id": sid, "command": "pwd; echo $ANSWER"}),
    );
    assert_eq!(out["stdout"], "/tmp/w\n42\n");
    let out = mcp.ok(
        "exec",
        json!({"sandbox": sb, "command": "echo \"[$ANSWER]\""}),
    );
    assert_eq!(
        out["stdout"], "[]\n",
        "exec does not share the session's state"
    );
    mcp.ok("session_close", json!({"session_id": sid}));
    let message = mcp.err(
        "session_exec",
        json!({"session_id": sid, "command": "true"}),
    );
    assert!(message.contains("no session"), "{message}");

    let listed = mcp.ok("list_sandboxes", json!({}));
    assert_eq!(listed["sandboxes"][0]["sandbox"], sb);
    assert_eq!(listed["sandboxes"][0]["created_by_this_server"], true);
    let deleted = mcp.ok("delete_sandbox", json!({"sandbox": sb}));
    assert_eq!(deleted["deleted"], sb);
    assert!(listed_names(&ctx).is_empty());
    let message = mcp.err("exec", json!({"sandbox": sb, "command": "true"}));
    assert!(message.contains("no sandbox `mcp-tools`"), "{message}");
    let (status, stderr) = mcp.close();
    assert!(status.success(), "{stderr}");
}

#[test]
fn mcp_reports_progress_and_a_cancel_kills_the_command() {
    let ctx = local_ctx!();
    let mut mcp = Mcp::start(&ctx, &[]);
    let created = mcp.request(
        "tools/call",
        json!({"name": "create_sandbox", "arguments": {"name": "progress"},
               "_meta": {"progressToken": "create-1"}}),
    );
    assert_eq!(created["result"]["isError"], false, "{created}");
    let progress = mcp.notification("notifications/progress");
    assert_eq!(
        progress["params"]["progressToken"], "create-1",
        "{progress}"
    );
    assert!(progress["params"]["message"].is_string(), "{progress}");

    // An MCP cancel of a running exec kills the remote command.
    let id = mcp.send_request(
        "tools/call",
        json!({"name": "exec", "arguments": {"sandbox": "progress", "command": "exec sleep 301"}}),
    );
    let running = |mcp: &mut Mcp| {
        let out = mcp.ok(
            "exec",
            json!({"sandbox": "progress", "command": "ps -eo args | grep -c '^sleep 301' || true"}),
        );
        out["stdout"].as_str().expect("stdout").trim().to_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while running(&mut mcp) != "1" {
        assert!(Instant::now() < deadline, "the command never started");
    }
    mcp.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                     "params": {"requestId": id, "reason": "test"}}),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while running(&mut mcp) != "0" {
        assert!(
            Instant::now() < deadline,
            "the cancelled command still runs"
        );
    }
    let (status, _) = mcp.close();
    assert!(status.success());
    assert!(listed_names(&ctx).is_empty());
}

#[test]
fn mcp_exit_deletes_its_sandboxes_unless_kept() {
    let ctx = local_ctx!();
    // The client closing stdin.
    let mut mcp = Mcp::start(&ctx, &[]);
    let a = mcp.ok("create_sandbox", json!({}))["sandbox"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = mcp.ok("create_sandbox", json!({"image": "node"}))["sandbox"]
        .as_str()
        .unwrap()
        .to_owned();
    mcp.ok("exec_start", json!({"sandbox": a, "command": "sleep 300"}));
    let mut names = listed_names(&ctx);
    names.sort();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(names, expected);
    let (status, stderr) = mcp.close();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("deleted 2 sandbox"), "{stderr}");
    assert!(listed_names(&ctx).is_empty());

    // SIGTERM.
    let mut mcp = Mcp::start(&ctx, &[]);
    mcp.ok("create_sandbox", json!({}));
    assert_eq!(listed_names(&ctx).len(), 1);
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &mcp.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let status = mcp.wait("after SIGTERM");
    assert!(status.success(), "{}", mcp.stderr());
    assert!(listed_names(&ctx).is_empty());

    // The client going away while a sandbox is being made: it is not left behind.
    let mut mcp = Mcp::start(&ctx, &[]);
    mcp.send_request(
        "tools/call",
        json!({"name": "create_sandbox", "arguments": {"name": "half-made"}}),
    );
    let (status, stderr) = mcp.close();
    assert!(status.success(), "{stderr}");
    assert!(listed_names(&ctx).is_empty(), "{stderr}");

    // --keep: the sandbox stays, with its expiry.
    let mut mcp = Mcp::start(&ctx, &["--keep", "--ttl", "10m"]);
    let kept = mcp.ok("create_sandbox", json!({}))["sandbox"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, stderr) = mcp.close();
    assert!(status.success(), "{stderr}");
    assert_eq!(listed_names(&ctx), std::slice::from_ref(&kept));
    let list: Value = serde_json::from_str(&ctx.ok(["list", "--json"])).unwrap();
    let expires = time::OffsetDateTime::parse(
        list[0]["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = (expires - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!((500..=600).contains(&left), "{left}");
    ctx.ok(["delete", &kept]);
}

#[test]
fn mcp_snapshots_round_trip_and_stay_the_servers() {
    let ctx = local_ctx!();
    let mut mcp = Mcp::start(&ctx, &[]);
    let sb = mcp.ok("create_sandbox", json!({}))["sandbox"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = "/home/sandbox/app/state.txt";
    mcp.ok(
        "write_file",
        json!({"sandbox": sb, "path": file, "text": "v1\n"}),
    );
    let snap = mcp.ok(
        "snapshot_create",
        json!({"sandbox": sb, "description": "v1"}),
    );
    let id = snap["snapshot_id"].as_str().unwrap().to_owned();
    assert_eq!(snap["kind"], "full");
    assert!(snap["files"].as_u64().unwrap() >= 1, "{snap}");
    mcp.ok(
        "write_file",
        json!({"sandbox": sb, "path": file, "text": "v2\n"}),
    );
    mcp.ok(
        "write_file",
        json!({"sandbox": sb, "path": "/home/sandbox/app/new.txt", "text": "x"}),
    );
    let restored = mcp.ok(
        "snapshot_restore",
        json!({"sandbox": sb, "snapshot_id": id}),
    );
    assert_eq!(restored["restored_into"], sb.as_str());
    let back = mcp.ok("read_file", json!({"sandbox": sb, "path": file}));
    assert_eq!(back["text"], "v1\n");
    let gone = mcp.ok(
        "stat",
        json!({"sandbox": sb, "path": "/home/sandbox/app/new.txt"}),
    );
    assert_eq!(gone["exists"], false);
    let listed = mcp.ok("snapshot_list", json!({}));
    assert_eq!(listed["snapshots"][0]["snapshot_id"], id.as_str());
    let (status, _) = mcp.close();
    assert!(status.success());

    // Another server does not see it, nor restore it, unless --allow-any.
    let mut mcp = Mcp::start(&ctx, &[]);
    let sb = mcp.ok("create_sandbox", json!({}))["sandbox"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = mcp.ok("snapshot_list", json!({}));
    assert_eq!(listed["snapshots"], json!([]));
    let message = mcp.err(
        "snapshot_restore",
        json!({"sandbox": sb, "snapshot_id": id}),
    );
    assert!(message.contains("--allow-any"), "{message}");
    let (status, _) = mcp.close();
    assert!(status.success());
    let mut mcp = Mcp::start(&ctx, &["--allow-any"]);
    let sb = mcp.ok("create_sandbox", json!({}))["sandbox"]
        .as_str()
        .unwrap()
        .to_owned();
    mcp.ok(
        "snapshot_restore",
        json!({"sandbox": sb, "snapshot_id": id}),
    );
    let back = mcp.ok("read_file", json!({"sandbox": sb, "path": file}));
    assert_eq!(back["text"], "v1\n");
    let (status, _) = mcp.close();
    assert!(status.success());
}

#[test]
fn mcp_never_shows_the_hosts_tokens() {
    let mut ctx = local_ctx!();
    let token = format!("dop_v1_{}", "0123456789abcdef".repeat(4));
    let spaces = "spaces-secret-key-value".to_owned();
    ctx.env.push(("DIGITALOCEAN_TOKEN".into(), token.clone()));
    ctx.env.push(("SPACES_SECRET_KEY".into(), spaces.clone()));
    let mut mcp = Mcp::start(&ctx, &[]);
    let sb = mcp.ok(
        "create_sandbox",
        json!({"env": {"LEAK": token, "LEAK2": spaces}}),
    )["sandbox"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = mcp.ok(
        "exec",
        json!({"sandbox": sb, "command": "echo \"$LEAK $LEAK2\"; echo $LEAK >&2"}),
    );
    assert_eq!(out["stdout"], "[redacted] [redacted]\n");
    assert_eq!(out["stderr"], "[redacted]\n");
    mcp.ok(
        "write_file",
        json!({"sandbox": sb, "path": "t.txt", "text": token}),
    );
    let back = mcp.ok("read_file", json!({"sandbox": sb, "path": "t.txt"}));
    assert_eq!(back["text"], "[redacted]");
    let message = mcp.err("exec", json!({"sandbox": token, "command": "true"}));
    assert!(
        !message.contains(&token) && message.contains("[redacted]"),
        "{message}"
    );
    let (status, stderr) = mcp.close();
    assert!(status.success());
    assert!(!stderr.contains(&token), "{stderr}");
}

#[test]
fn mcp_caps_sandboxes_and_keeps_to_its_own() {
    let ctx = local_ctx!();
    ctx.ok(["create", "--name", "outsider"]);
    let mut mcp = Mcp::start(&ctx, &["--max-sandboxes", "1"]);
    let mine = mcp.ok("create_sandbox", json!({}))["sandbox"]
        .as_str()
        .unwrap()
        .to_owned();
    let message = mcp.err("create_sandbox", json!({}));
    assert!(
        message.contains("the most it may have: 1") && message.contains(&mine),
        "{message}"
    );
    let message = mcp.err("create_sandbox", json!({"image": "cobol"}));
    assert!(message.contains("cobol"), "{message}");
    // Another client's sandbox: not listed, not usable, not deletable.
    let listed = mcp.ok("list_sandboxes", json!({}));
    assert_eq!(listed["sandboxes"].as_array().unwrap().len(), 1, "{listed}");
    let message = mcp.err("delete_sandbox", json!({"sandbox": "outsider"}));
    assert!(message.contains("--allow-any"), "{message}");
    let message = mcp.err("exec", json!({"sandbox": "outsider", "command": "true"}));
    assert!(message.contains("--allow-any"), "{message}");
    let (status, _) = mcp.close();
    assert!(status.success());
    assert_eq!(listed_names(&ctx), ["outsider"]);

    // With --allow-any it is reachable, and the server still deletes only its own at exit.
    let mut mcp = Mcp::start(&ctx, &["--allow-any"]);
    let out = mcp.ok(
        "exec",
        json!({"sandbox": "outsider", "command": "echo reached"}),
    );
    assert_eq!(out["stdout"], "reached\n");
    let listed = mcp.ok("list_sandboxes", json!({}));
    assert_eq!(
        listed["sandboxes"][0]["created_by_this_server"], false,
        "{listed}"
    );
    let (status, _) = mcp.close();
    assert!(status.success());
    assert_eq!(listed_names(&ctx), ["outsider"]);
    let mut mcp = Mcp::start(&ctx, &["--allow-any"]);
    mcp.ok("delete_sandbox", json!({"sandbox": "outsider"}));
    drop(mcp);
    assert!(listed_names(&ctx).is_empty());
}

#[test]
fn mcp_host_files_stay_in_the_allowed_folder() {
    let ctx = local_ctx!();
    let allowed = ctx.path().join("shared");
    std::fs::create_dir_all(allowed.join("in")).unwrap();
    std::fs::write(allowed.join("in/data.bin"), [0u8, 1, 2, 255]).unwrap();
    std::fs::write(ctx.path().join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(ctx.path().join("secret.txt"), allowed.join("link")).unwrap();
    let mut mcp = Mcp::start(&ctx, &["--allow-host-files", allowed.to_str().unwrap()]);
    let sb = mcp.ok("create_sandbox", json!({}))["sandbox"]
        .as_str()
        .unwrap()
        .to_owned();
    let up = mcp.ok(
        "upload_file",
        json!({"sandbox": sb, "host_path": "in/data.bin", "path": "data.bin"}),
    );
    assert_eq!(up["bytes"], 4);
    let down = mcp.ok(
        "download_file",
        json!({"sandbox": sb, "path": "data.bin", "host_path": "out/new/copy.bin"}),
    );
    assert_eq!(down["bytes"], 4);
    assert_eq!(
        std::fs::read(allowed.join("out/new/copy.bin")).unwrap(),
        [0u8, 1, 2, 255]
    );
    for escape in ["../secret.txt", "link", "in/../../secret.txt"] {
        let message = mcp.err(
            "upload_file",
            json!({"sandbox": sb, "host_path": escape, "path": "x"}),
        );
        assert!(
            message.contains("leaves the allowed folder"),
            "{escape}: {message}"
        );
    }
    let absolute: PathBuf = ctx.path().join("secret.txt");
    let message = mcp.err(
        "upload_file",
        json!({"sandbox": sb, "host_path": absolute, "path": "x"}),
    );
    assert!(message.contains("absolute"), "{message}");
    for escape in ["../stolen.bin", "out/../../stolen.bin", "link"] {
        let message = mcp.err(
            "download_file",
            json!({"sandbox": sb, "path": "data.bin", "host_path": escape}),
        );
        assert!(
            message.contains("leaves the allowed folder"),
            "{escape}: {message}"
        );
    }
    assert!(!ctx.path().join("stolen.bin").exists());
    assert_eq!(
        std::fs::read_to_string(ctx.path().join("secret.txt")).unwrap(),
        "secret"
    );
    let (status, _) = mcp.close();
    assert!(status.success());
}

/// The Python interpreter with the official `mcp` package: `SANDBOX_MCP_PYTHON`, else the
/// venv `.ci/run` makes in the target folder.
fn python_with_mcp() -> Option<PathBuf> {
    if let Ok(python) = std::env::var("SANDBOX_MCP_PYTHON") {
        return Some(PathBuf::from(python));
    }
    // target/<profile>/sandbox → target/mcp-venv
    let target = PathBuf::from(crate::common::bin())
        .parent()?
        .parent()?
        .to_path_buf();
    let python = target.join("mcp-venv/bin/python3");
    python.exists().then_some(python)
}

#[test]
fn python_mcp_sdk_drives_the_server() {
    let ctx = local_ctx!();
    let Some(python) = python_with_mcp() else {
        assert!(
            !sandbox_testkit::local_required(),
            "the Python MCP SDK is not installed (run .ci/run, or set SANDBOX_MCP_PYTHON to a \
             python3 that has `pip install mcp`), and SANDBOX_REQUIRE_LOCAL=1 requires this test"
        );
        eprintln!("skipping: no Python with the `mcp` package (see .ci/run)");
        return;
    };
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sandbox-mcp/tests/interop_client.py");
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(&script).arg(crate::common::bin()).args([
        "--local-dir",
        ctx.local_dir().to_str().unwrap(),
        "mcp",
    ]);
    // The context's environment (HOME, no provider variables), then the interpreter.
    let base = ctx.std_cmd(["unused"]);
    cmd.env_clear();
    for (key, value) in base.get_envs() {
        if let Some(value) = value {
            cmd.env(key, value);
        }
    }
    cmd.env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(ctx.path())
        .stdin(Stdio::null());
    let output = assert_cmd::Command::from_std(cmd)
        .timeout(Duration::from_secs(300))
        .output()
        .expect("run the Python client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let findings: Value = serde_json::from_str(stdout.trim()).expect("the client's findings");
    assert_eq!(findings["print_6x7"], "42\n");
    assert_eq!(findings["server"], "sandbox-mcp");
    assert_eq!(findings["bad_argument_is_tool_error"], true);
    assert!(
        listed_names(&ctx).is_empty(),
        "the client deleted its sandbox"
    );
}

/// `sandbox mcp --http 127.0.0.1:0` in this context: the child, its URL and its token (read
/// from its stderr).
fn start_http(ctx: &TestContext, extra: &[&str]) -> (Child, String, String) {
    let mut args = vec!["mcp", "--http", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut cmd = ctx.std_cmd(args);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start sandbox mcp --http");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut url, mut token) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while url.is_none() || token.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("the server prints its URL and token");
        if let Some(rest) = line.strip_prefix("url: ") {
            url = Some(rest.to_owned());
        }
        if let Some(rest) = line.strip_prefix("token: ") {
            token = Some(rest.to_owned());
        }
    }
    (child, url.expect("url"), token.expect("token"))
}

/// A raw HTTP/1.1 POST of an `initialize` request: the status code and the body.
fn post_initialize(url: &str, token: Option<&str>) -> (u16, String) {
    use std::io::Read;
    let authority = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .expect("http URL");
    let mut stream = std::net::TcpStream::connect(authority).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}})
    .to_string();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "POST /mcp HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{auth}Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    // The answer comes whole (JSON) or as one SSE event; read until it is in.
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading the answer: {e}"),
        }
        let text = String::from_utf8_lossy(&response);
        if text.starts_with("HTTP/1.1 401") || text.contains("\"serverInfo\"") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {text}"));
    (code, text)
}

#[test]
fn mcp_over_http_needs_the_bearer_token() {
    let ctx = TestContext::bare();
    let refused = ctx.run(["mcp", "--http", "0.0.0.0:0"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--http-allow-remote"));

    let (mut child, url, token) = start_http(&ctx, &[]);
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp"),
        "{url}"
    );
    assert_eq!(token.len(), 64);
    let (code, text) = post_initialize(&url, None);
    assert_eq!(code, 401, "{text}");
    let (code, text) = post_initialize(&url, Some("not-the-token-at-all"));
    assert_eq!(code, 401, "{text}");
    let (code, text) = post_initialize(&url, Some(&token));
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("sandbox-mcp"), "{text}");
    crate::common::interrupt(&mut child, "sandbox mcp --http");
}

#[test]
fn python_mcp_sdk_over_http() {
    let ctx = local_ctx!();
    let Some(python) = python_with_mcp() else {
        assert!(
            !sandbox_testkit::local_required(),
            "the Python MCP SDK is not installed (see .ci/run), and SANDBOX_REQUIRE_LOCAL=1 requires this test"
        );
        eprintln!("skipping: no Python with the `mcp` package (see .ci/run)");
        return;
    };
    let (mut child, url, token) = start_http(&ctx, &[]);
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sandbox-mcp/tests/interop_client.py");
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(&script)
        .args(["--http", &url, &token])
        .current_dir(ctx.path())
        .stdin(Stdio::null());
    let output = assert_cmd::Command::from_std(cmd)
        .timeout(Duration::from_secs(300))
        .output()
        .expect("run the Python client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let findings: Value = serde_json::from_str(stdout.trim()).expect("the client's findings");
    assert_eq!(findings["print_6x7"], "42\n");
    let code = crate::common::interrupt(&mut child, "sandbox mcp --http");
    assert_eq!(code, Some(0));
    assert!(listed_names(&ctx).is_empty());
}

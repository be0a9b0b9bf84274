#![expect(clippy::unwrap_used, reason = "test code fails loudly on purpose")]

//! `Doctl` against scripted fake doctl binaries (bash scripts in a per-test temp dir):
//! argv and environment, timeouts, garbage, missing binary, exits, consoles, logs.

use std::path::PathBuf;
use std::time::Duration;

use doctl_driver::{
    Console, ConsoleTarget, Doctl, DoctlConfig, Error, LogKind, LogsRequest, Platform, TermSize,
    Token,
};
use futures::StreamExt;

const WORKER_APP: &str = include_str!("fixtures/apps-get-active-worker/stdout");

/// A temp dir holding a fake doctl script; files the script writes land in the same dir.
struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new(body: &str) -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let script = format!("#!/bin/bash\nD=\"$(dirname \"$0\")\"\n{body}\n");
        let path = dir.path().join("doctl");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::write(dir.path().join("app.json"), WORKER_APP).unwrap();
        Fake { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("doctl")
    }

    fn config(&self) -> DoctlConfig {
        DoctlConfig::new()
            .with_binary(self.path())
            .with_token(Token::new("dop_v1_secret"))
            .with_command_timeout(Duration::from_secs(20))
            .with_console_connect_timeout(Duration::from_secs(20))
    }

    fn doctl(&self) -> Doctl {
        Doctl::new(self.config())
    }

    /// Opens a console on component `component` of app `a` through a fresh driver.
    async fn open_console(&self, component: &str) -> Result<Box<dyn Console>, Error> {
        self.doctl()
            .open_console(&ConsoleTarget::new("a", component))
            .await
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(file)).unwrap_or_default()
    }

    /// Waits (with a deadline) until the script has written `file`.
    async fn wait_for(&self, file: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.read(file);
            if !text.is_empty() {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{file} never written"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Whether a process is gone (or a zombie awaiting its reaper).
fn process_gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

async fn assert_gone_soon(pid: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !process_gone(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "process {pid} still alive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn argv_flags_and_token_in_env_never_in_argv() {
    let fake = Fake::new(
        r#"printf '%s\n' "$@" > "$D/argv"
env > "$D/env"
echo '[]'"#,
    );
    let doctl = Doctl::new(
        fake.config()
            .with_context("ci")
            .with_api_url("http://127.0.0.1:9")
            .with_http_retry_max(0),
    );
    let apps = doctl.list_apps().await.unwrap();
    assert!(apps.is_empty());
    let argv: Vec<String> = fake.read("argv").lines().map(str::to_owned).collect();
    assert_eq!(
        argv,
        [
            "apps",
            "list",
            "-o",
            "json",
            "--context",
            "ci",
            "--api-url",
            "http://127.0.0.1:9",
            "--http-retry-max",
            "0"
        ]
    );
    let env = fake.read("env");
    assert!(
        env.lines()
            .any(|l| l == "DIGITALOCEAN_ACCESS_TOKEN=dop_v1_secret"),
        "{env}"
    );
    assert!(!fake.read("argv").contains("dop_v1_secret"));
    assert!(!format!("{doctl:?}").contains("dop_v1_secret"));
}

#[tokio::test]
async fn every_operation_sends_the_expected_command() {
    let fake = Fake::new(
        r#"printf '%s ' "$@" >> "$D/calls"; echo >> "$D/calls"
case "$2" in
  get|create) cat "$D/app.json" ;;
  list-instances) echo null ;;
  *) echo '[]' ;;
esac"#,
    );
    let doctl = fake.doctl();
    let app = doctl.get_app("6b3c").await.unwrap();
    assert_eq!(app.name(), "sandbox-7f3a");
    assert!(doctl.list_deployments("6b3c").await.unwrap().is_empty());
    assert!(doctl.list_instances("6b3c").await.unwrap().is_empty());
    doctl.delete_app("6b3c").await.unwrap();
    assert_eq!(doctl.find_app("nope").await.unwrap(), None);
    let calls: Vec<String> = fake
        .read("calls")
        .lines()
        .map(|l| l.trim().to_owned())
        .collect();
    assert_eq!(
        calls,
        [
            "apps get 6b3c -o json",
            "apps list-deployments 6b3c -o json",
            "apps list-instances 6b3c -o json",
            "apps delete 6b3c --force -o json",
            "apps list -o json",
        ]
    );
}

#[tokio::test]
async fn create_sends_the_spec_on_stdin() {
    let fake = Fake::new(
        r#"printf '%s ' "$@" > "$D/argv"
cat > "$D/stdin"
cat "$D/app.json""#,
    );
    let spec: appspec::AppSpec =
        serde_json::from_str(r#"{"name":"sandbox-7f3a","workers":[{"name":"sandbox"}]}"#).unwrap();
    let app = fake.doctl().create_app(&spec).await.unwrap();
    assert_eq!(app.id, "6b3c8f2e-4d1a-4c9e-9f7b-2a5d8e1c0b34");
    assert_eq!(fake.read("argv").trim(), "apps create --spec - -o json");
    let sent: appspec::AppSpec = serde_json::from_str(&fake.read("stdin")).unwrap();
    assert_eq!(sent, spec);
}

#[tokio::test]
async fn create_conflict_is_name_taken() {
    let fake = Fake::new(
        r#"cat > /dev/null
echo '{"errors":[{"detail":"POST http://h/v2/apps: 409 (request \"r\") an app with this name already exists"}]}'
exit 1"#,
    );
    let spec: appspec::AppSpec = serde_json::from_str(r#"{"name":"taken"}"#).unwrap();
    let err = fake.doctl().create_app(&spec).await.unwrap_err();
    assert!(
        matches!(&err, Error::NameTaken { name } if name == "taken"),
        "{err:?}"
    );
}

#[tokio::test]
async fn timeout_kills_doctl() {
    let fake = Fake::new(r#"echo $$ > "$D/pid"; exec sleep 60"#);
    let doctl = Doctl::new(
        fake.config()
            .with_command_timeout(Duration::from_millis(300)),
    );
    let err = doctl.list_apps().await.unwrap_err();
    match &err {
        Error::Timeout { operation, timeout } => {
            assert_eq!(operation, "doctl apps list -o json");
            assert_eq!(*timeout, Duration::from_millis(300));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_retryable());
    assert_gone_soon(&fake.wait_for("pid").await).await;
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    // A wrapper that leaves a grandchild behind: the group kill must take both.
    let fake = Fake::new(r#"sleep 60 & echo $! > "$D/grandchild"; wait"#);
    let doctl = Doctl::new(
        fake.config()
            .with_command_timeout(Duration::from_millis(300)),
    );
    assert!(matches!(
        doctl.list_apps().await,
        Err(Error::Timeout { .. })
    ));
    assert_gone_soon(&fake.wait_for("grandchild").await).await;
}

#[tokio::test]
async fn garbage_output_is_a_parse_error() {
    let fake = Fake::new("echo '<html>definitely not json</html>'");
    let err = fake.doctl().get_app("x").await.unwrap_err();
    assert!(matches!(err, Error::Other { .. }), "{err:?}");
    assert!(
        err.to_string().contains("could not parse the JSON output"),
        "{err}"
    );
}

#[tokio::test]
async fn missing_binary_says_how_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let doctl = Doctl::new(DoctlConfig::new().with_binary(dir.path().join("no-doctl-here")));
    let err = doctl.list_apps().await.unwrap_err();
    assert!(matches!(err, Error::NotInstalled { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("install"), "{message}");
    assert!(message.contains("doctl auth init"), "{message}");
    let err = doctl
        .open_console(&ConsoleTarget::new("a", "sandbox"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::NotInstalled { .. }), "{err:?}");
}

#[tokio::test]
async fn arguments_doctl_would_misread_are_refused_before_running_it() {
    let fake = Fake::new(r#"echo ran > "$D/ran"; echo '[]'"#);
    let doctl = fake.doctl();
    for id in ["", "--help", "-t", "a\nb"] {
        let err = doctl.get_app(id).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument { .. }),
            "{id:?}: {err:?}"
        );
    }
    let err = doctl
        .open_console(&ConsoleTarget::new("a", "-x"))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, Error::InvalidArgument { name, .. } if name == "component"),
        "{err:?}"
    );
    assert!(
        doctl
            .logs(&LogsRequest::new("--follow", "s"))
            .await
            .is_err()
    );
    assert_eq!(fake.read("ran"), "");
}

type ErrorCheck = fn(&Error) -> bool;

#[tokio::test]
async fn non_zero_exits_map_to_typed_errors() {
    let cases: [(&str, ErrorCheck); 5] = [
        (
            r#"echo 'Error: GET http://h/v2/apps/x: 404 (request "r") The resource you were accessing could not be found.' >&2; exit 1"#,
            |e| e.is_not_found(),
        ),
        (
            r#"echo 'Error: GET http://h/v2/apps/x: 401 (request "r") Unable to authenticate you' >&2; exit 1"#,
            |e| matches!(e, Error::NotAuthenticated { .. }),
        ),
        (
            r#"echo 'Error: Get "http://h/v2/apps/x": dial tcp 127.0.0.1:9: connect: connection refused' >&2; exit 1"#,
            |e| matches!(e, Error::Network { .. }),
        ),
        (
            r#"echo 'Error: GET http://h/v2/apps/x: 429 (request "r") API Rate limit exceeded.' >&2; exit 1"#,
            |e| matches!(e, Error::RateLimited { .. }),
        ),
        (
            "echo 'unknown flag: --bogus'; echo 'Error: unknown flag: --bogus' >&2; exit 255",
            |e| matches!(e, Error::Other { .. }),
        ),
    ];
    for (body, check) in cases {
        let fake = Fake::new(body);
        let err = fake.doctl().get_app("x").await.unwrap_err();
        assert!(check(&err), "{body}: {err:?}");
    }
    let fake = Fake::new("exit 3");
    let err = fake.doctl().get_app("x").await.unwrap_err();
    assert!(err.to_string().contains("exit 3"), "{err}");
}

#[tokio::test]
async fn large_output_on_both_pipes_does_not_block() {
    // More than a pipe buffer on stderr before stdout: both must be drained at once.
    let fake = Fake::new(
        r#"head -c 200000 /dev/zero | tr '\0' 'x' >&2
cat "$D/app.json""#,
    );
    let app = fake.doctl().get_app("x").await.unwrap();
    assert_eq!(app.name(), "sandbox-7f3a");
}

// ---- consoles ----

/// Reads console output until it contains `needle` (with a deadline).
async fn recv_until(console: &dyn doctl_driver::Console, needle: &str) -> String {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let chunk = tokio::time::timeout_at(deadline, console.recv())
            .await
            .unwrap_or_else(|_| panic!("no `{needle}` in {:?}", String::from_utf8_lossy(&seen)))
            .unwrap();
        match chunk {
            Some(chunk) => seen.extend_from_slice(&chunk),
            None => panic!(
                "console ended before `{needle}`: {:?}",
                String::from_utf8_lossy(&seen)
            ),
        }
        let text = String::from_utf8_lossy(&seen).into_owned();
        if text.contains(needle) {
            return text;
        }
    }
}

/// Receives until the console ends; returns the end.
async fn recv_end(console: &dyn doctl_driver::Console) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, console.recv())
            .await
            .expect("console never ended")
        {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

#[tokio::test]
async fn console_runs_on_a_terminal_of_the_requested_size_and_echoes() {
    let fake = Fake::new(
        r#"printf '%s ' "$@" > "$D/argv"
[ -t 0 ] && [ -t 1 ] || { echo 'Error: error setting terminal to raw mode: inappropriate ioctl for device' >&2; exit 1; }
stty raw -echo
printf 'size=%s\r\nsandbox$ ' "$(stty size)"
exec cat"#,
    );
    let target = ConsoleTarget::new("6b3c", "sandbox")
        .with_instance("sandbox-5d9f-x2v9k")
        .with_size(TermSize {
            cols: 200,
            rows: 50,
        });
    let console = fake.doctl().open_console(&target).await.unwrap();
    let first = recv_until(console.as_ref(), "sandbox$ ").await;
    assert!(first.contains("size=50 200"), "{first}");
    assert_eq!(
        fake.read("argv").trim(),
        "apps console 6b3c sandbox sandbox-5d9f-x2v9k"
    );
    console.send(b"echo hello\r").await.unwrap();
    recv_until(console.as_ref(), "echo hello\r").await;
    console.close().await.unwrap();
    assert_eq!(console.recv().await.unwrap(), None);
}

#[tokio::test]
async fn console_resize_reaches_doctl() {
    let fake = Fake::new(
        r#"stty raw -echo
trap 'printf "resized=%s\r\n" "$(stty size)"' WINCH
printf 'ready\r\n'
while true; do sleep 0.05; done"#,
    );
    let console = fake.open_console("sandbox").await.unwrap();
    recv_until(console.as_ref(), "ready").await;
    console
        .resize(TermSize {
            cols: 100,
            rows: 30,
        })
        .await
        .unwrap();
    recv_until(console.as_ref(), "resized=30 100").await;
}

#[tokio::test]
async fn console_that_never_answers_times_out_and_is_killed() {
    let fake = Fake::new(r#"echo $$ > "$D/pid"; exec sleep 60"#);
    let doctl = Doctl::new(
        fake.config()
            .with_console_connect_timeout(Duration::from_millis(300)),
    );
    let err = doctl
        .open_console(&ConsoleTarget::new("a", "sandbox"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("apps console a sandbox"), "{err}");
    assert_gone_soon(&fake.wait_for("pid").await).await;
}

#[tokio::test]
async fn console_clean_exit_ends_with_none() {
    let fake = Fake::new(r#"printf 'sandbox$ '; sleep 0.2; printf 'exit\r\n'; exit 0"#);
    let console = fake.open_console("sandbox").await.unwrap();
    recv_until(console.as_ref(), "exit").await;
    recv_end(console.as_ref()).await.unwrap();
    // And it stays ended.
    assert_eq!(console.recv().await.unwrap(), None);
}

#[tokio::test]
async fn console_dropped_connection_is_console_lost() {
    let fake = Fake::new(
        r#"printf 'sandbox$ '; sleep 0.2
printf '\033[31mError\033[0m: error reading from websocket: websocket: close 1006 (abnormal closure): unexpected EOF\n' >&2
exit 1"#,
    );
    let console = fake.open_console("sandbox").await.unwrap();
    let err = recv_end(console.as_ref()).await.unwrap_err();
    match &err {
        Error::ConsoleLost { reason } => assert!(reason.contains("close 1006"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // The end is sticky.
    assert!(matches!(
        console.recv().await,
        Err(Error::ConsoleLost { .. })
    ));
    assert!(matches!(
        console.send(b"x").await,
        Err(Error::ConsoleLost { .. })
    ));
}

#[tokio::test]
async fn console_on_unknown_component_is_not_found_at_open() {
    let fake = Fake::new(
        r#"echo 'Error: GET http://h/v2/apps/a/components/nope/exec: 404 (request "r") The resource you were accessing could not be found.' >&2
exit 1"#,
    );
    let err = fake.open_console("nope").await.err().unwrap();
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(err.to_string(), "component `nope` of app `a` not found");
}

#[tokio::test]
async fn remote_output_that_looks_like_an_error_is_kept() {
    let fake = Fake::new(
        r#"stty raw -echo
printf 'Error: the remote motd says hi\r\nsandbox$ '
exec cat"#,
    );
    let console = fake.open_console("s").await.unwrap();
    let text = recv_until(console.as_ref(), "sandbox$ ").await;
    assert!(text.starts_with("Error: the remote motd says hi"), "{text}");
    console.send(b"still here").await.unwrap();
    recv_until(console.as_ref(), "still here").await;
}

#[tokio::test]
async fn console_exit_without_output_is_an_error() {
    let fake = Fake::new("exit 0");
    let err = fake.open_console("s").await.err().unwrap();
    assert!(matches!(err, Error::ConsoleLost { .. }), "{err:?}");
}

#[tokio::test]
async fn dropping_a_console_kills_doctl() {
    let fake = Fake::new(r#"echo $$ > "$D/pid"; printf 'sandbox$ '; exec sleep 60"#);
    let console = fake.open_console("sandbox").await.unwrap();
    recv_until(console.as_ref(), "sandbox$").await;
    let pid = fake.wait_for("pid").await;
    assert!(!process_gone(&pid));
    drop(console);
    assert_gone_soon(&pid).await;
}

#[tokio::test]
async fn recv_is_cancel_safe() {
    let fake = Fake::new(
        r#"stty raw -echo
printf 'ready\r\n'
exec cat"#,
    );
    let console = fake.open_console("sandbox").await.unwrap();
    recv_until(console.as_ref(), "ready").await;
    // A recv cancelled while waiting loses nothing.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), console.recv())
            .await
            .is_err()
    );
    console.send(b"abc").await.unwrap();
    recv_until(console.as_ref(), "abc").await;
}

/// Sends `chunk` until a send fails, within an overall deadline; returns how long the failing
/// send took and its error.
async fn send_until_error(console: &dyn Console, chunk: &[u8]) -> (Duration, Error) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let started = tokio::time::Instant::now();
        let sent = tokio::time::timeout_at(deadline, console.send(chunk))
            .await
            .expect("a send to a peer that never reads fails within 60 s");
        if let Err(err) = sent {
            return (started.elapsed(), err);
        }
    }
}

#[tokio::test]
async fn console_send_to_a_doctl_that_never_reads_times_out() {
    // Raw mode, so the terminal queues input instead of discarding an over-long line; nothing
    // ever reads it, so the pty's buffer fills.
    let fake = Fake::new(
        r#"stty raw -echo
echo $$ > "$D/pid"
printf 'sandbox$ '
exec sleep 60"#,
    );
    let timeout = Duration::from_millis(500);
    let doctl = Doctl::new(fake.config().with_console_send_timeout(timeout));
    let console = doctl
        .open_console(&ConsoleTarget::new("a", "sandbox"))
        .await
        .unwrap();
    recv_until(console.as_ref(), "sandbox$ ").await;
    let chunk = b"echo never read\r".repeat(1024);
    let (took, err) = send_until_error(console.as_ref(), &chunk).await;
    match &err {
        Error::Timeout {
            operation,
            timeout: t,
        } => {
            assert_eq!(*t, timeout);
            assert!(operation.contains("apps console a sandbox"), "{operation}");
        }
        other => panic!("expected a send timeout, got {other:?}"),
    }
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(2),
        "the failing send took {took:?} with a {timeout:?} deadline"
    );
    // The next send waits its own deadline, no longer.
    let started = tokio::time::Instant::now();
    assert!(matches!(
        console.send(&chunk).await,
        Err(Error::Timeout { .. })
    ));
    assert!(started.elapsed() < timeout + Duration::from_secs(2));
    let pid = fake.wait_for("pid").await;
    console.close().await.unwrap();
    assert_gone_soon(&pid).await;
}

#[test]
fn console_send_timeout_defaults_to_30_s() {
    assert_eq!(
        DoctlConfig::new().console_send_timeout,
        Duration::from_secs(30)
    );
}

// ---- logs ----

#[tokio::test]
async fn logs_stream_lines_and_pass_flags() {
    let fake = Fake::new(
        r#"printf '%s ' "$@" > "$D/argv"
printf 'sandbox 2026-08-10T12:00:00Z line 1\nline 2\r\nlast without newline'"#,
    );
    let request = LogsRequest::new("a", "sandbox")
        .with_kind(LogKind::Build)
        .with_tail(5);
    let lines: Vec<String> = fake
        .doctl()
        .logs(&request)
        .await
        .unwrap()
        .map(|l| l.unwrap())
        .collect()
        .await;
    assert_eq!(
        lines,
        [
            "sandbox 2026-08-10T12:00:00Z line 1",
            "line 2",
            "last without newline"
        ]
    );
    assert_eq!(
        fake.read("argv").trim(),
        "apps logs a sandbox --type build --tail 5"
    );
}

#[tokio::test]
async fn logs_failure_ends_the_stream_with_an_error() {
    let fake = Fake::new(
        r#"echo 'partial'
echo 'Error: GET http://h/v2/apps/a/deployments/d/logs: 404 (request "r") not found' >&2
exit 1"#,
    );
    let mut stream = fake
        .doctl()
        .logs(&LogsRequest::new("a", "sandbox").with_follow(true))
        .await
        .unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), "partial");
    let err = stream.next().await.unwrap().unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn dropping_a_followed_log_stream_kills_doctl() {
    let fake = Fake::new(r#"echo $$ > "$D/pid"; echo first; exec sleep 60"#);
    let mut stream = fake
        .doctl()
        .logs(&LogsRequest::new("a", "sandbox").with_follow(true))
        .await
        .unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), "first");
    let pid = fake.wait_for("pid").await;
    drop(stream);
    assert_gone_soon(&pid).await;
}

#[tokio::test]
async fn unfollowed_logs_have_a_deadline() {
    let fake = Fake::new("echo one; exec sleep 60");
    let doctl = Doctl::new(
        fake.config()
            .with_command_timeout(Duration::from_millis(300)),
    );
    let mut stream = doctl.logs(&LogsRequest::new("a", "sandbox")).await.unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), "one");
    assert!(matches!(
        stream.next().await.unwrap(),
        Err(Error::Timeout { .. })
    ));
    assert!(stream.next().await.is_none());
}

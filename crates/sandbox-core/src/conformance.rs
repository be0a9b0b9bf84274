//! The shared test suite of the whole [`Sandbox`] API, run against any [`Platform`].
//!
//! [`conformance_tests!`](crate::conformance_tests) expands to one `#[tokio::test]` per case,
//! for a target made by an async function you name:
//!
//! ```no_run
//! async fn my_platform() -> sandbox_core::conformance::Target {
//!     let platform = sandbox_core::testing::PtyPlatform::new().expect("platform");
//!     sandbox_core::conformance::Target::new(std::sync::Arc::new(platform))
//! }
//! sandbox_core::conformance_tests!(my_platform; exec_basics, concurrent_commands);
//! # fn main() {}
//! ```
//!
//! Each case creates its own sandbox (a python worker with a unique name) on the target's
//! platform wrapped in a [`HostilePlatform`], runs, and deletes the sandbox even when the case
//! panics. Every wait has a deadline; nothing is timed.

#![allow(
    clippy::unwrap_used,
    reason = "a test suite: a failed expectation is a panic with the value shown"
)]

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use appspec::{ComponentType, ImageKind, TemplateDefaults};
use doctl_driver::Platform;
use futures::FutureExt as _;

use crate::testing::{HostilePlatform, Hostility};
use crate::{Error, ExecEvent, ExecRequest, LaunchRequest, Sandbox, Signal};

/// What a case runs against: a platform, and whatever must live as long as it (temp folders,
/// servers).
pub struct Target {
    /// The platform.
    pub platform: Arc<dyn Platform>,
    /// Kept alive until the case ends.
    pub guard: Box<dyn Any + Send + Sync>,
    /// Size of the large stdin payload of `stdin_round_trip` (1 MiB by default). Through doctl,
    /// which types one WebSocket frame per input byte, a smaller one keeps the case short.
    pub large_stdin: usize,
}

impl Target {
    /// A target with nothing else to keep alive.
    #[must_use]
    pub fn new(platform: Arc<dyn Platform>) -> Self {
        Target {
            platform,
            guard: Box::new(()),
            large_stdin: 1 << 20,
        }
    }
}

/// What a case receives.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// Size of the large stdin payload (see [`Target::large_stdin`]).
    pub large_stdin: usize,
    /// The case's sandbox.
    pub sandbox: Sandbox,
    /// The platform it lives on, to make consoles hostile or drop them.
    pub hostile: Arc<HostilePlatform>,
}

/// The boxed future of a case.
pub type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Deadline of one case.
pub const CASE_DEADLINE: Duration = Duration::from_secs(300);

/// Runs one case: creates a sandbox on `target`, runs `case`, deletes the sandbox, and then
/// re-raises the case's panic if it had one.
///
/// # Panics
///
/// When the case fails, or the sandbox cannot be created.
/// A target of `None` skips the case with a printed reason (the platform cannot run here).
pub async fn run(
    target: impl Into<Option<Target>>,
    hostility: Hostility,
    case: fn(Ctx) -> CaseFuture,
) {
    let Some(target) = target.into() else {
        eprintln!("skipping: the target platform cannot run on this machine");
        return;
    };
    let hostile = Arc::new(HostilePlatform::new(Arc::clone(&target.platform)));
    hostile.set_hostility(hostility.clone());
    let platform: Arc<dyn Platform> = hostile.clone();
    let name = format!("conf-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut builder = Sandbox::builder()
        .image(ImageKind::Python)
        .component_type(ComponentType::Worker)
        .name(name)
        .defaults(TemplateDefaults::default())
        .timeout(Duration::from_secs(120))
        .platform(platform);
    if let Some(timeout) = hostility.heartbeat_timeout {
        builder = builder.heartbeat_timeout(timeout);
    }
    let sandbox = builder
        .create()
        .await
        .unwrap_or_else(|e| panic!("creating the sandbox failed: {}", chain(&e)));
    let ctx = Ctx {
        sandbox: sandbox.clone(),
        hostile,
        large_stdin: target.large_stdin,
    };
    let outcome =
        tokio::time::timeout(CASE_DEADLINE, AssertUnwindSafe(case(ctx)).catch_unwind()).await;
    let deleted = sandbox.delete().await;
    drop(target.guard);
    match outcome {
        Err(_) => panic!("case did not finish within {CASE_DEADLINE:?}"),
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Ok(Ok(())) => {
            if let Err(e) = deleted {
                panic!("deleting the sandbox failed: {}", chain(&e));
            }
        }
    }
}

/// An error and its sources, on one line.
#[must_use]
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Unwraps a result, printing the error chain.
#[track_caller]
pub fn ok<T>(result: crate::Result<T>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("unexpected error: {}", chain(&e)),
    }
}

/// POSIX `cksum` (CRC-32 over the bytes then their length), to compare large outputs with a
/// checksum computed in the sandbox.
#[must_use]
pub fn cksum(data: &[u8]) -> (u32, usize) {
    let mut table = [0u32; 256];
    for (i, slot) in table.iter_mut().enumerate() {
        let mut c = (i as u32) << 24;
        for _ in 0..8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ 0x04C1_1DB7
            } else {
                c << 1
            };
        }
        *slot = c;
    }
    let mut crc = 0u32;
    let mut feed = |b: u8| crc = (crc << 8) ^ table[(((crc >> 24) as u8) ^ b) as usize];
    for &b in data {
        feed(b);
    }
    let mut n = data.len();
    while n != 0 {
        feed((n & 0xff) as u8);
        n >>= 8;
    }
    (!crc, data.len())
}

/// Deterministic pseudo-random bytes (xorshift), for stdin payloads.
#[must_use]
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Expands to one `#[tokio::test]` per conformance case, for the target made by the async
/// function `$make` (`async fn() -> Target`, or `-> Option<Target>` where `None` skips). With a
/// second argument, only the named cases.
#[macro_export]
macro_rules! conformance_tests {
    ($make:path) => {
        $crate::conformance_tests!($make; exec_basics, binary_and_invalid_utf8,
            umask_is_the_shells, hostile_text_shapes, large_random_output, large_streamed_output, megabyte_line, stderr_separate_and_codes,
            signal_status, concurrent_commands, timeout_keeps_console, stdin_round_trip,
            env_cwd_stateless, session_persists, argv_without_quoting, streaming_events,
            console_reused, closed_console_leaves_no_agent_process, console_drop_fails_command_once, console_drop_during_bootstrap, cancel_kills_command, hostile_terminal, processes, processes_leave_out_the_agent,
            process_exit_status, lifecycle, scoped_sandbox, blocking_facade,
            reopened_outputs_are_exact, background_children_do_not_hold_the_result,
            session_request_scope, stalled_console_is_lost, slow_reader_slows_the_command);
    };
    ($make:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let hostility = $crate::conformance::hostility_for(stringify!($case));
                $crate::conformance::run($make().await, hostility, |ctx| {
                    ::std::boxed::Box::pin($crate::conformance::cases::$case(ctx))
                })
                .await;
            }
        )+
    };
}

/// The heartbeat timeout of `stalled_console_is_lost`.
pub const STALL_HEARTBEAT: Duration = Duration::from_secs(2);

/// The console hostility a case starts with.
#[must_use]
pub fn hostility_for(case: &str) -> Hostility {
    let mut hostility = Hostility::default();
    if case == "hostile_terminal" {
        hostility.chunk_size = Some(1);
        hostility.replace_non_ascii_input = true;
    }
    if case == "stalled_console_is_lost" {
        hostility.heartbeat_timeout = Some(STALL_HEARTBEAT);
    }
    hostility
}

/// The cases.
pub mod cases {
    use super::*;

    /// Prints every process's command line, arguments joined by spaces (with a trailing
    /// space), from `/proc`: no `ps` needed.
    const PS_ARGS: &str =
        "for f in /proc/[0-9]*/cmdline; do tr '\\000' ' ' <\"$f\" 2>/dev/null; echo; done";

    /// `echo`, status, text helpers, `exit_ok`.
    pub async fn exec_basics(ctx: Ctx) {
        let out = ok(ctx.sandbox.exec("echo hello").await);
        assert_eq!(out.stdout, b"hello\n");
        assert!(out.stderr.is_empty());
        assert!(out.success());
        assert_eq!(out.stdout_text(), "hello\n");
        let err = ok(ctx.sandbox.exec("echo nope >&2; exit 3").await)
            .exit_ok()
            .unwrap_err();
        assert!(matches!(err, Error::CommandFailed { .. }), "{err}");
        assert!(err.to_string().contains("nope"), "{err}");
        let out = ok(ctx.sandbox.exec("").await);
        assert!(out.success() && out.stdout.is_empty());
    }

    /// Commands run with the umask the shell had, not the agent's private 077.
    pub async fn umask_is_the_shells(ctx: Ctx) {
        let out = ok(ok(ctx.sandbox.exec("umask").await).exit_ok());
        let text = out.stdout_text();
        let mask = u32::from_str_radix(text.trim(), 8)
            .unwrap_or_else(|_| panic!("`umask` printed {text:?}, not an octal mask"));
        assert_ne!(mask, 0o077, "commands inherit the agent's umask 077");
        // Shells start with 022 (or 002): group and others may read what a command creates.
        assert_eq!(mask & 0o044, 0, "unexpected umask {mask:04o}");
        let out = ok(ok(ctx
            .sandbox
            .exec("rm -f umask.txt; echo x >umask.txt; stat -c %a umask.txt")
            .await)
        .exit_ok());
        let mode = u32::from_str_radix(out.stdout_text().trim(), 8).expect("an octal mode");
        assert_ne!(mode, 0o600, "a file created by exec is private");
        assert_eq!(mode, 0o666 & !mask);
        // Sessions keep their saved environment private all the same.
        let session = ctx.sandbox.session();
        let out = ok(ok(session
            .exec("stat -c %a \"${TMPDIR:-/tmp}\"/.sandbox-session.*")
            .await)
        .exit_ok());
        assert!(
            out.stdout_text().lines().all(|l| l == "700"),
            "session folders: {:?}",
            out.stdout_text()
        );
    }

    /// NUL and high bytes, invalid UTF-8.
    pub async fn binary_and_invalid_utf8(ctx: Ctx) {
        let out = ok(ctx.sandbox.exec("printf '\\000\\377\\376'").await);
        assert_eq!(out.stdout, [0x00, 0xff, 0xfe]);
        let out = ok(ctx
            .sandbox
            .exec("printf '\\303\\050\\240\\241\\n\\200'")
            .await);
        assert_eq!(out.stdout, [0xc3, 0x28, 0xa0, 0xa1, b'\n', 0x80]);
        let all: Vec<u8> = (0..=255).collect();
        let out = ok(ctx
            .sandbox
            .exec_with(ExecRequest::argv(["cat"]).stdin(all.clone()))
            .await);
        assert_eq!(out.stdout, all);
    }

    /// Blank lines, trailing spaces, no final newline, CR, fake prompts and fake markers.
    pub async fn hostile_text_shapes(ctx: Ctx) {
        let text = "\n\n  a  \n\n\tb \t\n\r\n\nend";
        let out = ok(ctx
            .sandbox
            .exec_with(ExecRequest::argv(["printf", "%s", text]))
            .await);
        assert_eq!(out.stdout, text.as_bytes());
        let fake = "sandbox@x:~/app$ \nroot@h:/# \n$ \n___EXIT_CODE___:0\n___STDERR_START___\n\
                    @0123456789abcdef:1:x:0\nREADY_0123456789abcdef\n\x1b[?2004h\x1b[31mred\x1b[0m";
        let out = ok(ctx
            .sandbox
            .exec_with(ExecRequest::argv(["printf", "%s", fake]))
            .await);
        assert_eq!(out.stdout, fake.as_bytes());
        // Frames that use the console's real nonce, read from the agent's command line.
        let spoof = "n=$(for f in /proc/[0-9]*/cmdline; do tr '\\000' ' ' <\"$f\" 2>/dev/null; echo; done \
                     | sed -n 's/.*sandbox-agent \\([0-9a-f]*\\).*/\\1/p' | head -n 1); \
                     printf '@%s:1:x:0\\n@%s:1:o:aGkK\\n' \"$n\" \"$n\"; echo done";
        let out = ok(ctx.sandbox.exec(spoof).await);
        assert!(out.stdout.ends_with(b"done\n"), "{out:?}");
        assert!(out.stdout.starts_with(b"@"), "{out:?}");
    }

    /// 10 MB of random bytes, checked against `cksum` computed in the sandbox.
    pub async fn large_random_output(ctx: Ctx) {
        let made = ok(ctx
            .sandbox
            .exec("head -c 10000000 /dev/urandom > big.bin && cksum < big.bin")
            .await)
        .exit_ok();
        let made = ok(made);
        let out = ok(ctx.sandbox.exec("cat big.bin; rm -f big.bin").await);
        assert_eq!(out.stdout.len(), 10_000_000);
        let (crc, len) = cksum(&out.stdout);
        assert_eq!(made.stdout_text().trim(), format!("{crc} {len}"));
    }

    /// 4 MB of random bytes streamed in chunks, with stderr interleaved, match a `cksum`
    /// computed in the sandbox.
    pub async fn large_streamed_output(ctx: Ctx) {
        let made = ok(ok(ctx
            .sandbox
            .exec("head -c 4000000 /dev/urandom > stream.bin && cksum < stream.bin")
            .await)
        .exit_ok());
        let mut stream = ok(ctx
            .sandbox
            .exec_stream(ExecRequest::shell("cat stream.bin; echo done >&2"))
            .await);
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut chunks = 0;
        let mut exit = None;
        while let Some(event) = stream.next_event().await {
            match ok(event) {
                ExecEvent::Stdout(chunk) => {
                    chunks += 1;
                    stdout.extend_from_slice(&chunk);
                }
                ExecEvent::Stderr(chunk) => stderr.extend_from_slice(&chunk),
                ExecEvent::Exit(status) => exit = Some(status),
            }
        }
        assert_eq!(exit.map(|s| s.success()), Some(true));
        assert_eq!(stderr, b"done\n");
        assert!(chunks > 1, "4 MB arrived in one chunk");
        let (crc, len) = cksum(&stdout);
        assert_eq!(made.stdout_text().trim(), format!("{crc} {len}"));
        ok(ctx.sandbox.exec("rm -f stream.bin").await);
    }

    /// A 1 MB line without a newline, and one with.
    pub async fn megabyte_line(ctx: Ctx) {
        let out = ok(ctx
            .sandbox
            .exec("head -c 1000000 /dev/zero | tr '\\000' a")
            .await);
        assert_eq!(out.stdout, vec![b'a'; 1_000_000]);
        let out = ok(ctx
            .sandbox
            .exec("head -c 1000000 /dev/zero | tr '\\000' b; echo")
            .await);
        assert_eq!(out.stdout.len(), 1_000_001);
        assert_eq!(out.stdout.last(), Some(&b'\n'));
    }

    /// Stdout and stderr apart; exit codes 0, 1, 2, 255.
    pub async fn stderr_separate_and_codes(ctx: Ctx) {
        let out = ok(ctx.sandbox.exec("echo out; echo err >&2; echo out2").await);
        assert_eq!(out.stdout, b"out\nout2\n");
        assert_eq!(out.stderr, b"err\n");
        for code in [0, 1, 2, 255] {
            let out = ok(ctx.sandbox.exec(&format!("exit {code}")).await);
            assert_eq!(out.status.code, Some(code));
            assert_eq!(out.status.signal, None);
        }
        let out = ok(ctx.sandbox.exec("nosuchcommand-xyz").await);
        assert_eq!(out.code(), Some(127));
        assert!(!out.stderr.is_empty());
    }

    /// A command that kills itself reports the signal.
    pub async fn signal_status(ctx: Ctx) {
        let out = ok(ctx.sandbox.exec("echo before; kill -9 $$").await);
        assert_eq!(out.stdout, b"before\n");
        assert_eq!(out.status.code, None);
        assert_eq!(out.status.signal, Some(9));
        let out = ok(ctx.sandbox.exec("kill -15 $$").await);
        assert_eq!(out.status.signal, Some(15));
    }

    /// 32 commands at once, each with its own output.
    pub async fn concurrent_commands(ctx: Ctx) {
        let tasks = (0..32).map(|i| {
            let sandbox = ctx.sandbox.clone();
            async move {
                let command = format!(
                    "printf 'task-{i}:'; head -c {} /dev/zero | tr '\\000' {}; echo err-{i} >&2; exit {}",
                    i * 3000,
                    (b'a' + (i % 26) as u8) as char,
                    i % 7
                );
                (i, ok(sandbox.exec(&command).await))
            }
        });
        for (i, out) in futures::future::join_all(tasks).await {
            let mut expected = format!("task-{i}:").into_bytes();
            expected.extend(std::iter::repeat_n(
                b'a' + (i % 26) as u8,
                (i * 3000) as usize,
            ));
            assert_eq!(out.stdout, expected, "stdout of task {i}");
            assert_eq!(out.stderr, format!("err-{i}\n").into_bytes());
            assert_eq!(out.code(), Some(i % 7));
        }
    }

    /// A timeout kills the command's group and the console stays usable.
    pub async fn timeout_keeps_console(ctx: Ctx) {
        // Unique durations, so that other cases running at the same time cannot be mistaken
        // for this one's processes.
        let tag = uuid::Uuid::new_v4().as_u128() % 1_000_000;
        let request = ExecRequest::shell(format!("sleep 117.{tag} & sleep 118.{tag}; echo never"))
            .timeout(Duration::from_millis(1500));
        let err = ctx.sandbox.exec_with(request).await.unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(
            !err.is_retryable(),
            "a command that ran is not retryable: {err:?}"
        );
        let out = ok(ctx.sandbox.exec("echo still here").await);
        assert_eq!(out.stdout, b"still here\n");
        // The whole group is gone (checked with a deadline, not a timing).
        let check = ExecRequest::shell(
            format!("i=0; while [ $i -lt 100 ]; do {PS_ARGS} | grep -q '^sleep 11[78]\\.{tag} $' || exit 0; sleep 0.1; i=$((i+1)); done; exit 1"),
        )
        .timeout(Duration::from_secs(30));
        assert!(
            ok(ctx.sandbox.exec_with(check).await).success(),
            "sleeps survived the timeout"
        );
        // Streams time out too.
        let mut stream = ok(ctx
            .sandbox
            .exec_stream(ExecRequest::shell("sleep 119").timeout(Duration::from_millis(500)))
            .await);
        let first = stream.next_event().await.expect("an event");
        assert!(first.unwrap_err().is_timeout());
        assert!(stream.next_event().await.is_none());
    }

    /// A console that drops while the agent starts fails that command with `ConsoleLost`; the
    /// next command opens a good console.
    pub async fn console_drop_during_bootstrap(ctx: Ctx) {
        ok(ctx.sandbox.exec("true").await);
        ctx.sandbox.close_console().await;
        ctx.hostile.drop_next_console_after(40);
        let err = ctx.sandbox.exec("echo lost").await.unwrap_err();
        assert!(matches!(err, Error::ConsoleLost { .. }), "{err}");
        let out = ok(ctx.sandbox.exec("echo back").await);
        assert_eq!(out.stdout, b"back\n");
        assert_eq!(ctx.hostile.consoles_opened(), 3);
    }

    /// Dropping an `exec` future or an `ExecStream` before the exit kills the command's group.
    pub async fn cancel_kills_command(ctx: Ctx) {
        let tag = uuid::Uuid::new_v4().as_u128() % 1_000_000;
        let gone = |pattern: String| {
            ExecRequest::shell(format!(
                "i=0; while [ $i -lt 100 ]; do {PS_ARGS} | grep -q '{pattern}' || exit 0; sleep 0.1; i=$((i+1)); done; exit 1"
            ))
            .timeout(Duration::from_secs(30))
        };
        let running = |pattern: String| {
            ExecRequest::shell(format!(
                "i=0; while [ $i -lt 300 ]; do {PS_ARGS} | grep -q '{pattern}' && exit 0; sleep 0.1; i=$((i+1)); done; exit 1"
            ))
            .timeout(Duration::from_secs(60))
        };
        // A dropped exec future.
        let sandbox = ctx.sandbox.clone();
        let command = format!("sleep 121.{tag} & sleep 122.{tag}");
        let task = tokio::spawn(async move { sandbox.exec(&command).await });
        let pattern = format!("^sleep 12[12]\\.{tag} $");
        assert!(
            ok(ctx.sandbox.exec_with(running(pattern.clone())).await).success(),
            "never started"
        );
        task.abort();
        let _ = task.await;
        assert!(
            ok(ctx.sandbox.exec_with(gone(pattern)).await).success(),
            "survived a dropped exec"
        );
        // A dropped stream.
        let mut stream = ok(ctx
            .sandbox
            .exec_stream(ExecRequest::shell(format!("echo up; sleep 123.{tag}")))
            .await);
        let first = stream.next_event().await.expect("an event");
        assert!(matches!(first, Ok(ExecEvent::Stdout(_))), "{first:?}");
        drop(stream);
        let pattern = format!("^sleep 123\\.{tag} $");
        assert!(
            ok(ctx.sandbox.exec_with(gone(pattern)).await).success(),
            "survived a dropped stream"
        );
    }

    /// Binary and large (1 MiB by default) stdin come back exactly.
    pub async fn stdin_round_trip(ctx: Ctx) {
        let data = noise(ctx.large_stdin, 7);
        let out = ok(ctx
            .sandbox
            .exec_with(ExecRequest::argv(["cat"]).stdin(data.clone()))
            .await);
        assert_eq!(out.stdout.len(), data.len());
        assert!(
            out.stdout == data,
            "{} bytes of stdin came back different",
            data.len()
        );
        let out = ok(ctx
            .sandbox
            .exec_with(ExecRequest::shell("wc -c").stdin(Vec::new()))
            .await);
        assert_eq!(out.stdout_text().trim(), "0");
        let out = ok(ctx.sandbox.exec("cat; echo end").await);
        assert_eq!(out.stdout, b"end\n", "stdin is empty by default");
        // Bulk input (stdin and scripts of several lines) next to small requests, at once: no
        // request may lose a line to another's reader.
        let mut tasks = Vec::new();
        for k in 0..4u64 {
            let sandbox = ctx.sandbox.clone();
            tasks.push(tokio::spawn(async move {
                let data = noise(5000 + 3000 * k as usize, k + 11);
                let plain = format!(
                    "cat >/dev/null; echo {}",
                    "x".repeat(4000 + 100 * k as usize)
                );
                let script = format!("cksum; : '{}é'", "y".repeat(3500));
                let a = sandbox.exec_with(ExecRequest::shell(&script).stdin(data.clone()));
                let b = sandbox.exec_with(ExecRequest::shell(&plain).stdin(data.clone()));
                let small = format!("echo {k}");
                let c = sandbox.exec(&small);
                let (a, b, c) = tokio::join!(a, b, c);
                let (crc, len) = cksum(&data);
                assert_eq!(ok(a).stdout_text(), format!("{crc} {len}\n"));
                assert_eq!(
                    ok(b).stdout_text(),
                    format!("{}\n", "x".repeat(4000 + 100 * k as usize))
                );
                assert_eq!(ok(c).stdout_text(), format!("{k}\n"));
            }));
        }
        for task in tasks {
            task.await.expect("bulk input task");
        }
    }

    /// env and cwd apply to one call only.
    pub async fn env_cwd_stateless(ctx: Ctx) {
        let home = ok(ctx.sandbox.exec("pwd").await).stdout_text();
        let request = ExecRequest::shell("pwd; printf '%s|' \"$FOO\" \"$BAR\"")
            .cwd("/tmp")
            .env("FOO", "a b'c\"$d")
            .env("BAR", "line1\nline2 é");
        let out = ok(ctx.sandbox.exec_with(request).await);
        assert_eq!(out.stdout_text(), "/tmp\na b'c\"$d|line1\nline2 é|");
        let err = ctx
            .sandbox
            .exec_with(ExecRequest::shell("true").env("1BAD", "x"))
            .await;
        assert!(matches!(err, Err(Error::InvalidArgument { .. })));
        ok(ctx.sandbox.exec("cd /tmp; export LEAK=1").await);
        let out = ok(ctx.sandbox.exec("pwd; echo ${LEAK:-unset}").await);
        assert_eq!(out.stdout_text(), format!("{home}unset\n"));
        let out = ok(ctx
            .sandbox
            .exec_with(ExecRequest::shell("pwd").cwd("/nonexistent-dir"))
            .await);
        assert!(!out.success());
    }

    /// A session keeps cwd and exported variables.
    pub async fn session_persists(ctx: Ctx) {
        let session = ctx.sandbox.session();
        ok(session
            .exec("mkdir -p sub && cd sub && export KEEP='x y'; NOTEXPORTED=1")
            .await);
        let out = ok(session.exec("basename \"$(pwd)\"; echo \"$KEEP\"").await);
        assert_eq!(out.stdout_text(), "sub\nx y\n");
        let out = ok(session.exec("cd /tmp; exit 4").await);
        assert_eq!(out.code(), Some(4));
        let out = ok(session.exec("pwd").await);
        assert_eq!(out.stdout_text(), "/tmp\n");
        let other = ctx.sandbox.session();
        let out = ok(other.exec("echo ${KEEP:-unset}").await);
        assert_eq!(out.stdout_text(), "unset\n");
        ok(session.close().await);
    }

    /// argv needs no quoting: quotes, spaces, newlines, globs and `$` arrive as given.
    pub async fn argv_without_quoting(ctx: Ctx) {
        let args = [
            "a b",
            "it's",
            "\"dq\"",
            "x\ny",
            "$HOME",
            "*",
            "",
            "é ü",
            "back\\slash",
            "-n",
        ];
        let mut argv = vec!["printf", "[%s]"];
        argv.extend(args);
        let out = ok(ctx.sandbox.exec_with(ExecRequest::argv(argv)).await);
        let expected: String = args.iter().map(|a| format!("[{a}]")).collect();
        assert_eq!(out.stdout_text(), expected);
        let out = ok(ctx
            .sandbox
            .exec_with(ExecRequest::argv(["sh", "-c", "exit 9"]))
            .await);
        assert_eq!(out.code(), Some(9));
    }

    /// Chunks arrive while the command still runs; the exit comes last.
    pub async fn streaming_events(ctx: Ctx) {
        let request = ExecRequest::shell(
            "printf first; echo warn >&2; i=0; while [ ! -f go.flag ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; printf second; rm -f go.flag",
        );
        let mut stream = ok(ctx.sandbox.exec_stream(request).await);
        let mut stdout = Vec::new();
        while stdout != b"first" {
            match stream.next_event().await.expect("an event") {
                Ok(ExecEvent::Stdout(chunk)) => stdout.extend_from_slice(&chunk),
                Ok(ExecEvent::Stderr(_)) => {}
                other => panic!("unexpected event before the flag: {other:?}"),
            }
        }
        // The command is still waiting: only now is the flag created.
        ok(ok(ctx.sandbox.exec("touch go.flag").await).exit_ok());
        let mut stderr = Vec::new();
        let mut exit = None;
        while let Some(event) = stream.next_event().await {
            match ok(event) {
                ExecEvent::Stdout(chunk) => stdout.extend_from_slice(&chunk),
                ExecEvent::Stderr(chunk) => stderr.extend_from_slice(&chunk),
                ExecEvent::Exit(status) => exit = Some(status),
            }
        }
        assert_eq!(stdout, b"firstsecond");
        assert_eq!(exit.map(|s| s.success()), Some(true));
        let out = ok(ok(ctx
            .sandbox
            .exec_stream(ExecRequest::shell("printf x; exit 5"))
            .await)
        .collect_output()
        .await);
        assert_eq!((out.stdout.as_slice(), out.code()), (&b"x"[..], Some(5)));
        let _ = stderr;
    }

    /// A closed console leaves none of its agent's processes behind: not its readers made
    /// ahead for the next commands, not its idle workers.
    pub async fn closed_console_leaves_no_agent_process(ctx: Ctx) {
        let sandbox = &ctx.sandbox;
        let folder = ok(sandbox
            .exec("echo \"${TMPDIR:-/tmp}\"/.sandbox-exec.*")
            .await)
        .stdout_text()
        .trim()
        .to_owned();
        assert!(!folder.contains('*') && !folder.contains(' '), "{folder:?}");
        let listing = ok(sandbox.exec("ps -eo args").await).stdout_text();
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with("cat ") && l.contains(&folder)),
            "the agent keeps readers ready: {listing}"
        );
        sandbox.close_console().await;
        // The old agent's processes end when its console closes (they are waited for with a
        // deadline, since the far end learns of the close on its own schedule).
        let mut left = String::new();
        for _ in 0..200 {
            let listing = ok(sandbox.exec("ps -eo args").await).stdout_text();
            left = listing
                .lines()
                .filter(|l| l.contains(&folder))
                .collect::<Vec<_>>()
                .join("\n");
            if left.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(left.is_empty(), "left behind by the closed console: {left}");
        assert_eq!(ctx.hostile.consoles_opened(), 2);
    }

    /// One console serves every command.
    pub async fn console_reused(ctx: Ctx) {
        for i in 0..130 {
            let out = ok(ctx.sandbox.exec(&format!("echo {i}")).await);
            assert_eq!(out.stdout_text(), format!("{i}\n"));
        }
        assert_eq!(ctx.hostile.consoles_opened(), 1);
        // Finished commands' files are removed in batches (in the background, so poll with a
        // deadline), and do not pile up: after 131 commands, the markers (`<id>.d`) of all but
        // the last few are gone, and what stays is at most a batch of finished commands and
        // the slots made ahead (three fifos each): under 16 markers and 600 files in all.
        // The deadline is wall-clock (`date`, 120 s), however slow each poll is on a loaded
        // machine; on failure the listing says which files stayed.
        let out = ok(ctx
            .sandbox
            .exec(
                "end=$(( $(date +%s) + 120 )); d=\"$(echo \"${TMPDIR:-/tmp}\"/.sandbox-exec.*)\"; \
                 while :; do n=$(ls -A \"$d\" | wc -l); m=$(ls -A \"$d\" | grep -c '\\.d$'); \
                 [ \"$m\" -lt 16 ] && [ \"$n\" -lt 600 ] || [ \"$(date +%s)\" -ge \"$end\" ] && break; sleep 0.2; done; \
                 echo \"$m $n\"; [ \"$m\" -lt 16 ] && [ \"$n\" -lt 600 ] || ls -A \"$d\" | tr '\\n' ' '",
            )
            .await);
        let text = out.stdout_text();
        let (counts, listing) = text.split_once('\n').unwrap_or((&text, ""));
        let (markers, files) = counts.trim().split_once(' ').expect("two counts");
        let markers: usize = markers.parse().expect("a count");
        let files: usize = files.parse().expect("a count");
        assert!(
            markers < 16 && files < 600,
            "{markers} finished commands and {files} files left in the agent's folder after \
             131 commands: {listing}"
        );
    }

    /// A drop fails the running command with `ConsoleLost`; it is not run again, and the next
    /// command opens a new console.
    pub async fn console_drop_fails_command_once(ctx: Ctx) {
        ok(ctx.sandbox.exec("rm -f runs.txt").await);
        let sandbox = ctx.sandbox.clone();
        let running = tokio::spawn(async move {
            sandbox
                .exec("echo run >> runs.txt; echo started; sleep 60")
                .await
        });
        // Wait (with a deadline) until the command has started, then drop the console.
        let mut started = false;
        for _ in 0..200 {
            let out = ok(ctx.sandbox.exec("cat runs.txt 2>/dev/null").await);
            if out.stdout == b"run\n" {
                started = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(started, "the command never started");
        ctx.hostile.drop_open_consoles();
        let result = running.await.expect("task");
        let err = result.unwrap_err();
        assert!(matches!(err, Error::ConsoleLost { .. }), "{err}");
        assert!(
            !err.is_retryable(),
            "a command that ran is not retryable: {err:?}"
        );
        let out = ok(ctx.sandbox.exec("cat runs.txt").await);
        assert_eq!(out.stdout, b"run\n", "the cut-off command ran again");
        assert_eq!(ctx.hostile.consoles_opened(), 2);
    }

    /// Output in 1-byte chunks and non-ASCII input replaced by U+FFFD change nothing.
    pub async fn hostile_terminal(ctx: Ctx) {
        let out = ok(ctx.sandbox.exec("printf 'é\\000\\377'; echo ü >&2").await);
        assert_eq!(
            out.stdout,
            "é\0\u{ff}"
                .as_bytes()
                .iter()
                .take(2)
                .chain(&[0, 0xff])
                .copied()
                .collect::<Vec<u8>>()
        );
        assert_eq!(out.stderr, "ü\n".as_bytes());
        let data = noise(20_000, 3);
        let out = ok(ctx
            .sandbox
            .exec_with(ExecRequest::argv(["cat"]).stdin(data.clone()))
            .await);
        assert!(out.stdout == data);
        let out = ok(ctx
            .sandbox
            .exec_with(ExecRequest::argv(["printf", "%s", "ß∂ƒ"]))
            .await);
        assert_eq!(out.stdout_text(), "ß∂ƒ");
    }

    /// Launch, list, log, kill, kill_all, and a later connect that still knows them.
    pub async fn processes(ctx: Ctx) {
        let sandbox = &ctx.sandbox;
        ok(sandbox.exec("mkdir -p work").await);
        let handle = ok(sandbox
            .launch(
                LaunchRequest::new(
                    "cd work && echo started in $(basename $(pwd)) $GREETING && exec sleep 301",
                )
                .env("GREETING", "hi there"),
            )
            .await);
        assert!(handle.pid() > 1);
        let mut log = Vec::new();
        for _ in 0..200 {
            log = ok(handle.log(None).await);
            if !log.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(String::from_utf8_lossy(&log), "started in work hi there\n");
        assert!(ok(handle.is_running().await));
        let listed = ok(sandbox.processes(Some("sleep 301")).await);
        assert!(!listed.is_empty(), "ps does not show the launched process");
        assert!(listed.iter().all(|p| p.command.contains("sleep 301")));
        assert!(
            listed.iter().any(|p| p.pid == handle.pid()),
            "launch reported {} but the program runs as {listed:?}",
            handle.pid()
        );
        // Tagged: on the pseudo-terminal platforms other tests' processes are listed too.
        let second_command = format!("sleep 302.{}", uuid::Uuid::new_v4().as_u128() % 1_000_000);
        let second = ok(sandbox
            .launch(LaunchRequest::new(second_command.clone()).cwd("/tmp"))
            .await);
        // A simple command: the pid reported is the program's, as ps shows it, and the
        // launch wrapper is not listed.
        let listed = ok(sandbox.processes(Some(&second_command)).await);
        assert_eq!(
            listed
                .iter()
                .map(|p| (p.pid, p.command.as_str()))
                .collect::<Vec<_>>(),
            [(second.pid(), second_command.as_str())],
        );
        ok(sandbox.kill(second.pid(), Signal::Term).await);
        assert_eq!(
            ok(second.wait(Duration::from_secs(30)).await).and_then(|s| s.signal),
            Some(15)
        );
        let tail = ok(sandbox.process_log(handle.pid(), Some(1)).await);
        assert_eq!(tail, log);
        assert!(
            ok(sandbox
                .process_log(999_999, None)
                .await
                .map(Some)
                .or_else(|e| { if e.is_not_found() { Ok(None) } else { Err(e) } }))
            .is_none()
        );
        // A new handle on the same app knows the launched process.
        let again = ok(Sandbox::connect(Arc::clone(sandbox.platform()), sandbox.id()).await);
        let killed = ok(again.kill_all().await);
        assert_eq!(killed, vec![handle.pid()]);
        ok(handle.wait(Duration::from_secs(30)).await);
        assert!(!ok(handle.is_running().await));
        assert!(ok(again.kill_all().await).is_empty());
        let err = sandbox.kill(999_999, Signal::Term).await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }

    /// `processes` lists what runs in the sandbox, not the exec protocol's own processes.
    pub async fn processes_leave_out_the_agent(ctx: Ctx) {
        let sandbox = &ctx.sandbox;
        // Unique arguments: a pseudo-terminal target shares its PID space with other cases.
        let tag = uuid::Uuid::new_v4().as_u128() % 1_000_000;
        let launched = format!("sleep 300.{tag}");
        let running = format!("sleep 299.{tag}");
        let handle = ok(sandbox.launch(LaunchRequest::new(launched.clone())).await);
        // A command running at the same time (streamed, so the agent has helpers running).
        let busy = ok(sandbox
            .exec_stream(ExecRequest::shell(format!("{running}; echo done")))
            .await);
        // A protocol process of another session that is ending can be listed for a moment
        // (its agent gone first, so it no longer looks like the agent's child); on platforms
        // without a PID namespace of their own (the local pseudo-terminals) those include the
        // sessions of other tests. So the listing is taken again until ours is in it and no
        // protocol process is, for at most 10 s; one that stays listed fails the case.
        let protocol = |command: &str| {
            command.contains("sandbox-agent")
                || command.contains("self $$")
                || command.starts_with("ps -eo")
                || command.starts_with("timeout -s KILL")
                || command.contains(".sandbox-exec.")
                || command.contains(" sandbox-proc ")
        };
        let mut listed = Vec::new();
        for _ in 0..200 {
            listed = ok(sandbox.processes(None).await);
            if listed.iter().any(|p| p.command == running)
                && !listed.iter().any(|p| protocol(&p.command))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let commands: Vec<&str> = listed.iter().map(|p| p.command.as_str()).collect();
        assert!(
            commands.contains(&launched.as_str()),
            "the launched sleep is missing: {commands:?}"
        );
        assert!(
            listed.iter().any(|p| p.pid == handle.pid()),
            "the launched pid is missing: {commands:?}"
        );
        assert!(
            commands.contains(&running.as_str()),
            "the exec'd command's process is missing: {commands:?}"
        );
        for command in &commands {
            assert!(
                !protocol(command),
                "the protocol's process {command:?} is listed: {commands:?}"
            );
        }
        let sleeps = ok(sandbox.processes(Some(&launched)).await);
        assert!(sleeps.iter().any(|p| p.command == launched), "{sleeps:?}");
        assert!(
            sleeps.iter().all(|p| p.command.contains(&launched)),
            "{sleeps:?}"
        );
        drop(busy);
        ok(handle.kill(Signal::Kill).await);
        ok(sandbox.kill_all().await);
    }

    /// A launched process's exit code is recorded.
    pub async fn process_exit_status(ctx: Ctx) {
        let handle = ok(ctx
            .sandbox
            .launch(LaunchRequest::new("echo bye; exit 7"))
            .await);
        let status = ok(handle.wait(Duration::from_secs(60)).await);
        assert_eq!(status.and_then(|s| s.code), Some(7));
        assert_eq!(ok(handle.log(None).await), b"bye\n");
    }

    /// list, status, url, connect, connect_component.
    pub async fn lifecycle(ctx: Ctx) {
        let sandbox = &ctx.sandbox;
        let platform = Arc::clone(sandbox.platform());
        let listed = ok(Sandbox::list(platform.as_ref()).await);
        let me = listed
            .iter()
            .find(|s| s.id == sandbox.id())
            .expect("listed");
        assert_eq!(me.name, sandbox.name());
        assert_eq!(me.image, ImageKind::Python);
        assert_eq!(me.component_type, ComponentType::Worker);
        assert!(ok(sandbox.status().await).is_active());
        ok(sandbox.wait_ready(Duration::from_secs(30)).await);
        assert_eq!(ok(sandbox.url().await), None);
        assert_eq!(sandbox.component(), "sandbox");
        let again =
            ok(Sandbox::connect_component(Arc::clone(&platform), sandbox.id(), "sandbox").await);
        assert_eq!(
            ok(again.exec("echo via-connect").await).stdout,
            b"via-connect\n"
        );
        let err = Sandbox::connect_component(Arc::clone(&platform), sandbox.id(), "web").await;
        assert!(err.unwrap_err().is_not_found());
        let err = Sandbox::connect(
            Arc::clone(&platform),
            "00000000-0000-4000-8000-000000000000",
        )
        .await;
        assert!(err.unwrap_err().is_not_found());
    }

    /// `with_sandbox` deletes on success, error and panic.
    pub async fn scoped_sandbox(ctx: Ctx) {
        let platform = Arc::clone(ctx.sandbox.platform());
        let builder = || {
            Sandbox::builder()
                .defaults(TemplateDefaults::default())
                .name(format!(
                    "scoped-{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..10]
                ))
                .platform(Arc::clone(&platform))
        };
        let id = ok(crate::with_sandbox(builder(), |s| async move {
            assert_eq!(s.exec("echo in").await?.stdout, b"in\n");
            Ok(s.id().to_owned())
        })
        .await);
        assert!(platform.get_app(&id).await.unwrap_err().is_not_found());
        let seen = Arc::new(std::sync::Mutex::new(String::new()));
        let seen2 = Arc::clone(&seen);
        let err = crate::with_sandbox(builder(), |s| async move {
            *seen2
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = s.id().to_owned();
            Err::<(), _>(Error::InvalidArgument {
                name: "x".into(),
                reason: "test".into(),
            })
        })
        .await;
        assert!(matches!(err, Err(Error::InvalidArgument { .. })));
        let id = seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        assert!(platform.get_app(&id).await.unwrap_err().is_not_found());
        let seen3 = Arc::clone(&seen);
        let panicked = AssertUnwindSafe(crate::with_sandbox(builder(), |s| async move {
            *seen3
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = s.id().to_owned();
            if s.id().is_empty() {
                return Ok(());
            }
            panic!("boom");
        }))
        .catch_unwind()
        .await;
        assert!(panicked.is_err());
        let id = seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        assert!(platform.get_app(&id).await.unwrap_err().is_not_found());
    }

    /// The blocking facade, from a plain thread.
    pub async fn blocking_facade(ctx: Ctx) {
        let platform = Arc::clone(ctx.sandbox.platform());
        let id = ctx.sandbox.id().to_owned();
        let result = tokio::task::spawn_blocking(move || {
            let sandbox = crate::blocking::Sandbox::connect(platform, &id)?;
            let out = sandbox.exec_with(ExecRequest::argv(["printf", "%s", "blocking"]))?;
            let mut chunks = 0;
            let streamed = sandbox.exec_stream(ExecRequest::shell("echo s"), |_| chunks += 1)?;
            let session = sandbox.session();
            session.exec("cd /tmp")?;
            let pwd = session.exec("pwd")?;
            Ok::<_, Error>((out, streamed, chunks, pwd))
        })
        .await
        .expect("blocking task");
        let (out, streamed, chunks, pwd) = ok(result);
        assert_eq!(out.stdout, b"blocking");
        assert_eq!(streamed.stdout, b"s\n");
        assert!(chunks >= 2);
        assert_eq!(pwd.stdout, b"/tmp\n");
    }

    /// Runs `request` collected and streamed; the two results must be the same, byte for byte.
    async fn both(sandbox: Sandbox, request: ExecRequest) -> crate::ExecOutput {
        let collected = ok(sandbox.exec_with(request.clone()).await);
        let streamed = ok(ok(sandbox.exec_stream(request).await)
            .collect_output()
            .await);
        assert_eq!(collected, streamed, "collect and stream mode disagree");
        collected
    }

    /// Waits (with a deadline) until no process's command line starts with `prefix`.
    async fn wait_until_gone(sandbox: &Sandbox, prefix: &str) {
        for _ in 0..300 {
            let listing = ok(sandbox.exec(PS_ARGS).await).stdout_text();
            if !listing.lines().any(|line| line.starts_with(prefix)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("`{prefix}` is still running after 30 s");
    }

    /// Kills every process whose command line starts with `prefix`.
    async fn kill_all(sandbox: &Sandbox, prefix: &str) {
        ok(sandbox
            .exec(&format!(
                "for p in /proc/[0-9]*; do case \"$(tr '\\000' ' ' <$p/cmdline 2>/dev/null)\" in \
                 '{prefix}'*) kill -9 ${{p#/proc/}} 2>/dev/null;; esac; done; true"
            ))
            .await);
    }

    /// Output through `/dev/stdout` and `/dev/stderr` reopened by the command, `tee` on
    /// them, and a large append next to concurrent commands: exact in both modes.
    pub async fn reopened_outputs_are_exact(ctx: Ctx) {
        let s = &ctx.sandbox;
        let out = both(
            s.clone(),
            ExecRequest::shell(
                "echo zero; echo one >/dev/stdout; echo two >>/dev/stdout; echo three",
            ),
        )
        .await;
        assert_eq!(out.stdout, b"zero\none\ntwo\nthree\n");
        let out = both(
            s.clone(),
            ExecRequest::shell("echo hi | tee /dev/stderr; echo err >/dev/stderr; echo out"),
        )
        .await;
        assert_eq!(out.stdout, b"hi\nout\n");
        assert_eq!(out.stderr, b"hi\nerr\n");
        // Several megabytes appended through `>>/dev/stdout` while other commands print:
        // every output arrives whole and apart.
        let big = "head -c 3000000 /dev/zero | tr '\\0' x >>/dev/stdout; echo end";
        let mut runs = Vec::new();
        for i in 0..3 {
            runs.push(both(s.clone(), ExecRequest::shell(big)));
            runs.push(both(
                s.clone(),
                ExecRequest::shell(format!("echo small {i}; echo e{i} >/dev/stderr")),
            ));
        }
        let outs = futures::future::join_all(runs).await;
        for (k, out) in outs.iter().enumerate() {
            if k % 2 == 0 {
                assert_eq!(out.stdout.len(), 3_000_004, "large output {k}");
                assert!(out.stdout[..3_000_000].iter().all(|&b| b == b'x'));
                assert!(out.stdout.ends_with(b"x\nend\n") || out.stdout.ends_with(b"xend\n"));
                assert!(out.stderr.is_empty());
            } else {
                assert_eq!(out.stdout, format!("small {}\n", k / 2).into_bytes());
                assert_eq!(out.stderr, format!("e{}\n", k / 2).into_bytes());
            }
        }
    }

    /// Children left running with the output pipes open never hold the result back: it is
    /// complete after the drain grace; they keep running unless the request kills them.
    pub async fn background_children_do_not_hold_the_result(ctx: Ctx) {
        let s = &ctx.sandbox;
        let tag = uuid::Uuid::new_v4().as_u128() % 1_000_000;
        let out = both(
            s.clone(),
            ExecRequest::shell(format!("sleep 1000.{tag} & echo started")),
        )
        .await;
        assert_eq!(out.stdout, b"started\n");
        assert!(out.success());
        let listing = ok(s.exec(PS_ARGS).await).stdout_text();
        let sleeping = listing
            .lines()
            .filter(|l| l.starts_with(&format!("sleep 1000.{tag}")))
            .count();
        assert_eq!(sleeping, 2, "the children keep running: {listing}");
        kill_all(s, &format!("sleep 1000.{tag}")).await;

        let out = both(
            s.clone(),
            ExecRequest::shell(format!("sleep 1001.{tag} & echo started")).kill_children(true),
        )
        .await;
        assert_eq!(out.stdout, b"started\n");
        wait_until_gone(s, &format!("sleep 1001.{tag}")).await;

        // `yes` writes for ever: the result is cut, and `yes` ends on its broken pipe. (With
        // no grace, the cut comes as soon as the client hears of the exit: `yes` writes
        // hundreds of megabytes in the default 250 ms.)
        let word = format!("y{tag}");
        for streamed in [false, true] {
            let request = ExecRequest::shell(format!("yes {word} & echo parent >&2"))
                .drain_grace(Duration::ZERO);
            let out = if streamed {
                ok(ok(s.exec_stream(request).await).collect_output().await)
            } else {
                ok(s.exec_with(request).await)
            };
            assert_eq!(out.stderr, b"parent\n");
            let line = format!("{word}\n");
            let whole = out.stdout.len() / line.len() * line.len();
            assert!(
                out.stdout[..whole]
                    .chunks(line.len())
                    .all(|c| c == line.as_bytes()),
                "streamed {streamed}: not only `yes` lines"
            );
            assert!(line.as_bytes().starts_with(&out.stdout[whole..]));
        }
        wait_until_gone(s, &format!("yes {word}")).await;

        // A child that stops itself while holding stdout.
        for streamed in [false, true] {
            let request = ExecRequest::shell("sh -c 'echo $$; kill -STOP $$' & echo parent");
            let out = if streamed {
                ok(ok(s.exec_stream(request).await).collect_output().await)
            } else {
                ok(s.exec_with(request).await)
            };
            let text = out.stdout_text();
            let mut lines: Vec<&str> = text.lines().collect();
            lines.sort_unstable();
            assert_eq!(lines.len(), 2, "{text:?}");
            assert_eq!(lines[1], "parent", "{text:?}");
            let pid: u32 = lines[0].parse().expect("the child's pid");
            ok(s.exec(&format!("kill -9 {pid}")).await);
        }
    }

    /// A request's own env and cwd apply to it alone; concurrent calls on one session take
    /// turns in the order they were made.
    pub async fn session_request_scope(ctx: Ctx) {
        let session = ctx.sandbox.session();
        ok(session
            .exec("export KEEP=session OVER=session; cd /tmp")
            .await);
        let probe = "echo $KEEP $OVER ${ONLY-unset}; pwd";
        let out = ok(session
            .exec_with(
                ExecRequest::shell(probe)
                    .env("OVER", "request")
                    .env("ONLY", "x")
                    .cwd("/"),
            )
            .await);
        assert_eq!(out.stdout, b"session request x\n/\n");
        let out = ok(session.exec(probe).await);
        assert_eq!(out.stdout, b"session session unset\n/tmp\n");
        let streamed = ok(ok(session
            .exec_stream(ExecRequest::shell(probe).env("ONLY", "y"))
            .await)
        .collect_output()
        .await);
        assert_eq!(streamed.stdout, b"session session y\n/tmp\n");
        let out = ok(session.exec(probe).await);
        assert_eq!(out.stdout, b"session session unset\n/tmp\n");

        let tag = uuid::Uuid::new_v4().simple().to_string();
        let file = format!("turns.{}", &tag[..12]);
        let scripts: Vec<String> = (0..5)
            .map(|i| format!("echo start {i} >>{file}; sleep 0.05; echo end {i} >>{file}"))
            .collect();
        let outs = futures::future::join_all(scripts.iter().map(|s| session.exec(s))).await;
        for out in outs {
            ok(out).exit_ok().expect("a turn");
        }
        let out = ok(session.exec(&format!("cat {file}; rm -f {file}")).await);
        let expected: String = (0..5).map(|i| format!("start {i}\nend {i}\n")).collect();
        assert_eq!(out.stdout_text(), expected);
        ok(session.close().await);
    }

    /// A console that stays open but goes silent fails the commands in flight with
    /// `ConsoleLost` within the heartbeat deadline (2 s here) plus a grace, in both modes;
    /// the next command opens a new console.
    pub async fn stalled_console_is_lost(ctx: Ctx) {
        let bound = STALL_HEARTBEAT + Duration::from_secs(20);
        ok(ctx.sandbox.exec("true").await);
        let sandbox = ctx.sandbox.clone();
        let running = tokio::spawn(async move { sandbox.exec("sleep 30; echo late").await });
        ctx.hostile.stall_open_consoles();
        let err = tokio::time::timeout(bound, running)
            .await
            .expect("a stalled console was not noticed")
            .expect("task")
            .unwrap_err();
        assert!(matches!(err, Error::ConsoleLost { .. }), "{err}");
        assert!(!err.is_retryable());

        let mut stream = ok(ctx
            .sandbox
            .exec_stream(ExecRequest::shell("echo up; sleep 30"))
            .await);
        match stream.next_event().await {
            Some(Ok(ExecEvent::Stdout(chunk))) => assert_eq!(&chunk[..], b"up\n"),
            other => panic!("expected the first line, got {other:?}"),
        }
        ctx.hostile.stall_open_consoles();
        let event = tokio::time::timeout(bound, stream.next_event())
            .await
            .expect("a stalled stream was not noticed");
        assert!(
            matches!(event, Some(Err(Error::ConsoleLost { .. }))),
            "{event:?}"
        );
        let out = ok(ctx.sandbox.exec("echo back").await);
        assert_eq!(out.stdout, b"back\n");
        assert_eq!(ctx.hostile.consoles_opened(), 3);
    }

    /// A streamed command whose reader stops reading is held back by the flow-control
    /// window instead of filling the client's memory; read on, every byte arrives.
    pub async fn slow_reader_slows_the_command(ctx: Ctx) {
        let s = &ctx.sandbox;
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let progress = format!("progress.{}", &tag[..12]);
        let rounds = 200;
        let script = format!(
            "i=0; while [ $i -lt {rounds} ]; do head -c 65536 /dev/zero; i=$((i+1)); echo $i >{progress}; done"
        );
        let mut stream = ok(s.exec_stream(ExecRequest::shell(&script)).await);
        let mut received = match stream.next_event().await {
            Some(Ok(ExecEvent::Stdout(chunk))) => chunk.len(),
            other => panic!("expected output, got {other:?}"),
        };
        // Not reading on: the command's progress must settle far below its end.
        let mut last = u32::MAX;
        let mut steady = 0;
        for _ in 0..200 {
            let out = ok(s
                .exec(&format!("cat {progress} 2>/dev/null || echo 0"))
                .await);
            // Empty while the command rewrites it: look again.
            let Ok(now) = out.stdout_text().trim().parse::<u32>() else {
                continue;
            };
            if now == last {
                steady += 1;
                if steady == 3 {
                    break;
                }
            } else {
                steady = 0;
                last = now;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            steady, 3,
            "the command never settled (at {last} of {rounds})"
        );
        assert!(
            last <= 40,
            "the command ran ahead of its reader: {last} of {rounds} rounds written while one chunk was read"
        );
        let mut exit = None;
        while let Some(event) = stream.next_event().await {
            match ok(event) {
                ExecEvent::Stdout(chunk) => received += chunk.len(),
                ExecEvent::Stderr(chunk) => panic!("stderr: {chunk:?}"),
                ExecEvent::Exit(status) => exit = Some(status),
            }
        }
        assert!(exit.expect("an exit").success());
        assert_eq!(received, rounds * 65536);
        let collected = ok(s.exec(&script).await);
        assert_eq!(collected.stdout.len(), rounds * 65536);
        ok(s.exec(&format!("rm -f {progress}")).await);
    }
}

//! Sandboxes on DigitalOcean App Platform (or on this machine): what a user holds.
//!
//! `sandbox-core` sits on the [`Platform`](doctl_driver::Platform) seam of `doctl-driver`
//! (implemented by `Doctl`, `DoApi` and `sandbox_local::LocalPlatform`) and under `sandbox-fs`
//! and the `sandbox` CLI. It picks the platform ([`Provider`]), creates, finds and deletes
//! sandboxes, and runs commands in them with byte-exact output over one console per sandbox,
//! kept open and reused.
//!
//! # Overview
//!
//! - [`Provider`] and [`ProviderBuilder`]: the platform from settings or the environment (local,
//!   or DigitalOcean through the REST API or doctl), with a label for messages.
//! - [`Sandbox`]: lifecycle ([`Sandbox::builder`], [`Sandbox::find`], [`Sandbox::lookup`],
//!   [`Sandbox::connect`], [`Sandbox::list`], [`Sandbox::status`], [`Sandbox::wait_ready`],
//!   [`Sandbox::wait_ready_with`], [`Sandbox::url`], [`Sandbox::delete`]),
//!   commands ([`Sandbox::exec`], [`Sandbox::exec_with`], [`Sandbox::exec_stream`]) and
//!   background processes ([`Sandbox::launch`], [`Sandbox::processes`], [`Sandbox::kill`],
//!   [`Sandbox::kill_all`], [`Sandbox::process_log`]).
//! - [`ExecRequest`] (shell or argv, env, cwd, stdin, timeout) and [`ExecOutput`] (status,
//!   stdout and stderr as bytes); [`ExecStream`] of [`ExecEvent`]s.
//! - [`SandboxBuilder`]: what a new sandbox looks like; readiness reported as [`Progress`]
//!   events ([`SandboxBuilder::on_progress`]), stopped by [`SandboxBuilder::cancel_on`], and a
//!   sandbox that does not become ready deleted again ([`SandboxBuilder::delete_on_failure`]).
//! - [`Session`]: commands that keep `cd` and `export` from one call to the next.
//! - [`with_sandbox`]: a sandbox deleted when the scope ends, on success, error or panic.
//! - [`PoolManager`]: warm pools per [`Template`] ([`PoolConfig`]), so that
//!   [`acquire`](PoolManager::acquire) hands out a ready sandbox in milliseconds, whose first
//!   command is warm; [`SandboxBuilder::ttl`] and [`Sandbox::expires_at`]: expiry recorded on
//!   the app; [`sweep`]: deletes expired and orphaned sandboxes (App Platform has no expiry of
//!   its own). See `docs/pools.md`.
//! - [`blocking`]: the same API without async.
//! - [`Error`]: one error type, with [`Error::is_retryable`].
//!
//! # Example
//!
//! ```no_run
//! use sandbox_core::{ExecRequest, Provider, Sandbox};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Local unless SANDBOX_PROVIDER=digitalocean; `Provider::builder()` for explicit settings.
//! let provider = Provider::from_env()?;
//! let sandbox = Sandbox::builder()
//!     .image(appspec::ImageKind::Python)
//!     .platform(provider.platform().clone())
//!     .on_progress(|event| eprintln!("  {event}"))
//!     .create()
//!     .await?;
//! let out = sandbox.exec("python3 -c 'print(6*7)'").await?;
//! assert_eq!(out.stdout, b"42\n");
//! let out = sandbox
//!     .exec_with(ExecRequest::argv(["cat"]).stdin(vec![0u8, 159, 146, 150]))
//!     .await?;
//! assert_eq!(out.stdout, [0u8, 159, 146, 150]);
//! // Later: by name, id or unique id prefix.
//! let again = Sandbox::find(provider.platform().clone(), sandbox.name()).await?;
//! again.delete().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # How commands travel
//!
//! The first command opens a console (an interactive shell on a remote terminal) and turns it
//! into an agent: a small POSIX sh loop that reads requests as short ASCII lines and answers
//! with base64 frames tagged with a per-console nonce and the command's id. Prompts, echo,
//! escapes and carriage returns are ignored; output can never be mistaken for a frame since it
//! is encoded. Each command runs in the background in its own process group, so many run at
//! once and a timeout kills the whole group. See `docs/exec-protocol.md`.
//!
//! # Cancellation and drop
//!
//! Dropping an `exec` future or an [`ExecStream`] before the command ends sends SIGKILL to the
//! command's process group. Dropping the last clone of a [`Sandbox`] closes its console (the
//! sandbox itself stays; call [`Sandbox::delete`]). A lost console fails the commands it
//! carried with [`Error::ConsoleLost`]; they are never run again, and the next command opens a
//! new console. Dropping a [`SandboxBuilder::create`] future while it waits for readiness
//! leaves the app behind; [`SandboxBuilder::cancel_on`] stops the wait and deletes it.
//!
//! # Features
//!
//! | feature | adds |
//! | --- | --- |
//! | `local` (default) | the local provider in [`Provider`] (depends on `sandbox-local`) |
//! | `test-util` | `testing::PtyPlatform`: a `Platform` whose consoles are `bash -i` on local pseudo-terminals; a hostile-terminal wrapper; `testing::MockPlatform`: apps in memory with chosen ids and scripted deployments |
//! | `conformance` | `conformance`: the shared test suite of the whole `Sandbox` API, generic over a platform |

pub use error::{Error, Result};
pub use exec::{DEFAULT_DRAIN_GRACE, ExecEvent, ExecOutput, ExecRequest, ExecStream, ExitStatus};
pub use expiry::{PoolOwner, SweepOptions, SweepReason, Swept, expires_at, pool_owner, sweep};
pub use pool::{
    Metrics, OnEmpty, PoolConfig, PoolManager, PoolManagerBuilder, PoolMetrics, PooledSandbox,
    Template,
};
pub use process::{LaunchRequest, ProcessHandle, ProcessInfo, Signal};
pub use provider::{Driver, Provider, ProviderBuilder, ProviderKind};
pub use sandbox::{
    Candidate, DEFAULT_CONSOLE_TIMEOUT, DEFAULT_HEARTBEAT_TIMEOUT, DEFAULT_READY_TIMEOUT, Found,
    MIN_ID_PREFIX, Progress, ReadyOptions, Sandbox, SandboxBuilder, SandboxInfo, Scope, Session,
    with_sandbox,
};

pub mod blocking;
mod channel;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod error;
mod exec;
mod expiry;
mod pool;
mod process;
mod protocol;
mod provider;
mod sandbox;
mod script;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;

#[cfg(test)]
mod pty_tests {
    //! The conformance suite against bash on local pseudo-terminals.
    use std::sync::Arc;

    async fn pty() -> crate::conformance::Target {
        let platform = crate::testing::PtyPlatform::new().expect("pty platform");
        crate::conformance::Target::new(Arc::new(platform))
    }

    crate::conformance_tests!(pty);

    /// With an unwritable temp folder, the agent keeps its files in the home folder.
    #[tokio::test]
    async fn agent_falls_back_to_home_without_a_writable_tmp() {
        let platform = crate::testing::PtyPlatform::new()
            .expect("pty platform")
            .with_env("TMPDIR", "/proc");
        let sandbox = crate::Sandbox::builder()
            .defaults(appspec::TemplateDefaults::default())
            .platform(Arc::new(platform))
            .create()
            .await
            .expect("sandbox");
        let out = sandbox
            .exec("printf ok; ls -d \"$HOME\"/.sandbox-exec.*")
            .await
            .expect("exec");
        assert!(out.stdout.starts_with(b"ok/"), "{out:?}");
        sandbox.delete().await.expect("delete");
    }

    /// Where `setsid` exists, commands run in a session of their own, without a controlling
    /// terminal (they cannot write frames to it); without it, `timeout` groups them.
    #[tokio::test]
    async fn commands_have_no_terminal_where_setsid_exists() {
        for (no_setsid, expect_tty) in [(false, false), (true, true)] {
            let mut platform = crate::testing::PtyPlatform::new().expect("pty platform");
            if no_setsid {
                platform = platform.with_env("SANDBOX_EXEC_NO_SETSID", "1");
            }
            let sandbox = crate::Sandbox::builder()
                .defaults(appspec::TemplateDefaults::default())
                .platform(Arc::new(platform))
                .create()
                .await
                .expect("sandbox");
            // Field 7 of /proc/<pid>/stat is the controlling terminal (0: none).
            let out = sandbox
                .exec("read -r _ _ _ _ _ _ t _ </proc/self/stat; echo $t")
                .await;
            let tty: i64 = out
                .expect("exec")
                .stdout_text()
                .trim()
                .parse()
                .expect("a number");
            assert_eq!(tty != 0, expect_tty, "no_setsid={no_setsid}");
            sandbox.delete().await.expect("delete");
        }
    }

    mod without_ps {
        //! `processes` reads `/proc` where `ps` is missing or fails (here a `ps` that fails
        //! comes first in `PATH`).
        use std::sync::Arc;

        async fn pty_without_ps() -> crate::conformance::Target {
            let dir = tempfile::tempdir().expect("temp dir");
            std::os::unix::fs::symlink("/bin/false", dir.path().join("ps")).expect("symlink");
            let path = format!(
                "{}:{}",
                dir.path().display(),
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".to_owned())
            );
            let platform = crate::testing::PtyPlatform::new()
                .expect("pty platform")
                .with_env("PATH", path);
            let mut target = crate::conformance::Target::new(Arc::new(platform));
            target.guard = Box::new(dir);
            target
        }

        crate::conformance_tests!(pty_without_ps; processes, processes_leave_out_the_agent);
    }

    mod without_setsid {
        //! The agent's fallbacks: `timeout` makes the process groups when `setsid` is missing,
        //! and bulk input is read line by line by the shell when `head` may not be used.
        use std::sync::Arc;

        async fn pty_without_setsid() -> crate::conformance::Target {
            let platform = crate::testing::PtyPlatform::new()
                .expect("pty platform")
                .with_env("SANDBOX_EXEC_NO_SETSID", "1")
                .with_env("SANDBOX_EXEC_NO_HEAD", "1");
            crate::conformance::Target::new(Arc::new(platform))
        }

        crate::conformance_tests!(pty_without_setsid; exec_basics, signal_status,
            stderr_separate_and_codes, concurrent_commands, timeout_keeps_console,
            console_drop_fails_command_once, streaming_events, stdin_round_trip, processes,
            processes_leave_out_the_agent,
            umask_is_the_shells);
    }
}

#[cfg(test)]
mod local_tests {
    //! The conformance suite against `sandbox_local::LocalPlatform` (skipped, with a printed
    //! reason, where the kernel cannot run local sandboxes; failed under
    //! `SANDBOX_REQUIRE_LOCAL=1`).

    async fn local() -> Option<crate::conformance::Target> {
        let target = sandbox_testkit::target(sandbox_testkit::Via::Local).await?;
        let mut conformance = crate::conformance::Target::new(target.platform.clone());
        conformance.guard = Box::new(target);
        Some(conformance)
    }

    crate::conformance_tests!(local);
}

#[cfg(test)]
mod emulator_tests {
    //! The conformance suite through the App Platform emulator (over `LocalPlatform`), with
    //! both drivers: `Doctl` running the doctl stand-in, and `DoApi`.
    use sandbox_testkit::Via;

    async fn target(via: Via) -> Option<crate::conformance::Target> {
        let target = sandbox_testkit::target(via).await?;
        let mut conformance = crate::conformance::Target::new(target.platform.clone());
        conformance.guard = Box::new(target);
        if via == Via::Doctl {
            // doctl sends one WebSocket frame per input byte.
            conformance.large_stdin = 256 << 10;
        }
        Some(conformance)
    }

    /// The emulator breaks the console after some output, in the middle of a frame: it
    /// holds the connection open and forwards nothing (half-open), or drops it. The streamed
    /// command in flight fails with `ConsoleLost` (never a corrupt frame), within the
    /// heartbeat deadline plus a grace, with both drivers; the next command gets a new console.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn broken_consoles_are_lost_with_both_drivers() {
        use std::time::Duration;
        for via in [Via::Doctl, Via::Api] {
            let Some(target) = sandbox_testkit::target(via).await else {
                return;
            };
            let emulator = target.emulator.as_ref().expect("an emulator");
            let sandbox = crate::Sandbox::builder()
                .name(format!(
                    "broken-{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..8]
                ))
                .defaults(appspec::TemplateDefaults::default())
                .heartbeat_timeout(Duration::from_secs(2))
                .platform(target.platform.clone())
                .create()
                .await
                .expect("create");
            for stall in [true, false] {
                // The faults apply to the next console opened.
                sandbox.close_console().await;
                // Past the bootstrap, inside the first 87 KB frame of the output.
                if stall {
                    emulator.faults().stall_console_after_bytes(8000);
                } else {
                    emulator.faults().drop_console_after_bytes(8000);
                }
                // Streamed, so the output crosses the fault's threshold while it runs.
                let request = crate::ExecRequest::shell("head -c 100000 /dev/zero; sleep 30");
                let stream = sandbox.exec_stream(request).await.expect("started");
                let err = tokio::time::timeout(Duration::from_secs(25), stream.collect_output())
                    .await
                    .unwrap_or_else(|_| panic!("{via:?} (stall {stall}): not noticed"))
                    .expect_err("the command cannot finish");
                assert!(
                    matches!(err, crate::Error::ConsoleLost { .. }),
                    "{via:?} (stall {stall}): {err}"
                );
                assert!(!err.is_retryable());
                let out = sandbox.exec("echo back").await.expect("a new console");
                assert_eq!(out.stdout, b"back\n");
            }
            sandbox.delete().await.expect("delete");
        }
    }

    mod doctl {
        async fn doctl() -> Option<crate::conformance::Target> {
            super::target(super::Via::Doctl).await
        }
        crate::conformance_tests!(doctl);
    }

    mod api {
        async fn api() -> Option<crate::conformance::Target> {
            super::target(super::Via::Api).await
        }
        crate::conformance_tests!(api);
    }
}

//! Consoles: an interactive bash on a new pseudo-terminal of the sandbox's own devpts, started
//! inside the sandbox by `runc exec`.

use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use doctl_driver::{Console, Error, Result, TermSize};
use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use tokio::io::unix::AsyncFd;
use tokio::sync::{oneshot, watch};

use crate::launch::{Host, SANDBOX_UID};
use crate::runtime;
use crate::state::{ProcRef, Record, children_of};

/// How long output may take to reach the terminal's master side after bash exits.
const DRAIN_GRACE: Duration = Duration::from_millis(50);
/// How long `close` waits for the console's processes to end.
const CLOSE_DEADLINE: Duration = Duration::from_secs(5);
/// The `tty` group inside a sandbox.
const TTY_GID: u32 = 5;
/// How long the carrier (`runc exec`) gets to reap its killed shell and exit before it is
/// killed too.
const REAP_GRACE: Duration = Duration::from_secs(1);

/// An interactive bash inside a local sandbox, on its own pseudo-terminal.
///
/// Dropping it kills the bash (background processes the shell
/// started keep running until the sandbox is deleted).
pub struct LocalConsole {
    master: AsyncFd<OwnedFd>,
    send_lock: tokio::sync::Mutex<()>,
    exited: watch::Receiver<bool>,
    /// `runc exec`, the shell's parent on the host.
    carrier: Option<ProcRef>,
    kill: Mutex<Option<oneshot::Sender<()>>>,
    sandbox: String,
}

impl std::fmt::Debug for LocalConsole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalConsole")
            .field("sandbox", &self.sandbox)
            .field("carrier", &self.carrier.map(|c| c.pid))
            .finish_non_exhaustive()
    }
}

fn pty_error(what: &str, e: rustix::io::Errno) -> Error {
    Error::other_with(format!("{what}: {e}"), std::io::Error::from(e))
}

fn winsize(size: TermSize) -> rustix::termios::Winsize {
    rustix::termios::Winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

impl LocalConsole {
    /// Opens a console on a running sandbox.
    pub(crate) async fn open(record: &Record, host: &Host, size: TermSize) -> Result<LocalConsole> {
        let Some(supervisor) = record.supervisor.filter(ProcRef::is_alive) else {
            return Err(Error::other(format!(
                "app `{}`: the sandbox supervisor is not running; delete the sandbox and \
                 create it again",
                record.id
            )));
        };
        let pid = supervisor.pid;
        // The pseudo-terminal comes from the sandbox's own devpts instance, so inside the
        // sandbox the shell's terminal is a /dev/pts/N of its own.
        let master = rustix::fs::open(
            format!("/proc/{pid}/root/dev/pts/ptmx"),
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )
        .map_err(|e| pty_error("opening the sandbox's /dev/pts/ptmx", e))?;
        rustix::pty::grantpt(&master).map_err(|e| pty_error("grantpt", e))?;
        rustix::pty::unlockpt(&master).map_err(|e| pty_error("unlockpt", e))?;
        rustix::termios::tcsetwinsize(&master, winsize(size))
            .map_err(|e| pty_error("setting the terminal size", e))?;
        let slave = rustix::pty::ioctl_tiocgptpeer(
            &master,
            OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC,
        )
        .map_err(|e| pty_error("opening the terminal's peer", e))?;
        // The terminal belongs to user `sandbox` (and group `tty`) inside, as a login's would:
        // the shell opens it again below.
        if let Some(base) = record.uid_base {
            rustix::fs::fchown(
                &slave,
                Some(rustix::fs::Uid::from_raw(base + SANDBOX_UID)),
                Some(rustix::fs::Gid::from_raw(base + TTY_GID)),
            )
            .map_err(|e| pty_error("giving the terminal to the sandbox's user", e))?;
        }
        // `runc exec` starts the shell in the sandbox's namespaces and cgroup, as user
        // `sandbox`, with the container's (empty) capability sets, no_new_privs and seccomp
        // profile, and stays as its parent (it reaps it). The process runc starts leads a
        // session of its own without a controlling terminal: opening the terminal (without
        // O_NOCTTY) as its standard streams makes it the controlling one; then it becomes
        // the shell.
        let pts = rustix::pty::ptsname(&master, Vec::new())
            .map_err(|e| pty_error("naming the terminal", e))?;
        let pts = pts.to_string_lossy().into_owned();
        let mut cmd = tokio::process::Command::new(&host.runc);
        cmd.arg("--root").arg(runtime::runc_root());
        cmd.arg("exec");
        cmd.arg(format!("--user={SANDBOX_UID}:{SANDBOX_UID}"));
        cmd.arg("--cwd=/home/sandbox/app");
        cmd.args(["--env", "TERM=xterm-256color", "--env", r"PS1=\u@\h:\w\$ "]);
        cmd.arg(&record.id);
        cmd.args([
            "/bin/bash".to_owned(),
            "-c".to_owned(),
            format!("exec /bin/bash -i 0<>{pts} 1>&0 2>&0"),
        ]);
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::other_with(format!("starting `{}`", host.runc.display()), e))?;
        let carrier = child.id().and_then(|p| ProcRef::of(p as i32));

        let (exited_tx, exited) = watch::channel(false);
        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            // The terminal stays open on this side until the shell has ended, so the
            // terminal never hangs up while the shell is still opening it.
            let _slave = slave;
            tokio::select! {
                _ = child.wait() => {}
                _ = kill_rx => {
                    // runc reaps its killed shell and exits by itself. Killing it first would
                    // leave the shell's zombie to the host's init, and the sandbox's deletion
                    // would wait until that reaps it.
                    if tokio::time::timeout(REAP_GRACE, child.wait()).await.is_err() {
                        let _ = child.start_kill();
                        let _ = child.wait().await;
                    }
                }
            }
            let _ = exited_tx.send(true);
        });
        // SAFETY: `master` is an `OwnedFd`: its descriptor is valid and open, `as_raw_fd` always
        // returns that same descriptor, and it is closed only when the `AsyncFd` (which owns
        // it) is dropped.
        #[allow(unsafe_code)]
        let master = unsafe { AsyncFd::register(master) }
            .map_err(|e| Error::other(format!("registering the terminal with the runtime: {e}")))?;
        Ok(LocalConsole {
            master,
            send_lock: tokio::sync::Mutex::new(()),
            exited,
            carrier,
            kill: Mutex::new(Some(kill_tx)),
            sandbox: record.id.clone(),
        })
    }

    /// One non-blocking read: `Some(Ok(None))` at the end of the terminal.
    fn read_now(&self) -> Option<Result<Option<Vec<u8>>>> {
        let mut buf = vec![0u8; 16 * 1024];
        match rustix::io::read(self.master.get_ref(), &mut buf) {
            Ok(0) => Some(Ok(None)),
            Ok(n) => {
                buf.truncate(n);
                Some(Ok(Some(buf)))
            }
            Err(rustix::io::Errno::AGAIN) => None,
            Err(rustix::io::Errno::INTR) => None,
            // EIO: no process holds the terminal's other side any more.
            Err(rustix::io::Errno::IO) => Some(Ok(None)),
            Err(e) => Some(Err(Error::ConsoleLost {
                reason: format!("reading the terminal: {e}"),
            })),
        }
    }

    /// Kills the shell; its carrier (`runc exec`) then exits by itself (or is killed after
    /// [`REAP_GRACE`]). A carrier without a shell yet is killed at once.
    fn kill_now(&self) {
        if let Some(carrier) = self.carrier.filter(ProcRef::is_alive) {
            let mut shells = 0;
            for shell in children_of(carrier.pid) {
                if let Some(shell) = ProcRef::of(shell) {
                    shell.kill();
                    shells += 1;
                }
            }
            if shells == 0 {
                carrier.kill();
            }
        }
        if let Ok(mut kill) = self.kill.lock() {
            kill.take();
        }
    }
}

#[async_trait]
impl Console for LocalConsole {
    async fn send(&self, data: &[u8]) -> Result<()> {
        let _guard = self.send_lock.lock().await;
        let mut rest = data;
        while !rest.is_empty() {
            if *self.exited.borrow() {
                return Err(Error::ConsoleLost {
                    reason: "the shell has exited".into(),
                });
            }
            let mut guard = self
                .master
                .writable()
                .await
                .map_err(|e| Error::ConsoleLost {
                    reason: format!("terminal: {e}"),
                })?;
            match guard
                .try_io(|fd| rustix::io::write(fd.get_ref(), rest).map_err(std::io::Error::from))
            {
                Ok(Ok(n)) => rest = &rest[n..],
                Ok(Err(e)) => {
                    return Err(Error::ConsoleLost {
                        reason: format!("writing the terminal: {e}"),
                    });
                }
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    async fn recv(&self) -> Result<Option<Vec<u8>>> {
        let mut exited = self.exited.clone();
        // Also true when the watcher task is gone (its sender dropped).
        let mut gone = false;
        loop {
            if gone || *exited.borrow() {
                // The shell is gone: hand out what it left on the terminal, then the end.
                if let Some(result) = self.read_now() {
                    return result;
                }
                return match tokio::time::timeout(DRAIN_GRACE, self.master.readable()).await {
                    Ok(Ok(mut guard)) => {
                        guard.clear_ready();
                        match self.read_now() {
                            Some(result) => result,
                            None => Ok(None),
                        }
                    }
                    _ => Ok(None),
                };
            }
            tokio::select! {
                ready = self.master.readable() => {
                    let mut guard = ready
                        .map_err(|e| Error::ConsoleLost { reason: format!("terminal: {e}") })?;
                    match self.read_now() {
                        Some(result) => return result,
                        None => guard.clear_ready(),
                    }
                }
                _ = exited.wait_for(|done| *done) => gone = true,
            }
        }
    }

    async fn resize(&self, size: TermSize) -> Result<()> {
        rustix::termios::tcsetwinsize(self.master.get_ref().as_fd(), winsize(size))
            .map_err(|e| pty_error("resizing the terminal", e))
    }

    async fn close(&self) -> Result<()> {
        self.kill_now();
        let mut exited = self.exited.clone();
        match tokio::time::timeout(CLOSE_DEADLINE, exited.wait_for(|done| *done)).await {
            Ok(_) => Ok(()),
            Err(_) => Err(Error::Timeout {
                operation: "closing the console".into(),
                timeout: CLOSE_DEADLINE,
            }),
        }
    }
}

impl Drop for LocalConsole {
    fn drop(&mut self) {
        self.kill_now();
    }
}

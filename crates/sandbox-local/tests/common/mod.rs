//! Helpers shared by the integration tests: per-test state folders, sandboxes deleted on drop,
//! a console reader with deadlines.

#![allow(dead_code)]

use std::time::Duration;

use appspec::{AppSpec, ComponentType, ImageKind, SandboxTemplate};
use doctl_driver::{App, Console, ConsoleTarget, Platform};
use sandbox_local::{LocalConfig, LocalPlatform};

pub const DEADLINE: Duration = Duration::from_secs(20);

/// Skips the test (returns from it) with a printed reason when sandboxes cannot run here, or
/// fails it under `SANDBOX_REQUIRE_LOCAL=1`.
#[macro_export]
macro_rules! require_sandboxes {
    () => {
        if sandbox_testkit::skip_reason().is_some() {
            return;
        }
    };
}

/// A platform on a fresh temporary state folder.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub platform: LocalPlatform,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let platform = LocalPlatform::new(LocalConfig::new(dir.path())).expect("platform");
        Env { dir, platform }
    }

    /// A second platform value on the same state folder (as another process would have).
    pub fn another(&self) -> LocalPlatform {
        LocalPlatform::new(LocalConfig::new(self.dir.path())).expect("platform")
    }

    pub async fn create(&self, image: ImageKind, component: ComponentType) -> Sandbox {
        let spec = spec(image, component);
        self.create_spec(&spec).await
    }

    pub async fn create_spec(&self, spec: &AppSpec) -> Sandbox {
        let app = tokio::time::timeout(Duration::from_secs(60), self.platform.create_app(spec))
            .await
            .expect("create within a minute")
            .expect("create");
        Sandbox::adopt(self.platform.clone(), app)
    }
}

pub fn spec(image: ImageKind, component: ComponentType) -> AppSpec {
    let name = format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    SandboxTemplate::new(image, component)
        .name(name)
        .build()
        .expect("template")
}

/// A sandbox deleted when dropped (also after a failed assertion).
pub struct Sandbox {
    pub platform: LocalPlatform,
    pub app: App,
    _guard: sandbox_testkit::DeleteOnDrop,
}

impl Sandbox {
    /// Takes charge of an app made elsewhere: it is deleted when this is dropped.
    pub fn adopt(platform: LocalPlatform, app: App) -> Sandbox {
        Sandbox {
            _guard: sandbox_testkit::DeleteOnDrop::new(
                std::sync::Arc::new(platform.clone()),
                app.id.clone(),
            ),
            platform,
            app,
        }
    }

    pub fn id(&self) -> &str {
        &self.app.id
    }

    pub async fn console(&self) -> Term {
        let console = self
            .platform
            .open_console(&ConsoleTarget::new(&self.app.id, "sandbox"))
            .await
            .expect("console");
        let mut term = Term {
            console,
            seen: Vec::new(),
        };
        term.expect("$ ").await;
        term
    }

    /// Runs a command in a fresh console and returns what it printed between markers.
    pub async fn run(&self, command: &str) -> String {
        let mut term = self.console().await;
        let out = term.run(command).await;
        term.console.close().await.expect("close");
        out
    }
}

/// A console with what it printed so far.
pub struct Term {
    pub console: Box<dyn Console>,
    pub seen: Vec<u8>,
}

impl Term {
    /// Reads until `needle` appears after what was already consumed; returns the text up to
    /// and including it, and consumes it.
    pub async fn expect(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let text = String::from_utf8_lossy(&self.seen).into_owned();
            if let Some(i) = text.find(needle) {
                let end = i + needle.len();
                let taken = text[..end].to_owned();
                self.seen = text.as_bytes()[end..].to_vec();
                return taken;
            }
            match tokio::time::timeout_at(deadline, self.console.recv()).await {
                Ok(Ok(Some(chunk))) => self.seen.extend_from_slice(&chunk),
                Ok(Ok(None)) => panic!("console ended before {needle:?}; saw {text:?}"),
                Ok(Err(e)) => panic!("console error before {needle:?}: {e}; saw {text:?}"),
                Err(_) => panic!("no {needle:?} within {DEADLINE:?}; saw {text:?}"),
            }
        }
    }

    pub async fn send(&mut self, line: &str) {
        self.console.send(line.as_bytes()).await.expect("send");
    }

    /// Runs a command and returns its output (between two markers, CR/LF turned into LF).
    pub async fn run(&mut self, command: &str) -> String {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let line = format!("echo B{tag}B; {command}; echo E{tag}E\r");
        self.send(&line).await;
        // The echo of the typed line also contains the markers' text, but without the
        // letters right next to each other as printed: `B{tag}B` is printed, the echo shows
        // `echo B{tag}B`: skip past the echo first.
        self.expect(&format!("E{tag}E\r\n")).await;
        self.expect(&format!("B{tag}B\r\n")).await;
        let out = self.expect(&format!("E{tag}E")).await;
        out[..out.len() - tag.len() - 2].replace("\r\n", "\n")
    }

    /// Reads until the console ends; panics if it does not within the deadline.
    pub async fn expect_end(&mut self) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            match tokio::time::timeout_at(deadline, self.console.recv()).await {
                Ok(Ok(Some(chunk))) => self.seen.extend_from_slice(&chunk),
                Ok(Ok(None)) => return,
                Ok(Err(e)) => panic!("console error: {e}"),
                Err(_) => panic!("console did not end within {DEADLINE:?}"),
            }
        }
    }
}

/// SIGKILLs a process.
pub fn kill(pid: i64) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).expect("pid")).expect("pid > 0");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill");
}

/// What `ps -e -o pid=,comm=` prints, from /proc (procps may be missing on minimal machines).
pub const PS: &str = "for p in /proc/[0-9]*; do echo \"${p#/proc/} $(cat $p/comm)\"; done";

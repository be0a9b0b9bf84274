//! Shared pieces of the workspace's end-to-end tests and benchmarks.
//!
//! [`Bench`] starts an App Platform emulator over a `LocalPlatform` on a fresh state folder and
//! gives a [`Platform`] driver on it: `Doctl` (the doctl stand-in binary) or `DoApi`. Every
//! app created through it is deleted when it is dropped, so no sandbox outlives a test.

use std::sync::Arc;
use std::time::Duration;

use appplatform_emulator::EmulatorHandle;
use appspec::{AppSpec, ComponentType, ImageKind, SandboxTemplate};
use doctl_driver::{App, Console, ConsoleTarget, DoApi, Doctl, Platform, Token};
use sandbox_local::LocalPlatform;

/// Every wait in these tests ends by this deadline.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Retries each driver makes after a first failed attempt, in the suite.
pub const RETRIES: u32 = 2;

/// Which `Platform` implementation talks to the emulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// `Doctl` running the doctl stand-in binary.
    Doctl,
    /// `DoApi`, straight to the REST API and WebSocket.
    Api,
}

/// An emulator over local sandboxes, and a driver on it.
pub struct Bench {
    /// Which driver `platform` is.
    pub driver: Driver,
    /// The driver under test.
    pub platform: Arc<dyn Platform>,
    /// The emulator (faults, recorded requests).
    pub emulator: EmulatorHandle,
    /// The emulator's backend.
    pub backend: LocalPlatform,
    _state: tempfile::TempDir,
}

pub use sandbox_testkit::skip_reason;

impl Bench {
    /// Starts an emulator and a driver; `None` (with the reason printed) when sandboxes
    /// cannot run on this machine.
    pub async fn start(driver: Driver) -> Option<Bench> {
        let state = tempfile::tempdir().expect("temp dir");
        let backend = sandbox_testkit::local_platform(state.path())?;
        let emulator = sandbox_testkit::emulator_over(&backend).await;
        let platform = driver_for(driver, &emulator, emulator.token());
        Some(Bench {
            driver,
            platform,
            emulator,
            backend,
            _state: state,
        })
    }

    /// Another driver of the same kind on the same emulator, with another token.
    #[must_use]
    pub fn with_token(&self, token: &str) -> Arc<dyn Platform> {
        driver_for(self.driver, &self.emulator, token)
    }

    /// Creates an app and waits until it is ACTIVE.
    pub async fn create_active(&self, spec: &AppSpec) -> App {
        let created = within(self.platform.create_app(spec))
            .await
            .expect("create_app");
        wait_active(&*self.platform, &created.id).await
    }

    /// Opens a console on the `sandbox` component and reads up to the first prompt.
    pub async fn console(&self, app_id: &str) -> Term {
        let console = within(
            self.platform
                .open_console(&ConsoleTarget::new(app_id, "sandbox")),
        )
        .await
        .expect("open_console");
        let mut term = Term {
            console,
            seen: Vec::new(),
        };
        term.expect("$ ").await;
        term
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.emulator.shutdown();
        sandbox_testkit::delete_all(&self.backend);
    }
}

/// A driver of `kind` on `emulator` with `token`.
#[must_use]
pub fn driver_for(kind: Driver, emulator: &EmulatorHandle, token: &str) -> Arc<dyn Platform> {
    match kind {
        Driver::Doctl => Arc::new(Doctl::new(
            emulator
                .doctl_config()
                .expect("doctl stand-in")
                .with_token(Token::new(token))
                .with_http_retry_max(RETRIES)
                .with_command_timeout(DEADLINE),
        )),
        Driver::Api => Arc::new(
            DoApi::new(
                emulator
                    .doapi_config()
                    .with_token(Token::new(token))
                    .with_max_retries(RETRIES)
                    .with_retry_wait(Duration::from_millis(100), Duration::from_secs(5))
                    .with_request_timeout(DEADLINE)
                    .with_per_page(2),
            )
            .expect("DoApi"),
        ),
    }
}

/// A sandbox spec with a fresh name.
#[must_use]
pub fn spec(image: ImageKind, component: ComponentType) -> AppSpec {
    SandboxTemplate::new(image, component)
        .name(unique_name())
        .build()
        .expect("template")
}

/// A fresh app name.
#[must_use]
pub fn unique_name() -> String {
    format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Runs `fut` within [`DEADLINE`], panicking past it.
pub async fn within<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(DEADLINE, fut)
        .await
        .expect("finished within the deadline")
}

/// Polls an app until it is ACTIVE (panics when it fails or the deadline passes).
pub async fn wait_active(platform: &dyn Platform, app_id: &str) -> App {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let app = within(platform.get_app(app_id)).await.expect("get_app");
        let status = app.status();
        if status.is_active() {
            return app;
        }
        assert!(!status.is_failed(), "deployment failed: {status:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "app {app_id} not ACTIVE in time: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A console and what it printed so far.
pub struct Term {
    /// The console.
    pub console: Box<dyn Console>,
    /// Output not yet consumed.
    pub seen: Vec<u8>,
}

impl Term {
    /// Reads until `needle` appears; returns the text up to and including it, and consumes it.
    pub async fn expect(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(pos) = find(&self.seen, needle.as_bytes()) {
                let end = pos + needle.len();
                let taken: Vec<u8> = self.seen.drain(..end).collect();
                return String::from_utf8_lossy(&taken).into_owned();
            }
            let chunk = tokio::time::timeout_at(deadline, self.console.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{needle:?} not seen in time; got {:?}",
                        String::from_utf8_lossy(&self.seen)
                    )
                });
            match chunk {
                Ok(Some(bytes)) => self.seen.extend_from_slice(&bytes),
                Ok(None) => panic!(
                    "console ended before {needle:?}; got {:?}",
                    String::from_utf8_lossy(&self.seen)
                ),
                Err(err) => panic!(
                    "console failed before {needle:?}: {err}; got {:?}",
                    String::from_utf8_lossy(&self.seen)
                ),
            }
        }
    }

    /// Sends text.
    pub async fn send(&self, text: &str) {
        within(self.console.send(text.as_bytes()))
            .await
            .expect("send");
    }
}

/// The first position of `needle` in `hay`.
#[must_use]
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

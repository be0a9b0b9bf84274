//! Test support shared by the workspace's tests: whether local sandboxes can run on this
//! machine, a [`Platform`] reached directly or through the App Platform emulator with either
//! driver, apps deleted when their guard drops, and crafted tar streams ([`CraftedTar`]).
//! Never shipped (`publish = false`).
//!
//! Where the kernel cannot run local sandboxes, tests skip with a printed reason, unless
//! `SANDBOX_REQUIRE_LOCAL=1` (CI sets it): then they fail, so a suite can never pass by
//! skipping.
//!
//! ```no_run
//! # async fn demo() {
//! use sandbox_testkit::{Via, target};
//!
//! let Some(target) = target(Via::Api).await else {
//!     return; // printed why
//! };
//! let apps = target.platform.list_apps().await.expect("list");
//! # let _ = apps;
//! # }
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use appplatform_emulator::{Emulator, EmulatorHandle};
use doctl_driver::{DoApi, Doctl, Platform, Token};
use sandbox_local::{LocalConfig, LocalPlatform};

/// Set to `1` to make tests fail, instead of skipping, where local sandboxes cannot run.
pub const REQUIRE_LOCAL_ENV: &str = "SANDBOX_REQUIRE_LOCAL";

/// The deadline of each driver call made by the platforms of [`target`].
pub const DRIVER_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether local sandboxes are required here ([`REQUIRE_LOCAL_ENV`] is `1`).
#[must_use]
pub fn local_required() -> bool {
    std::env::var(REQUIRE_LOCAL_ENV).is_ok_and(|v| v == "1")
}

/// Why local sandboxes cannot run on this machine, or `None` when they can.
///
/// # Panics
///
/// When they cannot and [`local_required`]: the test fails with the reason.
#[must_use]
pub fn skip_reason() -> Option<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let reason = match LocalPlatform::new(LocalConfig::new(dir.path())) {
        Ok(platform) => platform.check_host().err().map(|e| e.to_string()),
        Err(e) => Some(e.to_string()),
    };
    let reason = reason?;
    assert!(
        !local_required(),
        "local sandboxes cannot run here, and {REQUIRE_LOCAL_ENV}=1 requires them: {reason}"
    );
    eprintln!("skipping: local sandboxes cannot run here: {reason}");
    Some(reason)
}

/// A local platform on the state folder `dir`, or `None` (with the reason printed) where
/// local sandboxes cannot run.
///
/// # Panics
///
/// As [`skip_reason`], and when the platform cannot be made at all.
#[must_use]
pub fn local_platform(dir: &Path) -> Option<LocalPlatform> {
    if skip_reason().is_some() {
        return None;
    }
    Some(LocalPlatform::new(LocalConfig::new(dir)).expect("local platform"))
}

/// How a test reaches its sandboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Via {
    /// The local provider itself.
    Local,
    /// The emulator over the local provider, through `Doctl` running the doctl stand-in.
    Doctl,
    /// The emulator over the local provider, through `DoApi`.
    Api,
}

impl Via {
    /// All three ways.
    pub const ALL: [Via; 3] = [Via::Local, Via::Doctl, Via::Api];
}

/// A platform reached one [`Via`], and what must outlive it. Dropping it stops the emulator
/// and deletes every app still on the local provider.
pub struct Target {
    /// The platform the test talks to.
    pub platform: Arc<dyn Platform>,
    /// The local provider underneath.
    pub backend: LocalPlatform,
    /// The emulator in between, unless [`Via::Local`].
    pub emulator: Option<EmulatorHandle>,
    state: tempfile::TempDir,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("state", &self.state.path())
            .field("emulator", &self.emulator.as_ref().map(EmulatorHandle::url))
            .finish_non_exhaustive()
    }
}

/// A fresh local provider, reached `via`; `None` (with the reason printed) where local
/// sandboxes cannot run.
///
/// # Panics
///
/// As [`skip_reason`], and when the emulator cannot start.
pub async fn target(via: Via) -> Option<Target> {
    let state = tempfile::tempdir().expect("temp dir");
    let backend = local_platform(state.path())?;
    Some(reach(via, backend, state).await)
}

/// [`target`] whose sandboxes share the host's network (`NetworkMode::Host`, the local
/// provider's weaker opt-in): for tests whose sandbox must reach a server the test runs on the
/// host's loopback (a mock object store). Every other test keeps the sandbox's own network.
///
/// # Panics
///
/// As [`target`].
pub async fn target_on_host_network(via: Via) -> Option<Target> {
    if skip_reason().is_some() {
        return None;
    }
    let state = tempfile::tempdir().expect("temp dir");
    let config = LocalConfig::new(state.path()).with_network(sandbox_local::NetworkMode::Host);
    let backend = LocalPlatform::new(config).expect("local platform");
    Some(reach(via, backend, state).await)
}

/// [`target`] whose emulator (for [`Via::Doctl`] and [`Via::Api`]) walks each deployment
/// through its phases in `pace`, as App Platform takes its time: for tests of what waits for
/// deployments (pools, readiness). [`Via::Local`] has no pace.
///
/// # Panics
///
/// As [`target`].
pub async fn target_paced(via: Via, pace: Duration) -> Option<Target> {
    let state = tempfile::tempdir().expect("temp dir");
    let backend = local_platform(state.path())?;
    Some(reach_paced(via, backend, state, pace).await)
}

/// `backend` reached `via`: directly, or through an emulator and a driver.
async fn reach(via: Via, backend: LocalPlatform, state: tempfile::TempDir) -> Target {
    reach_paced(via, backend, state, Duration::ZERO).await
}

async fn reach_paced(
    via: Via,
    backend: LocalPlatform,
    state: tempfile::TempDir,
    pace: Duration,
) -> Target {
    let (platform, emulator): (Arc<dyn Platform>, _) = match via {
        Via::Local => (Arc::new(backend.clone()), None),
        Via::Doctl | Via::Api => {
            let emulator = Emulator::builder()
                .backend(Arc::new(backend.clone()))
                .pace(pace)
                .start()
                .await
                .expect("emulator");
            let token = emulator.token().to_owned();
            (driver(via, &emulator, &token), Some(emulator))
        }
    };
    Target {
        platform,
        backend,
        emulator,
        state,
    }
}

/// An emulator over `backend` that walks deployments without pause.
///
/// # Panics
///
/// When the emulator cannot start.
pub async fn emulator_over(backend: &LocalPlatform) -> EmulatorHandle {
    Emulator::builder()
        .backend(Arc::new(backend.clone()))
        .pace(Duration::ZERO)
        .start()
        .await
        .expect("emulator")
}

/// A driver of `via`'s kind on `emulator`, with `token` and a [`DRIVER_TIMEOUT`] on each
/// call; [`Via::Local`] is not a driver and gives the `DoApi` one.
///
/// # Panics
///
/// When the doctl stand-in can be neither found nor built.
#[must_use]
pub fn driver(via: Via, emulator: &EmulatorHandle, token: &str) -> Arc<dyn Platform> {
    match via {
        Via::Doctl => Arc::new(Doctl::new(
            emulator
                .doctl_config()
                .expect("doctl stand-in")
                .with_token(Token::new(token))
                .with_command_timeout(DRIVER_TIMEOUT),
        )),
        Via::Local | Via::Api => Arc::new(
            DoApi::new(
                emulator
                    .doapi_config()
                    .with_token(Token::new(token))
                    .with_request_timeout(DRIVER_TIMEOUT),
            )
            .expect("DoApi"),
        ),
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(emulator) = &self.emulator {
            emulator.shutdown();
        }
        delete_all(&self.backend);
    }
}

/// Deletes the app `app_id` when dropped (also when the test panics).
#[derive(Clone)]
pub struct DeleteOnDrop {
    platform: Arc<dyn Platform>,
    app_id: String,
}

impl DeleteOnDrop {
    /// Guards `app_id` on `platform`.
    #[must_use]
    pub fn new(platform: Arc<dyn Platform>, app_id: impl Into<String>) -> Self {
        DeleteOnDrop {
            platform,
            app_id: app_id.into(),
        }
    }
}

impl std::fmt::Debug for DeleteOnDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeleteOnDrop")
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        let platform = Arc::clone(&self.platform);
        let id = self.app_id.clone();
        on_own_runtime(async move {
            let _ = platform.delete_app(&id).await;
        });
    }
}

/// Deletes every app of a local provider, for at most a minute (from any context: a
/// runtime's thread, a drop, or no runtime at all).
pub fn delete_all(backend: &LocalPlatform) {
    let backend = backend.clone();
    on_own_runtime(async move {
        for app in backend.list_apps().await.unwrap_or_default() {
            let _ = backend.delete_app(&app.id).await;
        }
    });
}

/// Runs cleanup on a thread with its own runtime (drop may run inside a runtime, or in none),
/// for at most a minute.
fn on_own_runtime(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(60), work).await;
        });
    })
    .join();
}

/// A tar stream built header by header, with any name bytes at all: what an honest `tar -c`
/// never writes and a hostile sandbox can (absolute names, `..`, links anywhere, devices).
/// Every member has the modified time 1,600,000,000 (2020-09-13).
#[derive(Debug, Clone, Default)]
pub struct CraftedTar(Vec<u8>);

impl CraftedTar {
    /// The modified time of every member.
    pub const MTIME: u64 = 1_600_000_000;

    /// An empty stream.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Any member: a GNU header with these name and link bytes (at most 100 each), then the
    /// data padded to 512 bytes.
    ///
    /// # Panics
    ///
    /// When a name or link is longer than 100 bytes.
    #[must_use]
    pub fn member(
        mut self,
        name: &[u8],
        kind: tar::EntryType,
        mode: u32,
        data: &[u8],
        link: &[u8],
    ) -> Self {
        let mut header = tar::Header::new_gnu();
        {
            let gnu = header.as_gnu_mut().expect("a GNU header");
            gnu.name[..name.len()].copy_from_slice(name);
            gnu.linkname[..link.len()].copy_from_slice(link);
        }
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        header.set_mtime(Self::MTIME);
        header.set_cksum();
        self.0.extend_from_slice(header.as_bytes());
        self.0.extend_from_slice(data);
        self.0
            .extend(std::iter::repeat_n(0u8, (512 - data.len() % 512) % 512));
        self
    }

    /// A folder.
    #[must_use]
    pub fn dir(self, name: &str, mode: u32) -> Self {
        self.member(name.as_bytes(), tar::EntryType::Directory, mode, b"", b"")
    }

    /// A regular file.
    #[must_use]
    pub fn file(self, name: &str, mode: u32, data: &[u8]) -> Self {
        self.member(name.as_bytes(), tar::EntryType::Regular, mode, data, b"")
    }

    /// A symlink to `target`.
    #[must_use]
    pub fn symlink(self, name: &str, target: &str) -> Self {
        self.member(
            name.as_bytes(),
            tar::EntryType::Symlink,
            0o777,
            b"",
            target.as_bytes(),
        )
    }

    /// A hard link to `target`.
    #[must_use]
    pub fn hard_link(self, name: &str, target: &str) -> Self {
        self.member(
            name.as_bytes(),
            tar::EntryType::Link,
            0o644,
            b"",
            target.as_bytes(),
        )
    }

    /// The stream so far, without the end-of-archive blocks (a stream cut short).
    #[must_use]
    pub fn unfinished(self) -> Vec<u8> {
        self.0
    }

    /// The stream with its end-of-archive blocks (two zero blocks).
    #[must_use]
    pub fn end(mut self) -> Vec<u8> {
        self.0.extend(std::iter::repeat_n(0u8, 1024));
        self.0
    }
}

//! Readiness: the one loop that waits for a sandbox's app to be active (used by
//! [`Sandbox::wait_ready`], [`Sandbox::wait_ready_with`] and
//! [`SandboxBuilder::create`](super::SandboxBuilder::create)), its options ([`ReadyOptions`]),
//! and the [`Progress`] events creation and waiting report.
//!
//! Polls start fast and slow down: 100 ms doubling up to 200 ms on the local platform (a poll
//! reads a file) and up to 2 s elsewhere (App Platform's API is rate limited).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use doctl_driver::{App, AppStatus};
use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use tokio::time::Instant;
use tracing::Instrument as _;

use super::{DEFAULT_READY_TIMEOUT, Sandbox};
use crate::error::{Error, Result};

/// The first pause between two readiness polls.
const FIRST_POLL: Duration = Duration::from_millis(100);
/// The longest pause between two polls of the local platform.
const MAX_POLL_LOCAL: Duration = Duration::from_millis(200);
/// The longest pause between two polls of any other platform.
const MAX_POLL: Duration = Duration::from_secs(2);

/// What creating a sandbox, or waiting for it to be ready, reports as it goes: see
/// [`SandboxBuilder::on_progress`](super::SandboxBuilder::on_progress) and
/// [`ReadyOptions::on_progress`].
///
/// Its [`Display`](fmt::Display) is a short line for humans (`creating the app`,
/// `BUILDING (2/5 steps)`, `ready`), what the `sandbox` CLI shows.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Progress {
    /// [`SandboxBuilder::create`](super::SandboxBuilder::create) was called: the app is being
    /// made. Always the first event of a creation.
    Creating,
    /// The app exists and its first deployment has started.
    Created {
        /// App id.
        app_id: String,
        /// App name.
        name: String,
    },
    /// One readiness poll: the app is not active yet, and waiting goes on. Sent after every
    /// such poll; compare `status` with the previous event's to see a phase change.
    Waiting {
        /// App id.
        app_id: String,
        /// The app's status at this poll (`Deploying` with its phase and step counts, or
        /// `Unknown` before the first deployment shows).
        status: AppStatus,
        /// The deployment being rolled out (else the active one), when the app reports one.
        deployment_id: Option<String>,
        /// How long this wait has lasted.
        elapsed: Duration,
    },
    /// The app is active: the sandbox is ready.
    Ready {
        /// App id.
        app_id: String,
        /// How long the wait lasted.
        elapsed: Duration,
    },
    /// Creation or readiness failed (or was cancelled) and the half-made app is being deleted
    /// (see [`SandboxBuilder::delete_on_failure`](super::SandboxBuilder::delete_on_failure)).
    Deleting {
        /// App id.
        app_id: String,
        /// App name.
        name: String,
    },
    /// The half-made app was deleted; the creation's error follows.
    Deleted {
        /// App id.
        app_id: String,
        /// App name.
        name: String,
    },
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Progress::Creating => f.write_str("creating the app"),
            Progress::Created { .. } => f.write_str("app created"),
            Progress::Waiting { status, .. } => f.write_str(&describe(status)),
            Progress::Ready { .. } => f.write_str("ready"),
            Progress::Deleting { .. } => f.write_str("deleting the app"),
            Progress::Deleted { .. } => f.write_str("deleted the app"),
        }
    }
}

/// A status as a short line: the phase, with the step counts when known.
fn describe(status: &AppStatus) -> String {
    match status {
        AppStatus::Deploying {
            phase,
            progress: Some(steps),
        } if steps.total_steps > 0 => format!(
            "{phase} ({}/{} steps)",
            steps.success_steps, steps.total_steps
        ),
        AppStatus::Deploying { phase, .. } => phase.to_string(),
        AppStatus::Active => "ACTIVE".to_owned(),
        _ => "waiting for the first deployment".to_owned(),
    }
}

/// The deployment a readiness poll reports: the one rolling out, else the active one.
fn deployment_id(app: &App) -> Option<String> {
    app.in_progress_deployment
        .as_ref()
        .or(app.pending_deployment.as_ref())
        .or(app.active_deployment.as_ref())
        .map(|d| d.id.clone())
}

/// A progress callback.
pub(crate) type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How [`Sandbox::wait_ready_with`] (and [`SandboxBuilder::create`](super::SandboxBuilder::create))
/// waits: deadline, poll pacing, progress callback, cancellation.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use sandbox_core::{ReadyOptions, Sandbox};
/// # async fn run(sandbox: Sandbox) -> sandbox_core::Result<()> {
/// let options = ReadyOptions::new(Duration::from_secs(300))
///     .on_progress(|event| eprintln!("{event}"))
///     .cancel_on(async {
///         let _ = tokio::signal::ctrl_c().await;
///     });
/// sandbox.wait_ready_with(&options).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[must_use]
pub struct ReadyOptions {
    timeout: Duration,
    poll: Option<(Duration, Duration)>,
    progress: Option<ProgressFn>,
    cancel: Option<Shared<BoxFuture<'static, ()>>>,
}

impl fmt::Debug for ReadyOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadyOptions")
            .field("timeout", &self.timeout)
            .field("poll", &self.poll)
            .field("on_progress", &self.progress.is_some())
            .field("cancel_on", &self.cancel.is_some())
            .finish()
    }
}

impl Default for ReadyOptions {
    fn default() -> Self {
        ReadyOptions::new(DEFAULT_READY_TIMEOUT)
    }
}

impl ReadyOptions {
    /// Waits at most `timeout`, with the default poll pacing, no callback, no cancellation.
    pub fn new(timeout: Duration) -> Self {
        ReadyOptions {
            timeout,
            poll: None,
            progress: None,
            cancel: None,
        }
    }

    /// How long to wait for readiness.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The pause after the first poll (doubled after each poll) and the longest pause.
    ///
    /// Default: 100 ms doubling to 200 ms on the local platform, to 2 s elsewhere.
    pub fn poll_interval(mut self, first: Duration, max: Duration) -> Self {
        self.poll = Some((first, max.max(first)));
        self
    }

    /// Calls `f` with every [`Progress`] event, on the task that waits. Keep it quick: the
    /// next poll waits for it.
    pub fn on_progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// Stops waiting when `signal` completes (for example on Ctrl-C): the wait fails with
    /// [`Error::Cancelled`] (and a creation deletes its app first, as for any other failure).
    ///
    /// `signal` is first polled when waiting begins, once the app exists: a creation's own
    /// platform call is never cut short, so the app it makes is always known. A signal that
    /// has already fired cancels before the first poll. Clones of these options share one
    /// `signal`.
    pub fn cancel_on(mut self, signal: impl Future<Output = ()> + Send + 'static) -> Self {
        self.cancel = Some(signal.boxed().shared());
        self
    }

    /// The longest wait.
    #[must_use]
    pub fn wait_timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn emit(&self, event: &Progress) {
        if let Some(f) = &self.progress {
            f(event);
        }
    }
}

impl Sandbox {
    /// Waits until the app is active, polling with backoff (see [`ReadyOptions::poll_interval`]
    /// for the default pacing).
    ///
    /// Returns at once when the deployment fails or is cancelled. Same as
    /// [`Sandbox::wait_ready_with`] with `ReadyOptions::new(timeout)`.
    ///
    /// # Errors
    ///
    /// [`Error::DeploymentFailed`] with the phase and reason; [`Error::NotReady`] after
    /// `timeout`; the platform's error.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future only stops polling.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        self.wait_ready_with(&ReadyOptions::new(timeout)).await
    }

    /// Waits until the app is active, as `options` say: a [`Progress::Waiting`] event after
    /// every poll that finds it not ready, [`Progress::Ready`] at the end.
    ///
    /// # Errors
    ///
    /// [`Error::DeploymentFailed`] with the phase and reason; [`Error::NotReady`] after the
    /// timeout, naming the last status; [`Error::Cancelled`] when the `cancel_on` signal
    /// completes first; the platform's error.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future only stops polling.
    pub async fn wait_ready_with(&self, options: &ReadyOptions) -> Result<()> {
        let span = tracing::debug_span!("sandbox.wait_ready", app_id = %self.inner.app_id);
        let wait = self.poll_until_ready(options);
        match options.cancel.clone() {
            None => wait.instrument(span).await,
            Some(cancel) => {
                async {
                    // The signal first: once it has fired, no poll's answer is waited for.
                    tokio::select! {
                        biased;
                        () = cancel => {
                            tracing::debug!("waiting cancelled");
                            Err(Error::Cancelled {
                                app_id: self.inner.app_id.clone(),
                            })
                        }
                        result = wait => result,
                    }
                }
                .instrument(span)
                .await
            }
        }
    }

    async fn poll_until_ready(&self, options: &ReadyOptions) -> Result<()> {
        let (first, max) = options.poll.unwrap_or_else(|| {
            let max = if self.inner.platform.kind() == "local" {
                MAX_POLL_LOCAL
            } else {
                MAX_POLL
            };
            (FIRST_POLL, max)
        });
        let app_id = &self.inner.app_id;
        let start = Instant::now();
        let deadline = start + options.timeout;
        let mut delay = first;
        loop {
            let app = self.inner.platform.get_app(app_id).await?;
            match app.status() {
                AppStatus::Active => {
                    options.emit(&Progress::Ready {
                        app_id: app_id.clone(),
                        elapsed: start.elapsed(),
                    });
                    return Ok(());
                }
                AppStatus::Failed { phase, reason } => {
                    return Err(Error::DeploymentFailed {
                        app_id: app_id.clone(),
                        phase,
                        reason,
                    });
                }
                status => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(Error::NotReady {
                            app_id: app_id.clone(),
                            status: describe(&status),
                            waited: now - start,
                        });
                    }
                    options.emit(&Progress::Waiting {
                        app_id: app_id.clone(),
                        status,
                        deployment_id: deployment_id(&app),
                        elapsed: now - start,
                    });
                    tokio::time::sleep(delay.min(deadline - now)).await;
                    delay = (delay * 2).min(max);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use appspec::TemplateDefaults;
    use doctl_driver::DeploymentPhase;

    use super::*;
    use crate::SandboxBuilder;
    use crate::testing::{MockPlatform, MockStatus};

    type Events = Arc<Mutex<Vec<Progress>>>;

    fn recorder() -> (Events, impl Fn(&Progress) + Send + Sync + 'static) {
        let events: Events = Arc::default();
        let sink = Arc::clone(&events);
        (events, move |event: &Progress| {
            sink.lock().unwrap().push(event.clone());
        })
    }

    fn lines(events: &Events) -> Vec<String> {
        events
            .lock()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn waits(events: &Events) -> Vec<Duration> {
        events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|event| match event {
                Progress::Waiting { elapsed, .. } => Some(*elapsed),
                _ => None,
            })
            .collect()
    }

    fn builder(platform: &Arc<MockPlatform>) -> SandboxBuilder {
        Sandbox::builder()
            .defaults(TemplateDefaults::default())
            .name("progress-box")
            .platform(Arc::clone(platform) as Arc<dyn doctl_driver::Platform>)
    }

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().copied().map(Duration::from_millis).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn create_reports_each_phase_with_its_deployment_then_ready() {
        let platform = Arc::new(MockPlatform::new());
        platform.script([
            MockStatus::Steps(DeploymentPhase::PendingBuild, 0, 3),
            MockStatus::Steps(DeploymentPhase::Building, 1, 3),
            MockStatus::Deploying(DeploymentPhase::Deploying),
            MockStatus::Active,
        ]);
        let (events, sink) = recorder();
        let sandbox = builder(&platform).on_progress(sink).create().await.unwrap();
        assert_eq!(
            lines(&events),
            [
                "creating the app",
                "app created",
                "PENDING_BUILD (0/3 steps)",
                "BUILDING (1/3 steps)",
                "DEPLOYING",
                "ready"
            ]
        );
        let events = events.lock().unwrap().clone();
        assert_eq!(
            events[1],
            Progress::Created {
                app_id: sandbox.id().to_owned(),
                name: "progress-box".to_owned()
            }
        );
        match &events[3] {
            Progress::Waiting {
                app_id,
                status: AppStatus::Deploying { phase, .. },
                deployment_id,
                ..
            } => {
                assert_eq!(app_id, "mock-1");
                assert_eq!(*phase, DeploymentPhase::Building);
                assert_eq!(deployment_id.as_deref(), Some("mock-1-deployment"));
            }
            other => panic!("unexpected {other:?}"),
        }
        // Polls at 0, 0.1, 0.3 s, then 0.7 s finds it active.
        assert_eq!(
            events[5],
            Progress::Ready {
                app_id: "mock-1".to_owned(),
                elapsed: Duration::from_millis(700)
            }
        );
        assert!(platform.deleted().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn polls_back_off_to_200_ms_locally_and_to_2_s_elsewhere() {
        let building = MockStatus::Deploying(DeploymentPhase::Building);
        for (kind, expected) in [
            ("local", ms(&[0, 100, 300, 500, 700, 900, 1100])),
            ("api", ms(&[0, 100, 300, 700, 1500, 3100, 5100])),
        ] {
            let platform = Arc::new(MockPlatform::new().with_kind(kind));
            platform.script(
                vec![building.clone(); 7]
                    .into_iter()
                    .chain([MockStatus::Active]),
            );
            let (events, sink) = recorder();
            builder(&platform).on_progress(sink).create().await.unwrap();
            assert_eq!(waits(&events), expected, "{kind}");
        }
        // Explicit pacing wins.
        let platform = Arc::new(MockPlatform::new().with_kind("local"));
        platform.script([building.clone(), building, MockStatus::Active]);
        let (events, sink) = recorder();
        builder(&platform)
            .poll_interval(Duration::from_secs(1), Duration::from_secs(1))
            .on_progress(sink)
            .create()
            .await
            .unwrap();
        assert_eq!(waits(&events), ms(&[0, 1000]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_deployment_deletes_the_app_and_says_so() {
        let platform = Arc::new(MockPlatform::new());
        platform.script([
            MockStatus::Deploying(DeploymentPhase::Building),
            MockStatus::Failed("image pull failed".into()),
        ]);
        let (events, sink) = recorder();
        let err = builder(&platform)
            .on_progress(sink)
            .create()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::DeploymentFailed { app_id, reason: Some(r), .. }
                if app_id == "mock-1" && r == "image pull failed"),
            "{err}"
        );
        assert_eq!(platform.deleted(), ["mock-1"]);
        let events = events.lock().unwrap().clone();
        assert_eq!(
            events[events.len() - 2..],
            [
                Progress::Deleting {
                    app_id: "mock-1".into(),
                    name: "progress-box".into()
                },
                Progress::Deleted {
                    app_id: "mock-1".into(),
                    name: "progress-box".into()
                }
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_delete_on_failure_the_app_stays() {
        let platform = Arc::new(MockPlatform::new());
        platform.script([MockStatus::Failed("boom".into())]);
        let (events, sink) = recorder();
        let err = builder(&platform)
            .delete_on_failure(false)
            .on_progress(sink)
            .create()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::DeploymentFailed { .. }), "{err}");
        assert!(platform.deleted().is_empty());
        assert_eq!(Sandbox::list(platform.as_ref()).await.unwrap().len(), 1);
        assert_eq!(lines(&events), ["creating the app", "app created"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_delete_reports_both_errors() {
        let platform = Arc::new(MockPlatform::new());
        platform.script([MockStatus::Deploying(DeploymentPhase::Deploying)]);
        platform.fail_deletes(true);
        let err = builder(&platform)
            .timeout(Duration::from_secs(5))
            .create()
            .await
            .unwrap_err();
        let Error::CleanupFailed {
            app_id,
            name,
            error,
            delete_error,
        } = &err
        else {
            panic!("unexpected {err}");
        };
        assert_eq!((app_id.as_str(), name.as_str()), ("mock-1", "progress-box"));
        assert!(matches!(**error, Error::NotReady { .. }), "{error}");
        assert!(delete_error.is_retryable(), "{delete_error}");
        let text = err.to_string();
        assert!(
            text.contains("could not delete sandbox `progress-box` (mock-1)"),
            "{text}"
        );
        assert!(text.contains("connection reset"), "{text}");
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert!(
            source.unwrap_or_default().contains("is not ready"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn cancel_stops_the_wait_and_deletes_the_app() {
        let platform = Arc::new(MockPlatform::new());
        platform.script([MockStatus::Deploying(DeploymentPhase::Building)]);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let tx = Mutex::new(Some(tx));
        let (events, sink) = recorder();
        let create = builder(&platform)
            .on_progress(move |event| {
                sink(event);
                // The first poll that finds it deploying pulls the trigger.
                if matches!(event, Progress::Waiting { .. }) {
                    if let Some(tx) = tx.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                }
            })
            .cancel_on(async {
                let _ = rx.await;
            })
            .create();
        let err = tokio::time::timeout(Duration::from_secs(30), create)
            .await
            .expect("cancelled in time")
            .unwrap_err();
        assert!(
            matches!(&err, Error::Cancelled { app_id } if app_id == "mock-1"),
            "{err}"
        );
        assert_eq!(platform.deleted(), ["mock-1"]);
        assert_eq!(
            lines(&events)[1..],
            [
                "app created",
                "BUILDING",
                "deleting the app",
                "deleted the app"
            ]
        );
    }

    #[tokio::test]
    async fn a_signal_that_fired_early_still_lets_the_app_be_made_then_deletes_it() {
        let platform = Arc::new(MockPlatform::new());
        let err = builder(&platform)
            .cancel_on(std::future::ready(()))
            .create()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Cancelled { .. }), "{err}");
        assert_eq!(platform.deleted(), ["mock-1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_ready_with_reports_on_an_existing_sandbox() {
        let platform = Arc::new(MockPlatform::new());
        platform.script([
            MockStatus::Deploying(DeploymentPhase::PendingDeploy),
            MockStatus::Active,
        ]);
        let (events, sink) = recorder();
        let sandbox = builder(&platform).wait_ready(false).create().await.unwrap();
        sandbox
            .wait_ready_with(&ReadyOptions::new(Duration::from_secs(30)).on_progress(sink))
            .await
            .unwrap();
        assert_eq!(lines(&events), ["PENDING_DEPLOY", "ready"]);
        // Plain `wait_ready` is the same loop, silent.
        sandbox.wait_ready(Duration::from_secs(1)).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn not_ready_names_the_last_status_with_its_steps() {
        let platform = Arc::new(MockPlatform::new());
        platform.script([MockStatus::Steps(DeploymentPhase::Deploying, 2, 5)]);
        let err = builder(&platform)
            .timeout(Duration::from_secs(3))
            .create()
            .await
            .unwrap_err();
        match &err {
            Error::NotReady { status, waited, .. } => {
                assert_eq!(status, "DEPLOYING (2/5 steps)");
                assert_eq!(*waited, Duration::from_secs(3));
            }
            other => panic!("unexpected {other}"),
        }
        assert_eq!(platform.deleted(), ["mock-1"]);
    }

    #[test]
    fn events_read_as_short_lines_and_the_futures_are_send() {
        let waiting = Progress::Waiting {
            app_id: "a".into(),
            status: AppStatus::Unknown,
            deployment_id: None,
            elapsed: Duration::ZERO,
        };
        assert_eq!(waiting.to_string(), "waiting for the first deployment");
        fn assert_send<T: Send>(_: &T) {}
        let create = Sandbox::builder().cancel_on(async {}).create();
        assert_send(&create);
        let options = ReadyOptions::default().cancel_on(async {});
        assert_eq!(options.wait_timeout(), DEFAULT_READY_TIMEOUT);
        assert!(format!("{options:?}").contains("cancel_on: true"));
    }
}

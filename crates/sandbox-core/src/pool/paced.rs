//! [`Paced`]: a [`Platform`] that keeps a pool's API traffic inside a budget and slows down
//! on 429s instead of failing.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use appspec::AppSpec;
use async_trait::async_trait;
use doctl_driver::{
    App, Console, ConsoleTarget, Deployment, Instance, LogStream, LogsRequest, Platform,
};
use tokio::time::Instant;

/// The window the budget counts over.
const WINDOW: Duration = Duration::from_secs(60);
/// The pause after a 429 without `retry-after`, doubling up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// Admission of API requests: at most `budget` in any minute, none while paused after a 429.
#[derive(Debug)]
pub(crate) struct Pacer {
    budget: usize,
    state: Mutex<PacerState>,
    requests: AtomicU64,
    rate_limited: AtomicU64,
}

#[derive(Debug, Default)]
struct PacerState {
    sent: VecDeque<Instant>,
    paused_until: Option<Instant>,
    next_pause: Option<Duration>,
}

impl Pacer {
    pub(crate) fn new(budget_per_minute: u32) -> Pacer {
        Pacer {
            budget: budget_per_minute.max(1) as usize,
            state: Mutex::new(PacerState::default()),
            requests: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
        }
    }

    /// Waits until one more request fits, and counts it.
    pub(crate) async fn admit(&self) {
        loop {
            let wait_until = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                while state.sent.front().is_some_and(|t| now - *t >= WINDOW) {
                    state.sent.pop_front();
                }
                match state.paused_until {
                    Some(until) if until > now => Some(until),
                    _ if state.sent.len() >= self.budget => state.sent.front().map(|t| *t + WINDOW),
                    _ => {
                        state.sent.push_back(now);
                        None
                    }
                }
            };
            match wait_until {
                None => {
                    self.requests.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Some(until) => tokio::time::sleep_until(until).await,
            }
        }
    }

    /// Learns from a result: a 429 pauses every request for `retry-after` (or a doubling
    /// pause when the API did not say); a success resets the doubling.
    pub(crate) fn observe<T>(&self, result: &doctl_driver::Result<T>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Err(e @ doctl_driver::Error::RateLimited { .. }) => {
                self.rate_limited.fetch_add(1, Ordering::Relaxed);
                let pause = e.retry_after().unwrap_or_else(|| {
                    let pause = state.next_pause.unwrap_or(FIRST_PAUSE);
                    state.next_pause = Some((pause * 2).min(MAX_PAUSE));
                    pause
                });
                let until = Instant::now() + pause;
                if state.paused_until.is_none_or(|t| t < until) {
                    state.paused_until = Some(until);
                }
                tracing::info!(?pause, "rate limited: the pool pauses its API requests");
            }
            Ok(_) => state.next_pause = None,
            Err(_) => {}
        }
    }

    /// Requests admitted so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// 429 answers seen so far.
    pub(crate) fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }
}

/// A platform whose every API call goes through a [`Pacer`] first.
pub(crate) struct Paced {
    pub(crate) inner: Arc<dyn Platform>,
    pub(crate) pacer: Arc<Pacer>,
}

impl fmt::Debug for Paced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Paced")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl Paced {
    async fn call<T, F>(&self, f: F) -> doctl_driver::Result<T>
    where
        F: Future<Output = doctl_driver::Result<T>>,
    {
        self.pacer.admit().await;
        let result = f.await;
        self.pacer.observe(&result);
        result
    }
}

#[async_trait]
impl Platform for Paced {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn create_app(&self, spec: &AppSpec) -> doctl_driver::Result<App> {
        self.call(self.inner.create_app(spec)).await
    }

    async fn get_app(&self, app_id: &str) -> doctl_driver::Result<App> {
        self.call(self.inner.get_app(app_id)).await
    }

    async fn list_apps(&self) -> doctl_driver::Result<Vec<App>> {
        self.call(self.inner.list_apps()).await
    }

    async fn find_app(&self, name: &str) -> doctl_driver::Result<Option<App>> {
        self.call(self.inner.find_app(name)).await
    }

    async fn delete_app(&self, app_id: &str) -> doctl_driver::Result<()> {
        self.call(self.inner.delete_app(app_id)).await
    }

    async fn list_deployments(&self, app_id: &str) -> doctl_driver::Result<Vec<Deployment>> {
        self.call(self.inner.list_deployments(app_id)).await
    }

    async fn list_instances(&self, app_id: &str) -> doctl_driver::Result<Vec<Instance>> {
        self.call(self.inner.list_instances(app_id)).await
    }

    async fn open_console(&self, target: &ConsoleTarget) -> doctl_driver::Result<Box<dyn Console>> {
        self.call(self.inner.open_console(target)).await
    }

    async fn logs(&self, request: &LogsRequest) -> doctl_driver::Result<LogStream> {
        self.call(self.inner.logs(request)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_budget_holds_requests_to_the_next_minute() {
        let pacer = Pacer::new(3);
        let start = Instant::now();
        for _ in 0..3 {
            pacer.admit().await;
        }
        assert_eq!(Instant::now(), start, "within the budget, no wait");
        pacer.admit().await;
        assert_eq!(Instant::now() - start, WINDOW, "the fourth waits a minute");
        assert_eq!(pacer.requests(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_for_retry_after_then_doubles_without_it() {
        let pacer = Pacer::new(100);
        let limited = |after: Option<u64>| -> doctl_driver::Result<()> {
            Err(doctl_driver::Error::RateLimited {
                retry_after: after.map(Duration::from_secs),
                limits: None,
            })
        };
        let start = Instant::now();
        pacer.observe(&limited(Some(7)));
        pacer.admit().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(7));
        let start = Instant::now();
        pacer.observe(&limited(None));
        pacer.admit().await;
        pacer.observe(&limited(None));
        pacer.admit().await;
        assert_eq!(
            Instant::now() - start,
            Duration::from_secs(3),
            "1 s then 2 s"
        );
        assert_eq!(pacer.rate_limited(), 3);
    }
}

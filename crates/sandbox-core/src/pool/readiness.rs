//! [`Readiness`]: one loop that waits for every creating sandbox of a manager with shared
//! `list_apps` calls, instead of one poll loop (and one `get_app` a poll) per app.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use doctl_driver::{App, AppStatus, Platform};
use tokio::sync::{Notify, oneshot};

/// How many listings in a row may miss an app before its wait fails (a just-created app is
/// listed at once on App Platform; this only covers an app deleted behind the pool's back).
const MISSES: u32 = 3;

/// The outcome of waiting for one app.
pub(crate) type Outcome = std::result::Result<App, crate::Error>;

struct Waiter {
    reply: oneshot::Sender<Outcome>,
    misses: u32,
}

/// Apps waited for, and the loop that polls for them.
pub(crate) struct Readiness {
    waiting: Mutex<HashMap<String, Waiter>>,
    added: Notify,
}

impl Readiness {
    pub(crate) fn new() -> Arc<Readiness> {
        Arc::new(Readiness {
            waiting: Mutex::new(HashMap::new()),
            added: Notify::new(),
        })
    }

    /// Registers `app_id`; the receiver gets the app once it is active, or the error.
    pub(crate) fn wait(&self, app_id: &str) -> oneshot::Receiver<Outcome> {
        let (reply, receiver) = oneshot::channel();
        self.lock()
            .insert(app_id.to_owned(), Waiter { reply, misses: 0 });
        self.added.notify_one();
        receiver
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiter>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The polling loop: while apps are waited for, one `list_apps` every `interval`. A
    /// failed listing (a 429 included, which the pacer turns into a pause) fails no one: the
    /// next poll tries again. Runs until dropped.
    pub(crate) async fn run(self: Arc<Self>, platform: Arc<dyn Platform>, interval: Duration) {
        loop {
            // Waiters that gave up (dropped receivers) are forgotten.
            self.lock().retain(|_, w| !w.reply.is_closed());
            if self.lock().is_empty() {
                self.added.notified().await;
                continue;
            }
            tokio::time::sleep(interval).await;
            let apps = match platform.list_apps().await {
                Ok(apps) => apps,
                Err(error) => {
                    tracing::debug!(%error, "readiness listing failed; polling again");
                    continue;
                }
            };
            let by_id: HashMap<&str, &App> = apps.iter().map(|a| (a.id.as_str(), a)).collect();
            let mut waiting = self.lock();
            let ids: Vec<String> = waiting.keys().cloned().collect();
            for id in ids {
                let outcome = match by_id.get(id.as_str()) {
                    Some(app) => match app.status() {
                        AppStatus::Active => Some(Ok((*app).clone())),
                        AppStatus::Failed { phase, reason } => {
                            Some(Err(crate::Error::DeploymentFailed {
                                app_id: id.clone(),
                                phase,
                                reason,
                            }))
                        }
                        _ => None,
                    },
                    None => {
                        let waiter = waiting.get_mut(&id).expect("listed from the map");
                        waiter.misses += 1;
                        (waiter.misses >= MISSES).then(|| {
                            Err(crate::Error::NotFound {
                                what: format!("app `{id}` (no longer listed)"),
                            })
                        })
                    }
                };
                if let Some(outcome) = outcome
                    && let Some(waiter) = waiting.remove(&id)
                {
                    let _ = waiter.reply.send(outcome);
                }
            }
        }
    }
}

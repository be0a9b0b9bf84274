//! Warm pools: [`PoolManager`] keeps sandboxes ready (deployed, console open, exec agent
//! started) so that [`acquire`](PoolManager::acquire) hands one out in milliseconds and its
//! first command is a warm exec.
//!
//! See [`PoolManager`] for how it works, and `docs/pools.md` for sizing and App Platform's
//! limits.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use doctl_driver::Platform;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::error::{Error, Result};
use crate::exec::ExecRequest;
use crate::expiry::{self, PoolOwner};
use crate::sandbox::{ConsoleSettings, Sandbox};

mod config;
mod paced;
mod readiness;
#[cfg(test)]
mod tests;

pub use config::{OnEmpty, PoolConfig, Template};
use paced::{Paced, Pacer};
use readiness::Readiness;

/// How often the background task looks at the pools when nothing wakes it.
const TICK: Duration = Duration::from_millis(250);
/// Acquire latencies kept for the percentiles.
const LATENCIES: usize = 1000;
/// The window over which the acquire rate is measured.
const RATE_WINDOW: Duration = Duration::from_secs(60);
/// Deadline of a health round trip.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts at deleting one app before it is left to the sweep.
const DELETE_ATTEMPTS: u32 = 5;
/// Health checks failing in a row on errors that may pass before a sandbox counts as broken.
const STRIKES: u32 = 3;
/// The marker attribute naming the manager that made a pool member.
const MANAGER_ATTR: &str = "manager";

/// Builds a [`PoolManager`]: see [`PoolManager::builder`].
#[derive(Clone)]
#[must_use]
pub struct PoolManagerBuilder {
    platform: Option<Arc<dyn Platform>>,
    pools: Vec<(Template, PoolConfig)>,
    default_config: Option<PoolConfig>,
    max_total: Option<usize>,
    max_concurrent_creates: usize,
    api_budget: u32,
    poll_interval: Option<Duration>,
    health_interval: Duration,
    sweep_interval: Option<Duration>,
    ready_timeout: Duration,
    console: ConsoleSettings,
    defaults: Option<appspec::TemplateDefaults>,
}

impl fmt::Debug for PoolManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolManagerBuilder")
            .field("pools", &self.pools)
            .field("default_config", &self.default_config)
            .field("max_total", &self.max_total)
            .field("max_concurrent_creates", &self.max_concurrent_creates)
            .field("api_budget", &self.api_budget)
            .finish_non_exhaustive()
    }
}

impl Default for PoolManagerBuilder {
    fn default() -> Self {
        PoolManagerBuilder {
            platform: None,
            pools: Vec::new(),
            default_config: None,
            max_total: None,
            max_concurrent_creates: 10,
            api_budget: 200,
            poll_interval: None,
            health_interval: Duration::from_secs(30),
            sweep_interval: Some(Duration::from_secs(60)),
            ready_timeout: crate::DEFAULT_READY_TIMEOUT,
            console: ConsoleSettings::default(),
            defaults: None,
        }
    }
}

impl PoolManagerBuilder {
    /// The platform the pools create sandboxes on (required).
    pub fn platform(mut self, platform: Arc<dyn Platform>) -> Self {
        self.platform = Some(platform);
        self
    }

    /// A pool of `template` sandboxes, behaving as `config` says.
    pub fn pool(mut self, template: Template, config: PoolConfig) -> Self {
        self.pools.push((template, config));
        self
    }

    /// The configuration of pools made on demand, when an acquire names a template no pool
    /// was configured for (default: none, and such an acquire is an error).
    pub fn default_config(mut self, config: PoolConfig) -> Self {
        self.default_config = Some(config);
        self
    }

    /// At most this many sandboxes in all pools, ready, creating and acquired (default: no
    /// limit).
    pub fn max_total(mut self, n: usize) -> Self {
        self.max_total = Some(n);
        self
    }

    /// At most this many creations at once (default 10).
    pub fn max_concurrent_creates(mut self, n: usize) -> Self {
        self.max_concurrent_creates = n;
        self
    }

    /// At most this many API requests a minute (default 200; App Platform allows 250 a
    /// minute and 5,000 an hour per token).
    pub fn api_budget(mut self, per_minute: u32) -> Self {
        self.api_budget = per_minute;
        self
    }

    /// How often creating sandboxes are polled, all with one listing (default 50 ms on the
    /// local provider, 2 s elsewhere).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = Some(interval);
        self
    }

    /// How often each ready sandbox's console is checked with a round trip (default 30 s).
    pub fn health_interval(mut self, interval: Duration) -> Self {
        self.health_interval = interval;
        self
    }

    /// How often the manager sweeps expired and orphaned sandboxes (default every minute;
    /// `None` never).
    pub fn sweep_interval(mut self, interval: Option<Duration>) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// How long one creation may wait for its deployment (default 600 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Template defaults (owner, tags, region); [`appspec::TemplateDefaults::from_env`]
    /// unless set.
    pub fn defaults(mut self, defaults: appspec::TemplateDefaults) -> Self {
        self.defaults = Some(defaults);
        self
    }

    /// Checks the settings and starts the manager's background tasks on the current tokio
    /// runtime; the pools start filling at once.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the field: no `platform`, a zero `max_total`,
    /// `max_concurrent_creates` or `api_budget`, a pool's invalid setting
    /// ([`PoolConfig::validate`], the field prefixed with the template, e.g.
    /// `python/worker.min_ready`), a template configured twice, `min_ready` summing above
    /// `max_total`, or a template whose spec is invalid.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn build(self) -> Result<PoolManager> {
        let platform = self
            .platform
            .clone()
            .ok_or_else(|| Error::invalid("platform", "a pool needs a platform to run on"))?;
        if self.max_total == Some(0) {
            return Err(Error::invalid("max_total", "must be more than zero"));
        }
        if self.max_concurrent_creates == 0 {
            return Err(Error::invalid(
                "max_concurrent_creates",
                "must be more than zero",
            ));
        }
        if self.api_budget == 0 {
            return Err(Error::invalid("api_budget", "must be more than zero"));
        }
        let named = named_for;
        if let Some(config) = &self.default_config {
            config.validate().map_err(|e| match e {
                Error::InvalidArgument { name, reason } => Error::InvalidArgument {
                    name: format!("default_config.{name}"),
                    reason,
                },
                other => other,
            })?;
        }
        let mut pools = HashMap::new();
        for (template, config) in &self.pools {
            config.validate().map_err(|e| named(template, e))?;
            self.template_builder(template)
                .spec()
                .map_err(|e| named(template, e))?;
            if pools
                .insert(template.clone(), PoolState::new(config.clone(), true))
                .is_some()
            {
                return Err(Error::invalid(
                    template.to_string(),
                    "this template has two pools",
                ));
            }
        }
        if let Some(max) = self.max_total {
            let floor: usize = self.pools.iter().map(|(_, c)| c.min_ready).sum();
            if floor > max {
                return Err(Error::invalid(
                    "max_total",
                    format!("{max} is less than the pools' min_ready in all ({floor})"),
                ));
            }
        }
        let pacer = Arc::new(Pacer::new(self.api_budget));
        let paced: Arc<dyn Platform> = Arc::new(Paced {
            inner: Arc::clone(&platform),
            pacer: Arc::clone(&pacer),
        });
        let poll_interval = self.poll_interval.unwrap_or(if platform.kind() == "local" {
            Duration::from_millis(50)
        } else {
            Duration::from_secs(2)
        });
        let readiness = Readiness::new();
        let (stop, _) = watch::channel(false);
        let owner = PoolOwner::current();
        let shared = Arc::new(Shared {
            platform: Arc::clone(&paced),
            pacer,
            owner: owner.to_string(),
            manager: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
            readiness: Arc::clone(&readiness),
            create_slots: Semaphore::new(self.max_concurrent_creates),
            state: Mutex::new(State {
                pools,
                shutting_down: false,
                held: HashSet::new(),
                handed: HashSet::new(),
                inflight_names: HashSet::new(),
            }),
            changed: Notify::new(),
            wake: Notify::new(),
            stop,
            tasks: Mutex::new(Vec::new()),
            poller: Mutex::new(None),
            swept: AtomicU64::new(0),
            settings: self,
        });
        let poller = tokio::spawn(readiness.run(paced, poll_interval));
        let maintainer = tokio::spawn(
            Arc::clone(&shared)
                .maintain()
                .instrument(tracing::info_span!("pool.maintain")),
        );
        *shared.poller.lock().unwrap_or_else(|e| e.into_inner()) = Some(poller);
        shared.track(maintainer);
        Ok(PoolManager { shared })
    }

    fn template_builder(&self, template: &Template) -> crate::SandboxBuilder {
        let mut builder = template
            .builder()
            .timeout(self.ready_timeout)
            .console_timeout(self.console.open_timeout)
            .heartbeat_timeout(self.console.heartbeat_timeout);
        if let Some(defaults) = &self.defaults {
            builder = builder.defaults(defaults.clone());
        }
        builder
    }
}

/// An invalid setting or spec field of `template`'s pool, named `<template>.<field>`.
fn named_for(template: &Template, error: Error) -> Error {
    match error {
        Error::InvalidArgument { name, reason } => Error::InvalidArgument {
            name: format!("{template}.{name}"),
            reason,
        },
        Error::Spec(spec) if spec.field().is_some() => Error::InvalidArgument {
            name: format!("{template}.{}", spec.field().unwrap_or_default()),
            reason: spec.reason(),
        },
        other => other,
    }
}

/// Warm pools of sandboxes, one per [`Template`].
///
/// # How it works
///
/// One manager holds a pool per [`Template`]. A background task keeps each pool at its
/// target (see [`PoolConfig`]): it starts creations (at most `max_concurrent_creates` at
/// once, at most `max_total` sandboxes in all), rotates ready sandboxes older than
/// `max_age`, deletes extra ones after `idle_delay` without acquires, checks the health of
/// ready ones with a real round trip on their warm console, and sweeps expired and orphaned
/// sandboxes (see [`sweep`](crate::sweep)) once a minute.
///
/// Every API call of the manager (and of the sandboxes it hands out) goes through one pacer:
/// at most `api_budget` requests a minute (default 200 of App Platform's 250), and after a
/// 429 a pause of `retry-after` for all of them, so rate limits slow the pool down instead of
/// failing acquires. Readiness of all creating sandboxes is polled with one shared
/// `list_apps` call per poll, never one loop per app.
///
/// Sandboxes are single use: an acquired sandbox never goes back to a pool (untrusted code
/// ran in it). Delete it when done ([`PooledSandbox::delete`]); if it is forgotten, its
/// expiry (`max_age + ttl` after its creation) deletes it.
///
/// # Shutdown
///
/// [`shutdown`](PoolManager::shutdown) stops the background task, stops the waits of
/// creations in flight (a creation whose API call is under way finishes it, then deletes the
/// app), deletes every ready sandbox, then lists the apps once more and deletes any member
/// of this manager still there (a create call that failed after the platform made the app),
/// so nothing is left behind. Sandboxes already acquired are the caller's.
///
/// # Drop
///
/// Cheap to clone; clones share the pools. Dropping the last clone without
/// [`shutdown`](Self::shutdown) stops nothing at once: the background task holds the
/// manager until shutdown, and pooled sandboxes left by a process that exits are deleted by
/// their expiry (or as orphans by the next sweep on this machine).
#[derive(Clone)]
pub struct PoolManager {
    shared: Arc<Shared>,
}

impl fmt::Debug for PoolManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolManager")
            .field("owner", &self.shared.owner)
            .finish_non_exhaustive()
    }
}

struct Shared {
    platform: Arc<dyn Platform>,
    pacer: Arc<Pacer>,
    owner: String,
    /// This manager's id among the pools of its process (the `manager` marker attribute).
    manager: String,
    readiness: Arc<Readiness>,
    create_slots: Semaphore,
    state: Mutex<State>,
    /// Something about the pools changed (a sandbox became ready, a creation ended).
    changed: Notify,
    /// The background task should look now.
    wake: Notify,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The readiness poller, stopped once every creation ended.
    poller: Mutex<Option<JoinHandle<()>>>,
    swept: AtomicU64,
    settings: PoolManagerBuilder,
}

struct State {
    pools: HashMap<Template, PoolState>,
    shutting_down: bool,
    /// App ids this manager created and still holds (creating or ready).
    held: HashSet<String>,
    /// App ids it handed out: the callers' now, never deleted by shutdown.
    handed: HashSet<String>,
    /// Names of sandboxes whose create call is under way.
    inflight_names: HashSet<String>,
}

struct ReadySandbox {
    sandbox: Sandbox,
    created: Instant,
    checked: Instant,
    strikes: u32,
}

struct PoolState {
    config: PoolConfig,
    configured: bool,
    ready: VecDeque<ReadySandbox>,
    creating: usize,
    in_use: usize,
    waiters: usize,
    last_acquire: Option<Instant>,
    recent: VecDeque<Instant>,
    create_time: Option<Duration>,
    counters: Counters,
    latencies: VecDeque<Duration>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    acquires: u64,
    hits: u64,
    creates: u64,
    failed_creates: u64,
    health_removals: u64,
    rotations: u64,
    scale_downs: u64,
    timeouts: u64,
}

impl PoolState {
    fn new(config: PoolConfig, configured: bool) -> PoolState {
        PoolState {
            config,
            configured,
            ready: VecDeque::new(),
            creating: 0,
            in_use: 0,
            waiters: 0,
            last_acquire: None,
            recent: VecDeque::new(),
            create_time: None,
            counters: Counters::default(),
            latencies: VecDeque::new(),
        }
    }

    fn total(&self) -> usize {
        self.ready.len() + self.creating + self.in_use
    }

    /// No acquire has started or been served for `idle_delay`.
    fn idle(&self, now: Instant) -> bool {
        self.last_acquire
            .is_none_or(|t| now - t >= self.config.idle_delay)
    }

    /// Ready plus creating the pool aims at: `min_ready`, raised while acquires come to what
    /// their rate needs by Little's law (rate x create time, plus one), never above
    /// `max_ready`.
    fn target(&self, now: Instant) -> usize {
        let floor = self.config.min_ready;
        if self.idle(now) {
            return floor;
        }
        let Some(create_time) = self.create_time else {
            return floor;
        };
        let window = RATE_WINDOW.min(self.recent.front().map_or(RATE_WINDOW, |first| {
            (now - *first).max(Duration::from_secs(1))
        }));
        let rate = self.recent.len() as f64 / window.as_secs_f64();
        let needed = (rate * create_time.as_secs_f64()).ceil() as usize + 1;
        needed.clamp(floor, self.config.max_ready.max(floor))
    }

    fn record_latency(&mut self, latency: Duration) {
        if self.latencies.len() == LATENCIES {
            self.latencies.pop_front();
        }
        self.latencies.push_back(latency);
    }

    fn metrics(&self, template: &Template) -> PoolMetrics {
        let mut sorted: Vec<Duration> = self.latencies.iter().copied().collect();
        sorted.sort();
        let percentile = |p: f64| -> Option<Duration> {
            if sorted.is_empty() {
                return None;
            }
            let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            Some(sorted[rank - 1])
        };
        let c = self.counters;
        PoolMetrics {
            template: template.clone(),
            ready: self.ready.len(),
            creating: self.creating,
            in_use: self.in_use,
            acquires: c.acquires,
            hits: c.hits,
            misses: c.acquires - c.hits,
            hit_rate: if c.acquires == 0 {
                0.0
            } else {
                c.hits as f64 / c.acquires as f64
            },
            acquire_p50: percentile(0.5),
            acquire_p99: percentile(0.99),
            creates: c.creates,
            failed_creates: c.failed_creates,
            health_removals: c.health_removals,
            rotations: c.rotations,
            scale_downs: c.scale_downs,
            acquire_timeouts: c.timeouts,
            create_time: self.create_time,
        }
    }
}

/// The state of one pool, from [`PoolManager::metrics`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PoolMetrics {
    /// The pool's template.
    pub template: Template,
    /// Sandboxes ready now.
    pub ready: usize,
    /// Sandboxes being created.
    pub creating: usize,
    /// Sandboxes acquired and not yet deleted or dropped.
    pub in_use: usize,
    /// Acquires so far (those that timed out or failed included).
    pub acquires: u64,
    /// Acquires served by a ready sandbox at once.
    pub hits: u64,
    /// Acquires that had to wait (or failed).
    pub misses: u64,
    /// `hits / acquires` (0 before the first).
    pub hit_rate: f64,
    /// Median acquire latency over the last 1000 acquires.
    pub acquire_p50: Option<Duration>,
    /// 99th percentile of the same.
    pub acquire_p99: Option<Duration>,
    /// Sandboxes created and made ready.
    pub creates: u64,
    /// Creation attempts that failed.
    pub failed_creates: u64,
    /// Ready sandboxes removed because their health check failed.
    pub health_removals: u64,
    /// Ready sandboxes replaced for reaching `max_age`.
    pub rotations: u64,
    /// Ready sandboxes deleted because the pool was idle.
    pub scale_downs: u64,
    /// Acquires that reached their deadline.
    pub acquire_timeouts: u64,
    /// The average creation time (deployment, console, agent), once one was seen.
    pub create_time: Option<Duration>,
}

/// The state of a whole manager, from [`PoolManager::metrics`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Metrics {
    /// Each pool.
    pub pools: Vec<PoolMetrics>,
    /// API requests the manager and its sandboxes made.
    pub api_requests: u64,
    /// 429 answers they got.
    pub rate_limited: u64,
    /// Sandboxes its sweeps deleted.
    pub swept: u64,
}

/// A sandbox acquired from a pool: yours alone, used once. Derefs to [`Sandbox`].
///
/// Delete it when done ([`delete`](Self::delete)); dropping it only tells the pool it is no
/// longer in use (the sandbox stays until deleted or expired).
pub struct PooledSandbox {
    sandbox: Sandbox,
    lease: Lease,
}

struct Lease {
    shared: Arc<Shared>,
    template: Template,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if let Some(pool) = state.pools.get_mut(&self.template) {
            pool.in_use = pool.in_use.saturating_sub(1);
        }
        drop(state);
        self.shared.wake.notify_one();
    }
}

impl fmt::Debug for PooledSandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledSandbox")
            .field("sandbox", &self.sandbox)
            .field("template", &self.lease.template)
            .finish()
    }
}

impl Deref for PooledSandbox {
    type Target = Sandbox;

    fn deref(&self) -> &Sandbox {
        &self.sandbox
    }
}

impl PooledSandbox {
    /// The sandbox (the pool stops counting it as in use).
    #[must_use]
    pub fn into_sandbox(self) -> Sandbox {
        self.sandbox.clone()
    }

    /// Deletes the sandbox.
    ///
    /// # Errors
    ///
    /// The platform's error.
    pub async fn delete(self) -> Result<()> {
        self.sandbox.delete().await
    }
}

impl PoolManager {
    /// A builder with the defaults: no pools, at most 10 creations at once, 200 API requests
    /// a minute.
    pub fn builder() -> PoolManagerBuilder {
        PoolManagerBuilder::default()
    }

    /// A ready sandbox of `template`, exclusively yours: deployed, console open, agent
    /// started, so its first command is a warm exec. On a hit this makes no API call.
    ///
    /// When the pool is empty: with [`OnEmpty::Create`] waits for the next sandbox to be
    /// ready (the pool starts one when none is on its way) until `timeout`; with
    /// [`OnEmpty::Fail`] fails at once.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] past the deadline (the sandbox being made for this acquire stays in
    /// the pool); [`Error::PoolExhausted`] on an empty pool with [`OnEmpty::Fail`], or when
    /// `max_total` leaves no room for the sandbox it needs; [`Error::InvalidArgument`] for a
    /// template without a pool when no default configuration was given;
    /// [`Error::PoolShutdown`] after [`shutdown`](Self::shutdown).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future gives nothing up (no sandbox is taken until it
    /// returns).
    pub async fn acquire(&self, template: &Template, timeout: Duration) -> Result<PooledSandbox> {
        let span = tracing::debug_span!("pool.acquire", %template);
        self.acquire_inner(template, timeout).instrument(span).await
    }

    async fn acquire_inner(&self, template: &Template, timeout: Duration) -> Result<PooledSandbox> {
        let shared = &self.shared;
        let start = Instant::now();
        let deadline = start + timeout;
        let mut waiting = Waiting {
            shared,
            template,
            registered: false,
        };
        loop {
            let changed = shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut state = shared.lock();
                if state.shutting_down {
                    return Err(Error::PoolShutdown);
                }
                let state = &mut *state;
                let pool = match state.pools.get_mut(template) {
                    Some(pool) => pool,
                    None => {
                        let config = shared.settings.default_config.clone().ok_or_else(|| {
                            Error::invalid(
                                "template",
                                format!("no pool holds `{template}` sandboxes and the manager has no default configuration"),
                            )
                        })?;
                        shared
                            .settings
                            .template_builder(template)
                            .spec()
                            .map_err(|e| named_for(template, e))?;
                        state
                            .pools
                            .entry(template.clone())
                            .or_insert_with(|| PoolState::new(config, false))
                    }
                };
                let now = Instant::now();
                if !waiting.registered {
                    pool.counters.acquires += 1;
                    pool.last_acquire = Some(now);
                    pool.recent.push_back(now);
                    while pool.recent.front().is_some_and(|t| now - *t > RATE_WINDOW) {
                        pool.recent.pop_front();
                    }
                }
                while let Some(ready) = pool.ready.pop_front() {
                    if now - ready.created >= pool.config.max_age {
                        pool.counters.rotations += 1;
                        shared.spawn_delete(ready.sandbox, "max_age reached");
                        continue;
                    }
                    pool.in_use += 1;
                    // Serving an acquire is activity too: a miss that waited a whole
                    // creation must not find its pool already idle, or the pool would
                    // never raise its target for the acquires that follow.
                    pool.last_acquire = Some(now);
                    if !waiting.registered {
                        pool.counters.hits += 1;
                    }
                    let latency = now - start;
                    pool.record_latency(latency);
                    let app_id = ready.sandbox.id().to_owned();
                    waiting.release(pool);
                    state.held.remove(&app_id);
                    state.handed.insert(app_id.clone());
                    drop(waiting);
                    shared.wake.notify_one();
                    tracing::debug!(%app_id, ?latency, "acquired");
                    return Ok(PooledSandbox {
                        sandbox: ready.sandbox,
                        lease: Lease {
                            shared: Arc::clone(shared),
                            template: template.clone(),
                        },
                    });
                }
                if pool.config.on_empty == OnEmpty::Fail {
                    return Err(Error::PoolExhausted {
                        template: template.to_string(),
                        reason: "no sandbox is ready and the pool's on_empty is `fail`".into(),
                    });
                }
                if !waiting.registered {
                    let room = shared.settings.max_total.is_none_or(|max| {
                        let total: usize = state.pools.values().map(PoolState::total).sum();
                        let pool = &state.pools[template];
                        total < max || pool.creating > pool.waiters
                    });
                    if !room {
                        return Err(Error::PoolExhausted {
                            template: template.to_string(),
                            reason: format!(
                                "no sandbox is ready and max_total ({}) leaves no room for another",
                                shared.settings.max_total.unwrap_or_default()
                            ),
                        });
                    }
                    if let Some(pool) = state.pools.get_mut(template) {
                        pool.waiters += 1;
                    }
                    waiting.registered = true;
                    shared.wake.notify_one();
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                if let Some(pool) = shared.lock().pools.get_mut(template) {
                    pool.counters.timeouts += 1;
                }
                return Err(Error::timeout(
                    format!("acquiring a `{template}` sandbox"),
                    timeout,
                ));
            }
        }
    }

    /// Waits until every configured pool has at least `min_ready` sandboxes ready.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] naming each pool's `ready/min_ready` past the deadline;
    /// [`Error::PoolShutdown`] after shutdown.
    pub async fn warm_up(&self, timeout: Duration) -> Result<()> {
        let span = tracing::info_span!("pool.warm_up");
        async {
            let deadline = Instant::now() + timeout;
            loop {
                let changed = self.shared.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                let status = {
                    let state = self.shared.lock();
                    if state.shutting_down {
                        return Err(Error::PoolShutdown);
                    }
                    let short: Vec<String> = state
                        .pools
                        .iter()
                        .filter(|(_, p)| p.configured && p.ready.len() < p.config.min_ready)
                        .map(|(t, p)| format!("{t} {}/{}", p.ready.len(), p.config.min_ready))
                        .collect();
                    short
                };
                if status.is_empty() {
                    return Ok(());
                }
                if tokio::time::timeout_at(deadline, changed).await.is_err() {
                    return Err(Error::timeout(
                        format!("warming up the pools ({} ready)", status.join(", ")),
                        timeout,
                    ));
                }
            }
        }
        .instrument(span)
        .await
    }

    /// The state of every pool, and the API traffic so far.
    #[must_use]
    pub fn metrics(&self) -> Metrics {
        let state = self.shared.lock();
        let mut pools: Vec<PoolMetrics> = state
            .pools
            .iter()
            .map(|(template, pool)| pool.metrics(template))
            .collect();
        pools.sort_by_key(|m| m.template.to_string());
        Metrics {
            pools,
            api_requests: self.shared.pacer.requests(),
            rate_limited: self.shared.pacer.rate_limited(),
            swept: self.shared.swept.load(Ordering::Relaxed),
        }
    }

    /// Waits until the metrics satisfy `condition` (checked after every change of the pools),
    /// and returns them: for monitoring and tests, which then wait on events, not on time.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] past the deadline.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        condition: impl Fn(&Metrics) -> bool,
    ) -> Result<Metrics> {
        let deadline = Instant::now() + timeout;
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let metrics = self.metrics();
            if condition(&metrics) {
                return Ok(metrics);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(Error::timeout(
                    format!("waiting for the pools (last: {metrics:?})"),
                    timeout,
                ));
            }
        }
    }

    /// Sweeps now: see [`sweep`](crate::sweep). Sandboxes this manager holds are never
    /// swept.
    ///
    /// # Errors
    ///
    /// The platform's error when listing fails.
    pub async fn sweep(&self) -> Result<Vec<expiry::Swept>> {
        self.shared.sweep().await
    }

    /// Stops the pools and deletes every sandbox they hold, awaiting creations in flight;
    /// afterwards no app of this manager is left (sandboxes already acquired are the
    /// caller's). Idempotent.
    ///
    /// # Errors
    ///
    /// [`Error::CleanupFailed`]-like platform errors when an app could not be deleted after
    /// several attempts (it is named in the error; its expiry still deletes it).
    pub async fn shutdown(&self) -> Result<()> {
        let span = tracing::info_span!("pool.shutdown");
        self.shared.shutdown().instrument(span).await
    }
}

/// An acquire's registration as a waiter, undone however the acquire ends.
struct Waiting<'a> {
    shared: &'a Shared,
    template: &'a Template,
    registered: bool,
}

impl Waiting<'_> {
    fn release(&mut self, pool: &mut PoolState) {
        if self.registered {
            pool.waiters = pool.waiters.saturating_sub(1);
            self.registered = false;
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.registered {
            if let Some(pool) = self.shared.lock().pools.get_mut(self.template) {
                pool.waiters = pool.waiters.saturating_sub(1);
            }
            self.shared.wake.notify_one();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn track(&self, handle: JoinHandle<()>) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves once shutdown began.
    async fn until_stopped(&self) {
        let mut stop = self.stop.subscribe();
        let _ = stop.wait_for(|s| *s).await;
    }

    /// The background task: keeps each pool at its target until shutdown.
    async fn maintain(self: Arc<Self>) {
        let mut next_sweep = self.settings.sweep_interval.map(|i| Instant::now() + i);
        if self.settings.sweep_interval.is_some() {
            self.spawn_sweep();
        }
        loop {
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(TICK) => {}
                () = self.until_stopped() => return,
            }
            if self.stopped() {
                return;
            }
            let now = Instant::now();
            self.tend(now);
            if let (Some(at), Some(interval)) = (next_sweep, self.settings.sweep_interval)
                && now >= at
            {
                next_sweep = Some(now + interval);
                self.spawn_sweep();
            }
        }
    }

    /// One look at every pool: rotations, scale-down, health checks, creations.
    fn tend(self: &Arc<Self>, now: Instant) {
        let mut creations = Vec::new();
        let mut checks = Vec::new();
        {
            let mut state = self.lock();
            let mut total: usize = state.pools.values().map(PoolState::total).sum();
            let max_total = self.settings.max_total.unwrap_or(usize::MAX);
            for (template, pool) in &mut state.pools {
                let max_age = pool.config.max_age;
                let (old, young): (Vec<_>, Vec<_>) = pool
                    .ready
                    .drain(..)
                    .partition(|r| now - r.created >= max_age);
                pool.ready = young.into();
                for ready in old {
                    pool.counters.rotations += 1;
                    total -= 1;
                    self.spawn_delete(ready.sandbox, "max_age reached");
                }
                let target = pool.target(now);
                if pool.idle(now) && pool.waiters == 0 {
                    while pool.ready.len() + pool.creating > target && !pool.ready.is_empty() {
                        if let Some(extra) = pool.ready.pop_back() {
                            pool.counters.scale_downs += 1;
                            total -= 1;
                            self.spawn_delete(extra.sandbox, "idle pool scaled down");
                        }
                    }
                }
                for ready in &mut pool.ready {
                    if now - ready.checked >= self.settings.health_interval {
                        ready.checked = now;
                        checks.push((template.clone(), ready.sandbox.clone()));
                    }
                }
                let have = pool.ready.len() + pool.creating;
                let for_target = target.saturating_sub(have);
                let for_waiters = pool.waiters.saturating_sub(pool.creating);
                let wanted = for_target.max(for_waiters);
                let room = max_total.saturating_sub(total);
                let n = wanted.min(room);
                if n > 0 {
                    pool.creating += n;
                    total += n;
                    creations.extend(std::iter::repeat_n(template.clone(), n));
                }
            }
        }
        for template in creations {
            let shared = Arc::clone(self);
            let span = tracing::info_span!("pool.create", %template);
            self.track(tokio::spawn(
                async move { shared.create(template).await }.instrument(span),
            ));
        }
        self.changed.notify_waiters();
        for (template, sandbox) in checks {
            let shared = Arc::clone(self);
            self.track(tokio::spawn(async move {
                shared.check(template, sandbox).await;
            }));
        }
    }

    /// Makes one sandbox for `template`'s pool, with retries; the creating slot was reserved.
    async fn create(self: Arc<Self>, template: Template) {
        let started = Instant::now();
        let result = self.create_ready(&template).await;
        let leftover = {
            let mut state = self.lock();
            let shutting_down = state.shutting_down;
            match state.pools.get_mut(&template) {
                None => result,
                Some(pool) => {
                    pool.creating = pool.creating.saturating_sub(1);
                    match result {
                        Some(sandbox) if !shutting_down => {
                            let elapsed = started.elapsed();
                            pool.create_time = Some(match pool.create_time {
                                None => elapsed,
                                Some(avg) => (avg * 3 + elapsed) / 4,
                            });
                            pool.counters.creates += 1;
                            pool.ready.push_back(ReadySandbox {
                                sandbox,
                                created: started,
                                checked: Instant::now(),
                                strikes: 0,
                            });
                            None
                        }
                        other => other,
                    }
                }
            }
        };
        if let Some(sandbox) = leftover {
            self.delete_now(&sandbox).await;
        }
        self.changed.notify_waiters();
        self.wake.notify_one();
    }

    /// Tries up to `create_retries + 1` times; `None` when every attempt failed or shutdown
    /// began (nothing is left behind either way).
    async fn create_ready(&self, template: &Template) -> Option<Sandbox> {
        let config = self.lock().pools.get(template)?.config.clone();
        let _slot = tokio::select! {
            slot = self.create_slots.acquire() => slot.ok()?,
            () = self.until_stopped() => return None,
        };
        let mut backoff = config.retry_backoff;
        for attempt in 0..=config.create_retries {
            if self.stopped() {
                return None;
            }
            match self.create_once(template, &config).await {
                Ok(sandbox) => return Some(sandbox),
                Err(error) => {
                    tracing::warn!(%error, attempt, "pool creation failed");
                    if let Some(pool) = self.lock().pools.get_mut(template) {
                        pool.counters.failed_creates += 1;
                    }
                    if self.stopped() || attempt == config.create_retries {
                        return None;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.until_stopped() => return None,
                    }
                    backoff = backoff.saturating_mul(2);
                }
            }
        }
        None
    }

    /// One attempt: create the app, wait for it with the shared poller, open its console
    /// and start the agent with a round trip. Any failure deletes what was made.
    async fn create_once(&self, template: &Template, config: &PoolConfig) -> Result<Sandbox> {
        let name = format!("pool-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let builder = self
            .settings
            .template_builder(template)
            .name(&name)
            .ttl(config.max_age + config.ttl)
            .marker_attr(expiry::POOL_ATTR, self.owner.clone())
            .marker_attr(MANAGER_ATTR, self.manager.clone());
        let spec = builder.spec()?;
        self.lock().inflight_names.insert(name.clone());
        let created = self.platform.create_app(&spec).await;
        let app = {
            let mut state = self.lock();
            state.inflight_names.remove(&name);
            let app = created?;
            state.held.insert(app.id.clone());
            app
        };
        let console = ConsoleSettings {
            open_timeout: self.settings.console.open_timeout,
            heartbeat_timeout: self.settings.console.heartbeat_timeout,
        };
        let mut sandbox = Sandbox::from_app(
            Arc::clone(&self.platform),
            &app,
            appspec::SANDBOX_COMPONENT.to_owned(),
            console,
        );
        let outcome: Result<()> = async {
            if !app.status().is_active() {
                if let doctl_driver::AppStatus::Failed { phase, reason } = app.status() {
                    return Err(Error::DeploymentFailed {
                        app_id: app.id.clone(),
                        phase,
                        reason,
                    });
                }
                let ready = self.readiness.wait(&app.id);
                let active = tokio::select! {
                    outcome = tokio::time::timeout(self.settings.ready_timeout, ready) => match outcome {
                        Ok(Ok(outcome)) => outcome?,
                        Ok(Err(_)) => return Err(Error::protocol("the readiness poller ended")),
                        Err(_) => return Err(Error::NotReady {
                            app_id: app.id.clone(),
                            status: "not active".into(),
                            waited: self.settings.ready_timeout,
                        }),
                    },
                    () = self.until_stopped() => return Err(Error::PoolShutdown),
                };
                sandbox = Sandbox::from_app(
                    Arc::clone(&self.platform),
                    &active,
                    appspec::SANDBOX_COMPONENT.to_owned(),
                    console,
                );
            }
            // The console opens and the agent starts here: the first command after an
            // acquire finds both warm.
            tokio::select! {
                out = sandbox.exec_with(ExecRequest::shell("true").timeout(self.settings.console.open_timeout)) => {
                    out?.exit_ok()?;
                }
                () = self.until_stopped() => return Err(Error::PoolShutdown),
            }
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => Ok(sandbox),
            Err(error) => {
                self.delete_now(&sandbox).await;
                Err(error)
            }
        }
    }

    /// Checks a ready sandbox with a round trip on its console; removes it when broken.
    ///
    /// A failure of the round trip itself (console lost, timeout, protocol) is broken. A
    /// platform error that may pass (rate limit, network, a console that could not be
    /// reopened) is a strike: broken when the app is no longer active or gone, or after
    /// [`STRIKES`] in a row; a transient API error alone never destroys a healthy sandbox.
    async fn check(self: Arc<Self>, template: Template, sandbox: Sandbox) {
        let result = sandbox
            .exec_with(ExecRequest::shell("true").timeout(HEALTH_TIMEOUT))
            .await
            .and_then(crate::ExecOutput::exit_ok);
        let id = sandbox.id().to_owned();
        let error = match result {
            Ok(_) => {
                if let Some(pool) = self.lock().pools.get_mut(&template)
                    && let Some(ready) = pool.ready.iter_mut().find(|r| r.sandbox.id() == id)
                {
                    ready.strikes = 0;
                }
                return;
            }
            Err(error) => error,
        };
        let mut broken = match &error {
            Error::Platform(e) => !e.is_retryable(),
            _ => true,
        };
        if !broken {
            broken = match self.platform.get_app(&id).await {
                Ok(app) => app.status().is_failed(),
                Err(e) => e.is_not_found(),
            };
        }
        let removed = {
            let mut state = self.lock();
            let Some(pool) = state.pools.get_mut(&template) else {
                return;
            };
            let Some(at) = pool.ready.iter().position(|r| r.sandbox.id() == id) else {
                return;
            };
            pool.ready[at].strikes += 1;
            if broken || pool.ready[at].strikes >= STRIKES {
                pool.ready.remove(at);
                pool.counters.health_removals += 1;
                true
            } else {
                false
            }
        };
        if removed {
            tracing::warn!(app_id = %id, %error, "pooled sandbox failed its health check; replacing it");
            self.changed.notify_waiters();
            self.delete_now(&sandbox).await;
            self.wake.notify_one();
        } else {
            tracing::info!(app_id = %id, %error, "health check inconclusive; keeping the sandbox");
        }
    }

    fn spawn_delete(self: &Arc<Self>, sandbox: Sandbox, why: &'static str) {
        let shared = Arc::clone(self);
        self.track(tokio::spawn(async move {
            tracing::info!(app_id = %sandbox.id(), why, "deleting a pooled sandbox");
            shared.delete_now(&sandbox).await;
        }));
    }

    /// Deletes a sandbox, trying again on errors that may pass; forgets it either way.
    async fn delete_now(&self, sandbox: &Sandbox) {
        sandbox.close_console().await;
        let _ = self.delete_app(sandbox.id()).await;
    }

    async fn delete_app(&self, app_id: &str) -> Result<()> {
        let mut backoff = Duration::from_millis(500);
        let mut last = None;
        for _ in 0..DELETE_ATTEMPTS {
            match self.platform.delete_app(app_id).await {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) if e.is_not_found() => {
                    last = None;
                    break;
                }
                Err(e) if e.is_retryable() || matches!(e, doctl_driver::Error::Other { .. }) => {
                    tracing::debug!(%app_id, error = %e, "delete failed; trying again");
                    last = Some(e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(8));
                }
                Err(e) => {
                    last = Some(e);
                    break;
                }
            }
        }
        self.lock().held.remove(app_id);
        match last {
            None => Ok(()),
            Some(e) => {
                tracing::warn!(%app_id, error = %e, "could not delete a pooled sandbox; its expiry will");
                Err(e.into())
            }
        }
    }

    fn spawn_sweep(self: &Arc<Self>) {
        let shared = Arc::clone(self);
        self.track(tokio::spawn(
            async move {
                if let Err(error) = shared.sweep().await {
                    tracing::info!(%error, "sweep failed; trying at the next one");
                }
            }
            .instrument(tracing::info_span!("pool.sweep")),
        ));
    }

    async fn sweep(&self) -> Result<Vec<expiry::Swept>> {
        let now = time::OffsetDateTime::now_utc();
        let apps = self.platform.list_apps().await?;
        let mut swept = Vec::new();
        for app in apps {
            if self.lock().held.contains(&app.id) {
                continue;
            }
            let Some(reason) = expiry::reason(&app, now) else {
                continue;
            };
            let deleted = self.delete_app(&app.id).await;
            if deleted.is_ok() {
                self.swept.fetch_add(1, Ordering::Relaxed);
                self.changed.notify_waiters();
            }
            swept.push(expiry::Swept {
                id: app.id.clone(),
                name: app.name().to_owned(),
                reason,
                deleted: deleted.is_ok(),
                error: deleted.err().map(|e| e.to_string()),
            });
        }
        Ok(swept)
    }

    async fn shutdown(&self) -> Result<()> {
        let ready: Vec<Sandbox> = {
            let mut state = self.lock();
            state.shutting_down = true;
            state
                .pools
                .values_mut()
                .flat_map(|p| p.ready.drain(..).map(|r| r.sandbox))
                .collect()
        };
        self.stop.send_replace(true);
        self.changed.notify_waiters();
        // Creations in flight stop waiting and delete what they made.
        let mut failures = Vec::new();
        let deletes = ready.iter().map(|s| async move {
            s.close_console().await;
            self.delete_app(s.id())
                .await
                .map_err(|e| (s.id().to_owned(), e))
        });
        for result in futures::future::join_all(deletes).await {
            if let Err(failure) = result {
                failures.push(failure);
            }
        }
        loop {
            let tasks: Vec<JoinHandle<()>> =
                std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
            if tasks.is_empty() {
                break;
            }
            for task in tasks {
                let _ = task.await;
            }
        }
        if let Some(poller) = self.poller.lock().unwrap_or_else(|e| e.into_inner()).take() {
            poller.abort();
        }
        // A create call that failed after the platform made the app leaves a member nobody
        // holds: find it by its marker.
        match self.platform.list_apps().await {
            Ok(apps) => {
                for app in apps {
                    let mine = expiry::pool_owner(&app.spec)
                        .is_some_and(|o| o.to_string() == self.owner)
                        && expiry::marker_attr(&app.spec, MANAGER_ATTR) == Some(&self.manager);
                    let handed = self.lock().handed.contains(&app.id);
                    if mine && !handed {
                        if let Err(e) = self.delete_app(&app.id).await {
                            failures.push((app.id.clone(), e));
                        }
                    }
                }
            }
            Err(e) => failures.push(("(listing)".to_owned(), e.into())),
        }
        match failures.into_iter().next() {
            None => Ok(()),
            Some((app_id, error)) => Err(Error::ShutdownIncomplete {
                app_id,
                source: Box::new(error),
            }),
        }
    }
}

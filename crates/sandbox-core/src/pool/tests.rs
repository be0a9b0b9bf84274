//! The pool on bash consoles on local pseudo-terminals (`PtyPlatform`): fast, no sandbox
//! runtime needed. The same behaviours through the emulator and on the local provider are in
//! `tests/pool.rs`.

use std::sync::Arc;
use std::time::Duration;

use appspec::{ComponentType, ImageKind, TemplateDefaults};
use doctl_driver::Platform;

use super::*;
use crate::testing::{MockPlatform, PtyPlatform};
use crate::{SweepOptions, SweepReason, Swept};

const WAIT: Duration = Duration::from_secs(30);

fn python() -> Template {
    Template::new(ImageKind::Python, ComponentType::Worker)
}

fn pty() -> Arc<dyn Platform> {
    Arc::new(PtyPlatform::new().expect("pty platform"))
}

fn manager(platform: &Arc<dyn Platform>) -> PoolManagerBuilder {
    PoolManager::builder()
        .platform(Arc::clone(platform))
        .defaults(TemplateDefaults::default())
        .sweep_interval(None)
}

fn pool_of(metrics: &Metrics) -> &PoolMetrics {
    &metrics.pools[0]
}

#[tokio::test]
async fn invalid_settings_are_errors_naming_the_field() {
    let platform: Arc<dyn Platform> = Arc::new(MockPlatform::new());
    let field = |builder: PoolManagerBuilder| match builder.build() {
        Err(Error::InvalidArgument { name, .. }) => name,
        Err(other) => panic!("unexpected {other}"),
        Ok(_) => panic!("accepted"),
    };
    let with = |config: PoolConfig| manager(&platform).pool(python(), config);
    assert_eq!(
        field(with(PoolConfig::new().min_ready(5).max_ready(2))),
        "python/worker.min_ready"
    );
    assert_eq!(
        field(with(PoolConfig::new().min_ready(0).max_ready(0))),
        "python/worker.max_ready"
    );
    assert_eq!(
        field(with(PoolConfig::new().max_age(Duration::ZERO))),
        "python/worker.max_age"
    );
    assert_eq!(field(with(PoolConfig::new()).max_total(0)), "max_total");
    assert_eq!(
        field(with(PoolConfig::new()).max_concurrent_creates(0)),
        "max_concurrent_creates"
    );
    assert_eq!(
        field(with(PoolConfig::new().min_ready(3)).max_total(2)),
        "max_total"
    );
    assert_eq!(field(PoolManager::builder()), "platform");
    let name =
        field(manager(&platform).pool(python().instance_size("apps-s-huge"), PoolConfig::new()));
    assert!(
        name.starts_with("python/worker@apps-s-huge.") && name.ends_with("instance_size_slug"),
        "{name}"
    );
    // An acquire for a template without a pool, with no default configuration.
    let manager = manager(&platform)
        .pool(python(), PoolConfig::new().min_ready(0))
        .build()
        .unwrap();
    let node = Template::new(ImageKind::Node, ComponentType::Worker);
    match manager.acquire(&node, WAIT).await {
        Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, "template"),
        other => panic!("unexpected {other:?}"),
    }
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_hit_is_warm_a_miss_waits_and_shutdown_deletes_everything() {
    let platform = pty();
    let manager = manager(&platform)
        .pool(python(), PoolConfig::new().min_ready(1).max_ready(2))
        .build()
        .unwrap();
    manager.warm_up(WAIT).await.unwrap();
    assert_eq!(pool_of(&manager.metrics()).ready, 1);

    let first = manager.acquire(&python(), WAIT).await.unwrap();
    let expires = first
        .expires_at()
        .expect("pooled sandboxes carry an expiry");
    let now = time::OffsetDateTime::now_utc();
    assert!(
        expires > now + time::Duration::minutes(89),
        "max_age + ttl ahead: {expires}"
    );
    // The console is open and the agent started: the first command is a warm exec.
    let out = first.exec("echo warm").await.unwrap();
    assert_eq!(out.stdout, b"warm\n");
    let second = manager.acquire(&python(), WAIT).await.unwrap();
    assert_ne!(first.id(), second.id(), "each acquire gets its own sandbox");

    let metrics = manager.metrics();
    let pool = pool_of(&metrics);
    assert_eq!(pool.acquires, 2);
    assert_eq!(pool.in_use, 2);
    assert!(pool.hits >= 1, "{pool:?}");
    assert!(pool.acquire_p50.is_some());
    first.delete().await.unwrap();
    drop(second);
    let metrics = manager
        .wait_until(WAIT, |m| pool_of(m).ready >= 1)
        .await
        .unwrap();
    assert_eq!(pool_of(&metrics).in_use, 0);

    manager.shutdown().await.unwrap();
    let left: Vec<String> = platform
        .list_apps()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.spec.name)
        .collect();
    assert_eq!(
        left.len(),
        1,
        "only the acquired, undeleted one stays: {left:?}"
    );
    assert!(matches!(
        manager.acquire(&python(), WAIT).await,
        Err(Error::PoolShutdown)
    ));
}

#[tokio::test]
async fn on_empty_fail_and_max_total_are_typed_errors() {
    let platform = pty();
    let manager = manager(&platform)
        .pool(
            python(),
            PoolConfig::new()
                .min_ready(0)
                .max_ready(1)
                .on_empty(OnEmpty::Fail),
        )
        .build()
        .unwrap();
    let err = manager.acquire(&python(), WAIT).await.unwrap_err();
    assert!(matches!(err, Error::PoolExhausted { .. }), "{err}");
    assert!(err.to_string().contains("python/worker"), "{err}");
    manager.shutdown().await.unwrap();

    let manager = self::manager(&platform)
        .pool(python(), PoolConfig::new().min_ready(1).max_ready(1))
        .max_total(1)
        .build()
        .unwrap();
    manager.warm_up(WAIT).await.unwrap();
    let held = manager.acquire(&python(), WAIT).await.unwrap();
    let err = manager
        .acquire(&python(), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PoolExhausted { .. }), "{err}");
    held.delete().await.unwrap();
    manager.shutdown().await.unwrap();
    assert!(platform.list_apps().await.unwrap().is_empty());
}

#[tokio::test]
async fn old_sandboxes_are_rotated_and_idle_extras_go() {
    let platform = pty();
    let manager = manager(&platform)
        .pool(
            python(),
            PoolConfig::new()
                .min_ready(1)
                .max_ready(3)
                .max_age(Duration::from_millis(600))
                .idle_delay(Duration::from_millis(300)),
        )
        .build()
        .unwrap();
    manager.warm_up(WAIT).await.unwrap();
    let first: Vec<String> = ids(&platform).await;
    let metrics = manager
        .wait_until(WAIT, |m| pool_of(m).rotations >= 1 && pool_of(m).ready == 1)
        .await
        .unwrap();
    assert!(pool_of(&metrics).creates >= 2);
    let now: Vec<String> = ids(&platform).await;
    assert!(
        now.iter().all(|id| !first.contains(id)) || now.len() > 1,
        "the first sandbox was replaced: {first:?} -> {now:?}"
    );
    manager.shutdown().await.unwrap();
    assert!(platform.list_apps().await.unwrap().is_empty());
}

/// A platform whose `create_app` calls wait until the test opens the gate.
#[derive(Debug)]
struct Gated {
    inner: Arc<dyn Platform>,
    gate: tokio::sync::Semaphore,
}

#[async_trait::async_trait]
impl Platform for Gated {
    fn kind(&self) -> &'static str {
        "gated"
    }
    async fn create_app(&self, spec: &appspec::AppSpec) -> doctl_driver::Result<doctl_driver::App> {
        let _pass = self.gate.acquire().await;
        self.inner.create_app(spec).await
    }
    async fn get_app(&self, app_id: &str) -> doctl_driver::Result<doctl_driver::App> {
        self.inner.get_app(app_id).await
    }
    async fn list_apps(&self) -> doctl_driver::Result<Vec<doctl_driver::App>> {
        self.inner.list_apps().await
    }
    async fn delete_app(&self, app_id: &str) -> doctl_driver::Result<()> {
        self.inner.delete_app(app_id).await
    }
    async fn list_deployments(
        &self,
        app_id: &str,
    ) -> doctl_driver::Result<Vec<doctl_driver::Deployment>> {
        self.inner.list_deployments(app_id).await
    }
    async fn list_instances(
        &self,
        app_id: &str,
    ) -> doctl_driver::Result<Vec<doctl_driver::Instance>> {
        self.inner.list_instances(app_id).await
    }
    async fn open_console(
        &self,
        target: &doctl_driver::ConsoleTarget,
    ) -> doctl_driver::Result<Box<dyn doctl_driver::Console>> {
        self.inner.open_console(target).await
    }
    async fn logs(
        &self,
        request: &doctl_driver::LogsRequest,
    ) -> doctl_driver::Result<doctl_driver::LogStream> {
        self.inner.logs(request).await
    }
}

#[tokio::test]
async fn a_timed_out_acquire_is_a_timeout_and_shutdown_during_a_creation_leaves_nothing() {
    let gated = Arc::new(Gated {
        inner: pty(),
        gate: tokio::sync::Semaphore::new(0),
    });
    let platform: Arc<dyn Platform> = gated.clone();
    let manager = manager(&platform)
        .pool(python(), PoolConfig::new().min_ready(0).max_ready(2))
        .build()
        .unwrap();
    let err = manager
        .acquire(&python(), Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let metrics = manager.metrics();
    assert_eq!(pool_of(&metrics).acquire_timeouts, 1);
    assert_eq!(
        pool_of(&metrics).creating,
        1,
        "the creation goes on for the pool"
    );
    // Shutdown while that creation's API call is under way: the call ends, then its app is
    // deleted.
    let shutdown = tokio::spawn({
        let manager = manager.clone();
        async move { manager.shutdown().await }
    });
    gated.gate.add_permits(10);
    shutdown.await.unwrap().unwrap();
    assert!(
        platform.list_apps().await.unwrap().is_empty(),
        "shutdown during a creation leaves nothing"
    );
}

#[tokio::test]
async fn acquires_raise_the_target_and_idle_pools_scale_back_to_min_ready() {
    let platform = pty();
    let manager = manager(&platform)
        .pool(
            python(),
            PoolConfig::new()
                .min_ready(0)
                .max_ready(2)
                .idle_delay(Duration::from_secs(2)),
        )
        .build()
        .unwrap();
    // A miss: the pool makes one for it.
    let sandbox = manager.acquire(&python(), WAIT).await.unwrap();
    assert_eq!(pool_of(&manager.metrics()).hits, 0);
    sandbox.delete().await.unwrap();
    // Serving that acquire keeps the pool busy for `idle_delay`: it makes one to keep ready
    // (rate x create time, plus one), counted by its creation, which is monotonic...
    manager
        .wait_until(WAIT, |m| pool_of(m).creates >= 2)
        .await
        .unwrap();
    // ...and once idle, it goes back to min_ready.
    let metrics = manager
        .wait_until(WAIT, |m| {
            pool_of(m).scale_downs >= 1 && pool_of(m).ready == 0
        })
        .await
        .unwrap();
    assert_eq!(pool_of(&metrics).creating, 0);
    manager.shutdown().await.unwrap();
    assert!(platform.list_apps().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_sandbox_that_is_gone_is_replaced_and_a_dropped_console_is_not() {
    let hostile = Arc::new(crate::testing::HostilePlatform::new(pty()));
    let platform: Arc<dyn Platform> = hostile.clone();
    let manager = manager(&platform)
        .pool(python(), PoolConfig::new().min_ready(1).max_ready(1))
        .health_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    manager.warm_up(WAIT).await.unwrap();
    // A dropped console reopens on the next round trip: healthy, kept.
    hostile.drop_open_consoles();
    let opened = hostile.consoles_opened();
    manager
        .wait_until(WAIT, |_| hostile.consoles_opened() > opened)
        .await
        .unwrap();
    assert_eq!(pool_of(&manager.metrics()).health_removals, 0);
    // A sandbox whose console cannot be reopened (its app is gone behind the pool's back) is
    // replaced.
    let id = ids(&platform).await.remove(0);
    hostile.inner().delete_app(&id).await.unwrap();
    hostile.drop_open_consoles();
    let metrics = manager
        .wait_until(WAIT, |m| {
            pool_of(m).health_removals >= 1 && pool_of(m).ready == 1
        })
        .await
        .unwrap();
    assert!(pool_of(&metrics).creates >= 2);
    manager.shutdown().await.unwrap();
    assert!(platform.list_apps().await.unwrap().is_empty());
}

#[tokio::test]
async fn sweep_deletes_expired_and_orphaned_sandboxes_only() {
    let platform = pty();
    let defaults = TemplateDefaults::default();
    let expiring = crate::Sandbox::builder()
        .defaults(defaults.clone())
        .platform(Arc::clone(&platform))
        .name("expiring")
        .ttl(Duration::from_secs(3600))
        .create()
        .await
        .unwrap();
    let at = expiring.expires_at().expect("an expiry");
    let _kept = crate::Sandbox::builder()
        .defaults(defaults.clone())
        .platform(Arc::clone(&platform))
        .name("kept")
        .create()
        .await
        .unwrap();
    // A pool member whose process is gone (a pid no process has).
    let orphan_owner = PoolOwner {
        pid: u32::MAX - 1,
        ..PoolOwner::current()
    };
    crate::Sandbox::builder()
        .defaults(defaults)
        .platform(Arc::clone(&platform))
        .name("orphan")
        .marker_attr(expiry::POOL_ATTR, orphan_owner.to_string())
        .create()
        .await
        .unwrap();
    let listed = crate::Sandbox::list(platform.as_ref()).await.unwrap();
    let info = listed.iter().find(|s| s.name == "expiring").unwrap();
    assert_eq!(
        info.expires_at,
        Some(at),
        "any client reads the expiry back"
    );

    // Now: only the orphan goes. A dry run deletes nothing.
    let report = crate::sweep(platform.as_ref(), &SweepOptions::new().dry_run(true))
        .await
        .unwrap();
    assert_eq!(names(&report), ["orphan"]);
    assert!(!report[0].deleted);
    assert_eq!(ids(&platform).await.len(), 3);
    // Two hours later the expired one goes too.
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(2);
    let report = crate::sweep(platform.as_ref(), &SweepOptions::new().now(later))
        .await
        .unwrap();
    assert_eq!(names(&report), ["expiring", "orphan"]);
    assert!(report.iter().all(|s| s.deleted && s.error.is_none()));
    let expired = report.iter().find(|s| s.name == "expiring").unwrap();
    assert!(matches!(expired.reason, SweepReason::Expired { at: a } if a == at));
    let left = crate::Sandbox::list(platform.as_ref()).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].name, "kept");
    assert_eq!(left[0].expires_at, None);
}

async fn ids(platform: &Arc<dyn Platform>) -> Vec<String> {
    platform
        .list_apps()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect()
}

fn names(report: &[Swept]) -> Vec<String> {
    let mut names: Vec<String> = report.iter().map(|s| s.name.clone()).collect();
    names.sort();
    names
}

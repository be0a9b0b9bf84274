//! Warm pools, expiry and the sweep against the emulator (deployments that take seconds, both
//! drivers) and on the local provider: what a user of `PoolManager` would check, and that
//! nothing is ever left behind.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use appspec::{ComponentType, ImageKind, TemplateDefaults};
use doctl_driver::Platform;
use sandbox_core::{Metrics, PoolConfig, PoolManager, Sandbox, SweepOptions, Template};
use sandbox_testkit::{Target, Via, target_paced};

/// A deployment pace of several seconds, as the issue asks (App Platform takes 30-90 s).
const PACE: Duration = Duration::from_secs(3);
const WAIT: Duration = Duration::from_secs(240);

fn python() -> Template {
    Template::new(ImageKind::Python, ComponentType::Worker)
}

fn manager(target: &Target) -> sandbox_core::PoolManagerBuilder {
    PoolManager::builder()
        .platform(Arc::clone(&target.platform))
        .defaults(TemplateDefaults::default())
        .poll_interval(Duration::from_millis(500))
        .sweep_interval(None)
}

fn pool(metrics: &Metrics) -> &sandbox_core::PoolMetrics {
    &metrics.pools[0]
}

/// Nothing left: neither on the platform the test talks to, nor on the local provider under it.
async fn assert_nothing_left(target: &Target) {
    let apps = target.platform.list_apps().await.expect("list");
    assert!(apps.is_empty(), "apps left: {:?}", names(&apps));
    let local = target.backend.list_apps().await.expect("list");
    assert!(
        local.is_empty(),
        "local sandboxes left: {:?}",
        names(&local)
    );
}

fn names(apps: &[doctl_driver::App]) -> Vec<String> {
    apps.iter().map(|a| a.spec.name.clone()).collect()
}

/// Polls `check` until it holds, for at most `deadline` (what a local sandbox's own expiry does
/// can only be observed from outside).
async fn eventually<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn hit_miss_and_shutdown(via: Via) {
    let Some(target) = target_paced(via, PACE).await else {
        return;
    };
    let manager = manager(&target)
        .pool(python(), PoolConfig::new().min_ready(1).max_ready(2))
        .build()
        .expect("manager");
    manager.warm_up(WAIT).await.expect("warm up");
    let hit = manager.acquire(&python(), WAIT).await.expect("acquire");
    assert!(
        hit.expires_at().is_some(),
        "pooled sandboxes carry an expiry"
    );
    let out = hit
        .exec("echo warm; python3 -c 'print(6*7)'")
        .await
        .expect("exec");
    assert_eq!(out.stdout, b"warm\n42\n");
    // The second finds the pool empty or refilled; either way it is another sandbox.
    let second = manager.acquire(&python(), WAIT).await.expect("acquire");
    assert_ne!(hit.id(), second.id());
    assert_eq!(
        second.exec("echo again").await.expect("exec").stdout,
        b"again\n"
    );
    let metrics = manager.metrics();
    assert_eq!(pool(&metrics).acquires, 2);
    assert!(pool(&metrics).hits >= 1, "{metrics:?}");
    hit.delete().await.expect("delete");
    second.delete().await.expect("delete");
    manager.shutdown().await.expect("shutdown");
    assert_nothing_left(&target).await;
}

#[tokio::test]
async fn hit_miss_and_shutdown_through_the_api() {
    hit_miss_and_shutdown(Via::Api).await;
}

#[tokio::test]
async fn hit_miss_and_shutdown_through_doctl() {
    hit_miss_and_shutdown(Via::Doctl).await;
}

#[tokio::test]
async fn hit_miss_and_shutdown_on_the_local_provider() {
    hit_miss_and_shutdown(Via::Local).await;
}

#[tokio::test]
async fn shutdown_while_deployments_are_in_progress_leaves_no_app() {
    for via in [Via::Api, Via::Doctl] {
        let Some(target) = target_paced(via, Duration::from_secs(20)).await else {
            return;
        };
        let emulator = target.emulator.as_ref().expect("emulator");
        let manager = manager(&target)
            .pool(python(), PoolConfig::new().min_ready(3).max_ready(3))
            .build()
            .expect("manager");
        let creates = || {
            emulator
                .received_requests()
                .iter()
                .filter(|r| r.method == "POST" && r.path == "/v2/apps")
                .count()
        };
        manager
            .wait_until(WAIT, |_| creates() == 3)
            .await
            .expect("three creations under way");
        assert_eq!(pool(&manager.metrics()).ready, 0, "still deploying");
        manager.shutdown().await.expect("shutdown");
        assert_nothing_left(&target).await;
    }
}

#[tokio::test]
async fn faults_during_warm_up_slow_the_pool_but_leave_nothing_behind() {
    let Some(target) = target_paced(Via::Api, Duration::from_secs(1)).await else {
        return;
    };
    let emulator = target.emulator.as_ref().expect("emulator");
    emulator.faults().rate_limit(2, 1);
    emulator.faults().server_error(1, 503);
    emulator
        .faults()
        .fail_next_deployment("the image could not be pulled");
    let manager = manager(&target)
        .pool(
            python(),
            PoolConfig::new()
                .min_ready(2)
                .max_ready(2)
                .create_retries(5, Duration::from_millis(200)),
        )
        .build()
        .expect("manager");
    manager
        .warm_up(WAIT)
        .await
        .expect("warm up despite the faults");
    // DoApi itself waits out the 429s (`retry-after`) and 503s before the pool sees them; the
    // failed deployment is the pool's to retry.
    let metrics = manager.metrics();
    assert!(pool(&metrics).failed_creates >= 1, "{metrics:?}");
    assert_eq!(pool(&metrics).ready, 2);
    manager.shutdown().await.expect("shutdown");
    assert_nothing_left(&target).await;
}

/// 25 sandboxes deploying at once: their readiness is polled with shared listings, and the
/// API traffic stays far inside App Platform's 250 requests a minute.
#[tokio::test]
async fn twenty_five_creations_at_once_stay_inside_the_rate_limit() {
    let Some(target) = target_paced(Via::Api, Duration::from_secs(10)).await else {
        return;
    };
    let emulator = target.emulator.as_ref().expect("emulator");
    let manager = manager(&target)
        .poll_interval(Duration::from_secs(2))
        .max_concurrent_creates(25)
        .pool(python(), PoolConfig::new().min_ready(25).max_ready(25))
        .build()
        .expect("manager");
    manager.warm_up(WAIT).await.expect("warm up");
    let failed = pool(&manager.metrics()).failed_creates;
    manager.shutdown().await.expect("shutdown");
    let requests: Vec<_> = emulator
        .received_requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v2/"))
        .collect();
    let times: Vec<SystemTime> = requests.iter().map(|r| r.at).collect();
    let max_per_minute = times
        .iter()
        .map(|start| {
            times
                .iter()
                .filter(|t| {
                    t.duration_since(*start)
                        .is_ok_and(|d| d < Duration::from_secs(60))
                })
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        max_per_minute <= 250,
        "{max_per_minute} requests in a minute"
    );
    let creates = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v2/apps")
        .count();
    assert_eq!(
        creates as u64,
        25 + failed,
        "one create call per sandbox (and per retry)"
    );
    // No app is read one by one: readiness comes from listings of all apps.
    let per_app_reads = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.matches('/').count() == 3)
        .count();
    assert_eq!(per_app_reads, 0, "GET /v2/apps/{{id}} polls");
    let listings = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/v2/apps")
        .count();
    assert!((1..25 * 5).contains(&listings), "{listings} listings");
    assert_nothing_left(&target).await;
}

#[tokio::test]
async fn a_sandbox_whose_supervisor_dies_is_replaced() {
    let Some(target) = target_paced(Via::Local, Duration::ZERO).await else {
        return;
    };
    let manager = manager(&target)
        .health_interval(Duration::from_millis(200))
        .pool(python(), PoolConfig::new().min_ready(1).max_ready(1))
        .build()
        .expect("manager");
    manager.warm_up(WAIT).await.expect("warm up");
    let apps = target.backend.list_apps().await.expect("list");
    assert_eq!(apps.len(), 1);
    let pid_file = target.backend.sandbox_dir(&apps[0].id).join("run/init.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("init.pid")
        .trim()
        .parse()
        .expect("a pid");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill the supervisor");
    let metrics = manager
        .wait_until(WAIT, |m| pool(m).health_removals == 1 && pool(m).ready == 1)
        .await
        .expect("replaced");
    assert_eq!(pool(&metrics).creates, 2);
    let sandbox = manager.acquire(&python(), WAIT).await.expect("acquire");
    assert_ne!(sandbox.id(), apps[0].id);
    assert_eq!(sandbox.exec("echo ok").await.expect("exec").stdout, b"ok\n");
    sandbox.delete().await.expect("delete");
    manager.shutdown().await.expect("shutdown");
    assert_nothing_left(&target).await;
}

#[tokio::test]
async fn an_expired_local_sandbox_deletes_itself_with_no_client_running() {
    let Some(target) = target_paced(Via::Local, Duration::ZERO).await else {
        return;
    };
    let sandbox = Sandbox::builder()
        .defaults(TemplateDefaults::default())
        .platform(Arc::clone(&target.platform))
        .ttl(Duration::from_secs(2))
        .create()
        .await
        .expect("create");
    assert!(sandbox.expires_at().is_some());
    let dir = target.backend.sandbox_dir(sandbox.id());
    let id = sandbox.id().to_owned();
    drop(sandbox);
    let backend = target.backend.clone();
    let gone = eventually(Duration::from_secs(60), || {
        let backend = backend.clone();
        let id = id.clone();
        async move {
            !backend
                .list_apps()
                .await
                .expect("list")
                .iter()
                .any(|a| a.id == id)
        }
    })
    .await;
    assert!(gone, "the sandbox is still listed after its expiry");
    assert!(!dir.exists(), "its state folder is removed");
    assert_nothing_left(&target).await;
}

#[tokio::test]
async fn sweep_deletes_expired_sandboxes_through_both_drivers() {
    for via in [Via::Api, Via::Doctl] {
        let Some(target) = target_paced(via, Duration::ZERO).await else {
            return;
        };
        let sandbox = Sandbox::builder()
            .defaults(TemplateDefaults::default())
            .platform(Arc::clone(&target.platform))
            .name("short-lived")
            .ttl(Duration::from_secs(30 * 60))
            .create()
            .await
            .expect("create");
        let at = sandbox.expires_at().expect("expiry");
        let listed = Sandbox::list(target.platform.as_ref()).await.expect("list");
        assert_eq!(listed[0].expires_at, Some(at), "any client reads it back");
        let now = sandbox_core::sweep(target.platform.as_ref(), &SweepOptions::new())
            .await
            .expect("sweep");
        assert!(now.is_empty(), "nothing expired yet: {now:?}");
        let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        let swept = sandbox_core::sweep(target.platform.as_ref(), &SweepOptions::new().now(later))
            .await
            .expect("sweep");
        assert_eq!(swept.len(), 1);
        assert!(swept[0].deleted, "{swept:?}");
        assert_eq!(swept[0].name, "short-lived");
        assert_nothing_left(&target).await;
    }
}

//! The Platform seam over local sandboxes: lifecycle, names, failures, services, logs.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use appspec::{ComponentType, ImageKind};
use common::{Env, spec};
use doctl_driver::{AppStatus, DeploymentPhase, Error, LogKind, LogsRequest, Platform};
use futures::StreamExt;

#[tokio::test]
async fn create_get_list_delete() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env.create(ImageKind::Python, ComponentType::Worker).await;
    let id = sandbox.id().to_owned();
    assert!(
        uuid::Uuid::parse_str(&id).is_ok_and(|u| u.get_version_num() == 4),
        "{id}"
    );
    assert_eq!(sandbox.app.live_url, None, "workers have no URL");

    let got = env.platform.get_app(&id).await.expect("get");
    assert_eq!(got.status(), AppStatus::Active);
    assert_eq!(got.spec, sandbox.app.spec);
    let listed = env.platform.list_apps().await.expect("list");
    assert_eq!(
        listed.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        vec![id.as_str()]
    );
    let found = env
        .platform
        .find_app(got.name())
        .await
        .expect("find")
        .expect("by name");
    assert_eq!(found.id, id);
    let deployments = env
        .platform
        .list_deployments(&id)
        .await
        .expect("deployments");
    assert_eq!(deployments.len(), 1);
    assert_eq!(deployments[0].phase, DeploymentPhase::Active);
    let progress = deployments[0].progress.as_ref().expect("progress");
    assert_eq!((progress.success_steps, progress.total_steps), (6, 6));

    env.platform.delete_app(&id).await.expect("delete");
    assert!(
        env.platform
            .get_app(&id)
            .await
            .expect_err("gone")
            .is_not_found()
    );
    assert!(env.platform.list_apps().await.expect("list").is_empty());
    assert!(
        env.platform
            .find_app(got.name())
            .await
            .expect("find")
            .is_none()
    );
    assert!(
        env.platform
            .delete_app(&id)
            .await
            .expect_err("twice")
            .is_not_found()
    );
    assert!(
        env.platform
            .get_app("../../etc")
            .await
            .expect_err("bad id")
            .is_not_found()
    );
}

#[tokio::test]
async fn names_are_unique() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env.create(ImageKind::Python, ComponentType::Worker).await;
    let err = env
        .platform
        .create_app(&sandbox.app.spec)
        .await
        .expect_err("taken");
    assert!(
        matches!(&err, Error::NameTaken { name } if name == sandbox.app.name()),
        "{err}"
    );
    // Another process's view agrees.
    let err = env
        .another()
        .create_app(&sandbox.app.spec)
        .await
        .expect_err("taken");
    assert!(matches!(err, Error::NameTaken { .. }), "{err}");
}

#[tokio::test]
async fn unsupported_image_and_invalid_spec_are_refused() {
    require_sandboxes!();
    let env = Env::new();
    let mut bad = spec(ImageKind::Python, ComponentType::Worker);
    bad.envs.retain(|e| e.key != appspec::MARKER_ENV);
    if let Some(image) = bad.workers[0].image.as_mut() {
        image.repository = "ruby".into();
    }
    let err = env
        .platform
        .create_app(&bad)
        .await
        .expect_err("unsupported");
    let text = err.to_string();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{text}");
    assert!(
        text.contains("sandbox-python") && text.contains("sandbox-node"),
        "{text}"
    );
    assert!(text.contains("ruby"), "{text}");

    let mut invalid = spec(ImageKind::Python, ComponentType::Worker);
    invalid.name = "Not A Name".into();
    let err = env
        .platform
        .create_app(&invalid)
        .await
        .expect_err("invalid");
    assert!(matches!(err, Error::InvalidSpec { .. }), "{err}");
    assert!(env.platform.list_apps().await.expect("list").is_empty());
}

#[tokio::test]
async fn another_platform_finds_and_enters_the_sandbox() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env.create(ImageKind::Python, ComponentType::Worker).await;
    sandbox.run("echo from-first > shared.txt").await;
    let other = env.another();
    let app = other
        .find_app(sandbox.app.name())
        .await
        .expect("find")
        .expect("found");
    assert_eq!(app.id, sandbox.id());
    assert!(app.status().is_active());
    let second = common::Sandbox::adopt(other, app);
    assert_eq!(second.run("cat shared.txt").await, "from-first\n");
    std::mem::forget(second); // the first handle deletes it
}

#[tokio::test]
async fn dead_supervisor_is_reported_and_delete_still_works() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env.create(ImageKind::Python, ComponentType::Worker).await;
    let state = std::fs::read_to_string(env.platform.sandbox_dir(sandbox.id()).join("state.json"))
        .expect("state");
    let json: serde_json::Value = serde_json::from_str(&state).expect("json");
    let pid = json["supervisor"]["pid"].as_i64().expect("supervisor pid");
    assert!(json["supervisor"]["start_time"].as_u64().is_some());
    common::kill(pid);

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let app = loop {
        let app = env.platform.get_app(sandbox.id()).await.expect("get");
        if app.status().is_failed() || std::time::Instant::now() > deadline {
            break app;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    match app.status() {
        AppStatus::Failed { phase, reason } => {
            assert_eq!(phase, DeploymentPhase::Error);
            assert_eq!(reason.as_deref(), Some(sandbox_local::SUPERVISOR_DEAD));
        }
        other => panic!("expected a failed status, got {other:?}"),
    }
    assert!(
        env.platform
            .list_instances(sandbox.id())
            .await
            .expect("instances")
            .is_empty()
    );
    env.platform.delete_app(sandbox.id()).await.expect("delete");
    assert!(!env.platform.sandbox_dir(sandbox.id()).exists());
}

fn http_get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
}

fn health_port(env: &Env, id: &str) -> u16 {
    let state =
        std::fs::read_to_string(env.platform.sandbox_dir(id).join("state.json")).expect("state");
    let json: serde_json::Value = serde_json::from_str(&state).expect("json");
    json["health_port"].as_u64().expect("health port") as u16
}

#[tokio::test]
async fn services_answer_health_and_serve_their_port_at_live_url() {
    require_sandboxes!();
    let env = Env::new();
    let a = env.create(ImageKind::Python, ComponentType::Service).await;
    let b = env.create(ImageKind::Python, ComponentType::Service).await;
    for sandbox in [&a, &b] {
        assert!(
            sandbox.app.status().is_active(),
            "{:?}",
            sandbox.app.status()
        );
        let answer = http_get(health_port(&env, sandbox.id()), "/sandbox_health");
        assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
        let body = answer.split("\r\n\r\n").nth(1).expect("body");
        let json: serde_json::Value = serde_json::from_str(body).expect("json body");
        assert_eq!(json["status"], "ok");
        assert_eq!(json["service"], "sandbox");
        let stamp = json["timestamp"].as_str().expect("timestamp");
        time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
            .expect("RFC 3339 timestamp");
        let missing = http_get(health_port(&env, sandbox.id()), "/other");
        assert!(missing.starts_with("HTTP/1.0 404"), "{missing}");
    }

    // Each user server binds $PORT (8080 in a private network namespace) without colliding.
    for (sandbox, word) in [(&a, "alpha"), (&b, "beta")] {
        let mut term = sandbox.console().await;
        let port = term.run("echo $PORT").await;
        if sandbox_uses_pasta(&env, sandbox.id()) {
            assert_eq!(port, "8080\n");
        }
        term.run(&format!(
            "mkdir -p site && echo {word} > site/index.html && \
             {{ nohup python3 -m http.server \"$PORT\" -d site >/dev/null 2>&1 & }}"
        ))
        .await;
        let url = sandbox
            .app
            .live_url
            .clone()
            .expect("services have a live_url");
        let port: u16 = url
            .rsplit(':')
            .next()
            .expect("port")
            .parse()
            .expect("number");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let answer = loop {
            let answer = std::panic::catch_unwind(|| http_get(port, "/index.html"));
            match answer {
                Ok(answer) if answer.contains(word) => break answer,
                _ if std::time::Instant::now() > deadline => panic!("no answer at {url}"),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    }
}

fn sandbox_uses_pasta(env: &Env, id: &str) -> bool {
    let state =
        std::fs::read_to_string(env.platform.sandbox_dir(id).join("state.json")).expect("state");
    state.contains("\"network\": \"pasta\"")
}

/// Every line of a sandbox's log, as it is now.
async fn log_lines(env: &Env, request: &LogsRequest) -> Vec<String> {
    env.platform
        .logs(request)
        .await
        .expect("logs")
        .map(|l| l.expect("line"))
        .collect()
        .await
}

#[tokio::test]
async fn run_logs_hold_what_the_entrypoint_prints() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env.create(ImageKind::Python, ComponentType::Worker).await;
    let request = LogsRequest::new(sandbox.id(), "sandbox");
    let lines = log_lines(&env, &request).await;
    assert!(
        lines.iter().any(|l| l.starts_with("Python: Python 3")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains("is ready")), "{lines:?}");
    let tail = log_lines(&env, &request.clone().with_tail(1)).await;
    assert_eq!(tail.len(), 1);

    // Following: the stream ends when the sandbox is deleted.
    let mut follow = env
        .platform
        .logs(&request.clone().with_follow(true))
        .await
        .expect("follow");
    let first = tokio::time::timeout(Duration::from_secs(10), follow.next()).await;
    assert!(first.expect("a line in time").is_some());
    env.platform.delete_app(sandbox.id()).await.expect("delete");
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        while follow.next().await.is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the followed stream ends after delete");

    let deploy = env.platform.logs(&request.with_kind(LogKind::Deploy)).await;
    assert!(deploy.is_err_and(|e| e.is_not_found()));
}

#[tokio::test]
async fn host_network_fallback_gives_distinct_ports() {
    require_sandboxes!();
    let dir = tempfile::tempdir().expect("tempdir");
    let platform = sandbox_local::LocalPlatform::new(
        sandbox_local::LocalConfig::new(dir.path()).with_network(sandbox_local::NetworkMode::Host),
    )
    .expect("platform");
    let env = Env { dir, platform };
    let a = env.create(ImageKind::Python, ComponentType::Service).await;
    let b = env.create(ImageKind::Python, ComponentType::Service).await;
    assert!(!sandbox_uses_pasta(&env, a.id()));
    let (pa, pb) = (a.run("echo $PORT").await, b.run("echo $PORT").await);
    assert_ne!(pa, pb, "distinct ports on the host network");
    let live = a.app.live_url.clone().expect("live url");
    assert_eq!(live, format!("http://127.0.0.1:{}", pa.trim()));
    let answer = http_get(health_port(&env, a.id()), "/sandbox_health");
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    let port = a.run("echo $SANDBOX_HEALTH_PORT").await;
    assert_eq!(port.trim(), health_port(&env, a.id()).to_string());
}

#[tokio::test]
async fn run_command_replaces_the_entrypoint_and_logs_to_run_logs() {
    require_sandboxes!();
    let env = Env::new();
    let mut spec = spec(ImageKind::Python, ComponentType::Worker);
    spec.workers[0].run_command = "echo started-by-run-command; echo $((6*7)) > out.txt".into();
    let sandbox = env.create_spec(&spec).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let request = LogsRequest::new(sandbox.id(), "sandbox");
    loop {
        let lines = log_lines(&env, &request).await;
        if lines.iter().any(|l| l == "started-by-run-command") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "run command output: {lines:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sandbox.run("cat out.txt; whoami").await, "42\nsandbox\n");
}

fn state_json(env: &Env, id: &str) -> serde_json::Value {
    let text =
        std::fs::read_to_string(env.platform.sandbox_dir(id).join("state.json")).expect("state");
    serde_json::from_str(&text).expect("json")
}

fn gone(pid: i64) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.is_empty() || stat.contains(") Z ")
}

async fn wait_gone(pid: i64, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while !gone(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} (pid {pid}) still runs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn pasta_ends_with_its_sandbox() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env.create(ImageKind::Python, ComponentType::Service).await;
    let state = state_json(&env, sandbox.id());
    let Some(pasta) = state["pasta"]["pid"].as_i64() else {
        assert!(
            !sandbox_testkit::local_required(),
            "no pasta on this machine (install passt), and SANDBOX_REQUIRE_LOCAL=1 requires it"
        );
        eprintln!("skipping: no pasta on this machine, services share the host network");
        return;
    };
    let supervisor = state["supervisor"]["pid"].as_i64().expect("supervisor");
    common::kill(supervisor);
    wait_gone(pasta, "pasta").await;
}

#[tokio::test]
async fn a_sandbox_whose_folder_vanished_ends_itself() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env.create(ImageKind::Python, ComponentType::Worker).await;
    let state = state_json(&env, sandbox.id());
    let supervisor = state["supervisor"]["pid"].as_i64().expect("supervisor");
    let holder = state["holder"]["pid"].as_i64().expect("holder");
    std::fs::remove_dir_all(env.platform.sandbox_dir(sandbox.id())).expect("rm state");
    wait_gone(supervisor, "the sandbox's PID 1").await;
    wait_gone(holder, "the sandbox's unshare").await;
}

#[tokio::test]
async fn service_resolv_conf_points_at_pasta_dns_forwarding() {
    require_sandboxes!();
    let env = Env::new();
    let sandbox = env.create(ImageKind::Python, ComponentType::Service).await;
    let resolv = sandbox.run("grep ^nameserver /etc/resolv.conf").await;
    if sandbox_uses_pasta(&env, sandbox.id()) {
        assert_eq!(resolv, "nameserver 169.254.0.53\n");
    } else {
        assert!(!resolv.is_empty(), "the host's name servers: {resolv}");
    }
    assert!(
        sandbox
            .run("getent hosts localhost")
            .await
            .contains("localhost")
    );
}

/// Needs outbound network (not available in CI): `cargo test -p sandbox-local -- --ignored`.
#[tokio::test]
#[ignore = "needs outbound network"]
async fn outbound_network_from_workers_and_services() {
    require_sandboxes!();
    let env = Env::new();
    for component in [ComponentType::Worker, ComponentType::Service] {
        let sandbox = env.create(ImageKind::Python, component).await;
        let out = sandbox
            .run(
                "python3 -c \"import urllib.request as u; \
                 print(u.urlopen('https://deb.debian.org/', timeout=10).status)\"",
            )
            .await;
        assert_eq!(out, "200\n", "{component:?}");
    }
}

/// Run by `sandbox_outlives_the_process_that_created_it` in a child process: creates a sandbox
/// in the state folder it is given, prints its id, and exits without deleting it.
#[tokio::test]
async fn child_creator() {
    let Some(dir) = std::env::var_os("SANDBOX_LOCAL_TEST_CHILD_DIR") else {
        return; // only meaningful as the child of the test below
    };
    let platform =
        sandbox_local::LocalPlatform::new(sandbox_local::LocalConfig::new(dir)).expect("platform");
    let app = platform
        .create_app(&spec(ImageKind::Python, ComponentType::Worker))
        .await;
    println!("CREATED {}", app.expect("create").id);
}

#[tokio::test]
async fn sandbox_outlives_the_process_that_created_it() {
    require_sandboxes!();
    let env = Env::new();
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "child_creator",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("SANDBOX_LOCAL_TEST_CHILD_DIR", env.dir.path())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("child in time")
    .expect("child ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let id = stdout
        .lines()
        .find_map(|l| l.split("CREATED ").nth(1))
        .unwrap_or_else(|| panic!("child printed no id: {stdout}"))
        .trim()
        .to_owned();
    let app = env.platform.get_app(&id).await.expect("get");
    let sandbox = common::Sandbox::adopt(env.platform.clone(), app);
    assert!(
        sandbox.app.status().is_active(),
        "{:?}",
        sandbox.app.status()
    );
    assert_eq!(sandbox.run("echo still-here").await, "still-here\n");
}

#[tokio::test]
async fn concurrent_creates_get_distinct_sandboxes() {
    require_sandboxes!();
    let env = Env::new();
    let creates = (0..6).map(|i| {
        let component = if i % 2 == 0 {
            ComponentType::Worker
        } else {
            ComponentType::Service
        };
        env.create(ImageKind::Python, component)
    });
    let sandboxes = futures::future::join_all(creates).await;
    let mut hosts = std::collections::HashSet::new();
    let mut urls = std::collections::HashSet::new();
    for sandbox in &sandboxes {
        assert!(
            sandbox.app.status().is_active(),
            "{:?}",
            sandbox.app.status()
        );
        let instances = env
            .platform
            .list_instances(sandbox.id())
            .await
            .expect("instances");
        assert!(
            hosts.insert(instances[0].instance_name.clone()),
            "hostnames are unique"
        );
        if let Some(url) = &sandbox.app.live_url {
            assert!(urls.insert(url.clone()), "live URLs are unique");
        }
    }
    assert_eq!(env.platform.list_apps().await.expect("list").len(), 6);
}

//! One suite of `Platform` tests, run against both drivers: `Doctl` (the doctl stand-in) and
//! `DoApi`, each on its own App Platform emulator over local sandboxes.
//!
//! Each test body takes a [`Bench`]; the `suite!` macro instantiates every body twice, in
//! the modules `doctl` and `api`.

use appspec::{ComponentType, ImageKind};
use doctl_driver::{ConsoleTarget, Error, LogsRequest, TermSize};
use futures::StreamExt;
use workspace_tests::{Bench, Driver, RETRIES, spec, unique_name, wait_active, within};

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod doctl {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(bench) = workspace_tests::Bench::start(workspace_tests::Driver::Doctl).await else {
                        return;
                    };
                    super::$name(bench).await;
                }
            )*
        }
        mod api {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(bench) = workspace_tests::Bench::start(workspace_tests::Driver::Api).await else {
                        return;
                    };
                    super::$name(bench).await;
                }
            )*
        }
    };
}

suite!(
    lifecycle_find_list_and_delete,
    console_prompt_echo_resize_and_close,
    dropped_console_is_an_error,
    logs_of_a_worker,
    unknown_app_is_not_found,
    invalid_spec_is_rejected,
    bad_token_is_not_authenticated,
    rate_limits_are_retried_then_reported,
    server_errors_are_retried_then_reported,
    failed_deployment_is_seen_with_its_reason,
);

/// Create a python worker, a python service and a node worker; read them back every way;
/// a taken name is refused; delete them.
async fn lifecycle_find_list_and_delete(bench: Bench) {
    let p = &*bench.platform;
    let worker_spec = spec(ImageKind::Python, ComponentType::Worker);
    let service_spec = spec(ImageKind::Python, ComponentType::Service);
    let node_spec = spec(ImageKind::Node, ComponentType::Worker);
    let worker = bench.create_active(&worker_spec).await;
    let service = bench.create_active(&service_spec).await;
    let node = bench.create_active(&node_spec).await;
    assert_eq!(worker.name(), worker_spec.name);
    assert_eq!(worker.live_url, None, "a worker has no URL");
    assert!(service.live_url.is_some(), "a service has a URL");

    let got = within(p.get_app(&worker.id)).await.expect("get_app");
    assert_eq!(got.id, worker.id);
    assert_eq!(got.spec.workers.len(), 1);
    assert!(got.status().is_active());

    let found = within(p.find_app(&service_spec.name)).await.expect("find");
    assert_eq!(found.map(|a| a.id), Some(service.id.clone()));
    let missing = within(p.find_app(&unique_name())).await.expect("find");
    assert!(missing.is_none());

    // Three apps: more than one page for DoApi (2 per page in the suite).
    let listed = within(p.list_apps()).await.expect("list_apps");
    let mut ids: Vec<&str> = listed.iter().map(|a| a.id.as_str()).collect();
    ids.sort_unstable();
    let mut want = vec![worker.id.as_str(), service.id.as_str(), node.id.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want);
    if bench.driver == Driver::Api {
        let pages: Vec<String> = bench
            .emulator
            .received_requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path == "/v2/apps")
            .filter_map(|r| r.query.clone())
            .collect();
        assert!(
            pages.iter().any(|q| q.contains("page=2")),
            "the second page was fetched: {pages:?}"
        );
    }

    let deployments = within(p.list_deployments(&worker.id))
        .await
        .expect("list_deployments");
    assert!(!deployments.is_empty());
    assert_eq!(
        deployments[0].phase,
        doctl_driver::DeploymentPhase::Active,
        "{deployments:?}"
    );
    let instances = within(p.list_instances(&worker.id))
        .await
        .expect("list_instances");
    assert_eq!(instances.len(), 1, "{instances:?}");
    assert_eq!(instances[0].component_name, "sandbox");
    assert!(!instances[0].instance_name.is_empty());

    // A taken name.
    let again = within(p.create_app(&worker_spec)).await;
    assert!(
        matches!(again, Err(Error::NameTaken { ref name }) if *name == worker_spec.name),
        "{again:?}"
    );

    for app in [&worker, &service, &node] {
        within(p.delete_app(&app.id)).await.expect("delete_app");
    }
    let gone = within(p.get_app(&worker.id)).await;
    assert!(gone.as_ref().is_err_and(Error::is_not_found), "{gone:?}");
    let listed = within(p.list_apps()).await.expect("list_apps");
    assert!(listed.is_empty(), "{listed:?}");
}

/// A console shows the prompt, runs `echo`, takes a resize, and closes cleanly.
async fn console_prompt_echo_resize_and_close(bench: Bench) {
    let app = bench
        .create_active(&spec(ImageKind::Python, ComponentType::Worker))
        .await;
    let mut term = bench.console(&app.id).await;
    term.send("echo x\r").await;
    term.expect("echo x").await;
    // After the echo of the input line, the command's output.
    term.expect("x\r\n").await;
    term.expect("$ ").await;

    within(term.console.resize(TermSize { cols: 91, rows: 33 }))
        .await
        .expect("resize");
    // doctl forwards a resize when SIGWINCH reaches it, a moment later: ask until it shows.
    let mut sized = false;
    for _ in 0..50 {
        term.send("stty size\r").await;
        term.expect("stty size").await;
        let answer = term.expect("$ ").await;
        if answer.contains("33 91") {
            sized = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(sized, "the terminal took the new size");

    // Input larger than a frame and than a terminal line travels whole.
    let long = "y".repeat(3000);
    term.send(&format!("echo {long} | wc -c\r")).await;
    term.expect("| wc -c").await;
    term.expect("3001\r\n").await;
    term.expect("$ ").await;

    // The shell's exit ends the session normally.
    term.send("exit\r").await;
    let end = within(async {
        loop {
            match term.console.recv().await {
                Ok(Some(_)) => {}
                other => return other,
            }
        }
    })
    .await;
    assert!(matches!(end, Ok(None)), "{end:?}");
    within(term.console.close()).await.expect("close");

    // And a console closed from this side.
    let term = bench.console(&app.id).await;
    within(term.console.close()).await.expect("close");
}

/// A console whose connection drops reports an error, never a normal end.
async fn dropped_console_is_an_error(bench: Bench) {
    let app = bench
        .create_active(&spec(ImageKind::Python, ComponentType::Worker))
        .await;
    bench.emulator.faults().drop_console_after_bytes(300);
    let console = within(
        bench
            .platform
            .open_console(&ConsoleTarget::new(&app.id, "sandbox")),
    )
    .await
    .expect("open_console");
    // Ask for more output than the connection will carry.
    let _ = console.send(b"seq 1 2000\r").await;
    let end = within(async {
        loop {
            match console.recv().await {
                Ok(Some(_)) => {}
                other => return other,
            }
        }
    })
    .await;
    assert!(
        matches!(end, Err(Error::ConsoleLost { .. })),
        "expected ConsoleLost, got {end:?}"
    );
    // Later reads keep saying so.
    let again = within(console.recv()).await;
    assert!(again.is_err(), "{again:?}");
}

/// Historic logs hold what the sandbox printed; a followed stream delivers lines.
async fn logs_of_a_worker(bench: Bench) {
    let app = bench
        .create_active(&spec(ImageKind::Python, ComponentType::Worker))
        .await;
    let request = LogsRequest::new(&app.id, "sandbox");
    let stream = within(bench.platform.logs(&request)).await.expect("logs");
    let lines: Vec<String> = within(stream.collect::<Vec<_>>())
        .await
        .into_iter()
        .map(|l| l.expect("line"))
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("is ready")),
        "ready line in {lines:?}"
    );

    let mut follow = within(bench.platform.logs(&request.clone().with_follow(true)))
        .await
        .expect("follow");
    let first = within(follow.next()).await;
    assert!(matches!(first, Some(Ok(_))), "{first:?}");
    drop(follow);

    let unknown = within(
        bench
            .platform
            .logs(&LogsRequest::new(&app.id, "no-such-component")),
    )
    .await;
    // An error at the call or as the stream's first item (doctl reports it when it exits).
    let err = match unknown {
        Err(err) => err,
        Ok(mut stream) => match within(stream.next()).await {
            Some(Err(err)) => err,
            other => panic!("expected an error for an unknown component, got {other:?}"),
        },
    };
    assert!(err.is_not_found(), "{err:?}");
}

/// Unknown ids are `NotFound` for every call that takes one.
async fn unknown_app_is_not_found(bench: Bench) {
    let p = &*bench.platform;
    let id = "00000000-0000-4000-8000-000000000000";
    let get = within(p.get_app(id)).await;
    assert!(get.as_ref().is_err_and(Error::is_not_found), "{get:?}");
    let delete = within(p.delete_app(id)).await;
    assert!(
        delete.as_ref().is_err_and(Error::is_not_found),
        "{delete:?}"
    );
    let deployments = within(p.list_deployments(id)).await;
    assert!(
        deployments.as_ref().is_err_and(Error::is_not_found),
        "{deployments:?}"
    );
    let instances = within(p.list_instances(id)).await;
    assert!(
        instances.as_ref().is_err_and(Error::is_not_found),
        "{instances:?}"
    );
    // An error at open, or (doctl reports it when it exits) at the first read.
    let err = match within(p.open_console(&ConsoleTarget::new(id, "sandbox"))).await {
        Err(err) => err,
        Ok(console) => {
            within(async {
                loop {
                    match console.recv().await {
                        Ok(Some(_)) => {}
                        Ok(None) => panic!("a console on an unknown app ended normally"),
                        Err(err) => return err,
                    }
                }
            })
            .await
        }
    };
    assert!(err.is_not_found(), "{err:?}");
}

/// A spec App Platform rejects is `InvalidSpec` naming the field.
async fn invalid_spec_is_rejected(bench: Bench) {
    let mut broken = spec(ImageKind::Python, ComponentType::Service);
    broken.services[0].internal_ports.clear();
    let result = within(bench.platform.create_app(&broken)).await;
    match result {
        Err(Error::InvalidSpec { field, message }) => {
            assert_eq!(
                field.as_deref(),
                Some("services.health_check.port"),
                "{message}"
            );
        }
        other => panic!("expected InvalidSpec, got {other:?}"),
    }
    let listed = within(bench.platform.list_apps()).await.expect("list");
    assert!(listed.is_empty(), "nothing was created: {listed:?}");
}

/// A wrong token is `NotAuthenticated`, and the token shows nowhere.
async fn bad_token_is_not_authenticated(bench: Bench) {
    let secret = "dop_v1_wrong_token_0123456789";
    let wrong = bench.with_token(secret);
    let result = within(wrong.list_apps()).await;
    let err = result.expect_err("a wrong token is refused");
    assert!(
        matches!(err, Error::NotAuthenticated { .. }),
        "expected NotAuthenticated, got {err:?}"
    );
    assert!(!err.to_string().contains(secret));
    assert!(!format!("{err:?}").contains(secret));
    assert!(!format!("{wrong:?}").contains(secret));
}

/// 429 answers are retried; past the retries the error is `RateLimited`.
async fn rate_limits_are_retried_then_reported(bench: Bench) {
    let faults = bench.emulator.faults();
    faults.rate_limit(RETRIES, 1);
    let listed = within(bench.platform.list_apps()).await;
    assert!(listed.is_ok(), "retried past {RETRIES} 429s: {listed:?}");

    faults.rate_limit(RETRIES + 1, 1);
    let result = within(bench.platform.list_apps()).await;
    match result {
        Err(Error::RateLimited { limits, .. }) => {
            if bench.driver == Driver::Api {
                let limits = limits.expect("rate-limit headers reach the error");
                assert_eq!(limits.remaining, 0);
                assert_eq!(limits.limit, 5000);
            }
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    faults.clear();

    // A create hit by a 429 is retried too: the API did nothing.
    faults.rate_limit(1, 1);
    let created = within(
        bench
            .platform
            .create_app(&spec(ImageKind::Python, ComponentType::Worker)),
    )
    .await
    .expect("create after a 429");
    wait_active(&*bench.platform, &created.id).await;
}

/// 5xx answers are retried; past the retries the error says what the API answered.
async fn server_errors_are_retried_then_reported(bench: Bench) {
    let faults = bench.emulator.faults();
    faults.server_error(RETRIES, 503);
    let listed = within(bench.platform.list_apps()).await;
    assert!(listed.is_ok(), "retried past {RETRIES} 503s: {listed:?}");

    faults.server_error(RETRIES + 1, 500);
    let err = within(bench.platform.list_apps())
        .await
        .expect_err("500s past the retries");
    assert!(err.to_string().contains("500"), "{err}");
    faults.clear();

    // A create answered 500 is not retried: it could have made the app.
    let before = bench.emulator.received_requests().len();
    faults.server_error(1, 500);
    let result = within(
        bench
            .platform
            .create_app(&spec(ImageKind::Python, ComponentType::Worker)),
    )
    .await;
    if bench.driver == Driver::Api {
        assert!(result.is_err(), "{result:?}");
        let creates = bench.emulator.received_requests()[before..]
            .iter()
            .filter(|r| r.method == "POST" && r.path == "/v2/apps")
            .count();
        assert_eq!(creates, 1, "one POST only");
    }
    faults.clear();
}

/// A deployment that fails shows as failed, with the reason App Platform gives.
async fn failed_deployment_is_seen_with_its_reason(bench: Bench) {
    bench
        .emulator
        .faults()
        .fail_next_deployment("container exited with code 3");
    let created = within(
        bench
            .platform
            .create_app(&spec(ImageKind::Python, ComponentType::Worker)),
    )
    .await
    .expect("create_app");
    let status = within(async {
        loop {
            let app = bench.platform.get_app(&created.id).await.expect("get_app");
            let status = app.status();
            if status.is_failed() || status.is_active() {
                return status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    match status {
        doctl_driver::AppStatus::Failed { reason, .. } => {
            let reason = reason.unwrap_or_default();
            assert!(reason.contains("exited with code 3"), "{reason}");
        }
        other => panic!("expected a failed deployment, got {other:?}"),
    }
}

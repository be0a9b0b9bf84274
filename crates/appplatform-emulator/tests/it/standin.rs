//! The doctl stand-in against the recorded doctl behaviour: same stdout, stderr and exit code
//! (modulo ids, times, ports and tokens), run against the emulator.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use appplatform_emulator::{EmulatorHandle, HttpFault, standin_path};
use serde_json::Value;

use crate::common::*;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the stand-in with a fixture's argv (placeholders filled in) and environment.
async fn run_case(case: &str, port: u16, extra_env: &[(&str, &str)]) -> Run {
    let home = tempfile::tempdir().unwrap();
    let home_text = home.path().display().to_string();
    let argv: Vec<String> = serde_json::from_str(&fixture_text(case, "argv.json")).unwrap();
    let dir = fixture_dir(case);
    let spec = ["spec_file.yaml", "spec_file.json"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.exists());
    let args: Vec<String> = argv[1..]
        .iter()
        .map(|a| {
            let a = a.replace("PORT", &port.to_string());
            match (&spec, a.as_str()) {
                (Some(p), "SPECFILE") => p.display().to_string(),
                _ => a,
            }
        })
        .collect();
    let mut cmd = tokio::process::Command::new(standin_path().expect("stand-in binary"));
    cmd.args(&args)
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if fixture_text(case, "cmd.txt").contains("DIGITALOCEAN_ACCESS_TOKEN=TOKEN") {
        cmd.env("DIGITALOCEAN_ACCESS_TOKEN", TOKEN);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let stdin_file = dir.join("stdin");
    if stdin_file.exists() || args.iter().any(|a| a == "-") {
        let text = std::fs::read(&stdin_file).unwrap_or_else(|_| {
            std::fs::read(spec.as_deref().unwrap_or(Path::new("/dev/null"))).unwrap_or_default()
        });
        cmd.stdin(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&text).await.unwrap();
        drop(stdin);
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        return Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).replace(&home_text, "HOME"),
            stderr: String::from_utf8_lossy(&out.stderr).replace(&home_text, "HOME"),
        };
    }
    cmd.stdin(Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("stand-in ends in time")
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).replace(&home_text, "HOME"),
        stderr: String::from_utf8_lossy(&out.stderr).replace(&home_text, "HOME"),
    }
}

/// Asserts stdout, stderr and exit code equal the fixture's, modulo ids, times, ports, tokens.
fn assert_like_fixture(case: &str, run: &Run, port: u16) {
    let expected_code: i32 = fixture_text(case, "exit_code").trim().parse().unwrap();
    assert_eq!(
        run.code, expected_code,
        "{case}: exit code; stderr: {}",
        run.stderr
    );
    let fix = |t: &str| normalize(t, 0, "");
    let got = |t: &str| normalize(t, port, "");
    assert_eq!(
        got(&run.stdout),
        fix(&fixture_text(case, "stdout")),
        "{case}: stdout"
    );
    assert_eq!(
        got(&run.stderr),
        fix(&fixture_text(case, "stderr")),
        "{case}: stderr"
    );
}

async fn emulator_with(backend: &FakePlatform, setup: &[&str]) -> EmulatorHandle {
    let emulator = start(backend).await;
    for case in setup {
        let (status, _, body) =
            send(&emulator, "POST", "/v2/apps", Some(request_body(case, 0))).await;
        assert_eq!(status, 200, "{body}");
    }
    emulator
}

async fn check(case: &str, ids: &[&str], setup: &[&str]) {
    let backend = FakePlatform::new().with_ids(ids);
    let emulator = emulator_with(&backend, setup).await;
    let port = emulator.addr().port();
    let run = run_case(case, port, &[]).await;
    assert_like_fixture(case, &run, port);
}

const WORKER: &str = "apps-create-worker-success";
const SERVICE: &str = "apps-create-service-success";

#[tokio::test]
async fn create_sends_the_bytes_doctl_sends() {
    for (case, id) in [
        ("apps-create-worker-success", W),
        ("apps-create-service-success", S),
        ("apps-create-spec-stdin", W),
    ] {
        let backend = FakePlatform::new().with_ids(&[id]);
        let emulator = start(&backend).await;
        let run = run_case(case, emulator.addr().port(), &[]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        let sent = &emulator.received_requests()[0];
        let recorded = &requests(case)[0];
        assert_eq!(
            String::from_utf8_lossy(&sent.body),
            recorded["body"].as_str().unwrap(),
            "{case}"
        );
        assert_eq!(sent.header("content-type"), Some("application/json"));
        assert_eq!(sent.header("accept"), Some("application/json"));
        assert_eq!(sent.header("authorization"), Some("Bearer TOKEN"));
    }
}

#[tokio::test]
async fn create() {
    check("apps-create-worker-success", &[W], &[]).await;
    check("apps-create-worker-success-text", &[W], &[]).await;
    check("apps-create-service-success", &[S], &[]).await;
    check("apps-create-spec-stdin", &[W], &[]).await;
}

#[tokio::test]
async fn create_errors() {
    for case in [
        "apps-create-unknown-field",
        "apps-create-unknown-field-text",
        "apps-create-worker-http-port",
        "apps-create-spec-missing-file",
        "apps-create-no-spec-flag",
    ] {
        check(case, &[], &[]).await;
    }
    check("apps-create-conflict-409", &[W], &[WORKER]).await;
}

#[tokio::test]
async fn create_invalid_spec_names_the_field() {
    let backend = FakePlatform::new();
    let emulator = start(&backend).await;
    let port = emulator.addr().port();
    let run = run_case("apps-create-invalid-spec-400-text", port, &[]).await;
    assert_eq!(run.code, 1);
    let got = normalize(&run.stderr, port, "");
    assert!(
        got.starts_with(
            "Error: POST http://127.0.0.1:PORT/v2/apps: 400 (request \"UUID\") error validating app spec field \"services.health_check.port\": "
        ),
        "{got}"
    );
}

#[tokio::test]
async fn create_unauthenticated() {
    let backend = FakePlatform::new();
    let emulator = appplatform_emulator::Emulator::builder()
        .backend(std::sync::Arc::new(backend))
        .token("another-token")
        .start()
        .await
        .unwrap();
    let port = emulator.addr().port();
    let run = run_case("apps-create-unauthenticated-401", port, &[]).await;
    assert_like_fixture("apps-create-unauthenticated-401", &run, port);
    let run = run_case("auth-bad-token-401", port, &[]).await;
    assert_like_fixture("auth-bad-token-401", &run, port);
    let run = run_case("auth-bad-token-401-json", port, &[]).await;
    assert_like_fixture("auth-bad-token-401-json", &run, port);
}

#[tokio::test]
async fn create_wait_success_polls_until_active() {
    let backend = FakePlatform::new()
        .with_ids(&[W])
        .with_initial_state(FakeState::Deploying);
    let emulator = std::sync::Arc::new(start(&backend).await);
    let port = emulator.addr().port();
    // The backend reports the app active once the stand-in has polled the deployment once.
    let flip = tokio::spawn({
        let backend = backend.clone();
        let emulator = emulator.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while tokio::time::Instant::now() < deadline {
                if emulator
                    .received_requests()
                    .iter()
                    .any(|r| r.path.contains("/deployments/"))
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            backend.set_state(W, FakeState::Active);
        }
    });
    let run = run_case(
        "apps-create-wait-success",
        port,
        &[("DOCTL_STANDIN_POLL_MS", "300")],
    )
    .await;
    flip.await.unwrap();
    assert_like_fixture("apps-create-wait-success", &run, port);
}

#[tokio::test]
async fn create_wait_deploy_error() {
    for case in [
        "apps-create-wait-deploy-error",
        "apps-create-wait-deploy-error-text",
    ] {
        let backend = FakePlatform::new().with_ids(&[W]);
        let emulator = start(&backend).await;
        emulator.faults().fail_next_deployment(
            "Your deploy failed because your container exited with a non-zero exit code.",
        );
        let port = emulator.addr().port();
        let run = run_case(case, port, &[]).await;
        assert_like_fixture(case, &run, port);
    }
}

#[tokio::test]
async fn create_upsert_updates_the_existing_app() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = emulator_with(&backend, &[WORKER]).await;
    let port = emulator.addr().port();
    let run = run_case("apps-create-upsert-409", port, &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr, fixture_text("apps-create-upsert-409", "stderr"));
    let methods: Vec<String> = emulator
        .received_requests()
        .iter()
        .skip(1)
        .map(|r| format!("{} {}", r.method, r.path_and_query()))
        .collect();
    assert_eq!(
        methods,
        vec![
            "POST /v2/apps".to_owned(),
            "GET /v2/apps?page=1&per_page=200".to_owned(),
            format!("PUT /v2/apps/{W}")
        ]
    );
    let out: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(out[0]["id"], W);
}

#[tokio::test]
async fn get_and_list() {
    check("apps-get-active-worker", &[W], &[WORKER]).await;
    check("apps-get-active-worker-text", &[W], &[WORKER]).await;
    check("apps-get-active-service", &[S], &[SERVICE]).await;
    check("apps-get-not-found-404", &[], &[]).await;
    check("apps-get-not-found-404-text", &[], &[]).await;
    check("apps-get-by-name", &[W], &[WORKER]).await;
    check("missing-arg-get", &[], &[]).await;
    check("unknown-flag", &[W], &[WORKER]).await;
    check("apps-list-empty", &[], &[]).await;
    check("apps-list-empty-text", &[], &[]).await;
    check("apps-list-two", &[W, S], &[WORKER, SERVICE]).await;
    check("apps-list-two-text", &[W, S], &[WORKER, SERVICE]).await;
    check("apps-list-paginated", &[W, S], &[WORKER, SERVICE]).await;
    check("apps-list-format-noheader", &[W, S], &[WORKER, SERVICE]).await;
    check("auth-no-token", &[], &[]).await;
    check("auth-no-token-json", &[], &[]).await;
}

#[tokio::test]
async fn get_deploying_and_failed_apps() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = emulator_with(&backend, &[WORKER]).await;
    backend.set_state(W, FakeState::Deploying);
    let port = emulator.addr().port();
    for case in [
        "apps-get-deploying-worker",
        "apps-get-format-noheader-deploying",
    ] {
        let run = run_case(case, port, &[]).await;
        assert_like_fixture(case, &run, port);
    }

    let backend = FakePlatform::new().with_ids(&[E]);
    let emulator = start(&backend).await;
    emulator.faults().fail_next_deployment(
        "Your deploy failed because your container exited with a non-zero exit code.",
    );
    let body = request_body(WORKER, 0).replace("sandbox-7f3a", "sandbox-bad-5e1c");
    send(&emulator, "POST", "/v2/apps", Some(body)).await;
    let port = emulator.addr().port();
    for case in ["apps-get-error", "apps-list-deployments-error"] {
        let run = run_case(case, port, &[]).await;
        assert_like_fixture(case, &run, port);
    }
}

#[tokio::test]
async fn delete() {
    check("apps-delete-force-success", &[W], &[WORKER]).await;
    check("apps-delete-force-not-found-404", &[], &[]).await;
    check("apps-delete-force-not-found-404-json", &[], &[]).await;
    check("apps-delete-no-force-noninteractive", &[W], &[WORKER]).await;
}

#[tokio::test]
async fn deployments_and_instances() {
    check("apps-list-deployments-active-worker", &[W], &[WORKER]).await;
    check("apps-list-deployments-active-worker-text", &[W], &[WORKER]).await;
    check("apps-list-instances", &[W], &[WORKER]).await;
    check("apps-list-instances-text", &[W], &[WORKER]).await;
}

#[tokio::test]
async fn logs() {
    for case in [
        "apps-logs-run-live",
        "apps-logs-run-follow-live",
        "apps-logs-run-follow-no-prefix",
        "apps-logs-run-historic",
    ] {
        check(case, &[W], &[WORKER]).await;
    }
}

#[tokio::test]
async fn console_needs_a_terminal() {
    check("apps-console-stdin-not-tty", &[W], &[WORKER]).await;
    check("apps-console-exec-404", &[W], &[WORKER]).await;
}

#[tokio::test]
async fn api_faults() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = emulator_with(&backend, &[WORKER]).await;
    let port = emulator.addr().port();
    let cases: [(&str, HttpFault); 5] = [
        (
            "rate-limit-429-no-retry",
            HttpFault::RateLimited { retry_after: 1 },
        ),
        ("server-error-500", HttpFault::ServerError { status: 500 }),
        (
            "server-error-500-json",
            HttpFault::ServerError { status: 500 },
        ),
        (
            "server-error-500-empty-body",
            HttpFault::EmptyServerError { status: 500 },
        ),
        ("server-error-502-html-body", HttpFault::BadGatewayHtml),
    ];
    for (case, fault) in cases {
        emulator.faults().http(fault, 1);
        let run = run_case(case, port, &[]).await;
        assert_like_fixture(case, &run, port);
    }
    emulator.faults().rate_limit(1, 1);
    let run = run_case("rate-limit-429-then-success-default-retry", port, &[]).await;
    assert_like_fixture("rate-limit-429-then-success-default-retry", &run, port);
}

#[tokio::test]
async fn server_down() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let run = run_case("server-down-connection-refused", port, &[]).await;
    assert_like_fixture("server-down-connection-refused", &run, port);
}

#[tokio::test]
async fn token_from_config_file_and_context() {
    let backend = FakePlatform::new();
    let emulator = start(&backend).await;
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join(".config/doctl");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.yaml"),
        format!("access-token: wrong\nauth-contexts:\n  emu: {TOKEN}\n"),
    )
    .unwrap();
    let run = |args: Vec<String>| {
        let home = home.path().to_owned();
        async move {
            tokio::time::timeout(
                Duration::from_secs(60),
                tokio::process::Command::new(standin_path().unwrap())
                    .args(args)
                    .env_clear()
                    .env("HOME", home)
                    .kill_on_drop(true)
                    .output(),
            )
            .await
            .unwrap()
            .unwrap()
        }
    };
    let base = vec![
        "apps".to_owned(),
        "list".to_owned(),
        "-o".to_owned(),
        "json".to_owned(),
        "-u".to_owned(),
        emulator.url(),
    ];
    let with_context = [base.clone(), vec!["--context".to_owned(), "emu".to_owned()]].concat();
    let out = run(with_context).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[]\n");
    // The default context reads `access-token`, which the emulator refuses.
    let out = run(base).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(": 401 (request"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn logs_and_console_requests_have_doctl_paths() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = emulator_with(&backend, &[WORKER]).await;
    let port = emulator.addr().port();
    for case in ["apps-logs-run-follow-live", "apps-console-stdin-not-tty"] {
        let before = emulator.received_requests().len();
        run_case(case, port, &[]).await;
        let sent: Vec<String> = emulator.received_requests()[before..]
            .iter()
            .filter(|r| r.path.starts_with("/v2/"))
            .map(|r| normalize(&format!("{} {}", r.method, r.path_and_query()), port, ""))
            .collect();
        let recorded: Vec<String> = requests(case)
            .iter()
            .filter(|r| r["path"].as_str().unwrap().starts_with("/v2/"))
            .map(|r| {
                let q = r["query"].as_str().unwrap_or("");
                let pq = if q.is_empty() {
                    r["path"].as_str().unwrap().to_owned()
                } else {
                    format!("{}?{q}", r["path"].as_str().unwrap())
                };
                normalize(&format!("{} {pq}", r["method"].as_str().unwrap()), 0, "")
            })
            .collect();
        assert_eq!(sent, recorded, "{case}");
    }
}

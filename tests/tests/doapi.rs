//! What only `DoApi` does: the console's frames (resize first, many bytes per frame,
//! keepalive, close 1000, how endings are reported), the retry rules, the token from doctl's
//! config, and what goes on the wire.
//!
//! Consoles are tested against a small WebSocket server that records every frame; REST
//! behaviour against the emulator (with a backend that runs nothing).

#![allow(clippy::unwrap_used)] // a test file: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use appplatform_emulator::Emulator;
use appplatform_emulator::doc_support::NoApps;
use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use doctl_driver::{Console, ConsoleTarget, DoApi, DoApiConfig, Error, Platform, TermSize, Token};
use serde_json::{Value, json};
use workspace_tests::within;

/// What the fake exec server saw.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Frame(Value),
    Close(Option<u16>),
    Gone,
}

#[derive(Clone)]
struct Fake {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Upgrades still to refuse with 403.
    refuse: Arc<AtomicU32>,
    /// Exec URLs handed out.
    issued: Arc<AtomicU32>,
}

impl Fake {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn stdin_data(&self) -> Vec<String> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Frame(v) if v["op"] == "stdin" => v["data"].as_str().map(str::to_owned),
                _ => None,
            })
            .collect()
    }

    /// Waits until the server has recorded the end of the session.
    async fn wait_end(&self) -> Seen {
        within(async {
            loop {
                if let Some(last) = self
                    .seen()
                    .into_iter()
                    .rev()
                    .find(|s| matches!(s, Seen::Close(_) | Seen::Gone))
                {
                    return last;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
    }
}

/// A server with the exec URL endpoint and a WebSocket that greets with `$ `, echoes input,
/// and misbehaves on command: `bye` closes 1000, `die` closes 1011, `junk` sends a frame that
/// is not JSON, `drop` drops the connection.
async fn fake_exec_server() -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = Fake {
        addr,
        seen: Arc::new(Mutex::new(Vec::new())),
        refuse: Arc::new(AtomicU32::new(0)),
        issued: Arc::new(AtomicU32::new(0)),
    };
    let app = Router::new()
        .route(
            "/v2/apps/{app}/components/{component}/exec",
            get(
                |State(fake): State<Fake>, Path((_app, _c)): Path<(String, String)>| async move {
                    fake.issued.fetch_add(1, Ordering::SeqCst);
                    axum::Json(
                        json!({"url": format!("ws://{}/exec?token=one-time-secret", fake.addr)}),
                    )
                },
            ),
        )
        .route(
            "/exec",
            get(
                |State(fake): State<Fake>, upgrade: WebSocketUpgrade| async move {
                    let refused = fake
                        .refuse
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    if refused {
                        return (axum::http::StatusCode::FORBIDDEN, "forbidden").into_response();
                    }
                    let response: Response =
                        upgrade.on_upgrade(move |socket| session(fake, socket));
                    response.into_response()
                },
            ),
        )
        .with_state(fake.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    fake
}

async fn session(fake: Fake, mut socket: WebSocket) {
    let greet = json!({"data": "$ "}).to_string();
    if socket.send(Message::Text(greet.into())).await.is_err() {
        return;
    }
    while let Some(message) = socket.recv().await {
        let Ok(message) = message else { break };
        match message {
            Message::Text(text) => {
                let value: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                fake.seen.lock().unwrap().push(Seen::Frame(value.clone()));
                let data = value["data"].as_str().unwrap_or("").to_owned();
                let close = |code: u16| {
                    Message::Close(Some(CloseFrame {
                        code,
                        reason: "".into(),
                    }))
                };
                match data.as_str() {
                    "bye\r" => {
                        let _ = socket.send(close(1000)).await;
                    }
                    "die\r" => {
                        let _ = socket.send(close(1011)).await;
                    }
                    "junk\r" => {
                        let _ = socket.send(Message::Text("not json".into())).await;
                    }
                    "drop\r" => return,
                    "" => {}
                    _ => {
                        let echo = json!({"data": data}).to_string();
                        let _ = socket.send(Message::Text(echo.into())).await;
                    }
                }
            }
            Message::Close(frame) => {
                fake.seen
                    .lock()
                    .unwrap()
                    .push(Seen::Close(frame.map(|f| f.code)));
                return;
            }
            _ => {}
        }
    }
    fake.seen.lock().unwrap().push(Seen::Gone);
}

fn api_for(base: String, token: &str) -> DoApi {
    DoApi::new(
        DoApiConfig::new()
            .with_token(Token::new(token))
            .with_base_url(base)
            .with_keepalive(Duration::from_millis(100))
            .with_retry_wait(Duration::from_millis(10), Duration::from_secs(5))
            .with_request_timeout(Duration::from_secs(10)),
    )
    .expect("DoApi")
}

async fn open(fake: &Fake) -> Box<dyn Console> {
    let api = api_for(format!("http://{}", fake.addr), "t");
    let target = ConsoleTarget::new("app-1", "sandbox").with_size(TermSize {
        cols: 120,
        rows: 40,
    });
    let console = within(api.open_console(&target)).await.expect("console");
    let first = within(console.recv()).await.expect("prompt");
    assert_eq!(first.as_deref(), Some(&b"$ "[..]));
    console
}

/// Reads until the session ends; returns how.
async fn read_to_end(console: &dyn Console) -> doctl_driver::Result<Option<Vec<u8>>> {
    within(async {
        loop {
            match console.recv().await {
                Ok(Some(_)) => {}
                other => return other,
            }
        }
    })
    .await
}

#[tokio::test]
async fn resize_first_input_in_few_frames_keepalive_and_close_1000() {
    let fake = fake_exec_server().await;
    let console = open(&fake).await;
    within(console.send(b"echo hello\r")).await.unwrap();
    let echo = within(console.recv()).await.unwrap();
    assert_eq!(echo.as_deref(), Some(&b"echo hello\r"[..]));
    // Quiet for a while: keepalives go out.
    within(async {
        while fake.stdin_data().iter().filter(|d| d.is_empty()).count() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    within(console.close()).await.unwrap();
    assert_eq!(fake.wait_end().await, Seen::Close(Some(1000)));

    let seen = fake.seen();
    assert_eq!(
        seen[0],
        Seen::Frame(json!({"op": "resize", "width": 120, "height": 40})),
        "the first frame is the window size"
    );
    let data = fake.stdin_data();
    assert_eq!(data[0], "echo hello\r", "the line travels in one frame");
    assert!(data[1..].iter().all(String::is_empty), "{data:?}");

    // After close: writes fail, reads report the end.
    assert!(console.send(b"x").await.is_err());
    within(console.close()).await.expect("close twice");
}

#[tokio::test]
async fn invalid_utf8_input_becomes_replacement_characters() {
    let fake = fake_exec_server().await;
    let console = open(&fake).await;
    within(console.send(&[b'a', 0xff, 0xc3, b'\r']))
        .await
        .unwrap();
    within(console.send("é\r".as_bytes())).await.unwrap();
    within(async {
        while fake.stdin_data().len() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let data = fake.stdin_data();
    assert_eq!(data[0], "a\u{fffd}\u{fffd}\r");
    assert_eq!(data[1], "é\r");
}

#[tokio::test]
async fn close_1000_from_the_server_is_a_normal_end() {
    let fake = fake_exec_server().await;
    let console = open(&fake).await;
    within(console.send(b"bye\r")).await.unwrap();
    assert!(matches!(read_to_end(&*console).await, Ok(None)));
    assert!(matches!(within(console.recv()).await, Ok(None)));
}

#[tokio::test]
async fn other_close_codes_junk_and_drops_are_errors() {
    for (command, want) in [
        ("die\r", "1011"),
        ("junk\r", "not a JSON object"),
        ("drop\r", "without a close frame"),
    ] {
        let fake = fake_exec_server().await;
        let console = open(&fake).await;
        within(console.send(command.as_bytes())).await.unwrap();
        let end = read_to_end(&*console).await;
        match end {
            Err(Error::ConsoleLost { ref reason }) => {
                assert!(reason.contains(want), "{command:?}: {reason}");
            }
            other => panic!("{command:?}: expected ConsoleLost, got {other:?}"),
        }
        // Every later read says so again.
        assert!(
            matches!(within(console.recv()).await, Err(Error::ConsoleLost { .. })),
            "{command:?}"
        );
    }
}

#[tokio::test]
async fn the_exec_token_never_shows_in_errors() {
    // A server whose exec URL points at a closed port.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/v2/apps/{app}/components/{component}/exec",
        get(move || async move {
            axum::Json(json!({"url": format!("ws://{closed}/exec?token=one-time-secret")}))
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let api = api_for(format!("http://{addr}"), "t");
    let err = within(api.open_console(&ConsoleTarget::new("a", "sandbox")))
        .await
        .err()
        .expect("a closed port cannot be dialled");
    assert!(matches!(err, Error::Network { .. }), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("one-time-secret"), "{text}");
    assert!(text.contains("[REDACTED]"), "{text}");
}

async fn emulator() -> appplatform_emulator::EmulatorHandle {
    Emulator::builder()
        .backend(Arc::new(NoApps))
        .start()
        .await
        .expect("emulator")
}

#[tokio::test]
async fn requests_carry_the_token_as_bearer_and_debug_hides_it() {
    let emu = emulator().await;
    let api = api_for(emu.url(), emu.token());
    within(api.list_apps()).await.expect("list");
    let requests = emu.received_requests();
    let last = requests.last().expect("a request");
    assert_eq!(
        last.header("authorization").map(str::to_owned),
        Some(format!("Bearer {}", emu.token()))
    );
    assert_eq!(last.header("accept"), Some("application/json"));
    assert_eq!(last.query.as_deref(), Some("page=1&per_page=200"));
    let debug = format!("{api:?}");
    assert!(!debug.contains(emu.token()), "{debug}");
    assert_eq!(api.token_source(), "the configuration");
}

#[tokio::test]
async fn retry_after_is_honoured_and_a_long_one_is_not_waited_for() {
    let emu = emulator().await;
    let api = api_for(emu.url(), emu.token());
    emu.faults().rate_limit(1, 1);
    let started = Instant::now();
    within(api.list_apps()).await.expect("list after a 429");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited the second the API asked for"
    );

    // Longer than the longest wait (5 s here): reported at once, with the wait asked.
    emu.faults().rate_limit(1, 60);
    let before = emu.received_requests().len();
    let err = within(api.list_apps()).await.expect_err("429");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(60)));
    assert_eq!(emu.received_requests().len(), before + 1, "no retry");
}

#[tokio::test]
async fn unreachable_api_is_a_network_error_after_retries() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let api = DoApi::new(
        DoApiConfig::new()
            .with_token(Token::new("t"))
            .with_base_url(format!("http://{closed}"))
            .with_max_retries(2)
            .with_retry_wait(Duration::from_millis(10), Duration::from_millis(50)),
    )
    .unwrap();
    let err = within(api.get_app("x")).await.expect_err("refused");
    assert!(matches!(err, Error::Network { .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_silent_api_is_a_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        loop {
            if let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        }
    });
    let api = DoApi::new(
        DoApiConfig::new()
            .with_token(Token::new("t"))
            .with_base_url(format!("http://{addr}"))
            .with_max_retries(0)
            .with_request_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    let err = within(api.list_apps()).await.expect_err("silence");
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    held.abort();
}

#[tokio::test]
async fn token_from_doctl_config_context() {
    if std::env::var_os("DIGITALOCEAN_TOKEN").is_some()
        || std::env::var_os("DIGITALOCEAN_ACCESS_TOKEN").is_some()
    {
        eprintln!("skipping: a token in the environment takes precedence over doctl's config");
        return;
    }
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "access-token: wrong\ncontext: default\nauth-contexts:\n  emu: {}\n",
            emu.token()
        ),
    )
    .unwrap();
    let api = DoApi::new(
        DoApiConfig::new()
            .with_base_url(emu.url())
            .with_doctl_config(&path)
            .with_context("emu"),
    )
    .unwrap();
    assert!(api.token_source().contains("context `emu`"));
    within(api.list_apps())
        .await
        .expect("the context's token is accepted");

    // The default context's token is the wrong one here.
    let api = DoApi::new(
        DoApiConfig::new()
            .with_base_url(emu.url())
            .with_doctl_config(&path)
            .with_max_retries(0),
    )
    .unwrap();
    let err = within(api.list_apps()).await.expect_err("wrong token");
    assert!(matches!(err, Error::NotAuthenticated { .. }), "{err:?}");
}

#[tokio::test]
async fn a_refused_upgrade_is_retried_with_a_new_exec_url() {
    let fake = fake_exec_server().await;
    fake.refuse.store(1, Ordering::SeqCst);
    let _console = open(&fake).await;
    assert_eq!(fake.issued.load(Ordering::SeqCst), 2, "a second exec URL");

    // Refused every time: an error, after a bounded number of tries.
    let fake = fake_exec_server().await;
    fake.refuse.store(100, Ordering::SeqCst);
    let api = api_for(format!("http://{}", fake.addr), "t");
    let err = within(api.open_console(&ConsoleTarget::new("a", "sandbox")))
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(err, Error::ConsoleLost { ref reason } if reason.contains("403")),
        "{err:?}"
    );
    assert_eq!(fake.issued.load(Ordering::SeqCst), 3);
}

//! `doctl-standin apps console` on a real pseudo-terminal, against the emulator.

use std::time::Duration;

use appplatform_emulator::{ConsoleFault, EmulatorHandle, standin_path};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// A stand-in `apps console W sandbox` running on a pty, with everything it printed so far.
struct Session {
    pty: pty_process::Pty,
    child: tokio::process::Child,
    seen: Vec<u8>,
    _home: tempfile::TempDir,
}

impl Session {
    async fn start(emulator: &EmulatorHandle, rows: u16, cols: u16) -> Session {
        Self::start_with(emulator, rows, cols, &[]).await
    }

    async fn start_with(
        emulator: &EmulatorHandle,
        rows: u16,
        cols: u16,
        env: &[(&str, &str)],
    ) -> Session {
        let home = tempfile::tempdir().unwrap();
        let (pty, pts) = pty_process::open().unwrap();
        pty.resize(pty_process::Size::new(rows, cols)).unwrap();
        let child = pty_process::Command::new(standin_path().unwrap())
            .args([
                "apps",
                "console",
                W,
                "sandbox",
                "--api-url",
                &emulator.url(),
                "-t",
                TOKEN,
                "--http-retry-max",
                "0",
            ])
            .env_clear()
            .env("HOME", home.path())
            .env("TERM", "xterm-256color")
            .envs(env.iter().copied())
            .kill_on_drop(true)
            .spawn(pts)
            .unwrap();
        Session {
            pty,
            child,
            seen: Vec::new(),
            _home: home,
        }
    }

    /// Reads until `needle` has been seen `count` times in total.
    async fn wait_for(&mut self, needle: &str, count: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        while String::from_utf8_lossy(&self.seen).matches(needle).count() < count {
            let n = tokio::time::timeout_at(deadline, self.pty.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{needle:?} not seen; got {:?}",
                        String::from_utf8_lossy(&self.seen)
                    )
                })
                .unwrap_or(0);
            if n == 0 {
                panic!(
                    "pty closed before {needle:?}; got {:?}",
                    String::from_utf8_lossy(&self.seen)
                );
            }
            self.seen.extend_from_slice(&buf[..n]);
        }
    }

    async fn type_bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.pty.write_all(&[*b]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits for the exit code, reading what is left on the pty.
    async fn finish(mut self) -> (i32, String) {
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("exits in time")
            .unwrap();
        let mut buf = [0u8; 4096];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(200), self.pty.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            self.seen.extend_from_slice(&buf[..n]);
        }
        (
            status.code().unwrap_or(-1),
            String::from_utf8_lossy(&self.seen).into_owned(),
        )
    }
}

#[tokio::test]
async fn session_24x80_close_1000_prints_what_doctl_prints() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start_with_worker(&backend).await;
    let mut session = Session::start(&emulator, 24, 80).await;
    session.wait_for(PROMPT, 1).await;
    session.type_bytes(b"echo hi\r").await;
    session.wait_for(PROMPT, 2).await;
    session.type_bytes(b"exit\r").await;
    let (code, output) = session.finish().await;
    assert_eq!(code, 0, "{output}");
    assert_eq!(
        output,
        fixture_text("apps-console-pty-24x80-close-1000", "stdout")
    );
    assert_eq!(
        backend.resizes().first(),
        Some(&doctl_driver::TermSize { cols: 80, rows: 24 })
    );
}

#[tokio::test]
async fn special_bytes_travel_one_per_frame_and_non_ascii_becomes_replacement() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start_with_worker(&backend).await;
    let mut session = Session::start(&emulator, 24, 80).await;
    session.wait_for(PROMPT, 1).await;
    session
        .type_bytes("é<&>\t\x03\x04\x1b[A\x7f\r".as_bytes())
        .await;
    session.wait_for(PROMPT, 2).await;
    session.type_bytes(b"exit\r").await;
    let (code, output) = session.finish().await;
    assert_eq!(code, 0);
    assert_eq!(
        output,
        fixture_text("apps-console-pty-special-input", "stdout")
    );
}

#[tokio::test]
async fn resize_is_forwarded() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start_with_worker(&backend).await;
    let mut session = Session::start(&emulator, 50, 200).await;
    session.wait_for(PROMPT, 1).await;
    session.pty.resize(pty_process::Size::new(30, 100)).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !backend.resizes().contains(&doctl_driver::TermSize {
        cols: 100,
        rows: 30,
    }) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "resize not forwarded: {:?}",
            backend.resizes()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        backend.resizes()[0],
        doctl_driver::TermSize {
            cols: 200,
            rows: 50
        }
    );
    session.type_bytes(b"exit\r").await;
    assert_eq!(session.finish().await.0, 0);
}

#[tokio::test]
async fn dropped_connection_and_other_close_codes_exit_1() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start_with_worker(&backend).await;
    emulator
        .faults()
        .drop_console_after_bytes(PROMPT.len() as u64);
    let mut session = Session::start(&emulator, 24, 80).await;
    session.wait_for(PROMPT, 1).await;
    let (code, output) = session.finish().await;
    assert_eq!(code, 1);
    assert!(
        output.contains(
            "\x1b[31mError\x1b[0m: error reading from websocket: websocket: close 1006 (abnormal closure): unexpected EOF"
        ),
        "{output:?}"
    );

    let mut fault = ConsoleFault::default();
    fault.close_code = Some(1011);
    emulator.faults().console(fault, Some(1));
    let mut session = Session::start(&emulator, 24, 80).await;
    session.wait_for(PROMPT, 1).await;
    session.type_bytes(b"exit\r").await;
    let (code, output) = session.finish().await;
    assert_eq!(code, 1);
    assert!(
        output.contains(
            "error reading from websocket: websocket: close 1011 (internal server error)"
        ),
        "{output:?}"
    );
}

#[tokio::test]
async fn refused_upgrade_hangs_silently_like_doctl() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start_with_worker(&backend).await;
    emulator.faults().refuse_upgrades(1);
    let mut session =
        Session::start_with(&emulator, 24, 80, &[("DOCTL_STANDIN_HANG_SECS", "5")]).await;
    // Still running, silent, after the refused dial.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !emulator
        .received_requests()
        .iter()
        .any(|r| r.path == "/exec")
    {
        assert!(tokio::time::Instant::now() < deadline, "no dial");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        session.child.try_wait().unwrap().is_none(),
        "doctl hangs here; so does the stand-in"
    );
    let (code, output) = session.finish().await;
    assert_eq!(code, 1);
    assert!(output.contains("doctl would hang here"), "{output:?}");
    assert!(!output.contains(PROMPT));
}

/// The frames the stand-in sends to a recording console server, while a burst of input
/// (written to the terminal in one go) goes through; the server closes with 1000 at `\r`.
async fn frames_for_burst(burst: &[u8]) -> (i32, Vec<String>) {
    use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
    use axum::routing::get;
    use std::sync::{Arc, Mutex};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let frames = Arc::new(Mutex::new(Vec::<String>::new()));
    let recorded = frames.clone();
    let app = axum::Router::new()
        .route(
            "/v2/apps/{app}/components/{component}/exec",
            get(move || async move {
                axum::Json(serde_json::json!({"url": format!("ws://{addr}/exec?token=t")}))
            }),
        )
        .route(
            "/exec",
            get(move |upgrade: WebSocketUpgrade| async move {
                upgrade.on_upgrade(move |mut socket| async move {
                    let prompt = Message::Text(r#"{"data":"$ "}"#.into());
                    socket.send(prompt).await.unwrap();
                    while let Some(Ok(message)) = socket.recv().await {
                        let Message::Text(text) = message else {
                            continue;
                        };
                        let last = text.as_str() == r#"{"op":"stdin","data":"\r"}"#;
                        recorded.lock().unwrap().push(text.as_str().to_owned());
                        if last {
                            let close = Message::Close(Some(CloseFrame {
                                code: 1000,
                                reason: "".into(),
                            }));
                            let _ = socket.send(close).await;
                            break;
                        }
                    }
                })
            }),
        );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let home = tempfile::tempdir().unwrap();
    let (pty, pts) = pty_process::open().unwrap();
    pty.resize(pty_process::Size::new(24, 80)).unwrap();
    let child = pty_process::Command::new(standin_path().unwrap())
        .args(["apps", "console", W, "sandbox"])
        .args(["--api-url", &format!("http://{addr}"), "-t", TOKEN])
        .env_clear()
        .env("HOME", home.path())
        .kill_on_drop(true)
        .spawn(pts)
        .unwrap();
    let mut session = Session {
        pty,
        child,
        seen: Vec::new(),
        _home: home,
    };
    // The prompt shows once the terminal is raw and the WebSocket is up.
    session.wait_for("$ ", 1).await;
    session.pty.write_all(burst).await.unwrap();
    let (code, _) = session.finish().await;
    server.abort();
    let frames = frames.lock().unwrap().clone();
    (code, frames)
}

#[tokio::test]
async fn a_burst_of_input_still_travels_one_frame_per_byte() {
    let mut burst = "a".repeat(3000).into_bytes();
    burst.extend_from_slice("<&>\té\x03\x1b[A\x7f echo hi\r".as_bytes());
    let (code, frames) = frames_for_burst(&burst).await;
    assert_eq!(code, 0);
    // Go's encoding of one byte as a JSON string; bytes of 0x80 and above become U+FFFD.
    let expected: Vec<String> = burst
        .iter()
        .map(|&b| {
            let data = if b < 0x80 {
                char::from(b).to_string()
            } else {
                "\u{fffd}".to_owned()
            };
            let data = serde_json::to_string(&data)
                .unwrap()
                .replace('<', "\\u003c")
                .replace('>', "\\u003e")
                .replace('&', "\\u0026");
            format!(r#"{{"op":"stdin","data":{data}}}"#)
        })
        .collect();
    assert_eq!(frames[0], r#"{"op":"resize","width":80,"height":24}"#);
    assert_eq!(frames.len() - 1, expected.len(), "one frame per byte");
    assert!(frames[1..] == expected[..], "frames differ from doctl's");
    assert_eq!(frames[3004], r#"{"op":"stdin","data":"\t"}"#);
}

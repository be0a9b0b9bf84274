#![expect(clippy::unwrap_used, reason = "test code fails loudly on purpose")]

//! `DoApi` consoles against WebSocket peers on 127.0.0.1 that misbehave on purpose: one that
//! accepts the session and then never reads (sends must fail by their deadline), one that takes
//! the bytes but never answers a ping (the read-idle timeout must close the console).

use std::time::Duration;

use doctl_driver::{Console, ConsoleTarget, DoApi, DoApiConfig, Error, Platform, Token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// What the test WebSocket server does with a session once the handshake is done.
#[derive(Clone, Copy)]
enum Peer {
    /// Holds the connection and never reads from it (nor answers pings).
    NeverReads,
    /// Sends [`FLOOD`] output frames at once, then reads (answering pings) and sends nothing.
    Floods,
    /// Reads and discards the raw bytes under the WebSocket (so pings go unanswered) and sends
    /// nothing: a half-open connection as the client sees it.
    DiscardsBytes,
}

/// How many frames [`Peer::Floods`] sends: more than the console buffers, so its reader waits
/// for the caller.
const FLOOD: usize = 500;

/// A base URL whose exec endpoint hands out a WebSocket URL on 127.0.0.1, where one session is
/// accepted and treated as `peer`; the returned receiver fires when the session's connection
/// ends (as the server sees it).
async fn server(peer: Peer) -> (String, oneshot::Receiver<()>) {
    let ws = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_url = format!("ws://{}/exec", ws.local_addr().unwrap());
    let (ended_tx, ended_rx) = oneshot::channel();
    tokio::spawn(async move {
        let (tcp, _) = ws.accept().await.unwrap();
        let mut socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
        match peer {
            Peer::NeverReads => {
                // Held, never polled, until the test ends.
                std::future::pending::<()>().await;
                drop(socket);
            }
            Peer::Floods => {
                use futures::{SinkExt, StreamExt};
                use tokio_tungstenite::tungstenite::Message;
                for i in 0..FLOOD {
                    let frame = serde_json::json!({ "data": format!("line {i}\n") }).to_string();
                    if socket.send(Message::Text(frame.into())).await.is_err() {
                        return;
                    }
                }
                while let Some(Ok(_)) = socket.next().await {}
                let _ = ended_tx.send(());
            }
            Peer::DiscardsBytes => {
                let tcp = socket.get_mut();
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = tcp.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                let _ = ended_tx.send(());
            }
        }
    });
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", http.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = http.accept().await.unwrap();
            let body = serde_json::json!({ "url": ws_url }).to_string();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(answer.as_bytes()).await;
            });
        }
    });
    (base, ended_rx)
}

fn config(base: &str) -> DoApiConfig {
    DoApiConfig::new()
        .with_token(Token::new("dop_v1_test"))
        .with_base_url(base)
        .with_max_retries(0)
        .with_console_connect_timeout(Duration::from_secs(20))
}

async fn open(config: DoApiConfig) -> Box<dyn Console> {
    let api = DoApi::new(config).unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        api.open_console(&ConsoleTarget::new("a", "sandbox")),
    )
    .await
    .expect("the console opens in time")
    .unwrap()
}

#[tokio::test]
async fn send_to_a_peer_that_never_reads_times_out() {
    let (base, _ended) = server(Peer::NeverReads).await;
    let timeout = Duration::from_millis(500);
    let console = open(
        config(&base)
            .with_console_send_timeout(timeout)
            .with_console_read_idle_timeout(Duration::from_secs(120)),
    )
    .await;
    // Sends fill the kernel's buffers on both sides, then one cannot finish.
    let chunk = vec![b'x'; 1 << 20];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut sent = 0usize;
    let (took, err) = loop {
        let started = tokio::time::Instant::now();
        let result = tokio::time::timeout_at(deadline, console.send(&chunk))
            .await
            .expect("a send to a peer that never reads fails within 60 s");
        match result {
            Ok(()) => sent += chunk.len(),
            Err(err) => break (started.elapsed(), err),
        }
    };
    match &err {
        Error::Timeout {
            operation,
            timeout: t,
        } => {
            assert_eq!(*t, timeout);
            assert!(operation.contains("sending input"), "{operation}");
            assert!(
                operation.contains("component `sandbox` of app `a`"),
                "{operation}"
            );
        }
        other => panic!("expected a send timeout after {sent} bytes, got {other:?}"),
    }
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(2),
        "the failing send took {took:?} with a {timeout:?} deadline"
    );
    // Half a frame may be on the wire: the console does not send again.
    let err = console.send(b"echo more\r").await.unwrap_err();
    match err {
        Error::ConsoleLost { reason } => {
            assert!(reason.contains("did not finish within"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_peer_that_never_answers_pings_is_silent_after_the_read_idle_timeout() {
    let (base, ended) = server(Peer::DiscardsBytes).await;
    let idle = Duration::from_secs(1);
    let console = open(config(&base).with_console_read_idle_timeout(idle)).await;
    let started = tokio::time::Instant::now();
    let err = tokio::time::timeout(idle + Duration::from_secs(10), console.recv())
        .await
        .expect("recv ends within the read-idle timeout and a grace")
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, Error::ConsoleSilent { silent_for } if silent_for == idle),
        "{err:?}"
    );
    assert!(err.to_string().contains("silent for 1s"), "{err}");
    assert!(took >= idle - Duration::from_millis(100), "{took:?}");
    // Sticky, and the console is closed: sends fail, the server sees the connection end.
    assert!(matches!(
        console.recv().await,
        Err(Error::ConsoleSilent { .. })
    ));
    assert!(matches!(
        console.send(b"x").await,
        Err(Error::ConsoleLost { .. })
    ));
    tokio::time::timeout(Duration::from_secs(10), ended)
        .await
        .expect("the connection ends once the console is silent")
        .unwrap();
}

#[tokio::test]
async fn a_caller_slower_than_the_read_idle_timeout_is_not_silence() {
    let (base, _ended) = server(Peer::Floods).await;
    let idle = Duration::from_secs(1);
    let console = open(config(&base).with_console_read_idle_timeout(idle)).await;
    // The caller takes nothing for twice the read-idle timeout (this wait is the event under
    // test): the reader is blocked on the full buffer, not on a silent server.
    tokio::time::sleep(2 * idle).await;
    let mut text = String::new();
    let last = format!("line {}\n", FLOOD - 1);
    while !text.ends_with(&last) {
        let chunk = tokio::time::timeout(Duration::from_secs(10), console.recv())
            .await
            .expect("output in time")
            .unwrap_or_else(|e| panic!("after {} bytes: {e:?}", text.len()))
            .expect("the session goes on");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert_eq!(text.lines().count(), FLOOD);
    // And the server still answers pings: the quiet console stays open past the timeout.
    let quiet = tokio::time::timeout(3 * idle, console.recv()).await;
    assert!(
        quiet.is_err(),
        "a quiet live console yields nothing: {quiet:?}"
    );
    console.send(b"x").await.unwrap();
}

#[test]
fn console_timing_defaults_and_zero_is_refused() {
    let config = DoApiConfig::new();
    assert_eq!(config.console_send_timeout, Duration::from_secs(30));
    assert_eq!(config.console_read_idle_timeout, Duration::from_secs(15));
    assert_eq!(config.console_ping_interval, Duration::from_secs(5));
    let err = DoApi::new(
        config
            .with_token(Token::new("dop_v1_test"))
            .with_console_read_idle_timeout(Duration::ZERO),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { name, .. } if name == "console_read_idle_timeout"),
        "{err:?}"
    );
}

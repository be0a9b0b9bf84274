//! `DoApi` consoles against the emulator: the read-idle timeout closes a stalled (half-open)
//! session and leaves a quiet healthy one open.

use std::time::Duration;

use doctl_driver::{Console, ConsoleTarget, DoApi, Error, Platform};

use crate::common::*;

/// The read-idle timeout the tests use, short so they are fast.
const IDLE: Duration = Duration::from_secs(1);

async fn open(emulator: &appplatform_emulator::EmulatorHandle) -> Box<dyn Console> {
    let api = DoApi::new(
        emulator
            .doapi_config()
            .with_max_retries(0)
            .with_console_read_idle_timeout(IDLE),
    )
    .unwrap();
    tokio::time::timeout(
        Duration::from_secs(20),
        api.open_console(&ConsoleTarget::new(W, "sandbox")),
    )
    .await
    .expect("console opens in time")
    .unwrap()
}

/// Output until it holds `needle`, with a deadline.
async fn recv_until(console: &dyn Console, needle: &str) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !text.contains(needle) {
        match tokio::time::timeout_at(deadline, console.recv()).await {
            Ok(Ok(Some(bytes))) => text.push_str(&String::from_utf8_lossy(&bytes)),
            other => panic!("expected `{needle}` in {text:?}, got {other:?}"),
        }
    }
    text
}

#[tokio::test]
async fn a_stalled_console_is_silent_after_the_read_idle_timeout() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start_with_worker(&backend).await;
    emulator.faults().stall_console_after_bytes(10);
    let console = open(&emulator).await;
    recv_until(console.as_ref(), &PROMPT[..10]).await;
    let started = tokio::time::Instant::now();
    let err = tokio::time::timeout(IDLE + Duration::from_secs(10), console.recv())
        .await
        .expect("a stalled console fails within the read-idle timeout and a grace")
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, Error::ConsoleSilent { silent_for } if silent_for == IDLE),
        "{err:?}"
    );
    assert!(err.to_string().contains("silent for 1s"), "{err}");
    assert!(took < IDLE + Duration::from_secs(2), "{took:?}");
    // Every later call says the same, and the console does not send any more.
    assert!(matches!(
        console.recv().await,
        Err(Error::ConsoleSilent { .. })
    ));
    assert!(matches!(
        console.send(b"echo x\r").await,
        Err(Error::ConsoleLost { .. })
    ));
}

#[tokio::test]
async fn a_quiet_healthy_console_outlives_the_read_idle_timeout() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start_with_worker(&backend).await;
    let console = open(&emulator).await;
    recv_until(console.as_ref(), PROMPT).await;
    // Three read-idle periods with no output: the emulator answers the pings.
    let quiet = tokio::time::timeout(3 * IDLE, console.recv()).await;
    assert!(quiet.is_err(), "a quiet console yields nothing: {quiet:?}");
    console.send(b"echo still-open\r").await.unwrap();
    let text = recv_until(console.as_ref(), "still-open\r\n").await;
    assert!(
        text.contains(PROMPT) || text.ends_with("still-open\r\n"),
        "{text}"
    );
    console.close().await.unwrap();
}

#![expect(clippy::unwrap_used, reason = "test code fails loudly on purpose")]

//! Opening and closing a thousand consoles leaks no file descriptor. Its own test binary, so no
//! other test opens descriptors while this one counts them.

use std::time::Duration;

use doctl_driver::{ConsoleTarget, Doctl, DoctlConfig, Platform};

const CONSOLES: usize = 1000;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

async fn one_console(doctl: &Doctl, explicit_close: bool) {
    let console = doctl
        .open_console(&ConsoleTarget::new("a", "sandbox"))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(20), console.recv())
        .await
        .unwrap();
    assert!(first.unwrap().is_some());
    if explicit_close {
        console.close().await.unwrap();
    }
    drop(console);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_consoles_leak_no_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("doctl");
    std::fs::write(&path, "#!/bin/sh\nprintf 'sandbox$ '\nexec cat\n").unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let doctl = Doctl::new(DoctlConfig::new().with_binary(&path));

    // Warm up: the runtime's child-signal machinery opens its descriptors once.
    one_console(&doctl, true).await;
    one_console(&doctl, false).await;
    let before = open_fds();

    for i in 0..CONSOLES {
        one_console(&doctl, i % 2 == 0).await;
    }

    // Dropped consoles are reaped in the background; descriptors close at drop.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut after = open_fds();
    while after > before && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = open_fds();
    }
    assert_eq!(
        after, before,
        "descriptors before {before}, after {CONSOLES} consoles {after}"
    );
}

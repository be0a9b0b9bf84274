//! The emulator over the real `LocalPlatform`: create, walk to ACTIVE, console, logs, delete.

use std::sync::Arc;
use std::time::Duration;

use appplatform_emulator::Emulator;
use appspec::{ComponentType, ImageKind, SandboxTemplate};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

#[tokio::test]
async fn local_sandbox_through_the_api() {
    let state = tempfile::tempdir().unwrap();
    let platform = Arc::new(
        sandbox_local::LocalPlatform::new(sandbox_local::LocalConfig::new(state.path())).unwrap(),
    );
    let emulator = Emulator::builder()
        .backend(platform.clone())
        .token(TOKEN)
        .pace(Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let spec = SandboxTemplate::new(ImageKind::Python, ComponentType::Worker)
        .name("emu-local-test")
        .build()
        .unwrap();
    let (status, _, created) = send(
        &emulator,
        "POST",
        "/v2/apps",
        Some(json!({"spec": spec}).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let id = created["app"]["id"].as_str().unwrap().to_owned();
    // The sandbox outlives this process unless deleted: check in a task, delete whatever happens.
    let emulator = Arc::new(emulator);
    let outcome = tokio::spawn(checks(emulator.clone(), id.clone())).await;
    if outcome.is_err() {
        use doctl_driver::Platform;
        let _ = platform.delete_app(&id).await;
    }
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

async fn checks(emulator: Arc<appplatform_emulator::EmulatorHandle>, id: String) {
    let emulator = &*emulator;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, _, app) = send(emulator, "GET", &format!("/v2/apps/{id}"), None).await;
        if app["app"]["active_deployment"]["phase"] == "ACTIVE" {
            break;
        }
        assert!(
            app["app"]["in_progress_deployment"]["phase"] != "ERROR",
            "{app}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ACTIVE: {app}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (_, _, exec) = send(
        emulator,
        "GET",
        &format!("/v2/apps/{id}/components/sandbox/exec"),
        None,
    )
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(exec["url"].as_str().unwrap())
        .await
        .unwrap();
    ws.send(Message::Text(
        json!({"op": "resize", "width": 120, "height": 40})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    for b in "echo $((6*7)); exit\r".chars() {
        ws.send(Message::Text(
            json!({"op": "stdin", "data": b.to_string()})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    }
    let mut text = String::new();
    let code = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(msg) = ws.next().await {
            match msg.unwrap() {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    text.push_str(v["data"].as_str().unwrap());
                }
                Message::Close(frame) => return frame.map(|f| u16::from(f.code)),
                _ => {}
            }
        }
        None
    })
    .await
    .expect("console ends in time");
    assert!(text.contains("\r42\r\n"), "{text:?}");
    assert_eq!(code, Some(1000));

    let (status, _, instances) =
        send(emulator, "GET", &format!("/v2/apps/{id}/instances"), None).await;
    assert_eq!(status, 200);
    assert_eq!(instances["instances"][0]["component_name"], "sandbox");

    let (status, _, _) = send(emulator, "DELETE", &format!("/v2/apps/{id}"), None).await;
    assert_eq!(status, 200);
    let (status, _, _) = send(emulator, "GET", &format!("/v2/apps/{id}"), None).await;
    assert_eq!(status, 404);
}

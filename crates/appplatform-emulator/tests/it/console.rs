//! The exec WebSocket: doctl's protocol, endings and console faults.

use std::time::Duration;

use appplatform_emulator::{ConsoleFault, EmulatorHandle};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(emulator: &EmulatorHandle) -> Ws {
    let (_, _, exec) = send(
        emulator,
        "GET",
        &format!("/v2/apps/{W}/components/sandbox/exec"),
        None,
    )
    .await;
    let (ws, _) = tokio_tungstenite::connect_async(exec["url"].as_str().unwrap())
        .await
        .expect("upgrade");
    ws
}

async fn type_text(ws: &mut Ws, text: &str) {
    for b in text.chars() {
        let frame = json!({"op": "stdin", "data": b.to_string()}).to_string();
        ws.send(Message::Text(frame.into())).await.unwrap();
    }
}

/// Reads frames until the socket ends: (text received, close code if a close frame came,
/// whether the connection ended with an error).
async fn read_all(ws: &mut Ws) -> (String, Option<u16>, bool) {
    let mut text = String::new();
    let result = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    text.push_str(v["data"].as_str().unwrap());
                }
                Some(Ok(Message::Close(frame))) => {
                    return (Some(frame.map_or(1005, |f| u16::from(f.code))), false);
                }
                Some(Ok(_)) => {}
                Some(Err(_)) => return (None, true),
                None => return (None, false),
            }
        }
    })
    .await
    .expect("session ends in time");
    (text, result.0, result.1)
}

#[tokio::test]
async fn echo_prompt_and_close_1000() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start_with_worker(&backend).await;
    let mut ws = connect(&emulator).await;
    ws.send(Message::Text(
        json!({"op": "resize", "width": 80, "height": 24})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    type_text(&mut ws, "echo hi\r").await;
    ws.send(Message::Text(
        json!({"op": "stdin", "data": ""}).to_string().into(),
    ))
    .await
    .unwrap();
    type_text(&mut ws, "exit\r").await;
    let (text, code, _) = read_all(&mut ws).await;
    assert_eq!(
        text,
        format!("{PROMPT}echo hi\r\nhi\r\ncafé ✓ <&>\r\n{PROMPT}exit\r\nexit\r\n")
    );
    assert_eq!(code, Some(1000));
    assert_eq!(
        backend.resizes(),
        vec![doctl_driver::TermSize { cols: 80, rows: 24 }]
    );
    assert_eq!(backend.consoles_opened()[0].component, "sandbox");
}

#[tokio::test]
async fn instance_name_reaches_the_backend() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start_with_worker(&backend).await;
    let (_, _, exec) = send(
        &emulator,
        "GET",
        &format!("/v2/apps/{W}/components/sandbox/exec?instance_name=sandbox-5d9f-x2v9k"),
        None,
    )
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(exec["url"].as_str().unwrap())
        .await
        .unwrap();
    type_text(&mut ws, "exit\r").await;
    read_all(&mut ws).await;
    assert_eq!(
        backend.consoles_opened()[0].instance.as_deref(),
        Some("sandbox-5d9f-x2v9k")
    );
}

#[tokio::test]
async fn exec_tokens_are_single_use() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start_with_worker(&backend).await;
    let (_, _, exec) = send(
        &emulator,
        "GET",
        &format!("/v2/apps/{W}/components/sandbox/exec"),
        None,
    )
    .await;
    let url = exec["url"].as_str().unwrap().to_owned();
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert!(tokio_tungstenite::connect_async(&url).await.is_err());
    type_text(&mut ws, "exit\r").await;
    read_all(&mut ws).await;
}

#[tokio::test]
async fn a_frame_that_is_not_json_closes_with_1003_and_others_keep_working() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start_with_worker(&backend).await;
    let mut bad = connect(&emulator).await;
    let mut good = connect(&emulator).await;
    bad.send(Message::Text("this is not json".into()))
        .await
        .unwrap();
    let (_, code, _) = read_all(&mut bad).await;
    assert_eq!(code, Some(1003));
    type_text(&mut good, "echo ok\r").await;
    type_text(&mut good, "exit\r").await;
    let (text, code, _) = read_all(&mut good).await;
    assert!(text.contains("ok\r\n"));
    assert_eq!(code, Some(1000));
}

#[tokio::test]
async fn drop_after_bytes_ends_without_a_close_frame() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start_with_worker(&backend).await;
    emulator.faults().drop_console_after_bytes(10);
    let mut ws = connect(&emulator).await;
    let (text, code, _) = read_all(&mut ws).await;
    assert_eq!(text, &PROMPT[..10]);
    assert_eq!(code, None, "no close frame");
}

#[tokio::test]
async fn stall_after_bytes_keeps_the_connection_open_and_silent() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start_with_worker(&backend).await;
    emulator.faults().stall_console_after_bytes(10);
    let mut ws = connect(&emulator).await;
    let mut text = String::new();
    while text.len() < 10 {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                text.push_str(v["data"].as_str().unwrap());
            }
            other => panic!("expected output, got {other:?}"),
        }
    }
    assert_eq!(text, &PROMPT[..10]);
    // Input is not forwarded either (the shell would echo it), and a ping goes unanswered, as
    // on a half-open connection.
    type_text(&mut ws, "exit\r").await;
    ws.send(Message::Ping(b"alive?".to_vec().into()))
        .await
        .unwrap();
    let silent = tokio::time::timeout(Duration::from_millis(500), ws.next()).await;
    assert!(
        silent.is_err(),
        "a stalled console sends nothing: {silent:?}"
    );
    // The client can still leave cleanly.
    ws.close(None).await.expect("close");
}

#[tokio::test]
async fn drop_after_time_and_custom_close_code() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start_with_worker(&backend).await;
    let mut fault = ConsoleFault::default();
    fault.drop_after = Some(Duration::from_millis(200));
    emulator.faults().console(fault, Some(1));
    let mut ws = connect(&emulator).await;
    let (text, code, _) = read_all(&mut ws).await;
    assert_eq!(text, PROMPT);
    assert_eq!(code, None);

    let mut fault = ConsoleFault::default();
    fault.close_code = Some(1011);
    fault.delay_per_frame = Some(Duration::from_millis(5));
    emulator.faults().console(fault, Some(1));
    let mut ws = connect(&emulator).await;
    type_text(&mut ws, "exit\r").await;
    let (text, code, _) = read_all(&mut ws).await;
    assert!(text.ends_with("exit\r\n"));
    assert_eq!(code, Some(1011));
}

#[tokio::test]
async fn live_logs_stream_lines_then_close_1000() {
    let backend = FakePlatform::new().with_ids(&[W]);
    let emulator = start_with_worker(&backend).await;
    let (_, _, apps) = send(&emulator, "GET", &format!("/v2/apps/{W}"), None).await;
    let dep = apps["app"]["active_deployment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, _, body) = send(
        &emulator,
        "GET",
        &format!("/v2/apps/{W}/deployments/{dep}/logs?type=RUN&follow=true&tail_lines=-1&component_name=sandbox"),
        None,
    )
    .await;
    let live = body["live_url"]
        .as_str()
        .unwrap()
        .replacen("http://", "ws://", 1);
    let (mut ws, _) = tokio_tungstenite::connect_async(live).await.unwrap();
    let (text, code, _) = read_all(&mut ws).await;
    assert_eq!(code, Some(1000));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[2].starts_with("sandbox ") && lines[2].ends_with(" line 3"));
}

//! The exec endpoint and the console WebSocket.
//!
//! `GET …/components/{c}/exec` hands out `ws://HOST/exec?token=T` with a one-time token. The
//! WebSocket speaks doctl's protocol: text frames `{"op":"stdin","data":…}` and
//! `{"op":"resize","width":…,"height":…}` in, `{"data":…}` out, close 1000 when the shell
//! exits. A frame that is not a JSON object with a known `op` ends the session with close
//! 1003 (unsupported data); the console behind it is closed, nothing else is touched.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use doctl_driver::{Console, ConsoleTarget, TermSize};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};

use super::{find_app, ok_json};
use crate::error::ApiError;
use crate::faults::ConsoleFault;
use crate::model::components_of;
use crate::server::{Shared, Ticket, lock};

/// `GET /v2/apps/{id}/components/{c}/exec[?instance_name=]`.
pub(crate) async fn exec_url(
    State(state): State<Shared>,
    Path((app_id, component)): Path<(String, String)>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    issue(
        &state,
        &headers,
        &app_id,
        None,
        &component,
        query.get("instance_name"),
    )
}

/// `GET /v2/apps/{id}/deployments/{dep}/components/{c}/exec[?instance_name=]`.
pub(crate) async fn exec_url_for_deployment(
    State(state): State<Shared>,
    Path((app_id, dep_id, component)): Path<(String, String, String)>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    issue(
        &state,
        &headers,
        &app_id,
        Some(&dep_id),
        &component,
        query.get("instance_name"),
    )
}

fn issue(
    state: &Shared,
    headers: &HeaderMap,
    app_id: &str,
    dep_id: Option<&str>,
    component: &str,
    instance: Option<&String>,
) -> Result<Response, ApiError> {
    let app = find_app(state, app_id)?;
    if let Some(dep_id) = dep_id {
        if !app.deployments.iter().any(|d| d.id == dep_id) {
            return Err(ApiError::not_found());
        }
    }
    if !components_of(&app.spec)
        .iter()
        .any(|(name, _)| name == component)
    {
        return Err(ApiError::not_found());
    }
    let mut target = ConsoleTarget::new(app_id, component);
    if let Some(instance) = instance.filter(|i| !i.is_empty()) {
        target = target.with_instance(instance.clone());
    }
    let token = state.issue(Ticket::Exec(target));
    let url = format!("ws://{}/exec?token={token}", state.host(headers));
    Ok(ok_json(&json!({"url": url})))
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        [("content-type", "text/plain")],
        "forbidden\n",
    )
        .into_response()
}

/// `GET /exec?token=T`: the console WebSocket.
pub(crate) async fn websocket(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if state.faults.take_refused_upgrade() {
        return forbidden();
    }
    let ticket = query
        .get("token")
        .and_then(|t| lock(&state.tickets).remove(t));
    let Some(Ticket::Exec(target)) = ticket else {
        return forbidden();
    };
    let Ok(upgrade) = upgrade else {
        return (StatusCode::BAD_REQUEST, "expected a WebSocket upgrade\n").into_response();
    };
    let fault = state.faults.take_console();
    let span =
        tracing::info_span!("console", app_id = %target.app_id, component = %target.component);
    upgrade.on_upgrade(move |socket| {
        let fut = session(state, target, fault, socket);
        tracing::Instrument::instrument(fut, span)
    })
}

async fn session(state: Shared, target: ConsoleTarget, fault: ConsoleFault, mut socket: WebSocket) {
    let console: Arc<dyn Console> = match state.backend.open_console(&target).await {
        Ok(console) => Arc::from(console),
        Err(err) => {
            tracing::warn!(%err, "cannot open console");
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code: 1011,
                    reason: format!("cannot open console: {err}")
                        .chars()
                        .take(100)
                        .collect::<String>()
                        .into(),
                })))
                .await;
            return;
        }
    };
    pump(state, console.clone(), fault, socket).await;
    if let Err(err) = console.close().await {
        tracing::debug!(%err, "closing console");
    }
}

/// What ends a session.
enum End {
    /// Send a close frame with this code and reason.
    Close(u16, String),
    /// Drop the TCP connection without a close frame.
    Drop,
    /// The client went away or closed.
    Gone,
}

async fn pump(state: Shared, console: Arc<dyn Console>, fault: ConsoleFault, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let stopped = crate::server::stopped(state.shutdown.clone());
    tokio::pin!(stopped);
    let mut carry = Vec::new();
    let mut sent: u64 = 0;
    let drop_deadline = fault.drop_after.map(|d| tokio::time::Instant::now() + d);
    let drop_timer = async move {
        match drop_deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(drop_timer);
    let end = loop {
        tokio::select! {
            out = console.recv() => match out {
                Ok(Some(bytes)) => {
                    let mut bytes = bytes;
                    let mut drop_now = false;
                    if let Some(limit) = fault.drop_after_bytes {
                        let left = limit.saturating_sub(sent);
                        if (bytes.len() as u64) >= left {
                            bytes.truncate(usize::try_from(left).unwrap_or(usize::MAX));
                            drop_now = true;
                        }
                    }
                    sent += bytes.len() as u64;
                    if let Some(delay) = fault.delay_per_frame {
                        tokio::time::sleep(delay).await;
                    }
                    let text = decode_utf8(&mut carry, &bytes);
                    if !text.is_empty() {
                        let frame = json!({"data": text}).to_string();
                        if sink.send(Message::Text(frame.into())).await.is_err() {
                            break End::Gone;
                        }
                    }
                    if drop_now {
                        break End::Drop;
                    }
                }
                Ok(None) => break End::Close(fault.close_code.unwrap_or(1000), String::new()),
                Err(err) => {
                    tracing::warn!(%err, "console lost");
                    break End::Close(1011, "console lost".to_owned());
                }
            },
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if let Some(end) = client_frame(&*console, text.as_bytes()).await {
                        break end;
                    }
                }
                Some(Ok(Message::Binary(bytes))) => {
                    if let Some(end) = client_frame(&*console, &bytes).await {
                        break end;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break End::Gone,
                Some(Ok(_)) => {}
            },
            () = &mut drop_timer => break End::Drop,
            () = &mut stopped => break End::Close(1001, "emulator shutting down".to_owned()),
        }
    };
    match end {
        End::Close(code, reason) => {
            tracing::debug!(code, "closing console session");
            let _ = sink
                .send(Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })))
                .await;
            // Give the client a moment to answer the close; then the connection ends.
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while let Some(Ok(msg)) = stream.next().await {
                    if matches!(msg, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
        End::Drop => {
            tracing::debug!("dropping console connection without a close frame");
            drop(sink);
            drop(stream);
        }
        End::Gone => {}
    }
}

/// Handles one client frame; `Some` ends the session.
async fn client_frame(console: &dyn Console, payload: &[u8]) -> Option<End> {
    let Ok(Value::Object(frame)) = serde_json::from_slice::<Value>(payload) else {
        return Some(End::Close(1003, "frames must be JSON objects".to_owned()));
    };
    match frame.get("op").and_then(Value::as_str) {
        Some("stdin") => {
            let data = frame.get("data").and_then(Value::as_str).unwrap_or("");
            if !data.is_empty() {
                if let Err(err) = console.send(data.as_bytes()).await {
                    tracing::warn!(%err, "console input failed");
                    return Some(End::Close(1011, "console lost".to_owned()));
                }
            }
            None
        }
        Some("resize") => {
            let dim = |key: &str| {
                frame
                    .get(key)
                    .and_then(Value::as_u64)
                    .and_then(|v| u16::try_from(v).ok())
                    .unwrap_or(0)
            };
            let (cols, rows) = (dim("width"), dim("height"));
            if cols > 0 && rows > 0 {
                if let Err(err) = console.resize(TermSize { cols, rows }).await {
                    tracing::debug!(%err, "resize failed");
                }
            }
            None
        }
        _ => Some(End::Close(1003, "unknown op".to_owned())),
    }
}

/// Decodes output bytes to text, keeping an incomplete UTF-8 sequence at the end for the next
/// chunk; invalid bytes become U+FFFD.
pub(crate) fn decode_utf8(carry: &mut Vec<u8>, chunk: &[u8]) -> String {
    carry.extend_from_slice(chunk);
    let mut out = String::new();
    let mut rest: &[u8] = carry;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                rest = &[];
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                match e.error_len() {
                    Some(n) => {
                        out.push('\u{fffd}');
                        rest = &after[n..];
                    }
                    None => {
                        rest = after;
                        break;
                    }
                }
            }
        }
    }
    let keep = rest.to_vec();
    *carry = keep;
    out
}

#[cfg(test)]
mod tests {
    use super::decode_utf8;

    #[test]
    fn decode_keeps_split_sequences_for_the_next_chunk() {
        let mut carry = Vec::new();
        let e_acute = "é".as_bytes();
        assert_eq!(decode_utf8(&mut carry, &[b'a', e_acute[0]]), "a");
        assert_eq!(decode_utf8(&mut carry, &[e_acute[1], b'b']), "éb");
        assert_eq!(decode_utf8(&mut carry, &[0xff, b'c']), "\u{fffd}c");
        assert!(carry.is_empty());
    }
}

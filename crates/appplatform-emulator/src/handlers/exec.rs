//! The exec endpoint and the console WebSocket.
//!
//! `GET …/components/{c}/exec` hands out `ws://HOST/exec?token=T` with a one-time token. The
//! WebSocket speaks doctl's protocol: text frames `{"op":"stdin","data":…}` and
//! `{"op":"resize","width":…,"height":…}` in, `{"data":…}` out, close 1000 when the shell
//! exits. A frame that is not a JSON object with a known `op` ends the session with close
//! 1003 (unsupported data); the console behind it is closed, nothing else is touched.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use doctl_driver::{Console, ConsoleTarget, TermSize};
use futures::future::BoxFuture;
use futures::{FutureExt, SinkExt, StreamExt};
use serde_json::{Value, json};

use super::ws::{self, Message, WebSocket, WebSocketError, WebSocketUpgrade};
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
    upgrade: Result<WebSocketUpgrade, WebSocketError>,
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
                .send(ws::close(1011, &format!("cannot open console: {err}")))
                .await;
            return;
        }
    };
    pump(state, console.clone(), fault, socket).await;
    if let Err(err) = console.close().await {
        tracing::debug!(%err, "closing console");
    }
}

/// The most client input held for the console at a time; further frames wait in the socket.
const INPUT_LIMIT: usize = 64 * 1024;
/// The most console output put into one frame.
const OUTPUT_LIMIT: usize = 64 * 1024;
/// How long input already received may take to reach the console when the client leaves.
const INPUT_DRAIN: Duration = Duration::from_secs(2);
/// The longest a stalled session holds its connection (it cannot see the client leave).
const STALL_LIMIT: Duration = Duration::from_secs(600);

/// What ends a session.
enum End {
    /// Send a close frame with this code and reason.
    Close(u16, String),
    /// Drop the TCP connection without a close frame.
    Drop,
    /// The client went away or closed.
    Gone,
    /// Keep the connection open, read nothing and forward nothing (pings go unanswered), until
    /// the emulator stops.
    Stall,
}

impl End {
    /// Whether input the client sent before this end still goes to the console.
    fn delivers_input(&self) -> bool {
        match self {
            End::Gone => true,
            End::Close(code, _) => *code == 1003,
            End::Drop | End::Stall => false,
        }
    }
}

/// A client request for the console, in the order the frames came.
#[derive(Debug, PartialEq)]
enum Op {
    /// Bytes for the terminal's input (consecutive stdin frames joined).
    Input(Vec<u8>),
    /// A new window size.
    Resize(TermSize),
}

/// Client requests not yet carried out.
#[derive(Debug, Default)]
struct Pending {
    ops: VecDeque<Op>,
    input_bytes: usize,
}

impl Pending {
    fn input(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.input_bytes += data.len();
        if let Some(Op::Input(buf)) = self.ops.back_mut() {
            buf.extend_from_slice(data);
        } else {
            self.ops.push_back(Op::Input(data.to_vec()));
        }
    }

    fn resize(&mut self, size: TermSize) {
        self.ops.push_back(Op::Resize(size));
    }

    fn pop(&mut self) -> Option<Op> {
        let op = self.ops.pop_front()?;
        if let Op::Input(data) = &op {
            self.input_bytes -= data.len();
        }
        Some(op)
    }

    fn has_room(&self) -> bool {
        self.input_bytes < INPUT_LIMIT
    }
}

/// A console request being carried out; `Some` ends the session.
type InFlight = BoxFuture<'static, Option<End>>;

fn carry_out(console: Arc<dyn Console>, op: Op) -> InFlight {
    Box::pin(async move {
        match op {
            Op::Input(data) => match console.send(&data).await {
                Ok(()) => None,
                Err(err) => {
                    tracing::warn!(%err, "console input failed");
                    Some(End::Close(1011, "console lost".to_owned()))
                }
            },
            Op::Resize(size) => {
                if let Err(err) = console.resize(size).await {
                    tracing::debug!(%err, "resize failed");
                }
                None
            }
        }
    })
}

/// Waits for the request in flight; never completes when there is none.
async fn finished(in_flight: &mut Option<InFlight>) -> Option<End> {
    match in_flight {
        Some(fut) => fut.await,
        None => std::future::pending().await,
    }
}

/// The server frame carrying console output.
#[derive(serde::Serialize)]
struct DataFrame<'a> {
    data: &'a str,
}

/// Moves bytes between the WebSocket and the console until one side ends.
///
/// Client input is written to the console while output keeps flowing the other way (a shell
/// blocked on writing its echo would otherwise never read the rest of the input). Stdin frames
/// that arrive together are written with one `Console::send`, and console output that is
/// ready together goes out in one frame.
async fn pump(state: Shared, console: Arc<dyn Console>, fault: ConsoleFault, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let stopped = crate::server::stopped(state.shutdown.clone());
    tokio::pin!(stopped);
    let mut carry = Vec::new();
    let mut sent: u64 = 0;
    let mut pending = Pending::default();
    let mut in_flight: Option<InFlight> = None;
    let drop_deadline = fault.drop_after.map(|d| tokio::time::Instant::now() + d);
    let drop_timer = async move {
        match drop_deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(drop_timer);
    let end = loop {
        if in_flight.is_none() {
            in_flight = pending.pop().map(|op| carry_out(console.clone(), op));
        }
        tokio::select! {
            out = console.recv() => {
                let mut bytes = match out {
                    Ok(Some(bytes)) => bytes,
                    other => break console_end(other, &fault),
                };
                // Output already waiting joins this frame (not under a slow-console fault,
                // whose delay is per frame).
                let mut then = None;
                while fault.delay_per_frame.is_none() && bytes.len() < OUTPUT_LIMIT {
                    match console.recv().now_or_never() {
                        Some(Ok(Some(more))) => bytes.extend_from_slice(&more),
                        Some(other) => {
                            then = Some(console_end(other, &fault));
                            break;
                        }
                        None => break,
                    }
                }
                let mut cut = None;
                for (limit, end) in [
                    (fault.drop_after_bytes, End::Drop),
                    (fault.stall_after_bytes, End::Stall),
                ] {
                    let Some(limit) = limit else { continue };
                    let left = limit.saturating_sub(sent);
                    if (bytes.len() as u64) >= left && cut.is_none() {
                        bytes.truncate(usize::try_from(left).unwrap_or(usize::MAX));
                        cut = Some(end);
                    }
                }
                sent += bytes.len() as u64;
                if let Some(delay) = fault.delay_per_frame {
                    tokio::time::sleep(delay).await;
                }
                let text = decode_utf8(&mut carry, &bytes);
                if !text.is_empty() {
                    let frame = serde_json::to_string(&DataFrame { data: &text })
                        .unwrap_or_default();
                    if sink.send(Message::text(frame)).await.is_err() {
                        break End::Gone;
                    }
                }
                if let Some(end) = cut {
                    break end;
                }
                if let Some(end) = then {
                    break end;
                }
            },
            done = finished(&mut in_flight), if in_flight.is_some() => {
                in_flight = None;
                if let Some(end) = done {
                    break end;
                }
            },
            frame = stream.next(), if pending.has_room() => {
                // Take every frame already received, up to the input limit.
                let mut frame = Some(frame);
                let mut ended = None;
                while let Some(this) = frame.take() {
                    ended = client_message(&mut pending, this);
                    if ended.is_some() {
                        break;
                    }
                    if pending.has_room() {
                        frame = stream.next().now_or_never();
                    }
                }
                if let Some(end) = ended {
                    break end;
                }
            },
            () = &mut drop_timer => break End::Drop,
            () = &mut stopped => break End::Close(1001, "emulator shutting down".to_owned()),
        }
    };
    if end.delivers_input() {
        // What the client sent before leaving still reaches the shell, within a deadline.
        let deliver = async {
            if let Some(fut) = in_flight.take() {
                if fut.await.is_some() {
                    return;
                }
            }
            while let Some(op) = pending.pop() {
                if carry_out(console.clone(), op).await.is_some() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(INPUT_DRAIN, deliver).await;
    }
    drop(in_flight);
    match end {
        End::Close(code, reason) => {
            tracing::debug!(code, "closing console session");
            let _ = sink.send(ws::close(code, &reason)).await;
            // Give the client a moment to answer the close; then the connection ends.
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while let Some(Ok(msg)) = stream.next().await {
                    if msg.is_close() {
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
        End::Stall => {
            // Nothing is read either: reading would answer the client's pings (the WebSocket
            // server does that as it reads), and a half-open connection answers nothing. So
            // the client's leaving is not seen: the connection is held until the emulator
            // stops, for STALL_LIMIT at most.
            tracing::debug!("console stalled: holding the connection open, forwarding nothing");
            tokio::select! {
                () = &mut stopped => {}
                () = tokio::time::sleep(STALL_LIMIT) => {}
            }
            drop((sink, stream));
        }
        End::Gone => {}
    }
}

/// How the session ends when the console's output ends or fails.
fn console_end(out: doctl_driver::Result<Option<Vec<u8>>>, fault: &ConsoleFault) -> End {
    match out {
        Ok(_) => End::Close(fault.close_code.unwrap_or(1000), String::new()),
        Err(err) => {
            tracing::warn!(%err, "console lost");
            End::Close(1011, "console lost".to_owned())
        }
    }
}

/// Handles one message from the client; `Some` ends the session.
fn client_message(
    pending: &mut Pending,
    message: Option<Result<Message, WebSocketError>>,
) -> Option<End> {
    match message {
        Some(Ok(message)) if message.is_close() => Some(End::Gone),
        Some(Ok(message)) => ws::data(&message).and_then(|payload| client_frame(pending, payload)),
        None | Some(Err(_)) => Some(End::Gone),
    }
}

/// Handles one client frame; `Some` ends the session.
fn client_frame(pending: &mut Pending, payload: &[u8]) -> Option<End> {
    if let Some(data) = stdin_data(payload) {
        pending.input(data.as_bytes());
        return None;
    }
    let Ok(Value::Object(frame)) = serde_json::from_slice::<Value>(payload) else {
        return Some(End::Close(1003, "frames must be JSON objects".to_owned()));
    };
    match frame.get("op").and_then(Value::as_str) {
        Some("stdin") => {
            let data = frame.get("data").and_then(Value::as_str).unwrap_or("");
            pending.input(data.as_bytes());
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
                pending.resize(TermSize { cols, rows });
            }
            None
        }
        _ => Some(End::Close(1003, "unknown op".to_owned())),
    }
}

/// The data of a stdin frame in exactly the form doctl sends, `{"op":"stdin","data":"…"}`,
/// without building a JSON tree (doctl sends one such frame per byte typed). `None` for any
/// other frame, which then goes through the general parser.
fn stdin_data(payload: &[u8]) -> Option<Cow<'_, str>> {
    const HEAD: &[u8] = br#"{"op":"stdin","data":"#;
    let literal = payload.strip_prefix(HEAD)?.strip_suffix(b"}")?;
    let inner = literal.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if inner.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\') {
        return std::str::from_utf8(inner).ok().map(Cow::Borrowed);
    }
    // Escapes: the literal must be one whole JSON string (`"a","x":"b"` is not).
    serde_json::from_slice::<String>(literal)
        .ok()
        .map(Cow::Owned)
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
    use super::{End, Op, Pending, TermSize, client_frame, decode_utf8, stdin_data};

    /// What the general parser makes of a stdin frame.
    fn parsed(payload: &str) -> Option<String> {
        let value: serde_json::Value = serde_json::from_str(payload).ok()?;
        let object = value.as_object()?;
        (object.get("op")?.as_str()? == "stdin")
            .then(|| object.get("data")?.as_str().map(str::to_owned))
            .flatten()
    }

    #[test]
    fn doctl_stdin_frames_read_like_the_general_parser() {
        let frames = [
            r#"{"op":"stdin","data":"a"}"#,
            r#"{"op":"stdin","data":""}"#,
            r#"{"op":"stdin","data":"\r"}"#,
            r#"{"op":"stdin","data":"\u003c"}"#,
            r#"{"op":"stdin","data":"\u001b"}"#,
            "{\"op\":\"stdin\",\"data\":\"\u{fffd}\"}",
            "{\"op\":\"stdin\",\"data\":\"\u{7f}\"}",
            r#"{"op":"stdin","data":"echo hi"}"#,
        ];
        for frame in frames {
            let fast = stdin_data(frame.as_bytes()).map(|d| d.into_owned());
            assert!(fast.is_some(), "{frame}");
            assert_eq!(fast, parsed(frame), "{frame}");
        }
    }

    #[test]
    fn other_frames_are_left_to_the_general_parser() {
        let frames = [
            r#"{"op":"stdin","data":"a","x":"b"}"#,
            r#"{"op":"stdin","data":"a" }"#,
            r#"{"op":"stdin","data":"a"} "#,
            r#"{"op":"stdin","data":"a\"}"#,
            r#"{"op":"stdin","data":1}"#,
            "{\"op\":\"stdin\",\"data\":\"\n\"}",
            r#"{"op":"resize","width":80,"height":24}"#,
            r#"{"data":"a","op":"stdin"}"#,
        ];
        for frame in frames {
            assert_eq!(stdin_data(frame.as_bytes()), None, "{frame}");
        }
        // A raw control character is invalid JSON: the session ends with 1003.
        let mut pending = Pending::default();
        let end = client_frame(
            &mut pending,
            "{\"op\":\"stdin\",\"data\":\"\n\"}".as_bytes(),
        );
        assert!(matches!(end, Some(End::Close(1003, _))));
    }

    #[test]
    fn consecutive_input_joins_and_resizes_keep_their_place() {
        let mut pending = Pending::default();
        for frame in [
            r#"{"op":"stdin","data":"e"}"#,
            r#"{"op":"stdin","data":"\u0026"}"#,
            r#"{"data":"x","op":"stdin"}"#,
            r#"{"op":"resize","width":100,"height":30}"#,
            r#"{"op":"resize","width":0,"height":0}"#,
            r#"{"op":"stdin","data":""}"#,
            r#"{"op":"stdin","data":"\r"}"#,
        ] {
            assert!(
                client_frame(&mut pending, frame.as_bytes()).is_none(),
                "{frame}"
            );
        }
        assert_eq!(pending.input_bytes, 4);
        assert_eq!(pending.pop(), Some(Op::Input(b"e&x".to_vec())));
        assert_eq!(
            pending.pop(),
            Some(Op::Resize(TermSize {
                cols: 100,
                rows: 30
            }))
        );
        assert_eq!(pending.pop(), Some(Op::Input(b"\r".to_vec())));
        assert_eq!(pending.pop(), None);
        assert_eq!(pending.input_bytes, 0);
    }

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

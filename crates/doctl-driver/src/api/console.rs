//! The exec WebSocket as a [`Console`].
//!
//! Frames follow doctl's protocol: text frames `{"op":"stdin","data":...}` and
//! `{"op":"resize","width":...,"height":...}` out, `{"data":...}` in (text or binary), close
//! 1000 for a normal end. Unlike doctl, input goes out in frames of up to
//! [`MAX_INPUT_FRAME`] bytes instead of one frame per byte.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::platform::{Console, TermSize};

/// The most input bytes carried by one `stdin` frame.
pub const MAX_INPUT_FRAME: usize = 16 * 1024;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Writer = SplitSink<Socket, Message>;

/// Timings of a console.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConsoleTimings {
    /// An empty `stdin` frame is sent after this long without any input frame sent.
    pub keepalive: Duration,
    /// Deadline of one `send` or `resize`, waiting behind an earlier one included.
    pub send_timeout: Duration,
    /// A WebSocket Ping is sent after this long without any frame received, and again every
    /// interval while nothing arrives.
    pub ping_interval: Duration,
    /// With no frame of any kind received for this long, the console is closed and `recv`
    /// fails with [`Error::ConsoleSilent`].
    pub read_idle: Duration,
    /// How long `close` waits for the server's close frame.
    pub close_timeout: Duration,
}

/// What the reader task hands over.
type Chunk = Result<Option<Vec<u8>>>;

/// When the last frame of any kind arrived, shared by the reader and the liveness task.
type Received = Arc<std::sync::Mutex<Instant>>;

/// A console over App Platform's exec WebSocket.
///
/// Liveness: a reader task takes every frame; when none has arrived for the ping interval a
/// liveness task sends a WebSocket Ping (a healthy server answers with a Pong, which counts as
/// a frame), and when none has arrived for the read-idle timeout the console is closed and
/// `recv` fails with [`Error::ConsoleSilent`], then and on every later call. A quiet console
/// whose server answers pings stays open indefinitely.
pub(crate) struct ApiConsole {
    writer: Arc<Mutex<WriterState>>,
    output: Mutex<Output>,
    reader: JoinHandle<()>,
    keepalive: JoinHandle<()>,
    timings: ConsoleTimings,
    label: String,
}

struct WriterState {
    sink: Option<Writer>,
    /// When the last input frame (`stdin` or `resize`) went out.
    last_sent: Instant,
    /// Why `sink` is gone, for the errors of later sends.
    closed: Option<String>,
}

impl WriterState {
    fn close(&mut self, reason: String) {
        self.sink = None;
        self.closed.get_or_insert(reason);
    }
}

struct Output {
    rx: mpsc::Receiver<Chunk>,
    /// How the session ended, repeated on every later `recv`.
    ended: Option<Ended>,
}

#[derive(Clone)]
enum Ended {
    Normal,
    Lost(String),
    Silent(Duration),
}

fn lock_received(received: &Received) -> Instant {
    *received
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ApiConsole {
    /// Takes over a connected socket: sends the initial resize, starts the reader and the
    /// liveness task (keepalive input frames, pings).
    pub(crate) async fn start(
        socket: Socket,
        size: TermSize,
        timings: ConsoleTimings,
        label: String,
    ) -> Result<Self> {
        let (sink, stream) = socket.split();
        let writer = Arc::new(Mutex::new(WriterState {
            sink: Some(sink),
            last_sent: Instant::now(),
            closed: None,
        }));
        let received: Received = Arc::new(std::sync::Mutex::new(Instant::now()));
        let (tx, rx) = mpsc::channel(64);
        let span = tracing::debug_span!("api_console", console = %label);
        let reader = tokio::spawn(
            read_loop(
                stream,
                tx,
                Arc::downgrade(&writer),
                Arc::clone(&received),
                timings,
            )
            .instrument(span.clone()),
        );
        let keepalive = tokio::spawn(
            liveness_loop(Arc::downgrade(&writer), received, timings, label.clone())
                .instrument(span),
        );
        let console = ApiConsole {
            writer,
            output: Mutex::new(Output { rx, ended: None }),
            reader,
            keepalive,
            timings,
            label,
        };
        console.resize(size).await?;
        Ok(console)
    }
}

/// What a write is, for messages, and whether it counts as input for the keepalive.
#[derive(Clone, Copy)]
enum Write {
    Input,
    Resize,
    Keepalive,
    Ping,
}

impl Write {
    fn describe(self) -> &'static str {
        match self {
            Write::Input => "sending input",
            Write::Resize => "sending a resize",
            Write::Keepalive => "sending a keepalive",
            Write::Ping => "sending a ping",
        }
    }
}

/// Writes `frames` in order under one hold of the writer, all within `timeout` (waiting for
/// the writer included). A write that fails or times out may have left half a frame on the
/// connection, so the writer is closed: later sends are [`Error::ConsoleLost`].
async fn write_frames(
    writer: &Mutex<WriterState>,
    frames: Vec<Message>,
    kind: Write,
    timeout: Duration,
    label: &str,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let timed_out = || Error::Timeout {
        operation: format!("{} to the console on {label}", kind.describe()),
        timeout,
    };
    let Ok(mut state) = tokio::time::timeout_at(deadline, writer.lock()).await else {
        return Err(timed_out());
    };
    for frame in frames {
        let Some(sink) = state.sink.as_mut() else {
            return Err(Error::ConsoleLost {
                reason: state
                    .closed
                    .clone()
                    .unwrap_or_else(|| format!("the console on {label} is closed")),
            });
        };
        match tokio::time::timeout_at(deadline, sink.send(frame)).await {
            Ok(Ok(())) => {
                if !matches!(kind, Write::Ping) {
                    state.last_sent = Instant::now();
                }
            }
            Ok(Err(err)) => {
                let reason = format!("writing to the console on {label} failed: {err}");
                state.close(reason.clone());
                return Err(Error::ConsoleLost { reason });
            }
            Err(_) => {
                tracing::debug!(?timeout, what = kind.describe(), "console write timed out");
                state.close(format!(
                    "{} to the console on {label} did not finish within {timeout:?}; the connection is unusable",
                    kind.describe()
                ));
                return Err(timed_out());
            }
        }
    }
    Ok(())
}

/// Reads frames until the session ends; each `{"data":...}` becomes a chunk. Every frame (data,
/// pong, ping, anything) counts as life; none for `read_idle` ends the session with
/// [`Error::ConsoleSilent`] and closes the connection.
async fn read_loop(
    mut stream: SplitStream<Socket>,
    tx: mpsc::Sender<Chunk>,
    writer: std::sync::Weak<Mutex<WriterState>>,
    received: Received,
    timings: ConsoleTimings,
) {
    let end: Chunk = loop {
        let deadline = lock_received(&received) + timings.read_idle;
        let Ok(frame) = tokio::time::timeout_at(deadline, stream.next()).await else {
            tracing::warn!(read_idle = ?timings.read_idle, "console silent: closing it");
            // Drop the writer, so the connection closes when this task returns; a send in
            // progress holds it at most its own deadline.
            if let Some(writer) = writer.upgrade() {
                if let Ok(mut state) =
                    tokio::time::timeout(timings.send_timeout, writer.lock()).await
                {
                    state.close(format!(
                        "the console was silent for {:?} and was closed",
                        timings.read_idle
                    ));
                }
            }
            let _ = tx
                .send(Err(Error::ConsoleSilent {
                    silent_for: timings.read_idle,
                }))
                .await;
            return;
        };
        *received
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
        let Some(frame) = frame else {
            break Err(Error::ConsoleLost {
                reason: "the connection ended without a close frame".to_owned(),
            });
        };
        let payload = match frame {
            Ok(Message::Text(text)) => text.as_bytes().to_vec(),
            Ok(Message::Binary(bytes)) => bytes.to_vec(),
            Ok(Message::Close(frame)) => break closed(frame),
            Ok(_) => continue,
            Err(err) => {
                use tokio_tungstenite::tungstenite::Error as WsError;
                use tokio_tungstenite::tungstenite::error::ProtocolError;
                let reason = match err {
                    WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)
                    | WsError::Io(_) => {
                        format!("the connection ended without a close frame ({err})")
                    }
                    other => format!("reading from the WebSocket failed: {other}"),
                };
                break Err(Error::ConsoleLost { reason });
            }
        };
        match output_data(&payload) {
            Ok(data) if data.is_empty() => {}
            Ok(data) => {
                if tx.send(Ok(Some(data))).await.is_err() {
                    return;
                }
                // Time spent waiting for a slow caller to take output is not silence: the
                // server's frames wait in the socket meanwhile.
                *received
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
            }
            Err(err) => break Err(err),
        }
    };
    let _ = tx.send(end).await;
}

/// A close frame: 1000 is the normal end, anything else a lost session.
fn closed(frame: Option<CloseFrame>) -> Chunk {
    match frame {
        Some(frame) if frame.code == CloseCode::Normal => Ok(None),
        Some(frame) => Err(Error::ConsoleLost {
            reason: format!(
                "the server closed the session with code {}{}",
                u16::from(frame.code),
                if frame.reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", frame.reason)
                }
            ),
        }),
        None => Err(Error::ConsoleLost {
            reason: "the server closed the session without a code".to_owned(),
        }),
    }
}

/// The `data` of an output frame, as bytes.
pub(crate) fn output_data(payload: &[u8]) -> Result<Vec<u8>> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(map)) => Ok(match map.get("data") {
            Some(Value::String(text)) => text.as_bytes().to_vec(),
            _ => Vec::new(),
        }),
        _ => Err(Error::ConsoleLost {
            reason: format!(
                "the server sent a frame that is not a JSON object: {:?}",
                String::from_utf8_lossy(&payload[..payload.len().min(80)])
            ),
        }),
    }
}

/// Sends an empty `stdin` frame whenever no input frame was sent for `keepalive`, and a Ping
/// whenever nothing was received for `ping_interval` (again every interval while the silence
/// lasts). Ends with the console, or when a write fails.
async fn liveness_loop(
    writer: std::sync::Weak<Mutex<WriterState>>,
    received: Received,
    timings: ConsoleTimings,
    label: String,
) {
    let mut last_ping: Option<Instant> = None;
    loop {
        let Some(strong) = writer.upgrade() else {
            return;
        };
        let last_sent = strong.lock().await.last_sent;
        let quiet_since = match last_ping {
            Some(ping) => ping.max(lock_received(&received)),
            None => lock_received(&received),
        };
        let now = Instant::now();
        if quiet_since + timings.ping_interval <= now {
            let ping = vec![Message::Ping(Vec::new().into())];
            if write_frames(&strong, ping, Write::Ping, timings.send_timeout, &label)
                .await
                .is_err()
            {
                return;
            }
            tracing::trace!("ping sent");
            last_ping = Some(Instant::now());
            continue;
        }
        if last_sent + timings.keepalive <= now {
            let frame = vec![Message::Text(stdin_frame("").into())];
            if write_frames(
                &strong,
                frame,
                Write::Keepalive,
                timings.send_timeout,
                &label,
            )
            .await
            .is_err()
            {
                return;
            }
            tracing::trace!("keepalive sent");
            continue;
        }
        drop(strong);
        let next = (quiet_since + timings.ping_interval).min(last_sent + timings.keepalive);
        tokio::time::sleep_until(next).await;
    }
}

/// `{"op":"stdin","data":...}`.
pub(crate) fn stdin_frame(data: &str) -> String {
    serde_json::json!({"op": "stdin", "data": data}).to_string()
}

/// Input bytes as text for JSON: valid UTF-8 as is, each byte of an invalid or incomplete
/// sequence as U+FFFD (what doctl does to every non-ASCII byte).
pub(crate) fn input_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                out.push_str(valid);
                return out;
            }
            Err(err) => {
                let (valid, after) = rest.split_at(err.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                let bad = err.error_len().unwrap_or(after.len());
                out.extend(std::iter::repeat_n('\u{fffd}', bad));
                rest = &after[bad..];
            }
        }
    }
}

/// Splits input into frames of at most [`MAX_INPUT_FRAME`] source bytes, never inside a
/// UTF-8 sequence.
pub(crate) fn input_frames(bytes: &[u8]) -> Vec<String> {
    let text = input_text(bytes);
    let mut frames = Vec::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let mut cut = rest.len().min(MAX_INPUT_FRAME);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        frames.push(stdin_frame(head));
        rest = tail;
    }
    frames
}

#[async_trait]
impl Console for ApiConsole {
    #[tracing::instrument(level = "trace", skip_all, fields(len = data.len()))]
    async fn send(&self, data: &[u8]) -> Result<()> {
        let frames = input_frames(data)
            .into_iter()
            .map(|frame| Message::Text(frame.into()))
            .collect();
        write_frames(
            &self.writer,
            frames,
            Write::Input,
            self.timings.send_timeout,
            &self.label,
        )
        .await
    }

    async fn recv(&self) -> Result<Option<Vec<u8>>> {
        let mut output = self.output.lock().await;
        if let Some(ended) = &output.ended {
            return match ended {
                Ended::Normal => Ok(None),
                Ended::Lost(reason) => Err(Error::ConsoleLost {
                    reason: reason.clone(),
                }),
                Ended::Silent(silent_for) => Err(Error::ConsoleSilent {
                    silent_for: *silent_for,
                }),
            };
        }
        let chunk = output.rx.recv().await.unwrap_or_else(|| {
            Err(Error::ConsoleLost {
                reason: "the console's reader stopped".to_owned(),
            })
        });
        match &chunk {
            Ok(Some(_)) => {}
            Ok(None) => output.ended = Some(Ended::Normal),
            Err(Error::ConsoleSilent { silent_for }) => {
                output.ended = Some(Ended::Silent(*silent_for));
            }
            Err(err) => {
                let reason = match err {
                    Error::ConsoleLost { reason } => reason.clone(),
                    other => other.to_string(),
                };
                output.ended = Some(Ended::Lost(reason));
            }
        }
        chunk
    }

    async fn resize(&self, size: TermSize) -> Result<()> {
        let frame = serde_json::json!({"op": "resize", "width": size.cols, "height": size.rows})
            .to_string();
        write_frames(
            &self.writer,
            vec![Message::Text(frame.into())],
            Write::Resize,
            self.timings.send_timeout,
            &self.label,
        )
        .await
    }

    async fn close(&self) -> Result<()> {
        let sink = self.writer.lock().await.sink.take();
        self.keepalive.abort();
        let Some(mut sink) = sink else {
            self.reader.abort();
            return Ok(());
        };
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let sent = tokio::time::timeout(
            self.timings.send_timeout,
            sink.send(Message::Close(Some(frame))),
        )
        .await;
        if let Ok(Ok(())) = sent {
            // Let the reader see the server's answer to the close, within a deadline.
            let wait = async {
                while !self.reader.is_finished() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            };
            let _ = tokio::time::timeout(self.timings.close_timeout, wait).await;
        }
        self.reader.abort();
        Ok(())
    }
}

impl Drop for ApiConsole {
    fn drop(&mut self) {
        self.reader.abort();
        self.keepalive.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_utf8_passes_and_each_bad_byte_is_a_replacement() {
        assert_eq!(input_text(b"echo x\r"), "echo x\r");
        assert_eq!(input_text("é€".as_bytes()), "é€");
        assert_eq!(input_text(&[b'a', 0xff, 0xfe, b'b']), "a\u{fffd}\u{fffd}b");
        // An incomplete sequence at the end: each byte replaced.
        let euro = "€".as_bytes();
        assert_eq!(input_text(&euro[..2]), "\u{fffd}\u{fffd}");
    }

    #[test]
    fn frames_are_json_and_bounded() {
        let frames = input_frames(b"ls\r");
        assert_eq!(frames, vec![r#"{"op":"stdin","data":"ls\r"}"#.to_owned()]);
        let big = "é".repeat(MAX_INPUT_FRAME);
        let frames = input_frames(big.as_bytes());
        assert_eq!(frames.len(), 2);
        let mut joined = String::new();
        for frame in &frames {
            let v: Value = serde_json::from_str(frame).unwrap();
            let data = v["data"].as_str().unwrap();
            assert!(data.len() <= MAX_INPUT_FRAME);
            joined.push_str(data);
        }
        assert_eq!(joined, big);
        assert!(input_frames(b"").is_empty());
    }

    #[test]
    fn output_frames_parse() {
        assert_eq!(output_data(br#"{"data":"x\r\n"}"#).unwrap(), b"x\r\n");
        assert_eq!(output_data(br#"{"other":1}"#).unwrap(), b"");
        assert!(matches!(
            output_data(b"not json"),
            Err(Error::ConsoleLost { .. })
        ));
    }
}

//! `doctl apps console`: the exec URL from the API, the terminal in raw mode, and the session
//! over the WebSocket (one frame per input byte, resizes on SIGWINCH, keepalives, the server's
//! output to stdout, its close code to the exit status).

use std::io::{Read, Write};
use std::time::Duration;

use appplatform_emulator::godo::encode_compact;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::terminal;
use crate::websocket::{close_text, frame_data};
use crate::{CmdResult, Ctx, Failure, err};

pub(crate) async fn console(ctx: &Ctx, rest: &[String]) -> CmdResult {
    let (app_id, component) = (&rest[0], &rest[1]);
    let mut path = match ctx.args.flag("deployment").filter(|d| !d.is_empty()) {
        Some(dep) => format!("/v2/apps/{app_id}/deployments/{dep}/components/{component}/exec"),
        None => format!("/v2/apps/{app_id}/components/{component}/exec"),
    };
    if let Some(instance) = rest.get(2).filter(|i| !i.is_empty()) {
        path.push_str(&format!("?instance_name={instance}"));
    }
    let answer = ctx.client.call("GET", &path, None).await?;
    let exec_url = answer
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let stdin = std::io::stdin();
    let raw = terminal::RawMode::enter(&stdin)
        .map_err(|e| Failure::Error(format!("error setting terminal to raw mode: {e}")))?;
    // SIGWINCH is ignored by default: until a handler is installed, a resize is lost. Listen
    // before the dial and before the first size is read, so that a resize at any moment after
    // this point reaches the server (a change during the dial is sent right after the first
    // size, a repeat of the same size at worst).
    let winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        .map_err(|e| Failure::Error(format!("error watching terminal resizes: {e}")))?;
    let result = console_session(&exec_url, winch).await;
    drop(raw);
    result
}

async fn console_session(exec_url: &str, mut winch: tokio::signal::unix::Signal) -> CmdResult {
    let url = match url::Url::parse(exec_url) {
        Ok(u) if u.scheme() == "ws" || u.scheme() == "wss" => u,
        _ => return err("malformed ws or wss URL"),
    };
    // TCP_NODELAY, as Go sets on every TCP connection: a keystroke's frame leaves at once.
    let socket = match tokio_tungstenite::connect_async_with_config(url.as_str(), None, true).await
    {
        Ok((socket, _)) => socket,
        Err(e) => {
            // doctl blocks forever here: its input goroutine waits on a channel nobody reads.
            // The stand-in blocks too, silently, but gives up after DOCTL_STANDIN_HANG_SECS
            // (default 300) so a caller that forgot its deadline leaks no process for ever.
            let secs = std::env::var("DOCTL_STANDIN_HANG_SECS")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(300);
            tokio::time::sleep(Duration::from_secs(secs)).await;
            return err(format!(
                "error dialing websocket: {e} (doctl would hang here; the stand-in gave up after {secs}s)"
            ));
        }
    };
    let (mut sink, mut stream) = socket.split();
    let (input_tx, mut input_rx) = tokio::sync::mpsc::channel::<Input>(64);
    // Resize first, with the terminal's size, then on every SIGWINCH.
    let (cols, rows) = terminal::size();
    let _ = input_tx
        .send(Input::Frame(
            json!({"op": "resize", "width": cols, "height": rows}).to_string(),
        ))
        .await;
    let resize_tx = input_tx.clone();
    tokio::spawn(async move {
        while winch.recv().await.is_some() {
            let (cols, rows) = terminal::size();
            if resize_tx
                .send(Input::Frame(
                    json!({"op": "resize", "width": cols, "height": rows}).to_string(),
                ))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    // Input is read in chunks; each byte still travels in a frame of its own (see `Input`).
    let stdin_tx = input_tx.clone();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; STDIN_CHUNK];
        loop {
            match stdin.read(&mut buf) {
                Ok(n) if n > 0 => {
                    if stdin_tx
                        .blocking_send(Input::Bytes(buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
                // doctl keeps polling a closed stdin; the session only ends from the server.
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    });
    let keepalive_tx = input_tx.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(30));
        ticker.tick().await;
        loop {
            ticker.tick().await;
            if keepalive_tx
                .send(Input::Frame("{\"op\":\"stdin\",\"data\":\"\"}".to_owned()))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    drop(input_tx);
    let frames = stdin_frames();
    let mut input_open = true;
    let mut stdout = std::io::stdout();
    loop {
        tokio::select! {
            input = input_rx.recv(), if input_open => {
                let Some(input) = input else {
                    input_open = false;
                    continue;
                };
                // This input and whatever else is already waiting: frames written into the
                // socket's buffer, then one flush.
                let mut next = Some(input);
                let mut bytes = 0;
                while let Some(input) = next.take() {
                    let fed = match input {
                        Input::Frame(frame) => sink.feed(Message::Text(frame.into())).await,
                        Input::Bytes(data) => {
                            bytes += data.len();
                            let mut fed = Ok(());
                            for byte in data {
                                fed = sink.feed(Message::Text(frames[usize::from(byte)].clone())).await;
                                if fed.is_err() {
                                    break;
                                }
                            }
                            fed
                        }
                    };
                    if let Err(e) = fed {
                        return err(format!("error writing to websocket: {e}"));
                    }
                    if bytes < STDIN_CHUNK {
                        next = input_rx.try_recv().ok();
                    }
                }
                if let Err(e) = sink.flush().await {
                    return err(format!("error writing to websocket: {e}"));
                }
            }
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let data = frame_data(t.as_bytes())?;
                    let _ = stdout.write_all(data.as_bytes());
                    let _ = stdout.flush();
                }
                Some(Ok(Message::Binary(b))) => {
                    let data = frame_data(&b)?;
                    let _ = stdout.write_all(data.as_bytes());
                    let _ = stdout.flush();
                }
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.as_ref().map_or(1005, |f| u16::from(f.code));
                    let reason = frame.as_ref().map(|f| f.reason.to_string());
                    let _ = sink
                        .send(Message::Close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                            code: CloseCode::from(code),
                            reason: "".into(),
                        })))
                        .await;
                    if code == 1000 {
                        return Ok(());
                    }
                    return err(format!("error reading from websocket: {}", close_text(code, reason)));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    return err("error reading from websocket: websocket: close 1006 (abnormal closure): unexpected EOF");
                }
            },
        }
    }
}

/// How much terminal input is read at a time.
const STDIN_CHUNK: usize = 64 * 1024;

/// What goes to the console WebSocket.
enum Input {
    /// A frame as it is (resize, keepalive).
    Frame(String),
    /// Bytes typed: doctl reads its input one byte at a time and sends one
    /// `{"op":"stdin","data":…}` frame per byte, so each of these bytes becomes a frame.
    Bytes(Vec<u8>),
}

/// The stdin frame doctl sends for each byte value: the byte as a one-character JSON string
/// in Go's encoding (`<` is `\u003c`), a byte of 0x80 and above as U+FFFD (doctl turns each
/// byte into a rune on its own).
fn stdin_frames() -> Vec<Utf8Bytes> {
    (0..=u8::MAX)
        .map(|byte| {
            let data = if byte < 0x80 {
                char::from(byte).to_string()
            } else {
                "\u{fffd}".to_owned()
            };
            Utf8Bytes::from(format!(
                "{{\"op\":\"stdin\",\"data\":{}}}",
                encode_compact(&json!(data))
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_frames_are_doctls_one_byte_frames() {
        let frames = stdin_frames();
        assert_eq!(frames.len(), 256);
        let frame = |b: u8| frames[usize::from(b)].as_str().to_owned();
        // The payloads recorded from doctl (apps-console-pty-special-input, …-24x80-close-1000).
        assert_eq!(frame(b'e'), r#"{"op":"stdin","data":"e"}"#);
        assert_eq!(frame(b'\r'), r#"{"op":"stdin","data":"\r"}"#);
        assert_eq!(frame(b'\t'), r#"{"op":"stdin","data":"\t"}"#);
        assert_eq!(frame(b'<'), r#"{"op":"stdin","data":"\u003c"}"#);
        assert_eq!(frame(b'&'), r#"{"op":"stdin","data":"\u0026"}"#);
        assert_eq!(frame(b'>'), r#"{"op":"stdin","data":"\u003e"}"#);
        assert_eq!(frame(0x03), r#"{"op":"stdin","data":"\u0003"}"#);
        assert_eq!(frame(0x1b), r#"{"op":"stdin","data":"\u001b"}"#);
        assert_eq!(frame(0x7f), "{\"op\":\"stdin\",\"data\":\"\u{7f}\"}");
        assert_eq!(frame(0xc3), "{\"op\":\"stdin\",\"data\":\"\u{fffd}\"}");
        assert_eq!(frame(0xa9), "{\"op\":\"stdin\",\"data\":\"\u{fffd}\"}");
    }
}

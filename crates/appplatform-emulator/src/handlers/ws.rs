//! What the console and logs WebSockets share: the server (tokio-websockets under axum, a
//! different implementation from the drivers' tungstenite client, so the two cannot be wrong
//! the same way) and close frames within the protocol's limits.

use axum_tws::CloseCode;
pub(crate) use axum_tws::{Message, WebSocket, WebSocketError, WebSocketUpgrade};

/// The most bytes of a close frame's reason (RFC 6455 leaves 123 after the code).
const REASON_MAX: usize = 123;

/// A close frame with `code` and as much of `reason` as fits, cut at a character boundary. A
/// code the protocol reserves (1005, 1006, 1015, or outside 1000 to 4999) becomes 1011.
pub(crate) fn close(code: u16, reason: &str) -> Message {
    let code = CloseCode::try_from(code)
        .ok()
        .filter(|c| !c.is_reserved())
        .unwrap_or(CloseCode::INTERNAL_SERVER_ERROR);
    let mut end = reason.len().min(REASON_MAX);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::close(Some(code), &reason[..end])
}

/// The payload of a text or binary message; `None` for control messages.
pub(crate) fn data(message: &Message) -> Option<&[u8]> {
    (message.is_text() || message.is_binary()).then(|| &**message.as_payload())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_frames_stay_within_the_protocol() {
        let long = "é".repeat(100);
        let message = close(1011, &long);
        let (code, reason) = message.as_close().expect("close");
        assert_eq!(u16::from(code), 1011);
        assert!(reason.len() <= REASON_MAX && reason.chars().all(|c| c == 'é'));
        let reserved = close(1005, "");
        assert_eq!(u16::from(reserved.as_close().expect("close").0), 1011);
        let custom = close(4000, "custom");
        let (code, reason) = custom.as_close().expect("close");
        assert_eq!((u16::from(code), reason), (4000, "custom"));
    }
}

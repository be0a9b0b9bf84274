//! Reading WebSocket frames as doctl does: the `data` of a server frame (with Go's
//! `encoding/json` error for one that is not JSON) and gorilla/websocket's close texts.

use serde_json::Value;

use crate::{Failure, err};

/// The `data` of a server frame; a frame that is not JSON is an error, as in doctl.
pub(crate) fn frame_data(payload: &[u8]) -> Result<String, Failure> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(v) => Ok(v
            .get("data")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()),
        Err(_) => err(go_json_error(payload)),
    }
}

/// Go's `encoding/json` message for text that is not JSON (the common cases).
fn go_json_error(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(payload);
    let trimmed = text.trim_start();
    for literal in ["true", "false", "null"] {
        if trimmed.starts_with(&literal[..1]) {
            for (i, expected) in literal.chars().enumerate().skip(1) {
                match trimmed.chars().nth(i) {
                    Some(c) if c == expected => {}
                    Some(c) => {
                        return format!(
                            "invalid character '{c}' in literal {literal} (expecting '{expected}')"
                        );
                    }
                    None => return "unexpected end of JSON input".to_owned(),
                }
            }
        }
    }
    match trimmed.chars().next() {
        Some(c) => format!("invalid character '{c}' looking for beginning of value"),
        None => "unexpected end of JSON input".to_owned(),
    }
}

/// gorilla/websocket's text for a close code.
pub(crate) fn close_text(code: u16, reason: Option<String>) -> String {
    let name = match code {
        1000 => " (normal)",
        1001 => " (going away)",
        1002 => " (protocol error)",
        1003 => " (unsupported data)",
        1005 => " (no status)",
        1006 => " (abnormal closure)",
        1007 => " (invalid payload data)",
        1008 => " (policy violation)",
        1009 => " (message too big)",
        1010 => " (mandatory extension missing)",
        1011 => " (internal server error)",
        1015 => " (TLS handshake error)",
        _ => "",
    };
    let mut out = format!("websocket: close {code}{name}");
    if let Some(r) = reason.filter(|r| !r.is_empty()) {
        out.push_str(": ");
        out.push_str(&r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_read_like_go() {
        assert_eq!(
            go_json_error(b"this is not json"),
            "invalid character 'h' in literal true (expecting 'r')"
        );
        assert_eq!(
            go_json_error(b"<html>"),
            "invalid character '<' looking for beginning of value"
        );
        assert_eq!(go_json_error(b""), "unexpected end of JSON input");
    }

    #[test]
    fn close_texts_read_like_gorilla() {
        assert_eq!(
            close_text(1011, None),
            "websocket: close 1011 (internal server error)"
        );
        assert_eq!(
            close_text(1003, Some("bad frame".into())),
            "websocket: close 1003 (unsupported data): bad frame"
        );
        assert_eq!(close_text(4000, None), "websocket: close 4000");
    }
}

//! How bytes from a sandbox reach a model: text when they are UTF-8, base64 as well when they
//! are not, huge output cut to a head and a tail with the total size stated, and secrets of
//! the host replaced wherever the server writes text.

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// Output kept from one stream: the first and the last bytes, and how many there were.
#[derive(Debug, Default)]
pub(crate) struct Capture {
    limit: usize,
    head: Vec<u8>,
    tail: Vec<u8>,
    total: u64,
}

impl Capture {
    /// Keeps at most `limit` bytes: half from the start, half from the end.
    pub(crate) fn new(limit: usize) -> Self {
        Capture {
            limit,
            ..Capture::default()
        }
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) {
        self.total += chunk.len() as u64;
        let head_room = (self.limit / 2).saturating_sub(self.head.len());
        let (to_head, rest) = chunk.split_at(head_room.min(chunk.len()));
        self.head.extend_from_slice(to_head);
        if rest.is_empty() {
            return;
        }
        let keep = self.limit - self.limit / 2;
        self.tail.extend_from_slice(rest);
        // Trimmed in batches, so that many small chunks cost linear time.
        if self.tail.len() > keep.saturating_mul(2).max(4096) {
            let cut = self.tail.len() - keep;
            self.tail.drain(..cut);
        }
    }

    /// Writes `<name>` (text), `<name>_base64` (when not UTF-8) and `<name>_truncated` (when
    /// bytes were left out) into `out`.
    pub(crate) fn render(mut self, name: &str, redactor: &Redactor, out: &mut Map<String, Value>) {
        let keep = self.limit - self.limit / 2;
        if self.tail.len() > keep {
            let cut = self.tail.len() - keep;
            self.tail.drain(..cut);
        }
        let shown = (self.head.len() + self.tail.len()) as u64;
        if shown == self.total {
            self.head.extend_from_slice(&self.tail);
            put_bytes(name, &self.head, redactor, out);
            return;
        }
        let omitted = self.total - shown;
        let mut bytes = self.head;
        let marker = format!("\n[... {omitted} bytes left out of {} ...]\n", self.total);
        let text = format!(
            "{}{marker}{}",
            String::from_utf8_lossy(&bytes),
            String::from_utf8_lossy(&self.tail)
        );
        out.insert(name.to_owned(), Value::String(redactor.redact(&text)));
        if std::str::from_utf8(&bytes).is_err() || std::str::from_utf8(&self.tail).is_err() {
            bytes.extend_from_slice(&self.tail);
            out.insert(
                format!("{name}_base64"),
                Value::String(base64::engine::general_purpose::STANDARD.encode(&bytes)),
            );
        }
        out.insert(
            format!("{name}_truncated"),
            json!({
                "total_bytes": self.total,
                "shown_bytes": shown,
                "note": "the middle of the output was left out; redirect it to a file and read that file in parts",
            }),
        );
    }
}

/// Writes `<name>` as text, and `<name>_base64` with the exact bytes when they are not UTF-8.
pub(crate) fn put_bytes(
    name: &str,
    bytes: &[u8],
    redactor: &Redactor,
    out: &mut Map<String, Value>,
) {
    out.insert(
        name.to_owned(),
        Value::String(redactor.redact(&String::from_utf8_lossy(bytes))),
    );
    if std::str::from_utf8(bytes).is_err() {
        out.insert(
            format!("{name}_base64"),
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        );
    }
}

/// Decodes standard base64 (padding optional, whitespace ignored).
pub(crate) fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(compact.as_bytes()))
        .map_err(|e| format!("not valid base64: {e}"))
}

/// Replaces the host's secrets (API tokens, Spaces keys) in text the server sends.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

/// The variables whose values never appear in tool output.
pub const SECRET_VARIABLES: &[&str] = &[
    "DIGITALOCEAN_ACCESS_TOKEN",
    "DIGITALOCEAN_TOKEN",
    "EMULATOR_TOKEN",
    "SANDBOX_MCP_TOKEN",
    "SPACES_ACCESS_KEY",
    "SPACES_SECRET_KEY",
];

impl Redactor {
    /// Redacts the values of [`SECRET_VARIABLES`] found in this process's environment.
    #[must_use]
    pub fn from_env() -> Self {
        Redactor::new(
            SECRET_VARIABLES
                .iter()
                .filter_map(|key| std::env::var(key).ok()),
        )
    }

    /// Redacts these values (those shorter than 8 characters are ignored: they would hide
    /// ordinary words).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| s.len() >= 8).collect();
        // Longest first, so that a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redactor { secrets }
    }

    /// The text with every secret replaced by `[redacted]`, and DigitalOcean personal access
    /// tokens (`dop_v1_` and 64 hex digits) too.
    #[must_use]
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "[redacted]");
            }
        }
        redact_do_tokens(&text)
    }
}

fn redact_do_tokens(text: &str) -> String {
    const PREFIXES: [&str; 3] = ["dop_v1_", "doo_v1_", "dor_v1_"];
    if !PREFIXES.iter().any(|p| text.contains(p)) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((at, prefix)) = PREFIXES
        .iter()
        .filter_map(|p| rest.find(p).map(|at| (at, *p)))
        .min_by_key(|(at, _)| *at)
    {
        out.push_str(&rest[..at]);
        let after = &rest[at + prefix.len()..];
        let hex = after.bytes().take_while(u8::is_ascii_hexdigit).count();
        if hex >= 32 {
            out.push_str("[redacted]");
        } else {
            out.push_str(&rest[at..at + prefix.len() + hex]);
        }
        rest = &after[hex..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_head_and_tail_and_states_the_total() {
        let mut capture = Capture::new(10);
        for _ in 0..100 {
            capture.push(b"0123456789");
        }
        let mut out = Map::new();
        capture.render("stdout", &Redactor::default(), &mut out);
        assert_eq!(
            out["stdout"],
            "01234\n[... 990 bytes left out of 1000 ...]\n56789"
        );
        assert_eq!(out["stdout_truncated"]["total_bytes"], 1000);
        assert_eq!(out["stdout_truncated"]["shown_bytes"], 10);
        assert!(!out.contains_key("stdout_base64"));
    }

    #[test]
    fn small_output_is_exact_and_non_utf8_comes_with_base64() {
        let mut capture = Capture::new(100);
        capture.push(&[b'a', 0xff, b'b']);
        let mut out = Map::new();
        capture.render("stderr", &Redactor::default(), &mut out);
        assert_eq!(out["stderr"], "a\u{fffd}b");
        assert_eq!(out["stderr_base64"], "Yf9i");
        assert!(!out.contains_key("stderr_truncated"));
        assert_eq!(decode_base64("Yf9i").unwrap(), [b'a', 0xff, b'b']);
        assert_eq!(decode_base64("YQ").unwrap(), b"a");
        assert!(decode_base64("%%%").is_err());
    }

    #[test]
    fn secrets_and_do_tokens_are_redacted() {
        let redactor = Redactor::new(["s3cr3t-value-123".to_owned(), "short".to_owned()]);
        let token = format!("dop_v1_{}", "ab".repeat(32));
        let text = format!("a s3cr3t-value-123 b {token} c short dop_v1_xyz");
        assert_eq!(
            redactor.redact(&text),
            "a [redacted] b [redacted] c short dop_v1_xyz"
        );
    }
}

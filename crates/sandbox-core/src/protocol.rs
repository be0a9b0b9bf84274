//! The exec protocol, without I/O: the bootstrap that turns a remote interactive shell into an
//! agent, the request lines sent to it, and the parser of the frames it prints back.
//!
//! Everything that crosses the console is printable ASCII in short lines. See
//! `docs/exec-protocol.md` for the full description.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::error::{Error, Result};

/// The agent: a POSIX sh read loop that runs each request in the background.
pub(crate) const AGENT_SCRIPT: &str = include_str!("agent.sh");

/// Longest request line sent, well under the 4095-byte canonical-mode limit.
pub(crate) const MAX_LINE: usize = 1000;

/// Length of the raw base64 lines of a bulk request (`_I`, `_B`): a multiple of 4 that, with
/// its newline, fits [`MAX_LINE`].
const BULK_LINE: usize = 996;

/// Payloads of at least this many bulk lines go through one bulk reader; smaller ones stay on
/// the `_i` / `_a` / `_b` lines, which cost no process.
const BULK_MIN_LINES: usize = 4;

/// Longest partial line kept while waiting for its newline; longer non-frame lines are dropped.
const MAX_PENDING_LINE: usize = 64 << 20;

/// A fresh random nonce: 16 lowercase hex digits.
pub(crate) fn new_nonce() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    hex[..16].to_owned()
}

/// Line 1 of the bootstrap: quiets the terminal and acknowledges with an `a` frame.
///
/// The echo of this line cannot contain a frame: the nonce is printed as a separate argument.
pub(crate) fn bootstrap_quiet(nonce: &str) -> Vec<u8> {
    format!(
        " stty -echo 2>/dev/null; command set +o emacs +o vi 2>/dev/null; PS1= PS2= PROMPT_COMMAND=; unset HISTFILE; printf '@%s:0:a:\\n' {nonce}\n"
    )
    .into_bytes()
}

/// Lines 2..: the agent script as base64 in short assignments, then `exec sh -c` of it.
pub(crate) fn bootstrap_agent(nonce: &str) -> Vec<u8> {
    let encoded = B64.encode(AGENT_SCRIPT);
    let mut out = String::new();
    for (i, chunk) in encoded.as_bytes().chunks(900).enumerate() {
        let chunk = String::from_utf8_lossy(chunk);
        if i == 0 {
            let _ = writeln!(out, "_S={chunk}");
        } else {
            let _ = writeln!(out, "_S=${{_S}}{chunk}");
        }
    }
    let _ = writeln!(
        out,
        "exec sh -c \"$(printf %s \"$_S\" | base64 -d)\" sandbox-agent {nonce}"
    );
    out.into_bytes()
}

/// Which way the agent returns a command's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Output into files, sent back after the command exits (fewest processes).
    Collect,
    /// Output through fifos, sent back in chunks as it is produced.
    Stream,
}

/// Quotes a string for POSIX sh: single quotes, `'` as `'\''`.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

fn is_plain(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| (0x20..0x7f).contains(b))
}

/// The request lines that start command `id`: the script, its stdin, then the `_x` line.
pub(crate) fn encode_request(
    id: u64,
    mode: Mode,
    remote_timeout_secs: u64,
    script: &str,
    stdin: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = String::new();
    if let Some(input) = stdin {
        let encoded = B64.encode(input);
        if encoded.len().div_ceil(BULK_LINE) >= BULK_MIN_LINES {
            push_bulk(&mut out, "_I", id, &encoded);
        } else if encoded.is_empty() {
            let _ = writeln!(out, "_i {id} ''");
        } else {
            for chunk in encoded.as_bytes().chunks(MAX_LINE - 40) {
                let _ = writeln!(out, "_i {id} {}", String::from_utf8_lossy(chunk));
            }
        }
    }
    let mode = match mode {
        Mode::Collect => 'c',
        Mode::Stream => 's',
    };
    let last = if script.len() >= BULK_MIN_LINES * BULK_LINE * 3 / 4 {
        // A large script: one bulk reader instead of many `_a` / `_b` lines.
        push_bulk(&mut out, "_B", id, &B64.encode(script.as_bytes()));
        String::new()
    } else if is_plain(script.as_bytes()) {
        // Split into pieces whose quoted form fits a line; the last goes on the `_x` line.
        let mut pieces = Vec::new();
        let mut current = String::new();
        let mut quoted_len = 2;
        for c in script.chars() {
            let add = if c == '\'' { 4 } else { 1 };
            if quoted_len + add > MAX_LINE - 60 {
                pieces.push(std::mem::take(&mut current));
                quoted_len = 2;
            }
            current.push(c);
            quoted_len += add;
        }
        let last = current;
        for piece in pieces {
            let _ = writeln!(out, "_a {}", quote(&piece));
        }
        quote(&last)
    } else {
        let encoded = B64.encode(script.as_bytes());
        for chunk in encoded.as_bytes().chunks(MAX_LINE - 10) {
            let _ = writeln!(out, "_b {}", String::from_utf8_lossy(chunk));
        }
        String::new()
    };
    let _ = writeln!(out, "_x {id} {mode} {remote_timeout_secs} {last}");
    out.into_bytes()
}

/// A bulk request: the header `<name> <id> <lines>`, then `encoded` in raw lines of
/// [`BULK_LINE`] bytes, which the agent reads with one `head -n <lines>`.
fn push_bulk(out: &mut String, name: &str, id: u64, encoded: &str) {
    let chunks = encoded.as_bytes().chunks(BULK_LINE);
    let _ = writeln!(out, "{name} {id} {}", chunks.len());
    for chunk in chunks {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
}

/// The request line that sends `signal` to command `id`'s process group.
pub(crate) fn encode_kill(id: u64, signal: i32) -> Vec<u8> {
    format!("_k {id} {signal}\n").into_bytes()
}

/// Which output stream a data frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// One frame printed by the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Bootstrap line 1 ran (`@N:0:a:`).
    Ack,
    /// The agent is reading requests (`@N:0:r:<version>`).
    Ready,
    /// Output of command `id`.
    Data {
        id: u64,
        stream: Stream,
        bytes: Vec<u8>,
    },
    /// Command `id` ended with this shell status.
    Exit { id: u64, status: u8 },
    /// The agent could not start command `id` (or itself, for id 0).
    Failed { id: u64, what: String },
    /// A line carried the tag but not a valid frame: its command's output cannot be trusted.
    Corrupt { id: Option<u64>, line: String },
}

/// Splits terminal output into lines and picks out frames; everything else (prompts, echo,
/// escapes, carriage returns, job messages) is ignored.
#[derive(Debug)]
pub(crate) struct FrameParser {
    tag: Vec<u8>,
    pending: Vec<u8>,
    /// Whether the current partial line was cut for length (its tail is skipped).
    skipping: bool,
}

impl FrameParser {
    pub(crate) fn new(nonce: &str) -> Self {
        FrameParser {
            tag: format!("@{nonce}:").into_bytes(),
            pending: Vec::new(),
            skipping: false,
        }
    }

    /// Feeds a chunk of terminal output; returns the frames completed by it.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        let mut rest = chunk;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(pos);
            rest = &tail[1..];
            if self.skipping {
                self.skipping = false;
                self.pending.clear();
                continue;
            }
            if self.pending.is_empty() {
                if let Some(frame) = self.parse_line(line) {
                    frames.push(frame);
                }
            } else {
                self.pending.extend_from_slice(line);
                let full = std::mem::take(&mut self.pending);
                if let Some(frame) = self.parse_line(&full) {
                    frames.push(frame);
                }
            }
        }
        if !self.skipping {
            self.pending.extend_from_slice(rest);
            if self.pending.len() > MAX_PENDING_LINE {
                self.pending.clear();
                self.skipping = true;
            }
        }
        frames
    }

    fn parse_line(&self, line: &[u8]) -> Option<Frame> {
        let start = find(line, &self.tag)?;
        let body = &line[start + self.tag.len()..];
        // Carriage returns (ONLCR) and anything after the payload's end are trimmed.
        let body = trim_trailing(body);
        Some(parse_body(body).unwrap_or_else(|id| Frame::Corrupt {
            id,
            line: String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned(),
        }))
    }
}

fn trim_trailing(mut body: &[u8]) -> &[u8] {
    while let [rest @ .., last] = body {
        if last.is_ascii_whitespace() {
            body = rest;
        } else {
            break;
        }
    }
    body
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_body(body: &[u8]) -> std::result::Result<Frame, Option<u64>> {
    let mut parts = body.splitn(3, |&b| b == b':');
    let id = parts.next().ok_or(None)?;
    let id: u64 = std::str::from_utf8(id)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(None)?;
    let kind = parts.next().ok_or(Some(id))?;
    let payload = parts.next().ok_or(Some(id))?;
    match kind {
        b"a" if id == 0 => Ok(Frame::Ack),
        b"r" if id == 0 => Ok(Frame::Ready),
        b"o" | b"e" => {
            let bytes = B64.decode(payload).map_err(|_| Some(id))?;
            let stream = if kind == b"o" {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            Ok(Frame::Data { id, stream, bytes })
        }
        b"x" => {
            let status = std::str::from_utf8(payload)
                .ok()
                .and_then(|s| s.parse::<u8>().ok())
                .ok_or(Some(id))?;
            Ok(Frame::Exit { id, status })
        }
        b"f" => Ok(Frame::Failed {
            id,
            what: String::from_utf8_lossy(payload).into_owned(),
        }),
        _ => Err(Some(id)),
    }
}

/// Checks an environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn check_env_key(key: &str) -> Result<()> {
    let mut chars = key.chars();
    let ok = matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "env",
            format!("environment variable name {key:?} must match [A-Za-z_][A-Za-z0-9_]*"),
        ))
    }
}

/// Rejects text that cannot be passed to a program (NUL bytes).
pub(crate) fn check_no_nul(name: &str, text: &str) -> Result<()> {
    if text.contains('\0') {
        return Err(Error::invalid(name, "must not contain NUL bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: &str = "0123456789abcdef";

    fn frames(parser: &mut FrameParser, chunks: &[&[u8]]) -> Vec<Frame> {
        chunks.iter().flat_map(|c| parser.feed(c)).collect()
    }

    #[test]
    fn ignores_prompt_echo_and_escapes_and_reads_frames() {
        let mut p = FrameParser::new(N);
        let transcript: &[&[u8]] = &[
            b"\x1b[?2004hsandbox@x:~/app$ ",
            b" stty -echo; printf '@%s:0:a:\\n' 0123456789abcdef\r\n\x1b[?2004l\r",
            b"@0123456789abcdef:0:a:\r\n",
            b"@0123456789abcdef:0:r:1\r\n",
            b"@0123456789abcdef:7:o:aGkK\r\n@0123456789abcdef:7:x:0\r\n",
        ];
        assert_eq!(
            frames(&mut p, transcript),
            vec![
                Frame::Ack,
                Frame::Ready,
                Frame::Data {
                    id: 7,
                    stream: Stream::Stdout,
                    bytes: b"hi\n".to_vec()
                },
                Frame::Exit { id: 7, status: 0 },
            ]
        );
    }

    #[test]
    fn frame_split_across_one_byte_chunks() {
        let mut p = FrameParser::new(N);
        let line = b"junk@0123456789abcdef:3:e:/wA=\r\n@0123456789abcdef:3:x:255\r\n";
        let chunks: Vec<&[u8]> = line.chunks(1).collect();
        assert_eq!(
            frames(&mut p, &chunks),
            vec![
                Frame::Data {
                    id: 3,
                    stream: Stream::Stderr,
                    bytes: vec![0xff, 0x00]
                },
                Frame::Exit { id: 3, status: 255 },
            ]
        );
    }

    #[test]
    fn other_nonce_and_marker_lookalikes_are_not_frames() {
        let mut p = FrameParser::new(N);
        let out =
            p.feed(b"@ffffffffffffffff:1:x:0\n@0123456789abcde:1:x:0\nREADY_0123456789abcdef\n");
        assert!(out.is_empty());
    }

    #[test]
    fn bad_payload_is_corrupt_not_silently_dropped() {
        let mut p = FrameParser::new(N);
        let out = p.feed(b"@0123456789abcdef:4:o:@@@\n@0123456789abcdef:4:x:999\n");
        assert!(matches!(out[0], Frame::Corrupt { id: Some(4), .. }));
        assert!(matches!(out[1], Frame::Corrupt { id: Some(4), .. }));
    }

    #[test]
    fn quoting_round_trips_through_sh() {
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn bulk_requests_count_their_lines_and_small_ones_stay_inline() {
        let stdin = vec![7u8; 10_000];
        let req =
            String::from_utf8(encode_request(3, Mode::Collect, 0, "cat", Some(&stdin))).unwrap();
        let lines: Vec<&str> = req.lines().collect();
        let encoded = B64.encode(&stdin);
        let count = encoded.len().div_ceil(BULK_LINE);
        assert_eq!(lines[0], format!("_I 3 {count}"));
        assert_eq!(lines[1..=count].concat(), encoded);
        assert_eq!(lines[count + 1..], ["_x 3 c 0 'cat'"]);

        let script = format!("echo {}", "z".repeat(5000));
        let req = String::from_utf8(encode_request(4, Mode::Stream, 0, &script, None)).unwrap();
        let lines: Vec<&str> = req.lines().collect();
        let encoded = B64.encode(&script);
        let count = encoded.len().div_ceil(BULK_LINE);
        assert_eq!(lines[0], format!("_B 4 {count}"));
        assert_eq!(lines[1..=count].concat(), encoded);
        assert_eq!(lines[count + 1..], ["_x 4 s 0 "]);

        let req =
            String::from_utf8(encode_request(5, Mode::Collect, 0, "cat", Some(b"hi"))).unwrap();
        assert_eq!(req, "_i 5 aGk=\n_x 5 c 0 'cat'\n");
    }

    #[test]
    fn requests_are_short_printable_lines() {
        let script = "echo 'a' ".repeat(500);
        let stdin = vec![0xffu8; 5000];
        let req = encode_request(9, Mode::Collect, 0, &script, Some(&stdin));
        for line in req.split(|&b| b == b'\n') {
            assert!(line.len() <= MAX_LINE, "line of {} bytes", line.len());
            assert!(is_plain(line));
        }
        let req = encode_request(9, Mode::Stream, 5, "printf '\\303\\251'\necho é", None);
        let text = String::from_utf8(req).unwrap();
        assert!(text.starts_with("_b "));
        assert!(text.ends_with("_x 9 s 5 \n"));
    }

    #[test]
    fn env_keys() {
        assert!(check_env_key("_A1").is_ok());
        assert!(check_env_key("1A").is_err());
        assert!(check_env_key("A-B").is_err());
        assert!(check_env_key("").is_err());
    }

    #[test]
    fn bootstrap_lines_fit_and_echo_holds_no_frame() {
        let quiet = bootstrap_quiet(N);
        assert!(find(&quiet, format!("@{N}:").as_bytes()).is_none());
        for line in bootstrap_agent(N).split(|&b| b == b'\n') {
            assert!(line.len() <= MAX_LINE);
            assert!(is_plain(line));
        }
    }
}

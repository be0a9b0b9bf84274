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
        " stty -echo 2>/dev/null; command set +o emacs +o vi 2>/dev/null; PS1= PS2= PROMPT_COMMAND=; unset HISTFILE; printf '@%s:0:a::0\\n' {nonce}\n"
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
    /// Output through pipes into the agent's files, sent back after the command exits.
    Collect,
    /// Output through pipes, sent back in chunks as it is produced, within a window of
    /// [`STREAM_WINDOW`] unacknowledged chunks per stream.
    Stream,
}

/// How many chunks of one stream the agent sends before it waits for a credit (`_n`).
/// Must match `W` in `agent.sh`.
pub(crate) const STREAM_WINDOW: u32 = 16;

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
    kill_children: bool,
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
    let mode = match (mode, kill_children) {
        (Mode::Collect, false) => "c",
        (Mode::Stream, false) => "s",
        (Mode::Collect, true) => "ck",
        (Mode::Stream, true) => "sk",
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

/// The request line that sends `signal` to command `id`'s process group (with 9, its output
/// readers are stopped too).
pub(crate) fn encode_kill(id: u64, signal: i32) -> Vec<u8> {
    format!("_k {id} {signal}\n").into_bytes()
}

/// The request line that stops reading command `id`'s output: sent when its process has
/// exited but a child still holds its stdout or stderr after the drain grace.
pub(crate) fn encode_drain(id: u64) -> Vec<u8> {
    format!("_d {id}\n").into_bytes()
}

/// The request line that lets the agent send `chunks` more chunks of a streamed command's
/// `stream`.
pub(crate) fn encode_credit(id: u64, stream: Stream, chunks: u32) -> Vec<u8> {
    let which = match stream {
        Stream::Stdout => 'o',
        Stream::Stderr => 'e',
    };
    format!("_n {id} {which} {chunks}\n").into_bytes()
}

/// The heartbeat request: the agent answers with an `h` frame.
pub(crate) const HEARTBEAT: &[u8] = b"_y\n";

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
    /// Command `id`'s process exited with this shell status; its output may still follow.
    Exited { id: u64, status: u8 },
    /// Command `id` is complete: its status, and how many bytes of stdout and stderr the
    /// agent read (`None` when reading was cut at the drain grace).
    Exit {
        id: u64,
        status: u8,
        stdout: Option<u64>,
        stderr: Option<u64>,
    },
    /// The agent answered a heartbeat.
    Heartbeat,
    /// The agent could not start command `id` (or itself, for id 0).
    Failed { id: u64, what: String },
    /// A line carried the tag but not a valid frame: its command's output cannot be trusted.
    Corrupt { id: Option<u64>, line: String },
    /// A line carried the tag but ended before its frame did (the length at its end is
    /// missing or wrong): the console cut it, so nothing after can be trusted either.
    Truncated { line: String },
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
        // Carriage returns (ONLCR) are trimmed.
        let body = trim_trailing(body);
        let excerpt = || String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
        // Every frame ends with `:<payload length>`; a line whose end does not match was cut.
        let Some((frame, length)) = split_length(body) else {
            return Some(Frame::Truncated { line: excerpt() });
        };
        Some(parse_body(frame, length).unwrap_or_else(|err| match err {
            BodyError::Corrupt(id) => Frame::Corrupt {
                id,
                line: excerpt(),
            },
            BodyError::Truncated => Frame::Truncated { line: excerpt() },
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

/// Splits `<frame>:<length>` at its last colon; `None` when the tail is not a number.
fn split_length(body: &[u8]) -> Option<(&[u8], usize)> {
    let colon = body.iter().rposition(|&b| b == b':')?;
    let digits = &body[colon + 1..];
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let length = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((&body[..colon], length))
}

enum BodyError {
    /// A whole frame that breaks the rules (for this command id, when readable).
    Corrupt(Option<u64>),
    /// The payload is not as long as the frame says: the line was cut.
    Truncated,
}

fn number<T: std::str::FromStr>(field: &[u8]) -> Option<T> {
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// A byte count of the exit frame: decimal, or `-` when the agent does not know it.
fn count(field: &[u8]) -> Option<Option<u64>> {
    if field == b"-" {
        Some(None)
    } else {
        number(field).map(Some)
    }
}

fn parse_body(body: &[u8], length: usize) -> std::result::Result<Frame, BodyError> {
    let mut parts = body.splitn(3, |&b| b == b':');
    let id = parts.next().ok_or(BodyError::Truncated)?;
    let id: u64 = number(id).ok_or(BodyError::Truncated)?;
    let kind = parts.next().ok_or(BodyError::Truncated)?;
    let payload = parts.next().ok_or(BodyError::Truncated)?;
    if payload.len() != length {
        return Err(BodyError::Truncated);
    }
    let corrupt = BodyError::Corrupt(Some(id));
    match kind {
        b"a" if id == 0 => Ok(Frame::Ack),
        b"r" if id == 0 => Ok(Frame::Ready),
        b"h" if id == 0 => Ok(Frame::Heartbeat),
        b"o" | b"e" => {
            let bytes = B64.decode(payload).map_err(|_| corrupt)?;
            let stream = if kind == b"o" {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            Ok(Frame::Data { id, stream, bytes })
        }
        b"q" => {
            let status = number(payload).ok_or(corrupt)?;
            Ok(Frame::Exited { id, status })
        }
        b"x" => {
            let fields: Vec<&[u8]> = payload.split(|&b| b == b':').collect();
            let [status, stdout, stderr] = fields[..] else {
                return Err(corrupt);
            };
            match (number(status), count(stdout), count(stderr)) {
                (Some(status), Some(stdout), Some(stderr)) => Ok(Frame::Exit {
                    id,
                    status,
                    stdout,
                    stderr,
                }),
                _ => Err(corrupt),
            }
        }
        b"f" => Ok(Frame::Failed {
            id,
            what: String::from_utf8_lossy(payload).into_owned(),
        }),
        _ => Err(corrupt),
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

    /// A frame as the agent prints it, with its length suffix and the terminal's CRLF.
    fn fr(id: u64, kind: &str, payload: &str) -> String {
        format!("@{N}:{id}:{kind}:{payload}:{}\r\n", payload.len())
    }

    fn frames(parser: &mut FrameParser, chunks: &[&[u8]]) -> Vec<Frame> {
        chunks.iter().flat_map(|c| parser.feed(c)).collect()
    }

    #[test]
    fn ignores_prompt_echo_and_escapes_and_reads_frames() {
        let mut p = FrameParser::new(N);
        let output = format!("{}{}", fr(7, "o", "aGkK"), fr(7, "x", "0:3:0"));
        let (ack, ready) = (fr(0, "a", ""), fr(0, "r", "1"));
        let transcript: &[&[u8]] = &[
            b"\x1b[?2004hsandbox@x:~/app$ ",
            b" stty -echo; printf '@%s:0:a::0\\n' 0123456789abcdef\r\n\x1b[?2004l\r",
            ack.as_bytes(),
            ready.as_bytes(),
            output.as_bytes(),
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
                Frame::Exit {
                    id: 7,
                    status: 0,
                    stdout: Some(3),
                    stderr: Some(0)
                },
            ]
        );
    }

    #[test]
    fn frame_split_across_one_byte_chunks() {
        let mut p = FrameParser::new(N);
        let line = format!(
            "junk{}{}{}",
            fr(3, "e", "/wA="),
            fr(3, "q", "255"),
            fr(3, "x", "255:-:2")
        );
        let chunks: Vec<&[u8]> = line.as_bytes().chunks(1).collect();
        assert_eq!(
            frames(&mut p, &chunks),
            vec![
                Frame::Data {
                    id: 3,
                    stream: Stream::Stderr,
                    bytes: vec![0xff, 0x00]
                },
                Frame::Exited { id: 3, status: 255 },
                Frame::Exit {
                    id: 3,
                    status: 255,
                    stdout: None,
                    stderr: Some(2)
                },
            ]
        );
    }

    #[test]
    fn other_nonce_and_marker_lookalikes_are_not_frames() {
        let mut p = FrameParser::new(N);
        let out = p.feed(
            b"@ffffffffffffffff:1:x:0:0:0:5\n@0123456789abcde:1:x:0:0:0:5\nREADY_0123456789abcdef\n",
        );
        assert!(out.is_empty());
    }

    #[test]
    fn bad_payload_is_corrupt_not_silently_dropped() {
        let mut p = FrameParser::new(N);
        let out = p.feed(format!("{}{}", fr(4, "o", "@@@"), fr(4, "x", "999:0:0")).as_bytes());
        assert!(matches!(out[0], Frame::Corrupt { id: Some(4), .. }));
        assert!(matches!(out[1], Frame::Corrupt { id: Some(4), .. }));
    }

    #[test]
    fn a_frame_cut_and_followed_by_other_text_is_truncated_not_corrupt() {
        let mut p = FrameParser::new(N);
        // A console that dies mid-frame, then its client prints an error on the same line.
        let cut = format!("@{N}:5:o:aGVsbG8gd29y");
        for tail in [
            "Error: websocket: close 1006 (abnormal closure)\r\n",
            "bGQ=: 3\r\n",
            "\r\n",
            ":99\r\n",
        ] {
            let out = p.feed(format!("{cut}{tail}").as_bytes());
            assert!(
                matches!(out[..], [Frame::Truncated { .. }]),
                "{tail:?}: {out:?}"
            );
        }
        let out = p.feed(fr(0, "h", "").as_bytes());
        assert_eq!(out, [Frame::Heartbeat]);
    }

    #[test]
    fn quoting_round_trips_through_sh() {
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn bulk_requests_count_their_lines_and_small_ones_stay_inline() {
        let stdin = vec![7u8; 10_000];
        let req = String::from_utf8(encode_request(
            3,
            Mode::Collect,
            false,
            0,
            "cat",
            Some(&stdin),
        ))
        .unwrap();
        let lines: Vec<&str> = req.lines().collect();
        let encoded = B64.encode(&stdin);
        let count = encoded.len().div_ceil(BULK_LINE);
        assert_eq!(lines[0], format!("_I 3 {count}"));
        assert_eq!(lines[1..=count].concat(), encoded);
        assert_eq!(lines[count + 1..], ["_x 3 c 0 'cat'"]);

        let script = format!("echo {}", "z".repeat(5000));
        let req =
            String::from_utf8(encode_request(4, Mode::Stream, false, 0, &script, None)).unwrap();
        let lines: Vec<&str> = req.lines().collect();
        let encoded = B64.encode(&script);
        let count = encoded.len().div_ceil(BULK_LINE);
        assert_eq!(lines[0], format!("_B 4 {count}"));
        assert_eq!(lines[1..=count].concat(), encoded);
        assert_eq!(lines[count + 1..], ["_x 4 s 0 "]);

        let req = String::from_utf8(encode_request(
            5,
            Mode::Collect,
            false,
            0,
            "cat",
            Some(b"hi"),
        ))
        .unwrap();
        assert_eq!(req, "_i 5 aGk=\n_x 5 c 0 'cat'\n");
    }

    #[test]
    fn requests_are_short_printable_lines() {
        let script = "echo 'a' ".repeat(500);
        let stdin = vec![0xffu8; 5000];
        let req = encode_request(9, Mode::Collect, false, 0, &script, Some(&stdin));
        for line in req.split(|&b| b == b'\n') {
            assert!(line.len() <= MAX_LINE, "line of {} bytes", line.len());
            assert!(is_plain(line));
        }
        let req = encode_request(
            9,
            Mode::Stream,
            true,
            5,
            "printf '\\303\\251'\necho é",
            None,
        );
        let text = String::from_utf8(req).unwrap();
        assert!(text.starts_with("_b "));
        assert!(text.ends_with("_x 9 sk 5 \n"));
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
